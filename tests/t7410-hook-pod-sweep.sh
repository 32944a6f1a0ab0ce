#!/usr/bin/env bash
test_description='kept hook Pods are swept on time: gitd'"'"'s pipeline server deletes a failed
hook'"'"'s Pod once its slipway.dev/keep-until has passed, in a served namespace, with no
other hook run to do it'
. "$(dirname "$0")/test-lib.sh"
test_require_env
test_require_node
. "$SLIPWAY_ROOT/tests/lib-gitd.sh"
command -v buildah >/dev/null || test_skip_all "no buildah (tests/env/image.sh builds the hooks image)"
[ "$(id -u)" = 0 ] || test_skip_all "tests/env/image.sh needs root"

ns=t7410-hook-pod-sweep
# the sweep's period (HOOKPOD_SWEEP_PERIOD_S) plus the keep time and slack
sweep_wait=100

hook_pods() {
	kubectl -n $ns get pods -l slipway.dev/component=hook -o name
}

no_hook_pods() {
	test -z "$(hook_pods)"
}

# no_configmap NAME: true once NAME is gone
no_configmap() {
	test -z "$(kubectl -n $ns get configmap "$1" -o name --ignore-not-found)"
}

test_expect_success 'set up: the worktree CRDs, a namespace, gitd serving it with --hook-pod-keep 2' '
	kubectl apply --server-side --force-conflicts -f "$SLIPWAY_ROOT/manifests/crds/" >/dev/null &&
	kubectl wait --for=condition=Established crd/remotes.slipway.dev --timeout=30s &&
	kubectl delete namespace $ns --ignore-not-found --wait --timeout=90s &&
	kubectl create namespace $ns &&
	test_wait_for 30 kubectl -n $ns get serviceaccount default -o name &&
	make_key alice && use_key alice &&
	hooks_image=$(test_slipway_image hooks) &&
	gitd_start_cluster --namespace $ns --hooks-image "$hooks_image" --hook-pod-keep 2
'

test_expect_success 'a failed hook is rejected and its Pod is kept right after the push' '
	printf "#!/bin/sh\necho \"checks failed\"\nexit 3\n" >fail.sh &&
	kubectl -n $ns create configmap fail --from-file=fail.sh &&
	kubectl -n $ns apply -f - >/dev/null <<-EOF_ &&
	{"apiVersion":"slipway.dev/v1alpha1","kind":"Remote","metadata":{"name":"sweep"},
	 "spec":{"authorizedKeys":["$(cat alice.pub)"],
	  "hooks":[{"event":"pre-build","image":"slipway/hooks",
	            "configMapRef":{"name":"fail","key":"fail.sh"}}]}}
	EOF_
	test_wait_for 30 test -d repos/$ns/sweep.git &&
	git init -q -b main app && test_commit app a.txt one &&
	test_must_fail git -C app push "$GITD_URL/$ns/sweep.git" main >push.out 2>&1 &&
	cat push.out &&
	test_grep "exited with status 3 \(pod $ns/sweep-hook-[a-z0-9]{5} kept until " push.out &&
	pod=$(hook_pods) && test -n "$pod" && echo "${pod#pod/}" >pod &&
	test -n "$(kubectl -n $ns get $pod -o jsonpath={.metadata.annotations.slipway\\.dev/keep-until})" &&
	kubectl -n $ns get configmap "$(cat pod)-event" -o name
'

test_expect_success 'the kept Pod and its event ConfigMap are gone within the sweep period, with no other hook run' '
	test_wait_for $sweep_wait no_hook_pods &&
	test_wait_for 10 grep -q "\"event\":\"hook_pod_swept\".*\"pod\":\"$(cat pod)\"" gitd.log &&
	grep "hook_pod_swept" gitd.log &&
	test "$(grep -cE "\"event\":\"hook_pod\"[,}]" gitd.log)" = 1 &&
	test_wait_for 60 no_configmap "$(cat pod)-event"
'

test_expect_success 'clean up the namespace' '
	gitd_stop &&
	kubectl delete namespace $ns --wait=false >/dev/null
'

test_done
