/* ml-train — train the ensemble's four members on bars and write their model
 * files for ml-threshold.
 *
 *   ml-train [--csv FILE]... | [--synthetic] [--symbols N] [--bars N]
 *            [--seed N] [--horizon N] [--cost-pct X] [--holdout F]
 *            [--out-dir DIR] [--version NAME] [--names A,B,C,D]
 *
 * Rows: the 64 inputs of libcommon/obs at bar t; label: the return from
 * close t to close t+horizon in percent, LONG above +cost, SHORT below
 * −cost, HOLD between. Each series is split in time: its last --holdout part
 * is held out (training rows stop --horizon bars before the split, so no
 * label looks into the held-out part). Members (names overridable):
 *   gbdt-deep     gradient-boosted trees, depth 4, 40 rounds, every market input
 *   gbdt-shallow  gradient-boosted trees, depth 2, 80 rounds, inputs 0..15
 *   softmax       softmax regression, every market input
 *   mlp-returns   MLP (32 tanh units) over the returns ret_lag_0..15
 * Progress goes to stderr; the report (stdout) has one line per member with
 * held-out accuracy and Brier score, and the class-prior baseline.
 * Exit codes: 0 ok (and --help), 1 failed, 2 usage. */
#include "synth.h"
#include "train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*train_fn)(mlm_t *, const char *, const char *, const dataset_t *, const uint32_t *, uint32_t,
                        const train_opts_t *);

typedef struct member_spec {
    const char *name;
    train_fn train;
    int first, last; /* input range; position and reserved inputs never used */
    train_opts_t opts;
} member_spec_t;

static member_spec_t members[] = {
    {"gbdt-deep", gbdt_train, 0, 49, {0, 0, 0, 40, 4, 0.1, 0}},
    {"gbdt-shallow", gbdt_train, 0, 15, {0, 0, 0, 80, 2, 0.1, 0}},
    {"softmax", softmax_train, 0, 49, {0, 6, 0, 0, 0, 0.02, 1e-4}},
    {"mlp-returns", mlp_train, 28, 43, {0, 8, 32, 0, 0, 0.02, 1e-4}},
};
#define NMEMBERS (int)(sizeof members / sizeof members[0])

static const char *arg(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0) return argv[i + 1];
    return def;
}

static int usage(FILE *to)
{
    fprintf(to, "usage: ml-train [--csv FILE]... | [--synthetic] [--symbols N] [--bars N] [--seed N]\n"
                    "                [--horizon N] [--cost-pct X] [--holdout F] [--out-dir DIR]\n"
                    "                [--version NAME] [--names A,B,C,D]\n");
    return to == stdout ? 0 : 2;
}

/* Inputs of a member: the range minus position info (24..27). */
static uint32_t member_inputs(const member_spec_t *m, uint32_t *idx)
{
    uint32_t n = 0;
    for (int i = m->first; i <= m->last; i++)
        if (i < 24 || i > 27) idx[n++] = (uint32_t)i;
    return n;
}

typedef struct data_opts { int horizon; double cost, holdout; } data_opts_t;

/* One series into the training and held-out sets. */
static int add_series(dataset_t *train, dataset_t *test, const kline_t *b, long n, const data_opts_t *o)
{
    long split = (long)((double)n * (1 - o->holdout));
    return dataset_add_series(train, b, n, 0, split - o->horizon, o->horizon, o->cost) < 0 ||
                   dataset_add_series(test, b, n, split, n, o->horizon, o->cost) < 0
               ? -1
               : 0;
}

static int load_synthetic(dataset_t *train, dataset_t *test, long seed, long symbols, long bars, const data_opts_t *o)
{
    static const char *const names[] = {"BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT", "AVAXUSDT"};
    kline_t *b = malloc(sizeof *b * (size_t)bars);
    int rc = b ? 0 : -1;
    for (long s = 0; rc == 0 && s < symbols; s++) {
        synth_sym_t sy;
        synth_sym_init(&sy, names[s % 8], seed, (int)s);
        for (long i = 0; i < bars; i++) synth_bar(&sy, 1704067200000LL + i * 60000LL, &b[i]);
        rc = add_series(train, test, b, bars, o);
    }
    free(b);
    return rc;
}

static int load_csvs(dataset_t *train, dataset_t *test, int argc, char **argv, const data_opts_t *o)
{
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--csv") != 0) continue;
        char err[300], first_bad[300];
        long n, bad;
        kline_t *b = kline_load_csv(argv[i + 1], &n, &bad, first_bad, sizeof first_bad, err, sizeof err);
        if (!b) return fprintf(stderr, "ml-train: %s\n", err), -1;
        if (bad) fprintf(stderr, "ml-train: %ld bad rows skipped, first: %s\n", bad, first_bad);
        int rc = add_series(train, test, b, n, o);
        free(b);
        if (rc < 0) return fprintf(stderr, "ml-train: out of memory\n"), -1;
    }
    return 0;
}

