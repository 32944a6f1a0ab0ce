/* dashboard: the server of `kubectl slipway dashboard`. Three threads watch
 * PipelineRuns and both kinds of Remote through lib/kube into a hub that
 * keeps the objects and a ring of Server-Sent Events; libmicrohttpd serves
 * the embedded page and relays the hub to each browser. Read-only: GET of a
 * fixed set of paths, nothing proxied. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "dashboard.h"
#include "err.h"
#include "kube.h"
#include "banned.h"

extern char **environ;

/* The page's files, embedded by the Makefile with `xxd -i` from
 * kubectl-slipway/dashboard/. */
extern unsigned char index_html[], app_js[], app_css[];
extern unsigned int index_html_len, app_js_len, app_css_len;

#define USER_AGENT "kubectl-slipway/dashboard"
/* Events kept for browsers that read slower than the cluster changes; one
 * that falls further behind gets a fresh snapshot. */
#define RING_SIZE 256
/* An SSE comment this often keeps proxies and the browser from timing out,
 * and tells the server that a browser went away. */
#define KEEPALIVE_MS 15000
/* Wait before watching again after a failure retrying cannot fix (403, 404:
 * RBAC or a CRD may be added meanwhile). */
#define RETRY_MS 10000
/* Browsers served at once (each event stream holds a thread). */
#define MAX_CONNECTIONS 64u

/* The resources watched, in the order of dashboard_opts.cfgs. */
static const struct kind {
	const char *name; /* the key the page knows it by */
	const char *gvr;
} kinds[] = {
    {"pipelineruns", "slipway.dev/v1alpha1/pipelineruns"},
    {"remotes", "slipway.dev/v1alpha1/remotes"},
    {"gitkube-remotes", "gitkube.sh/v1alpha1/remotes"},
};
#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))

/* What dashboard_run serves. */
struct dashboard_opts {
	struct kube_config *cfgs[NKINDS];  /* one per watch, in the order of kinds;
	                                      their contents move into the
	                                      watches' clients */
	const char *ns;                    /* namespace, or NULL for all */
	const char *address;               /* IPv4 or IPv6 literal */
	int port;                          /* TCP port; 0 lets the kernel choose */
	bool open_browser;                 /* run xdg-open on the URL */
	const volatile sig_atomic_t *stop; /* serve until this becomes non-zero */
};

/* The cluster as the watches last saw it, and the events since. */
struct hub {
	pthread_mutex_t mu;
	pthread_cond_t changed;  /* seq moved or stopping was set */
	json_t *objects[NKINDS]; /* "ns/name" -> object */
	json_t *state[NKINDS];   /* {"state", "message"}; states in
	                            docs/dashboard.md */
	char *ring[RING_SIZE];   /* SSE frames; event N is ring[N % RING_SIZE] */
	unsigned long long seq;  /* events published */
	const char *ns;          /* scope (NULL: all namespaces) */
	bool stopping;
};

struct watcher {
	struct hub *hub;
	size_t kind; /* index into kinds */
	struct kube_client *c;
	json_t *pending;                   /* items of the list under way */
	const volatile sig_atomic_t *stop; /* dashboard_opts.stop */
	pthread_t thread;
	bool started;
};

/* One browser's event stream. */
struct stream {
	struct hub *hub;
	unsigned long long seq; /* next event to send */
	bool need_snapshot;
	char *frame; /* being sent (owned) */
	size_t len, off;
};

/* --- hub --------------------------------------------------------------- */

/* The SSE frame "event: EVENT\ndata: JSON\n\n" (JSON on one line, so no
 * data line needs splitting; WHATWG HTML "Server-sent events"). Takes DATA's
 * reference. NULL when out of memory. */
static char *sse_frame(const char *event, json_t *data)
{
	char *json = data ? json_dumps(data, JSON_COMPACT) : NULL, *frame = NULL;

	json_decref(data);
	if (json && asprintf(&frame, "event: %s\ndata: %s\n\n", event, json) < 0)
		frame = NULL;
	free(json);
	return frame;
}

