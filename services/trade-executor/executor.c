/* executor.c — intents to orders, exactly once (see executor.h).
 *
 * Each intent is a job that goes step by step — claim its record, ask the
 * venue what it knows, filters, balance, mark the request, place, record
 * the result — each step an asynchronous call whose answer starts the next,
 * so the loop never waits on the exchange or Redis: while one order hangs,
 * other symbols' intents (a stop-loss exit) go on. Jobs of one symbol run
 * one at a time, in the order their intents arrived. */
#include "executor.h"
#include "breaker.h"
#include "clock.h"
#include "digest.h"
#include "event.h"
#include "keys.h"
#include "log.h"
#include "actions.h"
#include "policyview.h"
#include "venue.h"

#include <hiredis/hiredis.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EX_RECORD_TTL "2592000" /* 30 days */

typedef struct ex_job ex_job_t;

struct executor {
    svc_t *svc;
    venue_t *venue;
    breaker_t *breaker;
    struct event *tick;
    ex_job_t *jobs, *jobs_tail; /* intents being handled or waiting for their symbol, oldest first */
    long received, executed, failed, duplicates, recovered, retried, in_flight_waits, unsent, stale, paused, capped, external;
    long reconcile_ms;          /* QT_RECONCILE_MS: how often the venue's positions are compared with the engine's */
    long long reconcile_mono;   /* when the last comparison began */
    long max_age_ms; /* QT_INTENT_MAX_AGE_MS: an entry older than this is not ordered; 0 = no limit */
    int closing, reconciling;
    char last_error[256];
    json_t *reconcile;
    json_t *suspects;           /* {symbol: engine qty} the venue lacked at the last comparison */
    policyview_t pv;            /* the policy's hard caps (risk.*), the last line behind the engine's RiskGuard */
    int pv_loaded;              /* the configuration hash has been read once */
    long long pv_read_mono;     /* when it was last asked for */
    metric_t *m_executed, *m_failed, *m_dups, *m_diff, *m_jobs, *m_capped, *m_external;
};

/* One intent on its way. */
struct ex_job {
    ex_job_t *next;
    executor_t *x;
    bus_pending_t *token;
    event_t ev; /* a copy of the envelope, holding a reference to the data */
    const char *symbol, *side, *tag; /* in ev.data */
    double size_pct, leverage, ref_price, qty, order_qty, balance;
    int reduce_only, fresh, started, venue_called, venue_failed;
    int64_t event_time, t0;
    long long sent_at; /* when its last order request began (wall ms), 0 if none went out */
    venue_filters_t fl;
    char cid[40], key[200], err[512];
};

/* "qt" + 32 hex of SHA-256(intent id): 34 characters, a valid Binance client order id. */
static void ex_cid(const char *intent_id, char out[40])
{
    out[0] = 'q', out[1] = 't';
    digest_hex(intent_id, 16, out + 2);
}

static void ex_job_start(ex_job_t *j);

/* ---------- the end of a job ---------- */

static void ex_job_unlink(executor_t *x, ex_job_t *j)
{
    ex_job_t **pp = &x->jobs, *prev = NULL;
    while (*pp && *pp != j) prev = *pp, pp = &(*pp)->next;
    if (!*pp) return;
    *pp = j->next;
    if (x->jobs_tail == j) x->jobs_tail = prev;
    metric_set(x->m_jobs, (double)bus_deferred(x->svc->bus));
}

static void ex_job_free(ex_job_t *j)
{
    event_clear(&j->ev);
    free(j);
}

/* The intent is handled (r as a handler returns it): the bus acks, retries
 * or dead-letters it, and the next intent of its symbol starts. */
static void ex_done(ex_job_t *j, bus_result_t r)
{
    executor_t *x = j->x;
    ex_job_unlink(x, j);
    if (x->closing) { /* the bus may be gone: the entry stays pending and comes back after a restart */
        ex_job_free(j);
        return;
    }
    /* One breaker outcome per intent handled: a failure if any venue call got
     * no answer (ex_unavailable recorded it), else a success — whatever the
     * answers said (a fill, a refusal, "no such order"): the venue answered.
     * No venue call at all: a half-open breaker gets its trial back. */
    if (!j->venue_called) breaker_release(x->breaker, clock_mono_ms());
    else if (!j->venue_failed) breaker_record(x->breaker, 1, clock_mono_ms() - j->t0, clock_mono_ms());
    char sym[32];
    snprintf(sym, sizeof sym, "%s", j->symbol ? j->symbol : "");
    bus_finish(x->svc->bus, j->token, r, j->err);
    ex_job_free(j);
    for (ex_job_t *n = x->jobs; n; n = n->next) /* the next of the same symbol, in order */
        if (!n->started && strcmp(n->symbol, sym) == 0) {
            ex_job_start(n);
            break;
        }
}

/* Publish the result and mark the intent DONE, atomically, through the bus
 * (the intent is acked only once both are written): then the job is done. */
