/* kube: Kubernetes REST client (see kube.h). One libcurl easy handle per
 * client keeps the connection alive between calls; watches stream
 * newline-delimited JSON events through the same handle. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>

#include "buf.h"
#include "clock.h"
#include "err.h"
#include "kube.h"
#include "log.h"
#include "banned.h"

#define KUBE_MAX_RESPONSE (64u << 20) /* one response body, e.g. a big list */
#define KUBE_MAX_EVENT (16u << 20)    /* one watch event line */
#define KUBE_MAX_PATH 4096
#define KUBE_MAX_TOKEN (64u << 10)

struct kube_client {
	struct kube_config cfg;
	struct kube_client_opts opts;
	CURL *curl;
	char *token;                   /* current bearer token (secret), or NULL */
	struct stat token_st;          /* token_file as last read */
	struct curl_slist *connect_to; /* CURLOPT_CONNECT_TO for tls-server-name */
	char *base_url;                /* scheme://host:port used in URLs */
	unsigned int seed;             /* jitter */
	struct kube_status status;
};

static void wipe_free(char *s)
{
	if (!s)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

static int curl_global_ready(void)
{
	static int done;

	/* curl_global_init is thread-safe since 7.84 when the TLS backend is;
	 * callers create their first client before starting threads anyway. */
	if (!done) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return err_set("cannot initialise libcurl");
		done = 1;
	}
	return 0;
}

/* Reads the token file when it is new or changed since the last read: a
 * projected ServiceAccount token is rotated by swapping a symlink, which
 * changes the inode stat() sees. */
