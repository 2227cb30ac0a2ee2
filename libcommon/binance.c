/* binance.c — Binance USDⓈ-M futures REST client (see binance.h). */
#include "binance.h"
#include "curlev.h"
#include "httpc.h"
#include "clock.h"
#include "log.h"

#include <curl/curl.h>
#include <mbedtls/md.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct binance {
    binance_config_t cfg;
    CURL *curl; /* the blocking calls' handle */
    struct event_base *base;
    curlev_t *ev; /* calls on the loop, once attached */
    int64_t offset_ms, backoff_until_ms;
    long used_weight;
};


#define BINANCE_MAX_BODY (4 << 20)

void binance_sign(const char *key, const char *msg, char out[65])
{
    unsigned char mac[32];
    static const char hex[] = "0123456789abcdef";
    mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), (const unsigned char *)key, strlen(key),
                    (const unsigned char *)msg, strlen(msg), mac);
    for (int i = 0; i < 32; i++) out[2 * i] = hex[mac[i] >> 4], out[2 * i + 1] = hex[mac[i] & 15];
    out[64] = '\0';
}

/* Header callback: X-MBX-USED-WEIGHT-1M and Retry-After. */
typedef struct { long weight, retry_after; } binance_hdr_t;

static size_t binance_header(char *p, size_t size, size_t n, void *ud)
{
    binance_hdr_t *h = ud;
    size_t len = size * n;
    if (len > 22 && strncasecmp(p, "X-MBX-USED-WEIGHT-1M:", 21) == 0) h->weight = strtol(p + 21, NULL, 10);
    if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0) h->retry_after = strtol(p + 12, NULL, 10);
    return len;
}

binance_t *binance_new(const binance_config_t *cfg, char *err, size_t errlen)
{
    static int global;
    if (!global && curl_global_init(CURL_GLOBAL_DEFAULT) == 0) global = 1;
    binance_t *b = calloc(1, sizeof *b);
    if (!b || !(b->curl = curl_easy_init())) {
        free(b);
        snprintf(err, errlen, "cannot initialise libcurl");
        return NULL;
    }
    b->cfg = *cfg;
    b->used_weight = -1;
    return b;
}

void binance_free(binance_t *b)
{
    if (!b) return;
    curlev_free(b->ev); /* calls still running end now, as transport errors */
    curl_easy_cleanup(b->curl);
    explicit_bzero(&b->cfg, sizeof b->cfg); /* not a memset the compiler may drop before free */
    free(b);
}

void binance_reply_clear(binance_reply_t *r)
{
    json_decref(r->body);
    memset(r, 0, sizeof *r);
}

int64_t binance_backoff_ms(const binance_t *b)
{
    int64_t left = b->backoff_until_ms - clock_mono_ms();
    return left > 0 ? left : 0;
}

int64_t binance_clock_offset_ms(const binance_t *b) { return b->offset_ms; }
long binance_used_weight(const binance_t *b) { return b->used_weight; }

/* One HTTP exchange's request and what comes back: url_shown is what errors
 * may print (no signature). */
typedef struct binance_xfer {
    char method[8], url[2048], shown[2048];
    int signed_call;
    httpc_body_t body;
    binance_hdr_t hdr;
    struct curl_slist *headers;
    char keyhdr[200];
} binance_xfer_t;

static void binance_xfer_init(binance_xfer_t *x, const char *method, int signed_call)
{
    memset(x, 0, sizeof *x);
    snprintf(x->method, sizeof x->method, "%s", method);
    x->signed_call = signed_call;
}

/* Everything on the easy handle for x (curl_easy_reset first). */
static void binance_xfer_setup(binance_t *b, CURL *c, binance_xfer_t *x)
{
    x->body = (httpc_body_t){.max = BINANCE_MAX_BODY};
    x->hdr = (binance_hdr_t){-1, 0};
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, x->url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, x->method);
    if (strcmp(x->method, "POST") == 0) curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, b->cfg.timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, b->cfg.timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, httpc_body_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &x->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, binance_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &x->hdr);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "quantum-trader/1");
    if (x->signed_call) {
        snprintf(x->keyhdr, sizeof x->keyhdr, "X-MBX-APIKEY: %s", b->cfg.api_key);
        x->headers = curl_slist_append(NULL, x->keyhdr);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, x->headers);
    }
}

/* What the exchange answered (cc: how the transfer ended), into r; the
 * client's back-off and weight follow it. Frees what x holds. */
