/* libFuzzer target: a builder's result body, as POSTed to gitd's internal
 * endpoint by a builder Pod, parses or is refused without crashing; a parsed
 * result has NUL-terminated fields, a well-formed digest or none, and a
 * one-line message. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buildsrv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buildsrv_result r;
	const char *why = NULL;

	if (buildsrv_result_parse(&r, (const char *)data, size, &why) < 0) {
		if (!why || !*why)
			abort();
		return 0;
	}
	if (strnlen(r.image, sizeof(r.image)) == sizeof(r.image) ||
	    strnlen(r.digest, sizeof(r.digest)) == sizeof(r.digest) ||
	    strnlen(r.reason, sizeof(r.reason)) == sizeof(r.reason) ||
	    strnlen(r.message, sizeof(r.message)) == sizeof(r.message))
		abort();
	if (r.digest[0] && (strncmp(r.digest, "sha256:", 7) || strlen(r.digest) != 71))
		abort();
	for (const char *p = r.message; *p; p++)
		if ((unsigned char)*p < 0x20)
			abort();
	return 0;
}
