/* clock: monotonic milliseconds and Kubernetes times (see clock.h). */
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

int clock_parse_rfc3339(time_t *out, const char *s)
{
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof(tm));
	if (!s || !(end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm)) || *end)
		return err_set("time \"%s\" is not RFC 3339 UTC (YYYY-MM-DDTHH:MM:SSZ)",
		               s ? s : "");
	*out = timegm(&tm);
	return 0;
}
