/* inputs.c — orchestrator inputs from events (see inputs.h). */
#include "inputs.h"
#include "actions.h"
#include "symtab.h"

#include <math.h>
#include <string.h>

void inputs_init(inputs_t *in) { memset(in, 0, sizeof *in); }

static void ring_push(ring_t *r, double v)
{
    r->v[r->i] = v;
    r->i = (r->i + 1) % INPUTS_WINDOW;
    if (r->n < INPUTS_WINDOW) r->n++;
}

static double ring_mean(const ring_t *r)
{
    double s = 0;
    for (int i = 0; i < r->n; i++) s += r->v[i];
    return r->n ? s / r->n : -1;
}

_Static_assert(offsetof(sym_input_t, symbol) == 0, "symtab: the symbol comes first");

static sym_input_t *inputs_sym(inputs_t *in, const char *symbol)
{
    int created;
    sym_input_t *s = SYMTAB_SLOT(in->syms, &in->nsyms, ORCH_MAX_SYMBOLS, symbol, &created);
    if (created) regime_init(&s->regime);
    return s;
}

static double num(const json_t *o, const char *k) { return json_number_value(json_object_get(o, k)); }

int inputs_on_bar(inputs_t *in, const json_t *bar)
{
    if (!json_is_true(json_object_get(bar, "closed"))) return 0; /* only final bars */
    sym_input_t *s = inputs_sym(in, json_string_value(json_object_get(bar, "symbol")));
    if (!s) return -1;
    regime_update(&s->regime, num(bar, "high"), num(bar, "low"), num(bar, "close"));
    return 0;
}

void inputs_on_performance(inputs_t *in, const json_t *p)
{
    in->risk_known = 1;
    in->daily_pnl_pct = num(p, "daily_pnl_pct");
    in->drawdown_pct = num(p, "drawdown_pct");
    in->exposure_pct = num(p, "exposure_pct");
    in->losing_streak = (int)json_integer_value(json_object_get(p, "losing_streak"));
    in->open_positions = (int)json_integer_value(json_object_get(p, "open_positions"));
}

int inputs_on_closed(inputs_t *in, const json_t *c)
{
    sym_input_t *s = inputs_sym(in, json_string_value(json_object_get(c, "symbol")));
    if (!s) return -1;
    double pnl = num(c, "pnl");
    s->pnls[s->ipnl] = pnl;
    s->ipnl = (s->ipnl + 1) % INPUTS_WINDOW;
    if (s->npnl < INPUTS_WINDOW) s->npnl++;
    s->cum_pnl += pnl;
    return 0;
}

void inputs_on_outcome(inputs_t *in, const json_t *o) { ring_push(&in->outcomes, num(o, "pnl") > 0 ? 1.0 : 0.0); }

void inputs_on_execution(inputs_t *in, const json_t *e)
{
    double price = num(e, "price"), ref = num(e, "ref_price");
    const char *side = json_string_value(json_object_get(e, "side"));
    if (ref > 0 && price > 0 && side) { /* paying more than the reference is positive slippage */
        double bps = (price - ref) / ref * 1e4;
        ring_push(&in->slippage, strcmp(side, PROTO_SIDE_BUY) == 0 ? bps : -bps);
    }
    if (json_is_number(json_object_get(e, "spread_bps"))) ring_push(&in->spread, num(e, "spread_bps"));
}

void inputs_reset_daily(inputs_t *in) { in->daily_pnl_pct = 0; }

void inputs_gap(inputs_t *in)
{
    for (int i = 0; i < in->nsyms; i++) regime_init(&in->syms[i].regime);
}

/* Win rate and average R (mean win / mean |loss|) of a symbol's window. */
static void inputs_perf(const sym_input_t *s, orch_symbol_t *o)
{
    double wins = 0, losses = 0;
    int nw = 0, nl = 0;
    for (int i = 0; i < s->npnl; i++) {
        if (s->pnls[i] > 0) wins += s->pnls[i], nw++;
        else if (s->pnls[i] < 0) losses -= s->pnls[i], nl++;
    }
    snprintf(o->symbol, sizeof o->symbol, "%s", s->symbol);
    o->trades = s->npnl;
    o->winrate = s->npnl ? (double)nw / s->npnl : 0;
    if (nw && nl) o->avg_r = (wins / nw) / (losses / nl);
    else o->avg_r = nw ? 10.0 : 0.0; /* no losses yet: capped; no wins: 0 */
    o->cum_pnl = s->cum_pnl;
    o->tag = orch_perf_tag(o->winrate, o->avg_r, o->trades);
}

void inputs_build(const inputs_t *in, orch_inputs_t *out)
{
    int trending = 0, known = 0;
    memset(out, 0, sizeof *out);
    out->vol = VOL_UNKNOWN;
    for (int i = 0; i < in->nsyms; i++) {
        const sym_input_t *s = &in->syms[i];
        regime_t r = regime_trend(&s->regime);
        vol_level_t v = regime_vol(&s->regime);
        if (r != REGIME_UNKNOWN) known++, trending += r == REGIME_TRENDING;
        if (v > out->vol) out->vol = v; /* the most volatile symbol sets the level */
        inputs_perf(s, &out->symbols[out->nsymbols++]);
    }
    out->regime = !known ? REGIME_UNKNOWN : (2 * trending > known ? REGIME_TRENDING : REGIME_RANGING);
    out->risk_known = in->risk_known;
    out->daily_pnl_pct = in->daily_pnl_pct;
    out->drawdown_pct = in->drawdown_pct;
    out->exposure_pct = in->exposure_pct;
    out->losing_streak = in->losing_streak;
    out->open_positions = in->open_positions;
    out->ensemble_quality = in->outcomes.n >= 10 ? ring_mean(&in->outcomes) : -1;
    out->slippage_bps = ring_mean(&in->slippage);
    out->spread_bps = ring_mean(&in->spread);
}

