/* learner.c — closed trades → RSM and adaptive thresholds, shared through Redis (see learner.h). */
#include "learner.h"
#include "keys.h"
#include "atomicfile.h"
#include "clock.h"
#include "event.h"
#include "log.h"
#include "rsync.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEARNER_SEEN_MAX "100000"
#define LEARNER_ATTEMPTS 8

/* KEYS: state hash, seen zset. ARGV: expected version, new state, trade key
 * ('' for none), its score. Returns {1, new version}, {0, current version}
 * on a conflict, {-1, current version} when the trade was recorded before. */
static const char cas_script[] =
    "local v = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')\n"
    "if ARGV[3] ~= '' and redis.call('ZSCORE', KEYS[2], ARGV[3]) then return {-1, v} end\n"
    "if v ~= tonumber(ARGV[1]) then return {0, v} end\n"
    "if ARGV[3] ~= '' then\n"
    "  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])\n"
    "  if redis.call('ZCARD', KEYS[2]) > " LEARNER_SEEN_MAX " then\n"
    "    redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -" LEARNER_SEEN_MAX " - 1) end\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'version', v + 1, 'state', ARGV[2])\n"
    "return {1, v + 1}\n";

/* KEYS: state hash. ARGV: the version held here. Returns {version} when it
 * is the same, else {version, state}. */
static const char sync_script[] =
    "local v = redis.call('HGET', KEYS[1], 'version')\n"
    "if v and v ~= ARGV[1] then return {v, redis.call('HGET', KEYS[1], 'state')} end\n"
    "return {v or '0'}\n";

struct learner {
    svc_t *svc;
    rsm_t rsm;
    thr_t thr;
    long long version;
    long reseeded; /* times the shared state was gone from Redis and written back */
    char change_key[200];
    char k_state[160], k_seen[160];
    char ckpt_path[512];
    long ckpt_interval;
    int dirty;
    int64_t last_ckpt_us;
    struct event *tick;
    long trades, duplicates, conflicts, skipped, adaptations_published;
    long no_votes; /* closed trades that carried no member votes: the thresholds saw them, the RSM did not */
    metric_t *m_update, *m_trades;
    struct learner_job *jobs; /* closed trades being applied (the head) or waiting, in order */
    int closing;
};

typedef struct trade {
    char key[200];
    int direction; /* +1 long, -1 short, 0 unknown (no RSM update) */
    double pnl_pct;
    int64_t event_time;
    rsm_vote_t votes[RSM_MAX_MODELS * 2];
    int nvotes;
} trade_t;

/* A change to apply to copies of the state; returns 1 if thresholds changed. */
typedef int (*learner_mut_fn)(rsm_t *r, thr_t *t, const void *arg);

/* ---------- state ---------- */

static char *learner_state_text(const rsm_t *r, const thr_t *t, const char *change_key)
{
    json_t *j = json_pack("{s:o, s:o, s:s}", "rsm", rsm_to_json(r), "thresholds", thr_to_json(t), "change_key", change_key);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

/* Adopt a state text at version v; -1 (nothing changes) when malformed. */
static int learner_adopt(learner_t *l, const char *text, size_t len, long long v)
{
    json_t *j = json_loadb(text, len, 0, NULL);
    rsm_t r = l->rsm;
    thr_t t = l->thr;
    const char *ck = json_string_value(json_object_get(j, "change_key"));
    int rc = j && ck && rsm_from_json(&r, json_object_get(j, "rsm")) == 0 &&
                     thr_from_json(&t, json_object_get(j, "thresholds")) == 0
                 ? 0
                 : -1;
    if (rc == 0) l->rsm = r, l->thr = t, l->version = v, snprintf(l->change_key, sizeof l->change_key, "%s", ck);
    json_decref(j);
    return rc;
}

/* The shared state from Redis, read once at start before the loop runs
 * (later reads go through the bus): 1 adopted, 0 none stored yet, -1 error. */
static int learner_fetch(learner_t *l, char *err, size_t errlen)
{
    redisContext *c = rsync_connect(&l->svc->cfg.redis, 2000, err, errlen);
    redisReply *r = c ? redisCommand(c, "HMGET %s version state", l->k_state) : NULL;
    int rc = -1;
    if (c && !r) snprintf(err, errlen, "redis: %s", c->errstr);
    else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) snprintf(err, errlen, "redis: unexpected reply to HMGET");
    else if (r->element[1]->type != REDIS_REPLY_STRING) rc = 0;
    else if (learner_adopt(l, r->element[1]->str, r->element[1]->len, atoll(r->element[0]->str ? r->element[0]->str : "0")) < 0)
        snprintf(err, errlen, "%s holds a malformed state", l->k_state);
    else rc = 1;
    if (r) freeReplyObject(r);
    if (c) redisFree(c);
    return rc;
}