static void ex_finish(ex_job_t *j, const char *type, json_t *data)
{
    char name[128], id[37], done[200];
    event_t ev;
    snprintf(name, sizeof name, "exec:%s", j->ev.id);
    event_derive_id(name, id);
    if (event_make(&ev, type, data, j->ev.trace, id, j->err, sizeof j->err) < 0) {
        log_error("%s for intent %s breaks the contract (a bug): %s", type, j->ev.id, j->err);
        ex_done(j, BUS_DEAD);
        return;
    }
    snprintf(done, sizeof done, "{\"state\":\"DONE\",\"result\":\"%s\",\"event_id\":\"%s\"}", type, id);
    const char *set[] = {done, "EX", EX_RECORD_TTL};
    int rc = bus_publish_then(j->x->svc->bus, QT_STREAM_EXECUTION, &ev, "SET", j->key, 3, set, j->err, sizeof j->err);
    event_clear(&ev);
    if (rc == 0 && strcmp(type, "trade.executed") == 0) j->x->executed++, metric_inc(j->x->m_executed);
    if (rc == 0 && strcmp(type, "trade.failed") == 0) j->x->failed++, metric_inc(j->x->m_failed);
    ex_done(j, rc < 0 ? BUS_RETRY : BUS_OK);
}

static void ex_failed(ex_job_t *j, const char *reason, const char *code, int retryable)
{
    json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:b, s:I}", "intent_id", j->ev.id, "symbol", j->symbol, "reason", reason,
                          "code", code && *code ? code : "REJECTED", "retryable", retryable, "event_time",
                          (json_int_t)j->event_time);
    log_msg(LOG_WARN, j->ev.trace, "intent %s failed: %s", j->ev.id, reason);
    ex_finish(j, "trade.failed", d);
}

static void ex_executed(ex_job_t *j, const venue_fill_t *f)
{
    executor_t *x = j->x;
    json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:s, s:f, s:f, s:f, s:s, s:s, s:b, s:f, s:s, s:I}", "intent_id",
                          j->ev.id, "client_order_id", j->cid, "order_id", f->order_id, "symbol", j->symbol, "side",
                          j->side, "qty", f->qty, "price", f->price, "fee", f->fee, "fee_asset", "USDT", "venue",
                          x->venue->ops->name, "reduce_only", j->reduce_only, "ref_price", j->ref_price,
                          "source_tag", j->tag, "event_time", (json_int_t)j->event_time);
    log_msg(LOG_INFO, j->ev.trace, "%s %s %.8g %s at %.8g (order %s, intent %s)", x->venue->ops->name, j->side, f->qty,
            j->symbol, f->price, f->order_id, j->ev.id);
    ex_finish(j, "trade.executed", d);
}

/* A venue call got no answer: retry later; the breaker hears of it. */
static void ex_unavailable(ex_job_t *j, const char *what, const char *why)
{
    executor_t *x = j->x;
    j->venue_failed = 1;
    breaker_record(x->breaker, 0, 0, clock_mono_ms());
    snprintf(x->last_error, sizeof x->last_error, "%s: %.200s", what, why);
    if (breaker_state(x->breaker, clock_mono_ms()) == BREAKER_OPEN) bus_pause(x->svc->bus, "venue breaker open");
    x->retried++;
    snprintf(j->err, sizeof j->err, "%s: %.400s (will retry)", what, why);
    ex_done(j, BUS_RETRY);
}

/* ---------- the idempotency record, through the bus ---------- */

/* SET the record to SENT with mode NX (the claim) or XX; at: when an order
 * request starts (wall ms; 0: none in flight). -1 when the link is down. */
static int ex_set_sent(ex_job_t *j, const char *mode, long long at_ms, bus_reply_fn cb)
{
    char rec[160], at[40] = "";
    if (at_ms > 0) snprintf(at, sizeof at, ",\"at\":%lld", at_ms);
    snprintf(rec, sizeof rec, "{\"state\":\"SENT\",\"cid\":\"%s\"%s}", j->cid, at);
    const char *set[] = {"SET", j->key, rec, mode, "EX", EX_RECORD_TTL};
    return bus_redis(j->x->svc->bus, cb, j, 6, set, NULL);
}

