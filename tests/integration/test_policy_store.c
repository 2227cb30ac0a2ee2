/* Integration tests: the real policy-store binary on a real redis-server —
 * the configuration API, its events and audit trail, and the Orchestrator
 * Policy Engine fed through the streams. */
#include "check.h"
#include "harness.h"
#include "proto.h"

#include <math.h>
#include <signal.h>
#include <sys/wait.h>

#define TOKEN "policy-test-token"
#define AUTH "Authorization: Bearer " TOKEN "\r\n"
#define DAY 86400000LL

static th_redis_t R;
static char bin[256], logdir[256], out[65536];
static redisContext *rc;

static pid_t start(const char *ns, const char *token, const char *extra, int *port)
{
    char t[200], tag[64];
    snprintf(t, sizeof t, "QT_API_TOKEN=%s", token ? token : "");
    snprintf(tag, sizeof tag, "policy-store-%s", ns);
    const char *env[] = {t, extra ? extra : "QT_LOG_LEVEL=info", NULL};
    return th_service(bin, &R, ns, env, logdir, tag, port, 1);
}

static void stop(pid_t pid) { CHECK_EQ(th_stop(pid, 15000), 0); }

static int http(int port, const char *m, const char *path, const char *hdr, const char *body)
{
    return th_http(port, m, path, hdr, body, out, sizeof out);
}

/* GET path until its body contains want. */
static int wait_body(int port, const char *path, const char *want, int timeout_ms)
{
    for (long long end = th_now_ms() + timeout_ms; th_now_ms() < end; th_sleep_ms(50))
        if (http(port, "GET", path, NULL, NULL) == 200 && strstr(out, want)) return 0;
    return -1;
}

static void put(int port, const char *key, const char *value, int want_status, const char *want_body)
{
    char path[200], body[200];
    snprintf(path, sizeof path, "/api/v1/policy/config/%s", key);
    snprintf(body, sizeof body, "{\"value\":%s}", value);
    int st = http(port, "PUT", path, AUTH, body);
    if (st != want_status) CHECK_FAIL_AT("PUT %s=%s: status %d, want %d (%s)", key, value, st, want_status, out);
    else if (want_body && !strstr(out, want_body)) CHECK_FAIL_AT("PUT %s=%s: '%s' lacks '%s'", key, value, out, want_body);
}

