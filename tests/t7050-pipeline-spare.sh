#!/usr/bin/env bash
test_description='the pipeline server keeps a spare worker forked ahead, its API
connections open: pushes are served by it, a spare no push took within
--pipeline-spare-idle is replaced and its successor serves as well, the spare
ends with gitd, and with --pipeline-spare-idle 0 each push forks its worker as
before'
. "$(dirname "$0")/test-lib.sh"
test_require_env
. "$SLIPWAY_ROOT/tests/lib-gitd.sh"

ns=spare-e2e

# events NAME: the JSON lines of gitd event NAME logged so far.
events() {
	grep "\"event\":\"$1\"" gitd.log || true
}

# pids NAME: the pids of gitd event NAME, one a line, in order.
pids() {
	events "$1" | sed -nE 's/.*"pid":([0-9]+).*/\1/p'
}

# more_than NAME N: gitd event NAME was logged more than N times.
more_than() {
	test "$(events "$1" | wc -l)" -gt "$2"
}

# gone PIDFILE: no process of the pids listed in PIDFILE is left.
gone() {
	while read -r pid; do
		test ! -e /proc/$pid || return 1
	done <"$1"
}

# succeeded_runs: how many of the Remote's PipelineRuns Succeeded.
succeeded_runs() {
	kubectl -n $ns get pipelineruns -l slipway.dev/remote=web -o json |
		jq '[.items[] | select(.status.conditions[]? | .type == "Succeeded" and .status == "True")] | length'
}

# push_main N: commit and push main; the push must report its run succeeded.
push_main() {
	test_commit src "f$1.txt" &&
		git -C src push "$GITD_URL/$ns/web.git" main >push-$1.out 2>&1 &&
		test_grep "Pipeline .* succeeded" push-$1.out &&
		test "$(git -C repos/$ns/web.git rev-parse main)" = "$(git -C src rev-parse HEAD)"
}

test_expect_success 'set up a namespace, a key and a Remote whose main runs a pipeline' '
	kubectl delete namespace $ns --ignore-not-found --wait --timeout=90s &&
	kubectl create namespace $ns &&
	make_key alice &&
	remote_with_keys web alice.pub &&
	use_key alice &&
	git init -q -b main src
'

test_expect_success 'the pipeline server forks a spare that opens its API connections first' '
	gitd_start_cluster --namespace $ns --log-level debug --pipeline-spare-idle 2s &&
	test_wait_for 30 test -d repos/$ns/web.git &&
	test_wait_for 30 grep -q "\"event\":\"pipeline_spare_ready\".*\"is_warm\":true" gitd.log &&
	test -z "$(events pipeline_spare_taken)"
'

test_expect_success 'two pushes in a row both succeed, each served by a spare forked ahead of it' '
	push_main 1 &&
	push_main 2 &&
	test "$(succeeded_runs)" = 2 &&
	pids pipeline_spare_taken >taken &&
	test "$(wc -l <taken)" = 2 &&
	test "$(sort -u taken | wc -l)" = 2 &&
	pids pipeline_spare_ready >ready &&
	while read -r pid; do
		grep -qx "$pid" ready || return 1
	done <taken &&
	test -z "$(events pipeline_spare_cold)"
'

test_expect_success 'a spare no push took within --pipeline-spare-idle is replaced; the next push is served by its successor' '
	n=$(events pipeline_spare_recycled | wc -l) &&
	test_wait_for 30 more_than pipeline_spare_recycled "$n" &&
	pids pipeline_spare_recycled >recycled &&
	push_main 3 &&
	test "$(succeeded_runs)" = 3 &&
	pids pipeline_spare_taken | tail -n 1 >last &&
	test -s last &&
	! grep -qxf last recycled &&
	grep -qxf last <(pids pipeline_spare_ready) &&
	test "$(events pipeline_server_started | wc -l)" = 1
'

test_expect_success 'a recycled spare is gone: no process of it is left' '
	test_wait_for 10 gone recycled
'

test_expect_success 'the spare ends with gitd' '
	pids pipeline_spare_ready >spares &&
	test -s spares &&
	gitd_stop &&
	test_wait_for 10 gone spares
'

test_expect_success 'with --pipeline-spare-idle 0 each push forks its worker when it arrives' '
	gitd_start_cluster --namespace $ns --log-level debug --pipeline-spare-idle 0 &&
	push_main 4 &&
	test "$(succeeded_runs)" = 4 &&
	test -z "$(events pipeline_spare_ready)" &&
	test -z "$(events pipeline_spare_taken)"
'

test_expect_success 'a malformed --pipeline-spare-idle is a usage error' '
	test_expect_code 2 gitd --pipeline-spare-idle soon --data-dir "$TRASH_DIRECTORY/x" 2>err &&
	test_grep "pipeline-spare-idle" err
'

test_expect_success 'clean up the namespace' '
	gitd_stop &&
	kubectl delete namespace $ns --wait --timeout=90s
'

test_done
