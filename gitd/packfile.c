/* packfile: reads .idx version 2 files and pack entries for receive-pack and
 * upload-pack, and checks a pack as it streams in (see packfile.h; formats
 * from git Documentation/gitformat-pack.txt). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "err.h"
#include "packfile.h"
#include "banned.h"

#define IDX_MAGIC "\377tOc\0\0\0\2"
#define FANOUT_SIZE (256 * 4)

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const unsigned char *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* ---- .idx ---------------------------------------------------------------- */

int packfile_idx_parse(struct packfile_idx *out, const unsigned char *data, size_t size)
{
	uint32_t n = 0;
	size_t fixed;

	memset(out, 0, sizeof(*out));
	if (size < 8 + FANOUT_SIZE + 2 * PACKFILE_ID_SIZE || memcmp(data, IDX_MAGIC, 8))
		return err_set("not a version 2 pack index");
	for (int i = 0; i < 256; i++) {
		uint32_t v = be32(data + 8 + 4 * i);

		if (v < n)
			return err_set("pack index fan-out decreases");
		n = v;
	}
	/* n < 2^32 and each entry takes 28 bytes: no overflow in 64 bits */
	fixed = 8 + FANOUT_SIZE + (size_t)n * (PACKFILE_ID_SIZE + 4 + 4) + 2 * PACKFILE_ID_SIZE;
	if (size < fixed || (size - fixed) % 8)
		return err_set("pack index size does not match its %u objects", n);
	out->data = data;
	out->size = size;
	out->nobjects = n;
	out->fanout = data + 8;
	out->ids = out->fanout + FANOUT_SIZE;
	out->offsets = out->ids + (size_t)n * (PACKFILE_ID_SIZE + 4);
	out->large = out->offsets + (size_t)n * 4;
	out->nlarge = (size - fixed) / 8;
	return 0;
}

