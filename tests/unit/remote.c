/* Unit tests for lib/remote: Remote objects of both kinds parsed into struct
 * remote, with defaults, gitkube's forms, bounds and malformed fields. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "err.h"
#include "remote.h"
#include "tap.h"
#include "yamljson.h"

static json_t *load(const char *text)
{
	json_error_t je;
	json_t *obj = json_loads(text, JSON_ALLOW_NUL, &je);

	if (!obj)
		printf("# bad test JSON: %s\n", je.text);
	return obj;
}

/* Checks that TEXT (a Remote) is refused with a message containing WANT. */
static void refused(const char *text, bool is_gitkube, const char *want, const char *what)
{
	json_t *obj = load(text);
	struct remote r;

	err_clear();
	ok(obj && remote_parse(&r, obj, is_gitkube) == -1 && strstr(err_msg(), want), "%s", what);
	if (!strstr(err_msg(), want))
		printf("#   message: '%s'\n#   want:    '%s'\n", err_msg(), want);
	ok(!r.obj && !r.deployments && !r.ndeployments, "  and leaves the struct empty");
	json_decref(obj);
}

static void test_defaults(void)
{
	json_t *obj = load("{\"metadata\":{\"namespace\":\"team\",\"name\":\"web\"},"
	                   "\"spec\":{\"deployments\":[{\"name\":\"www\",\"containers\":"
	                   "[{\"name\":\"app\"}]}]}}");
	struct remote r;

	ok(remote_parse(&r, obj, false) == 0, "a minimal Remote parses");
	json_decref(obj); /* the struct holds its own reference */
	is_str(r.ns, "team", "namespace");
	is_str(r.name, "web", "name");
	ok(!r.is_gitkube, "not gitkube");
	is_int(r.nauthorized_keys, 0, "no keys");
	ok(!r.registry_url && !r.registry_secret && !r.is_registry_insecure,
	   "no registry, no secret, not insecure");
	is_int(r.ndeployments, 1, "one deployment");
	is_str(r.deployments[0].name, "www", "its name");
	is_int(r.deployments[0].ncontainers, 1, "one container");
	is_str(r.deployments[0].containers[0].path, ".", "path defaults to .");
	is_str(r.deployments[0].containers[0].dockerfile, "Dockerfile",
	       "dockerfile defaults to Dockerfile");
	ok(r.deployments[0].containers[0].build_args &&
	       !r.deployments[0].containers[0].build_args[0],
	   "build args: an empty NULL-terminated list");
	is_int(r.nbranches, 2, "two default branches");
	ok(remote_is_deploying(&r, "refs/heads/main"), "main deploys by default");
	ok(remote_is_deploying(&r, "refs/heads/master"), "master deploys by default");
	ok(!remote_is_deploying(&r, "refs/heads/dev"), "dev does not");
	ok(!remote_is_deploying(&r, "refs/tags/main"), "a tag named main does not");
	is_int(r.nhooks, 0, "no hooks");
	ok(!remote_has_hook(&r, "pre-build"), "no pre-build hook");
	ok(!r.builder, "no builder");
	ok(!r.deny_non_fast_forwards, "force pushes allowed by default");
	ok(r.rollback_on_failure, "rollback on by default");
	remote_release(&r);
	ok(!r.obj && !r.deployments, "release empties the struct");
	remote_release(&r);
	ok(1, "releasing twice is harmless");
}

