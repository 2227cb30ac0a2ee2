/* intents.c — the intents this engine published (see intents.h). */
#include "intents.h"
#include "symtab.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

_Static_assert(offsetof(intent_hold_t, symbol) == 0, "symtab: the symbol comes first");

static intent_hold_t *intents_slot(intents_t *r, const char *symbol)
{
    return SYMTAB_SLOT(r->hold, &r->nhold, INTENTS_SYMS, symbol, NULL);
}

static const intent_hold_t *intents_hold_of(const intents_t *r, const char *symbol)
{
    for (int i = 0; symbol && i < r->nhold; i++)
        if (strcmp(r->hold[i].symbol, symbol) == 0) return &r->hold[i];
    return NULL;
}

void intents_free(intents_t *r)
{
    for (int i = 0; i < INTENTS_MAX; i++) json_decref(r->rec[i].ctx), r->rec[i].ctx = NULL;
}

void intents_add(intents_t *r, const char *id, const char *symbol, int dir, int reduce_only, double leverage,
                 int64_t event_time, json_t *ctx)
{
    intent_rec_t *rec = &r->rec[r->head];
    intent_hold_t *h = reduce_only ? NULL : intents_slot(r, symbol);
    if (h) snprintf(h->entry, sizeof h->entry, "%s", id), h->entry_dir = dir;
    json_decref(rec->ctx);
    memset(rec, 0, sizeof *rec);
    snprintf(rec->id, sizeof rec->id, "%s", id);
    snprintf(rec->symbol, sizeof rec->symbol, "%s", symbol);
    const char *tag = json_string_value(json_object_get(ctx, "source_tag"));
    rec->exit = tag && strncmp(tag, "RISK_", 5) == 0;
    rec->dir = dir, rec->reduce_only = reduce_only;
    rec->leverage = leverage;
    rec->event_time = event_time;
    rec->ctx = ctx;
    r->head = (r->head + 1) % INTENTS_MAX;
    if (r->n < INTENTS_MAX) r->n++;
    r->total++;
    if (rec->exit) r->exits++;
    else r->decided++;
    if (event_time > r->last_at) r->last_at = event_time;
    if (!rec->exit && event_time > r->last_decided_at) r->last_decided_at = event_time;
}

intent_rec_t *intents_find(intents_t *r, const char *id)
{
    for (int k = 1; id && k <= r->n; k++) { /* newest first */
        intent_rec_t *rec = &r->rec[(r->head - k + INTENTS_MAX) % INTENTS_MAX];
        if (strcmp(rec->id, id) == 0) return rec;
    }
    return NULL;
}

intent_rec_t *intents_entry_at(intents_t *r, const char *symbol, int64_t open_time)
{
    for (int k = 1; k <= r->n; k++) { /* newest first */
        intent_rec_t *rec = &r->rec[(r->head - k + INTENTS_MAX) % INTENTS_MAX];
        if (!rec->reduce_only && strcmp(rec->symbol, symbol) == 0 &&
            json_integer_value(json_object_get(rec->ctx, "open_time")) == open_time)
            return rec;
    }
    return NULL;
}

int intents_settle(intents_t *r, const char *id, intent_outcome_t how)
{
    intent_rec_t *rec = intents_find(r, id);
    int first = 0;
    if (rec && how == INTENT_EXECUTED && !rec->executed) {
        rec->executed = 1, r->executed++, first = 1;
        if (rec->exit) r->exits_executed++;
        else r->decided_executed++;
    }
    if (rec && how == INTENT_FAILED && !rec->failed) rec->failed = 1, r->failed++, first = 1;
    for (int i = 0; id && i < r->nhold; i++) {
        if (strcmp(r->hold[i].exit, id) == 0) r->hold[i].exit[0] = '\0';
        if (strcmp(r->hold[i].entry, id) == 0) r->hold[i].entry[0] = '\0';
    }
    return first;
}

void intents_hold_exit(intents_t *r, const char *symbol, const char *id)
{
    intent_hold_t *h = intents_slot(r, symbol);
    if (h) snprintf(h->exit, sizeof h->exit, "%s", id);
}

int intents_exit_held(const intents_t *r, const char *symbol)
{
    const intent_hold_t *h = intents_hold_of(r, symbol);
    return h && h->exit[0];
}

int intents_entry_dir(const intents_t *r, const char *symbol)
{
    const intent_hold_t *h = intents_hold_of(r, symbol);
    return h && h->entry[0] ? h->entry_dir : 0;
}

int intents_holds(const intents_t *r, const char *symbol)
{
    const intent_hold_t *h = intents_hold_of(r, symbol);
    return h && (h->entry[0] || h->exit[0]);
}

long intents_unsettled(const intents_t *r) { return r->total - r->executed - r->failed; }
