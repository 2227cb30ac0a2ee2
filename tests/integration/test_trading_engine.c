/* Integration tests: the real trading-engine binary on a real redis-server,
 * with signals, executions and policies injected into its streams. */
#include "check.h"
#include "harness.h"

#include <sys/stat.h>
#include "proto.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static th_redis_t R;
static char bin[256], dir[256], out[65536];
static redisContext *rc;
static const long long T0 = 1704067200000LL; /* 2024-01-01T00:00:00Z */

static pid_t start(const char *ns, const char *const extra[], int *port)
{
    char tag[64];
    snprintf(tag, sizeof tag, "engine-%s", ns);
    return th_service(bin, &R, ns, extra, dir, tag, port, 1);
}

static void stop(pid_t pid) { CHECK_EQ(th_stop(pid, 15000), 0); }

static int get(int port, const char *path) { return th_http(port, "GET", path, NULL, NULL, out, sizeof out); }

static int wait_body(int port, const char *path, const char *want, int ms)
{
    for (long long end = th_now_ms() + ms; th_now_ms() < end; th_sleep_ms(25))
        if (get(port, path) == 200 && strstr(out, want)) return 0;
    return -1;
}

/* The engine replaying the CSV at path, waited for until the replay is done. */
static pid_t start_replay(const char *ns, const char *path, int *port)
{
    char feed[400];
    snprintf(feed, sizeof feed, "QT_FEED=replay:%s", path);
    const char *env[] = {feed, NULL};
    pid_t p = start(ns, env, port);
    CHECK_EQ(wait_body(*port, "/api/v1/status", "\"done\":true", 10000), 0);
    return p;
}

static void set_config(const char *ns, const char *key, const char *json_value)
{
    char k[64], data[256];
    snprintf(k, sizeof k, "%s:policy:config", ns);
    freeReplyObject(redisCommand(rc, "HSET %s %s %s", k, key, json_value));
    snprintf(k, sizeof k, "%s:policy", ns);
    snprintf(data, sizeof data, "{\"key\":\"%s\",\"value\":%s,\"version\":2}", key, json_value);
    th_xadd_event(rc, k, "policy.config.updated", data, NULL);
}

static void bar(const char *ns, const char *sym, int i, double o, double h, double l, double c)
{
    char k[64], data[512];
    long long ot = T0 + i * 60000LL;
    snprintf(k, sizeof k, "%s:market", ns);
    snprintf(data, sizeof data,
             "{\"symbol\":\"%s\",\"interval\":\"1m\",\"open_time\":%lld,\"open\":%g,\"high\":%g,\"low\":%g,"
             "\"close\":%g,\"volume\":1,\"closed\":true,\"event_time\":%lld}",
             sym, ot, o, h, l, c, ot + 59999);
    th_xadd_event(rc, k, "market.data.update", data, NULL);
}

static void rl(const char *ns, const char *sym, int i, const char *action, double conf)
{
    char k[64], data[512];
    long long ot = T0 + i * 60000LL;
    snprintf(k, sizeof k, "%s:signal", ns);
    snprintf(data, sizeof data,
             "{\"symbol\":\"%s\",\"open_time\":%lld,\"action\":\"%s\",\"confidence\":%g,\"value\":0.1,"
             "\"probs\":[0.1,0.5,0.1,0.1,0.1,0.1],\"model_version\":\"test\",\"event_time\":%lld}",
             sym, ot, action, conf, ot + 59999);
    th_xadd_event(rc, k, "rl.signal.generated", data, NULL);
}

static void ens(const char *ns, const char *sym, int i, const char *action, double conf)
{
    char k[64], data[512];
    long long ot = T0 + i * 60000LL;
    snprintf(k, sizeof k, "%s:signal", ns);
    snprintf(data, sizeof data,
             "{\"symbol\":\"%s\",\"open_time\":%lld,\"action\":\"%s\",\"confidence\":%g,"
             "\"model_votes\":{\"gbdt\":{\"action\":\"%s\",\"confidence\":%g}},\"weights\":{\"gbdt\":1},"
             "\"exploring\":false,\"regime\":\"TRENDING\",\"event_time\":%lld}",
             sym, ot, action, conf, action, conf, ot + 59999);
    th_xadd_event(rc, k, "signal.generated", data, NULL);
}

/* A fill for an intent, as the executor would publish it. */
static void fill(const char *ns, const char *intent_id, const char *sym, const char *side, double qty, double price,
                 double fee, long long t)
{
    char k[64], data[512];
    snprintf(k, sizeof k, "%s:execution", ns);
    snprintf(data, sizeof data,
             "{\"intent_id\":\"%s\",\"client_order_id\":\"qt-%.20s\",\"order_id\":\"1\",\"symbol\":\"%s\",\"side\":\"%s\","
             "\"qty\":%g,\"price\":%g,\"fee\":%g,\"venue\":\"paper\",\"event_time\":%lld}",
             intent_id, intent_id, sym, side, qty, price, fee, t);
    th_xadd_event(rc, k, "trade.executed", data, NULL);
}

static long count(const char *ns, const char *stream, const char *type)
{
    char k[64];
    snprintf(k, sizeof k, "%s:%s", ns, stream);
    return th_count_type(rc, k, type);
}

static int wait_count(const char *ns, const char *stream, const char *type, long n, int ms)
{
    for (long long end = th_now_ms() + ms; th_now_ms() < end; th_sleep_ms(20))
        if (count(ns, stream, type) >= n) return 0;
    return -1;
}

static json_t *last(const char *ns, const char *stream, const char *type)
{
    char k[64];
    snprintf(k, sizeof k, "%s:%s", ns, stream);
    return th_event_data(rc, k, type, -1);
}

static const char *jstr(const json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }
static double jnum(const json_t *o, const char *k) { return json_number_value(json_object_get(o, k)); }