static void test_full(void)
{
	json_t *obj = load(
	    "{\"metadata\":{\"namespace\":\"team\",\"name\":\"web\"},\"spec\":{"
	    "\"authorizedKeys\":[\"ssh-ed25519 AAAA a\",\"ssh-ed25519 AAAB b\"],"
	    "\"registry\":{\"url\":\"reg.example.com/team\",\"insecure\":true,"
	    "\"credentials\":{\"secretRef\":{\"name\":\"regcred\"}}},"
	    "\"deployments\":[{\"name\":\"www\",\"containers\":[{\"name\":\"app\",\"path\":\"app\","
	    "\"dockerfile\":\"Dockerfile.prod\",\"buildArgs\":[{\"name\":\"A\",\"value\":\"1=2\"},"
	    "{\"name\":\"B\"}]},{\"name\":\"side\"}]},{\"name\":\"api\",\"containers\":[]}],"
	    "\"branches\":[\"release\",\"refs/heads/hotfix\"],"
	    "\"hooks\":[{\"event\":\"pre-build\",\"configMapRef\":{\"name\":\"h\",\"key\":\"k\"},"
	    "\"timeoutSeconds\":30},{\"event\":\"post-deploy\",\"configMapRef\":{\"name\":\"h\","
	    "\"key\":\"n\"}}],"
	    "\"builder\":{\"mode\":\"local\"},\"denyNonFastForwards\":true,"
	    "\"rollbackOnFailure\":false,\"unknownField\":[1,2]}}");
	struct remote r;
	const struct remote_container *c;

	ok(remote_parse(&r, obj, false) == 0, "a Remote with every field parses");
	is_int(r.nauthorized_keys, 2, "two key lines");
	is_str(r.authorized_keys[1], "ssh-ed25519 AAAB b", "kept as given");
	is_str(r.registry_url, "reg.example.com/team", "registry url");
	ok(r.is_registry_insecure, "insecure registry");
	is_str(r.registry_secret, "regcred", "secretRef {name}");
	is_int(r.ndeployments, 2, "two deployments");
	is_int(r.deployments[0].ncontainers, 2, "two containers in the first");
	is_int(r.deployments[1].ncontainers, 0, "none in the second");
	c = &r.deployments[0].containers[0];
	is_str(c->path, "app", "path as given");
	is_str(c->dockerfile, "Dockerfile.prod", "dockerfile as given, relative to path");
	is_int(c->nbuild_args, 2, "two build args");
	is_str(c->build_args[0], "A=1=2", "NAME=VALUE");
	is_str(c->build_args[1], "B=", "a build arg without value is empty");
	ok(!c->build_args[2], "NULL-terminated");
	ok(remote_is_deploying(&r, "refs/heads/release"), "a listed branch deploys");
	ok(remote_is_deploying(&r, "refs/heads/hotfix"), "so does one listed as a ref");
	ok(!remote_is_deploying(&r, "refs/heads/main"), "main does not when branches are set");
	is_int(r.nhooks, 2, "two hooks");
	is_int(r.hooks[0].timeout_ms, 30000, "timeoutSeconds in ms");
	is_int(r.hooks[1].timeout_ms, 0, "no timeoutSeconds: 0 (gitd's default)");
	is_str(r.hooks[1].key, "n", "configMapRef key");
	ok(remote_has_hook(&r, "post-deploy") && !remote_has_hook(&r, "pre-deploy"),
	   "remote_has_hook");
	ok(json_is_object(r.builder) &&
	       !strcmp(json_string_value(json_object_get(r.builder, "mode")), "local"),
	   "builder kept for the runner");
	ok(r.deny_non_fast_forwards && !r.rollback_on_failure, "the two flags");
	remote_release(&r);
	json_decref(obj);
}

static void test_gitkube(void)
{
	json_t *obj = load(
	    "{\"metadata\":{\"namespace\":\"team\",\"name\":\"legacy\"},\"spec\":{"
	    "\"registry\":{\"url\":\"reg\",\"credentials\":{\"secretRef\":\"regcred\"}},"
	    "\"manifests\":{\"path\":\"k8s\"},"
	    "\"deployments\":[{\"name\":\"www\",\"containers\":[{\"name\":\"app\","
	    "\"path\":\"example/www\",\"dockerfile\":\"example/www/Dockerfile\"},"
	    "{\"name\":\"other\",\"path\":\"example/www\",\"dockerfile\":\"example/Dockerfile\"}]}"
	    "]}}");
	json_t *skr = load("{\"metadata\":{\"namespace\":\"team\",\"name\":\"legacy\"},\"spec\":{"
	                   "\"registry\":{\"credentials\":{\"secretKeyRef\":{\"name\":\"old\","
	                   "\"key\":\".dockercfg\"}}}}}");
	struct remote r;

	ok(remote_parse(&r, obj, true) == 0, "a gitkube Remote with manifests parses");
	ok(r.is_gitkube, "marked gitkube");
	is_str(r.registry_secret, "regcred", "gitkube's secretRef is a Secret name");
	is_str(r.deployments[0].containers[0].dockerfile, "Dockerfile",
	       "gitkube's root-relative dockerfile is taken relative to path");
	is_str(r.deployments[0].containers[1].dockerfile, "example/Dockerfile",
	       "one outside path is left for the builder to refuse");
	remote_release(&r);
	ok(remote_parse(&r, obj, false) == 0, "the same as a Slipway Remote");
	is_str(r.deployments[0].containers[0].dockerfile, "example/www/Dockerfile",
	       "a Slipway Remote's dockerfile is kept relative to path");
	remote_release(&r);
	ok(remote_parse(&r, skr, true) == 0, "a gitkube Remote with secretKeyRef parses");
	is_str(r.registry_secret, "old", "secretKeyRef's name");
	remote_release(&r);
	json_decref(skr);
	json_decref(obj);
}

