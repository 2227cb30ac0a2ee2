/* venue_binance.c — Binance USDⓈ-M futures through libcommon/binance:
 * MARKET orders with newClientOrderId and reduceOnly, fills queried by
 * origClientOrderId, LOT_SIZE / MIN_NOTIONAL filters from exchangeInfo
 * (cached), leverage set once per symbol. Fees are estimated at
 * QT_BINANCE_FEE_BPS (taker, 4) of the notional: the order reply carries none. */
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

static void bv_leverage(bvenue_t *v, const char *symbol, double lev)
{
    char params[128], err[256];
    binance_reply_t r;
    const json_t *have = json_object_get(v->leverage, symbol);
    if (have && json_number_value(have) == lev) return;
    snprintf(params, sizeof params, "symbol=%s&leverage=%d", symbol, (int)lev);
    if (binance_signed(v->bn, "POST", "/fapi/v1/leverage", params, &r, err, sizeof err) == BINANCE_OK)
        json_object_set_new(v->leverage, symbol, json_real(lev));
    else
        log_warn("cannot set leverage %g on %s: %s", lev, symbol, err);
    binance_reply_clear(&r);
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

static venue_rc_t bv_place(venue_t *base, const venue_order_t *o, venue_fill_t *f, char *code, char *err, size_t errlen)
{
    bvenue_t *v = (bvenue_t *)base;
    char params[512], qty[48];
    binance_reply_t r;
    code[0] = '\0';
    if (!o->reduce_only) bv_leverage(v, o->symbol, o->leverage);
    /* RESULT: the reply carries the order's final state; the default (ACK)
     * says NEW with nothing executed even for a MARKET order that filled */
    bv_decimal(o->qty, qty, sizeof qty);
    snprintf(params, sizeof params, "symbol=%s&side=%s&type=MARKET&quantity=%s&newClientOrderId=%s%s&newOrderRespType=RESULT",
             o->symbol, o->side, qty, o->cid, o->reduce_only ? "&reduceOnly=true" : "");
    binance_rc_t rc = binance_signed(v->bn, "POST", "/fapi/v1/order", params, &r, err, errlen);
    venue_rc_t vr = bv_classify(rc, &r);
    if (vr == VENUE_REJECTED) snprintf(code, 16, "%d", r.code);
    int placed_before = vr == VENUE_REJECTED && r.code == -4116; /* ClientOrderId is duplicated */
    if (vr == VENUE_UNAVAILABLE && binance_refused(rc, &r)) vr = VENUE_NOT_SENT; /* no order in flight */
    if (vr == VENUE_FILLED) vr = bv_order(r.body, f, v->fee_bps, err, errlen);
    binance_reply_clear(&r);
    if (placed_before || (rc == BINANCE_OK && vr == VENUE_UNAVAILABLE)) { /* that order, or one not final yet: look it up */
        code[0] = '\0';
        vr = base->ops->query(base, o->symbol, o->cid, f, err, errlen);
    }
    if (vr == VENUE_NOT_FOUND) { /* accepted, yet not shown: ask again later, never order again now */
        snprintf(err, errlen, "order %s was accepted but the exchange does not show it yet", o->cid);
        vr = VENUE_UNAVAILABLE;
    }
    if (vr == VENUE_REJECTED && !code[0]) snprintf(code, 16, "NOT_FILLED");
    return vr;
}

static venue_rc_t bv_query(venue_t *base, const char *symbol, const char *cid, venue_fill_t *f, char *err, size_t errlen)
{
    bvenue_t *v = (bvenue_t *)base;
    char params[256];
    binance_reply_t r;
    snprintf(params, sizeof params, "symbol=%s&origClientOrderId=%s", symbol, cid);
    binance_rc_t rc = binance_signed(v->bn, "GET", "/fapi/v1/order", params, &r, err, errlen);
    venue_rc_t vr = bv_classify(rc, &r);
    if (vr == VENUE_REJECTED && r.code == -2013) vr = VENUE_NOT_FOUND; /* Order does not exist. */
    if (vr == VENUE_FILLED) vr = bv_order(r.body, f, v->fee_bps, err, errlen);
    binance_reply_clear(&r);
    return vr;
}

static venue_rc_t bv_balance(venue_t *base, double *usdt, char *err, size_t errlen)
{
    bvenue_t *v = (bvenue_t *)base;
    binance_reply_t r;
    size_t i;
    json_t *a;
    venue_rc_t vr = bv_classify(binance_signed(v->bn, "GET", "/fapi/v2/balance", "", &r, err, errlen), &r);
    int found = 0;
    *usdt = 0;
    json_array_foreach(r.body, i, a) if (vr == VENUE_FILLED && json_string_value(json_object_get(a, "asset")) &&
                                         strcmp(json_string_value(json_object_get(a, "asset")), "USDT") == 0)
        found = bv_field(a, "availableBalance", usdt) == 0 ? 1 : -1;
    if (vr == VENUE_FILLED && found != 1) { /* a reply we cannot read is no answer: ask again later */
        snprintf(err, errlen, "the exchange's balance reply has %s", found ? "an unreadable USDT availableBalance" : "no USDT entry");
        *usdt = 0;
        vr = VENUE_UNAVAILABLE;
    }
    binance_reply_clear(&r);
    return vr;
}

static venue_rc_t bv_filters(venue_t *base, const char *symbol, venue_filters_t *out, char *err, size_t errlen)
{
    bvenue_t *v = (bvenue_t *)base;
    size_t i, k;
    json_t *s, *f;
    if (!v->info) {
        binance_reply_t r;
        venue_rc_t vr = bv_classify(binance_public(v->bn, "/fapi/v1/exchangeInfo", NULL, &r, err, errlen), &r);
        if (vr != VENUE_FILLED) {
            binance_reply_clear(&r);
            return vr;
        }
        if (!json_is_array(json_object_get(r.body, "symbols"))) { /* not cached: the next intent asks again */
            snprintf(err, errlen, "the exchange's exchangeInfo reply has no symbols list");
            binance_reply_clear(&r);
            return VENUE_UNAVAILABLE;
        }
        v->info = json_incref(r.body);
        binance_reply_clear(&r);
    }
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

static json_t *bv_positions(venue_t *base, char *err, size_t errlen)
{
    bvenue_t *v = (bvenue_t *)base;
    binance_reply_t r;
    size_t i;
    json_t *p;
    if (binance_signed(v->bn, "GET", "/fapi/v2/positionRisk", "", &r, err, errlen) != BINANCE_OK) {
        binance_reply_clear(&r);
        return NULL;
    }
    json_t *out = json_object();
    if (!json_is_array(r.body)) {
        snprintf(err, errlen, "the exchange's positionRisk reply is not a list");
        json_decref(out);
        binance_reply_clear(&r);
        return NULL;
    }
    json_array_foreach(r.body, i, p) {
        double amt;
        const char *sym = json_string_value(json_object_get(p, "symbol"));
        if (!sym || bv_field(p, "positionAmt", &amt) < 0) {
            snprintf(err, errlen, "the exchange's positionRisk reply has an entry without a symbol or a readable positionAmt");
            json_decref(out);
            binance_reply_clear(&r);
            return NULL;
        }
        if (amt != 0) json_object_set_new(out, sym, json_real(amt));
    }
    binance_reply_clear(&r);
    return out;
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

venue_t *venue_binance_new(char *err, size_t errlen)
{
    binance_config_t c;
    bvenue_t *v = calloc(1, sizeof *v);
    if (!v) return snprintf(err, errlen, "out of memory"), NULL;
    v->base.ops = &bv_ops;
    if (binance_config_env(&c, NULL, err, errlen) < 0 ||
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
    if (!v->bn) {
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
