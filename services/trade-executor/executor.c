/* executor.c — intents to orders, exactly once (see executor.h). */
#include "executor.h"
#include "breaker.h"
#include "clock.h"
#include "digest.h"
#include "event.h"
#include "log.h"
#include "rsync.h"
#include "venue.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EX_RECORD_TTL "2592000" /* 30 days */

struct executor {
    svc_t *svc;
    venue_t *venue;
    breaker_t *breaker;
    redisContext *rc;
    struct event *tick;
    long received, executed, failed, duplicates, recovered, retried, in_flight_waits, unsent, stale, paused;
    int venue_failed; /* while an intent is handled: a venue call got no answer */
    long max_age_ms;  /* QT_INTENT_MAX_AGE_MS: an entry older than this is not ordered; 0 = no limit */
    char last_error[256];
    json_t *reconcile;
    metric_t *m_executed, *m_failed, *m_dups, *m_diff;
};

typedef struct ex_intent {
    const event_t *ev;
    const char *symbol, *side, *tag;
    double size_pct, leverage, ref_price, qty;
    int reduce_only;
    int64_t event_time;
    char cid[40], key[200];
} ex_intent_t;

/* "qt" + 32 hex of SHA-256(intent id): 34 characters, a valid Binance client order id. */
static void ex_cid(const char *intent_id, char out[40])
{
    out[0] = 'q', out[1] = 't';
    digest_hex(intent_id, 16, out + 2);
}

static redisContext *ex_conn(executor_t *x, char *err, size_t errlen)
{
    if (x->rc && !x->rc->err) return x->rc;
    if (x->rc) redisFree(x->rc);
    x->rc = rsync_connect(&x->svc->cfg.redis, 2000, err, errlen);
    return x->rc;
}

/* Publish the result and mark the intent DONE, atomically. 0; -1 when Redis
 * failed (try again); -2 when the event breaks the contract (a bug: DLQ). */
static int ex_finish(executor_t *x, const ex_intent_t *in, const char *type, json_t *data, char *err, size_t errlen)
{
    char name[128], id[37], key[160], done[200], maxlen[24];
    event_t ev;
    event_field_t f[EVENT_ENVELOPE_FIELDS];
    event_numbuf_t nb;
    redisContext *c = ex_conn(x, err, errlen);
    snprintf(name, sizeof name, "exec:%s", in->ev->id);
    event_derive_id(name, id);
    if (!c) {
        json_decref(data);
        return -1;
    }
    if (event_make(&ev, type, data, in->ev->trace, id, err, errlen) < 0) {
        log_error("%s for intent %s breaks the contract (a bug): %s", type, in->ev->id, err);
        return -2;
    }
    char *json = event_data_json(&ev);
    event_to_fields(&ev, json, f, &nb);
    snprintf(key, sizeof key, "%s:execution", x->svc->cfg.ns);
    snprintf(maxlen, sizeof maxlen, "%ld", x->svc->cfg.stream_maxlen);
    snprintf(done, sizeof done, "{\"state\":\"DONE\",\"result\":\"%s\",\"event_id\":\"%s\"}", type, id);
    const char *xargv[4 + 2 * EVENT_ENVELOPE_FIELDS] = {"MAXLEN", "~", maxlen, "*"};
    size_t xlens[4 + 2 * EVENT_ENVELOPE_FIELDS];
    for (int i = 0; i < 4; i++) xlens[i] = strlen(xargv[i]);
    for (int i = 0; i < EVENT_ENVELOPE_FIELDS; i++) {
        xargv[4 + 2 * i] = f[i].name, xlens[4 + 2 * i] = f[i].name_len;
        xargv[5 + 2 * i] = f[i].val, xlens[5 + 2 * i] = f[i].val_len;
    }
    const char *set[] = {done, "EX", EX_RECORD_TTL};
    char why[300];
    int ok = rsync_xadd_then(c, key, 4 + 2 * EVENT_ENVELOPE_FIELDS, xargv, xlens, "SET", in->key, 3, set, why, sizeof why) == 0;
    if (!ok) snprintf(err, errlen, "cannot record the result in Redis: %s", why);
    free(json);
    event_clear(&ev);
    return ok ? 0 : -1;
}

static int ex_failed(executor_t *x, const ex_intent_t *in, const char *reason, const char *code, int retryable,
                     char *err, size_t errlen)
{
    json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:b, s:I}", "intent_id", in->ev->id, "symbol", in->symbol, "reason", reason,
                          "code", code && *code ? code : "REJECTED", "retryable", retryable, "event_time",
                          (json_int_t)in->event_time);
    log_msg(LOG_WARN, in->ev->trace, "intent %s failed: %s", in->ev->id, reason);
    int rc = ex_finish(x, in, "trade.failed", d, err, errlen);
    if (rc < 0) return rc;
    x->failed++;
    metric_inc(x->m_failed);
    return 0;
}

