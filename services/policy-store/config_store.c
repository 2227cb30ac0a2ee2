/* config_store.c — typed configuration keys in Redis (see config_store.h). */
#include "config_store.h"
#include "keys.h"
#include "clock.h"
#include "digest.h"
#include "event.h"
#include "log.h"
#include "orchestrator.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { KT_BOOL, KT_NUMBER, KT_INT, KT_ENUM } key_type_t;

typedef struct key_spec {
    const char *key;
    key_type_t type;
    double min, max; /* inclusive */
    const char *const *values; /* KT_ENUM */
    double def_num;
    const char *def_str;
    const char *help;
} key_spec_t;

static const char *const modes[] = {"OFF", "SHADOW", "PRIMARY", "HYBRID", NULL};

/* Index of each orch/risk key whose default an ORCH_* variable may set. */
enum { K_BASE_CONF = 5, K_BASE_RISK, K_STREAK, K_INTERVAL, K_SIMILARITY, K_MAX_LEV, K_MAX_RISK, K_MAX_POS,
       K_DD, K_EXPOSURE };

static key_spec_t key_specs[] = {
    {"rl_v3.live.enabled", KT_BOOL, 0, 1, NULL, 1, NULL, "RL v3 live orchestrator on/off"},
    {"rl_v3.live.mode", KT_ENUM, 0, 0, modes, 0, "SHADOW", "OFF, SHADOW, PRIMARY or HYBRID"},
    {"rl_v3.live.min_confidence", KT_NUMBER, 0, 1, NULL, 0.6, NULL, "minimum signal confidence for an intent"},
    {"rl_v3.live.max_trades_per_hour", KT_INT, 0, 10000, NULL, 10, NULL, "intents per rolling hour of event time"},
    {"rl_v3.live.flat_closes", KT_BOOL, 0, 1, NULL, 0, NULL, "a FLAT action closes the open position (seed: FLAT publishes nothing)"},
    {"orch.base_confidence", KT_NUMBER, 0, 1, NULL, 0.50, NULL, "TradingPolicy starting confidence"},
    {"orch.base_risk_pct", KT_NUMBER, 0.001, 100, NULL, 1.0, NULL, "TradingPolicy starting risk per trade, percent"},
    {"orch.losing_streak_limit", KT_INT, 1, 1000, NULL, 5, NULL, "losses in a row that cut risk to 30%"},
    {"orch.policy_update_interval_sec", KT_INT, 0, 86400, NULL, 60, NULL, "seconds of event time between policy updates"},
    {"orch.similarity_keep", KT_NUMBER, 0, 1, NULL, 0.98, NULL, "a new policy this similar keeps the current one"},
    {"risk.max_leverage", KT_NUMBER, 1, 125, NULL, 5, NULL, "RiskGuard: highest leverage of an intent"},
    {"risk.max_risk_pct", KT_NUMBER, 0.001, 100, NULL, 2.0, NULL, "RiskGuard: hard cap of risk per trade, percent"},
    {"risk.max_open_positions", KT_INT, 1, 1000, NULL, 8, NULL, "open positions at most"},
    {"risk.daily_dd_limit_pct", KT_NUMBER, 0.01, 100, NULL, 3.0, NULL, "daily loss (percent) that stops new trades"},
    {"risk.total_exposure_limit_pct", KT_NUMBER, 0.01, 10000, NULL, 15.0, NULL, "total margin in use, percent of equity"},
};
#define NKEYS (sizeof key_specs / sizeof key_specs[0])

struct config_store {
    const qt_config_t *cfg;
    bus_t *bus;
    char hash[160], versions[160], stream[160], audit[160], reset[160];
};

static const key_spec_t *spec_of(const char *key)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(key_specs[i].key, key) == 0) return &key_specs[i];
    return NULL;
}

/* ORCH_* variables (the seed's names) set the defaults of the matching keys. */
static int config_store_env_defaults(char *err, size_t errlen)
{
    orch_config_t oc;
    orch_config_default(&oc);
    if (orch_config_env(&oc, err, errlen) < 0) return -1;
    key_specs[K_BASE_CONF].def_num = oc.base_confidence;
    key_specs[K_BASE_RISK].def_num = oc.base_risk_pct;
    key_specs[K_STREAK].def_num = oc.losing_streak_limit;
    key_specs[K_INTERVAL].def_num = (double)oc.update_interval_sec;
    key_specs[K_SIMILARITY].def_num = oc.similarity_keep;
    key_specs[K_MAX_POS].def_num = oc.max_open_positions;
    key_specs[K_DD].def_num = oc.daily_dd_limit;
    key_specs[K_EXPOSURE].def_num = oc.total_exposure_limit;
    return 0;
}

