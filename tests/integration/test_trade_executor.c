/* Integration tests: the real trade-executor binary on a real redis-server,
 * on the paper venue and on the local test exchange (Binance rules). */
#include "binance.h"
#include "check.h"
#include "digest.h"
#include "harness.h"
#include "stack.h"
#include "keys.h"

#include <math.h>
#include <signal.h>
#include <sys/wait.h>

static th_redis_t R;
static char dir[256], bin[256], exbin[256], base[64], out[65536];
static redisContext *rc;
static int export_;

static pid_t start(const char *ns, const char *const extra[], int *port, int wait_ready)
{
    char tag[64];
    snprintf(tag, sizeof tag, "executor-%s", ns);
    return th_service(bin, &R, ns, extra, dir, tag, port, wait_ready);
}

static void stop(pid_t p) { CHECK_EQ(th_stop(p, 15000), 0); }

static void intent(const char *ns, const char *id, const char *sym, const char *side, double size, double ref, double qty)
{
    char k[64], data[600];
    snprintf(k, sizeof k, "%s:trade.intent", ns);
    snprintf(data, sizeof data,
             "{\"symbol\":\"%s\",\"side\":\"%s\",\"action\":\"%s\",\"size_pct\":%g,\"leverage\":3,\"confidence\":0.8,"
             "\"mode\":\"%s\",\"source_tag\":\"%s\",\"ref_price\":%g,\"reduce_only\":%s%s,\"event_time\":1704067259999}",
             sym, side, qty > 0 ? "CLOSE" : strcmp(side, "BUY") == 0 ? "LONG_SMALL" : "SHORT_SMALL", size,
             qty > 0 ? "RISK" : "PRIMARY", qty > 0 ? "RISK_STOP_LOSS" : "RL_V3_PRIMARY", ref, qty > 0 ? "true" : "false",
             "");
    if (qty > 0) { /* reduce-only exits carry the quantity */
        size_t l = strlen(data);
        snprintf(data + l - 1, sizeof data - l + 1, ",\"qty\":%g}", qty);
    }
    th_xadd_event(rc, k, "trade.intent", data, id);
}

/* Result events per intent id in ns:execution: sets *results, *dups. */
static void results(const char *ns, long *n, long *dups, long *executed)
{
    char k[64];
    snprintf(k, sizeof k, "%s:execution", ns);
    redisReply *r = redisCommand(rc, "XRANGE %s - +", k);
    *n = *dups = *executed = 0;
    json_t *seen = json_object();
    for (size_t i = 0; r && i < r->elements; i++) {
        const redisReply *f = r->element[i]->element[1];
        json_t *d = th_entry_payload(f);
        const char *iid = json_string_value(json_object_get(d, "intent_id"));
        if (json_object_get(seen, iid)) (*dups)++;
        json_object_set_new(seen, iid, json_true());
        *executed += strcmp(f->element[3]->str, "trade.executed") == 0;
        json_decref(d);
        (*n)++;
    }
    json_decref(seen);
    if (r) freeReplyObject(r);
}

static json_t *result_of(const char *ns, const char *iid)
{
    char k[64];
    snprintf(k, sizeof k, "%s:execution", ns);
    for (long long end = th_now_ms() + 5000; th_now_ms() < end; th_sleep_ms(20)) {
        redisReply *r = redisCommand(rc, "XRANGE %s - +", k);
        for (size_t i = 0; r && i < r->elements; i++) {
            const redisReply *f = r->element[i]->element[1];
            json_t *d = th_entry_payload(f);
            if (strcmp(json_string_value(json_object_get(d, "intent_id")), iid) == 0) {
                json_object_set_new(d, "_type", json_string(f->element[3]->str));
                freeReplyObject(r);
                return d;
            }
            json_decref(d);
        }
        if (r) freeReplyObject(r);
    }
    return NULL;
}

static const char *js(const json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }
static double jnum(const json_t *o, const char *k) { return json_number_value(json_object_get(o, k)); }

TEST(paper_fills_refusals_and_duplicates)
{
    int port;
    pid_t p = start("e1", NULL, &port, 1);
    intent("e1", "i-1", "BTCUSDT", "BUY", 0.01, 100, 0);
    json_t *r = result_of("e1", "i-1");
    CHECK_STR(js(r, "_type"), "trade.executed");
    CHECK_NEAR(jnum(r, "qty"), 3.0, 1e-12); /* 10000 x 0.01 x 3 / 100 */
    CHECK_NEAR(jnum(r, "price"), 100.02, 1e-9); /* 2 bps slippage */
    CHECK_NEAR(jnum(r, "fee"), 3 * 100.02 * 4e-4, 1e-9);
    CHECK_STR(js(r, "venue"), "paper");
    CHECK_EQ(strlen(js(r, "client_order_id")), 34);
    json_decref(r);
    intent("e1", "i-2", "BTCUSDT", "BUY", 0.00001, 100, 0); /* 0.003 x 100 = 0.3 USDT < 5 */
    r = result_of("e1", "i-2");
    CHECK_STR(js(r, "_type"), "trade.failed");
    CHECK_CONTAINS(js(r, "reason"), "USDT is below the minimum 5.00 for BTCUSDT"); /* 0.2-0.3 USDT */
    CHECK(json_is_false(json_object_get(r, "retryable")));
    json_decref(r);
    intent("e1", "i-3", "BTCUSDT", "SELL", 0.01, 101, 3); /* close the long */
    r = result_of("e1", "i-3");
    CHECK_STR(js(r, "_type"), "trade.executed");
    CHECK_NEAR(jnum(r, "qty"), 3, 1e-12);
    json_decref(r);
    intent("e1", "i-4", "ETHUSDT", "SELL", 0.01, 50, 1); /* nothing to reduce */
    r = result_of("e1", "i-4");
    CHECK_STR(js(r, "_type"), "trade.failed");
    CHECK_CONTAINS(js(r, "reason"), "no position to reduce");
    json_decref(r);
    intent("e1", "i-1", "BTCUSDT", "BUY", 0.01, 100, 0); /* the same intent again */
    th_sleep_ms(500);
    long n, dups, executed;
    results("e1", &n, &dups, &executed);
    CHECK_EQ(n, 4);
    CHECK_EQ(dups, 0);
    CHECK_EQ(th_http(port, "GET", "/api/v1/executor/status", NULL, NULL, out, sizeof out), 200);
    CHECK_CONTAINS(out, "\"duplicates_suppressed\":1");
    CHECK_CONTAINS(out, "\"executed\":2");
    CHECK_CONTAINS(out, "\"failed\":2");
    CHECK_CONTAINS(out, "\"venue\":\"paper\"");
    redisReply *bal = redisCommand(rc, "GET e1:paper:balance");
    double want = 10000 + (101 * (1 - 2e-4) - 100.02) * 3 - 3 * 100.02 * 4e-4 - 3 * 101 * (1 - 2e-4) * 4e-4;
    CHECK(bal && bal->type == REDIS_REPLY_STRING);
    if (bal && bal->type == REDIS_REPLY_STRING) CHECK_NEAR(atof(bal->str), want, 1e-6);
    if (bal) freeReplyObject(bal);
    stop(p);
}