static int ex_executed(executor_t *x, const ex_intent_t *in, const venue_fill_t *f, char *err, size_t errlen)
{
    json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:s, s:f, s:f, s:f, s:s, s:s, s:b, s:f, s:s, s:I}", "intent_id",
                          in->ev->id, "client_order_id", in->cid, "order_id", f->order_id, "symbol", in->symbol, "side",
                          in->side, "qty", f->qty, "price", f->price, "fee", f->fee, "fee_asset", "USDT", "venue",
                          x->venue->ops->name, "reduce_only", in->reduce_only, "ref_price", in->ref_price,
                          "source_tag", in->tag, "event_time", (json_int_t)in->event_time);
    int rc = ex_finish(x, in, "trade.executed", d, err, errlen);
    if (rc < 0) return rc;
    x->executed++;
    metric_inc(x->m_executed);
    log_msg(LOG_INFO, in->ev->trace, "%s %s %.8g %s at %.8g (order %s, intent %s)", x->venue->ops->name, in->side,
            f->qty, in->symbol, f->price, f->order_id, in->ev->id);
    return 0;
}

/* SET the intent's record to SENT, with mode NX (the claim) or XX; at: when
 * an order request for it starts (wall ms; 0: none in flight, no "at"). The
 * reply, for the caller to free; *cp NULL (err set) when Redis is unreachable. */
static redisReply *ex_set_sent(executor_t *x, const ex_intent_t *in, const char *mode, long long at_ms, redisContext **cp,
                               char *err, size_t errlen)
{
    char rec[160], at[40] = "";
    if (!(*cp = ex_conn(x, err, errlen))) return NULL;
    if (at_ms > 0) snprintf(at, sizeof at, ",\"at\":%lld", at_ms);
    snprintf(rec, sizeof rec, "{\"state\":\"SENT\",\"cid\":\"%s\"%s}", in->cid, at);
    const char *set[] = {"SET", in->key, rec, mode, "EX", EX_RECORD_TTL};
    return redisCommandArgv(*cp, 6, set, NULL);
}

/* Claim the intent: 1 new, 0 already SENT (recover; *sent_at = when its
 * last order request began, wall ms, 0 if none went out), 2 already DONE,
 * -1 error. */
static int ex_claim(executor_t *x, const ex_intent_t *in, long long *sent_at, char *err, size_t errlen)
{
    redisContext *c;
    redisReply *r = ex_set_sent(x, in, "NX", 0, &c, err, errlen);
    if (!c) return -1;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "idempotency record: %s", r ? r->str : c->errstr);
        if (r) freeReplyObject(r);
        return -1;
    }
    int fresh = r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    if (fresh) return 1;
    r = redisCommand(c, "GET %s", in->key);
    json_t *j = r && r->type == REDIS_REPLY_STRING ? json_loadb(r->str, r->len, 0, NULL) : NULL;
    const char *state = json_string_value(json_object_get(j, "state"));
    int done = state && strcmp(state, "DONE") == 0;
    *sent_at = json_is_integer(json_object_get(j, "at")) ? (long long)json_integer_value(json_object_get(j, "at")) : 0;
    json_decref(j);
    if (r) freeReplyObject(r);
    return done ? 2 : 0;
}

/* Note in the record that an order request for it starts now (at_ms), or
 * (0) that the request provably did not reach the venue, so the next
 * attempt need not wait out an in-flight window; -1 with err when Redis
 * cannot say so (then no order goes out; or the window stays, to be safe). */
static int ex_mark_sending(executor_t *x, const ex_intent_t *in, long long at_ms, char *err, size_t errlen)
{
    redisContext *c;
    redisReply *r = ex_set_sent(x, in, "XX", at_ms, &c, err, errlen);
    if (!c) return -1;
    int ok = r && r->type == REDIS_REPLY_STATUS;
    if (!ok) snprintf(err, errlen, "idempotency record: %s", r && r->type == REDIS_REPLY_ERROR ? r->str : r ? "record gone" : c->errstr);
    if (r) freeReplyObject(r);
    return ok ? 0 : -1;
}

