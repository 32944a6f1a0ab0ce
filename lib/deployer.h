/* deployer: sets container images on a Deployment through the Kubernetes API
 * and follows the rollout of Deployments, StatefulSets, DaemonSets and Jobs
 * by kubectl's rules (kubectl rollout status,
 * k8s.io/kubectl/pkg/polymorphichelpers/rollout_status.go). Used by the
 * `deployer` program and by gitd's pipeline. */
#ifndef SLIP_DEPLOYER_H
#define SLIP_DEPLOYER_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "kube.h"

/* Return codes besides kube.h's (KUBE_ENOTFOUND for a missing Deployment,
 * KUBE_EFORBIDDEN, KUBE_ECONFLICT after the retries ran out, ...). */
enum {
	DEPLOYER_ENOCONTAINER = -20, /* a named container is not in the pod template */
	DEPLOYER_EBADIMAGE = -21,    /* an image reference is malformed */
	DEPLOYER_EROLLOUT = -22,     /* the rollout failed: ProgressDeadlineExceeded,
	                                or a new Pod cannot run (deployer_pod_failure) */
	DEPLOYER_ETIMEOUT = -23,     /* the rollout did not finish in time */
};

/* Annotation keys written on the pod template. */
#define DEPLOYER_COMMIT_ANNOTATION "slipway.dev/commit"
#define DEPLOYER_CAUSE_ANNOTATION "kubernetes.io/change-cause"
#define DEPLOYER_CONFIG_HASH_ANNOTATION "slipway.dev/config-hash"

/* One container image to set. */
struct deployer_image {
	const char *container; /* container (or init container) name */
	const char *image;     /* image reference, e.g. reg/app@sha256:... */
};

struct deployer_opts {
	const char *commit;       /* slipway.dev/commit value, or NULL to leave it */
	const char *change_cause; /* kubernetes.io/change-cause; NULL: derived */
	/* A Secret wired into every container (spec.template.spec.containers, not
	 * initContainers) through envFrom {secretRef: {name, optional: true}},
	 * added after the container's own envFrom entries when it has none for
	 * that Secret; NULL: envFrom is left alone. A rollback keeps it. */
	const char *env_from_secret;
	const char *config_hash;  /* slipway.dev/config-hash value, or NULL to leave it */
	bool wait;                /* follow the rollout until done or failed */
	long timeout_ms;          /* longest wait for the rollout [300000] */
	bool rollback_on_failure; /* put the previous images back on failure */
	int max_conflicts;        /* 409 Conflict retries before giving up [5] */
	/* Progress lines ("Waiting for rollout to finish: ..."), without a
	 * newline; NULL to stay quiet. */
	void (*progress)(void *arg, const char *line);
	void *progress_arg;
	/* Called with the Deployment as read, right before each patch is sent;
	 * a non-zero return aborts with that value. For callers that must check
	 * the object (and for the tests of the conflict path). May be NULL. */
	int (*before_patch)(void *arg, const json_t *deployment);
	void *before_patch_arg;
};

/* What deployer_set_image did. */
struct deployer_result {
	bool changed;       /* the pod template changed (a new rollout began) */
	long generation;    /* metadata.generation after the patch */
	int conflicts;      /* 409 Conflicts retried */
	long long patch_ms; /* deployer_set_image: reading and patching the
	                       Deployment, before any rollout wait */
	bool rolled_back;   /* the previous images were put back */
	char reason[64];    /* on failure: e.g. "ProgressDeadlineExceeded", or the
	                       kubelet's "CrashLoopBackOff", "ImagePullBackOff" */
	char message[1024]; /* on failure: one line for the user */
};

/* Sets IMAGES (N of them) on Deployment NS/NAME with a strategic-merge patch
 * that carries the resourceVersion read (so a concurrent writer causes a 409
 * Conflict, which is retried on a fresh read up to opts->max_conflicts), and
 * annotates the pod template. Every container name and image reference is
 * checked before anything is sent: on such an error nothing is changed.
 * With opts->wait, follows the rollout (deployer_wait); on its failure and
 * with opts->rollback_on_failure, patches the previous images and
 * annotations back and waits for that rollout too.
 * OPTS may be NULL (no wait). OUT is always filled.
 * Returns 0, DEPLOYER_E* or a kube.h code, with err_msg() and out->message
 * set to the same one-line message. */
int deployer_set_image(struct deployer_result *out, struct kube_client *c, const char *ns,
                       const char *name, const struct deployer_image *images, size_t n,
                       const struct deployer_opts *opts);

/* Follows the rollout of Deployment NS/NAME until it completes (0), fails
 * (DEPLOYER_EROLLOUT) or TIMEOUT_MS passes (DEPLOYER_ETIMEOUT), reporting each
 * new state through PROGRESS (may be NULL). Uses a watch, cut into slices of
 * one second; survives API server restarts. The rollout fails with
 * ProgressDeadlineExceeded, or as soon as a Pod of the new ReplicaSet cannot
 * run (deployer_pod_failure; out->reason is then the kubelet's reason): the
 * Pods are listed at each Deployment event and at least once a second, once
 * the controller has observed the Deployment's generation. The new
 * ReplicaSet is the one the Deployment owns (ownerReferences uid) whose
 * deployment.kubernetes.io/revision annotation is the Deployment's; its Pods
 * are those matching spec.selector.matchLabels and its pod-template-hash and
 * owned by it. When listing ReplicaSets or Pods is Forbidden, logs a warning
 * once and follows the Deployment alone. OUT may be NULL. */
