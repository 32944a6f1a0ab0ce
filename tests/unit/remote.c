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
	ok(!r.manifests, "no manifests");
	is_int(r.history_limit, 50, "historyLimit 50 by default");
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
	    "\"rollbackOnFailure\":false,\"unknownField\":[1,2],"
	    "\"manifests\":{\"path\":\"./deploy/k8s/\",\"prune\":true,\"wait\":false,"
	    "\"timeoutSeconds\":60,\"serviceAccountName\":\"deployer\","
	    "\"helm\":{\"release\":\"web-1\",\"values\":[{\"name\":\"a.b\",\"value\":\"1\"},"
	    "{\"name\":\"c\"}]}}}}");
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
	ok(r.manifests && r.manifests == &r.manifests_storage, "manifests set");
	is_str(r.manifests->path, "deploy/k8s", "manifests path without ./ and trailing /");
	ok(r.manifests->is_prune && !r.manifests->is_wait, "prune and wait as given");
	is_int(r.manifests->timeout_ms, 60000, "manifests timeoutSeconds in ms");
	is_str(r.manifests->service_account, "deployer", "serviceAccountName");
	ok(r.manifests->has_helm, "helm given");
	is_str(r.manifests->helm_release, "web-1", "helm release");
	is_int(r.manifests->nhelm_values, 2, "two helm values");
	is_str(r.manifests->helm_values[0].name, "a.b", "a value's name");
	is_str(r.manifests->helm_values[1].value, "", "a value without value is empty");
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
	ok(r.manifests && !strcmp(r.manifests->path, "k8s"), "gitkube's manifests.path");
	ok(!r.manifests->is_prune && r.manifests->is_wait && !r.manifests->has_helm,
	   "  no prune, wait, no helm by default");
	is_int(r.manifests->timeout_ms, 300000, "  a timeout of 300 s by default");
	is_str(r.manifests->service_account, "slipway-apply", "  ServiceAccount slipway-apply");
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
	snprintf(want, sizeof(want), "spec.webhooks: %d items, at most %d", REMOTE_WEBHOOKS_MAX + 1,
	         REMOTE_WEBHOOKS_MAX);
	bound("{" MD ",\"spec\":{\"webhooks\":%s}}",
	      "{\"url\":\"http://h/%zu\",\"events\":[\"*\"],\"secretRef\":{\"name\":\"s\"}}",
	      REMOTE_WEBHOOKS_MAX, want, "webhooks");
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
	refused("{" MD ",\"spec\":{\"historyLimit\":0}}", false,
	        "spec.historyLimit: not an integer from 1 to 10000", "historyLimit 0");
	refused("{" MD ",\"spec\":{\"historyLimit\":\"3\"}}", true,
	        "spec.historyLimit: not an integer from 1 to 10000", "historyLimit a string");
}

static void test_history_limit(void)
{
	json_t *obj = load("{" MD ",\"spec\":{\"historyLimit\":3}}");
	struct remote r;

	ok(remote_parse(&r, obj, false) == 0, "historyLimit 3 parses");
	is_int(r.history_limit, 3, "  and is kept");
	remote_release(&r);
	json_decref(obj);
}

/* Parses a Remote whose spec.manifests is MANIFESTS (JSON text) and checks
 * the path it gets: WANT, or NULL for no manifests. */
static void manifests_path_is(const char *manifests, const char *want, const char *what)
{
	char text[512];
	json_t *obj;
	struct remote r;

	snprintf(text, sizeof(text), "{" MD ",\"spec\":{\"manifests\":%s}}", manifests);
	obj = load(text);
	ok(obj && remote_parse(&r, obj, true) == 0 &&
	       (want ? r.manifests && !strcmp(r.manifests->path, want) : !r.manifests),
	   "%s", what);
	if (obj && r.obj)
		remote_release(&r);
	json_decref(obj);
}

