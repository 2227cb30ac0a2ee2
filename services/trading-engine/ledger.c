/* ledger.c — positions and PnL from fills (see ledger.h). */
#include "ledger.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void ledger_init(ledger_t *l, double balance0)
{
    memset(l, 0, sizeof *l);
    l->balance0 = balance0;
}

void ledger_free(ledger_t *l)
{
    for (int i = 0; i < l->n; i++) json_decref(l->pos[i].ctx);
    l->n = 0;
}

static position_t *ledger_slot(ledger_t *l, const char *symbol)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->pos[i].symbol, symbol) == 0) return &l->pos[i];
    return NULL;
}

const position_t *ledger_find(const ledger_t *l, const char *symbol) { return ledger_slot((ledger_t *)l, symbol); }

json_t *ledger_context(ledger_t *l, const char *symbol)
{
    position_t *p = ledger_slot(l, symbol);
    return p ? p->ctx : NULL;
}

int ledger_dir(const ledger_t *l, const char *symbol)
{
    const position_t *p = ledger_find(l, symbol);
    return !p ? 0 : p->qty > 0 ? 1 : -1;
}

static void ledger_remove(ledger_t *l, position_t *p)
{
    int i = (int)(p - l->pos);
    l->pos[i] = l->pos[--l->n];
}

static position_t *ledger_open(ledger_t *l, const fill_t *f, double qty, double fee)
{
    if (l->n == LEDGER_MAX) return NULL;
    position_t *p = &l->pos[l->n++];
    memset(p, 0, sizeof *p);
    snprintf(p->symbol, sizeof p->symbol, "%s", f->symbol);
    p->qty = f->side * qty;
    p->entry_price = p->last_price = f->price;
    p->opened_qty = qty;
    p->fees = fee;
    p->leverage = f->leverage > 0 ? f->leverage : 1;
    p->opened_at = f->event_time;
    p->ctx = f->ctx ? json_deep_copy(f->ctx) : json_object();
    return p;
}

/* Close q of p at the fill's price; the closing fee part is fee_part. */
static void ledger_close_part(ledger_t *l, position_t *p, const fill_t *f, double q, double fee_part, fill_result_t *r)
{
    double open = fabs(p->qty), dir = p->qty > 0 ? 1 : -1;
    double fee_share = p->fees * q / open;
    double net = (f->price - p->entry_price) * q * dir - fee_share - fee_part;
    p->fees -= fee_share;
    p->realized += net;
    p->qty -= dir * q;
    p->last_price = f->price;
    l->realized += net;
    if (fabs(p->qty) > LEDGER_EPS * fmax(1, open)) return; /* partially closed */
    r->closed = 1;
    r->closed_dir = (int)dir;
    r->closed_qty = p->opened_qty;
    r->entry_price = p->entry_price;
    r->exit_price = f->price;
    r->pnl = p->realized;
    r->pnl_pct = p->realized / (p->entry_price * p->opened_qty) * 100.0;
    r->duration_s = (double)(f->event_time - p->opened_at) / 1000.0;
    r->closed_ctx = p->ctx;
    p->ctx = NULL;
    l->closes++;
    if (r->pnl > 0) l->wins++, l->losing_streak = 0;
    else l->losing_streak++;
    ledger_remove(l, p);
}

int ledger_apply(ledger_t *l, const fill_t *f, fill_result_t *r)
{
    memset(r, 0, sizeof *r);
    if (!(f->qty > 0) || !(f->price > 0) || !(f->fee >= 0) || (f->side != 1 && f->side != -1)) return -1;
    position_t *p = ledger_slot(l, f->symbol);
    l->fees += f->fee;
    if (!p) {
        r->opened = ledger_open(l, f, f->qty, f->fee) != NULL;
        return r->opened ? 0 : -1;
    }
    if ((p->qty > 0) == (f->side > 0)) { /* add: average the entry */
        double q0 = fabs(p->qty);
        p->entry_price = (p->entry_price * q0 + f->price * f->qty) / (q0 + f->qty);
        p->qty += f->side * f->qty;
        p->opened_qty += f->qty;
        p->fees += f->fee;
        p->last_price = f->price;
        return 0;
    }
    double q = fmin(f->qty, fabs(p->qty)), rest = f->qty - q;
    ledger_close_part(l, p, f, q, f->fee * q / f->qty, r);
    if (rest > LEDGER_EPS * f->qty) /* flip: the remainder opens the other way */
        r->opened = ledger_open(l, f, rest, f->fee * rest / f->qty) != NULL;
    return 0;
}

void ledger_mark(ledger_t *l, const char *symbol, double price)
{
    position_t *p = ledger_slot(l, symbol);
    if (p && price > 0) p->last_price = price;
}

double ledger_unrealized(const ledger_t *l)
{
    double u = 0;
    for (int i = 0; i < l->n; i++) u += (l->pos[i].last_price - l->pos[i].entry_price) * l->pos[i].qty;
    return u;
}

double ledger_equity(const ledger_t *l)
{
    double open_fees = 0; /* already paid, booked into realized when the position closes */
    for (int i = 0; i < l->n; i++) open_fees += l->pos[i].fees;
    return l->balance0 + l->realized - open_fees + ledger_unrealized(l);
}

double ledger_exposure_pct(const ledger_t *l)
{
    double margin = 0, eq = ledger_equity(l);
    for (int i = 0; i < l->n; i++) margin += fabs(l->pos[i].qty) * l->pos[i].last_price / l->pos[i].leverage;
    return eq > 0 ? margin / eq * 100.0 : 0;
}
