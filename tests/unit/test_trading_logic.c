/* Unit tests: trading-engine decision logic — modes, HYBRID rules,
 * thresholds, rate limit, every RiskGuard rule, and PnL arithmetic. */
#include "check.h"
#include "ledger.h"
#include "live.h"
#include "riskguard.h"

static live_cfg_t cfg(live_mode_t m)
{
    live_cfg_t c = {1, m, 0.6, 0.01, 0.02, 0.02, 0};
    return c;
}

static live_rl_t rl(rl_action_t a, double c) { live_rl_t r = {1, a, c}; return r; }
static live_ens_t ens(int dir, double c) { live_ens_t e = {1, dir, c}; return e; }
static const live_rl_t NO_RL = {0, ACT_HOLD, 0};
static const live_ens_t NO_ENS = {0, 0, 0};

TEST(mode_off_and_disabled_do_nothing)
{
    live_decision_t d;
    live_cfg_t c = cfg(MODE_OFF);
    live_rl_t r = rl(ACT_LONG_LARGE, 0.9);
    live_decide(&c, &r, &NO_ENS, 0, &d);
    CHECK_EQ(d.kind, LIVE_NONE);
    c = cfg(MODE_PRIMARY);
    c.enabled = 0;
    live_decide(&c, &r, &NO_ENS, 0, &d);
    CHECK_EQ(d.kind, LIVE_NONE);
}

TEST(mode_shadow_records_never_trades)
{
    live_decision_t d;
    live_cfg_t c = cfg(MODE_SHADOW);
    live_rl_t r = rl(ACT_LONG_LARGE, 0.9);
    live_decide(&c, &r, &NO_ENS, 0, &d);
    CHECK_EQ(d.kind, LIVE_RECORD);
    CHECK_STR(d.outcome, "SHADOW");
    CHECK_EQ(d.action, ACT_LONG_LARGE);
}

TEST(mode_primary_rl_drives)
{
    live_decision_t d;
    live_cfg_t c = cfg(MODE_PRIMARY);
    live_rl_t r = rl(ACT_SHORT_LARGE, 0.8);
    live_ens_t e = ens(1, 0.99); /* ignored in PRIMARY */
    live_decide(&c, &r, &e, 0, &d);
    CHECK_EQ(d.kind, LIVE_ENTRY);
    CHECK_EQ(d.dir, -1);
    CHECK_NEAR(d.confidence, 0.8, 1e-12);
    CHECK_NEAR(d.size_pct, 0.02, 1e-12);
    CHECK_STR(d.source_tag, "RL_V3_PRIMARY");
    live_decide(&c, &NO_RL, &e, 0, &d);
    CHECK_STR(d.outcome, "NO_SIGNAL");
}

TEST(hybrid_more_confident_source_wins)
{
    live_decision_t d;
    live_cfg_t c = cfg(MODE_HYBRID);
    live_rl_t r = rl(ACT_LONG_SMALL, 0.7);
    live_ens_t e = ens(-1, 0.8);
    live_decide(&c, &r, &e, 0, &d);
    CHECK_EQ(d.kind, LIVE_ENTRY);
    CHECK_STR(d.source_tag, "RL_V3_HYBRID_SIGNAL_PRIMARY");
    CHECK_EQ(d.dir, -1);
    CHECK_NEAR(d.confidence, 0.8, 1e-12);
    r = rl(ACT_LONG_LARGE, 0.85);
    live_decide(&c, &r, &e, 0, &d);
    CHECK_STR(d.source_tag, "RL_V3_HYBRID_RL_PRIMARY");
    CHECK_EQ(d.action, ACT_LONG_LARGE);
}

TEST(hybrid_consensus_boosts_confidence_and_size)
{
    live_decision_t d;
    live_cfg_t c = cfg(MODE_HYBRID);
    c.max_position_size = 1;
    live_rl_t r = rl(ACT_LONG_SMALL, 0.65);
    live_ens_t e = ens(1, 0.62);
    live_decide(&c, &r, &e, 0, &d);
    CHECK_STR(d.source_tag, "RL_V3_HYBRID_CONSENSUS");
    CHECK_NEAR(d.confidence, 0.75, 1e-12);
    CHECK_NEAR(d.size_pct, 0.012, 1e-12);
    r = rl(ACT_LONG_LARGE, 0.95);
    live_decide(&c, &r, &e, 0, &d);
    CHECK_NEAR(d.confidence, 1.0, 1e-12); /* capped */
    c.max_position_size = 0.02; /* the defaults: the cap applies before the x1.2, so a consensus is larger */
    live_decide(&c, &r, &e, 0, &d);
    CHECK_NEAR(d.size_pct, 0.024, 1e-12); /* it was 0.02: the cap after the x1.2 cancelled it */
    e = ens(-1, 0.62);
    live_decide(&c, &r, &e, 0, &d);
    CHECK_STR(d.source_tag, "RL_V3_HYBRID_RL_PRIMARY");
    CHECK_NEAR(d.size_pct, 0.02, 1e-12);
    c.max_position_size = 0.015;
    e = ens(1, 0.62);
    live_decide(&c, &r, &e, 0, &d);
    CHECK_NEAR(d.size_pct, 0.018, 1e-12); /* 0.015 cap x1.2 */
    e = ens(0, 0.9); /* HOLD never "agrees" */
    live_decide(&c, &r, &e, 0, &d);
    CHECK(strcmp(d.source_tag, "RL_V3_HYBRID_CONSENSUS") != 0);
}

