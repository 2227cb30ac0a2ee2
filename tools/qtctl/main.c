/* qtctl — the operator CLI of Quantum Trader.
 *
 *   qtctl features --csv FILE [--symbol S]   indicators and the 64-dim observation per bar (JSON lines)
 *   qtctl dlq list|show|replay|purge STREAM [--id ENTRY] [--count N] [--set FIELD=VALUE] [--force]
 *   qtctl backtest --csv FILE... [--mode PRIMARY|HYBRID] [--json]   the real stack on a private Redis (backtest.c)
 *   qtctl streams [--json]                    length, groups, pending and lag per stream
 *   qtctl status [--json]                     every service's health and readiness
 *   qtctl config get [KEY] | set KEY VALUE [--json]   the policy-store's configuration
 *   qtctl mode OFF|SHADOW|PRIMARY|HYBRID      set rl_v3.live.mode
 *   qtctl tail STREAM [--count N] [--no-follow] [--json]   the last N entries, then new ones as they come
 *   qtctl help
 *
 * Exit codes: 0 ok, 1 the work failed (unreadable file, Redis error), 2 usage. */
#include "backtest.h"
#include "klines.h"
#include "config.h"
#include "dlq.h"
#include "keys.h"
#include "parts.h"
#include "httpc.h"
#include "kline.h"
#include "obs.h"
#include "rsync.h"
#include "numfmt.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>


/* Print j as JSON on stdout: 0, or -1 (said on stderr) when it cannot be written. */
static int qt_print_json(const json_t *j, size_t flags)
{
    /* unless asked for a precision: every number exact and short (0.7, not 0.69999999999999996) */
    char *s = json_dumps(j, flags & JSON_REAL_PRECISION(31) ? flags : numfmt_json_flags(j, flags));
    if (!s) {
        fputs("qtctl: cannot write the answer as JSON (out of memory?)\n", stderr);
        return -1;
    }
    puts(s);
    free(s);
    return 0;
}

static const char usage[] =
    "usage: qtctl COMMAND [ARGS]\n"
    "  features --csv FILE [--symbol S]     one JSON object per bar: open_time, indicators (null while\n"
    "                                       their window fills) and obs (the 64-dim observation)\n"
    "  dlq list STREAM [--count N]          dead letters of <ns>:STREAM:dlq with their reasons (with\n"
    "                                       symbol partitions, of every partition's: STREAM:pK for one)\n"
    "  dlq show STREAM --id ENTRY           one dead letter, its payload as JSON (data_json)\n"
    "  dlq replay STREAM [--id ENTRY] [--set FIELD=VALUE]... [--force]\n"
    "                                       put dead letters back on their stream (all, or one), once per\n"
    "                                       event, with the fields given replaced (the fix: --set close=64010.1\n"
    "                                       on a v2 entry, --set data='{...}' on a v1 one); one that still\n"
    "                                       breaks the event contract\n"
    "                                       stays (exit 1) unless --force\n"
    "  dlq purge STREAM [--id ENTRY]        delete dead letters (all, or one)\n"
    "  streams [--json]                     the partitions' leases (who holds each), then every <ns>:*\n"
    "                                       stream: length, last id, and per consumer\n"
    "                                       group its consumers, pending (delivered, not acked) and lag\n"
    "                                       (entries not yet delivered; '?' when Redis cannot tell)\n"
    "  partition SYMBOL...                  the symbol partition of each symbol in this namespace\n"
    "  status [--json]                      each service's /health and /ready (QT_<SERVICE>_URL, default\n"
    "                                       http://127.0.0.1:8081..8085); exit 1 unless all are ready\n"
    "  config get [KEY] [--json]            the policy-store's keys (QT_POLICY_STORE_URL, default\n"
    "                                       http://127.0.0.1:8085): value and version\n"
    "  config set KEY VALUE [--json]        change a key (QT_API_TOKEN); VALUE is JSON when it parses,\n"
    "                                       else a string: config set risk.max_leverage 5\n"
    "  mode OFF|SHADOW|PRIMARY|HYBRID       the RL v3 live mode (config set rl_v3.live.mode ...)\n"
    "  tail STREAM [--count N] [--no-follow] [--json]\n"
    "                                       the last N entries of <ns>:STREAM (default 10), then every new\n"
    "                                       one until Ctrl-C; data shown as JSON; --json: one line each\n"
    "  klines fetch SYMBOL INTERVAL FROM TO [--out FILE] [--base-url URL]\n"
    "                                       Binance USDⓈ-M klines (public endpoint, paged, rate-limit aware,\n"
    "                                       resumed when FILE exists) as a data-dump CSV the replay reads;\n"
    "                                       FROM, TO: 2024-05-01, 2024-05-01T12:00Z or epoch ms (TO excluded)\n"
    "  klines synth --symbol S --interval I --bars N --out FILE [--seed N] [--start FROM]\n"
    "                                       the synthetic market in the same layout (the same arguments,\n"
    "                                       the same file)\n"
    "  backtest --csv FILE... [--mode PRIMARY|HYBRID] [--json] [--svg PATH]\n"
    "                                       the five services on a private redis-server replay the files\n"
    "                                       through the paper venue; report vs buy-and-hold and an\n"
    "                                       equity SVG (qtctl backtest --help for every option)\n"
    "Every command takes --help.\n"
    "Environment: REDIS_URL, QT_NAMESPACE (default qt).\n"
    "Exit codes: 0 ok, 1 failed, 2 usage.\n";

