/* Unit tests for gitd/packfile: entry headers, delta sizes, .idx version 2
 * parsing and lookups over hand-made files, and the streaming check of a
 * pack's sizes (gitformat-pack.txt). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "err.h"
#include "packfile.h"
#include "tap.h"

struct bytes {
	unsigned char data[65536];
	size_t len;
};

static void put(struct bytes *b, const void *p, size_t n)
{
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

static void put_be32(struct bytes *b, uint32_t v)
{
	unsigned char p[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
	                      (unsigned char)(v >> 8), (unsigned char)v};

	put(b, p, 4);
}

/* An entry header: type and SIZE, 4 bits then 7 a byte. */
static void put_entry_header(struct bytes *b, int type, uint64_t size)
{
	unsigned char c = (unsigned char)(type << 4 | (size & 15));

	size >>= 4;
	while (size) {
		c |= 0x80;
		put(b, &c, 1);
		c = size & 0x7f;
		size >>= 7;
	}
	put(b, &c, 1);
}

/* An OFS_DELTA distance: most significant first, +1 per further byte. */
static void put_distance(struct bytes *b, uint64_t v)
{
	unsigned char tmp[16];
	size_t at = sizeof(tmp) - 1;

	tmp[at] = v & 127;
	while (v >>= 7)
		tmp[--at] = (unsigned char)(128 | (--v & 127));
	put(b, tmp + at, sizeof(tmp) - at);
}

static void put_deflated(struct bytes *b, const void *p, size_t n)
{
	uLongf out = (uLongf)(sizeof(b->data) - b->len);

	if (compress(b->data + b->len, &out, p, (uLong)n) != Z_OK)
		abort();
	b->len += out;
}

/* A delta's two sizes, 7 bits a byte, least significant first. */
static size_t delta_size(unsigned char *p, uint64_t v)
{
	size_t n = 0;

	do {
		p[n] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
		n++;
	} while (v);
	return n;
}

static void test_entry_parse(void)
{
	struct packfile_entry e;
	struct bytes b = {.len = 0};
	unsigned char id[PACKFILE_ID_SIZE];

	put_entry_header(&b, PACKFILE_BLOB, 1000000);
	is_int(packfile_entry_parse(&e, b.data, b.len, 12), 0, "a blob header parses");
	is_int(e.type, PACKFILE_BLOB, "its type");
	is_int(e.size, 1000000, "its multi-byte size");
	is_int(e.header_len, b.len, "its header length");
	is_int(packfile_entry_parse(&e, b.data, b.len - 1, 12), PACKFILE_ESHORT,
	       "a header cut short asks for more");

	b.len = 0;
	put_entry_header(&b, PACKFILE_OFS_DELTA, 7);
	put_distance(&b, 300);
	is_int(packfile_entry_parse(&e, b.data, b.len, 1000), 0, "an OFS_DELTA header parses");
	is_int(e.base_offset, 700, "its base is 300 bytes back");
	is_int(e.data_offset, b.len, "its data follows the distance");
	ok(packfile_entry_parse(&e, b.data, b.len, 100) == -1,
	   "a base before the pack header is refused: %s", err_msg());

	b.len = 0;
	memset(id, 0xab, sizeof(id));
	put_entry_header(&b, PACKFILE_REF_DELTA, 7);
	put(&b, id, sizeof(id));
	is_int(packfile_entry_parse(&e, b.data, b.len, 12), 0, "a REF_DELTA header parses");
	ok(e.base_id && !memcmp(e.base_id, id, sizeof(id)), "its base id");
	is_int(packfile_entry_parse(&e, b.data, b.len - 1, 12), PACKFILE_ESHORT,
	       "a REF_DELTA cut inside its id asks for more");

	b.len = 0;
	put_entry_header(&b, 5, 3);
	ok(packfile_entry_parse(&e, b.data, b.len, 12) == -1, "type 5 is refused: %s", err_msg());

	b.len = 0;
	memset(b.data, 0xff, 12);
	b.data[12] = 0x01;
	ok(packfile_entry_parse(&e, b.data, 13, 12) == -1, "a size past 64 bits is refused: %s",
	   err_msg());
}

