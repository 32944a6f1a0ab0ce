#!/usr/bin/env bash
test_description='deployer: set images and follow rollouts of real Pods on the real node'
. "$(dirname "$0")/test-lib.sh"
test_require_env
test_require_node

ns=deployer-e2e
image() { kubectl -n $ns get deploy "$1" -o jsonpath="{.spec.template.spec.containers[?(@.name==\"$2\")].image}"; }
generation() { kubectl -n $ns get deploy "$1" -o jsonpath={.metadata.generation}; }

# Images (test_app_image): R/web and R/stuck serve on 8080 (app's
# readiness probe passes); R/stuck:sleep-* only sleep (it never passes);
# R/side only sleeps. R is $REGISTRY/t0300; the tags name one content each.
R=$REGISTRY/t0300

# make_deployment NAME REPLICAS [EXTRA-SPEC-JSON] [PROGRESS-DEADLINE]: a
# Deployment with containers app (image R/NAME:1, a readiness probe GET
# :8080/) and side, rolled out.
make_deployment() {
	kubectl -n $ns apply -f - <<-EOF_ &&
	{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"$1"},
	 "spec":{"replicas":$2,"progressDeadlineSeconds":${4:-600},
	  "strategy":{"rollingUpdate":{"maxSurge":1,"maxUnavailable":0}},
	  "selector":{"matchLabels":{"app":"$1"}},
	  "template":{"metadata":{"labels":{"app":"$1"}},
	   "spec":{${3:-}"terminationGracePeriodSeconds":2,
	    "containers":[{"name":"app","image":"$R/$1:1",
	                   "readinessProbe":{"httpGet":{"path":"/","port":8080},"periodSeconds":1}},
	                  {"name":"side","image":"$R/side:1"}]}}}}
	EOF_
	kubectl -n $ns rollout status deployment/$1 --timeout=90s
}

test_expect_success 'set up a namespace and the images' '
	kubectl delete namespace $ns --ignore-not-found --wait --timeout=90s &&
	kubectl create namespace $ns &&
	test_app_image t0300/web:1 >/dev/null &&
	test_registry_tag t0300/web 1 2 3 9 race never &&
	test_app_image t0300/stuck:1 >/dev/null &&
	test_app_image t0300/crashy:1 >/dev/null &&
	test_app_image t0300/stuck:sleep-2 "[\"/bin/busybox\",\"sleep\",\"86400\"]" >/dev/null &&
	test_registry_tag t0300/stuck sleep-2 sleep-3 sleep-4 &&
	test_app_image t0300/side:1 "[\"/bin/busybox\",\"sleep\",\"86400\"]" "side" >/dev/null &&
	test_registry_tag t0300/side 1 2 &&
	test_app_image t0300/crash:1 "[\"/bin/busybox\",\"sh\",\"-c\",\"echo crashing; exit 3\"]" >/dev/null
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

test_expect_success 'set-image --wait rolls out to ready Pods and annotates the template' '
	make_deployment web 3 &&
	deployer -n $ns set-image deployment/web app=$R/web:2 --wait --commit 0123abc >out &&
	test_grep "^Waiting for (rollout|deployment spec)" out &&
	test_grep "^deployment \"web\" successfully rolled out$" out &&
	test "$(image web app)" = $R/web:2 &&
	test "$(image web side)" = $R/side:1 &&
	test "$(kubectl -n $ns get deploy web -o jsonpath={.spec.template.metadata.annotations.slipway\\.dev/commit})" = 0123abc &&
	kubectl -n $ns get deploy web -o jsonpath="{.spec.template.metadata.annotations.kubernetes\\.io/change-cause}" >cause &&
	test_grep "app=$R/web:2" cause &&
	test "$(kubectl -n $ns get deploy web -o jsonpath={.status.readyReplicas})" = 3 &&
	test "$(kubectl -n $ns get pods -l app=web --field-selector=status.phase=Running -o name | wc -l)" -ge 3
'

test_expect_success 'several containers at once, pinned by digest' '
	d=$(curl -fsS -o /dev/null -D - -H "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json" "http://$REGISTRY/v2/t0300/web/manifests/1" | tr -d "\r" | awk "tolower(\$1) == \"docker-content-digest:\" { print \$2 }") &&
	case "$d" in sha256:*) ;; *) false ;; esac &&
	deployer -n $ns set-image deployment/web app=$R/web@$d side=$R/side:2 --wait -q >out &&
	test "$(image web app)" = $R/web@$d &&
	test "$(image web side)" = $R/side:2
'

test_expect_success 'status reports a finished rollout, its images and commit (exit 0)' '
	deployer -n $ns status deployment/web >out &&
	test_grep "^deployment $ns/web: successfully rolled out$" out &&
	test_grep "^container side: $R/side:2$" out &&
	test_grep "^commit: 0123abc$" out
'

test_expect_success 'a missing Deployment is exit 3 with a one-line error' '
	test_expect_code 3 deployer -n $ns set-image deployment/nope app=$R/x:1 2>err &&
	test "$(cat err)" = "deployer: deployment $ns/nope not found"
'

test_expect_success 'an unknown container is exit 3 and changes nothing' '
	g=$(generation web) &&
	test_expect_code 3 deployer -n $ns set-image deployment/web app=$R/web:9 nosuch=$R/x:1 2>err &&
	test_grep "has no container \"nosuch\"" err &&
	test "$(generation web)" = "$g" &&
	test "$(image web side)" = $R/side:2
