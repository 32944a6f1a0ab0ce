/* privileges: whether buildah can run in this process's place, checked
 * before it starts, so that a container without what buildah needs fails
 * with a message naming the missing privilege instead of buildah's bare
 * error (docs/builder.md "Privileges").
 *
 * buildah run as root without CAP_SYS_ADMIN (as in a container) re-executes
 * itself in a new user namespace that maps every ID the container has, 0
 * included: the child calls unshare(CLONE_NEWUSER), the parent writes the
 * child's uid_map and gid_map (containers/storage pkg/unshare). Writing
 * them takes CAP_SETUID, CAP_SETGID and, since Linux 5.12, CAP_SETFCAP for
 * a map that holds uid 0 (user_namespaces(7)); a seccomp profile such as
 * the runtimes' default refuses the unshare without CAP_SYS_ADMIN. With
 * CAP_SYS_ADMIN buildah needs no user namespace, and nothing is checked. */
#ifndef SLIP_PRIVILEGES_H
#define SLIP_PRIVILEGES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* What the check reads of /proc/self/status. */
struct privileges_status {
	uint64_t cap_eff; /* CapEff: the effective capabilities, bit N = capability N */
	uint64_t cap_bnd; /* CapBnd: the bounding set, what an exec as root may get */
	int seccomp;      /* Seccomp: 0 none, 1 strict, 2 a filter; -1 not said */
};

/* Checks this process: its effective uid and capabilities, then
 * unshare(CLONE_NEWUSER) in a forked child (nothing changes here). Returns
 * 0 when buildah may run as far as that tells (CAP_SYS_ADMIN, or what
 * buildah's user namespace needs; also when /proc cannot be read: buildah
 * will say), or -1 with err_msg() one line naming what is missing and the
 * securityContext that gives it. */
int privileges_check(void);

/* Parses TEXT, the content of /proc/self/status, into *OUT. Returns 0, or
 * -1 when CapEff or CapBnd is missing or not hex. Pure. */
int privileges_status_parse(struct privileges_status *out, const char *text);

/* Judges by capabilities a process of effective uid EUID with ST, on a
 * kernel of release KERNEL (uname -r, e.g. "6.1.0-18-amd64"; CAP_SETFCAP
 * is asked for from 5.12 on, or when the release cannot be read; may be
 * NULL). A capability counts when it is effective or, for root, in the
 * bounding set (buildah, exec'd as root, gets the bounding set). Returns 1
 * when CAP_SYS_ADMIN counts (buildah makes no user namespace: nothing more
 * to check), 0 when the user namespace is to be tried
 * (privileges_judge_unshare), or -1 with MSG (SIZE bytes, always
 * terminated) saying what is missing: a uid other than 0, or CAP_SETUID,
 * CAP_SETGID, CAP_SETFCAP. Pure. */
int privileges_judge_caps(char *msg, size_t size, uid_t euid, const struct privileges_status *st,
                          const char *kernel);

/* Judges the outcome of unshare(CLONE_NEWUSER): ERR 0 (it worked) or its
 * errno, with SECCOMP as in struct privileges_status. Returns 0 when it
 * worked, or -1 with MSG saying why it did not and what to give the Pod.
 * Pure. */
int privileges_judge_unshare(char *msg, size_t size, int err, int seccomp);

#endif
