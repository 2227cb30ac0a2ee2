/* decide.h — the decision for one joined (symbol, bar) and the intent it
 * asks for: the live rules (live.h), the rate limit and RiskGuard in the
 * order the seed gives them. Pure: it returns what should be published and
 * recorded; the engine publishes.
 *
 * Inputs are the join, the policy view (rl_v3.live.*, risk.*, the
 * TradingPolicy), the ML service's adjusted threshold and risk limits, the
 * symbol's position and what holds it. */
#ifndef QT_DECIDE_H
#define QT_DECIDE_H

#include "intents.h"
#include "joins.h"
#include "live.h"
#include "policyview.h"
#include "riskguard.h"

#include <stddef.h>

/* From ml.threshold.adjusted and ml.risk.limit.update. */
typedef struct ml_limits {
    double threshold, max_pos, sl_mult;
    int conservative;
} ml_limits_t;

#define ML_LIMITS_DEFAULT {0, 0.02, 1.5, 0}

/* The engine's own sizing (QT_* settings). */
typedef struct decide_sizes {
    double leverage, size_small, size_large, stop_loss_pct;
} decide_sizes_t;

/* What the decision needs beyond the join. */
typedef struct decide_in {
    const policyview_t *pv;
    const ml_limits_t *ml;
    const decide_sizes_t *sizes;
    const char *symbol;
    double last_close;      /* 0 when no price yet */
    int position_dir;       /* the position, or the unsettled entry that will be it */
    double position_qty;    /* |qty| of the open position, 0 when none */
    int exit_held;          /* an exit of the symbol is not yet filled */
    live_rate_t *rate;      /* rolling hour of entries (read only here) */
    int open_positions;
    double exposure_pct, daily_pnl_pct;
} decide_in_t;

typedef struct decision {
    live_decision_t live;
    const char *outcome;     /* static */
    const char *reason;      /* RiskGuard's denial, or NULL */
    char detail[200];
    int want_intent;         /* publish req */
    intent_req_t req;
} decision_t;

live_mode_t decide_mode(const policyview_t *pv);
int decide_enabled(const policyview_t *pv); /* rl_v3.live.enabled, true unless false */
/* The effective threshold: the configured one, the ML service's adjusted
 * one and the TradingPolicy's, whichever is highest. */
double decide_threshold(const policyview_t *pv, const ml_limits_t *ml);

/* Decide the join j for in. out->live.kind LIVE_NONE: nothing to record. */
void decide_bar(const join_t *j, const decide_in_t *in, decision_t *out);

#endif
