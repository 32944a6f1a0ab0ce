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

#include "clock.h"
#include "err.h"
#include "fs.h"
#include "event.h"
#include "kube.h"
#include "remote.h"
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

/* The prefix of status.remoteUrl: --external-url, or what the Service of
 * --external-url-from-service shows once it shows an address. "": none yet,
 * so no status is written. */
#define URL_BASE_MAX 1024
static struct {
	pthread_mutex_t lock;
	char url[URL_BASE_MAX];
} base = {PTHREAD_MUTEX_INITIALIZER, ""};

/* How often the Service (and, for a NodePort, the Nodes) is read again. */
#define SERVICE_POLL_S 10

static void mark_changed(void)
{
	shared.changed = true;
	pthread_cond_signal(&shared.changed_cond);
}

/* The part of a Remote that gitd serves from, in the Remote's own form
 * (table_from_line parses it back), or NULL when out of memory. */
static json_t *entry_of(const struct remote *r)
{
	json_t *keys = json_array();

	for (size_t i = 0; keys && i < r->nauthorized_keys; i++)
		if (json_array_append_new(keys, json_string(r->authorized_keys[i])) < 0) {
			json_decref(keys);
			keys = NULL;
		}
	if (!keys)
		return NULL;
	return json_pack("{s:b, s:{s:s, s:s}, s:{s:o, s:b, s:b}}", "gitkube", r->is_gitkube,
	                 "metadata", "namespace", r->ns, "name", r->name, "spec", "authorizedKeys",
	                 keys, "denyNonFastForwards", r->deny_non_fast_forwards,
	                 "allowDeleteCurrentBranch", r->allow_delete_current_branch);
}

/* Parses OBJ of watched RESOURCE into OUT: 0, or -1 with WHY set to the
 * reason it is refused. */
