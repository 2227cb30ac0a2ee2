/* The same replay through the whole stack twice must give the same events —
 * the determinism of the event-time path that issue #9 asks for. The engine
 * replays in lockstep (QT_FEED_LOCKSTEP, engine.c): it publishes one step at
 * a time and takes the next once every consumer has handled the last, so
 * each service sees the same events in the same order. The second run shares
 * its two cores with a busy process, so the runs' timing differs and only
 * the content must agree.
 *
 * make test: 2 symbols x 400 bars in PRIMARY. make soak (QT_SOAK=1): 4
 * symbols x 1,500 bars, in PRIMARY and in HYBRID. E2E_DUMP=DIR keeps both
 * digests and the services' logs for a diff. */
#include "check.h"
#include "stack.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static th_redis_t R;
static redisContext *rc;
static char dir[256], why[1024], out[65536];

/* Everything a run published, as comparable text: one line per entry of
 * the signal, policy, trade.intent, execution and feedback streams (type and
 * data, keys sorted), then the engine's latest decisions. Both runs use the
 * same namespace on a flushed Redis, so even the derived event ids must
 * agree; only what is wall-clock time by nature is left out (the envelope's
 * ts, and the data fields named in wall_keys). */
static const char *const wall_keys[] = {"ts", "latency_ms", "inference_us", "filled_at", "order_time"};

static void digest_add(char *buf, size_t len, size_t *used, const char *a, const char *b, const char *c)
{
    int n = snprintf(buf + *used, *used < len ? len - *used : 0, "%s %s %s\n", a, b, c);
    if (n > 0) *used += (size_t)n;
}

static int line_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sort the lines from buf+from on and drop repeated ones (an event published
 * again after a restart): publishers interleave on a stream in any order;
 * what each published is what must agree. Returns the new end. */
static size_t digest_sort(char *buf, size_t from, size_t used)
{
    size_t n = 0, cap = 0;
    char **lines = NULL, *copy = strndup(buf + from, used - from);
    for (char *save = NULL, *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (n == cap) lines = realloc(lines, (cap = cap ? cap * 2 : 1024) * sizeof *lines);
        lines[n++] = l;
    }
    qsort(lines, n, sizeof *lines, line_cmp);
    size_t at = from;
    for (size_t i = 0; i < n; i++) /* an event published again after a restart is the same event */
        if (i == 0 || strcmp(lines[i], lines[i - 1]) != 0) at += (size_t)sprintf(buf + at, "%s\n", lines[i]);
    free(lines);
    free(copy);
    return at;
}

static void run_digest(const char *ns, int port, char *buf, size_t len, int with_decisions)
{
    static const char *const streams[] = {"signal", "policy", "trade.intent", "execution", "feedback"};
    size_t used = 0;
    buf[0] = '\0';
    for (size_t si = 0; si < sizeof streams / sizeof streams[0]; si++) {
        char keys[STACK_MAXP][64];
        size_t from = used;
        int nk = stack_keys(rc, ns, streams[si], keys); /* every partition's entries, as one stream's */
        for (int ki = 0; ki < nk; ki++) {
        const char *key = keys[ki];
        char start[64] = "-";
        for (;;) {
            redisReply *r = redisCommand(rc, "XRANGE %s %s + COUNT 1000", key, start);
            size_t n = r && r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
            for (size_t i = 0; i < n; i++) {
                const redisReply *f = r->element[i]->element[1];
                const char *type = th_entry_field(f, "type"), *id = th_entry_field(f, "id"), *data = "{}";
                if (!type) type = "?";
                if (!id) id = "?";
                if (!strcmp(type, "policy.config.updated")) id = "-"; /* an operator's change: its id is a ULID */
                json_t *d = th_entry_payload(f);
                for (size_t w = 0; d && w < sizeof wall_keys / sizeof wall_keys[0]; w++) json_object_del(d, wall_keys[w]);
                char *txt = d ? json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(10)) : NULL;
                char head[160];
                snprintf(head, sizeof head, "%s %s", streams[si], type);
                digest_add(buf, len, &used, head, id, txt ? txt : data);
                free(txt);
                json_decref(d);
                snprintf(start, sizeof start, "(%s", r->element[i]->element[0]->str);
            }
            if (r) freeReplyObject(r);
            if (n < 1000) break;
        }
        }
        if (used < len) used = digest_sort(buf, from, used);
    }
    if (!with_decisions) return; /* the decision log (for the API) starts again after an engine restart */
    json_t *dec = stack_api(port, "/api/v1/decisions?limit=200"), *v;
    size_t k;
    json_array_foreach(json_object_get(dec, "decisions"), k, v) {
        char *txt = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(10));
        digest_add(buf, len, &used, "decision", "-", txt ? txt : "?");
        free(txt);
    }
    json_decref(dec);
}

