/* Unit tests of the connection sandbox (gitd/sandbox.h): a forked child
 * sandboxes itself to a scratch "repository" and tries what a git server
 * does there (files, links across directories as a quarantine moves in,
 * Unix sockets, threads) and what it must not do elsewhere. The child
 * prints its own TAP lines and reports their count through a pipe. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/landlock.h>

#include "tap.h"
#include "err.h"
#include "sandbox.h"

static char top[64], repo[128], other[128];

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* open(PATH) as an errno: 0 when it opens */
static int open_errno(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC);

	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

static void *thread_main(void *arg)
{
	*(int *)arg = 42;
	return NULL;
}

static void child(pid_t parent)
{
	char path[256], to[256];
	const char *degraded = NULL;
	pthread_t th;
	int sv[2], fd, v = 0;
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);

	ok(sandbox_prepare() == 0, "sandbox_prepare clears libgit2's configuration search paths");
	if (!ok(sandbox_enter(repo, &degraded) == 0, "sandbox_enter succeeds"))
		printf("#   %s\n", err_msg());
	ok(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1, "no_new_privs is set");
	if (abi >= 2)
		ok(degraded == NULL, "the kernel has Landlock ABI %ld: not degraded", abi);
	else
		ok(degraded != NULL, "without Landlock ABI 2 the sandbox says why it degrades");

	snprintf(path, sizeof(path), "%s/HEAD", repo);
	is_int(open_errno(path, O_RDONLY), 0, "a file of the repository opens for reading");
	snprintf(path, sizeof(path), "%s/objects/incoming-1", repo);
	ok(mkdir(path, 0700) == 0, "a quarantine directory is made in the repository");
	snprintf(path, sizeof(path), "%s/objects/incoming-1/pack.pack", repo);
	ok(write_file(path, "PACK") == 0, "a file is written in the quarantine");
	snprintf(to, sizeof(to), "%s/objects/pack/pack.pack", repo);
	ok(link(path, to) == 0, "a quarantined file is linked into objects/pack");
	snprintf(to, sizeof(to), "%s/objects/pack/pack.idx", repo);
	ok(rename(path, to) == 0, "and renamed across directories of the repository");
	ok(unlink(to) == 0, "a file of the repository is removed");
	snprintf(path, sizeof(path), "%s/objects/incoming-1", repo);
	ok(rmdir(path) == 0, "the quarantine directory is removed");

	if (degraded == NULL) {
		snprintf(path, sizeof(path), "%s/token", other);
		is_int(open_errno(path, O_RDONLY), EACCES, "a file outside the repository: EACCES");
		is_int(open_errno(top, O_RDONLY | O_DIRECTORY), EACCES,
		       "the repository's parent directory: EACCES");
		snprintf(path, sizeof(path), "%s/new", other);
		is_int(open_errno(path, O_WRONLY | O_CREAT), EACCES,
		       "a file cannot be made outside the repository");
		is_int(open_errno("/etc/passwd", O_RDONLY), EACCES, "/etc/passwd: EACCES");
		is_int(open_errno("/dev/null", O_RDWR), 0,
		       "/dev/null opens for reading and writing");
		if (abi >= 6)
			ok(kill(parent, 0) < 0 && errno == EPERM,
			   "no signal reaches a process outside the sandbox (ABI 6)");
	}

	ok(socket(AF_INET, SOCK_STREAM, 0) < 0 && errno == EPERM, "socket(AF_INET): EPERM");
	ok(socket(AF_INET6, SOCK_DGRAM, 0) < 0 && errno == EPERM, "socket(AF_INET6): EPERM");
	ok(socket(AF_NETLINK, SOCK_RAW, 0) < 0 && errno == EPERM, "socket(AF_NETLINK): EPERM");
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ok(fd >= 0, "socket(AF_UNIX) works (the pipeline socket)");
	if (fd >= 0)
		close(fd);
	ok(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0,
	   "socketpair(AF_UNIX) works");
	ok(ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0 && errno == EPERM, "ptrace: EPERM");
	ok(unshare(CLONE_NEWUSER) < 0 && errno == EPERM, "unshare(CLONE_NEWUSER): EPERM");
	ok(syscall(SYS_clone3, NULL, 0) < 0 && errno == ENOSYS, "clone3: ENOSYS");
	ok(pthread_create(&th, NULL, thread_main, &v) == 0 && pthread_join(th, NULL) == 0 &&
	       v == 42,
	   "a thread starts (clone without namespace flags)");
	ok(execl("/bin/true", "true", (char *)NULL) < 0 && errno == EPERM, "execve: EPERM");
}

