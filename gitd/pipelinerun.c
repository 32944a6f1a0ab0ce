/* pipelinerun: the PipelineRun object of one pipeline, its status, the
 * "<remote>-pipeline" ConfigMap mirror, its Events and the Remote's
 * status.lastRun (see pipelinerun.h). A live run's writes go out on a writer
 * thread of its own, in order, the status coalesced to its latest state; a
 * failed one is logged and the pipeline goes on. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "err.h"
#include "jsontext.h"
#include "event.h"
#include "pipelinerun.h"
#include "release.h"
#include "banned.h"

#define LABEL_MAX 63           /* a label value (Kubernetes "Labels and Selectors") */
#define MESSAGE_MAX 32768      /* condition and stage messages (CRD maxLength) */
#define EVENT_MESSAGE_MAX 1024 /* kept short: Events are for humans */
#define STAGES_MAX 200         /* status.stages maxItems */
#define IMAGES_MAX 500         /* status.images maxItems */
#define APPLIED_MAX 5000       /* status.applied maxItems */
#define CONFLICT_RETRIES 3     /* re-reads after a 409 Conflict */
#define LOG_WRITE_INTERVAL_MS 1000

#define MANAGED_BY_LABEL "app.kubernetes.io/managed-by"
#define INTERRUPTED_MESSAGE "gitd restarted while this pipeline ran"

/* An Event waiting for the writer. */
struct pending_event {
	struct pending_event *next;
	char type[16];   /* "Normal" or "Warning" */
	char reason[64]; /* "StageRunning", ... */
	char *message;   /* owned */
};

/* What the writer is asked to send (bits of struct pipelinerun.want). */
enum { W_STATUS = 1, W_MIRROR = 2, W_LAST_RUN = 4, W_RELEASE = 8, W_LIST = 16 };

struct pipelinerun {
	struct kube_client *c; /* borrowed: outlives the run; the writer's alone
	                          while it runs */
	char ns[254];
	char name[254];
	char remote[254];
	char remote_gvr[128];  /* "" when unknown (a swept run) */
	char *ref;             /* spec.ref */
	char commit[65];       /* spec.after */
	char uid[64];          /* metadata.uid, or "" */
	json_int_t generation; /* metadata.generation, or -1 */
	json_t *obj;           /* the object as last read or written (the writer's) */
	json_t *status;        /* the status as last set (the caller's thread) */
	struct buf log;        /* status.logTail, valid UTF-8, at most LOG_TAIL_MAX */
	bool log_dirty;        /* log holds lines not submitted yet */
	long long last_submit_ms;
	/* the writer: a thread when the run is live (pipelinerun_create), none
	 * for the sweep, which writes in place; LOCK guards what follows */
	pthread_mutex_t lock;
	pthread_cond_t wake; /* work arrived, or stop */
	pthread_cond_t idle; /* the writer has nothing left */
	pthread_t writer;
	bool has_writer;
	bool is_stopping;
	bool is_busy;                 /* the writer is sending */
	unsigned want;                /* W_* still to send */
	json_t *next_status;          /* the status to send next (owned), or NULL */
	struct pending_event *events; /* in order */
	struct pending_event **events_tail;
	int status_ret;          /* the last status write's result */
	unsigned status_queued;  /* statuses queued for the writer so far */
	unsigned status_written; /* of them, the last one written (or failed) */
	bool is_list_asked;      /* pipelinerun_list_ahead queued W_LIST */
	bool is_listed;          /* the writer has listed (LISTED, LIST_RET) */
	json_t *listed;          /* the Remote's runs it listed (owned), or NULL */
	int list_ret;            /* pipelinerun_list_remote's result */
	json_t *wstatus;         /* the status the writes send (the writer's) */
	char release[24];        /* the release label's value, set once before W_RELEASE
	                            is queued (pipelinerun_set_release) */
	unsigned api_writes;     /* writes sent to the API server */
	long long api_ms;        /* time spent in them */
};

/* --- small helpers ------------------------------------------------------ */

static bool is_continuation(unsigned char ch)
{
	return (ch & 0xc0) == 0x80;
}

