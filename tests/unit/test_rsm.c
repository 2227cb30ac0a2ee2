/* Unit tests: the Reinforcement Signal Manager's weight update, clamps,
 * renormalisation, exploration schedule, calibration and health. */
#include "check.h"
#include "rsm.h"

static const char *names[] = {"xgb", "lgbm", "nhits", "patchtst"};

static rsm_t fresh(void)
{
    rsm_config_t c;
    rsm_t r;
    rsm_config_default(&c);
    rsm_init(&r, &c, names, NULL, 4);
    return r;
}

static double total(const rsm_t *r)
{
    double s = 0;
    for (int i = 0; i < r->nmodels; i++) s += r->models[i].weight;
    return s;
}

TEST(defaults_are_the_seeds)
{
    rsm_t r = fresh();
    CHECK_NEAR(r.cfg.lr, 0.05, 1e-12);
    CHECK_NEAR(r.cfg.discount, 0.95, 1e-12);
    CHECK_NEAR(rsm_exploration(&r), 0.20, 1e-12);
    CHECK_NEAR(total(&r), 1.0, 1e-12);
    CHECK_NEAR(r.models[2].weight, 0.25, 1e-12);
    CHECK_NEAR(rsm_brier(&r.models[0]), 0.25, 1e-12);
    CHECK_NEAR(rsm_scaler(&r, &r.models[0]), 1.0, 1e-12);
}

TEST(wrong_voter_loses_weight_and_right_voters_gain)
{
    rsm_t r = fresh();
    rsm_vote_t v[] = {{"xgb", "LONG", 0.8}, {"lgbm", "LONG", 0.7}, {"nhits", "SHORT", 0.9}, {"patchtst", "HOLD", 0.6}};
    rsm_outcome_t o;
    rsm_update(&r, 1, 2.0, v, 4, &o); /* a winning long */
    CHECK(o.shaped > 0);
    CHECK_NEAR(o.advantage, o.shaped, 1e-12); /* baseline was 0 */
    CHECK_NEAR(o.contribution[0], 0.8, 1e-12);
    CHECK_NEAR(o.contribution[2], -0.9, 1e-12);
    CHECK_NEAR(o.contribution[3], 0.0, 1e-12);
    CHECK(r.models[0].weight > 0.25);
    CHECK(r.models[1].weight > 0.25);
    CHECK(r.models[0].weight > r.models[1].weight); /* more confident, more credit */
    CHECK(r.models[2].weight < 0.25);
    CHECK_NEAR(total(&r), 1.0, 1e-9);
    /* The exact step for the wrong voter before renormalisation. */
    double raw[4] = {0.25 * exp(0.05 * o.advantage * 0.8), 0.25 * exp(0.05 * o.advantage * 0.7),
                     0.25 * exp(-0.05 * o.advantage * 0.9), 0.25};
    double s = raw[0] + raw[1] + raw[2] + raw[3];
    for (int i = 0; i < 4; i++) CHECK_NEAR(r.models[i].weight, raw[i] / s, 1e-12);
    CHECK_NEAR(r.baseline, 0.05 * o.shaped, 1e-12);
    CHECK_EQ(r.trades, 1);
}

TEST(a_losing_short_credits_the_long_voter)
{
    rsm_t r = fresh();
    rsm_vote_t v[] = {{"xgb", "SHORT", 0.9}, {"lgbm", "LONG", 0.9}};
    rsm_outcome_t o;
    rsm_update(&r, -1, -1.5, v, 2, &o);
    CHECK(o.shaped < 0);
    CHECK(o.contribution[0] < 0);
    CHECK(o.contribution[1] > 0);
    CHECK(r.models[1].weight > r.models[0].weight);
}

