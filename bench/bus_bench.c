/* bus_bench — publish and consume throughput of the bus against a private
 * redis-server, next to redis-benchmark's pipelined XADD (-P 32) with the
 * same payload, measured in the same run. Prints, last:
 * bus-bench: publish=<n>/s consume=<n>/s redis_xadd_p32=<n>/s ratio=<consume/redis_xadd_p32> hop=<n>/s peer_py=<n>/s vs_peer=<hop/peer_py>
 * where hop is one consumer's whole hop on the same bars — read a batch,
 * decode each entry, publish one derived entry (a model.vote), ack — and
 * peer_py the same hop in Python with Debian's python3-redis
 * (bench/peer_hop.py), measured in the same run.
 * BENCH_EVENTS overrides the event count (default 200000). */
#include "bus.h"
#include "harness.h"
#include "log.h"
#include "proto.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long consumed;

static bus_result_t bench_handle(void *ud, const bus_msg_t *m, char *err, size_t errlen)
{
    (void)ud;
    (void)err;
    (void)errlen;
    consumed += json_object_size(m->ev->data) > 0;
    return BUS_OK;
}

static json_t *bench_bar(long i)
{
    return json_pack("{s:s, s:s, s:I, s:f, s:f, s:f, s:f, s:f, s:b, s:I}", "symbol", "BTCUSDT", "interval", "1m",
                     "open_time", (json_int_t)(1700000000000LL + i * 60000), "open", 42000.5, "high", 42010.25,
                     "low", 41990.0, "close", 42005.75, "volume", 12.345, "closed", 1,
                     "event_time", (json_int_t)(1700000000000LL + i * 60000 + 59999));
}

static bus_t *bench_bus(struct event_base *base, const char *service)
{
    qt_config_t cfg;
    char err[256];
    if (config_common_load(&cfg, service, 0, err, sizeof err) < 0) {
        fprintf(stderr, "bus-bench: %s\n", err);
        exit(1);
    }
    cfg.batch = 1000;
    cfg.outbox_max = 50000;
    bus_t *b = bus_new(base, &cfg, NULL, err, sizeof err);
    if (!b) {
        fprintf(stderr, "bus-bench: %s\n", err);
        exit(1);
    }
    return b;
}

static double bench_publish(long n)
{
    struct event_base *base = event_base_new();
    bus_t *b = bench_bus(base, "bench-producer");
    char err[256];
    bus_start(b);
    while (bus_ready(b, err, sizeof err) == 0) event_base_loop(base, EVLOOP_ONCE);
    long long t0 = th_now_ms();
    for (long i = 0; i < n; i++) {
        event_t ev;
        if (event_make(&ev, "market.data.update", bench_bar(i), NULL, NULL, err, sizeof err) < 0) exit(1);
        while (bus_publish(b, "market", &ev, err, sizeof err) < 0) event_base_loop(base, EVLOOP_ONCE);
        event_clear(&ev);
        if ((i & 255) == 0) event_base_loop(base, EVLOOP_NONBLOCK);
    }
    while (bus_outbox_size(b) > 0) event_base_loop(base, EVLOOP_ONCE);
    double secs = (double)(th_now_ms() - t0) / 1000.0;
    bus_free(b);
    event_base_free(base);
    return (double)n / secs;
}

/* Run a consumer group `group` on qt:market with fn (its ud: the bus) until
 * *done reaches n, nothing waits to be published and nothing is pending:
 * the entries per second. */
static double bench_drain(th_redis_t *r, const char *group, bus_handler_fn fn, const long *done, long n)
{
    struct event_base *base = event_base_new();
    bus_t *b = bench_bus(base, group);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "XPENDING qt:market %s", group);
    bus_subscribe(b, "market", fn, b);
    long long t0 = th_now_ms();
    bus_start(b);
    redisContext *c = th_redis_connect(r);
    for (;;) {
        event_base_loop(base, EVLOOP_ONCE);
        if (*done < n || bus_outbox_size(b) > 0) continue;
        redisReply *rep = redisCommand(c, cmd);
        long long pend = rep && rep->type == REDIS_REPLY_ARRAY ? rep->element[0]->integer : -1;
        if (rep) freeReplyObject(rep);
        if (pend == 0) break;
    }
    double secs = (double)(th_now_ms() - t0) / 1000.0;
    redisFree(c);
    bus_free(b);
    event_base_free(base);
    return (double)n / secs;
}

static double bench_consume(th_redis_t *r, long n) { return bench_drain(r, "bench-consumer", bench_handle, &consumed, n); }

/* The hop: each bar decoded by the bus, a model.vote made from it and
 * published to qt:vote, the bar acked (after the publish, as services do). */
static long hopped;

static bus_result_t bench_hop_handle(void *ud, const bus_msg_t *m, char *err, size_t errlen)
{
    bus_t *b = ud;
    const json_t *d = m->ev->data;
    event_t ev;
    int up = json_number_value(json_object_get(d, "close")) > json_number_value(json_object_get(d, "open"));
    json_t *vote = json_pack("{s:O, s:O, s:s, s:s, s:f}", "symbol", json_object_get(d, "symbol"), "open_time",
                             json_object_get(d, "open_time"), "model", "bench", "action", up ? "LONG" : "SHORT",
                             "confidence", 0.6);
    if (event_make(&ev, "model.vote", vote, m->ev->id, NULL, err, errlen) < 0) return BUS_DEAD;
    int rc = bus_publish(b, "vote", &ev, err, errlen);
    event_clear(&ev);
    if (rc < 0) return BUS_RETRY;
    hopped++;
    return BUS_OK;
}