static bool is_alnum(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

/* Makes S a valid label value in OUT (LABEL_MAX + 1 bytes): characters other
 * than [A-Za-z0-9._-] become '-', at most 63 of them, starting and ending
 * with an alphanumeric character (may end up empty, which is valid). */
static void label_value(char out[LABEL_MAX + 1], const char *s)
{
	size_t n = 0;

	while (*s && !is_alnum(*s))
		s++;
	for (; *s && n < LABEL_MAX; s++)
		out[n++] = is_alnum(*s) || *s == '.' || *s == '_' || *s == '-' ? *s : '-';
	while (n > 0 && !is_alnum(out[n - 1]))
		n--;
	out[n] = '\0';
}

/* The branch of REF as a label value: "refs/heads/feature/x" -> "feature-x";
 * other refs keep what follows "refs/" ("refs/tags/v1" -> "tags-v1"). */
static void ref_label(char out[LABEL_MAX + 1], const char *ref)
{
	if (!strncmp(ref, "refs/heads/", 11))
		ref += 11;
	else if (!strncmp(ref, "refs/", 5))
		ref += 5;
	label_value(out, ref);
}

static const char *str_of(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

static const char *str_or(const json_t *obj, const char *key, const char *dflt)
{
	const char *s = str_of(obj, key);

	return s ? s : dflt;
}

static json_t *condition_get(json_t *status, const char *type)
{
	json_t *v;
	size_t i;

	json_array_foreach(json_object_get(status, "conditions"), i, v)
	{
		if (!strcmp(str_or(v, "type", ""), type))
			return v;
	}
	return NULL;
}

/* Sets the Succeeded condition; lastTransitionTime changes only when the
 * status does (API conventions). */
static void set_succeeded(struct pipelinerun *r, const char *status, const char *reason,
                          const char *message)
{
	json_t *conds = json_object_get(r->status, "conditions");
	json_t *cond = condition_get(r->status, "Succeeded");
	char now[32];

	if (!json_is_array(conds)) {
		conds = json_array();
		json_object_set_new(r->status, "conditions", conds);
	}
	if (!cond) {
		cond = json_object();
		json_array_append_new(conds, cond);
		json_object_set_new(cond, "type", json_string("Succeeded"));
	}
	if (strcmp(str_or(cond, "status", ""), status) || !str_of(cond, "lastTransitionTime")) {
		clock_now_rfc3339(now);
		json_object_set_new(cond, "lastTransitionTime", json_string(now));
	}
	json_object_set_new(cond, "status", json_string(status));
	json_object_set_new(cond, "reason", jsontext_lossy(reason, 1024));
	json_object_set_new(cond, "message", jsontext_lossy(message, MESSAGE_MAX));
	if (r->generation >= 0)
		json_object_set_new(cond, "observedGeneration", json_integer(r->generation));
}

/* The Succeeded condition's status in STATUS ("Unknown" when unset). */
static const char *succeeded_status(json_t *status)
{
	const char *s = str_of(condition_get(status, "Succeeded"), "status");

	return s ? s : "Unknown";
}

/* --- writes ------------------------------------------------------------- */

/* Counts one write to the API server that began at T0 (clock_now_ms()). */
static void api_done(struct pipelinerun *r, long long t0)
{
	pthread_mutex_lock(&r->lock);
	r->api_writes++;
	r->api_ms += clock_now_ms() - t0;
	pthread_mutex_unlock(&r->lock);
}

/* Replaces the status subresource with r->wstatus, re-reading the object
 * after a Conflict. Returns 0 or a kube.h code with err_msg(). */
static int write_status(struct pipelinerun *r)
{
	long long t0 = clock_now_ms();
	int ret = KUBE_ERROR;

	json_object_set(r->obj, "status", r->wstatus);
	for (int attempt = 0; attempt <= CONFLICT_RETRIES; attempt++) {
		json_t *got = NULL, *fresh = NULL;

		ret = kube_update_status(&got, r->c, PIPELINERUN_GVR, r->ns, r->name, r->obj);
		if (ret == 0) {
			json_object_set(got, "status", r->wstatus);
			json_decref(r->obj);
			r->obj = got;
			break;
		}
		if (ret != KUBE_ECONFLICT)
			break;
		/* someone else wrote the object: take its resourceVersion, keep
		 * our status (gitd alone writes it) */
		ret = kube_get(&fresh, r->c, PIPELINERUN_GVR, r->ns, r->name);
		if (ret < 0)
			break;
		json_object_set(fresh, "status", r->wstatus);
		json_decref(r->obj);
		r->obj = fresh;
		ret = KUBE_ECONFLICT;
		err_set("pipelinerun %s/%s: status kept conflicting", r->ns, r->name);
	}
	api_done(r, t0);
	if (ret < 0)
		event_log("warn", "pipelinerun_status_failed", "{s:s, s:s, s:s}", "namespace",
		          r->ns, "pipelinerun", r->name, "error", err_msg());
	return ret;
}

/* Creates or replaces the "<remote>-pipeline" ConfigMap from r->wstatus. */
static void write_mirror(struct pipelinerun *r)
{
	char name[300], remote_label[LABEL_MAX + 1];
	json_t *cond = condition_get(r->wstatus, "Succeeded"), *cm = NULL;
	char *status_json = json_dumps(r->wstatus, JSON_COMPACT | JSON_SORT_KEYS);
	long long t0 = clock_now_ms();
	int ret = KUBE_ERROR;

	if ((size_t)snprintf(name, sizeof(name), "%s-pipeline", r->remote) >= sizeof(name)) {
		err_set("remote name too long for its mirror configmap");
		goto out;
	}
	label_value(remote_label, r->remote);
	cm = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s, s:s}}, s:{s:s, s:s, s:s, s:s, s:s, s:s}}",
	               "apiVersion", "v1", "kind", "ConfigMap", "metadata", "name", name,
	               "namespace", r->ns, "labels", PIPELINERUN_LABEL_REMOTE, remote_label,
	               MANAGED_BY_LABEL, "slipway", "data", "pipelineRun", r->name, "status.json",
	               status_json ? status_json : "{}", "ref", r->ref ? r->ref : "", "commit",
	               r->commit, "succeeded", succeeded_status(r->wstatus), "reason",
	               str_or(cond, "reason", ""));
	if (!cm) {
		err_set("out of memory");
		goto out;
	}
	/* an unconditional PUT: the mirror shows the latest write, whoever made it */
	ret = kube_replace(NULL, r->c, "v1/configmaps", r->ns, name, NULL, cm);
	if (ret == KUBE_ENOTFOUND) {
		ret = kube_create(NULL, r->c, "v1/configmaps", r->ns, cm);
		if (ret == KUBE_EEXISTS)
			ret = kube_replace(NULL, r->c, "v1/configmaps", r->ns, name, NULL, cm);
	}
out:
	api_done(r, t0);
	if (ret < 0)
		event_log("warn", "pipelinerun_mirror_failed", "{s:s, s:s, s:s}", "namespace",
		          r->ns, "configmap", name, "error", err_msg());
	json_decref(cm);
	free(status_json);
}

static const char *hostname(void)
{
	static char host[256];

	if (!host[0] && gethostname(host, sizeof(host) - 1) < 0)
		snprintf(host, sizeof(host), "gitd");
	return host;
}

/* Emits a core v1 Event about the PipelineRun (TYPE "Normal" or "Warning"),
 * as client-go's event recorder does, so kubectl describe shows it. */
