/* watch: the Remote watcher process and the reader of its snapshots (see
 * watch.h). One thread per (resource, namespace) runs kube_watch; the
 * process's main thread serializes the merged set to the pipe. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "event.h"
#include "kube.h"
#include "watch.h"
#include "banned.h"

static const char *const resources[2] = {"slipway.dev/v1alpha1/remotes",
                                         "gitkube.sh/v1alpha1/remotes"};

/* State shared by the watch threads of the watcher process. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t changed_cond;
	json_t *objects; /* "R|NS/NAME" -> snapshot entry; R is the resources index */
	bool changed;
	int unsynced; /* watches that have not listed yet */
} shared = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, false, 0};

struct watcher {
	pthread_t thread;
	const struct watch_opts *opts;
	int resource;   /* index into resources */
	const char *ns; /* NULL: all namespaces */
	json_t *seen;   /* keys LISTED since the current list began */
	bool synced;
	struct kube_client *status_c; /* for status writes: the watch's own
	                                 client is busy streaming */
};

static void mark_changed(void)
{
	shared.changed = true;
	pthread_cond_signal(&shared.changed_cond);
}

/* The part of a Remote that gitd serves from. */
static json_t *entry_of(const json_t *obj, int resource)
{
	json_t *md = json_object_get(obj, "metadata"), *spec = json_object_get(obj, "spec");
	json_t *keys = json_object_get(spec, "authorizedKeys");

	return json_pack("{s:b, s:{s:O, s:O}, s:{s:O, s:b}}", "gitkube", resource == 1, "metadata",
	                 "namespace", json_object_get(md, "namespace"), "name",
	                 json_object_get(md, "name"), "spec", "authorizedKeys",
	                 json_is_array(keys) ? keys : json_array(), "denyNonFastForwards",
	                 json_is_true(json_object_get(spec, "denyNonFastForwards")));
}

static int key_of(char *buf, size_t size, const json_t *obj, int resource)
{
	json_t *md = json_object_get(obj, "metadata");
	const char *ns = json_string_value(json_object_get(md, "namespace"));
	const char *name = json_string_value(json_object_get(md, "name"));

	if (!ns || !name)
		return -1;
	return (size_t)snprintf(buf, size, "%d|%s/%s", resource, ns, name) < size ? 0 : -1;
}

