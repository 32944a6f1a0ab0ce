/* libFuzzer target: gitd/packfile over untrusted bytes. The first byte picks
 * a size limit and how many bytes each packfile_check_add call gets; the
 * next two give the length of an .idx; the rest is the .idx then the pack.
 * The streaming check runs over the pack bytes, and the .idx and pack are
 * opened together and every entry's header is read, every id looked up:
 * all either parse or fail cleanly, and what parses stays in bounds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "packfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_stream(const uint8_t *p, size_t n, uint64_t limit, size_t step)
{
	static struct packfile_check c;
	int r = 0;

	if (packfile_check_init(&c, limit) < 0)
		abort();
	for (size_t at = 0; at < n && r == 0; at += step)
		r = packfile_check_add(&c, p + at, at + step > n ? n - at : step);
	if (r < 0 && (!c.reason[0] || packfile_check_add(&c, p, n ? 1 : 0) != -1))
		abort(); /* a refusal has a reason and sticks */
	if (r == 0 && c.offset != n)
		abort();
	packfile_check_release(&c);
}

static void read_pack(const uint8_t *idx, size_t idx_size, const uint8_t *pack, size_t pack_size)
{
	struct packfile p;

	if (packfile_open_memory(&p, idx, idx_size, pack, pack_size) < 0)
		return;
	for (uint32_t i = 0; i < p.idx.nobjects; i++)
		if (packfile_idx_find(&p.idx, packfile_idx_id(&p.idx, i)) < 0)
			break; /* ids out of order: not found is a fine answer */
	if (packfile_load_order(&p) == 0) {
		for (uint32_t i = 0; i < p.idx.nobjects; i++) {
			struct packfile_entry e;
			int64_t base;
			uint64_t off;

			if (packfile_idx_offset(&off, &p.idx, i, p.pack_size) < 0 ||
			    packfile_entry_end(&p, off) > p.pack_size - PACKFILE_ID_SIZE ||
			    packfile_pos_at(&p, off) != (int64_t)i)
				abort();
			if (packfile_object_header(&e, &base, &p, i) == 0 &&
			    (e.data_offset >= packfile_entry_end(&p, off) - off ||
			     base >= (int64_t)p.idx.nobjects ||
			     (e.type == PACKFILE_OFS_DELTA && base < 0)))
				abort();
		}
	}
	packfile_close(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t idx_size;
	uint64_t limit;

	if (size < 3)
		return 0;
	limit = (data[0] & 0x0f) ? (uint64_t)1 << (data[0] & 0x0f) : 0;
	idx_size = (size_t)data[1] << 8 | data[2];
	data += 3;
	size -= 3;
	check_stream(data, size, limit, (size_t)(data[-3] >> 4) + 1);
	if (idx_size <= size) {
		check_stream(data + idx_size, size - idx_size, limit, 4096);
		read_pack(data, idx_size, data + idx_size, size - idx_size);
	}
	return 0;
}
