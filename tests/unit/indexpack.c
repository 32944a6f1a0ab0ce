/* Unit tests for gitd/indexpack: the .idx it writes is byte for byte the one
 * `git index-pack` writes for the same pack (packs made by the real git
 * with deep OFS_DELTA and REF_DELTA chains, and one from the git.git
 * history the bench caches, when present); the connectivity check and
 * is_closed; refusals of bad deltas, sizes and duplicates; thin packs; and
 * the delta instructions (gitformat-pack.txt "Deltified representation"). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <openssl/evp.h>

#include "err.h"
#include "fs.h"
#include "indexpack.h"
#include "packfile.h"
#include "spawn.h"
#include "tap.h"

extern char **environ;

static char scratch[] = "/tmp/unit-indexpack-XXXXXX";

/* Runs the fixture script SCRIPT with sh -e in the scratch directory. */
static bool sh(const char *script)
{
	const char *argv[] = {"/bin/sh", "-e", "-c", script, NULL};
	struct spawn_opts o = {.argv = argv,
	                       .env = (const char *const *)environ,
	                       .cwd = scratch,
	                       .in_fd = -1,
	                       .out_fd = 2};
	struct spawn_result r;

	return spawn_run(&r, &o) == 0 && WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0;
}

static unsigned char *read_file(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	unsigned char *data = NULL;
	long n;

	*size = 0;
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (data = malloc((size_t)n + 1)) && fread(data, 1, (size_t)n, f) == (size_t)n)
		*size = (size_t)n;
	else {
		free(data);
		data = NULL;
	}
	fclose(f);
	return data;
}

static bool write_file(const char *path, const unsigned char *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	bool is_ok = f && fwrite(p, 1, n, f) == n;

	if (f && fclose(f) != 0)
		is_ok = false;
	return is_ok;
}

/* Checks PACK (N bytes) with packfile_check as receive-pack does, stores it
 * in DIR/tmp_pack and indexes it there. Returns indexpack_run's result, or
 * -100 when the check refused it. */
static int index_bytes(struct indexpack_result *res, const char *dir, const unsigned char *pack,
                       size_t n, const struct indexpack_opts *opts)
{
	struct packfile_check c;
	char path[4096];
	int rc = -100;

	snprintf(path, sizeof(path), "%s/tmp_pack", dir);
	mkdir(dir, 0700);
	if (packfile_check_init(&c, 0) < 0)
		return -100;
	packfile_check_keep_offsets(&c);
	/* in pieces, as it streams in */
	for (size_t at = 0; at < n; at += 65536)
		if (packfile_check_add(&c, pack + at, n - at < 65536 ? n - at : 65536) < 0)
			goto out;
	if (!packfile_check_is_done(&c) || !write_file(path, pack, n))
		goto out;
	rc = indexpack_run(res, dir, path, c.offsets, c.noffsets, opts);
out:
	packfile_check_release(&c);
	return rc;
}

/* Indexes scratch/NAME.pack into scratch/NAME.out/ (holding at most
 * HELD_MAX bytes of a delta chain per thread; 0: the default) and compares
 * the .idx with scratch/NAME.idx, which `git index-pack` wrote. */
static void same_idx_as_git(const char *name, size_t held_max, const char *what)
{
	struct indexpack_opts opts = {.held_max = held_max};
	struct indexpack_result res;
	char path[8192], dir[4096];
	unsigned char *pack, *mine = NULL, *theirs;
	size_t npack, nmine = 0, ntheirs;
	int rc;

	snprintf(path, sizeof(path), "%s/%s.pack", scratch, name);
	pack = read_file(path, &npack);
	snprintf(path, sizeof(path), "%s/%s.idx", scratch, name);
	theirs = read_file(path, &ntheirs);
	if (!ok(pack && theirs, "%s: fixture packs", what))
		goto out;
	snprintf(dir, sizeof(dir), "%s/%s.out%zu", scratch, name, held_max);
	rc = index_bytes(&res, dir, pack, npack, &opts);
	if (!is_int(rc, 0, what)) {
		printf("# %s\n", err_msg());
		goto out;
	}
	snprintf(path, sizeof(path), "%s/%s.idx", dir, res.pack_name);
	mine = read_file(path, &nmine);
	ok(mine && nmine == ntheirs && !memcmp(mine, theirs, nmine),
	   "%s: the .idx is byte for byte git's (%u objects, %u deltas)", what, res.nobjects,
	   res.ndeltas);
	snprintf(path, sizeof(path), "%s/%s.pack", dir, res.pack_name);
	ok(access(path, R_OK) == 0, "%s: the pack is renamed to its checksum", what);
out:
	free(pack);
	free(theirs);
	free(mine);
}

