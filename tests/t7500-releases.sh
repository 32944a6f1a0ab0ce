#!/usr/bin/env bash
test_description='releases, rollback and history: release numbers per Remote, kubectl slipway
releases and rollback (a PipelineRun gitd runs as a controller, with no build),
spec.historyLimit, config vars (kubectl slipway config), and the slipway-releaser
role, against the real API server,
node, registry, buildah and git over OpenSSH'
. "$(dirname "$0")/test-lib.sh"
test_require_env
test_require_node
. "$SLIPWAY_ROOT/tests/lib-gitd.sh"
command -v buildah >/dev/null || test_skip_all "no buildah (tests/env/deps.sh installs it)"
[ -x /bin/busybox ] || test_skip_all "no /bin/busybox (Debian busybox-static)"
[ "$(id -u)" = 0 ] || test_skip_all "buildah with chroot isolation needs root here"

ns=releases-e2e
repo=e2e/$ns-web-web-web
ks() { kubectl slipway -n $ns "$@"; }

image_of() {
	kubectl -n $ns get deployment web -o jsonpath='{.spec.template.spec.containers[0].image}'
}

# push_version N: commit a page saying "version N" and push it (it deploys).
push_version() {
	test_commit src app/www/index.html "version $1" &&
		git -C src push "$GITD_URL/$ns/web.git" main >push.out 2>&1
}

# tags: the registry's tags of the Remote's image, sorted, one a line.
tags() {
	curl -fsS "http://$REGISTRY/v2/$repo/tags/list" | jq -r '.tags // [] | sort[]'
}

# run_with RELEASE-N: the name of the push run that made release N.
run_with() {
	kubectl -n $ns get pipelineruns -l slipway.dev/release="$1" -o json |
		jq -r '.items[] | select((.spec.trigger // "push") != "rollback") | .metadata.name'
}

test_expect_success 'set up: CRDs of this tree, namespace, Remote, Deployment that always pulls, gitd' '
	kubectl apply --server-side --force-conflicts -f "$SLIPWAY_ROOT/manifests/crds/" >/dev/null &&
	kubectl delete namespace $ns --ignore-not-found --wait --timeout=90s &&
	kubectl create namespace $ns &&
	make_key alice && use_key alice &&
	kubectl -n $ns apply -f - >/dev/null <<-EOF_ &&
	{"apiVersion":"slipway.dev/v1alpha1","kind":"Remote","metadata":{"name":"web"},
	 "spec":{"authorizedKeys":["$(cat alice.pub)"],
	  "registry":{"url":"$REGISTRY/e2e","insecure":true},
	  "deployments":[{"name":"web","containers":[{"name":"web","path":"app"}]}]}}
	EOF_
	kubectl -n $ns apply -f - >/dev/null <<-EOF_ &&
	{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
	 "spec":{"replicas":1,"progressDeadlineSeconds":600,
	  "selector":{"matchLabels":{"app":"web"}},
	  "template":{"metadata":{"labels":{"app":"web"}},
	   "spec":{"terminationGracePeriodSeconds":2,
	    "containers":[{"name":"web","image":"$REGISTRY/placeholder/web:0","imagePullPolicy":"Always",
	     "readinessProbe":{"httpGet":{"path":"/","port":8080},"periodSeconds":1},
	     "ports":[{"containerPort":8080}]}]}}}}
	EOF_
	cat >builder <<-EOF_ &&
	#!/bin/sh
	# the real builder, counting its runs
	echo run >>"$TRASH_DIRECTORY/builder.calls"
	exec "$SLIPWAY_ROOT/build/bin/builder" "\$@"
	EOF_
	chmod +x builder &&
	mkdir -p admin-hooks/pre-deploy &&
	cat >admin-hooks/pre-deploy/10-record <<-EOF_ &&
	#!/bin/sh
	echo "\$SLIPWAY_TRIGGER \$SLIPWAY_AFTER" >>"$TRASH_DIRECTORY/pre-deploy.seen"
	EOF_
	chmod +x admin-hooks/pre-deploy/10-record &&
	gitd_start_cluster --builder-mode local --builder "$TRASH_DIRECTORY/builder" \
		--hooks-dir "$TRASH_DIRECTORY/admin-hooks" \
		--rollout-timeout 60 --work-dir "$TRASH_DIRECTORY" &&
	test_wait_for 10 test -d repos/$ns/web.git &&
	new_app src
