/* decider.h — rl-decision: for every closed bar of a symbol, the 64-dim
 * observation (libcommon/obs), the PPO policy's action, confidence (its
 * probability) and value, published as rl.signal.generated on "<ns>:signal".
 * Exploration: with probability epsilon a uniformly random action (per
 * symbol: epsilon from QT_RL_EXPLORATION_INITIAL 0.1, x
 * QT_RL_EXPLORATION_DECAY 0.995 per decision of the symbol, floor
 * QT_RL_EXPLORATION_MIN 0.01; a generator per symbol seeded by QT_RL_SEED and
 * the symbol), off in SHADOW unless QT_RL_EXPLORE_IN_SHADOW. Feedback builds
 * position info and records experience (entry observation, action, reward)
 * on "<ns>:rl.experience". Replicas share the symbol partitions by lease,
 * each partition's symbols checkpointed on their own (ckpt.h), so a symbol's
 * state moves with its partition. */
#ifndef QT_DECIDER_H
#define QT_DECIDER_H

#include "svc.h"

typedef struct decider decider_t;

decider_t *decider_new(svc_t *svc, char *err, size_t errlen);
/* Load QT_RL_MODEL again; on failure the old model stays. 0 or -1 with err. */
int decider_reload(decider_t *d, char *err, size_t errlen);
void decider_free(decider_t *d);

#endif
