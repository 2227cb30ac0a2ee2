/* orchestrator.c — TradingPolicy rules, similarity and stability (see orchestrator.h). */
#include "orchestrator.h"
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *const profile_names[] = {"NORMAL", "REDUCED", "NO_NEW_TRADES"};
static const char *const entry_names[] = {"NORMAL", "DEFENSIVE", "AGGRESSIVE"};
static const char *const exit_names[] = {"TREND_FOLLOW", "FAST_TP", "DEFENSIVE_TRAIL"};

void orch_config_default(orch_config_t *c)
{
    c->base_confidence = 0.50;
    c->base_risk_pct = 1.0;
    c->daily_dd_limit = 3.0;
    c->losing_streak_limit = 5;
    c->max_open_positions = 8;
    c->total_exposure_limit = 15.0;
    c->update_interval_sec = 60;
    c->similarity_keep = 0.98;
    c->ensemble_quality_min = 0.40;
    c->spread_high_bps = 10.0;
    c->slippage_high_bps = 8.0;
}

int orch_config_env(orch_config_t *c, char *err, size_t errlen)
{
    long streak, maxpos;
    if (config_get_double("ORCH_BASE_CONFIDENCE", c->base_confidence, 0, 1, &c->base_confidence, err, errlen) < 0 ||
        config_get_double("ORCH_BASE_RISK_PCT", c->base_risk_pct, 0.001, 100, &c->base_risk_pct, err, errlen) < 0 ||
        config_get_double("ORCH_DAILY_DD_LIMIT", c->daily_dd_limit, 0.01, 100, &c->daily_dd_limit, err, errlen) < 0 ||
        config_get_long("ORCH_LOSING_STREAK_LIMIT", c->losing_streak_limit, 1, 1000, &streak, err, errlen) < 0 ||
        config_get_long("ORCH_MAX_OPEN_POSITIONS", c->max_open_positions, 1, 1000, &maxpos, err, errlen) < 0 ||
        config_get_double("ORCH_TOTAL_EXPOSURE_LIMIT", c->total_exposure_limit, 0.01, 10000, &c->total_exposure_limit,
                          err, errlen) < 0 ||
        config_get_long("ORCH_POLICY_UPDATE_INTERVAL_SEC", c->update_interval_sec, 0, 86400, &c->update_interval_sec,
                        err, errlen) < 0 ||
        config_get_double("ORCH_SIMILARITY_KEEP", c->similarity_keep, 0, 1, &c->similarity_keep, err, errlen) < 0)
        return -1;
    c->losing_streak_limit = (int)streak;
    c->max_open_positions = (int)maxpos;
    return 0;
}

perf_tag_t orch_perf_tag(double winrate, double avg_r, int trades)
{
    if (trades < 10) return PERF_NEUTRAL; /* too few trades to judge */
    if (winrate < 0.35 || avg_r < 0.5) return PERF_BAD;
    if (winrate > 0.55 && avg_r > 1.2) return PERF_GOOD;
    return PERF_NEUTRAL;
}

const char *perf_tag_name(perf_tag_t t)
{
    return t == PERF_GOOD ? "GOOD" : t == PERF_BAD ? "BAD" : "NEUTRAL";
}

