/* deployer: set images on a Deployment and follow the rollout (see
 * deployer.h). The flow is read, check, patch (with the read resourceVersion
 * as a precondition), wait, and on failure patch the old images back. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "clock.h"
#include "deployer.h"
#include "err.h"
#include "imageref.h"
#include "log.h"
#include "banned.h"

#define DEPLOYMENTS "apps/v1/deployments"
#define REPLICASETS "apps/v1/replicasets"
#define PODS "v1/pods"
/* Set by the Deployment controller on the Deployment and each of its
 * ReplicaSets (k8s.io/kubernetes pkg/controller/deployment/util). */
#define REVISION_ANNOTATION "deployment.kubernetes.io/revision"
#define HASH_LABEL "pod-template-hash"
/* the longest time between two looks at the new Pods */
#define POD_CHECK_MS 1000

/* ---- rollout state ----------------------------------------------------- */

static long long jint(const json_t *obj, const char *key)
{
	return json_integer_value(json_object_get(obj, key));
}

enum deployer_rollout deployer_rollout_state(const json_t *d, char *msg, size_t size)
{
	const json_t *md = json_object_get(d, "metadata"), *spec = json_object_get(d, "spec");
	const json_t *st = json_object_get(d, "status"), *cond;
	long long replicas, updated, ready, available, total;
	size_t i;

	if (jint(md, "generation") > jint(st, "observedGeneration")) {
		snprintf(msg, size, "Waiting for deployment spec update to be observed...");
		return DEPLOYER_ROLLOUT_PROGRESSING;
	}
	json_array_foreach(json_object_get(st, "conditions"), i, cond)
	{
		const char *type = json_string_value(json_object_get(cond, "type"));
		const char *reason = json_string_value(json_object_get(cond, "reason"));

		if (type && reason && !strcmp(type, "Progressing") &&
		    !strcmp(reason, "ProgressDeadlineExceeded")) {
			snprintf(msg, size, "deployment exceeded its progress deadline");
			return DEPLOYER_ROLLOUT_FAILED;
		}
	}
	/* spec.replicas defaults to 1 when absent */
	replicas = json_object_get(spec, "replicas") ? jint(spec, "replicas") : 1;
	updated = jint(st, "updatedReplicas");
	ready = jint(st, "readyReplicas");
	available = jint(st, "availableReplicas");
	total = jint(st, "replicas");
	if (updated < replicas) {
		snprintf(msg, size,
		         "Waiting for rollout to finish: %lld out of %lld new replicas have been "
		         "updated...",
		         updated, replicas);
		return DEPLOYER_ROLLOUT_PROGRESSING;
	}
	if (total > updated) {
		snprintf(
		    msg, size,
		    "Waiting for rollout to finish: %lld old replicas are pending termination...",
		    total - updated);
		return DEPLOYER_ROLLOUT_PROGRESSING;
	}
	if (available < updated || available < replicas) {
		snprintf(msg, size,
		         "Waiting for rollout to finish: %lld of %lld updated replicas are "
		         "available...",
		         available, updated);
		return DEPLOYER_ROLLOUT_PROGRESSING;
	}
	if (ready < replicas) {
		snprintf(
		    msg, size,
		    "Waiting for rollout to finish: %lld of %lld updated replicas are ready...",
		    ready, replicas);
		return DEPLOYER_ROLLOUT_PROGRESSING;
	}
	snprintf(msg, size, "successfully rolled out");
	return DEPLOYER_ROLLOUT_COMPLETE;
}

/* ---- pods the kubelet cannot run ---------------------------------------- */

