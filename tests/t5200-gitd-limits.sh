#!/usr/bin/env bash
test_description='gitd limits and shutdown: connection limit, login grace time, idle
timeout, pack size, object size and ref update limits, SIGTERM letting a push
in flight finish, limits on unauthenticated connections and authentication
attempts, session time and transfer rate, and a restart after SIGKILL while a
connection is open'
. "$(dirname "$0")/test-lib.sh"
. "$SLIPWAY_ROOT/tests/lib-gitd.sh"

web=repos/default/web.git

# held_push DIR URL: a push whose client says nothing until ./go exists, so
# the connection is authenticated and waiting; prints nothing, runs in the
# background. Its exit status lands in DIR.rc.
held_push() {
	cat >slow-stdin-ssh <<-EOF_
	#!/bin/sh
	{ while [ ! -e "$TRASH_DIRECTORY/go" ]; do sleep 0.05; done; cat; } | $GIT_SSH_COMMAND "\$@"
	EOF_
	chmod +x slow-stdin-ssh
	{ GIT_SSH_VARIANT=ssh GIT_SSH_COMMAND=$TRASH_DIRECTORY/slow-stdin-ssh git -C "$1" push -q "$2" main >"$1.out" 2>&1; echo $? >"$1.rc"; } &
}

# authenticated N: gitd has logged N successful authentications.
authenticated() { test "$(grep -c '"event":"auth",' gitd.log)" = "$1"; }

test_expect_success 'set up keys and a source repository' '
	make_key alice &&
	printf "default/web %s\n" "$(cat alice.pub)" >authorized_keys &&
	use_key alice &&
	git init -q -b main src && test_commit src a.txt
'

test_expect_success 'SIGTERM stops accepting but lets a push in flight finish' '
	gitd_start --shutdown-timeout 30 &&
	rm -f go &&
	held_push src "$GITD_URL/default/web.git" &&
	test_wait_for 10 authenticated 1 &&
	kill -TERM $gitd_pid &&
	test_wait_for 10 grep -q "\"event\":\"stopping\",\"connections\":1" gitd.log &&
	test_must_fail git ls-remote "$GITD_URL/default/web.git" 2>/dev/null &&
	touch go &&
	test_wait_for 20 test -s src.rc &&
	test "$(cat src.rc)" = 0 &&
	test "$(git -C $web rev-parse main)" = "$(git -C src rev-parse main)" &&
	wait $gitd_pid && gitd_pid= &&
	test_grep "\"event\":\"stopped\"" gitd.log
'

test_expect_success 'a shutdown that outlasts --shutdown-timeout kills what is left' '
	: >gitd.log &&
	gitd_start --shutdown-timeout 1 &&
	rm -f go src.rc &&
	test_commit src b.txt &&
	held_push src "$GITD_URL/default/web.git" &&
	test_wait_for 10 authenticated 1 &&
	kill -TERM $gitd_pid &&
	test_wait_for 15 grep -q "\"event\":\"stopped\"" gitd.log &&
	test_grep "\"event\":\"shutdown_timeout\"" gitd.log &&
	touch go && test_wait_for 20 test -s src.rc &&
	test "$(cat src.rc)" != 0 &&
	test "$(git -C $web rev-parse main)" = "$(git -C src rev-parse main~1)" &&
	gitd_pid=
'

test_expect_success 'connections over --max-connections are closed at once' '
	: >gitd.log &&
	gitd_start --max-connections 1 &&
	rm -f go src.rc &&
	held_push src "$GITD_URL/default/web.git" &&
	test_wait_for 10 authenticated 1 &&
	test_must_fail git ls-remote "$GITD_URL/default/web.git" 2>err &&
	test_grep "\"event\":\"connection_refused\".*\"reason\":\"max_connections\"" gitd.log &&
	touch go && test_wait_for 20 test -s src.rc &&
	test "$(cat src.rc)" = 0 &&
	git ls-remote "$GITD_URL/default/web.git" >/dev/null
'

test_expect_success 'a stalled connection and hostile bytes do not stop other pushes' '
	gitd_stop && : >gitd.log &&
	gitd_start &&
	rm -f go src.rc &&
	held_push src "$GITD_URL/default/web.git" &&
	test_wait_for 10 authenticated 1 &&
	head -c 65536 /dev/urandom >noise &&
	python3 - "$GITD_PORT" <<-EOF_ &&
	import socket, sys
	for payload in (open("noise", "rb").read(), b"SSH-2.0-x\r\n" + open("noise", "rb").read()):
	    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
	    try:
	        s.sendall(payload)
	        s.settimeout(5)
	        while s.recv(4096):
	            pass
	    except OSError:
	        pass
	    s.close()
	EOF_
	git clone -q --no-local src other &&
	test_commit other o.txt &&
	git -C other push -q "$GITD_URL/default/web.git" main:refs/heads/other &&
	test "$(git -C $web rev-parse other)" = "$(git -C other rev-parse HEAD)" &&
	touch go && test_wait_for 20 test -s src.rc &&
	test "$(cat src.rc)" = 0 &&
	test_grep "\"event\":\"connection_failed\"" gitd.log &&
	! grep -q "connection_crashed" gitd.log
