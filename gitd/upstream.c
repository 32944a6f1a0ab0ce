/* upstream: fetching a Remote's upstream after a webhook or on its poll
 * period, and running the push pipeline for the branches that moved (see
 * upstream.h). */
#include "upstream.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <git2/sys/odb_backend.h>
#include <git2/sys/repository.h>

#include "base64.h"
#include "buf.h"
#include "clock.h"
#include "err.h"
#include "event.h"
#include "fs.h"
#include "jsontext.h"
#include "kube.h"
#include "packfile.h"
#include "remote.h"
#include "repo.h"
#include "sandbox.h"
#include "webhook.h"
#include "banned.h"

#define SLIPWAY_REMOTES "slipway.dev/v1alpha1/remotes"
#define SECRET_VALUE_MAX (64u << 10) /* one key of the upstream's Secret */
#define FETCH_REPLY_MAX (1u << 20)   /* the fetch process's answer */
#define FETCH_TIMEOUT_S 600          /* longest fetch; then it is killed */
#define DELIVERIES_DIR ".webhook-deliveries"

/* One Remote's upstream as the worker sees it. */
struct upstream {
	const struct upstream_opts *o;
	struct remote remote;
	char repo_path[REPO_PATH_MAX];
	struct buf webhook_secret, token, username, ca, ssh_key, known_hosts;
	char quarantine[REPO_PATH_MAX]; /* what the fetch wrote, or "" */
	bool *is_updated;               /* per command, set by on_verdict */
	const char *trigger;            /* "webhook" or "poll" */
	int cred_tries;                 /* the fetch's credential callback calls */
};

static void upstream_init(struct upstream *u, const struct upstream_opts *o)
{
	memset(u, 0, sizeof(*u));
	u->o = o;
	buf_init(&u->webhook_secret, SECRET_VALUE_MAX);
	buf_init(&u->token, SECRET_VALUE_MAX);
	buf_init(&u->username, 256);
	buf_init(&u->ca, SECRET_VALUE_MAX);
	buf_init(&u->ssh_key, SECRET_VALUE_MAX);
	buf_init(&u->known_hosts, SECRET_VALUE_MAX);
}

static void wipe(struct buf *b)
{
	if (b->data)
		OPENSSL_cleanse(b->data, b->len);
	buf_release(b);
}

static void upstream_release(struct upstream *u)
{
	wipe(&u->webhook_secret);
	wipe(&u->token);
	wipe(&u->username);
	wipe(&u->ca);
	wipe(&u->ssh_key);
	wipe(&u->known_hosts);
	if (u->quarantine[0] && fs_remove_tree(u->quarantine) < 0)
		event_log("warn", "upstream_cleanup", "{s:s}", "error", err_msg());
	u->quarantine[0] = '\0';
	remote_release(&u->remote);
}

/* Decodes key KEY of Secret SECRET's data into OUT (left empty when the key
 * is absent). */
static int secret_value(struct buf *out, const json_t *secret, const char *key)
{
	const char *v = json_string_value(json_object_get(json_object_get(secret, "data"), key));

	if (!v)
		return 0;
	if (base64_decode(out, v, SECRET_VALUE_MAX * 2) < 0)
		return err_set("key %s: %s", key, err_msg());
	return 0;
}

/* Reads Remote NS/NAME (Slipway's) and its upstream's Secret into U, with an
 * API client freed (and wiped) before returning. Returns 0,
 * KUBE_ENOTFOUND when the Remote does not exist or has no upstream, or -1,
 * with err_msg(). */
static int upstream_load(struct upstream *u, const char *ns, const char *name)
{
	struct kube_client *kube = NULL;
	json_t *obj = NULL, *secret = NULL;
	int rc;

	rc = kube_client_new_default(&kube, u->o->worker->kubeconfig, u->o->worker->context);
	if (rc < 0)
		goto out;
	rc = kube_get(&obj, kube, SLIPWAY_REMOTES, ns, name);
	if (rc < 0)
		goto out;
	rc = remote_parse(&u->remote, obj, false);
	if (rc < 0)
		goto out;
	if (!u->remote.has_upstream) {
		rc = KUBE_ENOTFOUND;
		err_set("Remote %s/%s has no spec.upstream", ns, name);
		goto out;
	}
	rc = repo_path(u->repo_path, sizeof(u->repo_path), u->o->data_dir, ns, name);
	if (rc < 0)
		goto out;
	rc = kube_get(&secret, kube, "v1/secrets", ns, u->remote.upstream.secret);
	if (rc < 0) {
		err_set("secret %s/%s: %s", ns, u->remote.upstream.secret, err_msg());
		rc = -1;
		goto out;
	}
	if (secret_value(&u->webhook_secret, secret, "webhook-secret") < 0 ||
	    secret_value(&u->token, secret, "token") < 0 ||
	    secret_value(&u->username, secret, "username") < 0 ||
	    secret_value(&u->ca, secret, "ca.crt") < 0 ||
	    secret_value(&u->ssh_key, secret, "ssh-privatekey") < 0 ||
	    secret_value(&u->known_hosts, secret, "known_hosts") < 0) {
		err_set("secret %s/%s: %s", ns, u->remote.upstream.secret, err_msg());
		rc = -1;
		goto out;
	}
	rc = 0;
out:
	json_decref(secret);
	json_decref(obj);
	kube_client_free(kube);
	return rc;
}