static int parse_remote(struct remote *out, char why[ERR_MAX], const json_t *obj, int resource)
{
	if (remote_parse(out, obj, resource == 1) == 0)
		return 0;
	snprintf(why, ERR_MAX, "%s", err_msg());
	return -1;
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

static const char *str_of(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

static bool str_eq(const char *a, const char *b)
{
	return a && b && !strcmp(a, b);
}

/* The Ready condition R's keys call for: True "Serving" with at least one
 * key that parses, else False "NoKeys"; False "InvalidSpec" saying WHY when
 * R is NULL (the Remote did not parse). Returns a new object or NULL. */
static json_t *ready_condition(const struct remote *r, const char *why, json_int_t generation)
{
	struct authz tmp;
	size_t bad = 0, good;
	char msg[160], skipped[96] = "";

	if (!r)
		return json_pack("{s:s, s:s, s:s, s:s, s:I}", "type", "Ready", "status", "False",
		                 "reason", "InvalidSpec", "message", why, "observedGeneration",
		                 generation);
	authz_init(&tmp);
	if (authz_add_remote(&tmp, r, &bad) < 0) {
		authz_release(&tmp);
		return NULL;
	}
	authz_release(&tmp);
	good = r->nauthorized_keys - bad;
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
 * The patch comes back as a MODIFIED event, which then finds nothing to do.
 * While gitd's Service shows no address (url_service, no fallback) the rest
 * is written without remoteUrl: a Remote is Ready whatever the load balancer
 * is doing, and a remoteUrl written before stays. R is OBJ parsed, or NULL
 * when it was refused for WHY. */
static void sync_status(struct kube_client **status_c, const struct watch_opts *opts, int resource,
                        const json_t *obj, const struct remote *r, const char *why)
{
	json_t *md = json_object_get(obj, "metadata"), *status = json_object_get(obj, "status");
	json_t *conds = json_object_get(status, "conditions"), *old = NULL, *ready = NULL;
	json_t *list = NULL, *patch = NULL, *v;
	const char *ns = str_of(md, "namespace"), *name = str_of(md, "name");
	const char *rv = str_of(md, "resourceVersion");
	json_int_t generation = json_integer_value(json_object_get(md, "generation"));
	struct kube_patch_opts po = {.subresource = "status"};
	char url[1200], now[32], prefix[URL_BASE_MAX];
	size_t i, blen;
	int ret;

	pthread_mutex_lock(&base.lock);
	snprintf(prefix, sizeof(prefix), "%s", base.url);
	pthread_mutex_unlock(&base.lock);
	if ((!prefix[0] && !opts->url_service) || !ns || !name || !rv)
		return;
	url[0] = '\0';
	blen = strlen(prefix);
	while (blen > 0 && prefix[blen - 1] == '/')
		blen--;
	if (blen && (size_t)snprintf(url, sizeof(url), "%.*s/%s/%s.git", (int)blen, prefix, ns,
	                             name) >= sizeof(url))
		return;
	ready = ready_condition(r, why, generation);
	if (!ready)
		return;
	json_array_foreach(conds, i, v)
	{
		if (str_eq(str_of(v, "type"), "Ready"))
			old = v;
	}
	if ((!url[0] || str_eq(str_of(status, "remoteUrl"), url)) &&
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
		clock_now_rfc3339(now);
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
	patch = json_pack("{s:{s:s}, s:{s:I, s:O}}", "metadata", "resourceVersion", rv, "status",
	                  "observedGeneration", generation, "conditions", list);
	if (!patch || (url[0] && json_object_set_new(json_object_get(patch, "status"), "remoteUrl",
	                                             json_string(url)) < 0))
		goto out;
	if (!*status_c && kube_client_new_default(status_c, opts->kubeconfig, opts->context) < 0) {
		*status_c = NULL;
		event_log("warn", "remote_status_failed", "{s:s, s:s, s:s}", "resource",
		          resources[resource], "remote", name, "error", err_msg());
		goto out;
	}
	ret = kube_patch(NULL, *status_c, resources[resource], ns, name, KUBE_PATCH_MERGE, patch,
	                 &po);
	if (ret == KUBE_ECONFLICT)
		event_log("debug", "remote_status_conflict", "{s:s, s:s}", "namespace", ns,
		          "remote", name);
	else if (ret < 0)
		event_log("warn", "remote_status_failed", "{s:s, s:s, s:s, s:s}", "resource",
		          resources[resource], "namespace", ns, "remote", name, "error", err_msg());
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
	struct remote r = {0};
	char key[600], why[ERR_MAX] = "";
	bool is_valid = false;

	if (ev == KUBE_EVENT_LISTED || ev == KUBE_EVENT_ADDED || ev == KUBE_EVENT_MODIFIED) {
		is_valid = parse_remote(&r, why, obj, w->resource) == 0;
		sync_status(&w->status_c, w->opts, w->resource, obj, is_valid ? &r : NULL, why);
	}
	pthread_mutex_lock(&shared.lock);
	switch (ev) {
	case KUBE_EVENT_LISTED:
	case KUBE_EVENT_ADDED:
	case KUBE_EVENT_MODIFIED:
		if (key_of(key, sizeof(key), obj, w->resource) == 0) {
			json_t *e = is_valid ? entry_of(&r) : NULL;

			if (e) {
				json_object_set_new(shared.objects, key, e);
				mark_changed();
			} else if (!is_valid && json_object_del(shared.objects, key) == 0) {
				mark_changed(); /* a Remote refused is not served */
			}
			if (!is_valid)
				event_log("warn", "remote_invalid", "{s:s, s:s}", "remote", key + 2,
				          "error", why);
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
	remote_release(&r);
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

/* --- status.remoteUrl from a Service (--external-url-from-service) ------- */

struct service_poll {
	const struct watch_opts *opts;
	struct watcher *ws; /* the watchers, whose Remotes are synced again */
	size_t nws;
	struct kube_client *c;        /* reads the Service and the Nodes */
	struct kube_client *status_c; /* writes the Remotes' status */
	char last_error[1024];        /* logged once until it changes */
};

/* The address of NODE pushers should use: its ExternalIP when EXTERNAL, else
 * its InternalIP; NULL when it has none or is not Ready and schedulable. */
static const char *node_address(const json_t *node, bool external)
{
	json_t *st = json_object_get(node, "status"), *v;
	bool ready = false;
	size_t i;

	if (json_is_true(json_object_get(json_object_get(node, "spec"), "unschedulable")))
		return NULL;
	json_array_foreach(json_object_get(st, "conditions"), i, v)
	{
		if (str_eq(str_of(v, "type"), "Ready") && str_eq(str_of(v, "status"), "True"))
			ready = true;
	}
	if (!ready)
		return NULL;
	json_array_foreach(json_object_get(st, "addresses"), i, v)
	{
		if (str_eq(str_of(v, "type"), external ? "ExternalIP" : "InternalIP") &&
		    str_of(v, "address") && *str_of(v, "address"))
			return str_of(v, "address");
	}
	return NULL;
}

/* Writes ssh://git@HOST[:PORT] for SVC into OUT, or "" when the Service
 * shows no address yet. The port is the one named "ssh", else the first.
 * LoadBalancer: status.loadBalancer.ingress[0] (ip, else hostname) and the
 * port; NodePort: the first Ready, schedulable node (in NODES' order, by
 * name) with an ExternalIP, else the first with an InternalIP, and the
 * nodePort. Other types show no address. */
static void url_of_service(char *out, size_t size, const json_t *svc, const json_t *nodes)
{
	const json_t *spec = json_object_get(svc, "spec"), *ports = json_object_get(spec, "ports");
	const json_t *port = json_array_get(ports, 0), *v;
	const char *type = str_of(spec, "type"), *host = NULL;
	json_int_t num = 0;
	char portstr[8] = "";
	size_t i;

	out[0] = '\0';
	json_array_foreach(ports, i, v)
	{
		if (str_eq(str_of(v, "name"), "ssh")) {
			port = v;
			break;
		}
	}
	if (str_eq(type, "LoadBalancer")) {
		const json_t *ing = json_array_get(
		    json_object_get(json_object_get(json_object_get(svc, "status"), "loadBalancer"),
		                    "ingress"),
		    0);

		host = str_of(ing, "ip");
		if (!host || !*host)
			host = str_of(ing, "hostname");
		num = json_integer_value(json_object_get(port, "port"));
	} else if (str_eq(type, "NodePort")) {
		const json_t *items = json_object_get(nodes, "items");

		for (int external = 1; external >= 0 && !host; external--)
			json_array_foreach(items, i, v)
			{
				if ((host = node_address(v, external)))
					break;
			}
		num = json_integer_value(json_object_get(port, "nodePort"));
	}
	if (!host || !*host || num <= 0 || num > 65535)
		return;
	if (num != 22)
		snprintf(portstr, sizeof(portstr), ":%d", (int)num);
	/* an IPv6 address is bracketed (RFC 3986 host) */
	if ((size_t)snprintf(out, size, "ssh://git@%s%s%s%s", strchr(host, ':') ? "[" : "", host,
	                     strchr(host, ':') ? "]" : "", portstr) >= size)
		out[0] = '\0';
}

/* Reads the Service (and the Nodes for a NodePort) and sets base.url from
 * it, or from --external-url while it shows no address. Returns 1 when
 * base.url changed, else 0; failures are logged once until they change. */
static int service_poll(struct service_poll *sp)
{
	const struct watch_opts *o = sp->opts;
	char ns[256], url[URL_BASE_MAX] = "", error[1024] = "";
	const char *name = strchr(o->url_service, '/');
	json_t *svc = NULL, *nodes = NULL;
	int changed = 0;

	snprintf(ns, sizeof(ns), "%.*s", name ? (int)(name - o->url_service) : 0, o->url_service);
	name = name ? name + 1 : "";
	if (!sp->c && kube_client_new_default(&sp->c, o->kubeconfig, o->context) < 0)
		sp->c = NULL;
	if (!sp->c || kube_get(&svc, sp->c, "v1/services", ns, name) < 0) {
		snprintf(error, sizeof(error), "service %s/%.255s: %.500s", ns, name, err_msg());
	} else if (str_eq(str_of(json_object_get(svc, "spec"), "type"), "NodePort") &&
	           kube_list(&nodes, sp->c, "v1/nodes", NULL, NULL) < 0) {
		snprintf(error, sizeof(error), "nodes: %.500s", err_msg());
	} else {
		url_of_service(url, sizeof(url), svc, nodes);
		if (!url[0])
			snprintf(error, sizeof(error), "service %s/%.255s shows no address yet", ns,
			         name);
	}
	if (!url[0] && o->url_base)
		snprintf(url, sizeof(url), "%s", o->url_base);
	if (strcmp(error, sp->last_error)) {
		if (error[0])
			event_log("warn", "external_url_unknown", "{s:s, s:s}", "error", error,
			          "fallback", o->url_base ? o->url_base : "");
		snprintf(sp->last_error, sizeof(sp->last_error), "%s", error);
	}
	pthread_mutex_lock(&base.lock);
	if (strcmp(base.url, url)) {
		snprintf(base.url, sizeof(base.url), "%s", url);
		changed = 1;
	}
	pthread_mutex_unlock(&base.lock);
	if (changed)
		event_log("info", "external_url", "{s:s, s:s}", "url", url, "source",
		          error[0] ? "flag" : "service");
	json_decref(nodes);
	json_decref(svc);
	return changed;
}

/* Rewrites the status of every Remote the watchers serve after base.url
 * changed: their watches see no event for it. */
static void resync_all(struct service_poll *sp)
{
	for (size_t i = 0; i < sp->nws; i++) {
		const struct watcher *w = &sp->ws[i];
		json_t *list = NULL, *v;
		size_t j;

		if (!sp->c || kube_list(&list, sp->c, resources[w->resource], w->ns, NULL) < 0)
			continue; /* e.g. no gitkube CRD: nothing to write */
		json_array_foreach(json_object_get(list, "items"), j, v)
		{
			struct remote r;
			char why[ERR_MAX];
			int ret = parse_remote(&r, why, v, w->resource);

			sync_status(&sp->status_c, sp->opts, w->resource, v, ret == 0 ? &r : NULL,
			            why);
			if (ret == 0)
				remote_release(&r);
		}
		json_decref(list);
	}
}

static void *service_thread(void *arg)
{
	struct service_poll *sp = arg;

	for (;;) {
		sleep(SERVICE_POLL_S);
		if (service_poll(sp))
			resync_all(sp);
	}
	return NULL;
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
	if (opts->url_base)
		snprintf(base.url, sizeof(base.url), "%s", opts->url_base);
	if (opts->url_service) {
		/* the first read comes before the watches list, so their first status
		 * writes already use the Service's address */
		static struct service_poll sp;
		pthread_t t;

		sp.opts = opts;
		sp.ws = ws;
		sp.nws = n;
		service_poll(&sp);
		if (pthread_create(&t, NULL, service_thread, &sp) != 0)
			_exit(1);
	}
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
		if (!line || fs_write_all(fd, line, strlen(line)) < 0 ||
		    fs_write_all(fd, "\n", 1) < 0)
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
		struct remote r;

		if (remote_parse(&r, v, json_is_true(json_object_get(v, "gitkube"))) < 0 ||
		    authz_add_remote(out, &r, &bad) < 0)
			event_log("warn", "remote_skipped", "{s:s}", "error", err_msg());
		remote_release(&r);
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
