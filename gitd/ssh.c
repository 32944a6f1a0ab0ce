/* ssh: one SSH connection served with libssh: authentication from the authz
 * table, the exec allowlist, and the git service on the channel (see ssh.h). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libssh/callbacks.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "command.h"
#include "clock.h"
#include "err.h"
#include "event.h"
#include "jsontext.h"
#include "pktline.h"
#include "pipesrv.h"
#include "receive_pack.h"
#include "repo.h"
#include "sandbox.h"
#include "ssh.h"
#include "upload_pack.h"
#include "banned.h"

/* Bytes a log line keeps of one string the client chose. */
#define LOG_CLIENT_MAX 1024

/* A string the client chose (user name, command, env name, anything an
 * error message quotes) as a JSON value for event_log's "o": jansson
 * refuses invalid UTF-8, and one bad byte must not blank the whole line. */
static json_t *client_text(const char *s)
{
	return jsontext_lossy(s, LOG_CLIENT_MAX);
}

/* What the callbacks learn; read by sshd_serve once the request is in. */
struct conn {
	const struct sshd_opts *opts;
	ssh_session session;
	ssh_channel channel;
	struct ssh_channel_callbacks_struct channel_cb;
	const struct authz_key *key; /* authenticated key, or NULL */
	char user[128];
	char protocol[64]; /* GIT_PROTOCOL from an env request */
	char command[COMMAND_MAX];
	bool has_request;    /* exec, shell or subsystem arrived */
	const char *refusal; /* message for a shell or subsystem request */
	unsigned auth_failures;
	bool is_upload;                  /* upload-pack: its writes wait on the client too */
	long long wait_ms;               /* spent in reads waiting for the client */
	long long window_start_ms;       /* wait_ms when the rate window began */
	unsigned long long window_bytes; /* read since then */
	git_repository *repo;            /* the service's, freed after the channel closes */
};

