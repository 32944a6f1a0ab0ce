/* controller: watches PipelineRuns and runs, in a worker process each, the
 * ones kubectl slipway created (see controller.h). */
#include "controller.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "event.h"
#include "kube.h"
#include "pipelinerun.h"
#include "banned.h"

#define RETRY_S 5 /* between watches that failed */

struct controller {
	const struct controller_opts *o;
	const char *ns;  /* NULL: all namespaces */
	json_t *started; /* uid -> {ns, name, pid}: runs a worker was forked for;
	                    pid 0 once a worker failed (tried again at the next
	                    event, a bookmark at the latest) */
};

static const char *meta(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(json_object_get(obj, "metadata"), key));
}

/* Forks the worker of run NS/NAME. Returns its pid, or 0 (logged). */
static pid_t start_worker(struct controller *ctl, const char *ns, const char *name)
{
	pid_t pid = fork();

	if (pid < 0) {
		event_log("error", "fork_failed", "{s:s}", "error", strerror(errno));
		return 0;
	}
	if (pid == 0) {
		struct sigaction sa;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = SIG_DFL;
		sigaction(SIGTERM, &sa, NULL);
		_exit(pipeline_serve_run(ns, name, ctl->o->w) < 0 ? 1 : 0);
	}
	event_log("info", "controller_run", "{s:s, s:s, s:i}", "namespace", ns, "run", name, "pid",
	          (int)pid);
	return pid;
}

/* Reaps the workers that ended; one that failed (it could not reach the
 * API, say) is marked to be started again. */
static void reap(struct controller *ctl)
{
	const char *uid;
	json_t *v;
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
			continue;
		json_object_foreach(ctl->started, uid, v)
		{
			if (json_integer_value(json_object_get(v, "pid")) == pid)
				json_object_set_new(v, "pid", json_integer(0));
		}
	}
}

/* Starts again the workers that failed. */
static void retry(struct controller *ctl)
{
	const char *uid;
	json_t *v;

	json_object_foreach(ctl->started, uid, v)
	{
		const char *ns = json_string_value(json_object_get(v, "ns"));
		const char *name = json_string_value(json_object_get(v, "name"));

		if (ns && name && json_integer_value(json_object_get(v, "pid")) == 0)
			json_object_set_new(v, "pid", json_integer(start_worker(ctl, ns, name)));
	}
}

static int on_event(void *arg, enum kube_event ev, json_t *obj)
{
	struct controller *ctl = arg;
	const char *uid = meta(obj, "uid"), *ns = meta(obj, "namespace"), *name = meta(obj, "name");

	reap(ctl);
	retry(ctl);
	if (!uid || !ns || !name)
		return 0;
	if (ev == KUBE_EVENT_DELETED) {
		json_object_del(ctl->started, uid);
		return 0;
	}
	if (ev != KUBE_EVENT_ADDED && ev != KUBE_EVENT_MODIFIED && ev != KUBE_EVENT_LISTED)
		return 0;
	if (!pipelinerun_is_unclaimed(obj) || json_object_get(ctl->started, uid))
		return 0;
	json_object_set_new(ctl->started, uid,
	                    json_pack("{s:s, s:s, s:I}", "ns", ns, "name", name, "pid",
	                              (json_int_t)start_worker(ctl, ns, name)));
	return 0;
}

static void controller_main(struct controller *ctl)
{
	struct kube_watch_opts wo = {0};

	ctl->started = json_object();
	for (;;) {
		struct kube_client *c = NULL;
		int rc = KUBE_ERROR;

		if (kube_client_new_default(&c, ctl->o->w->kubeconfig, ctl->o->w->context) == 0)
			rc = kube_watch(c, PIPELINERUN_GVR, ctl->ns, &wo, on_event, ctl);
		event_log("warn", "controller_watch", "{s:s, s:s}", "namespace",
		          ctl->ns ? ctl->ns : "", "error", rc < 0 ? err_msg() : "watch ended");
		kube_client_free(c);
		sleep(RETRY_S);
	}
}

int controller_start(pid_t *pid, const struct controller_opts *o)
{
	const char *const *nss = o->namespaces;
	pid_t parent = getpid();

	*pid = fork();
	if (*pid < 0)
		return err_set("fork: %s", strerror(errno));
	if (*pid > 0)
		return 0;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	event_log("info", "controller_started", "{s:i}", "pid", (int)getpid());
	if (nss && nss[0] && nss[1]) {
		/* one watching process per namespace, each dying with this one */
		parent = getpid();
		for (size_t i = 0; nss[i]; i++) {
			pid_t child = fork();

			if (child == 0) {
				struct controller ctl = {o, nss[i], NULL};

				prctl(PR_SET_PDEATHSIG, SIGKILL);
				if (getppid() != parent)
					_exit(1);
				controller_main(&ctl);
			}
			if (child < 0)
				event_log("error", "fork_failed", "{s:s}", "error",
				          strerror(errno));
		}
		for (;;)
			if (wait(NULL) < 0 && errno == ECHILD)
				pause();
	} else {
		struct controller ctl = {o, nss && nss[0] ? nss[0] : NULL, NULL};

		controller_main(&ctl);
	}
	_exit(0);
}