/* ---------- closed trades ---------- */

static int learner_apply_trade(rsm_t *r, thr_t *t, const void *arg)
{
    const trade_t *tr = arg;
    /* no votes (the entry was decided before the ensemble spoke): nothing to
     * credit or blame, so neither weights nor calibration move, nor the count */
    if (tr->direction && tr->nvotes) rsm_update(r, tr->direction, tr->pnl_pct, tr->votes, tr->nvotes, NULL);
    return thr_observe(t, tr->pnl_pct, tr->event_time);
}

/* ml.threshold.adjusted and ml.risk.limit.update for the current thresholds. */
static int learner_publish_thresholds(learner_t *l, const char *key, int64_t event_time, const char *trace)
{
    char name[260], id[37], err[256];
    event_t ev;
    const thr_t *t = &l->thr;
    json_t *d1 = json_pack("{s:f, s:b, s:s, s:f, s:I, s:I}", "min_confidence", t->min_confidence, "conservative",
                           t->conservative, "reason", t->reason, "win_rate", t->win_rate, "trades", (json_int_t)t->total,
                           "event_time", (json_int_t)event_time);
    json_t *d2 = json_pack("{s:f, s:f, s:s, s:I}", "max_position_size", t->max_position, "stop_loss_multiplier",
                           t->sl_multiplier, "reason", t->reason, "event_time", (json_int_t)event_time);
    const char *types[2] = {"ml.threshold.adjusted", "ml.risk.limit.update"};
    json_t *data[2] = {d1, d2};
    int rc = 0;
    for (int i = 0; i < 2; i++) {
        snprintf(name, sizeof name, "%s:%s", types[i], key);
        event_derive_id(name, id);
        if (event_make(&ev, types[i], data[i], trace, id, err, sizeof err) < 0) {
            log_error("%s breaks the contract: %s", types[i], err);
            if (i == 0) json_decref(d2);
            return 0; /* a bug, not a reason to redeliver */
        }
        if (bus_publish(l->svc->bus, "signal", &ev, err, sizeof err) < 0) rc = -1;
        event_clear(&ev);
    }
    if (rc == 0) l->adaptations_published++, log_info("thresholds adapted: %s", t->reason);
    return rc;
}

static int learner_direction(const char *s)
{
    return !s ? 0 : strncmp(s, "LONG", 4) == 0 ? 1 : strncmp(s, "SHORT", 5) == 0 ? -1 : 0;
}

/* A closed trade from position.closed or feedback.prediction.outcome; -1 when
 * it carries no pnl_pct (nothing to learn from). */
static int learner_trade(const event_t *ev, trade_t *t)
{
    const json_t *d = ev->data, *votes = json_object_get(d, "model_votes"), *v;
    const char *model;
    memset(t, 0, sizeof *t);
    if (!json_is_number(json_object_get(d, "pnl_pct"))) return -1;
    snprintf(t->key, sizeof t->key, "trade:%s:%s", ev->trace, json_string_value(json_object_get(d, "symbol")));
    t->direction = learner_direction(json_string_value(json_object_get(d, strcmp(ev->type, "position.closed") == 0 ? "side" : "action")));
    t->pnl_pct = json_number_value(json_object_get(d, "pnl_pct"));
    t->event_time = json_integer_value(json_object_get(d, "event_time"));
    json_object_foreach((json_t *)votes, model, v)
    {
        if (t->nvotes == RSM_MAX_MODELS * 2) break;
        rsm_vote_t *rv = &t->votes[t->nvotes++];
        rv->model = model;
        rv->action = json_string_value(json_object_get(v, "action"));
        rv->confidence = json_number_value(json_object_get(v, "confidence"));
    }
    return 0;
}

/* ---------- closed trades, one at a time, without blocking the loop ---------- */

/* A closed trade on its way into the shared state: compare-and-set through
 * the bus, and on a conflict the state read back and the update made again
 * (at most LEARNER_ATTEMPTS times). Trades are applied one at a time, in the
 * order they arrive, as the synchronous version did. */