static const char *arg_value(int argc, char **argv, const char *name)
{
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0) return argv[i + 1];
    return NULL;
}

static json_t *num_or_null(double x) { return isnan(x) ? json_null() : json_real(x); }

/* One bar's line: the named indicators and the observation. */
static void features_print(const obs_state_t *st, const kline_t *k, const char *symbol)
{
    const indicators_t *s = &st->ind;
    float obs[FEATURES_DIM];
    obs_build(st, NULL, obs);
    json_t *o = json_pack("{s:s, s:I}", "symbol", symbol, "open_time", (json_int_t)k->open_time), *a = json_array();
    const struct { const char *name; double v; } named[] = {
        {"close", k->close}, {"sma_20", s->sma20}, {"ema_20", s->ema20_v}, {"rsi_14", s->rsi14}, {"macd", s->macd},
        {"macd_signal", s->macd_sig}, {"macd_hist", s->macd_hist}, {"bb_upper", s->bb_upper},
        {"bb_middle", s->bb_middle}, {"bb_lower", s->bb_lower}, {"roc_10", s->roc10}, {"momentum_10", s->mom10},
        {"atr_14", s->atr14}, {"vol_20", s->vol20}, {"adx_14", regime_adx(&s->regime)}};
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) json_object_set_new(o, named[i].name, num_or_null(named[i].v));
    json_object_set_new(o, "regime", json_string(regime_name(regime_trend(&s->regime))));
    json_object_set_new(o, "vol_level", json_string(vol_level_name(regime_vol(&s->regime))));
    for (int i = 0; i < FEATURES_DIM; i++) json_array_append_new(a, json_real(obs[i]));
    json_object_set_new(o, "obs", a);
    qt_print_json(o, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(o);
}

static int cmd_features(int argc, char **argv)
{
    const char *path = arg_value(argc, argv, "--csv");
    char line[1100], err[200];
    long n = 0, bad = 0, lineno = 0;
    if (!path) return fputs(usage, stderr), 2;
    char symbol[24];
    const char *given = arg_value(argc, argv, "--symbol"), *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    if (given) snprintf(symbol, sizeof symbol, "%s", given); /* else the file name: BTCUSDT-1m-2024-01.csv */
    else snprintf(symbol, sizeof symbol, "%.*s", (int)strcspn(base, "-."), base);
    FILE *f = fopen(path, "r");
    if (!f) return fprintf(stderr, "qtctl: cannot open %s: %s\n", path, strerror(errno)), 1;
    obs_state_t st;
    obs_init(&st);
    while (fgets(line, sizeof line, f)) {
        kline_t k = {0};
        lineno++;
        if (line[0] == '\n' || line[0] == '\r') continue;
        int rc = kline_parse_line(line, &k, err, sizeof err);
        if (rc == 1 && lineno == 1) continue; /* header */
        if (rc != 0 || obs_update(&st, k.high, k.low, k.close) < 0) {
            fprintf(stderr, "%s:%ld: bad row skipped: %s\n", path, lineno, rc ? (rc == 1 ? "header line not at the top" : err) : "invalid bar");
            bad++;
            continue;
        }
        features_print(&st, &k, symbol);
        n++;
    }
    fclose(f);
    fprintf(stderr, "qtctl: %ld bars, %ld bad rows\n", n, bad);
    return 0;
}

/* The DLQ keys of stream `name`: one, or with partitions (parts.h) one per
 * partition — only the one holding entry id when id is given. Returns how
 * many went into keys, -1 with err when Redis failed. */
static int dlq_keys(redisContext *c, const qt_config_t *cfg, const char *name, const char *id,
                    char keys[QT_PARTITIONS_MAX][200], char *err, size_t errlen)
{
    long parts = 1;
    if (proto_partitioned(name) && parts_of(c, cfg->ns, &parts, err, errlen) < 0) return -1;
    if (parts == 1) {
        snprintf(keys[0], 200, "%s:%s%s", cfg->ns, name, QT_DLQ_SUFFIX);
        return 1;
    }
    for (int k = 0; k < parts; k++) {
        char s[160];
        proto_part_key(s, sizeof s, cfg->ns, name, (int)parts, k);
        snprintf(keys[k], 200, "%s%s", s, QT_DLQ_SUFFIX);
    }
    int found = -1;
    for (int k = 0; id && k < parts; k++) { /* ids are per stream: the same one may be in two */
        redisReply *r = redisCommand(c, "XRANGE %s %s %s", keys[k], id, id);
        int has = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0;
        if (r) freeReplyObject(r);
        if (has && found >= 0)
            return snprintf(err, errlen, "dead letter %.40s is in %.160s and in %.160s: name the partition (%.40s:p%d)", id,
                            keys[found], keys[k], name, found), -1;
        if (has) found = k;
    }
    if (found > 0) memcpy(keys[0], keys[found], sizeof keys[0]);
    return id ? 1 : (int)parts; /* an id in none: the first partition's says it is not there */
}

