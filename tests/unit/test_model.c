/* Unit tests: the PPO model file (round trip, every load error) and the
 * forward pass (a distribution, deterministic). */
#include "check.h"
#include "model.h"

#include <unistd.h>

static model_t m, back;
static char path[64];

static void tamper(long offset, const void *bytes, size_t n, long truncate_to)
{
    FILE *f = fopen(path, "r+b");
    if (offset >= 0) {
        fseek(f, offset, SEEK_SET);
        fwrite(bytes, 1, n, f);
    }
    fclose(f);
    if (truncate_to >= 0 && truncate(path, truncate_to) != 0) CHECK_FAIL_AT("truncate");
}

static void fresh(void)
{
    char err[256];
    model_init_random(&m, 42, "test-v1");
    CHECK_EQ(model_save(&m, path, err, sizeof err), 0);
}

TEST(round_trip_and_forward)
{
    char err[256];
    float obs[MODEL_IN];
    model_out_t a, b;
    snprintf(path, sizeof path, "/tmp/qt-model-%d.bin", (int)getpid());
    fresh();
    CHECK_EQ(model_load(&back, path, err, sizeof err), 0);
    CHECK_STR(back.version, "test-v1");
    CHECK(memcmp(&m, &back, sizeof m) == 0);
    for (int i = 0; i < MODEL_IN; i++) obs[i] = (float)sin(i * 0.7);
    model_forward(&back, obs, &a);
    model_forward(&back, obs, &b);
    CHECK(memcmp(&a, &b, sizeof a) == 0); /* deterministic */
    float sum = 0;
    for (int j = 0; j < MODEL_ACTIONS; j++) {
        sum += a.probs[j];
        CHECK(a.probs[j] > 0);
    }
    CHECK_NEAR(sum, 1.0, 1e-6);
    model_init_random(&back, 43, "other");
    CHECK(memcmp(&m.w1, &back.w1, sizeof m.w1) != 0); /* the seed matters */
}

static void expect_refused(const char *want)
{
    char err[256] = "";
    CHECK_EQ(model_load(&back, path, err, sizeof err), -1);
    CHECK_CONTAINS(err, want);
    CHECK_CONTAINS(err, path); /* the message names the file */
}

TEST(every_load_error_is_named)
{
    char err[256];
    CHECK_EQ(model_load(&back, "/nonexistent/model.bin", err, sizeof err), -1);
    CHECK_CONTAINS(err, "cannot open /nonexistent/model.bin");
    fresh();
    tamper(0, "XX", 2, -1);
    expect_refused("bad magic");
    fresh();
    unsigned char v9[4] = {9, 0, 0, 0};
    tamper(8, v9, 4, -1);
    expect_refused("format version 9 is not supported");
    fresh();
    unsigned char h[4] = {64, 0, 0, 0};
    tamper(16, h, 4, -1);
    expect_refused("shapes 64-64-128-6, expected 64-128-128-6");
    fresh();
    tamper(-1, NULL, 0, 5000);
    expect_refused("5000 bytes, expected");
    fresh();
    unsigned char x = 0x5a;
    tamper(500, &x, 1, -1);
    expect_refused("checksum mismatch");
    model_init_random(&m, 42, "nan");
    m.w2[3][7] = NAN;
    CHECK_EQ(model_save(&m, path, err, sizeof err), 0);
    expect_refused("is not finite");
    unlink(path);
}

TEST(the_shipped_default_model_loads)
{
    char err[256];
    CHECK_EQ(model_load(&back, "models/ppo-default.bin", err, sizeof err), 0); /* run from the repository root */
    CHECK_STR(back.version, "ppo-synth-s42-i150");
}

CHECK_MAIN()
