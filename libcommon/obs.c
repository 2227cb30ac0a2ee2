/* obs.c — the 64-dim observation from indicators and position
 * (layout and scalings: proto/feature_layout.c). */
#include "obs.h"

#include <math.h>
#include <string.h>

void obs_init(obs_state_t *f)
{
    memset(f, 0, sizeof *f);
    ind_init(&f->ind);
}

int obs_update(obs_state_t *f, double high, double low, double close)
{
    if (ind_update(&f->ind, high, low, close) < 0) return -1;
    f->last_high = high, f->last_low = low;
    return 0;
}

int obs_missing(const obs_state_t *f)
{
    const indicators_t *s = &f->ind;
    const double v[] = {ind_close(s, 20), s->sma20, s->ema20_v, s->rsi14, s->macd, s->macd_sig, s->macd_hist,
                        s->bb_upper, s->bb_lower, s->roc10, s->mom10, s->atr14, s->vol20, regime_adx(&s->regime),
                        regime_vol_ratio(&s->regime)};
    int n = 0;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) n += isnan(v[i]) != 0;
    return n;
}

/* x clipped to [lo, hi]; NaN (window not full) becomes 0. */
static float clip(double x, double lo, double hi)
{
    if (isnan(x)) return 0.0f;
    return (float)(x < lo ? lo : x > hi ? hi : x);
}

static double logret(const indicators_t *s, int from, int n)
{
    double a = ind_close(s, from), b = ind_close(s, from + n);
    return (isnan(a) || isnan(b)) ? NAN : log(a / b) * 100.0;
}

void obs_build(const obs_state_t *f, const position_info_t *pos, float obs[FEATURES_DIM])
{
    const indicators_t *s = &f->ind;
    double c = ind_close(s, 0);
    regime_t r = regime_trend(&s->regime);
    vol_level_t v = regime_vol(&s->regime);
    memset(obs, 0, FEATURES_DIM * sizeof *obs);
    if (isnan(c)) return;
    obs[0] = clip(logret(s, 0, 1), -5, 5);
    obs[1] = clip(logret(s, 0, 5) / sqrt(5), -5, 5);
    obs[2] = clip(logret(s, 0, 15) / sqrt(15), -5, 5);
    obs[3] = clip(s->vol20 * 100, 0, 5);
    obs[4] = clip((s->rsi14 - 50) / 50, -1, 1);
    obs[5] = clip(s->macd / c * 100, -5, 5);
    obs[6] = clip(s->macd_sig / c * 100, -5, 5);
    obs[7] = clip(s->macd_hist / c * 1000, -5, 5);
    double band = s->bb_upper - s->bb_lower;
    obs[8] = band > 0 ? clip((c - s->bb_lower) / band * 2 - 1, -2, 2) : 0;
    obs[9] = clip(band / s->bb_middle * 100, 0, 10);
    obs[10] = clip((c / s->sma20 - 1) * 100, -5, 5);
    obs[11] = clip((c / s->ema20_v - 1) * 100, -5, 5);
    obs[12] = clip(s->mom10 / c * 100, -10, 10);
    obs[13] = clip(s->roc10 / 2, -5, 5);
    obs[14] = clip(s->atr14 / c * 100, 0, 5);
    obs[15] = clip(regime_adx(&s->regime) / 100, 0, 1);
    obs[16] = r == REGIME_TRENDING, obs[17] = r == REGIME_RANGING, obs[18] = r == REGIME_UNKNOWN;
    obs[19] = v == VOL_LOW, obs[20] = v == VOL_NORMAL, obs[21] = v == VOL_HIGH, obs[22] = v == VOL_EXTREME;
    obs[23] = v == VOL_UNKNOWN;
    if (pos) {
        obs[24] = (float)(pos->side > 0 ? 1 : pos->side < 0 ? -1 : 0);
        obs[25] = clip(pos->size, 0, 1);
        obs[26] = clip(pos->upnl_pct / 10, -1, 1);
        obs[27] = clip(pos->hours / 24, 0, 1);
    }
    for (int i = 0; i < 20; i++) obs[28 + i] = clip(logret(s, i, 1), -5, 5);
    obs[48] = clip((f->last_high - f->last_low) / c * 100, 0, 5);
    obs[49] = f->last_high > f->last_low ? clip((c - f->last_low) / (f->last_high - f->last_low) * 2 - 1, -1, 1) : 0;
}