TEST(configuration_api)
{
    int port;
    pid_t p = start("c1", TOKEN, NULL, &port);
    CHECK_EQ(wait_body(port, "/api/v1/policy/config", "\"rl_v3.live.enabled\":{\"value\":true,\"version\":1", 5000), 0);
    CHECK_CONTAINS(out, "\"rl_v3.live.mode\":{\"value\":\"SHADOW\",\"version\":1");
    CHECK_CONTAINS(out, "\"rl_v3.live.min_confidence\":{\"value\":0.6,\"version\":1");
    CHECK_CONTAINS(out, "\"rl_v3.live.max_trades_per_hour\":{\"value\":10,\"version\":1");
    CHECK_CONTAINS(out, "\"risk.max_open_positions\":{\"value\":8,");
    CHECK_EQ(http(port, "GET", "/api/v1/policy/config/rl_v3.live.min_confidence", NULL, NULL), 200);
    CHECK_STR(out, "{\"key\":\"rl_v3.live.min_confidence\",\"value\":0.6,\"version\":1}\n");
    CHECK_EQ(http(port, "GET", "/api/v1/policy/config/no.such.key", NULL, NULL), 404);
    CHECK_CONTAINS(out, "unknown key 'no.such.key'");

    CHECK_EQ(http(port, "PUT", "/api/v1/policy/config/rl_v3.live.mode", NULL, "{\"value\":\"PRIMARY\"}"), 401);
    CHECK_EQ(http(port, "PUT", "/api/v1/policy/config/rl_v3.live.mode", "Authorization: Bearer nope\r\n",
                  "{\"value\":\"PRIMARY\"}"), 401);
    CHECK_EQ(http(port, "PUT", "/api/v1/policy/config/rl_v3.live.mode", AUTH, "PRIMARY"), 400);
    CHECK_CONTAINS(out, "body is not JSON");
    CHECK_EQ(http(port, "PUT", "/api/v1/policy/config/rl_v3.live.mode", AUTH, "{\"val\":1}"), 400);
    CHECK_CONTAINS(out, "body must be {\\\"value\\\"");
    put(port, "no.such.key", "1", 400, "unknown key 'no.such.key'");
    put(port, "rl_v3.live.min_confidence", "1.5", 400, "must be within [0, 1], got 1.5");
    put(port, "rl_v3.live.min_confidence", "\"high\"", 400, "must be a number");
    put(port, "rl_v3.live.max_trades_per_hour", "2.5", 400, "must be an integer");
    put(port, "rl_v3.live.mode", "\"FAST\"", 400, "must be one of OFF, SHADOW, PRIMARY, HYBRID");
    put(port, "rl_v3.live.enabled", "\"yes\"", 400, "must be true or false");
    put(port, "risk.max_leverage", "200", 400, "within [1, 125]");
    put(port, "rl_v3.live.mode", "\"PRIMARY\"", 200, "\"version\":2");
    put(port, "rl_v3.live.min_confidence", "0.65", 200, "\"version\":2");
    CHECK_EQ(http(port, "GET", "/api/v1/policy/config/rl_v3.live.mode", NULL, NULL), 200);
    CHECK_STR(out, "{\"key\":\"rl_v3.live.mode\",\"value\":\"PRIMARY\",\"version\":2}\n");

    /* the change is an event on c1:policy, valid against the contract */
    json_t *ev = th_event_data(rc, "c1:policy", "policy.config.updated", 0);
    char err[256];
    CHECK(ev != NULL);
    CHECK_EQ(proto_validate("policy.config.updated", 1, ev, err, sizeof err), 0);
    CHECK_STR(json_string_value(json_object_get(ev, "key")), "rl_v3.live.mode");
    CHECK_STR(json_string_value(json_object_get(ev, "value")), "PRIMARY");
    CHECK_STR(json_string_value(json_object_get(ev, "old_value")), "SHADOW");
    CHECK_EQ(json_integer_value(json_object_get(ev, "version")), 2);
    CHECK(strncmp(json_string_value(json_object_get(ev, "who")), "token:", 6) == 0);
    json_decref(ev);
    CHECK_EQ(th_count_type(rc, "c1:policy", "policy.config.updated"), 2);
    /* and in the audit stream, with who and when, never the token */
    redisReply *a = redisCommand(rc, "XRANGE c1:policy:audit - +");
    CHECK(a && a->elements == 2);
    if (a && a->elements == 2) {
        const redisReply *f = a->element[0]->element[1];
        CHECK_STR(f->element[1]->str, "rl_v3.live.mode");
        CHECK_STR(f->element[3]->str, "\"SHADOW\"");
        CHECK_STR(f->element[5]->str, "\"PRIMARY\"");
        for (size_t i = 0; i < f->elements; i++) CHECK(!strstr(f->element[i]->str, TOKEN));
    }
    if (a) freeReplyObject(a);
    stop(p);

    /* ORCH_* (the seed's variables) seed the defaults of a fresh namespace */
    p = start("c2", NULL, "ORCH_LOSING_STREAK_LIMIT=3", &port);
    CHECK_EQ(wait_body(port, "/api/v1/policy/config/orch.losing_streak_limit", "\"value\":3,\"version\":1", 5000), 0);
    CHECK_EQ(http(port, "PUT", "/api/v1/policy/config/rl_v3.live.mode", "Authorization: Bearer x\r\n",
                  "{\"value\":\"OFF\"}"), 403); /* no token configured: writes are off */
    CHECK_CONTAINS(out, "set QT_API_TOKEN");
    stop(p);
}

/* 60 one-minute bars of a steady uptrend for symbol, from start_ms. */
static void trend_bars(const char *ns, const char *symbol, long long start_ms, int n, double p0)
{
    char key[64], data[512];
    snprintf(key, sizeof key, "%s:market", ns);
    double price = p0;
    for (int i = 0; i < n; i++) {
        double open = price, close = price * 1.002;
        long long ot = start_ms + i * 60000LL;
        snprintf(data, sizeof data,
                 "{\"symbol\":\"%s\",\"interval\":\"1m\",\"open_time\":%lld,\"open\":%.6f,\"high\":%.6f,\"low\":%.6f,"
                 "\"close\":%.6f,\"volume\":10,\"closed\":true,\"event_time\":%lld}",
                 symbol, ot, open, close * 1.0005, open * 0.9995, close, ot + 59999);
        th_xadd_event(rc, key, "market.data.update", data, NULL);
        price = close;
    }
}

static void closed(const char *ns, const char *symbol, double pnl, long long t)
{
    char key[64], data[512];
    snprintf(key, sizeof key, "%s:feedback", ns);
    snprintf(data, sizeof data,
             "{\"symbol\":\"%s\",\"side\":\"LONG\",\"qty\":1,\"entry_price\":100,\"exit_price\":101,\"pnl\":%g,"
             "\"pnl_pct\":1,\"duration_s\":60,\"confidence\":0.7,\"regime\":\"TRENDING\",\"model_votes\":{},\"event_time\":%lld}",
             symbol, pnl, t);
    th_xadd_event(rc, key, "position.closed", data, NULL);
}

