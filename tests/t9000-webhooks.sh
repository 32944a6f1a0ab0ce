#!/usr/bin/env bash
test_description='git host integration, inbound: a Remote with spec.upstream deploys
on signed push webhooks (GitHub, GitLab) fetched from a real HTTPS git server
(git http-backend behind lighttpd, with a CA made here), refuses and counts
bad ones, refuses a fetched pack holding an object over --max-object-size,
and polls an SSH upstream served by gitd itself'
. "$(dirname "$0")/test-lib.sh"
test_require_env
test_require_node
. "$SLIPWAY_ROOT/tests/lib-gitd.sh"
command -v buildah >/dev/null || test_skip_all "no buildah (tests/env/deps.sh installs it)"
command -v lighttpd >/dev/null || test_skip_all "no lighttpd (tests/env/deps.sh installs it)"
[ -x /bin/busybox ] || test_skip_all "no /bin/busybox (Debian busybox-static)"
[ "$(id -u)" = 0 ] || test_skip_all "buildah with chroot isolation needs root here"

ns=webhooks-e2e
secret=hook-secret-$RANDOM$RANDOM
token=token-$RANDOM$RANDOM

lighttpd_pid=
stop_all() {
	[ -z "$lighttpd_pid" ] || kill "$lighttpd_pid" 2>/dev/null
	gitd_stop
}
trap stop_all EXIT

# hook SENDER PATH BODY-FILE DELIVERY [SECRET]: POSTs BODY-FILE to gitd's
# webhook listener as SENDER (github, gitlab, gitea) would, signed with
# SECRET (default the Remote's) by each host's documented scheme; prints the
# HTTP status.
hook() {
	python3 - "$@" <<-'EOF_'
	import hashlib, hmac, os, sys, urllib.request, urllib.error
	sender, path, body_file, delivery = sys.argv[1:5]
	key = (sys.argv[5] if len(sys.argv) > 5 else os.environ["secret"]).encode()
	body = open(body_file, "rb").read()
	mac = hmac.new(key, body, hashlib.sha256).hexdigest()
	h = {"Content-Type": "application/json"}
	if sender == "github":
	    h.update({"X-GitHub-Event": os.environ.get("event", "push"), "X-GitHub-Delivery": delivery,
	              "X-Hub-Signature-256": "sha256=" + mac, "User-Agent": "GitHub-Hookshot/0"})
	elif sender == "gitlab":
	    h.update({"X-Gitlab-Event": "Push Hook", "X-Gitlab-Event-UUID": delivery,
	              "X-Gitlab-Token": key.decode()})
	else:
	    h.update({"X-Gitea-Event": "push", "X-Gitea-Delivery": delivery, "X-Gitea-Signature": mac})
	req = urllib.request.Request(os.environ["HOOKS"] + path, data=body, headers=h, method="POST")
	try:
	    print(urllib.request.urlopen(req, timeout=60).status)
	except urllib.error.HTTPError as e:
	    print(e.code)
	EOF_
}

# github_push REF BEFORE AFTER SENDER: a push payload as GitHub documents it
# (docs.github.com, "Webhook events and payloads", push); Gitea and Forgejo
# send the same fields (docs.gitea.com, "Webhooks").
github_push() {
	cat <<-EOF_
	{"ref":"$1","before":"$2","after":"$3","created":false,"deleted":false,"forced":false,
	 "repository":{"id":1,"name":"web","full_name":"team/web","clone_url":"$UPSTREAM_URL"},
	 "pusher":{"name":"$4","email":"$4@example.com"},
	 "sender":{"login":"$4","id":583231,"type":"User"},
	 "head_commit":{"id":"$3","message":"change","timestamp":"2026-01-01T00:00:00Z"},
	 "commits":[{"id":"$3","message":"change","distinct":true}]}
	EOF_
}

