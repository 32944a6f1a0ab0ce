#!/usr/bin/env bash
# shellcheck disable=SC2016 # test bodies are single-quoted on purpose: eval'd later
test_description='make demo end to end: examples/demo/demo.sh up pushes the sample app
with the real git client and it deploys; up again deploys a new commit; the
printed next steps work; down stops gitd and removes the state. Runs against
the env of make test (SLIPWAY_DEMO_ENV_FILE), state in the scratch directory'
. "$(dirname "$0")/test-lib.sh"
test_require_env
command -v buildah >/dev/null || test_skip_all "no buildah (tests/env/deps.sh installs it)"
[ -x /bin/busybox ] || test_skip_all "no /bin/busybox (Debian busybox-static)"
[ "$(id -u)" = 0 ] || test_skip_all "buildah with chroot isolation needs root here"

SLIPWAY_DEMO_ENV_FILE=$SLIPWAY_ENV_FILE
SLIPWAY_DEMO_DIR=$TRASH_DIRECTORY/state
export SLIPWAY_DEMO_ENV_FILE SLIPWAY_DEMO_DIR
state=$SLIPWAY_DEMO_DIR
demo() { "$SLIPWAY_ROOT/examples/demo/demo.sh" "$@"; }
# whatever happens, no gitd of this test outlives it
trap 'demo down >/dev/null 2>&1' EXIT

# run_of SHA: "NAME STATUS" of the PipelineRun of that commit.
run_of() {
	kubectl -n demo get pipelineruns -l slipway.dev/commit="$1" \
		-o jsonpath='{.items[0].metadata.name} {.items[0].status.conditions[?(@.type=="Succeeded")].status}'
}
# is_alive PID: the process runs (a zombie waiting for init to reap it does not).
is_alive() {
	local st
	st=$(ps -o stat= -p "$1") && case "$st" in Z*) return 1 ;; esac
}
image_of_hello() {
	kubectl -n demo get deployment hello -o jsonpath='{.spec.template.spec.containers[0].image}'
}
is_digest_image() {
	case "$1" in "$REGISTRY/demo/demo-hello-hello-web@sha256:"*) ;; *)
		echo "not pinned by digest: $1" >&2
		return 1
		;;
	esac
}

test_expect_success 'up pushes the sample app with git and it deploys: run Succeeded, image pinned by digest' '
	kubectl delete namespace demo --ignore-not-found --wait --timeout=120s &&
	demo up --no-build >up.out 2>&1 &&
	test_grep "^remote: -----> Building hello/web" up.out &&
	test_grep "^remote: -----> Pipeline hello-[a-z0-9]+ succeeded" up.out &&
	test_grep "\* \[new branch\] +main -> main" up.out &&
	sha=$(git -C state/hello rev-parse HEAD) &&
	test "$(git -C state/repos/demo/hello.git rev-parse main)" = "$sha" &&
	run=$(run_of $sha) && test "${run#* }" = True &&
	kubectl -n demo wait --for=condition=Succeeded pipelinerun/${run% *} --timeout=5s &&
	image=$(image_of_hello) && is_digest_image "$image" &&
	test_grep "commit=$sha succeeded=True Succeeded" up.out &&
	test_grep "make demo-down" up.out &&
	pid=$(cat state/gitd.pid) && is_alive $pid
'

test_expect_success 'up again reuses what runs, pushes a new commit and deploys it' '
	demo up --no-build >up2.out 2>&1 &&
	sha2=$(git -C state/hello rev-parse HEAD) && test "$sha2" != "$sha" &&
	test_grep "^   [0-9a-f]+\.\.[0-9a-f]+ +main -> main" up2.out &&
	run=$(run_of $sha2) && test "${run#* }" = True &&
	image2=$(image_of_hello) && is_digest_image "$image2" && test "$image2" != "$image" &&
	! is_alive $pid &&
	pid=$(cat state/gitd.pid) && is_alive $pid
'

test_expect_success 'the printed next steps push and deploy from the working copy' '
	sed -n "s/^  export GIT_SSH_COMMAND=.\(.*\).$/\1/p" up2.out >ssh_cmd &&
	test_grep "^ssh -i $state/id_ed25519 .*StrictHostKeyChecking=yes" ssh_cmd &&
	echo "<p>next step</p>" >>state/hello/www/index.html &&
	git -C state/hello commit -qam "a change" &&
	GIT_SSH_COMMAND="$(cat ssh_cmd)" git -C state/hello push slipway main >push.out 2>&1 &&
	test_grep "^remote: -----> Pipeline .* succeeded" push.out &&
	run=$(run_of $(git -C state/hello rev-parse HEAD)) && test "${run#* }" = True
'

test_expect_success 'down stops gitd and removes the state; down again is fine' '
	demo down >down.out 2>&1 &&
	! is_alive $pid &&
	test ! -e state &&
	test_grep "left the environment" down.out &&
	kubectl get --raw /readyz >/dev/null &&
	demo down >down2.out 2>&1
'

test_expect_success 'up with a SLIPWAY_DEMO_DIR that the demo did not make fails with one line' '
	mkdir other && touch other/file &&
	SLIPWAY_DEMO_DIR=$TRASH_DIRECTORY/other test_must_fail demo up --no-build >bad.out 2>&1 &&
	test "$(wc -l <bad.out)" = 1 &&
	test_grep "^demo: error: .*other exists and was not made by the demo" bad.out &&
	test -f other/file
'

test_done
