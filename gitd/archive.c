/* archive: a commit's tree as a gzip'd pax tar and, optionally, as files
 * under a directory (see archive.h). The tree is walked once in git's order;
 * every entry goes to the tar and to the directory side by side, the latter
 * only through directory descriptors opened with O_NOFOLLOW. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "archive.h"
#include "err.h"
#include "repo.h"
#include "banned.h"

/* Longest entry name written (a pax header holds any length; this keeps a
 * hostile tree from building huge names) and longest symbolic link target. */
#define ARCHIVE_NAME_MAX 4096
#define ARCHIVE_LINK_MAX 4096

struct walk {
	git_repository *repo;               /* borrowed from the caller */
	struct archive *tar;                /* the tar being written */
	struct archive_entry *e;            /* reused for every entry */
	char commit_hex[GIT_OID_HEXSZ + 1]; /* for messages */
	time_t mtime;                       /* committer time: every entry's mtime */
	uint64_t bytes;                     /* blob bytes written so far */
	uint64_t entries;                   /* entries written so far */
	int dir_fd;                         /* DIR, or -1 when only the tar is written */
	int parent_fd;                      /* directory of parent_root under DIR, or -1 */
	char parent_root[ARCHIVE_NAME_MAX]; /* the tree walk's root parent_fd is for */
	int failed;                         /* err_msg() is set */
};

/* Sets the error for PATH in W's commit and marks the walk failed. */
static int walk_fail(struct walk *w, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int walk_fail(struct walk *w, const char *path, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	w->failed = 1;
	return err_set("archive of commit %s: \"%.512s\": %s", w->commit_hex, path, why);
}

/* A tree entry name is one path component: not empty, ".", ".." or with a
 * "/" (git never writes them; a crafted tree object could). */
static int is_safe_component(const char *name)
{
	return *name && strcmp(name, ".") && strcmp(name, "..") && !strchr(name, '/');
}

/* Points w->parent_fd at the directory ROOT ("" or "a/b/") under DIR, by
 * opening each component from DIR with O_NOFOLLOW, so no symbolic link,
 * whoever made it, is ever followed. */
static int open_parent(struct walk *w, const char *root)
{
	char comp[ARCHIVE_NAME_MAX];
	const char *p = root, *slash;
	int fd, next;

	if (w->parent_fd >= 0 && !strcmp(w->parent_root, root))
		return 0;
	if (w->parent_fd >= 0)
		close(w->parent_fd);
	w->parent_fd = -1;
	if ((fd = fcntl(w->dir_fd, F_DUPFD_CLOEXEC, 0)) < 0)
		return walk_fail(w, root, "dup: %s", strerror(errno));
	while ((slash = strchr(p, '/'))) {
		size_t n = (size_t)(slash - p);

		memcpy(comp, p, n);
		comp[n] = '\0';
		next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0) {
			close(fd);
			return walk_fail(w, root, "cannot open the directory: %s", strerror(errno));
		}
		close(fd);
		fd = next;
		p = slash + 1;
	}
	w->parent_fd = fd;
	snprintf(w->parent_root, sizeof(w->parent_root), "%s", root);
	return 0;
}

/* Writes one tar header for PATH; DATA/LEN is the body of a regular file. */
static int tar_add(struct walk *w, const char *path, mode_t type, mode_t perm, const char *link,
                   const void *data, size_t len)
{
	archive_entry_clear(w->e);
	archive_entry_set_pathname(w->e, path);
	archive_entry_set_filetype(w->e, type);
	archive_entry_set_perm(w->e, perm);
	archive_entry_set_mtime(w->e, w->mtime, 0);
	archive_entry_set_uid(w->e, 0);
	archive_entry_set_gid(w->e, 0);
	archive_entry_set_uname(w->e, "root");
	archive_entry_set_gname(w->e, "root");
	archive_entry_set_size(w->e, type == AE_IFREG ? (la_int64_t)len : 0);
	if (link)
		archive_entry_set_symlink(w->e, link);
	if (archive_write_header(w->tar, w->e) != ARCHIVE_OK)
		return walk_fail(w, path, "tar: %s", archive_error_string(w->tar));
	if (type == AE_IFREG && len > 0 && archive_write_data(w->tar, data, len) != (la_ssize_t)len)
		return walk_fail(w, path, "tar: %s", archive_error_string(w->tar));
	return 0;
}

