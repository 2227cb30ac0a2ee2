/* pipeline_bench — the whole stack (tests/stack.c: the five service binaries
 * on a private redis-server) on 20 symbols of bars.
 *  1. Full speed: BENCH_BARS (default 200000) bars replayed with lockstep
 *     off, in SHADOW (features, both signal services and the engine's
 *     decision for every bar); throughput = bars / seconds until every
 *     consumer group of market and signal has caught up.
 *  2. Paced at 2,000 bars/s for BENCH_PACED_S seconds (default 20), in
 *     PRIMARY with the paper venue: this process reads market, signal and
 *     trade.intent as they arrive and times, per bar, its market entry to its
 *     rl.signal.generated and to its trade.intent (µs, this reader's clock),
 *     and the first also on Redis's clock (the ms of the two entry ids), which
 *     leaves this reader's wake-ups out.
 * Also each service's peak RSS (VmHWM) and redis-benchmark's XADD -P 32 on
 * the same machine in the same run. Last line:
 * pipeline-bench: events=<n> throughput=<n>/s cpu_per_bar_us=<n> tick_to_signal_p50_us=<n> tick_to_signal_p99_us=<n> tick_to_intent_p99_us=<n> redis_xadd_p32=<n>/s ratio=<throughput/redis_xadd_p32>
 * where cpu_per_bar_us is the CPU (user + system) of all six processes,
 * redis-server included, over the full-speed phase with one partition,
 * divided by the bars (the per-process split is printed before it). */
#include "event.h"
#include "stack.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NSYM 20
#define MAXLAT 200000

static th_redis_t R;
static redisContext *rc;
static char dir[256], why[1024];

static const char *sym_name(int i, char *buf, size_t len)
{
    snprintf(buf, len, "S%02dUSDT", i);
    return buf;
}

/* NSYM files of n bars each; feed = "replay:f1,f2,...". */
static void write_files(int n, char *feed, size_t len)
{
    size_t used = (size_t)snprintf(feed, len, "replay:");
    for (int i = 0; i < NSYM; i++) {
        char path[400], s[16];
        snprintf(path, sizeof path, "%s/%s-1m-2024-05.csv", dir, sym_name(i, s, sizeof s));
        stack_write_csv(path, n, 0.0001 * (i % 5 - 2), i * 0.37);
        used += (size_t)snprintf(feed + used, used < len ? len - used : 0, "%s%s", i ? "," : "", path);
    }
}

static long vm_hwm_kb(pid_t pid)
{
    char path[64], line[256];
    long kb = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) kb = atol(line + 6);
    if (f) fclose(f);
    return kb;
}

/* CPU seconds (user + system) pid has used so far; -1 when unreadable. */
static double cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    unsigned long ut = 0, st = 0;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* the name may hold spaces; fields 14 and 15 follow it */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Cores this machine has online (the bounds below assume all of them). */
static long cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 1;
}

/* The processes measured: the stack's, redis-server, and a second
 * rl-decision replica when one runs (pid 0: none). */
#define NPROC (STACK_NSVC + 2)
static pid_t proc_pid(const qt_stack_t *s, pid_t replica, int i)
{
    return i < STACK_NSVC ? s->pid[i] : i == STACK_NSVC ? R.pid : replica;
}

/* Each process's CPU per bar over the full-speed phase, and the bound the
 * busiest one puts on throughput (one process runs on one core at most).
 * The total of the last call is in cpu_total_us. */
static double cpu_total_us;
static double cpu_per_bar(const qt_stack_t *s, pid_t replica, const double *t0, long bars, const char *label)
{
    const char *names[NPROC];
    double us[NPROC], total = 0;
    int top = 0, n = replica > 0 ? NPROC : NPROC - 1;
    for (int i = 0; i < n; i++) {
        names[i] = i < STACK_NSVC ? stack_bins[i] + 4 : i == STACK_NSVC ? "redis-server" : "rl-decision-2";
        us[i] = (cpu_s(proc_pid(s, replica, i)) - t0[i]) * 1e6 / (double)bars;
        total += us[i];
        if (us[i] > us[top]) top = i;
    }
    fprintf(stderr, "pipeline-bench full speed%s, CPU per bar (us):", label);
    for (int i = 0; i < n; i++) fprintf(stderr, " %s=%.0f", names[i], us[i]);
    fprintf(stderr, " total=%.0f\n", total);
    cpu_total_us = total;
    fprintf(stderr, "pipeline-bench full speed bounds: %s alone caps it at %.0f bars/s, the sum on %ld cores at %.0f bars/s\n",
            names[top], 1e6 / us[top], cores(), 1e6 * (double)cores() / total);
    return us[STACK_NSVC];
}

