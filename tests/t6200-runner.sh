#!/usr/bin/env bash
# shellcheck disable=SC2016 # test bodies are single-quoted on purpose: eval'd later
test_description='runner: gitd builds through the real builder, as a local process and as a Pod on the real node'
. "$(dirname "$0")/test-lib.sh"
test_require_env
test_require_node
command -v buildah >/dev/null || test_skip_all "no buildah (tests/env/deps.sh installs it)"
[ -x /bin/busybox ] || test_skip_all "no /bin/busybox (Debian busybox-static)"
[ "$(id -u)" = 0 ] || test_skip_all "buildah with chroot isolation needs root here"

# The pod runner's Pods run the slipway/builder image that images/build.sh
# makes (test_slipway_image), on the env's node, under the securityContext
# that manifests/ ships (gitd's --builder-security-context there). From
# their Pod network they reach buildsrv on HOST_IP and the registry.
sc=$(sed -n "s/^ *- '--builder-security-context=\(.*\)'$/\1/p" "$SLIPWAY_ROOT/manifests/base/statefulset.yaml")
[ -n "$sc" ] || test_skip_all "no --builder-security-context in manifests/base/statefulset.yaml"
builder_image=$(test_slipway_image builder) || test_skip_all "cannot build the builder image (images/build.sh)"

builder_bin="$SLIPWAY_BUILD/bin/builder"
run=$(date +%s)-$$
repo=t6200/busybox
accept='Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json'
ns=$(unique_name runner)-$$ # a namespace being deleted by an earlier run is not reused
export TMPDIR="$TRASH_DIRECTORY/tmp"
mkdir -p "$TMPDIR"

# manifest_digest REPO TAG: the registry's Docker-Content-Digest, or nothing.
manifest_digest() {
	curl -s -o /dev/null -D - -H "$accept" "http://$REGISTRY/v2/$1/manifests/$2" |
		tr -d '\r' | awk 'tolower($1) == "docker-content-digest:" { print $2 }'
}

# result FILE FIELD: a field of the {"result": ...} line of runner-run's output.
result() {
	python3 -c '
import json, sys
for line in open(sys.argv[1]):
    j = json.loads(line)
    if "result" in j:
        v = j["result"][sys.argv[2]]
        print(str(v).lower() if isinstance(v, bool) else v)' "$1" "$2"
}

# log_lines FILE: the log lines of runner-run's output, one a line.
log_lines() {
	python3 -c '
import json, sys
for line in open(sys.argv[1]):
    j = json.loads(line)
    if "log" in j:
        print(j["log"])' "$1"
}

# pod_runner ARGS...: runner-run in pod mode, buildsrv where Pods reach it.
pod_runner() {
	runner-run --mode pod --builder-image "$builder_image" --namespace "$ns" \
		--internal-listen "$HOST_IP" --builder-security-context "$sc" "$@"
}

# no_builder_objects: no Pod or Secret of this script's builds is left.
no_builder_objects() {
	test -z "$(kubectl get pods,secrets -n "$ns" -l slipway.dev/component=builder -o name)"
}

# source_tar DIR DOCKERFILE_LINE...: DIR/src.tar.gz of busybox and a Dockerfile.
source_tar() {
	local d=$1
	shift
	mkdir -p "$d" &&
		cp /bin/busybox "$d/" &&
		printf '%s\n' "$@" >"$d/Dockerfile" &&
		tar -C "$d" -czf "$d/src.tar.gz" Dockerfile busybox
}

test_expect_success 'set up sources: busybox FROM scratch, a broken one, a slow one, a namespace' '
	source_tar ok "FROM scratch" "COPY busybox /bin/busybox" "ARG VERSION" \
		"LABEL version=\$VERSION" "CMD [\"/bin/busybox\",\"true\"]" &&
	source_tar bad "FROM scratch" "FROBNICATE now" &&
	source_tar slow "FROM scratch" "COPY busybox /bin/busybox" \
		"RUN [\"/bin/busybox\",\"sleep\",\"3\"]" &&
	source_tar slower "FROM scratch" "COPY busybox /bin/busybox" \
		"RUN [\"/bin/busybox\",\"sleep\",\"60\"]" &&
	kubectl create namespace "$ns"
'

test_expect_success 'local runner: the image is pushed and the digest is the registry'"'"'s' '
	runner-run --builder "$builder_bin" --insecure-registry --timeout 120 \
		--build-arg VERSION=1 "$REGISTRY/$repo:local-$run" ok/src.tar.gz >out &&
	test "$(result out succeeded)" = true &&
	d=$(result out digest) &&
	test "$(manifest_digest $repo local-$run)" = "$d" &&
	test "$(result out image)" = "$REGISTRY/$repo@$d" &&
	test -z "$(result out pod)" &&
	log_lines out >log &&
	test_grep "^-----> Building $REGISTRY/$repo:local-$run$" log &&
	test_grep "^-----> Pushed $REGISTRY/$repo:local-$run@$d$" log &&
	test "$(grep -c "^-----> Pushed" log)" = 1 &&
	test -z "$(find "$TMPDIR" -maxdepth 1 -name "slipway-*")"
