/* pipesrv: the pipeline server process (credentials, start-up sweep, one
 * worker process per push) and the connection side of its line protocol. */
#include "pipesrv.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "buildsrv.h"
#include "err.h"
#include "jsontext.h"
#include "event.h"
#include "kube.h"
#include "pipelinerun.h"
#include "banned.h"

#define PUSH_OPTION_NO_WAIT "slipway.wait=false"

/* ---- lines of JSON ---------------------------------------------------- */

static int send_json(int fd, json_t *msg)
{
	char *s = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
	size_t len, off = 0;
	int ret = -1;

	json_decref(msg);
	if (!s)
		return err_set("out of memory");
	len = strlen(s);
	s[len] = '\n'; /* json_dumps leaves room for the NUL; reuse it */
	while (off < len + 1) {
		ssize_t n = send(fd, s + off, len + 1 - off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err_set("pipeline connection: %s", strerror(errno));
			goto out;
		}
		off += (size_t)n;
	}
	ret = 0;
out:
	free(s);
	return ret;
}

/* Reads the next line from FD into *OUT (caller frees). Returns 1, 0 at end
 * of stream, or -1 with err_msg(). */
static int read_json(json_t **out, int fd, struct buf *in)
{
	char chunk[8192], *nl;
	json_error_t je;

	*out = NULL;
	while (!(nl = memchr(buf_str(in), '\n', in->len))) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_set("pipeline connection: %s", strerror(errno));
		if (n == 0)
			return 0;
		if (buf_add(in, chunk, (size_t)n) < 0)
			return -1;
	}
	*out = json_loadb(buf_str(in), (size_t)(nl - buf_str(in)), 0, &je);
	buf_consume(in, (size_t)(nl - buf_str(in)) + 1);
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return err_set("pipeline connection: malformed line: %s", je.text);
	}
	return 1;
}

/* ---- the worker: one push -------------------------------------------- */

struct worker {
	int fd;
	struct buf in;
	bool is_detached; /* the connection is gone: progress goes to the logs only */
	const struct pipesrv_opts *o;
};

static volatile sig_atomic_t worker_cancel;

static void worker_say(void *arg, const char *line)
{
	struct worker *w = arg;

	if (w->is_detached)
		return;
	if (send_json(w->fd, json_pack("{s:o}", "progress", jsontext_lossy(line, SIZE_MAX))) < 0) {
		/* the pusher went away: stop what runs for it */
		w->is_detached = true;
		worker_cancel = 1;
	}
}

/* One command of the push and what became of it. */
struct wcmd {
	const char *ref;
	struct pipeline_push push;
	struct pipeline *p;
	char *error;     /* the verdict's reason, or NULL */
	bool is_updated; /* the connection moved the ref */
};

static char *reason_line(const char *reason, const char *message)
{
	char *s = NULL;

	if (asprintf(&s, "%s: %s", reason, message) < 0)
		return NULL;
	return s;
}