# gitlab_push REF BEFORE AFTER USER: a push payload as GitLab documents it
# (docs.gitlab.com, "Webhook events", push events).
gitlab_push() {
	cat <<-EOF_
	{"object_kind":"push","event_name":"push","before":"$2","after":"$3","ref":"$1",
	 "ref_protected":true,"checkout_sha":"$3","user_id":4,"user_name":"John Smith",
	 "user_username":"$4","user_email":"","project_id":15,
	 "project":{"id":15,"name":"web","path_with_namespace":"team/web","git_http_url":"$UPSTREAM_URL"},
	 "commits":[{"id":"$3","message":"change","title":"change"}],"total_commits_count":1}
	EOF_
}

image_of() {
	kubectl -n $ns get deployment "$1" -o jsonpath='{.spec.template.spec.containers[0].image}'
}

run_of() {
	kubectl -n $ns get pipelineruns -l slipway.dev/commit="$1" -o jsonpath='{.items[0].metadata.name}' 2>/dev/null
}

succeeded() {
	kubectl -n $ns get pipelinerun "$1" \
		-o jsonpath='{.status.conditions[?(@.type=="Succeeded")].status} {.status.conditions[?(@.type=="Succeeded")].reason}'
}

is_succeeded() {
	run=$(run_of "$1") && [ -n "$run" ] && [ "$(succeeded "$run")" = "True Succeeded" ]
}

runs() {
	kubectl -n $ns get pipelineruns -o name | wc -l
}

# counted RESULT: gitd_webhooks_total for RESULT.
counted() {
	curl -sf "$GITD_METRICS/metrics" | sed -n "s/^gitd_webhooks_total{reason=\"$1\"} //p"
}

# breakdown RUN RUN-JSON: where the time from webhook receipt to Succeeded
# went, from gitd.log (milliseconds) and the run's stages (seconds).
breakdown() {
	python3 - "$1" "$2" <<-'EOF_'
	import datetime, json, sys
	def t(s):
	    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
	ev = {}
	for line in open("gitd.log"):
	    e = json.loads(line)
	    if e["event"] in ("webhook_accepted", "upstream_fetched") or \
	       (e["event"] in ("pipeline_created", "pipeline_timing") and e.get("run") == sys.argv[1]):
	        ev[e["event"]] = e
	run = json.load(open(sys.argv[2]))
	st = {s["name"]: t(s["completionTime"]) - t(s["startTime"]) for s in run["status"]["stages"]
	      if s.get("startTime") and s.get("completionTime")}
	acc, fet = t(ev["webhook_accepted"]["time"]), t(ev["upstream_fetched"]["time"])
	cre = t(ev["pipeline_created"]["time"])
	print("after the 202: fetch %d ms (the fetch process %d ms), PipelineRun created "
	      "%d ms later, queue to Succeeded %d ms (stages: queue %.0f s, build %.0f s, deploy %.0f s)" % (
	      (fet - acc) * 1000, ev["upstream_fetched"]["duration_ms"], (cre - fet) * 1000,
	      ev["pipeline_timing"]["run_ms"], st.get("queue", 0), st.get("build", 0), st.get("deploy", 0)))
	EOF_
}

server_ref() {
	git -C "repos/$ns/$1.git" rev-parse --verify -q "$2" || echo none
}

push_upstream() {
	git -C src push -q "$TRASH_DIRECTORY/upstream/web.git" "$@"
}

