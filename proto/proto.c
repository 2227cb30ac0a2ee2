/* proto.c — JSON Schema subset validator and the event-type registry. */
#include "proto.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define PROTO_MAX_TYPES 64
#define PROTO_MAX_DEPTH 16

typedef struct { const char *type; int version; json_t *schema; } proto_entry_t;

static proto_entry_t proto_table[PROTO_MAX_TYPES];
static size_t proto_n;
static int proto_loaded;

/* Validation context: the document root (for $ref) and the error buffer. */
typedef struct {
    const json_t *root;
    char *err;
    size_t errlen;
} vctx_t;

static int v_node(vctx_t *c, const json_t *s, const json_t *x, const char *path, int depth);

static int v_fail(vctx_t *c, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int v_fail(vctx_t *c, const char *path, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errlen, "%s: %s", path, msg);
    return -1;
}

static const char *v_typename(const json_t *x)
{
    switch (json_typeof(x)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    default: return "null";
    }
}

static int v_type_is(const json_t *x, const char *t)
{
    if (strcmp(t, "number") == 0) return json_is_number(x);
    if (strcmp(t, "integer") == 0) return json_is_integer(x);
    return strcmp(t, v_typename(x)) == 0;
}

static int v_type(vctx_t *c, const json_t *t, const json_t *x, const char *path)
{
    if (!t) return 0;
    if (json_is_string(t)) {
        if (v_type_is(x, json_string_value(t))) return 0;
        return v_fail(c, path, "expected %s, got %s", json_string_value(t), v_typename(x));
    }
    size_t i;
    json_t *e;
    json_array_foreach(t, i, e) if (v_type_is(x, json_string_value(e))) return 0;
    return v_fail(c, path, "%s is not an allowed type", v_typename(x));
}

static int v_enum(vctx_t *c, const json_t *en, const json_t *x, const char *path)
{
    size_t i;
    json_t *e;
    if (!en) return 0;
    json_array_foreach(en, i, e) if (json_equal(e, x)) return 0;
    if (json_is_string(x)) return v_fail(c, path, "'%.64s' is not one of the allowed values", json_string_value(x));
    return v_fail(c, path, "value is not one of the allowed values");
}

static int v_number(vctx_t *c, const json_t *s, const json_t *x, const char *path)
{
    if (!json_is_number(x)) return 0;
    double d = json_number_value(x);
    const json_t *k;
    if (!isfinite(d)) return v_fail(c, path, "number is not finite");
    if ((k = json_object_get(s, "minimum")) && d < json_number_value(k))
        return v_fail(c, path, "%g is below the minimum %g", d, json_number_value(k));
    if ((k = json_object_get(s, "maximum")) && d > json_number_value(k))
        return v_fail(c, path, "%g is above the maximum %g", d, json_number_value(k));
    if ((k = json_object_get(s, "exclusiveMinimum")) && d <= json_number_value(k))
        return v_fail(c, path, "%g must be greater than %g", d, json_number_value(k));
    if ((k = json_object_get(s, "exclusiveMaximum")) && d >= json_number_value(k))
        return v_fail(c, path, "%g must be less than %g", d, json_number_value(k));
    return 0;
}

/* format "symbol": 2..20 characters of A-Z and 0-9. */
static int v_symbol_ok(const char *s, size_t n)
{
    if (n < 2 || n > 20) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9'))) return 0;
    return 1;
}

static int v_string(vctx_t *c, const json_t *s, const json_t *x, const char *path)
{
    if (!json_is_string(x)) return 0;
    size_t n = json_string_length(x);
    const json_t *k;
    if ((k = json_object_get(s, "minLength")) && n < (size_t)json_integer_value(k))
        return v_fail(c, path, "shorter than %lld bytes", (long long)json_integer_value(k));
    if ((k = json_object_get(s, "maxLength")) && n > (size_t)json_integer_value(k))
        return v_fail(c, path, "longer than %lld bytes (%zu)", (long long)json_integer_value(k), n);
    if ((k = json_object_get(s, "format")) && strcmp(json_string_value(k), "symbol") == 0 &&
        !v_symbol_ok(json_string_value(x), n))
        return v_fail(c, path, "'%.32s' is not a symbol (2-20 of A-Z, 0-9)", json_string_value(x));
    return 0;
}

