/* train.h — ml-train's pieces: the labelled dataset built from bars, and one
 * trainer per learner kind. Every trainer is deterministic for a seed and
 * writes its progress to stderr. */
#ifndef QT_ML_TRAIN_H
#define QT_ML_TRAIN_H

#include "kline.h"
#include "mlmodel.h"

#include <stdint.h>

typedef struct dataset {
    float *x;  /* n rows of MLM_NX */
    int *y;    /* MLM_LONG / MLM_SHORT / MLM_HOLD */
    long n, cap;
} dataset_t;

/* Append the labelled rows t in [from, to) of one symbol's bars (features
 * are built from bar 0 on): the inputs at bar t and the label of the forward
 * return from close t to close t+horizon, in percent: LONG above +cost_pct,
 * SHORT below -cost_pct, HOLD between. -1 on OOM. */
int dataset_add_series(dataset_t *d, const kline_t *bars, long n, long from, long to, int horizon, double cost_pct);
void dataset_free(dataset_t *d);

typedef struct train_opts {
    uint64_t seed;
    int epochs, hidden, rounds, depth;
    double lr, l2;
} train_opts_t;

/* Each fills m (allocated here; free with mlm_free) from the training rows,
 * on the inputs listed in idx. 0 or -1 on OOM. */
int gbdt_train(mlm_t *m, const char *name, const char *version, const dataset_t *d, const uint32_t *idx,
               uint32_t nidx, const train_opts_t *o);
int softmax_train(mlm_t *m, const char *name, const char *version, const dataset_t *d, const uint32_t *idx,
                  uint32_t nidx, const train_opts_t *o);
int mlp_train(mlm_t *m, const char *name, const char *version, const dataset_t *d, const uint32_t *idx,
              uint32_t nidx, const train_opts_t *o);

/* Held-out figures: accuracy and the multi-class Brier score
 * mean over rows of sum over classes (p_k - y_k)^2 (0 best, 2 worst). */
void train_evaluate(const mlm_t *m, const dataset_t *d, double *accuracy, double *brier);
/* The training rows' one-hot targets helper: 1.0 for class y. */
static inline double train_target(int y, int k) { return y == k ? 1.0 : 0.0; }
/* A seeded uniform in (0, 1). */
double train_rand(uint64_t *s);

#endif
