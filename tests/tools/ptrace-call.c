/* ptrace-call: makes a running process make one system call, as a debugger
 * would, and prints what the call returned in that process: a test driver,
 * not shipped, for checking from outside what a sandboxed process may do
 * (its own seccomp filter and Landlock domain apply to the call).
 *
 * usage: ptrace-call PID SYSCALL [ARG...]
 *   SYSCALL  a name (libseccomp's table for this architecture), e.g. openat
 *   ARG      a number (strtoll, base 0), or a string written into the
 *            process's memory for the call when it starts with '/'
 *
 * Prints "RESULT ERRNO": "-1 13" for a call that failed with EACCES, "5 0"
 * for one that returned 5. A descriptor the call returned (openat, open,
 * socket) is closed in the process again. The process must be stopped in a
 * system call (blocked in read, poll, ...); it is attached with PTRACE_ATTACH,
 * its registers and the stack bytes used for strings are put back, and it
 * resumes its own interrupted call. Exits 0; 1 on an error; 77 when ptrace
 * is refused or the architecture is not x86-64 (a test skips). */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include <seccomp.h>

#include "banned.h"

#define STRINGS_MAX 2048

#if defined(__x86_64__)

static pid_t pid;

static int wait_stop(void)
{
	int st;

	if (waitpid(pid, &st, __WALL) < 0) {
		fprintf(stderr, "ptrace-call: waitpid: %s\n", strerror(errno));
		return -1;
	}
	if (!WIFSTOPPED(st)) {
		fprintf(stderr, "ptrace-call: process %d ended\n", (int)pid);
		return -1;
	}
	return WSTOPSIG(st);
}

/* Copies LEN bytes (a multiple of 8) between the process at ADDR and BUF. */
static int peek(unsigned long addr, void *buf, size_t len)
{
	for (size_t i = 0; i < len; i += sizeof(long)) {
		long w;

		errno = 0;
		w = ptrace(PTRACE_PEEKDATA, pid, (void *)(addr + i), NULL);
		if (w == -1 && errno)
			return -1;
		memcpy((char *)buf + i, &w, sizeof(w));
	}
	return 0;
}

static int poke(unsigned long addr, const void *buf, size_t len)
{
	for (size_t i = 0; i < len; i += sizeof(long)) {
		long w;

		memcpy(&w, (const char *)buf + i, sizeof(w));
		if (ptrace(PTRACE_POKEDATA, pid, (void *)(addr + i), (void *)w) < 0)
			return -1;
	}
	return 0;
}

/* Runs system call NR with ARGS at the syscall instruction at INSN, from
 * the registers SAVED; *RESULT gets the raw return value. */
static int call(const struct user_regs_struct *saved, unsigned long insn, long nr,
                const unsigned long args[6], long *result)
{
	struct user_regs_struct r = *saved;
	int sig;

	r.rax = (unsigned long)nr;
	r.orig_rax = (unsigned long)-1; /* no restart of the interrupted call */
	r.rdi = args[0];
	r.rsi = args[1];
	r.rdx = args[2];
	r.r10 = args[3];
	r.r8 = args[4];
	r.r9 = args[5];
	r.rip = insn;
	if (ptrace(PTRACE_SETREGS, pid, NULL, &r) < 0 ||
	    ptrace(PTRACE_SINGLESTEP, pid, NULL, NULL) < 0) {
		fprintf(stderr, "ptrace-call: cannot step: %s\n", strerror(errno));
		return -1;
	}
	sig = wait_stop();
	if (sig != SIGTRAP) {
		fprintf(stderr, "ptrace-call: stopped by signal %d, not the step\n", sig);
		return -1;
	}
	if (ptrace(PTRACE_GETREGS, pid, NULL, &r) < 0)
		return -1;
	*result = (long)r.rax;
	return 0;
}

