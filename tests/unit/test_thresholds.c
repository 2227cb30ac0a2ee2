/* Unit tests: adaptive thresholds — the minimum number of trades, the
 * adaptation interval on event time, conservative mode and its end. */
#include "check.h"
#include "thresholds.h"

#define HOUR 3600000LL

static thr_t fresh(void)
{
    thr_config_t c = {0.6, 0.02, 1.5, 10, 3600 * 1000LL};
    thr_t t;
    thr_init(&t, &c);
    return t;
}

TEST(nothing_changes_before_ten_trades)
{
    thr_t t = fresh();
    for (int k = 1; k <= 9; k++) CHECK_EQ(thr_observe(&t, -1.0, k * HOUR), 0);
    CHECK_NEAR(t.min_confidence, 0.6, 1e-12);
    CHECK_EQ(t.conservative, 0);
    CHECK_EQ(thr_observe(&t, -1.0, 10 * HOUR), 1); /* the 10th: all lost → conservative */
    CHECK_EQ(t.conservative, 1);
    CHECK_NEAR(t.min_confidence, 0.7, 1e-12);
    CHECK_NEAR(t.max_position, 0.01, 1e-12);
    CHECK_NEAR(t.sl_multiplier, 1.2, 1e-12);
    CHECK_CONTAINS(t.reason, "conservative");
    CHECK_CONTAINS(t.reason, "win_rate=0.00");
}

TEST(at_most_one_evaluation_per_interval)
{
    thr_t t = fresh();
    for (int k = 1; k <= 10; k++) thr_observe(&t, 1.0, 1000 + k); /* all within one minute */
    CHECK_EQ(t.conservative, 0);
    CHECK_EQ(t.last_eval, 1010);
    for (int k = 0; k < 10; k++) CHECK_EQ(thr_observe(&t, -2.0, 2000 + k), 0); /* losses, same hour: no change */
    CHECK_EQ(t.conservative, 0);
    CHECK_EQ(thr_observe(&t, -2.0, 1010 + HOUR), 1); /* an hour later */
    CHECK_EQ(t.conservative, 1);
}

TEST(conservative_mode_ends_on_recovery_and_strong_lowers_the_bar)
{
    thr_t t = fresh();
    int64_t now = 0;
    for (int k = 0; k < 10; k++) thr_observe(&t, -1.0, now += HOUR);
    CHECK_EQ(t.conservative, 1);
    for (int k = 0; k < 9; k++) thr_observe(&t, 1.0, now += HOUR); /* 9 wins of 19 after the 10 losses... */
    CHECK_EQ(t.conservative, 1);                                     /* win rate 9/20 < 0.5 */
    CHECK_EQ(thr_observe(&t, 1.0, now += HOUR), 1);                  /* 10/20 and pf 1.0: back */
    CHECK_EQ(t.conservative, 0);
    CHECK_NEAR(t.min_confidence, 0.6, 1e-12);
    CHECK_NEAR(t.max_position, 0.02, 1e-12);
    for (int k = 0; k < 10; k++) thr_observe(&t, 1.0, now += HOUR); /* 20 of 20 */
    CHECK_NEAR(t.min_confidence, 0.55, 1e-12);
    CHECK_CONTAINS(t.reason, "strong");
}

TEST(state_round_trips_through_json)
{
    thr_t t = fresh(), u = fresh();
    for (int k = 0; k < 25; k++) thr_observe(&t, k % 2 ? 1.0 : -3.0, (k + 1) * HOUR);
    json_t *j = thr_to_json(&t);
    CHECK_EQ(thr_from_json(&u, j), 0);
    CHECK_EQ(u.total, 25);
    CHECK_EQ(u.conservative, t.conservative);
    CHECK_NEAR(u.min_confidence, t.min_confidence, 1e-12);
    CHECK_STR(u.reason, t.reason);
    CHECK_EQ(thr_observe(&t, 5, 30 * HOUR), thr_observe(&u, 5, 30 * HOUR));
    CHECK_NEAR(u.win_rate, t.win_rate, 1e-12);
    json_object_set_new(j, "max_position_size", json_real(0));
    CHECK_EQ(thr_from_json(&u, j), -1);
    json_decref(j);
}

CHECK_MAIN()