static void entry_at(const char *ns, const char *id, const char *sym, double size, double lev, double ref)
{
    char k[64], data[600];
    snprintf(k, sizeof k, "%s:trade.intent", ns);
    snprintf(data, sizeof data,
             "{\"symbol\":\"%s\",\"side\":\"BUY\",\"action\":\"LONG_SMALL\",\"size_pct\":%g,\"leverage\":%g,"
             "\"confidence\":0.8,\"mode\":\"PRIMARY\",\"source_tag\":\"RL_V3_PRIMARY\",\"ref_price\":%g,"
             "\"reduce_only\":false,\"event_time\":1704067259999}",
             sym, size, lev, ref);
    th_xadd_event(rc, k, "trade.intent", data, id);
}

/* The executor is the last line: an intent over the policy's hard caps
 * (whoever wrote it) is refused with a named reason and counted; before, an
 * intent of 100% of equity at 125x was filled. The caps are the policy's
 * (read from its configuration hash), not fixed ones. */
TEST(entries_over_the_policys_hard_caps_are_refused)
{
    int port;
    freeReplyObject(redisCommand(rc, "HSET ecap:policy:config risk.max_leverage 10"));
    pid_t p = start("ecap", NULL, &port, 1);
    entry_at("ecap", "c-1", "BTCUSDT", 1.0, 125, 100);
    json_t *r = result_of("ecap", "c-1");
    CHECK_STR(js(r, "_type"), "trade.failed");
    CHECK_STR(js(r, "code"), "LEVERAGE_CAP");
    CHECK_CONTAINS(js(r, "reason"), "leverage 125 is above risk.max_leverage 10");
    json_decref(r);
    entry_at("ecap", "c-2", "BTCUSDT", 0.5, 3, 100); /* 50% of equity as margin */
    r = result_of("ecap", "c-2");
    CHECK_STR(js(r, "code"), "SIZE_CAP");
    CHECK_CONTAINS(js(r, "reason"), "above risk.total_exposure_limit_pct 15%");
    json_decref(r);
    entry_at("ecap", "c-3", "BTCUSDT", 0.1, 8, 100); /* 10%, 8x: within (the hash allows 10x) */
    r = result_of("ecap", "c-3");
    CHECK_STR(js(r, "_type"), "trade.executed");
    json_decref(r);
    entry_at("ecap", "c-4", "BTCUSDT", 0.1, 8, 100); /* another 10% on the same symbol: 20% */
    r = result_of("ecap", "c-4");
    CHECK_STR(js(r, "code"), "EXPOSURE_CAP");
    CHECK_CONTAINS(js(r, "reason"), "BTCUSDT would hold");
    json_decref(r);
    CHECK_EQ(th_http(port, "GET", "/api/v1/executor/status", NULL, NULL, out, sizeof out), 200);
    CHECK_CONTAINS(out, "\"refused_over_policy_caps\":3");
    CHECK_EQ(th_http(port, "GET", "/metrics", NULL, NULL, out, sizeof out), 200);
    CHECK_CONTAINS(out, "qt_executor_refused_over_caps_total{venue=\"paper\"} 3");
    stop(p);
}

/* The executor compares the venue with the engine periodically, not only at
 * start: a position the engine holds that the venue no longer has becomes
 * position.external (the engine books it closed), counted in /metrics; an
 * exit the venue refuses for want of a position says NO_POSITION. */
TEST(a_position_gone_at_the_venue_is_reported_periodically)
{
    int port;
    const char *env[] = {"QT_RECONCILE_MS=500", NULL};
    pid_t p = start("gh", env, &port, 1);
    intent("gh", "g-1", "ETHUSDT", "SELL", 0.01, 50, 1); /* nothing to reduce */
    json_t *r = result_of("gh", "g-1");
    CHECK_STR(js(r, "code"), "NO_POSITION");
    json_decref(r);
    th_sleep_ms(1000); /* the reconciliation at start agreed: the engine holds nothing */
    CHECK_EQ(th_count_type(rc, "gh:execution", "position.external"), 0);
    freeReplyObject(redisCommand(rc, "SET gh:engine:positions {\"BTCUSDT\":3}")); /* the engine's view, now */
    for (long long end = th_now_ms() + 5000; th_now_ms() < end && !th_count_type(rc, "gh:execution", "position.external");)
        th_sleep_ms(50);
    json_t *g = th_event_data(rc, "gh:execution", "position.external", -1);
    CHECK(g != NULL);
    CHECK_STR(js(g, "symbol"), "BTCUSDT");
    CHECK_NEAR(jnum(g, "engine_qty"), 3, 1e-12);
    CHECK_NEAR(jnum(g, "venue_qty"), 0, 1e-12);
    CHECK_STR(js(g, "detected_by"), "reconciliation");
    json_decref(g);
    CHECK_EQ(th_http(port, "GET", "/metrics", NULL, NULL, out, sizeof out), 200);
    CHECK_CONTAINS(out, "qt_executor_positions_closed_externally_total{venue=\"paper\"} ");
    CHECK_CONTAINS(out, "qt_executor_reconcile_differences{venue=\"paper\"} 1");
    freeReplyObject(redisCommand(rc, "SET gh:engine:positions {}")); /* the engine booked it */
    th_sleep_ms(1200);
    long n = th_count_type(rc, "gh:execution", "position.external");
    th_sleep_ms(1200);
    CHECK_EQ(th_count_type(rc, "gh:execution", "position.external"), n); /* agreed again: no more */
    stop(p);
}

/* An entry that reaches the executor long after it was decided (an outage,
 * a DLQ replay days later) is refused; an exit is not, whatever its age. */
TEST(a_stale_entry_is_refused_and_a_stale_exit_still_goes_out)
{
    int port;
    const char *env[] = {"QT_INTENT_MAX_AGE_MS=5000", NULL};
    pid_t p = start("s1", env, &port, 1);
    intent("s1", "s-1", "BTCUSDT", "BUY", 0.01, 100, 0); /* fresh: a long of 3 */
    json_t *r = result_of("s1", "s-1");
    CHECK_STR(js(r, "_type"), "trade.executed");
    json_decref(r);
    const char *entry = "{\"symbol\":\"ETHUSDT\",\"side\":\"BUY\",\"action\":\"LONG_SMALL\",\"size_pct\":0.01,\"leverage\":3,"
                        "\"confidence\":0.8,\"mode\":\"PRIMARY\",\"source_tag\":\"RL_V3_PRIMARY\",\"ref_price\":50,"
                        "\"reduce_only\":false,\"event_time\":1704067259999}";
    const char *exit_ = "{\"symbol\":\"BTCUSDT\",\"side\":\"SELL\",\"action\":\"CLOSE\",\"size_pct\":0.01,\"leverage\":3,"
                        "\"confidence\":0.8,\"mode\":\"RISK\",\"source_tag\":\"RISK_STOP_LOSS\",\"ref_price\":101,"
                        "\"reduce_only\":true,\"qty\":3,\"event_time\":1704067259999}";
    long long old = th_wall_ms() - 60000; /* published a minute ago */
    freeReplyObject(redisCommand(rc, "XADD s1:trade.intent * id s-2 type trade.intent v 1 ts %lld source test trace s-2 data %s", old, entry));
    freeReplyObject(redisCommand(rc, "XADD s1:trade.intent * id s-3 type trade.intent v 1 ts %lld source test trace s-3 data %s", old, exit_));
    r = result_of("s1", "s-2");
    CHECK_STR(js(r, "_type"), "trade.failed");
    CHECK_STR(js(r, "code"), "STALE");
    CHECK_CONTAINS(js(r, "reason"), "(QT_INTENT_MAX_AGE_MS=5000)");
    CHECK(json_is_false(json_object_get(r, "retryable")));
    json_decref(r);
    r = result_of("s1", "s-3");
    CHECK_STR(js(r, "_type"), "trade.executed"); /* the exit closes the long */
    CHECK_NEAR(jnum(r, "qty"), 3, 1e-12);
    json_decref(r);
    redisReply *o = redisCommand(rc, "HLEN s1:paper:orders");
    CHECK(o && o->integer == 2); /* the fresh entry and the exit; no order for the stale entry */
    if (o) freeReplyObject(o);
    CHECK_EQ(th_http(port, "GET", "/api/v1/executor/status", NULL, NULL, out, sizeof out), 200);
    CHECK_CONTAINS(out, "\"refused_stale\":1");
    stop(p);
    const char *bad[] = {"QT_INTENT_MAX_AGE_MS=-1", NULL};
    int st = -1;
    p = start("s2", bad, &port, 0);
    CHECK_EQ(th_wait(p, 10000, &st), 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2);
}

