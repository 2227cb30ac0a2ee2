/* httpd.c — route table, JSON replies, auth guard and built-in endpoints. */
#include "httpd.h"
#include "clock.h"
#include "log.h"
#include "numfmt.h"

#include <errno.h>
#include <fcntl.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <netinet/in.h>

#define HTTPD_MAX_ROUTES 64
#define HTTPD_MAX_READY 16
#define HTTPD_CACHE 16                /* GET replies kept to answer with while the loop is held */
#define HTTPD_CACHE_MAX (1024 * 1024) /* bytes of one kept reply */
#define HTTPD_BEAT_MS 100

/* A request handed from the server thread to the loop. The server thread
 * owns it and is the only one to free it; the loop borrows it from QUEUED to
 * DONE and then activates `back`. A request the loop did not take up in time
 * is CANCELLED and answered by the server thread; when the loop comes to it,
 * it only activates `back`, whose callback frees it. */
enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_CANCELLED };

struct httpd_job {
    struct httpd_job *prev, *next; /* httpd.jobs: every job alive, under mu */
    httpd_t *h;
    struct evhttp_request *raw;    /* server thread only */
    struct event *deadline;        /* server thread only */
    struct event *back;            /* on the server thread's base: the loop is done with the job */
    int state;                     /* under mu */
    int64_t t0_us;
    char method[8];
    char *path, *query;            /* as sent (not decoded); query may be NULL */
    char *auth;                    /* Authorization header, or NULL */
    char *body;
    size_t body_len;
    int status, www_auth;          /* the reply, written by the loop */
    int cacheable;                 /* a route anyone may read (no HTTPD_AUTH): its reply may be kept */
    char content_type[64];
    char *reply;
    size_t reply_len;
};

typedef struct httpd_cached {
    char *uri;
    char content_type[64];
    char *body;
    size_t len;
    int64_t at_ms;
} httpd_cached_t;

typedef struct httpd_route_entry {
    char method[8];
    char path[128];
    int flags;
    httpd_fn fn;
    void *ud;
} httpd_route_entry_t;

typedef struct { char name[32]; httpd_ready_fn fn; void *ud; } httpd_ready_t;
typedef struct httpd_job httpd_job_t;
struct httpd;
static struct httpd *httpd_listener_owner; /* the listener's error callback gets evhttp's argument, not ours */

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
    json_t *notices; /* loop thread only: top-level fields of /health and /api/v1/status (httpd_set_notice) */
    /* threads: the server thread runs sbase (connections, parsing, replies);
     * handlers run on base, the service's loop */
    struct event_base *base, *sbase;
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    httpd_job_t *jobs;
    struct event *beat;
    _Atomic int64_t beat_ms;    /* the loop's last heartbeat (mono ms) */
    _Atomic long busy_answers;  /* answered by the server thread; folded into metrics by the loop */
    _Atomic long accept_errors; /* accept() failures (out of descriptors); folded in by the loop */
    metric_t *m_busy, *m_accept, *m_ready;
    struct event *resume;       /* server thread: accepting again after running out of descriptors */
    int spare_fd;               /* held in reserve: freed to accept and close a connection on EMFILE */
    long accept_unlogged;       /* server thread: failures since the last log line */
    int64_t accept_logged_ms;
    long busy_ms, stall_ms;
    /* server thread: the connections held, each bufferevent with a reference
     * of ours (see httpd_conn_new) */
    struct bufferevent **conns;
    size_t nconns, conns_alloc, max_conns;
    int at_cap;
    int64_t cap_logged_ms;
    struct event *sweep;
    _Atomic long conns_now, cap_pauses; /* for the loop's metrics */
    metric_t *m_conns, *m_cap;
    httpd_cached_t cache[HTTPD_CACHE]; /* server thread only */
    int cache_next;
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
    httpd_job_t *j = req->job;
    char *copy = malloc(len ? len : 1);
    free(j->reply);
    j->reply = copy, j->reply_len = copy ? len : 0;
    if (copy) memcpy(copy, body, len);
    j->status = copy ? status : 500;
    snprintf(j->content_type, sizeof j->content_type, "%s", copy ? content_type : "application/json");
    return 0;
}

