#!/usr/bin/env bash
test_description='CRDs: Remote, PipelineRun and gitkube Remote on the real API server'
. "$(dirname "$0")/test-lib.sh"
test_require_env

ns=crds-e2e
key='ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ9y6xmv0x2mXcN9zQ0l2JY3a5yB0n0Q7b7Xq2E8a5sQ alice@laptop'
sha=0123456789abcdef0123456789abcdef01234567

test_expect_success 'set up a namespace' '
	kubectl delete namespace $ns --ignore-not-found --wait --timeout=90s &&
	kubectl create namespace $ns
'

test_expect_success 'the three CRDs are installed and Established' '
	for crd in remotes.slipway.dev pipelineruns.slipway.dev remotes.gitkube.sh; do
		test "$(kubectl get crd $crd -o jsonpath="{.status.conditions[?(@.type==\"Established\")].status}")" = True || return 1
	done
'

test_expect_success 'the example Remote is accepted and defaults are filled in' '
	kubectl -n $ns apply -f "$SLIPWAY_ROOT/examples/remote.yaml" &&
	test "$(kubectl -n $ns get remotes.slipway.dev example -o jsonpath={.spec.branches})" = "[\"main\",\"master\"]" &&
	test "$(kubectl -n $ns get remotes.slipway.dev example -o jsonpath={.spec.rollbackOnFailure})" = true &&
	test "$(kubectl -n $ns get remotes.slipway.dev example -o jsonpath={.spec.registry.insecure})" = false &&
	test "$(kubectl -n $ns get remotes.slipway.dev example -o jsonpath={.spec.deployments[0].containers[0].dockerfile})" = Dockerfile
'

# refused NAME JSON-SPEC FIELD: a Remote with this spec is refused naming FIELD, and not stored.
refused() {
	printf "{\"apiVersion\":\"slipway.dev/v1alpha1\",\"kind\":\"Remote\",\"metadata\":{\"name\":\"%s\"},\"spec\":%s}" "$1" "$2" >bad.json &&
	test_must_fail kubectl -n $ns create -f bad.json 2>err &&
	test_grep "$3" err &&
	test_must_fail kubectl -n $ns get remotes.slipway.dev "$1" 2>/dev/null
}

test_expect_success 'a Remote whose key is not an OpenSSH public key is refused' '
	refused badkey "{\"authorizedKeys\":[\"not a key at all, really\"]}" "spec.authorizedKeys\[0\]"
'

test_expect_success 'a hook with an unknown event is refused' '
	refused badhook "{\"hooks\":[{\"event\":\"pre-push\",\"configMapRef\":{\"name\":\"h\",\"key\":\"k\"}}]}" "spec.hooks\[0\].event"
'

test_expect_success 'a deployment without a name is refused' '
	refused noname "{\"deployments\":[{\"containers\":[{\"name\":\"web\"}]}]}" "spec.deployments\[0\].name"
'

test_expect_success 'a builder mode other than pod or local is refused' '
	refused badmode "{\"builder\":{\"mode\":\"docker\"}}" "spec.builder.mode"
'

test_expect_success 'a PipelineRun with a malformed commit is refused' '
	printf "{\"apiVersion\":\"slipway.dev/v1alpha1\",\"kind\":\"PipelineRun\",\"metadata\":{\"name\":\"bad\"},\"spec\":{\"remote\":\"example\",\"ref\":\"refs/heads/main\",\"after\":\"not-a-sha\"}}" >plr.json &&
	test_must_fail kubectl -n $ns create -f plr.json 2>err &&
	test_grep "spec.after" err &&
	test_must_fail kubectl -n $ns get pipelinerun bad 2>/dev/null
'

test_expect_success 'status is a subresource: kubectl shows URL and Ready columns' '
	kubectl -n $ns patch remotes.slipway.dev example --subresource=status --type=merge \
		-p "{\"status\":{\"remoteUrl\":\"ssh://git@git.example.com/$ns/example.git\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"Serving\",\"message\":\"ok\",\"lastTransitionTime\":\"2026-01-01T00:00:00Z\"}]}}" &&
	kubectl -n $ns get rmt example >out &&
	test_grep "^NAME +URL +READY +AGE" out &&
	test_grep "^example +ssh://git@git.example.com/$ns/example.git +True " out &&
	kubectl -n $ns patch remotes.slipway.dev example --type=merge -p "{\"status\":{\"remoteUrl\":\"changed\"}}" &&
	test "$(kubectl -n $ns get rmt example -o jsonpath={.status.remoteUrl})" = "ssh://git@git.example.com/$ns/example.git"
'

test_expect_success 'a PipelineRun shows Remote, Ref, Commit, Release, Succeeded and Reason columns' '
	printf "{\"apiVersion\":\"slipway.dev/v1alpha1\",\"kind\":\"PipelineRun\",\"metadata\":{\"name\":\"run1\"},\"spec\":{\"remote\":\"example\",\"ref\":\"refs/heads/main\",\"before\":\"0000000000000000000000000000000000000000\",\"after\":\"$sha\"}}" >plr.json &&
	kubectl -n $ns create -f plr.json &&
	kubectl -n $ns patch pipelinerun run1 --subresource=status --type=merge \
		-p "{\"status\":{\"conditions\":[{\"type\":\"Succeeded\",\"status\":\"False\",\"reason\":\"BuildFailed\",\"message\":\"x\",\"lastTransitionTime\":\"2026-01-01T00:00:00Z\"}]}}" &&
	kubectl -n $ns get plr run1 >out &&
	test_grep "^NAME +REMOTE +REF +COMMIT +RELEASE +SUCCEEDED +REASON +AGE" out &&
	test_grep "^run1 +example +refs/heads/main +$sha +False +BuildFailed " out &&
	test "$(kubectl -n $ns get plr run1 -o jsonpath={.spec.trigger})" = push
'

test_expect_success 'kubectl get slipway lists both kinds (category)' '
	kubectl -n $ns get slipway >out &&
	test_grep "remote.slipway.dev/example" out &&
	test_grep "pipelinerun.slipway.dev/run1" out
'

test_expect_success 'a gitkube Remote as gitkube documents it is accepted unchanged' '
	cat >gitkube.yaml <<-EOF_ &&
	apiVersion: gitkube.sh/v1alpha1
	kind: Remote
	metadata:
	  name: sampleremote
	spec:
	  authorizedKeys:
	  - "$key"
	  registry:
	    url: "docker.io/user"
	    credentials:
	      secretRef: regsecret
	  deployments:
	  - name: www
	    containers:
	    - name: www
	      path: example/www
	      dockerfile: example/www/Dockerfile
	      buildArgs:
	      - name: SOME_ARG
	        value: SOME_VALUE
	  manifests:
	    path: example/manifests
	    helm:
	      release: example
	      values:
	      - name: image
	        value: x
	EOF_
	kubectl -n $ns apply -f gitkube.yaml &&
	test "$(kubectl -n $ns get remotes.gitkube.sh sampleremote -o jsonpath={.spec.registry.credentials.secretRef})" = regsecret &&
	test "$(kubectl -n $ns get remotes.gitkube.sh sampleremote -o jsonpath={.spec.deployments[0].containers[0].path})" = example/www
'

test_expect_success 'clean up the namespace' '
	kubectl delete namespace $ns --wait=false
'

test_done
