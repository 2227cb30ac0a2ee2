/* Unit tests: circuit breaker transitions. */
#include "breaker.h"
#include "check.h"
#include "config.h"

static int changes;
static breaker_state_t last_from, last_to;

static void on_change(void *ud, const breaker_t *b, breaker_state_t from, breaker_state_t to)
{
    (void)ud;
    (void)b;
    changes++;
    last_from = from;
    last_to = to;
}

static breaker_t *make(int window, int min_calls, double rate, int64_t wait, int trials)
{
    breaker_config_t c;
    breaker_config_default(&c);
    c.window_size = window;
    c.min_calls = min_calls;
    c.failure_rate = rate;
    c.open_wait_ms = wait;
    c.half_open_calls = trials;
    c.slow_call_ms = 0;
    breaker_t *b = breaker_new("test", &c);
    changes = 0;
    breaker_on_change(b, on_change, NULL);
    return b;
}

TEST(closed_until_min_calls)
{
    breaker_t *b = make(10, 5, 0.5, 1000, 2);
    for (int i = 0; i < 4; i++) {
        CHECK(breaker_allow(b, 0));
        breaker_record(b, 0, 1, 0);
    }
    CHECK_EQ(breaker_state(b, 0), BREAKER_CLOSED); /* 4 failures < min_calls */
    breaker_record(b, 0, 1, 0);
    CHECK_EQ(breaker_state(b, 0), BREAKER_OPEN);
    CHECK_EQ(changes, 1);
    CHECK(!breaker_allow(b, 10));
    breaker_free(b);
}

TEST(failure_rate_threshold)
{
    breaker_t *b = make(10, 10, 0.5, 1000, 2);
    for (int i = 0; i < 6; i++) breaker_record(b, 1, 1, 0);
    for (int i = 0; i < 4; i++) breaker_record(b, 0, 1, 0);
    CHECK_EQ(breaker_state(b, 0), BREAKER_CLOSED); /* 40% */
    breaker_record(b, 0, 1, 0); /* window slides: oldest success out, 5/10 */
    CHECK_EQ(breaker_state(b, 0), BREAKER_OPEN);
    CHECK_NEAR(breaker_failure_rate(b), 0.5, 1e-9);
    breaker_free(b);
}

TEST(sliding_window_forgets_old_failures)
{
    breaker_t *b = make(4, 4, 0.75, 1000, 1);
    const int seq[] = {0, 0, 1, 1, 1, 1, 0, 0}; /* F F S S S S F F */
    for (int i = 0; i < 8; i++) breaker_record(b, seq[i], 1, 0);
    /* without forgetting, 4 failures of 8 calls; the window holds S S F F */
    CHECK_EQ(breaker_state(b, 0), BREAKER_CLOSED);
    CHECK_NEAR(breaker_failure_rate(b), 0.5, 1e-9);
    breaker_record(b, 0, 1, 0); /* S F F F: 3/4 */
    CHECK_EQ(breaker_state(b, 0), BREAKER_OPEN);
    breaker_free(b);
}

TEST(open_to_half_open_after_wait)
{
    breaker_t *b = make(2, 2, 0.5, 1000, 2);
    breaker_record(b, 0, 1, 100);
    breaker_record(b, 0, 1, 100);
    CHECK_EQ(breaker_state(b, 100), BREAKER_OPEN);
    CHECK_EQ(breaker_retry_in_ms(b, 600), 500);
    CHECK_EQ(breaker_state(b, 1099), BREAKER_OPEN);
    CHECK_EQ(breaker_state(b, 1100), BREAKER_HALF_OPEN);
    CHECK_EQ(last_from, BREAKER_OPEN);
    CHECK_EQ(last_to, BREAKER_HALF_OPEN);
    breaker_free(b);
}

/* Opened at 0 by two failures, half-open at 20 with both of its two trials taken. */
static breaker_t *half_open_trials_out(void)
{
    breaker_t *b = make(2, 2, 0.5, 10, 2);
    breaker_record(b, 0, 1, 0);
    breaker_record(b, 0, 1, 0);
    CHECK(breaker_allow(b, 20));  /* trial 1 */
    CHECK(breaker_allow(b, 20));  /* trial 2 */
    CHECK(!breaker_allow(b, 20)); /* no more permits */
    return b;
}

