#!/usr/bin/env bash
test_description='gitd over SSH: the real git client and OpenSSH client against gitd
serving from an authorized-keys file (no cluster needed)'
. "$(dirname "$0")/test-lib.sh"
. "$SLIPWAY_ROOT/tests/lib-gitd.sh"

web=repos/default/web.git
api=repos/default/api.git

# fsck_clean REPO: the server repository passes git fsck --strict.
fsck_clean() {
	git -C "$1" fsck --strict --no-progress 2>&1 | { ! grep -v '^dangling '; }
}

test_expect_success 'gitd starts, generates host keys and loads the authorized keys' '
	make_key alice && make_key bob && make_key mallory &&
	printf "default/web,default/api %s\ndefault/api %s\n" "$(cat alice.pub)" "$(cat bob.pub)" >authorized_keys &&
	gitd_start &&
	test -f hostkeys/ssh_host_ed25519_key && test -f hostkeys/ssh_host_rsa_key &&
	test "$(stat -c %a hostkeys/ssh_host_ed25519_key)" = 600 &&
	test_grep "\"event\":\"authorized_keys_loaded\".*\"keys\":2,\"remotes\":2" gitd.log
'

test_expect_success 'first push to an empty Remote creates the repository and the branch' '
	use_key alice &&
	git init -q -b main src &&
	test_commit src a.txt &&
	git -C src push "$GITD_URL/default/web.git" main 2>push.err &&
	test "$(git -C $web rev-parse refs/heads/main)" = "$(git -C src rev-parse HEAD)" &&
	test "$(git -C $web symbolic-ref HEAD)" = refs/heads/main &&
	fsck_clean $web
'

test_expect_success 'a further push fast-forwards the branch, by every URL form' '
	test_commit src b.txt &&
	git -C src push "$GITD_URL/default/web.git" main &&
	test_commit src c.txt &&
	GIT_SSH_COMMAND="$GIT_SSH_COMMAND -p $GITD_PORT" git -C src push git@127.0.0.1:default/web main &&
	test_commit src c2.txt &&
	git -C src push "$GITD_URL/default/web" main &&
	test_commit src d.txt &&
	git -C src push "ssh://default-web@127.0.0.1:$GITD_PORT/~/git/default-web" main &&
	test "$(git -C $web rev-parse main)" = "$(git -C src rev-parse HEAD)" &&
	fsck_clean $web
'

test_expect_success 'several branches and tags arrive in one push' '
	git -C src branch feature &&
	git -C src tag v1 &&
	git -C src -c user.name=T -c user.email=t@e tag -a -m release v2 &&
	git -C src push "$GITD_URL/default/web.git" feature v1 v2 &&
	test "$(git -C $web rev-parse feature)" = "$(git -C src rev-parse feature)" &&
	test "$(git -C $web rev-parse v1)" = "$(git -C src rev-parse v1)" &&
	test "$(git -C $web cat-file -t v2)" = tag &&
	fsck_clean $web
'

test_expect_success 'a branch can be deleted' '
	git -C src push "$GITD_URL/default/web.git" :feature &&
	test_must_fail git -C $web rev-parse --verify -q refs/heads/feature &&
	fsck_clean $web
'

test_expect_success 'deleting the current branch is refused: HEAD still resolves, the branch stays' '
	before=$(git -C $web rev-parse main) &&
	test_must_fail git -C src push "$GITD_URL/default/web.git" :main 2>err &&
	test_grep "^remote: error: refusing to delete the current branch: refs/heads/main" err &&
	test_grep "\[remote rejected\] +main \(deletion of the current branch prohibited\)" err &&
	test "$(git -C $web rev-parse main)" = "$before" &&
	test "$(git -C $web rev-parse HEAD)" = "$before" &&
	git ls-remote "$GITD_URL/default/web.git" >refs &&
	test_grep "^$before	HEAD$" refs &&
	test_grep "^$before	refs/heads/main$" refs
'

test_expect_success 'a force push replaces the branch' '
	git -C src checkout -q -b rewrite main~1 &&
	test_commit src e.txt &&
	git -C src push --force "$GITD_URL/default/web.git" rewrite:main &&
	test "$(git -C $web rev-parse main)" = "$(git -C src rev-parse rewrite)" &&
	git -C src checkout -q main && git -C src reset -q --hard rewrite &&
	fsck_clean $web
'

test_expect_success 'clone gets every ref and the default branch' '
	git clone -q "$GITD_URL/default/web.git" clone1 &&
	test "$(git -C clone1 rev-parse HEAD)" = "$(git -C $web rev-parse main)" &&
	test "$(git -C clone1 symbolic-ref HEAD)" = refs/heads/main &&
	test "$(git -C clone1 rev-parse v2)" = "$(git -C $web rev-parse v2)" &&
	git -C clone1 fsck --strict --no-progress