/* Writes LEN bytes of DATA to the new file NAME in w->parent_fd. */
static int dir_add_file(struct walk *w, const char *path, const char *name, mode_t perm,
                        const char *data, size_t len)
{
	int fd =
	    openat(w->parent_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, perm);
	size_t done = 0;

	if (fd < 0)
		return walk_fail(w, path, "cannot create: %s", strerror(errno));
	while (done < len) {
		ssize_t n = write(fd, data + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			walk_fail(w, path, "write: %s", n < 0 ? strerror(errno) : "no progress");
			close(fd);
			return -1;
		}
		done += (size_t)n;
	}
	if (fchmod(fd, perm) < 0) { /* the umask may have cut the executable bit */
		walk_fail(w, path, "chmod: %s", strerror(errno));
		close(fd);
		return -1;
	}
	if (close(fd) < 0)
		return walk_fail(w, path, "close: %s", strerror(errno));
	return 0;
}

static int dir_add_dir(struct walk *w, const char *path, const char *name)
{
	if (mkdirat(w->parent_fd, name, 0755) < 0)
		return walk_fail(w, path, "cannot create the directory: %s", strerror(errno));
	if (fchmodat(w->parent_fd, name, 0755, 0) < 0)
		return walk_fail(w, path, "chmod: %s", strerror(errno));
	return 0;
}

/* git_tree_walk callback: one entry, pre-order. Returns 0 to go on, 1 to
 * skip a tree's contents (never used), -1 to stop (err_msg() set). */
static int on_entry(const char *root, const git_tree_entry *entry, void *payload)
{
	struct walk *w = payload;
	const char *name = git_tree_entry_name(entry);
	git_filemode_t mode = git_tree_entry_filemode(entry);
	char path[ARCHIVE_NAME_MAX], target[ARCHIVE_LINK_MAX + 1];
	git_blob *blob = NULL;
	const char *data;
	size_t len;
	int n, ret = -1;

	n = snprintf(path, sizeof(path), "%s%s", root, name);
	if (n < 0 || (size_t)n >= sizeof(path))
		return walk_fail(w, root, "path longer than %d bytes", ARCHIVE_NAME_MAX - 1);
	if (!is_safe_component(name))
		return walk_fail(w, path, "unsafe entry name: refused");
	if (++w->entries > ARCHIVE_MAX_ENTRIES)
		return walk_fail(w, path, "more than %d entries", ARCHIVE_MAX_ENTRIES);
	if (w->dir_fd >= 0 && open_parent(w, root) < 0)
		return -1;

	switch (mode) {
	case GIT_FILEMODE_TREE:
	case GIT_FILEMODE_COMMIT: /* a submodule: an empty directory */
		if (tar_add(w, path, AE_IFDIR, 0755, NULL, NULL, 0) < 0)
			return -1;
		if (w->dir_fd >= 0 && dir_add_dir(w, path, name) < 0)
			return -1;
		return 0;
	case GIT_FILEMODE_BLOB:
	case GIT_FILEMODE_BLOB_EXECUTABLE:
	case GIT_FILEMODE_LINK:
		break;
	default:
		return walk_fail(w, path, "unknown file mode %06o", (unsigned)mode);
	}

	if (git_blob_lookup(&blob, w->repo, git_tree_entry_id(entry)) < 0) {
		walk_fail(w, path, "cannot read the blob: %s", repo_git_error());
		goto out;
	}
	data = git_blob_rawcontent(blob);
	len = (size_t)git_blob_rawsize(blob);
	if (len > ARCHIVE_MAX_BYTES - w->bytes) {
		walk_fail(w, path, "the tree holds more than %llu bytes",
		          (unsigned long long)ARCHIVE_MAX_BYTES);
		goto out;
	}
	w->bytes += len;
	if (mode == GIT_FILEMODE_LINK) {
		if (len == 0 || len > ARCHIVE_LINK_MAX || memchr(data, '\0', len)) {
			walk_fail(w, path, "bad symbolic link target: refused");
			goto out;
		}
		memcpy(target, data, len);
		target[len] = '\0';
		if (tar_add(w, path, AE_IFLNK, 0777, target, NULL, 0) < 0)
			goto out;
		/* symlinkat never follows TARGET; nothing is written through it
		 * later, since every open below DIR uses O_NOFOLLOW | O_EXCL */
		if (w->dir_fd >= 0 && symlinkat(target, w->parent_fd, name) < 0) {
			walk_fail(w, path, "cannot create the symbolic link: %s", strerror(errno));
			goto out;
		}
	} else {
		mode_t perm = mode == GIT_FILEMODE_BLOB_EXECUTABLE ? 0755 : 0644;

		if (tar_add(w, path, AE_IFREG, perm, NULL, data, len) < 0)
			goto out;
		if (w->dir_fd >= 0 && dir_add_file(w, path, name, perm, data, len) < 0)
			goto out;
	}
	ret = 0;
out:
	git_blob_free(blob);
	return ret;
}

