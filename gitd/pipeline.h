/* pipeline: one push in the pipeline worker (pipesrv.h), from the
 * connection process's request to the verdict and, for each ref that
 * deploys, from its PipelineRun to the Deployment (DESIGN.md "Flow", "Push
 * semantics"). pipeline_serve, in order:
 *
 *   trust        the repository is the worker's own DATA_DIR/NS/NAME.git, the
 *                quarantine lies in its objects directory, the pusher's key is
 *                in the Remote's spec.authorizedKeys as read now; otherwise
 *                every command is refused and nothing runs
 *   decide       which refs deploy (spec.branches); the others are only stored
 *   receive      a PipelineRun per deploying ref (Succeeded Unknown, Queued)
 *   queue        wait for the Remote's lock (queue.h); superseded by a newer
 *                push of the ref; the ref must still be at "before". A push
 *                with slipway.wait=false queues after its verdict instead
 *   pre-receive  hooks; a failure rejects the push
 *   pre-build    hooks, in the pushed tree
 *   build        one builder per spec.deployments[].containers[] (runner.h),
 *                each also its own stage "build:DEPLOYMENT/CONTAINER"
 *   post-build   hooks, in the pushed tree
 *   pre-deploy   hooks
 *   apply        with spec.manifests: the objects of that folder of the pushed
 *                tree, checked against the namespace (ManifestRejected), the
 *                built images put in by digest, dry run, then server-side
 *                applied as spec.manifests.serviceAccountName (apply.h),
 *                pruned with prune, workloads followed with wait; a folder
 *                holding a Chart.yaml is installed with helm upgrade --install
 *                instead, the built images set by slipway-post-render (helm.h)
 *   deploy       the deployer library: every built image by digest, rollout
 *                followed, rolled back on failure; Deployments the apply
 *                stage rolled out are left to it
 *   post-deploy  hooks; a failure rolls the Deployments back, then the Helm
 *                release apply upgraded
 *   then pipeline-succeeded or pipeline-failed hooks (only reported),
 *   verdict      one reason per refused ref; the connection moves the others
 *   post-receive hooks, for the refs that moved (only reported).
 *
 * Each event also goes to the Remote's spec.webhooks[] that want it, with
 * the JSON its hooks get: a delivery thread (delivery.h) sends them while the
 * stages go on, and pipeline_serve waits for it to finish the queue, after
 * the verdict and the Remote's lock are released, before it returns.
 *
 * Every stage, hooks only for events that have some, is written to the
 * PipelineRun's status.stages (pipelinerun.h) under the name above and told
 * to the pusher as it happens. Single-threaded but for the webhooks' thread. */
#ifndef SLIP_GITD_PIPELINE_H
#define SLIP_GITD_PIPELINE_H

#include <signal.h>
#include <stdbool.h>
#include <git2.h>
#include <jansson.h>

#include "buildsrv.h"
#include "kube.h"
#include "remote.h"
#include "repo.h"
#include "runner.h"
#include "delivery.h"

/* gitd-wide settings of pipelines (gitd's flags). */
struct pipeline_config {
	const struct runner_config *runner;
	const char *hooks_dir;             /* admin hooks (--hooks-dir), or NULL */
	const char *hooks_sa;              /* ServiceAccount hooks act as, or NULL */
	long hook_timeout_ms;              /* hooks without timeoutSeconds */
	const char *hooks_image;           /* what image "slipway/hooks" means (--hooks-image),
	                                      or NULL: the reference as written */
	long hook_pod_keep_s;              /* a failed hook Pod's keep time (--hook-pod-keep) */
	const char *hook_service_accounts; /* serviceAccountName values hooks may use,
	                                      comma-separated (--hook-service-accounts) */
	const char *hook_images;           /* allowed image prefixes, comma-separated,
	                                      or NULL: any (--hook-images) */
	const json_t *hook_resources;      /* image hooks' container resources
	                                      (--hook-resources), or NULL */
	long rollout_timeout_ms;           /* longest wait for one rollout */
	const char *work_root;             /* parent of each run's work directory */
	const char *helm;                  /* the helm program (--helm); NULL: "helm" on PATH */
	const char *post_renderer;         /* slipway-post-render (--post-renderer); NULL:
	                                      "slipway-post-render" on helm's PATH */
	/* outbound webhooks (delivery.h): --webhook-allow-link-local, and the
	 * write end of gitd's report pipe for their counters (metrics.h; <= 0:
	 * none) */
	bool webhook_allow_link_local;
	int report_fd;
};

/* What one worker shares among its pipelines (all borrowed). */
struct pipeline_env {
	const struct pipeline_config *cfg;
	struct kube_client *kube;        /* builds, hooks, deploys */
	struct kube_client *status_kube; /* the PipelineRuns' writes only, on
	                                    their writer threads (pipelinerun.h):
	                                    a client serves one request at a
	                                    time */
	struct buildsrv *srv;
	/* the delivery thread of the Remote's webhooks, or NULL (delivery.h) */
	struct delivery_sender *webhooks;
	const struct remote *remote; /* the Remote as read at the push */
	const char *remote_gvr;      /* "slipway.dev/v1alpha1/remotes" or gitkube's */
	git_repository *repo;        /* sees the pushed objects (quarantine included) */
	const char *repo_path;       /* the repository's directory */
	const char *quarantine;      /* the push's quarantine (resolved), or "" */
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
	const char *trigger;     /* "push", "webhook" or "poll" */
	const char *sender;      /* the git host's account for webhook, or "" */
};

