/* schema.c — compile a JSON Schema subset once, validate fast (see schema.h). */
#include "schema.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHEMA_MAX_DEPTH 16

enum { T_OBJECT = 1, T_ARRAY = 2, T_STRING = 4, T_INTEGER = 8, T_REAL = 16, T_BOOL = 32, T_NULL = 64 };

typedef struct snode snode_t;
typedef struct { char *name; snode_t *node; int required; } sprop_t;

struct snode {
    unsigned types;        /* allowed kinds; 0 = any */
    json_t *enumv;         /* owned copy of the enum array, or NULL */
    char **enum_str;       /* when every enum value is a string */
    size_t n_enum_str;
    int has_min, has_max, has_xmin, has_xmax;
    double min, max, xmin, xmax;
    long min_len, max_len, min_items, max_items, max_props; /* -1: none */
    int fmt_symbol;
    snode_t *items, *addl;
    int addl_false;
    sprop_t *props;        /* sorted by name */
    size_t nprops, nreq;
    const char **req;      /* required names, in schema order */
};

struct schema {
    snode_t *root;
    snode_t **all;         /* every node, for freeing ($ref targets are shared) */
    size_t nall, capall;
    char **defnames;       /* compiled $defs, by name */
    snode_t **defnodes;
    size_t ndefs;
};

/* ---------- compiling ---------- */

typedef struct { schema_t *s; const json_t *doc; char *err; size_t errlen; } cctx_t;

static snode_t *c_node(cctx_t *c, const json_t *j, int depth);

static int c_fail(cctx_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int c_fail(cctx_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static snode_t *c_alloc(cctx_t *c)
{
    schema_t *s = c->s;
    if (s->nall == s->capall) {
        size_t cap = s->capall ? s->capall * 2 : 32;
        snode_t **a = realloc(s->all, cap * sizeof *a);
        if (!a) return NULL;
        s->all = a;
        s->capall = cap;
    }
    snode_t *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->min_len = n->max_len = n->min_items = n->max_items = n->max_props = -1;
    s->all[s->nall++] = n;
    return n;
}

static unsigned c_typebit(const char *t)
{
    static const struct { const char *name; unsigned bits; } map[] = {
        {"object", T_OBJECT}, {"array", T_ARRAY}, {"string", T_STRING}, {"integer", T_INTEGER},
        {"number", T_INTEGER | T_REAL}, {"boolean", T_BOOL}, {"null", T_NULL}};
    for (size_t i = 0; t && i < sizeof map / sizeof map[0]; i++)
        if (strcmp(map[i].name, t) == 0) return map[i].bits;
    return 0;
}

static int c_type(cctx_t *c, snode_t *n, const json_t *t)
{
    size_t i;
    json_t *e;
    if (json_is_string(t)) n->types = c_typebit(json_string_value(t));
    else json_array_foreach(t, i, e) n->types |= c_typebit(json_string_value(e));
    return n->types ? 0 : c_fail(c, "bad \"type\"");
}

static int c_enum(cctx_t *c, snode_t *n, const json_t *en)
{
    size_t i;
    json_t *e;
    if (!json_is_array(en) || json_array_size(en) == 0) return c_fail(c, "\"enum\" must be a non-empty array");
    n->enumv = json_deep_copy(en);
    n->enum_str = calloc(json_array_size(en), sizeof *n->enum_str);
    if (!n->enumv || !n->enum_str) return c_fail(c, "out of memory");
    json_array_foreach(en, i, e) {
        if (!json_is_string(e)) { /* mixed enum: compare with json_equal */
            free(n->enum_str);
            n->enum_str = NULL;
            n->n_enum_str = 0;
            return 0;
        }
        n->enum_str[n->n_enum_str++] = (char *)json_string_value(json_array_get(n->enumv, i));
    }
    return 0;
}

static int c_num(const json_t *j, const char *k, int *has, double *v)
{
    const json_t *x = json_object_get(j, k);
    if (!x) return 0;
    if (!json_is_number(x)) return -1;
    *has = 1;
    *v = json_number_value(x);
    return 0;
}

static int c_int(const json_t *j, const char *k, long *v)
{
    const json_t *x = json_object_get(j, k);
    if (!x) return 0;
    if (!json_is_integer(x) || json_integer_value(x) < 0) return -1;
    *v = (long)json_integer_value(x);
    return 0;
}

static int c_bounds(cctx_t *c, snode_t *n, const json_t *j)
{
    const json_t *f = json_object_get(j, "format");
    if (c_num(j, "minimum", &n->has_min, &n->min) < 0 || c_num(j, "maximum", &n->has_max, &n->max) < 0 ||
        c_num(j, "exclusiveMinimum", &n->has_xmin, &n->xmin) < 0 ||
        c_num(j, "exclusiveMaximum", &n->has_xmax, &n->xmax) < 0 || c_int(j, "minLength", &n->min_len) < 0 ||
        c_int(j, "maxLength", &n->max_len) < 0 || c_int(j, "minItems", &n->min_items) < 0 ||
        c_int(j, "maxItems", &n->max_items) < 0 || c_int(j, "maxProperties", &n->max_props) < 0)
        return c_fail(c, "a numeric keyword has a bad value");
    if (f && (!json_is_string(f) || strcmp(json_string_value(f), "symbol") != 0))
        return c_fail(c, "unsupported \"format\"");
    n->fmt_symbol = f != NULL;
    return 0;
}

static int c_prop_cmp(const void *a, const void *b)
{
    return strcmp(((const sprop_t *)a)->name, ((const sprop_t *)b)->name);
}

static int c_props(cctx_t *c, snode_t *n, const json_t *j, int depth)
{
    const json_t *props = json_object_get(j, "properties"), *req = json_object_get(j, "required");
    const json_t *addl = json_object_get(j, "additionalProperties");
    const char *key;
    json_t *v;
    size_t i = 0;
    n->nprops = json_object_size(props);
    n->props = calloc(n->nprops ? n->nprops : 1, sizeof *n->props);
    n->req = calloc(json_array_size(req) + 1, sizeof *n->req);
    if (!n->props || !n->req) return c_fail(c, "out of memory");
    json_object_foreach((json_t *)props, key, v) {
        n->props[i].name = strdup(key);
        if (!n->props[i].name || !(n->props[i].node = c_node(c, v, depth + 1))) return -1;
        i++;
    }
    qsort(n->props, n->nprops, sizeof *n->props, c_prop_cmp);
    json_array_foreach(req, i, v) {
        sprop_t want = {(char *)json_string_value(v), NULL, 0}, *p;
        if (!want.name) return c_fail(c, "\"required\" must list strings");
        p = bsearch(&want, n->props, n->nprops, sizeof *n->props, c_prop_cmp);
        if (!p) return c_fail(c, "required field '%s' has no schema", want.name);
        p->required = 1;
        n->req[n->nreq++] = p->name;
    }
    n->addl_false = json_is_false(addl);
    if (json_is_object(addl) && !(n->addl = c_node(c, addl, depth + 1))) return -1;
    return 0;
}

static const char *const c_keywords[] = {
    "$id", "title", "description", "$defs", "type", "enum", "required", "properties",
    "additionalProperties", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "minLength", "maxLength", "minItems", "maxItems", "items", "maxProperties", "$ref", "format", NULL};

static int c_known_keywords(cctx_t *c, const json_t *j)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v) {
        int ok = 0;
        for (int i = 0; c_keywords[i] && !ok; i++) ok = strcmp(key, c_keywords[i]) == 0;
        if (!ok) return c_fail(c, "unsupported keyword '%s'", key);
    }
    return 0;
}

