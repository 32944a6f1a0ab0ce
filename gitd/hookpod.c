/* hookpod: one hook as a Pod: the Pod and its event ConfigMap made from the
 * hook, created through runner_pod_create, its log followed, its end
 * judged by the container's exit code (hookpod.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hookpod.h"
#include "base64.h"
#include "clock.h"
#include "err.h"
#include "event.h"
#include "log.h"
#include "banned.h"

/* Status poll period while the Pod starts and after its log ended. */
#define HOOKPOD_POLL_MS 500
/* activeDeadlineSeconds counts from the Pod's start: gitd gives up on its
 * own this much later (scheduling, an image pull). */
#define HOOKPOD_SLACK_MS 60000L
/* The constant shell program that puts the event on stdin: the hook's argv
 * follows as positional parameters, which the shell never parses. */
#define HOOKPOD_STDIN_WRAPPER "exec \"$@\" <\"$SLIPWAY_EVENT_FILE\""

static const char *str_at(const json_t *obj, const char *a, const char *b)
{
	const json_t *j = json_object_get(obj, a);

	if (b)
		j = json_object_get(j, b);
	return json_string_value(j);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The state of one hookpod_run. */
struct hp {
	const struct hookpod_config *cfg;
	const struct hookpod_hook *h;
	struct kube_client *c;
	char image[1024];  /* the image the Pod runs */
	json_t *env;       /* the container's env (owned until the Pod is made) */
	json_t *env_from;  /* fromBuild: envFrom, or NULL */
	json_t *pull;      /* fromBuild: imagePullSecrets, or NULL */
	bool is_hooks_img; /* the image is gitd's hooks image: runs as non-root */
	char *message;
	size_t size;
};

static int fail(struct hp *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct hp *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->message, p->size, fmt, ap);
	va_end(ap);
	for (char *s = p->message; *s; s++)
		if (*s == '\n' || *s == '\r')
			*s = ' ';
	return 1;
}

/* The image of a fromBuild hook: what this run built for it. */
static int image_from_build(struct hp *p)
{
	const struct hookpod_hook *h = p->h;
	const json_t *img;
	size_t i;

	json_array_foreach(p->cfg->images, i, img)
	{
		const char *d = str_at(img, "deployment", NULL),
		           *ct = str_at(img, "container", NULL);
		const char *ref = str_at(img, "image", NULL);

		if (d && ct && ref && !strcmp(d, h->from_deployment) &&
		    !strcmp(ct, h->from_container)) {
			snprintf(p->image, sizeof(p->image), "%s", ref);
			return 0;
		}
	}
	return fail(p,
	            "hook %s: image.fromBuild %s/%s: no image built for it in this run (the "
	            "%s event comes before the build, or the build did not run)",
	            h->name, h->from_deployment, h->from_container, h->event);
}

/* fromBuild: env, envFrom and imagePullSecrets of the Deployment's target
 * container, as the Deployment says now. */
static int environment_from_deployment(struct hp *p)
{
	const struct hookpod_hook *h = p->h;
	const json_t *spec, *ctr;
	json_t *dep = NULL;
	size_t i;
	int rc, ret = 1;

	rc = kube_get(&dep, p->c, "apps/v1/deployments", h->ns, h->from_deployment);
	if (rc == KUBE_ENOTFOUND)
		return fail(p, "hook %s: deployment %s/%s not found", h->name, h->ns,
		            h->from_deployment);
	if (rc < 0)
		return fail(p, "hook %s: cannot read deployment %s/%s: %s", h->name, h->ns,
		            h->from_deployment, err_msg());
	spec = json_object_get(json_object_get(json_object_get(dep, "spec"), "template"), "spec");
	json_array_foreach(json_object_get(spec, "containers"), i, ctr)
	{
		const char *n = str_at(ctr, "name", NULL);
		const json_t *env = json_object_get(ctr, "env");
		const json_t *from = json_object_get(ctr, "envFrom");
		const json_t *pull = json_object_get(spec, "imagePullSecrets");

		if (!n || strcmp(n, h->from_container))
			continue;
		if ((json_is_array(env) && json_array_extend(p->env, (json_t *)env) < 0) ||
		    (json_is_array(from) && !(p->env_from = json_deep_copy(from))) ||
		    (json_is_array(pull) && !(p->pull = json_deep_copy(pull)))) {
			ret = err_set("out of memory");
			goto out;
		}
		ret = 0;
		goto out;
	}
	ret = fail(p, "hook %s: deployment %s/%s has no container \"%s\"", h->name, h->ns,
	           h->from_deployment, h->from_container);
out:
	json_decref(dep);
	return ret;
}