/* Redis could not be asked or did not answer: the intent comes back later. */
static void ex_redis_trouble(ex_job_t *j, const char *what, const redisReply *r)
{
    snprintf(j->err, sizeof j->err, "idempotency record (%s): %s", what,
             !r ? "Redis is not reachable now" : r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    ex_done(j, BUS_RETRY);
}

static void ex_venue_steps(ex_job_t *j);

static void ex_claimed(ex_job_t *j)
{
    executor_t *x = j->x;
    long long age = (long long)clock_wall_ms() - (long long)j->ev.ts;
    if (j->fresh && x->max_age_ms > 0 && !j->reduce_only && age > x->max_age_ms) {
        char reason[200]; /* an entry decided on a market long gone; exits always go out */
        snprintf(reason, sizeof reason,
                 "intent is %lld ms old (QT_INTENT_MAX_AGE_MS=%ld): not ordered on a market that has moved on", age,
                 x->max_age_ms);
        x->stale++;
        ex_failed(j, reason, "STALE", 0);
        return;
    }
    if (!x->pv_loaded && !j->reduce_only) { /* no entry is ordered before the caps are known */
        snprintf(j->err, sizeof j->err, "the policy's caps (%s) are not read yet", QT_KEY_POLICY_CONFIG);
        ex_done(j, BUS_RETRY);
        return;
    }
    ex_venue_steps(j);
}

static void ex_record_cb(void *ud, const struct redisReply *r)
{
    ex_job_t *j = ud;
    if (j->x->closing) {
        ex_done(j, BUS_RETRY);
        return;
    }
    json_t *rec = r && r->type == REDIS_REPLY_STRING ? json_loadb(r->str, r->len, 0, NULL) : NULL;
    const char *state = json_string_value(json_object_get(rec, "state"));
    int done = state && strcmp(state, "DONE") == 0;
    j->sent_at = json_is_integer(json_object_get(rec, "at")) ? (long long)json_integer_value(json_object_get(rec, "at")) : 0;
    json_decref(rec);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        ex_redis_trouble(j, "read", r);
        return;
    }
    if (done) { /* the result is already in the stream */
        j->x->duplicates++;
        metric_inc(j->x->m_dups);
        ex_done(j, BUS_OK);
        return;
    }
    ex_claimed(j);
}

static void ex_claim_cb(void *ud, const struct redisReply *r)
{
    ex_job_t *j = ud;
    if (j->x->closing) {
        ex_done(j, BUS_RETRY);
        return;
    }
    if (!r || r->type == REDIS_REPLY_ERROR) {
        ex_redis_trouble(j, "claim", r);
        return;
    }
    if (r->type == REDIS_REPLY_STATUS) { /* new: ours */
        j->fresh = 1;
        ex_claimed(j);
        return;
    }
    const char *get[] = {"GET", j->key}; /* SENT before (a crash, a retry) or DONE */
    if (bus_redis(j->x->svc->bus, ex_record_cb, j, 2, get, NULL) < 0) ex_redis_trouble(j, "read", NULL);
}

/* ---------- the venue ---------- */

static void ex_place(ex_job_t *j);

static void ex_placed_cb(void *ud, const venue_answer_t *a)
{
    ex_job_t *j = ud;
    if (j->x->closing) {
        ex_done(j, BUS_RETRY);
        return;
    }
    if (a->rc == VENUE_UNAVAILABLE) {
        ex_unavailable(j, "order", a->err);
        return;
    }
    if (a->rc == VENUE_REJECTED) { /* an exit with nothing to reduce: the position is gone, not worth a retry */
        int gone = j->reduce_only && (strcmp(a->code, "-2022") == 0 || strstr(a->err, "no position to reduce"));
        ex_failed(j, a->err, gone ? "NO_POSITION" : a->code, 0);
        return;
    }
    if (a->rc == VENUE_FILLED) {
        ex_executed(j, &a->fill);
        return;
    }
    ex_unavailable(j, "order", a->err[0] ? a->err : "unexpected answer");
}

/* The request provably did not reach the venue: say so in the record, so the
 * next attempt need not wait out an in-flight window. */
static void ex_unsent_cb(void *ud, const struct redisReply *r)
{
    ex_job_t *j = ud;
    if (j->x->closing) {
        ex_done(j, BUS_RETRY);
        return;
    }
    if (r && r->type == REDIS_REPLY_STATUS) j->x->unsent++;
    char why[512];
    snprintf(why, sizeof why, "%s", j->err);
    ex_unavailable(j, "order (not taken by the venue)", why);
}

static void ex_placed_or_unsent_cb(void *ud, const venue_answer_t *a)
{
    ex_job_t *j = ud;
    if (j->x->closing || a->rc != VENUE_NOT_SENT) {
        ex_placed_cb(ud, a);
        return;
    }
    snprintf(j->err, sizeof j->err, "%s", a->err);
    if (j->x->venue->in_flight_ms <= 0 || ex_set_sent(j, "XX", 0, ex_unsent_cb) < 0)
        ex_unavailable(j, "order (not taken by the venue)", a->err);
}

static void ex_place(ex_job_t *j)
{
    venue_order_t o = {j->symbol, j->side, j->cid, j->order_qty, j->ref_price, j->leverage, j->reduce_only};
    j->x->venue->ops->place(j->x->venue, &o, ex_placed_or_unsent_cb, j);
}

