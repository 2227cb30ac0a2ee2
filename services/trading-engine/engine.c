/* engine.c — the trading-engine's life: configuration, rebuild from the
 * streams, the feed, periodic work, checkpoint and HTTP (see engine.h). */
#include "engine.h"
#include "clock.h"
#include "engine_int.h"
#include "event.h"
#include "log.h"
#include "rsync.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ENG_TICK_MS 250
#define ENG_CONFIG_MS 10000 /* configuration cached at most 10 s */
#define ENG_CKPT_MS 10000

int eng_publish(engine_t *e, const char *stream, const char *type, json_t *data, const char *id_name,
                const char *trace)
{
    char err[256], id[37];
    event_t ev;
    event_derive_id(id_name, id);
    if (event_make(&ev, type, data, trace, id, err, sizeof err) < 0) {
        log_error("%s does not match its schema: %s", type, err);
        return -2;
    }
    int rc = bus_publish(e->svc->bus, stream, &ev, err, sizeof err);
    if (rc < 0) log_msg(LOG_ERROR, trace, "cannot publish %s: %s", type, err);
    event_clear(&ev);
    return rc;
}

/* ---------- the feed's bars ---------- */

/* Lockstep (a replay at full speed, QT_FEED_LOCKSTEP) makes this engine the
 * one sequencer of the replay: it publishes one thing at a time — a bar's
 * stop-loss/take-profit exits, then its performance.update, then the bar,
 * then the decision's intent — and takes the next step only once every
 * consumer has handled the last one and every intent has its execution. So
 * every service sees the same events in the same order in every run, and the
 * same replay gives the same signals, policies, decisions, intents and
 * fills. A wait longer than QT_FEED_LOCKSTEP_MS lets the replay go on; after
 * three such waits in a row (a consumer is not there) lockstep is switched
 * off. */

int eng_lockstep_on(const engine_t *e) { return e->cfg.lockstep && feed_full_speed_replay(e->feed); }

static void eng_settle_arm(engine_t *e)
{
    struct timeval tv = {0, ENG_SETTLE_POLL_US};
    if (e->settle_timer && !evtimer_pending(e->settle_timer, NULL)) evtimer_add(e->settle_timer, &tv);
}

/* Settled when every consumer of the market, feedback and execution streams
 * has handled them all (rl-decision's features and position inputs,
 * ml-threshold's votes and learning, policy-store's regime and risk state)
 * and this engine every signal and policy event they caused (a threshold or
 * TradingPolicy change is in force before the next step): the script sums
 * lag + pending of those groups (a lag Redis cannot tell counts as 1). */
static const char eng_settle_lua[] =
    "local function backlog(key, group) "
    "  local ok, gs = pcall(redis.call, 'XINFO', 'GROUPS', key) "
    "  if not ok then return 0 end "
    "  local sum = 0 "
    "  for _, g in ipairs(gs) do "
    "    local f = {} "
    "    for i = 1, #g, 2 do f[g[i]] = g[i + 1] end "
    "    if group == nil or f['name'] == group then "
    "      sum = sum + f['pending'] + (type(f['lag']) == 'number' and f['lag'] or 1) "
    "    end "
    "  end "
    "  return sum "
    "end "
    "return backlog(KEYS[1]) + backlog(KEYS[2]) + backlog(KEYS[3]) + backlog(KEYS[4], ARGV[1]) + backlog(KEYS[5], ARGV[1])";

static void eng_settle_cb(void *ud, const struct redisReply *r)
{
    engine_t *e = ud;
    e->lock_query = 0;
    if (!e->lock_unsettled) return; /* a timeout let the replay go on meanwhile */
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
        e->lock_unsettled = 0;
        eng_decide_held(e);
        feed_wake(e->feed);
        return;
    }
    eng_settle_arm(e); /* ask again shortly */
}

