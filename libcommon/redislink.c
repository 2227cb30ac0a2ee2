/* redislink.c — one Redis connection kept up (see redislink.h). */
#include "redislink.h"
#include "clock.h"
#include "log.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RLINK_RECONNECT_MIN_MS 100
#define RLINK_RECONNECT_MAX_MS 5000
#define RLINK_READ_BUF_KEEP (1024 * 1024) /* bytes of read buffer a link keeps between replies */

rlink_t *rlink_of(const redisAsyncContext *ac) { return ac->data; }

/* ---------- the libevent glue, with a bound on what one reply may bring in ----------
 *
 * hiredis buffers a bulk string until all of it has arrived and builds the
 * reply's objects as its parts arrive, so one huge entry (or a batch of big
 * ones) would be held whole before any of our code saw it. Our own adapter
 * (the interface hiredis's adapters implement) checks after every read what
 * the reply under way holds — the strings already made, counted by a wrapper
 * of the reader's object functions, plus the unparsed buffer — and closes the
 * link once that passes max_reply_bytes: memory stays within the bound plus
 * one socket read, and the owner learns from l->oversized why it went. */

typedef struct rlink_events {
    redisAsyncContext *ac;
    rlink_t *link;
    struct event *rev, *wev;
    size_t reply_bytes; /* strings and objects of the reply being read */
    int in_read, cleaned;
} rlink_events_t;

static redisReplyObjectFunctions *rlink_hiredis_fn; /* hiredis's own, which ours wrap */

static void rlink_count(const redisReadTask *t, size_t n)
{
    rlink_events_t *e = t->privdata;
    if (!e) return;
    if (!t->parent) e->reply_bytes = 0; /* a new reply starts */
    e->reply_bytes += n + sizeof(redisReply);
}

static void *rlink_create_string(const redisReadTask *t, char *s, size_t n)
{
    rlink_count(t, n);
    return rlink_hiredis_fn->createString(t, s, n);
}

static void *rlink_create_array(const redisReadTask *t, int n)
{
    rlink_count(t, (size_t)(n > 0 ? n : 0) * sizeof(void *));
    return rlink_hiredis_fn->createArray(t, n);
}

static void *rlink_create_integer(const redisReadTask *t, long long v)
{
    rlink_count(t, 0);
    return rlink_hiredis_fn->createInteger(t, v);
}

static void *rlink_create_nil(const redisReadTask *t)
{
    rlink_count(t, 0);
    return rlink_hiredis_fn->createNil(t);
}

static void rlink_free_object(void *o) { rlink_hiredis_fn->freeObject(o); }

static redisReplyObjectFunctions rlink_fn = {rlink_create_string, rlink_create_array, rlink_create_integer,
                                             rlink_create_nil, rlink_free_object};

static void rlink_events_free(rlink_events_t *e)
{
    event_free(e->rev);
    event_free(e->wev);
    free(e);
}

static void rlink_ev_read(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    rlink_events_t *e = arg;
    e->in_read = 1;
    redisAsyncHandleRead(e->ac);
    e->in_read = 0;
    if (e->cleaned) { /* hiredis freed the context in there */
        rlink_events_free(e);
        return;
    }
    rlink_t *l = e->link;
    const redisReader *r = e->ac->c.reader;
    size_t held = (r->ridx >= 0 ? e->reply_bytes : 0) + (r->len - r->pos);
    if (l->max_reply_bytes > 0 && held > l->max_reply_bytes && l->ac == e->ac) {
        char why[160];
        snprintf(why, sizeof why, "a reply passed QT_MAX_READ_BYTES=%zu bytes (%zu read so far); dropped unread",
                 l->max_reply_bytes, held);
        l->oversized = 1;
        metric_inc(l->m_oversized);
        rlink_force_close(l, why);
    }
}

static void rlink_ev_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    redisAsyncHandleWrite(((rlink_events_t *)arg)->ac);
}

static void rlink_ev_add_read(void *pd) { event_add(((rlink_events_t *)pd)->rev, NULL); }
static void rlink_ev_del_read(void *pd) { event_del(((rlink_events_t *)pd)->rev); }
static void rlink_ev_add_write(void *pd) { event_add(((rlink_events_t *)pd)->wev, NULL); }
static void rlink_ev_del_write(void *pd) { event_del(((rlink_events_t *)pd)->wev); }