/* Ends S before an incomplete UTF-8 sequence at its end (left by a cut). */
static void utf8_trim_incomplete(char *s)
{
	size_t len = strlen(s), i = len, need;
	unsigned char lead;

	while (i > 0 && len - i < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
		i--;
	if (i == 0)
		return;
	lead = (unsigned char)s[i - 1];
	if (lead < 0x80)
		return;
	need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
	if (len - (i - 1) < need)
		s[i - 1] = '\0';
}

/* Copies SRC (may be NULL) into DST of SIZE bytes as one line: control
 * characters become spaces, runs of spaces one, none at either end. Text
 * past MAX bytes (or the buffer) is cut at a character boundary and ends in
 * "...". */
static void flatten(char *dst, size_t size, const char *src, size_t max)
{
	size_t lim, n = 0;
	bool is_space = false, is_cut = false;

	if (!size)
		return;
	lim = size - 1 < max ? size - 1 : max;
	for (const unsigned char *p = (const unsigned char *)src; p && *p; p++) {
		unsigned char ch = *p < 0x20 || *p == 0x7f ? ' ' : *p;

		if (ch == ' ') {
			is_space = n > 0;
			continue;
		}
		if (n + is_space + 1 > lim) {
			is_cut = true;
			break;
		}
		if (is_space)
			dst[n++] = ' ';
		is_space = false;
		dst[n++] = (char)ch;
	}
	dst[n] = '\0';
	if (!is_cut)
		return;
	if (lim < 3) {
		dst[0] = '\0';
		return;
	}
	if (n > lim - 3)
		dst[lim - 3] = '\0';
	utf8_trim_incomplete(dst);
	n = strlen(dst);
	while (n > 0 && dst[n - 1] == ' ')
		dst[--n] = '\0';
	memcpy(dst + n, "...", 4);
}

/* Waiting reasons of a container the kubelet cannot start (kubelet
 * pkg/kubelet/images/types.go and pkg/kubelet/container/sync_result.go). */
static bool is_start_failure(const char *reason)
{
	static const char *const reasons[] = {
	    "ErrImagePull",         "ImagePullBackOff",           "InvalidImageName",
	    "CreateContainerError", "CreateContainerConfigError", "RunContainerError",
	};

	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (!strcmp(reason, reasons[i]))
			return true;
	return false;
}

/* Judges one entry CS of a Pod's container statuses; KIND is "container"
 * or "init container". As deployer_pod_failure. */
static bool container_failure(const json_t *cs, const char *pod, const char *kind, char *reason,
                              size_t rsize, char *msg, size_t msize)
{
	const json_t *waiting = json_object_get(json_object_get(cs, "state"), "waiting");
	const char *why = json_string_value(json_object_get(waiting, "reason"));
	const char *name = json_string_value(json_object_get(cs, "name"));
	char text[512];

	if (!why)
		return false;
	if (!name)
		name = "?";
	if (!strcmp(why, "CrashLoopBackOff")) {
		const json_t *term =
		    json_object_get(json_object_get(cs, "lastState"), "terminated");
		char last[64], state[128] = "";

		flatten(last, sizeof(last), json_string_value(json_object_get(term, "reason")),
		        sizeof(last) - 1);
		if (term)
			snprintf(state, sizeof(state), "exit code %lld, %s%s%s",
			         json_integer_value(json_object_get(term, "exitCode")),
			         *last ? "last state " : "", last, *last ? ", " : "");
		flatten(text, sizeof(text), json_string_value(json_object_get(term, "message")),
		        200);
		snprintf(msg, msize, "pod %s %s %s is in CrashLoopBackOff (%srestarts %lld)%s%s",
		         pod, kind, name, state,
		         json_integer_value(json_object_get(cs, "restartCount")), *text ? ": " : "",
		         text);
	} else if (is_start_failure(why)) {
		const char *kmsg = json_string_value(json_object_get(waiting, "message"));

		/* "failed to sync secret cache: timed out waiting for the
		 * condition" (or configmap): the kubelet's watch of a Secret or
		 * ConfigMap the Pod uses had not caught up yet; it retries on
		 * its own, so this is no verdict */
		if (!strcmp(why, "CreateContainerConfigError") && kmsg &&
		    strstr(kmsg, "failed to sync ") && strstr(kmsg, " cache"))
			return false;
		flatten(text, sizeof(text), kmsg, 400);
		snprintf(msg, msize, "pod %s %s %s cannot start: %s%s%s", pod, kind, name, why,
		         *text ? ": " : "", text);
	} else {
		return false;
	}
	snprintf(reason, rsize, "%s", why);
	if (rsize)
		utf8_trim_incomplete(reason);
	if (msize)
		utf8_trim_incomplete(msg);
	return true;
}

bool deployer_pod_failure(const json_t *pod, char *reason, size_t rsize, char *msg, size_t msize)
{
	static const char *const lists[] = {"initContainerStatuses", "containerStatuses"};
	static const char *const kinds[] = {"init container", "container"};
	const json_t *st = json_object_get(pod, "status"), *cs;
	const char *name =
	    json_string_value(json_object_get(json_object_get(pod, "metadata"), "name"));
	size_t i;

	if (rsize)
		reason[0] = '\0';
	if (msize)
		msg[0] = '\0';
	for (int l = 0; l < 2; l++)
		json_array_foreach(json_object_get(st, lists[l]), i, cs)
		{
			if (container_failure(cs, name ? name : "?", kinds[l], reason, rsize, msg,
			                      msize))
				return true;
		}
	return false;
}

/* ---- result helpers ---------------------------------------------------- */

/* Records a failure in OUT and err_msg(); returns CODE. */
static int fail(struct deployer_result *out, int code, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct deployer_result *out, int code, const char *reason, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out->message, sizeof(out->message), fmt, ap);
	va_end(ap);
	utf8_trim_incomplete(out->message);
	snprintf(out->reason, sizeof(out->reason), "%s", reason);
	err_set("%s", out->message);
	return code;
}

/* Fails with the API's status of C's last call. */
static int fail_api(struct deployer_result *out, struct kube_client *c, int code, const char *what,
                    const char *ns, const char *name)
{
	const struct kube_status *st = kube_client_status(c);

	if (code == KUBE_ENOTFOUND)
		return fail(out, code, "NotFound", "deployment %s/%s not found", ns, name);
	return fail(out, code, *st->reason ? st->reason : "Error", "%s deployment %s/%s: %s", what,
	            ns, name, st->message);
}

/* ---- waiting ----------------------------------------------------------- */

/* What on_deployment returns to end a watch slice. */
enum { WAIT_DONE = 1, WAIT_CHECK_PODS = 2 };

struct wait_state {
	const char *name;
	void (*progress)(void *arg, const char *line);
	void *progress_arg;
	char last[256];
	enum deployer_rollout state;
	json_t *deployment;  /* the last version seen (owned), or NULL */
	char rv[128];        /* the last resourceVersion seen: the next slice's start */
	time_t stale_before; /* a deadline exceeded until then is not ours; 0: none */
};

/* A Progressing=False ProgressDeadlineExceeded condition last updated no
 * later than BEFORE (the second the rollback began, after that condition
 * was seen) belongs to the rollout the rollback undid: the deployment
 * controller keeps it, with the new generation observed, until the rolled
 * back ReplicaSet is complete again. A deadline of the rollback's own
 * rollout is written at least a second later. */
static bool deadline_is_stale(const json_t *d, time_t before)
{
	const json_t *cond;
	size_t i;
	time_t t;

	json_array_foreach(json_object_get(json_object_get(d, "status"), "conditions"), i, cond)
	{
		const char *type = json_string_value(json_object_get(cond, "type"));

		if (type && !strcmp(type, "Progressing"))
			return clock_parse_rfc3339(&t, json_string_value(json_object_get(
			                                   cond, "lastUpdateTime"))) == 0 &&
			       t <= before;
	}
	return false;
}

