/* thresholds.h — adaptive thresholds (seed 004): from the recent closed
 * trades, the minimum confidence and risk limits the trading-engine uses.
 *
 * Each outcome (pnl in percent, event time) enters a window of the last
 * THR_WINDOW. An adaptation is evaluated once at least min_trades outcomes
 * were seen and at most once per interval of event time. With win rate w
 * and profit factor pf (gross wins / gross losses) over the window:
 *   poor      w < 0.40 or pf < 0.8   → conservative mode on
 *   recovered w ≥ 0.50 and pf ≥ 1.0 → conservative mode off
 *   conservative: min_confidence = base + 0.10, max_position_size =
 *                 base × 0.5, stop_loss_multiplier = base × 0.8 (tighter)
 *   strong (w ≥ 0.60 and pf ≥ 1.5, not conservative): min_confidence =
 *                 max(0.5, base − 0.05), limits at base
 *   otherwise: every value at its base.
 * The result says whether the values or the mode changed, with the reason. */
#ifndef QT_THRESHOLDS_H
#define QT_THRESHOLDS_H

#include <jansson.h>
#include <stdint.h>

#define THR_WINDOW 20

typedef struct thr_config {
    double base_confidence, base_max_position, base_sl_multiplier;
    long min_trades;
    int64_t interval_ms;
} thr_config_t;

typedef struct thr {
    thr_config_t cfg;
    double pnl[THR_WINDOW];
    int n, i;
    long total, adaptations;
    int64_t last_eval; /* event time of the last evaluation, 0 = never */
    int conservative;
    double min_confidence, max_position, sl_multiplier, win_rate, profit_factor;
    char reason[256];
} thr_t;

/* ML_CONFIDENCE_THRESHOLD 0.6, ML_MAX_POSITION_SIZE 0.02,
 * ML_STOP_LOSS_MULTIPLIER 1.5, ML_MIN_TRADES_FOR_ADAPTATION 10,
 * ML_ADAPTATION_INTERVAL 3600 (seconds). -1 with err naming the variable. */
int thr_config_env(thr_config_t *c, char *err, size_t errlen);
void thr_init(thr_t *t, const thr_config_t *c);
/* One closed trade. Returns 1 when an evaluation changed the values or the
 * mode (t->reason says why), else 0. */
int thr_observe(thr_t *t, double pnl_pct, int64_t event_time);
/* Shared state as JSON (new reference) and back (config kept); -1 on bad JSON. */
json_t *thr_to_json(const thr_t *t);
int thr_from_json(thr_t *t, const json_t *j);

#endif
