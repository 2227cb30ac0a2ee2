/* proto.c — the event-type registry: embedded schemas, compiled once, plus
 * the cross-field rules a schema cannot express. */
#include "proto.h"
#include "actions.h"
#include "keys.h"
#include "schema.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define PROTO_MAX_TYPES 64

#define PROTO_MAX_FIELDS 48

typedef struct {
    const char *name; /* borrowed from doc */
    size_t len;
    int kind;
} proto_field_t;

typedef struct proto_entry {
    const char *type;
    int version;
    json_t *doc;
    schema_t *compiled;
    proto_field_t fields[PROTO_MAX_FIELDS]; /* the payload's top-level fields */
    size_t nfields;
} proto_entry_t;

static proto_entry_t proto_table[PROTO_MAX_TYPES];
static size_t proto_n;
static int proto_loaded;

int proto_validate_schema(const json_t *doc, const json_t *data, char *err, size_t errlen)
{
    schema_t *s = schema_compile(doc, err, errlen);
    if (!s) return -1;
    int rc = schema_validate(s, data, err, errlen);
    schema_free(s);
    return rc;
}

/* The kind of one property's schema; a $ref is followed into doc's $defs. */
static int proto_kind_of(const json_t *doc, const json_t *prop)
{
    const char *ref = json_string_value(json_object_get(prop, "$ref"));
    if (ref && strncmp(ref, "#/$defs/", 8) == 0) prop = json_object_get(json_object_get(doc, "$defs"), ref + 8);
    const json_t *t = json_object_get(prop, "type");
    const char *name = json_string_value(t);
    if (!t) { /* an enum without a type: text when every value is */
        size_t i;
        const json_t *v;
        json_array_foreach(json_object_get(prop, "enum"), i, v) if (!json_is_string(v)) return PROTO_FIELD_JSON;
        return json_is_array(json_object_get(prop, "enum")) ? PROTO_FIELD_STRING : PROTO_FIELD_JSON;
    }
    if (!name) return PROTO_FIELD_JSON; /* a list of types */
    if (!strcmp(name, "string")) return PROTO_FIELD_STRING;
    if (!strcmp(name, "integer")) return PROTO_FIELD_INTEGER;
    if (!strcmp(name, "number")) return PROTO_FIELD_NUMBER;
    if (!strcmp(name, "boolean")) return PROTO_FIELD_BOOLEAN;
    return PROTO_FIELD_JSON;
}

/* The field table of one schema: every top-level property and its kind. In
 * a v2 entry the payload's fields stand beside the envelope's, and in a dead
 * letter beside its metadata (libcommon/dlq.h): a payload field may not be
 * named as one of those. */
static int proto_fields(proto_entry_t *e, char *err, size_t errlen)
{
    static const char *const taken[] = {"id",    "type",          "v",         "ts",    "source",
                                        "trace", "data",          "origin_stream", "origin_id", "group",
                                        "consumer", "deliveries", "error",     "failed_at"};
    const char *k;
    json_t *prop;
    json_object_foreach(json_object_get(e->doc, "properties"), k, prop) {
        for (size_t i = 0; i < sizeof taken / sizeof taken[0]; i++)
            if (!strcmp(k, taken[i]))
                return snprintf(err, errlen, "schema %s.v%d: a payload field may not be named '%s' "
                                             "(an envelope or dead-letter field's name)", e->type, e->version, k),
                       -1;
        if (e->nfields == PROTO_MAX_FIELDS)
            return snprintf(err, errlen, "schema %s.v%d: more than %d fields", e->type, e->version, PROTO_MAX_FIELDS), -1;
        e->fields[e->nfields++] = (proto_field_t){k, strlen(k), proto_kind_of(e->doc, prop)};
    }
    return 0;
}

