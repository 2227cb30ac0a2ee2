/* bus-worker — a consumer process for the bus integration tests.
 *
 * Consumes WORKER_STREAM (default "market") in group WORKER_GROUP (default
 * "worker") and, for every event, publishes a copy to stream "echo" whose id
 * is derived from the input id, so duplicates are visible as repeated ids.
 * WORKER_FAIL_SYMBOL: events of that symbol always ask for a retry.
 * WORKER_SLOW_US: sleep that long in every handler call (to be killed mid-batch).
 * WORKER_TYPES: comma-separated event types the handler takes (bus_subscribe_types).
 * POST /api/v1/worker/pause {"reason": "..."} and POST /api/v1/worker/resume
 * (bearer token) pause and resume consumption.
 * Everything else (REDIS_URL, QT_*) as for any service. */
#include "svc.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    svc_t svc;
    const char *fail_symbol;
    long slow_us;
} worker_t;

static bus_result_t worker_handle(void *ud, const bus_msg_t *m, char *err, size_t errlen)
{
    worker_t *w = ud;
    const char *sym = json_string_value(json_object_get(m->ev->data, "symbol"));
    if (w->slow_us > 0) usleep((useconds_t)w->slow_us);
    if (w->fail_symbol && sym && strcmp(sym, w->fail_symbol) == 0) {
        snprintf(err, errlen, "configured to fail on %s", sym);
        return BUS_RETRY;
    }
    char name[128], id[37];
    event_t out;
    snprintf(name, sizeof name, "echo:%s", m->ev->id);
    event_derive_id(name, id);
    if (event_make(&out, m->ev->type, json_incref(m->ev->data), m->ev->trace, id, err, errlen) < 0)
        return BUS_DEAD;
    int rc = bus_publish(w->svc.bus, "echo", &out, err, errlen);
    event_clear(&out);
    return rc < 0 ? BUS_RETRY : BUS_OK;
}

/* POST /api/v1/worker/pause {"reason": "..."} */
static int worker_pause(void *ud, httpd_req_t *req, json_t **out)
{
    worker_t *w = ud;
    const json_t *r = json_object_get(req->body, "reason");
    if (!json_is_object(req->body) || !json_is_string(r) || json_string_length(r) == 0 ||
        json_string_length(r) > 120) {
        *out = httpd_error("body must be {\"reason\": \"<1 to 120 bytes>\"}");
        return 400;
    }
    bus_pause(w->svc.bus, json_string_value(r));
    *out = json_pack("{s:b}", "paused", 1);
    return 200;
}

/* POST /api/v1/worker/resume */
static int worker_resume(void *ud, httpd_req_t *req, json_t **out)
{
    worker_t *w = ud;
    (void)req;
    bus_resume(w->svc.bus);
    *out = json_pack("{s:b}", "paused", 0);
    return 200;
}

/* GET /api/v1/worker/state: readable with the token only (HTTPD_AUTH) */
static int worker_state(void *ud, httpd_req_t *req, json_t **out)
{
    const worker_t *w = ud;
    (void)req;
    *out = json_pack("{s:I}", "slow_us", (json_int_t)w->slow_us);
    return 200;
}

int main(void)
{
    static worker_t w;
    char err[512];
    const char *group = getenv("WORKER_GROUP"), *stream = getenv("WORKER_STREAM");
    if (svc_init(&w.svc, group ? group : "worker", 0, err, sizeof err) < 0) {
        fprintf(stderr, "bus-worker: %s\n", err);
        return 2;
    }
    w.fail_symbol = getenv("WORKER_FAIL_SYMBOL");
    w.slow_us = getenv("WORKER_SLOW_US") ? atol(getenv("WORKER_SLOW_US")) : 0;
    static char typebuf[512];
    static const char *types[16];
    const char *tl = getenv("WORKER_TYPES");
    if (tl) { /* "a,b,c" -> {"a", "b", "c", NULL} */
        int n = 0;
        snprintf(typebuf, sizeof typebuf, "%s", tl);
        for (char *save = NULL, *t = strtok_r(typebuf, ",", &save); t && n < 15; t = strtok_r(NULL, ",", &save)) types[n++] = t;
        types[n] = NULL;
    }
    if ((tl ? bus_subscribe_types(w.svc.bus, stream ? stream : "market", types, worker_handle, &w)
            : bus_subscribe(w.svc.bus, stream ? stream : "market", worker_handle, &w)) < 0) {
        fprintf(stderr, "bus-worker: cannot subscribe\n");
        return 2;
    }
    httpd_route(w.svc.http, "POST", "/api/v1/worker/pause", HTTPD_AUTH, worker_pause, &w);
    httpd_route(w.svc.http, "POST", "/api/v1/worker/resume", HTTPD_AUTH, worker_resume, &w);
    httpd_route(w.svc.http, "GET", "/api/v1/worker/state", HTTPD_AUTH, worker_state, &w);
    int rc = svc_run(&w.svc);
    svc_free(&w.svc);
    svc_free_base(&w.svc);
    return rc;
}
