/* spawn: fork and exec with an explicit environment, the child in its own
 * process group, its output read line by line until it exits, a deadline
 * that kills the group (see spawn.h). */
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spawn.h"
#include "clock.h"
#include "err.h"
#include "banned.h"

/* What the child sends back over the close-on-exec pipe when it cannot exec. */
struct child_error {
	int stage; /* enum child_stage */
	int err;   /* errno */
};

enum child_stage { STAGE_STDIN, STAGE_DUP, STAGE_CHDIR, STAGE_EXEC };

static const char *const stage_names[] = {"cannot open /dev/null", "cannot set up descriptors",
                                          "cannot change to the working directory",
                                          "cannot execute"};

/* Finds NAME in the PATH of ENV: execvpe() would search our own PATH. */
static int resolve_program(char **out, const char *name, const char *const *env)
{
	const char *path = "/usr/bin:/bin";
	char *cand = NULL;

	*out = NULL;
	if (!name || !*name)
		return err_set("no program to run");
	if (strchr(name, '/')) {
		*out = strdup(name);
		return *out ? 0 : err_set("out of memory");
	}
	for (size_t i = 0; env && env[i]; i++)
		if (!strncmp(env[i], "PATH=", 5))
			path = env[i] + 5;
	while (*path) {
		size_t len = strcspn(path, ":");

		if (asprintf(&cand, "%.*s/%s", (int)len, len ? path : ".", name) < 0)
			return err_set("out of memory");
		if (access(cand, X_OK) == 0) {
			*out = cand;
			return 0;
		}
		free(cand);
		cand = NULL;
		path += len;
		if (*path == ':')
			path++;
	}
	return err_set("cannot run \"%s\": not found in PATH", name);
}

/* In the child, between fork and exec: only async-signal-safe calls.
 * PARENT is the pid of the process that forked. */
static void child(const struct spawn_opts *o, const char *path, int out_fd, int err_fd,
                  pid_t parent)
{
	static const char *const empty_env[] = {NULL};
	struct child_error e = {0, 0};
	struct sigaction sa;
	sigset_t none;
	int in_fd = o->in_fd;

	setpgid(0, 0);
	/* the parent may have died between fork and prctl: then the signal
	 * would never come, and we are already orphaned (getppid() changed) */
	if (o->die_with_parent && (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent))
		_exit(127);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (int s = 1; s < NSIG; s++)
		sigaction(s, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	if (in_fd < 0 && (in_fd = open("/dev/null", O_RDONLY)) < 0) {
		e.stage = STAGE_STDIN;
		goto fail;
	}
	if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0) {
		e.stage = STAGE_DUP;
		goto fail;
	}
	/* every other descriptor goes at exec; err_fd already has O_CLOEXEC */
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		for (int fd = 3; fd < 4096; fd++)
			fcntl(fd, F_SETFD, FD_CLOEXEC);
	if (o->cwd && chdir(o->cwd) < 0) {
		e.stage = STAGE_CHDIR;
		goto fail;
	}
	execve(path, (char *const *)o->argv, (char *const *)(o->env ? o->env : empty_env));
	e.stage = STAGE_EXEC;
fail:
	e.err = errno;
	if (write(err_fd, &e, sizeof(e)) < 0)
		_exit(126);
	_exit(127);
}

/* Hands each complete line of CHUNK to on_line; LINE keeps a partial one. */
static void take_output(const struct spawn_opts *o, char *line, size_t *len, const char *chunk,
                        size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = chunk[i];

		if (c == '\n' || *len == SPAWN_LINE_MAX) {
			if (*len && line[*len - 1] == '\r')
				(*len)--;
			line[*len] = '\0';
			if (o->on_line)
				o->on_line(o->arg, line);
			*len = 0;
			if (c == '\n')
				continue;
		}
		line[(*len)++] = c ? c : '?';
	}
}

/* Reads FD once; returns false at end of file or on a read error. */
static bool read_output(const struct spawn_opts *o, int fd, char *line, size_t *len)
{
	char chunk[4096];
	ssize_t n = read(fd, chunk, sizeof(chunk));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (n <= 0)
		return false;
	take_output(o, line, len, chunk, (size_t)n);
	return true;
}

/* Follows child PID (leader of its own group) until it exits, reading its
 * output from FD (-1: none) and enforcing the deadline and cancel flag. The
 * child is left a zombie, so its group id cannot be reused meanwhile. */
