/* model.c — PPO actor-critic MLP: file format and forward pass (see model.h). */
#include "model.h"
#include "prng.h"
#include "atomicfile.h"
#include "digest.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char model_magic[8] = {'Q', 'T', 'P', 'P', 'O', 0, 0, 1};
#define MODEL_FORMAT 1
#define MODEL_HEADER (8 + 5 * 4 + 64)
#define MODEL_FLOATS (MODEL_H1 * MODEL_IN + MODEL_H1 + MODEL_H2 * MODEL_H1 + MODEL_H2 + MODEL_ACTIONS * MODEL_H2 + MODEL_ACTIONS + MODEL_H2 + 1)
#define MODEL_BYTES (MODEL_HEADER + MODEL_FLOATS * 4 + 32)

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The weights in file order, as pointers into m. */
typedef struct { float *p; size_t n; } model_part_t;

static int model_parts(model_t *m, model_part_t parts[8])
{
    model_part_t p[8] = {{&m->w1[0][0], MODEL_H1 * MODEL_IN}, {m->b1, MODEL_H1}, {&m->w2[0][0], MODEL_H2 * MODEL_H1},
                         {m->b2, MODEL_H2}, {&m->wpi[0][0], MODEL_ACTIONS * MODEL_H2}, {m->bpi, MODEL_ACTIONS},
                         {m->wv, MODEL_H2}, {&m->bv, 1}};
    memcpy(parts, p, sizeof p);
    return 8;
}

int model_save(const model_t *m, const char *path, char *err, size_t errlen)
{
    unsigned char *buf = calloc(1, MODEL_BYTES), *q;
    model_part_t parts[8];
    if (!buf) return snprintf(err, errlen, "out of memory"), -1;
    memcpy(buf, model_magic, 8);
    put_u32(buf + 8, MODEL_FORMAT), put_u32(buf + 12, MODEL_IN), put_u32(buf + 16, MODEL_H1);
    put_u32(buf + 20, MODEL_H2), put_u32(buf + 24, MODEL_ACTIONS);
    memcpy(buf + 28, m->version, strnlen(m->version, 63));
    q = buf + MODEL_HEADER;
    for (int i = 0, n = model_parts((model_t *)m, parts); i < n; i++)
        for (size_t k = 0; k < parts[i].n; k++, q += 4) {
            uint32_t bits;
            memcpy(&bits, &parts[i].p[k], 4);
            put_u32(q, bits);
        }
    digest_sha256(buf, (size_t)(q - buf), q);
    int rc = atomicfile_write(path, buf, MODEL_BYTES, err, errlen);
    free(buf);
    return rc;
}

/* Check the header; -1 with the reason. */
static int model_check_header(const unsigned char *b, const char *path, char *err, size_t errlen)
{
    if (memcmp(b, model_magic, 8) != 0) return snprintf(err, errlen, "%s: not a model file (bad magic)", path), -1;
    if (get_u32(b + 8) != MODEL_FORMAT)
        return snprintf(err, errlen, "%s: format version %u is not supported (this build reads %d)", path, get_u32(b + 8),
                        MODEL_FORMAT), -1;
    if (get_u32(b + 12) != MODEL_IN || get_u32(b + 16) != MODEL_H1 || get_u32(b + 20) != MODEL_H2 ||
        get_u32(b + 24) != MODEL_ACTIONS)
        return snprintf(err, errlen, "%s: shapes %u-%u-%u-%u, expected %d-%d-%d-%d", path, get_u32(b + 12),
                        get_u32(b + 16), get_u32(b + 20), get_u32(b + 24), MODEL_IN, MODEL_H1, MODEL_H2, MODEL_ACTIONS), -1;
    return 0;
}

int model_load(model_t *m, const char *path, char *err, size_t errlen)
{
    unsigned char *buf = malloc(MODEL_BYTES + 1), sum[32];
    model_part_t parts[8];
    model_t *tmp = calloc(1, sizeof *tmp);
    int rc = -1;
    FILE *f = fopen(path, "rb");
    size_t n = f && buf ? fread(buf, 1, MODEL_BYTES + 1, f) : 0;
    if (f) fclose(f);
    if (!buf || !tmp) snprintf(err, errlen, "out of memory");
    else if (!f) snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
    else if (n < MODEL_HEADER) snprintf(err, errlen, "%s: too short for a model (%zu bytes)", path, n);
    else if (model_check_header(buf, path, err, errlen) == 0) {
        if (n != MODEL_BYTES) snprintf(err, errlen, "%s: %zu bytes, expected %d", path, n, MODEL_BYTES);
        else if (digest_sha256(buf, MODEL_BYTES - 32, sum), memcmp(sum, buf + MODEL_BYTES - 32, 32) != 0)
            snprintf(err, errlen, "%s: checksum mismatch (damaged file)", path);
        else {
            const unsigned char *q = buf + MODEL_HEADER;
            rc = 0;
            memcpy(tmp->version, buf + 28, 63);
            for (int i = 0, np = model_parts(tmp, parts); i < np && rc == 0; i++)
                for (size_t k = 0; k < parts[i].n; k++, q += 4) {
                    uint32_t bits = get_u32(q);
                    memcpy(&parts[i].p[k], &bits, 4);
                    if (!isfinite(parts[i].p[k])) {
                        snprintf(err, errlen, "%s: weight %zu of part %d is not finite", path, k, i);
                        rc = -1;
                        break;
                    }
                }
            if (rc == 0 && !tmp->version[0]) snprintf(tmp->version, sizeof tmp->version, "unnamed");
            if (rc == 0) *m = *tmp;
        }
    }
    free(buf);
    free(tmp);
    return rc;
}