TEST(weights_stay_clamped_and_sum_to_one)
{
    rsm_t r = fresh();
    rsm_vote_t v[] = {{"xgb", "LONG", 1.0}, {"lgbm", "SHORT", 1.0}, {"nhits", "SHORT", 1.0}, {"patchtst", "SHORT", 1.0}};
    for (int t = 0; t < 2000; t++) {
        double pnl = (t % 3 == 0) ? 5.0 : 0.5 * (t % 7);
        rsm_update(&r, 1, pnl, v, 4, NULL);
        CHECK_NEAR(total(&r), 1.0, 1e-9);
        for (int i = 0; i < 4; i++) {
            CHECK(r.models[i].weight >= r.cfg.w_min - 1e-9);
            CHECK(r.models[i].weight <= r.cfg.w_max + 1e-9);
        }
    }
    CHECK_NEAR(r.models[0].weight, 0.50, 1e-6); /* always right: at the cap */
}

TEST(unknown_models_and_hold_votes_change_nothing)
{
    rsm_t r = fresh();
    rsm_vote_t v[] = {{"ghost", "LONG", 0.9}, {"xgb", "HOLD", 0.9}, {NULL, "LONG", 0.9}};
    rsm_update(&r, 1, 3.0, v, 3, NULL);
    for (int i = 0; i < 4; i++) CHECK_NEAR(r.models[i].weight, 0.25, 1e-12);
    CHECK_EQ(r.models[0].nbrier, 0);
}

TEST(exploration_decays_linearly_to_the_floor)
{
    rsm_t r = fresh();
    rsm_vote_t v[] = {{"xgb", "LONG", 0.6}};
    for (int t = 0; t < 50; t++) rsm_update(&r, 1, 1.0, v, 1, NULL);
    CHECK_NEAR(rsm_exploration(&r), 0.125, 1e-12);
    for (int t = 0; t < 50; t++) rsm_update(&r, 1, 1.0, v, 1, NULL);
    CHECK_NEAR(rsm_exploration(&r), 0.05, 1e-12);
    for (int t = 0; t < 50; t++) rsm_update(&r, 1, 1.0, v, 1, NULL);
    CHECK_NEAR(rsm_exploration(&r), 0.05, 1e-12);
}

TEST(brier_and_scaler_follow_calibration)
{
    rsm_t r = fresh();
    rsm_vote_t good[] = {{"xgb", "LONG", 0.9}}, bad[] = {{"lgbm", "SHORT", 0.9}};
    for (int t = 0; t < 60; t++) {
        rsm_update(&r, 1, 1.0, good, 1, NULL);
        rsm_update(&r, 1, 1.0, bad, 1, NULL);
    }
    CHECK_EQ(r.models[0].nbrier, 50); /* a window of the last 50 */
    CHECK_NEAR(rsm_brier(&r.models[0]), 0.01, 1e-12);
    CHECK_NEAR(rsm_brier(&r.models[1]), 0.81, 1e-12);
    CHECK_NEAR(rsm_scaler(&r, &r.models[0]), 1 + 0.5 * 0.24 / 0.25, 1e-12);
    CHECK_NEAR(rsm_scaler(&r, &r.models[1]), 0.5, 1e-12); /* clamped */
}

TEST(health_flags_bad_calibration_and_poor_results)
{
    rsm_t r = fresh();
    json_t *issues;
    CHECK_EQ(rsm_health(&r, &issues), 100);
    CHECK_EQ(json_array_size(issues), 1); /* exploration starts at 20% */
    CHECK_CONTAINS(json_string_value(json_array_get(issues, 0)), "High exploration");
    json_decref(issues);
    rsm_vote_t v[] = {{"xgb", "LONG", 0.95}, {"lgbm", "LONG", 0.95}, {"nhits", "LONG", 0.95}, {"patchtst", "LONG", 0.95}};
    for (int t = 0; t < 30; t++) rsm_update(&r, 1, -3.0, v, 4, NULL);
    int h = rsm_health(&r, &issues);
    CHECK_EQ(h, 50);
    char *s = json_dumps(issues, 0);
    CHECK_CONTAINS(s, "Poor calibration");
    CHECK_CONTAINS(s, "Poor recent performance");
    free(s);
    json_decref(issues);
}

