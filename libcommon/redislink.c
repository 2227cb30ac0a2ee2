/* redislink.c — one Redis connection kept up (see redislink.h). */
#include "redislink.h"
#include "clock.h"
#include "log.h"

#include <hiredis/adapters/libevent.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RLINK_RECONNECT_MIN_MS 100
#define RLINK_RECONNECT_MAX_MS 5000
#define RLINK_READ_BUF_KEEP (1024 * 1024) /* bytes of read buffer a link keeps between replies */

rlink_t *rlink_of(const redisAsyncContext *ac) { return ac->data; }

static void rlink_sent(rlink_t *l)
{
    if (l->inflight++ == 0) l->last_progress_ms = clock_mono_ms();
}

void rlink_replied(rlink_t *l)
{
    if (l->inflight > 0) l->inflight--;
    l->last_progress_ms = clock_mono_ms();
}

static int rlink_send_any(rlink_t *l, redisCallbackFn *fn, void *pd, int argc, const char **argv,
                         const size_t *lens)
{
    if (redisAsyncCommandArgv(l->ac, fn, pd, argc, argv, lens) != REDIS_OK) return -1;
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
        const char *argv[] = {"AUTH", u->password};
        rlink_send_any(l, rlink_auth_cb, (void *)"AUTH", 2, argv, NULL);
    }
    if (u->db) {
        snprintf(db, sizeof db, "%d", u->db);
        const char *argv[] = {"SELECT", db};
        rlink_send_any(l, rlink_auth_cb, (void *)"SELECT", 2, argv, NULL);
    }
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
    if (redisLibeventAttach(ac, l->base) != REDIS_OK) {
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
    return l->reconnect_ev ? 0 : -1;
}

void rlink_free(rlink_t *l)
{
    l->quiet = 1, l->no_reconnect = 1;
    if (l->ac) redisAsyncFree(l->ac);
    if (l->reconnect_ev) event_free(l->reconnect_ev);
    l->reconnect_ev = NULL;
}
