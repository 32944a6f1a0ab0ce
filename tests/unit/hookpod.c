/* Unit tests of gitd/hookpod's choice of kept hook Pods to sweep: the
 * slipway.dev/keep-until annotation read as an RFC 3339 time and compared
 * with now; Pods without it, or with a malformed one, are left alone. */
#include <jansson.h>

#include "tap.h"
#include "hookpod.h"

/* 2024-05-01T12:00:00Z */
#define MAY_FIRST_NOON 1714564800

/* A Pod as the API lists it, annotated keep-until UNTIL (NULL: not). */
static json_t *pod(const char *until)
{
	json_t *p = json_pack("{s:s, s:{s:s, s:s, s:{s:s}}}", "kind", "Pod", "metadata", "name",
	                      "web-hook-x7k2p", "namespace", "default", "annotations",
	                      "slipway.dev/hook", "configmap/web-hooks:x.sh");

	if (until)
		json_object_set_new(json_object_get(json_object_get(p, "metadata"), "annotations"),
		                    HOOKPOD_KEEP_UNTIL, json_string(until));
	return p;
}

static void test_is_expired(void)
{
	static const struct {
		const char *until;
		time_t now;
		bool is_expired;
		const char *what;
	} cases[] = {
	    {"2024-05-01T12:00:00Z", MAY_FIRST_NOON - 1, false, "a Pod kept one more second stays"},
	    {"2024-05-01T12:00:00Z", MAY_FIRST_NOON, true, "a Pod whose keep-until is now expires"},
	    {"2024-05-01T12:00:00Z", MAY_FIRST_NOON + 3600, true,
	     "a Pod kept until an hour ago expires"},
	    {"2024-05-01T14:00:00+02:00", MAY_FIRST_NOON, true,
	     "an offset is read as the same instant"},
	    {"2024-05-01T12:00:01.5Z", MAY_FIRST_NOON, false,
	     "a fraction of a second parses; the time is still ahead"},
	    {"2024-05-01T13:00:00+02:00", MAY_FIRST_NOON, true,
	     "an offset is compared as a time, not as a string that sorts after now's"},
	    {"tomorrow", MAY_FIRST_NOON, false, "a keep-until that does not parse is left alone"},
	    {"", MAY_FIRST_NOON, false, "an empty keep-until is left alone"},
	    {NULL, MAY_FIRST_NOON, false, "a Pod without keep-until (running) is left alone"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *p = pod(cases[i].until);

		ok(hookpod_is_expired(p, cases[i].now) == cases[i].is_expired, "%s", cases[i].what);
		json_decref(p);
	}
}

static void test_malformed(void)
{
	json_t *p = json_pack("{s:{s:{s:i}}}", "metadata", "annotations", HOOKPOD_KEEP_UNTIL, 0);
	json_t *q = json_pack("{s:s}", "metadata", "x");

	ok(!hookpod_is_expired(NULL, MAY_FIRST_NOON), "no Pod is not expired");
	ok(!hookpod_is_expired(p, MAY_FIRST_NOON),
	   "a keep-until that is not a string is left alone");
	ok(!hookpod_is_expired(q, MAY_FIRST_NOON), "metadata that is not an object is left alone");
	json_decref(p);
	json_decref(q);
}

int main(void)
{
	test_is_expired();
	test_malformed();
	return tap_done();
}