/* Redis runs the rest of a MULTI … EXEC after one command failed at run
 * time: the result's XADD failing (here: the execution stream's key holds a
 * string) must not leave the intent's record DONE with no result anywhere. */
TEST(a_result_that_cannot_be_written_is_not_recorded_as_done)
{
    int port;
    pid_t p = start("w1", NULL, &port, 1);
    freeReplyObject(redisCommand(rc, "SET w1:execution not-a-stream"));
    intent("w1", "w-1", "BTCUSDT", "BUY", 0.01, 100, 0);
    redisReply *r = NULL;
    for (long long end = th_now_ms() + 5000; th_now_ms() < end; th_sleep_ms(50)) { /* the paper order is placed */
        if (r) freeReplyObject(r);
        r = redisCommand(rc, "HLEN w1:paper:orders");
        if (r && r->integer == 1) break;
    }
    CHECK(r && r->integer == 1);
    if (r) freeReplyObject(r);
    th_sleep_ms(500); /* and the result's write has failed at least once */
    r = redisCommand(rc, "GET w1:exec:w-1");
    CHECK(r && r->type == REDIS_REPLY_STRING && strstr(r->str, "\"SENT\""));
    if (r) freeReplyObject(r);
    freeReplyObject(redisCommand(rc, "DEL w1:execution"));
    json_t *res = result_of("w1", "w-1");
    CHECK_STR(js(res, "_type"), "trade.executed");
    json_decref(res);
    th_sleep_ms(300);
    long n, dups, executed;
    results("w1", &n, &dups, &executed);
    CHECK_EQ(n, 1);
    CHECK_EQ(dups, 0);
    r = redisCommand(rc, "HLEN w1:paper:orders");
    CHECK(r && r->integer == 1); /* one order */
    if (r) freeReplyObject(r);
    r = redisCommand(rc, "GET w1:exec:w-1");
    CHECK(r && r->type == REDIS_REPLY_STRING && strstr(r->str, "\"DONE\""));
    if (r) freeReplyObject(r);
    CHECK_EQ(th_xlen(rc, "w1:trade.intent:dlq"), 0);
    stop(p);
}

static long long reply_int(const char *fmt, const char *key)
{
    redisReply *r = redisCommand(rc, fmt, key);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r) freeReplyObject(r);
    return v;
}

/* The paper venue's script: Redis keeps what a script wrote before it
 * failed, so a fill either changes the order, the position and the balance
 * together or nothing; and what it reads back (an order record, the
 * balance) is checked, not believed. */
TEST(a_paper_fill_is_all_or_nothing_and_a_bad_record_is_refused)
{
    int port;
    const char *env[] = {"QT_RETRY_DELAY_MS=100", "QT_VENUE_BREAKER_OPEN_WAIT_MS=300", NULL};
    pid_t p = start("w2", env, &port, 1);
    freeReplyObject(redisCommand(rc, "HSET w2:paper:order_seq not a-counter")); /* the order id's counter breaks */
    intent("w2", "w-1", "BTCUSDT", "BUY", 0.01, 100, 0);
    out[0] = '\0';
    for (long long end = th_now_ms() + 5000; th_now_ms() < end && !strstr(out, "WRONGTYPE"); th_sleep_ms(50))
        th_http(port, "GET", "/api/v1/executor/status", NULL, NULL, out, sizeof out);
    CHECK_CONTAINS(out, "WRONGTYPE"); /* the script was run and failed */
    th_sleep_ms(500); /* and again */
    CHECK_EQ(reply_int("EXISTS %s", "w2:paper:balance"), 0);
    CHECK_EQ(reply_int("HLEN %s", "w2:paper:positions"), 0);
    CHECK_EQ(reply_int("HLEN %s", "w2:paper:orders"), 0);
    freeReplyObject(redisCommand(rc, "DEL w2:paper:order_seq"));
    json_t *r = result_of("w2", "w-1");
    CHECK_STR(js(r, "_type"), "trade.executed");
    json_decref(r);
    CHECK_EQ(reply_int("HLEN %s", "w2:paper:positions"), 1);
    redisReply *b = redisCommand(rc, "GET w2:paper:balance");
    CHECK(b && b->type == REDIS_REPLY_STRING);
    if (b && b->type == REDIS_REPLY_STRING) CHECK_NEAR(atof(b->str), 10000 - 3 * 100.02 * 4e-4, 1e-6); /* charged once */
    char cid[40] = "qt", saved[64] = "";
    if (b && b->type == REDIS_REPLY_STRING) snprintf(saved, sizeof saved, "%s", b->str);
    if (b) freeReplyObject(b);
    digest_hex("w-2", 16, cid + 2);
    freeReplyObject(redisCommand(rc, "HSET w2:paper:orders %s {\"order_id\":\"paper-9\"}", cid)); /* edited by hand */
    intent("w2", "w-2", "ETHUSDT", "BUY", 0.01, 50, 0);
    r = result_of("w2", "w-2");
    CHECK_STR(js(r, "_type"), "trade.failed");
    CHECK_CONTAINS(js(r, "reason"), "the order record cannot be read (qty)");
    json_decref(r);
    freeReplyObject(redisCommand(rc, "SET w2:paper:balance lots"));
    intent("w2", "w-3", "SOLUSDT", "BUY", 0.01, 20, 0);
    th_sleep_ms(600);
    CHECK_EQ(reply_int("HLEN %s", "w2:paper:orders"), 2); /* no order on a balance nobody can read */
    CHECK_EQ(th_http(port, "GET", "/api/v1/executor/status", NULL, NULL, out, sizeof out), 200);
    CHECK_CONTAINS(out, "the balance cannot be read (not a number)");
    freeReplyObject(redisCommand(rc, "SET w2:paper:balance %s", saved));
    r = result_of("w2", "w-3");
    CHECK_STR(js(r, "_type"), "trade.executed");
    json_decref(r);
    long n, dups, executed;
    results("w2", &n, &dups, &executed);
    CHECK_EQ(n, 3);
    CHECK_EQ(dups, 0);
    CHECK_EQ(th_xlen(rc, "w2:trade.intent:dlq"), 0);
    stop(p);
}

