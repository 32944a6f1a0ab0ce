#!/usr/bin/env bash
test_description='receive-pack: the real git client pushes through gitd (git-serve) into a bare repository'
. "$(dirname "$0")/test-lib.sh"

HOME=$TRASH_DIRECTORY
GIT_CONFIG_NOSYSTEM=1
GIT_AUTHOR_NAME='A U Thor'
GIT_AUTHOR_EMAIL=author@example.com
GIT_COMMITTER_NAME='C O Mitter'
GIT_COMMITTER_EMAIL=committer@example.com
export HOME GIT_CONFIG_NOSYSTEM GIT_AUTHOR_NAME GIT_AUTHOR_EMAIL GIT_COMMITTER_NAME \
	GIT_COMMITTER_EMAIL

srv=file://$TRASH_DIRECTORY/srv.git
zero=0000000000000000000000000000000000000000

# push [git push options...]: push from the current directory through git-serve.
push() { git push --receive-pack='git-serve receive-pack' "$@"; }

# commit_file DIR FILE TEXT: commit TEXT as FILE in DIR.
commit_file() { printf '%s\n' "$3" >"$1/$2" && git -C "$1" add "$2" && git -C "$1" commit -q -m "$2: $3"; }

# The server is consistent and holds no quarantine.
server_is_clean() {
	git -C srv.git fsck --strict --no-dangling --no-progress &&
	test -z "$(find srv.git/objects -maxdepth 1 -name 'incoming-*')"
}

# pkt TEXT: TEXT (printf %b escapes, so \0 is a NUL) as one pkt-line.
pkt() { printf '%04x' $(($(printf '%b' "$1" | wc -c) + 4)) && printf '%b' "$1"; }

srv_ref() { git -C srv.git rev-parse --verify -q "$1"; }
client_ref() { git -C client rev-parse --verify -q "$1"; }

test_expect_success 'set up an empty bare server and a client with two commits' '
	git init -q --bare -b main srv.git &&
	git init -q -b main client &&
	commit_file client a one &&
	commit_file client a two &&
	git -C client pack-objects --stdout </dev/null >empty.pack
'

test_expect_success 'the first push to an empty repository creates the branch' '
	(cd client && push "$srv" main) 2>err &&
	test_grep "\[new branch\] +main -> main" err &&
	test "$(srv_ref main)" = "$(client_ref main)" &&
	test "$(git -C srv.git symbolic-ref HEAD)" = refs/heads/main &&
	server_is_clean
'

test_expect_success 'a further push fast-forwards the branch' '
	commit_file client a three &&
	(cd client && push "$srv" main) 2>err &&
	test_grep "^   [0-9a-f]+\.\.[0-9a-f]+ +main -> main" err &&
	test "$(srv_ref main)" = "$(client_ref main)" &&
	server_is_clean
'

test_expect_success 'several branches and tags arrive in one push' '
	git -C client branch feature &&
	commit_file client b feature-work &&
	git -C client checkout -q -b topic &&
	commit_file client c topic-work &&
	git -C client checkout -q main &&
	git -C client tag v1 main~1 &&
	git -C client tag -a -m "release 2" v2 main &&
	(cd client && push "$srv" feature topic v1 v2) 2>err &&
	for r in refs/heads/feature refs/heads/topic refs/tags/v1 refs/tags/v2; do
		test "$(srv_ref $r)" = "$(client_ref $r)" || return 1
	done &&
	test "$(git -C srv.git cat-file -t refs/tags/v2)" = tag &&
	server_is_clean
'

test_expect_success 'push options reach the server without disturbing the push' '
	commit_file client a four &&
	(cd client && push -o ci.skip -o "note=two words" "$srv" main) 2>err &&
	test "$(srv_ref main)" = "$(client_ref main)" &&
	server_is_clean
'

test_expect_success 'a branch delete removes the ref' '
	(cd client && push "$srv" :topic) 2>err &&
	test_grep "\[deleted\] +topic" err &&
	test_must_fail srv_ref refs/heads/topic &&
	server_is_clean
'

test_expect_success 'deleting the branch HEAD names is refused and HEAD still resolves' '
	before=$(srv_ref main) &&
	(cd client && test_must_fail push "$srv" :main) 2>err &&
	test_grep "^remote: error: refusing to delete the current branch: refs/heads/main" err &&
	test_grep "\[remote rejected\] +main \(deletion of the current branch prohibited\)" err &&
	{ pkt "$before $zero refs/heads/main\0 report-status" && printf 0000; } |
		git-serve receive-pack srv.git >out 2>err &&
	grep -a "ng refs/heads/main deletion of the current branch prohibited" out &&
	test "$(srv_ref main)" = "$before" &&
	test "$(srv_ref HEAD)" = "$before" &&
	git -C srv.git symbolic-ref HEAD >head &&
	echo refs/heads/main >head.expect &&
	test_cmp head.expect head &&
	server_is_clean
