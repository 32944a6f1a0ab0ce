/* packfile: gitd's one reader of git packs, used by receive-pack and
 * upload-pack, and by upstream.c, whose fetched packs pass packfile_check.
 *
 * Why gitd reads packs itself: libgit2 1.5's packbuilder does not reuse the
 * deltas already stored in a pack (libgit2 itself leaves that as a TODO); it
 * re-reads, re-deltifies and recompresses every object it is given, which
 * takes seconds for a clone of 100k objects. upload-pack copies the entries
 * of the repository's own packs instead, which takes a fraction of one, and
 * receive-pack walks the pack it received in pack order without inflating
 * blobs. Both read the same bytes here, with the same checks.
 *
 * Formats, from git Documentation/gitformat-pack.txt:
 * - pack-*.pack: "PACK", version 2 or 3, the object count (all big-endian
 *   32-bit), the entries, and the SHA-1 of everything before it. An entry
 *   starts with its type (3 bits) and size (4 bits, then 7 bits a byte
 *   while the top bit is set, least significant first); the size is that of
 *   the inflated data. An OFS_DELTA then names its base by the distance
 *   back to it (7 bits a byte, most significant first, each byte after the
 *   first adding 2^7, 2^14, ...), a REF_DELTA by its 20-byte id. Then comes
 *   the zlib stream. A delta's inflated data starts with two sizes in the
 *   entry-size varint form without the type bits: the base's size and the
 *   size of the object it makes.
 * - pack-*.idx version 2: "\377tOc", version 2, a 256-entry fan-out table
 *   (cumulative counts by first id byte), the sorted ids, their CRC32s,
 *   4-byte offsets whose top bit makes the rest an index into a table of
 *   8-byte offsets, the pack's checksum and the index's own. */
#ifndef SLIP_GITD_PACKFILE_H
#define SLIP_GITD_PACKFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

/* Pack entry types (gitformat-pack.txt "Object types"); 1 to 4 are
 * git_object_t's commit, tree, blob and tag. */
enum packfile_type {
	PACKFILE_COMMIT = 1,
	PACKFILE_TREE = 2,
	PACKFILE_BLOB = 3,
	PACKFILE_TAG = 4,
	PACKFILE_OFS_DELTA = 6,
	PACKFILE_REF_DELTA = 7,
};

#define PACKFILE_ID_SIZE 20     /* a SHA-1 */
#define PACKFILE_HEADER_SIZE 12 /* "PACK", version, count */

/* Returned when the bytes given end before what they must hold. */
#define PACKFILE_ESHORT (-2)

/* A version 2 .idx in memory (borrowed bytes; nothing is allocated). */
struct packfile_idx {
	const unsigned char *data;
	size_t size;
	uint32_t nobjects;
	const unsigned char *fanout;  /* 256 big-endian counts */
	const unsigned char *ids;     /* nobjects sorted ids */
	const unsigned char *offsets; /* nobjects big-endian 4-byte offsets */
	const unsigned char *large;   /* nlarge big-endian 8-byte offsets */
	size_t nlarge;
};

/* Checks that DATA (SIZE bytes, borrowed; must outlive OUT) is a version 2
 * .idx: magic, version, a fan-out that never decreases, and a size that fits
 * its tables exactly (the 8-byte offset table takes what is left). Returns 0,
 * or -1 with err_msg() when it is not. */
int packfile_idx_parse(struct packfile_idx *out, const unsigned char *data, size_t size);

/* Returns the position in IDX of the object whose raw 20-byte id is ID, or
 * -1 when IDX does not hold it. */
int64_t packfile_idx_find(const struct packfile_idx *idx, const unsigned char *id);

/* The raw 20-byte id at position POS (< nobjects), borrowed from IDX. */
const unsigned char *packfile_idx_id(const struct packfile_idx *idx, uint32_t pos);

/* Sets *OUT to the pack offset of the object at position POS (< nobjects).
 * Returns 0, or -1 when the offset names a missing 8-byte entry or does not
 * lie inside a pack of PACK_SIZE bytes, between its header and trailer. */
