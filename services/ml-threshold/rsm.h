/* rsm.h — the Reinforcement Signal Manager (seed 002): per-model ensemble
 * weights learned from trade outcomes, confidence calibration, exploration.
 * Pure computation; services/ml-threshold/learner.c feeds it and shares
 * its state through Redis.
 *
 * On each closed trade:
 *  shaped reward  r = α·tanh(pnl%) + β·tanh(Sharpe of the last 20 pnl%) +
 *                     γ·tanh(pnl% / stdev of the last 20 pnl%)
 *  baseline       b ← δ·b + (1−δ)·r          (δ = RL_DISCOUNT_FACTOR)
 *  advantage      A = r − b (b before this trade)
 *  contribution   c_i = +conf_i if model i's vote was right (it voted the
 *                 trade's direction and the trade won, or the other way and
 *                 it lost), −conf_i if wrong, 0 for HOLD
 *  weights        w_i ← w_i·exp(lr·|A|·c_i), then clamped to [min, max] and
 *                 renormalised to sum 1 (correctness gives the direction,
 *                 the surprise |A| the step; a wrong model's raw weight only
 *                 shrinks, though renormalising after a clamp can lift it)
 *  calibration    Brier_i = mean over its last 50 votes of (p − o)², p its
 *                 confidence, o = 1 when right; scaler_i = clamp(1 +
 *                 κ·(0.25 − Brier_i)/0.25, 0.5, 1.5)
 *  exploration    ε = max(min, initial − (initial − min)·trades / decay_trades)
 * Defaults are the seed's RL_* values. */
#ifndef QT_RSM_H
#define QT_RSM_H

#include <jansson.h>
#include <stddef.h>

#define RSM_MAX_MODELS 16
#define RSM_WINDOW 20
#define RSM_CALIB 50

typedef struct rsm_config {
    double lr, discount, eps_initial, eps_min, alpha, beta, gamma, kappa, w_min, w_max;
    long decay_trades;
} rsm_config_t;

typedef struct rsm_model {
    char name[64];
    double weight, initial; /* initial: where a reset of the weights goes back to */
    double brier[RSM_CALIB]; /* squared errors, ring */
    int nbrier, ibrier;
} rsm_model_t;

typedef struct rsm {
    rsm_config_t cfg;
    rsm_model_t models[RSM_MAX_MODELS];
    int nmodels;
    double baseline, pnl[RSM_WINDOW], shaped[RSM_WINDOW];
    int npnl, ipnl;
    long trades, updates;
} rsm_t;

typedef struct rsm_vote { const char *model, *action; double confidence; } rsm_vote_t;

typedef struct rsm_outcome {
    double shaped, advantage;
    double contribution[RSM_MAX_MODELS];
} rsm_outcome_t;

void rsm_config_default(rsm_config_t *c);
/* RL_LEARNING_RATE, RL_DISCOUNT_FACTOR, RL_INITIAL_EXPLORATION_RATE, RL_MIN_EXPLORATION_RATE,
 * RL_EXPLORATION_DECAY_TRADES, RL_REWARD_ALPHA/BETA/GAMMA, RL_CALIBRATION_KAPPA,
 * RL_MIN_MODEL_WEIGHT, RL_MAX_MODEL_WEIGHT; -1 with err naming the variable. */
int rsm_config_env(rsm_config_t *c, char *err, size_t errlen);

/* names: the ensemble's members; weights: initial (NULL = equal). */
int rsm_init(rsm_t *r, const rsm_config_t *c, const char *const *names, const double *weights, int n);
/* One closed trade: direction +1 long / -1 short, its pnl in percent, and the
 * members' votes at entry. Updates everything; out may be NULL. */
void rsm_update(rsm_t *r, int direction, double pnl_pct, const rsm_vote_t *votes, int nvotes, rsm_outcome_t *out);
double rsm_exploration(const rsm_t *r);
double rsm_brier(const rsm_model_t *m); /* 0.25 (uninformative) before any vote */
double rsm_scaler(const rsm_t *r, const rsm_model_t *m);
/* The initial weights again (rsm_init's); calibration kept. */
void rsm_reset_weights(rsm_t *r);
/* Forget every model's Brier history (scalers back to 1). */
void rsm_reset_calibration(rsm_t *r);
/* The learned state as JSON (new reference), rings in chronological order. */
json_t *rsm_to_json(const rsm_t *r);
/* Restore learned state into r (configuration and member list kept; members
 * are matched by name, unknown ones ignored, missing ones keep their weight,
 * then weights are renormalised). -1 on malformed JSON, r unchanged. */
int rsm_from_json(rsm_t *r, const json_t *j);
/* Health 0..100 and issues as the seed's subsystem monitor defines them. */
int rsm_health(const rsm_t *r, json_t **issues);

#endif
