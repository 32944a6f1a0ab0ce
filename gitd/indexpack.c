/* indexpack: indexes a received pack on every CPU, as git's index-pack does
 * (see indexpack.h): entry headers, then non-delta objects hashed in
 * parallel, then delta trees resolved in parallel from their roots, with
 * the connectivity check done on each object while it is in memory; then
 * the .idx version 2 (gitformat-pack.txt). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <openssl/evp.h>

#include "capability.h"
#include "err.h"
#include "fs.h"
#include "indexpack.h"
#include "packfile.h"
#include "banned.h"

/* Phase 1 hands out this many entries of pack order at a time. */
#define HASH_BLOCK 64

/* The calling thread wakes this often to report progress. */
#define PROGRESS_INTERVAL_MS 250

/* A set of named ids starts with this many slots and doubles at half full,
 * up to NAMES_MAX_SLOTS (then the run fails as out of memory). */
#define NAMES_MIN_SLOTS 1024u
#define NAMES_MAX_SLOTS (1u << 30)

#define ID_SIZE PACKFILE_ID_SIZE
#define IDX_SMALL_MAX 0x7fffffffu /* larger offsets go to the 8-byte table */

/* One entry of the pack, by position in pack order. */
struct object {
	uint64_t offset;             /* where its entry starts */
	uint64_t size;               /* declared inflated size: the object's, or
	                                a delta's delta data */
	uint32_t crc;                /* CRC32 of the entry's raw bytes */
	uint32_t base;               /* OFS_DELTA: its base's position */
	unsigned char id[ID_SIZE];   /* once hashed */
	uint8_t type;                /* entry type (enum packfile_type) */
	_Atomic uint8_t object_type; /* commit, tree, blob or tag once known;
	                                0 before (taking it claims a delta) */
	uint8_t data_offset;         /* entry header bytes */
};

/* A REF_DELTA, found by its base's id. */
struct ref_delta {
	unsigned char base_id[ID_SIZE];
	uint32_t pos;
};

/* Ids an object of the pack names, per thread (no locks), deduplicated. */
struct names {
	unsigned char (*ids)[ID_SIZE]; /* slots; all zero when empty */
	uint32_t nslots, count;
	bool has_zero; /* the zero id was named */
};

struct run {
	int fd;                          /* the pack file, read with pread: mapped, all
	                                    of it would count in the process's RSS */
	uint64_t trailer;                /* its offset */
	unsigned char checksum[ID_SIZE]; /* the trailer */
	struct object *objects;
	uint32_t n, ndeltas;
	uint32_t *ofs_first; /* OFS_DELTA children of position i are
	                        ofs_children[ofs_first[i] .. ofs_first[i + 1]) */
	uint32_t *ofs_children;
	struct ref_delta *refs; /* sorted by base id */
	uint32_t nrefs;
	uint64_t hash_keys[5]; /* random: named ids come from the pusher */
	size_t held_max;       /* opts->held_max or INDEXPACK_HELD_MAX */
	bool checks;           /* the connectivity check is on */

	atomic_uint next;     /* the next position (or block) to take */
	atomic_uint resolved; /* deltas resolved */
	atomic_bool failed;   /* stop: refused, out of memory or aborted */
	pthread_mutex_t lock; /* guards the fields below */
	pthread_cond_t done;
	int running;
	char reason[200];
	const char *problem;
};

struct worker {
	struct run *r;
	z_stream z;
	bool has_z;
	struct names names;
	struct frame {
		uint32_t pos;
		unsigned char *data;
		size_t size;
		uint32_t ofs_next, ofs_end;
		uint32_t ref_next, ref_end;
	} * stack;
	size_t nstack, stack_alloc;
	unsigned char *raw; /* the entry read last, as stored */
	size_t raw_alloc;
	size_t held; /* bytes of object data the stack holds */
	int phase;   /* 1: hash non-deltas; 2: resolve deltas */
};

/* Reads N bytes at OFFSET of FD into BUF. Returns 0, or -1 (errno set;
 * EIO when the file ends first). */
static int read_at(int fd, void *buf, size_t n, uint64_t offset)
{
	unsigned char *p = buf;

	while (n) {
		ssize_t got = pread(fd, p, n, (off_t)offset);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			if (!got)
				errno = EIO;
			return -1;
		}
		p += got;
		n -= (size_t)got;
		offset += (uint64_t)got;
	}
	return 0;
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* Sets the run's refusal (the first one wins) and stops the others. */
static void run_fail(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void run_fail(struct run *r, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&r->lock);
	if (!r->reason[0]) {
		va_start(ap, fmt);
		vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&r->lock);
	atomic_store(&r->failed, true);
}

static void set_problem(struct run *r, const char *problem)
{
	pthread_mutex_lock(&r->lock);
	if (!r->problem)
		r->problem = problem;
	pthread_mutex_unlock(&r->lock);
}

/* ---- delta application ------------------------------------------------- */

/* Reads the varint of a delta instruction's offset or size: the bytes
 * flagged in the low bits of OP (starting at bit FIRST, COUNT of them),
 * least significant first. Returns false when the delta ends first. */
static bool delta_arg(uint32_t *out, unsigned op, int first, int count, const unsigned char **p,
                      const unsigned char *end)
{
	uint32_t v = 0;

	for (int i = 0; i < count; i++) {
		if (!(op & (1u << (first + i))))
			continue;
		if (*p == end)
			return false;
		v |= (uint32_t) * (*p)++ << (8 * i);
	}
	*out = v;
	return true;
}