/* The SLIPWAY_* variables of the event, and where the event file is. */
static int environment_of_event(struct hp *p)
{
	const struct hookpod_hook *h = p->h;

	for (size_t i = 0; h->env && h->env[i]; i++) {
		const char *eq = strchr(h->env[i], '=');
		char name[128];

		if (strncmp(h->env[i], "SLIPWAY_", 8) || !eq ||
		    (size_t)(eq - h->env[i]) >= sizeof(name))
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)(eq - h->env[i]), h->env[i]);
		if (json_array_append_new(
		        p->env, json_pack("{s:s, s:s}", "name", name, "value", eq + 1)) < 0)
			return err_set("out of memory");
	}
	if (json_array_append_new(p->env, json_pack("{s:s, s:s}", "name", "SLIPWAY_EVENT_FILE",
	                                            "value", HOOKPOD_EVENT_FILE)) < 0)
		return err_set("out of memory");
	return 0;
}

/* The event ConfigMap: the event JSON and, for an admin hook, its script. */
static json_t *event_configmap(void *arg, const char *name)
{
	const struct hp *p = arg;
	const struct hookpod_hook *h = p->h;
	char *b64 = NULL;
	json_t *cm;

	cm = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s, s:s}}, s:b, s:{s:s}}", "apiVersion", "v1",
	               "kind", "ConfigMap", "metadata", "name", name, "namespace", h->ns, "labels",
	               "app.kubernetes.io/managed-by", "slipway", "slipway.dev/component", "hook",
	               "immutable", 1, "data", "event.json", h->event_json);
	if (!cm) {
		err_set("out of memory");
		return NULL;
	}
	if (h->script) {
		/* binaryData: a script need not be UTF-8 */
		if (base64_encode(&b64, h->script, h->script_len) < 0 ||
		    json_object_set_new(cm, "binaryData", json_pack("{s:s}", "hook", b64)) < 0) {
			free(b64);
			json_decref(cm);
			err_set("out of memory");
			return NULL;
		}
		free(b64);
	}
	return cm;
}

static json_t *pod_labels(const struct hp *p)
{
	json_t *l = json_pack("{s:s, s:s}", "app.kubernetes.io/managed-by", "slipway",
	                      "slipway.dev/component", "hook");

	if (l && runner_is_label_value(p->h->remote))
		json_object_set_new(l, "slipway.dev/remote", json_string(p->h->remote));
	if (l && p->cfg->pipelinerun && runner_is_label_value(p->cfg->pipelinerun))
		json_object_set_new(l, "slipway.dev/pipelinerun", json_string(p->cfg->pipelinerun));
	if (l && runner_is_label_value(p->h->event))
		json_object_set_new(l, "slipway.dev/event", json_string(p->h->event));
	return l;
}

static json_t *pod_annotations(const struct hp *p)
{
	json_t *a = json_pack("{s:s, s:s, s:s}", "slipway.dev/remote", p->h->remote,
	                      "slipway.dev/hook", p->h->name, "slipway.dev/event", p->h->event);

	if (a && p->cfg->pipelinerun)
		json_object_set_new(a, "slipway.dev/pipelinerun", json_string(p->cfg->pipelinerun));
	return a;
}

/* The container's argv: the wrapper, then the command or the script. */
static json_t *pod_command(const struct hp *p)
{
	const struct hookpod_hook *h = p->h;
	json_t *cmd =
	    json_pack("[s, s, s, s]", "/bin/sh", "-c", HOOKPOD_STDIN_WRAPPER, "slipway-hook");
	char path[600];

	if (!cmd)
		return NULL;
	if (h->command) {
		for (size_t i = 0; h->command[i]; i++)
			if (json_array_append_new(cmd, json_string(h->command[i])) < 0)
				goto oom;
		return cmd;
	}
	snprintf(path, sizeof(path), "%s/%s", HOOKPOD_HOOK_DIR, h->script_name);
	if (json_array_append_new(cmd, json_string(path)) < 0)
		goto oom;
	return cmd;
oom:
	json_decref(cmd);
	return NULL;
}