/* ---- the fetch process -------------------------------------------------- */

static int on_credentials(git_credential **out, const char *url, const char *user_from_url,
                          unsigned int allowed, void *payload)
{
	struct upstream *u = payload;
	const char *user = u->username.len ? buf_str(&u->username) : NULL;

	/* libgit2 asks again after a refusal: once is enough */
	if (u->cred_tries++) {
		err_set("the upstream refused the credentials");
		return GIT_EUSER;
	}
	if ((allowed & GIT_CREDENTIAL_SSH_MEMORY) && u->ssh_key.len)
		return git_credential_ssh_key_memory_new(
		    out, user ? user : (user_from_url ? user_from_url : "git"), NULL,
		    buf_str(&u->ssh_key), NULL);
	if ((allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) && u->token.len)
		return git_credential_userpass_plaintext_new(out, user ? user : "x-access-token",
		                                             buf_str(&u->token));
	return GIT_PASSTHROUGH;
}

/* Whether a line of known_hosts names HOST (":PORT" when not 22) and holds
 * KEY64 (base64 of the raw host key). Hashed host names are not matched. */
static bool is_known_host(const char *known, const char *host, int port, const char *key64)
{
	char pattern[300];
	const char *line = known;

	if (port && port != 22)
		snprintf(pattern, sizeof(pattern), "[%s]:%d", host, port);
	else
		snprintf(pattern, sizeof(pattern), "%s", host);
	while (line && *line) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		char copy[16384], *hosts, *type, *key, *save = NULL;

		if (len < sizeof(copy)) {
			memcpy(copy, line, len);
			copy[len] = '\0';
			hosts = strtok_r(copy, " \t", &save);
			type = strtok_r(NULL, " \t", &save);
			key = strtok_r(NULL, " \t\r", &save);
			if (hosts && type && key && hosts[0] != '#' && !strcmp(key, key64)) {
				char *h, *hsave = NULL;

				for (h = strtok_r(hosts, ",", &hsave); h;
				     h = strtok_r(NULL, ",", &hsave))
					if (!strcmp(h, pattern))
						return true;
			}
		}
		line = end ? end + 1 : NULL;
	}
	return false;
}

static int on_certificate(git_cert *cert, int valid, const char *host, void *payload)
{
	struct upstream *u = payload;
	const git_cert_hostkey *hk = (const git_cert_hostkey *)cert;
	char *key64 = NULL;
	int port = 0, ret = -1;
	const char *colon;

	if (cert->cert_type != GIT_CERT_HOSTKEY_LIBSSH2)
		return valid ? 0 : GIT_PASSTHROUGH;
	if (!(hk->type & GIT_CERT_SSH_RAW) || !u->known_hosts.len) {
		err_set("ssh upstream: the Secret has no known_hosts");
		return -1;
	}
	/* ssh://[user@]host[:port]/path: the port, for the known_hosts pattern */
	colon = strstr(u->remote.upstream.url + 6, host);
	if (colon && colon[strlen(host)] == ':')
		port = atoi(colon + strlen(host) + 1);
	if (base64_encode(&key64, hk->hostkey, hk->hostkey_len) < 0)
		return -1;
	if (is_known_host(buf_str(&u->known_hosts), host, port, key64))
		ret = 0;
	else
		err_set("ssh upstream: host key of %s is not in known_hosts", host);
	free(key64);
	return ret;
}

static int on_transfer(const git_indexer_progress *stats, void *payload)
{
	struct upstream *u = payload;

	if (u->o->max_pack_bytes && stats->received_bytes > u->o->max_pack_bytes) {
		err_set("the upstream's pack is over --max-pack-size (%llu bytes)",
		        u->o->max_pack_bytes);
		return -1;
	}
	return 0;
}

/* Trusts U's ca.crt (written to a private file for libgit2 to load), else
 * the system's bundle. */
static int set_ca(struct upstream *u)
{
	char path[] = "/tmp/slipway-ca-XXXXXX";
	int fd, rc;

	if (!u->ca.len) {
		if (access("/etc/ssl/certs/ca-certificates.crt", R_OK) == 0)
			git_libgit2_opts(GIT_OPT_SET_SSL_CERT_LOCATIONS,
			                 "/etc/ssl/certs/ca-certificates.crt", NULL);
		return 0;
	}
	fd = mkstemp(path);
	if (fd < 0)
		return err_set("cannot write ca.crt: %s", strerror(errno));
	rc = write(fd, u->ca.data, u->ca.len) == (ssize_t)u->ca.len ? 0 : -1;
	close(fd);
	if (rc == 0 && git_libgit2_opts(GIT_OPT_SET_SSL_CERT_LOCATIONS, path, NULL) < 0)
		rc = err_set("cannot use ca.crt: %s", repo_git_error());
	unlink(path);
	return rc;
}

