/* Fault injection on the whole stack (tests/stack.c): the five real services
 * on a real redis-server replaying bars, while
 *  - redis-server is restarted (AOF everysec) and then paused (SIGSTOP)
 *    longer than the services' watchdogs;
 *  - the exchange (tests/bin/test-exchange behind the binance-futures venue)
 *    answers 5xx, 429 and too slowly for a while;
 *  - garbage is written into every stream, then one bad bar is fixed and
 *    replayed with `qtctl dlq replay`;
 *  - every service's HTTP server is abused.
 * After each: nothing lost, nothing duplicated (every intent settled once,
 * the ledger recomputes), the right DLQ entries with their reasons, and every
 * service ready. Figures on stdout ("# faults-..."). */
#include "check.h"
#include "obs.h"
#include "stack.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static th_redis_t R;
static redisContext *rc;
static char dir[256], why[1024], out[1 << 16], exbin[256];

static void start(qt_stack_t *s, th_redis_t *r, redisContext *c, const char *ns, const char *feed, const char *speed,
                  const char *mode, const char *min_conf)
{
    if (stack_start(s, r, c, dir, ns, feed, speed, mode, min_conf, 1, why, sizeof why) < 0) CHECK_FAIL_AT("%s", why);
}

static void check_book(const qt_stack_t *s, const char *ns, stack_book_t *b)
{
    stack_read_book(s->rc, ns, b);
    if (stack_check_book(s, b, why, sizeof why) < 0) CHECK_FAIL_AT("%s", why);
    CHECK_EQ(stack_dead(s->rc, ns), 0);
    for (int i = 0; i < STACK_NSVC; i++) CHECK_EQ(th_wait_http(s->port[i], "/ready", 200, 10000), 0);
}

TEST(redis_restarted_and_paused_mid_replay_loses_nothing)
{
    static th_redis_t R2;
    static stack_book_t bk;
    char a[300], b[300], feed[700];
    qt_stack_t s = {.extra = {"QT_REDIS_TIMEOUT_MS=1000", NULL}};
    CHECK_EQ(th_redis_start(&R2, 1), 0); /* AOF, appendfsync everysec */
    redisContext *c = th_redis_connect(&R2);
    snprintf(a, sizeof a, "%s/BTCUSDT-1m-2024-05.csv", dir);
    snprintf(b, sizeof b, "%s/ETHUSDT-1m-2024-05.csv", dir);
    stack_write_csv(a, 600, 0.0003, 0.2), stack_write_csv(b, 600, -0.0002, 1.1);
    snprintf(feed, sizeof feed, "replay:%s,%s", a, b);
    start(&s, &R2, c, "rr", feed, "900", "PRIMARY", "0.3"); /* 15 bars/s per symbol */
    th_sleep_ms(6000);
    redisFree(c);
    CHECK_EQ(th_redis_restart(&R2), 0); /* SIGTERM: Redis fsyncs its AOF, comes back on the same port */
    s.rc = c = th_redis_connect(&R2);
    th_sleep_ms(6000);
    kill(R2.pid, SIGSTOP); /* frozen past the 1 s watchdog */
    int unready = 0;
    for (long long end = th_now_ms() + 4000; th_now_ms() < end; th_sleep_ms(200))
        unready |= th_http(s.port[ENGINE], "GET", "/ready", NULL, NULL, out, sizeof out) == 503;
    kill(R2.pid, SIGCONT);
    CHECK(unready); /* readiness said so while Redis was frozen */
    CHECK_EQ(stack_settle(&s, 1200, 180000), 0);
    long entries, bars = stack_distinct_ids(c, "rr:market", NULL, &entries);
    CHECK_EQ(bars, 1200); /* every bar; a publish whose reply the restart cut is sent again with the same id */
    check_book(&s, "rr", &bk);
    printf("# faults-redis: restart=1 pause_ms=4000 bars=%ld market_entries=%ld (re-sent, same ids) intents=%d "
           "settled_once=1 lost=0 duplicated_effects=0 dead_lettered=0\n", bars, entries, bk.nintent);
    CHECK_EQ(stack_stop(&s), 0);
    redisFree(c);
    th_redis_stop(&R2);
}

