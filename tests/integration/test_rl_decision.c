/* Integration tests: the real rl-decision binary on a real redis-server with
 * model files written by tests/bin/make-model (seeded weights: these tests
 * check the inference path, not the quality of a policy). */
#include "check.h"
#include "harness.h"
#include "keys.h"
#include "obs.h"
#include "proto.h"

#include <signal.h>
#include <sys/wait.h>

static th_redis_t R;
static char bin[256], mk[256], dir[256], model[300], out[65536], env_model[400];
static redisContext *rc;

/* Bars of a symbol decided on by no signal: its windows are not yet full. */
#define W (OBS_WARMUP - 1)

static void make_model(const char *path, const char *seed, const char *version)
{
    const char *argv[] = {mk, path, seed, version, NULL};
    int st = -1;
    pid_t p = th_spawn(mk, argv, NULL, NULL);
    th_wait(p, 10000, &st);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) CHECK_FAIL_AT("make-model failed");
}

static void bars(const char *ns, const char *sym, int n)
{
    char key[64], data[512];
    double p = 100;
    snprintf(key, sizeof key, "%s:market", ns);
    for (int i = 0; i < n; i++) {
        double o = p, c = p * (1 + 0.004 * sin(i * 0.9));
        long long ot = 1704067200000LL + i * 60000LL;
        snprintf(data, sizeof data,
                 "{\"symbol\":\"%s\",\"interval\":\"1m\",\"open_time\":%lld,\"open\":%.6f,\"high\":%.6f,\"low\":%.6f,"
                 "\"close\":%.6f,\"volume\":1,\"closed\":true,\"event_time\":%lld}",
                 sym, ot, o, fmax(o, c) * 1.001, fmin(o, c) * 0.999, c, ot + 59999);
        th_xadd_event(rc, key, "market.data.update", data, NULL);
        p = c;
    }
}

/* The group's pending count reaches 0 within ms (acks follow publishes). */
static int pending_drained(const char *key, int ms)
{
    for (long long end = th_now_ms() + ms; th_now_ms() < end; th_sleep_ms(50)) {
        redisReply *r = redisCommand(rc, "XPENDING %s rl-decision", key);
        int zero = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 && r->element[0]->integer == 0;
        if (r) freeReplyObject(r);
        if (zero) return 1;
    }
    return 0;
}

/* One closed BTCUSDT bar opening at ot (open 100, high 101, low 99). */
static int flat_bar(const char *key, long long ot, double close)
{
    char data[512];
    snprintf(data, sizeof data,
             "{\"symbol\":\"BTCUSDT\",\"interval\":\"1m\",\"open_time\":%lld,\"open\":100,\"high\":101,\"low\":99,"
             "\"close\":%g,\"volume\":1,\"closed\":true,\"event_time\":%lld}",
             ot, close, ot + 59999);
    return th_xadd_event(rc, key, "market.data.update", data, NULL);
}

static pid_t start(const char *ns, int *port, int wait)
{
    const char *env[] = {env_model, "QT_API_TOKEN=rl-token", NULL};
    char tag[64];
    snprintf(tag, sizeof tag, "rl-%s", ns);
    return th_service(bin, &R, ns, env, dir, tag, port, wait);
}

/* Bars i0..i1-1 of sym's price path (the one bars() writes), onto ns's
 * market stream of sym's partition in a namespace of parts partitions. */
static void bars_range_p(const char *ns, int parts, const char *sym, int i0, int i1, double drift)
{
    char key[64], data[512];
    double p = 100;
    proto_part_key(key, sizeof key, ns, QT_STREAM_MARKET, parts, proto_partition(sym, parts));
    for (int i = 0; i < i1; i++) {
        double o = p, c = p * (1 + 0.004 * sin(i * 0.9 + drift) + 0.001 * drift);
        long long ot = 1704067200000LL + i * 60000LL;
        snprintf(data, sizeof data,
                 "{\"symbol\":\"%s\",\"interval\":\"1m\",\"open_time\":%lld,\"open\":%.6f,\"high\":%.6f,\"low\":%.6f,"
                 "\"close\":%.6f,\"volume\":1,\"closed\":true,\"event_time\":%lld}",
                 sym, ot, o, fmax(o, c) * 1.001, fmin(o, c) * 0.999, c, ot + 59999);
        if (i >= i0) th_xadd_event(rc, key, "market.data.update", data, NULL);
        p = c;
    }
}

/* ... onto ns:market (one partition). */
static void bars_range(const char *ns, const char *sym, int i0, int i1, double drift)
{
    bars_range_p(ns, 1, sym, i0, i1, drift);
}

static pid_t start_kept(const char *ns, int *port)
{
    const char *env[] = {env_model, "QT_API_TOKEN=rl-token", "QT_RL_EXPLORE_IN_SHADOW=1", "QT_CHECKPOINT_MS=40", NULL};
    char tag[64];
    snprintf(tag, sizeof tag, "rl-%s", ns);
    return th_service(bin, &R, ns, env, dir, tag, port, 1);
}

/* rl-decision SIGKILLed at several moments and restarted decides every bar
 * after the restart as a run that never stopped does: same action, same
 * numbers to the last digit, exploration's random draws included (its state
 * is a checkpoint plus the entries after it read back). Before, a restart
 * began from empty windows and most later signals differed. */
