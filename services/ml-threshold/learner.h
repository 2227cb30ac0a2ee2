/* learner.h — ml-threshold's learning side: the Reinforcement Signal Manager
 * (rsm.h) and the adaptive thresholds (thresholds.h), fed by closed trades
 * from "<ns>:feedback", with one shared state in Redis so replicas and
 * restarts agree.
 *
 * Shared state: hash "<ns>:ml:state" {version, state} where state is JSON
 * {"rsm": ..., "thresholds": ..., "change_key": ...}. An update computes the
 * new state from the version it holds and writes it with a Lua
 * compare-and-set that also records the trade's key in the sorted set
 * "<ns>:ml:seen" (newest 100000 kept); on a version conflict it reloads and
 * computes again, and a trade already recorded is skipped. A closed trade's
 * key is its trace and symbol, so position.closed and the
 * feedback.prediction.outcome of the same close count once.
 * Threshold changes are published as ml.threshold.adjusted and
 * ml.risk.limit.update on "<ns>:signal" (ids derived from the trade key, so
 * a redelivered trade republishes the same events).
 * RL_CHECKPOINT_PATH (optional) gets the state every RL_CHECKPOINT_INTERVAL
 * seconds and at stop; on start the state comes from Redis, else from that
 * file, else it starts fresh. Other replicas' updates are picked up within
 * a second, and before each signal when the replica shares the partitions
 * with others (learner_sync). */
#ifndef QT_LEARNER_H
#define QT_LEARNER_H

#include "rsm.h"
#include "svc.h"
#include "thresholds.h"

typedef struct learner learner_t;

/* names: the ensemble's members (file members then external ones). */
learner_t *learner_new(svc_t *svc, const char *const *names, int n, char *err, size_t errlen);
void learner_free(learner_t *l);
/* Borrowed; valid until the next event-loop turn. */
const rsm_t *learner_rsm(const learner_t *l);
/* Bring the state up to the shared one now: Redis is asked for its version
 * after every command this process sent before (one round trip) and a newer
 * state is adopted, then done(ud, ok) runs (ok 0: Redis failed or holds a
 * malformed state; the state here is unchanged; done may be NULL). For a replica whose
 * decisions must see the closed trades other replicas learned from (an
 * update reaches the others otherwise within a second). -1 when the link is
 * down or out of memory (done is not called). */
int learner_sync(learner_t *l, void (*done)(void *ud, int ok), void *ud);
/* Write the checkpoint file now (when configured). */
void learner_checkpoint(learner_t *l);
/* Add the "reinforcement" and "thresholds" sections to a status object. */
void learner_status(const learner_t *l, json_t *status);

#endif