/* The threshold is on the source that drives the decision, before the
 * consensus +0.1: RL 0.55 with an agreeing signal of 0.5 used to trade at
 * 0.65 against a threshold of 0.6. */
TEST(hybrid_threshold_is_on_the_driving_source)
{
    live_decision_t d;
    live_cfg_t c = cfg(MODE_HYBRID);
    live_rl_t r = rl(ACT_LONG_SMALL, 0.55);
    live_ens_t e = ens(1, 0.5);
    live_decide(&c, &r, &e, 0, &d);
    CHECK_STR(d.outcome, "BELOW_THRESHOLD");
    CHECK_EQ(d.kind, LIVE_RECORD);
    CHECK_NEAR(d.confidence, 0.65, 1e-12); /* recorded as the consensus says */
    e = ens(1, 0.61); /* the signal drives, above the threshold */
    live_decide(&c, &r, &e, 0, &d);
    CHECK_EQ(d.kind, LIVE_ENTRY);
    CHECK_STR(d.source_tag, "RL_V3_HYBRID_CONSENSUS");
    CHECK_NEAR(d.confidence, 0.71, 1e-12);
    c.mode = MODE_PRIMARY; /* PRIMARY: RL's own */
    live_decide(&c, &r, &e, 0, &d);
    CHECK_STR(d.outcome, "BELOW_THRESHOLD");
}

/* Seed 000's mode table on one input: who predicts, whether an intent
 * follows, from which source. */
TEST(the_seed_mode_table)
{
    static const struct {
        live_mode_t mode;
        live_kind_t kind;
        const char *outcome, *tag;
    } rows[] = {{MODE_OFF, LIVE_NONE, NULL, NULL},
                {MODE_SHADOW, LIVE_RECORD, "SHADOW", "RL_V3_PRIMARY"},
                {MODE_PRIMARY, LIVE_ENTRY, "INTENT", "RL_V3_PRIMARY"},
                {MODE_HYBRID, LIVE_ENTRY, "INTENT", "RL_V3_HYBRID_SIGNAL_PRIMARY"}};
    live_rl_t r = rl(ACT_SHORT_LARGE, 0.7);
    live_ens_t e = ens(1, 0.8);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        live_decision_t d;
        live_cfg_t c = cfg(rows[i].mode);
        live_decide(&c, &r, &e, 0, &d);
        CHECK_EQ(d.kind, rows[i].kind);
        if (rows[i].outcome) CHECK_STR(d.outcome, rows[i].outcome);
        if (rows[i].tag) CHECK_STR(d.source_tag, rows[i].tag);
        if (rows[i].mode == MODE_PRIMARY) CHECK_EQ(d.dir, -1); /* RL only */
        if (rows[i].mode == MODE_HYBRID) CHECK_EQ(d.dir, 1);   /* the more confident source */
    }
}

TEST(hybrid_falls_back_to_signal_alone)
{
    live_decision_t d;
    live_cfg_t c = cfg(MODE_HYBRID);
    live_ens_t e = ens(1, 0.7);
    live_decide(&c, &NO_RL, &e, 0, &d);
    CHECK_EQ(d.kind, LIVE_ENTRY);
    CHECK_STR(d.source_tag, "RL_V3_HYBRID_SIGNAL_PRIMARY");
    CHECK_EQ(d.action, ACT_LONG_SMALL);
}

