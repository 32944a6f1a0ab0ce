/* Unit tests of the builder's privilege check (builder/privileges.h): the
 * pure parts, /proc/self/status parsing and the judgements of capability
 * masks and of unshare(CLONE_NEWUSER)'s errno, with masks as a container
 * runtime sets them; then privileges_check() on this process. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "err.h"
#include "privileges.h"

/* Capability bits (linux/capability.h). */
#define SETGID (1ull << 6)
#define SETUID (1ull << 7)
#define SYS_ADMIN (1ull << 21)
#define SETFCAP (1ull << 31)
#define ALL_CAPS 0x000001ffffffffffull        /* root on a host, Linux 5.9+ */
#define RUNTIME_DEFAULT 0x00000000a80425fbull /* containerd's and Docker's default set */

static const char status_text[] = "Name:\tbuilder\n"
                                  "Umask:\t0022\n"
                                  "State:\tR (running)\n"
                                  "Uid:\t0\t0\t0\t0\n"
                                  "CapInh:\t0000000000000000\n"
                                  "CapPrm:\t00000000800000c0\n"
                                  "CapEff:\t00000000800000c0\n"
                                  "CapBnd:\t00000000800000c0\n"
                                  "CapAmb:\t0000000000000000\n"
                                  "NoNewPrivs:\t1\n"
                                  "Seccomp:\t0\n"
                                  "Seccomp_filters:\t0\n";

static int judge(char *msg, size_t size, uid_t euid, uint64_t eff, uint64_t bnd, const char *kernel)
{
	struct privileges_status st = {.cap_eff = eff, .cap_bnd = bnd, .seccomp = 0};

	msg[0] = '\0';
	return privileges_judge_caps(msg, size, euid, &st, kernel);
}

static void test_status(void)
{
	struct privileges_status st;

	ok(privileges_status_parse(&st, status_text) == 0, "a status of the minimal Pod parses");
	ok(st.cap_eff == (SETUID | SETGID | SETFCAP), "CapEff is SETUID, SETGID, SETFCAP");
	ok(st.cap_bnd == st.cap_eff, "CapBnd too");
	is_int(st.seccomp, 0, "Seccomp 0: no filter");
	ok(privileges_status_parse(&st, "Seccomp:\t2\nCapEff:\t0000000000000000\n"
	                                "CapBnd:\t000001ffffffffff\n") == 0 &&
	       st.seccomp == 2 && st.cap_eff == 0 && st.cap_bnd == ALL_CAPS,
	   "fields in any order; Seccomp 2 is a filter");
	ok(privileges_status_parse(&st, "CapEff:\t00000000800000c0\nCapBnd:\t000001ffffffffff\n") ==
	           0 &&
	       st.seccomp == -1,
	   "no Seccomp field: -1");
	ok(privileges_status_parse(&st, "CapEff:\t00000000800000c0\n") < 0, "no CapBnd: refused");
	ok(privileges_status_parse(&st, "CapEff:\tzz\nCapBnd:\t0\n") < 0,
	   "a mask not hex: refused");
	ok(privileges_status_parse(&st, "XCapEff:\t1\nCapBnd:\t0\n") < 0,
	   "a field is matched at the start of a line only");
}

