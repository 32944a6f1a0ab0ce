/* capability: the one reader of git capability lists, for receive-pack and
 * upload-pack (see capability.h). */
#include <string.h>

#include "capability.h"
#include "banned.h"

static bool equals(const char *s, size_t len, const char *want)
{
	return strlen(want) == len && !memcmp(s, want, len);
}

bool capability_next(struct capability *out, const char **pos, const char *end)
{
	const char *p = *pos, *sp, *eq;
	size_t len;

	while (p < end && *p == ' ')
		p++;
	if (p >= end) {
		*pos = end;
		return false;
	}
	sp = memchr(p, ' ', (size_t)(end - p));
	len = (size_t)((sp ? sp : end) - p);
	eq = memchr(p, '=', len);
	out->name = p;
	out->name_len = eq ? (size_t)(eq - p) : len;
	out->value = eq ? eq + 1 : NULL;
	out->value_len = eq ? len - out->name_len - 1 : 0;
	*pos = p + len;
	return true;
}

bool capability_is(const struct capability *cap, const char *name)
{
	return !cap->value && equals(cap->name, cap->name_len, name);
}

bool capability_is_named(const struct capability *cap, const char *name)
{
	return equals(cap->name, cap->name_len, name);
}

bool capability_value_is(const struct capability *cap, const char *value)
{
	return cap->value && equals(cap->value, cap->value_len, value);
}

bool protocol_parse_oid(git_oid *out, const char *s, size_t len)
{
	git_oid ignored;

	if (len != GIT_OID_HEXSZ)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
		      (s[i] >= 'A' && s[i] <= 'F')))
			return false;
	return git_oid_fromstrn(out ? out : &ignored, s, len) == 0;
}
