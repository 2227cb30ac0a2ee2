/* backtest.c — qtctl backtest: run the real stack on CSV bars and report (see backtest.h). */
#include "backtest.h"
#include "config.h"
#include "httpc.h"
#include "kline.h"
#include "rsync.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BT_MAX_FILES 32
#define BT_NSVC 5
#define BT_FEE_BPS 4.0 /* the paper venue's default fee, for buy-and-hold */

static const char bt_usage[] =
    "usage: qtctl backtest --csv FILE [--csv FILE]... [--mode PRIMARY|HYBRID] [--min-confidence X]\n"
    "                      [--balance USDT] [--svg PATH] [--json] [--keep] [--timeout SECONDS] [--bin DIR]\n"
    "  Runs the five services on a private redis-server, replays the Binance kline CSV files at full\n"
    "  speed through the paper venue, and reports trades, win rate, return, max drawdown, Sharpe, fees\n"
    "  and exposure next to buy-and-hold of the same bars. The equity curves go to --svg PATH (nothing\n"
    "  is written without it). --keep leaves the run's folder (logs, Redis data); --bin names the folder of\n"
    "  the service binaries (default: qtctl's own). Exit 0 done, 1 the run failed, 2 usage.\n";

static const char *const bt_svc[BT_NSVC] = {"policy-store", "ml-threshold", "rl-decision", "trade-executor", "trading-engine"};

typedef struct bt_opts {
    const char *files[BT_MAX_FILES];
    int nfiles, json, keep;
    const char *mode, *svg, *bindir, *min_conf;
    double balance;
    long timeout_s;
} bt_opts_t;

typedef struct bt_run {
    char dir[PATH_MAX], bindir[PATH_MAX], redis_url[64], token[40];
    int redis_port, port[BT_NSVC];
    pid_t redis, pid[BT_NSVC];
    redisContext *rc;
} bt_run_t;

typedef struct bt_curve { int64_t *t; double *v; long n, cap; } bt_curve_t;

typedef struct bt_stats {
    double ret_pct, maxdd_pct, sharpe, fees, exposure_pct, in_market_pct, win_rate, final_equity;
    long trades, wins;
} bt_stats_t;

static volatile sig_atomic_t bt_interrupted;

static void bt_on_signal(int sig)
{
    (void)sig;
    bt_interrupted = 1;
}

/* ---------- arguments ---------- */

static int bt_parse(int argc, char **argv, bt_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->mode = "PRIMARY", o->svg = NULL, o->balance = 10000, o->timeout_s = 1800;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--json") == 0) o->json = 1;
        else if (strcmp(a, "--keep") == 0) o->keep = 1;
        else if (!v) return fprintf(stderr, "qtctl backtest: %s needs a value\n%s", a, bt_usage), -1;
        else if (strcmp(a, "--csv") == 0 && o->nfiles < BT_MAX_FILES) o->files[o->nfiles++] = v, i++;
        else if (strcmp(a, "--mode") == 0) o->mode = v, i++;
        else if (strcmp(a, "--svg") == 0) o->svg = v, i++;
        else if (strcmp(a, "--bin") == 0) o->bindir = v, i++;
        else if (strcmp(a, "--min-confidence") == 0) o->min_conf = v, i++;
        else if (strcmp(a, "--balance") == 0) o->balance = atof(v), i++;
        else if (strcmp(a, "--timeout") == 0) o->timeout_s = atol(v), i++;
        else return fprintf(stderr, "qtctl backtest: unknown or repeated argument %s\n%s", a, bt_usage), -1;
    }
    if (!o->nfiles) return fprintf(stderr, "qtctl backtest: give at least one --csv FILE\n%s", bt_usage), -1;
    if (strcmp(o->mode, "PRIMARY") != 0 && strcmp(o->mode, "HYBRID") != 0)
        return fprintf(stderr, "qtctl backtest: --mode must be PRIMARY or HYBRID, not '%s'\n", o->mode), -1;
    char *end = NULL;
    double mc = o->min_conf ? strtod(o->min_conf, &end) : 0;
    if (o->min_conf && (end == o->min_conf || *end || !(mc >= 0 && mc <= 1)))
        return fprintf(stderr, "qtctl backtest: --min-confidence must be within 0..1\n"), -1;
    if (!(o->balance >= 1) || o->timeout_s < 10) return fprintf(stderr, "qtctl backtest: --balance >= 1 and --timeout >= 10\n"), -1;
    return 0;
}

