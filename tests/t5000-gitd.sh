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

test_expect_success 'a shell, a pty, other commands and ssh -W are refused' '
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
	test_must_fail ssh_git -o ExitOnForwardFailure=yes -o ForwardAgent=yes -s git@127.0.0.1 sftp </dev/null 2>sub.err &&
	test_grep "subsystems are not available" sub.err &&
	test_grep "\"request\":\"shell\"" gitd.log && test_grep "\"request\":\"pty\"" gitd.log &&
	test_grep "\"request\":\"direct-tcpip\",\"detail\":\"127\.0\.0\.1:22\"" gitd.log
'

# ssh_as LEVEL ARGS...: ssh_git with OpenSSH's LogLevel LEVEL, for the
# messages it prints above ERROR.
ssh_as() {
	local level=$1
	shift
	${GIT_SSH_COMMAND/LogLevel=ERROR/LogLevel=$level} -p "$GITD_PORT" "$@"
}

# refused_line REQUEST DETAIL: the request_refused line of alice's key for
# REQUEST with DETAIL is in gitd.log (polled: some requests get no answer).
refused_line() {
	test_wait_for 10 grep -q "\"event\":\"request_refused\",\"peer\":\"127\.0\.0\.1:[0-9]*\",\"key\":\"$(ssh-keygen -l -f alice.pub | cut -d" " -f2)\",\"user\":\"git\",\"request\":\"$1\",\"detail\":\"$2\"" gitd.log
}

test_expect_success 'ssh -L: a connection through the forward is closed and gitd logs direct-tcpip' '
	use_key alice &&
	lport=$(free_port) &&
	# a simple command, so that $! is ssh itself
	lssh="${GIT_SSH_COMMAND/LogLevel=ERROR/LogLevel=INFO} -p $GITD_PORT" &&
	{ $lssh -N -L "127.0.0.1:$lport:127.0.0.1:9" git@127.0.0.1 </dev/null 2>lfwd.err & } &&
	lpid=$! &&
	test_when_finished "kill $lpid 2>/dev/null; wait $lpid 2>/dev/null; :" &&
	test_wait_for 10 python3 -c "
