/* pipesrv: the pipeline process of gitd and the connection side of its
 * protocol (docs/architecture.md, "Pipelines").
 *
 * gitd forks the pipeline server at start, like the Remote watcher: it
 * alone loads the API credentials (after the fork; gitd and the connection
 * processes never hold them), marks the runs a dead gitd left behind
 * Interrupted, and listens on a Unix socket in the data directory. Each
 * push's connection process connects at the pre-receive point; the server
 * hands the connection to its spare worker, or forks a worker for it when
 * there is no spare; the worker reads the request (pipesrv_request_parse)
 * and hands it to pipeline_serve (pipeline.h), carrying its messages. Workers
 * die with the server, the server dies with gitd (PR_SET_PDEATHSIG).
 *
 * The spare (o->spare_idle_ms > 0) is a worker forked ahead of its push: it
 * builds its two API clients and opens their connections (GET /version;
 * PIPESRV_SPARE_WARM_DELAY_MS after its fork, or at once when a push comes
 * earlier),
 * then waits on a socketpair for the server to pass it an accepted
 * connection (SCM_RIGHTS). The server then forgets it and forks the next
 * spare at once. A spare not taken within spare_idle_ms is killed by the
 * server (which alone decides, so no connection is passed to a dying
 * spare) and replaced; one that dies untaken is replaced a second later.
 * Debug events pipeline_spare_ready, pipeline_spare_taken,
 * pipeline_spare_recycled; pipeline_spare_cold (warn) when its clients
 * could not connect, and the push then builds its own.
 *
 * The worker takes no path or identity on the connection's word: the
 * connection process parses client bytes, so it may be compromised. It
 * derives the repository from the Remote's name and its own data directory,
 * requires the quarantine inside that repository, and checks the pusher's
 * key against the Remote as it reads it.
 *
 * The protocol is JSON, one object per line, in this order:
 *
 *   conn → worker  {"remote": {"namespace", "name", "gitkube": BOOL},
 *                   "repo": PATH, "quarantine": PATH|null,
 *                   "pusher": {"fingerprint", "comment"},
 *                   "options": ["slipway.wait=false", ...],
 *                   "commands": [{"ref", "before", "after"}, ...]}
 *   worker → conn  {"progress": LINE} ...
 *                  {"verdict": [{"ref", "error": null | REASON}, ...]}
 *   conn → worker  {"updated": [REF, ...]}   (after the refs moved)
 *   worker → conn  {"progress": LINE} ...    (post-receive hooks)
 *                  {"done": true}
 *
 * after which the connection hangs up; with slipway.wait=false the worker
 * goes on to run the pipelines. A connection that goes away early
 * interrupts them. "repo" may be left out (the worker derives it); "comment"
 * is ignored. A first line that pipesrv_request_parse refuses gets no
 * verdict: the worker logs pipeline_request_refused and hangs up, and the
 * connection rejects the push.
 *
 * The webhook listener (webhook.h) sends a first line {"webhook": {...}}
 * instead; that worker answers one line and goes on with upstream.h. The
 * server itself lists the Remotes every PIPESRV_POLL_LIST_S seconds and
 * forks a worker for each upstream whose poll period is due
 * (upstream_poll), one at a time per Remote. Every HOOKPOD_SWEEP_PERIOD_S
 * (and at start) it forks a process that deletes the kept hook Pods of the
 * served namespaces past their keep time (hookpod_sweep), one at a time. */
#ifndef SLIP_GITD_PIPESRV_H
#define SLIP_GITD_PIPESRV_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "pipeline.h"
#include "receive_pack.h"

/* Longest protocol line. */
#define PIPESRV_LINE_MAX (4u << 20)

