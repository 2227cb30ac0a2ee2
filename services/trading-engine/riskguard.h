/* riskguard.h — checks before every entry intent; each denial has a name.
 * Exits (reduce-only) are never denied: they only lower risk.
 *
 *  TRADING_HALTED       the TradingPolicy does not allow new trades
 *  SYMBOL_DISALLOWED    the symbol is disallowed, or not in a non-empty allowed list
 *  LEVERAGE             leverage above risk.max_leverage
 *  RISK_PER_TRADE       size x leverage x stop distance above the policy's
 *                       max_risk_pct (and risk.max_risk_pct), in percent of equity
 *  MAX_OPEN_POSITIONS   open positions already at risk.max_open_positions
 *  TOTAL_EXPOSURE       margin in use plus this one would reach
 *                       risk.total_exposure_limit_pct of equity
 *  DAILY_DRAWDOWN       today's PnL at or below -risk.daily_dd_limit_pct */
#ifndef QT_RISKGUARD_H
#define QT_RISKGUARD_H

#include <stddef.h>

#define RISKGUARD_REASONS 7

typedef struct riskguard_limits {
    double max_leverage, max_risk_pct, total_exposure_limit_pct, daily_dd_limit_pct;
    int max_open_positions;
    /* from the TradingPolicy; allow=1 and max_policy_risk_pct=100 when none yet */
    int allow_new_trades;
    double max_policy_risk_pct;
    const char *const *allowed;    /* NULL-terminated, may be NULL or empty */
    const char *const *disallowed; /* NULL-terminated, may be NULL */
} riskguard_limits_t;

typedef struct riskguard_request {
    const char *symbol;
    double size_pct, leverage, stop_pct; /* stop_pct: stop distance as a fraction of price */
    int open_positions;
    double exposure_pct, daily_pnl_pct;
} riskguard_request_t;

/* NULL when allowed; otherwise the reason's name. detail explains it. */
const char *riskguard_check(const riskguard_limits_t *l, const riskguard_request_t *r, char *detail, size_t len);
/* The i-th reason name (0..RISKGUARD_REASONS-1), for metrics. */
const char *riskguard_reason(int i);

#endif
