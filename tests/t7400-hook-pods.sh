#!/usr/bin/env bash
test_description='image hooks: spec.hooks[] with an image run as Pods on the real node, their
log streamed live to git push; the release phase runs a pre-deploy command in the image
just built, by digest, with the Deployment'"'"'s environment, and stops the deploy when it fails'
. "$(dirname "$0")/test-lib.sh"
test_require_env
test_require_node
. "$SLIPWAY_ROOT/tests/lib-gitd.sh"
command -v buildah >/dev/null || test_skip_all "no buildah (tests/env/deps.sh installs it)"
[ -x /bin/busybox ] || test_skip_all "no /bin/busybox (Debian busybox-static)"
[ "$(id -u)" = 0 ] || test_skip_all "buildah with chroot isolation needs root here"

ns=t7400-hook-pods

# remote NAME SPEC-JSON-MEMBERS: a Remote with alice's key and the given
# spec members (JSON, without braces).
remote() {
	kubectl -n $ns apply -f - >/dev/null <<-EOF_
	{"apiVersion":"slipway.dev/v1alpha1","kind":"Remote","metadata":{"name":"$1"},
	 "spec":{"authorizedKeys":["$(cat alice.pub)"],$2}}
	EOF_
}

# run_of SHA: the PipelineRun of that commit.
run_of() {
	kubectl -n $ns get pipelineruns -l slipway.dev/commit="$1" -o jsonpath='{.items[0].metadata.name}'
}

# outcome RUN: "STATUS REASON" of its Succeeded condition.
outcome() {
	kubectl -n $ns get pipelinerun "$1" \
		-o jsonpath='{.status.conditions[?(@.type=="Succeeded")].status} {.status.conditions[?(@.type=="Succeeded")].reason}'
}

message_of() {
	kubectl -n $ns get pipelinerun "$1" -o jsonpath='{.status.conditions[?(@.type=="Succeeded")].message}'
}

image_of() {
	kubectl -n $ns get deployment "$1" -o jsonpath='{.spec.template.spec.containers[0].image}'
}

# hook_pods EVENT: names of the hook Pods of that event now
hook_pods() {
	kubectl -n $ns get pods -l "slipway.dev/component=hook,slipway.dev/event=$1" -o name
}

# watch_hook_pods EVENT OUT: "NAME IMAGE" of each hook Pod of EVENT as the
# API server shows it, into OUT, in the background; its pid in $bg_pid.
watch_hook_pods() {
	kubectl -n $ns get pods -l "slipway.dev/component=hook,slipway.dev/event=$1" --watch-only \
		-o jsonpath='{.metadata.name} {.spec.containers[0].image}{"\n"}' >"$2" 2>/dev/null &
	bg_pid=$!
}

server_ref() {
	git -C "repos/$ns/$1.git" rev-parse --verify -q "$2" || echo none
}

test_expect_success 'set up: the worktree CRDs, a namespace, the hooks image, a ServiceAccount for hooks, gitd' '
	kubectl apply --server-side --force-conflicts -f "$SLIPWAY_ROOT/manifests/crds/" >/dev/null &&
	kubectl wait --for=condition=Established crd/remotes.slipway.dev --timeout=30s &&
	kubectl delete namespace $ns --ignore-not-found --wait --timeout=90s &&
	kubectl create namespace $ns &&
	test_wait_for 30 kubectl -n $ns get serviceaccount default -o name &&
	kubectl -n $ns create serviceaccount slipway-hooks &&
	kubectl -n $ns create role hook-configmaps --verb=get,create,patch,update --resource=configmaps &&
	kubectl -n $ns create rolebinding hook-configmaps --role=hook-configmaps \
		--serviceaccount=$ns:slipway-hooks &&
	make_key alice && use_key alice && mkdir admin-hooks &&
	hooks_image=$(test_slipway_image hooks) && echo "$hooks_image" >hooks_image &&
	gitd_start_cluster --builder-mode local --builder "$SLIPWAY_ROOT/build/bin/builder" \
		--internal-listen "$HOST_IP" --rollout-timeout 120 --work-dir "$TRASH_DIRECTORY" \
		--hooks-image "$hooks_image" --hooks-dir "$TRASH_DIRECTORY/admin-hooks" \
		--hook-resources '"'"'{"limits":{"memory":"256Mi"},"requests":{"cpu":"50m"}}'"'"'
'