/* "[{"name":"n0"},{"name":"n1"},...]" with N items of TEMPLATE (one %zu). */
static char *numbered(const char *tmpl, size_t n)
{
	size_t size = n * (strlen(tmpl) + 24) + 3, at = 1;
	char *out = malloc(size);

	if (!out)
		return NULL;
	out[0] = '[';
	for (size_t i = 0; i < n; i++) {
		if (i)
			out[at++] = ',';
		at += (size_t)snprintf(out + at, size - at, tmpl, i);
	}
	snprintf(out + at, size - at, "]");
	return out;
}

/* Checks that the list made by LIST_FMT around NUMBERED(TMPL, N) parses at
 * N = MAX and is refused at MAX + 1 with WANT. */
static void bound(const char *list_fmt, const char *tmpl, size_t max, const char *want,
                  const char *what)
{
	for (size_t n = max; n <= max + 1; n++) {
		char *items = numbered(tmpl, n), *text;
		size_t size = (items ? strlen(items) : 0) + strlen(list_fmt) + 1;
		json_t *obj;
		struct remote r;
		int rc;

		text = malloc(size);
		if (!items || !text) {
			ok(0, "out of memory");
			free(items);
			free(text);
			return;
		}
		snprintf(text, size, list_fmt, items);
		obj = load(text);
		err_clear();
		rc = obj ? remote_parse(&r, obj, false) : -2;
		if (n == max) {
			ok(rc == 0, "%s: %zu items parse", what, n);
			if (rc == 0)
				remote_release(&r);
		} else {
			ok(rc == -1 && strstr(err_msg(), want), "%s: %zu items are refused", what,
			   n);
			is_str(err_msg(), want, "  with the field and the bound");
		}
		json_decref(obj);
		free(items);
		free(text);
	}
}

#define MD "\"metadata\":{\"namespace\":\"team\",\"name\":\"web\"}"

static void test_bounds(void)
{
	char want[160];

	snprintf(want, sizeof(want), "spec.authorizedKeys: %d items, at most %d",
	         REMOTE_KEYS_MAX + 1, REMOTE_KEYS_MAX);
	bound("{" MD ",\"spec\":{\"authorizedKeys\":%s}}", "\"ssh-ed25519 AAAA%zu\"",
	      REMOTE_KEYS_MAX, want, "authorizedKeys");
	snprintf(want, sizeof(want), "spec.deployments: %d items, at most %d",
	         REMOTE_DEPLOYMENTS_MAX + 1, REMOTE_DEPLOYMENTS_MAX);
	bound("{" MD ",\"spec\":{\"deployments\":%s}}",
	      "{\"name\":\"d%zu\",\"containers\":[{\"name\":\"c\"}]}", REMOTE_DEPLOYMENTS_MAX, want,
	      "deployments");
	snprintf(want, sizeof(want), "spec.deployments[0].containers: %d items, at most %d",
	         REMOTE_CONTAINERS_MAX + 1, REMOTE_CONTAINERS_MAX);
	bound("{" MD ",\"spec\":{\"deployments\":[{\"name\":\"d\",\"containers\":%s}]}}",
	      "{\"name\":\"c%zu\"}", REMOTE_CONTAINERS_MAX, want, "containers of a deployment");
	snprintf(want, sizeof(want),
	         "spec.deployments[0].containers[0].buildArgs: %d items, at most %d",
	         REMOTE_BUILD_ARGS_MAX + 1, REMOTE_BUILD_ARGS_MAX);
	bound("{" MD ",\"spec\":{\"deployments\":[{\"name\":\"d\",\"containers\":[{\"name\":\"c\","
	      "\"buildArgs\":%s}]}]}}",
	      "{\"name\":\"A%zu\",\"value\":\"v\"}", REMOTE_BUILD_ARGS_MAX, want, "buildArgs");
	snprintf(want, sizeof(want), "spec.branches: %d items, at most %d", REMOTE_BRANCHES_MAX + 1,
	         REMOTE_BRANCHES_MAX);
	bound("{" MD ",\"spec\":{\"branches\":%s}}", "\"b%zu\"", REMOTE_BRANCHES_MAX, want,
	      "branches");
	snprintf(want, sizeof(want), "spec.hooks: %d items, at most %d", REMOTE_HOOKS_MAX + 1,
	         REMOTE_HOOKS_MAX);
	bound("{" MD ",\"spec\":{\"hooks\":%s}}",
	      "{\"event\":\"pre-build\",\"configMapRef\":{\"name\":\"h\",\"key\":\"k%zu\"}}",
	      REMOTE_HOOKS_MAX, want, "hooks");
}