static int cmd_dlq(int argc, char **argv)
{
    qt_config_t cfg;
    char err[512], keys[QT_PARTITIONS_MAX][200], *key = keys[0];
    long done = 0, count = 20;
    if (argc < 3) return fputs(usage, stderr), 2;
    if (config_common_load(&cfg, "qtctl", 0, err, sizeof err) < 0) return fprintf(stderr, "qtctl: %s\n", err), 2;
    const char *id = arg_value(argc, argv, "--id"), *cnt = arg_value(argc, argv, "--count");
    if (cnt && ((count = strtol(cnt, NULL, 10)) < 1 || count > 100000)) return fprintf(stderr, "qtctl: --count must be 1..100000\n"), 2;
    if (strcmp(argv[argc - 1], "--set") == 0 || strcmp(argv[argc - 1], "--id") == 0)
        return fprintf(stderr, "qtctl: %s needs a value\n", argv[argc - 1]), 2;
    redisContext *c = rsync_connect(&cfg.redis, 3000, err, sizeof err);
    if (!c) return fprintf(stderr, "qtctl: %s\n", err), 1;
    int rc = 0, nkeys = dlq_keys(c, &cfg, argv[2], id, keys, err, sizeof err);
    if (nkeys < 0) rc = 1;
    else if (strcmp(argv[1], "list") == 0) { /* partition after partition, each oldest first */
        json_t *all = json_array();
        for (int k = 0; k < nkeys && rc == 0; k++) {
            json_t *list = NULL;
            if (dlq_list(c, keys[k], count, &list, err, sizeof err) < 0) rc = 1;
            else json_array_extend(all, list), json_decref(list);
        }
        if (rc == 0 && qt_print_json(all, JSON_INDENT(2)) < 0) rc = 1;
        json_decref(all);
    } else if (strcmp(argv[1], "show") == 0) {
        json_t *e = NULL;
        if (!id) rc = 2, fprintf(stderr, "qtctl: dlq show needs --id ENTRY (ids: qtctl dlq list %s)\n", argv[2]);
        else if (dlq_show(c, key, id, &e, err, sizeof err) < 0) rc = 1;
        else {
            if (qt_print_json(e, JSON_INDENT(2)) < 0) rc = 1;
            json_decref(e);
        }
    } else if (strcmp(argv[1], "replay") == 0) {
        const char *set[DLQ_MAX_SET + 1];
        dlq_replay_opts_t o = {set, 0, 0};
        for (int i = 3; i < argc; i++) {
            if (strcmp(argv[i], "--force") == 0) o.force = 1;
            else if (strcmp(argv[i], "--set") != 0) continue;
            else if (i + 1 < argc && o.nset <= DLQ_MAX_SET) set[o.nset++] = argv[++i];
        }
        for (int k = 0; k < nkeys && rc != 1; k++) {
            dlq_replay_result_t res;
            if (dlq_replay(c, keys[k], id, &o, &res, err, sizeof err) < 0) rc = 1;
            printf("replayed %ld entries of %s", res.replayed, keys[k]);
            if (res.merged) printf(" (%ld more dead letters of the same events removed)", res.merged);
            putchar('\n');
            if (res.refused && !rc)
                rc = 3, fprintf(stderr,
                                "qtctl: %ld entries still break the event contract and stay in %s; the first: %s "
                                "(fix it with --set FIELD=VALUE, or --force)\n",
                                res.refused, keys[k], res.refusal);
        }
    } else if (strcmp(argv[1], "purge") == 0) {
        for (int k = 0; k < nkeys && rc == 0; k++) {
            done = 0;
            rc = dlq_purge(c, keys[k], id, &done, err, sizeof err) < 0;
            printf("purged %ld entries of %s\n", done, keys[k]);
        }
    } else {
        rc = 2;
        fputs(usage, stderr);
    }
    if (rc == 1) fprintf(stderr, "qtctl: %s\n", err);
    redisFree(c);
    return rc == 3 ? 1 : rc;
}

/* Field NAME of a flat [name, value, ...] reply, or NULL. */
static const redisReply *reply_field(const redisReply *r, const char *name)
{
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING && strcmp(r->element[i]->str, name) == 0) return r->element[i + 1];
    return NULL;
}

static json_t *reply_json(const redisReply *v)
{
    if (!v || v->type == REDIS_REPLY_NIL) return json_null();
    if (v->type == REDIS_REPLY_INTEGER) return json_integer(v->integer);
    if (v->type == REDIS_REPLY_STRING || v->type == REDIS_REPLY_STATUS) return json_string(v->str);
    return json_null();
}

/* {stream, length, last_id, groups: [{group, consumers, pending, last_delivered_id, lag}]} or NULL. */
/* XINFO STREAM's length and last-generated-id, without its first and last
 * entries (one of them may be larger than anything we want to read). */
