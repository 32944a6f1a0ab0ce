/* buildsrv: gitd's internal HTTP endpoint for builders (see buildsrv.h):
 * libmicrohttpd's thread authenticates each request, serves the source file
 * and queues log lines and the result under one mutex; the pipeline's thread
 * takes them out. Builds are reference-counted so that a request in flight
 * never sees a freed build. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>
#include <openssl/crypto.h>

#include "buildsrv.h"
#include "buf.h"
#include "clock.h"
#include "err.h"
#include "event.h"
#include "imageref.h"
#include "banned.h"

#define ID_BYTES 8     /* 16 hex digits in the URL */
#define TOKEN_BYTES 32 /* 64 hex digits, the bearer token */
#define ID_HEX (2 * ID_BYTES)
#define TOKEN_HEX (2 * TOKEN_BYTES)

/* Ids of removed builds remembered so their requests get 410, not 404. */
#define TOMBSTONES 256

#define BEARER "Bearer "

enum action { ACT_SOURCE, ACT_LOG, ACT_RESULT };

struct buildsrv_build {
	struct buildsrv_build *next; /* in the server's table */
	struct buildsrv *srv;        /* whose lock guards this build */
	char id[ID_HEX + 1];
	char token[TOKEN_HEX + 1]; /* wiped in buildsrv_remove */
	char source_url[512];
	char report_url[512];
	const char *source_path; /* borrowed from the caller */
	unsigned refs;           /* the table's, plus one per request in flight */
	bool is_removed;         /* out of the table: token dead */
	bool is_done;            /* the result arrived: token dead */
	struct buf partial;      /* a log line still waiting for its "\n" */
	struct buf queue;        /* complete lines, each ending "\n" */
	size_t dropped;          /* lines that did not fit in the queue */
	struct buildsrv_result result;
	unsigned fetches;
	long long source_at; /* clock_now_ms() of the first source request, or 0 */
	long long result_at; /* clock_now_ms() when the result was stored, or 0 */
};

/* A source file still being written (buildsrv_source_hold). */
struct held {
	struct held *next;
	char *path;
};

/* A source request suspended until its file is complete. */
struct waiter {
	struct waiter *next;
	struct MHD_Connection *conn;
};

struct buildsrv {
	struct MHD_Daemon *d;
	pthread_mutex_t lock;                    /* guards everything below and each build */
	struct buildsrv_build *builds;           /* registered builds */
	struct held *held;                       /* sources still being written */
	struct waiter *waiters;                  /* requests suspended for one of them */
	char tombstones[TOMBSTONES][ID_HEX + 1]; /* recently removed ids, a ring */
	unsigned next_tombstone;
	char base[320]; /* "http://HOST:PORT" */
};

/* One POST in flight: its body so far and the build it holds a reference to. */
struct request {
	struct buildsrv_build *b;
	enum action action;
	struct buf body;
};

/* Drops one reference to B (with the lock held); frees B at zero. */
static void build_unref(struct buildsrv_build *b)
{
	if (--b->refs)
		return;
	explicit_bzero(b->token, sizeof(b->token));
	buf_release(&b->partial);
	buf_release(&b->queue);
	free(b);
}

static int random_hex(char *out, size_t nbytes)
{
	unsigned char raw[TOKEN_BYTES];
	size_t got = 0;

	while (got < nbytes) {
		ssize_t n = getrandom(raw + got, nbytes - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_set("getrandom: %s", strerror(errno));
		got += (size_t)n;
	}
	for (size_t i = 0; i < nbytes; i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
	explicit_bzero(raw, sizeof(raw));
	return 0;
}

/* "ADDR:PORT" of the client, for the log. */
static void peer_of(char *out, size_t size, struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	char host[NI_MAXHOST] = "?", port[NI_MAXSERV] = "?";

	if (ci && ci->client_addr)
		getnameinfo(ci->client_addr,
		            ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
		                                                   : sizeof(struct sockaddr_in),
		            host, sizeof(host), port, sizeof(port),
		            NI_NUMERICHOST | NI_NUMERICSERV);
	snprintf(out, size, "%s:%s", host, port);
}

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned code, const char *body)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
	if (code == 405)
		MHD_add_response_header(r, "Allow", strstr(body, "GET") ? "GET" : "POST");
	ret = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return ret;
}