/* Mean ns this process takes to decode (validation included) and to encode
 * the data of one entry of type, over up to 4,000 entries of key. */
static long json_cost(const char *key, const char *type, double *dec_ns, double *enc_ns)
{
    redisReply *r = redisCommand(rc, "XRANGE %s - + COUNT 4000", key);
    long long dec = 0, enc = 0;
    long n = 0;
    char err[512];
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *fl = r->element[i]->element[1];
        event_field_t f[EVENT_FIELDS_MAX];
        size_t nf = 0;
        int match = 0;
        for (size_t k = 0; k + 1 < fl->elements && nf < EVENT_FIELDS_MAX; k += 2) {
            f[nf++] = (event_field_t){fl->element[k]->str, fl->element[k]->len, fl->element[k + 1]->str, fl->element[k + 1]->len};
            match |= !strcmp(fl->element[k]->str, "type") && !strcmp(fl->element[k + 1]->str, type);
        }
        event_t ev;
        long long t = th_now_ns();
        if (!match || event_decode(&ev, f, nf, err, sizeof err) < 0) continue;
        long long t1 = th_now_ns();
        event_enc_t e;
        memset(&e, 0, sizeof e);
        event_encode(&ev, &e, err, sizeof err);
        enc += th_now_ns() - t1, dec += t1 - t;
        event_enc_free(&e);
        event_clear(&ev);
        n++;
    }
    if (r) freeReplyObject(r);
    *dec_ns = n ? (double)dec / (double)n : 0, *enc_ns = n ? (double)enc / (double)n : 0;
    return n;
}

/* The JSON work every bar costs at the least (jansson, this contract): its
 * bar written once and read by three groups, its two signals written once and
 * read by the engine. */
static void json_floor(const char *ns, double redis_us)
{
    char key[64];
    double bd, be, rd, re, md, me;
    snprintf(key, sizeof key, "%s:market", ns);
    long nb = json_cost(key, "market.data.update", &bd, &be);
    snprintf(key, sizeof key, "%s:signal", ns);
    long nr = json_cost(key, "rl.signal.generated", &rd, &re), nm = json_cost(key, "signal.generated", &md, &me);
    if (!nb || !nr || !nm) return;
    double us = (3 * bd + be + rd + re + md + me) / 1000.0;
    fprintf(stderr, "pipeline-bench JSON per bar (ns): bar decode=%.0f encode=%.0f, rl.signal decode=%.0f encode=%.0f, "
                    "signal decode=%.0f encode=%.0f\n", bd, be, rd, re, md, me);
    fprintf(stderr, "pipeline-bench floor: JSON alone %.0f us per bar, redis-server %.0f us per bar: with nothing else, "
                    "%ld cores cap it at %.0f bars/s\n", us, redis_us, cores(), 1e6 * (double)cores() / (us + redis_us));
}

static int caught_up(const char *ns)
{
    return stack_backlog(rc, ns, "market") == 0 && stack_backlog(rc, ns, "signal") == 0;
}

/* The full-speed run in namespace ns; parts > 1: with QT_PARTITIONS=parts
 * and two rl-decision replicas sharing them by lease (the other services
 * read every partition), for the cost of the mechanism. */