static void test_malformed(void)
{
	refused("[]", false, "a Remote is a JSON object", "an array is no Remote");
	refused("{\"spec\":{}}", false, "metadata: missing", "no metadata");
	refused("{\"metadata\":{\"name\":\"web\"}}", false, "metadata.namespace: missing",
	        "no namespace");
	refused("{\"metadata\":{\"namespace\":\"team\",\"name\":\"\"}}", false,
	        "metadata.name: empty", "an empty name");
	refused("{" MD ",\"spec\":[]}", false, "spec: not an object", "spec not an object");
	refused("{" MD ",\"spec\":{\"authorizedKeys\":\"ssh-ed25519 AAAA\"}}", false,
	        "spec.authorizedKeys: not an array", "authorizedKeys not an array");
	refused("{" MD ",\"spec\":{\"authorizedKeys\":[\"ssh-ed25519 AAAA\",7]}}", false,
	        "spec.authorizedKeys[1]: not a string", "a key line that is no string");
	refused("{" MD ",\"spec\":{\"authorizedKeys\":[\"ssh-ed25519 A\\u0000A\"]}}", false,
	        "spec.authorizedKeys[0]: contains a NUL byte", "a key line with a NUL byte");
	refused("{" MD ",\"spec\":{\"registry\":{\"url\":5}}}", false,
	        "spec.registry.url: not a string", "registry url not a string");
	refused("{" MD ",\"spec\":{\"registry\":{\"insecure\":\"yes\"}}}", false,
	        "spec.registry.insecure: not a boolean", "insecure not a boolean");
	refused("{" MD ",\"spec\":{\"registry\":{\"credentials\":{\"secretRef\":{}}}}}", false,
	        "spec.registry.credentials.secretRef.name: missing", "secretRef without name");
	refused("{" MD ",\"spec\":{\"registry\":{\"credentials\":{\"secretRef\":3}}}}", true,
	        "spec.registry.credentials.secretRef: neither a Secret name nor {name}",
	        "secretRef a number");
	refused("{" MD ",\"spec\":{\"deployments\":[{\"containers\":[]}]}}", false,
	        "spec.deployments[0].name: missing", "a deployment without name");
	refused("{" MD ",\"spec\":{\"deployments\":[{\"name\":\"d\",\"containers\":[{}]}]}}", false,
	        "spec.deployments[0].containers[0].name: missing", "a container without name");
	refused("{" MD ",\"spec\":{\"deployments\":[{\"name\":\"d\"},{\"name\":\"d\"}]}}", false,
	        "spec.deployments[1].name: \"d\" is also deployments[0]",
	        "a deployment named twice (gitkube's CRD does not stop it)");
	refused("{" MD ",\"spec\":{\"deployments\":[{\"name\":\"d\",\"containers\":"
	        "[{\"name\":\"c\"},{\"name\":\"c\"}]}]}}",
	        true, "spec.deployments[0].containers[1].name: \"c\" is also containers[0]",
	        "a container named twice");
	refused("{" MD ",\"spec\":{\"deployments\":[{\"name\":\"d\",\"containers\":"
	        "[{\"name\":\"c\",\"buildArgs\":[{\"value\":\"v\"}]}]}]}}",
	        false, "spec.deployments[0].containers[0].buildArgs[0].name: missing",
	        "a build arg without name");
	refused("{" MD ",\"spec\":{\"deployments\":[{\"name\":\"d\",\"containers\":"
	        "[{\"name\":\"c\",\"buildArgs\":[{\"name\":\"A=B\"}]}]}]}}",
	        false, "spec.deployments[0].containers[0].buildArgs[0].name: contains \"=\"",
	        "a build arg name with =");
	refused("{" MD ",\"spec\":{\"branches\":[\"main\",\"\"]}}", false,
	        "spec.branches[1]: empty", "an empty branch");
	refused("{" MD ",\"spec\":{\"hooks\":[{\"event\":\"pre-push\",\"configMapRef\":"
	        "{\"name\":\"h\",\"key\":\"k\"}}]}}",
	        false, "spec.hooks[0].event: \"pre-push\" is not a hook event", "an unknown event");
	refused("{" MD ",\"spec\":{\"hooks\":[{\"event\":\"pre-build\"}]}}", false,
	        "spec.hooks[0].configMapRef: missing", "a hook without configMapRef");
	refused("{" MD ",\"spec\":{\"hooks\":[{\"event\":\"pre-build\",\"configMapRef\":"
	        "{\"name\":\"h\"}}]}}",
	        false, "spec.hooks[0].configMapRef.key: missing", "a hook without key");
	refused("{" MD ",\"spec\":{\"hooks\":[{\"event\":\"pre-build\",\"configMapRef\":"
	        "{\"name\":\"h\",\"key\":\"k\"},\"timeoutSeconds\":0}]}}",
	        true, "spec.hooks[0].timeoutSeconds: 0 is not 1 to 3600",
	        "a timeout below 1 (gitkube's CRD does not stop it)");
	refused("{" MD ",\"spec\":{\"builder\":\"local\"}}", false, "spec.builder: not an object",
	        "builder not an object");
	refused("{" MD ",\"spec\":{\"rollbackOnFailure\":\"no\"}}", false,
	        "spec.rollbackOnFailure: not a boolean", "rollbackOnFailure not a boolean");
}

