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
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "buildsrv.h"
#include "clock.h"
#include "controller.h"
#include "err.h"
#include "jsontext.h"
#include "event.h"
#include "hookpod.h"
#include "kube.h"
#include "pipelinerun.h"
#include "remote.h"
#include "repo.h"
#include "upstream.h"
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

/* Reads the next line from FD into IN; *LEN is its length without the
 * newline, the line starts at buf_str(IN) and the caller consumes LEN + 1.
 * Returns 1, 0 at end of stream, or -1 with err_msg(). */
static int read_line(size_t *len, int fd, struct buf *in)
{
	char chunk[8192], *nl;

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
	*len = (size_t)(nl - buf_str(in));
	return 1;
}

/* Reads the next line from FD into *OUT (caller frees). Returns 1, 0 at end
 * of stream, or -1 with err_msg(). */
static int read_json(json_t **out, int fd, struct buf *in)
{
	json_error_t je;
	size_t len;
	int rc;

	*out = NULL;
	rc = read_line(&len, fd, in);
	if (rc != 1)
		return rc;
	*out = json_loadb(buf_str(in), len, 0, &je);
	buf_consume(in, len + 1);
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return err_set("pipeline connection: malformed line: %s", je.text);
	}
	return 1;
}

/* ---- the worker's request -------------------------------------------- */

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

/* Whether FPR looks like "SHA256:" and unpadded base64 (ssh-keygen -l). */
static bool is_fingerprint(const char *fpr)
{
	size_t n = strlen(fpr);

	if (strncmp(fpr, "SHA256:", 7) != 0 || n == 7 || n >= PIPELINE_FINGERPRINT_MAX)
		return false;
	return strspn(fpr + 7,
	              "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") == n - 7;
}

static int parse_command(struct pipeline_command *out, const json_t *jc)
{
	const char *ref = json_string_value(json_object_get(jc, "ref"));
	const char *before = json_string_value(json_object_get(jc, "before"));
	const char *after = json_string_value(json_object_get(jc, "after"));
	int is_valid = 0;

	if (!ref || !before || !after)
		return err_set("a command without ref, before and after");
	if (strncmp(ref, "refs/", 5) != 0 || git_reference_name_is_valid(&is_valid, ref) < 0 ||
	    !is_valid)
		return err_set("invalid refname '%.64s'", ref);
	if (strlen(before) != GIT_OID_HEXSZ || strlen(after) != GIT_OID_HEXSZ ||
	    git_oid_fromstr(&out->before, before) < 0 || git_oid_fromstr(&out->after, after) < 0)
		return err_set("%.64s: before and after must be %d hex digits", ref, GIT_OID_HEXSZ);
	out->refname = strdup(ref);
	if (!out->refname)
		return err_set("out of memory");
	return 0;
}

