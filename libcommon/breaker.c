/* breaker.c — count-based sliding-window circuit breaker (see breaker.h). */
#include "breaker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BREAKER_FAILED 1
#define BREAKER_SLOW 2

struct breaker {
    char name[64];
    breaker_config_t cfg;
    breaker_state_t state;
    unsigned char *ring; /* outcome flags of the last window_size calls */
    int head, calls, failures, slows;
    int64_t opened_at;
    int trials_left, trials_done, trial_failures;
    breaker_change_fn on_change;
    void *ud;
};

void breaker_config_default(breaker_config_t *cfg)
{
    cfg->window_size = 20;
    cfg->min_calls = 10;
    cfg->failure_rate = 0.5;
    cfg->slow_call_ms = 5000;
    cfg->slow_rate = 1.0;
    cfg->open_wait_ms = 30000;
    cfg->half_open_calls = 3;
}

breaker_t *breaker_new(const char *name, const breaker_config_t *cfg)
{
    if (cfg->window_size < 1 || cfg->min_calls < 1 || cfg->half_open_calls < 1 ||
        cfg->failure_rate <= 0 || cfg->failure_rate > 1 || cfg->open_wait_ms < 0)
        return NULL;
    breaker_t *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->ring = calloc((size_t)cfg->window_size, 1);
    if (!b->ring) {
        free(b);
        return NULL;
    }
    snprintf(b->name, sizeof b->name, "%s", name);
    b->cfg = *cfg;
    return b;
}

void breaker_free(breaker_t *b)
{
    if (!b) return;
    free(b->ring);
    free(b);
}

void breaker_on_change(breaker_t *b, breaker_change_fn fn, void *ud)
{
    b->on_change = fn;
    b->ud = ud;
}

static void breaker_reset_window(breaker_t *b)
{
    memset(b->ring, 0, (size_t)b->cfg.window_size);
    b->head = b->calls = b->failures = b->slows = 0;
}

/* Enter state `to`, resetting what that state counts, and tell the listener. */
static void breaker_transition(breaker_t *b, breaker_state_t to, int64_t now_ms)
{
    breaker_state_t from = b->state;
    if (from == to) return;
    b->state = to;
    if (to == BREAKER_OPEN) b->opened_at = now_ms;
    if (to == BREAKER_HALF_OPEN) {
        b->trials_left = b->cfg.half_open_calls;
        b->trials_done = b->trial_failures = 0;
    }
    if (to == BREAKER_CLOSED) breaker_reset_window(b);
    if (b->on_change) b->on_change(b->ud, b, from, to);
}

breaker_state_t breaker_state(breaker_t *b, int64_t now_ms)
{
    if (b->state == BREAKER_OPEN && now_ms - b->opened_at >= b->cfg.open_wait_ms)
        breaker_transition(b, BREAKER_HALF_OPEN, now_ms);
    return b->state;
}

void breaker_force(breaker_t *b, breaker_state_t to, int64_t now_ms)
{
    breaker_transition(b, to, now_ms);
}

int breaker_allow(breaker_t *b, int64_t now_ms)
{
    switch (breaker_state(b, now_ms)) {
    case BREAKER_CLOSED: return 1;
    case BREAKER_OPEN: return 0;
    case BREAKER_HALF_OPEN:
        if (b->trials_left <= 0) return 0;
        b->trials_left--;
        return 1;
    }
    return 0;
}

void breaker_release(breaker_t *b, int64_t now_ms)
{
    if (breaker_state(b, now_ms) == BREAKER_HALF_OPEN && b->trials_left + b->trials_done < b->cfg.half_open_calls)
        b->trials_left++;
}

/* Push one outcome into the window, evicting the oldest when full. */
static void breaker_push(breaker_t *b, unsigned char flags)
{
    if (b->calls == b->cfg.window_size) {
        unsigned char old = b->ring[b->head];
        b->failures -= (old & BREAKER_FAILED) != 0;
        b->slows -= (old & BREAKER_SLOW) != 0;
    } else {
        b->calls++;
    }
    b->ring[b->head] = flags;
    b->head = (b->head + 1) % b->cfg.window_size;
    b->failures += (flags & BREAKER_FAILED) != 0;
    b->slows += (flags & BREAKER_SLOW) != 0;
}

static void breaker_record_half_open(breaker_t *b, int failed, int64_t now_ms)
{
    b->trials_done++;
    b->trial_failures += failed;
    if (b->trials_done < b->cfg.half_open_calls) return;
    double rate = (double)b->trial_failures / b->trials_done;
    breaker_transition(b, rate >= b->cfg.failure_rate ? BREAKER_OPEN : BREAKER_CLOSED, now_ms);
}

void breaker_record(breaker_t *b, int success, int64_t duration_ms, int64_t now_ms)
{
    int slow = b->cfg.slow_call_ms > 0 && duration_ms >= b->cfg.slow_call_ms;
    breaker_state_t st = breaker_state(b, now_ms);
    if (st == BREAKER_HALF_OPEN) {
        breaker_record_half_open(b, !success, now_ms);
        return;
    }
    if (st == BREAKER_OPEN) return; /* a late reply from before the breaker opened */
    breaker_push(b, (unsigned char)((success ? 0 : BREAKER_FAILED) | (slow ? BREAKER_SLOW : 0)));
    if (b->calls < b->cfg.min_calls) return;
    if ((double)b->failures / b->calls >= b->cfg.failure_rate ||
        (b->cfg.slow_call_ms > 0 && (double)b->slows / b->calls >= b->cfg.slow_rate))
        breaker_transition(b, BREAKER_OPEN, now_ms);
}

const char *breaker_name(const breaker_t *b) { return b->name; }

const char *breaker_state_name(breaker_state_t s)
{
    static const char *const names[] = {"closed", "open", "half_open"};
    return (unsigned)s < 3 ? names[s] : "unknown";
}

double breaker_failure_rate(const breaker_t *b)
{
    return b->calls ? (double)b->failures / b->calls : 0.0;
}

int64_t breaker_retry_in_ms(const breaker_t *b, int64_t now_ms)
{
    if (b->state != BREAKER_OPEN) return 0;
    int64_t left = b->opened_at + b->cfg.open_wait_ms - now_ms;
    return left > 0 ? left : 0;
}
