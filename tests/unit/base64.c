/* Unit tests of lib/base64: RFC 4648 section 10's test vectors both ways,
 * the lenient decoder's line breaks, and the strict decoder refusing what
 * is not exactly base64 (length, alphabet, padding, whitespace). */
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "base64.h"
#include "buf.h"
#include "err.h"

/* RFC 4648 section 10 */
static const char *const vectors[][2] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

#define N_VECTORS (sizeof(vectors) / sizeof(vectors[0]))

static void test_encode(void)
{
	const unsigned char bin[] = {0x00, 0xff, 0xfe, 0x3e, 0x3f};
	char *out = NULL;

	for (size_t i = 0; i < N_VECTORS; i++) {
		is_int(base64_encode(&out, vectors[i][0], strlen(vectors[i][0])), 0, "encodes");
		is_str(out, vectors[i][1], vectors[i][1]);
		free(out);
	}
	is_int(base64_encode(&out, bin, sizeof(bin)), 0, "encodes bytes with '+' and '/'");
	is_str(out, "AP/+Pj8=", "AP/+Pj8= (NUL bytes included)");
	free(out);
}

static void test_decode_strict(void)
{
	static const char *const bad[] = {
	    "Zg=",      /* not a multiple of 4 */
	    "Zg",       /* padding left out */
	    "Z===",     /* three padding characters */
	    "====",     /* padding alone */
	    "Zg==Zg==", /* padding inside */
	    "Zm=v",     /* padding inside a group */
	    "Zm9v\n",   /* a line break */
	    " Zm9v",    /* leading whitespace */
	    "Zm9 ",     /* a space */
	    "Zm9*",     /* outside the alphabet */
	    "Zm9-",     /* the URL-safe alphabet's '-' */
	    "Zm9_",     /* the URL-safe alphabet's '_' */
	};
	struct buf b;

	for (size_t i = 0; i < N_VECTORS; i++) {
		buf_init(&b, 64);
		is_int(base64_decode_strict(&b, vectors[i][1], strlen(vectors[i][1])), 0,
		       "decodes");
		is_str(buf_str(&b), vectors[i][0], vectors[i][1]);
		is_int(b.len, strlen(vectors[i][0]),
		       "as many bytes as encoded (padding not counted)");
		buf_release(&b);
	}
	buf_init(&b, 64);
	is_int(base64_decode_strict(&b, "AP/+Pj8=", 8), 0, "decodes '+' and '/'");
	ok(b.len == 5 && !memcmp(b.data, "\x00\xff\xfe\x3e\x3f", 5), "to the bytes, NUL included");
	buf_release(&b);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		buf_init(&b, 64);
		is_int(base64_decode_strict(&b, bad[i], strlen(bad[i])), BASE64_EINVALID,
		       "strict decoding refuses a malformed text");
		is_int(b.len, 0, "and appends nothing");
		buf_release(&b);
	}
	buf_init(&b, 64);
	base64_decode_strict(&b, "Zm9*", 4);
	ok(strstr(err_msg(), "outside its alphabet at offset 3"), "and says where: %s", err_msg());
	buf_release(&b);
	buf_init(&b, 5);
	is_int(base64_decode_strict(&b, "Zm9vYmFy", 8), -1,
	       "text decoding past the buffer's maximum is an error, not malformed");
	buf_release(&b);
}

static void test_decode_lenient(void)
{
	struct buf b;

	buf_init(&b, 64);
	is_int(base64_decode(&b, "Zm9v\nYmFy\n", 64), 0, "lenient decoding takes line breaks");
	is_str(buf_str(&b), "foobar", "foobar");
	buf_release(&b);
	buf_init(&b, 64);
	is_int(base64_decode(&b, "Zm9v*mFy", 64), -1, "and still refuses a foreign character");
	buf_release(&b);
	buf_init(&b, 64);
	is_int(base64_decode(&b, "Zm9vYmFy", 4), -1, "and text over its limit");
	buf_release(&b);
}

int main(void)
{
	test_encode();
	test_decode_strict();
	test_decode_lenient();
	return tap_done();
}