# The server's name is localhost: libgit2 1.5 matches the host against the
# certificate's DNS names only, not IP addresses.
test_expect_success 'set up a CA, an HTTPS git server (lighttpd + git http-backend) and the namespace' '
	kubectl delete namespace $ns --ignore-not-found --wait --timeout=90s &&
	kubectl create namespace $ns &&
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=slipway test CA" \
		-keyout ca.key -out ca.crt 2>/dev/null &&
	openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null &&
	printf "subjectAltName=DNS:localhost,IP:127.0.0.1\n" >san.ext &&
	openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
		-extfile san.ext -out server.crt 2>/dev/null &&
	mkdir -p upstream www &&
	git init -q --bare -b main upstream/web.git &&
	printf "x-access-token:%s\n" "$token" >htpasswd &&
	https_port=$(free_port) &&
	cat >lighttpd.conf <<-EOF_ &&
	server.modules = ("mod_alias", "mod_setenv", "mod_auth", "mod_authn_file", "mod_cgi", "mod_openssl")
	server.document-root = "$TRASH_DIRECTORY/www"
	server.bind = "127.0.0.1"
	server.port = $https_port
	server.errorlog = "$TRASH_DIRECTORY/lighttpd.log"
	ssl.engine = "enable"
	ssl.pemfile = "$TRASH_DIRECTORY/server.crt"
	ssl.privkey = "$TRASH_DIRECTORY/server.key"
	alias.url = ("/git" => "/usr/lib/git-core/git-http-backend")
	\$HTTP["url"] =~ "^/git" {
		cgi.assign = ("" => "")
		setenv.set-environment = ("GIT_PROJECT_ROOT" => "$TRASH_DIRECTORY/upstream",
		                          "GIT_HTTP_EXPORT_ALL" => "")
		auth.backend = "plain"
		auth.backend.plain.userfile = "$TRASH_DIRECTORY/htpasswd"
		auth.require = ("" => ("method" => "basic", "realm" => "git", "require" => "valid-user"))
	}
	EOF_
	{ lighttpd -D -f lighttpd.conf & } && lighttpd_pid=$! &&
	UPSTREAM_URL="https://localhost:$https_port/git/web.git" &&
	test_wait_for 10 curl -s -o /dev/null --cacert ca.crt "$UPSTREAM_URL/info/refs" &&
	echo "$UPSTREAM_URL" >upstream_url
'
UPSTREAM_URL=$(cat upstream_url 2>/dev/null)

test_expect_success 'the HTTPS server is real: git clones with the token and the CA, not without the token' '
	new_app src &&
	push_upstream main &&
	GIT_SSL_CAINFO=ca.crt git clone -q "https://x-access-token:$token@${UPSTREAM_URL#https://}" probe &&
	test "$(git -C probe rev-parse HEAD)" = "$(git -C src rev-parse HEAD)" &&
	test_must_fail env GIT_SSL_CAINFO=ca.crt GIT_TERMINAL_PROMPT=0 git clone -q "$UPSTREAM_URL" probe2 2>/dev/null
'

test_expect_success 'set up Remote web (upstream over HTTPS) with its Secret and Deployment, and gitd' '
	make_key alice && use_key alice &&
	kubectl apply --server-side --force-conflicts -f "$SLIPWAY_ROOT/manifests/crds/" >/dev/null &&
	kubectl -n $ns create secret generic web-upstream --from-literal=token="$token" \
		--from-file=ca.crt=ca.crt --from-literal=webhook-secret="$secret" >/dev/null &&
	kubectl -n $ns apply -f - >/dev/null <<-EOF_ &&
	{"apiVersion":"slipway.dev/v1alpha1","kind":"Remote","metadata":{"name":"web"},
	 "spec":{"authorizedKeys":["$(cat alice.pub)"],
	  "registry":{"url":"$REGISTRY/e2e","insecure":true},
	  "deployments":[{"name":"web","containers":[{"name":"web","path":"app"}]}],
	  "upstream":{"url":"$UPSTREAM_URL","secretRef":{"name":"web-upstream"}}}}
	EOF_
	kubectl -n $ns apply -f - >/dev/null <<-EOF_ &&
	{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
	 "spec":{"replicas":1,"selector":{"matchLabels":{"app":"web"}},
	  "template":{"metadata":{"labels":{"app":"web"}},
	   "spec":{"terminationGracePeriodSeconds":2,
	    "containers":[{"name":"web","image":"$REGISTRY/placeholder/web:0",
	     "readinessProbe":{"httpGet":{"path":"/","port":8080},"periodSeconds":1},
	     "ports":[{"containerPort":8080}]}]}}}}
	EOF_
	hook_port=$(free_port) && echo "$hook_port" >hook_port &&
	gitd_start_cluster --builder-mode local --builder "$SLIPWAY_ROOT/build/bin/builder" \
		--rollout-timeout 60 --work-dir "$TRASH_DIRECTORY" \
		--webhook-listen "127.0.0.1:$hook_port" --max-object-size 3M &&
	test_wait_for 10 grep -q "\"event\":\"webhook_listening\"" gitd.log &&
	test_wait_for 10 test -d repos/$ns/web.git
