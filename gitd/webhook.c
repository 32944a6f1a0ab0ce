/* webhook: checking git hosts' push webhooks (for the pipeline worker) and
 * the listener process that receives them (see webhook.h). */
#include "webhook.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "base64.h"
#include "buf.h"
#include "err.h"
#include "event.h"
#include "jsontext.h"
#include "repo.h"
#include "sandbox.h"
#include "banned.h"

/* The worker's answer line, at most. */
#define REPLY_MAX (64u << 10)
/* How long the listener waits for the worker's answer. */
#define REPLY_TIMEOUT_S 30

const char *const webhook_headers[] = {"x-hub-signature-256",
                                       "x-github-event",
                                       "x-github-delivery",
                                       "x-gitlab-token",
                                       "x-gitlab-event",
                                       "x-gitlab-event-uuid",
                                       "x-gitea-signature",
                                       "x-gitea-event",
                                       "x-gitea-delivery",
                                       "x-slipway-event",
                                       "x-slipway-signature-256",
                                       "x-slipway-delivery",
                                       NULL};

/* ---- checks ------------------------------------------------------------ */

static const char *header(const json_t *headers, const char *name)
{
	return json_string_value(json_object_get(headers, name));
}

void webhook_request_from_json(struct webhook_request *out, const json_t *headers,
                               const unsigned char *body, size_t len)
{
	memset(out, 0, sizeof(*out));
	out->github_signature = header(headers, "x-hub-signature-256");
	out->gitlab_token = header(headers, "x-gitlab-token");
	out->gitea_signature = header(headers, "x-gitea-signature");
	out->slipway_signature = header(headers, "x-slipway-signature-256");
	out->body = body;
	out->body_len = len;
	switch (webhook_sender_of(out)) {
	case WEBHOOK_GITHUB:
		out->event = header(headers, "x-github-event");
		out->delivery = header(headers, "x-github-delivery");
		break;
	case WEBHOOK_GITLAB:
		out->event = header(headers, "x-gitlab-event");
		out->delivery = header(headers, "x-gitlab-event-uuid");
		break;
	case WEBHOOK_GITEA:
		out->event = header(headers, "x-gitea-event");
		out->delivery = header(headers, "x-gitea-delivery");
		break;
	case WEBHOOK_SLIPWAY:
		out->event = header(headers, "x-slipway-event");
		out->delivery = header(headers, "x-slipway-delivery");
		break;
	case WEBHOOK_UNSIGNED:
		break;
	}
}

enum webhook_sender webhook_sender_of(const struct webhook_request *r)
{
	if (r->github_signature)
		return WEBHOOK_GITHUB;
	if (r->gitlab_token)
		return WEBHOOK_GITLAB;
	if (r->gitea_signature)
		return WEBHOOK_GITEA;
	if (r->slipway_signature)
		return WEBHOOK_SLIPWAY;
	return WEBHOOK_UNSIGNED;
}

const char *webhook_sender_name(enum webhook_sender s)
{
	static const char *const names[] = {"github", "gitlab", "gitea", "slipway", "unsigned"};

	return names[s];
}

/* Compares hex signature GIVEN with the HMAC-SHA256 of R's body keyed by
 * SECRET, in constant time (case of the hex digits ignored). */
static int check_hmac(const struct webhook_request *r, const char *given,
                      const unsigned char *secret, size_t len)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	char want[2 * SHA256_DIGEST_LENGTH + 1], got[2 * SHA256_DIGEST_LENGTH + 1];
	unsigned int maclen = 0;
	int ret;

	if (strlen(given) != 2 * SHA256_DIGEST_LENGTH)
		return err_set("malformed signature: not %d hex digits", 2 * SHA256_DIGEST_LENGTH);
	if (!HMAC(EVP_sha256(), secret, (int)len, r->body, r->body_len, mac, &maclen) ||
	    maclen != SHA256_DIGEST_LENGTH)
		return err_set("cannot compute HMAC-SHA256");
	for (unsigned i = 0; i < maclen; i++)
		snprintf(want + 2 * i, 3, "%02x", mac[i]);
	for (size_t i = 0; i <= 2 * SHA256_DIGEST_LENGTH; i++)
		got[i] =
		    (given[i] >= 'A' && given[i] <= 'F') ? (char)(given[i] - 'A' + 'a') : given[i];
	ret = CRYPTO_memcmp(want, got, 2 * SHA256_DIGEST_LENGTH) ? -1 : 0;
	OPENSSL_cleanse(mac, sizeof(mac));
	OPENSSL_cleanse(want, sizeof(want));
	if (ret < 0)
		return err_set("signature does not match");
	return 0;
}

