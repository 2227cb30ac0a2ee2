/* End-to-end: the five real services on one real redis-server, a Binance
 * kline CSV replayed through the whole stack with the paper venue
 * (tests/stack.c starts them and recomputes the ledger from the events).
 *  - PRIMARY: every trade.intent has exactly one trade.executed or
 *    trade.failed; the engine's positions, realized PnL and fees equal a
 *    recomputation from the execution events to the cent; feedback reaches
 *    ml-threshold (one RSM update per closed trade) and policy-store (its
 *    risk inputs); a policy change through the API takes effect on the
 *    decisions that follow.
 *  - SHADOW records decisions and sends no intent; OFF records nothing;
 *    HYBRID falls back to the ensemble when rl-decision is stopped.
 *  - SIGKILL of each service in turn at random moments during a replay, each
 *    restarted (25 kills): nothing lost (every bar decided, every intent
 *    settled), nothing duplicated (one execution per intent, the ledger
 *    recomputes), every service ready again. Figures on stdout ("# e2e-..."). */
#include "check.h"
#include "kline.h"
#include "mlmodel.h"
#include "obs.h"
#include "stack.h"

#include <math.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static th_redis_t R;
static redisContext *rc;
static char dir[256], why[1024];

static void start(qt_stack_t *s, const char *ns, const char *feed, const char *speed, const char *mode, const char *min_conf,
                  int with_rl)
{
    s->extra[0] = NULL;
    if (stack_start(s, &R, rc, dir, ns, feed, speed, mode, min_conf, with_rl, why, sizeof why) < 0) CHECK_FAIL_AT("%s", why);
}

static void check_book(const qt_stack_t *s, stack_book_t *b)
{
    if (stack_check_book(s, b, why, sizeof why) < 0) CHECK_FAIL_AT("%s", why);
}

/* ---------- scenarios ---------- */

TEST(primary_replay_settles_every_intent_and_the_ledger_recomputes)
{
    char a[300], b2[300], feed[700];
    qt_stack_t s;
    static stack_book_t bk;
    snprintf(a, sizeof a, "%s/BTCUSDT-1m-2024-05.csv", dir);
    snprintf(b2, sizeof b2, "%s/ETHUSDT-1m-2024-05.csv", dir);
    stack_write_csv(a, 500, 0.0003, 0), stack_write_csv(b2, 500, -0.0002, 1.3);
    snprintf(feed, sizeof feed, "replay:%s,%s", a, b2);
    start(&s, "p1", feed, "0", "PRIMARY", "0.3", 1);
    CHECK_EQ(stack_settle(&s, 1000, 120000), 0);
    stack_read_book(rc, "p1", &bk);
    printf("# e2e-primary: bars=1000 intents=%d closes=%d realized=%.2f fees=%.2f\n", bk.nintent, bk.closes, bk.realized, bk.fees);
    CHECK(bk.nintent >= 2); /* it traded */
    CHECK_EQ(bk.dup_intents, 0);
    check_book(&s, &bk);
    json_t *d = stack_api(s.port[ML], "/api/v1/reinforcement/diagnostics"); /* feedback reached ml-threshold */
    CHECK_EQ(stack_jint(json_object_get(d, "diagnostics"), "total_trades_processed", NULL), bk.closes - bk.closes_without_votes);
    json_decref(d);
    d = stack_api(s.port[ML], "/api/v1/status"); /* a close without votes (an entry before the ensemble was warm) is counted apart */
    CHECK_EQ(stack_jint(json_object_get(d, "reinforcement"), "trades_without_votes", NULL), bk.closes_without_votes);
    CHECK_EQ(stack_jint(json_object_get(d, "reinforcement"), "trades_here", NULL), bk.closes);
    json_decref(d);
    json_t *t = stack_api(s.port[POLICY], "/api/v1/policy/trading"), *pp = stack_api(s.port[ENGINE], "/api/v1/positions");
    CHECK(json_is_true(json_object_get(json_object_get(t, "inputs"), "risk_known"))); /* and policy-store */
    CHECK_EQ(stack_jint(t, "inputs", "losing_streak"), stack_jint(pp, "losing_streak", NULL));
    json_decref(t), json_decref(pp);
    CHECK_EQ(stack_stop(&s), 0);
}