'
HOOKS="http://127.0.0.1:$(cat hook_port 2>/dev/null)/hooks"
export HOOKS secret

test_expect_success 'a ping answers 200 and runs nothing' '
	echo "{\"zen\":\"Design for failure.\",\"hook_id\":1}" >ping.json &&
	test "$(event=ping hook github /$ns/web ping.json ping-1)" = 200 &&
	test "$(runs)" = 0
'

test_expect_success 'a signed GitHub push deploys the new commit: trigger webhook, the sender as pusher' '
	test_commit src app/www/index.html "from the git host" &&
	sha=$(git -C src rev-parse HEAD) && before=$(git -C src rev-parse HEAD^) &&
	push_upstream main &&
	github_push refs/heads/main "$before" "$sha" octocat >gh.json &&
	start=$(date +%s%N) &&
	code=$(hook github /$ns/web gh.json delivery-1) &&
	answered=$(date +%s%N) &&
	test "$code" = 202 &&
	test_wait_for 240 is_succeeded "$sha" &&
	say "webhook sent to Succeeded: $((($(date +%s%N) - start) / 1000000)) ms, of which to the 202 (python3 started, Remote and Secret read, signature checked) $(((answered - start) / 1000000)) ms" &&
	run=$(run_of "$sha") &&
	kubectl -n $ns get pipelinerun "$run" -o json >run.json &&
	test "$(jq -r .spec.trigger run.json)" = webhook &&
	test "$(jq -r .spec.pusher.name run.json)" = octocat &&
	test "$(jq -r .spec.after run.json)" = "$sha" &&
	test "$(server_ref web main)" = "$sha" &&
	case "$(image_of web)" in "$REGISTRY/e2e/$ns-web-web-web@sha256:"*) ;; *) false ;; esac &&
	breakdown "$run" run.json >breakdown &&
	say "$(cat breakdown)" &&
	test "$(counted accepted)" = 1
'

test_expect_success 'a wrong signature is refused (401), logged and counted; nothing runs' '
	n=$(runs) &&
	test "$(hook github /$ns/web gh.json delivery-2 not-the-secret)" = 401 &&
	test "$(counted bad_signature)" = 1 &&
	grep "\"event\":\"webhook_refused\"" gitd.log | grep -q "\"reason\":\"bad_signature\"" &&
	test "$(runs)" = "$n"
'

test_expect_success 'a replayed delivery is refused (409) and counted; nothing runs' '
	n=$(runs) &&
	test "$(hook github /$ns/web gh.json delivery-1)" = 409 &&
	test "$(counted replayed_delivery)" = 1 &&
	test "$(runs)" = "$n"
'

test_expect_success 'a push to a branch that does not deploy is refused and counted; nothing runs' '
	n=$(runs) &&
	git -C src branch -f feature &&
	push_upstream feature &&
	github_push refs/heads/feature 0000000000000000000000000000000000000000 "$sha" octocat >feature.json &&
	test "$(hook github /$ns/web feature.json delivery-3)" = 200 &&
	test "$(counted non_deploying_branch)" = 1 &&
	test "$(server_ref web feature)" = none &&
	test "$(runs)" = "$n"
'

# curl, not urllib: gitd answers 413 from the headers, before the body, and
# curl (Expect: 100-continue) reads that answer instead of a broken pipe.
test_expect_success 'a 2 MiB body is refused (413) and counted; nothing runs' '
	n=$(runs) &&
	python3 -c "import json; print(json.dumps({\"ref\": \"refs/heads/main\", \"pad\": \"x\" * (2 << 20)}))" >big.json &&
	sig=$(openssl dgst -sha256 -hmac "$secret" -r big.json | cut -d" " -f1) &&
	curl -s -o /dev/null -w "%{http_code}" -H "Content-Type: application/json" \
		-H "X-GitHub-Event: push" -H "X-GitHub-Delivery: delivery-4" \
		-H "X-Hub-Signature-256: sha256=$sig" --data-binary @big.json "$HOOKS/$ns/web" >code &&
	test "$(cat code)" = 413 &&
	test "$(counted body_too_large)" = 1 &&
	test "$(runs)" = "$n"
