/* decider.c — bars → observation → PPO policy → rl.signal.generated (see decider.h). */
#include "decider.h"
#include "actions.h"
#include "ckpt.h"
#include "clock.h"
#include "dedupe.h"
#include "event.h"
#include "keys.h"
#include "log.h"
#include "model.h"
#include "obs.h"
#include "policyview.h"
#include "prng.h"
#include "symtab.h"
#include "kline.h"
#include "timeguard.h"
#include "warmup.h"

#include <hiredis/hiredis.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEC_SYMS 64

_Static_assert(MODEL_ACTIONS == PROTO_RL_ACTIONS, "the policy's outputs are the contract's actions");

typedef struct dec_sym {
    char symbol[24];
    obs_state_t st;
    position_info_t pos;
    double entry_price, qty, leverage;
    int64_t opened_at;
    float last_obs[FEATURES_DIM], entry_obs[FEATURES_DIM];
    int last_action, entry_action, has_entry;
    int64_t last_open_time, leap_held; /* leap_held: see timeguard.h */
    /* exploration, per symbol: the same draws whichever replica holds the
     * symbol's partition and whatever the other symbols do (DESIGN §2a) */
    uint64_t rng;
    double epsilon;
    int part; /* its partition (keys.h) */
} dec_sym_t;

struct decider {
    svc_t *svc;
    model_t *model;
    char model_path[512];
    dec_sym_t syms[DEC_SYMS];
    int nsyms;
    dedupe_t *seen;
    double eps_initial, eps_min, eps_decay, equity;
    int explore_in_shadow;
    uint64_t seed;
    policyview_t pv; /* rl_v3.live.mode */
    long decisions, explored, action_counts[MODEL_ACTIONS], experiences;
    long bars_off; /* bars in mode OFF: windows filled, nothing inferred or published */
    metric_t *m_latency, *m_decisions;
    warmup_t warm; /* no decision before OBS_WARMUP bars of a symbol */
    struct event *tick;
};

_Static_assert(offsetof(dec_sym_t, symbol) == 0, "symtab: the symbol comes first");

/* NULL for an event without a symbol (performance.update: account-wide). */
static dec_sym_t *dec_sym(decider_t *d, const char *symbol)
{
    int created;
    dec_sym_t *s = SYMTAB_SLOT(d->syms, &d->nsyms, DEC_SYMS, symbol, &created);
    if (created) {
        obs_init(&s->st);
        s->rng = d->seed << 32 | proto_symbol_hash(s->symbol);
        s->epsilon = d->eps_initial;
        s->part = proto_partition(s->symbol, (int)d->svc->cfg.partitions);
    }
    return s;
}

static const char *dec_mode(const decider_t *d) { return policyview_str(&d->pv, "rl_v3.live.mode", "SHADOW"); }

static int dec_exploring(decider_t *d, dec_sym_t *s)
{
    const char *mode = dec_mode(d);
    if (strcmp(mode, "SHADOW") == 0 && !d->explore_in_shadow) return 0;
    if (strcmp(mode, "OFF") == 0) return 0;
    int ex = prng_uniform(&s->rng) < s->epsilon;
    s->epsilon = fmax(d->eps_min, s->epsilon * d->eps_decay);
    return ex;
}

/* Publish the decision for this bar; its id derives from (symbol, bar). */
static int dec_publish(decider_t *d, dec_sym_t *s, const event_t *bar, int a, const model_out_t *o, int exploring)
{
    char name[160], id[37], err[256];
    const json_t *b = bar->data;
    event_t ev;
    json_t *probs = json_array();
    for (int j = 0; j < MODEL_ACTIONS; j++) json_array_append_new(probs, json_real(o->probs[j]));
    snprintf(name, sizeof name, "rl:%s:%s:%s:%lld", d->svc->cfg.ns, s->symbol,
             json_string_value(json_object_get(b, "interval")), (long long)s->last_open_time);
    event_derive_id(name, id);
    json_t *data = json_pack("{s:s, s:I, s:s, s:f, s:f, s:o, s:s, s:b, s:s, s:I}", "symbol", s->symbol, "open_time",
                             (json_int_t)s->last_open_time, "action", proto_rl_actions[a], "confidence", (double)o->probs[a],
                             "value", (double)o->value, "probs", probs, "model_version", d->model->version, "exploring",
                             exploring, "regime", regime_name(regime_trend(&s->st.ind.regime)), "event_time",
                             json_integer_value(json_object_get(b, "event_time")));
    if (event_make(&ev, "rl.signal.generated", data, bar->trace, id, err, sizeof err) < 0) {
        log_error("rl.signal.generated breaks the contract: %s", err);
        return 0; /* a bug, not a reason to redeliver the bar */
    }
    int rc = bus_publish(d->svc->bus, "signal", &ev, err, sizeof err);
    event_clear(&ev);
    return rc;
}

