/* libFuzzer target: any string either is refused or splits into parts that
 * lie inside it at their separators, with a name of at most 255
 * characters; pinning a valid reference by digest gives a valid reference
 * with the same name, no tag and that digest. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imageref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DIGEST "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *ref = malloc(size + 1), pinned[IMAGEREF_NAME_MAX + sizeof(DIGEST) + 1];
	struct imageref r, p;
	size_t len;

	if (!ref)
		return 0;
	memcpy(ref, data, size);
	ref[size] = '\0';
	len = strlen(ref);
	if (imageref_parse(&r, ref) < 0) {
		if (imageref_is_valid(ref) || r.name_len)
			abort();
		free(ref);
		return 0;
	}
	if (!imageref_is_valid(ref) || !r.name_len || r.name_len > IMAGEREF_NAME_MAX ||
	    r.domain_len > r.name_len || (r.domain_len && ref[r.domain_len] != '/'))
		abort();
	if (r.tag_len && (r.tag_off != r.name_len + 1 || ref[r.tag_off - 1] != ':' ||
	                  r.tag_len > IMAGEREF_TAG_MAX))
		abort();
	if (r.digest_len && (ref[r.digest_off - 1] != '@' || r.digest_off + r.digest_len != len))
		abort();
	if (!r.digest_len && (r.tag_len ? r.tag_off + r.tag_len : r.name_len) != len)
		abort();
	if (imageref_pin(pinned, sizeof(pinned), ref, DIGEST) < 0 ||
	    imageref_parse(&p, pinned) < 0 || p.name_len != r.name_len || p.tag_len ||
	    memcmp(pinned, ref, r.name_len) || strcmp(pinned + p.digest_off, DIGEST))
		abort();
	free(ref);
	return 0;
}
