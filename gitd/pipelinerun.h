/* pipelinerun: the PipelineRun object of one pipeline and everything that
 * mirrors it (DESIGN.md "PipelineRun"): its status (stages, the Succeeded
 * condition, images, logTail, start and completion times), the ConfigMap
 * "<remote>-pipeline" holding the latest run as JSON, Kubernetes Events on
 * the PipelineRun, and the Remote's status.lastRun.
 *
 * A run's writes go to the API on a writer thread of its own, so that the
 * pipeline does not wait for them: every change is queued and the calls
 * below return at once, except pipelinerun_create (the object itself) and
 * pipelinerun_finish (everything queued). The writer sends in order: the
 * status subresource (replaced whole with the resourceVersion last seen; a
 * 409 Conflict is resolved by re-reading and writing again), the mirror,
 * the Events, lastRun. Status and mirror are coalesced: changes queued
 * while a write is in flight go out together in the next one, so a watcher
 * sees every change that lasted longer than one write (a few ms) and
 * always the final state, but may miss a stage that started and ended
 * in between (its times and phase are in the next status). Every Event is
 * sent. A failed write is logged (gitd's event log) and retried with the
 * next one; it never stops the pipeline. Conditions
 * follow the API conventions: type, status, reason, message,
 * lastTransitionTime (changed only when status changes), observedGeneration. */
#ifndef SLIP_GITD_PIPELINERUN_H
#define SLIP_GITD_PIPELINERUN_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "kube.h"

#define PIPELINERUN_GVR "slipway.dev/v1alpha1/pipelineruns"
#define PIPELINERUN_LOG_TAIL_MAX 16000 /* bytes of status.logTail (CRD max 16384) */

/* Labels set on every PipelineRun. Values are made label-safe (at most 63
 * of [A-Za-z0-9._-], starting and ending alphanumeric; others become '-'). */
#define PIPELINERUN_LABEL_REMOTE "slipway.dev/remote"
#define PIPELINERUN_LABEL_REF "slipway.dev/ref"       /* "refs/heads/feature/x" -> "feature-x" */
#define PIPELINERUN_LABEL_COMMIT "slipway.dev/commit" /* spec.after (a SHA-256 id: 63 digits) */

/* The label gitd puts on a run's builder Pods and Secrets (value: the
 * PipelineRun's name); pipelinerun_sweep_interrupted deletes what has it. */
#define PIPELINERUN_LABEL_RUN "slipway.dev/pipelinerun"

/* What a run is for (all borrowed for the call). */
struct pipelinerun_spec {
	const char *ns;          /* the Remote's namespace */
	const char *remote;      /* the Remote's name */
	const char *remote_gvr;  /* "slipway.dev/v1alpha1/remotes" or
	                            "gitkube.sh/v1alpha1/remotes" (for lastRun;
	                            NULL: lastRun is not written) */
	const char *ref;         /* "refs/heads/main" */
	const char *before;      /* hex object ids (40 or 64 digits; zeros for a */
	const char *after;       /* new ref) */
	const char *fingerprint; /* the pusher's key, "SHA256:..." */
	const char *comment;     /* the key's comment, or "" */
	const char *trigger;     /* spec.trigger: "push" (also when NULL), "webhook", "poll" */
	const char *sender;      /* spec.pusher.name: a webhook's sender, or NULL or "" */
};

/* A run keeps the client C it was created with (borrowed: C must outlive the
 * run) and uses it on its writer thread; runs of one process may share C
 * (their writes take turns), but nothing else may use C meanwhile. The
 * calls below belong to the thread that created the run. */

struct pipelinerun;

/* Creates the PipelineRun (metadata.generateName "REMOTE-", the three
 * labels, spec as SPEC with trigger "push"), then sets its status:
 * startTime, Succeeded Unknown with reason REASON and MESSAGE (e.g.
 * "Queued", "waiting for pipeline default-web-x7k2p"). Updates the mirror
 * ConfigMap and emits a Normal "Created" Event. *OUT belongs to the caller
 * (pipelinerun_free). Returns 0, or a kube.h code with err_msg() when the
 * object could not be created (nothing to free then). */
