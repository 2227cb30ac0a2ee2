/* httpd.h — the HTTP server every service embeds, on libevent's evhttp.
 *
 * Built in: GET /health (liveness), GET /ready (readiness checks, 503 when
 * one fails), GET /metrics (Prometheus text), GET /api/v1/status (service
 * JSON). Services add routes to a table. Every reply an httpd route makes is
 * JSON; errors are {"error": "..."} with a 4xx/5xx status.
 *
 * Routes flagged HTTPD_AUTH mutate state: they need
 * "Authorization: Bearer <QT_API_TOKEN>" (compared in constant time), answer
 * 401 without it, and 403 when the service has no token configured.
 * A GET whose Origin is listed in QT_CORS_ORIGINS (comma-separated, default
 * the dashboard's http://127.0.0.1:8081 and http://localhost:8081) gets
 * Access-Control-Allow-Origin, so the dashboard page can read every
 * service's status; nothing else is readable cross-origin.
 *
 * Threads: connections are served by a thread of the server's own, and every
 * route handler runs on the service's event loop (the main thread), so
 * handlers see the service's state as before and need no locks. A loop held
 * up by a blocking call (an exchange request, a training epoch) still gets
 * an answer within QT_HTTP_BUSY_MS (500): /health 200 "busy" with how long
 * the loop has been held (503 "stalled" past QT_HEALTH_STALL_MS, 300000),
 * /ready 503 (check "loop": "busy: ..."), another GET the last 200 reply
 * of the same URI (header X-QT-Stale-Ms; never a reply of an HTTPD_AUTH
 * route) or 503, and a write 503 with nothing done (Retry-After: 1).
 * The loop must be created after httpd_threads_init(). */
#ifndef QT_HTTPD_H
#define QT_HTTPD_H

#include "metrics.h"

#include <event2/event.h>
#include <jansson.h>

typedef struct httpd httpd_t;
struct evhttp_request;
struct evkeyvalq;

struct httpd_job;

typedef struct httpd_req {
    struct httpd_job *job;   /* the request as the server thread handed it over (internal) */
    const char *method;      /* "GET", "PUT", ... */
    const char *path;        /* decoded, without the query */
    const char *rest;        /* HTTPD_PREFIX routes: what follows the prefix */
    struct evkeyvalq *query; /* parsed query parameters */
    const json_t *body;      /* parsed JSON body, NULL when empty; borrowed */
} httpd_req_t;

/* Return the HTTP status and set *out to the reply (stolen; NULL gives a
 * default body), or return 0 after replying with httpd_reply_text(), or
 * HTTPD_LATER after taking httpd_later(req) to answer once an asynchronous
 * call came back (the request's fields die when the handler returns: copy
 * what the answer needs). */
typedef int (*httpd_fn)(void *ud, httpd_req_t *req, json_t **out);
#define HTTPD_LATER (-2)
typedef struct httpd_job httpd_later_t;
/* Inside a handler: the request, to answer later. */
httpd_later_t *httpd_later(httpd_req_t *req);
/* Answer a request taken with httpd_later() (on the loop), exactly once:
 * status and out (stolen, NULL gives a default body) as a handler returns them. */
void httpd_answer(httpd_later_t *later, int status, json_t *out);
/* Readiness check: 1 if ready; otherwise 0 with the reason in why.
 * HTTPD_READY_NOTE: ready, with a note in why that /ready shows (what an
 * operator should know that does not make the service unready). */
#define HTTPD_READY_NOTE 2
typedef int (*httpd_ready_fn)(void *ud, char *why, size_t whylen);
/* Status object for /api/v1/status (new reference). */
typedef json_t *(*httpd_status_fn)(void *ud);

#define HTTPD_AUTH 1
#define HTTPD_PREFIX 2
#define HTTPD_MAX_BODY 65536

/* Make libevent thread-aware (once, before any event base is created);
 * -1 if it cannot be (then httpd_new fails). */
int httpd_threads_init(void);

/* What the server is told (svc fills it from qt_config_t). Strings are copied. */
typedef struct httpd_config {
    const char *service;
    const char *bind;  /* address to listen on */
    int port;          /* 0 picks a free one, see httpd_port */
    const char *token; /* "" or NULL: mutating routes off */
    long busy_ms;      /* the server thread answers alone when the loop has not taken a request by then */
    long stall_ms;     /* /health says "stalled" once the loop is held this long */
    const char *cors;  /* comma-separated origins whose browsers may read GET replies */
    long max_conns;    /* connections held at once (0: 1024); at most the open-files limit minus a reserve */
    long idle_ms;      /* a connection silent this long is closed (0: 10000) */
} httpd_config_t;

/* Bind and serve on a thread of its own; handlers run on base's loop.
 * metrics is borrowed (may be NULL). */
httpd_t *httpd_new(struct event_base *base, const httpd_config_t *c, metrics_t *metrics, char *err, size_t errlen);
void httpd_free(httpd_t *h);
int httpd_port(const httpd_t *h);

int httpd_route(httpd_t *h, const char *method, const char *path, int flags, httpd_fn fn, void *ud);
int httpd_add_ready(httpd_t *h, const char *name, httpd_ready_fn fn, void *ud);
/* A top-level field of every /health and /api/v1/status body from now on
 * (value stolen; NULL sets null): what every client of the service must see,
 * e.g. "config_reset". Loop thread only. */
void httpd_set_notice(httpd_t *h, const char *name, json_t *value);
void httpd_set_status(httpd_t *h, httpd_status_fn fn, void *ud);

/* {"error": "<formatted>"} — a new reference for a handler's *out. */
json_t *httpd_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Reply with any body (e.g. text/html); returns 0 for a handler to return. */
int httpd_reply_text(httpd_req_t *req, int status, const char *content_type, const char *body, size_t len);
/* Query parameter, or NULL. */
const char *httpd_query(const httpd_req_t *req, const char *name);
/* Integer query parameter in [min,max], def when absent; -1 if malformed. */
int httpd_query_long(const httpd_req_t *req, const char *name, long def, long min, long max, long *out);

#endif