static double full_speed(const char *ns, int parts, long bars, long *rss)
{
    static char feed[NSYM * 420 + 16], pe[32], label[80] = "";
    pid_t replica = 0;
    qt_stack_t s = {.extra = {"QT_FEED_LOCKSTEP=0", "QT_LOG_LEVEL=warn", NULL}};
    if (parts > 1) {
        snprintf(pe, sizeof pe, "QT_PARTITIONS=%d", parts);
        snprintf(label, sizeof label, " with QT_PARTITIONS=%d and 2 rl-decision replicas", parts);
        s.extra[2] = pe, s.extra[3] = NULL;
    } else label[0] = '\0';
    write_files((int)(bars / NSYM), feed, sizeof feed);
    s.rl_replicas = parts > 1; /* up, sharing the partitions, before the engine's feed starts */
    if (stack_start(&s, &R, rc, dir, ns, feed, "0", "SHADOW", NULL, 1, why, sizeof why) < 0)
        return fprintf(stderr, "pipeline-bench: %s\n", why), -1;
    replica = s.rl_more[0];
    double cpu0[NPROC];
    for (int i = 0; i < NPROC; i++) cpu0[i] = cpu_s(proc_pid(&s, replica, i));
    long long t0 = th_now_ms();
    while (th_now_ms() - t0 < 600000 && !(stack_count(rc, ns, "market", NULL, 0) >= bars && caught_up(ns))) th_sleep_ms(100);
    double secs = (double)(th_now_ms() - t0) / 1000.0;
    double redis_us = cpu_per_bar(&s, replica, cpu0, bars, label);
    if (parts == 1) json_floor(ns, redis_us);
    for (int i = 0; i < STACK_NSVC; i++) rss[i] = vm_hwm_kb(s.pid[i]);
    long decided = 0;
    json_t *st = stack_api(s.port[ENGINE], "/api/v1/status");
    decided = (long)json_integer_value(json_object_get(json_object_get(st, "counts"), "decisions"));
    json_decref(st);
    fprintf(stderr, "pipeline-bench full speed%s: %ld bars in %.1f s, %ld engine decisions\n", label, bars, secs, decided);
    stack_stop(&s);
    return (double)bars / secs;
}

/* ---------- paced: arrival times seen by this reader ---------- */

typedef struct arrival { char key[40]; long long market_us, signal_us, intent_us, market_ms, signal_ms; } arrival_t;
static arrival_t arr[MAXLAT];
static long narr;

static arrival_t *arrival(const char *symbol, long long open_time)
{
    char key[40];
    snprintf(key, sizeof key, "%s:%lld", symbol, open_time);
    for (long i = narr - 1; i >= 0 && i >= narr - 400; i--) /* recent bars only */
        if (strcmp(arr[i].key, key) == 0) return &arr[i];
    if (narr == MAXLAT) return NULL;
    arrival_t *a = &arr[narr++];
    memset(a, 0, sizeof *a);
    snprintf(a->key, sizeof a->key, "%s", key);
    return a;
}

/* now: this reader's clock; entry: the stream id, whose ms part is Redis's clock at the XADD. */
static void note(const char *stream, const char *entry, const redisReply *fields, long long now)
{
    const char *type = th_entry_field(fields, "type"), *sym = th_entry_field(fields, "symbol"),
               *ot = th_entry_field(fields, "open_time");
    if (!type) type = "";
    arrival_t *a = sym && ot ? arrival(sym, atoll(ot)) : NULL;
    if (a && !strcmp(stream, "pp:market") && !a->market_us) a->market_us = now, a->market_ms = atoll(entry);
    if (a && !strcmp(type, "rl.signal.generated") && !a->signal_us) a->signal_us = now, a->signal_ms = atoll(entry);
    if (a && !strcmp(type, "trade.intent") && !a->intent_us) a->intent_us = now;
}

