/* engine.c — the trading-engine: owns its state and is the one place that
 * sequences what an input causes: apply it (book, intents, joins), then
 * decide the bars that waited, then wake the feed (see engine.h).
 *
 * Below it, and never calling back up: the pure modules (ledger, equity,
 * live, riskguard, intents, joins, declog), decide and book (which return
 * what should be published), then publish, lockstep, rebuild, api and
 * dashboard (the I/O). */
#include "engine.h"
#include "actions.h"
#include "api.h"
#include "book.h"
#include "breaker.h"
#include "ckpt.h"
#include "clock.h"
#include "dashboard.h"
#include "decide.h"
#include "declog.h"
#include "dedupe.h"
#include "event.h"
#include "feed.h"
#include "intents.h"
#include "joins.h"
#include "keys.h"
#include "lockstep.h"
#include "log.h"
#include "policyview.h"
#include "publish.h"
#include "rebuild.h"
#include "riskguard.h"
#include "timeguard.h"
#include "kline.h"

#include <hiredis/hiredis.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENG_TICK_MS 250
#define ENG_CONFIG_MS 10000 /* configuration cached at most 10 s */
#define ENG_CKPT_MS 10000

typedef struct engine_cfg {
    decide_sizes_t sizes;
    double tp_ratio, balance;
    long join_ms, max_lag, lockstep_ms, startup_wait_s;
    int lockstep;
    const char *feed; /* QT_FEED */
} engine_cfg_t;

struct engine {
    svc_t *svc;
    engine_cfg_t cfg;
    feed_t *feed;
    policyview_t pv;
    ml_limits_t ml;
    book_t book;
    int64_t perf_published; /* the event time of the newest performance.update in the stream at the rebuild */
    equity_t eq_rec;        /* the peak, day and day start last recorded in Redis (eng_record_equity) */
    int eq_rec_found;       /* ... found there at the rebuild */
    long replay_unmade;     /* intents a replayed decision would have made that the streams do not hold */
    long late_votes;        /* ensemble votes attached to an entry decided before they came (eng_late_votes) */
    json_t *entry_votes;    /* at the rebuild: <ns>:engine:entry_votes, symbol -> {open_time, model_votes, regime} */
    intents_t intents;
    joins_t joins;
    declog_t log;
    live_rate_t rate;
    lockstep_t *lock;
    breaker_t *rl_breaker;
    dedupe_t *execs_seen;
    char exec_folded[48]; /* executions up to this stream id are in the ledger */
    long denials[RISKGUARD_REASONS];
    long long market_lag;
    long long lag_acc; /* the largest lag of the partitions answered so far */
    int lag_wait;      /* partitions' answers still to come */
    struct event *tick;
    int64_t ckpt_mono, config_mono;
    eng_api_t api;
    metric_t *m_denials[RISKGUARD_REASONS], *m_intents, *m_bars, *m_equity, *m_external;
    metric_t *m_daily, *m_drawdown, *m_dd_limit; /* for alerting: the daily loss against its limit */
};

static void eng_decide_held(engine_t *e);
static void eng_decide(engine_t *e, join_sym_t *s);

/* ---------- lockstep (a replay at full speed, see lockstep.h) ---------- */

static int eng_lockstep_on(const engine_t *e) { return lockstep_enabled(e->lock) && feed_full_speed_replay(e->feed); }

/* Something was published; in lockstep the next step waits until every consumer handled it. */
static void eng_unsettled(engine_t *e)
{
    if (eng_lockstep_on(e)) lockstep_unsettled(e->lock);
}

/* Something the lockstep waits for happened. */
static void eng_lockstep_wake(engine_t *e)
{
    if (lockstep_enabled(e->lock)) feed_wake(e->feed);
}

static int eng_lockstep_holds(const engine_t *e, const join_sym_t *s);

/* Every consumer handled what was published: whatever the sources had to say
 * about the last bars is in. A source warming up (warmup.h) says nothing, so
 * what still waits for it is decided with what it has; a bar no source
 * spoke about has nothing to decide. */
static void eng_settled(void *ud)
{
    engine_t *e = ud;
    for (int i = 0; eng_lockstep_on(e) && i < e->joins.n; i++) {
        join_sym_t *s = &e->joins.s[i];
        if (s->join.active && !eng_lockstep_holds(e, s)) eng_decide(e, s);
    }
    feed_wake(e->feed);
}

/* In lockstep, a bar is decided once its intents have settled and every
 * consumer has handled what was published before (the signals, thresholds
 * and TradingPolicy about the bar are all in), so the decision sees the same
 * position and the same policy in every run. */
static int eng_lockstep_holds(const engine_t *e, const join_sym_t *s)
{
    return eng_lockstep_on(e) && (intents_holds(&e->intents, s->symbol) || lockstep_is_unsettled(e->lock));
}

/* 1 while the next bar must wait for decisions, executions or consumers. */
static int eng_lockstep_wait(engine_t *e)
{
    if (!eng_lockstep_on(e)) return 0;
    int busy = intents_unsettled(&e->intents) > 0;
    live_mode_t m = decide_mode(&e->pv);
    for (int i = 0; !busy && decide_enabled(&e->pv) && m != MODE_OFF && i < e->joins.n; i++)
        busy = e->joins.s[i].join.active; /* eng_settled decides it */
    lockstep_verdict_t v = lockstep_wait(e->lock, busy, clock_mono_ms());
    if (v == LOCKSTEP_WAIT) return 1;
    if (v == LOCKSTEP_GAVE_UP) eng_decide_held(e); /* what waited for the consumers goes now */
    return 0;
}

/* ---------- what the engine publishes, and the bookkeeping of it ---------- */

/* The peak and the day's start equity, recorded in Redis whenever they
 * change, on the link every publish after it also takes: a restart long
 * after the last checkpoint finds what the events it published were
 * computed from (a drawdown from a peak the checkpoint never saw). */
static void eng_record_equity(engine_t *e)
{
    const equity_t *q = &e->book.eq;
    if (q->peak == e->eq_rec.peak && q->day == e->eq_rec.day && q->day_start == e->eq_rec.day_start) return;
    char key[160], peak[32], day[24], start[32];
    proto_key(key, sizeof key, e->svc->cfg.ns, QT_KEY_ENGINE_EQUITY);
    snprintf(peak, sizeof peak, "%.17g", q->peak);
    snprintf(day, sizeof day, "%lld", (long long)q->day);
    snprintf(start, sizeof start, "%.17g", q->day_start);
    const char *argv[] = {"HSET", key, "peak", peak, "day", day, "day_start", start};
    if (bus_redis(e->svc->bus, NULL, NULL, 8, argv, NULL) == 0) /* else the next bar tries again */
        e->eq_rec.peak = q->peak, e->eq_rec.day = q->day, e->eq_rec.day_start = q->day_start;
}

static void eng_track(engine_t *e, int64_t t)
{
    metric_set(e->m_equity, book_track(&e->book, t));
    metric_set(e->m_daily, book_daily_pnl_pct(&e->book));
    metric_set(e->m_drawdown, book_drawdown_pct(&e->book));
    metric_set(e->m_dd_limit, policyview_num(&e->pv, "risk.daily_dd_limit_pct", 3.0));
    eng_record_equity(e);
}

