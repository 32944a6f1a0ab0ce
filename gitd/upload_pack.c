/* upload_pack: the server side of git clone and fetch (see upload_pack.h).
 * Protocol v0/v1 reads top to bottom in serve_v0(): advertisement, want
 * list, shallow update, negotiation, packfile; protocol v2 in serve_v2():
 * capability advertisement, then ls-refs and fetch commands until the
 * client hangs up. */
#include <dirent.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <git2/sys/odb_backend.h>
#include <openssl/evp.h>

#include "capability.h"
#include "clock.h"
#include "err.h"
#include "packclosure.h"
#include "packfile.h"
#include "repo.h"
#include "upload_pack.h"
#include "banned.h"

#define ZERO_HEX "0000000000000000000000000000000000000000"

/* Progress lines on side-band 2 are at least this far apart. */
#define PROGRESS_INTERVAL_MS 250

/* With no progress to show, an empty band-1 packet ("0005\1") goes out after
 * this much silence, as git's upload-pack sends while pack-objects thinks
 * (uploadpack.keepAlive), so that idle connections are not cut. */
#define KEEPALIVE_MS 5000

/* "deepen 2147483647" is git's INFINITE_DEPTH: `git fetch --unshallow`. */
#define INFINITE_DEPTH 0x7fffffff

/* Deepest tree walked (git's core.maxTreeDepth default), and longest tag
 * chain peeled: the walks recurse, so both are bounded. */
#define TREE_DEPTH_MAX 4096
#define TAG_CHAIN_MAX 64

/* Objects are allocated this many at a time, so pointers to them stay valid. */
#define OBJ_CHUNK 1024

/* Copied pack entries leave the resident set this many bytes at a time. */
#define DROP_BYTES (8u << 20)

/* Client text quoted in an error message is cut to this many bytes. */
#define SHOWN_MAX 64

static bool has_prefix(const char *s, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	return len >= n && !memcmp(s, prefix, n);
}

static bool is_token(const char *s, size_t len, const char *token)
{
	return strlen(token) == len && !memcmp(s, token, len);
}

/* Client bytes for an error message: at most SHOWN_MAX of them, anything
 * unprintable as '?'. Returns BUF. */
static const char *shown(char *buf, size_t size, const char *s, size_t len)
{
	size_t i;

	if (len > SHOWN_MAX)
		len = SHOWN_MAX;
	for (i = 0; i < len && i + 1 < size; i++)
		buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	buf[i] = '\0';
	return buf;
}

