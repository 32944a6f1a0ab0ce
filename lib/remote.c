/* remote: the Remote object read once, into struct remote; every default and
 * bound of the format is applied here and nowhere else. */
#include "remote.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "banned.h"

/* Sizes of a field's path in messages, each level's with room for the one
 * above and its own index as any size_t. */
#define AT_TOP 48        /* "spec.deployments[N]", "spec.hooks[N]" */
#define AT_CONTAINER 96  /* AT_TOP ".containers[N]" */
#define AT_BUILD_ARG 136 /* AT_CONTAINER ".buildArgs[N]" */
#define AT_REF 64        /* AT_TOP ".configMapRef" */

static const char *const default_branches[] = {"main", "master"};

/* spec.hooks[].event's enum in manifests/crds/remotes.slipway.dev.yaml. */
static const char *const hook_events[] = {
    "pre-receive", "post-receive", "pre-build",          "post-build",
    "pre-deploy",  "post-deploy",  "pipeline-succeeded", "pipeline-failed",
};

/* OBJ[KEY], or NULL when absent or JSON null. */
static const json_t *member(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);

	return json_is_null(v) ? NULL : v;
}

/* *OUT = OBJ[KEY] as a string (borrowed), NULL when unset. A string that is
 * not one, or has a NUL byte inside, is refused; REQUIRED refuses "" and
 * unset. AT names OBJ in messages. */
static int get_string(const char **out, const json_t *obj, const char *key, const char *at,
                      bool required)
{
	const json_t *v = member(obj, key);

	*out = NULL;
	if (!v) {
		if (required)
			return err_set("%s%s%s: missing", at, *at ? "." : "", key);
		return 0;
	}
	if (!json_is_string(v))
		return err_set("%s%s%s: not a string", at, *at ? "." : "", key);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return err_set("%s%s%s: contains a NUL byte", at, *at ? "." : "", key);
	if (required && !json_string_length(v))
		return err_set("%s%s%s: empty", at, *at ? "." : "", key);
	*out = json_string_value(v);
	return 0;
}

static int get_bool(bool *out, const json_t *obj, const char *key, const char *at, bool unset)
{
	const json_t *v = member(obj, key);

	*out = unset;
	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return err_set("%s.%s: not a boolean", at, key);
	*out = json_is_true(v);
	return 0;
}

/* *OUT = OBJ[KEY] as an object, NULL when unset. */
static int get_object(const json_t **out, const json_t *obj, const char *key, const char *at)
{
	const json_t *v = member(obj, key);

	*out = NULL;
	if (v && !json_is_object(v))
		return err_set("%s%s%s: not an object", at, *at ? "." : "", key);
	*out = v;
	return 0;
}

/* *OUT = OBJ[KEY] as an array of at most MAX items, NULL when unset. */
static int get_array(const json_t **out, const json_t *obj, const char *key, const char *at,
                     size_t max)
{
	const json_t *v = member(obj, key);

	*out = NULL;
	if (!v)
		return 0;
	if (!json_is_array(v))
		return err_set("%s.%s: not an array", at, key);
	if (json_array_size(v) > max)
		return err_set("%s.%s: %zu items, at most %zu", at, key, json_array_size(v), max);
	*out = v;
	return 0;
}

/* A zeroed array of N items of SIZE (at least one, so that NULL means out of
 * memory). */
static void *alloc_array(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	if (!p)
		err_set("out of memory");
	return p;
}

/* *OUT = the strings of array ARR (at AT), each not empty. */
static int get_strings(const char ***out, const json_t *arr, const char *at)
{
	const json_t *v;
	size_t i;

	*out = alloc_array(json_array_size(arr), sizeof(**out));
	if (!*out)
		return -1;
	json_array_foreach(arr, i, v)
	{
		if (!json_is_string(v))
			return err_set("%s[%zu]: not a string", at, i);
		if (strlen(json_string_value(v)) != json_string_length(v))
			return err_set("%s[%zu]: contains a NUL byte", at, i);
		if (!json_string_length(v))
			return err_set("%s[%zu]: empty", at, i);
		(*out)[i] = json_string_value(v);
	}
	return 0;
}