int pipesrv_request_parse(struct pipeline_request *out, const char *data, size_t len,
                          const char *data_dir)
{
	const json_t *remote, *pusher, *commands, *jc, *jq, *jg;
	const char *ns, *name, *repo, *quarantine, *fpr;
	json_error_t je;
	json_t *req;
	size_t i, n;
	int ret = -1;

	memset(out, 0, sizeof(*out));
	req = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(req)) {
		err_set("malformed request: %s", req ? "not an object" : je.text);
		goto out;
	}
	remote = json_object_get(req, "remote");
	pusher = json_object_get(req, "pusher");
	commands = json_object_get(req, "commands");
	ns = json_string_value(json_object_get(remote, "namespace"));
	name = json_string_value(json_object_get(remote, "name"));
	jg = json_object_get(remote, "gitkube");
	repo = json_string_value(json_object_get(req, "repo"));
	jq = json_object_get(req, "quarantine");
	quarantine = json_string_value(jq);
	fpr = json_string_value(json_object_get(pusher, "fingerprint"));
	n = json_array_size(commands);
	if (!ns || !name || (jg && !json_is_boolean(jg)) || !fpr ||
	    (jq && !json_is_null(jq) && !quarantine) || !n) {
		err_set("malformed request: remote.namespace, remote.name, pusher.fingerprint "
		        "and commands are required");
		goto out;
	}
	/* the repository is where the worker's own data directory puts the
	 * Remote; the connection's path must be that one */
	if (repo_path(out->repo_path, sizeof(out->repo_path), data_dir, ns, name) < 0)
		goto out;
	snprintf(out->ns, sizeof(out->ns), "%s", ns);
	snprintf(out->name, sizeof(out->name), "%s", name);
	out->is_gitkube = json_is_true(jg);
	if (repo && strcmp(repo, out->repo_path) != 0) {
		err_set("repository '%.128s' is not the one of %s/%s", repo, ns, name);
		goto out;
	}
	/* REPO/objects/incoming-NAME: one component, no way out */
	if (quarantine) {
		size_t rn = strlen(out->repo_path);
		const char *base = quarantine + rn + sizeof("/objects/") - 1;

		if (strncmp(quarantine, out->repo_path, rn) != 0 ||
		    strncmp(quarantine + rn, "/objects/incoming-", 18) != 0 ||
		    base[strcspn(base, "/")] || !strcmp(base, "incoming-") ||
		    strspn(base + 9,
		           "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") !=
		        strlen(base + 9)) {
			err_set("quarantine '%.128s' is not in the repository of %s/%s", quarantine,
			        ns, name);
			goto out;
		}
		snprintf(out->quarantine, sizeof(out->quarantine), "%s", quarantine);
	}
	if (!is_fingerprint(fpr)) {
		err_set("malformed key fingerprint '%.64s'", fpr);
		goto out;
	}
	snprintf(out->fingerprint, sizeof(out->fingerprint), "%s", fpr);
	out->is_wait = !has_option(json_object_get(req, "options"), PUSH_OPTION_NO_WAIT);
	out->cmds = calloc(n, sizeof(*out->cmds));
	if (!out->cmds) {
		err_set("out of memory");
		goto out;
	}
	json_array_foreach(commands, i, jc)
	{
		if (parse_command(&out->cmds[i], jc) < 0)
			goto out;
		out->ncmds++;
		for (size_t k = 0; k < i; k++)
			if (!strcmp(out->cmds[k].refname, out->cmds[i].refname)) {
				err_set("%.64s: given twice", out->cmds[i].refname);
				goto out;
			}
	}
	ret = 0;
out:
	json_decref(req);
	if (ret < 0)
		pipeline_request_release(out);
	return ret;
}

/* ---- the worker: one push -------------------------------------------- */