static void emit_event(struct pipelinerun *r, const char *type, const char *reason,
                       const char *message)
{
	static unsigned seq;
	json_t *md = json_object_get(r->obj, "metadata"), *ev = NULL;
	char name[300], now[32];
	struct timespec ts;
	long long t0 = clock_now_ms();
	int ret = KUBE_ERROR;

	clock_gettime(CLOCK_REALTIME, &ts);
	/* client-go names Events NAME.<hex nanoseconds>; the counter keeps two
	 * Events of one nanosecond apart */
	snprintf(name, sizeof(name), "%.200s.%llx%02x", r->name,
	         (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec,
	         seq++ & 0xff);
	clock_now_rfc3339(now);
	ev = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:s, s:s, s:s, s:s?, s:s?}, s:s, s:o, "
	               "s:s, s:{s:s, s:s}, s:s, s:s, s:i, s:s, s:s}",
	               "apiVersion", "v1", "kind", "Event", "metadata", "name", name, "namespace",
	               r->ns, "involvedObject", "apiVersion", "slipway.dev/v1alpha1", "kind",
	               "PipelineRun", "name", r->name, "namespace", r->ns, "uid", str_of(md, "uid"),
	               "resourceVersion", str_of(md, "resourceVersion"), "reason", reason,
	               "message", jsontext_lossy(message, EVENT_MESSAGE_MAX), "type", type,
	               "source", "component", "slipway-gitd", "host", hostname(), "firstTimestamp",
	               now, "lastTimestamp", now, "count", 1, "reportingComponent",
	               "slipway.dev/gitd", "reportingInstance", hostname());
	if (!ev) {
		err_set("out of memory");
		goto out;
	}
	ret = kube_create(NULL, r->c, "v1/events", r->ns, ev);
out:
	api_done(r, t0);
	if (ret < 0)
		event_log("warn", "pipelinerun_event_failed", "{s:s, s:s, s:s, s:s}", "namespace",
		          r->ns, "pipelinerun", r->name, "reason", reason, "error", err_msg());
	json_decref(ev);
}

/* Merge-patches the Remote's status.lastRun from r->wstatus. */
static void write_last_run(struct pipelinerun *r)
{
	json_t *cond = condition_get(r->wstatus, "Succeeded"), *patch;
	const struct kube_patch_opts po = {.subresource = "status"};
	long long t0 = clock_now_ms();
	int ret = KUBE_ERROR;

	if (!r->remote_gvr[0])
		return;
	patch = json_pack("{s:{s:{s:s, s:s, s:s, s:s, s:s, s:s?}}}", "status", "lastRun", "name",
	                  r->name, "ref", r->ref ? r->ref : "", "commit", r->commit, "succeeded",
	                  succeeded_status(r->wstatus), "reason", str_or(cond, "reason", ""),
	                  "completionTime", str_of(r->wstatus, "completionTime"));
	if (!patch)
		err_set("out of memory");
	else
		ret = kube_patch(NULL, r->c, r->remote_gvr, r->ns, r->remote, KUBE_PATCH_MERGE,
		                 patch, &po);
	api_done(r, t0);
	if (ret < 0)
		event_log("warn", "remote_last_run_failed", "{s:s, s:s, s:s}", "remote", r->remote,
		          "pipelinerun", r->name, "error", err_msg());
	json_decref(patch);
}

static void patch_labels(struct pipelinerun *r, json_t *labels, const json_t *status);

/* --- the writer --------------------------------------------------------- */

/* Runs of one process may share a client (pipeline.h: one for the
 * PipelineRuns of a push), and a client serves one request at a time: every
 * write, on whichever thread, holds this lock. */
static pthread_mutex_t client_lock = PTHREAD_MUTEX_INITIALIZER;

/* Sends what WANT names (W_*) with STATUS (owned; NULL keeps r->wstatus),
 * then the Events of the list EVENTS (owned), in the order a reader expects:
 * status, release label, mirror, Events, lastRun; then, with W_LIST, lists
 * the Remote's runs into r->listed. STATUS_SEQ is the status's number among
 * those queued (pipelinerun_finish waits for it). Returns the status
 * write's result (0 when none was asked for). */
static int send_writes(struct pipelinerun *r, unsigned want, json_t *status,
                       struct pending_event *events, unsigned status_seq)
{
	int ret = 0;

	pthread_mutex_lock(&client_lock);
	if (status) {
		json_decref(r->wstatus);
		r->wstatus = status;
	}
	if (want & W_STATUS) {
		ret = write_status(r);
		/* pipelinerun_finish waits for this write, not for the rest */
		pthread_mutex_lock(&r->lock);
		r->status_ret = ret;
		r->status_written = status_seq;
		pthread_cond_broadcast(&r->idle);
		/* a newer status is queued: its batch writes the mirror too */
		if ((want & W_MIRROR) && r->has_writer && (r->want & W_STATUS)) {
			r->want |= W_MIRROR;
			want &= ~(unsigned)W_MIRROR;
		}
		pthread_mutex_unlock(&r->lock);
	}
	/* after the status, which the run's end waits for; the patch returns
	 * the resourceVersion the next status write uses */
	if (want & W_RELEASE)
		patch_labels(r, json_pack("{s:s}", RELEASE_LABEL, r->release), r->wstatus);
	if (want & W_MIRROR)
		write_mirror(r);
	while (events) {
		struct pending_event *next = events->next;

		emit_event(r, events->type, events->reason, events->message);
		free(events->message);
		free(events);
		events = next;
	}
	if (want & W_LAST_RUN)
		write_last_run(r);
	if (want & W_LIST) {
		json_t *runs = NULL;
		int lret = pipelinerun_list_remote(&runs, r->c, r->ns, r->remote);

		if (lret < 0)
			event_log("warn", "pipeline_release", "{s:s, s:s}", "run", r->name, "error",
			          err_msg());
		pthread_mutex_lock(&r->lock);
		json_decref(r->listed);
		r->listed = runs;
		r->list_ret = lret;
		r->is_listed = true;
		pthread_cond_broadcast(&r->idle);
		pthread_mutex_unlock(&r->lock);
	}
	pthread_mutex_unlock(&client_lock);
	return ret;
}

/* The writer's thread: sends what is queued until told to stop with
 * nothing left. */
