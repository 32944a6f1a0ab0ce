/* err: per-thread first-cause error messages (see err.h). */
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "banned.h"

static _Thread_local char err_buf[ERR_MAX];

/* Formats through a scratch buffer, so err_set("x: %s", err_msg()) can wrap
 * the current message. */
static int err_vset(const char *fmt, va_list ap)
{
	char tmp[ERR_MAX];

	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	memcpy(err_buf, tmp, sizeof(err_buf));
	return -1;
}

int err_set(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_vset(fmt, ap);
	va_end(ap);
	return -1;
}

int err_set_if_empty(const char *fmt, ...)
{
	va_list ap;

	if (err_buf[0])
		return -1;
	va_start(ap, fmt);
	err_vset(fmt, ap);
	va_end(ap);
	return -1;
}

const char *err_msg(void)
{
	return err_buf;
}

void err_clear(void)
{
	err_buf[0] = '\0';
}
