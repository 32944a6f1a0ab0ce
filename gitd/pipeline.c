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
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "apply.h"
#include "archive.h"
#include "authz.h"
#include "base64.h"
#include "buf.h"
#include "clock.h"
#include "deployer.h"
#include "err.h"
#include "event.h"
#include "fs.h"
#include "helm.h"
#include "hook.h"
#include "imageref.h"
#include "manifests.h"
#include "pipelinerun.h"
#include "queue.h"
#include "release.h"
#include "remote.h"
#include "repo.h"
#include "banned.h"

#define SECRET_MAX (1u << 20)        /* a registry Secret's .dockerconfigjson */
#define CONFIG_HASHED_MAX (4u << 20) /* the config Secret's keys and base64 values */
#define HOOKS_TOKEN_TTL_S 3600       /* the hooks' ServiceAccount token */
#define APPLY_TOKEN_SLACK_S 600      /* the apply token outlives the wait by this */

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
	char path[PATH_MAX];  /* WORK/source.tar.gz */
	int ret;              /* archive_commit's, once joined */
	char error[ERR_MAX];  /* its err_msg() on failure */
	long long ms;         /* the time it took */
	long long done_at;    /* clock_now_ms() when it ended */
	struct buildsrv *srv; /* holds PATH until it ends (buildsrv_source_hold),
	                         or NULL */
};

struct pipeline {
	const struct pipeline_env *env;
	const struct pipeline_push *push;
	struct pipelinerun *run;
	struct queue_ticket *ticket;
	char before[GIT_OID_HEXSZ + 1];
	char after[GIT_OID_HEXSZ + 1];
	const char *ns, *remote_name;
	char work[PATH_MAX];                     /* private work directory */
	char source[PATH_MAX];                   /* WORK/source.tar.gz, once written */
	char tree[PATH_MAX];                     /* WORK/tree, once written */
	struct archiver *archiver;               /* writing the source, or NULL */
	char kubeconfig[PATH_MAX];               /* WORK/kubeconfig for hooks, or "" */
	json_t *images;                          /* [{deployment, container, image}] built */
	char helm_release[HELM_RELEASE_MAX + 1]; /* the release apply deployed, or "" */
	int helm_revision;                       /* its revision then, 0 when unknown */
	long helm_timeout_s;                     /* and the timeout it had */
	bool is_helm_wait;                       /* and whether it waited */
	struct deployed *deployed;
	size_t ndeployed;
	json_t *applied; /* names of spec.deployments the apply stage rolled out */
	bool is_finished;
	long long t_start;       /* clock_now_ms() at pipeline_new */
	long long t_queue;       /* clock_now_ms() when it queued */
	bool is_waiting;         /* queue_wait reported another run holding the lock */
	char holder[254];        /* the run that held the lock last seen, or "" */
	const char *trigger;     /* spec.trigger: "push", or "rollback"/"config" for a run
	                            kubectl slipway created (pipeline_serve_run) */
	long release;            /* rollback: the release put back; 0 otherwise */
	json_t *runs;            /* the Remote's runs as number_release listed them
	                            (for prune), or NULL */
	bool is_source_streamed; /* source is the archiver's, still being written */
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
	if (ev)
		json_object_set_new(ev, "trigger", json_string(p->trigger));
	if (ev && p->push->sender && p->push->sender[0])
		json_object_set_new(json_object_get(ev, "pusher"), "name",
		                    json_string(p->push->sender));
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
	a->done_at = clock_now_ms();
	a->ms = a->done_at - t0;
	/* a builder already asking for the source gets it (or a 500) now */
	if (a->srv)
		buildsrv_source_ready(a->srv, a->path);
	return NULL;
}

/* Starts writing the pushed tree's archive on a thread, when the Remote
 * builds anything; write_source takes it, or writes the archive itself when
 * the thread could not start or failed. While it is written, the build
 * endpoint holds its path, so builders may start before it is complete. */
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
	if (p->env->srv && buildsrv_source_hold(p->env->srv, a->path) == 0)
		a->srv = p->env->srv;
	/* signals stay the pipeline's */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (pthread_create(&a->thread, NULL, archiver_main, a) == 0) {
		p->archiver = a;
	} else {
		if (a->srv)
			buildsrv_source_ready(a->srv, a->path);
		free(a);
	}
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

/* Takes the archiver's archive into p->source, waiting for it to be
 * written, and logs step "archive": the time the pipeline waited here, or,
 * when the source was streamed (ASKED_AT >= 0), the time a builder's source
 * request waited for it (ASKED_AT: clock_now_ms() of that request, 0 when
 * none came). Returns 0, or -1 with err_msg() when the archive failed
 * (p->source then empty). */
static int archiver_take(struct pipeline *p, long long asked_at)
{
	long long t0 = clock_now_ms(), waited;
	struct archiver *a = archiver_join(p);
	int ret = a->ret;

	if (asked_at < 0)
		waited = clock_now_ms() - t0;
	else
		waited = asked_at && a->done_at > asked_at ? a->done_at - asked_at : 0;
	p->source[0] = '\0';
	if (ret == 0) {
		snprintf(p->source, sizeof(p->source), "%s", a->path);
	} else {
		event_log("warn", "pipeline_archive", "{s:s, s:s}", "run", pipelinerun_name(p->run),
		          "error", a->error);
		err_set("%s", a->error);
	}
	event_log("debug", "pipeline_step", "{s:s, s:s, s:I, s:I, s:b}", "run",
	          pipelinerun_name(p->run), "step", "archive", "duration_ms", (json_int_t)waited,
	          "written_ms", (json_int_t)a->ms, "is_streamed", asked_at >= 0);
	free(a);
	return ret < 0 ? -1 : 0;
}

/* Writes the pushed tree as the builders' archive and, for hooks that run
 * in it, as files. With IS_STREAMED and the archive still being written on
 * the archiver's thread under the build endpoint's hold, returns at once
 * with p->source set: builders may start, and their source requests wait
 * for it (stage_build takes the archiver after the builds). */
