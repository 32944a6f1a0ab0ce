#!/usr/bin/env bash
test_description='upload-pack: the real git client clones and fetches through gitd (git-serve) with protocols v0, v1 and v2'
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
up='git-serve upload-pack'

# clone_v VERSION [git clone options...]: clone through git-serve with protocol VERSION.
clone_v() {
	local version=$1
	shift
	git -c protocol.version="$version" clone -u "$up" "$@"
}

# fetch_v VERSION DIR [git fetch options...]: fetch into DIR through git-serve.
fetch_v() {
	local version=$1 dir=$2
	shift 2
	git -C "$dir" -c protocol.version="$version" fetch --upload-pack="$up" "$@"
}

# commit_file DIR FILE TEXT: commit TEXT as FILE in DIR, a minute after the
# previous commit (as git's test_tick), so that --shallow-since can cut.
tick=1112911993
commit_file() {
	tick=$((tick + 60))
	printf '%s\n' "$3" >"$1/$2" && git -C "$1" add "$2" &&
		GIT_COMMITTER_DATE="$tick +0000" GIT_AUTHOR_DATE="$tick +0000" \
			git -C "$1" commit -q -m "$2: $3"
}

# publish: push every branch and tag of ./work to the server with real git.
publish() { git -C work push -q --all ../srv.git && git -C work push -q --tags ../srv.git; }

# pkt TEXT: TEXT (printf %b escapes) as one pkt-line.
pkt() { printf '%04x' $(($(printf '%b' "$1" | wc -c) + 4)) && printf '%b' "$1"; }

# The repository DIR has the server's branches (as origin/*) and tags, and
# is consistent.
refs_match_server() {
	git -C srv.git for-each-ref --format='%(objectname) %(refname)' refs/heads refs/tags |
		sed 's#refs/heads/#refs/remotes/origin/#' | sort >expect.refs &&
	git -C "$1" for-each-ref --format='%(objectname) %(refname)' refs/remotes refs/tags |
		grep -v ' refs/remotes/origin/HEAD$' | sort >actual.refs &&
	test_cmp expect.refs actual.refs &&
	git -C "$1" fsck --strict --no-progress
}

# The clone in DIR has the server's refs, HEAD branch and HEAD commit.
clone_matches_server() {
	refs_match_server "$1" &&
	test "$(git -C "$1" symbolic-ref HEAD)" = "$(git -C srv.git symbolic-ref HEAD)" &&
	test "$(git -C "$1" rev-parse HEAD)" = "$(git -C srv.git rev-parse HEAD)"
}

# pack_entry_types PACK: "TYPE:COUNT ..." of the entries of packfile PACK
# (1-4 whole objects, 6 OFS_DELTA, 7 REF_DELTA; gitformat-pack.txt).
pack_entry_types() {
	python3 - "$1" <<-\EOF
	import collections, sys, zlib
	data = open(sys.argv[1], "rb").read()
	assert data[:4] == b"PACK", "not a pack"
	pos, types = 12, collections.Counter()
	for _ in range(int.from_bytes(data[8:12], "big")):
	    c = data[pos]; pos += 1; t = (c >> 4) & 7
	    while c & 0x80:
	        c = data[pos]; pos += 1
	    if t == 6:
	        c = data[pos]; pos += 1
	        while c & 0x80:
	            c = data[pos]; pos += 1
	    elif t == 7:
	        pos += 20
	    z = zlib.decompressobj(); z.decompress(data[pos:]); pos = len(data) - len(z.unused_data)
	    types[t] += 1
	assert len(data) - pos == 20, "bytes after the last entry"
	print(" ".join("%d:%d" % kv for kv in sorted(types.items())))
	EOF
}

# raw_pack OUT FILE: the packfile of a v0 exchange without side-band in OUT
# (what follows the final NAK) into FILE.
raw_pack() {
	python3 -c 'import sys; d = open(sys.argv[1], "rb").read(); open(sys.argv[2], "wb").write(d.split(b"0008NAK\n", 1)[1])' "$1" "$2"
}

# big_text N: 300 lines with line N changed, so versions delta well.
big_text() { seq 1 300 | sed "s/^$1\$/changed $1/"; }

# objects_sent FILE: the object count of git-serve's stats line in FILE.
objects_sent() { tr '\r' '\n' <"$1" | sed -n 's/.*git-serve: upload-pack: [0-9]* wants, \([0-9]*\) objects.*/\1/p'; }