int packfile_idx_offset(uint64_t *out, const struct packfile_idx *idx, uint32_t pos,
                        uint64_t pack_size);

/* One entry's header, as packfile_entry_parse reads it. */
struct packfile_entry {
	int type;                     /* enum packfile_type */
	uint64_t size;                /* declared inflated size: the object's, or
	                                 for a delta its delta data's */
	size_t header_len;            /* bytes of type and size */
	size_t data_offset;           /* from the entry's start to its zlib data */
	uint64_t base_offset;         /* OFS_DELTA: the base's pack offset */
	const unsigned char *base_id; /* REF_DELTA: the base's raw id, borrowed
	                                 from the bytes parsed; else NULL */
};

/* Parses the entry header at P (AVAIL bytes readable) of the entry at pack
 * offset OFFSET into OUT. Returns 0; PACKFILE_ESHORT when AVAIL ends inside
 * the header; or -1 with err_msg() when it is malformed: an unknown type, a
 * size of more than 64 bits, an OFS_DELTA distance of 0 or reaching before
 * the pack header. */
int packfile_entry_parse(struct packfile_entry *out, const unsigned char *p, size_t avail,
                         uint64_t offset);

/* Parses the two sizes at the start of a delta's inflated data (LEN bytes
 * at P) into *BASE_SIZE and *RESULT_SIZE. Returns the bytes they take;
 * PACKFILE_ESHORT when LEN ends inside them; -1 with err_msg() when one has
 * more than 64 bits. */
int packfile_delta_sizes(uint64_t *base_size, uint64_t *result_size, const unsigned char *p,
                         size_t len);

/* A pack and its .idx, mapped read-only. */
struct packfile {
	unsigned char *idx_map, *pack_map;
	size_t idx_size, pack_size;
	const unsigned char *pack_bytes; /* the pack, mapped or borrowed */
	struct packfile_idx idx;
	uint64_t *offsets; /* every entry offset sorted, then the trailer's:
	                      an entry ends where the next starts; NULL until
	                      packfile_load_order() */
	uint32_t *order;   /* .idx positions in the order of offsets */
};

/* Drops the pages of P's mapped pack between byte offsets FROM and TO
 * (rounded inward to whole pages) from this process's resident set
 * (madvise MADV_DONTNEED): they stay in the page cache and a later read
 * faults them in again. For a reader that has gone past them; a borrowed
 * pack (packfile_open_memory) is left alone. */
void packfile_drop_pages(const struct packfile *p, uint64_t from, uint64_t to);

/* The same for all of P's mapped .idx, for a reader done looking ids up
 * for a while. */
void packfile_drop_idx_pages(const struct packfile *p);

/* Maps IDX_PATH and PACK_PATH into OUT (set up in place) and checks them:
 * packfile_idx_parse, and a pack header "PACK", version 2 or 3, with as many
 * objects as the .idx. Returns 0, or -1 with err_msg() (OUT then released).
 * Release with packfile_close(). */
int packfile_open(struct packfile *out, const char *idx_path, const char *pack_path);

/* Sets OUT up over bytes already in memory (borrowed: they must outlive
 * OUT; packfile_close() does not free them), with the checks of
 * packfile_open. Returns 0 or -1 with err_msg(). */
int packfile_open_memory(struct packfile *out, const unsigned char *idx, size_t idx_size,
                         const unsigned char *pack, size_t pack_size);

/* Unmaps what P maps and frees what it holds; P is then empty. */
void packfile_close(struct packfile *p);

/* Sorts P's entry offsets once (git keeps this in pack-*.rev), for
 * packfile_entry_end and packfile_pos_at. Returns 0; -1 with err_msg() when
 * out of memory or when an offset is out of the pack or given twice. */
int packfile_load_order(struct packfile *p);

/* Where the entry starting at OFFSET ends: at the next entry, or at the
 * trailer. Needs packfile_load_order(); OFFSET must be an entry's. */
