/* venue_binance.c — Binance USDⓈ-M futures through libcommon/binance:
 * MARKET orders with newClientOrderId and reduceOnly, fills queried by
 * origClientOrderId, LOT_SIZE / MIN_NOTIONAL filters from exchangeInfo
 * (cached), leverage set once per symbol. Fees are estimated at
 * QT_BINANCE_FEE_BPS (taker, 4) of the notional: the order reply carries none.
 * Every call runs on the loop (binance_call: libcurl multi), so an order
 * waiting on a slow exchange holds no other intent. */
#include "binance.h"
#include "config.h"
#include "log.h"
#include "venue.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct bvenue {
    venue_t base;
    binance_t *bn;
    json_t *info;       /* exchangeInfo */
    json_t *leverage;   /* symbol → leverage set */
    double fee_bps;
} bvenue_t;

/* 4xx errors with a Binance code are final; the rest (5xx, 408, 429/418,
 * no answer, the "outcome unknown" codes -1006/-1007) pass. */
static venue_rc_t bv_classify(binance_rc_t rc, const binance_reply_t *r)
{
    if (rc == BINANCE_OK) return VENUE_FILLED;
    if (rc == BINANCE_HTTP && r->http_status >= 400 && r->http_status < 500 && r->http_status != 429 &&
        r->http_status != 418 && r->http_status != 408 && r->code != 0 && !binance_outcome_unknown(r))
        return VENUE_REJECTED;
    return VENUE_UNAVAILABLE;
}

/* A decimal the exchange sends as a string ("0.001"): 0 with *out, or -1
 * when the field is missing, not a string or not a finite number. */
static int bv_field(const json_t *o, const char *key, double *out)
{
    const char *v = json_string_value(json_object_get(o, key));
    char *end;
    if (!v || !*v) return -1;
    *out = strtod(v, &end);
    return *end == '\0' && isfinite(*out) ? 0 : -1;
}

/* An order as the exchange reports it: FILLED → its fill; ended (EXPIRED,
 * CANCELED, REJECTED, EXPIRED_IN_MATCH) with a part filled → that part (what
 * is real is what filled); ended with nothing filled → REJECTED; still
 * working (NEW, PARTIALLY_FILLED) → UNAVAILABLE: ask again later. */
static venue_rc_t bv_order(const json_t *o, venue_fill_t *f, double fee_bps, char *err, size_t errlen)
{
    const char *st = json_string_value(json_object_get(o, "status")), *cid = json_string_value(json_object_get(o, "clientOrderId"));
    snprintf(f->order_id, sizeof f->order_id, "%lld", (long long)json_integer_value(json_object_get(o, "orderId")));
    int bad = bv_field(o, "executedQty", &f->qty) < 0 || bv_field(o, "avgPrice", &f->price) < 0;
    f->fee = bad ? 0 : f->qty * f->price * fee_bps / 1e4;
    if (!st || bad || f->qty < 0 || f->price < 0) {
        snprintf(err, errlen, "the exchange's order reply lacks status, executedQty or avgPrice");
        return VENUE_UNAVAILABLE; /* not an answer we can act on: ask again */
    }
    if (strcmp(st, "NEW") == 0 || strcmp(st, "PARTIALLY_FILLED") == 0) {
        snprintf(err, errlen, "order %s is still %s at the exchange", cid ? cid : "?", st);
        return VENUE_UNAVAILABLE;
    }
    if (f->qty > 0 && f->price > 0) return VENUE_FILLED; /* FILLED, or ended after a partial fill */
    snprintf(err, errlen, "order %s ended %s with nothing filled", cid ? cid : "?", st);
    return VENUE_REJECTED;
}

/* A quantity as Binance takes it: plain decimal digits, at most 8 after the
 * point, no exponent ("%g" would write 1e-05 or 3e+08, refused with -1100). */
static void bv_decimal(double x, char *out, size_t len)
{
    snprintf(out, len, "%.8f", x);
    char *dot = strchr(out, '.');
    if (!dot) return;
    char *end = out + strlen(out) - 1;
    while (end > dot && *end == '0') *end-- = '\0';
    if (end == dot) *end = '\0';
}

