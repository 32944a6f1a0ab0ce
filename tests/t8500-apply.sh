#!/usr/bin/env bash
test_description='apply stage: a push applies the manifests of spec.manifests.path with
server-side apply as the slipway-apply ServiceAccount (real API server, registry,
buildah, node, git over OpenSSH): one rollout per push with the built image by
digest, refusals before anything is applied, prune, and a Job waited to completion'
. "$(dirname "$0")/test-lib.sh"
test_require_env
test_require_node
. "$SLIPWAY_ROOT/tests/lib-gitd.sh"
command -v buildah >/dev/null || test_skip_all "no buildah (tests/env/deps.sh installs it)"
[ -x /bin/busybox ] || test_skip_all "no /bin/busybox (Debian busybox-static)"
[ "$(id -u)" = 0 ] || test_skip_all "buildah with chroot isolation needs root here"

ns=t8500-apply

gitd_flags="--builder-mode local --builder $SLIPWAY_ROOT/build/bin/builder
	--internal-listen $HOST_IP --rollout-timeout 60 --work-dir $TRASH_DIRECTORY"

# plain_remote NAME [MORE-MANIFESTS-MEMBERS]: a Slipway Remote without
# deployments (nothing is built) applying the folder k8s of its repository.
plain_remote() {
	kubectl -n $ns apply -f - >/dev/null <<-EOF_ &&
	{"apiVersion":"slipway.dev/v1alpha1","kind":"Remote","metadata":{"name":"$1"},
	 "spec":{"authorizedKeys":["$(cat alice.pub)"],
	  "manifests":{"path":"k8s","timeoutSeconds":60${2:+,$2}}}}
	EOF_
	test_wait_for 10 test -d repos/$ns/$1.git
}

# new_repo DIR: an empty repository with one commit holding k8s/README.
new_repo() {
	rm -rf "$1" && git init -q -b main "$1" && mkdir "$1/k8s" &&
		echo "manifests" >"$1/k8s/README" && commit "$1" "start"
}

commit() {
	git -C "$1" add -A &&
		git -C "$1" -c user.name=Tester -c user.email=tester@example.com commit -q -m "$2"
}

