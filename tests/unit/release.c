/* Unit tests for lib/release: a Remote's release history read from
 * PipelineRun objects: numbers, order, the current release, finding a
 * release by "vN" or name, and the default rollback target. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "err.h"
#include "release.h"
#include "tap.h"

/* A PipelineRun NAME created at CREATED: STATUS ("True", "False",
 * "Unknown" or NULL for none), finished at DONE (may be NULL), with release
 * REL (0: none) and TRIGGER (NULL: absent). */
static json_t *run(const char *name, const char *created, const char *status, const char *done,
                   long rel, const char *trigger)
{
	json_t *r = json_pack("{s:{s:s, s:s}, s:{s:s, s:s}}", "metadata", "name", name,
	                      "creationTimestamp", created, "spec", "remote", "web", "after",
	                      "0123456789012345678901234567890123456789");

	if (trigger)
		json_object_set_new(json_object_get(r, "spec"), "trigger", json_string(trigger));
	if (status) {
		json_t *st = json_pack("{s:[{s:s, s:s}]}", "conditions", "type", "Succeeded",
		                       "status", status);

		if (done)
			json_object_set_new(st, "completionTime", json_string(done));
		if (rel)
			json_object_set_new(st, "release", json_integer(rel));
		json_object_set_new(r, "status", st);
	}
	return r;
}

static const char *name_of(const json_t *r)
{
	return r ? json_string_value(json_object_get(json_object_get(r, "metadata"), "name"))
	         : "(none)";
}

/* v1, v2, a failed push, v3, a rollback to v2, a running push; listed out of
 * order, as the API server may. */
static json_t *history(void)
{
	json_t *runs = json_array();

	json_array_append_new(
	    runs, run("rb", "2026-01-01T00:05:00Z", "True", "2026-01-01T00:05:30Z", 2, "rollback"));
	json_array_append_new(
	    runs, run("p3", "2026-01-01T00:03:00Z", "True", "2026-01-01T00:03:30Z", 3, NULL));
	json_array_append_new(runs,
	                      run("running", "2026-01-01T00:06:00Z", "Unknown", NULL, 0, NULL));
	json_array_append_new(
	    runs, run("p1", "2026-01-01T00:01:00Z", "True", "2026-01-01T00:01:30Z", 1, "push"));
	json_array_append_new(
	    runs, run("bad", "2026-01-01T00:02:30Z", "False", "2026-01-01T00:02:40Z", 0, NULL));
	json_array_append_new(
	    runs, run("p2", "2026-01-01T00:02:00Z", "True", "2026-01-01T00:02:30Z", 2, NULL));
	return runs;
}

static void test_fields(void)
{
	json_t *r = run("x", "2026-01-01T00:00:00Z", NULL, NULL, 0, NULL);
	json_t *bad = run("y", "2026-01-01T00:00:00Z", "True", "2026-01-01T00:00:01Z", 0, NULL);

	is_int(release_number(r), 0, "no status: no release");
	is_str(release_trigger(r), "push", "no spec.trigger reads as push");
	ok(!release_is_finished(r) && !release_is_succeeded(r), "no status: not finished");
	json_object_set_new(json_object_get(bad, "status"), "release", json_string("3"));
	is_int(release_number(bad), 0, "a release that is no integer counts as none");
	json_object_set_new(json_object_get(bad, "status"), "release", json_integer(-2));
	is_int(release_number(bad), 0, "nor does a negative one");
	json_decref(r);
	json_decref(bad);
}

static void test_history(void)
{
	json_t *runs = history();
	const char *order[] = {"p1", "p2", "bad", "p3", "rb", "running"};

	ok(release_sort(runs) == 0, "sort");
	for (size_t i = 0; i < 6; i++)
		is_str(name_of(json_array_get(runs, i)), order[i],
		       "  by completion time, running runs last");
	is_int(release_last(runs), 3, "the highest number is 3");
	is_str(name_of(release_current(runs)), "rb", "the current release is the rollback's");
	is_str(name_of(release_find(runs, "v2")), "p2", "v2 is the push that made it");
	is_str(name_of(release_find(runs, "3")), "p3", "3 is v3");
	is_str(name_of(release_find(runs, "rb")), "rb", "a run by its name");
	err_clear();
	ok(!release_find(runs, "v9") && strstr(err_msg(), "release v9 not found"),
	   "v9 is not found");
	ok(!release_find(runs, "bad") && strstr(err_msg(), "did not deploy a release"),
	   "a failed run is no release");
	ok(!release_find(runs, "v0") && strstr(err_msg(), "no release or pipelinerun named v0"),
	   "v0 is no release number");
	ok(!release_find(runs, "v99999999999999999999") && strstr(err_msg(), "out of range"),
	   "a number past long is refused");
	is_str(name_of(release_previous(runs)), "p1",
	       "after a rollback to v2 the release before is v1");
	json_decref(runs);
}

static void test_previous(void)
{
	json_t *runs = json_array();

	err_clear();
	ok(!release_previous(runs) && strstr(err_msg(), "no release deployed yet"),
	   "no release: nothing to roll back to");
	json_array_append_new(
	    runs, run("p1", "2026-01-01T00:01:00Z", "True", "2026-01-01T00:01:30Z", 1, NULL));
	ok(!release_previous(runs) && strstr(err_msg(), "no release before v1"),
	   "v1 alone: nothing before it");
	json_array_append_new(
	    runs, run("p3", "2026-01-01T00:03:00Z", "True", "2026-01-01T00:03:30Z", 3, NULL));
	is_str(name_of(release_previous(runs)), "p1",
	       "a release deleted from the history is skipped (v3 -> v1)");
	json_decref(runs);
}

int main(void)
{
	test_fields();
	test_history();
	test_previous();
	return tap_done();
}
