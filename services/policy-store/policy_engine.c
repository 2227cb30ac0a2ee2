/* policy_engine.c — inputs → TradingPolicy → stream and Redis (see policy_engine.h). */
#include "policy_engine.h"
#include "symtab.h"
#include "timeguard.h"
#include "keys.h"
#include "ckpt.h"
#include "clock.h"
#include "dedupe.h"
#include "event.h"
#include "inputs.h"
#include "log.h"
#include "orchestrator.h"
#include "policyview.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENGINE_TICK_MS 1000
#define ENGINE_REFRESH_MS 10000 /* configuration cached at most 10 s */
#define ENGINE_SEED_MS 2000     /* how soon a configuration Redis lost is re-seeded */
#define DAY_MS 86400000LL

struct policy_engine {
    svc_t *svc;
    config_store_t *cs;
    orch_t orch;
    inputs_t in;
    dedupe_t *seen;
    struct event *tick;
    int seeded, seeding, publish_pending, persist_pending;
    policyview_t pv; /* the configuration hash as last read, kept current by policy.config.updated */
    int64_t last_event_time, last_day, refreshed_ms, seed_ms;
    int64_t leap_held; /* see timeguard.h */
    char trigger_id[EVENT_ID_MAX + 1], trigger_trace[EVENT_ID_MAX + 1];
    char k_trading[160], k_history[160];
    long published, evaluated, ignored_symbols;
};

/* ---------- publishing and persistence ---------- */

static void policy_engine_persist_cb(void *ud, const struct redisReply *r)
{
    policy_engine_t *e = ud;
    if (!r || r->type == REDIS_REPLY_ERROR) e->persist_pending = 1;
}

/* Current policy and history in Redis; retried by the tick on failure. */
static void policy_engine_persist(policy_engine_t *e)
{
    if (bus_replaying(e->svc->bus)) return; /* written when the entry was first handled */
    json_t *j = orch_policy_json(&e->orch.current);
    char *txt = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(j);
    if (!txt) return;
    const char *set[] = {"SET", e->k_trading, txt};
    const char *push[] = {"LPUSH", e->k_history, txt};
    const char *trim[] = {"LTRIM", e->k_history, "0", "99"};
    e->persist_pending = bus_redis(e->svc->bus, policy_engine_persist_cb, e, 3, set, NULL) < 0 ||
                         bus_redis(e->svc->bus, policy_engine_persist_cb, e, 3, push, NULL) < 0 ||
                         bus_redis(e->svc->bus, policy_engine_persist_cb, e, 4, trim, NULL) < 0;
    free(txt);
}

/* policy.trading.updated; its id derives from the version and the trigger so
 * a redelivered trigger republishes the same id. */
static void policy_engine_publish(policy_engine_t *e)
{
    char err[256], name[160], id[37];
    event_t ev;
    snprintf(name, sizeof name, "policy.trading:%s:%d:%s", e->svc->cfg.ns, e->orch.current.version, e->trigger_id);
    event_derive_id(name, id);
    if (event_make(&ev, "policy.trading.updated", orch_policy_json(&e->orch.current), e->trigger_trace, id, err,
                   sizeof err) < 0) {
        log_error("policy does not match its own schema: %s", err);
        return;
    }
    e->publish_pending = bus_publish(e->svc->bus, "policy", &ev, err, sizeof err) < 0;
    if (e->publish_pending) log_warn("policy v%d not published yet: %s", e->orch.current.version, err);
    else e->published++;
    event_clear(&ev);
}

static void policy_engine_adopted(policy_engine_t *e)
{
    const trading_policy_t *p = &e->orch.current;
    if (!bus_replaying(e->svc->bus))
        log_msg(LOG_INFO, e->trigger_trace, "POLICY v%d: allow_trades=%d risk_profile=%s max_risk=%.3f%% min_conf=%.2f: %s",
            p->version, p->allow_new_trades,
            p->risk_profile == PROFILE_NORMAL ? "NORMAL" : p->risk_profile == PROFILE_REDUCED ? "REDUCED" : "NO_NEW_TRADES",
            p->max_risk_pct, p->min_confidence, p->note);
    policy_engine_publish(e);
    policy_engine_persist(e);
}

