/* Unit tests for lib/log's sink (log.h) and gitd's sink into its JSON event
 * log (gitd/event.h): where lib/log's messages go, and at which level. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>

#include "event.h"
#include "log.h"
#include "tap.h"

/* What the capturing sink last received. */
static struct {
	int calls;
	void *arg;
	enum log_level level;
	char func[64];
	char message[LOG_MESSAGE_MAX + 16];
} got;

static void capture(void *arg, enum log_level level, const char *func, const char *message)
{
	got.calls++;
	got.arg = arg;
	got.level = level;
	snprintf(got.func, sizeof(got.func), "%s", func);
	snprintf(got.message, sizeof(got.message), "%s", message);
}

/* stderr (fd 2) goes to a temporary file between stderr_begin and
 * stderr_end, which returns what was written (caller frees). */
static FILE *capture_file;
static int saved_fd = -1;

static void stderr_begin(void)
{
	fflush(stderr);
	capture_file = tmpfile();
	saved_fd = dup(2);
	if (!capture_file || saved_fd < 0 || dup2(fileno(capture_file), 2) < 0)
		abort();
}

static char *stderr_end(void)
{
	char *text = calloc(1, 65536);
	size_t n;

	fflush(stderr);
	dup2(saved_fd, 2);
	close(saved_fd);
	rewind(capture_file);
	n = text ? fread(text, 1, 65535, capture_file) : 0;
	if (text)
		text[n] = '\0';
	fclose(capture_file);
	return text;
}

static void log_something_at_info(void)
{
	log_info("plain %s", "text");
}

static void test_sink(void)
{
	int marker = 0;
	char *big = malloc(3 * LOG_MESSAGE_MAX);

	log_set_sink(capture, &marker, LOG_WARN);
	log_warn("disk %d%% full", 93);
	is_int(got.calls, 1, "a warning reaches the sink at level warn");
	ok(got.arg == &marker, "the sink gets the ARG it was installed with");
	is_int(got.level, LOG_WARN, "with its level");
	is_str(got.func, "test_sink", "with the logging function's name");
	is_str(got.message, "disk 93% full", "with the formatted message, no newline");
	log_info("not wanted");
	log_debug("not wanted either");
	is_int(got.calls, 1, "messages less severe than the sink's level are dropped");
	log_error("bad");
	ok(got.calls == 2 && got.level == LOG_ERROR, "more severe messages pass");
	log_set_level(LOG_DEBUG);
	log_debug("now wanted");
	ok(got.calls == 3 && got.level == LOG_DEBUG && !strcmp(got.message, "now wanted"),
	   "log_set_level changes the level of an installed sink");
	if (big) {
		memset(big, 'x', 3 * LOG_MESSAGE_MAX - 1);
		big[3 * LOG_MESSAGE_MAX - 1] = '\0';
		log_warn("%s", big);
		is_int(strlen(got.message), LOG_MESSAGE_MAX - 1,
		       "a long message is cut to LOG_MESSAGE_MAX - 1 bytes");
	}
	free(big);
}

static void test_default(void)
{
	char *text;

	log_set_sink(NULL, NULL, LOG_INFO);
	stderr_begin();
	log_something_at_info();
	log_debug("dropped");
	text = stderr_end();
	is_str(text, "info log_something_at_info: plain text\n",
	       "a NULL sink restores plain text on stderr");
	free(text);
}

/* Checks that LINE is one JSON log line of event "log" at LEVEL from FUNC
 * with MESSAGE. */
static void is_log_line(const char *line, const char *level, const char *func, const char *message,
                        const char *what)
{
	json_error_t jerr;
	json_t *j = json_loads(line, 0, &jerr);
	const char *ev = json_string_value(json_object_get(j, "event"));
	const char *lv = json_string_value(json_object_get(j, "level"));
	const char *fn = json_string_value(json_object_get(j, "func"));
	const char *msg = json_string_value(json_object_get(j, "message"));

	ok(j && json_object_get(j, "time") && ev && !strcmp(ev, "log") && lv &&
	       !strcmp(lv, level) && fn && !strcmp(fn, func) && msg && !strcmp(msg, message),
	   "%s", what);
	if (!j || !msg)
		printf("#   line: %s\n", line);
	json_decref(j);
}

static void test_event_sink(void)
{
	char *text, *nl;

	log_set_sink(event_log_sink, NULL, LOG_INFO);
	event_set_level("warn");
	stderr_begin();
	log_info("below the event level");
	log_warn("cannot remove '%s': %s", "q\xff", "Permission denied");
	text = stderr_end();
	nl = text ? strchr(text, '\n') : NULL;
	ok(nl && nl[1] == '\0', "event_set_level filters lib/log: one line of two");
	if (nl) {
		*nl = '\0';
		is_log_line(
		    text, "warn", "test_event_sink", "cannot remove 'q?': Permission denied",
		    "the line is JSON: event log, level, func, message (not UTF-8 made lossy)");
	}
	free(text);

	event_set_level("debug");
	stderr_begin();
	log_debug("watch %s: retrying", "remotes");
	text = stderr_end();
	nl = text ? strchr(text, '\n') : NULL;
	ok(nl && nl[1] == '\0', "at event level debug, lib/log's debug messages are written");
	if (nl) {
		*nl = '\0';
		is_log_line(text, "debug", "test_event_sink", "watch remotes: retrying",
		            "as a debug line");
	}
	free(text);

	event_set_level("error");
	stderr_begin();
	log_warn("dropped");
	log_error("kept");
	text = stderr_end();
	ok(text && !strstr(text, "dropped") && strstr(text, "\"message\":\"kept\"") &&
	       strchr(text, '\n') == strrchr(text, '\n'),
	   "at event level error, only lib/log's errors are written");
	free(text);
	log_set_sink(NULL, NULL, LOG_INFO);
}

int main(void)
{
	test_sink();
	test_default();
	test_event_sink();
	return tap_done();
}
