/* Unit tests of gitd's source archive (archive.h): a commit built with
 * libgit2 in a scratch repository (files, an executable, symbolic links,
 * nested directories, a submodule) is archived, read back with libarchive
 * and compared with what git recorded, in the tar and under DIR. */
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <git2.h>

#include "tap.h"
#include "archive.h"
#include "err.h"

#define COMMIT_TIME 1700000000
/* 150 bytes: past ustar's 100-byte name, so it needs a pax header */
#define LONG_NAME                                                                                  \
	"long-name-0123456789012345678901234567890123456789012345678901234567890123456789"         \
	"0123456789012345678901234567890123456789012345678901234567890123456789"

static char scratch[] = "/tmp/slipway-unit-archive-XXXXXX";
static git_repository *repo;

/* A path in the scratch directory (a static buffer per call site index). */
static const char *at(int slot, const char *name)
{
	static char bufs[8][512];

	snprintf(bufs[slot], sizeof(bufs[slot]), "%s/%s", scratch, name);
	return bufs[slot];
}

static git_oid blob(const char *data)
{
	git_oid id;

	if (git_blob_create_from_buffer(&id, repo, data, strlen(data)) < 0)
		fprintf(stderr, "blob: %s\n", git_error_last()->message);
	return id;
}

/* A tree of NAME/MODE/OID triples, NULL-terminated by name. */
struct ent {
	const char *name;
	git_filemode_t mode;
	git_oid id;
};

static git_oid tree(const struct ent *ents)
{
	git_treebuilder *tb = NULL;
	git_oid id = {{0}};

	git_treebuilder_new(&tb, repo, NULL);
	for (; ents->name; ents++)
		if (git_treebuilder_insert(NULL, tb, ents->name, &ents->id, ents->mode) < 0)
			fprintf(stderr, "insert %s: %s\n", ents->name, git_error_last()->message);
	git_treebuilder_write(&id, tb);
	git_treebuilder_free(tb);
	return id;
}

static git_oid commit_of(git_oid tree_id)
{
	git_signature *sig = NULL;
	git_tree *t = NULL;
	git_oid id = {{0}};

	git_signature_new(&sig, "Tester", "tester@example.com", COMMIT_TIME, 60);
	git_tree_lookup(&t, repo, &tree_id);
	if (git_commit_create(&id, repo, NULL, sig, sig, NULL, "test\n", t, 0, NULL) < 0)
		fprintf(stderr, "commit: %s\n", git_error_last()->message);
	git_tree_free(t);
	git_signature_free(sig);
	return id;
}

/* What one tar entry was read as. */
struct seen {
	char path[256];
	mode_t type, perm;
	char link[256];
	char data[256];
	long long size, mtime, uid, gid;
	char uname[32];
};

/* Reads TAR (gzip'd) into SEEN; returns the number of entries, -1 on error. */
static int read_tar(struct seen *seen, int max, const char *tar, char *format, size_t fsize)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	int n = 0, r;

	archive_read_support_filter_gzip(a);
	archive_read_support_format_tar(a);
	if (archive_read_open_filename(a, tar, 10240) != ARCHIVE_OK) {
		archive_read_free(a);
		return -1;
	}
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK && n < max) {
		struct seen *s = &seen[n++];

		memset(s, 0, sizeof(*s));
		snprintf(s->path, sizeof(s->path), "%s", archive_entry_pathname(e));
		s->type = archive_entry_filetype(e);
		s->perm = archive_entry_perm(e);
		if (archive_entry_symlink(e))
			snprintf(s->link, sizeof(s->link), "%s", archive_entry_symlink(e));
		s->size = archive_entry_size(e);
		s->mtime = archive_entry_mtime(e);
		s->uid = archive_entry_uid(e);
		s->gid = archive_entry_gid(e);
		snprintf(s->uname, sizeof(s->uname), "%s",
		         archive_entry_uname(e) ? archive_entry_uname(e) : "");
		if (s->type == AE_IFREG)
			archive_read_data(a, s->data, sizeof(s->data) - 1);
		snprintf(format, fsize, "%s", archive_format_name(a));
	}
	archive_read_free(a);
	return r == ARCHIVE_EOF ? n : -1;
}