typedef struct learner_job {
    struct learner_job *next;
    learner_t *l;
    learner_mut_fn fn;      /* the change: a closed trade (arg: &t) or a reset through the API */
    bus_pending_t *token;   /* a closed trade's entry, or NULL */
    httpd_later_t *later;   /* a reset's HTTP request, or NULL */
    const char *what;       /* a reset: what it resets */
    event_t ev; /* a copy of the envelope, holding a reference to the data (the votes point into it) */
    trade_t t;
    rsm_t r;    /* the state this attempt writes */
    thr_t th;
    int changed, attempt, last_rc;
    int64_t t0;
    char err[256];
} learner_job_t;

static void learner_job_next(learner_t *l);
static void learner_cas_send(learner_job_t *j);
static int learner_reset_weights(rsm_t *r, thr_t *t, const void *arg);

static void learner_job_end(learner_job_t *j, bus_result_t r)
{
    learner_t *l = j->l;
    l->jobs = j->next;
    if (!l->closing && j->token) bus_finish(l->svc->bus, j->token, r, j->err);
    if (j->later && r == BUS_OK) {
        log_info("%s reset through the API", j->what);
        httpd_answer(j->later, 200, json_pack("{s:s, s:s}", "status", "success", "message",
                                              j->fn == learner_reset_weights ? "Model weights reset to initial values"
                                                                             : "Calibration metrics reset"));
    } else if (j->later) {
        httpd_answer(j->later, 503, httpd_error("cannot update the shared state: %s", j->err));
    }
    event_clear(&j->ev);
    free(j);
    if (!l->closing) learner_job_next(l);
}

/* Written (rc 1) or recorded before (rc -1): the threshold events, if they changed. */
static void learner_job_done(learner_job_t *j, int rc)
{
    learner_t *l = j->l;
    int changed = j->changed;
    if (j->later) { /* a reset */
        learner_job_end(j, BUS_OK);
        return;
    }
    if (rc == -1) { /* recorded before: its threshold events again, in case they were lost */
        l->duplicates++;
        changed = strcmp(l->change_key, j->t.key) == 0;
    } else {
        l->trades++, l->no_votes += j->t.nvotes == 0;
        metric_inc(l->m_trades);
        metric_observe(l->m_update, (double)(clock_mono_us() - j->t0) / 1e6);
    }
    if (changed && learner_publish_thresholds(l, j->t.key, j->t.event_time, j->ev.trace) < 0) {
        snprintf(j->err, sizeof j->err, "outbox full");
        learner_job_end(j, BUS_RETRY);
        return;
    }
    learner_job_end(j, BUS_OK);
}

static void learner_refetch_cb(void *ud, const struct redisReply *r)
{
    learner_job_t *j = ud;
    learner_t *l = j->l;
    if (l->closing) {
        learner_job_end(j, BUS_RETRY);
        return;
    }
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        snprintf(j->err, sizeof j->err, "redis: %s", r && r->type == REDIS_REPLY_ERROR ? r->str : "no answer to HMGET");
        learner_job_end(j, BUS_RETRY);
        return;
    }
    if (r->element[0]->type == REDIS_REPLY_NIL && r->element[1]->type == REDIS_REPLY_NIL && l->version > 0) {
        /* the shared state is gone (Redis restarted without persistence, a flush): write ours back, the newest
         * this process knows, instead of waiting for a version that will never come */
        l->reseeded++;
        log_error("shared state %s (version %lld here) is gone from Redis: writing this process's state back "
                  "(the record of trades already learned from went with it)",
                  l->k_state, l->version);
        l->version = 0;
        learner_cas_send(j);
        return;
    }
    if (r->element[1]->type == REDIS_REPLY_STRING &&
        learner_adopt(l, r->element[1]->str, r->element[1]->len, atoll(r->element[0]->str ? r->element[0]->str : "0")) < 0) {
        snprintf(j->err, sizeof j->err, "%s holds a malformed state", l->k_state);
        learner_job_end(j, BUS_RETRY);
        return;
    }
    if (j->last_rc == -1) {
        learner_job_done(j, -1);
        return;
    }
    l->conflicts++;
    if (++j->attempt >= LEARNER_ATTEMPTS) {
        snprintf(j->err, sizeof j->err, "the shared state kept changing under %d attempts", LEARNER_ATTEMPTS);
        learner_job_end(j, BUS_RETRY);
        return;
    }
    learner_cas_send(j);
}