static void test_delta_sizes(void)
{
	unsigned char p[32];
	uint64_t base = 0, result = 0;
	size_t n = delta_size(p, 12345);

	n += delta_size(p + n, 1ull << 40);
	is_int(packfile_delta_sizes(&base, &result, p, n), (long long)n, "delta sizes parse");
	is_int(base, 12345, "the base size");
	ok(result == 1ull << 40, "the result size");
	is_int(packfile_delta_sizes(&base, &result, p, n - 1), PACKFILE_ESHORT,
	       "delta sizes cut short ask for more");
	memset(p, 0xff, 11);
	p[11] = 0;
	ok(packfile_delta_sizes(&base, &result, p, 12) == -1,
	   "a delta size past 64 bits is refused");
}

/* A pack of a blob and an OFS_DELTA on it, with its .idx; ids are made up
 * (sorted), the pack trailer too: neither is checked here. */
struct fixture {
	struct bytes pack, idx;
	uint64_t blob_offset, delta_offset;
};

static const char blob[] = "hello, packfile\n";

static void make_delta(struct bytes *d, size_t base_len, size_t result_len)
{
	unsigned char op;
	size_t left = result_len;

	d->len = 0;
	d->len += delta_size(d->data, base_len);
	d->len += delta_size(d->data + d->len, result_len);
	/* copy the whole base while it fits, then insert '!' for the rest */
	while (left >= base_len) {
		op = 0x80 | 0x10; /* copy, offset 0, one size byte */
		put(d, &op, 1);
		op = (unsigned char)base_len;
		put(d, &op, 1);
		left -= base_len;
	}
	while (left) {
		op = (unsigned char)(left > 127 ? 127 : left);
		put(d, &op, 1);
		for (unsigned i = 0; i < op; i++)
			put(d, "!", 1);
		left -= op;
	}
}

static void make_fixture(struct fixture *f, bool is_large_offset)
{
	struct bytes delta;
	unsigned char id[PACKFILE_ID_SIZE];

	memset(f, 0, sizeof(*f));
	put(&f->pack, "PACK", 4);
	put_be32(&f->pack, 2);
	put_be32(&f->pack, 2);
	f->blob_offset = f->pack.len;
	put_entry_header(&f->pack, PACKFILE_BLOB, sizeof(blob) - 1);
	put_deflated(&f->pack, blob, sizeof(blob) - 1);
	f->delta_offset = f->pack.len;
	make_delta(&delta, sizeof(blob) - 1, sizeof(blob) + 1);
	put_entry_header(&f->pack, PACKFILE_OFS_DELTA, delta.len);
	put_distance(&f->pack, f->delta_offset - f->blob_offset);
	put_deflated(&f->pack, delta.data, delta.len);
	memset(id, 0x55, sizeof(id));
	put(&f->pack, id, sizeof(id)); /* trailer */

	put(&f->idx, "\377tOc\0\0\0\2", 8);
	/* ids 0x10... (the blob) and 0x20... (the delta) */
	for (int i = 0; i < 256; i++)
		put_be32(&f->idx, i < 0x10 ? 0 : i < 0x20 ? 1 : 2);
	memset(id, 0x10, sizeof(id));
	put(&f->idx, id, sizeof(id));
	memset(id, 0x20, sizeof(id));
	put(&f->idx, id, sizeof(id));
	put_be32(&f->idx, 0x11111111); /* CRCs */
	put_be32(&f->idx, 0x22222222);
	put_be32(&f->idx, (uint32_t)f->blob_offset);
	if (is_large_offset) {
		put_be32(&f->idx, 0x80000000u);
		put_be32(&f->idx, 0);
		put_be32(&f->idx, (uint32_t)f->delta_offset);
	} else {
		put_be32(&f->idx, (uint32_t)f->delta_offset);
	}
	memset(id, 0x66, sizeof(id));
	put(&f->idx, id, sizeof(id));
	put(&f->idx, id, sizeof(id));
}

