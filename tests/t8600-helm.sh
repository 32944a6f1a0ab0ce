#!/usr/bin/env bash
test_description='a Remote whose spec.manifests.path is a Helm chart: git push over ssh builds with
real buildah, then helm upgrade --install (the pinned helm) runs as a ServiceAccount
with slipway-post-render setting the built image by digest, so the real node runs
one rollout per push; a chart that fails to render rejects the push'
. "$(dirname "$0")/test-lib.sh"
test_require_env
test_require_node
test_require_helm
. "$SLIPWAY_ROOT/tests/lib-gitd.sh"
command -v buildah >/dev/null || test_skip_all "no buildah (tests/env/deps.sh installs it)"
[ -x /bin/busybox ] || test_skip_all "no /bin/busybox (Debian busybox-static)"
[ "$(id -u)" = 0 ] || test_skip_all "buildah with chroot isolation needs root here"

ns=helm-e2e

# gitkube_remote NAME MANIFESTS-JSON: a gitkube Remote (its CRD has
# spec.manifests) with alice's key that builds app/ into Deployment NAME's
# container web, and applies MANIFESTS-JSON.
gitkube_remote() {
	kubectl -n $ns apply -f - >/dev/null <<-EOF_
	{"apiVersion":"gitkube.sh/v1alpha1","kind":"Remote","metadata":{"name":"$1"},
	 "spec":{"authorizedKeys":["$(cat alice.pub)"],
	  "registry":{"url":"$REGISTRY/e2e","insecure":true},
	  "deployments":[{"name":"$1","containers":[{"name":"web","path":"app","dockerfile":"app/Dockerfile"}]}],
	  "manifests":$2}}
	EOF_
}

push_url() {
	printf 'ssh://%s-%s@127.0.0.1:%s/~/git/%s-%s' "$ns" "$1" "$GITD_PORT" "$ns" "$1"
}

server_ref() {
	git -C "repos/$ns/$1.git" rev-parse --verify -q "$2" || echo none
}

# helm_ns ARGS...: the pinned helm as the test's admin, reading the release
# records gitd's helm writes (ConfigMaps).
helm_ns() {
	HELM_DRIVER=configmap "$HELM" --namespace $ns "$@"
}

replicasets_of() {
	kubectl -n $ns get replicasets -l app="$1" -o name | wc -l
}

image_of() {
	kubectl -n $ns get deployment "$1" -o jsonpath='{.spec.template.spec.containers[0].image}'
}

run_of() {
	kubectl -n $ns get pipelineruns -l slipway.dev/commit="$1",slipway.dev/remote="$2" \
		-o jsonpath='{.items[0].metadata.name}'
}

succeeded() {
	kubectl -n $ns get pipelinerun "$1" \
		-o jsonpath='{.status.conditions[?(@.type=="Succeeded")].status} {.status.conditions[?(@.type=="Succeeded")].reason}'
}

# add_chart DIR: a chart in DIR/chart: a Deployment named after the release
# whose container web runs .Values.image (a placeholder no registry has),
# .Values.replicaCount replicas, and a Service.
add_chart() {
	mkdir -p "$1/chart/templates" &&
		cat >"$1/chart/Chart.yaml" <<-'EOF_' &&
		apiVersion: v2
		name: www
		version: 0.1.0
		EOF_
		cat >"$1/chart/values.yaml" <<-'EOF_' &&
		# the push sets the image it built (slipway-post-render)
		image: placeholder.invalid/www:never
		replicaCount: 1
		EOF_
		cat >"$1/chart/templates/deployment.yaml" <<-'EOF_' &&
		apiVersion: apps/v1
		kind: Deployment
		metadata:
		  name: {{ .Release.Name }}
		spec:
		  replicas: {{ .Values.replicaCount }}
		  selector:
		    matchLabels: {app: {{ .Release.Name }}}
		  template:
		    metadata:
		      labels: {app: {{ .Release.Name }}}
		    spec:
		      terminationGracePeriodSeconds: 2
		      containers:
		      - name: web
		        image: {{ .Values.image | quote }}
		        ports: [{containerPort: 8080}]
		        readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
		EOF_
		cat >"$1/chart/templates/service.yaml" <<-'EOF_' &&
		apiVersion: v1
		kind: Service
		metadata:
		  name: {{ .Release.Name }}
		spec:
		  selector: {app: {{ .Release.Name }}}
		  ports: [{port: 80, targetPort: 8080}]
		EOF_
		git -C "$1" add chart &&
		git -C "$1" -c user.name=Tester -c user.email=tester@example.com commit -q -m "a chart"
}