/* "$ref": "#/$defs/NAME" → the compiled def (compiled once, shared). */
static snode_t *c_ref(cctx_t *c, const char *ref, int depth)
{
    schema_t *s = c->s;
    if (strncmp(ref, "#/$defs/", 8) != 0) return c_fail(c, "unsupported $ref '%s'", ref), NULL;
    const char *name = ref + 8;
    for (size_t i = 0; i < s->ndefs; i++)
        if (strcmp(s->defnames[i], name) == 0) return s->defnodes[i];
    const json_t *def = json_object_get(json_object_get(c->doc, "$defs"), name);
    if (!def) return c_fail(c, "$ref '%s' not found", ref), NULL;
    char **names = realloc(s->defnames, (s->ndefs + 1) * sizeof *names);
    if (names) s->defnames = names;
    snode_t **nodes = realloc(s->defnodes, (s->ndefs + 1) * sizeof *nodes);
    if (nodes) s->defnodes = nodes;
    if (!names || !nodes) return c_fail(c, "out of memory"), NULL;
    snode_t *n = c_node(c, def, depth + 1);
    if (!n) return NULL;
    s->defnames[s->ndefs] = strdup(name);
    s->defnodes[s->ndefs++] = n;
    return n;
}

static snode_t *c_node(cctx_t *c, const json_t *j, int depth)
{
    const json_t *ref = json_object_get(j, "$ref"), *t = json_object_get(j, "type");
    const json_t *en = json_object_get(j, "enum"), *items = json_object_get(j, "items");
    if (!json_is_object(j)) return c_fail(c, "a schema must be an object"), NULL;
    if (depth > SCHEMA_MAX_DEPTH) return c_fail(c, "schema nested too deep"), NULL;
    if (c_known_keywords(c, j) < 0) return NULL;
    if (ref) return json_is_string(ref) ? c_ref(c, json_string_value(ref), depth) : NULL;
    snode_t *n = c_alloc(c);
    if (!n) return c_fail(c, "out of memory"), NULL;
    if ((t && c_type(c, n, t) < 0) || (en && c_enum(c, n, en) < 0) || c_bounds(c, n, j) < 0 ||
        c_props(c, n, j, depth) < 0 || (items && !(n->items = c_node(c, items, depth + 1))))
        return NULL;
    return n;
}