TEST(a_sigkill_at_any_moment_changes_no_decision)
{
    static const char *const syms[] = {"BTCUSDT", "ETHUSDT", "SOLUSDT"};
    int port, differ = 0, from_ckpt = 0;
    char first[96] = "";
    /* the bars in five parts, the symbols interleaved */
    static const int cut[] = {0, 60, 81, 110, 131, 170};
    pid_t p = start_kept("k0", &port);
    for (int part = 0; part < 5; part++)
        for (int s = 0; s < 3; s++) bars_range("k0", syms[s], cut[part], cut[part + 1], s);
    CHECK_EQ(th_wait_xlen(rc, "k0:signal", 3 * (170 - W), 20000), 0);
    CHECK_EQ(th_stop(p, 10000), 0);
    /* the same, killed while busy with each of the first four parts */
    p = start_kept("k1", &port);
    for (int part = 0; part < 5; part++) {
        for (int s = 0; s < 3; s++) bars_range("k1", syms[s], cut[part], cut[part + 1], s);
        if (part == 4) break;
        long long want = 3LL * (cut[part] > W ? cut[part] - W : 0) + (part % 2 ? 5 : 1); /* mid-part, a few signals in */
        CHECK_EQ(th_wait_xlen(rc, "k1:signal", want, 20000), 0);
        if (part == 2) th_sleep_ms(500); /* once after a checkpoint surely covers part of it */
        th_kill(p, SIGKILL);
        th_wait(p, 5000, NULL);
        p = start_kept("k1", &port);
        CHECK_EQ(th_http(port, "GET", "/api/v1/rl/status", NULL, NULL, out, sizeof out), 200);
        if (strstr(out, "\"from_checkpoint\":true")) from_ckpt++;
    }
    CHECK(from_ckpt >= 1); /* at least once the checkpoint, not only the stream, brought it back */
    CHECK_EQ(th_group_done(rc, "k1:market", "rl-decision", 20000), 1);
    json_t *a = th_events_by_bar(rc, "k0:signal", "rl.signal.generated", &differ), *b = th_events_by_bar(rc, "k1:signal", "rl.signal.generated", &differ);
    CHECK_EQ(differ, 0);
    CHECK_EQ((long long)json_object_size(a), 3 * (170 - W));
    CHECK_EQ((long long)json_object_size(b), 3 * (170 - W));
    int n = th_events_differ(a, b, first, sizeof first);
    if (n) CHECK_FAIL_AT("%d of 363 decisions differ after the restarts, the first at %s", n, first);
    json_decref(a);
    json_decref(b);
    CHECK_EQ(th_http(port, "GET", "/api/v1/rl/status", NULL, NULL, out, sizeof out), 200);
    CHECK_CONTAINS(out, "\"decisions\":");
    CHECK_EQ(th_stop(p, 10000), 0);
}

/* With QT_PARTITIONS=1 a second replica holds no partition: it stands by
 * (/ready 200 with the note), and a SIGTERM stops it at once even when it
 * handled policy entries (the first version waited QT_DRAIN_MS for a
 * checkpoint no partition of its owed). When the replica working is
 * SIGKILLed, a standby takes the partition with its state (checkpoint +
 * replay) and decides the following bars as one process that never
 * stopped. */
TEST(a_second_replica_stands_by_and_takes_over_with_the_state)
{
    int pa, pb, differ = 0;
    char first[96] = "";
    const char *env[] = {env_model, "QT_RL_EXPLORE_IN_SHADOW=1", "QT_CHECKPOINT_MS=40", NULL};
    pid_t ref = start_kept("k10", &pa); /* the run that never stops */
    bars_range("k10", "BTCUSDT", 0, 90, 0);
    CHECK_EQ(th_wait_xlen(rc, "k10:signal", 90 - W, 20000), 0);
    CHECK_EQ(th_stop(ref, 10000), 0);
    pid_t a = start_kept("k9", &pa);
    bars_range("k9", "BTCUSDT", 0, 60, 0);
    CHECK_EQ(th_wait_xlen(rc, "k9:signal", 60 - W, 20000), 0);
    pid_t b = th_service(bin, &R, "k9", env, dir, "rl-k9-b", &pb, 1);
    CHECK_EQ(th_http(pb, "GET", "/ready", NULL, NULL, out, sizeof out), 200);
    CHECK_CONTAINS(out, "standby: this replica holds no partition");
    for (int i = 1; i <= 8; i++) { /* every replica reads every policy entry */
        char data[128];
        snprintf(data, sizeof data, "{\"key\":\"qt.test.k%d\",\"value\":%d,\"version\":%d}", i, i, i);
        th_xadd_event(rc, "k9:policy", "policy.config.updated", data, NULL);
    }
    long handled = 0;
    for (long long end = th_now_ms() + 5000; th_now_ms() < end && handled < 8; th_sleep_ms(50)) {
        const char *m = th_http(pb, "GET", "/metrics", NULL, NULL, out, sizeof out) == 200
                            ? strstr(out, "\nqt_bus_events_in_total{stream=\"k9:policy\"")
                            : NULL;
        const char *v = m ? strchr(m + 1, '}') : NULL;
        handled = v ? strtol(v + 1, NULL, 10) : 0;
    }
    CHECK_EQ(handled, 8); /* the standby handled all eight */
    long long t0 = th_now_ms();
    CHECK_EQ(th_stop(b, 10000), 0);
    long long stop_ms = th_now_ms() - t0;
    if (stop_ms > 5000) CHECK_FAIL_AT("the standby took %lld ms to stop", stop_ms);
    b = th_service(bin, &R, "k9", env, dir, "rl-k9-c", &pb, 1);
    th_kill(a, SIGKILL);
    th_wait(a, 5000, NULL);
    bars_range("k9", "BTCUSDT", 60, 90, 0);
    CHECK_EQ(th_wait_xlen(rc, "k9:signal", 90 - W, 20000), 0);
    CHECK_EQ(th_http(pb, "GET", "/api/v1/rl/status", NULL, NULL, out, sizeof out), 200);
    CHECK_CONTAINS(out, "\"from_checkpoint\":true");
    json_t *x = th_events_by_bar(rc, "k10:signal", "rl.signal.generated", &differ),
           *y = th_events_by_bar(rc, "k9:signal", "rl.signal.generated", &differ);
    CHECK_EQ(differ, 0);
    CHECK_EQ(th_events_differ(x, y, first, sizeof first), 0);
    json_decref(x);
    json_decref(y);
    CHECK_EQ(th_stop(b, 10000), 0);
}

/* With two partitions a replica joining takes one from the first, which
 * writes that partition's checkpoint before it gives the lease up: the new
 * holder replays nothing, even with checkpoints far apart
 * (QT_CHECKPOINT_MS of an hour). Before, it replayed everything since the
 * first one. */
TEST(a_partition_given_up_is_checkpointed_first)
{
    int pa, pb;
    const char *env[] = {env_model, "QT_PARTITIONS=2", "QT_LEASE_MS=900", "QT_CHECKPOINT_MS=3600000", NULL};
    pid_t a = th_service(bin, &R, "k11", env, dir, "rl-k11-a", &pa, 1);
    bars_range_p("k11", 2, "BTCUSDT", 0, 55, 0); /* partition 0 */
    bars_range_p("k11", 2, "SOLUSDT", 0, 55, 1); /* partition 1 */
    CHECK_EQ(th_wait_xlen(rc, "k11:signal:p1", 55 - W, 20000), 0); /* the first checkpoint is written by now */
    th_sleep_ms(200);
    bars_range_p("k11", 2, "BTCUSDT", 55, 60, 0);
    bars_range_p("k11", 2, "SOLUSDT", 55, 60, 1); /* the next one is due in an hour */
    CHECK_EQ(th_wait_xlen(rc, "k11:signal:p0", 60 - W, 20000), 0);
    CHECK_EQ(th_wait_xlen(rc, "k11:signal:p1", 60 - W, 20000), 0);
    pid_t b = th_service(bin, &R, "k11", env, dir, "rl-k11-b", &pb, 1);
    const char *got = NULL;
    json_t *st = NULL;
    for (long long end = th_now_ms() + 10000; th_now_ms() < end && !got; th_sleep_ms(50)) {
        json_decref(st);
        st = th_http(pb, "GET", "/api/v1/status", NULL, NULL, out, sizeof out) == 200 ? json_loads(out, 0, NULL) : NULL;
        json_t *restored = json_object_get(json_object_get(st, "partitions"), "restored");
        const char *k;
        json_t *v;
        json_object_foreach(restored, k, v) got = json_string_value(v);
    }
    CHECK(got != NULL);
    if (got) CHECK_CONTAINS(got, "checkpoint + 0 entries replayed");
    json_decref(st);
    CHECK_EQ(th_stop(b, 10000), 0);
    CHECK_EQ(th_stop(a, 10000), 0);
}