# pack_reused FILE: how many objects git-serve's stats line in FILE says went
# out as a stored pack's entries, as they are (pack reuse).
pack_reused() { tr '\r' '\n' <"$1" | sed -n 's/.*git-serve: upload-pack: .* \([0-9]*\) pack-reused.*/\1/p'; }

# closures_recorded FILE: how many closure markers git-serve wrote.
closures_recorded() { tr '\r' '\n' <"$1" | sed -n 's/.*git-serve: upload-pack: .* \([0-9]*\) closures recorded.*/\1/p'; }

# has_objects_of CLONE SRC: the repository CLONE holds exactly the objects
# reachable from the refs of SRC: none missing, and none more, unreachable
# ones included.
has_objects_of() {
	git -C "$2" rev-list --objects --all | cut -d" " -f1 | sort >expect.objects &&
	git -C "$1" cat-file --batch-all-objects --batch-check="%(objectname)" | sort >actual.objects &&
	test_cmp expect.objects actual.objects &&
	git -C "$1" fsck --strict --no-progress
}

# pack_count PACK: the number of objects in PACK's index.
pack_count() { git show-index <"${1%.pack}.idx" | wc -l; }

test_expect_success 'set up a server with two branches, a lightweight and an annotated tag' '
	git init -q --bare -b main srv.git &&
	git init -q --bare -b main empty.git &&
	git init -q -b main work &&
	commit_file work a one &&
	commit_file work b two &&
	git -C work tag light &&
	commit_file work a three &&
	git -C work tag -a -m "release 1" v1 &&
	git -C work checkout -q -b topic main~1 &&
	commit_file work c topic-work &&
	git -C work checkout -q main &&
	commit_file work a four &&
	publish
'

test_expect_success 'cloning an empty repository with protocol v0 warns and leaves no refs' '
	clone_v 0 file://$TRASH_DIRECTORY/empty.git empty0 2>err &&
	test_grep "You appear to have cloned an empty repository" err &&
	test -z "$(git -C empty0 for-each-ref)"
'

test_expect_success 'cloning an empty repository with protocol v2 warns and takes the unborn HEAD branch' '
	git -C empty.git symbolic-ref HEAD refs/heads/trunk &&
	clone_v 2 file://$TRASH_DIRECTORY/empty.git empty2 2>err &&
	test_grep "You appear to have cloned an empty repository" err &&
	test -z "$(git -C empty2 for-each-ref)" &&
	test "$(git -C empty2 symbolic-ref HEAD)" = refs/heads/trunk
'

test_expect_success 'a protocol v0 clone has the server refs, HEAD branch and commit' '
	GIT_TRACE_PACKET=$TRASH_DIRECTORY/trace0 clone_v 0 "$srv" clone0 2>err &&
	test_grep "clone< [0-9a-f]{40} HEAD.*multi_ack_detailed.*symref=HEAD:refs/heads/main" trace0 &&
	! grep -q "clone< version 2" trace0 &&
	clone_matches_server clone0
'

test_expect_success 'a protocol v1 clone has the server refs, HEAD branch and commit' '
	GIT_TRACE_PACKET=$TRASH_DIRECTORY/trace1 clone_v 1 "$srv" clone1 2>err &&
	test_grep "clone< version 1" trace1 &&
	clone_matches_server clone1
'

test_expect_success 'a protocol v2 clone has the server refs, HEAD branch and commit' '
	GIT_TRACE_PACKET=$TRASH_DIRECTORY/trace2 clone_v 2 "$srv" clone2 2>err &&
	test_grep "clone< version 2" trace2 &&
	test_grep "clone> command=fetch" trace2 &&
	test_grep "clone< packfile" trace2 &&
	clone_matches_server clone2
'

test_expect_success 'a clone through git-serve has the same refs as one through git-upload-pack' '
	git clone -q --upload-pack=git-upload-pack "$srv" real &&
	for d in real clone0 clone2; do
		git -C $d for-each-ref --format="%(objectname) %(refname)" >$d.refs || return 1
	done &&
	test_cmp real.refs clone0.refs &&
	test_cmp real.refs clone2.refs
'

test_expect_success 'a clone with progress shows counting and compressing on side-band 2' '
	clone_v 2 "$srv" progress --progress 2>err &&
	test_grep "remote: Counting objects: [0-9]+, done" err &&
	test_grep "remote: Compressing objects: 100%" err
'