/* Adds FRAME (owned) to the ring and wakes the streams; with the lock held.
 * A frame that could not be built makes every stream start over from a
 * snapshot, so none misses a change. */
static void hub_publish_locked(struct hub *h, char *frame)
{
	free(h->ring[h->seq % RING_SIZE]);
	h->ring[h->seq % RING_SIZE] = frame;
	h->seq++;
	pthread_cond_broadcast(&h->changed);
}

static json_t *kind_items_locked(const struct hub *h, size_t k)
{
	json_t *items = json_array(), *obj;
	const char *key;

	json_object_foreach(h->objects[k], key, obj) json_array_append(items, obj);
	return items;
}

/* {"kind", "status", "items"}: everything known of kind K. */
static json_t *kind_sync_locked(const struct hub *h, size_t k)
{
	return json_pack("{s:s, s:O, s:o}", "kind", kinds[k].name, "status", h->state[k], "items",
	                 kind_items_locked(h, k));
}

/* The frame that starts every stream: the scope and every kind. */
static char *hub_snapshot_locked(const struct hub *h)
{
	json_t *all = json_array();

	for (size_t k = 0; k < NKINDS; k++)
		json_array_append_new(all, kind_sync_locked(h, k));
	return sse_frame("snapshot", json_pack("{s:s?, s:o}", "namespace", h->ns, "kinds", all));
}

/* Sets kind K's state; publishes a "sync" of it when it changed. */
static void hub_set_state(struct hub *h, size_t k, const char *state, const char *message)
{
	json_t *st = json_pack("{s:s, s:s}", "state", state, "message", message ? message : "");

	pthread_mutex_lock(&h->mu);
	if (st && !json_equal(st, h->state[k])) {
		json_decref(h->state[k]);
		h->state[k] = st;
		st = NULL;
		if (strcmp(state, "ok") && strcmp(state, "listing"))
			json_object_clear(h->objects[k]);
		hub_publish_locked(h, sse_frame("sync", kind_sync_locked(h, k)));
	}
	pthread_mutex_unlock(&h->mu);
	json_decref(st);
}

/* --- watches ----------------------------------------------------------- */

/* "ns/name" of OBJ into BUF; false when OBJ has no name. */
static bool object_key(char *buf, size_t size, const json_t *obj)
{
	const json_t *meta = json_object_get(obj, "metadata");
	const char *ns = json_string_value(json_object_get(meta, "namespace"));
	const char *name = json_string_value(json_object_get(meta, "name"));

	if (!name)
		return false;
	return (size_t)snprintf(buf, size, "%s/%s", ns ? ns : "", name) < size;
}

/* OBJ without what the page never shows (managedFields are most of an
 * object's size). New reference, NULL when out of memory. */
static json_t *object_trim(json_t *obj)
{
	json_t *copy = json_copy(obj);

	if (copy)
		json_object_del(json_object_get(copy, "metadata"), "managedFields");
	return copy;
}

static int on_event(void *arg, enum kube_event ev, json_t *obj)
{
	struct watcher *w = arg;
	struct hub *h = w->hub;
	char key[600];
	json_t *o;

	switch (ev) {
	case KUBE_EVENT_BOOKMARK:
		return 0;
	case KUBE_EVENT_LISTED:
		if (!w->pending)
			w->pending = json_object();
		if (w->pending && object_key(key, sizeof(key), obj) && (o = object_trim(obj)))
			json_object_set_new(w->pending, key, o);
		return 0;
	case KUBE_EVENT_SYNCED:
		/* a (re-)list ended: what it did not list is gone (kube.h) */
		pthread_mutex_lock(&h->mu);
		json_decref(h->objects[w->kind]);
		h->objects[w->kind] = w->pending ? w->pending : json_object();
		w->pending = NULL;
		json_decref(h->state[w->kind]);
		h->state[w->kind] = json_pack("{s:s, s:s}", "state", "ok", "message", "");
		hub_publish_locked(h, sse_frame("sync", kind_sync_locked(h, w->kind)));
		pthread_mutex_unlock(&h->mu);
		return 0;
	case KUBE_EVENT_ADDED:
	case KUBE_EVENT_MODIFIED:
	case KUBE_EVENT_DELETED:
		if (!object_key(key, sizeof(key), obj) || !(o = object_trim(obj)))
			return 0;
		pthread_mutex_lock(&h->mu);
		if (ev == KUBE_EVENT_DELETED)
			json_object_del(h->objects[w->kind], key);
		else
			json_object_set(h->objects[w->kind], key, o);
		hub_publish_locked(h, sse_frame(ev == KUBE_EVENT_DELETED ? "delete" : "upsert",
		                                json_pack("{s:s, s:o}", "kind", kinds[w->kind].name,
		                                          "object", o)));
		pthread_mutex_unlock(&h->mu);
		return 0;
	}
	return 0;
}

