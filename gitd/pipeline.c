/* pipeline: one push in the pipeline worker; pipeline_serve at the bottom
 * reads top to bottom as the push goes, each ref's stages in pipeline_run. */
#include "pipeline.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive.h"
#include "authz.h"
#include "base64.h"
#include "buf.h"
#include "clock.h"
#include "deployer.h"
#include "err.h"
#include "event.h"
#include "fs.h"
#include "hook.h"
#include "imageref.h"
#include "pipelinerun.h"
#include "queue.h"
#include "remote.h"
#include "banned.h"

#define SECRET_MAX (1u << 20)  /* a registry Secret's .dockerconfigjson */
#define HOOKS_TOKEN_TTL_S 3600 /* the hooks' ServiceAccount token */

/* A Deployment as it was before this run changed it, for rolling back. */
struct deployed {
	const char *name;
	struct deployer_image *previous; /* container → image before the patch */
	char **strings;                  /* what previous points into */
	size_t n;
};

/* The source archive, written on a thread of its own from the pipeline's
 * start, so that it is ready (or nearly) when the build needs it. */
struct archiver {
	pthread_t thread;
	char repo_path[PATH_MAX];  /* opened on the thread: a repository object */
	char quarantine[PATH_MAX]; /* is not shared between threads */
	git_oid commit;
	char path[PATH_MAX]; /* WORK/source.tar.gz */
	int ret;             /* archive_commit's, once joined */
	char error[ERR_MAX]; /* its err_msg() on failure */
	long long ms;        /* the time it took */
};

struct pipeline {
	const struct pipeline_env *env;
	const struct pipeline_push *push;
	struct pipelinerun *run;
	struct queue_ticket *ticket;
	char before[GIT_OID_HEXSZ + 1];
	char after[GIT_OID_HEXSZ + 1];
	const char *ns, *remote_name;
	char work[PATH_MAX];       /* private work directory */
	char source[PATH_MAX];     /* WORK/source.tar.gz, once written */
	char tree[PATH_MAX];       /* WORK/tree, once written */
	struct archiver *archiver; /* writing the source, or NULL */
	char kubeconfig[PATH_MAX]; /* WORK/kubeconfig for hooks, or "" */
	json_t *images;            /* [{deployment, container, image}] built */
	struct deployed *deployed;
	size_t ndeployed;
	bool is_finished;
	long long t_start; /* clock_now_ms() at pipeline_new */
	long long t_queue; /* clock_now_ms() when it queued */
	bool is_waiting;   /* queue_wait reported another run holding the lock */
	char holder[254];  /* the run that held the lock last seen, or "" */
	char reason[64];
	char message[1024];
};

/* ---- talking ---------------------------------------------------------- */