TEST(venue_errors_open_the_breaker_nothing_dead_lettered_then_recovery)
{
    static stack_book_t bk;
    static char txport[32], base[96];
    char a[300], feed[400], log[300];
    int port = th_free_port();
    snprintf(txport, sizeof txport, "TX_PORT=%d", port);
    snprintf(base, sizeof base, "QT_BINANCE_BASE_URL=http://127.0.0.1:%d", port);
    const char *xenv[] = {txport, "TX_API_KEY=ex-key", "TX_API_SECRET=ex-secret", NULL}, *argv[] = {exbin, NULL};
    snprintf(log, sizeof log, "%s/exchange.log", dir);
    pid_t ex = th_spawn(exbin, argv, xenv, log);
    CHECK_EQ(th_wait_http(port, "/fapi/v1/time", 200, 5000), 0);
    qt_stack_t s = {.extra = {"QT_VENUE=binance-futures", base, "QT_BINANCE_API_KEY=ex-key", "QT_BINANCE_API_SECRET=ex-secret",
                              "QT_RETRY_DELAY_MS=100", "QT_VENUE_BREAKER_MIN_CALLS=3", "QT_VENUE_BREAKER_OPEN_WAIT_MS=1500",
                              "QT_BINANCE_TIMEOUT_MS=800"}};
    snprintf(a, sizeof a, "%s/SOLUSDT-1m-2024-05.csv", dir); /* the exchange's SOLUSDT trades near 100 too */
    stack_write_csv(a, 500, 0.0003, 0.9);
    snprintf(feed, sizeof feed, "replay:%s", a);
    start(&s, &R, rc, "vf", feed, "400", "PRIMARY", "0.2");
    for (long long end = th_now_ms() + 30000; th_now_ms() < end && th_count_type(rc, "vf:execution", "trade.executed") < 1;)
        th_sleep_ms(100);
    CHECK(th_count_type(rc, "vf:execution", "trade.executed") >= 1);
    CHECK_EQ(th_http(port, "POST", "/_test/fault?status=503&count=25", NULL, "", out, sizeof out), 200);
    int opened = 0;
    for (long long end = th_now_ms() + 30000; th_now_ms() < end && !opened; th_sleep_ms(100))
        opened = th_http(s.port[EXEC], "GET", "/ready", NULL, NULL, out, sizeof out) == 503 && strstr(out, "venue");
    CHECK(opened); /* the venue breaker opened and readiness says why */
    CHECK_EQ(th_http(port, "POST", "/_test/fault?status=429&count=4&retry_after=1", NULL, "", out, sizeof out), 200);
    CHECK_EQ(th_http(port, "POST", "/_test/fault?delay_ms=1500&count=3", NULL, "", out, sizeof out), 200);
    CHECK_EQ(stack_settle(&s, 500, 180000), 0);
    check_book(&s, "vf", &bk); /* every intent filled or failed once, nothing dead-lettered, ready again */
    CHECK_EQ(th_http(port, "GET", "/_test/stats", NULL, NULL, out, sizeof out), 200);
    printf("# faults-venue: 503x25 429x4 slow x3, breaker opened=%d intents=%d dead_lettered=0 exchange=%.200s\n", opened, bk.nintent, out);
    CHECK_EQ(stack_stop(&s), 0);
    th_kill(ex, SIGKILL);
    th_wait(ex, 5000, NULL);
}

/* A raw entry into ns:stream; returns its stream id in idbuf. */
static void raw(const char *ns, const char *stream, const char *id, const char *type, const char *v, const char *data,
                char *idbuf, size_t len)
{
    char key[64];
    snprintf(key, sizeof key, "%s:%s", ns, stream);
    redisReply *r = redisCommand(rc, "XADD %s * id %s type %s v %s ts 1764547200000 source test/garbage trace t data %b", key, id, type, v,
                                 data, strlen(data));
    snprintf(idbuf, len, "%s", r && r->type == REDIS_REPLY_STRING ? r->str : "");
    if (r) freeReplyObject(r);
}

