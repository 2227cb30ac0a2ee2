/* venue.h — where orders go: the paper venue (Redis) or Binance USDⓈ-M
 * futures. The paper venue is idempotent on the client order id: placing
 * the same id twice returns the first order. Binance promises a client order
 * id unique only among *open* orders, and a MARKET order is open for no
 * time: an order whose request went unanswered may still be filled after a
 * query said it does not exist. Such a venue sets in_flight_ms, and the
 * executor does not place that id again until in_flight_ms after its last
 * request (see executor.c). */
#ifndef QT_VENUE_H
#define QT_VENUE_H

#include <jansson.h>
#include <stddef.h>

typedef struct venue venue_t;

typedef struct venue_order {
    const char *symbol, *side, *cid; /* side: BUY / SELL */
    double qty, ref_price, leverage;
    int reduce_only;
} venue_order_t;

typedef struct venue_fill {
    char order_id[64];
    double qty, price, fee;
} venue_fill_t;

typedef struct venue_filters {
    double step, min_qty, min_notional;
} venue_filters_t;

typedef enum {
    VENUE_FILLED = 0,   /* the order exists and filled */
    VENUE_REJECTED = 1, /* refused for good (reason in err): publish trade.failed */
    VENUE_UNAVAILABLE = 2, /* no answer / 5xx / rate limited: try again later */
    VENUE_NOT_FOUND = 3,   /* query: no order with that client order id */
    VENUE_NOT_SENT = 4     /* place: like UNAVAILABLE, but the venue provably did not act on
                              the request (never sent, or refused as 429/4xx): nothing in flight */
} venue_rc_t;

typedef struct venue_ops {
    const char *name;
    venue_rc_t (*place)(venue_t *v, const venue_order_t *o, venue_fill_t *f, char *code, char *err, size_t errlen);
    venue_rc_t (*query)(venue_t *v, const char *symbol, const char *cid, venue_fill_t *f, char *err, size_t errlen);
    venue_rc_t (*balance)(venue_t *v, double *usdt, char *err, size_t errlen);
    venue_rc_t (*filters)(venue_t *v, const char *symbol, venue_filters_t *out, char *err, size_t errlen);
    /* {symbol: signed position amount} (new reference), or NULL with err */
    json_t *(*positions)(venue_t *v, char *err, size_t errlen);
    /* Milliseconds until the venue takes calls again (it asked for a pause:
     * a 429/418 back-off); 0 when calls may go out now. NULL: never pauses. */
    long long (*pause_ms)(venue_t *v);
    void (*free)(venue_t *v);
} venue_ops_t;

struct venue {
    const venue_ops_t *ops;
    /* How long after a place request the venue may still act on it (0: never
     * once the request has returned or failed, or it is idempotent anyway). */
    long long in_flight_ms;
};

/* QT_VENUE=paper (default) or binance-futures. */
venue_t *venue_new(const char *kind, const char *ns, const void *redis_url, char *err, size_t errlen);

/* Constructors (venue_paper.c, venue_binance.c). */
venue_t *venue_paper_new(const char *ns, const void *redis_url, char *err, size_t errlen);
venue_t *venue_binance_new(char *err, size_t errlen);

#endif
