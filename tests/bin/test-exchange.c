/* test-exchange — a local Binance USDⓈ-M futures REST server for tests.
 *
 * It checks what the real one checks: the X-MBX-APIKEY header (-2015), the
 * HMAC-SHA256 signature over the exact query string (-1022), the timestamp
 * against its own clock and recvWindow (-1021), symbols, quantity precision
 * (-1111), minimum notional (-4164), client order id format (-4015) and
 * duplicates (-4116), reduce-only orders without a position (-2022).
 * Market orders fill at the current minute's price. The order reply is what
 * Binance sends: with newOrderRespType=RESULT the final state; without it
 * (ACK, the default) status NEW, executedQty 0 and avgPrice 0, though the
 * order has filled — a query by client order id shows the fill. Klines
 * come from a deterministic price path. Faults for tests:
 *   POST /_test/fault?status=429|418|500|503&count=N&retry_after=S[&method=M&path=P]
 *   POST /_test/fault?delay_ms=MS&count=N[&method=M&path=P]   (slow replies:
 *        the request is handled, and so an order placed, only after MS;
 *        method and path pick which requests)
 *   POST /_test/fault?fill_pct=P&count=N   (the next N market orders fill only
 *        P % of their quantity, rounded down to the step, and end EXPIRED)
 *   POST /_test/fault?garbage=N[&array=1][&method=M&path=P]   (the next N
 *        requests get 200 with {"unexpected":true}, or with array=1
 *        [{"asset":"USDT","symbol":"BTCUSDT"}]: a reply missing what it should hold)
 *   GET  /_test/orders, GET /_test/stats
 * Environment: TX_PORT, TX_API_KEY, TX_API_SECRET, TX_SKEW_MS (server clock
 * minus real clock), TX_BALANCE (10000), TX_FEE_BPS (4), TX_CID_SCOPE: "all"
 * (default: a client order id is refused with -4116 if any order had it) or
 * "open" (what Binance documents: unique among open orders; a MARKET order
 * here fills at once, so it is never open and its id may come again). */
#include "binance.h"
#include "clock.h"
#include "kline.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define TX_ORDERS 20000

typedef struct {
    char cid[40], symbol[24], side[8];
    const char *status; /* FILLED, or EXPIRED after a fill_pct fault */
    long id;
    double orig_qty, qty, price; /* qty: what filled */
    int reduce;
    int64_t time;
} tx_order_t;

typedef struct {
    char symbol[24];
    double amt, entry;
    int leverage;
} tx_pos_t;

static const char *const tx_symbols[] = {"BTCUSDT", "ETHUSDT", "SOLUSDT", NULL};
static char key[128], secret[128];
static int64_t skew;
static double balance = 10000, fee_bps = 4;
static tx_order_t orders[TX_ORDERS];
static int norders;
static tx_pos_t pos[8];
static int fault_status, fault_count, fault_retry, delay_ms, delay_count, cid_open_only;
static char delay_method[8], delay_path[64];
static int fill_pct = 100, fill_count, garbage_count, garbage_array;
static long stats_requests, stats_signed, stats_bad_sig, stats_bad_ts, stats_weight;
static struct event_base *base;

static int64_t tx_now(void) { return clock_wall_ms() + skew; }

static double tx_price(const char *symbol, int64_t minute)
{
    double p0 = strcmp(symbol, "BTCUSDT") == 0 ? 42000 : strcmp(symbol, "ETHUSDT") == 0 ? 2500 : 100;
    return round(p0 * (1 + 0.01 * sin((double)minute / 30.0) + 0.002 * cos((double)minute / 7.0)) * 100) / 100;
}

static void tx_reply(struct evhttp_request *req, int status, json_t *body)
{
    struct evbuffer *b = evbuffer_new();
    char *s = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(15));
    char w[32];
    evbuffer_add(b, s, strlen(s));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    snprintf(w, sizeof w, "%ld", ++stats_weight);
    evhttp_add_header(evhttp_request_get_output_headers(req), "X-MBX-USED-WEIGHT-1M", w);
    evhttp_send_reply(req, status, status == 200 ? "OK" : "Error", b);
    evbuffer_free(b);
    free(s);
    json_decref(body);
}

