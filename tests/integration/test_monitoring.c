/* Integration test: the shipped monitoring (deploy/prometheus,
 * deploy/grafana) against the five real services on a real redis-server.
 * A real Prometheus (Debian's prometheus) started on loopback scrapes them
 * with the shipped alert rules: every target is up, qt_ready says each is
 * ready, every rule evaluates without error and none fires on a healthy
 * stack, and every expression of the Grafana dashboard and of the rules is
 * valid PromQL naming metrics that the services' /metrics export.
 * Without prometheus the test says so and fails only when
 * QT_REQUIRE_TEST_TOOLS=1 (CI; deploy/install-deps.sh --test-tools). */
#include "check.h"
#include "stack.h"

#include <ctype.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static th_redis_t R;
static redisContext *rc;
static char dir[256], why[1024], body[1 << 20];
static qt_stack_t S;
static const char *const names[STACK_NSVC] = {"trading-engine", "ml-threshold", "rl-decision", "trade-executor",
                                              "policy-store"};

static int have_prometheus(void) { return system("command -v prometheus >/dev/null 2>&1") == 0; }

/* s percent-encoded for a query string into out. */
static void urlencode(const char *s, char *out, size_t len)
{
    size_t n = 0;
    for (; *s && n + 4 < len; s++) {
        if (isalnum((unsigned char)*s) || strchr("-_.~", *s)) out[n++] = *s;
        else n += (size_t)snprintf(out + n, len - n, "%%%02X", (unsigned char)*s);
    }
    out[n] = 0;
}

/* GET path of Prometheus's API as JSON (a new reference), NULL unless 2xx.
 * Through curl: Prometheus answers long bodies chunked. */
static json_t *prom_get(int port, const char *path)
{
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "curl -sf --max-time 5 'http://127.0.0.1:%d%s'", port, path);
    FILE *p = popen(cmd, "r");
    size_t n = p ? fread(body, 1, sizeof body - 1, p) : 0;
    body[n] = 0;
    if (!p || pclose(p) != 0) return NULL;
    return json_loads(body, 0, NULL);
}

static json_t *prom_query(int port, const char *expr)
{
    char q[4096], path[4200];
    urlencode(expr, q, sizeof q);
    snprintf(path, sizeof path, "/api/v1/query?query=%s", q);
    return prom_get(port, path);
}

/* Every qt_* metric name the five services export (their /metrics) into names_out. */
static void exported(char *out, size_t len)
{
    out[0] = 0;
    for (int i = 0; i < STACK_NSVC; i++) {
        CHECK_EQ(th_http(S.port[i], "GET", "/metrics", NULL, NULL, body, sizeof body), 200);
        for (char *line = strtok(body, "\n"); line; line = strtok(NULL, "\n")) {
            char name[128];
            if (sscanf(line, "# TYPE %127s", name) == 1 && strlen(out) + strlen(name) + 3 < len)
                strcat(out, " "), strcat(out, name), strcat(out, " ");
        }
    }
}

/* Each qt_* name in text is exported (a histogram's _bucket/_sum/_count by its own name). */
static void names_exist(const char *what, const char *text, const char *have)
{
    for (const char *p = text; (p = strstr(p, "qt_"));) {
        char name[128], key[140];
        size_t n = 0;
        while (n < sizeof name - 1 && (isalnum((unsigned char)p[n]) || p[n] == '_')) name[n] = p[n], n++;
        name[n] = 0;
        p += n;
        for (const char *suf = "_bucket"; suf; suf = NULL) {
            size_t l = strlen(suf);
            if (n > l && !strcmp(name + n - l, suf)) name[n - l] = 0;
        }
        snprintf(key, sizeof key, " %s ", name);
        if (!strstr(have, key)) CHECK_FAIL_AT("%s names %s, which no service exports", what, name);
    }
}