static void ex_marked_cb(void *ud, const struct redisReply *r)
{
    ex_job_t *j = ud;
    if (j->x->closing) {
        ex_done(j, BUS_RETRY);
        return;
    }
    if (!r || r->type != REDIS_REPLY_STATUS) { /* no order goes out unless the record says one may be in flight */
        snprintf(j->err, sizeof j->err, "idempotency record: %s",
                 r && r->type == REDIS_REPLY_ERROR ? r->str : r ? "record gone" : "Redis is not reachable now");
        ex_done(j, BUS_RETRY);
        return;
    }
    ex_place(j);
}

/* Quantity for the order, rounded down to the step, from base; 0 with reason when too small. */
static double ex_size(ex_job_t *j, double base, char *reason, size_t len)
{
    const venue_filters_t *fl = &j->fl;
    double qty = floor(base / fl->step + 1e-9) * fl->step;
    qty = round(qty / fl->step) * fl->step; /* exact multiple, no float dust */
    if (qty < fl->min_qty || qty <= 0)
        snprintf(reason, len, "quantity %.8g rounds below the minimum %.8g for %s", base, fl->min_qty, j->symbol);
    else if (!j->reduce_only && qty * j->ref_price < fl->min_notional)
        snprintf(reason, len, "notional %.2f USDT is below the minimum %.2f for %s", qty * j->ref_price,
                 fl->min_notional, j->symbol);
    else
        return qty;
    return 0;
}

static void ex_sized(ex_job_t *j, double base)
{
    char reason[256];
    if ((j->order_qty = ex_size(j, base, reason, sizeof reason)) <= 0) {
        ex_failed(j, reason, "MIN_SIZE", 0);
        return;
    }
    if (j->x->venue->in_flight_ms <= 0) {
        ex_place(j);
        return;
    }
    if (ex_set_sent(j, "XX", (long long)clock_wall_ms(), ex_marked_cb) < 0) ex_redis_trouble(j, "mark", NULL);
}

/* The policy's hard caps on an entry: NULL when it is within them, else the
 * refusal's code with the reason. held is the symbol's position at the venue
 * (signed amount; 0 before it is known). The engine's RiskGuard applies the
 * same limits before it decides; here they hold against any writer of
 * trade.intent (a bug, a replay, someone with access to Redis). */
static const char *ex_caps(const ex_job_t *j, double held, char *reason, size_t len)
{
    const policyview_t *pv = &j->x->pv;
    double max_lev = policyview_num(pv, "risk.max_leverage", 5);
    double max_margin = policyview_num(pv, "risk.total_exposure_limit_pct", 15.0);
    if (!(j->leverage <= max_lev))
        return snprintf(reason, len, "leverage %g is above risk.max_leverage %g", j->leverage, max_lev), "LEVERAGE_CAP";
    if (!(j->size_pct * 100.0 <= max_margin))
        return snprintf(reason, len, "margin of %g%% of equity is above risk.total_exposure_limit_pct %g%%",
                        j->size_pct * 100.0, max_margin),
               "SIZE_CAP";
    double add = j->balance * j->size_pct * j->leverage / j->ref_price, after = held + (strcmp(j->side, PROTO_SIDE_BUY) == 0 ? add : -add);
    double margin = j->balance > 0 ? fabs(after) * j->ref_price / j->leverage / j->balance * 100.0 : 0;
    if (held != 0 && !(margin <= max_margin))
        return snprintf(reason, len,
                        "%s would hold %.8g (%.2f%% of equity as margin at %gx), above risk.total_exposure_limit_pct %g%%",
                        j->symbol, after, margin, j->leverage, max_margin),
               "EXPOSURE_CAP";
    return NULL;
}

static void ex_capped(ex_job_t *j, const char *reason, const char *code)
{
    j->x->capped++;
    metric_inc(j->x->m_capped);
    ex_failed(j, reason, code, 0);
}

static void ex_positions_cb(void *ud, const venue_answer_t *a)
{
    ex_job_t *j = ud;
    if (j->x->closing) {
        ex_done(j, BUS_RETRY);
        return;
    }
    if (a->rc != VENUE_FILLED) {
        ex_unavailable(j, "positions", a->err);
        return;
    }
    char reason[300];
    const char *code = ex_caps(j, json_number_value(json_object_get(a->positions, j->symbol)), reason, sizeof reason);
    if (code) {
        ex_capped(j, reason, code);
        return;
    }
    ex_sized(j, j->balance * j->size_pct * j->leverage / j->ref_price);
}

static void ex_balance_cb(void *ud, const venue_answer_t *a)
{
    ex_job_t *j = ud;
    if (j->x->closing) {
        ex_done(j, BUS_RETRY);
        return;
    }
    if (a->rc != VENUE_FILLED) {
        ex_unavailable(j, "balance", a->err);
        return;
    }
    j->balance = a->balance;
    char reason[300];
    const char *code = ex_caps(j, 0, reason, sizeof reason);
    if (code) {
        ex_capped(j, reason, code);
        return;
    }
    j->x->venue->ops->positions(j->x->venue, ex_positions_cb, j);
}

