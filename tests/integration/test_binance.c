/* Integration tests: the Binance REST client and the trading-engine's
 * Binance feed against the local test exchange (tests/bin/test-exchange),
 * which verifies keys, signatures and timestamps like the real one. */
#include "binance.h"
#include "check.h"
#include "clock.h"
#include "harness.h"

#include <signal.h>
#include <sys/wait.h>

static th_redis_t R;
static char dir[256], exbin[256], engbin[256], base[64], out[65536];
static int export_;
static pid_t ex;
static redisContext *rc;

static pid_t start_exchange(const char *skew)
{
    static char e[2][64];
    char log[300];
    export_ = th_free_port();
    snprintf(e[0], sizeof e[0], "TX_PORT=%d", export_);
    snprintf(e[1], sizeof e[1], "TX_SKEW_MS=%s", skew);
    const char *env[] = {e[0], e[1], "TX_API_KEY=key-1", "TX_API_SECRET=secret-1", NULL}, *argv[] = {exbin, NULL};
    snprintf(log, sizeof log, "%s/exchange.log", dir);
    pid_t p = th_spawn(exbin, argv, env, log);
    snprintf(base, sizeof base, "http://127.0.0.1:%d", export_);
    th_wait_http(export_, "/fapi/v1/time", 200, 5000);
    return p;
}

static void fault(const char *q)
{
    char path[128];
    snprintf(path, sizeof path, "/_test/fault?%s", q);
    th_http(export_, "POST", path, NULL, NULL, NULL, 0);
}

static binance_t *client(const char *secret, long timeout_ms)
{
    binance_config_t c = {0};
    char err[256];
    snprintf(c.base_url, sizeof c.base_url, "%s", base);
    snprintf(c.api_key, sizeof c.api_key, "key-1");
    snprintf(c.api_secret, sizeof c.api_secret, "%s", secret);
    c.recv_window_ms = 5000;
    c.timeout_ms = timeout_ms;
    c.weight_limit = 100000;
    return binance_new(&c, err, sizeof err);
}