/* CSVs of bars 1-minute bars for each of the n symbols (a sine wave with
 * its own drift and phase) in dir, and the feed that replays them. */
static void replay_files(const char *const *syms, int n, int bars, char *feed, size_t len)
{
    char path[300];
    snprintf(feed, len, "replay:");
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s-1m-2024-05.csv", dir, syms[i]);
        stack_write_csv(path, bars, (i % 2 ? -0.0003 : 0.0004) * (1 + 0.2 * i), 0.3 + 1.4 * i);
        snprintf(feed + strlen(feed), len - strlen(feed), "%s%s", i ? "," : "", path);
    }
}

/* Where two digests first differ (the start of that line), or -1 when they are the same. */
static long digest_differs(const char *d1, const char *d2)
{
    if (strcmp(d1, d2) == 0) return -1;
    size_t i = 0;
    while (d1[i] && d1[i] == d2[i]) i++;
    while (i > 0 && d1[i - 1] != '\n') i--;
    return (long)i;
}

/* Two runs' digests must be the same; the first line that differs is shown. */
static void same_digests(const char *d1, const char *d2, const char *a, const char *b)
{
    long i = digest_differs(d1, d2);
    if (i >= 0) CHECK_FAIL_AT("the runs differ from:\n  %s: %.400s\n  %s: %.400s", a, d1 + i, b, d2 + i);
}

/* A process that keeps one core busy until killed. */
static pid_t hog_start(void)
{
    pid_t p = fork();
    if (p == 0) {
        volatile unsigned long x = 0;
        for (;;) x++;
    }
    return p;
}

static void hog_stop(pid_t p)
{
    if (p <= 0) return;
    kill(p, SIGKILL);
    waitpid(p, NULL, 0);
}

static void dump(int run, const char *digest)
{
    const char *to = getenv("E2E_DUMP");
    char cmd[800], path[300];
    if (!to) return;
    snprintf(cmd, sizeof cmd, "for f in %s/dt-*.log; do cp \"$f\" '%s'/run%d-$(basename \"$f\"); done", dir, to, run);
    if (system(cmd) != 0) fprintf(stderr, "could not copy the logs: %s\n", cmd);
    snprintf(path, sizeof path, "%s/digest-%d.txt", to, run);
    FILE *f = fopen(path, "w");
    if (f) fputs(digest, f), fclose(f);
}

static void same_replay_twice(const char *mode)
{
    static char d1[1 << 24], d2[1 << 24];
    static const char *const syms[4] = {"DOGEUSDT", "AVAXUSDT", "LINKUSDT", "ADAUSDT"};
    const int soak = getenv("QT_SOAK") != NULL, nsym = soak ? 4 : 2, bars = soak ? 1500 : 400;
    char feed[2000];
    qt_stack_t s;
    replay_files(syms, nsym, bars, feed, sizeof feed);
    char *dig[2] = {d1, d2};
    for (int run = 0; run < 2; run++) {
        redisReply *fl = redisCommand(rc, "FLUSHALL"); /* the same namespace, so derived ids must agree too */
        if (fl) freeReplyObject(fl);
        s.extra[0] = NULL;
        if (stack_start(&s, &R, rc, dir, "dt", feed, "0", mode, "0.3", 1, why, sizeof why) < 0) CHECK_FAIL_AT("%s", why);
        pid_t hog = run == 1 ? hog_start() : 0; /* the second run on a busier machine */
        int settled = stack_settle(&s, (long long)nsym * bars, soak ? 900000 : 150000);
        hog_stop(hog);
        CHECK_EQ(settled, 0);
        run_digest("dt", s.port[ENGINE], dig[run], sizeof d1, 1);
        CHECK_EQ(stack_stop(&s), 0);
        dump(run + 1, dig[run]);
    }
    CHECK(strstr(d1, "trade.intent trade.intent") != NULL); /* it traded */
    same_digests(d1, d2, "first", "second");
    int intents = 0, lines = 0;
    for (const char *p = d1; (p = strstr(p, "\ntrade.intent ")); p++) intents++;
    for (const char *p = d1; (p = strchr(p, '\n')); p++) lines++;
    printf("# e2e-determinism %s: 2 runs x %d bars (%d symbols), %d events and decisions, %d intents, all identical\n",
           mode, nsym * bars, nsym, lines, intents);
}