static void tx_error(struct evhttp_request *req, int status, int code, const char *msg)
{
    tx_reply(req, status, json_pack("{s:i, s:s}", "code", code, "msg", msg));
}

static int tx_symbol_ok(const char *s)
{
    for (int i = 0; s && tx_symbols[i]; i++)
        if (strcmp(s, tx_symbols[i]) == 0) return 1;
    return 0;
}

static tx_pos_t *tx_pos(const char *symbol)
{
    for (int i = 0; tx_symbols[i]; i++)
        if (strcmp(tx_symbols[i], symbol) == 0) {
            if (!pos[i].symbol[0]) snprintf(pos[i].symbol, sizeof pos[i].symbol, "%s", symbol), pos[i].leverage = 20;
            return &pos[i];
        }
    return NULL;
}

/* Signed endpoints: key, signature over everything before &signature=, timestamp. */
static int tx_check_signed(struct evhttp_request *req, const char *query, struct evkeyvalq *q)
{
    const char *k = evhttp_find_header(evhttp_request_get_input_headers(req), "X-MBX-APIKEY");
    const char *sig = query ? strstr(query, "&signature=") : NULL;
    char want[65], signed_part[2048];
    if (!k || strcmp(k, key) != 0) return tx_error(req, 401, -2015, "Invalid API-key, IP, or permissions for action."), -1;
    if (!sig || (size_t)(sig - query) >= sizeof signed_part) return tx_error(req, 400, -1102, "Mandatory parameter 'signature' was not sent."), -1;
    snprintf(signed_part, sizeof signed_part, "%.*s", (int)(sig - query), query);
    binance_sign(secret, signed_part, want);
    if (strcmp(sig + 11, want) != 0) {
        stats_bad_sig++;
        return tx_error(req, 400, -1022, "Signature for this request is not valid."), -1;
    }
    const char *ts = evhttp_find_header(q, "timestamp"), *rw = evhttp_find_header(q, "recvWindow");
    int64_t t = ts ? atoll(ts) : 0, now = tx_now(), window = rw ? atoll(rw) : 5000;
    if (!ts || t >= now + 1000 || now - t > window) {
        stats_bad_ts++;
        return tx_error(req, 400, -1021, "Timestamp for this request is outside of the recvWindow."), -1;
    }
    stats_signed++;
    return 0;
}

/* ack: the reply to a new order without newOrderRespType=RESULT */
static json_t *tx_order_json_as(const tx_order_t *o, int ack)
{
    char q[32], p[32], oq[32];
    snprintf(q, sizeof q, "%.8g", ack ? 0 : o->qty);
    snprintf(oq, sizeof oq, "%.8g", o->orig_qty);
    snprintf(p, sizeof p, "%.8g", ack || o->qty == 0 ? 0 : o->price);
    return json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:I}", "orderId", (json_int_t)o->id,
                     "symbol", o->symbol, "status", ack ? "NEW" : o->status, "clientOrderId", o->cid, "price", "0",
                     "avgPrice", p, "origQty", oq, "executedQty", q, "side", o->side, "reduceOnly", o->reduce, "type",
                     "MARKET", "updateTime", (json_int_t)o->time);
}

static json_t *tx_order_json(const tx_order_t *o) { return tx_order_json_as(o, 0); }

static tx_order_t *tx_find(const char *cid)
{
    for (int i = 0; cid && i < norders; i++)
        if (strcmp(orders[i].cid, cid) == 0) return &orders[i];
    return NULL;
}

/* ^[0-9]{1,20}(\.[0-9]{1,20})?$, as Binance checks a quantity */
static int tx_decimal_ok(const char *q)
{
    size_t i = 0, a = 0, b = 0;
    while (q[i] >= '0' && q[i] <= '9') i++, a++;
    if (q[i] == '.')
        for (i++; q[i] >= '0' && q[i] <= '9'; i++) b++;
    return q[i] == '\0' && a >= 1 && a <= 20 && b <= 20 && (q[a] != '.' || b >= 1);
}