/* Send o (stolen) as JSON with status; a NULL o gets a default body. */
static void httpd_reply_json(httpd_req_t *req, int status, json_t *o)
{
    if (!o) o = status >= 400 ? httpd_error("%s", httpd_reason(status)) : json_object();
    char *s = json_dumps(o, numfmt_json_flags(o, JSON_COMPACT)); /* every number exact and short */
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
    const char *a = req->job->auth;
    if (a && strncmp(a, "Bearer ", 7) == 0 &&
        httpd_ct_equal(a + 7, strlen(a + 7), h->token, strlen(h->token)))
        return 0;
    req->job->www_auth = 1;
    *out = httpd_error(a ? "invalid bearer token" : "missing Authorization: Bearer token");
    return 401;
}

/* Parse a JSON body if there is one. 0, or a status with *out set. */
static int httpd_read_body(httpd_req_t *req, json_t **body, json_t **out)
{
    size_t n = req->job->body_len;
    json_error_t je;
    *body = NULL;
    if (n == 0) return 0;
    if (n > HTTPD_MAX_BODY) {
        *out = httpd_error("body of %zu bytes is over the limit of %d", n, HTTPD_MAX_BODY);
        return 413;
    }
    *body = json_loadb(req->job->body, n, JSON_REJECT_DUPLICATES, &je);
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
    req->job->cacheable = !(rt->flags & HTTPD_AUTH); /* a guarded reply is never handed to others later */
    if ((rt->flags & HTTPD_AUTH) && (st = httpd_check_auth(h, req, out)) != 0) return st;
    if ((st = httpd_read_body(req, &body, out)) != 0) return st;
    req->body = body;
    req->rest = (rt->flags & HTTPD_PREFIX) ? req->path + strlen(rt->path) : "";
    st = rt->fn(rt->ud, req, out);
    req->body = NULL;
    json_decref(body);
    return st;
}

/* ---------- the server thread: connections, hand-over, replies ---------- */

/* A GET from an allowed browser origin (the dashboard's) may be read by it. */
static void httpd_cors(const httpd_t *h, struct evhttp_request *r)
{
    const char *o = evhttp_find_header(evhttp_request_get_input_headers(r), "Origin");
    size_t n = o ? strlen(o) : 0;
    if (!n || strcmp(httpd_method(r), "GET") != 0) return;
    for (const char *p = h->cors; *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] == ',')) {
        if (strcspn(p, ",") != n || strncmp(p, o, n) != 0) continue;
        evhttp_add_header(evhttp_request_get_output_headers(r), "Access-Control-Allow-Origin", o);
        evhttp_add_header(evhttp_request_get_output_headers(r), "Vary", "Origin");
        return;
    }
}

static void httpd_send(httpd_t *h, struct evhttp_request *r, int status, const char *content_type, const char *body,
                       size_t len)
{
    struct evbuffer *buf = evbuffer_new();
    if (!buf) {
        evhttp_send_error(r, 500, "out of memory");
        return;
    }
    evbuffer_add(buf, body, len);
    struct evkeyvalq *hdr = evhttp_request_get_output_headers(r);
    httpd_cors(h, r);
    evhttp_add_header(hdr, "Content-Type", content_type);
    evhttp_add_header(hdr, "Cache-Control", "no-store");
    evhttp_send_reply(r, status, httpd_reason(status), buf);
    evbuffer_free(buf);
}

/* o (stolen) as one line of JSON. */
static void httpd_send_json(httpd_t *h, struct evhttp_request *r, int status, json_t *o)
{
    char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!txt) {
        httpd_send(h, r, 500, "application/json", "{\"error\":\"out of memory\"}\n", 26);
        return;
    }
    size_t n = strlen(txt);
    char *line = realloc(txt, n + 2);
    if (line) line[n++] = '\n', line[n] = '\0', txt = line;
    httpd_send(h, r, status, "application/json", txt, n);
    free(txt);
}