/* The record over what a checkpoint or the rebuild gave: it is newer. */
static void eng_equity_from_record(engine_t *e)
{
    equity_t *q = &e->book.eq;
    if (!e->eq_rec_found) return;
    if (e->eq_rec.peak > q->peak) q->peak = e->eq_rec.peak;
    if (e->eq_rec.day >= q->day) q->day = e->eq_rec.day, q->day_start = e->eq_rec.day_start;
    e->eq_rec.peak = q->peak, e->eq_rec.day = q->day, e->eq_rec.day_start = q->day_start;
}

/* performance.update at event time t; 1 when published. */
static int eng_performance(engine_t *e, int64_t t, const char *id_name, const char *trace)
{
    eng_track(e, t);
    if (pub_performance(e->svc, &e->book, t, id_name, trace) < 0) return 0;
    e->book.last_perf_time = t;
    eng_unsettled(e); /* consumers read equity from it */
    return 1;
}

/* performance.update when a minute of event time passed since the last; 1 when published. */
static int eng_bar_performance(engine_t *e, int64_t t, const char *trace)
{
    char name[96];
    if (!book_perf_due(&e->book, t)) return 0;
    snprintf(name, sizeof name, "perf:%s:%lld", e->svc->cfg.ns, (long long)t);
    return eng_performance(e, t, name, trace);
}

static int eng_intent(engine_t *e, const char *symbol, const intent_req_t *req, int64_t event_time,
                      int64_t open_time, const char *trace, const char *regime, const json_t *votes, char id[65])
{
    json_t *ctx = NULL;
    if (pub_intent(e->svc, symbol, req, e->cfg.sizes.leverage, event_time, open_time, trace, regime, votes, id, &ctx) < 0)
        return -1;
    if (intents_find(&e->intents, id)) { /* the same decision again (a replay at start): it is booked */
        json_decref(ctx);
        return 0;
    }
    if (bus_replaying(e->svc->bus)) {
        /* Replayed entries were handled and their outputs confirmed before:
         * an intent the streams do not hold was never made (the replay lacks
         * the feed's bars between, so a RiskGuard check can come out
         * otherwise). Booking it would wait forever for its execution. */
        if (!e->replay_unmade++)
            log_msg(LOG_INFO, trace, "restore: %s's decision for the bar at %lld made no intent the first time: none now "
                    "(such decisions are counted in /api/v1/status counts.replay_unmade)", symbol, (long long)open_time);
        json_decref(ctx);
        return 0;
    }
    int reduce = req->qty > 0;
    intents_add(&e->intents, id, symbol, req->side, reduce, e->cfg.sizes.leverage, event_time, ctx);
    metric_inc(e->m_intents);
    if (!reduce) live_rate_record(&e->rate, event_time);
    return 0;
}

/* ---------- decisions ---------- */

static void eng_act(engine_t *e, const join_sym_t *s, live_mode_t mode, decision_t *d)
{
    const join_t *j = &s->join;
    char id[65] = "";
    if (d->reason) {
        for (int i = 0; i < RISKGUARD_REASONS; i++)
            if (strcmp(d->reason, riskguard_reason(i)) == 0) e->denials[i]++, metric_inc(e->m_denials[i]);
        log_msg(LOG_INFO, j->trace, "RiskGuard denied %s %s: %s (%s)", s->symbol, rl_action_name(d->live.action),
                d->reason, d->detail);
    }
    if (d->want_intent) {
        int rc = eng_intent(e, s->symbol, &d->req, j->event_time, j->open_time, j->trace, j->regime, j->votes, id);
        if (d->live.kind == LIVE_ENTRY && rc < 0) d->outcome = "PUBLISH_FAILED";
        if (d->live.kind == LIVE_EXIT && rc == 0) intents_hold_exit(&e->intents, s->symbol, id);
    }
    declog_entry_t r = {.open_time = j->open_time, .event_time = j->event_time, .mode = mode, .rl = j->rl,
                        .ens = j->ens, .action = d->live.action, .confidence = d->live.confidence,
                        .source_tag = d->live.source_tag, .outcome = d->outcome, .reason = d->reason};
    snprintf(r.symbol, sizeof r.symbol, "%s", s->symbol);
    snprintf(r.trace, sizeof r.trace, "%s", j->trace);
    snprintf(r.intent_id, sizeof r.intent_id, "%s", id);
    snprintf(r.detail, sizeof r.detail, "%s", d->detail);
    declog_add(&e->log, &r);
    char l[64];
    snprintf(l, sizeof l, "outcome=\"%s\"", d->outcome);
    metric_inc(metrics_counter(e->svc->metrics, "qt_engine_decisions_total", "Decisions by outcome", l));
}

/* Decide on the symbol's joined bar with whatever it holds, then clear it. */
static void eng_decide(engine_t *e, join_sym_t *s)
{
    const join_t *j = &s->join;
    if (!j->active) return;
    live_mode_t mode = decide_mode(&e->pv);
    if (mode == MODE_HYBRID || mode == MODE_PRIMARY) /* is RL keeping up? */
        breaker_record(e->rl_breaker, j->rl.present, 0, clock_mono_ms());
    const ledger_t *l = &e->book.ledger;
    const position_t *p = ledger_find(l, s->symbol);
    int dir = ledger_dir(l, s->symbol); /* an entry on its way counts as the position */
    decide_in_t in = {&e->pv,
                      &e->ml,
                      &e->cfg.sizes,
                      s->symbol,
                      book_price(&e->book, s->symbol),
                      dir ? dir : intents_entry_dir(&e->intents, s->symbol),
                      p ? fabs(p->qty) : 0,
                      intents_exit_held(&e->intents, s->symbol),
                      &e->rate,
                      l->n,
                      ledger_exposure_pct(l),
                      book_daily_pnl_pct(&e->book)};
    decision_t d;
    decide_bar(j, &in, &d);
    if (d.live.kind != LIVE_NONE) eng_act(e, s, mode, &d);
    joins_done(s);
    eng_lockstep_wake(e);
}

/* Has the join what the mode needs? */
static int eng_ready(const engine_t *e, const join_sym_t *s)
{
    const join_t *j = &s->join;
    live_mode_t m = decide_mode(&e->pv);
    int silent = m == MODE_HYBRID && j->ens.present && !j->rl.present &&
                 breaker_state(e->rl_breaker, clock_mono_ms()) == BREAKER_OPEN;
    return join_ready(j, m, decide_enabled(&e->pv), silent);
}

/* Decide the joined bars that waited for an intent to settle. */
static void eng_decide_held(engine_t *e)
{
    for (int i = 0; i < e->joins.n; i++) {
        join_sym_t *s = &e->joins.s[i];
        if (s->join.active && eng_ready(e, s) && !eng_lockstep_holds(e, s)) eng_decide(e, s);
    }
}

/* Paced feeds: a bar whose other source stayed silent QT_SIGNAL_JOIN_MS is decided with what it has. */
static void eng_join_timeouts(engine_t *e)
{
    int64_t now = clock_mono_ms();
    if (!feed_paced(e->feed)) return; /* full-speed replays stay deterministic */
    for (int i = 0; i < e->joins.n; i++)
        if (e->joins.s[i].join.active && now - e->joins.s[i].join.first_mono >= e->cfg.join_ms)
            eng_decide(e, &e->joins.s[i]);
}

