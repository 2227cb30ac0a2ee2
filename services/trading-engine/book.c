/* book.c — executions → positions and PnL → position, feedback and
 * performance events; stop-loss / take-profit exits on each bar.
 * Every event published here has an id derived from its cause, so handling
 * a redelivered execution publishes nothing new. */
#include "clock.h"
#include "engine_int.h"
#include "event.h"
#include "log.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define DAY_MS 86400000LL

double eng_daily_pnl_pct(const engine_t *e)
{
    double eq = ledger_equity(&e->ledger);
    return e->day_start_equity > 0 ? (eq - e->day_start_equity) / e->day_start_equity * 100.0 : 0;
}

static double eng_drawdown_pct(const engine_t *e)
{
    double eq = ledger_equity(&e->ledger);
    return e->peak_equity > 0 && eq < e->peak_equity ? (e->peak_equity - eq) / e->peak_equity * 100.0 : 0;
}

/* New UTC day of event time → today's PnL starts from here; the peak follows
 * equity; the equity curve gets a point per minute of event time. */
static void eng_track_equity(engine_t *e, int64_t event_time)
{
    double eq = ledger_equity(&e->ledger);
    int64_t day = event_time / DAY_MS;
    if (day > e->day) e->day = day, e->day_start_equity = eq;
    if (eq > e->peak_equity) e->peak_equity = eq;
    metric_set(e->m_equity, eq);
    if (e->neq && event_time - e->eq_time[(e->ieq + ENG_EQUITY - 1) % ENG_EQUITY] < 60000) return;
    e->eq_time[e->ieq] = event_time, e->eq_value[e->ieq] = eq;
    e->ieq = (e->ieq + 1) % ENG_EQUITY;
    if (e->neq < ENG_EQUITY) e->neq++;
}

void eng_publish_performance(engine_t *e, int64_t event_time, const char *id_name, const char *trace)
{
    eng_track_equity(e, event_time);
    json_t *d = json_pack("{s:f, s:f, s:f, s:i, s:f, s:i, s:f, s:f, s:I}", "equity", ledger_equity(&e->ledger),
                          "daily_pnl_pct", eng_daily_pnl_pct(e), "drawdown_pct", eng_drawdown_pct(e),
                          "open_positions", e->ledger.n, "exposure_pct", ledger_exposure_pct(&e->ledger),
                          "losing_streak", e->ledger.losing_streak, "realized_pnl", e->ledger.realized,
                          "unrealized_pnl", ledger_unrealized(&e->ledger), "event_time", (json_int_t)event_time);
    if (eng_publish(e, "feedback", "performance.update", d, id_name, trace) == 0)
        e->last_perf_time = event_time, eng_unsettled(e); /* consumers read equity from it */
}

static json_t *ctx_votes(const json_t *ctx)
{
    json_t *v = json_object_get(ctx, "model_votes");
    return json_is_object(v) ? json_incref(v) : json_object();
}

static const char *ctx_str(const json_t *ctx, const char *k, const char *def)
{
    const char *s = json_string_value(json_object_get(ctx, k));
    return s && *s ? s : def;
}

static void eng_publish_opened(engine_t *e, const char *symbol, const char *exec_id, const char *trace)
{
    char name[128];
    const position_t *p = ledger_find(&e->ledger, symbol);
    if (!p) return;
    snprintf(name, sizeof name, "pos-open:%s", exec_id);
    json_t *d = json_pack("{s:s, s:s, s:f, s:f, s:f, s:f, s:s, s:o, s:s, s:s, s:I}", "symbol", symbol, "side",
                          p->qty > 0 ? "LONG" : "SHORT", "qty", fabs(p->qty), "entry_price", p->entry_price,
                          "leverage", p->leverage, "confidence", json_number_value(json_object_get(p->ctx, "confidence")),
                          "regime", ctx_str(p->ctx, "regime", "UNKNOWN"), "model_votes", ctx_votes(p->ctx),
                          "source_tag", ctx_str(p->ctx, "source_tag", "UNKNOWN"), "action",
                          ctx_str(p->ctx, "action", "UNKNOWN"), "event_time", (json_int_t)p->opened_at);
    eng_publish(e, "feedback", "position.opened", d, name, trace);
}