schema_t *schema_compile(const json_t *doc, char *err, size_t errlen)
{
    schema_t *s = calloc(1, sizeof *s);
    cctx_t c = {s, doc, err, errlen};
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->root = c_node(&c, doc, 0);
    if (!s->root) {
        schema_free(s);
        return NULL;
    }
    return s;
}

void schema_free(schema_t *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->nall; i++) {
        snode_t *n = s->all[i];
        for (size_t k = 0; k < n->nprops; k++) free(n->props[k].name);
        free(n->props);
        free(n->req);
        free(n->enum_str);
        json_decref(n->enumv);
        free(n);
    }
    for (size_t i = 0; i < s->ndefs; i++) free(s->defnames[i]);
    free(s->defnames);
    free(s->defnodes);
    free(s->all);
    free(s);
}

const char *const *schema_required(const schema_t *s, size_t *n)
{
    *n = s->root->nreq;
    return s->root->req;
}

/* ---------- validating ---------- */

typedef struct vpath {
    const struct vpath *up;
    const char *key; /* member name, or NULL for an array index */
    size_t index;
} vpath_t;

typedef struct { char *err; size_t errlen; } vctx_t;

static int v_node(vctx_t *c, const snode_t *n, const json_t *x, const vpath_t *p, int depth);

/* "data.model_votes.m.confidence" or "data.probs[3]", built only on error. */
static void v_where(const vpath_t *p, char *out, size_t len)
{
    const vpath_t *chain[SCHEMA_MAX_DEPTH + 2];
    int n = 0;
    size_t o = (size_t)snprintf(out, len, "data");
    for (; p && n < SCHEMA_MAX_DEPTH + 2; p = p->up) chain[n++] = p;
    while (n-- > 0 && o < len) {
        if (chain[n]->key) o += (size_t)snprintf(out + o, len - o, ".%.64s", chain[n]->key);
        else o += (size_t)snprintf(out + o, len - o, "[%zu]", chain[n]->index);
    }
}

