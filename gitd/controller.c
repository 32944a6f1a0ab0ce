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
	json_t *started; /* uid -> true: runs a worker was forked for */
};

static const char *meta(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(json_object_get(obj, "metadata"), key));
}

/* Forks the worker of run NS/NAME. */
static void start_worker(struct controller *ctl, const char *ns, const char *name)
{
	pid_t pid = fork();

	if (pid < 0) {
		event_log("error", "fork_failed", "{s:s}", "error", strerror(errno));
		return;
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
}

static int on_event(void *arg, enum kube_event ev, json_t *obj)
{
	struct controller *ctl = arg;
	const char *uid = meta(obj, "uid"), *ns = meta(obj, "namespace"), *name = meta(obj, "name");

	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
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
	json_object_set_new(ctl->started, uid, json_true());
	start_worker(ctl, ns, name);
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