TEST(replay_in_shadow_records_and_never_trades)
{
    char path[300];
    int port;
    snprintf(path, sizeof path, "%s/BTCUSDT-1m-2024-01.csv", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
               "taker_buy_quote_volume,ignore\n");
    for (int i = 0; i < 40; i++) {
        long long ot = (T0 + i * 60000LL) * (i >= 20 ? 1000 : 1); /* µs from row 20 on, as newer dumps */
        if (i == 5) fprintf(f, "%lld,abc,1,1,1,1,%lld,0,0,0,0,0\n", ot, ot + 59999); /* bad: not a number */
        else if (i == 6) fprintf(f, "%lld,100,99,101,100,1,%lld,0,0,0,0,0\n", ot, ot + 59999); /* bad: high < low */
        else if (i == 7) fprintf(f, "%lld,100,101\n", ot); /* bad: too few columns */
        else if (i == 8) fprintf(f, "%lld,100,101,99,100.5,3,%lld,300,-10,1,100,0\n", ot, ot + 59999); /* bad: count < 0 */
        else if (i == 9) fprintf(f, "%lld,100,101,99,100.5,3,%lld,-300,10,1,100,0\n", ot, ot + 59999); /* bad: quote < 0 */
        else fprintf(f, "%lld,100,101,99,100.5,3,%lld,300,10,1,100,0\n", ot, (i >= 20 ? ot + 59999000 : ot + 59999));
    }
    fclose(f);
    pid_t p = start_replay("r1", path, &port);
    CHECK_CONTAINS(out, "\"bars_published\":35");
    CHECK_CONTAINS(out, "\"bad_rows\":5");
    CHECK_EQ(count("r1", "market", "market.data.update"), 35);
    json_t *b = last("r1", "market", "market.data.update");
    CHECK_EQ(json_integer_value(json_object_get(b, "open_time")), T0 + 39 * 60000LL); /* µs rows read as ms */
    CHECK_STR(jstr(b, "interval"), "1m");
    json_decref(b);
    for (int i = 30; i < 35; i++) rl("r1", "BTCUSDT", i, "LONG_LARGE", 0.9);
    CHECK_EQ(wait_body(port, "/api/v1/rl-v3/dashboard/live-status", "\"shadow_decisions\":5", 10000), 0);
    CHECK_CONTAINS(out, "\"mode\":\"SHADOW\"");
    CHECK_CONTAINS(out, "\"trade_intents_total\":0");
    CHECK_CONTAINS(out, "\"last_decision_at\":\"2024-01-01T00:34:59.999Z\"");
    CHECK_EQ(get(port, "/api/v1/decisions?limit=2"), 200);
    CHECK_CONTAINS(out, "\"count\":2");
    CHECK_CONTAINS(out, "\"outcome\":\"SHADOW\"");
    CHECK_EQ(count("r1", "trade.intent", "trade.intent"), 0);
    /* a malformed signal goes to the DLQ; the engine stays ready */
    freeReplyObject(redisCommand(rc, "XADD r1:signal * id x type rl.signal.generated v 1 ts 1764547200000 source t trace t data {oops"));
    CHECK_EQ(th_wait_xlen(rc, "r1:signal:dlq", 1, 5000), 0);
    CHECK_EQ(get(port, "/ready"), 200);
    stop(p);
    char log[300], line[2048];
    snprintf(log, sizeof log, "%s/engine-r1.log", dir);
    FILE *lf = fopen(log, "r");
    int named = 0;
    while (lf && fgets(line, sizeof line, lf)) named |= strstr(line, "BTCUSDT-1m-2024-01.csv:7: bad row skipped") != NULL;
    if (lf) fclose(lf);
    CHECK(named); /* file and line of the bad row (line 7: header + 5 rows before it) */
}

/* A replay of January 2024 with one row of 2025 in it: the feed took the
 * row and then skipped every later real row as "not after the previous".
 * The leap row is the bad one now. */
TEST(a_replay_row_far_ahead_is_skipped_and_the_replay_goes_on)
{
    char path[300];
    int port;
    snprintf(path, sizeof path, "%s/leap/BTCUSDT-1m-2024-01.csv", dir);
    char sub[300];
    snprintf(sub, sizeof sub, "%s/leap", dir);
    mkdir(sub, 0700);
    FILE *f = fopen(path, "w");
    for (int i = 0; i < 30; i++) {
        long long ot = i == 15 ? 1737504000000LL : T0 + i * 60000LL; /* row 15: 2025-01-22 */
        fprintf(f, "%lld,100,101,99,100.5,3,%lld,300,10,1,100,0\n", ot, ot + 59999);
    }
    fclose(f);
    pid_t p = start_replay("lj", path, &port);
    CHECK_CONTAINS(out, "\"bars_published\":29");
    CHECK_CONTAINS(out, "\"bad_rows\":1");
    json_t *b = last("lj", "market", "market.data.update");
    CHECK_EQ(json_integer_value(json_object_get(b, "open_time")), T0 + 29 * 60000LL);
    json_decref(b);
    stop(p);
    char log[300], line[2048];
    snprintf(log, sizeof log, "%s/engine-lj.log", dir);
    FILE *lf = fopen(log, "r");
    int named = 0;
    while (lf && fgets(line, sizeof line, lf))
        named |= strstr(line, "BTCUSDT-1m-2024-01.csv:16: bad row skipped: open_time 1737504000000") != NULL &&
                 strstr(line, "QT_MAX_TIME_JUMP_MS") != NULL;
    if (lf) fclose(lf);
    CHECK(named);
}

TEST(primary_hybrid_thresholds_and_denials)
{
    int port;
    const char *env[] = {"QT_FEED=none", NULL};
    set_config("p1", "rl_v3.live.mode", "\"PRIMARY\"");
    pid_t p = start("p1", env, &port);
    for (int i = 0; i < 5; i++) bar("p1", "BTCUSDT", i, 100, 101, 99, 100);
    rl("p1", "BTCUSDT", 1, "LONG_SMALL", 0.5); /* below 0.6 */
    rl("p1", "BTCUSDT", 2, "HOLD", 0.9);
    rl("p1", "BTCUSDT", 3, "LONG_SMALL", 0.8);
    CHECK_EQ(wait_count("p1", "trade.intent", "trade.intent", 1, 5000), 0);
    json_t *in = last("p1", "trade.intent", "trade.intent");
    CHECK_STR(jstr(in, "source_tag"), "RL_V3_PRIMARY");
    CHECK_STR(jstr(in, "side"), "BUY");
    CHECK_NEAR(jnum(in, "size_pct"), 0.01, 1e-12);
    CHECK_NEAR(jnum(in, "ref_price"), 100, 1e-12);
    CHECK_EQ(json_integer_value(json_object_get(in, "event_time")), T0 + 3 * 60000 + 59999);
    json_decref(in);
    CHECK_EQ(wait_body(port, "/api/v1/decisions", "\"outcome\":\"BELOW_THRESHOLD\"", 5000), 0);
    CHECK_CONTAINS(out, "\"outcome\":\"HOLD\"");
    CHECK_CONTAINS(out, "\"outcome\":\"INTENT\"");
    rl("p1", "BTCUSDT", 3, "SHORT_LARGE", 0.99); /* the same bar again: never decided twice */

    /* HYBRID with consensus on ETHUSDT */
    set_config("p1", "rl_v3.live.mode", "\"HYBRID\"");
    CHECK_EQ(wait_body(port, "/api/v1/rl-v3/dashboard/live-status", "\"mode\":\"HYBRID\"", 5000), 0);
    bar("p1", "ETHUSDT", 10, 50, 51, 49, 50);
    rl("p1", "ETHUSDT", 10, "LONG_SMALL", 0.65);
    ens("p1", "ETHUSDT", 10, "LONG", 0.62);
    CHECK_EQ(wait_count("p1", "trade.intent", "trade.intent", 2, 5000), 0);
    in = last("p1", "trade.intent", "trade.intent");
    CHECK_STR(jstr(in, "source_tag"), "RL_V3_HYBRID_CONSENSUS");
    CHECK_NEAR(jnum(in, "confidence"), 0.75, 1e-9);
    CHECK_NEAR(jnum(in, "size_pct"), 0.012, 1e-9);
    CHECK_STR(jstr(in, "regime"), "TRENDING");
    json_decref(in);
    /* the ensemble alone beats a weaker RL: signal-primary, SHORT */
    bar("p1", "SOLUSDT", 11, 20, 21, 19, 20);
    rl("p1", "SOLUSDT", 11, "LONG_SMALL", 0.61);
    ens("p1", "SOLUSDT", 11, "SHORT", 0.7);
    CHECK_EQ(wait_count("p1", "trade.intent", "trade.intent", 3, 5000), 0);
    in = last("p1", "trade.intent", "trade.intent");
    CHECK_STR(jstr(in, "source_tag"), "RL_V3_HYBRID_SIGNAL_PRIMARY");
    CHECK_STR(jstr(in, "side"), "SELL");
    json_decref(in);

    /* RiskGuard: the trading policy halts new trades */
    char pol[600];
    snprintf(pol, sizeof pol, "{\"allow_new_trades\":false,\"risk_profile\":\"NO_NEW_TRADES\",\"max_risk_pct\":1,"
                              "\"min_confidence\":0.5,\"entry_mode\":\"NORMAL\",\"exit_mode\":\"TREND_FOLLOW\","
                              "\"allowed_symbols\":[],\"disallowed_symbols\":[],\"note\":\"test\",\"timestamp\":\"2024-01-01T00:00:00Z\"}");
    th_xadd_event(rc, "p1:policy", "policy.trading.updated", pol, NULL);
    CHECK_EQ(wait_body(port, "/api/v1/status", "\"has_trading_policy\":true", 5000), 0);
    bar("p1", "ADAUSDT", 12, 1, 1.1, 0.9, 1);
    rl("p1", "ADAUSDT", 12, "LONG_LARGE", 0.9);
    ens("p1", "ADAUSDT", 12, "LONG", 0.9);
    CHECK_EQ(wait_body(port, "/api/v1/decisions?limit=1", "\"denial_reason\":\"TRADING_HALTED\"", 5000), 0);
    CHECK_EQ(get(port, "/metrics"), 200);
    CHECK_CONTAINS(out, "qt_riskguard_denials_total{reason=\"TRADING_HALTED\"} 1");
    CHECK_EQ(count("p1", "trade.intent", "trade.intent"), 3);
    stop(p);
}

