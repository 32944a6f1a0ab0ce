/* runner: one builder run, as a child process or as a Pod, with its log
 * drained from buildsrv while it runs and its outcome judged by the
 * builder's result or, failing that, by how the process or Pod ended. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runner.h"
#include "clock.h"
#include "err.h"
#include "fs.h"
#include "imageref.h"
#include "log.h"
#include "spawn.h"
#include "banned.h"

/* When neither gitd's flag nor spec.builder.timeoutSeconds says. */
#define RUNNER_DEFAULT_TIMEOUT_MS (30 * 60 * 1000L)
/* Log drain period while waiting for a Pod, and its status poll period. */
#define RUNNER_POLL_MS 250
#define RUNNER_POD_GET_MS 1000
/* Longest wait for the status of a Pod whose builder was stopped by a
 * signal the runner did not send (deadline or deletion). */
#define RUNNER_POD_STATUS_WAIT_MS 10000
/* A Pod's deadline counts from its start, after scheduling and pulling: the
 * runner waits this much longer before it gives up on its own. */
#define RUNNER_POD_SLACK_MS 20000
/* The builder's own --timeout fires first; this kills one that does not stop. */
#define RUNNER_LOCAL_SLACK_MS 10000
/* Stdout lines kept of a local builder, for when no report arrived. */
#define RUNNER_TAIL_MAX 64

/* Where the Pod finds its files (docs/builder.md "Runners"). */
#define POD_TOKEN_DIR "/var/run/slipway/token"
#define POD_TOKEN_FILE POD_TOKEN_DIR "/token"
#define POD_REGISTRY_DIR "/var/run/slipway/registry"
#define POD_REGISTRY_FILE POD_REGISTRY_DIR "/.dockerconfigjson"

/* The builder's argv is at most this long: fixed options plus build args. */
#define ARGV_FIXED_MAX 40

/* builder's exit codes (builder/main.c, docs/builder.md "Exit status"). */
enum {
	BUILDER_EXIT_PUSHED = 0,
	BUILDER_EXIT_ERROR = 1,
	BUILDER_EXIT_USAGE = 2,
	BUILDER_EXIT_SOURCE = 3,
	BUILDER_EXIT_BUILD = 4,
	BUILDER_EXIT_PUSH = 5,
	BUILDER_EXIT_TIMEOUT = 6,
	BUILDER_EXIT_REPORT = 7,
	BUILDER_EXIT_PRIVILEGES = 8,
};

/* State shared by both modes while a build runs. */
struct run {
	struct runner_result *out;
	const struct runner_build *b;
	struct buildsrv_build *bb;
	void (*on_line)(void *arg, const char *line);
	void *arg;
	const volatile sig_atomic_t *cancel; /* the caller's; may be NULL */
	size_t reported_lines;               /* lines drained from buildsrv */
	char *tail[RUNNER_TAIL_MAX];         /* local: the builder's last stdout lines */
	size_t tail_next, tail_len;          /* ring position and fill */
	char last_error[ERR_MAX];            /* local: its last "builder: ..." line */
	bool has_result;
	struct buildsrv_result result;
};

int runner_mode_parse(enum runner_mode *out, const char *s)
{
	if (s && !strcmp(s, "local")) {
		*out = RUNNER_LOCAL;
		return 0;
	}
	if (s && !strcmp(s, "pod")) {
		*out = RUNNER_POD;
		return 0;
	}
	return err_set("builder mode \"%s\" is neither local nor pod", s ? s : "");
}

/* buildah run as root without CAP_SYS_ADMIN (as in a container) re-executes
 * itself in a new user namespace that maps every ID the container has, 0
 * included: the child calls unshare(CLONE_NEWUSER | CLONE_NEWNS), the
 * parent writes its /proc/PID/uid_map and gid_map (containers/storage
 * pkg/unshare, MaybeReexecUsingUserNamespace). Inside, it has the
 * capabilities chroot isolation needs, over its own namespaces only. */
json_t *runner_security_context_default(void)
{
	/* keys in sorted order: its compact JSON is what the manifests carry */
	return json_pack("{s:b, s:{s:s}, s:{s:[s, s, s], s:[s]}, s:b, s:i, s:{s:s}}",
	                 /* no_new_privs: buildah gains nothing by exec; it needs no setuid
	                  * newuidmap, since as root it writes the maps itself */
	                 "allowPrivilegeEscalation", 0,
	                 /* the runtime's default AppArmor profile, where AppArmor is on,
	                  * denies mount(2), which chroot isolation needs inside its own
	                  * mount namespace; nodes without AppArmor ignore the field */
	                 "appArmorProfile", "type", "Unconfined",
	                 /* drop the runtime's default set; keep what writing the maps takes
	                  * (user_namespaces(7)): CAP_SETUID for a uid_map of more than our
	                  * own ID, CAP_SETGID for such a gid_map, CAP_SETFCAP for a map
	                  * that holds uid 0 (Linux >= 5.12). CAP_SYS_ADMIN is not needed:
	                  * without it buildah takes this user namespace path */
	                 "capabilities", "add", "SETUID", "SETGID", "SETFCAP", "drop", "ALL",
	                 /* root: the IDs mapped are the container's own, 0 first, and
	                  * buildah's storage and the built layers are owned by root */
	                 "runAsNonRoot", 0, "runAsUser", 0,
	                 /* the runtime's default seccomp profile refuses
	                  * unshare(CLONE_NEWUSER) to a process without CAP_SYS_ADMIN; a
	                  * Localhost profile that allows it is the stricter alternative */
	                 "seccompProfile", "type", "Unconfined");
}