static int tx_cid_ok(const char *c)
{
    size_t n = c ? strlen(c) : 0;
    if (n < 1 || n > 36) return 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:/-", c[i])) return 0;
    return 1;
}

static void tx_book(tx_order_t *o)
{
    tx_pos_t *p = tx_pos(o->symbol);
    double signed_qty = strcmp(o->side, "BUY") == 0 ? o->qty : -o->qty;
    if (p->amt == 0 || (p->amt > 0) == (signed_qty > 0)) {
        p->entry = (p->entry * fabs(p->amt) + o->price * o->qty) / (fabs(p->amt) + o->qty);
    } else {
        double closed = fmin(fabs(p->amt), o->qty);
        balance += (o->price - p->entry) * closed * (p->amt > 0 ? 1 : -1);
        if (o->qty > closed) p->entry = o->price;
    }
    p->amt += signed_qty;
    if (fabs(p->amt) < 1e-12) p->amt = 0, p->entry = 0;
    balance -= o->qty * o->price * fee_bps / 1e4;
}

static void tx_new_order(struct evhttp_request *req, struct evkeyvalq *q)
{
    const char *sym = evhttp_find_header(q, "symbol"), *side = evhttp_find_header(q, "side");
    const char *type = evhttp_find_header(q, "type"), *qty = evhttp_find_header(q, "quantity");
    const char *cid = evhttp_find_header(q, "newClientOrderId"), *ro = evhttp_find_header(q, "reduceOnly");
    if (!tx_symbol_ok(sym)) {
        tx_error(req, 400, -1121, "Invalid symbol.");
        return;
    }
    if (!side || (strcmp(side, "BUY") && strcmp(side, "SELL"))) {
        tx_error(req, 400, -1117, "Invalid side.");
        return;
    }
    if (!type || strcmp(type, "MARKET")) {
        tx_error(req, 400, -1116, "Invalid orderType.");
        return;
    }
    if (qty && !tx_decimal_ok(qty)) {
        tx_error(req, 400, -1100, "Illegal characters found in parameter 'quantity'; legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.");
        return;
    }
    double quantity = qty ? atof(qty) : 0;
    if (!(quantity > 0)) {
        tx_error(req, 400, -1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.");
        return;
    }
    double steps = quantity / 0.001;
    if (fabs(steps - round(steps)) > 1e-6) {
        tx_error(req, 400, -1111, "Precision is over the maximum defined for this asset.");
        return;
    }
    if (cid && !tx_cid_ok(cid)) {
        tx_error(req, 400, -4015, "Client order id is not valid.");
        return;
    }
    if (cid && !cid_open_only && tx_find(cid)) {
        tx_error(req, 400, -4116, "ClientOrderId is duplicated.");
        return;
    }
    double price = tx_price(sym, tx_now() / 60000);
    int reduce = ro && strcmp(ro, "true") == 0;
    tx_pos_t *p = tx_pos(sym);
    if (reduce && (p->amt == 0 || (p->amt > 0) == (strcmp(side, "BUY") == 0))) {
        tx_error(req, 400, -2022, "ReduceOnly Order is rejected.");
        return;
    }
    if (!reduce && quantity * price < 5) {
        tx_error(req, 400, -4164, "Order's notional must be no smaller than 5 (unless you choose reduce only).");
        return;
    }
    if (norders == TX_ORDERS) {
        tx_error(req, 400, -2010, "too many orders in the test exchange");
        return;
    }
    tx_order_t *o = &orders[norders];
    snprintf(o->cid, sizeof o->cid, "%s", cid ? cid : "auto");
    snprintf(o->symbol, sizeof o->symbol, "%s", sym);
    snprintf(o->side, sizeof o->side, "%s", side);
    o->id = 1000 + norders;
    o->orig_qty = quantity;
    o->qty = reduce ? fmin(quantity, fabs(p->amt)) : quantity;
    o->status = "FILLED";
    if (fill_count > 0) { /* not enough liquidity: part filled, the rest expired */
        fill_count--;
        o->qty = floor(o->qty * fill_pct / 100.0 / 0.001 + 1e-9) * 0.001;
        o->status = "EXPIRED";
    }
    o->price = price;
    o->reduce = reduce;
    o->time = tx_now();
    norders++;
    if (o->qty > 0) tx_book(o);
    const char *rt = evhttp_find_header(q, "newOrderRespType");
    tx_reply(req, 200, tx_order_json_as(o, !rt || strcmp(rt, "RESULT") != 0));
}

static void tx_klines(struct evhttp_request *req, struct evkeyvalq *q)
{
    const char *sym = evhttp_find_header(q, "symbol"), *iv = evhttp_find_header(q, "interval"), *lim = evhttp_find_header(q, "limit");
    if (!tx_symbol_ok(sym)) {
        tx_error(req, 400, -1121, "Invalid symbol.");
        return;
    }
    int64_t ivms = iv ? kline_interval_ms(iv) : 0;
    if (!ivms || ivms % 60000) {
        tx_error(req, 400, -1120, "Invalid interval.");
        return;
    }
    int n = lim ? atoi(lim) : 500;
    if (n < 1 || n > 1500) {
        tx_error(req, 400, -1130, "Invalid data sent for a parameter.");
        return;
    }
    /* as Binance: from startTime (the bars opening at or after it) up to endTime and never past now; without
     * startTime the newest n */
    const char *st = evhttp_find_header(q, "startTime"), *et = evhttp_find_header(q, "endTime");
    int64_t now = tx_now(), cap = et ? atoll(et) : now, first;
    if (cap > now) cap = now;
    first = st ? (atoll(st) + ivms - 1) / ivms * ivms : (now / ivms - n + 1) * ivms;
    json_t *a = json_array();
    for (int64_t t = first; t <= cap && (int)json_array_size(a) < n; t += ivms) {
        double o = tx_price(sym, t / 60000 - 1), c = tx_price(sym, (t + ivms) / 60000 - 1);
        char so[32], sh[32], sl[32], sc[32];
        snprintf(so, sizeof so, "%.2f", o), snprintf(sc, sizeof sc, "%.2f", c);
        snprintf(sh, sizeof sh, "%.2f", fmax(o, c) * 1.001), snprintf(sl, sizeof sl, "%.2f", fmin(o, c) * 0.999);
        json_array_append_new(a, json_pack("[I, s, s, s, s, s, I, s, i, s, s, s]", (json_int_t)t, so, sh, sl, sc, "10.5",
                                           (json_int_t)(t + ivms - 1), "420000", 100, "5.1", "200000", "0"));
    }
    tx_reply(req, 200, a);
}

static void tx_test(struct evhttp_request *req, const char *path, struct evkeyvalq *q)
{
    if (strcmp(path, "/_test/fault") == 0) {
        const char *st = evhttp_find_header(q, "status"), *cnt = evhttp_find_header(q, "count");
        const char *ra = evhttp_find_header(q, "retry_after"), *dl = evhttp_find_header(q, "delay_ms");
        const char *dm = evhttp_find_header(q, "method"), *dp = evhttp_find_header(q, "path");
        snprintf(delay_method, sizeof delay_method, "%s", dm ? dm : "");
        snprintf(delay_path, sizeof delay_path, "%s", dp ? dp : "");
        const char *fp = evhttp_find_header(q, "fill_pct"), *gb = evhttp_find_header(q, "garbage");
        const char *ga = evhttp_find_header(q, "array");
        if (gb) garbage_count = atoi(gb), garbage_array = ga && atoi(ga);
        else if (fp) fill_pct = atoi(fp), fill_count = cnt ? atoi(cnt) : 1;
        else if (dl) delay_ms = atoi(dl), delay_count = cnt ? atoi(cnt) : 1;
        else fault_status = st ? atoi(st) : 0, fault_count = cnt ? atoi(cnt) : 1, fault_retry = ra ? atoi(ra) : 0;
        tx_reply(req, 200, json_pack("{s:b}", "ok", 1));
        return;
    }
    if (strcmp(path, "/_test/orders") == 0) {
        json_t *a = json_array();
        for (int i = 0; i < norders; i++) json_array_append_new(a, tx_order_json(&orders[i]));
        tx_reply(req, 200, json_pack("{s:o, s:f}", "orders", a, "balance", balance));
        return;
    }
    tx_reply(req, 200, json_pack("{s:I, s:I, s:I, s:I}", "requests", (json_int_t)stats_requests, "signed_ok",
                                 (json_int_t)stats_signed, "bad_signature", (json_int_t)stats_bad_sig, "bad_timestamp",
                                 (json_int_t)stats_bad_ts));
}

static json_t *tx_balance_json(void)
{
    char b[32];
    snprintf(b, sizeof b, "%.8f", balance);
    return json_pack("[{s:s, s:s, s:s, s:s}]", "accountAlias", "test", "asset", "USDT", "balance", b, "availableBalance", b);
}

static json_t *tx_positions_json(void)
{
    json_t *a = json_array();
    for (int i = 0; tx_symbols[i]; i++) {
        tx_pos_t *p = tx_pos(tx_symbols[i]);
        char amt[32], entry[32], mark[32];
        snprintf(amt, sizeof amt, "%.8g", p->amt), snprintf(entry, sizeof entry, "%.8g", p->entry);
        snprintf(mark, sizeof mark, "%.2f", tx_price(p->symbol, tx_now() / 60000));
        json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "symbol", p->symbol, "positionAmt", amt,
                                           "entryPrice", entry, "markPrice", mark, "unRealizedProfit", "0", "leverage", "20"));
    }
    return a;
}