/* The k-th intent's id (stream order) of ns into iid. */
static void intent_id(const char *ns, size_t k, char iid[80])
{
    char key[64];
    snprintf(key, sizeof key, "%s:trade.intent", ns);
    redisReply *r = redisCommand(rc, "XRANGE %s - +", key);
    snprintf(iid, 80, "%s", r && r->elements > k ? r->element[k]->element[1]->element[1]->str : "");
    if (r) freeReplyObject(r);
}

/* In PRIMARY on a QT_FEED=none engine: a LONG_SMALL decided on BTCUSDT's bar
 * 0 at 100, then filled with qty at 100 (fee): a position open. */
static void open_long(const char *ns, int port, double qty, double fee)
{
    char iid[80];
    bar(ns, "BTCUSDT", 0, 100, 101, 99, 100);
    rl(ns, "BTCUSDT", 0, "LONG_SMALL", 0.8);
    CHECK_EQ(wait_count(ns, "trade.intent", "trade.intent", 1, 5000), 0);
    intent_id(ns, 0, iid);
    fill(ns, iid, "BTCUSDT", "BUY", qty, 100, fee, T0 + 60000);
    CHECK_EQ(wait_body(port, "/api/v1/positions", "\"open_positions\":1", 5000), 0);
}

/* Seed 000, safety feature 6: HOLD and FLAT publish no intent, also with
 * a position open (FLAT used to close it); rl_v3.live.flat_closes turns the
 * close on. */
TEST(flat_publishes_no_intent_unless_flat_closes)
{
    int port;
    const char *env[] = {"QT_FEED=none", NULL};
    set_config("fl", "rl_v3.live.mode", "\"PRIMARY\"");
    pid_t p = start("fl", env, &port);
    open_long("fl", port, 2, 0.08);
    bar("fl", "BTCUSDT", 1, 100, 100.5, 99.5, 100);
    rl("fl", "BTCUSDT", 1, "FLAT", 0.9);
    CHECK_EQ(wait_body(port, "/api/v1/decisions?limit=5", "\"outcome\":\"FLAT\"", 5000), 0);
    CHECK_EQ(th_group_done(rc, "fl:signal", "trading-engine", 5000), 1);
    CHECK_EQ(count("fl", "trade.intent", "trade.intent"), 1); /* no close */
    set_config("fl", "rl_v3.live.flat_closes", "true");
    CHECK_EQ(th_group_done(rc, "fl:policy", "trading-engine", 5000), 1);
    bar("fl", "BTCUSDT", 2, 100, 100.5, 99.5, 100);
    rl("fl", "BTCUSDT", 2, "FLAT", 0.9);
    CHECK_EQ(wait_count("fl", "trade.intent", "trade.intent", 2, 5000), 0);
    json_t *ex = last("fl", "trade.intent", "trade.intent");
    CHECK_STR(jstr(ex, "action"), "CLOSE");
    CHECK(json_is_true(json_object_get(ex, "reduce_only")));
    json_decref(ex);
    stop(p);
}

/* Issue #21, item 1: votes moved to the vote stream; one still sent to the
 * signal stream is dead-lettered with where it belongs, and the signals
 * around it are handled. */
TEST(a_vote_on_the_signal_stream_is_dead_lettered_with_where_it_goes)
{
    int port;
    const char *env[] = {"QT_FEED=none", NULL};
    set_config("mv", "rl_v3.live.mode", "\"PRIMARY\"");
    pid_t p = start("mv", env, &port);
    th_xadd_event(rc, "mv:signal", "model.vote",
                  "{\"symbol\":\"BTCUSDT\",\"open_time\":1704067200000,\"model\":\"py-lstm\",\"action\":\"LONG\",\"confidence\":0.7}",
                  NULL);
    bar("mv", "BTCUSDT", 1, 100, 101, 99, 100);
    rl("mv", "BTCUSDT", 1, "LONG_SMALL", 0.8);
    CHECK_EQ(wait_count("mv", "trade.intent", "trade.intent", 1, 5000), 0);
    CHECK_EQ(th_wait_xlen(rc, "mv:signal:dlq", 1, 5000), 0);
    redisReply *r = redisCommand(rc, "XRANGE mv:signal:dlq - +");
    CHECK(r && r->type == REDIS_REPLY_ARRAY && r->elements == 1);
    if (r && r->elements == 1)
        CHECK_CONTAINS(th_entry_field(r->element[0]->element[1], "error"), "model.vote belongs on the vote stream (mv:vote;");
    if (r) freeReplyObject(r);
    stop(p);
}

