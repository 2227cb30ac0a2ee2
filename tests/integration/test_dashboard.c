/* Integration test: the dashboard the trading-engine serves at "/", rendered
 * by headless Chromium (Debian's chromium) against the five real services on
 * a real redis-server after a replay in PRIMARY: the page loads with no
 * console message and no failed request, and what it shows matches the
 * APIs. The screenshot is kept in $QT_BUILD/test-artifacts/dashboard.png.
 * Without chromium the test says so and fails only when
 * QT_REQUIRE_TEST_TOOLS=1 (CI; deploy/install-test-deps.sh installs it). */
#include "check.h"
#include "harness.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define AUTH "Authorization: Bearer dash-token\r\n"

static th_redis_t R;
static char dir[256], out[65536], dom[262144];
static int port[5]; /* engine, ml-threshold, rl-decision, executor, policy-store */
static pid_t pids[5];

static int have_chromium(void)
{
    return system("command -v chromium >/dev/null 2>&1") == 0;
}

static void write_csv(const char *path, int n)
{
    FILE *f = fopen(path, "w");
    double p = 100;
    for (int i = 0; i < n; i++) {
        double c = p * (1 + 0.004 * sin(i * 0.21) + 0.0004);
        long long t = 1711929600000LL + i * 60000LL;
        fprintf(f, "%lld,%.4f,%.4f,%.4f,%.4f,3,%lld,0,0,0,0,0\n", t, p, fmax(p, c) * 1.001, fmin(p, c) * 0.999, c, t + 59999);
        p = c;
    }
    fclose(f);
}

static void start_all(const char *csv)
{
    static const char *bins[5] = {"bin/trading-engine", "bin/ml-threshold", "bin/rl-decision", "bin/trade-executor", "bin/policy-store"};
    static char env[12][400];
    char bin[256];
    int dummy;
    for (int i = 0; i < 5; i++) {
        port[i] = th_free_port();
        for (int k = 0; k < i; k++)
            if (port[k] == port[i]) i--; /* taken twice: draw again */
    }
    snprintf(env[0], sizeof env[0], "QT_CORS_ORIGINS=http://127.0.0.1:%d", port[0]);
    snprintf(env[1], sizeof env[1], "QT_ML_THRESHOLD_URL=http://127.0.0.1:%d", port[1]);
    snprintf(env[2], sizeof env[2], "QT_RL_DECISION_URL=http://127.0.0.1:%d", port[2]);
    snprintf(env[3], sizeof env[3], "QT_TRADE_EXECUTOR_URL=http://127.0.0.1:%d", port[3]);
    snprintf(env[4], sizeof env[4], "QT_POLICY_STORE_URL=http://127.0.0.1:%d", port[4]);
    snprintf(env[5], sizeof env[5], "QT_API_TOKEN=dash-token");
    snprintf(env[6], sizeof env[6], "QT_FEED=replay:%s", csv);
    for (int i = 4; i >= 0; i--) { /* policy-store first: the engine reads the mode from it */
        char p[40], tag[32];
        snprintf(p, sizeof p, "QT_HTTP_PORT=%d", port[i]);
        const char *e[] = {env[0], env[1], env[2], env[3], env[4], env[5], i == 0 ? env[6] : "QT_VENUE=paper", p, NULL};
        snprintf(tag, sizeof tag, "dash-%d", i);
        pids[i] = th_service(th_bin(bins[i], bin, sizeof bin), &R, "qt", e, dir, tag, &dummy, 0);
        CHECK_EQ(th_wait_http(port[i], "/ready", 200, 20000), 0);
        if (i == 4) { /* PRIMARY, and a low bar so the replay surely trades */
            CHECK_EQ(th_http(port[4], "PUT", "/api/v1/policy/config/rl_v3.live.mode", AUTH, "{\"value\":\"PRIMARY\"}", out, sizeof out), 200);
            CHECK_EQ(th_http(port[4], "PUT", "/api/v1/policy/config/rl_v3.live.min_confidence", AUTH, "{\"value\":0.2}", out, sizeof out), 200);
        }
    }
}

/* Run chromium on the page: the DOM after its scripts ran into dom, the
 * console lines it logged into console (count returned), a screenshot. */
static int render(char *console, size_t clen)
{
    char cmd[8192], dom_path[300], err_path[300], shot[PATH_MAX + 32], rel[300], art[PATH_MAX];
    const char *b = getenv("QT_BUILD");
    snprintf(rel, sizeof rel, "%s/test-artifacts", b && *b ? b : "build");
    mkdir(rel, 0755);
    if (!realpath(rel, art)) snprintf(art, sizeof art, "%s", rel);
    snprintf(dom_path, sizeof dom_path, "%s/dom.html", dir);
    snprintf(err_path, sizeof err_path, "%s/chromium.log", dir);
    snprintf(shot, sizeof shot, "%s/dashboard.png", art);
    const char *flags = "--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage --enable-logging=stderr --v=0 "
                        "--virtual-time-budget=7000 --window-size=1400,1600";
    snprintf(cmd, sizeof cmd, "cd %s && timeout 90 chromium %s --dump-dom http://127.0.0.1:%d/ >%s 2>%s && "
             "timeout 90 chromium %s --screenshot=%s http://127.0.0.1:%d/ >/dev/null 2>>%s",
             dir, flags, port[0], dom_path, err_path, flags, shot, port[0], err_path);
    CHECK_EQ(system(cmd), 0);
    FILE *f = fopen(dom_path, "r");
    size_t n = f ? fread(dom, 1, sizeof dom - 1, f) : 0;
    if (f) fclose(f);
    dom[n] = 0;
    int lines = 0;
    char line[2048];
    console[0] = 0;
    f = fopen(err_path, "r");
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, ":CONSOLE") || strstr(line, "Uncaught")) lines++, strncat(console, line, clen - strlen(console) - 1);
    if (f) fclose(f);
    struct stat st;
    CHECK(stat(shot, &st) == 0 && st.st_size > 10000); /* the artifact */
    return lines;
}

