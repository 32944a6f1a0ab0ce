#!/usr/bin/env bash
test_description='push-to-deploy: git push over ssh to gitd builds with real buildah,
pushes to the real registry, rolls out to real Pods on the real node, and
records every stage in the PipelineRun and its ConfigMap mirror'
. "$(dirname "$0")/test-lib.sh"
test_require_env
test_require_node
. "$SLIPWAY_ROOT/tests/lib-gitd.sh"
command -v buildah >/dev/null || test_skip_all "no buildah (tests/env/deps.sh installs it)"
[ -x /bin/busybox ] || test_skip_all "no /bin/busybox (Debian busybox-static)"
[ "$(id -u)" = 0 ] || test_skip_all "buildah with chroot isolation needs root here"

ns=push-e2e
accept='Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json'

# remote NAME SPEC-JSON-MEMBERS: apply a Remote with alice's key and the
# given spec members (JSON, without braces).
remote() {
	kubectl -n $ns apply -f - >/dev/null <<-EOF_
	{"apiVersion":"slipway.dev/v1alpha1","kind":"Remote","metadata":{"name":"$1"},
	 "spec":{"authorizedKeys":["$(cat alice.pub)"],$2}}
	EOF_
}

# app_remote NAME [MORE-MEMBERS]: a Remote that builds app/ into Deployment NAME.
app_remote() {
	remote "$1" "\"registry\":{\"url\":\"$REGISTRY/e2e\",\"insecure\":true},
	 \"deployments\":[{\"name\":\"$1\",\"containers\":[{\"name\":\"web\",\"path\":\"app\"}]}]${2:+,$2}"
}

# deployment NAME [REPLICAS] [EXTRA-CONTAINER-MEMBERS] [PROGRESS-DEADLINE] [IMAGE]:
# container web of IMAGE, by default a placeholder the env's registry does
# not have (its Pod waits in ImagePullBackOff until a push replaces it),
# with a readiness probe GET :8080/ unless EXTRA-CONTAINER-MEMBERS has one.
default_probe='"readinessProbe":{"httpGet":{"path":"/","port":8080},"periodSeconds":1},'
deployment() {
	kubectl -n $ns apply -f - >/dev/null <<-EOF_
	{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"$1"},
	 "spec":{"replicas":${2:-1},"progressDeadlineSeconds":${4:-600},
	  "selector":{"matchLabels":{"app":"$1"}},
	  "template":{"metadata":{"labels":{"app":"$1"}},
	   "spec":{"terminationGracePeriodSeconds":2,
	    "containers":[{"name":"web","image":"${5:-$REGISTRY/placeholder/$1:0}",
	     ${3:-$default_probe}
	     "ports":[{"containerPort":8080}]}]}}}}
	EOF_
}

image_of() {
	kubectl -n $ns get deployment "$1" -o jsonpath='{.spec.template.spec.containers[0].image}'
}

# run_of SHA: the PipelineRun of that commit.
run_of() {
	kubectl -n $ns get pipelineruns -l slipway.dev/commit="$1" -o jsonpath='{.items[0].metadata.name}'
}

# succeeded RUN: "STATUS REASON" of its Succeeded condition.
succeeded() {
	kubectl -n $ns get pipelinerun "$1" \
		-o jsonpath='{.status.conditions[?(@.type=="Succeeded")].status} {.status.conditions[?(@.type=="Succeeded")].reason}'
}

# start_push DIR OUT PUSH-ARGS...: git push in the background (exit status
# in OUT.rc); its pid in $bg_pid. A function, so that "&" does not take the
# caller's whole && chain into the background.
start_push() {
	local dir=$1 out=$2
	shift 2
	{ git -C "$dir" push "$@" >"$out" 2>&1; echo $? >"$out.rc"; } &
	bg_pid=$!
}

