/* jsontext: lossy JSON strings for text from builds, hooks and clients. */
#include "jsontext.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "banned.h"

static bool is_continuation(unsigned char ch)
{
	return (ch & 0xc0) == 0x80;
}

json_t *jsontext_lossy(const char *s, size_t max)
{
	size_t len = s ? strlen(s) : 0;
	json_t *j;
	char *copy;

	if (len > max) {
		len = max;
		while (len > 0 && is_continuation((unsigned char)s[len]))
			len--;
	}
	j = json_stringn(s ? s : "", len);
	if (j)
		return j;
	copy = malloc(len + 1);
	if (!copy)
		return NULL;
	for (size_t i = 0; i < len; i++)
		copy[i] = (unsigned char)s[i] < 0x80 ? s[i] : '?';
	j = json_stringn(copy, len);
	free(copy);
	return j;
}