struct pipeline;

/* Room for a key fingerprint, "SHA256:<base64>" and its NUL. */
#define PIPELINE_FINGERPRINT_MAX 64

/* One ref update of a push. */
struct pipeline_command {
	char *refname;  /* a valid refname under "refs/" (owned) */
	git_oid before; /* zero: a new ref */
	git_oid after;  /* zero: a deletion */
};

/* A push as the connection process describes it, validated
 * (pipesrv_request_parse): names are Kubernetes names and every path is the
 * worker's own, not the connection's. */
struct pipeline_request {
	char ns[254];                   /* the Remote's namespace */
	char name[254];                 /* the Remote's name */
	bool is_gitkube;                /* remotes.gitkube.sh, not remotes.slipway.dev */
	char repo_path[REPO_PATH_MAX];  /* DATA_DIR/NS/NAME.git (repo_path()) */
	char quarantine[REPO_PATH_MAX]; /* REPO_PATH/objects/incoming-*, or "" */
	/* the pusher's key as the connection names it, "SHA256:<base64>";
	 * pipeline_serve checks it against the Remote */
	char fingerprint[PIPELINE_FINGERPRINT_MAX];
	bool is_wait; /* no "slipway.wait=false" push option */
	/* what started it: "" for a push; "webhook" or "poll" for an update
	 * fetched from the Remote's upstream (upstream.h), whose trust is the
	 * webhook's signature or the upstream itself: the fingerprint is then
	 * "" and not checked */
	char trigger[16];
	char sender[257];              /* the git host's account that pushed, or "" */
	struct pipeline_command *cmds; /* at least one (owned) */
	size_t ncmds;
};

/* Frees what R holds and leaves it empty. */
void pipeline_request_release(struct pipeline_request *r);

/* What a worker needs besides the push (pipesrv_opts; all borrowed). */
struct pipeline_worker {
	const struct pipeline_config *cfg;
	const char *kubeconfig;         /* NULL: kubectl's lookup, then in-cluster */
	const char *context;            /* NULL: current context */
	const char *internal_bind;      /* builder endpoint address (buildsrv.h) */
	const char *internal_advertise; /* how builders reach it; NULL: bind */
	const char *data_dir;           /* the repositories (repo.h), resolved */
	/* API clients built before the push arrived, connections open (a
	 * pre-forked worker, pipesrv.h; borrowed, used by one pipeline_serve at
	 * a time), or NULL: pipeline_serve builds its own from kubeconfig and
	 * context. kube serves what kube does in pipeline_env, status_kube the
	 * PipelineRuns' writes. */
	struct kube_client *kube;
	struct kube_client *status_kube;
};

/* The connection a push came on, as the pipeline talks to it (pipesrv.c
 * carries the messages). */
struct pipeline_conn {
	/* One progress line for the pusher, without newline. */
	void (*say)(void *arg, const char *line);
	/* Sends the verdict: ERRORS[i] says why command i of REQ is refused, or
	 * is NULL. Returns 0, or -1 when the connection is gone. */
	int (*verdict)(void *arg, const struct pipeline_request *req, char *const *errors);
	/* Waits for the refs the connection moved and sets IS_UPDATED[i] for
	 * each command i among them (REQ->ncmds entries, false on entry).
	 * Returns 0, or -1 when the connection went away first. */
	int (*updated)(void *arg, const struct pipeline_request *req, bool *is_updated);
	/* Hangs up, having said the push is done when IS_DONE; progress from
	 * then on goes to the logs only. */
	void (*hang_up)(void *arg, bool is_done);
	void *arg;
	const volatile sig_atomic_t *cancel; /* non-zero once the pusher went away */
};

/* Serves one push, top to bottom: checks the quarantine lies in REQ's
 * repository and the pusher's key is in the Remote's spec.authorizedKeys as
 * read now (else every command is refused and nothing runs), decides which
 * refs deploy, creates their PipelineRuns, queues them, runs pre-receive and
 * (unless REQ->is_wait is false) every later stage, sends the verdict, runs
 * post-receive for the refs that moved, and hangs up; with is_wait false
 * the stages run after that. Returns 0, or -1 with err_msg() when the push
 * was refused before any pipeline existed. */
int pipeline_serve(const struct pipeline_request *req, const struct pipeline_worker *w,
                   const struct pipeline_conn *conn);

/* Runs PipelineRun NS/NAME, which kubectl slipway created (spec.trigger
 * rollback or config; docs/releases.md), as gitd's controller does for a
 * run it did not create: takes it over (pipelinerun_adopt; when another
 * claimant won, or the run is gone or not unclaimed, does nothing), waits
 * for the Remote's lock, picks the images (the release spec.rollbackOf
 * names, "vN" or a PipelineRun name; for config the current release's),
 * runs pre-deploy hooks, deploys them by digest following the rollouts
 * (rolled back on failure), runs post-deploy hooks, and finishes the run
 * with its release number, as for a push. Nothing is built, no registry is
 * written and no ref moves. A run whose spec or Remote is unusable is
 * finished False (reason Invalid or RemoteNotFound). Returns 0, or -1 with
 * err_msg() when the API could not be reached (logged as
 * pipeline_run_failed). */
int pipeline_serve_run(const char *ns, const char *name, const struct pipeline_worker *w);

#endif