static void reject(struct wcmd *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reject(struct wcmd *c, const char *fmt, ...)
{
	va_list ap;

	if (c->error)
		return;
	va_start(ap, fmt);
	if (vasprintf(&c->error, fmt, ap) < 0)
		c->error = NULL;
	va_end(ap);
	if (!c->error)
		c->error = strdup("rejected");
}

static int send_verdict(struct worker *w, struct wcmd *cmds, size_t n)
{
	json_t *v = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(v, json_pack("{s:s, s:o}", "ref", cmds[i].ref, "error",
		                                   cmds[i].error
		                                       ? jsontext_lossy(cmds[i].error, SIZE_MAX)
		                                       : json_null()));
	return send_json(w->fd, json_pack("{s:o}", "verdict", v));
}

static bool has_option(const json_t *options, const char *opt)
{
	const json_t *v;
	size_t i;

	json_array_foreach(options, i, v)
	{
		if (json_string_value(v) && !strcmp(json_string_value(v), opt))
			return true;
	}
	return false;
}

static int open_repo(git_repository **out, const char *path, const char *quarantine)
{
	git_odb *odb = NULL;

	if (git_repository_open_bare(out, path) < 0)
		return err_set("cannot open %s: %s", path,
		               git_error_last() ? git_error_last()->message : "");
	if (quarantine && (git_repository_odb(&odb, *out) < 0 ||
	                   git_odb_add_disk_alternate(odb, quarantine) < 0)) {
		git_odb_free(odb);
		git_repository_free(*out);
		*out = NULL;
		return err_set("cannot read the quarantine %s", quarantine);
	}
	git_odb_free(odb);
	return 0;
}

static int worker_main(struct worker *w)
{
	const struct pipesrv_opts *o = w->o;
	const char *ns, *name, *repo_path, *quarantine, *fpr, *comment;
	json_t *req = NULL, *obj = NULL, *msg = NULL, *jc;
	struct remote remote = {0};
	struct kube_client *kube = NULL, *status_kube = NULL;
	struct buildsrv *srv = NULL;
	git_repository *repo = NULL;
	struct pipeline_env env = {0};
	struct wcmd *cmds = NULL;
	size_t n = 0, i, ndeploying = 0;
	bool is_wait, is_gitkube;
	const char *gvr;
	int rc;

	if (read_json(&req, w->fd, &w->in) != 1)
		goto out;
	ns = json_string_value(json_object_get(json_object_get(req, "remote"), "namespace"));
	name = json_string_value(json_object_get(json_object_get(req, "remote"), "name"));
	is_gitkube = json_is_true(json_object_get(json_object_get(req, "remote"), "gitkube"));
	repo_path = json_string_value(json_object_get(req, "repo"));
	quarantine = json_string_value(json_object_get(req, "quarantine"));
	fpr = json_string_value(json_object_get(json_object_get(req, "pusher"), "fingerprint"));
	comment = json_string_value(json_object_get(json_object_get(req, "pusher"), "comment"));
	is_wait = !has_option(json_object_get(req, "options"), PUSH_OPTION_NO_WAIT);
	n = json_array_size(json_object_get(req, "commands"));
	if (!ns || !name || !repo_path || !fpr || !n)
		goto out;
	cmds = calloc(n, sizeof(*cmds));
	if (!cmds)
		goto out;
	json_array_foreach(json_object_get(req, "commands"), i, jc)
	{
		const char *before = json_string_value(json_object_get(jc, "before"));
		const char *after = json_string_value(json_object_get(jc, "after"));

		cmds[i].ref = json_string_value(json_object_get(jc, "ref"));
		if (!cmds[i].ref || !before || !after ||
		    git_oid_fromstr(&cmds[i].push.before, before) < 0 ||
		    git_oid_fromstr(&cmds[i].push.after, after) < 0)
			goto out;
		cmds[i].push.refname = cmds[i].ref;
		cmds[i].push.fingerprint = fpr;
		cmds[i].push.comment = comment ? comment : "";
	}

	gvr = is_gitkube ? "gitkube.sh/v1alpha1/remotes" : "slipway.dev/v1alpha1/remotes";
	if (kube_client_new_default(&kube, o->kubeconfig, o->context) < 0 ||
	    kube_get(&obj, kube, gvr, ns, name) < 0) {
		char cause[ERR_MAX];

		snprintf(cause, sizeof(cause), "%s", err_msg());
		event_log("error", "pipeline_remote", "{s:s, s:s, s:s}", "namespace", ns, "remote",
		          name, "error", cause);
		for (i = 0; i < n; i++)
			reject(&cmds[i], "slipway: cannot read Remote %s/%s: %s", ns, name, cause);
		send_verdict(w, cmds, n);
		goto out;
	}
	if (remote_parse(&remote, obj, is_gitkube) < 0) {
		char cause[ERR_MAX];

		snprintf(cause, sizeof(cause), "%s", err_msg());
		event_log("warn", "pipeline_remote", "{s:s, s:s, s:s}", "namespace", ns, "remote",
		          name, "error", cause);
		for (i = 0; i < n; i++)
			reject(&cmds[i], "slipway: remote %s/%s: %s", ns, name, cause);
		send_verdict(w, cmds, n);
		goto out;
	}
	for (i = 0; i < n; i++)
		if (!git_oid_is_zero(&cmds[i].push.after) &&
		    remote_is_deploying(&remote, cmds[i].ref))
			ndeploying++;
	/* a push that only stores needs none of what follows */
	if (ndeploying && (kube_client_new_default(&status_kube, o->kubeconfig, o->context) < 0 ||
	                   open_repo(&repo, repo_path, quarantine) < 0 ||
	                   buildsrv_start(&srv, o->internal_bind, o->internal_advertise) < 0)) {
		for (i = 0; i < n; i++)
			reject(&cmds[i], "slipway: %s", err_msg());
		send_verdict(w, cmds, n);
		goto out;
	}

	env.cfg = o->cfg;
	env.kube = kube;
	env.status_kube = status_kube;
	env.srv = srv;
	env.remote = &remote;
	env.remote_gvr = gvr;
	env.repo = repo;
	env.repo_path = repo_path;
	env.say = worker_say;
	env.say_arg = w;
	env.cancel = &worker_cancel;
	env.is_wait = is_wait;
	for (i = 0; i < n; i++) {
		if (git_oid_is_zero(&cmds[i].push.after) ||
		    !remote_is_deploying(&remote, cmds[i].ref))
			continue;
		if (pipeline_new(&cmds[i].p, &env, &cmds[i].push) < 0) {
			reject(&cmds[i], "slipway: cannot create the PipelineRun: %s", err_msg());
			continue;
		}
		if (!is_wait)
			worker_say(
			    w,
			    "-----> Pipeline created (slipway.wait=false: it runs after the push)");
		if (pipeline_pre_receive(cmds[i].p))
			cmds[i].error =
			    reason_line(pipeline_reason(cmds[i].p), pipeline_message(cmds[i].p));
	}
	for (i = 0; is_wait && i < n; i++)
		if (cmds[i].p && !cmds[i].error && pipeline_run(cmds[i].p))
			cmds[i].error =
			    reason_line(pipeline_reason(cmds[i].p), pipeline_message(cmds[i].p));
	if (send_verdict(w, cmds, n) < 0)
		w->is_detached = true;

	/* the connection moves the refs, then says which moved */
	if (!w->is_detached && read_json(&msg, w->fd, &w->in) == 1) {
		const json_t *v;

		json_array_foreach(json_object_get(msg, "updated"), i, v)
		{
			for (size_t k = 0; k < n; k++)
				if (json_string_value(v) &&
				    !strcmp(json_string_value(v), cmds[k].ref))
					cmds[k].is_updated = true;
		}
		for (i = 0; i < n; i++)
			if (cmds[i].p && cmds[i].is_updated)
				pipeline_post_receive(cmds[i].p);
		if (send_json(w->fd, json_pack("{s:b}", "done", 1)) < 0)
			w->is_detached = true;
	}
	w->is_detached = true;
	close(w->fd);
	w->fd = -1;
	for (i = 0; i < n; i++) {
		if (!cmds[i].p || cmds[i].error)
			continue;
		if (!cmds[i].is_updated)
			pipeline_abort(cmds[i].p, is_wait ? "Interrupted" : "RefChanged",
			               "the ref was not updated: the push ended or lost a race");
		else if (!is_wait) {
			/* the objects have moved in: read them from the repository */
			git_repository_free(repo);
			repo = NULL;
			if (open_repo(&repo, repo_path, NULL) < 0) {
				pipeline_abort(cmds[i].p, "Error", err_msg());
				continue;
			}
			env.repo = repo;
			pipeline_run(cmds[i].p);
		}
	}
out:
	rc = 0;
	for (i = 0; cmds && i < n; i++) {
		pipeline_free(cmds[i].p);
		free(cmds[i].error);
	}
	free(cmds);
	buildsrv_free(srv);
	git_repository_free(repo);
	json_decref(msg);
	remote_release(&remote);
	json_decref(obj);
	json_decref(req);
	kube_client_free(status_kube);
	kube_client_free(kube);
	return rc;
}

/* ---- the server -------------------------------------------------------- */

static volatile sig_atomic_t server_stop;

static void on_term(int sig)
{
	(void)sig;
	server_stop = 1;
}

static void sweep(const struct pipesrv_opts *o)
{
	struct kube_client *kube = NULL;
	int n;

	if (kube_client_new_default(&kube, o->kubeconfig, o->context) < 0) {
		event_log("error", "pipeline_sweep", "{s:s}", "error", err_msg());
		return;
	}
	n = pipelinerun_sweep_interrupted(kube, o->namespaces);
	if (n < 0)
		event_log("error", "pipeline_sweep", "{s:s}", "error", err_msg());
	else if (n > 0)
		event_log("warn", "pipeline_sweep", "{s:i}", "interrupted", n);
	kube_client_free(kube);
}

static void server_main(int lfd, const struct pipesrv_opts *o)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	git_libgit2_init();
	sweep(o);
	event_log("info", "pipeline_server_ready", "{s:s}", "socket", o->socket_path);
	while (!server_stop) {
		struct pollfd p = {lfd, POLLIN, 0};
		int fd;
		pid_t pid;

		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		if (poll(&p, 1, 1000) <= 0)
			continue;
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		pid = fork();
		if (pid == 0) {
			struct worker w = {fd, {0}, false, o};

			close(lfd);
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() == 1)
				_exit(1);
			sa.sa_handler = SIG_DFL;
			sigaction(SIGTERM, &sa, NULL);
			buf_init(&w.in, PIPESRV_LINE_MAX);
			worker_main(&w);
			_exit(0);
		}
		if (pid < 0)
			event_log("error", "fork_failed", "{s:s}", "error", strerror(errno));
		close(fd);
	}
	/* workers die with the server (PR_SET_PDEATHSIG) */
	_exit(0);
}

