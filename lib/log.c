/* log: leveled diagnostics, to stderr or a program's sink (see log.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "banned.h"

static int log_level = -1;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

static void log_to_stderr(void *arg, enum log_level level, const char *func, const char *message)
{
	fprintf(stderr, "%s %s: %s\n", level_names[level], func, message);
}

static log_sink_fn log_sink = log_to_stderr;
static void *log_sink_arg;

void log_set_level(enum log_level level)
{
	log_level = (int)level;
}

void log_set_sink(log_sink_fn sink, void *arg, enum log_level level)
{
	log_sink = sink ? sink : log_to_stderr;
	log_sink_arg = sink ? arg : NULL;
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
	char msg[LOG_MESSAGE_MAX];
	va_list ap;

	if (log_level < 0)
		log_init();
	if ((int)level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_sink(log_sink_arg, level, func, msg);
}
