/* indexpack: gitd's index-pack for receive-pack. Takes a pack that
 * packfile_check has passed and that is stored whole in a file, and writes
 * its .idx (version 2, as git index-pack writes it) next to it, resolving
 * delta chains on one thread per CPU the way git's index-pack does, and
 * checking on the way that every object the pack's commits, trees and tags
 * name is in the pack or in the repository (the connectivity check, fused
 * into the one read of each object).
 *
 * Formats from git Documentation/gitformat-pack.txt (see packfile.h); the
 * delta instructions from its "Deltified representation". Object ids are
 * computed with libgit2's git_odb_hash (SHA-1 with collision detection). */
#ifndef SLIP_GITD_INDEXPACK_H
#define SLIP_GITD_INDEXPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <git2.h>

/* Returned by indexpack_run when a REF_DELTA names a base that is neither
 * in the pack nor in opts->odb (or for REF_DELTAs that name each other).
 * No .idx was written; the caller may hand the pack to another indexer,
 * whose refusal says which base is missing. */
#define INDEXPACK_ETHIN (-3)

/* Resolving threads: one per online CPU, at most this many. */
#define INDEXPACK_THREADS_MAX 8

/* Each thread holds the objects on the path from a delta chain's base to
 * the delta it applies; past this many bytes the bases nearest the root
 * are dropped and made again when their next child needs them (git's
 * index-pack does the same past core.deltaBaseCacheLimit), so a deep chain
 * of large objects cannot take depth times their size. */
#define INDEXPACK_HELD_MAX ((size_t)256 << 20)

struct indexpack_opts {
	git_odb *odb;        /* the repository's objects (without the
	                        quarantine), for the connectivity check; NULL
	                        leaves the check out */
	const git_oid *tips; /* ids the push's refs will point at (for
	                        is_closed), NTIPS of them; borrowed */
	size_t ntips;
	int nthreads;    /* 0: one per online CPU, at most
	                    INDEXPACK_THREADS_MAX */
	size_t held_max; /* 0: INDEXPACK_HELD_MAX bytes per thread */
	/* Called on the calling thread a few times a second while deltas are
	 * resolved, with how many are done of TOTAL; a non-zero return aborts
	 * the run (-1, reason "aborted"). May be NULL. */
	int (*progress)(void *arg, uint32_t resolved, uint32_t total);
	void *progress_arg;
};

struct indexpack_result {
	char pack_name[64];  /* "pack-HEX", HEX the pack's trailing checksum */
	uint32_t nobjects;   /* objects in the pack */
	uint32_t ndeltas;    /* of which deltas */
	uint32_t nlocal;     /* bases a thin pack lacked, appended from
	                        opts->odb (counted in nobjects) */
	const char *problem; /* with opts->odb: NULL when connected, else
	                        "missing necessary objects" or "invalid object
	                        in pack" (a commit, tree or tag that does not
	                        parse); static */
	/* The pack holds exactly what the tips reach: every object is named by
	 * another object of the pack or is a tip, and everything its objects
	 * name is in the pack. Ids are hashes, so the "names" graph has no
	 * cycles and every object is reachable from a tip. Computed only with
	 * opts->odb and no problem; false otherwise. */
	bool is_closed;
	char reason[200]; /* why the pack was refused, for the client's
	                     "unpack REASON": one line without server paths */
};

/* Indexes the pack in the file PACK_PATH, which holds exactly one pack
 * (header, entries, trailer) that packfile_check has passed: OFFSETS are
 * the NOBJECTS entry offsets it recorded, in pack order (borrowed). Inflates
 * every entry (checking it gives its declared size), applies every delta
 * (checking its base and result sizes and that it copies only from inside
 * its base), hashes every object, and with opts->odb checks connectivity.
 * A thin pack (git sends one for a push on top of what the server has: a
 * REF_DELTA's base is left out) is completed from opts->odb as git's
 * `index-pack --fix-thin` does: each missing base is appended to the file
 * as a whole object, then the object count and the trailer are rewritten.
 * On success moves PACK_PATH to DIR/pack_name.pack and writes
 * DIR/pack_name.idx (both read-only, not synced: the caller syncs them
 * before it moves them where readers look, as receive-pack's quarantine
 * does, both at once, and not at all for a push it rejects) and returns
 * 0. Returns
 * INDEXPACK_ETHIN when a base is missing (no .idx written; PACK_PATH holds
 * a valid pack, completed as far as opts->odb could), or -1 with err_msg()
 * and out->reason: a malformed entry or delta, an OFS_DELTA base that is
 * not an entry, the same object twice in the pack, out of memory or an I/O
 * error. PACK_PATH is left in place unless 0 is returned. */
int indexpack_run(struct indexpack_result *out, const char *dir, const char *pack_path,
                  const uint64_t *offsets, uint32_t nobjects, const struct indexpack_opts *opts);

/* Applies the delta DELTA (DELTA_LEN bytes of inflated delta data: base
 * size, result size, instructions) to BASE (BASE_SIZE bytes) into *OUT
 * (allocated, caller frees; *OUT_SIZE its size). Returns 0, or -1 with
 * err_msg(): the delta's base size is not BASE_SIZE, its result size is
 * larger than MAX_SIZE (0: no limit) or not what its instructions make, a
 * copy reaches outside the base, an instruction is the reserved 0 or is
 * truncated, or out of memory. */
int indexpack_delta_apply(unsigned char **out, size_t *out_size, const unsigned char *base,
                          size_t base_size, const unsigned char *delta, size_t delta_len,
                          uint64_t max_size);

/* Calls NAMED(ID, ARG) for every id the object of TYPE (DATA, LEN bytes)
 * names: a commit its tree and parents, a tag its object, a tree its
 * entries but gitlinks (mode 160000: commits of another repository); other
 * types name nothing. Returns 0; -1 when the object does not parse
 * (a commit without "tree ", a tag without "object ", a malformed tree
 * entry); or NAMED's non-zero return, which stops the walk. */
int indexpack_each_name(git_object_t type, const char *data, size_t len,
                        int (*named)(const git_oid *id, void *arg), void *arg);

#endif