int pipelinerun_create(struct pipelinerun **out, struct kube_client *c,
                       const struct pipelinerun_spec *spec, const char *reason,
                       const char *message);

/* The object's name (borrowed). */
const char *pipelinerun_name(const struct pipelinerun *r);

/* The object's metadata.uid as the API server gave it, for owner references
 * (borrowed, valid while R lives), or NULL. */
const char *pipelinerun_uid(const struct pipelinerun *r);

/* Changes the reason and message of the still-Unknown Succeeded condition
 * (e.g. "Running", "building web/nginx"). Queues a status write. */
void pipelinerun_progress(struct pipelinerun *r, const char *reason, const char *message);

/* Sets stage NAME (added at the end the first time) to PHASE ("Pending",
 * "Running", "Succeeded", "Failed", "Skipped") with MESSAGE (may be NULL):
 * "Running" sets startTime, the last three set completionTime. At most 200
 * stages (the CRD's maximum): later new names are logged and dropped. Queues
 * a status write, the mirror's update and an Event (reason "StageRunning",
 * "StageSucceeded", "StageFailed" or "StageSkipped"; Warning for Failed). */
void pipelinerun_stage(struct pipelinerun *r, const char *name, const char *phase,
                       const char *message);

/* Adds an entry to status.images (IMAGE pinned by digest; at most 500).
 * Written with the next status write. */
void pipelinerun_image(struct pipelinerun *r, const char *deployment, const char *container,
                       const char *image);

/* Adds an entry to status.applied (at most 5000): the object API_VERSION
 * KIND NAME and ACTION, one of "created", "configured", "unchanged",
 * "pruned" (the CRD's enum). Written with the next status write. */
void pipelinerun_applied(struct pipelinerun *r, const char *api_version, const char *kind,
                         const char *name, const char *action);

/* Appends LINE to status.logTail, which keeps the last
 * PIPELINERUN_LOG_TAIL_MAX bytes (cut at a line start). Written with the next
 * status write, or queued by pipelinerun_log itself at most once a second. */
void pipelinerun_log(struct pipelinerun *r, const char *line);

/* Ends the run: Succeeded True (reason "Succeeded") or False with REASON
 * ("BuildFailed", "DeployFailed", "HookFailed", "Superseded", "Timeout",
 * "Interrupted", ...; NULL or "" gives "Failed") and MESSAGE; completionTime;
 * a stage still Running ends as the run did (Succeeded or Failed), one still
 * Pending becomes Skipped; the status with the whole logTail; mirror; a Normal "Succeeded" or
 * Warning REASON Event; and the Remote's status.lastRun = {name, ref,
 * commit, succeeded, reason, completionTime} (a merge patch of the status
 * subresource), and waits until the final status, and everything queued
 * before it, is written: the mirror, Event and lastRun follow it on the
 * writer (pipelinerun_flush waits for them). Returns 0, or -1 when the final
 * status could not be written after retries (logged as
 * pipelinerun_status_failed) with err_msg(). */
int pipelinerun_finish(struct pipelinerun *r, bool succeeded, const char *reason,
                       const char *message);

/* Waits until every write queued for R (status, mirror, Events, lastRun,
 * labels) has been sent. */
void pipelinerun_flush(struct pipelinerun *r);

/* Asks R's writer to list the PipelineRuns of R's Remote
 * (pipelinerun_list_remote, with R's client) once what is queued before is
 * sent, so that the list is at hand when the run ends: the caller holds the
 * Remote's lock (queue.h), so no run of the Remote takes a release number
 * meanwhile. Without a writer, does nothing. */
void pipelinerun_list_ahead(struct pipelinerun *r);

/* Takes the list pipelinerun_list_ahead asked for into *OUT (sorted by
 * release_sort; caller frees), waiting for the writer if it has not listed
 * yet. Returns 0, 1 when no list was asked for (*OUT NULL: the caller lists
 * itself), or -1 with err_msg() when the writer's list failed (logged as
 * pipeline_release). */
int pipelinerun_listed(json_t **out, struct pipelinerun *r);

/* How many writes R has sent to the API server so far (*WRITES: the create,
 * status, mirror, Event and lastRun requests, each with its retries) and
 * the milliseconds spent in them (*MS), for the pipeline's timing log. */