TEST(exactly_once_with_sigkills)
{
    int port, kills = 0;
    const char *env[] = {"QT_BATCH=16", "QT_CLAIM_IDLE_MS=500", NULL};
    const char *syms[] = {"BTCUSDT", "ETHUSDT", "SOLUSDT"};
    char id[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof id, "x-%04d", i);
        intent("e2", id, syms[i % 3], i % 2 ? "SELL" : "BUY", 0.001, 100, 0);
    }
    srand(12345);
    pid_t p = start("e2", env, &port, 0);
    long n = 0, dups, executed;
    for (long long end = th_now_ms() + 90000; th_now_ms() < end;) {
        th_sleep_ms(100 + rand() % 200); /* a life long enough to take its partition and do some work */
        results("e2", &n, &dups, &executed);
        if (n >= 1000) break;
        th_kill(p, SIGKILL); /* at a random moment of its work */
        th_wait(p, 5000, NULL);
        kills++;
        p = start("e2", env, &port, 0);
    }
    for (long long end = th_now_ms() + 30000; th_now_ms() < end && n < 1000; th_sleep_ms(100))
        results("e2", &n, &dups, &executed);
    printf("# exactly-once: %d SIGKILLs, %ld results, %ld duplicates, %ld executed\n", kills, n, dups, executed);
    CHECK(kills >= 5);
    CHECK_EQ(n, 1000);  /* every intent has a result ... */
    CHECK_EQ(dups, 0);  /* ... exactly one */
    CHECK_EQ(executed, 1000); /* each was claimed (recorded) long before it could go stale: none refused as old */
    redisReply *o = redisCommand(rc, "HLEN e2:paper:orders");
    CHECK_EQ(o->integer, executed); /* and the venue holds one order per executed intent */
    freeReplyObject(o);
    stop(p);
}

/* A small entry intent of sym onto its partition's stream (of 4) in ns. */
static void part_intent(const char *ns, const char *id, const char *sym, const char *side)
{
    char key[64], data[600];
    snprintf(key, sizeof key, "%s:trade.intent:p%d", ns, proto_partition(sym, 4));
    snprintf(data, sizeof data,
             "{\"symbol\":\"%s\",\"side\":\"%s\",\"action\":\"LONG_SMALL\",\"size_pct\":0.001,\"leverage\":3,"
             "\"confidence\":0.8,\"mode\":\"PRIMARY\",\"source_tag\":\"RL_V3_PRIMARY\",\"ref_price\":100,"
             "\"reduce_only\":false,\"event_time\":1704067259999}",
             sym, side);
    th_xadd_event(rc, key, "trade.intent", data, id);
}

/* Are the 4 partitions held by n distinct replicas, none by dead (a pid, or 0)? */
static int leases_balanced(const char *ns, int n, pid_t dead)
{
    return stack_lease_holders(rc, ns, "trade-executor", 4, dead) == n;
}

/* Three replicas in a namespace of four symbol partitions (DESIGN §2a):
 * each partition is held by one of them (lease), a symbol's intents are
 * executed in their order, and when one replica is SIGKILLed its
 * partitions go to the others once its lease expires (no claim timeout:
 * QT_CLAIM_IDLE_MS is ten minutes), its pending entries with them — every
 * intent gets exactly one result. */
TEST(replicas_share_the_partitions_by_lease_and_take_over_a_killed_ones)
{
    const char *env[] = {"QT_PARTITIONS=4", "QT_LEASE_MS=1000", "QT_BATCH=16", "QT_CLAIM_IDLE_MS=600000", NULL};
    static const char *const syms[8] = {"BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "LTCUSDT", "OPUSDT", "AVAXUSDT", "ADAUSDT"};
    int port[3];
    pid_t p[3];
    char tag[32], id[32], k[64];
    for (int i = 0; i < 3; i++) {
        snprintf(tag, sizeof tag, "executor-e9-%d", i);
        p[i] = th_service(bin, &R, "e9", env, dir, tag, &port[i], 1);
        CHECK(p[i] > 0);
    }
    int balanced = 0;
    for (long long end = th_now_ms() + 15000; th_now_ms() < end && !(balanced = leases_balanced("e9", 3, 0));) th_sleep_ms(50);
    CHECK(balanced); /* shares of 2, 1 and 1 */
    const int n = 1200;
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof id, "r-%04d", i);
        part_intent("e9", id, syms[i % 8], (i / 8) % 2 ? "SELL" : "BUY");
    }
    /* the replica with the most partitions dies mid-run */
    long done = 0;
    for (long long end = th_now_ms() + 30000; th_now_ms() < end && done < n / 4; th_sleep_ms(5)) {
        done = 0;
        for (int q = 0; q < 4; q++) {
            snprintf(k, sizeof k, "e9:execution:p%d", q);
            done += (long)th_xlen(rc, k);
        }
    }
    int victim = 0, most = 0;
    for (int i = 0; i < 3; i++) {
        char h[64];
        int held = 0;
        for (int q = 0; q < 4; q++) {
            stack_lease_holder(rc, "e9", "trade-executor", q, h);
            held += stack_held_by(h, p[i]);
        }
        if (held > most) most = held, victim = i;
    }
    CHECK_EQ(most, 2);
    th_kill(p[victim], SIGKILL);
    th_wait(p[victim], 5000, NULL);
    long long killed = th_now_ms();
    for (long long end = killed + 15000; th_now_ms() < end && !(balanced = leases_balanced("e9", 2, p[victim]));) th_sleep_ms(20);
    long long moved_ms = th_now_ms() - killed;
    CHECK(balanced); /* its two partitions went to the other two */
    /* every intent has exactly one result, a symbol's in the order of its intents */
    long results = 0, dups = 0, out_of_order = 0;
    for (long long end = th_now_ms() + 30000; th_now_ms() < end; th_sleep_ms(100)) {
        results = 0;
        for (int q = 0; q < 4; q++) {
            snprintf(k, sizeof k, "e9:execution:p%d", q);
            results += (long)th_xlen(rc, k);
        }
        if (results >= n) break;
    }
    static char seen[1200];
    memset(seen, 0, sizeof seen);
    for (int q = 0; q < 4; q++) {
        int last[8];
        for (int j = 0; j < 8; j++) last[j] = -1;
        snprintf(k, sizeof k, "e9:execution:p%d", q);
        redisReply *r = redisCommand(rc, "XRANGE %s - +", k);
        for (size_t i = 0; r && i < r->elements; i++) {
            const redisReply *f = r->element[i]->element[1];
            json_t *d = th_entry_payload(f);
            const char *iid = json_string_value(json_object_get(d, "intent_id"));
            int num = iid && strncmp(iid, "r-", 2) == 0 ? atoi(iid + 2) : -1;
            if (num >= 0 && num < n) {
                if (seen[num]++) dups++;
                if (num <= last[num % 8]) out_of_order++;
                last[num % 8] = num;
            }
            json_decref(d);
        }
        if (r) freeReplyObject(r);
    }
    long missing = 0;
    for (int i = 0; i < n; i++) missing += !seen[i];
    printf("# replicas: 3 then 2 replicas over 4 partitions, %ld results, %ld missing, %ld duplicates, %ld out of order; "
           "partitions moved %lld ms after the SIGKILL (QT_LEASE_MS=1000)\n", results, missing, dups, out_of_order, moved_ms);
    CHECK_EQ(missing, 0);
    CHECK_EQ(dups, 0);
    CHECK_EQ(out_of_order, 0);
    /* a live replica says what it holds */
    int live = victim == 0 ? 1 : 0;
    CHECK_EQ(th_http(port[live], "GET", "/api/v1/status", NULL, NULL, out, sizeof out), 200);
    CHECK_CONTAINS(out, "\"partitions\":{");
    CHECK_CONTAINS(out, "\"replicas\":2");
    CHECK_EQ(th_http(port[live], "GET", "/metrics", NULL, NULL, out, sizeof out), 200);
    CHECK_CONTAINS(out, "qt_partition_held{partition=\"");
    CHECK_CONTAINS(out, "qt_partition_moves_total{kind=\"taken\"}");
    /* SIGTERM gives the leases back at once: the last one takes all four */
    int other = 3 - victim - live;
    stop(p[other]);
    for (long long end = th_now_ms() + 5000; th_now_ms() < end && !(balanced = leases_balanced("e9", 1, p[other]));) th_sleep_ms(20);
    CHECK(balanced);
    stop(p[live]);
}