static bus_result_t dec_on_bar(decider_t *d, const bus_msg_t *m, char *err, size_t errlen)
{
    const json_t *b = m->ev->data;
    model_out_t o;
    if (!json_is_true(json_object_get(b, "closed"))) return BUS_OK;
    dec_sym_t *s = dec_sym(d, json_string_value(json_object_get(b, "symbol")));
    int64_t ot = json_integer_value(json_object_get(b, "open_time"));
    if (!s || ot <= s->last_open_time) return BUS_OK; /* too many symbols, or an old bar */
    /* what this bar changes, as it was: a bar handed back for a retry (its
     * signal could not be queued) comes again as if for the first time */
    dec_sym_t before = *s;
    long explored = d->explored;
    if (tguard_leap(s->last_open_time, &s->leap_held, ot,
                    kline_interval_ms(json_string_value(json_object_get(b, "interval"))), "data.open_time", err,
                    errlen) < 0)
        return BUS_DEAD;
    if (obs_update(&s->st, json_number_value(json_object_get(b, "high")), json_number_value(json_object_get(b, "low")),
                   json_number_value(json_object_get(b, "close"))) < 0)
        return BUS_OK;
    s->last_open_time = ot;
    if (!warmup_ready(&d->warm, s->symbol, s->st.ind.bars)) return BUS_OK; /* windows not yet full: no decision */
    if (strcmp(dec_mode(d), "OFF") == 0) /* seed 000: OFF predicts nothing; the windows go on filling for the next mode */
        return d->bars_off++, BUS_OK;
    if (s->pos.side) { /* position info as of this bar */
        double c = json_number_value(json_object_get(b, "close"));
        s->pos.upnl_pct = (c - s->entry_price) / s->entry_price * 100 * s->pos.side;
        s->pos.hours = (double)(json_integer_value(json_object_get(b, "event_time")) - s->opened_at) / 3600000.0;
    }
    obs_build(&s->st, &s->pos, s->last_obs);
    int64_t t0 = clock_mono_us();
    model_forward(d->model, s->last_obs, &o);
    metric_observe(d->m_latency, (double)(clock_mono_us() - t0) / 1e6);
    int a = 0, exploring = dec_exploring(d, s);
    for (int j = 1; j < MODEL_ACTIONS; j++)
        if (o.probs[j] > o.probs[a]) a = j;
    if (exploring) a = (int)(prng_uniform(&s->rng) * MODEL_ACTIONS) % MODEL_ACTIONS, d->explored++;
    s->last_action = a;
    if (dec_publish(d, s, m->ev, a, &o, exploring) < 0) {
        snprintf(err, errlen, "outbox full");
        *s = before, d->explored = explored;
        return BUS_RETRY;
    }
    d->decisions++, d->action_counts[a]++;
    metric_inc(d->m_decisions);
    return BUS_OK;
}

/* ---------- feedback: position info and experience ---------- */

static void dec_experience(decider_t *d, dec_sym_t *s, const json_t *closed, const char *trace)
{
    char name[160], id[37], err[256];
    event_t ev;
    json_t *obs = json_array();
    for (int i = 0; i < FEATURES_DIM; i++) json_array_append_new(obs, json_real(s->entry_obs[i]));
    snprintf(name, sizeof name, "exp:%s:%s:%lld", d->svc->cfg.ns, s->symbol,
             (long long)json_integer_value(json_object_get(closed, "event_time")));
    event_derive_id(name, id);
    json_t *data = json_pack("{s:s, s:s, s:f, s:o, s:s, s:I}", "symbol", s->symbol, "action", proto_rl_actions[s->entry_action],
                             "reward", json_number_value(json_object_get(closed, "pnl_pct")), "obs", obs,
                             "model_version", d->model->version, "event_time",
                             json_integer_value(json_object_get(closed, "event_time")));
    if (event_make(&ev, "rl.experience", data, trace, id, err, sizeof err) == 0) {
        if (bus_publish(d->svc->bus, "rl.experience", &ev, err, sizeof err) == 0) d->experiences++;
        event_clear(&ev);
    }
}