static redisReply *stream_head(redisContext *c, const char *key)
{
    static const char lua[] = "local i = redis.call('XINFO', 'STREAM', KEYS[1])\n"
                              "local out = {}\n"
                              "for k = 1, #i, 2 do\n"
                              "  if i[k] == 'length' or i[k] == 'last-generated-id' then\n"
                              "    out[#out + 1] = i[k]; out[#out + 1] = i[k + 1]\n"
                              "  end\n"
                              "end\n"
                              "return out\n";
    const char *argv[] = {"EVAL", lua, "1", key};
    return redisCommandArgv(c, 4, argv, NULL);
}

static json_t *stream_info(redisContext *c, const char *key, char *err, size_t errlen)
{
    redisReply *s = stream_head(c, key), *g = NULL;
    if (!s || s->type != REDIS_REPLY_ARRAY) {
        snprintf(err, errlen, "XINFO STREAM %s: %s", key, s && s->type == REDIS_REPLY_ERROR ? s->str : c->errstr);
        freeReplyObject(s);
        return NULL;
    }
    json_t *o = json_pack("{s:s}", "stream", key), *groups = json_array();
    json_object_set_new(o, "length", reply_json(reply_field(s, "length")));
    json_object_set_new(o, "last_id", reply_json(reply_field(s, "last-generated-id")));
    json_object_set_new(o, "groups", groups);
    g = redisCommand(c, "XINFO GROUPS %s", key);
    for (size_t i = 0; g && g->type == REDIS_REPLY_ARRAY && i < g->elements; i++) {
        const redisReply *e = g->element[i];
        json_t *row = json_object();
        json_object_set_new(row, "group", reply_json(reply_field(e, "name")));
        json_object_set_new(row, "consumers", reply_json(reply_field(e, "consumers")));
        json_object_set_new(row, "pending", reply_json(reply_field(e, "pending")));
        json_object_set_new(row, "last_delivered_id", reply_json(reply_field(e, "last-delivered-id")));
        json_object_set_new(row, "lag", reply_json(reply_field(e, "lag")));
        json_array_append_new(groups, row);
    }
    freeReplyObject(s);
    freeReplyObject(g);
    return o;
}

static int key_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void print_cell(const json_t *v, int width)
{
    if (json_is_integer(v)) printf(" %*lld", width, (long long)json_integer_value(v));
    else printf(" %*s", width, json_is_string(v) ? json_string_value(v) : "?");
}