/* Sleeps MS milliseconds or until *STOP is set. */
static void nap(const volatile sig_atomic_t *stop, long ms)
{
	for (; ms > 0 && !*stop; ms -= 100) {
		struct timespec ts = {0, 100 * 1000 * 1000};

		nanosleep(&ts, NULL);
	}
}

static void *watch_main(void *arg)
{
	struct watcher *w = arg;
	const struct kind *k = &kinds[w->kind];
	struct kube_watch_opts wo = {.stop = w->stop};

	while (!*w->stop) {
		int ret;

		/* the state stays as it was (forbidden, say) until the list
		 * ends (SYNCED sets "ok") or fails again: no flicker */
		ret = kube_watch(w->c, k->gvr, w->hub->ns, &wo, on_event, w);
		json_decref(w->pending);
		w->pending = NULL;
		if (*w->stop)
			break;
		if (ret == KUBE_EFORBIDDEN || ret == KUBE_EUNAUTHORIZED) {
			hub_set_state(w->hub, w->kind,
			              ret == KUBE_EFORBIDDEN ? "forbidden" : "unauthorized",
			              kube_client_status(w->c)->message);
		} else if (ret == KUBE_ENOTFOUND) {
			hub_set_state(w->hub, w->kind, "absent",
			              "the resource type is not installed");
		} else {
			hub_set_state(w->hub, w->kind, "error", err_msg());
		}
		if (ret != KUBE_ENOTFOUND)
			fprintf(stderr, "kubectl-slipway: dashboard: watching %s: %s\n", k->gvr,
			        err_msg());
		nap(w->stop, RETRY_MS);
	}
	return NULL;
}

/* --- HTTP -------------------------------------------------------------- */

struct server {
	struct hub *hub;
	const char *address;
	int port;
};

/* Every response: a strict Content-Security-Policy (scripts, styles and
 * connections to this origin only, no inline code, no framing), no
 * sniffing, no caching, no referrer. */
static void add_headers(struct MHD_Response *r, const char *content_type)
{
	MHD_add_response_header(r, "Content-Type", content_type);
	MHD_add_response_header(r, "Content-Security-Policy",
	                        "default-src 'none'; script-src 'self'; style-src 'self'; "
	                        "connect-src 'self'; img-src 'self'; base-uri 'none'; "
	                        "form-action 'none'; frame-ancestors 'none'");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "Cache-Control", "no-store");
}

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned int code,
                               const char *content_type, const void *body, size_t len)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	add_headers(r, content_type);
	if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, "Allow", "GET");
	ret = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result respond_text(struct MHD_Connection *conn, unsigned int code,
                                    const char *text)
{
	return respond(conn, code, "text/plain; charset=utf-8", text, strlen(text));
}

/* MHD_ContentReaderCallback of an event stream: the snapshot first, then
 * each event as the hub publishes it, with a keepalive comment when nothing
 * happens; ends when the server stops. */