'

test_expect_success 'a client that does not log in within --login-grace-time is cut off' '
	gitd_stop && : >gitd.log &&
	gitd_start --login-grace-time 1 &&
	python3 - "$GITD_PORT" >grace.out <<-EOF_ &&
	import socket, sys, time
	s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
	t0 = time.time()
	s.settimeout(10)
	data = s.recv(100)          # the server banner
	while data:
	    data = s.recv(100)      # then nothing, until the server hangs up
	print("closed after %.1f s" % (time.time() - t0))
	EOF_
	test_grep "closed after [12]\.[0-9] s" grace.out &&
	test_wait_for 5 grep -q "\"event\":\"login_timeout\"" gitd.log
'

test_expect_success 'a transfer idle past --idle-timeout fails and changes nothing' '
	gitd_stop && : >gitd.log &&
	gitd_start --idle-timeout 1 &&
	rm -f go src.rc &&
	before=$(git -C $web rev-parse main) &&
	test_commit src c.txt &&
	held_push src "$GITD_URL/default/web.git" &&
	test_wait_for 10 grep -q "\"event\":\"push\".*idle timeout" gitd.log &&
	touch go && test_wait_for 20 test -s src.rc &&
	test "$(cat src.rc)" != 0 &&
	test "$(git -C $web rev-parse main)" = "$before"
'

test_expect_success '--max-pack-size and --max-ref-updates refuse a push and change nothing' '
	gitd_stop && : >gitd.log &&
	gitd_start --max-pack-size 1K --max-ref-updates 2 &&
	before=$(git -C $web rev-parse main) &&
	head -c 100000 /dev/urandom | base64 >src/big.txt &&
	git -C src add big.txt && git -C src -c user.name=T -c user.email=t@e commit -q -m big &&
	test_must_fail git -C src push "$GITD_URL/default/web.git" main 2>err &&
	test_grep "maximum allowed size|exceeds" err &&
	test "$(git -C $web rev-parse main)" = "$before" &&
	git -C src reset -q --hard HEAD~1 &&
	git -C src tag t1 && git -C src tag t2 &&
	test_must_fail git -C src push "$GITD_URL/default/web.git" main t1 t2 2>err &&
	test_grep "^remote: too many ref updates \(3, the limit is 2\)" err &&
	test "$(git -C $web rev-parse main)" = "$before" &&
	test_must_fail git -C $web rev-parse --verify -q refs/tags/t1 &&
	ls $web/objects | { ! grep incoming; }
'

test_expect_success '--max-object-size refuses a push carrying a larger object, before inflating it, and changes nothing' '
	gitd_stop && : >gitd.log &&
	gitd_start --max-object-size 64K &&
	before=$(git -C $web rev-parse main) &&
	ls $web/objects/pack >packs.before &&
	head -c 1048576 /dev/zero >src/zeros.bin &&
	git -C src add zeros.bin && git -C src -c user.name=T -c user.email=t@e commit -q -m zeros &&
	test_must_fail git -C src push "$GITD_URL/default/web.git" main 2>err &&
	test_grep "unpack failed: blob at offset [0-9]+ is 1.0 MiB, larger than the maximum object size 64.0 KiB" err &&
	test_grep "\[remote rejected\] main -> main \(unpacker error\)" err &&
	test "$(git -C $web rev-parse main)" = "$before" &&
	ls $web/objects/pack >packs.after &&
	test_cmp packs.before packs.after &&
	ls $web/objects | { ! grep incoming; } &&
	git -C $web fsck --strict --no-progress &&
	git -C src reset -q --hard HEAD~1 &&
	test_commit src small.txt "below the limit" &&
	git -C src push -q "$GITD_URL/default/web.git" main &&
	test "$(git -C $web rev-parse main)" = "$(git -C src rev-parse main)"
'

test_expect_success 'a quarantine left by a killed connection is removed when gitd starts' '
	gitd_stop && : >gitd.log &&
	mkdir -p $web/objects/incoming-stale1/pack &&
	echo junk >$web/objects/incoming-stale1/pack/pack-0.pack &&
	gitd_start &&
	test ! -e $web/objects/incoming-stale1 &&
	test_grep "\"event\":\"quarantines_removed\",\"count\":1" gitd.log &&
	git -C $web fsck --strict --no-progress