/* Who holds each partition's lease (lease.h), and for how much longer. */
static void print_leases(redisContext *c, const char *ns)
{
    char pattern[160], cursor[32] = "0";
    int n = 0;
    snprintf(pattern, sizeof pattern, "%s:" QT_KEY_LEASE_PREFIX "*:p*", ns);
    do {
        redisReply *r = redisCommand(c, "SCAN %s MATCH %s COUNT 500 TYPE string", cursor, pattern);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            if (r) freeReplyObject(r);
            return;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            const char *key = r->element[1]->element[i]->str;
            redisReply *h = redisCommand(c, "GET %s", key), *t = redisCommand(c, "PTTL %s", key);
            if (h && h->type == REDIS_REPLY_STRING && t && t->type == REDIS_REPLY_INTEGER) {
                if (n++ == 0) printf("%-36s %-28s %s\n", "LEASE", "HELD BY", "EXPIRES IN");
                printf("%-36s %-28s %lld ms\n", key, h->str, t->integer);
            }
            if (h) freeReplyObject(h);
            if (t) freeReplyObject(t);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    if (n) putchar('\n');
}

static int cmd_streams(int argc, char **argv)
{
    qt_config_t cfg;
    char err[512], pattern[160];
    if (config_common_load(&cfg, "qtctl", 0, err, sizeof err) < 0) return fprintf(stderr, "qtctl: %s\n", err), 2;
    int as_json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) as_json = 1;
        else return fprintf(stderr, "qtctl: streams: unknown argument '%s'\n%s", argv[i], usage), 2;
    }
    redisContext *c = rsync_connect(&cfg.redis, 3000, err, sizeof err);
    if (!c) return fprintf(stderr, "qtctl: %s\n", err), 1;
    snprintf(pattern, sizeof pattern, "%s:*", cfg.ns);
    char **keys = NULL, cursor[32] = "0";
    size_t n = 0, cap = 0;
    int rc = 0;
    do { /* SCAN ... TYPE stream: every stream of the namespace, DLQs included */
        redisReply *r = redisCommand(c, "SCAN %s MATCH %s COUNT 500 TYPE stream", cursor, pattern);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            fprintf(stderr, "qtctl: SCAN: %s\n", r && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
            freeReplyObject(r);
            rc = 1;
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            if (n == cap) {
                char **more = realloc(keys, (cap ? cap * 2 : 32) * sizeof *keys);
                if (!more) break;
                keys = more, cap = cap ? cap * 2 : 32;
            }
            if (!(keys[n] = strdup(r->element[1]->element[i]->str))) break;
            n++;
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    if (n) qsort(keys, n, sizeof *keys, key_cmp);
    json_t *all = json_array();
    for (size_t i = 0; rc == 0 && i < n; i++) {
        json_t *o = stream_info(c, keys[i], err, sizeof err);
        if (o) json_array_append_new(all, o); /* else deleted between SCAN and XINFO */
    }
    if (rc == 0 && as_json) {
        if (qt_print_json(all, JSON_INDENT(2)) < 0) rc = 1;
    } else if (rc == 0) {
        long parts = 1;
        if (parts_of(c, cfg.ns, &parts, err, sizeof err) == 0 && parts > 1)
            printf("namespace %s: %ld symbol partitions (qtctl partition SYMBOL)\n", cfg.ns, parts);
        print_leases(c, cfg.ns);
        printf("%-36s %9s %-24s %9s %9s %9s\n", "STREAM", "LENGTH", "GROUP", "CONSUMERS", "PENDING", "LAG");
        size_t i;
        json_t *o;
        json_array_foreach(all, i, o) {
            json_t *groups = json_object_get(o, "groups");
            size_t ng = json_array_size(groups);
            for (size_t k = 0; k < (ng ? ng : 1); k++) {
                json_t *g = json_array_get(groups, k);
                printf("%-36s", json_string_value(json_object_get(o, "stream")));
                print_cell(json_object_get(o, "length"), 9);
                printf(" %-24s", g ? json_string_value(json_object_get(g, "group")) : "-");
                if (g) {
                    print_cell(json_object_get(g, "consumers"), 9);
                    print_cell(json_object_get(g, "pending"), 9);
                    print_cell(json_object_get(g, "lag"), 9);
                } else {
                    printf(" %9s %9s %9s", "-", "-", "-");
                }
                putchar('\n');
            }
        }
    }
    json_decref(all);
    for (size_t i = 0; i < n; i++) free(keys[i]);
    free(keys);
    redisFree(c);
    return rc;
}

static int cmd_partition(int argc, char **argv)
{
    qt_config_t cfg;
    char err[512];
    long parts = 1;
    if (argc < 2) return fputs(usage, stderr), 2;
    if (config_common_load(&cfg, "qtctl", 0, err, sizeof err) < 0) return fprintf(stderr, "qtctl: %s\n", err), 2;
    redisContext *c = rsync_connect(&cfg.redis, 3000, err, sizeof err);
    if (!c || parts_of(c, cfg.ns, &parts, err, sizeof err) < 0) {
        if (c) redisFree(c);
        return fprintf(stderr, "qtctl: %s\n", err), 1;
    }
    redisFree(c);
    for (int i = 1; i < argc; i++) {
        char key[200];
        proto_part_key(key, sizeof key, cfg.ns, QT_STREAM_MARKET, (int)parts, proto_partition(argv[i], (int)parts));
        printf("%s p%d of %ld (%s)\n", argv[i], proto_partition(argv[i], (int)parts), parts, key);
    }
    return 0;
}

/* One stream entry as {stream_id, envelope field: value..., data: the
 * payload}, the same for a v1 entry (its data field parsed) and a v2 one
 * (its payload fields read as their schema says). */
static void tail_print(const redisReply *e, int compact)
{
    static const char *const envelope[] = {"id", "type", "v", "ts", "source", "trace"};
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING) return;
    json_t *o = json_pack("{s:s}", "stream_id", e->element[0]->str);
    const redisReply *f = e->element[1];
    int dead = dlq_is_entry(f), flat = 0;
    for (size_t i = 0; f->type == REDIS_REPLY_ARRAY && i + 1 < f->elements; i += 2)
        flat |= f->element[i]->str && !strcmp(f->element[i]->str, "v") && f->element[i + 1]->str &&
                !strcmp(f->element[i + 1]->str, "2");
    for (size_t i = 0; f->type == REDIS_REPLY_ARRAY && i + 1 < f->elements; i += 2) {
        const char *k = f->element[i]->str, *v = f->element[i + 1]->str;
        int shown = dead && i >= f->elements - 2 * DLQ_META_FIELDS; /* a dead letter's metadata */
        for (size_t j = 0; k && j < sizeof envelope / sizeof envelope[0]; j++) shown |= !strcmp(k, envelope[j]);
        if (k && v && (shown || (!flat && strcmp(k, "data") != 0))) json_object_set_new(o, k, json_string(v));
    }
    json_t *data = rsync_entry_payload(f, dead ? DLQ_META_FIELDS : 0);
    if (data) json_object_set_new(o, "data", data);
    char *line = json_dumps(o, numfmt_json_flags(o, compact ? JSON_COMPACT : JSON_INDENT(2)));
    if (line) puts(line);
    free(line);
    json_decref(o);
    fflush(stdout);
}

