/* hook: runs the hook scripts of one pipeline event, the admin's from
 * --hooks-dir and then the Remote's from ConfigMaps, each through lib/spawn
 * with a clean environment; and writes the kubeconfig hooks get (hook.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "hook.h"
#include "base64.h"
#include "buf.h"
#include "err.h"
#include "fs.h"
#include "spawn.h"
#include "banned.h"

static const char *const hook_events[] = {HOOK_EVENTS};

/* The SLIPWAY_* variables besides SLIPWAY_EVENT and where in the event JSON
 * each comes from: OBJ.KEY, or KEY at the top when OBJ is NULL
 * (hooks/README.md, "Environment"). */
static const struct {
	const char *var;
	const char *obj;
	const char *key;
} event_vars[] = {
    {"SLIPWAY_NAMESPACE", "remote", "namespace"},
    {"SLIPWAY_REMOTE", "remote", "name"},
    {"SLIPWAY_REF", NULL, "ref"},
    {"SLIPWAY_BRANCH", NULL, "branch"},
    {"SLIPWAY_BEFORE", NULL, "before"},
    {"SLIPWAY_AFTER", NULL, "after"},
    {"SLIPWAY_PIPELINERUN", NULL, "pipelineRun"},
    {"SLIPWAY_TRIGGER", NULL, "trigger"},
    {"SLIPWAY_PUSHER_FINGERPRINT", "pusher", "fingerprint"},
    {"SLIPWAY_PUSHER_COMMENT", "pusher", "comment"},
};

#define NEVENT_VARS (sizeof(event_vars) / sizeof(event_vars[0]))
/* PATH, HOME, LANG, KUBECONFIG, SLIPWAY_EVENT and the ones above. */
#define HOOK_ENV_MAX (5 + NEVENT_VARS)

/* A script gitd has just written may be briefly held open for writing by
 * the child of a fork in another thread (until that child's exec closes
 * it), and exec then fails with ETXTBSY: retried this often, 20 ms apart. */
#define HOOK_TXTBSY_RETRIES 25

/* The state of one hook_run_event call. */
struct run {
	const struct hook_opts *o;
	struct hook_result *out;
	char *env[HOOK_ENV_MAX + 1]; /* NULL-terminated */
	size_t nenv;
	char *work_dir; /* o->work_dir made absolute */
	long default_timeout_ms;
	int event_fd; /* the event JSON, read-only, the file already unlinked */
};

static bool is_event(const char *event)
{
	for (size_t i = 0; event && i < sizeof(hook_events) / sizeof(hook_events[0]); i++)
		if (!strcmp(event, hook_events[i]))
			return true;
	return false;
}

/* PATH made absolute against our working directory, into *OUT (caller
 * frees): the hooks run elsewhere. */
static int absolute(char **out, const char *path)
{
	char *cwd = NULL;
	int ret = -1;

	*out = NULL;
	if (path[0] == '/') {
		*out = strdup(path);
	} else if (!(cwd = getcwd(NULL, 0))) {
		err_set("cannot get the working directory: %s", strerror(errno));
		goto out;
	} else if (asprintf(out, "%s/%s", cwd, path) < 0) {
		*out = NULL;
	}
	if (!*out) {
		err_set("out of memory");
		goto out;
	}
	ret = 0;
out:
	free(cwd);
	return ret;
}

