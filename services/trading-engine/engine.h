/* engine.h — the trading-engine: market feed, RL v3 live orchestrator,
 * RiskGuard, positions and feedback. engine_new() rebuilds the state from
 * the streams (positions from qt:execution, decided bars and the rate window
 * from qt:trade.intent, the feed's resume point from qt:market), so a killed
 * engine carries on where it stopped. */
#ifndef QT_ENGINE_H
#define QT_ENGINE_H

#include "svc.h"

typedef struct engine engine_t;

engine_t *engine_new(svc_t *svc, char *err, size_t errlen);
/* The book, intents and feed positions read back from the streams
 * (rebuild.h): once this instance is the active one, before the restore. */
int engine_rebuild(engine_t *e, char *err, size_t errlen);
void engine_start(engine_t *e);
void engine_stop(engine_t *e); /* hold the feed, write the checkpoint */
void engine_free(engine_t *e);

#endif