/* Evaluate at event time t; a new UTC day resets today's PnL and forces an update. */
static void policy_engine_evaluate(policy_engine_t *e, int64_t t, int force)
{
    orch_inputs_t oi;
    int64_t day = t / DAY_MS;
    if (e->last_day && day > e->last_day) {
        log_info("new UTC day of event time: daily reset");
        inputs_reset_daily(&e->in);
        force = 1;
    }
    if (day > e->last_day) e->last_day = day;
    if (t > e->last_event_time) e->last_event_time = t;
    inputs_build(&e->in, &oi);
    e->evaluated++;
    if (orch_update(&e->orch, &oi, t, force)) policy_engine_adopted(e);
}

/* ---------- stream handlers ---------- */

typedef void (*policy_engine_input_fn)(policy_engine_t *e, const json_t *data);

static void on_bar(policy_engine_t *e, const json_t *d) { e->ignored_symbols += inputs_on_bar(&e->in, d) < 0; }
static void on_perf(policy_engine_t *e, const json_t *d) { inputs_on_performance(&e->in, d); }
static void on_closed(policy_engine_t *e, const json_t *d) { e->ignored_symbols += inputs_on_closed(&e->in, d) < 0; }
static void on_outcome(policy_engine_t *e, const json_t *d) { inputs_on_outcome(&e->in, d); }
static void on_exec(policy_engine_t *e, const json_t *d) { inputs_on_execution(&e->in, d); }

static const struct { const char *type; policy_engine_input_fn fn; } policy_engine_inputs[] = {
    {"market.data.update", on_bar},       {"performance.update", on_perf},
    {"position.closed", on_closed},       {"feedback.prediction.outcome", on_outcome},
    {"trade.executed", on_exec},
};

static bus_result_t policy_engine_handle(void *ud, const bus_msg_t *m, char *err, size_t errlen)
{
    policy_engine_t *e = ud;
    const json_t *tj = json_object_get(m->ev->data, "event_time");
    int64_t t = tj ? json_integer_value(tj) : m->ev->ts;
    for (size_t i = 0; i < sizeof policy_engine_inputs / sizeof policy_engine_inputs[0]; i++) {
        if (strcmp(m->ev->type, policy_engine_inputs[i].type) != 0) continue;
        /* the day turns on event time: one entry far ahead would turn it for good */
        if (tguard_leap(e->last_event_time, &e->leap_held, t, 0, "event time", err, errlen) < 0) return BUS_DEAD;
        if (dedupe_check(e->seen, m->ev->id)) return BUS_OK; /* redelivered: already counted */
        policy_engine_inputs[i].fn(e, m->ev->data);
        snprintf(e->trigger_id, sizeof e->trigger_id, "%s", m->ev->id);
        snprintf(e->trigger_trace, sizeof e->trigger_trace, "%s", m->ev->trace);
        policy_engine_evaluate(e, t, 0);
        break;
    }
    return BUS_OK; /* other types on these streams are not ours */
}

static void policy_engine_apply_config(policy_engine_t *e);

/* qt:policy: a configuration change (by this or another writer) applies now. */
static bus_result_t policy_engine_handle_policy(void *ud, const bus_msg_t *m, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    if (policyview_apply(&((policy_engine_t *)ud)->pv, m->ev)) policy_engine_apply_config(ud);
    return BUS_OK;
}

/* ---------- configuration and checkpoint ---------- */

