/* decide.c — one decision per joined (symbol, bar) (see decide.h). */
#include "decide.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

live_mode_t decide_mode(const policyview_t *pv)
{
    live_mode_t m = MODE_SHADOW;
    live_mode_parse(policyview_str(pv, "rl_v3.live.mode", NULL), &m);
    return m;
}

int decide_enabled(const policyview_t *pv) { return policyview_bool(pv, "rl_v3.live.enabled", 1); }

double decide_threshold(const policyview_t *pv, const ml_limits_t *ml)
{
    double t = fmax(policyview_num(pv, "rl_v3.live.min_confidence", 0.6), ml->threshold);
    const json_t *pc = policyview_trading(pv, "min_confidence");
    return json_is_number(pc) ? fmax(t, json_number_value(pc)) : t;
}

/* RiskGuard on an entry; NULL when allowed. */
static const char *decide_riskguard(const decide_in_t *in, double size_pct, char *detail, size_t len)
{
    const char *allowed[65] = {NULL}, *disallowed[65] = {NULL};
    size_t i;
    json_t *v;
    const policyview_t *pv = in->pv;
    json_array_foreach(policyview_trading(pv, "allowed_symbols"), i, v) if (i < 64) allowed[i] = json_string_value(v);
    json_array_foreach(policyview_trading(pv, "disallowed_symbols"), i, v) if (i < 64) disallowed[i] = json_string_value(v);
    const json_t *allow = policyview_trading(pv, "allow_new_trades");
    const json_t *mr = policyview_trading(pv, "max_risk_pct");
    riskguard_limits_t l = {policyview_num(pv, "risk.max_leverage", 5), policyview_num(pv, "risk.max_risk_pct", 2.0),
                            policyview_num(pv, "risk.total_exposure_limit_pct", 15.0),
                            policyview_num(pv, "risk.daily_dd_limit_pct", 3.0),
                            (int)policyview_num(pv, "risk.max_open_positions", 8), !json_is_false(allow),
                            json_is_number(mr) ? json_number_value(mr) : 100.0, allowed, disallowed};
    riskguard_request_t r = {in->symbol,       size_pct,         in->sizes->leverage,
                             in->sizes->stop_loss_pct / 100.0 * in->ml->sl_mult, in->open_positions,
                             in->exposure_pct, in->daily_pnl_pct};
    return riskguard_check(&l, &r, detail, len);
}

/* An entry: the price, the rate limit and RiskGuard, in this order. */
static void decide_entry(const join_t *j, const decide_in_t *in, const char *mname, decision_t *out)
{
    const live_decision_t *d = &out->live;
    int max_tph = (int)policyview_num(in->pv, "rl_v3.live.max_trades_per_hour", 10);
    if (!(in->last_close > 0)) {
        out->outcome = "NO_PRICE";
    } else if (!live_rate_allows(in->rate, j->event_time, max_tph)) {
        out->outcome = "RATE_LIMITED";
    } else if ((out->reason = decide_riskguard(in, d->size_pct, out->detail, sizeof out->detail))) {
        out->outcome = "DENIED";
    } else {
        out->want_intent = 1;
        out->req = (intent_req_t){d->dir, rl_action_name(d->action), d->size_pct, d->confidence, mname,
                                  d->source_tag, 0, in->last_close};
    }
}

void decide_bar(const join_t *j, const decide_in_t *in, decision_t *out)
{
    live_mode_t mode = decide_mode(in->pv);
    live_cfg_t c = {decide_enabled(in->pv), mode, decide_threshold(in->pv, in->ml), in->sizes->size_small,
                    in->sizes->size_large, in->ml->max_pos, policyview_bool(in->pv, "rl_v3.live.flat_closes", 0)};
    const char *mname = mode == MODE_HYBRID ? "HYBRID" : "PRIMARY";
    memset(out, 0, sizeof *out);
    live_decide(&c, &j->rl, &j->ens, in->position_dir, &out->live);
    out->outcome = out->live.outcome;
    if (out->live.kind == LIVE_ENTRY) decide_entry(j, in, mname, out);
    else if (out->live.kind == LIVE_EXIT && !in->exit_held && in->position_qty > 0) {
        out->want_intent = 1;
        out->req = (intent_req_t){in->position_dir > 0 ? -1 : 1, "CLOSE", 0, out->live.confidence, mname,
                                  out->live.source_tag, in->position_qty, in->last_close};
    }
}