/* Give ctx (an entry's context) the votes and regime when it has none. 1 if it did. */
static int eng_ctx_votes(json_t *ctx, const json_t *votes, const char *regime)
{
    if (!ctx || json_object_size(json_object_get(ctx, "model_votes"))) return 0;
    json_object_set_new(ctx, "model_votes", json_deep_copy(votes));
    const char *had = json_string_value(json_object_get(ctx, "regime"));
    if (regime && *regime && (!had || !*had)) json_object_set_new(ctx, "regime", json_string(regime));
    return 1;
}

/* An ensemble signal that came after its bar was decided (PRIMARY decides
 * on RL alone as soon as it arrives; on a paced or live feed the ensemble's
 * signal often comes later): its votes and regime go to the entry made on
 * that bar, and to its position once open, so position.closed carries them
 * and ml-threshold learns from the trade. Recorded in
 * <ns>:engine:entry_votes (by symbol, deleted at the close) so a restart's
 * rebuild gives them back. */
static void eng_late_votes(engine_t *e, const char *symbol, int64_t ot, const json_t *votes, const char *regime)
{
    if (!json_object_size(votes)) return;
    intent_rec_t *in = intents_entry_at(&e->intents, symbol, ot);
    json_t *pctx = ledger_context(&e->book.ledger, symbol);
    if (pctx && json_integer_value(json_object_get(pctx, "open_time")) != ot) pctx = NULL;
    int got = eng_ctx_votes(in ? in->ctx : NULL, votes, regime) + eng_ctx_votes(pctx, votes, regime);
    if (!got) return;
    e->late_votes++;
    char key[160], *txt;
    json_t *rec = json_pack("{s:I, s:O, s:s}", "open_time", (json_int_t)ot, "model_votes", votes, "regime", regime ? regime : "");
    proto_key(key, sizeof key, e->svc->cfg.ns, QT_KEY_ENGINE_ENTRY_VOTES);
    if (rec && (txt = json_dumps(rec, JSON_COMPACT))) {
        const char *argv[] = {"HSET", key, symbol, txt};
        bus_redis(e->svc->bus, NULL, NULL, 4, argv, NULL); /* none while replaying: written when first attached */
        free(txt);
    }
    json_decref(rec);
}

static void eng_on_signal(engine_t *e, const event_t *ev)
{
    const json_t *d = ev->data;
    join_sym_t *s = joins_sym(&e->joins, json_string_value(json_object_get(d, "symbol")));
    if (!s) return;
    int64_t ot = json_integer_value(json_object_get(d, "open_time"));
    join_verdict_t v = joins_check(&e->joins, s, ot);
    if (v == JOIN_LATE) {
        if (strcmp(ev->type, "signal.generated") == 0)
            eng_late_votes(e, s->symbol, ot, json_object_get(d, "model_votes"), json_string_value(json_object_get(d, "regime")));
        return;
    }
    if (v == JOIN_OLDER_DUE) eng_decide(e, s); /* the older bar will get no more signals */
    const char *action = json_string_value(json_object_get(d, "action"));
    join_signal_t sig = {s->symbol, ev->trace, json_string_value(json_object_get(d, "regime")), ot,
                         json_integer_value(json_object_get(d, "event_time")),
                         strcmp(ev->type, "rl.signal.generated") == 0, s->join.rl.action,
                         strcmp(action, PROTO_ENS_LONG) == 0 ? 1 : strcmp(action, PROTO_ENS_SHORT) == 0 ? -1 : 0,
                         json_number_value(json_object_get(d, "confidence")), json_object_get(d, "model_votes")};
    if (sig.rl) rl_action_parse(action, &sig.action);
    joins_take(s, &sig, clock_mono_ms());
    if (eng_ready(e, s) && !eng_lockstep_holds(e, s)) eng_decide(e, s);
}

/* ---------- bars ---------- */

/* Stop-loss / take-profit of the symbol's position against this bar. */
static void eng_exits(engine_t *e, const char *symbol, int64_t open_time, int64_t t, double high, double low,
                      const char *trace)
{
    intent_req_t req;
    const json_t *ctx;
    char id[65];
    if (intents_exit_held(&e->intents, symbol)) return;
    double sl = e->cfg.sizes.stop_loss_pct / 100.0 * e->ml.sl_mult;
    if (!book_exit_due(&e->book, symbol, high, low, sl, e->cfg.tp_ratio, &req, &ctx)) return;
    const char *regime = json_string_value(json_object_get(ctx, "regime"));
    if (eng_intent(e, symbol, &req, t, open_time, trace, regime ? regime : "", json_object_get(ctx, "model_votes"),
                   id) == 0)
        intents_hold_exit(&e->intents, symbol, id);
}

/* The bar's price: marks the position and the equity curve, and sends the
 * stop-loss/take-profit exit it crosses. */
static void eng_bar_price(engine_t *e, const char *symbol, int64_t open_time, int64_t t, double high, double low,
                          double close, const char *trace)
{
    if (book_mark(&e->book, symbol, close, t) < 0) return;
    eng_track(e, t);
    eng_exits(e, symbol, open_time, t, high, low, trace);
}

static void eng_on_bar(engine_t *e, const char *symbol, int64_t open_time, int64_t t, double high, double low,
                       double close, const char *trace)
{
    join_sym_t *s = joins_sym(&e->joins, symbol);
    if (!s) return;
    joins_bar(s, open_time);
    eng_bar_price(e, symbol, open_time, t, high, low, close, trace);
    eng_bar_performance(e, t, trace);
}

/* In lockstep a bar goes out in steps, each once the one before settled:
 * its exits (on the bar's high/low, so the bar's consumers see the position
 * as it is at the bar's close), then performance.update, then the bar. */
static int eng_emit_steps(engine_t *e, const feed_bar_t *b, const char *bar_id)
{
    if (!joins_sym(&e->joins, b->symbol)) return 0;
    int step = lockstep_step(e->lock, b->symbol, b->open_time);
    if (step == 0) {
        lockstep_step_set(e->lock, step = 1);
        long before = e->intents.total;
        eng_bar_price(e, b->symbol, b->open_time, b->close_time, b->high, b->low, b->close, bar_id);
        if (e->intents.total > before) return -1;
    }
    if (step == 1) {
        lockstep_step_set(e->lock, 2);
        if (eng_bar_performance(e, b->close_time, bar_id)) return -1;
    }
    return 0;
}

/* The feed's bar: 0 taken, -1 offer it again later, -2 never. */
static int eng_emit_bar(void *ud, const feed_bar_t *b)
{
    engine_t *e = ud;
    char id[37];
    if (bus_outbox_size(e->svc->bus) > (size_t)e->svc->cfg.outbox_max / 2) return -1; /* back-pressure */
    if (eng_lockstep_wait(e)) return -1;
    pub_bar_id(e->svc, b, id);
    int steps = eng_lockstep_on(e);
    if (steps && eng_emit_steps(e, b, id) < 0) return -1;
    int rc = pub_bar(e->svc, b);
    if (rc < 0) return rc; /* -2: the bar breaks the contract, the feed skips it */
    metric_inc(e->m_bars);
    lockstep_bar_done(e->lock);
    if (!steps) {
        eng_on_bar(e, b->symbol, b->open_time, b->close_time, b->high, b->low, b->close, id);
        return 0;
    }
    join_sym_t *s = joins_sym(&e->joins, b->symbol);
    if (s) joins_bar(s, b->open_time); /* now it waits for its decision */
    eng_unsettled(e);                  /* and the decision for the signals and policies about it */
    return 0;
}

/* ---------- executions ---------- */

/* Book an execution; with publish, also its position and feedback events
 * and the decisions that waited for it. */
