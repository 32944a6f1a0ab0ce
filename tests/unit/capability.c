/* Unit tests for gitd/capability: splitting a v0 capability list into
 * names and values, the empty tokens a client may leave, and the checks. */
#include <string.h>

#include "capability.h"
#include "tap.h"

/* The list LIST as "name|value name ..." ("name" alone when no value). */
static void split(char *out, size_t size, const char *list, size_t len)
{
	const char *p = list;
	struct capability cap;
	size_t n = 0;

	out[0] = '\0';
	while (capability_next(&cap, &p, list + len) && n < size) {
		n += (size_t)snprintf(out + n, size - n, "%s%.*s", n ? " " : "", (int)cap.name_len,
		                      cap.name);
		if (cap.value && n < size)
			n += (size_t)snprintf(out + n, size - n, "|%.*s", (int)cap.value_len,
			                      cap.value);
	}
}

static void test_split(void)
{
	const char *push = " report-status side-band-64k quiet object-format=sha1 "
	                   "agent=git/2.39.2";
	char got[256];

	split(got, sizeof(got), push, strlen(push));
	is_str(got, "report-status side-band-64k quiet object-format|sha1 agent|git/2.39.2",
	       "a push's list splits into names and values, the leading space skipped");
	split(got, sizeof(got), "a  b ", 5);
	is_str(got, "a b", "two spaces and a trailing space make no empty capability");
	split(got, sizeof(got), "", 0);
	is_str(got, "", "an empty list has no capability");
	split(got, sizeof(got), "   ", 3);
	is_str(got, "", "a list of spaces has no capability");
	split(got, sizeof(got), "x= y=a=b", 8);
	is_str(got, "x| y|a=b", "an empty value is a value; the value runs past a second '='");
	split(got, sizeof(got), "side-band-64k ofs-delta", 9);
	is_str(got, "side-band", "the list ends at its length, not at a NUL");
}

static void test_checks(void)
{
	const char *list = "side-band side-band-64k=1 object-format=sha256 object-format";
	const char *p = list, *end = list + strlen(list);
	struct capability cap;

	ok(capability_next(&cap, &p, end) && capability_is(&cap, "side-band") &&
	       !capability_is(&cap, "side-band-64k") && !capability_is(&cap, "side"),
	   "capability_is matches the whole name");
	ok(capability_next(&cap, &p, end) && !capability_is(&cap, "side-band-64k") &&
	       capability_is_named(&cap, "side-band-64k"),
	   "a capability with a value is named, but is not the bare name");
	ok(capability_next(&cap, &p, end) && capability_is_named(&cap, "object-format") &&
	       capability_value_is(&cap, "sha256") && !capability_value_is(&cap, "sha1") &&
	       !capability_value_is(&cap, "sha"),
	   "capability_value_is compares the whole value");
	ok(capability_next(&cap, &p, end) && capability_is(&cap, "object-format") &&
	       !capability_value_is(&cap, ""),
	   "without '=' there is no value, not even an empty one");
	ok(!capability_next(&cap, &p, end) && p == end, "the list ends");
}

static void test_oid(void)
{
	const char *hex = "0123456789abcdefABCDEF0123456789abcdef01";
	git_oid id, want;

	git_oid_fromstr(&want, "0123456789abcdefabcdef0123456789abcdef01");
	ok(protocol_parse_oid(&id, hex, 40) && git_oid_equal(&id, &want),
	   "40 hex digits of either case are an obj-id");
	ok(protocol_parse_oid(NULL, hex, 40), "the id may be only checked");
	ok(!protocol_parse_oid(&id, hex, 39), "39 digits are not an obj-id");
	ok(!protocol_parse_oid(&id, "0123456789abcdefABCDEF0123456789abcdef0", 41),
	   "41 bytes are not an obj-id");
	ok(!protocol_parse_oid(&id, "g123456789abcdefABCDEF0123456789abcdef01", 40),
	   "a letter past f is refused");
	ok(!protocol_parse_oid(&id, "0123456789abcdefABCDEF0123456789abcdef 1", 40),
	   "a space is refused");
}

int main(void)
{
	test_split();
	test_checks();
	test_oid();
	return tap_done();
}
