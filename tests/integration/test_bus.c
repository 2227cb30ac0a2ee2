/* Integration tests: the bus against a real redis-server and real consumer
 * processes (tests/bin/bus-worker). Each test uses its own namespace. */
#include "bus.h"
#include "check.h"
#include "dlq.h"
#include "harness.h"
#include "log.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static th_redis_t R;      /* plain instance */
static th_redis_t RA;     /* AOF instance for the restart test */
static char worker_path[256], logdir[256];

/* ---------- helpers ---------- */

static redisReply *cmd(th_redis_t *r, const char *fmt, ...)
{
    static redisContext *c[2];
    int i = r == &RA;
    if (!c[i] || c[i]->err) {
        if (c[i]) redisFree(c[i]);
        c[i] = th_redis_connect(r);
    }
    if (!c[i]) return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(c[i], fmt, ap);
    va_end(ap);
    if (!rep) {
        redisFree(c[i]);
        c[i] = NULL;
    }
    return rep;
}

static long long cmd_int(th_redis_t *r, const char *fmt, const char *a, const char *b)
{
    redisReply *rep = cmd(r, fmt, a, b);
    long long v = rep && rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
    if (rep) freeReplyObject(rep);
    return v;
}

static long long xlen(th_redis_t *r, const char *key) { return cmd_int(r, "XLEN %s", key, NULL); }

/* Pending count of a group (XPENDING summary), -1 on error. */
static long long pending(th_redis_t *r, const char *key, const char *group)
{
    redisReply *rep = cmd(r, "XPENDING %s %s", key, group);
    long long v = rep && rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 ? rep->element[0]->integer : -1;
    if (rep) freeReplyObject(rep);
    return v;
}

static int wait_until(long long (*f)(th_redis_t *, const char *), th_redis_t *r, const char *key,
                      long long want, int timeout_ms)
{
    for (long long end = th_now_ms() + timeout_ms; th_now_ms() < end; th_sleep_ms(50))
        if (f(r, key) >= want) return 0;
    return -1;
}

static int wait_pending_zero(th_redis_t *r, const char *key, const char *group, int timeout_ms)
{
    for (long long end = th_now_ms() + timeout_ms; th_now_ms() < end; th_sleep_ms(50))
        if (pending(r, key, group) == 0) return 0;
    return -1;
}

/* Start a worker with extra environment; *port gets its HTTP port. */
static pid_t spawn_worker(th_redis_t *r, const char *ns, const char *const extra[], int *port, const char *tag)
{
    static char envs[16][256];
    const char *env[24];
    int n = 0, p = th_free_port();
    char log[300];
    snprintf(envs[n], 256, "REDIS_URL=%s", r->url), env[n] = envs[n], n++;
    snprintf(envs[n], 256, "QT_NAMESPACE=%s", ns), env[n] = envs[n], n++;
    snprintf(envs[n], 256, "QT_HTTP_PORT=%d", p), env[n] = envs[n], n++;
    for (int i = 0; extra && extra[i]; i++) env[n++] = extra[i];
    env[n] = NULL;
    snprintf(log, sizeof log, "%s/worker-%s.log", logdir, tag);
    const char *argv[] = {worker_path, NULL};
    if (port) *port = p;
    return th_spawn(worker_path, argv, env, log);
}

/* A worker, once ready (or after 10 s). */
static pid_t worker(th_redis_t *r, const char *ns, const char *const extra[], int *port, const char *tag)
{
    int p;
    pid_t pid = spawn_worker(r, ns, extra, &p, tag);
    th_wait_http(p, "/ready", 200, 10000);
    if (port) *port = p;
    return pid;
}

typedef struct {
    struct event_base *base;
    bus_t *bus;
} pub_t;

static int pub_open(pub_t *p, th_redis_t *r, const char *ns)
{
    qt_config_t cfg;
    char err[256];
    setenv("REDIS_URL", r->url, 1);
    setenv("QT_NAMESPACE", ns, 1);
    if (config_common_load(&cfg, "test-publisher", 0, err, sizeof err) < 0) return -1;
    p->base = event_base_new();
    p->bus = bus_new(p->base, &cfg, NULL, err, sizeof err);
    return p->bus && bus_start(p->bus) == 0 ? 0 : -1;
}

static void pub_flush(pub_t *p, int timeout_ms)
{
    for (long long end = th_now_ms() + timeout_ms; bus_outbox_size(p->bus) > 0 && th_now_ms() < end;)
        event_base_loop(p->base, EVLOOP_ONCE);
}

static void pub_close(pub_t *p)
{
    bus_free(p->bus);
    event_base_free(p->base);
}

/* Publish market bars open_time = base+i for i in [from, to). */
static int pub_bars(pub_t *p, long from, long to, const char *symbol)
{
    char err[256];
    for (long i = from; i < to; i++) {
        event_t ev;
        json_t *d = json_pack("{s:s, s:s, s:I, s:f, s:f, s:f, s:f, s:f, s:b, s:I}", "symbol", symbol, "interval", "1m",
                              "open_time", (json_int_t)(1700000000000LL + i), "open", 100.0, "high", 101.0,
                              "low", 99.0, "close", 100.5, "volume", 3.0, "closed", 1,
                              "event_time", (json_int_t)(1700000000000LL + i + 59999));
        if (event_make(&ev, "market.data.update", d, NULL, NULL, err, sizeof err) < 0) return -1;
        while (bus_publish(p->bus, "market", &ev, err, sizeof err) < 0) event_base_loop(p->base, EVLOOP_ONCE);
        event_clear(&ev);
    }
    return 0;
}

