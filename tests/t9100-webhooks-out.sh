#!/usr/bin/env bash
test_description='outbound webhooks: a push over the real OpenSSH client to gitd serving
the real API server POSTs each pipeline event, signed, to a real HTTP receiver
on loopback; retries, a blocked metadata address and a redirect not followed
show in the delivery log that kubectl slipway webhooks deliveries prints'
. "$(dirname "$0")/test-lib.sh"
test_require_env
. "$SLIPWAY_ROOT/tests/lib-gitd.sh"

ns=webhooks-e2e
# the real build and deploy (buildah, the registry, the node) for the Remote
# app; without them the other tests still run
can_deploy=
if [ -n "${NODE_NAME:-}" ] && command -v buildah >/dev/null && [ -x /bin/busybox ] &&
	[ "$(id -u)" = 0 ] && kubectl wait --for=condition=Ready "node/$NODE_NAME" --timeout=30s >/dev/null 2>&1; then
	can_deploy=yes
fi
secret=s3cr3t-hmac-key
other=another-key

# The receiver: python3's http.server on loopback. Every request is appended
# to requests.jsonl as {path, headers, body}; /ok answers 200, /flaky 500
# twice then 200, /redirect 302 to /redirected, /dead 500 always, /slow 200 once the file
# release exists (30 s at most).
cat >receiver.py <<'EOF_'
import http.server, json, os, sys, threading, time

lock = threading.Lock()
flaky = [0]

class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with lock:
            with open("requests.jsonl", "a") as f:
                f.write(json.dumps({"path": self.path, "headers": dict(self.headers),
                                    "body": body.decode()}) + "\n")
        if self.path.startswith("/slow"):
            for _ in range(600):
                if os.path.exists("release"):
                    break
                time.sleep(0.05)
        with lock:
            if self.path.startswith("/flaky"):
                flaky[0] += 1
                code = 500 if flaky[0] <= 2 else 200
            elif self.path.startswith("/redirect"):
                code = 302
            elif self.path.startswith("/dead"):
                code = 500
            else:
                code = 200
        self.send_response(code)
        if code == 302:
            self.send_header("Location", "/redirected")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open("receiver.port.tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os
os.rename("receiver.port.tmp", "receiver.port")
server.serve_forever()
EOF_

# verify.py SECRET [PATH-PREFIX]: checks the X-Slipway-Signature-256 of every
# request to PATH-PREFIX (/ok) in requests.jsonl with Python's hmac, as a
# receiver would, and prints how many there were.
cat >verify.py <<'EOF_'
import hashlib, hmac, json, sys

key = sys.argv[1].encode()
prefix = sys.argv[2] if len(sys.argv) > 2 else "/ok"
n = 0
for line in open("requests.jsonl"):
    r = json.loads(line)
    if not r["path"].startswith(prefix):
        continue
    want = "sha256=" + hmac.new(key, r["body"].encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, r["headers"]["X-Slipway-Signature-256"]):
        sys.exit("bad signature on " + r["headers"]["X-Slipway-Event"])
    n += 1
print(n)
EOF_

# start_receiver: the receiver in the background, its pid in receiver_pid
# (a function, so that "&" does not take the caller's && chain along).
receiver_pid=
start_receiver() {
	rm -f receiver.port requests.jsonl
	python3 receiver.py &
	receiver_pid=$!
}
stop_receiver() {
	[ -z "$receiver_pid" ] || kill "$receiver_pid" 2>/dev/null
	receiver_pid=
}
trap 'stop_receiver; gitd_stop' EXIT

# requests PATH-PREFIX [EVENT]: the requests received on paths starting with
# PATH-PREFIX (for EVENT), one JSON object a line.
requests() {
	python3 -c '
import json, sys
for line in open("requests.jsonl"):
    r = json.loads(line)
    if r["path"].startswith(sys.argv[1]) and (len(sys.argv) < 3 or r["headers"].get("X-Slipway-Event") == sys.argv[2]):
        print(line, end="")
' "$@" 2>/dev/null
}

# delivery WEBHOOK EVENT FIELD: FIELD of the delivery log entry of webhook
# WEBHOOK (its index in spec.webhooks) for EVENT, from deliveries.json.
delivery() {
	python3 -c '
import json, sys
for d in json.load(open("deliveries.json")):
    if d["webhook"] == int(sys.argv[1]) and d["event"] == sys.argv[2]:
        print(d[sys.argv[3]])
        break
else:
    sys.exit(1)
' "$@"
}

# deliveries_are N: the delivery log of web, read into deliveries.json with
# kubectl slipway, has N entries.
deliveries_are() {
	kubectl slipway -n $ns webhooks deliveries web -o json >deliveries.json 2>/dev/null &&
		test "$(python3 -c 'import json; print(len(json.load(open("deliveries.json"))))')" = "$1"
}

# remote NAME SPEC-MEMBERS: a Remote NAME with alice's key and the given
# spec members (JSON, without braces).
remote() {
	kubectl -n $ns apply -f - >/dev/null <<-EOF_
	{"apiVersion":"slipway.dev/v1alpha1","kind":"Remote","metadata":{"name":"$1"},
	 "spec":{"authorizedKeys":["$(cat alice.pub)"],$2}}
	EOF_
}

# deployment NAME: a Deployment of one container "web" whose image the
# env's registry does not have, until a push replaces it.
deployment() {
	kubectl -n $ns apply -f - >/dev/null <<-EOF_
	{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"$1"},
	 "spec":{"replicas":1,"selector":{"matchLabels":{"app":"$1"}},
	  "template":{"metadata":{"labels":{"app":"$1"}},
	   "spec":{"terminationGracePeriodSeconds":2,
	    "containers":[{"name":"web","image":"$REGISTRY/placeholder/$1:0",
	     "readinessProbe":{"httpGet":{"path":"/","port":8080},"periodSeconds":1},
	     "ports":[{"containerPort":8080}]}]}}}}
	EOF_
}