static void test_manifests(void)
{
	struct remote r;
	json_t *obj;

	manifests_path_is("{\"path\":\"mono-repo/manifests\"}", "mono-repo/manifests",
	                  "gitkube's mono-repo path as given");
	manifests_path_is("{\"path\":\".\"}", ".", "\".\" is the root");
	manifests_path_is("{\"path\":\"/\"}", ".", "\"/\" is the root too");
	manifests_path_is("{\"path\":\"\"}", NULL, "an empty path: no manifests (as gitkube)");
	manifests_path_is("{\"helm\":{}}", NULL, "no path: no manifests");
	obj = load("{" MD ",\"spec\":{\"manifests\":{\"path\":\"chart\",\"helm\":{}}}}");
	ok(obj && remote_parse(&r, obj, true) == 0 && r.manifests && r.manifests->has_helm &&
	       !r.manifests->helm_release && r.manifests->nhelm_values == 0,
	   "gitkube's helm: {} without a release");
	remote_release(&r);
	json_decref(obj);
	refused("{" MD ",\"spec\":{\"manifests\":{\"path\":\"a/../../etc\"}}}", true,
	        "spec.manifests.path: 'a/../../etc' leaves the repository", "a path with ..");
	refused("{" MD ",\"spec\":{\"manifests\":{\"path\":\"a//b\"}}}", false,
	        "spec.manifests.path: 'a//b' has an empty or \".\" component", "a path with //");
	refused("{" MD ",\"spec\":{\"manifests\":{\"path\":\"/a/./b/\"}}}", false,
	        "spec.manifests.path: '/a/./b/' has an empty or \".\" component",
	        "a path with /./");
	refused("{" MD ",\"spec\":{\"manifests\":{\"path\":7}}}", false,
	        "spec.manifests.path: not a string", "a path that is no string");
	refused("{" MD ",\"spec\":{\"manifests\":[]}}", true, "spec.manifests: not an object",
	        "manifests not an object");
	refused("{" MD ",\"spec\":{\"manifests\":{\"path\":\"k\",\"timeoutSeconds\":0}}}", false,
	        "spec.manifests.timeoutSeconds: 0 is not 1 to 3600", "a timeout of 0");
	refused("{" MD ",\"spec\":{\"manifests\":{\"path\":\"k\",\"timeoutSeconds\":\"5\"}}}", true,
	        "spec.manifests.timeoutSeconds: not an integer", "a timeout string");
	refused("{" MD ",\"spec\":{\"manifests\":{\"path\":\"k\",\"prune\":\"yes\"}}}", false,
	        "spec.manifests.prune: not a boolean", "prune not a boolean");
	refused("{" MD ",\"spec\":{\"manifests\":{\"path\":\"k\",\"helm\":{\"values\":"
	        "[{\"value\":\"v\"}]}}}}",
	        true, "spec.manifests.helm.values[0].name: missing", "a helm value without name");
}