static void test_upstream(void)
{
	json_t *obj = load("{" MD ",\"spec\":{\"branches\":[\"main\",\"dev\"],\"upstream\":"
	                   "{\"url\":\"https://git.example.com/team/web.git\",\"secretRef\":"
	                   "{\"name\":\"web-upstream\"},\"pollIntervalSeconds\":60}}}");
	struct remote r;

	ok(remote_parse(&r, obj, false) == 0, "a Remote with an upstream parses");
	json_decref(obj);
	ok(r.has_upstream, "it has an upstream");
	is_str(r.upstream.url, "https://git.example.com/team/web.git", "its url");
	is_str(r.upstream.secret, "web-upstream", "its secret");
	is_int(r.upstream.poll_interval_s, 60, "its poll interval");
	ok(!r.upstream.branches, "no upstream branches: the Remote's apply");
	ok(remote_upstream_is_followed(&r, "refs/heads/dev"), "a deploying branch is followed");
	ok(!remote_upstream_is_followed(&r, "refs/heads/other"), "another is not");
	ok(!remote_upstream_is_followed(&r, "refs/tags/main"), "nor a tag");
	remote_release(&r);

	obj = load("{" MD ",\"spec\":{\"upstream\":{\"url\":\"ssh://git@h/web.git\","
	           "\"secretRef\":{\"name\":\"s\"},\"branches\":[\"release\"]}}}");
	ok(remote_parse(&r, obj, false) == 0, "an ssh upstream with branches parses");
	json_decref(obj);
	is_int(r.upstream.poll_interval_s, 0, "no polling when unset");
	ok(remote_upstream_is_followed(&r, "refs/heads/release"), "its branch is followed");
	ok(!remote_upstream_is_followed(&r, "refs/heads/main"),
	   "main is not when branches are set");
	remote_release(&r);

	obj = load("{" MD ",\"spec\":{\"upstream\":{\"url\":\"https://h/w\"}}}");
	ok(remote_parse(&r, obj, true) == 0 && !r.has_upstream, "gitkube's Remotes have none");
	json_decref(obj);
	remote_release(&r);
	ok(!remote_upstream_is_followed(&r, "refs/heads/main"), "nothing is followed without");

	refused("{" MD ",\"spec\":{\"upstream\":{\"url\":\"git@h:web.git\",\"secretRef\":"
	        "{\"name\":\"s\"}}}}",
	        false, "spec.upstream.url: not an https:// or ssh:// URL", "an scp-like url");
	refused("{" MD ",\"spec\":{\"upstream\":{\"url\":\"https://h/w\"}}}", false,
	        "spec.upstream.secretRef: missing", "an upstream without secretRef");
	refused("{" MD ",\"spec\":{\"upstream\":{\"url\":\"https://h/w\",\"secretRef\":"
	        "{\"name\":\"s\"},\"pollIntervalSeconds\":5}}}",
	        false, "spec.upstream.pollIntervalSeconds: not an integer from 10 to 86400",
	        "a poll interval below 10 s");
	refused("{" MD ",\"spec\":{\"upstream\":{\"url\":\"https://h/w\",\"secretRef\":"
	        "{\"name\":\"s\"},\"branches\":[\"\"]}}}",
	        false, "spec.upstream.branches[0]: empty", "an empty upstream branch");
}

