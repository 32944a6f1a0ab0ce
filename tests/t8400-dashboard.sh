#!/usr/bin/env bash
test_description='kubectl slipway dashboard: the page in real headless Chromium against the
real API server (Remotes, a live push, a failure, the timeline, forbidden), and
the server refusing what a read-only page must not do'
. "$(dirname "$0")/test-lib.sh"
test_require_env
. "$SLIPWAY_ROOT/tests/lib-gitd.sh"

ns=dash-e2e
ext=ssh://git@git.example.com:2222/
# Selenium from PyPI in a venv in the cache, pinned; Chromium from Debian
selenium_version=4.27.1
venv=${SLIPWAY_CACHE:-$HOME/.cache/slipway}/selenium-$selenium_version
browse() { "$venv/bin/python" "$SLIPWAY_ROOT/tests/lib-dashboard.py" "$@"; }

# dash_start NAME [PLUGIN FLAGS...]: the dashboard in the background on a
# free port; its URL in $NAME_url (from what it prints), pid in $NAME_pid.
dash_start() {
	local name=$1 url
	shift
	kubectl slipway -n $ns "$@" dashboard --port 0 --no-open >"$name.out" 2>"$name.err" &
	eval "${name}_pid=$!"
	test_wait_for 30 grep -q "^Serving .* at http://" "$name.out" || return 1
	url=$(sed -n "s|^Serving .* at \(http://[^ ]*\)$|\1|p" "$name.out")
	eval "${name}_url=$url"
}
dash_stop() {
	local pid
	eval "pid=\${${1}_pid:-}"
	[ -n "$pid" ] || return 0
	kill -INT "$pid" 2>/dev/null
	wait "$pid"
}
trap 'dash_stop dash; dash_stop nobody; gitd_stop' EXIT

# status_of URL [CURL ARGS...]: the HTTP status code of a request.
status_of() {
	curl -s -o /dev/null -w "%{http_code}" "$@"
}

test_expect_success 'set up a namespace, Remotes of both kinds, hooks and gitd' '
	kubectl apply -f "$SLIPWAY_ROOT/manifests/crds/" >/dev/null &&
	kubectl delete namespace $ns --ignore-not-found --wait --timeout=90s &&
	kubectl create namespace $ns &&
	make_key alice && use_key alice &&
	kubectl -n $ns apply -f - <<-EOF_ &&
	{"apiVersion":"v1","kind":"List","items":[
	 {"apiVersion":"slipway.dev/v1alpha1","kind":"Remote","metadata":{"name":"web"},
	  "spec":{"authorizedKeys":["$(cat alice.pub)"]}},
	 {"apiVersion":"gitkube.sh/v1alpha1","kind":"Remote","metadata":{"name":"legacy"},
	  "spec":{"authorizedKeys":["$(cat alice.pub)"]}}]}
	EOF_
	mkdir -p admin-hooks/pre-build &&
	cat >admin-hooks/pre-build/10-gate <<-EOF_ &&
	#!/bin/sh
	# holds the pipeline while ./hold exists; fails it while ./fail exists
	while [ -f "$TRASH_DIRECTORY/hold" ]; do sleep 0.1; done
	if [ -f "$TRASH_DIRECTORY/fail" ]; then echo "migrations failed: table locked"; exit 1; fi
	exit 0
	EOF_
	chmod +x admin-hooks/pre-build/10-gate &&
	gitd_start_cluster --namespace $ns --external-url $ext --hooks-dir "$TRASH_DIRECTORY/admin-hooks" &&
	test_wait_for 30 test "$(kubectl -n $ns get remotes.gitkube.sh legacy -o jsonpath={.status.remoteUrl})" = "${ext}$ns/legacy.git" &&
	new_app src
'

test_expect_success 'the dashboard prints its URL and serves the page, its script and styles under a strict CSP' '
	dash_start dash &&
	case "$dash_url" in http://127.0.0.1:[0-9]*/) ;; *) false ;; esac &&
	test_grep "read-only" dash.out &&
	curl -sf -D headers -o page.html "$dash_url" &&
	test_grep "<script src=\"app.js\" defer></script>" page.html &&
	test_must_fail grep -q "<script>" page.html &&
	test_grep "^Content-Security-Policy: default-src .none.; script-src .self.; style-src .self.; connect-src .self.;" headers &&
	test_grep "^Content-Type: text/html" headers &&
	curl -sf -D headers -o app.js "${dash_url}app.js" &&
	cmp app.js "$SLIPWAY_ROOT/kubectl-slipway/dashboard/app.js" &&
	test_grep "^Content-Type: text/javascript" headers &&
	curl -sf -o app.css "${dash_url}app.css" &&
	cmp app.css "$SLIPWAY_ROOT/kubectl-slipway/dashboard/app.css"