'

test_expect_success 'with GIT_SERVE_ALLOW_DELETE_CURRENT the branch HEAD names can be deleted' '
	before=$(srv_ref main) &&
	test_when_finished "git -C srv.git update-ref refs/heads/main $before" &&
	(cd client && GIT_SERVE_ALLOW_DELETE_CURRENT=1 push "$srv" :main) 2>err &&
	test_grep "\[deleted\] +main" err &&
	test_must_fail srv_ref refs/heads/main &&
	test "$(git -C srv.git symbolic-ref HEAD)" = refs/heads/main
'

test_expect_success 'a forced non-fast-forward push replaces the branch' '
	git -C client checkout -q feature &&
	git -C client reset -q --hard HEAD~1 &&
	commit_file client b rewritten &&
	(cd client && push -f "$srv" feature) 2>err &&
	test_grep "\(forced update\)" err &&
	test "$(srv_ref feature)" = "$(client_ref feature)" &&
	server_is_clean
'

test_expect_success 'with GIT_SERVE_DENY_NON_FF a forced push is refused and the branch stays' '
	before=$(srv_ref feature) &&
	git -C client reset -q --hard HEAD~1 &&
	commit_file client b rewritten-again &&
	(cd client && GIT_SERVE_DENY_NON_FF=1 test_must_fail push -f "$srv" feature) 2>err &&
	test_grep "\[remote rejected\] +feature -> feature \(non-fast-forward\)" err &&
	test "$(srv_ref feature)" = "$before" &&
	server_is_clean
'

test_expect_success 'with GIT_SERVE_DENY_NON_FF a fast-forward is still accepted' '
	git -C client checkout -q main &&
	commit_file client a five &&
	(cd client && GIT_SERVE_DENY_NON_FF=1 push "$srv" main) 2>err &&
	test "$(srv_ref main)" = "$(client_ref main)" &&
	server_is_clean
'

test_expect_success 'an atomic push where one ref fails moves no ref at all' '
	main_before=$(srv_ref main) &&
	feature_before=$(srv_ref feature) &&
	commit_file client a six &&
	(cd client && GIT_SERVE_DENY_NON_FF=1 test_must_fail push --atomic "$srv" main +feature) 2>err &&
	test_grep "feature -> feature \(non-fast-forward\)" err &&
	test_grep "main -> main \(atomic push failed\)" err &&
	test "$(srv_ref main)" = "$main_before" &&
	test "$(srv_ref feature)" = "$feature_before" &&
	server_is_clean
'

test_expect_success 'without --atomic the same push moves the refs that pass' '
	(cd client && GIT_SERVE_DENY_NON_FF=1 test_must_fail push "$srv" main +feature) 2>err &&
	test_grep "feature -> feature \(non-fast-forward\)" err &&
	test "$(srv_ref main)" = "$(client_ref main)" &&
	test "$(srv_ref feature)" = "$feature_before" &&
	server_is_clean
'

test_expect_success 'a pre-receive rejection reaches the pusher and leaves refs and packs unchanged' '
	before=$(srv_ref main) &&
	ls srv.git/objects/pack >packs.before &&
	commit_file client a seven &&
	(cd client && GIT_SERVE_REJECT="deploys are frozen until monday" test_must_fail push "$srv" main) 2>err &&
	test_grep "remote: pre-receive: rejecting 1 command" err &&
	test_grep "\[remote rejected\] +main -> main \(deploys are frozen until monday\)" err &&
	test "$(srv_ref main)" = "$before" &&
	ls srv.git/objects/pack >packs.after &&
	test_cmp packs.before packs.after &&
	test_must_fail git -C srv.git cat-file -e "$(client_ref main)" &&
	server_is_clean
'

test_expect_success 'a pack over GIT_SERVE_MAX_PACK is refused while it streams' '
	before=$(srv_ref main) &&
	ls srv.git/objects/pack >packs.before &&
	head -c 300000 /dev/urandom >client/noise &&
	git -C client add noise && git -C client commit -q -m noise &&
	(cd client && GIT_SERVE_MAX_PACK=100000 test_must_fail push "$srv" main) 2>err &&
	test_grep "pack exceeds maximum allowed size" err &&
	test "$(srv_ref main)" = "$before" &&
	ls srv.git/objects/pack >packs.after &&
	test_cmp packs.before packs.after &&
	server_is_clean
