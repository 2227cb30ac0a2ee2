/* engine_int.h — the trading-engine's state, shared by engine.c (life,
 * rebuild, HTTP), decide.c (signals → decisions → intents) and book.c
 * (executions → positions → feedback). Not a public interface. */
#ifndef QT_ENGINE_INT_H
#define QT_ENGINE_INT_H

#include "breaker.h"
#include "dedupe.h"
#include "feed.h"
#include "ledger.h"
#include "live.h"
#include "riskguard.h"
#include "svc.h"

#define ENG_SYMS 64
#define ENG_DECISIONS 200
#define ENG_SETTLE_POLL_US 300 /* lockstep: how often to ask whether every consumer has caught up */
#define ENG_EQUITY 1440 /* equity points kept for the dashboard, one per minute of event time */
#define ENG_INTENTS 4096
#define ENG_RECENT_INTENTS 100

typedef struct join {
    int active;
    int64_t open_time, event_time, first_mono;
    live_rl_t rl;
    live_ens_t ens;
    json_t *votes; /* ensemble model_votes (owned) */
    char regime[32], trace[65];
} join_t;

typedef struct sym_state {
    char symbol[24];
    int64_t decided_upto; /* open_time of the last bar decided on */
    double last_close;
    join_t join;
    char exit_pending[65];  /* id of an exit intent not yet filled */
    char entry_pending[65]; /* id of an entry intent not yet filled or failed: the position to be */
    int64_t last_bar_open;  /* open_time of the newest bar seen */
    int entry_dir;
} sym_state_t;

typedef struct intent_rec {
    char id[65], symbol[24];
    int reduce_only, executed, failed;
    double leverage;
    int64_t event_time;
    json_t *ctx; /* {confidence, regime, model_votes, action, source_tag}; owned */
} intent_rec_t;

typedef struct engine_cfg {
    double leverage, size_small, size_large, stop_loss_pct, tp_ratio, balance;
    long join_ms, max_lag, lockstep_ms;
    int lockstep;
} engine_cfg_t;

/* One decision as the API shows it, kept as plain values: built for every
 * bar, rendered only when someone asks (eng_decisions_json). Every pointer is
 * to a static string. */
typedef struct eng_decision {
    char symbol[24], trace[65], intent_id[65], detail[200];
    int64_t open_time, event_time;
    live_mode_t mode;
    live_rl_t rl;
    live_ens_t ens;
    rl_action_t action;
    double confidence;
    const char *source_tag, *outcome, *reason; /* source_tag and reason may be NULL */
} eng_decision_t;

typedef struct engine {
    svc_t *svc;
    engine_cfg_t cfg;
    feed_t *feed;
    json_t *config;  /* policy-store keys → values */
    json_t *trading; /* the latest TradingPolicy, or NULL */
    ledger_t ledger;
    live_rate_t rate;
    sym_state_t syms[ENG_SYMS];
    int nsyms;
    intent_rec_t intents[ENG_INTENTS];
    int nintents, iintent;
    eng_decision_t decisions[ENG_DECISIONS];
    int ndecisions, idecision;
    double ml_threshold, ml_max_pos, ml_sl_mult;
    int ml_conservative;
    breaker_t *rl_breaker;
    dedupe_t *execs_seen;
    char exec_folded[48]; /* executions up to this stream id are in the ledger */
    long intents_total, intents_executed, intents_failed, shadow_decisions, decisions_total, late_signals;
    long denials[RISKGUARD_REASONS];
    int64_t last_decision_at, last_trade_intent_at;
    double peak_equity, day_start_equity;
    int64_t day, last_perf_time, last_bar_time;
    int64_t lock_since; /* lockstep: waiting since (monotonic ms), 0 when not */
    int lock_unsettled; /* lockstep: something published may not be handled by every consumer yet */
    int lock_query;     /* the check whether it is, in flight */
    int lock_step;      /* lockstep: the step of the bar below that went out (exits, performance, the bar) */
    int64_t lock_open;
    char lock_symbol[24];
    struct event *settle_timer;
    long lock_timeouts, lock_timeouts_total;
    int64_t eq_time[ENG_EQUITY];
    double eq_value[ENG_EQUITY];
    int neq, ieq;
    long long market_lag;
    struct event *tick;
    int64_t ckpt_mono, config_mono;
    metric_t *m_denials[RISKGUARD_REASONS], *m_intents, *m_bars, *m_bad_rows, *m_equity;
} engine_t;

/* decide.c */
sym_state_t *eng_sym(engine_t *e, const char *symbol);
bus_result_t eng_on_signal_event(void *ud, const bus_msg_t *m, char *err, size_t errlen);
void eng_join_timeouts(engine_t *e);
live_mode_t eng_mode(const engine_t *e);
int eng_enabled(const engine_t *e); /* rl_v3.live.enabled */
int eng_lockstep_holds(const engine_t *e, const sym_state_t *s);
/* Decide the joined bars that waited for an intent to settle. */
void eng_decide_held(engine_t *e);
double eng_cfg_num(const engine_t *e, const char *key, double def);
int eng_publish_intent(engine_t *e, sym_state_t *s, int side, const char *action, double size_pct,
                       double confidence, const char *mode, const char *tag, double qty, int64_t event_time,
                       int64_t open_time, const char *trace, const char *regime, const json_t *votes, char id[65]);
void eng_intent_remember(engine_t *e, const char *id, const char *symbol, int dir, int reduce_only, double leverage,
                         int64_t event_time, json_t *ctx);
/* An intent got its execution or failed: it no longer holds an exit or entry open. */
void eng_intent_settled(engine_t *e, const char *intent_id);
intent_rec_t *eng_intent_find(engine_t *e, const char *id);
json_t *eng_decisions_json(const engine_t *e, long limit);

/* book.c */
bus_result_t eng_on_execution_event(void *ud, const bus_msg_t *m, char *err, size_t errlen);
void eng_apply_execution(engine_t *e, const json_t *d, const char *exec_id, const char *trace, int publish);
void eng_on_bar(engine_t *e, const char *symbol, int64_t open_time, int64_t event_time, double high, double low,
                double close, const char *trace);
void eng_publish_performance(engine_t *e, int64_t event_time, const char *id_name, const char *trace);
/* The bar's price: marks the position and the equity curve, and sends the
 * stop-loss/take-profit exit it crosses. */
void eng_bar_price(engine_t *e, sym_state_t *s, int64_t open_time, int64_t t, double high, double low, double close,
                   const char *trace);
/* performance.update when a minute of event time passed since the last; 1 when published. */
int eng_bar_performance(engine_t *e, int64_t t, const char *trace);
json_t *eng_positions_json(const engine_t *e);
double eng_daily_pnl_pct(const engine_t *e);
/* The equity curve: [[event_time, equity], ...], oldest first (new reference). */
json_t *eng_equity_json(const engine_t *e);

/* dashboard.c */
/* GET / (the dashboard page), /api/v1/equity and /api/v1/dashboard/config. */
void eng_dashboard_routes(engine_t *e);

/* engine.c */
void eng_lockstep_wake(engine_t *e);
/* A replay in lockstep (see engine.c). */
int eng_lockstep_on(const engine_t *e);
/* Lockstep: something was published; the next step waits until every consumer handled it. */
void eng_unsettled(engine_t *e);
/* Publish data (stolen) as type on stream, its id derived from id_name: 0,
 * -1 when the bus refused it (try again later), -2 when it breaks its schema
 * (a bug, or a bar no retry will fix). */
int eng_publish(engine_t *e, const char *stream, const char *type, json_t *data, const char *id_name,
                const char *trace);

#endif