TEST(positions_pnl_feedback_and_stop_loss)
{
    int port;
    const char *env[] = {"QT_FEED=none", "QT_STOP_LOSS_PCT=1", NULL};
    set_config("f1", "rl_v3.live.mode", "\"PRIMARY\"");
    pid_t p = start("f1", env, &port);
    bar("f1", "BTCUSDT", 0, 100, 101, 99, 100);
    rl("f1", "BTCUSDT", 0, "LONG_SMALL", 0.8);
    CHECK_EQ(wait_count("f1", "trade.intent", "trade.intent", 1, 5000), 0);
    redisReply *r = redisCommand(rc, "XRANGE f1:trade.intent - +");
    char iid[80];
    snprintf(iid, sizeof iid, "%s", r->element[0]->element[1]->element[1]->str);
    freeReplyObject(r);
    fill("f1", iid, "BTCUSDT", "BUY", 2, 100, 0.08, T0 + 60000);
    CHECK_EQ(wait_count("f1", "feedback", "position.opened", 1, 5000), 0);
    CHECK_EQ(wait_body(port, "/api/v1/positions", "\"open_positions\":1", 5000), 0);
    CHECK_CONTAINS(out, "\"side\":\"LONG\"");
    /* a bar through the stop (1% x ML multiplier 1.5 = 1.5%): a reduce-only exit */
    bar("f1", "BTCUSDT", 1, 100, 100.2, 98.0, 98.4);
    CHECK_EQ(wait_count("f1", "trade.intent", "trade.intent", 2, 5000), 0);
    json_t *ex = last("f1", "trade.intent", "trade.intent");
    CHECK_STR(jstr(ex, "source_tag"), "RISK_STOP_LOSS");
    CHECK(json_is_true(json_object_get(ex, "reduce_only")));
    CHECK_NEAR(jnum(ex, "qty"), 2, 1e-12);
    CHECK_NEAR(jnum(ex, "ref_price"), 98.5, 1e-9);
    r = redisCommand(rc, "XRANGE f1:trade.intent - +");
    snprintf(iid, sizeof iid, "%s", r->element[1]->element[1]->element[1]->str);
    freeReplyObject(r);
    json_decref(ex);
    bar("f1", "BTCUSDT", 2, 98.4, 98.6, 97.0, 97.5); /* no second exit while one is pending */
    th_sleep_ms(300);
    CHECK_EQ(count("f1", "trade.intent", "trade.intent"), 2);
    fill("f1", iid, "BTCUSDT", "SELL", 2, 98.5, 0.0788, T0 + 3 * 60000);
    CHECK_EQ(wait_count("f1", "feedback", "position.closed", 1, 5000), 0);
    json_t *c = last("f1", "feedback", "position.closed");
    double want = (98.5 - 100) * 2 - 0.08 - 0.0788;
    CHECK_NEAR(jnum(c, "pnl"), want, 1e-9);
    CHECK_STR(jstr(c, "reason"), "STOP_LOSS");
    CHECK_STR(jstr(c, "side"), "LONG");
    CHECK_NEAR(jnum(c, "duration_s"), 120, 1e-9);
    json_decref(c);
    CHECK_EQ(wait_count("f1", "feedback", "feedback.prediction.outcome", 1, 5000), 0);
    json_t *o = last("f1", "feedback", "feedback.prediction.outcome");
    CHECK_STR(jstr(o, "action"), "LONG_SMALL");
    CHECK_NEAR(jnum(o, "pnl"), want, 1e-9);
    json_decref(o);
    json_t *perf = last("f1", "feedback", "performance.update");
    CHECK_NEAR(jnum(perf, "equity"), 10000 + want, 1e-6);
    CHECK_EQ(json_integer_value(json_object_get(perf, "losing_streak")), 1);
    CHECK_EQ(json_integer_value(json_object_get(perf, "open_positions")), 0);
    json_decref(perf);
    /* the orchestrator's intents and the exit rules' are counted apart (the seed's counts are the former) */
    CHECK_EQ(wait_body(port, "/api/v1/rl-v3/dashboard/live-status", "\"exit_intents_executed\":1", 5000), 0);
    CHECK_CONTAINS(out, "\"trade_intents_total\":1,");
    CHECK_CONTAINS(out, "\"trade_intents_executed\":1,");
    CHECK_CONTAINS(out, "\"exit_intents_total\":1,");
    CHECK_EQ(get(port, "/api/v1/rl-v3/dashboard/intents?limit=5"), 200); /* the seed's recent trade intents */
    json_t *ri = json_loads(out, 0, NULL), *l0 = json_array_get(json_object_get(ri, "intents"), 0);
    CHECK_EQ(json_array_size(json_object_get(ri, "intents")), 1); /* the stop-loss exit is not the orchestrator's */
    CHECK_STR(jstr(l0, "symbol"), "BTCUSDT");
    CHECK_STR(jstr(l0, "side"), "BUY");
    CHECK_STR(jstr(l0, "action"), "LONG_SMALL");
    CHECK_STR(jstr(l0, "state"), "EXECUTED");
    CHECK_STR(jstr(l0, "source_tag"), "RL_V3_PRIMARY");
    json_decref(ri);
    CHECK_EQ(get(port, "/api/v1/rl-v3/dashboard/intents?limit=0"), 400);
    CHECK_CONTAINS(out, "limit must be an integer from 1 to 100");
    CHECK_EQ(get(port, "/api/v1/rl-v3/dashboard/intents?limit=101"), 400);
    /* the same execution event again changes nothing */
    redisReply *dup = redisCommand(rc, "XRANGE f1:execution - +");
    const redisReply *ff = dup->element[1]->element[1];
    const char *argv[3 + 64] = {"XADD", "f1:execution", "*"};
    size_t na = 3;
    for (size_t k = 0; k < ff->elements && na < 3 + 64; k++) argv[na++] = ff->element[k]->str; /* every field as it was */
    freeReplyObject(redisCommandArgv(rc, (int)na, argv, NULL));
    freeReplyObject(dup);
    th_sleep_ms(300);
    CHECK_EQ(count("f1", "feedback", "position.closed"), 1);
    CHECK_EQ(get(port, "/api/v1/positions"), 200);
    CHECK_CONTAINS(out, "\"open_positions\":0");
    stop(p);
}

/* The ensemble's signal for the entry bar comes after PRIMARY decided on
 * RL alone: its votes reach the position, also across a SIGKILL and
 * restart of the engine (<ns>:engine:entry_votes), and the close carries
 * them. They used to be dropped as late. */
