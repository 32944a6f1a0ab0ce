#!/usr/bin/env bash
test_description='gitd limits and shutdown: connection limit, login grace time, idle
timeout, pack size, object size and ref update limits, and SIGTERM letting a push in flight finish'
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

test_done