static double bench_hop(th_redis_t *r, long n) { return bench_drain(r, "bench-hop", bench_hop_handle, &hopped, n); }

/* The same hop in Python (bench/peer_hop.py): its rate, 0 when Debian's
 * python3-redis is missing. */
static double bench_peer(th_redis_t *r, long n)
{
    char cmd[512], line[64] = "";
    if (system("/usr/bin/python3 -c 'import redis' 2>/dev/null") != 0) {
        printf("# bus-bench: no peer: Debian's python3-redis is missing (sh deploy/install-deps.sh --test-tools)\n");
        return 0;
    }
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 bench/peer_hop.py %d qt:market qt:peer.vote %ld", r->port, n);
    FILE *p = popen(cmd, "r");
    if (!p || !fgets(line, sizeof line, p)) line[0] = '\0';
    if (p) pclose(p);
    return atof(line);
}

/* redis-benchmark -P 32 XADD with the same fields and payload. */
static double bench_redis(th_redis_t *r, long n)
{
    event_t ev;
    char err[256];
    if (event_make(&ev, "market.data.update", bench_bar(0), NULL, NULL, err, sizeof err) < 0) exit(1);
    double rps = th_redis_xadd_rate(r, n, &ev);
    event_clear(&ev);
    if (rps <= 0) {
        fprintf(stderr, "bus-bench: could not read redis-benchmark output\n");
        exit(1);
    }
    return rps;
}

/* Mean ns of one bar's decode as a v2 entry and as a legacy v1 entry (parse
 * + validate), of the schema validation alone and of writing it as v2: where
 * the consumer's time goes, measured in this run. */
static void bench_decode_detail(void)
{
    event_t ev;
    event_enc_t enc;
    char err[256], ts[24];
    memset(&enc, 0, sizeof enc);
    if (event_make(&ev, "market.data.update", bench_bar(1), NULL, NULL, err, sizeof err) < 0 ||
        event_encode(&ev, &enc, err, sizeof err) < 0)
        exit(1);
    char *data = event_data_json(&ev);
    snprintf(ts, sizeof ts, "%lld", (long long)ev.ts);
    const char *names[] = {"id", "type", "v", "ts", "source", "trace", "data"};
    const char *vals[] = {ev.id, ev.type, "1", ts, ev.source, ev.trace, data};
    event_field_t v1[7];
    for (int i = 0; i < 7; i++) v1[i] = (event_field_t){names[i], strlen(names[i]), vals[i], strlen(vals[i])};
    const int reps = 20000;
    long long t0 = th_now_ns();
    for (int i = 0; i < reps; i++) {
        event_t d;
        if (event_decode(&d, enc.f, enc.n, err, sizeof err) == 0) event_clear(&d);
    }
    long long t1 = th_now_ns();
    for (int i = 0; i < reps; i++) {
        event_t d;
        if (event_decode(&d, v1, 7, err, sizeof err) == 0) event_clear(&d);
    }
    long long t2 = th_now_ns();
    for (int i = 0; i < reps; i++) proto_validate(ev.type, event_schema_version(ev.v), ev.data, err, sizeof err);
    long long t3 = th_now_ns();
    event_enc_t e2;
    memset(&e2, 0, sizeof e2);
    for (int i = 0; i < reps; i++) event_encode(&ev, &e2, err, sizeof err);
    long long t4 = th_now_ns();
    printf("bus-bench detail: decode_v2=%lldns decode_v1=%lldns validate=%lldns encode_v2=%lldns fields=%zu\n",
           (t1 - t0) / reps, (t2 - t1) / reps, (t3 - t2) / reps, (t4 - t3) / reps, enc.n);
    event_enc_free(&e2);
    event_enc_free(&enc);
    free(data);
    event_clear(&ev);
}

int main(void)
{
    th_redis_t r;
    long n = getenv("BENCH_EVENTS") ? atol(getenv("BENCH_EVENTS")) : 200000;
    th_watchdog(900);
    log_init("bus-bench", NULL);
    log_set_level(LOG_WARN);
    event_set_source("bus-bench");
    if (th_redis_start(&r, 0) < 0) return 1;
    setenv("REDIS_URL", r.url, 1);
    setenv("QT_NAMESPACE", "qt", 1);
    double pub = bench_publish(n);
    double con = bench_consume(&r, n);
    double hop = bench_hop(&r, n);
    double peer = bench_peer(&r, n);
    double red = bench_redis(&r, n);
    th_redis_stop(&r);
    bench_decode_detail();
    printf("bus-bench: publish=%.0f/s consume=%.0f/s redis_xadd_p32=%.0f/s ratio=%.2f hop=%.0f/s peer_py=%.0f/s vs_peer=%.2f\n",
           pub, con, red, con / red, hop, peer, peer > 0 ? hop / peer : 0);
    return 0;
}
