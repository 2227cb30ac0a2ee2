/* riskguard.c — pre-trade risk checks (see riskguard.h). */
#include "riskguard.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const reasons[RISKGUARD_REASONS] = {"TRADING_HALTED", "SYMBOL_DISALLOWED", "LEVERAGE",
                                                       "RISK_PER_TRADE", "MAX_OPEN_POSITIONS", "TOTAL_EXPOSURE",
                                                       "DAILY_DRAWDOWN"};

const char *riskguard_reason(int i) { return (unsigned)i < RISKGUARD_REASONS ? reasons[i] : NULL; }

static int listed(const char *const *list, const char *s)
{
    for (int i = 0; list && list[i]; i++)
        if (strcmp(list[i], s) == 0) return 1;
    return 0;
}

const char *riskguard_check(const riskguard_limits_t *l, const riskguard_request_t *r, char *detail, size_t len)
{
    double risk_pct = r->size_pct * r->leverage * r->stop_pct * 100.0;
    double risk_cap = fmin(l->max_risk_pct, l->max_policy_risk_pct);
    double margin_pct = r->size_pct * 100.0;
    if (!l->allow_new_trades)
        return snprintf(detail, len, "the trading policy allows no new trades"), reasons[0];
    if (listed(l->disallowed, r->symbol) || (l->allowed && l->allowed[0] && !listed(l->allowed, r->symbol)))
        return snprintf(detail, len, "%s is not allowed by the trading policy", r->symbol), reasons[1];
    if (r->leverage > l->max_leverage)
        return snprintf(detail, len, "leverage %g above %g", r->leverage, l->max_leverage), reasons[2];
    if (risk_pct > risk_cap + 1e-12)
        return snprintf(detail, len, "risk %.4f%% of equity above %.4f%%", risk_pct, risk_cap), reasons[3];
    if (r->open_positions >= l->max_open_positions)
        return snprintf(detail, len, "%d open positions (max %d)", r->open_positions, l->max_open_positions), reasons[4];
    if (r->exposure_pct + margin_pct >= l->total_exposure_limit_pct)
        return snprintf(detail, len, "exposure %.2f%% + %.2f%% reaches %.2f%%", r->exposure_pct, margin_pct,
                        l->total_exposure_limit_pct), reasons[5];
    if (r->daily_pnl_pct <= -l->daily_dd_limit_pct)
        return snprintf(detail, len, "daily PnL %.2f%% at or below -%.2f%%", r->daily_pnl_pct, l->daily_dd_limit_pct),
               reasons[6];
    return NULL;
}
