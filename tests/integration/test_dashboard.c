/* Integration test: the dashboard the trading-engine serves at "/", rendered
 * by headless Chromium (Debian's chromium) against the five real services on
 * a real redis-server after a replay in PRIMARY: the page loads with no
 * console message and no failed request, and what it shows matches the
 * APIs. The screenshot is kept in $QT_BUILD/test-artifacts/dashboard.png.
 * Without chromium the test says so and fails only when
 * QT_REQUIRE_TEST_TOOLS=1 (CI; deploy/install-deps.sh --test-tools installs it). */
#include "check.h"
#include "stack.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static th_redis_t R;
static redisContext *rc;
static char dir[256], dom[262144];
static qt_stack_t S; /* port[ENGINE], port[ML], ... */
static char why[1024];

static int have_chromium(void)
{
    return system("command -v chromium >/dev/null 2>&1") == 0;
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
             dir, flags, S.port[ENGINE], dom_path, err_path, flags, shot, S.port[ENGINE], err_path);
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


TEST(the_dashboard_renders_what_the_apis_say)
{
    char csv[300], feed[400], console[8192], buf[128], want[128];
    if (!have_chromium()) {
        printf("# chromium is not installed (sh deploy/install-deps.sh --test-tools); the dashboard was not rendered\n");
        CHECK(getenv("QT_REQUIRE_TEST_TOOLS") == NULL || strcmp(getenv("QT_REQUIRE_TEST_TOOLS"), "1") != 0);
        return;
    }
    snprintf(csv, sizeof csv, "%s/BTCUSDT-1m-2024-04.csv", dir);
    stack_write_csv(csv, 240, 0.0004, 0);
    snprintf(feed, sizeof feed, "replay:%s", csv);
    /* PRIMARY, and a low bar so the replay surely trades */
    if (stack_start(&S, &R, rc, dir, "qt", feed, "0", "PRIMARY", "0.2", 1, why, sizeof why) < 0) CHECK_FAIL_AT("%s", why);
    CHECK_EQ(stack_settle(&S, 240, 60000), 0); /* the replay is over, everything handled */
    th_sleep_ms(1500); /* executions and feedback settle */
    int nconsole = render(console, sizeof console);
    if (nconsole) printf("# console:\n%s", console);
    CHECK_EQ(nconsole, 0);
    CHECK_CONTAINS(dom, "<div id=\"errors\"></div>"); /* no failed request, CORS included */
    CHECK(strstr(dom, "data-refreshed=\"") != NULL);
    json_t *live = stack_api(S.port[ENGINE], "/api/v1/rl-v3/dashboard/live-status");
    CHECK_STR(dom_text("mode", buf, sizeof buf), "PRIMARY");
    CHECK_STR(dom_text("min-confidence", buf, sizeof buf), "0.2");
    snprintf(want, sizeof want, "%lld", (long long)json_integer_value(json_object_get(live, "trade_intents_total")));
    CHECK_STR(dom_text("trade-intents-total", buf, sizeof buf), want);
    CHECK(json_integer_value(json_object_get(live, "trade_intents_total")) > 0); /* PRIMARY traded */
    json_decref(live);
    json_t *pos = stack_api(S.port[ENGINE], "/api/v1/positions");
    snprintf(want, sizeof want, "%.2f", json_number_value(json_object_get(pos, "equity")));
    CHECK_STR(dom_text("equity", buf, sizeof buf), want);
    snprintf(want, sizeof want, "%.2f", json_number_value(json_object_get(pos, "realized_pnl")));
    CHECK_STR(dom_text("realized-pnl", buf, sizeof buf), want);
    json_decref(pos);
    json_t *w = stack_api(S.port[ML], "/api/v1/reinforcement/weights"), *v;
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
