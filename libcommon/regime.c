/* regime.c — ADX trend regime and relative volatility level (see regime.h). */
#include "regime.h"

#include <math.h>
#include <string.h>

void regime_init(regime_state_t *s)
{
    memset(s, 0, sizeof *s);
    s->adx = NAN;
}

/* Wilder's ADX: smoothed true range and directional movement. */
static void regime_adx_step(regime_state_t *s, double high, double low)
{
    const double n = REGIME_ADX_PERIOD;
    double up = high - s->prev_high, down = s->prev_low - low;
    double pdm = (up > down && up > 0) ? up : 0, mdm = (down > up && down > 0) ? down : 0;
    double tr = fmax(high - low, fmax(fabs(high - s->prev_close), fabs(low - s->prev_close)));
    if (s->bars <= REGIME_ADX_PERIOD) { /* first period: plain sums */
        s->tr_s += tr;
        s->pdm_s += pdm;
        s->mdm_s += mdm;
        if (s->bars < REGIME_ADX_PERIOD) return;
    } else {
        s->tr_s = s->tr_s - s->tr_s / n + tr;
        s->pdm_s = s->pdm_s - s->pdm_s / n + pdm;
        s->mdm_s = s->mdm_s - s->mdm_s / n + mdm;
    }
    double pdi = s->tr_s > 0 ? 100 * s->pdm_s / s->tr_s : 0, mdi = s->tr_s > 0 ? 100 * s->mdm_s / s->tr_s : 0;
    double dx = (pdi + mdi) > 0 ? 100 * fabs(pdi - mdi) / (pdi + mdi) : 0;
    if (s->dx_n < REGIME_ADX_PERIOD) {
        s->dx_sum += dx;
        if (++s->dx_n == REGIME_ADX_PERIOD) s->adx = s->dx_sum / n;
    } else {
        s->adx = (s->adx * (n - 1) + dx) / n;
    }
}

static void regime_vol_step(regime_state_t *s, double close)
{
    double r = log(close / s->prev_close);
    const double alpha = 2.0 / (REGIME_VOL_SPAN + 1);
    s->rets[s->ret_i] = r;
    s->ret_i = (s->ret_i + 1) % REGIME_VOL_WINDOW;
    if (s->ret_n < REGIME_VOL_WINDOW) s->ret_n++;
    s->long_var = s->bars == 1 ? r * r : (1 - alpha) * s->long_var + alpha * r * r;
}

void regime_update(regime_state_t *s, double high, double low, double close)
{
    if (!(high > 0) || !(low > 0) || !(close > 0) || !isfinite(high) || !isfinite(low) || !isfinite(close) ||
        low > high)
        return;
    if (s->bars > 0) {
        regime_adx_step(s, high, low);
        regime_vol_step(s, close);
    }
    s->prev_high = high;
    s->prev_low = low;
    s->prev_close = close;
    s->bars++;
}

double regime_adx(const regime_state_t *s) { return s->adx; }

double regime_vol_ratio(const regime_state_t *s)
{
    if (s->bars < REGIME_VOL_WARMUP || s->ret_n < REGIME_VOL_WINDOW || !(s->long_var > 0)) return NAN;
    double mean = 0, var = 0;
    for (int i = 0; i < s->ret_n; i++) mean += s->rets[i];
    mean /= s->ret_n;
    for (int i = 0; i < s->ret_n; i++) var += (s->rets[i] - mean) * (s->rets[i] - mean);
    var /= s->ret_n;
    return sqrt(var) / sqrt(s->long_var);
}

regime_t regime_trend(const regime_state_t *s)
{
    if (isnan(s->adx)) return REGIME_UNKNOWN;
    return s->adx >= REGIME_ADX_TRENDING ? REGIME_TRENDING : REGIME_RANGING;
}

vol_level_t regime_vol(const regime_state_t *s)
{
    double r = regime_vol_ratio(s);
    if (isnan(r)) return VOL_UNKNOWN;
    if (r < 0.6) return VOL_LOW;
    if (r < 1.5) return VOL_NORMAL;
    if (r < 2.5) return VOL_HIGH;
    return VOL_EXTREME;
}

const char *regime_name(regime_t r)
{
    static const char *const n[] = {"UNKNOWN", "TRENDING", "RANGING"};
    return (unsigned)r < 3 ? n[r] : "UNKNOWN";
}

const char *vol_level_name(vol_level_t v)
{
    static const char *const n[] = {"UNKNOWN", "LOW", "NORMAL", "HIGH", "EXTREME"};
    return (unsigned)v < 5 ? n[v] : "UNKNOWN";
}