struct worker {
	int fd;
	struct buf in;
	bool is_detached; /* the connection is gone: progress goes to the logs only */
	const struct pipesrv_opts *o;
	struct kube_client *kube, *status_kube; /* a spare's clients, or NULL */
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

static int worker_verdict(void *arg, const struct pipeline_request *req, char *const *errors)
{
	struct worker *w = arg;
	json_t *v = json_array();

	if (w->is_detached)
		return -1;
	for (size_t i = 0; i < req->ncmds; i++)
		json_array_append_new(
		    v, json_pack("{s:s, s:o}", "ref", req->cmds[i].refname, "error",
		                 errors[i] ? jsontext_lossy(errors[i], SIZE_MAX) : json_null()));
	if (send_json(w->fd, json_pack("{s:o}", "verdict", v)) < 0) {
		w->is_detached = true;
		return -1;
	}
	return 0;
}

static int worker_updated(void *arg, const struct pipeline_request *req, bool *is_updated)
{
	struct worker *w = arg;
	json_t *msg = NULL;
	const json_t *v;
	size_t i;

	if (w->is_detached || read_json(&msg, w->fd, &w->in) != 1) {
		w->is_detached = true;
		return -1;
	}
	json_array_foreach(json_object_get(msg, "updated"), i, v)
	{
		for (size_t k = 0; k < req->ncmds; k++)
			if (json_string_value(v) &&
			    !strcmp(json_string_value(v), req->cmds[k].refname))
				is_updated[k] = true;
	}
	json_decref(msg);
	return 0;
}

static void worker_hang_up(void *arg, bool is_done)
{
	struct worker *w = arg;

	if (is_done && !w->is_detached)
		send_json(w->fd, json_pack("{s:b}", "done", 1));
	w->is_detached = true;
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
}

static void worker_main(struct worker *w)
{
	const struct pipesrv_opts *o = w->o;
	struct pipeline_request req;
	struct pipeline_worker pw = {o->cfg,           o->kubeconfig,         o->context,
	                             o->internal_bind, o->internal_advertise, o->data_dir,
	                             w->kube,          w->status_kube};
	struct pipeline_conn conn = {worker_say, worker_verdict, worker_updated, worker_hang_up,
	                             w,          &worker_cancel};
	size_t len;

	if (read_line(&len, w->fd, &w->in) != 1)
		return;
	if (len > 11 && !strncmp(buf_str(&w->in), "{\"webhook\":", 11)) {
		struct upstream_opts uo = {o->data_dir, &pw, o->max_pack_bytes,
		                           o->max_object_bytes};
		json_t *msg = json_loadb(buf_str(&w->in), len, 0, NULL);
		int fd = w->fd;

		w->fd = -1; /* upstream_serve_webhook answers and closes it */
		upstream_serve_webhook(json_object_get(msg, "webhook"), fd, &uo);
		json_decref(msg);
		return;
	}
	if (pipesrv_request_parse(&req, buf_str(&w->in), len, o->data_dir) < 0) {
		/* no verdict: the connection rejects a push that gets none */
		event_log("warn", "pipeline_request_refused", "{s:s}", "error", err_msg());
		return;
	}
	buf_consume(&w->in, len + 1);
	pipeline_serve(&req, &pw, &conn);
	pipeline_request_release(&req);
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

/* Forks the controller of the runs kubectl slipway creates (controller.h);
 * it shares the server's credentials and dies with it. Returns its pid, or
 * 0 when it could not be started (logged). */
static pid_t start_controller(const struct pipesrv_opts *o)
{
	static struct pipeline_worker pw;
	static struct controller_opts co;
	pid_t pid;

	pw = (struct pipeline_worker){
	    o->cfg,      o->kubeconfig, o->context, o->internal_bind, o->internal_advertise,
	    o->data_dir, NULL,          NULL};
	co.namespaces = o->namespaces;
	co.w = &pw;
	if (controller_start(&pid, &co) < 0) {
		event_log("error", "controller_start", "{s:s}", "error", err_msg());
		return 0;
	}
	return pid;
}

/* In a process the server just forked: drops the listening socket LFD, dies
 * with the server (PR_SET_PDEATHSIG; a server already gone ends it), and
 * takes SIGTERM's default action again (the server's handler only sets a
 * flag). */
static void child_setup(int lfd)
{
	struct sigaction sa;

	close(lfd);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		_exit(1);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigaction(SIGTERM, &sa, NULL);
}

/* Forks a process that deletes the kept hook Pods of the served namespaces
 * whose keep time is up (hookpod_sweep), so the server's loop never waits
 * on the API for it. Returns its pid, or 0 when it could not be forked
 * (logged). */
static pid_t start_hook_pod_sweep(const struct pipesrv_opts *o, int lfd)
{
	pid_t pid = fork();

	if (pid == 0) {
		const char *all[] = {NULL, NULL};
		const char *const *nss = o->namespaces && o->namespaces[0] ? o->namespaces : all;
		struct kube_client *kube = NULL;

		child_setup(lfd);
		if (kube_client_new_default(&kube, o->kubeconfig, o->context) < 0) {
			event_log("error", "hook_pod_sweep_failed", "{s:s}", "error", err_msg());
			_exit(1);
		}
		for (size_t k = 0; nss == all ? k < 1 : nss[k] != NULL; k++)
			if (hookpod_sweep(kube, nss[k]) < 0)
				event_log("warn", "hook_pod_sweep_failed", "{s:s}", "error",
				          err_msg());
		kube_client_free(kube);
		_exit(0);
	}
	if (pid < 0) {
		event_log("error", "fork_failed", "{s:s}", "error", strerror(errno));
		return 0;
	}
	return pid;
}

/* A Remote whose upstream is polled. */
struct poll_entry {
	char ns[254], name[254];
	int interval_s;
	time_t due;
	pid_t pid; /* its running poll, or 0 */
	bool is_listed;
};

static struct poll_entry *polls;
static size_t npolls;

/* Re-lists the Remotes with a poll period into the table. */
static void polls_refresh(const struct pipesrv_opts *o)
{
	const char *all[] = {NULL, NULL};
	const char *const *nss = o->namespaces && o->namespaces[0] ? o->namespaces : all;
	struct kube_client *kube = NULL;

	if (kube_client_new_default(&kube, o->kubeconfig, o->context) < 0) {
		event_log("error", "upstream_list_failed", "{s:s}", "error", err_msg());
		return;
	}
	for (size_t i = 0; i < npolls; i++)
		polls[i].is_listed = false;
	for (size_t k = 0; nss == all ? k < 1 : nss[k] != NULL; k++) {
		json_t *list = NULL, *item;
		size_t i;

		if (kube_list(&list, kube, "slipway.dev/v1alpha1/remotes", nss[k], NULL) < 0) {
			event_log("error", "upstream_list_failed", "{s:s}", "error", err_msg());
			continue;
		}
		json_array_foreach(json_object_get(list, "items"), i, item)
		{
			struct remote r;
			struct poll_entry *e = NULL;

			if (remote_parse(&r, item, false) < 0)
				continue;
			for (size_t j = 0; j < npolls && !e; j++)
				if (!strcmp(polls[j].ns, r.ns) && !strcmp(polls[j].name, r.name))
					e = &polls[j];
			if (!e && r.has_upstream && r.upstream.poll_interval_s) {
				struct poll_entry *grown =
				    realloc(polls, (npolls + 1) * sizeof(*polls));

				if (grown) {
					polls = grown;
					e = &polls[npolls++];
					memset(e, 0, sizeof(*e));
					snprintf(e->ns, sizeof(e->ns), "%s", r.ns);
					snprintf(e->name, sizeof(e->name), "%s", r.name);
					e->due = time(NULL);
				}
			}
			if (e) {
				e->interval_s = r.has_upstream ? r.upstream.poll_interval_s : 0;
				e->is_listed = e->interval_s > 0;
			}
			remote_release(&r);
		}
		json_decref(list);
	}
	kube_client_free(kube);
	/* Remotes gone or no longer polled leave once their poll ended */
	for (size_t i = 0; i < npolls;)
		if (!polls[i].is_listed && !polls[i].pid)
			polls[i] = polls[--npolls];
		else
			i++;
}

/* Forks a poll for each listed Remote that is due and not being polled. */
static void polls_start(const struct pipesrv_opts *o, int lfd)
{
	time_t now = time(NULL);

	for (size_t i = 0; i < npolls; i++) {
		struct poll_entry *e = &polls[i];
		pid_t pid;

		if (!e->is_listed || e->pid || now < e->due)
			continue;
		e->due = now + e->interval_s;
		pid = fork();
		if (pid == 0) {
			struct pipeline_worker pw = {o->cfg,
			                             o->kubeconfig,
			                             o->context,
			                             o->internal_bind,
			                             o->internal_advertise,
			                             o->data_dir,
			                             NULL,
			                             NULL};
			struct upstream_opts uo = {o->data_dir, &pw, o->max_pack_bytes,
			                           o->max_object_bytes};

			child_setup(lfd);
			upstream_poll(e->ns, e->name, &uo);
			_exit(0);
		}
		if (pid < 0)
			event_log("error", "fork_failed", "{s:s}", "error", strerror(errno));
		else
			e->pid = pid;
	}
}

/* Marks the poll whose process PID ended as not running. */
static void poll_ended(pid_t pid)
{
	for (size_t i = 0; i < npolls; i++)
		if (polls[i].pid == pid)
			polls[i].pid = 0;
}

/* ---- the spare: a worker forked ahead of its push ----------------------- */

/* The pre-forked worker (pid 0: none). The server hands it the next
 * connection over FD, its end of a socketpair (SCM_RIGHTS), and forgets
 * it; a spare not taken within o->spare_idle_ms is killed and replaced. */
struct spare {
	pid_t pid;
	int fd;
	long long born_ms; /* clock_now_ms() at its fork */
};

/* Builds a client and opens its connection with a request every identity
 * may make (GET /version: system:public-info-viewer). Returns the client,
 * or NULL (logged as pipeline_spare_cold; the push then builds its own). */
static struct kube_client *warm_client(const struct pipesrv_opts *o)
{
	struct kube_client *c = NULL;
	json_t *v = NULL;

	if (kube_client_new_default(&c, o->kubeconfig, o->context) < 0 ||
	    kube_request(&v, c, "GET", "/version", NULL, NULL) < 0) {
		event_log("warn", "pipeline_spare_cold", "{s:s}", "error", err_msg());
		kube_client_free(c);
		c = NULL;
	}
	json_decref(v);
	return c;
}

/* Receives one descriptor over FD (SCM_RIGHTS). Returns it, or -1 when FD
 * reached its end (the server retired the spare) or failed. */
static int recv_fd(int fd)
{
	char byte, ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {&byte, 1};
	struct msghdr m = {0};
	struct cmsghdr *cm;
	ssize_t n;
	int got = -1;

	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = ctl;
	m.msg_controllen = sizeof(ctl);
	do
		n = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	cm = n == 1 ? CMSG_FIRSTHDR(&m) : NULL;
	if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
	    cm->cmsg_len == CMSG_LEN(sizeof(int)))
		memcpy(&got, CMSG_DATA(cm), sizeof(int));
	return got;
}

/* Sends descriptor CONN over FD (SCM_RIGHTS). Returns 0 or -1. */
static int send_fd(int fd, int conn)
{
	char byte = 'c', ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {&byte, 1};
	struct msghdr m = {0};
	struct cmsghdr *cm;
	ssize_t n;

	memset(ctl, 0, sizeof(ctl));
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = ctl;
	m.msg_controllen = sizeof(ctl);
	cm = CMSG_FIRSTHDR(&m);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &conn, sizeof(int));
	do
		n = sendmsg(fd, &m, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n == 1 ? 0 : -1;
}

/* The spare's life: builds its API clients, then waits for the server to
 * hand it a connection and serves it as any worker. It is forked when the
 * previous spare took a push: it lets that push's first steps have the CPU
 * for PIPESRV_SPARE_WARM_DELAY_MS before its own TLS handshakes, unless a
 * connection comes first. */
static void spare_main(int fd, const struct pipesrv_opts *o)
{
	struct worker w = {-1, {0}, false, o, NULL, NULL};
	struct pollfd p = {fd, POLLIN, 0};
	long long t0, ready;
	bool is_early;

	while (poll(&p, 1, PIPESRV_SPARE_WARM_DELAY_MS) < 0 && errno == EINTR)
		;
	is_early = p.revents != 0;
	t0 = clock_now_ms();
	w.kube = warm_client(o);
	w.status_kube = w.kube ? warm_client(o) : NULL;
	ready = clock_now_ms();
	event_log("debug", "pipeline_spare_ready", "{s:i, s:I, s:b}", "pid", (int)getpid(),
	          "warm_ms", (json_int_t)(ready - t0), "is_warm", w.status_kube != NULL);
	w.fd = recv_fd(fd);
	close(fd);
	if (w.fd >= 0) {
		event_log("debug", "pipeline_spare_taken", "{s:i, s:I, s:b}", "pid", (int)getpid(),
		          "idle_ms", (json_int_t)(clock_now_ms() - ready), "was_ready", !is_early);
		buf_init(&w.in, PIPESRV_LINE_MAX);
		worker_main(&w);
		if (w.fd >= 0)
			close(w.fd);
	}
	kube_client_free(w.status_kube);
	kube_client_free(w.kube);
}

/* Forks the spare into S. Logs and leaves S->pid 0 when it cannot. */
static void spare_start(struct spare *s, const struct pipesrv_opts *o, int lfd)
{
	int sv[2];
	pid_t pid;

	s->pid = 0;
	s->fd = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		event_log("error", "pipeline_spare_failed", "{s:s}", "error", strerror(errno));
		return;
	}
	pid = fork();
	if (pid == 0) {
		child_setup(lfd);
		close(sv[0]);
		spare_main(sv[1], o);
		_exit(0);
	}
	close(sv[1]);
	if (pid < 0) {
		event_log("error", "fork_failed", "{s:s}", "error", strerror(errno));
		close(sv[0]);
		return;
	}
	s->pid = pid;
	s->fd = sv[0];
	s->born_ms = clock_now_ms();
}