'

# idle_sockets N: N TCP connections from 127.0.0.2 that never send a byte,
# in the background. Once each got gitd's banner or was closed, idle.out
# says "open O refused R"; they stay open until ./release exists.
idle_sockets() {
	rm -f idle.out release
	cat >idle.py <<-\EOF_
	import os, socket, sys, time
	port, n = int(sys.argv[1]), int(sys.argv[2])
	held, refused = [], 0
	for _ in range(n):
	    s = socket.socket()
	    s.bind(("127.0.0.2", 0))
	    s.connect(("127.0.0.1", port))
	    s.settimeout(10)
	    try:
	        banner = s.recv(100)
	    except OSError:
	        banner = b""
	    if banner.startswith(b"SSH-"):
	        held.append(s)
	    else:
	        refused += 1
	        s.close()
	with open("idle.tmp", "w") as f:
	    f.write("open %d refused %d\n" % (len(held), refused))
	os.rename("idle.tmp", "idle.out")
	deadline = time.time() + 120
	while not os.path.exists("release") and time.time() < deadline:
	    time.sleep(0.05)
	EOF_
	python3 idle.py "$GITD_PORT" "$1" &
	idle_pid=$!
}

# metric NAME{LABELS}: its value on /metrics.
metric() {
	curl -sf "$GITD_METRICS/metrics" | awk -v m="$1" '$1 == m { print $2 }'
}

test_expect_success 'idle connections from one address leave room for others (--per-source-max-startups)' '
	gitd_stop && : >gitd.log &&
	gitd_start --max-startups 4:50:8 --per-source-max-startups 3 --max-connections 20 &&
	idle_sockets 12 &&
	test_when_finished "touch release; wait $idle_pid" &&
	test_wait_for 30 test -s idle.out &&
	test "$(cat idle.out)" = "open 3 refused 9" &&
	test "$(grep -c "\"event\":\"connection_refused\".*\"reason\":\"per_source_max_startups\"" gitd.log)" = 9 &&
	git ls-remote "$GITD_URL/default/web.git" >refs &&
	test_grep "refs/heads/main" refs &&
	test "$(metric "gitd_connections_refused_total{reason=\"per_source_max_startups\"}")" = 9
'

test_expect_success '--max-startups FULL refuses new connections while that many have not authenticated' '
	gitd_stop && : >gitd.log &&
	gitd_start --max-startups 2 --per-source-max-startups 0 &&
	idle_sockets 2 &&
	test_when_finished "touch release; wait $idle_pid" &&
	test_wait_for 30 test -s idle.out &&
	test "$(cat idle.out)" = "open 2 refused 0" &&
	test_must_fail git ls-remote "$GITD_URL/default/web.git" 2>err &&
	test_grep "\"event\":\"connection_refused\".*\"reason\":\"max_startups\"" gitd.log &&
	test "$(metric "gitd_connections_refused_total{reason=\"max_startups\"}")" = 1 &&
	touch release && wait $idle_pid &&
	test_wait_for 20 git ls-remote "$GITD_URL/default/web.git" >/dev/null
'

test_expect_success 'an authenticated connection no longer counts against --max-startups' '
	gitd_stop && : >gitd.log &&
	gitd_start --max-startups 1 &&
	rm -f go src.rc &&
	held_push src "$GITD_URL/default/web.git" &&
	test_wait_for 10 authenticated 1 &&
	git ls-remote "$GITD_URL/default/web.git" >/dev/null &&
	git ls-remote "$GITD_URL/default/web.git" >/dev/null &&
	! grep -q "\"event\":\"connection_refused\"" gitd.log &&
	touch go && test_wait_for 20 test -s src.rc &&
	test "$(cat src.rc)" = 0
'