static void httpd_job_free(httpd_job_t *j)
{
    if (j->deadline) event_free(j->deadline);
    if (j->back) event_free(j->back);
    free(j->path), free(j->query), free(j->auth), free(j->body), free(j->reply);
    free(j);
}

/* Unlink (under mu) and free. */
static void httpd_job_drop(httpd_job_t *j)
{
    httpd_t *h = j->h;
    if (j->prev) j->prev->next = j->next;
    else h->jobs = j->next;
    if (j->next) j->next->prev = j->prev;
    httpd_job_free(j);
}

static char *httpd_uri(const httpd_job_t *j)
{
    size_t n = strlen(j->path) + (j->query ? strlen(j->query) + 1 : 0) + 1;
    char *u = malloc(n);
    if (u) snprintf(u, n, "%s%s%s", j->path, j->query ? "?" : "", j->query ? j->query : "");
    return u;
}

/* Keep a 200 GET reply to answer with while the loop is held. */
static void httpd_cache_put(httpd_t *h, const httpd_job_t *j)
{
    char *uri = httpd_uri(j);
    if (!uri || j->reply_len > HTTPD_CACHE_MAX) {
        free(uri);
        return;
    }
    int slot = -1;
    for (int i = 0; i < HTTPD_CACHE && slot < 0; i++)
        if (h->cache[i].uri && strcmp(h->cache[i].uri, uri) == 0) slot = i;
    if (slot < 0) slot = h->cache_next, h->cache_next = (h->cache_next + 1) % HTTPD_CACHE;
    httpd_cached_t *c = &h->cache[slot];
    char *body = malloc(j->reply_len ? j->reply_len : 1);
    if (!body) {
        free(uri);
        return;
    }
    memcpy(body, j->reply, j->reply_len);
    free(c->uri), free(c->body);
    c->uri = uri, c->body = body, c->len = j->reply_len, c->at_ms = clock_mono_ms();
    snprintf(c->content_type, sizeof c->content_type, "%s", j->content_type);
}

/* The loop is done with the job (server thread): send its answer, unless
 * the job was answered as busy already; then free it. */
static void httpd_job_back(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    httpd_job_t *j = arg;
    httpd_t *h = j->h;
    pthread_mutex_lock(&h->mu);
    int cancelled = j->state == JOB_CANCELLED;
    if (cancelled) httpd_job_drop(j);
    pthread_mutex_unlock(&h->mu);
    if (cancelled) return;
    if (j->www_auth) evhttp_add_header(evhttp_request_get_output_headers(j->raw), "WWW-Authenticate", "Bearer");
    httpd_send(h, j->raw, j->status, j->content_type, j->reply ? j->reply : "", j->reply_len);
    if (j->status == 200 && j->cacheable && (strcmp(j->method, "GET") == 0 || strcmp(j->method, "HEAD") == 0)) httpd_cache_put(h, j);
    pthread_mutex_lock(&h->mu);
    httpd_job_drop(j);
    pthread_mutex_unlock(&h->mu);
}

/* The loop did not take the request up within QT_HTTP_BUSY_MS: answer it
 * here (server thread), truthfully, and make sure the loop never runs it. */
