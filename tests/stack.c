/* stack.c — the whole stack for tests (see stack.h). */
#include "stack.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const stack_bins[STACK_NSVC] = {"bin/trading-engine", "bin/ml-threshold", "bin/rl-decision",
                                            "bin/trade-executor", "bin/policy-store"};
#define STACK_NSTREAMS 7
static const char *const stack_streams[STACK_NSTREAMS] = {"market", "signal", "vote", "trade.intent", "execution", "feedback", "policy"};

int stack_parts(redisContext *rc, const char *ns)
{
    redisReply *r = redisCommand(rc, "HGET %s:meta partitions", ns);
    int p = r && r->type == REDIS_REPLY_STRING ? atoi(r->str) : 1;
    if (r) freeReplyObject(r);
    return p > 1 ? p : 1;
}

int stack_keys(redisContext *rc, const char *ns, const char *stream, char keys[][64])
{
    int p = strcmp(stream, "policy") == 0 ? 1 : stack_parts(rc, ns);
    for (int k = 0; k < p; k++)
        if (p == 1) snprintf(keys[k], 64, "%s:%s", ns, stream);
        else snprintf(keys[k], 64, "%s:%s:p%d", ns, stream, k);
    return p;
}

void stack_lease_holder(redisContext *rc, const char *ns, const char *service, int k, char out[64])
{
    redisReply *r = redisCommand(rc, "GET %s:lease:%s:p%d", ns, service, k);
    snprintf(out, 64, "%s", r && r->type == REDIS_REPLY_STRING ? r->str : "");
    if (r) freeReplyObject(r);
}

int stack_held_by(const char *holder, pid_t pid)
{
    char d[32];
    snprintf(d, sizeof d, "-%d", (int)pid);
    size_t hl = strlen(holder), dl = strlen(d);
    return hl > dl && strcmp(holder + hl - dl, d) == 0;
}

int stack_lease_holders(redisContext *rc, const char *ns, const char *service, int parts, pid_t dead)
{
    char h[STACK_MAXP][64];
    int distinct = 0;
    for (int k = 0; k < parts && k < STACK_MAXP; k++) {
        stack_lease_holder(rc, ns, service, k, h[k]);
        if (!h[k][0] || (dead && stack_held_by(h[k], dead))) return -1;
        int seen = 0;
        for (int j = 0; j < k; j++) seen |= !strcmp(h[j], h[k]);
        distinct += !seen;
    }
    return distinct;
}

void stack_write_csv(const char *path, int n, double drift, double phase)
{
    FILE *f = fopen(path, "w");
    double p = 100;
    for (int i = 0; f && i < n; i++) {
        double c = p * (1 + 0.004 * sin(i * 0.21 + phase) + drift);
        long long t = 1714521600000LL + i * 60000LL;
        fprintf(f, "%lld,%.4f,%.4f,%.4f,%.4f,3,%lld,0,0,0,0,0\n", t, p, fmax(p, c) * 1.001, fmin(p, c) * 0.999, c, t + 59999);
        p = c;
    }
    if (f) fclose(f);
}

/* Service i with the stack's environment on port, logging to <dir>/<tag>.log. */
static pid_t stack_spawn(qt_stack_t *s, int i, int port, const char *tag)
{
    char bin[256];
    static char env[STACK_NSVC][4][16500], urls[STACK_NSVC][5][96];
    static const char *const url_vars[5] = {"QT_CORS_ORIGINS", "QT_ML_THRESHOLD_URL", "QT_RL_DECISION_URL",
                                            "QT_TRADE_EXECUTOR_URL", "QT_POLICY_STORE_URL"};
    const char *e[30];
    int n = 0, dummy;
    snprintf(env[i][0], sizeof env[i][0], "QT_HTTP_PORT=%d", port);
    snprintf(env[i][1], sizeof env[i][1], "QT_FEED=%s", s->feed);
    snprintf(env[i][2], sizeof env[i][2], "QT_FEED_SPEED=%s", s->speed);
    for (int k = 0; k < 5; k++) /* every service knows the others (the dashboard's origin is the engine's) */
        snprintf(urls[i][k], sizeof urls[i][k], "%s=http://127.0.0.1:%d", url_vars[k], s->port[k]);
    const char *fixed[] = {env[i][0], env[i][1], env[i][2], "QT_API_TOKEN=" STACK_TOKEN, "QT_SIGNAL_JOIN_MS=300",
                           "QT_RL_BREAKER_MIN_CALLS=3", "QT_RL_BREAKER_WINDOW=4", "QT_CLAIM_IDLE_MS=2000",
                           urls[i][0], urls[i][1], urls[i][2], urls[i][3], urls[i][4]};
    for (size_t k = 0; k < sizeof fixed / sizeof fixed[0]; k++) e[n++] = fixed[k];
    for (int k = 0; k < 8 && s->extra[k]; k++) e[n++] = s->extra[k];
    e[n] = NULL;
    return th_service(th_bin(stack_bins[i], bin, sizeof bin), s->redis, s->ns, e, s->dir, tag, &dummy, 0);
}

