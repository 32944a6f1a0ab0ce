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

static int parse_hook(struct remote_hook *h, const json_t *obj, const char *at)
{
	const json_t *ref, *timeout;
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
	snprintf(here, sizeof(here), "%s.configMapRef", at);
	if (get_object(&ref, obj, "configMapRef", at) < 0)
		return -1;
	if (!ref)
		return err_set("%s: missing", here);
	if (get_string(&h->configmap, ref, "name", here, true) < 0 ||
	    get_string(&h->key, ref, "key", here, true) < 0)
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
		if (parse_hook(&r->hooks[i], h, here) < 0)
			return -1;
		r->nhooks = i + 1;
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
	    parse_hooks(r, spec) < 0 || get_object(&r->builder, spec, "builder", "spec") < 0 ||
	    get_bool(&r->deny_non_fast_forwards, spec, "denyNonFastForwards", "spec", false) < 0 ||
	    get_bool(&r->allow_delete_current_branch, spec, "allowDeleteCurrentBranch", "spec",
	             false) < 0 ||
	    get_bool(&r->rollback_on_failure, spec, "rollbackOnFailure", "spec", true) < 0 ||
	    parse_upstream(r, spec) < 0)
		return -1;
	return 0;
}

int remote_parse(struct remote *out, const json_t *obj, bool is_gitkube)
{
	const json_t *md, *spec;

	memset(out, 0, sizeof(*out));
	out->is_gitkube = is_gitkube;
	out->rollback_on_failure = true;
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
	free(r->hooks);
	free((void *)r->authorized_keys);
	if (r->branches != default_branches)
		free((void *)r->branches);
	free((void *)r->upstream.branches);
	json_decref(r->obj);
	memset(r, 0, sizeof(*r));
}