/* ---------- processes ---------- */

static int bt_free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

/* Start path with argv, output to dir/<log>.log, env NAME=VALUE pairs added. */
static pid_t bt_spawn(const bt_run_t *r, const char *path, const char *const argv[], const char *log, const char *const env[])
{
    char file[PATH_MAX + 16];
    snprintf(file, sizeof file, "%s/%s.log", r->dir, log);
    pid_t p = fork();
    if (p != 0) return p;
    int fd = open(file, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) dup2(fd, 1), dup2(fd, 2);
    setpgid(0, 0); /* Ctrl-C reaches qtctl, which stops them in order */
    for (int i = 0; env && env[i]; i++) putenv((char *)env[i]); /* the child's copy */
    execvp(path, (char *const *)argv);
    fprintf(stderr, "cannot run %s: %s\n", path, strerror(errno));
    _exit(127);
}

static int bt_start_redis(bt_run_t *r, char *err, size_t errlen)
{
    char port[16];
    redis_url_t u;
    r->redis_port = bt_free_port();
    snprintf(port, sizeof port, "%d", r->redis_port);
    const char *argv[] = {"redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                    "--dir", r->dir, NULL};
    r->redis = bt_spawn(r, "redis-server", argv, "redis", NULL);
    snprintf(r->redis_url, sizeof r->redis_url, "redis://127.0.0.1:%d/0", r->redis_port);
    if (config_parse_redis_url(r->redis_url, &u, err, errlen) < 0) return -1;
    for (int i = 0; i < 100 && !r->rc; i++) {
        usleep(50000);
        if (!(r->rc = rsync_connect(&u, 1000, err, errlen))) continue;
        redisReply *p = redisCommand(r->rc, "PING");
        if (!p || p->type == REDIS_REPLY_ERROR) redisFree(r->rc), r->rc = NULL;
        if (p) freeReplyObject(p);
    }
    return r->rc ? 0 : (snprintf(err, errlen, "redis-server did not start (log in %.200s/redis.log)", r->dir), -1);
}

static long bt_http(int port, const char *method, const char *path, const char *token, const char *body, json_t **reply)
{
    char url[256], err[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    json_t *j = NULL;
    long code = httpc_json(method, url, token, body, 5000, &j, err, sizeof err);
    if (reply) *reply = j;
    else json_decref(j);
    return code;
}

static int bt_wait_ready(bt_run_t *r, int i, char *err, size_t errlen)
{
    for (int k = 0; k < 600 && !bt_interrupted; k++) {
        int st;
        if (waitpid(r->pid[i], &st, WNOHANG) == r->pid[i])
            return r->pid[i] = 0, snprintf(err, errlen, "%s exited at start (log in %.200s/%s.log)", bt_svc[i], r->dir, bt_svc[i]), -1;
        if (bt_http(r->port[i], "GET", "/ready", NULL, NULL, NULL) == 200) return 0;
        usleep(50000);
    }
    return snprintf(err, errlen, "%s did not become ready in 30 s (log in %.200s/%s.log)", bt_svc[i], r->dir, bt_svc[i]), -1;
}

/* The mode (and minimum confidence) through the policy-store's API. */
static int bt_set_policy(bt_run_t *r, const bt_opts_t *o, char *err, size_t errlen)
{
    char body[64];
    snprintf(body, sizeof body, "{\"value\":\"%s\"}", o->mode);
    if (bt_http(r->port[0], "PUT", "/api/v1/policy/config/rl_v3.live.mode", r->token, body, NULL) != 200)
        return snprintf(err, errlen, "policy-store refused the mode %s", o->mode), -1;
    snprintf(body, sizeof body, "{\"value\":%.10s}", o->min_conf ? o->min_conf : "");
    if (o->min_conf && bt_http(r->port[0], "PUT", "/api/v1/policy/config/rl_v3.live.min_confidence", r->token, body, NULL) != 200)
        return snprintf(err, errlen, "policy-store refused the minimum confidence %s", o->min_conf), -1;
    return 0;
}

/* The models the services load, whatever the current folder: QT_MODELS_DIR,
 * else the nearest "models" folder above qtctl's (BIN/../models: an install
 * such as the image's /opt/qt; build/bin/../../models: a build), else
 * ./models. */
static int bt_models(const bt_run_t *r, char *dir, size_t len, char *err, size_t errlen)
{
    char c[PATH_MAX + 64], probe[PATH_MAX + 96], real[PATH_MAX], up[40] = "";
    const char *env = getenv("QT_MODELS_DIR");
    if (env && *env) {
        snprintf(probe, sizeof probe, "%s/ppo-default.bin", env);
        if (access(probe, R_OK) == 0 && realpath(env, real)) return snprintf(dir, len, "%.*s", (int)len - 1, real), 0;
        return snprintf(err, errlen, "QT_MODELS_DIR=%.300s holds no ppo-default.bin", env), -1;
    }
    for (int i = 0; i <= 4; i++) { /* BIN/.., BIN/../.., ... then ./models */
        strcat(up, "/..");
        if (i < 4) snprintf(c, sizeof c, "%s%s/models", r->bindir, up);
        else snprintf(c, sizeof c, "models");
        snprintf(probe, sizeof probe, "%s/ppo-default.bin", c);
        if (access(probe, R_OK) == 0 && realpath(c, real)) return snprintf(dir, len, "%.*s", (int)len - 1, real), 0;
    }
    return snprintf(err, errlen, "no models (ppo-default.bin, ml/*.bin) in a models folder above qtctl's (%.200s) or in "
                                 "./models: set QT_MODELS_DIR", r->bindir), -1;
}

/* policy-store first (the mode is set through it), the engine and its feed last. */
static int bt_start_stack(bt_run_t *r, const bt_opts_t *o, const char *feed, char *err, size_t errlen)
{
    char *env[10] = {0}, models[PATH_MAX];
    int rc = -1, n = 0;
    if (bt_models(r, models, sizeof models, err, errlen) < 0) return -1;
    n += asprintf(&env[5], "QT_RL_MODEL=%s/ppo-default.bin", models) < 0;
    n += asprintf(&env[6], "QT_ML_MODELS=%s/ml/gbdt-deep.bin,%s/ml/gbdt-shallow.bin,%s/ml/softmax.bin,%s/ml/mlp-returns.bin",
                  models, models, models, models) < 0;
    n += asprintf(&env[0], "REDIS_URL=%s", r->redis_url) < 0;
    n += asprintf(&env[1], "QT_API_TOKEN=%s", r->token) < 0;
    n += asprintf(&env[2], "QT_FEED=%s", feed) < 0;
    n += asprintf(&env[3], "QT_ACCOUNT_BALANCE=%.8g", o->balance) < 0;
    n += asprintf(&env[4], "QT_PAPER_BALANCE=%.8g", o->balance) < 0;
    if (n) {
        snprintf(err, errlen, "out of memory");
        goto cleanup;
    }
    for (int i = 0; i < BT_NSVC; i++) {
        char path[PATH_MAX + 64], port[40];
        r->port[i] = bt_free_port();
        snprintf(port, sizeof port, "QT_HTTP_PORT=%d", r->port[i]);
        snprintf(path, sizeof path, "%s/%s", r->bindir, bt_svc[i]);
        const char *argv[] = {path, NULL}, *e[] = {env[0], env[1], env[2], env[3], env[4], "QT_NAMESPACE=qt",
                                                   "QT_HTTP_BIND=127.0.0.1", "QT_FEED_SPEED=0", "QT_VENUE=paper", port,
                                                   NULL, NULL, NULL};
        int k = 10;
        if (!getenv("QT_RL_MODEL")) e[k++] = env[5]; /* models the caller names win */
        if (!getenv("QT_ML_MODELS")) e[k++] = env[6];
        if (access(path, X_OK) != 0) {
            snprintf(err, errlen, "no service binary %.300s (see --bin)", path);
            goto cleanup;
        }
        r->pid[i] = bt_spawn(r, path, argv, bt_svc[i], e);
        if (r->pid[i] < 0 || bt_wait_ready(r, i, err, errlen) < 0 || (i == 0 && bt_set_policy(r, o, err, errlen) < 0))
            goto cleanup;
    }
    rc = 0;
cleanup:
    for (int i = 0; i < 10; i++) free(env[i]);
    return rc;
}

static int bt_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* SIGTERM to every service (they drain), then Redis; the folder removed unless kept. */
static void bt_stop(bt_run_t *r, int keep)
{
    for (int i = BT_NSVC - 1; i >= 0; i--) {
        if (r->pid[i] <= 0) continue;
        kill(r->pid[i], SIGTERM);
        for (int k = 0; k < 300 && waitpid(r->pid[i], NULL, WNOHANG) == 0; k++) usleep(50000);
        if (kill(r->pid[i], 0) == 0) kill(r->pid[i], SIGKILL), waitpid(r->pid[i], NULL, 0);
    }
    if (r->rc) redisFree(r->rc);
    if (r->redis > 0) kill(r->redis, SIGTERM), waitpid(r->redis, NULL, 0);
    if (!keep && r->dir[0]) nftw(r->dir, bt_rm, 8, FTW_DEPTH | FTW_PHYS);
    else if (r->dir[0]) fprintf(stderr, "qtctl backtest: the run's logs and data stay in %s\n", r->dir);
}

/* ---------- progress ---------- */

static json_t *bt_get(int port, const char *path)
{
    json_t *j = NULL;
    return bt_http(port, "GET", path, NULL, NULL, &j) == 200 ? j : (json_decref(j), NULL);
}

static void bt_bar(long done, long total, int tty)
{
    static int last = -1;
    int pct = total ? (int)(done * 100 / total) : 100, w = pct * 30 / 100;
    if (!tty && pct / 10 == last / 10) return;
    last = pct;
    fprintf(stderr, "%s[%.*s%.*s] %3d%% %ld/%ld bars%s", tty ? "\r" : "", w, "##############################", 30 - w,
            "..............................", pct, done, total, tty ? "" : "\n");
}

/* Wait until every bar went through the feed, both signal services and the
 * engine, and every intent has its execution; 0 or -1 with err. */
static int bt_follow(bt_run_t *r, const bt_opts_t *o, long bars, char *err, size_t errlen)
{
    int tty = isatty(2) && !o->json, stable = 0;
    long long prev = -1;
    for (time_t end = time(NULL) + o->timeout_s; time(NULL) < end && !bt_interrupted; usleep(200000)) {
        json_t *es = bt_get(r->port[4], "/api/v1/status"), *rl = bt_get(r->port[2], "/api/v1/rl/status");
        json_t *ml = bt_get(r->port[1], "/api/v1/ensemble");
        json_t *feed = json_object_get(es, "feed"), *counts = json_object_get(es, "counts");
        long published = (long)json_integer_value(json_object_get(feed, "bars_published"));
        /* a bar is handled once decided on or withheld while the symbol warms up */
        long rl_done = (long)(json_integer_value(json_object_get(rl, "decisions")) +
                              json_integer_value(json_object_get(json_object_get(rl, "warmup"), "withheld")));
        long ml_done = (long)(json_integer_value(json_object_get(ml, "signals")) +
                              json_integer_value(json_object_get(json_object_get(ml, "warmup"), "withheld")));
        long long intents = json_integer_value(json_object_get(counts, "intents"));
        long long settled = json_integer_value(json_object_get(counts, "executed")) + json_integer_value(json_object_get(counts, "failed"));
        int done = json_is_true(json_object_get(feed, "done")) && rl_done >= published && ml_done >= published && intents == settled;
        long long sig = (long long)published * 1000003LL + intents * 1009 + settled +
                        json_integer_value(json_object_get(counts, "decisions")) * 7919;
        json_decref(es), json_decref(rl), json_decref(ml);
        bt_bar(rl_done < published ? rl_done : published, bars, tty);
        stable = done && sig == prev ? stable + 1 : 0;
        prev = sig;
        if (stable >= 3) return tty ? fputc('\n', stderr), 0 : 0;
    }
    if (tty) fputc('\n', stderr);
    return snprintf(err, errlen, bt_interrupted ? "interrupted" : "not finished after %ld s (see --timeout)", o->timeout_s), -1;
}

/* ---------- the report ---------- */

static int bt_push(bt_curve_t *c, int64_t t, double v)
{
    if (c->n == c->cap) {
        long cap = c->cap ? c->cap * 2 : 1024;
        int64_t *nt = realloc(c->t, sizeof *nt * (size_t)cap);
        if (!nt) return -1;
        c->t = nt;
        double *nv = realloc(c->v, sizeof *nv * (size_t)cap);
        if (!nv) return -1;
        c->v = nv, c->cap = cap;
    }
    c->t[c->n] = t, c->v[c->n++] = v;
    return 0;
}

static const char *bt_field(const redisReply *e, const char *name)
{
    const redisReply *f = e->element[1];
    for (size_t k = 0; k + 1 < f->elements; k += 2)
        if (strcmp(f->element[k]->str, name) == 0) return f->element[k + 1]->str;
    return NULL;
}

/* Call fn on every entry's (type, data) of a stream, oldest first. */
static int bt_scan(redisContext *c, const char *key, void (*fn)(void *, const char *, const json_t *), void *ud)
{
    char start[64] = "-";
    for (;;) {
        redisReply *r = redisCommand(c, "XRANGE %s %s + COUNT 1000", key, start);
        if (!r || r->type != REDIS_REPLY_ARRAY) return r ? freeReplyObject(r), -1 : -1;
        for (size_t i = 0; i < r->elements; i++) {
            const char *type = bt_field(r->element[i], "type");
            json_t *d = rsync_entry_payload(r->element[i]->element[1], 0);
            if (type && d) fn(ud, type, d);
            json_decref(d);
        }
        size_t n = r->elements;
        if (n) snprintf(start, sizeof start, "(%s", r->element[n - 1]->element[0]->str);
        freeReplyObject(r);
        if (n < 1000) return 0;
    }
}

typedef struct bt_acc { bt_stats_t s; bt_curve_t eq; double exposure_sum; long samples, in_market, opened, open_end, executed, failed; } bt_acc_t;

static void bt_feedback(void *ud, const char *type, const json_t *d)
{
    bt_acc_t *a = ud;
    if (strcmp(type, "position.opened") == 0) a->opened++;
    if (strcmp(type, "position.closed") == 0) a->s.trades++, a->s.wins += json_number_value(json_object_get(d, "pnl")) > 0;
    a->open_end = a->opened - a->s.trades;
    if (strcmp(type, "performance.update") != 0) return;
    bt_push(&a->eq, json_integer_value(json_object_get(d, "event_time")), json_number_value(json_object_get(d, "equity")));
    a->exposure_sum += json_number_value(json_object_get(d, "exposure_pct")), a->samples++;
    a->in_market += json_integer_value(json_object_get(d, "open_positions")) > 0;
}

static void bt_execution(void *ud, const char *type, const json_t *d)
{
    bt_acc_t *a = ud;
    if (strcmp(type, "trade.executed") == 0) a->s.fees += json_number_value(json_object_get(d, "fee")), a->executed++;
    else if (strcmp(type, "trade.failed") == 0) a->failed++;
}

/* Return, max drawdown and annualised Sharpe of a curve starting at balance. */
static void bt_curve_stats(const bt_curve_t *c, double balance, bt_stats_t *s)
{
    double peak = balance, mean = 0, var = 0, prev = balance;
    long n = 0;
    int64_t dt = c->n > 1 ? (c->t[c->n - 1] - c->t[0]) / (c->n - 1) : 60000;
    for (long i = 0; i < c->n; i++) {
        peak = fmax(peak, c->v[i]);
        s->maxdd_pct = fmax(s->maxdd_pct, (peak - c->v[i]) / peak * 100);
        double r = c->v[i] / prev - 1, d = r - mean;
        n++, mean += d / (double)n, var += d * (r - mean); /* Welford */
        prev = c->v[i];
    }
    s->final_equity = c->n ? c->v[c->n - 1] : balance;
    s->ret_pct = (s->final_equity / balance - 1) * 100;
    double sd = n > 1 ? sqrt(var / (double)(n - 1)) : 0;
    s->sharpe = sd > 0 && dt > 0 ? mean / sd * sqrt(365.25 * 86400000.0 / (double)dt) : 0;
}

/* Equal parts of the balance in each file's symbol at its first close, held to
 * its last, the paper fee paid on the way in and out. */
static int bt_buy_hold(kline_t **bars, const long *n, int nfiles, double balance, bt_curve_t *c, bt_stats_t *s)
{
    long len = n[0];
    for (int f = 1; f < nfiles; f++) len = n[f] < len ? n[f] : len;
    double fee = BT_FEE_BPS / 10000.0;
    for (long k = 0; k < len; k++) {
        double v = 0;
        for (int f = 0; f < nfiles; f++) v += bars[f][k].close / bars[f][0].close;
        if (bt_push(c, bars[0][k].close_time ? bars[0][k].close_time : bars[0][k].open_time, balance * (1 - fee) * v / nfiles) < 0) return -1;
    }
    c->v[c->n - 1] *= 1 - fee;
    bt_curve_stats(c, balance, s);
    s->fees = balance * fee + c->v[c->n - 1] / (1 - fee) * fee;
    s->trades = nfiles, s->exposure_pct = 100, s->in_market_pct = 100, s->win_rate = NAN;
    return 0;
}

static void bt_svg_line(FILE *f, const bt_curve_t *c, int64_t t0, int64_t t1, double lo, double hi, const char *color)
{
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", color);
    for (long i = 0; i < c->n; i++)
        fprintf(f, "%.1f,%.1f ", 60 + 820.0 * (double)(c->t[i] - t0) / (double)(t1 > t0 ? t1 - t0 : 1),
                330 - 290.0 * (c->v[i] - lo) / (hi > lo ? hi - lo : 1));
    fputs("\"/>\n", f);
}

static int bt_svg(const char *path, const bt_curve_t *eq, const bt_curve_t *bh, const bt_opts_t *o)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    double lo = o->balance, hi = o->balance;
    int64_t t0 = bh->t[0], t1 = bh->t[bh->n - 1];
    for (long i = 0; i < eq->n; i++) lo = fmin(lo, eq->v[i]), hi = fmax(hi, eq->v[i]);
    for (long i = 0; i < bh->n; i++) lo = fmin(lo, bh->v[i]), hi = fmax(hi, bh->v[i]);
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"900\" height=\"360\" viewBox=\"0 0 900 360\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"900\" height=\"360\" fill=\"#ffffff\"/>\n"
               "<text x=\"60\" y=\"22\" font-size=\"14\">Backtest equity (%s) vs buy-and-hold</text>\n"
               "<line x1=\"60\" y1=\"330\" x2=\"880\" y2=\"330\" stroke=\"#999\"/><line x1=\"60\" y1=\"40\" x2=\"60\" y2=\"330\" stroke=\"#999\"/>\n"
               "<text x=\"4\" y=\"44\">%.0f</text><text x=\"4\" y=\"334\">%.0f</text>\n",
            o->mode, hi, lo);
    bt_svg_line(f, bh, t0, t1, lo, hi, "#9aa0a6");
    bt_svg_line(f, eq, t0, t1, lo, hi, "#1a73e8");
    fputs("<text x=\"700\" y=\"22\" fill=\"#1a73e8\">strategy</text><text x=\"780\" y=\"22\" fill=\"#9aa0a6\">buy-and-hold</text>\n</svg>\n", f);
    return fclose(f);
}

