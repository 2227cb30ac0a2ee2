/* Unit tests: metrics registry and Prometheus text exposition. */
#include "check.h"
#include "metrics.h"

TEST(counter_gauge_text)
{
    metrics_t *m = metrics_new();
    metric_t *c = metrics_counter(m, "qt_events_total", "Events seen", "stream=\"qt:market\"");
    metric_t *c2 = metrics_counter(m, "qt_events_total", "Events seen", "stream=\"qt:signal\"");
    metric_t *g = metrics_gauge(m, "qt_lag", "Lag", NULL);
    metric_inc(c);
    metric_add(c, 2);
    metric_inc(c2);
    metric_set(g, 7.5);
    CHECK(metrics_counter(m, "qt_events_total", "x", "stream=\"qt:market\"") == c); /* find, not create */
    CHECK(metrics_gauge(m, "qt_events_total", "x", NULL) == NULL);                 /* kind conflict */
    char *t = metrics_render(m);
    CHECK_STR(t, "# HELP qt_events_total Events seen\n# TYPE qt_events_total counter\n"
                 "qt_events_total{stream=\"qt:market\"} 3\nqt_events_total{stream=\"qt:signal\"} 1\n"
                 "# HELP qt_lag Lag\n# TYPE qt_lag gauge\nqt_lag 7.5\n");
    free(t);
    metrics_free(m);
}

TEST(histogram_text_and_quantiles)
{
    metrics_t *m = metrics_new();
    const double b[] = {0.1, 1, 10};
    metric_t *h = metrics_histogram(m, "qt_lat_seconds", "Latency", "svc=\"x\"", b, 3);
    metric_observe(h, 0.05);
    metric_observe(h, 0.5);
    metric_observe(h, 0.5);
    metric_observe(h, 100);
    char *t = metrics_render(m);
    CHECK_STR(t, "# HELP qt_lat_seconds Latency\n# TYPE qt_lat_seconds histogram\n"
                 "qt_lat_seconds_bucket{svc=\"x\",le=\"0.1\"} 1\n" /* it was 0.10000000000000001 */
                 "qt_lat_seconds_bucket{svc=\"x\",le=\"1\"} 3\n"
                 "qt_lat_seconds_bucket{svc=\"x\",le=\"10\"} 3\n"
                 "qt_lat_seconds_bucket{svc=\"x\",le=\"+Inf\"} 4\n"
                 "qt_lat_seconds_sum{svc=\"x\"} 101.05\n"
                 "qt_lat_seconds_count{svc=\"x\"} 4\n");
    CHECK_EQ(metric_count(h), 4);
    CHECK_NEAR(metric_quantile(h, 0.5), 1, 1e-12);
    CHECK_NEAR(metric_quantile(h, 0.25), 0.1, 1e-12);
    free(t);
    metrics_free(m);
}

TEST(null_handles_are_inert)
{
    metric_inc(NULL);
    metric_set(NULL, 1);
    metric_observe(NULL, 1);
    CHECK_NEAR(metric_value(NULL), 0, 0);
    char *t = metrics_render(NULL);
    CHECK_STR(t, "");
    free(t);
}

CHECK_MAIN()
