/* metrics.h — counters, gauges and histograms rendered as Prometheus text.
 *
 * A metric is identified by (name, labels); labels is the literal label text
 * without braces, e.g. `stream="qt:market",group="ml-threshold"`, or NULL.
 * metrics_counter() and friends find or create; the registry owns every metric
 * and frees them in metrics_free(). Handles stay valid until then.
 * Single-threaded, like the rest of the process. */
#ifndef QT_METRICS_H
#define QT_METRICS_H

#include <stddef.h>

typedef struct metrics metrics_t;
typedef struct metric metric_t;

metrics_t *metrics_new(void);
void metrics_free(metrics_t *m);

/* Find or create. Returns NULL on allocation failure or when the same name was
 * registered before with another kind. */
metric_t *metrics_counter(metrics_t *m, const char *name, const char *help, const char *labels);
metric_t *metrics_gauge(metrics_t *m, const char *name, const char *help, const char *labels);
/* bounds: ascending upper bounds (copied); +Inf is implicit. NULL = default
 * latency buckets in seconds (50µs .. 10s). */
metric_t *metrics_histogram(metrics_t *m, const char *name, const char *help,
                            const char *labels, const double *bounds, size_t nbounds);

/* All accept NULL (no-op), so a failed registration never crashes a caller. */
void metric_inc(metric_t *c);
void metric_add(metric_t *c, double v);
void metric_set(metric_t *g, double v);
void metric_observe(metric_t *h, double v);

double metric_value(const metric_t *c);      /* counter/gauge value, histogram sum */
unsigned long metric_count(const metric_t *h); /* histogram sample count */
/* The value at quantile q (0..1) estimated from the buckets (upper bound of
 * the bucket holding it); 0 when empty. */
double metric_quantile(const metric_t *h, double q);

/* Render every metric in the text exposition format 0.0.4. Returns a
 * malloc'd NUL-terminated string the caller frees, or NULL on OOM. */
char *metrics_render(const metrics_t *m);

#endif