static void eng_apply_execution(engine_t *e, const json_t *d, const char *exec_id, const char *trace, int publish,
                                const char *close_reason)
{
    const char *symbol = json_string_value(json_object_get(d, "symbol"));
    const char *intent_id = json_string_value(json_object_get(d, "intent_id"));
    const intent_rec_t *in = intents_find(&e->intents, intent_id);
    int64_t t = json_integer_value(json_object_get(d, "event_time"));
    fill_t f = {symbol, strcmp(json_string_value(json_object_get(d, "side")), PROTO_SIDE_BUY) == 0 ? 1 : -1,
                json_number_value(json_object_get(d, "qty")), json_number_value(json_object_get(d, "price")),
                json_number_value(json_object_get(d, "fee")), in && in->leverage > 0 ? in->leverage : e->cfg.sizes.leverage,
                t, in ? in->ctx : NULL};
    fill_result_t r;
    if (ledger_apply(&e->book.ledger, &f, &r) < 0) {
        log_error("execution %s for %s could not be booked (bad fill or too many positions)", exec_id, symbol);
        return;
    }
    const char *tag = in ? json_string_value(json_object_get(in->ctx, "source_tag")) : NULL;
    if (!tag || !*tag) tag = "SIGNAL";
    if (intents_settle(&e->intents, intent_id, INTENT_EXECUTED)) eng_lockstep_wake(e);
    if (!ledger_find(&e->book.ledger, symbol) && intents_exit_held(&e->intents, symbol))
        intents_hold_exit(&e->intents, symbol, "");
    if (publish && r.closed) {
        char name[128], key[160];
        proto_key(key, sizeof key, e->svc->cfg.ns, QT_KEY_ENGINE_ENTRY_VOTES);
        const char *argv[] = {"HDEL", key, symbol}; /* the position's late votes, if any, are in its close now */
        bus_redis(e->svc->bus, NULL, NULL, 3, argv, NULL);
        pub_position_closed(e->svc, symbol, &r,
                            close_reason ? close_reason : strncmp(tag, "RISK_", 5) == 0 ? tag + 5 : "SIGNAL", exec_id,
                            trace, t);
        snprintf(name, sizeof name, "perf:%s", exec_id);
        eng_performance(e, t, name, trace);
        eng_unsettled(e); /* the next step waits until every feedback consumer saw it */
    }
    const position_t *p = ledger_find(&e->book.ledger, symbol);
    if (publish && r.opened) {
        if (p) pub_position_opened(e->svc, p, book_equity(&e->book), exec_id, trace);
        eng_unsettled(e);
    }
    if (publish) eng_decide_held(e);
    json_decref(r.closed_ctx);
}

/* The venue no longer has symbol's position (closed outside the engine: a
 * liquidation, a manual close): book it closed at the last price, at the
 * last bar's event time, so no exit is sent for it again. Nothing when the
 * engine holds no position there, or an entry of it is on its way (the
 * venue's answer to it tells). */
static void eng_position_gone(engine_t *e, const char *symbol, const char *why, const char *exec_id, const char *trace,
                              int publish)
{
    const position_t *p = ledger_find(&e->book.ledger, symbol);
    if (!p || intents_entry_dir(&e->intents, symbol)) return;
    double px = book_price(&e->book, symbol) > 0 ? book_price(&e->book, symbol) : p->entry_price;
    int64_t t = e->book.last_bar_time > p->opened_at ? e->book.last_bar_time : p->opened_at;
    json_t *d = json_pack("{s:s, s:s, s:s, s:f, s:f, s:f, s:I}", "symbol", symbol, "intent_id", "", "side",
                          p->qty > 0 ? PROTO_SIDE_SELL : PROTO_SIDE_BUY, "qty", fabs(p->qty), "price", px, "fee", 0.0,
                          "event_time", (json_int_t)t);
    if (publish) { /* live, not the rebuild's replay of it */
        log_msg(LOG_WARN, trace, "%s: position closed outside the engine, booked at %.8g: %s", symbol, px, why);
        metric_inc(e->m_external);
    }
    intents_hold_exit(&e->intents, symbol, "");
    eng_apply_execution(e, d, exec_id, trace, publish, "EXTERNAL");
    json_decref(d);
}

static void eng_execution_failed(engine_t *e, const event_t *ev)
{
    const char *iid = json_string_value(json_object_get(ev->data, "intent_id"));
    intents_settle(&e->intents, iid, INTENT_FAILED);
    const char *code = json_string_value(json_object_get(ev->data, "code"));
    if (code && strcmp(code, "NO_POSITION") == 0)
        eng_position_gone(e, json_string_value(json_object_get(ev->data, "symbol")),
                          json_string_value(json_object_get(ev->data, "reason")), ev->id, ev->trace, 1);
    eng_decide_held(e);
    eng_lockstep_wake(e); /* an exit is tried again on the next bar, an entry may be decided again */
    log_msg(LOG_WARN, ev->trace, "intent %s failed: %s", iid, json_string_value(json_object_get(ev->data, "reason")));
}

/* ---------- the streams ---------- */

/* qt:signal and qt:market (prices when the feed runs elsewhere). */
static bus_result_t eng_on_signal_event(void *ud, const bus_msg_t *m, char *err, size_t errlen)
{
    engine_t *e = ud;
    const json_t *d = m->ev->data;
    const char *type = m->ev->type;
    if (strcmp(type, "rl.signal.generated") == 0 || strcmp(type, "signal.generated") == 0) {
        eng_on_signal(e, m->ev);
    } else if (strcmp(type, "ml.threshold.adjusted") == 0) {
        e->ml.threshold = json_number_value(json_object_get(d, "min_confidence"));
        e->ml.conservative = json_is_true(json_object_get(d, "conservative"));
    } else if (strcmp(type, "ml.risk.limit.update") == 0) {
        e->ml.max_pos = json_number_value(json_object_get(d, "max_position_size"));
        e->ml.sl_mult = json_number_value(json_object_get(d, "stop_loss_multiplier"));
    } else if (strcmp(type, "model.vote") == 0) { /* a member not yet moved: say where its votes go */
        snprintf(err, errlen, "model.vote belongs on the vote stream (%s:%s; in a partitioned namespace its symbol's "
                              "partition of it), where ml-threshold reads it; the signal stream carries signals only "
                              "(contract v2, docs/events.md)",
                 bus_cfg(e->svc->bus)->ns, QT_STREAM_VOTE);
        return BUS_DEAD;
    } else if (strcmp(type, "market.data.update") == 0 && json_is_true(json_object_get(d, "closed"))) {
        join_sym_t *s = joins_sym(&e->joins, json_string_value(json_object_get(d, "symbol")));
        if (s && tguard_leap(s->last_bar_open, &s->leap_held, json_integer_value(json_object_get(d, "open_time")),
                             kline_interval_ms(json_string_value(json_object_get(d, "interval"))), "data.open_time",
                             err, errlen) < 0)
            return BUS_DEAD;
        eng_on_bar(e, json_string_value(json_object_get(d, "symbol")), json_integer_value(json_object_get(d, "open_time")),
                   json_integer_value(json_object_get(d, "event_time")), json_number_value(json_object_get(d, "high")),
                   json_number_value(json_object_get(d, "low")), json_number_value(json_object_get(d, "close")),
                   m->ev->trace);
    }
    return BUS_OK;
}

