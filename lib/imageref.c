/* imageref: image references by distribution's grammar (see imageref.h),
 * checked with a POSIX extended regular expression, then split by hand. */
#include "imageref.h"

#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "banned.h"

/* reference.go's expressions in POSIX ERE: \w is [A-Za-z0-9_]; POSIX takes
 * the longest match, which reference.go's anchored expression also means. */
#define RE_DOMAIN_COMPONENT "[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?"
#define RE_DOMAIN                                                                                  \
	"(" RE_DOMAIN_COMPONENT "(\\." RE_DOMAIN_COMPONENT ")*|\\[[0-9a-fA-F:.]+\\])(:[0-9]+)?"
#define RE_PATH_COMPONENT "[a-z0-9]+(([_.]|__|-+)[a-z0-9]+)*"
#define RE_NAME "(" RE_DOMAIN "/)?" RE_PATH_COMPONENT "(/" RE_PATH_COMPONENT ")*"
#define RE_TAG "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
#define RE_DIGEST "[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
#define RE_REFERENCE "^" RE_NAME "(:" RE_TAG ")?(@" RE_DIGEST ")?$"

/* Compiled once per process and kept (regexec may run in many threads). */
static regex_t reference_re;
static bool reference_re_ok;
static pthread_once_t reference_re_once = PTHREAD_ONCE_INIT;

static void compile_reference_re(void)
{
	reference_re_ok = regcomp(&reference_re, RE_REFERENCE, REG_EXTENDED | REG_NOSUB) == 0;
}

static bool matches_grammar(const char *ref)
{
	pthread_once(&reference_re_once, compile_reference_re);
	return reference_re_ok && regexec(&reference_re, ref, 0, NULL, 0) == 0;
}

/* Splits REF, which matches the grammar: the digest after the '@' (no
 * part before it holds one), the tag after the last ':' that follows the
 * last '/', the domain by normalize.go's splitDockerDomain rule. */
static void split(struct imageref *out, const char *ref)
{
	const char *at = strchr(ref, '@'), *end = at ? at : ref + strlen(ref);
	const char *slash = NULL, *colon = NULL, *first_slash;
	size_t first_len;

	memset(out, 0, sizeof(*out));
	if (at) {
		out->digest_off = (size_t)(at + 1 - ref);
		out->digest_len = strlen(at + 1);
	}
	for (const char *p = ref; p < end; p++)
		if (*p == '/')
			slash = p;
		else if (*p == ':')
			colon = p;
	if (colon && (!slash || colon > slash)) {
		out->tag_off = (size_t)(colon + 1 - ref);
		out->tag_len = (size_t)(end - colon - 1);
		end = colon;
	}
	out->name_len = (size_t)(end - ref);
	first_slash = memchr(ref, '/', out->name_len);
	if (first_slash) {
		first_len = (size_t)(first_slash - ref);
		if (memchr(ref, '.', first_len) || memchr(ref, ':', first_len) ||
		    (first_len == 9 && !strncmp(ref, "localhost", 9)))
			out->domain_len = first_len;
	}
}

/* imageref_parse without the message: *WHY says what is wrong. */
static int parse(struct imageref *out, const char *ref, const char **why)
{
	struct imageref r;

	memset(out, 0, sizeof(*out));
	*why = "is empty";
	if (!ref || !*ref)
		return -1;
	*why = "is too long";
	if (strlen(ref) > IMAGEREF_REF_MAX)
		return -1;
	*why = "does not match distribution's reference grammar";
	if (!matches_grammar(ref))
		return -1;
	split(&r, ref);
	*why = "has a name longer than 255 characters";
	if (r.name_len > IMAGEREF_NAME_MAX)
		return -1;
	*why = "has a sha256 digest without 64 hex digits";
	if (r.digest_len && !strncmp(ref + r.digest_off, "sha256:", 7) && r.digest_len != 7 + 64)
		return -1;
	*out = r;
	return 0;
}

int imageref_parse(struct imageref *out, const char *ref)
{
	const char *why;

	if (!ref || !*ref)
		return (memset(out, 0, sizeof(*out)), err_set("no image reference given"));
	if (parse(out, ref, &why) < 0)
		return err_set("invalid image reference \"%.*s\": it %s", 300, ref, why);
	return 0;
}

bool imageref_is_valid(const char *ref)
{
	struct imageref r;
	const char *why;

	return parse(&r, ref, &why) == 0;
}

bool imageref_is_sha256(const char *s)
{
	return s && !strncmp(s, "sha256:", 7) && strspn(s + 7, "0123456789abcdef") == 64 &&
	       s[71] == '\0';
}

int imageref_check_push(const char *ref)
{
	struct imageref r;

	if (imageref_parse(&r, ref) < 0)
		return -1;
	if (r.digest_len)
		return err_set("image reference \"%s\" carries a digest: give a tag, the push "
		               "yields the digest",
		               ref);
	if (!r.tag_len)
		return err_set("image reference \"%s\" has no tag", ref);
	if (!r.domain_len)
		return err_set("image reference \"%s\" names no registry (expected "
		               "REGISTRY/NAME:TAG)",
		               ref);
	return 0;
}

/* A lowercase Kubernetes name as it appears in image names. */
static bool is_k8s_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 253 || s[0] == '-' || s[0] == '.' || s[n - 1] == '-' || s[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
		      (s[i] == '.' && s[i + 1] != '.')))
			return false;
	return true;
}

static bool is_object_id(const char *s)
{
	size_t n = strspn(s, "0123456789abcdef");

	return s[n] == '\0' && (n == 40 || n == 64);
}

int imageref_name(char **out, const char *registry, const char *ns, const char *remote,
                  const char *deployment, const char *container, const char *commit)
{
	const char *const names[] = {ns, remote, deployment, container};
	const char *const what[] = {"namespace", "remote", "deployment", "container"};
	size_t reg_len = registry ? strlen(registry) : 0;
	char *ref = NULL;

	*out = NULL;
	while (reg_len > 0 && registry[reg_len - 1] == '/')
		reg_len--;
	if (!reg_len)
		return err_set("no registry given for the image name");
	for (size_t i = 0; i < 4; i++)
		if (!names[i] || !is_k8s_name(names[i]))
			return err_set(
			    "invalid %s name \"%s\" for an image name (lowercase letters, "
			    "digits, '-' and '.')",
			    what[i], names[i] ? names[i] : "");
	if (!commit || !is_object_id(commit))
		return err_set("invalid commit \"%s\": expected a full object id (40 or 64 "
		               "lowercase hex digits)",
		               commit ? commit : "");
	if (reg_len > IMAGEREF_REF_MAX ||
	    asprintf(&ref, "%.*s/%s-%s-%s-%s:%s", (int)reg_len, registry, ns, remote, deployment,
	             container, commit) < 0)
		return err_set("out of memory");
	if (imageref_check_push(ref) < 0) {
		free(ref);
		return -1;
	}
	*out = ref;
	return 0;
}

int imageref_pin(char *out, size_t size, const char *image, const char *digest)
{
	struct imageref r;

	if (size)
		out[0] = '\0';
	if (imageref_parse(&r, image) < 0)
		return -1;
	if (!imageref_is_sha256(digest))
		return err_set("\"%.80s\" is not a sha256 digest", digest ? digest : "");
	if ((size_t)snprintf(out, size, "%.*s@%s", (int)r.name_len, image, digest) >= size) {
		if (size)
			out[0] = '\0';
		return err_set("image reference \"%.*s@%s\" too long", (int)r.name_len, image,
		               digest);
	}
	return 0;
}