/* Creates U->quarantine, REPO/objects/incoming-XXXXXX with its pack/
 * directory; upstream_release removes it. */
static int make_quarantine(struct upstream *u)
{
	char pack[REPO_PATH_MAX + 16];

	if ((size_t)snprintf(u->quarantine, sizeof(u->quarantine), "%s/objects/incoming-XXXXXX",
	                     u->repo_path) >= sizeof(u->quarantine) ||
	    !mkdtemp(u->quarantine)) {
		u->quarantine[0] = '\0';
		return err_set("cannot create a quarantine in %s: %s", u->repo_path,
		               strerror(errno));
	}
	snprintf(pack, sizeof(pack), "%s/pack", u->quarantine);
	if (mkdir(pack, 0700) < 0)
		return err_set("cannot create %s: %s", pack, strerror(errno));
	return 0;
}

/* The quarantine's pack writer. libgit2's fetch hands the pack's bytes to
 * the writepack of the first backend that has one (git_odb_write_pack);
 * this backend has only that, ahead of the quarantine's pack backend, and
 * passes each chunk through packfile_check, the check a push gets, before
 * the pack backend's indexer sees it: the indexer inflates whole objects,
 * the check refuses one over the limit from its entry header. */
struct checked_backend {
	git_odb_backend parent;
	git_odb_backend *pack;               /* the quarantine's; the odb owns it */
	unsigned long long max_object_bytes; /* 0: no limit */
};

struct checked_writepack {
	git_odb_writepack parent;
	git_odb_writepack *inner; /* the pack backend's indexer */
	struct packfile_check check;
};

static int checked_append(git_odb_writepack *w, const void *data, size_t size,
                          git_indexer_progress *stats)
{
	struct checked_writepack *cw = (struct checked_writepack *)w;

	if (packfile_check_add(&cw->check, data, size) < 0) {
		err_set("the upstream's pack was refused: %s", cw->check.reason);
		git_error_set_str(GIT_ERROR_INDEXER, err_msg());
		return -1;
	}
	return cw->inner->append(cw->inner, data, size, stats);
}

static int checked_commit(git_odb_writepack *w, git_indexer_progress *stats)
{
	struct checked_writepack *cw = (struct checked_writepack *)w;

	/* the indexer and the check must agree on where entries end */
	if (!packfile_check_is_done(&cw->check)) {
		err_set("the upstream's pack was refused: pack entries do not end at its trailer");
		git_error_set_str(GIT_ERROR_INDEXER, err_msg());
		return -1;
	}
	return cw->inner->commit(cw->inner, stats);
}

static void checked_writepack_free(git_odb_writepack *w)
{
	struct checked_writepack *cw = (struct checked_writepack *)w;

	if (cw->inner)
		cw->inner->free(cw->inner);
	packfile_check_release(&cw->check);
	free(cw);
}

static int checked_writepack(git_odb_writepack **out, git_odb_backend *b, git_odb *odb,
                             git_indexer_progress_cb progress_cb, void *progress_payload)
{
	struct checked_backend *cb = (struct checked_backend *)b;
	struct checked_writepack *cw = calloc(1, sizeof(*cw));

	*out = NULL;
	if (!cw) {
		git_error_set_oom();
		return -1;
	}
	if (packfile_check_init(&cw->check, cb->max_object_bytes) < 0) {
		git_error_set_str(GIT_ERROR_INDEXER, err_msg());
		free(cw);
		return -1;
	}
	if (cb->pack->writepack(&cw->inner, cb->pack, odb, progress_cb, progress_payload) < 0) {
		cw->inner = NULL;
		checked_writepack_free(&cw->parent);
		return -1;
	}
	cw->parent.backend = b;
	cw->parent.append = checked_append;
	cw->parent.commit = checked_commit;
	cw->parent.free = checked_writepack_free;
	*out = &cw->parent;
	return 0;
}

/* git_odb_foreach calls every backend's: this one holds no objects. */
static int checked_foreach(git_odb_backend *b, git_odb_foreach_cb cb, void *payload)
{
	return 0;
}

static void checked_backend_free(git_odb_backend *b)
{
	free(b);
}

/* Adds to ODB, ahead of PACK (the quarantine's pack backend, added to ODB),
 * the backend that checks every pack written to PACK against
 * MAX_OBJECT_BYTES. Returns 0 or -1 with libgit2's error. */
static int add_checked_backend(git_odb *odb, git_odb_backend *pack,
                               unsigned long long max_object_bytes)
{
	struct checked_backend *cb = calloc(1, sizeof(*cb));

	if (!cb) {
		git_error_set_oom();
		return -1;
	}
	git_odb_init_backend(&cb->parent, GIT_ODB_BACKEND_VERSION);
	cb->parent.writepack = checked_writepack;
	cb->parent.foreach = checked_foreach;
	cb->parent.free = checked_backend_free;
	cb->pack = pack;
	cb->max_object_bytes = max_object_bytes;
	if (git_odb_add_backend(odb, &cb->parent, 3) < 0) {
		free(cb);
		return -1;
	}
	return 0;
}