test_expect_success 'a v0 fetch after a new commit sends only the new commit, tree and blob' '
	commit_file work a five &&
	publish &&
	fetch_v 0 clone0 2>err &&
	test "$(objects_sent err)" = 3 &&
	test "$(git -C clone0 rev-parse origin/main)" = "$(git -C srv.git rev-parse main)" &&
	git -C clone0 fsck --strict --no-progress
'

test_expect_success 'a v2 fetch sends only the objects of the three commits the clone lacks' '
	commit_file work a six &&
	commit_file work d seven &&
	publish &&
	fetch_v 2 clone2 2>err &&
	test "$(objects_sent err)" = 9 &&
	refs_match_server clone2
'

test_expect_success 'a fetch with nothing new lists refs and ends without a pack' '
	fetch_v 2 clone2 2>err &&
	test_grep "git-serve: upload-pack: 0 wants, 0 objects" err &&
	fetch_v 0 clone2 2>err &&
	test_grep "git-serve: upload-pack: 0 wants, 0 objects" err
'

test_expect_success 'ls-remote with v0 lists refs and peeled tags as git-upload-pack does' '
	git -c protocol.version=0 ls-remote "$srv" >expect &&
	git -c protocol.version=0 ls-remote --upload-pack="$up" "$srv" >actual 2>err &&
	test_grep "\^\{\}$" actual &&
	test_cmp expect actual
'

test_expect_success 'ls-remote with v2 lists refs and peeled tags as git-upload-pack does' '
	git -c protocol.version=2 ls-remote "$srv" >expect &&
	git -c protocol.version=2 ls-remote --upload-pack="$up" "$srv" >actual 2>err &&
	test_cmp expect actual &&
	git -c protocol.version=2 ls-remote --symref "$srv" HEAD >expect &&
	git -c protocol.version=2 ls-remote --symref --upload-pack="$up" "$srv" HEAD >actual &&
	test_cmp expect actual
'

test_expect_success 'tags packed by a push, a tag of a tag among them, are advertised fully peeled' '
	test_when_finished "rm -rf many many.git" &&
	git init -q -b main many && commit_file many f one &&
	for i in $(seq 1 70); do git -C many tag -a -m "t$i" "t$i" || return 1; done &&
	git -C many tag -a -m "of t1" t1-again t1 &&
	git -C many tag light &&
	git init -q --bare many.git &&
	git -C many push -q --receive-pack="git-serve receive-pack" "file://$TRASH_DIRECTORY/many.git" \
		main "refs/tags/*:refs/tags/*" &&
	grep -q " refs/tags/t1-again\$" many.git/packed-refs &&
	for v in 0 2; do
		git -c protocol.version=$v ls-remote "file://$TRASH_DIRECTORY/many" "refs/tags/*" >expect &&
		git -c protocol.version=$v ls-remote --upload-pack="$up" \
			"file://$TRASH_DIRECTORY/many.git" "refs/tags/*" >actual &&
		grep -q "^$(git -C many rev-parse main)	refs/tags/t1-again^{}\$" actual &&
		test_cmp expect actual || return 1
	done
'

test_expect_success 'a client that reads the advertisement and hangs up is a success' '
	git-serve upload-pack srv.git </dev/null >out 2>err &&
	test_grep "capabilities|multi_ack" out &&
	printf 0000 | git-serve upload-pack srv.git >out 2>err &&
	printf 0000 | GIT_PROTOCOL=version=2 git-serve upload-pack srv.git >out 2>err &&
	test_grep "ls-refs=unborn" out
'

for v in 0 2; do
	test_expect_success "fetching a branch with include-tag (v$v) brings the annotated tag of its new commit" '
		commit_file work a "tagged-$v" &&
		git -C work tag -a -m "tagged $v" "t$v" &&
		publish &&
		tag=$(git -C srv.git rev-parse "t$v") &&
		test_must_fail git -C clone2 cat-file -e "$tag" &&
		git -C clone2 -c protocol.version=$v fetch-pack --include-tag --upload-pack="$up" \
			"$srv" refs/heads/main >out 2>err &&
		test "$(git -C clone2 cat-file -t "$tag")" = tag &&
		test "$(objects_sent err)" = 4 &&
		git -C clone2 update-ref refs/remotes/origin/main "$(git -C srv.git rev-parse main)"
	'
done

