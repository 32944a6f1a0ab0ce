/* clock: monotonic time for timeouts, deadlines and durations. */
#ifndef SLIP_CLOCK_H
#define SLIP_CLOCK_H

/* Milliseconds on CLOCK_MONOTONIC (an arbitrary start; only differences
 * mean anything). Never fails. */
long long clock_now_ms(void);

#endif