/* Sends one metrics.h report line to gitd (one write, under PIPE_BUF). */
static void report(const struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void report(const struct conn *c, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	if (c->opts->report_fd < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n < sizeof(line) && write(c->opts->report_fd, line, (size_t)n) < 0) {
		/* metrics are best effort */
	}
}

static int on_auth_pubkey(ssh_session session, const char *user, struct ssh_key_struct *pubkey,
                          char signature_state, void *userdata)
{
	struct conn *c = userdata;
	const struct authz_key *k;
	char fp[64] = "";

	/* past the limit: sshd_serve disconnects once this packet is handled */
	if (c->opts->max_auth_tries && c->auth_failures >= c->opts->max_auth_tries)
		return SSH_AUTH_DENIED;
	if (signature_state != SSH_PUBLICKEY_STATE_NONE &&
	    signature_state != SSH_PUBLICKEY_STATE_VALID) {
		c->auth_failures++;
		report(c, "auth_failure bad_signature\n");
		event_log("info", "auth_failed", "{s:s, s:s}", "peer", c->opts->peer, "reason",
		          "bad_signature");
		return SSH_AUTH_DENIED;
	}
	k = authz_find_key(c->opts->authz, pubkey);
	if (!k) {
		if (signature_state == SSH_PUBLICKEY_STATE_NONE) {
			c->auth_failures++;
			report(c, "auth_failure unknown_key\n");
			authz_fingerprint(fp, sizeof(fp), pubkey);
			event_log("info", "auth_failed", "{s:s, s:s, s:s, s:o}", "peer",
			          c->opts->peer, "reason", "unknown_key", "key", fp, "user",
			          client_text(user));
		}
		return SSH_AUTH_DENIED;
	}
	if (strcmp(user, "git") && !strchr(user, '-')) {
		if (signature_state == SSH_PUBLICKEY_STATE_NONE) {
			c->auth_failures++;
			report(c, "auth_failure unknown_user\n");
			event_log("info", "auth_failed", "{s:s, s:s, s:s, s:o}", "peer",
			          c->opts->peer, "reason", "unknown_user", "key", k->fingerprint,
			          "user", client_text(user));
		}
		return SSH_AUTH_DENIED;
	}
	if (signature_state == SSH_PUBLICKEY_STATE_VALID) {
		c->key = k;
		snprintf(c->user, sizeof(c->user), "%s", user);
		/* before the log line: whoever sees the line may count on gitd
		 * knowing this connection no longer holds a startup slot */
		report(c, "authenticated %ld\n", (long)getpid());
		event_log("info", "auth", "{s:s, s:s, s:o}", "peer", c->opts->peer, "key",
		          k->fingerprint, "user", client_text(c->user));
	}
	return SSH_AUTH_SUCCESS;
}

static void refuse(struct conn *c, const char *what, const char *detail)
{
	report(c, "auth_failure bad_request\n");
	event_log("info", "request_refused", "{s:s, s:s, s:o, s:s, s:o}", "peer", c->opts->peer,
	          "key", c->key ? c->key->fingerprint : "", "user", client_text(c->user), "request",
	          what, "detail", client_text(detail));
}

static int on_pty(ssh_session s, ssh_channel ch, const char *term, int w, int h, int pw, int ph,
                  void *userdata)
{
	refuse(userdata, "pty", term);
	return SSH_ERROR; /* denied: the client prints "PTY allocation request failed" */
}

static int on_shell(ssh_session s, ssh_channel ch, void *userdata)
{
	struct conn *c = userdata;

	if (c->has_request)
		return SSH_ERROR;
	refuse(c, "shell", "");
	c->has_request = true;
	c->refusal = "slipway: you are authenticated, but there is no shell access; "
	             "use git push and git fetch with this host";
	return SSH_OK;
}

static int on_subsystem(ssh_session s, ssh_channel ch, const char *subsystem, void *userdata)
{
	struct conn *c = userdata;

	if (c->has_request)
		return SSH_ERROR;
	refuse(c, "subsystem", subsystem);
	c->has_request = true;
	c->refusal = "slipway: subsystems are not available; use git push and git fetch";
	return SSH_OK;
}

static int on_exec(ssh_session s, ssh_channel ch, const char *command, void *userdata)
{
	struct conn *c = userdata;

	if (c->has_request)
		return SSH_ERROR;
	c->has_request = true;
	snprintf(c->command, sizeof(c->command), "%s", command);
	return SSH_OK;
}

static int on_env(ssh_session s, ssh_channel ch, const char *name, const char *value,
                  void *userdata)
{
	struct conn *c = userdata;

	if (strcmp(name, "GIT_PROTOCOL") || strlen(value) >= sizeof(c->protocol)) {
		/* OpenSSH clients send LANG and LC_* by default: not worth a line */
		event_log("debug", "request_refused", "{s:s, s:s, s:o}", "peer", c->opts->peer,
		          "request", "env", "detail", client_text(name));
		return SSH_ERROR;
	}
	snprintf(c->protocol, sizeof(c->protocol), "%s", value);
	return SSH_OK;
}

/* auth-agent-req@openssh.com (ssh -A) never reaches on_message: libssh
 * answers it itself, failure without this callback and success with it (the
 * callback returns nothing), and only to a client that asks for a reply;
 * OpenSSH's does not (clientloop.c sends it with want_reply 0). Either way
 * no agent is forwarded, as gitd never opens a channel towards the client;
 * the callback is here to log the request. */
static void on_auth_agent(ssh_session s, ssh_channel ch, void *userdata)
{
	refuse(userdata, "agent", "");
}

/* What libssh hands on because no callback of ours took it: port forwarding
 * (tcpip-forward global requests: ssh -R; direct-tcpip channel opens: ssh
 * -L, -D, -W), channel types a client has no business opening, and x11-req
 * (ssh -X, -Y: libssh would answer success after a channel_x11_req_function,
 * which returns nothing). Returning 1 leaves the answer to
 * ssh_message_reply_default: a failure for each of these, and for the rest
 * (other authentication methods, the service request) what it answered
 * before this callback existed. */
static int on_message(ssh_session session, ssh_message msg, void *userdata)
{
	struct conn *c = userdata;
	char detail[LOG_CLIENT_MAX + 16];
	int type = ssh_message_type(msg), subtype = ssh_message_subtype(msg);

	if (type == SSH_REQUEST_GLOBAL && (subtype == SSH_GLOBAL_REQUEST_TCPIP_FORWARD ||
	                                   subtype == SSH_GLOBAL_REQUEST_CANCEL_TCPIP_FORWARD)) {
		snprintf(detail, sizeof(detail), "%s:%d", ssh_message_global_request_address(msg),
		         ssh_message_global_request_port(msg));
		refuse(c,
		       subtype == SSH_GLOBAL_REQUEST_TCPIP_FORWARD ? "tcpip-forward"
		                                                   : "cancel-tcpip-forward",
		       detail);
	} else if (type == SSH_REQUEST_CHANNEL_OPEN && subtype == SSH_CHANNEL_DIRECT_TCPIP) {
		snprintf(detail, sizeof(detail), "%s:%d",
		         ssh_message_channel_request_open_destination(msg),
		         ssh_message_channel_request_open_destination_port(msg));
		refuse(c, "direct-tcpip", detail);
	} else if (type == SSH_REQUEST_CHANNEL_OPEN) {
		refuse(c, "channel",
		       subtype == SSH_CHANNEL_FORWARDED_TCPIP ? "forwarded-tcpip"
		       : subtype == SSH_CHANNEL_X11           ? "x11"
		       : subtype == SSH_CHANNEL_AUTH_AGENT    ? "auth-agent@openssh.com"
		                                              : "unknown");
	} else if (type == SSH_REQUEST_CHANNEL && subtype == SSH_CHANNEL_REQUEST_X11) {
		refuse(c, "x11", "");
	}
	return 1;
}

static ssh_channel on_channel_open(ssh_session session, void *userdata)
{
	struct conn *c = userdata;

	if (c->channel)
		refuse(c, "channel", "session"); /* one session per connection */
	if (!c->key || c->channel)
		return NULL;
	c->channel = ssh_channel_new(session);
	if (!c->channel)
		return NULL;
	memset(&c->channel_cb, 0, sizeof(c->channel_cb));
	c->channel_cb.userdata = c;
	c->channel_cb.channel_pty_request_function = on_pty;
	c->channel_cb.channel_shell_request_function = on_shell;
	c->channel_cb.channel_exec_request_function = on_exec;
	c->channel_cb.channel_env_request_function = on_env;
	c->channel_cb.channel_subsystem_request_function = on_subsystem;
	c->channel_cb.channel_auth_agent_req_function = on_auth_agent;
	/* x11-req has no callback: on_message refuses it */
	ssh_callbacks_init(&c->channel_cb);
	ssh_set_channel_callbacks(c->channel, &c->channel_cb);
	return c->channel;
}

/* A limit (metrics.h "closed" REASON) ends the connection: logged,
 * reported, and set as the error the git service fails with, which the
 * client gets on stderr. Returns -1. */
static int limit_hit(const struct conn *c, const char *reason, const char *msg)
{
	event_log("warn", "connection_closed", "{s:s, s:s, s:s, s:s}", "peer", c->opts->peer, "key",
	          c->key ? c->key->fingerprint : "", "reason", reason, "error", msg);
	report(c, "closed %s\n", reason);
	return err_set("%s", msg);
}

/* Returns -1 (limit_hit) when --max-session-time has passed at NOW. */
static int check_session_time(const struct conn *c, long long now)
{
	char msg[128];

	if (!c->opts->max_session_ms || now - c->opts->started_ms < c->opts->max_session_ms)
		return 0;
	snprintf(msg, sizeof(msg), "session time limit: connection open for %lld s",
	         (now - c->opts->started_ms) / 1000);
	return limit_hit(c, "max_session_time", msg);
}

/* Once a rate window of waiting is over: returns -1 (limit_hit) when the
 * client sent less than min_rate over it, else starts the next window. */
static int check_transfer_rate(struct conn *c)
{
	long long waited = c->wait_ms - c->window_start_ms;
	char msg[160];

	if (!c->opts->min_rate || waited < c->opts->rate_window_ms)
		return 0;
	if (c->window_bytes * 1000 >= c->opts->min_rate * (unsigned long long)waited) {
		c->window_start_ms = c->wait_ms;
		c->window_bytes = 0;
		return 0;
	}
	snprintf(msg, sizeof(msg),
	         "transfer too slow: %llu bytes in %lld s, under the minimum of %llu bytes/s",
	         c->window_bytes, waited / 1000, c->opts->min_rate);
	return limit_hit(c, "min_transfer_rate", msg);
}

/* pkt_io over the channel. Each wait is cut short at whichever comes first:
 * the idle timeout, the session deadline, the end of the rate window. */
static ssize_t conn_read(void *arg, void *buf, size_t len)
{
	struct conn *c = arg;
	const struct sshd_opts *o = c->opts;
	long long idle_ms = o->idle_timeout_s * 1000LL, start = clock_now_ms();

	if (len > 1u << 20)
		len = 1u << 20;
	for (;;) {
		long long now = clock_now_ms(), wait = start + idle_ms - now;
		int n;

		if (check_session_time(c, now) < 0)
			return -1;
		if (o->max_session_ms && o->started_ms + o->max_session_ms - now < wait)
			wait = o->started_ms + o->max_session_ms - now;
		if (o->min_rate && c->window_start_ms + o->rate_window_ms - c->wait_ms < wait)
			wait = c->window_start_ms + o->rate_window_ms - c->wait_ms;
		n = ssh_channel_read_timeout(c->channel, buf, (uint32_t)len, 0,
		                             wait > 0 ? (int)wait : 1);
		c->wait_ms += clock_now_ms() - now;
		if (n == SSH_ERROR)
			return err_set("ssh: %s", ssh_get_error(c->session));
		c->window_bytes += (unsigned)n;
		if (check_transfer_rate(c) < 0)
			return -1;
		if (n > 0 || ssh_channel_is_eof(c->channel) || !ssh_channel_is_open(c->channel))
			return n;
		if (clock_now_ms() - start >= idle_ms)
			return err_set("idle timeout: no data for %d s", o->idle_timeout_s);
	}
}

static int conn_write(void *arg, const void *buf, size_t len)
{
	struct conn *c = arg;
	const char *p = buf;

	while (len) {
		uint32_t chunk = len > 1u << 20 ? 1u << 20 : (uint32_t)len;
		int n;

		/* a clone's pack goes out as fast as the client takes it */
		if (c->is_upload && check_session_time(c, clock_now_ms()) < 0)
			return -1;
		n = ssh_channel_write(c->channel, p, chunk);

		if (n == SSH_ERROR || n <= 0)
			return err_set("ssh: %s", ssh_get_error(c->session));
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void tell_client(struct conn *c, const char *msg)
{
	char line[1200];
	int n = snprintf(line, sizeof(line), "%s\n", msg);

	if (n > 0)
		ssh_channel_write_stderr(c->channel, line, (uint32_t)strnlen(line, sizeof(line)));
}

/* Runs the git service the exec request named. Returns the exit status. */
static int run_service(struct conn *c)
{
	static struct pkt_io io;
	struct command cmd;
	const struct authz_remote *r;
	git_repository *repo = NULL;
	const char *degraded;
	char remote[512];
	long long t0 = clock_now_ms();
	int ret = 1, rc;

	if (command_parse(&cmd, c->command) < 0) {
		char msg[ERR_MAX + 16];

		refuse(c, "exec", c->command);
		snprintf(msg, sizeof(msg), "slipway: %s", err_msg());
		tell_client(c, msg);
		return 1;
	}
	r = authz_resolve(c->opts->authz, c->key, c->user, &cmd);
	if (!r) {
		report(c, "auth_failure access_denied\n");
		event_log("info", "access_denied", "{s:s, s:s, s:o, s:o}", "peer", c->opts->peer,
		          "key", c->key->fingerprint, "user", client_text(c->user), "command",
		          client_text(c->command));
		tell_client(c, "slipway: repository not found or access denied");
		return 1;
	}
	snprintf(remote, sizeof(remote), "%s/%s", r->ns, r->name);
	if (sandbox_prepare() < 0)
		goto sandbox_failed;
	if (repo_open(&repo, c->opts->data_dir, r->ns, r->name) < 0) {
		event_log("error", "repo_failed", "{s:s, s:s}", "remote", remote, "error",
		          err_msg());
		tell_client(c, "slipway: the repository cannot be opened; see the gitd log");
		return 1;
	}
	/* from here on the process reaches its own repository only, before
	 * the first byte of the service's data is parsed */
	if (sandbox_enter(git_repository_path(repo), &degraded) < 0)
		goto sandbox_failed;
	if (degraded)
		event_log("warn", "sandbox_degraded", "{s:s, s:s, s:s}", "remote", remote, "peer",
		          c->opts->peer, "reason", degraded);
	pkt_io_init(&io, conn_read, conn_write, c);
	if (cmd.service == COMMAND_RECEIVE_PACK) {
		struct receive_opts o = {0};
		struct receive_stats st = {0};
		struct pipesrv_client pc;
		char path[REPO_PATH_MAX];

		o.deny_non_fast_forwards = r->deny_non_fast_forwards;
		o.allow_delete_current_branch = r->allow_delete_current_branch;
		o.max_pack_bytes = c->opts->max_pack_bytes;
		o.max_object_bytes = c->opts->max_object_bytes;
		o.max_ref_updates = c->opts->max_ref_updates;
		o.agent = c->opts->agent;
		o.reflog_name = c->key->comment[0] ? c->key->comment : c->user;
		o.reflog_email = c->key->fingerprint;
		pipesrv_client_init(&pc);
		if (c->opts->pipeline_socket &&
		    repo_path(path, sizeof(path), c->opts->data_dir, r->ns, r->name) == 0) {
			pc.socket_path = c->opts->pipeline_socket;
			pc.ns = r->ns;
			pc.remote = r->name;
			pc.is_gitkube = r->is_gitkube;
			pc.repo_path = path;
			pc.fingerprint = c->key->fingerprint;
			pc.comment = c->key->comment;
			o.pre_receive = pipesrv_pre_receive;
			o.pre_receive_arg = &pc;
			o.post_receive = pipesrv_post_receive;
			o.post_receive_arg = &pc;
		}
		rc = receive_pack_serve(&io, repo, &o, &st);
		pipesrv_client_release(&pc);
		report(c, "push %s %llu %lld\n", rc < 0 ? "error" : "ok",
		       io.bytes_in + io.bytes_out, clock_now_ms() - t0);
		event_log(rc < 0 ? "warn" : "info", "push",
		          "{s:s, s:s, s:s, s:I, s:I, s:i, s:i, s:i, s:I, s:o*}", "remote", remote,
		          "key", c->key->fingerprint, "peer", c->opts->peer, "bytes",
		          (json_int_t)(io.bytes_in + io.bytes_out), "duration_ms",
		          (json_int_t)(clock_now_ms() - t0), "commands", (int)st.ncommands,
		          "updated", (int)st.nupdated, "rejected", (int)st.nrejected, "objects",
		          (json_int_t)st.pack_objects, "error",
		          rc < 0 ? client_text(err_msg()) : NULL);
	} else {
		struct upload_opts o = {c->opts->agent, c->opts->max_object_bytes};
		struct upload_stats st = {0};

		c->is_upload = true;
		rc = upload_pack_serve(&io, repo, upload_pack_protocol_version(c->protocol), &o,
		                       &st);
		report(c, "fetch %s %llu %lld\n", rc < 0 ? "error" : "ok",
		       io.bytes_in + io.bytes_out, clock_now_ms() - t0);
		event_log(rc < 0 ? "warn" : "info", "fetch",
		          "{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:o*}", "remote", remote, "key",
		          c->key->fingerprint, "peer", c->opts->peer, "bytes",
		          (json_int_t)(io.bytes_in + io.bytes_out), "duration_ms",
		          (json_int_t)(clock_now_ms() - t0), "objects", (json_int_t)st.pack_objects,
		          "pack_reused", (json_int_t)st.pack_reused, "closures_recorded",
		          (json_int_t)st.closures_recorded, "error",
		          rc < 0 ? client_text(err_msg()) : NULL);
	}
	if (rc < 0) {
		char msg[ERR_MAX + 32];

		snprintf(msg, sizeof(msg), "slipway: error: %s", err_msg());
		tell_client(c, msg);
	}
	ret = rc < 0 ? 1 : 0;
	/* freeing unmaps every pack: the client need not wait for it */
	c->repo = repo;
	return ret;
sandbox_failed:
	event_log("error", "sandbox_failed", "{s:s, s:s, s:s}", "remote", remote, "peer",
	          c->opts->peer, "error", err_msg());
	tell_client(c, "slipway: the connection cannot be sandboxed; see the gitd log");
	c->repo = repo;
	return 1;
}

/* ssh_handle_key_exchange, stepped without blocking so that each time
 * libssh has read, any ACK the kernel is delaying goes out at once
 * (TCP_QUICKACK). Without it the client's ECDH_INIT waits behind its own
 * Nagle timer for our delayed ACK of its KEXINIT: 40 ms per connection. */
static int key_exchange(ssh_session session)
{
	int fd = ssh_get_fd(session), one = 1, rc;

	ssh_set_blocking(session, 0);
	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};

		rc = ssh_handle_key_exchange(session);
		setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
		if (rc != SSH_AGAIN)
			break;
		if (poll(&p, 1, -1) < 0 && errno != EINTR) {
			rc = SSH_ERROR;
			break;
		}
	}
	ssh_set_blocking(session, 1);
	return rc;
}

/* Disconnects SESSION with MESSAGE so that the client reads it: a client
 * that sent more before the disconnect reached it would otherwise get a
 * TCP reset (unread data at close(2)), which discards the message. The
 * socket is kept open through a duplicate, half-closed after the message,
 * and read until the client closes its side (at most 2 s). */
static void disconnect_lingering(ssh_session session, const char *message)
{
	int fd = fcntl(ssh_get_fd(session), F_DUPFD_CLOEXEC, 0);
	long long deadline = clock_now_ms() + 2000;
	char sink[4096];

	ssh_session_set_disconnect_message(session, message);
	/* after a write libssh queues the next one until its poll loop sees
	 * POLLOUT, and ssh_disconnect closes without flushing; the session is
	 * blocking, so the message is written whole */
	ssh_set_fd_towrite(session);
	ssh_disconnect(session);
	if (fd < 0)
		return;
	shutdown(fd, SHUT_WR);
	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		long long left = deadline - clock_now_ms();

		if (left <= 0 || poll(&p, 1, (int)left) <= 0 || read(fd, sink, sizeof(sink)) <= 0)
			break;
	}
	close(fd);
}