gitd_flags="--builder-mode local --builder $SLIPWAY_ROOT/build/bin/builder
	--rollout-timeout 90 --work-dir $TRASH_DIRECTORY --helm $HELM
	--hooks-dir $TRASH_DIRECTORY/admin-hooks"

test_expect_success 'set up the namespace, the ServiceAccount helm acts as, the Remotes and gitd' '
	kubectl delete namespace $ns --ignore-not-found --wait --timeout=90s &&
	kubectl create namespace $ns &&
	kubectl -n $ns create serviceaccount slipway-apply &&
	kubectl -n $ns create role slipway-apply \
		--verb=get,list,watch,create,update,patch,delete \
		--resource=deployments.apps,services,configmaps,jobs.batch &&
	kubectl -n $ns patch role slipway-apply --type=json -p "[{\"op\":\"add\",\"path\":\"/rules/-\",
		\"value\":{\"apiGroups\":[\"\",\"apps\"],\"resources\":[\"pods\",\"replicasets\"],\"verbs\":[\"get\",\"list\",\"watch\"]}}]" &&
	kubectl -n $ns create rolebinding slipway-apply --role=slipway-apply \
		--serviceaccount=$ns:slipway-apply &&
	make_key alice && use_key alice &&
	mkdir -p admin-hooks/post-deploy &&
	printf "#!/bin/sh\nif [ -f %s/fail-post-deploy ]; then echo post-deploy says no; exit 1; fi\n" \
		"$TRASH_DIRECTORY" >admin-hooks/post-deploy/10-gate &&
	chmod +x admin-hooks/post-deploy/10-gate &&
	gitkube_remote www "{\"path\":\"chart\",\"helm\":{\"release\":\"www\",
		\"values\":[{\"name\":\"replicaCount\",\"value\":\"2\"}]}}" &&
	gitkube_remote site "{\"path\":\"chart\",\"helm\":{}}" &&
	gitd_start_cluster $gitd_flags &&
	test_wait_for 10 test -d repos/$ns/www.git &&
	test_wait_for 10 test -d repos/$ns/site.git
'