/* Every entry of a stream of one type, data objects in stream order (a new reference). */
static json_t *all_of(const char *key, const char *type)
{
    json_t *out = json_array();
    redisReply *r = redisCommand(rc, "XRANGE %s - +", key);
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *f = r->element[i]->element[1];
        const char *t = th_entry_field(f, "type");
        json_t *d = t && !strcmp(t, type) ? th_entry_payload(f) : NULL;
        if (d) json_array_append_new(out, d);
    }
    if (r) freeReplyObject(r);
    return out;
}

/* Issue #22, item 2: on a paced feed PRIMARY decides when the RL signal
 * arrives, and the ensemble's signal for the bar often comes after it. Its
 * votes used to be dropped as late: the intent and the position.closed
 * carried none, and ml-threshold counted the trade without learning from
 * it. Now they are attached to the entry and its position: every closed
 * position whose entry bar has an ensemble signal closes with that
 * signal's votes, the learner counts only those, and the weights move. */
TEST(a_paced_primary_run_learns_from_every_trade_with_votes)
{
    char a[300], b2[300], feed[700];
    qt_stack_t s;
    snprintf(a, sizeof a, "%s/LINKUSDT-1m-2024-05.csv", dir);
    snprintf(b2, sizeof b2, "%s/AVAXUSDT-1m-2024-05.csv", dir);
    stack_write_csv(a, 300, 0.0003, 0), stack_write_csv(b2, 300, -0.0002, 1.3);
    snprintf(feed, sizeof feed, "replay:%s,%s", a, b2);
    start(&s, "pv", feed, "3000", "PRIMARY", "0.3", 1); /* 20 ms a bar, no lockstep */
    CHECK_EQ(stack_settle(&s, 600, 120000), 0);
    json_t *intents = all_of("pv:trade.intent", "trade.intent"), *closed = all_of("pv:feedback", "position.closed");
    json_t *signals = all_of("pv:signal", "signal.generated"), *it, *c;
    size_t i, k, used[2] = {0, 0};
    long with_votes = 0, without = 0;
    json_array_foreach(intents, i, it) { /* entries in order, per symbol; each one's position closes before the next */
        if (json_is_true(json_object_get(it, "reduce_only")) || strcmp(json_string_value(json_object_get(it, "mode")), "RISK") == 0)
            continue;
        const char *sym = json_string_value(json_object_get(it, "symbol"));
        int si = strcmp(sym, "LINKUSDT") != 0;
        const json_t *pc = NULL, *sig = NULL;
        for (k = used[si]; k < json_array_size(closed) && !pc; k++)
            if (!strcmp(json_string_value(json_object_get(json_array_get(closed, k), "symbol")), sym)) pc = json_array_get(closed, k);
        if (!pc) continue; /* still open at the end */
        used[si] = k;
        json_array_foreach(signals, k, c)
            if (!strcmp(json_string_value(json_object_get(c, "symbol")), sym) &&
                json_integer_value(json_object_get(c, "open_time")) == json_integer_value(json_object_get(it, "open_time")))
                sig = c;
        if (sig) {
            with_votes++;
            CHECK(json_equal(json_object_get(pc, "model_votes"), json_object_get(sig, "model_votes")));
        } else {
            without++;
            CHECK_EQ(json_object_size(json_object_get(pc, "model_votes")), 0);
        }
    }
    json_decref(intents), json_decref(closed), json_decref(signals);
    printf("# e2e-paced-primary: %ld closed positions with the ensemble's votes, %ld without (no ensemble signal for the bar)\n",
           with_votes, without);
    CHECK(with_votes >= 3);
    json_t *st = stack_api(s.port[ENGINE], "/api/v1/status");
    printf("# e2e-paced-primary: %lld entries got their votes after the decision\n", stack_jint(st, "counts", "late_votes_attached"));
    json_decref(st);
    json_t *d = stack_api(s.port[ML], "/api/v1/status"), *w = json_object_get(json_object_get(d, "reinforcement"), "weights"), *v;
    const char *name;
    CHECK_EQ(stack_jint(json_object_get(d, "reinforcement"), "trades_processed", NULL), with_votes);
    CHECK_EQ(stack_jint(json_object_get(d, "reinforcement"), "trades_without_votes", NULL), without);
    int moved = 0;
    json_object_foreach(w, name, v) { /* from the seed's starting weights (RL_INITIAL_WEIGHTS' default) */
        double start = !strcmp(name, "mlp-returns") ? 0.30 : !strcmp(name, "softmax") ? 0.20 : 0.25;
        moved += fabs(json_number_value(v) - start) > 1e-9;
    }
    CHECK(moved > 0); /* the weights move */
    json_decref(d);
    CHECK_EQ(stack_stop(&s), 0);
}