static bus_result_t eng_on_execution_event(void *ud, const bus_msg_t *m, char *err, size_t errlen)
{
    engine_t *e = ud;
    (void)err;
    (void)errlen;
    if (dedupe_check(e->execs_seen, m->ev->id)) return BUS_OK; /* the same execution event again */
    if (strcmp(m->ev->type, "trade.executed") == 0) eng_apply_execution(e, m->ev->data, m->ev->id, m->ev->trace, 1, NULL);
    else if (strcmp(m->ev->type, "trade.failed") == 0) eng_execution_failed(e, m->ev);
    else if (strcmp(m->ev->type, "position.external") == 0)
        eng_position_gone(e, json_string_value(json_object_get(m->ev->data, "symbol")),
                          json_string_value(json_object_get(m->ev->data, "reason")), m->ev->id, m->ev->trace, 1);
    return BUS_OK;
}

static bus_result_t eng_on_policy_event(void *ud, const bus_msg_t *m, char *err, size_t errlen)
{
    engine_t *e = ud;
    const json_t *d = m->ev->data;
    (void)err;
    (void)errlen;
    policyview_apply(&e->pv, m->ev);
    if (strcmp(m->ev->type, "policy.daily.reset") == 0 && !bus_replaying(e->svc->bus)) {
        /* the day starts again from the equity of now (a replay at a restart
         * leaves it: the equity's record holds the start it set) */
        e->book.eq.day_start = book_equity(&e->book);
        eng_record_equity(e);
        log_msg(LOG_INFO, m->ev->trace, "daily figures reset: the day starts again at equity %.2f", e->book.eq.day_start);
    } else if (strcmp(m->ev->type, "policy.config.updated") == 0)
        log_msg(LOG_INFO, m->ev->trace, "config %s changed (version %lld)", json_string_value(json_object_get(d, "key")),
                (long long)json_integer_value(json_object_get(d, "version")));
    return BUS_OK;
}

/* ---------- rebuild from the streams (see rebuild.h) ---------- */

static void eng_rb_checkpoint(void *ud, const json_t *j)
{
    engine_t *e = ud;
    e->book.eq.peak = json_number_value(json_object_get(j, "peak_equity"));
    e->book.eq.day_start = json_number_value(json_object_get(j, "day_start_equity"));
    e->book.eq.day = json_integer_value(json_object_get(j, "day"));
    e->book.last_perf_time = json_integer_value(json_object_get(j, "last_perf_time"));
    e->log.shadow = (long)json_integer_value(json_object_get(j, "shadow_decisions"));
    e->log.total = (long)json_integer_value(json_object_get(j, "decisions_total"));
    e->log.last_at = json_integer_value(json_object_get(j, "last_decision_at"));
}

static void eng_rb_config(void *ud, const struct redisReply *r)
{
    engine_t *e = ud;
    policyview_load_hash(&e->pv, r);
    e->config_mono = clock_mono_ms();
}

static void eng_rb_trading(void *ud, const char *txt, size_t len)
{
    engine_t *e = ud;
    policyview_load_trading(&e->pv, txt, len);
}

static void eng_rb_intent(void *ud, const event_t *ev)
{
    engine_t *e = ud;
    const json_t *d = ev->data;
    const char *symbol = json_string_value(json_object_get(d, "symbol"));
    join_sym_t *s = joins_sym(&e->joins, symbol);
    int64_t ot = json_integer_value(json_object_get(d, "open_time")), t = json_integer_value(json_object_get(d, "event_time"));
    int reduce = json_is_true(json_object_get(d, "reduce_only"));
    if (s && ot > s->decided_upto && strcmp(json_string_value(json_object_get(d, "mode")), "RISK") != 0)
        s->decided_upto = ot;
    if (!reduce) live_rate_record(&e->rate, t);
    json_t *votes = json_object_get(d, "model_votes");
    const char *regime = json_string_value(json_object_get(d, "regime"));
    json_t *ctx = json_pack("{s:O, s:s, s:o, s:O, s:O, s:I}", "confidence", json_object_get(d, "confidence"), "regime",
                            regime ? regime : "", "model_votes", votes ? json_incref(votes) : json_object(), "action",
                            json_object_get(d, "action"), "source_tag", json_object_get(d, "source_tag"), "open_time",
                            (json_int_t)ot);
    const json_t *late = s && !reduce ? json_object_get(e->entry_votes, s->symbol) : NULL; /* eng_late_votes */
    if (late && json_integer_value(json_object_get(late, "open_time")) == ot)
        eng_ctx_votes(ctx, json_object_get(late, "model_votes"), json_string_value(json_object_get(late, "regime")));
    intents_add(&e->intents, ev->id, s ? s->symbol : "",
                strcmp(json_string_value(json_object_get(d, "side")), PROTO_SIDE_BUY) == 0 ? 1 : -1, reduce,
                json_number_value(json_object_get(d, "leverage")), t, ctx);
}

static void eng_rb_execution(void *ud, const char *sid, const event_t *ev)
{
    engine_t *e = ud;
    snprintf(e->exec_folded, sizeof e->exec_folded, "%s", sid);
    if (dedupe_check(e->execs_seen, ev->id)) return;
    const char *code = json_string_value(json_object_get(ev->data, "code"));
    if (strcmp(ev->type, "trade.executed") == 0) eng_apply_execution(e, ev->data, ev->id, ev->trace, 0, NULL);
    else if (strcmp(ev->type, "trade.failed") == 0)
        intents_settle(&e->intents, json_string_value(json_object_get(ev->data, "intent_id")), INTENT_FAILED);
    if ((strcmp(ev->type, "trade.failed") == 0 && code && strcmp(code, "NO_POSITION") == 0) ||
        strcmp(ev->type, "position.external") == 0)
        eng_position_gone(e, json_string_value(json_object_get(ev->data, "symbol")), "", ev->id, ev->trace, 0);
}

/* Market payloads newest first: the first of each symbol is its last price
 * and where the feed resumes. */
static void eng_rb_bar(void *ud, const json_t *d)
{
    engine_t *e = ud;
    const char *sym = json_string_value(json_object_get(d, "symbol"));
    if (!sym || !joins_sym(&e->joins, sym) || book_price(&e->book, sym) > 0) return;
    book_mark(&e->book, sym, json_number_value(json_object_get(d, "close")),
              json_integer_value(json_object_get(d, "event_time")));
    if (e->feed) feed_resume(e->feed, sym, json_integer_value(json_object_get(d, "open_time")));
}

/* The last performance.update published, by whichever engine: the cadence
 * goes on from it (a checkpoint may be older than what its writer published
 * after it). */
static void eng_rb_perf(void *ud, int64_t t)
{
    engine_t *e = ud;
    e->perf_published = t;
}

/* A late-votes record is {open_time, model_votes, regime} with votes as
 * position.closed's schema has them. */
static int eng_entry_votes_ok(const json_t *rec)
{
    const json_t *votes = json_object_get(rec, "model_votes"), *v;
    const char *name;
    if (!json_is_integer(json_object_get(rec, "open_time")) || !json_is_string(json_object_get(rec, "regime")) ||
        strlen(json_string_value(json_object_get(rec, "regime"))) > 32 || !json_is_object(votes) ||
        json_object_size(votes) > 32 || json_object_size(rec) != 3)
        return 0;
    json_object_foreach((json_t *)votes, name, v) {
        const char *a = json_string_value(json_object_get(v, "action"));
        double c = json_number_value(json_object_get(v, "confidence"));
        if (json_object_size(v) != 2 || !a || (strcmp(a, "LONG") && strcmp(a, "SHORT") && strcmp(a, "HOLD")) ||
            !json_is_number(json_object_get(v, "confidence")) || !(c >= 0 && c <= 1))
            return 0;
    }
    return 1;
}