int runner_security_context_parse(json_t **out, const char *text)
{
	json_error_t jerr;
	json_t *j;

	*out = NULL;
	/* jansson refuses anything but an array or object at the top */
	if (!(j = json_loads(text, JSON_REJECT_DUPLICATES, &jerr)))
		return err_set("not a JSON object (%s, column %d)", jerr.text, jerr.column);
	if (!json_is_object(j)) {
		json_decref(j);
		return err_set("a JSON array, not an object");
	}
	*out = j;
	return 0;
}

static void set_failure(struct runner_result *out, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_failure(struct runner_result *out, const char *reason, const char *fmt, ...)
{
	va_list ap;

	out->succeeded = false;
	snprintf(out->reason, sizeof(out->reason), "%s", reason);
	va_start(ap, fmt);
	vsnprintf(out->message, sizeof(out->message), fmt, ap);
	va_end(ap);
	/* one line for the pusher */
	for (char *p = out->message; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
}

/* OUT gets IMAGE (REGISTRY/NAME:TAG) pinned: its name, "@", DIGEST. */
static void set_success(struct runner_result *out, const char *image, const char *digest)
{
	if (imageref_pin(out->image, sizeof(out->image), image, digest) < 0) {
		set_failure(out, "RunnerFailed", "%s", err_msg());
		return;
	}
	out->succeeded = true;
	out->reason[0] = out->message[0] = '\0';
	snprintf(out->digest, sizeof(out->digest), "%s", digest);
}

/* The builder's reasons (docs/builder.md) become the runner's; those that
 * mean the runner handed the builder something it refused (InvalidInput),
 * failed itself (Error) or gave it a place buildah cannot run in
 * (Unprivileged: the Pod's securityContext) are RunnerFailed. */
static const char *reason_of_builder(const char *reason)
{
	static const char *const same[] = {"BuildFailed", "PushFailed", "Timeout", "SourceFailed",
	                                   "Cancelled"};

	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++)
		if (!strcmp(reason, same[i]))
			return same[i];
	return "RunnerFailed";
}

static void outcome_from_result(struct run *r)
{
	const struct buildsrv_result *res = &r->result;

	if (res->succeeded && imageref_is_sha256(res->digest))
		set_success(r->out, r->b->image, res->digest);
	else if (res->succeeded)
		set_failure(r->out, "RunnerFailed", "builder reported success without a digest");
	else if (!strcmp(res->reason, "Cancelled") && !(r->cancel && *r->cancel) && r->out->pod[0])
		/* a signal we did not send: the Pod was deleted or evicted */
		set_failure(r->out, "RunnerFailed",
		            "pod %s/%s was stopped before the build ended: %s", r->b->ns,
		            r->out->pod, res->message);
	else if (!strcmp(res->reason, "Cancelled") && !(r->cancel && *r->cancel))
		set_failure(r->out, "RunnerFailed", "builder was stopped from outside gitd: %s",
		            res->message);
	else
		set_failure(r->out, reason_of_builder(res->reason), "%s",
		            res->message[0] ? res->message : res->reason);
}

/* Exit code CODE of a builder that reported no result: reason and words. */
static const char *reason_of_exit(int code, const char **what)
{
	switch (code) {
	case BUILDER_EXIT_USAGE:
		*what = "usage error";
		return "RunnerFailed";
	case BUILDER_EXIT_SOURCE:
		*what = "source problem";
		return "SourceFailed";
	case BUILDER_EXIT_BUILD:
		*what = "build failed";
		return "BuildFailed";
	case BUILDER_EXIT_PUSH:
		*what = "push failed";
		return "PushFailed";
	case BUILDER_EXIT_TIMEOUT:
		*what = "timed out";
		return "Timeout";
	case BUILDER_EXIT_PRIVILEGES:
		*what = "missing privileges";
		return "RunnerFailed";
	case BUILDER_EXIT_PUSHED:
	case BUILDER_EXIT_REPORT:
		*what = "pushed, result not delivered";
		return "RunnerFailed";
	default:
		/* 128+N: a signal the runner did not send (it checks its own first) */
		*what = code > 128 ? "stopped by a signal" : "internal error";
		return "RunnerFailed";
	}
}

static void deliver(void *arg, const char *line)
{
	struct run *r = arg;

	r->reported_lines++;
	if (r->on_line)
		r->on_line(r->arg, line);
}

/* Takes what the builder reported so far: log lines, then the result. */
static void poll_report(struct run *r)
{
	buildsrv_drain(r->bb, deliver, r);
	if (!r->has_result && buildsrv_result(&r->result, r->bb))
		r->has_result = true;
}

/* Temp directory of a local build: the token file and the digest file. */
struct workdir {
	char dir[4096];
	char token[4200];
	char digest[4200];
};

static int workdir_make(struct workdir *w, const char *token)
{
	const char *tmp = getenv("TMPDIR");
	size_t len = strlen(token);
	int fd = -1, ret = -1;

	if (!tmp || tmp[0] != '/')
		tmp = "/tmp";
	if ((size_t)snprintf(w->dir, sizeof(w->dir), "%s/slipway-runner-XXXXXX", tmp) >=
	    sizeof(w->dir))
		return err_set("TMPDIR is too long");
	if (!mkdtemp(w->dir)) {
		err_set("cannot create a directory in %s: %s", tmp, strerror(errno));
		w->dir[0] = '\0';
		return -1;
	}
	snprintf(w->token, sizeof(w->token), "%s/token", w->dir);
	snprintf(w->digest, sizeof(w->digest), "%s/digest", w->dir);
	fd = open(w->token, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		err_set("cannot create %s: %s", w->token, strerror(errno));
		goto out;
	}
	if (write(fd, token, len) != (ssize_t)len || write(fd, "\n", 1) != 1) {
		err_set("cannot write %s: %s", w->token, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

static void workdir_remove(struct workdir *w)
{
	if (!w->dir[0])
		return;
	if (fs_remove_tree(w->dir) < 0)
		log_warn("%s", err_msg());
}

/* Reads the digest the builder wrote to PATH into BUF, or returns -1. */
static int read_digest(char *buf, size_t size, const char *path)
{
	FILE *f = fopen(path, "re");
	int ret = -1;

	if (!f)
		return -1;
	if (fgets(buf, (int)size, f)) {
		buf[strcspn(buf, "\n")] = '\0';
		ret = imageref_is_sha256(buf) ? 0 : -1;
	}
	fclose(f);
	return ret;
}

/* The builder's own stdout repeats what it reports: keep only a tail, for
 * a builder whose report never arrived, and its last error line. */
static void on_local_line(void *arg, const char *line)
{
	struct run *r = arg;
	char *copy = strdup(line);

	if (!strncmp(line, "builder: ", 9))
		snprintf(r->last_error, sizeof(r->last_error), "%s", line + 9);
	if (!copy)
		return;
	free(r->tail[r->tail_next]);
	r->tail[r->tail_next] = copy;
	r->tail_next = (r->tail_next + 1) % RUNNER_TAIL_MAX;
	if (r->tail_len < RUNNER_TAIL_MAX)
		r->tail_len++;
}

static void on_local_tick(void *arg)
{
	poll_report(arg);
}

static void tail_release(struct run *r, bool deliver_it)
{
	size_t first = (r->tail_next + RUNNER_TAIL_MAX - r->tail_len) % RUNNER_TAIL_MAX;

	for (size_t i = 0; i < r->tail_len; i++) {
		size_t k = (first + i) % RUNNER_TAIL_MAX;

		if (deliver_it && r->on_line)
			r->on_line(r->arg, r->tail[k]);
	}
	for (size_t i = 0; i < RUNNER_TAIL_MAX; i++) {
		free(r->tail[i]);
		r->tail[i] = NULL;
	}
	r->tail_len = r->tail_next = 0;
}

/* A NULL-terminated argv under construction: borrowed strings, plus the few
 * the list formats itself (owned, freed with it). */
struct argv_list {
	const char *v[ARGV_FIXED_MAX + 256 + 1]; /* builder takes 256 build args */
	size_t n;
	char *owned[4];
	size_t n_owned;
};

static int argv_add(struct argv_list *a, const char *s)
{
	if (a->n + 1 >= sizeof(a->v) / sizeof(a->v[0]))
		return err_set("too many builder arguments");
	a->v[a->n++] = s;
	a->v[a->n] = NULL;
	return 0;
}

static int argv_add_long(struct argv_list *a, long value)
{
	char *s;

	if (a->n_owned == sizeof(a->owned) / sizeof(a->owned[0]))
		return err_set("too many builder arguments");
	if (asprintf(&s, "%ld", value) < 0)
		return err_set("out of memory");
	a->owned[a->n_owned++] = s;
	return argv_add(a, s);
}

static void argv_release(struct argv_list *a)
{
	for (size_t i = 0; i < a->n_owned; i++)
		free(a->owned[i]);
	memset(a, 0, sizeof(*a));
}

/* The options of `builder build` that both modes pass; TOKEN_FILE is where
 * the builder finds the token, TIMEOUT_S its --timeout. */
static int argv_add_build(struct argv_list *a, const struct run *r, const struct runner_config *cfg,
                          const char *token_file, long timeout_s)
{
	const struct runner_build *b = r->b;

	if (argv_add(a, "build") < 0 || argv_add(a, "--image") < 0 || argv_add(a, b->image) < 0 ||
	    argv_add(a, "--source-url") < 0 || argv_add(a, buildsrv_source_url(r->bb)) < 0 ||
	    argv_add(a, "--source-token-file") < 0 || argv_add(a, token_file) < 0 ||
	    argv_add(a, "--report-url") < 0 || argv_add(a, buildsrv_report_url(r->bb)) < 0 ||
	    argv_add(a, "--report-token-file") < 0 || argv_add(a, token_file) < 0 ||
	    argv_add(a, "--timeout") < 0 || argv_add_long(a, timeout_s) < 0)
		return -1;
	if (b->path && *b->path && (argv_add(a, "--path") < 0 || argv_add(a, b->path) < 0))
		return -1;
	if (b->dockerfile && *b->dockerfile &&
	    (argv_add(a, "--dockerfile") < 0 || argv_add(a, b->dockerfile) < 0))
		return -1;
	for (size_t i = 0; b->build_args && b->build_args[i]; i++)
		if (argv_add(a, "--build-arg") < 0 || argv_add(a, b->build_args[i]) < 0)
			return -1;
	if (b->insecure_registry && argv_add(a, "--insecure-registry") < 0)
		return -1;
	if (cfg->storage_driver &&
	    (argv_add(a, "--storage-driver") < 0 || argv_add(a, cfg->storage_driver) < 0))
		return -1;
	return 0;
}

/* --- local -------------------------------------------------------------- */

static int run_local(struct run *r, const struct runner_config *cfg, long timeout_ms,
                     const volatile sig_atomic_t *cancel)
{
	const char *program = cfg->program ? cfg->program : "builder";
	const char *tmp = getenv("TMPDIR");
	struct workdir w = {0};
	struct argv_list a = {0};
	struct spawn_opts o = {0};
	struct spawn_result sr;
	char *home = NULL, *tmpdir = NULL, status[64], digest[80];
	const char *env[5];
	const char *what, *reason;
	int ret = -1;

	if (!tmp || tmp[0] != '/')
		tmp = "/tmp";
	if (workdir_make(&w, buildsrv_token(r->bb)) < 0)
		goto out;
	if (argv_add(&a, program) < 0 ||
	    argv_add_build(&a, r, cfg, w.token, (timeout_ms + 999) / 1000) < 0 ||
	    argv_add(&a, "--digest-file") < 0 || argv_add(&a, w.digest) < 0)
		goto out;
	if (r->b->registry_auth_file &&
	    (argv_add(&a, "--registry-auth") < 0 || argv_add(&a, r->b->registry_auth_file) < 0))
		goto out;
	if (cfg->storage_root &&
	    (argv_add(&a, "--storage-root") < 0 || argv_add(&a, cfg->storage_root) < 0))
		goto out;
	if (asprintf(&home, "HOME=%s", w.dir) < 0 || asprintf(&tmpdir, "TMPDIR=%s", tmp) < 0) {
		err_set("out of memory");
		goto out;
	}
	env[0] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	env[1] = home;
	env[2] = tmpdir;
	env[3] = "LANG=C";
	env[4] = NULL;

	o.argv = a.v;
	o.env = env;
	o.cwd = w.dir;
	o.in_fd = -1;
	o.out_fd = -1;
	o.on_line = on_local_line;
	o.on_tick = on_local_tick;
	o.arg = r;
	o.timeout_ms = timeout_ms + RUNNER_LOCAL_SLACK_MS;
	o.cancel = cancel;
	o.die_with_parent = true; /* a build outlives no gitd */
	if (spawn_run(&sr, &o) < 0) {
		err_set("builder: %s", err_msg());
		goto out;
	}
	poll_report(r);
	spawn_describe(status, sizeof(status), sr.status);
	if (r->has_result)
		outcome_from_result(r);
	else if (sr.cancelled)
		set_failure(r->out, "Cancelled", "build cancelled");
	else if (sr.timed_out)
		set_failure(r->out, "Timeout", "builder did not finish within %ld s",
		            timeout_ms / 1000);
	else if (WIFEXITED(sr.status) &&
	         (WEXITSTATUS(sr.status) == BUILDER_EXIT_PUSHED ||
	          WEXITSTATUS(sr.status) == BUILDER_EXIT_REPORT) &&
	         read_digest(digest, sizeof(digest), w.digest) == 0)
		set_success(r->out, r->b->image, digest);
	else if (WIFEXITED(sr.status)) {
		reason = reason_of_exit(WEXITSTATUS(sr.status), &what);
		set_failure(r->out, reason, "builder %s (%s)%s%s", status, what,
		            r->last_error[0] ? ": " : "", r->last_error);
	} else
		set_failure(r->out, "RunnerFailed", "builder stopped by %s%s%s", status,
		            r->last_error[0] ? ": " : "", r->last_error);
	/* no report arrived: its stdout is the only log there is */
	tail_release(r, r->reported_lines == 0);
	ret = 0;
out:
	tail_release(r, false);
	workdir_remove(&w);
	argv_release(&a);
	free(home);
	free(tmpdir);
	return ret;
}

/* --- pod ---------------------------------------------------------------- */

bool runner_is_label_value(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > 63)
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];
		bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		             (ch >= '0' && ch <= '9');

		if (!alnum && ((i == 0 || i == len - 1) || (ch != '.' && ch != '_' && ch != '-')))
			return false;
	}
	return true;
}

/* "REMOTE-KIND-XXXXX": the suffix from the alphabet Kubernetes uses for
 * generateName (no vowels, no look-alikes). The name is made here, not by
 * generateName, because the companion named after it must exist first. */
static int pod_name(char *buf, size_t size, const char *remote, const char *kind)
{
	static const char alphabet[] = "bcdfghjklmnpqrstvwxz2456789";
	unsigned char rnd[5];
	char suffix[6];
	int len = (int)strlen(remote);

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return err_set("getrandom: %s", strerror(errno));
	for (size_t i = 0; i < sizeof(rnd); i++)
		suffix[i] = alphabet[rnd[i] % (sizeof(alphabet) - 1)];
	suffix[5] = '\0';
	/* 63 in all, a DNS label, as the Pod's host name is */
	if (len > 45)
		len = 45;
	while (len > 0 && (remote[len - 1] == '.' || remote[len - 1] == '-'))
		len--;
	snprintf(buf, size, "%.*s-%.5s-%s", len, remote, kind, suffix);
	return 0;
}

static json_t *pod_labels(const struct runner_build *b)
{
	json_t *l = json_pack("{s:s, s:s}", "app.kubernetes.io/managed-by", "slipway",
	                      "slipway.dev/component", "builder");

	if (l && runner_is_label_value(b->remote))
		json_object_set_new(l, "slipway.dev/remote", json_string(b->remote));
	if (l && b->pipelinerun && runner_is_label_value(b->pipelinerun))
		json_object_set_new(l, "slipway.dev/pipelinerun", json_string(b->pipelinerun));
	return l;
}

static json_t *pod_annotations(const struct runner_build *b)
{
	json_t *a = json_pack("{s:s, s:s, s:s, s:s}", "slipway.dev/remote", b->remote,
	                      "slipway.dev/deployment", b->deployment ? b->deployment : "",
	                      "slipway.dev/container", b->container ? b->container : "",
	                      "slipway.dev/image", b->image);

	if (a && b->pipelinerun)
		json_object_set_new(a, "slipway.dev/pipelinerun", json_string(b->pipelinerun));
	return a;
}

static json_t *secret_object(const char *name, const struct runner_build *b, const char *token)
{
	return json_pack("{s:s, s:s, s:{s:s, s:s, s:o}, s:s, s:b, s:{s:s}}", "apiVersion", "v1",
	                 "kind", "Secret", "metadata", "name", name, "namespace", b->ns, "labels",
	                 pod_labels(b), "type", "Opaque", "immutable", 1, "stringData", "token",
	                 token);
}

/* The Pod (docs/builder.md "Runners" explains each field). */
static json_t *pod_object(const char *name, const char *secret, const struct run *r,
                          const struct runner_config *cfg, const char *image, long timeout_s)
{
	const struct runner_build *b = r->b;
	const json_t *resources = json_object_get(b->spec_builder, "resources");
	struct argv_list a = {0};
	json_t *pod = NULL, *command = NULL, *mounts = NULL, *volumes = NULL, *ctr;

	if (argv_add(&a, "builder") < 0 ||
	    argv_add_build(&a, r, cfg, POD_TOKEN_FILE, timeout_s) < 0)
		goto fail;
	if (b->registry_secret &&
	    (argv_add(&a, "--registry-auth") < 0 || argv_add(&a, POD_REGISTRY_FILE) < 0))
		goto fail;
	if (!(command = json_array()))
		goto oom;
	for (size_t i = 0; i < a.n; i++)
		if (json_array_append_new(command, json_string(a.v[i])) < 0)
			goto oom;
	mounts = json_pack("[{s:s, s:s, s:b}]", "name", "token", "mountPath", POD_TOKEN_DIR,
	                   "readOnly", 1);
	volumes = json_pack("[{s:s, s:{s:s, s:i, s:[{s:s, s:s}]}}]", "name", "token", "secret",
	                    "secretName", secret, "defaultMode", 0400, "items", "key", "token",
	                    "path", "token");
	if (!mounts || !volumes)
		goto oom;
	if (b->registry_secret &&
	    (json_array_append_new(mounts,
	                           json_pack("{s:s, s:s, s:b}", "name", "registry", "mountPath",
	                                     POD_REGISTRY_DIR, "readOnly", 1)) < 0 ||
	     json_array_append_new(volumes, json_pack("{s:s, s:{s:s, s:i, s:[{s:s, s:s}]}}", "name",
	                                              "registry", "secret", "secretName",
	                                              b->registry_secret, "defaultMode", 0400,
	                                              "items", "key", ".dockerconfigjson", "path",
	                                              ".dockerconfigjson")) < 0))
		goto oom;
	ctr = json_pack("{s:s, s:s, s:o, s:o, s:o}", "name", "builder", "image", image, "command",
	                command, "volumeMounts", mounts, "securityContext",
	                cfg->security_context ? json_deep_copy(cfg->security_context)
	                                      : runner_security_context_default());
	command = mounts = NULL;
	if (!ctr)
		goto oom;
	if (json_is_object(resources))
		json_object_set_new(ctr, "resources", json_deep_copy(resources));
	pod = runner_pod_object(cfg, b->ns, name, pod_labels(b), pod_annotations(b), ctr, volumes,
	                        timeout_s);
	volumes = NULL;
	argv_release(&a);
	return pod;
oom:
	err_set("out of memory");
fail:
	json_decref(command);
	json_decref(mounts);
	json_decref(volumes);
	argv_release(&a);
	return NULL;
}

json_t *runner_pod_object(const struct runner_config *cfg, const char *ns, const char *name,
                          json_t *labels, json_t *annotations, json_t *container, json_t *volumes,
                          long deadline_s)
{
	json_t *pod, *spec;

	pod = json_pack("{s:s, s:s, s:{s:s, s:s, s:o, s:o}, s:{s:s, s:b, s:b, s:I, s:i, s:[o], "
	                "s:o}}",
	                "apiVersion", "v1", "kind", "Pod", "metadata", "name", name, "namespace",
	                ns, "labels", labels, "annotations", annotations, "spec", "restartPolicy",
	                "Never", "automountServiceAccountToken", 0, "enableServiceLinks", 0,
	                "activeDeadlineSeconds", (json_int_t)deadline_s,
	                "terminationGracePeriodSeconds", 10, "containers", container, "volumes",
	                volumes ? volumes : json_array());
	if (!pod) {
		err_set("out of memory");
		return NULL;
	}
	spec = json_object_get(pod, "spec");
	if (cfg && cfg->scheduler_name)
		json_object_set_new(spec, "schedulerName", json_string(cfg->scheduler_name));
	if (cfg && cfg->node_selector && cfg->node_selector[0]) {
		json_t *sel = json_object();

		for (size_t i = 0; sel && cfg->node_selector[i]; i++) {
			const char *eq = strchr(cfg->node_selector[i], '=');
			char key[320];

			if (!eq || (size_t)(eq - cfg->node_selector[i]) >= sizeof(key)) {
				json_decref(sel);
				json_decref(pod);
				err_set("node selector \"%s\" is not KEY=VALUE",
				        cfg->node_selector[i]);
				return NULL;
			}
			snprintf(key, sizeof(key), "%.*s", (int)(eq - cfg->node_selector[i]),
			         cfg->node_selector[i]);
			json_object_set_new(sel, key, json_string(eq + 1));
		}
		if (!sel || json_object_set_new(spec, "nodeSelector", sel) < 0) {
			json_decref(pod);
			err_set("out of memory");
			return NULL;
		}
	}
	return pod;
}

static const char *str_at(const json_t *obj, const char *a, const char *b)
{
	const json_t *j = json_object_get(obj, a);

	if (b)
		j = json_object_get(j, b);
	return json_string_value(j);
}

const json_t *runner_pod_container_status(const json_t *pod, const char *container)
{
	const json_t *st = json_object_get(json_object_get(pod, "status"), "containerStatuses");
	size_t i;
	const json_t *cs;

	json_array_foreach(st, i, cs)
	{
		const char *n = str_at(cs, "name", NULL);

		if (n && !strcmp(n, container))
			return cs;
	}
	return NULL;
}

bool runner_pod_cannot_start(char *why, size_t size, const json_t *pod, const char *container)
{
	static const char *const fatal[] = {"ImagePullBackOff", "InvalidImageName",
	                                    "CreateContainerConfigError", "CreateContainerError",
	                                    "RunContainerError"};
	const json_t *cs = runner_pod_container_status(pod, container);
	const json_t *waiting = json_object_get(json_object_get(cs, "state"), "waiting");
	const char *reason = str_at(waiting, "reason", NULL);
	const char *msg = str_at(waiting, "message", NULL);

	if (!reason)
		return false;
	for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
		if (!strcmp(reason, fatal[i])) {
			snprintf(why, size, "%s%s%s", reason, msg ? ": " : "", msg ? msg : "");
			return true;
		}
	return false;
}

/* A Pod that cannot start at all: an image that cannot be pulled, a
 * container the runtime refuses. Sets the outcome and returns true. */
static bool pod_is_stuck(struct run *r, const char *name, const json_t *pod)
{
	char why[900];

	if (!runner_pod_cannot_start(why, sizeof(why), pod, "builder"))
		return false;
	set_failure(r->out, "RunnerFailed", "pod %s/%s cannot start: %s", r->b->ns, name, why);
	return true;
}

/* Judges a Pod that ended without a result from its status. */
static void outcome_from_pod(struct run *r, const char *name, const json_t *pod, long timeout_s)
{
	const json_t *status = json_object_get(pod, "status");
	const char *reason = str_at(status, "reason", NULL);
	const char *msg = str_at(status, "message", NULL);
	const json_t *term = json_object_get(
	    json_object_get(runner_pod_container_status(pod, "builder"), "state"), "terminated");
	const char *what, *why;

	if (reason && !strcmp(reason, "DeadlineExceeded")) {
		set_failure(r->out, "Timeout", "pod %s/%s exceeded its deadline of %ld s", r->b->ns,
		            name, timeout_s);
	} else if (term) {
		int code = (int)json_integer_value(json_object_get(term, "exitCode"));
		const char *treason = str_at(term, "reason", NULL);
		const char *tmsg = str_at(term, "message", NULL);

		if (treason && !strcmp(treason, "OOMKilled"))
			set_failure(
			    r->out, "RunnerFailed",
			    "pod %s/%s: builder ran out of memory (OOMKilled, exit code %d)",
			    r->b->ns, name, code);
		else if ((why = reason_of_exit(code, &what)))
			set_failure(r->out, why, "pod %s/%s: builder exit code %d (%s)%s%s%s%s",
			            r->b->ns, name, code, what, treason ? ", " : "",
			            treason ? treason : "", tmsg ? ": " : "", tmsg ? tmsg : "");
	} else {
		set_failure(r->out, "RunnerFailed", "pod %s/%s failed%s%s%s%s", r->b->ns, name,
		            reason ? ": " : "", reason ? reason : "", msg ? ": " : "",
		            msg ? msg : "");
	}
}

void runner_pod_pending_reason(char *buf, size_t size, const json_t *pod)
{
	const json_t *conds = json_object_get(json_object_get(pod, "status"), "conditions");
	const json_t *cond;
	size_t i;

	buf[0] = '\0';
	json_array_foreach(conds, i, cond)
	{
		const char *type = str_at(cond, "type", NULL), *st = str_at(cond, "status", NULL);
		const char *msg = str_at(cond, "message", NULL);

		if (type && st && !strcmp(type, "PodScheduled") && !strcmp(st, "False"))
			snprintf(buf, size, ": not scheduled: %s", msg ? msg : "");
	}
}

static void delete_quietly(struct kube_client *c, const char *gvr, const char *ns, const char *name)
{
	int rc = kube_delete(NULL, c, gvr, ns, name, "Background");

	if (rc < 0 && rc != KUBE_ENOTFOUND)
		log_warn("cannot delete %s %s/%s: %s", gvr, ns, name, err_msg());
}

int runner_pod_create(struct runner_pod *out, struct kube_client *c, const char *ns,
                      const char *remote, const char *kind, const struct runner_pod_maker *m)
{
	json_t *obj = NULL;
	const char *uid;
	bool have_companion = false;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!c)
		return err_set("pods need a Kubernetes client");
	snprintf(out->ns, sizeof(out->ns), "%s", ns);
	if (m->companion_gvr)
		snprintf(out->companion_gvr, sizeof(out->companion_gvr), "%s", m->companion_gvr);
	/* A name clash (AlreadyExists) is tried again with a new name. */
	for (int tries = 0; tries < 3; tries++) {
		if (pod_name(out->name, sizeof(out->name), remote, kind) < 0)
			goto fail;
		if (m->companion_gvr) {
			snprintf(out->companion, sizeof(out->companion), "%s-%s", out->name,
			         m->companion_suffix);
			if (!(obj = m->companion(m->arg, out->companion)))
				goto fail;
			rc = kube_create(NULL, c, m->companion_gvr, ns, obj);
			json_decref(obj);
			obj = NULL;
			if (rc == KUBE_EEXISTS)
				continue;
			if (rc < 0) {
				err_set("cannot create %s %s/%s: %s", m->companion_gvr, ns,
				        out->companion, err_msg());
				goto fail;
			}
			have_companion = true;
		}
		if (!(obj = m->pod(m->arg, out->name, out->companion)))
			goto fail;
		rc = kube_create(&out->obj, c, "v1/pods", ns, obj);
		json_decref(obj);
		obj = NULL;
		if (rc == KUBE_EEXISTS && have_companion) {
			delete_quietly(c, m->companion_gvr, ns, out->companion);
			have_companion = false;
		}
		if (rc == KUBE_EEXISTS)
			continue;
		if (rc < 0) {
			err_set("cannot create pod %s/%s: %s", ns, out->name, err_msg());
			goto fail;
		}
		break;
	}
	if (!out->obj) {
		err_set("cannot create a pod in %s: names taken three times", ns);
		goto fail;
	}
	if (!have_companion)
		return 0;
	/* The companion goes with the Pod should we die before deleting both. */
	uid = str_at(out->obj, "metadata", "uid");
	obj =
	    json_pack("{s:{s:[{s:s, s:s, s:s, s:s}]}}", "metadata", "ownerReferences", "apiVersion",
	              "v1", "kind", "Pod", "name", out->name, "uid", uid ? uid : "");
	if (!obj || kube_patch(NULL, c, m->companion_gvr, ns, out->companion, KUBE_PATCH_MERGE, obj,
	                       NULL) < 0)
		log_warn("%s %s/%s: cannot set its owner: %s", m->companion_gvr, ns, out->companion,
		         err_msg());
	json_decref(obj);
	return 0;
fail:
	if (have_companion)
		delete_quietly(c, m->companion_gvr, ns, out->companion);
	memset(out, 0, sizeof(*out));
	return -1;
}

