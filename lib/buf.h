/* buf: a growable byte buffer with a hard maximum size (after curl's dynbuf
 * "toobig"): input past the maximum is an error, never a silent realloc. */
#ifndef SLIP_BUF_H
#define SLIP_BUF_H

#include <stddef.h>

struct buf {
	char *data; /* NUL-terminated contents, or NULL while empty */
	size_t len; /* bytes used, without the NUL */
	size_t cap; /* bytes allocated */
	size_t max; /* largest allowed len */
};

/* Sets up an empty buffer in place that may grow to MAX bytes. */
void buf_init(struct buf *b, size_t max);

/* Frees the contents and leaves an empty buffer with the same maximum. */
void buf_release(struct buf *b);

/* Appends LEN bytes of DATA. Returns 0, or -1 with err_msg() when the result
 * would exceed the maximum or memory runs out (the buffer is unchanged). */
int buf_add(struct buf *b, const void *data, size_t len);

/* Appends a NUL-terminated string; as buf_add. */
int buf_adds(struct buf *b, const char *s);

/* Appends printf-formatted text; as buf_add. */
int buf_addf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Removes the first N bytes (N <= len). */
void buf_consume(struct buf *b, size_t n);

/* Returns the contents (never NULL: "" when empty); borrowed. */
const char *buf_str(const struct buf *b);

/* Hands the contents over to the caller (free() them; never NULL on success:
 * an empty buffer yields an allocated "") and leaves B empty. Returns NULL
 * only when out of memory. */
char *buf_detach(struct buf *b);

#endif