static void learner_cas_cb(void *ud, const struct redisReply *r)
{
    learner_job_t *j = ud;
    learner_t *l = j->l;
    if (l->closing) {
        learner_job_end(j, BUS_RETRY);
        return;
    }
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_INTEGER) {
        snprintf(j->err, sizeof j->err, "redis: %s",
                 r && r->type == REDIS_REPLY_ERROR ? r->str : r ? "unexpected reply to the update script" : "no answer");
        learner_job_end(j, BUS_RETRY);
        return;
    }
    long long v = r->element[1]->integer;
    j->last_rc = r->element[0]->integer == 1 ? 1 : r->element[0]->integer == 0 ? 0 : -1;
    if (j->last_rc == 1) {
        l->rsm = j->r, l->thr = j->th, l->version = v, l->dirty = 1;
        if (j->changed && j->t.key[0]) snprintf(l->change_key, sizeof l->change_key, "%s", j->t.key);
        learner_job_done(j, 1);
        return;
    }
    const char *argv[] = {"HMGET", l->k_state, "version", "state"}; /* another writer was first: read its state */
    if (bus_redis(l->svc->bus, learner_refetch_cb, j, 4, argv, NULL) < 0) {
        snprintf(j->err, sizeof j->err, "redis: the link is down");
        learner_job_end(j, BUS_RETRY);
    }
}

/* The update on a copy of the state, sent as one compare-and-set. */
static void learner_cas_send(learner_job_t *j)
{
    learner_t *l = j->l;
    char ver[32], sc[32];
    j->r = l->rsm, j->th = l->thr;
    j->changed = j->fn(&j->r, &j->th, &j->t);
    char *state = learner_state_text(&j->r, &j->th, j->changed && j->t.key[0] ? j->t.key : l->change_key);
    if (!state) {
        snprintf(j->err, sizeof j->err, "out of memory");
        learner_job_end(j, BUS_RETRY);
        return;
    }
    snprintf(ver, sizeof ver, "%lld", l->version);
    snprintf(sc, sizeof sc, "%lld", (long long)j->t.event_time);
    const char *argv[] = {"EVAL", cas_script, "2", l->k_state, l->k_seen, ver, state, j->t.key, sc};
    int rc = bus_redis(l->svc->bus, learner_cas_cb, j, 9, argv, NULL);
    free(state);
    if (rc < 0) {
        snprintf(j->err, sizeof j->err, "redis: the link is down");
        learner_job_end(j, BUS_RETRY);
    }
}

/* After the jobs before it (one change at a time, in order). */
static void learner_job_queue(learner_t *l, learner_job_t *j)
{
    learner_job_t **pp = &l->jobs;
    while (*pp) pp = &(*pp)->next;
    *pp = j;
    learner_job_next(l);
}

static void learner_job_next(learner_t *l)
{
    if (l->jobs && !l->jobs->t0) {
        l->jobs->t0 = clock_mono_us();
        learner_cas_send(l->jobs);
    }
}

static bus_result_t learner_handle(void *ud, const bus_msg_t *m, char *err, size_t errlen)
{
    learner_t *l = ud;
    if (strcmp(m->ev->type, "position.closed") != 0 && strcmp(m->ev->type, "feedback.prediction.outcome") != 0) return BUS_OK;
    if (bus_replaying(l->svc->bus)) return BUS_OK; /* learned from when first handled: the learner's state is in Redis */
    learner_job_t *j = calloc(1, sizeof *j);
    if (!j) return snprintf(err, errlen, "out of memory"), BUS_RETRY;
    j->l = l, j->fn = learner_apply_trade;
    j->ev = *m->ev;
    j->ev.data = json_incref(m->ev->data);
    if (learner_trade(&j->ev, &j->t) < 0) {
        event_clear(&j->ev);
        free(j);
        l->skipped++;
        return BUS_OK;
    }
    if (!(j->token = bus_defer(l->svc->bus))) {
        event_clear(&j->ev);
        free(j);
        return snprintf(err, errlen, "out of memory"), BUS_RETRY;
    }
    learner_job_queue(l, j);
    return BUS_LATER;
}

/* ---------- HTTP ---------- */

static json_t *learner_weights_json(const rsm_t *r, int scalers)
{
    json_t *o = json_object();
    for (int i = 0; i < r->nmodels; i++)
        json_object_set_new(o, r->models[i].name, json_real(scalers ? rsm_scaler(r, &r->models[i]) : r->models[i].weight));
    return o;
}

/* The seed's calibration_metrics: {brier_scores, confidence_scalers, samples}, each by member. */
static json_t *learner_calibration_json(const rsm_t *r)
{
    json_t *brier = json_object(), *samples = json_object();
    for (int i = 0; i < r->nmodels; i++) {
        json_object_set_new(brier, r->models[i].name, json_real(rsm_brier(&r->models[i])));
        json_object_set_new(samples, r->models[i].name, json_integer(r->models[i].nbrier));
    }
    return json_pack("{s:o, s:o, s:o}", "brier_scores", brier, "confidence_scalers", learner_weights_json(r, 1),
                     "samples", samples);
}

