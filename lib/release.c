/* release: reading a Remote's release history from its PipelineRuns (see
 * release.h). */
#include "release.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "banned.h"

static const char *str_at(const json_t *obj, const char *a, const char *b)
{
	const json_t *v = json_object_get(obj, a);

	return json_string_value(b ? json_object_get(v, b) : v);
}

static const char *succeeded_status(const json_t *run)
{
	const json_t *conds = json_object_get(json_object_get(run, "status"), "conditions"), *c;
	size_t i;

	json_array_foreach(conds, i, c)
	{
		const char *type = json_string_value(json_object_get(c, "type"));

		if (type && !strcmp(type, "Succeeded"))
			return json_string_value(json_object_get(c, "status"));
	}
	return NULL;
}

long release_number(const json_t *run)
{
	const json_t *v = json_object_get(json_object_get(run, "status"), "release");

	return json_is_integer(v) && json_integer_value(v) > 0 ? (long)json_integer_value(v) : 0;
}

const char *release_trigger(const json_t *run)
{
	const char *t = str_at(json_object_get(run, "spec"), "trigger", NULL);

	return t && *t ? t : "push";
}

bool release_is_succeeded(const json_t *run)
{
	const char *s = succeeded_status(run);

	return s && !strcmp(s, "True");
}

bool release_is_finished(const json_t *run)
{
	const char *s = succeeded_status(run);

	return s && (!strcmp(s, "True") || !strcmp(s, "False"));
}

static int cmp_str(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "");
}

static int by_age(const void *x, const void *y)
{
	const json_t *a = *(const json_t *const *)x, *b = *(const json_t *const *)y;
	const char *ca = release_is_finished(a) ? str_at(a, "status", "completionTime") : NULL;
	const char *cb = release_is_finished(b) ? str_at(b, "status", "completionTime") : NULL;
	int d;

	/* RFC 3339 times in UTC compare as strings; unfinished runs go last */
	if (!ca != !cb)
		return ca ? -1 : 1;
	if ((d = cmp_str(ca, cb)))
		return d;
	if ((d = cmp_str(str_at(a, "metadata", "creationTimestamp"),
	                 str_at(b, "metadata", "creationTimestamp"))))
		return d;
	return cmp_str(str_at(a, "metadata", "name"), str_at(b, "metadata", "name"));
}

int release_sort(json_t *runs)
{
	size_t n = json_array_size(runs), i;
	json_t **items;

	if (n < 2)
		return 0;
	items = calloc(n, sizeof(*items));
	if (!items)
		return err_set("out of memory");
	for (i = 0; i < n; i++)
		items[i] = json_incref(json_array_get(runs, i));
	qsort(items, n, sizeof(*items), by_age);
	for (i = 0; i < n; i++)
		json_array_set_new(runs, i, items[i]);
	free(items);
	return 0;
}

long release_last(const json_t *runs)
{
	const json_t *run;
	long last = 0;
	size_t i;

	json_array_foreach(runs, i, run)
	{
		if (release_number(run) > last)
			last = release_number(run);
	}
	return last;
}

const json_t *release_current(const json_t *runs)
{
	for (size_t i = json_array_size(runs); i-- > 0;) {
		const json_t *run = json_array_get(runs, i);

		if (release_is_succeeded(run) && release_number(run))
			return run;
	}
	return NULL;
}

/* The Succeeded run that first deployed release N, or NULL. */
static const json_t *original(const json_t *runs, long n)
{
	const json_t *run;
	size_t i;

	json_array_foreach(runs, i, run)
	{
		if (release_number(run) == n && release_is_succeeded(run) &&
		    strcmp(release_trigger(run), "rollback") != 0)
			return run;
	}
	return NULL;
}

const json_t *release_find(const json_t *runs, const char *what)
{
	const char *digits = what[0] == 'v' ? what + 1 : what;
	const json_t *run;
	size_t i;

	if (*digits >= '1' && *digits <= '9' && strspn(digits, "0123456789") == strlen(digits)) {
		char *end;
		long n;

		errno = 0;
		n = strtol(digits, &end, 10);
		if (errno || *end) {
			err_set("release %s: out of range", what);
			return NULL;
		}
		run = original(runs, n);
		if (!run)
			err_set(
			    "release v%ld not found (deleted by spec.historyLimit, or never made)",
			    n);
		return run;
	}
	json_array_foreach(runs, i, run)
	{
		const char *name = str_at(run, "metadata", "name");

		if (!name || strcmp(name, what) != 0)
			continue;
		if (!release_is_succeeded(run) || !release_number(run)) {
			err_set("pipelinerun %s did not deploy a release", what);
			return NULL;
		}
		return run;
	}
	err_set("no release or pipelinerun named %s", what);
	return NULL;
}

const json_t *release_previous(const json_t *runs)
{
	const json_t *cur = release_current(runs);
	long n;

	if (!cur) {
		err_set("no release deployed yet");
		return NULL;
	}
	for (n = release_number(cur) - 1; n > 0; n--) {
		const json_t *run = original(runs, n);

		if (run)
			return run;
	}
	err_set("no release before v%ld", release_number(cur));
	return NULL;
}