test_expect_success 'the CRD takes image (a string or fromBuild), command and serviceAccountName' '
	remote crdcheck "\"hooks\":[{\"event\":\"pre-deploy\",\"image\":{\"fromBuild\":{\"deployment\":\"d\",\"container\":\"c\"}},\"command\":[\"x\"]},
	 {\"event\":\"post-deploy\",\"image\":\"slipway/hooks\",\"serviceAccountName\":\"s\",\"configMapRef\":{\"name\":\"h\",\"key\":\"k\"}}]" &&
	test "$(kubectl -n $ns get remotes.slipway.dev crdcheck -o jsonpath={.spec.hooks[0].image.fromBuild.deployment})" = d &&
	test "$(kubectl -n $ns get remotes.slipway.dev crdcheck -o jsonpath={.spec.hooks[1].image})" = slipway/hooks &&
	test "$(kubectl -n $ns get remotes.slipway.dev crdcheck -o jsonpath={.spec.hooks[0].command[0]})" = x &&
	kubectl -n $ns delete remotes.slipway.dev crdcheck >/dev/null
'

cat >hook.py <<'EOF'
#!/usr/bin/env python3
# reads the event from stdin and records it in ConfigMap py-hook with kubectl
import json, os, subprocess, sys

event = json.load(sys.stdin)
print("python hook: event %s after %s as uid %d" % (event["event"], event["after"], os.getuid()), flush=True)
with open(os.environ["SLIPWAY_EVENT_FILE"]) as f:
    same = json.load(f) == event
cm = {"apiVersion": "v1", "kind": "ConfigMap",
      "metadata": {"name": "py-hook", "namespace": os.environ["SLIPWAY_NAMESPACE"]},
      "data": {"event": event["event"], "after": event["after"],
               "remote": os.environ["SLIPWAY_REMOTE"], "file_is_stdin": str(same)}}
subprocess.run(["kubectl", "apply", "-f", "-"], input=json.dumps(cm), text=True, check=True)
EOF
cat >live.sh <<'EOF'
#!/bin/sh
echo "live: before the sleep"
sleep 3
echo "live: after the sleep"
EOF
printf '#!/bin/sh\necho "slow hook starts"\nexec sleep 60\n' >slow.sh

test_expect_success 'a Python hook in slipway/hooks reads the event from stdin and writes a ConfigMap with kubectl' '
	kubectl -n $ns create configmap hooks --from-file=hook.py --from-file=live.sh --from-file=slow.sh &&
	remote hooks "\"hooks\":[{\"event\":\"post-deploy\",\"image\":\"slipway/hooks\",
	 \"serviceAccountName\":\"slipway-hooks\",\"configMapRef\":{\"name\":\"hooks\",\"key\":\"hook.py\"},\"timeoutSeconds\":120}]" &&
	test_wait_for 10 test -d repos/$ns/hooks.git &&
	git init -q -b main h && test_commit h a.txt one &&
	sha=$(git -C h rev-parse HEAD) &&
	git -C h push "$GITD_URL/$ns/hooks.git" main >push.out 2>&1 &&
	cat push.out &&
	test_grep "remote: -----> Running hook configmap/hooks:hook.py \(image slipway/hooks\)" push.out &&
	test_grep "remote: python hook: event post-deploy after $sha as uid 65532" push.out &&
	test "$(kubectl -n $ns get configmap py-hook -o jsonpath={.data.after})" = "$sha" &&
	test "$(kubectl -n $ns get configmap py-hook -o jsonpath={.data.event})" = post-deploy &&
	test "$(kubectl -n $ns get configmap py-hook -o jsonpath={.data.remote})" = hooks &&
	test "$(kubectl -n $ns get configmap py-hook -o jsonpath={.data.file_is_stdin})" = True &&
	run=$(run_of $sha) && test "$(outcome $run)" = "True Succeeded" &&
	kubectl -n $ns get pipelinerun $run -o jsonpath={.status.logTail} >tail &&
	test_grep "^python hook: event post-deploy after $sha" tail
'

test_expect_success 'the hook Pod ran the hooks image with the ServiceAccount, is owned by the PipelineRun and is deleted after success' '
	test_grep "\"event\":\"hook_pod\".*\"image\":\"$hooks_image\"" gitd.log &&
	test -z "$(hook_pods post-deploy)" &&
	test -z "$(kubectl -n $ns get configmaps -l slipway.dev/component=hook -o name)"
'

test_expect_success 'a hook line printed before a 3 s sleep reaches git push while the hook Pod still runs' '
	remote hooks "\"hooks\":[{\"event\":\"pre-build\",\"image\":\"slipway/hooks\",
	 \"configMapRef\":{\"name\":\"hooks\",\"key\":\"live.sh\"},\"timeoutSeconds\":60}]" &&
	test_commit h b.txt two &&
	{ git -C h push "$GITD_URL/$ns/hooks.git" main 2>&1; echo "rc $?"; } |
	while IFS= read -r line; do
		printf "%s %s\n" "$(date +%s%N)" "$line"
		case "$line" in
		*"live: before the sleep"*)
			# as the line arrives: is the hook still running?
			printf "phase-then %s\n" "$(kubectl -n $ns get pods -l slipway.dev/component=hook,slipway.dev/event=pre-build \
				-o jsonpath={.items[*].status.phase})" ;;
		esac
	done >live.out &&
	cat live.out &&
	test_grep " rc 0$" live.out &&
	test_grep "^phase-then Running$" live.out &&
	before=$(awk "/live: before the sleep/ { print \$1; exit }" live.out) &&
	after=$(awk "/live: after the sleep/ { print \$1; exit }" live.out) &&
	test -n "$before" && test -n "$after" && test "$before" -lt "$after"
