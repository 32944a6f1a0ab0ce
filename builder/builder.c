/* builder: one build, top to bottom: check the inputs, make a private work
 * directory, get the source, find the Dockerfile, copy the registry
 * credentials, buildah bud, buildah push, remove the work directory (see
 * builder.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "builder.h"
#include "clock.h"
#include "err.h"
#include "fs.h"
#include "imageref.h"
#include "log.h"
#include "privileges.h"
#include "source.h"
#include "spawn.h"
#include "banned.h"

/* buildah's environment: nothing of ours leaks in (no registry credentials
 * from $HOME, no REGISTRY_AUTH_FILE, no proxies by accident). */
#define BUILDAH_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* One build in progress. */
struct build {
	const struct builder_opts *o;
	struct builder_result *out;
	char *work;           /* private work directory (0700), removed after */
	char *source;         /* real path of the source root */
	char *context;        /* real path of the build context */
	char *dockerfile;     /* real path of the Dockerfile, inside context */
	char *auth;           /* 0600 copy of the registry auth file, or NULL */
	char *storage;        /* buildah's --root; runroot next to it */
	char *runroot;        /* buildah's --runroot */
	char *digest_file;    /* where buildah push writes the digest */
	char *env[8];         /* buildah's environment */
	long deadline;        /* monotonic ms; 0: none */
	char last_error[512]; /* buildah's last "Error: ..." (or last) line */
	bool saw_error_line;  /* last_error is an "Error:" line */
};

/* asprintf() that returns the string, or NULL when out of memory. */
static char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *xprintf(const char *fmt, ...)
{
	char *s;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : s;
}

