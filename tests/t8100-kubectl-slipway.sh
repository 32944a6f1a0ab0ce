#!/usr/bin/env bash
test_description='kubectl-slipway: every command as a real kubectl plugin against the real API server'
. "$(dirname "$0")/test-lib.sh"
test_require_env

ns=plugin-e2e
# kubectl finds the plugin on PATH (test-lib puts build/bin first) and runs it
ks() { kubectl slipway -n $ns "$@"; }
now() { date -u +%Y-%m-%dT%H:%M:%SZ; }

# yaml_equals_json YAML JSON: the YAML file reads (with PyYAML, a reader
# independent of lib/yamljson) as the same value as the JSON file, and every
# mapping in it has its keys sorted. The two files come from two requests:
# a list's resourceVersion (kind List, or a typed one such as RemoteList)
# is the cluster's at each, and moves with any write (the node's lease and
# status among them), so it is left out; its items' are compared.
yaml_equals_json() {
	python3 -c "
import json, sys, yaml
y = yaml.safe_load(open(sys.argv[1]))
j = json.load(open(sys.argv[2]))
for v in (y, j):
    if isinstance(v, dict) and str(v.get('kind', '')).endswith('List'):
        v.get('metadata', {}).pop('resourceVersion', None)
assert y == j, (y, j)
def sorted_keys(v):
    if isinstance(v, dict):
        assert list(v) == sorted(v), list(v)
        for x in v.values(): sorted_keys(x)
    elif isinstance(v, list):
        for x in v: sorted_keys(x)
sorted_keys(y)
" "$1" "$2"
}

# make_run NAME REMOTE COMMIT: a PipelineRun as gitd creates it on push
make_run() {
	kubectl -n $ns create -f - <<-EOF_ >/dev/null
	{"apiVersion":"slipway.dev/v1alpha1","kind":"PipelineRun",
	 "metadata":{"name":"$1","labels":{"slipway.dev/remote":"$2"}},
	 "spec":{"remote":"$2","ref":"refs/heads/main","after":"$3",
	         "before":"0000000000000000000000000000000000000000"}}
	EOF_
}

# set_succeeded RUN STATUS [REASON [MESSAGE]]: what gitd writes when a run ends
set_succeeded() {
	kubectl -n $ns patch pipelinerun "$1" --subresource=status --type=merge -p \
		"{\"status\":{\"completionTime\":\"$(now)\",\"conditions\":[{\"type\":\"Succeeded\",
		  \"status\":\"$2\",\"reason\":\"${3:-Succeeded}\",\"message\":\"${4:-}\",
		  \"lastTransitionTime\":\"$(now)\"}]}}" >/dev/null
}

# set_succeeded_later SECONDS RUN STATUS ...: the same from a background job
# (a function, so `&` backgrounds this call only)
set_succeeded_later() {
	sleep "$1"
	shift
	set_succeeded "$@"
}

test_expect_success 'set up a namespace' '
	kubectl delete namespace $ns --ignore-not-found --wait --timeout=90s &&
	kubectl create namespace $ns
'

test_expect_success 'kubectl finds the plugin on PATH and runs it' '
	kubectl plugin list 2>/dev/null >plugins &&
	test_grep "/kubectl-slipway$" plugins &&
	kubectl slipway --version >out &&
	test_grep "^kubectl-slipway [0-9]+\.[0-9]+\.[0-9]+$" out
'

test_expect_success '--help documents every command and the exit codes' '
	kubectl slipway --help >out &&
	for c in "remote create" "remote list" "remote url" "remote delete" "key add" \
		"key list" "key rm" "runs" "logs" "wait" "releases" "rollback" "config set" \
		"config unset" "config get" "dashboard" "webhooks deliveries"; do
		test_grep "^  $c" out || return 1
	done &&
	test_grep "^  2  usage error; wait: the timeout passed" out &&
	test_grep "^  3  the Remote, PipelineRun, key, release or config key does not exist" out
'

test_expect_success 'every command and group has its own --help (exit 0)' '
	for c in "remote" "key" "remote create" "remote list" "remote url" "remote delete" \
		"key add" "key list" "key rm" "runs" "logs" "wait" "dashboard"; do
		kubectl slipway $c --help >out &&
		test_grep "^usage: kubectl slipway $c" out || return 1
	done &&
	kubectl slipway wait -h >out && test_grep "2 timed out" out