/* Replicas share the partitions, but each needs the whole policy: every
 * replica reads every entry of the policy stream (no group), so a mode
 * change reaches both at once, and a poisoned entry before it is passed
 * over (logged), not a reason to stop reading. Before, the replicas' group
 * handed the entry to one of them, and the other went on in the old mode
 * until its next read of the policy hash. */
TEST(every_replica_sees_every_policy_event)
{
    int port[2];
    const char *env[] = {env_model, NULL};
    pid_t p[2];
    for (int i = 0; i < 2; i++) {
        char tag[32];
        snprintf(tag, sizeof tag, "rl-k12-%d", i);
        p[i] = th_service(bin, &R, "k12", env, dir, tag, &port[i], 1);
        CHECK(p[i] > 0);
    }
    th_xadd_event(rc, "k12:policy", "policy.config.updated", "{\"key\":\"rl_v3.live.mode\",\"value\":\"OFF\"}", NULL);
    th_xadd_event(rc, "k12:policy", "policy.config.updated", "{\"key\":\"rl_v3.live.mode\",\"value\":\"PRIMARY\",\"version\":2}",
                  NULL);
    int seen[2] = {0, 0};
    for (long long end = th_now_ms() + 3000; th_now_ms() < end && !(seen[0] && seen[1]); th_sleep_ms(50))
        for (int i = 0; i < 2; i++)
            if (!seen[i] && th_http(port[i], "GET", "/api/v1/rl/status", NULL, NULL, out, sizeof out) == 200)
                seen[i] = strstr(out, "\"mode\":\"PRIMARY\"") != NULL;
    CHECK(seen[0]);
    CHECK(seen[1]);
    for (int i = 0; i < 2; i++) CHECK_EQ(th_stop(p[i], 10000), 0);
    char log[400];
    snprintf(log, sizeof log, "%s/rl-k12-1.log", dir);
    CHECK(th_file_has(log, "k12:policy entry ")); /* the one without its version, passed over with the reason */
    CHECK(th_file_has(log, "passed over"));
}

/* Mode OFF (seed 000): rl-decision infers and publishes nothing (it used to
 * decide every bar); its windows keep filling, so the next mode decides at
 * once, without a second warm-up. */
TEST(off_does_no_work_and_the_next_mode_decides_at_once)
{
    int port;
    const char *env[] = {env_model, NULL};
    pid_t p = th_service(bin, &R, "off", env, dir, "rl-off", &port, 1);
    th_xadd_event(rc, "off:policy", "policy.config.updated", "{\"key\":\"rl_v3.live.mode\",\"value\":\"OFF\",\"version\":2}", NULL);
    for (long long end = th_now_ms() + 3000; th_now_ms() < end; th_sleep_ms(20))
        if (th_http(port, "GET", "/api/v1/rl/status", NULL, NULL, out, sizeof out) == 200 && strstr(out, "\"mode\":\"OFF\"")) break;
    CHECK_CONTAINS(out, "\"mode\":\"OFF\"");
    bars("off", "BTCUSDT", 80);
    CHECK(pending_drained("off:market", 10000));
    CHECK_EQ(th_count_type(rc, "off:signal", "rl.signal.generated"), 0);
    CHECK_EQ(th_http(port, "GET", "/api/v1/rl/status", NULL, NULL, out, sizeof out), 200);
    CHECK_CONTAINS(out, "\"decisions\":0,");
    CHECK_CONTAINS(out, "\"bars_off\":");
    CHECK(strstr(out, "\"bars_off\":0,") == NULL);
    CHECK_CONTAINS(out, "\"count\":0}"); /* no forward pass */
    th_xadd_event(rc, "off:policy", "policy.config.updated", "{\"key\":\"rl_v3.live.mode\",\"value\":\"SHADOW\",\"version\":3}", NULL);
    for (long long end = th_now_ms() + 3000; th_now_ms() < end; th_sleep_ms(20))
        if (th_http(port, "GET", "/api/v1/rl/status", NULL, NULL, out, sizeof out) == 200 && strstr(out, "\"mode\":\"SHADOW\"")) break;
    char key[32] = "off:market", data[512];
    long long ot = 1704067200000LL + 80 * 60000LL;
    snprintf(data, sizeof data,
             "{\"symbol\":\"BTCUSDT\",\"interval\":\"1m\",\"open_time\":%lld,\"open\":100,\"high\":101,\"low\":99,"
             "\"close\":100,\"volume\":1,\"closed\":true,\"event_time\":%lld}", ot, ot + 59999);
    th_xadd_event(rc, key, "market.data.update", data, NULL);
    CHECK_EQ(th_wait_xlen(rc, "off:signal", 1, 5000), 0); /* the first bar after OFF is decided */
    CHECK_EQ(th_count_type(rc, "off:signal", "rl.signal.generated"), 1);
    CHECK_EQ(th_stop(p, 10000), 0);
}

/* A bar whose signal cannot be queued (the outbox full while Redis refuses
 * every XADD) is handed back for a retry, and its redelivery is decided as
 * if it were the first: same windows, same random draws, the signal
 * published. Before, the first try had already moved the windows and the
 * exploration's draws, and the redelivery was dropped as a duplicate: the
 * signals of the retried bars were lost and the later ones differed. */
