/* Unit tests of image references: distribution's grammar (cases read off
 * the expressions documented in github.com/distribution/reference
 * reference.go), the split into parts, the references the builder pushes,
 * gitkube's image names and names pinned by digest. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "err.h"
#include "imageref.h"

#define SHA1 "0123456789abcdef0123456789abcdef01234567"
#define SHA256 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* The part of REF at OFF, LEN as a string in a static buffer. */
static const char *part(const char *ref, size_t off, size_t len)
{
	static char buf[512];

	snprintf(buf, sizeof(buf), "%.*s", (int)len, ref + off);
	return buf;
}

static void test_parse(void)
{
	const char *ref = "reg.example.com:5000/team/app:v1.0@sha256:" SHA256;
	struct imageref r;

	is_int(imageref_parse(&r, ref), 0, "a reference with every part parses");
	is_str(part(ref, 0, r.domain_len), "reg.example.com:5000", "the domain keeps its port");
	is_str(part(ref, 0, r.name_len), "reg.example.com:5000/team/app", "the name");
	is_str(part(ref, r.tag_off, r.tag_len), "v1.0", "the tag");
	is_str(part(ref, r.digest_off, r.digest_len), "sha256:" SHA256, "the digest");

	ref = "team/app:v1";
	is_int(imageref_parse(&r, ref), 0, "a name without a registry parses");
	is_int(r.domain_len, 0, "a first component without '.' or ':' is no domain (docker.io's)");
	is_str(part(ref, 0, r.name_len), "team/app", "and is part of the name");
	is_int(r.digest_len, 0, "no digest");

	ref = "localhost/app";
	is_int(imageref_parse(&r, ref), 0, "localhost/app parses");
	is_str(part(ref, 0, r.domain_len), "localhost", "localhost is a domain");
	is_int(r.tag_len, 0, "no tag");

	ref = "localhost:5000";
	is_int(imageref_parse(&r, ref), 0, "localhost:5000 alone parses");
	is_int(r.domain_len, 0, "as a name without a domain");
	is_str(part(ref, r.tag_off, r.tag_len), "5000", "and tag 5000");

	ref = "[2001:db8::1]:5000/app:1";
	is_int(imageref_parse(&r, ref), 0, "an IPv6 registry with a port parses");
	is_str(part(ref, 0, r.domain_len), "[2001:db8::1]:5000",
	       "the bracketed address is the domain");
	is_str(part(ref, r.tag_off, r.tag_len), "1", "the tag after the last '/'");

	ref = "reg.io:5000/app@sha256:" SHA256;
	is_int(imageref_parse(&r, ref), 0, "a digest without a tag parses");
	is_int(r.tag_len, 0, "the port is no tag");
	is_str(part(ref, 0, r.name_len), "reg.io:5000/app", "the name ends at the '@'");

	is_int(imageref_parse(&r, "upper/Case"), -1, "an uppercase path fails");
	ok(strstr(err_msg(), "invalid image reference \"upper/Case\""), "and says so: %s",
	   err_msg());
	is_int(r.name_len, 0, "and leaves the parts zeroed");
	is_int(imageref_parse(&r, NULL), -1, "NULL fails");
}