static int on_deployment(void *arg, enum kube_event ev, json_t *obj)
{
	struct wait_state *ws = arg;
	char msg[256];
	const json_t *md = json_object_get(obj, "metadata");
	const char *name, *rv = json_string_value(json_object_get(md, "resourceVersion"));

	if (ev == KUBE_EVENT_SYNCED)
		return 0;
	if (rv && strlen(rv) < sizeof(ws->rv))
		memcpy(ws->rv, rv, strlen(rv) + 1);
	if (ev != KUBE_EVENT_ADDED && ev != KUBE_EVENT_MODIFIED && ev != KUBE_EVENT_LISTED)
		return 0;
	name = json_string_value(json_object_get(md, "name"));
	if (!name || strcmp(name, ws->name))
		return 0;
	json_decref(ws->deployment);
	ws->deployment = json_incref(obj);
	ws->state = deployer_rollout_state(obj, msg, sizeof(msg));
	if (ws->state == DEPLOYER_ROLLOUT_FAILED && ws->stale_before &&
	    deadline_is_stale(obj, ws->stale_before)) {
		ws->state = DEPLOYER_ROLLOUT_PROGRESSING;
		snprintf(msg, sizeof(msg),
		         "Waiting for the rolled back replicas to be available...");
	}
	if (ws->progress && strcmp(msg, ws->last))
		ws->progress(ws->progress_arg, msg);
	snprintf(ws->last, sizeof(ws->last), "%s", msg);
	/* the client is busy with the watch here: end the slice to list Pods */
	return ws->state == DEPLOYER_ROLLOUT_PROGRESSING ? WAIT_CHECK_PODS : WAIT_DONE;
}

/* The new ReplicaSet as last found; looked up again when the Deployment's
 * uid or revision changes. */
struct pod_check {
	bool is_disabled;  /* a list was Forbidden: the Deployment alone judges */
	char owner[64];    /* the Deployment uid the fields below belong to */
	char revision[32]; /* its revision annotation */
	char rs_uid[64];   /* the new ReplicaSet's uid, "" until found */
	char hash[64];     /* its pod-template-hash label */
};

static bool is_owned_by(const json_t *obj, const char *uid)
{
	const json_t *ref;
	size_t i;

	json_array_foreach(json_object_get(json_object_get(obj, "metadata"), "ownerReferences"), i,
	                   ref)
	{
		const char *u = json_string_value(json_object_get(ref, "uid"));

		if (u && !strcmp(u, uid))
			return true;
	}
	return false;
}

/* Borrowed string at metadata.FIELD.KEY of OBJ (FIELD "labels" or
 * "annotations"), or NULL. */
static const char *meta_map(const json_t *obj, const char *field, const char *key)
{
	return json_string_value(
	    json_object_get(json_object_get(json_object_get(obj, "metadata"), field), key));
}

/* Copies SRC into DST of SIZE bytes when it fits; returns whether it did. */
static bool copy_fits(char *dst, size_t size, const char *src)
{
	size_t len = src ? strlen(src) : 0;

	if (!src || len >= size)
		return false;
	memcpy(dst, src, len + 1);
	return true;
}

/* Fills PC with the ReplicaSet Deployment D owns at its current revision,
 * listed with SELECTOR (D's matchLabels; "" for all). Leaves pc->rs_uid ""
 * when there is none yet. Returns 0 or a kube.h code. */
static int find_new_replicaset(struct pod_check *pc, struct kube_client *c, const char *ns,
                               const json_t *d, const char *selector)
{
	const char *uid = json_string_value(json_object_get(json_object_get(d, "metadata"), "uid"));
	const char *revision = meta_map(d, "annotations", REVISION_ANNOTATION);
	struct kube_list_opts lo = {.label_selector = selector, .limit = 500};
	json_t *list = NULL, *rs;
	size_t i;
	int ret;

	if (!uid || !revision)
		return 0;
	if (*pc->rs_uid && !strcmp(pc->owner, uid) && !strcmp(pc->revision, revision))
		return 0;
	memset(pc->rs_uid, 0, sizeof(pc->rs_uid));
	if (!copy_fits(pc->owner, sizeof(pc->owner), uid) ||
	    !copy_fits(pc->revision, sizeof(pc->revision), revision))
		return 0;
	ret = kube_list(&list, c, REPLICASETS, ns, &lo);
	if (ret < 0)
		return ret;
	json_array_foreach(json_object_get(list, "items"), i, rs)
	{
		const char *rev = meta_map(rs, "annotations", REVISION_ANNOTATION);

		if (!is_owned_by(rs, uid) || !rev || strcmp(rev, revision))
			continue;
		if (copy_fits(pc->hash, sizeof(pc->hash), meta_map(rs, "labels", HASH_LABEL)) &&
		    copy_fits(
		        pc->rs_uid, sizeof(pc->rs_uid),
		        json_string_value(json_object_get(json_object_get(rs, "metadata"), "uid"))))
			break;
		pc->rs_uid[0] = '\0';
	}
	json_decref(list);
	return 0;
}

/* Looks at the Pods of Deployment D's new ReplicaSet. Returns 1 with REASON
 * and MSG filled (deployer_pod_failure) when one cannot run, 0 when none
 * fails or there is nothing to judge yet, or a kube.h code. */
static int check_new_pods(struct pod_check *pc, struct kube_client *c, const char *ns,
                          const json_t *d, char *reason, size_t rsize, char *msg, size_t msize)
{
	const json_t *md = json_object_get(d, "metadata"), *st = json_object_get(d, "status");
	const json_t *labels =
	    json_object_get(json_object_get(json_object_get(d, "spec"), "selector"), "matchLabels");
	struct kube_list_opts lo = {.limit = 500};
	json_t *pods = NULL, *pod, *v;
	struct buf sel;
	const char *key;
	size_t i;
	int ret = 0;

	/* Until the controller has observed this generation, the revision
	 * annotation may still name the previous ReplicaSet. */
	if (jint(md, "generation") > jint(st, "observedGeneration"))
		return 0;
	buf_init(&sel, 4096);
	json_object_foreach((json_t *)labels, key, v)
	{
		if (json_is_string(v) &&
		    buf_addf(&sel, "%s%s=%s", sel.len ? "," : "", key, json_string_value(v)) < 0)
			goto out; /* too long to send: judge by the Deployment alone */
	}
	ret = find_new_replicaset(pc, c, ns, d, buf_str(&sel));
	if (ret < 0 || !*pc->rs_uid)
		goto out;
	if (buf_addf(&sel, "%s%s=%s", sel.len ? "," : "", HASH_LABEL, pc->hash) < 0)
		goto out;
	lo.label_selector = buf_str(&sel);
	ret = kube_list(&pods, c, PODS, ns, &lo);
	if (ret < 0)
		goto out;
	json_array_foreach(json_object_get(pods, "items"), i, pod)
	{
		if (is_owned_by(pod, pc->rs_uid) &&
		    deployer_pod_failure(pod, reason, rsize, msg, msize)) {
			ret = 1;
			break;
		}
	}
out:
	json_decref(pods);
	buf_release(&sel);
	return ret;
}