/* Once the market stream holds `at` bars, SIGKILL service i and start it again. */
static void kill_at(qt_stack_t *s, int i, long long at)
{
    for (long long end = th_now_ms() + 120000; th_now_ms() < end && th_xlen(rc, "dt:market") < at;) th_sleep_ms(5);
    th_kill(s->pid[i], SIGKILL);
    th_wait(s->pid[i], 5000, NULL);
    s->pid[i] = 0;
    if (stack_svc_start(s, i, why, sizeof why) < 0) CHECK_FAIL_AT("restarting %s: %s", stack_bins[i], why);
}

/* The same replay with rl-decision, ml-threshold, policy-store and the
 * trading-engine each SIGKILLed once on the way and restarted: every
 * signal, policy, intent, fill and feedback event is the one the run that
 * never stopped published (a restart may publish one again, with the same
 * id and content). Before, each restart began from empty windows.
 *
 * A third run kills only the engine, long after its last checkpoint (one
 * at the start): the replay then hands it hundreds of signals it decided
 * before. What a replayed decision would intend that the streams do not
 * hold was never made and is not booked (it used to be, and the lockstep
 * then waited for its execution until it gave up), and the
 * performance.update cadence goes on from the last one published, not
 * from the checkpoint's; the peak equity and the day's start come from
 * their record in Redis (the feed's prices moved the peak after the
 * checkpoint: drawdown_pct used to differ), so every event is identical. */
TEST(a_sigkill_of_each_stateful_service_mid_replay_changes_no_event)
{
    static char d1[1 << 24], d2[1 << 24], d3[1 << 24];
    static const char *const syms[2] = {"DOGEUSDT", "AVAXUSDT"};
    const int bars = 400;
    char feed[2000];
    qt_stack_t s;
    replay_files(syms, 2, bars, feed, sizeof feed);
    char *dig[3] = {d1, d2, d3};
    long intents = -1, timeouts = -1;
    for (int run = 0; run < 3; run++) {
        redisReply *fl = redisCommand(rc, "FLUSHALL");
        if (fl) freeReplyObject(fl);
        s.extra[0] = run == 2 ? "QT_CHECKPOINT_MS=3600000" : "QT_CHECKPOINT_MS=50", s.extra[1] = NULL;
        if (stack_start(&s, &R, rc, dir, "dt", feed, "0", "PRIMARY", "0.3", 1, why, sizeof why) < 0) CHECK_FAIL_AT("%s", why);
        if (run == 1) {
            kill_at(&s, RL, 2 * bars / 5);
            kill_at(&s, ML, 2 * bars * 2 / 5);
            kill_at(&s, POLICY, 2 * bars * 3 / 5);
            kill_at(&s, ENGINE, 2 * bars * 4 / 5);
        }
        if (run == 2) kill_at(&s, ENGINE, 2 * bars / 2);
        CHECK_EQ(stack_settle(&s, 2LL * bars, 150000), 0);
        run_digest("dt", s.port[ENGINE], dig[run], sizeof d1, 0);
        if (run == 2) { /* what the restarted engine booked is what the streams hold */
            CHECK_EQ(th_http(s.port[ENGINE], "GET", "/api/v1/status", NULL, NULL, out, sizeof out), 200);
            json_t *st = json_loads(out, 0, NULL), *counts = json_object_get(st, "counts");
            intents = (long)json_integer_value(json_object_get(counts, "intents"));
            timeouts = (long)json_integer_value(json_object_get(counts, "lockstep_timeouts"));
            json_decref(st);
        }
        CHECK_EQ(stack_stop(&s), 0);
        dump(run + 3, dig[run]);
    }
    CHECK(strstr(d1, "trade.intent trade.intent") != NULL);
    same_digests(d1, d2, "uninterrupted", "killed");
    CHECK_EQ(timeouts, 0);
    CHECK_EQ(intents, (long)th_count_type(rc, "dt:trade.intent", "trade.intent"));
    long n1 = 0, n3 = 0;
    for (const char *p = d1; (p = strstr(p, "\nfeedback performance.update ")); p++) n1++;
    for (const char *p = d3; (p = strstr(p, "\nfeedback performance.update ")); p++) n3++;
    CHECK_EQ(n3, n1);
    same_digests(d1, d3, "uninterrupted", "engine killed long after its checkpoint");
}