/* The class shares and the prior's accuracy and Brier on the held-out rows. */
static void report_baseline(const dataset_t *train, const dataset_t *test)
{
    double prior[MLM_CLASSES] = {0}, share[MLM_CLASSES] = {0}, brier = 0;
    int best = 0;
    for (long i = 0; i < train->n; i++) prior[train->y[i]] += 1.0 / (double)train->n;
    for (long i = 0; i < test->n; i++) share[test->y[i]] += 1.0 / (double)test->n;
    for (int k = 0; k < MLM_CLASSES; k++) {
        if (prior[k] > prior[best]) best = k;
        for (int y = 0; y < MLM_CLASSES; y++) brier += share[y] * (prior[k] - train_target(y, k)) * (prior[k] - train_target(y, k));
    }
    printf("ml-train: rows train=%ld held-out=%ld held-out classes LONG=%.1f%% SHORT=%.1f%% HOLD=%.1f%%\n", train->n,
           test->n, share[0] * 100, share[1] * 100, share[2] * 100);
    printf("ml-train: baseline (class prior) held-out accuracy=%.4f brier=%.4f\n", share[best], brier);
}

static int train_member(member_spec_t *s, const char *name, const dataset_t *train, const dataset_t *test,
                        const char *dir, const char *version)
{
    uint32_t idx[MLM_NX];
    char path[1024], err[512];
    mlm_t m;
    double acc, brier;
    uint32_t n = member_inputs(s, idx);
    if (s->train(&m, name, version, train, idx, n, &s->opts) < 0) return fprintf(stderr, "ml-train: %s: out of memory\n", name), -1;
    train_evaluate(&m, test, &acc, &brier);
    snprintf(path, sizeof path, "%s/%s.bin", dir, name);
    int rc = mlm_save(&m, path, err, sizeof err);
    if (rc < 0) fprintf(stderr, "ml-train: %s\n", err);
    else printf("ml-train: member %s kind=%s inputs=%u held-out accuracy=%.4f brier=%.4f file=%s\n", name,
                mlm_kind_name(m.kind), n, acc, brier, path);
    mlm_free(&m);
    return rc;
}

/* The member names: --names overrides the defaults in order. */
static int member_names(const char *list, char names[NMEMBERS][64])
{
    for (int i = 0; i < NMEMBERS; i++) snprintf(names[i], 64, "%s", members[i].name);
    for (int i = 0; list && *list; i++) {
        size_t len = strcspn(list, ",");
        if (i >= NMEMBERS || len == 0 || len > 63) return -1;
        snprintf(names[i], 64, "%.*s", (int)len, list);
        list += len + (list[len] == ',');
    }
    return 0;
}

int main(int argc, char **argv)
{
    char names[NMEMBERS][64];
    data_opts_t o = {atoi(arg(argc, argv, "--horizon", "15")), atof(arg(argc, argv, "--cost-pct", "0.12")),
                     atof(arg(argc, argv, "--holdout", "0.2"))};
    long seed = atol(arg(argc, argv, "--seed", "42")), symbols = atol(arg(argc, argv, "--symbols", "4"));
    long bars = atol(arg(argc, argv, "--bars", "15000"));
    const char *dir = arg(argc, argv, "--out-dir", "models/ml"), *version = arg(argc, argv, "--version", "ml-default-1");
    dataset_t train = {0}, test = {0};
    int rc = 1, csv = arg(argc, argv, "--csv", NULL) != NULL;
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) return usage(stdout);
    if (o.horizon < 1 || o.cost < 0 ||
        o.holdout <= 0 || o.holdout >= 0.9 || symbols < 1 || symbols > 64 || bars < 1000 ||
        member_names(arg(argc, argv, "--names", NULL), names) < 0)
        return usage(stderr);
    if ((csv ? load_csvs(&train, &test, argc, argv, &o) : load_synthetic(&train, &test, seed, symbols, bars, &o)) < 0) goto cleanup;
    if (train.n < 100 || test.n < 10) {
        fprintf(stderr, "ml-train: too few rows (train %ld, held-out %ld): give more bars\n", train.n, test.n);
        goto cleanup;
    }
    report_baseline(&train, &test);
    for (int i = 0; i < NMEMBERS; i++) {
        members[i].opts.seed = (uint64_t)seed + (uint64_t)i;
        if (train_member(&members[i], names[i], &train, &test, dir, version) < 0) goto cleanup;
    }
    rc = 0;
cleanup:
    dataset_free(&train);
    dataset_free(&test);
    return rc;
}