# has_request PATH-PREFIX EVENT: the receiver got EVENT there.
has_request() {
	test -n "$(requests "$1" "$2")"
}

# body_of PATH-PREFIX EVENT: the body of the first request for EVENT there.
body_of() {
	requests "$1" "$2" | python3 -c "import json, sys; sys.stdout.write(json.loads(sys.stdin.readline())[\"body\"])"
}

test_expect_success 'set up the CRDs, a namespace, the webhook Secret, a receiver and gitd' '
	kubectl apply --server-side --force-conflicts -f "$SLIPWAY_ROOT/manifests/crds/" >/dev/null &&
	kubectl delete namespace $ns --ignore-not-found --wait --timeout=90s &&
	kubectl create namespace $ns &&
	kubectl -n $ns create secret generic hook-secret --from-literal=secret=$secret \
		--from-literal=other=$other &&
	start_receiver &&
	test_wait_for 10 test -s receiver.port &&
	port=$(cat receiver.port) &&
	mkdir -p hooks/pipeline-succeeded &&
	printf "#!/bin/sh\ncat >\"%s/hook-stdin.json\"\n" "$TRASH_DIRECTORY" \
		>hooks/pipeline-succeeded/save &&
	chmod +x hooks/pipeline-succeeded/save &&
	make_key alice &&
	kubectl -n $ns apply -f - <<-EOF_ &&
	{"apiVersion":"slipway.dev/v1alpha1","kind":"Remote","metadata":{"name":"web"},
	 "spec":{"authorizedKeys":["$(cat alice.pub)"],
	  "webhooks":[
	   {"url":"http://127.0.0.1:$port/ok?token=query-secret","events":["*"],
	    "secretRef":{"name":"hook-secret"}},
	   {"url":"http://127.0.0.1:$port/flaky","events":["pipeline-succeeded"],
	    "secretRef":{"name":"hook-secret","key":"other"}},
	   {"url":"http://169.254.169.254/latest/meta-data/","events":["pipeline-succeeded"],
	    "secretRef":{"name":"hook-secret"}},
	   {"url":"http://127.0.0.1:$port/redirect","events":["pipeline-succeeded"],
	    "secretRef":{"name":"hook-secret"}}]}}
	EOF_
	printf "#!/bin/sh\necho refusing the deploy\nexit 3\n" >fail.sh &&
	kubectl -n $ns create configmap hooks --from-file=fail.sh &&
	remote fail "\"hooks\":[{\"event\":\"pre-deploy\",\"configMapRef\":{\"name\":\"hooks\",\"key\":\"fail.sh\"}}],
	 \"webhooks\":[{\"url\":\"http://127.0.0.1:$port/failed\",\"events\":[\"pipeline-failed\",\"pipeline-succeeded\"],
	  \"secretRef\":{\"name\":\"hook-secret\"}}]" &&
	remote slow "\"webhooks\":[{\"url\":\"http://127.0.0.1:$port/slow\",\"events\":[\"*\"],
	  \"secretRef\":{\"name\":\"hook-secret\"}}]" &&
	remote later "\"webhooks\":[{\"url\":\"http://127.0.0.1:$port/dead\",\"events\":[\"pre-receive\",\"post-receive\"],
	  \"secretRef\":{\"name\":\"hook-secret\"}},
	 {\"url\":\"http://127.0.0.1:$port/later\",\"events\":[\"*\"],
	  \"secretRef\":{\"name\":\"hook-secret\"}}]" &&
	if [ -n "$can_deploy" ]; then
		remote app "\"registry\":{\"url\":\"$REGISTRY/e2e\",\"insecure\":true},
		 \"deployments\":[{\"name\":\"app\",\"containers\":[{\"name\":\"web\",\"path\":\"app\"}]}],
		 \"webhooks\":[{\"url\":\"http://127.0.0.1:$port/deployed\",\"events\":[\"post-build\",\"pipeline-succeeded\"],
		  \"secretRef\":{\"name\":\"hook-secret\"}}]" &&
		deployment app
	fi &&
	gitd_start_cluster --namespace $ns --hooks-dir "$TRASH_DIRECTORY/hooks" \
		--work-dir "$TRASH_DIRECTORY" --builder-mode local \
		--builder "$SLIPWAY_BUILD/bin/builder" --rollout-timeout 60
'
test_expect_success 'the CRD refuses a webhook that is not http or has no events' '
	test_must_fail kubectl -n $ns apply -f - >err 2>&1 <<-EOF_ &&
	{"apiVersion":"slipway.dev/v1alpha1","kind":"Remote","metadata":{"name":"bad"},
	 "spec":{"webhooks":[{"url":"ftp://x/","events":[],"secretRef":{"name":"s"}}]}}
	EOF_
	test_grep "spec.webhooks\[0\]" err
'

test_expect_success 'a push succeeds and every delivery ends in the delivery log' '
	rm -rf src && git init -q -b main src &&
	test_commit src README.md "hello webhooks" &&
	use_key alice &&
	git -C src push -q "$GITD_URL/$ns/web.git" main &&
	test_wait_for 90 deliveries_are 10
'

test_expect_success 'the receiver got each pipeline event, in order, with the Slipway headers' '
	requests /ok >ok.jsonl &&
	python3 -c "
import json
rs = [json.loads(l) for l in open(\"ok.jsonl\")]
events = [r[\"headers\"][\"X-Slipway-Event\"] for r in rs]
assert events == [\"pre-receive\", \"pre-build\", \"post-build\", \"pre-deploy\",
                  \"post-deploy\", \"pipeline-succeeded\", \"post-receive\"], events
for r in rs:
    h = r[\"headers\"]
    assert h[\"Content-Type\"] == \"application/json\", h
    assert h[\"User-Agent\"].startswith(\"Slipway/\"), h
    assert len(h[\"X-Slipway-Delivery\"]) == 36, h
    assert json.loads(r[\"body\"])[\"event\"] == h[\"X-Slipway-Event\"]
    assert r[\"path\"] == \"/ok?token=query-secret\"
assert len({r[\"headers\"][\"X-Slipway-Delivery\"] for r in rs}) == 7
"
'

test_expect_success 'every signature verifies with Python hmac and the Secret value' '
	python3 verify.py $secret >n &&
	test "$(cat n)" = 7 &&
	test_must_fail python3 verify.py wrong-key
'

test_expect_success 'the body is byte for byte the JSON the pipeline-succeeded hook read' '
	requests /ok pipeline-succeeded | python3 -c "
import json, sys
sys.stdout.write(json.loads(sys.stdin.readline())[\"body\"])" >body.json &&
	test_cmp hook-stdin.json body.json &&
	test_grep "\"result\":\{\"succeeded\":true" body.json
'

test_expect_success 'a receiver that fails twice then succeeds shows three attempts' '
	test "$(requests /flaky | wc -l)" = 3 &&
	test "$(delivery 1 pipeline-succeeded attempts)" = 3 &&
	test "$(delivery 1 pipeline-succeeded statusCode)" = 200 &&
	test -z "$(delivery 1 pipeline-succeeded error)" &&
	test "$(requests /flaky | python3 -c "
import json, sys
print(len({json.loads(l)[\"headers\"][\"X-Slipway-Delivery\"] for l in sys.stdin}))")" = 1 &&
	python3 -c "
import hashlib, hmac, json
r = json.loads(open(\"/dev/stdin\").readline())
want = \"sha256=\" + hmac.new(b\"$other\", r[\"body\"].encode(), hashlib.sha256).hexdigest()
assert want == r[\"headers\"][\"X-Slipway-Signature-256\"]
" < <(requests /flaky)
'

test_expect_success 'a delivery to 169.254.169.254 is refused without a connection' '
	test "$(delivery 2 pipeline-succeeded attempts)" = 1 &&
	test "$(delivery 2 pipeline-succeeded statusCode)" = 0 &&
	test "$(delivery 2 pipeline-succeeded host)" = 169.254.169.254 &&
	test "$(delivery 2 pipeline-succeeded error)" = \
		"blocked address 169.254.169.254 (link-local or metadata)" &&
	test_grep "\"event\":\"webhook_blocked\".*\"host\":\"169.254.169.254\"" gitd.log
'

test_expect_success 'a redirect is not followed' '
	test "$(requests /redirect | wc -l)" = 1 &&
	test -z "$(requests /redirected)" &&
	test "$(delivery 3 pipeline-succeeded statusCode)" = 302 &&
	test "$(delivery 3 pipeline-succeeded attempts)" = 1 &&
	test "$(delivery 3 pipeline-succeeded error)" = "HTTP 302: redirects are not followed"
'

test_expect_success 'kubectl slipway webhooks deliveries prints the log as a table' '
	kubectl slipway -n $ns webhooks deliveries web >table &&
	test_grep "^DELIVERY +EVENT +HOST +STATUS +ATTEMPTS +DURATION +AGE +ERROR$" table &&
	test_grep " pipeline-succeeded +127.0.0.1:$port +200 +3 " table &&
	test_grep " pipeline-succeeded +169.254.169.254 +0 +1 .*blocked address" table &&
	test "$(wc -l <table)" = 11 &&
	test_expect_code 3 kubectl slipway -n $ns webhooks deliveries nothere
'

test_expect_success 'neither the logs nor the delivery log hold the query, body or secrets' '
	kubectl -n $ns get configmap web-webhook-deliveries -o json >cm.json &&
	! grep -q -e query-secret -e $secret -e $other -e "hello webhooks" gitd.log cm.json &&
	test_grep "\"event\":\"webhook_delivered\".*\"host\":\"127.0.0.1:$port\"" gitd.log
'

test_expect_success 'gitd counts the deliveries by result on /metrics' '
	curl -sf "$GITD_METRICS/metrics" >metrics &&
	test_grep "^gitd_webhook_deliveries_total\{result=\"ok\"\} 8$" metrics &&
	test_grep "^gitd_webhook_deliveries_total\{result=\"error\"\} 1$" metrics &&
	test_grep "^gitd_webhook_deliveries_total\{result=\"blocked\"\} 1$" metrics
'

test_expect_success 'a failed pipeline sends pipeline-failed with its result, and the push is rejected' '
	test_must_fail git -C src push "$GITD_URL/$ns/fail.git" main >push.out 2>&1 &&
	test_grep "HookFailed" push.out &&
	test_wait_for 30 has_request /failed pipeline-failed &&
	body_of /failed pipeline-failed >failed.json &&
	python3 -c "
import json
ev = json.load(open(\"failed.json\"))
assert ev[\"event\"] == \"pipeline-failed\", ev
assert ev[\"remote\"] == {\"namespace\": \"$ns\", \"name\": \"fail\"}, ev
assert ev[\"result\"][\"succeeded\"] is False and ev[\"result\"][\"reason\"] == \"HookFailed\", ev
" &&
	test -z "$(requests /failed pipeline-succeeded)"
'

test_expect_success 'with slipway.wait=false the deliveries still all go out after the push' '
	git -C src push -o slipway.wait=false "$GITD_URL/$ns/later.git" main >push.out 2>&1 &&
	test_wait_for 120 has_request /later pipeline-succeeded &&
	requests /later | python3 -c "
import json, sys
events = sorted(json.loads(l)[\"headers\"][\"X-Slipway-Event\"] for l in sys.stdin)
assert events == sorted([\"pre-receive\", \"post-receive\", \"pre-build\", \"post-build\",
                         \"pre-deploy\", \"post-deploy\", \"pipeline-succeeded\"]), events
"
'

test_expect_success 'a receiver that always fails gets 6 attempts, then one per later event' '
	kubectl slipway -n $ns webhooks deliveries later -o json >later.json &&
	python3 -c "
import json
ds = {d[\"event\"]: d for d in json.load(open(\"later.json\")) if d[\"webhook\"] == 0}
assert ds[\"pre-receive\"][\"attempts\"] == 6, ds
assert ds[\"pre-receive\"][\"statusCode\"] == 500 and ds[\"pre-receive\"][\"error\"] == \"HTTP 500\", ds
assert ds[\"post-receive\"][\"attempts\"] == 1, ds
" &&
	test "$(requests /dead | wc -l)" = 7
'

test_expect_success 'a receiver that does not answer holds no stage: the push and its run end first' '
	rm -f release &&
	git -C src push "$GITD_URL/$ns/slow.git" main >push.out 2>&1 &&
	test_grep "remote: -----> Pipeline .* succeeded" push.out &&
	run=$(kubectl -n $ns get pipelineruns -l slipway.dev/remote=slow -o jsonpath="{.items[0].metadata.name}") &&
	test "$(kubectl -n $ns get pipelinerun $run -o jsonpath="{.status.conditions[?(@.type==\"Succeeded\")].status}")" = True &&
	requests /slow >slow.jsonl &&
	test "$(python3 -c "
import json
print(\",\".join(sorted({json.loads(l)[\"headers\"][\"X-Slipway-Event\"] for l in open(\"slow.jsonl\")})))")" = pre-receive &&
	touch release &&
	test_wait_for 60 has_request /slow post-receive &&
	test_wait_for 30 grep -q "\"webhook_delivered\".*\"remote\":\"slow\".*\"hook_event\":\"post-receive\"" gitd.log
'

if [ -n "$can_deploy" ]; then
test_expect_success 'a real build and deploy sends the built image by digest in pipeline-succeeded' '
	new_app app-src &&
	sha=$(git -C app-src rev-parse HEAD) &&
	git -C app-src push "$GITD_URL/$ns/app.git" main >push.out 2>&1 &&
	test_grep "remote: -----> Pipeline .* succeeded" push.out &&
	image=$(kubectl -n $ns get deployment app -o jsonpath="{.spec.template.spec.containers[0].image}") &&
	case "$image" in "$REGISTRY/e2e/$ns-app-app-web@sha256:"*) ;; *) false ;; esac &&
	test_wait_for 30 has_request /deployed pipeline-succeeded &&
	body_of /deployed pipeline-succeeded >deployed.json &&
	python3 -c "
import json
ev = json.load(open(\"deployed.json\"))
assert ev[\"after\"] == \"$sha\", ev
assert [i[\"image\"] for i in ev[\"images\"]] == [\"$image\"], ev
assert \"build:app/web\" in [s[\"name\"] for s in ev[\"stages\"]], ev
" &&
	test -n "$(requests /deployed post-build)" &&
	test "$(python3 verify.py $secret /deployed)" = 2
'
else
	test_skip 'a real build and deploy sends the built image by digest in pipeline-succeeded' \
		"needs the env's node, buildah, /bin/busybox and root"
fi

test_expect_success 'the delivery log goes with its Remote' '
	kubectl -n $ns get configmap later-webhook-deliveries \
		-o jsonpath="{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}" >owner &&
	test "$(cat owner)" = Remote/later &&
	kubectl -n $ns delete remotes.slipway.dev later &&
	test_wait_for 60 test_must_fail kubectl -n $ns get configmap later-webhook-deliveries
'

test_expect_success 'clean up the namespace' '
	gitd_stop &&
	kubectl delete namespace $ns --wait=false
'

test_done