static void *writer_main(void *arg)
{
	struct pipelinerun *r = arg;

	pthread_mutex_lock(&r->lock);
	for (;;) {
		struct pending_event *events;
		json_t *status;
		unsigned want, seq;

		while (!r->want && !r->events && !r->is_stopping)
			pthread_cond_wait(&r->wake, &r->lock);
		if (!r->want && !r->events)
			break;
		want = r->want;
		seq = r->status_queued; /* the status taken is the latest queued */
		status = r->next_status;
		events = r->events;
		r->want = 0;
		r->next_status = NULL;
		r->events = NULL;
		r->events_tail = &r->events;
		r->is_busy = true;
		pthread_mutex_unlock(&r->lock);
		send_writes(r, want, status, events, seq);
		pthread_mutex_lock(&r->lock);
		r->is_busy = false;
		if (!r->want && !r->events)
			pthread_cond_broadcast(&r->idle);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

/* Starts R's writer thread, with every signal blocked so that signals stay
 * the caller's. Without a thread (it could not start) writes go out in
 * place, as for the sweep. */
static void writer_start(struct pipelinerun *r)
{
	sigset_t all, old;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r->has_writer = pthread_create(&r->writer, NULL, writer_main, r) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!r->has_writer)
		event_log("warn", "pipelinerun_writer", "{s:s, s:s}", "pipelinerun", r->name,
		          "error", "cannot start the writer thread: writing in place");
}

/* Queues the status as it is now, with the log tail, for what WANT names
 * (W_*), and an Event TYPE REASON MESSAGE when TYPE is not NULL (MESSAGE
 * copied). The status goes out coalesced: queued twice before the writer
 * takes it, only the later one is sent. Without a writer, sends at once and
 * returns the status write's result; else returns 0. */
static int submit(struct pipelinerun *r, unsigned want, const char *type, const char *reason,
                  const char *message)
{
	struct pending_event *ev = NULL;
	json_t *snap;

	if (r->log.len || json_object_get(r->status, "logTail"))
		json_object_set_new(r->status, "logTail", json_string(buf_str(&r->log)));
	if (r->generation >= 0)
		json_object_set_new(r->status, "observedGeneration", json_integer(r->generation));
	snap = json_deep_copy(r->status);
	if (type && (ev = calloc(1, sizeof(*ev)))) {
		snprintf(ev->type, sizeof(ev->type), "%s", type);
		snprintf(ev->reason, sizeof(ev->reason), "%s", reason);
		if (!(ev->message = strdup(message ? message : ""))) {
			free(ev);
			ev = NULL;
		}
	}
	if (!snap || (type && !ev)) {
		event_log("warn", "pipelinerun_status_failed", "{s:s, s:s, s:s}", "namespace",
		          r->ns, "pipelinerun", r->name, "error", "out of memory");
		if (!snap)
			want &= ~(unsigned)(W_STATUS | W_MIRROR | W_LAST_RUN);
	}
	r->log_dirty = false;
	r->last_submit_ms = clock_now_ms();
	if (!r->has_writer)
		return send_writes(r, want, snap, ev, 0);
	pthread_mutex_lock(&r->lock);
	if (snap) {
		json_decref(r->next_status);
		r->next_status = snap;
	}
	if (want & W_STATUS)
		r->status_queued++;
	r->want |= want;
	if (ev) {
		*r->events_tail = ev;
		r->events_tail = &ev->next;
	}
	pthread_cond_signal(&r->wake);
	pthread_mutex_unlock(&r->lock);
	return 0;
}

/* Waits until the writer has written the status last queued (whatever was
 * queued before it included; what follows it in its batch, the mirror,
 * Events and lastRun, may still be on the way). Returns that write's
 * result (0 without a writer: submit returned it). */
static int flush_status(struct pipelinerun *r)
{
	int ret;

	if (!r->has_writer)
		return 0;
	pthread_mutex_lock(&r->lock);
	while (r->status_written != r->status_queued)
		pthread_cond_wait(&r->idle, &r->lock);
	ret = r->status_ret;
	pthread_mutex_unlock(&r->lock);
	return ret;
}

/* Waits until the writer has sent everything queued. Returns the last status
 * write's result (0 without a writer: submit returned it). */
static int flush(struct pipelinerun *r)
{
	int ret;

	if (!r->has_writer)
		return 0;
	pthread_mutex_lock(&r->lock);
	while (r->want || r->events || r->is_busy)
		pthread_cond_wait(&r->idle, &r->lock);
	ret = r->status_ret;
	pthread_mutex_unlock(&r->lock);
	return ret;
}

/* --- the run ------------------------------------------------------------ */

static struct pipelinerun *run_alloc(struct kube_client *c)
{
	struct pipelinerun *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->c = c;
	r->generation = -1;
	r->events_tail = &r->events;
	buf_init(&r->log, PIPELINERUN_LOG_TAIL_MAX);
	r->status = json_object();
	if (!r->status) {
		free(r);
		return NULL;
	}
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->wake, NULL);
	pthread_cond_init(&r->idle, NULL);
	return r;
}

/* Fills the names of R from its object r->obj. */
static int run_names_from_obj(struct pipelinerun *r)
{
	json_t *md = json_object_get(r->obj, "metadata"), *spec = json_object_get(r->obj, "spec");
	const char *ns = str_of(md, "namespace"), *name = str_of(md, "name");
	json_t *gen = json_object_get(md, "generation");

	if (!ns || !name || strlen(ns) >= sizeof(r->ns) || strlen(name) >= sizeof(r->name))
		return err_set("pipelinerun without a valid metadata.namespace and name");
	snprintf(r->ns, sizeof(r->ns), "%s", ns);
	snprintf(r->name, sizeof(r->name), "%s", name);
	snprintf(r->remote, sizeof(r->remote), "%s", str_or(spec, "remote", ""));
	snprintf(r->commit, sizeof(r->commit), "%s", str_or(spec, "after", ""));
	snprintf(r->uid, sizeof(r->uid), "%s", str_or(md, "uid", ""));
	r->generation = json_is_integer(gen) ? json_integer_value(gen) : -1;
	r->ref = strdup(str_or(spec, "ref", ""));
	if (!r->ref)
		return err_set("out of memory");
	return 0;
}