/* A history with a file growing commit by commit: long delta chains. */
static const char *const make_history =
    "git init -q -b main src\n"
    "python3 - <<'EOF' | git -C src fast-import --quiet\n"
    "lines = ['line %d\\n' % i for i in range(300)]\n"
    "for i in range(1, 401):\n"
    "    lines[i % 300] = 'line %d changed in commit %d\\n' % (i % 300, i)\n"
    "    lines.append('added by commit %d\\n' % i)\n"
    "    data = ''.join(lines)\n"
    "    msg = 'commit %d\\n' % i\n"
    "    print('commit refs/heads/main')\n"
    "    print('committer C <c@example.com> %d +0000' % (1700000000 + i))\n"
    "    print('data %d\\n%s' % (len(msg), msg), end='')\n"
    "    print('M 100644 inline dir%d/file' % (i % 3))\n"
    "    print('data %d\\n%s' % (len(data), data))\n"
    "EOF\n";

static void test_same_as_git(void)
{
	const char *real = getenv("SLIPWAY_BENCH_REAL_REPO");
	char cache[4096];

	if (!ok(sh(make_history), "fixture: a history of 400 commits"))
		return;
	/* OFS_DELTAs, chains up to 250 deep */
	ok(sh("git -C src rev-list --objects main | git -C src pack-objects -q --no-reuse-delta "
	      "--delta-base-offset "
	      "--depth=250 --window=50 --stdout >ofs.pack\n"
	      "git index-pack -o ofs.idx ofs.pack >/dev/null\n"
	      "git verify-pack -s ofs.idx | grep -qE '^chain length = (1[0-9][0-9]|2[0-9][0-9]):'"),
	   "fixture: an OFS_DELTA pack with chains over 100 deep");
	same_idx_as_git("ofs", 0, "OFS_DELTA pack");
	/* every base dropped as soon as its child is made, and made again */
	same_idx_as_git("ofs", 1, "OFS_DELTA pack, holding no base between deltas");
	/* without --delta-base-offset, deltas name their base by id */
	ok(sh("git -C src rev-list --objects main | git -C src pack-objects -q --no-reuse-delta "
	      "--depth=100 --window=20 --stdout >ref.pack\n"
	      "git index-pack -o ref.idx ref.pack >/dev/null\n"
	      "git verify-pack -v ref.idx | grep -q 'chain length = '"),
	   "fixture: a REF_DELTA pack");
	same_idx_as_git("ref", 0, "REF_DELTA pack");
	same_idx_as_git("ref", 1, "REF_DELTA pack, holding no base between deltas");
	ok(sh("git -C src rev-list --objects main~200 | git -C src pack-objects -q --stdout "
	      ">small.pack\n"
	      "git index-pack -o small.idx small.pack >/dev/null"),
	   "fixture: a pack of half the history");
	same_idx_as_git("small", 0, "pack of half the history");

	if (!real)
		snprintf(cache, sizeof(cache), "%s/.cache/slipway/bench/git.git",
		         getenv("HOME") ? getenv("HOME") : "/root");
	else
		snprintf(cache, sizeof(cache), "%s", real);
	if (access(cache, R_OK) != 0) {
		printf("# skipped: no git.git history at %s (see bench/README.md)\n", cache);
		return;
	}
	/* a year of git.git: thousands of objects with its own deltas reused */
	/* the path reaches the script in the environment, never in its text */
	setenv("INDEXPACK_REAL", cache, 1);
	if (ok(sh("git -C \"$INDEXPACK_REAL\" rev-list --objects v2.30.0..v2.33.0 |\n"
	          "  git -C \"$INDEXPACK_REAL\" pack-objects -q --delta-base-offset --stdout "
	          ">real.pack\n"
	          "git index-pack -o real.idx real.pack >/dev/null"),
	       "fixture: a pack of git.git v2.30.0..v2.33.0"))
		same_idx_as_git("real", 0, "git.git history pack");
}