'

test_expect_success 'a push under GIT_SERVE_MAX_PACK goes through' '
	(cd client && GIT_SERVE_MAX_PACK=10000000 push "$srv" main) 2>err &&
	test "$(srv_ref main)" = "$(client_ref main)" &&
	server_is_clean
'

test_expect_success 'more ref updates than GIT_SERVE_MAX_REFS are all refused' '
	git -C client branch many1 && git -C client branch many2 && git -C client branch many3 &&
	(cd client && GIT_SERVE_MAX_REFS=2 test_must_fail push "$srv" many1 many2 many3) 2>err &&
	test_grep "^remote: too many ref updates \(3, the limit is 2\)" err &&
	test_must_fail srv_ref refs/heads/many1 &&
	test_must_fail srv_ref refs/heads/many3 &&
	(cd client && GIT_SERVE_MAX_REFS=2 push "$srv" many1 many2) 2>err &&
	test "$(srv_ref many2)" = "$(client_ref main)" &&
	server_is_clean
'

# serve_request N NAME_LENGTH CAPABILITIES: streams an update request of N
# commands creating refs/heads/NNNNNN-aaa... (names padded to NAME_LENGTH
# bytes) and, with push-options, one push option, through git-serve
# receive-pack srv.git, its answer into out, its stderr into err; prints
# "rc KIB", its exit status and peak resident set size (getrusage of the
# child).
serve_request() {
	python3 - "$1" "$2" "$3" "$(client_ref main)" <<-\EOF
	import resource, subprocess, sys
	n, length, caps, new = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
	p = subprocess.Popen(["git-serve", "receive-pack", "srv.git"], stdin=subprocess.PIPE,
	                     stdout=open("out", "wb"), stderr=open("err", "wb"))
	try:
	    for i in range(n):
	        line = "%s %s %s" % ("0" * 40, new, ("refs/heads/%06d-" % i).ljust(length, "a"))
	        if i == 0:
	            line += "\0" + caps
	        b = line.encode()
	        p.stdin.write(b"%04x" % (len(b) + 4) + b)
	    p.stdin.write(b"0000")
	    if "push-options" in caps:
	        p.stdin.write(b"000bci.skip0000")
	    p.stdin.close()
	except BrokenPipeError:
	    pass
	rc = p.wait()
	print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
	EOF
}

test_expect_success 'commands over GIT_SERVE_MAX_REFS are refused while read: the client reads why' '
	git -C srv.git for-each-ref >refs.before &&
	GIT_SERVE_MAX_REFS=1000 serve_request 3000 40 "report-status side-band-64k push-options" >res &&
	test "$(cut -d" " -f1 res)" = 1 &&
	grep -a "too many ref updates (3000, the limit is 1000)" out &&
	test_grep "3000 commands, 0 updated, 3000 rejected" err &&
	git -C srv.git for-each-ref >refs.after &&
	test_cmp refs.before refs.after &&
	server_is_clean
'

test_expect_success '2000 commands with 65000-byte refnames are refused in little memory' '
	GIT_SERVE_MAX_REFS=1000 serve_request 2000 65000 report-status >res &&
	read rc kib <res &&
	test "$rc" = 1 &&
	grep -a "ERR refname too long (65000 bytes, the limit is 1023): .refs/heads/000000-aaa" out &&
	test_grep "2000 commands, 0 updated, 2000 rejected" err &&
	echo "peak RSS of git-serve: $kib KiB" &&
	test "$kib" -lt 65536 &&
	server_is_clean
'