static int parse_build_args(struct remote_container *c, const json_t *args, const char *at)
{
	char **argv;
	const json_t *a;
	size_t i;

	argv = alloc_array(json_array_size(args) + 1, sizeof(*argv));
	if (!argv)
		return -1;
	c->build_args = (const char *const *)argv;
	json_array_foreach(args, i, a)
	{
		char here[AT_BUILD_ARG];
		const char *name, *value;

		snprintf(here, sizeof(here), "%s.buildArgs[%zu]", at, i);
		if (!json_is_object(a))
			return err_set("%s: not an object", here);
		if (get_string(&name, a, "name", here, true) < 0 ||
		    get_string(&value, a, "value", here, false) < 0)
			return -1;
		if (strchr(name, '='))
			return err_set("%s.name: contains \"=\"", here);
		if (asprintf(&argv[i], "%s=%s", name, value ? value : "") < 0) {
			argv[i] = NULL;
			return err_set("out of memory");
		}
		c->nbuild_args = i + 1;
	}
	return 0;
}

/* gitkube gives the Dockerfile from the repository's root ("app/Dockerfile"
 * with path "app"); Slipway from the build context. */
static const char *dockerfile_in_context(const char *dockerfile, const char *path)
{
	size_t n = strlen(path);

	if (strcmp(path, ".") && !strncmp(dockerfile, path, n) && dockerfile[n] == '/')
		return dockerfile + n + 1;
	return dockerfile;
}

static int parse_container(struct remote_container *c, const json_t *obj, const char *at,
                           bool is_gitkube)
{
	const json_t *args;

	if (!json_is_object(obj))
		return err_set("%s: not an object", at);
	if (get_string(&c->name, obj, "name", at, true) < 0 ||
	    get_string(&c->path, obj, "path", at, false) < 0 ||
	    get_string(&c->dockerfile, obj, "dockerfile", at, false) < 0 ||
	    get_array(&args, obj, "buildArgs", at, REMOTE_BUILD_ARGS_MAX) < 0)
		return -1;
	if (!c->path || !*c->path)
		c->path = ".";
	if (!c->dockerfile || !*c->dockerfile)
		c->dockerfile = "Dockerfile";
	else if (is_gitkube)
		c->dockerfile = dockerfile_in_context(c->dockerfile, c->path);
	return parse_build_args(c, args, at);
}

static int parse_deployment(struct remote_deployment *d, const json_t *obj, const char *at,
                            bool is_gitkube)
{
	const json_t *containers, *c;
	size_t i;

	if (!json_is_object(obj))
		return err_set("%s: not an object", at);
	if (get_string(&d->name, obj, "name", at, true) < 0 ||
	    get_array(&containers, obj, "containers", at, REMOTE_CONTAINERS_MAX) < 0)
		return -1;
	d->containers = alloc_array(json_array_size(containers), sizeof(*d->containers));
	if (!d->containers)
		return -1;
	json_array_foreach(containers, i, c)
	{
		char here[AT_CONTAINER];

		snprintf(here, sizeof(here), "%s.containers[%zu]", at, i);
		d->ncontainers = i + 1;
		if (parse_container(&d->containers[i], c, here, is_gitkube) < 0)
			return -1;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(d->containers[j].name, d->containers[i].name))
				return err_set("%s.name: \"%.63s\" is also containers[%zu]", here,
				               d->containers[i].name, j);
	}
	return 0;
}

static int parse_deployments(struct remote *r, const json_t *spec)
{
	const json_t *deployments, *d;
	size_t i;

	if (get_array(&deployments, spec, "deployments", "spec", REMOTE_DEPLOYMENTS_MAX) < 0)
		return -1;
	r->deployments = alloc_array(json_array_size(deployments), sizeof(*r->deployments));
	if (!r->deployments)
		return -1;
	json_array_foreach(deployments, i, d)
	{
		char here[AT_TOP];

		snprintf(here, sizeof(here), "spec.deployments[%zu]", i);
		r->ndeployments = i + 1;
		if (parse_deployment(&r->deployments[i], d, here, r->is_gitkube) < 0)
			return -1;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(r->deployments[j].name, r->deployments[i].name))
				return err_set("%s.name: \"%.253s\" is also deployments[%zu]", here,
				               r->deployments[i].name, j);
	}
	return 0;
}

/* image: a reference string, or {fromBuild: {deployment, container}} naming
 * a container of spec.deployments[] (R's, already parsed). */
