#!/usr/bin/env bash
test_description='gitd serving Remote objects of the real API server: keys from
spec.authorizedKeys take effect live, deleted Remotes stop at once, gitkube
Remotes keep working'
. "$(dirname "$0")/test-lib.sh"
test_require_env
. "$SLIPWAY_ROOT/tests/lib-gitd.sh"

ns=gitd-e2e
other=gitd-e2e-other
web=repos/$ns/web.git

# ms: milliseconds since the epoch.
ms() { date +%s%3N; }

test_expect_success 'set up namespaces, keys and a Remote' '
	for n in $ns $other; do
		kubectl delete namespace $n --ignore-not-found --wait --timeout=90s &&
		kubectl create namespace $n || return 1
	done &&
	make_key alice && make_key bob &&
	remote_with_keys web alice.pub
'

test_expect_success 'gitd lists the Remotes and creates their repositories' '
	gitd_start_cluster &&
	test_wait_for 10 test -d $web &&
	test "$(git -C $web symbolic-ref HEAD)" = refs/heads/main
'

test_expect_success 'a key of the Remote can push and fetch' '
	use_key alice &&
	git init -q -b main src && test_commit src a.txt &&
	git -C src push -q "$GITD_URL/$ns/web.git" main &&
	test "$(git -C $web rev-parse main)" = "$(git -C src rev-parse HEAD)" &&
	git ls-remote "$GITD_URL/$ns/web.git" >refs &&
	test_grep "refs/heads/main" refs
'

test_expect_success 'a key added to the Remote works in under 2 s, without a restart' '
	use_key bob &&
	test_must_fail git ls-remote "$GITD_URL/$ns/web.git" 2>/dev/null &&
	t0=$(ms) &&
	remote_with_keys web alice.pub bob.pub &&
	test_wait_for 5 git ls-remote "$GITD_URL/$ns/web.git" >/dev/null 2>&1 &&
	took=$(( $(ms) - t0 )) &&
	say "key added: usable after $took ms" &&
	test $took -lt 2000
'

test_expect_success 'a key removed from the Remote stops working in under 2 s' '
	t0=$(ms) &&
	remote_with_keys web alice.pub &&
	test_wait_for 5 test_must_fail git ls-remote "$GITD_URL/$ns/web.git" 2>/dev/null &&
	took=$(( $(ms) - t0 )) &&
	say "key removed: refused after $took ms" &&
	test $took -lt 2000
'

test_expect_success 'a deleted Remote stops working at once' '
	use_key alice &&
	remote_with_keys gone alice.pub &&
	test_wait_for 5 git ls-remote "$GITD_URL/$ns/gone.git" >/dev/null 2>&1 &&
	kubectl -n $ns delete remote.slipway.dev gone &&
	test_wait_for 2 test_must_fail git ls-remote "$GITD_URL/$ns/gone.git" 2>err &&
	test_grep "not found or access denied" err
'

test_expect_success 'denyNonFastForwards refuses a force push and leaves the branch' '
	kubectl -n $ns patch remote.slipway.dev web --type=merge -p "{\"spec\":{\"denyNonFastForwards\":true}}" &&
	before=$(git -C $web rev-parse main) &&
	git -C src checkout -q --orphan other && test_commit src x.txt &&
	test_wait_for 5 sh -c "! git -C src push -q --force \"$GITD_URL/$ns/web.git\" other:main 2>err" &&
	test "$(git -C $web rev-parse main)" = "$before" &&
	test_grep "non-fast-forward" err &&
	kubectl -n $ns patch remote.slipway.dev web --type=merge -p "{\"spec\":{\"denyNonFastForwards\":false}}"
'

test_expect_success 'deleting the current branch is refused by default and HEAD still resolves' '
	before=$(git -C $web rev-parse main) &&
	test_must_fail git -C src push "$GITD_URL/$ns/web.git" :main 2>err &&
	test_grep "\[remote rejected\] +main \(deletion of the current branch prohibited\)" err &&
	test "$(git -C $web rev-parse HEAD)" = "$before"
'

# The API server drops a field its installed CRD does not define.
if kubectl get crd remotes.slipway.dev -o json | grep -q '"allowDeleteCurrentBranch"'; then
test_expect_success 'allowDeleteCurrentBranch: true lets the current branch be deleted' '
	before=$(git -C $web rev-parse main) &&
	kubectl -n $ns patch remote.slipway.dev web --type=merge -p "{\"spec\":{\"allowDeleteCurrentBranch\":true}}" &&
	test_wait_for 5 git -C src push -q "$GITD_URL/$ns/web.git" :main &&
	test_must_fail git -C $web rev-parse --verify -q refs/heads/main &&
	git -C src push -q "$GITD_URL/$ns/web.git" $before:refs/heads/main &&
	test "$(git -C $web rev-parse HEAD)" = "$before" &&
	kubectl -n $ns patch remote.slipway.dev web --type=merge -p "{\"spec\":{\"allowDeleteCurrentBranch\":false}}"