static bus_result_t dec_on_feedback(decider_t *d, const bus_msg_t *m)
{
    const json_t *f = m->ev->data;
    dec_sym_t *s = dec_sym(d, json_string_value(json_object_get(f, "symbol")));
    if (strcmp(m->ev->type, "performance.update") == 0) d->equity = json_number_value(json_object_get(f, "equity"));
    if (!s) return BUS_OK;
    if (strcmp(m->ev->type, "position.opened") == 0) {
        s->pos.side = strcmp(json_string_value(json_object_get(f, "side")), "LONG") == 0 ? 1 : -1;
        s->entry_price = json_number_value(json_object_get(f, "entry_price"));
        s->qty = json_number_value(json_object_get(f, "qty"));
        s->leverage = json_is_number(json_object_get(f, "leverage")) ? json_number_value(json_object_get(f, "leverage")) : 1;
        /* the account's equity at the open, carried by the event itself (the
         * last performance.update, in partition 0, only before it did) */
        const json_t *eq = json_object_get(f, "equity");
        double equity = json_is_number(eq) ? json_number_value(eq) : d->equity;
        s->pos.size = equity > 0 ? s->qty * s->entry_price / s->leverage / equity : 0;
        s->opened_at = json_integer_value(json_object_get(f, "event_time"));
        memcpy(s->entry_obs, s->last_obs, sizeof s->entry_obs);
        s->entry_action = s->last_action;
        s->has_entry = 1;
    } else if (strcmp(m->ev->type, "position.closed") == 0) {
        if (s->has_entry) dec_experience(d, s, f, m->ev->trace);
        memset(&s->pos, 0, sizeof s->pos);
        s->has_entry = 0;
    }
    return BUS_OK;
}

static bus_result_t dec_handle(void *ud, const bus_msg_t *m, char *err, size_t errlen)
{
    decider_t *d = ud;
    if (dedupe_contains(d->seen, m->ev->id)) return BUS_OK;
    bus_result_t r = BUS_OK;
    if (strcmp(m->ev->type, "market.data.update") == 0) r = dec_on_bar(d, m, err, errlen);
    else if (!policyview_apply(&d->pv, m->ev)) r = dec_on_feedback(d, m);
    if (r != BUS_RETRY) dedupe_check(d->seen, m->ev->id); /* a retried one is not seen yet: it comes again */
    return r;
}

/* ---------- state across restarts (ckpt.h) ---------- */

static char dec_format[64];

/* The policy view before any partition is restored (a bar replayed is
 * decided in the mode of the moment, as it was): read on the start-up
 * connection, then every 10 s and from the policy stream. */
static void dec_fresh(void *ud, redisContext *c)
{
    decider_t *d = ud;
    char key[160];
    proto_key(key, sizeof key, d->svc->cfg.ns, QT_KEY_POLICY_CONFIG);
    redisReply *r = redisCommand(c, "HGETALL %s", key);
    if (r && r->type == REDIS_REPLY_ERROR) log_warn("%s not read at start (%s): the mode comes from the policy stream", key, r->str);
    else if (r) policyview_load_hash(&d->pv, r);
    if (r) freeReplyObject(r);
}

/* Partition k's own state, with replicas (bus_lease_parts): its symbols,
 * nothing of the account (the policy view is read from policy-store, the
 * counters are this process's). */
static int dec_save_part(void *ud, int part, char **out, size_t *len)
{
    decider_t *d = ud;
    int n = 0;
    *out = malloc(sizeof n + (size_t)d->nsyms * sizeof *d->syms);
    if (!*out) return -1;
    for (int i = 0; i < d->nsyms; i++)
        if (d->syms[i].part == part) memcpy(*out + sizeof n + (size_t)n++ * sizeof *d->syms, &d->syms[i], sizeof *d->syms);
    memcpy(*out, &n, sizeof n);
    *len = sizeof n + (size_t)n * sizeof *d->syms;
    return 0;
}

static void dec_drop_part(void *ud, int part)
{
    decider_t *d = ud;
    int n = 0;
    for (int i = 0; i < d->nsyms; i++)
        if (d->syms[i].part != part) d->syms[n++] = d->syms[i];
    d->nsyms = n;
}