static void eng_settle_poll(engine_t *e)
{
    if (!e->lock_unsettled || e->lock_query) return;
    /* ask only once our own events are queued on the connection ahead of the question, or the
     * answer may predate them */
    if (!bus_outbox_sent(e->svc->bus)) return eng_settle_arm(e);
    char k[5][96];
    const char *names[5] = {"market", "feedback", "execution", "signal", "policy"};
    for (int i = 0; i < 5; i++) bus_key(e->svc->bus, names[i], k[i], sizeof k[i]);
    const char *argv[] = {"EVAL", eng_settle_lua, "5", k[0], k[1], k[2], k[3], k[4], e->svc->cfg.service};
    if (bus_redis(e->svc->bus, eng_settle_cb, e, 9, argv, NULL) == 0) e->lock_query = 1;
    else eng_settle_arm(e);
}

static void eng_settle_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    eng_settle_poll(arg);
}

void eng_unsettled(engine_t *e)
{
    if (!eng_lockstep_on(e)) return;
    e->lock_unsettled = 1;
    eng_settle_poll(e);
}

static int eng_lockstep_wait(engine_t *e)
{
    if (!eng_lockstep_on(e)) return 0;
    int busy = e->intents_total > e->intents_executed + e->intents_failed || e->lock_unsettled;
    live_mode_t m = eng_mode(e);
    for (int i = 0; !busy && eng_enabled(e) && m != MODE_OFF && i < e->nsyms; i++)
        busy = e->syms[i].last_bar_open > e->syms[i].decided_upto;
    int64_t now = clock_mono_ms();
    if (!busy) return e->lock_since = 0, e->lock_timeouts = 0, 0;
    if (!e->lock_since) e->lock_since = now;
    if (now - e->lock_since < e->cfg.lockstep_ms) return 1;
    e->lock_since = 0, e->lock_unsettled = 0, e->lock_timeouts_total++;
    log_info("lockstep: waited %ld ms for decisions, executions or consumers; the replay goes on", e->cfg.lockstep_ms);
    if (++e->lock_timeouts >= 3) {
        e->cfg.lockstep = 0;
        log_warn("lockstep off: decisions or executions did not follow the replay within %ld ms three times", e->cfg.lockstep_ms);
    }
    eng_decide_held(e); /* what waited for the consumers goes now */
    return 0;
}

/* Something the lockstep waits for happened. */
void eng_lockstep_wake(engine_t *e)
{
    if (!e->cfg.lockstep) return;
    feed_wake(e->feed);
}

/* In lockstep a bar goes out in steps, each once the one before settled:
 * its exits (on the bar's high/low, so the bar's consumers see the position
 * as it is at the bar's close), then performance.update, then the bar. */
static int eng_emit_steps(engine_t *e, const feed_bar_t *b, const char *bar_id)
{
    sym_state_t *s = eng_sym(e, b->symbol);
    if (!s) return 0;
    if (e->lock_open != b->open_time || strcmp(e->lock_symbol, b->symbol) != 0) {
        e->lock_open = b->open_time, e->lock_step = 0;
        snprintf(e->lock_symbol, sizeof e->lock_symbol, "%s", b->symbol);
    }
    if (e->lock_step == 0) {
        e->lock_step = 1;
        long before = e->intents_total;
        eng_bar_price(e, s, b->open_time, b->close_time, b->high, b->low, b->close, bar_id);
        if (e->intents_total > before) return -1;
    }
    if (e->lock_step == 1) {
        e->lock_step = 2;
        if (eng_bar_performance(e, b->close_time, bar_id)) return -1;
    }
    return 0;
}

