/* inputs.h — what the Orchestrator Policy Engine needs, gathered from the
 * streams: per-symbol regime (own detector over bars), the account's risk
 * state (performance.update), per-symbol performance (position.closed over
 * the last 50 trades), ensemble quality (share of profitable outcomes over
 * the last 50 feedback.prediction.outcome), and costs (mean slippage and
 * spread over the last 50 executions). Checkpointed as JSON. */
#ifndef QT_INPUTS_H
#define QT_INPUTS_H

#include "orchestrator.h"
#include "regime.h"

#include <jansson.h>
#include <stdint.h>

#define INPUTS_WINDOW 50

typedef struct sym_input {
    char symbol[24];
    regime_state_t regime;
    double pnls[INPUTS_WINDOW];
    int npnl, ipnl;
    double cum_pnl;
} sym_input_t;

typedef struct ring {
    double v[INPUTS_WINDOW];
    int n, i;
} ring_t;

typedef struct inputs {
    sym_input_t syms[ORCH_MAX_SYMBOLS];
    int nsyms;
    int risk_known;
    double daily_pnl_pct, drawdown_pct, exposure_pct;
    int losing_streak, open_positions;
    ring_t outcomes, slippage, spread;
} inputs_t;

void inputs_init(inputs_t *in);
/* Each returns -1 (ignored) for a symbol beyond ORCH_MAX_SYMBOLS. */
int inputs_on_bar(inputs_t *in, const json_t *bar);
void inputs_on_performance(inputs_t *in, const json_t *perf);
int inputs_on_closed(inputs_t *in, const json_t *closed);
void inputs_on_outcome(inputs_t *in, const json_t *outcome);
void inputs_on_execution(inputs_t *in, const json_t *exec);
/* A new UTC day of event time: today's PnL starts again from 0. */
void inputs_reset_daily(inputs_t *in);
/* Bars are missing between the checkpoint and the stream (trimmed): each
 * symbol's regime detector, which needs an unbroken sequence of bars,
 * starts again (UNKNOWN until warm); the trade and cost windows stay. */
void inputs_gap(inputs_t *in);

/* The orchestrator's view: most volatile level and majority regime across symbols. */
void inputs_build(const inputs_t *in, orch_inputs_t *out);

json_t *inputs_to_json(const inputs_t *in);
int inputs_from_json(inputs_t *in, const json_t *j);

#endif
