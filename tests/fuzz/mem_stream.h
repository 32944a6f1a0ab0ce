/* mem_stream: the fuzz input as the client side of a connection, for the
 * targets that drive a pkt_io (pkt_read_fn over a memory buffer). Included
 * by each target, which is built as one file, and by tests/unit/pktline.c. */
#ifndef SLIP_FUZZ_MEM_STREAM_H
#define SLIP_FUZZ_MEM_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

/* LEN bytes at DATA, read from POS on, at most STEP bytes per read (0: no
 * limit), so that reads split the input at every place. */
struct mem {
	const uint8_t *data;
	size_t len, pos, step;
};

/* pkt_read_fn over a struct mem: returns the bytes copied, 0 at its end. */
static ssize_t mem_read(void *arg, void *buf, size_t len)
{
	struct mem *m = arg;
	size_t n = m->len - m->pos;

	if (n > len)
		n = len;
	if (m->step && n > m->step)
		n = m->step;
	memcpy(buf, m->data + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

#endif