void pipelinerun_api_stats(unsigned *writes, long long *ms, struct pipelinerun *r);

/* The status as last set, which every write sends (borrowed, valid until
 * the next call on R), for the hooks' event JSON. */
const json_t *pipelinerun_status(const struct pipelinerun *r);

/* Takes over a PipelineRun that kubectl slipway created (spec.trigger
 * rollback or config, no status yet; OBJ as read, borrowed): claims it by
 * writing its first status (startTime, Succeeded Unknown with REASON and
 * MESSAGE) under OBJ's resourceVersion, so that of two claimants only one
 * wins; then labels it like the runs gitd creates (remote, ref, commit),
 * updates the mirror ConfigMap and emits a Normal "Created" Event.
 * REMOTE_GVR as in pipelinerun_spec. *OUT belongs to the caller
 * (pipelinerun_free). Returns 0, KUBE_ECONFLICT when the object changed
 * since it was read (someone else claimed it), or another kube.h code with
 * err_msg(). */
int pipelinerun_adopt(struct pipelinerun **out, struct kube_client *c, const json_t *obj,
                      const char *remote_gvr, const char *reason, const char *message);

/* Whether OBJ is a PipelineRun that waits for gitd to take it over:
 * spec.trigger is rollback or config and it has no status yet. */
bool pipelinerun_is_unclaimed(const json_t *obj);

/* Records release number N (>= 1, see release.h) in status.release, written
 * with the next status write, and labels the object slipway.dev/release=N
 * (a merge patch the writer sends right after that status write, so that a
 * run's end does not wait for it; pipelinerun_flush does; a failure is
 * logged). Called at most once per run. */
void pipelinerun_set_release(struct pipelinerun *r, long n);

/* Lists the PipelineRuns of Remote NS/REMOTE (label slipway.dev/remote,
 * then spec.remote equal to REMOTE) into *OUT, a JSON array of the objects
 * sorted by release_sort (caller frees). Returns 0 or a kube.h code with
 * err_msg(). */
int pipelinerun_list_remote(json_t **out, struct kube_client *c, const char *ns,
                            const char *remote);

/* Bounds Remote NS/REMOTE's history: while more than LIMIT of its runs have
 * finished, deletes the oldest finished one (release_sort order). Runs not
 * finished are neither counted nor deleted, nor are the run of the current
 * release and the run with the highest release number (the next number is
 * counted from it). The mirror ConfigMap is one per Remote and shows the
 * latest run, so it stays. LISTED is the Remote's runs as
 * pipelinerun_list_remote gave them while the caller held the Remote's lock
 * (so no other run finished since; borrowed, its entry for SELF gets SELF's
 * status as last set and the array is sorted again), or NULL: the runs are
 * listed here. SELF may be NULL. Returns the number deleted, or a kube.h
 * code with err_msg() when the runs could not be listed (deletions that fail
 * are logged and skipped). */
int pipelinerun_prune(struct kube_client *c, const char *ns, const char *remote, long limit,
                      json_t *listed, const struct pipelinerun *self);

/* Sends what is still queued, stops the writer and frees R (changes nothing
 * else). NULL is allowed. */
void pipelinerun_free(struct pipelinerun *r);

/* At gitd's start: every PipelineRun in NAMESPACES (NULL-terminated; NULL
 * or empty: all) whose Succeeded condition is Unknown was left by a gitd
 * that died; marks each False with reason "Interrupted" (stages still
 * Running become Failed), updates its mirror, emits a Warning Event, and
 * deletes the Pods and Secrets labelled PIPELINERUN_LABEL_RUN=NAME (NotFound
 * and Forbidden are ignored). A run without a Succeeded condition (gitd died
 * before its first status write) counts as Unknown. Runs are handled oldest
 * first, so each Remote's mirror ends with its newest run; the Remote's
 * lastRun is left alone. A run still unclaimed (pipelinerun_is_unclaimed)
 * is not marked: gitd's controller takes it over. Returns the number of runs marked, or a kube.h
 * code with err_msg() when a namespace could not be listed. */
int pipelinerun_sweep_interrupted(struct kube_client *c, const char *const *namespaces);

#endif
