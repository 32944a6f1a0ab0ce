/* tap: a tiny Test Anything Protocol harness for the C unit tests (in the
 * spirit of redis's testhelp.h). Each check prints "ok N - what" or
 * "not ok N - what"; tap_done() prints the plan and returns the exit code. */
#ifndef SLIP_TAP_H
#define SLIP_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

/* Records one check; COND true passes. Returns COND so callers can guard. */
#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

static inline int tap_ok(int cond, const char *file, int line, const char *what, ...)
    __attribute__((format(printf, 4, 5)));

static inline int tap_ok(int cond, const char *file, int line, const char *what, ...)
{
	va_list ap;

	tap_n++;
	printf("%sok %d - ", cond ? "" : "not ", tap_n);
	va_start(ap, what);
	vprintf(what, ap);
	va_end(ap);
	printf("\n");
	if (!cond) {
		tap_failed++;
		printf("#   failed at %s:%d\n", file, line);
	}
	fflush(stdout);
	return cond;
}

/* String equality check; NULLs compare equal only to NULL. */
#define is_str(got, want, what) tap_is_str((got), (want), __FILE__, __LINE__, (what))

static inline int tap_is_str(const char *got, const char *want, const char *file, int line,
                             const char *what)
{
	int same = (!got && !want) || (got && want && !strcmp(got, want));

	tap_ok(same, file, line, "%s", what);
	if (!same)
		printf("#   got:  '%s'\n#   want: '%s'\n", got ? got : "(null)",
		       want ? want : "(null)");
	return same;
}

/* Integer equality check. */
#define is_int(got, want, what)                                                                    \
	tap_is_int((long long)(got), (long long)(want), __FILE__, __LINE__, (what))

static inline int tap_is_int(long long got, long long want, const char *file, int line,
                             const char *what)
{
	tap_ok(got == want, file, line, "%s", what);
	if (got != want)
		printf("#   got:  %lld\n#   want: %lld\n", got, want);
	return got == want;
}

/* Prints the plan; returns the process exit code (0 when all passed). */
static inline int tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
