/* dataset.c — labelled rows from bars, evaluation, the seeded generator (see train.h). */
#include "train.h"
#include "prng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int dataset_grow(dataset_t *d)
{
    long cap = d->cap ? d->cap * 2 : 4096;
    float *x = realloc(d->x, sizeof *x * MLM_NX * (size_t)cap);
    if (!x) return -1;
    d->x = x;
    int *y = realloc(d->y, sizeof *y * (size_t)cap);
    if (!y) return -1;
    d->y = y, d->cap = cap;
    return 0;
}

int dataset_add_series(dataset_t *d, const kline_t *bars, long n, long from, long to, int horizon, double cost_pct)
{
    obs_state_t st;
    obs_init(&st);
    for (long t = 0; t < to && t + horizon < n; t++) {
        if (obs_update(&st, bars[t].high, bars[t].low, bars[t].close) < 0 || t < from) continue;
        if (d->n == d->cap && dataset_grow(d) < 0) return -1;
        if (mlm_inputs(&st, d->x + d->n * MLM_NX) < 0) continue;
        double r = (bars[t + horizon].close / bars[t].close - 1) * 100;
        d->y[d->n++] = r > cost_pct ? MLM_LONG : r < -cost_pct ? MLM_SHORT : MLM_HOLD;
    }
    return 0;
}

void dataset_free(dataset_t *d)
{
    free(d->x);
    free(d->y);
    memset(d, 0, sizeof *d);
}

void train_evaluate(const mlm_t *m, const dataset_t *d, double *accuracy, double *brier)
{
    long right = 0;
    double b = 0;
    for (long i = 0; i < d->n; i++) {
        double p[MLM_CLASSES];
        int best = 0;
        mlm_predict(m, d->x + i * MLM_NX, p);
        for (int k = 0; k < MLM_CLASSES; k++) {
            b += (p[k] - train_target(d->y[i], k)) * (p[k] - train_target(d->y[i], k));
            if (p[k] > p[best]) best = k;
        }
        right += best == d->y[i];
    }
    *accuracy = d->n ? (double)right / (double)d->n : 0;
    *brier = d->n ? b / (double)d->n : 0;
}

double train_rand(uint64_t *s) { return prng_uniform(s); }
