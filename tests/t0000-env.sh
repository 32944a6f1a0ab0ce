#!/usr/bin/env bash
# shellcheck disable=SC2016 # test bodies are single-quoted on purpose: eval'd later
test_description='the test environment: API server, a real node (containerd, kubelet), rollouts, registry, ServiceAccount RBAC'
. "$(dirname "$0")/test-lib.sh"
. "$SLIPWAY_ROOT/tests/env/versions.sh"
test_require_env
test_require_node
. "$SLIPWAY_ROOT/tests/lib-gitd.sh" # free_port

env_sh="$SLIPWAY_ROOT/tests/env/env.sh"

test_expect_success 'the API server reports the pinned Kubernetes version' '
	kubectl version -o json >version.json &&
	sed -n "/\"serverVersion\"/,/}/p" version.json >server.json &&
	test_grep "\"gitVersion\": \"$K8S_VERSION\"" server.json
'

test_expect_success 'the node is Ready, runs the pinned kubelet on containerd, and has a node certificate' '
	kubectl wait --for=condition=Ready "node/$NODE_NAME" --timeout=30s >wait.out &&
	kubectl get node "$NODE_NAME" -o jsonpath="{.status.nodeInfo.kubeletVersion} {.status.nodeInfo.containerRuntimeVersion} {.status.addresses[?(@.type==\"InternalIP\")].address}" >info &&
	test_grep "^$K8S_VERSION containerd://1\.[0-9.]+ $HOST_IP$" info &&
	test "$(kubectl get nodes -o name | wc -l)" = 1 &&
	openssl x509 -in "$SLIPWAY_ENV_DIR/pki/kubelet-client.crt" -noout -subject >subject &&
	test_grep "O ?= ?system:nodes, CN ?= ?system:node:$NODE_NAME" subject
'

test_expect_success 'env.sh status shows every component running and the node Ready' '
	"$env_sh" status --name "$SLIPWAY_ENV_NAME" >status &&
	for c in etcd registry kube-apiserver kube-controller-manager kube-scheduler containerd kubelet; do
		grep -qE "^  $c +running" status || { echo "not running: $c"; return 1; }
	done &&
	test_grep "^  pods: 198\.18\.0\.(0|128)/25 on bridge slipway[01], HOST_IP $HOST_IP$" status &&
	test_grep "^  $NODE_NAME +Ready " status &&
	test_grep "^  Ready=True [(]KubeletReady[)]" status
'

test_expect_success 'set up a namespace and an app image in the registry' '
	ns=$(unique_name node) && echo "$ns" >ns &&
	kubectl create namespace "$ns" &&
	app=$(test_app_image t0000/app:1 "" "served by the node") && echo "$app" >app
'
ns=$(cat ns 2>/dev/null)
app=$(cat app 2>/dev/null)

test_expect_success 'a Deployment of 2 replicas rolls out to 2 running Pods with real probes' '
	kubectl -n "$ns" apply -f - <<-EOF_ &&
	{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
	 "spec":{"replicas":2,"selector":{"matchLabels":{"app":"web"}},
	  "template":{"metadata":{"labels":{"app":"web"}},
	   "spec":{"containers":[{"name":"web","image":"$app",
	    "readinessProbe":{"httpGet":{"path":"/index.html","port":8080},"periodSeconds":1},
	    "livenessProbe":{"exec":{"command":["/bin/busybox","true"]},"periodSeconds":5}}]}}}}
	EOF_
	kubectl -n "$ns" rollout status deployment/web --timeout=90s &&
	kubectl -n "$ns" get pods -l app=web -o jsonpath="{range .items[*]}{.status.phase} {.spec.nodeName} {.status.podIP}{\"\n\"}{end}" >pods &&
	test "$(grep -c "^Running $NODE_NAME 198\.18\.0\." pods)" = 2 &&
	kubectl -n "$ns" get pods -l app=web -o jsonpath="{.items[0].status.containerStatuses[0].imageID}" >image-id &&
	test_grep "^$REGISTRY/t0000/app@sha256:" image-id
'

test_expect_success 'logs, exec and port-forward reach the Pod through the API server and the kubelet' '
	pod=$(kubectl -n "$ns" get pods -l app=web -o jsonpath="{.items[0].metadata.name}") &&
	kubectl -n "$ns" exec "$pod" -- /bin/busybox cat /www/index.html >exec.out &&
	test_grep "^served by the node$" exec.out &&
	kubectl -n "$ns" exec "$pod" -- /bin/busybox wget -q -O - http://127.0.0.1:8080/index.html >wget.out &&
	test_grep "^served by the node$" wget.out &&
	kubectl -n "$ns" logs "$pod" >logs.out &&
	port=$(free_port) &&
	{ kubectl -n "$ns" port-forward "pod/$pod" "$port:8080" >pf.out 2>&1 & } &&
	pf=$! && test_when_finished "kill $pf" &&
	test_wait_for 20 grep -q "Forwarding from" pf.out &&
	curl -fsS "http://127.0.0.1:$port/index.html" >page &&
	test_grep "^served by the node$" page
'

test_expect_success 'a Pod reaches the API server at the kubernetes Service and the registry at HOST_IP, and nothing beyond' '
	pod=$(kubectl -n "$ns" get pods -l app=web -o jsonpath="{.items[0].metadata.name}") &&
	kubectl -n "$ns" exec "$pod" -- /bin/busybox sh -c "echo \$KUBERNETES_SERVICE_HOST:\$KUBERNETES_SERVICE_PORT" >svc &&
	echo "$HOST_IP:443" >expect && test_cmp expect svc &&
	kubectl -n "$ns" exec "$pod" -- /bin/busybox wget -q -O - "http://$REGISTRY/v2/" >v2 &&
	test_grep "^\{\}" v2 &&
	kubectl -n "$ns" exec "$pod" -- /bin/busybox ip route >routes &&
	test "$(grep -c . routes)" = 1 &&
	test_grep "^198\.18\.0\.[0-9]+/25 dev eth0" routes &&
	test_must_fail kubectl -n "$ns" exec "$pod" -- /bin/busybox nc -w 2 192.0.2.1 80 </dev/null 2>unreach &&
	test_grep "Network is unreachable" unreach
