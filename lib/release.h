/* release: a Remote's release history as its PipelineRuns record it
 * (docs/releases.md). Every successful run that deploys gets a release
 * number in status.release, counted per Remote: a push, webhook, poll or
 * config run takes the highest number among the Remote's runs plus one; a
 * rollback run carries the number of the release it put back. The current
 * release is the one of the Succeeded run that finished last. Pure
 * functions over PipelineRun objects as the API server returns them, shared
 * by gitd and kubectl-slipway so both read the history the same way. */
#ifndef SLIP_RELEASE_H
#define SLIP_RELEASE_H

#include <stdbool.h>
#include <jansson.h>

/* The label carrying a run's release number ("N", decimal). */
#define RELEASE_LABEL "slipway.dev/release"

/* RUN's status.release, or 0 when it has none (or it is not a positive
 * integer). */
long release_number(const json_t *run);

/* RUN's spec.trigger: "push" when absent (the CRD's default); borrowed. */
const char *release_trigger(const json_t *run);

/* Whether RUN's Succeeded condition is "True". */
bool release_is_succeeded(const json_t *run);

/* Whether RUN has ended: its Succeeded condition is "True" or "False". */
bool release_is_finished(const json_t *run);

/* Sorts RUNS (a JSON array of PipelineRuns) in place, oldest first: by
 * status.completionTime (runs not finished count as newest), then
 * metadata.creationTimestamp, then name. Returns 0, or -1 with err_msg()
 * when out of memory (RUNS then unchanged). */
int release_sort(json_t *runs);

/* The highest release number among RUNS, 0 when none has one. */
long release_last(const json_t *runs);

/* The run of the current release among RUNS (sorted by release_sort): the
 * last Succeeded one with a release number; NULL when none. Borrowed. */
const json_t *release_current(const json_t *runs);

/* The release WHAT names among RUNS: "vN" (or "N") is the Succeeded run
 * that first deployed release N (not a rollback to it); anything else is a
 * PipelineRun name, which must have Succeeded with a release number.
 * Returns the run (borrowed), or NULL with err_msg() saying why. */
const json_t *release_find(const json_t *runs, const char *what);

/* The release before the current one (sorted RUNS): the run that first
 * deployed the highest release number below the current release's. Returns
 * it (borrowed), or NULL with err_msg() when there is none. */
const json_t *release_previous(const json_t *runs);

#endif