int64_t packfile_idx_find(const struct packfile_idx *idx, const unsigned char *id)
{
	uint32_t lo, hi;
	uint64_t key;

	if (!idx->nobjects)
		return -1;
	lo = id[0] ? be32(idx->fanout + 4 * (id[0] - 1)) : 0;
	hi = be32(idx->fanout + 4 * id[0]);
	/* ids are uniform: their first 8 bytes as a number nearly always decide */
	key = be64(id);
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const unsigned char *at = idx->ids + (size_t)mid * PACKFILE_ID_SIZE;
		uint64_t k = be64(at);
		int cmp = k < key ? -1 : k > key ? 1 : memcmp(at + 8, id + 8, PACKFILE_ID_SIZE - 8);

		if (!cmp)
			return mid;
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

const unsigned char *packfile_idx_id(const struct packfile_idx *idx, uint32_t pos)
{
	return idx->ids + (size_t)pos * PACKFILE_ID_SIZE;
}

int packfile_idx_offset(uint64_t *out, const struct packfile_idx *idx, uint32_t pos,
                        uint64_t pack_size)
{
	uint32_t v = be32(idx->offsets + 4 * (size_t)pos);
	uint64_t off = v;

	if (v & 0x80000000u) {
		if ((v & 0x7fffffffu) >= idx->nlarge)
			return -1;
		off = be64(idx->large + 8 * (size_t)(v & 0x7fffffffu));
	}
	if (pack_size < PACKFILE_HEADER_SIZE + PACKFILE_ID_SIZE || off < PACKFILE_HEADER_SIZE ||
	    off >= pack_size - PACKFILE_ID_SIZE)
		return -1;
	*out = off;
	return 0;
}

/* ---- entries ------------------------------------------------------------- */

int packfile_entry_parse(struct packfile_entry *out, const unsigned char *p, size_t avail,
                         uint64_t offset)
{
	size_t i = 1;
	unsigned shift = 4;
	unsigned char c;

	memset(out, 0, sizeof(*out));
	if (!avail)
		return PACKFILE_ESHORT;
	c = p[0];
	out->type = (c >> 4) & 7;
	out->size = c & 15;
	while (c & 0x80) {
		if (i >= avail)
			return PACKFILE_ESHORT;
		c = p[i++];
		if (shift > 57 || (shift > 57 - 7 && (uint64_t)(c & 0x7f) >> (64 - shift)))
			return err_set("pack entry at offset %llu: size has more than 64 bits",
			               (unsigned long long)offset);
		out->size |= (uint64_t)(c & 0x7f) << shift;
		shift += 7;
	}
	out->header_len = i;
	if (out->type == PACKFILE_OFS_DELTA) {
		uint64_t distance;

		if (i >= avail)
			return PACKFILE_ESHORT;
		c = p[i++];
		distance = c & 0x7f;
		while (c & 0x80) {
			if (i >= avail)
				return PACKFILE_ESHORT;
			if (distance >= (UINT64_C(1) << 56))
				return err_set("pack entry at offset %llu: base distance overflows",
				               (unsigned long long)offset);
			c = p[i++];
			distance = ((distance + 1) << 7) | (c & 0x7f);
		}
		if (!distance || offset < PACKFILE_HEADER_SIZE ||
		    distance > offset - PACKFILE_HEADER_SIZE)
			return err_set("pack entry at offset %llu: delta base out of the pack",
			               (unsigned long long)offset);
		out->base_offset = offset - distance;
	} else if (out->type == PACKFILE_REF_DELTA) {
		if (avail - i < PACKFILE_ID_SIZE)
			return PACKFILE_ESHORT;
		out->base_id = p + i;
		i += PACKFILE_ID_SIZE;
	} else if (out->type < PACKFILE_COMMIT || out->type > PACKFILE_TAG) {
		return err_set("pack entry at offset %llu: unknown type %d",
		               (unsigned long long)offset, out->type);
	}
	out->data_offset = i;
	return 0;
}

/* One size of a delta header: 7 bits a byte, least significant first. */
static int delta_varint(uint64_t *out, const unsigned char *p, size_t len, size_t *i)
{
	unsigned shift = 0;
	unsigned char c;

	*out = 0;
	do {
		if (*i >= len)
			return PACKFILE_ESHORT;
		c = p[(*i)++];
		if (shift > 63 || (shift > 57 && (uint64_t)(c & 0x7f) >> (64 - shift)))
			return err_set("delta size has more than 64 bits");
		*out |= (uint64_t)(c & 0x7f) << shift;
		shift += 7;
	} while (c & 0x80);
	return 0;
}

int packfile_delta_sizes(uint64_t *base_size, uint64_t *result_size, const unsigned char *p,
                         size_t len)
{
	size_t i = 0;
	int r;

	if ((r = delta_varint(base_size, p, len, &i)) < 0 ||
	    (r = delta_varint(result_size, p, len, &i)) < 0)
		return r;
	return (int)i;
}

/* ---- a mapped pack ------------------------------------------------------- */

static int map_file(unsigned char **out, size_t *size, const char *path)
{
	struct stat st;
	void *m;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	*out = NULL;
	*size = 0;
	if (fd < 0 || fstat(fd, &st) < 0) {
		err_set("cannot open %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (st.st_size <= 0) {
		close(fd);
		return err_set("%s is empty", path);
	}
	m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return err_set("cannot map %s: %s", path, strerror(errno));
	*out = m;
	*size = (size_t)st.st_size;
	return 0;
}

void packfile_drop_pages(const struct packfile *p, uint64_t from, uint64_t to)
{
	long page = sysconf(_SC_PAGESIZE);
	uint64_t start, end;

	if (!p->pack_map || page <= 0 || to > p->pack_size)
		return;
	start = (from + (uint64_t)page - 1) / (uint64_t)page * (uint64_t)page;
	end = to / (uint64_t)page * (uint64_t)page;
	if (end > start)
		madvise(p->pack_map + start, (size_t)(end - start), MADV_DONTNEED);
}

void packfile_drop_idx_pages(const struct packfile *p)
{
	if (p->idx_map)
		madvise(p->idx_map, p->idx_size, MADV_DONTNEED);
}

static int check_pack_header(const struct packfile *p, const unsigned char *pack, size_t size)
{
	uint32_t version;

	if (size < PACKFILE_HEADER_SIZE + PACKFILE_ID_SIZE || memcmp(pack, "PACK", 4))
		return err_set("not a pack");
	version = be32(pack + 4);
	if (version != 2 && version != 3)
		return err_set("pack version %u is not supported", version);
	if (be32(pack + 8) != p->idx.nobjects)
		return err_set("pack has %u objects, its index %u", be32(pack + 8),
		               p->idx.nobjects);
	return 0;
}

int packfile_open_memory(struct packfile *out, const unsigned char *idx, size_t idx_size,
                         const unsigned char *pack, size_t pack_size)
{
	memset(out, 0, sizeof(*out));
	if (packfile_idx_parse(&out->idx, idx, idx_size) < 0 ||
	    check_pack_header(out, pack, pack_size) < 0) {
		memset(out, 0, sizeof(*out));
		return -1;
	}
	out->pack_size = pack_size;
	out->idx_size = idx_size;
	/* the maps stay NULL: packfile_close() unmaps nothing */
	out->pack_bytes = pack;
	return 0;
}

int packfile_open(struct packfile *out, const char *idx_path, const char *pack_path)
{
	memset(out, 0, sizeof(*out));
	if (map_file(&out->idx_map, &out->idx_size, idx_path) < 0 ||
	    map_file(&out->pack_map, &out->pack_size, pack_path) < 0)
		goto fail;
	if (packfile_idx_parse(&out->idx, out->idx_map, out->idx_size) < 0 ||
	    check_pack_header(out, out->pack_map, out->pack_size) < 0) {
		err_set("%s: %s", pack_path, err_msg());
		goto fail;
	}
	out->pack_bytes = out->pack_map;
	return 0;
fail:
	packfile_close(out);
	return -1;
}

void packfile_close(struct packfile *p)
{
	if (p->idx_map)
		munmap(p->idx_map, p->idx_size);
	if (p->pack_map)
		munmap(p->pack_map, p->pack_size);
	free(p->offsets);
	free(p->order);
	memset(p, 0, sizeof(*p));
}

struct by_offset {
	uint64_t offset;
	uint32_t pos;
};

static int compare_offsets(const void *a, const void *b)
{
	const struct by_offset *x = a, *y = b;

	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

int packfile_load_order(struct packfile *p)
{
	uint32_t n = p->idx.nobjects;
	struct by_offset *tmp = NULL;
	int ret = -1;

	if (p->offsets)
		return 0;
	tmp = malloc(((size_t)n + 1) * sizeof(*tmp));
	p->offsets = malloc(((size_t)n + 1) * sizeof(*p->offsets));
	p->order = malloc(((size_t)n + 1) * sizeof(*p->order));
	if (!tmp || !p->offsets || !p->order) {
		err_set("out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		if (packfile_idx_offset(&tmp[i].offset, &p->idx, i, p->pack_size) < 0) {
			err_set("pack index offset %u is out of the pack", i);
			goto out;
		}
		tmp[i].pos = i;
	}
	qsort(tmp, n, sizeof(*tmp), compare_offsets);
	for (uint32_t i = 0; i < n; i++) {
		if (i && tmp[i].offset == tmp[i - 1].offset) {
			err_set("pack index gives offset %llu twice",
			        (unsigned long long)tmp[i].offset);
			goto out;
		}
		p->offsets[i] = tmp[i].offset;
		p->order[i] = tmp[i].pos;
	}
	p->offsets[n] = p->pack_size - PACKFILE_ID_SIZE;
	ret = 0;
out:
	free(tmp);
	if (ret < 0) {
		free(p->offsets);
		free(p->order);
		p->offsets = NULL;
		p->order = NULL;
	}
	return ret;
}

/* The index in p->offsets of the first offset greater than OFFSET. */
static size_t upper_bound(const struct packfile *p, uint64_t offset)
{
	size_t lo = 0, hi = p->idx.nobjects;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (p->offsets[mid] <= offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

uint64_t packfile_entry_end(const struct packfile *p, uint64_t offset)
{
	return p->offsets[upper_bound(p, offset)];
}

int64_t packfile_pos_at(const struct packfile *p, uint64_t offset)
{
	size_t i = upper_bound(p, offset);

	return i && p->offsets[i - 1] == offset ? (int64_t)p->order[i - 1] : -1;
}

int packfile_object_header(struct packfile_entry *out, int64_t *base_pos, const struct packfile *p,
                           uint32_t pos)
{
	uint64_t offset, end;
	int64_t base = -1;
	int r;

	if (packfile_idx_offset(&offset, &p->idx, pos, p->pack_size) < 0)
		return err_set("pack index offset %u is out of the pack", pos);
	end = packfile_entry_end(p, offset);
	r = packfile_entry_parse(out, p->pack_bytes + offset, (size_t)(end - offset), offset);
	if (r == PACKFILE_ESHORT || (r == 0 && out->data_offset >= end - offset))
		return err_set("pack entry at offset %llu is truncated",
		               (unsigned long long)offset);
	if (r < 0)
		return -1;
	if (out->type == PACKFILE_OFS_DELTA && (base = packfile_pos_at(p, out->base_offset)) < 0)
		return err_set("pack entry at offset %llu: delta base is not an entry",
		               (unsigned long long)offset);
	if (out->type == PACKFILE_REF_DELTA)
		base = packfile_idx_find(&p->idx, out->base_id);
	if (base_pos)
		*base_pos = base;
	return 0;
}

/* ---- checking a pack as it streams in ------------------------------------ */

enum check_state {
	CHECK_PACK_HEADER,  /* gathering the 12-byte pack header */
	CHECK_ENTRY_HEADER, /* gathering an entry header */
	CHECK_ENTRY_DATA,   /* inflating an entry's zlib stream */
	CHECK_TRAILER,      /* every entry seen */
	CHECK_FAILED,
};

static const char *type_name(int type)
{
	static const char *const names[] = {"object", "commit", "tree",  "blob",
	                                    "tag",    "object", "delta", "delta"};

	return names[type & 7];
}

/* Refuses the pack: REASON (printf) for the client and err_msg(). */
static int check_fail(struct packfile_check *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int check_fail(struct packfile_check *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
	va_end(ap);
	c->state = CHECK_FAILED;
	return err_set("%s", c->reason);
}

/* Human units for a refusal: "512.0 MiB", "1.5 KiB", "17 bytes". */
static const char *show_size(char *buf, size_t size, uint64_t n)
{
	if (n >= (UINT64_C(1) << 30))
		snprintf(buf, size, "%.1f GiB", (double)n / (1 << 30));
	else if (n >= (1u << 20))
		snprintf(buf, size, "%.1f MiB", (double)n / (1 << 20));
	else if (n >= 1024)
		snprintf(buf, size, "%.1f KiB", (double)n / 1024);
	else
		snprintf(buf, size, "%llu bytes", (unsigned long long)n);
	return buf;
}

static int check_too_large(struct packfile_check *c, const char *what, uint64_t size)
{
	char a[32], b[32];

	return check_fail(c, "%s at offset %llu is %s, larger than the maximum object size %s",
	                  what, (unsigned long long)c->entry_offset, show_size(a, sizeof(a), size),
	                  show_size(b, sizeof(b), c->max_object_size));
}

int packfile_check_init(struct packfile_check *c, uint64_t max_object_size)
{
	memset(c, 0, sizeof(*c));
	c->max_object_size = max_object_size;
	if (inflateInit(&c->z) != Z_OK) {
		c->state = CHECK_FAILED;
		return err_set("cannot set up zlib");
	}
	c->has_z = true;
	c->state = CHECK_PACK_HEADER;
	return 0;
}

void packfile_check_release(struct packfile_check *c)
{
	if (c->has_z)
		inflateEnd(&c->z);
	c->has_z = false;
	free(c->offsets);
	c->offsets = NULL;
	c->noffsets = c->offsets_alloc = 0;
}

void packfile_check_keep_offsets(struct packfile_check *c)
{
	c->keeps_offsets = true;
}

/* Appends the current entry's offset to c->offsets (growing it by half,
 * at most to the header's object count). */
static int record_offset(struct packfile_check *c)
{
	if (c->noffsets == c->offsets_alloc) {
		uint64_t n = c->offsets_alloc < 1024 ? 1024 : (uint64_t)c->offsets_alloc * 3 / 2;
		uint64_t *grown;

		if (n > c->nobjects)
			n = c->nobjects;
		if (n <= c->noffsets)
			return check_fail(c, "pack has more entries than its header says");
		grown = realloc(c->offsets, (size_t)n * sizeof(*grown));
		if (!grown)
			return check_fail(c, "out of memory");
		c->offsets = grown;
		c->offsets_alloc = (uint32_t)n;
	}
	c->offsets[c->noffsets++] = c->entry_offset;
	return 0;
}

bool packfile_check_is_done(const struct packfile_check *c)
{
	return c->state == CHECK_TRAILER;
}

/* Takes bytes into c->hdr up to WANT of them; returns how many it took. */
static size_t gather(struct packfile_check *c, const unsigned char *p, size_t n, size_t want)
{
	size_t take = want - c->nhdr < n ? want - c->nhdr : n;

	memcpy(c->hdr + c->nhdr, p, take);
	c->nhdr += take;
	return take;
}

/* An entry header is complete in c->hdr[0, c->nhdr) or not yet: returns the
 * bytes of the header that were in c->hdr, 0 when more are needed, -1 when
 * refused. */
static int entry_header(struct packfile_check *c)
{
	int r = packfile_entry_parse(&c->entry, c->hdr, c->nhdr, c->entry_offset);

	if (r == PACKFILE_ESHORT) {
		if (c->nhdr == sizeof(c->hdr))
			return check_fail(c, "bad object at offset %llu: header is too long",
			                  (unsigned long long)c->entry_offset);
		return 0;
	}
	if (r < 0)
		return check_fail(c, "bad object at offset %llu: %s",
		                  (unsigned long long)c->entry_offset, err_msg());
	if (c->max_object_size && c->entry.size > c->max_object_size)
		return check_too_large(c, type_name(c->entry.type), c->entry.size);
	if (c->keeps_offsets && record_offset(c) < 0)
		return -1;
	c->entry.base_id = NULL; /* points into c->hdr, which is reused */
	c->inflated = 0;
	c->ndelta_hdr = 0;
	c->has_delta_sizes = false;
	if (inflateReset(&c->z) != Z_OK)
		return check_fail(c, "cannot reset zlib");
	return (int)c->entry.data_offset;
}

/* Looks at the first inflated bytes of a delta: its result size. */
static int delta_start(struct packfile_check *c, const unsigned char *out, size_t n)
{
	uint64_t base_size, result_size;
	size_t take =
	    sizeof(c->delta_hdr) - c->ndelta_hdr < n ? sizeof(c->delta_hdr) - c->ndelta_hdr : n;
	int r;

	memcpy(c->delta_hdr + c->ndelta_hdr, out, take);
	c->ndelta_hdr += take;
	r = packfile_delta_sizes(&base_size, &result_size, c->delta_hdr, c->ndelta_hdr);
	if (r == PACKFILE_ESHORT && c->ndelta_hdr < sizeof(c->delta_hdr) &&
	    c->inflated + n < c->entry.size)
		return 0;
	if (r < 0)
		return check_fail(c, "bad object at offset %llu: delta header is malformed",
		                  (unsigned long long)c->entry_offset);
	c->has_delta_sizes = true;
	if (c->max_object_size && result_size > c->max_object_size)
		return check_too_large(c, "delta result", result_size);
	return 0;
}

/* Inflates from P (N bytes); returns the bytes used, -1 when refused. */
static ssize_t entry_data(struct packfile_check *c, const unsigned char *p, size_t n)
{
	bool is_delta = c->entry.type == PACKFILE_OFS_DELTA || c->entry.type == PACKFILE_REF_DELTA;
	size_t used = 0;

	/* until the input is used up and zlib holds no more output */
	for (;;) {
		size_t produced;
		int zr;

		c->z.next_in = (unsigned char *)p + used;
		c->z.avail_in = (uInt)(n - used > UINT32_MAX ? UINT32_MAX : n - used);
		c->z.next_out = c->scratch;
		c->z.avail_out = sizeof(c->scratch);
		zr = inflate(&c->z, Z_NO_FLUSH);
		used = (size_t)(c->z.next_in - p);
		produced = sizeof(c->scratch) - c->z.avail_out;
		if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR)
			return check_fail(c, "bad object at offset %llu: inflate returned %d",
			                  (unsigned long long)c->entry_offset, zr);
		if (produced > c->entry.size - c->inflated)
			return check_fail(c,
			                  "bad object at offset %llu: %s inflates to more than its "
			                  "declared %llu bytes",
			                  (unsigned long long)c->entry_offset,
			                  type_name(c->entry.type),
			                  (unsigned long long)c->entry.size);
		if (is_delta && !c->has_delta_sizes && produced &&
		    delta_start(c, c->scratch, produced) < 0)
			return -1;
		c->inflated += produced;
		if (zr == Z_STREAM_END) {
			if (c->inflated != c->entry.size)
				return check_fail(
				    c,
				    "bad object at offset %llu: %s inflates to %llu bytes, "
				    "its header declares %llu",
				    (unsigned long long)c->entry_offset, type_name(c->entry.type),
				    (unsigned long long)c->inflated,
				    (unsigned long long)c->entry.size);
			if (is_delta && !c->has_delta_sizes)
				return check_fail(
				    c, "bad object at offset %llu: delta header is truncated",
				    (unsigned long long)c->entry_offset);
			c->nchecked++;
			c->state = c->nchecked == c->nobjects ? CHECK_TRAILER : CHECK_ENTRY_HEADER;
			c->nhdr = 0;
			c->entry_offset = c->offset + used;
			return (ssize_t)used;
		}
		if (used == n && produced < sizeof(c->scratch))
			break;
		if (zr == Z_BUF_ERROR && !produced)
			break;
	}
	return (ssize_t)used;
}

int packfile_check_add(struct packfile_check *c, const unsigned char *p, size_t n)
{
	while (n) {
		size_t used = 0;

		switch (c->state) {
		case CHECK_PACK_HEADER:
			used = gather(c, p, n, PACKFILE_HEADER_SIZE);
			if (c->nhdr < PACKFILE_HEADER_SIZE)
				break;
			/* git index-pack's words */
			if (memcmp(c->hdr, "PACK", 4))
				return check_fail(c, "pack signature mismatch");
			if (be32(c->hdr + 4) != 2 && be32(c->hdr + 4) != 3)
				return check_fail(c, "pack version %u unsupported",
				                  be32(c->hdr + 4));
			c->nobjects = be32(c->hdr + 8);
			c->nhdr = 0;
			c->entry_offset = PACKFILE_HEADER_SIZE;
			c->state = c->nobjects ? CHECK_ENTRY_HEADER : CHECK_TRAILER;
			break;
		case CHECK_ENTRY_HEADER: {
			size_t before = c->nhdr;
			int r;

			used = gather(c, p, n, sizeof(c->hdr));
			r = entry_header(c);
			if (r < 0)
				return -1;
			if (r == 0)
				break;
			/* the header may end before the bytes just gathered do */
			used = (size_t)r - before;
			c->state = CHECK_ENTRY_DATA;
			break;
		}
		case CHECK_ENTRY_DATA: {
			ssize_t r = entry_data(c, p, n);

			if (r < 0)
				return -1;
			used = (size_t)r;
			break;
		}
		case CHECK_TRAILER:
			c->offset += n;
			return 0;
		default:
			return err_set("%s", c->reason[0] ? c->reason : "pack already refused");
		}
		c->offset += used;
		p += used;
		n -= used;
	}
	return c->state == CHECK_FAILED ? -1 : 0;
}