static void eng_rb_entry_votes(void *ud, const struct redisReply *r)
{
    engine_t *e = ud;
    long bad = 0;
    json_decref(e->entry_votes);
    e->entry_votes = json_object();
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        json_t *rec = r->element[i]->str && r->element[i + 1]->str ? json_loads(r->element[i + 1]->str, 0, NULL) : NULL;
        if (rec && eng_entry_votes_ok(rec)) json_object_set(e->entry_votes, r->element[i]->str, rec);
        else bad++;
        json_decref(rec);
    }
    if (bad) log_warn("%ld records of late votes in Redis are malformed: not used", bad);
}

static void eng_rb_equity(void *ud, const struct redisReply *r)
{
    engine_t *e = ud;
    int got = 0;
    equity_t rec = {0};
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const char *f = r->element[i]->str, *v = r->element[i + 1]->str;
        char *end;
        if (!f || !v) continue;
        double x = strtod(v, &end);
        if (*end || !isfinite(x)) continue; /* not ours: left out */
        if (!strcmp(f, "peak") && x > 0) rec.peak = x, got |= 1;
        else if (!strcmp(f, "day") && x >= 0) rec.day = (int64_t)x, got |= 2;
        else if (!strcmp(f, "day_start") && x > 0) rec.day_start = x, got |= 4;
    }
    if (got == 7) e->eq_rec = rec, e->eq_rec_found = 1;
    else if (r->elements) log_warn("the equity's record in Redis is incomplete or malformed: not used");
}

static int eng_rebuild(engine_t *e, char *err, size_t errlen)
{
    rebuild_ops_t ops = {e, eng_rb_checkpoint, eng_rb_config, eng_rb_trading, eng_rb_intent, eng_rb_execution, eng_rb_bar,
                         eng_rb_perf, eng_rb_equity, eng_rb_entry_votes};
    if (rebuild_run(&e->svc->cfg, e->cfg.startup_wait_s, &ops, err, errlen) < 0) return -1;
    if (e->perf_published > e->book.last_perf_time) e->book.last_perf_time = e->perf_published;
    eng_equity_from_record(e);
    double eq = book_equity(&e->book);
    if (!(e->book.eq.day_start > 0)) e->book.eq.day_start = eq;
    if (!(e->book.eq.peak > 0)) e->book.eq.peak = eq;
    log_info("state rebuilt: %d open positions, realized PnL %.2f, %ld intents, executions folded up to %s",
             e->book.ledger.n, e->book.ledger.realized, e->intents.total, e->exec_folded[0] ? e->exec_folded : "none");
    return 0;
}

/* ---------- state across restarts (ckpt.h) ---------- */

/* What the streams' rebuild does not give back, in a checkpoint: the ML
 * limits, the equity's day, peak and curve, the counters, and each symbol's
 * join (its votes as JSON text after the fixed part). */
typedef struct eng_saved {
    ml_limits_t ml;
    long denials[RISKGUARD_REASONS], log_total, log_shadow, joins_late;
    int64_t log_last_at, last_perf_time, last_bar_time;
    int njoins;
} eng_saved_t;

typedef struct eng_saved_join {
    join_sym_t sym; /* join.votes is not kept: votes_len bytes of JSON follow */
    size_t votes_len;
} eng_saved_join_t;

static char eng_format[96];

static int eng_save(void *ud, char **out, size_t *len)
{
    engine_t *e = ud;
    eng_saved_t h;
    memset(&h, 0, sizeof h);
    h.ml = e->ml, h.log_total = e->log.total, h.log_shadow = e->log.shadow, h.joins_late = e->joins.late;
    h.log_last_at = e->log.last_at, h.last_perf_time = e->book.last_perf_time, h.last_bar_time = e->book.last_bar_time;
    h.njoins = e->joins.n;
    memcpy(h.denials, e->denials, sizeof h.denials);
    char *votes[JOINS_SYMS] = {0};
    size_t total = sizeof h + sizeof e->book.eq;
    for (int i = 0; i < e->joins.n; i++) {
        const json_t *v = e->joins.s[i].join.votes;
        votes[i] = v ? json_dumps(v, JSON_COMPACT) : NULL;
        total += sizeof(eng_saved_join_t) + (votes[i] ? strlen(votes[i]) : 0);
    }
    char *buf = malloc(total), *at = buf;
    if (buf) {
        memcpy(at, &h, sizeof h), at += sizeof h;
        memcpy(at, &e->book.eq, sizeof e->book.eq), at += sizeof e->book.eq;
        for (int i = 0; i < e->joins.n; i++) {
            eng_saved_join_t j;
            memset(&j, 0, sizeof j);
            j.sym = e->joins.s[i], j.sym.join.votes = NULL, j.votes_len = votes[i] ? strlen(votes[i]) : 0;
            memcpy(at, &j, sizeof j), at += sizeof j;
            if (j.votes_len) memcpy(at, votes[i], j.votes_len), at += j.votes_len;
        }
    }
    for (int i = 0; i < e->joins.n; i++) free(votes[i]);
    *out = buf, *len = total;
    return buf ? 0 : -1;
}

/* Check the saved joins (strings, votes JSON) and the bytes they take; -1 if malformed. */
static int eng_saved_joins_ok(const char *at, const char *end, int n)
{
    for (int i = 0; i < n; i++) {
        eng_saved_join_t j;
        if ((size_t)(end - at) < sizeof j) return -1;
        memcpy(&j, at, sizeof j), at += sizeof j;
        if (!memchr(j.sym.symbol, '\0', sizeof j.sym.symbol) || !memchr(j.sym.join.regime, '\0', sizeof j.sym.join.regime) ||
            !memchr(j.sym.join.trace, '\0', sizeof j.sym.join.trace) || j.votes_len > (size_t)(end - at))
            return -1;
        at += j.votes_len;
    }
    return at == end ? 0 : -1;
}

/* A saved join back into the table, with what the rebuild found: a bar it
 * saw decided (an intent after the checkpoint) is not joined again. */
static void eng_load_join(engine_t *e, const eng_saved_join_t *j, const char *votes, int64_t now)
{
    join_sym_t *s = joins_sym(&e->joins, j->sym.symbol);
    if (!s) return;
    int64_t decided = s->decided_upto > j->sym.decided_upto ? s->decided_upto : j->sym.decided_upto;
    int64_t seen = s->last_bar_open > j->sym.last_bar_open ? s->last_bar_open : j->sym.last_bar_open;
    json_decref(s->join.votes);
    *s = j->sym;
    s->decided_upto = decided, s->last_bar_open = seen;
    s->join.votes = j->votes_len ? json_loadb(votes, j->votes_len, 0, NULL) : NULL;
    s->join.first_mono = now; /* the saver's monotonic clock is not ours */
    if (s->join.active && s->join.open_time <= decided) {
        json_decref(s->join.votes);
        memset(&s->join, 0, sizeof s->join);
    }
}