for v in 0 2; do
	for depth in 1 2; do
		test_expect_success "a v$v clone with --depth $depth has $depth commits and the shallow boundary git-upload-pack gives" '
			clone_v $v "$srv" shallow$v-$depth --depth $depth 2>err &&
			test "$(git -C shallow$v-$depth rev-list --count HEAD)" = $depth &&
			git -c protocol.version=$v clone -q --depth $depth "$srv" real$v-$depth &&
			sort shallow$v-$depth/.git/shallow >actual &&
			sort real$v-$depth/.git/shallow >expect &&
			test_cmp expect actual &&
			git -C shallow$v-$depth fsck --strict --no-progress
		'
	done

	test_expect_success "a v$v fetch --deepen 1 adds one commit below the shallow boundary" '
		fetch_v $v shallow$v-1 --deepen 1 2>err &&
		test "$(git -C shallow$v-1 rev-list --count HEAD)" = 2 &&
		git -C real$v-1 fetch -q --deepen 1 &&
		sort shallow$v-1/.git/shallow >actual &&
		sort real$v-1/.git/shallow >expect &&
		test_cmp expect actual &&
		git -C shallow$v-1 fsck --strict --no-progress
	'

	test_expect_success "a v$v fetch into a shallow clone sends only the new commit" '
		commit_file work a "shallow-fetch-$v" &&
		publish &&
		fetch_v $v shallow$v-2 origin main 2>err &&
		test "$(objects_sent err)" = 3 &&
		test "$(git -C shallow$v-2 rev-parse origin/main)" = "$(git -C srv.git rev-parse main)" &&
		git -C shallow$v-2 fsck --strict --no-progress
	'

	test_expect_success "a v$v fetch --unshallow brings the whole history" '
		fetch_v $v shallow$v-1 --unshallow 2>err &&
		test ! -e shallow$v-1/.git/shallow &&
		test "$(git -C shallow$v-1 rev-list --count origin/main)" = \
			"$(git -C srv.git rev-list --count main)" &&
		git -C shallow$v-1 fsck --strict --no-progress
	'
done

test_expect_success 'clones cut by --shallow-since and --shallow-exclude match git-upload-pack' '
	since=$(git -C srv.git log -1 --format=%ct main~2) &&
	for v in 0 2; do
		clone_v $v "$srv" since$v --shallow-since=$since 2>err &&
		git -c protocol.version=$v clone -q --shallow-since=$since "$srv" real-since$v &&
		sort since$v/.git/shallow >actual && sort real-since$v/.git/shallow >expect &&
		test_cmp expect actual &&
		clone_v $v "$srv" excl$v --shallow-exclude=light 2>err &&
		git -c protocol.version=$v clone -q --shallow-exclude=light "$srv" real-excl$v &&
		sort excl$v/.git/shallow >actual && sort real-excl$v/.git/shallow >expect &&
		test_cmp expect actual &&
		test "$(git -C excl$v rev-list --count HEAD)" = \
			"$(git -C real-excl$v rev-list --count HEAD)" || return 1
	done
'

test_expect_success 'fetch-pack of an unknown object fails with "not our ref" for v0 and v2' '
	oid=1234567890123456789012345678901234567890 &&
	for v in 0 2; do
		test_must_fail git -C clone0 -c protocol.version=$v fetch-pack --upload-pack="$up" \
			"$srv" $oid 2>err &&
		test_grep "remote error: upload-pack: not our ref $oid" err || return 1
	done
'

test_expect_success 'a hand-written request for an unreachable object is refused without a pack' '
	blob=$(echo dangling | git -C srv.git hash-object -w --stdin) &&
	{ pkt "want $blob side-band-64k\n" && printf 0000 && pkt "done\n"; } >req &&
	test_expect_code 1 git-serve upload-pack srv.git <req >out 2>err &&
	test_grep "ERR upload-pack: not our ref $blob" out &&
	! grep -q PACK out &&
	test_grep "git-serve: upload-pack: not our ref" err
'

test_expect_success 'a want of an older commit reachable from a branch is served' '
	old=$(git -C srv.git rev-parse main~2) &&
	{ pkt "want $old\n" && printf 0000 && pkt "done\n"; } >req &&
	git-serve upload-pack srv.git <req >out 2>err &&
	test_grep "^git-serve: upload-pack: 1 wants, [1-9][0-9]* objects" err
'

