/* equity.h — the account's equity over event time: today's start (UTC days
 * of event time), the peak, and a curve of one point per minute for the
 * dashboard. Pure arithmetic; the equity itself comes from the ledger. */
#ifndef QT_EQUITY_H
#define QT_EQUITY_H

#include <stdint.h>

#define EQUITY_POINTS 1440 /* one per minute of event time: a day */

typedef struct equity {
    double peak, day_start;
    int64_t day; /* UTC day number of event time */
    int64_t t[EQUITY_POINTS];
    double v[EQUITY_POINTS];
    int n, head;
} equity_t;

/* equity_t starts zeroed. At event time t the equity is eq: a new day starts
 * today's PnL from here, the peak follows, the curve gets a point when a
 * minute passed since its last. */
void equity_track(equity_t *q, int64_t t, double eq);
/* Today's PnL and the drawdown from the peak, in percent (0 before any). */
double equity_daily_pnl_pct(const equity_t *q, double eq);
double equity_drawdown_pct(const equity_t *q, double eq);
/* The k-th point of the curve, oldest first (0 <= k < q->n). */
void equity_point(const equity_t *q, int k, int64_t *t, double *v);

#endif
