/* book.c — positions, PnL, equity and the exit rule (see book.h). */
#include "book.h"
#include "symtab.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

_Static_assert(offsetof(book_price_t, symbol) == 0, "symtab: the symbol comes first");

void book_init(book_t *b, double balance) { ledger_init(&b->ledger, balance); }

void book_free(book_t *b) { ledger_free(&b->ledger); }

double book_price(const book_t *b, const char *symbol)
{
    for (int i = 0; symbol && i < b->npx; i++)
        if (strcmp(b->px[i].symbol, symbol) == 0) return b->px[i].last_close;
    return 0;
}

int book_mark(book_t *b, const char *symbol, double close, int64_t t)
{
    book_price_t *p = SYMTAB_SLOT(b->px, &b->npx, BOOK_SYMS, symbol, NULL);
    if (!p) return -1;
    p->last_close = close;
    ledger_mark(&b->ledger, symbol, close);
    if (t > b->last_bar_time) b->last_bar_time = t;
    return 0;
}

double book_equity(const book_t *b) { return ledger_equity(&b->ledger); }

double book_track(book_t *b, int64_t t)
{
    double eq = ledger_equity(&b->ledger);
    equity_track(&b->eq, t, eq);
    return eq;
}

double book_daily_pnl_pct(const book_t *b) { return equity_daily_pnl_pct(&b->eq, ledger_equity(&b->ledger)); }

double book_drawdown_pct(const book_t *b) { return equity_drawdown_pct(&b->eq, ledger_equity(&b->ledger)); }

int book_perf_due(const book_t *b, int64_t t) { return t - b->last_perf_time >= BOOK_PERF_MS; }

int book_exit_due(const book_t *b, const char *symbol, double high, double low, double sl, double tp_ratio,
                  intent_req_t *req, const json_t **ctx)
{
    const position_t *p = ledger_find(&b->ledger, symbol);
    if (!p) return 0;
    double tp = sl * tp_ratio;
    int dir = p->qty > 0 ? 1 : -1;
    double stop = p->entry_price * (1 - dir * sl), take = p->entry_price * (1 + dir * tp);
    const char *tag = NULL;
    double price = 0;
    if (dir > 0 ? low <= stop : high >= stop) tag = "RISK_STOP_LOSS", price = stop;
    else if (dir > 0 ? high >= take : low <= take) tag = "RISK_TAKE_PROFIT", price = take;
    if (!tag) return 0;
    *ctx = p->ctx;
    *req = (intent_req_t){-dir, "CLOSE", 0, json_number_value(json_object_get(p->ctx, "confidence")), "RISK", tag,
                          fabs(p->qty), price};
    return 1;
}
