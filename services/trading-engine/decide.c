/* decide.c — signals → one decision per (symbol, bar) → trade intents.
 *
 * Signals for a bar are joined per symbol. The decision is made once the
 * mode has what it needs (RL for PRIMARY/SHADOW, RL and ensemble for
 * HYBRID — or the ensemble alone while the rl-signals breaker is open), or
 * when a later bar's signal shows the other source is missing, or (paced
 * feeds only) after QT_SIGNAL_JOIN_MS of wall time. A bar is never decided
 * twice. */
#include "clock.h"
#include "symtab.h"
#include "engine_int.h"
#include "event.h"
#include "log.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

_Static_assert(offsetof(sym_state_t, symbol) == 0, "symtab: the symbol comes first");

sym_state_t *eng_sym(engine_t *e, const char *symbol) { return SYMTAB_SLOT(e->syms, &e->nsyms, ENG_SYMS, symbol, NULL); }

double eng_cfg_num(const engine_t *e, const char *key, double def)
{
    const json_t *v = json_object_get(e->config, key);
    return json_is_number(v) ? json_number_value(v) : def;
}

live_mode_t eng_mode(const engine_t *e)
{
    live_mode_t m = MODE_SHADOW;
    live_mode_parse(json_string_value(json_object_get(e->config, "rl_v3.live.mode")), &m);
    return m;
}

int eng_enabled(const engine_t *e)
{
    const json_t *v = json_object_get(e->config, "rl_v3.live.enabled");
    return !json_is_false(v);
}

/* The effective threshold: the configured one, the ML service's adjusted
 * one and the TradingPolicy's, whichever is highest. */
static double eng_threshold(const engine_t *e)
{
    double t = fmax(eng_cfg_num(e, "rl_v3.live.min_confidence", 0.6), e->ml_threshold);
    const json_t *pc = json_object_get(e->trading, "min_confidence");
    return json_is_number(pc) ? fmax(t, json_number_value(pc)) : t;
}

/* ---------- intents ---------- */

void eng_intent_remember(engine_t *e, const char *id, const char *symbol, int dir, int reduce_only, double leverage,
                         int64_t event_time, json_t *ctx)
{
    intent_rec_t *r = &e->intents[e->iintent];
    sym_state_t *s = reduce_only ? NULL : eng_sym(e, symbol);
    if (s) snprintf(s->entry_pending, sizeof s->entry_pending, "%s", id), s->entry_dir = dir;
    json_decref(r->ctx);
    memset(r, 0, sizeof *r);
    snprintf(r->id, sizeof r->id, "%s", id);
    snprintf(r->symbol, sizeof r->symbol, "%s", symbol);
    r->reduce_only = reduce_only;
    r->leverage = leverage;
    r->event_time = event_time;
    r->ctx = ctx;
    e->iintent = (e->iintent + 1) % ENG_INTENTS;
    if (e->nintents < ENG_INTENTS) e->nintents++;
}

intent_rec_t *eng_intent_find(engine_t *e, const char *id)
{
    for (int k = 1; k <= e->nintents; k++) { /* newest first */
        intent_rec_t *r = &e->intents[(e->iintent - k + ENG_INTENTS) % ENG_INTENTS];
        if (strcmp(r->id, id) == 0) return r;
    }
    return NULL;
}

int eng_publish_intent(engine_t *e, sym_state_t *s, int side, const char *action, double size_pct,
                       double confidence, const char *mode, const char *tag, double qty, int64_t event_time,
                       int64_t open_time, const char *trace, const char *regime, const json_t *votes, char id[65])
{
    char name[200];
    int reduce = qty > 0;
    snprintf(name, sizeof name, "intent:%s:%s:%lld:%s:%s", e->svc->cfg.ns, s->symbol, (long long)open_time,
             side > 0 ? "BUY" : "SELL", tag);
    event_derive_id(name, id);
    json_t *d = json_pack("{s:s, s:s, s:s, s:f, s:f, s:f, s:s, s:s, s:f, s:b, s:I, s:I}", "symbol", s->symbol,
                          "side", side > 0 ? "BUY" : "SELL", "action", action, "size_pct", size_pct, "leverage",
                          e->cfg.leverage, "confidence", confidence, "mode", mode, "source_tag", tag, "ref_price",
                          s->last_close, "reduce_only", reduce, "event_time", (json_int_t)event_time, "open_time",
                          (json_int_t)open_time);
    if (reduce) json_object_set_new(d, "qty", json_real(qty));
    if (regime && *regime) json_object_set_new(d, "regime", json_string(regime));
    if (votes) json_object_set(d, "model_votes", (json_t *)votes);
    json_t *mv = votes ? json_incref((json_t *)votes) : json_object();
    json_t *ctx = json_pack("{s:f, s:s, s:o, s:s, s:s}", "confidence", confidence, "regime", regime ? regime : "",
                            "model_votes", mv, "action", action, "source_tag", tag);
    if (eng_publish(e, "trade.intent", "trade.intent", d, name, trace) < 0) {
        json_decref(ctx);
        return -1;
    }
    eng_intent_remember(e, id, s->symbol, side, reduce, e->cfg.leverage, event_time, ctx);
    e->intents_total++;
    e->last_trade_intent_at = event_time;
    metric_inc(e->m_intents);
    if (!reduce) live_rate_record(&e->rate, event_time);
    return 0;
}

