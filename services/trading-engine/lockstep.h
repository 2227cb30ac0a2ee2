/* lockstep.h — a replay at full speed with this engine as its one sequencer.
 *
 * The engine publishes one thing at a time — a bar's stop-loss/take-profit
 * exits, then its performance.update, then the bar, then the decision's
 * intent — and takes the next step only once every consumer has handled the
 * last one and every intent has its execution. So every service sees the
 * same events in the same order in every run, and the same replay gives the
 * same signals, policies, decisions, intents and fills.
 *
 * "Settled" is asked of Redis: one script sums lag + pending of every group
 * of market, feedback and execution and of this engine's groups of signal
 * and policy. A wait longer than wait_ms lets the replay go on; after three
 * such waits in a row (a consumer is not there) lockstep switches itself
 * off. */
#ifndef QT_LOCKSTEP_H
#define QT_LOCKSTEP_H

#include "bus.h"

#include <event2/event.h>
#include <stdint.h>

typedef struct lockstep lockstep_t;

/* settled(ud) runs when everything published is handled by every consumer.
 * group: this engine's consumer group (its service name, copied). NULL when
 * out of memory. */
lockstep_t *lockstep_new(struct event_base *base, bus_t *bus, const char *group, int enabled, long wait_ms,
                         void (*settled)(void *ud), void *ud);
void lockstep_free(lockstep_t *l);

/* Not switched off (by configuration or by three timeouts). */
int lockstep_enabled(const lockstep_t *l);
/* Something was published: the next step waits until every consumer handled it. */
void lockstep_unsettled(lockstep_t *l);
int lockstep_is_unsettled(const lockstep_t *l);

typedef enum {
    LOCKSTEP_GO = 0,   /* take the next step */
    LOCKSTEP_WAIT = 1, /* offer it again later */
    LOCKSTEP_GAVE_UP   /* waited wait_ms: go on, and decide what waited */
} lockstep_verdict_t;
/* May the next step go? busy: decisions or executions are outstanding. */
lockstep_verdict_t lockstep_wait(lockstep_t *l, int busy, int64_t now_mono);

/* The step the bar (symbol, open_time) is at: 0 exits, 1 performance, 2 the
 * bar itself. Asking about another bar starts it at 0. */
int lockstep_step(lockstep_t *l, const char *symbol, int64_t open_time);
void lockstep_step_set(lockstep_t *l, int step);
/* The bar went out: the next bar starts at step 0. */
void lockstep_bar_done(lockstep_t *l);

/* Waits that ran out, in all. */
long lockstep_timeouts(const lockstep_t *l);

#endif