static json_t *learner_recent_json(const rsm_t *r)
{
    double pnl = 0, shaped = 0;
    int wins = 0;
    for (int i = 0; i < r->npnl; i++) pnl += r->pnl[i], shaped += r->shaped[i], wins += r->pnl[i] > 0;
    return json_pack("{s:i, s:f, s:f, s:f}", "trades", r->npnl, "avg_pnl_pct", r->npnl ? pnl / r->npnl : 0,
                     "win_rate", r->npnl ? (double)wins / r->npnl : 0, "avg_shaped_reward", r->npnl ? shaped / r->npnl : 0);
}

static int learner_http_diag(void *ud, httpd_req_t *req, json_t **out)
{
    const rsm_t *r = &((learner_t *)ud)->rsm;
    json_t *issues;
    (void)req;
    int health = rsm_health(r, &issues);
    *out = json_pack("{s:s, s:{s:I, s:I, s:f, s:o, s:o, s:o, s:o, s:f, s:i, s:o}}", "status", "success", "diagnostics",
                     "total_trades_processed", (json_int_t)r->trades, "weight_update_count", (json_int_t)r->updates,
                     "exploration_rate", rsm_exploration(r), "model_weights", learner_weights_json(r, 0),
                     "confidence_scalers", learner_weights_json(r, 1), "calibration_metrics",
                     learner_calibration_json(r), "recent_performance", learner_recent_json(r), "baseline_reward",
                     r->baseline, "health_score", health, "issues", issues);
    return 200;
}

static int learner_http_weights(void *ud, httpd_req_t *req, json_t **out)
{
    const rsm_t *r = &((learner_t *)ud)->rsm;
    (void)req;
    *out = json_pack("{s:s, s:o, s:o, s:f}", "status", "success", "weights", learner_weights_json(r, 0),
                     "confidence_scalers", learner_weights_json(r, 1), "exploration_rate", rsm_exploration(r));
    return 200;
}

static int learner_http_calibration(void *ud, httpd_req_t *req, json_t **out)
{
    (void)req;
    *out = json_pack("{s:s, s:o}", "status", "success", "calibration", learner_calibration_json(&((learner_t *)ud)->rsm));
    return 200;
}

static int learner_reset_weights(rsm_t *r, thr_t *t, const void *arg)
{
    (void)t, (void)arg;
    rsm_reset_weights(r);
    return 0;
}

static int learner_reset_calibration(rsm_t *r, thr_t *t, const void *arg)
{
    (void)t, (void)arg;
    rsm_reset_calibration(r);
    return 0;
}

/* A reset goes the way of a closed trade (one compare-and-set through the
 * bus, after the trades before it); the request is answered from there. */
static int learner_http_reset(learner_t *l, httpd_req_t *req, learner_mut_fn fn, const char *what, json_t **out)
{
    learner_job_t *j = calloc(1, sizeof *j);
    if (!j) {
        *out = httpd_error("out of memory");
        return 503;
    }
    j->l = l, j->fn = fn, j->later = httpd_later(req), j->what = what;
    learner_job_queue(l, j);
    return HTTPD_LATER;
}

static int learner_http_reset_weights(void *ud, httpd_req_t *req, json_t **out)
{
    return learner_http_reset(ud, req, learner_reset_weights, "model weights", out);
}

static int learner_http_reset_calibration(void *ud, httpd_req_t *req, json_t **out)
{
    return learner_http_reset(ud, req, learner_reset_calibration, "calibration", out);
}

static json_t *learner_thresholds_json(const learner_t *l)
{
    const thr_t *t = &l->thr;
    return json_pack("{s:f, s:b, s:f, s:f, s:s, s:I, s:f, s:f, s:I, s:I, s:{s:f, s:f, s:f, s:I, s:I}}", "min_confidence",
                     t->min_confidence, "conservative", t->conservative, "max_position_size", t->max_position,
                     "stop_loss_multiplier", t->sl_multiplier, "reason", t->reason, "trades", (json_int_t)t->total,
                     "win_rate", t->win_rate, "profit_factor", t->profit_factor, "adaptations",
                     (json_int_t)t->adaptations, "last_evaluation_event_time", (json_int_t)t->last_eval, "config",
                     "confidence_threshold", t->cfg.base_confidence, "max_position_size", t->cfg.base_max_position,
                     "stop_loss_multiplier", t->cfg.base_sl_multiplier, "min_trades_for_adaptation",
                     (json_int_t)t->cfg.min_trades, "adaptation_interval", (json_int_t)(t->cfg.interval_ms / 1000));
}