static void ex_filters_cb(void *ud, const venue_answer_t *a)
{
    ex_job_t *j = ud;
    if (j->x->closing) {
        ex_done(j, BUS_RETRY);
        return;
    }
    if (a->rc == VENUE_UNAVAILABLE) {
        ex_unavailable(j, "exchange filters", a->err);
        return;
    }
    if (a->rc == VENUE_REJECTED) {
        ex_failed(j, a->err, "SYMBOL", 0);
        return;
    }
    j->fl = a->filters;
    if (j->reduce_only) {
        ex_sized(j, j->qty);
        return;
    }
    j->x->venue->ops->balance(j->x->venue, ex_balance_cb, j);
}

/* A crash or an unanswered request after the order was sent? The venue was asked first. */
static void ex_queried_cb(void *ud, const venue_answer_t *a)
{
    ex_job_t *j = ud;
    executor_t *x = j->x;
    if (x->closing) {
        ex_done(j, BUS_RETRY);
        return;
    }
    if (a->rc == VENUE_UNAVAILABLE) {
        ex_unavailable(j, "order query", a->err);
        return;
    }
    if (a->rc == VENUE_REJECTED) { /* there, ended with nothing filled */
        ex_failed(j, a->err, "NOT_FILLED", 0);
        return;
    }
    if (a->rc == VENUE_FILLED) {
        x->recovered++;
        log_msg(LOG_INFO, j->ev.trace, "intent %s was ordered before; publishing its fill", j->ev.id);
        ex_executed(j, &a->fill);
        return;
    }
    long long age = (long long)clock_wall_ms() - j->sent_at, wait = x->venue->in_flight_ms - age;
    if (a->rc == VENUE_NOT_FOUND && j->sent_at > 0 && wait > 0) { /* not there yet is not "never" */
        if (wait > x->venue->in_flight_ms) wait = x->venue->in_flight_ms; /* the wall clock went back */
        x->in_flight_waits++;
        bus_retry_after(x->svc->bus, wait);
        snprintf(j->err, sizeof j->err,
                 "order %s is not at the venue, but its last request (%lld ms ago) may still reach it: "
                 "asking again in %lld ms before ordering anew", j->cid, age, wait);
        ex_done(j, BUS_RETRY);
        return;
    }
    x->venue->ops->filters(x->venue, j->symbol, ex_filters_cb, j);
}

static void ex_venue_steps(ex_job_t *j)
{
    executor_t *x = j->x;
    j->venue_called = 1, j->venue_failed = 0, j->t0 = clock_mono_ms();
    if (!j->fresh) x->venue->ops->query(x->venue, j->symbol, j->cid, ex_queried_cb, j);
    else x->venue->ops->filters(x->venue, j->symbol, ex_filters_cb, j);
}

/* ---------- intents ---------- */

static void ex_job_start(ex_job_t *j)
{
    j->started = 1;
    if (ex_set_sent(j, "NX", 0, ex_claim_cb) < 0) ex_redis_trouble(j, "claim", NULL);
}

/* A job for the intent of m (its envelope copied, its data referenced). */
static ex_job_t *ex_job_new(executor_t *x, const bus_msg_t *m)
{
    const json_t *d = m->ev->data;
    ex_job_t *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->x = x;
    j->ev = *m->ev;
    j->ev.data = json_incref(m->ev->data);
    j->symbol = json_string_value(json_object_get(d, "symbol"));
    j->side = json_string_value(json_object_get(d, "side"));
    j->tag = json_string_value(json_object_get(d, "source_tag"));
    j->size_pct = json_number_value(json_object_get(d, "size_pct"));
    j->leverage = json_number_value(json_object_get(d, "leverage"));
    j->ref_price = json_number_value(json_object_get(d, "ref_price"));
    j->qty = json_number_value(json_object_get(d, "qty"));
    j->reduce_only = json_is_true(json_object_get(d, "reduce_only"));
    j->event_time = json_integer_value(json_object_get(d, "event_time"));
    ex_cid(m->ev->id, j->cid);
    snprintf(j->key, sizeof j->key, "%s:%s%s", x->svc->cfg.ns, QT_KEY_EXEC_PREFIX, m->ev->id);
    return j;
}