/* Quantity for the order, rounded down to the step; 0 with reason when too small. */
static double ex_size(executor_t *x, const ex_intent_t *in, const venue_filters_t *fl, char *reason, size_t len,
                      venue_rc_t *vr, char *err, size_t errlen)
{
    double base, qty;
    *vr = VENUE_FILLED;
    if (in->reduce_only) {
        base = in->qty;
    } else {
        double balance;
        if ((*vr = x->venue->ops->balance(x->venue, &balance, err, errlen)) != VENUE_FILLED) return 0;
        base = balance * in->size_pct * in->leverage / in->ref_price;
    }
    qty = floor(base / fl->step + 1e-9) * fl->step;
    qty = round(qty / fl->step) * fl->step; /* exact multiple, no float dust */
    if (qty < fl->min_qty || qty <= 0)
        snprintf(reason, len, "quantity %.8g rounds below the minimum %.8g for %s", base, fl->min_qty, in->symbol);
    else if (!in->reduce_only && qty * in->ref_price < fl->min_notional)
        snprintf(reason, len, "notional %.2f USDT is below the minimum %.2f for %s", qty * in->ref_price,
                 fl->min_notional, in->symbol);
    else
        return qty;
    return 0;
}

/* What a finished (or not) result means for the intent's delivery. */
static bus_result_t ex_outcome(int rc) { return rc == -2 ? BUS_DEAD : rc < 0 ? BUS_RETRY : BUS_OK; }

static bus_result_t ex_unavailable(executor_t *x, const char *what, char *err, size_t errlen)
{
    x->venue_failed = 1;
    breaker_record(x->breaker, 0, 0, clock_mono_ms());
    snprintf(x->last_error, sizeof x->last_error, "%s: %.200s", what, err);
    if (breaker_state(x->breaker, clock_mono_ms()) == BREAKER_OPEN) bus_pause(x->svc->bus, "venue breaker open");
    x->retried++;
    snprintf(err + strlen(err), errlen - strlen(err), " (will retry)");
    return BUS_RETRY;
}

/* Place (or find) the order and record its result. sent_at: see ex_claim. */
static bus_result_t ex_execute(executor_t *x, ex_intent_t *in, int fresh, long long sent_at, char *err, size_t errlen)
{
    venue_fill_t fill;
    venue_filters_t fl;
    char reason[256] = "", code[16] = "";
    venue_rc_t vr;
    if (!fresh) { /* a crash or an unanswered request after the order was sent? ask the venue first */
        vr = x->venue->ops->query(x->venue, in->symbol, in->cid, &fill, err, errlen);
        if (vr == VENUE_UNAVAILABLE) return ex_unavailable(x, "order query", err, errlen);
        if (vr == VENUE_REJECTED) { /* the order is there and ended with nothing filled */
            char reason[256];
            snprintf(reason, sizeof reason, "%s", err);
            return ex_outcome(ex_failed(x, in, reason, "NOT_FILLED", 0, err, errlen));
        }
        if (vr == VENUE_FILLED) {
            x->recovered++;
            log_msg(LOG_INFO, in->ev->trace, "intent %s was ordered before; publishing its fill", in->ev->id);
            return ex_outcome(ex_executed(x, in, &fill, err, errlen));
        }
        long long age = (long long)clock_wall_ms() - sent_at, wait = x->venue->in_flight_ms - age;
        if (vr == VENUE_NOT_FOUND && sent_at > 0 && wait > 0) { /* not there yet is not "never" */
            if (wait > x->venue->in_flight_ms) wait = x->venue->in_flight_ms; /* the wall clock went back */
            x->in_flight_waits++;
            bus_retry_after(x->svc->bus, wait);
            snprintf(err, errlen, "order %s is not at the venue, but its last request (%lld ms ago) may still reach it: "
                     "asking again in %lld ms before ordering anew", in->cid, age, wait);
            return BUS_RETRY;
        }
    }
    vr = x->venue->ops->filters(x->venue, in->symbol, &fl, err, errlen);
    if (vr == VENUE_UNAVAILABLE) return ex_unavailable(x, "exchange filters", err, errlen);
    if (vr == VENUE_REJECTED) return ex_outcome(ex_failed(x, in, err, "SYMBOL", 0, err, errlen));
    double qty = ex_size(x, in, &fl, reason, sizeof reason, &vr, err, errlen);
    if (vr == VENUE_UNAVAILABLE) return ex_unavailable(x, "balance", err, errlen);
    if (qty <= 0) return ex_outcome(ex_failed(x, in, reason, "MIN_SIZE", 0, err, errlen));
    venue_order_t o = {in->symbol, in->side, in->cid, qty, in->ref_price, in->leverage, in->reduce_only};
    if (x->venue->in_flight_ms > 0 && ex_mark_sending(x, in, (long long)clock_wall_ms(), err, errlen) < 0) return BUS_RETRY;
    vr = x->venue->ops->place(x->venue, &o, &fill, code, err, errlen);
    if (vr == VENUE_NOT_SENT) { /* refused or never sent: nothing in flight to wait for */
        char ignore[256];
        if (x->venue->in_flight_ms > 0 && ex_mark_sending(x, in, 0, ignore, sizeof ignore) == 0) x->unsent++;
        return ex_unavailable(x, "order (not taken by the venue)", err, errlen);
    }
    if (vr == VENUE_UNAVAILABLE) return ex_unavailable(x, "order", err, errlen);
    if (vr == VENUE_REJECTED) {
        snprintf(reason, sizeof reason, "%s", err);
        return ex_outcome(ex_failed(x, in, reason, code, 0, err, errlen));
    }
    return ex_outcome(ex_executed(x, in, &fill, err, errlen));
}