static void rlink_ev_cleanup(void *pd)
{
    rlink_events_t *e = pd;
    event_del(e->rev);
    event_del(e->wev);
    if (e->in_read) e->cleaned = 1; /* freed once redisAsyncHandleRead returns */
    else rlink_events_free(e);
}

static int rlink_attach(rlink_t *l, redisAsyncContext *ac)
{
    rlink_events_t *e = calloc(1, sizeof *e);
    if (!e) return -1;
    e->ac = ac, e->link = l;
    e->rev = event_new(l->base, ac->c.fd, EV_READ, rlink_ev_read, e);
    e->wev = event_new(l->base, ac->c.fd, EV_WRITE, rlink_ev_write, e);
    if (!e->rev || !e->wev) {
        if (e->rev) event_free(e->rev);
        if (e->wev) event_free(e->wev);
        free(e);
        return -1;
    }
    if (!rlink_hiredis_fn) rlink_hiredis_fn = ac->c.reader->fn;
    ac->c.reader->fn = &rlink_fn;
    ac->c.reader->privdata = e;
    ac->ev.addRead = rlink_ev_add_read, ac->ev.delRead = rlink_ev_del_read;
    ac->ev.addWrite = rlink_ev_add_write, ac->ev.delWrite = rlink_ev_del_write;
    ac->ev.cleanup = rlink_ev_cleanup;
    ac->ev.data = e;
    event_add(e->rev, NULL);
    event_add(e->wev, NULL);
    return 0;
}

static void rlink_sent(rlink_t *l)
{
    if (l->inflight++ == 0) l->last_progress_ms = clock_mono_ms();
}

void rlink_replied(rlink_t *l)
{
    if (l->inflight > 0) l->inflight--;
    l->last_progress_ms = clock_mono_ms();
}

/* A command sent without a callback still has its reply counted: the
 * watchdog waits for every reply it knows is owed. */
static void rlink_ignore_cb(redisAsyncContext *ac, void *r, void *pd)
{
    (void)r, (void)pd;
    rlink_t *l = rlink_of(ac);
    if (l && l->ac == ac) rlink_replied(l);
}

static int rlink_send_any(rlink_t *l, redisCallbackFn *fn, void *pd, int argc, const char **argv,
                         const size_t *lens)
{
    if (redisAsyncCommandArgv(l->ac, fn ? fn : rlink_ignore_cb, pd, argc, argv, lens) != REDIS_OK) return -1;
    rlink_sent(l);
    return 0;
}

int rlink_send(rlink_t *l, redisCallbackFn *fn, void *pd, int argc, const char **argv, const size_t *lens)
{
    if (!rlink_up(l)) return -1;
    return rlink_send_any(l, fn, pd, argc, argv, lens);
}

int rlink_send_formatted(rlink_t *l, redisCallbackFn *fn, void *pd, const char *cmd, size_t len)
{
    if (!rlink_up(l) || redisAsyncFormattedCommand(l->ac, fn, pd, cmd, len) != REDIS_OK) return -1;
    rlink_sent(l);
    return 0;
}

int rlink_up(const rlink_t *l) { return l->state == RLINK_UP && !l->doomed; }

/* Exponential backoff with jitter: half fixed, half random. */
static void rlink_schedule_reconnect(rlink_t *l)
{
    if (l->quiet || l->no_reconnect) return;
    int64_t d = RLINK_RECONNECT_MIN_MS << (l->attempts < 6 ? l->attempts : 6);
    if (d > RLINK_RECONNECT_MAX_MS) d = RLINK_RECONNECT_MAX_MS;
    d = d / 2 + rand() % (d / 2 + 1);
    l->attempts++;
    struct timeval tv = {(time_t)(d / 1000), (suseconds_t)((d % 1000) * 1000)};
    evtimer_add(l->reconnect_ev, &tv);
}

static void rlink_went_down(rlink_t *l, const char *why)
{
    int was_up = l->state == RLINK_UP;
    l->ac = NULL;
    l->state = RLINK_DOWN;
    l->inflight = 0;
    l->doomed = 0;
    if (!l->quiet && !l->forced) { /* a forced close said why already */
        snprintf(l->last_error, l->last_error_len, "redis %s link: %s", l->name, why);
        if (was_up) log_warn("redis %s link down: %s", l->name, why);
    }
    l->forced = 0;
    metric_set(l->m_up, 0);
    if (l->on_down && !l->quiet) l->on_down(l->ud);
    rlink_schedule_reconnect(l);
}