TEST(signed_calls_and_what_the_exchange_refuses)
{
    binance_reply_t r;
    char err[512];
    binance_t *b = client("secret-1", 2000);
    CHECK_EQ(binance_signed(b, "GET", "/fapi/v2/balance", "", &r, err, sizeof err), BINANCE_OK);
    CHECK_STR(json_string_value(json_object_get(json_array_get(r.body, 0), "asset")), "USDT");
    CHECK(r.used_weight > 0);
    binance_reply_clear(&r);
    CHECK_EQ(binance_public(b, "/fapi/v1/klines", "symbol=BTCUSDT&interval=1m&limit=3", &r, err, sizeof err), BINANCE_OK);
    CHECK_EQ(json_array_size(r.body), 3);
    binance_reply_clear(&r);
    binance_free(b);

    b = client("wrong-secret", 2000);
    CHECK_EQ(binance_signed(b, "GET", "/fapi/v2/balance", "", &r, err, sizeof err), BINANCE_HTTP);
    CHECK_EQ(r.code, -1022);
    CHECK_CONTAINS(err, "Signature for this request is not valid");
    CHECK(!strstr(err, "wrong-secret") && !strstr(err, "signature=")); /* no secret, no signature in errors */
    binance_reply_clear(&r);
    binance_free(b);

    b = client("secret-1", 2000);
    CHECK_EQ(binance_signed(b, "POST", "/fapi/v1/order", "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.0015"
                                                          "&newClientOrderId=qt-prec", &r, err, sizeof err), BINANCE_HTTP);
    CHECK_EQ(r.code, -1111);
    binance_reply_clear(&r);
    CHECK_EQ(binance_signed(b, "POST", "/fapi/v1/order", "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1e-03"
                                                          "&newClientOrderId=qt-exp", &r, err, sizeof err), BINANCE_HTTP);
    CHECK_EQ(r.code, -1100); /* an exponent is an illegal character */
    binance_reply_clear(&r);
    CHECK_EQ(binance_signed(b, "POST", "/fapi/v1/order", "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.001"
                                                          "&newClientOrderId=qt-ok-1&newOrderRespType=RESULT", &r, err, sizeof err), BINANCE_OK);
    CHECK_STR(json_string_value(json_object_get(r.body, "status")), "FILLED");
    binance_reply_clear(&r);
    /* without RESULT the reply is an ACK, as Binance's: NEW and nothing executed, though it filled */
    CHECK_EQ(binance_signed(b, "POST", "/fapi/v1/order", "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.001"
                                                          "&newClientOrderId=qt-ack-1", &r, err, sizeof err), BINANCE_OK);
    CHECK_STR(json_string_value(json_object_get(r.body, "status")), "NEW");
    CHECK_STR(json_string_value(json_object_get(r.body, "executedQty")), "0");
    binance_reply_clear(&r);
    CHECK_EQ(binance_signed(b, "GET", "/fapi/v1/order", "symbol=BTCUSDT&origClientOrderId=qt-ack-1", &r, err, sizeof err),
             BINANCE_OK);
    CHECK_STR(json_string_value(json_object_get(r.body, "status")), "FILLED");
    CHECK_STR(json_string_value(json_object_get(r.body, "executedQty")), "0.001");
    binance_reply_clear(&r);
    CHECK_EQ(binance_signed(b, "POST", "/fapi/v1/order", "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.001"
                                                          "&newClientOrderId=qt-ok-1", &r, err, sizeof err), BINANCE_HTTP);
    CHECK_EQ(r.code, -4116); /* the same client order id twice */
    binance_reply_clear(&r);
    CHECK_EQ(binance_signed(b, "GET", "/fapi/v1/order", "symbol=BTCUSDT&origClientOrderId=qt-ok-1", &r, err, sizeof err),
             BINANCE_OK);
    CHECK_STR(json_string_value(json_object_get(r.body, "clientOrderId")), "qt-ok-1");
    binance_reply_clear(&r);
    binance_free(b);
}

TEST(faults_rate_limits_and_timeouts)
{
    binance_reply_t r;
    char err[512];
    binance_t *b = client("secret-1", 500);
    fault("status=429&count=1&retry_after=1");
    CHECK_EQ(binance_public(b, "/fapi/v1/time", NULL, &r, err, sizeof err), BINANCE_HTTP);
    CHECK_EQ(r.http_status, 429);
    binance_reply_clear(&r);
    CHECK(binance_backoff_ms(b) > 500);
    CHECK_EQ(binance_public(b, "/fapi/v1/time", NULL, &r, err, sizeof err), BINANCE_BACKOFF); /* not even sent */
    th_sleep_ms(1100);
    CHECK_EQ(binance_public(b, "/fapi/v1/time", NULL, &r, err, sizeof err), BINANCE_OK);
    binance_reply_clear(&r);
    fault("status=418&count=1&retry_after=1");
    CHECK_EQ(binance_signed(b, "GET", "/fapi/v2/balance", "", &r, err, sizeof err), BINANCE_HTTP);
    CHECK_EQ(r.http_status, 418);
    CHECK(binance_backoff_ms(b) > 0);
    binance_reply_clear(&r);
    th_sleep_ms(1100);
    fault("status=500&count=1");
    CHECK_EQ(binance_public(b, "/fapi/v1/time", NULL, &r, err, sizeof err), BINANCE_HTTP);
    CHECK_EQ(r.http_status, 500);
    binance_reply_clear(&r);
    fault("delay_ms=1500&count=1");
    long long t0 = th_now_ms();
    CHECK_EQ(binance_public(b, "/fapi/v1/time", NULL, &r, err, sizeof err), BINANCE_TRANSPORT);
    CHECK(th_now_ms() - t0 < 1400); /* gave up at the timeout */
    CHECK_CONTAINS(err, "Timeout");
    binance_reply_clear(&r);
    binance_free(b);
}

