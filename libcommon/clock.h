/* clock.h — the process clock, a fault seam: tests can replace the time source.
 *
 * Wall time (epoch ms) is for event timestamps and logs; monotonic time is for
 * timeouts and latency. Rules that must replay deterministically use event time
 * carried in the events, never these. */
#ifndef QT_CLOCK_H
#define QT_CLOCK_H

#include <stdint.h>

typedef int64_t (*clock_source_fn)(void);

int64_t clock_wall_ms(void);  /* Unix epoch milliseconds */
int64_t clock_mono_us(void);  /* monotonic microseconds, arbitrary origin */
int64_t clock_mono_ms(void);  /* clock_mono_us() / 1000 */

/* Replace the wall clock (NULL restores the real one). For tests. */
void clock_set_wall_source(clock_source_fn fn);

#endif
