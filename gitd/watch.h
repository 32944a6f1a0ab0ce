/* watch: the Remote watcher, a process of its own that holds gitd's API
 * credentials and streams the Remotes to gitd.
 *
 * It watches remotes.slipway.dev and gitkube's remotes.gitkube.sh (v1alpha1)
 * in the given namespaces (all when none) through lib/kube, and after every
 * change writes one snapshot line to a pipe: a JSON object
 *   {"remotes": [REMOTE...], "synced": BOOL}
 * where each REMOTE is {"gitkube": BOOL, "metadata": {"namespace", "name"},
 * "spec": {"authorizedKeys", "denyNonFastForwards",
 * "allowDeleteCurrentBranch"}} and "synced" is true once every watch has
 * listed. Bursts are coalesced (at most one line per 50 ms).
 *
 * With a url_base it also keeps each Remote's status up to date, through a
 * merge patch of the status subresource sent only when something would
 * change (so the MODIFIED event of its own patch is a no-op):
 * status.remoteUrl = URL_BASE/NAMESPACE/NAME.git, status.observedGeneration =
 * metadata.generation, and the Ready condition (True "Serving" with message
 * "N authorized keys[; M lines skipped (not OpenSSH public keys)]", or False
 * "NoKeys"); other conditions and status.lastRun are kept.
 * With a url_service the prefix is what that Service shows pushers,
 * ssh://git@HOST[:PORT] (see url_of_service in watch.c: a LoadBalancer's
 * first ingress and port, or a NodePort's node address and nodePort; port
 * 22 is left out); url_base is the fallback while it shows none. When it
 * changes, every Remote's status is rewritten.
 * The connection processes are forked from gitd, which never loads the
 * credentials, so they never hold the API token. */
#ifndef SLIP_GITD_WATCH_H
#define SLIP_GITD_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "authz.h"
#include "buf.h"

/* Largest snapshot line accepted (give it to buf_init for watch_read). */
#define WATCH_LINE_MAX (64u << 20)

struct watch_opts {
	const char *kubeconfig;        /* NULL: kubectl's lookup (then in-cluster) */
	const char *context;           /* NULL: current context */
	const char *const *namespaces; /* NULL-terminated; NULL or empty: all */
	const char *url_base; /* e.g. "ssh://git@gitd.example.com:2222"; NULL: don't write status */
	const char *url_service; /* "NAMESPACE/NAME" of gitd's Service: its address, read
	                            every 10 s, replaces url_base once it has one */
};

/* Forks the watcher. On success *PID is its pid and *FD the non-blocking
 * read end of its pipe (close-on-exec; the caller closes it). The watcher
 * exits when gitd dies (PR_SET_PDEATHSIG) or the pipe breaks. Returns 0 or
 * -1 with err_msg(). */
int watch_start(pid_t *pid, int *fd, const struct watch_opts *opts);

/* Reads what is available on FD into R (a buffer of at most 64 MiB, set up
 * with buf_init(R, WATCH_LINE_MAX) by the caller) and, when at least one whole snapshot line is
 * there, replaces *TABLE with the newest one and sets *SYNCED. Returns 1 when
 * the table was replaced, 0 when no whole line came yet, -1 with err_msg() at
 * end of stream or on a malformed line (the table is then unchanged). */
int watch_read(struct buf *r, int fd, struct authz *table, bool *synced);

#endif
