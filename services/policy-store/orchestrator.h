/* orchestrator.h — the Orchestrator Policy Engine: from market regime,
 * volatility, risk state, per-symbol performance, ensemble quality and
 * costs, the one TradingPolicy every service obeys. Pure computation plus
 * the stability mechanism (update interval, similarity); no I/O.
 *
 * Rules are applied in this order (docs/policy-store.md has the matrix):
 *  1. blocks, each returning a NO_NEW_TRADES policy at base risk/confidence:
 *     daily PnL <= -daily_dd_limit, EXTREME volatility, open positions >=
 *     max, exposure >= limit (the first that holds names the note);
 *  2. volatility HIGH: risk x0.5, confidence +0.03;
 *  3. regime: TRENDING with LOW/NORMAL vol: AGGRESSIVE, TREND_FOLLOW,
 *     confidence -0.03; RANGING: DEFENSIVE, FAST_TP, risk x0.7, confidence
 *     +0.05;
 *  4. losing streak >= limit: risk x0.3, DEFENSIVE, confidence at least
 *     base + 0.05;
 *  5. high spread or slippage: DEFENSIVE, confidence +0.03;
 *  6. ensemble quality < 0.40: confidence +0.05;
 *  7. BAD symbols go to disallowed_symbols.
 * risk_profile is REDUCED when max_risk_pct ends below the base. */
#ifndef QT_ORCHESTRATOR_H
#define QT_ORCHESTRATOR_H

#include "regime.h"

#include <jansson.h>
#include <stdint.h>

#define ORCH_MAX_SYMBOLS 64
#define ORCH_HISTORY 100

typedef struct orch_config {
    double base_confidence;      /* ORCH_BASE_CONFIDENCE 0.50 */
    double base_risk_pct;        /* ORCH_BASE_RISK_PCT 1.0 (percent) */
    double daily_dd_limit;       /* ORCH_DAILY_DD_LIMIT 3.0 (percent) */
    int losing_streak_limit;     /* ORCH_LOSING_STREAK_LIMIT 5 */
    int max_open_positions;      /* ORCH_MAX_OPEN_POSITIONS 8 */
    double total_exposure_limit; /* ORCH_TOTAL_EXPOSURE_LIMIT 15.0 (percent) */
    long update_interval_sec;    /* ORCH_POLICY_UPDATE_INTERVAL_SEC 60 (event time) */
    double similarity_keep;      /* ORCH_SIMILARITY_KEEP 0.98: keep the current policy at or above */
    double ensemble_quality_min; /* 0.40 */
    double spread_high_bps;      /* 10 */
    double slippage_high_bps;    /* 8 */
} orch_config_t;

typedef enum { PERF_NEUTRAL = 0, PERF_GOOD, PERF_BAD } perf_tag_t;

typedef struct orch_symbol {
    char symbol[24];
    double winrate, avg_r, cum_pnl;
    int trades;
    perf_tag_t tag;
} orch_symbol_t;

typedef struct orch_inputs {
    regime_t regime;        /* UNKNOWN counts as RANGING (defensive) */
    vol_level_t vol;        /* UNKNOWN counts as NORMAL */
    int risk_known;
    double daily_pnl_pct, drawdown_pct, exposure_pct;
    int losing_streak, open_positions;
    orch_symbol_t symbols[ORCH_MAX_SYMBOLS];
    int nsymbols;
    double ensemble_quality; /* 0..1, or < 0 when unknown */
    double spread_bps, slippage_bps; /* < 0 when unknown */
} orch_inputs_t;

typedef enum { PROFILE_NORMAL = 0, PROFILE_REDUCED, PROFILE_NO_NEW_TRADES } risk_profile_t;
typedef enum { ENTRY_NORMAL = 0, ENTRY_DEFENSIVE, ENTRY_AGGRESSIVE } entry_mode_t;
typedef enum { EXIT_TREND_FOLLOW = 0, EXIT_FAST_TP, EXIT_DEFENSIVE_TRAIL } exit_mode_t;

typedef struct trading_policy {
    int allow_new_trades;
    risk_profile_t risk_profile;
    double max_risk_pct, min_confidence;
    entry_mode_t entry_mode;
    exit_mode_t exit_mode;
    char allowed[ORCH_MAX_SYMBOLS][24];
    int nallowed;
    char disallowed[ORCH_MAX_SYMBOLS][24];
    int ndisallowed;
    char note[1024];
    int64_t event_time; /* ms; the input that produced it */
    int version;        /* 1, 2, ... per adopted policy */
} trading_policy_t;

typedef struct orch {
    orch_config_t cfg;
    trading_policy_t current;
    int has_current;
    int64_t last_update_ms; /* event time of the last adopted or kept evaluation */
} orch_t;

void orch_config_default(orch_config_t *c);
/* ORCH_* environment overrides; -1 with err naming the variable. */
int orch_config_env(orch_config_t *c, char *err, size_t errlen);

perf_tag_t orch_perf_tag(double winrate, double avg_r, int trades);
const char *perf_tag_name(perf_tag_t t);

/* The policy the rules give for these inputs, ignoring stability. */
void orch_compute(const orch_config_t *c, const orch_inputs_t *in, int64_t event_time, trading_policy_t *out);
/* 1.0 identical .. 0.0 opposite; allow and risk_profile weigh most. */
double orch_similarity(const trading_policy_t *a, const trading_policy_t *b);

/* Stability: evaluate the inputs at event_time. Adopts a new policy (returns 1,
 * o->current updated with the next version) when there is none yet, when force
 * is set, when the interval has passed and the candidate differs (similarity
 * below similarity_keep), or at once when the candidate blocks trading that the
 * current policy allows. Otherwise keeps the current one and returns 0. */
int orch_update(orch_t *o, const orch_inputs_t *in, int64_t event_time, int force);

/* The policy as the policy.trading.updated payload (new reference). */
json_t *orch_policy_json(const trading_policy_t *p);
/* Parse a payload back (for restoring from Redis); -1 if malformed. */
int orch_policy_from_json(const json_t *j, trading_policy_t *p);

#endif