static bus_result_t ex_handle(void *ud, const bus_msg_t *m, char *err, size_t errlen)
{
    executor_t *x = ud;
    const json_t *d = m->ev->data;
    ex_intent_t in = {m->ev, json_string_value(json_object_get(d, "symbol")), json_string_value(json_object_get(d, "side")),
                      json_string_value(json_object_get(d, "source_tag")), json_number_value(json_object_get(d, "size_pct")),
                      json_number_value(json_object_get(d, "leverage")), json_number_value(json_object_get(d, "ref_price")),
                      json_number_value(json_object_get(d, "qty")), json_is_true(json_object_get(d, "reduce_only")),
                      json_integer_value(json_object_get(d, "event_time")), "", ""};
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
    ex_cid(m->ev->id, in.cid);
    snprintf(in.key, sizeof in.key, "%s:exec:%s", x->svc->cfg.ns, m->ev->id);
    long long sent_at = 0;
    int64_t t0 = clock_mono_ms();
    int claim = ex_claim(x, &in, &sent_at, err, errlen);
    if (claim < 0 || claim == 2) { /* no venue call: a half-open breaker gets its trial back */
        breaker_release(x->breaker, clock_mono_ms());
        if (claim < 0) return BUS_RETRY; /* Redis trouble: the bus retries */
        x->duplicates++;                 /* the result is already in the stream */
        metric_inc(x->m_dups);
        return BUS_OK;
    }
    long long age = (long long)clock_wall_ms() - (long long)m->ev->ts;
    if (claim == 1 && x->max_age_ms > 0 && !in.reduce_only && age > x->max_age_ms) {
        char reason[200]; /* an entry decided on a market long gone; exits always go out */
        snprintf(reason, sizeof reason, "intent is %lld ms old (QT_INTENT_MAX_AGE_MS=%ld): not ordered on a market that has moved on",
                 age, x->max_age_ms);
        breaker_release(x->breaker, clock_mono_ms());
        x->stale++;
        return ex_outcome(ex_failed(x, &in, reason, "STALE", 0, err, errlen));
    }
    /* One breaker outcome per intent handled: a failure if any venue call got
     * no answer (ex_unavailable records it), else a success — whatever the
     * answers said (a fill, a refusal, "no such order"): the venue answered. */
    x->venue_failed = 0;
    bus_result_t r = ex_execute(x, &in, claim == 1, sent_at, err, errlen);
    if (!x->venue_failed) breaker_record(x->breaker, 1, clock_mono_ms() - t0, clock_mono_ms());
    return r;
}

/* ---------- reconciliation, ticking, HTTP ---------- */

