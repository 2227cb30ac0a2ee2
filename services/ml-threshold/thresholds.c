/* thresholds.c — adaptive thresholds (see thresholds.h). */
#include "thresholds.h"
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int thr_config_env(thr_config_t *c, char *err, size_t errlen)
{
    long interval_s;
    if (config_get_double("ML_CONFIDENCE_THRESHOLD", 0.6, 0, 1, &c->base_confidence, err, errlen) < 0 ||
        config_get_double("ML_MAX_POSITION_SIZE", 0.02, 0.0001, 1, &c->base_max_position, err, errlen) < 0 ||
        config_get_double("ML_STOP_LOSS_MULTIPLIER", 1.5, 0.1, 20, &c->base_sl_multiplier, err, errlen) < 0 ||
        config_get_long("ML_MIN_TRADES_FOR_ADAPTATION", 10, 1, THR_WINDOW * 1000, &c->min_trades, err, errlen) < 0 ||
        config_get_long("ML_ADAPTATION_INTERVAL", 3600, 0, 86400 * 30, &interval_s, err, errlen) < 0)
        return -1;
    c->interval_ms = (int64_t)interval_s * 1000;
    return 0;
}

void thr_init(thr_t *t, const thr_config_t *c)
{
    memset(t, 0, sizeof *t);
    t->cfg = *c;
    t->min_confidence = c->base_confidence, t->max_position = c->base_max_position;
    t->sl_multiplier = c->base_sl_multiplier;
    snprintf(t->reason, sizeof t->reason, "base values (fewer than %ld trades)", c->min_trades);
}

/* Win rate and profit factor of the window. */
static void thr_stats(thr_t *t)
{
    double won = 0, lost = 0;
    int wins = 0;
    for (int k = 0; k < t->n; k++) {
        if (t->pnl[k] > 0) wins++, won += t->pnl[k];
        else lost -= t->pnl[k];
    }
    t->win_rate = t->n ? (double)wins / t->n : 0;
    t->profit_factor = lost > 0 ? won / lost : won > 0 ? 99 : 1;
}

/* The values for the current mode and performance; the reason written. */
static void thr_targets(thr_t *t, double *conf, double *maxpos, double *sl)
{
    const thr_config_t *c = &t->cfg;
    const char *why;
    *conf = c->base_confidence, *maxpos = c->base_max_position, *sl = c->base_sl_multiplier;
    if (t->conservative) {
        *conf = fmin(1, c->base_confidence + 0.10), *maxpos = c->base_max_position * 0.5, *sl = c->base_sl_multiplier * 0.8;
        why = "conservative: poor recent performance";
    } else if (t->win_rate >= 0.60 && t->profit_factor >= 1.5) {
        *conf = fmax(0.5, c->base_confidence - 0.05);
        why = "strong recent performance: confidence threshold lowered";
    } else {
        why = "normal performance: base values";
    }
    snprintf(t->reason, sizeof t->reason, "%s (win_rate=%.2f profit_factor=%.2f over %d trades)", why, t->win_rate,
             t->profit_factor, t->n);
}

int thr_observe(thr_t *t, double pnl_pct, int64_t event_time)
{
    double conf, maxpos, sl;
    t->pnl[t->i] = pnl_pct;
    t->i = (t->i + 1) % THR_WINDOW;
    if (t->n < THR_WINDOW) t->n++;
    t->total++;
    if (t->total < t->cfg.min_trades || (t->last_eval && event_time - t->last_eval < t->cfg.interval_ms)) return 0;
    t->last_eval = event_time;
    thr_stats(t);
    int was = t->conservative;
    if (!t->conservative && (t->win_rate < 0.40 || t->profit_factor < 0.8)) t->conservative = 1;
    else if (t->conservative && t->win_rate >= 0.50 && t->profit_factor >= 1.0) t->conservative = 0;
    thr_targets(t, &conf, &maxpos, &sl);
    int changed = was != t->conservative || conf != t->min_confidence || maxpos != t->max_position ||
                  sl != t->sl_multiplier;
    t->min_confidence = conf, t->max_position = maxpos, t->sl_multiplier = sl;
    if (changed) t->adaptations++;
    return changed;
}

json_t *thr_to_json(const thr_t *t)
{
    json_t *pnl = json_array();
    for (int k = 0; k < t->n; k++) json_array_append_new(pnl, json_real(t->pnl[(t->i - t->n + k + THR_WINDOW) % THR_WINDOW]));
    return json_pack("{s:o, s:I, s:I, s:I, s:b, s:f, s:f, s:f, s:f, s:f, s:s}", "pnl", pnl, "total", (json_int_t)t->total,
                     "adaptations", (json_int_t)t->adaptations, "last_eval", (json_int_t)t->last_eval, "conservative",
                     t->conservative, "min_confidence", t->min_confidence, "max_position_size", t->max_position,
                     "stop_loss_multiplier", t->sl_multiplier, "win_rate", t->win_rate, "profit_factor",
                     t->profit_factor, "reason", t->reason);
}

int thr_from_json(thr_t *t, const json_t *j)
{
    thr_t n;
    json_t *pnl = json_object_get(j, "pnl"), *v;
    size_t k;
    const char *reason = json_string_value(json_object_get(j, "reason"));
    thr_init(&n, &t->cfg);
    if (!json_is_array(pnl) || json_array_size(pnl) > THR_WINDOW || !reason) return -1;
    json_array_foreach(pnl, k, v)
    {
        if (!json_is_number(v)) return -1;
        n.pnl[k] = json_number_value(v);
    }
    n.n = (int)json_array_size(pnl), n.i = n.n % THR_WINDOW;
    n.total = (long)json_integer_value(json_object_get(j, "total"));
    n.adaptations = (long)json_integer_value(json_object_get(j, "adaptations"));
    n.last_eval = json_integer_value(json_object_get(j, "last_eval"));
    n.conservative = json_is_true(json_object_get(j, "conservative"));
    n.min_confidence = json_number_value(json_object_get(j, "min_confidence"));
    n.max_position = json_number_value(json_object_get(j, "max_position_size"));
    n.sl_multiplier = json_number_value(json_object_get(j, "stop_loss_multiplier"));
    n.win_rate = json_number_value(json_object_get(j, "win_rate"));
    n.profit_factor = json_number_value(json_object_get(j, "profit_factor"));
    snprintf(n.reason, sizeof n.reason, "%s", reason);
    if (!(n.max_position > 0) || !(n.sl_multiplier > 0) || n.min_confidence < 0 || n.min_confidence > 1) return -1;
    *t = n;
    return 0;
}