static int learner_http_thresholds(void *ud, httpd_req_t *req, json_t **out)
{
    (void)req;
    *out = learner_thresholds_json(ud);
    return 200;
}

void learner_status(const learner_t *l, json_t *status)
{
    json_t *issues;
    int health = rsm_health(&l->rsm, &issues);
    json_object_set_new(status, "reinforcement",
                        json_pack("{s:I, s:I, s:f, s:o, s:i, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:I}", "trades_processed",
                                  (json_int_t)l->rsm.trades, "state_version", (json_int_t)l->version, "exploration_rate",
                                  rsm_exploration(&l->rsm), "weights", learner_weights_json(&l->rsm, 0), "health_score",
                                  health, "issues", issues, "trades_here", (json_int_t)l->trades, "duplicates",
                                  (json_int_t)l->duplicates, "conflicts", (json_int_t)l->conflicts, "skipped_no_pnl_pct",
                                  (json_int_t)l->skipped, "trades_without_votes", (json_int_t)l->no_votes,
                                  "threshold_events", (json_int_t)l->adaptations_published,
                                  "checkpoint_path", l->ckpt_path, "state_reseeded", (json_int_t)l->reseeded));
    json_object_set_new(status, "thresholds", learner_thresholds_json(l));
}

const rsm_t *learner_rsm(const learner_t *l)
{
    return &l->rsm;
}

/* ---------- checkpoint file, refresh, life ---------- */

void learner_checkpoint(learner_t *l)
{
    char *state, *text = NULL, err[600];
    if (!l->ckpt_path[0] || !(state = learner_state_text(&l->rsm, &l->thr, l->change_key))) return;
    int n = asprintf(&text, "{\"version\":%lld,\"state\":%s}\n", l->version, state);
    if (n < 0 || atomicfile_write(l->ckpt_path, text, (size_t)n, err, sizeof err) < 0)
        log_error("checkpoint not written: %s", n < 0 ? "out of memory" : err);
    else l->dirty = 0;
    free(state);
    if (n >= 0) free(text);
}

/* At start, before the loop runs: write state if Redis still holds none
 * (version 0). 1 written with *v, 0 someone else was first, -1 error. */
