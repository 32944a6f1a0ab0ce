/* libFuzzer target: any bytes through manifests_set_images_stream, as a Helm
 * post-renderer gets them, either fail with a message or give YAML that reads
 * back and that a second pass writes out unchanged (the substitution is
 * idempotent and what is written reads back as what was meant). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "manifests.h"
#include "yamljson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct manifests_image images[] = {
	    {"web", "app", "registry.example/web@sha256:0123456789abcdef", 0},
	    {"migrate", "app", "registry.example/web@sha256:0123456789abcdef", 0},
	    {"web", "init", "registry.example/init@sha256:fedcba9876543210", 0},
	};
	char *out = NULL, *again = NULL;
	json_t *docs = NULL;

	if (manifests_set_images_stream(&out, (const char *)data, size, images, 3) < 0)
		return 0;
	if (yamljson_load_all(&docs, out, strlen(out)) < 0)
		abort();
	if (manifests_set_images_stream(&again, out, strlen(out), images, 3) < 0 ||
	    strcmp(out, again))
		abort();
	json_decref(docs);
	free(again);
	free(out);
	return 0;
}
