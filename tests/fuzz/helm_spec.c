/* libFuzzer target: any JSON through helm_spec_read, as a Remote's
 * spec.manifests, either fails with a message or keeps helm.h's promises (a
 * path without "." or ".." components, at most HELM_VALUES_MAX values with
 * names free of "=", a ServiceAccount); and the release name derived from
 * any string is one Helm accepts, the same each time. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "err.h"
#include "helm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_spec(const struct helm_spec *s)
{
	const char *p = s->path;

	if (!s->sa || !*s->sa || s->nvalues > HELM_VALUES_MAX || s->timeout_s < 0)
		abort();
	if (s->has_path && (p[0] == '/' || !strcmp(p, ".") || !strcmp(p, "..") ||
	                    !strncmp(p, "../", 3) || strstr(p, "/../") || strstr(p, "//") ||
	                    (strlen(p) >= 3 && !strcmp(p + strlen(p) - 3, "/..")) ||
	                    (strlen(p) && p[strlen(p) - 1] == '/')))
		abort();
	for (size_t i = 0; i < s->nvalues; i++)
		if (!s->values[i].name || !*s->values[i].name || strchr(s->values[i].name, '=') ||
		    !s->values[i].value)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char release[HELM_RELEASE_MAX + 1], again[HELM_RELEASE_MAX + 1], *name;
	struct helm_spec *spec = malloc(sizeof(*spec));
	json_t *obj = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);

	if (!spec)
		abort();
	if (obj && helm_spec_read(spec, obj) == 0)
		check_spec(spec);
	else if (obj && !*err_msg())
		abort();
	json_decref(obj);
	free(spec);

	name = strndup((const char *)data, size);
	if (!name)
		abort();
	helm_release_derive(release, name);
	helm_release_derive(again, name);
	if (!helm_release_is_valid(release) || strcmp(release, again))
		abort();
	free(name);
	return 0;
}
