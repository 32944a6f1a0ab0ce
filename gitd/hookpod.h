/* hookpod: runs one hook as a Pod in the Remote's namespace, through the
 * runner's pod path (runner.h runner_pod_*), for hook.c (docs/hooks.md
 * "Image hooks").
 *
 * The Pod: one container "hook" in the hook's image (the literal
 * "slipway/hooks" stands for gitd's --hooks-image; fromBuild for the image
 * this run built for that Deployment's container, by digest, with env,
 * envFrom and imagePullSecrets copied from the Deployment), restartPolicy
 * Never, activeDeadlineSeconds the hook's timeout, an owner reference to the
 * PipelineRun, no service-account token unless the hook names a
 * ServiceAccount, gitd's --hook-resources, no privilege escalation, no capabilities, the runtime's
 * default seccomp profile. The event JSON is in a ConfigMap the run creates
 * (POD-event, owned by the Pod), mounted at HOOKPOD_EVENT_FILE; the script
 * is mounted executable (0555) under HOOKPOD_HOOK_DIR, from the Remote's
 * ConfigMap or, for an admin hook, from the event ConfigMap. The command
 * (the script, or the hook's command) is run as
 *
 *     /bin/sh -c 'exec "$@" <"$SLIPWAY_EVENT_FILE"' slipway-hook ARGV...
 *
 * a constant shell program that gives the event on stdin: ARGV are
 * positional parameters, never parsed by the shell. The image needs
 * /bin/sh for that.
 *
 * The Pod's log is followed (GET .../pods/NAME/log?follow=true) and each
 * line delivered as it arrives. The container's exit code decides. A Pod
 * that succeeded, timed out or was cancelled is deleted; one that failed
 * otherwise is kept for --hook-pod-keep with annotation
 * slipway.dev/keep-until, and deleted after that time by hookpod_sweep: the
 * next hook Pod of its namespace sweeps it, and so does gitd's pipeline
 * server every HOOKPOD_SWEEP_PERIOD_S (or its PipelineRun's deletion takes
 * it). */
#ifndef SLIP_GITD_HOOKPOD_H
#define SLIP_GITD_HOOKPOD_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <jansson.h>

#include "kube.h"
#include "runner.h"

#define HOOKPOD_EVENT_DIR "/var/run/slipway/event"
#define HOOKPOD_EVENT_FILE HOOKPOD_EVENT_DIR "/event.json"
#define HOOKPOD_HOOK_DIR "/var/run/slipway/hook"
/* The image reference that stands for gitd's --hooks-image. */
#define HOOKPOD_HOOKS_IMAGE "slipway/hooks"
/* How long a failed hook Pod is kept when gitd is not told (1 hour). */
#define HOOKPOD_KEEP_DEFAULT_S 3600L

/* How often gitd's pipeline server sweeps the kept hook Pods of the served
 * namespaces (hookpod_sweep): at most once a minute. */
#define HOOKPOD_SWEEP_PERIOD_S 60
/* The label selector of hook Pods (the labels hookpod_run gives them). */
#define HOOKPOD_SELECTOR "app.kubernetes.io/managed-by=slipway,slipway.dev/component=hook"
/* The annotation of a kept Pod: when it may be deleted, RFC 3339 UTC
 * (clock_format_rfc3339). */
#define HOOKPOD_KEEP_UNTIL "slipway.dev/keep-until"

/* What hook Pods of one run share (all borrowed). */
struct hookpod_config {
	const struct runner_config *runner; /* schedulerName, nodeSelector; may be NULL */
	const char *hooks_image;            /* what "slipway/hooks" means, or NULL:
	                                       the reference as written */
	long keep_failed_s;                 /* a failed Pod's keep time; <= 0:
	                                       HOOKPOD_KEEP_DEFAULT_S */
	const char *pipelinerun;            /* the owner's name, or NULL: no owner */
	const char *pipelinerun_uid;        /* its metadata.uid, or NULL */
	const json_t *images;               /* [{deployment, container, image}] this
	                                       run built (image by digest), or NULL */
	const char *service_accounts;       /* the serviceAccountName values hooks
	                                       may use, comma-separated ("" or NULL:
	                                       none) */
	const char *image_prefixes;         /* image references other than
	                                       "slipway/hooks" and fromBuild must start
	                                       with one of these, comma-separated;
	                                       NULL: any image */
	const json_t *resources;            /* the container's resources
	                                       ({requests, limits}), or NULL */
};

/* One hook to run as a Pod (all borrowed). */
struct hookpod_hook {
	const char *ns;              /* the Remote's namespace */
	const char *remote;          /* the Remote's name (names the Pod) */
	const char *name;            /* display name, for messages */
	const char *event;           /* the event's name */
	const char *event_json;      /* the event, for the event ConfigMap */
	const char *const *env;      /* "NAME=VALUE" strings, NULL-terminated; those
	                                starting with SLIPWAY_ are given to the Pod */
	const char *image;           /* a reference, or NULL with from_deployment */
	const char *from_deployment; /* fromBuild, or NULL */
	const char *from_container;
	const char *configmap; /* the script in the Remote's ConfigMap, or NULL */
	const char *key;
	const char *script; /* or the script's bytes (admin hooks), or NULL */
	size_t script_len;
	const char *script_name;     /* its file name under HOOKPOD_HOOK_DIR */
	const char *const *command;  /* argv, NULL-terminated, or NULL: the script */
	const char *service_account; /* or NULL: no token */
	long timeout_ms;             /* activeDeadlineSeconds, rounded up to seconds */
};

/* Runs hook H as a Pod with client C as CFG says, delivering each log line
 * to ON_LINE (on the caller's thread, without newline; may be NULL), until
 * it ends, times out or *CANCEL (may be NULL) becomes non-zero. Returns 0
 * when the container exited 0, 1 when the hook failed, with MESSAGE (SIZE
 * bytes) saying why in one line ("hook NAME exited with status 3 (pod
 * NS/POD kept until TIME)", "hook NAME: Timeout: ..."), or -1 with
 * err_msg() when the Pod could not be made or created (the API refused it:
 * admission, quota). */
int hookpod_run(char *message, size_t size, struct kube_client *c, const struct hookpod_config *cfg,
                const struct hookpod_hook *h, void (*on_line)(void *arg, const char *line),
                void *arg, const volatile sig_atomic_t *cancel);

/* Whether POD (a Pod object, borrowed) is a kept hook Pod whose time is
 * up: its HOOKPOD_KEEP_UNTIL annotation, an RFC 3339 time
 * (clock_parse_rfc3339), is at or before NOW (seconds since the epoch). A
 * Pod without the annotation (running, or not a kept one), or whose value
 * does not parse, is not expired: it is left alone. Never fails. */
bool hookpod_is_expired(const json_t *pod, time_t now);

/* Lists the hook Pods (HOOKPOD_SELECTOR) of namespace NS (NULL: every
 * namespace) with client C and deletes each one hookpod_is_expired says is
 * expired now (propagation Background: its event ConfigMap, which it owns,
 * goes with it), logging hook_pod_swept (namespace, pod) for each. A Pod
 * that cannot be deleted is logged (warn) and skipped; one already gone is
 * skipped. Returns the number of Pods deleted, or -1 with err_msg() when
 * the list failed. */
int hookpod_sweep(struct kube_client *c, const char *ns);

#endif