static binance_rc_t binance_xfer_result(binance_t *b, CURL *c, CURLcode cc, binance_xfer_t *x, binance_reply_t *r,
                                        char *err, size_t errlen)
{
    const char *method = x->method, *url_shown = x->shown;
    curl_slist_free_all(x->headers);
    x->headers = NULL;
    explicit_bzero(x->keyhdr, sizeof x->keyhdr);
    explicit_bzero(x->url, sizeof x->url); /* it carries the signature */
    memset(r, 0, sizeof *r);
    r->used_weight = -1;
    if (cc != CURLE_OK) {
        long sent_bytes = 0;
        curl_off_t pretransfer_us = 0;
        curl_easy_getinfo(c, CURLINFO_REQUEST_SIZE, &sent_bytes);
        curl_easy_getinfo(c, CURLINFO_PRETRANSFER_TIME_T, &pretransfer_us);
        /* before a single byte of the request was written: no name, no
         * connection, no TLS, or a timeout still inside the connect */
        r->unsent = sent_bytes == 0 && (cc == CURLE_COULDNT_RESOLVE_HOST || cc == CURLE_COULDNT_RESOLVE_PROXY ||
                                        cc == CURLE_COULDNT_CONNECT || cc == CURLE_SSL_CONNECT_ERROR ||
                                        (cc == CURLE_OPERATION_TIMEDOUT && pretransfer_us == 0));
        snprintf(err, errlen, "%s %s: %s", method, url_shown, x->body.over ? "reply too large" : curl_easy_strerror(cc));
        free(x->body.buf);
        return BINANCE_TRANSPORT;
    }
    binance_hdr_t hdr = x->hdr;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->http_status);
    r->used_weight = b->used_weight = hdr.weight >= 0 ? hdr.weight : b->used_weight;
    if (hdr.weight > b->cfg.weight_limit && b->cfg.weight_limit > 0) { /* near the 1-minute budget: wait it out */
        int64_t wall = clock_wall_ms() + b->offset_ms, until = (wall / 60000 + 1) * 60000;
        b->backoff_until_ms = clock_mono_ms() + (until - wall);
        log_warn("used request weight %ld is over %ld: no calls for %lld ms", hdr.weight, b->cfg.weight_limit,
                 (long long)(until - wall));
    }
    r->body = x->body.buf ? json_loadb(x->body.buf, x->body.len, 0, NULL) : NULL;
    free(x->body.buf);
    if (r->http_status == 429 || r->http_status == 418) {
        long wait = hdr.retry_after > 0 ? hdr.retry_after : 60;
        b->backoff_until_ms = clock_mono_ms() + wait * 1000;
        log_warn("exchange answered %ld (%s): no calls for %ld s", r->http_status,
                 r->http_status == 418 ? "IP banned" : "rate limit", wait);
    }
    if (r->http_status >= 200 && r->http_status < 300) {
        if (r->body) return BINANCE_OK;
        snprintf(err, errlen, "%s %s: answer is not JSON", method, url_shown);
        return BINANCE_TRANSPORT;
    }
    r->code = (int)json_integer_value(json_object_get(r->body, "code"));
    snprintf(r->msg, sizeof r->msg, "%s", json_string_value(json_object_get(r->body, "msg")) ? json_string_value(json_object_get(r->body, "msg")) : "");
    snprintf(err, errlen, "%s %s: HTTP %ld, code %d: %s", method, url_shown, r->http_status, r->code, r->msg);
    return BINANCE_HTTP;
}

/* One HTTP exchange, blocking. */
static binance_rc_t binance_perform(binance_t *b, const char *method, const char *url, const char *url_shown,
                                    int signed_call, binance_reply_t *r, char *err, size_t errlen)
{
    binance_xfer_t x;
    binance_xfer_init(&x, method, signed_call);
    snprintf(x.url, sizeof x.url, "%s", url);
    snprintf(x.shown, sizeof x.shown, "%s", url_shown);
    binance_xfer_setup(b, b->curl, &x);
    CURLcode cc = curl_easy_perform(b->curl);
    return binance_xfer_result(b, b->curl, cc, &x, r, err, errlen);
}

binance_rc_t binance_public(binance_t *b, const char *path, const char *query, binance_reply_t *r, char *err,
                            size_t errlen)
{
    char url[2048];
    memset(r, 0, sizeof *r);
    if (binance_backoff_ms(b) > 0) {
        snprintf(err, errlen, "backing off for %lld ms after a 429/418", (long long)binance_backoff_ms(b));
        r->unsent = 1;
        return BINANCE_BACKOFF;
    }
    snprintf(url, sizeof url, "%s%s%s%s", b->cfg.base_url, path, query && *query ? "?" : "", query ? query : "");
    return binance_perform(b, "GET", url, url, 0, r, err, errlen);
}