static void test_idx(void)
{
	static struct fixture f;
	struct packfile_idx idx;
	unsigned char id[PACKFILE_ID_SIZE];
	uint64_t off = 0;

	for (int large = 0; large < 2; large++) {
		make_fixture(&f, large);
		if (!ok(packfile_idx_parse(&idx, f.idx.data, f.idx.len) == 0,
		        "a hand-made .idx parses (%s offsets)", large ? "8-byte" : "4-byte"))
			return;
		is_int(idx.nobjects, 2, "it has two objects");
		is_int(idx.nlarge, large, "and its 8-byte offsets");
		memset(id, 0x20, sizeof(id));
		is_int(packfile_idx_find(&idx, id), 1, "the second id is found");
		ok(!memcmp(packfile_idx_id(&idx, 1), id, sizeof(id)), "its id at position 1");
		is_int(packfile_idx_offset(&off, &idx, 1, f.pack.len), 0, "its offset reads");
		is_int(off, f.delta_offset, "its offset is the delta's");
		ok(packfile_idx_offset(&off, &idx, 1, f.delta_offset + 5) == -1,
		   "an offset inside the trailer of a shorter pack is refused");
		id[19] = 0x21;
		is_int(packfile_idx_find(&idx, id), -1, "a missing id is not found");
	}
	ok(packfile_idx_parse(&idx, f.idx.data, f.idx.len - 4) == -1,
	   "an .idx whose size does not fit its tables is refused: %s", err_msg());
	f.idx.data[3] = 'x';
	ok(packfile_idx_parse(&idx, f.idx.data, f.idx.len) == -1, "a bad magic is refused");
	make_fixture(&f, false);
	f.idx.data[8 + 4 * 0x30 + 3] = 1; /* the fan-out drops from 2 to 1 */
	ok(packfile_idx_parse(&idx, f.idx.data, f.idx.len) == -1,
	   "a decreasing fan-out is refused: %s", err_msg());
	make_fixture(&f, true);
	f.idx.data[8 + 1024 + 40 + 8 + 4 + 3] = 1; /* 8-byte offset #1: missing */
	ok(packfile_idx_parse(&idx, f.idx.data, f.idx.len) == 0 &&
	       packfile_idx_offset(&off, &idx, 1, f.pack.len) == -1,
	   "an offset naming a missing 8-byte entry is refused");
}

static void test_pack(void)
{
	static struct fixture f;
	struct packfile p;
	struct packfile_entry e;
	int64_t base = -2;

	make_fixture(&f, false);
	if (!ok(packfile_open_memory(&p, f.idx.data, f.idx.len, f.pack.data, f.pack.len) == 0,
	        "the hand-made pack opens: %s", err_msg()))
		return;
	is_int(packfile_load_order(&p), 0, "its entries sort by offset");
	is_int(p.order[0], 0, "the blob comes first");
	is_int(packfile_entry_end(&p, f.blob_offset), f.delta_offset,
	       "the blob ends where the delta starts");
	is_int(packfile_entry_end(&p, f.delta_offset), f.pack.len - PACKFILE_ID_SIZE,
	       "the delta ends at the trailer");
	is_int(packfile_pos_at(&p, f.delta_offset), 1, "the delta's position by offset");
	is_int(packfile_pos_at(&p, f.delta_offset + 1), -1, "no entry starts inside one");
	is_int(packfile_object_header(&e, &base, &p, 1), 0, "the delta's header reads");
	is_int(e.type, PACKFILE_OFS_DELTA, "it is an OFS_DELTA");
	is_int(base, 0, "its base is the blob");
	is_int(packfile_object_header(&e, &base, &p, 0), 0, "the blob's header reads");
	is_int(e.size, sizeof(blob) - 1, "the blob's declared size");
	packfile_close(&p);

	make_fixture(&f, false);
	f.pack.data[11] = 3;
	ok(packfile_open_memory(&p, f.idx.data, f.idx.len, f.pack.data, f.pack.len) == -1,
	   "a pack whose count differs from its index is refused: %s", err_msg());
}

/* Feeds F's pack to a check STEP bytes at a time; returns its result. */
static int check_pack(struct packfile_check *c, const struct bytes *pack, uint64_t limit,
                      size_t step)
{
	int r = 0;

	if (packfile_check_init(c, limit) < 0)
		return -1;
	for (size_t at = 0; at < pack->len && r == 0; at += step)
		r = packfile_check_add(c, pack->data + at,
		                       at + step > pack->len ? pack->len - at : step);
	return r;
}