TEST(threshold_hold_flat_and_positions)
{
    live_decision_t d;
    live_cfg_t c = cfg(MODE_PRIMARY);
    live_rl_t r = rl(ACT_LONG_SMALL, 0.59);
    live_decide(&c, &r, &NO_ENS, 0, &d);
    CHECK_STR(d.outcome, "BELOW_THRESHOLD");
    CHECK_EQ(d.kind, LIVE_RECORD);
    r = rl(ACT_LONG_SMALL, 0.6); /* at the threshold: passes */
    live_decide(&c, &r, &NO_ENS, 0, &d);
    CHECK_EQ(d.kind, LIVE_ENTRY);
    r = rl(ACT_HOLD, 0.99);
    live_decide(&c, &r, &NO_ENS, 0, &d);
    CHECK_STR(d.outcome, "HOLD");
    r = rl(ACT_FLAT, 0.9);
    live_decide(&c, &r, &NO_ENS, 0, &d);
    CHECK_STR(d.outcome, "FLAT_NO_POSITION");
    live_decide(&c, &r, &NO_ENS, 1, &d); /* seed: FLAT publishes nothing, also with a position */
    CHECK_EQ(d.kind, LIVE_RECORD);
    CHECK_STR(d.outcome, "FLAT");
    c.flat_closes = 1; /* rl_v3.live.flat_closes */
    live_decide(&c, &r, &NO_ENS, 1, &d);
    CHECK_EQ(d.kind, LIVE_EXIT);
    live_decide(&c, &r, &NO_ENS, 0, &d);
    CHECK_STR(d.outcome, "FLAT_NO_POSITION");
    c.flat_closes = 0;
    r = rl(ACT_SHORT_SMALL, 0.9); /* against a long: close it */
    live_decide(&c, &r, &NO_ENS, 1, &d);
    CHECK_EQ(d.kind, LIVE_EXIT);
    r = rl(ACT_LONG_LARGE, 0.9); /* with a long: skip */
    live_decide(&c, &r, &NO_ENS, 1, &d);
    CHECK_STR(d.outcome, "ALREADY_IN_POSITION");
}

TEST(rate_limit_rolling_hour_of_event_time)
{
    static live_rate_t r;
    long long t = 1700000000000LL;
    for (int i = 0; i < 10; i++) {
        CHECK(live_rate_allows(&r, t + i * 60000, 10));
        live_rate_record(&r, t + i * 60000);
    }
    CHECK(!live_rate_allows(&r, t + 10 * 60000, 10));
    CHECK(!live_rate_allows(&r, t + 3600000 - 1, 10)); /* first one still in the hour */
    CHECK(live_rate_allows(&r, t + 3600000, 10));       /* first one expired */
    CHECK_EQ(live_rate_count(&r, t + 3600000 + 9 * 60000 - 1), 1); /* only the last one left */
    CHECK_EQ(live_rate_count(&r, t + 3600000 + 9 * 60000), 0);
}

static riskguard_limits_t limits(void)
{
    riskguard_limits_t l = {5, 2.0, 15.0, 3.0, 8, 1, 1.0, NULL, NULL};
    return l;
}

static riskguard_request_t request(void)
{
    riskguard_request_t r = {"BTCUSDT", 0.02, 3, 0.015, 1, 2.0, 0.1};
    return r;
}

static void expect_denial(riskguard_limits_t l, riskguard_request_t r, const char *want)
{
    char detail[200];
    const char *got = riskguard_check(&l, &r, detail, sizeof detail);
    if (!want && got) CHECK_FAIL_AT("denied with %s (%s)", got, detail);
    if (want && (!got || strcmp(got, want) != 0)) CHECK_FAIL_AT("want %s, got %s", want, got ? got : "allowed");
}

TEST(riskguard_every_rule)
{
    riskguard_limits_t l = limits();
    riskguard_request_t r = request();
    expect_denial(l, r, NULL); /* risk 0.02*3*0.015 = 0.09% of equity */
    l.allow_new_trades = 0;
    expect_denial(l, r, "TRADING_HALTED");
    l = limits();
    const char *dis[] = {"BTCUSDT", NULL}, *allowed[] = {"ETHUSDT", NULL}, *empty[] = {NULL};
    l.disallowed = dis;
    expect_denial(l, r, "SYMBOL_DISALLOWED");
    l = limits();
    l.allowed = allowed;
    expect_denial(l, r, "SYMBOL_DISALLOWED");
    l.allowed = empty; /* an empty allowed list allows everything */
    expect_denial(l, r, NULL);
    l = limits();
    r.leverage = 6;
    expect_denial(l, r, "LEVERAGE");
    r = request();
    l.max_policy_risk_pct = 0.05; /* policy cut risk to 0.05% */
    expect_denial(l, r, "RISK_PER_TRADE");
    l = limits();
    r.open_positions = 8;
    expect_denial(l, r, "MAX_OPEN_POSITIONS");
    r = request();
    r.exposure_pct = 13.0; /* + 2% margin reaches 15% */
    expect_denial(l, r, "TOTAL_EXPOSURE");
    r = request();
    r.daily_pnl_pct = -3.0;
    expect_denial(l, r, "DAILY_DRAWDOWN");
    CHECK_STR(riskguard_reason(0), "TRADING_HALTED");
    CHECK(riskguard_reason(RISKGUARD_REASONS) == NULL);
}