static json_t *bt_stats_json(const bt_stats_t *s)
{
    return json_pack("{s:I, s:o, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "trades", (json_int_t)s->trades, "win_rate",
                     isnan(s->win_rate) ? json_null() : json_real(s->win_rate), "return_pct", s->ret_pct, "max_drawdown_pct",
                     s->maxdd_pct, "sharpe", s->sharpe, "fees", s->fees, "exposure_pct", s->exposure_pct, "time_in_market_pct",
                     s->in_market_pct, "final_equity", s->final_equity);
}

static void bt_print(const bt_opts_t *o, long bars, const bt_acc_t *a, const bt_stats_t *bh)
{
    const bt_stats_t *s = &a->s;
    if (o->json) {
        json_t *files = json_array();
        for (int i = 0; i < o->nfiles; i++) json_array_append_new(files, json_string(o->files[i]));
        json_t *j = json_pack("{s:o, s:I, s:s, s:f, s:o, s:o, s:I, s:I, s:I, s:o}", "files", files, "bars", (json_int_t)bars,
                              "mode", o->mode, "balance", o->balance, "strategy", bt_stats_json(s), "buy_and_hold",
                              bt_stats_json(bh), "executed", (json_int_t)a->executed, "failed", (json_int_t)a->failed,
                              "open_positions_at_end", (json_int_t)a->open_end, "svg", o->svg ? json_string(o->svg) : json_null());
        char *t = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
        puts(t);
        free(t);
        json_decref(j);
        return;
    }
    printf("backtest: %d file(s), %ld bars, mode %s, paper venue, balance %.2f\n\n", o->nfiles, bars, o->mode, o->balance);
    printf("%-24s %14s %14s\n", "", "strategy", "buy-and-hold");
    printf("%-24s %14ld %14ld\n", "trades", s->trades, bh->trades);
    printf("%-24s %13.1f%% %14s\n", "win rate", s->win_rate * 100, "-");
    printf("%-24s %+13.2f%% %+13.2f%%\n", "return", s->ret_pct, bh->ret_pct);
    printf("%-24s %13.2f%% %13.2f%%\n", "max drawdown", s->maxdd_pct, bh->maxdd_pct);
    printf("%-24s %14.2f %14.2f\n", "Sharpe (annualised)", s->sharpe, bh->sharpe);
    printf("%-24s %14.2f %14.2f\n", "fees", s->fees, bh->fees);
    printf("%-24s %13.2f%% %13.2f%%\n", "exposure (avg margin)", s->exposure_pct, bh->exposure_pct);
    printf("%-24s %13.1f%% %13.1f%%\n", "time in market", s->in_market_pct, bh->in_market_pct);
    printf("\nfills %ld, failed intents %ld, positions open at the end %ld (marked to market)\n", a->executed, a->failed,
           a->open_end);
    if (o->svg) printf("equity curve: %s\n", o->svg);
}