/* The orchestrator's settings from the policy view (falls back to what it has). */
static void policy_engine_apply_config(policy_engine_t *e)
{
    orch_config_t *c = &e->orch.cfg;
    const policyview_t *pv = &e->pv;
    c->base_confidence = policyview_num(pv, "orch.base_confidence", c->base_confidence);
    c->base_risk_pct = policyview_num(pv, "orch.base_risk_pct", c->base_risk_pct);
    c->losing_streak_limit = (int)policyview_num(pv, "orch.losing_streak_limit", c->losing_streak_limit);
    c->update_interval_sec = (long)policyview_num(pv, "orch.policy_update_interval_sec", (double)c->update_interval_sec);
    c->similarity_keep = policyview_num(pv, "orch.similarity_keep", c->similarity_keep);
    c->max_open_positions = (int)policyview_num(pv, "risk.max_open_positions", c->max_open_positions);
    c->daily_dd_limit = policyview_num(pv, "risk.daily_dd_limit_pct", c->daily_dd_limit);
    c->total_exposure_limit = policyview_num(pv, "risk.total_exposure_limit_pct", c->total_exposure_limit);
}

static void policy_engine_config_cb(void *ud, const struct redisReply *r)
{
    policy_engine_t *e = ud;
    if (policyview_load_hash(&e->pv, r) == 0) policy_engine_apply_config(e);
}

/* Read the configuration hash again (the answer applies it). */
static void policy_engine_refresh_config(policy_engine_t *e)
{
    char key[160];
    proto_key(key, sizeof key, e->svc->cfg.ns, QT_KEY_POLICY_CONFIG);
    const char *argv[] = {"HGETALL", key};
    if (bus_redis(e->svc->bus, policy_engine_config_cb, e, 2, argv, NULL) == 0) e->refreshed_ms = clock_mono_ms();
}

static void policy_engine_seeded(void *ud, int ok)
{
    policy_engine_t *e = ud;
    e->seeding = 0;
    e->seeded |= ok;
    if (ok) policy_engine_refresh_config(e);
}

/* The engine's own fields in a checkpoint (ckpt.h); the inputs and the policy view follow. */
typedef struct policy_engine_saved {
    trading_policy_t current;
    int has_current;
    int64_t last_update_ms, last_event_time, last_day, leap_held;
    long published, evaluated, ignored_symbols;
    char trigger_id[EVENT_ID_MAX + 1], trigger_trace[EVENT_ID_MAX + 1];
} policy_engine_saved_t;

static char policy_engine_format[64];

static int policy_engine_save(void *ud, char **out, size_t *len)
{
    policy_engine_t *e = ud;
    policy_engine_saved_t h;
    memset(&h, 0, sizeof h);
    h.current = e->orch.current, h.has_current = e->orch.has_current, h.last_update_ms = e->orch.last_update_ms;
    h.last_event_time = e->last_event_time, h.last_day = e->last_day, h.leap_held = e->leap_held;
    h.published = e->published, h.evaluated = e->evaluated, h.ignored_symbols = e->ignored_symbols;
    memcpy(h.trigger_id, e->trigger_id, sizeof h.trigger_id);
    memcpy(h.trigger_trace, e->trigger_trace, sizeof h.trigger_trace);
    char *pv = policyview_save(&e->pv);
    size_t pvlen = pv ? strlen(pv) : 0;
    *out = pv ? malloc(sizeof h + sizeof e->in + pvlen) : NULL;
    if (!*out) return free(pv), -1;
    memcpy(*out, &h, sizeof h);
    memcpy(*out + sizeof h, &e->in, sizeof e->in);
    memcpy(*out + sizeof h + sizeof e->in, pv, pvlen);
    *len = sizeof h + sizeof e->in + pvlen;
    free(pv);
    return 0;
}