static void test_connectivity(void)
{
	struct indexpack_opts opts = {0};
	struct indexpack_result res;
	git_repository *empty = NULL;
	git_odb *odb = NULL;
	git_oid tip;
	unsigned char *pack;
	size_t n;
	char path[4096];
	int rc;

	snprintf(path, sizeof(path), "%s/empty.git", scratch);
	if (!ok(git_repository_init(&empty, path, 1) == 0 && git_repository_odb(&odb, empty) == 0,
	        "fixture: an empty repository"))
		goto out;
	opts.odb = odb;
	snprintf(path, sizeof(path), "%s/small.pack", scratch);
	pack = read_file(path, &n);
	if (!ok(pack && sh("git -C src rev-parse main~200 >tip"), "fixture: the half history"))
		goto out;
	snprintf(path, sizeof(path), "%s/tip", scratch);
	{
		size_t len;
		unsigned char *hex = read_file(path, &len);

		ok(hex && len >= 40 && git_oid_fromstrn(&tip, (const char *)hex, 40) == 0,
		   "fixture: its tip");
		free(hex);
	}
	snprintf(path, sizeof(path), "%s/conn1", scratch);
	rc = index_bytes(&res, path, pack, n, &opts);
	is_int(rc, 0, "a pack whose objects name only each other is indexed");
	ok(!res.problem, "and is connected");
	ok(!res.is_closed, "without its tip it is not closed: the tip commit is named by nothing");
	opts.tips = &tip;
	opts.ntips = 1;
	snprintf(path, sizeof(path), "%s/conn2", scratch);
	rc = index_bytes(&res, path, pack, n, &opts);
	ok(rc == 0 && !res.problem && res.is_closed, "with its tip it is closed");
	free(pack);

	/* the same history but one blob left out */
	ok(sh("m=$(git -C src rev-parse main~250:dir1/file)\n"
	      "git -C src rev-list --objects main~200 | cut -d' ' -f1 | grep -v \"^$m$\" |"
	      " git -C src pack-objects -q --stdout >holey.pack"),
	   "fixture: a pack missing one blob");
	snprintf(path, sizeof(path), "%s/holey.pack", scratch);
	pack = read_file(path, &n);
	snprintf(path, sizeof(path), "%s/conn3", scratch);
	rc = pack ? index_bytes(&res, path, pack, n, &opts) : -1;
	is_int(rc, 0, "a pack missing a blob is still indexed");
	is_str(res.problem, "missing necessary objects", "but is not connected");
	ok(!res.is_closed, "and not closed");
	free(pack);
out:
	git_odb_free(odb);
	git_repository_free(empty);
}

/* ---- hand-made packs ------------------------------------------------------ */

struct bytes {
	unsigned char data[65536];
	size_t len;
};

