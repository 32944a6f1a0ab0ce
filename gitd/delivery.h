/* webhook: outbound webhooks, the pipeline's events POSTed to the URLs of a
 * Remote's spec.webhooks[] (docs/webhooks.md, "Outbound webhooks").
 *
 * A pipeline worker starts one sender per push (delivery_sender_start); the
 * pipeline hands it each event's JSON (delivery_send), which only queues a
 * copy, so a slow or dead receiver never slows a stage. The sender's own
 * thread delivers the queue in order, one webhook after the other: a POST
 * of the event JSON, byte for byte what hooks read on stdin, with
 *
 *   Content-Type: application/json
 *   User-Agent: Slipway/VERSION
 *   X-Slipway-Event: EVENT
 *   X-Slipway-Delivery: a random UUID (the same on every attempt)
 *   X-Slipway-Signature-256: sha256=HEX, HMAC-SHA256 of the body keyed by
 *                            the Secret's value (delivery_sign)
 *
 * A delivery succeeds on a 2xx answer. Connection errors, timeouts, 429 and
 * 5xx are retried after 1, 2, 4, 8 and 16 seconds (DELIVERY_ATTEMPTS in
 * all), each attempt limited to DELIVERY_ATTEMPT_TIMEOUT_MS; any other answer
 * ends it, a 3xx too: redirects are never followed. Once a delivery to a
 * webhook has spent its retries, that webhook's later events in the same
 * sender get one attempt each (a 2xx ends this). Proxies from the
 * environment are not used, and only http and https are spoken.
 *
 * Blocked targets: unless the admin allows them (gitd's
 * --webhook-allow-link-local), a URL whose host is a metadata name, or
 * whose address, as resolved when connecting, is link-local or a cloud
 * metadata address (delivery_is_blocked_address), is refused without a
 * connection. The check is made on each address curl is about to connect
 * to, so a name that resolves differently later (DNS rebinding) is caught.
 *
 * Each delivery is logged (webhook_delivered, webhook_failed,
 * webhook_blocked) and recorded in the delivery log, the ConfigMap
 * REMOTE-webhook-deliveries of the Remote's namespace: key deliveries.json,
 * a JSON array of the last DELIVERY_LOG_MAX deliveries, newest first, each
 * {id, event, pipelineRun, webhook, host, statusCode, attempts, durationMs,
 * error, time}. Neither the log nor the ConfigMap holds the URL's path or
 * query, the body or the secret. */
#ifndef SLIP_GITD_DELIVERY_H
#define SLIP_GITD_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "remote.h"

#define DELIVERY_USER_AGENT "Slipway/0.1"
#define DELIVERY_ATTEMPTS 6                  /* the first and five retries */
#define DELIVERY_BACKOFF_FIRST_MS 1000       /* then doubled: 1+2+4+8+16 s in all */
#define DELIVERY_ATTEMPT_TIMEOUT_MS 10000L   /* one attempt, connection included */
#define DELIVERY_QUEUE_MAX 64                /* events waiting in one sender */
#define DELIVERY_LOG_MAX 20                  /* deliveries kept per Remote */
#define DELIVERY_SECRET_MAX 4096             /* bytes of a Secret's key */
#define DELIVERY_SIGNATURE_SIZE (7 + 64 + 1) /* "sha256=", 64 hex digits, NUL */
#define DELIVERY_ID_SIZE 37                  /* a UUID and its NUL */

/* Writes "sha256=" and the lowercase hex HMAC-SHA256 of LEN bytes of BODY
 * keyed by KEY_LEN bytes of KEY (RFC 2104, OpenSSL's HMAC) into OUT.
 * Returns 0, or -1 with err_msg() when OpenSSL fails. */
int delivery_sign(char out[DELIVERY_SIGNATURE_SIZE], const void *key, size_t key_len,
                  const void *body, size_t len);

/* Whether SA (LEN bytes, AF_INET or AF_INET6; others are blocked) is an
 * address deliveries must not reach: IPv4 link-local 169.254.0.0/16 (which
 * holds the metadata service 169.254.169.254), IPv6 link-local fe80::/10,
 * AWS's IPv6 metadata address fd00:ec2::254, and IPv4-mapped IPv6 forms of
 * the IPv4 ones. Loopback and private ranges are allowed. */
bool delivery_is_blocked_address(const struct sockaddr *sa, size_t len);

/* Whether HOST (a URL's host, any case, without brackets or a trailing dot
 * mattering) names a metadata service by name: metadata.google.internal,
 * metadata. */
bool delivery_is_blocked_host(const char *host);

/* Writes the host of URL, with ":PORT" when the URL gives one, into OUT of
 * SIZE bytes: what logs may show (no user, path or query). Returns 0, or -1
 * with err_msg() when URL does not parse as an http or https URL. */
int delivery_url_host(char *out, size_t size, const char *url);

/* Writes a random (version 4) UUID into OUT. Returns 0, or -1 with
 * err_msg() when no randomness was available. */
int delivery_id(char out[DELIVERY_ID_SIZE]);

struct delivery_options {
	const char *kubeconfig; /* NULL: kubectl's lookup, then in-cluster */
	const char *context;    /* NULL: current context */
	bool allow_link_local;  /* deliver to blocked addresses too */
	int report_fd;          /* metrics.h reports ("delivery ok|error|blocked"); <= 0: none */
	long backoff_first_ms;  /* <= 0: DELIVERY_BACKOFF_FIRST_MS */
};

struct delivery_sender;

/* Starts the delivery thread for REMOTE's webhooks (borrowed: the sender
 * keeps a copy of the object and its own API client, made from O; O is
 * copied too). *OUT is NULL, and 0 returned, when REMOTE has no webhooks.
 * Returns 0, or -1 with err_msg() (no memory, no thread, no API client). */
int delivery_sender_start(struct delivery_sender **out, const struct remote *remote,
                          const struct delivery_options *o);

/* Queues EVENT (one of HOOK_EVENTS) with its JSON (hooks/event.schema.json)
 * for the webhooks that want it, RUN being the PipelineRun's name (may be
 * NULL); copies both and returns at once. A full queue drops the event
 * (logged as webhook_dropped). S may be NULL: nothing to do. */
void delivery_send(struct delivery_sender *s, const char *event, const char *run, const char *json);

/* Whether S has a webhook for EVENT (false for NULL). */
bool delivery_wants(const struct delivery_sender *s, const char *event);

/* Waits until every queued event has been delivered or given up (at most
 * DELIVERY_ATTEMPTS attempts each), stops the thread and frees S, wiping the
 * secrets. NULL is allowed. */
void delivery_sender_finish(struct delivery_sender *s);

#endif