static int dec_load_part(void *ud, int part, const char *in, size_t len, char *err, size_t errlen)
{
    decider_t *d = ud;
    int n;
    if (len < sizeof n) return snprintf(err, errlen, "state of %zu bytes is too short", len), -1;
    memcpy(&n, in, sizeof n);
    if (n < 0 || n > DEC_SYMS - d->nsyms || len != sizeof n + (size_t)n * sizeof *d->syms)
        return snprintf(err, errlen, "state says %d symbols in %zu bytes (%d of %d slots free)", n, len,
                        DEC_SYMS - d->nsyms, DEC_SYMS), -1;
    if (!SYMTAB_NAMES_OK(in + sizeof n, d->syms, n)) return snprintf(err, errlen, "a symbol of the state is not a string"), -1;
    for (int i = 0; i < n; i++) {
        dec_sym_t s;
        memcpy(&s, in + sizeof n + (size_t)i * sizeof s, sizeof s);
        if (proto_partition(s.symbol, (int)d->svc->cfg.partitions) != part)
            return snprintf(err, errlen, "symbol %s of the state is not of partition p%d", s.symbol, part), -1;
    }
    memcpy(d->syms + d->nsyms, in + sizeof n, (size_t)n * sizeof *d->syms);
    for (int i = 0; i < n; i++) d->syms[d->nsyms + i].part = part; /* the checked one, not the bytes' */
    d->nsyms += n;
    return 0;
}

static void dec_gap_part(void *ud, int part)
{
    decider_t *d = ud;
    for (int i = 0; i < d->nsyms; i++)
        if (d->syms[i].part == part) obs_init(&d->syms[i].st);
}

static long dec_bars(const void *slot) { return ((const dec_sym_t *)slot)->st.ind.bars; }

static const ckpt_ops_t dec_ckpt = {.format = dec_format,
                                    .fresh = dec_fresh,
                                    .save_part = dec_save_part,
                                    .load_part = dec_load_part,
                                    .drop_part = dec_drop_part,
                                    .gap_part = dec_gap_part};

/* ---------- model, status, life ---------- */

int decider_reload(decider_t *d, char *err, size_t errlen)
{
    model_t *m = malloc(sizeof *m);
    if (!m) return snprintf(err, errlen, "out of memory"), -1;
    if (model_load(m, d->model_path, err, errlen) < 0) {
        free(m);
        log_error("model not loaded, keeping %s: %s", d->model ? d->model->version : "none", err);
        return -1;
    }
    free(d->model);
    d->model = m;
    log_info("model %s loaded from %s", m->version, d->model_path);
    return 0;
}

static void dec_on_hup(void *ud)
{
    char err[512];
    decider_reload(ud, err, sizeof err);
}

static int dec_http_reload(void *ud, httpd_req_t *req, json_t **out)
{
    decider_t *d = ud;
    char err[512];
    (void)req;
    if (decider_reload(d, err, sizeof err) < 0) {
        *out = httpd_error("model refused, still using %s: %s", d->model->version, err);
        return 422;
    }
    *out = json_pack("{s:b, s:s}", "reloaded", 1, "model_version", d->model->version);
    return 200;
}

static json_t *dec_status_json(const decider_t *d)
{
    json_t *counts = json_object();
    double eps = 0; /* the symbols' mean: each decays with its own decisions */
    for (int i = 0; i < d->nsyms; i++) eps += d->syms[i].epsilon;
    eps = d->nsyms ? eps / d->nsyms : d->eps_initial;
    for (int j = 0; j < MODEL_ACTIONS; j++) json_object_set_new(counts, proto_rl_actions[j], json_integer(d->action_counts[j]));
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:f, s:o, s:I, s:{s:f, s:f, s:I}, s:i}", "model_version",
                     d->model->version, "model_path", d->model_path, "mode", dec_mode(d), "decisions",
                     (json_int_t)d->decisions, "bars_off", (json_int_t)d->bars_off, "explored", (json_int_t)d->explored,
                     "exploration_rate", eps,
                     "action_counts", counts, "experiences", (json_int_t)d->experiences, "inference_seconds", "p50",
                     metric_quantile(d->m_latency, 0.5), "p99", metric_quantile(d->m_latency, 0.99), "count",
                     (json_int_t)metric_count(d->m_latency), "symbols", d->nsyms);
}

static int dec_http_status(void *ud, httpd_req_t *req, json_t **out)
{
    decider_t *d = ud;
    (void)req;
    *out = dec_status_json(d);
    json_object_set_new(*out, "state", svc_state_status(d->svc));
    json_object_set_new(*out, "warmup", warmup_status(&d->warm));
    return 200;
}

static json_t *dec_status(void *ud)
{
    decider_t *d = ud;
    json_t *s = dec_status_json(d);
    json_object_set_new(s, "bus", bus_status(d->svc->bus));
    json_object_set_new(s, "state", svc_state_status(d->svc));
    json_object_set_new(s, "partitions", svc_partitions_status(d->svc));
    json_object_set_new(s, "warmup", warmup_status(&d->warm));
    return s;
}

