/* clock.c — wall and monotonic clocks with a replaceable wall source. */
#include "clock.h"

#include <time.h>

static clock_source_fn clock_wall_override;

int64_t clock_wall_ms(void)
{
    if (clock_wall_override) return clock_wall_override();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t clock_mono_ms(void) { return clock_mono_us() / 1000; }

void clock_set_wall_source(clock_source_fn fn) { clock_wall_override = fn; }
