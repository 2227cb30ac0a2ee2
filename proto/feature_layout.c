/* feature_layout.c — the observation layout, version 1 (see feature_layout.h).
 * Every value is finite: an indicator whose window is not full yet is 0. */
#include "feature_layout.h"

#define LAG(i) {28 + i, "ret_lag_" #i, "log return of the bar " #i " bars before the latest x 100, clipped to [-5, 5]"}
#define RES(i) {i, "reserved_" #i, "always 0 in version 1"}

const feature_spec_t features_layout[FEATURES_DIM] = {
    {0, "ret_1", "log(close / close 1 bar ago) x 100, clipped to [-5, 5]"},
    {1, "ret_5", "log(close / close 5 bars ago) x 100 / sqrt(5), clipped to [-5, 5]"},
    {2, "ret_15", "log(close / close 15 bars ago) x 100 / sqrt(15), clipped to [-5, 5]"},
    {3, "vol_20", "stdev of the last 20 log returns x 100, clipped to [0, 5]"},
    {4, "rsi_14", "(RSI - 50) / 50, in [-1, 1]"},
    {5, "macd", "MACD(12, 26) / close x 100, clipped to [-5, 5]"},
    {6, "macd_signal", "signal(9) / close x 100, clipped to [-5, 5]"},
    {7, "macd_hist", "histogram / close x 1000, clipped to [-5, 5]"},
    {8, "bb_position", "(close - lower) / (upper - lower) x 2 - 1, clipped to [-2, 2]"},
    {9, "bb_width", "(upper - lower) / middle x 100, clipped to [0, 10]"},
    {10, "sma_20_dist", "(close / SMA20 - 1) x 100, clipped to [-5, 5]"},
    {11, "ema_20_dist", "(close / EMA20 - 1) x 100, clipped to [-5, 5]"},
    {12, "momentum_10", "(close - close 10 bars ago) / close x 100, clipped to [-10, 10]"},
    {13, "roc_10", "ROC(10) in percent / 2, clipped to [-5, 5]"},
    {14, "atr_14_pct", "ATR(14) / close x 100, clipped to [0, 5]"},
    {15, "adx_14", "ADX(14) / 100, in [0, 1]"},
    {16, "regime_trending", "1 when ADX >= 25, else 0"},
    {17, "regime_ranging", "1 when ADX < 25, else 0"},
    {18, "regime_unknown", "1 before ADX is known, else 0"},
    {19, "vol_low", "1 when the volatility level is LOW"},
    {20, "vol_normal", "1 when NORMAL"},
    {21, "vol_high", "1 when HIGH"},
    {22, "vol_extreme", "1 when EXTREME"},
    {23, "vol_unknown", "1 before the level is known"},
    {24, "position_side", "-1 short, 0 flat, 1 long"},
    {25, "position_size", "margin of the position / equity, clipped to [0, 1]"},
    {26, "unrealized_pnl_pct", "unrealized PnL / entry notional x 100 / 10, clipped to [-1, 1]"},
    {27, "time_in_trade", "hours since the position opened (event time) / 24, clipped to [0, 1]"},
    LAG(0), LAG(1), LAG(2), LAG(3), LAG(4), LAG(5), LAG(6), LAG(7), LAG(8), LAG(9),
    LAG(10), LAG(11), LAG(12), LAG(13), LAG(14), LAG(15), LAG(16), LAG(17), LAG(18), LAG(19),
    {48, "bar_range_pct", "(high - low) / close x 100 of the latest bar, clipped to [0, 5]"},
    {49, "close_in_range", "(close - low) / (high - low) x 2 - 1 of the latest bar; 0 when high = low"},
    RES(50), RES(51), RES(52), RES(53), RES(54), RES(55), RES(56), RES(57), RES(58), RES(59),
    RES(60), RES(61), RES(62), RES(63),
};
