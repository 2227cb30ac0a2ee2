/* redislink.h — one asynchronous Redis connection on a libevent loop, kept
 * up: connect (TCP or unix socket), AUTH and SELECT from the REDIS_URL, a
 * PING that must be answered before anything else is sent, a watchdog for
 * what hiredis 0.14 cannot time out (a connect that hangs, a silent Redis),
 * and reconnection with jittered exponential backoff. The bus keeps two.
 *
 * The owner sends through rlink_send() and calls rlink_replied() first in
 * every reply callback; it ticks rlink_watchdog() (every 100 ms or so). A
 * reply callback gets NULL when the link drops: hiredis calls every pending
 * callback then. */
#ifndef QT_REDISLINK_H
#define QT_REDISLINK_H

#include "config.h"
#include "metrics.h"

#include <event2/event.h>
#include <hiredis/async.h>
#include <stdint.h>

/* HELLO: connected, waiting for Redis to answer a PING before anything else is sent. */
typedef enum { RLINK_DOWN, RLINK_CONNECTING, RLINK_HELLO, RLINK_UP } rlink_state_t;

typedef struct rlink {
    const char *name; /* "cmd", "read": in logs, errors and metric labels (static) */
    struct event_base *base;
    const redis_url_t *url; /* borrowed: outlives the link */
    long timeout_ms;        /* QT_REDIS_TIMEOUT_MS */
    redisAsyncContext *ac;  /* NULL while down */
    rlink_state_t state;
    int64_t since_ms, last_progress_ms;
    int64_t allowance_ms; /* a reply may take this long on top of timeout_ms (a blocking read) */
    int inflight, attempts, doomed, forced;
    long long client_id; /* CLIENT ID of the connection (0 until known): to CLIENT UNBLOCK it */
    int quiet;        /* being freed: no logs, no on_down, no reconnect */
    int no_reconnect; /* stopped: a link that drops stays down */
    size_t max_reply_bytes; /* a reply holding more is dropped and the link closed (0: no bound) */
    int oversized;          /* set when that happened; the owner clears it */
    struct event *reconnect_ev;
    metric_t *m_reconnects, *m_up, *m_oversized;
    void (*on_up)(void *ud);
    void (*on_down)(void *ud);
    void *ud;
    char *last_error; /* where the reason of the last failure is written (the owner's buffer) */
    size_t last_error_len;
} rlink_t;

/* Set up l (not connected yet). metrics may be NULL. -1 when out of memory. */
int rlink_init(rlink_t *l, struct event_base *base, const char *name, const redis_url_t *url, long timeout_ms,
               metrics_t *metrics, char *last_error, size_t last_error_len, void (*on_up)(void *),
               void (*on_down)(void *), void *ud);
/* Close the connection (pending callbacks get NULL) and free the timer. */
void rlink_free(rlink_t *l);

void rlink_connect(rlink_t *l);
/* The link of a hiredis context this module connected. */
rlink_t *rlink_of(const redisAsyncContext *ac);
/* Send a command (lens may be NULL) when the link is up: 0, or -1 when it is
 * not or hiredis refused (out of memory). */
int rlink_send(rlink_t *l, redisCallbackFn *fn, void *pd, int argc, const char **argv, const size_t *lens);
/* Send a command already formatted by redisFormatCommand*: 0 or -1, as rlink_send. */
int rlink_send_formatted(rlink_t *l, redisCallbackFn *fn, void *pd, const char *cmd, size_t len);
/* First thing in every reply callback of a command sent on l. */
void rlink_replied(rlink_t *l);
/* Close a link that hangs (see the top of this file). */
void rlink_watchdog(rlink_t *l, int64_t now);
/* The loop was held for ms (see redislink.c): not Redis's silence. */
void rlink_credit(rlink_t *l, int64_t ms, int64_t now);
/* Close the link from outside hiredis callbacks, saying why; it reconnects. */
void rlink_force_close(rlink_t *l, const char *why);
int rlink_up(const rlink_t *l); /* up, and not about to be closed */

#endif
