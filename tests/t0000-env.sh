#!/usr/bin/env bash
# shellcheck disable=SC2016 # test bodies are single-quoted on purpose: eval'd later
test_description='the test environment: API server, kwok nodes, rollouts, registry, ServiceAccount RBAC'
. "$(dirname "$0")/test-lib.sh"
. "$SLIPWAY_ROOT/tests/env/versions.sh"
test_require_env

env_sh="$SLIPWAY_ROOT/tests/env/env.sh"

test_expect_success 'the API server reports the pinned Kubernetes version' '
	kubectl version -o json >version.json &&
	sed -n "/\"serverVersion\"/,/}/p" version.json >server.json &&
	test_grep "\"gitVersion\": \"$K8S_VERSION\"" server.json
'

test_expect_success 'both kwok nodes are Ready and untainted' '
	kubectl wait --for=condition=Ready node -l type=kwok --timeout=30s >wait.out &&
	kubectl get nodes -l type=kwok -o name >nodes &&
	test "$(wc -l <nodes)" = 2 &&
	kubectl get nodes -l type=kwok -o jsonpath="{range .items[*]}{.spec.taints}{\"\n\"}{end}" >taints &&
	! grep -q . taints
'

test_expect_success 'the FAKE stand-in kubelet'"'"'s node is Ready, tainted, and not managed by kwok' '
	kubectl wait --for=condition=Ready node slipway-standin --timeout=30s >wait.out &&
	kubectl get node slipway-standin -o jsonpath="{.spec.taints[*].key}={.spec.taints[*].effect}" >taints &&
	echo "slipway.dev/standin=NoSchedule" >expect && echo >>taints && test_cmp expect taints &&
	kubectl get node slipway-standin -o jsonpath="{.metadata.annotations}" >annotations &&
	! grep -q kwok annotations
'

test_expect_success 'a Deployment of 2 replicas rolls out to 2 ready pods' '
	deploy=$(unique_name web) &&
	kubectl create deployment "$deploy" --image=registry.invalid/x:1 --replicas=2 &&
	test_when_finished "kubectl delete deployment $deploy --wait=false" &&
	kubectl rollout status "deployment/$deploy" --timeout=60s &&
	kubectl get deployment "$deploy" -o jsonpath="{.status.readyReplicas}" >ready &&
	echo 2 >expect && echo >>ready && test_cmp expect ready &&
	kubectl get pods -l "app=$deploy" -o jsonpath="{range .items[*]}{.status.phase} {.spec.nodeName}{\"\n\"}{end}" >pods &&
	test "$(grep -c "^Running kwok-node-" pods)" = 2
'

test_expect_success 'the registry answers the v2 API' '
	curl -fsS "http://$REGISTRY/v2/" >v2 &&
	test_grep "^\{\}" v2
'

test_expect_success 'a ServiceAccount token authenticates and RBAC forbids it to list secrets' '
	ns=$(unique_name sa) &&
	kubectl create namespace "$ns" &&
	test_when_finished "kubectl delete namespace $ns --wait=false" &&
	kubectl create serviceaccount robot -n "$ns" &&
	"$env_sh" kubeconfig-for-sa "$ns" robot --name "$SLIPWAY_ENV_NAME" >sa.kubeconfig &&
	kubectl --kubeconfig=sa.kubeconfig auth whoami -o jsonpath="{.status.userInfo.username}" >whoami &&
	echo "system:serviceaccount:$ns:robot" >expect && echo >>whoami && test_cmp expect whoami &&
	kubectl --kubeconfig=sa.kubeconfig get --raw /version >version &&
	test_grep "\"gitVersion\": \"$K8S_VERSION\"" version &&
	test_expect_code 1 kubectl --kubeconfig=sa.kubeconfig auth can-i list secrets -n "$ns" >can-i &&
	test_grep "^no$" can-i &&
	test_must_fail kubectl --kubeconfig=sa.kubeconfig get secrets -n "$ns" 2>get.err &&
	test_grep "Forbidden|forbidden" get.err
'

test_done