/* One venue call in flight, with the copies of what it was asked. */
typedef struct bv_call {
    bvenue_t *v;
    venue_done_fn done;
    void *ud;
    char symbol[32], side[8], cid[48], params[512];
    double leverage;
    int reduce_only;
    venue_answer_t a;
} bv_call_t;

static bv_call_t *bv_call_new(bvenue_t *v, const char *symbol, venue_done_fn done, void *ud)
{
    bv_call_t *k = calloc(1, sizeof *k);
    if (!k) return NULL;
    k->v = v, k->done = done, k->ud = ud;
    snprintf(k->symbol, sizeof k->symbol, "%s", symbol ? symbol : "");
    return k;
}

static void bv_call_end(bv_call_t *k)
{
    k->done(k->ud, &k->a);
    json_decref(k->a.positions);
    free(k);
}

/* Start a Binance call for k, or answer UNAVAILABLE at once (later) when it cannot start. */
static void bv_send(bv_call_t *k, const char *method, const char *path, const char *params, int signed_call,
                    binance_done_fn cb)
{
    if (binance_call(k->v->bn, method, path, params, signed_call, cb, k) == 0) return;
    venue_answer_set(&k->a, VENUE_UNAVAILABLE, "out of memory calling the exchange");
    venue_answer_later(&k->v->base, &k->a, k->done, k->ud);
    free(k);
}

/* A call that cannot start (out of memory): its answer, later. */
static void bv_fail_later(bvenue_t *v, venue_done_fn done, void *ud)
{
    venue_answer_t a = {0};
    venue_answer_set(&a, VENUE_UNAVAILABLE, "out of memory");
    venue_answer_later(&v->base, &a, done, ud);
}

/* ---- query: GET /fapi/v1/order by origClientOrderId ---- */

/* An order lookup's answer into k->a (NOT_FOUND: the exchange has no such order). */
static void bv_lookup_answer(bv_call_t *k, binance_rc_t rc, const binance_reply_t *r, const char *err)
{
    venue_rc_t vr = bv_classify(rc, r);
    snprintf(k->a.err, sizeof k->a.err, "%s", err);
    if (vr == VENUE_REJECTED && r->code == -2013) vr = VENUE_NOT_FOUND; /* Order does not exist. */
    if (vr == VENUE_FILLED) vr = bv_order(r->body, &k->a.fill, k->v->fee_bps, k->a.err, sizeof k->a.err);
    k->a.rc = vr;
}

static void bv_query_cb(void *ud, binance_rc_t rc, binance_reply_t *r, const char *err)
{
    bv_call_t *k = ud;
    bv_lookup_answer(k, rc, r, err);
    bv_call_end(k);
}

static void bv_query_start(bv_call_t *k, const char *cid)
{
    char params[256];
    snprintf(params, sizeof params, "symbol=%s&origClientOrderId=%s", k->symbol, cid);
    bv_send(k, "GET", "/fapi/v1/order", params, 1, bv_query_cb);
}

static void bv_query(venue_t *base, const char *symbol, const char *cid, venue_done_fn done, void *ud)
{
    bv_call_t *k = bv_call_new((bvenue_t *)base, symbol, done, ud);
    if (!k) {
        bv_fail_later((bvenue_t *)base, done, ud);
        return;
    }
    bv_query_start(k, cid);
}

/* ---- place: leverage once per symbol, then a MARKET order ---- */

/* After the order: that order placed before, or one not final yet, is looked up. */
static void bv_place_lookup_cb(void *ud, binance_rc_t rc, binance_reply_t *r, const char *err)
{
    bv_call_t *k = ud;
    bv_lookup_answer(k, rc, r, err);
    if (k->a.rc == VENUE_NOT_FOUND) /* accepted, yet not shown: ask again later, never order again now */
        venue_answer_set(&k->a, VENUE_UNAVAILABLE, "order %s was accepted but the exchange does not show it yet", k->cid);
    if (k->a.rc == VENUE_REJECTED && !k->a.code[0]) snprintf(k->a.code, sizeof k->a.code, "NOT_FILLED");
    bv_call_end(k);
}

