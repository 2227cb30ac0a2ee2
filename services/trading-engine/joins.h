/* joins.h — the signals of each symbol's bar, joined until the bar is
 * decided. Pure bookkeeping, no I/O.
 *
 * One bar per symbol is joined at a time. A signal for a bar already decided,
 * or older than the one being joined, is late (counted, dropped). A signal
 * for a later bar means the joined one gets nothing more: it is due first.
 * A bar is never decided twice. */
#ifndef QT_JOINS_H
#define QT_JOINS_H

#include "live.h"

#include <jansson.h>
#include <stdint.h>

#define JOINS_SYMS 64

typedef struct join {
    int active;
    int64_t open_time, event_time, first_mono;
    live_rl_t rl;
    live_ens_t ens;
    json_t *votes; /* ensemble model_votes (owned) */
    char regime[32], trace[65];
} join_t;

typedef struct join_sym {
    char symbol[24];
    int64_t decided_upto;  /* open_time of the last bar decided on */
    int64_t last_bar_open; /* open_time of the newest bar seen */
    int64_t leap_held;     /* a bar far ahead, refused until another confirms it (timeguard.h) */
    join_t join;
} join_sym_t;

typedef struct joins {
    join_sym_t s[JOINS_SYMS];
    int n;
    long late; /* signals dropped as late */
} joins_t;

/* One signal as the join takes it (everything borrowed for the call). */
typedef struct join_signal {
    const char *symbol, *trace, *regime; /* regime may be NULL */
    int64_t open_time, event_time;
    int rl;              /* 1: rl.signal.generated, 0: signal.generated */
    rl_action_t action;  /* rl */
    int dir;             /* ensemble: +1 LONG, -1 SHORT, 0 HOLD */
    double confidence;
    const json_t *votes; /* ensemble model_votes, may be NULL */
} join_signal_t;

typedef enum {
    JOIN_LATE = 0,  /* dropped (counted) */
    JOIN_OK = 1,    /* take it */
    JOIN_OLDER_DUE  /* decide the joined bar first, then take it */
} join_verdict_t;

void joins_free(joins_t *j);
/* The symbol's entry (added when new), NULL when the table is full or the
 * name does not fit. */
join_sym_t *joins_sym(joins_t *j, const char *symbol);
/* What to do with a signal for s's bar open_time. */
join_verdict_t joins_check(joins_t *j, const join_sym_t *s, int64_t open_time);
/* Add the signal to s's join (starting one at now_mono when none). */
void joins_take(join_sym_t *s, const join_signal_t *sig, int64_t now_mono);
/* s's joined bar is decided: remember it, clear the join. */
void joins_done(join_sym_t *s);
/* A bar of s was published or seen. */
void joins_bar(join_sym_t *s, int64_t open_time);
/* Has the join what the mode needs? rl_silent: the rl-signals breaker is
 * open (HYBRID falls back to the ensemble). */
int join_ready(const join_t *j, live_mode_t mode, int enabled, int rl_silent);

#endif