/* Report from the run's streams and the bars; 0 or -1 with err. */
static int bt_report(bt_run_t *r, const bt_opts_t *o, kline_t **bars, const long *n, long total, char *err, size_t errlen)
{
    bt_acc_t a;
    bt_curve_t bh = {0};
    bt_stats_t bhs = {0};
    memset(&a, 0, sizeof a);
    int rc = -1;
    if (bt_scan(r->rc, "qt:feedback", bt_feedback, &a) < 0 || bt_scan(r->rc, "qt:execution", bt_execution, &a) < 0)
        snprintf(err, errlen, "cannot read the run's streams");
    else if (bt_buy_hold(bars, n, o->nfiles, o->balance, &bh, &bhs) < 0) snprintf(err, errlen, "out of memory");
    else {
        double fees = a.s.fees;
        bt_curve_stats(&a.eq, o->balance, &a.s);
        a.s.fees = fees;
        a.s.win_rate = a.s.trades ? (double)a.s.wins / (double)a.s.trades : 0;
        a.s.exposure_pct = a.samples ? a.exposure_sum / (double)a.samples : 0;
        a.s.in_market_pct = a.samples ? (double)a.in_market * 100 / (double)a.samples : 0;
        if (o->svg && bt_svg(o->svg, &a.eq, &bh, o) != 0) snprintf(err, errlen, "cannot write %s: %s", o->svg, strerror(errno));
        else bt_print(o, total, &a, &bhs), rc = 0;
    }
    free(a.eq.t), free(a.eq.v), free(bh.t), free(bh.v);
    return rc;
}