# configmap NAME: a ConfigMap manifest.
configmap() {
	printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\ndata:\n  k: v\n' "$1"
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

# nothing_applied: no object the failing pushes below hold exists.
nothing_applied() {
	test -z "$(kubectl -n $ns get configmaps,services,deployments -l t8500=bad -o name)"
}

test_expect_success 'set up an empty namespace, the CRDs, the slipway-apply identity and gitd' '
	kubectl apply --server-side --force-conflicts -f "$SLIPWAY_ROOT/manifests/crds/" >/dev/null &&
	kubectl wait --for=condition=Established crd/remotes.slipway.dev crd/remotes.gitkube.sh \
		crd/pipelineruns.slipway.dev --timeout=30s >/dev/null &&
	kubectl delete namespace $ns --ignore-not-found --wait --timeout=90s &&
	kubectl create namespace $ns &&
	kubectl -n $ns apply -f "$SLIPWAY_ROOT/manifests/namespaced/apply.yaml" &&
	make_key alice && use_key alice &&
	image=$(test_app_image t8500/app:1) && echo "$image" >app_image &&
	gitd_start_cluster $gitd_flags
'

test_expect_success 'the shipped slipway-apply Role allows workloads, Services, ConfigMaps, Jobs, Ingresses, and no Secrets or RBAC' '
	as="--as=system:serviceaccount:$ns:slipway-apply -n $ns" &&
	for r in deployments.apps statefulsets.apps daemonsets.apps jobs.batch cronjobs.batch \
		services configmaps ingresses.networking.k8s.io; do
		for v in get create patch delete watch; do
			test "$(kubectl auth can-i $as $v $r)" = yes || { echo "no $v $r"; return 1; }
		done
	done &&
	test "$(kubectl auth can-i $as get secrets)" = no &&
	test "$(kubectl auth can-i $as patch secrets)" = no &&
	test "$(kubectl auth can-i $as create rolebindings.rbac.authorization.k8s.io)" = no &&
	test "$(kubectl auth can-i $as create roles.rbac.authorization.k8s.io)" = no &&
	test "$(kubectl auth can-i $as create serviceaccounts)" = no &&
	test "$(kubectl auth can-i --as=system:serviceaccount:$ns:slipway-apply create configmaps -n default)" = no
'

test_expect_success 'a gitkube mono-repo pushed to an empty namespace creates its Deployment and Service, running the built image by digest, in one rollout' '
	rm -rf mono && git init -q -b main mono && mkdir -p mono/mono-repo/www mono/mono-repo/manifests &&
	cp -R "$SLIPWAY_ROOT/examples/app/." mono/mono-repo/www/ && cp /bin/busybox mono/mono-repo/www/ &&
	cat >mono/mono-repo/manifests/www.yaml <<-EOF_ &&
	apiVersion: apps/v1
	kind: Deployment
	metadata:
	  name: www
	  labels: {app: www}
	spec:
	  replicas: 1
	  selector:
	    matchLabels: {app: www}
	  template:
	    metadata:
	      labels: {app: www}
	    spec:
	      terminationGracePeriodSeconds: 2
	      containers:
	        - name: www
	          image: placeholder.invalid/www:latest
	          ports: [{containerPort: 8080}]
	          readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
	EOF_
	cat >mono/mono-repo/manifests/service.yaml <<-EOF_ &&
	apiVersion: v1
	kind: Service
	metadata:
	  name: www
	spec:
	  selector: {app: www}
	  ports: [{port: 80, targetPort: 8080}]
	EOF_
	commit mono "gitkube mono-repo" &&
	kubectl -n $ns apply -f - <<-EOF_ &&
	{"apiVersion":"gitkube.sh/v1alpha1","kind":"Remote","metadata":{"name":"example"},
	 "spec":{"authorizedKeys":["$(cat alice.pub)"],
	  "registry":{"url":"$REGISTRY/e2e","insecure":true},
	  "manifests":{"path":"mono-repo/manifests"},
	  "deployments":[{"name":"www","containers":[{"name":"www","path":"mono-repo/www",
	   "dockerfile":"mono-repo/www/Dockerfile"}]}]}}
	EOF_
	test_wait_for 10 test -d repos/$ns/example.git &&
	test -z "$(kubectl -n $ns get deployments,services -o name)" &&
	sha=$(git -C mono rev-parse HEAD) &&
	start=$(date +%s%N) &&
	git -C mono push "ssh://$ns-example@127.0.0.1:$GITD_PORT/~/git/$ns-example" main >push.out 2>&1 &&
	say "git push to Succeeded (first deploy from manifests): $((($(date +%s%N) - start) / 1000000)) ms" &&
	sed "s/^/# /" push.out &&
	test_grep "^remote: +service/www created *$" push.out &&
	test_grep "^remote: +deployment.apps/www created *$" push.out &&
	run=$(run_of $sha) && test "$(succeeded $run)" = "True Succeeded" &&
	image=$(kubectl -n $ns get deployment www -o jsonpath="{.spec.template.spec.containers[0].image}") &&
	case "$image" in "$REGISTRY/e2e/$ns-example-www-www@sha256:"*) ;; *) false ;; esac &&
	test "$(kubectl -n $ns get service www -o jsonpath="{.spec.ports[0].port}")" = 80 &&
	test "$(kubectl -n $ns get rs -l app=www -o name | wc -l)" = 1 &&
	test "$(kubectl -n $ns get deployment www -o jsonpath="{.status.readyReplicas}")" = 1 &&
	test "$(kubectl -n $ns get deployment www -o jsonpath="{.metadata.annotations.slipway\.dev/applied-by}")" = "remotes.gitkube.sh/example" &&
	kubectl -n $ns get pipelinerun $run -o json >plr.json &&
	jq -e "[.status.applied[] | [.apiVersion, .kind, .name, .action] | join(\" \")] ==
		[\"v1 Service www created\", \"apps/v1 Deployment www created\"]" plr.json &&
	jq -e "[.status.stages[] | select(.name == \"apply\") | .phase] == [\"Succeeded\"]" plr.json &&
	jq -e "[.status.stages[] | select(.name == \"deploy\") | .phase] == [\"Skipped\"]" plr.json
'

test_expect_success 'a second push with an edited Service and a new commit makes exactly one more rollout' '
	sed -i "s/port: 80,/port: 8081,/" mono/mono-repo/manifests/service.yaml &&
	echo "second" >mono/mono-repo/www/www/second.html &&
	commit mono "edit the Service" &&
	git -C mono push "ssh://$ns-example@127.0.0.1:$GITD_PORT/~/git/$ns-example" main >push.out 2>&1 &&
	test_grep "^remote: +service/www configured *$" push.out &&
	test_grep "^remote: +deployment.apps/www configured *$" push.out &&
	test "$(kubectl -n $ns get service www -o jsonpath="{.spec.ports[0].port}")" = 8081 &&
	test "$(kubectl -n $ns get rs -l app=www -o name | wc -l)" = 2 &&
	test "$(kubectl -n $ns get deployment www -o jsonpath="{.spec.template.metadata.annotations.slipway\.dev/commit}")" = "$(git -C mono rev-parse HEAD)"
'

test_expect_success 'a rollback to v1 applies v1 commit manifests with v1 image, without a build' '
	v1_image=$(kubectl -n $ns get pipelinerun "$(run_of "$(git -C mono rev-parse HEAD~1)")" \
		-o jsonpath="{.status.images[0].image}") &&
	test -n "$v1_image" &&
	kubectl slipway -n $ns rollback example v1 --wait >rollback.out 2>&1 &&
	sed "s/^/# /" rollback.out &&
	run=$(sed -n "s|^pipelinerun.slipway.dev/\([^ ]*\) created.*|\1|p" rollback.out) &&
	kubectl -n $ns get pipelinerun $run -o json >rb.json &&
	jq -e ".spec.trigger == \"rollback\" and .status.release == 1" rb.json &&
	jq -e "[.status.stages[].name] | (index(\"apply\") != null) and (map(select(startswith(\"build\"))) == [])" rb.json &&
	jq -e "[.status.applied[] | [.kind, .name, .action] | join(\" \")] | index(\"Service www configured\") != null" rb.json &&
	test "$(kubectl -n $ns get service www -o jsonpath="{.spec.ports[0].port}")" = 80 &&
	test "$(kubectl -n $ns get deployment www -o jsonpath="{.spec.template.spec.containers[0].image}")" = "$v1_image" &&
	kubectl -n $ns rollout status deployment/www --timeout=60s
'

test_expect_success 'an image that cannot run fails the wait (DeployFailed, naming the Deployment) and the previous image is put back' '
	before=$(kubectl -n $ns get deployment www -o jsonpath="{.spec.template.spec.containers[0].image}") &&
	cp mono/mono-repo/www/Dockerfile Dockerfile.good &&
	sed -i "s|^ENTRYPOINT .*|ENTRYPOINT [\"/bin/busybox\", \"false\"]|" mono/mono-repo/www/Dockerfile &&
	commit mono "an entrypoint that exits" &&
	test_must_fail git -C mono push "ssh://$ns-example@127.0.0.1:$GITD_PORT/~/git/$ns-example" main >push.out 2>&1 &&
	test_grep "\[remote rejected\] main -> main [(]DeployFailed: deployment $ns/www: pod .* container www is in CrashLoopBackOff" push.out &&
	test_grep "^remote: -----> Rolling back www" push.out &&
	test "$(kubectl -n $ns get deployment www -o jsonpath="{.spec.template.spec.containers[0].image}")" = "$before" &&
	kubectl -n $ns rollout status deployment/www --timeout=60s &&
	cp Dockerfile.good mono/mono-repo/www/Dockerfile && commit mono "the entrypoint back"
'

test_expect_success 'a Deployment of spec.deployments that the manifests do not hold keeps getting its image from the deploy stage' '
	kubectl -n $ns create deployment mixed --image="$(cat app_image)" --port=8080 &&
	kubectl -n $ns rollout status deployment/mixed --timeout=60s &&
	new_app mixed && mkdir mixed/k8s && configmap mixed-settings >mixed/k8s/settings.yaml &&
	commit mixed "settings" &&
	kubectl -n $ns apply -f - >/dev/null <<-EOF_ &&
	{"apiVersion":"slipway.dev/v1alpha1","kind":"Remote","metadata":{"name":"mixed"},
	 "spec":{"authorizedKeys":["$(cat alice.pub)"],"registry":{"url":"$REGISTRY/e2e","insecure":true},
	  "manifests":{"path":"k8s"},
	  "deployments":[{"name":"mixed","containers":[{"name":"app","path":"app"}]}]}}
	EOF_
	test_wait_for 10 test -d repos/$ns/mixed.git &&
	test "$(kubectl -n $ns get deployment mixed -o jsonpath="{.spec.template.spec.containers[0].name}")" = app &&
	git -C mixed push "$GITD_URL/$ns/mixed.git" main >push.out 2>&1 &&
	test_grep "^remote: +configmap/mixed-settings created *$" push.out &&
	test_grep "^remote: -----> Deploying $ns/mixed" push.out &&
	case "$(kubectl -n $ns get deployment mixed -o jsonpath="{.spec.template.spec.containers[0].image}")" in
	"$REGISTRY/e2e/$ns-mixed-mixed-app@sha256:"*) ;; *) false ;; esac &&
	run=$(run_of $(git -C mixed rev-parse HEAD)) &&
	kubectl -n $ns get pipelinerun $run -o json >plr.json &&
	jq -e "[.status.stages[] | select(.name == \"apply\" or .name == \"deploy\") | .phase] == [\"Succeeded\", \"Succeeded\"]" plr.json
