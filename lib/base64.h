/* base64: RFC 4648 decoding, for the base64 fields of Kubernetes objects
 * (Secret data, kubeconfig *-data), with OpenSSL's EVP decoder. */
#ifndef SLIP_BASE64_H
#define SLIP_BASE64_H

#include <stddef.h>

#include "buf.h"

/* Appends the decoding of base64 TEXT (whitespace allowed) to OUT. TEXT
 * longer than MAX characters is refused. Scratch memory is wiped (the data
 * is often a secret). Returns 0, or -1 with err_msg() on malformed input,
 * a text over MAX, or OUT's maximum. */
int base64_decode(struct buf *out, const char *text, size_t max);

#endif
