/* feed.h — the market feed: bars from Binance kline CSV files (replay) or a
 * seeded synthetic market, handed to the engine one closed bar at a time.
 *
 * QT_FEED=replay:PATH[,PATH...]  public data-dump layout (open_time, open,
 *   high, low, close, volume, close_time, quote_volume, count,
 *   taker_buy_volume, taker_buy_quote_volume, ignore), header optional,
 *   open_time in ms or µs. Symbol and interval from the file name
 *   (BTCUSDT-1m-2024-01.csv) or QT_FEED_SYMBOL; files are merged by time.
 *   A bad row is logged with file and line, counted and skipped.
 * QT_FEED=synthetic  regime-switching (trend / range / high-vol) random walk
 *   for QT_FEED_SYMBOLS, deterministic for QT_FEED_SEED; QT_FEED_BARS per
 *   symbol (0 = endless) from QT_FEED_START_MS.
 * QT_FEED=binance  closed klines of QT_FEED_SYMBOLS polled every QT_FEED_POLL_MS
 *   from the REST API, every symbol at once on the loop (nothing blocks it).
 * QT_FEED=none  no feed (bars come from elsewhere).
 * QT_FEED_SPEED: multiple of real time; 0 = as fast as the pipeline takes it
 * (the engine throttles on consumer lag). */
#ifndef QT_FEED_H
#define QT_FEED_H

#include <event2/event.h>
#include <jansson.h>
#include <stdint.h>

#include "kline.h"

typedef kline_t feed_bar_t;

typedef struct feed feed_t;
/* Return 0 when the bar was taken, -1 to be offered the same bar again later,
 * -2 when it can never be taken (it is counted as a bad row and skipped). */
typedef int (*feed_emit_fn)(void *ud, const feed_bar_t *bar);

/* Reads QT_FEED and friends. NULL with err for a bad setting or an
 * unreadable file (the message names it). */
feed_t *feed_new(struct event_base *base, feed_emit_fn emit, void *ud, char *err, size_t errlen);
void feed_free(feed_t *f);
/* Bars of symbol at or before open_time were published before: skip them. */
void feed_resume(feed_t *f, const char *symbol, int64_t open_time);
void feed_start(feed_t *f);
/* Hold (1) or release (0) the feed: back-pressure. */
void feed_hold(feed_t *f, int hold);
/* The engine's state changed: a bar the emit callback refused may go now. */
void feed_wake(feed_t *f);
/* A replay at speed 0 (the case that runs in lockstep with the decisions). */
int feed_full_speed_replay(const feed_t *f);
int feed_paced(const feed_t *f); /* 1 when bars follow real time (speed > 0) */
json_t *feed_status(const feed_t *f);

#endif
