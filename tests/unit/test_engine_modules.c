/* Unit tests: the trading-engine's pure modules below its I/O — the intent
 * registry, equity over event time, signal joins, the decision for a joined
 * bar (with the policy view), the book's exit rule and the decision log. */
#include "book.h"
#include "check.h"
#include "decide.h"
#include "declog.h"
#include "equity.h"
#include "intents.h"
#include "joins.h"
#include "policyview.h"

#include <hiredis/hiredis.h>

static intents_t reg; /* 4096 records: too big for the stack */

TEST(an_entry_holds_its_symbol_until_settled_once)
{
    intents_free(&reg);
    memset(&reg, 0, sizeof reg);
    intents_add(&reg, "i1", "BTCUSDT", -1, 0, 3, 1000, json_pack("{s:s}", "source_tag", "RL_V3_PRIMARY"));
    CHECK_EQ(reg.total, 1);
    CHECK_EQ(intents_unsettled(&reg), 1);
    CHECK_EQ(intents_entry_dir(&reg, "BTCUSDT"), -1);
    CHECK(intents_holds(&reg, "BTCUSDT"));
    CHECK(!intents_holds(&reg, "ETHUSDT"));
    CHECK_EQ(intents_settle(&reg, "i1", INTENT_EXECUTED), 1);
    CHECK_EQ(intents_settle(&reg, "i1", INTENT_EXECUTED), 0); /* a redelivered execution counts once */
    CHECK_EQ(reg.executed, 1);
    CHECK_EQ(intents_unsettled(&reg), 0);
    CHECK_EQ(intents_entry_dir(&reg, "BTCUSDT"), 0);
    CHECK(!intents_holds(&reg, "BTCUSDT"));
    CHECK_EQ(intents_settle(&reg, "nobody", INTENT_FAILED), 0);
    CHECK_EQ(reg.failed, 0);
    CHECK_STR(json_string_value(json_object_get(intents_find(&reg, "i1")->ctx, "source_tag")), "RL_V3_PRIMARY");
    intents_free(&reg);
}

TEST(an_exit_is_held_until_its_fill_and_a_reduce_only_never_holds_an_entry)
{
    memset(&reg, 0, sizeof reg);
    intents_add(&reg, "x1", "ETHUSDT", 1, 1, 3, 2000, NULL);
    CHECK(!intents_holds(&reg, "ETHUSDT"));
    intents_hold_exit(&reg, "ETHUSDT", "x1");
    CHECK(intents_exit_held(&reg, "ETHUSDT"));
    CHECK_EQ(intents_entry_dir(&reg, "ETHUSDT"), 0);
    CHECK_EQ(intents_settle(&reg, "x1", INTENT_FAILED), 1);
    CHECK(!intents_exit_held(&reg, "ETHUSDT"));
    CHECK_EQ(reg.failed, 1);
    CHECK_EQ(reg.last_at, 2000);
    intents_free(&reg);
}

TEST(the_registry_keeps_the_newest_and_finds_them)
{
    char id[16];
    memset(&reg, 0, sizeof reg);
    for (int i = 0; i < INTENTS_MAX + 10; i++) {
        snprintf(id, sizeof id, "i%d", i);
        intents_add(&reg, id, "BTCUSDT", 1, 1, 3, i, NULL);
    }
    CHECK_EQ(reg.n, INTENTS_MAX);
    CHECK(intents_find(&reg, "i5") == NULL); /* overwritten */
    CHECK(intents_find(&reg, "i10") != NULL);
    snprintf(id, sizeof id, "i%d", INTENTS_MAX + 9);
    CHECK(intents_find(&reg, id) != NULL);
    CHECK_EQ(reg.total, INTENTS_MAX + 10);
    intents_free(&reg);
}

TEST(equity_days_peak_and_one_point_a_minute)
{
    equity_t q;
    memset(&q, 0, sizeof q);
    equity_track(&q, 86400000LL * 3 + 1000, 10000);
    CHECK_EQ(q.day, 3);
    CHECK_NEAR(q.day_start, 10000, 1e-9);
    equity_track(&q, 86400000LL * 3 + 30000, 10200); /* same minute: no new point */
    CHECK_EQ(q.n, 1);
    CHECK_NEAR(q.peak, 10200, 1e-9);
    equity_track(&q, 86400000LL * 3 + 61000, 9690);
    CHECK_EQ(q.n, 2);
    CHECK_NEAR(equity_daily_pnl_pct(&q, 9690), -3.1, 1e-9);
    CHECK_NEAR(equity_drawdown_pct(&q, 9690), 5.0, 1e-9);
    CHECK_NEAR(equity_drawdown_pct(&q, 10300), 0, 1e-12);
    int64_t t;
    double v;
    equity_point(&q, 1, &t, &v);
    CHECK_EQ(t, 86400000LL * 3 + 61000);
    CHECK_NEAR(v, 9690, 1e-9);
    equity_track(&q, 86400000LL * 4, 9500); /* a new day starts from here */
    CHECK_NEAR(q.day_start, 9500, 1e-9);
    equity_t none;
    memset(&none, 0, sizeof none);
    CHECK_NEAR(equity_daily_pnl_pct(&none, 5), 0, 1e-12);
}