static int policy_engine_load(void *ud, const char *in, size_t len, char *err, size_t errlen)
{
    policy_engine_t *e = ud;
    policy_engine_saved_t h;
    inputs_t inp;
    if (len < sizeof h + sizeof inp) return snprintf(err, errlen, "state of %zu bytes is too short", len), -1;
    memcpy(&h, in, sizeof h);
    memcpy(&inp, in + sizeof h, sizeof inp);
    if (inp.nsyms < 0 || inp.nsyms > ORCH_MAX_SYMBOLS || !SYMTAB_NAMES_OK(inp.syms, inp.syms, inp.nsyms) || h.current.nallowed < 0 || h.current.nallowed > ORCH_MAX_SYMBOLS ||
        h.current.ndisallowed < 0 || h.current.ndisallowed > ORCH_MAX_SYMBOLS ||
        !memchr(h.current.note, '\0', sizeof h.current.note) || !memchr(h.trigger_id, '\0', sizeof h.trigger_id) ||
        !memchr(h.trigger_trace, '\0', sizeof h.trigger_trace))
        return snprintf(err, errlen, "state is malformed (counts or strings out of bounds)"), -1;
    if (policyview_restore(&e->pv, in + sizeof h + sizeof inp, len - sizeof h - sizeof inp) < 0)
        return snprintf(err, errlen, "the policy view in the state is not JSON of one"), -1;
    e->in = inp;
    e->orch.current = h.current, e->orch.has_current = h.has_current, e->orch.last_update_ms = h.last_update_ms;
    e->last_event_time = h.last_event_time, e->last_day = h.last_day, e->leap_held = h.leap_held;
    e->published = h.published, e->evaluated = h.evaluated, e->ignored_symbols = h.ignored_symbols;
    memcpy(e->trigger_id, h.trigger_id, sizeof e->trigger_id);
    memcpy(e->trigger_trace, h.trigger_trace, sizeof e->trigger_trace);
    policy_engine_apply_config(e);
    log_info("restored inputs of %d symbols and policy v%d from the checkpoint", e->in.nsyms, e->orch.current.version);
    return 0;
}


/* No checkpoint (the first start of this version, or one refused): the
 * replay rebuilt what the streams hold; a current policy in Redis of a later
 * version than that (the streams were trimmed) is taken up, so versions go
 * on from it. */
static void policy_engine_fresh(void *ud, redisContext *c)
{
    policy_engine_t *e = ud;
    trading_policy_t stored;
    redisReply *cur = redisCommand(c, "GET %s", e->k_trading);
    json_t *cj = cur && cur->type == REDIS_REPLY_STRING ? json_loadb(cur->str, cur->len, 0, NULL) : NULL;
    if (cj && orch_policy_from_json(cj, &stored) == 0 && (!e->orch.has_current || stored.version > e->orch.current.version)) {
        e->orch.current = stored, e->orch.has_current = 1;
        log_info("took up policy v%d from %s (the streams no longer hold what made it)", stored.version, e->k_trading);
    }
    json_decref(cj);
    if (cur) freeReplyObject(cur);
}

static void policy_engine_gap(void *ud)
{
    policy_engine_t *e = ud;
    inputs_gap(&e->in);
    log_warn("bars after the checkpoint were trimmed from the market stream: every symbol's regime warms up again");
}

static const ckpt_ops_t policy_engine_ckpt = {.format = policy_engine_format,
                                              .save = policy_engine_save,
                                              .load = policy_engine_load,
                                              .fresh = policy_engine_fresh,
                                              .gap = policy_engine_gap};

static void policy_engine_tick(evutil_socket_t fd, short what, void *arg)
{
    policy_engine_t *e = arg;
    (void)fd;
    (void)what;
    int64_t now = clock_mono_ms();
    if (!e->seeding && (!e->seeded || now - e->seed_ms >= ENGINE_SEED_MS)) { /* again: Redis may have lost it */
        e->seed_ms = now;
        e->seeding = config_store_seed(e->cs, e->seeded, policy_engine_seeded, e) == 0;
    }
    if (now - e->refreshed_ms >= ENGINE_REFRESH_MS) policy_engine_refresh_config(e);
    if (e->publish_pending && e->orch.has_current) policy_engine_publish(e);
    if (e->persist_pending && e->orch.has_current) policy_engine_persist(e);
}

/* ---------- HTTP ---------- */