/* A decimal number of 1 to 19 digits, at most MAX. */
static bool parse_number(unsigned long long *out, const char *s, size_t len, unsigned long long max)
{
	unsigned long long v = 0;

	if (!len || len > 19)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long long)(s[i] - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

/* ---- objects ------------------------------------------------------------ */

/* What the exchange knows about one object; the flags are git upload-pack's
 * object flags (upload-pack.c) plus the pack walk's own. */
enum obj_flag {
	F_PARSED = 1 << 0,         /* commit: time, tree and parents read */
	F_OUR_REF = 1 << 1,        /* advertised, or the tip of a ref now */
	F_WANTED = 1 << 2,         /* named in a want line */
	F_THEY_HAVE = 1 << 3,      /* a common have, or a parent of one */
	F_COMMON_KNOWN = 1 << 4,   /* a want known to reach a THEY_HAVE commit */
	F_CLIENT_SHALLOW = 1 << 5, /* the client has it without its parents */
	F_SHALLOW = 1 << 6,        /* a new shallow boundary sent to the client */
	F_NOT_SHALLOW = 1 << 7,    /* inside the requested depth: parents go too */
	F_INCLUDED = 1 << 8,       /* deepen-since/-not: selected */
	F_EXCLUDED = 1 << 9,       /* deepen-not: reachable from a named commit */
	F_CLIENT_HAS = 1 << 10,    /* reachable from the common haves */
	F_SENDING = 1 << 11,       /* a commit that goes into the pack */
	F_EDGE = 1 << 12,          /* a commit the client has next to a sent one */
	F_UNINTERESTING = 1 << 13, /* a tree or blob the client has */
	F_ADDED = 1 << 14,         /* in the pack being sent */
	F_WRITTEN = 1 << 15,       /* its entry has been written */
	F_TIP = 1 << 16,           /* a tip of the reused pack's closure marker */
	F_REACHED = 1 << 17,       /* in the reused pack, met by the walk */
};

struct pack;

struct obj {
	git_oid oid;
	git_oid tree;      /* commits, once parsed */
	int type;          /* a git_object_t once looked up, else 0 */
	unsigned flags;    /* enum obj_flag */
	unsigned visit;    /* stamp of the last walk that reached it */
	int depth;         /* depth walk: distance from the nearest head */
	int64_t time;      /* commits: committer time */
	unsigned nparents; /* commits, once parsed */
	struct obj **parents;
	const char *name;      /* trees and blobs: the entry name they were found under */
	struct pack *pack;     /* the pack its entry is copied from; NULL: none */
	uint64_t offset;       /* that entry's offset */
	uint64_t data_offset;  /* where its compressed data starts */
	uint64_t end;          /* where the entry ends */
	uint64_t out_offset;   /* where it went in the pack sent */
	struct obj *base;      /* a copied delta's base */
	unsigned char hdr_len; /* bytes of the entry's type and size */
	unsigned char reuse;   /* enum reuse */
};

struct obj_chunk {
	struct obj_chunk *next;
	size_t used;
	struct obj objs[OBJ_CHUNK];
};

/* Objects by id: open addressing over a power-of-two table, at most half
 * full. The ids come from the repository (the client's are looked up before
 * they are added), so their bytes are uniform enough to hash by. */
struct objmap {
	struct obj **slots;
	size_t cap;
	size_t count;
	struct obj_chunk *chunks;
};

static size_t oid_hash(const git_oid *oid)
{
	size_t h;

	memcpy(&h, oid->id, sizeof(h));
	return h;
}

static struct obj *objmap_get(const struct objmap *m, const git_oid *oid)
{
	if (!m->cap)
		return NULL;
	for (size_t i = oid_hash(oid) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		struct obj *o = m->slots[i];

		if (!o || !memcmp(o->oid.id, oid->id, GIT_OID_RAWSZ))
			return o;
	}
}

static int objmap_grow(struct objmap *m)
{
	size_t cap = m->cap ? 2 * m->cap : 1024;
	struct obj **slots = calloc(cap, sizeof(*slots));

	if (!slots)
		return err_set("out of memory");
	for (size_t i = 0; i < m->cap; i++) {
		struct obj *o = m->slots[i];
		size_t j;

		if (!o)
			continue;
		for (j = oid_hash(&o->oid) & (cap - 1); slots[j]; j = (j + 1) & (cap - 1))
			;
		slots[j] = o;
	}
	free(m->slots);
	m->slots = slots;
	m->cap = cap;
	return 0;
}

/* Finds or adds the object OID. */
static int objmap_add(struct obj **out, struct objmap *m, const git_oid *oid)
{
	struct obj *o = objmap_get(m, oid);
	size_t i;

	if (o) {
		*out = o;
		return 0;
	}
	if (m->count >= UPLOAD_OBJECTS_MAX)
		return err_set("upload-pack: more than %u objects in one request",
		               UPLOAD_OBJECTS_MAX);
	if (2 * (m->count + 1) > m->cap && objmap_grow(m) < 0)
		return -1;
	if (!m->chunks || m->chunks->used == OBJ_CHUNK) {
		struct obj_chunk *c = calloc(1, sizeof(*c));

		if (!c)
			return err_set("out of memory");
		c->next = m->chunks;
		m->chunks = c;
	}
	o = &m->chunks->objs[m->chunks->used++];
	git_oid_cpy(&o->oid, oid);
	for (i = oid_hash(oid) & (m->cap - 1); m->slots[i]; i = (i + 1) & (m->cap - 1))
		;
	m->slots[i] = o;
	m->count++;
	*out = o;
	return 0;
}

static void objmap_release(struct objmap *m)
{
	while (m->chunks) {
		struct obj_chunk *c = m->chunks;

		for (size_t i = 0; i < c->used; i++)
			free(c->objs[i].parents);
		m->chunks = c->next;
		free(c);
	}
	free(m->slots);
	memset(m, 0, sizeof(*m));
}

struct objlist {
	struct obj **items;
	size_t n, alloc;
};

static int objlist_push(struct objlist *l, struct obj *o)
{
	if (l->n == l->alloc) {
		size_t n = l->alloc ? 2 * l->alloc : 64;
		struct obj **grown;

		if (l->alloc >= UPLOAD_OBJECTS_MAX)
			return err_set("upload-pack: more than %u objects in one list",
			               UPLOAD_OBJECTS_MAX);
		if (n > UPLOAD_OBJECTS_MAX)
			n = UPLOAD_OBJECTS_MAX;
		grown = realloc(l->items, n * sizeof(*grown));
		if (!grown)
			return err_set("out of memory");
		l->items = grown;
		l->alloc = n;
	}
	l->items[l->n++] = o;
	return 0;
}

static void objlist_release(struct objlist *l)
{
	free(l->items);
	memset(l, 0, sizeof(*l));
}

/* ---- the exchange ------------------------------------------------------- */

/* Names of trees and blobs (for the packbuilder's delta pairing) are kept
 * in chunks; a tree entry name is shorter than 64 KiB (libgit2). */
#define NAME_CHUNK (128 * 1024)
#define NAME_CHUNKS_MAX 8192

struct name_chunk {
	struct name_chunk *next;
	size_t used;
	char buf[NAME_CHUNK];
};

/* How haves are acknowledged (gitprotocol-pack.txt, "Packfile Negotiation"). */
enum ack_mode { ACK_SINGLE, ACK_MULTI, ACK_DETAILED };

/* One fetch: v0's only request, or one v2 fetch command (v2 is stateless:
 * each command starts over). */
struct request {
	struct objmap objs;          /* every object this request looked at */
	struct objlist wants;        /* distinct, in the client's order */
	struct objlist want_commits; /* the commits the wants peel to */
	struct objlist haves;        /* common haves (git's have_obj) */
	struct objlist acks;         /* v2: this request's common haves */
	struct objlist shallows;     /* the client's shallow commits */
	struct objlist deepen_not;   /* commits named by deepen-not */
	struct objlist border;       /* depth walk: commits at the cut */
	struct objlist extra_wants;  /* parents of unshallowed commits */
	struct objlist stack;        /* scratch for walks */
	struct objlist included;     /* tags include-tag added */
	struct pack *reused;         /* the pack sent whole (pack reuse), while
	                                the pack is sent; NULL: none */
	struct name_chunk *names;    /* storage of obj.name */
	size_t nname_chunks;
	int depth;               /* "deepen N"; 0: none */
	int64_t deepen_since;    /* "deepen-since T"; 0: none */
	bool is_deepen_relative; /* deepen-relative */
	enum ack_mode ack_mode;
	int sideband;            /* requested: 0 or the payload limit (v0) */
	bool is_no_done;         /* no-done */
	bool is_no_progress;     /* no-progress */
	bool wants_tags;         /* include-tag */
	bool wants_ofs_delta;    /* ofs-delta */
	bool is_done;            /* v2: "done" was sent */
	bool is_wait_for_done;   /* v2: wait-for-done */
	bool has_oldest_have;    /* oldest_have is set */
	int64_t oldest_have;     /* time of the oldest common commit */
	unsigned have_gen;       /* bumped when THEY_HAVE marks are added */
	unsigned give_up_gen;    /* have_gen when ok_to_give_up last said no */
	bool has_give_up_answer; /* give_up_gen is valid */
	unsigned visit;          /* the last walk stamp handed out */
};

/* A ref as advertised. */
struct ref {
	char *name;
	char *symref_target; /* a symbolic ref: the ref it resolves to */
	git_oid oid;
	git_oid peeled;  /* an annotated tag: what it peels to */
	bool has_peeled; /* peeled is set */
};

struct refs {
	struct ref *items; /* sorted by name, HEAD not among them */
	size_t n;
	struct ref head;          /* HEAD, when it resolves */
	bool has_head;            /* head is set */
	char *head_unborn_target; /* HEAD is a symref to a branch yet to be born */
};

struct pack_out;

struct upload {
	struct pkt_io *io;
	git_repository *repo;
	git_odb *odb;
	const char *agent;
	unsigned long long max_object_bytes; /* opts->max_object_bytes */
	int version;
	struct upload_stats *stats;
	struct refs refs;    /* the last listing sent */
	bool has_refs;       /* refs is loaded */
	struct objmap adv;   /* every id advertised in this session (F_OUR_REF) */
	struct request req;  /* the fetch being served */
	struct pack_out *po; /* while a pack is being sent */
};

static void request_release(struct request *q)
{
	while (q->names) {
		struct name_chunk *c = q->names;

		q->names = c->next;
		free(c);
	}
	objmap_release(&q->objs);
	objlist_release(&q->wants);
	objlist_release(&q->want_commits);
	objlist_release(&q->haves);
	objlist_release(&q->acks);
	objlist_release(&q->shallows);
	objlist_release(&q->deepen_not);
	objlist_release(&q->border);
	objlist_release(&q->extra_wants);
	objlist_release(&q->stack);
	objlist_release(&q->included);
	memset(q, 0, sizeof(*q));
}

static int oid_fail(const char *what, const git_oid *oid)
{
	char hex[GIT_OID_HEXSZ + 1];

	git_oid_tostr(hex, sizeof(hex), oid);
	return err_set("upload-pack: cannot read %s %s: %s", what, hex, repo_git_error());
}

/* An object is inflated whole when a walk parses it (commits, trees, tags)
 * or the packbuilder packs it; one larger than the limit is refused instead
 * (copied pack entries are never inflated and have no limit). Every whole
 * read of the repository handle upload-pack uses goes through a size guard
 * first: an object database backend of the highest priority that reads
 * nothing itself (GIT_PASSTHROUGH) but fails a read whose object is larger,
 * so that libgit2's own reads (its revwalk parses every commit it reaches)
 * are bounded too. */
struct size_guard {
	git_odb_backend parent;
	git_odb *headers; /* a second database on the same objects, owned: the
	                     guarded one holds its lock while it asks the guard */
	unsigned long long max;
};

static void size_message(char *buf, size_t size, git_object_t type, const git_oid *oid, size_t len,
                         unsigned long long max)
{
	char hex[GIT_OID_HEXSZ + 1];

	git_oid_tostr(hex, sizeof(hex), oid);
	snprintf(buf, size, "%s %s is %zu bytes, larger than the maximum object size of %llu bytes",
	         git_object_type2string(type), hex, len, max);
}

static int guard_read(void **data, size_t *len, git_object_t *type, git_odb_backend *backend,
                      const git_oid *oid)
{
	struct size_guard *g = (struct size_guard *)backend;
	char msg[256];
	git_object_t t;
	size_t n;

	if (git_odb_read_header(&n, &t, g->headers, oid) < 0 || n <= g->max)
		return GIT_PASSTHROUGH;
	size_message(msg, sizeof(msg), t, oid, n, g->max);
	git_error_set_str(GIT_ERROR_ODB, msg);
	return GIT_ERROR;
}

static int guard_refresh(git_odb_backend *backend)
{
	return 0;
}

static void guard_free(git_odb_backend *backend)
{
	struct size_guard *g = (struct size_guard *)backend;

	git_odb_free(g->headers);
	free(g);
}

/* Opens *OUT as a handle on REPO whose reads are guarded by MAX (bytes).
 * Returns 0 or -1 with err_msg(). */
static int open_guarded(git_repository **out, git_repository *repo, unsigned long long max)
{
	struct size_guard *g = NULL;
	git_buf objects = {0};
	git_odb *odb = NULL;
	int ret = -1;

	*out = NULL;
	if (git_repository_open_bare(out, git_repository_path(repo)) < 0 ||
	    git_repository_odb(&odb, *out) < 0 ||
	    git_repository_item_path(&objects, repo, GIT_REPOSITORY_ITEM_OBJECTS) < 0) {
		err_set("upload-pack: cannot open the repository: %s", repo_git_error());
		goto out;
	}
	if (!(g = calloc(1, sizeof(*g)))) {
		err_set("out of memory");
		goto out;
	}
	git_odb_init_backend(&g->parent, GIT_ODB_BACKEND_VERSION);
	g->parent.read = guard_read;
	g->parent.refresh = guard_refresh;
	g->parent.free = guard_free;
	g->max = max;
	if (git_odb_open(&g->headers, objects.ptr) < 0) {
		free(g);
		err_set("upload-pack: cannot open the object database: %s", repo_git_error());
		goto out;
	}
	if (git_odb_add_backend(odb, &g->parent, INT_MAX) < 0) {
		guard_free(&g->parent);
		err_set("upload-pack: cannot guard the object database: %s", repo_git_error());
		goto out;
	}
	ret = 0;
out:
	git_buf_dispose(&objects);
	git_odb_free(odb);
	if (ret < 0) {
		git_repository_free(*out);
		*out = NULL;
	}
	return ret;
}

/* Refuses an object larger than the limit before it is handed on (to the
 * packbuilder, or the revwalk as a tip), so that the refusal comes before
 * any pack byte and names the object plainly. Returns 0, or -1 with
 * err_msg() (sent to the client as ERR). */
static int check_object_size(struct upload *u, const git_oid *oid)
{
	char msg[256];
	git_object_t type;
	size_t size;

	if (!u->max_object_bytes)
		return 0;
	if (git_odb_read_header(&size, &type, u->odb, oid) < 0)
		return oid_fail("object", oid);
	if (size <= u->max_object_bytes)
		return 0;
	size_message(msg, sizeof(msg), type, oid, size, u->max_object_bytes);
	return err_set("upload-pack: %s", msg);
}

/* The object's type, looked up once. Returns the git_object_t, or -1. */
static int obj_type(struct upload *u, struct obj *o)
{
	git_object_t type;
	size_t size;

	if (o->type > 0)
		return o->type;
	if (git_odb_read_header(&size, &type, u->odb, &o->oid) < 0)
		return oid_fail("object", &o->oid);
	o->type = type;
	return type;
}

/* Reads a commit's time, tree and parents into O. */
static int commit_parse(struct upload *u, struct obj *o)
{
	git_commit *c = NULL;
	unsigned n;
	int ret = -1;

	if (o->flags & F_PARSED)
		return 0;
	if (git_commit_lookup(&c, u->repo, &o->oid) < 0) {
		oid_fail("commit", &o->oid);
		goto out;
	}
	n = git_commit_parentcount(c);
	if (n && !(o->parents = calloc(n, sizeof(*o->parents)))) {
		err_set("out of memory");
		goto out;
	}
	for (o->nparents = 0; o->nparents < n; o->nparents++)
		if (objmap_add(&o->parents[o->nparents], &u->req.objs,
		               git_commit_parent_id(c, o->nparents)) < 0)
			goto out;
	o->time = git_commit_time(c);
	git_oid_cpy(&o->tree, git_commit_tree_id(c));
	o->type = GIT_OBJECT_COMMIT;
	o->flags |= F_PARSED;
	ret = 0;
out:
	git_commit_free(c);
	return ret;
}

/* The commit O peels to through tags, or NULL in *OUT when it peels to a
 * tree or blob. */
static int peel_commit(struct obj **out, struct upload *u, struct obj *o)
{
	for (int i = 0;; i++) {
		int type = obj_type(u, o);
		git_tag *tag = NULL;
		int r;

		if (type < 0)
			return -1;
		if (type != GIT_OBJECT_TAG) {
			*out = type == GIT_OBJECT_COMMIT ? o : NULL;
			return 0;
		}
		if (i == TAG_CHAIN_MAX)
			return err_set("upload-pack: a chain of more than %d tags", TAG_CHAIN_MAX);
		if (git_tag_lookup(&tag, u->repo, &o->oid) < 0)
			return oid_fail("tag", &o->oid);
		r = objmap_add(&o, &u->req.objs, git_tag_target_id(tag));
		git_tag_free(tag);
		if (r < 0)
			return -1;
	}
}

static unsigned next_visit(struct request *q)
{
	return ++q->visit;
}

/* Writes "ERR"/band 3 with err_msg() to the client (gitprotocol-pack.txt:
 * "the server may send an error message"; side-band 3 once the pack has
 * started), keeping err_msg() as it was. */
static void tell_client(struct upload *u)
{
	char msg[ERR_MAX];

	snprintf(msg, sizeof(msg), "%s", err_msg());
	if (pkt_sideband(u->io, SIDEBAND_ERROR, msg, strlen(msg)) == 0)
		pkt_send(u->io);
	err_set("%s", msg);
}

/* ---- refs --------------------------------------------------------------- */

static void ref_release(struct ref *r)
{
	free(r->name);
	free(r->symref_target);
	memset(r, 0, sizeof(*r));
}

static void refs_release(struct refs *refs)
{
	for (size_t i = 0; i < refs->n; i++)
		ref_release(&refs->items[i]);
	free(refs->items);
	ref_release(&refs->head);
	free(refs->head_unborn_target);
	memset(refs, 0, sizeof(*refs));
}

/* Fills OUT from REF: its id (through a symbolic ref), and what an annotated
 * tag peels to. Returns 1, 0 when the ref is skipped as git skips it (a
 * symref that does not resolve, an id that is not in the repository), or -1.
 * A ref read from packed-refs with a peeled line ("^ID" after it, see git's
 * refs/packed-backend.c) is a tag whose target is that line, so the tag is
 * not inflated: a repository of a thousand tags advertises without reading a
 * thousand objects. libgit2 1.5's git_refdb_compress writes the tag's
 * target there, not what it peels to fully, so a line naming a tag (a tag
 * of a tag) is peeled further from the objects. */
static int ref_fill(struct ref *out, git_odb *odb, git_reference *ref)
{
	git_reference *resolved = NULL;
	git_object *peeled = NULL;
	const git_oid *oid, *packed_peel;
	git_object_t type;
	size_t size;
	int ret = -1;

	memset(out, 0, sizeof(*out));
	if (git_reference_type(ref) == GIT_REFERENCE_SYMBOLIC) {
		if (git_reference_resolve(&resolved, ref) < 0) {
			ret = 0;
			goto out;
		}
		if (!(out->symref_target = strdup(git_reference_name(resolved)))) {
			err_set("out of memory");
			goto out;
		}
		oid = git_reference_target(resolved);
	} else {
		oid = git_reference_target(ref);
	}
	packed_peel = git_reference_target_peel(resolved ? resolved : ref);
	if (!oid || (packed_peel ? !git_odb_exists(odb, oid)
	                         : git_odb_read_header(&size, &type, odb, oid) < 0)) {
		ret = 0;
		goto out;
	}
	git_oid_cpy(&out->oid, oid);
	if (packed_peel && git_odb_read_header(&size, &type, odb, packed_peel) == 0 &&
	    type != GIT_OBJECT_TAG) {
		git_oid_cpy(&out->peeled, packed_peel);
		out->has_peeled = true;
	} else if ((packed_peel || type == GIT_OBJECT_TAG) &&
	           git_reference_peel(&peeled, resolved ? resolved : ref, GIT_OBJECT_ANY) == 0) {
		git_oid_cpy(&out->peeled, git_object_id(peeled));
		out->has_peeled = true;
	}
	if (!(out->name = strdup(git_reference_name(ref)))) {
		err_set("out of memory");
		goto out;
	}
	ret = 1;
out:
	if (ret <= 0)
		ref_release(out);
	git_object_free(peeled);
	git_reference_free(resolved);
	return ret;
}

static int compare_refs(const void *a, const void *b)
{
	return strcmp(((const struct ref *)a)->name, ((const struct ref *)b)->name);
}

/* Lists the repository's refs sorted by name, as git's for_each_ref does,
 * and HEAD. */
static int refs_load(struct refs *out, struct upload *u)
{
	git_reference_iterator *it = NULL;
	git_reference *ref = NULL;
	size_t alloc = 0;
	int r, ret = -1;

	memset(out, 0, sizeof(*out));
	if (git_reference_iterator_new(&it, u->repo) < 0) {
		err_set("upload-pack: cannot list refs: %s", repo_git_error());
		goto out;
	}
	while ((r = git_reference_next(&ref, it)) == 0) {
		if (out->n == alloc) {
			size_t n = alloc ? 2 * alloc : 64;
			struct ref *grown;

			if (alloc >= UPLOAD_REFS_MAX) {
				err_set("upload-pack: more than %d refs", UPLOAD_REFS_MAX);
				goto out;
			}
			if (!(grown = realloc(out->items, n * sizeof(*grown)))) {
				err_set("out of memory");
				goto out;
			}
			out->items = grown;
			alloc = n;
		}
		r = ref_fill(&out->items[out->n], u->odb, ref);
		if (r < 0)
			goto out;
		out->n += (size_t)r;
		git_reference_free(ref);
		ref = NULL;
	}
	if (r != GIT_ITEROVER) {
		err_set("upload-pack: cannot list refs: %s", repo_git_error());
		goto out;
	}
	if (out->n)
		qsort(out->items, out->n, sizeof(*out->items), compare_refs);

	r = git_reference_lookup(&ref, u->repo, "HEAD");
	if (r == 0) {
		r = ref_fill(&out->head, u->odb, ref);
		if (r < 0)
			goto out;
		out->has_head = r;
		if (!r && git_reference_type(ref) == GIT_REFERENCE_SYMBOLIC &&
		    !(out->head_unborn_target = strdup(git_reference_symbolic_target(ref)))) {
			err_set("out of memory");
			goto out;
		}
	} else if (r != GIT_ENOTFOUND) {
		err_set("upload-pack: cannot read HEAD: %s", repo_git_error());
		goto out;
	}
	ret = 0;
out:
	git_reference_free(ref);
	git_reference_iterator_free(it);
	if (ret < 0)
		refs_release(out);
	return ret;
}

/* Loads u->refs (once per v0 session, again for each v2 ls-refs). */
static int load_refs(struct upload *u)
{
	if (u->has_refs)
		refs_release(&u->refs);
	u->has_refs = false;
	if (refs_load(&u->refs, u) < 0)
		return -1;
	u->has_refs = true;
	return 0;
}

/* Remembers that REF's ids were advertised: wants may name them. */
static int mark_advertised(struct upload *u, const struct ref *ref)
{
	struct obj *o;

	if (objmap_add(&o, &u->adv, &ref->oid) < 0)
		return -1;
	o->flags |= F_OUR_REF;
	if (ref->has_peeled) {
		if (objmap_add(&o, &u->adv, &ref->peeled) < 0)
			return -1;
		o->flags |= F_OUR_REF;
	}
	return 0;
}

/* ---- want validation -------------------------------------------------- */

/* Marks every commit reachable from the current ref tips with stamp MARK
 * until all of PENDING are reached. Returns the number of PENDING reached
 * (they are marked), or -1. */
static int walk_from_tips(struct upload *u, struct objlist *pending, unsigned mark)
{
	struct request *q = &u->req;
	size_t left = 0, found = 0;

	for (size_t i = 0; i < pending->n; i++)
		left += pending->items[i]->visit != mark;
	q->stack.n = 0;
	for (size_t i = 0; i <= u->refs.n; i++) {
		const struct ref *r = i < u->refs.n ? &u->refs.items[i] : &u->refs.head;
		struct obj *o, *c;

		if (i == u->refs.n && !u->refs.has_head)
			break;
		if (objmap_add(&o, &q->objs, r->has_peeled ? &r->peeled : &r->oid) < 0 ||
		    peel_commit(&c, u, o) < 0)
			return -1;
		if (c && c->visit != mark) {
			found += c->visit == mark - 1;
			c->visit = mark;
			if (objlist_push(&q->stack, c) < 0)
				return -1;
		}
	}
	/* the pending commits were stamped mark - 1: reaching one counts */
	while (q->stack.n && found < left) {
		struct obj *c = q->stack.items[--q->stack.n];

		if (commit_parse(u, c) < 0)
			return -1;
		for (unsigned i = 0; i < c->nparents; i++) {
			struct obj *p = c->parents[i];

			if (p->visit == mark)
				continue;
			found += p->visit == mark - 1;
			p->visit = mark;
			if (objlist_push(&q->stack, p) < 0)
				return -1;
		}
	}
	return (int)found;
}

/* git's check_non_tip: every want must be an advertised id or the tip of a
 * ref now; else a commit reachable from one (allow-reachable-sha1-in-want).
 * Anything else, and anything not in the repository, is refused with git's
 * message. Then fills q->want_commits. */
static int check_wants(struct upload *u)
{
	struct request *q = &u->req;
	struct objlist pending = {0};
	char hex[GIT_OID_HEXSZ + 1];
	int ret = -1;

	for (size_t i = 0; i < q->wants.n; i++) {
		struct obj *w = q->wants.items[i];
		struct obj *a = objmap_get(&u->adv, &w->oid);

		if (a && (a->flags & F_OUR_REF))
			continue;
		if (!git_odb_exists(u->odb, &w->oid) || obj_type(u, w) != GIT_OBJECT_COMMIT) {
			err_set("upload-pack: not our ref %s",
			        git_oid_tostr(hex, sizeof(hex), &w->oid));
			goto out;
		}
		if (objlist_push(&pending, w) < 0)
			goto out;
	}
	if (pending.n) {
		unsigned mark;
		int found;

		/* refs may have moved since they were advertised */
		if (load_refs(u) < 0)
			goto out;
		next_visit(q);
		mark = next_visit(q);
		for (size_t i = 0; i < pending.n; i++)
			pending.items[i]->visit = mark - 1;
		for (size_t i = 0; i < u->refs.n; i++)
			if (mark_advertised(u, &u->refs.items[i]) < 0)
				goto out;
		if ((found = walk_from_tips(u, &pending, mark)) < 0)
			goto out;
		for (size_t i = 0; i < pending.n; i++) {
			struct obj *w = pending.items[i];
			struct obj *a = objmap_get(&u->adv, &w->oid);

			if (w->visit != mark && !(a && (a->flags & F_OUR_REF))) {
				err_set("upload-pack: not our ref %s",
				        git_oid_tostr(hex, sizeof(hex), &w->oid));
				goto out;
			}
		}
	}
	for (size_t i = 0; i < q->wants.n; i++) {
		struct obj *c;

		if (peel_commit(&c, u, q->wants.items[i]) < 0)
			goto out;
		if (c && objlist_push(&q->want_commits, c) < 0)
			goto out;
	}
	ret = 0;
out:
	objlist_release(&pending);
	return ret;
}

/* ---- request lines shared by v0 and v2 -------------------------------- */

/* "want OID". An id not in the repository is refused at once, as git
 * does; the others are judged by check_wants. Only ids of objects that
 * exist enter the object table, so a client cannot choose its keys. */
static int add_want(struct upload *u, const char *hex, size_t len)
{
	struct request *q = &u->req;
	char s[SHOWN_MAX + 1];
	git_oid oid;
	struct obj *o;

	if (!protocol_parse_oid(&oid, hex, len))
		return err_set("upload-pack: protocol error, expected to get object ID, not '%s'",
		               shown(s, sizeof(s), hex, len));
	if (!objmap_get(&q->objs, &oid) && !git_odb_exists(u->odb, &oid))
		return err_set("upload-pack: not our ref %s", git_oid_tostr(s, sizeof(s), &oid));
	if (objmap_add(&o, &q->objs, &oid) < 0)
		return -1;
	if (o->flags & F_WANTED)
		return 0;
	if (q->wants.n == UPLOAD_WANTS_MAX)
		return err_set("upload-pack: more than %d wants", UPLOAD_WANTS_MAX);
	o->flags |= F_WANTED;
	return objlist_push(&q->wants, o);
}

/* "shallow OID": a commit the client has without its parents. Unknown ids
 * are ignored, as git does. */
static int add_client_shallow(struct upload *u, const char *hex, size_t len)
{
	struct request *q = &u->req;
	char s[SHOWN_MAX + 1];
	git_oid oid;
	struct obj *o;

	if (!protocol_parse_oid(&oid, hex, len))
		return err_set("upload-pack: invalid shallow line: '%s'",
		               shown(s, sizeof(s), hex, len));
	if (!objmap_get(&q->objs, &oid) && !git_odb_exists(u->odb, &oid))
		return 0;
	if (objmap_add(&o, &q->objs, &oid) < 0)
		return -1;
	if (obj_type(u, o) != GIT_OBJECT_COMMIT)
		return err_set("upload-pack: invalid shallow object %.*s", (int)len, hex);
	if (o->flags & F_CLIENT_SHALLOW)
		return 0;
	if (q->shallows.n == UPLOAD_SHALLOWS_MAX)
		return err_set("upload-pack: more than %d shallow lines", UPLOAD_SHALLOWS_MAX);
	o->flags |= F_CLIENT_SHALLOW;
	return objlist_push(&q->shallows, o);
}

static int set_depth(struct upload *u, const char *arg, size_t len)
{
	unsigned long long v;
	char s[SHOWN_MAX + 1];

	if (!parse_number(&v, arg, len, INFINITE_DEPTH) || !v)
		return err_set("upload-pack: invalid deepen: '%s'", shown(s, sizeof(s), arg, len));
	u->req.depth = (int)v;
	return 0;
}

static int set_deepen_since(struct upload *u, const char *arg, size_t len)
{
	unsigned long long v;
	char s[SHOWN_MAX + 1];

	if (!parse_number(&v, arg, len, INT64_MAX) || !v)
		return err_set("upload-pack: invalid deepen-since: '%s'",
		               shown(s, sizeof(s), arg, len));
	u->req.deepen_since = (int64_t)v;
	return 0;
}

/* "deepen-not REV": a ref name, expanded as git does (refs/NAME,
 * refs/tags/NAME, refs/heads/NAME, ...). */
static int add_deepen_not(struct upload *u, const char *arg, size_t len)
{
	struct request *q = &u->req;
	git_reference *ref = NULL;
	git_object *commit = NULL;
	char s[SHOWN_MAX + 1];
	struct obj *o;
	int ret = -1;

	if (q->deepen_not.n == UPLOAD_DEEPEN_NOT_MAX)
		return err_set("upload-pack: more than %d deepen-not lines", UPLOAD_DEEPEN_NOT_MAX);
	if (memchr(arg, '\0', len) || git_reference_dwim(&ref, u->repo, arg) < 0 ||
	    git_reference_peel(&commit, ref, GIT_OBJECT_COMMIT) < 0) {
		err_set("upload-pack: ambiguous deepen-not: %s", shown(s, sizeof(s), arg, len));
		goto out;
	}
	if (objmap_add(&o, &q->objs, git_object_id(commit)) < 0 ||
	    objlist_push(&q->deepen_not, o) < 0)
		goto out;
	ret = 0;
out:
	git_object_free(commit);
	git_reference_free(ref);
	return ret;
}

/* git's got_oid: whether OID is in the repository (then it is common: it
 * becomes a have and its parents THEY_HAVE). Returns 1 common, 0 not, -1. */
static int got_have(struct upload *u, const git_oid *oid)
{
	struct request *q = &u->req;
	struct obj *o = objmap_get(&q->objs, oid);
	int type;

	if ((!o || o->type <= 0) && !git_odb_exists(u->odb, oid))
		return 0;
	if (!o && objmap_add(&o, &q->objs, oid) < 0)
		return -1;
	if ((type = obj_type(u, o)) < 0)
		return -1;
	if (type == GIT_OBJECT_COMMIT) {
		if (o->flags & F_THEY_HAVE)
			return 1;
		if (commit_parse(u, o) < 0)
			return -1;
		if (!q->has_oldest_have || o->time < q->oldest_have)
			q->oldest_have = o->time;
		q->has_oldest_have = true;
		for (unsigned i = 0; i < o->nparents; i++)
			o->parents[i]->flags |= F_THEY_HAVE;
		q->have_gen++;
	}
	if (!(o->flags & F_THEY_HAVE)) {
		if (q->haves.n == UPLOAD_HAVES_MAX)
			return err_set("upload-pack: more than %d common haves", UPLOAD_HAVES_MAX);
		o->flags |= F_THEY_HAVE;
		q->have_gen++;
		if (objlist_push(&q->haves, o) < 0)
			return -1;
	}
	return 1;
}

/* Whether commit START reaches a THEY_HAVE commit, not walking past commits
 * older than the oldest have (git's can_all_from_reach_with_flag cut-off). */
static int reaches_have(struct upload *u, struct obj *start)
{
	struct request *q = &u->req;
	unsigned mark = next_visit(q);

	if (start->flags & (F_THEY_HAVE | F_COMMON_KNOWN))
		return 1;
	q->stack.n = 0;
	start->visit = mark;
	if (objlist_push(&q->stack, start) < 0)
		return -1;
	while (q->stack.n) {
		struct obj *c = q->stack.items[--q->stack.n];

		if (commit_parse(u, c) < 0)
			return -1;
		for (unsigned i = 0; i < c->nparents; i++) {
			struct obj *p = c->parents[i];

			if (p->visit == mark)
				continue;
			p->visit = mark;
			if (p->flags & (F_THEY_HAVE | F_COMMON_KNOWN))
				return 1;
			if (commit_parse(u, p) < 0)
				return -1;
			if (p->time < q->oldest_have)
				continue;
			if (objlist_push(&q->stack, p) < 0)
				return -1;
		}
	}
	return 0;
}

/* git's ok_to_give_up: the server has found enough common history to send
 * a good pack when every wanted commit reaches a have. Returns 1, 0 or -1. */
static int ok_to_give_up(struct upload *u)
{
	struct request *q = &u->req;

	if (!q->haves.n)
		return 0;
	if (q->has_give_up_answer && q->give_up_gen == q->have_gen)
		return 0;
	for (size_t i = 0; i < q->want_commits.n; i++) {
		struct obj *w = q->want_commits.items[i];
		int r;

		if (w->flags & F_COMMON_KNOWN)
			continue;
		if ((r = reaches_have(u, w)) < 0)
			return -1;
		if (!r) {
			q->has_give_up_answer = true;
			q->give_up_gen = q->have_gen;
			return 0;
		}
		w->flags |= F_COMMON_KNOWN;
	}
	return 1;
}

/* ---- shallow ------------------------------------------------------------ */

/* git's get_shallow_commits: walks from HEADS breadth-first, so each commit
 * is reached at its least depth; commits at DEPTH - 1 are the new boundary
 * (q->border), those above it are NOT_SHALLOW. */
static int depth_walk(struct upload *u, struct objlist *heads, int depth)
{
	struct request *q = &u->req;
	unsigned mark = next_visit(q);

	q->stack.n = 0;
	for (size_t i = 0; i < heads->n; i++) {
		struct obj *h = heads->items[i];

		if (h->visit == mark)
			continue;
		h->visit = mark;
		h->depth = 0;
		if (objlist_push(&q->stack, h) < 0)
			return -1;
	}
	for (size_t i = 0; i < q->stack.n; i++) {
		struct obj *c = q->stack.items[i];

		if (c->depth + 1 >= depth) {
			if (objlist_push(&q->border, c) < 0)
				return -1;
			continue;
		}
		c->flags |= F_NOT_SHALLOW;
		if (commit_parse(u, c) < 0)
			return -1;
		for (unsigned j = 0; j < c->nparents; j++) {
			struct obj *p = c->parents[j];

			if (p->visit == mark)
				continue;
			p->visit = mark;
			p->depth = c->depth + 1;
			if (objlist_push(&q->stack, p) < 0)
				return -1;
		}
	}
	return 0;
}

/* git's get_shallow_commits_by_rev_list for deepen-since and deepen-not:
 * the commits reachable from the wants, not reachable from a deepen-not
 * commit and not older than deepen-since, are INCLUDED; those with a parent
 * left out are the boundary. */
static int revlist_walk(struct upload *u)
{
	struct request *q = &u->req;
	struct objlist included = {0};
	unsigned mark = next_visit(q);
	int ret = -1;

	q->stack.n = 0;
	for (size_t i = 0; i < q->deepen_not.n; i++)
		if (objlist_push(&q->stack, q->deepen_not.items[i]) < 0)
			goto out;
	while (q->stack.n) {
		struct obj *c = q->stack.items[--q->stack.n];

		if (c->flags & F_EXCLUDED)
			continue;
		c->flags |= F_EXCLUDED;
		if (commit_parse(u, c) < 0)
			goto out;
		for (unsigned i = 0; i < c->nparents; i++)
			if (objlist_push(&q->stack, c->parents[i]) < 0)
				goto out;
	}
	for (size_t i = 0; i < q->want_commits.n; i++)
		if (objlist_push(&q->stack, q->want_commits.items[i]) < 0)
			goto out;
	while (q->stack.n) {
		struct obj *c = q->stack.items[--q->stack.n];

		if (c->visit == mark)
			continue;
		c->visit = mark;
		if (c->flags & F_EXCLUDED)
			continue;
		if (commit_parse(u, c) < 0)
			goto out;
		if (q->deepen_since && c->time < q->deepen_since)
			continue;
		c->flags |= F_INCLUDED | F_NOT_SHALLOW;
		if (objlist_push(&included, c) < 0)
			goto out;
		for (unsigned i = 0; i < c->nparents; i++)
			if (objlist_push(&q->stack, c->parents[i]) < 0)
				goto out;
	}
	if (!included.n) {
		err_set("upload-pack: no commits selected for shallow requests");
		goto out;
	}
	for (size_t i = 0; i < included.n; i++) {
		struct obj *c = included.items[i];

		for (unsigned j = 0; j < c->nparents; j++) {
			if (c->parents[j]->flags & F_INCLUDED)
				continue;
			c->flags &= ~(unsigned)F_NOT_SHALLOW;
			if (objlist_push(&q->border, c) < 0)
				goto out;
			break;
		}
	}
	ret = 0;
out:
	objlist_release(&included);
	return ret;
}

/* Computes the shallow boundary of this fetch and writes its "shallow" and
 * "unshallow" lines: v0's shallow-update, v2's shallow-info section
 * (gitprotocol-pack.txt and gitprotocol-v2.txt; git's send_shallow_list,
 * deepen and send_unshallow). The client's shallow commits stay where the
 * walk stops; an unshallowed one's parents become wants. */
static int shallow_update(struct upload *u)
{
	struct request *q = &u->req;
	char hex[GIT_OID_HEXSZ + 1];

	if (q->depth && (q->deepen_since || q->deepen_not.n))
		return err_set("upload-pack: deepen and deepen-since (or deepen-not) cannot be "
		               "used together");
	if (q->depth == INFINITE_DEPTH) {
		for (size_t i = 0; i < q->shallows.n; i++)
			q->shallows.items[i]->flags |= F_NOT_SHALLOW;
	} else if (q->depth && q->is_deepen_relative) {
		if (depth_walk(u, &q->shallows, q->depth + 1) < 0)
			return -1;
	} else if (q->depth) {
		if (depth_walk(u, &q->want_commits, q->depth) < 0)
			return -1;
	} else if (q->deepen_since || q->deepen_not.n) {
		if (revlist_walk(u) < 0)
			return -1;
	}
	for (size_t i = 0; i < q->border.n; i++) {
		struct obj *c = q->border.items[i];

		if (c->flags & (F_CLIENT_SHALLOW | F_NOT_SHALLOW | F_SHALLOW))
			continue;
		c->flags |= F_SHALLOW;
		if (pkt_writef(u->io, "shallow %s\n", git_oid_tostr(hex, sizeof(hex), &c->oid)) < 0)
			return -1;
	}
	for (size_t i = 0; i < q->shallows.n; i++) {
		struct obj *c = q->shallows.items[i];

		if (!(c->flags & F_NOT_SHALLOW))
			continue;
		if (pkt_writef(u->io, "unshallow %s\n", git_oid_tostr(hex, sizeof(hex), &c->oid)) <
		        0 ||
		    commit_parse(u, c) < 0)
			return -1;
		for (unsigned j = 0; j < c->nparents; j++)
			if (objlist_push(&q->extra_wants, c->parents[j]) < 0)
				return -1;
	}
	return 0;
}

static bool is_shallow_request(const struct request *q)
{
	return q->shallows.n || q->depth || q->deepen_since || q->deepen_not.n;
}

/* The walk stops at the client's shallow commits and the new boundary:
 * git registers both as grafts without parents. */
static bool is_boundary(const struct obj *c)
{
	return c->flags & (F_CLIENT_SHALLOW | F_SHALLOW);
}

/* ---- packfile ----------------------------------------------------------- */

/* The pack sent is made in two ways (gitformat-pack.txt). Entries of the
 * repository's own packs are copied as they are, as git's pack-objects
 * reuses them: whole objects, and deltas whose base is sent too (why:
 * packfile.h). The rest (loose objects, deltas against objects the client
 * does not get) go through git_packbuilder, which compresses and deltifies
 * them among themselves; its entries are spliced in after the copied ones,
 * under one header and one SHA-1 trailer. A copied entry is never inflated,
 * whatever its size; an object the packbuilder or a walk would inflate
 * whole is first checked against opts->max_object_bytes. */

enum reuse { REUSE_NONE, REUSE_WHOLE, REUSE_OFS_DELTA, REUSE_REF_DELTA };

#define PACK_HEADER_SIZE PACKFILE_HEADER_SIZE
#define PACK_TRAILER_SIZE PACKFILE_ID_SIZE

/* Packs of one repository that are read directly; objects of any others
 * are read through libgit2. */
#define PACKS_MAX 256

/* Objects counted between two looks at the clock for progress. */
#define COUNT_TICK 1024

/* Pack entries sent whole leave the process this many bytes at a time. */
#define REUSE_CHUNK (1u << 20)

/* One pack of the repository, mapped. */
struct pack {
	struct packfile file;
	bool is_broken;             /* the index disagrees with itself: read through libgit2 */
	uint64_t dropped;           /* pages below this offset were dropped once copied */
	char *path;                 /* its .pack file */
	struct packclosure closure; /* its closure marker, when has_closure */
	bool has_closure;           /* a marker that matches the pack was read */
};

struct packs {
	struct pack items[PACKS_MAX];
	size_t n;
};

static void put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* Reads the closure marker of P (pack-X.closure beside PACK_PATH) when it
 * has one that matches it; any other marker is ignored: pack reuse is only
 * a shortcut. */
static void pack_load_closure(struct pack *p, const char *pack_path)
{
	char path[PATH_MAX];
	size_t n = strlen(pack_path);

	if ((size_t)snprintf(path, sizeof(path), "%.*s%s", (int)(n - 5), pack_path,
	                     PACKCLOSURE_SUFFIX) >= sizeof(path) ||
	    packclosure_load(&p->closure, path) < 0)
		return;
	if (packclosure_check(&p->closure, &p->file) < 0) {
		packclosure_release(&p->closure);
		return;
	}
	/* the check looked every tip up; later lookups are few */
	packfile_drop_idx_pages(&p->file);
	p->has_closure = true;
}

/* Maps every objects/pack/pack-*.idx (version 2) with its .pack, and with
 * WANTS_CLOSURES reads their closure markers. A pack that cannot be read is
 * left out: its objects are read through libgit2. */
static int packs_open(struct packs *out, struct upload *u, bool wants_closures)
{
	git_buf objects = {0};
	char dir_path[PATH_MAX], idx_path[PATH_MAX], pack_path[PATH_MAX];
	struct dirent *de;
	DIR *dir = NULL;
	size_t n;

	out->n = 0;
	if (git_repository_item_path(&objects, u->repo, GIT_REPOSITORY_ITEM_OBJECTS) < 0)
		goto out;
	n = strlen(objects.ptr);
	if ((size_t)snprintf(dir_path, sizeof(dir_path), "%s%spack", objects.ptr,
	                     n && objects.ptr[n - 1] == '/' ? "" : "/") >= sizeof(dir_path) ||
	    !(dir = opendir(dir_path)))
		goto out;
	while (out->n < PACKS_MAX && (de = readdir(dir))) {
		struct pack *p = &out->items[out->n];
		size_t len = strlen(de->d_name);

		if (len < 5 || strcmp(de->d_name + len - 4, ".idx"))
			continue;
		memset(p, 0, sizeof(*p));
		if ((size_t)snprintf(idx_path, sizeof(idx_path), "%s/%s", dir_path, de->d_name) >=
		        sizeof(idx_path) ||
		    (size_t)snprintf(pack_path, sizeof(pack_path), "%s/%.*s.pack", dir_path,
		                     (int)(len - 4), de->d_name) >= sizeof(pack_path) ||
		    packfile_open(&p->file, idx_path, pack_path) < 0)
			continue;
		if (!(p->path = strdup(pack_path))) {
			packfile_close(&p->file);
			continue;
		}
		if (wants_closures)
			pack_load_closure(p, pack_path);
		out->n++;
	}
out:
	if (dir)
		closedir(dir);
	git_buf_dispose(&objects);
	return 0;
}

static void packs_close(struct packs *packs)
{
	for (size_t i = 0; i < packs->n; i++) {
		packfile_close(&packs->items[i].file);
		packclosure_release(&packs->items[i].closure);
		free(packs->items[i].path);
	}
	packs->n = 0;
}

/* Sorts P's entry offsets once, to know where each entry ends; a pack whose
 * offsets do not sort into distinct entries is read through libgit2. */
static void pack_load_order(struct pack *p)
{
	if (p->file.offsets || p->is_broken)
		return;
	if (packfile_load_order(&p->file) < 0)
		p->is_broken = true;
}

/* Whether the object OID is in the pack sent whole (pack reuse). A tip of
 * its marker is (packclosure_check said so): no look at the .idx, whose
 * pages would stay resident. */
static bool is_in_reused(const struct upload *u, const git_oid *oid)
{
	const struct pack *p = u->req.reused;
	const struct obj *o;

	if (!p)
		return false;
	if ((o = objmap_get(&u->req.objs, oid)) && (o->flags & F_TIP))
		return true;
	return packfile_idx_find(&p->file.idx, oid->id) >= 0;
}

/* Pack reuse: whether the walk stops at O, an object of the pack sent
 * whole; a tip of its marker met there counts as reached. */
static bool meets_reused(struct upload *u, struct obj *o)
{
	if (!is_in_reused(u, &o->oid))
		return false;
	o->flags |= F_REACHED;
	return true;
}

/* The same for an id a tree names, without adding it to the table unless
 * it is there already (the tips are). */
static bool meets_reused_id(struct upload *u, const git_oid *oid)
{
	struct obj *o;

	if (!is_in_reused(u, oid))
		return false;
	if ((o = objmap_get(&u->req.objs, oid)))
		o->flags |= F_REACHED;
	return true;
}

/* A delta base in the pack sent whole: its entry goes out at the offset it
 * has there, since both packs start with a 12-byte header. Returns NULL
 * when there is no such base. */
static struct obj *reused_base(struct upload *u, const git_oid *id)
{
	struct pack *p = u->req.reused;
	struct obj *b;
	uint64_t offset;
	int64_t pos;

	if (!p || (pos = packfile_idx_find(&p->file.idx, id->id)) < 0 ||
	    packfile_idx_offset(&offset, &p->file.idx, (uint32_t)pos, p->file.pack_size) < 0 ||
	    objmap_add(&b, &u->req.objs, id) < 0)
		return NULL;
	b->out_offset = offset;
	b->flags |= F_WRITTEN;
	return b;
}

/* The same for the entry at BASE_OFFSET in pack P. */
static struct obj *reused_base_at(struct upload *u, const struct pack *p, uint64_t base_offset)
{
	int64_t pos = u->req.reused ? packfile_pos_at(&p->file, base_offset) : -1;
	git_oid id;

	if (pos < 0)
		return NULL;
	git_oid_fromraw(&id, packfile_idx_id(&p->file.idx, (uint32_t)pos));
	return reused_base(u, &id);
}

/* Parses the entry of O in its pack: type and size, then an OFS_DELTA's
 * base offset (*BASE_OFFSET) or a REF_DELTA's base id (*BASE_ID). Returns
 * the entry type, or -1 when the entry does not parse. */
static int entry_parse(struct obj *o, uint64_t *base_offset, const unsigned char **base_id)
{
	struct packfile_entry e;
	uint64_t avail = o->end - o->offset;

	if (packfile_entry_parse(&e, o->pack->file.pack_bytes + o->offset, (size_t)avail,
	                         o->offset) < 0 ||
	    e.data_offset >= avail)
		return -1;
	o->hdr_len = (unsigned char)e.header_len;
	o->data_offset = o->offset + e.data_offset;
	*base_offset = e.base_offset;
	*base_id = e.base_id;
	return e.type;
}

/* Called in pack order once O's entry has been read: drops the pages of
 * its pack behind it from the resident set, DROP_BYTES at a time, so that
 * a pass over a big pack does not keep all of it resident. */
static void drop_behind(struct obj *o)
{
	if (o->end - o->pack->dropped >= DROP_BYTES) {
		packfile_drop_pages(&o->pack->file, o->pack->dropped, o->end);
		o->pack->dropped = o->end;
	}
}

static int compare_by_entry(const void *a, const void *b)
{
	const struct obj *x = *(struct obj *const *)a, *y = *(struct obj *const *)b;

	if (x->pack != y->pack)
		return x->pack < y->pack ? -1 : 1;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* The object whose entry is at OFFSET in pack P among ORDER[0, N), or NULL. */
static struct obj *find_entry(struct obj **order, size_t n, const struct pack *p, uint64_t offset)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct obj *m = order[mid];

		if (m->pack < p || (m->pack == p && m->offset < offset))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && order[lo]->pack == p && order[lo]->offset == offset ? order[lo] : NULL;
}

/* Decides how each object is sent: its pack entry copied (ORDER, in pack
 * and offset order, so that a delta's base in the same pack comes first),
 * or through the packbuilder (reuse REUSE_NONE). A delta is copied only
 * when its base is sent and comes from the same pack, whose deltas cannot
 * form a cycle, or is in the pack sent whole before them (pack reuse). */
static int plan_reuse(struct upload *u, struct packs *packs, struct objlist *objects,
                      struct objlist *order)
{
	struct request *q = &u->req;

	for (size_t i = 0; i < objects->n; i++) {
		struct obj *o = objects->items[i];

		o->reuse = REUSE_NONE;
		o->pack = NULL;
		for (size_t k = 0; k < packs->n; k++) {
			struct pack *p = &packs->items[k];
			int64_t pos =
			    p->is_broken ? -1 : packfile_idx_find(&p->file.idx, o->oid.id);

			if (pos < 0 || packfile_idx_offset(&o->offset, &p->file.idx, (uint32_t)pos,
			                                   p->file.pack_size) < 0)
				continue;
			pack_load_order(p);
			if (p->is_broken)
				continue;
			o->pack = p;
			o->end = packfile_entry_end(&p->file, o->offset);
			if (objlist_push(order, o) < 0)
				return -1;
			break;
		}
	}
	if (order->n)
		qsort(order->items, order->n, sizeof(*order->items), compare_by_entry);
	for (size_t i = 0; i < order->n; i++) {
		struct obj *o = order->items[i], *base = NULL;
		const unsigned char *base_id = NULL;
		uint64_t base_offset = 0;
		git_oid id;
		int type = entry_parse(o, &base_offset, &base_id);

		if (type >= GIT_OBJECT_COMMIT && type <= GIT_OBJECT_TAG) {
			o->reuse = REUSE_WHOLE;
		} else if (type == PACKFILE_OFS_DELTA) {
			base = find_entry(order->items, i, o->pack, base_offset);
			/* a base sent through the packbuilder comes later: name it */
			if (base)
				o->reuse =
				    base->reuse == REUSE_NONE ? REUSE_REF_DELTA : REUSE_OFS_DELTA;
			else if ((base = reused_base_at(u, o->pack, base_offset)))
				o->reuse = REUSE_OFS_DELTA;
		} else if (type == PACKFILE_REF_DELTA) {
			git_oid_fromraw(&id, base_id);
			base = objmap_get(&q->objs, &id);
			if (base && (base->flags & F_ADDED) && base->pack == o->pack)
				o->reuse = REUSE_REF_DELTA;
			else if ((base = reused_base(u, &id)))
				o->reuse = REUSE_OFS_DELTA;
		}
		o->base = o->reuse == REUSE_OFS_DELTA || o->reuse == REUSE_REF_DELTA ? base : NULL;
		drop_behind(o);
	}
	for (size_t k = 0; k < packs->n; k++)
		packs->items[k].dropped = 0;
	return 0;
}

/* The pack on its way out: hashed, counted, staged into side-band sized
 * chunks, with progress. The progress callback may run on libgit2's delta
 * threads (one at a time, under its lock), so a failure there is kept
 * here, not in that thread's err_msg(). */
struct pack_out {
	struct upload *u;
	EVP_MD_CTX *sha1;
	char *buf;
	size_t len, cap;
	unsigned long long bytes; /* bytes of pack so far */
	size_t nobjects;          /* objects counted */
	long long last_progress_ms;
	long long last_output_ms;
	bool is_counting_done;
	bool is_compressing;
	bool is_compress_done;
	bool has_failed;
	bool is_unhashed; /* the trailer is known already: bytes are not hashed */
	char error[ERR_MAX];
};

static int pack_fail(struct pack_out *po)
{
	snprintf(po->error, sizeof(po->error), "%s", err_msg());
	po->has_failed = true;
	return -1;
}

/* Sets err_msg() after a libgit2 call failed while packing: the callback's
 * own failure, else libgit2's. */
static int pack_error(struct upload *u, const char *what)
{
	if (u->po && u->po->has_failed)
		return err_set("%s", u->po->error);
	return err_set("upload-pack: %s: %s", what, repo_git_error());
}

/* An empty band-1 packet ("0005\1") after KEEPALIVE_MS of silence. */
static int keepalive(struct pack_out *po, long long now)
{
	struct pkt_io *io = po->u->io;

	if (!io->sideband || now - po->last_output_ms < KEEPALIVE_MS)
		return 0;
	po->last_output_ms = now;
	if (pkt_write(io, "\1", 1) < 0 || pkt_send(io) < 0)
		return pack_fail(po);
	return 0;
}

static int pack_progress(int stage, uint32_t current, uint32_t total, void *payload)
{
	struct pack_out *po = payload;
	struct pkt_io *io = po->u->io;
	long long now = clock_now_ms();
	bool is_done = current >= total;
	int r;

	if (po->has_failed)
		return -1;
	if (!io->sideband)
		return 0;
	if (po->u->req.is_no_progress || stage == GIT_PACKBUILDER_ADDING_OBJECTS)
		return keepalive(po, now);
	if (po->is_compress_done ||
	    (po->is_compressing && !is_done && now - po->last_progress_ms < PROGRESS_INTERVAL_MS))
		return 0;
	po->is_compressing = true;
	po->is_compress_done = is_done;
	r = pkt_progressf(io, "Compressing objects: %3u%% (%" PRIu32 "/%" PRIu32 ")%s",
	                  total ? (unsigned)((uint64_t)current * 100 / total) : 100u, current,
	                  total, is_done ? ", done.\n" : "\r");
	po->last_progress_ms = po->last_output_ms = now;
	return r < 0 ? pack_fail(po) : 0;
}

/* Counting progress, looked at every COUNT_TICK objects. */
static int count_progress(struct pack_out *po)
{
	struct pkt_io *io = po->u->io;
	long long now;

	if (++po->nobjects % COUNT_TICK || !io->sideband)
		return 0;
	now = clock_now_ms();
	if (po->u->req.is_no_progress)
		return keepalive(po, now) < 0 ? err_set("%s", po->error) : 0;
	if (now - po->last_progress_ms < PROGRESS_INTERVAL_MS)
		return 0;
	po->last_progress_ms = po->last_output_ms = now;
	return pkt_progressf(io, "Counting objects: %zu\r", po->nobjects);
}

static int pack_flush_chunk(struct pack_out *po)
{
	int r;

	if (!po->len)
		return 0;
	r = pkt_sideband(po->u->io, SIDEBAND_DATA, po->buf, po->len);
	po->len = 0;
	po->last_output_ms = clock_now_ms();
	return r;
}

/* Appends pack bytes: hashed for the trailer unless IS_TRAILER. */
static int pack_emit(struct pack_out *po, const void *data, size_t size, bool is_trailer)
{
	const char *p = data;

	if (po->has_failed)
		return -1;
	if (!is_trailer && !po->is_unhashed && !EVP_DigestUpdate(po->sha1, data, size)) {
		err_set("upload-pack: SHA-1 failed");
		return pack_fail(po);
	}
	po->bytes += size;
	while (size) {
		size_t n = po->cap - po->len < size ? po->cap - po->len : size;

		memcpy(po->buf + po->len, p, n);
		po->len += n;
		p += n;
		size -= n;
		if (po->len == po->cap && pack_flush_chunk(po) < 0)
			return pack_fail(po);
	}
	return 0;
}

/* Copies O's entry. A delta names its base by offset in the pack sent when
 * the client reads OFS_DELTA and the base went out before it, else by id
 * (the entry's type bits become REF_DELTA; its size stays). */
static int write_reused(struct pack_out *po, struct obj *o, bool wants_ofs_delta)
{
	const unsigned char *e = o->pack->file.pack_bytes + o->offset;
	unsigned char hdr[16 + GIT_OID_RAWSZ];
	size_t n = o->hdr_len;

	o->out_offset = po->bytes;
	o->flags |= F_WRITTEN;
	if (o->reuse == REUSE_WHOLE)
		return pack_emit(po, e, (size_t)(o->end - o->offset), false);
	memcpy(hdr, e, n);
	if (o->reuse == REUSE_OFS_DELTA && wants_ofs_delta && (o->base->flags & F_WRITTEN)) {
		unsigned char ofs[16];
		uint64_t v = o->out_offset - o->base->out_offset;
		size_t at = sizeof(ofs) - 1;

		hdr[0] = (unsigned char)((hdr[0] & 0x8f) | PACKFILE_OFS_DELTA << 4);
		ofs[at] = v & 127;
		while (v >>= 7)
			ofs[--at] = (unsigned char)(128 | (--v & 127));
		memcpy(hdr + n, ofs + at, sizeof(ofs) - at);
		n += sizeof(ofs) - at;
	} else {
		hdr[0] = (unsigned char)((hdr[0] & 0x8f) | PACKFILE_REF_DELTA << 4);
		memcpy(hdr + n, o->base->oid.id, GIT_OID_RAWSZ);
		n += GIT_OID_RAWSZ;
	}
	if (pack_emit(po, hdr, n, false) < 0)
		return -1;
	return pack_emit(po, o->pack->file.pack_bytes + o->data_offset,
	                 (size_t)(o->end - o->data_offset), false);
}

/* The packbuilder's own pack, minus its 12-byte header and 20-byte
 * trailer: its entries, spliced after the copied ones. The last 20 bytes
 * seen are held back until more come. */
struct splice {
	struct pack_out *po;
	size_t skipped;
	unsigned char tail[PACK_TRAILER_SIZE];
	size_t ntail;
};

static int splice_write(void *data, size_t size, void *payload)
{
	struct splice *sp = payload;
	const unsigned char *p = data;
	size_t out;

	if (sp->skipped < PACK_HEADER_SIZE) {
		size_t n =
		    PACK_HEADER_SIZE - sp->skipped < size ? PACK_HEADER_SIZE - sp->skipped : size;

		sp->skipped += n;
		p += n;
		size -= n;
	}
	if (sp->ntail + size <= sizeof(sp->tail)) {
		memcpy(sp->tail + sp->ntail, p, size);
		sp->ntail += size;
		return 0;
	}
	out = sp->ntail + size - sizeof(sp->tail);
	if (out < sp->ntail) {
		if (pack_emit(sp->po, sp->tail, out, false) < 0)
			return -1;
		memmove(sp->tail, sp->tail + out, sp->ntail - out);
		sp->ntail -= out;
		memcpy(sp->tail + sp->ntail, p, size);
		sp->ntail += size;
		return 0;
	}
	if (pack_emit(sp->po, sp->tail, sp->ntail, false) < 0 ||
	    pack_emit(sp->po, p, out - sp->ntail, false) < 0)
		return -1;
	p += out - sp->ntail;
	size -= out - sp->ntail;
	memcpy(sp->tail, p, size);
	sp->ntail = size;
	return 0;
}

/* Puts O into the pack (once), with NAME for a tree or blob. */
static int add_object(struct upload *u, struct objlist *objects, struct obj *o, const char *name)
{
	struct request *q = &u->req;

	if (o->flags & F_ADDED)
		return 0;
	o->flags |= F_ADDED;
	if (name && *name) {
		size_t n = strlen(name) + 1;

		if (!q->names || NAME_CHUNK - q->names->used < n) {
			struct name_chunk *c;

			if (n > NAME_CHUNK || q->nname_chunks == NAME_CHUNKS_MAX)
				return err_set("upload-pack: too many names of files");
			if (!(c = malloc(sizeof(*c))))
				return err_set("out of memory");
			c->next = q->names;
			c->used = 0;
			q->names = c;
			q->nname_chunks++;
		}
		o->name = memcpy(q->names->buf + q->names->used, name, n);
		q->names->used += n;
	}
	if (objlist_push(objects, o) < 0)
		return -1;
	return count_progress(u->po);
}

/* Adds the tag objects of a chain starting at W; *END is the object the
 * chain ends at (W itself when it is no tag), or NULL when the chain
 * reaches the pack sent whole (pack reuse), which holds the rest. */
static int add_tag_chain(struct upload *u, struct objlist *objects, struct obj *w, struct obj **end)
{
	struct obj *o = w;

	for (int i = 0;; i++) {
		git_tag *tag = NULL;
		int type, r;

		if (meets_reused(u, o)) {
			*end = NULL;
			return 0;
		}
		if ((type = obj_type(u, o)) < 0)
			return -1;
		if (type != GIT_OBJECT_TAG) {
			*end = o;
			return 0;
		}
		if (i == TAG_CHAIN_MAX)
			return err_set("upload-pack: a chain of more than %d tags", TAG_CHAIN_MAX);
		if (add_object(u, objects, o, NULL) < 0)
			return -1;
		if (git_tag_lookup(&tag, u->repo, &o->oid) < 0)
			return oid_fail("tag", &o->oid);
		r = objmap_add(&o, &u->req.objs, git_tag_target_id(tag));
		git_tag_free(tag);
		if (r < 0)
			return -1;
	}
}

/* A tree read raw from the object database, entry by entry: "MODE SP NAME
 * NUL ID" (git's tree object format); cheaper than git_tree_lookup, which
 * allocates every entry and keeps the tree in libgit2's cache. */
struct tree_reader {
	git_odb_object *obj;
	const unsigned char *p, *end;
};

static int tree_open(struct tree_reader *t, struct upload *u, const git_oid *id)
{
	memset(t, 0, sizeof(*t));
	if (git_odb_read(&t->obj, u->odb, id) < 0)
		return oid_fail("tree", id);
	if (git_odb_object_type(t->obj) != GIT_OBJECT_TREE) {
		git_odb_object_free(t->obj);
		t->obj = NULL;
		return oid_fail("tree", id);
	}
	t->p = git_odb_object_data(t->obj);
	t->end = t->p + git_odb_object_size(t->obj);
	return 0;
}

/* The next entry: *TYPE (GIT_OBJECT_TREE, _BLOB, or _COMMIT for a
 * submodule), *NAME (NUL-terminated, valid until tree_close) and *ID.
 * Returns 1, 0 at the end, or -1 when the tree is malformed. */
static int tree_next(struct tree_reader *t, const git_oid *tree_id, git_object_t *type,
                     const char **name, git_oid *id)
{
	unsigned mode = 0;
	const unsigned char *nul;

	if (t->p == t->end)
		return 0;
	while (t->p < t->end && *t->p >= '0' && *t->p <= '7' && mode < 01000000)
		mode = mode * 8 + (unsigned)(*t->p++ - '0');
	if (t->p == t->end || *t->p != ' ' ||
	    !(nul = memchr(t->p, '\0', (size_t)(t->end - t->p))) || nul == t->p + 1 ||
	    (size_t)(t->end - nul) < 1 + GIT_OID_RAWSZ)
		return oid_fail("malformed tree", tree_id);
	*name = (const char *)t->p + 1;
	git_oid_fromraw(id, nul + 1);
	t->p = nul + 1 + GIT_OID_RAWSZ;
	if ((mode & 0170000) == 0040000)
		*type = GIT_OBJECT_TREE;
	else if ((mode & 0170000) == 0160000)
		*type = GIT_OBJECT_COMMIT;
	else
		*type = GIT_OBJECT_BLOB;
	return 1;
}

static void tree_close(struct tree_reader *t)
{
	git_odb_object_free(t->obj);
	t->obj = NULL;
}

/* Marks the trees and blobs of tree ID as ones the client has. */
static int tree_mark_uninteresting(struct upload *u, const git_oid *id, int level)
{
	struct tree_reader t;
	git_object_t type;
	const char *name;
	git_oid entry;
	struct obj *o;
	int r;

	if (objmap_add(&o, &u->req.objs, id) < 0)
		return -1;
	if (o->flags & F_UNINTERESTING)
		return 0;
	o->flags |= F_UNINTERESTING;
	if (level > TREE_DEPTH_MAX)
		return err_set("upload-pack: trees nested deeper than %d", TREE_DEPTH_MAX);
	if (tree_open(&t, u, id) < 0)
		return -1;
	while ((r = tree_next(&t, id, &type, &name, &entry)) > 0) {
		if (type == GIT_OBJECT_TREE) {
			if ((r = tree_mark_uninteresting(u, &entry, level + 1)) < 0)
				break;
		} else if (type == GIT_OBJECT_BLOB) {
			if ((r = objmap_add(&o, &u->req.objs, &entry)) < 0)
				break;
			o->flags |= F_UNINTERESTING;
		}
	}
	tree_close(&t);
	return r;
}

/* Adds tree ID and what it holds, leaving out what the client has and
 * what the pack sent whole holds. A submodule's commit is not ours to
 * send. */
static int tree_add(struct upload *u, struct objlist *objects, const git_oid *id, const char *name,
                    int level)
{
	struct tree_reader t;
	git_object_t type;
	const char *entry_name;
	git_oid entry;
	struct obj *o;
	int r;

	if (meets_reused_id(u, id))
		return 0;
	if (objmap_add(&o, &u->req.objs, id) < 0)
		return -1;
	if (o->flags & (F_UNINTERESTING | F_ADDED))
		return 0;
	o->type = GIT_OBJECT_TREE;
	if (add_object(u, objects, o, name) < 0)
		return -1;
	if (level > TREE_DEPTH_MAX)
		return err_set("upload-pack: trees nested deeper than %d", TREE_DEPTH_MAX);
	if (tree_open(&t, u, id) < 0)
		return -1;
	while ((r = tree_next(&t, id, &type, &entry_name, &entry)) > 0) {
		if (type == GIT_OBJECT_TREE) {
			if ((r = tree_add(u, objects, &entry, entry_name, level + 1)) < 0)
				break;
		} else if (type == GIT_OBJECT_BLOB) {
			if (meets_reused_id(u, &entry))
				continue;
			if ((r = objmap_add(&o, &u->req.objs, &entry)) < 0)
				break;
			if (o->flags & (F_UNINTERESTING | F_ADDED))
				continue;
			o->type = GIT_OBJECT_BLOB;
			if ((r = add_object(u, objects, o, entry_name)) < 0)
				break;
		}
	}
	tree_close(&t);
	return r;
}

/* Adds a wanted tree or blob (a tag may point at one) with what it holds. */
static int add_non_commit(struct upload *u, struct objlist *objects, struct obj *o)
{
	int type = obj_type(u, o);

	if (type < 0)
		return -1;
	if (type == GIT_OBJECT_TREE)
		return tree_add(u, objects, &o->oid, NULL, 0);
	if (o->flags & F_UNINTERESTING)
		return 0;
	return add_object(u, objects, o, NULL);
}

static int add_edge(struct objlist *edges, struct obj *c)
{
	if (c->flags & F_EDGE)
		return 0;
	c->flags |= F_EDGE;
	return objlist_push(edges, c);
}

/* Puts the commits of SENDING into the pack, then their trees, leaving out
 * the trees and blobs the client has: those of the EDGES, commits it has
 * next to sent ones (git's --objects-edge), and of an unshallowed commit.
 * NON_COMMITS are wanted trees and blobs. */
static int add_commits_and_trees(struct upload *u, struct objlist *objects, struct objlist *sending,
                                 struct objlist *edges, struct objlist *non_commits)
{
	struct request *q = &u->req;

	for (size_t i = 0; i < q->shallows.n; i++) {
		struct obj *c = q->shallows.items[i];

		if ((c->flags & F_NOT_SHALLOW) && add_edge(edges, c) < 0)
			return -1;
	}
	for (size_t i = 0; i < edges->n; i++)
		if (commit_parse(u, edges->items[i]) < 0 ||
		    tree_mark_uninteresting(u, &edges->items[i]->tree, 0) < 0)
			return -1;
	for (size_t i = 0; i < sending->n; i++) {
		sending->items[i]->type = GIT_OBJECT_COMMIT;
		if (add_object(u, objects, sending->items[i], NULL) < 0)
			return -1;
	}
	for (size_t i = 0; i < sending->n; i++)
		if (tree_add(u, objects, &sending->items[i]->tree, NULL, 0) < 0)
			return -1;
	for (size_t i = 0; i < non_commits->n; i++)
		if (add_non_commit(u, objects, non_commits->items[i]) < 0)
			return -1;
	return 0;
}

/* The full (not shallow) case, as git's pack-objects is driven: wanted
 * commits pushed and common haves hidden on a revwalk; the edges are the
 * hidden parents of sent commits. The revwalk parses every commit it
 * reaches, the hidden ones too: the size guard refuses one over the limit
 * (the tips are checked first, for a plain message). */
static int enumerate_full(struct upload *u, struct objlist *objects)
{
	struct request *q = &u->req;
	struct objlist sending = {0}, edges = {0}, non_commits = {0};
	git_revwalk *walk = NULL;
	git_oid oid;
	int r, ret = -1;

	if (git_revwalk_new(&walk, u->repo) < 0) {
		pack_error(u, "cannot walk commits");
		goto out;
	}
	for (size_t i = 0; i < q->wants.n; i++) {
		struct obj *end;

		if (add_tag_chain(u, objects, q->wants.items[i], &end) < 0)
			goto out;
		if (obj_type(u, end) != GIT_OBJECT_COMMIT) {
			if (objlist_push(&non_commits, end) < 0)
				goto out;
		} else if (check_object_size(u, &end->oid) < 0) {
			goto out;
		} else if (git_revwalk_push(walk, &end->oid) < 0) {
			pack_error(u, "cannot walk commits");
			goto out;
		}
	}
	for (size_t i = 0; i < q->haves.n; i++) {
		struct obj *c;

		if (peel_commit(&c, u, q->haves.items[i]) < 0 ||
		    (c && check_object_size(u, &c->oid) < 0))
			goto out;
		if (c && git_revwalk_hide(walk, &c->oid) < 0) {
			pack_error(u, "cannot walk commits");
			goto out;
		}
	}
	while ((r = git_revwalk_next(&oid, walk)) == 0) {
		struct obj *c;

		if (objmap_add(&c, &q->objs, &oid) < 0)
			goto out;
		if (c->flags & F_SENDING)
			continue;
		c->flags |= F_SENDING;
		if (objlist_push(&sending, c) < 0)
			goto out;
	}
	if (r != GIT_ITEROVER) {
		pack_error(u, "cannot walk commits");
		goto out;
	}
	for (size_t i = 0; i < sending.n; i++) {
		struct obj *c = sending.items[i];

		if (commit_parse(u, c) < 0)
			goto out;
		for (unsigned j = 0; j < c->nparents; j++)
			if (!(c->parents[j]->flags & F_SENDING) &&
			    add_edge(&edges, c->parents[j]) < 0)
				goto out;
	}
	ret = add_commits_and_trees(u, objects, &sending, &edges, &non_commits);
out:
	git_revwalk_free(walk);
	objlist_release(&sending);
	objlist_release(&edges);
	objlist_release(&non_commits);
	return ret;
}

/* The shallow case, where a revwalk cannot be used (it knows no shallow
 * boundaries): what the client has is what the common haves reach without
 * going past its shallow commits; what it gets is what the wants (and the
 * parents of unshallowed commits) reach without going past a boundary or
 * into what it has. */
static int enumerate_shallow(struct upload *u, struct objlist *objects)
{
	struct request *q = &u->req;
	struct objlist sending = {0}, edges = {0}, non_commits = {0};
	int ret = -1;

	q->stack.n = 0;
	for (size_t i = 0; i < q->haves.n; i++) {
		struct obj *c;

		if (peel_commit(&c, u, q->haves.items[i]) < 0)
			goto out;
		if (c && objlist_push(&q->stack, c) < 0)
			goto out;
	}
	while (q->stack.n) {
		struct obj *c = q->stack.items[--q->stack.n];

		if (c->flags & F_CLIENT_HAS)
			continue;
		c->flags |= F_CLIENT_HAS;
		if (is_boundary(c))
			continue;
		if (commit_parse(u, c) < 0)
			goto out;
		for (unsigned i = 0; i < c->nparents; i++)
			if (objlist_push(&q->stack, c->parents[i]) < 0)
				goto out;
	}

	for (size_t i = 0; i < q->wants.n; i++) {
		struct obj *end;

		if (add_tag_chain(u, objects, q->wants.items[i], &end) < 0 ||
		    objlist_push(obj_type(u, end) == GIT_OBJECT_COMMIT ? &q->stack : &non_commits,
		                 end) < 0)
			goto out;
	}
	for (size_t i = 0; i < q->extra_wants.n; i++)
		if (objlist_push(&q->stack, q->extra_wants.items[i]) < 0)
			goto out;
	while (q->stack.n) {
		struct obj *c = q->stack.items[--q->stack.n];

		if (c->flags & (F_CLIENT_HAS | F_SENDING))
			continue;
		c->flags |= F_SENDING;
		if (commit_parse(u, c) < 0 || objlist_push(&sending, c) < 0)
			goto out;
		if (is_boundary(c))
			continue;
		for (unsigned i = 0; i < c->nparents; i++) {
			struct obj *p = c->parents[i];

			if (p->flags & F_CLIENT_HAS) {
				if (add_edge(&edges, p) < 0)
					goto out;
			} else if (objlist_push(&q->stack, p) < 0) {
				goto out;
			}
		}
	}
	ret = add_commits_and_trees(u, objects, &sending, &edges, &non_commits);
out:
	objlist_release(&sending);
	objlist_release(&edges);
	objlist_release(&non_commits);
	return ret;
}

/* Pack reuse, for a request without haves or shallow options: the pack
 * q->reused holds exactly the closure of its marker's tips T
 * (packclosure.h). The walk goes from the wants as enumerate_full's does
 * but stops at objects of that pack: its commits are not walked, its trees
 * not opened. When every tip of T is met, as a want or named by an object
 * the walk went through outside the pack, T is reachable from the wants,
 * so closure(wants) is the pack's objects plus those walked: the pack goes
 * out whole, OBJECTS after it. Returns 1 then; 0 when a tip was not met
 * (OBJECTS holds a partial walk to discard: the pack may hold objects the
 * wants do not reach, such as commits a force-push dropped); -1 on error. */
static int enumerate_reuse(struct upload *u, struct objlist *objects)
{
	struct request *q = &u->req;
	const struct packclosure *closure = &q->reused->closure;
	struct objlist sending = {0}, edges = {0}, non_commits = {0};
	int ret = -1;

	for (size_t i = 0; i < closure->ntips; i++) {
		struct obj *t;

		if (objmap_add(&t, &q->objs, &closure->tips[i]) < 0)
			goto out;
		t->flags |= F_TIP;
	}
	q->stack.n = 0;
	for (size_t i = 0; i < q->wants.n; i++) {
		struct obj *end;
		int type;

		if (add_tag_chain(u, objects, q->wants.items[i], &end) < 0)
			goto out;
		if (!end)
			continue;
		if ((type = obj_type(u, end)) < 0 ||
		    objlist_push(type == GIT_OBJECT_COMMIT ? &q->stack : &non_commits, end) < 0)
			goto out;
	}
	while (q->stack.n) {
		struct obj *c = q->stack.items[--q->stack.n];

		if ((c->flags & F_SENDING) || meets_reused(u, c))
			continue;
		c->flags |= F_SENDING;
		if (commit_parse(u, c) < 0 || objlist_push(&sending, c) < 0)
			goto out;
		for (unsigned i = 0; i < c->nparents; i++)
			if (objlist_push(&q->stack, c->parents[i]) < 0)
				goto out;
	}
	if (add_commits_and_trees(u, objects, &sending, &edges, &non_commits) < 0)
		goto out;
	ret = 1;
	for (size_t i = 0; i < closure->ntips && ret; i++)
		if (!(objmap_get(&q->objs, &closure->tips[i])->flags & F_REACHED))
			ret = 0;
out:
	objlist_release(&sending);
	objlist_release(&edges);
	objlist_release(&non_commits);
	return ret;
}

/* Forgets a walk that enumerate_reuse gave up: what it added, sent and
 * met, and the names it kept, so that a full walk starts clean. */
static void discard_walk(struct upload *u, struct objlist *objects)
{
	struct request *q = &u->req;

	for (struct obj_chunk *c = q->objs.chunks; c; c = c->next)
		for (size_t i = 0; i < c->used; i++) {
			c->objs[i].flags &= ~(unsigned)(F_ADDED | F_SENDING | F_TIP | F_REACHED);
			c->objs[i].name = NULL;
		}
	while (q->names) {
		struct name_chunk *c = q->names;

		q->names = c->next;
		free(c);
	}
	q->nname_chunks = 0;
	objects->n = 0;
	u->po->nobjects = 0;
}

/* include-tag (gitprotocol-capabilities.txt): annotated tags under
 * refs/tags/ whose object is sent go into the pack too (q->included); with
 * pack reuse, the objects of the pack sent whole are sent. */
static int include_tags(struct upload *u, struct objlist *objects)
{
	struct request *q = &u->req;

	if (!u->has_refs && load_refs(u) < 0)
		return -1;
	for (size_t i = 0; i < u->refs.n; i++) {
		const struct ref *r = &u->refs.items[i];
		struct obj *tag, *target, *end;
		bool is_target_sent;

		if (!r->has_peeled || strncmp(r->name, "refs/tags/", 10))
			continue;
		tag = objmap_get(&q->objs, &r->oid);
		target = objmap_get(&q->objs, &r->peeled);
		is_target_sent =
		    (target && (target->flags & F_ADDED)) || is_in_reused(u, &r->peeled);
		if ((tag && (tag->flags & F_ADDED)) || !is_target_sent || is_in_reused(u, &r->oid))
			continue;
		if (objmap_add(&tag, &q->objs, &r->oid) < 0 ||
		    add_tag_chain(u, objects, tag, &end) < 0 || objlist_push(&q->included, tag) < 0)
			return -1;
	}
	return 0;
}

/* Whether the request is a clone (or a fetch into an empty repository):
 * no common haves, no shallow or deepen options. Only then is what it gets
 * the whole closure of its wants, which pack reuse sends and closure
 * markers record. */
static bool is_whole_closure(const struct request *q)
{
	return !q->haves.n && !is_shallow_request(q);
}

/* The pack to send whole, for a request whose pack may hold OFS_DELTA
 * entries: of the packs with a closure marker that matches them, the one
 * with the most objects. NULL when none. */
static struct pack *choose_reused(struct request *q, struct packs *packs)
{
	struct pack *best = NULL;

	if (!is_whole_closure(q) || !q->wants_ofs_delta)
		return NULL;
	for (size_t k = 0; k < packs->n; k++) {
		struct pack *p = &packs->items[k];

		if (p->has_closure && (!best || p->file.idx.nobjects > best->file.idx.nobjects))
			best = p;
	}
	return best;
}

/* Sends the entries of pack P as they are: everything between its 12-byte
 * header and its trailer. An OFS_DELTA inside names its base by distance,
 * which stays valid after a header of the same size. The pages read leave
 * the resident set REUSE_CHUNK at a time, and its .idx's pages (the walk
 * is over) before. */
static int write_reused_pack(struct pack_out *po, struct pack *p)
{
	uint64_t at = PACK_HEADER_SIZE, end = p->file.pack_size - PACK_TRAILER_SIZE, dropped = 0;

	packfile_drop_idx_pages(&p->file);
	while (at < end) {
		size_t n = end - at < REUSE_CHUNK ? (size_t)(end - at) : REUSE_CHUNK;

		if (pack_emit(po, p->file.pack_bytes + at, n, false) < 0)
			return -1;
		at += n;
		packfile_drop_pages(&p->file, dropped, at);
		dropped = at;
	}
	return 0;
}

/* After a full walk for a whole closure: when the objects sent are exactly
 * those of one pack (as many, each in it), that pack is the closure of the
 * wants and of the tags include-tag added; writes its marker so that later
 * clones send it whole. Best effort: a marker not written only means
 * another full walk next time. Returns 1 when one was written, else 0. */
static int record_closure(struct upload *u, struct packs *packs, const struct objlist *objects)
{
	struct request *q = &u->req;
	git_oid *tips = NULL;
	size_t ntips = 0;
	int ret = 0;

	for (size_t k = 0; k < packs->n && !ret; k++) {
		struct pack *p = &packs->items[k];
		size_t i;

		if (p->is_broken || p->has_closure || p->file.idx.nobjects != objects->n ||
		    !objects->n)
			continue;
		for (i = 0; i < objects->n; i++) {
			const struct obj *o = objects->items[i];

			if (o->pack != p && packfile_idx_find(&p->file.idx, o->oid.id) < 0)
				break;
		}
		if (i < objects->n)
			continue;
		if (!tips && !(tips = malloc((q->wants.n + q->included.n) * sizeof(*tips))))
			break;
		for (ntips = 0; ntips < q->wants.n + q->included.n; ntips++)
			git_oid_cpy(&tips[ntips],
			            ntips < q->wants.n
			                ? &q->wants.items[ntips]->oid
			                : &q->included.items[ntips - q->wants.n]->oid);
		ret = packclosure_write(p->path, tips, ntips) == 0;
	}
	free(tips);
	return ret;
}

/* Builds the packfile for the request and streams it on side-band 1 (raw
 * without side-band in v0), progress on band 2 unless no-progress. With
 * pack reuse, a stored pack's entries go first, as they are. */
static int send_pack(struct upload *u)
{
	struct request *q = &u->req;
	struct pkt_io *io = u->io;
	struct objlist objects = {0}, order = {0};
	struct packs *packs = NULL;
	struct pack_out po;
	struct splice sp;
	git_packbuilder *pb = NULL;
	unsigned char header[PACK_HEADER_SIZE], trailer[EVP_MAX_MD_SIZE];
	unsigned int trailer_len = 0;
	size_t nreused = 0, nreused_deltas = 0, nbuilt = 0, npack_reused = 0;
	uint64_t total;
	bool wants_progress;
	int r, ret = -1;

	memset(&po, 0, sizeof(po));
	memset(&sp, 0, sizeof(sp));
	po.u = u;
	po.last_output_ms = po.last_progress_ms = clock_now_ms();
	io->sideband = u->version == 2 ? SIDEBAND_DATA_MAX : q->sideband;
	wants_progress = io->sideband && !q->is_no_progress;
	po.cap = io->sideband ? (size_t)io->sideband : 65536;
	if (!(po.buf = malloc(po.cap)) || !(packs = malloc(sizeof(*packs))) ||
	    !(po.sha1 = EVP_MD_CTX_new())) {
		err_set("out of memory");
		goto out;
	}
	packs->n = 0;
	if (!EVP_DigestInit_ex(po.sha1, EVP_sha1(), NULL)) {
		err_set("upload-pack: cannot set up SHA-1");
		goto out;
	}
	u->po = &po;

	if (packs_open(packs, u, is_whole_closure(q)) < 0)
		goto out;
	if ((q->reused = choose_reused(q, packs))) {
		if ((r = enumerate_reuse(u, &objects)) < 0)
			goto out;
		if (!r) {
			discard_walk(u, &objects);
			q->reused = NULL;
		}
	}
	if (!q->reused && (is_shallow_request(q) ? enumerate_shallow(u, &objects)
	                                         : enumerate_full(u, &objects)) < 0)
		goto out;
	if (q->wants_tags && include_tags(u, &objects) < 0)
		goto out;
	npack_reused = q->reused ? q->reused->file.idx.nobjects : 0;
	po.is_counting_done = true;
	if (wants_progress &&
	    pkt_progressf(io, "Counting objects: %zu, done.\n", npack_reused + objects.n) < 0)
		goto out;

	if (plan_reuse(u, packs, &objects, &order) < 0)
		goto out;
	if (git_packbuilder_new(&pb, u->repo) < 0) {
		pack_error(u, "cannot start a pack");
		goto out;
	}
	git_packbuilder_set_threads(pb, 0);
	if (git_packbuilder_set_callbacks(pb, pack_progress, &po) < 0) {
		pack_error(u, "cannot start a pack");
		goto out;
	}
	for (size_t i = 0; i < objects.n; i++) {
		struct obj *o = objects.items[i];

		if (o->reuse != REUSE_NONE) {
			nreused++;
			nreused_deltas += o->reuse != REUSE_WHOLE;
		} else if (check_object_size(u, &o->oid) < 0) {
			goto out;
		} else if (git_packbuilder_insert(pb, &o->oid, o->name) < 0) {
			pack_error(u, "cannot add an object to the pack");
			goto out;
		}
	}
	nbuilt = git_packbuilder_object_count(pb);
	total = (uint64_t)npack_reused + nreused + nbuilt;
	if (total > UINT32_MAX) {
		err_set("upload-pack: more than %u objects in one pack", UINT32_MAX);
		goto out;
	}

	memcpy(header, "PACK", 4);
	put_be32(header + 4, 2);
	put_be32(header + 8, (uint32_t)total);
	/* the pack sent whole and nothing else, under the same header: its
	 * own trailer is the SHA-1 of what goes out */
	po.is_unhashed = q->reused && total == npack_reused &&
	                 !memcmp(q->reused->file.pack_bytes, header, sizeof(header));
	if (pack_emit(&po, header, sizeof(header), false) < 0 ||
	    (q->reused && write_reused_pack(&po, q->reused) < 0))
		goto fail;
	for (size_t i = 0; i < order.n; i++) {
		struct obj *o = order.items[i];

		if (o->reuse == REUSE_NONE)
			continue;
		if (write_reused(&po, o, q->wants_ofs_delta) < 0)
			goto fail;
		drop_behind(o); /* entries go out in pack order */
	}
	sp.po = &po;
	if (nbuilt && git_packbuilder_foreach(pb, splice_write, &sp) < 0) {
		pack_error(u, "cannot write the pack");
		goto out;
	}
	if (po.is_unhashed) {
		memcpy(trailer,
		       q->reused->file.pack_bytes + q->reused->file.pack_size - PACK_TRAILER_SIZE,
		       PACK_TRAILER_SIZE);
		trailer_len = PACK_TRAILER_SIZE;
	} else if (!EVP_DigestFinal_ex(po.sha1, trailer, &trailer_len) ||
	           trailer_len != PACK_TRAILER_SIZE) {
		err_set("upload-pack: SHA-1 failed");
		goto out;
	}
	if (pack_emit(&po, trailer, trailer_len, true) < 0 || pack_flush_chunk(&po) < 0)
		goto fail;
	if (wants_progress && po.is_compressing && !po.is_compress_done &&
	    pkt_progressf(io, "Compressing objects: 100%%, done.\n") < 0)
		goto out;
	if (wants_progress &&
	    (npack_reused ? pkt_progressf(io,
	                                  "Total %zu, reused %zu (delta %zu), "
	                                  "pack-reused %zu\n",
	                                  (size_t)total, nreused, nreused_deltas, npack_reused)
	                  : pkt_progressf(io, "Total %zu, reused %zu (delta %zu)\n", (size_t)total,
	                                  nreused, nreused_deltas)) < 0)
		goto out;
	u->stats->pack_objects += (size_t)total;
	u->stats->pack_reused += npack_reused;
	u->stats->pack_bytes += po.bytes;
	if (!q->reused && is_whole_closure(q))
		u->stats->closures_recorded += (size_t)record_closure(u, packs, &objects);
	ret = 0;
	goto out;
fail:
	err_set("%s", po.error);
out:
	u->po = NULL;
	q->reused = NULL;
	git_packbuilder_free(pb);
	if (packs)
		packs_close(packs);
	free(packs);
	objlist_release(&objects);
	objlist_release(&order);
	EVP_MD_CTX_free(po.sha1);
	free(po.buf);
	return ret;
}

/* ---- protocol v0 and v1 ----------------------------------------------- */

/* The capabilities of a v0 advertisement (gitprotocol-capabilities.txt),
 * in git's order. thin-pack is accepted but the pack is never thin. */
static int format_caps_v0(char *buf, size_t size, struct upload *u)
{
	const char *target = u->refs.has_head ? u->refs.head.symref_target : NULL;
	int n;

	n = snprintf(buf, size,
	             "multi_ack thin-pack side-band side-band-64k ofs-delta shallow "
	             "deepen-since deepen-not deepen-relative no-progress include-tag "
	             "multi_ack_detailed allow-reachable-sha1-in-want no-done%s%s "
	             "object-format=sha1 agent=%s",
	             target ? " symref=HEAD:" : "", target ? target : "", u->agent);
	if (n < 0 || (size_t)n >= size)
		return err_set("upload-pack: the capability list is too long");
	return 0;
}

static int advertise_ref_v0(struct upload *u, const struct ref *r, const char *caps)
{
	char hex[GIT_OID_HEXSZ + 1];

	git_oid_tostr(hex, sizeof(hex), &r->oid);
	if ((caps ? pkt_writef(u->io, "%s %s%c%s\n", hex, r->name, '\0', caps)
	          : pkt_writef(u->io, "%s %s\n", hex, r->name)) < 0)
		return -1;
	if (r->has_peeled && pkt_writef(u->io, "%s %s^{}\n",
	                                git_oid_tostr(hex, sizeof(hex), &r->peeled), r->name) < 0)
		return -1;
	return mark_advertised(u, r);
}

/* Reference discovery (gitprotocol-pack.txt): HEAD first when it resolves,
 * then every ref by name, an annotated tag followed by "NAME^{}" with what
 * it peels to; capabilities after a NUL on the first line; an empty
 * repository sends "capabilities^{}" with the zero id. Ends with a flush. */
static int advertise_v0(struct upload *u)
{
	char caps[8192];
	const char *first = caps;

	if (load_refs(u) < 0)
		return -1;
	if (format_caps_v0(caps, sizeof(caps), u) < 0)
		return -1;
	if (u->refs.has_head) {
		if (advertise_ref_v0(u, &u->refs.head, first) < 0)
			return -1;
		first = NULL;
	}
	for (size_t i = 0; i < u->refs.n; i++) {
		if (advertise_ref_v0(u, &u->refs.items[i], first) < 0)
			return -1;
		first = NULL;
	}
	if (first && pkt_writef(u->io, "%s capabilities^{}%c%s\n", ZERO_HEX, '\0', caps) < 0)
		return -1;
	return pkt_flush(u->io);
}

/* The capabilities after the first want's id; unknown ones are ignored. */
static int parse_features_v0(struct request *q, const char *s, size_t len)
{
	const char *p = s, *end = s + len;
	struct capability cap;

	while (capability_next(&cap, &p, end)) {
		if (capability_is(&cap, "multi_ack_detailed"))
			q->ack_mode = ACK_DETAILED;
		else if (capability_is(&cap, "multi_ack") && q->ack_mode != ACK_DETAILED)
			q->ack_mode = ACK_MULTI;
		else if (capability_is(&cap, "no-done"))
			q->is_no_done = true;
		else if (capability_is(&cap, "side-band-64k"))
			q->sideband = SIDEBAND_DATA_MAX;
		else if (capability_is(&cap, "side-band") && !q->sideband)
			q->sideband = SIDEBAND_SMALL_DATA_MAX;
		else if (capability_is(&cap, "no-progress"))
			q->is_no_progress = true;
		else if (capability_is(&cap, "include-tag"))
			q->wants_tags = true;
		else if (capability_is(&cap, "ofs-delta"))
			q->wants_ofs_delta = true;
		else if (capability_is(&cap, "deepen-relative"))
			q->is_deepen_relative = true;
		else if (capability_is_named(&cap, "object-format") &&
		         !capability_value_is(&cap, "sha1"))
			return err_set("upload-pack: unsupported object-format");
	}
	return 0;
}

/* The upload request (gitprotocol-pack.txt, "Packfile Negotiation"): want
 * lines, the first with capabilities, shallow and deepen lines, a flush.
 * Returns 1 when something is wanted, 0 when the client only listed refs
 * (a flush or the end of the stream right away, or no want), or -1. */
/* Lines a refused request may still hold; more ends the connection anyway. */
#define DRAIN_LINES_MAX 16384

/* Before a refusal is sent: reads (and ignores) the rest of what the client
 * writes before it reads, up to a flush-pkt, or with UNTIL_DONE up to
 * "done" or a flush-pkt (v0's first round of haves). A client still writing
 * when the answer comes and the connection closes dies of SIGPIPE without
 * seeing it. Returns -1 with err_msg() as it was on entry. */
static int refuse_after_request(struct upload *u, bool until_done)
{
	char msg[ERR_MAX];

	snprintf(msg, sizeof(msg), "%s", err_msg());
	for (int n = 0; n < DRAIN_LINES_MAX; n++) {
		const char *line;
		size_t len;
		int r = pkt_read(u->io, &line, &len, true);

		if (r <= 0 || r == PKT_FLUSH ||
		    (until_done && r == PKT_DATA && len == 4 && !memcmp(line, "done", 4)))
			break;
	}
	return err_set("%s", msg);
}

static int read_want_list_v0(struct upload *u)
{
	struct request *q = &u->req;
	char s[SHOWN_MAX + 1];
	bool any = false;

	for (;;) {
		const char *line;
		size_t len;
		int r = pkt_read(u->io, &line, &len, true);

		if (r < 0)
			return -1;
		if (r == PKT_EOF && !any)
			return 0;
		if (r == PKT_FLUSH)
			break;
		if (r != PKT_DATA)
			return err_set("upload-pack: protocol error: the want list ended without a "
			               "flush");
		any = true;
		if (has_prefix(line, len, "want ")) {
			size_t idlen = len - 5 > GIT_OID_HEXSZ ? GIT_OID_HEXSZ : len - 5;

			if (len > 5 + GIT_OID_HEXSZ && line[5 + GIT_OID_HEXSZ] != ' ')
				return err_set(
				    "upload-pack: protocol error, expected to get object "
				    "ID, not '%s'",
				    shown(s, sizeof(s), line, len));
			if (len > 5 + GIT_OID_HEXSZ &&
			    parse_features_v0(q, line + 6 + GIT_OID_HEXSZ,
			                      len - 6 - GIT_OID_HEXSZ) < 0)
				return -1;
			if (add_want(u, line + 5, idlen) < 0) {
				/* the want list to its flush, then the first haves */
				(void)refuse_after_request(u, false);
				return refuse_after_request(u, true);
			}
		} else if (has_prefix(line, len, "shallow ")) {
			if (add_client_shallow(u, line + 8, len - 8) < 0)
				return -1;
		} else if (has_prefix(line, len, "deepen ")) {
			if (set_depth(u, line + 7, len - 7) < 0)
				return -1;
		} else if (has_prefix(line, len, "deepen-since ")) {
			if (set_deepen_since(u, line + 13, len - 13) < 0)
				return -1;
		} else if (has_prefix(line, len, "deepen-not ")) {
			if (add_deepen_not(u, line + 11, len - 11) < 0)
				return -1;
		} else if (has_prefix(line, len, "filter ")) {
			return err_set("upload-pack: filtering capability not negotiated");
		} else {
			return err_set(
			    "upload-pack: protocol error, expected to get object ID, not "
			    "'%s'",
			    shown(s, sizeof(s), line, len));
		}
	}
	return q->wants.n ? 1 : 0;
}

/* git's get_common_commits: have lines in rounds ended by a flush, answered
 * per the ack mode; "done" (or, with no-done, a round that found the
 * server ready) ends it with a final ACK or NAK (gitprotocol-pack.txt). */
static int negotiate_v0(struct upload *u)
{
	struct request *q = &u->req;
	struct pkt_io *io = u->io;
	char last_hex[GIT_OID_HEXSZ + 1] = "", hex[GIT_OID_HEXSZ + 1], s[SHOWN_MAX + 1];
	bool got_common = false, got_other = false, sent_ready = false;

	for (;;) {
		const char *line;
		size_t len;
		git_oid oid;
		int r = pkt_read(io, &line, &len, true), give_up;

		if (r < 0)
			return -1;
		if (r == PKT_EOF)
			return err_set("upload-pack: the client hung up during negotiation");
		if (r == PKT_FLUSH) {
			if (q->ack_mode == ACK_DETAILED && got_common && !got_other) {
				if ((give_up = ok_to_give_up(u)) < 0)
					return -1;
				if (give_up) {
					sent_ready = true;
					if (pkt_writef(io, "ACK %s ready\n", last_hex) < 0)
						return -1;
				}
			}
			if ((!q->haves.n || q->ack_mode != ACK_SINGLE) &&
			    pkt_writef(io, "NAK\n") < 0)
				return -1;
			if (q->is_no_done && sent_ready)
				return pkt_writef(io, "ACK %s\n", last_hex);
			got_common = got_other = false;
			if (pkt_send(io) < 0)
				return -1;
			continue;
		}
		if (r != PKT_DATA)
			return err_set("upload-pack: protocol error: unexpected special packet in "
			               "negotiation");
		if (has_prefix(line, len, "have ")) {
			if (!protocol_parse_oid(&oid, line + 5, len - 5))
				return err_set("upload-pack: expected SHA1 object, got '%s'",
				               shown(s, sizeof(s), line + 5, len - 5));
			git_oid_tostr(hex, sizeof(hex), &oid);
			if ((r = got_have(u, &oid)) < 0)
				return -1;
			if (!r) {
				got_other = true;
				if (q->ack_mode == ACK_SINGLE)
					continue;
				if ((give_up = ok_to_give_up(u)) < 0)
					return -1;
				if (!give_up)
					continue;
				if (q->ack_mode == ACK_DETAILED)
					sent_ready = true;
				r = pkt_writef(io, "ACK %s %s\n", hex,
				               q->ack_mode == ACK_DETAILED ? "ready" : "continue");
			} else {
				got_common = true;
				memcpy(last_hex, hex, sizeof(hex));
				if (q->ack_mode == ACK_DETAILED)
					r = pkt_writef(io, "ACK %s common\n", hex);
				else if (q->ack_mode == ACK_MULTI)
					r = pkt_writef(io, "ACK %s continue\n", hex);
				else if (q->haves.n == 1)
					r = pkt_writef(io, "ACK %s\n", hex);
				else
					r = 0;
			}
			if (r < 0)
				return -1;
			continue;
		}
		if (is_token(line, len, "done")) {
			if (q->haves.n)
				return q->ack_mode != ACK_SINGLE
				           ? pkt_writef(io, "ACK %s\n", last_hex)
				           : 0;
			return pkt_writef(io, "NAK\n");
		}
		return err_set("upload-pack: expected SHA1 list, got '%s'",
		               shown(s, sizeof(s), line, len));
	}
}

static int serve_v0(struct upload *u)
{
	struct request *q = &u->req;
	int r;

	if (u->version == 1 && pkt_writef(u->io, "version 1\n") < 0)
		return -1;
	if (advertise_v0(u) < 0)
		return -1;
	if ((r = read_want_list_v0(u)) <= 0)
		return r;
	u->stats->nwants += q->wants.n;
	if (check_wants(u) < 0)
		return refuse_after_request(u, true);
	/* shallow-update: only when a depth was asked for */
	if (q->depth || q->deepen_since || q->deepen_not.n) {
		if (shallow_update(u) < 0 || pkt_flush(u->io) < 0)
			return -1;
	}
	if (negotiate_v0(u) < 0 || send_pack(u) < 0)
		return -1;
	if (u->io->sideband)
		return pkt_flush(u->io);
	return pkt_send(u->io);
}

/* ---- protocol v2 -------------------------------------------------------- */

enum command { CMD_LS_REFS, CMD_FETCH };

/* Capability advertisement (gitprotocol-v2.txt). */
static int advertise_v2(struct upload *u)
{
	if (pkt_writef(u->io, "version 2\n") < 0 || pkt_writef(u->io, "agent=%s\n", u->agent) < 0 ||
	    pkt_writef(u->io, "ls-refs=unborn\n") < 0 ||
	    pkt_writef(u->io, "fetch=shallow wait-for-done\n") < 0 ||
	    pkt_writef(u->io, "server-option\n") < 0 ||
	    pkt_writef(u->io, "object-format=sha1\n") < 0)
		return -1;
	return pkt_flush(u->io);
}

/* A request's command and capability lines up to the delim-pkt before its
 * arguments (*HAS_ARGS) or the flush that ends it. Returns 1, 0 when the
 * client ends the session (the end of the stream or a flush alone, as in
 * git's serve.c), or -1. */
static int read_command(struct upload *u, enum command *cmd, bool *has_args)
{
	char name[16] = "", s[SHOWN_MAX + 1];
	bool seen = false, has_command = false;

	for (;;) {
		const char *line;
		size_t len;
		int r = pkt_read(u->io, &line, &len, true);

		if (r < 0)
			return -1;
		if ((r == PKT_EOF || r == PKT_FLUSH) && !seen)
			return 0;
		if (r == PKT_EOF)
			return err_set("upload-pack: protocol error: the request ended early");
		if (r == PKT_FLUSH || r == PKT_DELIM) {
			*has_args = r == PKT_DELIM;
			break;
		}
		if (r != PKT_DATA)
			return err_set(
			    "upload-pack: protocol error: unexpected response-end packet");
		seen = true;
		if (has_prefix(line, len, "command=")) {
			if (has_command)
				return err_set("upload-pack: protocol error: two commands in one "
				               "request");
			has_command = true;
			shown(name, sizeof(name), line + 8, len - 8);
		} else if (has_prefix(line, len, "object-format=")) {
			if (!is_token(line, len, "object-format=sha1"))
				return err_set("upload-pack: mismatched object format");
		} else if (!has_prefix(line, len, "agent=") &&
		           !has_prefix(line, len, "server-option=") &&
		           !has_prefix(line, len, "session-id=")) {
			return err_set("upload-pack: unknown capability '%s'",
			               shown(s, sizeof(s), line, len));
		}
	}
	if (!has_command)
		return err_set("upload-pack: no command requested");
	if (!strcmp(name, "ls-refs"))
		*cmd = CMD_LS_REFS;
	else if (!strcmp(name, "fetch"))
		*cmd = CMD_FETCH;
	else
		return err_set("upload-pack: invalid command '%s'", name);
	return 1;
}

struct prefixes {
	char *items[UPLOAD_REF_PREFIXES_MAX];
	size_t n;
	bool is_ignored; /* too many were given: list every ref */
};

static void prefixes_release(struct prefixes *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->items[i]);
	memset(p, 0, sizeof(*p));
}

