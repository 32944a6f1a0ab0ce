/* metrics: counters from connection reports, rendered for Prometheus (see
 * metrics.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "banned.h"

static const double bucket_le[METRICS_BUCKETS] = {0.01, 0.05, 0.1, 0.25, 0.5, 1,  2.5,
                                                  5,    10,   30,  60,   120, 300};

/* Auth failure reasons reported by ssh.c; the last catches the rest. */
static const char *const reasons[METRICS_REASONS] = {
    "unknown_key", "unknown_user", "bad_signature", "access_denied", "bad_request", "other"};

/* Limits that end a connection: "closed REASON" reports; "login_grace_time"
 * gitd records itself when a connection process dies of its alarm. The last
 * catches the rest. */
static const char *const close_reasons[METRICS_CLOSE_REASONS] = {
    "login_grace_time", "max_auth_tries", "max_session_time", "min_transfer_rate", "other"};

/* "delivery RESULT" reports, in struct metrics' deliveries[] order. */
static const char *const delivery_results[METRICS_DELIVERY_RESULTS] = {"ok", "error", "blocked"};
/* Webhook requests by what came of them ("webhook RESULT" reports): the
 * answered ones first, then the refusals; the last catches the rest. */
static const char *const webhook_results[METRICS_WEBHOOK_RESULTS] = {
    "accepted",       "ping",
    "ignored",        "bad_signature",
    "unknown_remote", "non_deploying_branch",
    "body_too_large", "replayed_delivery",
    "bad_request",    "error",
    "other"};

static const char *const refusals[METRICS_REFUSALS] = {"max_connections", "max_startups",
                                                       "per_source_max_startups"};

const char *metrics_refusal_name(enum metrics_refusal r)
{
	return refusals[r];
}

static void observe(struct metrics_histogram *h, double seconds)
{
	int i;

	for (i = 0; i < METRICS_BUCKETS - 1 && seconds > bucket_le[i]; i++)
		;
	if (seconds <= bucket_le[i])
		h->counts[i]++;
	h->count++;
	h->sum += seconds;
}

void metrics_record(struct metrics *m, const char *line)
{
	char what[16], result[16];
	unsigned long long bytes, ms;

	if (!strncmp(line, "auth_failure ", 13)) {
		int i;

		for (i = 0; i < METRICS_REASONS - 1 && strcmp(line + 13, reasons[i]); i++)
			;
		m->auth_failures[i]++;
		return;
	}
	if (!strncmp(line, "closed ", 7)) {
		int i;

		for (i = 0; i < METRICS_CLOSE_REASONS - 1 && strcmp(line + 7, close_reasons[i]);
		     i++)
			;
		m->closed[i]++;
		return;
	}
	if (!strncmp(line, "webhook ", 8)) {
		int i;

		for (i = 0; i < METRICS_WEBHOOK_RESULTS - 1 && strcmp(line + 8, webhook_results[i]);
		     i++)
			;
		m->webhooks[i]++;
		return;
	}
	if (!strncmp(line, "delivery ", 9)) {
		for (int i = 0; i < METRICS_DELIVERY_RESULTS; i++)
			if (!strcmp(line + 9, delivery_results[i])) {
				m->deliveries[i]++;
				return;
			}
		m->bad_reports++;
		return;
	}
	if (sscanf(line, "%15s %15s %llu %llu", what, result, &bytes, &ms) != 4 ||
	    (strcmp(result, "ok") && strcmp(result, "error"))) {
		m->bad_reports++;
		return;
	}
	if (!strcmp(what, "push")) {
		m->pushes[strcmp(result, "ok") != 0]++;
		m->push_bytes += bytes;
		observe(&m->push_seconds, (double)ms / 1000.0);
	} else if (!strcmp(what, "fetch")) {
		m->fetches[strcmp(result, "ok") != 0]++;
		m->fetch_bytes += bytes;
		observe(&m->fetch_seconds, (double)ms / 1000.0);
	} else {
		m->bad_reports++;
	}
}

static int histogram(struct buf *out, const char *name, const char *help,
                     const struct metrics_histogram *h)
{
	unsigned long long cum = 0;
	int ret = buf_addf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);

	for (int i = 0; i < METRICS_BUCKETS && ret == 0; i++) {
		cum += h->counts[i];
		ret = buf_addf(out, "%s_bucket{le=\"%g\"} %llu\n", name, bucket_le[i], cum);
	}
	if (ret == 0)
		ret = buf_addf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.3f\n%s_count %llu\n",
		               name, h->count, name, h->sum, name, h->count);
	return ret;
}