static void test_webhooks(void)
{
	json_t *obj =
	    load("{" MD ",\"spec\":{\"webhooks\":["
	         "{\"url\":\"https://chat.example/hook?x=1\",\"events\":[\"pipeline-failed\","
	         "\"pipeline-succeeded\"],\"secretRef\":{\"name\":\"chat\"}},"
	         "{\"url\":\"http://ci.example/\",\"events\":[\"*\"],"
	         "\"secretRef\":{\"name\":\"ci\",\"key\":\"hmac\"}}]}}");
	struct remote r;

	ok(remote_parse(&r, obj, false) == 0, "a Remote with two webhooks parses");
	json_decref(obj);
	is_int(r.nwebhooks, 2, "two webhooks");
	is_str(r.webhooks[0].url, "https://chat.example/hook?x=1", "the URL as given");
	is_int(r.webhooks[0].nevents, 2, "its two events");
	is_str(r.webhooks[0].secret, "chat", "its Secret");
	is_str(r.webhooks[0].secret_key, "secret", "the Secret's key defaults to secret");
	is_str(r.webhooks[1].secret_key, "hmac", "a key given is kept");
	ok(remote_webhook_wants(&r.webhooks[0], "pipeline-failed"), "a listed event is wanted");
	ok(!remote_webhook_wants(&r.webhooks[0], "pre-build"), "an unlisted one is not");
	ok(remote_webhook_wants(&r.webhooks[1], "pre-build") &&
	       remote_webhook_wants(&r.webhooks[1], "post-receive"),
	   "\"*\" wants every event");
	remote_release(&r);
	ok(!r.webhooks && !r.nwebhooks, "release empties the webhooks");

	refused("{" MD ",\"spec\":{\"webhooks\":[{\"url\":\"ftp://x/\",\"events\":[\"*\"],"
	        "\"secretRef\":{\"name\":\"s\"}}]}}",
	        false, "spec.webhooks[0].url: not an http or https URL", "a webhook to ftp://");
	refused("{" MD ",\"spec\":{\"webhooks\":[{\"url\":\"http://x/\",\"events\":[],"
	        "\"secretRef\":{\"name\":\"s\"}}]}}",
	        false, "spec.webhooks[0].events: missing", "a webhook without events");
	refused("{" MD ",\"spec\":{\"webhooks\":[{\"url\":\"http://x/\",\"events\":[\"*\","
	        "\"pre-push\"],\"secretRef\":{\"name\":\"s\"}}]}}",
	        false, "spec.webhooks[0].events[1]: \"pre-push\" is not a hook event",
	        "a webhook with an unknown event");
	refused("{" MD ",\"spec\":{\"webhooks\":[{\"url\":\"http://x/\",\"events\":[\"*\"]}]}}",
	        false, "spec.webhooks[0].secretRef: missing", "a webhook without a Secret");
	refused("{" MD ",\"spec\":{\"webhooks\":[{\"url\":\"http://x/\",\"events\":[\"*\"],"
	        "\"secretRef\":{}}]}}",
	        false, "spec.webhooks[0].secretRef.name: missing", "a secretRef without name");
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
		crd_bound(crd, files[i], "manifests/properties/helm/properties/values",
		          REMOTE_HELM_VALUES_MAX);
		if (i == 0) { /* gitkube's Remote has no branches or hooks */
			crd_bound(crd, files[i], "branches", REMOTE_BRANCHES_MAX);
			crd_bound(crd, files[i], "hooks", REMOTE_HOOKS_MAX);
			crd_bound(crd, files[i], "webhooks", REMOTE_WEBHOOKS_MAX);
		}
		json_decref(crd);
	}
}