/* One line to the pusher and the run's log tail. */
static void say(struct pipeline *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct pipeline *p, const char *fmt, ...)
{
	char line[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (p->env->say)
		p->env->say(p->env->say_arg, line);
	if (p->run)
		pipelinerun_log(p->run, line);
}

static void say_line(void *arg, const char *line)
{
	say(arg, "%s", line);
}

/* Logs how long STEP of the run took (debug event "pipeline_step"). */
static void step_done(const struct pipeline *p, const char *step, long long ms)
{
	event_log("debug", "pipeline_step", "{s:s, s:s, s:I}", "run",
	          p->run ? pipelinerun_name(p->run) : "", "step", step, "duration_ms",
	          (json_int_t)ms);
}

static void set_outcome(struct pipeline *p, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_outcome(struct pipeline *p, const char *reason, const char *fmt, ...)
{
	va_list ap;

	snprintf(p->reason, sizeof(p->reason), "%s", reason);
	va_start(ap, fmt);
	vsnprintf(p->message, sizeof(p->message), fmt, ap);
	va_end(ap);
}

static const char *str_or(const json_t *obj, const char *key, const char *fallback)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s && *s ? s : fallback;
}

/* ---- the event JSON for hooks (hooks/event.schema.json) ------------- */

static json_t *event_new(struct pipeline *p, const char *event, bool with_result)
{
	const json_t *status = p->run ? pipelinerun_status(p->run) : NULL;
	const json_t *stages = json_object_get(status, "stages");
	json_t *ev, *deps = json_array();

	for (size_t i = 0; i < p->env->remote->ndeployments; i++) {
		const struct remote_deployment *d = &p->env->remote->deployments[i];
		json_t *cs = json_array();

		for (size_t j = 0; j < d->ncontainers; j++) {
			const struct remote_container *c = &d->containers[j];

			if (json_array_append_new(cs, json_pack("{s:s, s:s, s:s}", "name", c->name,
			                                        "path", c->path, "dockerfile",
			                                        c->dockerfile)) < 0) {
				json_decref(cs);
				cs = NULL;
				break;
			}
		}
		if (!cs || json_array_append_new(deps, json_pack("{s:s, s:o}", "name", d->name,
		                                                 "containers", cs)) < 0) {
			json_decref(deps);
			return NULL;
		}
	}
	ev = json_pack("{s:s, s:{s:s, s:s}, s:s, s:s, s:s, s:s, s:{s:s, s:s}, s:s?, s:O, s:o}",
	               "event", event, "remote", "namespace", p->ns, "name", p->remote_name, "ref",
	               p->push->refname, "branch", p->push->refname + 11, "before", p->before,
	               "after", p->after, "pusher", "fingerprint", p->push->fingerprint, "comment",
	               p->push->comment, "pipelineRun", p->run ? pipelinerun_name(p->run) : NULL,
	               "images", p->images, "deployments", deps);
	if (ev && with_result)
		json_object_set_new(ev, "result",
		                    json_pack("{s:b, s:s, s:s}", "succeeded",
		                              !strcmp(p->reason, "Succeeded"), "reason", p->reason,
		                              "message", p->message));
	if (ev)
		json_object_set_new(ev, "stages", stages ? json_deep_copy(stages) : json_array());
	return ev;
}

/* ---- the work directory ---------------------------------------------- */

static int make_work(struct pipeline *p)
{
	const char *root = p->env->cfg->work_root ? p->env->cfg->work_root : "/tmp";
	char hooks[PATH_MAX + 8];

	if ((size_t)snprintf(p->work, sizeof(p->work), "%s/slipway-run-XXXXXX", root) >=
	    sizeof(p->work))
		return err_set("work directory path too long: %s", root);
	if (!mkdtemp(p->work)) {
		int e = errno;

		p->work[0] = '\0';
		return err_set("cannot create a work directory in %s: %s", root, strerror(e));
	}
	snprintf(hooks, sizeof(hooks), "%s/hooks", p->work);
	if (mkdir(hooks, 0700) < 0)
		return err_set("cannot create %s: %s", hooks, strerror(errno));
	return 0;
}

static int open_repo(git_repository **out, const char *path, const char *quarantine);

static void *archiver_main(void *arg)
{
	struct archiver *a = arg;
	git_repository *repo = NULL;
	long long t0 = clock_now_ms();

	a->ret = open_repo(&repo, a->repo_path, a->quarantine);
	if (a->ret == 0)
		a->ret = archive_commit(repo, &a->commit, a->path, NULL);
	if (a->ret < 0)
		snprintf(a->error, sizeof(a->error), "%s", err_msg());
	git_repository_free(repo);
	a->ms = clock_now_ms() - t0;
	return NULL;
}

/* Starts writing the pushed tree's archive on a thread, when the Remote
 * builds anything; write_source takes it, or writes the archive itself when
 * the thread could not start or failed. */
static void archiver_start(struct pipeline *p)
{
	struct archiver *a;
	sigset_t all, old;

	if (!p->env->remote->ndeployments || !(a = calloc(1, sizeof(*a))))
		return;
	snprintf(a->repo_path, sizeof(a->repo_path), "%s", p->env->repo_path);
	snprintf(a->quarantine, sizeof(a->quarantine), "%s", p->env->quarantine);
	a->commit = p->push->after;
	snprintf(a->path, sizeof(a->path), "%.4000s/source.tar.gz", p->work);
	/* signals stay the pipeline's */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (pthread_create(&a->thread, NULL, archiver_main, a) == 0)
		p->archiver = a;
	else
		free(a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* Waits for the archiver's thread; the caller frees what is returned. */
static struct archiver *archiver_join(struct pipeline *p)
{
	struct archiver *a = p->archiver;

	pthread_join(a->thread, NULL);
	p->archiver = NULL;
	return a;
}

/* Writes the pushed tree as the builders' archive and, for hooks that run
 * in it, as files. */
static int write_source(struct pipeline *p, bool with_tree)
{
	if (!p->source[0] && p->archiver) {
		long long t0 = clock_now_ms();
		struct archiver *a = archiver_join(p);

		if (a->ret == 0)
			snprintf(p->source, sizeof(p->source), "%s", a->path);
		else
			event_log("warn", "pipeline_archive", "{s:s, s:s}", "run",
			          pipelinerun_name(p->run), "error", a->error);
		event_log("debug", "pipeline_step", "{s:s, s:s, s:I, s:I}", "run",
		          pipelinerun_name(p->run), "step", "archive", "duration_ms",
		          (json_int_t)(clock_now_ms() - t0), "written_ms", (json_int_t)a->ms);
		free(a);
	}
	if (!p->source[0]) {
		char path[PATH_MAX];
		long long t0 = clock_now_ms();

		snprintf(path, sizeof(path), "%.4000s/source.tar.gz", p->work);
		if (archive_commit(p->env->repo, &p->push->after, path, NULL) < 0)
			return -1;
		snprintf(p->source, sizeof(p->source), "%s", path);
		step_done(p, "archive", clock_now_ms() - t0);
	}
	if (with_tree && !p->tree[0]) {
		char dir[PATH_MAX];

		snprintf(dir, sizeof(dir), "%.4000s/tree", p->work);
		if (mkdir(dir, 0700) < 0)
			return err_set("cannot create %s: %s", dir, strerror(errno));
		if (archive_commit(p->env->repo, &p->push->after, p->source, dir) < 0)
			return -1;
		snprintf(p->tree, sizeof(p->tree), "%s", dir);
	}
	return 0;
}

/* ---- stages ----------------------------------------------------------- */

static void on_hook_start(void *arg, const char *hook)
{
	say(arg, "-----> Running hook %s", hook);
}

/* Runs the hooks of EVENT as a stage of its own (none: no stage). Returns 0,
 * or 1 when one failed (outcome set to HookFailed when FAILS). */
static int stage_hooks(struct pipeline *p, const char *event, bool fails)
{
	const struct pipeline_config *cfg = p->env->cfg;
	bool in_tree = !strcmp(event, "pre-build") || !strcmp(event, "post-build");
	struct hook_result res;
	struct hook_opts o = {0};
	char hooks_dir[PATH_MAX + 8];
	char *json = NULL;
	json_t *ev = NULL;
	int rc;

	if (!hook_has_event(p->env->remote, cfg->hooks_dir, event))
		return 0;
	pipelinerun_stage(p->run, event, "Running", NULL);
	if (in_tree && write_source(p, true) < 0) {
		rc = -1;
		goto done;
	}
	if (!p->kubeconfig[0] && cfg->hooks_sa) {
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%.4000s/kubeconfig", p->work);
		rc = hook_kubeconfig_write(path, p->env->kube, p->ns, cfg->hooks_sa,
		                           HOOKS_TOKEN_TTL_S);
		if (rc == 0)
			snprintf(p->kubeconfig, sizeof(p->kubeconfig), "%s", path);
		else if (rc != KUBE_ENOTFOUND)
			event_log("warn", "hooks_credentials", "{s:s, s:s}", "run",
			          pipelinerun_name(p->run), "error", err_msg());
	}
	ev = event_new(p, event, !strncmp(event, "pipeline-", 9));
	json = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
	if (!json) {
		rc = err_set("out of memory");
		goto done;
	}
	snprintf(hooks_dir, sizeof(hooks_dir), "%s/hooks", p->work);
	o.admin_dir = cfg->hooks_dir;
	o.event = event;
	o.event_json = json;
	o.cwd = in_tree ? p->tree : NULL;
	o.work_dir = hooks_dir;
	o.kubeconfig = p->kubeconfig[0] ? p->kubeconfig : NULL;
	o.default_timeout_ms = cfg->hook_timeout_ms;
	o.on_line = say_line;
	o.on_start = on_hook_start;
	o.arg = p;
	o.cancel = p->env->cancel;
	rc = hook_run_event(&res, p->env->kube, p->env->remote, &o);
	if (rc == 1)
		err_set("%s", res.message);
done:
	if (rc == 0) {
		pipelinerun_stage(p->run, event, "Succeeded", NULL);
	} else {
		pipelinerun_stage(p->run, event, "Failed", err_msg());
		say(p, "!      %s hook failed: %s", event, err_msg());
		if (fails)
			set_outcome(p, "HookFailed", "%s hook failed: %s", event, err_msg());
		rc = 1;
	}
	free(json);
	json_decref(ev);
	return rc;
}

/* Writes the Remote's registry Secret (.dockerconfigjson) to a 0600 file
 * for a local builder. Returns 0 with PATH set, 0 with PATH "" when the
 * Remote names none, or -1 with err_msg(). */
static int registry_auth_file(struct pipeline *p, char *path, size_t size)
{
	const char *name = p->env->remote->registry_secret;
	const char *data;
	json_t *secret = NULL;
	struct buf b;
	FILE *f = NULL;
	int fd, ret = -1;

	path[0] = '\0';
	if (!name)
		return 0;
	buf_init(&b, SECRET_MAX);
	if (kube_get(&secret, p->env->kube, "v1/secrets", p->ns, name) < 0) {
		err_set("registry credentials: secret %s/%s: %s", p->ns, name, err_msg());
		goto out;
	}
	data = json_string_value(
	    json_object_get(json_object_get(secret, "data"), ".dockerconfigjson"));
	if (!data) {
		err_set("registry credentials: secret %s/%s has no .dockerconfigjson", p->ns, name);
		goto out;
	}
	if (base64_decode(&b, data, SECRET_MAX * 2) < 0) {
		err_set("registry credentials: secret %s/%s: %s", p->ns, name, err_msg());
		goto out;
	}
	snprintf(path, size, "%.4000s/registry-auth.json", p->work);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		err_set("cannot create %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		goto out;
	}
	if (fwrite(buf_str(&b), 1, b.len, f) != b.len) {
		err_set("cannot write %s", path);
		goto out;
	}
	ret = 0;
out:
	if (f && fclose(f) != 0 && ret == 0)
		ret = err_set("cannot write %s", path);
	if (ret < 0)
		path[0] = '\0';
	if (b.data)
		explicit_bzero(b.data, b.len);
	buf_release(&b);
	if (secret) {
		/* the decoded copy is wiped above; jansson's own is freed */
		json_decref(secret);
	}
	return ret;
}

/* Builds every container of every Deployment; images go to p->images. The
 * "build" stage covers them all; each container also has its own stage,
 * "build:DEPLOYMENT/CONTAINER", ending with the image or the failure. */
static int stage_build(struct pipeline *p)
{
	const struct remote *remote = p->env->remote;
	const char *registry = remote->registry_url;
	char auth[PATH_MAX] = "";
	char cstage[330] = ""; /* "build:" + Deployment (253) + "/" + container (63) */
	unsigned nbuilt = 0;
	int ret = 1;

	pipelinerun_stage(p->run, "build", "Running", NULL);
	if (!remote->ndeployments) {
		pipelinerun_stage(p->run, "build", "Skipped", "the Remote has no spec.deployments");
		return 0;
	}
	if (!registry) {
		set_outcome(p, "BuildFailed", "remote %s/%s: spec.registry.url is not set", p->ns,
		            p->remote_name);
		goto out;
	}
	if (write_source(p, false) < 0) {
		set_outcome(p, "BuildFailed", "cannot archive the pushed tree: %s", err_msg());
		goto out;
	}
	if (p->env->cfg->runner->default_mode == RUNNER_LOCAL ||
	    !strcmp(str_or(remote->builder, "mode", ""), "local")) {
		if (registry_auth_file(p, auth, sizeof(auth)) < 0) {
			set_outcome(p, "BuildFailed", "%s", err_msg());
			goto out;
		}
	}
	for (size_t i = 0; i < remote->ndeployments; i++) {
		const char *dname = remote->deployments[i].name;

		for (size_t j = 0; j < remote->deployments[i].ncontainers; j++) {
			const struct remote_container *c = &remote->deployments[i].containers[j];
			const char *cname = c->name;
			struct runner_build b = {0};
			struct runner_result res;
			char *image = NULL;
			json_t *built;
			int rc;

			snprintf(cstage, sizeof(cstage), "build:%s/%s", dname, cname);
			pipelinerun_stage(p->run, cstage, "Running", NULL);
			if (imageref_name(&image, registry, p->ns, p->remote_name, dname, cname,
			                  p->after) < 0) {
				set_outcome(p, "BuildFailed", "%s/%s: %s", dname, cname, err_msg());
				goto out;
			}
			say(p, "-----> Building %s/%s (%s)", dname, cname, image);
			pipelinerun_progress(p->run, "Running", "building");
			b.ns = p->ns;
			b.remote = p->remote_name;
			b.pipelinerun = pipelinerun_name(p->run);
			b.deployment = dname;
			b.container = cname;
			b.image = image;
			b.path = c->path;
			b.dockerfile = c->dockerfile;
			b.build_args = c->build_args;
			b.insecure_registry = remote->is_registry_insecure;
			b.registry_secret = remote->registry_secret;
			b.registry_auth_file = auth[0] ? auth : NULL;
			b.spec_builder = remote->builder;
			b.srv = p->env->srv;
			b.source_path = p->source;
			rc = runner_build(&res, p->env->cfg->runner, p->env->kube, &b, say_line, p,
			                  p->env->cancel);
			event_log("debug", "pipeline_step", "{s:s, s:s, s:I, s:I, s:I}", "run",
			          pipelinerun_name(p->run), "step", "builder", "duration_ms",
			          (json_int_t)(res.seconds * 1000 + 0.5), "start_ms",
			          (json_int_t)res.start_ms, "tail_ms", (json_int_t)res.tail_ms);
			free(image);
			if (rc < 0 || !res.succeeded) {
				set_outcome(
				    p, !strcmp(res.reason, "Timeout") ? "Timeout" : "BuildFailed",
				    "build of %s/%s failed: %s", dname, cname,
				    res.message[0] ? res.message : err_msg());
				goto out;
			}
			say(p, "-----> Built %s/%s in %.1fs: %s", dname, cname, res.seconds,
			    res.image);
			pipelinerun_image(p->run, dname, cname, res.image);
			built = json_pack("{s:s, s:s, s:s}", "deployment", dname, "container",
			                  cname, "image", res.image);
			if (json_array_append_new(p->images, built) < 0) {
				set_outcome(p, "BuildFailed", "%s/%s: out of memory", dname, cname);
				goto out;
			}
			pipelinerun_stage(p->run, cstage, "Succeeded", res.image);
			cstage[0] = '\0';
			nbuilt++;
		}
	}
	ret = 0;
out:
	if (auth[0]) {
		unlink(auth);
	}
	if (ret == 0) {
		char msg[64];

		snprintf(msg, sizeof(msg), "%u image%s built", nbuilt, nbuilt == 1 ? "" : "s");
		pipelinerun_stage(p->run, "build", "Succeeded", msg);
	} else {
		if (cstage[0])
			pipelinerun_stage(p->run, cstage, "Failed", p->message);
		pipelinerun_stage(p->run, "build", "Failed", p->message);
		say(p, "!      %s", p->message);
	}
	return ret;
}

static void on_rollout(void *arg, const char *line)
{
	say(arg, "       %s", line);
}

/* Records the images DEPLOYMENT's containers have now, for rolling back. */
static int remember(struct pipeline *p, const char *deployment)
{
	struct deployed *dd, *grown;
	const json_t *containers, *c;
	json_t *obj = NULL;
	size_t i, n;

	if (kube_get(&obj, p->env->kube, "apps/v1/deployments", p->ns, deployment) < 0)
		return -1;
	grown = realloc(p->deployed, (p->ndeployed + 1) * sizeof(*p->deployed));
	if (!grown) {
		json_decref(obj);
		return err_set("out of memory");
	}
	p->deployed = grown;
	dd = &p->deployed[p->ndeployed++];
	memset(dd, 0, sizeof(*dd));
	dd->name = deployment;
	containers = json_object_get(
	    json_object_get(json_object_get(json_object_get(obj, "spec"), "template"), "spec"),
	    "containers");
	n = json_array_size(containers);
	dd->previous = calloc(n ? n : 1, sizeof(*dd->previous));
	dd->strings = calloc(2 * n + 1, sizeof(*dd->strings));
	if (!dd->previous || !dd->strings) {
		json_decref(obj);
		return err_set("out of memory");
	}
	json_array_foreach(containers, i, c)
	{
		dd->strings[2 * i] = strdup(str_or(c, "name", ""));
		dd->strings[2 * i + 1] = strdup(str_or(c, "image", ""));
		dd->previous[i].container = dd->strings[2 * i];
		dd->previous[i].image = dd->strings[2 * i + 1];
	}
	dd->n = n;
	json_decref(obj);
	return 0;
}

/* Puts the images back on every Deployment this run changed. */
static void roll_back(struct pipeline *p)
{
	struct deployer_opts o = {0};

	o.wait = true;
	o.timeout_ms = p->env->cfg->rollout_timeout_ms;
	o.progress = on_rollout;
	o.progress_arg = p;
	for (size_t i = p->ndeployed; i-- > 0;) {
		struct deployed *dd = &p->deployed[i];
		struct deployer_result res;

		say(p, "-----> Rolling back %s", dd->name);
		if (deployer_set_image(&res, p->env->kube, p->ns, dd->name, dd->previous, dd->n,
		                       &o) < 0)
			say(p, "!      rollback of %s failed: %s", dd->name, res.message);
	}
}

/* Sets each Deployment's built images, pinned by digest, and follows the
 * rollouts. */
static int stage_deploy(struct pipeline *p)
{
	const struct remote *remote = p->env->remote;
	int ret = 1;

	if (!json_array_size(p->images)) {
		pipelinerun_stage(p->run, "deploy", "Skipped", "no images were built");
		return 0;
	}
	pipelinerun_stage(p->run, "deploy", "Running", NULL);
	pipelinerun_progress(p->run, "Running", "deploying");
	for (size_t i = 0; i < remote->ndeployments; i++) {
		const char *dname = remote->deployments[i].name;
		/* remote.h: names are unique, so at most one image per container */
		struct deployer_image imgs[REMOTE_CONTAINERS_MAX];
		struct deployer_opts o = {0};
		struct deployer_result res;
		const json_t *img;
		size_t j, n = 0;
		char cause[256];
		long long t0;
		int rc;

		json_array_foreach(p->images, j, img)
		{
			if (!strcmp(str_or(img, "deployment", ""), dname)) {
				if (n == REMOTE_CONTAINERS_MAX) {
					set_outcome(p, "DeployFailed",
					            "deployment %s/%s: more than %d images", p->ns,
					            dname, REMOTE_CONTAINERS_MAX);
					goto out;
				}
				imgs[n].container = str_or(img, "container", "");
				imgs[n].image = str_or(img, "image", "");
				n++;
			}
		}
		if (!n)
			continue;
		if (remember(p, dname) < 0) {
			set_outcome(p, "DeployFailed", "deployment %s/%s: %s", p->ns, dname,
			            err_msg());
			goto out;
		}
		snprintf(cause, sizeof(cause), "slipway: git push %.12s of %s by %s", p->after,
		         p->push->refname, p->push->fingerprint);
		o.commit = p->after;
		o.change_cause = cause;
		o.wait = true;
		o.timeout_ms = p->env->cfg->rollout_timeout_ms;
		o.rollback_on_failure = p->env->remote->rollback_on_failure;
		o.progress = on_rollout;
		o.progress_arg = p;
		say(p, "-----> Deploying %s/%s", p->ns, dname);
		t0 = clock_now_ms();
		rc = deployer_set_image(&res, p->env->kube, p->ns, dname, imgs, n, &o);
		if (rc < 0) {
			if (res.rolled_back)
				p->ndeployed--; /* already back where it was */
			set_outcome(p, rc == DEPLOYER_ETIMEOUT ? "Timeout" : "DeployFailed", "%s",
			            res.message); /* it names the Deployment */
			goto out;
		}
		step_done(p, "deploy_patch", res.patch_ms);
		say(p, "-----> Deployed %s/%s in %lld ms%s", p->ns, dname, clock_now_ms() - t0,
		    res.changed ? "" : " (unchanged)");
	}
	ret = 0;
out:
	if (ret == 0) {
		pipelinerun_stage(p->run, "deploy", "Succeeded", NULL);
	} else {
		pipelinerun_stage(p->run, "deploy", "Failed", p->message);
		say(p, "!      %s", p->message);
		if (p->env->remote->rollback_on_failure)
			roll_back(p);
	}
	return ret;
}

static void on_waiting(void *arg, const char *holder)
{
	struct pipeline *p = arg;

	p->is_waiting = true;
	snprintf(p->holder, sizeof(p->holder), "%s", holder);
	say(p, "-----> Waiting for pipeline %s of %s/%s to finish",
	    holder[0] ? holder : "(unknown)", p->ns, p->remote_name);
	pipelinerun_progress(p->run, "Queued",
	                     holder[0] ? "waiting for another pipeline" : "waiting");
}

/* Waits for the Remote's lock, then checks the ref still has the value the
 * push expects. The "queue" stage runs while it waits; its message says how
 * long and behind which run. */
static int stage_queue(struct pipeline *p)
{
	git_reference *ref = NULL;
	long long t0 = clock_now_ms();
	char msg[320];
	bool is_at;
	int ret = 1, rc;

	pipelinerun_stage(p->run, "queue", "Running", NULL);
	rc = queue_wait(p->ticket, on_waiting, p, p->env->cancel);
	if (rc == QUEUE_SUPERSEDED) {
		set_outcome(p, "Superseded", "superseded by a newer push of %s", p->push->refname);
		goto out;
	}
	if (rc == QUEUE_CANCELLED) {
		set_outcome(p, "Interrupted", "the push was interrupted while queued");
		goto out;
	}
	if (rc < 0) {
		set_outcome(p, "Error", "%s", err_msg());
		goto out;
	}
	/* a pipeline that ran while this one waited may have moved the ref;
	 * without waiting the push has moved it already */
	if (!p->env->is_wait) {
		ret = 0;
		goto out;
	}
	rc = git_reference_lookup(&ref, p->env->repo, p->push->refname);
	if (rc == GIT_ENOTFOUND)
		is_at = git_oid_is_zero(&p->push->before);
	else
		is_at = rc == 0 && git_reference_target(ref) &&
		        git_oid_equal(git_reference_target(ref), &p->push->before);
	git_reference_free(ref);
	if (!is_at) {
		set_outcome(p, "RefChanged",
		            "%s moved while this push waited (fetch first): nothing was built",
		            p->push->refname);
		goto out;
	}
	ret = 0;
out:
	if (ret) {
		pipelinerun_stage(p->run, "queue", "Failed", p->message);
	} else if (!p->is_waiting) {
		pipelinerun_stage(p->run, "queue", "Succeeded", "no wait");
	} else {
		snprintf(msg, sizeof(msg), "waited %.1fs%s%s", (clock_now_ms() - t0) / 1000.0,
		         p->holder[0] ? " behind " : "", p->holder);
		pipelinerun_stage(p->run, "queue", "Succeeded", msg);
	}
	return ret;
}

/* ---- the pipeline ------------------------------------------------------ */

static void pipeline_free(struct pipeline *p);

/* Creates the pipeline's PipelineRun (Succeeded Unknown, "Queued"), its work
 * directory and its ticket in the queue. ENV and PUSH must outlive the
 * pipeline. *OUT belongs to the caller (pipeline_free). Returns 0 or a
 * negative code with err_msg(). */
static int pipeline_new(struct pipeline **out, const struct pipeline_env *env,
                        const struct pipeline_push *push)
{
	struct pipeline *p = calloc(1, sizeof(*p));
	struct pipelinerun_spec spec = {0};
	long long t0;
	int rc = -1;

	*out = NULL;
	if (!p)
		return err_set("out of memory");
	p->env = env;
	p->push = push;
	p->t_start = clock_now_ms();
	p->ns = env->remote->ns;
	p->remote_name = env->remote->name;
	p->images = json_array();
	git_oid_tostr(p->before, sizeof(p->before), &push->before);
	git_oid_tostr(p->after, sizeof(p->after), &push->after);
	snprintf(p->reason, sizeof(p->reason), "Unknown");
	if (!p->images || make_work(p) < 0)
		goto out;
	archiver_start(p);
	spec.ns = p->ns;
	spec.remote = p->remote_name;
	spec.remote_gvr = env->remote_gvr;
	spec.ref = push->refname;
	spec.before = p->before;
	spec.after = p->after;
	spec.fingerprint = push->fingerprint;
	spec.comment = push->comment;
	t0 = clock_now_ms();
	rc = pipelinerun_create(&p->run, env->status_kube, &spec, "Queued", "received");
	if (rc < 0)
		goto out;
	step_done(p, "create", clock_now_ms() - t0);
	rc = queue_enter(&p->ticket, env->repo_path, push->refname, pipelinerun_name(p->run));
	if (rc < 0)
		goto out;
	pipelinerun_stage(p->run, "receive", "Succeeded", NULL);
	event_log("info", "pipeline_created", "{s:s, s:s, s:s, s:s}", "remote", p->remote_name,
	          "namespace", p->ns, "run", pipelinerun_name(p->run), "ref", push->refname);
	*out = p;
	p = NULL;
	rc = 0;
out:
	if (p && p->run)
		pipelinerun_finish(p->run, false, "Error", err_msg());
	pipeline_free(p);
	return rc;
}

/* Finishes the run with the outcome set, runs pipeline-succeeded or
 * pipeline-failed, and tells the pusher. */
static void finish(struct pipeline *p, bool succeeded)
{
	long long t0;

	if (p->is_finished)
		return;
	p->is_finished = true;
	if (!succeeded && p->env->cancel && *p->env->cancel)
		set_outcome(p, "Interrupted", "the pusher went away during %s (%s)", p->reason,
		            p->message);
	if (succeeded)
		set_outcome(p, "Succeeded", "deployed %.12s", p->after);
	stage_hooks(p, succeeded ? "pipeline-succeeded" : "pipeline-failed", false);
	t0 = clock_now_ms();
	if (pipelinerun_finish(p->run, succeeded, p->reason, p->message) < 0)
		event_log("error", "pipeline_status", "{s:s, s:s}", "run", pipelinerun_name(p->run),
		          "error", err_msg());
	step_done(p, "finish", clock_now_ms() - t0);
	event_log(succeeded ? "info" : "warn", "pipeline_finished", "{s:s, s:s, s:s, s:s}", "run",
	          pipelinerun_name(p->run), "ref", p->push->refname, "reason", p->reason, "message",
	          p->message);
	if (succeeded)
		say(p, "-----> Pipeline %s succeeded in %lld ms", pipelinerun_name(p->run),
		    clock_now_ms() - p->t_start);
	else
		say(p, "!      Pipeline %s failed (%s): %s", pipelinerun_name(p->run), p->reason,
		    p->message);
}

/* Runs the pre-receive hooks. Returns 0 when the push may go on, or 1 when
 * it is rejected (the run is then finished as HookFailed). */
static int pipeline_pre_receive(struct pipeline *p)
{
	if (stage_hooks(p, "pre-receive", true) == 0)
		return 0;
	finish(p, false);
	return 1;
}

/* Waits for the Remote's lock (held until pipeline_free, so that the ref
 * moves before another pipeline starts). Returns 0 with the lock held, or 1
 * when the run failed (Superseded, RefChanged, Interrupted). */
static int pipeline_queue(struct pipeline *p)
{
	p->t_queue = clock_now_ms();
	say(p, "-----> Pipeline %s for %s %.12s", pipelinerun_name(p->run), p->push->refname,
	    p->after);
	if (stage_queue(p) == 0)
		return 0;
	finish(p, false);
	return 1;
}

/* Runs every stage after pre-receive, with the lock held, and finishes the
 * run. Returns 0 when it Succeeded, 1 when it failed. */
static int pipeline_run(struct pipeline *p)
{
	unsigned writes;
	long long api_ms;

	pipelinerun_progress(p->run, "Running", "running");
	if (stage_hooks(p, "pre-build", true))
		goto failed;
	if (stage_build(p))
		goto failed;
	if (stage_hooks(p, "post-build", true))
		goto failed;
	if (stage_hooks(p, "pre-deploy", true))
		goto failed;
	if (stage_deploy(p))
		goto failed;
	if (stage_hooks(p, "post-deploy", true)) {
		if (p->env->remote->rollback_on_failure)
			roll_back(p);
		goto failed;
	}
	finish(p, true);
	pipelinerun_api_stats(&writes, &api_ms, p->run);
	event_log("info", "pipeline_timing", "{s:s, s:I, s:I, s:i, s:I}", "run",
	          pipelinerun_name(p->run), "run_ms", (json_int_t)(clock_now_ms() - p->t_queue),
	          "duration_ms", (json_int_t)(clock_now_ms() - p->t_start), "api_writes",
	          (int)writes, "api_ms", (json_int_t)api_ms);
	return 0;
failed:
	finish(p, false);
	return 1;
}

/* Marks the run failed with REASON and MESSAGE unless it has finished. */
static void pipeline_abort(struct pipeline *p, const char *reason, const char *message)
{
	if (!p || p->is_finished)
		return;
	set_outcome(p, reason, "%s", message);
	finish(p, false);
}

/* Runs the post-receive hooks (after the ref moved); failures are only
 * reported. */
static void pipeline_post_receive(struct pipeline *p)
{
	stage_hooks(p, "post-receive", false);
}

/* Releases the lock, removes the work directory and frees P. NULL is
 * allowed. */
static void pipeline_free(struct pipeline *p)
{
	if (!p)
		return;
	if (p->archiver)
		free(archiver_join(p));
	queue_leave(p->ticket);
	if (p->work[0] && fs_remove_tree(p->work) < 0)
		event_log("warn", "pipeline_cleanup", "{s:s}", "error", err_msg());
	for (size_t i = 0; i < p->ndeployed; i++) {
		for (size_t j = 0; j < 2 * p->deployed[i].n; j++)
			free(p->deployed[i].strings[j]);
		free(p->deployed[i].strings);
		free(p->deployed[i].previous);
	}
	free(p->deployed);
	json_decref(p->images);
	pipelinerun_free(p->run);
	free(p);
}

/* ---- the push ---------------------------------------------------------- */

void pipeline_request_release(struct pipeline_request *r)
{
	for (size_t i = 0; r->cmds && i < r->ncmds; i++)
		free(r->cmds[i].refname);
	free(r->cmds);
	memset(r, 0, sizeof(*r));
}

/* Resolves REQ's quarantine into OUT of SIZE bytes ("" when there is none):
 * the repository must be where the worker's own data directory puts it, with
 * no symbolic link on the way, and the quarantine an objects/incoming-*
 * directory inside it once every link is resolved. Returns 0 or -1 with
 * err_msg(). */
static int resolve_quarantine(char *out, size_t size, const struct pipeline_request *req)
{
	char repo[PATH_MAX], objects[PATH_MAX], quarantine[PATH_MAX];
	const char *base;
	size_t n;

	out[0] = '\0';
	if (!realpath(req->repo_path, repo) || strcmp(repo, req->repo_path) != 0)
		return err_set("repository %s/%s is not in the data directory", req->ns, req->name);
	if (!req->quarantine[0])
		return 0;
	if ((size_t)snprintf(objects, sizeof(objects), "%s/objects", repo) >= sizeof(objects) ||
	    !realpath(req->quarantine, quarantine))
		return err_set("quarantine of %s/%s not found", req->ns, req->name);
	base = strrchr(quarantine, '/');
	n = strlen(objects);
	if (!base || strncmp(quarantine, objects, n) != 0 || quarantine + n != base ||
	    strncmp(base + 1, "incoming-", 9) != 0)
		return err_set("quarantine of %s/%s is not in its repository", req->ns, req->name);
	if ((size_t)snprintf(out, size, "%s", quarantine) >= size)
		return err_set("quarantine path too long");
	return 0;
}

/* Finds the key REQ names among REMOTE's spec.authorizedKeys as they are
 * now, read with the parser the connection side authorizes with (authz.h),
 * and copies its comment into COMMENT of SIZE bytes. Returns 0, or -1 with
 * err_msg() when the key is not (or no longer) listed. */
static int check_pusher(char *comment, size_t size, const struct remote *remote,
                        const struct pipeline_request *req)
{
	struct authz a;
	int ret = -1;

	authz_init(&a);
	if (authz_add_remote(&a, remote, NULL) < 0)
		goto out;
	for (size_t i = 0; i < a.nkeys && ret < 0; i++)
		if (!strcmp(a.keys[i].fingerprint, req->fingerprint)) {
			snprintf(comment, size, "%s", a.keys[i].comment);
			ret = 0;
		}
	if (ret < 0)
		err_set("key %s is not authorized for Remote %s/%s", req->fingerprint, req->ns,
		        req->name);
out:
	authz_release(&a);
	return ret;
}

/* Opens the repository at PATH, seeing the objects of QUARANTINE (resolved;
 * may be "") too. */
static int open_repo(git_repository **out, const char *path, const char *quarantine)
{
	git_odb *odb = NULL;

	if (git_repository_open_bare(out, path) < 0)
		return err_set("cannot open %s: %s", path,
		               git_error_last() ? git_error_last()->message : "");
	if (quarantine[0] && (git_repository_odb(&odb, *out) < 0 ||
	                      git_odb_add_disk_alternate(odb, quarantine) < 0)) {
		git_odb_free(odb);
		git_repository_free(*out);
		*out = NULL;
		return err_set("cannot read the quarantine %s", quarantine);
	}
	git_odb_free(odb);
	return 0;
}

static char *reason_line(const struct pipeline *p)
{
	char *s = NULL;

	/* a reason, however short, keeps the ref from moving */
	if (asprintf(&s, "%s: %s", p->reason, p->message) < 0)
		return strdup(p->reason);
	return s;
}

/* Refuses the N commands of ERRORS not refused yet: FMT with err_msg(). */
static void refuse_all(char **errors, size_t n, const char *fmt)
    __attribute__((format(printf, 3, 0)));
static void refuse_all(char **errors, size_t n, const char *fmt)
{
	for (size_t i = 0; i < n; i++)
		if (!errors[i] && asprintf(&errors[i], fmt, err_msg()) < 0)
			errors[i] = strdup("slipway: refused");
}

/* Refuses every command of REQ not refused yet with "slipway: " and
 * err_msg(), sends that verdict and hangs up. */
static void refuse_push(const struct pipeline_conn *conn, const struct pipeline_request *req,
                        char **errors)
{
	refuse_all(errors, req->ncmds, "slipway: %s");
	conn->verdict(conn->arg, req, errors);
	conn->hang_up(conn->arg, false);
}

/* Refuses the push because REQ's Remote could not be read or is malformed
 * (err_msg() says why): logs pipeline_remote at LEVEL and refuses every
 * command with "slipway: WHAT NS/NAME: why". */
static void refuse_remote(const struct pipeline_conn *conn, const struct pipeline_request *req,
                          char **errors, const char *level, const char *what)
{
	char cause[ERR_MAX];

	snprintf(cause, sizeof(cause), "%s", err_msg());
	event_log(level, "pipeline_remote", "{s:s, s:s, s:s}", "namespace", req->ns, "remote",
	          req->name, "error", cause);
	err_set("%s %s/%s: %s", what, req->ns, req->name, cause);
	refuse_push(conn, req, errors);
}

int pipeline_serve(const struct pipeline_request *req, const struct pipeline_worker *w,
                   const struct pipeline_conn *conn)
{
	const char *gvr =
	    req->is_gitkube ? "gitkube.sh/v1alpha1/remotes" : "slipway.dev/v1alpha1/remotes";
	size_t n = req->ncmds, i, ndeploying = 0;
	struct kube_client *kube = NULL, *status_kube = NULL;
	struct pipeline_push *pushes = calloc(n, sizeof(*pushes));
	struct pipeline **pipelines = calloc(n, sizeof(*pipelines));
	char **errors = calloc(n, sizeof(*errors));
	bool *is_updated = calloc(n, sizeof(*is_updated));
	char quarantine[PATH_MAX], comment[128] = "";
	struct pipeline_env env = {0};
	struct buildsrv *srv = NULL;
	git_repository *repo = NULL;
	json_t *obj = NULL;
	struct remote remote = {0};
	long long t0 = clock_now_ms();
	int ret = -1;

	if (!pushes || !pipelines || !errors || !is_updated) {
		err_set("out of memory");
		goto out;
	}

	/* the connection's word is checked against the worker's own data and
	 * the Remote as it is now: nothing runs for a push that fails */
	if (resolve_quarantine(quarantine, sizeof(quarantine), req) < 0)
		goto refused;
	if (kube_client_new_default(&kube, w->kubeconfig, w->context) < 0 ||
	    kube_get(&obj, kube, gvr, req->ns, req->name) < 0) {
		refuse_remote(conn, req, errors, "error", "cannot read Remote");
		goto out;
	}
	if (remote_parse(&remote, obj, req->is_gitkube) < 0) {
		refuse_remote(conn, req, errors, "warn", "remote");
		goto out;
	}
	if (check_pusher(comment, sizeof(comment), &remote, req) < 0)
		goto refused;

	/* which refs deploy; a push that only stores needs none of what follows */
	for (i = 0; i < n; i++) {
		pushes[i].refname = req->cmds[i].refname;
		pushes[i].before = req->cmds[i].before;
		pushes[i].after = req->cmds[i].after;
		pushes[i].fingerprint = req->fingerprint;
		pushes[i].comment = comment;
		if (!git_oid_is_zero(&pushes[i].after) &&
		    remote_is_deploying(&remote, pushes[i].refname))
			ndeploying++;
	}
	if (ndeploying && (kube_client_new_default(&status_kube, w->kubeconfig, w->context) < 0 ||
	                   open_repo(&repo, req->repo_path, quarantine) < 0 ||
	                   buildsrv_start(&srv, w->internal_bind, w->internal_advertise) < 0)) {
		refuse_push(conn, req, errors);
		goto out;
	}
	if (ndeploying)
		event_log("debug", "pipeline_step", "{s:s, s:s, s:s, s:I}", "namespace", req->ns,
		          "remote", req->name, "step", "setup", "duration_ms",
		          (json_int_t)(clock_now_ms() - t0));
	env.cfg = w->cfg;
	env.kube = kube;
	env.status_kube = status_kube;
	env.srv = srv;
	env.remote = &remote;
	env.remote_gvr = gvr;
	env.repo = repo;
	env.repo_path = req->repo_path;
	env.quarantine = quarantine;
	env.say = conn->say;
	env.say_arg = conn->arg;
	env.cancel = conn->cancel;
	env.is_wait = req->is_wait;

	/* receive, queue, pre-receive: a push that waits takes the Remote's lock
	 * first, so its hooks see the ref where the pusher saw it; one that does
	 * not wait gets its verdict without waiting for the lock, and queues
	 * after the push */
	for (i = 0; i < n; i++) {
		struct pipeline *p;

		if (git_oid_is_zero(&pushes[i].after) ||
		    !remote_is_deploying(&remote, pushes[i].refname))
			continue;
		if (pipeline_new(&pipelines[i], &env, &pushes[i]) < 0) {
			refuse_all(&errors[i], 1, "slipway: cannot create the PipelineRun: %s");
			continue;
		}
		p = pipelines[i];
		if (!req->is_wait)
			conn->say(conn->arg, "-----> Pipeline created (slipway.wait=false: it runs "
			                     "after the push)");
		if ((req->is_wait && pipeline_queue(p)) || pipeline_pre_receive(p))
			errors[i] = reason_line(p);
	}

	/* the stages, before the verdict when the push waits */
	for (i = 0; req->is_wait && i < n; i++)
		if (pipelines[i] && !errors[i] && pipeline_run(pipelines[i]))
			errors[i] = reason_line(pipelines[i]);

	/* the verdict; the connection moves the refs, then says which moved */
	if (conn->verdict(conn->arg, req, errors) == 0 &&
	    conn->updated(conn->arg, req, is_updated) == 0) {
		for (i = 0; i < n; i++)
			if (pipelines[i] && is_updated[i])
				pipeline_post_receive(pipelines[i]);
		conn->hang_up(conn->arg, true);
	} else {
		conn->hang_up(conn->arg, false);
	}

	/* after the push: what did not move is over, what does not wait runs */
	for (i = 0; i < n; i++) {
		struct pipeline *p = pipelines[i];

		if (!p || errors[i])
			continue;
		if (!is_updated[i]) {
			pipeline_abort(p, req->is_wait ? "Interrupted" : "RefChanged",
			               "the ref was not updated: the push ended or lost a race");
		} else if (!req->is_wait) {
			/* the objects have moved in: read them from the repository */
			git_repository_free(repo);
			repo = NULL;
			if (open_repo(&repo, req->repo_path, "") < 0) {
				pipeline_abort(p, "Error", err_msg());
				continue;
			}
			env.repo = repo;
			env.quarantine = "";
			if (pipeline_queue(p) == 0)
				pipeline_run(p);
		}
	}
	ret = 0;
	goto out;
refused:
	event_log("warn", "push_refused", "{s:s, s:s, s:s, s:s}", "namespace", req->ns, "remote",
	          req->name, "fingerprint", req->fingerprint, "error", err_msg());
	refuse_push(conn, req, errors);
out:
	for (i = 0; i < n; i++) {
		if (pipelines)
			pipeline_free(pipelines[i]);
		if (errors)
			free(errors[i]);
	}
	free(is_updated);
	free(errors);
	free(pipelines);
	free(pushes);
	buildsrv_free(srv);
	git_repository_free(repo);
	remote_release(&remote);
	json_decref(obj);
	kube_client_free(status_kube);
	kube_client_free(kube);
	return ret;
}
