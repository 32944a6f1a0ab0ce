/* event: JSON log lines (see event.h). */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "event.h"
#include "jsontext.h"
#include "banned.h"

static int min_level = 1;

static int level_rank(const char *level)
{
	static const char *const names[] = {"debug", "info", "warn", "error"};

	for (int i = 0; i < 4; i++)
		if (!strcmp(level, names[i]))
			return i;
	return -1;
}

int event_set_level(const char *level)
{
	int r = level_rank(level);

	if (r < 0)
		return -1;
	min_level = r;
	log_set_level((enum log_level)(LOG_DEBUG - r)); /* lib/log counts the other way */
	return 0;
}

void event_log_sink(void *arg, enum log_level level, const char *func, const char *message)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};

	if ((unsigned)level > LOG_DEBUG)
		level = LOG_ERROR;
	event_log(names[level], "log", "{s:s, s:o}", "func", func, "message",
	          jsontext_lossy(message, SIZE_MAX));
}

void event_log(const char *level, const char *event, const char *format, ...)
{
	char stamp[CLOCK_RFC3339_SIZE];
	struct timespec ts;
	json_t *obj = NULL, *fields = NULL;
	char *line = NULL;
	json_error_t jerr;
	va_list ap;

	if (level_rank(level) < min_level) {
		/* a line not written still owns the values handed to it with "o" */
		if (format && strchr(format, 'o')) {
			va_start(ap, format);
			json_decref(json_vpack_ex(&jerr, 0, format, ap));
			va_end(ap);
		}
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	clock_format_rfc3339_ms(stamp, &ts);
	obj = json_pack("{s:s, s:s, s:s}", "time", stamp, "level", level, "event", event);
	if (obj && format) {
		va_start(ap, format);
		fields = json_vpack_ex(&jerr, 0, format, ap);
		va_end(ap);
		if (fields)
			json_object_update(obj, fields);
		else
			json_object_set_new(obj, "log_error", json_string(jerr.text));
	}
	if (obj)
		line = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (line) {
		size_t n = strlen(line);

		line[n] = '\n'; /* the NUL becomes the newline: one write */
		if (write(2, line, n + 1) < 0) {
			/* nowhere left to report it */
		}
		line[n] = '\0';
	} else {
		static const char fallback[] = "{\"level\":\"error\",\"event\":\"log_failed\"}\n";

		if (write(2, fallback, sizeof(fallback) - 1) < 0) {
			/* as above */
		}
	}
	free(line);
	json_decref(fields);
	json_decref(obj);
}