static void note_add(trading_policy_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note_add(trading_policy_t *p, const char *fmt, ...)
{
    size_t n = strlen(p->note);
    if (n && n + 2 < sizeof p->note) {
        memcpy(p->note + n, "; ", 3);
        n += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->note + n, sizeof p->note - n, fmt, ap);
    va_end(ap);
}

/* allowed = every known symbol not tagged BAD; disallowed = the BAD ones. */
static void orch_symbols(const orch_inputs_t *in, trading_policy_t *p)
{
    for (int i = 0; i < in->nsymbols && i < ORCH_MAX_SYMBOLS; i++) {
        const orch_symbol_t *s = &in->symbols[i];
        if (s->tag == PERF_BAD) snprintf(p->disallowed[p->ndisallowed++], 24, "%s", s->symbol);
        else snprintf(p->allowed[p->nallowed++], 24, "%s", s->symbol);
    }
}

/* The first blocking condition, worded for the note; NULL when none holds. */
static const char *orch_block(const orch_config_t *c, const orch_inputs_t *in, char *why, size_t len)
{
    if (in->risk_known && in->daily_pnl_pct <= -c->daily_dd_limit)
        snprintf(why, len, "Daily DD limit hit (%.2f%%)", in->daily_pnl_pct);
    else if (in->vol == VOL_EXTREME)
        snprintf(why, len, "EXTREME volatility - no new trades");
    else if (in->risk_known && in->open_positions >= c->max_open_positions)
        snprintf(why, len, "Max open positions reached (%d/%d)", in->open_positions, c->max_open_positions);
    else if (in->risk_known && in->exposure_pct >= c->total_exposure_limit)
        snprintf(why, len, "Total exposure limit reached (%.2f%% >= %.2f%%)", in->exposure_pct, c->total_exposure_limit);
    else
        return NULL;
    return why;
}

/* Steps 2-6 of the matrix: risk multiplier and confidence adjustments. */
static void orch_adjust(const orch_config_t *c, const orch_inputs_t *in, trading_policy_t *p, double *mult,
                        double *conf)
{
    regime_t regime = in->regime == REGIME_UNKNOWN ? REGIME_RANGING : in->regime;
    vol_level_t vol = in->vol == VOL_UNKNOWN ? VOL_NORMAL : in->vol;
    if (vol == VOL_HIGH) {
        *mult *= 0.5, *conf += 0.03;
        note_add(p, "HIGH volatility - risk reduced 50%%");
    }
    if (regime == REGIME_TRENDING && vol != VOL_HIGH) {
        p->entry_mode = ENTRY_AGGRESSIVE, p->exit_mode = EXIT_TREND_FOLLOW, *conf -= 0.03;
        note_add(p, "TRENDING + %s_VOL - aggressive trend following", vol_level_name(vol));
    } else if (regime == REGIME_RANGING) {
        p->entry_mode = ENTRY_DEFENSIVE, p->exit_mode = EXIT_FAST_TP, *mult *= 0.7, *conf += 0.05;
        note_add(p, "RANGING market - defensive scalping%s", in->regime == REGIME_UNKNOWN ? " (regime not yet known)" : "");
    }
    if (in->risk_known && in->losing_streak >= c->losing_streak_limit) {
        *mult *= 0.3, p->entry_mode = ENTRY_DEFENSIVE, *conf = fmax(*conf, c->base_confidence + 0.05);
        note_add(p, "Losing streak %d - reduced to 30%% risk", in->losing_streak);
    }
    if (in->spread_bps > c->spread_high_bps || in->slippage_bps > c->slippage_high_bps) {
        p->entry_mode = ENTRY_DEFENSIVE, *conf += 0.03;
        note_add(p, "High costs - tighter entry filter");
    }
    if (in->ensemble_quality >= 0 && in->ensemble_quality < c->ensemble_quality_min) {
        *conf += 0.05;
        note_add(p, "Low ensemble quality (%.2f) - stricter confidence", in->ensemble_quality);
    }
}

void orch_compute(const orch_config_t *c, const orch_inputs_t *in, int64_t event_time, trading_policy_t *p)
{
    char why[160];
    double mult = 1.0, conf = c->base_confidence;
    memset(p, 0, sizeof *p);
    p->allow_new_trades = 1;
    p->max_risk_pct = c->base_risk_pct;
    p->min_confidence = c->base_confidence;
    p->event_time = event_time;
    orch_symbols(in, p);
    if (orch_block(c, in, why, sizeof why)) {
        p->allow_new_trades = 0;
        p->risk_profile = PROFILE_NO_NEW_TRADES;
        note_add(p, "%s", why);
        return;
    }
    orch_adjust(c, in, p, &mult, &conf);
    p->max_risk_pct = round(c->base_risk_pct * mult * 1e9) / 1e9;
    p->min_confidence = round(fmin(1.0, fmax(0.0, conf)) * 1e9) / 1e9;
    p->risk_profile = mult < 1.0 - 1e-12 ? PROFILE_REDUCED : PROFILE_NORMAL;
    if (!p->note[0]) note_add(p, "Normal conditions");
}

/* Jaccard similarity of the disallowed lists. */
static double orch_symbols_similarity(const trading_policy_t *a, const trading_policy_t *b)
{
    int common = 0;
    if (a->ndisallowed == 0 && b->ndisallowed == 0) return 1.0;
    for (int i = 0; i < a->ndisallowed; i++)
        for (int j = 0; j < b->ndisallowed; j++) common += strcmp(a->disallowed[i], b->disallowed[j]) == 0;
    return (double)common / (a->ndisallowed + b->ndisallowed - common);
}

double orch_similarity(const trading_policy_t *a, const trading_policy_t *b)
{
    double hi = fmax(a->max_risk_pct, b->max_risk_pct);
    double risk = hi > 0 ? 1.0 - fabs(a->max_risk_pct - b->max_risk_pct) / hi : 1.0;
    double conf = 1.0 - fmin(1.0, fabs(a->min_confidence - b->min_confidence) / 0.10);
    return 0.40 * (a->allow_new_trades == b->allow_new_trades) + 0.20 * (a->risk_profile == b->risk_profile) +
           0.10 * risk + 0.10 * conf + 0.10 * (a->entry_mode == b->entry_mode) +
           0.05 * (a->exit_mode == b->exit_mode) + 0.05 * orch_symbols_similarity(a, b);
}

int orch_update(orch_t *o, const orch_inputs_t *in, int64_t event_time, int force)
{
    trading_policy_t cand;
    orch_compute(&o->cfg, in, event_time, &cand);
    int due = !o->has_current || force || event_time - o->last_update_ms >= o->cfg.update_interval_sec * 1000;
    int safety = o->has_current && o->current.allow_new_trades && !cand.allow_new_trades;
    if (!due && !safety) return 0;
    if (o->has_current && !force && !safety && orch_similarity(&cand, &o->current) >= o->cfg.similarity_keep) {
        o->last_update_ms = event_time; /* near-identical: keep, do not flip */
        return 0;
    }
    cand.version = o->has_current ? o->current.version + 1 : 1;
    o->current = cand;
    o->has_current = 1;
    o->last_update_ms = event_time;
    return 1;
}

static json_t *orch_list_json(char list[][24], int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_string(list[i]));
    return a;
}