static void httpd_job_late(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    httpd_job_t *j = arg;
    httpd_t *h = j->h;
    pthread_mutex_lock(&h->mu);
    int cancel = j->state == JOB_QUEUED;
    if (cancel) j->state = JOB_CANCELLED; /* handed back by the loop, then freed here (httpd_job_back) */
    pthread_mutex_unlock(&h->mu);
    if (!cancel) return; /* running or done: its answer is on the way */
    struct evhttp_request *r = j->raw;
    j->raw = NULL;
    atomic_fetch_add(&h->busy_answers, 1);
    long held = (long)(clock_mono_ms() - atomic_load(&h->beat_ms));
    int get = strcmp(j->method, "GET") == 0 || strcmp(j->method, "HEAD") == 0;
    if (get && strcmp(j->path, "/health") == 0) {
        int stalled = held >= h->stall_ms;
        httpd_send_json(h, r, stalled ? 503 : 200,
                               json_pack("{s:s, s:s, s:I, s:I}", "status", stalled ? "stalled" : "busy", "service",
                                         h->service, "uptime_s", (json_int_t)((clock_mono_ms() - h->started_ms) / 1000),
                                         "loop_busy_ms", (json_int_t)held));
        return;
    }
    if (get && strcmp(j->path, "/ready") == 0) { /* the shape of the loop's own answer: one failing check */
        char why[128];
        snprintf(why, sizeof why, "busy: the service loop is held by a blocking call (%ld ms)", held);
        httpd_send_json(h, r, 503, json_pack("{s:b, s:s, s:{s:{s:b, s:s}}, s:I}", "ready", 0, "service",
                                                   h->service, "checks", "loop", "ok", 0, "reason", why, "loop_busy_ms",
                                                   (json_int_t)held));
        return;
    }
    char *uri = get ? httpd_uri(j) : NULL;
    for (int i = 0; uri && i < HTTPD_CACHE; i++) {
        const httpd_cached_t *c = &h->cache[i];
        if (!c->uri || strcmp(c->uri, uri) != 0) continue;
        char age[32];
        snprintf(age, sizeof age, "%lld", (long long)(clock_mono_ms() - c->at_ms));
        evhttp_add_header(evhttp_request_get_output_headers(r), "X-QT-Stale-Ms", age);
        httpd_send(h, r, 200, c->content_type, c->body, c->len);
        free(uri);
        return;
    }
    free(uri);
    evhttp_add_header(evhttp_request_get_output_headers(r), "Retry-After", "1");
    httpd_send_json(h, r, 503, httpd_error("busy: the service loop has been held by a blocking call for %ld ms; %s", held,
                                           get ? "try again" : "nothing was done, try again"));
}

static void httpd_job_run(evutil_socket_t fd, short what, void *arg);

/* A request came in (server thread): copy it and hand it to the loop. */
static void httpd_dispatch(struct evhttp_request *r, void *arg)
{
    httpd_t *h = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(r);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL, *query = uri ? evhttp_uri_get_query(uri) : NULL;
    const char *auth = evhttp_find_header(evhttp_request_get_input_headers(r), "Authorization");
    struct evbuffer *in = evhttp_request_get_input_buffer(r);
    size_t n = evbuffer_get_length(in);
    httpd_job_t *j = calloc(1, sizeof *j);
    if (j) {
        j->h = h, j->raw = r, j->t0_us = clock_mono_us();
        snprintf(j->method, sizeof j->method, "%s", httpd_method(r));
        j->path = strdup(path ? path : "");
        j->query = query ? strdup(query) : NULL;
        j->auth = auth ? strdup(auth) : NULL;
        j->body = malloc(n ? n : 1), j->body_len = n;
        j->deadline = evtimer_new(h->sbase, httpd_job_late, j);
        j->back = event_new(h->sbase, -1, 0, httpd_job_back, j);
    }
    if (!j || !j->path || (query && !j->query) || (auth && !j->auth) || !j->body || !j->deadline || !j->back) {
        if (j) httpd_job_free(j);
        evhttp_send_error(r, 503, "out of memory");
        return;
    }
    if (n) evbuffer_copyout(in, j->body, n);
    pthread_mutex_lock(&h->mu);
    j->next = h->jobs;
    if (h->jobs) h->jobs->prev = j;
    h->jobs = j;
    pthread_mutex_unlock(&h->mu);
    struct timeval zero = {0, 0}, late = {h->busy_ms / 1000, (h->busy_ms % 1000) * 1000};
    evtimer_add(j->deadline, &late);
    if (event_base_once(h->base, -1, EV_TIMEOUT, httpd_job_run, j, &zero) < 0) {
        httpd_job_late(-1, 0, j); /* cannot reach the loop: answer as busy */
        pthread_mutex_lock(&h->mu);
        httpd_job_drop(j);
        pthread_mutex_unlock(&h->mu);
    }
}

/* ---------- the server thread: out of descriptors ---------- */

static void httpd_resume_accept(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    httpd_t *h = arg;
    if (!h->at_cap) evconnlistener_enable(evhttp_bound_socket_get_listener(h->sock)); /* else the sweep does */
}