int main(int argc, char **argv)
{
	struct user_regs_struct saved;
	unsigned long args[6] = {0}, insn;
	char strings[STRINGS_MAX] = {0}, stack[STRINGS_MAX];
	size_t used = 0;
	long nr, word, result = 0;
	int ret = 1;
	bool is_fd;

	if (argc < 3 || argc > 9) {
		fprintf(stderr, "usage: ptrace-call PID SYSCALL [ARG...]\n");
		return 1;
	}
	pid = (pid_t)atoi(argv[1]);
	nr = seccomp_syscall_resolve_name(argv[2]);
	if (nr == __NR_SCMP_ERROR) {
		fprintf(stderr, "ptrace-call: no system call '%s'\n", argv[2]);
		return 1;
	}
	is_fd =
	    !strcmp(argv[2], "openat") || !strcmp(argv[2], "open") || !strcmp(argv[2], "socket");
	if (ptrace(PTRACE_ATTACH, pid, NULL, NULL) < 0) {
		fprintf(stderr, "ptrace-call: cannot attach to %d: %s\n", (int)pid,
		        strerror(errno));
		return 77;
	}
	if (wait_stop() < 0)
		return 1;
	if (ptrace(PTRACE_GETREGS, pid, NULL, &saved) < 0) {
		fprintf(stderr, "ptrace-call: cannot read registers: %s\n", strerror(errno));
		goto detach;
	}
	/* stopped in a system call: the 2-byte "syscall" (0f 05) just before */
	insn = saved.rip - 2;
	errno = 0;
	word = ptrace(PTRACE_PEEKTEXT, pid, (void *)insn, NULL);
	if ((word == -1 && errno) || (word & 0xffff) != 0x050f || (long)saved.orig_rax < 0) {
		fprintf(stderr, "ptrace-call: %d is not stopped in a system call\n", (int)pid);
		goto detach;
	}
	/* strings go on the live stack above the stack pointer, whose bytes
	 * are saved and put back: it is mapped, unlike what lies below */
	for (int i = 3; i < argc; i++) {
		size_t n = strlen(argv[i]) + 1;

		if (argv[i][0] != '/') {
			args[i - 3] = (unsigned long)strtoll(argv[i], NULL, 0);
			continue;
		}
		if (n > sizeof(strings) - used) {
			fprintf(stderr, "ptrace-call: strings too long\n");
			goto detach;
		}
		memcpy(strings + used, argv[i], n);
		args[i - 3] = saved.rsp + used;
		used += (n + 7) & ~(size_t)7;
	}
	if (used && (peek(saved.rsp, stack, used) < 0 || poke(saved.rsp, strings, used) < 0)) {
		fprintf(stderr, "ptrace-call: cannot write the strings: %s\n", strerror(errno));
		goto detach;
	}
	if (call(&saved, insn, nr, args, &result) == 0) {
		if (result < 0 && result >= -4095)
			printf("-1 %ld\n", -result);
		else
			printf("%ld 0\n", result);
		ret = 0;
		if (is_fd && result >= 0) {
			unsigned long close_args[6] = {(unsigned long)result};
			long ignored;

			if (call(&saved, insn, seccomp_syscall_resolve_name("close"), close_args,
			         &ignored) < 0)
				ret = 1;
		}
	}
	if (used && poke(saved.rsp, stack, used) < 0) {
		fprintf(stderr, "ptrace-call: cannot restore the stack: %s\n", strerror(errno));
		ret = 1;
	}
detach:
	if (ptrace(PTRACE_SETREGS, pid, NULL, &saved) < 0 ||
	    ptrace(PTRACE_DETACH, pid, NULL, NULL) < 0) {
		fprintf(stderr, "ptrace-call: cannot detach: %s\n", strerror(errno));
		ret = 1;
	}
	return ret;
}

#else

int main(void)
{
	fprintf(stderr, "ptrace-call: only x86-64 is supported\n");
	return 77;
}

#endif