/* The same as a v2 entry: fields is "name=value" pairs separated by spaces. */
static void raw_flat(const char *ns, const char *stream, const char *id, const char *type, const char *fields,
                     char *idbuf, size_t len)
{
    char key[64], *copy = strdup(fields), *save = NULL;
    const char *argv[64] = {"XADD", key, "*", "id", id, "type", type, "v", "2", "ts", "1764547200000", "source",
                            "test/garbage", "trace", "t"};
    int n = 15;
    snprintf(key, sizeof key, "%s:%s", ns, stream);
    for (char *p = strtok_r(copy, " ", &save); p && n < 62; p = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(p, '=');
        if (!eq) continue;
        *eq = '\0';
        argv[n++] = p, argv[n++] = eq + 1;
    }
    redisReply *r = redisCommandArgv(rc, n, argv, NULL);
    snprintf(idbuf, len, "%s", r && r->type == REDIS_REPLY_STRING ? r->str : "");
    if (r) freeReplyObject(r);
    free(copy);
}

/* DLQ entries of ns:stream whose origin_id is sid, and whether each has an
 * error (the last one's in dead_error). */
static char dead_error[1024];
static int dead_for(const char *ns, const char *stream, const char *sid, int *with_error)
{
    char key[64];
    int n = 0;
    snprintf(key, sizeof key, "%s:%s:dlq", ns, stream);
    redisReply *r = redisCommand(rc, "XRANGE %s - +", key);
    for (size_t i = 0; r && i < r->elements; i++) {
        const redisReply *f = r->element[i]->element[1];
        const char *origin = NULL, *error = NULL;
        for (size_t k = 0; k + 1 < f->elements; k += 2) {
            if (!strcmp(f->element[k]->str, "origin_id")) origin = f->element[k + 1]->str;
            if (!strcmp(f->element[k]->str, "error")) error = f->element[k + 1]->str;
        }
        if (origin && !strcmp(origin, sid)) n++, *with_error &= error && *error, snprintf(dead_error, sizeof dead_error, "%s", error ? error : "");
    }
    if (r) freeReplyObject(r);
    return n;
}

