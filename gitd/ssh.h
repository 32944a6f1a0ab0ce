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
 * request, and the git service. The login grace time is the caller's
 * (gitd arms alarm(2) before calling). Returns the process exit status for
 * the connection: 0 when a service completed, 1 otherwise (all details are
 * in the event log). */
int sshd_serve(ssh_bind bind, int fd, const struct sshd_opts *opts);

#endif