static void put(struct bytes *b, const void *p, size_t n)
{
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

static void put_header(struct bytes *b, uint32_t count)
{
	unsigned char h[12] = {'P', 'A', 'C', 'K', 0, 0, 0, 2};

	h[8] = (unsigned char)(count >> 24);
	h[9] = (unsigned char)(count >> 16);
	h[10] = (unsigned char)(count >> 8);
	h[11] = (unsigned char)count;
	put(b, h, sizeof(h));
}

static void put_entry_header(struct bytes *b, int type, uint64_t size)
{
	unsigned char c = (unsigned char)(type << 4 | (size & 15));

	size >>= 4;
	while (size) {
		c |= 0x80;
		put(b, &c, 1);
		c = size & 0x7f;
		size >>= 7;
	}
	put(b, &c, 1);
}

static void put_deflated(struct bytes *b, const void *p, size_t n)
{
	uLongf out = (uLongf)(sizeof(b->data) - b->len);

	if (compress(b->data + b->len, &out, p, (uLong)n) != Z_OK)
		abort();
	b->len += out;
}

/* An entry of TYPE holding DATA (N bytes), declared as SIZE bytes. */
static void put_object(struct bytes *b, int type, const void *data, size_t n, uint64_t size)
{
	put_entry_header(b, type, size);
	put_deflated(b, data, n);
}

/* An OFS_DELTA DISTANCE bytes back (one byte of distance: < 128). */
static void put_ofs_delta(struct bytes *b, unsigned distance, const void *delta, size_t n)
{
	unsigned char d = (unsigned char)distance;

	put_entry_header(b, PACKFILE_OFS_DELTA, n);
	put(b, &d, 1);
	put_deflated(b, delta, n);
}

static void put_trailer(struct bytes *b)
{
	unsigned int len = 0;

	EVP_Digest(b->data, b->len, b->data + b->len, &len, EVP_sha1(), NULL);
	b->len += len;
}

static int index_made(struct indexpack_result *res, const struct bytes *b, const char *name)
{
	struct indexpack_opts opts = {0};
	char dir[4096];

	snprintf(dir, sizeof(dir), "%s/%s", scratch, name);
	return index_bytes(res, dir, b->data, b->len, &opts);
}

/* A pack of the blob "hello world\n" and an OFS_DELTA on it whose delta
 * data is DELTA (N bytes); returns indexpack_run's result. */
static int index_delta(struct indexpack_result *res, const void *delta, size_t n, const char *name)
{
	static const char blob[] = "hello world\n";
	struct bytes b = {.len = 0};
	size_t at;

	put_header(&b, 2);
	at = b.len;
	put_object(&b, PACKFILE_BLOB, blob, 12, 12);
	put_ofs_delta(&b, (unsigned)(b.len - at), delta, n);
	put_trailer(&b);
	return index_made(res, &b, name);
}

static void test_refusals(void)
{
	struct indexpack_result res;
	/* base 12 bytes, result 5: copy 5 bytes from offset 0 */
	static const unsigned char good[] = {12, 5, 0x90, 5};
	static const unsigned char outside[] = {12, 5, 0x91, 10, 5};
	static const unsigned char base_size[] = {11, 5, 0x90, 5};
	static const unsigned char reserved[] = {12, 5, 0x00, 0x90, 5};
	static const unsigned char short_result[] = {12, 6, 0x90, 5};
	static const unsigned char truncated[] = {12, 5, 0x93, 0};
	struct bytes b = {.len = 0};
	unsigned char id[20] = {1, 2, 3};
	int rc;

	rc = index_delta(&res, good, sizeof(good), "good");
	ok(rc == 0 && res.nobjects == 2 && res.ndeltas == 1, "a well-formed delta is resolved");
	rc = index_delta(&res, outside, sizeof(outside), "outside");
	ok(rc == -1 && strstr(res.reason, "bad delta at offset") &&
	       strstr(res.reason, "copies outside its base"),
	   "a delta copying past its base is refused: %s", res.reason);
	rc = index_delta(&res, base_size, sizeof(base_size), "base-size");
	ok(rc == -1 && strstr(res.reason, "delta base size 11 does not match"),
	   "a delta for a base of another size is refused: %s", res.reason);
	rc = index_delta(&res, reserved, sizeof(reserved), "reserved");
	ok(rc == -1 && strstr(res.reason, "reserved instruction 0"),
	   "a delta with the reserved instruction is refused: %s", res.reason);
	rc = index_delta(&res, short_result, sizeof(short_result), "short-result");
	ok(rc == -1 && strstr(res.reason, "makes 5 bytes, its header declares 6"),
	   "a delta that makes less than its result size is refused: %s", res.reason);
	rc = index_delta(&res, truncated, sizeof(truncated), "truncated");
	ok(rc == -1 && strstr(res.reason, "truncated"),
	   "a truncated copy instruction is refused: %s", res.reason);

	/* the same blob twice */
	put_header(&b, 2);
	put_object(&b, PACKFILE_BLOB, "same\n", 5, 5);
	put_object(&b, PACKFILE_BLOB, "same\n", 5, 5);
	put_trailer(&b);
	rc = index_made(&res, &b, "twice");
	ok(rc == -1 && strstr(res.reason, "appears twice in the pack"),
	   "the same object twice is refused: %s", res.reason);

	/* a REF_DELTA on a base that is not in the pack */
	b.len = 0;
	put_header(&b, 2);
	put_object(&b, PACKFILE_BLOB, "hello world\n", 12, 12);
	put_entry_header(&b, PACKFILE_REF_DELTA, sizeof(good));
	put(&b, id, sizeof(id));
	put_deflated(&b, good, sizeof(good));
	put_trailer(&b);
	rc = index_made(&res, &b, "thin");
	is_int(rc, INDEXPACK_ETHIN, "a REF_DELTA whose base is not in the pack makes it thin");
	{
		char path[4096];

		snprintf(path, sizeof(path), "%s/thin/tmp_pack", scratch);
		ok(access(path, R_OK) == 0, "and the pack is left for the caller");
	}
}

/* A REF_DELTA whose base the repository has: a thin pack, completed with
 * the base as git's index-pack --fix-thin does; the completed pack is one
 * git indexes to the same .idx. */
static void test_thin_in_repo(void)
{
	static const unsigned char delta[] = {12, 5, 0x90, 5};
	struct indexpack_opts opts = {0};
	struct indexpack_result res;
	struct bytes b = {.len = 0};
	git_repository *repo = NULL;
	git_odb *odb = NULL;
	git_oid blob;
	char path[4096];

	snprintf(path, sizeof(path), "%s/thin.git", scratch);
	if (!ok(git_repository_init(&repo, path, 1) == 0 && git_repository_odb(&odb, repo) == 0 &&
	            git_blob_create_from_buffer(&blob, repo, "hello world\n", 12) == 0,
	        "fixture: a repository with a blob"))
		goto out;
	put_header(&b, 1);
	put_entry_header(&b, PACKFILE_REF_DELTA, sizeof(delta));
	put(&b, blob.id, sizeof(blob.id));
	put_deflated(&b, delta, sizeof(delta));
	put_trailer(&b);
	opts.odb = odb;
	snprintf(path, sizeof(path), "%s/thin2", scratch);
	is_int(index_bytes(&res, path, b.data, b.len, &opts), 0,
	       "a pack whose REF_DELTA's base is in the repository is indexed");
	ok(res.nobjects == 2 && res.nlocal == 1 && res.ndeltas == 1 && !res.problem &&
	       !res.is_closed,
	   "with the base appended from the repository");
	setenv("INDEXPACK_THIN", res.pack_name, 1);
	ok(sh("cp thin2/$INDEXPACK_THIN.pack completed.pack\n"
	      "git index-pack -o completed.idx completed.pack >/dev/null\n"
	      "cmp completed.idx thin2/$INDEXPACK_THIN.idx\n"
	      "git verify-pack completed.idx"),
	   "git reads the completed pack and indexes it to the same .idx");
out:
	git_odb_free(odb);
	git_repository_free(repo);
}

/* A zlib stream that does not give its declared size is refused by the
 * index itself too, not only by packfile_check upstream. */
static void test_inflate_size(void)
{
	struct indexpack_opts opts = {0};
	struct indexpack_result res;
	struct bytes b = {.len = 0};
	uint64_t offsets[1] = {12};
	char dir[4096], path[4200];
	int rc;

	put_header(&b, 1);
	put_object(&b, PACKFILE_BLOB, "hello world\n", 12, 13);
	put_trailer(&b);
	snprintf(dir, sizeof(dir), "%s/inflate", scratch);
	snprintf(path, sizeof(path), "%s/tmp_pack", dir);
	mkdir(dir, 0700);
	if (!ok(write_file(path, b.data, b.len), "fixture: a pack declaring one byte too many"))
		return;
	rc = indexpack_run(&res, dir, path, offsets, 1, &opts);
	ok(rc == -1 && strstr(res.reason, "does not inflate to its declared 13 bytes"),
	   "an entry that inflates to less than it declares is refused: %s", res.reason);
}

static void test_delta_apply(void)
{
	static const unsigned char base[] = "0123456789";
	unsigned char delta[64], *out = NULL, big[0x10010];
	size_t n, size = 0;

	/* result "345ab9": copy(3, 3), insert "ab", copy(9, 1) */
	n = 0;
	delta[n++] = 10;
	delta[n++] = 6;
	delta[n++] = 0x91;
	delta[n++] = 3;
	delta[n++] = 3;
	delta[n++] = 2;
	delta[n++] = 'a';
	delta[n++] = 'b';
	delta[n++] = 0x91;
	delta[n++] = 9;
	delta[n++] = 1;
	ok(indexpack_delta_apply(&out, &size, base, 10, delta, n, 0) == 0 && size == 6 &&
	       !memcmp(out, "345ab9", 6),
	   "copy and insert instructions make the result");
	free(out);
	ok(indexpack_delta_apply(&out, &size, base, 10, delta, n, 5) == -1 && !out,
	   "a result over the size limit is refused");
	/* a copy of size 0 copies 0x10000 bytes */
	memset(big, 'x', sizeof(big));
	n = 0;
	delta[n++] = 0x90 | 0x80; /* base size 0x10010: 7 bits a byte */
	delta[n++] = 0x80;
	delta[n++] = 0x04;
	delta[n++] = 0x80;
	delta[n++] = 0x80;
	delta[n++] = 0x04;
	delta[n++] = 0x80; /* copy, no offset or size bytes */
	ok(indexpack_delta_apply(&out, &size, big, sizeof(big), delta, n, 0) == 0 &&
	       size == 0x10000,
	   "a copy of size 0 copies 0x10000 bytes");
	free(out);
	n = 0;
	delta[n++] = 10;
	delta[n++] = 3;
	delta[n++] = 5; /* insert 5, only 3 follow */
	delta[n++] = 'a';
	delta[n++] = 'b';
	delta[n++] = 'c';
	ok(indexpack_delta_apply(&out, &size, base, 10, delta, n, 0) == -1,
	   "an insert past the delta's end is refused");
	ok(indexpack_delta_apply(&out, &size, base, 10, delta, 1, 0) == -1,
	   "a delta without its result size is refused");
}

static int count_name(const git_oid *id, void *arg)
{
	(void)id;
	(*(int *)arg)++;
	return 0;
}

static void test_each_name(void)
{
	static const char commit[] = "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n"
	                             "parent 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n"
	                             "parent 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n"
	                             "author A <a@b> 1 +0000\n\nmsg\n";
	char tree[128];
	size_t n = 0;
	int count = 0;

	ok(indexpack_each_name(GIT_OBJECT_COMMIT, commit, sizeof(commit) - 1, count_name, &count) ==
	           0 &&
	       count == 3,
	   "a commit names its tree and parents");
	count = 0;
	ok(indexpack_each_name(GIT_OBJECT_COMMIT, commit + 5, 20, count_name, &count) == -1,
	   "a commit without a tree line does not parse");
	memcpy(tree + n, "100644 a\0", 9);
	n += 9;
	memset(tree + n, 1, 20);
	n += 20;
	memcpy(tree + n, "160000 sub\0", 11);
	n += 11;
	memset(tree + n, 2, 20);
	n += 20;
	count = 0;
	ok(indexpack_each_name(GIT_OBJECT_TREE, tree, n, count_name, &count) == 0 && count == 1,
	   "a tree names its entries but gitlinks");
	ok(indexpack_each_name(GIT_OBJECT_TREE, tree, n - 1, count_name, &count) == -1,
	   "a truncated tree entry does not parse");
	memcpy(tree, "10064x a\0", 9);
	ok(indexpack_each_name(GIT_OBJECT_TREE, tree, 29, count_name, &count) == -1,
	   "a tree mode that is not octal does not parse");
}

int main(void)
{
	git_libgit2_init();
	if (!ok(mkdtemp(scratch) != NULL, "fixture: scratch directory"))
		return tap_done();
	test_delta_apply();
	test_each_name();
	test_refusals();
	test_inflate_size();
	test_thin_in_repo();
	test_same_as_git();
	test_connectivity();
	if (fs_remove_tree(scratch) < 0)
		printf("# %s\n", err_msg());
	git_libgit2_shutdown();
	return tap_done();
}