int pipelinerun_create(struct pipelinerun **out, struct kube_client *c,
                       const struct pipelinerun_spec *spec, const char *reason, const char *message)
{
	struct pipelinerun *r = NULL;
	char gen_name[300], ref_lbl[LABEL_MAX + 1], remote_lbl[LABEL_MAX + 1];
	char commit_lbl[LABEL_MAX + 1], now[32];
	json_t *obj = NULL, *got = NULL;
	long long t0;
	int ret = KUBE_ERROR;

	*out = NULL;
	if (spec->remote_gvr && strlen(spec->remote_gvr) >= 128) {
		err_set("remote resource name too long: %s", spec->remote_gvr);
		goto out;
	}
	r = run_alloc(c);
	if (!r) {
		err_set("out of memory");
		goto out;
	}
	snprintf(gen_name, sizeof(gen_name), "%.200s-", spec->remote);
	label_value(remote_lbl, spec->remote);
	ref_label(ref_lbl, spec->ref);
	/* a SHA-1 id fits a label value whole; a SHA-256 id loses its last digit */
	label_value(commit_lbl, spec->after);
	obj = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s, s:s, s:s}}, "
	                "s:{s:s, s:s, s:s?, s:s, s:{s:o, s:o}, s:s}}",
	                "apiVersion", "slipway.dev/v1alpha1", "kind", "PipelineRun", "metadata",
	                "generateName", gen_name, "namespace", spec->ns, "labels",
	                PIPELINERUN_LABEL_REMOTE, remote_lbl, PIPELINERUN_LABEL_REF, ref_lbl,
	                PIPELINERUN_LABEL_COMMIT, commit_lbl, "spec", "remote", spec->remote, "ref",
	                spec->ref, "before", spec->before, "after", spec->after, "pusher",
	                "fingerprint", jsontext_lossy(spec->fingerprint, 256), "comment",
	                jsontext_lossy(spec->comment, 1024), "trigger", "push");
	if (obj && spec->trigger)
		json_object_set_new(json_object_get(obj, "spec"), "trigger",
		                    json_string(spec->trigger));
	if (obj && spec->sender && spec->sender[0])
		json_object_set_new(json_object_get(json_object_get(obj, "spec"), "pusher"), "name",
		                    jsontext_lossy(spec->sender, 256));
	if (!obj) {
		err_set("out of memory");
		goto out;
	}
	t0 = clock_now_ms();
	pthread_mutex_lock(&client_lock);
	ret = kube_create(&got, c, PIPELINERUN_GVR, spec->ns, obj);
	pthread_mutex_unlock(&client_lock);
	api_done(r, t0);
	if (ret < 0)
		goto out;
	r->obj = got;
	got = NULL;
	if (run_names_from_obj(r) < 0) {
		ret = KUBE_ERROR;
		goto out;
	}
	snprintf(r->remote_gvr, sizeof(r->remote_gvr), "%s",
	         spec->remote_gvr ? spec->remote_gvr : "");
	clock_now_rfc3339(now);
	json_object_set_new(r->status, "startTime", json_string(now));
	json_object_set_new(r->status, "stages", json_array());
	json_object_set_new(r->status, "images", json_array());
	set_succeeded(r, "Unknown", reason, message);
	writer_start(r);
	submit(r, W_STATUS | W_MIRROR, "Normal", "Created", message && *message ? message : reason);
	*out = r;
	r = NULL;
	ret = 0;
out:
	json_decref(obj);
	json_decref(got);
	pipelinerun_free(r);
	return ret;
}

const char *pipelinerun_name(const struct pipelinerun *r)
{
	return r->name;
}

const char *pipelinerun_uid(const struct pipelinerun *r)
{
	return r->uid[0] ? r->uid : NULL;
}

void pipelinerun_progress(struct pipelinerun *r, const char *reason, const char *message)
{
	set_succeeded(r, "Unknown", reason, message);
	submit(r, W_STATUS, NULL, NULL, NULL);
}

static json_t *stage_get(struct pipelinerun *r, const char *name, bool create)
{
	json_t *stages = json_object_get(r->status, "stages"), *v;
	size_t i;

	if (!json_is_array(stages)) {
		stages = json_array();
		json_object_set_new(r->status, "stages", stages);
	}
	json_array_foreach(stages, i, v)
	{
		if (!strcmp(str_or(v, "name", ""), name))
			return v;
	}
	if (!create || json_array_size(stages) >= STAGES_MAX)
		return NULL;
	v = json_pack("{s:o, s:s}", "name", jsontext_lossy(name, 253), "phase", "Pending");
	if (v && json_array_append_new(stages, v) < 0)
		v = NULL;
	return v;
}

static bool phase_is_final(const char *phase)
{
	return !strcmp(phase, "Succeeded") || !strcmp(phase, "Failed") || !strcmp(phase, "Skipped");
}

/* Sets the phase of stage ST, with its times; MESSAGE NULL keeps the old. */
static void stage_set(json_t *st, const char *phase, const char *message)
{
	char now[32];

	clock_now_rfc3339(now);
	json_object_set_new(st, "phase", json_string(phase));
	if (!strcmp(phase, "Running"))
		json_object_set_new(st, "startTime", json_string(now));
	if (phase_is_final(phase))
		json_object_set_new(st, "completionTime", json_string(now));
	if (message)
		json_object_set_new(st, "message", jsontext_lossy(message, MESSAGE_MAX));
}

void pipelinerun_stage(struct pipelinerun *r, const char *name, const char *phase,
                       const char *message)
{
	json_t *st = stage_get(r, name, true);
	char reason[32];

	if (!st) {
		event_log("warn", "pipelinerun_stage_dropped", "{s:s, s:s, s:s}", "pipelinerun",
		          r->name, "stage", name, "reason", "too many stages");
		return;
	}
	stage_set(st, phase, message);
	if (strcmp(phase, "Pending")) {
		snprintf(reason, sizeof(reason), "Stage%s", phase);
		submit(r, W_STATUS | W_MIRROR, !strcmp(phase, "Failed") ? "Warning" : "Normal",
		       reason, message && *message ? message : name);
	} else {
		submit(r, W_STATUS | W_MIRROR, NULL, NULL, NULL);
	}
}

void pipelinerun_image(struct pipelinerun *r, const char *deployment, const char *container,
                       const char *image)
{
	json_t *images = json_object_get(r->status, "images");

	if (!json_is_array(images)) {
		images = json_array();
		json_object_set_new(r->status, "images", images);
	}
	if (json_array_size(images) >= IMAGES_MAX)
		return;
	json_array_append_new(images, json_pack("{s:o, s:o, s:o}", "deployment",
	                                        jsontext_lossy(deployment, 253), "container",
	                                        jsontext_lossy(container, 63), "image",
	                                        jsontext_lossy(image, 1024)));
}