int deployer_wait(struct deployer_result *out, struct kube_client *c, const char *ns,
                  const char *name, long timeout_ms, void (*progress)(void *arg, const char *line),
                  void *progress_arg);

/* The state of a rollout, by kubectl's rules. */
enum deployer_rollout {
	DEPLOYER_ROLLOUT_PROGRESSING, /* not finished yet */
	DEPLOYER_ROLLOUT_COMPLETE,    /* every replica updated, ready, available */
	DEPLOYER_ROLLOUT_FAILED,      /* Progressing=False, ProgressDeadlineExceeded */
};

/* Judges DEPLOYMENT (a Deployment object): complete when
 * status.observedGeneration >= metadata.generation and updated, ready and
 * available replicas all equal spec.replicas (and no old replicas remain);
 * failed when the Progressing condition's reason is ProgressDeadlineExceeded.
 * Writes a one-line description (e.g. "Waiting for rollout to finish: 1 of 3
 * updated replicas are available...") into MSG of SIZE bytes. Pure. */
enum deployer_rollout deployer_rollout_state(const json_t *deployment, char *msg, size_t size);

/* Judges POD (a Pod object) by the kubelet's container states: the Pod
 * cannot run when a container, or an init container, is waiting with reason
 * CrashLoopBackOff, ErrImagePull, ImagePullBackOff, InvalidImageName,
 * CreateContainerConfigError, CreateContainerError or RunContainerError;
 * but not CreateContainerConfigError "failed to sync secret cache" (or
 * configmap cache), which the kubelet retries once its watch caught up.
 * Other waiting reasons (ContainerCreating, PodInitializing, ...), running
 * and terminated containers are not failures. Init containers
 * (status.initContainerStatuses) are looked at before the containers
 * (status.containerStatuses), each in order; the first failing one counts.
 * On failure returns true, writes the kubelet's reason into REASON (RSIZE
 * bytes) and into MSG (MSIZE bytes) one line of one of these forms:
 *   pod POD container C is in CrashLoopBackOff (exit code N, last state R, restarts K)
 *   pod POD init container C cannot start: ImagePullBackOff: Back-off pulling image "x"
 * where "exit code N, last state R, " comes from lastState.terminated (left
 * out when absent; R too when it has no reason), and ": MESSAGE" follows
 * when the kubelet gave one: lastState.terminated.message (the container's
 * termination message) for CrashLoopBackOff, at most 200 bytes, and
 * state.waiting.message otherwise, at most 400 bytes; a longer one is cut
 * and ends in "...". Messages are made one line (control characters become
 * spaces, runs of spaces one). Text that does not fit a buffer is cut at a
 * UTF-8 character boundary. Otherwise returns false with REASON and MSG set
 * to "". POD may be NULL (false). Pure. */
bool deployer_pod_failure(const json_t *pod, char *reason, size_t rsize, char *msg, size_t msize);

/* Whether API_VERSION KIND is a workload deployer_wait_workload follows:
 * apps/v1 Deployment, StatefulSet or DaemonSet, or batch/v1 Job. Pure. */
bool deployer_is_workload(const char *api_version, const char *kind);

/* Judges OBJ, a workload of KIND ("Deployment", "StatefulSet", "DaemonSet"
 * or "Job"), by kubectl's rules (kubectl rollout status; kubectl wait
 * --for=condition=Complete for a Job):
 *   - Deployment: deployer_rollout_state;
 *   - StatefulSet: complete when the controller observed its generation,
 *     spec.replicas (1 when unset) Pods are ready and status.updateRevision
 *     is status.currentRevision, or with a rollingUpdate.partition when the
 *     Pods from the partition up are updated; an OnDelete StatefulSet counts
 *     as complete (kubectl cannot follow it);
 *   - DaemonSet: complete when the controller observed its generation and
 *     updatedNumberScheduled and numberAvailable reach
 *     desiredNumberScheduled; OnDelete counts as complete;
 *   - Job: complete when its Complete condition is True, failed when its
 *     Failed condition is, with REASON the condition's reason (e.g.
 *     "BackoffLimitExceeded", "DeadlineExceeded") and MSG its message.
 * A failed Deployment has REASON "ProgressDeadlineExceeded"; otherwise
 * REASON (RSIZE bytes) is "". MSG (MSIZE bytes) gets one line of kubectl's
 * wording. Pure. */
enum deployer_rollout deployer_workload_state(const char *kind, const json_t *obj, char *reason,
                                              size_t rsize, char *msg, size_t msize);

/* Follows workload KIND NS/NAME (as deployer_workload_state names kinds)
 * until it is complete (0), fails (DEPLOYER_EROLLOUT, out->reason the Job's
 * or the kubelet's reason) or TIMEOUT_MS passes (DEPLOYER_ETIMEOUT; <= 0:
 * 300000), reporting each new state through PROGRESS (may be NULL). A
 * Deployment goes to deployer_wait (which also looks at its new Pods); the
 * others are watched (field selector metadata.name=NAME) and judged at each
 * event. Returns 0, a DEPLOYER_E* or a kube.h code (KUBE_ENOTFOUND: the
 * resource type or the object is gone), with err_msg() and out->message
 * naming the object ("job web/migrate failed: BackoffLimitExceeded: Job has
 * reached the specified backoff limit"). OUT may be NULL. */
int deployer_wait_workload(struct deployer_result *out, struct kube_client *c, const char *kind,
                           const char *ns, const char *name, long timeout_ms,
                           void (*progress)(void *arg, const char *line), void *progress_arg);

#endif