int webhook_verify(const struct webhook_request *r, const unsigned char *secret, size_t len)
{
	unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
	const char *sig;
	int ret;

	if (!len)
		return err_set("the webhook secret is empty");
	switch (webhook_sender_of(r)) {
	case WEBHOOK_GITHUB:
	case WEBHOOK_SLIPWAY:
		sig = r->github_signature ? r->github_signature : r->slipway_signature;
		if (strncmp(sig, "sha256=", 7) != 0)
			return err_set("malformed signature: no sha256= prefix");
		return check_hmac(r, sig + 7, secret, len);
	case WEBHOOK_GITEA:
		return check_hmac(r, r->gitea_signature, secret, len);
	case WEBHOOK_GITLAB:
		/* equal lengths, so that the time says nothing of the token's */
		SHA256((const unsigned char *)r->gitlab_token, strlen(r->gitlab_token), a);
		SHA256(secret, len, b);
		ret = CRYPTO_memcmp(a, b, sizeof(a)) ? -1 : 0;
		OPENSSL_cleanse(b, sizeof(b));
		if (ret < 0)
			return err_set("token does not match");
		return 0;
	case WEBHOOK_UNSIGNED:
		break;
	}
	return err_set("no signature header");
}

static bool is_hex_id(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	return (n == 40 || n == 64) && strspn(s, "0123456789abcdef") == n;
}

int webhook_parse(struct webhook_push *out, const struct webhook_request *r)
{
	enum webhook_sender s = webhook_sender_of(r);
	const char *ev = r->event ? r->event : "";
	const char *ref, *before, *after, *sender = NULL;
	json_error_t je;
	json_t *body = NULL;
	int ret = -1;

	memset(out, 0, sizeof(*out));
	if (!strcmp(ev, "ping") && (s == WEBHOOK_GITHUB || s == WEBHOOK_SLIPWAY)) {
		out->kind = WEBHOOK_PING;
		return 0;
	}
	if (s == WEBHOOK_GITLAB ? strcmp(ev, "Push Hook") != 0 : strcmp(ev, "push") != 0) {
		out->kind = WEBHOOK_OTHER;
		return 0;
	}
	out->kind = WEBHOOK_PUSH;
	body = json_loadb((const char *)r->body, r->body_len, 0, &je);
	if (!json_is_object(body)) {
		err_set("push payload is not a JSON object");
		goto out;
	}
	ref = json_string_value(json_object_get(body, "ref"));
	before = json_string_value(json_object_get(body, "before"));
	after = json_string_value(json_object_get(body, "after"));
	if (s == WEBHOOK_GITLAB)
		sender = json_string_value(json_object_get(body, "user_username"));
	else
		sender =
		    json_string_value(json_object_get(json_object_get(body, "sender"), "login"));
	if (!ref || strncmp(ref, "refs/", 5) != 0 || strlen(ref) > 4096) {
		err_set("push payload: no valid ref");
		goto out;
	}
	if (!is_hex_id(before) || !is_hex_id(after)) {
		err_set("push payload: before and after must be object ids");
		goto out;
	}
	out->refname = strdup(ref);
	out->before = strdup(before);
	out->after = strdup(after);
	out->sender = strndup(sender ? sender : "", 256);
	if (!out->refname || !out->before || !out->after || !out->sender) {
		err_set("out of memory");
		goto out;
	}
	ret = 0;
out:
	json_decref(body);
	if (ret < 0)
		webhook_push_release(out);
	return ret;
}

void webhook_push_release(struct webhook_push *p)
{
	free(p->refname);
	free(p->before);
	free(p->after);
	free(p->sender);
	memset(p, 0, sizeof(*p));
}

/* ---- the listener process --------------------------------------------- */

static const struct webhook_opts *opts;

/* One request being received. */
struct request {
	char ns[254], name[254];
	struct buf body;
	bool is_too_big;
};