void pipelinerun_applied(struct pipelinerun *r, const char *api_version, const char *kind,
                         const char *name, const char *action)
{
	json_t *applied = json_object_get(r->status, "applied");

	if (!json_is_array(applied)) {
		applied = json_array();
		json_object_set_new(r->status, "applied", applied);
	}
	if (json_array_size(applied) >= APPLIED_MAX)
		return;
	json_array_append_new(applied, json_pack("{s:o, s:o, s:o, s:s}", "apiVersion",
	                                         jsontext_lossy(api_version, 316), "kind",
	                                         jsontext_lossy(kind, 63), "name",
	                                         jsontext_lossy(name, 253), "action", action));
}

/* Drops the oldest lines of the tail until N more bytes fit. */
static void log_make_room(struct buf *b, size_t n)
{
	size_t cut;
	const char *s, *nl;

	if (b->len + n <= b->max)
		return;
	if (n >= b->max) {
		buf_consume(b, b->len);
		return;
	}
	cut = b->len + n - b->max;
	s = buf_str(b);
	nl = memchr(s + cut - 1, '\n', b->len - (cut - 1));
	buf_consume(b, nl ? (size_t)(nl - s) + 1 : b->len);
}

void pipelinerun_log(struct pipelinerun *r, const char *line)
{
	json_t *j = jsontext_lossy(line, strlen(line));
	const char *s = json_string_value(j);
	size_t len = s ? strlen(s) : 0;

	if (!s)
		return;
	while (len && (s[len - 1] == '\n' || s[len - 1] == '\r'))
		len--;
	if (len + 1 > r->log.max) {
		/* one line longer than the tail: keep its end */
		size_t skip = len + 1 - r->log.max;

		while (skip < len && is_continuation((unsigned char)s[skip]))
			skip++;
		s += skip;
		len -= skip;
	}
	log_make_room(&r->log, len + 1);
	if (buf_add(&r->log, s, len) == 0 && buf_add(&r->log, "\n", 1) == 0)
		r->log_dirty = true;
	json_decref(j);
	if (r->log_dirty && clock_now_ms() - r->last_submit_ms >= LOG_WRITE_INTERVAL_MS)
		submit(r, W_STATUS, NULL, NULL, NULL);
}

/* Closes the stages left open and sets Succeeded to its final value. */
static void run_end(struct pipelinerun *r, bool succeeded, const char *reason, const char *message)
{
	json_t *v;
	size_t i;
	char now[32];

	json_array_foreach(json_object_get(r->status, "stages"), i, v)
	{
		const char *phase = str_or(v, "phase", "Pending");

		if (!strcmp(phase, "Running"))
			stage_set(v, succeeded ? "Succeeded" : "Failed", NULL);
		else if (!strcmp(phase, "Pending"))
			stage_set(v, "Skipped", NULL);
	}
	clock_now_rfc3339(now);
	json_object_set_new(r->status, "completionTime", json_string(now));
	set_succeeded(r, succeeded ? "True" : "False", succeeded ? "Succeeded" : reason, message);
}

int pipelinerun_finish(struct pipelinerun *r, bool succeeded, const char *reason,
                       const char *message)
{
	int ret;

	if (!reason || !*reason)
		reason = succeeded ? "Succeeded" : "Failed";
	if (!message || !*message)
		message = succeeded ? "pipeline succeeded" : reason;
	run_end(r, succeeded, reason, message);
	ret = submit(r, W_STATUS | W_MIRROR | W_LAST_RUN, succeeded ? "Normal" : "Warning",
	             succeeded ? "Succeeded" : reason, message);
	if (r->has_writer)
		ret = flush_status(r);
	if (ret < 0)
		return err_set("pipelinerun %s/%s: the final status could not be written", r->ns,
		               r->name);
	return 0;
}

void pipelinerun_flush(struct pipelinerun *r)
{
	flush(r);
}

void pipelinerun_list_ahead(struct pipelinerun *r)
{
	if (!r->has_writer)
		return;
	pthread_mutex_lock(&r->lock);
	r->is_list_asked = true;
	r->is_listed = false;
	r->want |= W_LIST;
	pthread_cond_signal(&r->wake);
	pthread_mutex_unlock(&r->lock);
}

int pipelinerun_listed(json_t **out, struct pipelinerun *r)
{
	int ret;

	*out = NULL;
	pthread_mutex_lock(&r->lock);
	if (!r->is_list_asked) {
		pthread_mutex_unlock(&r->lock);
		return 1;
	}
	while (!r->is_listed)
		pthread_cond_wait(&r->idle, &r->lock);
	ret = r->list_ret;
	if (ret == 0) {
		*out = r->listed;
		r->listed = NULL;
	} else {
		ret = err_set("cannot list the runs of %s/%s (logged as pipeline_release)", r->ns,
		              r->remote);
	}
	r->is_list_asked = false;
	pthread_mutex_unlock(&r->lock);
	return ret;
}

void pipelinerun_api_stats(unsigned *writes, long long *ms, struct pipelinerun *r)
{
	pthread_mutex_lock(&r->lock);
	*writes = r->api_writes;
	*ms = r->api_ms;
	pthread_mutex_unlock(&r->lock);
}

const json_t *pipelinerun_status(const struct pipelinerun *r)
{
	return r->status;
}

void pipelinerun_free(struct pipelinerun *r)
{
	if (!r)
		return;
	if (r->has_writer) {
		/* the writer sends what is queued before it stops */
		pthread_mutex_lock(&r->lock);
		r->is_stopping = true;
		pthread_cond_signal(&r->wake);
		pthread_mutex_unlock(&r->lock);
		pthread_join(r->writer, NULL);
	}
	json_decref(r->next_status);
	json_decref(r->listed);
	while (r->events) {
		struct pending_event *next = r->events->next;

		free(r->events->message);
		free(r->events);
		r->events = next;
	}
	pthread_cond_destroy(&r->idle);
	pthread_cond_destroy(&r->wake);
	pthread_mutex_destroy(&r->lock);
	json_decref(r->wstatus);
	json_decref(r->obj);
	json_decref(r->status);
	buf_release(&r->log);
	free(r->ref);
	free(r);
}

/* --- runs kubectl slipway creates ----------------------------------------- */