static void test_nulls(void)
{
	json_t *obj = load("{" MD ",\"spec\":{\"authorizedKeys\":null,\"registry\":null,"
	                   "\"deployments\":null,\"branches\":[],\"rollbackOnFailure\":null}}");
	struct remote r;

	ok(remote_parse(&r, obj, true) == 0, "JSON null fields count as unset");
	ok(r.nbranches == 2 && r.rollback_on_failure, "  and get their defaults");
	remote_release(&r);
	json_decref(obj);
}

/* The JSON at the '/'-separated PATH of OBJ ("0" indexes an array). */
static const json_t *at(const json_t *obj, const char *path)
{
	char key[64];

	while (obj && *path) {
		size_t n = strcspn(path, "/");

		snprintf(key, sizeof(key), "%.*s", (int)n, path);
		obj = json_is_array(obj) ? json_array_get(obj, 0) : json_object_get(obj, key);
		path += n + (path[n] == '/');
	}
	return obj;
}

/* Checks that the CRD in FILE bounds the list at PATH (under the Remote's
 * spec schema) with maxItems MAX. */
static void crd_bound(const json_t *crd, const char *file, const char *path, long long max)
{
	const json_t *spec =
	    at(crd, "spec/versions/0/schema/openAPIV3Schema/properties/spec/properties");
	const json_t *v = json_object_get(at(spec, path), "maxItems");

	ok(json_is_integer(v) && json_integer_value(v) == max, "%s: %s has maxItems %lld", file,
	   path, max);
}

static void test_crds(void)
{
	static const char *const files[] = {"remotes.slipway.dev.yaml", "remotes.gitkube.sh.yaml"};
	const char *root = getenv("SLIPWAY_ROOT") ? getenv("SLIPWAY_ROOT") : ".";

	for (size_t i = 0; i < 2; i++) {
		char path[4096], *text = NULL;
		json_t *crd = NULL;
		size_t len = 0;
		FILE *f;

		snprintf(path, sizeof(path), "%s/manifests/crds/%s", root, files[i]);
		f = fopen(path, "r");
		if (f) {
			text = calloc(1, 1 << 20);
			len = text ? fread(text, 1, (1 << 20) - 1, f) : 0;
			fclose(f);
		}
		ok(text && yamljson_load(&crd, text, len) == 0, "%s parses", path);
		free(text);
		crd_bound(crd, files[i], "authorizedKeys", REMOTE_KEYS_MAX);
		crd_bound(crd, files[i], "deployments", REMOTE_DEPLOYMENTS_MAX);
		crd_bound(crd, files[i], "deployments/items/properties/containers",
		          REMOTE_CONTAINERS_MAX);
		crd_bound(crd, files[i],
		          "deployments/items/properties/containers/items/properties/buildArgs",
		          REMOTE_BUILD_ARGS_MAX);
		if (i == 0) { /* gitkube's Remote has no branches or hooks */
			crd_bound(crd, files[i], "branches", REMOTE_BRANCHES_MAX);
			crd_bound(crd, files[i], "hooks", REMOTE_HOOKS_MAX);
		}
		json_decref(crd);
	}
}

int main(void)
{
	test_defaults();
	test_full();
	test_gitkube();
	test_bounds();
	test_malformed();
	test_nulls();
	test_upstream();
	test_crds();
	return tap_done();
}
