/* metrics: gitd's counters and their Prometheus text exposition (format
 * 0.0.4, prometheus.io/docs/instrumenting/exposition_formats).
 *
 * Connection processes report what happened as short lines on a pipe shared
 * with gitd (each line one write(2) of less than PIPE_BUF bytes, so lines do
 * not interleave):
 *   "auth_failure REASON\n"
 *   "authenticated PID\n"        (the connection process PID authenticated; gitd
 *                                 applies it to its connection table, it is
 *                                 no counter)
 *   "closed REASON\n"             (a limit ended the connection, see
 *                                 metrics_closed_reason)
 *   "push ok|error BYTES DURATION_MS\n"
 *   "fetch ok|error BYTES DURATION_MS\n"
 *   "delivery ok|error|blocked\n" (an outbound webhook delivery, from a
 *                                 pipeline worker: delivered, failed, or
 *                                 refused for its address; delivery.h)
 *   "webhook RESULT\n"            (the webhook listener, webhook.h: accepted,
 *                                 ping, ignored, or the reason of a refusal,
 *                                 see metrics.c)
 * gitd parses them with metrics_record and serves metrics_render on
 * /metrics. */
#ifndef SLIP_GITD_METRICS_H
#define SLIP_GITD_METRICS_H

#include <stddef.h>

#include "buf.h"

#define METRICS_BUCKETS 13
#define METRICS_REASONS 6
#define METRICS_CLOSE_REASONS 5
#define METRICS_DELIVERY_RESULTS 3 /* ok, error, blocked */
#define METRICS_WEBHOOK_RESULTS 11

/* Why gitd refused a connection at accept(2), before forking. */
enum metrics_refusal {
	METRICS_REFUSED_MAX_CONNECTIONS, /* --max-connections open */
	METRICS_REFUSED_MAX_STARTUPS,    /* --max-startups unauthenticated */
	METRICS_REFUSED_PER_SOURCE,      /* --per-source-max-startups */
	METRICS_REFUSALS
};

struct metrics_histogram {
	unsigned long long counts[METRICS_BUCKETS]; /* per bucket, not cumulative */
	unsigned long long count;                   /* observations */
	double sum;                                 /* seconds */
};

struct metrics {
	unsigned long long connections;                    /* accepted */
	unsigned long long refused[METRICS_REFUSALS];      /* by enum metrics_refusal */
	unsigned long long closed[METRICS_CLOSE_REASONS];  /* ended by a limit, see .c */
	unsigned long long auth_failures[METRICS_REASONS]; /* by reason, see .c */
	unsigned long long pushes[2];                      /* [0] ok, [1] error */
	unsigned long long fetches[2];
	unsigned long long push_bytes, fetch_bytes;
	unsigned long long deliveries[METRICS_DELIVERY_RESULTS]; /* outbound, by result */
	struct metrics_histogram push_seconds, fetch_seconds;
	unsigned long long webhooks[METRICS_WEBHOOK_RESULTS]; /* by result, see .c */
	unsigned long long bad_reports;                       /* lines that did not parse */
};

/* Applies one report LINE (without the newline) to M. Unknown or malformed
 * lines count in bad_reports. */
void metrics_record(struct metrics *m, const char *line);

/* The label value of refusal R ("max_connections", "max_startups",
 * "per_source_max_startups"); static. */
const char *metrics_refusal_name(enum metrics_refusal r);

/* Appends the exposition of M, with the gauges ACTIVE (connections now),
 * REMOTES and KEYS (table size), to OUT. Returns 0 or -1 with err_msg(). */
int metrics_render(struct buf *out, const struct metrics *m, int active, size_t remotes,
                   size_t keys);

#endif