TEST(late_votes_reach_the_position_across_a_restart)
{
    int port;
    const char *env[] = {"QT_FEED=none", "QT_STOP_LOSS_PCT=1", "QT_CHECKPOINT_MS=10", NULL};
    set_config("lv", "rl_v3.live.mode", "\"PRIMARY\"");
    pid_t p = start("lv", env, &port);
    open_long("lv", port, 2, 0.08);
    json_t *in = last("lv", "trade.intent", "trade.intent");
    CHECK_EQ(json_object_size(json_object_get(in, "model_votes")), 0); /* decided before the ensemble spoke */
    json_decref(in);
    redisReply *r;
    char iid[80];
    ens("lv", "BTCUSDT", 0, "LONG", 0.7); /* late for bar 0 */
    CHECK_EQ(wait_body(port, "/api/v1/status", "\"late_votes_attached\":1", 5000), 0);
    for (long long end = th_now_ms() + 3000; th_now_ms() < end; th_sleep_ms(20)) {
        r = redisCommand(rc, "HEXISTS lv:engine:entry_votes BTCUSDT");
        long long got = r ? r->integer : 0;
        if (r) freeReplyObject(r);
        if (got) break;
    }
    th_sleep_ms(300); /* a checkpoint covers the late signal: the replay does not bring it back, the record does */
    th_kill(p, SIGKILL);
    th_wait(p, 5000, NULL);
    p = start("lv", env, &port);
    CHECK_EQ(wait_body(port, "/api/v1/positions", "\"open_positions\":1", 5000), 0);
    bar("lv", "BTCUSDT", 1, 100, 100.2, 98.0, 98.4); /* through the stop */
    CHECK_EQ(wait_count("lv", "trade.intent", "trade.intent", 2, 5000), 0);
    intent_id("lv", 1, iid);
    fill("lv", iid, "BTCUSDT", "SELL", 2, 98.5, 0.0788, T0 + 3 * 60000);
    CHECK_EQ(wait_count("lv", "feedback", "position.closed", 1, 5000), 0);
    json_t *c = last("lv", "feedback", "position.closed");
    CHECK_STR(jstr(json_object_get(json_object_get(c, "model_votes"), "gbdt"), "action"), "LONG");
    CHECK_STR(jstr(c, "regime"), "TRENDING");
    json_decref(c);
    for (long long end = th_now_ms() + 3000; th_now_ms() < end; th_sleep_ms(20)) {
        r = redisCommand(rc, "HEXISTS lv:engine:entry_votes BTCUSDT");
        long long got = r ? r->integer : 1;
        if (r) freeReplyObject(r);
        if (!got) break;
    }
    r = redisCommand(rc, "HEXISTS lv:engine:entry_votes BTCUSDT");
    CHECK_EQ(r ? r->integer : -1, 0); /* gone with the position */
    if (r) freeReplyObject(r);
    stop(p);
}

static void failed(const char *ns, const char *intent_id, const char *sym, const char *code, const char *reason)
{
    char k[64], data[512];
    snprintf(k, sizeof k, "%s:execution", ns);
    snprintf(data, sizeof data,
             "{\"intent_id\":\"%s\",\"symbol\":\"%s\",\"reason\":\"%s\",\"code\":\"%s\",\"retryable\":false,"
             "\"event_time\":1}",
             intent_id, sym, reason, code);
    th_xadd_event(rc, k, "trade.failed", data, NULL);
}

/* A position closed at the venue behind the engine (liquidation, a manual
 * close): before, the engine sent a failing reduce-only exit every bar for
 * ever. The executor's "no position to reduce" (NO_POSITION) and its
 * reconciliation's position.external book the position closed, once, and it
 * stays closed after a restart. */
TEST(a_position_closed_behind_the_engine_is_booked_closed_once)
{
    int port;
    const char *env[] = {"QT_FEED=none", "QT_STOP_LOSS_PCT=1", NULL};
    set_config("gh", "rl_v3.live.mode", "\"PRIMARY\"");
    pid_t p = start("gh", env, &port);
    bar("gh", "BTCUSDT", 0, 100, 101, 99, 100);
    rl("gh", "BTCUSDT", 0, "LONG_SMALL", 0.8);
    CHECK_EQ(wait_count("gh", "trade.intent", "trade.intent", 1, 5000), 0);
    json_t *in = last("gh", "trade.intent", "trade.intent");
    redisReply *r = redisCommand(rc, "XRANGE gh:trade.intent - +");
    char iid[80];
    snprintf(iid, sizeof iid, "%s", r->element[0]->element[1]->element[1]->str);
    freeReplyObject(r);
    json_decref(in);
    fill("gh", iid, "BTCUSDT", "BUY", 2, 100, 0.08, T0 + 60000);
    CHECK_EQ(wait_body(port, "/api/v1/positions", "\"open_positions\":1", 5000), 0);
    bar("gh", "BTCUSDT", 1, 100, 100.2, 98.0, 98.4); /* through the stop: an exit */
    CHECK_EQ(wait_count("gh", "trade.intent", "trade.intent", 2, 5000), 0);
    r = redisCommand(rc, "XRANGE gh:trade.intent - +");
    snprintf(iid, sizeof iid, "%s", r->element[1]->element[1]->element[1]->str);
    freeReplyObject(r);
    failed("gh", iid, "BTCUSDT", "NO_POSITION", "reduce-only order has no position to reduce");
    CHECK_EQ(wait_count("gh", "feedback", "position.closed", 1, 5000), 0);
    json_t *c = last("gh", "feedback", "position.closed");
    CHECK_STR(jstr(c, "reason"), "EXTERNAL");
    CHECK_NEAR(jnum(c, "exit_price"), 98.4, 1e-9); /* the last price */
    json_decref(c);
    CHECK_EQ(wait_body(port, "/api/v1/positions", "\"open_positions\":0", 5000), 0);
    for (int i = 2; i < 6; i++) bar("gh", "BTCUSDT", i, 98.4, 98.6, 97.0, 97.5); /* under the stop, no position */
    th_sleep_ms(500);
    CHECK_EQ(count("gh", "trade.intent", "trade.intent"), 2); /* no exit again */
    CHECK_EQ(get(port, "/metrics"), 200);
    CHECK_CONTAINS(out, "qt_engine_positions_closed_externally_total 1");
    /* a second position, then the reconciliation finds the venue without it */
    rl("gh", "BTCUSDT", 5, "LONG_SMALL", 0.8);
    CHECK_EQ(wait_count("gh", "trade.intent", "trade.intent", 3, 5000), 0);
    r = redisCommand(rc, "XRANGE gh:trade.intent - +");
    snprintf(iid, sizeof iid, "%s", r->element[2]->element[1]->element[1]->str);
    freeReplyObject(r);
    fill("gh", iid, "BTCUSDT", "BUY", 2, 97.5, 0.08, T0 + 6 * 60000);
    CHECK_EQ(wait_body(port, "/api/v1/positions", "\"open_positions\":1", 5000), 0);
    CHECK_EQ(th_xadd_event(rc, "gh:execution", "position.external",
                           "{\"symbol\":\"BTCUSDT\",\"engine_qty\":2,\"venue_qty\":0,\"reason\":\"liquidated\","
                           "\"detected_by\":\"reconciliation\",\"event_time\":1}",
                           NULL), 0);
    CHECK_EQ(wait_count("gh", "feedback", "position.closed", 2, 5000), 0);
    CHECK_EQ(wait_body(port, "/api/v1/positions", "\"open_positions\":0", 5000), 0);
    stop(p);
    p = start("gh", env, &port); /* the rebuild books both again: nothing comes back */
    CHECK_EQ(wait_body(port, "/api/v1/positions", "\"open_positions\":0", 5000), 0);
    bar("gh", "BTCUSDT", 6, 97.5, 97.6, 90.0, 90.5);
    th_sleep_ms(500);
    CHECK_EQ(count("gh", "trade.intent", "trade.intent"), 3);
    CHECK_EQ(count("gh", "feedback", "position.closed"), 2);
    stop(p);
}

