/* metrics.c — in-process metric registry and Prometheus text rendering. */
#include "metrics.h"
#include "numfmt.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM } metric_kind_t;

struct metric {
    metric_kind_t kind;
    char *name, *help, *labels;
    double value;          /* counter/gauge value; histogram sum */
    unsigned long count;   /* histogram samples */
    double *bounds;
    unsigned long *buckets; /* per bound, non-cumulative; [nbounds] is +Inf */
    size_t nbounds;
};

struct metrics {
    metric_t **items;
    size_t n, cap;
};

static const double metrics_default_bounds[] = {
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

metrics_t *metrics_new(void) { return calloc(1, sizeof(metrics_t)); }

static void metric_free(metric_t *x)
{
    if (!x) return;
    free(x->name);
    free(x->help);
    free(x->labels);
    free(x->bounds);
    free(x->buckets);
    free(x);
}

void metrics_free(metrics_t *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->n; i++) metric_free(m->items[i]);
    free(m->items);
    free(m);
}

static int metrics_same_labels(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

/* Look up (name, labels); *conflict is set when the name exists with another kind. */
static metric_t *metrics_find(const metrics_t *m, const char *name, const char *labels,
                              metric_kind_t kind, int *conflict)
{
    *conflict = 0;
    for (size_t i = 0; i < m->n; i++) {
        metric_t *x = m->items[i];
        if (strcmp(x->name, name) != 0) continue;
        if (x->kind != kind) {
            *conflict = 1;
            return NULL;
        }
        if (metrics_same_labels(x->labels, labels)) return x;
    }
    return NULL;
}

static metric_t *metrics_add(metrics_t *m, metric_kind_t kind, const char *name,
                             const char *help, const char *labels)
{
    int conflict;
    if (!m) return NULL;
    metric_t *x = metrics_find(m, name, labels, kind, &conflict);
    if (x || conflict) return x;
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 32;
        metric_t **items = realloc(m->items, cap * sizeof *items);
        if (!items) return NULL;
        m->items = items;
        m->cap = cap;
    }
    x = calloc(1, sizeof *x);
    if (!x) return NULL;
    x->kind = kind;
    x->name = strdup(name);
    x->help = strdup(help ? help : "");
    x->labels = strdup(labels ? labels : "");
    if (!x->name || !x->help || !x->labels) {
        metric_free(x);
        return NULL;
    }
    m->items[m->n++] = x;
    return x;
}

metric_t *metrics_counter(metrics_t *m, const char *name, const char *help, const char *labels)
{
    return metrics_add(m, METRIC_COUNTER, name, help, labels);
}

metric_t *metrics_gauge(metrics_t *m, const char *name, const char *help, const char *labels)
{
    return metrics_add(m, METRIC_GAUGE, name, help, labels);
}

metric_t *metrics_histogram(metrics_t *m, const char *name, const char *help,
                            const char *labels, const double *bounds, size_t nbounds)
{
    metric_t *x = metrics_add(m, METRIC_HISTOGRAM, name, help, labels);
    if (!x || x->buckets) return x;
    if (!bounds) {
        bounds = metrics_default_bounds;
        nbounds = sizeof metrics_default_bounds / sizeof metrics_default_bounds[0];
    }
    x->bounds = malloc(nbounds * sizeof *x->bounds);
    x->buckets = calloc(nbounds + 1, sizeof *x->buckets);
    if (!x->bounds || !x->buckets) {
        free(x->bounds);
        free(x->buckets);
        x->bounds = NULL;
        x->buckets = NULL;
        return NULL; /* stays registered but inert; observe() ignores it */
    }
    memcpy(x->bounds, bounds, nbounds * sizeof *bounds);
    x->nbounds = nbounds;
    return x;
}

void metric_inc(metric_t *c) { metric_add(c, 1.0); }

void metric_add(metric_t *c, double v)
{
    if (c && c->kind != METRIC_HISTOGRAM) c->value += v;
}

void metric_set(metric_t *g, double v)
{
    if (g && g->kind == METRIC_GAUGE) g->value = v;
}