static json_t *tx_exchange_info(void)
{
    json_t *syms = json_array();
    for (int i = 0; tx_symbols[i]; i++)
        json_array_append_new(syms, json_pack("{s:s, s:s, s:[{s:s, s:s, s:s, s:s}, {s:s, s:s}]}", "symbol", tx_symbols[i],
                                              "status", "TRADING", "filters", "filterType", "LOT_SIZE", "stepSize", "0.001",
                                              "minQty", "0.001", "maxQty", "1000", "filterType", "MIN_NOTIONAL",
                                              "notional", "5"));
    return json_pack("{s:I, s:o}", "serverTime", (json_int_t)tx_now(), "symbols", syms);
}

static void tx_dispatch_signed(struct evhttp_request *req, const char *m, const char *path, struct evkeyvalq *q)
{
    if (strcmp(m, "POST") == 0 && strcmp(path, "/fapi/v1/order") == 0) {
        tx_new_order(req, q);
        return;
    }
    if (strcmp(m, "GET") == 0 && strcmp(path, "/fapi/v1/order") == 0) {
        tx_order_t *o = tx_find(evhttp_find_header(q, "origClientOrderId"));
        if (!o) {
            tx_error(req, 400, -2013, "Order does not exist.");
            return;
        }
        tx_reply(req, 200, tx_order_json(o));
        return;
    }
    if (strcmp(m, "GET") == 0 && strcmp(path, "/fapi/v2/balance") == 0) {
        tx_reply(req, 200, tx_balance_json());
        return;
    }
    if (strcmp(m, "GET") == 0 && strcmp(path, "/fapi/v2/positionRisk") == 0) {
        tx_reply(req, 200, tx_positions_json());
        return;
    }
    if (strcmp(m, "POST") == 0 && strcmp(path, "/fapi/v1/leverage") == 0) {
        tx_reply(req, 200, json_pack("{s:i, s:s, s:s}", "leverage", evhttp_find_header(q, "leverage") ? atoi(evhttp_find_header(q, "leverage")) : 1,
                                     "symbol", evhttp_find_header(q, "symbol") ? evhttp_find_header(q, "symbol") : "", "maxNotionalValue", "1000000"));
        return;
    }
    tx_error(req, 404, -1000, "unknown endpoint");
}

