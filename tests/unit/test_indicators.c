/* Unit tests: indicators against hand-computed cases and against reference
 * values from an independent, straightforward implementation of the same
 * textbook definitions (kept as fixtures). */
#include "check.h"
#include "indicators.h"

/* 60 closes of a seeded random walk; high = close x 1.004, low = close x 0.995 (rounded to 4 decimals). */
static const double closes[60] = {100.0, 99.7441, 100.2542, 100.0275, 99.7123, 98.785, 98.5743, 99.6704, 100.0931, 101.1309, 101.3826, 101.7828, 101.9714, 100.2725, 101.1301, 101.6422, 102.1492, 100.4215, 98.6703, 97.7925, 97.3346, 97.6319, 97.5871, 98.0955, 97.4655, 97.7664, 98.1518, 97.5029, 99.1775, 99.7295, 100.9233, 100.2972, 99.5555, 99.213, 99.1074, 99.7338, 99.9816, 99.5343, 98.5818, 98.0686, 99.2659, 98.4639, 98.7049, 99.1259, 97.6492, 97.6965, 98.9727, 96.979, 96.6671, 96.5645, 95.7753, 96.2517, 96.1918, 94.7829, 95.5676, 96.2073, 97.1173, 98.5164, 98.8733, 98.9912};

static double r4(double x) { return round(x * 1e4) / 1e4; }

TEST(reference_values_after_60_bars)
{
    indicators_t s;
    ind_init(&s);
    for (int i = 0; i < 60; i++) CHECK_EQ(ind_update(&s, r4(closes[i] * 1.004), r4(closes[i] * 0.995), closes[i]), 0);
    CHECK_NEAR(s.sma20, 97.418220000000, 1e-9);
    CHECK_NEAR(s.ema20_v, 97.587878633068, 1e-9);
    CHECK_NEAR(s.rsi14, 56.871342217813, 1e-9);
    CHECK_NEAR(s.macd, -0.263579809627, 1e-9);
    CHECK_NEAR(s.macd_sig, -0.618813497036, 1e-9);
    CHECK_NEAR(s.macd_hist, 0.355233687409, 1e-9);
    CHECK_NEAR(s.bb_upper, 100.116381876982, 1e-9);
    CHECK_NEAR(s.bb_lower, 94.720058123018, 1e-9);
    CHECK_NEAR(s.bb_middle, 97.418220000000, 1e-9);
    CHECK_NEAR(s.roc10, 2.513035328718, 1e-9);
    CHECK_NEAR(s.mom10, 2.4267, 1e-9);
    CHECK_NEAR(s.atr14, 1.214525164399, 1e-9);
    CHECK_NEAR(s.vol20, 0.009440855947, 1e-12);
}

TEST(windows_fill_at_the_right_bar)
{
    indicators_t s;
    ind_init(&s);
    for (int i = 0; i < 60; i++) {
        ind_update(&s, r4(closes[i] * 1.004), r4(closes[i] * 0.995), closes[i]);
        int bar = i + 1;
        CHECK(isnan(s.sma20) == (bar < 20));
        CHECK(isnan(s.ema20_v) == (bar < 20));
        CHECK(isnan(s.rsi14) == (bar < 15));  /* 14 changes */
        CHECK(isnan(s.atr14) == (bar < 15));  /* 14 true ranges */
        CHECK(isnan(s.macd) == (bar < 26));
        CHECK(isnan(s.macd_sig) == (bar < 34)); /* 9 MACD values */
        CHECK(isnan(s.roc10) == (bar < 11));
        CHECK(isnan(s.vol20) == (bar < 21));
    }
}

TEST(hand_computed_linear_and_flat_series)
{
    indicators_t s;
    ind_init(&s);
    for (int i = 1; i <= 25; i++) ind_update(&s, i + 0.5, i - 0.5, i); /* closes 1..25 */
    CHECK_NEAR(s.sma20, 15.5, 1e-12);                    /* mean of 6..25 */
    CHECK_NEAR(s.bb_upper - s.sma20, 2 * sqrt(399.0 / 12), 1e-9); /* population sd of 20 consecutive integers */
    CHECK_NEAR(s.roc10, (25.0 - 15) / 15 * 100, 1e-12);
    CHECK_NEAR(s.mom10, 10, 1e-12);
    CHECK_NEAR(s.rsi14, 100, 1e-12);                     /* no losses */
    CHECK_NEAR(s.atr14, 1.5, 1e-12);                     /* |high - previous close| = 1.5 each bar */
    CHECK_NEAR(ind_close(&s, 0), 25, 0);
    CHECK_NEAR(ind_close(&s, 24), 1, 0);
    CHECK(isnan(ind_close(&s, 25)));
    indicators_t f;
    ind_init(&f);
    for (int i = 0; i < 30; i++) ind_update(&f, 10, 10, 10);
    CHECK_NEAR(f.rsi14, 50, 0); /* no movement at all */
    CHECK_NEAR(f.vol20, 0, 0);
    CHECK_NEAR(f.macd, 0, 1e-15);
    CHECK_EQ(ind_update(&f, 10, 11, 10), -1); /* low above high: refused */
    CHECK_EQ(ind_update(&f, 0, 0, 0), -1);
}

TEST(rsi_matches_the_published_wilder_example)
{
    /* StockCharts' ChartSchool RSI example (Wilder's method): its published
     * values were computed from rounded averages, hence the 0.1 tolerance. */
    static const double c[] = {44.34, 44.09, 44.15, 43.61, 44.33, 44.83, 45.10, 45.42, 45.84, 46.08, 45.89,
                               46.03, 45.61, 46.28, 46.28, 46.00, 46.03, 46.41, 46.22, 45.64, 46.21, 46.25,
                               45.71, 46.45, 45.78, 45.35, 44.03, 44.18, 44.22, 44.57, 43.42, 42.66, 43.13};
    static const double rsi[] = {70.53, 66.32, 66.55, 69.41, 66.36, 57.97, 62.93, 63.26, 56.06, 62.38,
                                 54.71, 50.42, 39.99, 41.46, 41.87, 45.46, 37.30, 33.08, 37.77};
    indicators_t s;
    ind_init(&s);
    for (int i = 0; i < 33; i++) {
        ind_update(&s, c[i], c[i], c[i]);
        if (i >= 14) CHECK_NEAR(s.rsi14, rsi[i - 14], 0.1);
    }
}

CHECK_MAIN()
