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

void obs_init(obs_state_t *f);
/* Feed a closed bar; -1 (ignored) for an invalid one. */
int obs_update(obs_state_t *f, double high, double low, double close);
/* The observation for the latest bar; pos may be NULL (flat). */
void obs_build(const obs_state_t *f, const position_info_t *pos, float obs[FEATURES_DIM]);

#endif
