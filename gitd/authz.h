/* authz: which public keys may push to and fetch from which Remotes.
 *
 * The table is built from Remote objects (remotes.slipway.dev and gitkube's
 * remotes.gitkube.sh: spec.authorizedKeys holds OpenSSH public key lines,
 * sshd(8) AUTHORIZED_KEYS FILE FORMAT without options) or, to serve without
 * a cluster, from an authorized-keys file of gitd's own format:
 *
 *     # comment
 *     NAMESPACE/REMOTE[,NAMESPACE/REMOTE...] KEYTYPE BASE64 [COMMENT]
 *
 * A key may use the Remotes that list it, and only those. */
#ifndef SLIP_GITD_AUTHZ_H
#define SLIP_GITD_AUTHZ_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include <libssh/libssh.h>

#include "command.h"
#include "remote.h"

/* A Remote as gitd serves it. */
struct authz_remote {
	char ns[254];                     /* metadata.namespace */
	char name[254];                   /* metadata.name */
	bool is_gitkube;                  /* from remotes.gitkube.sh */
	bool deny_non_fast_forwards;      /* spec.denyNonFastForwards */
	bool allow_delete_current_branch; /* spec.allowDeleteCurrentBranch */
};

/* One authorized public key and the Remotes that list it. */
struct authz_key {
	ssh_key key;          /* public key (owned) */
	char fingerprint[64]; /* "SHA256:<base64>", as ssh-keygen -l prints */
	char comment[128];    /* the key line's comment, or "" */
	size_t *remotes;      /* indexes into authz.remotes (owned) */
	size_t nremotes;
};

struct authz {
	struct authz_remote *remotes;
	size_t nremotes;
	struct authz_key *keys;
	size_t nkeys;
};

/* Sets up an empty table in place. */
void authz_init(struct authz *a);

/* Frees the contents; leaves an empty table. */
void authz_release(struct authz *a);

/* Loads PATH (format above) into OUT, which must be empty. Lines that fail to
 * parse make the whole load fail: -1 with err_msg() naming PATH and the line
 * number. Returns 0. */
int authz_load_file(struct authz *out, const char *path);

/* Adds one Remote (remote.h; borrowed, copied) to A: its namespace, name,
 * gitkube flag, denyNonFastForwards, allowDeleteCurrentBranch and each of
 * its authorized key lines. Key lines that do not parse are skipped and
 * counted in *BAD_KEYS (may be NULL). Returns 0, or -1 with err_msg() when
 * the namespace or name is no valid repository name (repo.h) or memory runs
 * out. */
int authz_add_remote(struct authz *a, const struct remote *r, size_t *bad_keys);

/* Finds KEY (a public key) in A. Returns the entry (borrowed) or NULL. */
const struct authz_key *authz_find_key(const struct authz *a, const ssh_key key);

/* Decides what CMD may reach for key K used with SSH user USER: USER "git"
 * reaches the Remotes K lists; USER "NAMESPACE-REMOTE" (gitkube) only that
 * one. The gitkube path form "~/git/NAMESPACE-REMOTE" is matched against the
 * Remotes K lists. Returns the Remote (borrowed), or NULL with err_msg() set
 * to "repository not found or access denied" for every failure, so the answer
 * tells nothing about Remotes K may not use. */
const struct authz_remote *authz_resolve(const struct authz *a, const struct authz_key *k,
                                         const char *user, const struct command *cmd);

/* Writes KEY's "SHA256:..." fingerprint into BUF of SIZE bytes. Returns 0 or
 * -1 with err_msg(). */
int authz_fingerprint(char *buf, size_t size, const ssh_key key);

#endif