import socket, sys
s = socket.create_connection((\"127.0.0.1\", int(sys.argv[1])), 5)
s.settimeout(5)
sys.exit(0 if s.recv(1) == b\"\" else 1)
" "$lport" 2>/dev/null &&
	test_wait_for 10 grep -q "open failed: administratively prohibited" lfwd.err &&
	refused_line direct-tcpip "127\.0\.0\.1:9"
'

test_expect_success 'ssh -R: the remote forward is refused, ssh exits with ExitOnForwardFailure, gitd logs tcpip-forward' '
	test_expect_code 255 ssh_git -o ExitOnForwardFailure=yes -R 127.0.0.1:0:127.0.0.1:22 git@127.0.0.1 "git-upload-pack '\''default/web.git'\''" </dev/null >/dev/null 2>rfwd.err &&
	test_grep "remote port forwarding failed for listen port 0" rfwd.err &&
	refused_line tcpip-forward "127\.0\.0\.1:0"
'

test_expect_success 'ssh -X: X11 forwarding is refused, the command still runs, gitd logs x11' '
	: >xauthority &&
	# trusted: untrusted forwarding needs a running X server to make a cookie
	DISPLAY=:0 XAUTHORITY=$TRASH_DIRECTORY/xauthority ssh_as INFO -X -o ForwardX11Trusted=yes \
		git@127.0.0.1 "git-upload-pack '\''default/web.git'\''" </dev/null >adv 2>x11.err &&
	test_grep "X11 forwarding request failed on channel 0" x11.err &&
	test_grep "refs/heads/main" adv &&
	refused_line x11 ""
'

test_expect_success 'ssh -A: agent forwarding is refused (no agent channel), git works as before, gitd logs agent' '
	eval "$(ssh-agent -s)" >/dev/null &&
	test_when_finished "kill $SSH_AGENT_PID; unset SSH_AUTH_SOCK SSH_AGENT_PID" &&
	agent_ssh=${GIT_SSH_COMMAND/IdentityAgent=none/IdentityAgent=SSH_AUTH_SOCK} &&
	GIT_SSH_COMMAND="${agent_ssh/LogLevel=ERROR/LogLevel=DEBUG1} -A" \
		git ls-remote "$GITD_URL/default/web.git" >refs 2>agent.err &&
	test_grep "Requesting authentication agent forwarding" agent.err &&
	! grep "auth-agent@openssh.com" agent.err &&
	test_grep "refs/heads/main" refs &&
	refused_line agent ""
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

test_expect_success 'each connection sends its own random KEXINIT cookie: connection processes do not share a random generator' '
	python3 - "$GITD_PORT" >cookies <<-\EOF &&
	import socket, struct, sys
	# RFC 4253: after the version line, the first packet is KEXINIT:
	# uint32 length, byte padding, byte 20, then a 16-byte random cookie
	for _ in range(8):
	    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
	    s.sendall(b"SSH-2.0-OpenSSH_9.2p1 cookie-test\r\n")
	    buf = b""
	    while b"\r\n" not in buf or len(buf) < buf.index(b"\r\n") + 2 + 22:
	        chunk = s.recv(4096)
	        if not chunk:
	            break
	        buf += chunk
	    pkt = buf[buf.index(b"\r\n") + 2:]
	    assert pkt[5] == 20, "first packet is not KEXINIT"
	    print(pkt[6:22].hex())
	    s.close()
	EOF
	test "$(wc -l <cookies)" = 8 &&
	test "$(sort -u cookies | wc -l)" = 8
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

# all_json FILE: every line of FILE is a JSON object with an "event".
all_json() {
	python3 -c "
import json, sys
for n, line in enumerate(open(sys.argv[1], \"rb\"), 1):
    o = json.loads(line)
    if not isinstance(o, dict) or \"event\" not in o:
        sys.exit(\"line %d: %s\" % (n, line))
" "$1"
}

# A HEAD that cannot be moved makes receive-pack warn through lib/log
# (fix_unborn_head): a push of master alone to a new repository, whose HEAD
# names main, with HEAD.lock in the way.
push_with_head_locked() {
	git ls-remote "$GITD_URL/default/quiet.git" >/dev/null &&
	test "$(git -C repos/default/quiet.git symbolic-ref HEAD)" = refs/heads/main &&
	: >repos/default/quiet.git/HEAD.lock &&
	git -C src push -q "$GITD_URL/default/quiet.git" main:master &&
	rm repos/default/quiet.git/HEAD.lock &&
	test "$(git -C repos/default/quiet.git rev-parse master)" = "$(git -C src rev-parse main)"
}

test_expect_success 'lib/log messages are JSON lines too: every line gitd wrote parses as JSON' '
	use_key alice &&
	printf "default/quiet %s\n" "$(cat alice.pub)" >>authorized_keys &&
	test_wait_for 10 git ls-remote "$GITD_URL/default/quiet.git" &&
	push_with_head_locked &&
	test_wait_for 10 grep -q "\"event\":\"log\"" gitd.log &&
	test_grep "\"level\":\"warn\",\"event\":\"log\",\"func\":\"fix_unborn_head\",\"message\":\"cannot point HEAD at refs/heads/master: " gitd.log &&
	all_json gitd.log
'

test_expect_success 'SIGTERM stops gitd cleanly' '
	gitd_stop &&
	test_grep "\"event\":\"stopped\"" gitd.log &&
	! grep -q "connection_crashed" gitd.log
'

test_expect_success '--log-level error drops lib/log warnings as it drops warn lines' '
	rm -rf repos/default/quiet.git &&
	# gitd_start waits for the info line "listening": start by hand, on the
	# same port, so known_hosts still holds
	{ gitd --listen "127.0.0.1:$GITD_PORT" --metrics-listen none --log-level error \
		--data-dir "$TRASH_DIRECTORY/repos" --host-key-dir "$TRASH_DIRECTORY/hostkeys" \
		--authorized-keys "$TRASH_DIRECTORY/authorized_keys" 2>quiet.log & } &&
	gitd_pid=$! &&
	test_wait_for 10 git ls-remote "$GITD_URL/default/web.git" &&
	push_with_head_locked &&
	gitd_stop &&
	! grep -q "cannot point HEAD" quiet.log &&
	! grep -q "\"level\":\"\(debug\|info\|warn\)\"" quiet.log &&
	all_json quiet.log
'


test_expect_success '--log-level debug logs each connection process with its exit status and peak RSS' '
	GITD_NEXT_PORT=$GITD_PORT gitd_start --log-level debug &&
	git ls-remote "$GITD_URL/default/web.git" >/dev/null &&
	test_wait_for 10 grep -q "\"event\":\"connection_exited\"" gitd.log &&
	grep "\"event\":\"connection_exited\"" gitd.log | head -1 >exited &&
	test_grep "\"level\":\"debug\",\"event\":\"connection_exited\",\"pid\":[1-9][0-9]*,\"status\":0,\"max_rss_kib\":[1-9][0-9]*}" exited &&
	gitd_stop &&
	all_json gitd.log
'

test_done
