/* libFuzzer target: arbitrary bytes as the client side of a clone or fetch
 * (protocol v0, v1 or v2, picked by the first byte's low bits) are served by
 * upload_pack_serve against a small repository built once with libgit2, the
 * server's output discarded: it must end with 0 or with -1 and a message,
 * never crash, leak or loop. The first byte's high bits set how many bytes
 * each read returns. The repository (one commit and a tag packed, one
 * loose, so both ways of sending objects run; a clone of what is packed, as
 * the seed v0-clone-packed asks, writes the pack's closure marker, which
 * later inputs then send by pack reuse) has fixed dates, so the seeds in
 * tests/fuzz/corpus/upload_request can name its ids:
 *   e3103c83b87853c4235a4a67b82568a084bd1b60 "one"  refs/heads/old
 *   24a0b82c22494a2b892034073fc2a70e06abcfcb "two"  refs/heads/main, HEAD, light
 *   04875ebf71dc94facb6b7d5fd06241066bc22a9a tag v1 of "one" */
#include <ftw.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <git2.h>

#include "err.h"
#include "mem_stream.h"
#include "pktline.h"
#include "upload_pack.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static git_repository *repo;
static char repo_dir[] = "/tmp/upload-fuzz-XXXXXX";

static int discard(void *arg, const void *buf, size_t len)
{
	return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	remove(path);
	return 0;
}

static void remove_repo(void)
{
	git_repository_free(repo);
	repo = NULL;
	nftw(repo_dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void check(int rc, const char *what)
{
	if (rc < 0) {
		fprintf(stderr, "upload_request: %s: %s\n", what,
		        git_error_last() ? git_error_last()->message : "?");
		abort();
	}
}

/* A commit on refs/heads/NAME holding FILES (name, content pairs). */
static void make_commit(git_oid *out, const char *ref, const git_oid *parent, const char *message,
                        const char *const *files, size_t nfiles, const git_signature *sig)
{
	git_treebuilder *tb = NULL;
	git_commit *parent_commit = NULL;
	git_tree *tree = NULL;
	git_oid blob, tree_id;

	check(git_treebuilder_new(&tb, repo, NULL), "treebuilder");
	for (size_t i = 0; i < nfiles; i++) {
		check(git_blob_create_from_buffer(&blob, repo, files[2 * i + 1],
		                                  strlen(files[2 * i + 1])),
		      "blob");
		check(git_treebuilder_insert(NULL, tb, files[2 * i], &blob, GIT_FILEMODE_BLOB),
		      "tree entry");
	}
	check(git_treebuilder_write(&tree_id, tb), "tree");
	check(git_tree_lookup(&tree, repo, &tree_id), "tree lookup");
	if (parent)
		check(git_commit_lookup(&parent_commit, repo, parent), "parent");
	check(git_commit_create(out, repo, ref, sig, sig, NULL, message, tree, parent ? 1 : 0,
	                        (const git_commit **)&parent_commit),
	      "commit");
	git_commit_free(parent_commit);
	git_tree_free(tree);
	git_treebuilder_free(tb);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *const one[] = {"a", "hello\n"};
	static const char *const two[] = {"a", "hello again\n", "b", "hello\n"};
	git_packbuilder *pb = NULL;
	git_signature *sig = NULL;
	git_object *target = NULL;
	git_reference *ref = NULL;
	git_oid c1, c2, tag, light;

	git_libgit2_init();
	if (!mkdtemp(repo_dir)) {
		perror("upload_request: mkdtemp");
		abort();
	}
	atexit(remove_repo);
	check(git_repository_init(&repo, repo_dir, 1), "init");
	check(git_signature_new(&sig, "A U Thor", "author@example.com", 1112911993, 0), "sig");
	make_commit(&c1, "refs/heads/old", NULL, "one\n", one, 1, sig);
	make_commit(&c2, "refs/heads/main", &c1, "two\n", two, 2, sig);
	check(git_object_lookup(&target, repo, &c1, GIT_OBJECT_COMMIT), "lookup");
	check(git_tag_create(&tag, repo, "v1", target, sig, "release 1\n", 0), "tag");
	git_object_free(target);
	check(git_object_lookup(&target, repo, &c2, GIT_OBJECT_COMMIT), "lookup");
	check(git_tag_create_lightweight(&light, repo, "light", target, 0), "light tag");
	check(git_reference_symbolic_create(&ref, repo, "HEAD", "refs/heads/main", 1, NULL),
	      "HEAD");
	/* "one" and the tag also go into a pack, "two" stays loose: packs are
	 * copied from, loose objects go through the packbuilder */
	check(git_packbuilder_new(&pb, repo), "packbuilder");
	check(git_packbuilder_insert_commit(pb, &c1), "pack commit");
	check(git_packbuilder_insert(pb, &tag, NULL), "pack tag");
	check(git_packbuilder_write(pb, NULL, 0, NULL, NULL), "pack write");
	git_packbuilder_free(pb);
	git_reference_free(ref);
	git_object_free(target);
	git_signature_free(sig);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct pkt_io io; /* 128 KiB of buffers: not on the stack */
	struct upload_opts opts = {"fuzz", 0};
	struct upload_stats stats = {0};
	struct mem m;
	int version;

	if (size < 1)
		return 0;
	version = data[0] & 3;
	m.data = data + 1;
	m.len = size - 1;
	m.pos = 0;
	m.step = data[0] >> 2;
	pkt_io_init(&io, mem_read, discard, &m);
	err_clear();
	if (upload_pack_serve(&io, repo, version == 3 ? 2 : version, &opts, &stats) < 0 &&
	    !err_msg()[0])
		abort(); /* a failure always says why */
	if (stats.nwants > UPLOAD_WANTS_MAX * 16 || (stats.pack_objects && !stats.pack_bytes))
		abort();
	return 0;
}
