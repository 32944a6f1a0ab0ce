/* Unit tests of lib/clock's wall clock times: RFC 3339 parsing (UTC, a
 * fraction, offsets, fields out of range) and formatting, both ways. */
#include <string.h>
#include <time.h>

#include "tap.h"
#include "clock.h"
#include "err.h"

/* 2024-05-01T12:00:00Z */
#define MAY_FIRST_NOON 1714564800

static void test_parse(void)
{
	static const char *const bad[] = {
	    "2024-05-01 12:00:00Z",  /* no T */
	    "2024-05-01T12:00:00",   /* no zone */
	    "2024-05-01T12:00Z",     /* no seconds */
	    "2024-5-01T12:00:00Z",   /* a one-digit month */
	    "+024-05-01T12:00:00Z",  /* a sign in the year */
	    "2024-05-01T12:00:00.Z", /* a fraction without digits */
	    "2024-05-01T12:00:00Zjunk",
	    "2024-05-01T12:00:00+0200", /* an offset without ':' */
	    "2024-05-01T12:00:00+24:00",
	    "2024-13-01T12:00:00Z", /* month 13 */
	    "2024-02-30T12:00:00Z", /* February 30th */
	    "2023-02-29T12:00:00Z", /* not a leap year */
	    "2024-05-01T24:00:00Z",
	    "2024-05-01T12:60:00Z",
	    "2024-05-01T12:00:60Z",
	    "",
	    "garbage",
	};
	/* each the same instant, 2024-05-01T12:00:00Z */
	static const char *const noon[][2] = {
	    {"2024-05-01T12:00:00Z", "a metav1.Time parses"},
	    {"2024-05-01T12:00:00.123456Z", "a metav1.MicroTime parses, its fraction dropped"},
	    {"2024-05-01T14:00:00+02:00", "a positive offset is taken off"},
	    {"2024-05-01T06:30:00-05:30", "a negative offset is added"},
	    {"2024-05-01t12:00:00z", "lowercase t and z (RFC 3339 section 5.6's note)"},
	};
	time_t t = 0;

	for (size_t i = 0; i < sizeof(noon) / sizeof(noon[0]); i++) {
		t = 0;
		ok(clock_parse_rfc3339(&t, noon[i][0]) == 0 && t == MAY_FIRST_NOON, "%s: %s",
		   noon[i][1], noon[i][0]);
	}
	is_int(clock_parse_rfc3339(&t, "2024-02-29T00:00:00Z"), 0, "a leap day parses");
	is_int(clock_parse_rfc3339(&t, "1970-01-01T00:00:00Z"), 0, "the epoch parses");
	is_int(t, 0, "as 0");
	t = 42;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		is_int(clock_parse_rfc3339(&t, bad[i]), -1, bad[i]);
	is_int(t, 42, "a refused time leaves *OUT alone");
	ok(strstr(err_msg(), "is not RFC 3339"), "the message says what is expected: %s",
	   err_msg());
	is_int(clock_parse_rfc3339(&t, NULL), -1, "NULL is refused");
}

static void test_format(void)
{
	struct timespec ts = {.tv_sec = MAY_FIRST_NOON, .tv_nsec = 45999999};
	char buf[CLOCK_RFC3339_SIZE];
	time_t t = 0, now = time(NULL);

	clock_format_rfc3339(buf, MAY_FIRST_NOON);
	is_str(buf, "2024-05-01T12:00:00Z", "a time formats as a metav1.Time");
	clock_format_rfc3339(buf, 0);
	is_str(buf, "1970-01-01T00:00:00Z", "the epoch");
	clock_format_rfc3339_ms(buf, &ts);
	is_str(buf, "2024-05-01T12:00:00.045Z", "with milliseconds, the rest dropped");
	ts.tv_nsec = 0;
	clock_format_rfc3339_ms(buf, &ts);
	is_str(buf, "2024-05-01T12:00:00.000Z", "zero milliseconds are written");
	clock_now_rfc3339(buf);
	is_int(clock_parse_rfc3339(&t, buf), 0, "the time now parses back");
	ok(t >= now && t <= time(NULL), "to now: %s", buf);
	clock_format_rfc3339_ms(buf, &ts);
	is_int(clock_parse_rfc3339(&t, buf), 0, "a time with milliseconds parses back");
	is_int(t, MAY_FIRST_NOON, "to the same second");
}

int main(void)
{
	test_parse();
	test_format();
	return tap_done();
}
