#!/usr/bin/env bash
test_description='gitd/hook against the real API server: ConfigMap hooks, the hooks kubeconfig, the configmap-update example'
. "$(dirname "$0")/test-lib.sh"
test_require_env

ns=hooks-e2e
before=1111111111111111111111111111111111111111
after=2222222222222222222222222222222222222222
examples=$SLIPWAY_ROOT/hooks/examples

# event EVENT: the event JSON as the pipeline builds it
event() {
	printf '{"event":"%s","remote":{"namespace":"%s","name":"web"},"ref":"refs/heads/main","branch":"main","before":"%s","after":"%s","pusher":{"fingerprint":"SHA256:e2e","comment":"alice@laptop"},"pipelineRun":"web-e2e","images":[],"deployments":[],"stages":[]}\n' \
		"$1" "$ns" "$before" "$after"
}

# run_hooks EVENT [ARGS...]: hooktool run for the Remote web, output in out
run_hooks() {
	local ev=$1
	shift
	event "$ev" >"$ev.json" &&
	hooktool run $ns web "$ev" "$ev.json" --work-dir "$TRASH_DIRECTORY/work" "$@" >out
}

test_expect_success 'set up a namespace, a Remote with ConfigMap hooks, and their scripts' '
	kubectl delete namespace $ns --ignore-not-found --wait --timeout=90s &&
	kubectl create namespace $ns &&
	cat >remote.yaml <<-EOF &&
	apiVersion: slipway.dev/v1alpha1
	kind: Remote
	metadata: {name: web, namespace: $ns}
	spec:
	  hooks:
	  - {event: pre-build, configMapRef: {name: web-hooks, key: check.sh}, timeoutSeconds: 30}
	  - {event: post-build, configMapRef: {name: web-hooks, key: slow.sh}, timeoutSeconds: 1}
	  - {event: pre-deploy, configMapRef: {name: web-hooks, key: missing.sh}}
	  - {event: post-deploy, configMapRef: {name: web-hooks, key: configmap-update.sh}}
	  - {event: post-receive, configMapRef: {name: nothere, key: x.sh}}
	EOF
	kubectl apply -f remote.yaml &&
	printf "#!/bin/sh\necho \"event=\$SLIPWAY_EVENT remote=\$SLIPWAY_NAMESPACE/\$SLIPWAY_REMOTE after=\$SLIPWAY_AFTER\"\nprintf \"stdin=%%s\\\\n\" \"\$(cat)\"\nls -A\n" >check.sh &&
	printf "#!/bin/sh\necho sleeping\nexec sleep 30\n" >slow.sh &&
	kubectl -n $ns create configmap web-hooks --from-file=check.sh --from-file=slow.sh \
		--from-file="$examples/configmap-update.sh" &&
	mkdir -m 700 work
'

test_expect_success 'a ConfigMap hook runs with the event on stdin and SLIPWAY_* set' '
	run_hooks pre-build &&
	test_grep "^start: configmap/web-hooks:check.sh$" out &&
	test_grep "^\| event=pre-build remote=$ns/web after=$after$" out &&
	test_grep "^\| stdin=\{\"event\":\"pre-build\",\"remote\":\{\"namespace\":\"$ns\"" out &&
	test_grep "^result: 0$" out &&
	test_grep "^nrun: 1$" out
'

test_expect_success 'the script and the event file are gone from the work directory afterwards' '
	test_grep "^\| hook-" out &&
	test -z "$(ls -A work)"
'

test_expect_success 'a missing ConfigMap key is a failure that names the hook and the key' '
	test_expect_code 1 run_hooks pre-deploy &&
	test_grep "^result: 1$" out &&
	test_grep "^hook: configmap/web-hooks:missing.sh$" out &&
	test_grep "^message: hook configmap/web-hooks:missing.sh: configmap $ns/web-hooks has no key \"missing.sh\"$" out
'

test_expect_success 'a missing ConfigMap is a failure that names it' '
	test_expect_code 1 run_hooks post-receive &&
	test_grep "^message: hook configmap/nothere:x.sh: configmap $ns/nothere not found$" out
'