/* A replica that stalls (SIGSTOP: alive, renewing nothing) loses its
 * partitions when its lease expires — the pid check that frees a dead
 * predecessor's at once does not apply to a live process — and the other
 * replica takes them over; woken up, the stalled one finds its leases gone
 * and reads nothing of those partitions again. Every intent, also those
 * written during the stall, gets exactly one result. */
TEST(a_stalled_replica_loses_its_partitions_when_its_lease_expires)
{
    const char *env[] = {"QT_PARTITIONS=4", "QT_LEASE_MS=1000", "QT_CLAIM_IDLE_MS=600000", NULL};
    static const char *const syms[4] = {"BTCUSDT", "SOLUSDT", "LTCUSDT", "AVAXUSDT"}; /* partitions 0, 1, 2, 3 */
    int port[2];
    pid_t p[2];
    char tag[32];
    for (int i = 0; i < 2; i++) {
        snprintf(tag, sizeof tag, "executor-ea-%d", i);
        p[i] = th_service(bin, &R, "ea", env, dir, tag, &port[i], 1);
    }
    int balanced = 0;
    for (long long end = th_now_ms() + 15000; th_now_ms() < end && !(balanced = leases_balanced("ea", 2, 0));) th_sleep_ms(50);
    CHECK(balanced);
    kill(p[0], SIGSTOP);
    long long stopped = th_now_ms();
    for (long long end = stopped + 10000; th_now_ms() < end && !(balanced = leases_balanced("ea", 1, p[0]));) th_sleep_ms(20);
    long long moved = th_now_ms() - stopped;
    CHECK(balanced);
    CHECK(moved >= 700); /* not before the lease could expire (1000 ms from the last renewal, a third of it ago at most) */
    for (int i = 0; i < 40; i++) {
        char id[32];
        snprintf(id, sizeof id, "s-%02d", i);
        part_intent("ea", id, syms[i % 4], (i / 4) % 2 ? "SELL" : "BUY");
    }
    kill(p[0], SIGCONT); /* wakes up holding leases that are no longer its */
    long results = 0;
    for (long long end = th_now_ms() + 20000; th_now_ms() < end && results < 40; th_sleep_ms(50)) {
        results = 0;
        for (int q = 0; q < 4; q++) {
            char k[64];
            snprintf(k, sizeof k, "ea:execution:p%d", q);
            results += (long)th_xlen(rc, k);
        }
    }
    th_sleep_ms(1500); /* anything either replica would still add */
    long n = 0, dups = 0, executed = 0;
    json_t *seen = json_object();
    for (int q = 0; q < 4; q++) {
        redisReply *r = redisCommand(rc, "XRANGE ea:execution:p%d - +", q);
        for (size_t i = 0; r && i < r->elements; i++) {
            json_t *dd = th_entry_payload(r->element[i]->element[1]);
            const char *iid = json_string_value(json_object_get(dd, "intent_id"));
            if (iid && json_object_get(seen, iid)) dups++;
            if (iid) json_object_set_new(seen, iid, json_true());
            executed += strcmp(r->element[i]->element[1]->element[3]->str, "trade.executed") == 0;
            n++;
            json_decref(dd);
        }
        if (r) freeReplyObject(r);
    }
    json_decref(seen);
    printf("# stalled replica: partitions moved %lld ms after SIGSTOP (QT_LEASE_MS=1000); %ld results, %ld duplicates\n",
           moved, n, dups);
    CHECK_EQ(n, 40);
    CHECK_EQ(dups, 0);
    CHECK_EQ(executed, 40);
    char log[300];
    snprintf(log, sizeof log, "%s/executor-ea-0.log", dir);
    CHECK(th_file_has(log, "dropped: Redis has not renewed its lease in time") || th_file_has(log, "lost: its lease expired"));
    /* back in the game: the two share the partitions again */
    for (long long end = th_now_ms() + 10000; th_now_ms() < end && !(balanced = leases_balanced("ea", 2, 0));) th_sleep_ms(50);
    CHECK(balanced);
    stop(p[0]);
    stop(p[1]);
}

/* extra: one more environment entry for the exchange, or NULL */
static pid_t start_exchange(const char *extra)
{
    static char e[64];
    char log[300];
    export_ = th_free_port();
    snprintf(e, sizeof e, "TX_PORT=%d", export_);
    const char *env[] = {e, "TX_API_KEY=ex-key", "TX_API_SECRET=ex-secret", extra, NULL}, *argv[] = {exbin, NULL};
    snprintf(log, sizeof log, "%s/exchange.log", dir);
    pid_t p = th_spawn(exbin, argv, env, log);
    snprintf(base, sizeof base, "QT_BINANCE_BASE_URL=http://127.0.0.1:%d", export_);
    th_wait_http(export_, "/fapi/v1/time", 200, 5000);
    return p;
}

/* The executor as ns on the binance-futures venue against the running test
 * exchange, with the keys and up to 8 more environment entries
 * (NULL-terminated, or NULL). */
static pid_t start_on_binance(const char *ns, const char *const extra[], int *port)
{
    const char *env[16] = {"QT_VENUE=binance-futures", base, "QT_BINANCE_API_KEY=ex-key", "QT_BINANCE_API_SECRET=ex-secret"};
    for (int i = 0; extra && extra[i] && i < 8; i++) env[4 + i] = extra[i];
    return start(ns, env, port, 1);
}

/* The test exchange (exchange_env: one more entry for it, or NULL), then the executor on it. */
static pid_t start_binance(const char *ns, const char *exchange_env, const char *const extra[], pid_t *ex, int *port)
{
    *ex = start_exchange(exchange_env);
    return start_on_binance(ns, extra, port);
}

static void stop_binance(pid_t p, pid_t ex)
{
    stop(p);
    th_kill(ex, SIGTERM);
    th_wait(ex, 5000, NULL);
}