'

test_expect_success 'fetch works with protocol v0 and v2' '
	test_commit src f.txt &&
	git -C src push -q "$GITD_URL/default/web.git" main &&
	GIT_TRACE_PACKET=$TRASH_DIRECTORY/v0.trace git -C clone1 -c protocol.version=0 fetch -q origin &&
	test "$(git -C clone1 rev-parse origin/main)" = "$(git -C src rev-parse HEAD)" &&
	! grep -q "version 2" v0.trace &&
	test_commit src g.txt &&
	git -C src push -q "$GITD_URL/default/web.git" main &&
	GIT_TRACE_PACKET=$TRASH_DIRECTORY/v2.trace git -C clone1 -c protocol.version=2 fetch -q origin &&
	test "$(git -C clone1 rev-parse origin/main)" = "$(git -C src rev-parse HEAD)" &&
	grep -q "< version 2" v2.trace &&
	git -C clone1 fsck --strict --no-progress
'

test_expect_success 'a push from a shallow clone is accepted' '
	git clone -q --depth 1 "$GITD_URL/default/web.git" shallow &&
	test "$(git -C shallow rev-list --count HEAD)" = 1 &&
	test_commit shallow h.txt &&
	git -C shallow push -q origin main &&
	test "$(git -C $web rev-parse main)" = "$(git -C shallow rev-parse HEAD)" &&
	git -C src pull -q --ff-only "$GITD_URL/default/web.git" main &&
	fsck_clean $web
'

test_expect_success 'an unknown key is refused and the repository is unchanged' '
	before=$(git -C $web rev-parse main) &&
	use_key mallory &&
	test_commit src evil.txt &&
	test_must_fail git -C src push "$GITD_URL/default/web.git" main 2>err &&
	test_grep "Permission denied \(publickey\)" err &&
	test_must_fail git ls-remote "$GITD_URL/default/web.git" 2>err &&
	test "$(git -C $web rev-parse main)" = "$before" &&
	test_grep "\"event\":\"auth_failed\".*\"reason\":\"unknown_key\"" gitd.log &&
	git -C src reset -q --hard HEAD~1
'

test_expect_success 'another Remote, an unknown Remote and a bad path all say "not found or access denied"' '
	use_key bob &&
	test_must_fail git ls-remote "$GITD_URL/default/web.git" 2>err1 &&
	test_grep "repository not found or access denied" err1 &&
	test_must_fail git ls-remote "$GITD_URL/default/nosuch.git" 2>err2 &&
	test_grep "repository not found or access denied" err2 &&
	test_must_fail git -C src push "$GITD_URL/default/web.git" main 2>err3 &&
	test_grep "repository not found or access denied" err3 &&
	test_must_fail ssh_git git@127.0.0.1 "git-upload-pack '\''default/../web.git'\''" 2>err4 </dev/null &&
	test_grep "invalid repository path" err4 &&
	test_must_fail ssh_git git@127.0.0.1 "git-upload-pack '\''/../../etc'\''" 2>err5 </dev/null &&
	test_grep "invalid repository path" err5 &&
	test ! -e repos/etc && test ! -e repos/default/nosuch.git &&
	git ls-remote "$GITD_URL/default/api.git" >/dev/null
'

test_expect_success 'a shell, a pty, other commands and port forwarding are refused' '
	use_key alice &&
	test_expect_code 1 ssh_git git@127.0.0.1 </dev/null 2>shell.err &&
	test_grep "no shell access" shell.err &&
	test_must_fail ssh_git -tt git@127.0.0.1 </dev/null 2>pty.err &&
	test_grep "PTY allocation request failed" pty.err &&
	test_expect_code 1 ssh_git git@127.0.0.1 "ls /" </dev/null 2>cmd.err &&
	test_grep "command not allowed" cmd.err &&
	test_expect_code 1 ssh_git git@127.0.0.1 "git-upload-pack --help" </dev/null 2>opt.err &&
	test_grep "invalid repository path" opt.err &&
	test_must_fail ssh_git -W 127.0.0.1:22 git@127.0.0.1 </dev/null 2>fwd.err &&
	test_grep "open failed|forwarding failed" fwd.err &&
	test_must_fail ssh_git -o ExitOnForwardFailure=yes -R 0:127.0.0.1:22 git@127.0.0.1 "git-upload-pack '\''default/web.git'\''" </dev/null 2>rfwd.err &&
	test_grep "forwarding failed" rfwd.err &&
	test_must_fail ssh_git -o ExitOnForwardFailure=yes -o ForwardAgent=yes -s git@127.0.0.1 sftp </dev/null 2>sub.err &&
	test_grep "subsystems are not available" sub.err &&
	test_grep "\"request\":\"shell\"" gitd.log && test_grep "\"request\":\"pty\"" gitd.log