static bool prefixes_match(const struct prefixes *p, const char *name)
{
	if (!p->n || p->is_ignored)
		return true;
	for (size_t i = 0; i < p->n; i++)
		if (!strncmp(name, p->items[i], strlen(p->items[i])))
			return true;
	return false;
}

static int ls_ref_line(struct upload *u, const struct ref *r, bool wants_symrefs, bool wants_peel)
{
	char hex[GIT_OID_HEXSZ + 1], peeled[GIT_OID_HEXSZ + 1];
	bool has_target = wants_symrefs && r->symref_target;
	bool has_peeled = wants_peel && r->has_peeled;

	git_oid_tostr(hex, sizeof(hex), &r->oid);
	git_oid_tostr(peeled, sizeof(peeled), &r->peeled);
	if (pkt_writef(u->io, "%s %s%s%s%s%s\n", hex, r->name, has_target ? " symref-target:" : "",
	               has_target ? r->symref_target : "", has_peeled ? " peeled:" : "",
	               has_peeled ? peeled : "") < 0)
		return -1;
	return mark_advertised(u, r);
}

/* ls-refs (gitprotocol-v2.txt): HEAD (or "unborn HEAD" when asked), then the
 * refs by name, narrowed by ref-prefix; symref-target and peeled
 * attributes when asked for. */
