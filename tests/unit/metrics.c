/* Unit tests for gitd/metrics: report lines applied to the counters and the
 * exposition that renders them, for the outbound webhook deliveries and
 * the lines that do not parse. */
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "metrics.h"
#include "tap.h"

static void test_webhooks(void)
{
	struct metrics m = {0};
	struct buf out;

	metrics_record(&m, "delivery ok");
	metrics_record(&m, "delivery ok");
	metrics_record(&m, "delivery error");
	metrics_record(&m, "delivery blocked");
	ok(m.deliveries[0] == 2 && m.deliveries[1] == 1 && m.deliveries[2] == 1,
	   "delivery ok, error and blocked are counted apart");
	ok(m.bad_reports == 0, "  and are no bad reports");
	metrics_record(&m, "delivery maybe");
	metrics_record(&m, "delivery ");
	metrics_record(&m, "delivery ok extra");
	ok(m.bad_reports == 3 && m.deliveries[0] == 2, "an unknown result is a bad report");

	buf_init(&out, 1 << 20);
	ok(metrics_render(&out, &m, 0, 0, 0) == 0, "the exposition renders");
	ok(strstr(buf_str(&out), "# TYPE gitd_webhook_deliveries_total counter\n") != NULL,
	   "gitd_webhook_deliveries_total is a counter");
	ok(strstr(buf_str(&out), "gitd_webhook_deliveries_total{result=\"ok\"} 2\n") &&
	       strstr(buf_str(&out), "gitd_webhook_deliveries_total{result=\"error\"} 1\n") &&
	       strstr(buf_str(&out), "gitd_webhook_deliveries_total{result=\"blocked\"} 1\n"),
	   "  with one sample per result");
	buf_release(&out);
}

static void test_pushes(void)
{
	struct metrics m = {0};

	metrics_record(&m, "push ok 100 20");
	metrics_record(&m, "push error 5 1");
	ok(m.pushes[0] == 1 && m.pushes[1] == 1 && m.push_bytes == 105,
	   "push reports still count as before");
	ok(m.push_seconds.count == 2, "  and land in the histogram");
}

int main(void)
{
	test_webhooks();
	test_pushes();
	return tap_done();
}