struct pipesrv_opts {
	const char *socket_path;       /* the Unix socket (created 0600) */
	const char *kubeconfig;        /* NULL: kubectl's lookup, then in-cluster */
	const char *context;           /* NULL: current context */
	const char *const *namespaces; /* served namespaces, NULL-terminated; NULL:
	                                  all (the start-up sweep looks there) */
	const char *data_dir;          /* the repositories (repo.h), resolved */
	const struct pipeline_config *cfg;
	const char *internal_bind;           /* builder endpoint address (buildsrv.h) */
	const char *internal_advertise;      /* how builders reach it; NULL: bind */
	unsigned long long max_pack_bytes;   /* a pack fetched from an upstream, at most */
	unsigned long long max_object_bytes; /* an object in such a pack, at most
	                                        (--max-object-size); 0: no limit */
	bool is_polling;                     /* poll the upstreams of Remotes with
	                                        spec.upstream.pollIntervalSeconds */
	long spare_idle_ms;                  /* a spare worker's life when no push
	                                        takes it (--pipeline-spare-idle);
	                                        0: no spare, each push forks */
};

/* A spare worker's life when no push takes it, unless --pipeline-spare-idle
 * says: short enough that its connections and credentials stay fresh,
 * long enough that an idle server forks once a minute. */
#define PIPESRV_SPARE_IDLE_DEFAULT_MS 60000L

/* How long a new spare waits before it builds its clients (unless a push
 * comes first), so that its TLS handshakes do not take the CPU from the
 * push whose arrival forked it. */
#define PIPESRV_SPARE_WARM_DELAY_MS 250

/* How often the server lists Remotes to learn their poll periods. */
#define PIPESRV_POLL_LIST_S 10

/* Creates the socket, then forks the pipeline server. *PID is its pid.
 * Returns 0 or -1 with err_msg(). */
int pipesrv_start(pid_t *pid, const struct pipesrv_opts *o);

/* Reads the first line of the protocol, DATA of LEN bytes (without the
 * newline), into OUT, taking nothing on the connection's word that the
 * worker can know itself: remote.namespace and remote.name must be
 * Kubernetes names (repo_is_valid_name); OUT->repo_path is derived from them
 * and DATA_DIR (repo_path), and "repo", when given, must equal it;
 * "quarantine", when not null, must be OUT->repo_path/objects/incoming-X
 * (X alphanumeric, one path component); pusher.fingerprint must look like
 * "SHA256:<base64>"; each command needs a valid refname under refs/ (given
 * once) and 40-hex before and after. pusher.comment is ignored (the worker
 * takes the comment from the Remote's key). Checks that need the file
 * system or the API (pipeline_serve) come later. OUT is overwritten; on
 * success it holds at least one command and the caller frees it with
 * pipeline_request_release(). Returns 0, or -1 with err_msg() saying what is
 * wrong (OUT then empty). */
int pipesrv_request_parse(struct pipeline_request *out, const char *data, size_t len,
                          const char *data_dir);

/* The connection side: one per push. */
struct pipesrv_client {
	const char *socket_path;
	const char *ns, *remote; /* the Remote */
	bool is_gitkube;
	const char *repo_path;   /* absolute path of its repository */
	const char *fingerprint; /* the pusher's key */
	const char *comment;
	int fd;        /* -1 until the pre-receive point connects */
	char **errors; /* the worker's reasons, owned: what the
	                  commands' error fields point to */
	size_t nerrors;
};

/* Sets up C in place (fd -1); the caller fills the borrowed fields. */
void pipesrv_client_init(struct pipesrv_client *c);

/* receive_pre_receive_fn (receive_pack.h) with ARG a pipesrv_client: sends
 * the push, relays the progress to the pusher and applies the verdict.
 * When the pipeline process cannot be reached the push is rejected. */
int pipesrv_pre_receive(void *arg, const struct receive_check *check, char *message,
                        size_t message_size);

/* receive_post_receive_fn with ARG a pipesrv_client. */
void pipesrv_post_receive(void *arg, const struct receive_check *check);

/* Hangs up and frees what C holds. */
void pipesrv_client_release(struct pipesrv_client *c);

#endif
