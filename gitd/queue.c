/* queue: one pipeline at a time per Remote, with newer pushes of a ref
 * superseding queued ones; flock(2) and ticket files in the repository. */
#include "queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "err.h"
#include "banned.h"

#define QUEUE_POLL_MS 200
#define QUEUE_SAY_MS 10000

struct queue_ticket {
	char dir[PATH_MAX];    /* REPO/slipway */
	char ticket[NAME_MAX]; /* file name in DIR/queue */
	char refname[1024];
	char run[254];
	bool holds;
};

/* The process-wide lock: one descriptor, counted holders. */
static int lock_fd = -1;
static int lock_holders;
static char lock_dir[PATH_MAX];

static int ensure_dirs(const char *dir)
{
	char q[PATH_MAX];

	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return err_set("cannot create %s: %s", dir, strerror(errno));
	if ((size_t)snprintf(q, sizeof(q), "%s/queue", dir) >= sizeof(q))
		return err_set("path too long: %s", dir);
	if (mkdir(q, 0700) < 0 && errno != EEXIST)
		return err_set("cannot create %s: %s", q, strerror(errno));
	return 0;
}

int queue_enter(struct queue_ticket **out, const char *repo_path, const char *refname,
                const char *run_name)
{
	struct queue_ticket *t = calloc(1, sizeof(*t));
	struct timespec ts;
	char path[PATH_MAX + NAME_MAX + 16];
	FILE *f = NULL;
	static unsigned seq;
	int ret = -1;

	*out = NULL;
	if (!t)
		return err_set("out of memory");
	if ((size_t)snprintf(t->dir, sizeof(t->dir), "%s/slipway", repo_path) >= sizeof(t->dir) ||
	    strlen(refname) >= sizeof(t->refname) || strlen(run_name) >= sizeof(t->run)) {
		err_set("queue: name too long");
		goto out;
	}
	snprintf(t->refname, sizeof(t->refname), "%s", refname);
	snprintf(t->run, sizeof(t->run), "%s", run_name);
	if (ensure_dirs(t->dir) < 0)
		goto out;
	/* names sort in arrival order: realtime nanoseconds, then pid and a
	 * counter to break ties */
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(t->ticket, sizeof(t->ticket), "%020lld-%010d-%06u",
	         (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec, (int)getpid(), seq++ % 1000000);
	snprintf(path, sizeof(path), "%s/queue/%s", t->dir, t->ticket);
	f = fopen(path, "wxe");
	if (!f) {
		err_set("cannot create %s: %s", path, strerror(errno));
		goto out;
	}
	fprintf(f, "%d\n%s\n%s\n", (int)getpid(), refname, run_name);
	if (fclose(f) != 0) {
		f = NULL;
		err_set("cannot write %s: %s", path, strerror(errno));
		unlink(path);
		goto out;
	}
	*out = t;
	t = NULL;
	ret = 0;
out:
	free(t);
	return ret;
}

/* Reads ticket NAME; returns 1 when it belongs to a live process and names
 * REFNAME, 0 when it names another ref, -1 when it is stale (removed). */
static int ticket_matches(const struct queue_ticket *t, const char *name)
{
	char path[PATH_MAX + NAME_MAX + 16], ref[1024] = "";
	FILE *f;
	int pid = 0, r;

	snprintf(path, sizeof(path), "%s/queue/%s", t->dir, name);
	f = fopen(path, "re");
	if (!f)
		return 0;
	r = fscanf(f, "%d\n%1023[^\n]", &pid, ref);
	fclose(f);
	if (r != 2 || pid <= 0 || (kill(pid, 0) < 0 && errno == ESRCH)) {
		unlink(path);
		return -1;
	}
	return strcmp(ref, t->refname) == 0;
}

/* Whether a ticket for T's ref entered after T. */
static bool is_superseded(const struct queue_ticket *t)
{
	char q[PATH_MAX + 8];
	struct dirent *e;
	bool found = false;
	DIR *d;

	snprintf(q, sizeof(q), "%s/queue", t->dir);
	d = opendir(q);
	if (!d)
		return false;
	while (!found && (e = readdir(d)))
		if (e->d_name[0] != '.' && strcmp(e->d_name, t->ticket) > 0)
			found = ticket_matches(t, e->d_name) == 1;
	closedir(d);
	return found;
}

static void read_holder(char *buf, size_t size)
{
	ssize_t n = pread(lock_fd, buf, size - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
}

/* Tries to take the process-wide lock for DIR without blocking. Returns 1
 * when held, 0 when another process holds it, -1 with err_msg(). */
static int try_lock(const char *dir)
{
	char path[PATH_MAX + 16];

	if (lock_fd >= 0) {
		if (strcmp(lock_dir, dir) != 0)
			return err_set("queue: this process already holds the lock of %s",
			               lock_dir);
		if (lock_holders > 0)
			return 1;
	} else {
		snprintf(path, sizeof(path), "%s/pipeline.lock", dir);
		lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (lock_fd < 0)
			return err_set("cannot open %s: %s", path, strerror(errno));
		snprintf(lock_dir, sizeof(lock_dir), "%s", dir);
	}
	if (flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			return 0;
		return err_set("cannot lock %s/pipeline.lock: %s", dir, strerror(errno));
	}
	return 1;
}

int queue_wait(struct queue_ticket *t, void (*waiting)(void *arg, const char *holder), void *arg,
               const volatile sig_atomic_t *cancel)
{
	long long next_say = 0;
	int r;

	for (;;) {
		if (is_superseded(t))
			return QUEUE_SUPERSEDED;
		r = try_lock(t->dir);
		if (r < 0)
			return -1;
		if (r == 1) {
			lock_holders++;
			t->holds = true;
			if (lock_holders == 1 && ftruncate(lock_fd, 0) == 0)
				(void)!pwrite(lock_fd, t->run, strlen(t->run), 0);
			return 0;
		}
		if (cancel && *cancel)
			return QUEUE_CANCELLED;
		if (waiting && clock_now_ms() >= next_say) {
			char holder[256];

			read_holder(holder, sizeof(holder));
			waiting(arg, holder);
			next_say = clock_now_ms() + QUEUE_SAY_MS;
		}
		usleep(QUEUE_POLL_MS * 1000);
	}
}

void queue_leave(struct queue_ticket *t)
{
	char path[PATH_MAX + NAME_MAX + 16];

	if (!t)
		return;
	snprintf(path, sizeof(path), "%s/queue/%s", t->dir, t->ticket);
	unlink(path);
	if (t->holds && --lock_holders == 0) {
		if (ftruncate(lock_fd, 0) < 0) {
			/* the holder's name is only a hint for waiters */
		}
		flock(lock_fd, LOCK_UN);
	}
	free(t);
}