static int ls_refs(struct upload *u, bool has_args)
{
	struct prefixes prefixes;
	bool wants_symrefs = false, wants_peel = false, wants_unborn = false;
	char s[SHOWN_MAX + 1];
	int ret = -1;

	memset(&prefixes, 0, sizeof(prefixes));
	while (has_args) {
		const char *line;
		size_t len;
		int r = pkt_read(u->io, &line, &len, true);

		if (r < 0)
			goto out;
		if (r == PKT_FLUSH)
			break;
		if (r != PKT_DATA) {
			err_set("upload-pack: protocol error: ls-refs arguments did not end with a "
			        "flush");
			goto out;
		}
		if (is_token(line, len, "symrefs")) {
			wants_symrefs = true;
		} else if (is_token(line, len, "peel")) {
			wants_peel = true;
		} else if (is_token(line, len, "unborn")) {
			wants_unborn = true;
		} else if (has_prefix(line, len, "ref-prefix ")) {
			if (prefixes.n == UPLOAD_REF_PREFIXES_MAX) {
				prefixes.is_ignored = true;
				continue;
			}
			if (!(prefixes.items[prefixes.n] = strndup(line + 11, len - 11))) {
				err_set("out of memory");
				goto out;
			}
			prefixes.n++;
		} else {
			err_set("upload-pack: unexpected line: '%s'",
			        shown(s, sizeof(s), line, len));
			goto out;
		}
	}
	if (load_refs(u) < 0)
		goto out;
	if (prefixes_match(&prefixes, "HEAD")) {
		if (u->refs.has_head) {
			if (ls_ref_line(u, &u->refs.head, wants_symrefs, wants_peel) < 0)
				goto out;
		} else if (wants_unborn && wants_symrefs && u->refs.head_unborn_target) {
			if (pkt_writef(u->io, "unborn HEAD symref-target:%s\n",
			               u->refs.head_unborn_target) < 0)
				goto out;
		}
	}
	for (size_t i = 0; i < u->refs.n; i++)
		if (prefixes_match(&prefixes, u->refs.items[i].name) &&
		    ls_ref_line(u, &u->refs.items[i], wants_symrefs, wants_peel) < 0)
			goto out;
	ret = pkt_flush(u->io);
out:
	prefixes_release(&prefixes);
	return ret;
}