/* What the executor may believe after an order request failed: the exchange
 * provably did not act on it (never reached it, or a 4xx such as 429), or
 * it may have (the request went out and no answer came, or a 5xx). */
TEST(a_request_that_never_reached_the_exchange_is_told_from_one_that_may_have)
{
    binance_reply_t r;
    char err[512], saved[64];
    const char *order = "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.001&newClientOrderId=qt-reach-";
    char params[200];
    snprintf(saved, sizeof saved, "%s", base);
    snprintf(base, sizeof base, "http://127.0.0.1:%d", th_free_port()); /* nobody listens */
    binance_t *b = client("secret-1", 500);
    snprintf(params, sizeof params, "%s1", order);
    CHECK_EQ(binance_signed(b, "POST", "/fapi/v1/order", params, &r, err, sizeof err), BINANCE_TRANSPORT);
    CHECK_EQ(r.unsent, 1);
    CHECK_EQ(binance_refused(BINANCE_TRANSPORT, &r), 1);
    binance_reply_clear(&r);
    binance_free(b);
    snprintf(base, sizeof base, "%s", saved);
    b = client("secret-1", 500);
    fault("delay_ms=1500&count=1&method=POST&path=/fapi/v1/order");
    snprintf(params, sizeof params, "%s2", order);
    binance_rc_t rc = binance_signed(b, "POST", "/fapi/v1/order", params, &r, err, sizeof err);
    CHECK_EQ(rc, BINANCE_TRANSPORT); /* timed out after the request went out: the order is taken 1.5 s later */
    CHECK_EQ(r.unsent, 0);
    CHECK_EQ(binance_refused(rc, &r), 0);
    binance_reply_clear(&r);
    fault("status=503&count=1&method=POST&path=/fapi/v1/order");
    rc = binance_signed(b, "POST", "/fapi/v1/order", params, &r, err, sizeof err);
    CHECK_EQ(r.http_status, 503);
    CHECK_EQ(binance_refused(rc, &r), 0); /* Binance: a 5xx's outcome is unknown */
    binance_reply_clear(&r);
    rc = binance_signed(b, "POST", "/fapi/v1/order", "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.0015&newClientOrderId=qt-reach-3",
                        &r, err, sizeof err);
    CHECK_EQ(r.code, -1111);
    CHECK_EQ(binance_refused(rc, &r), 1); /* a 4xx with a code: refused */
    binance_reply_clear(&r);
    fault("status=429&count=1&retry_after=1&method=POST&path=/fapi/v1/order");
    snprintf(params, sizeof params, "%s4", order);
    rc = binance_signed(b, "POST", "/fapi/v1/order", params, &r, err, sizeof err);
    CHECK_EQ(r.http_status, 429);
    CHECK_EQ(binance_refused(rc, &r), 1);
    binance_reply_clear(&r);
    rc = binance_signed(b, "POST", "/fapi/v1/order", params, &r, err, sizeof err);
    CHECK_EQ(rc, BINANCE_BACKOFF);
    CHECK_EQ(binance_refused(rc, &r), 1); /* our own back-off: not sent */
    binance_reply_clear(&r);
    th_sleep_ms(1100);
    binance_free(b);
}

TEST(used_weight_over_the_limit_waits_for_the_next_minute)
{
    binance_reply_t r;
    char err[512];
    binance_config_t c = {0};
    snprintf(c.base_url, sizeof c.base_url, "%s", base);
    c.recv_window_ms = 5000, c.timeout_ms = 2000, c.weight_limit = 1; /* the exchange reports more than 1 */
    binance_t *b = binance_new(&c, err, sizeof err);
    CHECK_EQ(binance_public(b, "/fapi/v1/time", NULL, &r, err, sizeof err), BINANCE_OK);
    CHECK(binance_used_weight(b) > 1);
    binance_reply_clear(&r);
    CHECK(binance_backoff_ms(b) > 0 && binance_backoff_ms(b) <= 60000);
    CHECK_EQ(binance_public(b, "/fapi/v1/time", NULL, &r, err, sizeof err), BINANCE_BACKOFF);
    binance_free(b);
}