static int parse_hook_image(struct remote_hook *h, const struct remote *r, const json_t *obj,
                            const char *at)
{
	const json_t *img = member(obj, "image"), *from;
	char here[AT_REF];

	if (!img)
		return 0;
	h->is_pod = true;
	if (json_is_string(img))
		return get_string(&h->image, obj, "image", at, true);
	snprintf(here, sizeof(here), "%s.image", at);
	if (!json_is_object(img))
		return err_set("%s: neither an image reference nor {fromBuild}", here);
	if (get_object(&from, img, "fromBuild", here) < 0)
		return -1;
	if (!from)
		return err_set("%s.fromBuild: missing", here);
	snprintf(here, sizeof(here), "%s.image.fromBuild", at);
	if (get_string(&h->from_deployment, from, "deployment", here, true) < 0 ||
	    get_string(&h->from_container, from, "container", here, true) < 0)
		return -1;
	for (size_t i = 0; i < r->ndeployments; i++) {
		const struct remote_deployment *d = &r->deployments[i];

		if (strcmp(d->name, h->from_deployment))
			continue;
		for (size_t j = 0; j < d->ncontainers; j++)
			if (!strcmp(d->containers[j].name, h->from_container))
				return 0;
		return err_set("%s.container: \"%.64s\" is no container of deployment \"%.64s\" "
		               "in spec.deployments",
		               here, h->from_container, h->from_deployment);
	}
	return err_set("%s.deployment: \"%.64s\" is not in spec.deployments", here,
	               h->from_deployment);
}

static int parse_hook(struct remote_hook *h, const struct remote *r, const json_t *obj,
                      const char *at)
{
	const json_t *ref, *timeout, *command;
	char here[AT_REF];
	size_t i;

	if (!json_is_object(obj))
		return err_set("%s: not an object", at);
	if (get_string(&h->event, obj, "event", at, true) < 0)
		return -1;
	for (i = 0; i < sizeof(hook_events) / sizeof(hook_events[0]); i++)
		if (!strcmp(h->event, hook_events[i]))
			break;
	if (i == sizeof(hook_events) / sizeof(hook_events[0]))
		return err_set("%s.event: \"%.64s\" is not a hook event", at, h->event);
	if (parse_hook_image(h, r, obj, at) < 0 ||
	    get_string(&h->service_account, obj, "serviceAccountName", at, false) < 0 ||
	    get_array(&command, obj, "command", at, REMOTE_HOOK_COMMAND_MAX) < 0)
		return -1;
	if (h->service_account && !*h->service_account)
		h->service_account = NULL;
	if (command && json_array_size(command)) {
		const char **argv = alloc_array(json_array_size(command) + 1, sizeof(*argv));
		const json_t *v;

		if (!argv)
			return -1;
		h->command = argv; /* NULL-terminated by the zeroed last item */
		json_array_foreach(command, i, v)
		{
			if (!json_is_string(v) || !json_string_length(v) ||
			    strlen(json_string_value(v)) != json_string_length(v))
				return err_set("%s.command[%zu]: not a non-empty string without "
				               "NUL",
				               at, i);
			argv[i] = json_string_value(v);
		}
		h->ncommand = json_array_size(command);
	}
	if (!h->is_pod && h->command)
		return err_set("%s.command: only for a hook with an image", at);
	if (!h->is_pod && h->service_account)
		return err_set("%s.serviceAccountName: only for a hook with an image", at);
	snprintf(here, sizeof(here), "%s.configMapRef", at);
	if (get_object(&ref, obj, "configMapRef", at) < 0)
		return -1;
	if (!ref && !h->command)
		return err_set("%s: missing", here);
	if (ref && (get_string(&h->configmap, ref, "name", here, true) < 0 ||
	            get_string(&h->key, ref, "key", here, true) < 0))
		return -1;
	timeout = member(obj, "timeoutSeconds");
	if (timeout) {
		json_int_t s = json_integer_value(timeout);

		if (!json_is_integer(timeout))
			return err_set("%s.timeoutSeconds: not an integer", at);
		if (s < 1 || s > REMOTE_HOOK_TIMEOUT_MAX_S)
			return err_set("%s.timeoutSeconds: %lld is not 1 to %d", at, (long long)s,
			               REMOTE_HOOK_TIMEOUT_MAX_S);
		h->timeout_ms = (long)s * 1000;
	}
	return 0;
}

static bool is_event(const char *event)
{
	for (size_t i = 0; i < sizeof(hook_events) / sizeof(hook_events[0]); i++)
		if (!strcmp(event, hook_events[i]))
			return true;
	return false;
}