TEST(hybrid_falls_back_to_the_ensemble_when_rl_is_silent)
{
    int port;
    const char *env[] = {"QT_FEED=none", "QT_RL_BREAKER_MIN_CALLS=3", "QT_RL_BREAKER_WINDOW=4", NULL};
    set_config("h9", "rl_v3.live.mode", "\"HYBRID\"");
    pid_t p = start("h9", env, &port);
    /* RL stays silent: each bar is decided only when the next bar's signal shows RL missing */
    for (int i = 0; i < 4; i++) {
        bar("h9", "BTCUSDT", i, 100, 101, 99, 100);
        ens("h9", "BTCUSDT", i, "HOLD", 0.7);
    }
    CHECK_EQ(wait_body(port, "/api/v1/status", "\"hybrid_fallback\":true", 5000), 0);
    CHECK_CONTAINS(out, "\"breaker\":\"open\"");
    /* now an ensemble signal is decided on at once, without waiting for a later bar */
    bar("h9", "ETHUSDT", 10, 50, 51, 49, 50);
    ens("h9", "ETHUSDT", 10, "LONG", 0.8);
    CHECK_EQ(wait_count("h9", "trade.intent", "trade.intent", 1, 5000), 0);
    json_t *in = last("h9", "trade.intent", "trade.intent");
    CHECK_STR(jstr(in, "source_tag"), "RL_V3_HYBRID_SIGNAL_PRIMARY");
    CHECK_STR(jstr(in, "symbol"), "ETHUSDT");
    json_decref(in);
    stop(p);
}

/* The checkpoint key of ns's engine covers the entry id of ns's signal stream (polls). */
static int ckpt_covers_signal(const char *ns, int ms)
{
    char key[64], want[160];
    snprintf(key, sizeof key, "%s:signal", ns);
    redisReply *last = redisCommand(rc, "XREVRANGE %s + - COUNT 1", key);
    if (!last || last->elements != 1) return last ? freeReplyObject(last), 0 : 0;
    snprintf(want, sizeof want, "stream %s %s\n", key, last->element[0]->element[0]->str);
    freeReplyObject(last);
    for (long long end = th_now_ms() + ms; th_now_ms() < end; th_sleep_ms(25)) {
        redisReply *r = redisCommand(rc, "GET %s:state:trading-engine", ns);
        int ok = r && r->type == REDIS_REPLY_STRING && strstr(r->str, want);
        if (r) freeReplyObject(r);
        if (ok) return 1;
    }
    return 0;
}

/* HYBRID waits for both signals of a bar. The RL signal came, the engine
 * was SIGKILLed, the ensemble's came after the restart: before, the RL
 * signal was gone with the process (acked, held only in memory) and the bar
 * was decided without it; the ML service's risk limits were forgotten too.
 * Both come back with the engine's checkpoint. */
TEST(a_signal_waiting_for_its_join_survives_a_sigkill)
{
    int port;
    char data[256];
    const char *env[] = {"QT_FEED=none", "QT_CHECKPOINT_MS=40", NULL};
    set_config("jk", "rl_v3.live.mode", "\"HYBRID\"");
    pid_t p = start("jk", env, &port);
    snprintf(data, sizeof data, "{\"max_position_size\":0.015,\"stop_loss_multiplier\":2,\"reason\":\"test\","
                                "\"event_time\":%lld}", T0);
    th_xadd_event(rc, "jk:signal", "ml.risk.limit.update", data, NULL);
    bar("jk", "BTCUSDT", 0, 100, 101, 99, 100);
    rl("jk", "BTCUSDT", 0, "LONG_LARGE", 0.9);
    CHECK_EQ(th_group_done(rc, "jk:signal", "trading-engine", 5000), 1);
    CHECK_EQ(ckpt_covers_signal("jk", 5000), 1);
    CHECK_EQ(count("jk", "trade.intent", "trade.intent"), 0); /* waiting for the ensemble */
    th_kill(p, SIGKILL);
    th_wait(p, 5000, NULL);
    p = start("jk", env, &port);
    CHECK_EQ(get(port, "/api/v1/status"), 200);
    CHECK(strstr(out, "\"max_position_size\":0.015") != NULL);
    CHECK(strstr(out, "\"stop_loss_multiplier\":2") != NULL);
    ens("jk", "BTCUSDT", 0, "LONG", 0.8);
    CHECK_EQ(wait_count("jk", "trade.intent", "trade.intent", 1, 5000), 0);
    json_t *in = last("jk", "trade.intent", "trade.intent");
    CHECK_STR(jstr(in, "source_tag"), "RL_V3_HYBRID_CONSENSUS");
    CHECK_STR(jstr(in, "action"), "LONG_LARGE");
    json_decref(in);
    stop(p);
}

TEST(rate_limit_per_hour_of_event_time)
{
    int port;
    const char *env[] = {"QT_FEED=none", NULL};
    set_config("q1", "rl_v3.live.mode", "\"PRIMARY\"");
    set_config("q1", "rl_v3.live.max_trades_per_hour", "2");
    pid_t p = start("q1", env, &port);
    const char *syms[] = {"AAAUSDT", "BBBUSDT", "CCCUSDT", "DDDUSDT"};
    for (int k = 0; k < 4; k++) {
        bar("q1", syms[k], k, 10, 11, 9, 10);
        rl("q1", syms[k], k, "LONG_SMALL", 0.9);
    }
    CHECK_EQ(wait_body(port, "/api/v1/decisions", "\"outcome\":\"RATE_LIMITED\"", 5000), 0);
    CHECK_EQ(wait_count("q1", "trade.intent", "trade.intent", 2, 5000), 0); /* the bus may still be writing them */
    CHECK_EQ(count("q1", "trade.intent", "trade.intent"), 2);
    bar("q1", "EEEUSDT", 61, 10, 11, 9, 10); /* an hour of event time later */
    rl("q1", "EEEUSDT", 61, "LONG_SMALL", 0.9);
    CHECK_EQ(wait_count("q1", "trade.intent", "trade.intent", 3, 5000), 0);
    stop(p);
}