/* Opens U's repository into *OUT writing new objects to U->quarantine, the
 * repository's own objects readable beside it; a pack written there passes
 * the --max-object-size check first (checked_backend). */
static int open_quarantined(git_repository **out, struct upstream *u)
{
	char objects[REPO_PATH_MAX + 16];
	git_odb_backend *backend = NULL;
	git_odb *odb = NULL;
	int ret = -1;

	*out = NULL;
	snprintf(objects, sizeof(objects), "%s/objects", u->repo_path);
	if (git_repository_open_bare(out, u->repo_path) < 0 || git_odb_new(&odb) < 0 ||
	    git_odb_backend_pack(&backend, u->quarantine) < 0 ||
	    git_odb_add_backend(odb, backend, 2) < 0 ||
	    add_checked_backend(odb, backend, u->o->max_object_bytes) < 0) {
		if (backend && !odb)
			backend->free(backend);
		err_set("cannot open %s with a quarantine: %s", u->repo_path, repo_git_error());
		goto out;
	}
	/* libgit2 never writes to an alternate: the pack lands in the quarantine */
	if (git_odb_add_disk_alternate(odb, objects) < 0) {
		err_set("cannot read %s: %s", objects, repo_git_error());
		goto out;
	}
	git_repository_set_odb(*out, odb);
	ret = 0;
out:
	git_odb_free(odb);
	if (ret < 0) {
		git_repository_free(*out);
		*out = NULL;
	}
	return ret;
}

/* The fetch process: lists the upstream's refs, downloads the WANT[] (N)
 * branches whose value the repository lacks, and writes to FD
 * {"refs": {REFNAME: HEX}} (the refs of WANT[] the upstream has) or
 * {"error": MESSAGE}; the pack lands in U->quarantine. Never returns. */
static void fetch_main(struct upstream *u, char *const *want, size_t n, int fd)
{
	git_remote_callbacks cbs;
	git_fetch_options fo;
	git_repository *repo = NULL;
	git_remote *rem = NULL;
	const git_remote_head **heads;
	git_strarray specs = {NULL, 0};
	json_t *refs = json_object(), *msg;
	const char *degraded = NULL;
	size_t nheads;
	char *line;

	git_remote_init_callbacks(&cbs, GIT_REMOTE_CALLBACKS_VERSION);
	git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
	specs.strings = calloc(n ? n : 1, sizeof(char *));
	cbs.credentials = on_credentials;
	cbs.certificate_check = on_certificate;
	cbs.transfer_progress = on_transfer;
	cbs.payload = u;
	err_clear();
	if (!specs.strings || !refs || sandbox_prepare() < 0 || set_ca(u) < 0)
		goto failed;
	if (sandbox_enter_fetch(u->repo_path, &degraded) < 0) {
		event_log("error", "sandbox_failed", "{s:s, s:s}", "process", "fetch", "error",
		          err_msg());
		goto failed;
	}
	if (degraded)
		event_log("warn", "sandbox_degraded", "{s:s, s:s}", "process", "fetch", "reason",
		          degraded);
	if (open_quarantined(&repo, u) < 0)
		goto failed;
	if (git_remote_create_anonymous(&rem, repo, u->remote.upstream.url) < 0 ||
	    git_remote_connect(rem, GIT_DIRECTION_FETCH, &cbs, NULL, NULL) < 0 ||
	    git_remote_ls(&heads, &nheads, rem) < 0) {
		err_set_if_empty("cannot list the upstream: %s", repo_git_error());
		goto failed;
	}
	for (size_t i = 0; i < nheads; i++)
		for (size_t k = 0; k < n; k++) {
			char hex[GIT_OID_HEXSZ + 1];
			git_odb *odb = NULL;
			bool has;

			if (strcmp(heads[i]->name, want[k]) != 0)
				continue;
			git_oid_tostr(hex, sizeof(hex), &heads[i]->oid);
			json_object_set_new(refs, want[k], json_string(hex));
			has = git_repository_odb(&odb, repo) == 0 &&
			      git_odb_exists(odb, &heads[i]->oid);
			git_odb_free(odb);
			if (!has)
				specs.strings[specs.count++] = want[k];
		}
	fo.callbacks = cbs;
	fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
	if (specs.count && git_remote_download(rem, &specs, &fo) < 0) {
		err_set_if_empty("cannot fetch from the upstream: %s", repo_git_error());
		goto failed;
	}
	msg = json_pack("{s:O}", "refs", refs);
	goto send;
failed:
	msg = json_pack("{s:o}", "error", jsontext_lossy(err_msg(), 1024));
send:
	line = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
	if (line && write(fd, line, strlen(line)) < 0) {
		/* the worker went away */
	}
	_exit(0);
}