static int parse_webhook(struct remote_webhook *w, const json_t *obj, const char *at)
{
	const json_t *events, *ref;
	const char **strings;
	char here[AT_REF];
	int ret;

	if (!json_is_object(obj))
		return err_set("%s: not an object", at);
	if (get_string(&w->url, obj, "url", at, true) < 0)
		return -1;
	if (strncmp(w->url, "http://", 7) && strncmp(w->url, "https://", 8))
		return err_set("%s.url: not an http or https URL", at);
	if (strlen(w->url) > REMOTE_WEBHOOK_URL_MAX)
		return err_set("%s.url: longer than %d bytes", at, REMOTE_WEBHOOK_URL_MAX);
	snprintf(here, sizeof(here), "%s.events", at);
	if (get_array(&events, obj, "events", at,
	              sizeof(hook_events) / sizeof(hook_events[0]) + 1) < 0)
		return -1;
	if (!json_array_size(events))
		return err_set("%s: missing", here);
	ret = get_strings(&strings, events, here);
	w->events = strings; /* freed by remote_release, also on failure */
	if (ret < 0)
		return -1;
	w->nevents = json_array_size(events);
	for (size_t i = 0; i < w->nevents; i++)
		if (strcmp(w->events[i], "*") && !is_event(w->events[i]))
			return err_set("%s[%zu]: \"%.64s\" is not a hook event or \"*\"", here, i,
			               w->events[i]);
	snprintf(here, sizeof(here), "%s.secretRef", at);
	if (get_object(&ref, obj, "secretRef", at) < 0)
		return -1;
	if (!ref)
		return err_set("%s: missing", here);
	if (get_string(&w->secret, ref, "name", here, true) < 0 ||
	    get_string(&w->secret_key, ref, "key", here, false) < 0)
		return -1;
	if (!w->secret_key || !*w->secret_key)
		w->secret_key = "secret";
	return 0;
}

static int parse_webhooks(struct remote *r, const json_t *spec)
{
	const json_t *webhooks, *w;
	size_t i;

	if (get_array(&webhooks, spec, "webhooks", "spec", REMOTE_WEBHOOKS_MAX) < 0)
		return -1;
	r->webhooks = alloc_array(json_array_size(webhooks), sizeof(*r->webhooks));
	if (!r->webhooks)
		return -1;
	json_array_foreach(webhooks, i, w)
	{
		char here[AT_TOP];

		snprintf(here, sizeof(here), "spec.webhooks[%zu]", i);
		r->nwebhooks = i + 1;
		if (parse_webhook(&r->webhooks[i], w, here) < 0)
			return -1;
	}
	return 0;
}

static int parse_hooks(struct remote *r, const json_t *spec)
{
	const json_t *hooks, *h;
	size_t i;

	if (get_array(&hooks, spec, "hooks", "spec", REMOTE_HOOKS_MAX) < 0)
		return -1;
	r->hooks = alloc_array(json_array_size(hooks), sizeof(*r->hooks));
	if (!r->hooks)
		return -1;
	json_array_foreach(hooks, i, h)
	{
		char here[AT_TOP];

		snprintf(here, sizeof(here), "spec.hooks[%zu]", i);
		/* counted first: what parse_hook took is freed even when it fails */
		r->nhooks = i + 1;
		if (parse_hook(&r->hooks[i], r, h, here) < 0)
			return -1;
	}
	return 0;
}

/* The registry Secret: Slipway's secretRef {name}, gitkube's secretRef (a
 * name) or secretKeyRef {name, key} (manifests/crds/remotes.gitkube.sh.yaml).
 * Either form is taken from either kind. */
static int parse_registry(struct remote *r, const json_t *spec)
{
	const json_t *registry, *cred, *ref;

	if (get_object(&registry, spec, "registry", "spec") < 0 ||
	    get_string(&r->registry_url, registry, "url", "spec.registry", false) < 0 ||
	    get_bool(&r->is_registry_insecure, registry, "insecure", "spec.registry", false) < 0 ||
	    get_object(&cred, registry, "credentials", "spec.registry") < 0)
		return -1;
	if (r->registry_url && !*r->registry_url)
		r->registry_url = NULL;
	ref = member(cred, "secretRef");
	if (json_is_string(ref))
		return get_string(&r->registry_secret, cred, "secretRef",
		                  "spec.registry.credentials", false);
	if (ref) {
		if (!json_is_object(ref))
			return err_set("spec.registry.credentials.secretRef: neither a Secret "
			               "name nor {name}");
		return get_string(&r->registry_secret, ref, "name",
		                  "spec.registry.credentials.secretRef", true);
	}
	if (get_object(&ref, cred, "secretKeyRef", "spec.registry.credentials") < 0)
		return -1;
	if (ref)
		return get_string(&r->registry_secret, ref, "name",
		                  "spec.registry.credentials.secretKeyRef", true);
	return 0;
}