'

test_expect_success 'the server refuses POST, other methods, a foreign Host and paths outside its API' '
	port=${dash_url#http://127.0.0.1:} && port=${port%/} &&
	test "$(status_of -X POST -d x=1 "$dash_url")" = 405 &&
	test "$(status_of -X POST "${dash_url}api/events")" = 405 &&
	test "$(status_of -X PUT "${dash_url}app.js")" = 405 &&
	test "$(status_of -X DELETE "$dash_url")" = 405 &&
	curl -s -D headers -o /dev/null -X POST "$dash_url" && test_grep "^Allow: GET" headers &&
	test "$(status_of -H "Host: rebind.example:$port" "$dash_url")" = 421 &&
	test "$(status_of -H "Host: rebind.example:$port" "${dash_url}api/events")" = 421 &&
	test "$(status_of -H "Host: 127.0.0.1:1$port" "$dash_url")" = 421 &&
	test "$(status_of -H "Host: localhost:$port" "$dash_url")" = 200 &&
	for p in api/v1/namespaces api/v1/secrets "apis/slipway.dev/v1alpha1/pipelineruns" \
		api/events/x "api/events/../../api/v1/secrets" index.htm .git/config; do
		test "$(status_of --path-as-is "$dash_url$p")" = 404 || return 1
	done
'

test_expect_success 'the event stream starts with a snapshot of both Remote kinds' '
	{ curl -s -N --max-time 3 "${dash_url}api/events" >events; test $? = 28; } &&
	head -1 events >first && echo "event: snapshot" >expect && test_cmp expect first &&
	sed -n "2s/^data: //p" events >snapshot.json &&
	python3 -c "
import json
s = json.load(open(\"snapshot.json\"))
assert s[\"namespace\"] == \"$ns\", s[\"namespace\"]
k = {x[\"kind\"]: x for x in s[\"kinds\"]}
assert [o[\"metadata\"][\"name\"] for o in k[\"remotes\"][\"items\"]] == [\"web\"], k[\"remotes\"]
assert [o[\"metadata\"][\"name\"] for o in k[\"gitkube-remotes\"][\"items\"]] == [\"legacy\"]
assert k[\"pipelineruns\"][\"status\"][\"state\"] == \"ok\", k[\"pipelineruns\"]
assert all(\"managedFields\" not in o[\"metadata\"] for o in k[\"remotes\"][\"items\"])
"
'

browser_ok=
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
	if [ -x "$venv/bin/python" ] || { python3 -m venv "$venv" &&
		"$venv/bin/pip" install -q --disable-pip-version-check "selenium==$selenium_version"; } >venv.log 2>&1; then
		"$venv/bin/python" -c "import selenium" 2>/dev/null && browser_ok=yes
	fi
	[ -n "$browser_ok" ] || say "cannot install Selenium $selenium_version into $venv: $(tail -1 venv.log)"
else
	say "Debian's chromium and chromium-driver are not installed (tests/env/deps.sh installs them)"
fi

browser_test() {
	if [ -n "$browser_ok" ]; then
		test_expect_success "$@"
	else
		test_skip "$1" "no headless Chromium with Selenium (see above)"
	fi
}

browser_test 'in Chromium, every Remote of both kinds is listed with its clone URL' '
	browse "$dash_url" remotes "$ns/web=${ext}$ns/web.git" "$ns/legacy=${ext}$ns/legacy.git"
'

# push_bg: git push of src to Remote web in the background (exit status in push.rc)
push_bg() {
	{ git -C src push "$GITD_URL/$ns/web.git" HEAD:main >push.out 2>&1; echo $? >push.rc; } &
}

browser_test 'in Chromium, a push made while the page is open shows Running, then Succeeded, with no reload' '
	rm -f page-ready running released push.rc && touch hold &&
	test_when_finished "rm -f hold" &&
	{ browse "$dash_url" live "$ns/web" "$TRASH_DIRECTORY" >live.out 2>&1; echo $? >live.rc; } &
	test_wait_for 60 test -f page-ready &&
	test_commit src live.txt "pushed while the page is open" &&
	push_bg &&
	test_wait_for 60 test -s running &&
	run=$(cat running) &&
	test "$(kubectl -n $ns get plr $run -o jsonpath={.status.conditions[0].status})" = Unknown &&
	touch released && rm -f hold &&
	test_wait_for 60 test -f live.rc &&
	{ test "$(cat live.rc)" = 0 || { cat live.out; false; }; } &&
	test_wait_for 30 test -f push.rc && test "$(cat push.rc)" = 0 &&
	kubectl -n $ns wait --for=condition=Succeeded plr/$run --timeout=10s &&
	echo $run >succeeded-run
'

browser_test 'in Chromium, the timeline has one bar per stage of the run, in order, the queue included' '
	run=$(cat succeeded-run) &&
	kubectl -n $ns get plr $run -o jsonpath="{.status.stages[*].name}" >names &&
	test_grep "^receive queue " names &&
	# the build summary gives way to per-container bars when there are any
	if grep -q " build:" names; then
		stages=$(tr " " "\n" <names | grep -vx build | paste -sd, -)
	else
		stages=$(tr " " , <names)
	fi &&
	browse "$dash_url" bars "$run" "$stages"
'

browser_test 'in Chromium, a run that built two containers shows a bar for each build, not the build summary' '
	kubectl -n $ns create -f - >/dev/null <<-EOF_ &&
	{"apiVersion":"slipway.dev/v1alpha1","kind":"PipelineRun",
	 "metadata":{"name":"web-two-builds","labels":{"slipway.dev/remote":"web"}},
	 "spec":{"remote":"web","ref":"refs/heads/main","after":"1111111111111111111111111111111111111111",
	         "before":"0000000000000000000000000000000000000000"}}
	EOF_
	test_when_finished "kubectl -n $ns delete plr web-two-builds --ignore-not-found >/dev/null" &&
	t0=2026-01-01T12:00 &&
	kubectl -n $ns patch plr web-two-builds --subresource=status --type=merge -p "{\"status\":{
	  \"startTime\":\"$t0:00Z\",\"completionTime\":\"$t0:09Z\",
	  \"conditions\":[{\"type\":\"Succeeded\",\"status\":\"True\",\"reason\":\"Succeeded\",
	    \"message\":\"deployed\",\"lastTransitionTime\":\"$t0:09Z\"}],
	  \"stages\":[
	    {\"name\":\"receive\",\"phase\":\"Succeeded\",\"startTime\":\"$t0:00Z\",\"completionTime\":\"$t0:00Z\"},
	    {\"name\":\"queue\",\"phase\":\"Succeeded\",\"startTime\":\"$t0:00Z\",\"completionTime\":\"$t0:01Z\"},
	    {\"name\":\"build\",\"phase\":\"Succeeded\",\"startTime\":\"$t0:01Z\",\"completionTime\":\"$t0:07Z\"},
	    {\"name\":\"build:web/app\",\"phase\":\"Succeeded\",\"startTime\":\"$t0:01Z\",\"completionTime\":\"$t0:04Z\"},
	    {\"name\":\"build:web/worker\",\"phase\":\"Succeeded\",\"startTime\":\"$t0:04Z\",\"completionTime\":\"$t0:07Z\"},
	    {\"name\":\"deploy\",\"phase\":\"Succeeded\",\"startTime\":\"$t0:07Z\",\"completionTime\":\"$t0:09Z\"}]}}" >/dev/null &&
	browse "$dash_url" bars web-two-builds "receive,queue,build:web/app,build:web/worker,deploy"
'

browser_test 'in Chromium, a failed run shows its reason and message highlighted' '
	rm -f push.rc && touch fail && test_when_finished "rm -f fail" &&
	test_commit src fail.txt "a push whose hook fails" &&
	push_bg && test_wait_for 60 test -f push.rc &&
	run=$(kubectl -n $ns get plr -l slipway.dev/commit=$(git -C src rev-parse HEAD) -o jsonpath={.items[0].metadata.name}) &&
	test -n "$run" &&
	kubectl -n $ns wait --for=condition=Succeeded=false plr/$run --timeout=30s &&
	reason=$(kubectl -n $ns get plr $run -o jsonpath={.status.conditions[0].reason}) &&
	test "$reason" = HookFailed &&
	kubectl -n $ns get plr $run -o jsonpath={.status.conditions[0].message} >message &&
	test_grep "pre-build" message &&
	browse "$dash_url" failure "$ns/web/$run" HookFailed "$(cat message)" &&
	echo $run >failed-run
'

browser_test 'screenshots at desktop (1280x800) and phone (375x740) widths' '
	shots=${DASHBOARD_SCREENSHOTS:-$TRASH_DIRECTORY} &&
	run=$(cat failed-run) &&
	browse "$dash_url" screenshot "$shots/dashboard-desktop.png" 1280 800 "#/" ".card .url" &&
	browse "$dash_url" screenshot "$shots/dashboard-phone.png" 375 740 "#/" ".card .url" &&
	browse "$dash_url" screenshot "$shots/dashboard-run.png" 1280 800 "#/$ns/web/$run" ".run-facts" &&
	for s in desktop:1280x800 phone:375x740 run:1280x800; do
		python3 -c "
import struct, sys
b = open(sys.argv[1], \"rb\").read(24)
assert b[:8] == b\"\\x89PNG\\r\\n\\x1a\\n\", b[:8]
print(\"%dx%d\" % struct.unpack(\">II\", b[16:24]))" "$shots/dashboard-${s%%:*}.png" >size &&
		test "$(cat size)" = "${s#*:}" || return 1
	done
'

test_expect_success 'a user who cannot list PipelineRuns: the stream says forbidden' '
	kubectl -n $ns create serviceaccount nobody &&
	kubectl -n $ns create role remote-reader --verb=list,watch --resource=remotes.slipway.dev,remotes.gitkube.sh &&
	kubectl -n $ns create rolebinding nobody-reads-remotes --role=remote-reader --serviceaccount=$ns:nobody &&
	server=$(kubectl config view --raw --minify --flatten -o jsonpath="{.clusters[0].cluster.server}") &&
	ca=$(kubectl config view --raw --minify --flatten -o jsonpath="{.clusters[0].cluster.certificate-authority-data}") &&
	token=$(kubectl -n $ns create token nobody --duration=1h) &&
	cat >nobody.kubeconfig <<-EOF_ &&
	apiVersion: v1
	kind: Config
	clusters: [{name: test, cluster: {server: "$server", certificate-authority-data: "$ca"}}]
	users: [{name: nobody, user: {token: "$token"}}]
	contexts: [{name: nobody, context: {cluster: test, user: nobody, namespace: $ns}}]
	current-context: nobody
	EOF_
	test_must_fail kubectl --kubeconfig nobody.kubeconfig get plr 2>err &&
	test_grep "Forbidden" err &&
	dash_start nobody --kubeconfig nobody.kubeconfig &&
	{ curl -s -N --max-time 3 "${nobody_url}api/events" >events; test $? = 28; } &&
	sed -n "2s/^data: //p" events >snapshot.json &&
	python3 -c "
import json
k = {x[\"kind\"]: x for x in json.load(open(\"snapshot.json\"))[\"kinds\"]}
assert k[\"pipelineruns\"][\"status\"][\"state\"] == \"forbidden\", k[\"pipelineruns\"]
assert \"cannot list resource\" in k[\"pipelineruns\"][\"status\"][\"message\"], k[\"pipelineruns\"]
assert k[\"pipelineruns\"][\"items\"] == []
assert k[\"remotes\"][\"status\"][\"state\"] == \"ok\"
" &&
	test_grep "watching slipway.dev/v1alpha1/pipelineruns: .*forbidden" nobody.err
'

browser_test 'in Chromium, that user sees "Forbidden", not an empty list of runs' '
	browse "$nobody_url" forbidden pipelineruns >msg &&
	test_grep "Forbidden: you may not list pipelineruns.slipway.dev in namespace $ns" msg
'

# snapshot_state URL KIND STATE: the event stream's first snapshot has KIND in STATE
snapshot_state() {
	curl -s -N --max-time 1 "${1}api/events" | sed -n "2s/^data: //p" >state.json
	python3 -c "
import json, sys
k = {x[\"kind\"]: x for x in json.load(open(\"state.json\"))[\"kinds\"]}
sys.exit(k[sys.argv[1]][\"status\"][\"state\"] != sys.argv[2])" "$2" "$3"
}

test_expect_success 'a RoleBinding added while it runs takes effect without a restart' '
	kubectl -n $ns create role run-reader --verb=list,watch --resource=pipelineruns.slipway.dev &&
	kubectl -n $ns create rolebinding nobody-reads-runs --role=run-reader --serviceaccount=$ns:nobody &&
	test_wait_for 40 snapshot_state "$nobody_url" pipelineruns ok
'

test_expect_success 'Ctrl-C (SIGINT) and SIGTERM stop the dashboard cleanly (exit 0), with open event streams' '
	{ curl -s -N "${dash_url}api/events" >/dev/null & } &&
	test_wait_for 10 test "$(status_of "$dash_url")" = 200 &&
	kill -INT $dash_pid && wait $dash_pid && dash_pid= &&
	test_grep "^Stopped\.$" dash.out &&
	test_must_fail curl -s "$dash_url" &&
	kill -TERM $nobody_pid && wait $nobody_pid && nobody_pid= &&
	test_grep "^Stopped\.$" nobody.out
'

test_expect_success '--port out of range and a stray argument are usage errors' '
	test_expect_code 2 kubectl slipway dashboard --port 70000 2>err && test_grep "invalid --port" err &&
	test_expect_code 2 kubectl slipway dashboard now 2>err && test_grep "takes no arguments" err &&
	test_expect_code 2 kubectl slipway -n x dashboard -A 2>err && test_grep "exclude each other" err &&
	test_expect_code 1 kubectl slipway dashboard --no-open --address not-an-ip 2>err &&
	test_grep "not an IPv4 or IPv6 address" err
'

test_expect_success 'clean up' '
	kubectl delete namespace $ns --wait=false >/dev/null
'

test_done