'

test_expect_success 'a container that exits 1 goes into CrashLoopBackOff with its exit code' '
	kubectl -n "$ns" run crash --image="$app" --restart=Always --command -- /bin/busybox false &&
	test_wait_for 60 sh -c "kubectl -n $ns get pod crash -o jsonpath={.status.containerStatuses[0].state.waiting.reason} | grep -qx CrashLoopBackOff" &&
	kubectl -n "$ns" get pod crash -o jsonpath="{.status.containerStatuses[0].lastState.terminated.exitCode}" >code &&
	echo 1 >expect && echo >>code && test_cmp expect code
'

test_expect_success 'an image that is not in the registry is ErrImagePull or ImagePullBackOff' '
	kubectl -n "$ns" run nopull --image="$REGISTRY/t0000/none:1" --restart=Never &&
	test_wait_for 60 sh -c "kubectl -n $ns get pod nopull -o jsonpath={.status.containerStatuses[0].state.waiting.reason} | grep -qxE \"ErrImagePull|ImagePullBackOff\""
'

test_expect_success 'deleting the namespace stops its containers on the node' '
	kubectl delete namespace "$ns" --timeout=120s &&
	! grep -rqs "io.kubernetes.pod.namespace=$ns" /var/log/containers/ &&
	test -z "$(find /var/log/containers -maxdepth 1 -name "*_${ns}_*")"
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

# node_traces ENV_DIR NAME: what a node of env NAME (in ENV_DIR) can leave
# on this machine, one line each; nothing when all is gone. No env's
# kubelet may touch the machine's iptables at all.
node_traces() {
	awk -v d="$1/" 'substr($5, 1, length(d)) == d { print "mount " $5 }' /proc/self/mountinfo
	ls -d /sys/fs/cgroup/*/slipway-$2 2>/dev/null | sed "s/^/cgroup /"
	find /var/log/containers -maxdepth 1 -lname "$1/*" 2>/dev/null | sed "s/^/log link /"
	ls /var/lib/cni/results/ 2>/dev/null | grep "^slipway-$2-" | sed "s/^/cni result /"
	pgrep -af "$1/" | grep -v pgrep | sed "s/^/process /"
	[ ! -f "$1/slot" ] || ls -d /sys/class/net/slipway$(cat "$1/slot") 2>/dev/null | sed "s/^/bridge /"
	! command -v iptables-save >/dev/null || iptables-save 2>/dev/null | grep "KUBE-" | sed "s/^/iptables /"
}

test_expect_success 'a second env runs a Pod; env.sh down removes processes, mounts, cgroups, netns, log links, bridge' '
	other=t0000-$$ &&
	root=${SLIPWAY_ENV_ROOT:-/tmp/slipway-env} &&
	test_when_finished "\"$env_sh\" down --name $other >/dev/null 2>&1" &&
	"$env_sh" up --name "$other" >up.out 2>up.err &&
	test_grep "^HOST_IP=198\.18\.0\.(1|129)$" up.out &&
	(
		set -a && . "$root/$other/env" && set +a &&
		test "$HOST_IP" != "$(sed -n "s/^HOST_IP=//p" "$SLIPWAY_ENV_FILE")" &&
		img=$(test_app_image t0000/other:1) &&
		kubectl run sleeper --image="$img" --restart=Never --command -- /bin/busybox sleep 600 &&
		kubectl wait --for=condition=Ready pod/sleeper --timeout=90s
	) &&
	slot=$(cat "$root/$other/slot") &&
	node_traces "$root/$other" "$other" >before &&
	test_grep "^mount .*/shm$" before &&
	test_grep "^mount .*/netns/" before &&
	test_grep "^cgroup /sys/fs/cgroup/memory/slipway-$other$" before &&
	test_grep "^log link /var/log/containers/sleeper_default_" before &&
	test_grep "^bridge " before &&
	"$env_sh" down --name "$other" >down.out 2>&1 &&
	test ! -e "$root/$other" &&
	# the kernel settings kubelets change go back with the last kubelet,
	# and this script'"'"'s env still runs one
	test_grep "^kernel.panic_on_oops=[0-9]+$" "$root/.sysctls-before-kubelet" &&
	test "$(sysctl -n kernel.panic_on_oops)" = 1 &&
	test ! -e "/sys/class/net/slipway$slot" &&
	node_traces "$root/$other" "$other" >after &&
	test_cmp /dev/null after
'

test_expect_success 'a failed up leaves nothing of its node behind either' '
	other=t0000-fail-$$ &&
	root=${SLIPWAY_ENV_ROOT:-/tmp/slipway-env} &&
	test_when_finished "\"$env_sh\" down --name $other >/dev/null 2>&1" &&
	test_must_fail env SLIPWAY_ENV_TEST_FAIL_AFTER=node "$env_sh" up --name "$other" >up.out 2>up.err &&
	test_grep "failing on purpose once the node is Ready" up.err &&
	test_grep "logs kept in $root/$other/logs" up.err &&
	test -s "$root/$other/logs/kubelet.log" &&
	node_traces "$root/$other" "$other" >after &&
	test_cmp /dev/null after &&
	"$env_sh" down --name "$other" &&
	test ! -e "$root/$other"
'

test_done