/* ---------- decisions ---------- */

static json_t *eng_sig_json(int present, const char *action, double conf)
{
    return present ? json_pack("{s:s, s:f}", "action", action, "confidence", conf) : json_null();
}

static void eng_record(engine_t *e, const sym_state_t *s, const join_t *j, live_mode_t mode, const live_decision_t *d,
                       const char *outcome, const char *reason, const char *detail, const char *intent_id)
{
    eng_decision_t *r = &e->decisions[e->idecision];
    snprintf(r->symbol, sizeof r->symbol, "%s", s->symbol);
    snprintf(r->trace, sizeof r->trace, "%s", j->trace);
    snprintf(r->intent_id, sizeof r->intent_id, "%s", intent_id ? intent_id : "");
    snprintf(r->detail, sizeof r->detail, "%s", detail ? detail : "");
    r->open_time = j->open_time, r->event_time = j->event_time, r->mode = mode;
    r->rl = j->rl, r->ens = j->ens, r->action = d->action, r->confidence = d->confidence;
    r->source_tag = d->source_tag, r->outcome = outcome, r->reason = reason;
    e->idecision = (e->idecision + 1) % ENG_DECISIONS;
    if (e->ndecisions < ENG_DECISIONS) e->ndecisions++;
    e->decisions_total++;
    e->last_decision_at = j->event_time;
    if (mode == MODE_SHADOW) e->shadow_decisions++;
    char l[64];
    snprintf(l, sizeof l, "outcome=\"%s\"", outcome);
    metric_inc(metrics_counter(e->svc->metrics, "qt_engine_decisions_total", "Decisions by outcome", l));
}

/* A recorded decision as the API shows it (a new reference). */
static json_t *eng_decision_json(const eng_decision_t *r)
{
    const char *ens_action = r->ens.dir > 0 ? "LONG" : r->ens.dir < 0 ? "SHORT" : "HOLD";
    return json_pack("{s:s, s:I, s:I, s:s, s:o, s:o, s:s, s:f, s:s?, s:s, s:s?, s:s?, s:s?, s:s}", "symbol", r->symbol,
                     "open_time", (json_int_t)r->open_time, "event_time", (json_int_t)r->event_time, "mode",
                     live_mode_name(r->mode), "rl", eng_sig_json(r->rl.present, rl_action_name(r->rl.action), r->rl.confidence),
                     "signal", eng_sig_json(r->ens.present, ens_action, r->ens.confidence), "action",
                     rl_action_name(r->action), "confidence", r->confidence, "source_tag", r->source_tag, "outcome",
                     r->outcome, "denial_reason", r->reason, "detail", r->detail[0] ? r->detail : NULL, "intent_id",
                     r->intent_id[0] ? r->intent_id : NULL, "trace", r->trace);
}

/* RiskGuard on an entry; NULL when allowed. */
static const char *eng_riskguard(engine_t *e, const sym_state_t *s, double size_pct, char *detail, size_t len)
{
    const char *allowed[65] = {NULL}, *disallowed[65] = {NULL};
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(e->trading, "allowed_symbols"), i, v) if (i < 64) allowed[i] = json_string_value(v);
    json_array_foreach(json_object_get(e->trading, "disallowed_symbols"), i, v) if (i < 64) disallowed[i] = json_string_value(v);
    const json_t *allow = json_object_get(e->trading, "allow_new_trades");
    const json_t *mr = json_object_get(e->trading, "max_risk_pct");
    riskguard_limits_t l = {eng_cfg_num(e, "risk.max_leverage", 5), eng_cfg_num(e, "risk.max_risk_pct", 2.0),
                            eng_cfg_num(e, "risk.total_exposure_limit_pct", 15.0),
                            eng_cfg_num(e, "risk.daily_dd_limit_pct", 3.0),
                            (int)eng_cfg_num(e, "risk.max_open_positions", 8), !json_is_false(allow),
                            json_is_number(mr) ? json_number_value(mr) : 100.0, allowed, disallowed};
    riskguard_request_t r = {s->symbol, size_pct, e->cfg.leverage, e->cfg.stop_loss_pct / 100.0 * e->ml_sl_mult,
                             e->ledger.n, ledger_exposure_pct(&e->ledger), eng_daily_pnl_pct(e)};
    return riskguard_check(&l, &r, detail, len);
}

