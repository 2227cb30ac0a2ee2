/* publish.h — the trading-engine's events as the contract spells them: the
 * bar, trade intents, position.opened / position.closed,
 * feedback.prediction.outcome and performance.update. Every event id is
 * derived from its cause (id_name), so handling a redelivered input
 * publishes nothing new.
 *
 * Each call returns 0 when the bus took the event, -1 when it refused it
 * (outbox full: try again later), -2 when the event breaks its schema (a
 * bug, or a bar no retry will fix). */
#ifndef QT_PUBLISH_H
#define QT_PUBLISH_H

#include "book.h"
#include "feed.h"
#include "intents.h"
#include "svc.h"

/* Publish data (stolen) as type on stream. */
int pub_event(svc_t *svc, const char *stream, const char *type, json_t *data, const char *id_name, const char *trace);

/* The event id the closed bar b gets on market (derived from the bar). */
void pub_bar_id(const svc_t *svc, const feed_bar_t *b, char id[37]);
/* The closed bar b on market, its trace its own id. */
int pub_bar(svc_t *svc, const feed_bar_t *b);

/* The intent req of symbol for the bar (open_time, event_time); its id into
 * id and its entry context (new reference, the caller keeps it) into *ctx. */
int pub_intent(svc_t *svc, const char *symbol, const intent_req_t *req, double leverage, int64_t event_time,
               int64_t open_time, const char *trace, const char *regime, const json_t *votes, char id[65],
               json_t **ctx);

/* position.opened for symbol's position p, caused by execution exec_id. */
int pub_position_opened(svc_t *svc, const position_t *p, double equity, const char *exec_id, const char *trace);
/* position.closed and feedback.prediction.outcome for a fill that closed a
 * position (reason: SIGNAL, STOP_LOSS, TAKE_PROFIT). */
int pub_position_closed(svc_t *svc, const char *symbol, const fill_result_t *r, const char *reason,
                        const char *exec_id, const char *trace, int64_t t);
/* performance.update of the book at event time t. */
int pub_performance(svc_t *svc, const book_t *b, int64_t t, const char *id_name, const char *trace);

#endif