static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
	struct stream *s = cls;
	struct hub *h = s->hub;
	size_t n;

	if (s->off == s->len) {
		struct timespec until;
		int rc = 0;

		free(s->frame);
		s->frame = NULL;
		s->len = s->off = 0;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += KEEPALIVE_MS / 1000;
		pthread_mutex_lock(&h->mu);
		while (!h->stopping && !s->need_snapshot && s->seq == h->seq && rc != ETIMEDOUT)
			rc = pthread_cond_timedwait(&h->changed, &h->mu, &until);
		if (h->stopping) {
			pthread_mutex_unlock(&h->mu);
			return MHD_CONTENT_READER_END_OF_STREAM;
		}
		if (!s->need_snapshot && h->seq - s->seq > RING_SIZE)
			s->need_snapshot = true;
		if (s->need_snapshot) {
			s->frame = hub_snapshot_locked(h);
			s->seq = h->seq;
			s->need_snapshot = false;
		} else if (s->seq != h->seq) {
			const char *f = h->ring[s->seq % RING_SIZE];

			s->frame = f ? strdup(f) : NULL;
			s->need_snapshot = !f; /* that event was lost: start over */
			s->seq++;
		}
		pthread_mutex_unlock(&h->mu);
		if (!s->frame)
			s->frame = strdup(": keepalive\n\n");
		if (!s->frame)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		s->len = strlen(s->frame);
	}
	n = s->len - s->off < max ? s->len - s->off : max;
	memcpy(out, s->frame + s->off, n);
	s->off += n;
	return (ssize_t)n;
}

static void stream_free(void *cls)
{
	struct stream *s = cls;

	free(s->frame);
	free(s);
}

static enum MHD_Result respond_events(struct MHD_Connection *conn, struct hub *h)
{
	struct stream *s = calloc(1, sizeof(*s));
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (!s)
		return MHD_NO;
	s->hub = h;
	s->need_snapshot = true;
	r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, s,
	                                      stream_free);
	if (!r) {
		free(s);
		return MHD_NO;
	}
	add_headers(r, "text/event-stream; charset=utf-8");
	ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

/* GET of the page's files and its one API path; nothing else. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **req)
{
	const struct server *srv = cls;
	const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");

	if (!dashboard_host_is_allowed(host, srv->address, srv->port))
		return respond_text(conn, MHD_HTTP_MISDIRECTED_REQUEST,
		                    "this server answers only to its loopback address\n");
	if (strcmp(method, "GET"))
		return respond_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
		                    "read-only: only GET is allowed\n");
	if (!strcmp(url, "/") || !strcmp(url, "/index.html"))
		return respond(conn, MHD_HTTP_OK, "text/html; charset=utf-8", index_html,
		               index_html_len);
	if (!strcmp(url, "/app.js"))
		return respond(conn, MHD_HTTP_OK, "text/javascript; charset=utf-8", app_js,
		               app_js_len);
	if (!strcmp(url, "/app.css"))
		return respond(conn, MHD_HTTP_OK, "text/css; charset=utf-8", app_css, app_css_len);
	if (!strcmp(url, "/api/events"))
		return respond_events(conn, srv->hub);
	return respond_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
}

bool dashboard_host_is_allowed(const char *host, const char *address, int port)
{
	struct in6_addr a6;
	struct in_addr a4;
	char want[128];
	bool is_v6 = inet_pton(AF_INET6, address, &a6) == 1;
	bool is_loopback =
	    is_v6 ? IN6_IS_ADDR_LOOPBACK(&a6)
	          : inet_pton(AF_INET, address, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;

	if (!host)
		return false;
	snprintf(want, sizeof(want), is_v6 ? "[%s]:%d" : "%s:%d", address, port);
	if (!strcmp(host, want))
		return true;
	snprintf(want, sizeof(want), "localhost:%d", port);
	return is_loopback && !strcasecmp(host, want);
}

/* --- the command ------------------------------------------------------- */

/* Opens URL with xdg-open, its output discarded. Returns its pid, or 0 when
 * it could not be started (no browser is not an error: the URL is printed). */
static pid_t open_browser(const char *url)
{
	posix_spawn_file_actions_t fa;
	char *argv[] = {"xdg-open", (char *)url, NULL};
	pid_t pid = 0;

	if (posix_spawn_file_actions_init(&fa))
		return 0;
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	if (posix_spawnp(&pid, "xdg-open", &fa, NULL, argv, environ))
		pid = 0;
	posix_spawn_file_actions_destroy(&fa);
	return pid;
}

