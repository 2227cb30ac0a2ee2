/* mlmodel.c — ensemble member models: inputs, inference, file format (see mlmodel.h). */
#include "mlmodel.h"
#include "atomicfile.h"
#include "digest.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char mlm_magic[8] = {'Q', 'T', 'E', 'N', 'S', 0, 0, 1};
#define MLM_FORMAT 1
#define MLM_HEAD (8 + 4 + 4 + 64 + 64 + 3 * 4)
#define MLM_MAX_FILE (64u << 20)

const char *const mlm_class_names[MLM_CLASSES] = {"LONG", "SHORT", "HOLD"};

const char *mlm_kind_name(int kind)
{
    return kind == MLM_GBDT ? "gbdt" : kind == MLM_SOFTMAX ? "softmax" : kind == MLM_MLP ? "mlp" : "unknown";
}

int mlm_inputs(const obs_state_t *s, float x[MLM_NX])
{
    if (s->ind.bars < MLM_WARMUP) return -1;
    obs_build(s, NULL, x);
    return 0;
}

/* ---------- inference ---------- */

static void mlm_softmax(double z[MLM_CLASSES], double p[MLM_CLASSES])
{
    double mx = z[0], s = 0;
    for (int k = 1; k < MLM_CLASSES; k++) mx = z[k] > mx ? z[k] : mx;
    for (int k = 0; k < MLM_CLASSES; k++) s += p[k] = exp(z[k] - mx);
    for (int k = 0; k < MLM_CLASSES; k++) p[k] /= s;
}

/* Standardised selected inputs into u[nfeat]. */
static void mlm_standardise(const mlm_t *m, const float *x, double *u)
{
    const float *mean = m->floats, *sd = m->floats + m->nfeat;
    for (uint32_t j = 0; j < m->nfeat; j++) u[j] = (x[m->ints[j]] - mean[j]) / sd[j];
}

static void mlm_predict_softmax(const mlm_t *m, const float *x, double z[MLM_CLASSES])
{
    double u[MLM_NX];
    const float *w = m->floats + 2 * m->nfeat, *b = w + MLM_CLASSES * m->nfeat;
    mlm_standardise(m, x, u);
    for (int k = 0; k < MLM_CLASSES; k++) {
        z[k] = b[k];
        for (uint32_t j = 0; j < m->nfeat; j++) z[k] += w[k * m->nfeat + j] * u[j];
    }
}

static void mlm_predict_mlp(const mlm_t *m, const float *x, double z[MLM_CLASSES])
{
    double u[MLM_NX], h[1024];
    uint32_t nf = m->nfeat, nh = m->p1;
    const float *w1 = m->floats + 2 * nf, *b1 = w1 + nh * nf, *w2 = b1 + nh, *b2 = w2 + MLM_CLASSES * nh;
    mlm_standardise(m, x, u);
    for (uint32_t i = 0; i < nh; i++) {
        double a = b1[i];
        for (uint32_t j = 0; j < nf; j++) a += w1[i * nf + j] * u[j];
        h[i] = tanh(a);
    }
    for (int k = 0; k < MLM_CLASSES; k++) {
        z[k] = b2[k];
        for (uint32_t i = 0; i < nh; i++) z[k] += w2[k * nh + i] * h[i];
    }
}

static void mlm_predict_gbdt(const mlm_t *m, const float *x, double z[MLM_CLASSES])
{
    uint32_t trees = m->p1 * MLM_CLASSES, ni = (1u << m->p2) - 1, nl = 1u << m->p2;
    const uint32_t *feat = m->ints + m->nfeat;
    const float *thr = m->floats + MLM_CLASSES, *leaf = thr + trees * ni;
    for (int k = 0; k < MLM_CLASSES; k++) z[k] = m->floats[k];
    for (uint32_t t = 0; t < trees; t++) {
        uint32_t node = 0;
        while (node < ni) node = 2 * node + (x[m->ints[feat[t * ni + node]]] <= thr[t * ni + node] ? 1 : 2);
        z[t % MLM_CLASSES] += leaf[t * nl + (node - ni)];
    }
}

void mlm_predict(const mlm_t *m, const float x[MLM_NX], double probs[MLM_CLASSES])
{
    double z[MLM_CLASSES] = {0};
    if (m->kind == MLM_GBDT) mlm_predict_gbdt(m, x, z);
    else if (m->kind == MLM_SOFTMAX) mlm_predict_softmax(m, x, z);
    else mlm_predict_mlp(m, x, z);
    mlm_softmax(z, probs);
}