static void tx_delayed(evutil_socket_t fd, short what, void *arg);

static void tx_handle(struct evhttp_request *req, void *arg)
{
    (void)arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = evhttp_uri_get_path(uri), *query = evhttp_uri_get_query(uri);
    const char *m = evhttp_request_get_command(req) == EVHTTP_REQ_POST ? "POST" : evhttp_request_get_command(req) == EVHTTP_REQ_DELETE ? "DELETE" : "GET";
    struct evkeyvalq q = {0};
    evhttp_parse_query_str(query ? query : "", &q);
    if (strncmp(path, "/_test/", 7) == 0) {
        tx_test(req, path, &q);
    } else if (garbage_count > 0 && (!delay_method[0] || strcmp(delay_method, m) == 0) &&
               (!delay_path[0] || strcmp(delay_path, path) == 0)) {
        garbage_count--;
        tx_reply(req, 200, garbage_array ? json_pack("[{s:s, s:s}]", "asset", "USDT", "symbol", "BTCUSDT")
                                         : json_pack("{s:b}", "unexpected", 1));
    } else if (delay_count > 0 && !arg && (!delay_method[0] || strcmp(delay_method, m) == 0) &&
               (!delay_path[0] || strcmp(delay_path, path) == 0)) {
        delay_count--;
        struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};
        event_base_once(base, -1, EV_TIMEOUT, tx_delayed, req, &tv);
    } else if (stats_requests++, fault_count > 0 && (!delay_method[0] || strcmp(delay_method, m) == 0) &&
               (!delay_path[0] || strcmp(delay_path, path) == 0)) {
        char ra[16];
        fault_count--;
        if (fault_retry) snprintf(ra, sizeof ra, "%d", fault_retry), evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", ra);
        tx_error(req, fault_status, fault_status == 418 ? -1003 : fault_status == 429 ? -1003 : -1001,
                 fault_status == 418 ? "Way too many requests; IP banned." : fault_status == 429 ? "Too many requests." : "Internal error; unable to process your request. Please try again.");
    } else if (strcmp(path, "/fapi/v1/time") == 0) {
        tx_reply(req, 200, json_pack("{s:I}", "serverTime", (json_int_t)tx_now()));
    } else if (strcmp(path, "/fapi/v1/klines") == 0) {
        tx_klines(req, &q);
    } else if (strcmp(path, "/fapi/v1/exchangeInfo") == 0) {
        tx_reply(req, 200, tx_exchange_info());
    } else if (tx_check_signed(req, query, &q) == 0) {
        tx_dispatch_signed(req, m, path, &q);
    }
    evhttp_clear_headers(&q);
}

