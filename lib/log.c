/* log: leveled diagnostics on stderr (see log.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "banned.h"

static int log_level = -1;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_set_level(enum log_level level)
{
	log_level = (int)level;
}

static void log_init(void)
{
	const char *s = getenv("SLIPWAY_LOG");

	log_level = LOG_INFO;
	if (!s)
		return;
	for (int i = 0; i < 4; i++)
		if (!strcmp(s, level_names[i]))
			log_level = i;
}

void log_write(enum log_level level, const char *func, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	if (log_level < 0)
		log_init();
	if ((int)level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s %s: %s\n", level_names[level], func, msg);
}