/* Answers CODE and logs the refusal: never the token, only what was asked. */
static enum MHD_Result refuse(struct MHD_Connection *conn, unsigned code, const char *method,
                              const char *url, const char *why)
{
	char peer[NI_MAXHOST + NI_MAXSERV + 2], body[160];

	peer_of(peer, sizeof(peer), conn);
	event_log("warn", "buildsrv_refused", "{s:s, s:s, s:s%, s:i, s:s}", "peer", peer, "method",
	          method, "path", url, strnlen(url, 256), "status", (int)code, "reason", why);
	snprintf(body, sizeof(body), "%u %s\n", code, why);
	return answer(conn, code, body);
}

/* Splits "/builds/ID/ACTION" into ID (16 hex) and ACTION. Returns 0 or -1. */
static int parse_url(char *id, enum action *action, const char *url)
{
	static const char prefix[] = "/builds/";
	const char *p;

	if (strncmp(url, prefix, sizeof(prefix) - 1))
		return -1;
	p = url + sizeof(prefix) - 1;
	if (strspn(p, "0123456789abcdef") != ID_HEX || p[ID_HEX] != '/')
		return -1;
	memcpy(id, p, ID_HEX);
	id[ID_HEX] = '\0';
	p += ID_HEX + 1;
	if (!strcmp(p, "source.tar.gz"))
		*action = ACT_SOURCE;
	else if (!strcmp(p, "log"))
		*action = ACT_LOG;
	else if (!strcmp(p, "result"))
		*action = ACT_RESULT;
	else
		return -1;
	return 0;
}

/* "Authorization: Bearer TOKEN" matches B's token; in constant time over the
 * token's length (the length itself is not a secret). */
static bool is_token_ok(const struct buildsrv_build *b, const char *header)
{
	if (!header || strncmp(header, BEARER, sizeof(BEARER) - 1))
		return false;
	header += sizeof(BEARER) - 1;
	if (strlen(header) != TOKEN_HEX)
		return false;
	return CRYPTO_memcmp(header, b->token, TOKEN_HEX) == 0;
}

static struct buildsrv_build *find(struct buildsrv *s, const char *id)
{
	for (struct buildsrv_build *b = s->builds; b; b = b->next)
		if (!strcmp(b->id, id))
			return b;
	return NULL;
}

static bool is_tombstone(const struct buildsrv *s, const char *id)
{
	for (unsigned i = 0; i < TOMBSTONES; i++)
		if (!strcmp(s->tombstones[i], id))
			return true;
	return false;
}

/* Queues one log line (with the lock held), or counts it as dropped. */
static void queue_line(struct buildsrv_build *b, const char *line, size_t len)
{
	if (b->queue.len + len + 1 > b->queue.max) {
		b->dropped++;
		return;
	}
	if (buf_add(&b->queue, line, len) < 0 || buf_add(&b->queue, "\n", 1) < 0)
		b->dropped++;
}

/* Adds a log body to B (with the lock held): complete lines to the queue,
 * a trailing part to b->partial for the next request. */
static void take_log(struct buildsrv_build *b, char *body, size_t len)
{
	char *p = body, *end = body + len, *nl;

	for (size_t i = 0; i < len; i++)
		if (body[i] == '\0') /* lines are C strings for on_line */
			body[i] = '?';
	while (p < end && (nl = memchr(p, '\n', (size_t)(end - p)))) {
		if (b->partial.len) {
			if (buf_add(&b->partial, p, (size_t)(nl - p)) < 0)
				b->dropped++;
			else
				queue_line(b, buf_str(&b->partial), b->partial.len);
			buf_release(&b->partial);
		} else {
			queue_line(b, p, (size_t)(nl - p));
		}
		p = nl + 1;
	}
	if (p < end && buf_add(&b->partial, p, (size_t)(end - p)) < 0) {
		/* a line longer than BUILDSRV_LOG_MAX: deliver what there is */
		queue_line(b, buf_str(&b->partial), b->partial.len);
		buf_release(&b->partial);
	}
}

/* Copies the JSON string member KEY of DOC into OUT; NULL (or JSON null,
 * when IS_NULLABLE) gives "". A longer value is cut when IS_CUT, else
 * refused. Returns 0 or -1. */
