/* kline.h — klines (OHLCV bars) and the Binance public data-dump CSV line:
 * open_time, open, high, low, close, volume, close_time, quote_volume,
 * count, taker_buy_volume, taker_buy_quote_volume, ignore. Times in ms or µs
 * (µs are converted). Used by the trading-engine's feed and by qtctl. */
#ifndef QT_KLINE_H
#define QT_KLINE_H

#include <stddef.h>
#include <stdint.h>

typedef struct kline {
    char symbol[24], interval[8];
    int64_t open_time, close_time;
    double open, high, low, close, volume, quote_volume, taker_buy_volume;
    long trades;
} kline_t;

#define KLINE_INTERVALS 13
typedef struct kline_interval { const char *name; int64_t ms; } kline_interval_t;
extern const kline_interval_t kline_intervals[KLINE_INTERVALS];

/* Milliseconds of an interval name ("1m" → 60000), 0 if unknown. */
int64_t kline_interval_ms(const char *name);

/* Parse one CSV line into k (symbol/interval untouched). Returns 0, 1 for a
 * header line, or -1 with the reason in err ("high '1e' is not a number",
 * "bar is inconsistent (need low <= open, close <= high)", ...). */
int kline_parse_line(const char *line, kline_t *k, char *err, size_t errlen);

/* Every valid bar of a CSV file in file order, malloc'd (the caller frees),
 * *n of them. Bad rows are skipped and counted in *bad, the first described
 * in first_bad as "FILE:LINE: reason". NULL with err when the file cannot be
 * read or holds no bar. */
kline_t *kline_load_csv(const char *path, long *n, long *bad, char *first_bad, size_t fblen, char *err, size_t errlen);

#endif
