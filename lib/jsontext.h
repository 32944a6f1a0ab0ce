/* jsontext: JSON strings of text that may not be UTF-8 (build logs, hook
 * output, push options, key comments): jansson refuses invalid UTF-8, and a
 * log line must not be lost for one bad byte. */
#ifndef SLIP_JSONTEXT_H
#define SLIP_JSONTEXT_H

#include <stddef.h>
#include <jansson.h>

/* Returns a new JSON string of at most MAX bytes of S (NULL: ""), cut back
 * to a UTF-8 character boundary when longer. When those bytes are not valid
 * UTF-8, every non-ASCII byte becomes '?'. Returns a new reference (caller
 * json_decref's it, or hands it to json_pack "o"), or NULL when out of
 * memory. Pass SIZE_MAX for no limit. */
json_t *jsontext_lossy(const char *s, size_t max);

#endif
