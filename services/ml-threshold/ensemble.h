/* ensemble.h — ml-threshold's signal side: for every closed bar of a symbol,
 * the votes of the file members (libcommon/mlmodel, QT_ML_MODELS) and of
 * external members (model.vote events from any process, names listed in
 * QT_ML_EXTERNAL_MODELS) combined by the seed's predict_with_rl, published
 * as signal.generated on "<ns>:signal".
 *
 * Vote: each member's confidence is scaled by its calibration scaler (RSM)
 * and clipped to [0, 1]; with probability ε (the RSM's exploration rate,
 * drawn from a generator seeded by QT_ML_SEED, symbol and bar, so a replay
 * decides the same) every member weighs the same ("exploring"), otherwise
 * the RSM weights apply. long/short/hold scores = Σ weight × scaled
 * confidence of the members voting that way; the action is LONG or SHORT
 * when its score is strictly the largest, else HOLD; the confidence is the
 * chosen score.
 *
 * External votes for a bar are counted when they arrive before its signal
 * is published: at once when every external member has voted, else
 * QT_VOTE_WINDOW_MS (default 500) of wall time after the bar arrived. Later
 * ones are counted as late in qt_ml_votes_total{result="late"}. A bar that
 * waits is part of its partition's state (checkpoint + replay, ckpt.h), so
 * a restart or the next holder of the partition finishes it. With no
 * external members a bar's signal is published while its event is handled.
 *
 * Replicas share the symbol partitions by lease (lease.h), each symbol's
 * windows and waiting bars with its partition; the learner's state is shared
 * in Redis and read again before a signal whenever another replica may have
 * learned from a trade since (learner_sync). */
#ifndef QT_ENSEMBLE_H
#define QT_ENSEMBLE_H

#include "svc.h"

typedef struct ensemble ensemble_t;

ensemble_t *ensemble_new(svc_t *svc, char *err, size_t errlen);
/* Load the member files again; the old members stay when one fails or the
 * names changed. 0 or -1 with err. */
int ensemble_reload(ensemble_t *e, char *err, size_t errlen);
void ensemble_free(ensemble_t *e);

#endif