int stack_svc_start(qt_stack_t *s, int i, char *why, size_t len)
{
    char tag[64];
    snprintf(tag, sizeof tag, "%s-%s", s->ns, stack_bins[i] + 4);
    s->pid[i] = stack_spawn(s, i, s->port[i], tag);
    if (s->pid[i] > 0 && th_wait_http(s->port[i], "/ready", 200, 20000) == 0) return 0;
    return snprintf(why, len, "%s did not become ready (log %s/%s.log)", stack_bins[i], s->dir, tag), -1;
}

pid_t stack_replica(qt_stack_t *s, int i, int n, char *why, size_t len) { return stack_another(s, i, n, NULL, 200, why, len); }

pid_t stack_another(qt_stack_t *s, int i, int n, int *port_out, int ready, char *why, size_t len)
{
    char tag[64];
    int port = th_free_port();
    snprintf(tag, sizeof tag, "%s-%s-%d", s->ns, stack_bins[i] + 4, n);
    pid_t p = stack_spawn(s, i, port, tag);
    if (port_out) *port_out = port;
    if (p > 0 && th_wait_http(port, "/ready", ready, 20000) == 0) return p;
    return snprintf(why, len, "%s instance %d did not answer /ready %d (log %s/%s.log)", stack_bins[i], n, ready, s->dir, tag), -1;
}

int stack_put(qt_stack_t *s, const char *key, const char *json, char *why, size_t len)
{
    char path[128], body[128], reply[1024];
    snprintf(path, sizeof path, "/api/v1/policy/config/%s", key);
    snprintf(body, sizeof body, "{\"value\":%s}", json);
    int st = th_http(s->port[POLICY], "PUT", path, STACK_AUTH, body, reply, sizeof reply);
    return st == 200 ? 0 : (snprintf(why, len, "PUT %s = %s: %d %s", key, json, st, reply), -1);
}

int stack_start(qt_stack_t *s, const th_redis_t *r, redisContext *rc, const char *dir, const char *ns, const char *feed,
                const char *speed, const char *mode, const char *min_conf, int with_rl, char *why, size_t len)
{
    const char *extra[8];
    char m[32];
    int more = s->rl_replicas < 4 ? s->rl_replicas : 4;
    memcpy(extra, s->extra, sizeof extra); /* the caller may have set them */
    memset(s, 0, sizeof *s);
    memcpy(s->extra, extra, sizeof extra);
    s->rl_replicas = more;
    s->redis = r, s->rc = rc;
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    snprintf(s->ns, sizeof s->ns, "%s", ns);
    snprintf(s->feed, sizeof s->feed, "%s", feed);
    snprintf(s->speed, sizeof s->speed, "%s", speed);
    for (int i = 0; i < STACK_NSVC; i++) {
        s->port[i] = th_free_port();
        for (int k = 0; k < i; k++)
            if (s->port[k] == s->port[i]) i--;
    }
    snprintf(m, sizeof m, "\"%s\"", mode);
    if (stack_svc_start(s, POLICY, why, len) < 0 || stack_put(s, "rl_v3.live.mode", m, why, len) < 0 ||
        (min_conf && stack_put(s, "rl_v3.live.min_confidence", min_conf, why, len) < 0) ||
        stack_svc_start(s, ML, why, len) < 0 || (with_rl && stack_svc_start(s, RL, why, len) < 0))
        return -1;
    for (int i = 0; with_rl && i < more; i++)
        if ((s->rl_more[i] = stack_replica(s, RL, i + 2, why, len)) < 0) return s->rl_more[i] = 0, -1;
    int parts = more ? stack_parts(rc, ns) : 0, want = 1 + more < parts ? 1 + more : parts;
    for (long long end = th_now_ms() + 10000; more && th_now_ms() < end && stack_lease_holders(rc, ns, "rl-decision", parts, 0) < want;)
        th_sleep_ms(20); /* the first has given the others their shares */
    if (stack_svc_start(s, EXEC, why, len) < 0 || stack_svc_start(s, ENGINE, why, len) < 0) return -1;
    return 0;
}