/* Close a link from outside hiredis callbacks: pending callbacks get NULL. */
void rlink_force_close(rlink_t *l, const char *why)
{
    redisAsyncContext *ac = l->ac;
    if (!ac) return;
    if (!l->quiet) log_warn("redis %s link: %s; reconnecting", l->name, why);
    snprintf(l->last_error, l->last_error_len, "redis %s link: %s", l->name, why);
    l->forced = 1; /* already said why */
    redisAsyncFree(ac); /* calls disconnect_cb only if it was connected */
    if (l->ac == ac) rlink_went_down(l, why);
}

static void rlink_disconnect_cb(const redisAsyncContext *ac, int status)
{
    rlink_t *l = rlink_of(ac);
    if (!l || l->ac != ac) return;
    rlink_went_down(l, status == REDIS_OK ? "connection closed" : (ac->errstr[0] ? ac->errstr : "error"));
}

static void rlink_auth_cb(redisAsyncContext *ac, void *r, void *pd)
{
    rlink_t *l = rlink_of(ac);
    redisReply *reply = r;
    rlink_replied(l);
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        log_error("redis %s link: %s refused: %s (check REDIS_URL)", l->name, (const char *)pd, reply->str);
        l->doomed = 1; /* closed by the watchdog, outside this callback */
    }
}

/* AUTH and SELECT go first in the pipeline, then the PING that says Redis
 * is answering this connection. */
static void rlink_prepare(rlink_t *l)
{
    const redis_url_t *u = l->url;
    char db[16];
    if (u->password[0]) {
        const char *argv[] = {"AUTH", u->user[0] ? u->user : u->password, u->password};
        rlink_send_any(l, rlink_auth_cb, (void *)"AUTH", u->user[0] ? 3 : 2, argv, NULL);
    }
    if (u->db) {
        snprintf(db, sizeof db, "%d", u->db);
        const char *argv[] = {"SELECT", db};
        rlink_send_any(l, rlink_auth_cb, (void *)"SELECT", 2, argv, NULL);
    }
}

static void rlink_id_cb(redisAsyncContext *ac, void *r, void *pd)
{
    rlink_t *l = rlink_of(ac);
    const redisReply *reply = r;
    (void)pd;
    if (!l || l->ac != ac) return;
    rlink_replied(l);
    if (reply && reply->type == REDIS_REPLY_INTEGER) l->client_id = reply->integer;
}

/* Redis answered: only now is anything else sent. A Redis that accepts
 * connections but does not answer (frozen, overloaded) gets nothing but the
 * PING, so a watchdog close never leaves a second copy of the outbox queued
 * on a dead connection that Redis would still read later. */
static void rlink_hello_cb(redisAsyncContext *ac, void *r, void *pd)
{
    rlink_t *l = rlink_of(ac);
    (void)pd;
    if (!l || l->ac != ac) return;
    rlink_replied(l);
    if (!r || l->doomed || l->state != RLINK_HELLO) return;
    l->state = RLINK_UP;
    l->since_ms = l->last_progress_ms = clock_mono_ms();
    if (l->attempts > 1) log_info("redis %s link up after %d attempts", l->name, l->attempts);
    l->attempts = 0;
    metric_set(l->m_up, 1);
    if (l->on_up) l->on_up(l->ud);
}

static void rlink_connect_cb(const redisAsyncContext *ac, int status)
{
    rlink_t *l = rlink_of(ac);
    if (status != REDIS_OK) { /* hiredis frees ac after this returns */
        if (l->attempts <= 1 || l->attempts % 20 == 0)
            log_warn("redis %s link: connect failed: %s", l->name, ac->errstr);
        snprintf(l->last_error, l->last_error_len, "redis %s link: connect failed: %s", l->name, ac->errstr);
        l->ac = NULL;
        l->state = RLINK_DOWN;
        rlink_schedule_reconnect(l);
        return;
    }
    l->state = RLINK_HELLO;
    l->since_ms = l->last_progress_ms = clock_mono_ms();
    rlink_prepare(l);
    const char *id[] = {"CLIENT", "ID"};
    l->client_id = 0;
    rlink_send_any(l, rlink_id_cb, NULL, 2, id, NULL); /* refused (an ACL): the link works, only unblocking waits */
    const char *ping[] = {"PING"};
    rlink_send_any(l, rlink_hello_cb, NULL, 1, ping, NULL); /* unsent (out of memory): the watchdog closes it */
}