/* One fetch argument (gitprotocol-v2.txt, "fetch"). */
static int fetch_arg(struct upload *u, const char *line, size_t len)
{
	struct request *q = &u->req;
	char s[SHOWN_MAX + 1];
	git_oid oid;
	int r;

	if (has_prefix(line, len, "want "))
		return add_want(u, line + 5, len - 5);
	if (has_prefix(line, len, "have ")) {
		if (!protocol_parse_oid(&oid, line + 5, len - 5))
			return err_set("upload-pack: expected SHA1 object, got '%s'",
			               shown(s, sizeof(s), line + 5, len - 5));
		if ((r = got_have(u, &oid)) <= 0)
			return r;
		if (q->acks.n == UPLOAD_HAVES_MAX)
			return err_set("upload-pack: more than %d common haves", UPLOAD_HAVES_MAX);
		return objlist_push(&q->acks, objmap_get(&q->objs, &oid));
	}
	if (is_token(line, len, "done"))
		q->is_done = true;
	else if (is_token(line, len, "thin-pack"))
		; /* the pack is never thin */
	else if (is_token(line, len, "ofs-delta"))
		q->wants_ofs_delta = true;
	else if (is_token(line, len, "no-progress"))
		q->is_no_progress = true;
	else if (is_token(line, len, "include-tag"))
		q->wants_tags = true;
	else if (is_token(line, len, "deepen-relative"))
		q->is_deepen_relative = true;
	else if (is_token(line, len, "wait-for-done"))
		q->is_wait_for_done = true;
	else if (has_prefix(line, len, "shallow "))
		return add_client_shallow(u, line + 8, len - 8);
	else if (has_prefix(line, len, "deepen "))
		return set_depth(u, line + 7, len - 7);
	else if (has_prefix(line, len, "deepen-since "))
		return set_deepen_since(u, line + 13, len - 13);
	else if (has_prefix(line, len, "deepen-not "))
		return add_deepen_not(u, line + 11, len - 11);
	else
		return err_set("upload-pack: unexpected line: '%s'",
		               shown(s, sizeof(s), line, len));
	return 0;
}