static int copy_member(char *out, size_t size, json_t *doc, const char *key, bool is_nullable,
                       bool is_cut)
{
	json_t *v = json_object_get(doc, key);
	size_t len;

	if (!v || (is_nullable && json_is_null(v))) {
		*out = '\0';
		return v || is_nullable ? 0 : -1;
	}
	if (!json_is_string(v))
		return -1;
	len = json_string_length(v);
	if (len >= size && !is_cut)
		return -1;
	snprintf(out, size, "%s", json_string_value(v));
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' '; /* one line */
	return 0;
}

int buildsrv_result_parse(struct buildsrv_result *out, const char *body, size_t len,
                          const char **why)
{
	json_error_t jerr;
	json_t *doc = json_loadb(body, len, 0, &jerr), *v;
	int ret = -1;

	memset(out, 0, sizeof(*out));
	*why = "the result is not a JSON object";
	if (!doc || !json_is_object(doc))
		goto out;
	*why = "the result lacks a boolean \"succeeded\"";
	if (!json_is_boolean(v = json_object_get(doc, "succeeded")))
		goto out;
	out->succeeded = json_is_true(v);
	*why = "the result lacks an integer \"exitCode\"";
	if (!json_is_integer(v = json_object_get(doc, "exitCode")) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > 255)
		goto out;
	out->exit_code = (int)json_integer_value(v);
	*why = "the result's \"image\" is not a string that fits";
	if (copy_member(out->image, sizeof(out->image), doc, "image", false, false) < 0)
		goto out;
	*why = "the result's \"digest\" is not a sha256 digest or null";
	if (copy_member(out->digest, sizeof(out->digest), doc, "digest", true, false) < 0 ||
	    (*out->digest && !imageref_is_sha256(out->digest)))
		goto out;
	*why = "the result's \"reason\" is not a string that fits";
	if (copy_member(out->reason, sizeof(out->reason), doc, "reason", false, false) < 0)
		goto out;
	*why = "the result's \"message\" is not a string";
	if (copy_member(out->message, sizeof(out->message), doc, "message", true, true) < 0)
		goto out;
	ret = 0;
out:
	json_decref(doc);
	return ret;
}

/* Serves B's source file: opened per request, so a replaced file is served
 * as it is now; MHD closes the descriptor. */
