#!/usr/bin/env bash
test_description='deployer: set images and follow rollouts on the real cluster (KWOK pods)'
. "$(dirname "$0")/test-lib.sh"
test_require_env

ns=deployer-e2e
image() { kubectl -n $ns get deploy "$1" -o jsonpath="{.spec.template.spec.containers[?(@.name==\"$2\")].image}"; }
generation() { kubectl -n $ns get deploy "$1" -o jsonpath={.metadata.generation}; }

# make_deployment NAME REPLICAS [EXTRA-SPEC-JSON]: a Deployment of KWOK pods with
# containers app and side, rolled out.
make_deployment() {
	kubectl -n $ns apply -f - <<-EOF_ &&
	{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"$1"},
	 "spec":{"replicas":$2,"progressDeadlineSeconds":${4:-600},
	  "strategy":{"rollingUpdate":{"maxSurge":1,"maxUnavailable":0}},
	  "selector":{"matchLabels":{"app":"$1"}},
	  "template":{"metadata":{"labels":{"app":"$1"}},
	   "spec":{${3:-}"containers":[{"name":"app","image":"registry.invalid/$1:1"},
	                     {"name":"side","image":"registry.invalid/side:1"}]}}}}
	EOF_
	kubectl -n $ns rollout status deployment/$1 --timeout=90s
}

test_expect_success 'set up a namespace' '
	kubectl delete namespace $ns --ignore-not-found --wait --timeout=90s &&
	kubectl create namespace $ns
'

test_expect_success 'deployer --help documents the commands and exit codes' '
	deployer --help >out &&
	test_grep "set-image deployment/NAME CONTAINER=IMAGE" out &&
	test_grep "^  6  the Deployment kept changing" out
'

test_expect_success 'deployer without arguments is a usage error (exit 2)' '
	test_expect_code 2 deployer 2>err &&
	test_grep "Try .deployer --help." err
'

test_expect_success 'set-image --wait rolls out to ready KWOK pods and annotates the template' '
	make_deployment web 3 &&
	deployer -n $ns set-image deployment/web app=registry.invalid/web:2 --wait --commit 0123abc >out &&
	test_grep "^Waiting for (rollout|deployment spec)" out &&
	test_grep "^deployment \"web\" successfully rolled out$" out &&
	test "$(image web app)" = registry.invalid/web:2 &&
	test "$(image web side)" = registry.invalid/side:1 &&
	test "$(kubectl -n $ns get deploy web -o jsonpath={.spec.template.metadata.annotations.slipway\\.dev/commit})" = 0123abc &&
	kubectl -n $ns get deploy web -o jsonpath="{.spec.template.metadata.annotations.kubernetes\\.io/change-cause}" >cause &&
	test_grep "app=registry.invalid/web:2" cause &&
	test "$(kubectl -n $ns get deploy web -o jsonpath={.status.readyReplicas})" = 3 &&
	test "$(kubectl -n $ns get pods -l app=web --field-selector=status.phase=Running -o name | wc -l)" -ge 3
'

test_expect_success 'several containers at once, pinned by digest' '
	d=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef &&
	deployer -n $ns set-image deployment/web app=registry.invalid/web@$d side=registry.invalid/side:2 --wait -q >out &&
	test "$(image web app)" = registry.invalid/web@$d &&
	test "$(image web side)" = registry.invalid/side:2
'

test_expect_success 'status reports a finished rollout, its images and commit (exit 0)' '
	deployer -n $ns status deployment/web >out &&
	test_grep "^deployment $ns/web: successfully rolled out$" out &&
	test_grep "^container side: registry.invalid/side:2$" out &&
	test_grep "^commit: 0123abc$" out
'

test_expect_success 'a missing Deployment is exit 3 with a one-line error' '
	test_expect_code 3 deployer -n $ns set-image deployment/nope app=registry.invalid/x:1 2>err &&
	test "$(cat err)" = "deployer: deployment $ns/nope not found"
'

test_expect_success 'an unknown container is exit 3 and changes nothing' '
	g=$(generation web) &&
	test_expect_code 3 deployer -n $ns set-image deployment/web app=registry.invalid/web:9 nosuch=registry.invalid/x:1 2>err &&
	test_grep "has no container \"nosuch\"" err &&
	test "$(generation web)" = "$g" &&
	test "$(image web side)" = registry.invalid/side:2
'

test_expect_success 'a bad image reference is exit 5 and changes nothing' '
	g=$(generation web) &&
	test_expect_code 5 deployer -n $ns set-image deployment/web "app=Registry.invalid/UPPER:tag;rm" 2>err &&
	test_grep "invalid image reference" err &&
	test "$(generation web)" = "$g"
'