/* PATH made a folder of the tree as manifests_load takes it: leading "./"
 * and "/" and trailing "/" dropped, "" becoming "."; ".." components and
 * empty ones ("a//b") refused. *OUT is allocated. */
static int manifests_path(char **out, const char *path)
{
	const char *start = path, *end, *c;
	size_t n;

	*out = NULL;
	for (;;) {
		if (start[0] == '/')
			start++;
		else if (start[0] == '.' && start[1] == '/')
			start += 2;
		else if (start[0] == '.' && !start[1])
			start++;
		else
			break;
	}
	end = start + strlen(start);
	while (end > start && end[-1] == '/')
		end--;
	n = (size_t)(end - start);
	for (c = start; c < end;) {
		const char *slash = memchr(c, '/', (size_t)(end - c));
		size_t len = slash ? (size_t)(slash - c) : (size_t)(end - c);

		if (len == 0 || (len == 1 && c[0] == '.'))
			return err_set(
			    "spec.manifests.path: '%.200s' has an empty or \".\" component", path);
		if (len == 2 && c[0] == '.' && c[1] == '.')
			return err_set("spec.manifests.path: '%.200s' leaves the repository", path);
		for (size_t i = 0; i < len; i++)
			if ((unsigned char)c[i] < 0x20 || c[i] == 0x7f)
				return err_set("spec.manifests.path: contains a control character");
		c += len + (slash ? 1 : 0);
	}
	*out = n ? strndup(start, n) : strdup(".");
	if (!*out)
		return err_set("out of memory");
	return 0;
}

static int parse_manifests(struct remote *r, const json_t *spec)
{
	struct remote_manifests *m = &r->manifests_storage;
	const json_t *obj, *helm, *values, *v, *timeout;
	const char *path;
	char *owned;
	size_t i;

	m->is_wait = true;
	m->timeout_ms = REMOTE_APPLY_TIMEOUT_DEFAULT_S * 1000L;
	m->service_account = REMOTE_APPLY_SA_DEFAULT;
	if (get_object(&obj, spec, "manifests", "spec") < 0)
		return -1;
	if (!obj)
		return 0;
	if (get_string(&path, obj, "path", "spec.manifests", false) < 0 ||
	    get_object(&helm, obj, "helm", "spec.manifests") < 0 ||
	    get_bool(&m->is_prune, obj, "prune", "spec.manifests", false) < 0 ||
	    get_bool(&m->is_wait, obj, "wait", "spec.manifests", true) < 0 ||
	    get_string(&m->service_account, obj, "serviceAccountName", "spec.manifests", false) < 0)
		return -1;
	if (!m->service_account || !*m->service_account)
		m->service_account = REMOTE_APPLY_SA_DEFAULT;
	timeout = member(obj, "timeoutSeconds");
	if (timeout) {
		json_int_t t = json_integer_value(timeout);

		if (!json_is_integer(timeout))
			return err_set("spec.manifests.timeoutSeconds: not an integer");
		if (t < 1 || t > REMOTE_APPLY_TIMEOUT_MAX_S)
			return err_set("spec.manifests.timeoutSeconds: %lld is not 1 to %d",
			               (long long)t, REMOTE_APPLY_TIMEOUT_MAX_S);
		m->timeout_ms = (long)t * 1000;
	}
	if (helm) {
		m->has_helm = true;
		if (get_string(&m->helm_release, helm, "release", "spec.manifests.helm", false) <
		        0 ||
		    get_array(&values, helm, "values", "spec.manifests.helm",
		              REMOTE_HELM_VALUES_MAX) < 0)
			return -1;
		if (m->helm_release && !*m->helm_release)
			m->helm_release = NULL;
		m->helm_values = alloc_array(json_array_size(values), sizeof(*m->helm_values));
		if (!m->helm_values)
			return -1;
		json_array_foreach(values, i, v)
		{
			char here[64]; /* "spec.manifests.helm.values[N]" */

			snprintf(here, sizeof(here), "spec.manifests.helm.values[%zu]", i);
			if (!json_is_object(v))
				return err_set("%s: not an object", here);
			if (get_string(&m->helm_values[i].name, v, "name", here, true) < 0 ||
			    get_string(&m->helm_values[i].value, v, "value", here, false) < 0)
				return -1;
			if (!m->helm_values[i].value)
				m->helm_values[i].value = "";
			m->nhelm_values = i + 1;
		}
	}
	/* gitkube acts on manifests only with a path; so does Slipway */
	if (!path || !*path)
		return 0;
	if (manifests_path(&owned, path) < 0)
		return -1;
	m->path = owned;
	r->manifests = m;
	return 0;
}