static void bv_order_cb(void *ud, binance_rc_t rc, binance_reply_t *r, const char *err)
{
    bv_call_t *k = ud;
    venue_rc_t vr = bv_classify(rc, r);
    snprintf(k->a.err, sizeof k->a.err, "%s", err);
    if (vr == VENUE_REJECTED) snprintf(k->a.code, sizeof k->a.code, "%d", r->code);
    int placed_before = vr == VENUE_REJECTED && r->code == -4116; /* ClientOrderId is duplicated */
    if (vr == VENUE_UNAVAILABLE && binance_refused(rc, r)) vr = VENUE_NOT_SENT; /* no order in flight */
    if (vr == VENUE_FILLED) vr = bv_order(r->body, &k->a.fill, k->v->fee_bps, k->a.err, sizeof k->a.err);
    if (placed_before || (rc == BINANCE_OK && vr == VENUE_UNAVAILABLE)) {
        char params[256];
        k->a.code[0] = '\0';
        snprintf(params, sizeof params, "symbol=%s&origClientOrderId=%s", k->symbol, k->cid);
        if (binance_call(k->v->bn, "GET", "/fapi/v1/order", params, 1, bv_place_lookup_cb, k) == 0) return;
        venue_answer_set(&k->a, VENUE_UNAVAILABLE, "out of memory looking up order %s", k->cid);
    } else {
        k->a.rc = vr;
    }
    if (k->a.rc == VENUE_REJECTED && !k->a.code[0]) snprintf(k->a.code, sizeof k->a.code, "NOT_FILLED");
    bv_call_end(k);
}

static void bv_order_send(bv_call_t *k)
{
    /* RESULT: the reply carries the order's final state; the default (ACK)
     * says NEW with nothing executed even for a MARKET order that filled */
    bv_send(k, "POST", "/fapi/v1/order", k->params, 1, bv_order_cb);
}

static void bv_leverage_cb(void *ud, binance_rc_t rc, binance_reply_t *r, const char *err)
{
    bv_call_t *k = ud;
    (void)r;
    if (rc == BINANCE_OK) json_object_set_new(k->v->leverage, k->symbol, json_real(k->leverage));
    else log_warn("cannot set leverage %g on %s: %s", k->leverage, k->symbol, err);
    bv_order_send(k);
}

static void bv_place(venue_t *base, const venue_order_t *o, venue_done_fn done, void *ud)
{
    bvenue_t *v = (bvenue_t *)base;
    char qty[48], params[128];
    bv_call_t *k = bv_call_new(v, o->symbol, done, ud);
    if (!k) {
        bv_fail_later(v, done, ud);
        return;
    }
    snprintf(k->side, sizeof k->side, "%s", o->side);
    snprintf(k->cid, sizeof k->cid, "%s", o->cid);
    k->leverage = o->leverage, k->reduce_only = o->reduce_only;
    bv_decimal(o->qty, qty, sizeof qty);
    snprintf(k->params, sizeof k->params,
             "symbol=%s&side=%s&type=MARKET&quantity=%s&newClientOrderId=%s%s&newOrderRespType=RESULT", o->symbol,
             o->side, qty, o->cid, o->reduce_only ? "&reduceOnly=true" : "");
    const json_t *have = json_object_get(v->leverage, o->symbol);
    if (o->reduce_only || (have && json_number_value(have) == o->leverage)) {
        bv_order_send(k);
        return;
    }
    snprintf(params, sizeof params, "symbol=%s&leverage=%d", o->symbol, (int)o->leverage);
    bv_send(k, "POST", "/fapi/v1/leverage", params, 1, bv_leverage_cb);
}

/* ---- balance: USDT availableBalance ---- */

static void bv_balance_cb(void *ud, binance_rc_t rc, binance_reply_t *r, const char *err)
{
    bv_call_t *k = ud;
    size_t i;
    json_t *a;
    venue_rc_t vr = bv_classify(rc, r);
    int found = 0;
    snprintf(k->a.err, sizeof k->a.err, "%s", err);
    json_array_foreach(r->body, i, a) if (vr == VENUE_FILLED && json_string_value(json_object_get(a, "asset")) &&
                                          strcmp(json_string_value(json_object_get(a, "asset")), "USDT") == 0)
        found = bv_field(a, "availableBalance", &k->a.balance) == 0 ? 1 : -1;
    if (vr == VENUE_FILLED && found != 1) { /* a reply we cannot read is no answer: ask again later */
        snprintf(k->a.err, sizeof k->a.err, "the exchange's balance reply has %s",
                 found ? "an unreadable USDT availableBalance" : "no USDT entry");
        k->a.balance = 0;
        vr = VENUE_UNAVAILABLE;
    }
    k->a.rc = vr;
    bv_call_end(k);
}

