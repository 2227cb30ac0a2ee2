/* binance.h — Binance USDⓈ-M futures REST client: libcurl for HTTP,
 * HMAC-SHA256 signing with mbedTLS over the exact query string.
 *
 * Calls run on the caller's libevent loop (binance_attach, binance_call:
 * libcurl's multi interface, none blocks the loop), or block with short
 * timeouts (QT_BINANCE_TIMEOUT_MS, 3000: binance_public, binance_signed) for
 * tools and start-up. Either way the client honours 429 and
 * 418 (no calls until Retry-After has passed), waits for the next minute
 * when X-MBX-USED-WEIGHT-1M passes QT_BINANCE_WEIGHT_LIMIT, and on -1021 (timestamp outside recvWindow)
 * re-syncs with the server clock once and retries. The API secret never
 * appears in errors or logs; URLs in errors stop before the signature. */
#ifndef QT_BINANCE_H
#define QT_BINANCE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define BINANCE_TESTNET "https://testnet.binancefuture.com"

typedef struct binance_config {
    char base_url[256];
    char api_key[128];
    char api_secret[128];
    long recv_window_ms; /* 5000 */
    long timeout_ms;     /* 3000 */
    long weight_limit;   /* 2000: past this X-MBX-USED-WEIGHT-1M, wait for the next minute; 0 = off */
} binance_config_t;

typedef struct binance_reply {
    long http_status;   /* 0 when no HTTP answer */
    json_t *body;       /* parsed JSON, or NULL */
    int code;           /* Binance error code (negative), 0 if none */
    char msg[256];      /* Binance error message */
    long used_weight;   /* X-MBX-USED-WEIGHT-1M, -1 if absent */
    int unsent;         /* 1: the request provably never reached the exchange (our back-off,
                           no key, no connection); 0: it may have */
} binance_reply_t;

typedef enum {
    BINANCE_OK = 0,        /* HTTP 2xx with JSON */
    BINANCE_TRANSPORT = -1,/* no answer: connect error, timeout, bad JSON */
    BINANCE_HTTP = 1,      /* an HTTP error status; see code/msg */
    BINANCE_BACKOFF = 2    /* not sent: waiting out a 429/418 */
} binance_rc_t;

typedef struct binance binance_t;

/* base_url e.g. BINANCE_TESTNET or https://fapi.binance.com. Copies cfg. */
binance_t *binance_new(const binance_config_t *cfg, char *err, size_t errlen);
void binance_free(binance_t *b);
/* config_get_binance() (config.h) fills a binance_config_t from the environment. */

/* Lowercase hex HMAC-SHA256 of msg under key, into out[65]. */
void binance_sign(const char *key, const char *msg, char out[65]);

/* GET path?query without signing (market data). query may be NULL. */
binance_rc_t binance_public(binance_t *b, const char *path, const char *query, binance_reply_t *r, char *err,
                            size_t errlen);
/* A signed call: params (may be "") gets recvWindow, timestamp and signature
 * appended; the API key goes in X-MBX-APIKEY. method: GET, POST or DELETE. */
binance_rc_t binance_signed(binance_t *b, const char *method, const char *path, const char *params,
                            binance_reply_t *r, char *err, size_t errlen);
void binance_reply_clear(binance_reply_t *r);

/* ---- calls on the loop ---- */
struct event_base;
/* Let b make calls on base's loop (once). -1 when out of memory. */
int binance_attach(binance_t *b, struct event_base *base);
typedef struct binance_call binance_call_t;
/* done(ud, rc, r, err) runs later on the loop, exactly once — also for a call
 * that could not start (back-off, no key: r->unsent) and, with
 * BINANCE_TRANSPORT, for calls still running when b is freed. r and err are
 * borrowed for the callback (take a reference to r->body to keep it). */
typedef void (*binance_done_fn)(void *ud, binance_rc_t rc, binance_reply_t *r, const char *err);
/* The asynchronous binance_signed (signed_call) or binance_public (params:
 * the query, may be NULL): 0, or -1 when out of memory or not attached (done
 * is then not called). A -1021 re-syncs the clock and sends once more. */
int binance_call(binance_t *b, const char *method, const char *path, const char *params, int signed_call,
                 binance_done_fn done, void *ud);

/* 1 when the exchange provably did not act on the request: it never reached
 * the exchange, or the exchange answered 4xx (the sender's problem, 429 and
 * 418 included) other than 408 and other than codes -1006/-1007 (Binance:
 * after a 5xx, a 408 or those codes the outcome is unknown, "could have been
 * a success"). 0 when it may have acted (a timeout after the request went
 * out, 5xx, or a 2xx answer). */
int binance_refused(binance_rc_t rc, const binance_reply_t *r);
/* 1 for the codes Binance sends when the outcome of a request is unknown. */
int binance_outcome_unknown(const binance_reply_t *r);

/* Milliseconds until calls may go out again after a 429/418 (0 if none). */
int64_t binance_backoff_ms(const binance_t *b);
int64_t binance_clock_offset_ms(const binance_t *b); /* server - local, after a re-sync */
long binance_used_weight(const binance_t *b);

#endif