'

test_expect_success 'without prune an object removed from the tree stays; with prune it is deleted, and what Slipway did not apply is left alone' '
	plain_remote plain &&
	kubectl -n $ns create configmap by-hand --from-literal=k=v &&
	new_repo plain && configmap keep >plain/k8s/keep.yaml && configmap gone >plain/k8s/gone.yaml &&
	commit plain "two ConfigMaps" &&
	git -C plain push "$GITD_URL/$ns/plain.git" main >push.out 2>&1 &&
	test_grep "^remote: +configmap/gone created *$" push.out &&
	kubectl -n $ns get configmap plain-applied -o jsonpath="{.data.objects}" >inventory &&
	test_grep "\"name\":\"gone\"" inventory &&
	git -C plain rm -q k8s/gone.yaml && commit plain "drop one" &&
	git -C plain push "$GITD_URL/$ns/plain.git" main >push.out 2>&1 &&
	test_grep "^remote: +configmap/keep unchanged *$" push.out &&
	kubectl -n $ns get configmap gone &&
	plain_remote plain "\"prune\":true" &&
	test_commit plain k8s/README "prune now" &&
	git -C plain push "$GITD_URL/$ns/plain.git" main >push.out 2>&1 &&
	test_grep "^remote: +configmap/gone pruned *$" push.out &&
	test_must_fail kubectl -n $ns get configmap gone &&
	kubectl -n $ns get configmap keep by-hand &&
	run=$(run_of $(git -C plain rev-parse HEAD)) &&
	kubectl -n $ns get pipelinerun $run -o json >plr.json &&
	jq -e "[.status.applied[] | select(.action == \"pruned\") | .name] == [\"gone\"]" plr.json