static bus_result_t ex_handle(void *ud, const bus_msg_t *m, char *err, size_t errlen)
{
    executor_t *x = ud;
    if (strcmp(m->ev->type, "trade.intent") != 0) return BUS_OK; /* not ours */
    if (m->deliveries == 1) x->received++;
    long long pause = x->venue->ops->pause_ms ? x->venue->ops->pause_ms(x->venue) : 0;
    if (pause > 0) { /* the venue asked for no calls (429/418): nothing is sent, so the breaker hears nothing */
        x->paused++;
        bus_retry_after(x->svc->bus, pause);
        snprintf(err, errlen, "the venue asked for a pause in calls (rate limit): trying again in %lld ms", pause);
        return BUS_RETRY;
    }
    if (!breaker_allow(x->breaker, clock_mono_ms())) {
        bus_pause(x->svc->bus, "venue breaker open");
        snprintf(err, errlen, "venue breaker open: %s", x->last_error);
        return BUS_RETRY;
    }
    ex_job_t *j = ex_job_new(x, m);
    if (!j || !(j->token = bus_defer(x->svc->bus))) {
        if (j) ex_job_free(j);
        breaker_release(x->breaker, clock_mono_ms());
        snprintf(err, errlen, "out of memory");
        return BUS_RETRY;
    }
    int busy = 0; /* an earlier intent of the symbol is on its way: this one waits for it */
    for (ex_job_t *n = x->jobs; n && !busy; n = n->next) busy = strcmp(n->symbol, j->symbol) == 0;
    if (x->jobs_tail) x->jobs_tail->next = j;
    else x->jobs = j;
    x->jobs_tail = j;
    metric_set(x->m_jobs, (double)bus_deferred(x->svc->bus));
    if (!busy) ex_job_start(j);
    return BUS_LATER;
}

/* ---------- reconciliation, ticking, HTTP ---------- */

typedef struct ex_recon {
    executor_t *x;
    json_t *venue_pos; /* or NULL */
    char err[512];
} ex_recon_t;

/* The engine holds symbol (engine_qty), the venue nothing, and no intent of
 * it is on its way: the position was closed outside the engine. */
static void ex_position_gone(executor_t *x, const char *symbol, double engine_qty, double venue_qty)
{
    for (const ex_job_t *j = x->jobs; j; j = j->next)
        if (strcmp(j->symbol, symbol) == 0) return; /* an order of it is on its way: the next comparison tells */
    char reason[256], err[256];
    event_t ev;
    snprintf(reason, sizeof reason,
             "the engine holds %.8g %s, the venue %.8g: closed outside the engine (liquidation, a manual close)",
             engine_qty, symbol, venue_qty);
    json_t *d = json_pack("{s:s, s:f, s:f, s:s, s:s, s:I}", "symbol", symbol, "engine_qty", engine_qty, "venue_qty",
                          venue_qty, "reason", reason, "detected_by", "reconciliation", "event_time",
                          (json_int_t)clock_wall_ms());
    if (event_make(&ev, "position.external", d, NULL, NULL, err, sizeof err) < 0 ||
        bus_publish(x->svc->bus, QT_STREAM_EXECUTION, &ev, err, sizeof err) < 0) {
        log_error("reconciliation: cannot publish that %s is gone: %s", symbol, err);
        event_clear(&ev);
        return;
    }
    event_clear(&ev);
    x->external++;
    metric_inc(x->m_external);
    log_warn("reconciliation: %s", reason);
}

/* Both sides are in (engine_pos stolen, rc's venue positions too): compare. */
static void ex_reconcile_done(ex_recon_t *rc, json_t *engine_pos)
{
    executor_t *x = rc->x;
    json_t *venue_pos = rc->venue_pos;
    const char *err = rc->err;
    json_t *diffs = json_array(), *all = json_object(), *suspects = json_object();
    const char *k;
    json_t *v;
    if (venue_pos) json_object_update(all, venue_pos);
    json_object_update(all, engine_pos);
    json_object_foreach(all, k, v) {
        double a = json_number_value(json_object_get(venue_pos, k)), b = json_number_value(json_object_get(engine_pos, k));
        if (fabs(a - b) > 1e-9 * fmax(1, fabs(a)))
            json_array_append_new(diffs, json_pack("{s:s, s:f, s:f}", "symbol", k, "venue", a, "engine", b));
        int ours = bus_part_reading(x->svc->bus, proto_partition(k, (int)x->svc->cfg.partitions));
        if (venue_pos && b != 0 && (a == 0 || (a > 0) != (b > 0)) && ours) { /* its partition's replica says so */
            /* seen twice with the same quantity: the engine's record may be up to 10 s old, and an exit
             * filled just before it was written is no ghost */
            const json_t *was = json_object_get(x->suspects, k);
            if (was && json_number_value(was) == b) ex_position_gone(x, k, b, a);
            else json_object_set_new(suspects, k, json_real(b));
        }
    }
    json_decref(x->suspects);
    x->suspects = suspects;
    size_t n = json_array_size(diffs);
    if (!venue_pos) log_warn("reconciliation: cannot read the venue's positions: %s", err);
    else if (n) log_warn("reconciliation: %zu positions differ between the venue and the engine", n);
    else log_info("reconciliation: the venue and the engine agree");
    metric_set(x->m_diff, (double)n);
    json_decref(x->reconcile);
    x->reconcile = json_pack("{s:b, s:b, s:o, s:o, s:o, s:I}", "checked", venue_pos != NULL, "ok", venue_pos && n == 0,
                             "venue", venue_pos ? venue_pos : json_null(), "engine", engine_pos, "differences", diffs,
                             "at", (json_int_t)clock_wall_ms());
    json_decref(all);
    x->reconciling = 0;
    free(rc);
}

