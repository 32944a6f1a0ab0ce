/* controller: gitd's PipelineRun controller, for the runs gitd did not
 * create itself (docs/releases.md). kubectl slipway rollback and config
 * create a PipelineRun with spec.trigger rollback or config and no status;
 * the controller watches PipelineRuns in the served namespaces and, for
 * each such unclaimed run (pipelinerun_is_unclaimed), forks a worker that
 * runs it (pipeline_serve_run): the worker claims the run by writing its
 * first status under the resourceVersion it read, so a run is taken once
 * even when the watch shows it again. The pipeline server forks the
 * controller after its start-up sweep; the controller dies with the server
 * (PR_SET_PDEATHSIG) and its workers die with it. With several served
 * namespaces it forks one watching process per namespace. */
#ifndef SLIP_GITD_CONTROLLER_H
#define SLIP_GITD_CONTROLLER_H

#include <sys/types.h>

#include "pipeline.h"

struct controller_opts {
	const char *const *namespaces;   /* NULL-terminated; NULL or empty: all */
	const struct pipeline_worker *w; /* credentials, data directory, settings */
};

/* Forks the controller; *PID is its pid. O and what it points to must stay
 * valid in the caller (the child keeps using its copy). Returns 0 or -1
 * with err_msg(). */
int controller_start(pid_t *pid, const struct controller_opts *o);

#endif