/* deployer_wait, minus a deadline exceeded before STALE_BEFORE (0: none). */
static int wait_rollout(struct deployer_result *out, struct kube_client *c, const char *ns,
                        const char *name, long timeout_ms,
                        void (*progress)(void *arg, const char *line), void *progress_arg,
                        time_t stale_before)
{
	struct deployer_result scratch;
	struct wait_state ws = {.name = name,
	                        .progress = progress,
	                        .progress_arg = progress_arg,
	                        .stale_before = stale_before};
	struct pod_check pc = {0};
	struct kube_watch_opts wo = {0};
	char sel[320], reason[64], msg[768];
	long total = timeout_ms > 0 ? timeout_ms : 300000;
	long long deadline = clock_now_ms() + total, left;
	int ret;

	if (!out)
		out = &scratch;
	memset(out, 0, sizeof(*out));
	snprintf(sel, sizeof(sel), "metadata.name=%s", name);
	wo.field_selector = sel;
	wo.timeout_seconds = 60;
	/* Slices of the watch, each resuming where the last ended, with a look
	 * at the new Pods between them; one slice to the end once Pods cannot
	 * be listed. */
	while ((left = deadline - clock_now_ms()) > 0) {
		wo.resource_version = *ws.rv ? ws.rv : NULL;
		wo.max_duration_ms = pc.is_disabled || left < POD_CHECK_MS ? left : POD_CHECK_MS;
		ret = kube_watch(c, DEPLOYMENTS, ns, &wo, on_deployment, &ws);
		if (ret < 0 && ret != KUBE_ETIMEOUT) {
			ret = fail_api(out, c, ret, "watch", ns, name);
			goto out;
		}
		if (ws.state != DEPLOYER_ROLLOUT_PROGRESSING)
			break;
		if (pc.is_disabled || !ws.deployment)
			continue;
		ret = check_new_pods(&pc, c, ns, ws.deployment, reason, sizeof(reason), msg,
		                     sizeof(msg));
		if (ret == 1) {
			ret = fail(out, DEPLOYER_EROLLOUT, reason, "deployment %s/%s: %s", ns, name,
			           msg);
			goto out;
		}
		if (ret == KUBE_EFORBIDDEN) {
			log_warn("deployment %s/%s: cannot list its replicasets or pods (%s); "
			         "following the deployment alone",
			         ns, name, kube_client_status(c)->message);
			pc.is_disabled = true;
		} else if (ret < 0) {
			log_debug("deployment %s/%s: pods not checked: %s", ns, name, err_msg());
		}
	}
	if (ws.state == DEPLOYER_ROLLOUT_COMPLETE) {
		ret = 0;
	} else if (ws.state == DEPLOYER_ROLLOUT_FAILED) {
		ret = fail(out, DEPLOYER_EROLLOUT, "ProgressDeadlineExceeded",
		           "deployment %s/%s exceeded its progress deadline", ns, name);
	} else {
		ret = fail(out, DEPLOYER_ETIMEOUT, "Timeout",
		           "deployment %s/%s: rollout did not finish within %lds (%s)", ns, name,
		           total / 1000, *ws.last ? ws.last : "no status seen");
	}
out:
	json_decref(ws.deployment);
	return ret;
}

int deployer_wait(struct deployer_result *out, struct kube_client *c, const char *ns,
                  const char *name, long timeout_ms, void (*progress)(void *arg, const char *line),
                  void *progress_arg)
{
	return wait_rollout(out, c, ns, name, timeout_ms, progress, progress_arg, 0);
}

/* ---- setting images ---------------------------------------------------- */

/* Finds the container called NAME in the pod template's containers or
 * initContainers; returns it (borrowed) or NULL. */
static json_t *find_container(json_t *podspec, const char *name, const char **list)
{
	static const char *const lists[] = {"containers", "initContainers"};
	json_t *ctr;
	size_t i;

	for (int l = 0; l < 2; l++)
		json_array_foreach(json_object_get(podspec, lists[l]), i, ctr)
		{
			const char *n = json_string_value(json_object_get(ctr, "name"));

			if (n && !strcmp(n, name)) {
				*list = lists[l];
				return ctr;
			}
		}
	return NULL;
}

/* Whether container CTR has an envFrom entry for Secret NAME. */
static bool has_env_from(const json_t *ctr, const char *name)
{
	const json_t *e;
	size_t i;

	json_array_foreach(json_object_get(ctr, "envFrom"), i, e)
	{
		const char *s =
		    json_string_value(json_object_get(json_object_get(e, "secretRef"), "name"));

		if (s && !strcmp(s, name))
			return true;
	}
	return false;
}

/* The entry of container NAME in patch list ARR, added when missing. */
static json_t *patch_entry(json_t *arr, const char *name)
{
	json_t *e;
	size_t i;

	json_array_foreach(arr, i, e)
	{
		const char *n = json_string_value(json_object_get(e, "name"));

		if (n && !strcmp(n, name))
			return e;
	}
	e = json_pack("{s:s}", "name", name);
	if (!e || json_array_append_new(arr, e) < 0)
		return NULL;
	return e;
}

