/* packclosure: a marker beside a pack, objects/pack/pack-X.closure, that
 * says "pack-X.pack holds exactly the objects reachable from these tips":
 * the closure of the tips (every object they name, directly or through
 * other objects, the tips included) is the pack's object set, no more and
 * no less. upload-pack then sends such a pack's entries as they are to a
 * client whose wants reach every tip (upload_pack.h, "pack reuse"), instead
 * of walking every object of the history.
 *
 * The marker is Slipway's own format (git has none like it; git ignores
 * the file), text, one line each, every line ending with "\n":
 *
 *   slipway pack closure 1
 *   pack <40 lowercase hex: the pack's trailing SHA-1, as its .idx repeats it>
 *   objects <decimal: the number of objects in the pack>
 *   tips <decimal: the number of tip lines that follow, at least 1>
 *   tip <40 lowercase hex>          (once per tip, sorted, no duplicates)
 *
 * and nothing after the last tip line. The pack id and count bind the
 * marker to one pack's bytes: a marker whose pack is gone or differs is
 * ignored. The tips are ids of objects in the pack, of any type (usually
 * the commits and annotated tags refs pointed at). Closure is upload-pack's:
 * a tree's submodule entry names a commit of another repository and is not
 * followed. A marker is written
 * whole under a temporary name and renamed into place, so a reader sees
 * none or all of it; packs never change, so a true marker stays true. */
#ifndef SLIP_GITD_PACKCLOSURE_H
#define SLIP_GITD_PACKCLOSURE_H

#include <stddef.h>
#include <stdint.h>
#include <git2.h>

#include "packfile.h"

#define PACKCLOSURE_MAGIC "slipway pack closure 1"
#define PACKCLOSURE_SUFFIX ".closure"

/* Most tips one marker holds (upload-pack takes at most 100,000 wants, and
 * a push updates fewer refs); a marker file is at most PACKCLOSURE_FILE_MAX
 * bytes. */
#define PACKCLOSURE_TIPS_MAX 100000
#define PACKCLOSURE_FILE_MAX (128 + (size_t)PACKCLOSURE_TIPS_MAX * 45)

/* Returned by packclosure_load when the pack has no marker. */
#define PACKCLOSURE_ENOTFOUND (-3)

/* A marker in memory. */
struct packclosure {
	unsigned char pack_id[PACKFILE_ID_SIZE]; /* the pack's trailing SHA-1 */
	uint32_t nobjects;                       /* objects in the pack */
	git_oid *tips;                           /* sorted, distinct; owned */
	size_t ntips;
};

/* Parses the marker text DATA (LEN bytes, borrowed) into OUT (set up in
 * place). Returns 0, or -1 with err_msg() when it is not exactly the format
 * above: magic line, hex case, decimal counts, tips sorted and distinct and
 * as many as announced, nothing after the last. Release OUT with
 * packclosure_release(). */
int packclosure_parse(struct packclosure *out, const char *data, size_t len);

/* Reads and parses the marker at PATH (at most PACKCLOSURE_FILE_MAX bytes)
 * into OUT. Returns 0; PACKCLOSURE_ENOTFOUND (err_msg() set) when there is
 * no such file; -1 with err_msg() when it cannot be read, is larger, or
 * does not parse. */
int packclosure_load(struct packclosure *out, const char *path);

/* Checks that C describes PACK: the pack's trailing SHA-1 and the copy its
 * .idx keeps both equal c->pack_id, its .idx counts c->nobjects objects,
 * and every tip is one of them. Returns 0, or -1 with err_msg() naming the
 * first mismatch. */
int packclosure_check(const struct packclosure *c, const struct packfile *pack);

/* Writes the marker of the pack at PACK_PATH (".../pack-X.pack"): its
 * closure is exactly the objects reachable from the NTIPS ids TIPS (in any
 * order, duplicates allowed; 1 to PACKCLOSURE_TIPS_MAX). The caller vouches
 * for that: for example receive-pack, after its index of a freshly pushed
 * pack proved every object named inside the pack to be in it and every
 * object in it reachable from the pushed ref tips, or upload-pack, after a
 * full walk from its wants found exactly this pack's objects. The pack's
 * header count and trailing SHA-1 are read from PACK_PATH; the marker goes
 * to ".../pack-X.closure" (mode 0444) through a temporary file in the same
 * directory, fsync'd and renamed over any marker already there: write it
 * where the pack stays (or move it along with the pack, as a quarantined
 * pack's .idx moves). The marker is trusted as it is written: only gitd
 * writes into a repository. Returns 0,
 * or -1 with err_msg() (nothing left behind) when PACK_PATH is not a pack
 * named *.pack, TIPS are too many or none, or a file operation fails. */
int packclosure_write(const char *pack_path, const git_oid *tips, size_t ntips);

/* Frees what C holds; C is then empty. */
void packclosure_release(struct packclosure *c);

#endif