/* RFC 3339 UTC with seconds. */
static void now_rfc3339(char buf[32])
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const char *str_of(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

static bool str_eq(const char *a, const char *b)
{
	return a && b && !strcmp(a, b);
}

/* The Ready condition OBJ's keys call for: True "Serving" with at least one
 * key that parses, else False "NoKeys". Returns a new object or NULL. */
static json_t *ready_condition(const json_t *obj, int resource, json_int_t generation)
{
	json_t *keys = json_object_get(json_object_get(obj, "spec"), "authorizedKeys");
	struct authz tmp;
	size_t bad = 0, good;
	char msg[160], skipped[96] = "";

	authz_init(&tmp);
	if (authz_add_remote(&tmp, obj, resource == 1, &bad) < 0) {
		authz_release(&tmp);
		return NULL;
	}
	authz_release(&tmp);
	good = json_array_size(keys) - bad;
	if (bad)
		snprintf(skipped, sizeof(skipped), "; %zu line%s skipped (not OpenSSH public keys)",
		         bad, bad == 1 ? "" : "s");
	if (good)
		snprintf(msg, sizeof(msg), "%zu authorized key%s%s", good, good == 1 ? "" : "s",
		         skipped);
	else
		snprintf(msg, sizeof(msg), "no authorized keys%s", skipped);
	return json_pack("{s:s, s:s, s:s, s:s, s:I}", "type", "Ready", "status",
	                 good ? "True" : "False", "reason", good ? "Serving" : "NoKeys", "message",
	                 msg, "observedGeneration", generation);
}

/* Brings OBJ's status (remoteUrl, observedGeneration, the Ready condition)
 * up to date with a merge patch of the status subresource, when it is not.
 * The patch comes back as a MODIFIED event, which then finds nothing to do. */
static void sync_status(struct watcher *w, const json_t *obj)
{
	const char *base = w->opts->url_base;
	json_t *md = json_object_get(obj, "metadata"), *status = json_object_get(obj, "status");
	json_t *conds = json_object_get(status, "conditions"), *old = NULL, *ready = NULL;
	json_t *list = NULL, *patch = NULL, *v;
	const char *ns = str_of(md, "namespace"), *name = str_of(md, "name");
	const char *rv = str_of(md, "resourceVersion");
	json_int_t generation = json_integer_value(json_object_get(md, "generation"));
	struct kube_patch_opts po = {.subresource = "status"};
	char url[1200], now[32];
	size_t i, blen;
	int ret;

	if (!base || !ns || !name || !rv)
		return;
	blen = strlen(base);
	while (blen > 0 && base[blen - 1] == '/')
		blen--;
	if ((size_t)snprintf(url, sizeof(url), "%.*s/%s/%s.git", (int)blen, base, ns, name) >=
	    sizeof(url))
		return;
	ready = ready_condition(obj, w->resource, generation);
	if (!ready)
		return;
	json_array_foreach(conds, i, v)
	{
		if (str_eq(str_of(v, "type"), "Ready"))
			old = v;
	}
	if (str_eq(str_of(status, "remoteUrl"), url) &&
	    json_integer_value(json_object_get(status, "observedGeneration")) == generation &&
	    json_is_integer(json_object_get(status, "observedGeneration")) && old &&
	    str_eq(str_of(old, "status"), str_of(ready, "status")) &&
	    str_eq(str_of(old, "reason"), str_of(ready, "reason")) &&
	    str_eq(str_of(old, "message"), str_of(ready, "message")) &&
	    json_integer_value(json_object_get(old, "observedGeneration")) == generation)
		goto out; /* nothing would change */
	/* lastTransitionTime changes only when the status does (API conventions) */
	if (old && str_eq(str_of(old, "status"), str_of(ready, "status")) &&
	    str_of(old, "lastTransitionTime")) {
		json_object_set(ready, "lastTransitionTime",
		                json_object_get(old, "lastTransitionTime"));
	} else {
		now_rfc3339(now);
		json_object_set_new(ready, "lastTransitionTime", json_string(now));
	}
	/* a merge patch replaces the whole list: keep the other conditions */
	list = json_array();
	json_array_foreach(conds, i, v)
	{
		if (v != old)
			json_array_append(list, v);
	}
	json_array_append(list, ready);
	/* resourceVersion makes the patch conditional: a condition someone added
	 * since this event is not lost; their change's own event comes next */
	patch =
	    json_pack("{s:{s:s}, s:{s:s, s:I, s:O}}", "metadata", "resourceVersion", rv, "status",
	              "remoteUrl", url, "observedGeneration", generation, "conditions", list);
	if (!patch)
		goto out;
	if (!w->status_c &&
	    kube_client_new_default(&w->status_c, w->opts->kubeconfig, w->opts->context) < 0) {
		w->status_c = NULL;
		event_log("warn", "remote_status_failed", "{s:s, s:s, s:s}", "resource",
		          resources[w->resource], "remote", name, "error", err_msg());
		goto out;
	}
	ret = kube_patch(NULL, w->status_c, resources[w->resource], ns, name, KUBE_PATCH_MERGE,
	                 patch, &po);
	if (ret == KUBE_ECONFLICT)
		event_log("debug", "remote_status_conflict", "{s:s, s:s}", "namespace", ns,
		          "remote", name);
	else if (ret < 0)
		event_log("warn", "remote_status_failed", "{s:s, s:s, s:s, s:s}", "resource",
		          resources[w->resource], "namespace", ns, "remote", name, "error",
		          err_msg());
	else
		event_log("info", "remote_status_written", "{s:s, s:s, s:s, s:s}", "namespace", ns,
		          "remote", name, "ready", str_of(ready, "status"), "message",
		          str_of(ready, "message"));
out:
	json_decref(patch);
	json_decref(list);
	json_decref(ready);
}

static int on_event(void *arg, enum kube_event ev, json_t *obj)
{
	struct watcher *w = arg;
	char key[600];

	if (ev == KUBE_EVENT_LISTED || ev == KUBE_EVENT_ADDED || ev == KUBE_EVENT_MODIFIED)
		sync_status(w, obj);
	pthread_mutex_lock(&shared.lock);
	switch (ev) {
	case KUBE_EVENT_LISTED:
	case KUBE_EVENT_ADDED:
	case KUBE_EVENT_MODIFIED:
		if (key_of(key, sizeof(key), obj, w->resource) == 0) {
			json_t *e = entry_of(obj, w->resource);

			if (e) {
				json_object_set_new(shared.objects, key, e);
				mark_changed();
			}
			if (ev == KUBE_EVENT_LISTED)
				json_object_set_new(w->seen, key, json_true());
		}
		break;
	case KUBE_EVENT_DELETED:
		if (key_of(key, sizeof(key), obj, w->resource) == 0 &&
		    json_object_del(shared.objects, key) == 0)
			mark_changed();
		break;
	case KUBE_EVENT_SYNCED: {
		/* a (re-)list ended: what this watch did not list is gone */
		char prefix[300];
		const char *k;
		json_t *v, *gone = json_array();
		size_t i, plen;

		snprintf(prefix, sizeof(prefix), "%d|%s%s", w->resource, w->ns ? w->ns : "",
		         w->ns ? "/" : "");
		plen = strlen(prefix);
		json_object_foreach(shared.objects, k, v)
		{
			if (!strncmp(k, prefix, plen) && !json_object_get(w->seen, k))
				json_array_append_new(gone, json_string(k));
		}
		json_array_foreach(gone, i, v)
		    json_object_del(shared.objects, json_string_value(v));
		json_decref(gone);
		json_object_clear(w->seen);
		if (!w->synced) {
			w->synced = true;
			shared.unsynced--;
		}
		mark_changed();
		break;
	}
	case KUBE_EVENT_BOOKMARK:
		break;
	}
	pthread_mutex_unlock(&shared.lock);
	return 0;
}

static void *watch_thread(void *arg)
{
	struct watcher *w = arg;
	struct kube_client *c = NULL;
	struct kube_watch_opts wo = {0};
	int ret, delay_s = 1;

	for (;;) {
		if (!c && kube_client_new_default(&c, w->opts->kubeconfig, w->opts->context) < 0) {
			event_log("error", "watch_failed", "{s:s, s:s*, s:s}", "resource",
			          resources[w->resource], "namespace", w->ns, "error", err_msg());
			c = NULL;
		} else {
			ret = kube_watch(c, resources[w->resource], w->ns, &wo, on_event, w);
			if (ret == KUBE_ENOTFOUND && w->resource == 1) {
				/* no gitkube CRD in this cluster: nothing to serve, look again
				 * later */
				event_log("debug", "watch_idle", "{s:s, s:s}", "resource",
				          resources[w->resource], "reason",
				          "resource type not installed");
				pthread_mutex_lock(&shared.lock);
				if (!w->synced) {
					w->synced = true;
					shared.unsynced--;
					mark_changed();
				}
				pthread_mutex_unlock(&shared.lock);
				delay_s = 30;
			} else {
				event_log("error", "watch_failed", "{s:s, s:s*, s:s}", "resource",
				          resources[w->resource], "namespace", w->ns, "error",
				          err_msg());
				delay_s = delay_s < 30 ? delay_s * 2 : 30;
			}
		}
		sleep((unsigned)delay_s);
	}
	return NULL;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void watcher_main(int fd, const struct watch_opts *opts)
{
	static const char *const all[] = {NULL}; /* one watch over all namespaces */
	const char *const *nss = all;
	struct watcher *ws;
	size_t nns = 0, n;

	prctl(PR_SET_PDEATHSIG, SIGTERM);
	prctl(PR_SET_NAME, "gitd-watch");
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	if (opts->namespaces)
		while (opts->namespaces[nns])
			nns++;
	if (nns)
		nss = opts->namespaces;
	else
		nns = 1;
	n = 2 * nns;
	shared.objects = json_object();
	ws = calloc(n, sizeof(*ws));
	if (!shared.objects || !ws)
		_exit(1);
	shared.unsynced = (int)n;
	for (size_t i = 0; i < n; i++) {
		ws[i].opts = opts;
		ws[i].resource = (int)(i % 2);
		ws[i].ns = nss[i / 2];
		ws[i].seen = json_object();
		if (pthread_create(&ws[i].thread, NULL, watch_thread, &ws[i]) != 0)
			_exit(1);
	}
	for (;;) {
		json_t *list, *v, *snap;
		const char *k;
		char *line;
		struct timespec pause = {0, 50 * 1000000};

		pthread_mutex_lock(&shared.lock);
		while (!shared.changed)
			pthread_cond_wait(&shared.changed_cond, &shared.lock);
		shared.changed = false;
		list = json_array();
		json_object_foreach(shared.objects, k, v) json_array_append(list, v);
		snap = json_pack("{s:o, s:b}", "remotes", list, "synced", shared.unsynced == 0);
		pthread_mutex_unlock(&shared.lock);
		line = snap ? json_dumps(snap, JSON_COMPACT) : NULL;
		json_decref(snap);
		if (!line || write_all(fd, line, strlen(line)) < 0 || write_all(fd, "\n", 1) < 0)
			_exit(1);
		free(line);
		nanosleep(&pause, NULL);
	}
}

int watch_start(pid_t *pid, int *fd, const struct watch_opts *opts)
{
	int p[2];
	pid_t child;

	if (pipe2(p, O_CLOEXEC) < 0)
		return err_set("pipe: %s", strerror(errno));
	child = fork();
	if (child < 0) {
		close(p[0]);
		close(p[1]);
		return err_set("fork: %s", strerror(errno));
	}
	if (child == 0) {
		close(p[0]);
		watcher_main(p[1], opts);
		_exit(1);
	}
	close(p[1]);
	if (fcntl(p[0], F_SETFL, O_NONBLOCK) < 0) {
		close(p[0]);
		return err_set("fcntl: %s", strerror(errno));
	}
	*pid = child;
	*fd = p[0];
	return 0;
}

/* Builds a table from one snapshot line. */
static int table_from_line(struct authz *out, bool *synced, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *snap = json_loadb(line, len, 0, &jerr), *v;
	size_t i, bad = 0;
	int ret = -1;

	authz_init(out);
	if (!snap || !json_is_array(json_object_get(snap, "remotes"))) {
		err_set("malformed snapshot from the watcher: %s", snap ? "no remotes" : jerr.text);
		goto out;
	}
	json_array_foreach(json_object_get(snap, "remotes"), i, v)
	{
		if (authz_add_remote(out, v, json_is_true(json_object_get(v, "gitkube")), &bad) <
		    0) {
			event_log("warn", "remote_skipped", "{s:s}", "error", err_msg());
			continue;
		}
	}
	if (bad)
		event_log("warn", "authorized_keys_skipped", "{s:i}", "keys", (int)bad);
	*synced = json_is_true(json_object_get(snap, "synced"));
	ret = 0;
out:
	json_decref(snap);
	if (ret < 0)
		authz_release(out);
	return ret;
}

int watch_read(struct buf *r, int fd, struct authz *table, bool *synced)
{
	char chunk[65536];
	const char *start, *nl, *last = NULL;
	size_t last_len = 0;
	ssize_t n;
	int ret = 0;

	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0)
			return err_set("the Remote watcher stopped");
		if (buf_add(r, chunk, (size_t)n) < 0)
			return err_set("snapshot from the watcher is over %u bytes",
			               WATCH_LINE_MAX);
	}
	/* only the newest whole line matters */
	start = buf_str(r);
	while ((nl = memchr(start, '\n', r->len - (size_t)(start - buf_str(r))))) {
		last = start;
		last_len = (size_t)(nl - start);
		start = nl + 1;
	}
	if (last) {
		struct authz fresh;

		if (table_from_line(&fresh, synced, last, last_len) < 0) {
			ret = -1;
		} else {
			authz_release(table);
			*table = fresh;
			ret = 1;
		}
		buf_consume(r, (size_t)(start - buf_str(r)));
	}
	return ret;
}