TEST(binance_venue_orders_recovery_and_breaker)
{
    int port;
    pid_t ex = start_exchange(NULL);
    const char *env[] = {"QT_VENUE=binance-futures", base, "QT_BINANCE_API_KEY=ex-key", "QT_BINANCE_API_SECRET=ex-secret",
                         "QT_RETRY_DELAY_MS=100", "QT_VENUE_BREAKER_WINDOW=4", "QT_VENUE_BREAKER_MIN_CALLS=3",
                         "QT_VENUE_BREAKER_OPEN_WAIT_MS=1500", "QT_VENUE_BREAKER_HALF_OPEN_CALLS=1",
                         /* a 5xx leaves an order's fate unknown: the executor waits recvWindow + 4 timeouts + 1 s
                          * (7 s here) before it orders that intent again */
                         "QT_BINANCE_TIMEOUT_MS=1000", "QT_BINANCE_RECV_WINDOW_MS=2000", NULL};
    pid_t p = start("b1", env, &port, 1);
    intent("b1", "b-1", "BTCUSDT", "BUY", 0.01, 42000, 0);
    json_t *r = result_of("b1", "b-1");
    CHECK_STR(js(r, "_type"), "trade.executed");
    CHECK_STR(js(r, "venue"), "binance-futures");
    CHECK_NEAR(jnum(r, "qty"), 0.007, 1e-12); /* 10000 x 0.01 x 3 / 42000 = 0.00714 → step 0.001 */
    char cid[40];
    snprintf(cid, sizeof cid, "%s", js(r, "client_order_id"));
    json_decref(r);
    CHECK_EQ(th_http(export_, "GET", "/_test/orders", NULL, NULL, out, sizeof out), 200);
    CHECK_CONTAINS(out, cid);
    /* a crash after the order went out, before the result: the record says SENT
     * and the exchange has the order; the executor must publish, not re-order */
    binance_config_t bc = {0};
    char err[512], params[200];
    snprintf(bc.base_url, sizeof bc.base_url, "http://127.0.0.1:%d", export_);
    snprintf(bc.api_key, sizeof bc.api_key, "ex-key");
    snprintf(bc.api_secret, sizeof bc.api_secret, "ex-secret");
    bc.recv_window_ms = 5000, bc.timeout_ms = 2000;
    binance_t *b = binance_new(&bc, err, sizeof err);
    binance_reply_t br;
    /* the executor's client order id for intent "b-2": "qt" + 32 hex of SHA-256 */
    char want_cid[40] = "qt";
    /* compute it the way the executor does, through the shell's sha256sum */
    FILE *sh = popen("printf %s b-2 | sha256sum | cut -c1-32", "r");
    if (sh && fgets(want_cid + 2, 34, sh)) want_cid[34] = '\0';
    if (sh) pclose(sh);
    snprintf(params, sizeof params, "symbol=ETHUSDT&side=BUY&type=MARKET&quantity=0.012&newClientOrderId=%s", want_cid);
    CHECK_EQ(binance_signed(b, "POST", "/fapi/v1/order", params, &br, err, sizeof err), BINANCE_OK);
    binance_reply_clear(&br);
    binance_free(b);
    freeReplyObject(redisCommand(rc, "SET b1:exec:b-2 {\"state\":\"SENT\",\"cid\":\"%s\"}", want_cid));
    intent("b1", "b-2", "ETHUSDT", "BUY", 0.01, 2500, 0);
    r = result_of("b1", "b-2");
    CHECK_STR(js(r, "_type"), "trade.executed");
    CHECK_STR(js(r, "client_order_id"), want_cid);
    CHECK_NEAR(jnum(r, "qty"), 0.012, 1e-12); /* the order that was placed, not a new one */
    json_decref(r);
    CHECK_EQ(th_http(export_, "GET", "/_test/orders", NULL, NULL, out, sizeof out), 200);
    json_t *orders = json_loads(out, 0, NULL);
    CHECK_EQ(json_array_size(json_object_get(orders, "orders")), 2);
    json_decref(orders);
    CHECK_EQ(th_http(port, "GET", "/api/v1/executor/status", NULL, NULL, out, sizeof out), 200);
    CHECK_CONTAINS(out, "\"recovered_after_restart\":1");
    /* the exchange fails: the breaker opens, /ready says why, nothing is dead-lettered, then recovery */
    th_http(export_, "POST", "/_test/fault?status=503&count=12", NULL, NULL, NULL, 0);
    for (int i = 0; i < 4; i++) {
        char iid[16];
        snprintf(iid, sizeof iid, "c-%d", i);
        intent("b1", iid, "SOLUSDT", "BUY", 0.01, 100, 0);
    }
    int st = 0;
    for (long long end = th_now_ms() + 10000; th_now_ms() < end && st != 503; th_sleep_ms(50))
        st = th_http(port, "GET", "/ready", NULL, NULL, out, sizeof out);
    CHECK_EQ(st, 503);
    CHECK_CONTAINS(out, "venue breaker open");
    long n = 0, dups, executed;
    for (long long end = th_now_ms() + 30000; th_now_ms() < end && n < 6; th_sleep_ms(100)) results("b1", &n, &dups, &executed);
    CHECK_EQ(n, 6);
    CHECK_EQ(executed, 6);
    CHECK_EQ(dups, 0);
    CHECK_EQ(th_xlen(rc, "b1:trade.intent:dlq"), 0);
    CHECK_EQ(th_wait_http(port, "/ready", 200, 10000), 0);
    stop(p);
    char log[300], line[4096];
    int lines = 0, leaked = 0;
    snprintf(log, sizeof log, "%s/executor-b1.log", dir);
    FILE *f = fopen(log, "r");
    while (f && fgets(line, sizeof line, f)) lines++, leaked |= strstr(line, "ex-secret") || strstr(line, "ex-key");
    if (f) fclose(f);
    CHECK(lines > 5);
    CHECK(!leaked); /* neither key nor secret in the log */
    th_kill(ex, SIGTERM);
    th_wait(ex, 5000, NULL);
}

/* Binance keeps a client order id unique only among open orders, and a
 * MARKET order is never open for long. An order request the executor gave
 * up on (timeout) reaches the exchange after the executor's query found
 * nothing: the executor must not order again until that request is dead. */
TEST(binance_an_order_request_still_in_flight_is_not_sent_twice)
{
    int port;
    pid_t ex;
    const char *env[] = {"QT_RETRY_DELAY_MS=100", "QT_BINANCE_TIMEOUT_MS=500", "QT_BINANCE_RECV_WINDOW_MS=4000", NULL};
    pid_t p = start_binance("b3", "TX_CID_SCOPE=open", env, &ex, &port);
    /* the exchange takes the order only 3 s after it came in (within its recvWindow of 4 s); the
     * executor gives up after 0.5 s and asks again 0.1 s later: too early to call it never */
    CHECK_EQ(th_http(export_, "POST", "/_test/fault?delay_ms=3000&count=1&method=POST&path=/fapi/v1/order", NULL, "", out,
                     sizeof out), 200);
    intent("b3", "f-1", "BTCUSDT", "BUY", 0.01, 42000, 0);
    json_t *r = NULL;
    for (long long end = th_now_ms() + 20000; !r && th_now_ms() < end;) r = result_of("b3", "f-1");
    CHECK_STR(js(r, "_type"), "trade.executed");
    char cid[40];
    snprintf(cid, sizeof cid, "%s", r ? js(r, "client_order_id") : "");
    json_decref(r);
    th_sleep_ms(3500); /* a second order, if one went out, is in the book by now */
    CHECK_EQ(th_http(export_, "GET", "/_test/orders", NULL, NULL, out, sizeof out), 200);
    json_t *orders = json_loads(out, 0, NULL), *o;
    size_t i, same = 0;
    json_array_foreach(json_object_get(orders, "orders"), i, o) same += strcmp(js(o, "clientOrderId"), cid) == 0;
    json_decref(orders);
    CHECK_EQ(same, 1);
    CHECK_EQ(th_http(port, "GET", "/api/v1/executor/status", NULL, NULL, out, sizeof out), 200);
    json_t *st = json_loads(out, 0, NULL), *counts = json_object_get(st, "counts");
    CHECK_EQ(json_integer_value(json_object_get(counts, "recovered_after_restart")), 1); /* the delayed order's fill, found */
    /* it waited, and asked once more only when the request was dead (bus_retry_after), not every QT_RETRY_DELAY_MS */
    long long waits = json_integer_value(json_object_get(counts, "waits_for_in_flight_orders"));
    CHECK(waits >= 1 && waits <= 2);
    json_decref(st);
    CHECK_EQ(th_xlen(rc, "b3:trade.intent:dlq"), 0);
    stop_binance(p, ex);
}