static int v_array(vctx_t *c, const json_t *s, const json_t *x, const char *path, int depth)
{
    if (!json_is_array(x)) return 0;
    size_t n = json_array_size(x), i;
    const json_t *k, *items = json_object_get(s, "items");
    json_t *e;
    char sub[256];
    if ((k = json_object_get(s, "minItems")) && n < (size_t)json_integer_value(k))
        return v_fail(c, path, "fewer than %lld items", (long long)json_integer_value(k));
    if ((k = json_object_get(s, "maxItems")) && n > (size_t)json_integer_value(k))
        return v_fail(c, path, "more than %lld items", (long long)json_integer_value(k));
    json_array_foreach(x, i, e) {
        snprintf(sub, sizeof sub, "%s[%zu]", path, i);
        if (items && v_node(c, items, e, sub, depth + 1) < 0) return -1;
    }
    return 0;
}

static int v_object(vctx_t *c, const json_t *s, const json_t *x, const char *path, int depth)
{
    if (!json_is_object(x)) return 0;
    const json_t *req = json_object_get(s, "required"), *props = json_object_get(s, "properties");
    const json_t *addl = json_object_get(s, "additionalProperties"), *k;
    const char *key;
    json_t *e;
    size_t i;
    char sub[256];
    if ((k = json_object_get(s, "maxProperties")) && json_object_size(x) > (size_t)json_integer_value(k))
        return v_fail(c, path, "more than %lld properties", (long long)json_integer_value(k));
    json_array_foreach(req, i, e) if (!json_object_get(x, json_string_value(e)))
        return v_fail(c, path, "missing required field '%s'", json_string_value(e));
    json_object_foreach((json_t *)x, key, e) {
        const json_t *ps = props ? json_object_get(props, key) : NULL;
        snprintf(sub, sizeof sub, "%s.%.64s", path, key);
        if (!ps && json_is_false(addl)) return v_fail(c, path, "unknown field '%.64s'", key);
        if (!ps && json_is_object(addl)) ps = addl;
        if (ps && v_node(c, ps, e, sub, depth + 1) < 0) return -1;
    }
    return 0;
}

/* Resolve "#/$defs/NAME" against the document root. */
static const json_t *v_deref(vctx_t *c, const json_t *s)
{
    const json_t *ref = json_object_get(s, "$ref");
    if (!ref) return s;
    const char *r = json_string_value(ref);
    if (!r || strncmp(r, "#/$defs/", 8) != 0) return NULL;
    return json_object_get(json_object_get(c->root, "$defs"), r + 8);
}

static int v_node(vctx_t *c, const json_t *s, const json_t *x, const char *path, int depth)
{
    if (depth > PROTO_MAX_DEPTH) return v_fail(c, path, "nested deeper than %d levels", PROTO_MAX_DEPTH);
    s = v_deref(c, s);
    if (!s) return v_fail(c, path, "schema reference cannot be resolved");
    if (v_type(c, json_object_get(s, "type"), x, path) < 0 ||
        v_enum(c, json_object_get(s, "enum"), x, path) < 0 || v_number(c, s, x, path) < 0 ||
        v_string(c, s, x, path) < 0 || v_array(c, s, x, path, depth) < 0 ||
        v_object(c, s, x, path, depth) < 0)
        return -1;
    return 0;
}

int proto_validate_schema(const json_t *schema, const json_t *data, char *err, size_t errlen)
{
    vctx_t c = {schema, err, errlen};
    if (!data) {
        snprintf(err, errlen, "data: missing");
        return -1;
    }
    return v_node(&c, schema, data, "data", 0);
}