/* The fetch process's sandbox: the network and the system's files for name
 * resolution, and still nothing else of the file system. */
static void fetch_child(void)
{
	const char *degraded = NULL;
	char path[256];
	int fd;

	if (!ok(sandbox_enter_fetch(repo, &degraded) == 0, "sandbox_enter_fetch succeeds"))
		printf("#   %s\n", err_msg());
	snprintf(path, sizeof(path), "%s/HEAD", repo);
	is_int(open_errno(path, O_RDONLY), 0, "fetch: the repository is readable");
	if (degraded == NULL) {
		snprintf(path, sizeof(path), "%s/token", other);
		is_int(open_errno(path, O_RDONLY), EACCES, "fetch: a file outside it: EACCES");
		is_int(open_errno("/etc/hosts", O_RDONLY), 0, "fetch: /etc/hosts is readable");
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ok(fd >= 0, "fetch: socket(AF_INET) works");
	if (fd >= 0)
		close(fd);
	fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ok(fd >= 0 || errno == EAFNOSUPPORT, "fetch: socket(AF_INET6) is not refused");
	if (fd >= 0)
		close(fd);
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0);
	ok(fd >= 0, "fetch: socket(AF_NETLINK) works (getaddrinfo)");
	if (fd >= 0)
		close(fd);
	ok(socket(AF_PACKET, SOCK_RAW, 0) < 0 && errno == EPERM, "fetch: socket(AF_PACKET): EPERM");
	ok(socket(AF_IPX, SOCK_DGRAM, 0) < 0 && errno == EPERM, "fetch: socket(AF_IPX): EPERM");
	ok(execl("/bin/true", "true", (char *)NULL) < 0 && errno == EPERM, "fetch: execve: EPERM");
}

/* Runs FN in a forked child and adds its TAP lines' counts. */
static void in_child(void (*fn)(void))
{
	int p[2], st, counts[2] = {0, 0};
	pid_t pid;

	if (pipe(p) < 0)
		return;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int n0 = tap_n, failed0 = tap_failed;

		close(p[0]);
		fn();
		/* the child numbers on from the parent's count: report its own */
		counts[0] = tap_n - n0;
		counts[1] = tap_failed - failed0;
		if (write(p[1], counts, sizeof(counts)) != sizeof(counts))
			_exit(2);
		_exit(0);
	}
	close(p[1]);
	if (pid < 0 || read(p[0], counts, sizeof(counts)) != sizeof(counts))
		counts[1] = 1;
	close(p[0]);
	waitpid(pid, &st, 0);
	tap_n += counts[0];
	tap_failed += counts[1];
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the sandboxed child exits normally");
}

int main(void)
{
	char path[256];
	int p[2], st, counts[2] = {0, 0};
	pid_t pid;

	snprintf(top, sizeof(top), "/tmp/slipway-sandbox-XXXXXX");
	if (!mkdtemp(top))
		return 1;
	snprintf(repo, sizeof(repo), "%s/repo.git", top);
	snprintf(other, sizeof(other), "%s/other", top);
	mkdir(repo, 0700);
	mkdir(other, 0700);
	snprintf(path, sizeof(path), "%s/objects", repo);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/objects/pack", repo);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/HEAD", repo);
	write_file(path, "ref: refs/heads/main\n");
	snprintf(path, sizeof(path), "%s/token", other);
	write_file(path, "secret\n");

	if (pipe(p) < 0)
		return 1;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		child(getppid());
		counts[0] = tap_n;
		counts[1] = tap_failed;
		if (write(p[1], counts, sizeof(counts)) != sizeof(counts))
			_exit(2);
		_exit(0);
	}
	close(p[1]);
	if (pid < 0 || read(p[0], counts, sizeof(counts)) != sizeof(counts))
		counts[1] = 1;
	waitpid(pid, &st, 0);
	tap_n += counts[0];
	tap_failed += counts[1];
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the sandboxed child exits normally");
	in_child(fetch_child);

	snprintf(path, sizeof(path), "%s/other/token", top);
	unlink(path);
	snprintf(path, sizeof(path), "%s/repo.git/HEAD", top);
	unlink(path);
	snprintf(path, sizeof(path), "%s/repo.git/objects/pack/pack.pack", top);
	unlink(path);
	snprintf(path, sizeof(path), "%s/repo.git/objects/pack", top);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/repo.git/objects", top);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/repo.git", top);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/other", top);
	rmdir(path);
	rmdir(top);
	return tap_done();
}