static int eng_load(void *ud, const char *in, size_t len, char *err, size_t errlen)
{
    engine_t *e = ud;
    eng_saved_t h;
    if (len < sizeof h + sizeof e->book.eq) return snprintf(err, errlen, "state of %zu bytes is too short", len), -1;
    memcpy(&h, in, sizeof h);
    const char *at = in + sizeof h + sizeof e->book.eq, *end = in + len;
    equity_t eq;
    memcpy(&eq, in + sizeof h, sizeof eq);
    if (h.njoins < 0 || h.njoins > JOINS_SYMS || eq.n < 0 || eq.n > EQUITY_POINTS || eq.head < 0 ||
        eq.head >= EQUITY_POINTS || eng_saved_joins_ok(at, end, h.njoins) < 0)
        return snprintf(err, errlen, "state is malformed (counts, strings or lengths out of bounds)"), -1;
    e->ml = h.ml, e->log.total = h.log_total, e->log.shadow = h.log_shadow, e->joins.late = h.joins_late;
    e->log.last_at = h.log_last_at;
    e->book.last_perf_time = h.last_perf_time > e->perf_published ? h.last_perf_time : e->perf_published;
    if (h.last_bar_time > e->book.last_bar_time) e->book.last_bar_time = h.last_bar_time;
    memcpy(e->denials, h.denials, sizeof e->denials);
    e->book.eq = eq;
    int64_t now = clock_mono_ms();
    for (int i = 0; i < h.njoins; i++) {
        eng_saved_join_t j;
        memcpy(&j, at, sizeof j), at += sizeof j;
        eng_load_join(e, &j, at, now);
        at += j.votes_len;
    }
    eng_equity_from_record(e);
    return 0;
}

static const ckpt_ops_t eng_ckpt = {.format = eng_format, .save = eng_save, .load = eng_load};

/* ---------- periodic work ---------- */

/* Write key = text on the command link (nothing to wait for: the next
 * checkpoint writes it again). */
static void eng_set(engine_t *e, const char *name, json_t *j)
{
    char key[160];
    char *txt = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(j);
    proto_key(key, sizeof key, e->svc->cfg.ns, name);
    const char *argv[] = {"SET", key, txt};
    if (txt) bus_redis(e->svc->bus, NULL, NULL, 3, argv, NULL);
    free(txt);
}

/* The engine's own checkpoint, and its book for the executor's reconciliation. */
static void eng_checkpoint(engine_t *e)
{
    const ledger_t *l = &e->book.ledger;
    eng_set(e, QT_KEY_ENGINE_STATE,
            json_pack("{s:f, s:f, s:I, s:I, s:I, s:I, s:I}", "peak_equity", e->book.eq.peak, "day_start_equity",
                      e->book.eq.day_start, "day", (json_int_t)e->book.eq.day, "last_perf_time",
                      (json_int_t)e->book.last_perf_time, "shadow_decisions", (json_int_t)e->log.shadow,
                      "decisions_total", (json_int_t)e->log.total, "last_decision_at", (json_int_t)e->log.last_at));
    json_t *pos = json_object();
    for (int i = 0; i < l->n; i++) json_object_set_new(pos, l->pos[i].symbol, json_real(l->pos[i].qty));
    eng_set(e, QT_KEY_ENGINE_POSITIONS, pos);
    e->ckpt_mono = clock_mono_ms();
}

/* Consumer lag of qt:market's groups: the feed waits while it is high. */
static void eng_lag_cb(void *ud, const struct redisReply *r)
{
    engine_t *e = ud;
    long long lag = 0;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *g = r->element[i];
        for (size_t k = 0; k + 1 < g->elements; k += 2)
            if (strcmp(g->element[k]->str, "lag") == 0 && g->element[k + 1]->type == REDIS_REPLY_INTEGER &&
                g->element[k + 1]->integer > lag)
                lag = g->element[k + 1]->integer;
    }
    if (lag > e->lag_acc) e->lag_acc = lag;
    if (--e->lag_wait > 0) return; /* the largest lag of every partition's groups */
    e->market_lag = e->lag_acc;
    if (e->feed) feed_hold(e->feed, e->market_lag > e->cfg.max_lag);
}

static void eng_config_cb(void *ud, const struct redisReply *r)
{
    engine_t *e = ud;
    policyview_load_hash(&e->pv, r);
}

static void eng_tick(evutil_socket_t fd, short what, void *arg)
{
    engine_t *e = arg;
    char key[160];
    (void)fd;
    (void)what;
    int64_t now = clock_mono_ms();
    eng_join_timeouts(e);
    if (e->lag_wait <= 0) {
        int parts = (int)e->svc->cfg.partitions;
        e->lag_acc = 0, e->lag_wait = 0;
        for (int p = 0; p < parts; p++) {
            proto_part_key(key, sizeof key, e->svc->cfg.ns, QT_STREAM_MARKET, parts, p);
            const char *lag[] = {"XINFO", "GROUPS", key};
            e->lag_wait++;
            if (bus_redis(e->svc->bus, eng_lag_cb, e, 3, lag, NULL) < 0) e->lag_wait--;
        }
    }
    if (now - e->config_mono >= ENG_CONFIG_MS) {
        proto_key(key, sizeof key, e->svc->cfg.ns, QT_KEY_POLICY_CONFIG);
        const char *argv[] = {"HGETALL", key};
        if (bus_redis(e->svc->bus, eng_config_cb, e, 2, argv, NULL) == 0) e->config_mono = now;
    }
    if (now - e->ckpt_mono >= ENG_CKPT_MS) eng_checkpoint(e);
}

/* ---------- status ---------- */

/* The feed's status, where done means its last bar is in Redis: the feed
 * counts a bar published when the bus takes it, and a reader told "done"
 * before the bus has written it would find the stream short. */
static json_t *eng_feed_status(const engine_t *e)
{
    json_t *st = feed_status(e->feed);
    if (json_is_true(json_object_get(st, "done")) && bus_outbox_size(e->svc->bus) > 0)
        json_object_set_new(st, "done", json_false());
    return st;
}

static json_t *eng_status(void *ud)
{
    engine_t *e = ud;
    json_t *den = json_object();
    for (int i = 0; i < RISKGUARD_REASONS; i++) json_object_set_new(den, riskguard_reason(i), json_integer(e->denials[i]));
    breaker_state_t rb = breaker_state(e->rl_breaker, clock_mono_ms());
    live_mode_t mode = decide_mode(&e->pv);
    const json_t *trading = e->pv.trading;
    return json_pack("{s:o?, s:o, s:o, s:s, s:{s:s, s:b}, s:{s:f, s:b, s:f, s:f}, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}, s:o, s:I, "
                     "s:o, s:b}",
                     "state", svc_state_status(e->svc), "bus", bus_status(e->svc->bus), "feed", e->feed ? eng_feed_status(e) : json_null(), "mode",
                     live_mode_name(mode), "rl_signals", "breaker", breaker_state_name(rb), "hybrid_fallback",
                     mode == MODE_HYBRID && rb == BREAKER_OPEN, "ml", "threshold", e->ml.threshold, "conservative",
                     e->ml.conservative, "max_position_size", e->ml.max_pos, "stop_loss_multiplier", e->ml.sl_mult,
                     "counts", "decisions", (json_int_t)e->log.total, "intents", (json_int_t)e->intents.total,
                     "executed", (json_int_t)e->intents.executed, "failed", (json_int_t)e->intents.failed,
                     "shadow_decisions", (json_int_t)e->log.shadow, "late_signals", (json_int_t)e->joins.late,
                     "lockstep_timeouts", (json_int_t)lockstep_timeouts(e->lock), "replay_unmade",
                     (json_int_t)e->replay_unmade, "late_votes_attached", (json_int_t)e->late_votes, "riskguard_denials", den,
                     "market_lag", (json_int_t)e->market_lag, "trading_policy",
                     trading ? json_incref((json_t *)trading) : json_null(), "has_trading_policy", trading != NULL);
}