/* Image hooks: image as a reference or fromBuild, command, serviceAccountName. */
static void test_image_hooks(void)
{
	json_t *obj =
	    load("{" MD ",\"spec\":{\"deployments\":[{\"name\":\"www\",\"containers\":"
	         "[{\"name\":\"app\"}]}],\"hooks\":["
	         "{\"event\":\"post-deploy\",\"image\":\"slipway/hooks\","
	         "\"configMapRef\":{\"name\":\"h\",\"key\":\"k.py\"},"
	         "\"serviceAccountName\":\"slipway-hooks\"},"
	         "{\"event\":\"pre-deploy\",\"image\":{\"fromBuild\":"
	         "{\"deployment\":\"www\",\"container\":\"app\"}},"
	         "\"command\":[\"./manage.py\",\"migrate\"],\"timeoutSeconds\":600},"
	         "{\"event\":\"pre-build\",\"configMapRef\":{\"name\":\"p\",\"key\":\"q\"}}]}}");
	struct remote r;

	ok(remote_parse(&r, obj, false) == 0, "a Remote with image hooks parses");
	json_decref(obj);
	ok(r.hooks[0].is_pod, "image: a pod hook");
	is_str(r.hooks[0].image, "slipway/hooks", "  its image");
	is_str(r.hooks[0].service_account, "slipway-hooks", "  its serviceAccountName");
	ok(!r.hooks[0].command && !r.hooks[0].from_deployment, "  no command, not fromBuild");
	ok(r.hooks[1].is_pod && !r.hooks[1].image, "fromBuild: a pod hook without a reference");
	is_str(r.hooks[1].from_deployment, "www", "  its deployment");
	is_str(r.hooks[1].from_container, "app", "  its container");
	is_int(r.hooks[1].ncommand, 2, "  a command of two");
	ok(r.hooks[1].command && !strcmp(r.hooks[1].command[0], "./manage.py") &&
	       !strcmp(r.hooks[1].command[1], "migrate") && !r.hooks[1].command[2],
	   "  NULL-terminated, in order");
	ok(!r.hooks[1].configmap && !r.hooks[1].key, "  no script");
	ok(!r.hooks[1].service_account, "  no ServiceAccount: no token");
	ok(!r.hooks[2].is_pod && !r.hooks[2].command && !r.hooks[2].image,
	   "a hook without image stays a process");
	remote_release(&r);

	refused("{" MD ",\"spec\":{\"hooks\":[{\"event\":\"pre-build\",\"command\":[\"x\"]}]}}",
	        false, "spec.hooks[0].command: only for a hook with an image",
	        "a command without an image");
	refused("{" MD ",\"spec\":{\"hooks\":[{\"event\":\"pre-build\",\"configMapRef\":"
	        "{\"name\":\"h\",\"key\":\"k\"},\"serviceAccountName\":\"sa\"}]}}",
	        false, "spec.hooks[0].serviceAccountName: only for a hook with an image",
	        "a ServiceAccount without an image");
	refused("{" MD ",\"spec\":{\"hooks\":[{\"event\":\"pre-build\",\"image\":\"x\"}]}}", false,
	        "spec.hooks[0].configMapRef: missing",
	        "an image hook with neither script nor command");
	refused("{" MD ",\"spec\":{\"hooks\":[{\"event\":\"pre-build\",\"image\":\"\","
	        "\"command\":[\"x\"]}]}}",
	        false, "spec.hooks[0].image: empty", "an empty image");
	refused("{" MD ",\"spec\":{\"hooks\":[{\"event\":\"pre-build\",\"image\":7,"
	        "\"command\":[\"x\"]}]}}",
	        false, "spec.hooks[0].image: neither an image reference nor {fromBuild}",
	        "an image of the wrong type");
	refused("{" MD ",\"spec\":{\"hooks\":[{\"event\":\"pre-build\",\"image\":{},"
	        "\"command\":[\"x\"]}]}}",
	        false, "spec.hooks[0].image.fromBuild: missing",
	        "an image object without fromBuild");
	refused("{" MD ",\"spec\":{\"hooks\":[{\"event\":\"pre-deploy\",\"image\":{\"fromBuild\":"
	        "{\"deployment\":\"www\",\"container\":\"app\"}},\"command\":[\"x\"]}]}}",
	        false,
	        "spec.hooks[0].image.fromBuild.deployment: \"www\" is not in spec.deployments",
	        "fromBuild naming no deployment of the Remote");
	refused(
	    "{" MD ",\"spec\":{\"deployments\":[{\"name\":\"www\",\"containers\":"
	    "[{\"name\":\"app\"}]}],\"hooks\":[{\"event\":\"pre-deploy\",\"image\":"
	    "{\"fromBuild\":{\"deployment\":\"www\",\"container\":\"db\"}},\"command\":[\"x\"]}]}}",
	    false,
	    "spec.hooks[0].image.fromBuild.container: \"db\" is no container of deployment \"www\"",
	    "fromBuild naming no container of the deployment");
	refused("{" MD ",\"spec\":{\"hooks\":[{\"event\":\"pre-build\",\"image\":\"x\","
	        "\"command\":[\"a\",\"\"]}]}}",
	        false, "spec.hooks[0].command[1]: not a non-empty string", "an empty command item");
	refused("{" MD ",\"spec\":{\"hooks\":[{\"event\":\"pre-build\",\"image\":\"x\","
	        "\"command\":\"a\"}]}}",
	        false, "spec.hooks[0].command: not an array", "a command that is a string");
}

int main(void)
{
	test_defaults();
	test_full();
	test_gitkube();
	test_bounds();
	test_malformed();
	test_webhooks();
	test_nulls();
	test_manifests();
	test_image_hooks();
	test_history_limit();
	test_upstream();
	test_crds();
	return tap_done();
}