/* GET /fapi/v1/time → offset = server - local. */
static void binance_resync(binance_t *b)
{
    binance_reply_t r;
    char err[256];
    if (binance_public(b, "/fapi/v1/time", NULL, &r, err, sizeof err) == BINANCE_OK) {
        b->offset_ms = json_integer_value(json_object_get(r.body, "serverTime")) - clock_wall_ms();
        log_info("re-synced with the exchange clock: offset %lld ms", (long long)b->offset_ms);
    } else {
        log_warn("cannot re-sync with the exchange clock: %s", err);
    }
    binance_reply_clear(&r);
}

/* path?params with recvWindow, timestamp and signature, and what errors may show of it. */
static void binance_signed_url(binance_t *b, const char *path, const char *params, char *url, size_t len, char *shown,
                               size_t shown_len)
{
    char query[1536], sig[65];
    snprintf(query, sizeof query, "%s%srecvWindow=%ld&timestamp=%lld", params, params[0] ? "&" : "",
             b->cfg.recv_window_ms, (long long)(clock_wall_ms() + b->offset_ms));
    binance_sign(b->cfg.api_secret, query, sig);
    snprintf(url, len, "%s%s?%s&signature=%s", b->cfg.base_url, path, query, sig);
    snprintf(shown, shown_len, "%s%s", b->cfg.base_url, path);
    explicit_bzero(sig, sizeof sig);
}

binance_rc_t binance_signed(binance_t *b, const char *method, const char *path, const char *params,
                            binance_reply_t *r, char *err, size_t errlen)
{
    char url[2048], shown[2048];
    memset(r, 0, sizeof *r);
    if (!b->cfg.api_key[0] || !b->cfg.api_secret[0]) {
        snprintf(err, errlen, "no API key: set QT_BINANCE_API_KEY and QT_BINANCE_API_SECRET (or their _FILE variants)");
        r->unsent = 1;
        return BINANCE_TRANSPORT;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        if (binance_backoff_ms(b) > 0) {
            snprintf(err, errlen, "backing off for %lld ms after a 429/418", (long long)binance_backoff_ms(b));
            r->unsent = 1;
            return BINANCE_BACKOFF;
        }
        binance_signed_url(b, path, params, url, sizeof url, shown, sizeof shown);
        binance_rc_t rc = binance_perform(b, method, url, shown, 1, r, err, errlen);
        explicit_bzero(url, sizeof url);
        if (rc != BINANCE_HTTP || r->code != -1021 || attempt == 1) return rc;
        binance_reply_clear(r); /* timestamp outside recvWindow: re-sync once and retry */
        binance_resync(b);
    }
    return BINANCE_TRANSPORT;
}

int binance_outcome_unknown(const binance_reply_t *r) { return r->code == -1006 || r->code == -1007; }

int binance_refused(binance_rc_t rc, const binance_reply_t *r)
{
    if (rc == BINANCE_BACKOFF || r->unsent) return 1;
    return rc == BINANCE_HTTP && r->http_status >= 400 && r->http_status < 500 && r->http_status != 408 &&
           !binance_outcome_unknown(r);
}

/* ---------- calls on the loop (libcurl multi, see curlev.h) ---------- */

struct binance_call {
    binance_t *b;
    CURL *easy;
    binance_xfer_t x;
    char path[256], params[1024];
    int signed_call, attempt, resyncing;
    binance_rc_t rc; /* of a call that never started */
    binance_done_fn done;
    void *ud;
    binance_reply_t r;
    char err[512];
};

int binance_attach(binance_t *b, struct event_base *base)
{
    if (b->ev) return 0;
    b->base = base;
    b->ev = curlev_new(base);
    return b->ev ? 0 : -1;
}

static void binance_call_end(binance_call_t *k, binance_rc_t rc)
{
    k->done(k->ud, rc, &k->r, k->err);
    binance_reply_clear(&k->r);
    if (k->easy) curl_easy_cleanup(k->easy);
    explicit_bzero(k->params, sizeof k->params);
    free(k);
}

static void binance_call_xfer_done(void *ud, CURL *easy, CURLcode cc);

