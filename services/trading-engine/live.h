/* live.h — the RL v3 live orchestrator's decision for one (symbol, bar):
 * pure logic, no I/O (seed 000's table).
 *
 *  OFF      nothing is decided or recorded
 *  SHADOW   decide and record, never an intent
 *  PRIMARY  the RL signal drives the intent (RL_V3_PRIMARY)
 *  HYBRID   the more confident of RL and the ensemble signal drives it
 *           (RL_V3_HYBRID_RL_PRIMARY / _SIGNAL_PRIMARY); when both agree on
 *           the direction: confidence +0.1 (max 1) and size x1.2
 *           (RL_V3_HYBRID_CONSENSUS). With RL silent, the signal alone.
 *
 * The threshold applies to the confidence of the source that drives the
 * decision, before the consensus boost (seed 000: the prediction's
 * confidence is checked, then the intent is built), so RL 0.55 and an
 * agreeing signal of 0.5 do not trade at a threshold of 0.6. The size is
 * the action's (SMALL or LARGE) capped by max_position_size, then x1.2 for
 * a consensus: a consensus trade may be up to 1.2 times the cap.
 *
 * HOLD and FLAT publish nothing (seed 000, safety feature 6); with
 * flat_closes (policy rl_v3.live.flat_closes, default false) a FLAT closes
 * the open position (reduce-only). A confidence below the threshold
 * publishes nothing. An entry against an open position closes it instead;
 * an entry in the direction of one is skipped (one position per symbol). */
#ifndef QT_LIVE_H
#define QT_LIVE_H

typedef enum { MODE_OFF = 0, MODE_SHADOW, MODE_PRIMARY, MODE_HYBRID } live_mode_t;
typedef enum { ACT_FLAT = 0, ACT_LONG_SMALL, ACT_LONG_LARGE, ACT_SHORT_SMALL, ACT_SHORT_LARGE, ACT_HOLD } rl_action_t;

typedef struct live_rl {
    int present;
    rl_action_t action;
    double confidence;
} live_rl_t;

typedef struct live_ens {
    int present;
    int dir; /* +1 LONG, -1 SHORT, 0 HOLD */
    double confidence;
} live_ens_t;

typedef struct live_cfg {
    int enabled;
    live_mode_t mode;
    double threshold;           /* effective: max of the configured and adjusted thresholds */
    double size_small, size_large; /* size_pct of SMALL / LARGE actions */
    double max_position_size;   /* cap of size_pct before the consensus x1.2 (ml.risk.limit.update) */
    int flat_closes;            /* FLAT closes an open position (rl_v3.live.flat_closes) */
} live_cfg_t;

/* What the decision says. kind tells whether an intent follows. */
typedef enum {
    LIVE_NONE = 0,    /* OFF or nothing to decide on */
    LIVE_RECORD,      /* recorded only (SHADOW, HOLD, below threshold, ...) */
    LIVE_ENTRY,       /* open a position */
    LIVE_EXIT         /* close the open position, reduce-only */
} live_kind_t;

typedef struct live_decision {
    live_kind_t kind;
    rl_action_t action;   /* the action acted on */
    int dir;              /* +1 long, -1 short, 0 none */
    double confidence;
    double size_pct;
    const char *source_tag; /* static string or NULL */
    const char *outcome;    /* static: INTENT, EXIT, SHADOW, HOLD, FLAT, FLAT_NO_POSITION, BELOW_THRESHOLD,
                               ALREADY_IN_POSITION, NO_SIGNAL */
} live_decision_t;

/* position_dir: the symbol's open position (+1 long, -1 short, 0 flat). */
void live_decide(const live_cfg_t *c, const live_rl_t *rl, const live_ens_t *ens, int position_dir,
                 live_decision_t *out);

int rl_action_dir(rl_action_t a);
const char *rl_action_name(rl_action_t a);
int rl_action_parse(const char *s, rl_action_t *out);
const char *live_mode_name(live_mode_t m);
int live_mode_parse(const char *s, live_mode_t *out);

/* Rolling hour of event time for the rate limit. */
#define LIVE_RATE_MAX 4096
typedef struct live_rate {
    long long t[LIVE_RATE_MAX];
    int head, n;
} live_rate_t;

/* Would one more intent at event time t stay within max per rolling hour? */
int live_rate_allows(live_rate_t *r, long long t, int max_per_hour);
void live_rate_record(live_rate_t *r, long long t);
int live_rate_count(live_rate_t *r, long long t);

#endif