/* fetch (gitprotocol-v2.txt): the arguments, then either acknowledgments
 * ending with a flush (the client goes on negotiating) or, after "done" or
 * "ready", shallow-info and the packfile section, ending with a flush. */
static int fetch_v2(struct upload *u, bool has_args)
{
	struct request *q = &u->req;
	char hex[GIT_OID_HEXSZ + 1];
	int r;

	request_release(q);
	while (has_args) {
		const char *line;
		size_t len;

		if ((r = pkt_read(u->io, &line, &len, true)) < 0)
			return -1;
		if (r == PKT_FLUSH)
			break;
		if (r != PKT_DATA)
			return err_set("upload-pack: protocol error: fetch arguments did not end "
			               "with a flush");
		if (fetch_arg(u, line, len) < 0)
			return refuse_after_request(u, false);
	}
	/* like git: a request without wants gets no answer */
	if (!q->wants.n)
		return 0;
	u->stats->nwants += q->wants.n;
	if (check_wants(u) < 0)
		return -1;
	if (!q->is_done) {
		if (pkt_writef(u->io, "acknowledgments\n") < 0 ||
		    (!q->acks.n && pkt_writef(u->io, "NAK\n") < 0))
			return -1;
		for (size_t i = 0; i < q->acks.n; i++)
			if (pkt_writef(u->io, "ACK %s\n",
			               git_oid_tostr(hex, sizeof(hex), &q->acks.items[i]->oid)) < 0)
				return -1;
		r = q->is_wait_for_done ? 0 : ok_to_give_up(u);
		if (r < 0)
			return -1;
		if (!r)
			return pkt_flush(u->io);
		if (pkt_writef(u->io, "ready\n") < 0 || pkt_delim(u->io) < 0)
			return -1;
	}
	if (is_shallow_request(q)) {
		if (pkt_writef(u->io, "shallow-info\n") < 0 || shallow_update(u) < 0 ||
		    pkt_delim(u->io) < 0)
			return -1;
	}
	if (pkt_writef(u->io, "packfile\n") < 0 || send_pack(u) < 0)
		return -1;
	u->io->sideband = 0;
	return pkt_flush(u->io);
}