int stack_stop(qt_stack_t *s)
{
    int bad = 0;
    for (int i = 0; i < STACK_NSVC; i++)
        if (s->pid[i] > 0) bad += th_stop(s->pid[i], 20000) != 0, s->pid[i] = 0;
    for (int i = 0; i < 4; i++)
        if (s->rl_more[i] > 0) bad += th_stop(s->rl_more[i], 20000) != 0, s->rl_more[i] = 0;
    return bad;
}

long long stack_jint(const json_t *o, const char *a, const char *b)
{
    return json_integer_value(json_object_get(b ? json_object_get(o, a) : o, b ? b : a));
}

json_t *stack_api(int port, const char *path)
{
    static char buf[1 << 18];
    if (th_http(port, "GET", path, NULL, NULL, buf, sizeof buf) != 200) return NULL;
    return json_loads(buf, 0, NULL);
}

static long long stack_backlog1(redisContext *rc, const char *key)
{
    long long sum = 0;
    redisReply *r = redisCommand(rc, "XINFO GROUPS %s", key);
    for (size_t g = 0; r && r->type == REDIS_REPLY_ARRAY && g < r->elements; g++) {
        const redisReply *f = r->element[g];
        for (size_t k = 0; k + 1 < f->elements; k += 2) {
            if (!strcmp(f->element[k]->str, "pending")) sum += sum >= 0 ? f->element[k + 1]->integer : 0;
            if (!strcmp(f->element[k]->str, "lag"))
                sum = f->element[k + 1]->type == REDIS_REPLY_INTEGER && sum >= 0 ? sum + f->element[k + 1]->integer : -1;
        }
    }
    if (r) freeReplyObject(r);
    return sum;
}

long long stack_backlog(redisContext *rc, const char *ns, const char *stream)
{
    char keys[STACK_MAXP][64];
    long long sum = 0;
    for (int k = 0, n = stack_keys(rc, ns, stream, keys); k < n; k++) {
        long long b = stack_backlog1(rc, keys[k]);
        sum = b < 0 || sum < 0 ? -1 : sum + b;
    }
    return sum;
}

long stack_dead(redisContext *rc, const char *ns)
{
    long dead = 0;
    for (int i = 0; i < STACK_NSTREAMS; i++) {
        char keys[STACK_MAXP][64], key[80];
        for (int k = 0, n = stack_keys(rc, ns, stack_streams[i], keys); k < n; k++) {
            snprintf(key, sizeof key, "%.64s:dlq", keys[k]);
            dead += (long)th_xlen(rc, key);
        }
    }
    return dead;
}

