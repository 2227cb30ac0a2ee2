/* equity.c — equity over event time (see equity.h). */
#include "equity.h"

#define DAY_MS 86400000LL
#define POINT_MS 60000

void equity_track(equity_t *q, int64_t t, double eq)
{
    int64_t day = t / DAY_MS;
    if (day > q->day) q->day = day, q->day_start = eq;
    if (eq > q->peak) q->peak = eq;
    if (q->n && t - q->t[(q->head + EQUITY_POINTS - 1) % EQUITY_POINTS] < POINT_MS) return;
    q->t[q->head] = t, q->v[q->head] = eq;
    q->head = (q->head + 1) % EQUITY_POINTS;
    if (q->n < EQUITY_POINTS) q->n++;
}

double equity_daily_pnl_pct(const equity_t *q, double eq)
{
    return q->day_start > 0 ? (eq - q->day_start) / q->day_start * 100.0 : 0;
}

double equity_drawdown_pct(const equity_t *q, double eq)
{
    return q->peak > 0 && eq < q->peak ? (q->peak - eq) / q->peak * 100.0 : 0;
}

void equity_point(const equity_t *q, int k, int64_t *t, double *v)
{
    int i = (q->head - q->n + k + EQUITY_POINTS) % EQUITY_POINTS;
    *t = q->t[i], *v = q->v[i];
}