TEST(prometheus_scrapes_the_stack_with_the_shipped_rules_and_the_dashboard_queries_exist)
{
    char csv[300], feed[400], cfg[PATH_MAX], rules[PATH_MAX], tsdb[300], arg[4][PATH_MAX + 40], log[300];
    if (!have_prometheus()) {
        printf("# prometheus is not installed (sh deploy/install-deps.sh --test-tools); nothing was scraped\n");
        CHECK(getenv("QT_REQUIRE_TEST_TOOLS") == NULL || strcmp(getenv("QT_REQUIRE_TEST_TOOLS"), "1") != 0);
        return;
    }
    snprintf(csv, sizeof csv, "%s/BTCUSDT-1m-2024-04.csv", dir);
    stack_write_csv(csv, 150, 0.0004, 0);
    snprintf(feed, sizeof feed, "replay:%s", csv);
    if (stack_start(&S, &R, rc, dir, "qt", feed, "0", "SHADOW", "0.6", 1, why, sizeof why) < 0) CHECK_FAIL_AT("%s", why);
    CHECK_EQ(stack_settle(&S, 150, 60000), 0);

    /* the shipped rules, the shipped scrape job with the stack's ports */
    CHECK(realpath("deploy/prometheus/alerts.yml", rules) != NULL);
    snprintf(cfg, sizeof cfg, "%s/prometheus.yml", dir);
    FILE *f = fopen(cfg, "w");
    fprintf(f, "global: {scrape_interval: 1s, evaluation_interval: 1s}\nrule_files: [\"%s\"]\n"
               "scrape_configs:\n  - job_name: quantum-trader\n    static_configs:\n", rules);
    for (int i = 0; i < STACK_NSVC; i++)
        fprintf(f, "      - targets: [\"127.0.0.1:%d\"]\n        labels: {service: %s}\n", S.port[i], names[i]);
    fclose(f);
    int port = th_free_port();
    snprintf(tsdb, sizeof tsdb, "%s/prometheus-data", dir);
    snprintf(arg[0], sizeof arg[0], "--config.file=%s", cfg);
    snprintf(arg[1], sizeof arg[1], "--storage.tsdb.path=%s", tsdb);
    snprintf(arg[2], sizeof arg[2], "--web.listen-address=127.0.0.1:%d", port);
    snprintf(log, sizeof log, "%s/prometheus.log", dir);
    const char *argv[] = {"prometheus", arg[0], arg[1], arg[2], NULL};
    pid_t prom = th_spawn("/usr/bin/prometheus", argv, NULL, log);
    CHECK(prom > 0);

    int up = 0;
    for (long long end = th_now_ms() + 30000; th_now_ms() < end && up < STACK_NSVC; th_sleep_ms(250)) {
        json_t *t = prom_get(port, "/api/v1/targets"), *v;
        size_t i;
        up = 0;
        json_array_foreach(json_object_get(json_object_get(t, "data"), "activeTargets"), i, v)
            up += !strcmp(json_string_value(json_object_get(v, "health")) ? json_string_value(json_object_get(v, "health")) : "", "up");
        json_decref(t);
    }
    CHECK_EQ(up, STACK_NSVC); /* every service scraped */

    json_t *q = NULL;
    size_t ready = 0;
    for (long long end = th_now_ms() + 10000; th_now_ms() < end && ready < STACK_NSVC; th_sleep_ms(250)) {
        json_decref(q);
        q = prom_query(port, "qt_ready == 1");
        ready = json_array_size(json_object_get(json_object_get(q, "data"), "result"));
    }
    json_decref(q);
    CHECK_EQ(ready, STACK_NSVC); /* each says it is ready */

    /* every rule evaluated, without error; none firing on this healthy stack */
    int evaluated = 0, total = 0;
    for (long long end = th_now_ms() + 15000; th_now_ms() < end && (!total || evaluated < total); th_sleep_ms(500)) {
        json_t *r = prom_get(port, "/api/v1/rules"), *g, *rule;
        size_t gi, ri;
        evaluated = total = 0;
        json_array_foreach(json_object_get(json_object_get(r, "data"), "groups"), gi, g)
            json_array_foreach(json_object_get(g, "rules"), ri, rule) {
                const char *h = json_string_value(json_object_get(rule, "health"));
                total++;
                evaluated += h && !strcmp(h, "ok");
                if (h && !strcmp(h, "err"))
                    CHECK_FAIL_AT("rule %s: %s", json_string_value(json_object_get(rule, "name")),
                                  json_string_value(json_object_get(rule, "lastError")));
            }
        json_decref(r);
    }
    CHECK_EQ(total, 7);
    CHECK_EQ(evaluated, total);
    json_t *al = prom_get(port, "/api/v1/alerts"), *a;
    size_t ai;
    json_array_foreach(json_object_get(json_object_get(al, "data"), "alerts"), ai, a)
        if (!strcmp(json_string_value(json_object_get(a, "state")), "firing") &&
            strcmp(json_string_value(json_object_get(json_object_get(a, "labels"), "alertname")), "QtNoBars") != 0)
            CHECK_FAIL_AT("alert %s fires on a healthy stack", json_string_value(json_object_get(json_object_get(a, "labels"), "alertname")));
    json_decref(al); /* (QtNoBars may: the replay ended and its 10 minutes are shorter than the window here) */

    /* the dashboard's and the rules' expressions: valid PromQL, on exported metrics */
    static char have[1 << 16];
    exported(have, sizeof have);
    char *dash = th_slurp("deploy/grafana/dashboards/quantum-trader.json", NULL), *alerts = th_slurp("deploy/prometheus/alerts.yml", NULL);
    CHECK(dash && alerts);
    names_exist("the Grafana dashboard", dash, have);
    names_exist("alerts.yml", alerts, have);
    json_t *dj = json_loads(dash, 0, NULL), *p, *t;
    size_t pi, ti;
    int queried = 0;
    json_array_foreach(json_object_get(dj, "panels"), pi, p) json_array_foreach(json_object_get(p, "targets"), ti, t) {
        const char *expr = json_string_value(json_object_get(t, "expr"));
        json_t *r = prom_query(port, expr);
        if (!r || strcmp(json_string_value(json_object_get(r, "status")), "success") != 0)
            CHECK_FAIL_AT("panel '%s': Prometheus refuses %s: %.300s", json_string_value(json_object_get(p, "title")), expr, body);
        queried++;
        json_decref(r);
    }
    CHECK(queried >= 10);
    q = prom_query(port, "qt_engine_daily_dd_limit_pct"); /* the drawdown alert's limit is there to compare with */
    CHECK_EQ(json_array_size(json_object_get(json_object_get(q, "data"), "result")), 1);
    json_decref(q);
    json_decref(dj);
    free(dash), free(alerts);
    CHECK_EQ(th_stop(prom, 10000), 0);
    CHECK_EQ(stack_stop(&S), 0);
}

int main(int argc, char **argv);

__attribute__((constructor)) static void setup(void)
{
    th_watchdog(240);
    th_tempdir(dir, sizeof dir);
    if (th_redis_start(&R, 0) < 0 || !(rc = th_redis_connect(&R))) exit(2);
}

CHECK_MAIN()