'

test_expect_success 'local runner: a broken Dockerfile is BuildFailed with the builder'"'"'s message' '
	runner-run --builder "$builder_bin" --insecure-registry --timeout 120 \
		"$REGISTRY/$repo:bad-$run" bad/src.tar.gz >out &&
	test "$(result out succeeded)" = false &&
	test "$(result out reason)" = BuildFailed &&
	result out message >msg &&
	test_grep "^build of $REGISTRY/$repo:bad-$run failed \(buildah exit status [0-9]+\): .*FROBNICATE" msg &&
	log_lines out >log &&
	test_grep "^builder: build of" log &&
	test -z "$(manifest_digest $repo bad-$run)"
'

test_expect_success 'local runner: a builder program that does not exist is RunnerFailed (exit 1)' '
	test_expect_code 1 runner-run --builder /nonexistent/builder \
		"$REGISTRY/$repo:none-$run" ok/src.tar.gz >out 2>err &&
	test "$(result out reason)" = RunnerFailed &&
	test "$(result out ret)" = -1 &&
	test_grep "/nonexistent/builder" err
'

test_expect_success 'local runner: a timeout shorter than the build is Timeout' '
	runner-run --builder "$builder_bin" --insecure-registry --timeout 2 \
		"$REGISTRY/$repo:ltimeout-$run" slower/src.tar.gz >out &&
	test "$(result out reason)" = Timeout &&
	test "$(result out seconds | cut -d. -f1)" -lt 20
'

