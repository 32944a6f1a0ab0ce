/* remote: a Remote object (remotes.slipway.dev or gitkube's remotes.gitkube.sh,
 * both v1alpha1) read once into a struct, with its defaults and bounds. The
 * format is the CRDs' (manifests/crds/remotes.slipway.dev.yaml and
 * remotes.gitkube.sh.yaml; docs/api.md describes each field). gitkube's
 * differences are taken here: registry.credentials.secretRef is a Secret
 * name (a string) or secretKeyRef {name, key}, and a container's dockerfile
 * is given from the repository's root. Unknown fields are ignored. */
#ifndef SLIP_REMOTE_H
#define SLIP_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

/* The bounds of the lists, as the CRDs' maxItems state them. A Remote past
 * one is refused as a whole. */
#define REMOTE_KEYS_MAX 1000       /* spec.authorizedKeys[] */
#define REMOTE_DEPLOYMENTS_MAX 100 /* spec.deployments[] */
#define REMOTE_CONTAINERS_MAX                                                                      \
	50                        /* spec.deployments[].containers[]; the                          \
	                             deployer sets at most 64 images in one                        \
	                             Deployment */
#define REMOTE_BUILD_ARGS_MAX 100 /* spec.deployments[].containers[].buildArgs[] */
#define REMOTE_BRANCHES_MAX 100   /* spec.branches[] */
#define REMOTE_HOOKS_MAX 100      /* spec.hooks[] */

#define REMOTE_HISTORY_LIMIT_DEFAULT 50 /* spec.historyLimit when unset */
#define REMOTE_HISTORY_LIMIT_MAX 10000  /* spec.historyLimit, from 1 */
#define REMOTE_HOOK_TIMEOUT_MAX_S 3600  /* spec.hooks[].timeoutSeconds, from 1 */
#define REMOTE_HOOK_COMMAND_MAX 256     /* spec.hooks[].command[] */

/* spec.webhooks[]: at most this many, each URL at most this many bytes */
#define REMOTE_WEBHOOKS_MAX 20
#define REMOTE_WEBHOOK_URL_MAX 2048

/* spec.upstream.pollIntervalSeconds: from 10 s to a day */
#define REMOTE_POLL_INTERVAL_MIN_S 10
#define REMOTE_POLL_INTERVAL_MAX_S 86400

/* One container of a Deployment: one image built per push. */
struct remote_container {
	const char *name;              /* containers[].name, not empty */
	const char *path;              /* build context in the repository; "." when unset */
	const char *dockerfile;        /* relative to path; "Dockerfile" when unset. A
	                                  gitkube Remote's "PATH/FILE" (from the root) is
	                                  given here as "FILE" */
	const char *const *build_args; /* "NAME=VALUE" of each buildArgs[] (value ""
	                                  when unset), NULL-terminated */
	size_t nbuild_args;
};

/* One Deployment in the Remote's namespace. */
struct remote_deployment {
	const char *name; /* deployments[].name, not empty, unique in the Remote */
	struct remote_container *containers; /* names unique in the Deployment */
	size_t ncontainers;
};

/* One spec.hooks[] entry: a script in a ConfigMap of the Remote's namespace
 * run by gitd as a process, or, with an image, a Pod in that namespace
 * (docs/hooks.md). An image hook has a script, a command, or both. */
struct remote_hook {
	const char *event;           /* one of the CRD's events ("pre-build", ...) */
	const char *configmap;       /* configMapRef.name, or NULL when unset (only
	                                an image hook with a command may leave it) */
	const char *key;             /* configMapRef.key; set when configmap is */
	long timeout_ms;             /* timeoutSeconds * 1000, or 0 when unset (gitd's
	                                --hook-timeout then applies) */
	const char *image;           /* image as a string (a reference, or
	                                "slipway/hooks"), or NULL */
	const char *from_deployment; /* image.fromBuild.deployment: a Deployment
	                                of spec.deployments[], or NULL */
	const char *from_container;  /* image.fromBuild.container, one of its
	                                containers; set when from_deployment is */
	const char *const *command;  /* command[], NULL-terminated (each not
	                                empty), or NULL when unset */
	size_t ncommand;
	const char *service_account; /* serviceAccountName, or NULL: no token */
	bool is_pod;                 /* image or image.fromBuild is set */
};

#define REMOTE_HELM_VALUES_MAX 100      /* spec.manifests.helm.values[] */
#define REMOTE_APPLY_TIMEOUT_MAX_S 3600 /* spec.manifests.timeoutSeconds, from 1 */
#define REMOTE_APPLY_TIMEOUT_DEFAULT_S 300
#define REMOTE_APPLY_SA_DEFAULT "slipway-apply"

/* One spec.manifests.helm.values[] entry: helm's --set NAME=VALUE. */
struct remote_helm_value {
	const char *name;  /* not empty */
	const char *value; /* "" when unset */
};

/* spec.manifests: the objects of the pushed tree each deploying push applies
 * (docs/manifests.md). gitkube's path and helm keep gitkube's meaning; prune,
 * wait, timeoutSeconds and serviceAccountName are read from either kind. */
struct remote_manifests {
	const char *path;         /* folder of the pushed tree, not empty, no
	                             leading or trailing "/" ("." for the root) */
	const char *helm_release; /* spec.manifests.helm.release, or NULL (unset,
	                             "" or no helm) */
	bool has_helm;            /* spec.manifests.helm is given (even {}) */
	struct remote_helm_value *helm_values;
	size_t nhelm_values;
	bool is_prune;               /* prune, false when unset */
	bool is_wait;                /* wait, true when unset */
	long timeout_ms;             /* timeoutSeconds * 1000 (1 to 3600 s; 300 s
	                                when unset) */
	const char *service_account; /* serviceAccountName, REMOTE_APPLY_SA_DEFAULT
	                                when unset or "" */
};