config_store_t *config_store_new(const qt_config_t *cfg, bus_t *bus, char *err, size_t errlen)
{
    if (config_store_env_defaults(err, errlen) < 0) return NULL;
    config_store_t *cs = calloc(1, sizeof *cs);
    if (!cs) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    cs->cfg = cfg;
    cs->bus = bus;
    proto_key(cs->hash, sizeof cs->hash, cfg->ns, QT_KEY_POLICY_CONFIG);
    proto_key(cs->versions, sizeof cs->versions, cfg->ns, QT_KEY_POLICY_VERSIONS);
    proto_key(cs->stream, sizeof cs->stream, cfg->ns, QT_STREAM_POLICY);
    proto_key(cs->audit, sizeof cs->audit, cfg->ns, QT_KEY_POLICY_AUDIT);
    proto_key(cs->reset, sizeof cs->reset, cfg->ns, QT_KEY_POLICY_CONFIG_RESET);
    return cs;
}

void config_store_free(config_store_t *cs)
{
    free(cs);
}

static json_t *spec_default(const key_spec_t *s)
{
    switch (s->type) {
    case KT_BOOL: return json_boolean(s->def_num != 0);
    case KT_INT: return json_integer((json_int_t)s->def_num);
    case KT_ENUM: return json_string(s->def_str);
    default: return json_real(s->def_num);
    }
}

static const char *spec_type_name(const key_spec_t *s)
{
    static const char *const n[] = {"boolean", "number", "integer", "enum"};
    return n[s->type];
}

int config_store_check(const char *key, const json_t *v, char *err, size_t errlen)
{
    const key_spec_t *s = spec_of(key);
    if (!s) {
        snprintf(err, errlen, "unknown key '%.100s'", key);
        return -1;
    }
    switch (s->type) {
    case KT_BOOL:
        if (json_is_boolean(v)) return 0;
        snprintf(err, errlen, "%s must be true or false", key);
        return -1;
    case KT_ENUM:
        for (int i = 0; json_is_string(v) && s->values[i]; i++)
            if (strcmp(json_string_value(v), s->values[i]) == 0) return 0;
        snprintf(err, errlen, "%s must be one of OFF, SHADOW, PRIMARY, HYBRID", key);
        return -1;
    case KT_INT:
        if (!json_is_integer(v)) {
            snprintf(err, errlen, "%s must be an integer", key);
            return -1;
        }
        break;
    case KT_NUMBER:
        if (!json_is_number(v) || !isfinite(json_number_value(v))) {
            snprintf(err, errlen, "%s must be a number", key);
            return -1;
        }
        break;
    }
    double d = json_number_value(v);
    if (d < s->min || d > s->max) {
        snprintf(err, errlen, "%s must be within [%g, %g], got %g", key, s->min, s->max, d);
        return -1;
    }
    return 0;
}

/* KEYS: config hash, versions hash, reset marker. ARGV: seeded before (1/0),
 * the marker's JSON, then key, default JSON, key, default, ...
 * Each key that does not exist yet gets its default at version 1. A hash
 * gone after this process had seeded it (Redis restarted without
 * persistence, a flush) sets the marker: returns 1 then, else 0. */
static const char cs_seed_lua[] =
    "local gone = ARGV[1] == '1' and redis.call('EXISTS', KEYS[1]) == 0\n"
    "for i = 3, #ARGV, 2 do\n"
    "  redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1])\n"
    "  redis.call('HSETNX', KEYS[2], ARGV[i], '1')\n"
    "end\n"
    "if gone then redis.call('SET', KEYS[3], ARGV[2]) return 1 end\n"
    "return 0\n";

typedef struct cs_call {
    config_store_t *cs;
    void (*done)(void *ud, int ok);
    void *ud;
} cs_call_t;

static void cs_seed_cb(void *ud, const struct redisReply *r)
{
    cs_call_t *k = ud;
    int ok = r && r->type == REDIS_REPLY_INTEGER;
    if (!ok) log_warn("cannot seed the configuration: %s", r && r->type == REDIS_REPLY_ERROR ? r->str : "no answer");
    else if (r->integer == 1)
        log_error("the configuration %s was gone from Redis (restarted without persistence?): re-seeded with the "
                  "defaults; every service says so until an operator sets a key",
                  k->cs->hash);
    k->done(k->ud, ok);
    free(k);
}