test_expect_success 'the first push installs the release: the Deployment runs the built image by digest, one ReplicaSet' '
	new_app src && add_chart src &&
	sha=$(git -C src rev-parse HEAD) &&
	start=$(date +%s%N) &&
	git -C src push "$(push_url www)" main >push.out 2>&1 &&
	say "git push to Succeeded (build and helm install): $((($(date +%s%N) - start) / 1000000)) ms" &&
	test "$(server_ref www main)" = "$sha" &&
	test_grep "remote: -----> Installing chart chart as release $ns/www" push.out &&
	test_grep "remote: -----> Deployed release www revision 1 [(]namespace $ns[)]" push.out &&
	test_grep "remote: +STATUS: deployed" push.out &&
	cat push.out &&
	test_grep "remote: -----> $ns/www was rolled out by the apply stage" push.out &&
	image=$(image_of www) &&
	case "$image" in "$REGISTRY/e2e/$ns-www-www-web@sha256:"*) ;; *) false ;; esac &&
	test "$(kubectl -n $ns get deployment www -o jsonpath={.spec.replicas})" = 2 &&
	kubectl -n $ns rollout status deployment/www --timeout=60s &&
	test "$(replicasets_of www)" = 1 &&
	kubectl -n $ns get service www &&
	run=$(run_of $sha www) && test "$(succeeded $run)" = "True Succeeded" &&
	kubectl -n $ns get pipelinerun $run -o jsonpath="{.status.stages[*].name}" >stages &&
	test_grep " build .*apply deploy" stages &&
	test "$(kubectl -n $ns get pipelinerun $run -o jsonpath="{.status.stages[?(@.name==\"apply\")].message}")" = \
		"release www revision 1"
'

test_expect_success 'the placeholder never reached the cluster; the release is recorded in a ConfigMap, not a Secret' '
	helm_ns get manifest www >manifest &&
	test_grep "image: \"?$REGISTRY/e2e/$ns-www-www-web@sha256:" manifest &&
	test_must_fail grep -q placeholder manifest &&
	kubectl -n $ns get replicasets -o jsonpath="{.items[*].spec.template.spec.containers[*].image}" >rs-images &&
	test_must_fail grep -q placeholder rs-images &&
	test "$(kubectl -n $ns get configmaps -l owner=helm,name=www -o name | wc -l)" = 1 &&
	test "$(kubectl -n $ns get secrets -l owner=helm -o name | wc -l)" = 0
'

test_expect_success 'a second push upgrades the same release: revision 2, one more ReplicaSet' '
	test_commit src app/www/second.html second &&
	sha=$(git -C src rev-parse HEAD) &&
	git -C src push "$(push_url www)" main >push.out 2>&1 &&
	test_grep "remote: -----> Deployed release www revision 2 [(]namespace $ns[)]" push.out &&
	helm_ns history www -o json >history &&
	python3 -c "import json,sys; h=json.load(open(\"history\")); assert [r[\"revision\"] for r in h] == [1, 2], h; assert h[-1][\"status\"] == \"deployed\", h" &&
	test "$(helm_ns list -q)" = www &&
	kubectl -n $ns rollout status deployment/www --timeout=60s &&
	test "$(replicasets_of www)" = 2 &&
	test "$(image_of www)" != "$image" &&
	case "$(image_of www)" in "$REGISTRY/e2e/$ns-www-www-web@sha256:"*) ;; *) false ;; esac
'

test_expect_success 'gitkube'"'"'s helm: {} without a release installs as the Remote'"'"'s name, the same at every push' '
	git -C src push "$(push_url site)" main >push.out 2>&1 &&
	test_grep "remote: -----> Installing chart chart as release $ns/site " push.out &&
	test_commit src app/www/third.html third &&
	git -C src push "$(push_url site)" main >push.out 2>&1 &&
	test_grep "remote: -----> Deployed release site revision 2 [(]namespace $ns[)]" push.out &&
	helm_ns list -q | sort >releases &&
	printf "site\nwww\n" >want && test_cmp want releases &&
	test "$(kubectl -n $ns get deployment site -o jsonpath={.spec.replicas})" = 1 &&
	case "$(image_of site)" in "$REGISTRY/e2e/$ns-site-site-web@sha256:"*) ;; *) false ;; esac
'

test_expect_success 'a chart that fails to render rejects the push with helm'"'"'s message; the release is unchanged' '
	before=$(server_ref www main) && image=$(image_of www) &&
	printf "{{ required \"values.yaml must set greeting\" .Values.greeting }}\n" >src/chart/templates/broken.yaml &&
	git -C src add chart && git -C src -c user.name=T -c user.email=t@e commit -qm "a broken chart" &&
	bad=$(git -C src rev-parse HEAD) &&
	test_must_fail git -C src push "$(push_url www)" main >push.out 2>&1 &&
	test_grep "\[remote rejected\] main -> main [(]ApplyFailed: helm release $ns/www: .*values.yaml must set greeting" push.out &&
	test "$(server_ref www main)" = "$before" &&
	test "$(image_of www)" = "$image" &&
	test "$(succeeded $(run_of $bad www))" = "False ApplyFailed" &&
	helm_ns history www -o json >history &&
	python3 -c "import json; h=json.load(open(\"history\")); assert h[-1][\"revision\"] == 2 and h[-1][\"status\"] == \"deployed\", h" &&
	git -C src reset -q --hard HEAD^
