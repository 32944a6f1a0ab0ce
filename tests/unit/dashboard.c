/* Unit tests of the dashboard's Host check (dashboard.h), its guard against
 * DNS rebinding: only the address it listens on, or localhost when that is
 * a loopback address, with the exact port. */
#include "tap.h"
#include "dashboard.h"

static void test_host(void)
{
	ok(dashboard_host_is_allowed("127.0.0.1:8001", "127.0.0.1", 8001), "the listening address");
	ok(dashboard_host_is_allowed("localhost:8001", "127.0.0.1", 8001), "localhost on loopback");
	ok(dashboard_host_is_allowed("LocalHost:8001", "127.0.0.1", 8001),
	   "localhost in any case (host names are case-insensitive)");
	ok(dashboard_host_is_allowed("localhost:8001", "127.0.0.2", 8001),
	   "localhost on another loopback address");
	ok(dashboard_host_is_allowed("[::1]:8001", "::1", 8001), "IPv6 loopback in brackets");
	ok(dashboard_host_is_allowed("localhost:8001", "::1", 8001), "localhost on IPv6 loopback");
	ok(!dashboard_host_is_allowed(NULL, "127.0.0.1", 8001), "no Host header is refused");
	ok(!dashboard_host_is_allowed("", "127.0.0.1", 8001), "an empty Host is refused");
	ok(!dashboard_host_is_allowed("evil.example:8001", "127.0.0.1", 8001),
	   "a DNS name pointing at loopback is refused");
	ok(!dashboard_host_is_allowed("127.0.0.1", "127.0.0.1", 8001), "a Host without port");
	ok(!dashboard_host_is_allowed("127.0.0.1:8002", "127.0.0.1", 8001), "another port");
	ok(!dashboard_host_is_allowed("127.0.0.1:80011", "127.0.0.1", 8001), "a longer port");
	ok(!dashboard_host_is_allowed("127.0.0.1:8001.evil.example", "127.0.0.1", 8001),
	   "a name that starts with the address");
	ok(!dashboard_host_is_allowed("localhost.evil.example:8001", "127.0.0.1", 8001),
	   "a name that starts with localhost");
	ok(!dashboard_host_is_allowed("localhost:8001", "192.0.2.10", 8001),
	   "localhost when listening on a non-loopback address");
	ok(dashboard_host_is_allowed("192.0.2.10:8001", "192.0.2.10", 8001),
	   "a non-loopback address it listens on");
	ok(!dashboard_host_is_allowed("::1:8001", "::1", 8001), "IPv6 without brackets");
}

int main(void)
{
	test_host();
	return tap_done();
}
