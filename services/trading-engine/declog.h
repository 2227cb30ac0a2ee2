/* declog.h — the last DECLOG_MAX decisions, kept as plain values (built for
 * every bar, rendered only when someone asks), and the decision counters.
 * Pure; no I/O. */
#ifndef QT_DECLOG_H
#define QT_DECLOG_H

#include "live.h"

#include <stdint.h>

#define DECLOG_MAX 200

/* One decision as the API shows it. Every pointer is to a static string. */
typedef struct declog_entry {
    char symbol[24], trace[65], intent_id[65], detail[200];
    int64_t open_time, event_time;
    live_mode_t mode;
    live_rl_t rl;
    live_ens_t ens;
    rl_action_t action;
    double confidence;
    const char *source_tag, *outcome, *reason; /* source_tag and reason may be NULL */
} declog_entry_t;

typedef struct declog {
    declog_entry_t e[DECLOG_MAX];
    int n, head;
    long total, shadow;
    int64_t last_at; /* event time of the newest decision */
} declog_t;

/* Keep a decision (copied) and count it. */
void declog_add(declog_t *l, const declog_entry_t *d);
/* The k-th newest (0 = the newest); NULL past the end. */
const declog_entry_t *declog_newest(const declog_t *l, int k);

#endif
