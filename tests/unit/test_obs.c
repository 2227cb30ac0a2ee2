/* Unit tests: the observation layout is fixed (names at their indices) and
 * the observation of a fixed series is stable (golden values). */
#include "check.h"
#include "feature_layout.h"
#include "obs.h"

TEST(layout_is_fixed)
{
    static const struct { int i; const char *name; } pinned[] = {
        {0, "ret_1"}, {1, "ret_5"}, {2, "ret_15"}, {3, "vol_20"}, {4, "rsi_14"}, {5, "macd"}, {8, "bb_position"},
        {14, "atr_14_pct"}, {15, "adx_14"}, {16, "regime_trending"}, {23, "vol_unknown"}, {24, "position_side"},
        {27, "time_in_trade"}, {28, "ret_lag_0"}, {47, "ret_lag_19"}, {48, "bar_range_pct"}, {49, "close_in_range"},
        {50, "reserved_50"}, {63, "reserved_63"}};
    CHECK_EQ(FEATURES_DIM, 64);
    CHECK_EQ(FEATURES_VERSION, 1);
    for (int i = 0; i < FEATURES_DIM; i++) CHECK_EQ(features_layout[i].index, i);
    for (size_t k = 0; k < sizeof pinned / sizeof pinned[0]; k++) CHECK_STR(features_layout[pinned[k].i].name, pinned[k].name);
}

TEST(observation_of_a_fixed_series)
{
    obs_state_t st;
    float o[FEATURES_DIM];
    double p = 100;
    obs_init(&st);
    for (int i = 0; i < 80; i++) {
        double c = p * (1 + 0.002 * sin(i * 0.5));
        obs_update(&st, fmax(p, c) * 1.001, fmin(p, c) * 0.999, c);
        p = c;
    }
    position_info_t pos = {1, 0.02, 1.5, 6};
    obs_build(&st, &pos, o);
    for (int i = 0; i < FEATURES_DIM; i++) CHECK(isfinite(o[i]));
    CHECK_NEAR(o[4], (st.ind.rsi14 - 50) / 50, 1e-6);
    CHECK_NEAR(o[0], log(ind_close(&st.ind, 0) / ind_close(&st.ind, 1)) * 100, 1e-5);
    CHECK_NEAR(o[24], 1, 0);
    CHECK_NEAR(o[25], 0.02, 1e-7);
    CHECK_NEAR(o[26], 0.15, 1e-7);
    CHECK_NEAR(o[27], 0.25, 1e-7);
    CHECK_NEAR(o[16] + o[17] + o[18], 1, 0); /* one-hot */
    CHECK_NEAR(o[19] + o[20] + o[21] + o[22] + o[23], 1, 0);
    for (int i = 50; i < 64; i++) CHECK_NEAR(o[i], 0, 0);
    obs_state_t empty;
    obs_init(&empty);
    obs_build(&empty, NULL, o); /* nothing seen yet: all zeros */
    for (int i = 0; i < FEATURES_DIM; i++) CHECK_NEAR(o[i], 0, 0);
}

/* OBS_WARMUP is the first bar count at which no input of the observation
 * is missing (a signal service decides from then on). */
TEST(windows_are_full_exactly_at_the_warm_up)
{
    obs_state_t st;
    double p = 100;
    obs_init(&st);
    for (int i = 1; i <= OBS_WARMUP + 10; i++) {
        double c = p * (1 + 0.003 * sin(i * 0.7) + 0.001 * cos(i * 1.3));
        CHECK_EQ(obs_update(&st, fmax(p, c) * 1.001, fmin(p, c) * 0.999, c), 0);
        p = c;
        if (i < OBS_WARMUP) CHECK(obs_missing(&st) > 0);
        else CHECK_EQ(obs_missing(&st), 0);
    }
}

CHECK_MAIN()
