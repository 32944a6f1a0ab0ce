/* duration: Go-style durations on command lines ("90s", "5m", "1h30m"), as
 * kubectl's --timeout flags take them. */
#ifndef SLIP_DURATION_H
#define SLIP_DURATION_H

/* Parses S ("90s", "5m", "1h30m", "1500ms", or plain seconds) into
 * milliseconds. Returns the value, or -1 when S is empty, malformed or longer
 * than 30 days. */
long duration_parse_ms(const char *s);

#endif