static int v_fail(vctx_t *c, const vpath_t *p, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int v_fail(vctx_t *c, const vpath_t *p, const char *fmt, ...)
{
    char msg[256], where[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    v_where(p, where, sizeof where);
    snprintf(c->err, c->errlen, "%s: %s", where, msg);
    return -1;
}

static unsigned v_kind(const json_t *x)
{
    switch (json_typeof(x)) {
    case JSON_OBJECT: return T_OBJECT;
    case JSON_ARRAY: return T_ARRAY;
    case JSON_STRING: return T_STRING;
    case JSON_INTEGER: return T_INTEGER;
    case JSON_REAL: return T_REAL;
    case JSON_TRUE:
    case JSON_FALSE: return T_BOOL;
    default: return T_NULL;
    }
}

static const char *v_kindname(unsigned k)
{
    switch (k) {
    case T_OBJECT: return "object";
    case T_ARRAY: return "array";
    case T_STRING: return "string";
    case T_INTEGER: return "integer";
    case T_REAL: return "number";
    case T_BOOL: return "boolean";
    default: return "null";
    }
}

/* The expected type, worded for an error. */
static const char *v_expected(unsigned types)
{
    if (types == (T_INTEGER | T_REAL)) return "number";
    for (unsigned k = 1; k <= T_NULL; k <<= 1)
        if (types == k) return v_kindname(k);
    return "one of the allowed types";
}

static int v_enum(vctx_t *c, const snode_t *n, const json_t *x, const vpath_t *p)
{
    if (n->enum_str) {
        const char *v = json_string_value(x);
        for (size_t i = 0; v && i < n->n_enum_str; i++)
            if (strcmp(v, n->enum_str[i]) == 0) return 0;
    } else {
        size_t i;
        json_t *e;
        json_array_foreach(n->enumv, i, e) if (json_equal(e, x)) return 0;
    }
    if (json_is_string(x)) return v_fail(c, p, "'%.64s' is not one of the allowed values", json_string_value(x));
    return v_fail(c, p, "value is not one of the allowed values");
}

static int v_number(vctx_t *c, const snode_t *n, const json_t *x, const vpath_t *p)
{
    double d = json_number_value(x);
    if (!isfinite(d)) return v_fail(c, p, "number is not finite");
    if (n->has_min && d < n->min) return v_fail(c, p, "%g is below the minimum %g", d, n->min);
    if (n->has_max && d > n->max) return v_fail(c, p, "%g is above the maximum %g", d, n->max);
    if (n->has_xmin && d <= n->xmin) return v_fail(c, p, "%g must be greater than %g", d, n->xmin);
    if (n->has_xmax && d >= n->xmax) return v_fail(c, p, "%g must be less than %g", d, n->xmax);
    return 0;
}

static int v_symbol_ok(const char *s, size_t len)
{
    if (len < 2 || len > 20) return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9'))) return 0;
    return 1;
}

static int v_string(vctx_t *c, const snode_t *n, const json_t *x, const vpath_t *p)
{
    size_t len = json_string_length(x);
    if (n->min_len >= 0 && len < (size_t)n->min_len) return v_fail(c, p, "shorter than %ld bytes", n->min_len);
    if (n->max_len >= 0 && len > (size_t)n->max_len)
        return v_fail(c, p, "longer than %ld bytes (%zu)", n->max_len, len);
    if (n->fmt_symbol && !v_symbol_ok(json_string_value(x), len))
        return v_fail(c, p, "'%.32s' is not a symbol (2-20 of A-Z, 0-9)", json_string_value(x));
    return 0;
}

static int v_array(vctx_t *c, const snode_t *n, const json_t *x, const vpath_t *p, int depth)
{
    size_t len = json_array_size(x), i;
    json_t *e;
    if (n->min_items >= 0 && len < (size_t)n->min_items) return v_fail(c, p, "fewer than %ld items", n->min_items);
    if (n->max_items >= 0 && len > (size_t)n->max_items) return v_fail(c, p, "more than %ld items", n->max_items);
    if (!n->items) return 0;
    json_array_foreach(x, i, e) {
        vpath_t sub = {p, NULL, i};
        if (v_node(c, n->items, e, &sub, depth + 1) < 0) return -1;
    }
    return 0;
}

/* Name a missing required field (the slow path, only on error). */
static int v_missing(vctx_t *c, const snode_t *n, const json_t *x, const vpath_t *p)
{
    for (size_t i = 0; i < n->nreq; i++)
        if (!json_object_get(x, n->req[i])) return v_fail(c, p, "missing required field '%s'", n->req[i]);
    return v_fail(c, p, "missing a required field");
}

static int v_object(vctx_t *c, const snode_t *n, const json_t *x, const vpath_t *p, int depth)
{
    const char *key;
    json_t *e;
    size_t found = 0;
    if (n->max_props >= 0 && json_object_size(x) > (size_t)n->max_props)
        return v_fail(c, p, "more than %ld properties", n->max_props);
    json_object_foreach((json_t *)x, key, e) {
        sprop_t want = {(char *)key, NULL, 0};
        const sprop_t *sp = n->nprops ? bsearch(&want, n->props, n->nprops, sizeof *n->props, c_prop_cmp) : NULL;
        const snode_t *sub_node = sp ? sp->node : n->addl;
        vpath_t sub = {p, key, 0};
        if (!sp && n->addl_false) return v_fail(c, p, "unknown field '%.64s'", key);
        found += sp && sp->required;
        if (sub_node && v_node(c, sub_node, e, &sub, depth + 1) < 0) return -1;
    }
    return found < n->nreq ? v_missing(c, n, x, p) : 0;
}

static int v_node(vctx_t *c, const snode_t *n, const json_t *x, const vpath_t *p, int depth)
{
    unsigned k = v_kind(x);
    if (depth > SCHEMA_MAX_DEPTH) return v_fail(c, p, "nested deeper than %d levels", SCHEMA_MAX_DEPTH);
    if (n->types && !(n->types & k))
        return v_fail(c, p, "expected %s, got %s", v_expected(n->types), v_kindname(k));
    if (n->enumv && v_enum(c, n, x, p) < 0) return -1;
    switch (k) {
    case T_INTEGER:
    case T_REAL: return v_number(c, n, x, p);
    case T_STRING: return v_string(c, n, x, p);
    case T_ARRAY: return v_array(c, n, x, p, depth);
    case T_OBJECT: return v_object(c, n, x, p, depth);
    default: return 0;
    }
}

int schema_validate(const schema_t *s, const json_t *x, char *err, size_t errlen)
{
    vctx_t c = {err, errlen};
    if (!x) {
        snprintf(err, errlen, "data: missing");
        return -1;
    }
    return v_node(&c, s->root, x, NULL, 0);
}