'

test_expect_success 'usage errors exit 2: no command, unknown command, bad flag, -o xml' '
	test_expect_code 2 kubectl slipway 2>err && test_grep "missing command" err &&
	test_expect_code 2 kubectl slipway frobnicate 2>err && test_grep "unknown command \"frobnicate\"" err &&
	test_expect_code 2 kubectl slipway remote 2>err && test_grep "missing subcommand" err &&
	test_expect_code 2 ks runs --frob 2>err && test_grep "unknown flag: --frob" err &&
	test_expect_code 2 ks remote list -o xml 2>err &&
	test_grep "unknown output format \"xml\" \(json and yaml are supported\)" err &&
	test_expect_code 2 ks wait 2>err && test_grep "missing RUN" err &&
	test_expect_code 2 ks wait r --timeout soon 2>err && test_grep "invalid --timeout" err
'

test_expect_success 'remote create makes a Remote with deployments, containers and registry' '
	ks remote create web --deployment web --container app=src/app --dockerfile Dockerfile.prod \
		--build-arg MODE=prod --container side --deployment worker --container job=worker \
		--registry registry.example.com/team --insecure-registry --branch main --branch release \
		>out &&
	test "$(cat out)" = "remote.slipway.dev/web created" &&
	kubectl -n $ns get remotes.slipway.dev web -o json >obj &&
	python3 -c "
