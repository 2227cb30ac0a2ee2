/* obs.h — per-symbol feature state and the 64-dim observation of
 * proto/feature_layout.h, shared by live services and trainers. */
#ifndef QT_OBS_H
#define QT_OBS_H

#include "feature_layout.h"
#include "indicators.h"

#include <stdint.h>

typedef struct obs_state {
    indicators_t ind;
    double last_high, last_low;
} obs_state_t;

typedef struct position_info {
    int side;         /* -1, 0, 1 */
    double size;      /* margin / equity */
    double upnl_pct;  /* unrealized PnL / entry notional x 100 */
    double hours;     /* since the position opened, event time */
} position_info_t;

/* Bars after which every window of the observation is full: the longest is
 * the volatility regime's (REGIME_VOL_WARMUP); MACD's signal needs 34, ADX
 * 28, the 20 lagged returns 21. Before it a signal service decides nothing
 * (warmup.h): features of windows not yet full are zeros. */
#define OBS_WARMUP REGIME_VOL_WARMUP

void obs_init(obs_state_t *f);
/* Inputs of the observation whose windows are not yet full (0 once warm,
 * for a market that moves: a price that never changes keeps its volatility
 * level unknown). */
int obs_missing(const obs_state_t *f);
/* Feed a closed bar; -1 (ignored) for an invalid one. */
int obs_update(obs_state_t *f, double high, double low, double close);
/* The observation for the latest bar; pos may be NULL (flat). */
void obs_build(const obs_state_t *f, const position_info_t *pos, float obs[FEATURES_DIM]);

#endif
