/* startups: parsing of --max-startups, source keys for
 * --per-source-max-startups, and the random early drop (see startups.h). */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "startups.h"
#include "banned.h"

/* A decimal in MIN..MAX from the digits S..END (exclusive). */
static int parse_number(int *out, const char *s, const char *end, int min, int max)
{
	char *stop;
	long v;

	if (s == end || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtol(s, &stop, 10);
	if (errno || stop != end || v < min || v > max)
		return -1;
	*out = (int)v;
	return 0;
}

int startups_parse(struct startups_limits *out, const char *spec)
{
	const char *c1 = strchr(spec, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
	const char *end = spec + strlen(spec);

	if (!c1) {
		if (parse_number(&out->begin, spec, end, 1, 100000) < 0)
			return -1;
		out->rate = 100;
		out->full = out->begin;
		return 0;
	}
	if (!c2 || parse_number(&out->begin, spec, c1, 1, 100000) < 0 ||
	    parse_number(&out->rate, c1 + 1, c2, 0, 100) < 0 ||
	    parse_number(&out->full, c2 + 1, end, out->begin, 100000) < 0)
		return -1;
	return 0;
}

void startups_source(unsigned char out[STARTUPS_SOURCE_LEN], const struct sockaddr *sa)
{
	memset(out, 0, STARTUPS_SOURCE_LEN);
	if (sa->sa_family == AF_INET) {
		out[0] = 4;
		memcpy(out + 1, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a =
		    &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(a)) {
			out[0] = 4;
			memcpy(out + 1, a->s6_addr + 12, 4);
		} else {
			out[0] = 6;
			memcpy(out + 1, a->s6_addr, 8);
		}
	}
}

bool startups_is_dropped(const struct startups_limits *l, int startups, unsigned percent)
{
	long chance;

	if (startups < l->begin)
		return false;
	if (startups >= l->full)
		return true;
	/* here BEGIN <= STARTUPS < FULL, so FULL - BEGIN > 0 */
	chance = l->rate + (long)(100 - l->rate) * (startups - l->begin) / (l->full - l->begin);
	return (long)percent < chance;
}
