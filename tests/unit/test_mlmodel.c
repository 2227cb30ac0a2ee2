/* Unit tests: ensemble member files (round trip, every load error named) and
 * inference of each learner kind against hand-computed values. */
#include "check.h"
#include "mlmodel.h"

#include <math.h>
#include <unistd.h>

static char path[64];

static void expect_refused(const char *why)
{
    mlm_t m;
    char err[512];
    CHECK_EQ(mlm_load(&m, path, err, sizeof err), -1);
    CHECK_CONTAINS(err, path);
    CHECK_CONTAINS(err, why);
}

static void tamper(long offset, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "r+b");
    fseek(f, offset, SEEK_SET);
    fwrite(bytes, 1, n, f);
    fclose(f);
}

/* depth-1 trees, one round: LONG's tree splits input 5 at 0.5. */
static void stump(mlm_t *m)
{
    CHECK_EQ(mlm_alloc(m, MLM_GBDT, "stump", "t-1", 1, 1, 1), 0);
    m->ints[0] = 5;                           /* idx */
    m->ints[1] = m->ints[2] = m->ints[3] = 0; /* each tree splits local input 0 */
    float *base = m->floats, *thr = base + 3, *leaf = thr + 3;
    base[0] = 0.1f, base[1] = -0.2f, base[2] = 0.3f;
    thr[0] = 0.5f, thr[1] = 0.5f, thr[2] = 0.5f;
    leaf[0] = -1.0f, leaf[1] = 2.0f; /* LONG: left, right */
}

TEST(gbdt_softmax_and_mlp_compute_what_they_should)
{
    float x[MLM_NX] = {0};
    double p[3];
    mlm_t m;
    stump(&m);
    x[5] = 1.0f; /* right: LONG gets +2 */
    mlm_predict(&m, x, p);
    double z[3] = {2.1, -0.2, 0.3}, s = exp(z[0]) + exp(z[1]) + exp(z[2]);
    for (int k = 0; k < 3; k++) CHECK_NEAR(p[k], exp(z[k]) / s, 1e-6);
    mlm_free(&m);
    CHECK_EQ(mlm_alloc(&m, MLM_SOFTMAX, "lr", "t-1", 1, 0, 0), 0);
    m.ints[0] = 3;
    m.floats[0] = 1.0f, m.floats[1] = 2.0f; /* mean, sd */
    m.floats[2] = 1.5f;                     /* W[LONG][0]; W[SHORT], W[HOLD] = 0 */
    m.floats[5 + 1] = 0.25f;                /* b[SHORT] */
    x[3] = 5.0f;                            /* standardised: 2 → z = (3, 0.25, 0) */
    mlm_predict(&m, x, p);
    s = exp(3) + exp(0.25) + 1;
    CHECK_NEAR(p[0], exp(3) / s, 1e-6);
    CHECK_NEAR(p[2], 1 / s, 1e-6);
    mlm_free(&m);
    CHECK_EQ(mlm_alloc(&m, MLM_MLP, "mlp", "t-1", 1, 1, 0), 0);
    m.ints[0] = 3;
    m.floats[0] = 0, m.floats[1] = 1;  /* mean, sd */
    m.floats[2] = 0.5f;                /* W1 */
    m.floats[3] = 0;                   /* b1 */
    m.floats[4 + 1] = 2.0f;            /* W2[SHORT][0] */
    mlm_predict(&m, x, p);             /* h = tanh(2.5), z = (0, 2h, 0) */
    double h = tanh(2.5);
    s = 2 + exp(2 * h);
    CHECK_NEAR(p[1], exp(2 * h) / s, 1e-6);
    mlm_free(&m);
}

TEST(round_trip_keeps_every_number)
{
    mlm_t m, back;
    char err[512];
    float x[MLM_NX] = {0};
    double p[3], q[3];
    stump(&m);
    CHECK_EQ(mlm_save(&m, path, err, sizeof err), 0);
    CHECK_EQ(mlm_load(&back, path, err, sizeof err), 0);
    CHECK_STR(back.name, "stump");
    CHECK_STR(back.version, "t-1");
    CHECK_EQ(back.kind, MLM_GBDT);
    mlm_predict(&m, x, p), mlm_predict(&back, x, q);
    for (int k = 0; k < 3; k++) CHECK_NEAR(p[k], q[k], 0);
    mlm_free(&m), mlm_free(&back);
}

TEST(every_load_error_is_named)
{
    mlm_t m;
    char err[512];
    CHECK_EQ(mlm_load(&m, "/nonexistent/member.bin", err, sizeof err), -1);
    CHECK_CONTAINS(err, "cannot open /nonexistent/member.bin");
    stump(&m);
    mlm_save(&m, path, err, sizeof err);
    tamper(0, "XX", 2);
    expect_refused("bad magic");
    mlm_save(&m, path, err, sizeof err);
    unsigned char v2[4] = {2, 0, 0, 0};
    tamper(8, v2, 4);
    expect_refused("format version 2 is not supported (this build reads 1)");
    mlm_save(&m, path, err, sizeof err);
    unsigned char k9[4] = {9, 0, 0, 0};
    tamper(12, k9, 4);
    expect_refused("unknown learner kind 9");
    mlm_save(&m, path, err, sizeof err);
    unsigned char d11[4] = {11, 0, 0, 0};
    tamper(152, d11, 4);
    expect_refused("depth 11");
    mlm_save(&m, path, err, sizeof err);
    if (truncate(path, 100) != 0) CHECK_FAIL_AT("truncate");
    expect_refused("too short");
    mlm_save(&m, path, err, sizeof err);
    unsigned char z = 0x5a;
    tamper(175, &z, 1);
    expect_refused("checksum mismatch");
    m.ints[0] = 64; /* past the 64 inputs */
    mlm_save(&m, path, err, sizeof err);
    expect_refused("index 64 at 0 is out of range");
    m.ints[0] = 5, m.floats[4] = NAN;
    mlm_save(&m, path, err, sizeof err);
    expect_refused("weight 4 is not finite");
    mlm_free(&m);
    unlink(path);
}

TEST(the_shipped_members_load)
{
    static const char *files[] = {"models/ml/gbdt-deep.bin", "models/ml/gbdt-shallow.bin", "models/ml/softmax.bin", "models/ml/mlp-returns.bin"};
    static const int kinds[] = {MLM_GBDT, MLM_GBDT, MLM_SOFTMAX, MLM_MLP};
    char err[512];
    for (int i = 0; i < 4; i++) {
        mlm_t m;
        CHECK_EQ(mlm_load(&m, files[i], err, sizeof err), 0); /* run from the repository root */
        CHECK_EQ(m.kind, kinds[i]);
        CHECK_STR(m.version, "ml-default-1");
        mlm_free(&m);
    }
}

__attribute__((constructor)) static void setup(void)
{
    snprintf(path, sizeof path, "/tmp/qt-mlm-%d.bin", (int)getpid());
}

CHECK_MAIN()
