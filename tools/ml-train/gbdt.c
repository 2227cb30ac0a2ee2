/* gbdt.c — gradient-boosted trees with a softmax loss (see train.h).
 * Histogram method: each input is cut into GB_BINS quantile bins once; every
 * round grows one complete tree per class on the gradient p_k − y_k and
 * hessian p_k(1 − p_k) of the current scores, choosing per node the split
 * of largest gain G_L²/(H_L+λ) + G_R²/(H_R+λ) − G²/(H+λ); leaves get
 * −lr·G/(H+λ). A node with no useful split sends every row left. */
#include "train.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GB_BINS 32
#define GB_LAMBDA 1.0
#define GB_MIN_HESS 2.0

typedef struct gb {
    const dataset_t *d;
    const uint32_t *idx;
    uint32_t nf, depth, ni, nl;
    unsigned char *bins; /* n x nf */
    float *cuts;         /* nf x (GB_BINS - 1) */
    double *g, *h, *F;   /* per row; F: n x K scores */
    int *node, *split;   /* per row; per internal node: bin or GB_BINS */
    double *hg, *hh;     /* histograms for one level */
} gb_t;

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Quantile cut points of every input, then each row's bin. */
static int gb_bin(gb_t *s)
{
    long n = s->d->n, step = n > 20000 ? n / 20000 : 1, m = 0;
    float *v = malloc(sizeof *v * (size_t)(n / step + 1));
    if (!v) return -1;
    for (uint32_t j = 0; j < s->nf; j++) {
        m = 0;
        for (long i = 0; i < n; i += step) v[m++] = s->d->x[i * MLM_NX + s->idx[j]];
        qsort(v, (size_t)m, sizeof *v, cmp_float);
        for (int b = 0; b < GB_BINS - 1; b++) s->cuts[j * (GB_BINS - 1) + b] = v[(long)(b + 1) * m / GB_BINS];
        for (long i = 0; i < n; i++) {
            float x = s->d->x[i * MLM_NX + s->idx[j]];
            int b = 0;
            while (b < GB_BINS - 1 && x > s->cuts[j * (GB_BINS - 1) + b]) b++;
            s->bins[i * s->nf + j] = (unsigned char)b;
        }
    }
    free(v);
    return 0;
}

/* Best split of one node from its histograms; sets feat/thr/split. */
static void gb_split_node(gb_t *s, int local, int node, uint32_t *feat, float *thr)
{
    const double *hg = s->hg + (size_t)local * s->nf * GB_BINS, *hh = s->hh + (size_t)local * s->nf * GB_BINS;
    double G = 0, H = 0, best = 1e-9;
    for (int b = 0; b < GB_BINS; b++) G += hg[b], H += hh[b];
    feat[node] = 0, thr[node] = FLT_MAX, s->split[node] = GB_BINS;
    for (uint32_t j = 0; j < s->nf; j++) {
        double GL = 0, HL = 0;
        for (int b = 0; b < GB_BINS - 1; b++) {
            GL += hg[j * GB_BINS + b], HL += hh[j * GB_BINS + b];
            double GR = G - GL, HR = H - HL;
            if (HL < GB_MIN_HESS || HR < GB_MIN_HESS) continue;
            double gain = GL * GL / (HL + GB_LAMBDA) + GR * GR / (HR + GB_LAMBDA) - G * G / (H + GB_LAMBDA);
            if (gain > best) best = gain, feat[node] = j, thr[node] = s->cuts[j * (GB_BINS - 1) + b], s->split[node] = b;
        }
    }
}

/* One level: histograms of the level's nodes, their splits, rows moved down. */
static void gb_level(gb_t *s, int level, uint32_t *feat, float *thr)
{
    int first = (1 << level) - 1, count = 1 << level;
    memset(s->hg, 0, sizeof *s->hg * (size_t)count * s->nf * GB_BINS);
    memset(s->hh, 0, sizeof *s->hh * (size_t)count * s->nf * GB_BINS);
    for (long i = 0; i < s->d->n; i++) {
        size_t base = (size_t)(s->node[i] - first) * s->nf * GB_BINS;
        const unsigned char *b = s->bins + i * s->nf;
        for (uint32_t j = 0; j < s->nf; j++) s->hg[base + j * GB_BINS + b[j]] += s->g[i], s->hh[base + j * GB_BINS + b[j]] += s->h[i];
    }
    for (int k = 0; k < count; k++) gb_split_node(s, k, first + k, feat, thr);
    for (long i = 0; i < s->d->n; i++) {
        int n = s->node[i];
        s->node[i] = 2 * n + (s->bins[i * s->nf + feat[n]] <= s->split[n] ? 1 : 2);
    }
}