/* Records the failure of HOOK in the result; returns 1. */
static int hook_fail(struct run *r, const char *hook, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int hook_fail(struct run *r, const char *hook, const char *fmt, ...)
{
	va_list ap;

	r->out->failed = true;
	snprintf(r->out->hook, sizeof(r->out->hook), "%s", hook);
	va_start(ap, fmt);
	vsnprintf(r->out->message, sizeof(r->out->message), fmt, ap);
	va_end(ap);
	return 1;
}

static int env_add(struct run *r, const char *name, const char *value)
{
	if (r->nenv == HOOK_ENV_MAX)
		return err_set("hook environment: too many variables");
	if (asprintf(&r->env[r->nenv], "%s=%s", name, value) < 0) {
		r->env[r->nenv] = NULL;
		return err_set("out of memory");
	}
	r->nenv++;
	return 0;
}

/* A JSON string that can be an environment value: no NUL (it would cut
 * the value short), no line break (it would let the value forge lines in
 * anything that reads the environment line by line). */
static const char *env_value(const json_t *v)
{
	const char *s = json_string_value(v);

	if (!s || strlen(s) != json_string_length(v) || strpbrk(s, "\n\r"))
		return NULL;
	return s;
}

static int env_build(struct run *r, const json_t *event)
{
	char *kubeconfig = NULL;
	int ret = -1;

	if (env_add(r, "PATH", "/usr/local/bin:/usr/bin:/bin") < 0 ||
	    env_add(r, "HOME", r->work_dir) < 0 || env_add(r, "LANG", "C.UTF-8") < 0)
		goto out;
	if (r->o->kubeconfig && (absolute(&kubeconfig, r->o->kubeconfig) < 0 ||
	                         env_add(r, "KUBECONFIG", kubeconfig) < 0))
		goto out;
	if (env_add(r, "SLIPWAY_EVENT", r->o->event) < 0)
		goto out;
	for (size_t i = 0; i < NEVENT_VARS; i++) {
		const json_t *from =
		    event_vars[i].obj ? json_object_get(event, event_vars[i].obj) : event;
		const char *value = env_value(json_object_get(from, event_vars[i].key));

		if (value && env_add(r, event_vars[i].var, value) < 0)
			goto out;
	}
	ret = 0;
out:
	free(kubeconfig);
	return ret;
}

/* Creates WORK_DIR/PREFIX-XXXXXX (mode 0600) holding LEN bytes of DATA;
 * *PATH gets its name (caller unlinks and frees). */
static int write_private(char **path, const char *work_dir, const char *prefix, const char *data,
                         size_t len)
{
	int fd = -1, ret = -1;

	if (asprintf(path, "%s/%s-XXXXXX", work_dir, prefix) < 0) {
		*path = NULL;
		return err_set("out of memory");
	}
	fd = mkostemp(*path, O_CLOEXEC);
	if (fd < 0) {
		err_set("cannot create a file in %s: %s", work_dir, strerror(errno));
		goto out;
	}
	if (fs_write_all(fd, data, len) < 0) {
		err_set("cannot write %s: %s", *path, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	if (fd >= 0 && close(fd) < 0 && ret == 0)
		ret = err_set("cannot write %s: %s", *path, strerror(errno));
	if (ret < 0 && fd >= 0)
		unlink(*path);
	if (ret < 0) {
		free(*path);
		*path = NULL;
	}
	return ret;
}

static void describe_timeout(char *buf, size_t size, long ms)
{
	if (ms % 1000)
		snprintf(buf, size, "%.1fs", (double)ms / 1000);
	else
		snprintf(buf, size, "%lds", ms / 1000);
}

/* Runs one hook: program PATH, shown as NAME. Returns 0 when it exited 0,
 * 1 when it failed (recorded in the result), -1 on an internal error. */
static int run_one(struct run *r, const char *name, const char *path, long timeout_ms)
{
	const char *argv[] = {path, NULL};
	struct spawn_opts so = {
	    .argv = argv,
	    .env = (const char *const *)r->env,
	    .cwd = r->o->cwd ? r->o->cwd : r->work_dir,
	    .in_fd = r->event_fd,
	    .out_fd = -1,
	    .on_line = r->o->on_line,
	    .arg = r->o->arg,
	    .timeout_ms = timeout_ms,
	    .cancel = r->o->cancel,
	    .die_with_parent = true,
	};
	struct spawn_result res;
	char how[32];

	if (r->o->cancel && *r->o->cancel)
		return hook_fail(r, name, "hook %s was not started: cancelled", name);
	/* every hook reads the event from its start */
	if (lseek(r->event_fd, 0, SEEK_SET) < 0)
		return err_set("cannot rewind the event file: %s", strerror(errno));
	if (r->o->on_start)
		r->o->on_start(r->o->arg, name);
	r->out->nrun++;
	for (int tries = 0; spawn_run(&res, &so) < 0; tries++) {
		struct timespec pause = {0, 20 * 1000 * 1000};

		if (res.error == ENOEXEC)
			return hook_fail(r, name,
			                 "hook %s could not run: not a program, or a script "
			                 "without a \"#!\" line",
			                 name);
		if (res.error != ETXTBSY || tries == HOOK_TXTBSY_RETRIES)
			return hook_fail(r, name, "hook %s could not run: %s", name, err_msg());
		nanosleep(&pause, NULL);
	}
	if (res.timed_out) {
		describe_timeout(how, sizeof(how), timeout_ms);
		return hook_fail(r, name, "hook %s timed out after %s", name, how);
	}
	if (res.cancelled)
		return hook_fail(r, name, "hook %s was cancelled", name);
	if (WIFEXITED(res.status) && WEXITSTATUS(res.status) == 0)
		return 0;
	if (WIFEXITED(res.status))
		return hook_fail(r, name, "hook %s exited with status %d", name,
		                 WEXITSTATUS(res.status));
	if (WIFSIGNALED(res.status))
		return hook_fail(r, name, "hook %s was killed by signal %d (%s)", name,
		                 WTERMSIG(res.status), strsignal(WTERMSIG(res.status)));
	return hook_fail(r, name, "hook %s ended with wait status %d", name, res.status);
}

/* Runs pod hook PH (its name, env and event filled here) as run_one does a
 * process: 0, 1 (recorded) or -1. */
static int run_pod_one(struct run *r, struct kube_client *c, struct hookpod_hook *ph)
{
	char message[sizeof(r->out->message)];
	int rc;

	if (r->o->cancel && *r->o->cancel)
		return hook_fail(r, ph->name, "hook %s was not started: cancelled", ph->name);
	if (!r->o->pod || !c)
		return hook_fail(r, ph->name,
		                 "hook %s runs as a Pod, which this gitd was not set up for",
		                 ph->name);
	ph->event = r->o->event;
	ph->event_json = r->o->event_json;
	ph->env = (const char *const *)r->env;
	if (!ph->timeout_ms)
		ph->timeout_ms = r->default_timeout_ms;
	if (r->o->on_start)
		r->o->on_start(r->o->arg, ph->name);
	r->out->nrun++;
	rc = hookpod_run(message, sizeof(message), c, r->o->pod, ph, r->o->on_line, r->o->arg,
	                 r->o->cancel);
	if (rc < 0)
		return hook_fail(r, ph->name, "hook %s could not run: %s", ph->name, err_msg());
	if (rc > 0)
		return hook_fail(r, ph->name, "%s", message);
	return 0;
}

/* The "# slipway-pod: {...}" header of admin hook SCRIPT (LEN bytes) in its
 * first lines, into PH. Returns 0 when there is none, 1 when there is one,
 * -2 when it is malformed (WHY says how). */
static int admin_pod_header(struct hookpod_hook *ph, json_t **hold, char *why, size_t size,
                            const char *script, size_t len)
{
	static const char tag[] = "# slipway-pod:";
	const char *line = script, *end = script + len;
	json_error_t je;
	json_t *j, *v;
	const char *key;

	for (int n = 0; n < 5 && line < end; n++) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		size_t l = nl ? (size_t)(nl - line) : (size_t)(end - line);

		if (l > sizeof(tag) - 1 && !strncmp(line, tag, sizeof(tag) - 1)) {
			j = json_loadb(line + sizeof(tag) - 1, l - (sizeof(tag) - 1),
			               JSON_REJECT_DUPLICATES, &je);
			if (!json_is_object(j)) {
				snprintf(why, size, "not a JSON object: %s",
				         j ? "wrong type" : je.text);
				json_decref(j);
				return -2;
			}
			*hold = j;
			json_object_foreach(j, key, v)
			{
				if (!strcmp(key, "image") && json_is_string(v) &&
				    json_string_length(v))
					ph->image = json_string_value(v);
				else if (!strcmp(key, "serviceAccountName") && json_is_string(v) &&
				         json_string_length(v))
					ph->service_account = json_string_value(v);
				else if (!strcmp(key, "timeoutSeconds") && json_is_integer(v) &&
				         json_integer_value(v) >= 1 &&
				         json_integer_value(v) <= REMOTE_HOOK_TIMEOUT_MAX_S)
					ph->timeout_ms = (long)json_integer_value(v) * 1000;
				else {
					snprintf(
					    why, size,
					    "\"%.64s\": not image, serviceAccountName (non-empty "
					    "strings) or timeoutSeconds (1 to %d)",
					    key, REMOTE_HOOK_TIMEOUT_MAX_S);
					return -2;
				}
			}
			if (!ph->image) {
				snprintf(why, size, "no image");
				return -2;
			}
			return 1;
		}
		if (!nl)
			break;
		line = nl + 1;
	}
	return 0;
}

/* Admin hook NAME at PATH, run as a Pod when its header says so: 0, 1, -1
 * as run_one, or 2 when it is no Pod hook. */
static int run_admin_pod(struct run *r, struct kube_client *c, const struct remote *remote,
                         const char *name, const char *path)
{
	struct hookpod_hook ph = {0};
	json_t *hold = NULL;
	char why[300], *script = NULL;
	size_t len = 0;
	FILE *f;
	int ret;

	if (!(f = fopen(path, "re")))
		return 2; /* run_one says why it cannot run */
	if (!(script = malloc(HOOK_SCRIPT_MAX + 1))) {
		fclose(f);
		return err_set("out of memory");
	}
	len = fread(script, 1, HOOK_SCRIPT_MAX + 1, f);
	fclose(f);
	ret = admin_pod_header(&ph, &hold, why, sizeof(why), script, len);
	if (ret == 0) {
		ret = 2;
		goto out;
	}
	if (ret == -2) {
		ret = hook_fail(r, name, "hook %s: bad slipway-pod header: %s", name, why);
		goto out;
	}
	if (len > HOOK_SCRIPT_MAX) {
		ret = hook_fail(r, name, "hook %s: script larger than %u bytes", name,
		                HOOK_SCRIPT_MAX);
		goto out;
	}
	if (!remote) {
		ret = hook_fail(r, name, "hook %s runs as a Pod, which needs a Remote", name);
		goto out;
	}
	ph.ns = remote->ns;
	ph.remote = remote->name;
	ph.name = name;
	ph.script = script;
	ph.script_len = len;
	ph.script_name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	ret = run_pod_one(r, c, &ph);
out:
	json_decref(hold);
	free(script);
	return ret;
}

/* Admin hooks are byte-ordered by name, whatever the locale. */
static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

/* Whether DIR/NAME is an admin hook: not hidden (editors' swap and backup
 * files), a regular file (or a link to one), executable by us. */
static bool is_admin_hook(const char *dir, const char *name)
{
	struct stat st;
	char path[4096];
	int n;

	if (name[0] == '.')
		return false;
	n = snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= sizeof(path))
		return false;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111) &&
	       access(path, X_OK) == 0;
}

