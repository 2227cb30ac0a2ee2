/* ml_bench — median nanoseconds of the ensemble's work per bar (features
 * update and inputs, then the four shipped members' predictions) and of the
 * learning per closed trade (RSM update with four votes and the threshold
 * window), in process: the shared-state write to Redis that follows an
 * update is one EVAL round trip, seen live as qt_ml_update_seconds.
 * Prints, last: ml-bench: predict_ns=<median per bar> update_ns=<median per outcome> */
#include "harness.h"
#include "mlmodel.h"
#include "rsm.h"
#include "thresholds.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define N 20001

static const char *const files[] = {"models/ml/gbdt-deep.bin", "models/ml/gbdt-shallow.bin", "models/ml/softmax.bin",
                                    "models/ml/mlp-returns.bin"};

static long long median(long long *v) { return th_percentile(v, N, 0.5); }

static long long bench_predict(mlm_t *m, long long *t, double *sink)
{
    obs_state_t st;
    float x[MLM_NX];
    double probs[MLM_CLASSES], p = 100;
    obs_init(&st);
    for (int i = 0; i < MLM_WARMUP; i++) obs_update(&st, p * 1.001, p * 0.999, p);
    for (int i = 0; i < N; i++) {
        double c = p * (1 + 0.003 * sin(i * 0.37));
        long long t0 = th_now_ns();
        obs_update(&st, fmax(p, c) * 1.001, fmin(p, c) * 0.999, c);
        mlm_inputs(&st, x);
        for (int k = 0; k < 4; k++) mlm_predict(&m[k], x, probs), *sink += probs[0];
        t[i] = th_now_ns() - t0;
        p = c;
    }
    return median(t);
}

static long long bench_update(long long *t, double *sink)
{
    static const char *names[] = {"gbdt-deep", "gbdt-shallow", "softmax", "mlp-returns"};
    rsm_config_t rc;
    thr_config_t tc = {0.6, 0.02, 1.5, 10, 3600000};
    rsm_t r;
    thr_t th;
    rsm_config_default(&rc);
    rsm_init(&r, &rc, names, NULL, 4);
    thr_init(&th, &tc);
    for (int i = 0; i < N; i++) {
        rsm_vote_t v[4] = {{"gbdt-deep", "LONG", 0.7}, {"gbdt-shallow", i % 3 ? "LONG" : "SHORT", 0.6},
                           {"softmax", "SHORT", 0.55}, {"mlp-returns", "HOLD", 0.5}};
        long long t0 = th_now_ns();
        rsm_update(&r, i % 2 ? 1 : -1, sin(i * 0.7) * 2, v, 4, NULL);
        thr_observe(&th, sin(i * 0.7) * 2, (long long)i * 600000);
        t[i] = th_now_ns() - t0;
    }
    *sink += r.models[0].weight + th.min_confidence;
    return median(t);
}

int main(void)
{
    static long long t[N];
    mlm_t m[4];
    char err[512];
    double sink = 0;
    for (int k = 0; k < 4; k++)
        if (mlm_load(&m[k], files[k], err, sizeof err) < 0) return fprintf(stderr, "ml-bench: %s\n", err), 1;
    long long predict = bench_predict(m, t, &sink), update = bench_update(t, &sink);
    for (int k = 0; k < 4; k++) mlm_free(&m[k]);
    fprintf(stderr, "ml-bench detail: checksum=%g (keeps the work from being optimised away)\n", sink);
    printf("ml-bench: predict_ns=%lld update_ns=%lld\n", predict, update);
    return 0;
}