static void eng_act(engine_t *e, sym_state_t *s, join_t *j, live_mode_t mode, const live_decision_t *d)
{
    char detail[200] = "", id[65] = "";
    const char *reason = NULL, *outcome = d->outcome;
    const char *mname = mode == MODE_HYBRID ? "HYBRID" : "PRIMARY";
    if (d->kind == LIVE_ENTRY && !(s->last_close > 0)) {
        outcome = "NO_PRICE";
    } else if (d->kind == LIVE_ENTRY &&
               !live_rate_allows(&e->rate, j->event_time, (int)eng_cfg_num(e, "rl_v3.live.max_trades_per_hour", 10))) {
        outcome = "RATE_LIMITED";
    } else if (d->kind == LIVE_ENTRY && (reason = eng_riskguard(e, s, d->size_pct, detail, sizeof detail))) {
        outcome = "DENIED";
        for (int i = 0; i < RISKGUARD_REASONS; i++)
            if (strcmp(reason, riskguard_reason(i)) == 0) e->denials[i]++, metric_inc(e->m_denials[i]);
        log_msg(LOG_INFO, j->trace, "RiskGuard denied %s %s: %s (%s)", s->symbol, rl_action_name(d->action), reason, detail);
    } else if (d->kind == LIVE_ENTRY) {
        if (eng_publish_intent(e, s, d->dir, rl_action_name(d->action), d->size_pct, d->confidence, mname,
                               d->source_tag, 0, j->event_time, j->open_time, j->trace, j->regime, j->votes, id) < 0)
            outcome = "PUBLISH_FAILED";
    } else if (d->kind == LIVE_EXIT && !s->exit_pending[0]) {
        const position_t *p = ledger_find(&e->ledger, s->symbol);
        if (p && eng_publish_intent(e, s, p->qty > 0 ? -1 : 1, "CLOSE", 0, d->confidence, mname, d->source_tag,
                                    fabs(p->qty), j->event_time, j->open_time, j->trace, j->regime, j->votes, id) == 0)
            snprintf(s->exit_pending, sizeof s->exit_pending, "%s", id);
    }
    eng_record(e, s, j, mode, d, outcome, reason, detail[0] ? detail : NULL, id[0] ? id : NULL);
}

/* Decide on the symbol's joined bar with whatever it holds, then clear it. */
static void eng_decide(engine_t *e, sym_state_t *s)
{
    join_t *j = &s->join;
    live_decision_t d;
    live_mode_t mode = eng_mode(e);
    if (!j->active) return;
    live_cfg_t c = {eng_enabled(e), mode, eng_threshold(e), e->cfg.size_small, e->cfg.size_large, e->ml_max_pos};
    if (mode == MODE_HYBRID || mode == MODE_PRIMARY) /* is RL keeping up? */
        breaker_record(e->rl_breaker, j->rl.present, 0, clock_mono_ms());
    int dir = ledger_dir(&e->ledger, s->symbol); /* an entry on its way counts as the position */
    live_decide(&c, &j->rl, &j->ens, dir ? dir : s->entry_pending[0] ? s->entry_dir : 0, &d);
    s->decided_upto = j->open_time;
    if (d.kind != LIVE_NONE) eng_act(e, s, j, mode, &d);
    json_decref(j->votes);
    memset(j, 0, sizeof *j);
    eng_lockstep_wake(e);
}

/* Has the join what the mode needs? */
static int eng_ready(engine_t *e, const join_t *j)
{
    live_mode_t m = eng_mode(e);
    if (m == MODE_OFF || !eng_enabled(e)) return 1; /* nothing to wait for */
    if (m != MODE_HYBRID) return j->rl.present;
    if (j->rl.present && j->ens.present) return 1;
    return j->ens.present && breaker_state(e->rl_breaker, clock_mono_ms()) == BREAKER_OPEN; /* RL silent: fall back */
}