static void bv_balance(venue_t *base, venue_done_fn done, void *ud)
{
    bv_call_t *k = bv_call_new((bvenue_t *)base, NULL, done, ud);
    if (!k) {
        bv_fail_later((bvenue_t *)base, done, ud);
        return;
    }
    bv_send(k, "GET", "/fapi/v2/balance", "", 1, bv_balance_cb);
}

/* ---- filters: LOT_SIZE / MIN_NOTIONAL from exchangeInfo (cached) ---- */

static venue_rc_t bv_filters_of(const bvenue_t *v, const char *symbol, venue_filters_t *out, char *err, size_t errlen)
{
    size_t i, k;
    json_t *s, *f;
    memset(out, 0, sizeof *out);
    int have_market = 0;
    json_array_foreach(json_object_get(v->info, "symbols"), i, s) {
        if (strcmp(json_string_value(json_object_get(s, "symbol")) ? json_string_value(json_object_get(s, "symbol")) : "", symbol) != 0) continue;
        json_array_foreach(json_object_get(s, "filters"), k, f) {
            const char *t = json_string_value(json_object_get(f, "filterType"));
            int market = t && strcmp(t, "MARKET_LOT_SIZE") == 0; /* what MARKET orders go by, when given */
            double step, min_qty;
            if (t && (market || (strcmp(t, "LOT_SIZE") == 0 && !have_market)) && bv_field(f, "stepSize", &step) == 0 &&
                bv_field(f, "minQty", &min_qty) == 0 && step > 0)
                out->step = step, out->min_qty = min_qty, have_market |= market;
            else if (t && strcmp(t, "MIN_NOTIONAL") == 0 && bv_field(f, "notional", &out->min_notional) < 0)
                out->min_notional = 0;
        }
        return out->step > 0 ? VENUE_FILLED : (snprintf(err, errlen, "%s has no readable LOT_SIZE filter", symbol), VENUE_REJECTED);
    }
    snprintf(err, errlen, "%s is not traded on this exchange", symbol);
    return VENUE_REJECTED;
}

static void bv_info_cb(void *ud, binance_rc_t rc, binance_reply_t *r, const char *err)
{
    bv_call_t *k = ud;
    venue_rc_t vr = bv_classify(rc, r);
    snprintf(k->a.err, sizeof k->a.err, "%s", err);
    if (vr == VENUE_FILLED && !json_is_array(json_object_get(r->body, "symbols"))) { /* not cached: asked again next time */
        snprintf(k->a.err, sizeof k->a.err, "the exchange's exchangeInfo reply has no symbols list");
        vr = VENUE_UNAVAILABLE;
    }
    if (vr == VENUE_FILLED) {
        if (!k->v->info) k->v->info = json_incref(r->body);
        vr = bv_filters_of(k->v, k->symbol, &k->a.filters, k->a.err, sizeof k->a.err);
    }
    k->a.rc = vr;
    bv_call_end(k);
}

static void bv_filters(venue_t *base, const char *symbol, venue_done_fn done, void *ud)
{
    bvenue_t *v = (bvenue_t *)base;
    if (v->info) {
        venue_answer_t a = {0};
        a.rc = bv_filters_of(v, symbol, &a.filters, a.err, sizeof a.err);
        {
        venue_answer_later(base, &a, done, ud);
        return;
    }
    }
    bv_call_t *k = bv_call_new(v, symbol, done, ud);
    if (!k) {
        bv_fail_later(v, done, ud);
        return;
    }
    bv_send(k, "GET", "/fapi/v1/exchangeInfo", NULL, 0, bv_info_cb);
}

/* ---- positions: positionRisk ---- */