/* spec.historyLimit: an integer in 1..REMOTE_HISTORY_LIMIT_MAX. */
static int get_history_limit(struct remote *r, const json_t *spec)
{
	const json_t *v = member(spec, "historyLimit");

	r->history_limit = REMOTE_HISTORY_LIMIT_DEFAULT;
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 1 ||
	    json_integer_value(v) > REMOTE_HISTORY_LIMIT_MAX)
		return err_set("spec.historyLimit: not an integer from 1 to %d",
		               REMOTE_HISTORY_LIMIT_MAX);
	r->history_limit = (long)json_integer_value(v);
	return 0;
}

/* spec.upstream of a Slipway Remote (gitkube's have none). */
static int parse_upstream(struct remote *r, const json_t *spec)
{
	const json_t *up, *ref, *branches, *interval;
	const char **strings;

	if (r->is_gitkube)
		return 0;
	if (get_object(&up, spec, "upstream", "spec") < 0)
		return -1;
	if (!up)
		return 0;
	if (get_string(&r->upstream.url, up, "url", "spec.upstream", true) < 0 ||
	    get_object(&ref, up, "secretRef", "spec.upstream") < 0)
		return -1;
	if (strncmp(r->upstream.url, "https://", 8) != 0 &&
	    strncmp(r->upstream.url, "ssh://", 6) != 0)
		return err_set("spec.upstream.url: not an https:// or ssh:// URL");
	if (!ref)
		return err_set("spec.upstream.secretRef: missing");
	if (get_string(&r->upstream.secret, ref, "name", "spec.upstream.secretRef", true) < 0 ||
	    get_array(&branches, up, "branches", "spec.upstream", REMOTE_BRANCHES_MAX) < 0)
		return -1;
	if (json_array_size(branches)) {
		if (get_strings(&strings, branches, "spec.upstream.branches") < 0) {
			free(strings);
			return -1;
		}
		r->upstream.branches = strings;
		r->upstream.nbranches = json_array_size(branches);
	}
	interval = member(up, "pollIntervalSeconds");
	if (interval) {
		if (!json_is_integer(interval) ||
		    json_integer_value(interval) < REMOTE_POLL_INTERVAL_MIN_S ||
		    json_integer_value(interval) > REMOTE_POLL_INTERVAL_MAX_S)
			return err_set("spec.upstream.pollIntervalSeconds: not an integer from %d "
			               "to %d",
			               REMOTE_POLL_INTERVAL_MIN_S, REMOTE_POLL_INTERVAL_MAX_S);
		r->upstream.poll_interval_s = (int)json_integer_value(interval);
	}
	r->has_upstream = true;
	return 0;
}