/* One spec.webhooks[] entry: an HTTP endpoint told about pipeline events
 * (docs/webhooks.md, "Outbound webhooks"). */
struct remote_webhook {
	const char *url;           /* http:// or https://, at most
	                              REMOTE_WEBHOOK_URL_MAX bytes */
	const char *const *events; /* hook events ("pre-build", ...) or "*"
	                              for every event, at least one */
	size_t nevents;
	const char *secret;     /* secretRef.name, not empty */
	const char *secret_key; /* secretRef.key; "secret" when unset */
};

/* spec.upstream: a repository on a git host whose pushes deploy this Remote
 * (docs/webhooks.md). */
struct remote_upstream {
	const char *url;             /* "https://..." or "ssh://..." (scp-like
	                                "user@host:path" is refused: libgit2 reads
	                                ssh:// only) */
	const char *secret;          /* secretRef.name: the credentials and the
	                                webhook secret (keys in docs/webhooks.md) */
	const char *const *branches; /* branches[] fetched when they move
	                                upstream (those in spec.branches also
	                                deploy); NULL when unset: the Remote's
	                                spec.branches */
	size_t nbranches;
	int poll_interval_s; /* pollIntervalSeconds, 0 when unset (no polling) */
};

/* A parsed Remote. Every string is borrowed from the object parsed, which the
 * struct holds a reference to: all stay valid until remote_release. */
struct remote {
	bool is_gitkube;                    /* a remotes.gitkube.sh object */
	const char *ns;                     /* metadata.namespace, not empty */
	const char *name;                   /* metadata.name, not empty */
	const char *const *authorized_keys; /* spec.authorizedKeys[] lines, as
	                                       given (authz.h parses them) */
	size_t nauthorized_keys;
	const char *registry_url;    /* spec.registry.url, or NULL when unset/"" */
	bool is_registry_insecure;   /* spec.registry.insecure */
	const char *registry_secret; /* the dockerconfigjson Secret's name:
	                                Slipway's credentials.secretRef.name,
	                                gitkube's secretRef (a name) or
	                                secretKeyRef.name; or NULL */
	struct remote_deployment *deployments;
	size_t ndeployments;
	const char *const *branches; /* spec.branches[]; "main", "master" when
	                                unset or empty */
	size_t nbranches;
	struct remote_hook *hooks;
	size_t nhooks;
	/* spec.webhooks[] */
	struct remote_webhook *webhooks;
	size_t nwebhooks;
	const json_t *builder;                     /* spec.builder as given (the runner reads
	                                              mode, image, timeoutSeconds, resources), or
	                                              NULL */
	bool deny_non_fast_forwards;               /* spec.denyNonFastForwards, false when unset */
	bool allow_delete_current_branch;          /* spec.allowDeleteCurrentBranch, false
	                                              when unset */
	bool rollback_on_failure;                  /* spec.rollbackOnFailure, true when unset */
	const struct remote_manifests *manifests;  /* spec.manifests, or NULL when
	                                              unset or without a path */
	struct remote_manifests manifests_storage; /* what manifests points to */
	bool has_upstream;                         /* spec.upstream is set (Slipway's Remotes
	                                              only) */
	struct remote_upstream upstream;           /* valid when has_upstream */
	long history_limit;                        /* spec.historyLimit: finished PipelineRuns
	                                              kept, 1..REMOTE_HISTORY_LIMIT_MAX,
	                                              REMOTE_HISTORY_LIMIT_DEFAULT when unset */
	json_t *obj;                               /* the object parsed (a reference held) */
};

/* Reads Remote object OBJ (the API server's JSON; borrowed, a reference is
 * taken) into OUT. IS_GITKUBE says OBJ is a remotes.gitkube.sh object. Known
 * fields must have the CRD's types (JSON null counts as unset); unknown
 * fields are ignored. Returns 0, with OUT to be freed by remote_release, or
 * -1 with OUT empty and err_msg() naming the field and why, e.g.
 * "spec.deployments[0].containers: 51 items, at most 50",
 * "spec.hooks[2].configMapRef.key: missing", "spec.manifests.path: '../x'
 * leaves the repository" or "spec.webhooks[0].url: not an http or https
 * URL" ("out of memory" when it ran out). */
int remote_parse(struct remote *out, const json_t *obj, bool is_gitkube);

/* Whether REFNAME deploys: a branch of R->branches ("main" or
 * "refs/heads/main" form), only under refs/heads/. */
bool remote_is_deploying(const struct remote *r, const char *refname);

/* Whether a move of REFNAME upstream deploys: R has an upstream and
 * REFNAME is refs/heads/B with B in upstream.branches, or (unset) a
 * deploying branch (remote_is_deploying). */
bool remote_upstream_is_followed(const struct remote *r, const char *refname);

/* Whether R has a hook for EVENT. */
bool remote_has_hook(const struct remote *r, const char *event);

/* Whether webhook W asks for EVENT: EVENT is among its events, or "*" is. */
bool remote_webhook_wants(const struct remote_webhook *w, const char *event);

/* Frees what remote_parse took and empties R. An empty R is allowed. */
void remote_release(struct remote *r);

#endif