/* ---------- life ---------- */

static int eng_cfg_env(engine_cfg_t *c, char *err, size_t errlen)
{
    config_get_str("QT_FEED", "", &c->feed);
    return config_get_double("QT_LEVERAGE", 3, 1, 125, &c->sizes.leverage, err, errlen) < 0 ||
                   config_get_double("QT_SIZE_SMALL", 0.01, 0.0001, 1, &c->sizes.size_small, err, errlen) < 0 ||
                   config_get_double("QT_SIZE_LARGE", 0.02, 0.0001, 1, &c->sizes.size_large, err, errlen) < 0 ||
                   config_get_double("QT_STOP_LOSS_PCT", 1.0, 0.01, 50, &c->sizes.stop_loss_pct, err, errlen) < 0 ||
                   config_get_double("QT_TP_RATIO", 2.0, 0.1, 100, &c->tp_ratio, err, errlen) < 0 ||
                   config_get_double("QT_ACCOUNT_BALANCE", 10000, 1, 1e12, &c->balance, err, errlen) < 0 ||
                   config_get_long("QT_SIGNAL_JOIN_MS", 2000, 1, 600000, &c->join_ms, err, errlen) < 0 ||
                   config_get_long("QT_FEED_MAX_LAG", 10000, 10, 100000000L, &c->max_lag, err, errlen) < 0 ||
                   config_get_bool("QT_FEED_LOCKSTEP", 1, &c->lockstep, err, errlen) < 0 ||
                   config_get_long("QT_FEED_LOCKSTEP_MS", 2000, 1, 600000, &c->lockstep_ms, err, errlen) < 0 ||
                   config_get_long("QT_STARTUP_WAIT_S", 60, 0, 3600, &c->startup_wait_s, err, errlen) < 0
               ? -1
               : 0;
}

static void eng_init_metrics(engine_t *e)
{
    metrics_t *m = e->svc->metrics;
    char l[64];
    for (int i = 0; i < RISKGUARD_REASONS; i++) {
        snprintf(l, sizeof l, "reason=\"%s\"", riskguard_reason(i));
        e->m_denials[i] = metrics_counter(m, "qt_riskguard_denials_total", "RiskGuard denials by reason", l);
    }
    e->m_intents = metrics_counter(m, "qt_engine_intents_total", "Trade intents published", NULL);
    e->m_bars = metrics_counter(m, "qt_feed_bars_published_total", "Bars published by the feed", NULL);
    e->m_external = metrics_counter(m, "qt_engine_positions_closed_externally_total",
                                    "Positions the venue no longer had, booked closed (liquidation, manual close)", NULL);
    e->m_equity = metrics_gauge(m, "qt_engine_equity", "Account equity (balance + realized + unrealized)", NULL);
    e->m_daily = metrics_gauge(m, "qt_engine_daily_pnl_pct", "Today's PnL, percent of the day's start equity", NULL);
    e->m_drawdown = metrics_gauge(m, "qt_engine_drawdown_pct", "Drawdown from the peak equity, percent", NULL);
    e->m_dd_limit = metrics_gauge(m, "qt_engine_daily_dd_limit_pct", "risk.daily_dd_limit_pct: the daily loss that stops new trades", NULL);
}

/* Subscriptions, the tick and the HTTP routes. */
static int eng_wire(engine_t *e)
{
    svc_t *svc = e->svc;
    struct timeval tv = {0, ENG_TICK_MS * 1000};
    e->api = (eng_api_t){&e->pv, &e->intents, &e->log, &e->book};
    /* a read lists streams in subscription order: bars (when the feed runs
     * elsewhere) before the signals about them, executions before policies */
    if (!(e->tick = event_new(svc->base, -1, EV_PERSIST, eng_tick, e)) || event_add(e->tick, &tv) < 0 ||
        (strcmp(e->cfg.feed, "none") == 0 && bus_subscribe(svc->bus, QT_STREAM_MARKET, eng_on_signal_event, e) < 0) ||
        bus_subscribe(svc->bus, QT_STREAM_SIGNAL, eng_on_signal_event, e) < 0 ||
        bus_subscribe(svc->bus, QT_STREAM_EXECUTION, eng_on_execution_event, e) < 0 ||
        bus_subscribe(svc->bus, QT_STREAM_POLICY, eng_on_policy_event, e) < 0 || api_routes(svc->http, &e->api) < 0 ||
        dashboard_routes(svc->http) < 0)
        return -1;
    snprintf(eng_format, sizeof eng_format, "trading-engine/1/%zu/%zu/%zu/%d", sizeof(eng_saved_t), sizeof(equity_t),
             sizeof(eng_saved_join_t), RISKGUARD_REASONS);
    if (bus_keep_state(svc->bus, &eng_ckpt, e) < 0) return -1;
    httpd_set_status(svc->http, eng_status, e);
    return 0;
}

engine_t *engine_new(svc_t *svc, char *err, size_t errlen)
{
    breaker_config_t bc;
    engine_t *e = calloc(1, sizeof *e);
    if (!e) return snprintf(err, errlen, "out of memory"), NULL;
    e->svc = svc;
    e->ml = (ml_limits_t)ML_LIMITS_DEFAULT;
    breaker_config_default(&bc);
    bc.window_size = 10, bc.min_calls = 5, bc.open_wait_ms = 30000, bc.slow_call_ms = 0;
    if (policyview_init(&e->pv) < 0 || eng_cfg_env(&e->cfg, err, errlen) < 0 ||
        config_get_breaker("QT_RL_BREAKER", &bc, err, errlen) < 0 || !(e->rl_breaker = breaker_new("rl-signals", &bc)) ||
        !(e->execs_seen = dedupe_new(16384)) ||
        !(e->lock = lockstep_new(svc->base, svc->bus, svc->cfg.service, e->cfg.lockstep, e->cfg.lockstep_ms,
                                 eng_settled, e)) ||
        !(e->feed = feed_new(svc->base, eng_emit_bar, e, err, errlen))) {
        if (!err[0]) snprintf(err, errlen, "out of memory");
        engine_free(e);
        return NULL;
    }
    book_init(&e->book, e->cfg.balance);
    eng_init_metrics(e);
    if (eng_wire(e) < 0) {
        snprintf(err, errlen, "cannot set up the engine");
        engine_free(e);
        return NULL;
    }
    return e;
}

int engine_rebuild(engine_t *e, char *err, size_t errlen) { return eng_rebuild(e, err, errlen); }

void engine_start(engine_t *e) { feed_start(e->feed); }

void engine_stop(engine_t *e)
{
    feed_hold(e->feed, 1);
    eng_checkpoint(e);
}

void engine_free(engine_t *e)
{
    if (!e) return;
    if (e->tick) event_free(e->tick);
    lockstep_free(e->lock);
    feed_free(e->feed);
    breaker_free(e->rl_breaker);
    dedupe_free(e->execs_seen);
    book_free(&e->book);
    intents_free(&e->intents);
    json_decref(e->entry_votes);
    joins_free(&e->joins);
    policyview_free(&e->pv);
    free(e);
}
