/* pktline: git's pkt-line framing and side-band multiplexing over any byte
 * stream (an SSH channel, a pipe, a test buffer).
 *
 * pkt-line (git Documentation/gitprotocol-common.txt): four lowercase hex
 * digits give the length of the line including themselves, then the payload;
 * "0000" is a flush-pkt, "0001" a delim-pkt and "0002" a response-end-pkt
 * (protocol v2, gitprotocol-v2.txt). A payload is at most LARGE_PACKET_DATA_MAX
 * (65516) bytes. Side-band (gitprotocol-pack.txt, "side-band, side-band-64k"):
 * each pkt-line payload starts with a band byte: 1 pack data, 2 progress,
 * 3 fatal error. */
#ifndef SLIP_PKTLINE_H
#define SLIP_PKTLINE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define LARGE_PACKET_MAX 65520                        /* whole pkt-line */
#define LARGE_PACKET_DATA_MAX (LARGE_PACKET_MAX - 4)  /* its payload */
#define SIDEBAND_DATA_MAX (LARGE_PACKET_DATA_MAX - 1) /* side-band-64k chunk */
#define SIDEBAND_SMALL_DATA_MAX (1000 - 4 - 1)        /* side-band chunk */

enum sideband_band { SIDEBAND_DATA = 1, SIDEBAND_PROGRESS = 2, SIDEBAND_ERROR = 3 };

/* Reads up to LEN bytes into BUF. Returns the number read (> 0), 0 at end of
 * stream, or -1 with err_msg() set. */
typedef ssize_t (*pkt_read_fn)(void *arg, void *buf, size_t len);

/* Writes all LEN bytes of BUF. Returns 0, or -1 with err_msg() set. */
typedef int (*pkt_write_fn)(void *arg, const void *buf, size_t len);

/* Both directions of one connection, with the reader's buffer. Set up with
 * pkt_io_init; it holds no allocations, so it needs no release. */
struct pkt_io {
	pkt_read_fn read; /* fills the input buffer */
	pkt_write_fn write;
	void *arg;                   /* passed to read and write */
	int sideband;                /* 0: none, else max payload per band packet */
	unsigned long long bytes_in; /* counters for logs and metrics */
	unsigned long long bytes_out;
	size_t start, end; /* unread bytes are in[start, end) */
	size_t out_len;    /* bytes waiting in out */
	size_t nul_at;     /* where pkt_read put a NUL over a byte of the */
	char nul_saved;    /* next line, and that byte; nul_at == 0: none */
	char in[LARGE_PACKET_MAX + 1];
	char out[LARGE_PACKET_MAX];
};

/* Output is buffered: it is sent when the buffer fills, at every flush-pkt,
 * before every read that needs the stream, and by pkt_send(). */

/* Sets up IO in place over READ/WRITE with ARG; side-band off. */
void pkt_io_init(struct pkt_io *io, pkt_read_fn read, pkt_write_fn write, void *arg);

/* pkt_io over two file descriptors (read from IN_FD, write to OUT_FD; the
 * same fd may be given twice). The descriptors stay the caller's. FDS must
 * outlive IO. */
struct pkt_fds {
	int in_fd, out_fd;
};
void pkt_io_init_fds(struct pkt_io *io, struct pkt_fds *fds);

/* What pkt_read found. */
enum pkt_type {
	PKT_EOF = 0,          /* the stream ended cleanly between pkt-lines */
	PKT_DATA = 1,         /* a line; *line and *len are set */
	PKT_FLUSH = 2,        /* 0000 */
	PKT_DELIM = 3,        /* 0001 */
	PKT_RESPONSE_END = 4, /* 0002 */
};

/* Reads one pkt-line. For PKT_DATA sets *LINE to the payload (borrowed; valid
 * until the next read on IO; NUL-terminated at LEN, so a payload holding a
 * NUL, like the first line of a ref advertisement, needs LEN) and *LEN. When
 * CHOMP is true one trailing "\n" is removed. Returns a pkt_type, or -1 with
 * err_msg() on a bad length ("protocol error: bad line length 'xyzw'"), a
 * stream that ends inside a pkt-line, or a read failure. */
int pkt_read(struct pkt_io *io, const char **line, size_t *len, bool chomp);

/* Reads up to LEN raw bytes (after the pkt-lines, e.g. the packfile of a
 * push): first what pkt_read buffered, then from the stream. Returns the
 * count (> 0), 0 at end of stream, or -1 with err_msg(). */
ssize_t pkt_read_raw(struct pkt_io *io, void *buf, size_t len);

/* Writes DATA of LEN bytes as one pkt-line. LEN must be at most
 * LARGE_PACKET_DATA_MAX, else -1 with err_msg(). Returns 0 or -1. */
int pkt_write(struct pkt_io *io, const void *data, size_t len);

/* Writes one printf-formatted pkt-line (at most LARGE_PACKET_DATA_MAX bytes
 * of payload, else -1). Returns 0 or -1 with err_msg(). */
int pkt_writef(struct pkt_io *io, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Sends what is buffered. Returns 0 or -1 with err_msg(). */
int pkt_send(struct pkt_io *io);

/* Write the special packets 0000, 0001 and 0002. Return 0 or -1. */
int pkt_flush(struct pkt_io *io); /* also sends */
int pkt_delim(struct pkt_io *io);
int pkt_response_end(struct pkt_io *io);

/* Writes LEN bytes (any size) on BAND: split into side-band packets of at most
 * io->sideband payload bytes after the band byte. Without side-band
 * (io->sideband == 0), band 1 is written raw, band 2 is dropped and band 3 is
 * written as an "ERR " pkt-line. Returns 0 or -1 with err_msg(). */
int pkt_sideband(struct pkt_io *io, enum sideband_band band, const void *data, size_t len);

/* printf-formatted text on band 2 (progress, shown by git as "remote: ...").
 * Returns 0 or -1. */
int pkt_progressf(struct pkt_io *io, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