'

test_expect_success 'a body sent in chunks without Content-Length is cut at 1 MiB too (413)' '
	curl -s -o /dev/null -w "%{http_code}" -H "Transfer-Encoding: chunked" \
		-H "X-GitHub-Event: push" -H "X-GitHub-Delivery: delivery-chunked" \
		-H "X-Hub-Signature-256: sha256=00" --data-binary @big.json "$HOOKS/$ns/web" >code &&
	test "$(cat code)" = 413 &&
	test "$(counted body_too_large)" = 2
'

test_expect_success 'a hook for an unknown Remote is refused (404) and counted' '
	test "$(hook github /$ns/nothing gh.json delivery-5)" = 404 &&
	test "$(counted unknown_remote)" = 1
'

test_expect_success 'no request body or secret reaches the log' '
	! grep -q "$secret" gitd.log &&
	! grep -q "$token" gitd.log &&
	! grep -q "from the git host" gitd.log &&
	! grep -q "Design for failure" gitd.log
'

test_expect_success 'a GitLab push with its token deploys' '
	test_commit src app/www/index.html "from GitLab" &&
	sha2=$(git -C src rev-parse HEAD) &&
	push_upstream main &&
	gitlab_push refs/heads/main "$sha" "$sha2" jsmith >gl.json &&
	test "$(hook gitlab /$ns/web gl.json 6f7c1e2a-gitlab)" = 202 &&
	test_wait_for 240 is_succeeded "$sha2" &&
	run=$(run_of "$sha2") &&
	test "$(kubectl -n $ns get pipelinerun "$run" -o jsonpath="{.spec.trigger} {.spec.pusher.name}")" = "webhook jsmith" &&
	test "$(server_ref web main)" = "$sha2" &&
	test "$(counted accepted)" = 2
'

test_expect_success 'a Gitea push signed with X-Gitea-Signature deploys' '
	test_commit src app/www/index.html "from Gitea" &&
	sha_gitea=$(git -C src rev-parse HEAD) &&
	push_upstream main &&
	github_push refs/heads/main "$sha2" "$sha_gitea" gitea-admin >gitea.json &&
	test "$(hook gitea /$ns/web gitea.json 7d3a-gitea)" = 202 &&
	test_wait_for 240 is_succeeded "$sha_gitea" &&
	test "$(kubectl -n $ns get pipelinerun "$run" -o jsonpath="{.spec.trigger} {.spec.pusher.name}")" = "webhook gitea-admin" &&
	sha2=$sha_gitea
'

no_quarantine() {
	! ls -d repos/$ns/web.git/objects/incoming-* >/dev/null 2>&1
}

# The upstream (git http-backend) sends the 4 MiB of random bytes as one
# undeltified blob entry; gitd runs with --max-object-size 3M (the sample
# app's busybox is a 1.9 MiB blob).
test_expect_success 'an upstream commit holding a blob over --max-object-size: 202, the fetch is refused with the blob and its size, ref kept, nothing runs' '
	n=$(runs) &&
	fetched=$(grep -c "\"event\":\"upstream_fetched\"" gitd.log) &&
	git -C src checkout -q -b big main &&
	head -c 4194304 /dev/urandom >src/app/www/big.bin &&
	git -C src add app/www/big.bin &&
	git -C src commit -q -m "a 4 MiB blob" &&
	big=$(git -C src rev-parse HEAD) &&
	git -C src checkout -q main &&
	push_upstream big:main &&
	github_push refs/heads/main "$sha2" "$big" octocat >big-push.json &&
	test "$(hook github /$ns/web big-push.json delivery-big)" = 202 &&
	test_wait_for 60 grep -q "\"event\":\"upstream_failed\".*maximum object size" gitd.log &&
	grep "\"event\":\"upstream_failed\"" gitd.log >failed &&
	grep -q "\"trigger\":\"webhook\"" failed &&
	grep -q "the upstream.s pack was refused: blob at offset [0-9]* is 4.0 MiB, larger than the maximum object size 3.0 MiB" failed &&
	test_wait_for 10 no_quarantine &&
	test "$(server_ref web main)" = "$sha2" &&
	test_must_fail git -C repos/$ns/web.git cat-file -e "$big" &&
	test "$(runs)" = "$n" &&
	test "$(grep -c "\"event\":\"upstream_fetched\"" gitd.log)" = "$fetched" &&
	push_upstream -f main
