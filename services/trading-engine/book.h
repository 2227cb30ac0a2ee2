/* book.h — the account as fills and bars make it: positions and PnL (the
 * ledger), equity over event time, each symbol's last price, and the
 * stop-loss / take-profit rule. Pure: it says which exit a bar calls for;
 * the engine publishes it. */
#ifndef QT_BOOK_H
#define QT_BOOK_H

#include "equity.h"
#include "intents.h"
#include "ledger.h"

#define BOOK_SYMS 64
#define BOOK_PERF_MS 60000 /* performance.update at most once a minute of event time */

typedef struct book_price {
    char symbol[24];
    double last_close;
} book_price_t;

typedef struct book {
    ledger_t ledger;
    equity_t eq;
    book_price_t px[BOOK_SYMS];
    int npx;
    int64_t last_bar_time, last_perf_time;
} book_t;

void book_init(book_t *b, double balance);
void book_free(book_t *b);

/* The symbol's last close, 0 when none yet. */
double book_price(const book_t *b, const char *symbol);
/* A bar's close at event time t: the symbol's price and the mark of its
 * position. -1 when the price table is full. */
int book_mark(book_t *b, const char *symbol, double close, int64_t t);
/* Equity at event time t into the day, peak and curve; returns it. */
double book_track(book_t *b, int64_t t);
double book_equity(const book_t *b);
double book_daily_pnl_pct(const book_t *b);
double book_drawdown_pct(const book_t *b);
/* Is a performance.update due at event time t? */
int book_perf_due(const book_t *b, int64_t t);

/* The stop-loss / take-profit exit a bar with this high and low crosses for
 * symbol's position: 1 with req (reference price: the level crossed) and
 * *ctx (the position's entry context, borrowed), 0 when none. sl is the
 * stop distance as a fraction of the entry price, tp_ratio the take-profit
 * distance in stops. */
int book_exit_due(const book_t *b, const char *symbol, double high, double low, double sl, double tp_ratio,
                  intent_req_t *req, const json_t **ctx);

#endif
