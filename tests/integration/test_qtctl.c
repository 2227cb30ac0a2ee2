/* Integration tests: the qtctl binary — features over a kline CSV (values
 * checked against the indicator fixtures), and the DLQ and streams commands
 * on a real redis-server. */
#include "check.h"
#include "harness.h"
#include "kline.h"

#include <sys/wait.h>
#include <limits.h>
#include <sys/stat.h>
#include <dirent.h>
#include <time.h>
#include <string.h>
#include <stdlib.h>
#include <signal.h>

static th_redis_t R;
static char bin[256], dir[256];
static const double closes[60] = {100.0, 99.7441, 100.2542, 100.0275, 99.7123, 98.785, 98.5743, 99.6704, 100.0931, 101.1309, 101.3826, 101.7828, 101.9714, 100.2725, 101.1301, 101.6422, 102.1492, 100.4215, 98.6703, 97.7925, 97.3346, 97.6319, 97.5871, 98.0955, 97.4655, 97.7664, 98.1518, 97.5029, 99.1775, 99.7295, 100.9233, 100.2972, 99.5555, 99.213, 99.1074, 99.7338, 99.9816, 99.5343, 98.5818, 98.0686, 99.2659, 98.4639, 98.7049, 99.1259, 97.6492, 97.6965, 98.9727, 96.979, 96.6671, 96.5645, 95.7753, 96.2517, 96.1918, 94.7829, 95.5676, 96.2073, 97.1173, 98.5164, 98.8733, 98.9912};

static double r4(double x) { return round(x * 1e4) / 1e4; }

static int run_limit_s = 250; /* qtctl is killed after this long (exit code 124) */

/* Run qtctl with args in namespace ns; stdout into out (first outlen bytes); returns the exit code. */
static int run_ns(const char *ns, const char *args, char *out, size_t outlen)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "REDIS_URL=%s QT_NAMESPACE=%s timeout %d %s %s 2>%s/stderr.txt", R.url, ns, run_limit_s, bin,
             args, dir);
    FILE *p = popen(cmd, "r");
    size_t n = p ? fread(out, 1, outlen - 1, p) : 0;
    out[n] = '\0';
    int st = p ? pclose(p) : -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int run(const char *args, char *out, size_t outlen) { return run_ns("q", args, out, outlen); }

static char out[1 << 20], errpath[300];