/* A MARKET order can end EXPIRED after a partial fill (not enough liquidity)
 * or with nothing filled: what filled is what is published. */
static long long exec_count(int port, const char *name)
{
    if (th_http(port, "GET", "/api/v1/executor/status", NULL, NULL, out, sizeof out) != 200) return -1;
    json_t *st = json_loads(out, 0, NULL);
    long long v = json_integer_value(json_object_get(json_object_get(st, "counts"), name));
    json_decref(st);
    return v;
}

/* An order the exchange refused (429: Binance documents a 4xx as not acted
 * on) is not in flight: the intent is ordered again as soon as the venue
 * takes calls, without the in-flight wait a 5xx (outcome unknown) gets. The
 * pause a 429 asks for is not a run of failures for the venue breaker. */
TEST(binance_an_order_the_exchange_refused_is_not_waited_for)
{
    int port;
    pid_t ex;
    /* in-flight window: 1 s + 4 x 0.5 s + 1 s = 4 s */
    const char *env[] = {"QT_RETRY_DELAY_MS=100", "QT_BINANCE_TIMEOUT_MS=500", "QT_BINANCE_RECV_WINDOW_MS=1000", NULL};
    pid_t p = start_binance("b7", NULL, env, &ex, &port);
    CHECK_EQ(th_http(export_, "POST", "/_test/fault?status=429&count=1&retry_after=1&method=POST&path=/fapi/v1/order",
                     NULL, "", out, sizeof out), 200);
    intent("b7", "r-1", "BTCUSDT", "BUY", 0.01, 42000, 0);
    json_t *r = result_of("b7", "r-1");
    CHECK_STR(js(r, "_type"), "trade.executed");
    json_decref(r);
    CHECK_EQ(exec_count(port, "orders_not_taken"), 1);
    CHECK_EQ(exec_count(port, "waits_for_in_flight_orders"), 0);
    /* the 1 s pause the exchange asked for is waited out, not tried every 100 ms: one failed call
     * for the breaker, not one per retry (ten of those in a row would open it) */
    CHECK(exec_count(port, "waits_for_rate_limit") >= 1);
    CHECK_EQ(exec_count(port, "retries"), 1);
    CHECK_EQ(th_http(export_, "POST", "/_test/fault?status=503&count=1&method=POST&path=/fapi/v1/order", NULL, "", out,
                     sizeof out), 200);
    intent("b7", "r-2", "ETHUSDT", "BUY", 0.01, 2500, 0);
    r = NULL;
    for (long long end = th_now_ms() + 15000; !r && th_now_ms() < end;) r = result_of("b7", "r-2");
    CHECK_STR(js(r, "_type"), "trade.executed");
    json_decref(r);
    CHECK(exec_count(port, "waits_for_in_flight_orders") >= 1); /* a 5xx may have been a success: waited */
    CHECK_EQ(exec_count(port, "orders_not_taken"), 1);
    CHECK_EQ(th_http(export_, "GET", "/_test/orders", NULL, NULL, out, sizeof out), 200);
    json_t *orders = json_loads(out, 0, NULL);
    CHECK_EQ(json_array_size(json_object_get(orders, "orders")), 2); /* one order per intent */
    json_decref(orders);
    CHECK_EQ(th_xlen(rc, "b7:trade.intent:dlq"), 0);
    stop_binance(p, ex);
}

TEST(binance_partial_and_empty_fills)
{
    int port;
    pid_t ex;
    const char *env[] = {"QT_RETRY_DELAY_MS=100", NULL};
    pid_t p = start_binance("b4", NULL, env, &ex, &port);
    CHECK_EQ(th_http(export_, "POST", "/_test/fault?fill_pct=50&count=1", NULL, "", out, sizeof out), 200);
    intent("b4", "p-1", "BTCUSDT", "BUY", 0.01, 42000, 0); /* 0.007 asked, half of it filled: 0.003 after the step */
    json_t *r = result_of("b4", "p-1");
    CHECK_STR(js(r, "_type"), "trade.executed");
    CHECK_NEAR(jnum(r, "qty"), 0.003, 1e-12);
    json_decref(r);
    CHECK_EQ(th_http(export_, "POST", "/_test/fault?fill_pct=0&count=1", NULL, "", out, sizeof out), 200);
    intent("b4", "p-2", "BTCUSDT", "BUY", 0.01, 42000, 0);
    r = result_of("b4", "p-2");
    CHECK_STR(js(r, "_type"), "trade.failed");
    CHECK_STR(js(r, "code"), "NOT_FILLED");
    CHECK_CONTAINS(js(r, "reason"), "ended EXPIRED with nothing filled");
    json_decref(r);
    intent("b4", "p-3", "BTCUSDT", "BUY", 0.01, 42000, 0); /* the fault is spent: a whole fill */
    r = result_of("b4", "p-3");
    CHECK_STR(js(r, "_type"), "trade.executed");
    CHECK_NEAR(jnum(r, "qty"), 0.007, 1e-12);
    json_decref(r);
    CHECK_EQ(th_xlen(rc, "b4:trade.intent:dlq"), 0);
    stop_binance(p, ex);
}

/* Binance takes a quantity only as plain decimal digits (-1100 otherwise):
 * a large one must not go out as "3e+08". */
TEST(binance_quantity_goes_out_as_plain_decimal)
{
    int port;
    pid_t ex;
    pid_t p = start_binance("b5", "TX_BALANCE=1000000", NULL, &ex, &port);
    intent("b5", "q-1", "SOLUSDT", "BUY", 0.1, 0.001, 0); /* 1000000 x 0.1 x 3 / 0.001 = 300,000,000 */
    json_t *r = result_of("b5", "q-1");
    CHECK_STR(js(r, "_type"), "trade.executed");
    CHECK_NEAR(jnum(r, "qty"), 3e8, 1e-3);
    json_decref(r);
    stop_binance(p, ex);
}

/* Binance refuses a reduce-only order without a position (-2022): the
 * position is gone, said as NO_POSITION (not retried), so the engine books
 * it closed instead of sending the exit again every bar. */
