/* qtctl — the operator CLI of Quantum Trader.
 *
 *   qtctl features --csv FILE [--symbol S]   indicators and the 64-dim observation per bar (JSON lines)
 *   qtctl dlq list|replay|purge STREAM [--id ENTRY] [--count N]
 *   qtctl help
 *
 * Exit codes: 0 ok, 1 the work failed (unreadable file, Redis error), 2 usage. */
#include "config.h"
#include "dlq.h"
#include "kline.h"
#include "obs.h"
#include "rsync.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: qtctl COMMAND [ARGS]\n"
    "  features --csv FILE [--symbol S]     one JSON object per bar: open_time, indicators (null while\n"
    "                                       their window fills) and obs (the 64-dim observation)\n"
    "  dlq list STREAM [--count N]          dead letters of <ns>:STREAM:dlq with their reasons\n"
    "  dlq replay STREAM [--id ENTRY]       put dead letters back on their stream (all, or one)\n"
    "  dlq purge STREAM [--id ENTRY]        delete dead letters (all, or one)\n"
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
    char *line = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10));
    puts(line);
    free(line);
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

static int cmd_dlq(int argc, char **argv)
{
    qt_config_t cfg;
    char err[512], key[200];
    long done = 0, count = 20;
    if (argc < 3) return fputs(usage, stderr), 2;
    if (config_common_load(&cfg, "qtctl", 0, err, sizeof err) < 0) return fprintf(stderr, "qtctl: %s\n", err), 2;
    const char *id = arg_value(argc, argv, "--id"), *cnt = arg_value(argc, argv, "--count");
    if (cnt && ((count = strtol(cnt, NULL, 10)) < 1 || count > 100000)) return fprintf(stderr, "qtctl: --count must be 1..100000\n"), 2;
    snprintf(key, sizeof key, "%s:%s:dlq", cfg.ns, argv[2]);
    redisContext *c = rsync_connect(&cfg.redis, 3000, err, sizeof err);
    if (!c) return fprintf(stderr, "qtctl: %s\n", err), 1;
    int rc = 0;
    if (strcmp(argv[1], "list") == 0) {
        json_t *list = NULL;
        if (dlq_list(c, key, count, &list, err, sizeof err) < 0) rc = 1;
        else {
            char *s = json_dumps(list, JSON_INDENT(2));
            puts(s);
            free(s);
            json_decref(list);
        }
    } else if (strcmp(argv[1], "replay") == 0 || strcmp(argv[1], "purge") == 0) {
        int replay = strcmp(argv[1], "replay") == 0;
        rc = (replay ? dlq_replay : dlq_purge)(c, key, id, &done, err, sizeof err) < 0;
        printf("%s %ld entries of %s\n", replay ? "replayed" : "purged", done, key);
    } else {
        rc = 2;
        fputs(usage, stderr);
    }
    if (rc == 1) fprintf(stderr, "qtctl: %s\n", err);
    redisFree(c);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "features") == 0) return cmd_features(argc - 1, argv + 1);
    if (strcmp(argv[1], "dlq") == 0) return cmd_dlq(argc - 1, argv + 1);
    fprintf(stderr, "qtctl: unknown command '%s'\n%s", argv[1], usage);
    return 2;
}