static int eng_emit_bar(void *ud, const feed_bar_t *b)
{
    engine_t *e = ud;
    char name[160], id[37];
    if (bus_outbox_size(e->svc->bus) > (size_t)e->svc->cfg.outbox_max / 2) return -1; /* back-pressure */
    if (eng_lockstep_wait(e)) return -1;
    snprintf(name, sizeof name, "bar:%s:%s:%s:%lld", e->svc->cfg.ns, b->symbol, b->interval, (long long)b->open_time);
    event_derive_id(name, id);
    int steps = eng_lockstep_on(e);
    if (steps && eng_emit_steps(e, b, id) < 0) return -1;
    json_t *d = json_pack("{s:s, s:s, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:f, s:b, s:I}", "symbol",
                          b->symbol, "interval", b->interval, "open_time", (json_int_t)b->open_time, "close_time",
                          (json_int_t)b->close_time, "open", b->open, "high", b->high, "low", b->low, "close", b->close,
                          "volume", b->volume, "quote_volume", b->quote_volume, "trades", (json_int_t)b->trades,
                          "taker_buy_volume", b->taker_buy_volume, "closed", 1, "event_time", (json_int_t)b->close_time);
    int rc = eng_publish(e, "market", "market.data.update", d, name, id);
    if (rc < 0) return rc; /* -2: the bar breaks the contract, the feed skips it */
    metric_inc(e->m_bars);
    e->lock_step = 0, e->lock_symbol[0] = '\0';
    if (!steps) {
        eng_on_bar(e, b->symbol, b->open_time, b->close_time, b->high, b->low, b->close, id);
        return 0;
    }
    sym_state_t *s = eng_sym(e, b->symbol);
    if (s && b->open_time > s->last_bar_open) s->last_bar_open = b->open_time; /* now it waits for its decision */
    eng_unsettled(e); /* and the decision for the signals and policies about it */
    return 0;
}

/* ---------- configuration ---------- */

static int eng_cfg_env(engine_cfg_t *c, char *err, size_t errlen)
{
    return config_get_double("QT_LEVERAGE", 3, 1, 125, &c->leverage, err, errlen) < 0 ||
                   config_get_double("QT_SIZE_SMALL", 0.01, 0.0001, 1, &c->size_small, err, errlen) < 0 ||
                   config_get_double("QT_SIZE_LARGE", 0.02, 0.0001, 1, &c->size_large, err, errlen) < 0 ||
                   config_get_double("QT_STOP_LOSS_PCT", 1.0, 0.01, 50, &c->stop_loss_pct, err, errlen) < 0 ||
                   config_get_double("QT_TP_RATIO", 2.0, 0.1, 100, &c->tp_ratio, err, errlen) < 0 ||
                   config_get_double("QT_ACCOUNT_BALANCE", 10000, 1, 1e12, &c->balance, err, errlen) < 0 ||
                   config_get_long("QT_SIGNAL_JOIN_MS", 2000, 1, 600000, &c->join_ms, err, errlen) < 0 ||
                   config_get_long("QT_FEED_MAX_LAG", 10000, 10, 100000000L, &c->max_lag, err, errlen) < 0 ||
                   config_get_bool("QT_FEED_LOCKSTEP", 1, &c->lockstep, err, errlen) < 0 ||
                   config_get_long("QT_FEED_LOCKSTEP_MS", 2000, 1, 600000, &c->lockstep_ms, err, errlen) < 0
               ? -1
               : 0;
}

/* The policy-store hash (key → JSON text) into e->config. */
static void eng_load_config(engine_t *e, const redisReply *r)
{
    json_t *cfg = json_object();
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        json_t *v = json_loadb(r->element[i + 1]->str, r->element[i + 1]->len, JSON_DECODE_ANY, NULL);
        if (v) json_object_set_new(cfg, r->element[i]->str, v);
    }
    json_decref(e->config);
    e->config = cfg;
    e->config_mono = clock_mono_ms();
}

static void eng_config_cb(void *ud, const struct redisReply *r)
{
    if (r && r->type == REDIS_REPLY_ARRAY) eng_load_config(ud, r);
}

