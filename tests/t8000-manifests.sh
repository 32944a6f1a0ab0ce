#!/usr/bin/env bash
test_description='manifests/: kubectl apply -k installs gitd with least-privilege RBAC on the
real API server and gitd runs in its Pod on the real node; a push through kubectl
port-forward builds in a builder Pod and deploys; a push deploys with nothing but
the gitd ServiceAccount token and the namespaced grants; gitd takes the pushers
URL from its Service'
. "$(dirname "$0")/test-lib.sh"
test_require_env
test_require_node
. "$SLIPWAY_ROOT/tests/lib-gitd.sh"

ns=mani-apps
sys=slipway-system
as="--as=system:serviceaccount:$sys:gitd"
M=$SLIPWAY_ROOT/manifests

# Builds need buildah as root and busybox for the sample app (as in t7000).
can_build=
command -v buildah >/dev/null && [ -x /bin/busybox ] && [ "$(id -u)" = 0 ] && can_build=1

# test_skip DESCRIPTION REASON: a test that cannot run here, as TAP's skip.
test_skip() {
	test_count=$((test_count + 1))
	printf 'ok %d - %s # skip %s\n' "$test_count" "$1" "$2"
}

# watch_builder_objects OUT TYPE [NS]: names of builder objects of TYPE (pods,
# secrets) in NS ($ns) as they appear, into OUT, in the background; its pid
# in $bg_pid.
# A function, so that "&" does not take the caller's && chain along.
watch_builder_objects() {
	kubectl -n "${3:-$ns}" get "$2" -l slipway.dev/component=builder --watch-only -o name \
		>"$1" 2>/dev/null &
	bg_pid=$!
}

# can VERB RESOURCE [ARGS...]: the gitd ServiceAccount may do it.
can() {
	test "$(kubectl auth can-i $as "$@" 2>/dev/null)" = yes
}

# cannot VERB RESOURCE [ARGS...]: it may not (and kubectl answered "no").
cannot() {
	test "$(kubectl auth can-i $as "$@" 2>/dev/null)" = no
}

# The Role grants ($M/namespaced) for namespace $ns, the way an admin's copy
# of overlays/namespace-example would give them.
grant_overlay() {
	mkdir -p grant &&
		cat >grant/kustomization.yaml <<-EOF_
		apiVersion: kustomize.config.k8s.io/v1beta1
		kind: Kustomization
		namespace: $ns
		resources:
		  - $(realpath --relative-to=grant "$M/namespaced")
		patches:
		  - target: {kind: Role, name: slipway-gitd-registry}
		    patch: |-
		      - op: replace
		        path: /rules/0/resourceNames
		        value: [registry-push, web-config]
		EOF_
}

# no_wildcards FILE...: no rule names "*" (verbs, resources, groups).
no_wildcards() {
	# outside CRDs: a CRD's enum may list "*" as a value (spec.webhooks[].events)
	! awk 'FNR == 1 || /^---/ { crd = 0 }
		/^kind: CustomResourceDefinition/ { crd = 1 }
		!crd && (index($0, "- '"'"'*'"'"'") || index($0, "- \"*\"") || index($0, "['"'"'*'"'"']")) {
			print FILENAME ":" FNR ": " $0; found = 1
		}
		END { exit !found }' "$@"
}

cleanup_install() {
	kubectl delete namespace $sys $ns example --ignore-not-found --wait=false >/dev/null
	kubectl delete clusterrole,clusterrolebinding -l app.kubernetes.io/part-of=slipway \
		--ignore-not-found >/dev/null
	kubectl delete pv slipway-t8000-repos --ignore-not-found >/dev/null
	kubectl delete node t8000-edge --ignore-not-found >/dev/null
}