void runner_pod_delete(struct runner_pod *p, struct kube_client *c)
{
	if (p->obj)
		delete_quietly(c, "v1/pods", p->ns, p->name);
	if (p->companion[0] && p->companion_gvr[0])
		delete_quietly(c, p->companion_gvr, p->ns, p->companion);
	runner_pod_release(p);
}

void runner_pod_release(struct runner_pod *p)
{
	json_decref(p->obj);
	memset(p, 0, sizeof(*p));
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* A Cancelled result from a builder the runner did not cancel. */
static bool stopped_from_outside(const struct run *r)
{
	return r->has_result && !r->result.succeeded && !strcmp(r->result.reason, "Cancelled") &&
	       !(r->cancel && *r->cancel);
}

/* Judges POD (NULL: it is gone) when it has ended, been deleted or cannot
 * start, and returns true; false while it is on its way. */
static bool pod_has_ended(struct run *r, const char *name, const json_t *pod, long timeout_s)
{
	const char *phase = str_at(pod, "status", "phase");
	const char *reason = str_at(pod, "status", "reason");

	/* the builder reports before it exits: take what came */
	poll_report(r);
	if (!pod || json_object_get(json_object_get(pod, "metadata"), "deletionTimestamp")) {
		if (!pod || stopped_from_outside(r) || !r->has_result) {
			set_failure(r->out, "RunnerFailed",
			            "pod %s/%s was deleted before the build ended%s%s", r->b->ns,
			            name, r->has_result ? ": " : "",
			            r->has_result ? r->result.message : "");
			return true;
		}
		return false;
	}
	if (!phase || (strcmp(phase, "Succeeded") && strcmp(phase, "Failed")))
		return pod_is_stuck(r, name, pod);
	if (reason && !strcmp(reason, "DeadlineExceeded"))
		set_failure(r->out, "Timeout", "pod %s/%s exceeded its deadline of %ld s", r->b->ns,
		            name, timeout_s);
	else if (r->has_result)
		outcome_from_result(r);
	else
		outcome_from_pod(r, name, pod, timeout_s);
	return true;
}

/* What runner_pod_create asks for a build: its token Secret and its Pod. */
struct build_pod {
	const struct run *r;
	const struct runner_config *cfg;
	const char *image;
	long timeout_s;
};

static json_t *build_secret(void *arg, const char *name)
{
	const struct build_pod *bp = arg;
	json_t *obj = secret_object(name, bp->r->b, buildsrv_token(bp->r->bb));

	if (!obj)
		err_set("out of memory");
	return obj;
}

static json_t *build_pod(void *arg, const char *name, const char *secret)
{
	const struct build_pod *bp = arg;

	return pod_object(name, secret, bp->r, bp->cfg, bp->image, bp->timeout_s);
}

static int run_pod(struct run *r, const struct runner_config *cfg, struct kube_client *c,
                   const char *image, long timeout_ms, const volatile sig_atomic_t *cancel)
{
	const char *ns = r->b->ns;
	long timeout_s = (timeout_ms + 999) / 1000;
	struct build_pod bp = {.r = r, .cfg = cfg, .image = image, .timeout_s = timeout_s};
	struct runner_pod_maker m = {.companion_gvr = "v1/secrets",
	                             .companion_suffix = "token",
	                             .companion = build_secret,
	                             .pod = build_pod,
	                             .arg = &bp};
	struct runner_pod rp;
	const char *name;
	char why[512];
	json_t *pod = NULL;
	long long deadline, next_get = 0, now, outside_at = 0;
	int rc, ret = -1;

	if (runner_pod_create(&rp, c, ns, r->b->remote, "build", &m) < 0) {
		if (!c)
			err_set("pod builds need a Kubernetes client");
		return -1;
	}
	name = rp.name;
	pod = json_incref(rp.obj);
	snprintf(r->out->pod, sizeof(r->out->pod), "%s", name);
	log_info("builder pod %s/%s for %s", ns, name, r->b->image);

	deadline = clock_now_ms() + timeout_ms + RUNNER_POD_SLACK_MS;
	for (;;) {
		poll_report(r);
		if (r->has_result && !stopped_from_outside(r)) {
			outcome_from_result(r);
			break;
		}
		/* A builder stopped by a signal we did not send: the Pod's status
		 * says why (deadline, deletion), once the kubelet has written it. */
		if (r->has_result && !outside_at)
			outside_at = clock_now_ms();
		if (cancel && *cancel) {
			set_failure(r->out, "Cancelled", "build cancelled");
			break;
		}
		now = clock_now_ms();
		if (outside_at && now - outside_at >= RUNNER_POD_STATUS_WAIT_MS) {
			outcome_from_result(r);
			break;
		}
		if (now >= deadline) {
			runner_pod_pending_reason(why, sizeof(why), pod);
			set_failure(r->out, "Timeout", "pod %s/%s did not finish within %ld s%s",
			            ns, name, timeout_s, why);
			break;
		}
		if (now >= next_get) {
			next_get = now + RUNNER_POD_GET_MS;
			json_decref(pod);
			pod = NULL;
			rc = kube_get(&pod, c, "v1/pods", ns, name);
			if (rc < 0 && rc != KUBE_ENOTFOUND)
				log_warn("pod %s/%s: %s", ns, name, err_msg());
			else if (pod_has_ended(r, name, rc == KUBE_ENOTFOUND ? NULL : pod,
			                       timeout_s))
				break;
		}
		sleep_ms(RUNNER_POLL_MS);
	}
	ret = 0;
	runner_pod_delete(&rp, c);
	json_decref(pod);
	return ret;
}

/* --- both --------------------------------------------------------------- */

int runner_build(struct runner_result *out, const struct runner_config *cfg, struct kube_client *c,
                 const struct runner_build *b, void (*on_line)(void *arg, const char *line),
                 void *arg, const volatile sig_atomic_t *cancel)
{
	struct run r = {.out = out, .b = b, .on_line = on_line, .arg = arg, .cancel = cancel};
	const json_t *mode_j = json_object_get(b->spec_builder, "mode");
	const json_t *timeout_j = json_object_get(b->spec_builder, "timeoutSeconds");
	const char *image = str_at(b->spec_builder, "image", NULL);
	enum runner_mode mode = cfg->default_mode;
	long long start = clock_now_ms();
	long timeout_ms =
	    cfg->default_timeout_ms > 0 ? cfg->default_timeout_ms : RUNNER_DEFAULT_TIMEOUT_MS;
	int ret = -1;

	memset(out, 0, sizeof(*out));
	if (json_is_string(mode_j) && runner_mode_parse(&mode, json_string_value(mode_j)) < 0) {
		err_set("remote %s/%s: spec.builder.mode: %s", b->ns, b->remote, err_msg());
		goto out;
	}
	if (json_is_integer(timeout_j)) {
		json_int_t secs = json_integer_value(timeout_j);

		if (secs < 1 || secs > 7L * 24 * 3600) {
			err_set("remote %s/%s: spec.builder.timeoutSeconds %lld is not 1 to 604800",
			        b->ns, b->remote, (long long)secs);
			goto out;
		}
		timeout_ms = (long)secs * 1000;
	}
	if (!image || !*image)
		image = cfg->image;
	if (mode == RUNNER_POD && (!image || !*image)) {
		err_set("remote %s/%s: no builder image (spec.builder.image or gitd's flag)", b->ns,
		        b->remote);
		goto out;
	}
	if (buildsrv_add(&r.bb, b->srv, b->source_path) < 0)
		goto out;
	if (mode == RUNNER_LOCAL)
		ret = run_local(&r, cfg, timeout_ms, cancel);
	else
		ret = run_pod(&r, cfg, c, image, timeout_ms, cancel);
	/* the last lines may have come with the result */
	if (ret == 0)
		buildsrv_drain(r.bb, deliver, &r);
out:
	if (ret < 0)
		set_failure(out, "RunnerFailed", "%s", err_msg());
	out->start_ms = out->tail_ms = -1;
	if (r.bb) {
		long long source_at, result_at;

		buildsrv_times(&source_at, &result_at, r.bb);
		if (source_at)
			out->start_ms = source_at - start;
		if (result_at)
			out->tail_ms = clock_now_ms() - result_at;
	}
	buildsrv_remove(b->srv, r.bb);
	out->seconds = (double)(clock_now_ms() - start) / 1000.0;
	return ret;
}