static bus_result_t eng_on_policy_event(void *ud, const bus_msg_t *m, char *err, size_t errlen)
{
    engine_t *e = ud;
    const json_t *d = m->ev->data;
    (void)err;
    (void)errlen;
    if (strcmp(m->ev->type, "policy.config.updated") == 0) {
        json_object_set(e->config, json_string_value(json_object_get(d, "key")), json_object_get(d, "value"));
        log_msg(LOG_INFO, m->ev->trace, "config %s changed (version %lld)", json_string_value(json_object_get(d, "key")),
                (long long)json_integer_value(json_object_get(d, "version")));
    } else if (strcmp(m->ev->type, "policy.trading.updated") == 0) {
        json_decref(e->trading);
        e->trading = json_deep_copy(d);
    }
    return BUS_OK;
}

/* ---------- rebuild from the streams ---------- */

typedef void (*eng_entry_fn)(engine_t *e, const char *sid, const event_t *ev);

/* Walk key oldest → newest (from "-" up to max, inclusive), decoding entries. */
static int eng_walk(engine_t *e, redisContext *c, const char *key, const char *max, eng_entry_fn fn)
{
    char from[64] = "-";
    for (;;) {
        redisReply *r = redisCommand(c, "XRANGE %s %s %s COUNT 1000", key, from, max);
        if (!r || r->type != REDIS_REPLY_ARRAY) {
            if (r) freeReplyObject(r);
            return -1;
        }
        for (size_t i = 0; i < r->elements; i++) {
            const redisReply *en = r->element[i], *f = en->element[1];
            event_field_t fields[EVENT_FIELDS_MAX];
            event_t ev;
            char err[256];
            size_t n = 0;
            for (size_t k = 0; f->type == REDIS_REPLY_ARRAY && k + 1 < f->elements && n < EVENT_FIELDS_MAX; k += 2)
                fields[n++] = (event_field_t){f->element[k]->str, f->element[k]->len, f->element[k + 1]->str,
                                              f->element[k + 1]->len};
            if (event_decode(&ev, fields, n, err, sizeof err) == 0) {
                fn(e, en->element[0]->str, &ev);
                event_clear(&ev);
            }
            snprintf(from, sizeof from, "(%s", en->element[0]->str);
        }
        size_t got = r->elements;
        freeReplyObject(r);
        if (got < 1000) return 0;
    }
}

static void eng_rebuild_intent(engine_t *e, const char *sid, const event_t *ev)
{
    const json_t *d = ev->data;
    (void)sid;
    if (strcmp(ev->type, "trade.intent") != 0) return;
    sym_state_t *s = eng_sym(e, json_string_value(json_object_get(d, "symbol")));
    int64_t ot = json_integer_value(json_object_get(d, "open_time")), t = json_integer_value(json_object_get(d, "event_time"));
    int reduce = json_is_true(json_object_get(d, "reduce_only"));
    if (s && ot > s->decided_upto && strcmp(json_string_value(json_object_get(d, "mode")), "RISK") != 0)
        s->decided_upto = ot;
    if (!reduce) live_rate_record(&e->rate, t);
    json_t *votes = json_object_get(d, "model_votes");
    const char *regime = json_string_value(json_object_get(d, "regime"));
    json_t *ctx = json_pack("{s:O, s:s, s:o, s:O, s:O}", "confidence", json_object_get(d, "confidence"), "regime",
                            regime ? regime : "", "model_votes",
                            votes ? json_incref(votes) : json_object(), "action", json_object_get(d, "action"),
                            "source_tag", json_object_get(d, "source_tag"));
    eng_intent_remember(e, ev->id, s ? s->symbol : "", strcmp(json_string_value(json_object_get(d, "side")), "BUY") == 0 ? 1 : -1,
                        reduce, json_number_value(json_object_get(d, "leverage")), t, ctx);
    e->intents_total++;
    if (t > e->last_trade_intent_at) e->last_trade_intent_at = t;
}

static void eng_rebuild_execution(engine_t *e, const char *sid, const event_t *ev)
{
    snprintf(e->exec_folded, sizeof e->exec_folded, "%s", sid);
    if (dedupe_check(e->execs_seen, ev->id)) return;
    if (strcmp(ev->type, "trade.executed") == 0) eng_apply_execution(e, ev->data, ev->id, ev->trace, 0);
    else if (strcmp(ev->type, "trade.failed") == 0) {
        intent_rec_t *in = eng_intent_find(e, json_string_value(json_object_get(ev->data, "intent_id")));
        if (in && !in->failed) in->failed = 1, e->intents_failed++;
        eng_intent_settled(e, json_string_value(json_object_get(ev->data, "intent_id")));
    }
}

