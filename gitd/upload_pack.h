/* upload_pack: the server side of `git clone` and `git fetch`, served with
 * libgit2.
 *
 * Protocol v0/v1 (git Documentation/gitprotocol-pack.txt, "Reference
 * Discovery" and "Packfile Negotiation") with the capabilities multi_ack,
 * multi_ack_detailed, no-done, side-band, side-band-64k, ofs-delta,
 * thin-pack (accepted; packs are never thin), shallow, deepen-since,
 * deepen-not, deepen-relative, no-progress, include-tag,
 * allow-reachable-sha1-in-want, symref=HEAD:..., object-format=sha1 and
 * agent; and protocol v2 (gitprotocol-v2.txt), which current git clients ask
 * for with GIT_PROTOCOL=version=2: capability advertisement, ls-refs (peel,
 * symrefs, ref-prefix, unborn) and fetch (want, have, done, shallow, deepen,
 * deepen-relative, deepen-since, deepen-not, include-tag, ofs-delta,
 * no-progress, wait-for-done).
 *
 * A want must be an advertised id, the tip of a ref, or a commit reachable
 * from one; anything else is refused with "upload-pack: not our ref ID".
 * The packfile copies the entries of the repository's own packs where it
 * can (whole objects, and deltas whose base is sent too; read with
 * packfile.h) and builds the rest with git_packbuilder; it goes out on
 * side-band 1 with progress on band 2. A copied entry streams whatever its
 * size; an object that would be inflated whole (a commit, tree or tag the
 * walk parses, anything the packbuilder packs) and is larger than
 * opts->max_object_bytes ends the request with "ERR upload-pack: TYPE ID is
 * N bytes, larger than the maximum object size of M bytes".
 *
 * Pack reuse: a request without common haves, shallow or deepen options
 * (a clone, or a fetch into an empty repository) whose client reads
 * ofs-delta gets a stored pack's entries as they are, right after the pack
 * header, when that pack has a closure marker (packclosure.h: it holds
 * exactly the objects reachable from tips T) and the wants reach every tip
 * of T. The walk from the wants then stops at the pack's objects, and only
 * what lies outside it is walked and sent after it; a delta there whose base
 * is in the reused pack names it by offset. Anything else (a tip of T the
 * wants do not reach, as after a force-push dropped it; a marker that does
 * not match its pack) falls back to the full walk: a client only ever gets
 * objects reachable from its wants. The client sees "pack-reused N" in the
 * "Total" progress line. After a full walk for such a request whose objects
 * turn out to be exactly one pack's, upload-pack writes that pack's marker
 * with the wants (and the tags include-tag added) as T, so later clones
 * reuse it. */
#ifndef SLIP_GITD_UPLOAD_PACK_H
#define SLIP_GITD_UPLOAD_PACK_H

#include <stddef.h>
#include <git2.h>

#include "pktline.h"

struct upload_opts {
	const char *agent;                   /* "agent=" value, e.g. "slipway/0.1" */
	unsigned long long max_object_bytes; /* an object that would be inflated
	                                        whole and is larger is refused
	                                        with ERR; 0: no limit */
};

/* What happened, for logs and metrics. */
struct upload_stats {
	size_t nwants;                 /* objects the client asked for */
	size_t pack_objects;           /* objects sent */
	unsigned long long pack_bytes; /* packfile bytes sent */
	size_t pack_reused;            /* of pack_objects: sent as one stored pack's
	                                  entries, as they are (pack reuse) */
	size_t closures_recorded;      /* closure markers written (packclosure.h) */
};

/* Hard limits of one request, whatever the repository holds; more is a
 * protocol error (git has none, but every buffer here has a maximum). */
#define UPLOAD_WANTS_MAX 100000       /* distinct "want" lines */
#define UPLOAD_HAVES_MAX 1000000      /* common "have" objects remembered */
#define UPLOAD_SHALLOWS_MAX 100000    /* the client's "shallow" lines */
#define UPLOAD_DEEPEN_NOT_MAX 256     /* "deepen-not" lines */
#define UPLOAD_OBJECTS_MAX (1u << 26) /* objects one request looks at */
#define UPLOAD_REFS_MAX 1000000       /* refs listed */

/* ls-refs keeps at most this many "ref-prefix" arguments; past it every ref
 * is listed, as git does past its own limit (the prefixes only narrow the
 * listing, the client filters again). */
#define UPLOAD_REF_PREFIXES_MAX 256

/* The protocol version a GIT_PROTOCOL value asks for: the highest
 * "version=N" among its colon-separated keys (gitprotocol-v2.txt,
 * "Initial Client Request") that is 0, 1 or 2; 0 when VALUE is NULL or names
 * none. */
int upload_pack_protocol_version(const char *value);

/* Serves one clone or fetch on IO for REPO. VERSION is the protocol the
 * client asked for (0, 1 or 2, from GIT_PROTOCOL "version=N"; anything else
 * is served as 0). STATS may be NULL. Returns 0 when the exchange completed
 * (including a client that only listed refs and hung up), or -1 with
 * err_msg() on a protocol error (also sent to the client as "ERR ..." or on
 * side-band 3 where the protocol allows) or a broken connection. */
int upload_pack_serve(struct pkt_io *io, git_repository *repo, int version,
                      const struct upload_opts *opts, struct upload_stats *stats);

#endif