TEST(init_and_env_reject_bad_settings)
{
    rsm_config_t c;
    rsm_t r;
    char err[256];
    rsm_config_default(&c);
    CHECK_EQ(rsm_init(&r, &c, names, NULL, 0), -1);
    c.w_max = 0.2; /* four models cannot sum to 1 under 0.2 each */
    CHECK_EQ(rsm_init(&r, &c, names, NULL, 4), -1);
    rsm_config_default(&c);
    setenv("RL_LEARNING_RATE", "0.1", 1);
    CHECK_EQ(rsm_config_env(&c, err, sizeof err), 0);
    CHECK_NEAR(c.lr, 0.1, 1e-12);
    setenv("RL_EXPLORATION_DECAY_TRADES", "many", 1);
    CHECK_EQ(rsm_config_env(&c, err, sizeof err), -1);
    CHECK_CONTAINS(err, "RL_EXPLORATION_DECAY_TRADES");
    unsetenv("RL_EXPLORATION_DECAY_TRADES");
    unsetenv("RL_LEARNING_RATE");
    setenv("RL_MIN_MODEL_WEIGHT", "0.6", 1);
    CHECK_EQ(rsm_config_env(&c, err, sizeof err), -1);
    CHECK_CONTAINS(err, "RL_MIN_MODEL_WEIGHT");
    unsetenv("RL_MIN_MODEL_WEIGHT");
}

TEST(state_survives_json_and_resets_work)
{
    rsm_t r = fresh(), back = fresh();
    rsm_vote_t v[] = {{"xgb", "LONG", 0.8}, {"lgbm", "SHORT", 0.7}};
    for (int k = 0; k < 25; k++) rsm_update(&r, 1, k % 3 ? 1.5 : -0.5, v, 2, NULL);
    json_t *j = rsm_to_json(&r);
    CHECK_EQ(rsm_from_json(&back, j), 0);
    for (int i = 0; i < 4; i++) {
        CHECK_NEAR(back.models[i].weight, r.models[i].weight, 1e-12);
        CHECK_NEAR(rsm_brier(&back.models[i]), rsm_brier(&r.models[i]), 1e-12);
    }
    CHECK_NEAR(back.baseline, r.baseline, 1e-12);
    CHECK_EQ(back.trades, 25);
    rsm_update(&r, 1, 2.0, v, 2, NULL); /* the rings continue the same way */
    rsm_update(&back, 1, 2.0, v, 2, NULL);
    CHECK_NEAR(back.models[0].weight, r.models[0].weight, 1e-12);
    json_object_set_new(j, "pnl", json_string("bad"));
    CHECK_EQ(rsm_from_json(&back, j), -1);
    json_decref(j);
    rsm_reset_weights(&r);
    CHECK_NEAR(r.models[1].weight, 0.25, 1e-12);
    CHECK(rsm_brier(&r.models[1]) > 0.25); /* calibration kept */
    rsm_reset_calibration(&r);
    CHECK_NEAR(rsm_brier(&r.models[1]), 0.25, 1e-12);
    CHECK_NEAR(rsm_scaler(&r, &r.models[1]), 1.0, 1e-12);
}

/* Seed 002's starting weights, and a reset goes back to them (not to equal ones). */
TEST(initial_weights_are_kept_for_the_reset)
{
    rsm_config_t c;
    rsm_t r, back;
    static const double w0[] = {0.25, 0.25, 0.30, 0.20};
    rsm_config_default(&c);
    CHECK_EQ(rsm_init(&r, &c, names, w0, 4), 0);
    CHECK_NEAR(r.models[2].weight, 0.30, 1e-12);
    rsm_vote_t v[] = {{"xgb", "LONG", 0.8}, {"nhits", "SHORT", 0.7}};
    rsm_update(&r, 1, 1.5, v, 2, NULL);
    CHECK(r.models[2].weight < 0.30 && r.models[0].weight > 0.25);
    back = r;
    json_t *j = rsm_to_json(&r);
    CHECK_EQ(rsm_from_json(&back, j), 0); /* a state read back keeps the starting point */
    json_decref(j);
    rsm_reset_weights(&back);
    for (int i = 0; i < 4; i++) CHECK_NEAR(back.models[i].weight, w0[i], 1e-12);
}

CHECK_MAIN()