static void paced(int seconds, long long *p50, long long *p99, long long *ip99, long *nlat)
{
    static char feed[NSYM * 420 + 16];
    static long long lat[MAXLAT], ilat[MAXLAT], rlat[MAXLAT];
    qt_stack_t s = {.extra = {"QT_LOG_LEVEL=warn", NULL}};
    write_files(seconds * 2000 / NSYM + 200, feed, sizeof feed);
    /* 20 symbols of 1-minute bars at 6000x real time: 2,000 bars/s */
    if (stack_start(&s, &R, rc, dir, "pp", feed, "6000", "PRIMARY", "0.3", 1, why, sizeof why) < 0) {
        fprintf(stderr, "pipeline-bench: %s\n", why);
        return;
    }
    char ids[3][64] = {"0-0", "0-0", "0-0"};
    const char *keys[3] = {"pp:market", "pp:signal", "pp:trade.intent"};
    for (long long end = th_now_ms() + seconds * 1000LL; th_now_ms() < end;) {
        redisReply *r = redisCommand(rc, "XREAD COUNT 1000 BLOCK 200 STREAMS %s %s %s %s %s %s", keys[0], keys[1], keys[2],
                                     ids[0], ids[1], ids[2]);
        long long now = th_now_ns() / 1000;
        for (size_t k = 0; r && r->type == REDIS_REPLY_ARRAY && k < r->elements; k++) {
            const redisReply *st = r->element[k];
            int w = !strcmp(st->element[0]->str, keys[0]) ? 0 : !strcmp(st->element[0]->str, keys[1]) ? 1 : 2;
            for (size_t e = 0; e < st->element[1]->elements; e++) {
                note(keys[w], st->element[1]->element[e]->element[0]->str, st->element[1]->element[e]->element[1], now);
                snprintf(ids[w], sizeof ids[w], "%s", st->element[1]->element[e]->element[0]->str);
            }
        }
        if (r) freeReplyObject(r);
    }
    long n = 0, ni = 0;
    for (long i = 0; i < narr; i++) {
        if (arr[i].market_us && arr[i].signal_us) rlat[n] = arr[i].signal_ms - arr[i].market_ms, lat[n++] = arr[i].signal_us - arr[i].market_us;
        if (arr[i].market_us && arr[i].intent_us) ilat[ni++] = arr[i].intent_us - arr[i].market_us;
    }
    *nlat = n;
    *p50 = th_percentile(lat, n, 0.50), *p99 = th_percentile(lat, n, 0.99), *ip99 = th_percentile(ilat, ni, 0.99);
    fprintf(stderr, "pipeline-bench paced 2000 bars/s for %d s: %ld bars timed to their RL signal, %ld to an intent\n", seconds, n, ni);
    fprintf(stderr, "pipeline-bench paced, on Redis's clock (entry ids, ms): market -> rl.signal p50=%lld p99=%lld\n",
            th_percentile(rlat, n, 0.50), th_percentile(rlat, n, 0.99));
    stack_stop(&s);
}

int main(void)
{
    long bars = getenv("BENCH_BARS") ? atol(getenv("BENCH_BARS")) : 200000, rss[STACK_NSVC] = {0}, nlat = 0;
    int paced_s = getenv("BENCH_PACED_S") ? atoi(getenv("BENCH_PACED_S")) : 20;
    long long p50 = -1, p99 = -1, ip99 = -1;
    char err[256];
    th_watchdog(1800);
    th_tempdir(dir, sizeof dir);
    if (th_redis_start(&R, 0) < 0 || !(rc = th_redis_connect(&R))) return 1;
    double tput = full_speed("pb", 1, bars, rss), cpu_us = cpu_total_us;
    long rss2[STACK_NSVC];
    double tput2 = full_speed("pb2", 2, bars, rss2); /* the partitions' cost, in the same run */
    if (tput > 0 && tput2 > 0)
        fprintf(stderr, "pipeline-bench QT_PARTITIONS=2 with 2 rl-decision replicas vs 1: throughput ratio %.3f\n", tput2 / tput);
    paced(paced_s, &p50, &p99, &ip99, &nlat);
    event_t ev;
    json_t *bar = json_pack("{s:s, s:s, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:b, s:I}", "symbol", "BTCUSDT", "interval", "1m",
                            "open_time", (json_int_t)1714521600000LL, "close_time", (json_int_t)1714521659999LL, "open",
                            100.0, "high", 101.0, "low", 99.0, "close", 100.5, "volume", 3.0, "closed", 1, "event_time",
                            (json_int_t)1714521659999LL);
    if (event_make(&ev, "market.data.update", bar, NULL, NULL, err, sizeof err) < 0) return 1;
    double red = th_redis_xadd_rate(&R, 200000, &ev);
    event_clear(&ev);
    for (int i = 0; i < STACK_NSVC; i++) fprintf(stderr, "pipeline-bench peak RSS %s: %.1f MB\n", stack_bins[i] + 4, rss[i] / 1024.0);
    printf("pipeline-bench: events=%ld throughput=%.0f/s cpu_per_bar_us=%.0f tick_to_signal_p50_us=%lld tick_to_signal_p99_us=%lld "
           "tick_to_intent_p99_us=%lld redis_xadd_p32=%.0f/s ratio=%.3f\n",
           bars, tput, cpu_us, p50, p99, ip99, red, red > 0 ? tput / red : 0);
    th_redis_stop(&R);
    return tput > 0 ? 0 : 1;
}
