/* Unit tests: an event-time clock does not leap on one entry (timeguard.h). */
#include "check.h"
#include "timeguard.h"

#include <string.h>

#define DAY 86400000LL
#define T0 1704067200000LL /* 2024-01-01 */

TEST(a_clock_moves_on_near_times_and_refuses_a_leap_until_confirmed)
{
    char err[256] = "";
    int64_t held = 0;
    CHECK_EQ(tguard_leap(0, &held, T0, 60000, "open_time", err, sizeof err), 0); /* nothing taken yet */
    CHECK_EQ(tguard_leap(T0, &held, T0 + 60000, 60000, "open_time", err, sizeof err), 0);
    CHECK_EQ(tguard_leap(T0, &held, T0 + 6 * DAY, 60000, "open_time", err, sizeof err), 0); /* an outage of 6 days */
    CHECK_EQ(tguard_leap(T0, &held, T0 - 60000, 60000, "open_time", err, sizeof err), 0);   /* old: the caller's */
    /* a row of two years later in a replay of 2024: refused, and the replay goes on */
    CHECK_EQ(tguard_leap(T0, &held, T0 + 700 * DAY, 60000, "open_time", err, sizeof err), -1);
    CHECK_CONTAINS(err, "more than QT_MAX_TIME_JUMP_MS=604800000");
    CHECK_CONTAINS(err, "open_time 1764547200000");
    CHECK_EQ(tguard_leap(T0, &held, T0 + 60000, 60000, "open_time", err, sizeof err), 0);
    CHECK_EQ(held, 0);
    /* the feed really moved on (a long stop): the second bar after it confirms */
    CHECK_EQ(tguard_leap(T0, &held, T0 + 30 * DAY, 60000, "open_time", err, sizeof err), -1);
    CHECK_EQ(tguard_leap(T0, &held, T0 + 30 * DAY, 60000, "open_time", err, sizeof err), -1); /* the same again */
    CHECK_EQ(tguard_leap(T0, &held, T0 + 30 * DAY + 60000, 60000, "open_time", err, sizeof err), 0);
    /* two leaps far apart do not confirm each other */
    held = 0;
    CHECK_EQ(tguard_leap(T0, &held, T0 + 30 * DAY, 60000, "t", err, sizeof err), -1);
    CHECK_EQ(tguard_leap(T0, &held, T0 + 60 * DAY, 60000, "t", err, sizeof err), -1);
}

TEST(long_bars_widen_the_span_and_the_span_is_configurable)
{
    char err[256];
    int64_t held = 0;
    CHECK_EQ(tguard_leap(T0, &held, T0 + 31 * DAY, 30 * DAY, "open_time", err, sizeof err), 0); /* monthly bars */
    tguard_set_span_ms(DAY);
    CHECK_EQ(tguard_span_ms(), DAY);
    CHECK_EQ(tguard_leap(T0, &held, T0 + 2 * DAY, 60000, "open_time", err, sizeof err), -1);
    CHECK_EQ(tguard_leap(T0, &held, T0 + 2 * DAY, DAY, "open_time", err, sizeof err), 0); /* daily bars: 4 days */
    tguard_set_span_ms(0);
    CHECK_EQ(tguard_span_ms(), TGUARD_SPAN_MS);
}

CHECK_MAIN()