int config_store_seed(config_store_t *cs, int seeded_before, void (*done)(void *ud, int ok), void *ud)
{
    const char *argv[8 + 2 * NKEYS] = {"EVAL", cs_seed_lua, "3", cs->hash};
    char *txt[NKEYS] = {0}, marker[300];
    int argc = 8, rc = -1;
    snprintf(marker, sizeof marker,
             "{\"at\":%lld,\"reason\":\"the configuration was gone from Redis (restarted without persistence?) and "
             "policy-store re-seeded the defaults: set the keys again\"}",
             (long long)clock_wall_ms());
    argv[4] = cs->versions, argv[5] = cs->reset, argv[6] = seeded_before ? "1" : "0", argv[7] = marker;
    cs_call_t *k = malloc(sizeof *k);
    for (size_t i = 0; k && i < NKEYS; i++) {
        json_t *d = spec_default(&key_specs[i]);
        txt[i] = json_dumps(d, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(15));
        json_decref(d);
        argv[argc++] = key_specs[i].key, argv[argc++] = txt[i] ? txt[i] : "null";
    }
    if (k) {
        k->cs = cs, k->done = done, k->ud = ud;
        rc = bus_redis(cs->bus, cs_seed_cb, k, argc, argv, NULL);
        if (rc < 0) free(k);
    }
    for (size_t i = 0; i < NKEYS; i++) free(txt[i]);
    return rc;
}

/* The value of key in an HGETALL reply (new reference), or its default. */
static json_t *cs_value_of(const redisReply *hash, const key_spec_t *s)
{
    for (size_t i = 0; hash && hash->type == REDIS_REPLY_ARRAY && i + 1 < hash->elements; i += 2) {
        const redisReply *k = hash->element[i], *v = hash->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || strcmp(k->str, s->key) != 0 || v->type != REDIS_REPLY_STRING) continue;
        json_t *j = json_loadb(v->str, v->len, JSON_DECODE_ANY, NULL);
        if (j) return j;
    }
    return spec_default(s); /* not seeded yet: the default is in force */
}

static long cs_version_of(const redisReply *versions, const char *key)
{
    for (size_t i = 0; versions && versions->type == REDIS_REPLY_ARRAY && i + 1 < versions->elements; i += 2)
        if (versions->element[i]->type == REDIS_REPLY_STRING && strcmp(versions->element[i]->str, key) == 0)
            return versions->element[i + 1]->str ? atol(versions->element[i + 1]->str) : 0;
    return 0;
}

/* KEYS: config hash, versions hash, policy stream, audit stream.
 * ARGV: key, value JSON, who, maxlen, event id, ts, source.
 * Bumps the version, stores the value, publishes policy.config.updated and
 * appends the audit record, atomically. Values arrive as validated JSON. */
static const char cs_set_lua[] =
    "local ver = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)\n"
    "local old = redis.call('HGET', KEYS[1], ARGV[1]) or 'null'\n"
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
    "local data = '{\"key\":' .. cjson.encode(ARGV[1]) .. ',\"value\":' .. ARGV[2] .. ',\"old_value\":' .. old ..\n"
    "  ',\"version\":' .. ver .. ',\"who\":' .. cjson.encode(ARGV[3]) .. '}'\n"
    "redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'id', ARGV[5], 'type', 'policy.config.updated',\n"
    "  'v', '1', 'ts', ARGV[6], 'source', ARGV[7], 'trace', ARGV[5], 'data', data)\n"
    "redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[4], '*', 'key', ARGV[1], 'old', old, 'new', ARGV[2],\n"
    "  'version', ver, 'who', ARGV[3], 'at', ARGV[6])\n"
    "redis.call('DEL', KEYS[5])\n"
    "return ver\n";

/* One HTTP request waiting for Redis. */
typedef struct cs_http {
    config_store_t *cs;
    httpd_later_t *later;
    char key[64];
    json_t *value; /* put: the value written */
} cs_http_t;

static cs_http_t *cs_http_new(config_store_t *cs, httpd_req_t *req, const char *key)
{
    cs_http_t *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->cs = cs, h->later = httpd_later(req);
    snprintf(h->key, sizeof h->key, "%s", key ? key : "");
    return h;
}

static void cs_http_free(cs_http_t *h)
{
    json_decref(h->value);
    free(h);
}

static void cs_unavailable(cs_http_t *h, const redisReply *r)
{
    httpd_answer(h->later, 503, httpd_error("configuration unavailable: %s",
                                            r && r->type == REDIS_REPLY_ERROR ? r->str : "Redis did not answer"));
    cs_http_free(h);
}

static void cs_set_cb(void *ud, const struct redisReply *r)
{
    cs_http_t *h = ud;
    if (!r || r->type != REDIS_REPLY_INTEGER) {
        cs_unavailable(h, r);
        return;
    }
    log_info("config %s set to a new value (version %lld)", h->key, (long long)r->integer);
    httpd_answer(h->later, 200, json_pack("{s:s, s:O, s:i}", "key", h->key, "value", h->value, "version", (int)r->integer));
    cs_http_free(h);
}

