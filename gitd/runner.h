/* runner: runs one builder (DESIGN.md "Builder contract", docs/builder.md)
 * for one container of a pipeline, in one of two places behind one call:
 *
 *   local  a child process of gitd running the builder program (spawned
 *          with argv, a clean environment, its own process group; to be
 *          killed with gitd once the spawn helper can, lib/spawn.h's
 *          die_with_parent);
 *   pod    a Pod in the Remote's namespace running the builder image, with
 *          resource limits, activeDeadlineSeconds, no service-account token,
 *          restartPolicy Never, the registry Secret mounted read-only, the
 *          one-time token from a Secret of its own; both deleted afterwards.
 *
 * Either way the builder fetches the source from gitd's internal endpoint
 * and reports its log and result there (buildsrv.h); the runner drains that
 * log to the caller while it waits, and judges the outcome by the result,
 * or, when none came, by how the process or Pod ended. */
#ifndef SLIP_GITD_RUNNER_H
#define SLIP_GITD_RUNNER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "buildsrv.h"
#include "kube.h"

enum runner_mode {
	RUNNER_LOCAL,
	RUNNER_POD,
};

/* Where and how builds run: gitd-wide settings (gitd's flags). */
struct runner_config {
	enum runner_mode default_mode;    /* when the Remote's spec.builder.mode is unset */
	const char *program;              /* local: the builder program's path; NULL:
	                                     "builder" in /usr/local/sbin:/usr/local/bin:
	                                     /usr/sbin:/usr/bin:/sbin:/bin */
	const char *image;                /* pod: the builder image */
	const char *storage_driver;       /* "vfs" or "overlay"; NULL: builder's default */
	const char *storage_root;         /* local: buildah storage kept across builds
	                                     (builder --storage-root); NULL: none */
	const char *scheduler_name;       /* pod: spec.schedulerName; NULL: default */
	const char *const *node_selector; /* pod: "KEY=VALUE" strings, NULL-
	                                     terminated; NULL: none */
	const json_t *security_context;   /* pod: the builder container's
	                                     securityContext, copied as it is
	                                     (runner_security_context_parse);
	                                     NULL: runner_security_context_default() */
	long default_timeout_ms;          /* when spec.builder.timeoutSeconds is unset;
	                                     0: 30 minutes. Used in whole seconds: the
	                                     builder's --timeout and, for a Pod, its
	                                     activeDeadlineSeconds */
};

/* One build: everything here is borrowed for the call. */
struct runner_build {
	const char *ns;                 /* the Remote's namespace (where the Pod runs) */
	const char *remote;             /* the Remote's name */
	const char *pipelinerun;        /* PipelineRun name, for labels; may be NULL */
	const char *deployment;         /* spec.deployments[].name */
	const char *container;          /* spec.deployments[].containers[].name */
	const char *image;              /* REGISTRY/NS-REMOTE-DEPLOYMENT-CONTAINER:COMMIT */
	const char *path;               /* containers[].path, or NULL: the root */
	const char *dockerfile;         /* containers[].dockerfile, or NULL */
	const char *const *build_args;  /* "NAME=VALUE", NULL-terminated, or NULL */
	bool insecure_registry;         /* spec.registry.insecure */
	const char *registry_secret;    /* pod: the dockerconfigjson Secret's name, or NULL */
	const char *registry_auth_file; /* local: the Secret's .dockerconfigjson
	                                   in a 0600 file, or NULL */
	const json_t *spec_builder;     /* the Remote's spec.builder (mode, image,
	                                   timeoutSeconds, resources), or NULL */
	struct buildsrv *srv;           /* the endpoint the build reports to */
	const char *source_path;        /* the source archive (archive.h) */
};

/* What happened. */
struct runner_result {
	bool succeeded;     /* the image was pushed */
	char image[1024];   /* REGISTRY/NAME@sha256:HEX on success */
	char digest[80];    /* "sha256:HEX" on success */
	char reason[64];    /* on failure: "BuildFailed", "PushFailed", "Timeout",
	                       "SourceFailed", "RunnerFailed", "Cancelled" (only when
	                       *cancel asked for it: a builder or Pod stopped from
	                       outside is "RunnerFailed") */
	char message[1024]; /* on failure: one line for the pusher */
	double seconds;     /* wall time from start to result */
	long long start_ms; /* from the call to the builder's first source
	                       request (starting the process or Pod); -1: none */
	long long tail_ms;  /* from the result's arrival to the return (the
	                       builder's exit, clean-up); -1: no result */
	char pod[254];      /* pod: the Pod's name, "REMOTE-build-XXXXX" (its
	                       Secret: NAME-token), else "" */
};

/* Runs build B as CFG and B->spec_builder say, with client C (pod mode; may
 * be NULL for local mode), registering it with B->srv, delivering every log
 * line to ON_LINE (on the caller's thread, without newline) as it arrives,
 * and waiting for the end: the result, the process or Pod ending without
 * one, the timeout, or *CANCEL becoming non-zero (may be NULL). The build
 * is unregistered and its Pod and Secret deleted before returning. OUT is
 * always filled. Returns 0 when the build ran to an outcome (see
 * out->succeeded), or -1 with err_msg() and out->reason "RunnerFailed" when
 * it could not be started (program missing, Pod refused by the API). */