static void test_image_name(void)
{
	char *ref = NULL, long_name[256];

	is_int(imageref_name(&ref, "registry.example.com/team", "default", "app", "web", "nginx",
	                     SHA1),
	       0, "gitkube name from its parts");
	is_str(ref, "registry.example.com/team/default-app-web-nginx:" SHA1,
	       "is REGISTRY/NAMESPACE-REMOTE-DEPLOYMENT-CONTAINER:COMMIT");
	free(ref);
	is_int(imageref_name(&ref, "127.0.0.1:5000//", "ns", "r", "d", "c", SHA256), 0,
	       "a registry with a port and trailing slashes, a sha256 commit");
	is_str(ref, "127.0.0.1:5000/ns-r-d-c:" SHA256, "drops the trailing slashes");
	free(ref);
	is_int(imageref_name(&ref, "localhost", "ns", "r", "gitkube.web", "c", SHA1), 0,
	       "a dotted deployment name (gitkube's NAMESPACE.DEPLOYMENT key) is fine");
	is_str(ref, "localhost/ns-r-gitkube.web-c:" SHA1, "and kept as is");
	free(ref);
	ref = NULL;

	is_int(imageref_name(&ref, "reg.io", "Default", "app", "web", "c", SHA1), -1,
	       "an uppercase namespace is refused");
	ok(strstr(err_msg(), "invalid namespace name \"Default\""), "and named: %s", err_msg());
	ok(ref == NULL, "and nothing is returned");
	is_int(imageref_name(&ref, "reg.io", "ns", "app;rm", "web", "c", SHA1), -1,
	       "a remote name with a ';' is refused");
	is_int(imageref_name(&ref, "reg.io", "ns", "app", "-web", "c", SHA1), -1,
	       "a deployment name starting with '-' is refused");
	is_int(imageref_name(&ref, "reg.io", "ns", "app", "web", "", SHA1), -1,
	       "an empty container name is refused");
	is_int(imageref_name(&ref, "reg.io", "ns", "app", "a..b", "c", SHA1), -1,
	       "a name with \"..\" is refused");
	is_int(imageref_name(&ref, "reg.io", "ns", "app", "web", "c", "0123abc"), -1,
	       "an abbreviated commit is refused");
	ok(strstr(err_msg(), "full object id"), "and the message says why: %s", err_msg());
	is_int(imageref_name(&ref, "reg.io", "ns", "app", "web", "c", "main"), -1,
	       "a branch name as commit is refused");
	is_int(imageref_name(&ref, "reg.io", "ns", "app", "web", "c",
	                     "0123456789ABCDEF0123456789abcdef01234567"),
	       -1, "an uppercase commit is refused (tags are case-sensitive)");
	is_int(imageref_name(&ref, "", "ns", "app", "web", "c", SHA1), -1,
	       "an empty registry is refused");
	is_int(imageref_name(&ref, "reg.io", NULL, "app", "web", "c", SHA1), -1,
	       "a missing namespace is refused");
	is_int(imageref_name(&ref, "bad_registry!", "ns", "app", "web", "c", SHA1), -1,
	       "a malformed registry is refused by the reference check");
	memset(long_name, 'a', 250);
	long_name[250] = '\0';
	is_int(imageref_name(&ref, "reg.io", "ns", long_name, "web", "c", SHA1), -1,
	       "a name past 255 characters is refused");
	ok(strstr(err_msg(), "longer than 255"), "and the message says so: %s", err_msg());
}

static void test_check_push(void)
{
	is_int(imageref_check_push("registry.example.com/team/app:v1"), 0,
	       "domain/path:tag is accepted");
	is_int(imageref_check_push("127.0.0.1:5000/app:1"), 0, "ip:port/name:tag is accepted");
	is_int(imageref_check_push("localhost/app:latest"), 0, "localhost/name:tag is accepted");
	is_int(imageref_check_push("app:v1"), -1, "no registry is refused");
	ok(strstr(err_msg(), "names no registry"), "with a message: %s", err_msg());
	is_int(imageref_check_push("team/app:v1"), -1,
	       "a first component that is no host is refused (it would mean docker.io)");
	is_int(imageref_check_push("reg.io/app"), -1, "no tag is refused");
	is_int(imageref_check_push("reg.io:5000/app"), -1, "a port is not a tag");
	is_int(imageref_check_push("reg.io/app:v1@sha256:" SHA256), -1, "a digest is refused");
	is_int(imageref_check_push("reg.io/App:v1"), -1, "an uppercase path is refused");
	is_int(imageref_check_push("reg.io/app:-v1"), -1, "a tag starting with '-' is refused");
	is_int(imageref_check_push("reg.io/app:v1 --rm"), -1, "a space is refused");
	is_int(imageref_check_push("-reg.io/app:v1"), -1,
	       "a leading '-' (an option to buildah) is refused");
	is_int(imageref_check_push(""), -1, "empty is refused");
	is_int(imageref_check_push(NULL), -1, "NULL is refused");
}