TEST(garbage_in_every_stream_lands_in_its_dlq_with_a_reason)
{
    static const char *streams[] = {"market", "signal", "vote", "trade.intent", "execution", "feedback", "policy"};
    enum { NSTREAMS = sizeof streams / sizeof streams[0] };
    static char huge[300000];
    qt_stack_t s = {.extra = {NULL}};
    start(&s, &R, rc, "gb", "none", "1", "SHADOW", NULL); /* no feed: the market stream is ours */
    memset(huge, 'x', sizeof huge - 1);
    memcpy(huge, "{\"symbol\":\"", 11), memcpy(huge + sizeof huge - 3, "\"}", 3);
    struct { const char *type, *v, *data, *what; } bad[] = {
        {"market.data.update", "1", "not json at all", "not JSON"},
        {"market.data.update", "1", "{\"symbol\":\"BTCUSDT\",\"close\":\"abc\"}", "wrong types"},
        {"market.data.update", "1", huge, "a 300 KB field"},
        {"no.such.type", "1", "{}", "an unknown type"},
        {"market.data.update", "99", "{}", "a version nobody reads"},
        /* contract v2: the payload's fields as fields ("name=value" pairs) */
        {"market.data.update", "2", "symbol=BTCUSDT interval=1m open_time=1 open=1 high=1 low=1 close=abc volume=1 closed=true event_time=2",
         "a flat bar whose close is not a number"},
        {"market.data.update", "2", "symbol=BTCUSDT interval=1m open_time=1 open=1 high=1 low=1 close=1 volume=1 closed=true event_time=2 surprise=1",
         "a flat bar with a field its schema lacks"},
        {"market.data.update", "2", "data={\"symbol\":\"BTCUSDT\"}", "a v1 payload under v 2"},
    };
    enum { NBAD = sizeof bad / sizeof bad[0] };
    char sid[NSTREAMS][NBAD][64];
    for (int i = 0; i < NSTREAMS; i++)
        for (int k = 0; k < NBAD; k++) {
            char id[32];
            snprintf(id, sizeof id, "garbage-%d-%d", i, k);
            if (strcmp(bad[k].v, "2") == 0) raw_flat("gb", streams[i], id, bad[k].type, bad[k].data, sid[i][k], sizeof sid[i][k]);
            else raw("gb", streams[i], id, bad[k].type, bad[k].v, bad[k].data, sid[i][k], sizeof sid[i][k]);
        }
    CHECK_EQ(stack_settle(&s, 0, 30000), 0); /* every group handled every entry: none pending */
    long total = 0;
    for (int i = 0; i < NSTREAMS; i++)
        for (int k = 0; k < NBAD; k++) {
            int with_error = 1, n = dead_for("gb", streams[i], sid[i][k], &with_error);
            if (n < 1) CHECK_FAIL_AT("%s on %s is not in %s:dlq", bad[k].what, streams[i], streams[i]);
            CHECK(with_error); /* each copy says why */
            static const char *const named[NBAD] = {[5] = "data.close: 'abc' is not a number",
                                                    [6] = "data.surprise: not a field of market.data.update",
                                                    [7] = "data.data: not a field of market.data.update"};
            if (named[k] && !strstr(dead_error, named[k]))
                CHECK_FAIL_AT("%s on %s: '%s' lacks '%s'", bad[k].what, streams[i], dead_error, named[k]);
            total += n;
        }
    for (int i = 0; i < STACK_NSVC; i++) CHECK_EQ(th_wait_http(s.port[i], "/ready", 200, 5000), 0);
    printf("# faults-garbage: %d bad entries in %d streams -> %ld DLQ entries (one per consuming group), all services ready\n",
           NSTREAMS * NBAD, NSTREAMS, total);

    /* The operator fixes the bar with the wrong types and replays it with qtctl;
     * the symbol's bars before it fill rl-decision's windows (OBS_WARMUP) so
     * that the fixed bar is decided on. */
    for (int i = OBS_WARMUP - 1; i > 0; i--) {
        char bar[512];
        long long ot = 1714521600000LL - i * 60000LL;
        snprintf(bar, sizeof bar,
                 "{\"symbol\":\"BTCUSDT\",\"interval\":\"1m\",\"open_time\":%lld,\"open\":100,\"high\":%g,\"low\":99,"
                 "\"close\":%g,\"volume\":3,\"closed\":true,\"event_time\":%lld}",
                 ot, 101 + 0.1 * (i % 3), 100 + 0.2 * (i % 5), ot + 59999);
        th_xadd_event(rc, "gb:market", "market.data.update", bar, NULL);
    }
    CHECK_EQ(stack_settle(&s, 0, 30000), 0);
    int with_error = 1, copies = dead_for("gb", "market", sid[0][1], &with_error);
    redisReply *r = redisCommand(rc, "XLEN gb:market:dlq");
    long long before = r ? r->integer : -1;
    if (r) freeReplyObject(r);
    r = redisCommand(rc, "XRANGE gb:market:dlq - +");
    char dlq_id[64] = "", cmd[2048], qt[256], reply[1024] = "";
    for (size_t i = 0; r && i < r->elements && !dlq_id[0]; i++) {
        const redisReply *f = r->element[i]->element[1];
        for (size_t k = 0; k + 1 < f->elements; k += 2)
            if (!strcmp(f->element[k]->str, "origin_id") && !strcmp(f->element[k + 1]->str, sid[0][1]))
                snprintf(dlq_id, sizeof dlq_id, "%s", r->element[i]->element[0]->str);
    }
    if (r) freeReplyObject(r);
    const char *fixed = "{\"symbol\":\"BTCUSDT\",\"interval\":\"1m\",\"open_time\":1714521600000,\"close_time\":1714521659999,"
                        "\"open\":100,\"high\":101,\"low\":99,\"close\":100.5,\"volume\":3,\"quote_volume\":300,\"trades\":3,"
                        "\"taker_buy_volume\":1,\"closed\":true,\"event_time\":1714521659999}";
    snprintf(cmd, sizeof cmd, "REDIS_URL=%s QT_NAMESPACE=gb %s dlq replay market --id %s --set 'data=%s' 2>&1", R.url,
             th_bin("bin/qtctl", qt, sizeof qt), dlq_id, fixed);
    FILE *p = popen(cmd, "r");
    size_t n = p ? fread(reply, 1, sizeof reply - 1, p) : 0;
    reply[n] = '\0';
    CHECK_EQ(p ? pclose(p) : -1, 0);
    char want[128];
    snprintf(want, sizeof want, "replayed 1 entries of gb:market:dlq (%d more dead letters of the same events removed)", copies - 1);
    CHECK_CONTAINS(reply, want);
    CHECK_EQ(dead_for("gb", "market", sid[0][1], &with_error), 0); /* no copy left behind */
    CHECK_EQ(stack_settle(&s, 0, 30000), 0);                       /* every group handled it */
    int signalled = 0;
    for (long long end = th_now_ms() + 10000; th_now_ms() < end && !signalled; th_sleep_ms(100)) {
        r = redisCommand(rc, "XRANGE gb:signal - +");
        for (size_t i = 0; r && i < r->elements; i++) {
            const redisReply *f = r->element[i]->element[1];
            const char *ot = th_entry_field(f, "open_time"), *sym = th_entry_field(f, "symbol");
            signalled |= ot && sym && !strcmp(ot, "1714521600000") && !strcmp(sym, "BTCUSDT");
        }
        if (r) freeReplyObject(r);
    }
    CHECK(signalled); /* rl-decision read the fixed bar and decided on it */
    r = redisCommand(rc, "XLEN gb:market:dlq");
    long long left = r ? r->integer : -1;
    if (r) freeReplyObject(r);
    CHECK_EQ(left, before - copies); /* nothing else moved: the fixed bar is not dead-lettered again */
    for (int i = 0; i < STACK_NSVC; i++) CHECK_EQ(th_wait_http(s.port[i], "/ready", 200, 5000), 0);
    printf("# faults-dlq-replay: the bar with wrong types fixed with qtctl dlq replay --set: 1 replayed, %d copies removed, "
           "signalled by rl-decision, not dead-lettered again\n", copies - 1);

    /* A v2 dead letter is mended field by field: the flat bar whose close
     * was not a number, with --set close=1. */
    int copies2 = dead_for("gb", "market", sid[0][5], &with_error);
    CHECK(copies2 >= 1);
    r = redisCommand(rc, "XRANGE gb:market:dlq - +");
    for (size_t i = 0; r && i < r->elements; i++) {
        const char *origin = th_entry_field(r->element[i]->element[1], "origin_id");
        if (origin && !strcmp(origin, sid[0][5])) snprintf(dlq_id, sizeof dlq_id, "%s", r->element[i]->element[0]->str);
    }
    if (r) freeReplyObject(r);
    snprintf(cmd, sizeof cmd, "REDIS_URL=%s QT_NAMESPACE=gb %s dlq replay market --id %s --set close=1 2>&1", R.url,
             th_bin("bin/qtctl", qt, sizeof qt), dlq_id);
    p = popen(cmd, "r");
    n = p ? fread(reply, 1, sizeof reply - 1, p) : 0;
    reply[n] = '\0';
    CHECK_EQ(p ? pclose(p) : -1, 0);
    CHECK_CONTAINS(reply, "replayed 1 entries of gb:market:dlq");
    CHECK_EQ(dead_for("gb", "market", sid[0][5], &with_error), 0);
    CHECK_EQ(stack_settle(&s, 0, 30000), 0);
    r = redisCommand(rc, "XLEN gb:market:dlq");
    CHECK_EQ(r ? r->integer : -1, left - copies2); /* the mended flat bar is not dead-lettered again */
    if (r) freeReplyObject(r);
    CHECK_EQ(stack_stop(&s), 0);
}