TEST(an_entry_on_its_way_counts_as_the_position)
{
    int port;
    const char *env[] = {"QT_FEED=none", NULL};
    set_config("ip", "rl_v3.live.mode", "\"PRIMARY\"");
    pid_t p = start("ip", env, &port);
    for (int i = 0; i < 3; i++) { /* no executor: the first entry stays unfilled */
        bar("ip", "BTCUSDT", i, 100, 101, 99, 100);
        rl("ip", "BTCUSDT", i, "LONG_LARGE", 0.9);
    }
    CHECK_EQ(wait_body(port, "/api/v1/rl-v3/dashboard/live-status", "\"trade_intents_total\":1,", 5000), 0);
    CHECK_EQ(wait_body(port, "/api/v1/decisions?limit=1", "\"outcome\":\"ALREADY_IN_POSITION\"", 5000), 0);
    char data[256]; /* the venue refuses it: the symbol is free again */
    const char *iid = NULL;
    redisReply *r = redisCommand(rc, "XRANGE ip:trade.intent - + COUNT 1");
    for (size_t f = 0; r && r->elements == 1 && f + 1 < r->element[0]->element[1]->elements; f += 2)
        if (strcmp(r->element[0]->element[1]->element[f]->str, "id") == 0) iid = r->element[0]->element[1]->element[f + 1]->str;
    CHECK(iid != NULL);
    snprintf(data, sizeof data, "{\"intent_id\":\"%s\",\"symbol\":\"BTCUSDT\",\"reason\":\"MIN_NOTIONAL\",\"retryable\":false,\"event_time\":%lld}",
             iid ? iid : "", T0 + 2 * 60000LL + 59999);
    th_xadd_event(rc, "ip:execution", "trade.failed", data, NULL);
    freeReplyObject(r);
    th_sleep_ms(300);
    bar("ip", "BTCUSDT", 3, 100, 101, 99, 100);
    rl("ip", "BTCUSDT", 3, "LONG_LARGE", 0.9);
    CHECK_EQ(wait_count("ip", "trade.intent", "trade.intent", 2, 5000), 0);
    stop(p);
}

TEST(sigkill_and_restart_mid_replay_keeps_state_no_duplicates)
{
    int port;
    const char *env[] = {"QT_FEED=synthetic", "QT_FEED_SYMBOLS=BTCUSDT,ETHUSDT", "QT_FEED_BARS=3000",
                         "QT_FEED_SPEED=12000", NULL}; /* 5 ms a minute-bar */
    set_config("k1", "rl_v3.live.mode", "\"PRIMARY\"");
    pid_t p = start("k1", env, &port);
    CHECK_EQ(th_wait_xlen(rc, "k1:market", 200, 10000), 0);
    rl("k1", "BTCUSDT", 5, "LONG_SMALL", 0.9);
    CHECK_EQ(wait_count("k1", "trade.intent", "trade.intent", 1, 5000), 0);
    redisReply *r = redisCommand(rc, "XRANGE k1:trade.intent - +");
    char iid[80];
    snprintf(iid, sizeof iid, "%s", r->element[0]->element[1]->element[1]->str);
    freeReplyObject(r);
    fill("k1", iid, "BTCUSDT", "BUY", 0.01, 42000, 0.1, T0 + 6 * 60000);
    CHECK_EQ(wait_body(port, "/api/v1/positions", "\"open_positions\":1", 5000), 0);
    rl("k1", "ETHUSDT", 6, "SHORT_SMALL", 0.9);
    CHECK_EQ(wait_count("k1", "trade.intent", "trade.intent", 2, 5000), 0);
    th_kill(p, SIGKILL);
    th_wait(p, 5000, NULL);
    long long before = th_xlen(rc, "k1:market");
    CHECK(before < 6000);
    rl("k1", "ETHUSDT", 6, "SHORT_SMALL", 0.9); /* redelivered-style repeat of a decided bar */
    p = start("k1", env, &port);
    /* the killed engine's unacked entries are taken over at once (same host) */
    CHECK_EQ(wait_body(port, "/api/v1/positions", "\"open_positions\":1", 5000), 0);
    CHECK_CONTAINS(out, "\"symbol\":\"BTCUSDT\"");
    CHECK_EQ(wait_body(port, "/api/v1/status", "\"done\":true", 60000), 0);
    CHECK_EQ(th_xlen(rc, "k1:market"), 6000); /* every bar once: resumed, not restarted */
    /* no intent twice: every id unique, and the two decisions' intents only
     * (a stop-loss or take-profit exit of the open position may follow) */
    redisReply *all = redisCommand(rc, "XRANGE k1:trade.intent - +");
    int decisions = 0, dups = 0;
    for (size_t i = 0; i < all->elements; i++) {
        const redisReply *fi = all->element[i]->element[1];
        json_t *d = th_entry_payload(fi);
        decisions += strcmp(jstr(d, "mode"), "RISK") != 0;
        if (strcmp(jstr(d, "mode"), "RISK") == 0) CHECK_STR(jstr(d, "symbol"), "BTCUSDT");
        json_decref(d);
        for (size_t k = 0; k < i; k++)
            dups += strcmp(fi->element[1]->str, all->element[k]->element[1]->element[1]->str) == 0;
    }
    freeReplyObject(all);
    CHECK_EQ(decisions, 2);
    CHECK_EQ(dups, 0);
    CHECK_EQ(count("k1", "feedback", "position.opened"), 1);
    stop(p);
}

/* A market entry every consumer refuses (an unknown field, a microsecond
 * open_time far "ahead") is the newest of its symbol when the engine
 * restarts: the rebuild must not take its open_time as where the feed
 * resumes (the feed skipped every later bar) nor its close as the price. */
TEST(a_poisoned_market_entry_does_not_steer_the_restart)
{
    int port;
    const char *env[] = {"QT_FEED=synthetic", "QT_FEED_SYMBOLS=BTCUSDT", "QT_FEED_BARS=600", "QT_FEED_SPEED=12000", NULL};
    pid_t p = start("pm", env, &port);
    CHECK_EQ(th_wait_xlen(rc, "pm:market", 100, 10000), 0);
    th_kill(p, SIGKILL);
    th_wait(p, 5000, NULL);
    long long before = th_xlen(rc, "pm:market");
    char data[512];
    snprintf(data, sizeof data,
             "{\"symbol\":\"BTCUSDT\",\"interval\":\"1m\",\"open_time\":%lld,\"open\":1,\"high\":1,\"low\":1,"
             "\"close\":1,\"volume\":1,\"closed\":true,\"event_time\":%lld,\"bogus\":1}",
             (T0 + 10 * 60000LL) * 1000, (T0 + 10 * 60000LL) * 1000 + 59999);
    th_xadd_event(rc, "pm:market", "market.data.update", data, NULL);
    p = start("pm", env, &port);
    CHECK_EQ(wait_body(port, "/api/v1/status", "\"done\":true", 60000), 0);
    CHECK_EQ(th_xlen(rc, "pm:market"), 600 + 1); /* every bar once, and the poisoned entry */
    json_t *st = json_loads(out, 0, NULL);
    CHECK(json_integer_value(json_object_get(json_object_get(st, "feed"), "skipped")) <= before);
    json_decref(st);
    stop(p);
}

/* POST /api/v1/policy/reset-daily (policy-store) publishes
 * policy.daily.reset: the engine's day starts again from its equity of now,
 * so its next performance.update says 0 % for today (it used to say the old
 * day's figure, and policy-store took that back as today's PnL). */