/* Send k's request (its signature made now): 0, or -1 with k->err. */
static int binance_call_send(binance_call_t *k)
{
    binance_t *b = k->b;
    if (binance_backoff_ms(b) > 0) {
        snprintf(k->err, sizeof k->err, "backing off for %lld ms after a 429/418", (long long)binance_backoff_ms(b));
        k->r.unsent = 1, k->rc = BINANCE_BACKOFF;
        return -1;
    }
    if (k->resyncing) {
        binance_xfer_init(&k->x, "GET", 0);
        snprintf(k->x.url, sizeof k->x.url, "%s/fapi/v1/time", b->cfg.base_url);
        snprintf(k->x.shown, sizeof k->x.shown, "%s", k->x.url);
    } else if (k->signed_call) {
        binance_signed_url(b, k->path, k->params, k->x.url, sizeof k->x.url, k->x.shown, sizeof k->x.shown);
    } else {
        snprintf(k->x.url, sizeof k->x.url, "%s%s%s%s", b->cfg.base_url, k->path, k->params[0] ? "?" : "", k->params);
        snprintf(k->x.shown, sizeof k->x.shown, "%s", k->x.url);
    }
    binance_xfer_setup(b, k->easy, &k->x);
    if (curlev_add(b->ev, k->easy, binance_call_xfer_done, k) < 0) {
        binance_xfer_result(b, k->easy, CURLE_OUT_OF_MEMORY, &k->x, &k->r, k->err, sizeof k->err);
        k->r.unsent = 1, k->rc = BINANCE_TRANSPORT;
        return -1;
    }
    return 0;
}

static void binance_call_xfer_done(void *ud, CURL *easy, CURLcode cc)
{
    binance_call_t *k = ud;
    binance_t *b = k->b;
    binance_rc_t rc = binance_xfer_result(b, easy, cc, &k->x, &k->r, k->err, sizeof k->err);
    if (k->resyncing) { /* the clock after a -1021: then the call once more */
        if (rc == BINANCE_OK) {
            b->offset_ms = json_integer_value(json_object_get(k->r.body, "serverTime")) - clock_wall_ms();
            log_info("re-synced with the exchange clock: offset %lld ms", (long long)b->offset_ms);
        } else {
            log_warn("cannot re-sync with the exchange clock: %s", k->err);
        }
        binance_reply_clear(&k->r);
        k->resyncing = 0, k->attempt = 1;
        if (cc == CURLE_ABORTED_BY_CALLBACK || binance_call_send(k) < 0) binance_call_end(k, cc == CURLE_ABORTED_BY_CALLBACK ? BINANCE_TRANSPORT : k->rc);
        return;
    }
    if (rc == BINANCE_HTTP && k->signed_call && k->r.code == -1021 && k->attempt == 0 && cc != CURLE_ABORTED_BY_CALLBACK) {
        binance_reply_clear(&k->r); /* timestamp outside recvWindow: re-sync once and retry */
        k->resyncing = 1;
        if (binance_call_send(k) < 0) binance_call_end(k, k->rc);
        return;
    }
    binance_call_end(k, rc);
}

/* A call that cannot start still answers later, on the loop. */
static void binance_call_later(evutil_socket_t fd, short what, void *arg)
{
    binance_call_t *k = arg;
    (void)fd, (void)what;
    binance_call_end(k, k->rc);
}

int binance_call(binance_t *b, const char *method, const char *path, const char *params, int signed_call,
                 binance_done_fn done, void *ud)
{
    binance_call_t *k = calloc(1, sizeof *k);
    if (!k || !b->ev) {
        free(k);
        return -1;
    }
    k->b = b, k->done = done, k->ud = ud, k->signed_call = signed_call;
    snprintf(k->path, sizeof k->path, "%s", path);
    snprintf(k->params, sizeof k->params, "%s", params ? params : "");
    binance_xfer_init(&k->x, method, signed_call);
    if (signed_call && (!b->cfg.api_key[0] || !b->cfg.api_secret[0])) {
        snprintf(k->err, sizeof k->err, "no API key: set QT_BINANCE_API_KEY and QT_BINANCE_API_SECRET (or their _FILE variants)");
        k->r.unsent = 1, k->rc = BINANCE_TRANSPORT;
    } else if (!(k->easy = curl_easy_init())) {
        snprintf(k->err, sizeof k->err, "cannot initialise libcurl");
        k->r.unsent = 1, k->rc = BINANCE_TRANSPORT;
    } else if (binance_call_send(k) == 0) {
        return 0;
    }
    struct timeval now = {0, 0};
    if (event_base_once(b->base, -1, EV_TIMEOUT, binance_call_later, k, &now) < 0) {
        if (k->easy) curl_easy_cleanup(k->easy);
        free(k);
        return -1;
    }
    return 0;
}