test_expect_success 'pod runner: the Pod has the promised spec, the build succeeds, Pod and Secret are deleted' '
	pr=$(unique_name pr) &&
	{ pod_runner --pipelinerun "$pr" --remote app --insecure-registry --timeout 90 \
		"$REGISTRY/$repo:pod-$run" slow/src.tar.gz >out & } &&
	pid=$! &&
	test_when_finished "kill $pid 2>/dev/null; true" &&
	test_wait_for 30 eval "kubectl get pods -n $ns -l slipway.dev/pipelinerun=$pr -o jsonpath={.items[0].spec.nodeName} | grep -q ." &&
	kubectl get pods -n "$ns" -l "slipway.dev/pipelinerun=$pr" -o json >pods.json &&
	kubectl get secrets -n "$ns" -l "slipway.dev/pipelinerun=$pr" -o json >secrets.json &&
	wait $pid &&
	python3 - "$ns" pods.json secrets.json "$NODE_NAME" "$builder_image" "$sc" <<-\EOF_ &&
	import json, sys
	ns = sys.argv[1]
	pods = json.load(open(sys.argv[2]))["items"]
	secrets = json.load(open(sys.argv[3]))["items"]
	assert len(pods) == 1 and len(secrets) == 1, (len(pods), len(secrets))
	p, s = pods[0], secrets[0]
	name = p["metadata"]["name"]
	assert name.startswith("app-build-"), name
	l = p["metadata"]["labels"]
	assert l["slipway.dev/remote"] == "app", l
	assert l["app.kubernetes.io/managed-by"] == "slipway", l
	assert l["slipway.dev/component"] == "builder", l
	spec = p["spec"]
	assert spec["automountServiceAccountToken"] is False, spec
	assert spec["enableServiceLinks"] is False, spec
	assert spec["restartPolicy"] == "Never", spec
	assert spec["activeDeadlineSeconds"] == 90, spec
	assert spec["nodeName"] == sys.argv[4], spec
	c, = spec["containers"]
	assert c["name"] == "builder" and c["image"] == sys.argv[5], c
	cmd = c["command"]
	assert cmd[:2] == ["builder", "build"], cmd
	assert cmd[cmd.index("--source-token-file") + 1] == "/var/run/slipway/token/token", cmd
	assert cmd[cmd.index("--report-token-file") + 1] == "/var/run/slipway/token/token", cmd
	assert cmd[cmd.index("--timeout") + 1] == "90", cmd
	assert "--insecure-registry" in cmd, cmd
	# the token is in no argument, only in the Secret
	token = s["data"]["token"]
	assert all(token not in a for a in cmd)
	assert s["metadata"]["name"] == name + "-token", s["metadata"]
	assert s["type"] == "Opaque" and s.get("immutable") is True, s
	assert s["metadata"]["ownerReferences"][0]["name"] == name, s["metadata"]
	v = {x["name"]: x for x in spec["volumes"]}
	assert v["token"]["secret"]["secretName"] == name + "-token", v
	assert v["token"]["secret"]["defaultMode"] == 0o400, v
	m = {x["name"]: x for x in c["volumeMounts"]}
	assert m["token"]["mountPath"] == "/var/run/slipway/token" and m["token"]["readOnly"], m
	assert c["securityContext"] == json.loads(sys.argv[6]), c["securityContext"]
	EOF_
	test "$(result out succeeded)" = true &&
	d=$(result out digest) &&
	test "$(manifest_digest $repo pod-$run)" = "$d" &&
	test "$(result out pod)" = "$(python3 -c "import json,sys; print(json.load(open(\"pods.json\"))[\"items\"][0][\"metadata\"][\"name\"])")" &&
	log_lines out >log &&
	test_grep "^-----> Pushed $REGISTRY/$repo:pod-$run@$d$" log &&
	test_wait_for 30 no_builder_objects
'

test_expect_success 'pod runner: a broken Dockerfile is BuildFailed, Pod and Secret deleted' '
	pod_runner --insecure-registry --timeout 60 "$REGISTRY/$repo:podbad-$run" bad/src.tar.gz >out &&
	test "$(result out reason)" = BuildFailed &&
	result out message >msg &&
	test_grep "FROBNICATE" msg &&
	test_wait_for 30 no_builder_objects
'

test_expect_success 'pod runner: a timeout shorter than the build is Timeout, Pod deleted' '
	pod_runner --insecure-registry --timeout 2 "$REGISTRY/$repo:podtimeout-$run" \
		slower/src.tar.gz >out &&
	test "$(result out reason)" = Timeout &&
	test "$(result out seconds | cut -d. -f1)" -lt 30 &&
	test -z "$(manifest_digest $repo podtimeout-$run)" &&
	test_wait_for 30 no_builder_objects
'

test_expect_success 'pod runner: a cancelled build is Cancelled, Pod and Secret deleted' '
	pod_runner --insecure-registry --timeout 60 --cancel-after 3 \
		"$REGISTRY/$repo:podcancel-$run" slower/src.tar.gz >out &&
	test "$(result out reason)" = Cancelled &&
	test "$(result out seconds | cut -d. -f1)" -lt 20 &&
	test_wait_for 30 no_builder_objects
'

test_expect_success 'pod runner: a Pod deleted by someone else is RunnerFailed at once' '
	pr=$(unique_name pr) &&
	{ pod_runner --pipelinerun "$pr" --insecure-registry --timeout 60 \
		"$REGISTRY/$repo:poddel-$run" slower/src.tar.gz >out & } &&
	pid=$! &&
	test_when_finished "kill $pid 2>/dev/null; true" &&
	test_wait_for 30 eval "kubectl get pods -n $ns -l slipway.dev/pipelinerun=$pr -o name | grep -q ." &&
	kubectl delete pods -n "$ns" -l "slipway.dev/pipelinerun=$pr" --wait=false &&
	wait $pid &&
	result out message >msg &&
	test "$(result out reason)" = RunnerFailed &&
	test_grep "before the build ended" msg &&
	test_wait_for 30 no_builder_objects
'

test_expect_success 'pod runner: an image that cannot be built into a Pod (bad name) is RunnerFailed, nothing left' '
	test_expect_code 1 pod_runner --remote BAD_NAME "$REGISTRY/$repo:badpod-$run" \
		ok/src.tar.gz >out 2>err &&
	test "$(result out reason)" = RunnerFailed &&
	test_grep "cannot create" err &&
	no_builder_objects
'

test_expect_success 'pod runner: without SETUID, SETGID, SETFCAP the build fails naming the missing capabilities' '
	no_caps=$(printf "%s" "$sc" | python3 -c "import json,sys; c=json.load(sys.stdin); c[\"capabilities\"]={\"drop\":[\"ALL\"]}; print(json.dumps(c))") &&
	pod_runner --insecure-registry --timeout 60 --builder-security-context "$no_caps" \
		"$REGISTRY/$repo:nocaps-$run" ok/src.tar.gz >out &&
	test "$(result out succeeded)" = false &&
	result out message >msg &&
	test_grep "buildah cannot run here: the container lacks CAP_SETUID.*CAP_SETFCAP" msg &&
	test_grep "docs/builder.md \"Privileges\"" msg &&
	test_must_fail grep -q "uid_map" msg &&
	test -z "$(manifest_digest $repo nocaps-$run)" &&
	test_wait_for 30 no_builder_objects
'

test_expect_success 'pod runner: under seccomp RuntimeDefault the build fails naming the refused unshare(CLONE_NEWUSER)' '
	default_seccomp=$(printf "%s" "$sc" | python3 -c "import json,sys; c=json.load(sys.stdin); c[\"seccompProfile\"]={\"type\":\"RuntimeDefault\"}; print(json.dumps(c))") &&
	pod_runner --insecure-registry --timeout 60 --builder-security-context "$default_seccomp" \
		"$REGISTRY/$repo:seccomp-$run" ok/src.tar.gz >out &&
	test "$(result out succeeded)" = false &&
	result out message >msg &&
	test_grep "buildah cannot run here: unshare\(CLONE_NEWUSER\) is refused" msg &&
	test_grep "seccompProfile Unconfined or a Localhost profile" msg &&
	test_wait_for 30 no_builder_objects
'

test_expect_success 'clean up the namespace' '
	kubectl delete namespace "$ns" --wait=false
'

test_done