/* The last execution entry this engine's group has fully handled (acked):
 * the smaller of last-delivered-id and the oldest pending id minus one.
 * "0" when the group does not exist. Later entries arrive through the group. */
static void eng_exec_limit(engine_t *e, redisContext *c, const char *key, char *out, size_t len)
{
    redisReply *g = redisCommand(c, "XINFO GROUPS %s", key), *p = redisCommand(c, "XPENDING %s %s", key, e->svc->cfg.service);
    snprintf(out, len, "0");
    for (size_t i = 0; g && g->type == REDIS_REPLY_ARRAY && i < g->elements; i++) {
        const redisReply *m = g->element[i];
        if (m->elements < 8 || strcmp(m->element[1]->str, e->svc->cfg.service) != 0) continue;
        for (size_t k = 0; k + 1 < m->elements; k += 2)
            if (strcmp(m->element[k]->str, "last-delivered-id") == 0) snprintf(out, len, "%s", m->element[k + 1]->str);
    }
    if (p && p->type == REDIS_REPLY_ARRAY && p->elements >= 2 && p->element[0]->integer > 0 &&
        p->element[1]->type == REDIS_REPLY_STRING) {
        unsigned long long ms, seq; /* oldest pending id minus one */
        if (sscanf(p->element[1]->str, "%llu-%llu", &ms, &seq) == 2) {
            if (seq > 0) snprintf(out, len, "%llu-%llu", ms, seq - 1);
            else snprintf(out, len, "%llu-18446744073709551615", ms - 1);
        }
    }
    if (g) freeReplyObject(g);
    if (p) freeReplyObject(p);
}

static void eng_rebuild_market(engine_t *e, redisContext *c, const char *key)
{
    redisReply *r = redisCommand(c, "XREVRANGE %s + - COUNT 5000", key);
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *f = r->element[i]->element[1];
        for (size_t k = 0; k + 1 < f->elements; k += 2) {
            if (strcmp(f->element[k]->str, "data") != 0) continue;
            json_t *d = json_loads(f->element[k + 1]->str, 0, NULL);
            const char *sym = json_string_value(json_object_get(d, "symbol"));
            sym_state_t *s = sym ? eng_sym(e, sym) : NULL;
            if (s && !(s->last_close > 0)) { /* newest bar of the symbol */
                s->last_close = json_number_value(json_object_get(d, "close"));
                ledger_mark(&e->ledger, sym, s->last_close);
                if (e->feed) feed_resume(e->feed, sym, json_integer_value(json_object_get(d, "open_time")));
                int64_t t = json_integer_value(json_object_get(d, "event_time"));
                if (t > e->last_bar_time) e->last_bar_time = t;
            }
            json_decref(d);
        }
    }
    if (r) freeReplyObject(r);
}

static void eng_rebuild_state(engine_t *e, redisContext *c)
{
    redisReply *r = redisCommand(c, "GET %s:engine:state", e->svc->cfg.ns);
    json_t *j = r && r->type == REDIS_REPLY_STRING ? json_loadb(r->str, r->len, 0, NULL) : NULL;
    if (j) {
        e->peak_equity = json_number_value(json_object_get(j, "peak_equity"));
        e->day_start_equity = json_number_value(json_object_get(j, "day_start_equity"));
        e->day = json_integer_value(json_object_get(j, "day"));
        e->last_perf_time = json_integer_value(json_object_get(j, "last_perf_time"));
        e->shadow_decisions = (long)json_integer_value(json_object_get(j, "shadow_decisions"));
        e->decisions_total = (long)json_integer_value(json_object_get(j, "decisions_total"));
        e->last_decision_at = json_integer_value(json_object_get(j, "last_decision_at"));
    }
    json_decref(j);
    if (r) freeReplyObject(r);
    r = redisCommand(c, "HGETALL %s:policy:config", e->svc->cfg.ns);
    eng_load_config(e, r);
    if (r) freeReplyObject(r);
    r = redisCommand(c, "GET %s:policy:trading", e->svc->cfg.ns);
    if (r && r->type == REDIS_REPLY_STRING) e->trading = json_loadb(r->str, r->len, 0, NULL);
    if (r) freeReplyObject(r);
}