static json_t *hook_pod(void *arg, const char *name, const char *event_cm)
{
	struct hp *p = arg;
	const struct hookpod_hook *h = p->h;
	long deadline_s = (h->timeout_ms + 999) / 1000;
	json_t *ctr, *mounts, *volumes, *pod, *spec, *sc;
	const char *script_cm = h->script ? event_cm : h->configmap;
	const char *script_key = h->script ? "hook" : h->key;

	json_t *cmd = pod_command(p);

	sc = json_pack("{s:b, s:{s:[s]}, s:{s:s}}", "allowPrivilegeEscalation", 0, "capabilities",
	               "drop", "ALL", "seccompProfile", "type", "RuntimeDefault");
	if (sc && p->is_hooks_img && json_object_set_new(sc, "runAsNonRoot", json_true()) < 0) {
		json_decref(sc);
		sc = NULL;
	}
	mounts = json_pack("[{s:s, s:s, s:b}]", "name", "event", "mountPath", HOOKPOD_EVENT_DIR,
	                   "readOnly", 1);
	volumes = json_pack("[{s:s, s:{s:s, s:i, s:[{s:s, s:s}]}}]", "name", "event", "configMap",
	                    "name", event_cm, "defaultMode", 0444, "items", "key", "event.json",
	                    "path", "event.json");
	if (script_cm && mounts && volumes &&
	    (json_array_append_new(mounts, json_pack("{s:s, s:s, s:b}", "name", "hook", "mountPath",
	                                             HOOKPOD_HOOK_DIR, "readOnly", 1)) < 0 ||
	     json_array_append_new(volumes, json_pack("{s:s, s:{s:s, s:i, s:[{s:s, s:s}]}}", "name",
	                                              "hook", "configMap", "name", script_cm,
	                                              "defaultMode", 0555, "items", "key",
	                                              script_key, "path", h->script_name)) < 0)) {
		json_decref(mounts);
		mounts = NULL;
	}
	if (!cmd || !sc || !mounts || !volumes) {
		json_decref(cmd);
		json_decref(sc);
		json_decref(mounts);
		json_decref(volumes);
		err_set("out of memory");
		return NULL;
	}
	ctr =
	    json_pack("{s:s, s:s, s:o, s:O, s:o, s:o}", "name", "hook", "image", p->image,
	              "command", cmd, "env", p->env, "volumeMounts", mounts, "securityContext", sc);
	if (!ctr) {
		json_decref(volumes);
		err_set("out of memory");
		return NULL;
	}
	if (p->env_from)
		json_object_set(ctr, "envFrom", p->env_from);
	if (json_is_object(p->cfg->resources))
		json_object_set_new(ctr, "resources", json_deep_copy(p->cfg->resources));
	pod = runner_pod_object(p->cfg->runner, h->ns, name, pod_labels(p), pod_annotations(p), ctr,
	                        volumes, deadline_s);
	if (!pod)
		return NULL;
	spec = json_object_get(pod, "spec");
	if (h->service_account) {
		json_object_set_new(spec, "serviceAccountName", json_string(h->service_account));
		json_object_set_new(spec, "automountServiceAccountToken", json_true());
	}
	if (p->pull)
		json_object_set(spec, "imagePullSecrets", p->pull);
	if (p->cfg->pipelinerun && p->cfg->pipelinerun_uid &&
	    json_object_set_new(json_object_get(pod, "metadata"), "ownerReferences",
	                        json_pack("[{s:s, s:s, s:s, s:s}]", "apiVersion",
	                                  "slipway.dev/v1alpha1", "kind", "PipelineRun", "name",
	                                  p->cfg->pipelinerun, "uid", p->cfg->pipelinerun_uid)) <
	        0) {
		json_decref(pod);
		err_set("out of memory");
		return NULL;
	}
	return pod;
}