/* Wait until group has read every entry of key and acked them all. */
static int wait_consumed(const char *key, const char *group, int timeout_ms)
{
    for (long long end = th_now_ms() + timeout_ms; th_now_ms() < end; th_sleep_ms(20)) {
        redisReply *r = redisCommand(rc, "XINFO GROUPS %s", key);
        int done = 0;
        for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
            const redisReply *g = r->element[i];
            long long lag = -1, pending = -1;
            int ours = 0;
            for (size_t k = 0; k + 1 < g->elements; k += 2) {
                if (strcmp(g->element[k]->str, "name") == 0) ours = strcmp(g->element[k + 1]->str, group) == 0;
                if (strcmp(g->element[k]->str, "lag") == 0 && g->element[k + 1]->type == REDIS_REPLY_INTEGER) lag = g->element[k + 1]->integer;
                if (strcmp(g->element[k]->str, "pending") == 0) pending = g->element[k + 1]->integer;
            }
            done |= ours && lag == 0 && pending == 0;
        }
        if (r) freeReplyObject(r);
        if (done) return 0;
    }
    return -1;
}

static void perf(const char *ns, double daily_pnl_pct, long long t)
{
    char key[64], data[512];
    snprintf(key, sizeof key, "%s:feedback", ns);
    snprintf(data, sizeof data,
             "{\"equity\":10000,\"daily_pnl_pct\":%g,\"drawdown_pct\":1,\"open_positions\":1,\"exposure_pct\":2,"
             "\"losing_streak\":0,\"event_time\":%lld}",
             daily_pnl_pct, t);
    th_xadd_event(rc, key, "performance.update", data, NULL);
}

/* The newest policy.trading.updated of ns (new reference), waiting for the nth (1-based). */
static json_t *policy_n(const char *ns, long n)
{
    char key[64];
    snprintf(key, sizeof key, "%s:policy", ns);
    for (long long end = th_now_ms() + 10000; th_now_ms() < end; th_sleep_ms(20))
        if (th_count_type(rc, key, "policy.trading.updated") >= n) break;
    return th_event_data(rc, key, "policy.trading.updated", -1);
}

static int policy_allows(json_t *p)
{
    int a = json_is_true(json_object_get(p, "allow_new_trades"));
    json_decref(p);
    return a;
}

TEST(policy_from_streams_blocks_resets_and_restores)
{
    int port;
    char err[256];
    long long t0 = 1737504000000LL; /* 2025-01-22T00:00:00Z */
    pid_t p = start("p1", TOKEN, NULL, &port);
    trend_bars("p1", "BTCUSDT", t0, 60, 100);
    trend_bars("p1", "ETHUSDT", t0, 60, 50);
    trend_bars("p1", "SOLUSDT", t0, 60, 20);
    long long t = t0 + 60 * 60000LL + 1000;
    for (int i = 0; i < 12; i++) closed("p1", "SOLUSDT", i < 2 ? 1.0 : -1.0, t + i);
    perf("p1", 0.5, t + 100);
    /* streams carry no order between them: let the feedback be consumed before the next bar */
    CHECK_EQ(wait_consumed("p1:feedback", "policy-store", 10000), 0);
    t += 120000; /* past the update interval: the policy reflects the BAD symbol */
    trend_bars("p1", "BTCUSDT", t0 + 60 * 60000LL + 120000, 1, 130);
    CHECK_EQ(wait_body(port, "/api/v1/policy/trading", "\"disallowed_symbols\":[\"SOLUSDT\"]", 10000), 0);
    CHECK_CONTAINS(out, "\"regime\":\"TRENDING\"");
    CHECK_CONTAINS(out, "\"allow_new_trades\":true");
    json_t *pol = policy_n("p1", 1);
    CHECK(pol != NULL);
    CHECK_EQ(proto_validate("policy.trading.updated", 1, pol, err, sizeof err), 0);
    json_decref(pol);

    /* a daily drawdown past the limit blocks at once, interval or not */
    long before = (long)th_count_type(rc, "p1:policy", "policy.trading.updated");
    perf("p1", -3.5, t + 1000);
    CHECK_EQ(wait_body(port, "/api/v1/policy/trading", "Daily DD limit hit (-3.50%)", 10000), 0);
    CHECK_CONTAINS(out, "\"risk_profile\":\"NO_NEW_TRADES\"");
    CHECK(!policy_allows(policy_n("p1", before + 1))); /* the event may follow the HTTP view by a moment */

    /* reset-daily: authenticated, clears today's PnL, recomputes now */
    CHECK_EQ(http(port, "POST", "/api/v1/policy/reset-daily", NULL, NULL), 401);
    CHECK_EQ(http(port, "POST", "/api/v1/policy/reset-daily", AUTH, NULL), 200);
    CHECK_CONTAINS(out, "\"allow_new_trades\":true");
    CHECK_EQ(th_count_type(rc, "p1:policy", "policy.daily.reset"), 1); /* for the engine, whose day starts again too */
    json_t *rd = th_event_data(rc, "p1:policy", "policy.daily.reset", 0);
    CHECK_EQ(proto_validate("policy.daily.reset", 1, rd, err, sizeof err), 0);
    json_decref(rd);

    /* block again late in the day; the first bar of the next UTC day resets */
    long long late = t0 + DAY - 60000;
    perf("p1", -4.0, late);
    CHECK_EQ(wait_body(port, "/api/v1/policy/trading", "Daily DD limit hit (-4.00%)", 10000), 0);
    trend_bars("p1", "BTCUSDT", t0 + DAY, 1, 140); /* event_time: next day 00:00:59.999 */
    CHECK_EQ(wait_body(port, "/api/v1/policy/trading", "\"allow_new_trades\":true", 10000), 0);

    /* restart: the policy and the inputs come back */
    CHECK_EQ(http(port, "GET", "/api/v1/status", NULL, NULL), 200);
    json_t *st = json_loads(out, 0, NULL);
    long version = (long)json_integer_value(json_object_get(json_object_get(st, "policy"), "version"));
    json_decref(st);
    CHECK(version >= 4);
    stop(p);
    p = start("p1", TOKEN, NULL, &port);
    CHECK_EQ(http(port, "GET", "/api/v1/status", NULL, NULL), 200);
    st = json_loads(out, 0, NULL);
    CHECK_EQ(json_integer_value(json_object_get(json_object_get(st, "policy"), "version")), version);
    CHECK_EQ(json_integer_value(json_object_get(json_object_get(st, "inputs"), "symbols")), 3);
    CHECK_STR(json_string_value(json_object_get(json_object_get(st, "inputs"), "regime")), "TRENDING");
    json_decref(st);
    stop(p);
}