static const struct seen *find_seen(const struct seen *seen, int n, const char *path)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(seen[i].path, path))
			return &seen[i];
	return NULL;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *data = NULL;
	long n;

	*len = 0;
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	if (n >= 0 && (data = malloc((size_t)n + 1)) && fread(data, 1, (size_t)n, f) == (size_t)n)
		*len = (size_t)n;
	fclose(f);
	return data;
}

static void test_archive(void)
{
	git_oid deep, sub, dir, sm, top, commit, missing;
	struct seen seen[32];
	const struct seen *s;
	char format[64] = "", link[256];
	struct stat st;
	size_t len1, len2;
	char *a1, *a2, *text;
	int n;
	ssize_t ln;

	deep = blob("deep file\n");
	sub = tree((struct ent[]){{"deep.txt", GIT_FILEMODE_BLOB, deep}, {NULL}});
	dir = tree((struct ent[]){
	    {"sub", GIT_FILEMODE_TREE, sub}, {"b.txt", GIT_FILEMODE_BLOB, blob("bee\n")}, {NULL}});
	git_oid_fromstr(&sm, "1234567890123456789012345678901234567890");
	top = tree(
	    (struct ent[]){{"Dockerfile", GIT_FILEMODE_BLOB, blob("FROM scratch\n")},
	                   {"run.sh", GIT_FILEMODE_BLOB_EXECUTABLE, blob("#!/bin/sh\necho hi\n")},
	                   {"dir", GIT_FILEMODE_TREE, dir},
	                   {"link", GIT_FILEMODE_LINK, blob("dir/sub/deep.txt")},
	                   {"escape", GIT_FILEMODE_LINK, blob("../../../etc/passwd")},
	                   {"module", GIT_FILEMODE_COMMIT, sm},
	                   {"empty", GIT_FILEMODE_BLOB, blob("")},
	                   {LONG_NAME, GIT_FILEMODE_BLOB, blob("long\n")},
	                   {NULL}});
	commit = commit_of(top);

	mkdir(at(0, "out"), 0700);
	is_int(archive_commit(repo, &commit, at(1, "a.tar.gz"), at(0, "out")), 0,
	       "archive_commit writes the tar and the directory");
	if (*err_msg())
		printf("# %s\n", err_msg());
	ok(stat(at(1, "a.tar.gz"), &st) == 0 && (st.st_mode & 07777) == 0600,
	   "the tar file has mode 0600");

	n = read_tar(seen, 32, at(1, "a.tar.gz"), format, sizeof(format));
	is_int(n, 11, "the tar holds 11 entries (8 at the top, dir/b.txt, dir/sub, its deep.txt)");
	ok(strstr(format, "pax"), "the format is pax (%s)", format);
	s = find_seen(seen, n, LONG_NAME);
	ok(s && s->type == AE_IFREG && !strcmp(s->data, "long\n"),
	   "a 150-byte name survives (pax header)");
	is_str(n > 0 ? seen[0].path : NULL, "Dockerfile", "entries come in git's order");
	s = find_seen(seen, n, "run.sh");
	ok(s && s->type == AE_IFREG && s->perm == 0755 && !strcmp(s->data, "#!/bin/sh\necho hi\n"),
	   "run.sh: a regular file, 0755, its content");
	s = find_seen(seen, n, "Dockerfile");
	ok(s && s->type == AE_IFREG && s->perm == 0644 && s->size == 13,
	   "Dockerfile: a regular file, 0644, 13 bytes");
	s = find_seen(seen, n, "dir/sub/deep.txt");
	ok(s && s->type == AE_IFREG && !strcmp(s->data, "deep file\n"),
	   "dir/sub/deep.txt: nested file with its content");
	s = find_seen(seen, n, "dir/sub/");
	if (!s)
		s = find_seen(seen, n, "dir/sub");
	ok(s && s->type == AE_IFDIR && s->perm == 0755, "dir/sub: a directory, 0755");
	s = find_seen(seen, n, "link");
	ok(s && s->type == AE_IFLNK && !strcmp(s->link, "dir/sub/deep.txt"),
	   "link: a symbolic link with git's target");
	s = find_seen(seen, n, "escape");
	ok(s && s->type == AE_IFLNK && !strcmp(s->link, "../../../etc/passwd"),
	   "a link leading outside is kept as a link");
	s = find_seen(seen, n, "module/");
	if (!s)
		s = find_seen(seen, n, "module");
	ok(s && s->type == AE_IFDIR, "a submodule is an empty directory");
	s = find_seen(seen, n, "empty");
	ok(s && s->type == AE_IFREG && s->size == 0, "an empty file is an empty file");
	{
		int same = n > 0;

		for (int i = 0; i < n; i++)
			same = same && seen[i].mtime == COMMIT_TIME && seen[i].uid == 0 &&
			       seen[i].gid == 0;
		ok(same, "every entry has the committer time and owner 0:0");
	}

	ok(lstat(at(2, "out/run.sh"), &st) == 0 && S_ISREG(st.st_mode) &&
	       (st.st_mode & 07777) == 0755,
	   "DIR: run.sh is an executable file");
	ok(lstat(at(2, "out/Dockerfile"), &st) == 0 && (st.st_mode & 07777) == 0644,
	   "DIR: Dockerfile is 0644");
	text = slurp(at(2, "out/dir/sub/deep.txt"), &len1);
	ok(text && len1 == 10 && !memcmp(text, "deep file\n", 10), "DIR: nested file content");
	free(text);
	ln = readlink(at(2, "out/escape"), link, sizeof(link) - 1);
	ok(ln > 0 && (link[ln] = '\0', !strcmp(link, "../../../etc/passwd")) &&
	       lstat(at(3, "out/escape"), &st) == 0 && S_ISLNK(st.st_mode),
	   "DIR: the outside link is a link, not followed");
	ok(lstat(at(2, "out/module"), &st) == 0 && S_ISDIR(st.st_mode),
	   "DIR: the submodule is a directory");

	sleep(1); /* a clock in the archive would now differ */
	is_int(archive_commit(repo, &commit, at(3, "b.tar.gz"), NULL), 0,
	       "a second archive of the same commit, without DIR");
	a1 = slurp(at(1, "a.tar.gz"), &len1);
	a2 = slurp(at(3, "b.tar.gz"), &len2);
	ok(a1 && a2 && len1 == len2 && !memcmp(a1, a2, len1),
	   "two archives of one commit are byte-identical (%zu bytes)", len1);
	free(a1);
	free(a2);

	is_int(archive_commit(repo, &commit, at(3, "b.tar.gz"), NULL), 0,
	       "an existing tar file is replaced");

	git_oid_fromstr(&missing, "deadbeefdeadbeefdeadbeefdeadbeefdeadbeef");
	err_clear();
	is_int(archive_commit(repo, &missing, at(4, "c.tar.gz"), NULL), -1,
	       "a missing commit fails");
	ok(strstr(err_msg(), "archive of commit deadbeefdeadbeefdeadbeefdeadbeefdeadbeef: "),
	   "the message names the commit: %s", err_msg());
	ok(access(at(4, "c.tar.gz"), F_OK) < 0, "and no tar file is left");

	/* a directory that is not empty, with a link where "dir" goes */
	mkdir(at(4, "hostile"), 0700);
	mkdir(at(5, "outside"), 0700);
	symlink(at(5, "outside"), at(6, "hostile/dir"));
	err_clear();
	is_int(archive_commit(repo, &commit, at(7, "d.tar.gz"), at(4, "hostile")), -1,
	       "a link planted in DIR where a directory goes fails the archive");
	ok(strstr(err_msg(), "\"dir\": cannot create the directory: File exists"),
	   "the message names the path: %s", err_msg());
	ok(rmdir(at(5, "outside")) == 0, "and nothing was written through the link");
	ok(access(at(7, "d.tar.gz"), F_OK) < 0, "and the tar file is removed");
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

int main(void)
{
	int rc;

	git_libgit2_init();
	if (!mkdtemp(scratch) || git_repository_init(&repo, at(0, "repo.git"), 1) < 0) {
		printf("Bail out! cannot set up %s\n", scratch);
		return 1;
	}
	test_archive();
	git_repository_free(repo);
	git_libgit2_shutdown();
	rc = tap_done();
	nftw(scratch, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return rc;
}