# install_overlay DIR BASE: the install a cluster admin makes
# (docs/install.md), BASE (manifests/ or one of its overlays) with the
# images pointed at a registry, here the env's, holding what images/build.sh
# built from this tree.
install_overlay() {
	mkdir -p "$1" &&
		cat >"$1/kustomization.yaml" <<-EOF_
		apiVersion: kustomize.config.k8s.io/v1beta1
		kind: Kustomization
		resources:
		  - $(realpath --relative-to="$1" "$2")
		images:
		  - name: slipway/gitd
		    newName: ${gitd_image%:*}
		    newTag: ${gitd_image##*:}
		patches:
		  - target: {kind: StatefulSet, name: gitd}
		    patch: |-
		      - op: test
		        path: /spec/template/spec/containers/0/args/8
		        value: --builder-image=slipway/builder:0.1
		      - op: replace
		        path: /spec/template/spec/containers/0/args/8
		        value: --builder-image=$builder_image
		EOF_
}
trap 'gitd_stop; cleanup_install' EXIT

test_expect_success 'the base and every overlay render with kubectl kustomize' '
	cleanup_install &&
	kubectl wait --for=delete namespace/$sys namespace/$ns namespace/example --timeout=90s 2>/dev/null;
	for d in "$M" "$M"/overlays/*; do
		kubectl kustomize "$d" >"$(basename "$d").yaml" || return 1
	done &&
	test "$(grep -c "^kind: CustomResourceDefinition" manifests.yaml)" = 3 &&
	! grep -q "cluster-admin" *.yaml &&
	no_wildcards *.yaml &&
	kubectl apply -f "$M/crds/" --dry-run=client >/dev/null
'

test_expect_success 'the images images/build.sh makes are in the registry' '
	gitd_image=$(test_slipway_image gitd) && builder_image=$(test_slipway_image builder) &&
	echo "$gitd_image" >gitd_image && echo "$builder_image" >builder_image
'
gitd_image=$(cat gitd_image 2>/dev/null)
builder_image=$(cat builder_image 2>/dev/null)

test_expect_success 'kubectl apply -k manifests/ installs gitd: StatefulSet, Service, ServiceAccount, RBAC' '
	kubectl create namespace $sys --dry-run=client -o yaml | kubectl apply -f - >/dev/null &&
	kubectl apply -k "$M" --dry-run=server >dry.out 2>&1 &&
	test_grep "statefulset.apps/gitd created [(]server dry run[)]" dry.out &&
	kubectl delete namespace $sys --wait=true --timeout=90s >/dev/null &&
	install_overlay install "$M" &&
	kubectl apply -k install >apply.out &&
	test_grep "statefulset.apps/gitd created" apply.out &&
	test_grep "clusterrole.rbac.authorization.k8s.io/slipway-gitd created" apply.out &&
	test "$(kubectl -n $sys get service gitd -o jsonpath="{.spec.type} {.spec.ports[0].port}")" = "LoadBalancer 22" &&
	kubectl -n $sys get serviceaccount gitd >/dev/null &&
	test -z "$(kubectl get clusterrolebinding -l app.kubernetes.io/part-of=slipway -o name)" &&
	kubectl -n $sys get statefulset gitd -o jsonpath="{.spec.template.spec.containers[0].args}" >args &&
	grep -qF -e "--builder-mode=pod" args &&
	grep -qF -e "--internal-advertise=\$(POD_IP)" args &&
	kubectl -n $sys get statefulset gitd \
		-o jsonpath="{.spec.template.spec.containers[0].securityContext}" >sc &&
	test_grep "\"readOnlyRootFilesystem\":true" sc &&
	test_grep "\"allowPrivilegeEscalation\":false" sc &&
	test_grep "\"drop\":\[\"ALL\"\]" sc
'

# The PersistentVolume for the StatefulSet's claim: a directory of the
# node's, made writable for gitd's user as an admin provisioning it would.
test_expect_success 'gitd-0 runs on the node from the gitd image, with a PersistentVolume for repos, and is Ready once granted a namespace' '
	rm -rf pv && mkdir pv && chown 65532:65532 pv &&
	kubectl apply -f - >/dev/null <<-EOF_ &&
	{"apiVersion":"v1","kind":"PersistentVolume","metadata":{"name":"slipway-t8000-repos"},
	 "spec":{"capacity":{"storage":"10Gi"},"accessModes":["ReadWriteOnce"],"storageClassName":"",
	  "hostPath":{"path":"$TRASH_DIRECTORY/pv"}}}
	EOF_
	kubectl -n $sys wait --for=jsonpath="{.status.phase}"=Bound pvc/repos-gitd-0 --timeout=60s &&
	# Ready once it has listed the Remotes of the namespace it serves,
	# which needs its grants there (docs/install.md step 2)
	kubectl apply -k "$M/overlays/namespace-example" >/dev/null &&
	kubectl -n $sys wait --for=condition=Ready pod/gitd-0 --timeout=120s &&
	test "$(kubectl -n $sys get pod gitd-0 -o jsonpath="{.spec.nodeName}")" = "$NODE_NAME" &&
	kubectl -n $sys get pod gitd-0 -o jsonpath="{.status.containerStatuses[0].imageID}" >image-id &&
	test_grep "^${gitd_image%:*}@sha256:" image-id &&
	kubectl -n $sys logs gitd-0 >gitd-pod.log &&
	test_grep "\"event\":\"listening\"" gitd-pod.log &&
	test -f pv/host-keys/ssh_host_ed25519_key &&
	test "$(stat -c %u pv/repos)" = 65532
'

test_expect_success 'the namespace overlays grant in their namespace; the other overlays pass a server dry run' '
	kubectl apply -k "$M/overlays/namespace-example" >/dev/null &&
	kubectl -n example get rolebinding slipway-gitd slipway-gitd-remotes slipway-gitd-registry >/dev/null &&
	kubectl create namespace $ns &&
	grant_overlay && kubectl apply -k grant >/dev/null &&
	kubectl -n $ns get rolebinding slipway-gitd -o jsonpath="{.subjects[0].namespace}" >subj &&
	test "$(cat subj)" = $sys &&
	for o in nodeport all-namespaces host-keys-secret; do
		kubectl apply -k "$M/overlays/$o" --dry-run=server >/dev/null || return 1
	done
'

# port_forward OUT TARGET LOCAL:REMOTE [NS]: kubectl port-forward in the
# background (pid in $bg_pid) until it says it forwards.
port_forward() {
	kubectl -n "${4:-$sys}" port-forward "$2" "$3" >"$1" 2>&1 &
	bg_pid=$!
	test_wait_for 30 grep -q "Forwarding from" "$1"
}

if [ -n "$can_build" ]; then
	test_expect_success 'in-cluster gitd: git push through kubectl port-forward builds in a builder Pod and deploys a running app' '
		make_key bob && use_key bob &&
		kubectl -n example apply -f - >/dev/null <<-EOF_ &&
		{"apiVersion":"slipway.dev/v1alpha1","kind":"Remote","metadata":{"name":"web"},
		 "spec":{"authorizedKeys":["$(cat bob.pub)"],
		  "registry":{"url":"$REGISTRY/incluster","insecure":true},
		  "deployments":[{"name":"web","containers":[{"name":"web","path":"app"}]}]}}
		EOF_
		kubectl -n example apply -f - >/dev/null <<-EOF_ &&
		{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
		 "spec":{"replicas":1,"selector":{"matchLabels":{"app":"web"}},
		  "template":{"metadata":{"labels":{"app":"web"}},
		   "spec":{"containers":[{"name":"web","image":"$REGISTRY/placeholder/web:0",
		    "readinessProbe":{"httpGet":{"path":"/","port":8080},"periodSeconds":1}}]}}}}
		EOF_
		test_wait_for 30 test -d pv/repos/example/web.git &&
		# Ready though the LoadBalancer Service has no address (none here)
		test_wait_for 30 sh -c "test \"\$(kubectl -n example get remotes.slipway.dev web -o jsonpath={.status.conditions[0].reason})\" = Serving" &&
		test -z "$(kubectl -n example get remotes.slipway.dev web -o jsonpath={.status.remoteUrl})" &&
		port=$(free_port) &&
		port_forward pf-gitd.out pod/gitd-0 "$port:2222" && test_when_finished "kill $bg_pid" &&
		printf "[127.0.0.1]:%s %s\n" "$port" "$(ssh-keygen -y -f pv/host-keys/ssh_host_ed25519_key)" >known_hosts &&
		new_app incluster && sha=$(git -C incluster rev-parse HEAD) &&
		watch_builder_objects pods.seen pods example && test_when_finished "kill $bg_pid" &&
		git -C incluster push "ssh://git@127.0.0.1:$port/example/web.git" main >push.out 2>&1 &&
		test_grep "remote: -----> Pipeline .* succeeded" push.out &&
		test_grep "remote: -----> Fetching http://198\.18\.0\.[0-9]+:[0-9]+/builds/" push.out &&
		test_grep "^pod/web-build-" pods.seen &&
		test "$(git --git-dir=pv/repos/example/web.git rev-parse main)" = "$sha" &&
		run=$(kubectl -n example get pipelineruns -l slipway.dev/commit=$sha -o jsonpath="{.items[0].metadata.name}") &&
		kubectl -n example wait --for=condition=Succeeded pipelinerun/$run --timeout=5s &&
		image=$(kubectl -n example get deployment web -o jsonpath="{.spec.template.spec.containers[0].image}") &&
		case "$image" in "$REGISTRY/incluster/example-web-web-web@sha256:"*) ;; *) false ;; esac &&
		kubectl -n example get pods -l app=web -o jsonpath="{range .items[*]}{.status.phase} {.spec.nodeName} {.spec.containers[0].image}{\"\n\"}{end}" >app-pods &&
		test_grep "^Running $NODE_NAME $image$" app-pods &&
		wport=$(free_port) &&
		port_forward pf-web.out deployment/web "$wport:8080" example && test_when_finished "kill $bg_pid" &&
		curl -fsS "http://127.0.0.1:$wport/" >page &&
		test_grep "Deployed by <code>git push</code>" page &&
		test_wait_for 30 sh -c "test -z \"\$(kubectl -n example get pods,secrets -l slipway.dev/component=builder -o name)\""
	'
else
	test_skip 'in-cluster gitd: git push through kubectl port-forward builds in a builder Pod and deploys a running app' \
		'needs buildah as root and /bin/busybox'
fi

test_expect_success 'the ServiceAccount may do what a pipeline needs in a granted namespace' '
	for r in remotes.slipway.dev remotes.gitkube.sh; do
		for v in get list watch; do can $v $r -n $ns || { echo "no $v $r"; return 1; }; done
		can patch $r --subresource=status -n $ns || return 1
	done &&
	can create pipelineruns.slipway.dev -n $ns && can get pipelineruns.slipway.dev -n $ns &&
	can list pipelineruns.slipway.dev -n $ns &&
	for v in watch patch delete; do can $v pipelineruns.slipway.dev -n $ns || return 1; done &&
	can update pipelineruns.slipway.dev --subresource=status -n $ns &&
	can get configmaps -n $ns && can create configmaps -n $ns && can update configmaps -n $ns &&
	can patch configmaps -n $ns && can delete configmaps -n $ns &&
	can create events -n $ns &&
	for v in get list watch patch; do can $v deployments.apps -n $ns || return 1; done &&
	for v in create get list patch delete; do can $v pods -n $ns || return 1; done &&
	for v in create patch delete; do can $v secrets -n $ns || return 1; done &&
	can get secret/registry-push -n $ns &&
	can create serviceaccounts/slipway-hooks --subresource=token -n $ns &&
	can create serviceaccounts/slipway-apply --subresource=token -n $ns &&
	can get service/gitd -n $sys &&
	can get secret/registry-push -n example
'

test_expect_success 'and nothing more: no other Secrets, no cluster-wide or kube-system rights, no exec' '
	cannot get secret/unrelated -n $ns &&
	cannot get secrets -n $ns &&
	cannot list secrets -n $ns &&
	cannot list secrets --all-namespaces &&
	cannot watch secrets -n $ns &&
	cannot delete deployments.apps -n $ns &&
	cannot create deployments.apps -n $ns &&
	cannot delete pipelineruns.slipway.dev -n default &&
	cannot patch remotes.slipway.dev -n $ns &&
	cannot delete remotes.slipway.dev -n $ns &&
	cannot create pods --subresource=exec -n $ns &&
	can get pods --subresource=log -n $ns && cannot create pods --subresource=attach -n $ns &&
	cannot create serviceaccounts/default --subresource=token -n $ns &&
	cannot patch nodes && cannot list nodes &&
	cannot create clusterroles.rbac.authorization.k8s.io &&
	cannot create rolebindings.rbac.authorization.k8s.io -n $ns &&
	cannot escalate roles.rbac.authorization.k8s.io -n $ns &&
	cannot list remotes.slipway.dev --all-namespaces &&
	cannot create pipelineruns.slipway.dev -n default &&
	cannot get configmaps -n kube-system && cannot create pods -n kube-system &&
	cannot get secrets -n kube-system &&
	cannot get service/other -n $sys && cannot list services -n $sys &&
	cannot get secrets -n $sys
'

test_expect_success 'a token of the gitd ServiceAccount makes a kubeconfig; with it, the unrelated Secret is Forbidden' '
	kubectl -n $ns create secret generic unrelated --from-literal=password=hunter2 >/dev/null &&
	token=$(kubectl create token gitd -n $sys --duration=1h) &&
	server=$(kubectl config view --raw --minify --flatten -o jsonpath="{.clusters[0].cluster.server}") &&
	ca=$(kubectl config view --raw --minify --flatten -o jsonpath="{.clusters[0].cluster.certificate-authority-data}") &&
	test -n "$ca" &&
	cat >sa.kubeconfig <<-EOF_ &&
	apiVersion: v1
	kind: Config
	clusters: [{name: env, cluster: {server: "$server", certificate-authority-data: "$ca"}}]
	users: [{name: gitd, user: {token: "$token"}}]
	contexts: [{name: gitd, context: {cluster: env, user: gitd, namespace: $ns}}]
	current-context: gitd
	EOF_
	chmod 600 sa.kubeconfig &&
	test_must_fail kubectl --kubeconfig sa.kubeconfig -n $ns get secret unrelated >get.out 2>&1 &&
	test_grep "Forbidden" get.out &&
	test_must_fail grep -q hunter2 get.out &&
	kubectl --kubeconfig sa.kubeconfig -n $ns get remotes.slipway.dev >/dev/null
'

test_expect_success 'gitd runs on that token alone and takes remoteUrl from the LoadBalancer Service' '
	make_key alice && use_key alice &&
	printf "#!/bin/sh\necho \"pre-build hook here, kubeconfig: \${KUBECONFIG:+yes}\"\n" >hook.sh &&
	kubectl -n $ns create configmap hooks --from-file=pre-build=hook.sh >/dev/null &&
	kubectl -n $ns create serviceaccount slipway-hooks >/dev/null &&
	kubectl -n $ns create secret docker-registry registry-push --docker-server="$REGISTRY" \
		--docker-username=push --docker-password=not-checked >/dev/null &&
	kubectl -n $ns apply -f - >/dev/null <<-EOF_ &&
	{"apiVersion":"slipway.dev/v1alpha1","kind":"Remote","metadata":{"name":"web"},
	 "spec":{"authorizedKeys":["$(cat alice.pub)"],
	  "registry":{"url":"$REGISTRY/mani","insecure":true,"credentials":{"secretRef":{"name":"registry-push"}}},
	  "hooks":[{"event":"pre-build","configMapRef":{"name":"hooks","key":"pre-build"}}],
	  "deployments":[{"name":"web","containers":[{"name":"web","path":"app"}]}]}}
	EOF_
	kubectl -n $ns apply -f - >/dev/null <<-EOF_ &&
	{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
	 "spec":{"replicas":1,"selector":{"matchLabels":{"app":"web"}},
	  "template":{"metadata":{"labels":{"app":"web"}},
	   "spec":{"containers":[{"name":"web","image":"$REGISTRY/placeholder/web:0"}]}}}}
	EOF_
	kubectl -n $sys patch service gitd --subresource=status --type=merge \
		-p "{\"status\":{\"loadBalancer\":{\"ingress\":[{\"ip\":\"192.0.2.10\"}]}}}" >/dev/null &&
	gitd_launch --kubeconfig "$TRASH_DIRECTORY/sa.kubeconfig" --namespace $ns \
		--external-url-from-service $sys/gitd --external-url ssh://git@fallback.invalid \
		--builder-mode local --builder "$SLIPWAY_ROOT/build/bin/builder" \
		--builder-image "$builder_image" --internal-listen "$HOST_IP" \
		--rollout-timeout 60 --work-dir "$TRASH_DIRECTORY" &&
	test_wait_for 30 grep -q "\"event\":\"remotes_loaded\".*\"synced\":true" gitd.log &&
	test_wait_for 15 sh -c "test \"\$(kubectl -n $ns get remotes.slipway.dev web -o jsonpath={.status.remoteUrl})\" = ssh://git@192.0.2.10/$ns/web.git" &&
	test "$(kubectl -n $ns get remotes.slipway.dev web -o jsonpath="{.status.conditions[?(@.type==\"Ready\")].status}")" = True
'

if [ -n "$can_build" ]; then
	test_expect_success 'a push with least privilege deploys: run Succeeded, image by digest, mirror, Events, Remote status' '
		new_app src && sha=$(git -C src rev-parse HEAD) &&
		git -C src push "$GITD_URL/$ns/web.git" main >push.out 2>&1 &&
		test_grep "remote: -----> Pipeline .* succeeded" push.out &&
		test_grep "remote: pre-build hook here, kubeconfig: yes" push.out &&
		run=$(kubectl -n $ns get pipelineruns -l slipway.dev/commit=$sha -o jsonpath="{.items[0].metadata.name}") &&
		kubectl -n $ns wait --for=condition=Succeeded pipelinerun/$run --timeout=5s &&
		image=$(kubectl -n $ns get deployment web -o jsonpath="{.spec.template.spec.containers[0].image}") &&
		case "$image" in "$REGISTRY/mani/$ns-web-web-web@sha256:"*) ;; *) false ;; esac &&
		test "$(kubectl -n $ns get configmap web-pipeline -o jsonpath="{.data.pipelineRun} {.data.succeeded}")" = "$run True" &&
		kubectl -n $ns get events --field-selector involvedObject.name=$run -o name >events &&
		test -s events &&
		test "$(kubectl -n $ns get remotes.slipway.dev web -o jsonpath="{.status.lastRun.name} {.status.lastRun.succeeded}")" = "$run True" &&
		test_must_fail grep -qi "forbidden" gitd.log &&
		test_must_fail grep -q "hooks_credentials" gitd.log
	'
else
	test_skip 'a push with least privilege deploys: run Succeeded, image by digest, mirror, Events, Remote status' \
		'needs buildah as root and /bin/busybox'
fi

if [ -n "$can_build" ]; then
	test_expect_success 'the pod runner works with the same grants: builder Pod and token Secret created, then gone' '
		kubectl -n $ns patch remotes.slipway.dev web --type=merge \
			-p "{\"spec\":{\"builder\":{\"mode\":\"pod\",\"timeoutSeconds\":300}}}" >/dev/null &&
		test_commit src app/www/pod.html pod && sha=$(git -C src rev-parse HEAD) &&
		watch_builder_objects pods.seen pods && test_when_finished "kill $bg_pid" &&
		watch_builder_objects secrets.seen secrets && test_when_finished "kill $bg_pid" &&
		git -C src push "$GITD_URL/$ns/web.git" main >push.out 2>&1 &&
		test_grep "^pod/web-build-" pods.seen &&
		test_grep "^secret/web-build-.*-token" secrets.seen &&
		run=$(kubectl -n $ns get pipelineruns -l slipway.dev/commit=$sha -o jsonpath="{.items[0].metadata.name}") &&
		kubectl -n $ns wait --for=condition=Succeeded pipelinerun/$run --timeout=5s &&
		test "$(kubectl -n $ns get deployment web -o jsonpath="{.spec.template.metadata.annotations.slipway\.dev/commit}")" = $sha &&
		test_wait_for 30 sh -c "test -z \"\$(kubectl -n $ns get pods,secrets -l slipway.dev/component=builder -o name)\"" &&
		test_must_fail grep -qi "forbidden" gitd.log &&
		test_must_fail grep -q "cannot set its owner" gitd.log
	'
else
	test_skip 'the pod runner works with the same grants: builder Pod and token Secret created, then gone' \
		'needs buildah as root and /bin/busybox'
fi

# edge_node: a Node object with an ExternalIP, Ready, tainted so nothing is
# scheduled there: no kubelet runs it (the env's one node has no ExternalIP).
edge_node() {
	kubectl apply -f - >/dev/null <<-EOF_ &&
	{"apiVersion":"v1","kind":"Node","metadata":{"name":"t8000-edge"},
	 "spec":{"taints":[{"key":"slipway.dev/no-kubelet","effect":"NoSchedule"}]}}
	EOF_
	kubectl patch node t8000-edge --subresource=status --type=merge -p "{\"status\":{
	  \"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"Test\",\"lastHeartbeatTime\":\"$(date -u +%FT%TZ)\",\"lastTransitionTime\":\"$(date -u +%FT%TZ)\"}],
	  \"addresses\":[{\"type\":\"InternalIP\",\"address\":\"203.0.113.6\"},{\"type\":\"ExternalIP\",\"address\":\"203.0.113.7\"}]}}" >/dev/null
}

test_expect_success 'with the nodeport overlay remoteUrl follows a node ExternalIP and the nodePort' '
	install_overlay install-nodeport "$M/overlays/nodeport" &&
	kubectl apply -k install-nodeport >/dev/null &&
	test "$(kubectl -n $sys get service gitd -o jsonpath={.spec.type})" = NodePort &&
	port=$(kubectl -n $sys get service gitd -o jsonpath="{.spec.ports[0].nodePort}") &&
	can list nodes && cannot patch nodes && cannot get nodes &&
	edge_node &&
	test_wait_for 30 sh -c "test \"\$(kubectl -n $ns get remotes.slipway.dev web -o jsonpath={.status.remoteUrl})\" = ssh://git@203.0.113.7:$port/$ns/web.git" &&
	test_grep "\"event\":\"external_url\",\"url\":\"ssh://git@203.0.113.7:$port\"" gitd.log
'

test_expect_success 'a Service that shows no address falls back to --external-url' '
	kubectl -n $sys patch service gitd --type=merge -p "{\"spec\":{\"type\":\"ClusterIP\"}}" >/dev/null 2>&1 ||
		kubectl -n $sys patch service gitd --type=json \
			-p "[{\"op\":\"replace\",\"path\":\"/spec/type\",\"value\":\"ClusterIP\"},{\"op\":\"remove\",\"path\":\"/spec/ports/0/nodePort\"}]" >/dev/null &&
	test_wait_for 30 sh -c "test \"\$(kubectl -n $ns get remotes.slipway.dev web -o jsonpath={.status.remoteUrl})\" = ssh://git@fallback.invalid/$ns/web.git" &&
	test_grep "external_url_unknown.*shows no address yet" gitd.log
'

test_done