TEST(binance_an_exit_without_a_position_says_no_position)
{
    int port;
    pid_t ex;
    pid_t p = start_binance("b9", NULL, NULL, &ex, &port);
    intent("b9", "np-1", "BTCUSDT", "SELL", 0.01, 100, 2); /* reduce-only, nothing held at the exchange */
    json_t *r = result_of("b9", "np-1");
    CHECK_STR(js(r, "_type"), "trade.failed");
    CHECK_STR(js(r, "code"), "NO_POSITION");
    CHECK(json_is_false(json_object_get(r, "retryable")));
    json_decref(r);
    stop_binance(p, ex);
}

/* Replies that lack what they should hold (the exchange's answer is outside
 * input too): no crash, no wrong conclusion ("not traded", a zero balance),
 * the intent asked again and filled once. */
TEST(binance_replies_missing_their_fields_are_asked_again)
{
    int port;
    pid_t ex;
    const char *env[] = {"QT_RETRY_DELAY_MS=100", NULL};
    pid_t p = start_binance("b6", NULL, env, &ex, &port);
    const char *faults[] = {"garbage=2&method=GET&path=/fapi/v1/exchangeInfo", "garbage=1&method=GET&path=/fapi/v2/balance",
                            "garbage=1&array=1&method=GET&path=/fapi/v2/balance"};
    for (int i = 0; i < 3; i++) {
        char path[160], iid[16];
        snprintf(path, sizeof path, "/_test/fault?%s", faults[i]);
        CHECK_EQ(th_http(export_, "POST", path, NULL, "", out, sizeof out), 200);
        snprintf(iid, sizeof iid, "g-%d", i);
        intent("b6", iid, "BTCUSDT", "BUY", 0.01, 42000, 0);
        json_t *r = NULL;
        for (long long end = th_now_ms() + 15000; !r && th_now_ms() < end;) r = result_of("b6", iid);
        CHECK_STR(js(r, "_type"), "trade.executed");
        CHECK_NEAR(jnum(r, "qty"), 0.007, 1e-12);
        json_decref(r);
    }
    CHECK_EQ(th_http(export_, "GET", "/_test/orders", NULL, NULL, out, sizeof out), 200);
    json_t *orders = json_loads(out, 0, NULL);
    CHECK_EQ(json_array_size(json_object_get(orders, "orders")), 3); /* one order per intent */
    json_decref(orders);
    CHECK_EQ(th_http(port, "GET", "/health", NULL, NULL, out, sizeof out), 200);
    CHECK_EQ(th_xlen(rc, "b6:trade.intent:dlq"), 0);
    stop(p);
    /* at start the executor reconciles with the venue's positions: a list entry without its fields is reported, not a crash */
    CHECK_EQ(th_http(export_, "POST", "/_test/fault?garbage=1&array=1&method=GET&path=/fapi/v2/positionRisk", NULL, "", out,
                     sizeof out), 200);
    p = start_on_binance("b6", env, &port);
    json_t *st = NULL;
    for (long long end = th_now_ms() + 10000; th_now_ms() < end; th_sleep_ms(100)) {
        json_decref(st);
        st = th_http(port, "GET", "/api/v1/executor/status", NULL, NULL, out, sizeof out) == 200 ? json_loads(out, 0, NULL) : NULL;
        if (json_object_get(st, "reconciliation") && !json_is_null(json_object_get(st, "reconciliation"))) break;
    }
    CHECK(json_is_false(json_object_get(json_object_get(st, "reconciliation"), "checked")));
    json_decref(st);
    stop_binance(p, ex);
}

/* No call blocks the executor's loop: while one entry's order hangs 4 s at
 * the exchange, a stop-loss exit of another symbol is ordered and filled,
 * and /health answers "ok" (not "busy"). The hung order still fills, once. */
TEST(binance_an_exit_goes_out_while_an_entry_order_hangs)
{
    int port;
    pid_t ex;
    const char *env[] = {"QT_BINANCE_TIMEOUT_MS=8000", "QT_BINANCE_RECV_WINDOW_MS=10000", NULL};
    pid_t p = start_binance("h1", NULL, env, &ex, &port);
    intent("h1", "h-1", "ETHUSDT", "BUY", 0.01, 2500, 0); /* the position the exit will close */
    json_t *r = result_of("h1", "h-1");
    CHECK_STR(js(r, "_type"), "trade.executed");
    double eth = jnum(r, "qty");
    json_decref(r);
    CHECK(eth > 0);
    CHECK_EQ(th_http(export_, "POST", "/_test/fault?delay_ms=4000&count=1&method=POST&path=/fapi/v1/order", NULL, NULL,
                     NULL, 0), 200);
    long long t0 = th_now_ms();
    intent("h1", "h-2", "BTCUSDT", "BUY", 0.01, 42000, 0); /* its order hangs */
    th_sleep_ms(300);
    intent("h1", "h-3", "ETHUSDT", "SELL", 0, 2500, eth); /* the exit */
    r = result_of("h1", "h-3");
    long long exit_ms = th_now_ms() - t0;
    CHECK_STR(js(r, "_type"), "trade.executed");
    CHECK_NEAR(jnum(r, "qty"), eth, 1e-12);
    json_decref(r);
    CHECK(exit_ms < 3000); /* did not wait for the hung order */
    long n, dups, executed;
    results("h1", &n, &dups, &executed);
    CHECK_EQ(n, 2); /* h-2 is still on its way */
    CHECK_EQ(th_http(port, "GET", "/health", NULL, NULL, out, sizeof out), 200);
    CHECK_CONTAINS(out, "\"ok\"");
    CHECK(strstr(out, "busy") == NULL);
    for (long long end = th_now_ms() + 8000; th_now_ms() < end; th_sleep_ms(50)) {
        results("h1", &n, &dups, &executed);
        if (n == 3) break;
    }
    CHECK_EQ(n, 3);
    CHECK_EQ(dups, 0);
    CHECK_EQ(executed, 3);
    CHECK_EQ(th_http(export_, "GET", "/_test/orders", NULL, NULL, out, sizeof out), 200);
    json_t *orders = json_loads(out, 0, NULL);
    CHECK_EQ(json_array_size(json_object_get(orders, "orders")), 3); /* one order each */
    json_decref(orders);
    stop_binance(p, ex);
}

TEST(binance_venue_without_keys_refuses_to_start)
{
    int port, st = -1;
    const char *env[] = {"QT_VENUE=binance-futures", "QT_BINANCE_BASE_URL=http://127.0.0.1:1", NULL};
    pid_t p = start("b2", env, &port, 0);
    CHECK_EQ(th_wait(p, 10000, &st), 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    char log[300], line[1024];
    snprintf(log, sizeof log, "%s/executor-b2.log", dir);
    FILE *f = fopen(log, "r");
    int said = 0;
    while (f && fgets(line, sizeof line, f)) said |= strstr(line, "needs QT_BINANCE_API_KEY and QT_BINANCE_API_SECRET") != NULL;
    if (f) fclose(f);
    CHECK(said);
}

int main(int argc, char **argv);

__attribute__((constructor)) static void setup(void)
{
    th_watchdog(300);
    th_bin("bin/trade-executor", bin, sizeof bin);
    th_bin("tests/bin/test-exchange", exbin, sizeof exbin);
    th_tempdir(dir, sizeof dir);
    if (th_redis_start(&R, 0) < 0 || !(rc = th_redis_connect(&R))) exit(2);
}

CHECK_MAIN()