'

test_expect_success 'three pushes make releases v1, v2 and v3, each with its digest' '
	for n in 1 2 3; do
		push_version $n &&
		test_grep "remote: -----> Release v$n" push.out &&
		image_of >image.v$n || return 1
	done &&
	test "$(sort -u image.v1 image.v2 image.v3 | wc -l)" = 3 &&
	test "$(wc -l <builder.calls)" = 3 &&
	for n in 1 2 3; do
		run=$(run_with $n) && test -n "$run" &&
		test "$(kubectl -n $ns get pipelinerun $run -o jsonpath="{.status.release} {.status.images[0].image}")" = "$n $(cat image.v$n)" || return 1
	done
'

test_expect_success 'kubectl slipway releases lists v1 to v3 with their short digests, and -o json the runs' '
	ks releases web >releases.out &&
	cat releases.out &&
	test_grep "^RELEASE +COMMIT +IMAGES +PUSHER +TRIGGER +RESULT +AGE +RUN$" releases.out &&
	for n in 1 2 3; do
		d=$(sed "s/.*@sha256://" image.v$n | cut -c1-12) &&
		test_grep "^v$n +[0-9a-f]{7} +web@$d +alice@test +push +Succeeded " releases.out || return 1
	done &&
	ks releases web -o json >releases.json &&
	jq -e "[.items[] | .status.release] == [1, 2, 3]" releases.json &&
	jq -e --arg i "$(cat image.v2)" ".items[1].status.images[0].image == \$i" releases.json
'

test_expect_success 'rollback goes to v2 by default: its digest, no build, no new tag, trigger rollback Succeeded' '
	tags >tags.before &&
	wc -l <builder.calls >calls.before &&
	ks rollback web --wait >rollback.out 2>&1 &&
	cat rollback.out &&
	test_grep "^pipelinerun.slipway.dev/web-[a-z0-9]+ created: rollback of web to v2 " rollback.out &&
	test_grep "succeeded$" rollback.out &&
	run=$(sed -n "s|^pipelinerun.slipway.dev/\([^ ]*\) created.*|\1|p" rollback.out) &&
	test "$(image_of)" = "$(cat image.v2)" &&
	kubectl -n $ns rollout status deployment/web --timeout=60s &&
	kubectl -n $ns get pipelinerun $run -o json >rb.json &&
	jq -e ".spec.trigger == \"rollback\" and .spec.rollbackOf == \"v2\" and .status.release == 2" rb.json &&
	jq -e ".status.conditions[] | select(.type == \"Succeeded\") | .status == \"True\"" rb.json &&
	jq -r ".status.stages[].name" rb.json >stages &&
	test_must_fail grep -q build stages &&
	test_grep "^queue release pre-deploy deploy$" <(tr "\n" " " <stages | sed "s/ $//") &&
	test "$(tail -n 1 pre-deploy.seen)" = "rollback $(jq -r .spec.after rb.json)" &&
	test "$(jq -r .spec.after rb.json)" = "$(kubectl -n $ns get pipelinerun $(run_with 2) -o jsonpath="{.spec.after}")" &&
	wc -l <builder.calls >calls.after &&
	test_cmp calls.before calls.after &&
	test_must_fail grep -q "Building" rb.json &&
	tags >tags.after &&
	test_cmp tags.before tags.after &&
	ks releases web >releases.out &&
	test_grep "^v2 .* rollback v2 +Succeeded .* $run$" releases.out
'

test_expect_success 'the next push deploys normally as v4' '
	push_version 4 &&
	test_grep "remote: -----> Release v4" push.out &&
	image_of >image.v4 &&
	test "$(kubectl -n $ns get pipelinerun $(run_with 4) -o jsonpath="{.status.images[0].image}")" = "$(cat image.v4)"
'