/* Kills the spare of S that was not taken and forgets it. */
static void spare_retire(struct spare *s)
{
	if (!s->pid)
		return;
	kill(s->pid, SIGKILL);
	close(s->fd);
	s->pid = 0;
	s->fd = -1;
}

/* Hands connection FD to the spare of S, which then is a worker the server
 * no longer tracks. Returns 0, or -1 when there is no spare or it is gone
 * (it is then forgotten; FD stays the caller's). */
static int spare_take(struct spare *s, int fd)
{
	int ret;

	if (!s->pid)
		return -1;
	ret = send_fd(s->fd, fd);
	if (ret < 0)
		kill(s->pid, SIGKILL);
	close(s->fd);
	s->pid = 0;
	s->fd = -1;
	return ret;
}

static void server_main(int lfd, const struct pipesrv_opts *o)
{
	struct sigaction sa;
	pid_t controller;            /* 0 while not running */
	time_t controller_retry = 0; /* when to start it again */
	time_t listed = 0;
	pid_t hook_sweep = 0; /* the running hook Pod sweep, or 0 */
	time_t hook_swept = 0;
	struct spare spare = {0, -1, 0};
	long long spare_retry = 0; /* clock_now_ms() from which to fork a spare */

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	git_libgit2_init();
	sweep(o);
	controller = start_controller(o);
	event_log("info", "pipeline_server_ready", "{s:s}", "socket", o->socket_path);
	while (!server_stop) {
		struct pollfd p = {lfd, POLLIN, 0};
		int fd, timeout_ms = 1000;
		pid_t pid;

		while ((pid = waitpid(-1, NULL, WNOHANG)) > 0)
			if (pid == controller) /* it ended: start it again */
				controller = 0;
			else if (pid == hook_sweep)
				hook_sweep = 0;
			else if (pid == spare.pid) { /* it died untaken: not at once again */
				close(spare.fd);
				spare.pid = 0;
				spare.fd = -1;
				spare_retry = clock_now_ms() + 1000;
			} else
				poll_ended(pid);
		if (o->spare_idle_ms > 0) {
			long long now = clock_now_ms();

			if (spare.pid && now - spare.born_ms >= o->spare_idle_ms) {
				event_log("debug", "pipeline_spare_recycled", "{s:i, s:I}", "pid",
				          (int)spare.pid, "idle_ms",
				          (json_int_t)(now - spare.born_ms));
				spare_retire(&spare);
			}
			if (!spare.pid && now >= spare_retry)
				spare_start(&spare, o, lfd);
			if (spare.pid && spare.born_ms + o->spare_idle_ms - now < timeout_ms)
				timeout_ms = (int)(spare.born_ms + o->spare_idle_ms - now);
		}
		if (!controller && time(NULL) >= controller_retry) {
			controller = start_controller(o);
			controller_retry = time(NULL) + 5;
		}
		if (o->is_polling && time(NULL) - listed >= PIPESRV_POLL_LIST_S) {
			polls_refresh(o);
			listed = time(NULL);
		}
		if (o->is_polling)
			polls_start(o, lfd);
		if (!hook_sweep && time(NULL) - hook_swept >= HOOKPOD_SWEEP_PERIOD_S) {
			hook_sweep = start_hook_pod_sweep(o, lfd);
			hook_swept = time(NULL);
		}
		if (poll(&p, 1, timeout_ms < 0 ? 0 : timeout_ms) <= 0)
			continue;
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		/* the spare serves the push (its clients connected, or connecting
		 * now), and the next spare starts at once */
		if (spare_take(&spare, fd) == 0) {
			close(fd);
			spare_retry = 0;
			continue;
		}
		pid = fork();
		if (pid == 0) {
			struct worker w = {fd, {0}, false, o, NULL, NULL};

			child_setup(lfd);
			buf_init(&w.in, PIPESRV_LINE_MAX);
			worker_main(&w);
			_exit(0);
		}
		if (pid < 0)
			event_log("error", "fork_failed", "{s:s}", "error", strerror(errno));
		close(fd);
	}
	/* workers and the spare die with the server (PR_SET_PDEATHSIG) */
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