void rlink_connect(rlink_t *l)
{
    const redis_url_t *u = l->url;
    redisAsyncContext *ac = u->unix_path[0] ? redisAsyncConnectUnix(u->unix_path)
                                            : redisAsyncConnect(u->host, u->port);
    metric_inc(l->m_reconnects);
    if (!ac || ac->err) {
        log_warn("redis %s link: %s", l->name, ac ? ac->errstr : "out of memory");
        if (ac) redisAsyncFree(ac);
        rlink_schedule_reconnect(l);
        return;
    }
    /* hiredis frees its read buffer whenever it is empty and over 16 KB, so a
     * link that reads QT_BATCH entries at a time grew it from nothing, copy by
     * copy, for every reply (a profile had this at 4 % of the engine's CPU).
     * Keep up to BUS_READ_BUF_KEEP of it between replies. */
    ac->c.reader->maxbuf = RLINK_READ_BUF_KEEP;
    ac->data = l;
    if (rlink_attach(l, ac) < 0) {
        redisAsyncFree(ac);
        rlink_schedule_reconnect(l);
        return;
    }
    redisAsyncSetConnectCallback(ac, rlink_connect_cb);
    redisAsyncSetDisconnectCallback(ac, rlink_disconnect_cb);
    l->ac = ac;
    l->state = RLINK_CONNECTING;
    l->since_ms = clock_mono_ms();
}

static void rlink_reconnect_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    rlink_t *l = arg;
    if (l->state == RLINK_DOWN && !l->quiet) rlink_connect(l);
}

/* hiredis 0.14 has no async timeouts: close a link that hangs. */
void rlink_watchdog(rlink_t *l, int64_t now)
{
    char why[96];
    int64_t limit = l->timeout_ms;
    if (l->doomed) {
        rlink_force_close(l, "authentication or database selection failed");
    } else if (l->state == RLINK_CONNECTING && now - l->since_ms > limit) {
        snprintf(why, sizeof why, "connect timed out after %lld ms", (long long)(now - l->since_ms));
        rlink_force_close(l, why);
    } else if (l->state == RLINK_HELLO && now - l->since_ms > limit) {
        snprintf(why, sizeof why, "connected, but no answer to PING for %lld ms", (long long)(now - l->since_ms));
        rlink_force_close(l, why);
    } else if (l->state == RLINK_UP && l->inflight > 0 &&
               now - l->last_progress_ms > limit + l->allowance_ms) {
        snprintf(why, sizeof why, "no reply for %lld ms", (long long)(now - l->last_progress_ms));
        rlink_force_close(l, why);
    }
}

/* The loop was held for ms (a blocking call in a handler or a timer, or the
 * process stopped): that time is not Redis's silence. A command queued
 * before the hold was not even written until the loop ran again, and a reply
 * that came meanwhile is still unread, so the link's clocks move on by ms
 * (never past now); time the loop does run still counts in full. */
void rlink_credit(rlink_t *l, int64_t ms, int64_t now)
{
    l->since_ms = l->since_ms + ms < now ? l->since_ms + ms : now;
    l->last_progress_ms = l->last_progress_ms + ms < now ? l->last_progress_ms + ms : now;
}

int rlink_init(rlink_t *l, struct event_base *base, const char *name, const redis_url_t *url, long timeout_ms,
               metrics_t *metrics, char *last_error, size_t last_error_len, void (*on_up)(void *),
               void (*on_down)(void *), void *ud)
{
    char labels[64];
    l->base = base, l->name = name, l->url = url, l->timeout_ms = timeout_ms;
    l->last_error = last_error, l->last_error_len = last_error_len;
    l->on_up = on_up, l->on_down = on_down, l->ud = ud;
    l->reconnect_ev = evtimer_new(base, rlink_reconnect_cb, l);
    snprintf(labels, sizeof labels, "link=\"%s\"", name);
    l->m_reconnects = metrics_counter(metrics, "qt_bus_redis_connects_total", "Connection attempts to Redis", labels);
    l->m_up = metrics_gauge(metrics, "qt_bus_redis_link_up", "1 when the Redis link is up", labels);
    l->m_oversized = metrics_counter(metrics, "qt_bus_redis_replies_dropped_total",
                                     "Replies larger than QT_MAX_READ_BYTES, dropped unread (the link reconnects)",
                                     labels);
    return l->reconnect_ev ? 0 : -1;
}

void rlink_free(rlink_t *l)
{
    l->quiet = 1, l->no_reconnect = 1;
    if (l->ac) redisAsyncFree(l->ac);
    if (l->reconnect_ev) event_free(l->reconnect_ev);
    l->reconnect_ev = NULL;
}
