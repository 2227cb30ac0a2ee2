/* breaker.h — circuit breaker: closed / open / half-open.
 *
 * Closed: calls pass; outcomes go into a count-based sliding window of the last
 * window_size calls. Once at least min_calls are in the window and the failure
 * rate (or the slow-call rate) reaches its threshold, the breaker opens.
 * Open: calls are refused for open_wait_ms, then the breaker is half-open.
 * Half-open: half_open_calls trial calls are let through; when all have been
 * recorded, the breaker closes if their failure rate is below the threshold,
 * else opens again. Time is passed in (monotonic ms) so tests control it.
 *
 * Defaults (breaker_config_default): window 20 calls, min 10 calls, failure
 * rate 50%, slow call 5000 ms at a slow rate of 100%, open wait 30000 ms,
 * 3 trial calls. */
#ifndef QT_BREAKER_H
#define QT_BREAKER_H

#include <stddef.h>
#include <stdint.h>

typedef enum { BREAKER_CLOSED = 0, BREAKER_OPEN = 1, BREAKER_HALF_OPEN = 2 } breaker_state_t;

typedef struct breaker_config {
    int window_size;          /* calls in the sliding window (1..1000) */
    int min_calls;            /* calls needed before rates are judged */
    double failure_rate;      /* 0..1, opens at or above */
    int64_t slow_call_ms;     /* a call at least this long counts as slow; 0 = off */
    double slow_rate;         /* 0..1, opens at or above */
    int64_t open_wait_ms;     /* time in open before half-open */
    int half_open_calls;      /* trial calls permitted in half-open */
} breaker_config_t;

typedef struct breaker breaker_t;
typedef void (*breaker_change_fn)(void *ud, const breaker_t *b, breaker_state_t from,
                                  breaker_state_t to);

/* The defaults; config_get_breaker() (config.h) reads a breaker's overrides. */
void breaker_config_default(breaker_config_t *cfg);

/* name is copied. Returns NULL on OOM or an invalid config. Free with breaker_free. */
breaker_t *breaker_new(const char *name, const breaker_config_t *cfg);
void breaker_free(breaker_t *b);
void breaker_on_change(breaker_t *b, breaker_change_fn fn, void *ud);

/* May a call go ahead now? In half-open this takes one trial permit. */
int breaker_allow(breaker_t *b, int64_t now_ms);
/* A call that breaker_allow() let through did not happen after all (nothing
 * to record): in half-open its trial permit is given back, so trials cannot
 * run out without an outcome and hold the breaker half-open for good. */
void breaker_release(breaker_t *b, int64_t now_ms);
/* Record the outcome of a call that breaker_allow() let through. */
void breaker_record(breaker_t *b, int success, int64_t duration_ms, int64_t now_ms);
/* Current state, moving open → half-open when the wait is over. */
breaker_state_t breaker_state(breaker_t *b, int64_t now_ms);
void breaker_force(breaker_t *b, breaker_state_t to, int64_t now_ms);

const char *breaker_name(const breaker_t *b);
const char *breaker_state_name(breaker_state_t s);
double breaker_failure_rate(const breaker_t *b); /* over the current window */
/* Milliseconds until an open breaker turns half-open (0 if not open). */
int64_t breaker_retry_in_ms(const breaker_t *b, int64_t now_ms);

#endif