/* Send raw bytes to port; the status code of the reply (0 when closed without one). */
static int raw_http(int port, const char *req, size_t len)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0), code = 0;
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        for (size_t off = 0; off < len;) {
            ssize_t n = send(fd, req + off, len - off, MSG_NOSIGNAL);
            if (n <= 0) break;
            off += (size_t)n;
        }
        char buf[256] = "";
        if (recv(fd, buf, sizeof buf - 1, 0) > 12) code = atoi(buf + 9);
    }
    close(fd);
    return code;
}

TEST(http_abuse_is_refused_and_every_service_stays_up)
{
    static char big[300000];
    qt_stack_t s = {.extra = {NULL}};
    start(&s, &R, rc, "ha", "none", "1", "SHADOW", NULL);
    /* each service's mutating endpoints */
    const char *writes[STACK_NSVC][3] = {{NULL},
                                         {"POST /api/v1/reinforcement/reset_weights", "POST /api/v1/ensemble/reload", NULL},
                                         {"POST /api/v1/rl/reload", NULL},
                                         {NULL},
                                         {"PUT /api/v1/policy/config/rl_v3.live.mode", "POST /api/v1/policy/reset-daily", NULL}};
    int refused = 0;
    for (int i = 0; i < STACK_NSVC; i++) {
        int p = s.port[i];
        const char *garbage = "GARBAGE\r\n\r\n", *nul = "GET /%00/health HTTP/1.1\r\nHost: x\r\n\r\n";
        int c1 = raw_http(p, garbage, strlen(garbage)), c2 = raw_http(p, nul, strlen(nul));
        CHECK(c1 == 0 || (c1 >= 400 && c1 < 500));
        CHECK(c2 >= 400 && c2 < 500);
        CHECK_EQ(th_http(p, "GET", "/no/such/path", NULL, NULL, out, sizeof out), 404);
        CHECK_CONTAINS(out, "\"error\"");
        int n = snprintf(big, sizeof big, "POST /api/v1/status HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                         "Content-Length: %d\r\n\r\n", 280000);
        memset(big + n, '[', sizeof big - (size_t)n);
        int c3 = raw_http(p, big, (size_t)n + 280000);
        CHECK(c3 == 413 || c3 == 0 || c3 == 400 || c3 == 405); /* too big: refused before it is read */
        refused += 3;
        for (int k = 0; writes[i][k]; k++) {
            char method[8], path[128];
            sscanf(writes[i][k], "%7s %127s", method, path);
            CHECK_EQ(th_http(p, method, path, NULL, "{\"value\":\"PRIMARY\"}", out, sizeof out), 401);
            CHECK_EQ(th_http(p, method, path, "Authorization: Bearer wrong\r\n", "{\"value\":\"PRIMARY\"}", out, sizeof out), 401);
            CHECK_CONTAINS(out, "\"error\"");
            refused += 2;
        }
    }
    CHECK_EQ(th_http(s.port[POLICY], "PUT", "/api/v1/policy/config/rl_v3.live.mode", STACK_AUTH, "{\"value\":", out, sizeof out), 400);
    CHECK_EQ(th_http(s.port[POLICY], "PUT", "/api/v1/policy/config/rl_v3.live.mode", STACK_AUTH, "{\"value\":\"FAST\"}", out, sizeof out), 400);
    CHECK_EQ(th_http(s.port[ENGINE], "GET", "/api/v1/decisions?limit=-5", NULL, NULL, out, sizeof out), 400);
    refused += 3;
    json_t *m = stack_api(s.port[POLICY], "/api/v1/policy/config/rl_v3.live.mode");
    CHECK_STR(json_string_value(json_object_get(m, "value")), "SHADOW"); /* nothing changed */
    json_decref(m);
    for (int i = 0; i < STACK_NSVC; i++) {
        CHECK_EQ(th_http(s.port[i], "GET", "/health", NULL, NULL, out, sizeof out), 200);
        CHECK(kill(s.pid[i], 0) == 0);
    }
    printf("# faults-http: %d abusive requests refused, 5 services up\n", refused);
    CHECK_EQ(stack_stop(&s), 0);
}

int main(int argc, char **argv);

__attribute__((constructor)) static void setup(void)
{
    th_watchdog(900);
    th_tempdir(dir, sizeof dir);
    th_bin("tests/bin/test-exchange", exbin, sizeof exbin);
    if (th_redis_start(&R, 0) < 0 || !(rc = th_redis_connect(&R))) exit(2);
}

CHECK_MAIN()