static int run_admin(struct run *r, struct kube_client *c, const struct remote *remote)
{
	struct dirent **names = NULL;
	char *dir = NULL, *shown = NULL, *path = NULL;
	int n = 0, ret = -1;

	if (!r->o->admin_dir)
		return 0;
	if (asprintf(&shown, "%s/%s", r->o->admin_dir, r->o->event) < 0) {
		shown = NULL;
		err_set("out of memory");
		goto out;
	}
	if (absolute(&dir, shown) < 0)
		goto out;
	n = scandir(dir, &names, NULL, by_name);
	if (n < 0) {
		n = 0;
		/* no directory for this event: no admin hooks for it */
		if (errno == ENOENT || errno == ENOTDIR)
			ret = 0;
		else
			ret = hook_fail(r, shown, "cannot read hooks directory %s: %s", shown,
			                strerror(errno));
		goto out;
	}
	ret = 0;
	for (int i = 0; i < n && ret == 0; i++) {
		char name[300];

		if (!is_admin_hook(dir, names[i]->d_name))
			continue;
		snprintf(name, sizeof(name), "%s/%s", shown, names[i]->d_name);
		if (asprintf(&path, "%s/%s", dir, names[i]->d_name) < 0) {
			path = NULL;
			ret = err_set("out of memory");
			break;
		}
		ret = run_admin_pod(r, c, remote, name, path);
		if (ret == 2)
			ret = run_one(r, name, path, r->default_timeout_ms);
		free(path);
		path = NULL;
	}
out:
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(dir);
	free(shown);
	return ret;
}

