/* clock: monotonic milliseconds and RFC 3339 wall clock times (see
 * clock.h). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "err.h"
#include "banned.h"

long long clock_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The value of the N decimal digits at S, or -1 when one is no digit. */
static int digits(const char *s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

int clock_parse_rfc3339(time_t *out, const char *s)
{
	struct tm tm = {0}, back;
	const char *p;
	long offset = 0;
	time_t t;

	/* YYYY-MM-DDTHH:MM:SS at fixed places; digits() stops at a NUL */
	if (!s || digits(s, 4) < 0 || s[4] != '-' || digits(s + 5, 2) < 0 || s[7] != '-' ||
	    digits(s + 8, 2) < 0 || (s[10] != 'T' && s[10] != 't') || digits(s + 11, 2) < 0 ||
	    s[13] != ':' || digits(s + 14, 2) < 0 || s[16] != ':' || digits(s + 17, 2) < 0)
		goto bad;
	tm.tm_year = digits(s, 4) - 1900;
	tm.tm_mon = digits(s + 5, 2) - 1;
	tm.tm_mday = digits(s + 8, 2);
	tm.tm_hour = digits(s + 11, 2);
	tm.tm_min = digits(s + 14, 2);
	tm.tm_sec = digits(s + 17, 2);
	p = s + 19;
	if (*p == '.') {
		if (digits(++p, 1) < 0)
			goto bad;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if ((*p == 'Z' || *p == 'z') && !p[1])
		offset = 0;
	else if ((*p == '+' || *p == '-') && digits(p + 1, 2) >= 0 && digits(p + 1, 2) <= 23 &&
	         p[3] == ':' && digits(p + 4, 2) >= 0 && digits(p + 4, 2) <= 59 && !p[6])
		offset = (*p == '-' ? -60L : 60L) * (digits(p + 1, 2) * 60 + digits(p + 4, 2));
	else
		goto bad;
	/* timegm() normalises out-of-range fields in place: refuse those */
	back = tm;
	t = timegm(&back);
	if (back.tm_year != tm.tm_year || back.tm_mon != tm.tm_mon || back.tm_mday != tm.tm_mday ||
	    back.tm_hour != tm.tm_hour || back.tm_min != tm.tm_min || back.tm_sec != tm.tm_sec)
		goto bad;
	*out = t - offset;
	return 0;
bad:
	return err_set("time \"%.64s\" is not RFC 3339 (YYYY-MM-DDTHH:MM:SS[.F](Z|+HH:MM))",
	               s ? s : "");
}

void clock_format_rfc3339(char out[CLOCK_RFC3339_SIZE], time_t t)
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(out, CLOCK_RFC3339_SIZE, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, CLOCK_RFC3339_SIZE, "1970-01-01T00:00:00Z");
}

void clock_now_rfc3339(char out[CLOCK_RFC3339_SIZE])
{
	clock_format_rfc3339(out, time(NULL));
}

void clock_format_rfc3339_ms(char out[CLOCK_RFC3339_SIZE], const struct timespec *ts)
{
	char sec[CLOCK_RFC3339_SIZE];

	clock_format_rfc3339(sec, ts->tv_sec);
	/* "...:SSZ" becomes "...:SS.mmmZ" */
	snprintf(out, CLOCK_RFC3339_SIZE, "%.*s.%03ldZ", (int)strlen(sec) - 1, sec,
	         ts->tv_nsec / 1000000);
}