/* The configuration from the policy hash at start and every 10 s (SHADOW until known). */
static void dec_config_cb(void *ud, const struct redisReply *r)
{
    decider_t *d = ud;
    policyview_load_hash(&d->pv, r);
}

static void dec_tick(evutil_socket_t fd, short what, void *arg)
{
    decider_t *d = arg;
    char key[160];
    (void)fd;
    (void)what;
    proto_key(key, sizeof key, d->svc->cfg.ns, QT_KEY_POLICY_CONFIG);
    const char *argv[] = {"HGETALL", key};
    bus_redis(d->svc->bus, dec_config_cb, d, 2, argv, NULL);
}

decider_t *decider_new(svc_t *svc, char *err, size_t errlen)
{
    const char *path;
    long seed;
    decider_t *d = calloc(1, sizeof *d);
    if (!d || policyview_init(&d->pv) < 0 || !(d->seen = dedupe_new(16384))) {
        if (d) policyview_free(&d->pv);
        free(d);
        return snprintf(err, errlen, "out of memory"), NULL;
    }
    d->svc = svc;
    config_get_str("QT_RL_MODEL", "models/ppo-default.bin", &path);
    snprintf(d->model_path, sizeof d->model_path, "%s", path);
    if (config_get_double("QT_RL_EXPLORATION_INITIAL", 0.1, 0, 1, &d->eps_initial, err, errlen) < 0 ||
        config_get_double("QT_RL_EXPLORATION_MIN", 0.01, 0, 1, &d->eps_min, err, errlen) < 0 ||
        config_get_double("QT_RL_EXPLORATION_DECAY", 0.995, 0, 1, &d->eps_decay, err, errlen) < 0 ||
        config_get_bool("QT_RL_EXPLORE_IN_SHADOW", 0, &d->explore_in_shadow, err, errlen) < 0 ||
        config_get_long("QT_RL_SEED", 7, 0, 2147483647L, &seed, err, errlen) < 0 || decider_reload(d, err, errlen) < 0) {
        decider_free(d);
        return NULL;
    }
    d->seed = (uint64_t)seed;
    d->m_latency = metrics_histogram(svc->metrics, "qt_rl_inference_seconds", "Policy forward pass", NULL, NULL, 0);
    d->m_decisions = metrics_counter(svc->metrics, "qt_rl_decisions_total", "rl.signal.generated published", NULL);
    d->tick = event_new(svc->base, -1, EV_PERSIST, dec_tick, d);
    if (warmup_init(&d->warm, svc, OBS_WARMUP, "rl.signal.generated", d->syms, sizeof d->syms[0], &d->nsyms,
                    dec_bars) < 0) {
        snprintf(err, errlen, "out of memory");
        decider_free(d);
        return NULL;
    }
    struct timeval tv = {10, 0};
    if (!d->tick || event_add(d->tick, &tv) < 0 || bus_subscribe(svc->bus, "market", dec_handle, d) < 0 ||
        bus_subscribe(svc->bus, "feedback", dec_handle, d) < 0 || bus_subscribe(svc->bus, "policy", dec_handle, d) < 0 ||
        bus_lease_parts(svc->bus) < 0 || /* replicas share the partitions, each symbol's state with it (lease.h) */
        httpd_route(svc->http, "GET", "/api/v1/rl/status", 0, dec_http_status, d) < 0 ||
        httpd_route(svc->http, "POST", "/api/v1/rl/reload", HTTPD_AUTH, dec_http_reload, d) < 0) {
        snprintf(err, errlen, "cannot set up rl-decision");
        decider_free(d);
        return NULL;
    }
    snprintf(dec_format, sizeof dec_format, "rl-decision/p1/%zu/%d", sizeof(dec_sym_t),
             FEATURES_DIM);
    if (bus_keep_state(svc->bus, &dec_ckpt, d) < 0) {
        snprintf(err, errlen, "cannot keep rl-decision's state");
        decider_free(d);
        return NULL;
    }
    event_active(d->tick, EV_TIMEOUT, 0); /* read the mode soon after start */
    httpd_set_status(svc->http, dec_status, d);
    svc->on_reload = dec_on_hup;
    svc->hook_ud = d;
    return d;
}

void decider_free(decider_t *d)
{
    if (!d) return;
    if (d->tick) event_free(d->tick);
    dedupe_free(d->seen);
    policyview_free(&d->pv);
    free(d->model);
    free(d);
}