/* One valid bar dated a year ahead (written now) must not move the policy's
 * day: before, policy-store took its day, checkpointed it, and a
 * NO_NEW_TRADES block was never lifted by the next real day — across
 * restarts. Now it is dead-lettered with its reason. */
TEST(a_future_dated_bar_is_dead_lettered_and_the_day_still_turns)
{
    int port;
    long long t0 = 1737504000000LL; /* 2025-01-22T00:00:00Z */
    pid_t p = start("pf", TOKEN, NULL, &port);
    trend_bars("pf", "BTCUSDT", t0, 5, 100);
    perf("pf", -4.0, t0 + DAY - 60000);
    CHECK_EQ(wait_body(port, "/api/v1/policy/trading", "Daily DD limit hit (-4.00%)", 10000), 0);
    trend_bars("pf", "BTCUSDT", th_wall_ms() + 365 * DAY, 1, 120); /* the poisoned bar */
    CHECK_EQ(th_wait_xlen(rc, "pf:market:dlq", 1, 10000), 0);
    redisReply *r = redisCommand(rc, "XRANGE pf:market:dlq - +");
    CHECK(r && r->elements == 1);
    const redisReply *f = r->element[0]->element[1];
    for (size_t i = 0; i + 1 < f->elements; i += 2)
        if (strcmp(f->element[i]->str, "error") == 0) CHECK_CONTAINS(f->element[i + 1]->str, "data.open_time: ");
    freeReplyObject(r);
    stop(p); /* the worst moment: right after it */
    /* the checkpoint written at the stop holds the real day, not the poisoned one */
    r = redisCommand(rc, "GET pf:state:policy-store");
    CHECK(r && r->type == REDIS_REPLY_STRING && strstr(r->str, "format policy-store/1/"));
    if (r) freeReplyObject(r);
    p = start("pf", TOKEN, NULL, &port);
    trend_bars("pf", "BTCUSDT", t0 + DAY, 1, 140); /* the next real day */
    CHECK_EQ(wait_body(port, "/api/v1/policy/trading", "\"allow_new_trades\":true", 10000), 0);
    stop(p);
}

/* One bar of today in a replay of 2025 (behind the clock): the day turned
 * to today, a daily block was lifted at once and the real next day never
 * turned. The leap is dead-lettered; the block holds until the next day. */