'

test_expect_success 'a failing post-deploy hook rolls the release back to the revision before the push' '
	image=$(image_of www) && before=$(server_ref www main) &&
	test_commit src app/www/fourth.html fourth &&
	touch fail-post-deploy && test_when_finished "rm -f fail-post-deploy" &&
	test_must_fail git -C src push "$(push_url www)" main >push.out 2>&1 &&
	test_grep "remote: -----> Deployed release www revision 3" push.out &&
	test_grep "remote: post-deploy says no" push.out &&
	test_grep "remote: -----> Rolling back release $ns/www" push.out &&
	test_grep "\[remote rejected\] main -> main [(]HookFailed" push.out &&
	test "$(server_ref www main)" = "$before" &&
	helm_ns history www -o json >history &&
	python3 -c "import json; h=json.load(open(\"history\")); assert [(r[\"revision\"], r[\"status\"]) for r in h[-2:]] == [(3, \"superseded\"), (4, \"deployed\")] and h[-1][\"description\"] == \"Rollback to 2\", h" &&
	kubectl -n $ns rollout status deployment/www --timeout=60s &&
	test "$(image_of www)" = "$image" &&
	git -C src reset -q --hard HEAD^
'

test_expect_success 'a chart holding a symbolic link is refused before helm runs' '
	before=$(server_ref www main) &&
	ln -s /var/run/secrets/kubernetes.io/serviceaccount/token src/chart/token &&
	git -C src add chart && git -C src -c user.name=T -c user.email=t@e commit -qm "a link" &&
	test_must_fail git -C src push "$(push_url www)" main >push.out 2>&1 &&
	test_grep "[(]ApplyFailed: chart .chart.: chart/token: symbolic links are not followed" push.out &&
	test_must_fail grep -q "Installing chart" push.out &&
	test "$(server_ref www main)" = "$before" &&
	git -C src reset -q --hard HEAD^
'

test_expect_success 'without the ServiceAccount the run fails ApplyFailed, naming it' '
	kubectl -n $ns apply -f - >/dev/null <<-EOF_ &&
	{"apiVersion":"gitkube.sh/v1alpha1","kind":"Remote","metadata":{"name":"nosa"},
	 "spec":{"authorizedKeys":["$(cat alice.pub)"],
	  "manifests":{"path":"chart","helm":{},"serviceAccountName":"nobody"}}}
	EOF_
	test_wait_for 10 test -d repos/$ns/nosa.git &&
	test_must_fail git -C src push "$(push_url nosa)" main >push.out 2>&1 &&
	test_grep "[(]ApplyFailed: serviceaccount $ns/nobody not found" push.out
'

test_expect_success 'a ServiceAccount that lacks a right fails the run with the API server'"'"'s Forbidden message' '
	kubectl -n $ns create serviceaccount limited &&
	kubectl -n $ns create role limited --verb=get,list,watch,create,update,patch,delete \
		--resource=deployments.apps,configmaps &&
	kubectl -n $ns create rolebinding limited --role=limited --serviceaccount=$ns:limited &&
	kubectl -n $ns apply -f - >/dev/null <<-EOF_ &&
	{"apiVersion":"gitkube.sh/v1alpha1","kind":"Remote","metadata":{"name":"tight"},
	 "spec":{"authorizedKeys":["$(cat alice.pub)"],
	  "manifests":{"path":"chart","helm":{},"serviceAccountName":"limited"}}}
	EOF_
	test_wait_for 10 test -d repos/$ns/tight.git &&
	test_must_fail git -C src push "$(push_url tight)" main >push.out 2>&1 &&
	test_grep "[(]ApplyFailed: helm release $ns/tight: .*is forbidden: User \"system:serviceaccount:$ns:limited\" cannot [a-z]+ resource \"services\"" push.out &&
	test_must_fail kubectl -n $ns get service tight &&
	test "$(server_ref tight main)" = none
'

test_expect_success 'the namespace is removed' '
	gitd_stop &&
	kubectl delete namespace $ns --wait --timeout=120s
'

test_done