test_expect_success 'rollback to a release whose image is gone fails with the pull error, v4 keeps running' '
	digest=$(sed "s/.*@//" image.v1) &&
	curl -fsS -X DELETE "http://$REGISTRY/v2/$repo/manifests/$digest" &&
	test_expect_code 1 ks rollback web v1 --wait >rollback.out 2>rollback.err &&
	cat rollback.out rollback.err &&
	test_grep "ErrImagePull|ImagePullBackOff" rollback.err &&
	test "$(image_of)" = "$(cat image.v4)" &&
	kubectl -n $ns rollout status deployment/web --timeout=60s &&
	run=$(sed -n "s|^pipelinerun.slipway.dev/\([^ ]*\) created.*|\1|p" rollback.out) &&
	kubectl -n $ns get pipelinerun $run -o json >rb.json &&
	jq -e ".status.conditions[] | select(.type == \"Succeeded\") | .status == \"False\" and .reason == \"DeployFailed\"" rb.json &&
	jq -e ".status.release == null" rb.json
'

test_expect_success 'a rollback to a release that does not exist is refused before anything is created' '
	kubectl -n $ns get pipelineruns -o name | sort >runs.before &&
	test_expect_code 3 ks rollback web v99 2>err &&
	test_grep "release v99 not found" err &&
	kubectl -n $ns get pipelineruns -o name | sort >runs.after &&
	test_cmp runs.before runs.after
'

test_expect_success 'historyLimit 3: after the fifth push three runs are kept, the newest' '
	kubectl -n $ns patch remotes.slipway.dev web --type=merge -p "{\"spec\":{\"historyLimit\":3}}" &&
	kubectl -n $ns get pipelineruns -o json |
		jq -r ".items | sort_by(.status.completionTime) | .[-2:][] | .metadata.name" | sort >kept.expected &&
	push_version 5 &&
	test_grep "remote: -----> Release v5" push.out &&
	image_of >image.v5 &&
	run_with 5 >>kept.expected &&
	sort kept.expected >kept.expected.sorted &&
	kubectl -n $ns get pipelineruns -o jsonpath="{range .items[*]}{.metadata.name}{\"\\n\"}{end}" | sort >kept &&
	test_cmp kept.expected.sorted kept &&
	ks releases web >releases.out &&
	test_grep "^v5 " releases.out
'

# config_hash SECRET-JSON: the config hash docs/releases.md defines.
config_hash() {
	python3 -c '
import hashlib, hmac, json, sys
secret = json.load(open(sys.argv[1]))
data = secret.get("data", {})
h = hmac.new(secret["metadata"]["uid"].encode(), digestmod=hashlib.sha256)
for k in sorted(data):
    h.update(k.encode() + b"\0" + data[k].encode() + b"\0")
print(h.hexdigest())' "$1"
}

test_expect_success 'config set rolls the Deployment once, with envFrom and the hash of the Secret' '
	gen=$(kubectl -n $ns get deployment web -o jsonpath="{.metadata.generation}") &&
	image=$(image_of) &&
	ks config set web GREETING=s3cr3t-t7500-value OTHER=x >set.out &&
	cat set.out &&
	test_grep "^config of web set \(secret web-config\)$" set.out &&
	run=$(sed -n "s|^pipelinerun.slipway.dev/\([^ ]*\) created: config release of web$|\1|p" set.out) &&
	test -n "$run" &&
	ks wait $run &&
	kubectl -n $ns rollout status deployment/web --timeout=60s &&
	kubectl -n $ns get deployment web -o json >d.json &&
	test "$(jq .metadata.generation d.json)" = $((gen + 1)) &&
	test "$(image_of)" = "$image" &&
	jq -e ".spec.template.spec.containers[0].envFrom == [{\"secretRef\": {\"name\": \"web-config\", \"optional\": true}}]" d.json &&
	kubectl -n $ns get secret web-config -o json >s.json &&
	test "$(jq -r ".spec.template.metadata.annotations[\"slipway.dev/config-hash\"]" d.json)" = "$(config_hash s.json)" &&
	kubectl -n $ns get pipelinerun $run -o json >cfg.json &&
	jq -e ".spec.trigger == \"config\" and .status.release == 6" cfg.json &&
	ks releases web >releases.out &&
	cat releases.out &&
	test_grep "^v6 .* config +Succeeded .* $run$" releases.out
'