TEST(one_bar_far_ahead_does_not_turn_the_day)
{
    int port;
    long long t0 = 1737504000000LL; /* 2025-01-22T00:00:00Z */
    pid_t p = start("pj", TOKEN, NULL, &port);
    trend_bars("pj", "BTCUSDT", t0, 5, 100);
    perf("pj", -4.0, t0 + DAY - 60000);
    CHECK_EQ(wait_body(port, "/api/v1/policy/trading", "Daily DD limit hit (-4.00%)", 10000), 0);
    trend_bars("pj", "BTCUSDT", (th_wall_ms() - 3600000LL) / 60000 * 60000, 1, 120); /* today, an hour ago */
    CHECK_EQ(th_wait_xlen(rc, "pj:market:dlq", 1, 10000), 0);
    redisReply *r = redisCommand(rc, "XRANGE pj:market:dlq - +");
    CHECK(r && r->elements == 1);
    const redisReply *f = r && r->elements == 1 ? r->element[0]->element[1] : NULL;
    for (size_t i = 0; f && i + 1 < f->elements; i += 2)
        if (strcmp(f->element[i]->str, "error") == 0) CHECK_CONTAINS(f->element[i + 1]->str, "QT_MAX_TIME_JUMP_MS");
    freeReplyObject(r);
    CHECK_EQ(th_http(port, "GET", "/api/v1/policy/trading", NULL, NULL, out, sizeof out), 200);
    CHECK_CONTAINS(out, "\"allow_new_trades\":false");
    trend_bars("pj", "BTCUSDT", t0 + DAY, 1, 140); /* the next real day */
    CHECK_EQ(wait_body(port, "/api/v1/policy/trading", "\"allow_new_trades\":true", 10000), 0);
    stop(p);
}

/* policy-store's evaluations so far (from /api/v1/status). */
static long evaluations(int port)
{
    if (http(port, "GET", "/api/v1/status", NULL, NULL) != 200) return -1;
    json_t *j = json_loads(out, 0, NULL);
    long n = (long)json_integer_value(json_object_get(json_object_get(j, "policy"), "evaluations"));
    json_decref(j);
    return n;
}

/* Every policy.trading.updated of ns by version, and the policy and inputs
 * it holds at the end: what a run decided. */
static json_t *policy_run(const char *ns, int port)
{
    char key[64];
    json_t *all = json_object();
    snprintf(key, sizeof key, "%s:policy", ns);
    long n = th_count_type(rc, key, "policy.trading.updated");
    for (long i = 0; i < n; i++) {
        json_t *d = th_event_data(rc, key, "policy.trading.updated", (int)i);
        char v[32];
        snprintf(v, sizeof v, "v%lld", (long long)json_integer_value(json_object_get(d, "version")));
        json_object_set_new(all, v, d);
    }
    if (http(port, "GET", "/api/v1/policy/trading", NULL, NULL) == 200) json_object_set_new(all, "end", json_loads(out, 0, NULL));
    return all;
}

/* Five days of bars for three symbols and each day's performance, the
 * streams one after the other; killed (SIGKILL) during four of the days
 * when kill is set. */
static json_t *policy_days(const char *ns, int kill)
{
    static const char *const syms[] = {"BTCUSDT", "ETHUSDT", "SOLUSDT"};
    const char *env = "QT_CHECKPOINT_MS=40";
    long long t0 = 1737504000000LL; /* 2025-01-22T00:00:00Z */
    int port;
    char mk[64], fb[64];
    snprintf(mk, sizeof mk, "%s:market", ns);
    snprintf(fb, sizeof fb, "%s:feedback", ns);
    pid_t p = start(ns, TOKEN, env, &port);
    for (int day = 0; day < 5; day++) {
        long base = evaluations(port);
        for (int s = 0; s < 3; s++) trend_bars(ns, syms[s], t0 + day * DAY, 40, 100 + 10 * s + day);
        if (kill && day < 4) {
            for (long long end = th_now_ms() + 10000; th_now_ms() < end && evaluations(port) < base + 10 + 30 * (day % 2);)
                th_sleep_ms(5);
            if (day == 2) th_sleep_ms(500); /* once after a checkpoint surely covers part of it */
            th_kill(p, SIGKILL);
            th_wait(p, 5000, NULL);
            p = start(ns, TOKEN, env, &port);
        }
        CHECK_EQ(th_group_done(rc, mk, "policy-store", 20000), 1);
        perf(ns, day % 2 ? -4.0 : 0.5, t0 + day * DAY + 50 * 60000);
        CHECK_EQ(th_group_done(rc, fb, "policy-store", 20000), 1);
    }
    json_t *run = policy_run(ns, port);
    stop(p);
    return run;
}

/* policy-store SIGKILLed during four days and restarted publishes the
 * policies of a run that never stopped, version for version, and ends with
 * the same inputs (regimes, daily PnL). Before, a restart lost up to 10 s of
 * inputs (its checkpoint's period) and wrote them rounded to 15 digits. */
TEST(a_sigkill_at_any_moment_changes_no_policy)
{
    char first[96] = "";
    json_t *a = policy_days("pk0", 0), *b = policy_days("pk1", 1);
    CHECK(json_object_size(a) >= 5); /* the days' limits changed the policy */
    int n = th_events_differ(a, b, first, sizeof first);
    if (n) {
        char *x = json_dumps(json_object_get(a, first), JSON_COMPACT), *y = json_dumps(json_object_get(b, first), JSON_COMPACT);
        CHECK_FAIL_AT("%d of %zu differ after the restarts, the first %s:\n%.600s\n%.600s", n, json_object_size(a), first,
                      x ? x : "", y ? y : "(none)");
        free(x), free(y);
    }
    json_decref(a);
    json_decref(b);
}

