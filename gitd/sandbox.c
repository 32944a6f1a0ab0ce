/* sandbox: no_new_privs, Landlock and a seccomp filter for a connection
 * process once its repository is known (see sandbox.h). */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <git2.h>
#include <linux/landlock.h>
#include <seccomp.h>

#include "err.h"
#include "sandbox.h"
#include "banned.h"

/* Landlock's UAPI as of ABI 7 (Linux 6.15, include/uapi/linux/landlock.h);
 * older kernel headers (Debian bookworm's are 6.1, ABI 2) lack the later
 * rights, and the values are the kernel's ABI. */
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif
#ifndef LANDLOCK_ACCESS_NET_BIND_TCP
#define LANDLOCK_ACCESS_NET_BIND_TCP (1ULL << 0)
#define LANDLOCK_ACCESS_NET_CONNECT_TCP (1ULL << 1)
#endif
#ifndef LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
#define LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define LANDLOCK_SCOPE_SIGNAL (1ULL << 1)
#endif

/* struct landlock_ruleset_attr with the fields of ABI 4 (handled_access_net)
 * and ABI 6 (scoped); the kernel takes the size it is given and refuses
 * non-zero fields it does not know (E2BIG), so a field the ABI lacks stays 0. */
struct ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;
	uint64_t scoped;
};

/* ABI 1: every file system right but REFER */
#define FS_ABI1                                                                                    \
	(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |                              \
	 LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR |                              \
	 LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |                          \
	 LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR |                              \
	 LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |                              \
	 LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |                            \
	 LANDLOCK_ACCESS_FS_MAKE_SYM)

/* What the repository's tree allows: objects, packs, refs and their locks,
 * the quarantine (made, linked or renamed into objects/, removed). */
#define FS_REPO                                                                                    \
	(LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE |                            \
	 LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_REMOVE_DIR |                             \
	 LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_DIR |                            \
	 LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_REFER | LANDLOCK_ACCESS_FS_TRUNCATE)

int sandbox_prepare(void)
{
	static const int levels[] = {GIT_CONFIG_LEVEL_SYSTEM, GIT_CONFIG_LEVEL_XDG,
	                             GIT_CONFIG_LEVEL_GLOBAL, GIT_CONFIG_LEVEL_PROGRAMDATA};

	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
		if (git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, levels[i], "") < 0)
			return err_set("libgit2: cannot clear configuration search path: %s",
			               git_error_last() ? git_error_last()->message : "unknown");
	tzset();
	return 0;
}

/* Allows ACCESS (masked by what the ruleset handles) beneath PATH. A path
 * that does not exist is skipped when IS_OPTIONAL. */
static int allow_path(int ruleset, const char *path, uint64_t access, uint64_t handled,
                      bool is_optional)
{
	struct landlock_path_beneath_attr pb = {0};
	int fd, rc;

	fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0) {
		if (is_optional && errno == ENOENT)
			return 0;
		return err_set("landlock: cannot open %s: %s", path, strerror(errno));
	}
	pb.allowed_access = access & handled;
	pb.parent_fd = fd;
	rc = (int)syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb, 0);
	if (rc < 0)
		err_set("landlock: cannot add a rule for %s: %s", path, strerror(errno));
	close(fd);
	return rc < 0 ? -1 : 0;
}

/* What a fetch process reads besides its repository: resolv.conf, hosts,
 * nsswitch.conf and the CA bundle under /etc; shared objects the C library
 * loads for name resolution. */
static const char *const fetch_reads[] = {"/etc", "/usr", "/lib", "/lib64"};

/* Returns 0 when the Landlock domain is in force, 1 with *DEGRADED when the
 * kernel offers none we can use, -1 with err_msg() on a failure. IS_FETCH:
 * TCP is not restricted, and /etc, /usr and /lib may be read (name
 * resolution, the C library's NSS modules). */
static int landlock_enter(const char *repo_path, bool is_fetch, const char **degraded)
{
	struct ruleset_attr attr = {0};
	size_t attr_size = sizeof(attr);
	int abi, ruleset = -1, ret = -1;

	abi = (int)syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	if (abi < 0) {
		if (errno == ENOSYS)
			*degraded = "landlock is not supported by this kernel";
		else if (errno == EOPNOTSUPP)
			*degraded = "landlock is disabled in this kernel (boot option lsm=)";
		else /* EPERM: a container runtime's seccomp profile, say */
			*degraded = "landlock system calls are refused";
		return 1;
	}
	if (abi < 2) {
		/* ABI 1 refuses every link or rename across directories
		 * (EXDEV), which moving a push's quarantine into objects/ does */
		*degraded = "landlock ABI 1 cannot allow the quarantine's links";
		return 1;
	}
	attr.handled_access_fs = FS_ABI1 | LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		attr.handled_access_fs |= LANDLOCK_ACCESS_FS_TRUNCATE;
	if (abi >= 4 && !is_fetch)
		attr.handled_access_net =
		    LANDLOCK_ACCESS_NET_BIND_TCP | LANDLOCK_ACCESS_NET_CONNECT_TCP;
	if (abi >= 5)
		attr.handled_access_fs |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
	if (abi >= 6)
		attr.scoped = LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL;
	/* ABI 7 adds audit logging flags for landlock_restrict_self, no
	 * rights; the default (denials logged) is kept */
	if (abi < 4 || (is_fetch && abi < 6))
		attr_size = offsetof(struct ruleset_attr, handled_access_net);
	else if (abi < 6)
		attr_size = offsetof(struct ruleset_attr, scoped);
	ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0);
	if (ruleset < 0) {
		err_set("landlock: cannot create a ruleset (ABI %d): %s", abi, strerror(errno));
		goto out;
	}
	if (allow_path(ruleset, repo_path, FS_REPO, attr.handled_access_fs, false) < 0 ||
	    allow_path(ruleset, "/dev/null",
	               LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE,
	               attr.handled_access_fs, true) < 0 ||
	    allow_path(ruleset, "/dev/urandom", LANDLOCK_ACCESS_FS_READ_FILE,
	               attr.handled_access_fs, true) < 0 ||
	    /* sysconf(_SC_NPROCESSORS_ONLN): libgit2's pack builder threads */
	    allow_path(ruleset, "/sys/devices/system/cpu/online", LANDLOCK_ACCESS_FS_READ_FILE,
	               attr.handled_access_fs, true) < 0)
		goto out;
	for (size_t i = 0; is_fetch && i < sizeof(fetch_reads) / sizeof(fetch_reads[0]); i++)
		if (allow_path(ruleset, fetch_reads[i],
		               LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR |
		                   LANDLOCK_ACCESS_FS_EXECUTE,
		               attr.handled_access_fs, true) < 0)
			goto out;
	if (syscall(SYS_landlock_restrict_self, ruleset, 0) < 0) {
		err_set("landlock: cannot restrict the process: %s", strerror(errno));
		goto out;
	}
	ret = 0;
