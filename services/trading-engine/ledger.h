/* ledger.h — positions and PnL from fills (one-way mode: one net position
 * per symbol). Pure arithmetic; the engine feeds it trade.executed events.
 *
 * A fill in the position's direction adds (average entry price); against it,
 * closes up to the open quantity and opens the rest the other way. Fees are
 * carried with the position and charged pro rata to what is closed, so a
 * closed position's pnl is net of every fee it paid. pnl_pct is relative to
 * the entry notional. */
#ifndef QT_LEDGER_H
#define QT_LEDGER_H

#include <jansson.h>
#include <stdint.h>

#define LEDGER_MAX 64
#define LEDGER_EPS 1e-12

typedef struct position {
    char symbol[24];
    double qty;         /* signed: > 0 long, < 0 short */
    double entry_price; /* average */
    double opened_qty;  /* everything opened in this position */
    double fees;        /* paid on the still-open part */
    double realized;    /* net PnL of its closed parts so far */
    double leverage;
    double last_price;
    int64_t opened_at;  /* event time, ms */
    json_t *ctx;        /* entry context {confidence, regime, model_votes, action, source_tag}; owned */
} position_t;

typedef struct ledger {
    position_t pos[LEDGER_MAX];
    int n;
    double balance0, realized, fees;
    int losing_streak;
    long closes, wins;
} ledger_t;

typedef struct fill {
    const char *symbol;
    int side; /* +1 BUY, -1 SELL */
    double qty, price, fee, leverage;
    int64_t event_time;
    const json_t *ctx; /* entry context to keep if this fill opens a position (borrowed) */
} fill_t;

typedef struct fill_result {
    int opened;          /* a new position started (also after a flip) */
    int closed;          /* a position ended */
    int closed_dir;      /* +1 long, -1 short */
    double closed_qty, entry_price, exit_price, pnl, pnl_pct, fees, duration_s;
    json_t *closed_ctx;  /* the ended position's context; the caller owns it (json_decref) */
} fill_result_t;

void ledger_init(ledger_t *l, double balance0);
void ledger_free(ledger_t *l);
/* Apply a fill. -1 for a bad fill (qty/price not positive) or a full book. */
int ledger_apply(ledger_t *l, const fill_t *f, fill_result_t *r);
/* Mark a symbol's price (for unrealized PnL). */
void ledger_mark(ledger_t *l, const char *symbol, double price);

const position_t *ledger_find(const ledger_t *l, const char *symbol);
/* The open position's entry context, to add to (owned by the ledger), or NULL. */
json_t *ledger_context(ledger_t *l, const char *symbol);
int ledger_dir(const ledger_t *l, const char *symbol); /* +1, -1, 0 */
double ledger_unrealized(const ledger_t *l);
/* Balance + realized PnL − fees paid on open positions + unrealized PnL. */
double ledger_equity(const ledger_t *l);
/* Margin in use (notional / leverage at the last price), percent of equity. */
double ledger_exposure_pct(const ledger_t *l);

#endif
