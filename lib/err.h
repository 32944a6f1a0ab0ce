/* err: the per-thread "first cause" error message, as libgit2's git_error.
 *
 * Functions that fail set a one-line, lowercase message where the failure
 * happens and return a negative code; callers up the stack return the code
 * without overwriting the message, so the first cause survives. */
#ifndef SLIP_ERR_H
#define SLIP_ERR_H

#include <stdarg.h>

/* Longest message kept, including the terminating NUL; longer ones are cut. */
#define ERR_MAX 1024

/* Sets this thread's message from a printf format. Always returns -1, so a
 * failure site can write `return err_set("...", ...);`. The arguments may
 * include err_msg() itself, to add context in front of a cause. */
int err_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Like err_set, but keeps an existing message: for wrappers that want to add
 * a fallback without hiding the first cause. Returns -1. */
int err_set_if_empty(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Returns this thread's message (borrowed; valid until the next err_set or
 * err_clear on this thread), or "" when none is set. Never NULL. */
const char *err_msg(void);

/* Forgets this thread's message. */
void err_clear(void);

#endif
