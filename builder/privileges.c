/* privileges: the builder's check, before buildah starts, that this
 * process has what buildah needs for its user namespace, judged from
 * /proc/self/status and a trial unshare(CLONE_NEWUSER) in a child. */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "privileges.h"
#include "err.h"
#include "banned.h"

/* /proc/self/status is about 1.5 KiB; the fields read come early. */
#define STATUS_MAX 16384

#define SEE_DOCS "(docs/builder.md \"Privileges\")"

/* The value of field NAME ("CapEff") in TEXT, or NULL. */
static const char *status_field(const char *text, const char *name)
{
	size_t len = strlen(name);
	const char *line = text;

	while (line) {
		if (!strncmp(line, name, len) && line[len] == ':')
			return line + len + 1;
		if ((line = strchr(line, '\n')))
			line++;
	}
	return NULL;
}

static int parse_hex(uint64_t *out, const char *val)
{
	char *end;

	if (!val)
		return -1;
	val += strspn(val, " \t");
	if (!((*val >= '0' && *val <= '9') || (*val >= 'a' && *val <= 'f')))
		return -1;
	errno = 0;
	*out = strtoull(val, &end, 16);
	if (errno || (*end && *end != '\n'))
		return -1;
	return 0;
}

int privileges_status_parse(struct privileges_status *out, const char *text)
{
	const char *seccomp = status_field(text, "Seccomp");

	out->seccomp = seccomp ? atoi(seccomp) : -1;
	if (parse_hex(&out->cap_eff, status_field(text, "CapEff")) < 0 ||
	    parse_hex(&out->cap_bnd, status_field(text, "CapBnd")) < 0)
		return -1;
	return 0;
}

/* Linux 5.12 (commit "capabilities: require CAP_SETFCAP to map uid 0") and
 * later, or a release that does not say. */
static bool kernel_wants_setfcap(const char *kernel)
{
	int major, minor;

	if (!kernel || sscanf(kernel, "%d.%d", &major, &minor) != 2)
		return true;
	return major > 5 || (major == 5 && minor >= 12);
}

static bool has_cap(uint64_t mask, int cap)
{
	return (mask >> cap) & 1;
}

int privileges_judge_caps(char *msg, size_t size, uid_t euid, const struct privileges_status *st,
                          const char *kernel)
{
	/* what each capability is for, in buildah's writing of the maps */
	static const struct {
		int cap;
		const char *name, *why;
	} needed[] = {
	    {CAP_SETUID, "CAP_SETUID",
	     "needed to map the container's user IDs into a user namespace"},
	    {CAP_SETGID, "CAP_SETGID",
	     "needed to map the container's group IDs into a user namespace"},
	    {CAP_SETFCAP, "CAP_SETFCAP",
	     "needed to map uid 0 into a user namespace, Linux >= 5.12"},
	};
	/* buildah, exec'd as root, gets the bounding set */
	uint64_t caps = st->cap_eff | (euid == 0 ? st->cap_bnd : 0);
	size_t missing[3], n = 0, len;

	if (has_cap(caps, CAP_SYS_ADMIN))
		return 1;
	if (euid != 0) {
		snprintf(
		    msg, size,
		    "buildah cannot run here: the builder runs as uid %u, not root (buildah in a "
		    "container maps the container's IDs, 0 first, into a user namespace and "
		    "owns its storage as root); give the builder Pod runAsUser 0 " SEE_DOCS,
		    (unsigned)euid);
		return -1;
	}
	for (size_t i = 0; i < sizeof(needed) / sizeof(needed[0]); i++)
		if (!has_cap(caps, needed[i].cap) &&
		    (needed[i].cap != CAP_SETFCAP || kernel_wants_setfcap(kernel)))
			missing[n++] = i;
	if (!n)
		return 0;
	len = (size_t)snprintf(msg, size, "buildah cannot run here: the container lacks ");
	for (size_t i = 0; i < n && len < size; i++)
		len += (size_t)snprintf(msg + len, size - len, "%s%s (%s)",
		                        i == 0       ? ""
		                        : i + 1 == n ? " and "
		                                     : ", ",
		                        needed[missing[i]].name, needed[missing[i]].why);
	if (len < size)
		snprintf(
		    msg + len, size - len,
		    "; give the builder Pod capabilities add [SETUID, SETGID, SETFCAP] " SEE_DOCS);
	return -1;
}

int privileges_judge_unshare(char *msg, size_t size, int err, int seccomp)
{
	if (!err)
		return 0;
	if (err == EPERM && seccomp == 2)
		snprintf(
		    msg, size,
		    "buildah cannot run here: unshare(CLONE_NEWUSER) is refused (seccomp profile "
		    "RuntimeDefault?); give the builder Pod seccompProfile Unconfined or a "
		    "Localhost profile allowing it " SEE_DOCS);
	else if (err == EPERM && seccomp == 0)
		snprintf(
		    msg, size,
		    "buildah cannot run here: unshare(CLONE_NEWUSER) is refused without a seccomp "
		    "filter: the node forbids user namespaces to processes without "
		    "CAP_SYS_ADMIN (kernel.unprivileged_userns_clone = 0, or an LSM "
		    "policy) " SEE_DOCS);
	else if (err == ENOSPC)
		snprintf(
		    msg, size,
		    "buildah cannot run here: unshare(CLONE_NEWUSER) fails: the node allows no "
		    "more user namespaces (user.max_user_namespaces is 0 or reached) " SEE_DOCS);
	else
		snprintf(msg, size,
		         "buildah cannot run here: unshare(CLONE_NEWUSER) fails: %s " SEE_DOCS,
		         strerror(err));
	return -1;
}

/* TEXT gets /proc/self/status. Returns 0 or -1. */
static int status_read(char *text, size_t size)
{
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	size_t len = 0;
	ssize_t n = 0;

	if (fd < 0)
		return -1;
	while (len + 1 < size &&
	       ((n = read(fd, text + len, size - 1 - len)) > 0 || (n < 0 && errno == EINTR)))
		if (n > 0)
			len += (size_t)n;
	close(fd);
	text[len] = '\0';
	return n < 0 ? -1 : 0;
}

/* unshare(CLONE_NEWUSER) in a child that exits at once, so this process
 * stays where it is. Returns 0 when it worked, its errno, or -1 when the
 * trial itself could not be made. */
static int unshare_try(void)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return -1;
	if (pid == 0)
		_exit(unshare(CLONE_NEWUSER) == 0 ? 0 : errno > 0 && errno < 255 ? errno : 255);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (!WIFEXITED(status) || WEXITSTATUS(status) == 255)
		return -1;
	return WEXITSTATUS(status);
}

int privileges_check(void)
{
	char text[STATUS_MAX], msg[ERR_MAX];
	struct privileges_status st;
	struct utsname u;
	int ret, err;

	/* without Linux's /proc there is nothing to judge by: buildah will say */
	if (status_read(text, sizeof(text)) < 0 || privileges_status_parse(&st, text) < 0)
		return 0;
	ret = privileges_judge_caps(msg, sizeof(msg), geteuid(), &st,
	                            uname(&u) == 0 ? u.release : NULL);
	if (ret < 0)
		return err_set("%s", msg);
	if (ret > 0 || (err = unshare_try()) < 0)
		return 0;
	if (privileges_judge_unshare(msg, sizeof(msg), err, st.seccomp) < 0)
		return err_set("%s", msg);
	return 0;
}