/* Appends counter NAME with its HELP text and one sample per reason: N
 * reasons LABELS[i] with values VALUES[i], in that order. */
static int render_by_reason(struct buf *out, const char *name, const char *help,
                            const char *const *labels, const unsigned long long *values, int n)
{
	int ret = buf_addf(out, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);

	for (int i = 0; i < n; i++)
		ret |= buf_addf(out, "%s{reason=\"%s\"} %llu\n", name, labels[i], values[i]);
	return ret;
}

int metrics_render(struct buf *out, const struct metrics *m, int active, size_t remotes,
                   size_t keys)
{
	int ret = 0;

	ret |= buf_addf(out,
	                "# HELP gitd_connections_total SSH connections accepted.\n"
	                "# TYPE gitd_connections_total counter\n"
	                "gitd_connections_total %llu\n"
	                "# HELP gitd_connections_active Connections being served.\n"
	                "# TYPE gitd_connections_active gauge\n"
	                "gitd_connections_active %d\n",
	                m->connections, active);
	ret |= render_by_reason(out, "gitd_connections_refused_total",
	                        "Connections closed at accept, by the limit that refused them.",
	                        refusals, m->refused, METRICS_REFUSALS);
	ret |= render_by_reason(out, "gitd_connections_closed_total",
	                        "Connections ended by a limit, by limit.", close_reasons, m->closed,
	                        METRICS_CLOSE_REASONS);
	ret |= render_by_reason(out, "gitd_auth_failures_total",
	                        "Refused authentications and requests, by reason.", reasons,
	                        m->auth_failures, METRICS_REASONS);
	ret |= buf_addf(out,
	                "# HELP gitd_pushes_total Pushes served (receive-pack), by result.\n"
	                "# TYPE gitd_pushes_total counter\n"
	                "gitd_pushes_total{result=\"ok\"} %llu\n"
	                "gitd_pushes_total{result=\"error\"} %llu\n"
	                "# HELP gitd_fetches_total Clones and fetches served (upload-pack), by "
	                "result.\n"
	                "# TYPE gitd_fetches_total counter\n"
	                "gitd_fetches_total{result=\"ok\"} %llu\n"
	                "gitd_fetches_total{result=\"error\"} %llu\n"
	                "# HELP gitd_transfer_bytes_total Protocol bytes in and out, by service.\n"
	                "# TYPE gitd_transfer_bytes_total counter\n"
	                "gitd_transfer_bytes_total{service=\"receive-pack\"} %llu\n"
	                "gitd_transfer_bytes_total{service=\"upload-pack\"} %llu\n",
	                m->pushes[0], m->pushes[1], m->fetches[0], m->fetches[1], m->push_bytes,
	                m->fetch_bytes);
	ret |=
	    histogram(out, "gitd_push_duration_seconds", "Time to serve a push.", &m->push_seconds);
	ret |= histogram(out, "gitd_fetch_duration_seconds", "Time to serve a clone or fetch.",
	                 &m->fetch_seconds);
	ret |= buf_addf(out, "# HELP gitd_webhook_deliveries_total Outbound webhook deliveries, by "
	                     "result.\n# TYPE gitd_webhook_deliveries_total counter\n");
	for (int i = 0; i < METRICS_DELIVERY_RESULTS; i++)
		ret |= buf_addf(out, "gitd_webhook_deliveries_total{result=\"%s\"} %llu\n",
		                delivery_results[i], m->deliveries[i]);
	ret |= render_by_reason(out, "gitd_webhooks_total",
	                        "Webhook requests, by result: accepted, ping, ignored, or why "
	                        "they were refused.",
	                        webhook_results, m->webhooks, METRICS_WEBHOOK_RESULTS);
	ret |= buf_addf(out,
	                "# HELP gitd_remotes Remotes served.\n"
	                "# TYPE gitd_remotes gauge\n"
	                "gitd_remotes %zu\n"
	                "# HELP gitd_authorized_keys Distinct authorized public keys.\n"
	                "# TYPE gitd_authorized_keys gauge\n"
	                "gitd_authorized_keys %zu\n"
	                "# HELP gitd_bad_reports_total Malformed reports from connection "
	                "processes.\n"
	                "# TYPE gitd_bad_reports_total counter\n"
	                "gitd_bad_reports_total %llu\n",
	                remotes, keys, m->bad_reports);
	return ret ? -1 : 0;
}
