/* Integration tests: the real ml-threshold binary on a real redis-server
 * with the shipped member files: one signal per bar combined as the seed's
 * predict_with_rl, external votes and their window, learning from closed
 * trades once per trade, thresholds adapting on event time, the shared state
 * across SIGKILL, restarts and two replicas, and the API's auth. */
#include "check.h"
#include "harness.h"
#include "mlmodel.h"
#include "proto.h"

#include <math.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define AUTH "Authorization: Bearer ml-token\r\n"

static th_redis_t R;
static char bin[256], dir[256], out[65536];
static redisContext *rc;

/* Bars of a symbol given no signal: the members' windows are not yet full. */
#define W (MLM_WARMUP - 1)

/* Bars from..from+n-1 of a symbol, bar i opening at base + i minutes, as
 * v2 entries (flat) or legacy v1 ones. */
static void bars_at(const char *ns, const char *sym, long long base, int from, int n, int flat)
{
    char key[64], data[512];
    snprintf(key, sizeof key, "%s:market", ns);
    for (int i = from; i < from + n; i++) {
        double o = 100 * (1 + 0.01 * sin(i * 0.05)), c = 100 * (1 + 0.01 * sin((i + 1) * 0.05));
        long long ot = base + i * 60000LL;
        snprintf(data, sizeof data,
                 "{\"symbol\":\"%s\",\"interval\":\"1m\",\"open_time\":%lld,\"open\":%.6f,\"high\":%.6f,\"low\":%.6f,"
                 "\"close\":%.6f,\"volume\":1,\"closed\":true,\"event_time\":%lld}",
                 sym, ot, o, fmax(o, c) * 1.0005, fmin(o, c) * 0.9995, c, ot + 59999);
        (flat ? th_xadd_flat : th_xadd_event)(rc, key, "market.data.update", data, NULL);
    }
}

static void bars(const char *ns, const char *sym, int from, int n) { bars_at(ns, sym, 1704067200000LL, from, n, 0); }

/* A closed trade as the trading-engine publishes it: position.closed, then
 * the outcome of the same close (same trace). */
static void trade(const char *ns, const char *trace, const char *side, double pnl_pct, long long event_time,
                  const char *votes, int with_outcome)
{
    char key[64], data[1024], id[96];
    snprintf(key, sizeof key, "%s:feedback", ns);
    snprintf(data, sizeof data,
             "{\"symbol\":\"BTCUSDT\",\"side\":\"%s\",\"qty\":1,\"entry_price\":100,\"exit_price\":101,\"pnl\":%g,"
             "\"pnl_pct\":%g,\"duration_s\":60,\"confidence\":0.7,\"regime\":\"TRENDING\",\"model_votes\":%s,"
             "\"event_time\":%lld}",
             side, pnl_pct, pnl_pct, votes, event_time);
    snprintf(id, sizeof id, "pc-%s", trace);
    redisReply *r = redisCommand(rc, "XADD %s * id %s type position.closed v 1 ts 1764547200000 source test trace %s data %s", key, id, trace, data);
    freeReplyObject(r);
    if (!with_outcome) return;
    snprintf(data, sizeof data,
             "{\"symbol\":\"BTCUSDT\",\"action\":\"%s\",\"confidence\":0.7,\"pnl\":%g,\"pnl_pct\":%g,\"model_votes\":%s,"
             "\"regime\":\"TRENDING\",\"event_time\":%lld}",
             side, pnl_pct, pnl_pct, votes, event_time);
    snprintf(id, sizeof id, "oc-%s", trace);
    r = redisCommand(rc, "XADD %s * id %s type feedback.prediction.outcome v 1 ts 1764547200000 source test trace %s data %s", key, id, trace, data);
    freeReplyObject(r);
}

static pid_t start(const char *ns, const char *const *extra, int *port)
{
    const char *env[12] = {"QT_API_TOKEN=ml-token"};
    char tag[64];
    int n = 1;
    for (int i = 0; extra && extra[i] && n < 11; i++) env[n++] = extra[i];
    env[n] = NULL;
    snprintf(tag, sizeof tag, "ml-%s-%d", ns, *port);
    return th_service(bin, &R, ns, env, dir, tag, port, 1);
}

static double json_path_num(const char *path1, const char *path2)
{
    json_t *j = json_loads(out, 0, NULL);
    json_t *v = json_object_get(json_object_get(j, path1), path2);
    double d = json_is_number(v) ? json_number_value(v) : NAN;
    json_decref(j);
    return d;
}

/* The seed's starting weight of a shipped member (learner.c). */
static double seed_weight(const char *name)
{
    return !strcmp(name, "mlp-returns") ? 0.30 : !strcmp(name, "softmax") ? 0.20 : 0.25;
}

/* Wait until GET path's body contains needle. */
static int wait_body(int port, const char *path, const char *needle, int ms)
{
    for (long long end = th_now_ms() + ms; th_now_ms() < end; th_sleep_ms(50))
        if (th_http(port, "GET", path, NULL, NULL, out, sizeof out) == 200 && strstr(out, needle)) return 1;
    return 0;
}