/* Parse and compile one embedded schema into the table. */
static int proto_load_one(const proto_source_t *p, char *err, size_t errlen)
{
    json_error_t je;
    char why[256];
    if (proto_n == PROTO_MAX_TYPES) {
        snprintf(err, errlen, "too many schemas (max %d)", PROTO_MAX_TYPES);
        return -1;
    }
    json_t *doc = json_loads(p->json, 0, &je);
    if (!doc) {
        snprintf(err, errlen, "schema %s.v%d: line %d: %s", p->type, p->version, je.line, je.text);
        return -1;
    }
    schema_t *s = schema_compile(doc, why, sizeof why);
    if (!s) {
        snprintf(err, errlen, "schema %s.v%d: %s", p->type, p->version, why);
        json_decref(doc);
        return -1;
    }
    proto_entry_t *e = &proto_table[proto_n++];
    *e = (proto_entry_t){p->type, p->version, doc, s, {{0}}, 0};
    return proto_fields(e, err, errlen);
}

int proto_init(char *err, size_t errlen)
{
    if (proto_loaded) return 0;
    for (const proto_source_t *p = proto_sources; p->type; p++)
        if (proto_load_one(p, err, errlen) < 0) {
            proto_cleanup();
            return -1;
        }
    proto_loaded = 1;
    return 0;
}

void proto_cleanup(void)
{
    for (size_t i = 0; i < proto_n; i++) {
        json_decref(proto_table[i].doc);
        schema_free(proto_table[i].compiled);
    }
    proto_n = 0;
    proto_loaded = 0;
}

static const proto_entry_t *proto_find(const char *type, int version)
{
    char err[256];
    if (!proto_loaded && proto_init(err, sizeof err) < 0) return NULL;
    for (size_t i = 0; i < proto_n; i++)
        if (proto_table[i].version == version && strcmp(proto_table[i].type, type) == 0)
            return &proto_table[i];
    return NULL;
}

int proto_known(const char *type, int version) { return proto_find(type, version) != NULL; }

const proto_type_t *proto_type(const char *type, int version) { return proto_find(type, version); }

int proto_type_field(const proto_type_t *e, const char *name, size_t len, int *index, const char **schema_name)
{
    for (size_t i = 0; e && i < e->nfields; i++)
        if (e->fields[i].len == len && e->fields[i].name[0] == name[0] && memcmp(e->fields[i].name, name, len) == 0) {
            if (index) *index = (int)i;
            if (schema_name) *schema_name = e->fields[i].name;
            return e->fields[i].kind;
        }
    return 0;
}

int proto_type_field_kind(const proto_type_t *e, const char *name, size_t len)
{
    return len ? proto_type_field(e, name, len, NULL, NULL) : 0;
}

int proto_field_kind(const char *type, int version, const char *name, size_t len)
{
    return proto_type_field_kind(proto_find(type, version), name, len);
}

int proto_latest_version(const char *type)
{
    int best = 0;
    if (proto_count() == 0) return 0;
    for (size_t i = 0; i < proto_n; i++)
        if (strcmp(proto_table[i].type, type) == 0 && proto_table[i].version > best)
            best = proto_table[i].version;
    return best;
}

const json_t *proto_schema(const char *type, int version)
{
    const proto_entry_t *e = proto_find(type, version);
    return e ? e->doc : NULL;
}

size_t proto_count(void)
{
    char err[256];
    return (proto_loaded || proto_init(err, sizeof err) == 0) ? proto_n : 0;
}

const char *proto_type_at(size_t i, int *version)
{
    if (i >= proto_count()) return NULL;
    if (version) *version = proto_table[i].version;
    return proto_table[i].type;
}

/* market.data.update: low <= open, close <= high. */
static int proto_check_bar(const json_t *d, char *err, size_t errlen)
{
    double o = json_number_value(json_object_get(d, "open"));
    double h = json_number_value(json_object_get(d, "high"));
    double l = json_number_value(json_object_get(d, "low"));
    double c = json_number_value(json_object_get(d, "close"));
    if (l > h || o < l || o > h || c < l || c > h) {
        snprintf(err, errlen, "data: bar is inconsistent (need low <= open, close <= high; got o=%g h=%g l=%g c=%g)",
                 o, h, l, c);
        return -1;
    }
    return 0;
}