/* Validate and send the write (answered by cs_set_cb): HTTPD_LATER, or a status with *out. */
static int cs_set(config_store_t *cs, httpd_req_t *req, const char *key, const json_t *value, const char *who, json_t **out)
{
    char id[27], ts[24], maxlen[24], err[256];
    if (config_store_check(key, value, err, sizeof err) < 0) {
        *out = httpd_error("%s", err);
        return 400;
    }
    char *txt = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(15));
    cs_http_t *h = txt ? cs_http_new(cs, req, key) : NULL;
    if (!h) {
        free(txt);
        *out = httpd_error("out of memory");
        return 503;
    }
    h->value = json_deep_copy(value);
    event_new_id(id);
    snprintf(ts, sizeof ts, "%lld", (long long)clock_wall_ms());
    snprintf(maxlen, sizeof maxlen, "%ld", cs->cfg->stream_maxlen);
    const char *argv[] = {"EVAL", cs_set_lua, "5", cs->hash, cs->versions, cs->stream, cs->audit, cs->reset,
                          key, txt, who, maxlen, id, ts, event_source()};
    int rc = bus_redis(cs->bus, cs_set_cb, h, 15, argv, NULL);
    free(txt);
    if (rc < 0) {
        cs_http_free(h);
        *out = httpd_error("configuration unavailable: Redis is not reachable now");
        return 503;
    }
    return HTTPD_LATER;
}

void config_store_token_label(const char *token, char *out, size_t len)
{
    char hex[9];
    digest_hex(token, 4, hex);
    snprintf(out, len, "token:%s", hex);
}

/* ---------- HTTP ---------- */

/* Both hashes in one reply: {values, versions}. */
static const char cs_read_lua[] = "return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2])}";

/* The values and versions came: answer with one key or all. */
static void cs_read_cb(void *ud, const struct redisReply *r)
{
    cs_http_t *h = ud;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        cs_unavailable(h, r);
        return;
    }
    const redisReply *vals = r->element[0], *vers = r->element[1];
    if (h->key[0]) {
        const key_spec_t *s = spec_of(h->key);
        httpd_answer(h->later, 200, json_pack("{s:s, s:o, s:i}", "key", h->key, "value", cs_value_of(vals, s), "version",
                                              (int)cs_version_of(vers, h->key)));
        cs_http_free(h);
        return;
    }
    json_t *all = json_object();
    for (size_t i = 0; i < NKEYS; i++)
        json_object_set_new(all, key_specs[i].key,
                            json_pack("{s:o, s:i, s:s, s:o, s:s}", "value", cs_value_of(vals, &key_specs[i]), "version",
                                      (int)cs_version_of(vers, key_specs[i].key), "type", spec_type_name(&key_specs[i]),
                                      "default", spec_default(&key_specs[i]), "help", key_specs[i].help));
    httpd_answer(h->later, 200, json_pack("{s:o}", "keys", all));
    cs_http_free(h);
}

/* Read both hashes through the bus; cs_read_cb answers. */
static int cs_read(config_store_t *cs, httpd_req_t *req, const char *key, json_t **out)
{
    cs_http_t *h = cs_http_new(cs, req, key);
    const char *argv[] = {"EVAL", cs_read_lua, "2", cs->hash, cs->versions};
    if (!h || bus_redis(cs->bus, cs_read_cb, h, 5, argv, NULL) < 0) {
        if (h) cs_http_free(h);
        *out = httpd_error("configuration unavailable: %s", h ? "Redis is not reachable now" : "out of memory");
        return 503;
    }
    return HTTPD_LATER;
}

static int cs_http_all(void *ud, httpd_req_t *req, json_t **out) { return cs_read(ud, req, NULL, out); }

static int cs_http_get(void *ud, httpd_req_t *req, json_t **out)
{
    if (!spec_of(req->rest)) {
        *out = httpd_error("unknown key '%.100s'", req->rest);
        return 404;
    }
    return cs_read(ud, req, req->rest, out);
}

static int cs_http_put(void *ud, httpd_req_t *req, json_t **out)
{
    config_store_t *cs = ud;
    char who[32];
    const json_t *v = json_object_get(req->body, "value");
    if (!json_is_object(req->body) || !v || json_object_size(req->body) != 1) {
        *out = httpd_error("body must be {\"value\": <new value>}");
        return 400;
    }
    config_store_token_label(cs->cfg->api_token, who, sizeof who);
    return cs_set(cs, req, req->rest, v, who, out);
}

int config_store_routes(config_store_t *cs, httpd_t *h)
{
    return httpd_route(h, "GET", "/api/v1/policy/config", 0, cs_http_all, cs) < 0 ||
                   httpd_route(h, "GET", "/api/v1/policy/config/", HTTPD_PREFIX, cs_http_get, cs) < 0 ||
                   httpd_route(h, "PUT", "/api/v1/policy/config/", HTTPD_PREFIX | HTTPD_AUTH, cs_http_put, cs) < 0
               ? -1
               : 0;
}