bool pipelinerun_is_unclaimed(const json_t *obj)
{
	const char *trigger = release_trigger(obj);
	const json_t *status = json_object_get(obj, "status");

	return (!strcmp(trigger, "rollback") || !strcmp(trigger, "config")) &&
	       (!status || (json_is_object(status) && !json_object_size(status)));
}

/* Merge-patches LABELS (an object, stolen) into R's metadata.labels and
 * keeps the object returned, with STATUS (borrowed) as its status. The
 * caller holds client_lock. */
static void patch_labels(struct pipelinerun *r, json_t *labels, const json_t *status)
{
	json_t *patch = json_pack("{s:{s:o}}", "metadata", "labels", labels), *got = NULL;
	int ret = KUBE_ERROR;

	if (!patch)
		err_set("out of memory");
	else
		ret = kube_patch(&got, r->c, PIPELINERUN_GVR, r->ns, r->name, KUBE_PATCH_MERGE,
		                 patch, NULL);
	if (ret == 0 && got) {
		if (status)
			json_object_set(got, "status", (json_t *)status);
		json_decref(r->obj);
		r->obj = got;
		got = NULL;
	}
	if (ret < 0)
		event_log("warn", "pipelinerun_labels_failed", "{s:s, s:s, s:s}", "namespace",
		          r->ns, "pipelinerun", r->name, "error", err_msg());
	json_decref(got);
	json_decref(patch);
}

int pipelinerun_adopt(struct pipelinerun **out, struct kube_client *c, const json_t *obj,
                      const char *remote_gvr, const char *reason, const char *message)
{
	struct pipelinerun *r = NULL;
	char ref_lbl[LABEL_MAX + 1], remote_lbl[LABEL_MAX + 1], commit_lbl[LABEL_MAX + 1];
	char now[32];
	json_t *got = NULL;
	int ret = KUBE_ERROR;

	*out = NULL;
	if (remote_gvr && strlen(remote_gvr) >= sizeof(r->remote_gvr)) {
		err_set("remote resource name too long: %s", remote_gvr);
		goto out;
	}
	r = run_alloc(c);
	if (!r || !(r->obj = json_deep_copy(obj))) {
		err_set("out of memory");
		goto out;
	}
	if (run_names_from_obj(r) < 0)
		goto out;
	snprintf(r->remote_gvr, sizeof(r->remote_gvr), "%s", remote_gvr ? remote_gvr : "");
	clock_now_rfc3339(now);
	json_object_set_new(r->status, "startTime", json_string(now));
	json_object_set_new(r->status, "stages", json_array());
	json_object_set_new(r->status, "images", json_array());
	set_succeeded(r, "Unknown", reason, message);
	json_object_set(r->obj, "status", r->status);
	/* one try under the resourceVersion read: a Conflict means another
	 * claimant (or the creator) changed it first */
	ret = kube_update_status(&got, c, PIPELINERUN_GVR, r->ns, r->name, r->obj);
	if (ret < 0)
		goto out;
	json_object_set(got, "status", r->status);
	json_decref(r->obj);
	r->obj = got;
	got = NULL;
	label_value(remote_lbl, r->remote);
	ref_label(ref_lbl, r->ref);
	label_value(commit_lbl, r->commit);
	pthread_mutex_lock(&client_lock);
	patch_labels(r,
	             json_pack("{s:s, s:s, s:s}", PIPELINERUN_LABEL_REMOTE, remote_lbl,
	                       PIPELINERUN_LABEL_REF, ref_lbl, PIPELINERUN_LABEL_COMMIT,
	                       commit_lbl),
	             r->status);
	pthread_mutex_unlock(&client_lock);
	/* from here on as a run gitd created: writes go out on the writer */
	writer_start(r);
	submit(r, W_MIRROR, "Normal", "Created", message && *message ? message : reason);
	*out = r;
	r = NULL;
	ret = 0;
out:
	json_decref(got);
	pipelinerun_free(r);
	return ret;
}

void pipelinerun_set_release(struct pipelinerun *r, long n)
{
	json_object_set_new(r->status, "release", json_integer(n));
	/* the writer reads it after submit hands W_RELEASE over under r->lock */
	snprintf(r->release, sizeof(r->release), "%ld", n);
	submit(r, W_RELEASE, NULL, NULL, NULL);
}

int pipelinerun_list_remote(json_t **out, struct kube_client *c, const char *ns, const char *remote)
{
	char selector[LABEL_MAX + 64], lbl[LABEL_MAX + 1];
	struct kube_list_opts lo = {.label_selector = selector};
	json_t *list = NULL, *runs = NULL, *v;
	size_t i;
	int ret;

	*out = NULL;
	label_value(lbl, remote);
	snprintf(selector, sizeof(selector), "%s=%s", PIPELINERUN_LABEL_REMOTE, lbl);
	ret = kube_list(&list, c, PIPELINERUN_GVR, ns, &lo);
	if (ret < 0)
		goto out;
	runs = json_array();
	if (!runs) {
		ret = err_set("out of memory");
		goto out;
	}
	json_array_foreach(json_object_get(list, "items"), i, v)
	{
		if (!strcmp(str_or(json_object_get(v, "spec"), "remote", ""), remote) &&
		    json_array_append(runs, v) < 0) {
			ret = err_set("out of memory");
			goto out;
		}
	}
	ret = release_sort(runs);
	if (ret < 0)
		goto out;
	*out = runs;
	runs = NULL;
out:
	json_decref(runs);
	json_decref(list);
	return ret;
}