/* ---------- checkpoint ---------- */

static json_t *ring_json(const ring_t *r)
{
    json_t *a = json_array();
    for (int k = 0; k < r->n; k++) /* oldest first */
        json_array_append_new(a, json_real(r->v[(r->i - r->n + k + INPUTS_WINDOW) % INPUTS_WINDOW]));
    return a;
}

static void ring_from(ring_t *r, const json_t *a)
{
    size_t i;
    json_t *e;
    memset(r, 0, sizeof *r);
    json_array_foreach(a, i, e) if (json_is_number(e)) ring_push(r, json_number_value(e));
}

static json_t *regime_json(const regime_state_t *g)
{
    json_t *rets = json_array();
    for (int k = 0; k < g->ret_n; k++)
        json_array_append_new(rets, json_real(g->rets[(g->ret_i - g->ret_n + k + REGIME_VOL_WINDOW) % REGIME_VOL_WINDOW]));
    return json_pack("{s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:o, s:f}", "bars", (json_int_t)g->bars,
                     "ph", g->prev_high, "pl", g->prev_low, "pc", g->prev_close, "tr", g->tr_s, "pdm", g->pdm_s,
                     "mdm", g->mdm_s, "dxs", g->dx_sum, "adx", isnan(g->adx) ? -1.0 : g->adx, "dxn",
                     (json_int_t)g->dx_n, "rets", rets, "lv", g->long_var);
}

static void regime_from(regime_state_t *g, const json_t *j)
{
    size_t i;
    json_t *e;
    regime_init(g);
    g->bars = (long)json_integer_value(json_object_get(j, "bars"));
    g->prev_high = num(j, "ph"), g->prev_low = num(j, "pl"), g->prev_close = num(j, "pc");
    g->tr_s = num(j, "tr"), g->pdm_s = num(j, "pdm"), g->mdm_s = num(j, "mdm"), g->dx_sum = num(j, "dxs");
    g->adx = num(j, "adx") < 0 ? NAN : num(j, "adx");
    g->dx_n = (long)json_integer_value(json_object_get(j, "dxn"));
    g->long_var = num(j, "lv");
    json_array_foreach(json_object_get(j, "rets"), i, e) {
        g->rets[g->ret_i] = json_number_value(e);
        g->ret_i = (g->ret_i + 1) % REGIME_VOL_WINDOW;
        if (g->ret_n < REGIME_VOL_WINDOW) g->ret_n++;
    }
}

json_t *inputs_to_json(const inputs_t *in)
{
    json_t *syms = json_array();
    for (int i = 0; i < in->nsyms; i++) {
        const sym_input_t *s = &in->syms[i];
        ring_t r = {{0}, 0, 0};
        for (int k = 0; k < s->npnl; k++) ring_push(&r, s->pnls[(s->ipnl - s->npnl + k + INPUTS_WINDOW) % INPUTS_WINDOW]);
        json_array_append_new(syms, json_pack("{s:s, s:o, s:o, s:f}", "symbol", s->symbol, "regime",
                                              regime_json(&s->regime), "pnls", ring_json(&r), "cum_pnl", s->cum_pnl));
    }
    return json_pack("{s:i, s:b, s:f, s:f, s:f, s:i, s:i, s:o, s:o, s:o, s:o}", "v", 1, "risk_known", in->risk_known,
                     "daily_pnl_pct", in->daily_pnl_pct, "drawdown_pct", in->drawdown_pct, "exposure_pct",
                     in->exposure_pct, "losing_streak", in->losing_streak, "open_positions", in->open_positions,
                     "outcomes", ring_json(&in->outcomes), "slippage", ring_json(&in->slippage), "spread",
                     ring_json(&in->spread), "symbols", syms);
}

int inputs_from_json(inputs_t *in, const json_t *j)
{
    size_t i;
    json_t *e;
    if (!json_is_object(j) || json_integer_value(json_object_get(j, "v")) != 1) return -1;
    inputs_init(in);
    in->risk_known = json_is_true(json_object_get(j, "risk_known"));
    in->daily_pnl_pct = num(j, "daily_pnl_pct");
    in->drawdown_pct = num(j, "drawdown_pct");
    in->exposure_pct = num(j, "exposure_pct");
    in->losing_streak = (int)json_integer_value(json_object_get(j, "losing_streak"));
    in->open_positions = (int)json_integer_value(json_object_get(j, "open_positions"));
    ring_from(&in->outcomes, json_object_get(j, "outcomes"));
    ring_from(&in->slippage, json_object_get(j, "slippage"));
    ring_from(&in->spread, json_object_get(j, "spread"));
    json_array_foreach(json_object_get(j, "symbols"), i, e) {
        sym_input_t *s = inputs_sym(in, json_string_value(json_object_get(e, "symbol")));
        ring_t r;
        if (!s) continue;
        regime_from(&s->regime, json_object_get(e, "regime"));
        ring_from(&r, json_object_get(e, "pnls"));
        for (int k = 0; k < r.n; k++) s->pnls[k] = r.v[k];
        s->npnl = r.n;
        s->ipnl = r.n % INPUTS_WINDOW;
        s->cum_pnl = num(e, "cum_pnl");
    }
    return 0;
}