test_expect_success 'a rollout that never becomes ready fails and is rolled back (exit 1)' '
	nodes=$(kubectl get nodes -l type=kwok -o name | wc -l) &&
	affinity="\"affinity\":{\"podAntiAffinity\":{\"requiredDuringSchedulingIgnoredDuringExecution\":[{\"labelSelector\":{\"matchLabels\":{\"app\":\"stuck\"}},\"topologyKey\":\"kubernetes.io/hostname\"}]}}," &&
	make_deployment stuck $nodes "$affinity" 5 &&
	test_expect_code 1 deployer -n $ns set-image deployment/stuck app=registry.invalid/stuck:2 --rollback-on-failure --timeout 90s >out 2>err &&
	test_grep "exceeded its progress deadline; rolled back to the previous images" err &&
	test_grep "^rolling back deployment $ns/stuck" out &&
	test "$(image stuck app)" = registry.invalid/stuck:1 &&
	kubectl -n $ns rollout status deployment/stuck --timeout=60s &&
	test "$(kubectl -n $ns get pods -l app=stuck -o jsonpath="{.items[*].spec.containers[0].image}" | tr " " "\n" | sort -u)" = registry.invalid/stuck:1
'

test_expect_success 'status of a rollout still in progress is exit 9' '
	kubectl -n $ns patch deployment stuck -p "{\"spec\":{\"progressDeadlineSeconds\":600}}" &&
	kubectl -n $ns set image deployment/stuck app=registry.invalid/stuck:3 &&
	test_expect_code 9 deployer -n $ns status deployment/stuck >out &&
	test_grep "Waiting for" out
'

test_expect_success 'a wait that runs out of time is exit 1 and says so' '
	test_expect_code 1 deployer -n $ns set-image deployment/stuck app=registry.invalid/stuck:4 --wait --timeout 3s >out 2>err &&
	test_grep "rollout did not finish within 3s" err &&
	test "$(image stuck app)" = registry.invalid/stuck:4
'

test_expect_success 'a 409 Conflict between read and patch is retried on a fresh read' '
	kubectl -n $ns rollout status deployment/web --timeout=60s &&
	deployer-race $ns web app=registry.invalid/web:race 1 >out &&
	# at least the one we caused; the deployment controller writing status
	# in between may cause another, which is retried the same way
	test_grep "^conflicts: [1-5]$" out &&
	test "$(image web app)" = registry.invalid/web:race &&
	kubectl -n $ns get deploy web -o jsonpath={.metadata.annotations.race\\.slipway\\.dev/1} >ann &&
	test_grep "^changed-by-[0-9]+$" ann
'

test_expect_success 'a Deployment that keeps changing gives up with exit 6 and is not patched' '
	test_expect_code 6 deployer-race $ns web app=registry.invalid/web:never 100 >out 2>err &&
	test_grep "^conflicts: 5$" out &&
	test_grep "gave up after 5 conflicts" err &&
	test "$(image web app)" = registry.invalid/web:race
'

test_expect_success 'a ServiceAccount that may read but not patch is refused (exit 4), nothing changed' '
	kubectl -n $ns create serviceaccount reader &&
	kubectl -n $ns create role deploy-reader --verb=get,list,watch --resource=deployments &&
	kubectl -n $ns create rolebinding reader --role=deploy-reader --serviceaccount=$ns:reader &&
	"$SLIPWAY_ROOT/tests/env/env.sh" kubeconfig-for-sa $ns reader --name "$SLIPWAY_ENV_NAME" >reader.kubeconfig &&
	g=$(generation web) &&
	test_expect_code 4 deployer --kubeconfig reader.kubeconfig -n $ns set-image deployment/web app=registry.invalid/web:3 2>err &&
	test_grep "forbidden" err &&
	test "$(wc -l <err)" = 1 &&
	test "$(generation web)" = "$g" &&
	deployer --kubeconfig reader.kubeconfig -n $ns status deployment/web >out &&
	test_grep "successfully rolled out" out
'

test_expect_success 'no kubeconfig at all is exit 7' '
	test_expect_code 7 env -u KUBERNETES_SERVICE_HOST KUBECONFIG=/nonexistent HOME=/nonexistent deployer status deployment/web 2>err &&
	test_grep "^deployer: kubeconfig: cannot read /nonexistent: No such file or directory$" err &&
	test_expect_code 7 env -u KUBERNETES_SERVICE_HOST -u KUBECONFIG HOME=/nonexistent deployer status deployment/web 2>err &&
	test_grep "^deployer: no kubeconfig: set --kubeconfig or KUBECONFIG" err
'

test_expect_success 'clean up the namespace' '
	kubectl delete namespace $ns --wait=false
'

test_done
