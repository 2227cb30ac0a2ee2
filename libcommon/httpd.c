/* httpd.c — route table, JSON replies, auth guard and built-in endpoints. */
#include "httpd.h"
#include "config.h"
#include "clock.h"
#include "log.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

#define HTTPD_MAX_ROUTES 64
#define HTTPD_MAX_READY 16

typedef struct httpd_route_entry {
    char method[8];
    char path[128];
    int flags;
    httpd_fn fn;
    void *ud;
} httpd_route_entry_t;

typedef struct { char name[32]; httpd_ready_fn fn; void *ud; } httpd_ready_t;

struct httpd {
    struct evhttp *http;
    struct evhttp_bound_socket *sock;
    char service[64];
    char token[256];
    char cors[1024]; /* origins allowed to read GET replies from a browser */
    int port;
    int64_t started_ms;
    metrics_t *metrics;
    metric_t *m_latency;
    httpd_route_entry_t routes[HTTPD_MAX_ROUTES];
    int nroutes;
    httpd_ready_t ready[HTTPD_MAX_READY];
    int nready;
    httpd_status_fn status_fn;
    void *status_ud;
};

json_t *httpd_error(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return json_pack("{s:s}", "error", msg);
}

static const char *httpd_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 503: return "Service Unavailable";
    default: return status < 500 ? "Client Error" : "Server Error";
    }
}

static void httpd_count(httpd_t *h, int status)
{
    char l[32];
    snprintf(l, sizeof l, "code=\"%d\"", status);
    metric_inc(metrics_counter(h->metrics, "qt_http_requests_total", "HTTP requests by status", l));
}

int httpd_reply_text(httpd_req_t *req, int status, const char *content_type, const char *body, size_t len)
{
    struct evbuffer *buf = evbuffer_new();
    if (!buf) {
        evhttp_send_error(req->raw, 500, "out of memory");
        return 0;
    }
    evbuffer_add(buf, body, len);
    struct evkeyvalq *hdr = evhttp_request_get_output_headers(req->raw);
    evhttp_add_header(hdr, "Content-Type", content_type);
    evhttp_add_header(hdr, "Cache-Control", "no-store");
    evhttp_send_reply(req->raw, status, httpd_reason(status), buf);
    evbuffer_free(buf);
    return 0;
}

/* Send o (stolen) as JSON with status; a NULL o gets a default body. */
static void httpd_reply_json(httpd_req_t *req, int status, json_t *o)
{
    if (!o) o = status >= 400 ? httpd_error("%s", httpd_reason(status)) : json_object();
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(o);
    if (!s) {
        httpd_reply_text(req, 500, "application/json", "{\"error\":\"out of memory\"}\n", 26);
        return;
    }
    size_t n = strlen(s);
    char *line = realloc(s, n + 2);
    if (line) {
        line[n] = '\n';
        line[n + 1] = '\0';
        s = line;
        n++;
    }
    httpd_reply_text(req, status, "application/json", s, n);
    free(s);
}

const char *httpd_query(const httpd_req_t *req, const char *name)
{
    return req->query ? evhttp_find_header(req->query, name) : NULL;
}

int httpd_query_long(const httpd_req_t *req, const char *name, long def, long min, long max, long *out)
{
    const char *v = httpd_query(req, name);
    if (!v) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < min || n > max) return -1;
    *out = n;
    return 0;
}

/* Constant-time comparison (length still leaks, the content does not). */
static int httpd_ct_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char d = alen != blen;
    size_t n = alen > blen ? alen : blen;
    for (size_t i = 0; i < n; i++)
        d |= (unsigned char)((i < alen ? a[i] : 0) ^ (i < blen ? b[i] : 0));
    return d == 0;
}

/* 0 when allowed; otherwise the status to answer and *out set. */
static int httpd_check_auth(httpd_t *h, httpd_req_t *req, json_t **out)
{
    if (!h->token[0]) {
        *out = httpd_error("mutating endpoints are disabled: set QT_API_TOKEN to enable them");
        return 403;
    }
    const char *a = evhttp_find_header(evhttp_request_get_input_headers(req->raw), "Authorization");
    if (a && strncmp(a, "Bearer ", 7) == 0 &&
        httpd_ct_equal(a + 7, strlen(a + 7), h->token, strlen(h->token)))
        return 0;
    evhttp_add_header(evhttp_request_get_output_headers(req->raw), "WWW-Authenticate", "Bearer");
    *out = httpd_error(a ? "invalid bearer token" : "missing Authorization: Bearer token");
    return 401;
}

/* Parse a JSON body if there is one. 0, or a status with *out set. */
static int httpd_read_body(httpd_req_t *req, json_t **body, json_t **out)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req->raw);
    size_t n = evbuffer_get_length(in);
    json_error_t je;
    *body = NULL;
    if (n == 0) return 0;
    if (n > HTTPD_MAX_BODY) {
        *out = httpd_error("body of %zu bytes is over the limit of %d", n, HTTPD_MAX_BODY);
        return 413;
    }
    const char *p = (const char *)evbuffer_pullup(in, -1);
    *body = json_loadb(p, n, JSON_REJECT_DUPLICATES, &je);
    if (!*body) {
        *out = httpd_error("body is not JSON: %s (line %d, column %d)", je.text, je.line, je.column);
        return 400;
    }
    return 0;
}