/* Keywords the validator understands; anything else in a schema is a bug. */
static const char *const proto_keywords[] = {
    "$id", "title", "description", "$defs", "type", "enum", "required", "properties",
    "additionalProperties", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "minLength", "maxLength", "minItems", "maxItems", "items", "maxProperties", "$ref",
    "format", NULL};

static int proto_check_keywords(const json_t *s, char *err, size_t errlen, const char *where)
{
    const char *key;
    json_t *v;
    if (!json_is_object(s)) return 0;
    json_object_foreach((json_t *)s, key, v) {
        int ok = 0;
        for (int i = 0; proto_keywords[i] && !ok; i++) ok = strcmp(key, proto_keywords[i]) == 0;
        if (!ok) {
            snprintf(err, errlen, "schema %s: unsupported keyword '%s'", where, key);
            return -1;
        }
        if (strcmp(key, "properties") == 0 || strcmp(key, "$defs") == 0) {
            const char *k2;
            json_t *v2;
            json_object_foreach(v, k2, v2) if (proto_check_keywords(v2, err, errlen, where) < 0) return -1;
        } else if ((strcmp(key, "items") == 0 || strcmp(key, "additionalProperties") == 0) &&
                   proto_check_keywords(v, err, errlen, where) < 0) {
            return -1;
        }
    }
    return 0;
}

int proto_init(char *err, size_t errlen)
{
    if (proto_loaded) return 0;
    for (const proto_source_t *p = proto_sources; p->type; p++) {
        json_error_t je;
        json_t *s = json_loads(p->json, 0, &je);
        if (!s) {
            snprintf(err, errlen, "schema %s.v%d: line %d: %s", p->type, p->version, je.line, je.text);
            goto fail;
        }
        if (proto_n == PROTO_MAX_TYPES || proto_check_keywords(s, err, errlen, p->type) < 0) {
            if (proto_n == PROTO_MAX_TYPES) snprintf(err, errlen, "too many schemas");
            json_decref(s);
            goto fail;
        }
        proto_table[proto_n++] = (proto_entry_t){p->type, p->version, s};
    }
    proto_loaded = 1;
    return 0;
fail:
    proto_cleanup();
    return -1;
}

void proto_cleanup(void)
{
    for (size_t i = 0; i < proto_n; i++) json_decref(proto_table[i].schema);
    proto_n = 0;
    proto_loaded = 0;
}

static const proto_entry_t *proto_find(const char *type, int version)
{
    char err[256];
    if (proto_init(err, sizeof err) < 0) return NULL;
    for (size_t i = 0; i < proto_n; i++)
        if (proto_table[i].version == version && strcmp(proto_table[i].type, type) == 0)
            return &proto_table[i];
    return NULL;
}

int proto_known(const char *type, int version) { return proto_find(type, version) != NULL; }

int proto_latest_version(const char *type)
{
    int best = 0;
    char err[256];
    if (proto_init(err, sizeof err) < 0) return 0;
    for (size_t i = 0; i < proto_n; i++)
        if (strcmp(proto_table[i].type, type) == 0 && proto_table[i].version > best)
            best = proto_table[i].version;
    return best;
}

const json_t *proto_schema(const char *type, int version)
{
    const proto_entry_t *e = proto_find(type, version);
    return e ? e->schema : NULL;
}

size_t proto_count(void)
{
    char err[256];
    return proto_init(err, sizeof err) < 0 ? 0 : proto_n;
}

const char *proto_type_at(size_t i, int *version)
{
    if (i >= proto_count()) return NULL;
    if (version) *version = proto_table[i].version;
    return proto_table[i].type;
}

/* Cross-field rule for market.data.update: low <= open, close <= high. */
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
    if (proto_validate_schema(e->schema, data, err, errlen) < 0) return -1;
    for (size_t i = 0; i < sizeof proto_rules / sizeof proto_rules[0]; i++)
        if (strcmp(proto_rules[i].type, type) == 0 && proto_rules[i].check(data, err, errlen) < 0)
            return -1;
    return 0;
}
