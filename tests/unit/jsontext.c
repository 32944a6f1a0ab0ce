/* Unit tests for lib/jsontext: lossy JSON strings of untrusted text. */
#include <stdint.h>
#include <string.h>
#include <jansson.h>

#include "jsontext.h"
#include "tap.h"

/* Checks that jsontext_lossy(S, MAX) is the JSON string WANT. */
static void check(const char *s, size_t max, const char *want, const char *what)
{
	json_t *j = jsontext_lossy(s, max);

	ok(j && json_is_string(j) && !strcmp(json_string_value(j), want), "%s", what);
	json_decref(j);
}

int main(void)
{
	check("plain ascii", SIZE_MAX, "plain ascii", "ASCII is kept as it is");
	check("gr\xc3\xbc\xc3\x9f", SIZE_MAX, "gr\xc3\xbc\xc3\x9f", "valid UTF-8 is kept");
	check("bad \xff byte \xc3\xbc", SIZE_MAX, "bad ? byte ??",
	      "invalid UTF-8: every non-ASCII byte becomes '?'");
	check(NULL, SIZE_MAX, "", "NULL is the empty string");
	check("abcdef", 3, "abc", "longer text is cut at MAX bytes");
	check("ab\xc3\xbc", 3, "ab", "a cut never splits a UTF-8 character");
	check("ab\xe2\x82\xac", 4, "ab", "a cut backs out of a three-byte character");
	return tap_done();
}