/* Sets, in LISTS.containers, for each container of PODSPEC without an
 * envFrom entry for Secret NAME, its envFrom list with one for NAME
 * appended. envFrom has no patchMergeKey, so a strategic merge replaces the
 * list: it is sent whole. */
static int patch_env_from(json_t *lists, json_t *podspec, const char *name)
{
	json_t *ctr, *arr = json_object_get(lists, "containers");
	size_t i;

	json_array_foreach(json_object_get(podspec, "containers"), i, ctr)
	{
		const char *cname = json_string_value(json_object_get(ctr, "name"));
		json_t *env = json_object_get(ctr, "envFrom"), *add;

		if (!cname || has_env_from(ctr, name))
			continue;
		env = json_is_array(env) ? json_copy(env) : json_array();
		add = json_pack("{s:{s:s, s:b}}", "secretRef", "name", name, "optional", 1);
		if (!env || !add) {
			json_decref(env);
			json_decref(add);
			return -1;
		}
		if (json_array_append_new(env, add) < 0) {
			json_decref(env);
			return -1;
		}
		if (!arr) {
			arr = json_array();
			if (!arr || json_object_set_new(lists, "containers", arr) < 0) {
				json_decref(env);
				return -1;
			}
		}
		if (json_object_set_new(patch_entry(arr, cname), "envFrom", env) < 0)
			return -1;
	}
	return 0;
}

/* Builds the strategic-merge patch that sets IMAGES and ANNOTATIONS (an
 * object of key: value or null), and wires Secret ENV_SECRET (may be NULL)
 * into the containers, with RV as precondition. Containers merge by name
 * (the patchMergeKey of PodSpec.containers), so one container may appear
 * twice in the patch (image, envFrom). */
static json_t *build_patch(json_t *podspec, const struct deployer_image *images, size_t n,
                           const char *rv, json_t *annotations, const char *env_secret)
{
	json_t *lists = json_object(), *patch;

	for (size_t i = 0; i < n; i++) {
		const char *list = NULL;
		json_t *arr;

		find_container(podspec, images[i].container, &list);
		arr = json_object_get(lists, list);
		if (!arr) {
			arr = json_array();
			json_object_set_new(lists, list, arr);
		}
		json_array_append_new(arr, json_pack("{s:s, s:s}", "name", images[i].container,
		                                     "image", images[i].image));
	}
	if (env_secret && patch_env_from(lists, podspec, env_secret) < 0) {
		json_decref(lists);
		return NULL;
	}
	patch =
	    json_pack("{s:{s:s}, s:{s:{s:{s:O}, s:o}}}", "metadata", "resourceVersion", rv, "spec",
	              "template", "metadata", "annotations", annotations, "spec", lists);
	return patch;
}

