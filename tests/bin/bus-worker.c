/* bus-worker — a consumer process for the bus integration tests.
 *
 * Consumes WORKER_STREAM (default "market") in group WORKER_GROUP (default
 * "worker") and, for every event, publishes a copy to stream "echo" whose id
 * is derived from the input id, so duplicates are visible as repeated ids.
 * WORKER_FAIL_SYMBOL: events of that symbol always ask for a retry.
 * WORKER_SLOW_US: sleep that long in every handler call (to be killed mid-batch).
 * WORKER_TYPES: comma-separated event types the handler takes (bus_subscribe_types).
 * WORKER_DEFER_SYMBOL, WORKER_DEFER_MS: events of that symbol are deferred
 * (bus_defer) and finished that much later on a timer, echo included, while
 * the loop goes on with other entries.
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
    const char *fail_symbol, *defer_symbol;
    long slow_us, defer_ms;
} worker_t;

/* Publish the echo of ev. */
static bus_result_t worker_echo(worker_t *w, const event_t *ev, char *err, size_t errlen)
{
    char name[128], id[37];
    event_t out;
    snprintf(name, sizeof name, "echo:%s", ev->id);
    event_derive_id(name, id);
    if (event_make(&out, ev->type, json_incref(ev->data), ev->trace, id, err, errlen) < 0) return BUS_DEAD;
    int rc = bus_publish(w->svc.bus, "echo", &out, err, errlen);
    event_clear(&out);
    return rc < 0 ? BUS_RETRY : BUS_OK;
}

typedef struct {
    worker_t *w;
    bus_pending_t *token;
    event_t ev; /* id, type, trace and a reference to the data */
    struct event *timer;
} worker_later_t;

static void worker_later_cb(evutil_socket_t fd, short what, void *arg)
{
    worker_later_t *l = arg;
    char err[256] = "";
    (void)fd, (void)what;
    bus_result_t r = worker_echo(l->w, &l->ev, err, sizeof err);
    bus_finish(l->w->svc.bus, l->token, r, err);
    event_free(l->timer);
    event_clear(&l->ev);
    free(l);
}

static bus_result_t worker_defer(worker_t *w, const event_t *ev, char *err, size_t errlen)
{
    worker_later_t *l = calloc(1, sizeof *l);
    struct timeval tv = {w->defer_ms / 1000, (w->defer_ms % 1000) * 1000};
    if (!l || !(l->token = bus_defer(w->svc.bus)) || !(l->timer = evtimer_new(w->svc.base, worker_later_cb, l))) {
        snprintf(err, errlen, "out of memory");
        if (l && l->token) bus_finish(w->svc.bus, l->token, BUS_RETRY, err);
        free(l);
        return l ? BUS_LATER : BUS_RETRY;
    }
    l->w = w;
    l->ev = *ev;
    l->ev.data = json_incref(ev->data);
    evtimer_add(l->timer, &tv);
    return BUS_LATER;
}

static bus_result_t worker_handle(void *ud, const bus_msg_t *m, char *err, size_t errlen)
{
    worker_t *w = ud;
    const char *sym = json_string_value(json_object_get(m->ev->data, "symbol"));
    if (w->slow_us > 0) usleep((useconds_t)w->slow_us);
    if (w->fail_symbol && sym && strcmp(sym, w->fail_symbol) == 0) {
        snprintf(err, errlen, "configured to fail on %s", sym);
        return BUS_RETRY;
    }
    if (w->defer_symbol && sym && strcmp(sym, w->defer_symbol) == 0) return worker_defer(w, m->ev, err, errlen);
    return worker_echo(w, m->ev, err, errlen);
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
    w.defer_symbol = getenv("WORKER_DEFER_SYMBOL");
    w.defer_ms = getenv("WORKER_DEFER_MS") ? atol(getenv("WORKER_DEFER_MS")) : 1000;
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