static fill_t fill(const char *sym, int side, double qty, double price, double fee, long long t)
{
    fill_t f = {sym, side, qty, price, fee, 3, t, NULL};
    return f;
}

TEST(ledger_long_round_trip_with_fees)
{
    ledger_t l;
    fill_result_t r;
    ledger_init(&l, 10000);
    fill_t f = fill("BTCUSDT", 1, 0.5, 100, 0.02, 0);
    CHECK_EQ(ledger_apply(&l, &f, &r), 0);
    CHECK(r.opened);
    CHECK_EQ(ledger_dir(&l, "BTCUSDT"), 1);
    ledger_mark(&l, "BTCUSDT", 110);
    CHECK_NEAR(ledger_unrealized(&l), 5.0, 1e-9);
    CHECK_NEAR(ledger_equity(&l), 10005.0 - 0.02, 1e-9); /* the entry fee is paid already */
    CHECK_NEAR(ledger_exposure_pct(&l), 0.5 * 110 / 3 / (10005.0 - 0.02) * 100, 1e-9);
    f = fill("BTCUSDT", -1, 0.5, 110, 0.022, 600000);
    CHECK_EQ(ledger_apply(&l, &f, &r), 0);
    CHECK(r.closed);
    CHECK_EQ(r.closed_dir, 1);
    CHECK_NEAR(r.pnl, 5.0 - 0.02 - 0.022, 1e-9);
    CHECK_NEAR(r.pnl_pct, (5.0 - 0.042) / 50.0 * 100, 1e-9);
    CHECK_NEAR(r.duration_s, 600, 1e-9);
    CHECK_EQ(ledger_dir(&l, "BTCUSDT"), 0);
    CHECK_NEAR(ledger_equity(&l), 10000 + 5.0 - 0.042, 1e-9);
    CHECK_EQ(l.losing_streak, 0);
    json_decref(r.closed_ctx);
    ledger_free(&l);
}

TEST(ledger_short_partial_close_and_losing_streak)
{
    ledger_t l;
    fill_result_t r;
    ledger_init(&l, 1000);
    fill_t f = fill("ETHUSDT", -1, 2, 50, 0.1, 0);
    ledger_apply(&l, &f, &r);
    f = fill("ETHUSDT", -1, 2, 54, 0.1, 1000); /* add: entry averages to 52 */
    ledger_apply(&l, &f, &r);
    CHECK_NEAR(ledger_find(&l, "ETHUSDT")->entry_price, 52, 1e-9);
    f = fill("ETHUSDT", 1, 1, 55, 0.05, 2000); /* partial: 1 of 4 at a loss */
    ledger_apply(&l, &f, &r);
    CHECK(!r.closed);
    CHECK_NEAR(l.realized, -3.0 - 0.05 - 0.2 / 4, 1e-9);
    CHECK_NEAR(ledger_find(&l, "ETHUSDT")->qty, -3, 1e-12);
    f = fill("ETHUSDT", 1, 3, 56, 0.15, 3000);
    ledger_apply(&l, &f, &r);
    CHECK(r.closed);
    CHECK_EQ(r.closed_dir, -1);
    CHECK_NEAR(r.closed_qty, 4, 1e-12);
    CHECK_NEAR(r.pnl, -3.0 - 12.0 - 0.2 - 0.05 - 0.15, 1e-9); /* every fee counted once */
    CHECK_NEAR(l.realized, r.pnl, 1e-9);
    CHECK_EQ(l.losing_streak, 1);
    json_decref(r.closed_ctx);
    ledger_free(&l);
}

TEST(ledger_flip_and_bad_fills)
{
    ledger_t l;
    fill_result_t r;
    ledger_init(&l, 1000);
    fill_t f = fill("SOLUSDT", 1, 1, 10, 0, 0);
    ledger_apply(&l, &f, &r);
    f = fill("SOLUSDT", -1, 3, 12, 0.3, 1000); /* close 1, open 2 short */
    CHECK_EQ(ledger_apply(&l, &f, &r), 0);
    CHECK(r.closed && r.opened);
    CHECK_NEAR(r.pnl, 2.0 - 0.1, 1e-9);
    CHECK_NEAR(ledger_find(&l, "SOLUSDT")->qty, -2, 1e-12);
    CHECK_NEAR(ledger_find(&l, "SOLUSDT")->fees, 0.2, 1e-12);
    json_decref(r.closed_ctx);
    f = fill("SOLUSDT", 1, 0, 12, 0, 0);
    CHECK_EQ(ledger_apply(&l, &f, &r), -1);
    f = fill("SOLUSDT", 1, 1, -5, 0, 0);
    CHECK_EQ(ledger_apply(&l, &f, &r), -1);
    ledger_free(&l);
}

CHECK_MAIN()