static void follow(struct spawn_result *out, const struct spawn_opts *o, pid_t pid, int *fd,
                   char *line, size_t *len)
{
	long start = clock_now_ms(), next_tick = start + SPAWN_TICK_MS, kill_at = 0;
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	bool signalled = false;

	for (;;) {
		struct pollfd p[2];
		nfds_t np = 0;
		long now = clock_now_ms(), wait = next_tick - now;
		siginfo_t si;

		if (*fd >= 0)
			p[np++] = (struct pollfd){.fd = *fd, .events = POLLIN};
		if (pidfd >= 0)
			p[np++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
		else if (*fd < 0 && wait > 20)
			wait = 20; /* no pidfd (Linux < 5.3): poll for the exit */
		if (poll(p, np, (int)(wait < 0 ? 0 : wait)) > 0 && *fd >= 0 &&
		    (p[0].revents & (POLLIN | POLLHUP | POLLERR)) &&
		    !read_output(o, *fd, line, len)) {
			close(*fd);
			*fd = -1;
		}
		now = clock_now_ms();
		if (now >= next_tick) {
			if (o->on_tick)
				o->on_tick(o->arg);
			next_tick = now + SPAWN_TICK_MS;
		}
		if (!signalled && o->timeout_ms > 0 && now - start >= o->timeout_ms)
			out->timed_out = signalled = true;
		if (!signalled && o->cancel && *o->cancel)
			out->cancelled = signalled = true;
		if (signalled && !kill_at) {
			kill(-pid, SIGTERM);
			kill_at = now + SPAWN_KILL_GRACE_MS;
		} else if (kill_at && now >= kill_at) {
			kill(-pid, SIGKILL);
		}
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
		    si.si_pid == pid)
			break;
	}
	if (pidfd >= 0)
		close(pidfd);
}

int spawn_run(struct spawn_result *out, const struct spawn_opts *o)
{
	int outp[2] = {-1, -1}, errp[2] = {-1, -1}, ret = -1, fd;
	char line[SPAWN_LINE_MAX + 1];
	struct child_error e;
	size_t len = 0;
	char *path = NULL;
	ssize_t n;
	pid_t pid, parent = getpid();

	memset(out, 0, sizeof(*out));
	if (resolve_program(&path, o->argv[0], o->env) < 0)
		goto out;
	if (pipe2(errp, O_CLOEXEC) < 0 || (o->out_fd < 0 && pipe2(outp, O_CLOEXEC) < 0)) {
		err_set("pipe: %s", strerror(errno));
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		err_set("fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0)
		child(o, path, o->out_fd < 0 ? outp[1] : o->out_fd, errp[1], parent);
	setpgid(pid, pid); /* also here, so the group exists whoever runs first */
	close(errp[1]);
	errp[1] = -1;
	if (outp[1] >= 0) {
		close(outp[1]);
		outp[1] = -1;
	}
	do
		n = read(errp[0], &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(e)) {
		while (waitpid(pid, &out->status, 0) < 0 && errno == EINTR)
			;
		out->error = e.err;
		err_set("%s \"%s\": %s", stage_names[e.stage], o->argv[0], strerror(e.err));
		goto out;
	}

	fd = outp[0];
	outp[0] = -1;
	follow(out, o, pid, &fd, line, &len);
	/* the leader has exited: nothing it started may outlive it */
	kill(-pid, SIGKILL);
	if (fd >= 0) {
		long until = clock_now_ms() + 1000;
		struct pollfd p = {.fd = fd, .events = POLLIN};

		while (clock_now_ms() < until && poll(&p, 1, 100) >= 0)
			if ((p.revents & (POLLIN | POLLHUP | POLLERR)) &&
			    !read_output(o, fd, line, &len))
				break;
		close(fd);
	}
	if (len) {
		line[len] = '\0';
		if (o->on_line)
			o->on_line(o->arg, line);
	}
	while (waitpid(pid, &out->status, 0) < 0 && errno == EINTR)
		;
	ret = 0;
out:
	for (int i = 0; i < 2; i++) {
		if (outp[i] >= 0)
			close(outp[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	free(path);
	return ret;
}

const char *spawn_describe(char *buf, size_t size, int status)
{
	if (WIFEXITED(status))
		snprintf(buf, size, "exit status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, size, "signal %d", WTERMSIG(status));
	else
		snprintf(buf, size, "wait status %d", status);
	return buf;
}