'

# bad_push DIR FILE REASON: FILE (from stdin) next to a valid labelled
# ConfigMap is refused with REASON; the push is rejected and nothing applied.
bad_push() {
	new_repo "$1" &&
		printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fine\n  labels: {t8500: bad}\n' >"$1/k8s/a-fine.yaml" &&
		cat >"$1/k8s/$2" && commit "$1" "$2" &&
		test_must_fail git -C "$1" push -f "$GITD_URL/$ns/bad.git" main >push.out 2>&1 &&
		test_grep "\[remote rejected\] main -> main [(]$3" push.out &&
		test "$(succeeded "$(run_of "$(git -C "$1" rev-parse HEAD)")")" = "False $3" &&
		nothing_applied
}

test_expect_success 'a ClusterRoleBinding is refused (ManifestRejected) and nothing is applied' '
	plain_remote bad &&
	bad_push crb rbac.yaml ManifestRejected <<-EOF_ &&
	apiVersion: rbac.authorization.k8s.io/v1
	kind: ClusterRoleBinding
	metadata: {name: take-over}
	roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
	subjects: [{kind: ServiceAccount, name: slipway-apply, namespace: $ns}]
	EOF_
	test_grep "k8s/rbac.yaml: document 1: ClusterRoleBinding .take-over.: cluster-scoped kinds are not applied from a repository" push.out &&
	test_must_fail kubectl get clusterrolebinding take-over
'

test_expect_success 'an object in another namespace is refused (ManifestRejected) and nothing is applied' '
	bad_push otherns other.yaml ManifestRejected <<-EOF_ &&
	apiVersion: v1
	kind: ConfigMap
	metadata: {name: elsewhere, namespace: default, labels: {t8500: bad}}
	EOF_
	test_grep "k8s/other.yaml: document 1: ConfigMap .elsewhere.:.*namespace" push.out &&
	test_must_fail kubectl -n default get configmap elsewhere
'

test_expect_success 'one invalid object among valid ones fails the dry run (ApplyFailed) with the API server message, and nothing is applied' '
	bad_push invalid z-service.yaml ApplyFailed <<-EOF_ &&
	apiVersion: v1
	kind: Service
	metadata: {name: broken, labels: {t8500: bad}}
	spec:
	  ports: [{port: 99999}]
	EOF_
	test_grep "k8s/z-service.yaml: document 1: Service .broken.: .*99999" push.out
'