int pipesrv_start(pid_t *pid, const struct pipesrv_opts *o)
{
	struct sockaddr_un addr = {0};
	pid_t parent = getpid();
	int lfd;

	if (strlen(o->socket_path) >= sizeof(addr.sun_path))
		return err_set("socket path too long: %s", o->socket_path);
	addr.sun_family = AF_UNIX;
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", o->socket_path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		return err_set("socket: %s", strerror(errno));
	unlink(o->socket_path);
	if (bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    chmod(o->socket_path, 0600) < 0 || listen(lfd, 64) < 0) {
		err_set("cannot listen on %s: %s", o->socket_path, strerror(errno));
		close(lfd);
		return -1;
	}
	*pid = fork();
	if (*pid < 0) {
		close(lfd);
		return err_set("fork: %s", strerror(errno));
	}
	if (*pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		server_main(lfd, o);
	}
	close(lfd);
	return 0;
}

/* ---- the connection side ---------------------------------------------- */

void pipesrv_client_init(struct pipesrv_client *c)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

static int client_connect(struct pipesrv_client *c)
{
	struct sockaddr_un addr = {0};

	addr.sun_family = AF_UNIX;
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", c->socket_path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		err_set("cannot reach the pipeline process at %s: %s", c->socket_path,
		        strerror(errno));
		if (c->fd >= 0)
			close(c->fd);
		c->fd = -1;
		return -1;
	}
	return 0;
}