static int cmd_tail(int argc, char **argv)
{
    qt_config_t cfg;
    char err[512], key[200], last[64] = "0-0"; /* an empty stream: everything that comes is new */
    long count = 10;
    int follow = 1, compact = 0;
    if (argc < 2 || argv[1][0] == '-') return fputs(usage, stderr), 2;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--no-follow") == 0) follow = 0;
        else if (strcmp(argv[i], "--json") == 0) compact = 1;
        else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
            char *end;
            count = strtol(argv[++i], &end, 10);
            if (*end || end == argv[i] || count < 0 || count > 100000) return fprintf(stderr, "qtctl: --count must be 0..100000\n"), 2;
        } else return fprintf(stderr, "qtctl: tail: unknown argument '%s'\n%s", argv[i], usage), 2;
    }
    if (config_common_load(&cfg, "qtctl", 0, err, sizeof err) < 0) return fprintf(stderr, "qtctl: %s\n", err), 2;
    snprintf(key, sizeof key, "%s:%s", cfg.ns, argv[1]);
    redisContext *c = rsync_connect(&cfg.redis, 3000, err, sizeof err);
    if (!c) return fprintf(stderr, "qtctl: %s\n", err), 1;
    long parts = 1;
    if (proto_partitioned(argv[1]) && parts_of(c, cfg.ns, &parts, err, sizeof err) == 0 && parts > 1) {
        fprintf(stderr, "qtctl: %s has %ld symbol partitions: tail one of them, %s:p0 to %s:p%ld (qtctl partition SYMBOL says which)\n",
                cfg.ns, parts, argv[1], argv[1], parts - 1);
        redisFree(c);
        return 2;
    }
    /* Read in pages bounded in bytes; an entry over QT_MAX_ENTRY_BYTES is not read (said on stderr). */
    long want = count ? count : 1, got = 0, skipped = 0;
    long page_bytes = cfg.max_read_bytes / 2;
    redisReply *pages[64];
    int npages = 0, rc = 0;
    char end[80] = "+";
    redisReply *h = stream_head(c, key);
    if (!h || h->type != REDIS_REPLY_ARRAY) {
        fprintf(stderr, "qtctl: XINFO STREAM %s: %s\n", key, h && h->type == REDIS_REPLY_ERROR ? h->str : c->errstr);
        freeReplyObject(h);
        redisFree(c);
        return 1;
    }
    const redisReply *lid = reply_field(h, "last-generated-id");
    if (lid && lid->type == REDIS_REPLY_STRING) snprintf(last, sizeof last, "%s", lid->str);
    freeReplyObject(h);
    while (got + skipped < want && npages < 64) {
        redisReply *r = rsync_range(c, key, end, "-", 1, want - got - skipped, cfg.max_entry_bytes, page_bytes);
        if (!r) {
            fprintf(stderr, "qtctl: XREVRANGE %s: %s\n", key, c->errstr[0] ? c->errstr : "refused");
            rc = 1;
            break;
        }
        pages[npages++] = r;
        got += (long)r->element[3]->elements;
        skipped += (long)r->element[1]->integer;
        snprintf(end, sizeof end, "(%s", r->element[0]->str);
        if (r->element[2]->integer || !r->element[0]->str[0]) break;
    }
    for (int p = npages; count && p-- > 0;) /* oldest first */
        for (size_t i = pages[p]->element[3]->elements; i-- > 0;) tail_print(pages[p]->element[3]->element[i], compact);
    for (int p = 0; p < npages; p++) freeReplyObject(pages[p]);
    if (count && skipped) fprintf(stderr, "qtctl: %ld entries over QT_MAX_ENTRY_BYTES=%ld not shown\n", skipped,
                                  cfg.max_entry_bytes);
    while (follow && rc == 0) { /* polls: a blocking XREAD would hand over an entry of any size */
        char from[80];
        snprintf(from, sizeof from, "(%s", last);
        redisReply *r = rsync_range(c, key, from, "+", 0, 100, cfg.max_entry_bytes, page_bytes);
        if (!r) {
            fprintf(stderr, "qtctl: XRANGE %s: %s\n", key, c->errstr[0] ? c->errstr : "refused");
            rc = 1;
            break;
        }
        const redisReply *en = r->element[3];
        for (size_t k = 0; k < en->elements; k++) tail_print(en->element[k], compact);
        if (r->element[1]->integer)
            fprintf(stderr, "qtctl: %lld entries over QT_MAX_ENTRY_BYTES=%ld not shown\n", r->element[1]->integer,
                    cfg.max_entry_bytes);
        int more = r->element[0]->str[0] && !r->element[2]->integer;
        if (r->element[0]->str[0]) snprintf(last, sizeof last, "%s", r->element[0]->str);
        freeReplyObject(r);
        if (!more) usleep(200000);
    }
    redisFree(c);
    return rc;
}

/* The service's base URL from env (default port on localhost); -1 for a bad value. */
static int service_url(const char *env, int port, char *out, size_t outlen)
{
    const char *v = getenv(env);
    if (v && *v && strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0)
        return fprintf(stderr, "qtctl: %s must be an http:// or https:// URL, got '%s'\n", env, v), -1;
    if (v && *v) snprintf(out, outlen, "%.*s", (int)strcspn(v, "?#"), v);
    else snprintf(out, outlen, "http://127.0.0.1:%d", port);
    size_t n = strlen(out);
    if (n && out[n - 1] == '/') out[n - 1] = '\0';
    return 0;
}

