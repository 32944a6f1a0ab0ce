/* receive_pack: the server side of git push (see receive_pack.h). One push
 * reads top to bottom in receive_pack_serve(): advertisement, request,
 * packfile into a quarantine, connectivity and policy checks, pre-receive,
 * compare-and-swap ref updates, report-status. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <git2/sys/odb_backend.h>
#include <openssl/evp.h>

#include "capability.h"
#include "clock.h"
#include "err.h"
#include "fs.h"
#include "indexpack.h"
#include "log.h"
#include "packclosure.h"
#include "packfile.h"
#include "receive_pack.h"
#include "repo.h"
#include "banned.h"

/* The connectivity check reads the quarantined pack on at most this many
 * threads, each taking this many objects of pack order at a time. */
#define CHECK_THREADS 8
#define CHECK_BLOCK 1024

/* Its first pass drops the pack's pages behind it this many bytes at a time. */
#define CHECK_DROP_BYTES (8u << 20)

/* A push that leaves more loose refs than this packs them all into
 * packed-refs, as git's `gc --auto` after a push would: every ref
 * advertisement reads each loose ref file, packed-refs is one read. */
#define LOOSE_REFS_MAX 64

/* Bytes handed to the indexer per call. */
#define PACK_CHUNK (256 * 1024)

/* Progress lines on side-band 2 are at least this far apart. */
#define PROGRESS_INTERVAL_MS 250

/* Longest quarantine path: room is left for "/pack/pack-HASH.pack". */
#define QUARANTINE_PATH_MAX (PATH_MAX - 128)

#define ZERO_HEX "0000000000000000000000000000000000000000"

/* The pack header: "PACK", version, object count (gitformat-pack.txt). */
#define PACK_HEADER_SIZE 12

