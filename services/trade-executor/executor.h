/* executor.h — trade intents → orders → trade.executed / trade.failed, with
 * an exactly-once effect:
 *  1. "<ns>:exec:<intent id>" is set to SENT (SET NX) before the order;
 *  2. the venue's client order id derives from the intent id, and both venues
 *     are idempotent on it;
 *  3. the result event and the record's DONE state are written by one
 *     script (bus_publish_then), and only then is the intent acknowledged;
 *  4. a SENT record met again (a crash between order and result) means: ask
 *     the venue for that client order id before ordering.
 * A breaker around the venue pauses consumption while it is open. Every
 * call (Redis, the venue) is asynchronous: intents of other symbols go on
 * while one waits; intents of one symbol go one at a time, in order. */
#ifndef QT_EXECUTOR_H
#define QT_EXECUTOR_H

#include "svc.h"

typedef struct executor executor_t;

executor_t *executor_new(svc_t *svc, char *err, size_t errlen);
/* Before the bus goes (svc_free): stop the venue; answers still on their
 * way free their jobs, whose entries stay pending for the next start. */
void executor_close(executor_t *x);
void executor_free(executor_t *x);

#endif
