/* archive: the pushed tree of a commit as files, for the builder and for
 * hooks. The tree is read with libgit2 (it may still be in the push's
 * quarantine: open the repository with it as an alternate object directory)
 * and written with libarchive as a gzip'd POSIX (pax) tar (stored blocks,
 * uncompressed: it is read once, nearby, and deflate costs more time than
 * its bytes would take), the format
 * builder/source.c unpacks (docs/builder.md, "Sources"). */
#ifndef SLIP_GITD_ARCHIVE_H
#define SLIP_GITD_ARCHIVE_H

#include <git2.h>

/* Largest tree written, whatever its objects say: more is an error, so a
 * push cannot fill gitd's disk through the archive. */
#define ARCHIVE_MAX_BYTES (4ull << 30) /* sum of blob sizes */
#define ARCHIVE_MAX_ENTRIES 1000000

/* Writes the tree of COMMIT (a commit id in REPO) to TAR_PATH as a gzip'd
 * pax tar (created with mode 0600, replaced if it exists) and, when DIR is
 * not NULL, also as files under DIR (an existing, empty directory). Entries
 * are regular files (mode 0644, or 0755 when git records the executable
 * bit), directories (0755) and symbolic links (target as recorded, never
 * followed while writing); submodules (gitlinks) become empty directories.
 * Names are git's paths: no absolute paths and no ".." components can occur,
 * but any entry that would escape DIR is refused anyway. Times are the
 * commit's committer time, owner 0:0, so equal trees give equal archives.
 * Returns 0, or -1 with err_msg() naming the commit and the path that failed
 * (missing object, over a limit, I/O error). On failure TAR_PATH is removed;
 * DIR may hold part of the tree. */
int archive_commit(git_repository *repo, const git_oid *commit, const char *tar_path,
                   const char *dir);

#endif