static json_t *policy_engine_inputs_summary(const policy_engine_t *e)
{
    orch_inputs_t oi;
    inputs_build(&e->in, &oi);
    return json_pack("{s:s, s:s, s:b, s:f, s:f, s:f, s:i, s:i, s:f, s:f, s:f, s:i}", "regime", regime_name(oi.regime),
                     "vol_level", vol_level_name(oi.vol), "risk_known", oi.risk_known, "daily_pnl_pct",
                     oi.daily_pnl_pct, "drawdown_pct", oi.drawdown_pct, "exposure_pct", oi.exposure_pct,
                     "losing_streak", oi.losing_streak, "open_positions", oi.open_positions, "ensemble_quality",
                     oi.ensemble_quality, "slippage_bps", oi.slippage_bps, "spread_bps", oi.spread_bps, "symbols",
                     oi.nsymbols);
}

static int policy_engine_http_trading(void *ud, httpd_req_t *req, json_t **out)
{
    policy_engine_t *e = ud;
    (void)req;
    if (!e->orch.has_current) {
        *out = httpd_error("no trading policy yet: it is computed from the first market or feedback event");
        return 404;
    }
    *out = json_pack("{s:o, s:o}", "policy", orch_policy_json(&e->orch.current), "inputs", policy_engine_inputs_summary(e));
    return 200;
}

static void policy_engine_history_cb(void *ud, const struct redisReply *r)
{
    httpd_later_t *later = ud;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        httpd_answer(later, 503, httpd_error("history unavailable: %s", r && r->type == REDIS_REPLY_ERROR ? r->str : "Redis did not answer"));
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < r->elements; i++) {
        json_t *p = r->element[i]->type == REDIS_REPLY_STRING ? json_loadb(r->element[i]->str, r->element[i]->len, 0, NULL) : NULL;
        if (p) json_array_append_new(list, p);
    }
    httpd_answer(later, 200, json_pack("{s:o, s:I}", "policies", list, "count", (json_int_t)json_array_size(list)));
}

static int policy_engine_http_history(void *ud, httpd_req_t *req, json_t **out)
{
    policy_engine_t *e = ud;
    long limit;
    char stop[24];
    if (httpd_query_long(req, "limit", 20, 1, ORCH_HISTORY, &limit) < 0) {
        *out = httpd_error("limit must be an integer from 1 to %d", ORCH_HISTORY);
        return 400;
    }
    snprintf(stop, sizeof stop, "%ld", limit - 1);
    const char *argv[] = {"LRANGE", e->k_history, "0", stop};
    if (bus_redis(e->svc->bus, policy_engine_history_cb, httpd_later(req), 4, argv, NULL) < 0) {
        *out = httpd_error("history unavailable: Redis is not reachable now");
        return 503;
    }
    return HTTPD_LATER;
}

static int policy_engine_http_reset(void *ud, httpd_req_t *req, json_t **out)
{
    policy_engine_t *e = ud;
    (void)req;
    int64_t t = e->last_event_time ? e->last_event_time : clock_wall_ms(), now = clock_wall_ms();
    char err[256];
    event_t ev;
    /* the engine keeps the day's start equity (its next performance.update
     * would bring the old day back): it starts again too. An operator's act:
     * a new id. */
    if (event_make(&ev, "policy.daily.reset",
                   json_pack("{s:I, s:s}", "requested_at", (json_int_t)now, "reason", "POST /api/v1/policy/reset-daily"), NULL,
                   NULL, err, sizeof err) < 0 ||
        bus_publish(e->svc->bus, "policy", &ev, err, sizeof err) < 0) {
        event_clear(&ev);
        *out = httpd_error("the reset could not be published, nothing was reset: %s", err);
        return 503;
    }
    event_clear(&ev);
    inputs_reset_daily(&e->in);
    snprintf(e->trigger_id, sizeof e->trigger_id, "reset-daily-%lld", (long long)now);
    snprintf(e->trigger_trace, sizeof e->trigger_trace, "%s", e->trigger_id);
    log_info("daily reset requested over HTTP");
    policy_engine_evaluate(e, t, 1);
    *out = json_pack("{s:b, s:o}", "reset", 1, "policy", orch_policy_json(&e->orch.current));
    return 200;
}