/* Bars after the checkpoint trimmed from the market stream: the regime
 * detectors start again (UNKNOWN until warm) instead of going on across the
 * hole as if the bars that are left followed the checkpoint's. */
TEST(a_hole_after_the_checkpoint_starts_the_regimes_again)
{
    int port;
    long long t0 = 1737504000000LL;
    pid_t p = start("pg", TOKEN, "QT_CHECKPOINT_MS=3600000", &port);
    trend_bars("pg", "BTCUSDT", t0, 40, 100);
    CHECK_EQ(wait_body(port, "/api/v1/policy/trading", "\"regime\":\"TRENDING\"", 10000), 0);
    stop(p); /* its one checkpoint: after bar 40 */
    p = start("pg", TOKEN, "QT_CHECKPOINT_MS=3600000", &port);
    trend_bars("pg", "BTCUSDT", t0 + 40 * 60000LL, 40, 100 * pow(1.002, 40));
    CHECK_EQ(wait_consumed("pg:market", "policy-store", 10000), 0);
    th_kill(p, SIGKILL); /* bars 41-80 handled, no checkpoint of them */
    th_wait(p, 5000, NULL);
    freeReplyObject(redisCommand(rc, "XTRIM pg:market MAXLEN 10"));
    p = start("pg", TOKEN, "QT_CHECKPOINT_MS=3600000", &port);
    CHECK_EQ(http(port, "GET", "/api/v1/policy/trading", NULL, NULL), 200);
    CHECK_CONTAINS(out, "\"regime\":\"UNKNOWN\""); /* 10 bars in the new window */
    CHECK_EQ(http(port, "GET", "/metrics", NULL, NULL), 200);
    CHECK_CONTAINS(out, "qt_state_history_lost_total 1\n");
    trend_bars("pg", "BTCUSDT", t0 + 80 * 60000LL, 30, 100 * pow(1.002, 80));
    CHECK_EQ(wait_body(port, "/api/v1/policy/trading", "\"regime\":\"TRENDING\"", 10000), 0); /* warm again */
    stop(p);
}

/* One active policy-store per namespace (lease.h): a second one waits as
 * the standby and says so; an active one that finds its lease held by
 * another instance (one on another host took it while this one was cut
 * off) exits at once, and the standby takes over once the lease is free. */
