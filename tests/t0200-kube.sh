#!/usr/bin/env bash
test_description='lib/kube against the real API server: every operation, errors, watch'
. "$(dirname "$0")/test-lib.sh"
test_require_env

ns=kube-e2e
cm() { # cm NAME [LABEL] : a ConfigMap as JSON
	printf '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"%s","labels":{"suite":"%s"}},"data":{"k":"v"}}\n' "$1" "${2:-none}"
}

test_expect_success 'set up a namespace' '
	kubectl delete namespace $ns --ignore-not-found --wait --timeout=90s &&
	kubectl create namespace $ns
'

test_expect_success 'create makes an object kubectl can read' '
	cm one >one.json &&
	kubetool create v1/configmaps $ns one.json >out &&
	test_grep "\"name\": \"one\"" out &&
	test "$(kubectl -n $ns get configmap one -o jsonpath={.data.k})" = v
'

test_expect_success 'get returns the object' '
	kubetool get v1/configmaps $ns one >out &&
	test_grep "\"uid\":" out &&
	test "$(kubectl -n $ns get cm one -o jsonpath={.metadata.uid})" = \
	     "$(sed -n "s/.*\"uid\": \"\(.*\)\".*/\1/p" out)"
'

test_expect_success 'get of a missing object fails with NotFound (exit 3)' '
	test_expect_code 3 kubetool get v1/configmaps $ns nothere 2>err &&
	test_grep "^status: 404 NotFound: configmaps \"nothere\" not found" err
'

test_expect_success 'create of an existing object fails with AlreadyExists (exit 4)' '
	test_expect_code 4 kubetool create v1/configmaps $ns one.json 2>err &&
	test_grep "^status: 409 AlreadyExists" err
'

test_expect_success 'an object the API refuses fails with Invalid (exit 8) naming the field' '
	printf "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"Bad_Name\"}}" >bad.json &&
	test_expect_code 8 kubetool create v1/configmaps $ns bad.json 2>err &&
	test_grep "^status: 422 Invalid: .*metadata.name" err &&
	test_must_fail kubectl -n $ns get cm Bad_Name
'

test_expect_success 'list with a label selector returns only matching objects' '
	for i in 1 2 3 4 5 6 7; do cm page-$i paged >p.json && kubetool create v1/configmaps $ns p.json >/dev/null || return 1; done &&
	kubetool list v1/configmaps $ns -l suite=paged >out &&
	test "$(grep -c "\"name\": \"page-" out)" = 7 &&
	! grep -q "\"name\": \"one\"" out
'

test_expect_success 'list follows continue tokens across pages' '
	kubetool list v1/configmaps $ns -l suite=paged --limit 2 >out &&
	test "$(grep -c "\"name\": \"page-" out)" = 7 &&
	! grep -q "\"continue\"" out
'

test_expect_success 'one page holds limit items and a continue token for the next' '
	kubetool list v1/configmaps $ns -l suite=paged --limit 3 --page >p1 &&
	test "$(grep -c "\"name\": \"page-" p1)" = 3 &&
	token=$(sed -n "s/.*\"continue\": \"\(.*\)\".*/\1/p" p1) &&
	test -n "$token" &&
	kubetool list v1/configmaps $ns -l suite=paged --limit 3 --page --continue "$token" >p2 &&
	test "$(grep -c "\"name\": \"page-" p2)" = 3 &&
	! grep -F -f <(grep -o "\"name\": \"page-[0-9]\"" p1) p2
'

test_expect_success 'list with a field selector' '
	kubetool list v1/configmaps $ns --field-selector metadata.name=page-3 >out &&
	test "$(grep -c "\"name\": \"page-" out)" = 1 &&
	test_grep "\"name\": \"page-3\"" out
'

test_expect_success 'replace with a stale resourceVersion fails with Conflict (exit 5)' '
	kubetool get v1/configmaps $ns one >cur.json &&
	kubectl -n $ns label cm one touched=yes &&
	test_expect_code 5 kubetool replace v1/configmaps $ns one cur.json 2>err &&
	test_grep "^status: 409 Conflict" err &&
	test "$(kubectl -n $ns get cm one -o jsonpath={.metadata.labels.touched})" = yes
'

test_expect_success 'replace with the current resourceVersion succeeds' '
	kubetool get v1/configmaps $ns one | sed "s/\"k\": \"v\"/\"k\": \"replaced\"/" >cur.json &&
	kubetool replace v1/configmaps $ns one cur.json >/dev/null &&
	test "$(kubectl -n $ns get cm one -o jsonpath={.data.k})" = replaced
'

test_expect_success 'merge patch (RFC 7386) sets and removes keys' '
	echo "{\"data\":{\"k\":null,\"m\":\"merged\"}}" >patch.json &&
	kubetool patch v1/configmaps $ns one merge patch.json >/dev/null &&
	test "$(kubectl -n $ns get cm one -o jsonpath={.data.m})" = merged &&
	test -z "$(kubectl -n $ns get cm one -o jsonpath={.data.k})"