int indexpack_delta_apply(unsigned char **out, size_t *out_size, const unsigned char *base,
                          size_t base_size, const unsigned char *delta, size_t delta_len,
                          uint64_t max_size)
{
	uint64_t want_base, result_size;
	const unsigned char *p = delta, *end = delta + delta_len;
	unsigned char *result = NULL, *w;
	int r = packfile_delta_sizes(&want_base, &result_size, delta, delta_len);

	*out = NULL;
	*out_size = 0;
	if (r < 0)
		return err_set("delta header is malformed");
	if (want_base != base_size)
		return err_set("delta base size %llu does not match its base's %zu",
		               (unsigned long long)want_base, base_size);
	if ((max_size && result_size > max_size) || result_size > SIZE_MAX - 1)
		return err_set("delta result of %llu bytes is too large",
		               (unsigned long long)result_size);
	result = malloc(result_size ? (size_t)result_size : 1);
	if (!result)
		return err_set("out of memory");
	w = result;
	p += r;
	/* gitformat-pack.txt "Deltified representation": an instruction byte
	 * with the top bit set copies (offset, size) from the base (bits 0-3
	 * flag offset bytes, 4-6 size bytes; a size of 0 means 0x10000); one
	 * of 1 to 127 inserts that many bytes that follow; 0 is reserved */
	while (p < end) {
		unsigned op = *p++;
		size_t left = (size_t)(result + result_size - w);

		if (op & 0x80) {
			uint32_t off, size;

			if (!delta_arg(&off, op, 0, 4, &p, end) ||
			    !delta_arg(&size, op, 4, 3, &p, end)) {
				err_set("delta copy instruction is truncated");
				goto fail;
			}
			if (!size)
				size = 0x10000;
			if (off > base_size || size > base_size - off) {
				err_set("delta copies outside its base");
				goto fail;
			}
			if (size > left) {
				err_set("delta makes more than its result size");
				goto fail;
			}
			memcpy(w, base + off, size);
			w += size;
		} else if (op) {
			if (op > (size_t)(end - p)) {
				err_set("delta insert instruction is truncated");
				goto fail;
			}
			if (op > left) {
				err_set("delta makes more than its result size");
				goto fail;
			}
			memcpy(w, p, op);
			w += op;
			p += op;
		} else {
			err_set("delta has the reserved instruction 0");
			goto fail;
		}
	}
	if ((uint64_t)(w - result) != result_size) {
		err_set("delta makes %zu bytes, its header declares %llu", (size_t)(w - result),
		        (unsigned long long)result_size);
		goto fail;
	}
	*out = result;
	*out_size = (size_t)result_size;
	return 0;
fail:
	free(result);
	return -1;
}

/* ---- names --------------------------------------------------------------- */

/* Parses "NAME HEX\n" at *P (before END) into ID and moves *P past it.
 * Returns whether the line is there. */
static bool header_oid(git_oid *id, const char **p, const char *end, const char *name)
{
	size_t n = strlen(name);

	if ((size_t)(end - *p) < n + GIT_OID_HEXSZ + 1 || memcmp(*p, name, n) ||
	    (*p)[n + GIT_OID_HEXSZ] != '\n' || !protocol_parse_oid(NULL, *p + n, GIT_OID_HEXSZ) ||
	    git_oid_fromstrn(id, *p + n, GIT_OID_HEXSZ) < 0)
		return false;
	*p += n + GIT_OID_HEXSZ + 1;
	return true;
}

int indexpack_each_name(git_object_t type, const char *p, size_t len,
                        int (*named)(const git_oid *id, void *arg), void *arg)
{
	const char *end = p + len;
	git_oid id;
	int r;

	switch (type) {
	case GIT_OBJECT_COMMIT:
		if (!header_oid(&id, &p, end, "tree "))
			return -1;
		if ((r = named(&id, arg)))
			return r;
		while (header_oid(&id, &p, end, "parent "))
			if ((r = named(&id, arg)))
				return r;
		return 0;
	case GIT_OBJECT_TAG:
		if (!header_oid(&id, &p, end, "object "))
			return -1;
		return named(&id, arg);
	case GIT_OBJECT_TREE:
		/* entries: octal mode, SP, name, NUL, 20-byte id */
		while (p < end) {
			const char *sp = memchr(p, ' ', (size_t)(end - p)), *nul;
			unsigned long mode = 0;

			if (!sp || sp == p || sp - p > 7)
				return -1;
			for (const char *m = p; m < sp; m++) {
				if (*m < '0' || *m > '7')
					return -1;
				mode = mode * 8 + (unsigned long)(*m - '0');
			}
			nul = memchr(sp + 1, '\0', (size_t)(end - sp - 1));
			if (!nul || (size_t)(end - nul - 1) < GIT_OID_RAWSZ)
				return -1;
			p = nul + 1 + GIT_OID_RAWSZ;
			if (mode == 0160000) /* gitlink: a commit of another repository */
				continue;
			git_oid_fromraw(&id, (const unsigned char *)nul + 1);
			if ((r = named(&id, arg)))
				return r;
		}
		return 0;
	default:
		return 0;
	}
}

/* A multilinear hash of the id's five 32-bit words with random odd keys:
 * ids in trees are the pusher's choice, so slots must not be predictable. */
static uint32_t id_hash(const uint64_t *keys, const unsigned char *id)
{
	uint64_t h = 0;

	for (int i = 0; i < 5; i++)
		h += (uint64_t)be32(id + 4 * i) * keys[i];
	return (uint32_t)(h >> 32);
}

static const unsigned char zero_id[ID_SIZE];

static int names_grow(struct names *s, const uint64_t *keys)
{
	uint32_t nslots = s->nslots ? s->nslots * 2 : NAMES_MIN_SLOTS;
	unsigned char(*ids)[ID_SIZE];

	if (s->nslots >= NAMES_MAX_SLOTS)
		return -1;
	ids = calloc(nslots, ID_SIZE);
	if (!ids)
		return -1;
	for (uint32_t i = 0; i < s->nslots; i++) {
		uint32_t at;

		if (!memcmp(s->ids[i], zero_id, ID_SIZE))
			continue;
		for (at = id_hash(keys, s->ids[i]) & (nslots - 1);
		     memcmp(ids[at], zero_id, ID_SIZE); at = (at + 1) & (nslots - 1))
			;
		memcpy(ids[at], s->ids[i], ID_SIZE);
	}
	free(s->ids);
	s->ids = ids;
	s->nslots = nslots;
	return 0;
}

/* indexpack_each_name's callback: adds the id to the worker's set. */
static int name_add(const git_oid *id, void *arg)
{
	struct worker *w = arg;
	struct names *s = &w->names;
	uint32_t at;

	if (!memcmp(id->id, zero_id, ID_SIZE)) {
		s->has_zero = true;
		return 0;
	}
	if (s->count >= s->nslots / 2 && names_grow(s, w->r->hash_keys) < 0) {
		run_fail(w->r, "out of memory");
		return 1;
	}
	for (at = id_hash(w->r->hash_keys, id->id) & (s->nslots - 1);
	     memcmp(s->ids[at], zero_id, ID_SIZE); at = (at + 1) & (s->nslots - 1))
		if (!memcmp(s->ids[at], id->id, ID_SIZE))
			return 0;
	memcpy(s->ids[at], id->id, ID_SIZE);
	s->count++;
	return 0;
}