test_expect_success 'the Remote hook timeoutSeconds stops a hook that hangs' '
	SECONDS=0 &&
	test_expect_code 1 run_hooks post-build &&
	test $SECONDS -lt 10 &&
	test_grep "^\| sleeping$" out &&
	test_grep "^message: hook configmap/web-hooks:slow.sh timed out after 1s$" out
'

test_expect_success 'a hooks kubeconfig authenticates as the ServiceAccount, mode 0600' '
	kubectl -n $ns create serviceaccount slipway-hooks &&
	hooktool kubeconfig hooks.kubeconfig $ns slipway-hooks 600 >tool.out 2>&1 &&
	test ! -s tool.out &&
	test "$(stat -c %a hooks.kubeconfig)" = 600 &&
	test "$(kubectl --kubeconfig hooks.kubeconfig auth whoami -o jsonpath={.status.userInfo.username})" = \
	     "system:serviceaccount:$ns:slipway-hooks" &&
	test "$(kubectl --kubeconfig hooks.kubeconfig config view -o jsonpath={.contexts[0].context.namespace})" = $ns
'

test_expect_success 'without RBAC the ServiceAccount is refused, by name, not gitd admin' '
	test_must_fail kubectl --kubeconfig hooks.kubeconfig get configmaps 2>err &&
	test_grep "User \"system:serviceaccount:$ns:slipway-hooks\" cannot list resource \"configmaps\"" err
'

test_expect_success 'a missing ServiceAccount is NotFound (exit 3) and writes nothing' '
	test_expect_code 3 hooktool kubeconfig none.kubeconfig $ns nobody 2>err &&
	test_grep "not found" err &&
	test ! -e none.kubeconfig
'

test_expect_success 'the configmap-update example records the deployed commit through the hooks kubeconfig' '
	kubectl -n $ns create role slipway-hooks-configmaps --verb=get,create,patch,update --resource=configmaps &&
	kubectl -n $ns create rolebinding slipway-hooks-configmaps --role=slipway-hooks-configmaps \
		--serviceaccount=$ns:slipway-hooks &&
	run_hooks post-deploy --hooks-kubeconfig "$TRASH_DIRECTORY/hooks.kubeconfig" &&
	test_grep "^\| configmap $ns/web-deployed: commit $after$" out &&
	test "$(kubectl -n $ns get configmap web-deployed -o jsonpath={.data.commit})" = $after &&
	test "$(kubectl -n $ns get configmap web-deployed -o jsonpath={.data.pipelineRun})" = web-e2e &&
	kubectl -n $ns get configmap web-deployed -o jsonpath={.data.event\\.json} >event.got &&
	event post-deploy >event.want &&
	test_cmp event.want event.got
'

test_expect_success 'a second deploy updates the same ConfigMap' '
	after=3333333333333333333333333333333333333333 &&
	run_hooks post-deploy --hooks-kubeconfig "$TRASH_DIRECTORY/hooks.kubeconfig" &&
	test "$(kubectl -n $ns get configmap web-deployed -o jsonpath={.data.commit})" = $after
'

test_expect_success 'a script kept in binaryData (it is not UTF-8) is decoded and runs' '
	printf "#!/bin/sh\n# \377\376\necho binary-hook ran\n" >bin.sh &&
	kubectl -n $ns create configmap bin-hooks --from-file=bin.sh &&
	test -n "$(kubectl -n $ns get configmap bin-hooks -o jsonpath={.binaryData.bin\\.sh})" &&
	cat >remote-bin.yaml <<-EOF &&
	apiVersion: slipway.dev/v1alpha1
	kind: Remote
	metadata: {name: bin, namespace: $ns}
	spec:
	  hooks:
	  - {event: pre-build, configMapRef: {name: bin-hooks, key: bin.sh}}
	EOF
	kubectl apply -f remote-bin.yaml &&
	event pre-build >bin.json &&
	hooktool run $ns bin pre-build bin.json --work-dir "$TRASH_DIRECTORY/work" >out &&
	test_grep "^start: configmap/bin-hooks:bin.sh$" out &&
	test_grep "^\| binary-hook ran$" out &&
	test_grep "^result: 0$" out
'

test_expect_success 'clean up the namespace' '
	kubectl delete namespace $ns --wait=false
'

test_done