static join_signal_t sig_rl(const char *sym, int64_t ot, rl_action_t a, double c)
{
    return (join_signal_t){sym, "trace-1", "TRENDING", ot, ot + 59999, 1, a, 0, c, NULL};
}

static join_signal_t sig_ens(const char *sym, int64_t ot, int dir, double c, const json_t *votes)
{
    return (join_signal_t){sym, "trace-2", NULL, ot, ot + 59999, 0, ACT_HOLD, dir, c, votes};
}

TEST(joins_take_both_sources_and_refuse_late_signals)
{
    static joins_t j;
    memset(&j, 0, sizeof j);
    join_sym_t *s = joins_sym(&j, "BTCUSDT");
    CHECK(s != NULL);
    CHECK(joins_sym(&j, "") == NULL);
    join_signal_t a = sig_rl("BTCUSDT", 60000, ACT_LONG_SMALL, 0.7);
    CHECK_EQ(joins_check(&j, s, 60000), JOIN_OK);
    joins_take(s, &a, 5);
    CHECK(join_ready(&s->join, MODE_PRIMARY, 1, 0));
    CHECK(!join_ready(&s->join, MODE_HYBRID, 1, 0)); /* HYBRID waits for the ensemble */
    json_t *votes = json_pack("{s:{s:s}}", "gbdt", "action", "LONG");
    join_signal_t b = sig_ens("BTCUSDT", 60000, 1, 0.8, votes);
    joins_take(s, &b, 9);
    json_decref(votes); /* the join keeps its own reference */
    CHECK(join_ready(&s->join, MODE_HYBRID, 1, 0));
    CHECK_EQ(s->join.first_mono, 5);
    CHECK_STR(s->join.trace, "trace-1"); /* the first signal's trace stays */
    CHECK_STR(s->join.regime, "TRENDING");
    CHECK(json_object_get(s->join.votes, "gbdt") != NULL);
    CHECK_EQ(joins_check(&j, s, 120000), JOIN_OLDER_DUE);
    joins_done(s);
    CHECK_EQ(s->decided_upto, 60000);
    CHECK(!s->join.active);
    CHECK_EQ(joins_check(&j, s, 60000), JOIN_LATE); /* decided: never twice */
    CHECK_EQ(j.late, 1);
    joins_bar(s, 180000);
    joins_bar(s, 120000);
    CHECK_EQ(s->last_bar_open, 180000);
    joins_free(&j);
}

TEST(hybrid_falls_back_to_the_ensemble_only_while_rl_is_silent)
{
    join_t j;
    memset(&j, 0, sizeof j);
    j.ens.present = 1;
    CHECK(!join_ready(&j, MODE_HYBRID, 1, 0));
    CHECK(join_ready(&j, MODE_HYBRID, 1, 1));
    CHECK(join_ready(&j, MODE_OFF, 1, 0));
    CHECK(join_ready(&j, MODE_PRIMARY, 0, 0)); /* disabled: nothing to wait for */
}

/* A policy view from "key", "json value" pairs, as HGETALL returns them. */
static void view(policyview_t *pv, int n, const char *const *kv)
{
    redisReply *el[16], r = {0};
    redisReply items[16];
    for (int i = 0; i < 2 * n; i++) {
        memset(&items[i], 0, sizeof items[i]);
        items[i].type = REDIS_REPLY_STRING;
        items[i].str = (char *)kv[i];
        items[i].len = strlen(kv[i]);
        el[i] = &items[i];
    }
    r.type = REDIS_REPLY_ARRAY;
    r.elements = (size_t)(2 * n);
    r.element = el;
    CHECK_EQ(policyview_load_hash(pv, &r), 0);
}