test_expect_success '--max-auth-tries closes a connection after that many refused keys' '
	gitd_stop && : >gitd.log &&
	for k in k1 k2 k3 k4; do make_key $k || return 1; done &&
	gitd_start --max-auth-tries 3 &&
	keys_ssh="ssh -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes \
		-o StrictHostKeyChecking=yes -o UserKnownHostsFile=$TRASH_DIRECTORY/known_hosts \
		-p $GITD_PORT" &&
	test_expect_code 255 $keys_ssh -i k1 -i k2 -i k3 -i k4 -i alice git@127.0.0.1 \
		"git-upload-pack '"'"'default/web.git'"'"'" </dev/null >out 2>err &&
	test_grep "too many authentication failures" err &&
	test "$(grep -c "\"event\":\"auth_failed\".*\"reason\":\"unknown_key\"" gitd.log)" = 3 &&
	test_grep "\"event\":\"connection_closed\".*\"reason\":\"max_auth_tries\"" gitd.log &&
	! grep -q "\"event\":\"auth\"," gitd.log &&
	test_wait_for 10 test "$(metric "gitd_connections_closed_total{reason=\"max_auth_tries\"}")" = 1 &&
	$keys_ssh -i k1 -i k2 -i alice git@127.0.0.1 \
		"git-upload-pack '"'"'default/web.git'"'"'" </dev/null >out 2>err &&
	test_grep "refs/heads/main" out
'

# trickle_push: git-receive-pack over ssh, fed one byte of a pkt-line that
# never completes every 0.3 s, as a stalling client would; its stderr lands
# in trickle.err and how long it ran (s) in trickle.time.
trickle_push() {
	local t0=$SECONDS rc
	{ for c in 0 0 3 2 a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a; do
		printf %s "$c" || exit 0
		sleep 0.3
	done; } | ssh_git git@127.0.0.1 "git-receive-pack 'default/web.git'" >trickle.out 2>trickle.err
	rc=$?
	echo $((SECONDS - t0)) >trickle.time
	return $rc
}

test_expect_success '--max-session-time cuts off a push that trickles bytes' '
	gitd_stop && : >gitd.log &&
	gitd_start --max-session-time 3s &&
	test_must_fail trickle_push &&
	test "$(cat trickle.time)" -lt 15 &&
	test_grep "slipway: error: session time limit" trickle.err &&
	test_grep "\"event\":\"connection_closed\".*\"reason\":\"max_session_time\"" gitd.log &&
	test_grep "\"event\":\"push\".*session time limit" gitd.log &&
	test "$(metric "gitd_connections_closed_total{reason=\"max_session_time\"}")" = 1
'

test_expect_success '--min-transfer-rate cuts off a push that sends too little per window' '
	gitd_stop && : >gitd.log &&
	gitd_start --min-transfer-rate 100 --transfer-rate-window 2s &&
	test_must_fail trickle_push &&
	test "$(cat trickle.time)" -lt 15 &&
	test_grep "slipway: error: transfer too slow" trickle.err &&
	test_grep "\"event\":\"connection_closed\".*\"reason\":\"min_transfer_rate\"" gitd.log &&
	test "$(metric "gitd_connections_closed_total{reason=\"min_transfer_rate\"}")" = 1
'

# children_of PID: the processes whose parent is PID.
children_of() {
	local stat pid comm state ppid rest
	for stat in /proc/[0-9]*/stat; do
		read -r pid comm state ppid rest <"$stat" 2>/dev/null || continue
		[ "$ppid" != "$1" ] || echo "$pid"
	done
}

# listening_fds PID: the descriptors of PID that are listening TCP sockets.
listening_fds() {
	local inodes
	inodes=$(awk '$4 == "0A" { print $10 }' /proc/net/tcp /proc/net/tcp6)
	for fd in /proc/$1/fd/*; do
		link=$(readlink "$fd") || continue
		for i in $inodes; do
			[ "$link" != "socket:[$i]" ] || echo "$fd"
		done
	done
}

test_expect_success 'after gitd is killed with SIGKILL, a new one serves on the same ports while a connection goes on' '
	gitd_stop && : >gitd.log &&
	gitd_start &&
	rm -f go src.rc &&
	test_when_finished "touch go" &&
	test_commit src d.txt &&
	held_push src "$GITD_URL/default/web.git" &&
	test_wait_for 10 authenticated 1 &&
	conn=$(children_of $gitd_pid) &&
	test -n "$conn" &&
	test "$(listening_fds $conn)" = "" &&
	ls -l /proc/$conn/fd >conn.fds &&
	test "$(grep -c socket: conn.fds)" = 1 &&
	kill -KILL $gitd_pid && { wait $gitd_pid || :; } && gitd_pid= &&
	test -d /proc/$conn &&
	GITD_NEXT_PORT=$GITD_PORT GITD_NEXT_METRICS_PORT=${GITD_METRICS##*:} gitd_start &&
	curl -sf "$GITD_METRICS/healthz" &&
	git ls-remote "$GITD_URL/default/web.git" >/dev/null &&
	test "$(listening_fds $conn)" = "" &&
	touch go && test_wait_for 20 test -s src.rc &&
	test "$(cat src.rc)" = 0 &&
	test "$(git -C $web rev-parse main)" = "$(git -C src rev-parse main)"
'

test_done