static int serve_v2(struct upload *u)
{
	if (advertise_v2(u) < 0)
		return -1;
	for (;;) {
		enum command cmd = CMD_LS_REFS;
		bool has_args = false;
		int r = read_command(u, &cmd, &has_args);

		if (r <= 0)
			return r;
		r = cmd == CMD_LS_REFS ? ls_refs(u, has_args) : fetch_v2(u, has_args);
		if (r < 0)
			return -1;
	}
}

/* ---- entry points ----------------------------------------------------- */

int upload_pack_protocol_version(const char *value)
{
	int best = 0;

	if (!value)
		return 0;
	for (const char *p = value; *p;) {
		size_t n = strcspn(p, ":");

		if (n == 9 && !memcmp(p, "version=", 8) && p[8] >= '0' && p[8] <= '2' &&
		    p[8] - '0' > best)
			best = p[8] - '0';
		p += n;
		if (*p == ':')
			p++;
	}
	return best;
}

int upload_pack_serve(struct pkt_io *io, git_repository *repo, int version,
                      const struct upload_opts *opts, struct upload_stats *stats)
{
	struct upload_stats unused;
	struct upload u;
	git_repository *guarded = NULL;
	int ret = -1;

	memset(&u, 0, sizeof(u));
	memset(&unused, 0, sizeof(unused));
	u.io = io;
	u.repo = repo;
	u.version = version == 1 || version == 2 ? version : 0;
	u.agent = opts && opts->agent ? opts->agent : "slipway";
	u.max_object_bytes = opts ? opts->max_object_bytes : 0;
	u.stats = stats ? stats : &unused;
	io->sideband = 0;
	if (u.max_object_bytes) {
		if (open_guarded(&guarded, repo, u.max_object_bytes) < 0)
			goto out;
		u.repo = repo = guarded;
	}
	if (git_repository_odb(&u.odb, repo) < 0) {
		err_set("upload-pack: cannot open the object database: %s", repo_git_error());
		goto out;
	}
	ret = u.version == 2 ? serve_v2(&u) : serve_v0(&u);
out:
	if (ret < 0)
		tell_client(&u);
	request_release(&u.req);
	objmap_release(&u.adv);
	if (u.has_refs)
		refs_release(&u.refs);
	git_odb_free(u.odb);
	git_repository_free(guarded);
	return ret;
}