TEST(a_daily_reset_starts_the_engine_day_again)
{
    int port;
    const char *env[] = {"QT_FEED=none", NULL};
    set_config("dr", "rl_v3.live.mode", "\"PRIMARY\"");
    pid_t p = start("dr", env, &port);
    open_long("dr", port, 10, 0);
    bar("dr", "BTCUSDT", 2, 100, 102.9, 99.5, 102.5); /* +25 on the position (below the take-profit at 103) */
    CHECK_EQ(wait_count("dr", "feedback", "performance.update", 2, 5000), 0);
    json_t *pu = last("dr", "feedback", "performance.update");
    CHECK_NEAR(jnum(pu, "daily_pnl_pct"), 0.25, 1e-6);
    json_decref(pu);
    th_xadd_event(rc, "dr:policy", "policy.daily.reset", "{\"requested_at\":1764547200000}", NULL);
    CHECK_EQ(th_group_done(rc, "dr:policy", "trading-engine", 5000), 1);
    bar("dr", "BTCUSDT", 4, 102.5, 102.95, 102, 102.9); /* +4 more since the reset */
    CHECK_EQ(wait_count("dr", "feedback", "performance.update", 3, 5000), 0);
    pu = last("dr", "feedback", "performance.update");
    CHECK_NEAR(jnum(pu, "daily_pnl_pct"), 4.0 / 10025 * 100, 1e-6);
    json_decref(pu);
    stop(p);
}

/* The peak and the day's start come back from their record in Redis
 * (<ns>:engine:equity), newer than any checkpoint: a restart long after the
 * last checkpoint computed the drawdown from the checkpoint's peak. A record
 * that does not parse is refused with a warning and rewritten. */
TEST(the_equity_record_is_taken_at_restart_and_a_malformed_one_refused)
{
    int port;
    const char *env[] = {"QT_FEED=synthetic", "QT_FEED_SYMBOLS=BTCUSDT", "QT_FEED_BARS=200", "QT_FEED_SPEED=12000", NULL};
    char day[24], log[512], text[1 << 16];
    snprintf(day, sizeof day, "%lld", T0 / 86400000LL);
    redisReply *r = redisCommand(rc, "HSET eq:engine:equity peak 20000 day %s day_start 10000", day);
    freeReplyObject(r);
    pid_t p = start("eq", env, &port);
    CHECK_EQ(wait_body(port, "/api/v1/status", "\"done\":true", 60000), 0);
    json_t *perf = th_event_data(rc, "eq:feedback", "performance.update", 0);
    CHECK(perf != NULL);
    CHECK_NEAR(json_number_value(json_object_get(perf, "drawdown_pct")), 50, 1e-6); /* 10000 against a peak of 20000 */
    json_decref(perf);
    stop(p);
    r = redisCommand(rc, "HSET eq2:engine:equity peak abc day %s day_start 1e999", day);
    freeReplyObject(r);
    r = redisCommand(rc, "HSET eq2:engine:entry_votes BTCUSDT %s ETHUSDT not-json", /* poisoned late votes too */
                     "{\"open_time\":1,\"regime\":\"\",\"model_votes\":{\"m\":{\"action\":\"UP\",\"confidence\":2}}}");
    freeReplyObject(r);
    p = start("eq2", env, &port);
    CHECK_EQ(wait_body(port, "/api/v1/status", "\"done\":true", 60000), 0);
    perf = th_event_data(rc, "eq2:feedback", "performance.update", 0);
    CHECK(perf != NULL);
    CHECK(json_number_value(json_object_get(perf, "drawdown_pct")) < 5);
    json_decref(perf);
    stop(p);
    snprintf(log, sizeof log, "%s/engine-eq2.log", dir);
    FILE *f = fopen(log, "r");
    CHECK(f != NULL);
    if (f) text[fread(text, 1, sizeof text - 1, f)] = 0, fclose(f);
    CHECK_CONTAINS(text, "the equity's record in Redis is incomplete or malformed: not used");
    CHECK_CONTAINS(text, "2 records of late votes in Redis are malformed: not used");
    r = redisCommand(rc, "HGET eq2:engine:equity peak");
    CHECK(r && r->type == REDIS_REPLY_STRING && atof(r->str) > 0); /* written anew from the book */
    if (r) freeReplyObject(r);
}

/* A 40 MB entry in the market stream: the restart's rebuild (and the
 * engine's consumers) leave it unread instead of holding it whole. */
TEST(a_40mb_market_entry_is_not_read_at_restart)
{
    int port;
    const char *env[] = {"QT_FEED=synthetic", "QT_FEED_SYMBOLS=BTCUSDT", "QT_FEED_BARS=600", "QT_FEED_SPEED=12000",
                         "QT_MAX_READ_BYTES=4194304", NULL};
    pid_t p = start("pb", env, &port);
    CHECK_EQ(th_wait_xlen(rc, "pb:market", 100, 10000), 0);
    long first = th_peak_rss_kb(p);
    th_kill(p, SIGKILL);
    th_wait(p, 5000, NULL);
    size_t n = 40u << 20;
    char *huge = malloc(n);
    memset(huge, 'z', n);
    redisReply *r = redisCommand(rc, "XADD pb:market * type market.data.update v 1 data %b", huge, n);
    CHECK(r && r->type == REDIS_REPLY_STRING);
    freeReplyObject(r);
    free(huge);
    p = start("pb", env, &port);
    CHECK_EQ(wait_body(port, "/api/v1/status", "\"done\":true", 60000), 0);
    CHECK_EQ(th_xlen(rc, "pb:market"), 600 + 1);
    long second = th_peak_rss_kb(p);
    CHECK(first > 0 && second > 0);
    CHECK(second - first < 32 * 1024); /* the bound and buffers (more under ASan), not the 40 MB */
    stop(p);
}

TEST(synthetic_feed_is_deterministic_for_a_seed)
{
    int port;
    const char *env[] = {"QT_FEED=synthetic", "QT_FEED_SYMBOLS=BTCUSDT", "QT_FEED_BARS=50", "QT_FEED_SPEED=0",
                         "QT_FEED_SEED=7", NULL};
    pid_t p = start("d1", env, &port);
    CHECK_EQ(wait_body(port, "/api/v1/status", "\"done\":true", 10000), 0);
    stop(p);
    p = start("d2", env, &port);
    CHECK_EQ(wait_body(port, "/api/v1/status", "\"done\":true", 10000), 0);
    stop(p);
    json_t *a = th_event_data(rc, "d1:market", "market.data.update", 49), *b = th_event_data(rc, "d2:market", "market.data.update", 49);
    CHECK(a && b && json_equal(a, b));
    json_decref(a);
    json_decref(b);
}

int main(int argc, char **argv);

__attribute__((constructor)) static void setup(void)
{
    th_watchdog(400);
    th_bin("bin/trading-engine", bin, sizeof bin);
    th_tempdir(dir, sizeof dir);
    if (th_redis_start(&R, 0) < 0 || !(rc = th_redis_connect(&R))) exit(2);
}

CHECK_MAIN()
