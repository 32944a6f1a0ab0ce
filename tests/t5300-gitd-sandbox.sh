#!/usr/bin/env bash
test_description='a connection process of gitd, held open after its ref
advertisement, is sandboxed as seen from outside: ptrace makes it call
openat(2), socket(2) and ptrace(2), and only its own repository opens (no
cluster needed). (gdb could make the calls too, but gdb 13 cannot write the
registers back on CPUs with AMX state and kills the process.)'
. "$(dirname "$0")/test-lib.sh"
. "$SLIPWAY_ROOT/tests/lib-gitd.sh"

token=$TRASH_DIRECTORY/serviceaccount/token
hold_pid=

# inject PID SYSCALL ARG...: "RESULT ERRNO" of the call as process PID made
# it (tests/tools/ptrace-call.c)
inject() {
	ptrace-call "$@"
}

sleep 300 &
probe=$!
rc=0
ptrace-call "$probe" getpid >/dev/null || rc=$?
kill "$probe"
[ $rc != 77 ] || test_skip_all "ptrace-call cannot attach to a process here (ptrace restricted, e.g. Yama ptrace_scope 3, or not x86-64)"

# the connection process: the child of gitd that was not there before
connection_pid() {
	comm -13 before.pids <(ps -o pid= --ppid "$gitd_pid" | tr -d ' ' | sort) >after.pids &&
		test "$(wc -l <after.pids)" = 1
}

# closing the client's stdin (the fifo's writer, fd 7) ends the fetch
hold_stop() {
	[ -n "$hold_pid" ] || return 0
	exec 7>&-
	kill "$hold_pid" 2>/dev/null
	wait "$hold_pid" 2>/dev/null
	hold_pid=
}

test_expect_success 'gitd serves two Remotes, one of them to alice, and a token file lies beside its data' '
	make_key alice && make_key bob &&
	printf "default/web %s\ndefault/api %s\n" "$(cat alice.pub)" "$(cat bob.pub)" >authorized_keys &&
	mkdir -p serviceaccount && echo secret-token >"$token" && chmod 600 "$token" &&
	gitd_start &&
	git init -q -b main src && test_commit src a.txt &&
	use_key bob && git -C src push -q "$GITD_URL/default/api.git" main &&
	use_key alice && git -C src push -q "$GITD_URL/default/web.git" main &&
	test -f repos/default/api.git/HEAD && test -f repos/default/web.git/HEAD
'

test_expect_success 'a fetch held open after the ref advertisement has a connection process' '
	ps -o pid= --ppid "$gitd_pid" | tr -d " " | sort >before.pids &&
	mkfifo hold.in &&
	{ ssh_git git@127.0.0.1 "git-upload-pack '\''default/web.git'\''" <hold.in >adv.out 2>adv.err & } &&
	hold_pid=$! &&
	exec 7>hold.in &&
	test_wait_for 30 grep -q "refs/heads/main" adv.out &&
	test_wait_for 10 connection_pid &&
	conn=$(cat after.pids) &&
	test -d "/proc/$conn" && echo "$conn" >conn.pid
'

test_expect_success 'the connection process has no_new_privs and a seccomp filter' '
	conn=$(cat conn.pid) &&
	grep -q "^NoNewPrivs:[[:space:]]*1$" "/proc/$conn/status" &&
	grep -q "^Seccomp:[[:space:]]*2$" "/proc/$conn/status"
'

if grep -q '"event":"sandbox_degraded"' gitd.log; then
	reason=$(sed -n 's/.*"event":"sandbox_degraded".*"reason":"\([^"]*\)".*/\1/p' gitd.log | head -1)
	test_skip 'the connection process cannot open the token file nor another Remote' \
		"landlock unavailable here: $reason"
else
	test_expect_success 'the connection process opens its own repository, not the token file nor another Remote' '
		conn=$(cat conn.pid) &&
		test "$(cat "$token")" = secret-token &&
		own=$(inject "$conn" openat -100 "$TRASH_DIRECTORY/repos/default/web.git/HEAD" 0) &&
		echo "own repository: $own" &&
		test "${own%% *}" -ge 0 &&
		tok=$(inject "$conn" openat -100 "$token" 0) &&
		echo "token: $tok" &&
		test "$tok" = "-1 13" &&
		other=$(inject "$conn" openat -100 "$TRASH_DIRECTORY/repos/default/api.git/HEAD" 0) &&
		echo "other Remote: $other" &&
		test "$other" = "-1 13" &&
		data=$(inject "$conn" openat -100 "$TRASH_DIRECTORY/repos" 0) &&
		echo "data directory: $data" &&
		test "$data" = "-1 13" &&
		etc=$(inject "$conn" openat -100 /etc/passwd 0) &&
		echo "/etc/passwd: $etc" &&
		test "$etc" = "-1 13"
	'
fi

test_expect_success 'the connection process may not open a TCP socket nor trace a process' '
	conn=$(cat conn.pid) &&
	tcp=$(inject "$conn" socket 2 1 0) &&
	echo "socket(AF_INET): $tcp" &&
	test "$tcp" = "-1 1" &&
	unix=$(inject "$conn" socket 1 1 0) &&
	echo "socket(AF_UNIX): $unix" &&
	test "${unix%% *}" -ge 0 &&
	tr=$(inject "$conn" ptrace 16 "$gitd_pid" 0 0) &&
	echo "ptrace(PTRACE_ATTACH): $tr" &&
	test "$tr" = "-1 1"
'

test_expect_success 'the held fetch still ends cleanly after the injected calls' '
	printf 0000 >&7 &&
	exec 7>&- &&
	wait "$hold_pid" &&
	hold_pid= &&
	test_must_fail grep -q "\"event\":\"sandbox_failed\"" gitd.log &&
	test_grep "\"level\":\"info\",\"event\":\"fetch\",\"remote\":\"default/web\"" gitd.log
'

test_expect_success 'a clone through a sandboxed connection gets the branch' '
	use_key alice &&
	git clone -q "$GITD_URL/default/web.git" clone &&
	test "$(git -C clone rev-parse HEAD)" = "$(git -C src rev-parse HEAD)"
'

hold_stop
test_done