static json_t *policy_engine_status(void *ud)
{
    policy_engine_t *e = ud;
    const orch_config_t *c = &e->orch.cfg;
    return json_pack("{s:o?, s:o, s:{s:b, s:i, s:I, s:I, s:I, s:I}, s:o, s:{s:f, s:f, s:f, s:i, s:i, s:f, s:I, s:f}}", "state",
                     svc_state_status(e->svc), "bus", bus_status(e->svc->bus), "policy", "has_current", e->orch.has_current, "version",
                     e->orch.current.version, "published", (json_int_t)e->published, "evaluations",
                     (json_int_t)e->evaluated, "last_event_time", (json_int_t)e->last_event_time,
                     "ignored_symbols", (json_int_t)e->ignored_symbols, "inputs", policy_engine_inputs_summary(e),
                     "config", "base_confidence", c->base_confidence, "base_risk_pct", c->base_risk_pct,
                     "daily_dd_limit", c->daily_dd_limit, "losing_streak_limit", c->losing_streak_limit,
                     "max_open_positions", c->max_open_positions, "total_exposure_limit", c->total_exposure_limit,
                     "update_interval_sec", (json_int_t)c->update_interval_sec, "similarity_keep", c->similarity_keep);
}

policy_engine_t *policy_engine_new(svc_t *svc, config_store_t *cs, char *err, size_t errlen)
{
    policy_engine_t *e = calloc(1, sizeof *e);
    if (!e || policyview_init(&e->pv) < 0 || !(e->seen = dedupe_new(8192))) {
        if (e) policyview_free(&e->pv);
        free(e);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    e->svc = svc;
    e->cs = cs;
    orch_config_default(&e->orch.cfg);
    if (orch_config_env(&e->orch.cfg, err, errlen) < 0) {
        policy_engine_free(e);
        return NULL;
    }
    inputs_init(&e->in);
    proto_key(e->k_trading, sizeof e->k_trading, svc->cfg.ns, QT_KEY_POLICY_TRADING);
    proto_key(e->k_history, sizeof e->k_history, svc->cfg.ns, QT_KEY_POLICY_HISTORY);
    snprintf(policy_engine_format, sizeof policy_engine_format, "policy-store/1/%zu/%zu", sizeof(policy_engine_saved_t),
             sizeof(inputs_t));
    e->tick = event_new(svc->base, -1, EV_PERSIST, policy_engine_tick, e);
    struct timeval tv = {ENGINE_TICK_MS / 1000, 0};
    if (!e->tick || event_add(e->tick, &tv) < 0 || bus_subscribe(svc->bus, "market", policy_engine_handle, e) < 0 ||
        bus_subscribe(svc->bus, "feedback", policy_engine_handle, e) < 0 ||
        bus_subscribe(svc->bus, "execution", policy_engine_handle, e) < 0 ||
        bus_subscribe(svc->bus, "policy", policy_engine_handle_policy, e) < 0 ||
        httpd_route(svc->http, "GET", "/api/v1/policy/trading", 0, policy_engine_http_trading, e) < 0 ||
        httpd_route(svc->http, "GET", "/api/v1/policy/history", 0, policy_engine_http_history, e) < 0 ||
        httpd_route(svc->http, "POST", "/api/v1/policy/reset-daily", HTTPD_AUTH, policy_engine_http_reset, e) < 0) {
        snprintf(err, errlen, "cannot set up the policy engine");
        policy_engine_free(e);
        return NULL;
    }
    if (bus_keep_state(svc->bus, &policy_engine_ckpt, e) < 0) {
        snprintf(err, errlen, "cannot keep the policy engine's state");
        policy_engine_free(e);
        return NULL;
    }
    httpd_set_status(svc->http, policy_engine_status, e);
    return e;
}

void policy_engine_free(policy_engine_t *e)
{
    if (!e) return;
    if (e->tick) event_free(e->tick);
    dedupe_free(e->seen);
    policyview_free(&e->pv);
    free(e);
}