/* ---------- main ---------- */

static int bt_load(const bt_opts_t *o, kline_t **bars, long *n, char *feed, size_t feedlen, long *total, char *err, size_t errlen)
{
    char real[PATH_MAX], first_bad[300];
    size_t used = (size_t)snprintf(feed, feedlen, "replay:");
    *total = 0;
    for (int i = 0; i < o->nfiles; i++) {
        long bad;
        if (!realpath(o->files[i], real)) return snprintf(err, errlen, "cannot read %s: %s", o->files[i], strerror(errno)), -1;
        if (!(bars[i] = kline_load_csv(real, &n[i], &bad, first_bad, sizeof first_bad, err, errlen))) return -1;
        if (bad) fprintf(stderr, "qtctl backtest: %ld bad rows skipped (the engine skips them too), first: %s\n", bad, first_bad);
        *total += n[i];
        used += (size_t)snprintf(feed + used, used < feedlen ? feedlen - used : 0, "%s%s", i ? "," : "", real);
    }
    return used < feedlen ? 0 : (snprintf(err, errlen, "too many or too long file names"), -1);
}

static void bt_self_dir(char *out, size_t len)
{
    char self[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
    self[k > 0 ? k : 0] = 0;
    char *slash = strrchr(self, '/');
    if (slash) *slash = 0;
    snprintf(out, len, "%s", k > 0 ? self : ".");
}

int backtest_main(int argc, char **argv)
{
    bt_opts_t o;
    bt_run_t r;
    kline_t *bars[BT_MAX_FILES] = {0};
    long n[BT_MAX_FILES] = {0}, total = 0;
    char err[512] = "", feed[BT_MAX_FILES * (PATH_MAX + 1) + 8];
    int rc = 1;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return fputs(bt_usage, stdout), 0;
    if (bt_parse(argc, argv, &o) < 0) return 2;
    memset(&r, 0, sizeof r);
    if (bt_load(&o, bars, n, feed, sizeof feed, &total, err, sizeof err) < 0) goto out;
    if (o.bindir) snprintf(r.bindir, sizeof r.bindir, "%s", o.bindir);
    else bt_self_dir(r.bindir, sizeof r.bindir);
    snprintf(r.dir, sizeof r.dir, "%s/qt-backtest-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(r.dir)) {
        snprintf(err, sizeof err, "cannot create a folder for the run: %s", strerror(errno));
        r.dir[0] = 0;
        goto out;
    }
    snprintf(r.token, sizeof r.token, "bt-%ld-%ld", (long)getpid(), (long)time(NULL));
    signal(SIGINT, bt_on_signal), signal(SIGTERM, bt_on_signal);
    if (!o.json) fprintf(stderr, "qtctl backtest: starting redis-server and the five services in %s\n", r.dir);
    if (bt_start_redis(&r, err, sizeof err) == 0 && bt_start_stack(&r, &o, feed, err, sizeof err) == 0 &&
        bt_follow(&r, &o, total, err, sizeof err) == 0 && bt_report(&r, &o, bars, n, total, err, sizeof err) == 0)
        rc = 0;
out:
    if (rc) fprintf(stderr, "qtctl backtest: %s\n", err);
    bt_stop(&r, o.keep || rc);
    for (int i = 0; i < o.nfiles; i++) free(bars[i]);
    return rc;
}