long stack_count(redisContext *rc, const char *ns, const char *stream, const char *type, int distinct)
{
    char keys[STACK_MAXP][64];
    long sum = 0;
    for (int k = 0, n = stack_keys(rc, ns, stream, keys); k < n; k++)
        sum += distinct ? stack_distinct_ids(rc, keys[k], type, NULL) : th_count_type(rc, keys[k], type);
    return sum;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

long stack_distinct_ids(redisContext *rc, const char *key, const char *type, long *entries)
{
    redisReply *r = redisCommand(rc, "XRANGE %s - +", key);
    size_t n = r && r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
    const char **ids = calloc(n + 1, sizeof *ids);
    long distinct = 0;
    for (size_t i = 0; ids && i < n; i++) {
        const redisReply *f = r->element[i]->element[1];
        const char *t = "";
        ids[i] = "";
        for (size_t k = 0; k + 1 < f->elements; k += 2) {
            if (!strcmp(f->element[k]->str, "id")) ids[i] = f->element[k + 1]->str;
            if (!strcmp(f->element[k]->str, "type")) t = f->element[k + 1]->str;
        }
        if (type && strcmp(t, type) != 0) ids[i] = ""; /* not counted */
    }
    if (ids) qsort(ids, n, sizeof *ids, cmp_str);
    for (size_t i = 0; ids && i < n; i++) distinct += ids[i][0] && (i == 0 || strcmp(ids[i], ids[i - 1]) != 0);
    if (entries) *entries = (long)n;
    free(ids);
    if (r) freeReplyObject(r);
    return distinct;
}

int stack_settle(qt_stack_t *s, long long bars, int ms)
{
    int stable = 0;
    long nbars = 0, intents = 0, results = 0;
    long long backlog[STACK_NSTREAMS] = {0};
    for (long long end = th_now_ms() + ms; th_now_ms() < end; th_sleep_ms(250)) {
        nbars = stack_count(s->rc, s->ns, "market", NULL, 1); /* a re-sent bar has its old id */
        int done = bars == 0 || nbars >= bars;
        for (int i = 0; i < STACK_NSTREAMS; i++) done &= (backlog[i] = stack_backlog(s->rc, s->ns, stack_streams[i])) == 0;
        intents = stack_count(s->rc, s->ns, "trade.intent", "trade.intent", 1); /* a re-sent intent has its old id */
        results = stack_count(s->rc, s->ns, "execution", "trade.executed", 0) +
                  stack_count(s->rc, s->ns, "execution", "trade.failed", 0);
        stable = done && results >= intents ? stable + 1 : 0;
        if (stable >= 4) return 0;
    }
    /* What was not settled, for the test's log (backlog: lag + pending of a stream's groups, -1 when Redis cannot tell the lag). */
    fprintf(stderr, "# settle timed out: %ld distinct bars of %lld, %ld distinct intents, %ld results; backlog", nbars, bars,
            intents, results);
    for (int i = 0; i < STACK_NSTREAMS; i++) fprintf(stderr, " %s=%lld", stack_streams[i], backlog[i]);
    fputc('\n', stderr);
    return -1;
}

/* ---------- the book ---------- */

typedef void (*entry_fn)(stack_book_t *b, const char *id, const char *type, const json_t *data);

static void stack_scan1(redisContext *rc, const char *key, entry_fn fn, stack_book_t *b)
{
    char start[64] = "-";
    for (;;) {
        redisReply *r = redisCommand(rc, "XRANGE %s %s + COUNT 1000", key, start);
        size_t n = r && r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
        for (size_t i = 0; i < n; i++) {
            const redisReply *f = r->element[i]->element[1];
            const char *id = th_entry_field(f, "id"), *type = th_entry_field(f, "type");
            json_t *d = th_entry_payload(f);
            if (id && type && d) fn(b, id, type, d);
            json_decref(d);
        }
        if (n) snprintf(start, sizeof start, "(%s", r->element[n - 1]->element[0]->str);
        if (r) freeReplyObject(r);
        if (n < 1000) return;
    }
}

/* Partition after partition: one symbol's entries are all in one. */
static void stack_scan(redisContext *rc, const char *ns, const char *stream, entry_fn fn, stack_book_t *b)
{
    char keys[STACK_MAXP][64];
    for (int k = 0, n = stack_keys(rc, ns, stream, keys); k < n; k++) stack_scan1(rc, keys[k], fn, b);
}

static int book_intent(const stack_book_t *b, const char *id)
{
    for (int i = 0; id && i < b->nintent; i++)
        if (!strcmp(b->intent[i], id)) return i;
    return -1;
}

static void on_intent(stack_book_t *b, const char *id, const char *type, const json_t *d)
{
    (void)d;
    if (strcmp(type, "trade.intent")) return;
    if (book_intent(b, id) >= 0) b->dup_intents++; /* the same decision published again (same derived id) */
    else if (b->nintent < STACK_MAXI) snprintf(b->intent[b->nintent++], sizeof b->intent[0], "%s", id);
}

static int book_sym(stack_book_t *b, const char *s)
{
    for (int i = 0; i < b->nsym; i++)
        if (!strcmp(b->sym[i], s)) return i;
    if (b->nsym == 16) return 15;
    snprintf(b->sym[b->nsym], sizeof b->sym[0], "%s", s);
    return b->nsym++;
}

/* The ledger written again from the fills: average entry on adds; a close
 * books (exit − entry)·qty·dir minus its share of the entry fees and the exit fee. */
static void book_fill(stack_book_t *b, const json_t *d)
{
    int i = book_sym(b, json_string_value(json_object_get(d, "symbol")));
    double side = strcmp(json_string_value(json_object_get(d, "side")), "BUY") == 0 ? 1 : -1;
    double q = json_number_value(json_object_get(d, "qty")), px = json_number_value(json_object_get(d, "price"));
    double fee = json_number_value(json_object_get(d, "fee"));
    b->fees += fee;
    if (b->qty[i] == 0 || (b->qty[i] > 0) == (side > 0)) {
        double q0 = fabs(b->qty[i]);
        b->entry[i] = (b->entry[i] * q0 + px * q) / (q0 + q);
        b->qty[i] += side * q, b->fees_open[i] += fee;
        return;
    }
    double open = fabs(b->qty[i]), c = fmin(q, open), dir = b->qty[i] > 0 ? 1 : -1, share = b->fees_open[i] * c / open;
    b->realized += (px - b->entry[i]) * c * dir - share - fee * c / q;
    b->fees_open[i] -= share;
    b->qty[i] -= dir * c;
    if (fabs(b->qty[i]) < 1e-9 * open) b->qty[i] = 0, b->fees_open[i] = 0, b->entry[i] = 0;
}

static void on_execution(stack_book_t *b, const char *id, const char *type, const json_t *d)
{
    (void)id;
    if (!strcmp(type, "position.external")) { /* not a result of an intent: the reconciliation's */
        b->external++;
        return;
    }
    int i = book_intent(b, json_string_value(json_object_get(d, "intent_id")));
    if (i < 0) b->orphan_results++;
    else b->results[i]++;
    if (!strcmp(type, "trade.executed")) book_fill(b, d);
}

/* A position.closed published again after a restart or a take-over has its
 * old id: it is one close, counted once. */
static void on_feedback(stack_book_t *b, const char *id, const char *type, const json_t *d)
{
    if (strcmp(type, "position.closed")) return;
    for (int i = 0; i < b->nclosed; i++)
        if (!strcmp(b->closed[i], id)) return;
    if (b->nclosed < STACK_MAXI) snprintf(b->closed[b->nclosed++], sizeof b->closed[0], "%s", id);
    b->closes++, b->closed_pnl += json_number_value(json_object_get(d, "pnl"));
    b->closes_without_votes += json_object_size(json_object_get(d, "model_votes")) == 0;
}

void stack_read_book(redisContext *rc, const char *ns, stack_book_t *b)
{
    memset(b, 0, sizeof *b);
    stack_scan(rc, ns, "trade.intent", on_intent, b);
    stack_scan(rc, ns, "execution", on_execution, b);
    stack_scan(rc, ns, "feedback", on_feedback, b);
}

#define FAIL(...) return snprintf(why, len, __VA_ARGS__), -1

int stack_check_book(const qt_stack_t *s, stack_book_t *b, char *why, size_t len)
{
    int unsettled = 0, twice = 0, open = 0, rc = 0;
    for (int i = 0; i < b->nintent; i++) unsettled += b->results[i] == 0, twice += b->results[i] > 1;
    if (unsettled || twice || b->orphan_results)
        FAIL("%d intents without a result, %d with more than one, %d results without an intent", unsettled, twice, b->orphan_results);
    json_t *p = stack_api(s->port[ENGINE], "/api/v1/positions"), *pos = json_object_get(p, "positions"), *v;
    double realized = json_number_value(json_object_get(p, "realized_pnl")), fees = json_number_value(json_object_get(p, "fees"));
    for (int i = 0; i < b->nsym; i++) open += b->qty[i] != 0;
    if (!p) rc = (snprintf(why, len, "no positions from the engine"), -1);
    else if (fabs(realized - b->realized) > 0.005 || fabs(fees - b->fees) > 0.005 || fabs(b->closed_pnl - b->realized) > 0.005)
        rc = (snprintf(why, len, "realized %.4f / fees %.4f, recomputed %.4f / %.4f, position.closed sum %.4f", realized, fees,
                      b->realized, b->fees, b->closed_pnl), -1);
    else if (json_integer_value(json_object_get(p, "closed_trades")) != b->closes || (int)json_array_size(pos) != open)
        rc = (snprintf(why, len, "closed trades %lld vs %d, open positions %zu vs %d",
                      (long long)json_integer_value(json_object_get(p, "closed_trades")), b->closes, json_array_size(pos), open), -1);
    size_t k;
    json_array_foreach(pos, k, v)
    {
        int i = book_sym(b, json_string_value(json_object_get(v, "symbol")));
        double q = json_number_value(json_object_get(v, "qty")) * (strcmp(json_string_value(json_object_get(v, "side")), "LONG") == 0 ? 1 : -1);
        if (rc == 0 && (fabs(q - b->qty[i]) > 1e-9 * fmax(1, fabs(q)) || fabs(json_number_value(json_object_get(v, "entry_price")) - b->entry[i]) > 0.005))
            rc = (snprintf(why, len, "%s: qty %.8f entry %.4f, recomputed %.8f / %.4f", b->sym[i], q,
                          json_number_value(json_object_get(v, "entry_price")), b->qty[i], b->entry[i]), -1);
    }
    json_decref(p);
    return rc;
}