test_expect_success 'garbage instead of pkt-lines ends the exchange with an error, not a crash' '
	printf "garbage, not a pkt-line" >garbage &&
	test_expect_code 1 git-serve upload-pack srv.git <garbage >out 2>err &&
	test_grep "protocol error: bad line length" err &&
	test_expect_code 1 env GIT_PROTOCOL=version=2 git-serve upload-pack srv.git <garbage >out 2>err &&
	test_grep "ERR protocol error: bad line length" out &&
	head -c 4096 /dev/urandom >random &&
	test_expect_code 1 git-serve upload-pack srv.git <random >out 2>err &&
	{ pkt "want 123\n" && printf 0000; } >short &&
	test_expect_code 1 git-serve upload-pack srv.git <short >out 2>err &&
	test_grep "expected to get object ID" err &&
	printf 0032want >cut &&
	test_expect_code 1 git-serve upload-pack srv.git <cut >out 2>err &&
	test_grep "ended inside a pkt-line" err
'

test_expect_success 'a v2 request with an unknown command or argument is an error' '
	{ pkt "command=frobnicate\n" && printf 0000; } >req &&
	test_expect_code 1 env GIT_PROTOCOL=version=2 git-serve upload-pack srv.git <req >out 2>err &&
	test_grep "ERR upload-pack: invalid command .frobnicate." out &&
	{ pkt "command=fetch\n" && printf 0001 && pkt "frobnicate\n" && printf 0000; } >req &&
	test_expect_code 1 env GIT_PROTOCOL=version=2 git-serve upload-pack srv.git <req >out 2>err &&
	test_grep "ERR upload-pack: unexpected line" out
'

test_expect_success 'negotiation over several rounds with multi_ack_detailed reaches ready' '
	main=$(git -C srv.git rev-parse main) &&
	have=$(git -C srv.git rev-parse main~1) &&
	unknown=1234567890123456789012345678901234567890 &&
	{ pkt "want $main multi_ack_detailed no-done side-band-64k\n" && printf 0000 &&
	  pkt "have $unknown\n" && printf 0000 &&
	  pkt "have $have\n" && printf 0000; } >req &&
	git-serve upload-pack srv.git <req >out 2>err &&
	test_grep "ACK $have common" out &&
	test_grep "ACK $have ready" out &&
	test "$(objects_sent err)" = 3
'

test_expect_success 'after a repack a clone copies pack entries, deltas included' '
	for i in 1 2 3 4 5 6; do
		commit_file work big "$(big_text $i)" || return 1
	done &&
	publish &&
	git -C srv.git repack -adq &&
	clone_v 2 "$srv" reuse --progress 2>err &&
	test_grep "Total [0-9]+, reused [0-9]+ \(delta [1-9][0-9]*\)" err &&
	clone_matches_server reuse
'

test_expect_success 'a clone of packed and loose objects splices built entries after copied ones' '
	commit_file work big "$(big_text 7)" &&
	commit_file work e loose &&
	publish &&
	test -n "$(find srv.git/objects/?? -type f 2>/dev/null)" &&
	clone_v 0 "$srv" mixed --progress 2>err &&
	test_grep "Compressing objects: 100%" err &&
	clone_matches_server mixed
'

