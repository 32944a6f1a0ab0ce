/* command: the one thing an SSH client may ask gitd to run.
 *
 * git runs `ssh HOST "git-receive-pack 'PATH'"` (or git-upload-pack), with
 * PATH single-quoted as by git's quote.c sq_quote (a ' inside becomes '\'').
 * Only those two services are allowed (the allowlist of git's shell.c), the
 * argument is dequoted, and an argument starting with '-' is refused.
 * PATH names a Remote in one of three forms (DESIGN.md, "Git URLs"):
 * "/NAMESPACE/REMOTE.git" (".git" and the leading "/" optional), or gitkube's
 * "~/git/NAMESPACE-REMOTE" (also "/~/git/..."), which needs the Remotes to
 * split NAMESPACE-REMOTE. */
#ifndef SLIP_GITD_COMMAND_H
#define SLIP_GITD_COMMAND_H

#include <stddef.h>

enum command_service { COMMAND_RECEIVE_PACK = 1, COMMAND_UPLOAD_PACK = 2 };

/* Longest command line accepted, in bytes. */
#define COMMAND_MAX 1024

struct command {
	enum command_service service;
	char ns[254];     /* NAMESPACE, or "" for the gitkube form */
	char remote[254]; /* REMOTE, or "" for the gitkube form */
	char joined[508]; /* gitkube form: "NAMESPACE-REMOTE", else "" */
};

/* Parses LINE (the SSH exec request, NUL-terminated) into OUT. Returns 0, or
 * -1 with err_msg() set to a message fit for the client: "command not allowed"
 * for anything but the two services, "invalid repository path" for a path of
 * none of the forms above (including any ".." or "/" inside a name). */
int command_parse(struct command *out, const char *line);

/* The service's program name, "git-receive-pack" or "git-upload-pack". */
const char *command_service_name(enum command_service service);

#endif