/* The text of the element with id="id" in dom (first child text). */
static const char *dom_text(const char *id, char *buf, size_t len)
{
    char needle[96];
    snprintf(needle, sizeof needle, "id=\"%s\">", id);
    const char *p = strstr(dom, needle);
    buf[0] = 0;
    if (!p) return buf;
    p += strlen(needle);
    size_t n = strcspn(p, "<");
    snprintf(buf, len, "%.*s", (int)(n < len ? n : len - 1), p);
    return buf;
}

static json_t *api(int p, const char *path)
{
    CHECK_EQ(th_http(p, "GET", path, NULL, NULL, out, sizeof out), 200);
    return json_loads(out, 0, NULL);
}

TEST(the_dashboard_renders_what_the_apis_say)
{
    char csv[300], console[8192], buf[128], want[128];
    if (!have_chromium()) {
        printf("# chromium is not installed (sh deploy/install-test-deps.sh); the dashboard was not rendered\n");
        CHECK(getenv("QT_REQUIRE_TEST_TOOLS") == NULL || strcmp(getenv("QT_REQUIRE_TEST_TOOLS"), "1") != 0);
        return;
    }
    snprintf(csv, sizeof csv, "%s/BTCUSDT-1m-2024-04.csv", dir);
    write_csv(csv, 240);
    start_all(csv);
    int done = 0; /* the replay is over and every bar decided */
    for (long long end = th_now_ms() + 60000; th_now_ms() < end && !done; th_sleep_ms(200)) {
        json_t *d = api(port[0], "/api/v1/decisions?limit=1");
        done = json_integer_value(json_object_get(d, "total")) >= 240 - 70; /* HYBRID/PRIMARY need the RL signal: after warm-up */
        json_decref(d);
    }
    th_sleep_ms(1500); /* executions and feedback settle */
    int nconsole = render(console, sizeof console);
    if (nconsole) printf("# console:\n%s", console);
    CHECK_EQ(nconsole, 0);
    CHECK_CONTAINS(dom, "<div id=\"errors\"></div>"); /* no failed request, CORS included */
    CHECK(strstr(dom, "data-refreshed=\"") != NULL);
    json_t *live = api(port[0], "/api/v1/rl-v3/dashboard/live-status");
    CHECK_STR(dom_text("mode", buf, sizeof buf), "PRIMARY");
    CHECK_STR(dom_text("min-confidence", buf, sizeof buf), "0.2");
    snprintf(want, sizeof want, "%lld", (long long)json_integer_value(json_object_get(live, "trade_intents_total")));
    CHECK_STR(dom_text("trade-intents-total", buf, sizeof buf), want);
    CHECK(json_integer_value(json_object_get(live, "trade_intents_total")) > 0); /* PRIMARY traded */
    json_decref(live);
    json_t *pos = api(port[0], "/api/v1/positions");
    snprintf(want, sizeof want, "%.2f", json_number_value(json_object_get(pos, "equity")));
    CHECK_STR(dom_text("equity", buf, sizeof buf), want);
    snprintf(want, sizeof want, "%.2f", json_number_value(json_object_get(pos, "realized_pnl")));
    CHECK_STR(dom_text("realized-pnl", buf, sizeof buf), want);
    json_decref(pos);
    json_t *w = api(port[1], "/api/v1/reinforcement/weights"), *v;
    const char *name;
    json_object_foreach(json_object_get(w, "weights"), name, v)
    {
        char row[160];
        snprintf(row, sizeof row, "data-member=\"%s\" data-weight=\"", name);
        const char *p = strstr(dom, row);
        CHECK(p != NULL);
        if (p) CHECK_NEAR(atof(p + strlen(row)), json_number_value(v), 1e-9);
    }
    json_decref(w);
    for (int i = 0; i < 5; i++) { /* every service shown ready */
        static const char *names[] = {"trading-engine", "ml-threshold", "rl-decision", "trade-executor", "policy-store"};
        char row[160];
        snprintf(row, sizeof row, "<tr data-service=\"%s\"><td>%s</td><td class=\"ok\">ok</td><td class=\"ok\">ready</td>", names[i], names[i]);
        CHECK_CONTAINS(dom, row);
    }
    CHECK(strstr(dom, "data-points=\"") != NULL); /* the equity curve was drawn */
    for (int i = 0; i < 5; i++) CHECK_EQ(th_stop(pids[i], 15000), 0);
}

int main(int argc, char **argv);

__attribute__((constructor)) static void setup(void)
{
    th_watchdog(240);
    th_tempdir(dir, sizeof dir);
    if (th_redis_start(&R, 0) < 0) exit(2);
}

CHECK_MAIN()
