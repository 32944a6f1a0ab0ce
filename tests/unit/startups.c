/* Unit tests for gitd's limits on connections not yet authenticated
 * (startups.h): --max-startups parsing, the random early drop, and which
 * client addresses count as one source. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "startups.h"
#include "tap.h"

static void parses(const char *spec, int begin, int rate, int full)
{
	struct startups_limits l;

	ok(startups_parse(&l, spec) == 0 && l.begin == begin && l.rate == rate && l.full == full,
	   "parses --max-startups %s as %d:%d:%d", spec, begin, rate, full);
}

static void refuses(const char *spec)
{
	struct startups_limits l;

	ok(startups_parse(&l, spec) < 0, "refuses --max-startups '%s'", spec);
}

static void test_parse(void)
{
	parses("10:30:100", 10, 30, 100);
	parses("5", 5, 100, 5);
	parses("3:0:3", 3, 0, 3);
	parses("1:100:100000", 1, 100, 100000);
	refuses("");
	refuses("0");
	refuses("10:30");
	refuses("10:30:100:1");
	refuses("10:101:100");
	refuses("10:30:9");
	refuses("-1:30:100");
	refuses("10:+30:100");
	refuses("10: 30:100");
	refuses("10:30:100x");
	refuses("10::100");
	refuses("100001");
}

/* How many of the 100 draws refuse a connection at STARTUPS. */
static int drops(const struct startups_limits *l, int startups)
{
	int n = 0;

	for (unsigned p = 0; p < 100; p++)
		n += startups_is_dropped(l, startups, p);
	return n;
}

static void test_drop(void)
{
	struct startups_limits l = {10, 30, 100};
	struct startups_limits hard = {4, 100, 4};

	ok(drops(&l, 0) == 0 && drops(&l, 9) == 0, "below BEGIN nothing is refused");
	ok(drops(&l, 10) == 30, "at BEGIN RATE%% are refused (%d)", drops(&l, 10));
	ok(drops(&l, 55) == 65, "half way 65%% are refused (%d)", drops(&l, 55));
	ok(drops(&l, 99) == 99, "just under FULL 99%% are refused (%d)", drops(&l, 99));
	ok(drops(&l, 100) == 100 && drops(&l, 500) == 100, "from FULL on all are refused");
	ok(drops(&hard, 3) == 0 && drops(&hard, 4) == 100, "N alone: all below N, none from N");
	for (int s = 10; s < 100; s++)
		if (!ok(drops(&l, s) <= drops(&l, s + 1), "the chance does not fall from %d", s))
			break;
}

static void source(unsigned char out[STARTUPS_SOURCE_LEN], const char *addr)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(addr, ':')) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons(1234);
		inet_pton(AF_INET6, addr, &a->sin6_addr);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		a->sin_family = AF_INET;
		a->sin_port = htons(5678);
		inet_pton(AF_INET, addr, &a->sin_addr);
	}
	startups_source(out, (struct sockaddr *)&ss);
}

static void same(const char *a, const char *b, bool want)
{
	unsigned char ka[STARTUPS_SOURCE_LEN], kb[STARTUPS_SOURCE_LEN];

	source(ka, a);
	source(kb, b);
	ok(!memcmp(ka, kb, sizeof(ka)) == want, "%s and %s are %s", a, b,
	   want ? "one source" : "different sources");
}

static void test_source(void)
{
	same("192.0.2.1", "192.0.2.1", true);
	same("192.0.2.1", "192.0.2.2", false);
	same("192.0.2.1", "::ffff:192.0.2.1", true);
	same("::ffff:192.0.2.1", "::ffff:192.0.2.2", false);
	same("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", true);
	same("2001:db8:1:2::1", "2001:db8:1:3::1", false);
	same("2001:db8::1", "::ffff:32.1.13.184", false);
	same("0.0.0.0", "::", false);
}

int main(void)
{
	test_parse();
	test_drop();
	test_source();
	return tap_done();
}