# watch_builder_pods OUT: names of builder Pods as they appear, into OUT, in
# the background; its pid in $bg_pid.
watch_builder_pods() {
	kubectl -n $ns get pods -l slipway.dev/component=builder --watch-only -o name >"$1" 2>/dev/null &
	bg_pid=$!
}

# gitd's flags: local builds by default; builder Pods (spec.builder.mode
# pod) reach buildsrv on HOST_IP.
gitd_flags="--builder-mode local --builder $SLIPWAY_ROOT/build/bin/builder
	--internal-listen $HOST_IP --hooks-dir $TRASH_DIRECTORY/admin-hooks
	--rollout-timeout 60 --work-dir $TRASH_DIRECTORY"

server_ref() {
	git -C "repos/$ns/$1.git" rev-parse --verify -q "$2" || echo none
}

test_expect_success 'set up the namespace, keys, Remotes, Deployments and hooks' '
	kubectl delete namespace $ns --ignore-not-found --wait --timeout=90s &&
	kubectl create namespace $ns &&
	make_key alice && use_key alice &&
	mkdir admin-hooks admin-hooks/post-deploy &&
	cat >admin-hooks/post-deploy/10-record <<-EOF_ &&
	#!/bin/sh
	cat >"$TRASH_DIRECTORY/post-deploy.json"
	env >"$TRASH_DIRECTORY/post-deploy.env"
	echo "post-deploy hook saw \$SLIPWAY_AFTER"
	EOF_
	chmod +x admin-hooks/post-deploy/10-record &&
	cat >gate.sh <<-EOF_ &&
	#!/bin/sh
	# holds a pipeline in pre-build while $TRASH_DIRECTORY/hold exists
	[ -f "$TRASH_DIRECTORY/hold" ] || exit 0
	echo "holding at the gate"
	touch "$TRASH_DIRECTORY/held.\$SLIPWAY_AFTER"
	while [ -f "$TRASH_DIRECTORY/hold" ]; do sleep 0.1; done
	EOF_
	cat >freeze.sh <<-EOF_ &&
	#!/bin/sh
	if [ -f "$TRASH_DIRECTORY/frozen" ]; then echo "pushes are frozen: \$SLIPWAY_REF"; exit 1; fi
	EOF_
	kubectl -n $ns create configmap hooks --from-file=gate=gate.sh --from-file=freeze=freeze.sh &&
	app_remote web "\"hooks\":[{\"event\":\"pre-receive\",\"configMapRef\":{\"name\":\"hooks\",\"key\":\"freeze\"}},
	 {\"event\":\"pre-build\",\"configMapRef\":{\"name\":\"hooks\",\"key\":\"gate\"}}]" &&
	deployment web &&
	builder_image=$(test_slipway_image builder) && echo "$builder_image" >builder_image &&
	gitd_start_cluster $gitd_flags --builder-image "$builder_image" &&
	test_wait_for 10 test -d repos/$ns/web.git
'

test_expect_success 'a push deploys: image under the commit tag, Deployment pinned by digest, run Succeeded' '
	new_app src &&
	sha=$(git -C src rev-parse HEAD) &&
	start=$(date +%s%N) &&
	git -C src push "$GITD_URL/$ns/web.git" main >push.out 2>&1 &&
	say "git push to Succeeded: $((($(date +%s%N) - start) / 1000000)) ms" &&
	test "$(server_ref web main)" = "$sha" &&
	test_grep "remote: -----> Building web/web" push.out &&
	test_grep "remote: -----> Pipeline .* succeeded" push.out &&
	run=$(run_of $sha) && test -n "$run" &&
	test "$(succeeded $run)" = "True Succeeded" &&
	kubectl -n $ns wait --for=condition=Succeeded pipelinerun/$run --timeout=5s &&
	image=$(image_of web) &&
	case "$image" in "$REGISTRY/e2e/$ns-web-web-web@sha256:"*) ;; *) false ;; esac &&
	digest=${image#*@} &&
	curl -sf -o /dev/null -D headers -H "$accept" "http://$REGISTRY/v2/e2e/$ns-web-web-web/manifests/$sha" &&
	tr -d "\r" <headers | grep -qi "^docker-content-digest: $digest$" &&
	kubectl -n $ns rollout status deployment/web --timeout=60s &&
	test "$(kubectl -n $ns get deployment web -o jsonpath="{.spec.template.metadata.annotations.slipway\.dev/commit}")" = "$sha" &&
	kubectl -n $ns get pipelinerun $run -o jsonpath="{.status.images[0].image}" >img &&
	test "$(cat img)" = "$image" &&
	kubectl -n $ns get pipelinerun $run -o jsonpath="{.status.stages[*].name}" >stages &&
	test_grep "^receive queue pre-receive .*pre-build build build:web/web .*deploy.*post-deploy" stages &&
	kubectl -n $ns get pipelinerun $run -o json >plr.json &&
	jq -e "[.status.stages[] | select(.name == \"queue\" or .name == \"build:web/web\")
		| select(.phase == \"Succeeded\" and .startTime and .completionTime >= .startTime)] | length == 2" plr.json &&
	test "$(jq -r ".status.stages[] | select(.name == \"build:web/web\") | .message" plr.json)" = "$image" &&
	jq -r ".status.stages[] | select(.name == \"queue\") | .message" plr.json >queue.msg &&
	test_grep "^(no wait|waited [0-9]+\.[0-9]s( behind .+)?)$" queue.msg &&
	kubectl -n $ns get configmap web-pipeline -o jsonpath="{.data.pipelineRun} {.data.succeeded}" >mirror &&
	test "$(cat mirror)" = "$run True"
'

test_expect_success 'the post-deploy hook got the event JSON and SLIPWAY_* in a clean environment' '
	python3 - "$sha" "$(image_of web)" <<-EOF_ &&
	import json, sys
	ev = json.load(open("post-deploy.json"))
	assert ev["event"] == "post-deploy", ev["event"]
	assert ev["after"] == sys.argv[1]
	assert ev["ref"] == "refs/heads/main" and ev["remote"]["name"] == "web"
	assert ev["images"][0]["image"] == sys.argv[2], ev["images"]
	assert ev["pipelineRun"]
	EOF_
	test_grep "^SLIPWAY_AFTER=$sha$" post-deploy.env &&
	test_grep "^SLIPWAY_EVENT=post-deploy$" post-deploy.env &&
	! grep -q "^KUBECONFIG=$KUBECONFIG" post-deploy.env &&
	! grep -q "^SLIPWAY_ENV_FILE=" post-deploy.env &&
	test_grep "remote: post-deploy hook saw $sha" push.out
'

test_expect_success 'a broken Dockerfile rejects the push: BuildFailed, ref and Deployment unchanged' '
	before=$(server_ref web main) && image=$(image_of web) &&
	echo "RUN /bin/does-not-exist" >>src/app/Dockerfile &&
	git -C src -c user.name=T -c user.email=t@e commit -qam "break the build" &&
	bad=$(git -C src rev-parse HEAD) &&
	test_must_fail git -C src push "$GITD_URL/$ns/web.git" main >push.out 2>&1 &&
	test_grep "\[remote rejected\] main -> main [(]BuildFailed" push.out &&
	test_grep "remote: .*does-not-exist" push.out &&
	test "$(server_ref web main)" = "$before" &&
	test "$(image_of web)" = "$image" &&
	test "$(succeeded $(run_of $bad))" = "False BuildFailed" &&
	git -C src reset -q --hard HEAD^
'

test_expect_success 'a rejecting pre-receive hook rejects the push before anything is built' '
	before=$(server_ref web main) &&
	test_commit src app/www/frozen.html frozen &&
	touch frozen &&
	test_must_fail git -C src push "$GITD_URL/$ns/web.git" main >push.out 2>&1 &&
	rm frozen &&
	test_grep "remote: pushes are frozen: refs/heads/main" push.out &&
	test_grep "\[remote rejected\] main -> main [(]HookFailed" push.out &&
	test_must_fail grep -q "Building web" push.out &&
	test "$(server_ref web main)" = "$before" &&
	test "$(succeeded $(run_of $(git -C src rev-parse HEAD)))" = "False HookFailed"
'

test_expect_success 'a branch that does not deploy is stored without a pipeline' '
	git -C src push "$GITD_URL/$ns/web.git" HEAD:refs/heads/feature >push.out 2>&1 &&
	test "$(server_ref web feature)" = "$(git -C src rev-parse HEAD)" &&
	test_must_fail grep -q "Pipeline" push.out &&
	test "$(kubectl -n $ns get pipelineruns -l slipway.dev/ref=feature -o name | wc -l)" = 0
'

# The stuck Deployment is ready only while its page says "t7000/stuck:0",
# which the initial image (test_app_image) serves and the pushed app does not.
test_expect_success 'a rollout that never becomes ready is rolled back: DeployFailed, push rejected' '
	initial=$(test_app_image t7000/stuck:0) &&
	deployment stuck 1 "\"readinessProbe\":{\"exec\":{\"command\":[\"/bin/busybox\",\"grep\",\"-q\",\"t7000/stuck:0\",\"/www/index.html\"]},\"periodSeconds\":1}," 5 "$initial" &&
	kubectl -n $ns rollout status deployment/stuck --timeout=60s &&
	app_remote stuck &&
	test_wait_for 10 test -d repos/$ns/stuck.git &&
	test_must_fail git -C src push "$GITD_URL/$ns/stuck.git" main >push.out 2>&1 &&
	test_grep "\[remote rejected\] main -> main [(]DeployFailed" push.out &&
	test_grep "remote: .*Waiting for" push.out &&
	test "$(server_ref stuck main)" = none &&
	test "$(image_of stuck)" = "$initial" &&
	test_grep "remote: .*exceeded its progress deadline" push.out &&
	test "$(succeeded $(kubectl -n $ns get pipelineruns -l slipway.dev/remote=stuck -o jsonpath="{.items[0].metadata.name}"))" = "False DeployFailed"
'

test_expect_success 'with -o slipway.wait=false the ref moves at once and the pipeline runs after the push' '
	git -C src reset -q --hard $(server_ref web main) &&
	test_commit src app/www/nowait.html nowait &&
	sha=$(git -C src rev-parse HEAD) &&
	touch hold &&
	git -C src push -o slipway.wait=false "$GITD_URL/$ns/web.git" main >push.out 2>&1 &&
	test "$(server_ref web main)" = "$sha" &&
	test_grep "slipway.wait=false" push.out &&
	run=$(run_of $sha) && test -n "$run" &&
	test_wait_for 30 test -f held.$sha &&
	test "$(succeeded $run)" = "Unknown Running" &&
	rm hold &&
	kubectl -n $ns wait --for=condition=Succeeded pipelinerun/$run --timeout=90s &&
	test "$(kubectl -n $ns get deployment web -o jsonpath="{.spec.template.metadata.annotations.slipway\.dev/commit}")" = "$sha"
'

test_expect_success 'pushes to one Remote run one at a time, and a newer push supersedes a queued one (its queue stage Failed)' '
	touch hold &&
	test_commit src app/www/a.html a && a=$(git -C src rev-parse HEAD) &&
	git -C src push -o slipway.wait=false "$GITD_URL/$ns/web.git" main 2>/dev/null &&
	test_wait_for 30 test -f held.$a &&
	test_commit src app/www/b.html b && b=$(git -C src rev-parse HEAD) &&
	git -C src push -o slipway.wait=false "$GITD_URL/$ns/web.git" main 2>/dev/null &&
	test_wait_for 30 test -n "$(run_of $b)" &&
	test_commit src app/www/c.html c && c=$(git -C src rev-parse HEAD) &&
	git -C src push -o slipway.wait=false "$GITD_URL/$ns/web.git" main 2>/dev/null &&
	test_wait_for 30 sh -c "kubectl -n $ns get pipelinerun $(run_of $b) -o jsonpath={.status.conditions[0].reason} | grep -qx Superseded" &&
	test ! -f held.$c &&
	rm hold &&
	kubectl -n $ns wait --for=condition=Succeeded pipelinerun/$(run_of $a) --timeout=90s &&
	kubectl -n $ns wait --for=condition=Succeeded pipelinerun/$(run_of $c) --timeout=90s &&
	test "$(succeeded $(run_of $b))" = "False Superseded" &&
	kubectl -n $ns get pipelinerun $(run_of $b) -o json >plr.json &&
	test "$(jq -r ".status.stages[] | select(.name == \"queue\") | .phase+\" \"+.message" plr.json)" = \
		"Failed superseded by a newer push of refs/heads/main" &&
	jq -e "[.status.stages[].name | select(startswith(\"build\"))] == []" plr.json &&
	kubectl -n $ns get pipelinerun $(run_of $c) -o jsonpath="{.status.stages[?(@.name==\"queue\")].message}" >queue.msg &&
	test_grep "^waited [0-9]+\.[0-9]s behind $(run_of $a)$" queue.msg &&
	test "$(kubectl -n $ns get deployment web -o jsonpath="{.spec.template.metadata.annotations.slipway\.dev/commit}")" = "$c"
'

test_expect_success 'of two racing pushes from the same base, one deploys and the other is rejected unbuilt' '
	base=$(server_ref web main) &&
	rm -rf r1 r2 && git clone -q "$GITD_URL/$ns/web.git" r1 && git clone -q "$GITD_URL/$ns/web.git" r2 &&
	test_commit r1 app/www/r1.html r1 && test_commit r2 app/www/r2.html r2 &&
	touch hold &&
	start_push r1 r1.out origin main && p1=$bg_pid &&
	test_wait_for 30 test -f held.$(git -C r1 rev-parse HEAD) &&
	start_push r2 r2.out origin main && p2=$bg_pid &&
	test_wait_for 30 grep -q "Waiting for pipeline" r2.out &&
	rm hold &&
	wait $p1 $p2 &&
	test "$(cat r1.out.rc)" = 0 && test "$(cat r2.out.rc)" != 0 &&
	test_grep "[(]RefChanged" r2.out &&
	test "$(server_ref web main)" = "$(git -C r1 rev-parse HEAD)" &&
	test "$(succeeded $(run_of $(git -C r2 rev-parse HEAD)))" = "False RefChanged" &&
	test_must_fail grep -q "Building" r2.out
'

test_expect_success 'a registry that is down fails the build with a clear message' '
	remote down "\"registry\":{\"url\":\"127.0.0.1:9/e2e\",\"insecure\":true},
	 \"deployments\":[{\"name\":\"down\",\"containers\":[{\"name\":\"web\",\"path\":\"app\"}]}]" &&
	deployment down &&
	test_wait_for 10 test -d repos/$ns/down.git &&
	test_must_fail git -C r1 push "$GITD_URL/$ns/down.git" main >push.out 2>&1 &&
	test_grep "\[remote rejected\] main -> main [(]BuildFailed" push.out &&
	run=$(kubectl -n $ns get pipelineruns -l slipway.dev/remote=down -o jsonpath="{.items[0].metadata.name}") &&
	kubectl -n $ns get pipelinerun $run -o jsonpath="{.status.conditions[0].message}" >msg &&
	test_grep "127.0.0.1:9" msg &&
	test "$(server_ref down main)" = none
'

test_expect_success 'an app that exits 1 is DeployFailed with its CrashLoopBackOff and exit code, rolled back' '
	initial=$(test_app_image t7000/crash:0) &&
	deployment crash 1 "" 600 "$initial" &&
	kubectl -n $ns rollout status deployment/crash --timeout=60s &&
	app_remote crash &&
	test_wait_for 10 test -d repos/$ns/crash.git &&
	rm -rf crashsrc && cp -R src crashsrc &&
	sed -i "s|^ENTRYPOINT .*|ENTRYPOINT [\"/bin/busybox\", \"sh\", \"-c\", \"echo giving up; exit 1\"]|" crashsrc/app/Dockerfile &&
	git -C crashsrc -c user.name=T -c user.email=t@e commit -qam "an app that exits 1" &&
	start=$SECONDS &&
	test_must_fail git -C crashsrc push "$GITD_URL/$ns/crash.git" main >push.out 2>&1 &&
	test $((SECONDS - start)) -lt 60 &&
	test_grep "\[remote rejected\] main -> main [(]DeployFailed" push.out &&
	run=$(kubectl -n $ns get pipelineruns -l slipway.dev/remote=crash -o jsonpath="{.items[0].metadata.name}") &&
	test "$(succeeded $run)" = "False DeployFailed" &&
	kubectl -n $ns get pipelinerun $run -o jsonpath="{.status.conditions[0].message}" >msg &&
	test_grep "container web is in CrashLoopBackOff [(]exit code 1, last state Error" msg &&
	test_grep "rolled back" msg &&
	test "$(image_of crash)" = "$initial" &&
	test "$(server_ref crash main)" = none &&
	kubectl -n $ns rollout status deployment/crash --timeout=60s
'

# A post-build hook that deletes the images just pushed from the registry:
# the node then cannot pull what is deployed.
test_expect_success 'an image the node cannot pull is DeployFailed with the kubelet'"'"'s ErrImagePull or ImagePullBackOff' '
	cat >unpull.sh <<-EOF_ &&
	#!/bin/sh
	python3 -c "
	import json, sys, urllib.request
	for i in json.load(sys.stdin)[\"images\"]:
	    repo, digest = i[\"image\"].split(\"/\", 1)[1].split(\"@\")
	    urllib.request.urlopen(urllib.request.Request(\"http://$REGISTRY/v2/%s/manifests/%s\" % (repo, digest), method=\"DELETE\"))
	    print(\"deleted\", repo, digest)
	"
	EOF_
	kubectl -n $ns create configmap unpull --from-file=unpull=unpull.sh &&
	initial=$(test_app_image t7000/unpull:0) &&
	deployment unpull 1 "" 600 "$initial" &&
	app_remote unpull "\"hooks\":[{\"event\":\"post-build\",\"configMapRef\":{\"name\":\"unpull\",\"key\":\"unpull\"}}]" &&
	test_wait_for 10 test -d repos/$ns/unpull.git &&
	test_must_fail git -C src push "$GITD_URL/$ns/unpull.git" main >push.out 2>&1 &&
	test_grep "remote: deleted " push.out &&
	test_grep "\[remote rejected\] main -> main [(]DeployFailed" push.out &&
	run=$(kubectl -n $ns get pipelineruns -l slipway.dev/remote=unpull -o jsonpath="{.items[0].metadata.name}") &&
	kubectl -n $ns get pipelinerun $run -o jsonpath="{.status.conditions[0].message}" >msg &&
	test_grep "container web cannot start: (ErrImagePull|ImagePullBackOff)" msg &&
	test "$(image_of unpull)" = "$initial"
'

test_expect_success 'the pod runner builds in a builder Pod on the node and the app runs' '
	app_remote podbuild "\"builder\":{\"mode\":\"pod\",\"timeoutSeconds\":300}" &&
	deployment podbuild &&
	test_wait_for 10 test -d repos/$ns/podbuild.git &&
	git -C src fetch -q "$GITD_URL/$ns/web.git" main && git -C src reset -q --hard FETCH_HEAD &&
	sha=$(git -C src rev-parse HEAD) &&
	watch_builder_pods pods.seen && test_when_finished "kill $bg_pid" &&
	git -C src push "$GITD_URL/$ns/podbuild.git" main >push.out 2>&1 &&
	test_grep "^pod/podbuild-build-" pods.seen &&
	run=$(kubectl -n $ns get pipelineruns -l slipway.dev/remote=podbuild -o jsonpath="{.items[0].metadata.name}") &&
	test "$(succeeded $run)" = "True Succeeded" &&
	case "$(image_of podbuild)" in "$REGISTRY/e2e/$ns-podbuild-podbuild-web@sha256:"*) ;; *) false ;; esac &&
	test "$(server_ref podbuild main)" = "$sha" &&
	# the placeholder Pod goes once its grace period has passed
	test_wait_for 30 sh -c "test \"\$(kubectl -n $ns get pods -l app=podbuild -o jsonpath={.items[*].status.containerStatuses[0].ready})\" = true" &&
	test_wait_for 30 sh -c "test -z \"\$(kubectl -n $ns get pods,secrets -l slipway.dev/component=builder -o name)\""
'

test_expect_success 'a gitkube Remote deploys: secretRef by name, dockerfile from the repository root' '
	kubectl -n $ns create secret docker-registry regcred --docker-server="$REGISTRY" \
		--docker-username=ci --docker-password=not-a-secret &&
	kubectl -n $ns apply -f - <<-EOF_ &&
	{"apiVersion":"gitkube.sh/v1alpha1","kind":"Remote","metadata":{"name":"legacy"},
	 "spec":{"authorizedKeys":["$(cat alice.pub)"],
	  "registry":{"url":"$REGISTRY/e2e","insecure":true,"credentials":{"secretRef":"regcred"}},
	  "deployments":[{"name":"legacy","containers":[{"name":"web","path":"app","dockerfile":"app/Dockerfile"}]}]}}
	EOF_
	deployment legacy &&
	test_wait_for 10 test -d repos/$ns/legacy.git &&
	git -C src push "ssh://$ns-legacy@127.0.0.1:$GITD_PORT/~/git/$ns-legacy" main >push.out 2>&1 &&
	case "$(image_of legacy)" in "$REGISTRY/e2e/$ns-legacy-legacy-web@sha256:"*) ;; *) false ;; esac &&
	test_must_fail grep -q "not-a-secret" push.out gitd.log
'

test_expect_success 'gitd killed mid-pipeline: the run is Interrupted after restart, the repository unchanged' '
	before=$(server_ref web main) &&
	git -C src fetch -q "$GITD_URL/$ns/web.git" main && git -C src reset -q --hard FETCH_HEAD &&
	test_commit src app/www/kill.html kill && sha=$(git -C src rev-parse HEAD) &&
	touch hold &&
	start_push src push.out "$GITD_URL/$ns/web.git" main && pp=$bg_pid &&
	test_wait_for 30 test -f held.$sha &&
	run=$(run_of $sha) &&
	kill -KILL $gitd_pid && { wait $gitd_pid 2>/dev/null; gitd_pid=; } &&
	wait $pp && test "$(cat push.out.rc)" != 0 &&
	rm hold &&
	test "$(server_ref web main)" = "$before" &&
	gitd_start_cluster $gitd_flags --builder-image "$(cat builder_image)" &&
	kubectl -n $ns wait --for=jsonpath="{.status.conditions[0].reason}"=Interrupted pipelinerun/$run --timeout=30s &&
	test "$(succeeded $run)" = "False Interrupted" &&
	git -C repos/$ns/web.git fsck --no-progress &&
	test -z "$(find repos/$ns/web.git/objects -maxdepth 1 -name "incoming-*")" &&
	test "$(server_ref web main)" = "$before"
'

test_done
