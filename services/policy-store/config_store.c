/* config_store.c — typed configuration keys in Redis (see config_store.h). */
#include "config_store.h"
#include "keys.h"
#include "clock.h"
#include "digest.h"
#include "event.h"
#include "log.h"
#include "orchestrator.h"
#include "rsync.h"

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
enum { K_BASE_CONF = 4, K_BASE_RISK, K_STREAK, K_INTERVAL, K_SIMILARITY, K_MAX_LEV, K_MAX_RISK, K_MAX_POS,
       K_DD, K_EXPOSURE };

static key_spec_t key_specs[] = {
    {"rl_v3.live.enabled", KT_BOOL, 0, 1, NULL, 1, NULL, "RL v3 live orchestrator on/off"},
    {"rl_v3.live.mode", KT_ENUM, 0, 0, modes, 0, "SHADOW", "OFF, SHADOW, PRIMARY or HYBRID"},
    {"rl_v3.live.min_confidence", KT_NUMBER, 0, 1, NULL, 0.6, NULL, "minimum signal confidence for an intent"},
    {"rl_v3.live.max_trades_per_hour", KT_INT, 0, 10000, NULL, 10, NULL, "intents per rolling hour of event time"},
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
    redisContext *rc;
    char hash[160], versions[160], stream[160], audit[160];
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

config_store_t *config_store_new(const qt_config_t *cfg, char *err, size_t errlen)
{
    if (config_store_env_defaults(err, errlen) < 0) return NULL;
    config_store_t *cs = calloc(1, sizeof *cs);
    if (!cs) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    cs->cfg = cfg;
    proto_key(cs->hash, sizeof cs->hash, cfg->ns, QT_KEY_POLICY_CONFIG);
    proto_key(cs->versions, sizeof cs->versions, cfg->ns, QT_KEY_POLICY_VERSIONS);
    proto_key(cs->stream, sizeof cs->stream, cfg->ns, QT_STREAM_POLICY);
    proto_key(cs->audit, sizeof cs->audit, cfg->ns, QT_KEY_POLICY_AUDIT);
    return cs;
}

void config_store_free(config_store_t *cs)
{
    if (!cs) return;
    if (cs->rc) redisFree(cs->rc);
    free(cs);
}

/* A live synchronous connection, reconnecting when the last one broke. */
static redisContext *cs_conn(config_store_t *cs, char *err, size_t errlen)
{
    if (cs->rc && !cs->rc->err) return cs->rc;
    if (cs->rc) redisFree(cs->rc);
    cs->rc = rsync_connect(&cs->cfg->redis, 2000, err, errlen);
    return cs->rc;
}

/* Run a command; NULL with err (and the connection dropped) on failure. */
static redisReply *cs_cmd(config_store_t *cs, int argc, const char **argv, char *err, size_t errlen)
{
    redisContext *c = cs_conn(cs, err, errlen);
    if (!c) return NULL;
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    if (!r) {
        snprintf(err, errlen, "redis: %s", c->errstr);
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "redis: %s", r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
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

int config_store_seed(config_store_t *cs, char *err, size_t errlen)
{
    for (size_t i = 0; i < NKEYS; i++) {
        json_t *d = spec_default(&key_specs[i]);
        char *txt = json_dumps(d, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(15));
        json_decref(d);
        const char *a1[] = {"HSETNX", cs->hash, key_specs[i].key, txt};
        const char *a2[] = {"HSETNX", cs->versions, key_specs[i].key, "1"};
        redisReply *r1 = cs_cmd(cs, 4, a1, err, errlen);
        redisReply *r2 = r1 ? cs_cmd(cs, 4, a2, err, errlen) : NULL;
        free(txt);
        if (r1) freeReplyObject(r1);
        if (!r2) return -1;
        freeReplyObject(r2);
    }
    return 0;
}

/* HGET one field into a JSON value (new reference); NULL if absent or bad. */
static json_t *cs_hget_json(config_store_t *cs, const char *hash, const char *key, char *err, size_t errlen, int *fail)
{
    const char *argv[] = {"HGET", hash, key};
    redisReply *r = cs_cmd(cs, 3, argv, err, errlen);
    json_t *v = NULL;
    *fail = r == NULL;
    if (r && r->type == REDIS_REPLY_STRING) v = json_loadb(r->str, r->len, JSON_DECODE_ANY, NULL);
    if (r) freeReplyObject(r);
    return v;
}

json_t *config_store_get(config_store_t *cs, const char *key, long *version, char *err, size_t errlen)
{
    int fail;
    const key_spec_t *s = spec_of(key);
    if (!s) {
        snprintf(err, errlen, "unknown key '%.100s'", key);
        return NULL;
    }
    json_t *v = cs_hget_json(cs, cs->hash, key, err, errlen, &fail);
    json_t *ver = fail ? NULL : cs_hget_json(cs, cs->versions, key, err, errlen, &fail);
    if (fail) {
        json_decref(v);
        return NULL;
    }
    *version = ver ? (long)json_integer_value(ver) : 0;
    json_decref(ver);
    return v ? v : spec_default(s); /* not seeded yet: the default is in force */
}

json_t *config_store_all(config_store_t *cs, char *err, size_t errlen)
{
    json_t *all = json_object();
    for (size_t i = 0; i < NKEYS; i++) {
        long ver = 0;
        json_t *v = config_store_get(cs, key_specs[i].key, &ver, err, errlen);
        if (!v) {
            json_decref(all);
            return NULL;
        }
        json_object_set_new(all, key_specs[i].key,
                            json_pack("{s:o, s:i, s:s, s:o, s:s}", "value", v, "version", (int)ver, "type",
                                      spec_type_name(&key_specs[i]), "default", spec_default(&key_specs[i]),
                                      "help", key_specs[i].help));
    }
    return all;
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
    "return ver\n";

long config_store_set(config_store_t *cs, const char *key, const json_t *value, const char *who,
                      int *status, char *err, size_t errlen)
{
    char id[27], ts[24], maxlen[24];
    *status = 400;
    if (config_store_check(key, value, err, errlen) < 0) return -1;
    char *txt = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(15));
    if (!txt) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    event_new_id(id);
    snprintf(ts, sizeof ts, "%lld", (long long)clock_wall_ms());
    snprintf(maxlen, sizeof maxlen, "%ld", cs->cfg->stream_maxlen);
    const char *argv[] = {"EVAL", cs_set_lua, "4", cs->hash, cs->versions, cs->stream, cs->audit,
                          key, txt, who, maxlen, id, ts, event_source()};
    redisReply *r = cs_cmd(cs, 14, argv, err, errlen);
    free(txt);
    if (!r) {
        *status = 503;
        return -1;
    }
    long ver = r->type == REDIS_REPLY_INTEGER ? (long)r->integer : -1;
    freeReplyObject(r);
    log_info("config %s set to a new value (version %ld) by %s", key, ver, who);
    return ver;
}

void config_store_token_label(const char *token, char *out, size_t len)
{
    char hex[9];
    digest_hex(token, 4, hex);
    snprintf(out, len, "token:%s", hex);
}

/* ---------- HTTP ---------- */

static int cs_http_all(void *ud, httpd_req_t *req, json_t **out)
{
    char err[256];
    (void)req;
    json_t *all = config_store_all(ud, err, sizeof err);
    if (!all) {
        *out = httpd_error("configuration unavailable: %s", err);
        return 503;
    }
    *out = json_pack("{s:o}", "keys", all);
    return 200;
}

static int cs_http_get(void *ud, httpd_req_t *req, json_t **out)
{
    char err[256];
    long ver = 0;
    if (!spec_of(req->rest)) {
        *out = httpd_error("unknown key '%.100s'", req->rest);
        return 404;
    }
    json_t *v = config_store_get(ud, req->rest, &ver, err, sizeof err);
    if (!v) {
        *out = httpd_error("configuration unavailable: %s", err);
        return 503;
    }
    *out = json_pack("{s:s, s:o, s:i}", "key", req->rest, "value", v, "version", (int)ver);
    return 200;
}

static int cs_http_put(void *ud, httpd_req_t *req, json_t **out)
{
    config_store_t *cs = ud;
    char err[256], who[32];
    int status;
    const json_t *v = json_object_get(req->body, "value");
    if (!json_is_object(req->body) || !v || json_object_size(req->body) != 1) {
        *out = httpd_error("body must be {\"value\": <new value>}");
        return 400;
    }
    config_store_token_label(cs->cfg->api_token, who, sizeof who);
    long ver = config_store_set(cs, req->rest, v, who, &status, err, sizeof err);
    if (ver < 0) {
        *out = httpd_error("%s", err);
        return status;
    }
    *out = json_pack("{s:s, s:O, s:i}", "key", req->rest, "value", v, "version", (int)ver);
    return 200;
}

int config_store_routes(config_store_t *cs, httpd_t *h)
{
    return httpd_route(h, "GET", "/api/v1/policy/config", 0, cs_http_all, cs) < 0 ||
                   httpd_route(h, "GET", "/api/v1/policy/config/", HTTPD_PREFIX, cs_http_get, cs) < 0 ||
                   httpd_route(h, "PUT", "/api/v1/policy/config/", HTTPD_PREFIX | HTTPD_AUTH, cs_http_put, cs) < 0
               ? -1
               : 0;
}