test_expect_success 'objects stored in two packs at once are sent once and resolve' '
	(cd srv.git && git rev-list --objects main~4..main | git pack-objects -q objects/pack/pack) &&
	test $(ls srv.git/objects/pack/*.idx | wc -l) -ge 2 &&
	clone_v 2 "$srv" dup 2>err &&
	test "$(objects_sent err)" = "$(git -C srv.git rev-list --objects --all | wc -l)" &&
	clone_matches_server dup
'

test_expect_success 'a pack whose deltas name their base by id is copied as it is' '
	git init -q --bare -b main refdelta.git &&
	(cd srv.git && git rev-list --objects --all |
		git pack-objects -q ../refdelta.git/objects/pack/pack) &&
	test_grep " 7:[1-9]" <(pack_entry_types refdelta.git/objects/pack/pack-*.pack) &&
	git -C srv.git for-each-ref --format="update %(refname) %(objectname)" |
		git -C refdelta.git update-ref --stdin &&
	clone_v 2 file://$TRASH_DIRECTORY/refdelta.git refclone --progress 2>err &&
	test_grep "reused [0-9]+ \(delta [1-9]" err &&
	git -C refclone fsck --strict --no-progress
'

test_expect_success 'a thin pack pushed through gitd is served back out whole' '
	git clone -q "$srv" pusher &&
	commit_file pusher big "$(big_text 8)" &&
	git -C pusher push -q --receive-pack="git-serve receive-pack" "$srv" main 2>err &&
	test "$(git -C srv.git rev-parse main)" = "$(git -C pusher rev-parse main)" &&
	clone_v 2 "$srv" thin 2>err &&
	clone_matches_server thin &&
	fetch_v 0 mixed 2>err &&
	refs_match_server mixed
'

test_expect_success 'a client without ofs-delta gets deltas named by id, and the pack indexes' '
	git -C srv.git repack -adq &&
	main=$(git -C srv.git rev-parse main) &&
	for caps in "" " ofs-delta"; do
		{ pkt "want $main$caps\n" && printf 0000 && pkt "done\n"; } >req &&
		git-serve upload-pack srv.git <req >out 2>err &&
		raw_pack out raw.pack &&
		pack_entry_types raw.pack >types &&
		rm -rf check.git && git init -q --bare check.git &&
		git -C check.git index-pack --stdin --strict <raw.pack >/dev/null &&
		git -C check.git update-ref refs/heads/main $main &&
		git -C check.git fsck --strict --no-progress || return 1
		if test -z "$caps"; then
			test_grep " 7:[1-9]" types && ! grep -q " 6:" types || return 1
		else
			test_grep " 6:[1-9]" types || return 1
		fi
	done
'

test_expect_success 'a want of what the client has gets an empty pack' '
	main=$(git -C srv.git rev-parse main) &&
	{ pkt "command=fetch\n" && printf 0001 && pkt "want $main\n" && pkt "have $main\n" &&
	  pkt "done\n" && printf 0000; } >req &&
	GIT_PROTOCOL=version=2 git-serve upload-pack srv.git <req >out 2>err &&
	test_grep "git-serve: upload-pack: 1 wants, 0 objects, 32 pack bytes" err
'

test_expect_success 'an object over the size limit is refused with ERR where it would be inflated, and copied from a pack' '
	git init -q --bare -b main big.git &&
	git init -q -b main bigwork &&
	head -c 204800 /dev/zero >bigwork/zeros.bin &&
	git -C bigwork add zeros.bin && git -C bigwork commit -q -m zeros &&
	git -C bigwork push -q ../big.git main &&
	blob=$(git -C big.git rev-parse main:zeros.bin) &&
	test -f big.git/objects/$(echo $blob | cut -c1-2)/$(echo $blob | cut -c3-) &&
	test_must_fail env GIT_SERVE_MAX_OBJECT=65536 \
		git -c protocol.version=2 clone -q -u "$up" "file://$TRASH_DIRECTORY/big.git" refused 2>err &&
	test_grep "upload-pack: blob $blob is 204800 bytes, larger than the maximum object size of 65536 bytes" err &&
	git -C big.git repack -adq &&
	GIT_SERVE_MAX_OBJECT=65536 \
		git -c protocol.version=2 clone -q -u "$up" "file://$TRASH_DIRECTORY/big.git" copied &&
	test "$(git -C copied rev-parse main:zeros.bin)" = "$blob" &&
	git -C copied fsck --strict --no-progress
'

test_expect_success 'a commit over the size limit below the tip is refused with ERR before the walk inflates it' '
	git init -q --bare -b main bigcommit.git &&
	{ printf "tree %s\nauthor A <a@b> 1 +0000\ncommitter C <c@d> 1 +0000\n\n" \
		"$(git hash-object -t tree /dev/null)" && head -c 204800 /dev/zero; } >big.commit &&
	git -C bigcommit.git hash-object -t tree -w /dev/null >/dev/null &&
	big=$(git -C bigcommit.git hash-object -t commit --literally -w --stdin <big.commit) &&
	child=$(git -C bigcommit.git commit-tree -p $big -m child "$(git hash-object -t tree /dev/null)") &&
	git -C bigcommit.git update-ref refs/heads/main $child &&
	git -C bigcommit.git repack -adq &&
	test_must_fail env GIT_SERVE_MAX_OBJECT=65536 git -c protocol.version=2 \
		clone -q -u "$up" "file://$TRASH_DIRECTORY/bigcommit.git" refused-commit 2>err &&
	test_grep "upload-pack: cannot walk commits: commit $big is [0-9]+ bytes, larger than the maximum object size of 65536 bytes" err &&
	GIT_SERVE_MAX_OBJECT=1048576 git -c protocol.version=2 \
		clone -q -u "$up" "file://$TRASH_DIRECTORY/bigcommit.git" served-commit &&
	test "$(git -C served-commit rev-parse main)" = "$child"
'


test_expect_success 'a clone of a 24 MiB pack, copied entry by entry as its pages leave memory, is complete and fsck-clean' '
	git init -q --bare -b main bigpack.git &&
	git init -q -b main bigsrc &&
	for i in $(seq 1 12); do
		head -c 2097152 /dev/urandom >bigsrc/f$i && git -C bigsrc add f$i &&
		git -C bigsrc commit -q -m "f$i" || return 1
	done &&
	git -C bigsrc push -q "file://$TRASH_DIRECTORY/bigpack.git" main &&
	git -C bigpack.git repack -adq &&
	test $(du -k bigpack.git/objects/pack/*.pack | cut -f1) -gt 20000 &&
	clone_v 2 -q --bare "file://$TRASH_DIRECTORY/bigpack.git" bigclone.git 2>err &&
	test "$(git -C bigclone.git rev-parse main)" = "$(git -C bigsrc rev-parse main)" &&
	git -C bigclone.git fsck --strict --no-progress &&
	git -C bigclone.git rev-list --objects main >got &&
	git -C bigsrc rev-list --objects main >want &&
	test_cmp want got
'

# Pack reuse: a pack that holds exactly the closure of some tips, with a
# marker saying so, goes out as it is to a client whose wants reach them.
reach=file://$TRASH_DIRECTORY/reach.git

# push_reach ARGS...: push from ./reachwork to reach.git through gitd's receive-pack.
push_reach() { git -C reachwork push -q --receive-pack="git-serve receive-pack" "$reach" "$@"; }

test_expect_success 'a history pushed through gitd into an empty repository gets a marker naming its tips as the closure of its pack' '
	git init -q --bare -b main reach.git &&
	git init -q -b main reachwork &&
	for i in 1 2 3 4 5 6; do
		commit_file reachwork big "$(big_text $i)" &&
		commit_file reachwork "f$i" "file $i" || return 1
	done &&
	git -C reachwork tag -a -m "release 1" v1 main~1 &&
	git -C reachwork checkout -q -b topic main~2 &&
	commit_file reachwork t topic &&
	git -C reachwork checkout -q main &&
	push_reach main topic v1 &&
	test $(ls reach.git/objects/pack/*.pack | wc -l) = 1 &&
	marker=$(ls reach.git/objects/pack/*.closure) &&
	pack=$(ls reach.git/objects/pack/*.pack) &&
	test "$marker" = "${pack%.pack}.closure" &&
	{
		echo "slipway pack closure 1" &&
		echo "pack $(basename "$pack" .pack | sed s/^pack-//)" &&
		echo "objects $(pack_count "$pack")" &&
		echo "tips 3" &&
		git -C reach.git rev-parse main topic v1 | sort | sed "s/^/tip /"
	} >expect.marker &&
	test_cmp expect.marker "$marker"
'

test_expect_success 'without that marker, a first clone walks, records the same marker, and is complete' '
	marker=$(ls reach.git/objects/pack/*.closure) &&
	rm -f "$marker" &&
	clone_v 2 --bare "$reach" reach-first 2>err &&
	test "$(pack_reused err)" = 0 &&
	test "$(closures_recorded err)" = 1 &&
	test_cmp expect.marker "$marker" &&
	has_objects_of reach-first reach.git
'

for v in 0 2; do
	test_expect_success "a v$v clone sends the marked pack as it is and is complete and fsck-clean" '
		pack=$(ls reach.git/objects/pack/*.pack) &&
		clone_v $v --bare --progress "$reach" reach-v$v 2>err &&
		test "$(pack_reused err)" = "$(pack_count "$pack")" &&
		test "$(closures_recorded err)" = 0 &&
		test_grep "Total [0-9]+, reused 0 \(delta 0\), pack-reused $(pack_count "$pack")" err &&
		has_objects_of reach-v$v reach.git
	'
done

test_expect_success 'a client without ofs-delta gets the pack walked, not reused, and it indexes' '
	main=$(git -C reach.git rev-parse main) &&
	topic=$(git -C reach.git rev-parse topic) &&
	v1=$(git -C reach.git rev-parse v1) &&
	for caps in "" " ofs-delta"; do
		{ pkt "want $main$caps\n" && pkt "want $topic\n" && pkt "want $v1\n" &&
		  printf 0000 && pkt "done\n"; } >req &&
		git-serve upload-pack reach.git <req >out 2>err &&
		raw_pack out raw.pack &&
		rm -rf check.git && git init -q --bare check.git &&
		git -C check.git index-pack --stdin --strict <raw.pack >/dev/null &&
		git -C check.git update-ref refs/heads/main $main &&
		git -C check.git update-ref refs/heads/topic $topic &&
		git -C check.git update-ref refs/tags/v1 $v1 &&
		has_objects_of check.git reach.git || return 1
		if test -z "$caps"; then
			test "$(pack_reused err)" = 0 || return 1
		else
			test "$(pack_reused err)" -gt 0 || return 1
		fi
	done
'

test_expect_success 'a clone of only some of the tips of the marker is walked and gets only what they reach' '
	clone_v 2 --bare --single-branch --branch topic --no-tags "$reach" reach-topic 2>err &&
	test "$(pack_reused err)" = 0 &&
	test "$(closures_recorded err)" = 0 &&
	test_must_fail git -C reach-topic cat-file -e "$(git -C reach.git rev-parse main)" &&
	git -C reach.git rev-list --objects topic | cut -d" " -f1 | sort >expect.objects &&
	git -C reach-topic cat-file --batch-all-objects --batch-check="%(objectname)" | sort >actual.objects &&
	test_cmp expect.objects actual.objects
'

for v in 0 2; do
	test_expect_success "with include-tag (v$v), a new tag pointing into the reused pack comes with it" '
		git -C reachwork tag -a -m "late $v" "late$v" main~1 &&
		push_reach "late$v" &&
		tag=$(git -C reach.git rev-parse "late$v") &&
		rm -rf inc$v.git && git init -q --bare inc$v.git &&
		git -C inc$v.git -c protocol.version=$v fetch-pack --include-tag --upload-pack="$up" \
			"$reach" refs/heads/main refs/heads/topic refs/tags/v1 >out 2>err &&
		test "$(pack_reused err)" -gt 0 &&
		test "$(git -C inc$v.git cat-file -t "$tag")" = tag &&
		git -C inc$v.git fsck --strict --no-progress
	'
done

test_expect_success 'a closure marker with garbage, or naming another pack, is ignored, and a full clone writes it again' '
	marker=$(ls reach.git/objects/pack/*.closure) &&
	cp "$marker" good.marker &&
	rm -f "$marker" && printf "garbage\n" >"$marker" &&
	clone_v 2 --bare "$reach" reach-garbage 2>err &&
	test "$(pack_reused err)" = 0 &&
	has_objects_of reach-garbage reach.git &&
	rm -f "$marker" &&
	sed "s/^pack .*/pack 0123456789abcdef0123456789abcdef01234567/" good.marker >"$marker" &&
	clone_v 0 --bare "$reach" reach-other 2>err &&
	test "$(pack_reused err)" = 0 &&
	has_objects_of reach-other reach.git &&
	rm -f "$marker" && head -c 4096 /dev/urandom >"$marker" &&
	git -C reach.git tag -d late0 late2 >/dev/null &&
	clone_v 2 --bare "$reach" reach-again 2>err &&
	test "$(pack_reused err)" = 0 &&
	test "$(closures_recorded err)" = 1 &&
	test_cmp good.marker "$marker" &&
	clone_v 2 --bare "$reach" reach-healed 2>err &&
	test "$(pack_reused err)" -gt 0
'

for v in 0 2; do
	test_expect_success "after a fast-forward push on top (v$v), a clone sends the marked pack, then the new objects" '
		pack=$(ls reach.git/objects/pack/*.closure | sed "s/closure\$/pack/") &&
		commit_file reachwork big "$(big_text 1$v)" &&
		commit_file reachwork "g$v" "new $v" &&
		push_reach main &&
		# a pack pushed on top names objects outside it: no marker
		test $(ls reach.git/objects/pack/*.closure | wc -l) = 1 &&
		clone_v $v --bare "$reach" reach-ff$v 2>err &&
		test "$(pack_reused err)" = "$(pack_count "$pack")" &&
		test "$(objects_sent err)" = "$(git -C reach.git rev-list --objects --all | wc -l)" &&
		has_objects_of reach-ff$v reach.git
	'
done

test_expect_success 'after a force-push drops commits of the marked pack, a clone does not get them' '
	dropped=$(git -C reach.git rev-parse main~4) &&
	git -C reachwork reset -q --hard main~5 &&
	commit_file reachwork h rewritten &&
	push_reach -f main &&
	for v in 0 2; do
		clone_v $v --bare "$reach" reach-forced$v 2>err &&
		test "$(pack_reused err)" = 0 &&
		test_must_fail git -C reach-forced$v cat-file -e $dropped &&
		has_objects_of reach-forced$v reach.git || return 1
	done
'

test_done
