/* log: diagnostics of the modules programs share, one line each, tagged with
 * level and function (after OpenSSH's error_f). By default they go to stderr
 * as plain text; a program with its own log format installs a sink
 * (log_set_sink) so that its stderr holds one format. Messages are
 * lowercase, without a final full stop, and never contain secrets. */
#ifndef SLIP_LOG_H
#define SLIP_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* Longest message kept, in bytes with the terminating NUL; longer ones are
 * cut (possibly inside a UTF-8 character). */
#define LOG_MESSAGE_MAX 2048

/* Messages above this level are dropped. Default LOG_INFO; the environment
 * variable SLIPWAY_LOG=debug|info|warn|error sets it at the first call
 * unless log_set_level or log_set_sink was called before. */
void log_set_level(enum log_level level);

/* Receives each message that passes the level: ARG as given to
 * log_set_sink, the message's LEVEL, FUNC (the logging function's
 * __func__) and MESSAGE (formatted, without a newline, at most
 * LOG_MESSAGE_MAX - 1 bytes and not necessarily UTF-8). FUNC and MESSAGE
 * are borrowed for the call. A sink may be called from several threads at
 * once and must not call log_write itself. */
typedef void (*log_sink_fn)(void *arg, enum log_level level, const char *func, const char *message);

/* Sends the messages at LEVEL or more severe (LOG_ERROR .. LEVEL) to SINK,
 * called with ARG, instead of stderr; sets the level as log_set_level does,
 * so SLIPWAY_LOG is no longer read. SINK NULL restores the default:
 * "LEVEL FUNC: MESSAGE\n" on stderr, which builder, deployer and
 * kubectl-slipway keep. Not synchronised: call it before a second thread
 * may log (gitd installs gitd/event.h's event_log_sink at the start of
 * main). */
void log_set_sink(log_sink_fn sink, void *arg, enum log_level level);

/* Formats the message and hands it to the sink when LEVEL is enabled. Use
 * the macros below, which pass __func__. */
void log_write(enum log_level level, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(...) log_write(LOG_ERROR, __func__, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, __func__, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __func__, __VA_ARGS__)
#define log_debug(...) log_write(LOG_DEBUG, __func__, __VA_ARGS__)

#endif