/* Decodes the base64 string V (a ConfigMap binaryData value) into *OUT
 * (caller frees) of *LEN bytes. Returns 0, 1 when V is no valid base64 or
 * decodes to more than HOOK_SCRIPT_MAX bytes, -1 when out of memory. */
static int decode_base64(char **out, size_t *len, const json_t *v)
{
	const char *s = json_string_value(v);
	size_t slen = json_string_length(v);
	struct buf b;
	int ret;

	*out = NULL;
	*len = 0;
	if (!s || slen / 4 * 3 > HOOK_SCRIPT_MAX + 2)
		return 1;
	buf_init(&b, HOOK_SCRIPT_MAX + 2);
	ret = base64_decode_strict(&b, s, slen);
	if (ret == BASE64_EINVALID || (ret == 0 && b.len > HOOK_SCRIPT_MAX)) {
		buf_release(&b);
		return 1;
	}
	if (ret < 0) {
		buf_release(&b);
		return -1;
	}
	*len = b.len;
	if (!(*out = buf_detach(&b)))
		return err_set("out of memory");
	return 0;
}

/* Reads the script of hook NAME from ConfigMap NS/CM key KEY and writes it
 * to a private file, *PATH (caller unlinks and frees). Returns 0, 1 when
 * the hook fails (recorded), or -1. */