/* accept() failed. Out of descriptors (EMFILE, ENFILE) the pending connection
 * stays ready and libevent would call accept() again at once, for ever, each
 * failure a log line: take it with the spare descriptor and close it, stop
 * accepting for 100 ms, and log once per 10 s how many were refused. */
static void httpd_accept_error(struct evconnlistener *lev, void *arg)
{
    (void)arg;
    int e = EVUTIL_SOCKET_ERROR();
    httpd_t *h = httpd_listener_owner;
    if (!h) return;
    atomic_fetch_add(&h->accept_errors, 1);
    h->accept_unlogged++;
    if (e == EMFILE || e == ENFILE) {
        if (h->spare_fd >= 0) {
            close(h->spare_fd);
            int fd = accept(evconnlistener_get_fd(lev), NULL, NULL);
            if (fd >= 0) close(fd);
            h->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        }
        evconnlistener_disable(lev);
        struct timeval pause = {0, 100000};
        evtimer_add(h->resume, &pause);
    }
    int64_t now = clock_mono_ms();
    if (now - h->accept_logged_ms >= 10000) {
        log_warn("HTTP: %ld connections could not be accepted in the last %lld s: %s (connections are refused until "
                 "descriptors free up; raise the open-files limit or lower the clients)",
                 h->accept_unlogged, (long long)(h->accept_logged_ms ? (now - h->accept_logged_ms) / 1000 : 0),
                 evutil_socket_error_to_string(e));
        h->accept_unlogged = 0, h->accept_logged_ms = now;
    }
}

/* ---------- the server thread: a cap on connections ----------
 *
 * libevent 2.1's evhttp neither counts nor caps its connections. It lets us
 * make each connection's bufferevent (evhttp_set_bevcb); we keep a reference
 * to each, so we see when evhttp has let one go (bufferevent_free clears its
 * callbacks) and drop ours, which closes the socket. At max_conns accepting
 * pauses, the kernel's backlog holds the rest, and it resumes as soon as one
 * is gone; silent connections are closed after idle_ms, so a crowd of idle
 * clients cannot hold the service for long, and the descriptors below the
 * open-files limit that the cap leaves are there for Redis and the venue. */

#define HTTPD_FD_RESERVE 64 /* descriptors kept for everything but HTTP clients */
#define HTTPD_SWEEP_MS 100

static void httpd_conns_sweep(httpd_t *h)
{
    size_t k = 0;
    for (size_t i = 0; i < h->nconns; i++) {
        void *arg = NULL;
        bufferevent_getcb(h->conns[i], NULL, NULL, NULL, &arg);
        if (arg) h->conns[k++] = h->conns[i];
        else bufferevent_decref(h->conns[i]); /* evhttp is done with it: closes the socket */
    }
    h->nconns = k;
    atomic_store(&h->conns_now, (long)k);
    if (h->at_cap && h->nconns < h->max_conns) {
        h->at_cap = 0;
        evconnlistener_enable(evhttp_bound_socket_get_listener(h->sock));
    }
}

static void httpd_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    httpd_conns_sweep(arg);
}

static struct bufferevent *httpd_conn_new(struct event_base *base, void *arg)
{
    httpd_t *h = arg;
    httpd_conns_sweep(h);
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) return NULL; /* evhttp makes its own */
    if (h->nconns == h->conns_alloc) {
        size_t n = h->conns_alloc ? 2 * h->conns_alloc : 64;
        struct bufferevent **v = realloc(h->conns, n * sizeof *v);
        if (!v) return bev; /* not counted, still served */
        h->conns = v, h->conns_alloc = n;
    }
    bufferevent_incref(bev);
    h->conns[h->nconns++] = bev;
    atomic_store(&h->conns_now, (long)h->nconns);
    if (h->nconns >= h->max_conns) { /* disabled each time: the EMFILE pause may have enabled it meanwhile */
        evconnlistener_disable(evhttp_bound_socket_get_listener(h->sock));
        if (h->at_cap) return bev;
        h->at_cap = 1;
        atomic_fetch_add(&h->cap_pauses, 1);
        int64_t now = clock_mono_ms();
        if (now - h->cap_logged_ms >= 10000) {
            log_warn("HTTP: %zu connections open, the most this service holds (QT_HTTP_MAX_CONNECTIONS, within the "
                     "open-files limit less %d kept for Redis and the venue): new ones wait until one closes",
                     h->nconns, HTTPD_FD_RESERVE);
            h->cap_logged_ms = now;
        }
    }
    return bev;
}