/* The same replay in a namespace of one partition and in one of four
 * (QT_PARTITIONS, DESIGN §2a) with three replicas each of trade-executor,
 * rl-decision and ml-threshold sharing the partitions by lease, the first of
 * each SIGKILLed mid-replay (the symbols then move with their state:
 * checkpoint + replay at the take): each symbol's events go to its
 * partition's streams, and every event is the one the unpartitioned run
 * with one replica of each published — the ensemble's weights too, which
 * move with the trades each ml-threshold replica learns from (learner.h). */
TEST(four_symbol_partitions_and_replicas_publish_the_events_of_one)
{
    static char d1[1 << 24], d2[1 << 24];
    static const char *const syms[3] = {"DOGEUSDT", "AVAXUSDT", "LINKUSDT"}; /* partitions 0, 3 and 1 of 4 */
    const int bars = 300;
    char feed[2000];
    qt_stack_t s;
    replay_files(syms, 3, bars, feed, sizeof feed);
    char *dig[2] = {d1, d2};
    for (int run = 0; run < 2; run++) {
        redisReply *fl = redisCommand(rc, "FLUSHALL");
        if (fl) freeReplyObject(fl);
        s.extra[0] = run ? "QT_PARTITIONS=4" : "QT_PARTITIONS=1", s.extra[1] = "QT_CHECKPOINT_MS=50", s.extra[2] = NULL;
        if (run) s.extra[2] = "QT_LEASE_MS=1000", s.extra[3] = NULL;
        if (stack_start(&s, &R, rc, dir, "dt", feed, "0", "PRIMARY", "0.3", 1, why, sizeof why) < 0) CHECK_FAIL_AT("%s", why);
        pid_t more[6] = {0, 0, 0, 0, 0, 0};
        static const int replicated[3] = {EXEC, RL, ML};
        static const char *const service[3] = {"trade-executor", "rl-decision", "ml-threshold"};
        for (int i = 0; run && i < 6; i++)
            if ((more[i] = stack_replica(&s, replicated[i / 2], i % 2 + 1, why, sizeof why)) < 0) CHECK_FAIL_AT("%s", why);
        for (int k = 0; run && k < 3; k++) { /* the first one, which held every partition before the others came */
            int holders = 0;
            for (long long end = th_now_ms() + 10000; th_now_ms() < end && holders < 3; th_sleep_ms(20))
                holders = stack_lease_holders(rc, "dt", service[k], 4, 0);
            CHECK_EQ(holders, 3); /* the three share the four partitions */
            long long bars_in = 0, at = 3LL * bars * (k + 2) / 6;
            for (long long end = th_now_ms() + 120000; th_now_ms() < end && bars_in < at; th_sleep_ms(5))
                bars_in = stack_count(rc, "dt", "market", NULL, 0);
            th_kill(s.pid[replicated[k]], SIGKILL);
            th_wait(s.pid[replicated[k]], 5000, NULL);
            s.pid[replicated[k]] = 0;
        }
        CHECK_EQ(stack_settle(&s, 3LL * bars, 150000), 0);
        run_digest("dt", s.port[ENGINE], dig[run], sizeof d1, 1);
        for (int i = 0; i < 6; i++)
            if (more[i] > 0) CHECK_EQ(th_stop(more[i], 20000), 0);
        if (run == 1) { /* the events are where the partitions say */
            CHECK_EQ(stack_parts(rc, "dt"), 4);
            CHECK_EQ(th_xlen(rc, "dt:market"), 0);
            CHECK_EQ(th_count_type(rc, "dt:market:p0", "market.data.update"), bars);
            CHECK_EQ(th_count_type(rc, "dt:market:p3", "market.data.update"), bars);
            CHECK_EQ(th_count_type(rc, "dt:market:p1", "market.data.update"), bars);
            CHECK_EQ(th_xlen(rc, "dt:market:p2"), 0);
            CHECK(th_count_type(rc, "dt:signal:p3", "rl.signal.generated") > 0);
            CHECK_EQ(th_xlen(rc, "dt:signal:p2"), 0);
            CHECK(th_xlen(rc, "dt:policy") > 0);
            redisReply *v = redisCommand(rc, "HGET dt:ml:state version"); /* the replicas learned, from each other's trades */
            CHECK(v && v->type == REDIS_REPLY_STRING && atoll(v->str) >= 3);
            if (v) freeReplyObject(v);
        }
        CHECK_EQ(stack_stop(&s), 0);
        dump(run + 6, dig[run]);
    }
    CHECK(strstr(d1, "trade.intent trade.intent") != NULL);
    same_digests(d1, d2, "one partition", "four");
}

