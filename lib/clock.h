/* clock: monotonic time for timeouts, deadlines and durations; the wall
 * clock times of Kubernetes objects. */
#ifndef SLIP_CLOCK_H
#define SLIP_CLOCK_H

#include <time.h>

/* Milliseconds on CLOCK_MONOTONIC (an arbitrary start; only differences
 * mean anything). Never fails. */
long long clock_now_ms(void);

/* Parses S, a Kubernetes metav1.Time ("2006-01-02T15:04:05Z": RFC 3339 in
 * UTC with second precision, as the API server writes condition and
 * object times), into *OUT (seconds since the epoch). Returns 0, or -1 with
 * err_msg() set when S is NULL or not of that form. */
int clock_parse_rfc3339(time_t *out, const char *s);

#endif