/* ---------- shapes ---------- */

/* Expected array sizes for a kind and shapes; -1 with the reason if invalid. */
static int mlm_shapes(int kind, uint32_t nf, uint32_t p1, uint32_t p2, uint32_t *nints, uint32_t *nfloats, char *err,
                      size_t errlen)
{
    const uint32_t K = MLM_CLASSES;
    if (nf < 1 || nf > MLM_NX) return snprintf(err, errlen, "%u inputs (1..%d allowed)", nf, MLM_NX), -1;
    if (kind == MLM_SOFTMAX) {
        *nints = nf, *nfloats = 2 * nf + K * nf + K;
    } else if (kind == MLM_MLP) {
        if (p1 < 1 || p1 > 1024) return snprintf(err, errlen, "%u hidden units (1..1024 allowed)", p1), -1;
        *nints = nf, *nfloats = 2 * nf + p1 * nf + p1 + K * p1 + K;
    } else if (kind == MLM_GBDT) {
        if (p1 < 1 || p1 > 5000 || p2 < 1 || p2 > 10)
            return snprintf(err, errlen, "%u rounds of depth %u (1..5000 rounds, depth 1..10 allowed)", p1, p2), -1;
        uint32_t trees = p1 * K;
        *nints = nf + trees * ((1u << p2) - 1), *nfloats = K + trees * ((1u << p2) - 1) + trees * (1u << p2);
    } else {
        return snprintf(err, errlen, "unknown learner kind %d", kind), -1;
    }
    return 0;
}

int mlm_alloc(mlm_t *m, int kind, const char *name, const char *version, uint32_t nfeat, uint32_t p1, uint32_t p2)
{
    char err[128];
    memset(m, 0, sizeof *m);
    if (mlm_shapes(kind, nfeat, p1, p2, &m->nints, &m->nfloats, err, sizeof err) < 0) return -1;
    m->kind = kind, m->nfeat = nfeat, m->p1 = p1, m->p2 = p2;
    snprintf(m->name, sizeof m->name, "%s", name);
    snprintf(m->version, sizeof m->version, "%s", version);
    m->ints = calloc(m->nints, sizeof *m->ints);
    m->floats = calloc(m->nfloats, sizeof *m->floats);
    if (!m->ints || !m->floats) return mlm_free(m), -1;
    return 0;
}

void mlm_free(mlm_t *m)
{
    free(m->ints);
    free(m->floats);
    m->ints = NULL, m->floats = NULL;
}

/* ---------- file format ---------- */

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static size_t mlm_file_size(const mlm_t *m)
{
    return MLM_HEAD + 4 + 4 * (size_t)m->nints + 4 + 4 * (size_t)m->nfloats + 32;
}

int mlm_save(const mlm_t *m, const char *path, char *err, size_t errlen)
{
    size_t size = mlm_file_size(m);
    unsigned char *buf = calloc(1, size), *q;
    if (!buf) return snprintf(err, errlen, "out of memory"), -1;
    memcpy(buf, mlm_magic, 8);
    put_u32(buf + 8, MLM_FORMAT), put_u32(buf + 12, (uint32_t)m->kind);
    memcpy(buf + 16, m->name, strnlen(m->name, 63));
    memcpy(buf + 80, m->version, strnlen(m->version, 63));
    put_u32(buf + 144, m->nfeat), put_u32(buf + 148, m->p1), put_u32(buf + 152, m->p2);
    q = buf + MLM_HEAD;
    put_u32(q, m->nints), q += 4;
    for (uint32_t i = 0; i < m->nints; i++, q += 4) put_u32(q, m->ints[i]);
    put_u32(q, m->nfloats), q += 4;
    for (uint32_t i = 0; i < m->nfloats; i++, q += 4) {
        uint32_t bits;
        memcpy(&bits, &m->floats[i], 4);
        put_u32(q, bits);
    }
    digest_sha256(buf, (size_t)(q - buf), q);
    int rc = atomicfile_write(path, buf, size, err, errlen);
    free(buf);
    return rc;
}