static void say(const struct deployer_opts *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void say(const struct deployer_opts *o, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (!o->progress)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	o->progress(o->progress_arg, line);
}

/* One read-check-patch round. On success fills PREV (the images and
 * annotations to restore; caller frees) unless PREV is NULL. */
static int patch_images(struct deployer_result *out, struct kube_client *c, const char *ns,
                        const char *name, const struct deployer_image *images, size_t n,
                        json_t *annotations, const struct deployer_opts *o, json_t **prev)
{
	json_t *d = NULL, *patch = NULL, *res = NULL, *podspec, *tmpl_md, *old_ann, *ctr;
	const char *rv;
	int ret;

	ret = kube_get(&d, c, DEPLOYMENTS, ns, name);
	if (ret < 0) {
		ret = fail_api(out, c, ret, "get", ns, name);
		goto out;
	}
	podspec = json_object_get(json_object_get(json_object_get(d, "spec"), "template"), "spec");
	tmpl_md =
	    json_object_get(json_object_get(json_object_get(d, "spec"), "template"), "metadata");
	rv = json_string_value(json_object_get(json_object_get(d, "metadata"), "resourceVersion"));
	if (!rv) {
		ret = fail(out, KUBE_ERROR, "BadResponse",
		           "deployment %s/%s has no resourceVersion", ns, name);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const char *list;

		if (!find_container(podspec, images[i].container, &list)) {
			ret = fail(out, DEPLOYER_ENOCONTAINER, "ContainerNotFound",
			           "deployment %s/%s has no container \"%s\"", ns, name,
			           images[i].container);
			goto out;
		}
	}
	if (prev) {
		/* {"images": {container: image}, "annotations": {key: old or null}} */
		json_t *imgs = json_object(), *ann = json_object();
		const char *key;
		json_t *v;

		old_ann = json_object_get(tmpl_md, "annotations");
		for (size_t i = 0; i < n; i++) {
			const char *list;

			ctr = find_container(podspec, images[i].container, &list);
			json_object_set(imgs, images[i].container, json_object_get(ctr, "image"));
		}
		json_object_foreach(annotations, key, v)
		{
			json_t *old = json_object_get(old_ann, key);

			json_object_set_new(ann, key, old ? json_incref(old) : json_null());
		}
		*prev = json_pack("{s:o, s:o}", "images", imgs, "annotations", ann);
	}
	if (o->before_patch && (ret = o->before_patch(o->before_patch_arg, d)) != 0) {
		fail(out, ret, "Aborted", "deployment %s/%s: patch aborted by caller", ns, name);
		goto out;
	}
	patch = build_patch(podspec, images, n, rv, annotations, o->env_from_secret);
	if (!patch) {
		ret = fail(out, KUBE_ERROR, "Error", "out of memory");
		goto out;
	}
	ret = kube_patch(&res, c, DEPLOYMENTS, ns, name, KUBE_PATCH_STRATEGIC, patch, NULL);
	if (ret < 0) {
		if (ret == KUBE_ECONFLICT) {
			snprintf(out->message, sizeof(out->message), "%s", err_msg());
			goto out;
		}
		ret = fail_api(out, c, ret, "patch", ns, name);
		goto out;
	}
	out->generation = jint(json_object_get(res, "metadata"), "generation");
	/* not the generation: on Deployments it also moves with annotations */
	out->changed = !json_equal(json_object_get(json_object_get(d, "spec"), "template"),
	                           json_object_get(json_object_get(res, "spec"), "template"));
out:
	if (ret < 0 && prev) {
		json_decref(*prev);
		*prev = NULL;
	}
	json_decref(res);
	json_decref(patch);
	json_decref(d);
	return ret;
}

/* Patches with conflict retries; the 409s are counted in OUT. */
static int patch_retrying(struct deployer_result *out, struct kube_client *c, const char *ns,
                          const char *name, const struct deployer_image *images, size_t n,
                          json_t *annotations, const struct deployer_opts *o, json_t **prev)
{
	int ret;

	for (;;) {
		ret = patch_images(out, c, ns, name, images, n, annotations, o, prev);
		if (ret != KUBE_ECONFLICT)
			return ret;
		if (out->conflicts >= o->max_conflicts)
			return fail(out, ret, "Conflict",
			            "deployment %s/%s kept changing: gave up after %d conflicts",
			            ns, name, out->conflicts);
		out->conflicts++;
		say(o, "deployment %s/%s changed while patching (409 Conflict), retrying", ns,
		    name);
	}
}

/* Patches the images and annotations in PREV back. */
static int rollback(struct deployer_result *out, struct kube_client *c, const char *ns,
                    const char *name, json_t *prev, const struct deployer_opts *o)
{
	struct deployer_image imgs[64];
	struct deployer_opts ro = *o;
	struct deployer_result r = {0};
	const char *key;
	json_t *v;
	size_t n = 0;
	time_t started;
	int ret;

	json_object_foreach(json_object_get(prev, "images"), key, v)
	{
		if (n == 64 || !json_is_string(v))
			break;
		imgs[n].container = key;
		imgs[n].image = json_string_value(v);
		n++;
	}
	ro.before_patch = NULL;
	say(o, "rolling back deployment %s/%s to the previous images", ns, name);
	started = time(NULL);
	ret = patch_retrying(&r, c, ns, name, imgs, n, json_object_get(prev, "annotations"), &ro,
	                     NULL);
	if (ret == 0)
		ret = wait_rollout(&r, c, ns, name, o->timeout_ms, o->progress, o->progress_arg,
		                   started);
	if (ret < 0) {
		log_warn("rollback of %s/%s: %s", ns, name, r.message);
		return ret;
	}
	out->rolled_back = true;
	return 0;
}

int deployer_set_image(struct deployer_result *out, struct kube_client *c, const char *ns,
                       const char *name, const struct deployer_image *images, size_t n,
                       const struct deployer_opts *opts)
{
	struct deployer_opts o = {0};
	json_t *annotations = NULL, *prev = NULL;
	char cause[1024];
	long long t0 = clock_now_ms();
	size_t used = 0;
	int ret;

	memset(out, 0, sizeof(*out));
	if (opts)
		o = *opts;
	if (o.max_conflicts <= 0)
		o.max_conflicts = 5;
	if (o.timeout_ms <= 0)
		o.timeout_ms = 300000;
	if (!ns || !*ns)
		ns = kube_client_namespace(c);
	if (!n)
		return fail(out, KUBE_EINVALID, "Invalid", "no image to set");
	if (n > 64)
		return fail(out, KUBE_EINVALID, "Invalid", "too many images (at most 64)");
	for (size_t i = 0; i < n; i++) {
		if (!images[i].container || !*images[i].container)
			return fail(out, KUBE_EINVALID, "Invalid", "empty container name");
		if (!imageref_is_valid(images[i].image))
			return fail(out, DEPLOYER_EBADIMAGE, "InvalidImageName",
			            "invalid image reference \"%s\" for container \"%s\"",
			            images[i].image ? images[i].image : "", images[i].container);
		for (size_t j = 0; j < i; j++)
			if (!strcmp(images[i].container, images[j].container))
				return fail(out, KUBE_EINVALID, "Invalid",
				            "container \"%s\" named twice", images[i].container);
	}
	if (o.change_cause) {
		snprintf(cause, sizeof(cause), "%s", o.change_cause);
	} else {
		used = (size_t)snprintf(cause, sizeof(cause), "deployer set-image");
		for (size_t i = 0; i < n && used < sizeof(cause); i++)
			used += (size_t)snprintf(cause + used, sizeof(cause) - used, " %s=%s",
			                         images[i].container, images[i].image);
	}
	annotations = json_pack("{s:s}", DEPLOYER_CAUSE_ANNOTATION, cause);
	if (o.commit)
		json_object_set_new(annotations, DEPLOYER_COMMIT_ANNOTATION, json_string(o.commit));
	if (o.config_hash)
		json_object_set_new(annotations, DEPLOYER_CONFIG_HASH_ANNOTATION,
		                    json_string(o.config_hash));
	ret = patch_retrying(out, c, ns, name, images, n, annotations, &o,
	                     o.rollback_on_failure ? &prev : NULL);
	out->patch_ms = clock_now_ms() - t0;
	if (ret < 0)
		goto out;
	say(&o, "deployment %s/%s %s", ns, name,
	    out->changed ? "patched" : "unchanged (images already set)");
	if (!o.wait)
		goto out;
	{
		struct deployer_result w;

		ret = deployer_wait(&w, c, ns, name, o.timeout_ms, o.progress, o.progress_arg);
		if (ret < 0) {
			memcpy(out->reason, w.reason, sizeof(out->reason));
			memcpy(out->message, w.message, sizeof(out->message));
			if (o.rollback_on_failure && prev &&
			    rollback(out, c, ns, name, prev, &o) == 0)
				snprintf(out->message + strlen(out->message),
				         sizeof(out->message) - strlen(out->message),
				         "; rolled back to the previous images");
			err_set("%s", out->message);
		}
	}
out:
	json_decref(prev);
	json_decref(annotations);
	return ret;
}

/* ---- other workloads --------------------------------------------------- */

/* The value of the condition of TYPE in OBJ's status.conditions, or NULL. */
static const json_t *condition(const json_t *obj, const char *type)
{
	const json_t *cond;
	size_t i;

	json_array_foreach(json_object_get(json_object_get(obj, "status"), "conditions"), i, cond)
	{
		const char *t = json_string_value(json_object_get(cond, "type"));

		if (t && !strcmp(t, type))
			return cond;
	}
	return NULL;
}

static bool condition_is_true(const json_t *cond)
{
	const char *s = json_string_value(json_object_get(cond, "status"));

	return s && !strcmp(s, "True");
}

/* kubectl's StatefulSetStatusViewer. */
static enum deployer_rollout statefulset_state(const json_t *s, char *msg, size_t size)
{
	const json_t *md = json_object_get(s, "metadata"), *spec = json_object_get(s, "spec");
	const json_t *st = json_object_get(s, "status");
	const json_t *strategy = json_object_get(spec, "updateStrategy");
	const json_t *partition =
	    json_object_get(json_object_get(strategy, "rollingUpdate"), "partition");
	const char *type = json_string_value(json_object_get(strategy, "type"));
	const char *current = json_string_value(json_object_get(st, "currentRevision"));
	const char *update = json_string_value(json_object_get(st, "updateRevision"));
	long long replicas = json_object_get(spec, "replicas") ? jint(spec, "replicas") : 1;

	if (type && strcmp(type, "RollingUpdate")) {
		snprintf(msg, size, "statefulset uses the %s strategy: not followed", type);
		return DEPLOYER_ROLLOUT_COMPLETE;
	}
	if (jint(st, "observedGeneration") == 0 ||
	    jint(md, "generation") > jint(st, "observedGeneration")) {
		snprintf(msg, size, "Waiting for statefulset spec update to be observed...");
		return DEPLOYER_ROLLOUT_PROGRESSING;
	}
	if (jint(st, "readyReplicas") < replicas) {
		snprintf(msg, size, "Waiting for %lld pods to be ready...",
		         replicas - jint(st, "readyReplicas"));
		return DEPLOYER_ROLLOUT_PROGRESSING;
	}
	if (json_is_integer(partition)) {
		long long want = replicas - json_integer_value(partition);

		if (jint(st, "updatedReplicas") < want) {
			snprintf(msg, size,
			         "Waiting for partitioned roll out to finish: %lld out of %lld new "
			         "pods have been updated...",
			         jint(st, "updatedReplicas"), want);
			return DEPLOYER_ROLLOUT_PROGRESSING;
		}
		snprintf(msg, size,
		         "partitioned roll out complete: %lld new pods have been updated...",
		         jint(st, "updatedReplicas"));
		return DEPLOYER_ROLLOUT_COMPLETE;
	}
	if (!update || !current || strcmp(update, current)) {
		snprintf(msg, size,
		         "waiting for statefulset rolling update to complete %lld pods at revision "
		         "%.100s...",
		         jint(st, "updatedReplicas"), update ? update : "");
		return DEPLOYER_ROLLOUT_PROGRESSING;
	}
	snprintf(msg, size, "statefulset rolling update complete %lld pods at revision %.100s...",
	         jint(st, "currentReplicas"), current);
	return DEPLOYER_ROLLOUT_COMPLETE;
}

/* kubectl's DaemonSetStatusViewer. */
static enum deployer_rollout daemonset_state(const json_t *d, char *msg, size_t size)
{
	const json_t *md = json_object_get(d, "metadata"), *spec = json_object_get(d, "spec");
	const json_t *st = json_object_get(d, "status");
	const char *type =
	    json_string_value(json_object_get(json_object_get(spec, "updateStrategy"), "type"));
	long long desired = jint(st, "desiredNumberScheduled");

	if (type && strcmp(type, "RollingUpdate")) {
		snprintf(msg, size, "daemon set uses the %s strategy: not followed", type);
		return DEPLOYER_ROLLOUT_COMPLETE;
	}
	if (jint(md, "generation") > jint(st, "observedGeneration")) {
		snprintf(msg, size, "Waiting for daemon set spec update to be observed...");
		return DEPLOYER_ROLLOUT_PROGRESSING;
	}
	if (jint(st, "updatedNumberScheduled") < desired) {
		snprintf(msg, size,
		         "Waiting for daemon set rollout to finish: %lld out of %lld new pods have "
		         "been updated...",
		         jint(st, "updatedNumberScheduled"), desired);
		return DEPLOYER_ROLLOUT_PROGRESSING;
	}
	if (jint(st, "numberAvailable") < desired) {
		snprintf(msg, size,
		         "Waiting for daemon set rollout to finish: %lld of %lld updated pods are "
		         "available...",
		         jint(st, "numberAvailable"), desired);
		return DEPLOYER_ROLLOUT_PROGRESSING;
	}
	snprintf(msg, size, "daemon set successfully rolled out");
	return DEPLOYER_ROLLOUT_COMPLETE;
}

/* A Job is done when its Complete condition is True (kubectl wait
 * --for=condition=Complete) and failed when its Failed condition is. */
static enum deployer_rollout job_state(const json_t *j, char *reason, size_t rsize, char *msg,
                                       size_t size)
{
	const json_t *failed = condition(j, "Failed");
	const json_t *st = json_object_get(j, "status");

	if (condition_is_true(condition(j, "Complete"))) {
		snprintf(msg, size, "job complete: %lld succeeded", jint(st, "succeeded"));
		return DEPLOYER_ROLLOUT_COMPLETE;
	}
	if (condition_is_true(failed)) {
		const char *r = json_string_value(json_object_get(failed, "reason"));
		const char *m = json_string_value(json_object_get(failed, "message"));

		snprintf(reason, rsize, "%s", r && *r ? r : "Failed");
		flatten(msg, size, m && *m ? m : "the job failed", 400);
		return DEPLOYER_ROLLOUT_FAILED;
	}
	snprintf(msg, size,
	         "Waiting for job to complete: %lld active, %lld succeeded, %lld failed...",
	         jint(st, "active"), jint(st, "succeeded"), jint(st, "failed"));
	return DEPLOYER_ROLLOUT_PROGRESSING;
}

/* The GVR and kind word of the workloads deployer_wait_workload follows. */
static const struct {
	const char *kind, *gvr, *word;
} workloads[] = {
    {"Deployment", DEPLOYMENTS, "deployment"},
    {"StatefulSet", "apps/v1/statefulsets", "statefulset"},
    {"DaemonSet", "apps/v1/daemonsets", "daemonset"},
    {"Job", "batch/v1/jobs", "job"},
};

bool deployer_is_workload(const char *api_version, const char *kind)
{
	const char *group = !kind ? NULL : !strcmp(kind, "Job") ? "batch/v1" : "apps/v1";

	for (size_t i = 0; kind && api_version && i < sizeof(workloads) / sizeof(workloads[0]); i++)
		if (!strcmp(kind, workloads[i].kind))
			return !strcmp(api_version, group);
	return false;
}

enum deployer_rollout deployer_workload_state(const char *kind, const json_t *obj, char *reason,
                                              size_t rsize, char *msg, size_t msize)
{
	enum deployer_rollout st;

	if (rsize)
		reason[0] = '\0';
	if (!strcmp(kind, "StatefulSet"))
		st = statefulset_state(obj, msg, msize);
	else if (!strcmp(kind, "DaemonSet"))
		st = daemonset_state(obj, msg, msize);
	else if (!strcmp(kind, "Job"))
		return job_state(obj, reason, rsize, msg, msize);
	else
		st = deployer_rollout_state(obj, msg, msize);
	if (st == DEPLOYER_ROLLOUT_FAILED && rsize)
		snprintf(reason, rsize, "ProgressDeadlineExceeded");
	return st;
}

struct workload_wait {
	const char *kind, *name;
	void (*progress)(void *arg, const char *line);
	void *progress_arg;
	enum deployer_rollout state;
	char rv[128];
	char reason[64];
	char last[512];
};

static int on_workload(void *arg, enum kube_event ev, json_t *obj)
{
	struct workload_wait *ww = arg;
	const json_t *md = json_object_get(obj, "metadata");
	const char *name, *rv = json_string_value(json_object_get(md, "resourceVersion"));
	char msg[512];

	if (ev == KUBE_EVENT_SYNCED)
		return 0;
	if (rv && strlen(rv) < sizeof(ww->rv))
		memcpy(ww->rv, rv, strlen(rv) + 1);
	if (ev != KUBE_EVENT_ADDED && ev != KUBE_EVENT_MODIFIED && ev != KUBE_EVENT_LISTED)
		return 0;
	name = json_string_value(json_object_get(md, "name"));
	if (!name || strcmp(name, ww->name))
		return 0;
	ww->state = deployer_workload_state(ww->kind, obj, ww->reason, sizeof(ww->reason), msg,
	                                    sizeof(msg));
	if (ww->progress && strcmp(msg, ww->last))
		ww->progress(ww->progress_arg, msg);
	snprintf(ww->last, sizeof(ww->last), "%s", msg);
	return ww->state == DEPLOYER_ROLLOUT_PROGRESSING ? 0 : WAIT_DONE;
}

int deployer_wait_workload(struct deployer_result *out, struct kube_client *c, const char *kind,
                           const char *ns, const char *name, long timeout_ms,
                           void (*progress)(void *arg, const char *line), void *progress_arg)
{
	struct deployer_result scratch;
	struct workload_wait ww = {
	    .kind = kind, .name = name, .progress = progress, .progress_arg = progress_arg};
	struct kube_watch_opts wo = {0};
	const char *gvr = NULL, *word = NULL;
	long total = timeout_ms > 0 ? timeout_ms : 300000;
	long long deadline = clock_now_ms() + total, left;
	char sel[320];
	int ret;

	if (!out)
		out = &scratch;
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; kind && i < sizeof(workloads) / sizeof(workloads[0]); i++)
		if (!strcmp(kind, workloads[i].kind)) {
			gvr = workloads[i].gvr;
			word = workloads[i].word;
		}
	if (!gvr)
		return fail(out, KUBE_ERROR, "Error",
		            "%s %s/%s: not a workload the deployer follows", kind ? kind : "(null)",
		            ns, name);
	if (!strcmp(kind, "Deployment"))
		return deployer_wait(out, c, ns, name, total, progress, progress_arg);
	snprintf(sel, sizeof(sel), "metadata.name=%s", name);
	wo.field_selector = sel;
	wo.timeout_seconds = 60;
	while (ww.state == DEPLOYER_ROLLOUT_PROGRESSING && (left = deadline - clock_now_ms()) > 0) {
		wo.resource_version = *ww.rv ? ww.rv : NULL;
		wo.max_duration_ms = left;
		ret = kube_watch(c, gvr, ns, &wo, on_workload, &ww);
		if (ret < 0 && ret != KUBE_ETIMEOUT) {
			const struct kube_status *st = kube_client_status(c);

			if (ret == KUBE_ENOTFOUND)
				return fail(out, ret, "NotFound", "%s %s/%s not found", word, ns,
				            name);
			return fail(out, ret, *st->reason ? st->reason : "Error",
			            "watch %s %s/%s: %s", word, ns, name, st->message);
		}
	}
	if (ww.state == DEPLOYER_ROLLOUT_COMPLETE)
		return 0;
	if (ww.state == DEPLOYER_ROLLOUT_FAILED)
		return fail(out, DEPLOYER_EROLLOUT, ww.reason, "%s %s/%s failed: %s: %s", word, ns,
		            name, ww.reason, ww.last);
	return fail(out, DEPLOYER_ETIMEOUT, "Timeout", "%s %s/%s did not finish within %lds (%s)",
	            word, ns, name, total / 1000, *ww.last ? ww.last : "no status seen");
}