static void test_caps(void)
{
	char msg[1024];

	is_int(judge(msg, sizeof(msg), 0, ALL_CAPS, ALL_CAPS, "6.1.0-18-amd64"), 1,
	       "root on a host (CAP_SYS_ADMIN): nothing to check");
	is_int(judge(msg, sizeof(msg), 1000, SYS_ADMIN, 0, "6.1.0"), 1,
	       "CAP_SYS_ADMIN skips the check, whatever the uid");
	is_int(judge(msg, sizeof(msg), 0, 0, SYS_ADMIN, "6.1.0"), 1,
	       "root with CAP_SYS_ADMIN in the bounding set: buildah gets it, skipped");
	is_int(judge(msg, sizeof(msg), 0, SETUID | SETGID | SETFCAP, SETUID | SETGID | SETFCAP,
	             "6.1.0"),
	       0, "the minimal Pod (SETUID, SETGID, SETFCAP): the user namespace is to be tried");
	is_int(judge(msg, sizeof(msg), 0, RUNTIME_DEFAULT, RUNTIME_DEFAULT, "6.1.0"), 0,
	       "the runtime's default set has all three: the user namespace is to be tried");
	is_int(judge(msg, sizeof(msg), 0, 0, SETUID | SETGID | SETFCAP, "6.1.0"), 0,
	       "root gets the bounding set on exec: it counts");

	is_int(judge(msg, sizeof(msg), 0, 0, 0, "6.1.0-18-amd64"), -1, "drop [ALL] alone: refused");
	is_str(msg,
	       "buildah cannot run here: the container lacks CAP_SETUID (needed to map the "
	       "container's user IDs into a user namespace), CAP_SETGID (needed to map the "
	       "container's group IDs into a user namespace) and CAP_SETFCAP (needed to map uid 0 "
	       "into a user namespace, Linux >= 5.12); give the builder Pod capabilities add "
	       "[SETUID, SETGID, SETFCAP] (docs/builder.md \"Privileges\")",
	       "naming all three and what gives them");

	is_int(judge(msg, sizeof(msg), 0, SETUID | SETGID, SETUID | SETGID, "5.12.0"), -1,
	       "SETFCAP missing on Linux 5.12: refused");
	is_str(msg,
	       "buildah cannot run here: the container lacks CAP_SETFCAP (needed to map uid 0 into "
	       "a user namespace, Linux >= 5.12); give the builder Pod capabilities add [SETUID, "
	       "SETGID, SETFCAP] (docs/builder.md \"Privileges\")",
	       "naming CAP_SETFCAP alone");
	is_int(judge(msg, sizeof(msg), 0, SETUID | SETGID, SETUID | SETGID, "5.11.22"), 0,
	       "SETFCAP missing before Linux 5.12: not needed");
	is_int(judge(msg, sizeof(msg), 0, SETUID | SETGID, SETUID | SETGID, "weird"), -1,
	       "a kernel release that does not say: SETFCAP is asked for");
	is_int(judge(msg, sizeof(msg), 0, SETUID | SETGID, SETUID | SETGID, NULL), -1,
	       "no kernel release: SETFCAP is asked for");

	is_int(judge(msg, sizeof(msg), 0, SETGID | SETFCAP, SETGID | SETFCAP, "6.1.0"), -1,
	       "SETUID missing: refused");
	ok(!strncmp(msg, "buildah cannot run here: the container lacks CAP_SETUID (", 57) &&
	       !strstr(msg, "CAP_SETGID (") && !strstr(msg, "CAP_SETFCAP ("),
	   "naming CAP_SETUID alone: %s", msg);
	is_int(judge(msg, sizeof(msg), 0, SETUID, SETUID, "6.1.0"), -1, "two missing");
	ok(strstr(msg, "lacks CAP_SETGID (") && strstr(msg, ") and CAP_SETFCAP ("),
	   "two joined with 'and': %s", msg);

	is_int(judge(msg, sizeof(msg), 1000, 0, 0, "6.1.0"), -1, "uid 1000: refused");
	is_str(
	    msg,
	    "buildah cannot run here: the builder runs as uid 1000, not root (buildah in a "
	    "container maps the container's IDs, 0 first, into a user namespace and owns its "
	    "storage as root); give the builder Pod runAsUser 0 (docs/builder.md \"Privileges\")",
	    "saying it must run as root");
	is_int(judge(msg, sizeof(msg), 1000, 0, SYS_ADMIN, "6.1.0"), -1,
	       "uid 1000 with SYS_ADMIN only in the bounding set: refused (no exec as root)");

	is_int(judge(msg, 40, 0, 0, 0, "6.1.0"), -1, "a short buffer: still refused");
	is_int((int)strlen(msg), 39, "the message is cut, terminated");
}

static void test_unshare(void)
{
	char msg[1024];

	is_int(privileges_judge_unshare(msg, sizeof(msg), 0, 2), 0, "unshare worked: fine");
	is_int(privileges_judge_unshare(msg, sizeof(msg), EPERM, 2), -1,
	       "EPERM under a seccomp filter: refused");
	is_str(msg,
	       "buildah cannot run here: unshare(CLONE_NEWUSER) is refused (seccomp profile "
	       "RuntimeDefault?); give the builder Pod seccompProfile Unconfined or a Localhost "
	       "profile allowing it (docs/builder.md \"Privileges\")",
	       "blaming the seccomp profile");
	is_int(privileges_judge_unshare(msg, sizeof(msg), EPERM, 0), -1,
	       "EPERM without a filter: refused");
	ok(strstr(msg, "without a seccomp filter") && strstr(msg, "unprivileged_userns_clone"),
	   "not blaming seccomp: %s", msg);
	is_int(privileges_judge_unshare(msg, sizeof(msg), ENOSPC, 0), -1, "ENOSPC: refused");
	ok(strstr(msg, "user.max_user_namespaces") != NULL, "naming the sysctl: %s", msg);
	is_int(privileges_judge_unshare(msg, sizeof(msg), EINVAL, -1), -1, "EINVAL: refused");
	ok(strstr(msg, strerror(EINVAL)) != NULL, "with the errno's text: %s", msg);
	is_int(privileges_judge_unshare(msg, sizeof(msg), EPERM, -1), -1,
	       "EPERM with no Seccomp field: refused");
	ok(strstr(msg, strerror(EPERM)) != NULL, "with the errno's text: %s", msg);
}

/* This process: root with CAP_SYS_ADMIN (as the tests run) passes; in any
 * other place the check either passes or says why buildah cannot run. */
static void test_check(void)
{
	struct privileges_status st;
	char text[16384];
	FILE *f = fopen("/proc/self/status", "r");
	size_t n = f ? fread(text, 1, sizeof(text) - 1, f) : 0;
	int ret;

	if (f)
		fclose(f);
	text[n] = '\0';
	err_clear();
	ret = privileges_check();
	if (privileges_status_parse(&st, text) == 0 && (st.cap_eff & SYS_ADMIN))
		is_int(ret, 0, "with CAP_SYS_ADMIN the check passes");
	else
		ok((ret == 0 && !*err_msg()) ||
		       (ret == -1 && !strncmp(err_msg(), "buildah cannot run here: ", 25)),
		   "without CAP_SYS_ADMIN the check passes or says why: %s",
		   ret ? err_msg() : "passes");
}

int main(void)
{
	test_status();
	test_caps();
	test_unshare();
	test_check();
	return tap_done();
}