static void ex_engine_pos_cb(void *ud, const struct redisReply *r)
{
    ex_recon_t *k = ud;
    if (k->x->closing) {
        json_decref(k->venue_pos);
        free(k);
        return;
    }
    json_t *st = r && r->type == REDIS_REPLY_STRING ? json_loadb(r->str, r->len, 0, NULL) : NULL;
    json_t *engine_pos = json_object();
    if (json_is_object(st)) json_object_update(engine_pos, st);
    json_decref(st);
    ex_reconcile_done(k, engine_pos);
}

static void ex_venue_pos_cb(void *ud, const venue_answer_t *a)
{
    ex_recon_t *k = ud;
    char key[160];
    if (k->x->closing) {
        free(k);
        return;
    }
    k->venue_pos = a->rc == VENUE_FILLED && a->positions ? json_incref(a->positions) : NULL;
    snprintf(k->err, sizeof k->err, "%s", a->err);
    proto_key(key, sizeof key, k->x->svc->cfg.ns, QT_KEY_ENGINE_POSITIONS);
    const char *get[] = {"GET", key};
    if (bus_redis(k->x->svc->bus, ex_engine_pos_cb, k, 2, get, NULL) < 0) ex_reconcile_done(k, json_object());
}

/* Compare the venue's open positions with the engine's (asynchronously). */
static void ex_reconcile(executor_t *x)
{
    ex_recon_t *k = calloc(1, sizeof *k);
    if (!k) return;
    k->x = x;
    x->reconciling = 1;
    x->venue->ops->positions(x->venue, ex_venue_pos_cb, k);
}

static void ex_config_cb(void *ud, const struct redisReply *r)
{
    executor_t *x = ud;
    if (x->closing || policyview_load_hash(&x->pv, r) < 0) return;
    if (!x->pv_loaded) log_info("policy caps read: leverage at most %g, margin at most %g%% of equity",
                                policyview_num(&x->pv, "risk.max_leverage", 5),
                                policyview_num(&x->pv, "risk.total_exposure_limit_pct", 15.0));
    x->pv_loaded = 1;
}

static bus_result_t ex_on_policy(void *ud, const bus_msg_t *m, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    policyview_apply(&((executor_t *)ud)->pv, m->ev);
    return BUS_OK;
}

static void ex_tick(evutil_socket_t fd, short what, void *arg)
{
    executor_t *x = arg;
    (void)fd;
    (void)what;
    long long now = clock_mono_ms();
    if (!x->pv_loaded || now - x->pv_read_mono >= 5000) { /* events keep it current; the re-read heals a lost one */
        char key[160];
        proto_key(key, sizeof key, x->svc->cfg.ns, QT_KEY_POLICY_CONFIG);
        const char *argv[] = {"HGETALL", key};
        if (bus_redis(x->svc->bus, ex_config_cb, x, 2, argv, NULL) == 0) x->pv_read_mono = now;
    }
    if (!x->reconciling && (!x->reconcile || (x->reconcile_ms > 0 && now - x->reconcile_mono >= x->reconcile_ms))) {
        x->reconcile_mono = now;
        ex_reconcile(x);
    }
    if (breaker_state(x->breaker, clock_mono_ms()) != BREAKER_OPEN) bus_resume(x->svc->bus); /* half-open: try again */
}

static int ex_ready(void *ud, char *why, size_t len)
{
    executor_t *x = ud;
    if (breaker_state(x->breaker, clock_mono_ms()) != BREAKER_OPEN) return 1;
    snprintf(why, len, "venue breaker open (retry in %lld ms): %s",
             (long long)breaker_retry_in_ms(x->breaker, clock_mono_ms()), x->last_error);
    return 0;
}

static json_t *ex_status_json(const executor_t *x)
{
    json_t *counts = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "received", (json_int_t)x->received,
                               "executed", (json_int_t)x->executed, "failed", (json_int_t)x->failed,
                               "duplicates_suppressed", (json_int_t)x->duplicates, "recovered_after_restart",
                               (json_int_t)x->recovered, "retries", (json_int_t)x->retried, "waits_for_in_flight_orders",
                               (json_int_t)x->in_flight_waits, "orders_not_taken", (json_int_t)x->unsent,
                               "waits_for_rate_limit", (json_int_t)x->paused, "refused_stale", (json_int_t)x->stale,
                               "refused_over_policy_caps", (json_int_t)x->capped,
                               "positions_closed_externally", (json_int_t)x->external);
    return json_pack("{s:s, s:s, s:o, s:s, s:O, s:o?}", "venue", x->venue->ops->name, "breaker",
                     breaker_state_name(breaker_state(x->breaker, clock_mono_ms())), "counts", counts, "last_error",
                     x->last_error, "reconciliation", x->reconcile ? x->reconcile : json_null(), "partitions",
                     svc_partitions_status(x->svc));
}

