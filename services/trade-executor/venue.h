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

#include "bus.h"

#include <event2/event.h>
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

/* What a venue call answers. */
typedef struct venue_answer {
    venue_rc_t rc;
    venue_fill_t fill;       /* place, query: VENUE_FILLED */
    venue_filters_t filters; /* filters */
    double balance;          /* balance: USDT available */
    json_t *positions;       /* positions: {symbol: signed amount} (borrowed for the callback), or NULL */
    char code[16];           /* place: the exchange's code of a rejection */
    char err[512];           /* why, for anything but VENUE_FILLED; never a secret */
} venue_answer_t;

/* Every call answers through done(ud, a) later on the loop, exactly once
 * (never inside the call: the caller's state is settled first), also when it
 * cannot be made. a is borrowed for the callback. Strings the caller passes
 * are copied as needed: they may go when the call returns. */
typedef void (*venue_done_fn)(void *ud, const venue_answer_t *a);

typedef struct venue_ops {
    const char *name;
    void (*place)(venue_t *v, const venue_order_t *o, venue_done_fn done, void *ud);
    void (*query)(venue_t *v, const char *symbol, const char *cid, venue_done_fn done, void *ud);
    void (*balance)(venue_t *v, venue_done_fn done, void *ud);
    void (*filters)(venue_t *v, const char *symbol, venue_done_fn done, void *ud);
    void (*positions)(venue_t *v, venue_done_fn done, void *ud);
    /* Milliseconds until the venue takes calls again (it asked for a pause:
     * a 429/418 back-off); 0 when calls may go out now. NULL: never pauses. */
    long long (*pause_ms)(venue_t *v);
    /* Calls still running answer (VENUE_UNAVAILABLE) before this returns. */
    void (*free)(venue_t *v);
} venue_ops_t;

struct venue {
    const venue_ops_t *ops;
    struct event_base *base;
    /* How long after a place request the venue may still act on it (0: never
     * once the request has returned or failed, or it is idempotent anyway). */
    long long in_flight_ms;
};

/* Constructors (venue_paper.c, venue_binance.c), on the service's loop; the
 * paper venue keeps its books in Redis through the bus. */
venue_t *venue_paper_new(struct event_base *base, bus_t *bus, const char *ns, char *err, size_t errlen);
venue_t *venue_binance_new(struct event_base *base, char *err, size_t errlen);

/* Answer a (copied) through done later on v's loop: for calls that need no
 * I/O or cannot be made. */
void venue_answer_later(venue_t *v, const venue_answer_t *a, venue_done_fn done, void *ud);
/* An answer rc with err formatted. */
void venue_answer_set(venue_answer_t *a, venue_rc_t rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