/* A pack of one entry: TYPE declaring SIZE, deflating DATA. */
static void one_entry_pack(struct bytes *b, int type, uint64_t size, const void *data, size_t len)
{
	unsigned char trailer[PACKFILE_ID_SIZE] = {0};

	b->len = 0;
	put(b, "PACK", 4);
	put_be32(b, 2);
	put_be32(b, 1);
	put_entry_header(b, type, size);
	put_deflated(b, data, len);
	put(b, trailer, sizeof(trailer));
}

static void test_check(void)
{
	static struct fixture f;
	static struct packfile_check c;
	static struct bytes b, d;
	static unsigned char zeros[200000];

	make_fixture(&f, false);
	for (size_t step = 1; step <= f.pack.len; step = step * 3 + 1) {
		ok(check_pack(&c, &f.pack, 0, step) == 0 && packfile_check_is_done(&c),
		   "a good pack passes, %zu bytes at a time", step);
		packfile_check_release(&c);
	}
	is_int(check_pack(&c, &f.pack, sizeof(blob) + 1, 7), 0,
	       "a pack passes a limit equal to its largest object");
	packfile_check_release(&c);

	one_entry_pack(&b, PACKFILE_BLOB, sizeof(blob), blob, sizeof(blob) - 1);
	ok(check_pack(&c, &b, 0, 5) == -1 && strstr(c.reason, "inflates to 16 bytes"),
	   "a blob declaring one byte more than it inflates to is refused: %s", c.reason);
	packfile_check_release(&c);
	one_entry_pack(&b, PACKFILE_COMMIT, sizeof(blob) - 2, blob, sizeof(blob) - 1);
	ok(check_pack(&c, &b, 0, 5) == -1 && strstr(c.reason, "more than its declared"),
	   "a commit declaring one byte less is refused: %s", c.reason);
	packfile_check_release(&c);

	one_entry_pack(&b, PACKFILE_BLOB, sizeof(zeros), zeros, sizeof(zeros));
	ok(check_pack(&c, &b, 100000, 5) == -1 &&
	       strstr(c.reason, "blob at offset 12 is 195.3 KiB, larger than the maximum object "
	                        "size 97.7 KiB"),
	   "a blob over the limit is refused: %s", c.reason);
	ok(c.offset < 20, "before its data is read (%llu bytes read)",
	   (unsigned long long)c.offset);
	packfile_check_release(&c);

	/* a delta whose data is small and whose result is over the limit */
	make_delta(&d, sizeof(blob) - 1, 300);
	b.len = 0;
	put(&b, "PACK", 4);
	put_be32(&b, 2);
	put_be32(&b, 1);
	put_entry_header(&b, PACKFILE_REF_DELTA, d.len);
	memset(zeros, 0x42, PACKFILE_ID_SIZE);
	put(&b, zeros, PACKFILE_ID_SIZE);
	put_deflated(&b, d.data, d.len);
	put(&b, zeros, PACKFILE_ID_SIZE);
	memset(zeros, 0, PACKFILE_ID_SIZE);
	ok(check_pack(&c, &b, 299, 3) == -1 && strstr(c.reason, "delta result at offset 12 is 300"),
	   "a delta whose result is over the limit is refused: %s", c.reason);
	packfile_check_release(&c);
	is_int(check_pack(&c, &b, 300, 3), 0, "the same delta passes a limit of its result");
	packfile_check_release(&c);

	one_entry_pack(&b, PACKFILE_BLOB, sizeof(blob) - 1, blob, sizeof(blob) - 1);
	b.data[12 + 1 + 4] ^= 0xff; /* inside the deflated data */
	ok(check_pack(&c, &b, 0, 64) == -1 && strstr(c.reason, "bad object at offset 12"),
	   "a corrupt zlib stream is refused: %s", c.reason);
	ok(packfile_check_add(&c, b.data, 1) == -1, "and stays refused");
	packfile_check_release(&c);

	b.data[0] = 'X';
	ok(check_pack(&c, &b, 0, 64) == -1 && strstr(c.reason, "signature"),
	   "a bad pack signature is refused: %s", c.reason);
	packfile_check_release(&c);
}

int main(void)
{
	test_entry_parse();
	test_delta_sizes();
	test_idx();
	test_pack();
	test_check();
	return tap_done();
}
