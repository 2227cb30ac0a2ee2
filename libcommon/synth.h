/* synth.h — the seeded synthetic market: per symbol, a regime-switching
 * random walk of 1-minute bars (trend up, trend down, mean-reverting range,
 * high volatility; a switch about every 4 hours). The same seed and symbol
 * index always give the same bars: used by the trading-engine's synthetic
 * feed and by the RL trainer. */
#ifndef QT_SYNTH_H
#define QT_SYNTH_H

#include "kline.h"

#include <stdint.h>

typedef struct synth_sym {
    char symbol[24];
    uint64_t rng;
    double price, anchor;
    int regime; /* 0 up, 1 down, 2 range, 3 high-vol */
    long made;
} synth_sym_t;

/* The index-th symbol of a market seeded with seed. */
void synth_sym_init(synth_sym_t *s, const char *symbol, long seed, int index);
/* The symbol's next bar, opening at open_time. */
void synth_bar(synth_sym_t *s, int64_t open_time, kline_t *b);

#endif
