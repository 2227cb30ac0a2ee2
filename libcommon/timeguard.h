/* timeguard.h — an event time may not leap far ahead on one entry.
 *
 * A consumer that keeps state on a clock of event times (a symbol's bars, a
 * service's UTC day) takes every time after the last one it took. One entry
 * dated far ahead of that clock, yet behind the wall clock (a replay of 2024
 * with one row of today), would move the clock there and make every later
 * real entry look old. A guard refuses such a leap — more than the span
 * (QT_MAX_TIME_JUMP_MS, and at least four of the bar's intervals) after the
 * last time taken — until a second entry confirms it: one after the refused
 * time and within the span of it (the feed really did move on: an outage,
 * a restart after a long stop). The refused entry is the caller's to
 * dead-letter with the reason. */
#ifndef QT_TIMEGUARD_H
#define QT_TIMEGUARD_H

#include <stddef.h>
#include <stdint.h>

#define TGUARD_SPAN_MS (7LL * 86400000LL) /* QT_MAX_TIME_JUMP_MS's default */

/* t, the next time of a clock whose last time taken is last (0: none yet):
 * 0 when one entry may move the clock there (or t is not after last: the
 * caller's old entry), -1 for a leap with err naming both times and the span.
 * *held is the caller's memory of a refused leap (start at 0): a following
 * entry after it and within the span of it confirms the move (0). interval_ms
 * (0 if unknown) widens the span to four bars for long bars. */
int tguard_leap(int64_t last, int64_t *held, int64_t t, int64_t interval_ms, const char *what, char *err,
                size_t errlen);

/* The span for every guard of this process (svc_init sets it from
 * QT_MAX_TIME_JUMP_MS). */
void tguard_set_span_ms(int64_t ms);
int64_t tguard_span_ms(void);

#endif