float *model_params(model_t *m)
{
    /* the float members follow the version string without padding */
    _Static_assert(sizeof(model_t) == 64 + MODEL_NPARAMS * sizeof(float), "model_t must be packed floats");
    return &m->w1[0][0];
}

void model_init_random(model_t *m, unsigned long long seed, const char *version)
{
    model_part_t parts[8];
    const double scale[8] = {1 / 8.0, 0, 1 / sqrt(128.0), 0, 0.01 / sqrt(128.0), 0, 1 / sqrt(128.0), 0};
    memset(m, 0, sizeof *m);
    snprintf(m->version, sizeof m->version, "%s", version);
    uint64_t s = seed;
    for (int i = 0, n = model_parts(m, parts); i < n; i++)
        for (size_t k = 0; k < parts[i].n; k++) {
            double u = prng_uniform(&s) * 2 - 1; /* uniform (-1, 1) */
            parts[i].p[k] = (float)(u * scale[i] * sqrt(3.0));
        }
}

/* Dot product with 8 independent partial sums (n a multiple of 8): the
 * compiler can keep them in one SIMD register; the order of additions is
 * fixed, so results are the same on every run. */
static float dot8(const float *w, const float *x, int n)
{
    float acc[8] = {0};
    for (int k = 0; k < n; k += 8)
        for (int l = 0; l < 8; l++) acc[l] += w[k + l] * x[k + l];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

float model_tanh(float xf)
{
    double x = xf;
    if (!(x > -10.0 && x < 10.0)) return isnan(x) ? xf : x > 0 ? 1.0f : -1.0f; /* 1 - tanh(10) < 2^-25 */
    /* tanh x = m / (m + 2) with m = e^t - 1, t = 2x. t = k ln2 + r with
     * |r| <= ln2 / 2 (ln2 in two parts, so k ln2 is exact); e^r - 1 =
     * r q(r) by its Taylor series to r^9 / 9! (relative error under 1e-10,
     * and no cancellation when k = 0, where tanh is small); 2^k from its
     * bits. Double arithmetic throughout, rounded to float once. */
    double t = 2.0 * x, kf = t * 1.4426950408889634;
    int64_t k = (int64_t)(kf + (kf >= 0 ? 0.5 : -0.5));
    double r = (t - (double)k * 0.693147180369123816490) - (double)k * 1.90821492927058770002e-10;
    double q = 1.0 + r * (1.0 / 2 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 + r * (1.0 / 720 + r * (1.0 / 5040 +
               r * (1.0 / 40320 + r * (1.0 / 362880))))))));
    double em1 = r * q;
    if (k != 0) {
        union { uint64_t u; double d; } two_k = {.u = (uint64_t)(k + 1023) << 52};
        em1 = (em1 + 1.0) * two_k.d - 1.0;
    }
    return (float)(em1 / (em1 + 2.0));
}

void model_forward(const model_t *m, const float obs[MODEL_IN], model_out_t *o)
{
    float mx = -INFINITY, sum = 0;
    /* each layer's sums first, then its tanh in a loop of its own: the
     * tanh of one unit does not wait for the next unit's sum */
    for (int i = 0; i < MODEL_H1; i++) o->h1[i] = m->b1[i] + dot8(m->w1[i], obs, MODEL_IN);
    for (int i = 0; i < MODEL_H1; i++) o->h1[i] = model_tanh(o->h1[i]);
    for (int i = 0; i < MODEL_H2; i++) o->h2[i] = m->b2[i] + dot8(m->w2[i], o->h1, MODEL_H1);
    for (int i = 0; i < MODEL_H2; i++) o->h2[i] = model_tanh(o->h2[i]);
    o->value = m->bv + dot8(m->wv, o->h2, MODEL_H2);
    for (int j = 0; j < MODEL_ACTIONS; j++) {
        float a = m->bpi[j] + dot8(m->wpi[j], o->h2, MODEL_H2);
        o->logits[j] = a;
        if (a > mx) mx = a;
    }
    for (int j = 0; j < MODEL_ACTIONS; j++) sum += o->probs[j] = expf(o->logits[j] - mx);
    for (int j = 0; j < MODEL_ACTIONS; j++) o->probs[j] /= sum;
}