/* Everything from Redis, synchronously, before the loop starts. */
static int eng_rebuild(engine_t *e, char *err, size_t errlen)
{
    char key[160], limit[64];
    long wait_s;
    redisContext *c = NULL;
    if (config_get_long("QT_STARTUP_WAIT_S", 60, 0, 3600, &wait_s, err, errlen) < 0) return -1;
    for (long i = 0; !(c = rsync_connect(&e->svc->cfg.redis, 2000, err, errlen)) && i < wait_s; i++) {
        if (i % 10 == 0) log_warn("waiting for Redis to rebuild the engine's state: %s", err);
        sleep(1);
    }
    if (!c) return -1;
    eng_rebuild_state(e, c);
    snprintf(key, sizeof key, "%s:trade.intent", e->svc->cfg.ns);
    eng_walk(e, c, key, "+", eng_rebuild_intent);
    snprintf(key, sizeof key, "%s:execution", e->svc->cfg.ns);
    eng_exec_limit(e, c, key, limit, sizeof limit);
    if (strcmp(limit, "0") != 0) eng_walk(e, c, key, limit, eng_rebuild_execution);
    snprintf(key, sizeof key, "%s:market", e->svc->cfg.ns);
    eng_rebuild_market(e, c, key);
    redisFree(c);
    if (!(e->day_start_equity > 0)) e->day_start_equity = ledger_equity(&e->ledger);
    if (!(e->peak_equity > 0)) e->peak_equity = ledger_equity(&e->ledger);
    log_info("state rebuilt: %d open positions, realized PnL %.2f, %ld intents, executions folded up to %s",
             e->ledger.n, e->ledger.realized, e->intents_total, e->exec_folded[0] ? e->exec_folded : "none");
    return 0;
}

/* ---------- periodic work ---------- */

static void eng_checkpoint(engine_t *e)
{
    char key[160];
    json_t *j = json_pack("{s:f, s:f, s:I, s:I, s:I, s:I, s:I}", "peak_equity", e->peak_equity, "day_start_equity",
                          e->day_start_equity, "day", (json_int_t)e->day, "last_perf_time",
                          (json_int_t)e->last_perf_time, "shadow_decisions", (json_int_t)e->shadow_decisions,
                          "decisions_total", (json_int_t)e->decisions_total, "last_decision_at",
                          (json_int_t)e->last_decision_at);
    json_t *pos = json_object(); /* for the executor's reconciliation */
    for (int i = 0; i < e->ledger.n; i++) json_object_set_new(pos, e->ledger.pos[i].symbol, json_real(e->ledger.pos[i].qty));
    json_object_set_new(j, "positions", pos);
    char *txt = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(j);
    snprintf(key, sizeof key, "%s:engine:state", e->svc->cfg.ns);
    const char *argv[] = {"SET", key, txt};
    if (txt) bus_redis(e->svc->bus, NULL, NULL, 3, argv, NULL);
    free(txt);
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
    e->market_lag = lag;
    if (e->feed) feed_hold(e->feed, lag > e->cfg.max_lag);
}