int sshd_serve(ssh_bind bind, int fd, const struct sshd_opts *opts)
{
	struct ssh_server_callbacks_struct server_cb;
	struct conn c;
	ssh_event ev = NULL;
	int status = 1;
	long timeout_s = opts->idle_timeout_s;
	long long authenticated_ms = 0;

	memset(&c, 0, sizeof(c));
	c.opts = opts;
	c.session = ssh_new();
	if (!c.session) {
		close(fd);
		event_log("error", "connection_failed", "{s:s, s:s}", "peer", opts->peer, "error",
		          "out of memory");
		return 1;
	}
	if (ssh_bind_accept_fd(bind, c.session, fd) != SSH_OK) {
		close(fd);
		event_log("error", "connection_failed", "{s:s, s:s}", "peer", opts->peer, "error",
		          ssh_get_error(bind));
		goto out;
	}
	ssh_options_set(c.session, SSH_OPTIONS_TIMEOUT, &timeout_s);
	memset(&server_cb, 0, sizeof(server_cb));
	server_cb.userdata = &c;
	server_cb.auth_pubkey_function = on_auth_pubkey;
	server_cb.channel_open_request_session_function = on_channel_open;
	ssh_callbacks_init(&server_cb);
	ssh_set_server_callbacks(c.session, &server_cb);
	ssh_set_message_callback(c.session, on_message, &c);
	ssh_set_auth_methods(c.session, SSH_AUTH_METHOD_PUBLICKEY);
	if (key_exchange(c.session) != SSH_OK) {
		event_log("info", "connection_failed", "{s:s, s:s}", "peer", opts->peer, "error",
		          ssh_get_error(c.session));
		goto out;
	}
	ev = ssh_event_new();
	if (!ev || ssh_event_add_session(ev, c.session) != SSH_OK)
		goto out;
	/* authentication, bounded by the login grace alarm; then channel open
	 * and the one request, bounded by the idle timeout */
	for (;;) {
		long long now;

		if (ssh_event_dopoll(ev, 1000) == SSH_ERROR) {
			if (!c.key)
				event_log("info", "connection_closed", "{s:s, s:s, s:i}", "peer",
				          opts->peer, "stage", "authentication", "auth_failures",
				          (int)c.auth_failures);
			goto out;
		}
		now = clock_now_ms();
		if (!c.key && opts->max_auth_tries && c.auth_failures >= opts->max_auth_tries) {
			limit_hit(&c, "max_auth_tries", "too many authentication failures");
			disconnect_lingering(c.session, "too many authentication failures");
			goto out;
		}
		if (c.key && !authenticated_ms) {
			alarm(0);
			authenticated_ms = now;
		}
		if (c.has_request)
			break;
		if (c.key && now - authenticated_ms >= timeout_s * 1000) {
			event_log("info", "connection_closed", "{s:s, s:s, s:s}", "peer",
			          opts->peer, "stage", "request", "reason", "idle_timeout");
			goto out;
		}
		if (check_session_time(&c, now) < 0)
			goto out;
	}
	if (c.refusal) {
		tell_client(&c, c.refusal);
		status = 1;
	} else {
		status = run_service(&c);
	}
	ssh_channel_request_send_exit_status(c.channel, status);
	ssh_channel_send_eof(c.channel);
	ssh_channel_close(c.channel);
	/* the client answers the close and then disconnects; leaving first
	 * makes it report "closed by remote host" (bounded: a client that
	 * never leaves gets 5 s) */
	for (int i = 0; i < 50 && ssh_is_connected(c.session); i++)
		if (ssh_event_dopoll(ev, 100) == SSH_ERROR)
			break;
out:
	if (ev) {
		ssh_event_remove_session(ev, c.session);
		ssh_event_free(ev);
	}
	if (c.channel)
		ssh_channel_free(c.channel);
	ssh_disconnect(c.session);
	ssh_free(c.session);
	git_repository_free(c.repo);
	return status;
}