TEST(features_of_a_csv)
{
    char path[300], args[400];
    snprintf(path, sizeof path, "%s/ETHUSDT-1m-2024-03.csv", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n");
    for (int i = 0; i < 60; i++) {
        long long t = 1709251200000LL + i * 60000LL;
        fprintf(f, "%lld,%.4f,%.4f,%.4f,%.4f,5,%lld,0,0,0,0,0\n", t, closes[i], r4(closes[i] * 1.004), r4(closes[i] * 0.995),
                closes[i], t + 59999);
        if (i == 30) fprintf(f, "%lld,1,2\n", t); /* a bad row */
    }
    fclose(f);
    snprintf(args, sizeof args, "features --csv %s", path);
    CHECK_EQ(run(args, out, sizeof out), 0);
    int lines = 0;
    char *first = out;
    for (char *p = out; *p; p++) lines += *p == '\n';
    CHECK_EQ(lines, 60);
    json_t *j1 = json_loadb(first, (size_t)(strchr(first, '\n') - first), 0, NULL);
    CHECK(json_is_null(json_object_get(j1, "sma_20"))); /* window not full yet */
    CHECK_STR(json_string_value(json_object_get(j1, "symbol")), "ETHUSDT");
    CHECK_EQ(json_array_size(json_object_get(j1, "obs")), 64);
    json_decref(j1);
    char *end = out + strlen(out) - 1, *start = end;
    while (start > out && start[-1] != '\n') start--;
    json_t *jl = json_loadb(start, (size_t)(end - start), 0, NULL);
    CHECK_NEAR(json_number_value(json_object_get(jl, "sma_20")), 97.418220000000, 1e-6);
    CHECK_NEAR(json_number_value(json_object_get(jl, "rsi_14")), 56.871342217813, 1e-6);
    CHECK_NEAR(json_number_value(json_object_get(jl, "macd_hist")), 0.355233687409, 1e-6);
    CHECK_NEAR(json_number_value(json_object_get(jl, "atr_14")), 1.214525164399, 1e-6);
    CHECK_NEAR(json_number_value(json_array_get(json_object_get(jl, "obs"), 4)), (56.871342217813 - 50) / 50, 1e-6);
    json_decref(jl);
    FILE *e = NULL;
    char errpath[300], line[512];
    snprintf(errpath, sizeof errpath, "%s/stderr.txt", dir);
    e = fopen(errpath, "r");
    int named = 0;
    while (e && fgets(line, sizeof line, e)) named |= strstr(line, "ETHUSDT-1m-2024-03.csv:33: bad row skipped") != NULL;
    if (e) fclose(e);
    CHECK(named);
    snprintf(args, sizeof args, "features --csv %s --symbol XYZUSDT", path);
    CHECK_EQ(run(args, out, sizeof out), 0);
    CHECK_CONTAINS(out, "\"symbol\":\"XYZUSDT\"");
    CHECK_EQ(run("features --csv /nonexistent.csv", out, sizeof out), 1);
    CHECK_EQ(run("features", out, sizeof out), 2);
    CHECK_EQ(run("bogus", out, sizeof out), 2);
    CHECK_EQ(run("--help", out, sizeof out), 0);
    CHECK_CONTAINS(out, "usage: qtctl");
}

static char *slurp(const char *path)
{
    static char buf[1 << 16];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    return buf;
}

#define BAR_JSON                                                                                                   \
    "{\"symbol\":\"BTCUSDT\",\"interval\":\"1m\",\"open_time\":1714521600000,\"close_time\":1714521659999,"            \
    "\"open\":100,\"high\":101,\"low\":99,\"close\":100.5,\"volume\":3,\"quote_volume\":300,\"trades\":3,"               \
    "\"taker_buy_volume\":1,\"closed\":true,\"event_time\":1714521659999}"

static void dead_letter(redisContext *c, int n, const char *origin_id, const char *group, const char *data)
{
    redisReply *r = redisCommand(c, "XADD q:market:dlq * id 0190a4c4-0000-7000-8000-00000000000%d type market.data.update v 1 "
                                    "ts 1714521660000 source test/qtctl trace t%d data %s origin_stream q:market origin_id %s "
                                    "group %s consumer c deliveries 1 error bad failed_at 1",
                                 n, n, data, origin_id, group);
    freeReplyObject(r);
}

TEST(dlq_list_replay_purge)
{
    redisContext *c = th_redis_connect(&R);
    dead_letter(c, 1, "1-1", "rl-decision", BAR_JSON); /* one event two groups dead-lettered */
    dead_letter(c, 1, "1-1", "ml-threshold", BAR_JSON);
    dead_letter(c, 2, "1-2", "rl-decision", "{\"symbol\":\"BTCUSDT\",\"close\":\"100.5\"}"); /* still broken */
    CHECK_EQ(run("dlq list market", out, sizeof out), 0);
    CHECK_CONTAINS(out, "\"error\": \"bad\"");
    CHECK_EQ(run("dlq replay market", out, sizeof out), 1);
    CHECK_CONTAINS(out, "replayed 1 entries of q:market:dlq (1 more dead letters of the same events removed)");
    CHECK_CONTAINS(slurp(errpath), "1 entries still break the event contract and stay in q:market:dlq; the first: entry ");
    CHECK_CONTAINS(slurp(errpath), "(q:market 1-2): data");
    redisReply *r = redisCommand(c, "XLEN q:market");
    CHECK_EQ(r->integer, 1); /* the event once: every group reads it from there */
    freeReplyObject(r);
    r = redisCommand(c, "XRANGE q:market:dlq - +");
    CHECK_EQ(r->elements, 1);
    char args[1024], left[64];
    snprintf(left, sizeof left, "%s", r->element[0]->element[0]->str);
    freeReplyObject(r);
    snprintf(args, sizeof args, "dlq replay market --id %s --set 'data=%s'", left, BAR_JSON); /* the fix */
    CHECK_EQ(run(args, out, sizeof out), 0);
    CHECK_CONTAINS(out, "replayed 1 entries of q:market:dlq");
    r = redisCommand(c, "XRANGE q:market - +");
    CHECK_EQ(r->elements, 2);
    CHECK_CONTAINS(r->element[1]->element[1]->element[13]->str, "\"close\":100.5"); /* data, fixed */
    freeReplyObject(r);
    dead_letter(c, 3, "1-3", "g", "{}");
    CHECK_EQ(run("dlq replay market --set", out, sizeof out), 2); /* a usage error */
    CHECK_CONTAINS(slurp(errpath), "--set needs a value");
    CHECK_EQ(run("dlq replay market --set nonsense", out, sizeof out), 1);
    CHECK_CONTAINS(slurp(errpath), "--set wants FIELD=VALUE");
    CHECK_EQ(run("dlq replay market --force", out, sizeof out), 0); /* as it is, on the operator's word */
    CHECK_CONTAINS(out, "replayed 1 entries");
    r = redisCommand(c, "XADD q:market:dlq * id e9 type x v 1 ts 1764547200000 source t trace t data {\"symbol\":\"BTCUSDT\"} origin_stream "
                        "q:market origin_id 1-9 group g consumer c deliveries 1 error bad failed_at 1");
    snprintf(args, sizeof args, "dlq show market --id %s", r->str);
    freeReplyObject(r);
    CHECK_EQ(run(args, out, sizeof out), 0);
    CHECK_CONTAINS(out, "\"data_json\": {");
    CHECK_CONTAINS(out, "\"symbol\": \"BTCUSDT\"");
    CHECK_EQ(run("dlq show market --id 9-9", out, sizeof out), 1);
    CHECK_CONTAINS(slurp(errpath), "no dead letter 9-9 in q:market:dlq");
    CHECK_EQ(run("dlq show market", out, sizeof out), 2);
    CHECK_EQ(run("dlq purge market", out, sizeof out), 0);
    CHECK_CONTAINS(out, "purged 1 entries");
    CHECK_EQ(run("dlq replay market --id 1-1", out, sizeof out), 1);
    redisFree(c);
}

/* In a namespace of symbol partitions the DLQ commands cover every
 * partition's DLQ (and STREAM:pK one of them), streams says the count, and
 * partition names a symbol's. */
TEST(dlq_and_streams_cover_every_partition)
{
    redisContext *c = th_redis_connect(&R);
    freeReplyObject(redisCommand(c, "HSET qp:meta partitions 4"));
    char ids[2][64], args[256];
    for (int k = 0; k < 2; k++) {
        int part = k ? 3 : 1;
        redisReply *r = redisCommand(c, "XADD qp:market:p%d:dlq %d-1 id 0190a4c4-0000-7000-8000-00000000001%d type market.data.update v 1 "
                                        "ts 1714521660000 source test/qtctl trace t data %s origin_stream qp:market:p%d origin_id 1-%d "
                                        "group rl-decision consumer c deliveries 1 error bad%d failed_at 1",
                                     part, part, k, BAR_JSON, part, k + 1, part);
        snprintf(ids[k], sizeof ids[k], "%s", r->str);
        freeReplyObject(r);
    }
    CHECK_EQ(run_ns("qp", "dlq list market", out, sizeof out), 0);
    CHECK_CONTAINS(out, "\"origin_stream\": \"qp:market:p1\"");
    CHECK_CONTAINS(out, "\"origin_stream\": \"qp:market:p3\"");
    CHECK_EQ(run_ns("qp", "dlq list market:p3", out, sizeof out), 0); /* one partition's */
    CHECK(strstr(out, "qp:market:p1") == NULL);
    CHECK_CONTAINS(out, "\"error\": \"bad3\"");
    snprintf(args, sizeof args, "dlq show market --id %s", ids[1]);
    CHECK_EQ(run_ns("qp", args, out, sizeof out), 0);
    CHECK_CONTAINS(out, "\"error\": \"bad3\"");
    redisReply *r = redisCommand(c, "XADD qp:market:p1:dlq %s id x type market.data.update v 1 ts 1 source s trace t data {} "
                                    "origin_stream qp:market:p1 origin_id 1-9 group g consumer c deliveries 1 error e failed_at 1",
                                 ids[1]); /* the same id in two partitions' DLQs */
    freeReplyObject(r);
    CHECK_EQ(run_ns("qp", args, out, sizeof out), 1);
    CHECK_CONTAINS(slurp(errpath), "is in qp:market:p1:dlq and in qp:market:p3:dlq: name the partition (market:p1)");
    snprintf(args, sizeof args, "dlq purge market:p1 --id %s", ids[1]);
    CHECK_EQ(run_ns("qp", args, out, sizeof out), 0);
    CHECK_EQ(run_ns("qp", "dlq replay market", out, sizeof out), 0);
    CHECK_CONTAINS(out, "replayed 1 entries of qp:market:p1:dlq");
    CHECK_CONTAINS(out, "replayed 1 entries of qp:market:p3:dlq");
    CHECK_EQ(th_xlen(c, "qp:market:p1"), 1);
    CHECK_EQ(th_xlen(c, "qp:market:p3"), 1);
    CHECK_EQ(th_xlen(c, "qp:market:p1:dlq") + th_xlen(c, "qp:market:p3:dlq"), 0);
    CHECK_EQ(run_ns("qp", "partition BTCUSDT ETHUSDT AVAXUSDT", out, sizeof out), 0);
    CHECK_CONTAINS(out, "BTCUSDT p0 of 4 (qp:market:p0)");
    CHECK_CONTAINS(out, "AVAXUSDT p3 of 4 (qp:market:p3)");
    freeReplyObject(redisCommand(c, "SET qp:lease:trade-executor:p2 host-a-77 PX 60000"));
    CHECK_EQ(run_ns("qp", "streams", out, sizeof out), 0);
    CHECK_CONTAINS(out, "namespace qp: 4 symbol partitions");
    CHECK_CONTAINS(out, "qp:lease:trade-executor:p2");
    CHECK_CONTAINS(out, "host-a-77");
    CHECK_CONTAINS(out, "qp:market:p3 ");
    CHECK_EQ(run_ns("qp", "tail market --no-follow", out, sizeof out), 2);
    CHECK_CONTAINS(slurp(errpath), "tail one of them, market:p0 to market:p3");
    CHECK_EQ(run_ns("qp", "tail market:p3 --no-follow --json", out, sizeof out), 0);
    CHECK_CONTAINS(out, "BTCUSDT");
    redisFree(c);
}

/* Redis runs the rest of a MULTI … EXEC after a command failed at run time:
 * a replay whose XADD fails (the stream's key holds a string) must not
 * delete the dead letter. */
/* A dead letter holding bytes that are not UTF-8 (in a value, a field name
 * and its error) is listed and shown with them escaped as \xNN, and does not
 * hide the entries after it (qtctl crashed on puts(NULL) before). */
TEST(dlq_entries_with_invalid_utf8_are_listed_escaped)
{
    redisContext *c = th_redis_connect(&R);
    const char *argv[] = {"XADD", "q:policy:dlq", "*", "id", "e-utf8", "type", "policy.config.updated", "v", "1", "ts",
                          "1", "source", "t", "trace", "t", "data", "{\"key\":\"k\xff\"}", "na\xffme", "x",
                          "origin_stream", "q:policy", "origin_id", "1-1", "group", "g", "consumer", "c", "deliveries",
                          "1", "error", "bad byte \xfe in data", "failed_at", "1"};
    freeReplyObject(redisCommandArgv(c, (int)(sizeof argv / sizeof argv[0]), argv, NULL));
    freeReplyObject(redisCommand(c, "XADD q:policy:dlq * id e-after type x v 1 ts 1764547200000 source t trace t data {} origin_stream "
                                    "q:policy origin_id 1-2 group g consumer c deliveries 1 error later failed_at 1"));
    CHECK_EQ(run("dlq list policy", out, sizeof out), 0);
    CHECK_CONTAINS(out, "k\\\\xFF");           /* the value, escaped */
    CHECK_CONTAINS(out, "bad byte \\\\xFE in data"); /* the error */
    CHECK_CONTAINS(out, "na\\\\xFFme");          /* the field name */
    CHECK_CONTAINS(out, "e-after");              /* and the entry after it */
    redisReply *r = redisCommand(c, "XRANGE q:policy:dlq - + COUNT 1");
    char args[128];
    snprintf(args, sizeof args, "dlq show policy --id %s", r->element[0]->element[0]->str);
    freeReplyObject(r);
    CHECK_EQ(run(args, out, sizeof out), 0);
    CHECK_CONTAINS(out, "\\\\xFE");
    freeReplyObject(redisCommand(c, "DEL q:policy:dlq"));
    redisFree(c);
}

TEST(dlq_replay_that_cannot_add_the_entry_keeps_the_dead_letter)
{
    redisContext *c = th_redis_connect(&R);
    freeReplyObject(redisCommand(c, "XADD q:feedback:dlq * id e1 type x v 1 ts 1764547200000 source t trace t data {} origin_stream "
                                    "q:feedback origin_id 1-1 group g consumer c deliveries 1 error bad failed_at 1"));
    freeReplyObject(redisCommand(c, "SET q:feedback not-a-stream"));
    CHECK_EQ(run("dlq replay feedback --force", out, sizeof out), 1);
    CHECK_CONTAINS(slurp(errpath), "left in the DLQ");
    CHECK_CONTAINS(slurp(errpath), "WRONGTYPE");
    CHECK_EQ(th_xlen(c, "q:feedback:dlq"), 1);
    freeReplyObject(redisCommand(c, "DEL q:feedback")); /* the fix */
    CHECK_EQ(run("dlq replay feedback --force", out, sizeof out), 0);
    CHECK_CONTAINS(out, "replayed 1 entries of q:feedback:dlq");
    CHECK_EQ(th_xlen(c, "q:feedback"), 1);
    CHECK_EQ(th_xlen(c, "q:feedback:dlq"), 0);
    redisFree(c);
}

/* With a consumer running, a forced replay of entries that still break the
 * contract makes that consumer dead-letter them again: the replay must stop
 * at the dead letters it found (it chased its own before, for ever), and a
 * purge must leave the dead letters that arrived while it ran. */
TEST(dlq_replay_and_purge_end_at_the_dead_letters_they_found)
{
    char ps[256];
    int port;
    th_bin("bin/policy-store", ps, sizeof ps);
    pid_t p = th_service(ps, &R, "q", NULL, dir, "policy-store-dlq", &port, 1);
    CHECK(p > 0);
    redisContext *c = th_redis_connect(&R);
    freeReplyObject(redisCommand(c, "DEL q:market:dlq"));
    for (int i = 0; i < 300; i++) { /* a bar whose close is a string: policy-store dead-letters it */
        freeReplyObject(redisCommand(c, "XADD q:market:dlq * id 0190a4c4-0000-7000-8000-%012d type market.data.update v 1 "
                                        "ts 1714521660000 source test/qtctl trace t data {\"symbol\":\"BTCUSDT\",\"close\":\"1\"} "
                                        "origin_stream q:market origin_id 1-%d group policy-store consumer c deliveries 1 "
                                        "error bad failed_at 1",
                                     i + 1, i + 1));
    }
    run_limit_s = 20;
    CHECK_EQ(run("dlq replay market --force", out, sizeof out), 0);
    CHECK_CONTAINS(out, "replayed 300 entries of q:market:dlq");
    CHECK_EQ(th_wait_xlen(c, "q:market:dlq", 300, 10000), 0); /* policy-store dead-lettered them again */
    th_sleep_ms(300);
    CHECK_EQ(th_xlen(c, "q:market:dlq"), 300); /* once each, not chased */
    /* A purge while dead letters keep arriving: a child adds one every
     * millisecond from the moment the purge has begun deleting. */
    pid_t child = fork();
    if (child == 0) {
        redisContext *cc = th_redis_connect(&R);
        long long until = th_now_ms() + 20000;
        while (th_xlen(cc, "q:market:dlq") >= 300 && th_now_ms() < until) th_sleep_ms(1);
        for (int i = 0; i < 400 && th_now_ms() < until; i++) {
            freeReplyObject(redisCommand(cc, "XADD q:market:dlq * id late type market.data.update v 1 ts 1764547200000 source t "
                                             "trace t data {} origin_stream q:market origin_id 9-%d group g consumer c "
                                             "deliveries 1 error late failed_at 1", i));
            th_sleep_ms(1);
        }
        _exit(0);
    }
    CHECK_EQ(run("dlq purge market", out, sizeof out), 0);
    run_limit_s = 250;
    CHECK_CONTAINS(out, "purged 300 entries of q:market:dlq");
    int st;
    CHECK_EQ(th_wait(child, 30000, &st), 0);
    CHECK_EQ(th_xlen(c, "q:market:dlq"), 400); /* every late one kept */
    freeReplyObject(redisCommand(c, "DEL q:market:dlq"));
    redisFree(c);
    CHECK_EQ(th_stop(p, 10000), 0);
}

TEST(streams_shows_length_pending_and_lag)
{
    redisContext *c = th_redis_connect(&R);
    for (int i = 0; i < 5; i++) freeReplyObject(redisCommand(c, "XADD q:tt * n %d", i));
    freeReplyObject(redisCommand(c, "XGROUP CREATE q:tt g1 0"));
    freeReplyObject(redisCommand(c, "XGROUP CREATE q:tt g2 $"));
    freeReplyObject(redisCommand(c, "XREADGROUP GROUP g1 w1 COUNT 2 STREAMS q:tt >"));
    freeReplyObject(redisCommand(c, "XADD other:tt * n 1"));   /* another namespace */
    freeReplyObject(redisCommand(c, "SET q:not-a-stream 1"));
    CHECK_EQ(run("streams --json", out, sizeof out), 0);
    json_error_t je;
    json_t *all = json_loads(out, 0, &je), *tt = NULL, *o;
    size_t i;
    CHECK(json_is_array(all));
    json_array_foreach(all, i, o) {
        const char *name = json_string_value(json_object_get(o, "stream"));
        CHECK(name && strncmp(name, "q:", 2) == 0 && strcmp(name, "q:not-a-stream") != 0);
        if (name && strcmp(name, "q:tt") == 0) tt = o;
    }
    CHECK(tt != NULL);
    if (tt) {
        json_t *g = json_object_get(tt, "groups");
        CHECK_EQ(json_integer_value(json_object_get(tt, "length")), 5);
        CHECK_EQ(json_array_size(g), 2);
        CHECK_STR(json_string_value(json_object_get(json_array_get(g, 0), "group")), "g1");
        CHECK_EQ(json_integer_value(json_object_get(json_array_get(g, 0), "consumers")), 1);
        CHECK_EQ(json_integer_value(json_object_get(json_array_get(g, 0), "pending")), 2);
        CHECK_EQ(json_integer_value(json_object_get(json_array_get(g, 0), "lag")), 3);
        CHECK_EQ(json_integer_value(json_object_get(json_array_get(g, 1), "lag")), 0);
    }
    json_decref(all);
    CHECK_EQ(run("streams", out, sizeof out), 0);
    CHECK_CONTAINS(out, "STREAM");
    CHECK_CONTAINS(out, "LAG");
    CHECK(strstr(out, "other:tt") == NULL);
    const char *line = strstr(out, "q:tt ");
    CHECK(line != NULL);
    if (line) {
        char stream[64], group[64];
        long len, cons, pend, lag;
        CHECK_EQ(sscanf(line, "%63s %ld %63s %ld %ld %ld", stream, &len, group, &cons, &pend, &lag), 6);
        CHECK_STR(group, "g1");
        CHECK_EQ(len, 5);
        CHECK_EQ(pend, 2);
        CHECK_EQ(lag, 3);
    }
    CHECK_EQ(run("streams --bogus", out, sizeof out), 2);
    redisFree(c);
}

TEST(tail_prints_the_last_entries_then_follows)
{
    redisContext *c = th_redis_connect(&R);
    for (int i = 0; i < 4; i++)
        freeReplyObject(redisCommand(c, "XADD q:tl * id e%d type market.data.update v 1 data {\"n\":%d}", i, i));
    freeReplyObject(redisCommand(c, "XADD q:tl * id e4 type x v 1 data not-json"));
    CHECK_EQ(run("tail tl --count 3 --no-follow --json", out, sizeof out), 0);
    CHECK(strstr(out, "\"e1\"") == NULL);
    CHECK_CONTAINS(out, "\"stream_id\":\"");
    const char *a = strstr(out, "\"id\":\"e2\""), *b = strstr(out, "\"id\":\"e3\"");
    CHECK(a && b && a < b); /* oldest first */
    CHECK_CONTAINS(out, "\"data\":{\"n\":2}");
    CHECK_CONTAINS(out, "\"data\":\"not-json\"");
    /* Follow: only what arrives after the start, then stopped by timeout(1). */
    char args[600];
    snprintf(args, sizeof args, "tail tl --count 0 --json & sleep 1; redis-cli -u %s XADD q:tl '*' id e5 type x v 1 data '{}' >/dev/null; "
                                "sleep 1; kill $!; wait", R.url);
    CHECK_EQ(run(args, out, sizeof out), 0);
    CHECK_CONTAINS(out, "\"id\":\"e5\"");
    CHECK(strstr(out, "\"e4\"") == NULL);
    /* an entry over QT_MAX_ENTRY_BYTES is not read, and said so; streams do not read it either */
    size_t n = 2u << 20;
    char *big = malloc(n);
    memset(big, 'b', n);
    freeReplyObject(redisCommand(c, "XADD q:tl * id e6 type x v 1 data %b", big, n));
    free(big);
    freeReplyObject(redisCommand(c, "XADD q:tl * id e7 type x v 1 data {}"));
    CHECK_EQ(run("tail tl --count 3 --no-follow --json", out, sizeof out), 0);
    snprintf(errpath, sizeof errpath, "%s/stderr.txt", dir);
    CHECK_CONTAINS(slurp(errpath), "1 entries over QT_MAX_ENTRY_BYTES=1048576 not shown");
    CHECK(strstr(out, "bbbb") == NULL);
    a = strstr(out, "\"id\":\"e5\""), b = strstr(out, "\"id\":\"e7\"");
    CHECK(a && b && a < b);
    CHECK_EQ(run("streams --json", out, sizeof out), 0);
    CHECK(strstr(out, "bbbb") == NULL);
    CHECK_EQ(run("tail", out, sizeof out), 2);
    CHECK_EQ(run("tail tl --count -1", out, sizeof out), 2);
    redisFree(c);
}

TEST(status_config_and_mode_through_the_services)
{
    char ps[256];
    int port, closed = th_free_port(); /* nothing listens there */
    th_bin("bin/policy-store", ps, sizeof ps);
    const char *env[] = {"QT_API_TOKEN=qtctl-test-token", NULL};
    pid_t p = th_service(ps, &R, "q", env, dir, "policy-store", &port, 1);
    CHECK(p > 0);
    /* The URLs reach qtctl through this process's environment. */
    char v[64];
    snprintf(v, sizeof v, "http://127.0.0.1:%d/", port);
    setenv("QT_POLICY_STORE_URL", v, 1);
    snprintf(v, sizeof v, "http://127.0.0.1:%d", closed);
    const char *others[] = {"QT_TRADING_ENGINE_URL", "QT_ML_THRESHOLD_URL", "QT_RL_DECISION_URL", "QT_TRADE_EXECUTOR_URL"};
    for (int i = 0; i < 4; i++) setenv(others[i], v, 1);
    CHECK_EQ(run("status --json", out, sizeof out), 1); /* not all ready */
    json_error_t je;
    json_t *rows = json_loads(out, 0, &je);
    CHECK_EQ(json_array_size(rows), 5);
    json_t *pol = json_array_get(rows, 4), *eng = json_array_get(rows, 0);
    CHECK_STR(json_string_value(json_object_get(pol, "service")), "policy-store");
    CHECK(json_is_true(json_object_get(pol, "healthy")));
    CHECK(json_is_true(json_object_get(pol, "ready")));
    CHECK(json_is_integer(json_object_get(pol, "uptime_s")));
    CHECK(json_is_false(json_object_get(eng, "healthy")));
    CHECK_CONTAINS(json_string_value(json_object_get(eng, "detail")), "onnect");
    json_decref(rows);
    CHECK_EQ(run("status", out, sizeof out), 1);
    CHECK_CONTAINS(out, "policy-store");
    const char *line = strstr(out, "policy-store ");
    CHECK(line && strstr(line, " ok ") && strstr(line, " yes "));
    setenv("QT_RL_DECISION_URL", "redis://nope", 1);
    CHECK_EQ(run("status", out, sizeof out), 2);

    /* config and mode through the same policy-store. */
    CHECK_EQ(run("config get", out, sizeof out), 0);
    CHECK_CONTAINS(out, "rl_v3.live.mode");
    CHECK_EQ(run("config get rl_v3.live.mode", out, sizeof out), 0);
    CHECK_CONTAINS(out, "\"SHADOW\"");
    CHECK_EQ(run("config get no.such.key", out, sizeof out), 1);
    unsetenv("QT_API_TOKEN");
    CHECK_EQ(run("mode PRIMARY", out, sizeof out), 2); /* no token */
    setenv("QT_API_TOKEN", "wrong-token", 1);
    CHECK_EQ(run("mode PRIMARY", out, sizeof out), 1);
    FILE *ef = fopen(errpath, "r");
    char errtext[512] = "";
    if (ef) errtext[fread(errtext, 1, sizeof errtext - 1, ef)] = '\0', fclose(ef);
    CHECK_CONTAINS(errtext, "HTTP 401");
    CHECK(strstr(errtext, "wrong-token") == NULL); /* the token never shows */
    setenv("QT_API_TOKEN", "qtctl-test-token", 1);
    CHECK_EQ(run("mode PRIMARY", out, sizeof out), 0);
    CHECK_CONTAINS(out, "\"PRIMARY\"");
    CHECK_EQ(run("mode primary", out, sizeof out), 2);
    CHECK_EQ(run("config set risk.max_leverage 5 --json", out, sizeof out), 0);
    CHECK_CONTAINS(out, "\"value\": 5");
    CHECK_EQ(run("config set risk.max_leverage lots", out, sizeof out), 1); /* 400 from the store */
    CHECK_EQ(run("config get rl_v3.live.mode --json", out, sizeof out), 0);
    CHECK_CONTAINS(out, "\"value\": \"PRIMARY\"");
    CHECK_EQ(run("config set rl_v3.live.min_confidence 0.7 --json", out, sizeof out), 0);
    CHECK_EQ(run("config get --json", out, sizeof out), 0); /* shortest round trip: 0.7, not 0.69999999999999996 */
    CHECK_CONTAINS(out, "\"value\": 0.7,");
    CHECK(strstr(out, "0.69999") == NULL && strstr(out, "0.59999") == NULL);
    unsetenv("QT_API_TOKEN");
    for (int i = 0; i < 4; i++) unsetenv(others[i]);
    unsetenv("QT_POLICY_STORE_URL");
    CHECK_EQ(th_stop(p, 10000), 0);
}

/* A service whose loop a blocking call holds (the executor waiting on the
 * exchange) is alive, not down: status says healthy, not ready, and why. */
TEST(status_tells_a_busy_service_from_a_dead_one)
{
    char worker[256], v[64], hbuf[512];
    int port, closed = th_free_port();
    th_bin("tests/bin/bus-worker", worker, sizeof worker);
    const char *env[] = {"WORKER_SLOW_US=3000000", "QT_HTTP_BUSY_MS=200", NULL};
    pid_t w = th_service(worker, &R, "qb", env, dir, "busy-worker", &port, 1);
    redisContext *c = th_redis_connect(&R);
    freeReplyObject(redisCommand(c, "XADD qb:market * id b1 type market.data.update v 1 ts 1764547200000 source t trace t data %s",
                                 "{\"symbol\":\"BTCUSDT\",\"interval\":\"1m\",\"open_time\":1,\"open\":1,\"high\":1,"
                                 "\"low\":1,\"close\":1,\"volume\":0,\"closed\":true,\"event_time\":1}"));
    redisFree(c);
    hbuf[0] = '\0';
    for (long long end = th_now_ms() + 2500; th_now_ms() < end && !strstr(hbuf, "\"busy\""); th_sleep_ms(20))
        th_http(port, "GET", "/health", NULL, NULL, hbuf, sizeof hbuf);
    CHECK_CONTAINS(hbuf, "\"status\":\"busy\"");
    snprintf(v, sizeof v, "http://127.0.0.1:%d", port);
    setenv("QT_TRADE_EXECUTOR_URL", v, 1);
    snprintf(v, sizeof v, "http://127.0.0.1:%d", closed);
    const char *others[] = {"QT_TRADING_ENGINE_URL", "QT_ML_THRESHOLD_URL", "QT_RL_DECISION_URL", "QT_POLICY_STORE_URL"};
    for (int i = 0; i < 4; i++) setenv(others[i], v, 1);
    CHECK_EQ(run("status --json", out, sizeof out), 1);
    json_t *rows = json_loads(out, 0, NULL), *ex = json_array_get(rows, 3);
    CHECK_STR(json_string_value(json_object_get(ex, "service")), "trade-executor");
    CHECK(json_is_true(json_object_get(ex, "healthy"))); /* alive */
    CHECK(json_is_false(json_object_get(ex, "ready")));
    CHECK_CONTAINS(json_string_value(json_object_get(ex, "detail")), "loop: busy: the service loop is held");
    json_decref(rows);
    unsetenv("QT_TRADE_EXECUTOR_URL");
    for (int i = 0; i < 4; i++) unsetenv(others[i]);
    CHECK_EQ(th_stop(w, 15000), 0);
}

TEST(backtest_arguments_and_errors)
{
    CHECK_EQ(run("backtest --help", out, sizeof out), 0);
    CHECK_CONTAINS(out, "usage: qtctl backtest --csv FILE");
    CHECK_EQ(run("backtest", out, sizeof out), 2);
    CHECK_CONTAINS(slurp(errpath), "give at least one --csv FILE");
    CHECK_EQ(run("backtest --csv x.csv --mode SHADOW", out, sizeof out), 2);
    CHECK_CONTAINS(slurp(errpath), "--mode must be PRIMARY or HYBRID");
    CHECK_EQ(run("backtest --csv x.csv --min-confidence high", out, sizeof out), 2);
    CHECK_EQ(run("backtest --csv /nonexistent/BTCUSDT-1m.csv", out, sizeof out), 1);
    CHECK_CONTAINS(slurp(errpath), "cannot read /nonexistent/BTCUSDT-1m.csv");
    CHECK_EQ(run("status --help", out, sizeof out), 0); /* --help everywhere */
    CHECK_CONTAINS(out, "usage: qtctl COMMAND");
}

TEST(backtest_runs_the_stack_and_reports_against_buy_and_hold)
{
    char csv[300], svg[300], args[800];
    snprintf(csv, sizeof csv, "%s/ETHUSDT-1m-2024-06.csv", dir);
    snprintf(svg, sizeof svg, "%s/equity.svg", dir);
    FILE *f = fopen(csv, "w");
    double p = 100, first = 0, last = 0;
    for (int i = 0; i < 400; i++) {
        double c = p * (1 + 0.004 * sin(i * 0.21) + 0.0003);
        long long t = 1717200000000LL + i * 60000LL;
        fprintf(f, "%lld,%.4f,%.4f,%.4f,%.4f,3,%lld,0,0,0,0,0\n", t, p, fmax(p, c) * 1.001, fmin(p, c) * 0.999, c, t + 59999);
        if (i == 0) first = r4(c);
        last = r4(c);
        p = c;
    }
    fclose(f);
    snprintf(args, sizeof args, "backtest --csv %s --mode PRIMARY --min-confidence 0.3 --json --svg %s --timeout 120", csv, svg);
    CHECK_EQ(run(args, out, sizeof out), 0);
    json_t *j = json_loads(out, 0, NULL), *st = json_object_get(j, "strategy"), *bh = json_object_get(j, "buy_and_hold");
    CHECK(j != NULL);
    CHECK_EQ(json_integer_value(json_object_get(j, "bars")), 400);
    CHECK_STR(json_string_value(json_object_get(j, "mode")), "PRIMARY");
    double f4 = 1 - 0.0004; /* the paper fee in and out */
    CHECK_NEAR(json_number_value(json_object_get(bh, "return_pct")), (f4 * f4 * last / first - 1) * 100, 1e-6);
    CHECK_EQ(json_integer_value(json_object_get(bh, "trades")), 1);
    long trades = (long)json_integer_value(json_object_get(st, "trades"));
    long fills = (long)json_integer_value(json_object_get(j, "executed"));
    long open = (long)json_integer_value(json_object_get(j, "open_positions_at_end"));
    CHECK(fills >= 1);                      /* the low bar made it trade */
    CHECK_EQ(fills, 2 * trades + open);     /* every closed trade is an entry and an exit */
    CHECK_NEAR(json_number_value(json_object_get(st, "final_equity")),
               10000 * (1 + json_number_value(json_object_get(st, "return_pct")) / 100), 1e-6);
    if (trades) CHECK(json_number_value(json_object_get(st, "win_rate")) >= 0 && json_number_value(json_object_get(st, "win_rate")) <= 1);
    CHECK(json_number_value(json_object_get(st, "fees")) > 0);
    json_decref(j);
    const char *s = slurp(svg);
    CHECK_CONTAINS(s, "<svg xmlns=\"http://www.w3.org/2000/svg\"");
    CHECK(strstr(s, "<polyline") && strstr(strstr(s, "<polyline") + 1, "<polyline")); /* both curves */
    snprintf(args, sizeof args, "backtest --csv %s --svg %s --timeout 120", csv, svg); /* the text report */
    CHECK_EQ(run(args, out, sizeof out), 0);
    CHECK_CONTAINS(out, "strategy   buy-and-hold");
    CHECK_CONTAINS(out, "max drawdown");
    CHECK_CONTAINS(out, "Sharpe (annualised)");
    CHECK_CONTAINS(slurp(errpath), "100% 400/400 bars");
    /* from another folder (the models are found next to qtctl; they were looked for in ./models) and
     * writing nothing there without --svg (backtest-equity.svg was written into the current folder) */
    char elsewhere[300], cmd[PATH_MAX + 2400], qtctl[PATH_MAX];
    CHECK(realpath(bin, qtctl) != NULL);
    snprintf(elsewhere, sizeof elsewhere, "%s/elsewhere", dir);
    mkdir(elsewhere, 0755);
    snprintf(cmd, sizeof cmd, "cd %s && REDIS_URL=%s timeout %d %s backtest --csv %s --timeout 120 >%s/bt.out 2>%s", elsewhere,
             R.url, run_limit_s, qtctl, csv, dir, errpath);
    int xs = system(cmd);
    CHECK(WIFEXITED(xs) && WEXITSTATUS(xs) == 0);
    if (!(WIFEXITED(xs) && WEXITSTATUS(xs) == 0)) printf("# %s\n", slurp(errpath));
    DIR *dd = opendir(elsewhere);
    int entries = 0;
    for (struct dirent *de; dd && (de = readdir(dd));) entries += de->d_name[0] != '.';
    if (dd) closedir(dd);
    CHECK_EQ(entries, 0);
}

static void exchange_fault(int port, const char *q)
{
    char path[256];
    snprintf(path, sizeof path, "/_test/fault?%s", q);
    CHECK_EQ(th_http(port, "POST", path, NULL, NULL, out, sizeof out), 200);
}

/* qtctl klines fetch against the test exchange: two days of 1m bars in two
 * pages, in the layout the replay reads; resumed after a torn write to the
 * same bytes; a 429 waited out; a bad reply and bad arguments refused with
 * the reason. klines synth: the same arguments, the same file. */
TEST(klines_fetch_pages_resumes_and_synth_is_reproducible)
{
    char exbin[256], log[300], e0[64], f1[300], f2[300], args[800], first_bad[300], err[300];
    th_bin("tests/bin/test-exchange", exbin, sizeof exbin);
    int port = th_free_port();
    snprintf(e0, sizeof e0, "TX_PORT=%d", port);
    snprintf(log, sizeof log, "%s/exchange.log", dir);
    const char *env[] = {e0, NULL}, *argv[] = {exbin, NULL};
    pid_t ex = th_spawn(exbin, argv, env, log);
    CHECK_EQ(th_wait_http(port, "/fapi/v1/time", 200, 5000), 0);
    long long to = ((long long)time(NULL) / 3600 - 1) * 3600000, from = to - 2 * 86400000LL; /* 2880 bars: two pages */
    snprintf(f1, sizeof f1, "%s/BTCUSDT-1m.csv", dir);
    snprintf(args, sizeof args, "klines fetch BTCUSDT 1m %lld %lld --out %s --base-url http://127.0.0.1:%d", from, to, f1, port);
    CHECK_EQ(run(args, out, sizeof out), 0);
    CHECK_CONTAINS(out, "2880 bars (2880 new)");
    long n = 0, bad = 0;
    kline_t *k = kline_load_csv(f1, &n, &bad, first_bad, sizeof first_bad, err, sizeof err);
    CHECK(k != NULL);
    CHECK_EQ(n, 2880);
    CHECK_EQ(bad, 0);
    for (long i = 0; k && i < n; i++) CHECK_EQ(k[i].open_time, from + i * 60000LL); /* every minute, once, in order */
    free(k);
    size_t len1, len2;
    char *full = th_slurp(f1, &len1);
    if (!full || len1 < 100000) CHECK_FAIL_AT("the fetch wrote %zu bytes", full ? len1 : 0);
    /* a fetch killed mid-write: the first 1000 lines and half a line; run again, the same file */
    snprintf(f2, sizeof f2, "%s/resumed.csv", dir);
    FILE *w = fopen(f2, "wb");
    const char *cut = full;
    for (int i = 0; i < 1000 && cut; i++) cut = strchr(cut, '\n') + 1;
    fwrite(full, 1, (size_t)(cut - full) + 20, w);
    fclose(w);
    exchange_fault(port, "status=429&count=1&retry_after=1&path=/fapi/v1/klines"); /* and a rate limit on the way */
    snprintf(args, sizeof args, "klines fetch BTCUSDT 1m %lld %lld --out %s --base-url http://127.0.0.1:%d", from, to, f2, port);
    CHECK_EQ(run(args, out, sizeof out), 0);
    CHECK_CONTAINS(out, "2880 bars (1880 new)");
    char *again = th_slurp(f2, &len2);
    CHECK(again && full && len1 == len2 && memcmp(full, again, len1) == 0);
    free(again);
    FILE *ef = fopen(errpath, "r");
    char etext[8192] = "";
    if (ef) etext[fread(etext, 1, sizeof etext - 1, ef)] = 0, fclose(ef);
    CHECK_CONTAINS(etext, "resuming after");
    CHECK_CONTAINS(etext, "Too many requests.; waiting 1 s");
    /* a reply that is not klines: stopped, with the reason, the bars before kept */
    snprintf(f2, sizeof f2, "%s/garbage.csv", dir);
    exchange_fault(port, "garbage=1&path=/fapi/v1/klines");
    snprintf(args, sizeof args, "klines fetch ETHUSDT 1m %lld %lld --out %s --base-url http://127.0.0.1:%d", from, to, f2, port);
    CHECK_EQ(run(args, out, sizeof out), 1);
    ef = fopen(errpath, "r");
    if (ef) etext[fread(etext, 1, sizeof etext - 1, ef)] = 0, fclose(ef);
    CHECK_CONTAINS(etext, "a bad reply for startTime=");
    snprintf(args, sizeof args, "klines fetch BTCUSDT 1m %lld %lld --out %s --base-url http://127.0.0.1:%d", to, from, f2, port);
    CHECK_EQ(run(args, out, sizeof out), 2); /* TO before FROM */
    CHECK_EQ(run("klines fetch btc 1m 2024-05-01 2024-05-02", out, sizeof out), 2);
    CHECK_EQ(run("klines fetch BTCUSDT 7m 2024-05-01 2024-05-02", out, sizeof out), 2);
    CHECK_EQ(run("klines fetch BTCUSDT 1m 2024-13-01 2024-05-02", out, sizeof out), 2);
    snprintf(args, sizeof args, "klines fetch BTCUSDT 1m 2024-05-01 2024-05-02 --out %s --base-url http://example.com", f2);
    CHECK_EQ(run(args, out, sizeof out), 2); /* not https */
    free(full);
    th_kill(ex, SIGTERM);
    th_wait(ex, 5000, NULL);

    /* synth: reproducible, the replay's layout, hourly bars made of minutes */
    snprintf(f1, sizeof f1, "%s/s1.csv", dir), snprintf(f2, sizeof f2, "%s/s2.csv", dir);
    snprintf(args, sizeof args, "klines synth --symbol SOLUSDT --interval 1h --bars 500 --seed 3 --out %s", f1);
    CHECK_EQ(run(args, out, sizeof out), 0);
    snprintf(args, sizeof args, "klines synth --symbol SOLUSDT --interval 1h --bars 500 --seed 3 --out %s", f2);
    CHECK_EQ(run(args, out, sizeof out), 0);
    char *a = th_slurp(f1, &len1), *b = th_slurp(f2, &len2);
    CHECK(a && b && len1 == len2 && memcmp(a, b, len1) == 0);
    free(a), free(b);
    k = kline_load_csv(f1, &n, &bad, first_bad, sizeof first_bad, err, sizeof err);
    CHECK_EQ(n, 500);
    CHECK_EQ(bad, 0);
    CHECK(k && k[1].open_time - k[0].open_time == 3600000 && k[0].close_time == k[0].open_time + 3599999);
    free(k);
    snprintf(args, sizeof args, "klines synth --symbol SOLUSDT --interval 1h --bars 500 --seed 4 --out %s", f2);
    CHECK_EQ(run(args, out, sizeof out), 0);
    a = th_slurp(f1, &len1), b = th_slurp(f2, &len2);
    CHECK(a && b && (len1 != len2 || memcmp(a, b, len1) != 0)); /* another seed, another market */
    free(a), free(b);
    CHECK_EQ(run("klines synth --symbol SOLUSDT --interval 1h --bars 0 --out x.csv", out, sizeof out), 2);
}

int main(int argc, char **argv);

__attribute__((constructor)) static void setup(void)
{
    th_watchdog(300);
    th_bin("bin/qtctl", bin, sizeof bin);
    th_tempdir(dir, sizeof dir);
    snprintf(errpath, sizeof errpath, "%s/stderr.txt", dir);
    if (th_redis_start(&R, 0) < 0) exit(2);
}

CHECK_MAIN()
