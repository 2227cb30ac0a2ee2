/* nn.c — softmax regression and the one-hidden-layer MLP, trained by
 * minibatch SGD with momentum on the cross-entropy (see train.h). Inputs are
 * standardised with the training rows' mean and standard deviation, which
 * are stored in the model so inference standardises the same way. */
#include "train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NN_BATCH 128
#define NN_MOMENTUM 0.9

typedef struct nn {
    mlm_t *m;
    uint32_t nf, nh;        /* nh = 0: softmax regression */
    float *w;               /* parameters after mean/sd */
    size_t np;
    double *grad, *vel, *u, *hid;
} nn_t;

static void nn_standardise_fit(mlm_t *m, const dataset_t *d)
{
    uint32_t nf = m->nfeat;
    for (uint32_t j = 0; j < nf; j++) {
        double s = 0, ss = 0;
        for (long i = 0; i < d->n; i++) {
            double v = d->x[i * MLM_NX + m->ints[j]];
            s += v, ss += v * v;
        }
        double mean = s / (double)d->n, var = ss / (double)d->n - mean * mean;
        m->floats[j] = (float)mean;
        m->floats[nf + j] = (float)(var > 1e-12 ? sqrt(var) : 1.0);
    }
}

/* Forward and backward for one row: gradients added to nn->grad; returns the loss. */
static double nn_row(nn_t *s, const float *x, int y)
{
    uint32_t nf = s->nf, nh = s->nh, nin = nh ? nh : nf;
    const float *mean = s->m->floats, *sd = mean + nf;
    double z[MLM_CLASSES], p[MLM_CLASSES], mx = -1e300, sum = 0, *in = nh ? s->hid : s->u;
    const float *w2 = s->w + (nh ? (size_t)nh * nf + nh : 0), *b2 = w2 + (size_t)MLM_CLASSES * nin;
    double *g2 = s->grad + (w2 - s->w), *gb2 = s->grad + (b2 - s->w);
    for (uint32_t j = 0; j < nf; j++) s->u[j] = (x[s->m->ints[j]] - mean[j]) / sd[j];
    for (uint32_t i = 0; i < nh; i++) {
        double a = s->w[(size_t)nh * nf + i];
        for (uint32_t j = 0; j < nf; j++) a += s->w[(size_t)i * nf + j] * s->u[j];
        s->hid[i] = tanh(a);
    }
    for (int k = 0; k < MLM_CLASSES; k++) {
        z[k] = b2[k];
        for (uint32_t i = 0; i < nin; i++) z[k] += w2[(size_t)k * nin + i] * in[i];
        mx = fmax(mx, z[k]);
    }
    for (int k = 0; k < MLM_CLASSES; k++) sum += p[k] = exp(z[k] - mx);
    for (int k = 0; k < MLM_CLASSES; k++) {
        double dz = p[k] / sum - train_target(y, k);
        gb2[k] += dz;
        for (uint32_t i = 0; i < nin; i++) g2[(size_t)k * nin + i] += dz * in[i];
    }
    for (uint32_t i = 0; i < nh; i++) {
        double dh = 0;
        for (int k = 0; k < MLM_CLASSES; k++) dh += (p[k] / sum - train_target(y, k)) * w2[(size_t)k * nin + i];
        double da = dh * (1 - s->hid[i] * s->hid[i]);
        s->grad[(size_t)nh * nf + i] += da;
        for (uint32_t j = 0; j < nf; j++) s->grad[(size_t)i * nf + j] += da * s->u[j];
    }
    return -log(fmax(p[y] / sum, 1e-12));
}

static void nn_step(nn_t *s, long batch, const train_opts_t *o)
{
    for (size_t q = 0; q < s->np; q++) {
        s->vel[q] = NN_MOMENTUM * s->vel[q] - o->lr * (s->grad[q] / (double)batch + o->l2 * s->w[q]);
        s->w[q] += (float)s->vel[q];
        s->grad[q] = 0;
    }
}

static void nn_epochs(nn_t *s, const dataset_t *d, const train_opts_t *o, long *order, uint64_t *rng)
{
    for (int e = 0; e < o->epochs; e++) {
        double loss = 0;
        for (long i = d->n - 1; i > 0; i--) {
            long j = (long)(train_rand(rng) * (double)(i + 1)), t = order[i];
            order[i] = order[j], order[j] = t;
        }
        for (long b = 0; b < d->n; b += NN_BATCH) {
            long end = b + NN_BATCH < d->n ? b + NN_BATCH : d->n;
            for (long i = b; i < end; i++) loss += nn_row(s, d->x + order[i] * MLM_NX, d->y[order[i]]);
            nn_step(s, end - b, o);
        }
        fprintf(stderr, "ml-train: %s epoch %d/%d train_logloss=%.4f\n", s->m->name, e + 1, o->epochs, loss / (double)d->n);
    }
}

static int nn_train(mlm_t *m, int kind, const char *name, const char *version, const dataset_t *d,
                    const uint32_t *idx, uint32_t nidx, const train_opts_t *o)
{
    uint32_t nh = kind == MLM_MLP ? (uint32_t)o->hidden : 0;
    uint64_t rng = o->seed * 2654435761ULL + 17;
    if (mlm_alloc(m, kind, name, version, nidx, nh, 0) < 0) return -1;
    nn_t s = {m, nidx, nh, m->floats + 2 * nidx, m->nfloats - 2 * nidx, NULL, NULL, NULL, NULL};
    long *order = malloc(sizeof *order * (size_t)d->n);
    s.grad = calloc(s.np, sizeof *s.grad), s.vel = calloc(s.np, sizeof *s.vel);
    s.u = calloc(nidx, sizeof *s.u), s.hid = calloc(nh + 1, sizeof *s.hid);
    int rc = order && s.grad && s.vel && s.u && s.hid ? 0 : -1;
    if (rc == 0) {
        memcpy(m->ints, idx, sizeof *idx * nidx);
        nn_standardise_fit(m, d);
        for (uint32_t i = 0; nh && i < nh * nidx; i++) s.w[i] = (float)((train_rand(&rng) * 2 - 1) / sqrt((double)nidx));
        for (uint32_t i = 0; nh && i < MLM_CLASSES * nh; i++)
            s.w[nh * nidx + nh + i] = (float)((train_rand(&rng) * 2 - 1) / sqrt((double)nh));
        for (long i = 0; i < d->n; i++) order[i] = i;
        nn_epochs(&s, d, o, order, &rng);
    }
    free(order), free(s.grad), free(s.vel), free(s.u), free(s.hid);
    if (rc < 0) mlm_free(m);
    return rc;
}

int softmax_train(mlm_t *m, const char *name, const char *version, const dataset_t *d, const uint32_t *idx,
                  uint32_t nidx, const train_opts_t *o)
{
    return nn_train(m, MLM_SOFTMAX, name, version, d, idx, nidx, o);
}

int mlp_train(mlm_t *m, const char *name, const char *version, const dataset_t *d, const uint32_t *idx,
              uint32_t nidx, const train_opts_t *o)
{
    return nn_train(m, MLM_MLP, name, version, d, idx, nidx, o);
}