static struct MHD_Daemon *http_start(struct server *srv)
{
	struct sockaddr_storage ss = {0};
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION;
	struct MHD_Daemon *d;
	const union MHD_DaemonInfo *info;

	if (inet_pton(AF_INET, srv->address, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((unsigned short)srv->port);
	} else if (inet_pton(AF_INET6, srv->address, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((unsigned short)srv->port);
		flags |= MHD_USE_IPv6;
	} else {
		err_set("--address %s: not an IPv4 or IPv6 address", srv->address);
		return NULL;
	}
	d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_SOCK_ADDR, &ss,
	                     MHD_OPTION_CONNECTION_LIMIT, MAX_CONNECTIONS,
	                     MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_END);
	if (!d) {
		err_set("cannot listen on %s port %d", srv->address, srv->port);
		return NULL;
	}
	info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	if (info && info->port)
		srv->port = info->port;
	return d;
}

/* Serves the page until *o->stop becomes non-zero, then closes the event
 * streams, stops the server and the watches, and returns 0; -1 with
 * err_msg() when the address cannot be served. The configurations in
 * o->cfgs are emptied whatever the outcome. */
static int dashboard_run(const struct dashboard_opts *o)
{
	struct hub h = {.ns = o->ns};
	struct watcher w[NKINDS] = {0};
	struct server srv = {.hub = &h, .address = o->address, .port = o->port};
	struct MHD_Daemon *d = NULL;
	sigset_t block, old;
	pid_t browser = 0;
	char url[160];
	int ret = -1;

	pthread_mutex_init(&h.mu, NULL);
	pthread_cond_init(&h.changed, NULL);
	for (size_t k = 0; k < NKINDS; k++) {
		h.objects[k] = json_object();
		h.state[k] = json_pack("{s:s, s:s}", "state", "listing", "message", "");
		w[k] = (struct watcher){.hub = &h, .kind = k, .stop = o->stop};
		if (!h.objects[k] || !h.state[k]) {
			err_set("out of memory");
			goto out;
		}
	}
	for (size_t k = 0; k < NKINDS; k++) {
		const struct kube_client_opts co = {.max_retries = 3, .user_agent = USER_AGENT};

		if (kube_client_new(&w[k].c, o->cfgs[k], &co) < 0)
			goto out;
	}
	d = http_start(&srv);
	if (!d)
		goto out;
	/* the watches leave SIGINT and SIGTERM to the thread that waits for them */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	for (size_t k = 0; k < NKINDS; k++)
		w[k].started = !pthread_create(&w[k].thread, NULL, watch_main, &w[k]);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	for (size_t k = 0; k < NKINDS; k++)
		if (!w[k].started)
			hub_set_state(&h, k, "error", "cannot start a thread");

	snprintf(url, sizeof(url), strchr(o->address, ':') ? "http://[%s]:%d/" : "http://%s:%d/",
	         o->address, srv.port);
	printf("Serving the Slipway dashboard of %s%s at %s\n",
	       o->ns ? "namespace " : "all namespaces", o->ns ? o->ns : "", url);
	printf("It is read-only and uses your kubeconfig's credentials. Ctrl-C stops it.\n");
	fflush(stdout);
	if (o->open_browser)
		browser = open_browser(url);
	while (!*o->stop)
		nap(o->stop, 1000);
	ret = 0;
out:
	pthread_mutex_lock(&h.mu);
	h.stopping = true;
	pthread_cond_broadcast(&h.changed);
	pthread_mutex_unlock(&h.mu);
	if (d)
		MHD_stop_daemon(d);
	for (size_t k = 0; k < NKINDS; k++) {
		if (w[k].started)
			pthread_join(w[k].thread, NULL);
		kube_client_free(w[k].c);
		kube_config_release(o->cfgs[k]);
		json_decref(h.objects[k]);
		json_decref(h.state[k]);
	}
	for (size_t i = 0; i < RING_SIZE; i++)
		free(h.ring[i]);
	if (browser > 0)
		waitpid(browser, NULL, WNOHANG);
	pthread_cond_destroy(&h.changed);
	pthread_mutex_destroy(&h.mu);
	if (ret == 0)
		printf("Stopped.\n");
	return ret;
}

const char dashboard_help[] =
    "usage: kubectl slipway dashboard [-n NS | -A] [--address ADDR] [--port N]\n"
    "           [--no-open]\n"
    "\n"
    "Serves a read-only status page of the namespace's Remotes and PipelineRuns\n"
    "(live, through watches relayed as Server-Sent Events), prints its URL and\n"
    "opens it in the browser. The page reads the API with this kubeconfig's\n"
    "credentials, as kubectl proxy does; it answers GET only, and only to\n"
    "requests addressed to ADDR. Ctrl-C stops it.\n"
    "\n"
    "  -A, --all-namespaces  every namespace\n"
    "  --address ADDR        IP address to listen on (default 127.0.0.1)\n"
    "  --port N              TCP port (default 8001; 0: any free port)\n"
    "  --no-open             do not run xdg-open on the URL\n"
    "\n"
    "exit status: 0 stopped by Ctrl-C or SIGTERM, 1 failure, 2 usage error.\n";

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
	stop_requested = 1;
}

