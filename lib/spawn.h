/* spawn: runs a program from an argv array with a given environment, working
 * directory and descriptors, never through a shell (after git's
 * run-command.h). The child leads its own process group, so a timeout or a
 * cancel kills everything it started; its output can be delivered line by
 * line. Used by the builder for buildah and by gitd for hook scripts. */
#ifndef SLIP_SPAWN_H
#define SLIP_SPAWN_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

/* Output lines longer than this are delivered in pieces of this size. */
#define SPAWN_LINE_MAX 8192
/* How long the group has between SIGTERM and SIGKILL on a timeout or cancel. */
#define SPAWN_KILL_GRACE_MS 3000
/* Period of on_tick while the child runs. */
#define SPAWN_TICK_MS 250

struct spawn_opts {
	const char *const *argv; /* NULL-terminated; argv[0] is a path, or a
	                            name looked up in the PATH of env */
	const char *const *env;  /* the child's whole environment, NULL-terminated;
	                            NULL: an empty one */
	const char *cwd;         /* the child's working directory; NULL: ours */
	int in_fd;               /* the child's stdin; -1: /dev/null */
	int out_fd;              /* the child's stdout and stderr; -1: captured
	                            and handed to on_line */
	/* Each captured line, without its newline, as it arrives. May be NULL
	 * (captured output is then dropped). */
	void (*on_line)(void *arg, const char *line);
	/* Called about every SPAWN_TICK_MS while the child runs. May be NULL. */
	void (*on_tick)(void *arg);
	void *arg;                           /* passed to on_line and on_tick */
	long timeout_ms;                     /* 0: none; else the group gets SIGTERM, and
	                                        SIGKILL SPAWN_KILL_GRACE_MS later */
	const volatile sig_atomic_t *cancel; /* non-zero: stop as on a timeout;
	                                        may be NULL */
	/* The child gets SIGKILL when its parent dies, set with
	 * prctl(PR_SET_PDEATHSIG) before exec; a child whose parent died before
	 * that took effect exits at once (status 127). Linux sends the signal
	 * when the *thread* that called spawn_run exits, so call it from a
	 * thread that outlives the child (spawn_run waits for it anyway). The
	 * child leader only: what it starts and puts in another process group
	 * or session is not covered. */
	bool die_with_parent;
};

struct spawn_result {
	int status;     /* the wait status (WIFEXITED, WEXITSTATUS, ...) */
	bool timed_out; /* the timeout passed and the group was killed */
	bool cancelled; /* *cancel became non-zero and the group was killed */
	int error;      /* when the child could not exec (or set up for it): its
	                   errno (ENOENT, EACCES, ETXTBSY, ...); else 0 */
};

/* Runs O->argv and waits for it. The child gets exactly O->env, O->cwd, and
 * on descriptors 0, 1 and 2 what O says; every other descriptor is closed
 * in it, and signal dispositions and the mask are reset. When the child
 * exits (or is killed), whatever is left in its process group is killed
 * with SIGKILL. IN_FD and OUT_FD are not closed. OUT is always filled.
 * Returns 0 once the child has been waited for, whatever its status, or -1
 * with err_msg() when it could not be started (program not found or not
 * executable, bad cwd: the child's exec error is passed back). */
int spawn_run(struct spawn_result *out, const struct spawn_opts *o);

/* Describes wait status STATUS as "exit status N" or "signal N" into BUF of
 * SIZE bytes; returns BUF. */
const char *spawn_describe(char *buf, size_t size, int status);

#endif