void metric_observe(metric_t *h, double v)
{
    if (!h || h->kind != METRIC_HISTOGRAM || !h->buckets) return;
    size_t i = 0;
    while (i < h->nbounds && v > h->bounds[i]) i++;
    h->buckets[i]++;
    h->count++;
    h->value += v;
}

double metric_value(const metric_t *c) { return c ? c->value : 0.0; }
unsigned long metric_count(const metric_t *h) { return h ? h->count : 0; }

double metric_quantile(const metric_t *h, double q)
{
    if (!h || !h->buckets || h->count == 0) return 0.0;
    unsigned long want = (unsigned long)ceil(q * (double)h->count), seen = 0;
    if (want == 0) want = 1;
    for (size_t i = 0; i < h->nbounds; i++) {
        seen += h->buckets[i];
        if (seen >= want) return h->bounds[i];
    }
    return h->nbounds ? h->bounds[h->nbounds - 1] : 0.0;
}

/* A growable string buffer for rendering. */
typedef struct { char *s; size_t len, cap; int oom; } metrics_buf_t;

static void mbuf_printf(metrics_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mbuf_printf(metrics_buf_t *b, const char *fmt, ...)
{
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) { b->oom = 1; return; }
        if ((size_t)n < b->cap - b->len) { b->len += (size_t)n; return; }
        size_t cap = (b->cap + (size_t)n + 1) * 2;
        char *s = realloc(b->s, cap);
        if (!s) { b->oom = 1; return; }
        b->s = s;
        b->cap = cap;
    }
}

/* Prometheus number formatting: +Inf/-Inf/NaN spelled out. */
static void mbuf_num(metrics_buf_t *b, double v)
{
    if (isnan(v)) mbuf_printf(b, "NaN");
    else if (isinf(v)) mbuf_printf(b, v > 0 ? "+Inf" : "-Inf");
    else {
        char t[40];
        numfmt_shortest(t, sizeof t, v);
        mbuf_printf(b, "%s", t);
    }
}

/* name{labels[,extra]} */
static void mbuf_series(metrics_buf_t *b, const char *name, const char *suffix,
                        const char *labels, const char *extra)
{
    int has = labels && *labels, hasx = extra && *extra;
    mbuf_printf(b, "%s%s", name, suffix);
    if (has || hasx)
        mbuf_printf(b, "{%s%s%s}", has ? labels : "", has && hasx ? "," : "", hasx ? extra : "");
    mbuf_printf(b, " ");
}

static void metrics_render_one(metrics_buf_t *b, const metric_t *x)
{
    if (x->kind != METRIC_HISTOGRAM) {
        mbuf_series(b, x->name, "", x->labels, NULL);
        mbuf_num(b, x->value);
        mbuf_printf(b, "\n");
        return;
    }
    unsigned long cum = 0;
    char le[64];
    for (size_t i = 0; i <= x->nbounds && x->buckets; i++) {
        cum += x->buckets[i];
        char num[40];
        if (i < x->nbounds) numfmt_shortest(num, sizeof num, x->bounds[i]), snprintf(le, sizeof le, "le=\"%s\"", num);
        else snprintf(le, sizeof le, "le=\"+Inf\"");
        mbuf_series(b, x->name, "_bucket", x->labels, le);
        mbuf_printf(b, "%lu\n", cum);
    }
    mbuf_series(b, x->name, "_sum", x->labels, NULL);
    mbuf_num(b, x->value);
    mbuf_printf(b, "\n");
    mbuf_series(b, x->name, "_count", x->labels, NULL);
    mbuf_printf(b, "%lu\n", x->count);
}

char *metrics_render(const metrics_t *m)
{
    static const char *const kinds[] = {"counter", "gauge", "histogram"};
    metrics_buf_t b = {0};
    mbuf_printf(&b, "%s", "");
    for (size_t i = 0; m && i < m->n; i++) {
        const metric_t *x = m->items[i];
        int first = 1;
        for (size_t j = 0; j < i && first; j++)
            if (strcmp(m->items[j]->name, x->name) == 0) first = 0;
        if (!first) continue; /* family already rendered */
        mbuf_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", x->name, x->help, x->name, kinds[x->kind]);
        for (size_t j = i; j < m->n; j++)
            if (strcmp(m->items[j]->name, x->name) == 0) metrics_render_one(&b, m->items[j]);
    }
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}
