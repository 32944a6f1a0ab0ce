/* startups: gitd's limits on connections that have not authenticated yet,
 * after OpenSSH's MaxStartups and PerSourceMaxStartups (sshd_config(5)).
 * gitd's connection table (main.c) counts them; this module parses the
 * limits, groups client addresses by source and makes the drop decision. */
#ifndef SLIP_GITD_STARTUPS_H
#define SLIP_GITD_STARTUPS_H

#include <stdbool.h>
#include <sys/socket.h>

/* Bytes of a source key: the address family, then the address bits that
 * count, zeros after. */
#define STARTUPS_SOURCE_LEN 17

struct startups_limits {
	int begin; /* from this many on, refuse with a chance ... */
	int rate;  /* ... of this many percent, rising linearly ... */
	int full;  /* ... to 100% at this many */
};

/* Parses SPEC, "BEGIN:RATE:FULL" (1 <= BEGIN <= FULL <= 100000, RATE a
 * percentage 0..100) or "N" (N:100:N), as OpenSSH's MaxStartups, into *OUT.
 * Returns 0, or -1 when SPEC is not of that form (*OUT then undefined). */
int startups_parse(struct startups_limits *out, const char *spec);

/* Writes the source key of address SA (struct sockaddr_in or _in6) to OUT:
 * connections with equal keys count against one per-source limit. An IPv4
 * address is its own source, as is the IPv4 address inside an IPv4-mapped
 * IPv6 one; an IPv6 address counts by its /64 prefix (a host usually
 * controls a whole /64; OpenSSH's PerSourceNetBlockSize default of /128
 * would let it open one connection per address). Other families all share
 * one key. */
void startups_source(unsigned char out[STARTUPS_SOURCE_LEN], const struct sockaddr *sa);

/* Whether a new connection is refused while STARTUPS connections have not
 * authenticated: never below BEGIN, always from FULL on, and in between
 * when PERCENT (uniform in 0..99, the caller's random draw) is under the
 * chance RATE + (100 - RATE) * (STARTUPS - BEGIN) / (FULL - BEGIN). */
bool startups_is_dropped(const struct startups_limits *l, int startups, unsigned percent);

#endif
