/* base64: RFC 4648 section 4 base64 ("+/" alphabet, "=" padding), for the
 * base64 fields of Kubernetes objects (Secret data, ConfigMap binaryData,
 * kubeconfig *-data) and key fingerprints, with OpenSSL's EVP coder. */
#ifndef SLIP_BASE64_H
#define SLIP_BASE64_H

#include <stddef.h>

#include "buf.h"

/* Appends the decoding of base64 TEXT (whitespace allowed) to OUT. TEXT
 * longer than MAX characters is refused. Scratch memory is wiped (the data
 * is often a secret). Returns 0, or -1 with err_msg() on malformed input,
 * a text over MAX, or OUT's maximum. */
int base64_decode(struct buf *out, const char *text, size_t max);

/* Returned by base64_decode_strict for text that is no base64. */
enum { BASE64_EINVALID = -2 };

/* Appends the decoding of LEN bytes of TEXT to OUT, strictly: LEN a
 * multiple of 4, only the alphabet's 64 characters, one or two "=" of
 * padding at the very end and nowhere else, no whitespace or line breaks
 * (what Go's encoding/base64 StdEncoding writes, and Kubernetes for []byte
 * fields). Empty text appends nothing. Scratch memory is wiped.
 * Returns 0; BASE64_EINVALID with err_msg() saying what is wrong with the
 * text; or -1 with err_msg() when out of memory or past OUT's maximum. */
int base64_decode_strict(struct buf *out, const char *text, size_t len);

/* Encodes LEN bytes of DATA as base64 with padding and no line breaks into
 * *OUT, a NUL-terminated string of 4 * ceil(LEN / 3) characters that the
 * caller frees (free()). Returns 0, or -1 with err_msg() when out of memory
 * or LEN is over 1 GiB. */
int base64_encode(char **out, const void *data, size_t len);

#endif
