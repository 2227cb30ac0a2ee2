/* env.c — replayed bars with the paper venue's costs (see env.h). */
#include "env.h"

#include <math.h>
#include <string.h>

void env_init(env_t *e, const kline_t *bars, long n)
{
    memset(e, 0, sizeof *e);
    e->bars = bars, e->n = n;
    e->fee_bps = 4, e->slip_bps = 2, e->leverage = 3, e->small = 0.01, e->large = 0.02;
}

double env_equity(const env_t *e)
{
    double c = e->bars[e->t].close;
    return e->cash + (e->qty ? (c - e->entry) * e->qty : 0);
}

void env_reset(env_t *e, long start, long len)
{
    if (start < ENV_WARMUP) start = ENV_WARMUP;
    obs_init(&e->st);
    for (long i = start - ENV_WARMUP; i <= start; i++) obs_update(&e->st, e->bars[i].high, e->bars[i].low, e->bars[i].close);
    e->t = start;
    e->end = start + len < e->n - 1 ? start + len : e->n - 1;
    e->eq0 = e->cash = 10000;
    e->qty = e->entry = 0;
    e->trades = 0, e->fees = 0;
}

void env_observe(const env_t *e, float obs[64])
{
    position_info_t pos = {0, 0, 0, 0};
    if (e->qty) {
        double c = e->bars[e->t].close, eq = env_equity(e);
        pos.side = e->qty > 0 ? 1 : -1;
        pos.size = eq > 0 ? fabs(e->qty) * e->entry / e->leverage / eq : 0;
        pos.upnl_pct = (c - e->entry) / e->entry * 100 * pos.side;
        pos.hours = (double)(e->bars[e->t].open_time - e->opened_at) / 3600000.0;
    }
    obs_build(&e->st, e->qty ? &pos : NULL, obs);
}

/* Trade to a signed target quantity at the close, paying slippage and fees. */
static void env_trade_to(env_t *e, double target)
{
    double c = e->bars[e->t].close, d = target - e->qty;
    if (fabs(d) < 1e-12) return;
    double px = c * (1 + (d > 0 ? 1 : -1) * e->slip_bps / 1e4), fee = fabs(d) * px * e->fee_bps / 1e4;
    if (e->qty && (target == 0 || (target > 0) != (e->qty > 0))) { /* close the old position */
        e->cash += (px - e->entry) * e->qty;
        e->qty = 0;
    }
    if (target != 0 && e->qty == 0) e->entry = px, e->opened_at = e->bars[e->t].open_time;
    e->qty = target;
    e->cash -= fee;
    e->fees += fee;
    e->trades++;
}

double env_step(env_t *e, int action, int *done)
{
    static const int dir[6] = {0, 1, 1, -1, -1, 0};
    double before = env_equity(e);
    if (action != 5) { /* HOLD keeps whatever is open */
        double size = (action == 2 || action == 4) ? e->large : e->small, c = e->bars[e->t].close;
        double target = action == 0 ? 0 : dir[action] * before * size * e->leverage / c;
        int same = e->qty && dir[action] == (e->qty > 0 ? 1 : -1);
        if (!same || action == 0) env_trade_to(e, target); /* same direction: keep the position */
    }
    e->t++;
    obs_update(&e->st, e->bars[e->t].high, e->bars[e->t].low, e->bars[e->t].close);
    *done = e->t >= e->end;
    return (env_equity(e) - before) / e->eq0 * 100.0;
}
