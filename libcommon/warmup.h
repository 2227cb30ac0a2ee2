/* warmup.h — no signal from windows that are not yet full.
 *
 * A signal service (rl-decision, ml-threshold) decides for a symbol only once
 * it has seen `needed` bars of it; before that each bar is withheld: counted
 * (qt_signals_withheld_total{reason="warming"}), logged when a symbol starts
 * and ends warming, listed per symbol in /api/v1/status and noted in /ready's
 * body (the service stays ready: it is doing what it must). A restart keeps
 * the bars of the checkpoint and the replay, so only a new symbol or history
 * that was trimmed away (ckpt.h) warms again.
 *
 * The symbols are the service's own table (symtab.h): an array of structs
 * that begin with the symbol's name; bars() reads how many bars one holds. */
#ifndef QT_WARMUP_H
#define QT_WARMUP_H

#include "svc.h"

#include <jansson.h>

typedef struct warmup {
    long needed;
    const char *signal; /* the event withheld, for the log */
    const void *slots;
    size_t size;
    const int *n;
    long (*bars)(const void *slot);
    metric_t *m_withheld, *m_warming;
    long withheld;
} warmup_t;

/* Register the metrics, the /ready note; -1 when out of memory. */
int warmup_init(warmup_t *w, svc_t *svc, long needed, const char *signal, const void *slots, size_t size,
                const int *n, long (*bars)(const void *slot));
/* May the symbol, now holding `bars` bars, be decided on? 1 yes; 0 while
 * warming (the bar is counted as withheld; on replay too: the count is of
 * this process's handling). */
int warmup_ready(warmup_t *w, const char *symbol, long bars);
/* {"needed": n, "withheld": n, "warming": {"SYM": bars, ...}} (new reference). */
json_t *warmup_status(const warmup_t *w);

#endif
