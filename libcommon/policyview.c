/* policyview.c — the configuration and TradingPolicy as a service sees them
 * (see policyview.h). */
#include "policyview.h"

#include <hiredis/hiredis.h>
#include <string.h>

int policyview_init(policyview_t *pv)
{
    pv->trading = NULL;
    pv->config = json_object();
    return pv->config ? 0 : -1;
}

void policyview_free(policyview_t *pv)
{
    json_decref(pv->config);
    json_decref(pv->trading);
    pv->config = pv->trading = NULL;
}

int policyview_load_hash(policyview_t *pv, const redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_ARRAY) return -1;
    json_t *cfg = json_object();
    if (!cfg) return -1;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) continue;
        json_t *val = json_loadb(v->str, v->len, JSON_DECODE_ANY, NULL);
        if (val) json_object_set_new(cfg, k->str, val);
    }
    json_decref(pv->config);
    pv->config = cfg;
    return 0;
}

int policyview_load_trading(policyview_t *pv, const char *txt, size_t len)
{
    json_t *t = json_loadb(txt, len, 0, NULL);
    if (!json_is_object(t)) {
        json_decref(t);
        return -1;
    }
    json_decref(pv->trading);
    pv->trading = t;
    return 0;
}

int policyview_apply(policyview_t *pv, const event_t *ev)
{
    const json_t *d = ev->data;
    if (strcmp(ev->type, "policy.config.updated") == 0) {
        const char *key = json_string_value(json_object_get(d, "key"));
        if (!key) return 0;
        json_object_set(pv->config, key, json_object_get(d, "value"));
        return 1;
    }
    if (strcmp(ev->type, "policy.trading.updated") == 0) {
        json_decref(pv->trading);
        pv->trading = json_deep_copy(d);
        return 1;
    }
    return 0;
}

double policyview_num(const policyview_t *pv, const char *key, double def)
{
    const json_t *v = json_object_get(pv->config, key);
    return json_is_number(v) ? json_number_value(v) : def;
}

int policyview_bool(const policyview_t *pv, const char *key, int def)
{
    const json_t *v = json_object_get(pv->config, key);
    return json_is_boolean(v) ? json_is_true(v) : def;
}

const char *policyview_str(const policyview_t *pv, const char *key, const char *def)
{
    const char *s = json_string_value(json_object_get(pv->config, key));
    return s ? s : def;
}

const json_t *policyview_trading(const policyview_t *pv, const char *field)
{
    return pv->trading ? json_object_get(pv->trading, field) : NULL;
}

char *policyview_save(const policyview_t *pv)
{
    json_t *o = json_pack("{s:O, s:O?}", "config", pv->config, "trading", pv->trading);
    char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return txt;
}

int policyview_restore(policyview_t *pv, const char *txt, size_t len)
{
    json_t *o = json_loadb(txt, len, 0, NULL), *cfg = json_object_get(o, "config"), *t = json_object_get(o, "trading");
    if (!json_is_object(cfg) || (t && !json_is_object(t) && !json_is_null(t))) {
        json_decref(o);
        return -1;
    }
    json_decref(pv->config);
    json_decref(pv->trading);
    pv->config = json_incref(cfg);
    pv->trading = json_is_object(t) ? json_incref(t) : NULL;
    json_decref(o);
    return 0;
}