uint64_t packfile_entry_end(const struct packfile *p, uint64_t offset);

/* The .idx position of the entry at OFFSET, or -1 when no entry starts
 * there. Needs packfile_load_order(). */
int64_t packfile_pos_at(const struct packfile *p, uint64_t offset);

/* Parses the header of the object at .idx position POS, bounded by its
 * entry's end, into OUT; for an OFS_DELTA, sets *BASE_POS to its base's
 * position, for a REF_DELTA to its base's position when the base is in P
 * and -1 when not. BASE_POS may be NULL. Needs packfile_load_order().
 * Returns 0, or -1 with err_msg() when the entry is malformed or an
 * OFS_DELTA's base is not an entry of P. */
int packfile_object_header(struct packfile_entry *out, int64_t *base_pos, const struct packfile *p,
                           uint32_t pos);

/* Checks a pack as it streams in, before anything else gets its bytes:
 * every entry's declared size against a limit (and a delta's result size),
 * and every entry's zlib stream against its declared size, the way git's
 * index-pack refuses "pack has bad object ... inflate returned": a mismatch
 * would index an object under an id that hashes a different size. Entries
 * are inflated through a fixed buffer, never whole, and inflating stops as
 * soon as an entry gives more than it declared. The trailer's SHA-1 is not
 * checked here. */
struct packfile_check {
	uint64_t max_object_size; /* 0: no limit */
	z_stream z;
	bool has_z;            /* z is set up */
	int state;             /* where in the pack the next byte is */
	unsigned char hdr[40]; /* pack or entry header being gathered */
	size_t nhdr;
	struct packfile_entry entry; /* the entry being inflated */
	unsigned char delta_hdr[20]; /* a delta's first inflated bytes */
	size_t ndelta_hdr;
	bool has_delta_sizes;         /* its two sizes were read */
	uint64_t inflated;            /* bytes the entry gave so far */
	uint64_t offset;              /* pack offset of the next byte */
	uint64_t entry_offset;        /* pack offset of the current entry */
	uint32_t nobjects, nchecked;  /* in the pack header; entries done */
	unsigned char scratch[16384]; /* inflated bytes go here and are dropped */
	char reason[200];             /* why the pack was refused, for the
	                                 client: one line without server paths */
	bool keeps_offsets;           /* record each entry's offset */
	uint64_t *offsets;            /* with keeps_offsets: the offsets of the
	                                 entries checked so far, in pack order */
	uint32_t noffsets, offsets_alloc;
};

/* Sets C up in place with the size limit MAX_OBJECT_SIZE (bytes; 0: none).
 * Returns 0 or -1 with err_msg(). Release with packfile_check_release(). */
int packfile_check_init(struct packfile_check *c, uint64_t max_object_size);

/* Feeds the next N bytes of the pack at P. Returns 0 while the pack is fine
 * so far (bytes past the last entry are the trailer and are ignored), or -1
 * with err_msg() and c->reason set: a bad header, an unknown entry type, an
 * object or delta result larger than the limit, a zlib stream that is
 * corrupt or inflates to more or less than its declared size, a delta whose
 * data cannot hold its sizes. After -1 every later call returns -1. */
int packfile_check_add(struct packfile_check *c, const unsigned char *p, size_t n);

/* Makes C record the pack offset of every entry it checks, in c->offsets
 * (c->noffsets of them; with packfile_check_is_done(), one per object, and
 * the trailer starts at c->entry_offset): index-pack needs them, and only
 * the check finds where a zlib stream ends. Call before the first
 * packfile_check_add(). The array grows with the entries seen, never past
 * the header's count; packfile_check_release() frees it unless the caller
 * took it (set c->offsets to NULL). */
void packfile_check_keep_offsets(struct packfile_check *c);

/* Returns whether every entry the pack header announced has been checked. */
bool packfile_check_is_done(const struct packfile_check *c);

/* Frees what C holds. */
void packfile_check_release(struct packfile_check *c);

#endif