static void eng_tick(evutil_socket_t fd, short what, void *arg)
{
    engine_t *e = arg;
    char key[160];
    (void)fd;
    (void)what;
    int64_t now = clock_mono_ms();
    eng_join_timeouts(e);
    snprintf(key, sizeof key, "%s:market", e->svc->cfg.ns);
    const char *lag[] = {"XINFO", "GROUPS", key};
    bus_redis(e->svc->bus, eng_lag_cb, e, 3, lag, NULL);
    if (now - e->config_mono >= ENG_CONFIG_MS) {
        snprintf(key, sizeof key, "%s:policy:config", e->svc->cfg.ns);
        const char *argv[] = {"HGETALL", key};
        if (bus_redis(e->svc->bus, eng_config_cb, e, 2, argv, NULL) == 0) e->config_mono = now;
    }
    if (now - e->ckpt_mono >= ENG_CKPT_MS) eng_checkpoint(e);
}

/* ---------- HTTP ---------- */

static json_t *eng_iso(int64_t ms)
{
    char buf[40];
    if (!ms) return json_null();
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof buf - n, ".%03dZ", (int)(ms % 1000));
    return json_string(buf);
}

static int eng_http_live(void *ud, httpd_req_t *req, json_t **out)
{
    engine_t *e = ud;
    (void)req;
    *out = json_pack("{s:b, s:s, s:f, s:I, s:I, s:I, s:o, s:o}", "enabled",
                     !json_is_false(json_object_get(e->config, "rl_v3.live.enabled")), "mode",
                     live_mode_name(eng_mode(e)), "min_confidence", eng_cfg_num(e, "rl_v3.live.min_confidence", 0.6),
                     "trade_intents_total", (json_int_t)e->intents_total, "trade_intents_executed",
                     (json_int_t)e->intents_executed, "shadow_decisions", (json_int_t)e->shadow_decisions,
                     "last_decision_at", eng_iso(e->last_decision_at), "last_trade_intent_at",
                     eng_iso(e->last_trade_intent_at));
    return 200;
}

static int eng_http_decisions(void *ud, httpd_req_t *req, json_t **out)
{
    engine_t *e = ud;
    long limit;
    if (httpd_query_long(req, "limit", 50, 1, ENG_DECISIONS, &limit) < 0) {
        *out = httpd_error("limit must be an integer from 1 to %d", ENG_DECISIONS);
        return 400;
    }
    json_t *d = eng_decisions_json(e, limit);
    *out = json_pack("{s:o, s:I, s:I}", "decisions", d, "count", (json_int_t)json_array_size(d), "total",
                     (json_int_t)e->decisions_total);
    return 200;
}

static int eng_http_positions(void *ud, httpd_req_t *req, json_t **out)
{
    (void)req;
    *out = eng_positions_json(ud);
    return 200;
}

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
    return json_pack("{s:o, s:o, s:s, s:{s:s, s:b}, s:{s:f, s:b, s:f, s:f}, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I}, s:o, s:I, "
                     "s:o, s:b}",
                     "bus", bus_status(e->svc->bus), "feed", e->feed ? eng_feed_status(e) : json_null(), "mode",
                     live_mode_name(eng_mode(e)), "rl_signals", "breaker", breaker_state_name(rb), "hybrid_fallback",
                     eng_mode(e) == MODE_HYBRID && rb == BREAKER_OPEN, "ml", "threshold", e->ml_threshold,
                     "conservative", e->ml_conservative, "max_position_size", e->ml_max_pos, "stop_loss_multiplier",
                     e->ml_sl_mult, "counts", "decisions", (json_int_t)e->decisions_total, "intents",
                     (json_int_t)e->intents_total, "executed", (json_int_t)e->intents_executed, "failed",
                     (json_int_t)e->intents_failed, "shadow_decisions", (json_int_t)e->shadow_decisions,
                     "late_signals", (json_int_t)e->late_signals, "lockstep_timeouts", (json_int_t)e->lock_timeouts_total,
                     "riskguard_denials", den, "market_lag",
                     (json_int_t)e->market_lag, "trading_policy", e->trading ? json_incref(e->trading) : json_null(),
                     "has_trading_policy", e->trading != NULL);
}

/* ---------- life ---------- */