static int learner_cas_at_start(learner_t *l, const char *state, long long *v, char *err, size_t errlen)
{
    redisContext *c = rsync_connect(&l->svc->cfg.redis, 2000, err, errlen);
    const char *argv[] = {"EVAL", cas_script, "2", l->k_state, l->k_seen, "0", state, "", "0"};
    redisReply *r = c ? redisCommandArgv(c, 9, argv, NULL) : NULL;
    int rc = -1;
    if (c && !r) snprintf(err, errlen, "redis: %s", c->errstr);
    else if (r && (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_INTEGER))
        snprintf(err, errlen, "redis: %s", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply to the update script");
    else if (r) rc = r->element[0]->integer == 1, *v = r->element[1]->integer;
    if (r) freeReplyObject(r);
    if (c) redisFree(c);
    return rc;
}

/* The checkpoint file's state, written to Redis when Redis holds none. */
static int learner_restore_file(learner_t *l, char *err, size_t errlen)
{
    json_error_t je;
    json_t *j = l->ckpt_path[0] ? json_load_file(l->ckpt_path, 0, &je) : NULL;
    char *state = j ? json_dumps(json_object_get(j, "state"), JSON_COMPACT) : NULL;
    long long v = 0;
    int rc = 0;
    if (l->ckpt_path[0] && !j && errno != ENOENT) log_warn("checkpoint %s not used: %s", l->ckpt_path, je.text);
    if (state && learner_adopt(l, state, strlen(state), 0) < 0)
        rc = -1, snprintf(err, errlen, "checkpoint %s holds a malformed state", l->ckpt_path);
    else if (state && learner_cas_at_start(l, state, &v, err, errlen) == 1)
        l->version = v, log_info("state restored from %s", l->ckpt_path);
    free(state);
    json_decref(j);
    return rc;
}

typedef struct learner_sync {
    learner_t *l;
    void (*done)(void *ud, int ok);
    void *ud;
} learner_sync_t;

static void learner_sync_cb(void *ud, const struct redisReply *r)
{
    learner_sync_t *sy = ud;
    learner_t *l = sy->l;
    int ok = r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 && r->element[0]->type == REDIS_REPLY_STRING;
    long long v = ok ? atoll(r->element[0]->str) : 0;
    if (ok && r->elements == 2 && r->element[1]->type == REDIS_REPLY_STRING && v > l->version) {
        if (learner_adopt(l, r->element[1]->str, r->element[1]->len, v) == 0) l->dirty = 1;
        else ok = 0, log_error("%s holds a malformed state: not adopted", l->k_state);
    }
    if (!ok && r && r->type == REDIS_REPLY_ERROR) log_error("shared state not read: %s", r->str);
    if (sy->done) sy->done(sy->ud, ok);
    free(sy);
}

int learner_sync(learner_t *l, void (*done)(void *ud, int ok), void *ud)
{
    char ver[32];
    learner_sync_t *sy = malloc(sizeof *sy);
    if (!sy) return -1;
    *sy = (learner_sync_t){l, done, ud};
    snprintf(ver, sizeof ver, "%lld", l->version);
    const char *argv[] = {"EVAL", sync_script, "1", l->k_state, ver};
    if (bus_redis(l->svc->bus, learner_sync_cb, sy, 5, argv, NULL) == 0) return 0;
    free(sy);
    return -1;
}

static void learner_tick(evutil_socket_t fd, short what, void *arg)
{
    learner_t *l = arg;
    (void)fd, (void)what;
    learner_sync(l, NULL, NULL); /* other replicas' updates: the state comes only when its version moved */
    if (l->dirty && clock_mono_us() - l->last_ckpt_us >= l->ckpt_interval * 1000000LL) {
        l->last_ckpt_us = clock_mono_us();
        learner_checkpoint(l);
    }
}

static int learner_setup(learner_t *l, char *err, size_t errlen)
{
    struct timeval tv = {1, 0};
    char why[256];
    int got = learner_fetch(l, why, sizeof why);
    if (got == 1) log_info("shared state version %lld loaded from %s", l->version, l->k_state);
    else if (got == 0 && learner_restore_file(l, err, errlen) < 0) return -1;
    else if (got < 0) log_warn("shared state not loaded yet (%s); it is read again on the first update", why);
    l->tick = event_new(l->svc->base, -1, EV_PERSIST, learner_tick, l);
    httpd_t *h = l->svc->http;
    if (!l->tick || event_add(l->tick, &tv) < 0 || bus_subscribe(l->svc->bus, "feedback", learner_handle, l) < 0 ||
        httpd_route(h, "GET", "/api/v1/reinforcement/diagnostics", 0, learner_http_diag, l) < 0 ||
        httpd_route(h, "GET", "/api/v1/reinforcement/weights", 0, learner_http_weights, l) < 0 ||
        httpd_route(h, "GET", "/api/v1/reinforcement/calibration", 0, learner_http_calibration, l) < 0 ||
        httpd_route(h, "POST", "/api/v1/reinforcement/reset_weights", HTTPD_AUTH, learner_http_reset_weights, l) < 0 ||
        httpd_route(h, "POST", "/api/v1/reinforcement/reset_calibration", HTTPD_AUTH, learner_http_reset_calibration, l) < 0 ||
        httpd_route(h, "GET", "/api/v1/thresholds", 0, learner_http_thresholds, l) < 0)
        return snprintf(err, errlen, "cannot set up the learner"), -1;
    return 0;
}

/* The seed's starting weights (xgboost 0.25, lightgbm 0.25, N-HiTS 0.30,
 * PatchTST 0.20) on the four shipped members: the two tree ensembles, the
 * network on returns for N-HiTS and the softmax for PatchTST. */
#define LEARNER_SEED_WEIGHTS "gbdt-deep:0.25,gbdt-shallow:0.25,mlp-returns:0.30,softmax:0.20"

/* RL_INITIAL_WEIGHTS ("name:weight,..." over the members; the members not
 * named share what is left equally) into w. Unset, the seed's apply when
 * they fit these members, else equal weights. -1 with err. */
static int learner_initial_weights(const rsm_config_t *rc, const char *const *names, int n, double *w, char *err,
                                   size_t errlen)
{
    const char *spec;
    int given = config_get_str("RL_INITIAL_WEIGHTS", "", &spec) == 0 && *spec, set[RSM_MAX_MODELS] = {0}, nset = 0;
    if (!given) spec = LEARNER_SEED_WEIGHTS;
    double sum = 0;
    char e[256] = "";
    for (const char *s = spec; *s && !e[0];) {
        size_t len = strcspn(s, ","), nl = strcspn(s, ":");
        char name[64], *end;
        int k = -1;
        if (nl >= len || nl == 0 || nl > 63) {
            snprintf(e, sizeof e, "'%.*s' is not name:weight", (int)(len > 60 ? 60 : len), s);
            break;
        }
        snprintf(name, sizeof name, "%.*s", (int)nl, s);
        double x = strtod(s + nl + 1, &end);
        for (int i = 0; i < n; i++)
            if (!strcmp(names[i], name)) k = i;
        if (end != s + len || !(x >= 0 && x <= 1)) snprintf(e, sizeof e, "the weight of %s is not a number in [0, 1]", name);
        else if (k < 0) snprintf(e, sizeof e, "%s is not a member (QT_ML_MODELS, QT_ML_EXTERNAL_MODELS)", name);
        else if (set[k]) snprintf(e, sizeof e, "%s is named twice", name);
        else w[k] = x, set[k] = 1, nset++, sum += x;
        s += len + (s[len] == ',');
    }
    if (!e[0] && (sum > 1 + 1e-9 || (nset == n && fabs(sum - 1) > 1e-9)))
        snprintf(e, sizeof e, "the weights sum to %.6g, not 1%s", sum, nset == n ? "" : " or less");
    for (int i = 0; i < n && !e[0]; i++) {
        if (!set[i]) w[i] = (1 - sum) / (n - nset);
        if (w[i] < rc->w_min - 1e-12 || w[i] > rc->w_max + 1e-12)
            snprintf(e, sizeof e, "%s would start at %.6g, outside [RL_MIN_MODEL_WEIGHT %g, RL_MAX_MODEL_WEIGHT %g]", names[i],
                     w[i], rc->w_min, rc->w_max);
    }
    if (!e[0]) return 0;
    if (given) return snprintf(err, errlen, "RL_INITIAL_WEIGHTS: %s", e), -1;
    for (int i = 0; i < n; i++) w[i] = 1.0 / n; /* the members are not the four shipped ones */
    log_info("equal starting weights: the seed's (" LEARNER_SEED_WEIGHTS ") do not fit these members (%s)", e);
    return 0;
}

learner_t *learner_new(svc_t *svc, const char *const *names, int n, char *err, size_t errlen)
{
    double w[RSM_MAX_MODELS];
    rsm_config_t rc;
    thr_config_t tc;
    const char *path;
    learner_t *l = calloc(1, sizeof *l);
    if (!l) return snprintf(err, errlen, "out of memory"), NULL;
    l->svc = svc;
    rsm_config_default(&rc);
    if (rsm_config_env(&rc, err, errlen) < 0 || thr_config_env(&tc, err, errlen) < 0 ||
        config_get_long("RL_CHECKPOINT_INTERVAL", 60, 1, 86400, &l->ckpt_interval, err, errlen) < 0)
        goto fail;
    if (n >= 1 && n <= RSM_MAX_MODELS && learner_initial_weights(&rc, names, n, w, err, errlen) < 0) goto fail;
    if (rsm_init(&l->rsm, &rc, names, w, n) < 0) {
        snprintf(err, errlen, "%d members do not fit weights in [RL_MIN_MODEL_WEIGHT %g, RL_MAX_MODEL_WEIGHT %g] summing to 1",
                 n, rc.w_min, rc.w_max);
        goto fail;
    }
    thr_init(&l->thr, &tc);
    config_get_str("RL_CHECKPOINT_PATH", "", &path);
    snprintf(l->ckpt_path, sizeof l->ckpt_path, "%s", path);
    proto_key(l->k_state, sizeof l->k_state, svc->cfg.ns, QT_KEY_ML_STATE);
    proto_key(l->k_seen, sizeof l->k_seen, svc->cfg.ns, QT_KEY_ML_SEEN);
    l->m_update = metrics_histogram(svc->metrics, "qt_ml_update_seconds", "RSM update per closed trade", NULL, NULL, 0);
    l->m_trades = metrics_counter(svc->metrics, "qt_ml_trades_total", "Closed trades learned from", NULL);
    l->last_ckpt_us = clock_mono_us();
    if (learner_setup(l, err, errlen) == 0) return l;
fail:
    learner_free(l);
    return NULL;
}

void learner_free(learner_t *l)
{
    if (!l) return;
    l->closing = 1;
    while (l->jobs) {
        struct learner_job *j = l->jobs;
        l->jobs = j->next;
        event_clear(&j->ev);
        free(j);
    }
    if (l->tick) event_free(l->tick);
    free(l);
}