int runner_build(struct runner_result *out, const struct runner_config *cfg, struct kube_client *c,
                 const struct runner_build *b, void (*on_line)(void *arg, const char *line),
                 void *arg, const volatile sig_atomic_t *cancel);

/* Parses "local" or "pod" into *OUT. Returns 0 or -1. */
int runner_mode_parse(enum runner_mode *out, const char *s);

/* The builder container's securityContext when gitd is not told otherwise:
 * the least buildah needs to build as root in a container (docs/builder.md
 * "Privileges"); manifests/base/statefulset.yaml and the Helm chart write
 * it out as --builder-security-context, in json_dumps(JSON_COMPACT) form
 * (keys sorted, as Helm's toJson writes them). Caller frees with
 * json_decref(); NULL when out of memory. */
json_t *runner_security_context_default(void);

/* Parses TEXT, gitd's --builder-security-context: a JSON object (duplicate
 * keys refused), used as it is for the builder container's securityContext;
 * its fields are the API server's to check. *OUT belongs to the caller
 * (json_decref()). Returns 0, or -1 with err_msg() saying what is wrong. */
int runner_security_context_parse(json_t **out, const char *text);

/* --- Pods ----------------------------------------------------------------
 * What builder Pods and hook Pods (hook.h) share: how they are named, the
 * fields every one has, a companion object (a Secret or ConfigMap named
 * after the Pod, created first, then owned by the Pod so it goes with it),
 * reading why a Pod cannot start, and deleting both. */

/* A Pod the runner created. */
struct runner_pod {
	char ns[254];
	char name[64];          /* "REMOTE-KIND-XXXXX", a DNS label */
	char companion[80];     /* "NAME-SUFFIX", or "" when none */
	char companion_gvr[32]; /* "v1/secrets" or "v1/configmaps", or "" */
	json_t *obj;            /* the Pod as the API server returned it on create */
};

/* How runner_pod_create makes the objects of one Pod. Each callback returns
 * a new object (the caller of the callback frees it), or NULL with
 * err_msg(). */
struct runner_pod_maker {
	const char *companion_gvr;    /* NULL: no companion */
	const char *companion_suffix; /* its name is POD-SUFFIX ("token", "event") */
	json_t *(*companion)(void *arg, const char *name);
	json_t *(*pod)(void *arg, const char *name, const char *companion);
	void *arg;
};

/* Creates, with client C in namespace NS, M's companion and then M's Pod,
 * named REMOTE-KIND-XXXXX (KIND at most 5 characters: "build", "hook";
 * REMOTE cut to 45), trying new names on a clash, then makes the Pod the
 * companion's owner. Returns 0 with OUT filled (runner_pod_delete or
 * runner_pod_release frees it), or -1 with err_msg() (what was created is
 * deleted, OUT is empty). */
int runner_pod_create(struct runner_pod *out, struct kube_client *c, const char *ns,
                      const char *remote, const char *kind, const struct runner_pod_maker *m);

/* Deletes P's Pod and companion (gone already is fine; other failures are
 * logged) and releases P. */
void runner_pod_delete(struct runner_pod *p, struct kube_client *c);

/* Frees what P holds without deleting anything (a Pod kept), and empties it. */
void runner_pod_release(struct runner_pod *p);

/* A Pod object NS/NAME with the fields every runner Pod has: LABELS and
 * ANNOTATIONS (objects), one CONTAINER, VOLUMES (an array, or NULL),
 * restartPolicy Never, no service-account token
 * (automountServiceAccountToken false; the caller may change it), no
 * service links, activeDeadlineSeconds DEADLINE_S, a grace period of 10 s,
 * and CFG's schedulerName and nodeSelector (CFG may be NULL). The four
 * objects given are taken over (even on failure). Returns a new object, or
 * NULL with err_msg() (a node selector not KEY=VALUE, no memory). */
json_t *runner_pod_object(const struct runner_config *cfg, const char *ns, const char *name,
                          json_t *labels, json_t *annotations, json_t *container, json_t *volumes,
                          long deadline_s);

/* The status of container CONTAINER in POD (status.containerStatuses[];
 * borrowed), or NULL. */
const json_t *runner_pod_container_status(const json_t *pod, const char *container);

/* Whether CONTAINER of POD can never start (waiting with ImagePullBackOff,
 * InvalidImageName, CreateContainerConfigError, CreateContainerError or
 * RunContainerError); WHY (SIZE bytes) then gets "REASON: MESSAGE". */
bool runner_pod_cannot_start(char *why, size_t size, const json_t *pod, const char *container);

/* Why POD is still Pending, for a timeout message: "" or
 * ": not scheduled: MESSAGE", into BUF of SIZE bytes. */
void runner_pod_pending_reason(char *buf, size_t size, const json_t *pod);

/* Whether S can be a label value: at most 63 of [A-Za-z0-9._-],
 * alphanumeric at both ends (Kubernetes "Labels and Selectors"). Longer
 * names go in annotations only. */
bool runner_is_label_value(const char *s);

#endif