static int parse_spec(struct remote *r, const json_t *spec)
{
	const json_t *keys, *branches;
	const char **strings;

	if (get_array(&keys, spec, "authorizedKeys", "spec", REMOTE_KEYS_MAX) < 0)
		return -1;
	if (get_strings(&strings, keys, "spec.authorizedKeys") < 0) {
		free(strings);
		return -1;
	}
	r->authorized_keys = strings;
	r->nauthorized_keys = json_array_size(keys);
	if (get_array(&branches, spec, "branches", "spec", REMOTE_BRANCHES_MAX) < 0)
		return -1;
	if (json_array_size(branches)) {
		if (get_strings(&strings, branches, "spec.branches") < 0) {
			free(strings);
			return -1;
		}
		r->branches = strings;
		r->nbranches = json_array_size(branches);
	}
	if (parse_registry(r, spec) < 0 || parse_deployments(r, spec) < 0 ||
	    parse_hooks(r, spec) < 0 || parse_manifests(r, spec) < 0 ||
	    parse_webhooks(r, spec) < 0 || get_object(&r->builder, spec, "builder", "spec") < 0 ||
	    get_bool(&r->deny_non_fast_forwards, spec, "denyNonFastForwards", "spec", false) < 0 ||
	    get_bool(&r->allow_delete_current_branch, spec, "allowDeleteCurrentBranch", "spec",
	             false) < 0 ||
	    get_bool(&r->rollback_on_failure, spec, "rollbackOnFailure", "spec", true) < 0 ||
	    get_history_limit(r, spec) < 0 || parse_upstream(r, spec) < 0)
		return -1;
	return 0;
}

int remote_parse(struct remote *out, const json_t *obj, bool is_gitkube)
{
	const json_t *md, *spec;

	memset(out, 0, sizeof(*out));
	out->is_gitkube = is_gitkube;
	out->rollback_on_failure = true;
	out->history_limit = REMOTE_HISTORY_LIMIT_DEFAULT;
	if (!json_is_object(obj))
		return err_set("a Remote is a JSON object");
	out->obj = json_incref((json_t *)obj);
	if (get_object(&md, obj, "metadata", "") < 0 || get_object(&spec, obj, "spec", "") < 0)
		goto fail;
	if (!md) {
		err_set("metadata: missing");
		goto fail;
	}
	if (get_string(&out->ns, md, "namespace", "metadata", true) < 0 ||
	    get_string(&out->name, md, "name", "metadata", true) < 0 || parse_spec(out, spec) < 0)
		goto fail;
	if (!out->nbranches) {
		out->branches = default_branches;
		out->nbranches = sizeof(default_branches) / sizeof(default_branches[0]);
	}
	return 0;
fail:
	remote_release(out);
	return -1;
}

bool remote_is_deploying(const struct remote *r, const char *refname)
{
	if (strncmp(refname, "refs/heads/", 11) != 0)
		return false;
	for (size_t i = 0; i < r->nbranches; i++)
		if (!strcmp(r->branches[i], refname + 11) || !strcmp(r->branches[i], refname))
			return true;
	return false;
}

bool remote_upstream_is_followed(const struct remote *r, const char *refname)
{
	if (!r->has_upstream || strncmp(refname, "refs/heads/", 11) != 0)
		return false;
	if (!r->upstream.branches)
		return remote_is_deploying(r, refname);
	for (size_t i = 0; i < r->upstream.nbranches; i++)
		if (!strcmp(r->upstream.branches[i], refname + 11) ||
		    !strcmp(r->upstream.branches[i], refname))
			return true;
	return false;
}

bool remote_has_hook(const struct remote *r, const char *event)
{
	for (size_t i = 0; r && event && i < r->nhooks; i++)
		if (!strcmp(r->hooks[i].event, event))
			return true;
	return false;
}

bool remote_webhook_wants(const struct remote_webhook *w, const char *event)
{
	for (size_t i = 0; w && event && i < w->nevents; i++)
		if (!strcmp(w->events[i], "*") || !strcmp(w->events[i], event))
			return true;
	return false;
}

void remote_release(struct remote *r)
{
	for (size_t i = 0; r->deployments && i < r->ndeployments; i++) {
		struct remote_deployment *d = &r->deployments[i];

		for (size_t j = 0; d->containers && j < d->ncontainers; j++) {
			char **argv = (char **)d->containers[j].build_args;

			for (size_t k = 0; argv && argv[k]; k++)
				free(argv[k]);
			free(argv);
		}
		free(d->containers);
	}
	free(r->deployments);
	for (size_t i = 0; r->hooks && i < r->nhooks; i++)
		free((void *)r->hooks[i].command);
	free(r->hooks);
	free((void *)r->manifests_storage.path);
	free(r->manifests_storage.helm_values);
	for (size_t i = 0; r->webhooks && i < r->nwebhooks; i++)
		free((void *)r->webhooks[i].events);
	free(r->webhooks);
	free((void *)r->authorized_keys);
	if (r->branches != default_branches)
		free((void *)r->branches);
	free((void *)r->upstream.branches);
	json_decref(r->obj);
	memset(r, 0, sizeof(*r));
}