/* Creates U->quarantine and runs fetch_main in its own process, killed after
 * FETCH_TIMEOUT_S; *OUT gets its {"refs"} answer (caller frees). Returns 0
 * or -1 with err_msg(). */
static int fetch(json_t **out, struct upstream *u, char *const *want, size_t n)
{
	long long deadline = clock_now_ms() + FETCH_TIMEOUT_S * 1000LL;
	bool timed_out = false;
	struct buf in;
	json_t *msg = NULL;
	int p[2], status, ret = -1;
	pid_t pid;

	*out = NULL;
	if (make_quarantine(u) < 0)
		return -1;
	if (pipe2(p, O_CLOEXEC) < 0)
		return err_set("pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return err_set("fork: %s", strerror(errno));
	}
	if (pid == 0) {
		close(p[0]);
		fetch_main(u, want, n, p[1]);
	}
	close(p[1]);
	buf_init(&in, FETCH_REPLY_MAX);
	for (;;) {
		struct pollfd pfd = {p[0], POLLIN, 0};
		long long left = deadline - clock_now_ms();
		char chunk[4096];
		ssize_t k;

		if (left <= 0 || poll(&pfd, 1, (int)(left < 1000 ? left : 1000)) < 0) {
			if (left > 0 && errno == EINTR)
				continue;
			if (left <= 0) {
				/* a stalled upstream; upstream_release removes the quarantine */
				kill(pid, SIGKILL);
				timed_out = true;
				break;
			}
		}
		if (!(pfd.revents & (POLLIN | POLLHUP)))
			continue;
		k = read(p[0], chunk, sizeof(chunk));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0 || buf_add(&in, chunk, (size_t)k) < 0)
			break;
	}
	close(p[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (timed_out) {
		err_set("the fetch took over %d s", FETCH_TIMEOUT_S);
		goto out;
	}
	msg = json_loadb(buf_str(&in), in.len, 0, NULL);
	if (!json_is_object(json_object_get(msg, "refs"))) {
		err_set("%s", json_string_value(json_object_get(msg, "error"))
		                  ? json_string_value(json_object_get(msg, "error"))
		                  : "the fetch process ended without an answer");
		goto out;
	}
	*out = msg;
	msg = NULL;
	ret = 0;
out:
	json_decref(msg);
	buf_release(&in);
	return ret;
}

/* ---- moving refs and running the pipeline ------------------------------ */

/* Moves the quarantine's packs into the repository's objects/pack, .idx
 * last (readers find packs by their index); a pack already there stays. */
static int migrate(const struct upstream *u)
{
	static const char *const exts[] = {".pack", ".idx"};
	char dir[REPO_PATH_MAX + 8];
	DIR *d;
	struct dirent *e;
	int ret = 0;

	snprintf(dir, sizeof(dir), "%s/pack", u->quarantine);
	for (size_t x = 0; x < 2 && ret == 0; x++) {
		if (!(d = opendir(dir)))
			return err_set("cannot read %s: %s", dir, strerror(errno));
		while (ret == 0 && (e = readdir(d))) {
			char from[REPO_PATH_MAX + 300], to[REPO_PATH_MAX + 300];
			size_t len = strlen(e->d_name), xl = strlen(exts[x]);

			if (len <= xl || strcmp(e->d_name + len - xl, exts[x]) != 0)
				continue;
			snprintf(from, sizeof(from), "%s/%s", dir, e->d_name);
			snprintf(to, sizeof(to), "%s/objects/pack/%s", u->repo_path, e->d_name);
			if (link(from, to) < 0 && errno != EEXIST && rename(from, to) < 0)
				ret = err_set("cannot move %s: %s", from, strerror(errno));
		}
		closedir(d);
	}
	return ret;
}

/* Moves REFNAME from BEFORE (zero: must not exist) to AFTER, with the ref
 * locked: a ref that moved meanwhile is left alone. */
static int move_ref(git_repository *repo, const char *refname, const git_oid *before,
                    const git_oid *after, const char *trigger)
{
	git_transaction *tx = NULL;
	git_signature *sig = NULL;
	git_reference *ref = NULL;
	char message[64];
	bool is_at;
	int rc, ret = -1;

	if (git_transaction_new(&tx, repo) < 0 || git_transaction_lock_ref(tx, refname) < 0) {
		err_set("failed to lock %s: %s", refname, repo_git_error());
		goto out;
	}
	rc = git_reference_lookup(&ref, repo, refname);
	if (rc == GIT_ENOTFOUND)
		is_at = git_oid_is_zero(before);
	else
		is_at = rc == 0 && git_reference_target(ref) &&
		        git_oid_equal(git_reference_target(ref), before);
	if (!is_at) {
		err_set("%s moved meanwhile", refname);
		goto out;
	}
	snprintf(message, sizeof(message), "slipway: %s from the upstream", trigger);
	if (git_signature_now(&sig, "slipway", "slipway") < 0 ||
	    git_transaction_set_target(tx, refname, after, sig, message) < 0 ||
	    git_transaction_commit(tx) < 0) {
		err_set("failed to update %s: %s", refname, repo_git_error());
		goto out;
	}
	ret = 0;
out:
	git_reference_free(ref);
	git_signature_free(sig);
	git_transaction_free(tx);
	return ret;
}

static void on_say(void *arg, const char *line)
{
	/* the run's logTail keeps these; nobody waits on a connection */
}

static int on_verdict(void *arg, const struct pipeline_request *req, char *const *errors)
{
	struct upstream *u = arg;
	git_repository *repo = NULL;
	git_odb *odb = NULL;
	size_t naccepted = 0;

	for (size_t i = 0; i < req->ncmds; i++)
		naccepted += !errors[i];
	/* as with a push, objects of refused updates stay out of the repository */
	if (naccepted && (migrate(u) < 0 || git_repository_open_bare(&repo, u->repo_path) < 0)) {
		event_log("error", "upstream_failed", "{s:s, s:s, s:s}", "namespace", req->ns,
		          "remote", req->name, "error", err_msg());
		return 0;
	}
	if (git_repository_odb(&odb, repo) == 0)
		git_odb_refresh(odb);
	git_odb_free(odb);
	for (size_t i = 0; i < req->ncmds; i++) {
		if (errors[i]) {
			event_log("warn", "upstream_refused", "{s:s, s:s, s:s, s:o}", "namespace",
			          req->ns, "remote", req->name, "ref", req->cmds[i].refname,
			          "error", jsontext_lossy(errors[i], 1024));
			continue;
		}
		if (!repo || move_ref(repo, req->cmds[i].refname, &req->cmds[i].before,
		                      &req->cmds[i].after, u->trigger) < 0) {
			event_log("warn", "upstream_refused", "{s:s, s:s, s:s, s:s}", "namespace",
			          req->ns, "remote", req->name, "ref", req->cmds[i].refname,
			          "error", err_msg());
			continue;
		}
		u->is_updated[i] = true;
	}
	git_repository_free(repo);
	return 0;
}

static int on_updated(void *arg, const struct pipeline_request *req, bool *is_updated)
{
	struct upstream *u = arg;

	memcpy(is_updated, u->is_updated, req->ncmds * sizeof(*is_updated));
	return 0;
}

static void on_hang_up(void *arg, bool is_done)
{
}

/* Fetches the branches of WANT[] (N) and runs the pipeline for those that
 * moved, as TRIGGER by SENDER ("" when unknown). Returns the number of runs
 * started, or -1 with err_msg(). */
static int deploy(struct upstream *u, char *const *want, size_t n, const char *trigger,
                  const char *sender)
{
	static const volatile sig_atomic_t never = 0;
	struct pipeline_request req = {0};
	struct pipeline_conn conn = {on_say, on_verdict, on_updated, on_hang_up, u, &never};
	git_repository *repo = NULL, *seen = NULL;
	git_odb *odb = NULL;
	json_t *got = NULL;
	long long t0 = clock_now_ms();
	int ret = -1;

	u->trigger = trigger;
	/* the repository exists once its Remote was seen; create it if not */
	if (repo_open(&repo, u->o->data_dir, u->remote.ns, u->remote.name) < 0)
		goto out;
	if (fetch(&got, u, want, n) < 0)
		goto out;
	event_log("info", "upstream_fetched", "{s:s, s:s, s:s, s:I}", "namespace", u->remote.ns,
	          "remote", u->remote.name, "trigger", trigger, "duration_ms",
	          (json_int_t)(clock_now_ms() - t0));
	req.cmds = calloc(n ? n : 1, sizeof(*req.cmds));
	u->is_updated = calloc(n ? n : 1, sizeof(*u->is_updated));
	if (!req.cmds || !u->is_updated) {
		err_set("out of memory");
		goto out;
	}
	if (git_repository_open_bare(&seen, u->repo_path) < 0 ||
	    git_repository_odb(&odb, seen) < 0 ||
	    git_odb_add_disk_alternate(odb, u->quarantine) < 0) {
		err_set("cannot open %s: %s", u->repo_path, repo_git_error());
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const char *hex =
		    json_string_value(json_object_get(json_object_get(got, "refs"), want[i]));
		struct pipeline_command *c = &req.cmds[req.ncmds];

		if (!hex || git_oid_fromstr(&c->after, hex) < 0)
			continue; /* the upstream has no such branch */
		if (git_reference_name_to_id(&c->before, repo, want[i]) < 0)
			memset(&c->before, 0, sizeof(c->before));
		if (git_oid_equal(&c->before, &c->after))
			continue;
		if (u->remote.deny_non_fast_forwards && !git_oid_is_zero(&c->before) &&
		    git_graph_descendant_of(seen, &c->after, &c->before) != 1) {
			event_log("warn", "upstream_refused", "{s:s, s:s, s:s, s:s}", "namespace",
			          u->remote.ns, "remote", u->remote.name, "ref", want[i], "error",
			          "non-fast-forward (spec.denyNonFastForwards)");
			continue;
		}
		c->refname = strdup(want[i]);
		if (!c->refname) {
			err_set("out of memory");
			goto out;
		}
		req.ncmds++;
	}
	if (!req.ncmds) {
		ret = 0;
		goto out;
	}
	snprintf(req.ns, sizeof(req.ns), "%s", u->remote.ns);
	snprintf(req.name, sizeof(req.name), "%s", u->remote.name);
	snprintf(req.repo_path, sizeof(req.repo_path), "%s", u->repo_path);
	snprintf(req.quarantine, sizeof(req.quarantine), "%s", u->quarantine);
	snprintf(req.trigger, sizeof(req.trigger), "%s", trigger);
	snprintf(req.sender, sizeof(req.sender), "%s", sender);
	req.is_wait = false;
	git_repository_free(seen);
	seen = NULL;
	if (pipeline_serve(&req, u->o->worker, &conn) < 0)
		goto out;
	ret = (int)req.ncmds;
out:
	git_odb_free(odb);
	git_repository_free(seen);
	git_repository_free(repo);
	json_decref(got);
	free(u->is_updated);
	u->is_updated = NULL;
	pipeline_request_release(&req);
	return ret;
}

/* ---- webhooks ------------------------------------------------------------ */

/* Records delivery ID of SENDER for U's Remote under DATA_DIR/DELIVERIES_DIR
 * (the SHA-256 of the four as file name; entries older than the window are
 * removed on the way). Returns 0 when new, 1 when seen within the window,
 * or -1 with err_msg(). */
static int delivery_record(const struct upstream *u, const char *sender, const char *id)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	char dir[PATH_MAX], path[PATH_MAX + 80], key[1200];
	time_t now = time(NULL);
	struct dirent *e;
	struct stat st;
	DIR *d;
	int fd;

	snprintf(dir, sizeof(dir), "%s/" DELIVERIES_DIR, u->o->data_dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return err_set("cannot create %s: %s", dir, strerror(errno));
	if ((d = opendir(dir))) {
		while ((e = readdir(d)))
			if (e->d_name[0] != '.' && fstatat(dirfd(d), e->d_name, &st, 0) == 0 &&
			    now - st.st_mtime > WEBHOOK_DELIVERY_WINDOW_S)
				unlinkat(dirfd(d), e->d_name, 0);
		closedir(d);
	}
	snprintf(key, sizeof(key), "%s/%s/%s/%.1000s", u->remote.ns, u->remote.name, sender, id);
	SHA256((const unsigned char *)key, strlen(key), md);
	snprintf(path, sizeof(path), "%s/", dir);
	for (size_t i = 0; i < sizeof(md); i++)
		snprintf(path + strlen(path), 3, "%02x", md[i]);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	if (errno == EEXIST)
		return 1;
	return err_set("cannot record the delivery: %s", strerror(errno));
}

/* Answers the listener on *FD and closes it. */
static void reply(int *fd, int status, const char *reason, const char *message)
{
	json_t *msg = json_pack("{s:i, s:s, s:o}", "status", status, "reason", reason, "message",
	                        jsontext_lossy(message, 1000));
	char *line = msg ? json_dumps(msg, JSON_COMPACT) : NULL;

	if (*fd >= 0 && line) {
		size_t len = strlen(line);

		line[len++] = '\n';
		if (write(*fd, line, len) < 0) {
			/* the listener gave up waiting */
		}
	}
	free(line);
	json_decref(msg);
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Logs a refused webhook and answers it. */
static void refuse(int *fd, const char *ns, const char *name, const char *sender, int status,
                   const char *reason, const char *message)
{
	event_log("warn", "webhook_refused", "{s:s, s:s, s:s, s:s, s:o}", "namespace", ns, "remote",
	          name, "sender", sender, "reason", reason, "error", jsontext_lossy(message, 1000));
	reply(fd, status, reason, message);
}

void upstream_serve_webhook(const json_t *msg, int fd, const struct upstream_opts *o)
{
	const char *ns = json_string_value(json_object_get(msg, "namespace"));
	const char *name = json_string_value(json_object_get(msg, "name"));
	const char *b64 = json_string_value(json_object_get(msg, "body"));
	const json_t *headers = json_object_get(msg, "headers");
	struct webhook_request r;
	struct webhook_push push = {0};
	struct upstream u;
	struct buf body;
	const char *sender;
	char text[600];
	int rc;

	upstream_init(&u, o);
	buf_init(&body, WEBHOOK_BODY_MAX);
	if (!ns || !name || !b64 || !json_is_object(headers) || !repo_is_valid_name(ns) ||
	    !repo_is_valid_name(name) || base64_decode(&body, b64, 2 * WEBHOOK_BODY_MAX) < 0) {
		refuse(&fd, ns ? ns : "", name ? name : "", "", 400, "bad_request",
		       "malformed request from the listener");
		goto out;
	}
	webhook_request_from_json(&r, headers, (const unsigned char *)buf_str(&body), body.len);
	sender = webhook_sender_name(webhook_sender_of(&r));
	rc = upstream_load(&u, ns, name);
	if (rc == KUBE_ENOTFOUND) {
		refuse(&fd, ns, name, sender, 404, "unknown_remote",
		       "no Remote with spec.upstream by that name");
		goto out;
	}
	if (rc < 0) {
		event_log("error", "webhook_failed", "{s:s, s:s, s:s}", "namespace", ns, "remote",
		          name, "error", err_msg());
		reply(&fd, 503, "error", "slipway: cannot read the Remote");
		goto out;
	}
	if (!u.webhook_secret.len) {
		refuse(&fd, ns, name, sender, 401, "bad_signature",
		       "the Remote's Secret has no webhook-secret");
		goto out;
	}
	if (webhook_verify(&r, (const unsigned char *)u.webhook_secret.data, u.webhook_secret.len) <
	    0) {
		refuse(&fd, ns, name, sender, 401, "bad_signature", err_msg());
		goto out;
	}
	if (webhook_parse(&push, &r) < 0) {
		refuse(&fd, ns, name, sender, 400, "bad_request", err_msg());
		goto out;
	}
	if (push.kind == WEBHOOK_PING) {
		reply(&fd, 200, "ping", "pong");
		goto out;
	}
	if (push.kind == WEBHOOK_OTHER) {
		reply(&fd, 200, "ignored", "only push events deploy");
		goto out;
	}
	if (r.delivery && (rc = delivery_record(&u, sender, r.delivery)) != 0) {
		if (rc < 0)
			reply(&fd, 503, "error", "slipway: cannot record the delivery");
		else
			refuse(&fd, ns, name, sender, 409, "replayed_delivery",
			       "this delivery was received already");
		goto out;
	}
	if (strspn(push.after, "0") == strlen(push.after)) {
		reply(&fd, 200, "ignored", "a deletion: nothing to deploy");
		goto out;
	}
	if (!remote_upstream_is_followed(&u.remote, push.refname)) {
		snprintf(text, sizeof(text), "%.500s does not deploy", push.refname);
		refuse(&fd, ns, name, sender, 200, "non_deploying_branch", text);
		goto out;
	}
	snprintf(text, sizeof(text), "deploying %.500s", push.refname);
	reply(&fd, 202, "accepted", text);
	event_log("info", "webhook_accepted", "{s:s, s:s, s:s, s:o, s:o, s:o}", "namespace", ns,
	          "remote", name, "sender", sender, "ref", jsontext_lossy(push.refname, 4096),
	          "after", jsontext_lossy(push.after, 64), "pusher",
	          jsontext_lossy(push.sender, 256));
	if (deploy(&u, &push.refname, 1, "webhook", push.sender) < 0)
		event_log("error", "upstream_failed", "{s:s, s:s, s:s, s:s}", "namespace", ns,
		          "remote", name, "trigger", "webhook", "error", err_msg());
out:
	if (fd >= 0)
		close(fd);
	webhook_push_release(&push);
	wipe(&body);
	upstream_release(&u);
}

/* ---- polling ------------------------------------------------------------- */

void upstream_poll(const char *ns, const char *name, const struct upstream_opts *o)
{
	struct upstream u;
	char **want = NULL;
	size_t n = 0;
	int rc;

	upstream_init(&u, o);
	rc = upstream_load(&u, ns, name);
	if (rc < 0) {
		event_log(rc == KUBE_ENOTFOUND ? "debug" : "error", "upstream_failed",
		          "{s:s, s:s, s:s, s:s}", "namespace", ns, "remote", name, "trigger",
		          "poll", "error", err_msg());
		goto out;
	}
	/* the followed branches: upstream.branches, else spec.branches */
	{
		const char *const *names =
		    u.remote.upstream.branches ? u.remote.upstream.branches : u.remote.branches;
		size_t count =
		    u.remote.upstream.branches ? u.remote.upstream.nbranches : u.remote.nbranches;

		want = calloc(count ? count : 1, sizeof(*want));
		for (size_t i = 0; want && i < count; i++) {
			bool is_full = !strncmp(names[i], "refs/heads/", 11);

			if (asprintf(&want[n], "%s%s", is_full ? "" : "refs/heads/", names[i]) < 0)
				break;
			if (remote_upstream_is_followed(&u.remote, want[n]))
				n++;
			else
				free(want[n]);
		}
	}
	rc = want ? deploy(&u, want, n, "poll", "") : err_set("out of memory");
	if (rc < 0)
		event_log("error", "upstream_failed", "{s:s, s:s, s:s, s:s}", "namespace", ns,
		          "remote", name, "trigger", "poll", "error", err_msg());
	else
		event_log(rc ? "info" : "debug", "upstream_polled", "{s:s, s:s, s:i}", "namespace",
		          ns, "remote", name, "runs", rc);
out:
	for (size_t i = 0; i < n; i++)
		free(want[i]);
	free(want);
	upstream_release(&u);
}