'

test_expect_success 'a hook Pod past timeoutSeconds is deleted and the run is HookFailed with Timeout' '
	remote hooks "\"hooks\":[{\"event\":\"pre-build\",\"image\":\"slipway/hooks\",
	 \"configMapRef\":{\"name\":\"hooks\",\"key\":\"slow.sh\"},\"timeoutSeconds\":5}]" &&
	test_commit h c.txt three &&
	sha=$(git -C h rev-parse HEAD) &&
	test_must_fail git -C h push "$GITD_URL/$ns/hooks.git" main >push.out 2>&1 &&
	cat push.out &&
	test "$(server_ref hooks main)" != "$sha" &&
	run=$(run_of $sha) && test "$(outcome $run)" = "False HookFailed" &&
	message_of $run >msg && cat msg &&
	test_grep "Timeout" msg &&
	test_wait_for 30 test -z "$(hook_pods pre-build)"
'

test_expect_success 'a failed hook keeps its Pod for kubectl logs, marked with keep-until; its spec has the limits' '
	printf "#!/bin/sh\necho \"checks failed\"\nexit 3\n" >fail.sh &&
	kubectl -n $ns create configmap fail --from-file=fail.sh &&
	remote hooks "\"hooks\":[{\"event\":\"pre-build\",\"image\":\"slipway/hooks\",
	 \"configMapRef\":{\"name\":\"fail\",\"key\":\"fail.sh\"}}]" &&
	test_commit h d.txt four &&
	sha=$(git -C h rev-parse HEAD) &&
	test_must_fail git -C h push "$GITD_URL/$ns/hooks.git" main >push.out 2>&1 &&
	cat push.out &&
	test_grep "remote: checks failed" push.out &&
	test_grep "exited with status 3 \(pod $ns/hooks-hook-[a-z0-9]{5} kept until " push.out &&
	pod=$(hook_pods pre-build) && test -n "$pod" &&
	kubectl -n $ns logs $pod >logs && test_grep "^checks failed$" logs &&
	test -n "$(kubectl -n $ns get $pod -o jsonpath={.metadata.annotations.slipway\\.dev/keep-until})" &&
	test "$(kubectl -n $ns get $pod -o jsonpath={.metadata.ownerReferences[0].kind})" = PipelineRun &&
	test "$(kubectl -n $ns get $pod -o jsonpath={.metadata.ownerReferences[0].name})" = "$(run_of $sha)" &&
	test "$(kubectl -n $ns get $pod -o jsonpath={.spec.automountServiceAccountToken})" = false &&
	test "$(kubectl -n $ns get $pod -o jsonpath={.spec.containers[0].resources.limits.memory})" = 256Mi &&
	test "$(kubectl -n $ns get $pod -o jsonpath={.spec.activeDeadlineSeconds})" = 300
'

