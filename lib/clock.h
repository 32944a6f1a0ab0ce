/* clock: monotonic time for timeouts, deadlines and durations; the wall
 * clock times of Kubernetes objects. */
#ifndef SLIP_CLOCK_H
#define SLIP_CLOCK_H

#include <time.h>

/* Milliseconds on CLOCK_MONOTONIC (an arbitrary start; only differences
 * mean anything). Never fails. */
long long clock_now_ms(void);

/* Bytes of a buffer for clock_format_rfc3339 and clock_format_rfc3339_ms. */
#define CLOCK_RFC3339_SIZE 32

/* Parses S, an RFC 3339 date-time (RFC 3339 section 5.6:
 * "YYYY-MM-DDTHH:MM:SS", an optional fraction of a second, then "Z" or an
 * offset "+HH:MM" / "-HH:MM"; "T" and "Z" also lowercase, as its note
 * allows), into *OUT, seconds since the epoch (the fraction dropped). This
 * covers what the API server writes: metav1.Time ("2006-01-02T15:04:05Z")
 * and metav1.MicroTime (with six fraction digits). Fields out of range (a
 * 13th month, February 30th, second 60) are refused. Returns 0, or -1 with
 * err_msg() set when S is NULL or not of that form. */
int clock_parse_rfc3339(time_t *out, const char *s);

/* Writes T as RFC 3339 in UTC with second precision, the form of a
 * Kubernetes metav1.Time ("2026-11-26T01:02:03Z", 20 characters), into OUT.
 * Never fails. */
void clock_format_rfc3339(char out[CLOCK_RFC3339_SIZE], time_t t);

/* Writes the wall clock's current time as clock_format_rfc3339 does. */
void clock_now_rfc3339(char out[CLOCK_RFC3339_SIZE]);

/* Writes TS as RFC 3339 in UTC with milliseconds
 * ("2026-11-26T01:02:03.045Z", 24 characters; the rest of the fraction is
 * dropped), the time of a log line, into OUT. Never fails. */
void clock_format_rfc3339_ms(char out[CLOCK_RFC3339_SIZE], const struct timespec *ts);

#endif
