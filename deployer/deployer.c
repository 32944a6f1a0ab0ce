/* deployer: set images on a Deployment and follow the rollout (see
 * deployer.h). The flow is read, check, patch (with the read resourceVersion
 * as a precondition), wait, and on failure patch the old images back. */
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployer.h"
#include "err.h"
#include "log.h"
#include "banned.h"

#define DEPLOYMENTS "apps/v1/deployments"

/* ---- image references -------------------------------------------------- */

/* The grammar of distribution's reference package, as POSIX extended regular
 * expressions: domain components, path components with their separators
 * ([_.]|__|-+), tag [\w][\w.-]{0,127}, digest ALG:HEX{32,}. */
#define RE_DOMAIN_COMPONENT "[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?"
#define RE_DOMAIN                                                                                  \
	"(" RE_DOMAIN_COMPONENT "(\\." RE_DOMAIN_COMPONENT ")*|\\[[0-9a-fA-F:.]+\\])(:[0-9]+)?"
#define RE_PATH_COMPONENT "[a-z0-9]+(([_.]|__|-+)[a-z0-9]+)*"
#define RE_NAME "(" RE_DOMAIN "/)?" RE_PATH_COMPONENT "(/" RE_PATH_COMPONENT ")*"
#define RE_TAG "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
#define RE_DIGEST "[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
#define RE_REFERENCE "^" RE_NAME "(:" RE_TAG ")?(@" RE_DIGEST ")?$"

bool deployer_image_ref_is_valid(const char *ref)
{
	regex_t re;
	const char *at, *name_end;
	bool ok;

	if (!ref || !*ref || strlen(ref) > 4096)
		return false;
	if (regcomp(&re, RE_REFERENCE, REG_EXTENDED | REG_NOSUB) != 0)
		return false;
	ok = regexec(&re, ref, 0, NULL, 0) == 0;
	regfree(&re);
	if (!ok)
		return false;
	at = strchr(ref, '@');
	if (at && !strncmp(at + 1, "sha256:", 7) && strlen(at + 8) != 64)
		return false;
	/* the name (before any tag or digest) is at most 255 characters */
	name_end = at ? at : ref + strlen(ref);
	for (const char *p = name_end; p > ref; p--)
		if (p[-1] == '/')
			break;
		else if (p[-1] == ':') {
			name_end = p - 1;
			break;
		}
	return name_end - ref <= 255;
}

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

struct wait_state {
	const char *name;
	void (*progress)(void *arg, const char *line);
	void *progress_arg;
	char last[256];
	enum deployer_rollout state;
};

static int on_deployment(void *arg, enum kube_event ev, json_t *obj)
{
	struct wait_state *ws = arg;
	char msg[256];
	const char *name;

	if (ev != KUBE_EVENT_ADDED && ev != KUBE_EVENT_MODIFIED && ev != KUBE_EVENT_LISTED)
		return 0;
	name = json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
	if (!name || strcmp(name, ws->name))
		return 0;
	ws->state = deployer_rollout_state(obj, msg, sizeof(msg));
	if (ws->progress && strcmp(msg, ws->last))
		ws->progress(ws->progress_arg, msg);
	snprintf(ws->last, sizeof(ws->last), "%s", msg);
	return ws->state == DEPLOYER_ROLLOUT_PROGRESSING ? 0 : 1;
}

int deployer_wait(struct deployer_result *out, struct kube_client *c, const char *ns,
                  const char *name, long timeout_ms, void (*progress)(void *arg, const char *line),
                  void *progress_arg)
{
	struct deployer_result scratch;
	struct wait_state ws = {.name = name, .progress = progress, .progress_arg = progress_arg};
	struct kube_watch_opts wo = {0};
	char sel[320];
	int ret;

	if (!out)
		out = &scratch;
	memset(out, 0, sizeof(*out));
	snprintf(sel, sizeof(sel), "metadata.name=%s", name);
	wo.field_selector = sel;
	wo.max_duration_ms = timeout_ms > 0 ? timeout_ms : 300000;
	wo.timeout_seconds = 60;
	ret = kube_watch(c, DEPLOYMENTS, ns, &wo, on_deployment, &ws);
	if (ret < 0 && ret != KUBE_ETIMEOUT)
		return fail_api(out, c, ret, "watch", ns, name);
	if (ws.state == DEPLOYER_ROLLOUT_COMPLETE)
		return 0;
	if (ws.state == DEPLOYER_ROLLOUT_FAILED)
		return fail(out, DEPLOYER_EROLLOUT, "ProgressDeadlineExceeded",
		            "deployment %s/%s exceeded its progress deadline", ns, name);
	return fail(out, DEPLOYER_ETIMEOUT, "Timeout",
	            "deployment %s/%s: rollout did not finish within %lds (%s)", ns, name,
	            wo.max_duration_ms / 1000, *ws.last ? ws.last : "no status seen");
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

/* Builds the strategic-merge patch that sets IMAGES and ANNOTATIONS (an
 * object of key: value or null) with RV as precondition. Containers merge by
 * name (the patchMergeKey of PodSpec.containers). */
static json_t *build_patch(json_t *podspec, const struct deployer_image *images, size_t n,
                           const char *rv, json_t *annotations)
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
	patch = build_patch(podspec, images, n, rv, annotations);
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
	ret = patch_retrying(&r, c, ns, name, imgs, n, json_object_get(prev, "annotations"), &ro,
	                     NULL);
	if (ret == 0)
		ret = deployer_wait(&r, c, ns, name, o->timeout_ms, o->progress, o->progress_arg);
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
		if (!deployer_image_ref_is_valid(images[i].image))
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
	ret = patch_retrying(out, c, ns, name, images, n, annotations, &o,
	                     o.rollback_on_failure ? &prev : NULL);
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
