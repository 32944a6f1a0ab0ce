/* pktline: pkt-line framing and side-band over a byte stream (see pktline.h;
 * format from git Documentation/gitprotocol-common.txt). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "pktline.h"
#include "banned.h"

void pkt_io_init(struct pkt_io *io, pkt_read_fn read, pkt_write_fn write, void *arg)
{
	io->read = read;
	io->write = write;
	io->arg = arg;
	io->sideband = 0;
	io->bytes_in = 0;
	io->bytes_out = 0;
	io->start = io->end = 0;
	io->out_len = 0;
	io->nul_at = 0;
	io->nul_saved = 0;
}

/* Puts back the byte that pkt_read covered with its terminating NUL. */
static void unterminate(struct pkt_io *io)
{
	if (io->nul_at) {
		io->in[io->nul_at] = io->nul_saved;
		io->nul_at = 0;
	}
}

static ssize_t fds_read(void *arg, void *buf, size_t len)
{
	struct pkt_fds *fds = arg;
	ssize_t n;

	do
		n = read(fds->in_fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return err_set("read: %s", strerror(errno));
	return n;
}

static int fds_write(void *arg, const void *buf, size_t len)
{
	struct pkt_fds *fds = arg;
	const char *p = buf;

	while (len) {
		ssize_t n = write(fds->out_fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return err_set("write: %s", n < 0 ? strerror(errno) : "nothing written");
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

void pkt_io_init_fds(struct pkt_io *io, struct pkt_fds *fds)
{
	pkt_io_init(io, fds_read, fds_write, fds);
}

int pkt_send(struct pkt_io *io)
{
	size_t n = io->out_len;

	if (!n)
		return 0;
	io->out_len = 0;
	if (io->write(io->arg, io->out, n) < 0)
		return -1;
	io->bytes_out += n;
	return 0;
}

/* Appends LEN bytes to the output buffer, sending first when they would not
 * fit; a block larger than the buffer goes out directly. */
static int out_add(struct pkt_io *io, const void *data, size_t len)
{
	if (io->out_len + len > sizeof(io->out) && pkt_send(io) < 0)
		return -1;
	if (len > sizeof(io->out)) {
		if (io->write(io->arg, data, len) < 0)
			return -1;
		io->bytes_out += len;
		return 0;
	}
	memcpy(io->out + io->out_len, data, len);
	io->out_len += len;
	return 0;
}

/* Makes at least WANT bytes available in in[start, end). Returns 1 when they
 * are, 0 when the stream ended first (with *GOT the bytes that are there), or
 * -1 on a read error. */
static int fill(struct pkt_io *io, size_t want, size_t *got)
{
	unterminate(io);
	if (io->end - io->start < want && pkt_send(io) < 0)
		return -1;
	if (io->start && io->end - io->start < want) {
		memmove(io->in, io->in + io->start, io->end - io->start);
		io->end -= io->start;
		io->start = 0;
	}
	while (io->end - io->start < want) {
		ssize_t n = io->read(io->arg, io->in + io->end, sizeof(io->in) - 1 - io->end);

		if (n < 0)
			return -1;
		if (n == 0) {
			*got = io->end - io->start;
			return 0;
		}
		io->end += (size_t)n;
		io->bytes_in += (unsigned long long)n;
	}
	return 1;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int pkt_read(struct pkt_io *io, const char **line, size_t *len, bool chomp)
{
	size_t got = 0, n = 0;
	char *p;
	int i, r;

	r = fill(io, 4, &got);
	if (r < 0)
		return -1;
	if (r == 0) {
		if (got == 0)
			return PKT_EOF;
		return err_set("protocol error: the stream ended inside a pkt-line length");
	}
	p = io->in + io->start;
	for (i = 0; i < 4; i++) {
		int v = hexval(p[i]);

		if (v < 0) {
			char shown[5];

			for (int j = 0; j < 4; j++)
				shown[j] = (p[j] >= 0x20 && p[j] < 0x7f) ? p[j] : '?';
			shown[4] = '\0';
			return err_set("protocol error: bad line length '%s'", shown);
		}
		n = n * 16 + (size_t)v;
	}
	if (n < 3) {
		io->start += 4;
		return n == 0 ? PKT_FLUSH : n == 1 ? PKT_DELIM : PKT_RESPONSE_END;
	}
	if (n <= 4 || n > LARGE_PACKET_MAX)
		return err_set("protocol error: bad line length %zu", n);
	r = fill(io, n, &got);
	if (r < 0)
		return -1;
	if (r == 0)
		return err_set(
		    "protocol error: the stream ended inside a pkt-line (%zu of %zu bytes)", got,
		    n);
	p = io->in + io->start + 4;
	n -= 4;
	io->start += n + 4;
	if (chomp && n && p[n - 1] == '\n')
		n--;
	/* the byte after the payload may be the next line's: keep it to put
	 * back (in[] has one byte more than a pkt-line, so there is room) */
	io->nul_at = (size_t)(p + n - io->in);
	io->nul_saved = p[n];
	p[n] = '\0';
	*line = p;
	*len = n;
	return PKT_DATA;
}

ssize_t pkt_read_raw(struct pkt_io *io, void *buf, size_t len)
{
	size_t have;
	ssize_t n;

	unterminate(io);
	have = io->end - io->start;
	if (have) {
		if (have > len)
			have = len;
		memcpy(buf, io->in + io->start, have);
		io->start += have;
		return (ssize_t)have;
	}
	if (pkt_send(io) < 0)
		return -1;
	n = io->read(io->arg, buf, len);
	if (n > 0)
		io->bytes_in += (unsigned long long)n;
	return n;
}

int pkt_write(struct pkt_io *io, const void *data, size_t len)
{
	char hdr[5];

	if (len > LARGE_PACKET_DATA_MAX)
		return err_set("pkt-line payload of %zu bytes is over the %d byte limit", len,
		               LARGE_PACKET_DATA_MAX);
	snprintf(hdr, sizeof(hdr), "%04zx", len + 4);
	if (out_add(io, hdr, 4) < 0 || out_add(io, data, len) < 0)
		return -1;
	return 0;
}

int pkt_writef(struct pkt_io *io, const char *fmt, ...)
{
	char line[LARGE_PACKET_DATA_MAX + 1];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line))
		return err_set("pkt-line payload is over the %d byte limit", LARGE_PACKET_DATA_MAX);
	return pkt_write(io, line, (size_t)n);
}

int pkt_flush(struct pkt_io *io)
{
	if (out_add(io, "0000", 4) < 0)
		return -1;
	return pkt_send(io);
}

int pkt_delim(struct pkt_io *io)
{
	return out_add(io, "0001", 4);
}

int pkt_response_end(struct pkt_io *io)
{
	return out_add(io, "0002", 4);
}

int pkt_sideband(struct pkt_io *io, enum sideband_band band, const void *data, size_t len)
{
	char chunk[LARGE_PACKET_DATA_MAX];
	const char *p = data;
	size_t max = (size_t)io->sideband;

	if (!io->sideband) {
		if (band == SIDEBAND_DATA)
			return out_add(io, data, len);
		if (band == SIDEBAND_ERROR) {
			size_t n =
			    len > LARGE_PACKET_DATA_MAX - 4 ? LARGE_PACKET_DATA_MAX - 4 : len;

			memcpy(chunk, "ERR ", 4);
			memcpy(chunk + 4, data, n);
			return pkt_write(io, chunk, n + 4);
		}
		return 0;
	}
	if (max > SIDEBAND_DATA_MAX)
		max = SIDEBAND_DATA_MAX;
	while (len) {
		size_t n = len > max ? max : len;

		chunk[0] = (char)band;
		memcpy(chunk + 1, p, n);
		if (pkt_write(io, chunk, n + 1) < 0)
			return -1;
		p += n;
		len -= n;
	}
	/* progress and errors are for a human watching: send them now */
	if (band != SIDEBAND_DATA)
		return pkt_send(io);
	return 0;
}

int pkt_progressf(struct pkt_io *io, const char *fmt, ...)
{
	char text[LARGE_PACKET_DATA_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (n < 0)
		return err_set("cannot format progress message");
	if ((size_t)n >= sizeof(text))
		n = sizeof(text) - 1;
	return pkt_sideband(io, SIDEBAND_PROGRESS, text, (size_t)n);
}
