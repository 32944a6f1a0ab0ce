/* log: diagnostics on stderr, one line each, tagged with level and function
 * (after OpenSSH's error_f). Messages are lowercase, without a final full
 * stop, and never contain secrets. */
#ifndef SLIP_LOG_H
#define SLIP_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* Messages above this level are dropped. Default LOG_INFO; the environment
 * variable SLIPWAY_LOG=debug|info|warn|error sets it at the first call. */
void log_set_level(enum log_level level);

/* Writes "LEVEL FUNC: MESSAGE\n" to stderr when LEVEL is enabled. Use the
 * macros below, which pass __func__. */
void log_write(enum log_level level, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(...) log_write(LOG_ERROR, __func__, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, __func__, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __func__, __VA_ARGS__)
#define log_debug(...) log_write(LOG_DEBUG, __func__, __VA_ARGS__)

#endif