static int fetch_script(char **path, struct run *r, struct kube_client *c, const char *name,
                        const char *ns, const char *cm, const char *key)
{
	json_t *obj = NULL, *v;
	char *decoded = NULL;
	const char *script;
	size_t len;
	int ret;

	*path = NULL;
	ret = kube_get(&obj, c, "v1/configmaps", ns, cm);
	if (ret == KUBE_ENOTFOUND) {
		ret = hook_fail(r, name, "hook %s: configmap %s/%s not found", name, ns, cm);
		goto out;
	} else if (ret < 0) {
		ret = hook_fail(r, name, "hook %s: cannot read configmap %s/%s: %s", name, ns, cm,
		                err_msg());
		goto out;
	}
	if ((v = json_object_get(json_object_get(obj, "data"), key))) {
		script = json_string_value(v);
		len = json_string_length(v);
		if (!script) {
			ret = hook_fail(r, name, "hook %s: configmap %s/%s key \"%s\" is no string",
			                name, ns, cm, key);
			goto out;
		}
	} else if ((v = json_object_get(json_object_get(obj, "binaryData"), key))) {
		ret = decode_base64(&decoded, &len, v);
		if (ret == 1)
			ret = hook_fail(r, name,
			                "hook %s: configmap %s/%s binaryData key \"%s\" is no "
			                "valid base64 of at most %u bytes",
			                name, ns, cm, key, HOOK_SCRIPT_MAX);
		if (ret)
			goto out;
		script = decoded;
	} else {
		ret = hook_fail(r, name, "hook %s: configmap %s/%s has no key \"%s\"", name, ns, cm,
		                key);
		goto out;
	}
	if (len > HOOK_SCRIPT_MAX) {
		ret = hook_fail(r, name, "hook %s: script larger than %u bytes", name,
		                HOOK_SCRIPT_MAX);
		goto out;
	}
	ret = write_private(path, r->work_dir, "hook", script, len);
	if (ret == 0 && chmod(*path, 0700) < 0) {
		ret = err_set("cannot make %s executable: %s", *path, strerror(errno));
		unlink(*path);
		free(*path);
		*path = NULL;
	}
out:
	free(decoded);
	json_decref(obj);
	return ret;
}

static int run_remote(struct run *r, struct kube_client *c, const struct remote *remote)
{
	for (size_t i = 0; remote && i < remote->nhooks; i++) {
		const struct remote_hook *h = &remote->hooks[i];
		char name[600], *path = NULL;
		int ret;

		if (strcmp(h->event, r->o->event))
			continue;
		if (!c)
			return err_set("remote %s/%s has %s hooks but no API client was given",
			               remote->ns, remote->name, h->event);
		if (h->is_pod) {
			struct hookpod_hook ph = {
			    .ns = remote->ns,
			    .remote = remote->name,
			    .name = name,
			    .image = h->image,
			    .from_deployment = h->from_deployment,
			    .from_container = h->from_container,
			    .configmap = h->configmap,
			    .key = h->key,
			    .script_name = h->key,
			    .command = h->command,
			    .service_account = h->service_account,
			    .timeout_ms = h->timeout_ms,
			};
			char image[300];

			if (h->image)
				snprintf(image, sizeof(image), "%s", h->image);
			else
				snprintf(image, sizeof(image), "fromBuild %s/%s",
				         h->from_deployment, h->from_container);
			if (h->configmap && !h->command)
				snprintf(name, sizeof(name), "configmap/%s:%s (image %s)",
				         h->configmap, h->key, image);
			else
				snprintf(name, sizeof(name), "%s (image %s)", h->command[0], image);
			ret = run_pod_one(r, c, &ph);
			if (ret)
				return ret;
			continue;
		}
		snprintf(name, sizeof(name), "configmap/%s:%s", h->configmap, h->key);
		ret = fetch_script(&path, r, c, name, remote->ns, h->configmap, h->key);
		if (ret == 0) {
			ret = run_one(r, name, path,
			              h->timeout_ms ? h->timeout_ms : r->default_timeout_ms);
			unlink(path);
			free(path);
		}
		if (ret)
			return ret;
	}
	return 0;
}