TEST(a_bar_retried_for_a_full_outbox_is_decided_as_the_first_time)
{
    int port, differ = 0;
    char first[96] = "";
    const int n = W + 40;
    const char *env[] = {env_model, "QT_RL_EXPLORE_IN_SHADOW=1", "QT_OUTBOX_MAX=10", "QT_RETRY_DELAY_MS=200", NULL};
    bars_range("ob0", "BTCUSDT", 0, n, 0);
    bars_range("ob1", "BTCUSDT", 0, n, 0);
    pid_t p = th_service(bin, &R, "ob0", env, dir, "rl-ob0", &port, 1); /* the reference */
    CHECK_EQ(th_wait_xlen(rc, "ob0:signal", n - W, 20000), 0);
    CHECK_EQ(th_stop(p, 10000), 0);
    freeReplyObject(redisCommand(rc, "ACL SETUSER default -xadd"));
    p = th_service(bin, &R, "ob1", env, dir, "rl-ob1", &port, 0);
    char log[300];
    snprintf(log, sizeof log, "%s/rl-ob1.log", dir);
    for (long long end = th_now_ms() + 10000; th_now_ms() < end && !th_file_has(log, "outbox full"); th_sleep_ms(50)) {}
    th_sleep_ms(600); /* a few retries while it is still full */
    freeReplyObject(redisCommand(rc, "ACL SETUSER default +xadd"));
    CHECK(th_file_has(log, "outbox full"));
    CHECK_EQ(th_wait_xlen(rc, "ob1:signal", n - W, 20000), 0);
    CHECK_EQ(th_group_done(rc, "ob1:market", "rl-decision", 20000), 1);
    json_t *a = th_events_by_bar(rc, "ob0:signal", "rl.signal.generated", &differ),
           *b = th_events_by_bar(rc, "ob1:signal", "rl.signal.generated", &differ);
    CHECK_EQ(differ, 0);
    CHECK_EQ((long long)json_object_size(b), n - W);
    int d = th_events_differ(a, b, first, sizeof first);
    if (d) CHECK_FAIL_AT("%d of %d decisions differ after the retries, the first at %s", d, n - W, first);
    json_decref(a);
    json_decref(b);
    CHECK_EQ(th_stop(p, 10000), 0);
}

/* A checkpoint that is not this build's or is damaged is not loaded: the
 * service says so and rebuilds the state from the stream, deciding as a run
 * that never stopped. */
TEST(a_damaged_checkpoint_is_refused_and_the_stream_rebuilds_the_state)
{
    int port, differ = 0;
    char first[96] = "";
    pid_t p = start_kept("k2", &port);
    bars_range("k2", "BTCUSDT", 0, 80, 0);
    CHECK_EQ(th_wait_xlen(rc, "k2:signal", 80 - W, 20000), 0);
    CHECK_EQ(th_stop(p, 10000), 0);
    p = start_kept("k3", &port);
    bars_range("k3", "BTCUSDT", 0, 40, 0);
    CHECK_EQ(th_group_done(rc, "k3:market", "rl-decision", 20000), 1);
    redisReply *r = NULL;
    for (long long end = th_now_ms() + 5000; th_now_ms() < end; th_sleep_ms(50)) { /* its checkpoint covers all 40 */
        if (r) freeReplyObject(r);
        r = redisCommand(rc, "GET k3:state:rl-decision");
        if (r && r->type == REDIS_REPLY_STRING && strstr(r->str, "stream k3:market 0\n") == NULL) break;
    }
    th_kill(p, SIGKILL);
    th_wait(p, 5000, NULL);
    CHECK(r && r->type == REDIS_REPLY_STRING && strstr(r->str, "format rl-decision/p1/"));
    char *bad = r ? strndup(r->str, r->len) : NULL;
    freeReplyObject(r);
    char *state = bad ? strstr(bad, "\nstate ") : NULL;
    if (state) strcpy(state, "\nstate 3\nabc"); /* this build's format, three bytes of state */
    freeReplyObject(redisCommand(rc, "SET k3:state:rl-decision %s", bad ? bad : ""));
    free(bad);
    p = start_kept("k3", &port);
    CHECK_EQ(th_http(port, "GET", "/api/v1/rl/status", NULL, NULL, out, sizeof out), 200);
    CHECK_CONTAINS(out, "\"from_checkpoint\":false");
    CHECK_CONTAINS(out, "\"replayed\":40");
    bars_range("k3", "BTCUSDT", 40, 80, 0);
    CHECK_EQ(th_group_done(rc, "k3:market", "rl-decision", 20000), 1);
    json_t *a = th_events_by_bar(rc, "k2:signal", "rl.signal.generated", &differ), *b = th_events_by_bar(rc, "k3:signal", "rl.signal.generated", &differ);
    CHECK_EQ(th_events_differ(a, b, first, sizeof first), 0);
    json_decref(a);
    json_decref(b);
    CHECK_EQ(th_stop(p, 10000), 0);
}

/* Without its checkpoint and with the stream trimmed since, a restart
 * cannot bring the windows back: it says so (status, log) and goes on from
 * what the stream still holds. */
TEST(a_trimmed_stream_without_a_checkpoint_is_said)
{
    int port;
    pid_t p = start_kept("k4", &port);
    bars_range("k4", "BTCUSDT", 0, 60, 0);
    CHECK_EQ(th_group_done(rc, "k4:market", "rl-decision", 20000), 1);
    th_kill(p, SIGKILL);
    th_wait(p, 5000, NULL);
    freeReplyObject(redisCommand(rc, "DEL k4:state:rl-decision"));
    freeReplyObject(redisCommand(rc, "XTRIM k4:market MAXLEN 10"));
    p = start_kept("k4", &port);
    CHECK_EQ(th_http(port, "GET", "/api/v1/rl/status", NULL, NULL, out, sizeof out), 200);
    CHECK(strstr(out, "\"history_lost\":true") != NULL);
    CHECK(strstr(out, "\"replayed\":10") != NULL);
    CHECK(strstr(out, "warming up") != NULL);
    CHECK(strstr(out, "\"warming\":{\"BTCUSDT\":10}") != NULL); /* the windows fill again from the 10 left */
    bars_range("k4", "BTCUSDT", 60, 62, 0);
    CHECK_EQ(th_group_done(rc, "k4:market", "rl-decision", 20000), 1);
    CHECK_EQ(th_xlen(rc, "k4:signal"), 60 - W); /* no decision on the 12 bars it has */
    CHECK_EQ(th_stop(p, 10000), 0);
}

/* Before a symbol's windows are full (OBS_WARMUP bars) no decision is
 * published for it: a first version decided from its first bar on features
 * that were zeros. The wait is said per symbol in /api/v1/status, in
 * /ready's body (still ready) and counted in /metrics. */
