/* regime.h — market regime and volatility level of one symbol, updated bar
 * by bar in O(1). Shared by every process that needs it, so live code and
 * training code classify markets identically.
 *
 * Trend: ADX(14) with Wilder smoothing; TRENDING when ADX >= 25, RANGING
 * below. Needs 2*14 bars.
 * Volatility level: ratio of short realized volatility (population stdev of
 * the last 20 log returns) to its long-run level (EWMA of squared returns,
 * span 200): < 0.6 LOW, < 1.5 NORMAL, < 2.5 HIGH, otherwise EXTREME. Needs
 * 50 bars. Before warm-up both report UNKNOWN. */
#ifndef QT_REGIME_H
#define QT_REGIME_H

typedef enum { REGIME_UNKNOWN = 0, REGIME_TRENDING, REGIME_RANGING } regime_t;
typedef enum { VOL_UNKNOWN = 0, VOL_LOW, VOL_NORMAL, VOL_HIGH, VOL_EXTREME } vol_level_t;

#define REGIME_ADX_PERIOD 14
#define REGIME_ADX_TRENDING 25.0
#define REGIME_VOL_WINDOW 20
#define REGIME_VOL_SPAN 200
#define REGIME_VOL_WARMUP 50

typedef struct regime_state {
    long bars;
    double prev_high, prev_low, prev_close;
    double tr_s, pdm_s, mdm_s; /* Wilder-smoothed TR, +DM, -DM */
    double dx_sum, adx;
    long dx_n;
    double rets[REGIME_VOL_WINDOW];
    int ret_i, ret_n;
    double long_var;
} regime_state_t;

void regime_init(regime_state_t *s);
/* Feed one closed bar. Bars with non-positive or non-finite prices are ignored. */
void regime_update(regime_state_t *s, double high, double low, double close);

regime_t regime_trend(const regime_state_t *s);
vol_level_t regime_vol(const regime_state_t *s);
double regime_adx(const regime_state_t *s);       /* NaN before warm-up */
double regime_vol_ratio(const regime_state_t *s); /* NaN before warm-up */

const char *regime_name(regime_t r);     /* "TRENDING", "RANGING", "UNKNOWN" */
const char *vol_level_name(vol_level_t v); /* "LOW", "NORMAL", "HIGH", "EXTREME", "UNKNOWN" */

#endif