int hook_run_event(struct hook_result *out, struct kube_client *c, const struct remote *remote,
                   const struct hook_opts *o)
{
	struct run r = {.o = o, .out = out, .event_fd = -1};
	json_t *event = NULL;
	char *event_path = NULL;
	const char *named;
	json_error_t je;
	int ret = -1;

	memset(out, 0, sizeof(*out));
	if (!o || !is_event(o->event) || !o->event_json || !o->work_dir)
		return err_set("hook: no event, an unknown event, or no event JSON or work dir");
	event = json_loads(o->event_json, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(event)) {
		err_set("hook: event JSON is no object: %s", event ? "wrong type" : je.text);
		goto out;
	}
	named = json_string_value(json_object_get(event, "event"));
	if (named && strcmp(named, o->event)) {
		err_set("hook: event JSON is for \"%s\", not \"%s\"", named, o->event);
		goto out;
	}
	r.default_timeout_ms =
	    o->default_timeout_ms > 0 ? o->default_timeout_ms : HOOK_TIMEOUT_DEFAULT_MS;
	if (absolute(&r.work_dir, o->work_dir) < 0 || env_build(&r, event) < 0)
		goto out;
	/* stdin is a file, not a pipe: a hook that never reads it cannot block
	 * gitd, and each hook can read it from the start */
	if (write_private(&event_path, r.work_dir, "event", o->event_json, strlen(o->event_json)) <
	    0)
		goto out;
	r.event_fd = open(event_path, O_RDONLY | O_CLOEXEC);
	if (r.event_fd < 0) {
		err_set("cannot open %s: %s", event_path, strerror(errno));
		goto out;
	}
	ret = run_admin(&r, c, remote);
	if (ret == 0)
		ret = run_remote(&r, c, remote);
out:
	if (event_path)
		unlink(event_path);
	free(event_path);
	if (r.event_fd >= 0)
		close(r.event_fd);
	for (size_t i = 0; i < r.nenv; i++)
		free(r.env[i]);
	free(r.work_dir);
	json_decref(event);
	return ret;
}

bool hook_has_event(const struct remote *remote, const char *admin_dir, const char *event)
{
	bool found = false;
	struct dirent *d;
	char dir[4096];
	DIR *dp;
	int n;

	if (!event)
		return false;
	if (remote_has_hook(remote, event))
		return true;
	if (!admin_dir)
		return false;
	n = snprintf(dir, sizeof(dir), "%s/%s", admin_dir, event);
	if (n < 0 || (size_t)n >= sizeof(dir) || !(dp = opendir(dir)))
		return false;
	while (!found && (d = readdir(dp)))
		found = is_admin_hook(dir, d->d_name);
	closedir(dp);
	return found;
}

/* Overwrites the text of JSON string V (ours) before it is freed: jansson
 * has no API for it, but the text is our own heap memory. */
static void wipe_json_string(json_t *v)
{
	if (json_is_string(v))
		OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
}

/* The kubeconfig (as JSON, which is YAML) for TOKEN into *OUT (caller
 * frees with json_decref after wiping the token). */