static int eng_init_metrics(engine_t *e)
{
    metrics_t *m = e->svc->metrics;
    char l[64];
    for (int i = 0; i < RISKGUARD_REASONS; i++) {
        snprintf(l, sizeof l, "reason=\"%s\"", riskguard_reason(i));
        e->m_denials[i] = metrics_counter(m, "qt_riskguard_denials_total", "RiskGuard denials by reason", l);
    }
    e->m_intents = metrics_counter(m, "qt_engine_intents_total", "Trade intents published", NULL);
    e->m_bars = metrics_counter(m, "qt_feed_bars_published_total", "Bars published by the feed", NULL);
    e->m_equity = metrics_gauge(m, "qt_engine_equity", "Account equity (balance + realized + unrealized)", NULL);
    return 0;
}

engine_t *engine_new(svc_t *svc, char *err, size_t errlen)
{
    breaker_config_t bc;
    engine_t *e = calloc(1, sizeof *e);
    if (!e) return snprintf(err, errlen, "out of memory"), NULL;
    e->svc = svc;
    e->ml_max_pos = 0.02, e->ml_sl_mult = 1.5;
    e->config = json_object();
    breaker_config_default(&bc);
    bc.window_size = 10, bc.min_calls = 5, bc.open_wait_ms = 30000, bc.slow_call_ms = 0;
    if (eng_cfg_env(&e->cfg, err, errlen) < 0 || breaker_config_env(&bc, "QT_RL_BREAKER", err, errlen) < 0 ||
        !(e->rl_breaker = breaker_new("rl-signals", &bc)) || !(e->execs_seen = dedupe_new(16384)) ||
        !(e->feed = feed_new(svc->base, eng_emit_bar, e, err, errlen))) {
        if (!err[0]) snprintf(err, errlen, "out of memory");
        engine_free(e);
        return NULL;
    }
    ledger_init(&e->ledger, e->cfg.balance);
    eng_init_metrics(e);
    if (eng_rebuild(e, err, errlen) < 0) {
        engine_free(e);
        return NULL;
    }
    e->tick = event_new(svc->base, -1, EV_PERSIST, eng_tick, e);
    e->settle_timer = evtimer_new(svc->base, eng_settle_timer, e);
    struct timeval tv = {0, ENG_TICK_MS * 1000};
    const char *feed = getenv("QT_FEED");
    /* a read lists streams in subscription order: bars (when the feed runs
     * elsewhere) before the signals about them, executions before policies */
    if (!e->tick || !e->settle_timer || event_add(e->tick, &tv) < 0 ||
        (feed && strcmp(feed, "none") == 0 && bus_subscribe(svc->bus, "market", eng_on_signal_event, e) < 0) ||
        bus_subscribe(svc->bus, "signal", eng_on_signal_event, e) < 0 ||
        bus_subscribe(svc->bus, "execution", eng_on_execution_event, e) < 0 ||
        bus_subscribe(svc->bus, "policy", eng_on_policy_event, e) < 0) {
        snprintf(err, errlen, "cannot set up the engine");
        engine_free(e);
        return NULL;
    }
    httpd_route(svc->http, "GET", "/api/v1/rl-v3/dashboard/live-status", 0, eng_http_live, e);
    httpd_route(svc->http, "GET", "/api/v1/decisions", 0, eng_http_decisions, e);
    httpd_route(svc->http, "GET", "/api/v1/positions", 0, eng_http_positions, e);
    eng_dashboard_routes(e);
    httpd_set_status(svc->http, eng_status, e);
    return e;
}

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
    if (e->settle_timer) event_free(e->settle_timer);
    feed_free(e->feed);
    breaker_free(e->rl_breaker);
    dedupe_free(e->execs_seen);
    ledger_free(&e->ledger);
    for (int i = 0; i < ENG_INTENTS; i++) json_decref(e->intents[i].ctx);
    for (int i = 0; i < e->nsyms; i++) json_decref(e->syms[i].join.votes);
    json_decref(e->config);
    json_decref(e->trading);
    free(e);
}
