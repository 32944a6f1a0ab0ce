/* Unit tests for lib/pktline: framing, special packets, side-band, raw reads
 * after pkt-lines, and malformed input. */
#include <string.h>

#include "err.h"
#include "pktline.h"
#include "tap.h"
#include "../fuzz/mem_stream.h"

/* The client's bytes (a struct mem, first, so that mem_read takes this
 * struct as its own) and what the code under test sends back. */
struct stream {
	struct mem in;
	char out[200000];
	size_t out_len;
};

static int mem_write(void *arg, const void *buf, size_t len)
{
	struct stream *m = arg;

	if (m->out_len + len > sizeof(m->out))
		return err_set("test buffer full");
	memcpy(m->out + m->out_len, buf, len);
	m->out_len += len;
	return 0;
}

static void setup_len(struct pkt_io *io, struct stream *m, const char *in, size_t len, size_t step)
{
	memset(m, 0, sizeof(*m));
	m->in.data = (const uint8_t *)in;
	m->in.len = len;
	m->in.step = step;
	pkt_io_init(io, mem_read, mem_write, m);
}

static void setup(struct pkt_io *io, struct stream *m, const char *in, size_t step)
{
	setup_len(io, m, in, strlen(in), step);
}

static void test_read(size_t step)
{
	static struct pkt_io io;
	static struct stream m;
	const char *line;
	size_t len;
	static const char in[] = "0009abcd\n000000010009\0x\nyz0002PACKrest";
	char raw[16];
	size_t got = 0;
	ssize_t n;

	setup_len(&io, &m, in, sizeof(in) - 1, step);
	is_int(pkt_read(&io, &line, &len, true), PKT_DATA, "data line");
	is_str(line, "abcd", "payload chomped");
	is_int(pkt_read(&io, &line, &len, true), PKT_FLUSH, "flush-pkt");
	is_int(pkt_read(&io, &line, &len, true), PKT_DELIM, "delim-pkt");
	is_int(pkt_read(&io, &line, &len, false), PKT_DATA, "line with a NUL");
	ok(len == 5 && !memcmp(line, "\0x\nyz", 5), "its length covers the NUL (step %zu)", step);
	is_int(pkt_read(&io, &line, &len, true), PKT_RESPONSE_END, "response-end-pkt");
	while ((n = pkt_read_raw(&io, raw + got, sizeof(raw) - got)) > 0)
		got += (size_t)n;
	ok(n == 0 && got == 8 && !memcmp(raw, "PACKrest", 8),
	   "raw bytes after pkt-lines, then EOF");
	is_int(pkt_read(&io, &line, &len, true), PKT_EOF, "EOF between lines");
}

static void test_unchomped_neighbour(void)
{
	static struct pkt_io io;
	static struct stream m;
	const char *line;
	size_t len;

	/* the NUL after "ab" lands on the next line's length: it must be put back */
	setup(&io, &m, "0006ab0006cd", 0);
	pkt_read(&io, &line, &len, false);
	is_str(line, "ab", "first line terminated");
	is_int(pkt_read(&io, &line, &len, false), PKT_DATA, "next line still parses");
	is_str(line, "cd", "next line intact");
}

static void test_bad(const char *in, const char *want, const char *what)
{
	static struct pkt_io io;
	static struct stream m;
	const char *line;
	size_t len;

	setup(&io, &m, in, 0);
	err_clear();
	ok(pkt_read(&io, &line, &len, true) == -1 && strstr(err_msg(), want), "%s: %s", what,
	   err_msg());
}

static void test_write(void)
{
	static struct pkt_io io;
	static struct stream m;
	static char big[100000];

	setup(&io, &m, "", 0);
	pkt_writef(&io, "# service=%s\n", "git-upload-pack");
	pkt_flush(&io);
	is_str(m.out, "001e# service=git-upload-pack\n0000", "writef and flush");
	ok(pkt_write(&io, big, LARGE_PACKET_DATA_MAX + 1) == -1, "payload over 65516 refused");

	setup(&io, &m, "", 0);
	pkt_writef(&io, "x");
	is_int(m.out_len, 0, "output is buffered until a flush");
	pkt_send(&io);
	is_int(m.out_len, 5, "pkt_send sends it");

	setup(&io, &m, "", 0);
	io.sideband = LARGE_PACKET_DATA_MAX;
	memset(big, 'p', sizeof(big));
	pkt_sideband(&io, SIDEBAND_DATA, big, sizeof(big));
	pkt_flush(&io);
	/* 100000 bytes in chunks of 65515: two packets */
	ok(!memcmp(m.out, "fff0\1", 5), "first side-band packet is full size");
	ok(!memcmp(m.out + 65520, "86ba\1", 5), "second carries the rest (34485 + 5 = 0x86ba)");
	is_int(m.out_len, 65520 + 34490 + 4, "then the flush");
	is_int(io.bytes_out, m.out_len, "bytes_out counts everything sent");

	setup(&io, &m, "", 0);
	pkt_progressf(&io, "Resolving %d\n", 3);
	is_int(m.out_len, 0, "progress without side-band is dropped");
	pkt_sideband(&io, SIDEBAND_ERROR, "boom", 4);
	pkt_send(&io);
	is_str(m.out, "000cERR boom", "an error without side-band is an ERR line");

	setup(&io, &m, "", 0);
	io.sideband = SIDEBAND_SMALL_DATA_MAX;
	pkt_progressf(&io, "hi\n");
	ok(m.out_len == 8 && !memcmp(m.out, "0008\2hi\n", 8), "progress on band 2 is sent at once");
}

int main(void)
{
	test_read(0);
	test_read(1);
	test_read(3);
	test_unchomped_neighbour();
	test_bad("00zz", "bad line length '00zz'", "non-hex length");
	test_bad("0003", "bad line length", "length 3 is reserved");
	test_bad("0004", "bad line length 4", "empty line (0004) refused");
	test_bad("fff1", "bad line length 65521", "over LARGE_PACKET_MAX");
	test_bad("00", "inside a pkt-line length", "stream ends in a length");
	test_bad("000aabc", "inside a pkt-line (7 of 10 bytes)", "stream ends in a line");
	test_write();
	return tap_done();
}