static const char *httpd_method(struct evhttp_request *r)
{
    switch (evhttp_request_get_command(r)) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PATCH: return "PATCH";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    default: return "OTHER";
    }
}

static int httpd_path_matches(const httpd_route_entry_t *rt, const char *path)
{
    if (rt->flags & HTTPD_PREFIX) return strncmp(path, rt->path, strlen(rt->path)) == 0;
    return strcmp(path, rt->path) == 0;
}

/* Find the route; *path_known tells 404 from 405. HEAD matches GET. */
static httpd_route_entry_t *httpd_find(httpd_t *h, const char *method, const char *path, int *path_known)
{
    *path_known = 0;
    if (strcmp(method, "HEAD") == 0) method = "GET";
    for (int pass = 0; pass < 2; pass++) /* exact routes win over prefixes */
        for (int i = 0; i < h->nroutes; i++) {
            httpd_route_entry_t *rt = &h->routes[i];
            if (((rt->flags & HTTPD_PREFIX) != 0) != pass || !httpd_path_matches(rt, path)) continue;
            *path_known = 1;
            if (strcmp(rt->method, method) == 0) return rt;
        }
    return NULL;
}

static int httpd_run(httpd_t *h, httpd_req_t *req, json_t **out)
{
    int known, st;
    httpd_route_entry_t *rt = httpd_find(h, req->method, req->path, &known);
    json_t *body = NULL;
    if (!rt) {
        *out = known ? httpd_error("method %s not allowed on %s", req->method, req->path)
                     : httpd_error("no such endpoint: %s", req->path);
        return known ? 405 : 404;
    }
    if ((rt->flags & HTTPD_AUTH) && (st = httpd_check_auth(h, req, out)) != 0) return st;
    if ((st = httpd_read_body(req, &body, out)) != 0) return st;
    req->body = body;
    req->rest = (rt->flags & HTTPD_PREFIX) ? req->path + strlen(rt->path) : "";
    st = rt->fn(rt->ud, req, out);
    req->body = NULL;
    json_decref(body);
    return st;
}

/* A GET from an allowed browser origin (the dashboard's) may be read by it. */
static void httpd_cors(const httpd_t *h, httpd_req_t *req)
{
    const char *o = evhttp_find_header(evhttp_request_get_input_headers(req->raw), "Origin");
    size_t n = o ? strlen(o) : 0;
    if (!n || strcmp(req->method, "GET") != 0) return;
    for (const char *p = h->cors; *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] == ',')) {
        if (strcspn(p, ",") != n || strncmp(p, o, n) != 0) continue;
        evhttp_add_header(evhttp_request_get_output_headers(req->raw), "Access-Control-Allow-Origin", o);
        evhttp_add_header(evhttp_request_get_output_headers(req->raw), "Vary", "Origin");
        return;
    }
}

static void httpd_dispatch(struct evhttp_request *r, void *arg)
{
    httpd_t *h = arg;
    int64_t t0 = clock_mono_us();
    struct evkeyvalq query = {0};
    json_t *out = NULL;
    char *path = NULL;
    httpd_req_t req = {r, httpd_method(r), NULL, "", NULL, NULL};
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(r);
    const char *raw = uri ? evhttp_uri_get_path(uri) : NULL;
    size_t plen = 0;
    int status;
    path = raw ? evhttp_uridecode(raw, 0, &plen) : NULL;
    httpd_cors(h, &req);
    if (!path || plen != strlen(path)) {
        out = httpd_error("malformed request path");
        status = 400;
    } else if (uri && evhttp_uri_get_query(uri) && evhttp_parse_query_str(evhttp_uri_get_query(uri), &query) < 0) {
        out = httpd_error("malformed query string");
        status = 400;
    } else {
        req.path = path;
        req.query = &query;
        status = httpd_run(h, &req, &out);
    }
    if (status) httpd_reply_json(&req, status, out);
    httpd_count(h, status ? status : 200);
    metric_observe(h->m_latency, (double)(clock_mono_us() - t0) / 1e6);
    evhttp_clear_headers(&query);
    free(path);
}

static int httpd_health(void *ud, httpd_req_t *req, json_t **out)
{
    (void)req;
    httpd_t *h = ud;
    *out = json_pack("{s:s, s:s, s:I}", "status", "ok", "service", h->service,
                     "uptime_s", (json_int_t)((clock_mono_ms() - h->started_ms) / 1000));
    return 200;
}