int archive_commit(git_repository *repo, const git_oid *commit, const char *tar_path,
                   const char *dir)
{
	struct walk w = {.repo = repo, .dir_fd = -1, .parent_fd = -1};
	git_commit *c = NULL;
	git_tree *tree = NULL;
	int tar_fd = -1, ret = -1, rc;

	git_oid_tostr(w.commit_hex, sizeof(w.commit_hex), commit);
	if (git_commit_lookup(&c, repo, commit) < 0) {
		err_set("archive of commit %s: %s", w.commit_hex, repo_git_error());
		return -1;
	}
	if (git_commit_tree(&tree, c) < 0) {
		err_set("archive of commit %s: cannot read its tree: %s", w.commit_hex,
		        repo_git_error());
		goto out;
	}
	w.mtime = (time_t)git_commit_committer(c)->when.time;
	if (dir && (w.dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		err_set("archive of commit %s: cannot open %s: %s", w.commit_hex, dir,
		        strerror(errno));
		goto out;
	}
	/* replaced, not rewritten in place: a new inode with mode 0600 */
	if (unlink(tar_path) < 0 && errno != ENOENT) {
		err_set("archive of commit %s: cannot replace %s: %s", w.commit_hex, tar_path,
		        strerror(errno));
		goto out;
	}
	tar_fd = open(tar_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (tar_fd < 0) {
		err_set("archive of commit %s: cannot create %s: %s", w.commit_hex, tar_path,
		        strerror(errno));
		goto out;
	}
	if (!(w.tar = archive_write_new()) || !(w.e = archive_entry_new())) {
		err_set("out of memory");
		goto out;
	}
	/* "!timestamp": a zero gzip header time, so equal trees give equal bytes;
	 * level 0 (stored blocks, still gzip): the archive is read once, by a
	 * builder on this host or in the cluster, and deflate costs more than
	 * the bytes it saves there (a 2 MB binary: 32 ms at level 1 and 100 ms
	 * at the default level, against 3 ms stored, for 45% fewer bytes) */
	if (archive_write_add_filter_gzip(w.tar) != ARCHIVE_OK ||
	    archive_write_set_filter_option(w.tar, "gzip", "timestamp", NULL) != ARCHIVE_OK ||
	    archive_write_set_filter_option(w.tar, "gzip", "compression-level", "0") !=
	        ARCHIVE_OK ||
	    archive_write_set_format_pax_restricted(w.tar) != ARCHIVE_OK ||
	    archive_write_open_fd(w.tar, tar_fd) != ARCHIVE_OK) {
		err_set("archive of commit %s: tar: %s", w.commit_hex, archive_error_string(w.tar));
		goto out;
	}
	rc = git_tree_walk(tree, GIT_TREEWALK_PRE, on_entry, &w);
	if (rc < 0 || w.failed) {
		if (!w.failed)
			err_set("archive of commit %s: %s", w.commit_hex, repo_git_error());
		goto out;
	}
	if (archive_write_close(w.tar) != ARCHIVE_OK) {
		err_set("archive of commit %s: writing %s: %s", w.commit_hex, tar_path,
		        archive_error_string(w.tar));
		goto out;
	}
	rc = close(tar_fd);
	tar_fd = -1;
	if (rc < 0) {
		err_set("archive of commit %s: writing %s: %s", w.commit_hex, tar_path,
		        strerror(errno));
		goto out;
	}
	ret = 0;
out:
	if (w.tar)
		archive_write_free(w.tar); /* closes the archive, not the descriptor */
	archive_entry_free(w.e);
	if (tar_fd >= 0)
		close(tar_fd);
	if (ret < 0 && tar_path)
		unlink(tar_path);
	if (w.parent_fd >= 0)
		close(w.parent_fd);
	if (w.dir_fd >= 0)
		close(w.dir_fd);
	git_tree_free(tree);
	git_commit_free(c);
	return ret;
}
