/* indicators.h — technical indicators of one symbol, updated bar by bar in
 * O(1) (O(window) for the Bollinger deviation), with the definitions users
 * compare against other tools (formulas in docs/features.md):
 *   SMA(20); EMA(20) seeded with the SMA of its first 20 closes;
 *   RSI(14) with Wilder smoothing (first averages: plain means of 14 changes);
 *   MACD(12, 26, 9) in price units: EMA12 - EMA26 (each SMA-seeded), signal =
 *     EMA9 of MACD seeded with the mean of its first 9 values, histogram;
 *   Bollinger(20, 2): SMA20 ± 2 population standard deviations;
 *   ROC(10) in percent; momentum(10) in price units; ATR(14) Wilder;
 *   realized volatility: population stdev of the last 20 log returns;
 *   ADX(14), regime and volatility level from regime.h.
 * Values are NaN until their window is full. */
#ifndef QT_INDICATORS_H
#define QT_INDICATORS_H

#include "regime.h"

#define IND_HISTORY 32 /* closes kept: enough for every window above */

typedef struct ind_ema {
    int period, n;
    double sum, value;
} ind_ema_t;

typedef struct indicators {
    long bars;
    double closes[IND_HISTORY]; /* ring, newest at (head - 1) */
    int head;
    double prev_close;
    ind_ema_t ema20, ema12, ema26, macd_signal;
    double gain_avg, loss_avg; /* RSI, Wilder */
    double tr_avg;             /* ATR, Wilder */
    double logret[20];
    int nret, iret;
    regime_state_t regime;
    /* latest values */
    double sma20, ema20_v, rsi14, macd, macd_sig, macd_hist, bb_upper, bb_middle, bb_lower, roc10, mom10, atr14, vol20;
} indicators_t;

void ind_init(indicators_t *s);
/* Feed one closed bar; bars with non-positive prices are ignored (return -1). */
int ind_update(indicators_t *s, double high, double low, double close);
/* The close n bars ago (0 = latest), or NaN. */
double ind_close(const indicators_t *s, int n);

#endif