test_expect_success 'the value is in the Secret only: no PipelineRun, Event, ConfigMap or gitd log line has it' '
	b64=$(printf %s s3cr3t-t7500-value | base64 -w0) &&
	kubectl get pipelineruns,events,configmaps -A -o json >objects.json &&
	test_must_fail grep -q -e s3cr3t-t7500-value -e "$b64" objects.json &&
	test_must_fail grep -q -e s3cr3t-t7500-value -e "$b64" gitd.log &&
	ks config get web >keys &&
	cat keys &&
	printf "GREETING\nOTHER\n" >keys.expected &&
	test_cmp keys.expected keys &&
	test "$(ks config get web GREETING --reveal)" = s3cr3t-t7500-value
'

test_expect_success 'config set --no-restart stores the value without a release' '
	gen=$(kubectl -n $ns get deployment web -o jsonpath="{.metadata.generation}") &&
	kubectl -n $ns get pipelineruns -o name | sort >runs.before &&
	ks config set web OTHER=y --no-restart >out &&
	test_grep "no-restart" out &&
	test "$(ks config get web OTHER --reveal)" = y &&
	kubectl -n $ns get pipelineruns -o name | sort >runs.after &&
	test_cmp runs.before runs.after &&
	test "$(kubectl -n $ns get deployment web -o jsonpath="{.metadata.generation}")" = "$gen"
'

test_expect_success 'a config key that is no environment variable name is refused, the Secret unchanged' '
	kubectl -n $ns get secret web-config -o jsonpath="{.data}" >before &&
	test_expect_code 2 ks config set web 1BAD=value-one 2>err &&
	test_grep "invalid config key \"1BAD\": keys are environment variable names" err &&
	test_must_fail grep -q value-one err &&
	test_expect_code 2 ks config unset web "A-B" 2>err &&
	test_grep "invalid config key \"A-B\"" err &&
	kubectl -n $ns get secret web-config -o jsonpath="{.data}" >after &&
	test_cmp before after
'

test_expect_success 'a user with only the slipway-releaser role can roll back, and cannot read Secrets' '
	kubectl apply -f "$SLIPWAY_ROOT/manifests/base/user-roles.yaml" >/dev/null &&
	kubectl -n $ns create serviceaccount releaser &&
	kubectl -n $ns create rolebinding releaser --clusterrole=slipway-releaser --serviceaccount=$ns:releaser &&
	"$SLIPWAY_ROOT/tests/env/env.sh" kubeconfig-for-sa $ns releaser --name "$SLIPWAY_ENV_NAME" >releaser.kubeconfig &&
	KUBECONFIG=$TRASH_DIRECTORY/releaser.kubeconfig ks rollback web --wait >out 2>&1 &&
	cat out &&
	test_grep "rollback of web to v5 " out &&
	test "$(image_of)" = "$(cat image.v5)" &&
	test_must_fail env KUBECONFIG=$TRASH_DIRECTORY/releaser.kubeconfig kubectl -n $ns get secret web-config 2>err &&
	test_grep "Forbidden|forbidden" err &&
	test_expect_code 1 env KUBECONFIG=$TRASH_DIRECTORY/releaser.kubeconfig kubectl slipway -n $ns config get web >out 2>err &&
	test_grep "secret $ns/web-config: .*forbidden" err &&
	test_must_fail grep -q s3cr3t out err
'

test_expect_success 'a rollback created while gitd is down runs when it starts (serving two namespaces)' '
	gitd_stop &&
	ks rollback web v6 >out &&
	run=$(sed -n "s|^pipelinerun.slipway.dev/\([^ ]*\) created.*|\1|p" out) &&
	test -n "$run" &&
	test "$(kubectl -n $ns get pipelinerun $run -o jsonpath="{.status}")" = "" &&
	gitd_start_cluster --namespace $ns --namespace $ns-none --builder-mode local \
		--builder "$TRASH_DIRECTORY/builder" --rollout-timeout 60 --work-dir "$TRASH_DIRECTORY" &&
	ks wait $run --timeout 2m &&
	test "$(kubectl -n $ns get pipelinerun $run -o jsonpath="{.status.release}")" = 6 &&
	test_must_fail grep -q "\"pipelinerun_interrupted\".*$run" gitd.log
'

test_expect_success 'gitd stopped; the namespace and the roles are removed' '
	gitd_stop &&
	kubectl delete -f "$SLIPWAY_ROOT/manifests/base/user-roles.yaml" --ignore-not-found >/dev/null &&
	kubectl delete namespace $ns --wait --timeout=90s
'

test_done