static void eng_join_set(join_t *j, const event_t *ev)
{
    const json_t *d = ev->data;
    const char *regime = json_string_value(json_object_get(d, "regime"));
    j->event_time = json_integer_value(json_object_get(d, "event_time"));
    if (regime) snprintf(j->regime, sizeof j->regime, "%s", regime);
    if (!j->trace[0]) snprintf(j->trace, sizeof j->trace, "%s", ev->trace);
    double conf = json_number_value(json_object_get(d, "confidence"));
    const char *action = json_string_value(json_object_get(d, "action"));
    if (strcmp(ev->type, "rl.signal.generated") == 0) {
        j->rl.present = 1;
        j->rl.confidence = conf;
        rl_action_parse(action, &j->rl.action);
    } else {
        j->ens.present = 1;
        j->ens.confidence = conf;
        j->ens.dir = strcmp(action, "LONG") == 0 ? 1 : strcmp(action, "SHORT") == 0 ? -1 : 0;
        json_decref(j->votes);
        j->votes = json_incref(json_object_get(d, "model_votes"));
    }
}

static void eng_on_signal(engine_t *e, const event_t *ev)
{
    const json_t *d = ev->data;
    sym_state_t *s = eng_sym(e, json_string_value(json_object_get(d, "symbol")));
    int64_t ot = json_integer_value(json_object_get(d, "open_time"));
    if (!s) return;
    if (ot <= s->decided_upto || (s->join.active && ot < s->join.open_time)) {
        e->late_signals++; /* that bar is decided, or a later one is being joined */
        return;
    }
    if (s->join.active && s->join.open_time < ot) eng_decide(e, s); /* the older bar will get no more signals */
    if (!s->join.active) {
        s->join.active = 1;
        s->join.open_time = ot;
        s->join.first_mono = clock_mono_ms();
    }
    eng_join_set(&s->join, ev);
    if (eng_ready(e, &s->join) && !eng_lockstep_holds(e, s)) eng_decide(e, s);
}

/* In lockstep, a bar is decided once its intents have settled and every
 * consumer has handled what was published before (the signals, thresholds
 * and TradingPolicy about the bar are all in), so the decision sees the same
 * position and the same policy in every run. */
int eng_lockstep_holds(const engine_t *e, const sym_state_t *s)
{
    return eng_lockstep_on(e) && (s->exit_pending[0] || s->entry_pending[0] || e->lock_unsettled);
}

void eng_decide_held(engine_t *e)
{
    for (int i = 0; i < e->nsyms; i++) {
        sym_state_t *s = &e->syms[i];
        if (s->join.active && eng_ready(e, &s->join) && !eng_lockstep_holds(e, s)) eng_decide(e, s);
    }
}

void eng_join_timeouts(engine_t *e)
{
    int64_t now = clock_mono_ms();
    if (!feed_paced(e->feed)) return; /* full-speed replays stay deterministic */
    for (int i = 0; i < e->nsyms; i++)
        if (e->syms[i].join.active && now - e->syms[i].join.first_mono >= e->cfg.join_ms) eng_decide(e, &e->syms[i]);
}

/* qt:signal and qt:market (prices when the feed runs elsewhere). */
bus_result_t eng_on_signal_event(void *ud, const bus_msg_t *m, char *err, size_t errlen)
{
    engine_t *e = ud;
    const json_t *d = m->ev->data;
    (void)err;
    (void)errlen;
    if (strcmp(m->ev->type, "rl.signal.generated") == 0 || strcmp(m->ev->type, "signal.generated") == 0) {
        eng_on_signal(e, m->ev);
    } else if (strcmp(m->ev->type, "ml.threshold.adjusted") == 0) {
        e->ml_threshold = json_number_value(json_object_get(d, "min_confidence"));
        e->ml_conservative = json_is_true(json_object_get(d, "conservative"));
    } else if (strcmp(m->ev->type, "ml.risk.limit.update") == 0) {
        e->ml_max_pos = json_number_value(json_object_get(d, "max_position_size"));
        e->ml_sl_mult = json_number_value(json_object_get(d, "stop_loss_multiplier"));
    } else if (strcmp(m->ev->type, "market.data.update") == 0 && json_is_true(json_object_get(d, "closed"))) {
        eng_on_bar(e, json_string_value(json_object_get(d, "symbol")), json_integer_value(json_object_get(d, "open_time")),
                   json_integer_value(json_object_get(d, "event_time")), json_number_value(json_object_get(d, "high")),
                   json_number_value(json_object_get(d, "low")), json_number_value(json_object_get(d, "close")),
                   m->ev->trace);
    }
    return BUS_OK;
}

json_t *eng_decisions_json(const engine_t *e, long limit)
{
    json_t *a = json_array();
    for (int k = 1; k <= e->ndecisions && k <= limit; k++)
        json_array_append_new(a, eng_decision_json(&e->decisions[(e->idecision - k + ENG_DECISIONS) % ENG_DECISIONS]));
    return a;
}