static void test_grammar(void)
{
	static const char *const good[] = {
	    "busybox",
	    "library/busybox:1.36",
	    "127.0.0.1:5000/default-web-web-app:0123abc",
	    "localhost:5000/a/b/c",
	    "registry.example.com/team/app@sha256:"
	    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	    "reg.example.com:443/app:v1@sha256:"
	    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	    "a__b/c-d.e_f:Tag_1.0-rc",
	    "[::1]:5000/app:1",
	    "test_com",
	    "test.com:tag",
	    "test:5000/repo:tag",
	    "lowercase:Uppercase",
	    "sub-dom1.foo.com/bar/baz/quux",
	    "foo_bar.com:8080",
	    "xn--n3h.com/myimage:xn--n3h.com",
	    "a---b",
	    "Reg.Example.COM/app",
	    "reg.io/app@sha512:" SHA256 SHA256,
	    "reg.io/app@multihash+base58:" SHA256,
	};
	static const char *const bad[] = {
	    "",
	    "Upper",
	    "reg.example.com/UPPER/case",
	    "app:",
	    "app:-tag",
	    "app@sha256:abc",
	    "app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde",
	    "-app",
	    "app name",
	    "app:tag;rm -rf /",
	    "reg.example.com//app",
	    "app/",
	    "$(touch x)",
	    "Uppercase:tag",
	    "test:5000/Uppercase/lowercase:tag",
	    "aa/asdf$$^/aa",
	    "[fe80::1%eth0]:5000/repo",
	    ":justtag",
	    "@sha256:" SHA256,
	    "repo@sha256:" SHA256 "ff",
	    "a___b",
	    "a-.b",
	    "a_-b",
	    "-reg.io/app",
	    "reg-.io/app",
	    "app@sha256:" SHA256 ":x",
	    "app@1sha:" SHA256,
	    "app@sha256:0123456789abcdef0123456789abcde",
	    "a:b:c",
	};
	char longname[300], tag[200];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ok(imageref_is_valid(good[i]), "valid image reference '%s'", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ok(!imageref_is_valid(bad[i]), "invalid image reference '%s'", bad[i]);
	ok(!imageref_is_valid(NULL), "NULL is not a reference");
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	ok(!imageref_is_valid(longname), "a name over 255 characters is refused");
	memcpy(tag, "app:", 4);
	memset(tag + 4, 'x', 128);
	tag[4 + 128] = '\0';
	ok(imageref_is_valid(tag), "a tag of 128 characters is valid");
	tag[4 + 128] = 'x';
	tag[4 + 129] = '\0';
	ok(!imageref_is_valid(tag), "a tag of 129 characters is not");
}

static void test_sha256(void)
{
	ok(imageref_is_sha256("sha256:" SHA256), "sha256 with 64 lowercase hex digits");
	ok(!imageref_is_sha256("sha256:" SHA1), "40 hex digits are not a sha256 digest");
	ok(!imageref_is_sha256("sha256:" SHA256 "0"), "65 hex digits are not");
	ok(!imageref_is_sha256(
	       "sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"),
	   "uppercase hex is not (registries write lowercase)");
	ok(!imageref_is_sha256("sha512:" SHA256), "another algorithm is not");
	ok(!imageref_is_sha256(NULL), "NULL is not");
}

static void test_pin(void)
{
	char out[256];

	is_int(imageref_pin(out, sizeof(out), "reg.io/team/app:v1", "sha256:" SHA256), 0,
	       "a tagged name is pinned");
	is_str(out, "reg.io/team/app@sha256:" SHA256, "the tag gives way to the digest");
	is_int(imageref_pin(out, sizeof(out), "127.0.0.1:5000/app", "sha256:" SHA256), 0,
	       "a name with a port and no tag is pinned");
	is_str(out, "127.0.0.1:5000/app@sha256:" SHA256, "the port stays");
	is_int(imageref_pin(out, sizeof(out), "reg.io/app:v1@sha256:" SHA256, "sha256:" SHA256), 0,
	       "a reference that already has a digest is pinned anew");
	is_str(out, "reg.io/app@sha256:" SHA256, "with the one given");
	is_int(imageref_pin(out, sizeof(out), "reg.io/app:v1", "sha256:abc"), -1,
	       "a short digest is refused");
	is_str(out, "", "and OUT is empty");
	is_int(imageref_pin(out, sizeof(out), "reg.io/App:v1", "sha256:" SHA256), -1,
	       "an invalid image is refused");
	is_int(imageref_pin(out, 40, "reg.io/app:v1", "sha256:" SHA256), -1,
	       "a result that does not fit is refused");
	is_str(out, "", "and OUT is empty");
}

int main(void)
{
	test_parse();
	test_grammar();
	test_check_push();
	test_image_name();
	test_sha256();
	test_pin();
	return tap_done();
}