test_expect_success 'a serviceAccountName gitd does not allow (--hook-service-accounts) fails the hook before any Pod' '
	remote hooks "\"hooks\":[{\"event\":\"pre-build\",\"image\":\"slipway/hooks\",
	 \"serviceAccountName\":\"default\",\"configMapRef\":{\"name\":\"hooks\",\"key\":\"live.sh\"}}]" &&
	test_commit h sa.txt sa &&
	pods_before=$(hook_pods pre-build) &&
	test_must_fail git -C h push "$GITD_URL/$ns/hooks.git" main >push.out 2>&1 &&
	cat push.out &&
	test_grep "serviceAccountName \"default\" is not one gitd allows hooks \(--hook-service-accounts\)" push.out &&
	test "$(hook_pods pre-build)" = "$pods_before"
'

test_expect_success 'hooks/examples/configmap-update.sh runs unchanged as an image hook in slipway/hooks' '
	kubectl -n $ns create configmap examples --from-file="$SLIPWAY_ROOT/hooks/examples/configmap-update.sh" &&
	remote hooks "\"hooks\":[{\"event\":\"post-deploy\",\"image\":\"slipway/hooks\",
	 \"serviceAccountName\":\"slipway-hooks\",\"configMapRef\":{\"name\":\"examples\",\"key\":\"configmap-update.sh\"}}]" &&
	test_commit h e.txt five &&
	sha=$(git -C h rev-parse HEAD) &&
	git -C h push "$GITD_URL/$ns/hooks.git" main >push.out 2>&1 &&
	cat push.out &&
	test_grep "remote: configmap $ns/hooks-deployed: commit $sha" push.out &&
	test "$(kubectl -n $ns get configmap hooks-deployed -o jsonpath={.data.commit})" = "$sha"
'

test_expect_success 'an admin hook with a slipway-pod header runs as a Pod in the Remote namespace' '
	mkdir -p admin-hooks/pre-build &&
	cat >admin-hooks/pre-build/10-policy <<-\EOF_ &&
	#!/bin/sh
	# slipway-pod: {"image": "slipway/hooks", "timeoutSeconds": 60}
	echo "admin policy in a pod: $(jq -r .event) for $SLIPWAY_NAMESPACE/$SLIPWAY_REMOTE, host $(cat /etc/hostname)"
	EOF_
	chmod +x admin-hooks/pre-build/10-policy &&
	test_when_finished "rm -rf admin-hooks/pre-build" &&
	remote hooks "\"hooks\":[]" &&
	test_commit h f.txt six &&
	git -C h push "$GITD_URL/$ns/hooks.git" main >push.out 2>&1 &&
	cat push.out &&
	test_grep "remote: -----> Running hook .*admin-hooks/pre-build/10-policy" push.out &&
	test_grep "remote: admin policy in a pod: pre-build for $ns/hooks, host hooks-hook-[a-z0-9]{5}" push.out
'

test_expect_success 'an admin hook with a malformed slipway-pod header fails, naming what is wrong' '
	mkdir -p admin-hooks/pre-build &&
	printf "#!/bin/sh\n# slipway-pod: {\"imag\": \"x\"}\necho never\n" >admin-hooks/pre-build/20-bad &&
	chmod +x admin-hooks/pre-build/20-bad &&
	test_when_finished "rm -rf admin-hooks/pre-build" &&
	test_commit h g.txt seven &&
	test_must_fail git -C h push "$GITD_URL/$ns/hooks.git" main >push.out 2>&1 &&
	cat push.out &&
	test_grep "bad slipway-pod header: \"imag\": not image, serviceAccountName" push.out &&
	! grep -q "remote: never" push.out
'

# The app for the release phase: busybox as /bin/busybox and /bin/sh, and
# /app/release.sh, which reads the event from stdin, prints the
# Deployment's environment and fails while /www/fail exists.
release_app() {
	rm -rf "$1" && git init -q -b main "$1" && mkdir "$1/app" "$1/app/www" &&
	cp /bin/busybox "$1/app/" &&
	echo "$2" >"$1/app/www/version" &&
	cat >"$1/app/Dockerfile" <<-\EOF_ &&
	FROM scratch
	COPY busybox /bin/busybox
	COPY busybox /bin/sh
	COPY www /www
	COPY release.sh /app/release.sh
	USER 65534:65534
	ENTRYPOINT ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]
	EOF_
	cat >"$1/app/release.sh" <<-\EOF_ &&
	#!/bin/sh
	event=$(/bin/busybox head -c 64)
	echo "release: version $(/bin/busybox cat /www/version) DATABASE_URL=$DATABASE_URL GREETING=$GREETING"
	echo "release: stdin starts $event"
	if [ -f /www/fail ]; then echo "release: migration failed"; exit 4; fi
	echo "release: migrated"
	EOF_
	chmod +x "$1/app/release.sh" &&
	git -C "$1" add . &&
	git -C "$1" -c user.name=Tester -c user.email=tester@example.com commit -q -m "release app $2"
}