static int usage_error(const char *msg)
{
	fprintf(stderr, "kubectl-slipway: %s\nTry 'kubectl slipway dashboard --help'.\n", msg);
	return 2;
}

int dashboard_main(const struct cli *cli, int argc, char **argv)
{
	static const struct cli_flag flags[] = {{"address", true},
	                                        {"port", true},
	                                        {"no-open", false},
	                                        {"all-namespaces", false},
	                                        {NULL, false}};
	struct kube_config cfgs[NKINDS];
	struct dashboard_opts o = {
	    .address = "127.0.0.1", .port = 8001, .open_browser = true, .stop = &stop_requested};
	struct cli_iter it = {.argc = argc, .argv = argv};
	struct sigaction sa = {0};
	bool all = false;
	const char *v;
	char *end;
	int f, rc = 0;

	while (it.i < it.argc) {
		/* kubectl's short -A, which cli_next (long flags) does not know */
		if (!it.only_positional && !strcmp(it.argv[it.i], "-A")) {
			all = true;
			it.i++;
			continue;
		}
		f = cli_next(&it, flags, &v);
		if (f == CLI_EUSAGE)
			return usage_error(err_msg());
		if (f == CLI_POSITIONAL)
			return usage_error("dashboard takes no arguments");
		if (f == 0) {
			o.address = v;
		} else if (f == 1) {
			errno = 0;
			o.port = (int)strtol(v, &end, 10);
			if (errno || !*v || *end || o.port < 0 || o.port > 65535)
				return usage_error("invalid --port (0 to 65535)");
		} else if (f == 2) {
			o.open_browser = false;
		} else if (f == 3) {
			all = true;
		}
	}
	if (all && cli->ns)
		return usage_error("-n and -A exclude each other");
	for (size_t k = 0; k < NKINDS; k++) {
		kube_config_init(&cfgs[k]);
		o.cfgs[k] = &cfgs[k];
	}
	for (size_t k = 0; k < NKINDS; k++)
		if (kube_config_load_default(&cfgs[k], cli->kubeconfig, cli->context) < 0) {
			fprintf(stderr, "kubectl-slipway: %s\n", err_msg());
			rc = 1;
			goto out;
		}
	if (!all)
		o.ns = cli->ns ? cli->ns : cfgs[0].namespace ? cfgs[0].namespace : "default";
	sa.sa_handler = on_stop_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	if (dashboard_run(&o) < 0) {
		fprintf(stderr, "kubectl-slipway: dashboard: %s\n", err_msg());
		rc = 1;
	}
out:
	for (size_t k = 0; k < NKINDS; k++)
		kube_config_release(&cfgs[k]);
	return rc;
}