/* Issue #21, item 2: readers accept v1. A namespace written before the
 * upgrade, its bars as legacy v1 entries (the payload in one data field),
 * goes through every consumer of the market stream (ml-threshold,
 * rl-decision, policy-store and the engine, fed by the stream), and what
 * follows it trades: every intent settles, the ledger recomputes, nothing
 * is dead-lettered; what the services write is v2. */
TEST(a_namespace_of_v1_bars_trades_through_the_whole_stack)
{
    char path[2][300], data[512];
    const char *sym[2] = {"BTCUSDT", "ETHUSDT"};
    qt_stack_t s;
    static stack_book_t bk;
    kline_t *k[2];
    long n[2], bad;
    for (int i = 0; i < 2; i++) {
        char fb[300], err[300];
        snprintf(path[i], sizeof path[i], "%s/%s-v1.csv", dir, sym[i]);
        stack_write_csv(path[i], 300, i ? -0.0002 : 0.0003, 1.3 * i);
        k[i] = kline_load_csv(path[i], &n[i], &bad, fb, sizeof fb, err, sizeof err);
        CHECK(k[i] != NULL && n[i] == 300);
    }
    start(&s, "u1", "none", "1", "PRIMARY", "0.3", 1);
    for (long b = 0; b < 300; b++)
        for (int i = 0; i < 2; i++) {
            const kline_t *x = &k[i][b];
            snprintf(data, sizeof data,
                     "{\"symbol\":\"%s\",\"interval\":\"1m\",\"open_time\":%lld,\"close_time\":%lld,\"open\":%.10g,"
                     "\"high\":%.10g,\"low\":%.10g,\"close\":%.10g,\"volume\":%.10g,\"closed\":true,\"event_time\":%lld}",
                     sym[i], (long long)x->open_time, (long long)x->close_time, x->open, x->high, x->low, x->close, x->volume,
                     (long long)x->close_time);
            CHECK_EQ(th_xadd_event(rc, "u1:market", "market.data.update", data, NULL), 0);
        }
    free(k[0]), free(k[1]);
    CHECK_EQ(stack_settle(&s, 600, 120000), 0);
    stack_read_book(rc, "u1", &bk);
    printf("# e2e-v1-namespace: 600 v1 bars -> intents=%d closes=%d\n", bk.nintent, bk.closes);
    CHECK(bk.nintent >= 2); /* it traded */
    CHECK_EQ(bk.dup_intents, 0);
    check_book(&s, &bk);
    CHECK_EQ(stack_dead(rc, "u1"), 0);
    redisReply *r = redisCommand(rc, "XRANGE u1:signal - + COUNT 1");
    CHECK(r && r->type == REDIS_REPLY_ARRAY && r->elements == 1);
    if (r && r->elements == 1) {
        CHECK_STR(th_entry_field(r->element[0]->element[1], "v"), "2");
        CHECK(th_entry_field(r->element[0]->element[1], "data") == NULL);
    }
    if (r) freeReplyObject(r);
    CHECK_EQ(stack_stop(&s), 0);
}

