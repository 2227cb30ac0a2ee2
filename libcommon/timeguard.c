/* timeguard.c — see timeguard.h. */
#include "timeguard.h"

#include <stdio.h>

static int64_t tguard_span = TGUARD_SPAN_MS;

void tguard_set_span_ms(int64_t ms) { tguard_span = ms > 0 ? ms : TGUARD_SPAN_MS; }
int64_t tguard_span_ms(void) { return tguard_span; }

int tguard_leap(int64_t last, int64_t *held, int64_t t, int64_t interval_ms, const char *what, char *err,
                size_t errlen)
{
    int64_t span = interval_ms > 0 && 4 * interval_ms > tguard_span ? 4 * interval_ms : tguard_span;
    if (!last || t <= last) return 0;
    if (t - last <= span || (*held && t > *held && t - *held <= span)) { /* near, or a second entry says so */
        *held = 0;
        return 0;
    }
    if (!*held || t < *held || t - *held > span) *held = t;
    snprintf(err, errlen,
             "%s %lld is %lld ms after the last one taken (%lld), more than QT_MAX_TIME_JUMP_MS=%lld: one entry does "
             "not move the clock that far (a following entry would confirm the move)",
             what, (long long)t, (long long)(t - last), (long long)last, (long long)span);
    return -1;
}