static void bv_positions_cb(void *ud, binance_rc_t rc, binance_reply_t *r, const char *err)
{
    bv_call_t *k = ud;
    size_t i;
    json_t *p;
    snprintf(k->a.err, sizeof k->a.err, "%s", err);
    k->a.rc = VENUE_UNAVAILABLE;
    if (rc != BINANCE_OK) {
        bv_call_end(k);
        return;
    }
    if (!json_is_array(r->body)) {
        snprintf(k->a.err, sizeof k->a.err, "the exchange's positionRisk reply is not a list");
        {
        bv_call_end(k);
        return;
    }
    }
    json_t *out = json_object();
    json_array_foreach(r->body, i, p) {
        double amt;
        const char *sym = json_string_value(json_object_get(p, "symbol"));
        if (!sym || bv_field(p, "positionAmt", &amt) < 0) {
            snprintf(k->a.err, sizeof k->a.err,
                     "the exchange's positionRisk reply has an entry without a symbol or a readable positionAmt");
            json_decref(out);
            {
        bv_call_end(k);
        return;
    }
        }
        if (amt != 0) json_object_set_new(out, sym, json_real(amt));
    }
    k->a.positions = out, k->a.rc = VENUE_FILLED;
    bv_call_end(k);
}

static void bv_positions(venue_t *base, venue_done_fn done, void *ud)
{
    bv_call_t *k = bv_call_new((bvenue_t *)base, NULL, done, ud);
    if (!k) {
        bv_fail_later((bvenue_t *)base, done, ud);
        return;
    }
    bv_send(k, "GET", "/fapi/v2/positionRisk", "", 1, bv_positions_cb);
}

static void bv_free(venue_t *base)
{
    bvenue_t *v = (bvenue_t *)base;
    binance_free(v->bn);
    json_decref(v->info);
    json_decref(v->leverage);
    free(v);
}

static long long bv_pause_ms(venue_t *base) { return (long long)binance_backoff_ms(((bvenue_t *)base)->bn); }

static const venue_ops_t bv_ops = {"binance-futures", bv_place,     bv_query, bv_balance, bv_filters,
                                   bv_positions,      bv_pause_ms, bv_free};

venue_t *venue_binance_new(struct event_base *base, char *err, size_t errlen)
{
    binance_config_t c;
    bvenue_t *v = calloc(1, sizeof *v);
    if (!v) return snprintf(err, errlen, "out of memory"), NULL;
    v->base.ops = &bv_ops;
    v->base.base = base;
    if (config_get_binance(&c, NULL, err, errlen) < 0 ||
        config_get_double("QT_BINANCE_FEE_BPS", 4, 0, 1000, &v->fee_bps, err, errlen) < 0) {
        explicit_bzero(&c, sizeof c);
        free(v);
        return NULL;
    }
    if (!c.api_key[0] || !c.api_secret[0]) {
        snprintf(err, errlen, "QT_VENUE=binance-futures needs QT_BINANCE_API_KEY and QT_BINANCE_API_SECRET "
                              "(or QT_BINANCE_API_KEY_FILE / QT_BINANCE_API_SECRET_FILE)");
        explicit_bzero(&c, sizeof c);
        free(v);
        return NULL;
    }
    v->leverage = json_object();
    v->bn = binance_new(&c, err, errlen);
    long long recv_window_ms = c.recv_window_ms, timeout_ms = c.timeout_ms;
    char base_url[sizeof c.base_url];
    snprintf(base_url, sizeof base_url, "%s", c.base_url);
    explicit_bzero(&c, sizeof c); /* the keys live on only inside the client */
    if (!v->bn || binance_attach(v->bn, base) < 0) {
        if (v->bn) snprintf(err, errlen, "out of memory");
        binance_free(v->bn);
        json_decref(v->leverage);
        free(v);
        return NULL;
    }
    /* An order request is dead once the exchange would refuse its timestamp
     * (recvWindow after it). One place() may send it as late as four client
     * timeouts after it began (set leverage, the order, a clock re-sync on
     * -1021, the order again); plus a second for the clocks' drift. */
    v->base.in_flight_ms = recv_window_ms + 4 * timeout_ms + 1000;
    log_info("binance-futures venue at %s", base_url);
    return &v->base;
}
