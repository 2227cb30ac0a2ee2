/* env.h — the trading environment the RL trainer replays bars through: the
 * same feature code as live (libcommon/obs), and the paper venue's costs and
 * sizing: fills at the bar's close with 2 bps slippage and a 4 bps fee,
 * SMALL / LARGE = 1% / 2% of equity as margin at 3x leverage. The action is
 * taken at the close of bar t; the reward is the equity change to the close
 * of bar t+1, in percent of the starting equity. */
#ifndef QT_ENV_H
#define QT_ENV_H

#include "kline.h"
#include "obs.h"

typedef struct env {
    const kline_t *bars;
    long n, t, end;
    obs_state_t st;
    double eq0, cash, qty, entry; /* qty signed */
    int64_t opened_at;
    double fee_bps, slip_bps, leverage, small, large;
    long trades;
    double fees;
} env_t;

#define ENV_WARMUP 60

void env_init(env_t *e, const kline_t *bars, long n);
/* Start an episode at bar start (features warmed on the bars before it). */
void env_reset(env_t *e, long start, long len);
void env_observe(const env_t *e, float obs[64]);
/* Take action (0..5: FLAT, LONG_SMALL, LONG_LARGE, SHORT_SMALL, SHORT_LARGE,
 * HOLD) and move to the next bar; returns the reward, *done at the end. */
double env_step(env_t *e, int action, int *done);
double env_equity(const env_t *e);

#endif
