/* Unit tests: the Orchestrator Policy Engine's rule matrix, the seed's
 * worked scenarios with their figures, similarity and stability. */
#include "check.h"
#include "orchestrator.h"
#include "proto.h"

static orch_config_t cfg;

static void base_inputs(orch_inputs_t *in)
{
    memset(in, 0, sizeof *in);
    in->regime = REGIME_TRENDING;
    in->vol = VOL_NORMAL;
    in->risk_known = 1;
    in->daily_pnl_pct = 1.5;
    in->drawdown_pct = 0.8;
    in->losing_streak = 1;
    in->open_positions = 3;
    in->exposure_pct = 6.0;
    in->ensemble_quality = 0.65;
    in->spread_bps = in->slippage_bps = 2;
    const char *sym[] = {"BTCUSDT", "ETHUSDT", "SOLUSDT"};
    double wr[] = {0.60, 0.55, 0.25}, r[] = {1.5, 1.2, -0.5};
    for (int i = 0; i < 3; i++) {
        snprintf(in->symbols[i].symbol, 24, "%s", sym[i]);
        in->symbols[i].winrate = wr[i];
        in->symbols[i].avg_r = r[i];
        in->symbols[i].trades = 20;
        in->symbols[i].tag = orch_perf_tag(wr[i], r[i], 20);
    }
    in->nsymbols = 3;
}

static trading_policy_t run(const orch_inputs_t *in)
{
    trading_policy_t p;
    orch_compute(&cfg, in, 1737547200000LL, &p);
    return p;
}

TEST(defaults_are_the_seeds)
{
    orch_config_default(&cfg);
    CHECK_NEAR(cfg.base_confidence, 0.50, 0);
    CHECK_NEAR(cfg.base_risk_pct, 1.0, 0);
    CHECK_NEAR(cfg.daily_dd_limit, 3.0, 0);
    CHECK_EQ(cfg.losing_streak_limit, 5);
    CHECK_EQ(cfg.max_open_positions, 8);
    CHECK_NEAR(cfg.total_exposure_limit, 15.0, 0);
    CHECK_EQ(cfg.update_interval_sec, 60);
    char err[128];
    setenv("ORCH_LOSING_STREAK_LIMIT", "3", 1);
    CHECK_EQ(orch_config_env(&cfg, err, sizeof err), 0);
    CHECK_EQ(cfg.losing_streak_limit, 3);
    setenv("ORCH_BASE_CONFIDENCE", "1.5", 1);
    CHECK_EQ(orch_config_env(&cfg, err, sizeof err), -1);
    CHECK_CONTAINS(err, "ORCH_BASE_CONFIDENCE");
    unsetenv("ORCH_BASE_CONFIDENCE");
    unsetenv("ORCH_LOSING_STREAK_LIMIT");
    orch_config_default(&cfg);
}

TEST(symbol_performance_tags)
{
    CHECK_EQ(orch_perf_tag(0.34, 2.0, 20), PERF_BAD);
    CHECK_EQ(orch_perf_tag(0.60, 0.49, 20), PERF_BAD);
    CHECK_EQ(orch_perf_tag(0.56, 1.21, 20), PERF_GOOD);
    CHECK_EQ(orch_perf_tag(0.55, 1.21, 20), PERF_NEUTRAL); /* strictly above */
    CHECK_EQ(orch_perf_tag(0.10, 0.1, 9), PERF_NEUTRAL);   /* too few trades */
}

TEST(scenario1_normal_trending)
{
    orch_inputs_t in;
    base_inputs(&in);
    trading_policy_t p = run(&in);
    CHECK(p.allow_new_trades);
    CHECK_EQ(p.risk_profile, PROFILE_NORMAL);
    CHECK_NEAR(p.max_risk_pct, 1.0, 1e-12);
    CHECK_NEAR(p.min_confidence, 0.47, 1e-12);
    CHECK_EQ(p.entry_mode, ENTRY_AGGRESSIVE);
    CHECK_EQ(p.exit_mode, EXIT_TREND_FOLLOW);
    CHECK_EQ(p.nallowed, 2);
    CHECK_STR(p.allowed[0], "BTCUSDT");
    CHECK_STR(p.allowed[1], "ETHUSDT");
    CHECK_EQ(p.ndisallowed, 1);
    CHECK_STR(p.disallowed[0], "SOLUSDT");
    CHECK_STR(p.note, "TRENDING + NORMAL_VOL - aggressive trend following");
}