/* rl.signal.generated: probs must be a distribution. */
static int proto_check_probs(const json_t *d, char *err, size_t errlen)
{
    double sum = 0;
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(d, "probs"), i, p) sum += json_number_value(p);
    if (fabs(sum - 1.0) > 1e-3) {
        snprintf(err, errlen, "data.probs: must sum to 1 (got %g)", sum);
        return -1;
    }
    return 0;
}

typedef struct { const char *type; int (*check)(const json_t *, char *, size_t); } proto_rule_t;

static const proto_rule_t proto_rules[] = {
    {"market.data.update", proto_check_bar},
    {"rl.signal.generated", proto_check_probs},
};

int proto_validate(const char *type, int version, const json_t *data, char *err, size_t errlen)
{
    const proto_entry_t *e = proto_find(type, version);
    if (!e) {
        if (proto_latest_version(type)) snprintf(err, errlen, "type %.64s: version %d is not supported", type, version);
        else snprintf(err, errlen, "type: unknown event type '%.64s'", type);
        return -1;
    }
    return proto_type_validate(e, data, err, errlen);
}

int proto_type_validate(const proto_type_t *e, const json_t *data, char *err, size_t errlen)
{
    if (schema_validate(e->compiled, data, err, errlen) < 0) return -1;
    for (size_t i = 0; i < sizeof proto_rules / sizeof proto_rules[0]; i++)
        if (strcmp(proto_rules[i].type, e->type) == 0 && proto_rules[i].check(data, err, errlen) < 0)
            return -1;
    return 0;
}

void proto_key(char *out, size_t len, const char *ns, const char *name) { snprintf(out, len, "%s:%s", ns, name); }

int proto_partitioned(const char *name)
{
    static const char *const parted[] = {QT_STREAM_MARKET, QT_STREAM_SIGNAL, QT_STREAM_VOTE, QT_STREAM_TRADE_INTENT,
                                         QT_STREAM_EXECUTION, QT_STREAM_FEEDBACK};
    for (size_t i = 0; i < sizeof parted / sizeof parted[0]; i++)
        if (strcmp(name, parted[i]) == 0) return 1;
    return 0;
}

uint32_t proto_symbol_hash(const char *symbol)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *c = (const unsigned char *)symbol; *c; c++) h = (h ^ *c) * 16777619u;
    return h;
}

int proto_partition(const char *symbol, int p) { return p > 1 ? (int)(proto_symbol_hash(symbol) % (uint32_t)p) : 0; }

void proto_part_key(char *out, size_t len, const char *ns, const char *name, int p, int k)
{
    if (p <= 1 || !proto_partitioned(name)) snprintf(out, len, "%s:%s", ns, name);
    else snprintf(out, len, "%s:%s:p%d", ns, name, k);
}

void proto_lease_key(char *out, size_t len, const char *ns, const char *service, int k)
{
    snprintf(out, len, "%s:" QT_KEY_LEASE_PREFIX "%s:p%d", ns, service, k);
}

const char *const proto_rl_actions[PROTO_RL_ACTIONS] = {"FLAT",        "LONG_SMALL",  "LONG_LARGE",
                                                        "SHORT_SMALL", "SHORT_LARGE", "HOLD"};

const char *proto_rl_action_name(int i) { return i >= 0 && i < PROTO_RL_ACTIONS ? proto_rl_actions[i] : "HOLD"; }

int proto_rl_action_index(const char *name)
{
    for (int i = 0; name && i < PROTO_RL_ACTIONS; i++)
        if (strcmp(name, proto_rl_actions[i]) == 0) return i;
    return -1;
}