TEST(no_decision_before_the_windows_are_full)
{
    int port;
    pid_t p = start("w1", &port, 1);
    bars_range("w1", "BTCUSDT", 0, 30, 0);
    bars_range("w1", "ETHUSDT", 0, 70, 1);
    CHECK_EQ(th_group_done(rc, "w1:market", "rl-decision", 20000), 1);
    CHECK_EQ(th_xlen(rc, "w1:signal"), 70 - W);
    json_t *first = th_event_data(rc, "w1:signal", "rl.signal.generated", 0);
    CHECK_STR(json_string_value(json_object_get(first, "symbol")), "ETHUSDT");
    CHECK_EQ((long long)json_integer_value(json_object_get(first, "open_time")), 1704067200000LL + W * 60000LL);
    json_decref(first);
    CHECK_EQ(th_http(port, "GET", "/api/v1/rl/status", NULL, NULL, out, sizeof out), 200);
    CHECK(strstr(out, "\"warmup\":{\"needed\":50,\"withheld\":79,\"warming\":{\"BTCUSDT\":30}}"));
    CHECK_EQ(th_http(port, "GET", "/ready", NULL, NULL, out, sizeof out), 200);
    CHECK(strstr(out, "\"warmup\":{\"ok\":true,\"note\":\"warming up, no signal yet: BTCUSDT 30/50 bars\"}"));
    CHECK_EQ(th_http(port, "GET", "/metrics", NULL, NULL, out, sizeof out), 200);
    CHECK(strstr(out, "qt_signals_withheld_total{reason=\"warming\"} 79\n"));
    CHECK(strstr(out, "qt_symbols_warming 1\n"));
    bars_range("w1", "BTCUSDT", 30, 50, 0);
    CHECK_EQ(th_wait_xlen(rc, "w1:signal", 70 - W + 1, 10000), 0); /* the 50th bar is decided */
    CHECK_EQ(th_http(port, "GET", "/ready", NULL, NULL, out, sizeof out), 200);
    CHECK(strstr(out, "\"warmup\":{\"ok\":true}"));
    CHECK_EQ(th_stop(p, 10000), 0);
}

/* Bars after the checkpoint trimmed from the stream before a restart read
 * them back: the checkpoint's windows would run across the hole. They start
 * again from what is left (warming, said and counted), the position kept. */
TEST(a_hole_after_the_checkpoint_starts_the_windows_again)
{
    int port;
    const char *env[] = {env_model, "QT_CHECKPOINT_MS=3600000", NULL};
    pid_t p = th_service(bin, &R, "k7", env, dir, "rl-k7", &port, 1);
    bars_range("k7", "BTCUSDT", 0, 60, 0);
    CHECK_EQ(th_group_done(rc, "k7:market", "rl-decision", 20000), 1);
    CHECK_EQ(th_stop(p, 10000), 0); /* its one checkpoint: after bar 60 */
    p = th_service(bin, &R, "k7", env, dir, "rl-k7", &port, 1);
    bars_range("k7", "BTCUSDT", 60, 100, 0);
    CHECK_EQ(th_group_done(rc, "k7:market", "rl-decision", 20000), 1);
    th_kill(p, SIGKILL); /* bars 61-100 handled, no checkpoint of them */
    th_wait(p, 5000, NULL);
    long long before = th_xlen(rc, "k7:signal");
    CHECK_EQ(before, 100 - W);
    freeReplyObject(redisCommand(rc, "XTRIM k7:market MAXLEN 20"));
    p = th_service(bin, &R, "k7", env, dir, "rl-k7", &port, 1);
    CHECK_EQ(th_http(port, "GET", "/api/v1/rl/status", NULL, NULL, out, sizeof out), 200);
    CHECK(strstr(out, "\"from_checkpoint\":true"));
    CHECK(strstr(out, "\"history_lost\":true"));
    CHECK(strstr(out, "\"warming\":{\"BTCUSDT\":20}"));
    bars_range("k7", "BTCUSDT", 100, 129, 0);
    CHECK_EQ(th_group_done(rc, "k7:market", "rl-decision", 20000), 1);
    CHECK_EQ(th_xlen(rc, "k7:signal"), before); /* 49 bars in the new windows: nothing decided */
    bars_range("k7", "BTCUSDT", 129, 131, 0);
    CHECK_EQ(th_wait_xlen(rc, "k7:signal", before + 2, 10000), 0);
    CHECK_EQ(th_http(port, "GET", "/metrics", NULL, NULL, out, sizeof out), 200);
    CHECK(strstr(out, "qt_state_history_lost_total 1\n"));
    CHECK_EQ(th_stop(p, 10000), 0);
}

/* Started while Redis is away, a service that keeps state waits on its loop
 * for Redis to restore it: /ready says why, and SIGTERM stops it at once
 * (a first version of the restore slept in a loop that nothing could stop). */
TEST(started_while_redis_is_away_it_says_why_and_still_stops)
{
    th_redis_t gone = {0};
    int port;
    gone.port = th_free_port();
    snprintf(gone.url, sizeof gone.url, "redis://127.0.0.1:%d/0", gone.port); /* nothing listens there */
    const char *env[] = {env_model, NULL};
    pid_t p = th_service(bin, &gone, "k5", env, dir, "rl-k5", &port, 0);
    CHECK_EQ(th_wait_http(port, "/ready", 503, 10000), 0);
    CHECK_EQ(th_http(port, "GET", "/ready", NULL, NULL, out, sizeof out), 503);
    CHECK(strstr(out, "checking the namespace's partitions: cannot connect to redis") != NULL);
    CHECK_EQ(th_stop(p, 5000), 0);
}

/* Redis refusing a read the restore needs (here XPENDING, as an ACL could)
 * is not taken for "nothing pending": the service waits, says why in
 * /ready, and starts once the read is allowed. */
TEST(a_refused_start_up_read_is_waited_out_not_taken_for_nothing)
{
    int port;
    const char *env[] = {env_model, NULL};
    bars_range("k6", "BTCUSDT", 0, 5 + W, 0);
    freeReplyObject(redisCommand(rc, "XGROUP CREATE k6:market rl-decision 0 MKSTREAM"));
    freeReplyObject(redisCommand(rc, "ACL SETUSER default -xpending"));
    pid_t p = th_service(bin, &R, "k6", env, dir, "rl-k6", &port, 0);
    CHECK_EQ(th_wait_http(port, "/ready", 503, 10000), 0);
    th_sleep_ms(1500);
    CHECK_EQ(th_http(port, "GET", "/ready", NULL, NULL, out, sizeof out), 503);
    CHECK(strstr(out, "restoring state: ") != NULL); /* its partition's, taken by lease */
    CHECK(strstr(out, "Redis failed or refused a read of the state") != NULL);
    freeReplyObject(redisCommand(rc, "ACL SETUSER default +xpending"));
    CHECK_EQ(th_wait_http(port, "/ready", 200, 10000), 0);
    CHECK_EQ(th_wait_xlen(rc, "k6:signal", 5, 10000), 0);
    CHECK_EQ(th_stop(p, 5000), 0);
}

