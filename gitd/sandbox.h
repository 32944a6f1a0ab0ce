/* sandbox: what a connection process gives up once it knows the one
 * repository it serves, before it parses a byte of the git service's data
 * (see docs/security.md, "Processes and what each holds").
 *
 * sandbox_enter() sets no_new_privs, then a Landlock domain (the kernel's
 * unprivileged access control, <linux/landlock.h>; every access right of
 * Landlock ABI 1 to 7 that gitd knows is handled, best effort for the ABI
 * the running kernel has): reads and writes only beneath the repository's
 * directory, reading /dev/urandom and /sys/devices/system/cpu/online and
 * reading and writing /dev/null; no program may be executed; no TCP bind
 * or connect (ABI 4); abstract Unix sockets and signals scoped to the
 * process (ABI 6). Then a seccomp filter (libseccomp) that refuses with
 * EPERM the system calls a git server has no use for: ptrace,
 * process_vm_readv/writev, execve/execveat, mount and the mount API,
 * namespaces (unshare, setns, clone with a CLONE_NEW* flag; clone3 gets
 * ENOSYS so that the C library falls back to clone), keyrings, bpf,
 * perf_event_open, userfaultfd, io_uring (its operations bypass seccomp),
 * kernel modules, kexec, personality, and socket() or socketpair() of any
 * family other than AF_UNIX. Connecting to a named Unix socket (the
 * pipeline socket) is not governed by Landlock up to ABI 7.
 *
 * Failure policy: no_new_privs and seccomp are required, and a failure to
 * set them up is an error (the connection ends). Landlock is best effort: a
 * kernel without it (or with it disabled at boot, or ABI 1, which denies
 * the cross-directory links a push's quarantine needs) degrades to
 * no_new_privs and seccomp, and sandbox_enter() says why through
 * *DEGRADED so the caller logs it. */
#ifndef SLIP_GITD_SANDBOX_H
#define SLIP_GITD_SANDBOX_H

/* Prepares the connection process to run inside the sandbox; call it before
 * the repository is opened. Points libgit2's system, XDG, global and
 * ProgramData configuration search paths at nothing (so a repository's
 * configuration is its own config file alone, and libgit2 needs no file
 * outside the repository), and loads the local time zone (tzset(3)) while
 * /etc/localtime is still readable, for reflog entries. Returns 0, or -1
 * with err_msg() when libgit2 refuses an option. */
int sandbox_prepare(void);

/* Restricts the calling process, for good, to REPO_PATH (the absolute or
 * relative path of the repository's directory, which must exist) as the
 * header's comment describes. The process must be single-threaded: the
 * restrictions apply to the calling thread and to what it creates later.
 * Returns 0 with *DEGRADED NULL when fully sandboxed, 0 with *DEGRADED a
 * static one-line reason ("landlock is not supported by this kernel", ...)
 * when Landlock could not be applied and only no_new_privs and seccomp
 * hold, or -1 with err_msg() when no_new_privs, seccomp or a Landlock
 * call that the kernel offers failed (the process is then partly
 * restricted at most and must not serve the connection). */
int sandbox_enter(const char *repo_path, const char **degraded);

/* The same for an upstream's fetch process (upstream.h), which needs the
 * network: Landlock as above, but TCP is not restricted and /etc, /usr,
 * /lib and /lib64 may be read (and their shared objects mapped: name
 * resolution); seccomp as above, but socket() may also create AF_INET,
 * AF_INET6 and AF_NETLINK sockets. Same failure policy and return values as
 * sandbox_enter. Call sandbox_prepare first, and load what lies elsewhere
 * (a CA file) before. */
int sandbox_enter_fetch(const char *repo_path, const char **degraded);

#endif
