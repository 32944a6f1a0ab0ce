/* receive_pack: the server side of `git push`, served with libgit2.
 *
 * Protocol: git Documentation/gitprotocol-pack.txt ("Pushing Data To a
 * Server") and gitprotocol-capabilities.txt. The server advertises its refs
 * with the capabilities report-status, delete-refs, side-band-64k, quiet,
 * atomic, ofs-delta, push-options and agent; reads the commands (and
 * shallow lines, and push options); indexes the packfile into a quarantine
 * directory inside the repository (objects/incoming-XXXXXX) with git_indexer,
 * completing thin packs from the repository; checks that every new tip is
 * connected; calls the pre-receive point; moves the objects in; updates the
 * refs with compare-and-swap on their old values; and answers with
 * report-status, unless a limit refused the whole request while it was
 * read. Like git's receive-pack, it refuses deleting the branch HEAD names
 * unless told otherwise. A push rejected before the refs move leaves the
 * repository as it was. */
#ifndef SLIP_GITD_RECEIVE_PACK_H
#define SLIP_GITD_RECEIVE_PACK_H

#include <stdbool.h>
#include <stddef.h>
#include <git2.h>

#include "pktline.h"

/* One ref update the client asked for ("OLD NEW REFNAME" in the protocol). */
struct receive_command {
	git_oid old_oid;   /* zero: create */
	git_oid new_oid;   /* zero: delete */
	char *refname;     /* full name, e.g. "refs/heads/main" */
	const char *error; /* NULL while accepted, else the reason sent to the
	                      client as "ng REFNAME REASON" (static or owned by
	                      the caller that set it, valid until serve returns) */
};

/* The pre-receive point: called once after the packfile is in quarantine and
 * connectivity is checked, before any ref moves. REPO sees the quarantined
 * objects. CMDS are the commands still accepted; the callback may set a
 * command's error to reject it alone, or return non-zero to reject the whole
 * push, with MESSAGE (NUL-terminated, at most MESSAGE_SIZE bytes including
 * the NUL) as the reason. It may write progress to IO on side-band 2
 * (pkt_progressf). PUSH_OPTIONS are the "git push -o" values (NULL when the
 * client sent none). */
struct receive_check {
	git_repository *repo;
	struct pkt_io *io;
	struct receive_command *cmds;
	size_t ncmds;
	char *const *push_options;
	size_t npush_options;
	const char *quarantine_dir; /* absolute objects/incoming-XXXXXX, for a hook
	                               that runs git (as GIT_QUARANTINE_PATH); NULL
	                               when the push sent no objects */
};
typedef int (*receive_pre_receive_fn)(void *arg, const struct receive_check *check, char *message,
                                      size_t message_size);

/* The post-receive point: called once after the refs moved (only when at
 * least one command got that far), before report-status is sent, with every
 * command of the push in CHECK->cmds: those whose error is NULL were
 * updated. The quarantine is gone (quarantine_dir NULL). It may write
 * progress to CHECK->io on side-band 2; it cannot change the outcome. */
typedef void (*receive_post_receive_fn)(void *arg, const struct receive_check *check);

struct receive_opts {
	bool deny_non_fast_forwards;         /* refuse updates that are not fast-forwards */
	bool deny_deletes;                   /* refuse deletes (delete-refs not advertised) */
	bool allow_delete_current_branch;    /* accept deleting the branch HEAD names */
	unsigned long long max_pack_bytes;   /* refuse a larger packfile; 0: no limit */
	unsigned long long max_object_bytes; /* refuse a pack with an object (or a
	                                        delta result) declared larger,
	                                        before inflating it; 0: no limit */
	size_t max_ref_updates;              /* refuse a push with more commands, before
	                                        they are kept; 0: no limit */
	const char *agent;                   /* "agent=" value, e.g. "slipway/0.1" */
	const char *reflog_name;             /* identity in reflogs, e.g. the key comment */
	const char *reflog_email;            /* e.g. the key fingerprint */
	receive_pre_receive_fn pre_receive;  /* may be NULL */
	void *pre_receive_arg;
	receive_post_receive_fn post_receive; /* may be NULL */
	void *post_receive_arg;
};