bool hookpod_is_expired(const json_t *pod, time_t now)
{
	const json_t *md = json_object_get(pod, "metadata");
	const char *until = str_at(json_object_get(md, "annotations"), HOOKPOD_KEEP_UNTIL, NULL);
	time_t t;

	return until && clock_parse_rfc3339(&t, until) == 0 && t <= now;
}

int hookpod_sweep(struct kube_client *c, const char *ns)
{
	struct kube_list_opts lo = {.label_selector = HOOKPOD_SELECTOR};
	json_t *list = NULL;
	const json_t *pod;
	time_t now;
	size_t i;
	int n = 0;

	if (kube_list(&list, c, "v1/pods", ns, &lo) < 0)
		return err_set("hook pods of %s: %s", ns ? ns : "all namespaces", err_msg());
	now = time(NULL);
	json_array_foreach(json_object_get(list, "items"), i, pod)
	{
		const json_t *md = json_object_get(pod, "metadata");
		const char *name = str_at(md, "name", NULL);
		const char *pod_ns = str_at(md, "namespace", NULL);
		int rc;

		if (!name || !pod_ns || !hookpod_is_expired(pod, now))
			continue;
		rc = kube_delete(NULL, c, "v1/pods", pod_ns, name, "Background");
		if (rc == KUBE_ENOTFOUND)
			continue;
		if (rc < 0) {
			log_warn("cannot delete kept hook pod %s/%s: %s", pod_ns, name, err_msg());
			continue;
		}
		event_log("info", "hook_pod_swept", "{s:s, s:s}", "namespace", pod_ns, "pod", name);
		n++;
	}
	json_decref(list);
	return n;
}

/* Marks RP kept until KEEP_S from now; UNTIL gets the time. */
static void keep(struct kube_client *c, struct runner_pod *rp, long keep_s,
                 char until[CLOCK_RFC3339_SIZE])
{
	json_t *patch;

	clock_format_rfc3339(until, time(NULL) + keep_s);
	patch = json_pack("{s:{s:{s:s}}}", "metadata", "annotations", HOOKPOD_KEEP_UNTIL, until);
	if (!patch ||
	    kube_patch(NULL, c, "v1/pods", rp->ns, rp->name, KUBE_PATCH_MERGE, patch, NULL) < 0)
		log_warn("hook pod %s/%s: cannot mark it kept: %s", rp->ns, rp->name, err_msg());
	json_decref(patch);
}

/* Whether the hook container has started (running or terminated). */
static bool has_started(const json_t *pod)
{
	const json_t *st = json_object_get(runner_pod_container_status(pod, "hook"), "state");

	return json_object_get(st, "running") || json_object_get(st, "terminated");
}

static bool has_ended(const json_t *pod)
{
	const char *phase = str_at(pod, "status", "phase");

	return phase && (!strcmp(phase, "Succeeded") || !strcmp(phase, "Failed"));
}

/* What became of the Pod. */
enum outcome {
	O_RUNNING,
	O_SUCCEEDED,
	O_FAILED,    /* exited non-zero, or ended otherwise: kept */
	O_TIMEOUT,   /* deadline: deleted */
	O_CANCELLED, /* deleted */
};

/* Polls RP until COND holds for the Pod, it ended, cannot start, is gone,
 * the deadline passed or the caller cancelled. *POD gets the last read. */
static enum outcome wait_for(struct hp *p, struct runner_pod *rp, json_t **pod,
                             bool (*cond)(const json_t *), long long deadline,
                             const volatile sig_atomic_t *cancel)
{
	char why[900];
	int rc;

	for (;;) {
		json_decref(*pod);
		*pod = NULL;
		rc = kube_get(pod, p->c, "v1/pods", rp->ns, rp->name);
		if (rc == KUBE_ENOTFOUND) {
			fail(p, "hook %s: pod %s/%s was deleted before it ended", p->h->name,
			     rp->ns, rp->name);
			return O_FAILED;
		}
		if (rc < 0)
			log_warn("hook pod %s/%s: %s", rp->ns, rp->name, err_msg());
		else if (cond(*pod) || has_ended(*pod))
			return O_RUNNING;
		else if (runner_pod_cannot_start(why, sizeof(why), *pod, "hook")) {
			fail(p, "hook %s: pod %s/%s cannot start: %s", p->h->name, rp->ns, rp->name,
			     why);
			return O_FAILED;
		}
		if (cancel && *cancel) {
			fail(p, "hook %s was cancelled", p->h->name);
			return O_CANCELLED;
		}
		if (clock_now_ms() >= deadline) {
			runner_pod_pending_reason(why, sizeof(why), *pod);
			fail(p, "hook %s: Timeout: pod %s/%s did not finish within %ld s%s",
			     p->h->name, rp->ns, rp->name, (p->h->timeout_ms + 999) / 1000, why);
			return O_TIMEOUT;
		}
		sleep_ms(HOOKPOD_POLL_MS);
	}
}