static void eng_publish_closed(engine_t *e, const char *symbol, const fill_result_t *r, const char *reason,
                               const char *exec_id, const char *trace, int64_t t)
{
    char name[128];
    const json_t *ctx = r->closed_ctx;
    double conf = json_number_value(json_object_get(ctx, "confidence"));
    const char *regime = ctx_str(ctx, "regime", "UNKNOWN"), *action = ctx_str(ctx, "action", "HOLD");
    snprintf(name, sizeof name, "pos-close:%s", exec_id);
    eng_publish(e, "feedback", "position.closed",
                json_pack("{s:s, s:s, s:f, s:f, s:f, s:f, s:f, s:f, s:s, s:f, s:s, s:o, s:s, s:s, s:I}", "symbol",
                          symbol, "side", r->closed_dir > 0 ? "LONG" : "SHORT", "qty", r->closed_qty, "entry_price",
                          r->entry_price, "exit_price", r->exit_price, "pnl", r->pnl, "pnl_pct", r->pnl_pct,
                          "duration_s", r->duration_s, "reason", reason, "confidence", conf, "regime", regime,
                          "model_votes", ctx_votes(ctx), "source_tag", ctx_str(ctx, "source_tag", "UNKNOWN"),
                          "action", action, "event_time", (json_int_t)t),
                name, trace);
    snprintf(name, sizeof name, "outcome:%s", exec_id);
    rl_action_t a;
    if (rl_action_parse(action, &a) < 0) action = "HOLD"; /* the schema's action set */
    eng_publish(e, "feedback", "feedback.prediction.outcome",
                json_pack("{s:s, s:s, s:f, s:f, s:f, s:f, s:o, s:s, s:s, s:I}", "symbol", symbol, "action", action,
                          "confidence", conf, "pnl", r->pnl, "pnl_pct", r->pnl_pct, "duration_s", r->duration_s,
                          "model_votes", ctx_votes(ctx), "regime", regime, "source_tag",
                          ctx_str(ctx, "source_tag", "UNKNOWN"), "event_time", (json_int_t)t),
                name, trace);
    snprintf(name, sizeof name, "perf:%s", exec_id);
    eng_publish_performance(e, t, name, trace);
}

void eng_apply_execution(engine_t *e, const json_t *d, const char *exec_id, const char *trace, int publish)
{
    const char *symbol = json_string_value(json_object_get(d, "symbol"));
    const char *intent_id = json_string_value(json_object_get(d, "intent_id"));
    intent_rec_t *in = eng_intent_find(e, intent_id);
    int64_t t = json_integer_value(json_object_get(d, "event_time"));
    fill_t f = {symbol, strcmp(json_string_value(json_object_get(d, "side")), "BUY") == 0 ? 1 : -1,
                json_number_value(json_object_get(d, "qty")), json_number_value(json_object_get(d, "price")),
                json_number_value(json_object_get(d, "fee")), in && in->leverage > 0 ? in->leverage : e->cfg.leverage,
                t, in ? in->ctx : NULL};
    fill_result_t r;
    if (ledger_apply(&e->ledger, &f, &r) < 0) {
        log_error("execution %s for %s could not be booked (bad fill or too many positions)", exec_id, symbol);
        return;
    }
    if (in && !in->executed) in->executed = 1, e->intents_executed++, eng_lockstep_wake(e);
    sym_state_t *s = eng_sym(e, symbol);
    eng_intent_settled(e, intent_id);
    if (s && !ledger_find(&e->ledger, symbol)) s->exit_pending[0] = '\0';
    if (publish && r.closed) {
        const char *tag = in ? ctx_str(in->ctx, "source_tag", "SIGNAL") : "SIGNAL";
        eng_publish_closed(e, symbol, &r, strncmp(tag, "RISK_", 5) == 0 ? tag + 5 : "SIGNAL", exec_id, trace, t);
        eng_unsettled(e); /* the next step waits until every feedback consumer saw it */
    }
    if (publish && r.opened) eng_publish_opened(e, symbol, exec_id, trace), eng_unsettled(e);
    if (publish) eng_decide_held(e);
    json_decref(r.closed_ctx);
}

void eng_intent_settled(engine_t *e, const char *intent_id)
{
    for (int i = 0; intent_id && i < e->nsyms; i++) {
        if (strcmp(e->syms[i].exit_pending, intent_id) == 0) e->syms[i].exit_pending[0] = '\0';
        if (strcmp(e->syms[i].entry_pending, intent_id) == 0) e->syms[i].entry_pending[0] = '\0';
    }
}

bus_result_t eng_on_execution_event(void *ud, const bus_msg_t *m, char *err, size_t errlen)
{
    engine_t *e = ud;
    (void)err;
    (void)errlen;
    if (dedupe_check(e->execs_seen, m->ev->id)) return BUS_OK; /* the same execution event again */
    if (strcmp(m->ev->type, "trade.executed") == 0) {
        eng_apply_execution(e, m->ev->data, m->ev->id, m->ev->trace, 1);
    } else if (strcmp(m->ev->type, "trade.failed") == 0) {
        const char *iid = json_string_value(json_object_get(m->ev->data, "intent_id"));
        intent_rec_t *in = eng_intent_find(e, iid);
        if (in && !in->failed) in->failed = 1, e->intents_failed++;
        eng_intent_settled(e, iid);
        eng_decide_held(e);
        eng_lockstep_wake(e); /* an exit is tried again on the next bar, an entry may be decided again */
        log_msg(LOG_WARN, m->ev->trace, "intent %s failed: %s", iid,
                json_string_value(json_object_get(m->ev->data, "reason")));
    }
    return BUS_OK;
}