TEST(bad_member_files_are_refused_with_the_reason)
{
    char bad[300], env[400], log[300], text[4096] = "";
    int port = 0, st = -1;
    snprintf(bad, sizeof bad, "%s/damaged.bin", dir);
    FILE *in = fopen("models/ml/softmax.bin", "rb"), *o = fopen(bad, "wb");
    unsigned char buf[8192];
    size_t n = fread(buf, 1, sizeof buf, in);
    buf[200] ^= 0x40;
    fwrite(buf, 1, n, o);
    fclose(in), fclose(o);
    snprintf(env, sizeof env, "QT_ML_MODELS=models/ml/gbdt-deep.bin,%s", bad);
    const char *e1[] = {env, NULL};
    pid_t p = th_service(bin, &R, "bad1", e1, dir, "ml-bad1", &port, 0);
    CHECK_EQ(th_wait(p, 10000, &st), 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    snprintf(log, sizeof log, "%s/ml-bad1.log", dir);
    FILE *f = fopen(log, "r");
    text[fread(text, 1, sizeof text - 1, f)] = 0;
    fclose(f);
    CHECK_CONTAINS(text, "damaged.bin: checksum mismatch");
    o = fopen(bad, "wb"); /* a file of a future format version */
    buf[200] ^= 0x40, buf[8] = 2;
    fwrite(buf, 1, n, o);
    fclose(o);
    p = th_service(bin, &R, "bad2", e1, dir, "ml-bad2", &port, 0);
    CHECK_EQ(th_wait(p, 10000, &st), 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    snprintf(log, sizeof log, "%s/ml-bad2.log", dir);
    f = fopen(log, "r");
    text[fread(text, 1, sizeof text - 1, f)] = 0;
    fclose(f);
    CHECK_CONTAINS(text, "format version 2 is not supported");
}

TEST(one_signal_per_bar_is_the_weighted_vote)
{
    int port = 0;
    char err[256];
    pid_t p = start("s1", NULL, &port);
    bars("s1", "BTCUSDT", 0, 90);
    CHECK_EQ(th_wait_xlen(rc, "s1:signal", 90 - W, 15000), 0);
    CHECK_EQ(th_group_done(rc, "s1:market", "ml-threshold", 10000), 1);
    CHECK_EQ(th_count_type(rc, "s1:signal", "signal.generated"), 90 - W); /* none while the windows fill */
    int explored = 0;
    for (int i = W; i < 90; i++) {
        json_t *s = th_event_data(rc, "s1:signal", "signal.generated", i - W), *votes = json_object_get(s, "model_votes"), *v;
        const char *name;
        double score[3] = {0};
        CHECK_EQ(proto_validate("signal.generated", 1, s, err, sizeof err), 0);
        CHECK_EQ(json_integer_value(json_object_get(s, "open_time")), 1704067200000LL + i * 60000LL);
        CHECK_EQ(json_object_size(votes), 4);
        json_object_foreach(votes, name, v)
        { /* no trade yet: scalers are 1, weights the seed's (0.25 each when exploring) */
            const char *a = json_string_value(json_object_get(v, "action"));
            double w = json_number_value(json_object_get(json_object_get(s, "weights"), name));
            CHECK_NEAR(w, json_is_true(json_object_get(s, "exploring")) ? 0.25 : seed_weight(name), 1e-12);
            score[strcmp(a, "LONG") == 0 ? 0 : strcmp(a, "SHORT") == 0 ? 1 : 2] += w * json_number_value(json_object_get(v, "confidence"));
        }
        const char *act = json_string_value(json_object_get(s, "action"));
        int k = strcmp(act, "LONG") == 0 ? 0 : strcmp(act, "SHORT") == 0 ? 1 : 2;
        CHECK_NEAR(json_number_value(json_object_get(s, "confidence")), score[k], 1e-9);
        if (k != 2) CHECK(score[k] > score[(k + 1) % 3] && score[k] > score[(k + 2) % 3]);
        explored += json_is_true(json_object_get(s, "exploring"));
        json_decref(s);
    }
    CHECK(explored < 20); /* ε = 0.20 */
    CHECK_EQ(th_http(port, "GET", "/api/v1/ensemble", NULL, NULL, out, sizeof out), 200);
    CHECK_CONTAINS(out, "\"name\":\"gbdt-deep\",\"kind\":\"gbdt\"");
    CHECK_CONTAINS(out, "\"kind\":\"mlp\"");
    CHECK_CONTAINS(out, "\"signals\":31");
    CHECK(strstr(out, "\"warmup\":{\"needed\":60,\"withheld\":59,\"warming\":{}}"));
    CHECK_EQ(th_stop(p, 10000), 0);
}

/* Before, a symbol's first 59 bars each got a HOLD signal with no member
 * vote (the members cannot vote before MLM_WARMUP bars) and the engine took
 * it for the ensemble's view. No signal goes out until the windows are
 * full; the wait is said per symbol, in /ready's body and in /metrics. */
TEST(no_signal_before_the_members_windows_are_full)
{
    int port = 0;
    pid_t p = start("wu", NULL, &port);
    bars("wu", "BTCUSDT", 0, 30);
    CHECK_EQ(th_group_done(rc, "wu:market", "ml-threshold", 10000), 1);
    CHECK_EQ(th_count_type(rc, "wu:signal", "signal.generated"), 0);
    CHECK_EQ(th_http(port, "GET", "/ready", NULL, NULL, out, sizeof out), 200);
    CHECK(strstr(out, "\"warmup\":{\"ok\":true,\"note\":\"warming up, no signal yet: BTCUSDT 30/60 bars\"}"));
    CHECK_EQ(th_http(port, "GET", "/api/v1/status", NULL, NULL, out, sizeof out), 200);
    CHECK(strstr(out, "\"warmup\":{\"needed\":60,\"withheld\":30,\"warming\":{\"BTCUSDT\":30}}"));
    bars("wu", "BTCUSDT", 30, 31);
    CHECK_EQ(th_wait_xlen(rc, "wu:signal", 2, 10000), 0);
    json_t *s = th_event_data(rc, "wu:signal", "signal.generated", 0);
    CHECK_EQ(json_integer_value(json_object_get(s, "open_time")), 1704067200000LL + W * 60000LL);
    CHECK_EQ(json_object_size(json_object_get(s, "model_votes")), 4); /* every member votes on the first */
    json_decref(s);
    CHECK_EQ(th_http(port, "GET", "/metrics", NULL, NULL, out, sizeof out), 200);
    CHECK(strstr(out, "qt_signals_withheld_total{reason=\"warming\"} 59\n"));
    CHECK(strstr(out, "qt_symbols_warming 0\n"));
    CHECK_EQ(th_stop(p, 10000), 0);
}

TEST(external_votes_join_inside_the_window_and_late_ones_are_counted)
{
    int port = 0;
    const char *env[] = {"QT_ML_EXTERNAL_MODELS=py-lstm", "QT_VOTE_WINDOW_MS=400", NULL};
    pid_t p = start("v1", env, &port);
    bars("v1", "ETHUSDT", 0, 61);
    CHECK_EQ(th_wait_xlen(rc, "v1:signal", 61 - W, 15000), 0); /* no votes: each published after its window */
    th_xadd_event(rc, "v1:vote", "model.vote",
                  "{\"symbol\":\"ETHUSDT\",\"open_time\":1704070860000,\"model\":\"py-lstm\",\"action\":\"SHORT\",\"confidence\":0.9}", NULL);
    th_sleep_ms(200);
    long long t0 = th_now_ms();
    bars("v1", "ETHUSDT", 61, 1); /* its vote came first: published at once */
    CHECK_EQ(th_wait_xlen(rc, "v1:signal", 62 - W, 5000), 0); /* the vote is on v1:vote */
    CHECK(th_now_ms() - t0 < 400);
    json_t *s = th_event_data(rc, "v1:signal", "signal.generated", -1);
    CHECK_EQ(json_integer_value(json_object_get(s, "open_time")), 1704070860000LL);
    json_t *v = json_object_get(json_object_get(s, "model_votes"), "py-lstm");
    CHECK_STR(json_string_value(json_object_get(v, "action")), "SHORT");
    CHECK_EQ(json_object_size(json_object_get(s, "model_votes")), 5);
    json_decref(s);
    th_xadd_event(rc, "v1:vote", "model.vote", /* bar 0 was withheld long ago */
                  "{\"symbol\":\"ETHUSDT\",\"open_time\":1704067200000,\"model\":\"py-lstm\",\"action\":\"LONG\",\"confidence\":0.6}", NULL);
    th_xadd_event(rc, "v1:vote", "model.vote",
                  "{\"symbol\":\"ETHUSDT\",\"open_time\":1704067200000,\"model\":\"who-knows\",\"action\":\"LONG\",\"confidence\":0.6}", NULL);
    CHECK(wait_body(port, "/metrics", "qt_ml_votes_total{result=\"unknown_model\"} 1", 5000)); /* the later of the two */
    CHECK_CONTAINS(out, "qt_ml_votes_total{result=\"late\"} 1");
    CHECK_CONTAINS(out, "qt_ml_votes_total{result=\"counted\"} 1");
    CHECK_EQ(th_count_type(rc, "v1:signal", "signal.generated"), 62 - W);
    CHECK_EQ(th_stop(p, 10000), 0);
}

/* The block of docs/events.md's "Publishing from another language" that
 * starts with `opening`, up to its closing fence, malloc'd; NULL if none. */
static char *doc_block(const char *opening)
{
    char *doc = th_slurp("docs/events.md", NULL), *sec = doc ? strstr(doc, "## Publishing from another language") : NULL;
    char *at = sec ? strstr(sec, opening) : NULL, *end = at ? strstr(at + strlen(opening), "```") : NULL;
    char *out = end ? strndup(at + strlen(opening), (size_t)(end - at - strlen(opening))) : NULL;
    free(doc);
    return out;
}

/* Every occurrence of from in *s replaced by to (*s is reallocated). */
static void replace_all(char **s, const char *from, const char *to)
{
    for (char *p = strstr(*s, from); p; p = strstr(*s, from)) {
        size_t at = (size_t)(p - *s), n = strlen(*s) - strlen(from) + strlen(to) + 1;
        char *t = malloc(n);
        snprintf(t, n, "%.*s%s%s", (int)at, *s, to, p + strlen(from));
        free(*s);
        *s = t;
        if (!strcmp(from, to)) return;
    }
}

/* Issue #21, item 4: the v2 vote of docs/events.md, sent with redis-cli
 * exactly as written there (on this test's port and namespace), and its
 * Python member, run as written, both join the ensemble's signal. */
TEST(the_documented_redis_cli_vote_and_python_member_join_the_signal)
{
    int port = 0;
    char cmd[4096], p_s[16];
    const char *env[] = {"QT_ML_EXTERNAL_MODELS=py-lstm", "QT_VOTE_WINDOW_MS=3000", NULL};
    long long base = 1714521600000LL - W * 60000LL; /* bar W, the first voted on, opens at the documented time */
    snprintf(p_s, sizeof p_s, "%d", R.port);
    redisReply *g = redisCommand(rc, "XGROUP CREATE dv:signal ml-threshold $ MKSTREAM"); /* where votes were read before v2 */
    if (g) freeReplyObject(g);
    pid_t p = start("dv", env, &port);
    char *sh = doc_block("```sh\nredis-cli XADD qt:vote");
    CHECK(sh != NULL);
    if (!sh) return;
    snprintf(cmd, sizeof cmd, "redis-cli -p %s XADD dv:vote%s >/dev/null", p_s, sh);
    free(sh);
    CHECK_EQ(system(cmd), 0);
    bars_at("dv", "BTCUSDT", base, 0, W + 1, 1);
    for (long long end = th_now_ms() + 10000; th_now_ms() < end && th_count_type(rc, "dv:signal", "signal.generated") < 1;)
        th_sleep_ms(50);
    json_t *s = th_event_data(rc, "dv:signal", "signal.generated", 0);
    json_t *v = json_object_get(json_object_get(s, "model_votes"), "py-lstm");
    CHECK_EQ(json_integer_value(json_object_get(s, "open_time")), 1714521600000LL);
    CHECK_STR(json_string_value(json_object_get(v, "action")), "LONG");
    CHECK(fabs(json_number_value(json_object_get(v, "confidence")) - 0.71) < 1e-12);
    json_decref(s);
    CHECK(wait_body(port, "/metrics", "qt_ml_votes_total{result=\"counted\"} 1", 5000));
    g = redisCommand(rc, "XINFO GROUPS dv:signal"); /* its old group there is gone: no lag nobody reads */
    CHECK(g && g->type == REDIS_REPLY_ARRAY && g->elements == 0);
    if (g) freeReplyObject(g);
    CHECK_EQ(th_stop(p, 10000), 0);

    /* the Python member, reading the bars in its own group */
    if (system("/usr/bin/python3 -c 'import redis' 2>/dev/null") != 0) { /* Debian's python3 and python3-redis */
        if (getenv("QT_REQUIRE_TEST_TOOLS")) CHECK_FAIL_AT("python3-redis is missing (sh deploy/install-deps.sh --test-tools)");
        else printf("# python3-redis is missing: the Python member is not run\n");
        return;
    }
    char *py = doc_block("```python\n"), pyfile[300], conn[64];
    CHECK(py != NULL);
    if (!py) return;
    snprintf(conn, sizeof conn, "redis.Redis(port=%s, decode_responses=True)", p_s);
    replace_all(&py, "redis.Redis(decode_responses=True)", conn);
    replace_all(&py, "\"qt:", "\"dp:");
    snprintf(pyfile, sizeof pyfile, "%s/member.py", dir);
    FILE *f = fopen(pyfile, "w");
    fputs(py, f);
    fclose(f);
    free(py);
    p = start("dp", env, &port);
    pid_t member = fork();
    if (member == 0) {
        execlp("timeout", "timeout", "60", "/usr/bin/python3", pyfile, (char *)NULL);
        _exit(127);
    }
    int made = 0;
    for (long long end = th_now_ms() + 10000; th_now_ms() < end && !made; th_sleep_ms(50)) { /* its group is made */
        g = redisCommand(rc, "XINFO GROUPS dp:market");
        for (size_t i = 0; g && g->type == REDIS_REPLY_ARRAY && i < g->elements; i++) {
            const char *name = th_entry_field(g->element[i], "name");
            made |= name && !strcmp(name, "py-lstm");
        }
        if (g) freeReplyObject(g);
    }
    CHECK(made);
    bars_at("dp", "BTCUSDT", base, 0, W + 3, 1);
    for (long long end = th_now_ms() + 15000; th_now_ms() < end && th_count_type(rc, "dp:signal", "signal.generated") < 3;)
        th_sleep_ms(50);
    CHECK_EQ(th_count_type(rc, "dp:signal", "signal.generated"), 3);
    for (int i = 0; i < 3; i++) {
        s = th_event_data(rc, "dp:signal", "signal.generated", i);
        v = json_object_get(json_object_get(s, "model_votes"), "py-lstm");
        double o = 100 * (1 + 0.01 * sin((W + i) * 0.05)), c = 100 * (1 + 0.01 * sin((W + i + 1) * 0.05));
        CHECK_STR(json_string_value(json_object_get(v, "action")), c > o ? "LONG" : "SHORT");
        CHECK(fabs(json_number_value(json_object_get(v, "confidence")) - 0.6) < 1e-12);
        json_decref(s);
    }
    CHECK(wait_body(port, "/metrics", "qt_ml_votes_total{result=\"counted\"} 3", 5000));
    kill(member, SIGTERM);
    th_wait(member, 5000, NULL);
    CHECK_EQ(th_stop(p, 10000), 0);
}

TEST(a_bar_waiting_for_votes_survives_a_sigkill)
{
    int port = 0;
    const char *env[] = {"QT_ML_EXTERNAL_MODELS=py-lstm", "QT_VOTE_WINDOW_MS=3000", NULL};
    pid_t p = start("k1", env, &port);
    bars("k1", "SOLUSDT", 0, W + 1); /* the last of them is the first the members vote on */
    CHECK(wait_body(port, "/api/v1/ensemble", "\"pending\":1", 5000)); /* acked, waiting */
    th_kill(p, SIGKILL);
    th_wait(p, 5000, NULL);
    CHECK_EQ(th_count_type(rc, "k1:signal", "signal.generated"), 0);
    p = start("k1", env, &port);
    th_xadd_event(rc, "k1:vote", "model.vote",
                  "{\"symbol\":\"SOLUSDT\",\"open_time\":1704070740000,\"model\":\"py-lstm\",\"action\":\"LONG\",\"confidence\":0.8}", NULL);
    for (long long end = th_now_ms() + 5000; th_now_ms() < end && th_count_type(rc, "k1:signal", "signal.generated") < 1;) th_sleep_ms(50);
    json_t *s = th_event_data(rc, "k1:signal", "signal.generated", 0);
    CHECK(s != NULL);
    json_t *v = json_object_get(json_object_get(s, "model_votes"), "py-lstm"); /* the restored bar with the late-arriving vote */
    CHECK_STR(json_string_value(json_object_get(v, "action")), "LONG");
    CHECK_EQ(json_object_size(json_object_get(s, "model_votes")), 5);
    CHECK_EQ(json_integer_value(json_object_get(s, "open_time")), 1704070740000LL);
    json_decref(s);
    CHECK_EQ(th_stop(p, 10000), 0);
    CHECK_EQ(th_count_type(rc, "k1:signal", "signal.generated"), 1);
}

static const char *votes_right_wrong =
    "{\"gbdt-deep\":{\"action\":\"LONG\",\"confidence\":0.8},\"softmax\":{\"action\":\"SHORT\",\"confidence\":0.7},"
    "\"mlp-returns\":{\"action\":\"HOLD\",\"confidence\":0.5}}";

TEST(a_closed_trade_moves_weights_once)
{
    int port = 0;
    pid_t p = start("w1", NULL, &port);
    trade("w1", "t1", "LONG", 2.0, 1704070000000LL, votes_right_wrong, 1);
    CHECK(wait_body(port, "/api/v1/reinforcement/diagnostics", "\"total_trades_processed\":1", 5000));
    th_sleep_ms(300); /* the outcome of the same close has been read too */
    trade("w1", "t1", "LONG", 2.0, 1704070000000LL, votes_right_wrong, 0); /* delivered again */
    th_sleep_ms(300);
    CHECK_EQ(th_http(port, "GET", "/api/v1/reinforcement/diagnostics", NULL, NULL, out, sizeof out), 200);
    CHECK_CONTAINS(out, "\"total_trades_processed\":1,");
    CHECK_CONTAINS(out, "\"weight_update_count\":1,");
    CHECK_CONTAINS(out, "\"health_score\":");
    CHECK_EQ(th_http(port, "GET", "/api/v1/reinforcement/weights", NULL, NULL, out, sizeof out), 200);
    double right = json_path_num("weights", "gbdt-deep"), wrong = json_path_num("weights", "softmax");
    double hold = json_path_num("weights", "mlp-returns"), none = json_path_num("weights", "gbdt-shallow");
    CHECK(right > 0.25 && wrong < 0.20); /* the seed's example: the wrong voter loses, the right one gains */
    CHECK_NEAR(hold / none, 0.30 / 0.25, 1e-12); /* the others keep their shares */
    CHECK_NEAR(right + wrong + hold + none, 1.0, 1e-9);
    CHECK_NEAR(json_path_num("confidence_scalers", "gbdt-deep"), 1 + 0.5 * (0.25 - 0.04) / 0.25, 1e-9);
    CHECK_EQ(th_http(port, "GET", "/api/v1/reinforcement/calibration", NULL, NULL, out, sizeof out), 200);
    json_t *cal = json_loads(out, 0, NULL), *bs = json_object_get(json_object_get(cal, "calibration"), "brier_scores");
    CHECK_NEAR(json_number_value(json_object_get(bs, "softmax")), 0.49, 1e-9); /* the seed's calibration_metrics.brier_scores */
    json_decref(cal);
    CHECK_EQ(th_http(port, "GET", "/api/v1/status", NULL, NULL, out, sizeof out), 200);
    CHECK_CONTAINS(out, "\"duplicates\":2");
    CHECK_EQ(th_stop(p, 10000), 0);
}

/* Redis loses the learner's shared state (a restart without persistence):
 * before, every closed trade after it went to the DLQ with "the shared state
 * kept changing" and learning stopped for good. The state is written back
 * from the process's own, loudly, and learning goes on. */
TEST(the_learner_reseeds_its_state_when_redis_lost_it)
{
    int port = 0;
    pid_t p = start("rs", NULL, &port);
    trade("rs", "r1", "LONG", 2.0, 1704070000000LL, votes_right_wrong, 0);
    CHECK(wait_body(port, "/api/v1/reinforcement/diagnostics", "\"total_trades_processed\":1", 5000));
    freeReplyObject(redisCommand(rc, "DEL rs:ml:state rs:ml:seen"));
    trade("rs", "r2", "LONG", 2.0, 1704073600000LL, votes_right_wrong, 0);
    CHECK(wait_body(port, "/api/v1/reinforcement/diagnostics", "\"total_trades_processed\":2", 10000));
    CHECK_EQ(th_xlen(rc, "rs:feedback:dlq"), 0);
    CHECK(wait_body(port, "/api/v1/status", "\"state_reseeded\":1", 5000));
    redisReply *r = redisCommand(rc, "HGET rs:ml:state version");
    CHECK(r && r->type == REDIS_REPLY_STRING); /* back in Redis */
    if (r) freeReplyObject(r);
    CHECK_EQ(th_stop(p, 10000), 0);
}

TEST(thresholds_adapt_on_event_time_and_conservative_mode_ends)
{
    int port = 0;
    char err[256];
    pid_t p = start("a1", NULL, &port);
    long long t = 1704070000000LL;
    char trace[16];
    for (int k = 0; k < 10; k++) snprintf(trace, sizeof trace, "l%d", k), trade("a1", trace, "LONG", -1.0, t += 3600000LL, "{}", 0);
    CHECK_EQ(th_wait_xlen(rc, "a1:signal", 2, 5000), 0);
    json_t *a = th_event_data(rc, "a1:signal", "ml.threshold.adjusted", 0), *l = th_event_data(rc, "a1:signal", "ml.risk.limit.update", 0);
    CHECK_EQ(proto_validate("ml.threshold.adjusted", 1, a, err, sizeof err), 0);
    CHECK(json_is_true(json_object_get(a, "conservative")));
    CHECK_NEAR(json_number_value(json_object_get(a, "min_confidence")), 0.7, 1e-12);
    CHECK_CONTAINS(json_string_value(json_object_get(a, "reason")), "conservative");
    CHECK_EQ(json_integer_value(json_object_get(a, "event_time")), t);
    CHECK_NEAR(json_number_value(json_object_get(l, "max_position_size")), 0.01, 1e-12);
    CHECK_NEAR(json_number_value(json_object_get(l, "stop_loss_multiplier")), 1.2, 1e-12);
    json_decref(a), json_decref(l);
    CHECK_EQ(th_http(port, "GET", "/api/v1/thresholds", NULL, NULL, out, sizeof out), 200);
    CHECK_CONTAINS(out, "\"conservative\":true");
    for (int k = 0; k < 10; k++) snprintf(trace, sizeof trace, "w%d", k), trade("a1", trace, "LONG", 1.5, t += 3600000LL, "{}", 0);
    CHECK(wait_body(port, "/api/v1/thresholds", "\"conservative\":false", 5000));
    /* the view changes when the event is handed to the bus; Redis has it a moment later */
    for (long long end = th_now_ms() + 5000; th_now_ms() < end && th_count_type(rc, "a1:signal", "ml.threshold.adjusted") < 2;)
        th_sleep_ms(20);
    CHECK_EQ(th_count_type(rc, "a1:signal", "ml.threshold.adjusted"), 2);
    a = th_event_data(rc, "a1:signal", "ml.threshold.adjusted", -1);
    CHECK(json_is_false(json_object_get(a, "conservative")));
    CHECK_NEAR(json_number_value(json_object_get(a, "min_confidence")), 0.6, 1e-12);
    json_decref(a);
    CHECK_EQ(th_stop(p, 10000), 0);
}

TEST(state_survives_sigkill_and_is_shared_by_replicas)
{
    int pa = 0, pb = 0;
    char ck[300], env_ck[400], trace[16];
    snprintf(ck, sizeof ck, "%s/rsm.json", dir);
    snprintf(env_ck, sizeof env_ck, "RL_CHECKPOINT_PATH=%s", ck);
    const char *env[] = {env_ck, "RL_CHECKPOINT_INTERVAL=1", NULL};
    pid_t a = start("r1", env, &pa), b = start("r1", env, &pb);
    for (int k = 0; k < 30; k++) snprintf(trace, sizeof trace, "x%d", k), trade("r1", trace, k % 3 ? "LONG" : "SHORT", k % 2 ? 1.0 : -0.5, 1704070000000LL + k * 60000LL, votes_right_wrong, 1);
    CHECK(wait_body(pa, "/api/v1/reinforcement/diagnostics", "\"total_trades_processed\":30,", 10000));
    CHECK(wait_body(pb, "/api/v1/reinforcement/diagnostics", "\"total_trades_processed\":30,", 5000)); /* B sees A's updates */
    CHECK_EQ(th_http(pa, "GET", "/api/v1/reinforcement/weights", NULL, NULL, out, sizeof out), 200);
    double wa = json_path_num("weights", "softmax");
    CHECK_EQ(th_http(pb, "GET", "/api/v1/reinforcement/weights", NULL, NULL, out, sizeof out), 200);
    CHECK_NEAR(json_path_num("weights", "softmax"), wa, 1e-12);
    CHECK_EQ(th_http(pa, "GET", "/api/v1/status", NULL, NULL, out, sizeof out), 200);
    long here_a = (long)json_path_num("reinforcement", "trades_here");
    CHECK_EQ(th_http(pb, "GET", "/api/v1/status", NULL, NULL, out, sizeof out), 200);
    CHECK_EQ(here_a + (long)json_path_num("reinforcement", "trades_here"), 30); /* each trade once, by one of them */
    th_kill(a, SIGKILL), th_kill(b, SIGKILL);
    th_wait(a, 5000, NULL), th_wait(b, 5000, NULL);
    a = start("r1", env, &pa);
    CHECK_EQ(th_http(pa, "GET", "/api/v1/reinforcement/weights", NULL, NULL, out, sizeof out), 200);
    CHECK_NEAR(json_path_num("weights", "softmax"), wa, 1e-12);
    CHECK_EQ(th_stop(a, 10000), 0);
    redisReply *r = redisCommand(rc, "DEL r1:ml:state"); /* Redis lost it: the checkpoint file brings it back */
    freeReplyObject(r);
    a = start("r1", env, &pa);
    CHECK_EQ(th_http(pa, "GET", "/api/v1/reinforcement/diagnostics", NULL, NULL, out, sizeof out), 200);
    CHECK_CONTAINS(out, "\"total_trades_processed\":30,");
    CHECK_EQ(th_stop(a, 10000), 0);
}

/* ml-threshold SIGKILLed at several moments and restarted gives every bar
 * after it the signal of a run that never stopped (member votes, weights,
 * scores, regime: the per-symbol feature state is a checkpoint plus the
 * entries after it). Before, a restart began from empty windows: no member
 * voted until they filled again, and the regime was UNKNOWN. */
TEST(a_sigkill_at_any_moment_changes_no_signal)
{
    static const char *const syms[] = {"BTCUSDT", "ETHUSDT", "SOLUSDT"};
    static const int cut[] = {0, 70, 91, 120, 141, 180};
    const char *env[] = {"QT_CHECKPOINT_MS=40", NULL};
    int port = 0, differ = 0, from_ckpt = 0;
    char first[96] = "";
    pid_t p = start("mk0", env, &port);
    for (int part = 0; part < 5; part++)
        for (int s = 0; s < 3; s++) bars("mk0", syms[s], cut[part], cut[part + 1] - cut[part]);
    CHECK_EQ(th_group_done(rc, "mk0:market", "ml-threshold", 20000), 1);
    CHECK_EQ(th_stop(p, 10000), 0);
    p = start("mk1", env, &port);
    for (int part = 0; part < 5; part++) {
        for (int s = 0; s < 3; s++) bars("mk1", syms[s], cut[part], cut[part + 1] - cut[part]);
        if (part == 4) break;
        CHECK_EQ(th_wait_xlen(rc, "mk1:signal", 3LL * (cut[part] > W ? cut[part] - W : 0) + (part % 2 ? 7 : 1), 20000), 0);
        if (part == 2) th_sleep_ms(500); /* once after a checkpoint surely covers part of it */
        th_kill(p, SIGKILL);
        th_wait(p, 5000, NULL);
        p = start("mk1", env, &port);
        CHECK_EQ(th_http(port, "GET", "/api/v1/status", NULL, NULL, out, sizeof out), 200);
        if (strstr(out, "\"from_checkpoint\":true")) from_ckpt++;
    }
    CHECK(from_ckpt >= 1);
    CHECK_EQ(th_group_done(rc, "mk1:market", "ml-threshold", 20000), 1);
    json_t *a = th_events_by_bar(rc, "mk0:signal", "signal.generated", &differ),
           *b = th_events_by_bar(rc, "mk1:signal", "signal.generated", &differ);
    CHECK_EQ(differ, 0);
    CHECK_EQ((long long)json_object_size(a), 3 * (180 - W));
    int n = th_events_differ(a, b, first, sizeof first);
    if (n) CHECK_FAIL_AT("%d of 363 signals differ after the restarts, the first at %s", n, first);
    json_decref(a);
    json_decref(b);
    CHECK_EQ(th_stop(p, 10000), 0);
}

/* Seed 002's expected output, as far as its numbers follow from what it
 * gives: the starting weights {xgboost 0.25, lightgbm 0.25, nhits 0.30,
 * patchtst 0.20} (on gbdt-deep, gbdt-shallow, mlp-returns, softmax),
 * exploration 20.00 %, then one winning trade on which N-HiTS voted wrong:
 * one trade processed, advantage = shaped reward (the baseline starts at 0),
 * N-HiTS's weight down and the others' up. (The seed's printed weights after
 * it sum to 1.012, and its shaped reward does not follow from its own
 * formula and inputs, so those digits are not reproducible.) */
TEST(the_seed_expected_output_block)
{
    int port = 0;
    pid_t p = start("sd", NULL, &port);
    CHECK_EQ(th_http(port, "GET", "/api/v1/reinforcement/weights", NULL, NULL, out, sizeof out), 200);
    CHECK_NEAR(json_path_num("weights", "gbdt-deep"), 0.25, 1e-12);
    CHECK_NEAR(json_path_num("weights", "gbdt-shallow"), 0.25, 1e-12);
    CHECK_NEAR(json_path_num("weights", "mlp-returns"), 0.30, 1e-12);
    CHECK_NEAR(json_path_num("weights", "softmax"), 0.20, 1e-12);
    json_t *wj = json_loads(out, 0, NULL);
    CHECK_NEAR(json_number_value(json_object_get(wj, "exploration_rate")), 0.20, 1e-12);
    json_decref(wj);
    trade("sd", "s1", "LONG", 0.91, 1704070000000LL,
          "{\"gbdt-deep\":{\"action\":\"LONG\",\"confidence\":0.72},\"gbdt-shallow\":{\"action\":\"LONG\",\"confidence\":0.68},"
          "\"mlp-returns\":{\"action\":\"SHORT\",\"confidence\":0.55},\"softmax\":{\"action\":\"LONG\",\"confidence\":0.65}}",
          0);
    CHECK(wait_body(port, "/api/v1/reinforcement/diagnostics", "\"total_trades_processed\":1,", 5000));
    json_t *d = json_loads(out, 0, NULL), *dg = json_object_get(d, "diagnostics"), *w = json_object_get(dg, "model_weights");
    CHECK(json_number_value(json_object_get(w, "gbdt-deep")) > 0.25);
    CHECK(json_number_value(json_object_get(w, "gbdt-shallow")) > 0.25);
    CHECK(json_number_value(json_object_get(w, "mlp-returns")) < 0.30); /* voted wrong */
    CHECK(json_number_value(json_object_get(w, "softmax")) > 0.20);
    CHECK(json_number_value(json_object_get(dg, "baseline_reward")) > 0); /* it learned from a positive reward */
    CHECK(json_is_object(json_object_get(json_object_get(dg, "calibration_metrics"), "brier_scores")));
    json_decref(d);
    CHECK_EQ(th_stop(p, 10000), 0);
    int st = -1; /* configurable, and refused with the reason */
    const char *bad[][2] = {{"RL_INITIAL_WEIGHTS=gbdt-deep:0.9", "gbdt-deep would start at 0.9"},
                            {"RL_INITIAL_WEIGHTS=lstm:0.2", "lstm is not a member"},
                            {"RL_INITIAL_WEIGHTS=gbdt-deep:0.4,gbdt-shallow:0.4,softmax:0.4", "sum to 1.2"},
                            {"RL_INITIAL_WEIGHTS=gbdt-deep=0.4", "is not name:weight"}};
    for (int i = 0; i < 4; i++) {
        char tag[32], log[300], text[4096] = "";
        const char *env[] = {bad[i][0], NULL};
        snprintf(tag, sizeof tag, "ml-iw%d", i);
        pid_t q = th_service(bin, &R, "iw", env, dir, tag, &port, 0);
        CHECK_EQ(th_wait(q, 10000, &st), 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2);
        snprintf(log, sizeof log, "%s/%s.log", dir, tag);
        FILE *f = fopen(log, "r");
        if (f) text[fread(text, 1, sizeof text - 1, f)] = 0, fclose(f);
        CHECK_CONTAINS(text, bad[i][1]);
    }
    const char *env[] = {"RL_INITIAL_WEIGHTS=gbdt-deep:0.4", NULL}; /* the others share the rest */
    p = th_service(bin, &R, "iw2", env, dir, "ml-iw-ok", &port, 1);
    CHECK_EQ(th_http(port, "GET", "/api/v1/reinforcement/weights", NULL, NULL, out, sizeof out), 200);
    CHECK_NEAR(json_path_num("weights", "gbdt-deep"), 0.4, 1e-12);
    CHECK_NEAR(json_path_num("weights", "softmax"), 0.2, 1e-12);
    CHECK_EQ(th_stop(p, 10000), 0);
}

TEST(resets_need_the_token)
{
    int port = 0;
    pid_t p = start("z1", NULL, &port);
    trade("z1", "q1", "LONG", 3.0, 1704070000000LL, votes_right_wrong, 0);
    CHECK(wait_body(port, "/api/v1/reinforcement/diagnostics", "\"total_trades_processed\":1,", 5000));
    CHECK_EQ(th_http(port, "POST", "/api/v1/reinforcement/reset_weights", NULL, NULL, out, sizeof out), 401);
    CHECK_CONTAINS(out, "\"error\"");
    CHECK_EQ(th_http(port, "POST", "/api/v1/reinforcement/reset_weights", "Authorization: Bearer nope\r\n", NULL, out, sizeof out), 401);
    CHECK_EQ(th_http(port, "GET", "/api/v1/reinforcement/weights", NULL, NULL, out, sizeof out), 200);
    CHECK(json_path_num("weights", "softmax") < 0.20);
    CHECK_EQ(th_http(port, "POST", "/api/v1/reinforcement/reset_weights", AUTH, NULL, out, sizeof out), 200);
    CHECK_CONTAINS(out, "Model weights reset to initial values");
    CHECK_EQ(th_http(port, "GET", "/api/v1/reinforcement/weights", NULL, NULL, out, sizeof out), 200);
    CHECK_NEAR(json_path_num("weights", "softmax"), 0.20, 1e-12); /* the initial ones: the seed's */
    CHECK_NEAR(json_path_num("weights", "mlp-returns"), 0.30, 1e-12);
    CHECK(json_path_num("confidence_scalers", "softmax") < 1); /* calibration kept */
    CHECK_EQ(th_http(port, "POST", "/api/v1/reinforcement/reset_calibration", NULL, NULL, out, sizeof out), 401);
    CHECK_EQ(th_http(port, "POST", "/api/v1/reinforcement/reset_calibration", AUTH, NULL, out, sizeof out), 200);
    CHECK_EQ(th_http(port, "GET", "/api/v1/reinforcement/weights", NULL, NULL, out, sizeof out), 200);
    CHECK_NEAR(json_path_num("confidence_scalers", "softmax"), 1.0, 1e-12);
    CHECK_EQ(th_http(port, "GET", "/api/v1/thresholds", NULL, NULL, out, sizeof out), 200);
    CHECK_CONTAINS(out, "\"min_trades_for_adaptation\":10");
    CHECK_EQ(th_http(port, "POST", "/api/v1/thresholds", AUTH, NULL, out, sizeof out), 405);
    CHECK_EQ(th_stop(p, 10000), 0);
}

int main(int argc, char **argv);

__attribute__((constructor)) static void setup(void)
{
    th_watchdog(240);
    th_bin("bin/ml-threshold", bin, sizeof bin);
    th_tempdir(dir, sizeof dir);
    if (th_redis_start(&R, 0) < 0 || !(rc = th_redis_connect(&R))) exit(2);
}

CHECK_MAIN()