/* The connections this process may hold: what was asked, within the
 * open-files limit less the descriptors open now and the reserve. */
static size_t httpd_max_conns(long asked)
{
    struct rlimit rl;
    size_t want = asked > 0 ? (size_t)asked : 1024, open_now = 0;
    DIR *d = opendir("/proc/self/fd");
    for (struct dirent *e; d && (e = readdir(d));) open_now += e->d_name[0] != '.';
    if (d) closedir(d);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        size_t room = (size_t)rl.rlim_cur > open_now + HTTPD_FD_RESERVE + 8
                          ? (size_t)rl.rlim_cur - open_now - HTTPD_FD_RESERVE : 8;
        if (want > room) {
            log_warn("HTTP: at most %zu connections at once (asked %zu; the open-files limit is %llu, %zu open, %d "
                     "kept in reserve)", room, want, (unsigned long long)rl.rlim_cur, open_now, HTTPD_FD_RESERVE);
            want = room;
        }
    }
    return want;
}

static void *httpd_thread(void *arg)
{
    httpd_t *h = arg;
    event_base_loop(h->sbase, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

/* ---------- the loop: handlers ---------- */

static void httpd_beat(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    httpd_t *h = arg;
    atomic_store(&h->beat_ms, clock_mono_ms());
    long n = atomic_exchange(&h->busy_answers, 0);
    if (n > 0) metric_add(h->m_busy, (double)n);
    n = atomic_exchange(&h->accept_errors, 0);
    if (n > 0) metric_add(h->m_accept, (double)n);
    metric_set(h->m_conns, (double)atomic_load(&h->conns_now));
    n = atomic_exchange(&h->cap_pauses, 0);
    if (n > 0) metric_add(h->m_cap, (double)n);
}

/* The loop is done with the job: count it and hand the answer back. */
static void httpd_job_answered(httpd_job_t *j)
{
    httpd_t *h = j->h;
    httpd_count(h, j->status);
    metric_observe(h->m_latency, (double)(clock_mono_us() - j->t0_us) / 1e6);
    pthread_mutex_lock(&h->mu);
    j->state = JOB_DONE;
    pthread_mutex_unlock(&h->mu);
    event_active(j->back, EV_TIMEOUT, 1);
}

/* Run a handed-over request (the loop) and hand the answer back. */
static void httpd_job_run(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    httpd_job_t *j = arg;
    httpd_t *h = j->h;
    pthread_mutex_lock(&h->mu);
    int cancelled = j->state == JOB_CANCELLED;
    if (!cancelled) j->state = JOB_RUNNING;
    pthread_mutex_unlock(&h->mu);
    if (cancelled) {
        event_active(j->back, EV_TIMEOUT, 1);
        return;
    } /* answered as busy: the server thread frees it */
    atomic_store(&h->beat_ms, clock_mono_ms());
    struct evkeyvalq query = {0};
    json_t *out = NULL;
    size_t plen = 0;
    int status;
    char *path = evhttp_uridecode(j->path, 0, &plen);
    httpd_req_t req = {j, j->method, NULL, "", NULL, NULL};
    if (!path || plen != strlen(path)) {
        out = httpd_error("malformed request path");
        status = 400;
    } else if (j->query && evhttp_parse_query_str(j->query, &query) < 0) {
        out = httpd_error("malformed query string");
        status = 400;
    } else {
        req.path = path;
        req.query = &query;
        status = httpd_run(h, &req, &out);
    }
    evhttp_clear_headers(&query);
    free(path);
    if (status == HTTPD_LATER) return; /* the handler answers with httpd_answer() */
    if (status) httpd_reply_json(&req, status, out);
    httpd_job_answered(j);
}

httpd_later_t *httpd_later(httpd_req_t *req) { return req->job; }

void httpd_answer(httpd_later_t *j, int status, json_t *out)
{
    httpd_req_t req = {j, j->method, NULL, "", NULL, NULL};
    httpd_reply_json(&req, status, out);
    httpd_job_answered(j);
}

static int httpd_health(void *ud, httpd_req_t *req, json_t **out)
{
    (void)req;
    httpd_t *h = ud;
    *out = json_pack("{s:s, s:s, s:I}", "status", "ok", "service", h->service,
                     "uptime_s", (json_int_t)((clock_mono_ms() - h->started_ms) / 1000));
    if (*out && h->notices) json_object_update(*out, h->notices);
    return 200;
}

/* Every readiness check; 1 when all pass. checks (may be NULL) gets each one's answer. */
static int httpd_checks(httpd_t *h, json_t *checks)
{
    int all = 1;
    for (int i = 0; i < h->nready; i++) {
        char why[512] = "";
        int ok = h->ready[i].fn(h->ready[i].ud, why, sizeof why);
        all &= ok != 0;
        if (!checks) continue;
        json_object_set_new(checks, h->ready[i].name,
                            ok == HTTPD_READY_NOTE ? json_pack("{s:b, s:s}", "ok", 1, "note", why)
                            : ok                   ? json_pack("{s:b}", "ok", 1)
                                                   : json_pack("{s:b, s:s}", "ok", 0, "reason", why));
    }
    return all;
}

static int httpd_ready(void *ud, httpd_req_t *req, json_t **out)
{
    (void)req;
    httpd_t *h = ud;
    json_t *checks = json_object();
    int all = httpd_checks(h, checks);
    *out = json_pack("{s:b, s:s, s:o}", "ready", all, "service", h->service, "checks", checks);
    return all ? 200 : 503;
}

static int httpd_metrics(void *ud, httpd_req_t *req, json_t **out)
{
    httpd_t *h = ud;
    metric_set(h->m_ready, httpd_checks(h, NULL)); /* what /ready answers now, for alerting */
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
    if (h->notices) json_object_update(o, h->notices);
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

int httpd_threads_init(void)
{
    static int done = 0, rc = 0;
    if (!done) done = 1, rc = evthread_use_pthreads();
    return rc;
}

httpd_t *httpd_new(struct event_base *base, const httpd_config_t *c, metrics_t *metrics, char *err, size_t errlen)
{
    httpd_t *h = calloc(1, sizeof *h);
    if (!h) return snprintf(err, errlen, "out of memory"), NULL;
    h->spare_fd = -1;
    pthread_mutex_init(&h->mu, NULL);
    h->base = base;
    if (httpd_threads_init() < 0 || !(h->sbase = event_base_new()) || !(h->http = evhttp_new(h->sbase)) ||
        !(h->beat = event_new(base, -1, EV_PERSIST, httpd_beat, h))) {
        snprintf(err, errlen, "cannot set up the HTTP server's thread (out of memory?)");
        httpd_free(h);
        return NULL;
    }
    h->busy_ms = c->busy_ms, h->stall_ms = c->stall_ms;
    snprintf(h->service, sizeof h->service, "%s", c->service);
    snprintf(h->token, sizeof h->token, "%s", c->token ? c->token : "");
    snprintf(h->cors, sizeof h->cors, "%s", c->cors ? c->cors : "");
    h->metrics = metrics;
    h->started_ms = clock_mono_ms();
    atomic_store(&h->beat_ms, h->started_ms);
    h->m_latency = metrics_histogram(metrics, "qt_http_request_seconds", "HTTP request latency", NULL, NULL, 0);
    h->m_busy = metrics_counter(metrics, "qt_http_busy_answers_total",
                                "HTTP requests answered by the server thread while the service loop was held", NULL);
    evhttp_set_max_body_size(h->http, 4 * HTTPD_MAX_BODY);
    evhttp_set_max_headers_size(h->http, 16384);
    struct timeval idle = {(c->idle_ms > 0 ? c->idle_ms : 10000) / 1000,
                           (c->idle_ms > 0 ? c->idle_ms : 10000) % 1000 * 1000};
    evhttp_set_timeout_tv(h->http, &idle);
    h->max_conns = httpd_max_conns(c->max_conns);
    evhttp_set_bevcb(h->http, httpd_conn_new, h);
    evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_HEAD | EVHTTP_REQ_PATCH | EVHTTP_REQ_OPTIONS);
    evhttp_set_gencb(h->http, httpd_dispatch, h);
    h->sock = evhttp_bind_socket_with_handle(h->http, c->bind, (ev_uint16_t)c->port);
    if (!h->sock) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s (QT_HTTP_BIND/QT_HTTP_PORT)", c->bind, c->port,
                 strerror(errno));
        httpd_free(h);
        return NULL;
    }
    h->port = httpd_bound_port(h->sock);
    h->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    h->resume = evtimer_new(h->sbase, httpd_resume_accept, h);
    httpd_listener_owner = h;
    evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(h->sock), httpd_accept_error);
    h->m_accept = metrics_counter(metrics, "qt_http_accept_errors_total",
                                  "Connections that could not be accepted (out of file descriptors)", NULL);
    h->m_conns = metrics_gauge(metrics, "qt_http_connections", "HTTP connections open", NULL);
    h->m_ready = metrics_gauge(metrics, "qt_ready", "1 when /ready answers 200 (every readiness check passes)", NULL);
    h->m_cap = metrics_counter(metrics, "qt_http_connection_cap_reached_total",
                               "Times accepting paused at QT_HTTP_MAX_CONNECTIONS", NULL);
    metric_set(metrics_gauge(metrics, "qt_http_connections_max", "HTTP connections held at most", NULL),
               (double)h->max_conns);
    h->sweep = event_new(h->sbase, -1, EV_PERSIST, httpd_sweep_cb, h);
    struct timeval sw = {0, HTTPD_SWEEP_MS * 1000};
    if (h->sweep) event_add(h->sweep, &sw);
    httpd_route(h, "GET", "/health", 0, httpd_health, h);
    httpd_route(h, "GET", "/ready", 0, httpd_ready, h);
    httpd_route(h, "GET", "/metrics", 0, httpd_metrics, h);
    httpd_route(h, "GET", "/api/v1/status", 0, httpd_status, h);
    struct timeval beat = {0, HTTPD_BEAT_MS * 1000};
    if (event_add(h->beat, &beat) < 0 || pthread_create(&h->thread, NULL, httpd_thread, h) != 0) {
        snprintf(err, errlen, "cannot start the HTTP server's thread");
        httpd_free(h);
        return NULL;
    }
    h->thread_started = 1;
    return h;
}