static int httpd_ready(void *ud, httpd_req_t *req, json_t **out)
{
    (void)req;
    httpd_t *h = ud;
    json_t *checks = json_object();
    int all = 1;
    for (int i = 0; i < h->nready; i++) {
        char why[512] = "";
        int ok = h->ready[i].fn(h->ready[i].ud, why, sizeof why);
        all &= ok != 0;
        json_object_set_new(checks, h->ready[i].name,
                            ok ? json_pack("{s:b}", "ok", 1) : json_pack("{s:b, s:s}", "ok", 0, "reason", why));
    }
    *out = json_pack("{s:b, s:s, s:o}", "ready", all, "service", h->service, "checks", checks);
    return all ? 200 : 503;
}

static int httpd_metrics(void *ud, httpd_req_t *req, json_t **out)
{
    httpd_t *h = ud;
    char *text = metrics_render(h->metrics);
    if (!text) {
        *out = httpd_error("out of memory rendering metrics");
        return 500;
    }
    httpd_reply_text(req, 200, "text/plain; version=0.0.4", text, strlen(text));
    free(text);
    return 0;
}

static int httpd_status(void *ud, httpd_req_t *req, json_t **out)
{
    (void)req;
    httpd_t *h = ud;
    json_t *o = h->status_fn ? h->status_fn(h->status_ud) : NULL;
    if (!o) o = json_object();
    json_object_set_new(o, "service", json_string(h->service));
    json_object_set_new(o, "uptime_s", json_integer((clock_mono_ms() - h->started_ms) / 1000));
    *out = o;
    return 200;
}

/* The port actually bound (useful with port 0). */
static int httpd_bound_port(struct evhttp_bound_socket *s)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(evhttp_bound_socket_get_fd(s), (struct sockaddr *)&ss, &len) < 0) return -1;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

httpd_t *httpd_new(struct event_base *base, const char *service, const char *bind, int port,
                   const char *token, metrics_t *metrics, char *err, size_t errlen)
{
    httpd_t *h = calloc(1, sizeof *h);
    if (!h || !(h->http = evhttp_new(base))) {
        snprintf(err, errlen, "out of memory");
        free(h);
        return NULL;
    }
    snprintf(h->service, sizeof h->service, "%s", service);
    snprintf(h->token, sizeof h->token, "%s", token ? token : "");
    const char *cors;
    config_get_str("QT_CORS_ORIGINS", "http://127.0.0.1:8081,http://localhost:8081", &cors);
    snprintf(h->cors, sizeof h->cors, "%s", cors);
    h->metrics = metrics;
    h->started_ms = clock_mono_ms();
    h->m_latency = metrics_histogram(metrics, "qt_http_request_seconds", "HTTP request latency", NULL, NULL, 0);
    evhttp_set_max_body_size(h->http, 4 * HTTPD_MAX_BODY);
    evhttp_set_max_headers_size(h->http, 16384);
    evhttp_set_timeout(h->http, 30);
    evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_HEAD | EVHTTP_REQ_PATCH | EVHTTP_REQ_OPTIONS);
    evhttp_set_gencb(h->http, httpd_dispatch, h);
    h->sock = evhttp_bind_socket_with_handle(h->http, bind, (ev_uint16_t)port);
    if (!h->sock) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s (QT_HTTP_BIND/QT_HTTP_PORT)", bind, port, strerror(errno));
        httpd_free(h);
        return NULL;
    }
    h->port = httpd_bound_port(h->sock);
    httpd_route(h, "GET", "/health", 0, httpd_health, h);
    httpd_route(h, "GET", "/ready", 0, httpd_ready, h);
    httpd_route(h, "GET", "/metrics", 0, httpd_metrics, h);
    httpd_route(h, "GET", "/api/v1/status", 0, httpd_status, h);
    return h;
}

void httpd_free(httpd_t *h)
{
    if (!h) return;
    if (h->http) evhttp_free(h->http);
    free(h);
}

int httpd_port(const httpd_t *h) { return h->port; }

int httpd_route(httpd_t *h, const char *method, const char *path, int flags, httpd_fn fn, void *ud)
{
    if (h->nroutes == HTTPD_MAX_ROUTES || strlen(method) >= 8 || strlen(path) >= 128) return -1;
    httpd_route_entry_t *rt = &h->routes[h->nroutes++];
    snprintf(rt->method, sizeof rt->method, "%s", method);
    snprintf(rt->path, sizeof rt->path, "%s", path);
    rt->flags = flags;
    rt->fn = fn;
    rt->ud = ud;
    return 0;
}

int httpd_add_ready(httpd_t *h, const char *name, httpd_ready_fn fn, void *ud)
{
    if (h->nready == HTTPD_MAX_READY) return -1;
    httpd_ready_t *r = &h->ready[h->nready++];
    snprintf(r->name, sizeof r->name, "%s", name);
    r->fn = fn;
    r->ud = ud;
    return 0;
}

void httpd_set_status(httpd_t *h, httpd_status_fn fn, void *ud)
{
    h->status_fn = fn;
    h->status_ud = ud;
}