/* Count each open_time offset seen in stream key's data; returns entries read. */
static long scan_offsets(th_redis_t *r, const char *key, int *seen, long n)
{
    char from[64] = "-";
    long total = 0;
    for (;;) {
        redisReply *rep = cmd(r, "XRANGE %s %s + COUNT 5000", key, from);
        if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements == 0) {
            if (rep) freeReplyObject(rep);
            return total;
        }
        for (size_t i = 0; i < rep->elements; i++) {
            redisReply *e = rep->element[i], *f = e->element[1];
            json_t *d = th_entry_payload(f);
            long off = d ? (long)(json_integer_value(json_object_get(d, "open_time")) - 1700000000000LL) : -1;
            if (off >= 0 && off < n) seen[off]++;
            json_decref(d);
            total++;
            snprintf(from, sizeof from, "(%s", e->element[0]->str);
        }
        freeReplyObject(rep);
    }
}

static void coverage(th_redis_t *r, const char *key, long n, long *missing, long *dups)
{
    int *seen = calloc((size_t)n, sizeof *seen);
    scan_offsets(r, key, seen, n);
    *missing = *dups = 0;
    for (long i = 0; i < n; i++) {
        if (seen[i] == 0) (*missing)++;
        if (seen[i] > 1) *dups += seen[i] - 1;
    }
    free(seen);
}

/* The most entries any one of bars [0, n) has on key. */
static int max_copies(th_redis_t *r, const char *key, long n)
{
    int *seen = calloc((size_t)n, sizeof *seen), most = 0;
    scan_offsets(r, key, seen, n);
    for (long i = 0; i < n; i++) most = seen[i] > most ? seen[i] : most;
    free(seen);
    return most;
}