TEST(clock_skew_resyncs_once)
{
    binance_reply_t r;
    char err[512];
    th_kill(ex, SIGTERM);
    th_wait(ex, 5000, NULL);
    ex = start_exchange("20000"); /* the exchange's clock is 20 s ahead */
    binance_t *b = client("secret-1", 2000);
    CHECK_EQ(binance_signed(b, "GET", "/fapi/v2/balance", "", &r, err, sizeof err), BINANCE_OK);
    CHECK(binance_clock_offset_ms(b) > 19000 && binance_clock_offset_ms(b) < 21000);
    binance_reply_clear(&r);
    CHECK_EQ(th_http(export_, "GET", "/_test/stats", NULL, NULL, out, sizeof out), 200);
    CHECK_CONTAINS(out, "\"bad_timestamp\":1"); /* refused once, then right */
    binance_free(b);
    th_kill(ex, SIGTERM);
    th_wait(ex, 5000, NULL);
    ex = start_exchange("0");
}

TEST(engine_binance_feed_publishes_closed_bars_once)
{
    static char e[4][160];
    char log[300];
    int port = th_free_port();
    snprintf(e[0], sizeof e[0], "REDIS_URL=%s", R.url);
    snprintf(e[1], sizeof e[1], "QT_HTTP_PORT=%d", port);
    snprintf(e[2], sizeof e[2], "QT_FEED_BASE_URL=%s", base);
    snprintf(e[3], sizeof e[3], "QT_NAMESPACE=bf");
    const char *env[] = {e[0], e[1], e[2], e[3], "QT_FEED=binance", "QT_FEED_SYMBOLS=BTCUSDT,ETHUSDT",
                         "QT_FEED_POLL_MS=200", NULL}, *argv[] = {engbin, NULL};
    snprintf(log, sizeof log, "%s/engine-bf.log", dir);
    pid_t p = th_spawn(engbin, argv, env, log);
    CHECK_EQ(th_wait_http(port, "/ready", 200, 10000), 0);
    CHECK_EQ(th_wait_xlen(rc, "bf:market", 4, 10000), 0); /* 2 closed bars of each symbol */
    th_sleep_ms(1000);                                     /* several polls later ... */
    long long n = th_xlen(rc, "bf:market");
    int64_t minute_now = clock_wall_ms() / 60000;
    CHECK(n == 4 || n == 6); /* ... still each closed bar once (6 if a minute closed meanwhile) */
    json_t *last = th_event_data(rc, "bf:market", "market.data.update", -1);
    CHECK(json_integer_value(json_object_get(last, "close_time")) < (minute_now + 1) * 60000);
    CHECK(json_is_true(json_object_get(last, "closed")));
    json_decref(last);
    /* the exchange fails for a while: the breaker opens, then the feed recovers */
    fault("status=503&count=8");
    for (long long end = th_now_ms() + 5000; th_now_ms() < end; th_sleep_ms(100))
        if (th_http(port, "GET", "/api/v1/status", NULL, NULL, out, sizeof out) == 200 && strstr(out, "\"breaker\":\"open\"")) break;
    CHECK_CONTAINS(out, "\"breaker\":\"open\"");
    CHECK_EQ(th_http(port, "GET", "/ready", NULL, NULL, NULL, 0), 200); /* the engine itself stays ready */
    int st = -1;
    th_kill(p, SIGTERM);
    CHECK_EQ(th_wait(p, 10000, &st), 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

int main(int argc, char **argv);

__attribute__((constructor)) static void setup(void)
{
    th_watchdog(300);
    th_bin("tests/bin/test-exchange", exbin, sizeof exbin);
    th_bin("bin/trading-engine", engbin, sizeof engbin);
    th_tempdir(dir, sizeof dir);
    if (th_redis_start(&R, 0) < 0 || !(rc = th_redis_connect(&R))) exit(2);
    ex = start_exchange("0");
}

CHECK_MAIN()