/* A second trading-engine and a second policy-store wait as standbys
 * (lease.h); the active ones are SIGKILLed mid-replay and the standbys take
 * over with the state of a restart (checkpoint + replay): every bar is
 * decided, every intent settled once, the new engine's ledger equals a
 * recomputation from the fills, and every event is the one a run without
 * standbys published. (In about half the runs an engine taken over used to
 * publish one performance.update more: its cadence went on from its
 * checkpoint's, not from the last one published.) */
TEST(the_engine_and_policy_store_standbys_take_over_and_the_ledger_holds)
{
    static char d1[1 << 24], d2[1 << 24];
    static const char *const syms[2] = {"DOGEUSDT", "AVAXUSDT"};
    const int bars = 400;
    char feed[2000];
    qt_stack_t s;
    replay_files(syms, 2, bars, feed, sizeof feed);
    char *dig[2] = {d1, d2};
    for (int run = 0; run < 2; run++) {
        redisReply *fl = redisCommand(rc, "FLUSHALL");
        if (fl) freeReplyObject(fl);
        s.extra[0] = "QT_CHECKPOINT_MS=50", s.extra[1] = "QT_LEASE_MS=1000", s.extra[2] = NULL;
        if (stack_start(&s, &R, rc, dir, "dt", feed, "0", "PRIMARY", "0.3", 1, why, sizeof why) < 0) CHECK_FAIL_AT("%s", why);
        if (run == 1) {
            int port[2];
            const int which[2] = {ENGINE, POLICY};
            pid_t standby[2];
            for (int k = 0; k < 2; k++) {
                if ((standby[k] = stack_another(&s, which[k], 1, &port[k], 503, why, sizeof why)) < 0) CHECK_FAIL_AT("%s", why);
                CHECK_EQ(th_http(port[k], "GET", "/ready", NULL, NULL, out, sizeof out), 503);
                CHECK_CONTAINS(out, "standby: ");
            }
            for (int k = 0; k < 2; k++) { /* the engine at 40 %, policy-store at 70 % */
                long long at = 2LL * bars * (k ? 7 : 4) / 10, n = 0;
                for (long long end = th_now_ms() + 120000; th_now_ms() < end && n < at; th_sleep_ms(5))
                    n = stack_count(rc, "dt", "market", NULL, 0);
                th_kill(s.pid[which[k]], SIGKILL);
                th_wait(s.pid[which[k]], 5000, NULL);
                s.pid[which[k]] = standby[k], s.port[which[k]] = port[k];
                CHECK_EQ(th_wait_http(port[k], "/ready", 200, 20000), 0); /* it took over */
            }
        }
        CHECK_EQ(stack_settle(&s, 2LL * bars, 150000), 0);
        run_digest("dt", s.port[ENGINE], dig[run], sizeof d1, 0);
        if (run == 1) {
            stack_book_t *book = calloc(1, sizeof *book);
            stack_read_book(rc, "dt", book);
            CHECK(book->nintent > 0);
            if (stack_check_book(&s, book, why, sizeof why) < 0) CHECK_FAIL_AT("the new engine's book: %s", why);
            free(book);
        }
        CHECK_EQ(stack_stop(&s), 0);
        dump(run + 8, dig[run]);
    }
    CHECK(strstr(d1, "trade.intent trade.intent") != NULL);
    same_digests(d1, d2, "without standbys", "taken over");
}

TEST(the_same_replay_twice_gives_the_same_signals_policies_decisions_intents_and_fills)
{
    same_replay_twice("PRIMARY");
}

TEST(in_hybrid_too_when_soaking)
{
    if (!getenv("QT_SOAK")) return; /* make soak */
    same_replay_twice("HYBRID");
}

int main(int argc, char **argv);

__attribute__((constructor)) static void setup(void)
{
    th_watchdog(getenv("QT_SOAK") ? 3600 : 900);
    th_tempdir(dir, sizeof dir);
    if (th_redis_start(&R, 0) < 0 || !(rc = th_redis_connect(&R))) exit(2);
}

CHECK_MAIN()