'

test_expect_success 'JSON patch (RFC 6902) applies operations, and a failed test op changes nothing' '
	echo "[{\"op\":\"add\",\"path\":\"/data/j\",\"value\":\"jp\"}]" >jp.json &&
	kubetool patch v1/configmaps $ns one json jp.json >/dev/null &&
	test "$(kubectl -n $ns get cm one -o jsonpath={.data.j})" = jp &&
	echo "[{\"op\":\"test\",\"path\":\"/data/j\",\"value\":\"other\"},{\"op\":\"remove\",\"path\":\"/data/j\"}]" >jp2.json &&
	test_must_fail kubetool patch v1/configmaps $ns one json jp2.json 2>err &&
	test "$(kubectl -n $ns get cm one -o jsonpath={.data.j})" = jp
'

test_expect_success 'strategic-merge patch merges containers by name' '
	kubectl -n $ns create deployment two --image=registry.invalid/a:1 --replicas=0 &&
	kubectl -n $ns patch deployment two --type=json -p "[{\"op\":\"add\",\"path\":\"/spec/template/spec/containers/-\",\"value\":{\"name\":\"side\",\"image\":\"registry.invalid/s:1\"}}]" &&
	echo "{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"side\",\"image\":\"registry.invalid/s:2\"}]}}}}" >sp.json &&
	kubetool patch apps/v1/deployments $ns two strategic sp.json >/dev/null &&
	test "$(kubectl -n $ns get deploy two -o jsonpath={.spec.template.spec.containers[*].image})" = \
	     "registry.invalid/a:1 registry.invalid/s:2"
'

test_expect_success 'server-side apply records the field manager and detects conflicts' '
	echo "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"applied\"},\"data\":{\"owner\":\"first\"}}" >a1.json &&
	kubetool patch v1/configmaps $ns applied apply a1.json --field-manager first >/dev/null &&
	kubectl -n $ns get cm applied -o jsonpath="{.metadata.managedFields[*].manager}" >managers &&
	test_grep "^first$" managers &&
	sed s/first/second/ a1.json >a2.json &&
	test_expect_code 5 kubetool patch v1/configmaps $ns applied apply a2.json --field-manager second 2>err &&
	test_grep "^status: 409 Conflict" err &&
	test "$(kubectl -n $ns get cm applied -o jsonpath={.data.owner})" = first &&
	kubetool patch v1/configmaps $ns applied apply a2.json --field-manager second --force >/dev/null &&
	test "$(kubectl -n $ns get cm applied -o jsonpath={.data.owner})" = second
'

test_expect_success 'server-side apply without a field manager is refused locally' '
	test_expect_code 1 kubetool patch v1/configmaps $ns applied apply a1.json 2>err &&
	test_grep "field manager" err
'

test_expect_success 'update-status writes the status subresource of a Remote' '
	printf "{\"apiVersion\":\"slipway.dev/v1alpha1\",\"kind\":\"Remote\",\"metadata\":{\"name\":\"st\"},\"spec\":{}}" >r.json &&
	kubetool create slipway.dev/v1alpha1/remotes $ns r.json >/dev/null &&
	kubetool get slipway.dev/v1alpha1/remotes $ns st |
		sed "s|\"spec\": {|\"status\": {\"remoteUrl\": \"ssh://git@h/$ns/st.git\"}, \"spec\": {|" >rs.json &&
	kubetool update-status slipway.dev/v1alpha1/remotes $ns st rs.json >/dev/null &&
	test "$(kubectl -n $ns get remotes.slipway.dev st -o jsonpath={.status.remoteUrl})" = "ssh://git@h/$ns/st.git"
'

test_expect_success 'patch of the status subresource' '
	echo "{\"status\":{\"lastRun\":{\"name\":\"run-1\"}}}" >sp.json &&
	kubetool patch slipway.dev/v1alpha1/remotes $ns st merge sp.json --subresource status >/dev/null &&
	test "$(kubectl -n $ns get remotes.slipway.dev st -o jsonpath={.status.lastRun.name})" = run-1
'

test_expect_success 'delete removes the object; deleting it again is NotFound' '
	kubetool delete v1/configmaps $ns page-7 >/dev/null &&
	test_must_fail kubectl -n $ns get cm page-7 &&
	test_expect_code 3 kubetool delete v1/configmaps $ns page-7 2>/dev/null
'

test_expect_success 'a ServiceAccount without RBAC is Forbidden (exit 6)' '
	kubectl -n $ns create serviceaccount nobody &&
	tests_env=$SLIPWAY_ROOT/tests/env/env.sh &&
	"$tests_env" kubeconfig-for-sa $ns nobody --name "$SLIPWAY_ENV_NAME" >sa.kubeconfig &&
	test_expect_code 6 kubetool --kubeconfig sa.kubeconfig get v1/configmaps $ns one 2>err &&
	test_grep "^status: 403 Forbidden: .*cannot get resource \"configmaps\"" err