out:
	if (ruleset >= 0)
		close(ruleset);
	return ret;
}

/* The system calls refused with EPERM, whatever their arguments. */
static const char *const denied[] = {
    /* other processes' memory */
    "ptrace", "process_vm_readv", "process_vm_writev",
    /* running programs: the connection process runs none */
    "execve", "execveat",
    /* mounts, root changes and namespaces */
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "fsopen", "fsconfig", "fsmount",
    "fspick", "move_mount", "open_tree", "mount_setattr",
    /* keyrings */
    "keyctl", "add_key", "request_key",
    /* kernel attack surface a git server never needs */
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "personality", "kexec_load", "kexec_file_load", "init_module",
    "finit_module", "delete_module", "open_by_handle_at", "name_to_handle_at", "swapon", "swapoff",
    "reboot", "acct", "quotactl"};

/* clone with any of these flags is refused: a new namespace */
static const uint64_t clone_new[] = {CLONE_NEWNS,  CLONE_NEWUTS, CLONE_NEWIPC,   CLONE_NEWUSER,
                                     CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP};

/* IS_FETCH: sockets of AF_INET, AF_INET6 and AF_NETLINK (getaddrinfo) are
 * allowed too. */
static int seccomp_enter(bool is_fetch)
{
	scmp_filter_ctx ctx;
	int rc = 0;

	/* default allow; a system call of another architecture (x86-64's
	 * int 0x80 into the i386 table, say) kills the process, libseccomp's
	 * default for an architecture the filter was not built for */
	ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx)
		return err_set("seccomp: cannot create a filter");
	for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]) && rc == 0; i++) {
		int nr = seccomp_syscall_resolve_name(denied[i]);

		if (nr == __NR_SCMP_ERROR)
			continue; /* not on this architecture */
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
		if (rc < 0)
			err_set("seccomp: cannot add a rule for %s: %s", denied[i], strerror(-rc));
	}
	if (rc == 0) {
		if (!is_fetch)
			rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1,
			                      SCMP_A0(SCMP_CMP_NE, AF_UNIX));
		/* a fetch's sockets: AF_UNIX, AF_INET, AF_INET6, AF_NETLINK
		 * (getaddrinfo); families below, between and above are refused */
		if (is_fetch)
			rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1,
			                      SCMP_A0(SCMP_CMP_GT, AF_NETLINK)) ||
			     seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1,
			                      SCMP_A0(SCMP_CMP_LT, AF_UNIX));
		for (int af = AF_INET + 1; is_fetch && rc == 0 && af < AF_NETLINK; af++)
			if (af != AF_INET6)
				rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket),
				                      1, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)af));
		if (rc == 0)
			rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socketpair), 1,
			                      SCMP_A0(SCMP_CMP_NE, AF_UNIX));
		/* clone's flags are its first argument (x86-64, arm64; not s390) */
		for (size_t i = 0; i < sizeof(clone_new) / sizeof(clone_new[0]) && rc == 0; i++)
			rc = seccomp_rule_add(
			    ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
			    SCMP_A0(SCMP_CMP_MASKED_EQ, clone_new[i], clone_new[i]));
		/* clone3's flags are in memory, out of a filter's reach: ENOSYS
		 * makes the C library fall back to clone */
		if (rc == 0)
			rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
		if (rc < 0)
			err_set("seccomp: cannot add the socket and clone rules: %s",
			        strerror(-rc));
	}
	if (rc == 0) {
		rc = seccomp_load(ctx);
		if (rc < 0)
			err_set("seccomp: cannot load the filter: %s", strerror(-rc));
	}
	seccomp_release(ctx);
	return rc < 0 ? -1 : 0;
}

int sandbox_enter(const char *repo_path, const char **degraded)
{
	*degraded = NULL;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return err_set("no_new_privs: %s", strerror(errno));
	if (landlock_enter(repo_path, false, degraded) < 0)
		return -1;
	return seccomp_enter(false);
}

int sandbox_enter_fetch(const char *repo_path, const char **degraded)
{
	*degraded = NULL;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return err_set("no_new_privs: %s", strerror(errno));
	if (landlock_enter(repo_path, true, degraded) < 0)
		return -1;
	return seccomp_enter(true);
}
