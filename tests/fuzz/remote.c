/* libFuzzer target: any JSON through remote_parse, as either kind, either
 * parses into a struct that keeps the format's bounds and defaults or fails
 * with a message, without crashing or leaking. The first byte picks the kind. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "err.h"
#include "remote.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts unless R keeps what remote.h promises. */
static void check(const struct remote *r)
{
	if (!r->ns[0] || !r->name[0] || r->nauthorized_keys > REMOTE_KEYS_MAX ||
	    r->ndeployments > REMOTE_DEPLOYMENTS_MAX || r->nhooks > REMOTE_HOOKS_MAX ||
	    !r->nbranches || r->nbranches > REMOTE_BRANCHES_MAX)
		abort();
	for (size_t i = 0; i < r->ndeployments; i++) {
		const struct remote_deployment *d = &r->deployments[i];

		if (!d->name[0] || d->ncontainers > REMOTE_CONTAINERS_MAX)
			abort();
		for (size_t j = 0; j < d->ncontainers; j++) {
			const struct remote_container *c = &d->containers[j];

			if (!c->name[0] || !c->path[0] || !c->dockerfile[0] ||
			    c->nbuild_args > REMOTE_BUILD_ARGS_MAX || c->build_args[c->nbuild_args])
				abort();
			for (size_t k = 0; k < c->nbuild_args; k++)
				if (!strchr(c->build_args[k], '='))
					abort();
		}
	}
	for (size_t i = 0; i < r->nhooks; i++)
		if (!r->hooks[i].configmap[0] || !r->hooks[i].key[0] ||
		    r->hooks[i].timeout_ms < 0 ||
		    r->hooks[i].timeout_ms > REMOTE_HOOK_TIMEOUT_MAX_S * 1000L)
			abort();
	if (r->nwebhooks > REMOTE_WEBHOOKS_MAX)
		abort();
	for (size_t i = 0; i < r->nwebhooks; i++) {
		const struct remote_webhook *w = &r->webhooks[i];

		if ((strncmp(w->url, "http://", 7) && strncmp(w->url, "https://", 8)) ||
		    strlen(w->url) > REMOTE_WEBHOOK_URL_MAX || !w->nevents || !w->secret[0] ||
		    !w->secret_key[0])
			abort();
		remote_webhook_wants(w, "pipeline-failed");
	}
	if (r->manifests) {
		const struct remote_manifests *m = r->manifests;
		size_t n = strlen(m->path);

		/* a folder of the tree as manifests_load takes it */
		if (!n || m->path[0] == '/' || m->path[n - 1] == '/' || strstr(m->path, "//") ||
		    (strstr(m->path, "..") &&
		     (!strcmp(m->path, "..") || !strncmp(m->path, "../", 3) ||
		      strstr(m->path, "/../") || (n >= 3 && !strcmp(m->path + n - 3, "/..")))) ||
		    !m->service_account[0] || m->timeout_ms < 1000 ||
		    m->timeout_ms > REMOTE_APPLY_TIMEOUT_MAX_S * 1000L ||
		    m->nhelm_values > REMOTE_HELM_VALUES_MAX ||
		    (m->helm_release && !m->helm_release[0]))
			abort();
		for (size_t i = 0; i < m->nhelm_values; i++)
			if (!m->helm_values[i].name[0] || !m->helm_values[i].value)
				abort();
	}
	remote_is_deploying(r, "refs/heads/main");
	remote_has_hook(r, "pre-build");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct remote r;
	json_t *obj;

	if (size < 1)
		return 0;
	obj = json_loadb((const char *)data + 1, size - 1, JSON_ALLOW_NUL, NULL);
	if (!obj)
		return 0;
	if (remote_parse(&r, obj, data[0] & 1) == 0) {
		check(&r);
		remote_release(&r);
	} else if (!err_msg()[0]) {
		abort(); /* a refusal always says why */
	}
	json_decref(obj);
	return 0;
}