static int kube_refresh_token(struct kube_client *c)
{
	struct stat st;
	struct buf b;
	FILE *f;
	char chunk[4096];
	size_t n;
	int ret = -1;

	if (!c->cfg.token_file)
		return 0;
	if (stat(c->cfg.token_file, &st) < 0) {
		if (c->token)
			return 0; /* keep the last good one during a swap */
		return err_set("cannot read token file %s: %s", c->cfg.token_file, strerror(errno));
	}
	if (c->token && st.st_ino == c->token_st.st_ino && st.st_mtime == c->token_st.st_mtime &&
	    st.st_size == c->token_st.st_size)
		return 0;
	buf_init(&b, KUBE_MAX_TOKEN);
	f = fopen(c->cfg.token_file, "re");
	if (!f) {
		err_set("cannot read token file %s: %s", c->cfg.token_file, strerror(errno));
		goto out;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (buf_add(&b, chunk, n) < 0) {
			err_set("token file %s is larger than %u bytes", c->cfg.token_file,
			        KUBE_MAX_TOKEN);
			goto out;
		}
	while (b.len &&
	       (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r' || b.data[b.len - 1] == ' '))
		b.data[--b.len] = '\0';
	if (!b.len) {
		err_set("token file %s is empty", c->cfg.token_file);
		goto out;
	}
	wipe_free(c->token);
	c->token = buf_detach(&b);
	if (!c->token) {
		err_set("out of memory");
		goto out;
	}
	c->token_st = st;
	ret = 0;
out:
	if (f)
		fclose(f);
	explicit_bzero(chunk, sizeof(chunk));
	if (b.data)
		explicit_bzero(b.data, b.len);
	buf_release(&b);
	return ret;
}

/* Splits "https://host:port" into host and port (default 443). */
static int split_server(const char *server, char **host, int *port, const char **scheme_end)
{
	const char *p = strstr(server, "://"), *h, *colon, *end;

	if (!p)
		return err_set("server url \"%s\" has no scheme", server);
	*scheme_end = p;
	h = p + 3;
	end = h + strcspn(h, "/");
	if (*h == '[') {
		const char *rb = memchr(h, ']', (size_t)(end - h));

		if (!rb)
			return err_set("server url \"%s\" is malformed", server);
		colon = rb[1] == ':' ? rb + 1 : NULL;
	} else {
		colon = memchr(h, ':', (size_t)(end - h));
	}
	*port = colon ? atoi(colon + 1) : (strncmp(server, "http://", 7) ? 443 : 80);
	*host = strndup(h, (size_t)((colon ? colon : end) - h));
	if (!*host)
		return err_set("out of memory");
	return 0;
}

int kube_client_new(struct kube_client **out, struct kube_config *cfg,
                    const struct kube_client_opts *opts)
{
	struct kube_client *c;
	size_t len;

	*out = NULL;
	if (!cfg->server || !*cfg->server)
		return err_set("kubernetes configuration has no server");
	if (curl_global_ready() < 0)
		return -1;
	c = calloc(1, sizeof(*c));
	if (!c)
		return err_set("out of memory");
	if (opts)
		c->opts = *opts;
	if (c->opts.max_retries <= 0)
		c->opts.max_retries = 8;
	if (c->opts.backoff_base_ms <= 0)
		c->opts.backoff_base_ms = 250;
	if (c->opts.backoff_max_ms <= 0)
		c->opts.backoff_max_ms = 8000;
	if (c->opts.timeout_ms <= 0)
		c->opts.timeout_ms = 30000;
	if (!c->opts.user_agent)
		c->opts.user_agent = "slipway/0.1";
	c->curl = curl_easy_init();
	if (!c->curl) {
		free(c);
		return err_set("cannot create a libcurl handle");
	}
	c->cfg = *cfg;
	len = strlen(c->cfg.server);
	while (len && c->cfg.server[len - 1] == '/')
		c->cfg.server[--len] = '\0';
	c->base_url = strdup(c->cfg.server);
	if (!c->base_url)
		goto oom;
	if (c->cfg.tls_server_name && *c->cfg.tls_server_name) {
		/* Verify and send SNI for tls-server-name while connecting to the
		 * real host: address the URL to that name, and redirect the
		 * connection with CURLOPT_CONNECT_TO. */
		char *host = NULL;
		int port = 0;
		const char *se = NULL;
		struct buf b;

		if (split_server(c->cfg.server, &host, &port, &se) < 0) {
			curl_easy_cleanup(c->curl);
			free(c->base_url);
			free(c);
			return -1;
		}
		buf_init(&b, KUBE_MAX_PATH);
		if (buf_addf(&b, "%s:%d:%s:%d", c->cfg.tls_server_name, port, host, port) < 0) {
			free(host);
			buf_release(&b);
			goto oom;
		}
		c->connect_to = curl_slist_append(NULL, buf_str(&b));
		buf_release(&b);
		if (buf_add(&b, c->cfg.server, (size_t)(se - c->cfg.server)) < 0 ||
		    buf_addf(&b, "://%s:%d", c->cfg.tls_server_name, port) < 0) {
			free(host);
			buf_release(&b);
			goto oom;
		}
		free(c->base_url);
		c->base_url = buf_detach(&b);
		free(host);
		if (!c->connect_to || !c->base_url)
			goto oom;
	}
	if (c->cfg.token && !(c->token = strdup(c->cfg.token)))
		goto oom;
	c->seed = (unsigned int)time(NULL) ^ (unsigned int)getpid() ^ (unsigned int)(size_t)c;
	kube_config_init(cfg);
	*out = c;
	return 0;
oom:
	/* cfg still owns its contents: give them back untouched */
	curl_easy_cleanup(c->curl);
	free(c->base_url);
	curl_slist_free_all(c->connect_to);
	free(c);
	return err_set("out of memory");
}

int kube_client_new_default(struct kube_client **out, const char *kubeconfig, const char *context)
{
	struct kube_config cfg;
	int ret;

	*out = NULL;
	kube_config_init(&cfg);
	ret = kube_config_load_default(&cfg, kubeconfig, context);
	if (ret == 0)
		ret = kube_client_new(out, &cfg, NULL);
	kube_config_release(&cfg);
	return ret;
}

void kube_client_free(struct kube_client *c)
{
	if (!c)
		return;
	curl_easy_cleanup(c->curl);
	wipe_free(c->token);
	curl_slist_free_all(c->connect_to);
	free(c->base_url);
	kube_config_release(&c->cfg);
	free(c);
}

const struct kube_status *kube_client_status(const struct kube_client *c)
{
	return &c->status;
}

const char *kube_client_namespace(const struct kube_client *c)
{
	return c->cfg.namespace && *c->cfg.namespace ? c->cfg.namespace : "default";
}

const struct kube_config *kube_client_config(const struct kube_client *c)
{
	return &c->cfg;
}

/* ---- status mapping ---------------------------------------------------- */

/* The reason the API server would give for a bare HTTP code (after
 * apimachinery's errors.NewGenericServerResponse). */
static const char *reason_for_code(long code)
{
	switch (code) {
	case 400:
		return "BadRequest";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "NotFound";
	case 405:
		return "MethodNotAllowed";
	case 406:
		return "NotAcceptable";
	case 409:
		return "Conflict";
	case 410:
		return "Expired";
	case 413:
		return "RequestEntityTooLarge";
	case 415:
		return "UnsupportedMediaType";
	case 422:
		return "Invalid";
	case 429:
		return "TooManyRequests";
	case 500:
		return "InternalError";
	case 503:
		return "ServiceUnavailable";
	case 504:
		return "Timeout";
	default:
		return code >= 500 ? "InternalError" : "Unknown";
	}
}

/* Copies S into DST of SIZE, turning control characters into spaces so a
 * hostile body cannot forge log lines. */
static void copy_clean(char *dst, size_t size, const char *s, size_t len)
{
	size_t i, n = len < size - 1 ? len : size - 1;

	for (i = 0; i < n; i++)
		dst[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i];
	dst[n] = '\0';
}

int kube_status_to_code(const struct kube_status *st)
{
	if (st->code >= 200 && st->code < 300)
		return 0;
	switch (st->code) {
	case 401:
		return KUBE_EUNAUTHORIZED;
	case 403:
		return KUBE_EFORBIDDEN;
	case 404:
		return KUBE_ENOTFOUND;
	case 409:
		return strcmp(st->reason, "AlreadyExists") ? KUBE_ECONFLICT : KUBE_EEXISTS;
	case 400:
	case 422:
		return KUBE_EINVALID;
	case 410:
		return KUBE_EGONE;
	case 408:
	case 504:
		return KUBE_ETIMEOUT;
	default:
		return KUBE_ERROR;
	}
}

int kube_status_from_response(struct kube_status *out, long code, const char *body, size_t len)
{
	json_t *j = NULL;
	const char *kind, *reason, *message;

	memset(out, 0, sizeof(*out));
	out->code = code;
	if (code >= 200 && code < 300)
		return 0;
	if (body && len)
		j = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
	kind = json_string_value(json_object_get(j, "kind"));
	reason = json_string_value(json_object_get(j, "reason"));
	message = json_string_value(json_object_get(j, "message"));
	if (kind && !strcmp(kind, "Status") && (reason || message)) {
		copy_clean(out->reason, sizeof(out->reason), reason ? reason : "",
		           reason ? strlen(reason) : 0);
		if (!reason || !*reason)
			copy_clean(out->reason, sizeof(out->reason), reason_for_code(code),
			           strlen(reason_for_code(code)));
		if (message)
			copy_clean(out->message, sizeof(out->message), message, strlen(message));
		else
			snprintf(out->message, sizeof(out->message), "%s", out->reason);
	} else {
		const char *r = reason_for_code(code);

		copy_clean(out->reason, sizeof(out->reason), r, strlen(r));
		if (body && len) {
			char snippet[200];

			copy_clean(snippet, sizeof(snippet), body, len);
			snprintf(out->message, sizeof(out->message), "HTTP %ld: %s", code, snippet);
		} else {
			snprintf(out->message, sizeof(out->message), "HTTP %ld %s", code, r);
		}
	}
	json_decref(j);
	return kube_status_to_code(out);
}

/* ---- paths ------------------------------------------------------------- */

static int add_escaped(struct buf *b, const char *s)
{
	char *e = curl_easy_escape(NULL, s, 0);
	int ret;

	if (!e)
		return err_set("out of memory");
	ret = buf_adds(b, e);
	curl_free(e);
	return ret;
}

static int is_segment(const char *s, size_t n)
{
	if (!n || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '.'))
			return 0;
	return 1;
}

static int path_into(struct buf *b, const char *gvr, const char *ns, const char *name,
                     const char *sub)
{
	const char *s1, *s2, *s3;

	if (!gvr || !(s1 = strchr(gvr, '/')))
		return err_set("resource \"%s\" is not VERSION/RESOURCE or GROUP/VERSION/RESOURCE",
		               gvr ? gvr : "(null)");
	s2 = strchr(s1 + 1, '/');
	s3 = s2 ? strchr(s2 + 1, '/') : NULL;
	if (s3 || !is_segment(gvr, (size_t)(s1 - gvr)) ||
	    !is_segment(s1 + 1, s2 ? (size_t)(s2 - s1 - 1) : strlen(s1 + 1)) ||
	    (s2 && !is_segment(s2 + 1, strlen(s2 + 1))))
		return err_set("resource \"%s\" is not VERSION/RESOURCE or GROUP/VERSION/RESOURCE",
		               gvr);
	if (s2) {
		if (buf_adds(b, "/apis/") < 0 || buf_add(b, gvr, (size_t)(s2 - gvr)) < 0)
			return -1;
	} else {
		if (buf_adds(b, "/api/") < 0 || buf_add(b, gvr, (size_t)(s1 - gvr)) < 0)
			return -1;
	}
	if (ns && *ns && (buf_adds(b, "/namespaces/") < 0 || add_escaped(b, ns) < 0))
		return -1;
	if (buf_adds(b, "/") < 0 || buf_adds(b, s2 ? s2 + 1 : s1 + 1) < 0)
		return -1;
	if (name) {
		if (!*name || !strcmp(name, ".") || !strcmp(name, ".."))
			return err_set("invalid object name \"%s\"", name);
		if (buf_adds(b, "/") < 0 || add_escaped(b, name) < 0)
			return -1;
	}
	if (sub && *sub && (buf_adds(b, "/") < 0 || add_escaped(b, sub) < 0))
		return -1;
	return 0;
}

int kube_path(char *out, size_t size, const char *gvr, const char *ns, const char *name,
              const char *subresource)
{
	struct buf b;
	int ret = -1;

	buf_init(&b, KUBE_MAX_PATH);
	if (path_into(&b, gvr, ns, name, subresource) < 0)
		goto out;
	if (b.len >= size) {
		err_set("api path too long");
		goto out;
	}
	memcpy(out, b.data, b.len + 1);
	ret = 0;
out:
	buf_release(&b);
	return ret;
}

/* Appends "?k=v" or "&k=v" (value escaped) when VALUE is set. */
static int add_query(struct buf *b, const char *key, const char *value)
{
	if (!value || !*value)
		return 0;
	if (buf_adds(b, strchr(buf_str(b), '?') ? "&" : "?") < 0 || buf_adds(b, key) < 0 ||
	    buf_adds(b, "=") < 0)
		return -1;
	return add_escaped(b, value);
}

static int add_query_long(struct buf *b, const char *key, long value)
{
	char n[32];

	if (value <= 0)
		return 0;
	snprintf(n, sizeof(n), "%ld", value);
	return add_query(b, key, n);
}

/* ---- requests ---------------------------------------------------------- */

struct response {
	struct buf body;
	long retry_after_s; /* from a Retry-After header, or -1 */
};

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	struct response *r = arg;

	if (buf_add(&r->body, data, size * n) < 0)
		return 0; /* makes curl fail with CURLE_WRITE_ERROR */
	return size * n;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
	struct response *r = arg;
	size_t len = size * n;

	if (len > 12 && !strncasecmp(data, "Retry-After:", 12)) {
		char v[32];

		copy_clean(v, sizeof(v), data + 12, len - 12);
		r->retry_after_s = strtol(v, NULL, 10);
	}
	return len;
}

/* Frees a header list, wiping it first: one entry carries the token. */
static void free_headers(struct curl_slist *l)
{
	for (struct curl_slist *e = l; e; e = e->next)
		explicit_bzero(e->data, strlen(e->data));
	curl_slist_free_all(l);
}

/* Sets the options every request shares: URL, TLS, auth, headers. HDRS
 * receives the header list to free after the transfer. */
static int setup_handle(struct kube_client *c, const char *method, const char *path,
                        const char *content_type, const char *accept, struct curl_slist **hdrs)
{
	struct buf url, h;
	CURL *k = c->curl;
	struct curl_slist *l = NULL, *t;
	int ret = -1;

	buf_init(&url, KUBE_MAX_PATH * 2);
	buf_init(&h, KUBE_MAX_TOKEN + 64);
	*hdrs = NULL;
	if (kube_refresh_token(c) < 0)
		goto out;
	curl_easy_reset(k);
	if (buf_adds(&url, c->base_url) < 0 || buf_adds(&url, path) < 0)
		goto out;
	curl_easy_setopt(k, CURLOPT_URL, url.data);
	curl_easy_setopt(k, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(k, CURLOPT_USERAGENT, c->opts.user_agent);
	curl_easy_setopt(k, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(k, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(k, CURLOPT_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(k, CURLOPT_CUSTOMREQUEST, method);
	if (!strcmp(method, "GET"))
		curl_easy_setopt(k, CURLOPT_HTTPGET, 1L);
	if (c->cfg.ca.data) {
		struct curl_blob blob = {c->cfg.ca.data, c->cfg.ca.len, CURL_BLOB_COPY};

		curl_easy_setopt(k, CURLOPT_CAINFO_BLOB, &blob);
	}
	if (c->cfg.client_cert.data) {
		struct curl_blob blob = {c->cfg.client_cert.data, c->cfg.client_cert.len,
		                         CURL_BLOB_COPY};

		curl_easy_setopt(k, CURLOPT_SSLCERT_BLOB, &blob);
		curl_easy_setopt(k, CURLOPT_SSLCERTTYPE, "PEM");
	}
	if (c->cfg.client_key.data) {
		struct curl_blob blob = {c->cfg.client_key.data, c->cfg.client_key.len,
		                         CURL_BLOB_COPY};

		curl_easy_setopt(k, CURLOPT_SSLKEY_BLOB, &blob);
		curl_easy_setopt(k, CURLOPT_SSLKEYTYPE, "PEM");
	}
	if (c->cfg.insecure_skip_tls_verify) {
		curl_easy_setopt(k, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(k, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (c->connect_to)
		curl_easy_setopt(k, CURLOPT_CONNECT_TO, c->connect_to);
	if (buf_addf(&h, "Accept: %s", accept) < 0)
		goto out;
	if (!(t = curl_slist_append(l, h.data)))
		goto oom;
	l = t;
	buf_release(&h);
	if (content_type) {
		if (buf_addf(&h, "Content-Type: %s", content_type) < 0)
			goto out;
		if (!(t = curl_slist_append(l, h.data)))
			goto oom;
		l = t;
		buf_release(&h);
	}
	if (c->token) {
		if (buf_addf(&h, "Authorization: Bearer %s", c->token) < 0)
			goto out;
		t = curl_slist_append(l, h.data);
		explicit_bzero(h.data, h.len);
		if (!t)
			goto oom;
		l = t;
	}
	/* Without this curl sends "Expect: 100-continue" for large bodies. */
	if (!(t = curl_slist_append(l, "Expect:")))
		goto oom;
	l = t;
	curl_easy_setopt(k, CURLOPT_HTTPHEADER, l);
	*hdrs = l;
	l = NULL;
	ret = 0;
	goto out;
oom:
	err_set("out of memory");
out:
	free_headers(l);
	buf_release(&url);
	buf_release(&h);
	return ret;
}

/* Sleeps for the backoff of ATTEMPT (0-based): a random time in
 * [d/2, d] with d = min(max, base * 2^attempt), or at least RETRY_AFTER_S. */
static void backoff_sleep(struct kube_client *c, int attempt, long retry_after_s,
                          const volatile sig_atomic_t *stop)
{
	long d = c->opts.backoff_base_ms, ms;
	struct timespec ts;

	for (int i = 0; i < attempt && d < c->opts.backoff_max_ms; i++)
		d *= 2;
	if (d > c->opts.backoff_max_ms)
		d = c->opts.backoff_max_ms;
	ms = d / 2 + (long)(rand_r(&c->seed) % (unsigned int)(d / 2 + 1));
	if (retry_after_s > 0 && retry_after_s * 1000 > ms)
		ms = retry_after_s * 1000 > 60000 ? 60000 : retry_after_s * 1000;
	/* sleep in slices so a watch's stop flag is honoured promptly */
	while (ms > 0 && !(stop && *stop)) {
		long slice = ms > 200 ? 200 : ms;

		ts.tv_sec = 0;
		ts.tv_nsec = slice * 1000000L;
		nanosleep(&ts, NULL);
		ms -= slice;
	}
}

static int is_retryable_curl(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
		return 1;
	default:
		return 0;
	}
}

static int is_retryable_code(long code)
{
	return code == 429 || (code >= 500 && code != 501 && code != 505);
}

static void set_transport_status(struct kube_client *c, CURLcode rc, const char *errbuf)
{
	memset(&c->status, 0, sizeof(c->status));
	snprintf(c->status.reason, sizeof(c->status.reason), "%s",
	         rc == CURLE_OPERATION_TIMEDOUT ? "Timeout" : "ConnectionFailed");
	snprintf(c->status.message, sizeof(c->status.message), "%s: %s", c->cfg.server,
	         *errbuf ? errbuf : curl_easy_strerror(rc));
}

/* One request with retries. On success the 2xx body is left in R. Returns 0
 * or a named negative code, with c->status and err_msg() set. */
static int perform(struct kube_client *c, const char *method, const char *path,
                   const char *content_type, const char *body, size_t body_len, struct response *r)
{
	char errbuf[CURL_ERROR_SIZE];
	struct curl_slist *hdrs = NULL;
	int attempt, ret = -1;

	for (attempt = 0;; attempt++) {
		CURLcode rc;
		long code = 0;

		buf_release(&r->body);
		r->retry_after_s = -1;
		if (setup_handle(c, method, path, content_type, "application/json", &hdrs) < 0) {
			memset(&c->status, 0, sizeof(c->status));
			snprintf(c->status.message, sizeof(c->status.message), "%s", err_msg());
			return -1;
		}
		errbuf[0] = '\0';
		curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, errbuf);
		curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, c->opts.timeout_ms);
		curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, r);
		curl_easy_setopt(c->curl, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(c->curl, CURLOPT_HEADERDATA, r);
		if (body) {
			curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
			curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE,
			                 (curl_off_t)body_len);
		}
		rc = curl_easy_perform(c->curl);
		free_headers(hdrs);
		hdrs = NULL;
		if (rc == CURLE_OK) {
			curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &code);
			ret =
			    kube_status_from_response(&c->status, code, r->body.data, r->body.len);
			if (ret == 0)
				return 0;
			if (!is_retryable_code(code) || attempt >= c->opts.max_retries)
				break;
			log_debug("%s %s: %ld %s, retrying", method, path, code, c->status.reason);
		} else {
			set_transport_status(c, rc, errbuf);
			ret = rc == CURLE_OPERATION_TIMEDOUT ? KUBE_ETIMEOUT : KUBE_ERROR;
			if (rc == CURLE_WRITE_ERROR)
				snprintf(c->status.message, sizeof(c->status.message),
				         "%s: response larger than %u bytes", c->cfg.server,
				         KUBE_MAX_RESPONSE);
			if (!is_retryable_curl(rc) || attempt >= c->opts.max_retries)
				break;
			log_debug("%s %s: %s, retrying", method, path, c->status.message);
		}
		backoff_sleep(c, attempt, r->retry_after_s, NULL);
	}
	err_set("%s %s: %s", method, path, c->status.message);
	return ret;
}

/* Sends a request with an optional JSON body and decodes a JSON response. */
static int request_json(json_t **out, struct kube_client *c, const char *method, const char *path,
                        const char *content_type, const json_t *body)
{
	struct response r;
	char *payload = NULL;
	json_error_t jerr;
	int ret;

	if (out)
		*out = NULL;
	buf_init(&r.body, KUBE_MAX_RESPONSE);
	if (body) {
		payload = json_dumps(body, JSON_COMPACT);
		if (!payload)
			return err_set("cannot encode the request body as JSON");
	}
	ret = perform(c, method, path, content_type, payload, payload ? strlen(payload) : 0, &r);
	free(payload);
	if (ret < 0)
		goto out;
	if (out && r.body.len) {
		*out = json_loadb(r.body.data, r.body.len, 0, &jerr);
		if (!*out) {
			snprintf(c->status.message, sizeof(c->status.message),
			         "%s %s: response is not valid JSON: %s", method, path, jerr.text);
			ret = err_set("%s", c->status.message);
		}
	}
out:
	buf_release(&r.body);
	return ret;
}

int kube_request(json_t **out, struct kube_client *c, const char *method, const char *path,
                 const char *content_type, const json_t *body)
{
	return request_json(out, c, method, path,
	                    body && !content_type ? "application/json" : content_type, body);
}

/* Sends METHOD to the object or collection GVR/NS[/NAME[/SUBRESOURCE]]. */
static int resource_request(json_t **out, struct kube_client *c, const char *method,
                            const char *gvr, const char *ns, const char *name,
                            const char *subresource, const json_t *body)
{
	struct buf p;
	int ret;

	buf_init(&p, KUBE_MAX_PATH);
	ret = path_into(&p, gvr, ns, name, subresource);
	if (ret == 0)
		ret = request_json(out, c, method, p.data, body ? "application/json" : NULL, body);
	buf_release(&p);
	return ret;
}

int kube_get(json_t **out, struct kube_client *c, const char *gvr, const char *ns, const char *name)
{
	return resource_request(out, c, "GET", gvr, ns, name, NULL, NULL);
}

static int list_path(struct buf *p, const char *gvr, const char *ns, const struct kube_list_opts *o,
                     const char *cont)
{
	if (path_into(p, gvr, ns, NULL, NULL) < 0)
		return -1;
	if (!o)
		return 0;
	if (add_query(p, "labelSelector", o->label_selector) < 0 ||
	    add_query(p, "fieldSelector", o->field_selector) < 0 ||
	    add_query_long(p, "limit", o->limit) < 0 || add_query(p, "continue", cont) < 0 ||
	    (!cont && add_query(p, "resourceVersion", o->resource_version) < 0))
		return -1;
	return 0;
}

int kube_list_page(json_t **out, struct kube_client *c, const char *gvr, const char *ns,
                   const struct kube_list_opts *opts)
{
	struct buf p;
	int ret;

	buf_init(&p, KUBE_MAX_PATH * 2);
	ret = list_path(&p, gvr, ns, opts, opts ? opts->continue_token : NULL);
	if (ret == 0)
		ret = request_json(out, c, "GET", p.data, NULL, NULL);
	buf_release(&p);
	return ret;
}

int kube_list(json_t **out, struct kube_client *c, const char *gvr, const char *ns,
              const struct kube_list_opts *opts)
{
	struct kube_list_opts o = {0};
	json_t *all = NULL, *page = NULL;
	char *cont = NULL;
	int restarted = 0, ret;

	*out = NULL;
	if (opts)
		o = *opts;
	o.continue_token = NULL;
	for (;;) {
		const char *next;

		ret = kube_list_page(&page, c, gvr, ns, &o);
		if (ret == KUBE_EGONE && o.continue_token && !restarted) {
			/* the continue token expired: start over, once */
			restarted = 1;
			json_decref(all);
			all = NULL;
			o.continue_token = NULL;
			continue;
		}
		if (ret < 0)
			goto out;
		if (!json_is_array(json_object_get(page, "items"))) {
			ret = err_set("list of %s: response has no items", gvr);
			goto out;
		}
		if (!all) {
			all = page;
		} else {
			if (json_array_extend(json_object_get(all, "items"),
			                      json_object_get(page, "items")) < 0) {
				ret = err_set("out of memory");
				goto out;
			}
			/* the list's resourceVersion is the last page's */
			json_object_set(all, "metadata", json_object_get(page, "metadata"));
			json_decref(page);
		}
		page = NULL;
		next = json_string_value(
		    json_object_get(json_object_get(all, "metadata"), "continue"));
		if (!next || !*next)
			break;
		free(cont);
		cont = strdup(next);
		if (!cont) {
			ret = err_set("out of memory");
			goto out;
		}
		o.continue_token = cont;
	}
	json_object_del(json_object_get(all, "metadata"), "continue");
	*out = all;
	all = NULL;
	ret = 0;
out:
	free(cont);
	json_decref(page);
	json_decref(all);
	return ret;
}

int kube_create(json_t **out, struct kube_client *c, const char *gvr, const char *ns,
                const json_t *obj)
{
	return resource_request(out, c, "POST", gvr, ns, NULL, NULL, obj);
}

int kube_replace(json_t **out, struct kube_client *c, const char *gvr, const char *ns,
                 const char *name, const char *subresource, const json_t *obj)
{
	return resource_request(out, c, "PUT", gvr, ns, name, subresource, obj);
}

int kube_update_status(json_t **out, struct kube_client *c, const char *gvr, const char *ns,
                       const char *name, const json_t *obj)
{
	return kube_replace(out, c, gvr, ns, name, "status", obj);
}

int kube_delete(json_t **out, struct kube_client *c, const char *gvr, const char *ns,
                const char *name, const char *propagation)
{
	struct buf p;
	int ret;

	buf_init(&p, KUBE_MAX_PATH);
	ret = path_into(&p, gvr, ns, name, NULL);
	if (ret == 0)
		ret = add_query(&p, "propagationPolicy", propagation);
	if (ret == 0)
		ret = request_json(out, c, "DELETE", p.data, NULL, NULL);
	buf_release(&p);
	return ret;
}

int kube_patch(json_t **out, struct kube_client *c, const char *gvr, const char *ns,
               const char *name, enum kube_patch_type type, const json_t *patch,
               const struct kube_patch_opts *opts)
{
	static const char *const types[] = {
	    [KUBE_PATCH_STRATEGIC] = "application/strategic-merge-patch+json",
	    [KUBE_PATCH_MERGE] = "application/merge-patch+json",
	    [KUBE_PATCH_JSON] = "application/json-patch+json",
	    [KUBE_PATCH_APPLY] = "application/apply-patch+yaml",
	};
	struct kube_patch_opts o = {0};
	struct buf p;
	int ret;

	if ((unsigned)type > KUBE_PATCH_APPLY)
		return err_set("unknown patch type %d", (int)type);
	if (opts)
		o = *opts;
	if (type == KUBE_PATCH_APPLY && (!o.field_manager || !*o.field_manager))
		return err_set("server-side apply needs a field manager");
	buf_init(&p, KUBE_MAX_PATH);
	ret = path_into(&p, gvr, ns, name, o.subresource);
	if (ret == 0)
		ret = add_query(&p, "fieldManager", o.field_manager);
	if (ret == 0 && o.force && type == KUBE_PATCH_APPLY)
		ret = add_query(&p, "force", "true");
	if (ret == 0 && o.dry_run)
		ret = add_query(&p, "dryRun", "All");
	if (ret == 0)
		ret = request_json(out, c, "PATCH", p.data, types[type], patch);
	buf_release(&p);
	return ret;
}

/* ---- watch ------------------------------------------------------------- */

const char *kube_event_name(enum kube_event ev)
{
	static const char *const names[] = {"added",    "modified", "deleted",
	                                    "bookmark", "listed",   "synced"};

	return (unsigned)ev < sizeof(names) / sizeof(names[0]) ? names[ev] : "unknown";
}

struct watch_state {
	struct kube_client *c;
	kube_watch_fn fn;
	void *arg;
	const volatile sig_atomic_t *stop;
	struct buf line;          /* the partial event line */
	char *rv;                 /* last resourceVersion seen */
	int fn_ret;               /* non-zero once FN asked to stop */
	int gone;                 /* an ERROR event said 410: list again */
	int events;               /* events delivered on this connection */
	long long deadline_ms;    /* CLOCK_MONOTONIC ms to give up at, or 0 */
	struct kube_status error; /* an ERROR event other than 410 */
};

static int watch_set_rv(struct watch_state *w, const char *rv)
{
	char *n;

	if (!rv || !*rv)
		return 0;
	n = strdup(rv);
	if (!n)
		return err_set("out of memory");
	free(w->rv);
	w->rv = n;
	return 0;
}

/* Handles one line of the watch stream: a JSON WatchEvent {"type", "object"}
 * (Kubernetes API concepts, "Efficient detection of changes"). Returns -1 to
 * end this connection. */
static int watch_line(struct watch_state *w, const char *s, size_t len)
{
	json_t *ev, *obj;
	const char *type;
	enum kube_event kind;
	int ret = 0;

	while (len && (s[len - 1] == '\r' || s[len - 1] == ' '))
		len--;
	if (!len)
		return 0;
	ev = json_loadb(s, len, 0, NULL);
	type = json_string_value(json_object_get(ev, "type"));
	obj = json_object_get(ev, "object");
	if (!type || !json_is_object(obj)) {
		log_warn("watch: ignoring a malformed event of %zu bytes", len);
		goto out;
	}
	if (!strcmp(type, "ERROR")) {
		char *body = json_dumps(obj, JSON_COMPACT);
		long code = (long)json_integer_value(json_object_get(obj, "code"));

		kube_status_from_response(&w->error, code ? code : 500, body,
		                          body ? strlen(body) : 0);
		free(body);
		if (code == 410)
			w->gone = 1;
		ret = -1;
		goto out;
	}
	if (!strcmp(type, "ADDED"))
		kind = KUBE_EVENT_ADDED;
	else if (!strcmp(type, "MODIFIED"))
		kind = KUBE_EVENT_MODIFIED;
	else if (!strcmp(type, "DELETED"))
		kind = KUBE_EVENT_DELETED;
	else if (!strcmp(type, "BOOKMARK"))
		kind = KUBE_EVENT_BOOKMARK;
	else {
		log_warn("watch: ignoring an event of unknown type");
		goto out;
	}
	if (watch_set_rv(w, json_string_value(json_object_get(json_object_get(obj, "metadata"),
	                                                      "resourceVersion"))) < 0) {
		ret = -1;
		goto out;
	}
	w->events++;
	w->fn_ret = w->fn(w->arg, kind, obj);
	if (w->fn_ret)
		ret = -1;
out:
	json_decref(ev);
	return ret;
}

static int watch_should_stop(const struct watch_state *w)
{
	return (w->stop && *w->stop) || (w->deadline_ms && clock_now_ms() >= w->deadline_ms);
}

static size_t on_watch_body(char *data, size_t size, size_t n, void *arg)
{
	struct watch_state *w = arg;
	size_t len = size * n;
	char *nl;

	long code = 0;

	if (buf_add(&w->line, data, len) < 0) {
		log_warn("watch: event larger than %u bytes, reconnecting", KUBE_MAX_EVENT);
		buf_release(&w->line);
		return 0;
	}
	/* a failed watch answers with a Status body: keep it whole */
	curl_easy_getinfo(w->c->curl, CURLINFO_RESPONSE_CODE, &code);
	if (code != 200)
		return len;
	while ((nl = memchr(w->line.data, '\n', w->line.len))) {
		size_t l = (size_t)(nl - w->line.data);

		if (watch_line(w, w->line.data, l) < 0)
			return 0; /* aborts the transfer */
		buf_consume(&w->line, l + 1);
	}
	return len;
}

static int on_watch_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct watch_state *w = arg;

	return watch_should_stop(w);
}

/* Lists GVR and delivers LISTED for each item, then SYNCED; remembers the
 * list's resourceVersion. */
static int watch_relist(struct watch_state *w, const char *gvr, const char *ns,
                        const struct kube_watch_opts *o)
{
	struct kube_list_opts lo = {
	    .label_selector = o->label_selector, .field_selector = o->field_selector, .limit = 500};
	json_t *list = NULL, *item;
	size_t i;
	int ret;

	ret = kube_list(&list, w->c, gvr, ns, &lo);
	if (ret < 0)
		return ret;
	ret = watch_set_rv(w, json_string_value(json_object_get(json_object_get(list, "metadata"),
	                                                        "resourceVersion")));
	if (ret < 0)
		goto out;
	json_array_foreach(json_object_get(list, "items"), i, item)
	{
		w->fn_ret = w->fn(w->arg, KUBE_EVENT_LISTED, item);
		if (w->fn_ret)
			goto out;
	}
	w->fn_ret = w->fn(w->arg, KUBE_EVENT_SYNCED, NULL);
out:
	json_decref(list);
	return ret;
}

/* One watch connection from w->rv until the server ends it, it fails or the
 * caller stops. Returns 0 when the stream ended or broke (reconnect),
 * KUBE_EGONE to list again, or another negative code to give up. */
static int watch_once(struct watch_state *w, const char *gvr, const char *ns,
                      const struct kube_watch_opts *o, long timeout_s)
{
	struct buf p;
	struct curl_slist *hdrs = NULL;
	char errbuf[CURL_ERROR_SIZE];
	CURLcode rc;
	long code = 0;
	int ret = -1;

	buf_init(&p, KUBE_MAX_PATH * 2);
	if (path_into(&p, gvr, ns, NULL, NULL) < 0 || add_query(&p, "watch", "1") < 0 ||
	    add_query(&p, "allowWatchBookmarks", "true") < 0 ||
	    add_query(&p, "resourceVersion", w->rv) < 0 ||
	    add_query_long(&p, "timeoutSeconds", timeout_s) < 0 ||
	    add_query(&p, "labelSelector", o->label_selector) < 0 ||
	    add_query(&p, "fieldSelector", o->field_selector) < 0)
		goto out;
	if (setup_handle(w->c, "GET", p.data, NULL, "application/json", &hdrs) < 0)
		goto out;
	errbuf[0] = '\0';
	buf_release(&w->line);
	w->gone = 0;
	w->events = 0;
	memset(&w->error, 0, sizeof(w->error));
	curl_easy_setopt(w->c->curl, CURLOPT_ERRORBUFFER, errbuf);
	/* the server ends the watch after timeout_s; this bounds a dead peer */
	curl_easy_setopt(w->c->curl, CURLOPT_TIMEOUT_MS, (timeout_s + 30) * 1000L);
	curl_easy_setopt(w->c->curl, CURLOPT_WRITEFUNCTION, on_watch_body);
	curl_easy_setopt(w->c->curl, CURLOPT_WRITEDATA, w);
	curl_easy_setopt(w->c->curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(w->c->curl, CURLOPT_XFERINFOFUNCTION, on_watch_progress);
	curl_easy_setopt(w->c->curl, CURLOPT_XFERINFODATA, w);
	rc = curl_easy_perform(w->c->curl);
	curl_easy_getinfo(w->c->curl, CURLINFO_RESPONSE_CODE, &code);
	if (w->fn_ret || watch_should_stop(w)) {
		ret = 0;
		goto out;
	}
	if (code && code != 200) {
		/* the error body went through on_watch_body: it is in w->line */
		ret = kube_status_from_response(&w->c->status, code, w->line.data, w->line.len);
		if (ret == KUBE_EGONE || !is_retryable_code(code))
			goto out;
		ret = 0;
		goto out;
	}
	if (w->gone) {
		w->c->status = w->error;
		ret = KUBE_EGONE;
		goto out;
	}
	if (rc != CURLE_OK && rc != CURLE_WRITE_ERROR)
		log_debug("watch %s: %s", gvr, *errbuf ? errbuf : curl_easy_strerror(rc));
	ret = 0;
out:
	free_headers(hdrs);
	buf_release(&p);
	return ret;
}

int kube_watch(struct kube_client *c, const char *gvr, const char *ns,
               const struct kube_watch_opts *opts, kube_watch_fn fn, void *arg)
{
	struct kube_watch_opts o = {0};
	struct watch_state w = {0};
	long timeout_s;
	int ret = 0, failures = 0, need_list;

	if (opts)
		o = *opts;
	timeout_s = o.timeout_seconds > 0 ? o.timeout_seconds : 300;
	w.c = c;
	w.fn = fn;
	w.arg = arg;
	w.stop = o.stop;
	buf_init(&w.line, KUBE_MAX_EVENT);
	if (o.max_duration_ms > 0)
		w.deadline_ms = clock_now_ms() + o.max_duration_ms;
	need_list = !o.resource_version || !*o.resource_version;
	if (!need_list && watch_set_rv(&w, o.resource_version) < 0) {
		ret = -1;
		goto out;
	}
	while (!watch_should_stop(&w)) {
		long t = timeout_s;

		if (w.deadline_ms && (w.deadline_ms - clock_now_ms()) / 1000 + 1 < t)
			t = (long)((w.deadline_ms - clock_now_ms()) / 1000) + 1;
		if (need_list) {
			ret = watch_relist(&w, gvr, ns, &o);
			if (w.fn_ret) {
				ret = w.fn_ret;
				goto out;
			}
			if (ret == KUBE_EFORBIDDEN || ret == KUBE_ENOTFOUND ||
			    ret == KUBE_EUNAUTHORIZED || ret == KUBE_EINVALID)
				goto out;
			if (ret < 0) {
				log_warn("watch %s: list failed: %s", gvr, err_msg());
				backoff_sleep(c, failures++, -1, w.stop);
				continue;
			}
			need_list = 0;
			failures = 0;
		}
		ret = watch_once(&w, gvr, ns, &o, t);
		if (w.fn_ret) {
			ret = w.fn_ret;
			goto out;
		}
		if (ret == KUBE_EGONE) {
			log_debug("watch %s: resourceVersion %s expired, listing again", gvr,
			          w.rv ? w.rv : "");
			need_list = 1;
			continue;
		}
		if (ret < 0) {
			err_set("watch %s: %s", gvr, c->status.message);
			goto out;
		}
		/* A stream that delivered events ended normally (timeoutSeconds);
		 * one that delivered nothing may be a server going down: back off. */
		if (w.events)
			failures = 0;
		else if (!watch_should_stop(&w))
			backoff_sleep(c, failures < 6 ? failures++ : failures, -1, w.stop);
	}
	ret = w.deadline_ms && clock_now_ms() >= w.deadline_ms && !(w.stop && *w.stop)
	          ? KUBE_ETIMEOUT
	          : 0;
out:
	free(w.rv);
	buf_release(&w.line);
	return ret;
}

/* ---- streams ---------------------------------------------------------- */

struct stream_state {
	struct kube_client *c;
	struct buf line; /* the line being received (or, on an error, the body) */
	void (*on_line)(void *arg, const char *line);
	void *arg;
	const volatile sig_atomic_t *stop;
	long long deadline_ms; /* 0: none */
	bool is_error;         /* a non-2xx answer: keep the body for the Status */
};

static void stream_deliver(struct stream_state *s, size_t len)
{
	char saved = s->line.data[len];

	s->line.data[len] = '\0';
	if (len && s->line.data[len - 1] == '\r')
		s->line.data[len - 1] = '\0';
	s->on_line(s->arg, s->line.data);
	s->line.data[len] = saved;
}

static size_t on_stream_body(char *data, size_t size, size_t n, void *arg)
{
	struct stream_state *s = arg;
	size_t len = size * n, done = 0;
	long code = 0;
	char *nl;

	curl_easy_getinfo(s->c->curl, CURLINFO_RESPONSE_CODE, &code);
	s->is_error = code < 200 || code > 299;
	if (s->is_error) /* a Status body: kept whole, up to its bound */
		return buf_add(&s->line, data, len) < 0 ? 0 : len;
	while (done < len) {
		size_t room = KUBE_STREAM_LINE_MAX - s->line.len, take = len - done;

		if (take > room)
			take = room;
		if (buf_add(&s->line, data + done, take) < 0)
			return 0;
		done += take;
		while (s->line.len && (nl = memchr(s->line.data, '\n', s->line.len))) {
			size_t l = (size_t)(nl - s->line.data);

			stream_deliver(s, l);
			buf_consume(&s->line, l + 1);
		}
		/* a line past the bound is delivered in pieces */
		if (s->line.len == KUBE_STREAM_LINE_MAX) {
			stream_deliver(s, s->line.len - 1);
			buf_consume(&s->line, s->line.len - 1);
		}
	}
	return len;
}

static int on_stream_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	const struct stream_state *s = arg;

	return (s->stop && *s->stop) || (s->deadline_ms && clock_now_ms() >= s->deadline_ms);
}

int kube_stream_lines(struct kube_client *c, const char *path,
                      void (*on_line)(void *arg, const char *line), void *arg,
                      const volatile sig_atomic_t *stop, long max_ms)
{
	struct stream_state s = {.c = c, .on_line = on_line, .arg = arg, .stop = stop};
	struct curl_slist *hdrs = NULL;
	char errbuf[CURL_ERROR_SIZE];
	CURLcode rc;
	long code = 0;
	int ret = -1;

	buf_init(&s.line, KUBE_STREAM_LINE_MAX + 1);
	if (max_ms > 0)
		s.deadline_ms = clock_now_ms() + max_ms;
	if (setup_handle(c, "GET", path, NULL, "*/*", &hdrs) < 0) {
		memset(&c->status, 0, sizeof(c->status));
		snprintf(c->status.message, sizeof(c->status.message), "%s", err_msg());
		goto out;
	}
	errbuf[0] = '\0';
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_stream_body);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION, on_stream_progress);
	curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, &s);
	rc = curl_easy_perform(c->curl);
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &code);
	if (code && (code < 200 || code > 299)) {
		ret = kube_status_from_response(&c->status, code, s.line.data, s.line.len);
		err_set("GET %s: %s", path, c->status.message);
		goto out;
	}
	if (rc == CURLE_ABORTED_BY_CALLBACK && s.deadline_ms && clock_now_ms() >= s.deadline_ms &&
	    !(stop && *stop)) {
		memset(&c->status, 0, sizeof(c->status));
		snprintf(c->status.reason, sizeof(c->status.reason), "Timeout");
		snprintf(c->status.message, sizeof(c->status.message), "stream ended after %ld ms",
		         max_ms);
		ret = err_set("GET %s: %s", path, c->status.message);
		ret = KUBE_ETIMEOUT;
		goto out;
	}
	if (rc != CURLE_OK && rc != CURLE_ABORTED_BY_CALLBACK) {
		set_transport_status(c, rc, errbuf);
		err_set("GET %s: %s", path, c->status.message);
		goto out;
	}
	/* the last line may have come without its newline */
	if (s.line.len)
		stream_deliver(&s, s.line.len);
	ret = 0;
out:
	free_headers(hdrs);
	buf_release(&s.line);
	return ret;
}