static void ex_reconcile(executor_t *x)
{
    char err[256];
    json_t *venue_pos = x->venue->ops->positions(x->venue, err, sizeof err), *engine_pos = json_object();
    redisContext *c = ex_conn(x, err, sizeof err);
    redisReply *r = c ? redisCommand(c, "GET %s:engine:state", x->svc->cfg.ns) : NULL;
    json_t *st = r && r->type == REDIS_REPLY_STRING ? json_loadb(r->str, r->len, 0, NULL) : NULL;
    if (r) freeReplyObject(r);
    if (json_is_object(json_object_get(st, "positions"))) json_object_update(engine_pos, json_object_get(st, "positions"));
    json_decref(st);
    json_t *diffs = json_array(), *all = json_object();
    const char *k;
    json_t *v;
    if (venue_pos) json_object_update(all, venue_pos);
    json_object_update(all, engine_pos);
    json_object_foreach(all, k, v) {
        double a = json_number_value(json_object_get(venue_pos, k)), b = json_number_value(json_object_get(engine_pos, k));
        if (fabs(a - b) > 1e-9 * fmax(1, fabs(a)))
            json_array_append_new(diffs, json_pack("{s:s, s:f, s:f}", "symbol", k, "venue", a, "engine", b));
    }
    size_t n = json_array_size(diffs);
    if (!venue_pos) log_warn("reconciliation: cannot read the venue's positions: %s", err);
    else if (n) log_warn("reconciliation: %zu positions differ between the venue and the engine (not changed: check them)", n);
    else log_info("reconciliation: the venue and the engine agree");
    metric_set(x->m_diff, (double)n);
    json_decref(x->reconcile);
    x->reconcile = json_pack("{s:b, s:b, s:o, s:o, s:o, s:I}", "checked", venue_pos != NULL, "ok", venue_pos && n == 0,
                             "venue", venue_pos ? venue_pos : json_null(), "engine", engine_pos, "differences", diffs,
                             "at", (json_int_t)clock_wall_ms());
    json_decref(all);
}

static void ex_tick(evutil_socket_t fd, short what, void *arg)
{
    executor_t *x = arg;
    (void)fd;
    (void)what;
    if (!x->reconcile) ex_reconcile(x);
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
    json_t *counts = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "received", (json_int_t)x->received,
                               "executed", (json_int_t)x->executed, "failed", (json_int_t)x->failed,
                               "duplicates_suppressed", (json_int_t)x->duplicates, "recovered_after_restart",
                               (json_int_t)x->recovered, "retries", (json_int_t)x->retried, "waits_for_in_flight_orders",
                               (json_int_t)x->in_flight_waits, "orders_not_taken", (json_int_t)x->unsent,
                               "waits_for_rate_limit", (json_int_t)x->paused, "refused_stale", (json_int_t)x->stale);
    return json_pack("{s:s, s:s, s:o, s:s, s:O}", "venue", x->venue->ops->name, "breaker",
                     breaker_state_name(breaker_state(x->breaker, clock_mono_ms())), "counts", counts, "last_error",
                     x->last_error, "reconciliation", x->reconcile ? x->reconcile : json_null());
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

executor_t *executor_new(svc_t *svc, char *err, size_t errlen)
{
    const char *kind;
    breaker_config_t bc;
    executor_t *x = calloc(1, sizeof *x);
    if (!x) return snprintf(err, errlen, "out of memory"), NULL;
    x->svc = svc;
    config_get_str("QT_VENUE", "paper", &kind);
    breaker_config_default(&bc);
    if (config_get_long("QT_INTENT_MAX_AGE_MS", 60000, 0, 86400000L, &x->max_age_ms, err, errlen) < 0 ||
        breaker_config_env(&bc, "QT_VENUE_BREAKER", err, errlen) < 0 || !(x->breaker = breaker_new("venue", &bc)) ||
        !(x->venue = venue_new(kind, svc->cfg.ns, &svc->cfg.redis, err, errlen))) {
        executor_free(x);
        return NULL;
    }
    char l[64];
    snprintf(l, sizeof l, "venue=\"%s\"", x->venue->ops->name);
    x->m_executed = metrics_counter(svc->metrics, "qt_executor_executed_total", "Intents filled", l);
    x->m_failed = metrics_counter(svc->metrics, "qt_executor_failed_total", "Intents refused or rejected", l);
    x->m_dups = metrics_counter(svc->metrics, "qt_executor_duplicates_total", "Intents delivered again after their result", l);
    x->m_diff = metrics_gauge(svc->metrics, "qt_executor_reconcile_differences", "Positions that differ from the engine's", l);
    x->tick = event_new(svc->base, -1, EV_PERSIST, ex_tick, x);
    struct timeval tv = {0, 500000};
    if (!x->tick || event_add(x->tick, &tv) < 0 || bus_subscribe(svc->bus, "trade.intent", ex_handle, x) < 0) {
        snprintf(err, errlen, "cannot set up the executor");
        executor_free(x);
        return NULL;
    }
    httpd_route(svc->http, "GET", "/api/v1/executor/status", 0, ex_http_status, x);
    httpd_add_ready(svc->http, "venue", ex_ready, x);
    httpd_set_status(svc->http, ex_status, x);
    return x;
}

void executor_free(executor_t *x)
{
    if (!x) return;
    if (x->tick) event_free(x->tick);
    if (x->venue) x->venue->ops->free(x->venue);
    if (x->rc) redisFree(x->rc);
    breaker_free(x->breaker);
    json_decref(x->reconcile);
    free(x);
}