static void report(const char *reason)
{
	char line[64];
	int n = snprintf(line, sizeof(line), "webhook %s\n", reason);

	if (write(opts->report_fd, line, (size_t)n) < 0) {
		/* gitd is gone; the process dies with it */
	}
}

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned code, const char *reason,
                               const char *text)
{
	char body[1200];
	int n = snprintf(body, sizeof(body), "%s\n", text);
	struct MHD_Response *r = MHD_create_response_from_buffer(
	    (size_t)n < sizeof(body) ? (size_t)n : sizeof(body) - 1, body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	report(reason);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", "text/plain");
	ret = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return ret;
}

/* Splits "/hooks/NS/NAME" into REQ's names. Returns 0 or -1. */
static int parse_url(struct request *req, const char *url)
{
	const char *ns = url + 7, *slash;

	if (strncmp(url, "/hooks/", 7) != 0 || !(slash = strchr(ns, '/')) ||
	    (size_t)(slash - ns) >= sizeof(req->ns) || strlen(slash + 1) >= sizeof(req->name))
		return -1;
	memcpy(req->ns, ns, (size_t)(slash - ns));
	req->ns[slash - ns] = '\0';
	snprintf(req->name, sizeof(req->name), "%s", slash + 1);
	return repo_is_valid_name(req->ns) && repo_is_valid_name(req->name) ? 0 : -1;
}

/* Hands REQ to a pipeline worker and answers what it says. */
static enum MHD_Result forward(struct MHD_Connection *conn, struct request *req)
{
	struct sockaddr_un addr = {0};
	struct timeval tv = {REPLY_TIMEOUT_S, 0};
	json_t *headers = json_object(), *msg = NULL, *reply = NULL;
	char *line = NULL, *b64 = NULL, *reply_text = NULL;
	const char *reason, *text;
	size_t len, got = 0;
	int fd = -1, status;
	enum MHD_Result ret;

	for (size_t i = 0; webhook_headers[i]; i++) {
		const char *v =
		    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, webhook_headers[i]);

		if (v && strlen(v) < 1024)
			json_object_set_new(headers, webhook_headers[i], json_string(v));
	}
	if (base64_encode(&b64, buf_str(&req->body), req->body.len) < 0)
		goto failed;
	msg = json_pack("{s:{s:s, s:s, s:O, s:s}}", "webhook", "namespace", req->ns, "name",
	                req->name, "headers", headers, "body", b64);
	line = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
	if (!line)
		goto failed;
	len = strlen(line);
	line[len++] = '\n'; /* json_dumps leaves room for the NUL */
	addr.sun_family = AF_UNIX;
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", opts->socket_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    send(fd, line, len, MSG_NOSIGNAL) != (ssize_t)len) {
		event_log("error", "webhook_pipeline_unreachable", "{s:s}", "error",
		          strerror(errno));
		goto failed;
	}
	reply_text = malloc(REPLY_MAX);
	if (!reply_text)
		goto failed;
	while (got < REPLY_MAX - 1 && !memchr(reply_text, '\n', got)) {
		ssize_t n = read(fd, reply_text + got, REPLY_MAX - 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	reply = json_loadb(reply_text, got, JSON_DISABLE_EOF_CHECK, NULL);
	status = (int)json_integer_value(json_object_get(reply, "status"));
	reason = json_string_value(json_object_get(reply, "reason"));
	text = json_string_value(json_object_get(reply, "message"));
	if (status < 200 || status > 599 || !reason || !text) {
		event_log("error", "webhook_pipeline_lost", "{s:s, s:s}", "namespace", req->ns,
		          "remote", req->name);
		goto failed;
	}
	ret = respond(conn, (unsigned)status, reason, text);
	goto out;
failed:
	ret = respond(conn, 503, "error", "slipway: the pipeline service is not available");
out:
	if (fd >= 0)
		close(fd);
	free(reply_text);
	json_decref(reply);
	free(line);
	free(b64);
	json_decref(msg);
	json_decref(headers);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **state)
{
	struct request *req = *state;

	if (!req) {
		const char *cl =
		    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
		struct request probe;

		if (strcmp(method, "POST") != 0)
			return respond(conn, 405, "bad_request", "only POST is served");
		if (parse_url(&probe, url) < 0) {
			event_log("warn", "webhook_refused", "{s:s, s:o}", "reason",
			          "unknown_remote", "path", jsontext_lossy(url, 300));
			return respond(conn, 404, "unknown_remote", "not a Remote's hook URL");
		}
		if (cl && strtoull(cl, NULL, 10) > WEBHOOK_BODY_MAX) {
			event_log("warn", "webhook_refused", "{s:s, s:s, s:s}", "reason",
			          "body_too_large", "namespace", probe.ns, "remote", probe.name);
			return respond(conn, 413, "body_too_large", "the body is over 1 MiB");
		}
		req = malloc(sizeof(*req));
		if (!req)
			return MHD_NO;
		*req = probe;
		buf_init(&req->body, WEBHOOK_BODY_MAX);
		req->is_too_big = false;
		*state = req;
		return MHD_YES;
	}
	if (*upload_size) {
		if (!req->is_too_big && buf_add(&req->body, upload, *upload_size) < 0) {
			req->is_too_big = true;
			buf_release(&req->body);
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (req->is_too_big) {
		event_log("warn", "webhook_refused", "{s:s, s:s, s:s}", "reason", "body_too_large",
		          "namespace", req->ns, "remote", req->name);
		return respond(conn, 413, "body_too_large", "the body is over 1 MiB");
	}
	return forward(conn, req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **state,
                         enum MHD_RequestTerminationCode toe)
{
	struct request *req = *state;

	if (!req)
		return;
	buf_release(&req->body);
	free(req);
	*state = NULL;
}

/* Closes every descriptor but those of KEEP (N of them) and 0 to 2. */
static void close_others(const int *keep, size_t n)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		int fd = atoi(e->d_name);
		bool is_kept = fd <= 2 || fd == dirfd(d) || e->d_name[0] == '.';

		for (size_t i = 0; i < n; i++)
			is_kept |= fd == keep[i];
		if (!is_kept)
			close(fd);
	}
	closedir(d);
}

static int bind_listen(const char *spec)
{
	char host[256];
	const char *colon = strrchr(spec, ':');
	struct addrinfo hints = {0}, *ai = NULL;
	int fd = -1, one = 1, rc;

	if (!colon || (size_t)(colon - spec) >= sizeof(host))
		return err_set("--webhook-listen wants ADDR:PORT, not '%s'", spec);
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	rc = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &ai);
	if (rc)
		return err_set("--webhook-listen %s: %s", spec, gai_strerror(rc));
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 64) < 0) {
		err_set("cannot listen on %s: %s", spec, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

static void listener_main(int lfd, pid_t parent)
{
	struct MHD_Daemon *d;
	const char *degraded = NULL;
	int keep[2] = {lfd, opts->report_fd};
	sigset_t set;
	int sig;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	close_others(keep, 2);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL); /* the threads inherit the mask */
	signal(SIGPIPE, SIG_IGN);
	if (sandbox_enter(opts->empty_dir, &degraded) < 0) {
		event_log("error", "webhook_listener_failed", "{s:s}", "error", err_msg());
		_exit(1);
	}
	if (degraded)
		event_log("warn", "sandbox_degraded", "{s:s, s:s}", "process", "webhook listener",
		          "reason", degraded);
	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
	                     NULL, NULL, on_request, NULL, MHD_OPTION_LISTEN_SOCKET, lfd,
	                     MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
	                     MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
	                     MHD_OPTION_END);
	if (!d) {
		event_log("error", "webhook_listener_failed", "{s:s}", "error",
		          "libmicrohttpd did not start");
		_exit(1);
	}
	event_log("info", "webhook_listening", "{s:s}", "address", opts->listen);
	while (sigwait(&set, &sig) == 0 && sig != SIGTERM && sig != SIGINT)
		;
	MHD_stop_daemon(d);
	_exit(0);
}

int webhook_start(pid_t *pid, const struct webhook_opts *o)
{
	pid_t parent = getpid();
	int lfd = bind_listen(o->listen);

	if (lfd < 0)
		return -1;
	opts = o;
	*pid = fork();
	if (*pid < 0) {
		close(lfd);
		return err_set("fork: %s", strerror(errno));
	}
	if (*pid == 0)
		listener_main(lfd, parent);
	close(lfd);
	return 0;
}