static void tx_delayed(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    tx_handle(arg, (void *)1);
}

int main(void)
{
    const char *p = getenv("TX_PORT");
    snprintf(key, sizeof key, "%s", getenv("TX_API_KEY") ? getenv("TX_API_KEY") : "test-key");
    snprintf(secret, sizeof secret, "%s", getenv("TX_API_SECRET") ? getenv("TX_API_SECRET") : "test-secret");
    skew = getenv("TX_SKEW_MS") ? atoll(getenv("TX_SKEW_MS")) : 0;
    cid_open_only = getenv("TX_CID_SCOPE") && strcmp(getenv("TX_CID_SCOPE"), "open") == 0;
    if (getenv("TX_BALANCE")) balance = atof(getenv("TX_BALANCE"));
    if (getenv("TX_FEE_BPS")) fee_bps = atof(getenv("TX_FEE_BPS"));
    base = event_base_new();
    struct evhttp *http = evhttp_new(base);
    evhttp_set_gencb(http, tx_handle, NULL);
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_DELETE);
    if (!p || evhttp_bind_socket(http, "127.0.0.1", (ev_uint16_t)atoi(p)) != 0) {
        fprintf(stderr, "test-exchange: cannot listen on TX_PORT=%s\n", p ? p : "(unset)");
        return 2;
    }
    event_base_dispatch(base);
    return 0;
}