static void relay(const struct receive_check *check, const json_t *msg)
{
	const char *line = json_string_value(json_object_get(msg, "progress"));

	if (!line)
		return;
	pkt_progressf(check->io, "%s\n", line);
	pkt_send(check->io);
}

int pipesrv_pre_receive(void *arg, const struct receive_check *check, char *message,
                        size_t message_size)
{
	struct pipesrv_client *c = arg;
	json_t *req, *cmds = json_array(), *opts = json_array(), *msg = NULL;
	const json_t *verdict;
	struct buf in;
	int ret = 1;

	buf_init(&in, PIPESRV_LINE_MAX);
	for (size_t i = 0; i < check->ncmds; i++) {
		char before[GIT_OID_HEXSZ + 1], after[GIT_OID_HEXSZ + 1];

		git_oid_tostr(before, sizeof(before), &check->cmds[i].old_oid);
		git_oid_tostr(after, sizeof(after), &check->cmds[i].new_oid);
		json_array_append_new(cmds,
		                      json_pack("{s:s, s:s, s:s}", "ref", check->cmds[i].refname,
		                                "before", before, "after", after));
	}
	for (size_t i = 0; i < check->npush_options; i++)
		json_array_append_new(opts, jsontext_lossy(check->push_options[i], SIZE_MAX));
	req = json_pack("{s:{s:s, s:s, s:b}, s:s, s:s?, s:{s:s, s:s}, s:o, s:o}", "remote",
	                "namespace", c->ns, "name", c->remote, "gitkube", c->is_gitkube, "repo",
	                c->repo_path, "quarantine", check->quarantine_dir, "pusher", "fingerprint",
	                c->fingerprint, "comment", c->comment ? c->comment : "", "options", opts,
	                "commands", cmds);
	if (client_connect(c) < 0 || send_json(c->fd, req) < 0) {
		event_log("error", "pipeline_unreachable", "{s:s}", "error", err_msg());
		snprintf(message, message_size, "slipway: the pipeline service is not available");
		goto out;
	}
	for (;;) {
		json_decref(msg);
		int r = read_json(&msg, c->fd, &in);

		if (r != 1) {
			event_log("error", "pipeline_lost", "{s:s}", "error",
			          r == 0 ? "the pipeline process hung up" : err_msg());
			snprintf(message, message_size,
			         "slipway: the pipeline process ended before a verdict");
			goto out;
		}
		verdict = json_object_get(msg, "verdict");
		if (!verdict) {
			relay(check, msg);
			continue;
		}
		break;
	}
	if (json_array_size(verdict) != check->ncmds) {
		snprintf(message, message_size, "slipway: malformed verdict from the pipeline");
		goto out;
	}
	c->errors = calloc(check->ncmds, sizeof(*c->errors));
	if (!c->errors) {
		snprintf(message, message_size, "slipway: out of memory");
		goto out;
	}
	c->nerrors = check->ncmds;
	for (size_t i = 0; i < check->ncmds; i++) {
		const char *e =
		    json_string_value(json_object_get(json_array_get(verdict, i), "error"));

		if (e && (c->errors[i] = strdup(e)))
			check->cmds[i].error = c->errors[i];
	}
	ret = 0;
out:
	json_decref(msg);
	buf_release(&in);
	return ret;
}

void pipesrv_post_receive(void *arg, const struct receive_check *check)
{
	struct pipesrv_client *c = arg;
	json_t *updated = json_array(), *msg = NULL;
	struct buf in;

	if (c->fd < 0) {
		json_decref(updated);
		return;
	}
	buf_init(&in, PIPESRV_LINE_MAX);
	for (size_t i = 0; i < check->ncmds; i++)
		if (!check->cmds[i].error)
			json_array_append_new(updated, json_string(check->cmds[i].refname));
	if (send_json(c->fd, json_pack("{s:o}", "updated", updated)) < 0)
		goto out;
	while (read_json(&msg, c->fd, &in) == 1 && !json_object_get(msg, "done")) {
		relay(check, msg);
		json_decref(msg);
		msg = NULL;
	}
out:
	json_decref(msg);
	buf_release(&in);
}

void pipesrv_client_release(struct pipesrv_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	for (size_t i = 0; i < c->nerrors; i++)
		free(c->errors[i]);
	free(c->errors);
	c->errors = NULL;
	c->nerrors = 0;
}