import json, sys
s = json.load(open(\"obj\"))[\"spec\"]
d = s[\"deployments\"]
assert [x[\"name\"] for x in d] == [\"web\", \"worker\"], d
assert d[0][\"containers\"][0] == {\"name\": \"app\", \"path\": \"src/app\", \"dockerfile\": \"Dockerfile.prod\", \"buildArgs\": [{\"name\": \"MODE\", \"value\": \"prod\"}]}, d
assert d[0][\"containers\"][1][\"path\"] == \".\", d
assert d[1][\"containers\"] == [{\"name\": \"job\", \"path\": \"worker\", \"dockerfile\": \"Dockerfile\"}], d
assert s[\"registry\"] == {\"url\": \"registry.example.com/team\", \"insecure\": True}, s
assert s[\"branches\"] == [\"main\", \"release\"], s
"
'

test_expect_success 'remote create of an existing name fails (exit 1) and changes nothing' '
	rv=$(kubectl -n $ns get remotes.slipway.dev web -o jsonpath={.metadata.resourceVersion}) &&
	test_expect_code 1 ks remote create web --deployment x --container x 2>err &&
	test "$(cat err)" = "kubectl-slipway: remote $ns/web already exists" &&
	test "$(kubectl -n $ns get remotes.slipway.dev web -o jsonpath={.metadata.resourceVersion})" = "$rv"
'

test_expect_success 'remote create without a container is a usage error and creates nothing' '
	test_expect_code 2 ks remote create lonely --deployment lonely 2>err &&
	test_grep "deployment \"lonely\" has no --container" err &&
	test_must_fail kubectl -n $ns get remotes.slipway.dev lonely 2>/dev/null
'

test_expect_success 'remote create refuses what the API server refuses (exit 1, its message)' '
	test_expect_code 1 ks remote create bad --deployment Bad_Name --container app 2>err &&
	test_grep "remote $ns/bad: .*Bad_Name" err
'

test_expect_success 'remote create refuses what gitd would, naming the field (exit 2), and creates nothing' '
	test_expect_code 2 ks remote create twice --deployment web --container app --container app=other 2>err &&
	test_grep "spec[.]deployments\\[0\\][.]containers\\[1\\][.]name: \"app\" is also containers\\[0\\]" err &&
	test_must_fail kubectl -n $ns get remotes.slipway.dev twice 2>/dev/null
'

test_expect_success 'remote list shows the Remote before gitd has seen it' '
	ks remote list >out &&
	head -1 out >header &&
	test_grep "^NAME +URL +READY +KEYS +LAST RUN +AGE$" header &&
	test_grep "^web +<none> +<none> +0 +<none> +[0-9]+s$" out
'

test_expect_success 'remote url without a URL from gitd fails (exit 1) and says why' '
	test_expect_code 1 ks remote url web >out 2>err &&
	test ! -s out &&
	test_grep "remote $ns/web has no URL yet: gitd has not set status.remoteUrl" err
'

test_expect_success 'remote url prints status.remoteUrl once gitd (simulated) sets it' '
	kubectl -n $ns patch remotes.slipway.dev web --subresource=status --type=merge -p \
		"{\"status\":{\"remoteUrl\":\"ssh://git@gitd.example:2222/$ns/web.git\",
		  \"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"Serving\",
		  \"message\":\"\",\"lastTransitionTime\":\"$(now)\"}],
		  \"lastRun\":{\"name\":\"web-0\",\"succeeded\":\"True\"}}}" >/dev/null &&
	ks remote url web >out &&
	test "$(cat out)" = "ssh://git@gitd.example:2222/$ns/web.git" &&
	ks remote list >out &&
	test_grep "^web +ssh://git@gitd.example:2222/$ns/web.git +True +0 +web-0 +[0-9]+s$" out
'

test_expect_success 'remote list -o json and remote url -o json parse as JSON' '
	ks remote list -o json >out.json &&
	python3 -c "import json; l = json.load(open(\"out.json\")); assert [i[\"metadata\"][\"name\"] for i in l[\"items\"]] == [\"web\"]" &&
	ks -o json remote url web >url.json &&
	python3 -c "import json; assert json.load(open(\"url.json\"))[\"remoteUrl\"].endswith(\"/web.git\")"
'

test_expect_success 'remote list -o yaml is the same List as -o json, keys sorted as kubectl prints' '
	ks remote list -o json >out.json &&
	ks remote list -o yaml >out.yaml &&
	test_grep "^apiVersion: slipway.dev/v1alpha1$" out.yaml &&
	test_grep "^items:$" out.yaml &&
	test_grep "^- apiVersion: slipway.dev/v1alpha1$" out.yaml &&
	test_grep "^kind: RemoteList$" out.yaml &&
	test_grep "^    creationTimestamp: \"[0-9T:-]+Z\"$" out.yaml &&
	yaml_equals_json out.yaml out.json &&
	ks -o yaml remote url web >url.yaml &&
	test_grep "^remoteUrl: ssh://git@gitd.example:2222/$ns/web.git$" url.yaml
'

test_expect_success 'an unknown remote is exit 3 with a message, for every command taking one' '
	test_expect_code 3 ks remote url nope 2>err &&
	test "$(cat err)" = "kubectl-slipway: remote $ns/nope not found" &&
	test_expect_code 3 ks key list nope 2>err && test_grep "remote $ns/nope not found" err &&
	test_expect_code 3 ks key rm nope SHA256:x 2>err && test_grep "remote $ns/nope not found" err &&
	test_expect_code 3 ks runs nope 2>err && test_grep "remote $ns/nope not found" err &&
	test_expect_code 3 ks logs --latest nope 2>err && test_grep "remote $ns/nope not found" err &&
	test_expect_code 3 ks remote delete nope 2>err && test_grep "remote $ns/nope not found" err
'

test_expect_success 'set up keys with ssh-keygen' '
	ssh-keygen -q -t ed25519 -N "" -C "alice@laptop" -f alice &&
	ssh-keygen -q -t ecdsa -N "" -C "bob ci key" -f bob
'

test_expect_success 'key add authorizes a public key file; its fingerprint is ssh-keygen -l'"'"'s' '
	fp=$(ssh-keygen -lf alice.pub | cut -d" " -f2) &&
	ks key add web alice.pub >out &&
	test "$(cat out)" = "key $fp (alice@laptop) added to remote $ns/web" &&
	kubectl -n $ns get remotes.slipway.dev web -o jsonpath="{.spec.authorizedKeys[*]}" >keys &&
	test "$(cat keys)" = "$(cat alice.pub)"
'

test_expect_success 'key add of a key already there says so and changes nothing (stdin)' '
	fp=$(ssh-keygen -lf alice.pub | cut -d" " -f2) &&
	rv=$(kubectl -n $ns get remotes.slipway.dev web -o jsonpath={.metadata.resourceVersion}) &&
	ks key add web - <alice.pub >out &&
	test "$(cat out)" = "key $fp (alice@laptop) is already authorized on remote $ns/web" &&
	test "$(kubectl -n $ns get remotes.slipway.dev web -o jsonpath={.metadata.resourceVersion})" = "$rv"
'

test_expect_success 'key add refuses a private key with a clear message (exit 1)' '
	test_expect_code 1 ks key add web alice 2>err &&
	test "$(cat err)" = "kubectl-slipway: alice holds a private key; give the public key instead (e.g. alice.pub)" &&
	test_expect_code 1 ks key add web - <bob 2>err &&
	test_grep "stdin holds a private key" err &&
	test "$(kubectl -n $ns get remotes.slipway.dev web -o jsonpath="{.spec.authorizedKeys[*]}")" = "$(cat alice.pub)"
'

test_expect_success 'key add refuses what is not an OpenSSH public key line (exit 1)' '
	printf "# my keys\n\nhello world\n" >junk &&
	test_expect_code 1 ks key add web junk 2>err &&
	test_grep "junk line 3: not an OpenSSH public key: unknown key type \"hello\"" err &&
	test_expect_code 1 ks key add web does-not-exist 2>err &&
	test_grep "cannot open does-not-exist" err
'

test_expect_success 'key list shows each key as ssh-keygen -l does' '
	ks key add web bob.pub >/dev/null &&
	ks key list web >out &&
	test_grep "^FINGERPRINT +TYPE +COMMENT$" out &&
	tail -n +2 out | awk "{print \$1}" >fps &&
	{ ssh-keygen -lf alice.pub | cut -d" " -f2 && ssh-keygen -lf bob.pub | cut -d" " -f2; } >want &&
	test_cmp want fps &&
	test_grep "^SHA256:[^ ]+ +ecdsa-sha2-nistp256 +bob ci key$" out &&
	ks key list web -o json >keys.json &&
	python3 -c "
import json
k = json.load(open(\"keys.json\"))
assert [x[\"type\"] for x in k] == [\"ssh-ed25519\", \"ecdsa-sha2-nistp256\"], k
assert k[1][\"comment\"] == \"bob ci key\", k
" &&
	ks key list web -o yaml >keys.yaml &&
	test_grep "^- comment: bob ci key$" keys.yaml &&
	yaml_equals_json keys.yaml keys.json &&
	ks remote list >out && test_grep "^web .* 2 +web-0 " out
'

test_expect_success 'key rm removes a key by fingerprint; a second rm is exit 3' '
	fp=$(ssh-keygen -lf alice.pub | cut -d" " -f2) &&
	ks key rm web "$fp" >out &&
	test "$(cat out)" = "key $fp removed from remote $ns/web" &&
	test "$(kubectl -n $ns get remotes.slipway.dev web -o jsonpath="{.spec.authorizedKeys[*]}")" = "$(cat bob.pub)" &&
	test_expect_code 3 ks key rm web "$fp" 2>err &&
	test "$(cat err)" = "kubectl-slipway: remote $ns/web has no key $fp"
'

test_expect_success 'key rm takes the fingerprint without its SHA256: prefix' '
	fp=$(ssh-keygen -lf bob.pub | cut -d" " -f2) &&
	ks key rm web "${fp#SHA256:}" >out &&
	test "$(cat out)" = "key $fp removed from remote $ns/web" &&
	ks key list web 2>err >out &&
	test ! -s out && test_grep "No keys on remote $ns/web" err
'

test_expect_success 'runs lists PipelineRuns oldest first, with short ref and commit' '
	test_expect_code 0 ks runs 2>err >out && test_grep "No pipelineruns found" err &&
	make_run web-zz web 1111111111111111111111111111111111111111 &&
	sleep 1.1 &&
	make_run web-aa web 2222222222222222222222222222222222222222 &&
	make_run api-1 api 3333333333333333333333333333333333333333 &&
	kubectl -n $ns patch pipelinerun web-zz --subresource=status --type=merge -p \
		"{\"status\":{\"startTime\":\"2024-05-01T12:00:00Z\",\"completionTime\":\"2024-05-01T12:02:05Z\",
		  \"conditions\":[{\"type\":\"Succeeded\",\"status\":\"False\",\"reason\":\"BuildFailed\",
		  \"message\":\"buildah bud exited 1\",\"lastTransitionTime\":\"2024-05-01T12:02:05Z\"}],
		  \"stages\":[{\"name\":\"receive\",\"phase\":\"Succeeded\",\"startTime\":\"2024-05-01T12:00:00Z\",\"completionTime\":\"2024-05-01T12:00:01Z\"},
		              {\"name\":\"build\",\"phase\":\"Failed\",\"startTime\":\"2024-05-01T12:00:01Z\",\"completionTime\":\"2024-05-01T12:02:05Z\",\"message\":\"buildah bud exited 1\"},
		              {\"name\":\"deploy\",\"phase\":\"Skipped\"}],
		  \"logTail\":\"STEP 1/2: FROM scratch\nError: COPY: no such file\n\"}}" >/dev/null &&
	ks runs >out &&
	test_grep "^NAME +REMOTE +REF +COMMIT +SUCCEEDED +REASON +DURATION +AGE$" out &&
	tail -n +2 out | awk "{print \$1}" >names &&
	test "$(sed -n 1p names)" = web-zz &&
	test "$(wc -l <names)" = 3 &&
	test_grep "^web-zz +web +main +1111111 +False +BuildFailed +2m5s +[0-9]+s$" out &&
	test_grep "^web-aa +web +main +2222222 +<none> +<none> +<none> +[0-9]+s$" out
'

test_expect_success 'runs REMOTE shows only that Remote'"'"'s runs; -o json parses' '
	ks runs web >out &&
	tail -n +2 out | awk "{print \$1}" >names &&
	printf "web-zz\nweb-aa\n" >want &&
	test_cmp want names &&
	ks runs web -o json >runs.json &&
	python3 -c "
import json
l = json.load(open(\"runs.json\"))
assert [i[\"metadata\"][\"name\"] for i in l[\"items\"]] == [\"web-zz\", \"web-aa\"], l
" &&
	ks runs web -o yaml >runs.yaml &&
	test_grep "^kind: List$" runs.yaml &&
	yaml_equals_json runs.yaml runs.json
'

test_expect_success 'logs shows the outcome, the stages with phases and durations, then the log tail' '
	ks logs web-zz >out &&
	test_grep "^Succeeded: +False \(BuildFailed\): buildah bud exited 1$" out &&
	test_grep "^Duration: +2m5s$" out &&
	test_grep "^STAGE +PHASE +DURATION +MESSAGE$" out &&
	test_grep "^receive +Succeeded +1s +<none>$" out &&
	test_grep "^build +Failed +2m4s +buildah bud exited 1$" out &&
	test_grep "^deploy +Skipped +<none> +<none>$" out &&
	test "$(tail -n 2 out)" = "$(printf "STEP 1/2: FROM scratch\nError: COPY: no such file")" &&
	ks logs web-zz -o json >run.json &&
	python3 -c "import json; assert json.load(open(\"run.json\"))[\"status\"][\"logTail\"].startswith(\"STEP\")" &&
	ks logs web-zz --output=yaml >run.yaml &&
	test_grep "^  logTail: \|$" run.yaml &&
	test_grep "^    Error: COPY: no such file$" run.yaml &&
	yaml_equals_json run.yaml run.json &&
	test_expect_code 3 ks logs nope 2>err &&
	test "$(cat err)" = "kubectl-slipway: pipelinerun $ns/nope not found"
'

test_expect_success 'logs --latest REMOTE shows the newest run of the Remote' '
	ks logs --latest web >out &&
	test_grep "^PipelineRun: web-aa$" out
'

test_expect_success 'wait exits 0 when the run succeeds while it waits' '
	set_succeeded_later 1 web-aa True &
	bg=$!
	ks wait web-aa --timeout 60s >out &&
	wait $bg &&
	test "$(cat out)" = "pipelinerun.slipway.dev/web-aa succeeded"
'

test_expect_success 'wait exits 1 when the run fails, printing reason and message' '
	make_run web-fail web 4444444444444444444444444444444444444444
	set_succeeded_later 1 web-fail False DeployFailed "rollout of web timed out" &
	bg=$!
	kubectl -n $ns get pipelinerun web-fail >/dev/null &&
	test_expect_code 1 ks wait --latest web --timeout 60s 2>err &&
	wait $bg &&
	test "$(cat err)" = "kubectl-slipway: pipelinerun $ns/web-fail failed: DeployFailed: rollout of web timed out"
'

test_expect_success 'wait on a run that already finished returns at once' '
	ks wait web-aa >out && test_grep "web-aa succeeded" out &&
	test_expect_code 1 ks wait web-zz 2>err && test_grep "failed: BuildFailed" err
'

test_expect_success 'wait exits 2 when the timeout passes first' '
	make_run web-slow web 5555555555555555555555555555555555555555 &&
	start=$SECONDS &&
	test_expect_code 2 ks wait web-slow --timeout 2s 2>err &&
	test $((SECONDS - start)) -lt 10 &&
	test "$(cat err)" = "kubectl-slipway: timed out after 2s waiting for pipelinerun $ns/web-slow"
'

test_expect_success 'wait on an unknown run is exit 3' '
	test_expect_code 3 ks wait nope --timeout 5s 2>err &&
	test "$(cat err)" = "kubectl-slipway: pipelinerun $ns/nope not found"
'

test_expect_success 'wait -o json and -o yaml print the finished run' '
	ks wait web-aa -o json >run.json &&
	python3 -c "import json; r = json.load(open(\"run.json\")); assert r[\"metadata\"][\"name\"] == \"web-aa\"" &&
	ks wait web-aa -oyaml >run.yaml &&
	test_grep "^  name: web-aa$" run.yaml &&
	yaml_equals_json run.yaml run.json
'

test_expect_success 'wait polls when RBAC allows get and list but not watch' '
	kubectl -n $ns create serviceaccount waiter >/dev/null &&
	kubectl -n $ns create role run-reader --verb=get,list \
		--resource=pipelineruns.slipway.dev >/dev/null &&
	kubectl -n $ns create rolebinding waiter --role=run-reader \
		--serviceaccount=$ns:waiter >/dev/null &&
	cp "$KUBECONFIG" waiter.kubeconfig &&
	token=$(kubectl -n $ns create token waiter) &&
	KUBECONFIG=waiter.kubeconfig kubectl config set-credentials waiter --token="$token" >/dev/null &&
	KUBECONFIG=waiter.kubeconfig kubectl config set-context --current --user=waiter >/dev/null &&
	test_expect_code 1 kubectl slipway --kubeconfig waiter.kubeconfig -n $ns remote list 2>err &&
	test_grep "forbidden" err &&
	make_run web-polled web 6666666666666666666666666666666666666666
	set_succeeded_later 1 web-polled True &
	bg=$!
	kubectl -n $ns get pipelinerun web-polled >/dev/null &&
	kubectl slipway --kubeconfig waiter.kubeconfig -n $ns wait web-polled --timeout 60s >out 2>err &&
	wait $bg &&
	test_grep "watching pipelinerun $ns/web-polled failed .*; polling instead" err &&
	test "$(cat out)" = "pipelinerun.slipway.dev/web-polled succeeded"
'

test_expect_success 'remote delete deletes the Remote; then it is not found' '
	ks remote delete web >out &&
	test "$(cat out)" = "remote.slipway.dev/web deleted" &&
	test_must_fail kubectl -n $ns get remotes.slipway.dev web 2>/dev/null &&
	test_expect_code 3 ks remote url web 2>err
'

test_expect_success 'the global flags work in kubectl'"'"'s spellings and places' '
	ks remote create g1 --deployment g1 --container app >/dev/null &&
	kubectl slipway remote list --namespace=$ns >out && test_grep "^g1 " out &&
	kubectl slipway remote list -n$ns --kubeconfig "$KUBECONFIG" >out && test_grep "^g1 " out &&
	ctx=$(kubectl config current-context) &&
	kubectl slipway --context "$ctx" remote list -n $ns >out && test_grep "^g1 " out &&
	test_expect_code 1 kubectl slipway --context no-such-context remote list 2>err &&
	test_grep "no-such-context" err
'

test_expect_success 'clean up' '
	kubectl delete namespace $ns --wait=false >/dev/null
'

test_done
