/* queue: pipelines of one Remote run one at a time (DESIGN.md "Push
 * semantics"). The Remote's lock is an flock(2) on REPO/slipway/pipeline.lock,
 * held by the pipeline process that runs; whoever waits has a ticket file in
 * REPO/slipway/queue/ (its refname, run name and pid), so that a queued run
 * sees a newer push of the same ref and is superseded. Tickets of processes
 * that died are ignored and removed. The lock is taken once per process and
 * counted, so one push's several refs can hold it together. */
#ifndef SLIP_GITD_QUEUE_H
#define SLIP_GITD_QUEUE_H

#include <signal.h>

enum {
	QUEUE_SUPERSEDED = 1, /* a newer push of the same ref is queued */
	QUEUE_CANCELLED = 2,  /* *cancel became non-zero while waiting */
};

struct queue_ticket;

/* Queues run RUN_NAME for REFNAME of the repository at REPO_PATH. *OUT
 * belongs to the caller (queue_leave). Returns 0 or -1 with err_msg(). */
int queue_enter(struct queue_ticket **out, const char *repo_path, const char *refname,
                const char *run_name);

/* Waits until T holds the Remote's lock, polling every 200 ms; while
 * waiting calls WAITING (may be NULL) at once and then every 10 s with the
 * name of the run that holds the lock ("" when unknown). Returns 0 with the
 * lock held, QUEUE_SUPERSEDED when a ticket for the same ref that entered
 * later exists (then the lock is not held), QUEUE_CANCELLED, or -1 with
 * err_msg(). */
int queue_wait(struct queue_ticket *t, void (*waiting)(void *arg, const char *holder), void *arg,
               const volatile sig_atomic_t *cancel);

/* Removes T's ticket, releases the lock if T holds it (the last holder in
 * this process unlocks), and frees T. NULL is allowed. */
void queue_leave(struct queue_ticket *t);

#endif