'

test_expect_success 'a rotated tokenFile is re-read by a running client' '
	kubectl -n $ns create role cm-reader --verb=get --resource=configmaps &&
	kubectl -n $ns create rolebinding nobody-reads --role=cm-reader --serviceaccount=$ns:nobody &&
	echo not-a-valid-token >token &&
	sed -e "s|^\(\s*\)token:.*|\1tokenFile: token|" sa.kubeconfig >tf.kubeconfig &&
	test_grep "tokenFile: token" tf.kubeconfig &&
	mkfifo lines &&
	{ kubetool --kubeconfig tf.kubeconfig get-each-line v1/configmaps $ns one <lines >seen & } &&
	kpid=$! &&
	exec 8>lines &&
	echo 1 >&8 &&
	test_wait_for 30 test -s seen &&
	test "$(sed -n 1p seen)" = "error 401 Unauthorized" &&
	kubectl -n $ns create token nobody --duration=1h >token.new &&
	mv token.new token &&
	echo 2 >&8 &&
	test_wait_for 30 sh -c "test \$(wc -l <seen) -ge 2" &&
	exec 8>&- &&
	wait $kpid &&
	test "$(sed -n 2p seen)" = ok
'

test_expect_success 'a bad token is Unauthorized (exit 7) and the token is not printed' '
	sed "s/^\(\s*token:\).*/\1 not-a-valid-token-s3cr3t/" sa.kubeconfig >bad.kubeconfig &&
	test_expect_code 7 kubetool --kubeconfig bad.kubeconfig get v1/configmaps $ns one 2>err &&
	test_grep "^status: 401" err &&
	! grep -q s3cr3t err
'

test_expect_success 'an unreachable server fails after retries with a clear message' '
	sed "s|server: https://[0-9.]*:[0-9]*|server: https://127.0.0.1:1|" "$KUBECONFIG" >down.kubeconfig &&
	test_expect_code 1 kubetool --kubeconfig down.kubeconfig get v1/configmaps $ns one 2>err &&
	test_grep "127.0.0.1:1" err
'

# watch_until FILE PATTERN: wait up to 30 s for a line in the watch output.
watch_until() {
	test_wait_for 30 grep -q -E "$2" "$1" || { sed "s/^/| /" "$1" >&2; return 1; }
}

test_expect_success 'watch lists first, then sees added, modified and deleted objects' '
	kubetool watch v1/configmaps $ns -l suite=watched >w.out 2>w.err &
	pid=$! &&
	test_when_finished "kill $pid 2>/dev/null; wait $pid 2>/dev/null; true" &&
	watch_until w.out "^synced" &&
	cm w1 watched >w1.json && kubetool create v1/configmaps $ns w1.json >/dev/null &&
	watch_until w.out "^added w1 " &&
	kubectl -n $ns label cm w1 more=1 &&
	watch_until w.out "^modified w1 " &&
	kubectl -n $ns delete cm w1 &&
	watch_until w.out "^deleted w1 " &&
	! grep -q "page-" w.out
'

test_expect_success 'watch from an expired resourceVersion lists again (410 Gone)' '
	kubetool watch v1/configmaps $ns -l suite=paged --resource-version 1 >g.out 2>g.err &
	pid=$! &&
	test_when_finished "kill $pid 2>/dev/null; wait $pid 2>/dev/null; true" &&
	watch_until g.out "^synced" &&
	test "$(grep -c "^listed page-" g.out)" = 6
'

test_expect_success 'watch survives a kube-apiserver restart and sees later changes' '
	kubetool watch v1/configmaps $ns -l suite=restart >r.out 2>r.err &
	pid=$! &&
	test_when_finished "kill $pid 2>/dev/null; wait $pid 2>/dev/null; true" &&
	watch_until r.out "^synced" &&
	cm before restart >b.json && kubetool create v1/configmaps $ns b.json >/dev/null &&
	watch_until r.out "^added before " &&
	"$SLIPWAY_ROOT/tests/env/env.sh" restart-apiserver --name "$SLIPWAY_ENV_NAME" &&
	cm after restart >a.json && kubetool create v1/configmaps $ns a.json >/dev/null &&
	watch_until r.out "^(added|listed) after " &&
	kill -0 $pid
'

test_expect_success 'a request while the API server is down is retried until it is back' '
	kill $(cat "$SLIPWAY_ENV_DIR/pids/kube-apiserver.pid") &&
	test_wait_for 60 sh -c "! curl -ksf -o /dev/null \"$API_SERVER/readyz\"" &&
	{ kubetool get v1/configmaps $ns one >out 2>err & } &&
	kpid=$! &&
	"$SLIPWAY_ROOT/tests/env/env.sh" restart-apiserver --name "$SLIPWAY_ENV_NAME" &&
	wait $kpid &&
	test_grep "\"name\": \"one\"" out
'

test_expect_success 'clean up the namespace' '
	kubectl delete namespace $ns --wait=false
'

test_done
