/* api.h — the trading-engine's read-only HTTP views: live status (seed
 * 000), the last decisions, positions and PnL, the equity curve. Each reads
 * the engine's modules through the pointers in eng_api_t, which must outlive
 * the server. */
#ifndef QT_API_H
#define QT_API_H

#include "book.h"
#include "declog.h"
#include "httpd.h"
#include "intents.h"
#include "policyview.h"

typedef struct eng_api {
    const policyview_t *pv;
    const intents_t *intents;
    const declog_t *decisions;
    const book_t *book;
} eng_api_t;

/* GET /api/v1/rl-v3/dashboard/live-status, /api/v1/decisions,
 * /api/v1/positions, /api/v1/equity. -1 when a route cannot be added. */
int api_routes(httpd_t *h, const eng_api_t *a);

/* The book as /api/v1/positions shows it (new reference). */
json_t *api_positions_json(const book_t *b);

#endif