static enum MHD_Result serve_source(struct buildsrv *s, struct buildsrv_build *b,
                                    struct MHD_Connection *conn, const char *url)
{
	struct MHD_Response *r;
	enum MHD_Result ret;
	struct stat st;
	int fd = open(b->source_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		event_log("error", "buildsrv_source", "{s:s, s:s, s:s}", "build", b->id, "path",
		          b->source_path, "error", fd < 0 ? strerror(errno) : "not a regular file");
		if (fd >= 0)
			close(fd);
		return answer(conn, 500, "500 source not available\n");
	}
	if (!(r = MHD_create_response_from_fd((uint64_t)st.st_size, fd))) {
		close(fd);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", "application/gzip");
	ret = MHD_queue_response(conn, 200, r);
	MHD_destroy_response(r);
	pthread_mutex_lock(&s->lock);
	b->fetches++;
	pthread_mutex_unlock(&s->lock);
	event_log("info", "buildsrv_source", "{s:s, s:I}", "build", b->id, "bytes",
	          (json_int_t)st.st_size);
	return ret;
}

/* Whether PATH is a source still being written. The caller holds s->lock. */
static bool is_held(const struct buildsrv *s, const char *path)
{
	for (const struct held *h = s->held; h; h = h->next)
		if (!strcmp(h->path, path))
			return true;
	return false;
}

/* Resumes every suspended source request; each is routed again and either
 * answered or, when its source is still held, suspended again. The caller
 * holds s->lock (MHD_resume_connection only flags the connection and wakes
 * the server's thread). */
static void resume_waiters(struct buildsrv *s)
{
	struct waiter *w, *next;

	for (w = s->waiters; w; w = next) {
		next = w->next;
		MHD_resume_connection(w->conn);
		free(w);
	}
	s->waiters = NULL;
}

int buildsrv_source_hold(struct buildsrv *s, const char *source_path)
{
	struct held *h = calloc(1, sizeof(*h));

	if (!h || !(h->path = strdup(source_path))) {
		free(h);
		return err_set("out of memory");
	}
	pthread_mutex_lock(&s->lock);
	h->next = s->held;
	s->held = h;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

void buildsrv_source_ready(struct buildsrv *s, const char *source_path)
{
	pthread_mutex_lock(&s->lock);
	for (struct held **hp = &s->held; *hp; hp = &(*hp)->next)
		if (!strcmp((*hp)->path, source_path)) {
			struct held *h = *hp;

			*hp = h->next;
			free(h->path);
			free(h);
			break;
		}
	resume_waiters(s);
	pthread_mutex_unlock(&s->lock);
}

/* The first call of a request (headers only): route, method, build, token. */
static enum MHD_Result on_headers(struct buildsrv *s, struct MHD_Connection *conn, const char *url,
                                  const char *method, void **req_cls)
{
	char id[ID_HEX + 1];
	enum action action;
	struct buildsrv_build *b;
	struct request *req;
	const char *auth, *clen, *why = NULL;
	unsigned code = 0;
	size_t max;
	enum MHD_Result ret;

	if (parse_url(id, &action, url) < 0)
		return refuse(conn, 404, method, url, "no such endpoint");
	if (strcmp(method, action == ACT_SOURCE ? "GET" : "POST"))
		return refuse(conn, 405, method, url,
		              action == ACT_SOURCE ? "method not allowed: use GET"
		                                   : "method not allowed: use POST");
	auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	pthread_mutex_lock(&s->lock);
	if (!(b = find(s, id))) {
		code = is_tombstone(s, id) ? 410 : 404;
		why = code == 410 ? "the build was removed" : "no such build";
	} else if (b->is_done) {
		code = 410, why = "the result was already received";
	} else if (!is_token_ok(b, auth)) {
		code = 401, why = auth ? "wrong token" : "no token";
	} else {
		b->refs++;
	}
	pthread_mutex_unlock(&s->lock);
	if (code)
		return refuse(conn, code, method, url, why);

	if (action == ACT_SOURCE) {
		struct waiter *w = NULL;

		pthread_mutex_lock(&s->lock);
		if (!b->source_at)
			b->source_at = clock_now_ms();
		if (is_held(s, b->source_path) && (w = calloc(1, sizeof(*w)))) {
			/* the file is still being written: park the request, keeping
			 * *req_cls NULL so that once resumed it is routed, checked
			 * and answered afresh (the build may be gone by then). Under
			 * the lock, so buildsrv_source_ready cannot resume it first. */
			w->conn = conn;
			w->next = s->waiters;
			s->waiters = w;
			MHD_suspend_connection(conn);
			build_unref(b);
			pthread_mutex_unlock(&s->lock);
			return MHD_YES;
		}
		pthread_mutex_unlock(&s->lock);
		ret = serve_source(s, b, conn, url);
		pthread_mutex_lock(&s->lock);
		build_unref(b);
		pthread_mutex_unlock(&s->lock);
		return ret;
	}
	max = action == ACT_LOG ? BUILDSRV_LOG_MAX : BUILDSRV_RESULT_MAX;
	clen = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if ((clen && strtoull(clen, NULL, 10) > max) || !(req = calloc(1, sizeof(*req)))) {
		pthread_mutex_lock(&s->lock);
		build_unref(b);
		pthread_mutex_unlock(&s->lock);
		return clen && strtoull(clen, NULL, 10) > max
		           ? refuse(conn, 413, method, url, "body too large")
		           : MHD_NO;
	}
	req->b = b;
	req->action = action;
	buf_init(&req->body, max);
	*req_cls = req;
	return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **req_cls)
{
	struct buildsrv *s = cls;
	struct request *req = *req_cls;
	struct buildsrv_result result;
	const char *why = NULL;
	unsigned code = 0;

	if (!req)
		return on_headers(s, conn, url, method, req_cls);
	if (*upload_size) {
		/* a body without Content-Length that grows past the maximum: MHD
		 * cannot answer in the middle of a body, so the connection closes */
		if (buf_add(&req->body, upload_data, *upload_size) < 0) {
			refuse(conn, 413, method, url, "body too large (connection closed)");
			return MHD_NO;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (req->action == ACT_RESULT &&
	    buildsrv_result_parse(&result, buf_str(&req->body), req->body.len, &why) < 0)
		code = 400;
	pthread_mutex_lock(&s->lock);
	if (code) {
		/* answered below, without storing anything */
	} else if (req->b->is_removed) {
		code = 410, why = "the build was removed";
	} else if (req->b->is_done) {
		code = 410, why = "the result was already received";
	} else if (req->action == ACT_LOG) {
		take_log(req->b, req->body.data ? req->body.data : "", req->body.len);
	} else {
		req->b->result = result;
		req->b->is_done = true;
		req->b->result_at = clock_now_ms();
	}
	pthread_mutex_unlock(&s->lock);
	if (code)
		return refuse(conn, code, method, url, why);
	if (req->action == ACT_RESULT)
		event_log("info", "buildsrv_result", "{s:s, s:b, s:s, s:i}", "build", req->b->id,
		          "succeeded", result.succeeded, "reason", result.reason, "exit_code",
		          result.exit_code);
	return answer(conn, 200, "");
}

/* Request finished (answered or aborted): let go of its build. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct buildsrv *s = cls;
	struct request *req = *req_cls;

	if (!req)
		return;
	pthread_mutex_lock(&s->lock);
	build_unref(req->b);
	pthread_mutex_unlock(&s->lock);
	buf_release(&req->body);
	free(req);
	*req_cls = NULL;
}

/* libmicrohttpd's own messages (MHD_USE_ERROR_LOG), as events. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	event_log("warn", "buildsrv_http", "{s:s}", "message", msg);
}

int buildsrv_start(struct buildsrv **out, const char *bind_host, const char *advertise_host)
{
	struct sockaddr_storage ss = {0};
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	const union MHD_DaemonInfo *info;
	struct buildsrv *s = NULL;
	const char *host = advertise_host ? advertise_host : bind_host;
	bool is_v6 = false;
	int n, ret = -1;

	*out = NULL;
	if (inet_pton(AF_INET, bind_host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
	} else if (inet_pton(AF_INET6, bind_host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		is_v6 = true;
	} else {
		return err_set("buildsrv: bind address \"%.64s\" is not an IP literal", bind_host);
	}
	if (!*host || strpbrk(host, "/?#@ []"))
		return err_set("buildsrv: bad advertised host \"%.64s\"", host);
	if (!(s = calloc(1, sizeof(*s))))
		return err_set("out of memory");
	pthread_mutex_init(&s->lock, NULL);
	/* the logger first, or MHD's own stderr logger takes the earlier messages */
	s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
	                            MHD_ALLOW_SUSPEND_RESUME | (is_v6 ? MHD_USE_IPv6 : 0),
	                        0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER,
	                        on_mhd_log, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	                        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
	                        MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_CONNECTION_TIMEOUT,
	                        60u, MHD_OPTION_END);
	if (!s->d) {
		err_set("buildsrv: cannot listen on %s: %s", bind_host,
		        errno ? strerror(errno) : "libmicrohttpd failed");
		goto out;
	}
	info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	if (!info || !info->port) {
		err_set("buildsrv: cannot read the port bound on %s", bind_host);
		goto out;
	}
	n = snprintf(s->base, sizeof(s->base),
	             strchr(host, ':') ? "http://[%s]:%u" : "http://%s:%u", host,
	             (unsigned)info->port);
	if (n < 0 || (size_t)n >= sizeof(s->base)) {
		err_set("buildsrv: advertised host too long");
		goto out;
	}
	*out = s;
	s = NULL;
	ret = 0;
out:
	buildsrv_free(s);
	return ret;
}

void buildsrv_free(struct buildsrv *s)
{
	struct buildsrv_build *b, *next;

	if (!s)
		return;
	/* MHD must not stop with suspended connections: let go of every hold,
	 * so the waiting requests are answered (or closed by the stop) */
	pthread_mutex_lock(&s->lock);
	while (s->held) {
		struct held *h = s->held;

		s->held = h->next;
		free(h->path);
		free(h);
	}
	resume_waiters(s);
	pthread_mutex_unlock(&s->lock);
	if (s->d)
		MHD_stop_daemon(s->d); /* completes every request: no references left */
	for (b = s->builds; b; b = next) {
		next = b->next;
		b->is_removed = true;
		build_unref(b);
	}
	pthread_mutex_destroy(&s->lock);
	free(s);
}

int buildsrv_add(struct buildsrv_build **out, struct buildsrv *s, const char *source_path)
{
	struct buildsrv_build *b = calloc(1, sizeof(*b));

	*out = NULL;
	if (!b)
		return err_set("out of memory");
	b->refs = 1;
	b->srv = s;
	b->source_path = source_path;
	buf_init(&b->partial, BUILDSRV_LOG_MAX);
	buf_init(&b->queue, BUILDSRV_QUEUE_MAX);
	if (random_hex(b->token, TOKEN_BYTES) < 0) {
		free(b);
		return -1;
	}
	pthread_mutex_lock(&s->lock);
	do {
		if (random_hex(b->id, ID_BYTES) < 0) {
			pthread_mutex_unlock(&s->lock);
			explicit_bzero(b->token, sizeof(b->token));
			free(b);
			return -1;
		}
	} while (find(s, b->id) || is_tombstone(s, b->id));
	snprintf(b->source_url, sizeof(b->source_url), "%s/builds/%s/source.tar.gz", s->base,
	         b->id);
	snprintf(b->report_url, sizeof(b->report_url), "%s/builds/%s", s->base, b->id);
	b->next = s->builds;
	s->builds = b;
	pthread_mutex_unlock(&s->lock);
	*out = b;
	return 0;
}

const char *buildsrv_source_url(const struct buildsrv_build *b)
{
	return b->source_url;
}

const char *buildsrv_report_url(const struct buildsrv_build *b)
{
	return b->report_url;
}

const char *buildsrv_token(const struct buildsrv_build *b)
{
	return b->token;
}

size_t buildsrv_drain(struct buildsrv_build *b, void (*on_line)(void *arg, const char *line),
                      void *arg)
{
	struct buf lines;
	size_t dropped, count = 0;
	pthread_mutex_t *lock = &b->srv->lock;
	char *p, *nl, note[64];

	pthread_mutex_lock(lock);
	lines = b->queue;
	buf_init(&b->queue, BUILDSRV_QUEUE_MAX);
	dropped = b->dropped;
	b->dropped = 0;
	pthread_mutex_unlock(lock);

	for (p = lines.data; p && (nl = strchr(p, '\n')); p = nl + 1) {
		*nl = '\0';
		on_line(arg, p);
		count++;
	}
	buf_release(&lines);
	if (dropped) {
		snprintf(note, sizeof(note), "[%zu log lines dropped]", dropped);
		on_line(arg, note);
		count++;
	}
	return count;
}

bool buildsrv_result(struct buildsrv_result *out, struct buildsrv_build *b)
{
	pthread_mutex_t *lock = &b->srv->lock;
	bool is_done;

	pthread_mutex_lock(lock);
	is_done = b->is_done;
	if (is_done)
		*out = b->result;
	pthread_mutex_unlock(lock);
	return is_done;
}

unsigned buildsrv_source_fetches(const struct buildsrv_build *b)
{
	pthread_mutex_t *lock = &b->srv->lock;
	unsigned n;

	pthread_mutex_lock(lock);
	n = b->fetches;
	pthread_mutex_unlock(lock);
	return n;
}

void buildsrv_times(long long *source_at, long long *result_at, const struct buildsrv_build *b)
{
	pthread_mutex_lock(&b->srv->lock);
	*source_at = b->source_at;
	*result_at = b->result_at;
	pthread_mutex_unlock(&b->srv->lock);
}

void buildsrv_remove(struct buildsrv *s, struct buildsrv_build *b)
{
	struct buildsrv_build **pp;

	if (!b)
		return;
	pthread_mutex_lock(&s->lock);
	for (pp = &s->builds; *pp; pp = &(*pp)->next)
		if (*pp == b) {
			*pp = b->next;
			break;
		}
	snprintf(s->tombstones[s->next_tombstone], ID_HEX + 1, "%s", b->id);
	s->next_tombstone = (s->next_tombstone + 1) % TOMBSTONES;
	b->is_removed = true;
	/* dead now, whatever a request in flight still holds */
	explicit_bzero(b->token, sizeof(b->token));
	build_unref(b);
	pthread_mutex_unlock(&s->lock);
}