TEST(shadow_decides_without_intents_and_off_does_nothing)
{
    char a[300], feed[400];
    qt_stack_t s;
    snprintf(a, sizeof a, "%s/SOLUSDT-1m-2024-05.csv", dir);
    stack_write_csv(a, 200, 0.0002, 0.4);
    snprintf(feed, sizeof feed, "replay:%s", a);
    start(&s, "sh1", feed, "0", "SHADOW", "0.3", 1);
    CHECK_EQ(stack_settle(&s, 200, 60000), 0);
    json_t *l = stack_api(s.port[ENGINE], "/api/v1/rl-v3/dashboard/live-status");
    CHECK(stack_jint(l, "shadow_decisions", NULL) >= 150);
    CHECK_EQ(stack_jint(l, "trade_intents_total", NULL), 0);
    json_decref(l);
    CHECK_EQ(th_count_type(rc, "sh1:trade.intent", "trade.intent"), 0);
    CHECK_EQ(stack_stop(&s), 0);
    start(&s, "off1", feed, "0", "OFF", NULL, 1);
    CHECK_EQ(stack_settle(&s, 200, 60000), 0);
    json_t *st = stack_api(s.port[ENGINE], "/api/v1/status");
    CHECK_EQ(stack_jint(st, "counts", "decisions"), 0);
    CHECK_EQ(stack_jint(st, "counts", "intents"), 0);
    CHECK_EQ(stack_jint(st, "feed", "bars_published"), 200);
    json_decref(st);
    CHECK_EQ(stack_stop(&s), 0);
}

TEST(hybrid_falls_back_to_the_ensemble_without_rl_decision)
{
    char a[300], feed[400];
    qt_stack_t s;
    snprintf(a, sizeof a, "%s/XRPUSDT-1m-2024-05.csv", dir);
    stack_write_csv(a, 150, 0.0002, 2.0);
    snprintf(feed, sizeof feed, "replay:%s", a);
    start(&s, "hy1", feed, "0", "HYBRID", "0.3", 0); /* rl-decision never started */
    CHECK_EQ(stack_settle(&s, 150, 60000), 0);
    json_t *st = stack_api(s.port[ENGINE], "/api/v1/status");
    CHECK(json_is_true(json_object_get(json_object_get(st, "rl_signals"), "hybrid_fallback")));
    CHECK(stack_jint(st, "counts", "decisions") >= 150 - (MLM_WARMUP - 1) - 10); /* bars decided on the ensemble alone */
    json_decref(st);
    json_t *d = stack_api(s.port[ENGINE], "/api/v1/decisions?limit=1"), *last = json_array_get(json_object_get(d, "decisions"), 0);
    CHECK(json_is_null(json_object_get(last, "rl")));
    CHECK(json_is_object(json_object_get(last, "signal")));
    json_decref(d);
    CHECK_EQ(stack_stop(&s), 0);
}

TEST(a_policy_change_takes_effect_on_the_next_decisions)
{
    qt_stack_t s;
    start(&s, "pc1", "synthetic", "600", "PRIMARY", "0.2", 1); /* 10 bars/s per symbol */
    long long intents = 0;
    for (long long end = th_now_ms() + 30000; th_now_ms() < end && intents < 2; th_sleep_ms(200))
        intents = th_count_type(rc, "pc1:trade.intent", "trade.intent");
    CHECK(intents >= 2);
    CHECK_EQ(stack_put(&s, "rl_v3.live.mode", "\"SHADOW\"", why, sizeof why), 0);
    th_sleep_ms(300); /* the change event reaches the engine */
    json_t *d = stack_api(s.port[ENGINE], "/api/v1/decisions?limit=1");
    long long cut = stack_jint(json_array_get(json_object_get(d, "decisions"), 0), "event_time", NULL);
    json_decref(d);
    th_sleep_ms(3000);
    d = stack_api(s.port[ENGINE], "/api/v1/decisions?limit=100");
    size_t k, after = 0;
    json_t *v;
    json_array_foreach(json_object_get(d, "decisions"), k, v) if (stack_jint(v, "event_time", NULL) > cut)
    {
        after++;
        CHECK_STR(json_string_value(json_object_get(v, "mode")), "SHADOW");
    }
    json_decref(d);
    CHECK(after >= 20);
    /* no intent for a bar after the change (one decided before it may still
     * have been on its way to the stream when the change was made) */
    long late = 0;
    for (int i = 0; (v = th_event_data(rc, "pc1:trade.intent", "trade.intent", i)); i++) {
        late += stack_jint(v, "event_time", NULL) > cut;
        json_decref(v);
    }
    CHECK_EQ(late, 0);
    CHECK_EQ(stack_stop(&s), 0);
}