static int stop_worker(pid_t pid)
{
    int st = -1;
    th_kill(pid, SIGTERM);
    if (th_wait(pid, 15000, &st) < 0) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---------- tests ---------- */

TEST(hundred_thousand_no_loss_no_duplicates)
{
    pub_t p;
    long missing, dups, n = 100000;
    pid_t w = worker(&R, "t1", NULL, NULL, "t1");
    CHECK_EQ(pub_open(&p, &R, "t1"), 0);
    CHECK_EQ(pub_bars(&p, 0, n, "BTCUSDT"), 0);
    pub_flush(&p, 60000);
    CHECK_EQ(bus_outbox_size(p.bus), 0);
    CHECK_EQ(xlen(&R, "t1:market"), n);
    CHECK_EQ(wait_until(xlen, &R, "t1:echo", n, 120000), 0);
    CHECK_EQ(wait_pending_zero(&R, "t1:market", "worker", 10000), 0);
    coverage(&R, "t1:echo", n, &missing, &dups);
    CHECK_EQ(missing, 0);
    CHECK_EQ(dups, 0);
    CHECK_EQ(xlen(&R, "t1:market:dlq"), 0);
    CHECK_EQ(stop_worker(w), 0); /* SIGTERM drains and exits 0 */
    pub_close(&p);
}

/* A slow consumer ("<ns>a") of n bars of symbol, killed with SIGKILL once it
 * echoed `after` of them (mid-batch); p stays open for the caller. */
static void kill_mid_batch(pub_t *p, const char *ns, const char *symbol, long n, long after)
{
    char tag[32], echo[64];
    const char *slow[] = {"WORKER_SLOW_US=1000", "QT_BATCH=100", NULL};
    snprintf(tag, sizeof tag, "%sa", ns);
    snprintf(echo, sizeof echo, "%s:echo", ns);
    pid_t a = worker(&R, ns, slow, NULL, tag);
    CHECK_EQ(pub_open(p, &R, ns), 0);
    CHECK_EQ(pub_bars(p, 0, n, symbol), 0);
    pub_flush(p, 30000);
    CHECK_EQ(wait_until(xlen, &R, echo, after, 30000), 0);
    th_kill(a, SIGKILL);
    th_wait(a, 5000, NULL);
}

TEST(sigkill_mid_batch_then_another_consumer_claims)
{
    pub_t p;
    long missing, dups, n = 3000;
    int port;
    char body[65536];
    kill_mid_batch(&p, "t2", "ETHUSDT", n, 300);
    long long left = pending(&R, "t2:market", "worker");
    CHECK(left > 0); /* the killed consumer held delivered, unacked entries */
    const char *fast[] = {"QT_CLAIM_IDLE_MS=500", NULL};
    pid_t b = worker(&R, "t2", fast, &port, "t2b");
    CHECK_EQ(wait_pending_zero(&R, "t2:market", "worker", 60000), 0);
    CHECK_EQ(wait_until(xlen, &R, "t2:echo", n, 30000), 0);
    coverage(&R, "t2:echo", n, &missing, &dups);
    CHECK_EQ(missing, 0);
    CHECK(dups <= 100); /* at most the killed batch is redone */
    CHECK_EQ(th_http(port, "GET", "/metrics", NULL, NULL, body, sizeof body), 200);
    CHECK_CONTAINS(body, "qt_bus_events_claimed_total{stream=\"t2:market\",group=\"worker\"}");
    CHECK(strstr(body, "qt_bus_events_claimed_total{stream=\"t2:market\",group=\"worker\"} 0\n") == NULL);
    CHECK_EQ(stop_worker(b), 0);
    pub_close(&p);
}

/* Offsets (open_time - base) of the echo entries from position skip on, in stream order. */
static long echo_offsets(th_redis_t *r, const char *key, long skip, long *out, long max)
{
    redisReply *rep = cmd(r, "XRANGE %s - +", key);
    long n = 0;
    for (size_t i = (size_t)skip; rep && rep->type == REDIS_REPLY_ARRAY && i < rep->elements && n < max; i++) {
        json_t *d = th_entry_payload(rep->element[i]->element[1]);
        if (d) out[n++] = (long)(json_integer_value(json_object_get(d, "open_time")) - 1700000000000LL);
        json_decref(d);
    }
    if (rep) freeReplyObject(rep);
    return n;
}

TEST(a_restarted_consumer_handles_its_dead_predecessors_entries_before_new_ones)
{
    pub_t p;
    static long off[4000];
    long missing, dups, n = 2000;
    kill_mid_batch(&p, "t7", "SOLUSDT", n, 250);
    CHECK(pending(&R, "t7:market", "worker") > 0); /* delivered to the dead one, not acked */
    long before = (long)xlen(&R, "t7:echo");
    /* the idle claim cannot be what brings them back: only the take-over of a dead consumer of this host */
    const char *late[] = {"QT_CLAIM_IDLE_MS=600000", NULL};
    pid_t b = worker(&R, "t7", late, NULL, "t7b");
    CHECK_EQ(wait_pending_zero(&R, "t7:market", "worker", 60000), 0);
    CHECK_EQ(wait_until(xlen, &R, "t7:echo", n, 30000), 0);
    coverage(&R, "t7:echo", n, &missing, &dups);
    CHECK_EQ(missing, 0);
    long m = echo_offsets(&R, "t7:echo", before, off, 4000), disorder = 0;
    for (long i = 1; i < m; i++) disorder += off[i] < off[i - 1];
    CHECK(m > 0);
    CHECK_EQ(disorder, 0); /* the old entries first, then the new ones: bar order kept across the restart */
    CHECK_EQ(stop_worker(b), 0);
    pub_close(&p);
}

/* Field value of a flat field array, or NULL. */
static const char *field(const redisReply *f, const char *name)
{
    for (size_t k = 0; k + 1 < f->elements; k += 2)
        if (strcmp(f->element[k]->str, name) == 0) return f->element[k + 1]->str;
    return NULL;
}

TEST(always_failing_entry_reaches_dlq_with_metadata_then_replays)
{
    pub_t p;
    const char *fail[] = {"WORKER_FAIL_SYMBOL=FAILUSDT", "QT_MAX_DELIVERIES=3", "QT_RETRY_DELAY_MS=100", NULL};
    pid_t w = worker(&R, "t3", fail, NULL, "t3");
    CHECK_EQ(pub_open(&p, &R, "t3"), 0);
    CHECK_EQ(pub_bars(&p, 0, 1, "FAILUSDT"), 0);
    CHECK_EQ(pub_bars(&p, 1, 11, "BTCUSDT"), 0);
    pub_flush(&p, 10000);
    CHECK_EQ(wait_until(xlen, &R, "t3:market:dlq", 1, 20000), 0);
    CHECK_EQ(wait_pending_zero(&R, "t3:market", "worker", 10000), 0);
    CHECK_EQ(xlen(&R, "t3:echo"), 10);
    redisReply *orig = cmd(&R, "XRANGE t3:market - + COUNT 1");
    redisReply *dl = cmd(&R, "XRANGE t3:market:dlq - + COUNT 1");
    CHECK(orig && dl && orig->elements == 1 && dl->elements == 1);
    if (orig && dl && orig->elements == 1 && dl->elements == 1) {
        const redisReply *of = orig->element[0]->element[1], *df = dl->element[0]->element[1];
        for (size_t i = 0; i + 1 < of->elements; i += 2) /* every original field, the envelope and the payload's */
            CHECK_STR(field(df, of->element[i]->str), of->element[i + 1]->str);
        CHECK(of->elements > 12); /* a v2 entry: the envelope and a field per payload field */
        CHECK_STR(field(df, "origin_stream"), "t3:market");
        CHECK_STR(field(df, "origin_id"), orig->element[0]->element[0]->str);
        CHECK_STR(field(df, "group"), "worker");
        CHECK(field(df, "consumer") && strchr(field(df, "consumer"), '-'));
        CHECK_STR(field(df, "deliveries"), "3");
        CHECK_CONTAINS(field(df, "error"), "gave up after 3 deliveries");
        CHECK_CONTAINS(field(df, "error"), "configured to fail on FAILUSDT");
        CHECK(field(df, "failed_at") && atoll(field(df, "failed_at")) > 1700000000000LL);
    }
    if (orig) freeReplyObject(orig);
    if (dl) freeReplyObject(dl);
    CHECK_EQ(stop_worker(w), 0);

    /* The cause is fixed (a worker that does not fail); replay the DLQ. */
    pid_t ok = worker(&R, "t3", NULL, NULL, "t3-fixed");
    redisContext *c = th_redis_connect(&R);
    json_t *list = NULL;
    char err[256];
    CHECK_EQ(dlq_list(c, "t3:market:dlq", 10, &list, err, sizeof err), 0);
    CHECK_EQ(json_array_size(list), 1);
    CHECK_STR(json_string_value(json_object_get(json_array_get(list, 0), "deliveries")), "3");
    CHECK_STR(json_string_value(json_object_get(json_object_get(json_array_get(list, 0), "fields"), "type")),
              "market.data.update");
    json_decref(list);
    dlq_replay_result_t res;
    CHECK_EQ(dlq_replay(c, "t3:market:dlq", NULL, NULL, &res, err, sizeof err), 0);
    CHECK_EQ(res.replayed, 1);
    CHECK_EQ(res.merged + res.refused, 0);
    CHECK_EQ(xlen(&R, "t3:market:dlq"), 0);
    CHECK_EQ(wait_until(xlen, &R, "t3:echo", 11, 10000), 0);
    CHECK_EQ(dlq_replay(c, "t3:market:dlq", "1-1", NULL, &res, err, sizeof err), -1);
    CHECK_CONTAINS(err, "no entry 1-1");
    redisFree(c);
    CHECK_EQ(stop_worker(ok), 0);
    pub_close(&p);
}

TEST(malformed_entries_go_to_dlq_at_once_consumer_carries_on)
{
    int port;
    char body[65536];
    pid_t w = worker(&R, "t4", NULL, &port, "t4");
    const char *good = "{\"symbol\":\"BTCUSDT\",\"interval\":\"1m\",\"open_time\":1700000000000,\"open\":1,"
                       "\"high\":1,\"low\":1,\"close\":1,\"volume\":0,\"closed\":true,\"event_time\":1}";
    const char *badconf = "{\"symbol\":\"BTCUSDT\",\"open_time\":1,\"action\":\"LONG\",\"confidence\":\"x\","
                          "\"model_votes\":{},\"weights\":{},\"exploring\":false,\"event_time\":2}";
    char *huge = malloc(1 << 20); /* over the data limit, under QT_MAX_ENTRY_BYTES (1 MiB for the entry) */
    memset(huge, 'a', (1 << 20) - 4096);
    huge[(1 << 20) - 4096] = 0;
    struct { const char *type, *v, *data, *why; } bad[] = {
        {"market.data.update", "1", "{not json", "data: not JSON"},
        {NULL, "1", good, "missing field 'type'"},
        {"signal.generated", "1", badconf, "data.confidence: expected number, got string"},
        {"market.data.update", "1", huge, "over the limit"},
        {"no.such.event", "1", "{}", "unknown event type 'no.such.event'"},
        {"market.data.update", "7", good, "version 7 is not supported"},
    };
    int nbad = (int)(sizeof bad / sizeof bad[0]);
    for (int i = 0; i < nbad; i++) {
        redisReply *r = bad[i].type
            ? cmd(&R, "XADD t4:market * id bad-%d type %s v %s ts 1764547200000 source test trace t data %s", i, bad[i].type, bad[i].v, bad[i].data)
            : cmd(&R, "XADD t4:market * id bad-%d v %s ts 1764547200000 source test trace t data %s", i, bad[i].v, bad[i].data);
        if (r) freeReplyObject(r);
    }
    redisReply *r = cmd(&R, "XADD t4:market * just one");
    if (r) freeReplyObject(r);
    r = cmd(&R, "XADD t4:market * id good-1 type market.data.update v 1 ts 1764547200000 source test trace t data %s", good);
    if (r) freeReplyObject(r);
    CHECK_EQ(wait_until(xlen, &R, "t4:echo", 1, 10000), 0);
    CHECK_EQ(wait_until(xlen, &R, "t4:market:dlq", nbad + 1, 10000), 0);
    CHECK_EQ(wait_pending_zero(&R, "t4:market", "worker", 10000), 0);
    r = cmd(&R, "XRANGE t4:market:dlq - +");
    CHECK(r && r->elements == (size_t)nbad + 1);
    for (int i = 0; r && i < nbad && (size_t)i < r->elements; i++) {
        const redisReply *f = r->element[i]->element[1];
        CHECK_CONTAINS(field(f, "error"), bad[i].why);
        CHECK_STR(field(f, "deliveries"), "1");
    }
    if (r && r->elements == (size_t)nbad + 1) {
        CHECK_CONTAINS(field(r->element[nbad]->element[1], "error"), "missing field 'id'");
        CHECK_STR(field(r->element[3]->element[1], "data"), huge); /* the 1 MB field is kept whole */
    }
    if (r) freeReplyObject(r);
    CHECK_EQ(kill(w, 0), 0);
    CHECK_EQ(th_http(port, "GET", "/health", NULL, NULL, body, sizeof body), 200);
    CHECK_EQ(th_http(port, "GET", "/ready", NULL, NULL, body, sizeof body), 200);
    CHECK_EQ(th_http(port, "GET", "/metrics", NULL, NULL, body, sizeof body), 200);
    CHECK_CONTAINS(body, "qt_bus_events_dead_total{stream=\"t4:market\",group=\"worker\"} 7\n");
    CHECK_EQ(th_http(port, "GET", "/api/v1/status", NULL, NULL, body, sizeof body), 200);
    CHECK_CONTAINS(body, "\"stream\":\"t4:market\"");
    free(huge);
    CHECK_EQ(stop_worker(w), 0);
}

TEST(a_subscription_to_some_types_acks_the_others_unread)
{
    int port;
    char body[65536];
    const char *only[] = {"WORKER_TYPES=market.data.update", NULL};
    pid_t w = worker(&R, "t8", only, &port, "t8");
    const char *bar = "{\"symbol\":\"BTCUSDT\",\"interval\":\"1m\",\"open_time\":1700000000000,\"open\":1,"
                      "\"high\":1,\"low\":1,\"close\":1,\"volume\":0,\"closed\":true,\"event_time\":1}";
    struct { const char *type, *v, *data; } in[] = {
        {"signal.generated", "1", "{\"confidence\":\"not even valid\"}"}, /* not ours: acked unread, not judged */
        {"no.such.event", "1", "{}"},                                       /* not in the contract: DLQ */
        {"signal.generated", "9", "{}"},                                    /* a version nobody knows: DLQ */
        {"market.data.update", "1", bar},                                   /* ours */
    };
    for (int i = 0; i < 4; i++) {
        redisReply *r = cmd(&R, "XADD t8:market * id t8-%d type %s v %s ts 1764547200000 source test trace t data %s", i, in[i].type,
                            in[i].v, in[i].data);
        if (r) freeReplyObject(r);
    }
    CHECK_EQ(wait_until(xlen, &R, "t8:echo", 1, 10000), 0);
    CHECK_EQ(wait_until(xlen, &R, "t8:market:dlq", 2, 10000), 0);
    CHECK_EQ(wait_pending_zero(&R, "t8:market", "worker", 10000), 0);
    th_sleep_ms(300);
    CHECK_EQ(xlen(&R, "t8:echo"), 1);       /* only the bar reached the handler */
    CHECK_EQ(xlen(&R, "t8:market:dlq"), 2); /* the unknown type and version, not the skipped signal */
    CHECK_EQ(th_http(port, "GET", "/metrics", NULL, NULL, body, sizeof body), 200);
    CHECK_CONTAINS(body, "qt_bus_events_skipped_total{stream=\"t8:market\",group=\"worker\"} 1\n");
    CHECK_EQ(stop_worker(w), 0);
}

/* The rest of bars [0, n) was published through whatever happened: flush
 * it, check each of the n bars was handled (at least once), nothing is left
 * pending and the worker is ready; stop it and close p. Returns the echoes
 * seen twice. */
static long all_handled_then_stop(th_redis_t *r, const char *ns, pub_t *p, long n, int port, pid_t w)
{
    char echo[64], market[64];
    long missing, dups;
    snprintf(echo, sizeof echo, "%s:echo", ns);
    snprintf(market, sizeof market, "%s:market", ns);
    pub_flush(p, 60000);
    CHECK_EQ(bus_outbox_size(p->bus), 0);
    CHECK_EQ(wait_until(xlen, r, echo, n, 60000), 0);
    CHECK_EQ(wait_pending_zero(r, market, "worker", 30000), 0);
    coverage(r, echo, n, &missing, &dups);
    CHECK_EQ(missing, 0);
    CHECK_EQ(th_wait_http(port, "/ready", 200, 10000), 0);
    CHECK_EQ(stop_worker(w), 0);
    pub_close(p);
    return dups;
}

TEST(redis_restart_mid_stream_nothing_lost)
{
    pub_t p;
    long missing, ignored, n = 20000;
    int port;
    const char *slow[] = {"WORKER_SLOW_US=100", NULL};
    pid_t w = worker(&RA, "t5", slow, &port, "t5");
    CHECK_EQ(pub_open(&p, &RA, "t5"), 0);
    CHECK_EQ(pub_bars(&p, 0, n / 2, "BTCUSDT"), 0);
    pub_flush(&p, 30000);
    CHECK_EQ(wait_until(xlen, &RA, "t5:echo", 1000, 30000), 0);
    CHECK(xlen(&RA, "t5:echo") < n / 2); /* still consuming while Redis goes away */
    CHECK_EQ(th_redis_restart(&RA), 0);
    CHECK_EQ(pub_bars(&p, n / 2, n, "BTCUSDT"), 0); /* published through the reconnect */
    long dups = all_handled_then_stop(&RA, "t5", &p, n, port, w);
    coverage(&RA, "t5:market", n, &missing, &ignored);
    CHECK_EQ(missing, 0);
    printf("# redis restart: %ld duplicate echoes (at-least-once; same derived ids)\n", dups);
}

TEST(redis_frozen_longer_than_watchdog_then_recovers)
{
    pub_t p;
    long n = 4000;
    int port;
    char body[4096];
    const char *env[] = {"QT_REDIS_TIMEOUT_MS=300", "QT_BLOCK_MS=200", "WORKER_SLOW_US=200", NULL};
    pid_t w = worker(&R, "t6", env, &port, "t6");
    setenv("QT_REDIS_TIMEOUT_MS", "300", 1); /* the publisher's watchdog too */
    CHECK_EQ(pub_open(&p, &R, "t6"), 0);
    unsetenv("QT_REDIS_TIMEOUT_MS");
    CHECK_EQ(pub_bars(&p, 0, n / 2, "BTCUSDT"), 0);
    pub_flush(&p, 30000);
    CHECK_EQ(wait_until(xlen, &R, "t6:echo", 200, 30000), 0);
    kill(R.pid, SIGSTOP); /* Redis accepts connections but never answers */
    CHECK_EQ(pub_bars(&p, n / 2, n, "BTCUSDT"), 0); /* held in the outbox meanwhile */
    pub_flush(&p, 1500); /* the publisher's links time out and reconnect while Redis is frozen */
    int st = th_http(port, "GET", "/ready", NULL, NULL, body, sizeof body);
    CHECK_EQ(st, 503); /* the watchdog noticed; HTTP itself still answers */
    CHECK_CONTAINS(body, "\"ready\":false");
    CHECK_EQ(th_http(port, "GET", "/health", NULL, NULL, NULL, 0), 200);
    kill(R.pid, SIGCONT);
    all_handled_then_stop(&R, "t6", &p, n, port, w);
    /* A connection the watchdog gave up on may still deliver what was written
     * to it (Redis reads it after SIGCONT), so a bar can be there twice; but
     * a link only sends again once Redis answered it, so never more. */
    int most = max_copies(&R, "t6:market", n);
    printf("# redis frozen: at most %d entries per bar on the stream\n", most);
    CHECK(most <= 2);
}

/* Connections the worker on port made to Redis on link ("cmd" or "read"). */
static long connects(int port, const char *link)
{
    static char body[65536];
    char key[96];
    snprintf(key, sizeof key, "qt_bus_redis_connects_total{link=\"%s\"} ", link);
    if (th_http(port, "GET", "/metrics", NULL, NULL, body, sizeof body) != 200) return -1;
    const char *l = strstr(body, key);
    return l ? atol(l + strlen(key)) : -1;
}

/* A handler that blocks (an exchange call, a synchronous write) holds the
 * loop: commands queued before the hold are written only after it, replies
 * that came meanwhile are read only after it. The watchdog took that for a
 * silent Redis and dropped the read link after every such hold. */
TEST(a_held_loop_is_not_taken_for_a_silent_redis)
{
    pub_t p;
    int port;
    const char *env[] = {"QT_REDIS_TIMEOUT_MS=500", "QT_BLOCK_MS=200", "WORKER_SLOW_US=1500000", "QT_BATCH=1",
                         "QT_CLAIM_IDLE_MS=600000", NULL};
    pid_t w = worker(&R, "t11", env, &port, "t11");
    CHECK_EQ(pub_open(&p, &R, "t11"), 0);
    CHECK_EQ(pub_bars(&p, 0, 4, "BTCUSDT"), 0); /* each holds the worker's loop 1.5 s, 3 x the watchdog's limit */
    pub_flush(&p, 5000);
    CHECK_EQ(wait_until(xlen, &R, "t11:echo", 4, 20000), 0);
    CHECK_EQ(connects(port, "read"), 1); /* no link was dropped */
    CHECK_EQ(connects(port, "cmd"), 1);
    CHECK_EQ(wait_pending_zero(&R, "t11:market", "worker", 5000), 0);
    pub_close(&p);
    kill(w, SIGTERM);
    waitpid(w, NULL, 0);
}

/* A handler that finishes an entry later (bus_defer / bus_finish) does not
 * hold the others: while one entry of SLOW waits 3 s, 200 later entries are
 * handled and acked; the deferred one is not handed out again meanwhile (a
 * re-read of our pending entries after a retry skips it), is acked once
 * finished, and a SIGTERM drain waits for it. */
TEST(a_deferred_entry_does_not_hold_the_others_and_is_acked_once_finished)
{
    pub_t p;
    int port;
    const char *env[] = {"WORKER_DEFER_SYMBOL=SLOW", "WORKER_DEFER_MS=3000", "WORKER_FAIL_SYMBOL=FAIL",
                         "QT_RETRY_DELAY_MS=100", "QT_MAX_DELIVERIES=1000", "QT_BATCH=16", NULL};
    pid_t w = worker(&R, "t13", env, &port, "t13");
    CHECK_EQ(pub_open(&p, &R, "t13"), 0);
    CHECK_EQ(pub_bars(&p, 0, 1, "SLOW"), 0);
    CHECK_EQ(pub_bars(&p, 1, 2, "FAIL"), 0); /* retried every 100 ms: our pending entries are re-read again and again */
    CHECK_EQ(pub_bars(&p, 2, 202, "FAST"), 0);
    pub_flush(&p, 5000);
    long long t0 = th_now_ms();
    CHECK_EQ(wait_until(xlen, &R, "t13:echo", 200, 10000), 0);
    long long took = th_now_ms() - t0;
    CHECK(took < 2500); /* the FAST ones did not wait for SLOW */
    CHECK_EQ(xlen(&R, "t13:echo"), 200);
    CHECK_EQ(pending(&R, "t13:market", "worker"), 2); /* SLOW (deferred) and FAIL */
    CHECK_EQ(wait_until(xlen, &R, "t13:echo", 201, 5000), 0);
    long missing, dups;
    coverage(&R, "t13:echo", 202, &missing, &dups);
    CHECK_EQ(missing, 1); /* FAIL never echoes */
    CHECK_EQ(dups, 0);    /* SLOW was handled once */
    CHECK_EQ(pending(&R, "t13:market", "worker"), 1);
    /* a deferred entry when SIGTERM comes: the drain waits for it */
    CHECK_EQ(pub_bars(&p, 300, 301, "SLOW"), 0);
    pub_flush(&p, 5000);
    for (long long end = th_now_ms() + 5000; th_now_ms() < end && pending(&R, "t13:market", "worker") < 2;)
        th_sleep_ms(20);
    CHECK_EQ(stop_worker(w), 0);
    CHECK_EQ(xlen(&R, "t13:echo"), 202);
    CHECK_EQ(pending(&R, "t13:market", "worker"), 1); /* only FAIL */
    pub_close(&p);
}

/* Entries Redis delivered in a reply the read link lost (here: Redis drops
 * the connection for a reply over its output buffer limit) are in this
 * consumer's pending list; they must be handled at once, not when a claim
 * finds them QT_CLAIM_IDLE_MS later, after newer entries. */
TEST(entries_in_a_reply_lost_with_the_read_link_are_handled_at_once)
{
    int port;
    char pad[4097], data[512];
    const char *env[] = {"QT_CLAIM_IDLE_MS=600000", NULL};
    pid_t w = worker(&R, "t12", env, &port, "t12");
    memset(pad, 'x', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    th_sleep_ms(1500); /* past the claim the worker makes at start: the limit must cost the read link only */
    redisReply *rep = cmd(&R, "CONFIG SET client-output-buffer-limit %s", "normal 2048 0 0");
    CHECK(rep && rep->type == REDIS_REPLY_STATUS);
    if (rep) freeReplyObject(rep);
    for (int i = 0; i < 4; i++) {
        char id[16];
        snprintf(id, sizeof id, "lost%d", i);
        snprintf(data, sizeof data,
                 "{\"symbol\":\"BTCUSDT\",\"interval\":\"1m\",\"open_time\":%d,\"open\":1,\"high\":1,\"low\":1,"
                 "\"close\":1,\"volume\":0,\"closed\":true,\"event_time\":%d}", 60000 * (i + 1), 60000 * (i + 1) + 59999);
        rep = cmd(&R, "XADD t12:market * id %s type market.data.update v 1 ts 1764547200000 source t trace t data %s pad %s", id,
                  data, pad); /* an unknown envelope field: ignored, but it makes the reply too big */
        if (rep) freeReplyObject(rep);
    }
    for (long long end = th_now_ms() + 10000; th_now_ms() < end && connects(port, "read") < 2;) th_sleep_ms(50);
    CHECK(connects(port, "read") >= 2); /* Redis dropped the read link with the entries in its reply */
    CHECK(cmd_int(&R, "XLEN t12:echo", NULL, NULL) < 4);
    rep = cmd(&R, "CONFIG SET client-output-buffer-limit %s", "normal 0 0 0");
    if (rep) freeReplyObject(rep);
    CHECK_EQ(wait_until(xlen, &R, "t12:echo", 4, 10000), 0); /* long before a claim (10 min) */
    CHECK_EQ(wait_pending_zero(&R, "t12:market", "worker", 5000), 0);
    kill(w, SIGTERM);
    waitpid(w, NULL, 0);
}

/* An operator deletes the stream (and with it the group) under a running
 * consumer: the group is made again and new entries are consumed. */
TEST(a_stream_deleted_under_a_running_consumer_gets_its_group_back)
{
    pub_t p;
    long n = 400;
    int port;
    const char *env[] = {"QT_BLOCK_MS=200", NULL};
    pid_t w = worker(&R, "t9", env, &port, "t9");
    CHECK_EQ(pub_open(&p, &R, "t9"), 0);
    CHECK_EQ(pub_bars(&p, 0, n / 2, "BTCUSDT"), 0);
    pub_flush(&p, 30000);
    CHECK_EQ(wait_until(xlen, &R, "t9:echo", n / 2, 30000), 0);
    CHECK_EQ(wait_pending_zero(&R, "t9:market", "worker", 10000), 0);
    CHECK_EQ(cmd_int(&R, "DEL %s", "t9:market", NULL), 1);
    th_sleep_ms(500);
    CHECK_EQ(pub_bars(&p, n / 2, n, "BTCUSDT"), 0);
    CHECK_EQ(all_handled_then_stop(&R, "t9", &p, n, port, w), 0); /* none twice */
    CHECK_EQ(xlen(&R, "t9:market:dlq"), 0);
}

static long long db_int(redisContext *c, const char *fmt, const char *arg)
{
    redisReply *rep = redisCommand(c, fmt, arg);
    long long v = rep && rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
    if (rep) freeReplyObject(rep);
    return v;
}

/* REDIS_URL's password and database reach both links (AUTH and SELECT go
 * before the PING); a wrong password is refused with a reason that never
 * shows the password. */
/* A command the bus sends without waiting for its answer (here the
 * XGROUP DELCONSUMER that tidies away a dead consumer of this host that
 * owed nothing) still has its reply counted: before, the link stayed
 * "waiting for a reply" forever, and the watchdog closed a link that was
 * merely idle ("no reply for ... ms") and reconnected, again and again. */
TEST(a_reply_nobody_waits_for_does_not_leave_the_link_waiting)
{
    redisContext *c = th_redis_connect(&R);
    char host[64] = "host", dead[128], log[300];
    gethostname(host, sizeof host - 1);
    snprintf(dead, sizeof dead, "%s-999999", host); /* no such process */
    freeReplyObject(redisCommand(c, "XGROUP CREATE t14:market worker 0 MKSTREAM"));
    freeReplyObject(redisCommand(c, "XGROUP CREATECONSUMER t14:market worker %s", dead));
    const char *env[] = {"QT_REDIS_TIMEOUT_MS=300", "QT_CLAIM_IDLE_MS=600000", NULL};
    int port;
    pid_t w = worker(&R, "t14", env, &port, "t14");
    int gone = 0;
    for (long long end = th_now_ms() + 5000; th_now_ms() < end && !gone; th_sleep_ms(50)) {
        redisReply *r = redisCommand(c, "XINFO CONSUMERS t14:market worker");
        gone = r && r->type == REDIS_REPLY_ARRAY && r->elements == 1;
        if (r) freeReplyObject(r);
    }
    CHECK(gone); /* the dead one tidied away */
    th_sleep_ms(2500); /* idle: nothing to read, the next lag query 5 s after the first */
    CHECK_EQ(stop_worker(w), 0);
    snprintf(log, sizeof log, "%s/worker-t14.log", logdir);
    CHECK(!th_file_has(log, "no reply for"));
    redisFree(c);
}

TEST(redis_url_password_and_database_are_used_and_a_wrong_password_is_refused)
{
    static th_redis_t RP;
    static char logtext[65536];
    char body[4096], log[300];
    int port;
    pub_t p;
    CHECK_EQ(th_redis_start(&RP, 0), 0);
    redisContext *c = th_redis_connect(&RP);
    freeReplyObject(redisCommand(c, "CONFIG SET requirepass qt-s3cret"));
    freeReplyObject(redisCommand(c, "AUTH qt-s3cret"));
    freeReplyObject(redisCommand(c, "SELECT 2"));
    snprintf(RP.url, sizeof RP.url, "redis://:qt-s3cret@127.0.0.1:%d/2", RP.port); /* what worker and pub_open use */
    pid_t w = worker(&RP, "t10", NULL, &port, "t10");
    CHECK_EQ(th_wait_http(port, "/ready", 200, 10000), 0);
    CHECK_EQ(pub_open(&p, &RP, "t10"), 0);
    CHECK_EQ(pub_bars(&p, 0, 50, "BTCUSDT"), 0);
    pub_flush(&p, 10000);
    for (long long end = th_now_ms() + 10000; th_now_ms() < end && db_int(c, "XLEN %s", "t10:echo") < 50;) th_sleep_ms(50);
    CHECK_EQ(db_int(c, "XLEN %s", "t10:echo"), 50); /* in database 2 */
    freeReplyObject(redisCommand(c, "SELECT 0"));
    CHECK_EQ(db_int(c, "EXISTS %s", "t10:market"), 0); /* not in database 0 */
    CHECK_EQ(stop_worker(w), 0);
    pub_close(&p);

    snprintf(RP.url, sizeof RP.url, "redis://:pw-n0t-r1ght@127.0.0.1:%d/2", RP.port);
    w = spawn_worker(&RP, "t10", NULL, &port, "t10-badpw");
    int st = 0;
    for (long long end = th_now_ms() + 10000; th_now_ms() < end; th_sleep_ms(100))
        if ((st = th_http(port, "GET", "/ready", NULL, NULL, body, sizeof body)) == 503 && strstr(body, "AUTH")) break;
    CHECK_EQ(st, 503); /* refused at the first connection, the namespace's check (parts.h) */
    CHECK_CONTAINS(body, "checking the namespace's partitions: redis AUTH refused: WRONGPASS");
    CHECK_EQ(th_http(port, "GET", "/health", NULL, NULL, NULL, 0), 200); /* alive, retrying */
    CHECK_EQ(stop_worker(w), 0);
    snprintf(log, sizeof log, "%s/worker-t10-badpw.log", logdir);
    FILE *f = fopen(log, "r");
    size_t n = f ? fread(logtext, 1, sizeof logtext - 1, f) : 0;
    if (f) fclose(f);
    logtext[n] = '\0';
    CHECK_CONTAINS(logtext, "AUTH refused");
    CHECK(!strstr(logtext, "pw-n0t-r1ght") && !strstr(body, "pw-n0t-r1ght")); /* the secret is never shown */
    redisFree(c);
    th_redis_stop(&RP);
}

int main(int argc, char **argv);

__attribute__((constructor)) static void setup(void)
{
    th_watchdog(600);
    log_init("test-bus", getenv("QT_LOG_LEVEL"));
    log_set_level(LOG_WARN);
    th_bin("tests/bin/bus-worker", worker_path, sizeof worker_path);
    th_tempdir(logdir, sizeof logdir);
    if (th_redis_start(&R, 0) < 0 || th_redis_start(&RA, 1) < 0) {
        fprintf(stderr, "cannot start redis-server\n");
        exit(2);
    }
}

CHECK_MAIN()