TEST(scenario2_high_volatility)
{
    orch_inputs_t in;
    base_inputs(&in);
    in.vol = VOL_HIGH;
    trading_policy_t p = run(&in);
    CHECK(p.allow_new_trades);
    CHECK_EQ(p.risk_profile, PROFILE_REDUCED);
    CHECK_NEAR(p.max_risk_pct, 0.5, 1e-12);
    CHECK_NEAR(p.min_confidence, 0.53, 1e-12);
    CHECK_EQ(p.entry_mode, ENTRY_NORMAL);
    CHECK_EQ(p.exit_mode, EXIT_TREND_FOLLOW);
    CHECK_STR(p.note, "HIGH volatility - risk reduced 50%");
}

TEST(scenario3_drawdown_protection)
{
    orch_inputs_t in;
    base_inputs(&in);
    in.daily_pnl_pct = -3.5;
    trading_policy_t p = run(&in);
    CHECK(!p.allow_new_trades);
    CHECK_EQ(p.risk_profile, PROFILE_NO_NEW_TRADES);
    CHECK_NEAR(p.max_risk_pct, 1.0, 1e-12);
    CHECK_NEAR(p.min_confidence, 0.50, 1e-12);
    CHECK_STR(p.note, "Daily DD limit hit (-3.50%)");
    in.daily_pnl_pct = -3.0; /* the limit itself blocks: DD <= -3.0% */
    CHECK(!run(&in).allow_new_trades);
    in.daily_pnl_pct = -2.99;
    CHECK(run(&in).allow_new_trades);
}

TEST(scenario4_multiple_constraints_compound)
{
    orch_inputs_t in;
    base_inputs(&in);
    in.vol = VOL_HIGH;
    in.regime = REGIME_RANGING;
    in.losing_streak = 6;
    in.spread_bps = 12;
    trading_policy_t p = run(&in);
    CHECK(p.allow_new_trades);
    CHECK_EQ(p.risk_profile, PROFILE_REDUCED);
    CHECK_NEAR(p.max_risk_pct, 0.105, 1e-12); /* 1.0 * 0.5 * 0.7 * 0.3 */
    CHECK_NEAR(p.min_confidence, 0.61, 1e-12);
    CHECK_EQ(p.entry_mode, ENTRY_DEFENSIVE);
    CHECK_EQ(p.exit_mode, EXIT_FAST_TP);
    CHECK_STR(p.note, "HIGH volatility - risk reduced 50%; RANGING market - defensive scalping; "
                      "Losing streak 6 - reduced to 30% risk; High costs - tighter entry filter");
}

TEST(matrix_extreme_blocks_any_regime)
{
    orch_inputs_t in;
    base_inputs(&in);
    in.vol = VOL_EXTREME;
    for (int r = REGIME_TRENDING; r <= REGIME_RANGING; r++) {
        in.regime = (regime_t)r;
        trading_policy_t p = run(&in);
        CHECK(!p.allow_new_trades);
        CHECK_STR(p.note, "EXTREME volatility - no new trades");
    }
}

TEST(matrix_ranging_normal_and_high)
{
    orch_inputs_t in;
    base_inputs(&in);
    in.regime = REGIME_RANGING;
    trading_policy_t p = run(&in);
    CHECK_EQ(p.entry_mode, ENTRY_DEFENSIVE);
    CHECK_EQ(p.exit_mode, EXIT_FAST_TP);
    CHECK_NEAR(p.max_risk_pct, 0.7, 1e-12);
    CHECK_NEAR(p.min_confidence, 0.55, 1e-12);
    CHECK_EQ(p.risk_profile, PROFILE_REDUCED);
    in.vol = VOL_HIGH;
    p = run(&in);
    CHECK_NEAR(p.max_risk_pct, 0.35, 1e-12);
    CHECK_NEAR(p.min_confidence, 0.58, 1e-12);
    CHECK_EQ(p.entry_mode, ENTRY_DEFENSIVE);
}

TEST(matrix_trending_low_vol_and_unknown_regime)
{
    orch_inputs_t in;
    base_inputs(&in);
    in.vol = VOL_LOW;
    trading_policy_t p = run(&in);
    CHECK_EQ(p.entry_mode, ENTRY_AGGRESSIVE);
    CHECK_STR(p.note, "TRENDING + LOW_VOL - aggressive trend following");
    in.regime = REGIME_UNKNOWN; /* warming up: treated as RANGING */
    p = run(&in);
    CHECK_EQ(p.entry_mode, ENTRY_DEFENSIVE);
    CHECK_CONTAINS(p.note, "regime not yet known");
}

TEST(matrix_risk_limits_block)
{
    orch_inputs_t in;
    base_inputs(&in);
    in.open_positions = 8;
    trading_policy_t p = run(&in);
    CHECK(!p.allow_new_trades);
    CHECK_STR(p.note, "Max open positions reached (8/8)");
    in.open_positions = 7;
    in.exposure_pct = 15.0;
    p = run(&in);
    CHECK(!p.allow_new_trades);
    CHECK_CONTAINS(p.note, "Total exposure limit reached");
    in.exposure_pct = 14.9;
    CHECK(run(&in).allow_new_trades);
}

