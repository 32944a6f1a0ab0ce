/* webhook: git hosts' push webhooks, inbound (docs/webhooks.md).
 *
 * Two halves. The listener process (webhook_start) serves POST
 * /hooks/NAMESPACE/REMOTE on --webhook-listen with libmicrohttpd: it holds
 * no credential and no secret, caps the body, and hands each request over
 * the pipeline socket to a pipeline worker (pipesrv.h), whose answer it
 * returns. The worker, which can read the Remote and its Secret, checks the
 * request with the functions below (webhook_verify, webhook_parse), then
 * fetches and deploys (upstream.h).
 *
 * Senders and their headers, from each host's documentation:
 *   GitHub  X-Hub-Signature-256 "sha256=" + hex HMAC-SHA256 of the raw body,
 *           X-GitHub-Event (push, ping), X-GitHub-Delivery
 *           (docs.github.com "Validating webhook deliveries")
 *   GitLab  X-Gitlab-Token: the secret itself, X-Gitlab-Event ("Push Hook"),
 *           X-Gitlab-Event-UUID (docs.gitlab.com "Webhooks")
 *   Gitea, Forgejo  X-Gitea-Signature: hex HMAC-SHA256 of the raw body,
 *           X-Gitea-Event (push), X-Gitea-Delivery
 *   generic X-Slipway-Signature-256 "sha256=" + hex HMAC-SHA256,
 *           X-Slipway-Event (push, ping), X-Slipway-Delivery; the body as
 *           GitHub's push payload (ref, before, after, sender.login). */
#ifndef SLIP_GITD_WEBHOOK_H
#define SLIP_GITD_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <jansson.h>

/* Largest request body; a larger one is answered 413. */
#define WEBHOOK_BODY_MAX (1u << 20)

/* How long a delivery ID is remembered: a repeat within it is refused. */
#define WEBHOOK_DELIVERY_WINDOW_S (24 * 3600)

enum webhook_sender {
	WEBHOOK_GITHUB,
	WEBHOOK_GITLAB,
	WEBHOOK_GITEA,
	WEBHOOK_SLIPWAY,
	WEBHOOK_UNSIGNED /* none of the four headers */
};

/* One request as the listener passes it on (all borrowed). Header values
 * are NULL when absent. */
struct webhook_request {
	const char *github_signature;  /* X-Hub-Signature-256 */
	const char *gitlab_token;      /* X-Gitlab-Token */
	const char *gitea_signature;   /* X-Gitea-Signature */
	const char *slipway_signature; /* X-Slipway-Signature-256 */
	const char *event;             /* the sender's event header */
	const char *delivery;          /* the sender's delivery ID header */
	const unsigned char *body;
	size_t body_len;
};

/* The header names the listener forwards, lowercase, NULL-terminated; the
 * worker's request JSON "headers" object uses these keys. */
extern const char *const webhook_headers[];

/* Fills OUT from the "headers" object HEADERS and BODY (all borrowed from
 * them: OUT is valid while they are): the event and delivery headers of the
 * sender the signature header names. */
void webhook_request_from_json(struct webhook_request *out, const json_t *headers,
                               const unsigned char *body, size_t len);

/* The sender R's signature header names (the first present, in the enum's
 * order). */
enum webhook_sender webhook_sender_of(const struct webhook_request *r);

/* The sender's name for logs: "github", "gitlab", "gitea", "slipway",
 * "unsigned" (static). */
const char *webhook_sender_name(enum webhook_sender s);

/* Checks R against SECRET (LEN bytes): the HMAC-SHA256 of the body keyed by
 * SECRET for GitHub, Gitea and the generic form, the token itself for
 * GitLab; every comparison takes constant time (CRYPTO_memcmp of equal
 * lengths: GitLab's token is compared through its SHA-256). Returns 0 when
 * it matches, or -1 with err_msg() saying what is wrong without quoting the
 * header ("no signature header", "signature does not match", ...). */
int webhook_verify(const struct webhook_request *r, const unsigned char *secret, size_t len);

enum webhook_kind {
	WEBHOOK_PING,  /* GitHub and the generic form's ping */
	WEBHOOK_PUSH,  /* a push, fields below set */
	WEBHOOK_OTHER, /* any other event: answered, ignored */
};

/* What a push event says (strings owned; webhook_push_release). */
struct webhook_push {
	enum webhook_kind kind;
	char *refname; /* "refs/heads/main" */
	char *before;  /* 40 or 64 hex digits (zeros for a new branch) */
	char *after;   /* zeros for a deletion */
	char *sender;  /* the account that pushed, "" when the payload has none:
	                  GitHub's and Gitea's sender.login, GitLab's
	                  user_username */
};

/* Reads R's event header and, for a push, its JSON body into OUT. Returns
 * 0, or -1 with err_msg() for a push whose body is not JSON or lacks ref,
 * before or after (OUT then empty). */
int webhook_parse(struct webhook_push *out, const struct webhook_request *r);

/* Frees what P holds. */
void webhook_push_release(struct webhook_push *p);

/* Settings of the listener process. */
struct webhook_opts {
	const char *listen;      /* ADDR:PORT */
	const char *socket_path; /* the pipeline socket (pipesrv.h) */
	const char *empty_dir;   /* an empty directory to sandbox the process in */
	int report_fd;           /* gitd's report pipe (metrics.h): "webhook REASON" */
};

/* Binds O->listen, then forks the listener process; *PID is its pid. The
 * process closes every descriptor but the listening socket, the report pipe
 * and stderr, enters the sandbox (sandbox.h) and serves until SIGTERM or
 * gitd's death. Returns 0, or -1 with err_msg() (the address cannot be
 * bound, fork failed). */
int webhook_start(pid_t *pid, const struct webhook_opts *o);

#endif