int pipelinerun_prune(struct kube_client *c, const char *ns, const char *remote, long limit,
                      json_t *listed, const struct pipelinerun *self)
{
	const json_t *current, *v, *highest = NULL;
	json_t *runs = NULL;
	size_t i, nfinished = 0;
	int ret, deleted = 0;

	if (listed) {
		json_t *item;

		runs = json_incref(listed);
		/* SELF was listed before it ended: count it as it is now */
		json_array_foreach(runs, i, item)
		{
			if (self && !strcmp(str_or(json_object_get(item, "metadata"), "name", ""),
			                    self->name))
				json_object_set(item, "status", self->status);
		}
		ret = release_sort(runs);
	} else {
		ret = pipelinerun_list_remote(&runs, c, ns, remote);
	}
	if (ret < 0) {
		json_decref(runs);
		return ret;
	}
	current = release_current(runs);
	json_array_foreach(runs, i, v)
	{
		if (release_is_finished(v))
			nfinished++;
		if (release_number(v) && (!highest || release_number(v) > release_number(highest)))
			highest = v;
	}
	json_array_foreach(runs, i, v)
	{
		const char *name = str_of(json_object_get(v, "metadata"), "name");

		if (nfinished <= (size_t)limit)
			break;
		if (!release_is_finished(v) || v == current || v == highest || !name)
			continue;
		ret = kube_delete(NULL, c, PIPELINERUN_GVR, ns, name, "Background");
		if (ret < 0 && ret != KUBE_ENOTFOUND) {
			event_log("warn", "pipelinerun_prune_failed", "{s:s, s:s, s:s}",
			          "namespace", ns, "pipelinerun", name, "error", err_msg());
			continue;
		}
		nfinished--;
		deleted++;
		event_log("info", "pipelinerun_pruned", "{s:s, s:s, s:s, s:I}", "namespace", ns,
		          "remote", remote, "pipelinerun", name, "limit", (json_int_t)limit);
	}
	json_decref(runs);
	return deleted;
}

/* --- the sweep at start-up ----------------------------------------------- */

/* Deletes the objects of GVR in NS labelled with the run's name; NotFound
 * and Forbidden are fine (gone already, or gitd may not touch them). */
static void delete_labelled(struct pipelinerun *r, const char *gvr)
{
	char selector[300];
	struct kube_list_opts lo = {.label_selector = selector};
	json_t *list = NULL, *v;
	size_t i;
	int ret;

	snprintf(selector, sizeof(selector), "%s=%s", PIPELINERUN_LABEL_RUN, r->name);
	ret = kube_list(&list, r->c, gvr, r->ns, &lo);
	if (ret < 0) {
		if (ret != KUBE_EFORBIDDEN && ret != KUBE_ENOTFOUND)
			event_log("warn", "pipelinerun_cleanup_failed", "{s:s, s:s, s:s}",
			          "pipelinerun", r->name, "resource", gvr, "error", err_msg());
		goto out;
	}
	json_array_foreach(json_object_get(list, "items"), i, v)
	{
		const char *name = str_of(json_object_get(v, "metadata"), "name");

		if (!name)
			continue;
		ret = kube_delete(NULL, r->c, gvr, r->ns, name, "Background");
		if (ret < 0 && ret != KUBE_ENOTFOUND && ret != KUBE_EFORBIDDEN)
			event_log("warn", "pipelinerun_cleanup_failed", "{s:s, s:s, s:s, s:s}",
			          "pipelinerun", r->name, "resource", gvr, "name", name, "error",
			          err_msg());
	}
out:
	json_decref(list);
}

/* Marks one PipelineRun object OBJ (borrowed) Interrupted when it was still
 * running. Returns 1 when marked, 0 when it had ended, -1 on failure. */
static int sweep_one(struct kube_client *c, json_t *obj)
{
	struct pipelinerun *r = NULL;
	json_t *status = json_object_get(obj, "status");
	const char *tail = str_of(status, "logTail");
	const char *state = str_of(condition_get(status, "Succeeded"), "status");
	int ret = -1;

	if ((state && strcmp(state, "Unknown")) || pipelinerun_is_unclaimed(obj))
		return 0;
	r = run_alloc(c);
	if (!r) {
		err_set("out of memory");
		goto out;
	}
	r->obj = json_incref(obj);
	if (run_names_from_obj(r) < 0)
		goto out;
	if (json_is_object(status)) {
		json_decref(r->status);
		r->status = json_deep_copy(status);
		if (!r->status) {
			err_set("out of memory");
			goto out;
		}
	}
	if (tail && buf_adds(&r->log, tail) < 0)
		buf_release(&r->log);
	run_end(r, false, "Interrupted", INTERRUPTED_MESSAGE);
	submit(r, W_STATUS | W_MIRROR, "Warning", "Interrupted", INTERRUPTED_MESSAGE);
	delete_labelled(r, "v1/pods");
	delete_labelled(r, "v1/secrets");
	event_log("info", "pipelinerun_interrupted", "{s:s, s:s}", "namespace", r->ns,
	          "pipelinerun", r->name);
	ret = 1;
out:
	pipelinerun_free(r);
	return ret;
}

static int by_creation(const void *a, const void *b)
{
	const json_t *const *x = a, *const *y = b;
	const char *tx = str_or(json_object_get(*x, "metadata"), "creationTimestamp", "");
	const char *ty = str_or(json_object_get(*y, "metadata"), "creationTimestamp", "");

	return strcmp(tx, ty);
}

/* Sweeps NS (NULL: all namespaces); adds the runs marked to *MARKED. */
static int sweep_namespace(struct kube_client *c, const char *ns, int *marked)
{
	json_t *list = NULL, **items = NULL, *items_arr;
	size_t n, i;
	int ret;

	ret = kube_list(&list, c, PIPELINERUN_GVR, ns, NULL);
	if (ret < 0)
		goto out;
	items_arr = json_object_get(list, "items");
	n = json_array_size(items_arr);
	items = calloc(n ? n : 1, sizeof(*items));
	if (!items) {
		ret = err_set("out of memory");
		goto out;
	}
	for (i = 0; i < n; i++)
		items[i] = json_array_get(items_arr, i);
	/* oldest first, so each Remote's mirror ends with its newest run */
	qsort(items, n, sizeof(*items), by_creation);
	for (i = 0; i < n; i++) {
		int r = sweep_one(c, items[i]);

		if (r > 0)
			(*marked)++;
		else if (r < 0)
			event_log("warn", "pipelinerun_sweep_failed", "{s:s}", "error", err_msg());
	}
out:
	free(items);
	json_decref(list);
	return ret;
}

int pipelinerun_sweep_interrupted(struct kube_client *c, const char *const *namespaces)
{
	int marked = 0, ret;

	if (!namespaces || !namespaces[0])
		return (ret = sweep_namespace(c, NULL, &marked)) < 0 ? ret : marked;
	for (size_t i = 0; namespaces[i]; i++) {
		ret = sweep_namespace(c, namespaces[i], &marked);
		if (ret < 0)
			return ret;
	}
	return marked;
}
