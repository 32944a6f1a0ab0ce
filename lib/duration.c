/* duration: parse Go-style durations of command-line flags (see duration.h). */
#include <stdlib.h>
#include <string.h>

#include "duration.h"
#include "banned.h"

long duration_parse_ms(const char *s)
{
	long total = 0;

	if (!*s)
		return -1;
	while (*s) {
		char *end;
		long v = strtol(s, &end, 10), mul;

		if (end == s || v < 0)
			return -1;
		if (!strncmp(end, "ms", 2))
			mul = 1, end += 2;
		else if (*end == 's' || *end == '\0')
			mul = 1000, end += *end ? 1 : 0;
		else if (*end == 'm')
			mul = 60000, end += 1;
		else if (*end == 'h')
			mul = 3600000, end += 1;
		else
			return -1;
		if (v > 30L * 24 * 3600 * 1000 / mul)
			return -1;
		total += v * mul;
		if (total > 30L * 24 * 3600 * 1000)
			return -1;
		s = end;
	}
	return total;
}