'

test_expect_success 'a command that is not UTF-8 is logged with its bad bytes replaced, the line whole' '
	use_key alice &&
	cmd=$(printf "git-upload-pack default/w\377b.git") &&
	test_must_fail ssh_git git@127.0.0.1 "$cmd" </dev/null 2>utf.err &&
	test_wait_for 10 grep -q "w?b\.git" gitd.log &&
	grep -a "w?b\.git" gitd.log | tail -n 1 >line &&
	test_grep "^\{\"time\":.*\"event\":\"(access_denied|request_refused)\"" line &&
	test_grep "\"peer\":\"127\.0\.0\.1:[0-9]+\"" line &&
	test_must_fail grep -q "log_error" line &&
	python3 -c "import json, sys; json.loads(open(sys.argv[1]).read())" line
'

test_expect_success 'password authentication is not offered' '
	test_must_fail ssh -p "$GITD_PORT" -o PubkeyAuthentication=no -o BatchMode=yes \
		-o PreferredAuthentications=password,keyboard-interactive \
		-o StrictHostKeyChecking=yes -o UserKnownHostsFile=$TRASH_DIRECTORY/known_hosts \
		git@127.0.0.1 true 2>pw.err &&
	test_grep "Permission denied \(publickey\)" pw.err
'

test_expect_success 'a key added to the file works at once, and stops working when removed' '
	use_key mallory &&
	test_must_fail git ls-remote "$GITD_URL/default/api.git" 2>/dev/null &&
	cp authorized_keys keys.orig &&
	printf "default/api %s\n" "$(cat mallory.pub)" >>authorized_keys &&
	test_wait_for 10 git ls-remote "$GITD_URL/default/api.git" &&
	cp keys.orig authorized_keys.new && mv authorized_keys.new authorized_keys &&
	test_wait_for 10 test_must_fail git ls-remote "$GITD_URL/default/api.git" 2>/dev/null
'

test_expect_success '20 clients racing to push one branch: every accepted commit is reachable, every loser saw an error' '
	use_key alice &&
	git init -q -b main race0 && test_commit race0 base.txt &&
	git -C race0 push -q "$GITD_URL/default/api.git" main &&
	for i in $(seq 1 20); do
		git clone -q "$GITD_URL/default/api.git" race$i &&
		test_commit race$i "r$i.txt" || return 1
	done &&
	pids= &&
	for i in $(seq 1 20); do
		{ git -C race$i push "$GITD_URL/default/api.git" main >race$i.out 2>&1; echo $? >race$i.rc; } &
		pids="$pids $!"
	done &&
	for p in $pids; do wait $p; done &&
	won=0 && lost=0 &&
	for i in $(seq 1 20); do
		if [ "$(cat race$i.rc)" = 0 ]; then
			won=$((won + 1)) &&
			git -C $api merge-base --is-ancestor "$(git -C race$i rev-parse HEAD)" main || return 1
		else
			lost=$((lost + 1)) &&
			grep -E "rejected|failed|fetch first|error" race$i.out >/dev/null || { cat race$i.out; return 1; }
		fi
	done &&
	say "race: $won won, $lost lost" &&
	test $won -ge 1 && test $((won + lost)) = 20 &&
	fsck_clean $api
'

test_expect_success '/metrics counts connections, pushes, fetches and auth failures; /healthz answers' '
	curl -fsS "$GITD_METRICS/metrics" >metrics &&
	test_grep "^# TYPE gitd_pushes_total counter" metrics &&
	pushes=$(sed -n "s/^gitd_pushes_total{result=\"ok\"} //p" metrics) &&
	test "$pushes" -ge 10 &&
	fetches=$(sed -n "s/^gitd_fetches_total{result=\"ok\"} //p" metrics) &&
	test "$fetches" -ge 3 &&
	test_grep "^gitd_auth_failures_total\{reason=\"unknown_key\"\} [1-9]" metrics &&
	test_grep "^gitd_push_duration_seconds_bucket\{le=\"\+Inf\"\} $pushes" metrics &&
	test_grep "^gitd_connections_active [0-9]" metrics &&
	test "$(curl -fsS "$GITD_METRICS/healthz")" = ok &&
	test "$(curl -fsS "$GITD_METRICS/readyz")" = ok &&
	test "$(curl -s -o /dev/null -w "%{http_code}" "$GITD_METRICS/nope")" = 404
'

test_expect_success 'SIGTERM stops gitd cleanly' '
	gitd_stop &&
	test_grep "\"event\":\"stopped\"" gitd.log &&
	! grep -q "connection_crashed" gitd.log
'

test_done