/* The whole file, malloc'd, at most MLM_MAX_FILE bytes. */
static unsigned char *mlm_read(const char *path, size_t *n, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    if (!f) return snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno)), NULL;
    if (!(buf = malloc(MLM_MAX_FILE + 1))) snprintf(err, errlen, "out of memory");
    else if ((*n = fread(buf, 1, MLM_MAX_FILE + 1, f)) > MLM_MAX_FILE)
        snprintf(err, errlen, "%s: larger than %u bytes", path, MLM_MAX_FILE), free(buf), buf = NULL;
    fclose(f);
    return buf;
}

/* Header fields into m and its arrays allocated; -1 with the reason. */
static int mlm_parse_header(mlm_t *m, const unsigned char *b, size_t n, const char *path, char *err, size_t errlen)
{
    char why[128];
    if (n < MLM_HEAD + 8 + 32 || memcmp(b, mlm_magic, 8) != 0)
        return snprintf(err, errlen, "%s: not an ensemble member file (bad magic or too short)", path), -1;
    if (get_u32(b + 8) != MLM_FORMAT)
        return snprintf(err, errlen, "%s: format version %u is not supported (this build reads %d)", path,
                        get_u32(b + 8), MLM_FORMAT), -1;
    char name[64] = "", version[64] = "";
    memcpy(name, b + 16, 63), memcpy(version, b + 80, 63);
    int kind = (int)get_u32(b + 12);
    uint32_t nints, nfloats;
    if (mlm_shapes(kind, get_u32(b + 144), get_u32(b + 148), get_u32(b + 152), &nints, &nfloats, why, sizeof why) < 0)
        return snprintf(err, errlen, "%s: bad shapes: %s", path, why), -1;
    if (!name[0]) return snprintf(err, errlen, "%s: the model has no name", path), -1;
    if (mlm_alloc(m, kind, name, version[0] ? version : "unnamed", get_u32(b + 144), get_u32(b + 148), get_u32(b + 152)) < 0)
        return snprintf(err, errlen, "out of memory"), -1;
    if (mlm_file_size(m) != n || get_u32(b + MLM_HEAD) != nints)
        return snprintf(err, errlen, "%s: %zu bytes, expected %zu for its shapes", path, n, mlm_file_size(m)), -1;
    return 0;
}

/* Arrays from the body, with range checks; -1 with the reason. */
static int mlm_parse_body(mlm_t *m, const unsigned char *b, const char *path, char *err, size_t errlen)
{
    const unsigned char *q = b + MLM_HEAD + 4;
    for (uint32_t i = 0; i < m->nints; i++, q += 4) {
        m->ints[i] = get_u32(q);
        uint32_t limit = i < m->nfeat ? MLM_NX : m->nfeat;
        if (m->ints[i] >= limit) return snprintf(err, errlen, "%s: index %u at %u is out of range", path, m->ints[i], i), -1;
    }
    if (get_u32(q) != m->nfloats) return snprintf(err, errlen, "%s: float count does not match its shapes", path), -1;
    q += 4;
    for (uint32_t i = 0; i < m->nfloats; i++, q += 4) {
        uint32_t bits = get_u32(q);
        memcpy(&m->floats[i], &bits, 4);
        if (!isfinite(m->floats[i])) return snprintf(err, errlen, "%s: weight %u is not finite", path, i), -1;
    }
    for (uint32_t j = 0; m->kind != MLM_GBDT && j < m->nfeat; j++)
        if (!(m->floats[m->nfeat + j] > 0)) return snprintf(err, errlen, "%s: scale of input %u is not positive", path, j), -1;
    return 0;
}

int mlm_load(mlm_t *m, const char *path, char *err, size_t errlen)
{
    size_t n = 0;
    unsigned char sum[32], *buf = mlm_read(path, &n, err, errlen);
    mlm_t tmp = {0};
    int rc = -1;
    if (!buf) return -1;
    if (mlm_parse_header(&tmp, buf, n, path, err, errlen) == 0) {
        digest_sha256(buf, n - 32, sum);
        if (memcmp(sum, buf + n - 32, 32) != 0) snprintf(err, errlen, "%s: checksum mismatch (damaged file)", path);
        else rc = mlm_parse_body(&tmp, buf, path, err, errlen);
    }
    free(buf);
    if (rc < 0) mlm_free(&tmp);
    else *m = tmp;
    return rc;
}