'

test_expect_success 'a bad image reference is exit 5 and changes nothing' '
	g=$(generation web) &&
	test_expect_code 5 deployer -n $ns set-image deployment/web "app=Registry.invalid/UPPER:tag;rm" 2>err &&
	test_grep "invalid image reference" err &&
	test "$(generation web)" = "$g"
'

test_expect_success 'a rollout that never becomes ready fails and is rolled back (exit 1)' '
	make_deployment stuck 1 "" 5 &&
	test_expect_code 1 deployer -n $ns set-image deployment/stuck app=$R/stuck:sleep-2 --rollback-on-failure --timeout 90s >out 2>err &&
	test_grep "exceeded its progress deadline; rolled back to the previous images" err &&
	test_grep "^rolling back deployment $ns/stuck" out &&
	test "$(image stuck app)" = $R/stuck:1 &&
	kubectl -n $ns rollout status deployment/stuck --timeout=60s &&
	# the stuck Pod goes once its grace period (2 s) has passed
	test_wait_for 30 eval "test \"\$(kubectl -n $ns get pods -l app=stuck -o jsonpath=\"{.items[*].spec.containers[0].image}\" | tr \" \" \"\\n\" | sort -u)\" = $R/stuck:1"
'

test_expect_success 'a container that exits 1 fails the rollout at once with its exit code, and is rolled back' '
	make_deployment crashy 1 &&
	start=$SECONDS &&
	test_expect_code 1 deployer -n $ns set-image deployment/crashy app=$R/crash:1 --wait --rollback-on-failure --timeout 120s >out 2>err &&
	test $((SECONDS - start)) -lt 60 &&
	test_grep "deployment $ns/crashy: pod crashy-[a-z0-9-]+ container app is in CrashLoopBackOff [(]exit code 3, last state Error, restarts [0-9]+[)]" err &&
	test_grep "rolled back to the previous images" err &&
	test "$(image crashy app)" = $R/crashy:1 &&
	kubectl -n $ns rollout status deployment/crashy --timeout=60s
'

test_expect_success 'an image that cannot be pulled fails the rollout with the kubelet'"'"'s reason' '
	test_expect_code 1 deployer -n $ns set-image deployment/crashy app=$R/absent:1 --wait --rollback-on-failure --timeout 120s >out 2>err &&
	test_grep "deployment $ns/crashy: pod crashy-[a-z0-9-]+ container app cannot start: (ErrImagePull|ImagePullBackOff)" err &&
	test_grep "$R/absent:1" err &&
	test "$(image crashy app)" = $R/crashy:1
'

test_expect_success 'status of a rollout still in progress is exit 9' '
	kubectl -n $ns patch deployment stuck -p "{\"spec\":{\"progressDeadlineSeconds\":600}}" &&
	kubectl -n $ns set image deployment/stuck app=$R/stuck:sleep-3 &&
	test_expect_code 9 deployer -n $ns status deployment/stuck >out &&
	test_grep "Waiting for" out
'

test_expect_success 'a wait that runs out of time is exit 1 and says so' '
	test_expect_code 1 deployer -n $ns set-image deployment/stuck app=$R/stuck:sleep-4 --wait --timeout 3s >out 2>err &&
	test_grep "rollout did not finish within 3s" err &&
	test "$(image stuck app)" = $R/stuck:sleep-4
'

test_expect_success 'a 409 Conflict between read and patch is retried on a fresh read' '
	kubectl -n $ns rollout status deployment/web --timeout=60s &&
	deployer-race $ns web app=$R/web:race 1 >out &&
	# at least the one we caused; the deployment controller writing status
	# in between may cause another, which is retried the same way
	test_grep "^conflicts: [1-5]$" out &&
	test "$(image web app)" = $R/web:race &&
	kubectl -n $ns get deploy web -o jsonpath={.metadata.annotations.race\\.slipway\\.dev/1} >ann &&
	test_grep "^changed-by-[0-9]+$" ann
'

test_expect_success 'a Deployment that keeps changing gives up with exit 6 and is not patched' '
	test_expect_code 6 deployer-race $ns web app=$R/web:never 100 >out 2>err &&
	test_grep "^conflicts: 5$" out &&
	test_grep "gave up after 5 conflicts" err &&
	test "$(image web app)" = $R/web:race
'

test_expect_success 'a ServiceAccount that may read but not patch is refused (exit 4), nothing changed' '
	kubectl -n $ns create serviceaccount reader &&
	kubectl -n $ns create role deploy-reader --verb=get,list,watch --resource=deployments &&
	kubectl -n $ns create rolebinding reader --role=deploy-reader --serviceaccount=$ns:reader &&
	"$SLIPWAY_ROOT/tests/env/env.sh" kubeconfig-for-sa $ns reader --name "$SLIPWAY_ENV_NAME" >reader.kubeconfig &&
	g=$(generation web) &&
	test_expect_code 4 deployer --kubeconfig reader.kubeconfig -n $ns set-image deployment/web app=$R/web:3 2>err &&
	test_grep "forbidden" err &&
	test "$(wc -l <err)" = 1 &&
	test "$(generation web)" = "$g" &&
	kubectl -n $ns rollout status deployment/web --timeout=60s &&
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