/* What happened, for logs and metrics. */
struct receive_stats {
	size_t ncommands;              /* commands received */
	size_t nupdated;               /* refs changed */
	size_t nrejected;              /* commands answered "ng" */
	unsigned long long pack_bytes; /* packfile bytes received */
	size_t pack_objects;           /* objects indexed */
	bool pack_is_closed;           /* the pack holds exactly what the new
	                                  tips reach (indexpack_result's
	                                  is_closed); false when unknown */
};

/* Hard limits of one update request, whatever the options say; more is a
 * protocol error (git has none, but every buffer here has a maximum). */
#define RECEIVE_COMMANDS_MAX 100000
#define RECEIVE_PUSH_OPTIONS_MAX 256

/* Longest refname a command may carry, in bytes; a longer one refuses the
 * request while it is read. git sets no limit, but libgit2 cannot store a
 * longer name (its refname buffers hold 1024 bytes with the NUL), and as a
 * ref is a file under refs/ the file system already refuses a component
 * over 255 bytes (NAME_MAX). This also keeps what the commands of one push
 * can hold to about 1 MB at the default --max-ref-updates of 1000. */
#define RECEIVE_REFNAME_MAX 1023

/* receive_request_read: the request was read to its end, but a limit refuses
 * it as a whole. */
#define RECEIVE_EREFUSED (-2)

/* Longest pre-receive MESSAGE, including the NUL. */
#define RECEIVE_MESSAGE_MAX 256

/* The update request the client sends after the advertisement
 * (gitprotocol-pack.txt, "Reference Update Request and Packfile Transfer"):
 * its commands and the capabilities it asked for on the first one. */
struct receive_request {
	struct receive_command *cmds; /* in the client's order; owned */
	size_t ncmds;
	char **push_options; /* "git push -o" values; NULL when none; owned */
	size_t npush_options;
	int sideband;             /* for pkt_io.sideband: 0, or the payload limit */
	bool wants_report_status; /* report-status */
	bool wants_push_options;  /* push-options: options follow the commands */
	bool is_quiet;            /* quiet: no progress on side-band 2 */
	bool is_atomic;           /* atomic: all refs move or none */
	size_t nrefused;          /* with RECEIVE_EREFUSED: the commands the client sent */
};

/* Reads the update request from IO into OUT (set up in place): optional
 * "shallow OID" lines (ignored: the connectivity check decides), the
 * commands "OLD NEW REFNAME" up to a flush, the first with NUL and
 * capabilities, then the push options up to a flush when push-options was
 * asked for. The stream ending before any command is an empty request
 * (ncmds 0), as in git. Commands are only parsed here (hex ids, a refname of
 * printable bytes); receive_request_check judges them. OPTS (borrowed) gives
 * opts->max_ref_updates, applied while reading, as is RECEIVE_REFNAME_MAX:
 * once a command goes over either, no command is kept and the rest of the
 * request (commands and push options, up to their flushes) is read and
 * skipped, so the client reaches the point where it reads the answer.
 * Returns 0; RECEIVE_EREFUSED when a limit refused the request, with the
 * reason in err_msg() ("too many ref updates (N, the limit is M)" or
 * "refname too long (N bytes, the limit is M): '...'") and OUT holding the
 * capabilities and nrefused but no command; or -1 with err_msg() on
 * malformed input or a read error, OUT then released. Release OUT with
 * receive_request_release(). */
int receive_request_read(struct receive_request *out, struct pkt_io *io,
                         const struct receive_opts *opts);

/* Applies the request-level rules of OPTS to REQ's commands, setting the
 * error of each one refused: a refname that is not a valid name under refs/,
 * a refname given twice, a delete when opts->deny_deletes. */
void receive_request_check(struct receive_request *req, const struct receive_opts *opts);

/* Frees what REQ holds and leaves it empty. */
void receive_request_release(struct receive_request *req);

/* Serves one push on IO for REPO: advertisement, commands, packfile,
 * checks, ref updates, report-status. STATS may be NULL.
 * Returns 0 when the exchange completed (even if refs were rejected: the
 * client learns that from report-status; see stats->nrejected), or -1 with
 * err_msg() on a protocol error or broken connection, or when a limit of
 * receive_request_read refused the whole request (the reason, which the
 * client was sent on side-band 3 or as an "ERR" pkt-line; every command
 * counts as rejected). The quarantine is removed on every path. */
int receive_pack_serve(struct pkt_io *io, git_repository *repo, const struct receive_opts *opts,
                       struct receive_stats *stats);

#endif