test_expect_success 'release phase: set up a Remote with a fromBuild pre-deploy command and its Deployment' '
	kubectl -n $ns create configmap web-config --from-literal=GREETING=hi &&
	remote web "\"registry\":{\"url\":\"$REGISTRY/t7400\",\"insecure\":true},
	 \"deployments\":[{\"name\":\"web\",\"containers\":[{\"name\":\"web\",\"path\":\"app\"}]}],
	 \"hooks\":[{\"event\":\"pre-deploy\",\"image\":{\"fromBuild\":{\"deployment\":\"web\",\"container\":\"web\"}},
	   \"command\":[\"/app/release.sh\"],\"timeoutSeconds\":120}]" &&
	kubectl -n $ns apply -f - >/dev/null <<-EOF_ &&
	{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
	 "spec":{"replicas":1,"selector":{"matchLabels":{"app":"web"}},
	  "template":{"metadata":{"labels":{"app":"web"}},
	   "spec":{"terminationGracePeriodSeconds":2,
	    "containers":[{"name":"web","image":"$REGISTRY/placeholder/web:0",
	     "env":[{"name":"DATABASE_URL","value":"postgres://db.$ns/web"}],
	     "envFrom":[{"configMapRef":{"name":"web-config"}}],
	     "ports":[{"containerPort":8080}]}]}}}}
	EOF_
	test_wait_for 10 test -d repos/$ns/web.git
'

test_expect_success 'a failing release command rejects the push: HookFailed, its output in the log tail, the Deployment unchanged' '
	release_app app v1 && touch app/app/www/fail &&
	git -C app add . && git -C app -c user.name=T -c user.email=t@e commit -q -m fail &&
	sha=$(git -C app rev-parse HEAD) &&
	before=$(image_of web) &&
	test_must_fail git -C app push "$GITD_URL/$ns/web.git" main >push.out 2>&1 &&
	cat push.out &&
	test_grep "remote: release: migration failed" push.out &&
	test "$(server_ref web main)" = none &&
	run=$(run_of $sha) && test "$(outcome $run)" = "False HookFailed" &&
	message_of $run >msg && cat msg &&
	test_grep "pre-deploy hook failed: hook /app/release.sh \(image fromBuild web/web\) exited with status 4" msg &&
	kubectl -n $ns get pipelinerun $run -o jsonpath={.status.logTail} >tail &&
	test_grep "^release: migration failed$" tail &&
	test "$(image_of web)" = "$before" &&
	test "$(kubectl -n $ns get pipelinerun $run -o jsonpath="{.status.stages[?(@.name==\"deploy\")].name}")" = ""
'

test_expect_success 'the release command succeeding runs in the new image by digest with the Deployment environment, then deploys it' '
	rm app/app/www/fail && echo v2 >app/app/www/version &&
	git -C app add -A && git -C app -c user.name=T -c user.email=t@e commit -q -m v2 &&
	sha=$(git -C app rev-parse HEAD) &&
	watch_hook_pods pre-deploy pods.out && watch_pid=$bg_pid &&
	test_when_finished "kill $watch_pid 2>/dev/null" &&
	git -C app push "$GITD_URL/$ns/web.git" main >push.out 2>&1 &&
	cat push.out &&
	test "$(server_ref web main)" = "$sha" &&
	run=$(run_of $sha) && test "$(outcome $run)" = "True Succeeded" &&
	test_grep "remote: release: version v2 DATABASE_URL=postgres://db.$ns/web GREETING=hi" push.out &&
	test_grep "remote: release: stdin starts \{\"event\":\"pre-deploy\"" push.out &&
	deployed=$(image_of web) &&
	case "$deployed" in "$REGISTRY/t7400/$ns-web-web-web@sha256:"*) ;; *) false ;; esac &&
	test_wait_for 10 test -s pods.out &&
	cat pods.out &&
	pod_image=$(awk "NF == 2 { print \$2; exit }" pods.out) &&
	test "$pod_image" = "$deployed"
'

test_expect_success 'clean up the namespace' '
	gitd_stop &&
	kubectl delete namespace $ns --wait=false >/dev/null
'

test_done