TEST(the_policy_view_reads_the_hash_and_follows_events)
{
    policyview_t pv;
    CHECK_EQ(policyview_init(&pv), 0);
    const char *kv[] = {"rl_v3.live.mode", "\"PRIMARY\"", "rl_v3.live.min_confidence", "0.7", "broken", "{nope"};
    view(&pv, 3, kv);
    CHECK_STR(policyview_str(&pv, "rl_v3.live.mode", "SHADOW"), "PRIMARY");
    CHECK_NEAR(policyview_num(&pv, "rl_v3.live.min_confidence", 0.6), 0.7, 1e-12);
    CHECK_NEAR(policyview_num(&pv, "broken", 1.5), 1.5, 1e-12); /* not JSON: left out */
    CHECK_EQ(policyview_bool(&pv, "rl_v3.live.enabled", 1), 1);
    CHECK_EQ(decide_mode(&pv), MODE_PRIMARY);
    event_t ev = {0};
    snprintf(ev.type, sizeof ev.type, "policy.config.updated");
    ev.data = json_pack("{s:s, s:b, s:i}", "key", "rl_v3.live.enabled", "value", 0, "version", 2);
    CHECK_EQ(policyview_apply(&pv, &ev), 1);
    CHECK_EQ(decide_enabled(&pv), 0);
    json_decref(ev.data);
    snprintf(ev.type, sizeof ev.type, "policy.trading.updated");
    ev.data = json_pack("{s:f, s:b}", "min_confidence", 0.8, "allow_new_trades", 1);
    CHECK_EQ(policyview_apply(&pv, &ev), 1);
    json_decref(ev.data);
    ml_limits_t ml = ML_LIMITS_DEFAULT;
    CHECK_NEAR(decide_threshold(&pv, &ml), 0.8, 1e-12); /* the highest of the three */
    ml.threshold = 0.9;
    CHECK_NEAR(decide_threshold(&pv, &ml), 0.9, 1e-12);
    CHECK_EQ(policyview_load_trading(&pv, "[1]", 3), -1);
    CHECK_EQ(policyview_load_hash(&pv, NULL), -1); /* a failed read changes nothing */
    CHECK_STR(policyview_str(&pv, "rl_v3.live.mode", "SHADOW"), "PRIMARY");
    policyview_free(&pv);
}

static live_rate_t rate; /* 4096 times */

static decide_in_t entry_in(const policyview_t *pv, const ml_limits_t *ml, const decide_sizes_t *sz)
{
    return (decide_in_t){pv, ml, sz, "BTCUSDT", 42000, 0, 0, 0, &rate, 0, 0, 0};
}

static join_t joined(rl_action_t a, double c)
{
    join_t j;
    memset(&j, 0, sizeof j);
    j.active = 1, j.open_time = 60000, j.event_time = 119999;
    j.rl = (live_rl_t){1, a, c};
    return j;
}

TEST(a_primary_entry_asks_for_an_intent_priced_at_the_close)
{
    policyview_t pv;
    policyview_init(&pv);
    const char *kv[] = {"rl_v3.live.mode", "\"PRIMARY\""};
    view(&pv, 1, kv);
    ml_limits_t ml = ML_LIMITS_DEFAULT;
    decide_sizes_t sz = {3, 0.01, 0.02, 1.0};
    memset(&rate, 0, sizeof rate);
    decide_in_t in = entry_in(&pv, &ml, &sz);
    join_t j = joined(ACT_LONG_LARGE, 0.8);
    decision_t d;
    decide_bar(&j, &in, &d);
    CHECK_EQ(d.live.kind, LIVE_ENTRY);
    CHECK_EQ(d.want_intent, 1);
    CHECK_EQ(d.req.side, 1);
    CHECK_STR(d.req.action, "LONG_LARGE");
    CHECK_STR(d.req.mode, "PRIMARY");
    CHECK_STR(d.req.tag, "RL_V3_PRIMARY");
    CHECK_NEAR(d.req.ref_price, 42000, 1e-9);
    CHECK_NEAR(d.req.qty, 0, 1e-12);
    CHECK_STR(d.outcome, "INTENT");
    in.last_close = 0;
    decide_bar(&j, &in, &d);
    CHECK_STR(d.outcome, "NO_PRICE");
    CHECK_EQ(d.want_intent, 0);
    policyview_free(&pv);
}

TEST(the_rate_limit_comes_before_riskguard_and_riskguard_names_its_reason)
{
    policyview_t pv;
    policyview_init(&pv);
    const char *kv[] = {"rl_v3.live.mode", "\"PRIMARY\"", "rl_v3.live.max_trades_per_hour", "1"};
    view(&pv, 2, kv);
    ml_limits_t ml = ML_LIMITS_DEFAULT;
    decide_sizes_t sz = {3, 0.01, 0.02, 1.0};
    memset(&rate, 0, sizeof rate);
    live_rate_record(&rate, 100000);
    decide_in_t in = entry_in(&pv, &ml, &sz);
    in.daily_pnl_pct = -10; /* RiskGuard would deny it too */
    join_t j = joined(ACT_SHORT_SMALL, 0.9);
    decision_t d;
    decide_bar(&j, &in, &d);
    CHECK_STR(d.outcome, "RATE_LIMITED");
    CHECK(d.reason == NULL);
    memset(&rate, 0, sizeof rate);
    decide_bar(&j, &in, &d);
    CHECK_STR(d.outcome, "DENIED");
    CHECK_STR(d.reason, "DAILY_DRAWDOWN");
    CHECK(d.detail[0] != '\0');
    CHECK_EQ(d.want_intent, 0);
    policyview_free(&pv);
}

