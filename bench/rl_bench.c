/* rl_bench — median nanoseconds of one policy forward pass (64-128-128-6)
 * and of one bar through the features (indicators update + observation).
 * Prints, last: rl-bench: inference_ns=<median> features_ns=<median> */
#include "harness.h"
#include "model.h"
#include "obs.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define N 20001

static long long median(long long *v) { return th_percentile(v, N, 0.5); }

int main(void)
{
    static model_t m;
    static long long t[N];
    model_out_t o;
    float obs[FEATURES_DIM];
    obs_state_t st;
    double sink = 0, p = 100;
    model_init_random(&m, 1, "bench");
    obs_init(&st);
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < FEATURES_DIM; k++) obs[k] = (float)sin(i + k);
        long long t0 = th_now_ns();
        model_forward(&m, obs, &o);
        t[i] = th_now_ns() - t0;
        sink += o.value;
    }
    long long inf = median(t);
    for (int i = 0; i < N; i++) {
        double c = p * (1 + 0.003 * sin(i * 0.37));
        long long t0 = th_now_ns();
        obs_update(&st, fmax(p, c) * 1.001, fmin(p, c) * 0.999, c);
        obs_build(&st, NULL, obs);
        t[i] = th_now_ns() - t0;
        sink += obs[0];
        p = c;
    }
    long long feat = median(t);
    fprintf(stderr, "(checksum %g)\n", sink);
    printf("rl-bench: inference_ns=%lld features_ns=%lld\n", inf, feat);
    return 0;
}