void sshd_prepare(void)
{
	/* what libssh 0.10 asks OpenSSL 3 for in a key exchange, authentication
	 * and the ciphers an OpenSSH client offers first */
	static const char *const ciphers[] = {"ChaCha20",    "AES-128-CTR", "AES-256-CTR",
	                                      "AES-128-GCM", "AES-256-GCM", NULL};
	static const char *const digests[] = {"SHA256", "SHA512", "SHA1", NULL};
	static const char *const keytypes[] = {"X25519", "ED25519", "RSA", "EC", NULL};
	static const char *const signatures[] = {"ED25519", "RSA", "ECDSA", NULL};
	static const char *const exchanges[] = {"X25519", "ECDH", "DH", NULL};
	static const char *const macs[] = {"POLY1305", "HMAC", NULL};
	static const char *const kdfs[] = {OSSL_KDF_NAME_SSHKDF, NULL};
	unsigned char byte;

	RAND_bytes(&byte, 1);
	RAND_priv_bytes(&byte, 1);
	for (size_t i = 0; ciphers[i]; i++)
		EVP_CIPHER_free(EVP_CIPHER_fetch(NULL, ciphers[i], NULL));
	for (size_t i = 0; digests[i]; i++)
		EVP_MD_free(EVP_MD_fetch(NULL, digests[i], NULL));
	for (size_t i = 0; keytypes[i]; i++)
		EVP_KEYMGMT_free(EVP_KEYMGMT_fetch(NULL, keytypes[i], NULL));
	for (size_t i = 0; signatures[i]; i++)
		EVP_SIGNATURE_free(EVP_SIGNATURE_fetch(NULL, signatures[i], NULL));
	for (size_t i = 0; exchanges[i]; i++)
		EVP_KEYEXCH_free(EVP_KEYEXCH_fetch(NULL, exchanges[i], NULL));
	for (size_t i = 0; macs[i]; i++)
		EVP_MAC_free(EVP_MAC_fetch(NULL, macs[i], NULL));
	for (size_t i = 0; kdfs[i]; i++)
		EVP_KDF_free(EVP_KDF_fetch(NULL, kdfs[i], NULL));
}
