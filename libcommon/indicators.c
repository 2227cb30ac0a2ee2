/* indicators.c — incremental technical indicators (see indicators.h). */
#include "indicators.h"

#include <math.h>
#include <string.h>

static void ema_init(ind_ema_t *e, int period)
{
    memset(e, 0, sizeof *e);
    e->period = period;
    e->value = NAN;
}

/* SMA of the first period values, then value += k (x - value), k = 2/(p+1). */
static double ema_update(ind_ema_t *e, double x)
{
    if (e->n < e->period) {
        e->sum += x;
        if (++e->n == e->period) e->value = e->sum / e->period;
        return e->value;
    }
    e->value += 2.0 / (e->period + 1) * (x - e->value);
    return e->value;
}

void ind_init(indicators_t *s)
{
    memset(s, 0, sizeof *s);
    ema_init(&s->ema20, 20);
    ema_init(&s->ema12, 12);
    ema_init(&s->ema26, 26);
    ema_init(&s->macd_signal, 9);
    regime_init(&s->regime);
    s->sma20 = s->ema20_v = s->rsi14 = s->macd = s->macd_sig = s->macd_hist = NAN;
    s->bb_upper = s->bb_middle = s->bb_lower = s->roc10 = s->mom10 = s->atr14 = s->vol20 = NAN;
}

double ind_close(const indicators_t *s, int n)
{
    if (n < 0 || n >= IND_HISTORY || n >= s->bars) return NAN;
    return s->closes[(s->head - 1 - n + 2 * IND_HISTORY) % IND_HISTORY];
}

/* SMA20 and Bollinger(20, 2), population deviation. */
static void ind_bollinger(indicators_t *s)
{
    if (s->bars < 20) return;
    double sum = 0, var = 0;
    for (int i = 0; i < 20; i++) sum += ind_close(s, i);
    double mean = sum / 20;
    for (int i = 0; i < 20; i++) var += (ind_close(s, i) - mean) * (ind_close(s, i) - mean);
    double sd = sqrt(var / 20);
    s->sma20 = s->bb_middle = mean;
    s->bb_upper = mean + 2 * sd, s->bb_lower = mean - 2 * sd;
}

/* RSI(14), Wilder: the first averages are plain means of the first 14
 * changes; then avg = (avg * 13 + x) / 14. k counts changes, this one included. */
static void ind_rsi(indicators_t *s, double change)
{
    long k = s->bars - 1;
    double gain = change > 0 ? change : 0, loss = change < 0 ? -change : 0;
    if (k <= 14) {
        s->gain_avg += gain / 14, s->loss_avg += loss / 14;
        if (k < 14) return;
    } else {
        s->gain_avg = (s->gain_avg * 13 + gain) / 14;
        s->loss_avg = (s->loss_avg * 13 + loss) / 14;
    }
    s->rsi14 = s->loss_avg == 0 ? (s->gain_avg == 0 ? 50 : 100) : 100 - 100 / (1 + s->gain_avg / s->loss_avg);
}

/* ATR(14), Wilder: the first is the mean of the first 14 true ranges (each
 * against the previous close), then (atr * 13 + tr) / 14. */
static void ind_atr(indicators_t *s, double high, double low)
{
    long k = s->bars - 1;
    double tr = fmax(high - low, fmax(fabs(high - s->prev_close), fabs(low - s->prev_close)));
    if (k <= 14) {
        s->tr_avg += tr / 14;
        if (k == 14) s->atr14 = s->tr_avg;
        return;
    }
    s->tr_avg = (s->tr_avg * 13 + tr) / 14;
    s->atr14 = s->tr_avg;
}

static void ind_vol(indicators_t *s, double close)
{
    s->logret[s->iret] = log(close / s->prev_close);
    s->iret = (s->iret + 1) % 20;
    if (s->nret < 20) s->nret++;
    if (s->nret < 20) return;
    double mean = 0, var = 0;
    for (int i = 0; i < 20; i++) mean += s->logret[i];
    mean /= 20;
    for (int i = 0; i < 20; i++) var += (s->logret[i] - mean) * (s->logret[i] - mean);
    s->vol20 = sqrt(var / 20);
}

int ind_update(indicators_t *s, double high, double low, double close)
{
    if (!(high > 0) || !(low > 0) || !(close > 0) || !isfinite(high + low + close) || low > high) return -1;
    s->closes[s->head] = close;
    s->head = (s->head + 1) % IND_HISTORY;
    s->bars++;
    regime_update(&s->regime, high, low, close);
    if (s->bars > 1) {
        ind_rsi(s, close - s->prev_close);
        ind_atr(s, high, low);
        ind_vol(s, close);
    }
    s->ema20_v = ema_update(&s->ema20, close);
    double e12 = ema_update(&s->ema12, close), e26 = ema_update(&s->ema26, close);
    if (!isnan(e12) && !isnan(e26)) {
        s->macd = e12 - e26;
        s->macd_sig = ema_update(&s->macd_signal, s->macd);
        s->macd_hist = isnan(s->macd_sig) ? NAN : s->macd - s->macd_sig;
    }
    ind_bollinger(s);
    if (s->bars > 10) {
        double c10 = ind_close(s, 10);
        s->roc10 = (close - c10) / c10 * 100.0;
        s->mom10 = close - c10;
    }
    s->prev_close = close;
    return 0;
}