static int ex_http_status(void *ud, httpd_req_t *req, json_t **out)
{
    (void)req;
    *out = ex_status_json(ud);
    return 200;
}

static json_t *ex_status(void *ud)
{
    executor_t *x = ud;
    json_t *s = ex_status_json(x);
    json_object_set_new(s, "bus", bus_status(x->svc->bus));
    return s;
}

/* QT_VENUE=paper (default) or binance-futures. */
static venue_t *ex_venue_new(const char *kind, svc_t *svc, char *err, size_t errlen)
{
    if (strcmp(kind, "paper") == 0) return venue_paper_new(svc->base, svc->bus, svc->cfg.ns, err, errlen);
    if (strcmp(kind, "binance-futures") == 0) return venue_binance_new(svc->base, err, errlen);
    snprintf(err, errlen, "QT_VENUE: '%.40s' is not paper or binance-futures", kind);
    return NULL;
}

executor_t *executor_new(svc_t *svc, char *err, size_t errlen)
{
    const char *kind;
    breaker_config_t bc;
    executor_t *x = calloc(1, sizeof *x);
    if (!x || policyview_init(&x->pv) < 0) return free(x), snprintf(err, errlen, "out of memory"), NULL;
    x->svc = svc;
    config_get_str("QT_VENUE", "paper", &kind);
    breaker_config_default(&bc);
    if (config_get_long("QT_INTENT_MAX_AGE_MS", 60000, 0, 86400000L, &x->max_age_ms, err, errlen) < 0 ||
        config_get_long("QT_RECONCILE_MS", 30000, 0, 86400000L, &x->reconcile_ms, err, errlen) < 0 ||
        config_get_breaker("QT_VENUE_BREAKER", &bc, err, errlen) < 0 || !(x->breaker = breaker_new("venue", &bc)) ||
        !(x->venue = ex_venue_new(kind, svc, err, errlen))) {
        executor_free(x);
        return NULL;
    }
    char l[64];
    snprintf(l, sizeof l, "venue=\"%s\"", x->venue->ops->name);
    x->m_executed = metrics_counter(svc->metrics, "qt_executor_executed_total", "Intents filled", l);
    x->m_failed = metrics_counter(svc->metrics, "qt_executor_failed_total", "Intents refused or rejected", l);
    x->m_dups = metrics_counter(svc->metrics, "qt_executor_duplicates_total", "Intents delivered again after their result", l);
    x->m_diff = metrics_gauge(svc->metrics, "qt_executor_reconcile_differences", "Positions that differ from the engine's", l);
    x->m_jobs = metrics_gauge(svc->metrics, "qt_executor_intents_in_progress", "Intents on their way to the venue", l);
    x->m_external = metrics_counter(svc->metrics, "qt_executor_positions_closed_externally_total",
                                    "Positions the engine held that the venue no longer had (liquidation, manual close)", l);
    x->m_capped = metrics_counter(svc->metrics, "qt_executor_refused_over_caps_total",
                                  "Entries refused for leverage, size or exposure over the policy's hard caps", l);
    x->tick = event_new(svc->base, -1, EV_PERSIST, ex_tick, x);
    struct timeval tv = {0, 500000};
    if (!x->tick || event_add(x->tick, &tv) < 0 || bus_subscribe(svc->bus, QT_STREAM_TRADE_INTENT, ex_handle, x) < 0 ||
        bus_subscribe(svc->bus, QT_STREAM_POLICY, ex_on_policy, x) < 0 ||
        bus_lease_parts(svc->bus) < 0 || /* one replica per partition: a symbol's orders in order (lease.h) */
        httpd_route(svc->http, "GET", "/api/v1/executor/status", 0, ex_http_status, x) < 0 ||
        httpd_add_ready(svc->http, "venue", ex_ready, x) < 0) {
        snprintf(err, errlen, "cannot set up the executor");
        executor_free(x);
        return NULL;
    }
    httpd_set_status(svc->http, ex_status, x);
    return x;
}

void executor_close(executor_t *x)
{
    if (!x || x->closing) return;
    x->closing = 1; /* answers that still come free their jobs; the entries stay pending */
    if (x->venue) x->venue->ops->free(x->venue);
    x->venue = NULL;
}

void executor_free(executor_t *x)
{
    if (!x) return;
    executor_close(x);
    if (x->tick) event_free(x->tick);
    while (x->jobs) {
        ex_job_t *j = x->jobs;
        x->jobs = j->next;
        ex_job_free(j);
    }
    breaker_free(x->breaker);
    json_decref(x->reconcile);
    json_decref(x->suspects);
    policyview_free(&x->pv);
    free(x);
}
