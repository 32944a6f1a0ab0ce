/* Unit tests for gitd/webhook: the X-Slipway-Signature-256 value against
 * RFC 4231's HMAC-SHA256 vectors, the blocked addresses and names, the host
 * shown in logs, and the delivery ids. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "err.h"
#include "tap.h"
#include "delivery.h"

static void test_sign(void)
{
	char sig[DELIVERY_SIGNATURE_SIZE];
	const char *body = "what do ya want for nothing?";
	unsigned char key20[20];

	/* RFC 4231 section 4.3, test case 2 */
	ok(delivery_sign(sig, "Jefe", 4, body, strlen(body)) == 0, "signing works");
	is_str(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
	       "RFC 4231 test case 2, as sha256=HEX");
	/* RFC 4231 section 4.2, test case 1 */
	memset(key20, 0x0b, sizeof(key20));
	ok(delivery_sign(sig, key20, sizeof(key20), "Hi There", 8) == 0 &&
	       !strcmp(sig,
	               "sha256=b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
	   "RFC 4231 test case 1");
	ok(delivery_sign(sig, "Jefe", 4, body, strlen(body) - 1) == 0 &&
	       strcmp(sig,
	              "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
	   "one byte less of body is another signature");
	ok(delivery_sign(sig, "", 0, "", 0) == 0 && strlen(sig) == DELIVERY_SIGNATURE_SIZE - 1,
	   "an empty key and body still sign, 71 characters");
}

static bool blocked4(const char *addr)
{
	struct sockaddr_in in = {.sin_family = AF_INET};

	inet_pton(AF_INET, addr, &in.sin_addr);
	return delivery_is_blocked_address((struct sockaddr *)&in, sizeof(in));
}

static bool blocked6(const char *addr)
{
	struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};

	inet_pton(AF_INET6, addr, &in6.sin6_addr);
	return delivery_is_blocked_address((struct sockaddr *)&in6, sizeof(in6));
}

static void test_addresses(void)
{
	struct sockaddr_in in = {.sin_family = AF_INET};

	ok(blocked4("169.254.169.254"), "169.254.169.254 (metadata) is blocked");
	ok(blocked4("169.254.0.1") && blocked4("169.254.255.255"), "all of 169.254.0.0/16 is");
	ok(!blocked4("169.253.255.255") && !blocked4("169.255.0.0"), "its neighbours are not");
	ok(!blocked4("127.0.0.1"), "loopback is allowed");
	ok(!blocked4("10.0.0.1") && !blocked4("192.168.1.1"), "private ranges are allowed");
	ok(!blocked4("93.184.216.34"), "a public address is allowed");
	ok(blocked6("fe80::1") && blocked6("febf:ffff::1"), "fe80::/10 is blocked");
	ok(!blocked6("fec0::1"), "fec0:: is not in fe80::/10");
	ok(blocked6("fd00:ec2::254"), "fd00:ec2::254 (AWS metadata) is blocked");
	ok(!blocked6("fd00:ec2::253"), "its neighbour is not");
	ok(blocked6("::ffff:169.254.169.254"), "an IPv4-mapped metadata address is blocked");
	ok(!blocked6("::ffff:127.0.0.1") && !blocked6("::1"), "IPv6 and mapped loopback are not");
	ok(!blocked6("2001:db8::1"), "a global IPv6 address is not");
	ok(delivery_is_blocked_address((struct sockaddr *)&in, sizeof(in) - 1),
	   "a truncated address is blocked");
	in.sin_family = AF_UNIX;
	ok(delivery_is_blocked_address((struct sockaddr *)&in, sizeof(in)),
	   "another address family is blocked");
}

static void test_hosts(void)
{
	char host[64];

	ok(delivery_is_blocked_host("metadata.google.internal"), "metadata.google.internal");
	ok(delivery_is_blocked_host("Metadata.Google.Internal."), "  in any case, fully qualified");
	ok(delivery_is_blocked_host("metadata"), "metadata");
	ok(!delivery_is_blocked_host("metadata.example.com"), "metadata.example.com is allowed");
	ok(!delivery_is_blocked_host("google.internal"), "google.internal is allowed");

	ok(delivery_url_host(host, sizeof(host), "https://user:pw@hooks.example/p/a?token=x") == 0,
	   "the host of a URL with user, path and query");
	is_str(host, "hooks.example", "  is the host alone");
	ok(delivery_url_host(host, sizeof(host), "http://127.0.0.1:8080/x?y") == 0 &&
	       !strcmp(host, "127.0.0.1:8080"),
	   "a port given is kept");
	ok(delivery_url_host(host, sizeof(host), "http://[::1]:81/") == 0 &&
	       !strcmp(host, "[::1]:81"),
	   "an IPv6 host keeps its brackets");
	err_clear();
	ok(delivery_url_host(host, sizeof(host), "ftp://h/") == -1 && host[0] == '\0' &&
	       strstr(err_msg(), "not an http or https URL"),
	   "ftp is refused");
	ok(delivery_url_host(host, sizeof(host), "http://") == -1, "a URL without host is refused");
	ok(delivery_url_host(host, 8, "http://a-long-host-name/") == -1 && host[0] == '\0',
	   "a host that does not fit is refused");
}

static void test_ids(void)
{
	char a[DELIVERY_ID_SIZE], b[DELIVERY_ID_SIZE];

	ok(delivery_id(a) == 0 && delivery_id(b) == 0, "two delivery ids");
	ok(strlen(a) == 36 && a[8] == '-' && a[13] == '-' && a[18] == '-' && a[23] == '-',
	   "a UUID's shape");
	ok(a[14] == '4' && strchr("89ab", a[19]), "version 4, variant 10");
	ok(strcmp(a, b) != 0, "two ids differ");
}

int main(void)
{
	test_sign();
	test_addresses();
	test_hosts();
	test_ids();
	return tap_done();
}
