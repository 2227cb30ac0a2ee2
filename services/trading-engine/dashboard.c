/* dashboard.c — the web dashboard the trading-engine serves at "/": one
 * self-contained page (dashboard.html, embedded at build time: no CDN, works
 * offline) that reads the engine's APIs and, from the browser, every other
 * service's /health, /ready and status (allowed by QT_CORS_ORIGINS), and
 * refreshes itself every 2 s. */
#include "dashboard.h"
#include "config.h"

#include <stdio.h>
#include <string.h>

extern const char dashboard_html[]; /* generated from dashboard.html */

static int dash_page(void *ud, httpd_req_t *req, json_t **out)
{
    (void)ud, (void)out;
    return httpd_reply_text(req, 200, "text/html; charset=utf-8", dashboard_html, strlen(dashboard_html));
}

/* Where the browser finds the other services: QT_<SERVICE>_URL, as qtctl. */
static int dash_config(void *ud, httpd_req_t *req, json_t **out)
{
    static const struct { const char *name, *var; int port; } svcs[] = {
        {"ml-threshold", "QT_ML_THRESHOLD_URL", 8082}, {"rl-decision", "QT_RL_DECISION_URL", 8083},
        {"trade-executor", "QT_TRADE_EXECUTOR_URL", 8084}, {"policy-store", "QT_POLICY_STORE_URL", 8085}};
    json_t *s = json_object();
    char def[64];
    (void)ud, (void)req;
    for (size_t i = 0; i < sizeof svcs / sizeof svcs[0]; i++) {
        const char *url;
        snprintf(def, sizeof def, "http://127.0.0.1:%d", svcs[i].port);
        config_get_str(svcs[i].var, def, &url);
        json_object_set_new(s, svcs[i].name, json_string(url));
    }
    *out = json_pack("{s:o, s:i}", "services", s, "refresh_ms", 2000);
    return 200;
}

int dashboard_routes(httpd_t *h)
{
    return httpd_route(h, "GET", "/", 0, dash_page, NULL) < 0 ||
                   httpd_route(h, "GET", "/api/v1/dashboard/config", 0, dash_config, NULL) < 0
               ? -1
               : 0;
}