/* Sets the message and returns CODE. */
static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(int code, const char *fmt, ...)
{
	char msg[ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	err_set("%s", msg);
	return code;
}

static void say(struct build *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(struct build *b, const char *fmt, ...)
{
	char line[SPAWN_LINE_MAX];
	va_list ap;

	if (!b->o->log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	b->o->log(b->o->log_arg, line);
}

/* ---- checks of single inputs (public, unit-tested) ---------------------- */

int builder_build_arg_check(const char *arg)
{
	size_t name_len;

	if (!arg)
		return fail(BUILDER_EINVALID, "no build argument given");
	name_len = strcspn(arg, "=");
	if (strlen(arg) > BUILDER_BUILD_ARG_LEN_MAX)
		return fail(BUILDER_EINVALID, "build argument \"%.*s\" is longer than %d bytes",
		            (int)(name_len > 128 ? 128 : name_len), arg, BUILDER_BUILD_ARG_LEN_MAX);
	if (arg[name_len] != '=')
		return fail(BUILDER_EINVALID, "build argument \"%s\" is not NAME=VALUE", arg);
	if (name_len == 0 || name_len > 128 || (arg[0] >= '0' && arg[0] <= '9') ||
	    strspn(arg, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") !=
	        name_len)
		return fail(
		    BUILDER_EINVALID,
		    "build argument name \"%.*s\" is not [A-Za-z_][A-Za-z0-9_]* (at most 128)",
		    (int)(name_len > 128 ? 128 : name_len), arg);
	return 0;
}

int builder_path_resolve(char **out, const char *root, const char *rel)
{
	char *root_real = NULL, *joined = NULL, *real = NULL;
	size_t root_len;
	int depth = 0, ret = -1;

	*out = NULL;
	if (!rel || !*rel) {
		ret = fail(BUILDER_ENOTFOUND, "empty path");
		goto out;
	}
	if (rel[0] == '/') {
		ret = fail(BUILDER_EOUTSIDE, "\"%s\" is an absolute path", rel);
		goto out;
	}
	/* by the letters first: "a/../../x" is outside even if it does not exist */
	for (const char *p = rel; *p;) {
		size_t len = strcspn(p, "/");

		if (len == 2 && !strncmp(p, "..", 2)) {
			if (--depth < 0) {
				ret = fail(BUILDER_EOUTSIDE, "\"%s\" climbs out with \"..\"", rel);
				goto out;
			}
		} else if (len && !(len == 1 && *p == '.')) {
			depth++;
		}
		p += len;
		while (*p == '/')
			p++;
	}
	root_real = realpath(root, NULL);
	if (!root_real) {
		ret =
		    fail(errno == ENOENT ? BUILDER_ENOTFOUND : -1, "%s: %s", root, strerror(errno));
		goto out;
	}
	if (!(joined = xprintf("%s/%s", root_real, rel))) {
		ret = err_set("out of memory");
		goto out;
	}
	real = realpath(joined, NULL);
	if (!real) {
		ret = fail(errno == ENOENT || errno == ENOTDIR ? BUILDER_ENOTFOUND : -1,
		           "\"%s\": %s", rel, strerror(errno));
		goto out;
	}
	/* then by the links: the real path must be ROOT or below it */
	root_len = strlen(root_real);
	if (strcmp(real, root_real) &&
	    !(root_len == 1 || (!strncmp(real, root_real, root_len) && real[root_len] == '/'))) {
		ret = fail(BUILDER_EOUTSIDE, "\"%s\" leads outside through a symbolic link", rel);
		goto out;
	}
	*out = real;
	real = NULL;
	ret = 0;
out:
	free(real);
	free(joined);
	free(root_real);
	return ret;
}

int builder_token_read(char **out, const char *path)
{
	char buf[BUILDER_TOKEN_MAX + 1];
	size_t len = 0;
	ssize_t n;
	int fd, ret = BUILDER_EINVALID;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(BUILDER_EINVALID, "cannot read token file %s: %s", path,
		            strerror(errno));
	while (len < sizeof(buf) && (n = read(fd, buf + len, sizeof(buf) - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fail(BUILDER_EINVALID, "cannot read token file %s: %s", path,
			     strerror(errno));
			goto out;
		}
		len += (size_t)n;
	}
	if (len > BUILDER_TOKEN_MAX) {
		fail(BUILDER_EINVALID, "token file %s is larger than %d bytes", path,
		     BUILDER_TOKEN_MAX);
		goto out;
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' ||
	                   buf[len - 1] == '\t'))
		len--;
	if (!len) {
		fail(BUILDER_EINVALID, "token file %s is empty", path);
		goto out;
	}
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)buf[i] <= 0x20 || buf[i] == 0x7f) {
			fail(BUILDER_EINVALID,
			     "token file %s holds spaces or control characters inside the token",
			     path);
			goto out;
		}
	*out = strndup(buf, len);
	ret = *out ? 0 : err_set("out of memory");
out:
	explicit_bzero(buf, sizeof(buf));
	close(fd);
	return ret;
}

void builder_token_free(char *token)
{
	if (!token)
		return;
	explicit_bzero(token, strlen(token));
	free(token);
}

const char *builder_reason(int code)
{
	switch (code) {
	case 0:
		return "Pushed";
	case BUILDER_EINVALID:
		return "InvalidInput";
	case BUILDER_ESOURCE:
	case BUILDER_ENOTFOUND:
	case BUILDER_EOUTSIDE:
		return "SourceFailed";
	case BUILDER_EBUILD:
		return "BuildFailed";
	case BUILDER_EPUSH:
		return "PushFailed";
	case BUILDER_ETIMEOUT:
		return "Timeout";
	case BUILDER_ECANCELLED:
		return "Cancelled";
	case BUILDER_EPRIVILEGES:
		return "Unprivileged";
	default:
		return "Error";
	}
}

/* ---- the work directory ------------------------------------------------ */

static int make_workdir(struct build *b)
{
	const char *tmp = b->o->tmp_dir ? b->o->tmp_dir : getenv("TMPDIR");
	const char *const subdirs[] = {"home", "tmp"};
	char *dir = NULL;

	if (!tmp || !*tmp)
		tmp = "/tmp";
	if (!(b->work = xprintf("%s/slipway-builder-XXXXXX", tmp)))
		return err_set("out of memory");
	if (!mkdtemp(b->work)) {
		int e = errno;

		free(b->work);
		b->work = NULL;
		return err_set("cannot create a work directory in %s: %s", tmp, strerror(e));
	}
	for (size_t i = 0; i < 2; i++) {
		if (!(dir = xprintf("%s/%s", b->work, subdirs[i])))
			return err_set("out of memory");
		if (mkdir(dir, 0700) < 0) {
			err_set("cannot create %s: %s", dir, strerror(errno));
			free(dir);
			return -1;
		}
		free(dir);
	}
	return 0;
}

static void remove_workdir(struct build *b)
{
	if (b->work && fs_remove_tree(b->work) < 0)
		log_warn("cannot remove the work directory: %s", err_msg());
}

/* Remaining time before the deadline, at least 1 ms; 0: no deadline. */
static long remaining_ms(const struct build *b)
{
	long left;

	if (!b->deadline)
		return 0;
	left = b->deadline - clock_now_ms();
	return left > 0 ? left : 1;
}

static bool past_deadline(const struct build *b)
{
	return b->deadline && clock_now_ms() >= b->deadline;
}

static bool cancelled(const struct build *b)
{
	return b->o->cancel && *b->o->cancel;
}

/* ---- the stages -------------------------------------------------------- */

static int check_inputs(const struct builder_opts *o)
{
	int sources = !!o->context_dir + !!o->source_tar + !!o->source_url, ret;

	if (imageref_check_push(o->image) < 0)
		return BUILDER_EINVALID;
	if (sources != 1)
		return fail(BUILDER_EINVALID, "%s",
		            sources ? "give only one source (directory, tar file or URL)"
		                    : "no source given (directory, tar file or URL)");
	if (o->source_token && !o->source_url)
		return fail(BUILDER_EINVALID, "a source token is only for a source URL");
	if (o->n_build_args > BUILDER_BUILD_ARGS_MAX)
		return fail(BUILDER_EINVALID, "more than %d build arguments",
		            BUILDER_BUILD_ARGS_MAX);
	for (size_t i = 0; i < o->n_build_args; i++)
		if ((ret = builder_build_arg_check(o->build_args[i])) < 0)
			return ret;
	if (o->storage_driver && strcmp(o->storage_driver, "vfs") &&
	    strcmp(o->storage_driver, "overlay"))
		return fail(BUILDER_EINVALID, "unknown storage driver \"%s\" (vfs or overlay)",
		            o->storage_driver);
	return 0;
}

/* Unpacks the tarball at PATH (LABEL in messages) into WORK/src. */
static int unpack(struct build *b, const char *path, const char *label)
{
	uint64_t max = b->o->source_max_bytes ? b->o->source_max_bytes : BUILDER_SOURCE_MAX_BYTES;
	char *dir = NULL;
	int ret = -1;

	if (!(dir = xprintf("%s/src", b->work))) {
		ret = err_set("out of memory");
		goto out;
	}
	if (mkdir(dir, 0755) < 0) {
		ret = err_set("cannot create %s: %s", dir, strerror(errno));
		goto out;
	}
	say(b, BUILDER_MARKER "Unpacking %s", label);
	if (source_extract(path, label, dir, max, BUILDER_SOURCE_MAX_ENTRIES) < 0) {
		ret = BUILDER_ESOURCE;
		goto out;
	}
	b->source = dir;
	dir = NULL;
	ret = 0;
out:
	free(dir);
	return ret;
}

static int get_source(struct build *b)
{
	const struct builder_opts *o = b->o;
	uint64_t max = o->source_max_bytes ? o->source_max_bytes : BUILDER_SOURCE_MAX_BYTES;
	char shown[512], *tarball = NULL;
	struct stat st;
	int ret;

	if (o->context_dir) {
		b->source = realpath(o->context_dir, NULL);
		if (!b->source || stat(b->source, &st) < 0)
			return fail(BUILDER_ESOURCE, "source directory %s: %s", o->context_dir,
			            strerror(errno));
		if (!S_ISDIR(st.st_mode))
			return fail(BUILDER_ESOURCE, "source %s is not a directory",
			            o->context_dir);
		return 0;
	}
	if (o->source_tar)
		return unpack(b, o->source_tar, o->source_tar);

	source_url_redact(shown, sizeof(shown), o->source_url);
	if (!(tarball = xprintf("%s/source.tar", b->work)))
		return err_set("out of memory");
	say(b, BUILDER_MARKER "Fetching %s", shown);
	ret =
	    source_fetch(o->source_url, o->source_token, tarball, max, remaining_ms(b), o->cancel);
	if (ret < 0)
		ret = past_deadline(b) ? fail(BUILDER_ETIMEOUT, "timed out fetching %s", shown)
		      : cancelled(b)   ? fail(BUILDER_ECANCELLED, "cancelled fetching %s", shown)
		                       : BUILDER_ESOURCE;
	else
		ret = unpack(b, tarball, shown);
	if (tarball)
		unlink(tarball);
	free(tarball);
	return ret;
}

static int find_context_and_dockerfile(struct build *b)
{
	const char *path = b->o->path ? b->o->path : ".";
	const char *dockerfile = b->o->dockerfile ? b->o->dockerfile : "Dockerfile";
	struct stat st;
	int ret;

	ret = builder_path_resolve(&b->context, b->source, path);
	if (ret == BUILDER_EOUTSIDE)
		return fail(BUILDER_ESOURCE, "context path \"%s\" is outside the source: refused",
		            path);
	if (ret < 0)
		return fail(BUILDER_ESOURCE, "context path \"%s\" not found in the source", path);
	if (stat(b->context, &st) < 0 || !S_ISDIR(st.st_mode))
		return fail(BUILDER_ESOURCE, "context path \"%s\" is not a directory", path);

	ret = builder_path_resolve(&b->dockerfile, b->context, dockerfile);
	if (ret == BUILDER_EOUTSIDE)
		return fail(BUILDER_ESOURCE,
		            "dockerfile \"%s\" is outside the build context: refused", dockerfile);
	if (ret < 0)
		return fail(BUILDER_ESOURCE, "Dockerfile not found at \"%s\" in the build context",
		            dockerfile);
	if (stat(b->dockerfile, &st) < 0 || !S_ISREG(st.st_mode))
		return fail(BUILDER_ESOURCE, "dockerfile \"%s\" is not a regular file", dockerfile);
	return 0;
}

/* Copies the registry auth file to WORK/auth.json (0600) after checking it
 * is a JSON object outside the build context. Its content is never shown:
 * not even jansson's error text, which quotes it. */
static int copy_registry_auth(struct build *b)
{
	const char *path = b->o->registry_auth_file;
	size_t ctx_len = strlen(b->context), len = 0;
	char *real = NULL, *data = NULL;
	json_error_t jerr;
	json_t *doc = NULL;
	struct stat st;
	int fd = -1, ret = BUILDER_EINVALID;
	ssize_t n;

	if (!path)
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		fail(BUILDER_EINVALID, "cannot read registry auth file %s: %s", path,
		     strerror(errno));
		goto out;
	}
	real = realpath(path, NULL);
	if (real && !strncmp(real, b->context, ctx_len) && (real[ctx_len] == '/' || ctx_len == 1)) {
		fail(BUILDER_EINVALID,
		     "registry auth file %s is inside the build context (it could be copied "
		     "into the image): refused",
		     path);
		goto out;
	}
	if (st.st_size > BUILDER_AUTH_FILE_MAX) {
		fail(BUILDER_EINVALID, "registry auth file %s is larger than %d bytes", path,
		     BUILDER_AUTH_FILE_MAX);
		goto out;
	}
	if (st.st_mode & 077)
		log_warn("registry auth file %s is readable by group or others", path);
	data = malloc(BUILDER_AUTH_FILE_MAX + 1);
	if (!data) {
		ret = err_set("out of memory");
		goto out;
	}
	while (len <= BUILDER_AUTH_FILE_MAX &&
	       (n = read(fd, data + len, BUILDER_AUTH_FILE_MAX + 1 - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fail(BUILDER_EINVALID, "cannot read registry auth file %s: %s", path,
			     strerror(errno));
			goto out;
		}
		len += (size_t)n;
	}
	if (len > BUILDER_AUTH_FILE_MAX) {
		fail(BUILDER_EINVALID, "registry auth file %s is larger than %d bytes", path,
		     BUILDER_AUTH_FILE_MAX);
		goto out;
	}
	doc = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc) {
		fail(BUILDER_EINVALID, "registry auth file %s is not valid JSON (line %d)", path,
		     jerr.line);
		goto out;
	}
	if (!json_is_object(doc)) {
		fail(BUILDER_EINVALID, "registry auth file %s is not a docker config.json object",
		     path);
		goto out;
	}
	close(fd);
	fd = -1;
	if (!(b->auth = xprintf("%s/auth.json", b->work))) {
		ret = err_set("out of memory");
		goto out;
	}
	fd = open(b->auth, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, data, len) != (ssize_t)len) {
		ret = err_set("cannot write %s: %s", b->auth, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	if (doc)
		json_decref(doc);
	if (data) {
		explicit_bzero(data, BUILDER_AUTH_FILE_MAX + 1);
		free(data);
	}
	if (fd >= 0 && close(fd) < 0 && ret == 0)
		ret = err_set("cannot write %s: %s", b->auth, strerror(errno));
	free(real);
	return ret;
}

static int prepare_buildah(struct build *b)
{
	const char *driver = b->o->storage_driver ? b->o->storage_driver : "vfs";
	const char *root = b->o->storage_root;
	char *own_root = NULL;
	int ret = -1;

	if (!root && !(root = own_root = xprintf("%s/storage", b->work)))
		return err_set("out of memory");
	b->storage = xprintf("%s/root", root);
	b->runroot = xprintf("%s/runroot", root);
	b->digest_file = xprintf("%s/digest", b->work);
	b->env[0] = xprintf("%s", BUILDAH_PATH);
	b->env[1] = xprintf("HOME=%s/home", b->work);
	b->env[2] = xprintf("TMPDIR=%s/tmp", b->work);
	b->env[3] = xprintf("BUILDAH_ISOLATION=chroot");
	b->env[4] = xprintf("STORAGE_DRIVER=%s", driver);
	b->env[5] = xprintf("LANG=C");
	b->env[6] = NULL;
	if (!b->storage || !b->runroot || !b->digest_file) {
		ret = err_set("out of memory");
		goto out;
	}
	for (size_t i = 0; i < 6; i++)
		if (!b->env[i]) {
			ret = err_set("out of memory");
			goto out;
		}
	ret = 0;
out:
	free(own_root);
	return ret;
}

/* Output of buildah: to the log, and the last error line kept for the
 * one-line failure message. */
static void on_buildah_line(void *arg, const char *line)
{
	struct build *b = arg;
	bool is_error = !strncmp(line, "Error: ", 7) || !strncmp(line, "error ", 6);

	if (*line && (is_error || !b->saw_error_line)) {
		snprintf(b->last_error, sizeof(b->last_error), "%s", line);
		b->saw_error_line = is_error;
	}
	if (b->o->log)
		b->o->log(b->o->log_arg, line);
}

static void on_buildah_tick(void *arg)
{
	struct build *b = arg;

	if (b->o->tick)
		b->o->tick(b->o->log_arg);
}

/* Runs buildah with the global storage options, then ARGS. Returns 0 when
 * it exited 0, else FAILURE (or BUILDER_ETIMEOUT, BUILDER_ECANCELLED, -1)
 * with a message that names WHAT. */
static int run_buildah(struct build *b, const char *const *args, size_t nargs, int failure,
                       const char *what)
{
	const char *argv[BUILDER_BUILD_ARGS_MAX * 2 + 32];
	const char *driver = b->o->storage_driver ? b->o->storage_driver : "vfs";
	struct spawn_opts so = {
	    .argv = argv,
	    .env = (const char *const *)b->env,
	    .cwd = b->work,
	    .in_fd = -1,
	    .out_fd = -1,
	    .on_line = on_buildah_line,
	    .on_tick = on_buildah_tick,
	    .arg = b,
	    .timeout_ms = remaining_ms(b),
	    .cancel = b->o->cancel,
	    /* buildah dies with us if we are killed without a chance to clean up */
	    .die_with_parent = true,
	};
	struct spawn_result r;
	size_t n = 0;
	char how[64];

	if (past_deadline(b))
		return fail(BUILDER_ETIMEOUT, "timed out before %s", what);
	if (cancelled(b))
		return fail(BUILDER_ECANCELLED, "cancelled before %s", what);
	argv[n++] = b->o->buildah ? b->o->buildah : "buildah";
	argv[n++] = "--root";
	argv[n++] = b->storage;
	argv[n++] = "--runroot";
	argv[n++] = b->runroot;
	argv[n++] = "--storage-driver";
	argv[n++] = driver;
	for (size_t i = 0; i < nargs && n + 1 < sizeof(argv) / sizeof(argv[0]); i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	b->last_error[0] = '\0';
	b->saw_error_line = false;
	if (spawn_run(&r, &so) < 0)
		return -1;
	if (r.timed_out)
		return fail(BUILDER_ETIMEOUT, "timed out after %ld s during %s; buildah was killed",
		            b->o->timeout_ms / 1000, what);
	if (r.cancelled)
		return fail(BUILDER_ECANCELLED, "cancelled during %s; buildah was killed", what);
	if (WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0)
		return 0;
	spawn_describe(how, sizeof(how), r.status);
	return fail(failure, "%s failed (buildah %s)%s%s", what, how, *b->last_error ? ": " : "",
	            b->last_error);
}

static int build(struct build *b)
{
	const char *args[BUILDER_BUILD_ARGS_MAX * 2 + 16];
	char what[1024];
	size_t n = 0;

	args[n++] = "bud";
	args[n++] = "--isolation";
	args[n++] = "chroot";
	args[n++] = "--layers";
	args[n++] = "-f";
	args[n++] = b->dockerfile;
	for (size_t i = 0; i < b->o->n_build_args; i++) {
		args[n++] = "--build-arg";
		args[n++] = b->o->build_args[i];
	}
	if (b->auth) {
		args[n++] = "--authfile";
		args[n++] = b->auth;
	}
	if (b->o->insecure_registry)
		args[n++] = "--tls-verify=false";
	args[n++] = "-t";
	args[n++] = b->o->image;
	args[n++] = b->context;
	snprintf(what, sizeof(what), "build of %s", b->o->image);
	say(b, BUILDER_MARKER "Building %s", b->o->image);
	return run_buildah(b, args, n, BUILDER_EBUILD, what);
}

static int push(struct build *b)
{
	const char *args[16];
	char what[1024], dest[1024], digest[128];
	size_t n = 0, len;
	FILE *f;
	int ret;

	snprintf(dest, sizeof(dest), "docker://%s", b->o->image);
	args[n++] = "push";
	args[n++] = "--digestfile";
	args[n++] = b->digest_file;
	if (b->auth) {
		args[n++] = "--authfile";
		args[n++] = b->auth;
	}
	if (b->o->insecure_registry)
		args[n++] = "--tls-verify=false";
	args[n++] = b->o->image;
	args[n++] = dest;
	snprintf(what, sizeof(what), "push of %s", b->o->image);
	say(b, BUILDER_MARKER "Pushing %s", b->o->image);
	if ((ret = run_buildah(b, args, n, BUILDER_EPUSH, what)) < 0)
		return ret;

	f = fopen(b->digest_file, "re");
	len = f ? fread(digest, 1, sizeof(digest) - 1, f) : 0;
	if (f)
		fclose(f);
	digest[len] = '\0';
	len = strcspn(digest, "\r\n");
	digest[len] = '\0';
	if (len != 71 || strncmp(digest, "sha256:", 7) ||
	    strspn(digest + 7, "0123456789abcdef") != 64)
		return fail(BUILDER_EPUSH, "push of %s gave no sha256 digest", b->o->image);
	memcpy(b->out->digest, digest, len + 1);
	return 0;
}

int builder_run(struct builder_result *out, const struct builder_opts *o)
{
	struct build b = {.o = o, .out = out};
	long t;
	int ret;

	memset(out, 0, sizeof(*out));
	if (o->timeout_ms > 0)
		b.deadline = clock_now_ms() + o->timeout_ms;
	if ((ret = check_inputs(o)) < 0)
		goto out;
	/* before anything is fetched: a container where buildah cannot run
	 * fails at once, naming what it lacks */
	if (privileges_check() < 0) {
		ret = BUILDER_EPRIVILEGES;
		goto out;
	}
	if ((ret = make_workdir(&b)) < 0)
		goto out;
	t = clock_now_ms();
	ret = get_source(&b);
	out->source_ms = clock_now_ms() - t;
	if (ret < 0 || (ret = find_context_and_dockerfile(&b)) < 0 ||
	    (ret = copy_registry_auth(&b)) < 0 || (ret = prepare_buildah(&b)) < 0)
		goto out;
	t = clock_now_ms();
	ret = build(&b);
	out->build_ms = clock_now_ms() - t;
	if (ret < 0)
		goto out;
	t = clock_now_ms();
	ret = push(&b);
	out->push_ms = clock_now_ms() - t;
	if (ret < 0)
		goto out;
	say(&b, BUILDER_MARKER "Timing: source %ld ms, build %ld ms, push %ld ms", out->source_ms,
	    out->build_ms, out->push_ms);
	say(&b, BUILDER_MARKER "Pushed %s@%s", o->image, out->digest);
out:
	out->reason = builder_reason(ret);
	if (ret < 0)
		snprintf(out->message, sizeof(out->message), "%s", err_msg());
	remove_workdir(&b);
	for (size_t i = 0; i < sizeof(b.env) / sizeof(b.env[0]); i++)
		free(b.env[i]);
	free(b.digest_file);
	free(b.runroot);
	free(b.storage);
	free(b.auth);
	free(b.dockerfile);
	free(b.context);
	free(b.source);
	free(b.work);
	return ret;
}