TEST(half_open_success_closes)
{
    breaker_t *b = half_open_trials_out();
    breaker_record(b, 1, 1, 21);
    CHECK_EQ(breaker_state(b, 21), BREAKER_HALF_OPEN);
    breaker_record(b, 1, 1, 22);
    CHECK_EQ(breaker_state(b, 22), BREAKER_CLOSED);
    CHECK_NEAR(breaker_failure_rate(b), 0.0, 1e-9); /* window was reset */
    CHECK(breaker_allow(b, 23));
    breaker_free(b);
}

TEST(half_open_trial_released_without_a_call_is_given_back)
{
    breaker_t *b = half_open_trials_out();
    breaker_release(b, 20); /* the second trial made no call */
    CHECK(breaker_allow(b, 20)); /* so its permit can be taken again */
    breaker_release(b, 20);
    breaker_release(b, 20); /* more releases than permits out: no extra permit */
    breaker_release(b, 20);
    CHECK(breaker_allow(b, 20));
    CHECK(breaker_allow(b, 20));
    CHECK(!breaker_allow(b, 20));
    breaker_record(b, 1, 1, 21);
    breaker_record(b, 1, 1, 21);
    CHECK_EQ(breaker_state(b, 21), BREAKER_CLOSED);
    breaker_release(b, 22); /* closed: nothing to give back, nothing changes */
    CHECK_EQ(breaker_state(b, 22), BREAKER_CLOSED);
    breaker_free(b);
}

TEST(half_open_failure_reopens)
{
    breaker_t *b = half_open_trials_out();
    breaker_record(b, 0, 1, 21);
    breaker_record(b, 1, 1, 21); /* 1/2 failed = 50% >= threshold */
    CHECK_EQ(breaker_state(b, 21), BREAKER_OPEN);
    CHECK(!breaker_allow(b, 25));
    CHECK_EQ(breaker_state(b, 31), BREAKER_HALF_OPEN); /* waits again */
    breaker_free(b);
}

TEST(slow_calls_open)
{
    breaker_config_t c;
    breaker_config_default(&c);
    c.window_size = 4;
    c.min_calls = 4;
    c.slow_call_ms = 100;
    c.slow_rate = 0.5;
    breaker_t *b = breaker_new("slow", &c);
    breaker_record(b, 1, 10, 0);
    breaker_record(b, 1, 10, 0);
    breaker_record(b, 1, 150, 0);
    CHECK_EQ(breaker_state(b, 0), BREAKER_CLOSED);
    breaker_record(b, 1, 100, 0); /* 2/4 slow */
    CHECK_EQ(breaker_state(b, 0), BREAKER_OPEN);
    breaker_free(b);
}

TEST(late_reply_while_open_is_ignored)
{
    breaker_t *b = make(2, 2, 0.5, 1000, 1);
    breaker_record(b, 0, 1, 0);
    breaker_record(b, 0, 1, 0);
    breaker_record(b, 1, 1, 10);
    CHECK_EQ(breaker_state(b, 10), BREAKER_OPEN);
    breaker_free(b);
}

TEST(invalid_config_refused)
{
    breaker_config_t c;
    breaker_config_default(&c);
    c.failure_rate = 0;
    CHECK(breaker_new("x", &c) == NULL);
    breaker_config_default(&c);
    c.window_size = 0;
    CHECK(breaker_new("x", &c) == NULL);
}

TEST(config_from_env)
{
    breaker_config_t c;
    char err[256];
    breaker_config_default(&c);
    setenv("TB_WINDOW", "50", 1);
    setenv("TB_OPEN_WAIT_MS", "1234", 1);
    CHECK_EQ(config_get_breaker("TB", &c, err, sizeof err), 0);
    CHECK_EQ(c.window_size, 50);
    CHECK_EQ(c.open_wait_ms, 1234);
    setenv("TB_FAILURE_RATE", "2", 1);
    CHECK_EQ(config_get_breaker("TB", &c, err, sizeof err), -1);
    CHECK_CONTAINS(err, "TB_FAILURE_RATE");
    unsetenv("TB_FAILURE_RATE");
}

CHECK_MAIN()