test_expect_success 'an object the ServiceAccount may not create fails with the API server Forbidden message, and nothing is applied' '
	bad_push forbidden secret.yaml ApplyFailed <<-EOF_ &&
	apiVersion: v1
	kind: Secret
	metadata: {name: token, labels: {t8500: bad}}
	stringData: {k: v}
	EOF_
	test_grep "k8s/secret.yaml: document 1: Secret .token.: .*forbidden.*system:serviceaccount:$ns:slipway-apply" push.out &&
	test_must_fail kubectl -n $ns get secret token
'

test_expect_success 'an extensions/v1beta1 Deployment gets the removed-API message' '
	bad_push removed old.yaml ManifestRejected <<-EOF_
	apiVersion: extensions/v1beta1
	kind: Deployment
	metadata: {name: old, labels: {t8500: bad}}
	spec:
	  template:
	    metadata: {labels: {app: old}}
	    spec: {containers: [{name: c, image: x}]}
	EOF_
	test_grep "extensions/v1beta1 Deployment was removed in Kubernetes 1.16: use apps/v1 [(]and add spec.selector[)]" push.out
'

test_expect_success 'a migration Job is waited to completion before the push succeeds' '
	plain_remote jobs &&
	new_repo jobs &&
	cat >jobs/k8s/migrate.yaml <<-EOF_ &&
	apiVersion: batch/v1
	kind: Job
	metadata: {name: migrate}
	spec:
	  backoffLimit: 0
	  template:
	    spec:
	      restartPolicy: Never
	      terminationGracePeriodSeconds: 1
	      containers:
	        - name: migrate
	          image: $(cat app_image)
	          command: [/bin/busybox, sh, -c, "sleep 2; echo migrated"]
	EOF_
	commit jobs "a migration" &&
	git -C jobs push "$GITD_URL/$ns/jobs.git" main >push.out 2>&1 &&
	test_grep "^remote: +job.batch/migrate created *$" push.out &&
	test_grep "^remote: +job complete: 1 succeeded" push.out &&
	test "$(kubectl -n $ns get job migrate -o jsonpath="{.status.succeeded}")" = 1
'

test_expect_success 'a failing Job fails the run, naming the Job and its reason' '
	cat >jobs/k8s/migrate.yaml <<-EOF_ &&
	apiVersion: batch/v1
	kind: Job
	metadata: {name: migrate-2}
	spec:
	  backoffLimit: 0
	  template:
	    spec:
	      restartPolicy: Never
	      containers:
	        - name: migrate
	          image: $(cat app_image)
	          command: [/bin/busybox, "false"]
	EOF_
	commit jobs "a failing migration" &&
	test_must_fail git -C jobs push "$GITD_URL/$ns/jobs.git" main >push.out 2>&1 &&
	test_grep "\[remote rejected\] main -> main [(]DeployFailed: job $ns/migrate-2 failed: BackoffLimitExceeded" push.out
'

test_expect_success 'a StatefulSet and a DaemonSet are waited until rolled out' '
	plain_remote sets &&
	new_repo sets &&
	for k in StatefulSet DaemonSet; do
		n=$(echo $k | tr A-Z a-z) &&
		cat >sets/k8s/$n.yaml <<-EOF_ || return 1
		apiVersion: apps/v1
		kind: $k
		metadata: {name: $n}
		spec:
		  $(test $k = StatefulSet && echo "serviceName: $n")
		  selector: {matchLabels: {app: $n}}
		  template:
		    metadata: {labels: {app: $n}}
		    spec:
		      terminationGracePeriodSeconds: 1
		      containers:
		        - name: web
		          image: $(cat app_image)
		          readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
		EOF_
	done &&
	commit sets "a StatefulSet and a DaemonSet" &&
	git -C sets push "$GITD_URL/$ns/sets.git" main >push.out 2>&1 &&
	test_grep "^remote: +statefulset.apps/statefulset created *$" push.out &&
	test_grep "^remote: +daemonset.apps/daemonset created *$" push.out &&
	test_grep "^remote: +partitioned roll out complete: 1 new pods have been updated" push.out &&
	test_grep "^remote: +daemon set successfully rolled out" push.out &&
	test "$(kubectl -n $ns get statefulset statefulset -o jsonpath="{.status.readyReplicas}")" = 1 &&
	test "$(kubectl -n $ns get daemonset daemonset -o jsonpath="{.status.numberReady}")" = 1
'

test_expect_success 'clean up the namespace' '
	gitd_stop &&
	kubectl delete namespace $ns --wait=false
'

test_done