/* Judges the Pod that ended. */
static enum outcome judge(struct hp *p, const struct runner_pod *rp, const json_t *pod)
{
	const json_t *term = json_object_get(
	    json_object_get(runner_pod_container_status(pod, "hook"), "state"), "terminated");
	const char *reason = str_at(pod, "status", "reason");
	const char *treason = str_at(term, "reason", NULL);
	const char *tmsg = str_at(term, "message", NULL);
	int code = (int)json_integer_value(json_object_get(term, "exitCode"));

	if (reason && !strcmp(reason, "DeadlineExceeded")) {
		fail(p, "hook %s: Timeout: pod %s/%s ran past its %ld s (activeDeadlineSeconds)",
		     p->h->name, rp->ns, rp->name, (p->h->timeout_ms + 999) / 1000);
		return O_TIMEOUT;
	}
	if (term && code == 0 && !strcmp(str_at(pod, "status", "phase"), "Succeeded"))
		return O_SUCCEEDED;
	if (term && treason && !strcmp(treason, "OOMKilled"))
		fail(p, "hook %s ran out of memory (OOMKilled, exit code %d)", p->h->name, code);
	else if (term && treason && !strcmp(treason, "StartError"))
		fail(p, "hook %s could not start in pod %s/%s: %s", p->h->name, rp->ns, rp->name,
		     tmsg ? tmsg : treason);
	else if (term)
		fail(p, "hook %s exited with status %d", p->h->name, code);
	else
		fail(p, "hook %s: pod %s/%s failed%s%s", p->h->name, rp->ns, rp->name,
		     reason ? ": " : "", reason ? reason : "");
	return O_FAILED;
}

/* Whether S is one of the comma-separated CSV (NULL: none); with
 * IS_PREFIX, whether S starts with one of them. */
static bool csv_matches(const char *csv, const char *s, bool is_prefix)
{
	while (csv && *csv) {
		size_t n = strcspn(csv, ",");

		if (n && !strncmp(s, csv, n) && (is_prefix || s[n] == '\0'))
			return true;
		csv += n;
		if (*csv == ',')
			csv++;
	}
	return false;
}

/* The gitd operator's limits: which ServiceAccounts, which images. */
static int check_allowed(struct hp *p)
{
	const struct hookpod_hook *h = p->h;

	if (h->service_account && !csv_matches(p->cfg->service_accounts, h->service_account, false))
		return fail(p,
		            "hook %s: serviceAccountName \"%s\" is not one gitd allows hooks "
		            "(--hook-service-accounts)",
		            h->name, h->service_account);
	if (h->image && !p->is_hooks_img && p->cfg->image_prefixes &&
	    !csv_matches(p->cfg->image_prefixes, h->image, true))
		return fail(p, "hook %s: image %s is not one gitd allows hooks (--hook-images)",
		            h->name, h->image);
	return 0;
}

static int prepare(struct hp *p)
{
	const struct hookpod_hook *h = p->h;
	int rc;

	if (!(p->env = json_array()))
		return err_set("out of memory");
	if (h->from_deployment) {
		rc = image_from_build(p);
		if (rc == 0)
			rc = environment_from_deployment(p);
		if (rc)
			return rc;
	} else if (!strcmp(h->image, HOOKPOD_HOOKS_IMAGE)) {
		const char *img = p->cfg->hooks_image ? p->cfg->hooks_image : h->image;

		snprintf(p->image, sizeof(p->image), "%s", img);
		p->is_hooks_img = true;
	} else {
		snprintf(p->image, sizeof(p->image), "%s", h->image);
	}
	if ((rc = check_allowed(p)))
		return rc;
	return environment_of_event(p);
}