TEST(one_active_instance_the_other_stands_by_and_one_that_lost_its_lease_exits)
{
    int port1, port2, st = -1;
    char log[300];
    pid_t a = start("pl", TOKEN, "QT_LEASE_MS=600", &port1);
    CHECK(a > 0);
    redisReply *r = redisCommand(rc, "GET pl:lease:policy-store:active");
    CHECK(r && r->type == REDIS_REPLY_STRING);
    if (r) freeReplyObject(r);
    char tag[64] = "policy-store-pl-2";
    const char *env[] = {"QT_API_TOKEN=" TOKEN, "QT_LEASE_MS=600", NULL};
    pid_t b = th_service(bin, &R, "pl", env, logdir, tag, &port2, 0);
    CHECK_EQ(th_wait_http(port2, "/ready", 503, 10000), 0);
    CHECK_EQ(http(port2, "GET", "/ready", NULL, NULL), 503);
    CHECK_CONTAINS(out, "standby: ");
    CHECK_CONTAINS(out, "is the active policy-store");
    /* another host's instance holds it now: the active one must not go on */
    freeReplyObject(redisCommand(rc, "SET pl:lease:policy-store:active elsewhere-1 PX 2000"));
    CHECK_EQ(th_wait(a, 5000, &st), 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    snprintf(log, sizeof log, "%s/policy-store-pl.log", logdir);
    CHECK(th_file_has(log, "no longer the active policy-store (pl:lease:policy-store:active is held by elsewhere-1)"));
    /* the standby waits for elsewhere-1's lease to expire, then starts */
    int said = 0; /* at its next try, a third of the lease later */
    for (long long end = th_now_ms() + 2000; th_now_ms() < end && !said; th_sleep_ms(20))
        said = http(port2, "GET", "/ready", NULL, NULL) == 503 && strstr(out, "standby: elsewhere-1 is the active policy-store");
    CHECK(said);
    CHECK_EQ(th_wait_http(port2, "/ready", 200, 10000), 0);
    snprintf(log, sizeof log, "%s/%s.log", logdir, tag);
    CHECK(th_file_has(log, "the active policy-store of namespace pl: starting"));
    stop(b);
    r = redisCommand(rc, "EXISTS pl:lease:policy-store:active");
    CHECK(r && r->integer == 0); /* given up at the stop */
    if (r) freeReplyObject(r);
}

TEST(history_holds_the_last_100)
{
    int port;
    long long t = 1737504000000LL;
    pid_t p = start("h1", TOKEN, NULL, &port);
    CHECK_EQ(wait_body(port, "/api/v1/policy/config", "\"version\":1", 5000), 0);
    put(port, "orch.policy_update_interval_sec", "0", 200, "\"version\":2");
    CHECK_EQ(wait_body(port, "/api/v1/status", "\"update_interval_sec\":0", 5000), 0);
    for (int i = 0; i < 120; i++) perf("h1", i % 2 ? 0.0 : -5.0, t + i * 1000LL); /* block, unblock, ... */
    json_t *last = policy_n("h1", 120);
    CHECK_EQ(th_count_type(rc, "h1:policy", "policy.trading.updated"), 120);
    CHECK_EQ(json_integer_value(json_object_get(last, "version")), 120);
    json_decref(last);
    redisReply *r = NULL;
    for (long long end = th_now_ms() + 5000; th_now_ms() < end; th_sleep_ms(20)) {
        if (r) freeReplyObject(r);
        r = redisCommand(rc, "LLEN h1:policy:history");
        if (r && r->integer == 100) break;
    }
    CHECK(r && r->integer == 100);
    if (r) freeReplyObject(r);
    CHECK_EQ(http(port, "GET", "/api/v1/policy/history?limit=100", NULL, NULL), 200);
    json_t *h = json_loads(out, 0, NULL);
    CHECK_EQ(json_integer_value(json_object_get(h, "count")), 100);
    CHECK_EQ(json_integer_value(json_object_get(json_array_get(json_object_get(h, "policies"), 0), "version")), 120);
    CHECK_EQ(json_integer_value(json_object_get(json_array_get(json_object_get(h, "policies"), 99), "version")), 21);
    json_decref(h);
    CHECK_EQ(http(port, "GET", "/api/v1/policy/history", NULL, NULL), 200);
    CHECK_CONTAINS(out, "\"count\":20");
    CHECK_EQ(http(port, "GET", "/api/v1/policy/history?limit=101", NULL, NULL), 400);
    CHECK_EQ(http(port, "GET", "/api/v1/policy/history?limit=abc", NULL, NULL), 400);
    CHECK_EQ(http(port, "GET", "/api/v1/policy/history?limit=0", NULL, NULL), 400);
    stop(p);
}

TEST(config_change_reaches_a_running_trading_engine)
{
    int port, eport;
    char engine_bin[256];
    pid_t p = start("x1", TOKEN, NULL, &port);
    CHECK_EQ(wait_body(port, "/api/v1/policy/config", "\"version\":1", 5000), 0);
    th_bin("bin/trading-engine", engine_bin, sizeof engine_bin);
    const char *env[] = {"QT_FEED=none", NULL};
    pid_t eng = th_service(engine_bin, &R, "x1", env, logdir, "engine-x1", &eport, 1);
    CHECK_EQ(th_wait_http(eport, "/ready", 200, 15000), 0);
    CHECK_EQ(wait_body(eport, "/api/v1/rl-v3/dashboard/live-status", "\"mode\":\"SHADOW\"", 5000), 0);
    put(port, "rl_v3.live.mode", "\"HYBRID\"", 200, "\"version\":2");
    put(port, "rl_v3.live.min_confidence", "0.72", 200, "\"version\":2");
    /* Two PUTs are two config events: the engine may show the first before the second. */
    CHECK_EQ(wait_body(eport, "/api/v1/rl-v3/dashboard/live-status", "\"mode\":\"HYBRID\"", 5000), 0);
    CHECK_EQ(wait_body(eport, "/api/v1/rl-v3/dashboard/live-status", "\"min_confidence\":0.72", 5000), 0);
    CHECK_CONTAINS(out, "\"mode\":\"HYBRID\"");
    stop(eng);
    stop(p);
}

/* REDIS_URL with an ACL user (redis://user:password@host): the service logs
 * in as that user (AUTH user password; the user name used to be dropped and
 * the password sent for the default user, so a least-privilege user could
 * not be used); a wrong password keeps it unready, and the password never
 * shows in its log. */
TEST(an_acl_user_in_redis_url_is_the_one_logged_in)
{
    int port;
    char url[200], bad[200], log[300];
    redisContext *c = th_redis_connect(&R);
    redisReply *r = redisCommand(c, "ACL SETUSER qt-policy on >p@ss:w0rd ~* &* +@all");
    CHECK(r && r->type == REDIS_REPLY_STATUS);
    if (r) freeReplyObject(r);
    snprintf(url, sizeof url, "REDIS_URL=redis://qt-policy:p%%40ss%%3Aw0rd@127.0.0.1:%d", R.port);
    pid_t p = start("acl", "tok", url, &port);
    CHECK_EQ(http(port, "GET", "/ready", NULL, NULL), 200);
    r = redisCommand(c, "CLIENT LIST");
    CHECK(r && r->type == REDIS_REPLY_STRING && strstr(r->str, "user=qt-policy") != NULL);
    if (r) freeReplyObject(r);
    stop(p);
    snprintf(bad, sizeof bad, "REDIS_URL=redis://qt-policy:hunter2@127.0.0.1:%d", R.port);
    p = start("acl2", "tok", bad, &port);
    CHECK_EQ(http(port, "GET", "/ready", NULL, NULL), 503);
    th_kill(p, SIGTERM);
    th_wait(p, 15000, NULL);
    snprintf(log, sizeof log, "%s/policy-store-acl2.log", logdir);
    CHECK(th_file_has(log, "WRONGPASS") || th_file_has(log, "AUTH"));
    CHECK(!th_file_has(log, "hunter2"));
    r = redisCommand(c, "ACL DELUSER qt-policy");
    if (r) freeReplyObject(r);
    redisFree(c);
}

int main(int argc, char **argv);

/* Redis comes back without the configuration (restarted without
 * persistence): before, the mode fell back to SHADOW and nobody was told.
 * policy-store re-seeds the defaults, and every service's /health and
 * /api/v1/status, and qtctl status, say the configuration was reset, until
 * an operator sets a key. */
TEST(a_configuration_redis_lost_is_reseeded_and_said_everywhere)
{
    int port, xport;
    char ex[256], qt[256], cmd[1024];
    pid_t p = start("cr", TOKEN, NULL, &port);
    th_bin("bin/trade-executor", ex, sizeof ex);
    pid_t x = th_service(ex, &R, "cr", NULL, logdir, "executor-cr", &xport, 1);
    CHECK(x > 0);
    long long seeded = 0; /* the first seeding has run: every key is in the hash */
    for (long long end = th_now_ms() + 10000; th_now_ms() < end && seeded < 10; th_sleep_ms(50)) {
        redisReply *r = redisCommand(rc, "HLEN cr:policy:versions");
        seeded = r && r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
        if (r) freeReplyObject(r);
    }
    CHECK(seeded >= 10);
    put(port, "rl_v3.live.mode", "\"PRIMARY\"", 200, "\"version\":2");
    CHECK_EQ(http(port, "GET", "/health", NULL, NULL), 200);
    CHECK_CONTAINS(out, "\"config_reset\":null");
    freeReplyObject(redisCommand(rc, "DEL cr:policy:config cr:policy:versions")); /* what an empty Redis holds */
    CHECK_EQ(wait_body(port, "/health", "\"config_reset\":{", 10000), 0);
    CHECK_CONTAINS(out, "re-seeded the defaults");
    CHECK_EQ(wait_body(port, "/api/v1/policy/config/rl_v3.live.mode", "\"value\":\"SHADOW\"", 10000), 0);
    for (long long end = th_now_ms() + 10000; th_now_ms() < end; th_sleep_ms(100)) /* the other services too */
        if (th_http(xport, "GET", "/api/v1/status", NULL, NULL, out, sizeof out) == 200 && strstr(out, "\"config_reset\":{"))
            break;
    CHECK_CONTAINS(out, "\"config_reset\":{\"at\":");
    snprintf(cmd, sizeof cmd,
             "REDIS_URL=%s QT_NAMESPACE=cr QT_POLICY_STORE_URL=http://127.0.0.1:%d QT_TRADE_EXECUTOR_URL=http://127.0.0.1:%d "
             "%s status 2>&1",
             R.url, port, xport, th_bin("bin/qtctl", qt, sizeof qt));
    FILE *f = popen(cmd, "r");
    size_t n = f ? fread(out, 1, sizeof out - 1, f) : 0;
    out[n] = '\0';
    if (f) pclose(f);
    CHECK_CONTAINS(out, "CONFIGURATION RESET at ");
    put(port, "rl_v3.live.mode", "\"PRIMARY\"", 200, NULL); /* the operator sets it again */
    CHECK_EQ(wait_body(port, "/health", "\"config_reset\":null", 10000), 0);
    for (long long end = th_now_ms() + 10000; th_now_ms() < end; th_sleep_ms(100))
        if (th_http(xport, "GET", "/api/v1/status", NULL, NULL, out, sizeof out) == 200 && strstr(out, "\"config_reset\":null"))
            break;
    CHECK_CONTAINS(out, "\"config_reset\":null");
    CHECK_EQ(th_stop(x, 15000), 0);
    stop(p);
}

__attribute__((constructor)) static void setup(void)
{
    th_watchdog(300);
    th_bin("bin/policy-store", bin, sizeof bin);
    th_tempdir(logdir, sizeof logdir);
    if (th_redis_start(&R, 0) < 0 || !(rc = th_redis_connect(&R))) exit(2);
}

CHECK_MAIN()