'

test_expect_success 'a wrong GitLab token is refused' '
	test "$(hook gitlab /$ns/web gl.json 6f7c1e2a-other wrong-token)" = 401 &&
	test "$(counted bad_signature)" = 2
'

test_expect_success 'with denyNonFastForwards a force-pushed upstream branch is refused: ref kept, nothing runs' '
	kubectl -n $ns patch remote.slipway.dev web --type merge -p "{\"spec\":{\"denyNonFastForwards\":true}}" >/dev/null &&
	n=$(runs) &&
	git -C src checkout -q -b rewritten "$sha" &&
	test_commit src app/www/other.html "rewritten history" &&
	forced=$(git -C src rev-parse HEAD) &&
	push_upstream -f rewritten:main &&
	gitlab_push refs/heads/main "$sha2" "$forced" jsmith >forced.json &&
	test "$(hook gitlab /$ns/web forced.json 6f7c1e2a-forced)" = 202 &&
	test_wait_for 30 grep -q "\"event\":\"upstream_refused\".*non-fast-forward" gitd.log &&
	test "$(server_ref web main)" = "$sha2" &&
	test "$(runs)" = "$n" &&
	git -C src checkout -q main &&
	push_upstream -f main
'

test_expect_success 'polling an SSH upstream served by gitd itself picks up a commit within its interval' '
	make_key fetcher &&
	kubectl -n $ns apply -f - >/dev/null <<-EOF_ &&
	{"apiVersion":"slipway.dev/v1alpha1","kind":"Remote","metadata":{"name":"origin"},
	 "spec":{"authorizedKeys":["$(cat alice.pub)","$(cat fetcher.pub)"],"branches":["none"]}}
	EOF_
	test_wait_for 30 test -d repos/$ns/origin.git &&
	git -C src push -q "$GITD_URL/$ns/origin.git" main &&
	kubectl -n $ns create secret generic mirror-upstream --from-file=ssh-privatekey=fetcher \
		--from-file=known_hosts=known_hosts >/dev/null &&
	kubectl -n $ns apply -f - >/dev/null <<-EOF_ &&
	{"apiVersion":"slipway.dev/v1alpha1","kind":"Remote","metadata":{"name":"mirror"},
	 "spec":{"upstream":{"url":"$GITD_URL/$ns/origin.git","secretRef":{"name":"mirror-upstream"},
	  "pollIntervalSeconds":10}}}
	EOF_
	test_wait_for 60 sh -c "test \"\$(git -C repos/$ns/mirror.git rev-parse -q --verify main)\" = $sha2" &&
	test_commit src app/www/index.html "polled" &&
	sha3=$(git -C src rev-parse HEAD) &&
	git -C src push -q "$GITD_URL/$ns/origin.git" main &&
	pushed=$SECONDS &&
	test_wait_for 30 is_succeeded "$sha3" &&
	say "polled commit Succeeded $((SECONDS - pushed)) s after the push (interval 10 s)" &&
	test $((SECONDS - pushed)) -le 25 &&
	run=$(run_of "$sha3") &&
	test "$(kubectl -n $ns get pipelinerun "$run" -o jsonpath="{.spec.trigger} {.spec.remote}")" = "poll mirror" &&
	test "$(server_ref mirror main)" = "$sha3"
'

test_expect_success 'clean up the namespace' '
	gitd_stop &&
	kubectl delete namespace $ns --wait --timeout=90s >/dev/null
'

test_done