json_t *orch_policy_json(const trading_policy_t *p)
{
    char ts[40];
    time_t secs = (time_t)(p->event_time / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_pack("{s:b, s:s, s:f, s:f, s:s, s:s, s:o, s:o, s:s, s:s, s:i, s:I}", "allow_new_trades",
                     p->allow_new_trades, "risk_profile", profile_names[p->risk_profile], "max_risk_pct",
                     p->max_risk_pct, "min_confidence", p->min_confidence, "entry_mode", entry_names[p->entry_mode],
                     "exit_mode", exit_names[p->exit_mode], "allowed_symbols",
                     orch_list_json((char(*)[24])p->allowed, p->nallowed), "disallowed_symbols",
                     orch_list_json((char(*)[24])p->disallowed, p->ndisallowed), "note", p->note, "timestamp", ts,
                     "version", p->version > 0 ? p->version : 1, "event_time", (json_int_t)p->event_time);
}

static int orch_enum(const char *s, const char *const *names, int n)
{
    for (int i = 0; s && i < n; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

static int orch_list_from(const json_t *a, char list[][24], int *n)
{
    size_t i;
    json_t *e;
    *n = 0;
    json_array_foreach(a, i, e) {
        if (!json_is_string(e) || *n == ORCH_MAX_SYMBOLS) return -1;
        snprintf(list[(*n)++], 24, "%s", json_string_value(e));
    }
    return 0;
}

int orch_policy_from_json(const json_t *j, trading_policy_t *p)
{
    memset(p, 0, sizeof *p);
    int prof = orch_enum(json_string_value(json_object_get(j, "risk_profile")), profile_names, 3);
    int entry = orch_enum(json_string_value(json_object_get(j, "entry_mode")), entry_names, 3);
    int ex = orch_enum(json_string_value(json_object_get(j, "exit_mode")), exit_names, 3);
    if (prof < 0 || entry < 0 || ex < 0 || !json_is_boolean(json_object_get(j, "allow_new_trades")) ||
        orch_list_from(json_object_get(j, "allowed_symbols"), p->allowed, &p->nallowed) < 0 ||
        orch_list_from(json_object_get(j, "disallowed_symbols"), p->disallowed, &p->ndisallowed) < 0)
        return -1;
    p->allow_new_trades = json_is_true(json_object_get(j, "allow_new_trades"));
    p->risk_profile = (risk_profile_t)prof;
    p->entry_mode = (entry_mode_t)entry;
    p->exit_mode = (exit_mode_t)ex;
    p->max_risk_pct = json_number_value(json_object_get(j, "max_risk_pct"));
    p->min_confidence = json_number_value(json_object_get(j, "min_confidence"));
    const char *note = json_string_value(json_object_get(j, "note"));
    snprintf(p->note, sizeof p->note, "%s", note ? note : "");
    p->event_time = json_integer_value(json_object_get(j, "event_time"));
    p->version = (int)json_integer_value(json_object_get(j, "version"));
    return 0;
}
