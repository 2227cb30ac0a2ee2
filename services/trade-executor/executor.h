/* executor.h — trade intents → orders → trade.executed / trade.failed, with
 * an exactly-once effect:
 *  1. "<ns>:exec:<intent id>" is set to SENT (SET NX) before the order;
 *  2. the venue's client order id derives from the intent id, and both venues
 *     are idempotent on it;
 *  3. the result event and the record's DONE state are written in one
 *     MULTI/EXEC, and only then is the intent acknowledged;
 *  4. a SENT record met again (a crash between order and result) means: ask
 *     the venue for that client order id before ordering.
 * A breaker around the venue pauses consumption while it is open. */
#ifndef QT_EXECUTOR_H
#define QT_EXECUTOR_H

#include "svc.h"

typedef struct executor executor_t;

executor_t *executor_new(svc_t *svc, char *err, size_t errlen);
void executor_free(executor_t *x);

#endif