test_expect_success 'a refname of 1023 bytes is accepted, one of 1024 refuses the request' '
	cur=$(srv_ref main) &&
	name=refs/heads/$(printf "%0200d/" 1 2 3 4)$(printf "%0*d" $((1023 - 11 - 4 * 201)) 5) &&
	test ${#name} = 1023 &&
	{ pkt "$zero $cur $name\0 report-status" && printf 0000 && cat empty.pack; } >req &&
	git-serve receive-pack srv.git <req >out 2>err &&
	grep -a "ok $name" out &&
	test "$(srv_ref $name)" = "$cur" &&
	{ pkt "$zero $cur refs/heads/short\0 report-status" &&
	  pkt "$zero $cur ${name}6" && printf 0000 && cat empty.pack; } >req &&
	test_must_fail git-serve receive-pack srv.git <req >out 2>err &&
	grep -a "ERR refname too long (1024 bytes, the limit is 1023)" out &&
	test_must_fail srv_ref refs/heads/short &&
	git -C srv.git update-ref -d $name &&
	server_is_clean
'

test_expect_success 'a thin pack (a small change to a big file) is completed from the repository' '
	seq 1 100000 >client/big &&
	git -C client add big && git -C client commit -q -m big &&
	(cd client && push "$srv" main) 2>err &&
	sed -i "50000s/.*/changed/" client/big &&
	git -C client commit -q -a -m "change one line" &&
	(cd client && push --progress "$srv" main) 2>err &&
	test_grep "Resolving deltas: 100% \(1/1\), completed with [1-9][0-9]* local objects" err &&
	test_grep "git-serve: receive-pack: 1 commands, 1 updated, 0 rejected, [0-9]{2,3} pack bytes" err &&
	test "$(srv_ref main)" = "$(client_ref main)" &&
	git -C srv.git cat-file blob main:big | cmp - client/big &&
	server_is_clean
'

test_expect_success 'pushing an existing commit to a new branch sends an empty pack' '
	(cd client && push "$srv" main:refs/heads/copy) 2>err &&
	test_grep "receive-pack: 1 commands, 1 updated, 0 rejected, 32 pack bytes, 0 objects" err &&
	test "$(srv_ref copy)" = "$(client_ref main)" &&
	server_is_clean
'

test_expect_success 'the same objects pushed again after a delete keep the pack already there' '
	git -C client checkout -q -b again main &&
	commit_file client a again &&
	(cd client && push "$srv" again) 2>err &&
	ls srv.git/objects/pack >packs.before &&
	(cd client && push "$srv" :again) 2>err &&
	(cd client && push "$srv" again) 2>err &&
	test_grep "\[new branch\] +again -> again" err &&
	ls srv.git/objects/pack >packs.after &&
	test_cmp packs.before packs.after &&
	test "$(srv_ref again)" = "$(client_ref again)" &&
	git -C client checkout -q main &&
	server_is_clean
'

test_expect_success 'a tag pushed to a branch is refused as not a commit' '
	(cd client && test_must_fail push "$srv" refs/tags/v2:refs/heads/tagged) 2>err &&
	test_grep "\(not a commit\)" err &&
	test_must_fail srv_ref refs/heads/tagged &&
	server_is_clean
'

test_expect_success 'two concurrent pushes of one branch: one wins, the other is refused' '
	git clone -q srv.git racer1 &&
	git clone -q srv.git racer2 &&
	head -c 2000000 /dev/urandom >racer1/r1 && git -C racer1 add r1 && git -C racer1 commit -q -m r1 &&
	head -c 2000000 /dev/urandom >racer2/r2 && git -C racer2 add r2 && git -C racer2 commit -q -m r2 &&
	{
		(cd racer1 && push "$srv" main >../out1 2>&1; echo $? >../rc1) &
		(cd racer2 && push "$srv" main >../out2 2>&1; echo $? >../rc2) &
		wait
	} &&
	test "$(cat rc1)$(cat rc2)" = 01 -o "$(cat rc1)$(cat rc2)" = 10 &&
	if test "$(cat rc1)" = 0; then win=racer1 lose=racer2; else win=racer2 lose=racer1; fi &&
	test "$(srv_ref main)" = "$(git -C $win rev-parse main)" &&
	test_grep "failed to lock|fetch first|rejected" out${lose#racer} &&
	test_must_fail git -C srv.git cat-file -e "$(git -C $lose rev-parse main)" &&
	server_is_clean
'

test_expect_success 'a command whose old value is stale is refused with failed to lock' '
	cur=$(srv_ref main) &&
	prev=$(srv_ref main~1) &&
	{ pkt "$prev $prev refs/heads/main\0 report-status" && printf 0000 && cat empty.pack; } >req &&
	git-serve receive-pack srv.git <req >out 2>err &&
	grep -a "ng refs/heads/main failed to lock" out &&
	{ pkt "$zero $prev refs/heads/main\0 report-status" && printf 0000 && cat empty.pack; } >req &&
	git-serve receive-pack srv.git <req >out 2>err &&
	grep -a "ng refs/heads/main failed to lock" out &&
	test "$(srv_ref main)" = "$cur" &&
	server_is_clean
'

test_expect_success 'bad refnames and duplicate refs are refused one by one' '
	cur=$(srv_ref main) &&
	{
		pkt "$zero $cur refs/heads/bad..name\0 report-status" &&
		pkt "$zero $cur HEAD" &&
		pkt "$zero $cur refs/heads/twice" &&
		pkt "$zero $cur refs/heads/twice" &&
		pkt "$zero $cur refs/heads/fine" &&
		printf 0000 && cat empty.pack
	} >req &&
	git-serve receive-pack srv.git <req >out 2>err &&
	grep -a "unpack ok" out &&
	grep -a "ng refs/heads/bad..name funny refname" out &&
	grep -a "ng HEAD funny refname" out &&
	test "$(grep -ac "ng refs/heads/twice duplicate ref update" out)" = 2 &&
	grep -a "ok refs/heads/fine" out &&
	test "$(srv_ref fine)" = "$cur" &&
	test_must_fail srv_ref refs/heads/twice &&
	server_is_clean
'

test_expect_success 'a push from a shallow clone is connected through the server history' '
	git init -q -b main src &&
	for i in 1 2 3 4 5; do commit_file src s "$i" || return 1; done &&
	(cd src && push "$srv" main:refs/heads/deep) 2>err &&
	git clone -q --depth 1 "file://$TRASH_DIRECTORY/src" shallow &&
	test "$(git -C shallow rev-list --count HEAD)" = 1 &&
	commit_file shallow s 6 &&
	(cd shallow && push "$srv" main:refs/heads/deep) 2>err &&
	test "$(srv_ref deep)" = "$(git -C shallow rev-parse HEAD)" &&
	test "$(git -C srv.git rev-list --count deep)" = 6 &&
	server_is_clean
'

test_expect_success 'a first push of master only points an unborn HEAD at master' '
	git init -q --bare -b main other.git &&
	(cd client && git push -q --receive-pack="git-serve receive-pack" \
		"file://$TRASH_DIRECTORY/other.git" main:master feature) 2>err &&
	test "$(git -C other.git symbolic-ref HEAD)" = refs/heads/master &&
	git clone -q other.git other-clone &&
	test "$(git -C other-clone rev-parse HEAD)" = "$(client_ref main)"
'

test_expect_success 'a push that only updates a branch points a HEAD naming a missing branch at main, and leaves a HEAD that resolves alone' '
	test_when_finished "git -C srv.git symbolic-ref HEAD refs/heads/main" &&
	git -C srv.git symbolic-ref HEAD refs/heads/gone &&
	git -C client commit -q --allow-empty -m "moves topic" &&
	(cd client && push "$srv" HEAD:refs/heads/topic) &&
	test "$(git -C srv.git symbolic-ref HEAD)" = refs/heads/main &&
	git -C srv.git symbolic-ref HEAD refs/heads/topic &&
	git -C client commit -q --allow-empty -m "moves topic again" &&
	(cd client && push "$srv" HEAD:refs/heads/topic) &&
	test "$(git -C srv.git symbolic-ref HEAD)" = refs/heads/topic &&
	test "$(srv_ref topic)" = "$(client_ref HEAD)" &&
	server_is_clean
'

test_expect_success 'a client that keeps its side open after the pack still gets its report' '
	git init -q --bare -b main held.git &&
	printf "%s\n" "$(client_ref main)" | git -C client pack-objects -q --stdout --revs >held.pack &&
	{ pkt "$zero $(client_ref main) refs/heads/main\0 report-status side-band-64k" &&
	  printf 0000 && cat held.pack; } >req &&
	mkfifo held.in &&
	{ git-serve receive-pack held.git <held.in >out 2>err & } &&
	pid=$! &&
	exec 9>held.in &&
	test_when_finished "exec 9>&-; kill $pid 2>/dev/null; true" &&
	cat req >&9 &&
	test_wait_for 20 eval "! kill -0 $pid 2>/dev/null" &&
	wait $pid &&
	grep -a "ok refs/heads/main" out &&
	test "$(git -C held.git rev-parse main)" = "$(client_ref main)" &&
	git -C held.git fsck --strict --no-progress
'

test_expect_success 'a request with nothing to do ends cleanly' '
	printf 0000 | git-serve receive-pack srv.git >out &&
	git-serve receive-pack srv.git </dev/null >out &&
	server_is_clean
'

test_expect_success 'a garbage stream is a clean error that changes nothing' '
	git -C srv.git for-each-ref >refs.before &&
	printf zzzz | test_must_fail git-serve receive-pack srv.git >out 2>err &&
	test_grep "bad line length .zzzz." err &&
	{ pkt "not a command at all, just some bytes\n" && printf 0000; } |
		test_must_fail git-serve receive-pack srv.git >out 2>err &&
	test_grep "protocol error: expected .old-id new-id refname." err &&
	{ pkt "$zero ${zero%0}g refs/heads/x\0 report-status" && printf 0000; } |
		test_must_fail git-serve receive-pack srv.git >out 2>err &&
	test_grep "protocol error: expected .old-id new-id refname." err &&
	git -C srv.git for-each-ref >refs.after &&
	test_cmp refs.before refs.after &&
	server_is_clean
'

test_expect_success 'a garbage or truncated packfile is reported as an unpack error' '
	git -C srv.git for-each-ref >refs.before &&
	ls srv.git/objects/pack >packs.before &&
	new=$(client_ref main) &&
	{ pkt "$zero $new refs/heads/garbage\0 report-status side-band-64k" && printf 0000 &&
	  printf "this is not a packfile"; } >req &&
	test_must_fail git-serve receive-pack srv.git <req >out 2>err &&
	grep -a "unpack .*signature" out &&
	grep -a "ng refs/heads/garbage unpacker error" out &&
	git -C client commit -q --allow-empty -m unpushed &&
	printf "%s\n" "$(client_ref main)" | git -C client pack-objects --stdout --revs >full.pack &&
	head -c $(($(wc -c <full.pack) - 30)) full.pack >cut.pack &&
	{ pkt "$zero $(client_ref main) refs/heads/garbage\0 report-status" && printf 0000 &&
	  cat cut.pack; } >req &&
	test_must_fail git-serve receive-pack srv.git <req >out 2>err &&
	grep -a "unpack " out &&
	! grep -a "unpack ok" out &&
	git -C srv.git for-each-ref >refs.after &&
	test_cmp refs.before refs.after &&
	ls srv.git/objects/pack >packs.after &&
	test_cmp packs.before packs.after &&
	server_is_clean
'

# make_pack OUT SPEC...: writes a pack (gitformat-pack.txt) with a correct
# trailing SHA-1 whose entries are made from SPEC, each "TYPE:FILE" (the
# file's bytes deflated under a header declaring their size),
# "TYPE:FILE:SIZE" (declaring SIZE instead), or "delta:BASE-ID:FILE" (a
# REF_DELTA whose delta data is FILE).
make_pack() {
	python3 - "$@" <<-\EOF
	import hashlib, struct, sys, zlib
	types = {"commit": 1, "tree": 2, "blob": 3, "tag": 4, "delta": 7}
	out, specs = sys.argv[1], sys.argv[2:]
	body = b"PACK" + struct.pack(">II", 2, len(specs))
	for spec in specs:
	    kind, rest = spec.split(":", 1)
	    base = b""
	    if kind == "delta":
	        base_hex, rest = rest.split(":", 1)
	        base = bytes.fromhex(base_hex)
	    name, _, declared = rest.partition(":")
	    data = open(name, "rb").read()
	    size = int(declared) if declared else len(data)
	    hdr = bytearray([types[kind] << 4 | (size & 15)])
	    size >>= 4
	    while size:
	        hdr[-1] |= 0x80
	        hdr.append(size & 0x7f)
	        size >>= 7
	    body += bytes(hdr) + base + zlib.compress(data)
	open(out, "wb").write(body + hashlib.sha1(body).digest())
	EOF
}

# delta_data OUT BASE-SIZE RESULT-SIZE TEXT: delta data (gitformat-pack.txt
# "Deltified representation") whose header gives BASE-SIZE and RESULT-SIZE
# and which makes TEXT by copying nothing and inserting TEXT (127 bytes an
# instruction at most).
delta_data() {
	python3 - "$@" <<-\EOF
	import sys
	def varint(n):
	    b = bytearray()
	    while True:
	        b.append((n & 0x7f) | (0x80 if n > 0x7f else 0))
	        n >>= 7
	        if not n:
	            return bytes(b)
	out, base_size, result_size, text = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].encode()
	inserts = b"".join(bytes([len(text[i:i + 127])]) + text[i:i + 127] for i in range(0, len(text), 127))
	open(out, "wb").write(varint(base_size) + varint(result_size) + inserts)
	EOF
}

# push_raw PACK: pushes PACK to refs/heads/bad-size and refs/heads/bad-size2
# with raw pkt-lines, as new branches at $new; the report goes to "out".
push_raw() {
	{ pkt "$zero $new refs/heads/bad-size\0 report-status" &&
	  pkt "$zero $new refs/heads/bad-size2" && printf 0000 && cat "$1"; } >req &&
	test_must_fail git-serve receive-pack srv.git <req >out 2>err
}

# The push was refused whole and changed nothing; a full clone still works.
refused_and_unchanged() {
	grep -aE "unpack $1" out &&
	grep -a "ng refs/heads/bad-size unpacker error" out &&
	grep -a "ng refs/heads/bad-size2 unpacker error" out &&
	! grep -a "unpack ok" out &&
	git -C srv.git for-each-ref >refs.after &&
	test_cmp refs.before refs.after &&
	ls srv.git/objects/pack >packs.after &&
	test_cmp packs.before packs.after &&
	server_is_clean &&
	rm -rf clone && git clone -q --no-local srv.git clone &&
	git -C clone fsck --strict --no-progress
}

# commit_object OUT: a commit on srv.git's main (same tree), as raw bytes.
commit_object() {
	printf "tree %s\nparent %s\nauthor A <a@b> 1 +0000\ncommitter C <c@d> 1 +0000\n\n%s\n" \
		"$(git -C srv.git rev-parse "main^{tree}")" "$(srv_ref main)" "$2" >"$1"
}

test_expect_success 'a commit whose entry declares a size it does not inflate to is refused and changes nothing' '
	git -C srv.git for-each-ref >refs.before &&
	ls srv.git/objects/pack >packs.before &&
	commit_object c.raw "declared one byte too many" &&
	new=$(git hash-object -t commit --literally c.raw) &&
	make_pack bad.pack "commit:c.raw:$(($(wc -c <c.raw) + 1))" &&
	push_raw bad.pack &&
	refused_and_unchanged "bad object at offset 12: commit inflates to [0-9]+ bytes, its header declares"
'

test_expect_success 'a blob whose entry declares too few bytes is refused and changes nothing' '
	git -C srv.git for-each-ref >refs.before &&
	ls srv.git/objects/pack >packs.before &&
	printf "blob content\n" >blob.raw &&
	blob=$(git hash-object blob.raw) &&
	printf "100644 big\0" >tree.raw &&
	printf "%s" "$blob" | xxd -r -p >>tree.raw &&
	tree=$(git hash-object -t tree --literally tree.raw) &&
	printf "tree %s\nparent %s\nauthor A <a@b> 1 +0000\ncommitter C <c@d> 1 +0000\n\nblob\n" \
		"$tree" "$(srv_ref main)" >c.raw &&
	new=$(git hash-object -t commit --literally c.raw) &&
	make_pack bad.pack commit:c.raw tree:tree.raw "blob:blob.raw:$(($(wc -c <blob.raw) - 1))" &&
	push_raw bad.pack &&
	refused_and_unchanged "bad object at offset [0-9]+: blob inflates to more than its declared"
'

test_expect_success 'a delta whose result size differs from what applying it gives is refused' '
	git -C srv.git for-each-ref >refs.before &&
	ls srv.git/objects/pack >packs.before &&
	base=$(srv_ref main) &&
	base_size=$(git -C srv.git cat-file -s "$base") &&
	commit_object c.raw "made by a delta" &&
	new=$(git hash-object -t commit --literally c.raw) &&
	delta_data d.raw "$base_size" "$(($(wc -c <c.raw) + 1))" "$(cat c.raw)" &&
	make_pack bad.pack "delta:$base:d.raw" &&
	push_raw bad.pack &&
	refused_and_unchanged "bad delta at offset 12: delta makes [0-9]+ bytes, its header declares [0-9]+"
'


test_expect_success 'a delta on a base in the pack that copies from outside it is refused' '
	git -C srv.git for-each-ref >refs.before &&
	ls srv.git/objects/pack >packs.before &&
	printf "a base blob\n" >b.raw &&
	new=$(git hash-object b.raw) &&
	printf "\014\005\221\010\005" >d.raw &&
	make_pack bad.pack blob:b.raw "delta:$new:d.raw" &&
	push_raw bad.pack &&
	refused_and_unchanged "bad delta at offset [0-9]+: delta copies outside its base"
'

test_expect_success 'a delta whose base is neither in the pack nor in the repository is refused' '
	git -C srv.git for-each-ref >refs.before &&
	ls srv.git/objects/pack >packs.before &&
	printf "a base blob\n" >b.raw &&
	new=$(git hash-object b.raw) &&
	missing=$(printf "not pushed\n" | git hash-object --stdin) &&
	printf "\013\005\220\005" >d.raw &&
	make_pack bad.pack blob:b.raw "delta:$missing:d.raw" &&
	push_raw bad.pack &&
	refused_and_unchanged "missing delta bases"
'

test_expect_success 'a pack whose trailer is not the SHA-1 of its bytes is refused' '
	git -C srv.git for-each-ref >refs.before &&
	ls srv.git/objects/pack >packs.before &&
	commit_object c.raw "with a bad trailer" &&
	new=$(git hash-object -t commit --literally c.raw) &&
	make_pack good.pack commit:c.raw &&
	head -c $(($(wc -c <good.pack) - 1)) good.pack >bad.pack &&
	printf "\001" >>bad.pack &&
	! cmp -s good.pack bad.pack &&
	push_raw bad.pack &&
	refused_and_unchanged "pack is corrupted \(SHA1 mismatch\)"
'

test_expect_success 'a pack holding the same object twice is refused' '
	git -C srv.git for-each-ref >refs.before &&
	ls srv.git/objects/pack >packs.before &&
	commit_object c.raw "sent twice" &&
	new=$(git hash-object -t commit --literally c.raw) &&
	make_pack bad.pack commit:c.raw commit:c.raw &&
	push_raw bad.pack &&
	refused_and_unchanged "the same object $new appears twice in the pack"
'

# many_commits DIR N WORD: a repository of N commits, each changing one line
# of a file that grows with the history (its lines start with WORD), so that
# its pack has long delta chains.
many_commits() {
	git init -q -b main "$1" &&
	python3 - "$2" "$3" <<-\EOF | git -C "$1" fast-import --quiet
	import sys
	n, word = int(sys.argv[1]), sys.argv[2]
	lines = ["%s %d\n" % (word, i) for i in range(200)]
	for i in range(1, n + 1):
	    lines[i % 200] = "%s %d changed in commit %d\n" % (word, i % 200, i)
	    lines.append("added by commit %d\n" % i)
	    data = "".join(lines)
	    msg = "commit %d\n" % i
	    print("commit refs/heads/main")
	    print("committer C O Mitter <committer@example.com> %d +0000" % (1700000000 + i))
	    print("data %d\n%s" % (len(msg), msg), end="")
	    print("M 100644 inline dir%d/file" % (i % 3))
	    print("data %d\n%s" % (len(data.encode()), data))
	EOF
}

test_expect_success 'a push of thousands of objects with deep delta chains is indexed and connected' '
	many_commits deep 1500 deep &&
	git -C deep repack -q -a -d -f --depth=250 --window=20 &&
	git verify-pack -s deep/.git/objects/pack/*.idx >stats &&
	grep -E "^chain length = (4[0-9]|[5-9][0-9]|[1-9][0-9][0-9]+):" stats &&
	git -C deep push -q --receive-pack="git-serve receive-pack" "$srv" main:refs/heads/chains &&
	test "$(srv_ref chains)" = "$(git -C deep rev-parse main)" &&
	git -C srv.git rev-list --objects chains >objects &&
	test $(wc -l <objects) -gt 4000 &&
	server_is_clean
'

test_expect_success 'a pack of thousands of objects missing one blob is refused and changes nothing' '
	git -C srv.git for-each-ref >refs.before &&
	ls srv.git/objects/pack >packs.before &&
	many_commits holey 1600 holey &&
	new=$(git -C holey rev-parse main) &&
	missing=$(git -C holey rev-parse "main~800:dir1/file") &&
	git -C holey rev-list --objects main | cut -d" " -f1 | grep -v "^$missing\$" |
		git -C holey pack-objects -q --stdout >holey.pack &&
	{ pkt "$zero $new refs/heads/holey\0 report-status" && printf 0000 &&
	  cat holey.pack; } >req &&
	git-serve receive-pack srv.git <req >out 2>err &&
	grep -a "unpack ok" out &&
	grep -a "ng refs/heads/holey missing necessary objects" out &&
	git -C srv.git for-each-ref >refs.after &&
	test_cmp refs.before refs.after &&
	ls srv.git/objects/pack >packs.after &&
	test_cmp packs.before packs.after &&
	server_is_clean
'


test_expect_success 'a push that leaves more than 64 loose refs packs them, and they still move' '
	tip=$(client_ref main) &&
	for i in $(seq 1 100); do echo "$tip:refs/heads/packed$i"; done >specs &&
	(cd client && push "$srv" $(cat ../specs)) &&
	grep -q " refs/heads/packed100\$" srv.git/packed-refs &&
	test ! -e srv.git/refs/heads/packed1 &&
	test "$(git -C srv.git for-each-ref refs/heads/packed* | wc -l)" = 100 &&
	git -C client commit -q --allow-empty -m "moves packed7" &&
	(cd client && push "$srv" main:refs/heads/packed7) &&
	test "$(srv_ref packed7)" = "$(client_ref main)" &&
	test "$(srv_ref packed8)" = "$tip" &&
	server_is_clean
'

test_done