void httpd_free(httpd_t *h)
{
    if (!h) return;
    if (h->thread_started) {
        event_base_loopbreak(h->sbase);
        pthread_join(h->thread, NULL);
    }
    if (h->http) evhttp_free(h->http); /* with the requests still open */
    for (size_t i = 0; i < h->nconns; i++) bufferevent_decref(h->conns[i]);
    free(h->conns);
    if (h->sweep) event_free(h->sweep);
    if (h->beat) event_free(h->beat);
    if (h->resume) event_free(h->resume);
    if (h->spare_fd >= 0) close(h->spare_fd);
    if (httpd_listener_owner == h) httpd_listener_owner = NULL;
    while (h->jobs) { /* handed over, never answered */
        httpd_job_drop(h->jobs);
    }
    for (int i = 0; i < HTTPD_CACHE; i++) free(h->cache[i].uri), free(h->cache[i].body);
    if (h->sbase) event_base_free(h->sbase);
    pthread_mutex_destroy(&h->mu);
    json_decref(h->notices);
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

void httpd_set_notice(httpd_t *h, const char *name, json_t *value)
{
    if (!h->notices) h->notices = json_object();
    if (h->notices) json_object_set_new(h->notices, name, value ? value : json_null());
    else json_decref(value);
}

void httpd_set_status(httpd_t *h, httpd_status_fn fn, void *ud)
{
    h->status_fn = fn;
    h->status_ud = ud;
}