TEST(matrix_streak_costs_quality)
{
    orch_inputs_t in;
    base_inputs(&in);
    in.losing_streak = 5;
    trading_policy_t p = run(&in);
    CHECK_NEAR(p.max_risk_pct, 0.3, 1e-12);
    CHECK_EQ(p.entry_mode, ENTRY_DEFENSIVE);
    CHECK_NEAR(p.min_confidence, 0.55, 1e-12); /* at least base + 0.05 */
    base_inputs(&in);
    in.slippage_bps = 9;
    p = run(&in);
    CHECK_EQ(p.entry_mode, ENTRY_DEFENSIVE);
    CHECK_NEAR(p.min_confidence, 0.50, 1e-12); /* 0.50 - 0.03 + 0.03 */
    base_inputs(&in);
    in.ensemble_quality = 0.39;
    p = run(&in);
    CHECK_NEAR(p.min_confidence, 0.52, 1e-12);
    CHECK_CONTAINS(p.note, "Low ensemble quality (0.39)");
    in.ensemble_quality = -1; /* unknown: no rule */
    CHECK_NEAR(run(&in).min_confidence, 0.47, 1e-12);
}

TEST(edge_cases_empty_and_unknown)
{
    orch_inputs_t in;
    memset(&in, 0, sizeof in);
    in.ensemble_quality = in.spread_bps = in.slippage_bps = -1;
    trading_policy_t p = run(&in);
    CHECK(p.allow_new_trades); /* nothing known: defensive but allowed */
    CHECK_EQ(p.nallowed, 0);
    CHECK_EQ(p.ndisallowed, 0);
    CHECK_EQ(p.entry_mode, ENTRY_DEFENSIVE);
}

TEST(similarity)
{
    orch_inputs_t in;
    base_inputs(&in);
    trading_policy_t a = run(&in), b = a;
    CHECK_NEAR(orch_similarity(&a, &b), 1.0, 1e-12);
    b.min_confidence += 0.03; /* minor */
    CHECK(orch_similarity(&a, &b) >= 0.90);
    in.daily_pnl_pct = -5;
    b = run(&in); /* blocked vs aggressive: very different */
    CHECK(orch_similarity(&a, &b) < 0.3);
    CHECK_NEAR(orch_similarity(&a, &b), orch_similarity(&b, &a), 1e-12);
}

TEST(stability_interval_and_no_oscillation)
{
    orch_t o = {0};
    orch_config_default(&o.cfg);
    orch_inputs_t in;
    base_inputs(&in);
    int64_t t = 1737547200000LL;
    CHECK_EQ(orch_update(&o, &in, t, 0), 1);
    CHECK_EQ(o.current.version, 1);
    for (int i = 1; i <= 10; i++) CHECK_EQ(orch_update(&o, &in, t + i * 61000, 0), 0); /* same inputs: no flip */
    in.regime = REGIME_RANGING;                                  /* a real change ... */
    int64_t t2 = t + 10 * 61000;
    CHECK_EQ(orch_update(&o, &in, t2 + 30000, 0), 0);            /* ... waits for the interval */
    CHECK_EQ(o.current.entry_mode, ENTRY_AGGRESSIVE);
    CHECK_EQ(orch_update(&o, &in, t2 + 60000, 0), 1);
    CHECK_EQ(o.current.entry_mode, ENTRY_DEFENSIVE);
    CHECK_EQ(o.current.version, 2);
    in.daily_pnl_pct = -4; /* a block applies at once, interval or not */
    CHECK_EQ(orch_update(&o, &in, t2 + 61000, 0), 1);
    CHECK(!o.current.allow_new_trades);
    in.daily_pnl_pct = 0; /* unblocking waits for the interval */
    CHECK_EQ(orch_update(&o, &in, t2 + 62000, 0), 0);
    CHECK_EQ(orch_update(&o, &in, t2 + 62000, 1), 1); /* forced (daily reset) */
    CHECK(o.current.allow_new_trades);
}

TEST(json_matches_the_contract_and_round_trips)
{
    orch_inputs_t in;
    char err[256];
    base_inputs(&in);
    trading_policy_t p = run(&in), back;
    p.version = 7;
    json_t *j = orch_policy_json(&p);
    CHECK_EQ(proto_validate("policy.trading.updated", 1, j, err, sizeof err), 0);
    CHECK_STR(json_string_value(json_object_get(j, "timestamp")), "2025-01-22T12:00:00Z");
    CHECK_EQ(orch_policy_from_json(j, &back), 0);
    CHECK_NEAR(orch_similarity(&p, &back), 1.0, 1e-12);
    CHECK_EQ(back.version, 7);
    CHECK_STR(back.note, p.note);
    json_decref(j);
}

CHECK_MAIN()
