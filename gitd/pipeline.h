/* pipeline: one push of one deploying ref, from its PipelineRun to the
 * Deployment (DESIGN.md "Flow", "Push semantics"). The stages, in order:
 *
 *   queue        wait for the Remote's lock (queue.h); superseded by a newer
 *                push of the ref; the ref must still be at "before"
 *   pre-receive  hooks; a failure rejects the push
 *   pre-build    hooks, in the pushed tree
 *   build        one builder per spec.deployments[].containers[] (runner.h)
 *   post-build   hooks, in the pushed tree
 *   pre-deploy   hooks
 *   deploy       the deployer library: every built image by digest, rollout
 *                followed, rolled back on failure
 *   post-deploy  hooks; a failure rolls the Deployments back
 *   then pipeline-succeeded or pipeline-failed hooks (only reported).
 *
 * Every stage is written to the PipelineRun (pipelinerun.h) and told to the
 * pusher through SAY as it happens. Runs in a pipeline worker process
 * (pipesrv.h), single-threaded. */
#ifndef SLIP_GITD_PIPELINE_H
#define SLIP_GITD_PIPELINE_H

#include <signal.h>
#include <stdbool.h>
#include <git2.h>
#include <jansson.h>

#include "buildsrv.h"
#include "kube.h"
#include "remote.h"
#include "runner.h"

/* gitd-wide settings of pipelines (gitd's flags). */
struct pipeline_config {
	const struct runner_config *runner;
	const char *hooks_dir;   /* admin hooks (--hooks-dir), or NULL */
	const char *hooks_sa;    /* ServiceAccount hooks act as, or NULL */
	long hook_timeout_ms;    /* hooks without timeoutSeconds */
	long rollout_timeout_ms; /* longest wait for one rollout */
	const char *work_root;   /* parent of each run's work directory */
};

/* What one worker shares among its pipelines (all borrowed). */
struct pipeline_env {
	const struct pipeline_config *cfg;
	struct kube_client *kube;        /* builds, hooks, deploys */
	struct kube_client *status_kube; /* the PipelineRun's writes only: they
	                                    happen inside the others' callbacks
	                                    (a rollout watch), and a client serves
	                                    one request at a time */
	struct buildsrv *srv;
	const struct remote *remote; /* the Remote as read at the push */
	const char *remote_gvr;      /* "slipway.dev/v1alpha1/remotes" or gitkube's */
	git_repository *repo;        /* sees the pushed objects (quarantine included) */
	const char *repo_path;       /* the repository's directory */
	bool is_wait;                /* the push waits: the ref moves after the run */
	/* A line for the pusher ("remote: ..."), without newline. May be NULL. */
	void (*say)(void *arg, const char *line);
	void *say_arg;
	const volatile sig_atomic_t *cancel; /* may be NULL */
};

/* One ref of the push. */
struct pipeline_push {
	const char *refname;
	git_oid before; /* zero: a new ref */
	git_oid after;
	const char *fingerprint; /* the pusher's key */
	const char *comment;     /* its comment, or "" */
};

struct pipeline;

/* Creates the pipeline's PipelineRun (Succeeded Unknown, "Queued") and work
 * directory. ENV and PUSH must outlive the pipeline. *OUT belongs to the
 * caller (pipeline_free). Returns 0 or a negative code with err_msg(). */
int pipeline_new(struct pipeline **out, const struct pipeline_env *env,
                 const struct pipeline_push *push);

/* The PipelineRun's name (borrowed). */
const char *pipeline_run_name(const struct pipeline *p);

/* Runs the pre-receive hooks. Returns 0 when the push may go on, or 1 when
 * it is rejected (the run is then finished as HookFailed and
 * pipeline_message says why). */
int pipeline_pre_receive(struct pipeline *p);

/* Waits for its turn, then runs every stage after pre-receive and finishes
 * the run. The Remote's lock stays held until pipeline_free, so that the
 * caller can move the ref before another pipeline starts. Returns 0 when the
 * run Succeeded, 1 when it failed (reason and message tell why). */
int pipeline_run(struct pipeline *p);

/* Marks the run failed with REASON and MESSAGE unless it has finished
 * (e.g. "Interrupted" when the pusher went away). */
void pipeline_abort(struct pipeline *p, const char *reason, const char *message);

/* Runs the post-receive hooks (after the ref moved); failures are only
 * reported. */
void pipeline_post_receive(struct pipeline *p);

/* The outcome: reason ("Succeeded", "BuildFailed", ...) and a one-line
 * message (borrowed). */
const char *pipeline_reason(const struct pipeline *p);
const char *pipeline_message(const struct pipeline *p);

/* Releases the lock, removes the work directory and frees P. NULL is
 * allowed. */
void pipeline_free(struct pipeline *p);

#endif