static int kubeconfig_json(json_t **out, const struct kube_config *cfg, const char *ns,
                           const char *sa, const char *token)
{
	json_t *cluster = NULL, *doc = NULL;
	char *ca = NULL, user[600];
	int ret = -1;

	*out = NULL;
	snprintf(user, sizeof(user), "system:serviceaccount:%s:%s", ns, sa);
	cluster = json_pack("{s:s}", "server", cfg->server);
	if (!cluster)
		goto nomem;
	if (cfg->insecure_skip_tls_verify) {
		if (json_object_set_new(cluster, "insecure-skip-tls-verify", json_true()) < 0)
			goto nomem;
	} else if (cfg->ca.data) {
		if (base64_encode(&ca, cfg->ca.data, cfg->ca.len) < 0)
			goto out;
		if (json_object_set_new(cluster, "certificate-authority-data", json_string(ca)) < 0)
			goto nomem;
	}
	if (cfg->tls_server_name &&
	    json_object_set_new(cluster, "tls-server-name", json_string(cfg->tls_server_name)) < 0)
		goto nomem;
	doc =
	    json_pack("{s:s, s:s, s:[{s:s, s:O}], s:[{s:s, s:{s:s}}], "
	              "s:[{s:s, s:{s:s, s:s, s:s}}], s:s, s:{}}",
	              "apiVersion", "v1", "kind", "Config", "clusters", "name", "slipway",
	              "cluster", cluster, "users", "name", user, "user", "token", token, "contexts",
	              "name", "slipway-hooks", "context", "cluster", "slipway", "user", user,
	              "namespace", ns, "current-context", "slipway-hooks", "preferences");
	if (!doc)
		goto nomem;
	*out = doc;
	ret = 0;
	goto out;
nomem:
	err_set("out of memory");
out:
	json_decref(cluster);
	free(ca);
	return ret;
}

/* Writes TEXT to a new file next to PATH (0600) and renames it over PATH,
 * so a reader sees the old or the new kubeconfig, never half of one. */
static int replace_file(const char *path, const char *text)
{
	char *dir = NULL, *slash, *tmp = NULL;
	int ret = -1;

	if (!(dir = strdup(path)))
		return err_set("out of memory");
	slash = strrchr(dir, '/');
	if (slash == dir)
		dir[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		dir[0] = '.', dir[1] = '\0';
	if (write_private(&tmp, dir, ".kubeconfig", text, strlen(text)) < 0)
		goto out;
	if (rename(tmp, path) < 0) {
		err_set("cannot write %s: %s", path, strerror(errno));
		unlink(tmp);
		goto out;
	}
	ret = 0;
out:
	free(tmp);
	free(dir);
	return ret;
}

int hook_kubeconfig_write(const char *path, struct kube_client *c, const char *ns, const char *sa,
                          long ttl_seconds)
{
	json_t *req = NULL, *resp = NULL, *doc = NULL, *token;
	char url[1024], *text = NULL;
	int ret = -1;

	if (!path || !c || !ns || !*ns || !sa || !*sa)
		return err_set("hook kubeconfig: no path, client, namespace or service account");
	if (ttl_seconds < HOOK_TOKEN_TTL_MIN)
		ttl_seconds = HOOK_TOKEN_TTL_MIN;
	if (kube_path(url, sizeof(url), "v1/serviceaccounts", ns, sa, "token") < 0)
		return err_set("hook kubeconfig: bad service account %s/%s", ns, sa);
	/* TokenRequest, authentication.k8s.io/v1: a bound, expiring token
	 * (Kubernetes API reference, "TokenRequest") */
	req = json_pack("{s:s, s:s, s:{s:I}}", "apiVersion", "authentication.k8s.io/v1", "kind",
	                "TokenRequest", "spec", "expirationSeconds", (json_int_t)ttl_seconds);
	if (!req) {
		err_set("out of memory");
		goto out;
	}
	ret = kube_request(&resp, c, "POST", url, "application/json", req);
	if (ret < 0)
		goto out;
	ret = -1;
	token = json_object_get(json_object_get(resp, "status"), "token");
	if (!json_string_value(token) || !json_string_length(token)) {
		err_set("service account %s/%s: the token request returned no token", ns, sa);
		goto out;
	}
	if (kubeconfig_json(&doc, kube_client_config(c), ns, sa, json_string_value(token)) < 0)
		goto out;
	if (!(text = json_dumps(doc, JSON_INDENT(2)))) {
		err_set("out of memory");
		goto out;
	}
	ret = replace_file(path, text);
out:
	if (text) {
		OPENSSL_cleanse(text, strlen(text));
		free(text);
	}
	if (doc)
		wipe_json_string(json_object_get(
		    json_object_get(json_array_get(json_object_get(doc, "users"), 0), "user"),
		    "token"));
	if (resp)
		wipe_json_string(json_object_get(json_object_get(resp, "status"), "token"));
	json_decref(doc);
	json_decref(resp);
	json_decref(req);
	return ret;
}