/* ---- objects ------------------------------------------------------------- */

static uint64_t entry_end(const struct run *r, uint32_t pos)
{
	return pos + 1 < r->n ? r->objects[pos + 1].offset : r->trailer;
}

static const char *type_name(int type)
{
	static const char *const names[] = {"",    "commit", "tree",  "blob",
	                                    "tag", "",       "delta", "delta"};

	return type > 0 && type < 8 ? names[type] : "object";
}

/* Reads the entry at POS, as stored, into w->raw. Returns 0, or -1 with
 * the run failed. */
static int read_entry(struct worker *w, uint32_t pos)
{
	struct run *r = w->r;
	const struct object *o = &r->objects[pos];
	uint64_t n = entry_end(r, pos) - o->offset;

	if (n > UINT32_MAX || o->size >= UINT32_MAX) {
		run_fail(r, "bad object at offset %llu: entry too large to index",
		         (unsigned long long)o->offset);
		return -1;
	}
	if (n > w->raw_alloc) {
		size_t alloc = n < 65536 ? 65536 : (size_t)n;
		unsigned char *grown = realloc(w->raw, alloc);

		if (!grown) {
			run_fail(r, "out of memory");
			return -1;
		}
		w->raw = grown;
		w->raw_alloc = alloc;
	}
	if (read_at(r->fd, w->raw, (size_t)n, o->offset) < 0) {
		run_fail(r, "cannot read the stored pack: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Inflates the entry at POS, read into w->raw, into *OUT (allocated; its
 * declared size, plus a byte so that more is seen). Returns 0, or -1 with
 * the run failed. */
static int inflate_raw(struct worker *w, uint32_t pos, unsigned char **out)
{
	struct run *r = w->r;
	const struct object *o = &r->objects[pos];
	uint64_t n = entry_end(r, pos) - o->offset;
	unsigned char *buf;
	int zr;

	*out = NULL;
	buf = malloc((size_t)o->size + 1);
	if (!buf) {
		run_fail(r, "out of memory");
		return -1;
	}
	if (inflateReset(&w->z) != Z_OK) {
		free(buf);
		run_fail(r, "cannot reset zlib");
		return -1;
	}
	w->z.next_in = w->raw + o->data_offset;
	w->z.avail_in = (uInt)(n - o->data_offset);
	w->z.next_out = buf;
	w->z.avail_out = (uInt)o->size + 1;
	zr = inflate(&w->z, Z_FINISH);
	if (zr != Z_STREAM_END || w->z.total_out != o->size || w->z.avail_in) {
		free(buf);
		run_fail(
		    r, "bad object at offset %llu: %s does not inflate to its declared %llu bytes",
		    (unsigned long long)o->offset, type_name(o->type), (unsigned long long)o->size);
		return -1;
	}
	*out = buf;
	return 0;
}

static int inflate_entry(struct worker *w, uint32_t pos, unsigned char **out)
{
	*out = NULL;
	return read_entry(w, pos) < 0 ? -1 : inflate_raw(w, pos, out);
}

/* Hashes the object at POS (DATA, SIZE bytes, of type TYPE) and, with the
 * connectivity check, collects what it names. */
static void object_done(struct worker *w, uint32_t pos, int type, const unsigned char *data,
                        size_t size)
{
	struct run *r = w->r;
	struct object *o = &r->objects[pos];
	git_oid id;

	if (git_odb_hash(&id, data, size, (git_object_t)type) < 0) {
		run_fail(r, "cannot hash an object");
		return;
	}
	memcpy(o->id, id.id, ID_SIZE);
	if (r->checks && type != PACKFILE_BLOB &&
	    indexpack_each_name((git_object_t)type, (const char *)data, size, name_add, w) < 0)
		set_problem(r, "invalid object in pack");
}

/* Phase 1: CRC32 of every entry, and every non-delta object hashed. */
static void hash_objects(struct worker *w)
{
	struct run *r = w->r;
	uint32_t from;

	while (!atomic_load(&r->failed) && (from = atomic_fetch_add(&r->next, HASH_BLOCK)) < r->n) {
		uint32_t to = r->n - from > HASH_BLOCK ? from + HASH_BLOCK : r->n;

		for (uint32_t pos = from; pos < to && !atomic_load(&r->failed); pos++) {
			struct object *o = &r->objects[pos];
			uint64_t end = entry_end(r, pos);
			unsigned char *data;

			if (read_entry(w, pos) < 0)
				return;
			o->crc = (uint32_t)crc32_z(0, w->raw, (size_t)(end - o->offset));
			if (o->type == PACKFILE_OFS_DELTA || o->type == PACKFILE_REF_DELTA)
				continue;
			if (inflate_raw(w, pos, &data) < 0)
				return;
			atomic_store(&o->object_type, o->type);
			object_done(w, pos, o->type, data, (size_t)o->size);
			free(data);
		}
	}
}

static int compare_ref_id(const unsigned char *id, const struct ref_delta *d)
{
	return memcmp(id, d->base_id, ID_SIZE);
}

/* The REF_DELTAs whose base is ID: refs[*from, *to). */
static void ref_children(const struct run *r, const unsigned char *id, uint32_t *from, uint32_t *to)
{
	uint32_t lo = 0, hi = r->nrefs;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (compare_ref_id(id, &r->refs[mid]) > 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*from = lo;
	while (lo < r->nrefs && !compare_ref_id(id, &r->refs[lo]))
		lo++;
	*to = lo;
}

/* Pushes a frame for POS, whose object is DATA (taken), if it has children;
 * else frees DATA. Returns 0 or -1 (out of memory, DATA freed). */
static int push_frame(struct worker *w, uint32_t pos, unsigned char *data, size_t size)
{
	struct run *r = w->r;
	struct frame *f;
	uint32_t ref_from = 0, ref_to = 0;

	if (r->nrefs)
		ref_children(r, r->objects[pos].id, &ref_from, &ref_to);
	if (r->ofs_first[pos] == r->ofs_first[pos + 1] && ref_from == ref_to) {
		free(data);
		return 0;
	}
	if (w->nstack == w->stack_alloc) {
		size_t n = w->stack_alloc ? 2 * w->stack_alloc : 64;
		struct frame *grown = realloc(w->stack, n * sizeof(*grown));

		if (!grown) {
			free(data);
			run_fail(r, "out of memory");
			return -1;
		}
		w->stack = grown;
		w->stack_alloc = n;
	}
	f = &w->stack[w->nstack++];
	f->pos = pos;
	f->data = data;
	f->size = size;
	w->held += size;
	f->ofs_next = r->ofs_first[pos];
	f->ofs_end = r->ofs_first[pos + 1];
	f->ref_next = ref_from;
	f->ref_end = ref_to;
	return 0;
}

/* Applies the delta at CHILD to BASE's data into *OUT (allocated; its size
 * in *OUT_SIZE). Returns 0, or -1 with the run failed. */
static int apply_child(struct worker *w, const struct frame *base, uint32_t child,
                       unsigned char **out, size_t *out_size)
{
	struct run *r = w->r;
	unsigned char *delta;
	int rc;

	if (inflate_entry(w, child, &delta) < 0)
		return -1;
	rc = indexpack_delta_apply(out, out_size, base->data, base->size, delta,
	                           (size_t)r->objects[child].size, 0);
	if (rc < 0)
		run_fail(r, "bad delta at offset %llu: %s",
		         (unsigned long long)r->objects[child].offset, err_msg());
	free(delta);
	return rc;
}

/* Drops the data of the frames nearest the root while the path holds more
 * than held_max bytes; the top frame keeps its own. */
static void trim_path(struct worker *w)
{
	for (size_t i = 0; w->held > w->r->held_max && i + 1 < w->nstack; i++) {
		if (!w->stack[i].data)
			continue;
		free(w->stack[i].data);
		w->stack[i].data = NULL;
		w->held -= w->stack[i].size;
	}
}

/* Makes the top frame's data again from the nearest frame below it that
 * still holds its own (inflating the root again if none does), applying
 * the deltas on the way, as git's index-pack re-resolves a base it had to
 * drop. Returns 0, or -1 with the run failed. */
static int remake_top(struct worker *w)
{
	size_t top = w->nstack - 1, j = top;

	while (j > 0 && !w->stack[j].data)
		j--;
	if (!w->stack[j].data) {
		if (inflate_entry(w, w->stack[0].pos, &w->stack[0].data) < 0)
			return -1;
		w->held += w->stack[0].size;
	}
	for (size_t m = j + 1; m <= top; m++) {
		size_t size;

		if (apply_child(w, &w->stack[m - 1], w->stack[m].pos, &w->stack[m].data, &size) < 0)
			return -1;
		w->held += size;
		if (w->held > w->r->held_max) {
			free(w->stack[m - 1].data);
			w->stack[m - 1].data = NULL;
			w->held -= w->stack[m - 1].size;
		}
	}
	return 0;
}

/* Resolves every delta that has ROOT (a non-delta object) at the end of its
 * chain, depth first: only the path from the root is held in memory, and
 * of it at most held_max bytes besides the object being worked on. */
static void resolve_tree(struct worker *w, uint32_t root)
{
	struct run *r = w->r;
	const struct object *ro = &r->objects[root];
	uint8_t type = ro->type;
	unsigned char *data;

	if (r->ofs_first[root] == r->ofs_first[root + 1] && !r->nrefs)
		return;
	if (inflate_entry(w, root, &data) < 0 || push_frame(w, root, data, (size_t)ro->size) < 0)
		return;
	while (w->nstack && !atomic_load(&r->failed)) {
		struct frame *f = &w->stack[w->nstack - 1];
		unsigned char *result;
		size_t result_size;
		uint8_t unset = 0;
		uint32_t child;

		if (f->ofs_next < f->ofs_end) {
			child = r->ofs_children[f->ofs_next++];
		} else if (f->ref_next < f->ref_end) {
			child = r->refs[f->ref_next++].pos;
		} else {
			if (f->data)
				w->held -= f->size;
			free(f->data);
			w->nstack--;
			continue;
		}
		/* a REF_DELTA may be reached twice when its base is in the pack
		 * twice (refused later): it is resolved once */
		if (!atomic_compare_exchange_strong(&r->objects[child].object_type, &unset, type))
			continue;
		if (!f->data && remake_top(w) < 0)
			break;
		if (apply_child(w, f, child, &result, &result_size) < 0)
			break;
		object_done(w, child, type, result, result_size);
		atomic_fetch_add(&r->resolved, 1);
		if (push_frame(w, child, result, result_size) < 0)
			break;
		trim_path(w);
	}
	while (w->nstack)
		free(w->stack[--w->nstack].data);
	w->held = 0;
}

/* Phase 2: roots handed out one by one. */
static void resolve_deltas(struct worker *w)
{
	struct run *r = w->r;
	uint32_t pos;

	while (!atomic_load(&r->failed) && (pos = atomic_fetch_add(&r->next, 1)) < r->n) {
		uint8_t type = r->objects[pos].type;

		if (type != PACKFILE_OFS_DELTA && type != PACKFILE_REF_DELTA)
			resolve_tree(w, pos);
	}
}

static void *work(void *arg)
{
	struct worker *w = arg;
	struct run *r = w->r;

	if (w->phase == 1)
		hash_objects(w);
	else
		resolve_deltas(w);
	pthread_mutex_lock(&r->lock);
	r->running--;
	pthread_cond_signal(&r->done);
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

/* Runs PHASE on NTHREADS workers and reports progress from this thread.
 * Returns 0, or -1 when the run failed. */
static int run_phase(struct run *r, struct worker *workers, int nthreads, int phase,
                     const struct indexpack_opts *opts)
{
	pthread_t threads[INDEXPACK_THREADS_MAX];
	bool started[INDEXPACK_THREADS_MAX] = {false};

	atomic_store(&r->next, 0);
	pthread_mutex_lock(&r->lock);
	r->running = nthreads;
	pthread_mutex_unlock(&r->lock);
	for (int i = 0; i < nthreads; i++) {
		workers[i].phase = phase;
		started[i] = pthread_create(&threads[i], NULL, work, &workers[i]) == 0;
		if (!started[i]) /* fewer threads: the others take its share */
			work(&workers[i]);
	}
	pthread_mutex_lock(&r->lock);
	while (r->running) {
		struct timespec until;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += PROGRESS_INTERVAL_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&r->done, &r->lock, &until);
		if (phase == 2 && r->running && opts->progress && !atomic_load(&r->failed)) {
			pthread_mutex_unlock(&r->lock);
			if (opts->progress(opts->progress_arg, atomic_load(&r->resolved),
			                   r->ndeltas))
				run_fail(r, "aborted");
			pthread_mutex_lock(&r->lock);
		}
	}
	pthread_mutex_unlock(&r->lock);
	for (int i = 0; i < nthreads; i++)
		if (started[i])
			pthread_join(threads[i], NULL);
	return atomic_load(&r->failed) ? -1 : 0;
}

/* ---- entry headers ------------------------------------------------------- */

static int compare_refs(const void *a, const void *b)
{
	return memcmp(((const struct ref_delta *)a)->base_id,
	              ((const struct ref_delta *)b)->base_id, ID_SIZE);
}

/* The position of the entry at OFFSET, or -1 when no entry starts there. */
static int64_t position_at(const struct run *r, uint64_t offset)
{
	uint32_t lo = 0, hi = r->n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (r->objects[mid].offset < offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < r->n && r->objects[lo].offset == offset ? (int64_t)lo : -1;
}

/* Reads every entry header, finds each OFS_DELTA's base and lists the
 * REF_DELTAs; builds the children lists. Returns 0 or -1 (run failed). */
static int read_headers(struct run *r, const uint64_t *offsets)
{
	uint32_t *cursor = NULL;
	int ret = -1;

	for (uint32_t pos = 0; pos < r->n; pos++) {
		if (offsets[pos] < PACKFILE_HEADER_SIZE || offsets[pos] >= r->trailer ||
		    (pos && offsets[pos] <= offsets[pos - 1])) {
			run_fail(r, "pack entries are out of order");
			return -1;
		}
		r->objects[pos].offset = offsets[pos];
	}
	for (uint32_t pos = 0; pos < r->n; pos++) {
		struct object *o = &r->objects[pos];
		struct packfile_entry e;
		uint64_t end = entry_end(r, pos);
		unsigned char hdr[64]; /* type and size, then a distance or an id */
		size_t n = end - o->offset < sizeof(hdr) ? (size_t)(end - o->offset) : sizeof(hdr);
		int64_t base;

		if (read_at(r->fd, hdr, n, o->offset) < 0) {
			run_fail(r, "cannot read the stored pack: %s", strerror(errno));
			return -1;
		}
		if (packfile_entry_parse(&e, hdr, n, o->offset) < 0 ||
		    e.data_offset > end - o->offset) {
			run_fail(r, "bad object at offset %llu: malformed entry header",
			         (unsigned long long)o->offset);
			return -1;
		}
		o->type = (uint8_t)e.type;
		o->size = e.size;
		o->data_offset = (uint8_t)e.data_offset;
		if (e.type == PACKFILE_OFS_DELTA) {
			base = position_at(r, e.base_offset);
			if (base < 0) {
				run_fail(
				    r, "bad object at offset %llu: its delta base is not an entry",
				    (unsigned long long)o->offset);
				return -1;
			}
			o->base = (uint32_t)base;
			r->ofs_first[base]++;
			r->ndeltas++;
		} else if (e.type == PACKFILE_REF_DELTA) {
			memcpy(r->refs[r->nrefs].base_id, e.base_id, ID_SIZE);
			r->refs[r->nrefs++].pos = pos;
			r->ndeltas++;
		}
	}
	qsort(r->refs, r->nrefs, sizeof(*r->refs), compare_refs);
	/* counts to starts: ofs_first[i] = children of positions before i */
	for (uint32_t pos = 0, sum = 0; pos <= r->n; pos++) {
		uint32_t count = r->ofs_first[pos];

		r->ofs_first[pos] = sum;
		sum += count;
	}
	cursor = malloc(((size_t)r->n + 1) * sizeof(*cursor));
	if (!cursor) {
		run_fail(r, "out of memory");
		goto out;
	}
	memcpy(cursor, r->ofs_first, ((size_t)r->n + 1) * sizeof(*cursor));
	for (uint32_t pos = 0; pos < r->n; pos++)
		if (r->objects[pos].type == PACKFILE_OFS_DELTA)
			r->ofs_children[cursor[r->objects[pos].base]++] = pos;
	ret = 0;
out:
	free(cursor);
	return ret;
}

/* ---- thin packs ------------------------------------------------------------ */

/* Appends the object ID, read from ODB, to the pack as a whole object at
 * the trailer's place (the trailer is written again by finish_thin), as
 * position r->n. Returns 0, 1 when ODB does not have it, or -1 with the
 * run failed. */
static int append_base(struct run *r, git_odb *odb, const unsigned char *id)
{
	git_odb_object *obj = NULL;
	unsigned char hdr[16], *deflated = NULL;
	uLongf ndeflated;
	size_t nhdr = 0, size;
	struct object *grown_objects, *o;
	uint32_t *grown_first;
	git_oid oid;
	uint64_t left;
	int type, ret = -1;

	git_oid_fromraw(&oid, id);
	if (git_odb_read(&obj, odb, &oid) < 0)
		return 1;
	type = (int)git_odb_object_type(obj);
	size = git_odb_object_size(obj);
	if (type < PACKFILE_COMMIT || type > PACKFILE_TAG || size >= UINT32_MAX ||
	    r->n == UINT32_MAX) {
		git_odb_object_free(obj);
		return 1;
	}
	/* the entry header: type and size, 4 bits then 7 a byte */
	hdr[nhdr] = (unsigned char)(type << 4 | (size & 15));
	for (left = size >> 4; left; left >>= 7) {
		hdr[nhdr++] |= 0x80;
		hdr[nhdr] = left & 0x7f;
	}
	nhdr++;
	ndeflated = compressBound((uLong)size);
	deflated = malloc(ndeflated);
	grown_objects = realloc(r->objects, ((size_t)r->n + 1) * sizeof(*grown_objects));
	if (grown_objects)
		r->objects = grown_objects;
	grown_first = realloc(r->ofs_first, ((size_t)r->n + 2) * sizeof(*grown_first));
	if (grown_first)
		r->ofs_first = grown_first;
	if (!deflated || !grown_objects || !grown_first ||
	    compress(deflated, &ndeflated, git_odb_object_data(obj), (uLong)size) != Z_OK) {
		run_fail(r, "out of memory");
		goto out;
	}
	if (pwrite(r->fd, hdr, nhdr, (off_t)r->trailer) != (ssize_t)nhdr ||
	    pwrite(r->fd, deflated, ndeflated, (off_t)(r->trailer + nhdr)) != (ssize_t)ndeflated) {
		run_fail(r, "cannot write the stored pack: %s", strerror(errno));
		goto out;
	}
	o = &r->objects[r->n];
	memset(o, 0, sizeof(*o));
	o->offset = r->trailer;
	o->size = size;
	o->type = (uint8_t)type;
	o->data_offset = (uint8_t)nhdr;
	o->crc = (uint32_t)crc32_z(crc32_z(0, hdr, nhdr), deflated, ndeflated);
	memcpy(o->id, id, ID_SIZE);
	atomic_store(&o->object_type, (uint8_t)type);
	r->ofs_first[r->n + 1] = r->ofs_first[r->n]; /* no OFS_DELTA names it */
	r->n++;
	r->trailer += nhdr + ndeflated;
	ret = 0;
out:
	free(deflated);
	git_odb_object_free(obj);
	return ret;
}

/* Writes the completed pack's object count and its trailer (the SHA-1 of
 * all before it, read back), truncating what the old trailer left. */
static int finish_thin(struct run *r)
{
	unsigned char count[4], *buf = malloc(1 << 20);
	EVP_MD_CTX *sha1 = EVP_MD_CTX_new();
	unsigned int mdlen = 0;
	int ret = -1;

	put_be32(count, r->n);
	if (!buf || !sha1 || !EVP_DigestInit_ex(sha1, EVP_sha1(), NULL)) {
		run_fail(r, "out of memory");
		goto out;
	}
	if (pwrite(r->fd, count, 4, 8) != 4)
		goto io;
	for (uint64_t at = 0; at < r->trailer;) {
		size_t n = r->trailer - at < (1 << 20) ? (size_t)(r->trailer - at) : 1 << 20;

		if (read_at(r->fd, buf, n, at) < 0)
			goto io;
		EVP_DigestUpdate(sha1, buf, n);
		at += n;
	}
	if (!EVP_DigestFinal_ex(sha1, r->checksum, &mdlen) || mdlen != ID_SIZE) {
		run_fail(r, "cannot compute the pack checksum");
		goto out;
	}
	if (pwrite(r->fd, r->checksum, ID_SIZE, (off_t)r->trailer) != ID_SIZE ||
	    ftruncate(r->fd, (off_t)(r->trailer + ID_SIZE)) < 0)
		goto io;
	ret = 0;
	goto out;
io:
	run_fail(r, "cannot write the stored pack: %s", strerror(errno));
out:
	EVP_MD_CTX_free(sha1);
	free(buf);
	return ret;
}

/* Orders indexes into r->refs by their delta's position. */
static int compare_ref_positions(const void *a, const void *b, void *arg)
{
	const struct ref_delta *refs = arg;
	uint32_t x = refs[*(const uint32_t *)a].pos, y = refs[*(const uint32_t *)b].pos;

	return x < y ? -1 : x > y;
}

/* Completes a thin pack, as git's index-pack --fix-thin does: for each
 * REF_DELTA still unresolved, in pack order, its base is read from ODB,
 * appended to the pack and the deltas under it resolved (on this thread,
 * with W). A base ODB does not have is left (the pack stays thin). Sets
 * *NLOCAL to the bases appended. Returns 0 or -1 with the run failed. */
static int complete_thin(struct run *r, struct worker *w, git_odb *odb, uint32_t *nlocal)
{
	/* indexes into r->refs of the REF_DELTAs not resolved */
	uint32_t *waiting = malloc((r->nrefs ? r->nrefs : 1) * sizeof(*waiting)), nwaiting = 0;
	int ret = -1;

	*nlocal = 0;
	if (!waiting) {
		run_fail(r, "out of memory");
		return -1;
	}
	for (uint32_t k = 0; k < r->nrefs; k++)
		if (!atomic_load(&r->objects[r->refs[k].pos].object_type))
			waiting[nwaiting++] = k;
	qsort_r(waiting, nwaiting, sizeof(*waiting), compare_ref_positions, r->refs);
	for (uint32_t k = 0; k < nwaiting && !atomic_load(&r->failed); k++) {
		const struct ref_delta *d = &r->refs[waiting[k]];
		int rc;

		if (atomic_load(&r->objects[d->pos].object_type))
			continue; /* resolved under a base appended before */
		rc = append_base(r, odb, d->base_id);
		if (rc < 0)
			goto out;
		if (rc > 0)
			continue;
		(*nlocal)++;
		resolve_tree(w, r->n - 1);
	}
	if (*nlocal && !atomic_load(&r->failed) && finish_thin(r) < 0)
		goto out;
	ret = atomic_load(&r->failed) ? -1 : 0;
out:
	free(waiting);
	return ret;
}

/* ---- connectivity -------------------------------------------------------- */

/* The pack's ids by hash: slot values are position + 1, 0 empty. */
struct id_table {
	uint32_t *slots;
	uint32_t mask;
};

static int64_t table_find(const struct run *r, const struct id_table *t, const unsigned char *id)
{
	for (uint32_t at = id_hash(r->hash_keys, id) & t->mask; t->slots[at];
	     at = (at + 1) & t->mask)
		if (!memcmp(r->objects[t->slots[at] - 1].id, id, ID_SIZE))
			return t->slots[at] - 1;
	return -1;
}

static int table_build(struct id_table *t, const struct run *r)
{
	uint64_t nslots = 1024;

	while (nslots < 2 * (uint64_t)r->n)
		nslots *= 2;
	t->slots = calloc((size_t)nslots, sizeof(*t->slots));
	if (!t->slots)
		return -1;
	t->mask = (uint32_t)(nslots - 1);
	for (uint32_t pos = 0; pos < r->n; pos++) {
		uint32_t at = id_hash(r->hash_keys, r->objects[pos].id) & t->mask;

		while (t->slots[at])
			at = (at + 1) & t->mask;
		t->slots[at] = pos + 1;
	}
	return 0;
}

/* Every id some object names must be in the pack or in opts->odb; sets
 * out->problem, and out->is_closed. Returns 0 or -1 (out of memory). */
static int check_names(struct indexpack_result *out, struct run *r, struct worker *workers,
                       int nthreads, const struct indexpack_opts *opts)
{
	struct id_table t = {NULL, 0};
	unsigned char *named = NULL;
	bool is_closed = true;
	int ret = -1;

	named = calloc(r->n / 8 + 1, 1);
	if (!named || table_build(&t, r) < 0) {
		run_fail(r, "out of memory");
		goto out;
	}
	for (int i = 0; i < nthreads && !r->problem; i++) {
		const struct names *s = &workers[i].names;

		if (s->has_zero) {
			r->problem = "missing necessary objects";
			break;
		}
		for (uint32_t k = 0; k < s->nslots; k++) {
			int64_t pos;
			git_oid id;

			if (!memcmp(s->ids[k], zero_id, ID_SIZE))
				continue;
			pos = table_find(r, &t, s->ids[k]);
			if (pos >= 0) {
				named[pos / 8] |= (unsigned char)(1u << (pos % 8));
				continue;
			}
			is_closed = false;
			git_oid_fromraw(&id, s->ids[k]);
			if (git_odb_exists(opts->odb, &id) != 1) {
				r->problem = "missing necessary objects";
				break;
			}
		}
	}
	for (size_t i = 0; i < opts->ntips; i++) {
		int64_t pos = table_find(r, &t, opts->tips[i].id);

		if (pos < 0)
			is_closed = false;
		else
			named[pos / 8] |= (unsigned char)(1u << (pos % 8));
	}
	for (uint32_t pos = 0; pos < r->n && is_closed; pos++)
		is_closed = named[pos / 8] & (1u << (pos % 8));
	out->problem = r->problem;
	out->is_closed = !r->problem && is_closed && !out->nlocal;
	ret = 0;
out:
	free(t.slots);
	free(named);
	return ret;
}

/* ---- .idx ---------------------------------------------------------------- */

static int compare_ids(const void *a, const void *b, void *arg)
{
	const struct object *objects = arg;

	return memcmp(objects[*(const uint32_t *)a].id, objects[*(const uint32_t *)b].id, ID_SIZE);
}

/* Builds the .idx version 2 of the run in memory (*OUT, *OUT_SIZE; caller
 * frees) with its pack's checksum. Returns 0 or -1 (run failed). */
static int build_idx(unsigned char **out, size_t *out_size, struct run *r)
{
	uint32_t *order = malloc(((size_t)r->n + 1) * sizeof(*order));
	size_t nlarge = 0, size;
	unsigned char *idx = NULL, *p, *crcs, *offs, *large;
	EVP_MD_CTX *sha1 = NULL;
	unsigned int mdlen = 0;
	int ret = -1;

	if (!order) {
		run_fail(r, "out of memory");
		goto out;
	}
	for (uint32_t pos = 0; pos < r->n; pos++) {
		order[pos] = pos;
		nlarge += r->objects[pos].offset > IDX_SMALL_MAX;
	}
	qsort_r(order, r->n, sizeof(*order), compare_ids, r->objects);
	for (uint32_t k = 1; k < r->n; k++) {
		if (!memcmp(r->objects[order[k - 1]].id, r->objects[order[k]].id, ID_SIZE)) {
			char hex[GIT_OID_HEXSZ + 1];
			git_oid id;

			git_oid_fromraw(&id, r->objects[order[k]].id);
			git_oid_tostr(hex, sizeof(hex), &id);
			run_fail(r, "the same object %s appears twice in the pack", hex);
			goto out;
		}
	}
	size = 8 + 256 * 4 + (size_t)r->n * (ID_SIZE + 8) + nlarge * 8 + 2 * ID_SIZE;
	idx = malloc(size);
	sha1 = EVP_MD_CTX_new();
	if (!idx || !sha1) {
		run_fail(r, "out of memory");
		goto out;
	}
	memcpy(idx, "\377tOc\0\0\0\2", 8);
	p = idx + 8;
	for (uint32_t b = 0, k = 0; b < 256; b++) {
		while (k < r->n && r->objects[order[k]].id[0] <= b)
			k++;
		put_be32(p + 4 * b, k);
	}
	p += 256 * 4;
	crcs = p + (size_t)r->n * ID_SIZE;
	offs = crcs + (size_t)r->n * 4;
	large = offs + (size_t)r->n * 4;
	nlarge = 0;
	for (uint32_t k = 0; k < r->n; k++) {
		const struct object *o = &r->objects[order[k]];

		memcpy(p + (size_t)k * ID_SIZE, o->id, ID_SIZE);
		put_be32(crcs + (size_t)k * 4, o->crc);
		if (o->offset <= IDX_SMALL_MAX) {
			put_be32(offs + (size_t)k * 4, (uint32_t)o->offset);
		} else {
			put_be32(offs + (size_t)k * 4, 0x80000000u | (uint32_t)nlarge);
			put_be32(large + nlarge * 8, (uint32_t)(o->offset >> 32));
			put_be32(large + nlarge * 8 + 4, (uint32_t)o->offset);
			nlarge++;
		}
	}
	p = large + nlarge * 8;
	memcpy(p, r->checksum, ID_SIZE);
	if (!EVP_DigestInit_ex(sha1, EVP_sha1(), NULL) ||
	    !EVP_DigestUpdate(sha1, idx, size - ID_SIZE) ||
	    !EVP_DigestFinal_ex(sha1, p + ID_SIZE, &mdlen) || mdlen != ID_SIZE) {
		run_fail(r, "cannot compute the index checksum");
		goto out;
	}
	*out = idx;
	*out_size = size;
	idx = NULL;
	ret = 0;
out:
	EVP_MD_CTX_free(sha1);
	free(idx);
	free(order);
	return ret;
}

/* Moves PACK_PATH to DIR/NAME.pack and writes IDX to DIR/NAME.idx, both
 * read-only (as git's index-pack leaves them), the .idx last. Neither is
 * synced here: that is the caller's (indexpack_run). */
static int write_files(struct run *r, const char *dir, const char *name, const char *pack_path,
                       const unsigned char *idx, size_t idx_size)
{
	char final_pack[PATH_MAX], final_idx[PATH_MAX], tmp_idx[PATH_MAX];
	int fd = -1, ret = -1;

	if ((size_t)snprintf(final_pack, sizeof(final_pack), "%s/%s.pack", dir, name) >=
	        sizeof(final_pack) ||
	    (size_t)snprintf(final_idx, sizeof(final_idx), "%s/%s.idx", dir, name) >=
	        sizeof(final_idx) ||
	    (size_t)snprintf(tmp_idx, sizeof(tmp_idx), "%s/tmp_idx_XXXXXX", dir) >=
	        sizeof(tmp_idx)) {
		run_fail(r, "index-pack failed");
		return err_set("pack directory path is too long");
	}
	if (chmod(pack_path, 0444) < 0) {
		err_set("cannot make %s read-only: %s", pack_path, strerror(errno));
		goto out;
	}
	fd = mkostemp(tmp_idx, O_CLOEXEC);
	if (fd < 0) {
		err_set("cannot create %s: %s", tmp_idx, strerror(errno));
		goto out;
	}
	if (fs_write_all(fd, idx, idx_size) < 0 || fchmod(fd, 0444) < 0) {
		err_set("cannot write %s: %s", tmp_idx, strerror(errno));
		unlink(tmp_idx);
		goto out;
	}
	if (rename(pack_path, final_pack) < 0) {
		err_set("cannot rename %s: %s", pack_path, strerror(errno));
		unlink(tmp_idx);
		goto out;
	}
	if (rename(tmp_idx, final_idx) < 0) {
		err_set("cannot rename %s: %s", tmp_idx, strerror(errno));
		unlink(tmp_idx);
		if (rename(final_pack, pack_path) < 0)
			unlink(final_pack);
		goto out;
	}
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	if (ret < 0)
		run_fail(r, "index-pack failed");
	return ret;
}

/* ---- the run --------------------------------------------------------------- */

static int nthreads_for(const struct indexpack_opts *opts)
{
	long n = opts->nthreads > 0 ? opts->nthreads : sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > INDEXPACK_THREADS_MAX ? INDEXPACK_THREADS_MAX : (int)n;
}

int indexpack_run(struct indexpack_result *out, const char *dir, const char *pack_path,
                  const uint64_t *offsets, uint32_t nobjects, const struct indexpack_opts *opts)
{
	struct run r;
	struct worker workers[INDEXPACK_THREADS_MAX];
	int nthreads = nthreads_for(opts), nworkers = 0, fd = -1, ret = -1;
	unsigned char *idx = NULL;
	size_t idx_size = 0;
	unsigned char header[PACKFILE_HEADER_SIZE];
	struct stat st;
	git_oid checksum;

	memset(out, 0, sizeof(*out));
	memset(&r, 0, sizeof(r));
	memset(workers, 0, sizeof(workers));
	pthread_mutex_init(&r.lock, NULL);
	pthread_cond_init(&r.done, NULL);
	r.checks = opts->odb != NULL;
	r.held_max = opts->held_max ? opts->held_max : INDEXPACK_HELD_MAX;
	r.n = nobjects;
	if (getrandom(r.hash_keys, sizeof(r.hash_keys), 0) != sizeof(r.hash_keys)) {
		err_set("cannot get random bytes: %s", strerror(errno));
		snprintf(out->reason, sizeof(out->reason), "index-pack failed");
		goto out;
	}
	for (int i = 0; i < 5; i++)
		r.hash_keys[i] |= 1;

	fd = open(pack_path, O_RDWR | O_CLOEXEC); /* a thin pack is completed */
	if (fd < 0 || fstat(fd, &st) < 0) {
		err_set("cannot open %s: %s", pack_path, strerror(errno));
		snprintf(out->reason, sizeof(out->reason), "index-pack failed");
		goto out;
	}
	r.fd = fd;
	if ((uint64_t)st.st_size < PACKFILE_HEADER_SIZE + ID_SIZE) {
		run_fail(&r, "pack is truncated");
		goto fail;
	}
	r.trailer = (uint64_t)st.st_size - ID_SIZE;
	if (read_at(fd, header, sizeof(header), 0) < 0 ||
	    read_at(fd, r.checksum, ID_SIZE, r.trailer) < 0) {
		err_set("cannot read %s: %s", pack_path, strerror(errno));
		snprintf(out->reason, sizeof(out->reason), "index-pack failed");
		goto out;
	}
	if (be32(header + 8) != nobjects) {
		run_fail(&r, "pack header does not match its entries");
		goto fail;
	}
	r.objects = calloc(nobjects ? nobjects : 1, sizeof(*r.objects));
	r.ofs_first = calloc((size_t)nobjects + 1, sizeof(*r.ofs_first));
	r.ofs_children = calloc(nobjects ? nobjects : 1, sizeof(*r.ofs_children));
	r.refs = calloc(nobjects ? nobjects : 1, sizeof(*r.refs));
	if (!r.objects || !r.ofs_first || !r.ofs_children || !r.refs) {
		run_fail(&r, "out of memory");
		goto fail;
	}
	if (read_headers(&r, offsets) < 0)
		goto fail;
	for (; nworkers < nthreads; nworkers++) {
		workers[nworkers].r = &r;
		if (inflateInit(&workers[nworkers].z) != Z_OK) {
			run_fail(&r, "cannot set up zlib");
			goto fail;
		}
		workers[nworkers].has_z = true;
	}
	if (run_phase(&r, workers, nthreads, 1, opts) < 0 ||
	    run_phase(&r, workers, nthreads, 2, opts) < 0)
		goto fail;
	if (atomic_load(&r.resolved) != r.ndeltas && opts->odb &&
	    complete_thin(&r, &workers[0], opts->odb, &out->nlocal) < 0)
		goto fail;
	if (atomic_load(&r.resolved) != r.ndeltas) {
		ret = INDEXPACK_ETHIN;
		snprintf(out->reason, sizeof(out->reason), "pack has %u unresolved deltas",
		         r.ndeltas - atomic_load(&r.resolved));
		err_set("%s", out->reason);
		goto out;
	}
	if (build_idx(&idx, &idx_size, &r) < 0)
		goto fail;
	if (r.checks && check_names(out, &r, workers, nthreads, opts) < 0)
		goto fail;
	git_oid_fromraw(&checksum, r.checksum);
	snprintf(out->pack_name, sizeof(out->pack_name), "pack-");
	git_oid_tostr(out->pack_name + 5, sizeof(out->pack_name) - 5, &checksum);
	if (write_files(&r, dir, out->pack_name, pack_path, idx, idx_size) < 0) {
		snprintf(out->reason, sizeof(out->reason), "index-pack failed");
		goto out;
	}
	out->nobjects = r.n;
	out->ndeltas = r.ndeltas;
	ret = 0;
	goto out;
fail:
	snprintf(out->reason, sizeof(out->reason), "%s",
	         r.reason[0] ? r.reason : "index-pack failed");
	err_set("unpack failed: %s", out->reason);
out:
	for (int i = 0; i < nworkers; i++) {
		if (workers[i].has_z)
			inflateEnd(&workers[i].z);
		free(workers[i].names.ids);
		free(workers[i].stack);
		free(workers[i].raw);
	}
	if (fd >= 0)
		close(fd);
	free(idx);
	free(r.objects);
	free(r.ofs_first);
	free(r.ofs_children);
	free(r.refs);
	pthread_cond_destroy(&r.done);
	pthread_mutex_destroy(&r.lock);
	return ret;
}