/* Stop-loss / take-profit of the symbol's position against this bar. */
static void eng_exits(engine_t *e, sym_state_t *s, int64_t open_time, int64_t t, double high, double low,
                      const char *trace)
{
    const position_t *p = ledger_find(&e->ledger, s->symbol);
    char id[65];
    if (!p || s->exit_pending[0]) return;
    double sl = e->cfg.stop_loss_pct / 100.0 * e->ml_sl_mult, tp = sl * e->cfg.tp_ratio;
    int dir = p->qty > 0 ? 1 : -1;
    double stop = p->entry_price * (1 - dir * sl), take = p->entry_price * (1 + dir * tp);
    const char *tag = NULL;
    double price = 0;
    if (dir > 0 ? low <= stop : high >= stop) tag = "RISK_STOP_LOSS", price = stop;
    else if (dir > 0 ? high >= take : low <= take) tag = "RISK_TAKE_PROFIT", price = take;
    if (!tag) return;
    double close = s->last_close;
    s->last_close = price; /* the exit's reference price is the level crossed */
    const json_t *ctx = p->ctx;
    if (eng_publish_intent(e, s, -dir, "CLOSE", 0, json_number_value(json_object_get(ctx, "confidence")), "RISK", tag,
                           fabs(p->qty), t, open_time, trace, ctx_str(ctx, "regime", ""),
                           json_object_get(ctx, "model_votes"), id) == 0)
        snprintf(s->exit_pending, sizeof s->exit_pending, "%s", id);
    s->last_close = close;
}

void eng_bar_price(engine_t *e, sym_state_t *s, int64_t open_time, int64_t t, double high, double low, double close,
                   const char *trace)
{
    s->last_close = close;
    ledger_mark(&e->ledger, s->symbol, close);
    if (t > e->last_bar_time) e->last_bar_time = t;
    eng_track_equity(e, t);
    eng_exits(e, s, open_time, t, high, low, trace);
}

int eng_bar_performance(engine_t *e, int64_t t, const char *trace)
{
    char name[96];
    if (t - e->last_perf_time < 60000) return 0; /* at least once a minute of event time */
    snprintf(name, sizeof name, "perf:%s:%lld", e->svc->cfg.ns, (long long)t);
    long before = e->last_perf_time;
    eng_publish_performance(e, t, name, trace);
    return e->last_perf_time != before;
}

void eng_on_bar(engine_t *e, const char *symbol, int64_t open_time, int64_t t, double high, double low, double close,
                const char *trace)
{
    sym_state_t *s = eng_sym(e, symbol);
    if (!s) return;
    if (open_time > s->last_bar_open) s->last_bar_open = open_time;
    eng_bar_price(e, s, open_time, t, high, low, close, trace);
    eng_bar_performance(e, t, trace);
}

json_t *eng_equity_json(const engine_t *e)
{
    json_t *a = json_array();
    for (int k = 0; k < e->neq; k++) {
        int i = (e->ieq - e->neq + k + ENG_EQUITY) % ENG_EQUITY;
        json_array_append_new(a, json_pack("[I, f]", (json_int_t)e->eq_time[i], e->eq_value[i]));
    }
    return a;
}

json_t *eng_positions_json(const engine_t *e)
{
    json_t *a = json_array();
    for (int i = 0; i < e->ledger.n; i++) {
        const position_t *p = &e->ledger.pos[i];
        json_array_append_new(a, json_pack("{s:s, s:s, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:I}", "symbol", p->symbol,
                                           "side", p->qty > 0 ? "LONG" : "SHORT", "qty", fabs(p->qty), "entry_price",
                                           p->entry_price, "last_price", p->last_price, "unrealized_pnl",
                                           (p->last_price - p->entry_price) * p->qty, "leverage", p->leverage,
                                           "fees", p->fees, "realized_pnl", p->realized, "opened_at",
                                           (json_int_t)p->opened_at));
    }
    return json_pack("{s:o, s:f, s:f, s:f, s:f, s:i, s:f, s:f, s:f, s:i, s:I, s:I}", "positions", a, "equity",
                     ledger_equity(&e->ledger), "realized_pnl", e->ledger.realized, "unrealized_pnl",
                     ledger_unrealized(&e->ledger), "fees", e->ledger.fees, "open_positions", e->ledger.n,
                     "exposure_pct", ledger_exposure_pct(&e->ledger), "daily_pnl_pct", eng_daily_pnl_pct(e),
                     "drawdown_pct", eng_drawdown_pct(e), "losing_streak", e->ledger.losing_streak, "closed_trades",
                     (json_int_t)e->ledger.closes, "wins", (json_int_t)e->ledger.wins);
}