static bool has_prefix(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

/* ---- ref advertisement ------------------------------------------------ */

/* Reference discovery (gitprotocol-pack.txt "Reference Discovery"): "OID
 * REFNAME" for every ref, the capabilities after a NUL on the first line; a
 * repository without refs advertises "capabilities^{}" with the zero id.
 * HEAD is not advertised to a pusher. Ends with a flush. Sets *IS_HEAD_BORN
 * when HEAD is detached or names one of the refs advertised. */
static int advertise(struct pkt_io *io, git_repository *repo, const struct receive_opts *opts,
                     bool *is_head_born)
{
	git_reference_iterator *it = NULL;
	git_reference *ref = NULL, *resolved = NULL, *head = NULL;
	char caps[256], hex[GIT_OID_HEXSZ + 1];
	const char *head_target = NULL;
	bool first = true;
	int r, ret = -1;

	/* whether HEAD's branch is among the refs, seen on the way: HEAD
	 * itself is read, not resolved */
	*is_head_born = false;
	if (git_reference_lookup(&head, repo, "HEAD") == 0) {
		if (git_reference_type(head) == GIT_REFERENCE_SYMBOLIC)
			head_target = git_reference_symbolic_target(head);
		else
			*is_head_born = true;
	}

	snprintf(caps, sizeof(caps),
	         "report-status%s side-band-64k quiet atomic ofs-delta push-options "
	         "object-format=sha1 agent=%s",
	         opts->deny_deletes ? "" : " delete-refs", opts->agent ? opts->agent : "slipway");
	if (git_reference_iterator_new(&it, repo) < 0) {
		err_set("cannot list refs: %s", repo_git_error());
		goto out;
	}
	while ((r = git_reference_next(&ref, it)) == 0) {
		const git_oid *oid = NULL;

		if (git_reference_type(ref) == GIT_REFERENCE_DIRECT)
			oid = git_reference_target(ref);
		else if (git_reference_resolve(&resolved, ref) == 0)
			oid = git_reference_target(resolved);
		if (oid) {
			if (head_target && !strcmp(git_reference_name(ref), head_target))
				*is_head_born = true;
			git_oid_tostr(hex, sizeof(hex), oid);
			if (first)
				r = pkt_writef(io, "%s %s%c%s\n", hex, git_reference_name(ref),
				               '\0', caps);
			else
				r = pkt_writef(io, "%s %s\n", hex, git_reference_name(ref));
			if (r < 0)
				goto out;
			first = false;
		}
		git_reference_free(resolved);
		git_reference_free(ref);
		resolved = ref = NULL;
	}
	if (r != GIT_ITEROVER) {
		err_set("cannot list refs: %s", repo_git_error());
		goto out;
	}
	if (first && pkt_writef(io, "%s capabilities^{}%c%s\n", ZERO_HEX, '\0', caps) < 0)
		goto out;
	ret = pkt_flush(io);
out:
	git_reference_free(resolved);
	git_reference_free(ref);
	git_reference_free(head);
	git_reference_iterator_free(it);
	return ret;
}

/* ---- update request --------------------------------------------------- */

/* Takes the capabilities the client asked for (gitprotocol-capabilities.txt);
 * unknown ones are ignored, as git does. */
static int parse_capabilities(struct receive_request *req, const char *caps, size_t len)
{
	const char *p = caps, *end = caps + len;
	struct capability cap;

	while (capability_next(&cap, &p, end)) {
		if (capability_is(&cap, "report-status"))
			req->wants_report_status = true;
		else if (capability_is(&cap, "side-band-64k"))
			req->sideband = SIDEBAND_DATA_MAX;
		else if (capability_is(&cap, "side-band") && !req->sideband)
			req->sideband = SIDEBAND_SMALL_DATA_MAX;
		else if (capability_is(&cap, "quiet"))
			req->is_quiet = true;
		else if (capability_is(&cap, "atomic"))
			req->is_atomic = true;
		else if (capability_is(&cap, "push-options"))
			req->wants_push_options = true;
		else if (capability_is_named(&cap, "object-format") &&
		         !capability_value_is(&cap, "sha1"))
			return err_set("protocol error: unsupported object-format '%.*s'",
			               (int)(cap.value_len > 16 ? 16 : cap.value_len),
			               cap.value ? cap.value : "");
	}
	return 0;
}

/* Parses "OLD SP NEW SP REFNAME" (LEN bytes, no NUL) into CMD. Returns 0,
 * -1 on a malformed line, or RECEIVE_EREFUSED when the refname is longer
 * than RECEIVE_REFNAME_MAX (nothing is kept); err_msg() says which. */
static int parse_command(struct receive_command *cmd, const char *line, size_t len)
{
	const size_t name_at = 2 * GIT_OID_HEXSZ + 2;

	if (len <= name_at || line[GIT_OID_HEXSZ] != ' ' || line[2 * GIT_OID_HEXSZ + 1] != ' ' ||
	    !protocol_parse_oid(NULL, line, GIT_OID_HEXSZ) ||
	    !protocol_parse_oid(NULL, line + GIT_OID_HEXSZ + 1, GIT_OID_HEXSZ))
		return err_set("protocol error: expected 'old-id new-id refname', got a line of "
		               "%zu bytes",
		               len);
	for (size_t i = name_at; i < len; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			return err_set("protocol error: control character in a refname");
	if (len - name_at > RECEIVE_REFNAME_MAX) {
		err_set("refname too long (%zu bytes, the limit is %d): '%.32s...'", len - name_at,
		        RECEIVE_REFNAME_MAX, line + name_at);
		return RECEIVE_EREFUSED;
	}
	if (git_oid_fromstrn(&cmd->old_oid, line, GIT_OID_HEXSZ) < 0 ||
	    git_oid_fromstrn(&cmd->new_oid, line + GIT_OID_HEXSZ + 1, GIT_OID_HEXSZ) < 0)
		return err_set("protocol error: bad object id in a command");
	cmd->refname = strndup(line + name_at, len - name_at);
	if (!cmd->refname)
		return err_set("out of memory");
	cmd->error = NULL;
	return 0;
}

/* Reads the push options up to their flush into REQ, or with IS_SKIPPED
 * reads them only to pass over them (a refused request). */
static int read_push_options(struct receive_request *req, struct pkt_io *io, bool is_skipped)
{
	for (size_t n = 0;; n++) {
		const char *line;
		size_t len;
		char **grown;
		int r = pkt_read(io, &line, &len, true);

		if (r < 0)
			return -1;
		if (r == PKT_FLUSH)
			return 0;
		if (r != PKT_DATA)
			return err_set("protocol error: the push options did not end with a flush");
		if (n == RECEIVE_PUSH_OPTIONS_MAX)
			return err_set("protocol error: more than %d push options",
			               RECEIVE_PUSH_OPTIONS_MAX);
		if (is_skipped)
			continue;
		grown = realloc(req->push_options, (req->npush_options + 1) * sizeof(*grown));
		if (!grown)
			return err_set("out of memory");
		req->push_options = grown;
		grown[req->npush_options] = strndup(line, len);
		if (!grown[req->npush_options])
			return err_set("out of memory");
		req->npush_options++;
	}
}

/* Frees the commands kept so far; the request's capabilities stay. */
static void drop_commands(struct receive_request *req)
{
	for (size_t i = 0; i < req->ncmds; i++)
		free(req->cmds[i].refname);
	free(req->cmds);
	req->cmds = NULL;
	req->ncmds = 0;
}

int receive_request_read(struct receive_request *out, struct pkt_io *io,
                         const struct receive_opts *opts)
{
	char refusal[ERR_MAX] = "";
	size_t alloc = 0, nsent = 0;
	bool is_too_many = false;

	memset(out, 0, sizeof(*out));
	for (;;) {
		const char *line, *nul;
		size_t len;
		int r = pkt_read(io, &line, &len, true);

		if (r < 0)
			goto fail;
		if (r == PKT_EOF && !nsent)
			return 0;
		if (r == PKT_FLUSH)
			break;
		if (r != PKT_DATA) {
			err_set("protocol error: the command list ended without a flush");
			goto fail;
		}
		if (!nsent && len > 8 && !memcmp(line, "shallow ", 8)) {
			if (!protocol_parse_oid(NULL, line + 8, len - 8)) {
				err_set("protocol error: bad shallow line");
				goto fail;
			}
			continue;
		}
		if (nsent == RECEIVE_COMMANDS_MAX) {
			err_set("protocol error: more than %d commands", RECEIVE_COMMANDS_MAX);
			goto fail;
		}
		nsent++;
		/* once refused, the rest of the list is read only to be skipped, so
		 * that the client gets to read the answer */
		if (refusal[0] || is_too_many)
			continue;
		if (opts->max_ref_updates && nsent > opts->max_ref_updates) {
			is_too_many = true;
			drop_commands(out);
			continue;
		}
		if (out->ncmds == alloc) {
			size_t n = alloc ? 2 * alloc : 16;
			struct receive_command *grown;

			if (n > RECEIVE_COMMANDS_MAX)
				n = RECEIVE_COMMANDS_MAX;
			grown = realloc(out->cmds, n * sizeof(*grown));
			if (!grown) {
				err_set("out of memory");
				goto fail;
			}
			out->cmds = grown;
			alloc = n;
		}
		/* capabilities follow a NUL on the first command only */
		nul = memchr(line, '\0', len);
		if (nul && nsent > 1) {
			err_set("protocol error: NUL in a command");
			goto fail;
		}
		if (nul) {
			if (parse_capabilities(out, nul + 1, len - (size_t)(nul + 1 - line)) < 0)
				goto fail;
			len = (size_t)(nul - line);
		}
		r = parse_command(&out->cmds[out->ncmds], line, len);
		if (r == RECEIVE_EREFUSED) {
			snprintf(refusal, sizeof(refusal), "%s", err_msg());
			drop_commands(out);
			continue;
		}
		if (r < 0)
			goto fail;
		out->ncmds++;
	}
	if (out->wants_push_options && read_push_options(out, io, refusal[0] || is_too_many) < 0)
		goto fail;
	if (refusal[0] || is_too_many) {
		out->nrefused = nsent;
		if (is_too_many)
			err_set("too many ref updates (%zu, the limit is %zu)", nsent,
			        opts->max_ref_updates);
		else
			err_set("%s", refusal);
		return RECEIVE_EREFUSED;
	}
	return 0;
fail:
	receive_request_release(out);
	return -1;
}

static int compare_refnames(const void *a, const void *b)
{
	const struct receive_command *const *x = a, *const *y = b;

	return strcmp((*x)->refname, (*y)->refname);
}

void receive_request_check(struct receive_request *req, const struct receive_opts *opts)
{
	struct receive_command **sorted = NULL;

	for (size_t i = 0; i < req->ncmds; i++) {
		struct receive_command *cmd = &req->cmds[i];
		int is_valid = 0;

		if (!has_prefix(cmd->refname, "refs/") ||
		    git_reference_name_is_valid(&is_valid, cmd->refname) < 0 || !is_valid)
			cmd->error = "funny refname";
		else if (git_oid_is_zero(&cmd->new_oid) && opts->deny_deletes)
			cmd->error = "deletion prohibited";
	}
	if (req->ncmds < 2)
		return;
	sorted = calloc(req->ncmds, sizeof(*sorted));
	if (!sorted) {
		for (size_t i = 0; i < req->ncmds; i++)
			req->cmds[i].error = "out of memory";
		return;
	}
	for (size_t i = 0; i < req->ncmds; i++)
		sorted[i] = &req->cmds[i];
	qsort(sorted, req->ncmds, sizeof(*sorted), compare_refnames);
	for (size_t i = 1; i < req->ncmds; i++)
		if (!strcmp(sorted[i - 1]->refname, sorted[i]->refname))
			sorted[i - 1]->error = sorted[i]->error = "duplicate ref update";
	free(sorted);
}

/* Refuses deleting the branch HEAD names unless opts->allow_delete_current_branch:
 * HEAD would dangle and a clone would check out nothing. git's receive-pack
 * does the same by default, for bare repositories too (receive.denyDeleteCurrent
 * in git Documentation/config/receive.txt), with this reason and an error line
 * on side-band 2. */
static void check_delete_current(struct receive_request *req, git_repository *repo,
                                 struct pkt_io *io, const struct receive_opts *opts)
{
	git_reference *head = NULL;
	const char *current;

	if (opts->allow_delete_current_branch || git_reference_lookup(&head, repo, "HEAD") < 0)
		return;
	current = git_reference_type(head) == GIT_REFERENCE_SYMBOLIC
	              ? git_reference_symbolic_target(head)
	              : NULL;
	for (size_t i = 0; current && i < req->ncmds; i++) {
		struct receive_command *cmd = &req->cmds[i];

		if (cmd->error || !git_oid_is_zero(&cmd->new_oid) || strcmp(cmd->refname, current))
			continue;
		cmd->error = "deletion of the current branch prohibited";
		pkt_progressf(io, "error: refusing to delete the current branch: %s\n", current);
	}
	git_reference_free(head);
}

void receive_request_release(struct receive_request *req)
{
	for (size_t i = 0; i < req->ncmds; i++)
		free(req->cmds[i].refname);
	free(req->cmds);
	for (size_t i = 0; i < req->npush_options; i++)
		free(req->push_options[i]);
	free(req->push_options);
	memset(req, 0, sizeof(*req));
}

static size_t count_accepted(const struct receive_request *req)
{
	size_t n = 0;

	for (size_t i = 0; i < req->ncmds; i++)
		n += !req->cmds[i].error;
	return n;
}

static void reject_accepted(struct receive_request *req, const char *reason)
{
	for (size_t i = 0; i < req->ncmds; i++)
		if (!req->cmds[i].error)
			req->cmds[i].error = reason;
}

/* With "atomic" one refused command refuses them all
 * (gitprotocol-capabilities.txt "atomic"). */
static void reject_rest_if_atomic(struct receive_request *req)
{
	if (req->is_atomic && count_accepted(req) < req->ncmds)
		reject_accepted(req, "atomic push failed");
}

/* A packfile follows the commands unless every command is a delete
 * (gitprotocol-pack.txt). */
static bool needs_packfile(const struct receive_request *req)
{
	for (size_t i = 0; i < req->ncmds; i++)
		if (!git_oid_is_zero(&req->cmds[i].new_oid))
			return true;
	return false;
}

/* ---- quarantine and packfile ------------------------------------------ */

/* The quarantine of one push (git Documentation/git-receive-pack.txt,
 * "QUARANTINE ENVIRONMENT"): an object directory objects/incoming-XXXXXX in
 * the repository whose pack/ holds the received pack until the push is
 * accepted; then the pack moves to objects/pack and the directory goes. */
struct quarantine {
	char dir[QUARANTINE_PATH_MAX];         /* "" while there is none */
	char objects_dir[QUARANTINE_PATH_MAX]; /* the repository's, with a final '/' */
	char pack_name[64];                    /* "pack-HASH" once indexed */
	size_t nobjects;                       /* objects in the indexed pack */
	bool is_checked;                       /* index-pack checked its connectivity: */
	const char *problem;                   /* NULL, or why it is not connected (static) */
};

static void quarantine_remove(struct quarantine *q)
{
	if (!q->dir[0])
		return;
	if (fs_remove_tree(q->dir) < 0)
		log_warn("%s", err_msg());
	q->dir[0] = '\0';
}

static int quarantine_create(struct quarantine *q, git_repository *repo)
{
	git_buf objects = {0};
	char pack_dir[PATH_MAX];
	size_t n;
	int ret = -1;

	if (git_repository_item_path(&objects, repo, GIT_REPOSITORY_ITEM_OBJECTS) < 0) {
		err_set("cannot find the object directory: %s", repo_git_error());
		goto out;
	}
	n = strlen(objects.ptr);
	if ((size_t)snprintf(q->objects_dir, sizeof(q->objects_dir), "%s%s", objects.ptr,
	                     n && objects.ptr[n - 1] == '/' ? "" : "/") >= sizeof(q->objects_dir) ||
	    (size_t)snprintf(q->dir, sizeof(q->dir), "%sincoming-XXXXXX", q->objects_dir) >=
	        sizeof(q->dir)) {
		q->dir[0] = '\0';
		err_set("object directory path is too long");
		goto out;
	}
	if (!mkdtemp(q->dir)) {
		err_set("cannot create a quarantine in %s: %s", q->objects_dir, strerror(errno));
		q->dir[0] = '\0';
		goto out;
	}
	snprintf(pack_dir, sizeof(pack_dir), "%s/pack", q->dir);
	if (mkdir(pack_dir, 0700) < 0) {
		err_set("cannot create %s: %s", pack_dir, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	git_buf_dispose(&objects);
	return ret;
}

/* Where the packfile ends. The client sends nothing after the pack until it
 * has read report-status (git closes its side, libgit2 and JGit keep it
 * open), and git_indexer does not say where the pack ended, so: once the
 * header's object count has been parsed, the pack is complete when its last
 * 20 bytes are the SHA-1 of all bytes before them (gitformat-pack.txt,
 * "pack-*.pack files"). */
struct pack_end {
	EVP_MD_CTX *sha1;  /* over every byte but the last 20 seen */
	EVP_MD_CTX *check; /* scratch copy to finish */
	unsigned char header[PACK_HEADER_SIZE];
	unsigned char tail[GIT_OID_RAWSZ];
	size_t nheader, ntail;
};

static int pack_end_init(struct pack_end *pe)
{
	memset(pe, 0, sizeof(*pe));
	pe->sha1 = EVP_MD_CTX_new();
	pe->check = EVP_MD_CTX_new();
	if (!pe->sha1 || !pe->check || !EVP_DigestInit_ex(pe->sha1, EVP_sha1(), NULL))
		return err_set("cannot set up SHA-1");
	return 0;
}

static void pack_end_release(struct pack_end *pe)
{
	EVP_MD_CTX_free(pe->sha1);
	EVP_MD_CTX_free(pe->check);
	memset(pe, 0, sizeof(*pe));
}

static void pack_end_add(struct pack_end *pe, const unsigned char *p, size_t n)
{
	size_t keep = sizeof(pe->tail);

	if (pe->nheader < PACK_HEADER_SIZE) {
		size_t h = PACK_HEADER_SIZE - pe->nheader < n ? PACK_HEADER_SIZE - pe->nheader : n;

		memcpy(pe->header + pe->nheader, p, h);
		pe->nheader += h;
	}
	if (pe->ntail + n > keep) {
		size_t hash = pe->ntail + n - keep;
		size_t from_tail = hash < pe->ntail ? hash : pe->ntail;

		EVP_DigestUpdate(pe->sha1, pe->tail, from_tail);
		memmove(pe->tail, pe->tail + from_tail, pe->ntail - from_tail);
		pe->ntail -= from_tail;
		EVP_DigestUpdate(pe->sha1, p, hash - from_tail);
		p += hash - from_tail;
		n -= hash - from_tail;
	}
	memcpy(pe->tail + pe->ntail, p, n);
	pe->ntail += n;
}

/* Returns whether the last 20 bytes seen are the SHA-1 of all before. */
static bool pack_end_matches(struct pack_end *pe)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (pe->nheader < PACK_HEADER_SIZE || pe->ntail < sizeof(pe->tail))
		return false;
	if (!EVP_MD_CTX_copy_ex(pe->check, pe->sha1) || !EVP_DigestFinal_ex(pe->check, md, &mdlen))
		return false;
	return mdlen == sizeof(pe->tail) && !memcmp(md, pe->tail, mdlen);
}

/* Returns whether the pack is complete after RECEIVED objects were parsed. */
static bool pack_end_reached(struct pack_end *pe, unsigned int received)
{
	uint32_t count;

	if (pe->nheader < PACK_HEADER_SIZE)
		return false;
	count = (uint32_t)pe->header[8] << 24 | (uint32_t)pe->header[9] << 16 |
	        (uint32_t)pe->header[10] << 8 | pe->header[11];
	return received == count && pack_end_matches(pe);
}

/* Indexer progress on side-band 2, a few lines a second; git's receive-pack
 * shows the same "Resolving deltas" line from index-pack. */
struct progress {
	struct pkt_io *io;
	bool is_enabled;
	long long next_ms;
};

static int show_resolving(void *arg, uint32_t resolved, uint32_t total)
{
	struct progress *pr = arg;
	long long now;

	if (!pr->is_enabled || !resolved || resolved >= total)
		return 0;
	now = clock_now_ms();
	if (now < pr->next_ms)
		return 0;
	pr->next_ms = now + PROGRESS_INTERVAL_MS;
	if (pkt_progressf(pr->io, "Resolving deltas: %3u%% (%u/%u)\r",
	                  (unsigned)((unsigned long long)resolved * 100 / total), resolved,
	                  total) < 0)
		return -1;
	return 0;
}

static int on_progress(const git_indexer_progress *p, void *arg)
{
	return show_resolving(arg, p->indexed_deltas, p->total_deltas);
}

/* Sets err_msg() after the indexer returned GIT_RC, and REASON for the
 * client's "unpack REASON": the indexer's own words about the pack, nothing
 * that may name a server path. GIT_EUSER means the progress callback failed
 * and has set err_msg() itself. */
static void unpack_failed(char *reason, size_t size, int git_rc)
{
	const git_error *e = git_error_last();

	if (git_rc == GIT_EUSER) {
		snprintf(reason, size, "aborted");
		return;
	}
	err_set("unpack failed: %s", repo_git_error());
	if (e && (e->klass == GIT_ERROR_INDEXER || e->klass == GIT_ERROR_ZLIB))
		snprintf(reason, size, "%s", e->message);
	else
		snprintf(reason, size, "index-pack failed");
}

/* Indexes the pack stored at PACK_PATH into Q with libgit2's git_indexer,
 * which completes a thin pack from ODB, and removes PACK_PATH: the path of
 * a pack whose deltas index-pack could not all resolve (a base neither in
 * the pack nor in the repository), so that the refusal is libgit2's own
 * ("missing delta bases"). The quarantine's connectivity is left to
 * check_connectivity. Returns 0, or -1 with err_msg() and REASON. */
static int index_with_libgit2(struct quarantine *q, const char *pack_path, git_odb *odb,
                              struct progress *pr, struct receive_stats *stats, char *reason,
                              size_t reason_size)
{
	git_indexer_options io_opts;
	git_indexer_progress prog = {0};
	git_indexer *idx = NULL;
	char pack_dir[PATH_MAX];
	unsigned char *buf = NULL;
	int fd = -1, rc, ret = -1;

	snprintf(pack_dir, sizeof(pack_dir), "%s/pack", q->dir);
	git_indexer_options_init(&io_opts, GIT_INDEXER_OPTIONS_VERSION);
	io_opts.progress_cb = on_progress;
	io_opts.progress_cb_payload = pr;
	buf = malloc(PACK_CHUNK);
	fd = open(pack_path, O_RDONLY | O_CLOEXEC);
	if (!buf || fd < 0) {
		err_set("cannot read %s: %s", pack_path, buf ? strerror(errno) : "out of memory");
		goto out;
	}
	if (git_indexer_new(&idx, pack_dir, 0, odb, &io_opts) < 0) {
		err_set("cannot start the indexer: %s", repo_git_error());
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf, PACK_CHUNK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err_set("cannot read %s: %s", pack_path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		rc = git_indexer_append(idx, buf, (size_t)n, &prog);
		if (rc < 0) {
			unpack_failed(reason, reason_size, rc);
			goto out;
		}
	}
	rc = git_indexer_commit(idx, &prog);
	if (rc < 0) {
		unpack_failed(reason, reason_size, rc);
		goto out;
	}
	if (pr->is_enabled && prog.total_deltas &&
	    pkt_progressf(pr->io,
	                  "Resolving deltas: 100%% (%u/%u), completed with %u local objects.\n",
	                  prog.total_deltas, prog.total_deltas, prog.local_objects) < 0)
		goto out;
	snprintf(q->pack_name, sizeof(q->pack_name), "pack-%s", git_indexer_name(idx));
	q->nobjects = prog.indexed_objects;
	stats->pack_objects = prog.indexed_objects;
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	unlink(pack_path);
	git_indexer_free(idx);
	free(buf);
	return ret;
}

/* The stream's second stage, on a thread of its own: packfile_check and
 * the write to the quarantine, so that they overlap reading (and, over
 * SSH, decrypting) the next bytes. The reading thread hands over filled
 * buffers in order through STREAM_SLOTS slots. */
#define STREAM_SLOTS 4

struct stream {
	pthread_mutex_t lock;
	pthread_cond_t changed; /* a slot filled or emptied, or the state moved */
	unsigned char *slots[STREAM_SLOTS];
	size_t lens[STREAM_SLOTS];
	unsigned nfilled, next_fill, next_take;
	bool is_closed;      /* the reader hands over nothing more */
	bool has_failed;     /* the check refused or a write failed */
	bool is_check_done;  /* every entry checked: */
	uint64_t trailer_at; /* where the entries ended */
	struct packfile_check *check;
	int fd;
	char reason[200];    /* with has_failed: for the client */
	char cause[ERR_MAX]; /* with has_failed: for the log */
};

static void *stream_store(void *arg)
{
	struct stream *s = arg;
	bool has_failed = false;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		unsigned k = s->next_take;

		while (!s->nfilled && !s->is_closed)
			pthread_cond_wait(&s->changed, &s->lock);
		if (!s->nfilled)
			break;
		pthread_mutex_unlock(&s->lock);
		/* sizes are checked before anything inflates whole objects (as
		 * their declared size) or hashes them under their declared size;
		 * after a failure the rest is only taken, so the reader never
		 * waits on a slot */
		if (!has_failed && packfile_check_add(s->check, s->slots[k], s->lens[k]) < 0) {
			snprintf(s->reason, sizeof(s->reason), "%s", s->check->reason);
			snprintf(s->cause, sizeof(s->cause), "unpack failed: %s", s->check->reason);
			has_failed = true;
		} else if (!has_failed && fs_write_all(s->fd, s->slots[k], s->lens[k]) < 0) {
			snprintf(s->reason, sizeof(s->reason), "index-pack failed");
			snprintf(s->cause, sizeof(s->cause), "cannot store the pack: %s",
			         strerror(errno));
			has_failed = true;
		}
		pthread_mutex_lock(&s->lock);
		s->has_failed = has_failed;
		s->is_check_done = packfile_check_is_done(s->check);
		s->trailer_at = s->check->entry_offset;
		s->next_take = (k + 1) % STREAM_SLOTS;
		s->nfilled--;
		pthread_cond_broadcast(&s->changed);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* Waits until the store thread has taken every filled slot, or failed.
 * Called with s->lock held. */
static void stream_drain(struct stream *s)
{
	while (s->nfilled && !s->has_failed)
		pthread_cond_wait(&s->changed, &s->lock);
}

/* Reads the pack from IO into FD through CHECK and PE, reading on this
 * thread and checking and storing on another. The pack ends when its last
 * 20 bytes are the SHA-1 of all before them and the check has seen every
 * entry (the client sends nothing more until it has read report-status).
 * A trailer that does not match is found at the end of the input, or
 * before the next read once the check has caught up; a client that keeps
 * its side open after such a pack may otherwise wait for the idle timeout,
 * as when one thread read and checked. Returns 0 when the whole pack is
 * in, or -1 with err_msg() and REASON. */
static int stream_pack(struct pkt_io *io, int fd, struct packfile_check *check, struct pack_end *pe,
                       const struct receive_opts *opts, struct receive_stats *stats, char *reason,
                       size_t reason_size)
{
	struct stream s;
	pthread_t thread;
	bool is_started = false, is_complete = false, is_done = false;
	int ret = -1;

	memset(&s, 0, sizeof(s));
	pthread_mutex_init(&s.lock, NULL);
	pthread_cond_init(&s.changed, NULL);
	s.check = check;
	s.fd = fd;
	for (int i = 0; i < STREAM_SLOTS; i++)
		if (!(s.slots[i] = malloc(PACK_CHUNK))) {
			err_set("out of memory");
			goto out;
		}
	if (pthread_create(&thread, NULL, stream_store, &s) != 0) {
		err_set("cannot start a thread");
		goto out;
	}
	is_started = true;
	for (;;) {
		uint64_t trailer_at;
		ssize_t n;
		bool has_failed;

		pthread_mutex_lock(&s.lock);
		while (s.nfilled == STREAM_SLOTS && !s.has_failed)
			pthread_cond_wait(&s.changed, &s.lock);
		has_failed = s.has_failed;
		is_done = s.is_check_done;
		trailer_at = s.trailer_at;
		pthread_mutex_unlock(&s.lock);
		/* the entries ended and the 20 bytes after them are in: they are
		 * the trailer, and they did not match (else the pack had ended) */
		if (has_failed || (is_done && stats->pack_bytes >= trailer_at + GIT_OID_RAWSZ))
			break;
		n = pkt_read_raw(io, s.slots[s.next_fill], PACK_CHUNK);
		if (n < 0) {
			snprintf(reason, reason_size, "read error");
			goto out;
		}
		if (n == 0)
			break;
		stats->pack_bytes += (unsigned long long)n;
		if (opts->max_pack_bytes && stats->pack_bytes > opts->max_pack_bytes) {
			snprintf(reason, reason_size, "pack exceeds maximum allowed size");
			err_set("pack exceeds maximum allowed size (%llu bytes)",
			        opts->max_pack_bytes);
			goto out;
		}
		pack_end_add(pe, s.slots[s.next_fill], (size_t)n);
		pthread_mutex_lock(&s.lock);
		s.lens[s.next_fill] = (size_t)n;
		s.next_fill = (s.next_fill + 1) % STREAM_SLOTS;
		s.nfilled++;
		pthread_cond_broadcast(&s.changed);
		/* the last 20 bytes are the SHA-1 of all before them: the end,
		 * if the check agrees once it has caught up */
		if (pack_end_matches(pe)) {
			stream_drain(&s);
			if (!s.has_failed && s.is_check_done &&
			    pack_end_reached(pe, check->nchecked)) {
				pthread_mutex_unlock(&s.lock);
				is_complete = true;
				break;
			}
		}
		pthread_mutex_unlock(&s.lock);
	}
	pthread_mutex_lock(&s.lock);
	stream_drain(&s);
	s.is_closed = true;
	pthread_cond_broadcast(&s.changed);
	pthread_mutex_unlock(&s.lock);
	pthread_join(thread, NULL);
	is_started = false;
	if (s.has_failed) {
		snprintf(reason, reason_size, "%s", s.reason);
		err_set("%s", s.cause);
		goto out;
	}
	if (!is_complete && packfile_check_is_done(check) && pack_end_reached(pe, check->nchecked))
		is_complete = true;
	if (!is_complete) {
		snprintf(reason, reason_size, "%s",
		         packfile_check_is_done(check) ? "pack is corrupted (SHA1 mismatch)"
		                                       : "pack is truncated");
		err_set("unpack failed: %s", reason);
		goto out;
	}
	ret = 0;
out:
	if (is_started) {
		pthread_mutex_lock(&s.lock);
		s.is_closed = true;
		pthread_cond_broadcast(&s.changed);
		pthread_mutex_unlock(&s.lock);
		pthread_join(thread, NULL);
	}
	for (int i = 0; i < STREAM_SLOTS; i++)
		free(s.slots[i]);
	pthread_cond_destroy(&s.changed);
	pthread_mutex_destroy(&s.lock);
	return ret;
}

/* Streams the packfile from IO into Q (created here): every byte passes
 * packfile_check and pack_end and is stored in the quarantine, then
 * indexpack_run indexes it on every CPU (completing a thin pack from REPO)
 * and checks its connectivity; a pack with a delta base it cannot find goes
 * to index_with_libgit2. Returns 0, or -1 with err_msg() and the client's
 * reason in REASON. */
static int receive_packfile(struct quarantine *q, struct pkt_io *io, git_repository *repo,
                            const struct receive_request *req, const struct receive_opts *opts,
                            struct receive_stats *stats, char *reason, size_t reason_size)
{
	struct indexpack_opts ip_opts = {0};
	struct indexpack_result res;
	git_odb *odb = NULL;
	git_oid *tips = NULL;
	struct pack_end pe;
	struct packfile_check check;
	struct progress pr = {io, io->sideband && !req->is_quiet, 0};
	char pack_dir[PATH_MAX], pack_path[PATH_MAX] = "";
	int fd = -1, rc, ret = -1;

	snprintf(reason, reason_size, "index-pack failed");
	memset(&pe, 0, sizeof(pe));
	memset(&check, 0, sizeof(check));
	if (packfile_check_init(&check, opts->max_object_bytes) < 0 || pack_end_init(&pe) < 0 ||
	    quarantine_create(q, repo) < 0)
		goto out;
	packfile_check_keep_offsets(&check);
	snprintf(pack_dir, sizeof(pack_dir), "%s/pack", q->dir);
	snprintf(pack_path, sizeof(pack_path), "%s/pack/tmp_pack_XXXXXX", q->dir);
	fd = mkostemp(pack_path, O_CLOEXEC);
	if (fd < 0) {
		err_set("cannot create %s: %s", pack_path, strerror(errno));
		pack_path[0] = '\0';
		goto out;
	}
	if (git_repository_odb(&odb, repo) < 0) {
		err_set("cannot open the object database: %s", repo_git_error());
		goto out;
	}
	if (stream_pack(io, fd, &check, &pe, opts, stats, reason, reason_size) < 0)
		goto out;
	if (close(fd) < 0) {
		fd = -1;
		err_set("cannot write %s: %s", pack_path, strerror(errno));
		goto out;
	}
	fd = -1;
	if (!check.nobjects) {
		/* an empty pack: the new tips are all in the repository */
		q->is_checked = true;
		ret = 0;
		goto out;
	}
	tips = calloc(req->ncmds, sizeof(*tips));
	if (!tips) {
		err_set("out of memory");
		goto out;
	}
	for (size_t i = 0; i < req->ncmds; i++)
		if (!req->cmds[i].error && !git_oid_is_zero(&req->cmds[i].new_oid))
			git_oid_cpy(&tips[ip_opts.ntips++], &req->cmds[i].new_oid);
	ip_opts.odb = odb;
	ip_opts.tips = tips;
	ip_opts.progress = show_resolving;
	ip_opts.progress_arg = &pr;
	rc = indexpack_run(&res, pack_dir, pack_path, check.offsets, check.noffsets, &ip_opts);
	if (rc == INDEXPACK_ETHIN) {
		log_debug("%s; indexing the pack with libgit2", err_msg());
		rc = index_with_libgit2(q, pack_path, odb, &pr, stats, reason, reason_size);
		pack_path[0] = '\0';
		ret = rc;
		goto out;
	}
	if (rc < 0) {
		snprintf(reason, reason_size, "%s", res.reason);
		goto out;
	}
	pack_path[0] = '\0'; /* renamed */
	if (pr.is_enabled && res.ndeltas && !res.nlocal &&
	    pkt_progressf(io, "Resolving deltas: 100%% (%u/%u), done.\n", res.ndeltas,
	                  res.ndeltas) < 0)
		goto out;
	if (pr.is_enabled && res.ndeltas && res.nlocal &&
	    pkt_progressf(io, "Resolving deltas: 100%% (%u/%u), completed with %u local objects.\n",
	                  res.ndeltas, res.ndeltas, res.nlocal) < 0)
		goto out;
	snprintf(q->pack_name, sizeof(q->pack_name), "%s", res.pack_name);
	q->nobjects = res.nobjects;
	if (res.is_closed) {
		/* the pack is exactly what the pushed tips reach: a clone of them
		 * can be sent this pack as it is (packclosure.h); the marker
		 * moves in with the pack, and a clone checks that the tips are
		 * still reached before it trusts it */
		char packfile[PATH_MAX];

		snprintf(packfile, sizeof(packfile), "%.4000s/%.60s.pack", pack_dir, res.pack_name);
		if (packclosure_write(packfile, tips, ip_opts.ntips) < 0)
			log_warn("%s", err_msg());
	}
	q->is_checked = true;
	q->problem = res.problem;
	stats->pack_objects = res.nobjects;
	stats->pack_is_closed = res.is_closed;
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	if (pack_path[0])
		unlink(pack_path);
	free(tips);
	git_odb_free(odb);
	pack_end_release(&pe);
	packfile_check_release(&check);
	return ret;
}

/* One file synced by sync_thread: its path, and errno of a failure (0 ok). */
struct sync_job {
	char path[PATH_MAX];
	int error;
};

/* Opens and fsyncs job->path, setting job->error. */
static void *sync_thread(void *arg)
{
	struct sync_job *job = arg;
	int fd = open(job->path, O_RDONLY | O_CLOEXEC);

	job->error = fd < 0 || fsync(fd) < 0 ? errno : 0;
	if (fd >= 0)
		close(fd);
	return NULL;
}

/* Moves the quarantined pack's closure marker (packclosure.h), when
 * index-pack proved one, in beside the pack, after its .idx. Returns 0 (also
 * when there is none) or -1 with err_msg(). */
static int move_closure(const struct quarantine *q)
{
	char from[PATH_MAX], to[PATH_MAX];

	snprintf(from, sizeof(from), "%s/pack/%s.closure", q->dir, q->pack_name);
	snprintf(to, sizeof(to), "%spack/%s.closure", q->objects_dir, q->pack_name);
	if (rename(from, to) < 0 && errno != ENOENT)
		return err_set("cannot move %s to %s: %s", from, to, strerror(errno));
	return 0;
}

/* Moves the quarantined pack into objects/pack (the .idx last, since readers
 * find packs by their index), both synced first as git does by default
 * (core.fsync "committed"), and lets REPO see it. The two files are synced
 * at once, the .pack on a thread of its own: on a disk whose cache flush
 * costs milliseconds, two flushes in flight together cost about one, and
 * neither file is visible before both are synced. A pack of the same name
 * is the same pack (the name is its checksum) and stays as it is: like
 * git's finalize_object_file(), link and take EEXIST as done, so a file a
 * reader may have open is never replaced. Returns 0 or -1. */
static int quarantine_migrate(struct quarantine *q, git_repository *repo)
{
	static const char *const exts[] = {".pack", ".idx"};
	struct sync_job jobs[2];
	pthread_t thread;
	bool is_threaded;
	git_odb *odb = NULL;
	int ret = -1;

	if (!q->nobjects)
		return 0;
	for (size_t i = 0; i < 2; i++) {
		snprintf(jobs[i].path, sizeof(jobs[i].path), "%s/pack/%s%s", q->dir, q->pack_name,
		         exts[i]);
		jobs[i].error = 0;
	}
	/* without a thread, the .pack is synced after the .idx */
	is_threaded = pthread_create(&thread, NULL, sync_thread, &jobs[0]) == 0;
	sync_thread(&jobs[1]);
	if (is_threaded)
		pthread_join(thread, NULL);
	else
		sync_thread(&jobs[0]);
	for (size_t i = 0; i < 2; i++) {
		if (jobs[i].error) {
			err_set("cannot sync %s: %s", jobs[i].path, strerror(jobs[i].error));
			goto out;
		}
	}
	for (size_t i = 0; i < 2; i++) {
		char to[PATH_MAX];

		snprintf(to, sizeof(to), "%spack/%s%s", q->objects_dir, q->pack_name, exts[i]);
		/* a file system without hard links gets a rename */
		if (link(jobs[i].path, to) < 0 && errno != EEXIST && rename(jobs[i].path, to) < 0) {
			err_set("cannot move %s to %s: %s", jobs[i].path, to, strerror(errno));
			goto out;
		}
	}
	if (move_closure(q) < 0)
		goto out;
	if (git_repository_odb(&odb, repo) < 0 || git_odb_refresh(odb) < 0) {
		err_set("cannot refresh the object database: %s", repo_git_error());
		goto out;
	}
	ret = 0;
out:
	git_odb_free(odb);
	return ret;
}

/* ---- connectivity ----------------------------------------------------- */

/* Every object of the quarantined pack must have what it names in the pack
 * or the repository: a commit its tree and parents, a tree its entries but
 * gitlinks, a tag its target. The repository only ever received packs that
 * passed this check, so it is closed, and one pass over the pack is enough
 * (git's receive-pack walks from the new tips with rev-list instead).
 *
 * The pass reads the pack's own files: the .idx answers "is it in the pack"
 * without locks or allocations, the object headers in the .pack give each
 * object's type without inflating anything (so blobs are skipped unread),
 * and reading in pack order lets libgit2's delta-base cache hit. Objects
 * are read through the pack backend itself: the odb layer would hash each
 * one again (the indexer just did) and cache it. */

/* Returns the type of the object at .idx position POS of PACK (following
 * deltas to their base and remembering the answer along the chain in
 * TYPES, by position: git_object_t, 0 unknown), or GIT_OBJECT_INVALID for a
 * malformed chain or a base that is not in the pack. */
static git_object_t pack_object_type(const struct packfile *pack, unsigned char *types,
                                     uint32_t pos)
{
	struct packfile_entry e;
	uint32_t cur = pos;
	int64_t base = 0;
	int type = GIT_OBJECT_INVALID;

	for (uint32_t steps = 0; !types[cur]; steps++) {
		if (steps > pack->idx.nobjects || packfile_object_header(&e, &base, pack, cur) < 0)
			return GIT_OBJECT_INVALID;
		type = e.type;
		if (type != PACKFILE_OFS_DELTA && type != PACKFILE_REF_DELTA)
			break;
		if (base < 0)
			return GIT_OBJECT_INVALID;
		cur = (uint32_t)base;
	}
	if (types[cur])
		type = types[cur];
	for (cur = pos; !types[cur]; cur = (uint32_t)base) {
		types[cur] = (unsigned char)type;
		if (packfile_object_header(&e, &base, pack, cur) < 0 || base < 0 ||
		    (e.type != PACKFILE_OFS_DELTA && e.type != PACKFILE_REF_DELTA))
			break;
	}
	return (git_object_t)type;
}

struct connectivity {
	struct packfile pack; /* the quarantined pack */
	unsigned char *types; /* by .idx position: git_object_t, 0 unknown */
	const char *idx_path; /* its .idx, opened by each checking thread */
	git_odb *repo;        /* the repository, without the quarantine */
	pthread_mutex_t lock; /* guards next and problem while threads run */
	uint32_t next;        /* first position in pack order not yet taken */
	const char *problem;
};

static bool has_object(struct connectivity *c, const git_oid *id)
{
	return packfile_idx_find(&c->pack.idx, id->id) >= 0 || git_odb_exists(c->repo, id) == 1;
}

static int require_object(const git_oid *id, void *arg)
{
	return has_object(arg, id) ? 0 : 1;
}

/* Returns NULL when an object's references are all present, else the
 * problem. */
static const char *check_references(struct connectivity *c, git_object_t type, const char *p,
                                    size_t len)
{
	int r = indexpack_each_name(type, p, len, require_object, c);

	return r < 0 ? "invalid object in pack" : r ? "missing necessary objects" : NULL;
}

/* Takes the next CHECK_BLOCK positions of pack order into [*FROM, *TO), or
 * returns false when none are left or a problem was found. */
static bool take_block(struct connectivity *c, uint32_t *from, uint32_t *to)
{
	bool has_block;

	pthread_mutex_lock(&c->lock);
	has_block = !c->problem && c->next < c->pack.idx.nobjects;
	if (has_block) {
		*from = c->next;
		*to = c->pack.idx.nobjects - c->next > CHECK_BLOCK ? c->next + CHECK_BLOCK
		                                                   : c->pack.idx.nobjects;
		c->next = *to;
	}
	pthread_mutex_unlock(&c->lock);
	return has_block;
}

static void set_problem(struct connectivity *c, const char *problem)
{
	pthread_mutex_lock(&c->lock);
	if (!c->problem)
		c->problem = problem;
	pthread_mutex_unlock(&c->lock);
}

/* One checking thread: blocks of pack order, read through its own pack
 * backend (a backend is not shared between threads), until none are left. */
static void *check_blocks(void *arg)
{
	struct connectivity *c = arg;
	git_odb_backend *backend = NULL;
	uint32_t from, to;

	if (git_odb_backend_one_pack(&backend, c->idx_path) < 0) {
		log_error("cannot open the quarantined pack: %s", repo_git_error());
		set_problem(c, "invalid object in pack");
		return NULL;
	}
	while (take_block(c, &from, &to)) {
		for (uint32_t k = from; k < to; k++) {
			uint32_t pos = c->pack.order[k];
			git_object_t type = (git_object_t)c->types[pos];
			const char *problem;
			git_oid id;
			void *data = NULL;
			size_t len = 0;

			if (type == GIT_OBJECT_BLOB)
				continue;
			git_oid_fromraw(&id, packfile_idx_id(&c->pack.idx, pos));
			if (backend->read(&data, &len, &type, backend, &id) < 0) {
				log_warn("cannot read a quarantined object: %s", repo_git_error());
				set_problem(c, "invalid object in pack");
				goto out;
			}
			problem = check_references(c, type, data, len);
			git_odb_backend_data_free(backend, data);
			if (problem) {
				set_problem(c, problem);
				goto out;
			}
		}
	}
out:
	backend->free(backend);
	return NULL;
}

/* One pass over the pack in pack order; sets c->problem. Every object's
 * type comes first, from the entry headers alone; then the objects are read
 * and checked by up to CHECK_THREADS threads (one per online CPU), each
 * taking blocks of pack order so that the delta-base cache still hits, as
 * git's index-pack resolves deltas on every core. */
static void check_pack(struct connectivity *c)
{
	pthread_t threads[CHECK_THREADS];
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int nthreads = ncpu < 1 ? 1 : ncpu > CHECK_THREADS ? CHECK_THREADS : (int)ncpu;
	int started = 0;

	/* in pack order, dropping the pages behind (a delta's base comes
	 * before it), so that the pass does not keep the whole pack resident */
	for (uint32_t k = 0, dropped = 0; k < c->pack.idx.nobjects; k++) {
		if (pack_object_type(&c->pack, c->types, c->pack.order[k]) == GIT_OBJECT_INVALID) {
			c->problem = "invalid object in pack";
			return;
		}
		if (c->pack.offsets[k] - c->pack.offsets[dropped] >= CHECK_DROP_BYTES) {
			packfile_drop_pages(&c->pack, c->pack.offsets[dropped], c->pack.offsets[k]);
			dropped = k;
		}
	}
	if (c->pack.idx.nobjects <= CHECK_BLOCK)
		nthreads = 1;
	c->next = 0;
	for (int i = 1; i < nthreads; i++) {
		if (pthread_create(&threads[i], NULL, check_blocks, c) != 0)
			break; /* fewer threads: the others take its blocks */
		started++;
	}
	check_blocks(c);
	for (int i = 1; i <= started; i++)
		pthread_join(threads[i], NULL);
}

/* Checks the quarantined pack (if any) and that every accepted command's
 * new tip exists; refuses what fails. */
static void check_connectivity(struct receive_request *req, const struct quarantine *q,
                               git_repository *repo)
{
	struct connectivity c;
	char idx_path[PATH_MAX], pack_path[PATH_MAX];

	memset(&c, 0, sizeof(c));
	pthread_mutex_init(&c.lock, NULL);
	if (git_repository_odb(&c.repo, repo) < 0) {
		log_error("cannot open the object database: %s", repo_git_error());
		c.problem = "missing necessary objects";
		goto out;
	}
	if (q->is_checked) {
		/* index-pack checked the pack's objects as it read them */
		c.problem = q->problem;
		if (c.problem)
			goto out;
	}
	if (q->nobjects) {
		snprintf(idx_path, sizeof(idx_path), "%s/pack/%s.idx", q->dir, q->pack_name);
		snprintf(pack_path, sizeof(pack_path), "%s/pack/%s.pack", q->dir, q->pack_name);
		if (packfile_open(&c.pack, idx_path, pack_path) < 0 ||
		    (!q->is_checked && packfile_load_order(&c.pack) < 0)) {
			log_error("%s", err_msg());
			c.problem = "invalid object in pack";
			goto out;
		}
		c.types = calloc(c.pack.idx.nobjects ? c.pack.idx.nobjects : 1, 1);
		if (!c.types) {
			log_error("out of memory");
			c.problem = "invalid object in pack";
			goto out;
		}
		c.idx_path = idx_path;
		if (!q->is_checked)
			check_pack(&c);
		if (c.problem)
			goto out;
	}
	for (size_t i = 0; i < req->ncmds; i++) {
		struct receive_command *cmd = &req->cmds[i];

		if (!cmd->error && !git_oid_is_zero(&cmd->new_oid) &&
		    !has_object(&c, &cmd->new_oid))
			cmd->error = "missing necessary objects";
	}
out:
	if (c.problem)
		reject_accepted(req, c.problem);
	pthread_mutex_destroy(&c.lock);
	packfile_close(&c.pack);
	free(c.types);
	git_odb_free(c.repo);
}

/* ---- packing refs ------------------------------------------------------ */

/* Adds to *COUNT the loose ref files under DIR (recursively), stopping once
 * it passes LIMIT. */
static void count_loose_refs(const char *dir, size_t *count, size_t limit)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return;
	while (*count <= limit && (e = readdir(d))) {
		char path[PATH_MAX];

		if (e->d_name[0] == '.')
			continue;
		if (e->d_type == DT_REG) {
			(*count)++;
			continue;
		}
		if (e->d_type == DT_DIR &&
		    snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) < (int)sizeof(path))
			count_loose_refs(path, count, limit);
	}
	closedir(d);
}

/* Packs REPO's refs into packed-refs when more than LOOSE_REFS_MAX are loose
 * (libgit2's git_refdb_compress; a loose ref is removed only under its lock
 * and if unchanged, so a concurrent push loses nothing). The push is done
 * by then: a failure is logged, not reported. */
static void pack_refs_if_many(git_repository *repo)
{
	char dir[PATH_MAX];
	size_t count = 0;
	git_refdb *refdb = NULL;

	if (snprintf(dir, sizeof(dir), "%srefs", git_repository_commondir(repo)) >=
	    (int)sizeof(dir))
		return;
	count_loose_refs(dir, &count, LOOSE_REFS_MAX);
	if (count <= LOOSE_REFS_MAX)
		return;
	if (git_repository_refdb(&refdb, repo) < 0 || git_refdb_compress(refdb) < 0)
		log_warn("cannot pack the refs: %s", repo_git_error());
	git_refdb_free(refdb);
}

/* ---- policy, pre-receive, ref updates --------------------------------- */

/* Opens *OUT as a second handle on REPO whose objects include the
 * quarantine's, for the checks and the pre-receive point; REPO itself never
 * sees quarantined objects, so a refused push leaves no trace in it. */
static int open_with_quarantine(git_repository **out, git_repository *repo,
                                const struct quarantine *q)
{
	git_odb *odb = NULL;
	int ret = -1;

	*out = NULL;
	if (git_repository_open_bare(out, git_repository_path(repo)) < 0 ||
	    git_repository_odb(&odb, *out) < 0 || git_odb_add_disk_alternate(odb, q->dir) < 0) {
		err_set("cannot open the repository with its quarantine: %s", repo_git_error());
		git_repository_free(*out);
		*out = NULL;
		goto out;
	}
	ret = 0;
out:
	git_odb_free(odb);
	return ret;
}

/* Per-command rules that need the objects: a branch must point at a commit,
 * and with deny_non_fast_forwards a branch may only move forward (git checks
 * refs/heads/ only, as here). */
static void check_commands(struct receive_request *req, git_repository *repo,
                           const struct receive_opts *opts)
{
	git_odb *odb = NULL;

	if (git_repository_odb(&odb, repo) < 0) {
		reject_accepted(req, "missing necessary objects");
		return;
	}
	for (size_t i = 0; i < req->ncmds; i++) {
		struct receive_command *cmd = &req->cmds[i];
		bool is_branch = has_prefix(cmd->refname, "refs/heads/");
		git_object_t type;
		size_t size;

		if (cmd->error || git_oid_is_zero(&cmd->new_oid))
			continue;
		if (git_odb_read_header(&size, &type, odb, &cmd->new_oid) < 0)
			cmd->error = "missing necessary objects";
		else if (is_branch && type != GIT_OBJECT_COMMIT)
			cmd->error = "not a commit";
		else if (is_branch && opts->deny_non_fast_forwards &&
		         !git_oid_is_zero(&cmd->old_oid) &&
		         !git_oid_equal(&cmd->old_oid, &cmd->new_oid) &&
		         git_graph_descendant_of(repo, &cmd->new_oid, &cmd->old_oid) != 1)
			cmd->error = "non-fast-forward";
	}
	git_odb_free(odb);
}

/* Calls the pre-receive point with the accepted commands; a non-zero return
 * refuses them all with its message, kept in MESSAGE. */
static void run_pre_receive(struct receive_request *req, const struct receive_opts *opts,
                            git_repository *repo, struct pkt_io *io, const char *quarantine_dir,
                            char *message, size_t message_size)
{
	struct receive_check check = {
	    repo, io, NULL, 0, req->push_options, req->npush_options, quarantine_dir};
	struct receive_command *cmds;
	size_t n = count_accepted(req), j = 0;

	if (!opts->pre_receive || !n)
		return;
	cmds = calloc(n, sizeof(*cmds));
	if (!cmds) {
		reject_accepted(req, "out of memory");
		return;
	}
	for (size_t i = 0; i < req->ncmds; i++)
		if (!req->cmds[i].error)
			cmds[j++] = req->cmds[i];
	check.cmds = cmds;
	check.ncmds = n;
	message[0] = '\0';
	if (opts->pre_receive(opts->pre_receive_arg, &check, message, message_size)) {
		message[message_size - 1] = '\0';
		if (!message[0])
			snprintf(message, message_size, "pre-receive hook declined");
		reject_accepted(req, message);
	} else {
		j = 0;
		for (size_t i = 0; i < req->ncmds; i++)
			if (!req->cmds[i].error)
				req->cmds[i].error = cmds[j++].error;
	}
	free(cmds);
}

/* Returns whether REFNAME currently has the value OLD (zero: must not
 * exist), setting *EXISTS. Called with the ref locked. */
static bool ref_is_at(git_repository *repo, const char *refname, const git_oid *old, bool *exists)
{
	git_reference *ref = NULL;
	bool is_at = false;
	int r = git_reference_lookup(&ref, repo, refname);

	*exists = r == 0;
	if (r == GIT_ENOTFOUND)
		is_at = git_oid_is_zero(old);
	else if (r == 0 && git_reference_type(ref) == GIT_REFERENCE_DIRECT)
		is_at = git_oid_equal(git_reference_target(ref), old);
	git_reference_free(ref);
	return is_at;
}

static int new_signature(git_signature **out, const struct receive_opts *opts)
{
	if (opts->reflog_name && opts->reflog_email &&
	    git_signature_now(out, opts->reflog_name, opts->reflog_email) == 0)
		return 0;
	/* a key comment may hold what a signature cannot ('<', '>', nothing) */
	if (git_signature_now(out, "slipway", "slipway") == 0)
		return 0;
	return err_set("cannot make the reflog identity: %s", repo_git_error());
}

/* Moves the accepted commands' refs: each ref is locked and compared with
 * its command's old id (compare-and-swap: a client that lost a race sees
 * "failed to lock", never a silent overwrite); once some update is sure, the
 * quarantined objects move in; then the updates are committed. With
 * "atomic" one transaction holds every ref, else each has its own. */
static void update_refs(struct receive_request *req, git_repository *repo, struct quarantine *q,
                        const struct receive_opts *opts, struct receive_stats *stats)
{
	struct update {
		git_transaction *tx;
		bool exists;
	} *up = NULL;
	git_transaction *shared = NULL;
	git_signature *sig = NULL;
	bool needs_objects = false;

	if (!count_accepted(req))
		return;
	up = calloc(req->ncmds, sizeof(*up));
	if (!up) {
		log_error("out of memory");
		reject_accepted(req, "failed to update ref");
		goto out;
	}
	if (new_signature(&sig, opts) < 0) {
		log_error("%s", err_msg());
		reject_accepted(req, "failed to update ref");
		goto out;
	}
	if (req->is_atomic && git_transaction_new(&shared, repo) < 0) {
		log_error("cannot start a transaction: %s", repo_git_error());
		reject_accepted(req, "failed to update ref");
		goto out;
	}
	for (size_t i = 0; i < req->ncmds; i++) {
		struct receive_command *cmd = &req->cmds[i];
		git_transaction *tx = shared;

		if (cmd->error)
			continue;
		if (!tx && git_transaction_new(&up[i].tx, repo) < 0) {
			cmd->error = "failed to update ref";
			continue;
		}
		tx = tx ? tx : up[i].tx;
		if (git_transaction_lock_ref(tx, cmd->refname) < 0 ||
		    !ref_is_at(repo, cmd->refname, &cmd->old_oid, &up[i].exists)) {
			cmd->error = "failed to lock";
		}
	}
	reject_rest_if_atomic(req);
	for (size_t i = 0; i < req->ncmds; i++)
		needs_objects |= !req->cmds[i].error && !git_oid_is_zero(&req->cmds[i].new_oid);
	if (needs_objects && quarantine_migrate(q, repo) < 0) {
		log_error("%s", err_msg());
		for (size_t i = 0; i < req->ncmds; i++)
			if (!git_oid_is_zero(&req->cmds[i].new_oid) && !req->cmds[i].error)
				req->cmds[i].error = "failed to move objects into the repository";
		reject_rest_if_atomic(req);
	}
	for (size_t i = 0; i < req->ncmds; i++) {
		struct receive_command *cmd = &req->cmds[i];
		git_transaction *tx = shared ? shared : up[i].tx;
		int r = 0;

		if (cmd->error)
			continue;
		if (!git_oid_is_zero(&cmd->new_oid))
			r = git_transaction_set_target(tx, cmd->refname, &cmd->new_oid, sig,
			                               "push");
		else if (up[i].exists)
			r = git_transaction_remove(tx, cmd->refname);
		if (r == 0 && !shared)
			r = git_transaction_commit(tx);
		if (r < 0) {
			log_error("cannot update %s: %s", cmd->refname, repo_git_error());
			cmd->error = "failed to update ref";
		}
	}
	reject_rest_if_atomic(req);
	if (shared && count_accepted(req) && git_transaction_commit(shared) < 0) {
		/* libgit2 writes the locked refs one by one: some may have moved */
		log_error("cannot commit the atomic ref update: %s", repo_git_error());
		reject_accepted(req, "failed to update ref");
	}
	for (size_t i = 0; i < req->ncmds; i++) {
		const struct receive_command *cmd = &req->cmds[i];

		if (cmd->error)
			continue;
		if (git_oid_is_zero(&cmd->new_oid) ? up[i].exists
		                                   : !git_oid_equal(&cmd->old_oid, &cmd->new_oid))
			stats->nupdated++;
	}
out:
	if (up)
		for (size_t i = 0; i < req->ncmds; i++)
			git_transaction_free(up[i].tx);
	free(up);
	git_transaction_free(shared);
	git_signature_free(sig);
}

/* A first push to a repository whose HEAD names a branch that was not
 * pushed (HEAD -> main, but only master came) leaves clones with nothing to
 * check out: point HEAD at main, else master, else the first branch the
 * push created. IS_HEAD_BORN: HEAD's branch existed at the advertisement;
 * then, unless this push deleted a ref, it still does, and HEAD is not
 * resolved again (that would read packed-refs once more). */
static void fix_unborn_head(git_repository *repo, const struct receive_request *req,
                            bool is_head_born)
{
	const char *candidates[] = {"refs/heads/main", "refs/heads/master", NULL};
	git_reference *ref = NULL;
	bool has_deletion = false;

	for (size_t i = 0; i < req->ncmds; i++)
		has_deletion |= !req->cmds[i].error && git_oid_is_zero(&req->cmds[i].new_oid);
	if ((is_head_born && !has_deletion) || git_repository_head_unborn(repo) != 1)
		return;
	for (size_t i = 0; i < req->ncmds && !candidates[2]; i++) {
		const struct receive_command *cmd = &req->cmds[i];

		if (!cmd->error && !git_oid_is_zero(&cmd->new_oid) &&
		    has_prefix(cmd->refname, "refs/heads/"))
			candidates[2] = cmd->refname;
	}
	for (size_t i = 0; i < 3 && candidates[i]; i++) {
		if (git_reference_lookup(&ref, repo, candidates[i]) < 0)
			continue;
		git_reference_free(ref);
		if (git_repository_set_head(repo, candidates[i]) < 0)
			log_warn("cannot point HEAD at %s: %s", candidates[i], repo_git_error());
		return;
	}
}

/* ---- report-status ---------------------------------------------------- */

/* Writes one report-status pkt-line (on band 1 when side-band is on: the
 * report is a pkt-line stream inside the band). A reason cannot hold a
 * newline, so control characters become spaces; an over-long line is cut. */
static int report_line(struct pkt_io *io, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int report_line(struct pkt_io *io, const char *fmt, ...)
{
	char line[LARGE_PACKET_MAX + 1], hdr[5];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line + 4, LARGE_PACKET_DATA_MAX + 1, fmt, ap);
	va_end(ap);
	if (n < 1)
		return err_set("cannot format report-status");
	if (n > LARGE_PACKET_DATA_MAX) {
		n = LARGE_PACKET_DATA_MAX;
		line[4 + n - 1] = '\n';
	}
	for (int i = 0; i < n - 1; i++)
		if ((unsigned char)line[4 + i] < 0x20 || line[4 + i] == 0x7f)
			line[4 + i] = ' ';
	snprintf(hdr, sizeof(hdr), "%04x", (unsigned)n + 4);
	memcpy(line, hdr, 4);
	return pkt_sideband(io, SIDEBAND_DATA, line, (size_t)n + 4);
}

/* report-status (gitprotocol-pack.txt "Report Status"): "unpack ok" or
 * "unpack REASON", then "ok REFNAME" or "ng REFNAME REASON" per command,
 * flush; with side-band all of it on band 1, then a flush of the band. */
static int report_status(struct pkt_io *io, const struct receive_request *req,
                         const char *unpack_error, struct receive_stats *stats)
{
	for (size_t i = 0; i < req->ncmds; i++)
		stats->nrejected += req->cmds[i].error != NULL;
	if (req->wants_report_status) {
		if (report_line(io, "unpack %s\n", unpack_error ? unpack_error : "ok") < 0)
			return -1;
		for (size_t i = 0; i < req->ncmds; i++) {
			const struct receive_command *cmd = &req->cmds[i];
			int r = cmd->error ? report_line(io, "ng %s %s\n", cmd->refname, cmd->error)
			                   : report_line(io, "ok %s\n", cmd->refname);

			if (r < 0)
				return -1;
		}
		if (pkt_sideband(io, SIDEBAND_DATA, "0000", 4) < 0)
			return -1;
	}
	return io->sideband ? pkt_flush(io) : pkt_send(io);
}

/* Tells the client why its whole request was refused (err_msg()): on
 * side-band 3 when it asked for side-band, else as an "ERR" pkt-line; git
 * shows either ("remote: ..." or "remote error: ..."). Nothing else is
 * read: a packfile that follows is cut short by the end of the connection,
 * as with git's own receive-pack when index-pack fails. err_msg() is kept. */
static void refuse_request(struct pkt_io *io, const struct receive_request *req)
{
	char reason[ERR_MAX];

	snprintf(reason, sizeof(reason), "%s", err_msg());
	io->sideband = req->sideband;
	if (pkt_sideband(io, SIDEBAND_ERROR, reason, strlen(reason)) < 0 || pkt_send(io) < 0)
		log_warn("cannot send the refusal: %s", err_msg());
	err_set("%s", reason);
}

/* ---- the push --------------------------------------------------------- */

int receive_pack_serve(struct pkt_io *io, git_repository *repo, const struct receive_opts *opts,
                       struct receive_stats *stats)
{
	struct receive_stats unused;
	struct receive_request req;
	struct quarantine q;
	git_repository *qrepo = NULL;
	char unpack_error[256], message[RECEIVE_MESSAGE_MAX], cause[ERR_MAX];
	bool has_unpack_error = false, is_head_born;
	int rc, ret = -1;

	if (!stats)
		stats = &unused;
	memset(stats, 0, sizeof(*stats));
	memset(&req, 0, sizeof(req));
	memset(&q, 0, sizeof(q));

	if (advertise(io, repo, opts, &is_head_born) < 0)
		goto out;
	rc = receive_request_read(&req, io, opts);
	if (rc == RECEIVE_EREFUSED) {
		stats->ncommands = stats->nrejected = req.nrefused;
		refuse_request(io, &req);
		goto out;
	}
	if (rc < 0)
		goto out;
	stats->ncommands = req.ncmds;
	if (!req.ncmds) {
		ret = 0;
		goto out;
	}
	io->sideband = req.sideband;
	receive_request_check(&req, opts);
	check_delete_current(&req, repo, io, opts);

	if (needs_packfile(&req) && receive_packfile(&q, io, repo, &req, opts, stats, unpack_error,
	                                             sizeof(unpack_error)) < 0) {
		has_unpack_error = true;
		for (size_t i = 0; i < req.ncmds; i++)
			req.cmds[i].error = "unpacker error";
	}
	if (!has_unpack_error && count_accepted(&req)) {
		check_connectivity(&req, &q, repo);
		if (q.nobjects && count_accepted(&req) &&
		    open_with_quarantine(&qrepo, repo, &q) < 0) {
			log_error("%s", err_msg());
			reject_accepted(&req, "missing necessary objects");
		}
		check_commands(&req, qrepo ? qrepo : repo, opts);
		reject_rest_if_atomic(&req);
		run_pre_receive(&req, opts, qrepo ? qrepo : repo, io, q.dir[0] ? q.dir : NULL,
		                message, sizeof(message));
		reject_rest_if_atomic(&req);
		git_repository_free(qrepo);
		qrepo = NULL;
		update_refs(&req, repo, &q, opts, stats);
		if (stats->nupdated) {
			fix_unborn_head(repo, &req, is_head_born);
			pack_refs_if_many(repo);
		}
		if (stats->nupdated && opts->post_receive) {
			struct receive_check check = {
			    repo, io, req.cmds, req.ncmds, req.push_options, req.npush_options,
			    NULL};

			opts->post_receive(opts->post_receive_arg, &check);
		}
	}
	/* the pusher learns the outcome only once the quarantine is gone */
	quarantine_remove(&q);
	if (has_unpack_error) {
		/* the unpack failure is the first cause, whatever the report does */
		snprintf(cause, sizeof(cause), "%s", err_msg());
		report_status(io, &req, unpack_error, stats);
		err_set("%s", cause);
		goto out;
	}
	if (report_status(io, &req, NULL, stats) < 0)
		goto out;
	ret = 0;
out:
	git_repository_free(qrepo);
	quarantine_remove(&q);
	receive_request_release(&req);
	return ret;
}
