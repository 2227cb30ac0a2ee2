/* fuzz_kline — libFuzzer target for the kline CSV line parser (kline.c).
 *
 * Input: one line, any bytes. A line the parser takes must make a
 * market.data.update its schema takes, built as the trading-engine's feed
 * builds it, so a bar read from a file or from the exchange can always be
 * published (one that could not stalled the feed for good); a line it
 * refuses must come with a reason. Build and run with `make fuzz`. */
#include "kline.h"
#include "proto.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char line[1100], err[256] = ""; /* the feed reads lines into 1,100 bytes */
    kline_t k;
    if (size >= sizeof line) size = sizeof line - 1;
    memcpy(line, data, size);
    line[size] = '\0';
    memset(&k, 0, sizeof k);
    int rc = kline_parse_line(line, &k, err, sizeof err);
    if (rc < 0 && !err[0]) abort();
    if (rc != 0) return 0;
    json_int_t close_time = k.close_time ? k.close_time : k.open_time + 59999;
    json_t *d = json_pack("{s:s, s:s, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:f, s:b, s:I}", "symbol", "BTCUSDT",
                          "interval", "1m", "open_time", (json_int_t)k.open_time, "close_time", close_time, "open", k.open,
                          "high", k.high, "low", k.low, "close", k.close, "volume", k.volume, "quote_volume",
                          k.quote_volume, "trades", (json_int_t)k.trades, "taker_buy_volume", k.taker_buy_volume,
                          "closed", 1, "event_time", close_time);
    if (!d || proto_validate("market.data.update", 1, d, err, sizeof err) < 0) abort(); /* accepted, yet unpublishable */
    json_decref(d);
    return 0;
}