int hookpod_run(char *message, size_t size, struct kube_client *c, const struct hookpod_config *cfg,
                const struct hookpod_hook *h, void (*on_line)(void *arg, const char *line),
                void *arg, const volatile sig_atomic_t *cancel)
{
	struct hp p = {.cfg = cfg, .h = h, .c = c, .message = message, .size = size};
	struct runner_pod_maker m = {.companion_gvr = "v1/configmaps",
	                             .companion_suffix = "event",
	                             .companion = event_configmap,
	                             .pod = hook_pod,
	                             .arg = &p};
	struct runner_pod rp = {0};
	long keep_s = cfg->keep_failed_s > 0 ? cfg->keep_failed_s : HOOKPOD_KEEP_DEFAULT_S;
	char path[1024], until[CLOCK_RFC3339_SIZE], line[1400];
	json_t *pod = NULL;
	enum outcome o;
	long long deadline;
	size_t len = 0;
	int rc, ret = -1;

	message[0] = '\0';
	if (!c || (!h->image && !h->from_deployment) || (!h->command && !h->script_name))
		return err_set("hook %s: no API client, image or command", h->name);
	rc = prepare(&p);
	if (rc) {
		ret = rc;
		goto out;
	}
	if (hookpod_sweep(c, h->ns) < 0)
		log_warn("%s", err_msg());
	if (runner_pod_create(&rp, c, h->ns, h->remote, "hook", &m) < 0) {
		err_set("hook %s: %s", h->name, err_msg());
		goto out;
	}
	event_log("info", "hook_pod", "{s:s, s:s, s:s, s:s, s:s}", "namespace", h->ns, "pod",
	          rp.name, "hook", h->name, "hook_event", h->event, "image", p.image);
	snprintf(line, sizeof(line), "       pod %s/%s, image %s", h->ns, rp.name, p.image);
	if (on_line)
		on_line(arg, line);
	deadline = clock_now_ms() + h->timeout_ms + HOOKPOD_SLACK_MS;
	o = wait_for(&p, &rp, &pod, has_started, deadline, cancel);
	if (o == O_RUNNING) {
		long long left = deadline - clock_now_ms();

		if (kube_path(path, sizeof(path), "v1/pods", h->ns, rp.name, "log") < 0 ||
		    (len = strlen(path)) + 40 >= sizeof(path)) {
			err_set("hook %s: pod path too long", h->name);
			goto out;
		}
		snprintf(path + len, sizeof(path) - len, "?follow=true&container=hook");
		rc = kube_stream_lines(c, path, on_line, arg, cancel, left > 0 ? left : 1);
		if (rc < 0 && rc != KUBE_ETIMEOUT)
			log_warn("hook pod %s/%s: log: %s", h->ns, rp.name, err_msg());
		o = wait_for(&p, &rp, &pod, has_ended, deadline, cancel);
		/* the log could not be followed: show it whole once the Pod ended */
		if (rc < 0 && rc != KUBE_ETIMEOUT && o == O_RUNNING) {
			snprintf(path + len, sizeof(path) - len, "?container=hook");
			if (kube_stream_lines(c, path, on_line, arg, cancel, 30000) < 0)
				log_warn("hook pod %s/%s: log: %s", h->ns, rp.name, err_msg());
		}
	}
	if (o == O_RUNNING)
		o = judge(&p, &rp, pod);
	switch (o) {
	case O_SUCCEEDED:
		runner_pod_delete(&rp, c);
		ret = 0;
		break;
	case O_FAILED:
		if (rp.obj) {
			size_t mlen = strlen(message);

			keep(c, &rp, keep_s, until);
			snprintf(message + mlen, size - mlen, " (pod %s/%s kept until %s)", h->ns,
			         rp.name, until);
			runner_pod_release(&rp);
		}
		ret = 1;
		break;
	default:
		runner_pod_delete(&rp, c);
		ret = 1;
		break;
	}
out:
	if (rp.obj)
		runner_pod_delete(&rp, c);
	json_decref(pod);
	json_decref(p.env);
	json_decref(p.env_from);
	json_decref(p.pull);
	return ret;
}
