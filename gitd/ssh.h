/* ssh: one SSH connection of gitd, served with libssh's server API in its
 * own process (see docs/architecture.md).
 *
 * Only publickey authentication is offered; a key must be in the authz
 * table (an unknown key is refused at authentication, so a client holding
 * several keys goes on to its next one). The SSH user is "git" or gitkube's
 * "NAMESPACE-REMOTE". One session channel is served; on it only "exec" of
 * git-receive-pack or git-upload-pack (command.h) and "env GIT_PROTOCOL"
 * are accepted. A shell or subsystem request gets a one-line message on the
 * channel's stderr and exit status 1; pty, x11, agent forwarding, port
 * forwarding and other channel types are refused by the protocol. Each
 * refusal is logged. */
#ifndef SLIP_GITD_SSH_H
#define SLIP_GITD_SSH_H

#include <libssh/libssh.h>
#include <libssh/server.h>

#include "authz.h"

struct sshd_opts {
	const struct authz *authz;           /* who may use which Remote (borrowed) */
	const char *data_dir;                /* repositories, repo.h layout */
	int idle_timeout_s;                  /* no bytes either way for this long ends it */
	unsigned max_auth_tries;             /* failed attempts before disconnect; 0: no limit */
	long long started_ms;                /* clock_now_ms() at accept */
	long long max_session_ms;            /* from started_ms to the end; 0: no limit */
	unsigned long long min_rate;         /* bytes/s the client sends while gitd waits for
	                                        it, averaged over rate_window_ms; 0: none */
	long long rate_window_ms;            /* of time spent waiting for the client */
	unsigned long long max_pack_bytes;   /* 0: no limit */
	unsigned long long max_object_bytes; /* largest object a push may send or
	                                        a fetch inflate; 0: no limit */
	size_t max_ref_updates;              /* 0: no limit */
	const char *agent;                   /* protocol "agent=" value */
	const char *peer;                    /* "ADDR:PORT" of the client, for logs */
	int report_fd;                       /* metrics.h report lines go here; -1: none */
	const char *pipeline_socket;         /* the pipeline server (pipesrv.h); NULL:
	                                        pushes run no pipelines */
};

/* Serves the connection on FD (a connected TCP socket; closed before
 * return) with BIND's host keys: key exchange, authentication, the one
 * request, and the git service. The login grace time is the caller's: gitd
 * arms alarm(2) before calling, and sshd_serve cancels it once the client
 * has authenticated, then writes "authenticated PID" (metrics.h) to
 * report_fd. From then on the request must arrive within idle_timeout_s.
 *
 * Limits, each logged as "connection_closed" (warn) with its "reason" and
 * reported as "closed REASON" (metrics.h):
 * - max_auth_tries failed publickey attempts (an unknown key offered counts,
 *   as in OpenSSH's MaxAuthTries): disconnect with "too many authentication
 *   failures";
 * - max_session_ms after started_ms, checked whenever gitd waits for the
 *   client (reads, and upload-pack's writes), not while a push waits for
 *   its pipeline;
 * - min_rate: in each rate_window_ms of time spent waiting for the client's
 *   bytes, fewer than min_rate * window bytes arrived.
 * The git service then fails with an error the client sees on stderr.
 * Returns the process exit status for the connection: 0 when a service
 * completed, 1 otherwise (all details are in the event log). */
int sshd_serve(ssh_bind bind, int fd, const struct sshd_opts *opts);

/* Sets up in the calling process what OpenSSL otherwise builds in each
 * connection process on its first use: its random generators (RAND_bytes,
 * RAND_priv_bytes), and the implementations of the algorithms an SSH key
 * exchange with an OpenSSH client uses, which OpenSSL 3 looks up by name and
 * then caches per process. gitd calls it once in the listener, before the
 * first fork, so every connection inherits both. The generators stay safe
 * to inherit: OpenSSL reseeds them in a child after fork (RAND(7)). Fails
 * soft: an algorithm not prepared is looked up in the connection as before. */
void sshd_prepare(void);

#endif