TEST(an_exit_asks_for_the_whole_position_once)
{
    policyview_t pv;
    policyview_init(&pv);
    const char *kv[] = {"rl_v3.live.mode", "\"PRIMARY\""};
    view(&pv, 1, kv);
    ml_limits_t ml = ML_LIMITS_DEFAULT;
    decide_sizes_t sz = {3, 0.01, 0.02, 1.0};
    memset(&rate, 0, sizeof rate);
    decide_in_t in = entry_in(&pv, &ml, &sz);
    in.position_dir = 1, in.position_qty = 0.25;
    join_t j = joined(ACT_SHORT_LARGE, 0.9); /* against the open long: close it */
    decision_t d;
    decide_bar(&j, &in, &d);
    CHECK_EQ(d.live.kind, LIVE_EXIT);
    CHECK_EQ(d.want_intent, 1);
    CHECK_EQ(d.req.side, -1);
    CHECK_STR(d.req.action, "CLOSE");
    CHECK_NEAR(d.req.qty, 0.25, 1e-12);
    in.exit_held = 1; /* one is on its way */
    decide_bar(&j, &in, &d);
    CHECK_EQ(d.want_intent, 0);
    in.exit_held = 0, in.position_qty = 0; /* only an entry on its way: nothing to close yet */
    decide_bar(&j, &in, &d);
    CHECK_EQ(d.want_intent, 0);
    policyview_free(&pv);
}

TEST(the_book_marks_prices_and_finds_the_stop_or_the_take_profit)
{
    static book_t b;
    memset(&b, 0, sizeof b);
    book_init(&b, 10000);
    CHECK_NEAR(book_price(&b, "BTCUSDT"), 0, 1e-12);
    json_t *ctx = json_pack("{s:f, s:s}", "confidence", 0.75, "regime", "TRENDING");
    fill_t f = {"BTCUSDT", 1, 0.1, 100, 0.01, 3, 1000, ctx};
    fill_result_t r;
    CHECK_EQ(ledger_apply(&b.ledger, &f, &r), 0);
    json_decref(r.closed_ctx);
    json_decref(ctx);
    CHECK_EQ(book_mark(&b, "BTCUSDT", 101, 5000), 0);
    CHECK_NEAR(book_price(&b, "BTCUSDT"), 101, 1e-12);
    CHECK_EQ(b.last_bar_time, 5000);
    intent_req_t req;
    const json_t *c = NULL;
    CHECK_EQ(book_exit_due(&b, "BTCUSDT", 101.5, 99.5, 0.01, 2, &req, &c), 0); /* inside both */
    CHECK_EQ(book_exit_due(&b, "BTCUSDT", 101.5, 98.9, 0.01, 2, &req, &c), 1);
    CHECK_STR(req.tag, "RISK_STOP_LOSS");
    CHECK_NEAR(req.ref_price, 99, 1e-9);
    CHECK_NEAR(req.qty, 0.1, 1e-12);
    CHECK_EQ(req.side, -1);
    CHECK_NEAR(req.confidence, 0.75, 1e-12);
    CHECK_STR(json_string_value(json_object_get(c, "regime")), "TRENDING");
    CHECK_EQ(book_exit_due(&b, "BTCUSDT", 102.1, 99.5, 0.01, 2, &req, &c), 1);
    CHECK_STR(req.tag, "RISK_TAKE_PROFIT");
    CHECK_NEAR(req.ref_price, 102, 1e-9);
    CHECK_EQ(book_exit_due(&b, "ETHUSDT", 1e9, 0, 0.01, 2, &req, &c), 0); /* no position */
    CHECK(!book_perf_due(&b, 59999));
    CHECK(book_perf_due(&b, 60000));
    book_free(&b);
}

TEST(the_decision_log_keeps_the_newest_and_counts_all)
{
    static declog_t l;
    memset(&l, 0, sizeof l);
    declog_entry_t d = {.mode = MODE_SHADOW};
    for (int i = 0; i < DECLOG_MAX + 5; i++) {
        d.event_time = i;
        d.mode = i % 2 ? MODE_SHADOW : MODE_PRIMARY;
        declog_add(&l, &d);
    }
    CHECK_EQ(l.n, DECLOG_MAX);
    CHECK_EQ(l.total, DECLOG_MAX + 5);
    CHECK_EQ(l.shadow, (DECLOG_MAX + 5) / 2);
    CHECK_EQ(declog_newest(&l, 0)->event_time, DECLOG_MAX + 4);
    CHECK_EQ(declog_newest(&l, DECLOG_MAX - 1)->event_time, 5);
    CHECK(declog_newest(&l, DECLOG_MAX) == NULL);
    CHECK_EQ(l.last_at, DECLOG_MAX + 4);
}

CHECK_MAIN()