TEST(sigkill_of_every_service_during_a_replay_loses_and_duplicates_nothing)
{
    char a[300], b2[300], feed[700];
    qt_stack_t s;
    static stack_book_t bk;
    unsigned seed = (unsigned)getpid();
    snprintf(a, sizeof a, "%s/BNBUSDT-1m-2024-05.csv", dir);
    snprintf(b2, sizeof b2, "%s/ADAUSDT-1m-2024-05.csv", dir);
    stack_write_csv(a, 700, 0.0003, 0.7), stack_write_csv(b2, 700, -0.0003, 2.1);
    snprintf(feed, sizeof feed, "replay:%s,%s", a, b2);
    start(&s, "k1", feed, "900", "PRIMARY", "0.3", 1); /* 15 bars/s per symbol: ~47 s */
    int kills[STACK_NSVC] = {0}, nkills = 0;
    while (nkills < 25) {
        th_sleep_ms(1200 + (int)(rand_r(&seed) % 1200));
        int i = nkills % STACK_NSVC; /* each service in turn, at a random moment */
        th_kill(s.pid[i], SIGKILL);
        th_wait(s.pid[i], 5000, NULL);
        CHECK_EQ(stack_svc_start(&s, i, why, sizeof why), 0);
        nkills++, kills[i]++;
        if (th_xlen(rc, "k1:market") >= 1400 && nkills >= 20) break;
    }
    CHECK(nkills >= 20);
    CHECK_EQ(stack_settle(&s, 1400, 180000), 0);
    for (int i = 0; i < STACK_NSVC; i++) CHECK_EQ(th_wait_http(s.port[i], "/ready", 200, 10000), 0);
    stack_read_book(rc, "k1", &bk);
    long entries, bars = stack_distinct_ids(rc, "k1:market", NULL, &entries);
    CHECK_EQ(bars, 1400); /* every bar, across 5 engine restarts (a re-sent one keeps its id) */
    long rl_bars = stack_distinct_ids(rc, "k1:signal", "rl.signal.generated", NULL);
    /* every bar decided by rl-decision but each symbol's first 49 (its windows
     * fill); a redelivered bar may be published again, same id */
    CHECK_EQ(rl_bars, 1400 - 2 * (OBS_WARMUP - 1));
    check_book(&s, &bk);                                             /* every intent once, the ledger right */
    long dead = stack_dead(rc, "k1");
    CHECK_EQ(dead, 0);
    printf("# e2e-kills: kills=%d (engine %d, ml %d, rl %d, executor %d, policy %d) bars=%ld market_entries=%ld intents=%d "
           "duplicate_intent_entries=%d executions_per_intent=1 lost=0 duplicated=0 dead_lettered=%ld\n",
           nkills, kills[ENGINE], kills[ML], kills[RL], kills[EXEC], kills[POLICY], bars, entries, bk.nintent, bk.dup_intents, dead);
    CHECK_EQ(stack_stop(&s), 0);
}

int main(int argc, char **argv);

__attribute__((constructor)) static void setup(void)
{
    th_watchdog(900);
    th_tempdir(dir, sizeof dir);
    if (th_redis_start(&R, 0) < 0 || !(rc = th_redis_connect(&R))) exit(2);
}

CHECK_MAIN()