static int cmd_status(int argc, char **argv)
{
    static const struct { const char *name, *env; int port; } svcs[] = {
        {"trading-engine", "QT_TRADING_ENGINE_URL", 8081}, {"ml-threshold", "QT_ML_THRESHOLD_URL", 8082},
        {"rl-decision", "QT_RL_DECISION_URL", 8083},       {"trade-executor", "QT_TRADE_EXECUTOR_URL", 8084},
        {"policy-store", "QT_POLICY_STORE_URL", 8085}};
    int as_json = 0, all_ready = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) as_json = 1;
        else return fprintf(stderr, "qtctl: status: unknown argument '%s'\n%s", argv[i], usage), 2;
    }
    char base[5][256];
    for (int i = 0; i < 5; i++)
        if (service_url(svcs[i].env, svcs[i].port, base[i], sizeof base[i]) < 0) return 2;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    json_t *rows = json_array(), *reset = NULL;
    for (int i = 0; i < 5; i++) {
        char url[300], err[1024] = "", why[512] = "";
        json_t *health, *ready;
        snprintf(url, sizeof url, "%.255s/health", base[i]);
        long hc = httpc_json("GET", url, NULL, NULL, 3000, &health, err, sizeof err);
        snprintf(url, sizeof url, "%.255s/ready", base[i]);
        long rc = hc ? httpc_json("GET", url, NULL, NULL, 3000, &ready, why, sizeof why) : 0;
        if (!hc) ready = NULL;
        /* "busy": alive, its loop held by a blocking call (an exchange request); /ready says so */
        const char *hs = json_string_value(json_object_get(health, "status"));
        int up = hc == 200 && hs && (strcmp(hs, "ok") == 0 || strcmp(hs, "busy") == 0);
        int is_ready = up && rc == 200 && json_is_true(json_object_get(ready, "ready"));
        if (!up && !*err) snprintf(err, sizeof err, "/health answered %ld", hc);
        if (up && !is_ready && !*why) { /* name each failing check */
            const char *k;
            json_t *chk;
            json_object_foreach(json_object_get(ready, "checks"), k, chk) {
                if (json_is_true(json_object_get(chk, "ok"))) continue;
                size_t n = strlen(why);
                snprintf(why + n, sizeof why - n, "%s%s: %s", n ? "; " : "", k, json_is_string(json_object_get(chk, "reason")) ? json_string_value(json_object_get(chk, "reason")) : "?");
            }
            if (!*why) snprintf(why, sizeof why, "/ready answered %ld", rc);
        }
        all_ready &= is_ready;
        json_t *row = json_pack("{s:s, s:s, s:b, s:b}", "service", svcs[i].name, "url", base[i], "healthy", up, "ready", is_ready);
        json_t *uptime = up ? json_object_get(health, "uptime_s") : NULL;
        json_object_set_new(row, "uptime_s", json_is_integer(uptime) ? json_incref(uptime) : json_null());
        json_object_set_new(row, "detail", json_string(!up ? err : !is_ready ? why : ""));
        json_t *cr = up ? json_object_get(health, "config_reset") : NULL; /* policy-store re-seeded the defaults */
        json_object_set_new(row, "config_reset", json_is_object(cr) ? json_incref(cr) : json_null());
        if (json_is_object(cr) && !reset) reset = json_incref(cr);
        json_array_append_new(rows, row);
        json_decref(health);
        json_decref(ready);
    }
    curl_global_cleanup();
    if (as_json) {
        if (qt_print_json(rows, JSON_INDENT(2)) < 0) all_ready = 0;
    } else {
        printf("%-16s %-28s %-7s %-6s %s\n", "SERVICE", "URL", "HEALTH", "READY", "DETAIL");
        size_t i;
        json_t *r;
        json_array_foreach(rows, i, r) {
            int up = json_is_true(json_object_get(r, "healthy")), rd = json_is_true(json_object_get(r, "ready"));
            printf("%-16s %-28s %-7s %-6s %s\n", json_string_value(json_object_get(r, "service")),
                   json_string_value(json_object_get(r, "url")), up ? "ok" : "down", rd ? "yes" : "no",
                   json_string_value(json_object_get(r, "detail")));
        }
        if (reset) {
            time_t at = (time_t)(json_integer_value(json_object_get(reset, "at")) / 1000);
            char when[32];
            strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&at));
            printf("\nCONFIGURATION RESET at %s: %s\n", when, json_string_value(json_object_get(reset, "reason")));
        }
    }
    json_decref(reset);
    json_decref(rows);
    return all_ready ? 0 : 1;
}

static void print_value_line(const char *key, json_t *value, json_t *version)
{
    char *v = json_dumps(value, numfmt_json_flags(value, JSON_ENCODE_ANY | JSON_COMPACT));
    printf("%-36s %-24s %lld\n", key, v ? v : "?", (long long)json_integer_value(version));
    free(v);
}

/* A reply that is not 2xx: its JSON error, or the status. */
static int api_failed(const char *what, long code, json_t *reply, const char *err)
{
    if (!code) return fprintf(stderr, "qtctl: %s: %s\n", what, err), 1;
    const char *msg = reply ? json_string_value(json_object_get(reply, "error")) : "the reply is not JSON";
    fprintf(stderr, "qtctl: %s: HTTP %ld%s%s\n", what, code, msg ? ": " : "", msg ? msg : "");
    return 1;
}