static int write_source(struct pipeline *p, bool with_tree, bool is_streamed)
{
	if (!p->source[0] && p->archiver && p->archiver->srv && is_streamed && !with_tree) {
		p->is_source_streamed = true;
		snprintf(p->source, sizeof(p->source), "%s", p->archiver->path);
		return 0;
	}
	if (p->archiver && (p->is_source_streamed || !p->source[0])) {
		/* the tree is written from the archive: it must be complete (when
		 * the thread failed, it is written in place below) */
		p->is_source_streamed = false;
		archiver_take(p, -1);
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

/* Queues EVENT's JSON for the Remote's webhooks that want it, when the
 * event has no hooks (stage_hooks sends the JSON its hooks get). */
static void notify(struct pipeline *p, const char *event)
{
	json_t *ev;
	char *json;

	if (!delivery_wants(p->env->webhooks, event))
		return;
	ev = event_new(p, event, !strncmp(event, "pipeline-", 9));
	json = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
	if (json)
		delivery_send(p->env->webhooks, event, pipelinerun_name(p->run), json);
	else
		event_log("error", "webhook_dropped", "{s:s, s:s, s:s}", "run",
		          pipelinerun_name(p->run), "hook_event", event, "error", "out of memory");
	free(json);
	json_decref(ev);
}

/* Runs the hooks of EVENT as a stage of its own (none: no stage). Returns 0,
 * or 1 when one failed (outcome set to HookFailed when FAILS). */
static int stage_hooks(struct pipeline *p, const char *event, bool fails)
{
	const struct pipeline_config *cfg = p->env->cfg;
	bool in_tree = !strcmp(event, "pre-build") || !strcmp(event, "post-build");
	struct hook_result res;
	struct hook_opts o = {0};
	const char *uid = p->run ? pipelinerun_uid(p->run) : NULL;
	char owner_uid[128];
	struct hookpod_config pc = {
	    .runner = cfg->runner,
	    .hooks_image = cfg->hooks_image,
	    .keep_failed_s = cfg->hook_pod_keep_s,
	    .pipelinerun = p->run ? pipelinerun_name(p->run) : NULL,
	    .pipelinerun_uid = uid && *uid ? owner_uid : NULL,
	    .images = p->images,
	    .service_accounts = cfg->hook_service_accounts,
	    .image_prefixes = cfg->hook_images,
	    .resources = cfg->hook_resources,
	};
	char hooks_dir[PATH_MAX + 8];
	char *json = NULL;
	json_t *ev = NULL;
	int rc;

	if (!hook_has_event(p->env->remote, cfg->hooks_dir, event)) {
		notify(p, event);
		return 0;
	}
	/* a copy: the run's object is replaced as its log is written */
	snprintf(owner_uid, sizeof(owner_uid), "%s", uid ? uid : "");
	pipelinerun_stage(p->run, event, "Running", NULL);
	if (in_tree && write_source(p, true, false) < 0) {
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
	delivery_send(p->env->webhooks, event, pipelinerun_name(p->run), json);
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
	o.pod = &pc;
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
	if (write_source(p, false, true) < 0) {
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
			long long t_run;
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
			t_run = clock_now_ms();
			rc = runner_build(&res, p->env->cfg->runner, p->env->kube, &b, say_line, p,
			                  p->env->cancel);
			event_log("debug", "pipeline_step", "{s:s, s:s, s:I, s:I, s:I}", "run",
			          pipelinerun_name(p->run), "step", "builder", "duration_ms",
			          (json_int_t)(res.seconds * 1000 + 0.5), "start_ms",
			          (json_int_t)res.start_ms, "tail_ms", (json_int_t)res.tail_ms);
			free(image);
			/* the archive the builder streamed is complete by now, or failed:
			 * then that is why the build failed */
			if (p->is_source_streamed) {
				p->is_source_streamed = false;
				if (archiver_take(p, res.start_ms >= 0 ? t_run + res.start_ms : 0) <
				    0) {
					set_outcome(p, "BuildFailed",
					            "cannot archive the pushed tree: %s",
					            err_msg());
					goto out;
				}
			}
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

static int cmp_keys(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The config hash of a Secret (docs/releases.md, "Config"): HMAC-SHA256
 * keyed with its metadata.uid (KEY, "" for none) over, for each key of DATA
 * in byte order, the key, a NUL, its base64 value as the API returns it and
 * a NUL; lowercase hex, into HASH. The key keeps whoever reads the pod
 * template, but not the Secret, from testing guesses of a value against the
 * hash. Returns 0 or -1 with err_msg(). */
static int hash_config(char hash[2 * 32 + 1], const char *key_uid, const json_t *data)
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	const char **keys = NULL, *key;
	size_t n = json_object_size(data), i = 0;
	struct buf msg;
	json_t *v;
	int ret = -1;

	/* a Secret holds at most 1 MiB of data; base64 makes it 4/3 of that */
	buf_init(&msg, CONFIG_HASHED_MAX);
	keys = calloc(n ? n : 1, sizeof(*keys));
	if (!keys) {
		err_set("out of memory");
		goto out;
	}
	json_object_foreach((json_t *)data, key, v) keys[i++] = key;
	qsort(keys, n, sizeof(*keys), cmp_keys);
	for (i = 0; i < n; i++) {
		const char *val = json_string_value(json_object_get(data, keys[i]));

		if (!val)
			val = "";
		if (buf_add(&msg, keys[i], strlen(keys[i]) + 1) < 0 ||
		    buf_add(&msg, val, strlen(val) + 1) < 0)
			goto out;
	}
	if (!HMAC(EVP_sha256(), key_uid, (int)strlen(key_uid),
	          (const unsigned char *)(msg.data ? msg.data : ""), msg.len, md, &mdlen) ||
	    mdlen != sizeof(md)) {
		err_set("hmac-sha256 failed");
		goto out;
	}
	for (i = 0; i < sizeof(md); i++)
		snprintf(hash + 2 * i, 3, "%02x", md[i]);
	ret = 0;
out:
	if (msg.data)
		explicit_bzero(msg.data, msg.len);
	buf_release(&msg);
	free(keys);
	return ret;
}

/* Names the Remote's config Secret "REMOTE-config" in SECRET and puts its
 * hash in HASH; a Secret that does not exist hashes as an empty one. HASH
 * is "" when gitd may not read it (then logged once per run: the Secret is
 * wired, but a change of it does not roll the Deployments). */
static void config_of(struct pipeline *p, char *secret, size_t size, char hash[2 * 32 + 1])
{
	json_t *obj = NULL;
	int rc;

	hash[0] = '\0';
	snprintf(secret, size, "%s-config", p->remote_name);
	rc = kube_get(&obj, p->env->kube, "v1/secrets", p->ns, secret);
	if (rc == 0 || rc == KUBE_ENOTFOUND) {
		const char *uid =
		    json_string_value(json_object_get(json_object_get(obj, "metadata"), "uid"));

		if (hash_config(hash, uid ? uid : "", json_object_get(obj, "data")) < 0)
			hash[0] = '\0';
	}
	if (!hash[0])
		event_log("warn", "config_unreadable", "{s:s, s:s, s:s}", "run",
		          pipelinerun_name(p->run), "secret", secret, "error", err_msg());
	json_decref(obj); /* the values: never logged, never copied */
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

/* Rolls the Helm release the apply stage upgraded back to the revision
 * before it; a release this run installed (revision 1) stays. */
static void roll_back_helm(struct pipeline *p)
{
	const struct pipeline_config *cfg = p->env->cfg;
	struct helm_request req = {0};
	struct helm_result res;
	char kubeconfig[PATH_MAX], work[PATH_MAX];

	if (!p->helm_release[0])
		return;
	if (p->helm_revision == 1) {
		say(p, "!      release %s/%s was installed by this push: nothing to roll back to",
		    p->ns, p->helm_release);
		return;
	}
	snprintf(work, sizeof(work), "%.4000s/helm", p->work);
	snprintf(kubeconfig, sizeof(kubeconfig), "%.4000s/helm/kubeconfig", p->work);
	req.helm = cfg->helm ? cfg->helm : "helm";
	req.ns = p->ns;
	req.release = p->helm_release;
	req.wait = p->is_helm_wait;
	req.timeout_s = p->helm_timeout_s;
	req.kubeconfig = kubeconfig;
	req.work_dir = work;
	req.path_env = getenv("PATH");
	req.on_line = on_rollout;
	req.arg = p;
	say(p, "-----> Rolling back release %s/%s", p->ns, p->helm_release);
	if (helm_rollback(&res, &req, p->helm_revision > 1 ? p->helm_revision - 1 : 0) < 0)
		say(p, "!      rollback of release %s/%s failed: %s", p->ns, p->helm_release,
		    res.message);
}

/* Puts the images back on every Deployment this run changed, and the Helm
 * release it upgraded. */
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
	roll_back_helm(p);
}

/* Whether the apply stage rolled out spec.deployments' NAME. */
static bool is_applied(const struct pipeline *p, const char *name)
{
	const json_t *v;
	size_t i;

	json_array_foreach(p->applied, i, v)
	{
		if (!strcmp(json_string_value(v), name))
			return true;
	}
	return false;
}

/* The images built, for helm_apply, into IMAGES (room for N). Returns how
 * many. */
static size_t helm_images(struct pipeline *p, struct helm_image *images, size_t n)
{
	const json_t *img;
	size_t i, k = 0;

	json_array_foreach(p->images, i, img)
	{
		if (k == n)
			break;
		images[k].deployment = str_or(img, "deployment", "");
		images[k].container = str_or(img, "container", "");
		images[k].image = str_or(img, "image", "");
		images[k].is_rendered = false;
		k++;
	}
	return k;
}

/* The apply stage for a Remote whose spec.manifests.path holds a Chart.yaml
 * in the pushed tree: helm upgrade --install with the built images set by
 * the post-renderer, as the ServiceAccount spec.manifests.serviceAccountName
 * (docs/helm.md). The Deployments the chart rendered with a built image are
 * recorded in p->applied, so deploy does not roll them out a second time.
 * No chart: no stage. Returns 0, or 1 when it failed (ApplyFailed). */
static int stage_apply_helm(struct pipeline *p)
{
	const struct pipeline_config *cfg = p->env->cfg;
	struct helm_image *images = NULL;
	char release[HELM_RELEASE_MAX + 1], kubeconfig[PATH_MAX], work[PATH_MAX];
	char chart_dir[PATH_MAX * 2], msg[HELM_RELEASE_MAX + 64];
	struct helm_request req = {0};
	struct helm_result res;
	struct helm_spec *spec = calloc(1, sizeof(*spec));
	size_t nimages = json_array_size(p->images);
	git_commit *commit = NULL;
	git_tree *tree = NULL;
	git_oid oid;
	int ret = 1, rc;

	images = calloc(nimages ? nimages : 1, sizeof(*images));
	if (!spec || !images) {
		set_outcome(p, "ApplyFailed", "out of memory");
		goto fail;
	}
	if (helm_spec_read(spec, p->env->remote->obj) < 0) {
		set_outcome(p, "ApplyFailed", "remote %s/%s: %s", p->ns, p->remote_name, err_msg());
		goto fail;
	}
	if (!spec->has_path) {
		ret = 0;
		goto out;
	}
	if (git_oid_fromstr(&oid, p->after) < 0 ||
	    git_commit_lookup(&commit, p->env->repo, &oid) < 0 ||
	    git_commit_tree(&tree, commit) < 0) {
		set_outcome(p, "ApplyFailed", "cannot read the pushed tree %.12s", p->after);
		goto fail;
	}
	rc = helm_chart_find(tree, spec->path);
	if (rc == 0) {
		ret = 0; /* plain manifests, or none */
		goto out;
	}
	if (rc < 0) {
		set_outcome(p, "ApplyFailed", "%s", err_msg());
		goto fail;
	}
	pipelinerun_stage(p->run, "apply", "Running", NULL);
	pipelinerun_progress(p->run, "Running", "applying");
	if (spec->release)
		snprintf(release, sizeof(release), "%s", spec->release);
	else
		helm_release_derive(release, p->remote_name);
	if (spec->release && !helm_release_is_valid(spec->release)) {
		set_outcome(p, "ApplyFailed",
		            "spec.manifests.helm.release '%s' is not a valid Helm release name (at "
		            "most %d lowercase letters, digits, '-' and '.')",
		            spec->release, HELM_RELEASE_MAX);
		goto fail;
	}
	if (write_source(p, true, false) < 0) {
		set_outcome(p, "ApplyFailed", "cannot write the pushed tree: %s", err_msg());
		goto fail;
	}
	snprintf(work, sizeof(work), "%.4000s/helm", p->work);
	snprintf(kubeconfig, sizeof(kubeconfig), "%.4000s/helm/kubeconfig", p->work);
	if (mkdir(work, 0700) < 0 && errno != EEXIST) {
		set_outcome(p, "ApplyFailed", "cannot create %s: %s", work, strerror(errno));
		goto fail;
	}
	req.timeout_s = spec->timeout_s ? spec->timeout_s : cfg->rollout_timeout_ms / 1000;
	if (req.timeout_s < 1)
		req.timeout_s = 1;
	/* the token outlives helm's own deadline */
	rc = hook_kubeconfig_write(kubeconfig, p->env->kube, p->ns, spec->sa, req.timeout_s + 600);
	if (rc == KUBE_ENOTFOUND) {
		set_outcome(p, "ApplyFailed",
		            "serviceaccount %s/%s not found: charts are installed as that "
		            "ServiceAccount (spec.manifests.serviceAccountName; docs/helm.md)",
		            p->ns, spec->sa);
		goto fail;
	}
	if (rc < 0) {
		set_outcome(p, "ApplyFailed", "a token of serviceaccount %s/%s: %s", p->ns,
		            spec->sa, err_msg());
		goto fail;
	}
	snprintf(chart_dir, sizeof(chart_dir), "%s%s%s", p->tree, spec->path[0] ? "/" : "",
	         spec->path);
	req.helm = cfg->helm ? cfg->helm : "helm";
	req.post_renderer = cfg->post_renderer ? cfg->post_renderer : "slipway-post-render";
	req.chart_dir = chart_dir;
	req.ns = p->ns;
	req.release = release;
	req.values = spec->values;
	req.nvalues = spec->nvalues;
	req.images = images;
	req.nimages = helm_images(p, images, nimages);
	req.wait = spec->wait;
	req.atomic = p->env->remote->rollback_on_failure;
	req.kubeconfig = kubeconfig;
	req.work_dir = work;
	req.path_env = getenv("PATH");
	req.on_line = on_rollout;
	req.arg = p;
	req.cancel = p->env->cancel;
	say(p, "-----> Installing chart %s as release %s/%s (helm upgrade --install)",
	    spec->path[0] ? spec->path : ".", p->ns, release);
	if (helm_apply(&res, &req) < 0) {
		set_outcome(p, "ApplyFailed", "helm release %s/%s: %s", p->ns, release,
		            res.message);
		goto fail;
	}
	for (size_t i = 0; i < req.nimages; i++)
		if (images[i].is_rendered && !is_applied(p, images[i].deployment) &&
		    json_array_append_new(p->applied, json_string(images[i].deployment)) < 0) {
			set_outcome(p, "ApplyFailed", "out of memory");
			goto fail;
		}
	snprintf(p->helm_release, sizeof(p->helm_release), "%s", release);
	p->helm_revision = res.revision;
	p->helm_timeout_s = req.timeout_s;
	p->is_helm_wait = req.wait;
	if (res.revision)
		snprintf(msg, sizeof(msg), "release %s revision %d", release, res.revision);
	else
		snprintf(msg, sizeof(msg), "release %s", release);
	say(p, "-----> Deployed %s (namespace %s)", msg, p->ns);
	pipelinerun_stage(p->run, "apply", "Succeeded", msg);
	ret = 0;
	goto out;
fail:
	pipelinerun_stage(p->run, "apply", "Failed", p->message);
	say(p, "!      %s", p->message);
out:
	git_tree_free(tree);
	git_commit_free(commit);
	free(images);
	free(spec);
	return ret;
}

/* Whether O is a workload whose pod template the built images go into. */
static bool is_pod_owner(const json_t *o)
{
	static const char *const kinds[] = {"Deployment", "StatefulSet", "DaemonSet", "Job",
	                                    "CronJob"};
	const char *kind = str_or(o, "kind", "");

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (!strcmp(kind, kinds[i]))
			return true;
	return false;
}

/* The object's place and name for messages: "FILE: document N: KIND 'NAME'". */
static const char *where(char out[static MANIFESTS_WHERE_MAX + 320], const struct manifest_obj *o)
{
	char w[MANIFESTS_WHERE_MAX];
	const char *name =
	    json_string_value(json_object_get(json_object_get(o->obj, "metadata"), "name"));

	snprintf(out, MANIFESTS_WHERE_MAX + 320, "%s: %.63s '%.253s'", manifests_where(w, o),
	         str_or(o->obj, "kind", ""), name ? name : "");
	return out;
}

/* Adds envFrom {secretRef: {name: SECRET, optional: true}} to every
 * container of pod spec POD that has no envFrom entry for SECRET, as the
 * deployer does for the Deployments it patches (the Remote's config vars,
 * docs/releases.md). Returns 0, or -1 when out of memory. */
static int wire_config(json_t *pod, const char *secret)
{
	json_t *c, *from, *e;
	size_t i, j;

	json_array_foreach(json_object_get(pod, "containers"), i, c)
	{
		bool is_wired = false;

		from = json_object_get(c, "envFrom");
		json_array_foreach(from, j, e)
		{
			if (!strcmp(str_or(json_object_get(e, "secretRef"), "name", ""), secret))
				is_wired = true;
		}
		if (is_wired)
			continue;
		if (!json_is_array(from)) {
			from = json_array();
			if (!from || json_object_set_new(c, "envFrom", from) < 0)
				return -1;
		}
		if (json_array_append_new(from, json_pack("{s:{s:s, s:b}}", "secretRef", "name",
		                                          secret, "optional", 1)) < 0)
			return -1;
	}
	return 0;
}

/* Puts the built images into the workloads of M named in spec.deployments,
 * by digest, with the commit annotation on their pod template, and records
 * those names in p->applied. A workload in spec.deployments without the
 * container named is refused. Returns 0, or -1 with the outcome set. */
static int substitute_images(struct pipeline *p, struct manifests *m)
{
	const json_t *img;
	char secret[300] = "", hash[2 * 32 + 1] = "";
	size_t i;

	json_array_foreach(p->images, i, img)
	{
		struct manifests_image mi = {.workload = str_or(img, "deployment", ""),
		                             .container = str_or(img, "container", ""),
		                             .image = str_or(img, "image", "")};
		bool is_named = false;

		for (size_t j = 0; j < m->n; j++) {
			const char *name = json_string_value(
			    json_object_get(json_object_get(m->objs[j].obj, "metadata"), "name"));

			if (is_pod_owner(m->objs[j].obj) && name && !strcmp(name, mi.workload))
				is_named = true;
		}
		if (!is_named)
			continue; /* not in the manifests: the deploy stage patches it */
		if (manifests_set_images(m, &mi, 1) < 0) {
			set_outcome(p, "ApplyFailed", "%s", err_msg());
			return -1;
		}
		if (!mi.matched) {
			set_outcome(p, "ManifestRejected",
			            "workload '%s' of the manifests has no container '%s' "
			            "(spec.deployments[].containers[])",
			            mi.workload, mi.container);
			return -1;
		}
		if (!is_applied(p, mi.workload) &&
		    json_array_append_new(p->applied, json_string(mi.workload)) < 0) {
			set_outcome(p, "ApplyFailed", "out of memory");
			return -1;
		}
	}
	for (size_t j = 0; j < m->n; j++) {
		json_t *o = m->objs[j].obj, *spec = json_object_get(o, "spec"), *tmd;
		const char *name =
		    json_string_value(json_object_get(json_object_get(o, "metadata"), "name"));

		if (!is_pod_owner(o) || !name || !is_applied(p, name))
			continue;
		if (!strcmp(str_or(o, "kind", ""), "CronJob"))
			spec = json_object_get(json_object_get(spec, "jobTemplate"), "spec");
		tmd = json_object_get(json_object_get(spec, "template"), "metadata");
		if (!json_is_object(tmd) && json_is_object(json_object_get(spec, "template"))) {
			tmd = json_object();
			json_object_set_new(json_object_get(spec, "template"), "metadata", tmd);
		}
		if (!json_is_object(json_object_get(tmd, "annotations")))
			json_object_set_new(tmd, "annotations", json_object());
		json_object_set_new(json_object_get(tmd, "annotations"), DEPLOYER_COMMIT_ANNOTATION,
		                    json_string(p->after));
		if (!secret[0])
			config_of(p, secret, sizeof(secret), hash);
		if (hash[0])
			json_object_set_new(json_object_get(tmd, "annotations"),
			                    DEPLOYER_CONFIG_HASH_ANNOTATION, json_string(hash));
		if (wire_config(json_object_get(json_object_get(spec, "template"), "spec"),
		                secret) < 0) {
			set_outcome(p, "ApplyFailed", "out of memory");
			return -1;
		}
	}
	return 0;
}

/* A client acting as the Remote's apply ServiceAccount, through a token of
 * the TokenRequest API (as hooks get theirs). The kubeconfig holding the
 * token is removed as soon as the client has read it. */
static int apply_client(struct pipeline *p, struct kube_client **out)
{
	const struct remote_manifests *m = p->env->remote->manifests;
	char path[PATH_MAX];
	int rc;

	*out = NULL;
	snprintf(path, sizeof(path), "%.4000s/apply-kubeconfig", p->work);
	rc = hook_kubeconfig_write(path, p->env->kube, p->ns, m->service_account,
	                           m->timeout_ms / 1000 + APPLY_TOKEN_SLACK_S);
	if (rc == 0)
		rc = kube_client_new_default(out, path, NULL);
	unlink(path);
	if (rc < 0)
		return err_set("service account %s/%s: %s", p->ns, m->service_account, err_msg());
	return 0;
}

/* Prunes what the inventory lists and M no longer holds (with prune), and
 * writes the new inventory: M's objects, plus with prune off what was
 * there. Returns 0, or -1 with the outcome set. */
static int prune_and_record(struct pipeline *p, struct apply *a, const struct manifests *m)
{
	const struct remote_manifests *rm = p->env->remote->manifests;
	json_t *old = NULL, *now = json_array(), *e;
	size_t i;
	int rc, ret = -1;

	if (!now)
		goto oom;
	for (i = 0; i < m->n; i++) {
		const json_t *o = m->objs[i].obj;

		if (json_array_append_new(
		        now, json_pack("{s:s, s:s, s:s}", "apiVersion", str_or(o, "apiVersion", ""),
		                       "kind", str_or(o, "kind", ""), "name",
		                       str_or(json_object_get(o, "metadata"), "name", ""))) < 0)
			goto oom;
	}
	rc = apply_inventory_read(&old, p->env->kube, a, p->remote_name);
	if (rc < 0) {
		set_outcome(p, "ApplyFailed", "inventory of %s/%s: %s", p->ns, p->remote_name,
		            err_msg());
		goto out;
	}
	if (rc == 1)
		event_log("warn", "apply_inventory", "{s:s, s:s, s:s}", "namespace", p->ns,
		          "remote", p->remote_name, "error",
		          "the inventory is not this Remote's or malformed");
	json_array_foreach(old, i, e)
	{
		const char *av = str_or(e, "apiVersion", ""), *kind = str_or(e, "kind", "");
		const char *name = str_or(e, "name", "");
		bool is_current = false;
		const json_t *c;
		size_t j;
		char shown[400];

		json_array_foreach(now, j, c)
		{
			if (json_equal(c, e))
				is_current = true;
		}
		if (is_current)
			continue;
		if (!rm->is_prune) {
			if (json_array_append(now, e) < 0)
				goto oom;
			continue;
		}
		rc = apply_prune(a, av, kind, name);
		if (rc < 0) {
			set_outcome(p, "ApplyFailed", "prune %s: %s",
			            apply_display(shown, sizeof(shown), av, kind, name), err_msg());
			goto out;
		}
		if (rc == 0) {
			say(p, "       %s pruned",
			    apply_display(shown, sizeof(shown), av, kind, name));
			pipelinerun_applied(p->run, av, kind, name, "pruned");
		}
	}
	if (apply_inventory_write(p->env->kube, a, p->remote_name, now) < 0) {
		set_outcome(p, "ApplyFailed", "inventory of %s/%s: %s", p->ns, p->remote_name,
		            err_msg());
		goto out;
	}
	ret = 0;
	goto out;
oom:
	set_outcome(p, "ApplyFailed", "out of memory");
out:
	json_decref(old);
	json_decref(now);
	return ret;
}

/* Applies the Remote's spec.manifests.path of the pushed tree: read,
 * checked against the namespace, ordered, given the built images by digest,
 * dry run as a whole (nothing is applied unless every object passes), then
 * applied with server-side apply as spec.manifests.serviceAccountName,
 * recorded (and pruned), and with wait followed until every workload is
 * rolled out or complete. No stage when the Remote has no spec.manifests. */
static int stage_apply(struct pipeline *p)
{
	const struct remote_manifests *rm = p->env->remote->manifests;
	struct manifests m;
	struct apply a = {0};
	struct kube_client *sa = NULL;
	git_commit *commit = NULL;
	git_tree *tree = NULL;
	char(*gvrs)[APPLY_GVR_MAX] = NULL;
	git_oid oid;
	char at[MANIFESTS_WHERE_MAX + 320], shown[400], msg[64];
	long long deadline;
	size_t i;
	int ret = 1, rc;

	manifests_init(&m);
	if (!rm)
		return 0;
	if (git_oid_fromstr(&oid, p->after) < 0 ||
	    git_commit_lookup(&commit, p->env->repo, &oid) < 0 ||
	    git_commit_tree(&tree, commit) < 0) {
		set_outcome(p, "ApplyFailed", "cannot read the pushed tree: %s",
		            git_error_last() ? git_error_last()->message : "");
		goto out;
	}
	rc = manifests_load(&m, tree, rm->path);
	if (rc == 0 && m.is_helm_chart) {
		/* a Chart.yaml in the path: helm upgrade --install (helm.h) */
		git_tree_free(tree);
		git_commit_free(commit);
		manifests_release(&m);
		return stage_apply_helm(p);
	}
	pipelinerun_stage(p->run, "apply", "Running", NULL);
	pipelinerun_progress(p->run, "Running", "applying");
	say(p, "-----> Applying the manifests in %s", rm->path);
	if (rc < 0) {
		set_outcome(p, "ManifestRejected", "%s", err_msg());
		goto out;
	}
	if (manifests_validate(&m, p->ns) < 0) {
		set_outcome(p, "ManifestRejected", "%s", err_msg());
		goto out;
	}
	manifests_sort(&m);
	if (substitute_images(p, &m) < 0)
		goto out;
	if (apply_client(p, &sa) < 0) {
		set_outcome(p, "ApplyFailed", "%s", err_msg());
		goto out;
	}
	if (apply_init(&a, sa, p->ns, p->env->remote_gvr, p->remote_name) < 0 ||
	    !(gvrs = calloc(m.n ? m.n : 1, sizeof(*gvrs)))) {
		set_outcome(p, "ApplyFailed", "%s", err_msg());
		goto out;
	}

	/* every object is resolved, checked and dry run before any is applied */
	for (i = 0; i < m.n; i++) {
		const json_t *o = m.objs[i].obj;
		const char *name = str_or(json_object_get(o, "metadata"), "name", "");
		bool is_namespaced;
		char inv[300];

		snprintf(inv, sizeof(inv), "%s%s", p->remote_name, APPLY_INVENTORY_SUFFIX);
		if (!strcmp(str_or(o, "kind", ""), "ConfigMap") &&
		    !strcmp(str_or(o, "apiVersion", ""), "v1") &&
		    (!strcmp(name, inv) ||
		     (!strncmp(name, p->remote_name, strlen(p->remote_name)) &&
		      !strcmp(name + strlen(p->remote_name), "-pipeline")))) {
			set_outcome(p, "ManifestRejected",
			            "%s: the name is Slipway's own for Remote %s",
			            where(at, &m.objs[i]), p->remote_name);
			goto out;
		}
		rc = apply_resolve(&a, gvrs[i], &is_namespaced, str_or(o, "apiVersion", ""),
		                   str_or(o, "kind", ""));
		if (rc < 0) {
			set_outcome(p, "ApplyFailed", "%s: %s", where(at, &m.objs[i]), err_msg());
			goto out;
		}
		if (!is_namespaced) {
			set_outcome(
			    p, "ManifestRejected",
			    "%s: cluster-scoped kinds are not applied from a repository: only "
			    "objects in namespace '%s' are",
			    where(at, &m.objs[i]), p->ns);
			goto out;
		}
		if (apply_annotate(&a, m.objs[i].obj) < 0 ||
		    apply_object(&a, NULL, gvrs[i], o, true) < 0) {
			set_outcome(p, "ApplyFailed", "%s: %s", where(at, &m.objs[i]), err_msg());
			goto out;
		}
	}
	say(p, "       %zu object%s passed the server-side dry run", m.n, m.n == 1 ? "" : "s");

	/* what the deployer can roll back: the images of Deployments that exist */
	for (i = 0; i < m.n; i++) {
		const json_t *o = m.objs[i].obj;
		const char *name = str_or(json_object_get(o, "metadata"), "name", "");

		if (!strcmp(str_or(o, "kind", ""), "Deployment") &&
		    !strcmp(str_or(o, "apiVersion", ""), "apps/v1") && is_applied(p, name) &&
		    remember(p, name) < 0 && kube_client_status(p->env->kube)->code != 404) {
			set_outcome(p, "ApplyFailed", "%s: %s", where(at, &m.objs[i]), err_msg());
			goto out;
		}
	}
	for (i = 0; i < m.n; i++) {
		const json_t *o = m.objs[i].obj;
		const char *action = NULL;

		if (apply_object(&a, &action, gvrs[i], o, false) < 0) {
			set_outcome(p, "ApplyFailed", "%s: %s", where(at, &m.objs[i]), err_msg());
			goto out;
		}
		apply_display(shown, sizeof(shown), str_or(o, "apiVersion", ""),
		              str_or(o, "kind", ""),
		              str_or(json_object_get(o, "metadata"), "name", ""));
		say(p, "       %s %s", shown, action);
		pipelinerun_applied(p->run, str_or(o, "apiVersion", ""), str_or(o, "kind", ""),
		                    str_or(json_object_get(o, "metadata"), "name", ""), action);
	}
	if (prune_and_record(p, &a, &m) < 0)
		goto out;

	/* wait: Deployments with gitd's client (as the deploy stage), the
	 * other workloads with the ServiceAccount's */
	deadline = clock_now_ms() + rm->timeout_ms;
	for (i = 0; rm->is_wait && i < m.n; i++) {
		const json_t *o = m.objs[i].obj;
		const char *kind = str_or(o, "kind", "");
		const char *name = str_or(json_object_get(o, "metadata"), "name", "");
		bool is_deployment = !strcmp(kind, "Deployment");
		struct deployer_result res;
		long left = (long)(deadline - clock_now_ms());

		if (!deployer_is_workload(str_or(o, "apiVersion", ""), kind))
			continue;
		say(p, "-----> Waiting for %s",
		    apply_display(shown, sizeof(shown), str_or(o, "apiVersion", ""), kind, name));
		rc = deployer_wait_workload(&res, is_deployment ? p->env->kube : sa, kind, p->ns,
		                            name, left > 0 ? left : 1, on_rollout, p);
		if (rc < 0) {
			/* the message names the object and the reason */
			set_outcome(p, rc == DEPLOYER_ETIMEOUT ? "Timeout" : "DeployFailed", "%s",
			            res.message);
			goto out;
		}
	}
	ret = 0;
out:
	if (ret == 0) {
		snprintf(msg, sizeof(msg), "%zu object%s applied", m.n, m.n == 1 ? "" : "s");
		pipelinerun_stage(p->run, "apply", "Succeeded", msg);
	} else {
		pipelinerun_stage(p->run, "apply", "Failed", p->message);
		say(p, "!      %s", p->message);
		if (p->ndeployed && p->env->remote->rollback_on_failure)
			roll_back(p);
	}
	free(gvrs);
	apply_release(&a);
	kube_client_free(sa);
	git_tree_free(tree);
	git_commit_free(commit);
	manifests_release(&m);
	return ret;
}

/* Sets each Deployment's built images, pinned by digest, and follows the
 * rollouts. */
static int stage_deploy(struct pipeline *p)
{
	const struct remote *remote = p->env->remote;
	char secret[300], hash[2 * 32 + 1];
	int ret = 1;

	if (!json_array_size(p->images)) {
		pipelinerun_stage(p->run, "deploy", "Skipped",
		                  strcmp(p->trigger, "push") ? "no images"
		                                             : "no images were built");
		return 0;
	}
	if (json_array_size(p->applied) == remote->ndeployments) {
		for (size_t i = 0; i < remote->ndeployments; i++)
			say(p, "-----> %s/%s was rolled out by the apply stage", p->ns,
			    remote->deployments[i].name);
		pipelinerun_stage(p->run, "deploy", "Skipped", "rolled out by the apply stage");
		return 0;
	}
	pipelinerun_stage(p->run, "deploy", "Running", NULL);
	pipelinerun_progress(p->run, "Running", "deploying");
	config_of(p, secret, sizeof(secret), hash);
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

		if (is_applied(p, dname)) {
			say(p, "-----> %s/%s was rolled out by the apply stage", p->ns, dname);
			continue;
		}
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
		if (!strcmp(p->trigger, "rollback"))
			snprintf(cause, sizeof(cause), "slipway: rollback to v%ld (%.12s) by %s",
			         p->release, p->after, pipelinerun_name(p->run));
		else if (strcmp(p->trigger, "push") != 0)
			snprintf(cause, sizeof(cause), "slipway: %s %.12s by %s", p->trigger,
			         p->after, pipelinerun_name(p->run));
		else
			snprintf(cause, sizeof(cause), "slipway: git push %.12s of %s by %s",
			         p->after, p->push->refname, p->push->fingerprint);
		o.commit = p->after;
		o.change_cause = cause;
		o.env_from_secret = secret;
		o.config_hash = hash[0] ? hash : NULL;
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

/* The part of a pipeline a push's and an adopted run's share: *OUT gets a
 * new pipeline for PUSH under ENV with TRIGGER (all borrowed, outliving it)
 * and its work directory, or NULL. Returns 0, or -1 with err_msg() (what was
 * made is freed). */
static int pipeline_init(struct pipeline **out, const struct pipeline_env *env,
                         const struct pipeline_push *push, const char *trigger)
{
	struct pipeline *p = calloc(1, sizeof(*p));

	*out = NULL;
	if (!p)
		return err_set("out of memory");
	p->env = env;
	p->push = push;
	p->trigger = trigger;
	p->t_start = clock_now_ms();
	p->ns = env->remote->ns;
	p->remote_name = env->remote->name;
	p->images = json_array();
	p->applied = json_array();
	git_oid_tostr(p->before, sizeof(p->before), &push->before);
	git_oid_tostr(p->after, sizeof(p->after), &push->after);
	snprintf(p->reason, sizeof(p->reason), "Unknown");
	if (!p->images || !p->applied) {
		pipeline_free(p);
		return err_set("out of memory");
	}
	if (make_work(p) < 0) {
		pipeline_free(p);
		return -1;
	}
	*out = p;
	return 0;
}

/* Creates the pipeline's PipelineRun (Succeeded Unknown, "Queued"), its work
 * directory and its ticket in the queue. ENV and PUSH must outlive the
 * pipeline. *OUT belongs to the caller (pipeline_free). Returns 0 or a
 * negative code with err_msg(). */
static int pipeline_new(struct pipeline **out, const struct pipeline_env *env,
                        const struct pipeline_push *push)
{
	struct pipeline *p = NULL;
	struct pipelinerun_spec spec = {0};
	long long t0;
	int rc = -1;

	*out = NULL;
	if (pipeline_init(&p, env, push,
	                  push->trigger && push->trigger[0] ? push->trigger : "push") < 0)
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
	spec.trigger = push->trigger;
	spec.sender = push->sender;
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

/* Gives the run that Succeeded its release number (release.h) and sets the
 * outcome. The Remote's lock is held, so no other run of the Remote counts
 * at the same time. */
static void number_release(struct pipeline *p)
{
	json_t *runs = NULL;
	long n = p->release;

	if (!n) {
		/* listed ahead by the run's writer while the run went on, or now */
		int rc = pipelinerun_listed(&runs, p->run);

		if (rc == 1 &&
		    (rc = pipelinerun_list_remote(&runs, p->env->kube, p->ns, p->remote_name)) < 0)
			event_log("warn", "pipeline_release", "{s:s, s:s}", "run",
			          pipelinerun_name(p->run), "error", err_msg());
		if (rc == 0)
			n = release_last(runs) + 1;
		/* the lock is held until the run ends: prune counts from this list */
		json_decref(p->runs);
		p->runs = runs;
	}
	if (n)
		pipelinerun_set_release(p->run, n);
	if (!strcmp(p->trigger, "rollback"))
		set_outcome(p, "Succeeded", "rolled back to v%ld (%.12s)", n, p->after);
	else if (n)
		set_outcome(p, "Succeeded", "deployed %.12s as v%ld", p->after, n);
	else
		set_outcome(p, "Succeeded", "deployed %.12s", p->after);
	if (n)
		say(p, "-----> Release v%ld", n);
}

/* Deletes the Remote's finished runs beyond spec.historyLimit, counting
 * from the list number_release took, if any. */
static void prune(struct pipeline *p)
{
	int n = pipelinerun_prune(p->env->kube, p->ns, p->remote_name,
	                          p->env->remote->history_limit, p->runs, p->run);

	if (n < 0)
		event_log("warn", "pipeline_prune", "{s:s, s:s}", "run", pipelinerun_name(p->run),
		          "error", err_msg());
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
		number_release(p);
	stage_hooks(p, succeeded ? "pipeline-succeeded" : "pipeline-failed", false);
	t0 = clock_now_ms();
	if (pipelinerun_finish(p->run, succeeded, p->reason, p->message) < 0)
		event_log("error", "pipeline_status", "{s:s, s:s}", "run", pipelinerun_name(p->run),
		          "error", err_msg());
	prune(p);
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

/* The stages that change what runs, for a push and for a run without a
 * build alike: pre-deploy hooks, apply, deploy, post-deploy hooks (whose
 * failure rolls the Deployments back). Returns 0, or 1 when one failed. */
static int stages_deploy(struct pipeline *p)
{
	if (stage_hooks(p, "pre-deploy", true) || stage_apply(p) || stage_deploy(p))
		return 1;
	if (stage_hooks(p, "post-deploy", true)) {
		if (p->env->remote->rollback_on_failure)
			roll_back(p);
		return 1;
	}
	return 0;
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
	/* the Remote's lock is held: its runs can be listed for the release
	 * number now, on the writer, while the deploy goes on */
	pipelinerun_list_ahead(p->run);
	if (stage_hooks(p, "post-build", true))
		goto failed;
	if (stages_deploy(p))
		goto failed;
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
	json_decref(p->applied);
	json_decref(p->runs);
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
	struct kube_client *kube = w->kube, *status_kube = w->status_kube;
	struct kube_client *own_kube = NULL, *own_status_kube = NULL; /* built here */
	struct pipeline_push *pushes = calloc(n, sizeof(*pushes));
	struct pipeline **pipelines = calloc(n, sizeof(*pipelines));
	char **errors = calloc(n, sizeof(*errors));
	bool *is_updated = calloc(n, sizeof(*is_updated));
	char quarantine[PATH_MAX], comment[128] = "";
	struct pipeline_env env = {0};
	struct buildsrv *srv = NULL;
	struct delivery_sender *webhooks = NULL;
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
	if ((!kube && kube_client_new_default(&own_kube, w->kubeconfig, w->context) < 0) ||
	    kube_get(&obj, kube ? kube : own_kube, gvr, req->ns, req->name) < 0) {
		refuse_remote(conn, req, errors, "error", "cannot read Remote");
		goto out;
	}
	if (!kube)
		kube = own_kube;
	if (remote_parse(&remote, obj, req->is_gitkube) < 0) {
		refuse_remote(conn, req, errors, "warn", "remote");
		goto out;
	}
	if (!req->trigger[0] && check_pusher(comment, sizeof(comment), &remote, req) < 0)
		goto refused;

	/* which refs deploy; a push that only stores needs none of what follows */
	for (i = 0; i < n; i++) {
		pushes[i].refname = req->cmds[i].refname;
		pushes[i].before = req->cmds[i].before;
		pushes[i].after = req->cmds[i].after;
		pushes[i].fingerprint = req->fingerprint;
		pushes[i].comment = comment;
		pushes[i].trigger = req->trigger[0] ? req->trigger : "push";
		pushes[i].sender = req->sender;
		if (!git_oid_is_zero(&pushes[i].after) &&
		    remote_is_deploying(&remote, pushes[i].refname))
			ndeploying++;
	}
	if (ndeploying && !status_kube &&
	    kube_client_new_default(&own_status_kube, w->kubeconfig, w->context) == 0)
		status_kube = own_status_kube;
	if (ndeploying && (!status_kube || open_repo(&repo, req->repo_path, quarantine) < 0 ||
	                   buildsrv_start(&srv, w->internal_bind, w->internal_advertise) < 0)) {
		refuse_push(conn, req, errors);
		goto out;
	}
	if (ndeploying) {
		struct delivery_options wo = {.kubeconfig = w->kubeconfig,
		                              .context = w->context,
		                              .allow_link_local = w->cfg->webhook_allow_link_local,
		                              .report_fd = w->cfg->report_fd};

		/* webhooks only tell: without them the push goes on */
		if (delivery_sender_start(&webhooks, &remote, &wo) < 0)
			event_log("error", "webhook_sender_failed", "{s:s, s:s, s:s}", "namespace",
			          req->ns, "remote", req->name, "error", err_msg());
	}
	if (ndeploying)
		event_log("debug", "pipeline_step", "{s:s, s:s, s:s, s:I}", "namespace", req->ns,
		          "remote", req->name, "step", "setup", "duration_ms",
		          (json_int_t)(clock_now_ms() - t0));
	env.cfg = w->cfg;
	env.kube = kube;
	env.status_kube = status_kube;
	env.srv = srv;
	env.webhooks = webhooks;
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
		/* a push that waited ends with its runs' writes done: the
		 * mirror, Events and lastRun went out meanwhile */
		for (i = 0; req->is_wait && i < n; i++)
			if (pipelines[i])
				pipelinerun_flush(pipelines[i]->run);
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
	/* the runs are over and the Remote's lock released: the deliveries
	 * still queued (pipeline-succeeded, pipeline-failed) go out now */
	delivery_sender_finish(webhooks);
	free(is_updated);
	free(errors);
	free(pipelines);
	free(pushes);
	buildsrv_free(srv);
	git_repository_free(repo);
	remote_release(&remote);
	json_decref(obj);
	kube_client_free(own_status_kube);
	kube_client_free(own_kube);
	return ret;
}

/* ---- a run kubectl slipway created -------------------------------------- */

/* Creates the pipeline of PipelineRun OBJ (unclaimed, borrowed) by taking
 * the object over, its work directory and its ticket in the queue (under
 * "TRIGGER:NAME", which no push supersedes). Returns 0, KUBE_ECONFLICT when
 * another claimant took it, or a negative code with err_msg(). */
static int pipeline_adopt(struct pipeline **out, const struct pipeline_env *env,
                          const struct pipeline_push *push, const json_t *obj, const char *trigger)
{
	struct pipeline *p = NULL;
	char ticket[300];
	int rc = -1;

	*out = NULL;
	if (pipeline_init(&p, env, push, trigger) < 0)
		goto out;
	rc = pipelinerun_adopt(&p->run, env->status_kube, obj, env->remote_gvr, "Queued",
	                       "received");
	if (rc < 0)
		goto out;
	snprintf(ticket, sizeof(ticket), "%s:%s", trigger, pipelinerun_name(p->run));
	rc = queue_enter(&p->ticket, env->repo_path, ticket, pipelinerun_name(p->run));
	if (rc < 0)
		goto out;
	event_log("info", "pipeline_created", "{s:s, s:s, s:s, s:s, s:s}", "remote", p->remote_name,
	          "namespace", p->ns, "run", pipelinerun_name(p->run), "ref", push->refname,
	          "trigger", trigger);
	*out = p;
	p = NULL;
	rc = 0;
out:
	if (p && p->run)
		pipelinerun_finish(p->run, false, "Error", err_msg());
	pipeline_free(p);
	return rc;
}

/* Picks the images this run deploys, under the Remote's lock: a rollback's
 * are those of the release spec.rollbackOf names, a config run's those of
 * the current release. Returns 0, or 1 with the outcome set. */
static int stage_release(struct pipeline *p, const char *rollback_of)
{
	const json_t *from, *img;
	json_t *runs = NULL;
	const char *after;
	int ret = 1;
	size_t i;

	pipelinerun_stage(p->run, "release", "Running", NULL);
	if (pipelinerun_list_remote(&runs, p->env->kube, p->ns, p->remote_name) < 0) {
		set_outcome(p, "Error", "cannot list the runs of %s/%s: %s", p->ns, p->remote_name,
		            err_msg());
		goto out;
	}
	if (!strcmp(p->trigger, "rollback")) {
		if (!rollback_of || !*rollback_of) {
			set_outcome(p, "ReleaseNotFound", "spec.rollbackOf is not set");
			goto out;
		}
		from = release_find(runs, rollback_of);
		if (!from) {
			set_outcome(p, "ReleaseNotFound", "%s", err_msg());
			goto out;
		}
		p->release = release_number(from);
	} else {
		from = release_current(runs);
	}
	after = json_string_value(json_object_get(json_object_get(from, "spec"), "after"));
	if (after && strlen(after) < sizeof(p->after))
		snprintf(p->after, sizeof(p->after), "%s", after);
	json_array_foreach(json_object_get(json_object_get(from, "status"), "images"), i, img)
	{
		const char *d = json_string_value(json_object_get(img, "deployment"));
		const char *c = json_string_value(json_object_get(img, "container"));
		const char *ref = json_string_value(json_object_get(img, "image"));

		if (!d || !c || !ref)
			continue;
		pipelinerun_image(p->run, d, c, ref);
		if (json_array_append_new(p->images, json_pack("{s:s, s:s, s:s}", "deployment", d,
		                                               "container", c, "image", ref)) < 0) {
			set_outcome(p, "Error", "out of memory");
			goto out;
		}
	}
	ret = 0;
out:
	if (ret == 0) {
		char msg[128];

		if (p->release)
			snprintf(msg, sizeof(msg), "v%ld (%.12s)", p->release, p->after);
		else
			snprintf(msg, sizeof(msg), "%s",
			         from ? "the current release" : "no release yet");
		pipelinerun_stage(p->run, "release", "Succeeded", msg);
		say(p, "-----> Release %s", msg);
	} else {
		pipelinerun_stage(p->run, "release", "Failed", p->message);
	}
	json_decref(runs);
	return ret;
}

/* The stages of a run without a build: the release's images, pre-deploy,
 * deploy, post-deploy. Returns 0 when it Succeeded, 1 when it failed. */
static int pipeline_redeploy(struct pipeline *p, const char *rollback_of)
{
	pipelinerun_progress(p->run, "Running", "running");
	if (stage_release(p, rollback_of))
		goto failed;
	if (stages_deploy(p))
		goto failed;
	finish(p, true);
	return 0;
failed:
	finish(p, false);
	return 1;
}

/* Ends an unclaimed run OBJ that cannot start (err_msg() says why) as
 * failed with REASON. */
static void refuse_run(struct kube_client *c, const json_t *obj, const char *reason)
{
	struct pipelinerun *r = NULL;
	char cause[ERR_MAX];

	snprintf(cause, sizeof(cause), "%s", err_msg());
	if (pipelinerun_adopt(&r, c, obj, NULL, "Error", cause) == 0)
		pipelinerun_finish(r, false, reason, cause);
	pipelinerun_free(r);
}

static const char *str_at(const json_t *obj, const char *a, const char *b)
{
	const json_t *v = json_object_get(obj, a);

	return json_string_value(b ? json_object_get(v, b) : v);
}

int pipeline_serve_run(const char *ns, const char *name, const struct pipeline_worker *w)
{
	struct kube_client *kube = NULL, *status_kube = NULL;
	const char *gvr = "slipway.dev/v1alpha1/remotes", *remote_name, *trigger, *ref;
	const char *after, *before;
	struct pipeline_push push = {0};
	struct pipeline_env env = {0};
	struct pipeline *p = NULL;
	struct remote remote = {0};
	char repo[REPO_PATH_MAX];
	json_t *obj = NULL, *robj = NULL;
	git_repository *grepo = NULL;
	const json_t *spec;
	int ret = -1, rc;

	if (kube_client_new_default(&kube, w->kubeconfig, w->context) < 0 ||
	    kube_client_new_default(&status_kube, w->kubeconfig, w->context) < 0)
		goto out;
	rc = kube_get(&obj, kube, PIPELINERUN_GVR, ns, name);
	if (rc == KUBE_ENOTFOUND || (rc == 0 && !pipelinerun_is_unclaimed(obj))) {
		ret = 0; /* gone, or taken over already */
		goto out;
	}
	if (rc < 0)
		goto out;
	spec = json_object_get(obj, "spec");
	remote_name = str_at(spec, "remote", NULL);
	trigger = release_trigger(obj);
	ref = str_at(spec, "ref", NULL);
	after = str_at(spec, "after", NULL);
	before = str_at(spec, "before", NULL);
	if (!remote_name || !ref || strncmp(ref, "refs/heads/", 11) != 0 || !ref[11] || !after ||
	    git_oid_fromstr(&push.after, after) < 0 || strlen(after) != GIT_OID_HEXSZ ||
	    (before &&
	     (strlen(before) != GIT_OID_HEXSZ || git_oid_fromstr(&push.before, before) < 0))) {
		err_set("pipelinerun %s/%s: spec.remote, a branch in spec.ref and %d-digit "
		        "spec.after (and spec.before) are required",
		        ns, name, GIT_OID_HEXSZ);
		refuse_run(status_kube, obj, "Invalid");
		goto out;
	}
	rc = kube_get(&robj, kube, gvr, ns, remote_name);
	if (rc == KUBE_ENOTFOUND) {
		gvr = "gitkube.sh/v1alpha1/remotes";
		rc = kube_get(&robj, kube, gvr, ns, remote_name);
	}
	if (rc < 0 ||
	    remote_parse(&remote, robj, !strcmp(gvr, "gitkube.sh/v1alpha1/remotes")) < 0) {
		err_set("cannot read Remote %s/%s: %s", ns, remote_name, err_msg());
		refuse_run(status_kube, obj, "RemoteNotFound");
		goto out;
	}
	if (repo_path(repo, sizeof(repo), w->data_dir, ns, remote_name) < 0) {
		refuse_run(status_kube, obj, "Invalid");
		goto out;
	}
	push.refname = ref;
	push.fingerprint = str_at(spec, "pusher", "fingerprint");
	push.comment = str_at(spec, "pusher", "comment");
	if (!push.fingerprint)
		push.fingerprint = "";
	if (!push.comment)
		push.comment = "";
	env.cfg = w->cfg;
	env.kube = kube;
	env.status_kube = status_kube;
	env.remote = &remote;
	env.remote_gvr = gvr;
	env.repo_path = repo;
	/* the release's manifests are read from its commit (apply stage) */
	if (open_repo(&grepo, repo, "") < 0 && remote.manifests) {
		refuse_run(status_kube, obj, "Error");
		goto out;
	}
	env.repo = grepo;
	env.is_wait = false; /* no ref to check: the branch does not move */
	rc = pipeline_adopt(&p, &env, &push, obj, trigger);
	if (rc == KUBE_ECONFLICT) {
		ret = 0;
		goto out;
	}
	if (rc < 0)
		goto out;
	if (pipeline_queue(p) == 0)
		pipeline_redeploy(p, str_at(spec, "rollbackOf", NULL));
	ret = 0;
out:
	if (ret < 0)
		event_log("error", "pipeline_run_failed", "{s:s, s:s, s:s}", "namespace", ns, "run",
		          name, "error", err_msg());
	pipeline_free(p);
	git_repository_free(grepo);
	remote_release(&remote);
	json_decref(robj);
	json_decref(obj);
	kube_client_free(status_kube);
	kube_client_free(kube);
	return ret;
}