'
else
	test_skip 'allowDeleteCurrentBranch: true lets the current branch be deleted' \
		"the cluster's Remote CRD has no spec.allowDeleteCurrentBranch (installed from an older tree)"
fi

test_expect_success 'a gitkube Remote (remotes.gitkube.sh) works with gitkube URLs' '
	kubectl -n $ns apply -f - <<-EOF_ &&
	{"apiVersion":"gitkube.sh/v1alpha1","kind":"Remote","metadata":{"name":"legacy"},
	 "spec":{"authorizedKeys":["$(cat alice.pub)"],
	         "deployments":[{"name":"legacy","containers":[{"name":"app","path":"."}]}]}}
	EOF_
	test_wait_for 10 test -d repos/$ns/legacy.git &&
	git -C src checkout -q main &&
	git -C src push -q "ssh://$ns-legacy@127.0.0.1:$GITD_PORT/~/git/$ns-legacy" main:feature &&
	test "$(git -C repos/$ns/legacy.git rev-parse feature)" = "$(git -C src rev-parse main)"
'

test_expect_success 'a deploying push to a Remote without a registry is rejected with the reason' '
	test_must_fail git -C src push "ssh://$ns-legacy@127.0.0.1:$GITD_PORT/~/git/$ns-legacy" main 2>err &&
	test_grep "main -> main [(]BuildFailed: remote $ns/legacy: spec.registry.url is not set)" err &&
	test_must_fail git -C repos/$ns/legacy.git rev-parse -q --verify main
'

test_expect_success 'a Remote with malformed keys does not break the others' '
	kubectl -n $ns apply -f - <<-EOF_ &&
	{"apiVersion":"slipway.dev/v1alpha1","kind":"Remote","metadata":{"name":"broken"},
	 "spec":{"authorizedKeys":["ssh-ed25519 AAAAnotreallyakeyAAAA x@y",
	         "ssh-rsa AAAAB3NzaC1yc2EAAAADAQAB truncated@y", "$(cat bob.pub)"]}}
	EOF_
	use_key bob &&
	test_wait_for 10 git ls-remote "$GITD_URL/$ns/broken.git" >/dev/null 2>&1 &&
	use_key alice &&
	git ls-remote "$GITD_URL/$ns/web.git" >/dev/null &&
	test_grep "\"event\":\"authorized_keys_skipped\"" gitd.log &&
	kill -0 $gitd_pid
'

test_expect_success 'a malformed Remote is not served, and is again once fixed' '
	kubectl -n $ns apply -f - <<-EOF_ &&
	{"apiVersion":"gitkube.sh/v1alpha1","kind":"Remote","metadata":{"name":"twice"},
	 "spec":{"authorizedKeys":["$(cat alice.pub)"],
	         "deployments":[{"name":"web","containers":[{"name":"app"},{"name":"app"}]}]}}
	EOF_
	use_key alice &&
	test_wait_for 10 grep -q "\"event\":\"remote_invalid\".*$ns/twice.*containers\[1\].name" gitd.log &&
	test_must_fail git ls-remote "ssh://$ns-twice@127.0.0.1:$GITD_PORT/~/git/$ns-twice" 2>err &&
	test_grep "not found or access denied" err &&
	kubectl -n $ns patch remotes.gitkube.sh twice --type=json \
		-p "[{\"op\":\"replace\",\"path\":\"/spec/deployments/0/containers/1/name\",\"value\":\"api\"}]" &&
	test_wait_for 10 git ls-remote "ssh://$ns-twice@127.0.0.1:$GITD_PORT/~/git/$ns-twice" &&
	kill -0 $gitd_pid
'

test_expect_success 'gitd --namespace serves only the namespaces it is given' '
	gitd_stop &&
	kubectl -n $other apply -f - <<-EOF_ &&
	{"apiVersion":"slipway.dev/v1alpha1","kind":"Remote","metadata":{"name":"web"},
	 "spec":{"authorizedKeys":["$(cat alice.pub)"]}}
	EOF_
	gitd_start_cluster --namespace $ns &&
	git ls-remote "$GITD_URL/$ns/web.git" >/dev/null &&
	test_must_fail git ls-remote "$GITD_URL/$other/web.git" 2>err &&
	test_grep "not found or access denied" err &&
	test ! -e repos/$other/web.git
'

test_done