/* PUT one key; VALUE is JSON when it parses (0.72, true, "x"), else a string (PRIMARY). */
static int config_set(const char *base, const char *key, const char *value, int as_json)
{
    const char *token = getenv("QT_API_TOKEN");
    char url[600], what[300], err[1024] = "";
    if (!token || !*token) return fprintf(stderr, "qtctl: QT_API_TOKEN is not set (policy-store changes need it)\n"), 2;
    json_t *v = json_loads(value, JSON_DECODE_ANY, NULL), *reply;
    if (!v) v = json_string(value);
    json_t *body = json_pack("{s:o}", "value", v);
    char *b = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(body);
    snprintf(url, sizeof url, "%.255s/api/v1/policy/config/%.200s", base, key);
    snprintf(what, sizeof what, "set %.200s", key);
    long code = httpc_json("PUT", url, token, b, 3000, &reply, err, sizeof err);
    free(b);
    int rc = 0;
    if (code != 200 || !reply) rc = api_failed(what, code, reply, err);
    else if (as_json) {
        qt_print_json(reply, JSON_INDENT(2));
    } else print_value_line(key, json_object_get(reply, "value"), json_object_get(reply, "version"));
    json_decref(reply);
    return rc;
}

static int cmd_config(int argc, char **argv)
{
    char base[256], url[600], err[1024] = "";
    int as_json = 0, n = 0;
    const char *pos[3] = {NULL, NULL, NULL};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) as_json = 1;
        else if (n < 3) pos[n++] = argv[i];
        else return fputs(usage, stderr), 2;
    }
    if (service_url("QT_POLICY_STORE_URL", 8085, base, sizeof base) < 0) return 2;
    if (n >= 1 && strcmp(pos[0], "set") == 0) {
        if (n != 3) return fprintf(stderr, "qtctl: config set KEY VALUE\n"), 2;
        return config_set(base, pos[1], pos[2], as_json);
    }
    if (n < 1 || strcmp(pos[0], "get") != 0 || n > 2) return fputs(usage, stderr), 2;
    json_t *reply;
    if (n == 2) snprintf(url, sizeof url, "%.255s/api/v1/policy/config/%.200s", base, pos[1]);
    else snprintf(url, sizeof url, "%.255s/api/v1/policy/config", base);
    long code = httpc_json("GET", url, NULL, NULL, 3000, &reply, err, sizeof err);
    int rc = 0;
    if (code != 200 || !reply) rc = api_failed(n == 2 ? pos[1] : "config", code, reply, err);
    else if (as_json) {
        qt_print_json(reply, JSON_INDENT(2));
    } else if (n == 2) {
        print_value_line(pos[1], json_object_get(reply, "value"), json_object_get(reply, "version"));
    } else {
        const char *k;
        json_t *e;
        printf("%-36s %-24s %s\n", "KEY", "VALUE", "VERSION");
        json_object_foreach(json_object_get(reply, "keys"), k, e) print_value_line(k, json_object_get(e, "value"), json_object_get(e, "version"));
    }
    json_decref(reply);
    return rc;
}

static int cmd_mode(int argc, char **argv)
{
    static const char *const modes[] = {"OFF", "SHADOW", "PRIMARY", "HYBRID"};
    char base[256], quoted[32];
    if (argc != 2) return fputs(usage, stderr), 2;
    for (int i = 0; i < 4; i++)
        if (strcmp(argv[1], modes[i]) == 0) {
            if (service_url("QT_POLICY_STORE_URL", 8085, base, sizeof base) < 0) return 2;
            snprintf(quoted, sizeof quoted, "\"%s\"", modes[i]);
            return config_set(base, "rl_v3.live.mode", quoted, 0);
        }
    return fprintf(stderr, "qtctl: mode must be OFF, SHADOW, PRIMARY or HYBRID, got '%s'\n", argv[1]), 2;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "backtest") == 0) return backtest_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "klines") == 0) return klines_main(argc - 1, argv + 1);
    for (int i = 2; i < argc; i++) /* --help after any command */
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return fputs(usage, stdout), 0;
    if (strcmp(argv[1], "features") == 0) return cmd_features(argc - 1, argv + 1);
    if (strcmp(argv[1], "dlq") == 0) return cmd_dlq(argc - 1, argv + 1);
    if (strcmp(argv[1], "streams") == 0) return cmd_streams(argc - 1, argv + 1);
    if (strcmp(argv[1], "partition") == 0) return cmd_partition(argc - 1, argv + 1);
    if (strcmp(argv[1], "tail") == 0) return cmd_tail(argc - 1, argv + 1);
    if (strcmp(argv[1], "status") == 0) return cmd_status(argc - 1, argv + 1);
    if (strcmp(argv[1], "config") == 0) return cmd_config(argc - 1, argv + 1);
    if (strcmp(argv[1], "mode") == 0) return cmd_mode(argc - 1, argv + 1);
    fprintf(stderr, "qtctl: unknown command '%s'\n%s", argv[1], usage);
    return 2;
}