/* A namespace keeps the QT_PARTITIONS it was created with (DESIGN §2a): a
 * process with another count would read and write streams nobody else
 * does, so it is refused at start with the namespace's count and the way
 * out; one with the same count starts. A namespace written before
 * partitions existed (its streams, no record) counts as one partition. */
TEST(a_start_with_another_partition_count_than_the_namespace_is_refused)
{
    int port, st = -1;
    char log[400];
    const char *four[] = {env_model, "QT_PARTITIONS=4", NULL}, *one[] = {env_model, NULL},
               *two[] = {env_model, "QT_PARTITIONS=2", NULL};
    bars("pa", "BTCUSDT", 3); /* written as before partitions: pa:market, no pa:meta */
    pid_t p = th_service(bin, &R, "pa", four, dir, "rl-pa4", &port, 0);
    CHECK_EQ(th_wait(p, 10000, &st), 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    snprintf(log, sizeof log, "%s/rl-pa4.log", dir);
    CHECK(th_file_has(log, "namespace 'pa' was created with QT_PARTITIONS=1 (pa:meta) and this process has QT_PARTITIONS=4"));
    CHECK(th_file_has(log, "docs/operations.md#symbol-partitions"));
    p = th_service(bin, &R, "pa", one, dir, "rl-pa1", &port, 1);
    CHECK(p > 0);
    CHECK_EQ(th_wait_xlen(rc, "pa:signal", 0, 1000), 0);
    CHECK_EQ(th_stop(p, 5000), 0);
    redisReply *r = redisCommand(rc, "HGET pa:meta partitions");
    CHECK(r && r->type == REDIS_REPLY_STRING && strcmp(r->str, "1") == 0);
    freeReplyObject(r);
    /* a new namespace takes the count of its first process */
    p = th_service(bin, &R, "pb", four, dir, "rl-pb4", &port, 1);
    CHECK(p > 0);
    CHECK_EQ(th_stop(p, 5000), 0);
    p = th_service(bin, &R, "pb", two, dir, "rl-pb2", &port, 0);
    CHECK_EQ(th_wait(p, 10000, &st), 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    snprintf(log, sizeof log, "%s/rl-pb2.log", dir);
    CHECK(th_file_has(log, "created with QT_PARTITIONS=4 (pb:meta) and this process has QT_PARTITIONS=2"));
    /* a damaged record is said, not taken for a count */
    freeReplyObject(redisCommand(rc, "HSET pb:meta partitions 4x"));
    p = th_service(bin, &R, "pb", four, dir, "rl-pbx", &port, 0);
    CHECK_EQ(th_wait(p, 10000, &st), 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    snprintf(log, sizeof log, "%s/rl-pbx.log", dir);
    CHECK(th_file_has(log, "pb:meta holds partitions='4x', not a count from 1 to 16"));
}

TEST(refuses_to_start_without_a_model)
{
    int port, st = -1;
    const char *env[] = {"QT_RL_MODEL=/nonexistent/ppo.bin", NULL};
    pid_t p = th_service(bin, &R, "n0", env, dir, "rl-n0", &port, 0);
    CHECK_EQ(th_wait(p, 10000, &st), 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2);
}

TEST(one_signal_per_bar_deterministic)
{
    int port;
    char err[256];
    pid_t p = start("d1", &port, 1);
    bars("d1", "BTCUSDT", 40 + W);
    CHECK_EQ(th_wait_xlen(rc, "d1:signal", 40, 10000), 0);
    for (int i = 0; i < 40; i += 13) {
        json_t *s = th_event_data(rc, "d1:signal", "rl.signal.generated", i);
        CHECK_EQ(proto_validate("rl.signal.generated", 1, s, err, sizeof err), 0);
        CHECK_STR(json_string_value(json_object_get(s, "model_version")), "fixture-1");
        CHECK(json_is_false(json_object_get(s, "exploring"))); /* SHADOW: no exploration */
        const json_t *probs = json_object_get(s, "probs");
        double best = 0;
        for (size_t k = 0; k < 6; k++) best = fmax(best, json_number_value(json_array_get(probs, k)));
        CHECK_NEAR(json_number_value(json_object_get(s, "confidence")), best, 1e-6); /* the argmax's probability */
        json_decref(s);
    }
    CHECK_EQ(th_http(port, "GET", "/api/v1/rl/status", NULL, NULL, out, sizeof out), 200);
    CHECK_CONTAINS(out, "\"decisions\":40");
    CHECK(strstr(out, "\"warmup\":{\"needed\":50,\"withheld\":49,\"warming\":{}}"));
    CHECK_CONTAINS(out, "\"exploration_rate\":0.1");
    CHECK_EQ(th_stop(p, 10000), 0);
    p = start("d2", &port, 1); /* the same bars, the same model: the same signals */
    bars("d2", "BTCUSDT", 40 + W);
    CHECK_EQ(th_wait_xlen(rc, "d2:signal", 40, 10000), 0);
    for (int i = 0; i < 40; i++) {
        json_t *a = th_event_data(rc, "d1:signal", "rl.signal.generated", i), *b = th_event_data(rc, "d2:signal", "rl.signal.generated", i);
        CHECK(json_equal(json_object_get(a, "probs"), json_object_get(b, "probs")));
        CHECK(json_equal(json_object_get(a, "action"), json_object_get(b, "action")));
        json_decref(a);
        json_decref(b);
    }
    CHECK_EQ(th_stop(p, 10000), 0);
}

/* One valid bar dated a year ahead silenced the symbol: every real bar after
 * it was taken for old and acked without a signal. It is dead-lettered with
 * its reason, and the symbol carries on. */
TEST(a_future_dated_bar_does_not_silence_the_symbol)
{
    int port;
    pid_t p = start("fu", &port, 1);
    bars("fu", "BTCUSDT", 20 + W);
    CHECK_EQ(th_wait_xlen(rc, "fu:signal", 20, 10000), 0);
    long long ot = th_wall_ms() + 365LL * 86400000LL;
    CHECK_EQ(flat_bar("fu:market", ot, 100), 0);
    CHECK_EQ(th_wait_xlen(rc, "fu:market:dlq", 1, 10000), 0);
    /* the next real bars (continuing where the first 20 ended) */
    for (int i = 20 + W; i < 30 + W; i++) {
        long long t = 1704067200000LL + i * 60000LL;
        flat_bar("fu:market", t, 100.5);
    }
    CHECK_EQ(th_wait_xlen(rc, "fu:signal", 30, 10000), 0);
    CHECK_EQ(th_xlen(rc, "fu:signal"), 30); /* none for the future bar */
    CHECK_EQ(th_stop(p, 10000), 0);
}

/* A replay of 2024 with one bar of today (behind the clock, so not "in the
 * future"): the symbol's clock leapt to today and every later 2024 bar was
 * taken for old. The leap is dead-lettered with its reason. */
TEST(one_bar_far_ahead_of_the_stream_does_not_move_the_symbol)
{
    int port;
    pid_t p = start("lp", &port, 1);
    bars("lp", "BTCUSDT", 20 + W);
    CHECK_EQ(th_wait_xlen(rc, "lp:signal", 20, 10000), 0);
    long long ot = (th_wall_ms() - 3600000LL) / 60000 * 60000;
    CHECK_EQ(flat_bar("lp:market", ot, 100), 0);
    CHECK_EQ(th_wait_xlen(rc, "lp:market:dlq", 1, 10000), 0);
    redisReply *r = redisCommand(rc, "XRANGE lp:market:dlq - +");
    const char *why = "";
    for (size_t i = 0; r && r->elements == 1 && i + 1 < r->element[0]->element[1]->elements; i += 2)
        if (strcmp(r->element[0]->element[1]->element[i]->str, "error") == 0)
            why = r->element[0]->element[1]->element[i + 1]->str;
    CHECK_CONTAINS(why, "QT_MAX_TIME_JUMP_MS");
    freeReplyObject(r);
    for (int i = 20 + W; i < 30 + W; i++) { /* the replay goes on */
        long long t = 1704067200000LL + i * 60000LL;
        flat_bar("lp:market", t, 100.5);
    }
    CHECK_EQ(th_wait_xlen(rc, "lp:signal", 30, 10000), 0);
    CHECK_EQ(th_xlen(rc, "lp:signal"), 30);
    CHECK_EQ(th_stop(p, 10000), 0);
}

/* One 40 MB entry was read whole by every consumer (twice its size in
 * memory, OOM-killed under the shipped 128 Mi limit, at every restart, and
 * never dead-lettered). A read now stops at QT_MAX_READ_BYTES and the entry
 * is dead-lettered in Redis unread; the bars around it are decided in order. */
TEST(a_40mb_entry_is_dead_lettered_without_being_read)
{
    int port;
    const char *env[] = {env_model, "QT_MAX_READ_BYTES=4194304", "QT_MAX_ENTRY_BYTES=1048576", NULL};
    pid_t p = th_service(bin, &R, "big", env, dir, "rl-big", &port, 1);
    bars("big", "BTCUSDT", 20 + W);
    CHECK_EQ(th_wait_xlen(rc, "big:signal", 20, 10000), 0);
    long before = th_peak_rss_kb(p);
    size_t n = 40u << 20;
    char *huge = malloc(n);
    memset(huge, 'x', n);
    redisReply *r = redisCommand(rc, "XADD big:market * type market.data.update v 1 data %b", huge, n);
    CHECK(r && r->type == REDIS_REPLY_STRING);
    freeReplyObject(r);
    free(huge);
    for (int i = 20 + W; i < 30 + W; i++) { /* the next real bars */
        long long t = 1704067200000LL + i * 60000LL;
        flat_bar("big:market", t, 100.5);
    }
    CHECK_EQ(th_wait_xlen(rc, "big:market:dlq", 1, 20000), 0);
    CHECK_EQ(th_wait_xlen(rc, "big:signal", 30, 20000), 0);
    CHECK_EQ(th_xlen(rc, "big:signal"), 30);
    long after = th_peak_rss_kb(p);
    CHECK(before > 0 && after > 0);
    CHECK(after - before < 32 * 1024); /* the bound (4 MiB) and buffers (more under ASan), not the 40 MB */
    r = redisCommand(rc, "XRANGE big:market:dlq - +");
    CHECK(r && r->type == REDIS_REPLY_ARRAY && r->elements == 1);
    const redisReply *f = r->element[0]->element[1];
    size_t total = 0;
    const char *why = "";
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        total += f->element[i]->len + f->element[i + 1]->len;
        if (strcmp(f->element[i]->str, "error") == 0 && f->element[i + 1]->len < 1000) why = f->element[i + 1]->str;
        if (strcmp(f->element[i]->str, "data") == 0) /* a note of its size, not the data */
            CHECK(f->element[i + 1]->len < 100 && strstr(f->element[i + 1]->str, "not kept: 41943040 bytes"));
    }
    CHECK(total < 4096);
    CHECK_CONTAINS(why, "entry of 41943068 bytes is larger than QT_MAX_ENTRY_BYTES=1048576");
    freeReplyObject(r);
    CHECK(pending_drained("big:market", 10000)); /* every entry acked, the dead-lettered ones too */
    CHECK_EQ(th_stop(p, 10000), 0);
}

/* Entries each under QT_MAX_ENTRY_BYTES but together over QT_MAX_READ_BYTES:
 * the read that would hold them all is dropped, and they are read one at a
 * time (here each is dead-lettered for what it holds), the bars after them
 * decided. */
TEST(a_batch_over_the_read_bound_is_read_one_entry_at_a_time)
{
    int port;
    const char *env[] = {env_model, "QT_MAX_READ_BYTES=4194304", "QT_MAX_ENTRY_BYTES=1048576", NULL};
    pid_t p = th_service(bin, &R, "bat", env, dir, "rl-bat", &port, 1);
    th_kill(p, SIGSTOP); /* so that all of them come in one read */
    size_t n = 700u << 10;
    char *big = malloc(n);
    memset(big, 'y', n);
    for (int i = 0; i < 10; i++) {
        redisReply *r = redisCommand(rc, "XADD bat:market * type market.data.update v 1 pad %b", big, n);
        CHECK(r && r->type == REDIS_REPLY_STRING);
        freeReplyObject(r);
    }
    free(big);
    bars("bat", "BTCUSDT", 10 + W);
    th_kill(p, SIGCONT);
    CHECK_EQ(th_wait_xlen(rc, "bat:market:dlq", 10, 20000), 0);
    CHECK_EQ(th_wait_xlen(rc, "bat:signal", 10, 20000), 0);
    CHECK(pending_drained("bat:market", 10000)); /* every entry acked, the dead-lettered ones too */
    CHECK_EQ(th_http(port, "GET", "/metrics", NULL, NULL, out, sizeof out), 200);
    const char *dropped = strstr(out, "qt_bus_redis_replies_dropped_total{link=\"read\"} ");
    CHECK(dropped && atol(dropped + strlen("qt_bus_redis_replies_dropped_total{link=\"read\"} ")) >= 1);
    CHECK_EQ(th_stop(p, 10000), 0);
}

TEST(reload_keeps_the_old_model_when_the_new_one_is_bad)
{
    int port;
    pid_t p = start("r1", &port, 1);
    FILE *f = fopen(model, "r+b"); /* damage the file under the running service */
    fseek(f, 1000, SEEK_SET);
    fputc(0x77, f);
    fclose(f);
    CHECK_EQ(th_http(port, "POST", "/api/v1/rl/reload", NULL, NULL, out, sizeof out), 401);
    CHECK_EQ(th_http(port, "POST", "/api/v1/rl/reload", "Authorization: Bearer rl-token\r\n", NULL, out, sizeof out), 422);
    CHECK_CONTAINS(out, "still using fixture-1");
    CHECK_CONTAINS(out, "checksum mismatch");
    make_model(model, "99", "fixture-2");
    CHECK_EQ(th_http(port, "POST", "/api/v1/rl/reload", "Authorization: Bearer rl-token\r\n", NULL, out, sizeof out), 200);
    CHECK_CONTAINS(out, "\"model_version\":\"fixture-2\"");
    make_model(model, "5", "fixture-3");
    th_kill(p, SIGHUP); /* SIGHUP reloads too */
    int ok = 0;
    for (long long end = th_now_ms() + 5000; th_now_ms() < end && !ok; th_sleep_ms(50))
        ok = th_http(port, "GET", "/api/v1/rl/status", NULL, NULL, out, sizeof out) == 200 && strstr(out, "fixture-3");
    CHECK(ok);
    bars("r1", "ETHUSDT", 3 + W); /* still deciding, with the new model */
    CHECK_EQ(th_wait_xlen(rc, "r1:signal", 3, 5000), 0);
    json_t *s = th_event_data(rc, "r1:signal", "rl.signal.generated", -1);
    CHECK_STR(json_string_value(json_object_get(s, "model_version")), "fixture-3");
    json_decref(s);
    CHECK_EQ(th_stop(p, 10000), 0);
    make_model(model, "1", "fixture-1");
}

TEST(experience_is_recorded_on_close)
{
    int port;
    char err[256];
    pid_t p = start("x1", &port, 1);
    bars("x1", "SOLUSDT", 30 + W);
    CHECK_EQ(th_wait_xlen(rc, "x1:signal", 30, 10000), 0);
    th_xadd_event(rc, "x1:feedback", "position.opened",
                  "{\"symbol\":\"SOLUSDT\",\"side\":\"LONG\",\"qty\":1,\"entry_price\":100,\"leverage\":3,\"confidence\":0.7,"
                  "\"regime\":\"TRENDING\",\"model_votes\":{},\"event_time\":1704069000000}", NULL);
    th_xadd_event(rc, "x1:feedback", "position.closed",
                  "{\"symbol\":\"SOLUSDT\",\"side\":\"LONG\",\"qty\":1,\"entry_price\":100,\"exit_price\":102,\"pnl\":2,"
                  "\"pnl_pct\":2.0,\"duration_s\":600,\"confidence\":0.7,\"regime\":\"TRENDING\",\"model_votes\":{},"
                  "\"event_time\":1704069600000}", NULL);
    CHECK_EQ(th_wait_xlen(rc, "x1:rl.experience", 1, 5000), 0);
    json_t *e = th_event_data(rc, "x1:rl.experience", "rl.experience", 0);
    CHECK_EQ(proto_validate("rl.experience", 1, e, err, sizeof err), 0);
    CHECK_NEAR(json_number_value(json_object_get(e, "reward")), 2.0, 1e-12);
    CHECK_EQ(json_array_size(json_object_get(e, "obs")), 64);
    json_decref(e);
    CHECK_EQ(th_stop(p, 10000), 0);
}

TEST(end_to_end_on_a_replay_with_the_shipped_model)
{
    char csv[300], feed[400], engine[256];
    int eport, rport;
    snprintf(csv, sizeof csv, "%s/BTCUSDT-1m-2024-04.csv", dir);
    FILE *f = fopen(csv, "w");
    double p = 100;
    for (int i = 0; i < 120 + W; i++) {
        double c = p * (1 + 0.003 * sin(i * 0.31) + 0.0005);
        long long t = 1711929600000LL + i * 60000LL;
        fprintf(f, "%lld,%.4f,%.4f,%.4f,%.4f,3,%lld,0,0,0,0,0\n", t, p, fmax(p, c) * 1.001, fmin(p, c) * 0.999, c, t + 59999);
        p = c;
    }
    fclose(f);
    snprintf(feed, sizeof feed, "QT_FEED=replay:%s", csv);
    th_bin("bin/trading-engine", engine, sizeof engine);
    const char *renv[] = {"QT_RL_MODEL=models/ppo-default.bin", NULL}, *eenv[] = {feed, NULL};
    pid_t r = th_service(bin, &R, "e2e", renv, dir, "rl-e2e", &rport, 1); /* the shipped model */
    pid_t e = th_service(engine, &R, "e2e", eenv, dir, "engine-e2e", &eport, 1);
    int ok = 0; /* every replayed bar comes back as an RL signal and a SHADOW decision */
    for (long long end = th_now_ms() + 20000; th_now_ms() < end && !ok; th_sleep_ms(100))
        ok = th_http(eport, "GET", "/api/v1/rl-v3/dashboard/live-status", NULL, NULL, out, sizeof out) == 200 &&
             strstr(out, "\"shadow_decisions\":120");
    CHECK(ok);
    CHECK_CONTAINS(out, "\"trade_intents_total\":0");
    CHECK_EQ(th_xlen(rc, "e2e:signal"), 120);
    json_t *sig = th_event_data(rc, "e2e:signal", "rl.signal.generated", 119);
    CHECK_STR(json_string_value(json_object_get(sig, "model_version")), "ppo-synth-s42-i150");
    json_decref(sig);
    CHECK_EQ(th_http(eport, "GET", "/api/v1/decisions?limit=1", NULL, NULL, out, sizeof out), 200);
    CHECK_CONTAINS(out, "\"rl\":{\"action\":");
    CHECK_EQ(th_stop(e, 10000), 0);
    CHECK_EQ(th_stop(r, 10000), 0);
}

int main(int argc, char **argv);

__attribute__((constructor)) static void setup(void)
{
    th_watchdog(200);
    th_bin("bin/rl-decision", bin, sizeof bin);
    th_bin("tests/bin/make-model", mk, sizeof mk);
    th_tempdir(dir, sizeof dir);
    snprintf(model, sizeof model, "%s/ppo.bin", dir);
    snprintf(env_model, sizeof env_model, "QT_RL_MODEL=%s", model);
    if (th_redis_start(&R, 0) < 0 || !(rc = th_redis_connect(&R))) exit(2);
    make_model(model, "1", "fixture-1");
}

CHECK_MAIN()
