/* repo: where gitd keeps repositories and how it opens them.
 *
 * Each Remote NAMESPACE/REMOTE has one bare repository at
 * DATA_DIR/NAMESPACE/REMOTE.git whose HEAD names refs/heads/main until the
 * first push decides otherwise. */
#ifndef SLIP_GITD_REPO_H
#define SLIP_GITD_REPO_H

#include <stddef.h>
#include <git2.h>

/* Largest path gitd builds for a repository. */
#define REPO_PATH_MAX 4096

/* Builds DATA_DIR/NAMESPACE/REMOTE.git into BUF of SIZE bytes. NAMESPACE and
 * REMOTE must be DNS-1123 names (Kubernetes object names: lowercase
 * alphanumerics, '-' and '.', starting and ending alphanumeric, at most 253
 * bytes), which also keeps "..", "/" and leading "-" out of the path.
 * Returns 0, or -1 with err_msg(). */
int repo_path(char *buf, size_t size, const char *data_dir, const char *ns, const char *remote);

/* Opens the bare repository of NAMESPACE/REMOTE under DATA_DIR into *OUT,
 * creating it (and the NAMESPACE directory) when missing: bare, HEAD ->
 * refs/heads/main, receive.fsckObjects off (gitd checks connectivity
 * itself). Two processes creating the same repository at once both succeed.
 * Caller frees with git_repository_free(). Returns 0, or -1 with err_msg(). */
int repo_open(git_repository **out, const char *data_dir, const char *ns, const char *remote);

/* Removes every quarantine directory (objects/incoming-*, see
 * receive_pack.h) left in the repositories under DATA_DIR by a connection
 * process that was killed. Only for start-up, while no push can be running.
 * Sets *REMOVED to the number removed. Returns 0, or -1 with err_msg() when a
 * directory cannot be read or removed (the sweep goes on with the others). */
int repo_sweep_quarantines(const char *data_dir, unsigned *removed);

/* libgit2's message for the last failure on this thread, or "unknown error"
 * (borrowed; valid until the next libgit2 call). */
const char *repo_git_error(void);

/* Bounds how much of the packs libgit2 keeps mapped in this process: windows
 * of REPO_PACK_WINDOW bytes, at most REPO_PACK_MAPPED in all (libgit2's
 * defaults on 64-bit are 1 GiB and 8 GiB, so a clone or push of a big
 * history held all of its pack in the resident set). Call once after
 * git_libgit2_init(). Returns 0, or -1 with err_msg(). */
#define REPO_PACK_WINDOW (32u << 20)
#define REPO_PACK_MAPPED (128u << 20)
int repo_limit_pack_mappings(void);

/* Returns 1 when NAME is a valid DNS-1123 subdomain (see repo_path), else 0. */
int repo_is_valid_name(const char *name);

#endif