/* Grow the tree of class k and add its leaves to the scores. */
static void gb_tree(gb_t *s, int k, uint32_t *feat, float *thr, float *leaf, double lr)
{
    double G[1024] = {0}, H[1024] = {0};
    for (long i = 0; i < s->d->n; i++) s->node[i] = 0;
    for (uint32_t level = 0; level < s->depth; level++) gb_level(s, (int)level, feat, thr);
    for (long i = 0; i < s->d->n; i++) G[s->node[i] - s->ni] += s->g[i], H[s->node[i] - s->ni] += s->h[i];
    for (uint32_t l = 0; l < s->nl; l++) leaf[l] = (float)(H[l] > 0 ? -lr * G[l] / (H[l] + GB_LAMBDA) : 0);
    for (long i = 0; i < s->d->n; i++) s->F[i * MLM_CLASSES + k] += leaf[s->node[i] - s->ni];
}

/* Softmax of the scores into p; returns the row's log loss. */
static double gb_probs(const double *F, int y, double p[MLM_CLASSES])
{
    double mx = fmax(F[0], fmax(F[1], F[2])), sum = 0;
    for (int k = 0; k < MLM_CLASSES; k++) sum += p[k] = exp(F[k] - mx);
    for (int k = 0; k < MLM_CLASSES; k++) p[k] /= sum;
    return -log(fmax(p[y], 1e-12));
}

static int gb_round(gb_t *s, mlm_t *m, uint32_t r, double lr)
{
    uint32_t *feat = m->ints + m->nfeat;
    float *thr = m->floats + MLM_CLASSES, *leaf = thr + m->p1 * MLM_CLASSES * s->ni;
    double *p = malloc(sizeof *p * MLM_CLASSES * (size_t)s->d->n), loss = 0;
    if (!p) return -1;
    for (long i = 0; i < s->d->n; i++) loss += gb_probs(s->F + i * MLM_CLASSES, s->d->y[i], p + i * MLM_CLASSES);
    for (int k = 0; k < MLM_CLASSES; k++) {
        uint32_t t = r * MLM_CLASSES + (uint32_t)k;
        for (long i = 0; i < s->d->n; i++) {
            double pk = p[i * MLM_CLASSES + k];
            s->g[i] = pk - train_target(s->d->y[i], k), s->h[i] = fmax(pk * (1 - pk), 1e-6);
        }
        gb_tree(s, k, feat + t * s->ni, thr + t * s->ni, leaf + t * s->nl, lr);
    }
    if (r % 10 == 0 || r + 1 == m->p1)
        fprintf(stderr, "ml-train: %s round %u/%u train_logloss=%.4f\n", m->name, r + 1, m->p1, loss / (double)s->d->n);
    free(p);
    return 0;
}

static void gb_free(gb_t *s)
{
    free(s->bins), free(s->cuts), free(s->g), free(s->h), free(s->F);
    free(s->node), free(s->split), free(s->hg), free(s->hh);
}

int gbdt_train(mlm_t *m, const char *name, const char *version, const dataset_t *d, const uint32_t *idx,
               uint32_t nidx, const train_opts_t *o)
{
    gb_t s = {.d = d, .idx = idx, .nf = nidx, .depth = (uint32_t)o->depth, .ni = (1u << o->depth) - 1, .nl = 1u << o->depth};
    size_t n = (size_t)d->n, hist = ((size_t)1 << (o->depth - 1)) * nidx * GB_BINS;
    double prior[MLM_CLASSES] = {1, 1, 1};
    int rc = -1;
    if (o->depth < 1 || o->depth > 10 || mlm_alloc(m, MLM_GBDT, name, version, nidx, (uint32_t)o->rounds, (uint32_t)o->depth) < 0)
        return -1;
    s.bins = malloc(n * nidx), s.cuts = malloc(sizeof *s.cuts * nidx * (GB_BINS - 1));
    s.g = malloc(sizeof *s.g * n), s.h = malloc(sizeof *s.h * n), s.F = malloc(sizeof *s.F * n * MLM_CLASSES);
    s.node = malloc(sizeof *s.node * n), s.split = malloc(sizeof *s.split * s.ni);
    s.hg = malloc(sizeof *s.hg * hist), s.hh = malloc(sizeof *s.hh * hist);
    if (s.bins && s.cuts && s.g && s.h && s.F && s.node && s.split && s.hg && s.hh && gb_bin(&s) == 0) {
        memcpy(m->ints, idx, sizeof *idx * nidx);
        for (size_t i = 0; i < n; i++) prior[d->y[i]] += 1;
        for (int k = 0; k < MLM_CLASSES; k++) m->floats[k] = (float)log(prior[k] / ((double)n + 3));
        for (size_t i = 0; i < n; i++)
            for (int k = 0; k < MLM_CLASSES; k++) s.F[i * MLM_CLASSES + k] = m->floats[k];
        rc = 0;
        for (uint32_t r = 0; r < m->p1 && rc == 0; r++) rc = gb_round(&s, m, r, o->lr);
    }
    gb_free(&s);
    if (rc < 0) mlm_free(m);
    return rc;
}
