/* rl-train — train the PPO policy on replayed bars and evaluate it on bars it
 * did not see, against random actions and buy-and-hold.
 *
 *   rl-train [--csv FILE | --synthetic] [--seed N] [--bars N] [--iters N]
 *            [--out PATH] [--version NAME] [--eval-seed N] [--eval-bars N]
 *
 * Synthetic data comes from libcommon/synth (the feed's generator), symbol
 * BTCUSDT. Progress: one line per iteration. Last line:
 *   rl-eval: policy return=..% sharpe=.. maxdd=..% | random ... | buy-and-hold ...
 * Exit codes: 0 ok, 1 failed, 2 usage. */
#include "env.h"
#include "prng.h"
#include "kline.h"
#include "model.h"
#include "ppo.h"
#include "synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *arg(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0) return argv[i + 1];
    return def;
}

static kline_t *synth_series(long seed, long n)
{
    synth_sym_t s;
    kline_t *b = malloc(sizeof *b * (size_t)n);
    synth_sym_init(&s, "BTCUSDT", seed, 0);
    for (long i = 0; b && i < n; i++) synth_bar(&s, 1704067200000LL + i * 60000LL, &b[i]);
    return b;
}

static kline_t *csv_series(const char *path, long *n)
{
    char err[300], first_bad[300];
    long bad;
    kline_t *b = kline_load_csv(path, n, &bad, first_bad, sizeof first_bad, err, sizeof err);
    if (!b) fprintf(stderr, "rl-train: %s\n", err);
    else if (bad) fprintf(stderr, "rl-train: %ld bad rows skipped, first: %s\n", bad, first_bad);
    return b;
}

typedef struct { double ret, sharpe, maxdd, fees; long trades; } eval_t;

/* One pass over the whole series: 0 = greedy policy, 1 = random, 2 = buy-and-hold. */
static eval_t evaluate(const model_t *m, const kline_t *bars, long n, int who, uint64_t seed)
{
    env_t e;
    eval_t r = {0, 0, 0, 0, 0};
    double peak = 0, prev = 0, s = 0, s2 = 0;
    long k = 0;
    int done = 0;
    env_init(&e, bars, n);
    env_reset(&e, ENV_WARMUP, n);
    peak = prev = env_equity(&e);
    while (!done) {
        int a = 5;
        if (who == 0) {
            float obs[64];
            model_out_t o;
            env_observe(&e, obs);
            model_forward(m, obs, &o);
            a = 0;
            for (int j = 1; j < MODEL_ACTIONS; j++)
                if (o.probs[j] > o.probs[a]) a = j;
        } else if (who == 1) {
            a = (int)((prng_next(&seed) >> 33) % MODEL_ACTIONS);
        } else {
            a = k == 0 ? 2 : 5; /* long with the LARGE size, then hold */
        }
        env_step(&e, a, &done);
        double eq = env_equity(&e), rr = (eq - prev) / prev;
        s += rr, s2 += rr * rr, k++;
        prev = eq;
        if (eq > peak) peak = eq;
        if ((peak - eq) / peak > r.maxdd) r.maxdd = (peak - eq) / peak;
    }
    double mean = s / k, sd = sqrt(fmax(s2 / k - mean * mean, 0));
    r.ret = (env_equity(&e) / e.eq0 - 1) * 100;
    r.sharpe = sd > 0 ? mean / sd * sqrt(525600.0) : 0; /* 1-minute bars, annualised */
    r.maxdd *= 100;
    r.trades = e.trades, r.fees = e.fees;
    return r;
}

int main(int argc, char **argv)
{
    static model_t m;
    ppo_cfg_t c;
    char err[512];
    long n = 0;
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        puts("usage: rl-train [--csv FILE | --synthetic] [--seed N] [--bars N] [--iters N] [--out PATH]\n"
             "                [--version NAME] [--eval-seed N] [--eval-bars N]");
        return 0;
    }
    ppo_cfg_default(&c);
    long seed = atol(arg(argc, argv, "--seed", "42")), bars = atol(arg(argc, argv, "--bars", "60000"));
    long eval_seed = atol(arg(argc, argv, "--eval-seed", "7")), eval_bars = atol(arg(argc, argv, "--eval-bars", "20000"));
    const char *csv = arg(argc, argv, "--csv", NULL), *out = arg(argc, argv, "--out", "ppo.bin");
    const char *version = arg(argc, argv, "--version", "ppo-synthetic-v1");
    c.iters = atoi(arg(argc, argv, "--iters", "50"));
    c.seed = (unsigned long long)seed;
    if (bars < 2000 || c.iters < 1 || eval_bars < 1000) return fputs("rl-train: --bars >= 2000, --eval-bars >= 1000, --iters >= 1\n", stderr), 2;
    kline_t *train = csv ? csv_series(csv, &n) : synth_series(seed, n = bars);
    if (!train || n < 2000) return fprintf(stderr, "rl-train: need at least 2000 bars of training data\n"), 1;
    model_init_random(&m, (unsigned long long)seed, version);
    env_t e;
    env_init(&e, train, n);
    fprintf(stderr, "rl-train: %ld bars, %d iterations of %d steps, seed %ld\n", n, c.iters, c.steps, seed);
    ppo_train(&m, &e, &c, stderr);
    if (model_save(&m, out, err, sizeof err) < 0) return fprintf(stderr, "rl-train: %s\n", err), 1;
    fprintf(stderr, "rl-train: wrote %s (%s)\n", out, version);
    kline_t *held = synth_series(eval_seed, eval_bars); /* never seen in training */
    eval_t p = evaluate(&m, held, eval_bars, 0, 1), r = evaluate(&m, held, eval_bars, 1, 99), b = evaluate(&m, held, eval_bars, 2, 0);
    printf("rl-eval: held-out synthetic seed %ld, %ld bars | policy return=%.3f%% sharpe=%.2f maxdd=%.3f%% trades=%ld | "
           "random return=%.3f%% sharpe=%.2f maxdd=%.3f%% trades=%ld | buy-and-hold return=%.3f%% sharpe=%.2f maxdd=%.3f%%\n",
           eval_seed, eval_bars, p.ret, p.sharpe, p.maxdd, p.trades, r.ret, r.sharpe, r.maxdd, r.trades, b.ret, b.sharpe, b.maxdd);
    free(train);
    free(held);
    return 0;
}
