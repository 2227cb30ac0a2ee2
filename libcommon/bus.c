/* bus.c — Redis Streams bus on hiredis async + libevent (see bus.h). */
#include "bus.h"
#include "proto.h"
#include "clock.h"
#include "log.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libevent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUS_MAX_SUBS 16
#define BUS_MAX_PUBS 32
#define BUS_TICK_MS 100
#define BUS_HELD_MS 200 /* a tick this much late: the loop (or the process) was held */
#define BUS_ACK_CHUNK 512
#define BUS_LAG_EVERY_MS 5000
#define BUS_RECONNECT_MIN_MS 100
#define BUS_RECONNECT_MAX_MS 5000
#define BUS_ERROR_HOLD_MS 500
#define BUS_SID_MAX 48 /* "<ms>-<seq>" fits in 41 */
#define BUS_READ_BUF_KEEP (1024 * 1024) /* bytes of read buffer a link keeps between replies */

/* HELLO: connected, waiting for Redis to answer a PING before anything else is sent. */
typedef enum { LINK_DOWN, LINK_CONNECTING, LINK_HELLO, LINK_UP } link_state_t;

typedef struct bus_link {
    bus_t *bus;
    const char *name;
    redisAsyncContext *ac;
    link_state_t state;
    int64_t since_ms, last_progress_ms, allowance_ms;
    int inflight, attempts, doomed, forced;
    struct event *reconnect_ev;
    metric_t *m_reconnects, *m_up;
    void (*on_up)(bus_t *);
    void (*on_down)(bus_t *);
} bus_link_t;

typedef struct bus_sub {
    char name[64], key[160], dlq_key[168];
    bus_handler_fn fn;
    void *ud;
    const char *const *types; /* NULL: every type; else the types the handler takes (NULL-terminated) */
    int scan_needed, scanning, group_ok;
    char scan_cursor[BUS_SID_MAX], claim_cursor[BUS_SID_MAX];
    char (*scan_ids)[BUS_SID_MAX]; /* from XPENDING, for delivery counts */
    long *scan_counts;
    size_t scan_n;
    int64_t retry_due_ms, next_claim_ms, next_lag_ms;
    long long lag, pending;
    metric_t *m_in, *m_acked, *m_dead, *m_retried, *m_claimed, *m_deleted, *m_lag, *m_pending, *m_latency, *m_skipped;
} bus_sub_t;

typedef struct bus_pub {
    char name[64], key[160];
    metric_t *m_out;
} bus_pub_t;

typedef struct bus_out {
    struct bus_out *prev, *next;
    bus_t *bus;
    char *cmd;
    size_t len;
    uint64_t seq;
    int inflight;
    int sub; /* >= 0: a DLQ copy of sub's entry_id, acked once confirmed */
    char entry_id[BUS_SID_MAX];
    metric_t *m_ok;
} bus_out_t;

typedef struct bus_ack {
    int sub;
    uint64_t wait_seq;
    char id[BUS_SID_MAX];
} bus_ack_t;

typedef struct bus_ackcmd {
    bus_t *bus;
    int sub;
    size_t n;
    char (*ids)[BUS_SID_MAX];
} bus_ackcmd_t;

struct bus {
    struct event_base *base;
    qt_config_t cfg;
    char group[64], consumer[128], host[64];
    bus_link_t cmd, rd;
    bus_sub_t subs[BUS_MAX_SUBS];
    int nsubs;
    bus_pub_t pubs[BUS_MAX_PUBS];
    int npubs;
    bus_out_t *out_head, *out_tail, *out_cursor;
    size_t out_count, out_pub_count, dlq_outstanding;
    int reclaims;      /* take-overs of dead consumers' entries under way */
    int oldest_first;  /* (re)started: read new entries only once those and our own pending are handled */
    uint64_t seq_issued;
    bus_ack_t *acks;
    size_t ack_head, ack_len, ack_cap, acks_inflight;
    breaker_t *breaker;
    metrics_t *metrics;
    metric_t *m_outbox, *m_pub_errors, *m_refused, *m_breaker;
    struct event *tick_ev;
    int started, groups_ready, groups_waiting, reading, paused, stopping, stopped, freeing;
    int64_t groups_retry_ms, read_hold_ms, pump_hold_ms, refusal_log_ms;
    int64_t last_tick_ms; /* for telling a held loop from a silent Redis */
    int64_t retry_after_ms; /* set by bus_retry_after() in a handler, for its BUS_RETRY */
    long refusals_suppressed;
    char pause_reason[128], last_error[256];
    const char **read_argv;
    int read_argc;
    char count_s[24], block_s[24], maxlen_s[24], dlq_maxlen_s[24];
    void (*stop_done)(void *);
    void *stop_ud;
    int64_t stop_deadline_ms;
};

static void read_next(bus_t *b);
static void scan_next(bus_t *b, int si);
static void ack_flush(bus_t *b);
static void outbox_pump(bus_t *b);
static void reclaim_done(bus_t *b);
static void groups_create(bus_t *b);
static void scan_restart(bus_sub_t *s);
static long long reply_map_int(const redisReply *m, const char *key, int *found);

/* ---------- links ---------- */

static bus_link_t *link_of(const redisAsyncContext *ac) { return ac->data; }

static void link_sent(bus_link_t *l)
{
    if (l->inflight++ == 0) l->last_progress_ms = clock_mono_ms();
}

static void link_replied(bus_link_t *l)
{
    if (l->inflight > 0) l->inflight--;
    l->last_progress_ms = clock_mono_ms();
}

static int link_send_any(bus_link_t *l, redisCallbackFn *fn, void *pd, int argc, const char **argv,
                         const size_t *lens)
{
    if (redisAsyncCommandArgv(l->ac, fn, pd, argc, argv, lens) != REDIS_OK) return -1;
    link_sent(l);
    return 0;
}

static int link_send(bus_link_t *l, redisCallbackFn *fn, void *pd, int argc, const char **argv,
                     const size_t *lens)
{
    if (l->state != LINK_UP || l->doomed) return -1;
    return link_send_any(l, fn, pd, argc, argv, lens);
}

/* Exponential backoff with jitter: half fixed, half random. */
static void link_schedule_reconnect(bus_link_t *l)
{
    bus_t *b = l->bus;
    if (b->freeing || (b->stopped) || (l == &b->rd && b->stopping)) return;
    int64_t d = BUS_RECONNECT_MIN_MS << (l->attempts < 6 ? l->attempts : 6);
    if (d > BUS_RECONNECT_MAX_MS) d = BUS_RECONNECT_MAX_MS;
    d = d / 2 + rand() % (d / 2 + 1);
    l->attempts++;
    struct timeval tv = {(time_t)(d / 1000), (suseconds_t)((d % 1000) * 1000)};
    evtimer_add(l->reconnect_ev, &tv);
}

static void link_went_down(bus_link_t *l, const char *why)
{
    int was_up = l->state == LINK_UP;
    l->ac = NULL;
    l->state = LINK_DOWN;
    l->inflight = 0;
    l->doomed = 0;
    if (!l->bus->freeing && !l->forced) { /* a forced close said why already */
        snprintf(l->bus->last_error, sizeof l->bus->last_error, "redis %s link: %s", l->name, why);
        if (was_up) log_warn("redis %s link down: %s", l->name, why);
    }
    l->forced = 0;
    metric_set(l->m_up, 0);
    if (l->on_down && !l->bus->freeing) l->on_down(l->bus);
    link_schedule_reconnect(l);
}

/* Close a link from outside hiredis callbacks: pending callbacks get NULL. */
static void link_force_close(bus_link_t *l, const char *why)
{
    redisAsyncContext *ac = l->ac;
    if (!ac) return;
    if (!l->bus->freeing) log_warn("redis %s link: %s; reconnecting", l->name, why);
    snprintf(l->bus->last_error, sizeof l->bus->last_error, "redis %s link: %s", l->name, why);
    l->forced = 1; /* already said why */
    redisAsyncFree(ac); /* calls disconnect_cb only if it was connected */
    if (l->ac == ac) link_went_down(l, why);
}

static void link_disconnect_cb(const redisAsyncContext *ac, int status)
{
    bus_link_t *l = link_of(ac);
    if (!l || l->ac != ac) return;
    link_went_down(l, status == REDIS_OK ? "connection closed" : (ac->errstr[0] ? ac->errstr : "error"));
}

static void link_auth_cb(redisAsyncContext *ac, void *r, void *pd)
{
    bus_link_t *l = link_of(ac);
    redisReply *reply = r;
    link_replied(l);
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        log_error("redis %s link: %s refused: %s (check REDIS_URL)", l->name, (const char *)pd, reply->str);
        l->doomed = 1; /* closed by the watchdog, outside this callback */
    }
}

/* AUTH and SELECT go first in the pipeline, then the PING that says Redis
 * is answering this connection. */
static void link_prepare(bus_link_t *l)
{
    const redis_url_t *u = &l->bus->cfg.redis;
    char db[16];
    if (u->password[0]) {
        const char *argv[] = {"AUTH", u->password};
        link_send_any(l, link_auth_cb, (void *)"AUTH", 2, argv, NULL);
    }
    if (u->db) {
        snprintf(db, sizeof db, "%d", u->db);
        const char *argv[] = {"SELECT", db};
        link_send_any(l, link_auth_cb, (void *)"SELECT", 2, argv, NULL);
    }
}

/* Redis answered: only now is anything else sent. A Redis that accepts
 * connections but does not answer (frozen, overloaded) gets nothing but the
 * PING, so a watchdog close never leaves a second copy of the outbox queued
 * on a dead connection that Redis would still read later. */
static void link_hello_cb(redisAsyncContext *ac, void *r, void *pd)
{
    bus_link_t *l = link_of(ac);
    (void)pd;
    if (!l || l->ac != ac) return;
    link_replied(l);
    if (!r || l->doomed || l->state != LINK_HELLO) return;
    l->state = LINK_UP;
    l->since_ms = l->last_progress_ms = clock_mono_ms();
    if (l->attempts > 1) log_info("redis %s link up after %d attempts", l->name, l->attempts);
    l->attempts = 0;
    metric_set(l->m_up, 1);
    if (l->on_up) l->on_up(l->bus);
}

static void link_connect_cb(const redisAsyncContext *ac, int status)
{
    bus_link_t *l = link_of(ac);
    if (status != REDIS_OK) { /* hiredis frees ac after this returns */
        if (l->attempts <= 1 || l->attempts % 20 == 0)
            log_warn("redis %s link: connect failed: %s", l->name, ac->errstr);
        snprintf(l->bus->last_error, sizeof l->bus->last_error, "redis %s link: connect failed: %s",
                 l->name, ac->errstr);
        l->ac = NULL;
        l->state = LINK_DOWN;
        link_schedule_reconnect(l);
        return;
    }
    l->state = LINK_HELLO;
    l->since_ms = l->last_progress_ms = clock_mono_ms();
    link_prepare(l);
    const char *ping[] = {"PING"};
    link_send_any(l, link_hello_cb, NULL, 1, ping, NULL); /* unsent (out of memory): the watchdog closes it */
}

static void link_connect(bus_link_t *l)
{
    const redis_url_t *u = &l->bus->cfg.redis;
    redisAsyncContext *ac = u->unix_path[0] ? redisAsyncConnectUnix(u->unix_path)
                                            : redisAsyncConnect(u->host, u->port);
    metric_inc(l->m_reconnects);
    if (!ac || ac->err) {
        log_warn("redis %s link: %s", l->name, ac ? ac->errstr : "out of memory");
        if (ac) redisAsyncFree(ac);
        link_schedule_reconnect(l);
        return;
    }
    /* hiredis frees its read buffer whenever it is empty and over 16 KB, so a
     * link that reads QT_BATCH entries at a time grew it from nothing, copy by
     * copy, for every reply (a profile had this at 4 % of the engine's CPU).
     * Keep up to BUS_READ_BUF_KEEP of it between replies. */
    ac->c.reader->maxbuf = BUS_READ_BUF_KEEP;
    ac->data = l;
    if (redisLibeventAttach(ac, l->bus->base) != REDIS_OK) {
        redisAsyncFree(ac);
        link_schedule_reconnect(l);
        return;
    }
    redisAsyncSetConnectCallback(ac, link_connect_cb);
    redisAsyncSetDisconnectCallback(ac, link_disconnect_cb);
    l->ac = ac;
    l->state = LINK_CONNECTING;
    l->since_ms = clock_mono_ms();
}

static void link_reconnect_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    bus_link_t *l = arg;
    if (l->state == LINK_DOWN && !l->bus->freeing) link_connect(l);
}

/* hiredis 0.14 has no async timeouts: close a link that hangs. */
static void link_watchdog(bus_link_t *l, int64_t now)
{
    char why[96];
    int64_t limit = l->bus->cfg.redis_timeout_ms;
    if (l->doomed) {
        link_force_close(l, "authentication or database selection failed");
    } else if (l->state == LINK_CONNECTING && now - l->since_ms > limit) {
        snprintf(why, sizeof why, "connect timed out after %lld ms", (long long)(now - l->since_ms));
        link_force_close(l, why);
    } else if (l->state == LINK_HELLO && now - l->since_ms > limit) {
        snprintf(why, sizeof why, "connected, but no answer to PING for %lld ms", (long long)(now - l->since_ms));
        link_force_close(l, why);
    } else if (l->state == LINK_UP && l->inflight > 0 &&
               now - l->last_progress_ms > limit + l->allowance_ms) {
        snprintf(why, sizeof why, "no reply for %lld ms", (long long)(now - l->last_progress_ms));
        link_force_close(l, why);
    }
}

/* The loop was held for ms (a blocking call in a handler or a timer, or the
 * process stopped): that time is not Redis's silence. A command queued
 * before the hold was not even written until the loop ran again, and a reply
 * that came meanwhile is still unread, so the link's clocks move on by ms
 * (never past now); time the loop does run still counts in full. */
static void link_credit(bus_link_t *l, int64_t ms, int64_t now)
{
    l->since_ms = l->since_ms + ms < now ? l->since_ms + ms : now;
    l->last_progress_ms = l->last_progress_ms + ms < now ? l->last_progress_ms + ms : now;
}

static int link_init(bus_t *b, bus_link_t *l, const char *name, void (*up)(bus_t *),
                     void (*down)(bus_t *))
{
    char labels[64];
    l->bus = b;
    l->name = name;
    l->on_up = up;
    l->on_down = down;
    l->reconnect_ev = evtimer_new(b->base, link_reconnect_cb, l);
    snprintf(labels, sizeof labels, "link=\"%s\"", name);
    l->m_reconnects = metrics_counter(b->metrics, "qt_bus_redis_connects_total",
                                      "Connection attempts to Redis", labels);
    l->m_up = metrics_gauge(b->metrics, "qt_bus_redis_link_up", "1 when the Redis link is up", labels);
    return l->reconnect_ev ? 0 : -1;
}

/* ---------- outbox: publishes and DLQ copies, in order, confirmed ---------- */

static uint64_t outbox_floor(const bus_t *b)
{
    return b->out_head ? b->out_head->seq - 1 : b->seq_issued;
}

static int outbox_append(bus_t *b, char *cmd, size_t len, int sub, const char *entry_id, metric_t *m_ok)
{
    bus_out_t *o = calloc(1, sizeof *o);
    if (!o) return -1;
    o->bus = b;
    o->cmd = cmd;
    o->len = len;
    o->seq = ++b->seq_issued;
    o->sub = sub;
    o->m_ok = m_ok;
    if (entry_id) snprintf(o->entry_id, sizeof o->entry_id, "%s", entry_id);
    o->prev = b->out_tail;
    if (b->out_tail) b->out_tail->next = o;
    else b->out_head = o;
    b->out_tail = o;
    if (!b->out_cursor) b->out_cursor = o;
    b->out_count++;
    if (sub >= 0) b->dlq_outstanding++;
    else b->out_pub_count++;
    return 0;
}

static void outbox_unlink(bus_t *b, bus_out_t *o)
{
    if (o->prev) o->prev->next = o->next;
    else b->out_head = o->next;
    if (o->next) o->next->prev = o->prev;
    else b->out_tail = o->prev;
    if (b->out_cursor == o) b->out_cursor = o->next;
    b->out_count--;
    if (o->sub >= 0) b->dlq_outstanding--;
    else b->out_pub_count--;
    redisFreeCommand(o->cmd);
    free(o);
}

static void ack_push(bus_t *b, int sub, const char *id, uint64_t wait_seq);

/* One warning a second at most, however many publishes a refusal hits. */
static void bus_log_refusal(bus_t *b, const char *why)
{
    int64_t now = clock_mono_ms();
    if (now - b->refusal_log_ms < 1000) {
        b->refusals_suppressed++;
        return;
    }
    log_warn("publish refused by Redis, will retry: %s (%ld more not shown)", why, b->refusals_suppressed);
    b->refusal_log_ms = now;
    b->refusals_suppressed = 0;
}

static void outbox_cb(redisAsyncContext *ac, void *r, void *pd)
{
    bus_out_t *o = pd;
    bus_t *b = o->bus;
    redisReply *reply = r;
    link_replied(link_of(ac));
    o->inflight = 0;
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        if (!b->out_cursor || o->seq < b->out_cursor->seq) b->out_cursor = o;
        if (!reply) return; /* link lost: resent after reconnect */
        breaker_record(b->breaker, 0, 0, clock_mono_ms());
        metric_inc(b->m_pub_errors);
        snprintf(b->last_error, sizeof b->last_error, "XADD refused: %.200s", reply->str);
        bus_log_refusal(b, reply->str);
        b->pump_hold_ms = clock_mono_ms() + BUS_ERROR_HOLD_MS;
        return;
    }
    breaker_record(b->breaker, 1, 0, clock_mono_ms());
    metric_inc(o->m_ok);
    if (o->sub >= 0) ack_push(b, o->sub, o->entry_id, 0);
    outbox_unlink(b, o);
    if (!b->freeing) {
        ack_flush(b);
        read_next(b);
    }
}

static void outbox_pump(bus_t *b)
{
    int64_t now = clock_mono_ms();
    if (b->cmd.state != LINK_UP || b->cmd.doomed || now < b->pump_hold_ms) return;
    while (b->out_cursor) {
        bus_out_t *o = b->out_cursor;
        if (!o->inflight) {
            if (!breaker_allow(b->breaker, now)) return;
            if (redisAsyncFormattedCommand(b->cmd.ac, outbox_cb, o, o->cmd, o->len) != REDIS_OK) return;
            link_sent(&b->cmd);
            o->inflight = 1;
        }
        b->out_cursor = o->next;
    }
}

/* ---------- acks: sent once everything published before them is confirmed ---------- */

static void ack_push(bus_t *b, int sub, const char *id, uint64_t wait_seq)
{
    if (b->ack_head + b->ack_len == b->ack_cap) {
        if (b->ack_head > 0) { /* compact */
            memmove(b->acks, b->acks + b->ack_head, b->ack_len * sizeof *b->acks);
            b->ack_head = 0;
        }
        if (b->ack_len == b->ack_cap) {
            size_t cap = b->ack_cap ? b->ack_cap * 2 : 1024;
            bus_ack_t *a = realloc(b->acks, cap * sizeof *a);
            if (!a) { /* left pending in Redis: re-read and handled again later */
                log_error("out of memory queueing an ack for %s", id);
                return;
            }
            b->acks = a;
            b->ack_cap = cap;
        }
    }
    bus_ack_t *a = &b->acks[b->ack_head + b->ack_len++];
    a->sub = sub;
    a->wait_seq = wait_seq;
    snprintf(a->id, sizeof a->id, "%s", id);
}

static void ack_cb(redisAsyncContext *ac, void *r, void *pd)
{
    bus_ackcmd_t *c = pd;
    bus_t *b = c->bus;
    redisReply *reply = r;
    link_replied(link_of(ac));
    b->acks_inflight--;
    if (reply && reply->type != REDIS_REPLY_ERROR) {
        metric_add(b->subs[c->sub].m_acked, (double)c->n);
    } else if (!b->freeing) { /* try again; a lost ack would only mean a redelivery */
        for (size_t i = 0; i < c->n; i++) ack_push(b, c->sub, c->ids[i], 0);
    }
    free(c->ids);
    free(c);
}

/* Send one XACK for up to BUS_ACK_CHUNK ready acks of one stream. */
static int ack_send_chunk(bus_t *b, int sub, size_t *taken)
{
    const char *argv[3 + BUS_ACK_CHUNK];
    bus_ackcmd_t *c = calloc(1, sizeof *c);
    if (!c || !(c->ids = malloc(BUS_ACK_CHUNK * sizeof *c->ids))) {
        free(c);
        return -1;
    }
    c->bus = b;
    c->sub = sub;
    argv[0] = "XACK";
    argv[1] = b->subs[sub].key;
    argv[2] = b->group;
    uint64_t floor = outbox_floor(b);
    size_t i = b->ack_head, end = b->ack_head + b->ack_len;
    for (; i < end && c->n < BUS_ACK_CHUNK && b->acks[i].wait_seq <= floor && b->acks[i].sub == sub; i++) {
        memcpy(c->ids[c->n], b->acks[i].id, BUS_SID_MAX);
        argv[3 + c->n] = c->ids[c->n];
        c->n++;
    }
    if (link_send(&b->cmd, ack_cb, c, 3 + (int)c->n, argv, NULL) < 0) {
        free(c->ids);
        free(c);
        return -1;
    }
    b->acks_inflight++;
    *taken = c->n;
    return 0;
}

static void ack_flush(bus_t *b)
{
    uint64_t floor = outbox_floor(b);
    while (b->ack_len > 0 && b->acks[b->ack_head].wait_seq <= floor) {
        size_t n = 0;
        if (ack_send_chunk(b, b->acks[b->ack_head].sub, &n) < 0) return;
        b->ack_head += n;
        b->ack_len -= n;
    }
    if (b->ack_len == 0) b->ack_head = 0;
}

/* ---------- entry handling ---------- */

static int sub_index(const bus_t *b, const char *key, size_t len)
{
    for (int i = 0; i < b->nsubs; i++)
        if (strlen(b->subs[i].key) == len && memcmp(b->subs[i].key, key, len) == 0) return i;
    return -1;
}

/* Copy the DLQ copy of an entry (every original field plus metadata) into the outbox. */
static void dead_letter(bus_t *b, int si, const char *id, const redisReply *fields, long deliveries,
                        const char *why, const char *trace)
{
    bus_sub_t *s = &b->subs[si];
    size_t nf = fields ? fields->elements : 0, argc = 0;
    const char **argv = malloc((6 + nf + 14) * sizeof *argv);
    size_t *lens = malloc((6 + nf + 14) * sizeof *lens);
    char dl[24], at[24], *cmd = NULL;
    snprintf(dl, sizeof dl, "%ld", deliveries);
    snprintf(at, sizeof at, "%lld", (long long)clock_wall_ms());
    const char *head[] = {"XADD", s->dlq_key, "MAXLEN", "~", b->dlq_maxlen_s, "*"};
    const char *meta[] = {"origin_stream", s->key, "origin_id", id, "group", b->group,
                          "consumer", b->consumer, "deliveries", dl, "error", why, "failed_at", at};
    if (!argv || !lens) goto oom;
    for (size_t i = 0; i < 6; i++) argv[argc] = head[i], lens[argc++] = strlen(head[i]);
    for (size_t i = 0; i < nf; i++) {
        const redisReply *e = fields->element[i];
        int str = e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS;
        argv[argc] = str ? e->str : "";
        lens[argc++] = str ? e->len : 0;
    }
    for (size_t i = 0; i < 14; i++) argv[argc] = meta[i], lens[argc++] = strlen(meta[i]);
    int len = redisFormatCommandArgv(&cmd, (int)argc, argv, lens);
    if (len < 0 || outbox_append(b, cmd, (size_t)len, si, id, s->m_dead) < 0) goto oom;
    free(argv);
    free(lens);
    log_msg(LOG_WARN, trace, "dead-lettered %s entry %s after %ld deliveries: %s", s->key, id, deliveries, why);
    outbox_pump(b);
    return;
oom: /* the entry stays pending and comes back: nothing is lost */
    if (cmd) redisFreeCommand(cmd);
    free(argv);
    free(lens);
    log_error("out of memory dead-lettering %s %s", s->key, id);
}

/* Borrow an entry's field pairs from the reply; -1 with err if malformed. */
static int entry_fields(const redisReply *fr, event_field_t *f, size_t *n, char *err, size_t errlen)
{
    if (fr->type != REDIS_REPLY_ARRAY || fr->elements % 2) {
        snprintf(err, errlen, "entry fields are not name/value pairs");
        return -1;
    }
    if (fr->elements / 2 > EVENT_FIELDS_MAX) {
        snprintf(err, errlen, "entry has %zu fields (max %d)", fr->elements / 2, EVENT_FIELDS_MAX);
        return -1;
    }
    *n = fr->elements / 2;
    for (size_t i = 0; i < *n; i++) {
        const redisReply *k = fr->element[2 * i], *v = fr->element[2 * i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            snprintf(err, errlen, "entry field %zu is not a string", i);
            return -1;
        }
        f[i] = (event_field_t){k->str, k->len, v->str, v->len};
    }
    return 0;
}

static void handle_result(bus_t *b, int si, const char *id, const redisReply *fields, long deliveries,
                          bus_result_t r, const char *err, const char *trace)
{
    bus_sub_t *s = &b->subs[si];
    char why[600];
    if (r == BUS_OK) {
        ack_push(b, si, id, b->seq_issued);
    } else if (r == BUS_DEAD) {
        dead_letter(b, si, id, fields, deliveries, err[0] ? err : "handler refused the event", trace);
    } else if (deliveries >= b->cfg.max_deliveries) {
        snprintf(why, sizeof why, "gave up after %ld deliveries (QT_MAX_DELIVERIES=%ld): %s", deliveries,
                 b->cfg.max_deliveries, err[0] ? err : "handler asked for a retry");
        dead_letter(b, si, id, fields, deliveries, why, trace);
    } else {
        int64_t due = clock_mono_ms() + (b->retry_after_ms > b->cfg.retry_delay_ms ? b->retry_after_ms : b->cfg.retry_delay_ms);
        metric_inc(s->m_retried);
        log_msg(LOG_INFO, trace, "%s entry %s will be retried (delivery %ld): %s", s->key, id, deliveries, err);
        /* one due time per subscription: a later one asked for wins, so no entry comes back too early */
        if (!s->retry_due_ms || (b->retry_after_ms && due > s->retry_due_ms)) s->retry_due_ms = due;
    }
    b->retry_after_ms = 0;
}

void bus_retry_after(bus_t *b, int64_t ms)
{
    if (ms > 0) b->retry_after_ms = ms > BUS_RETRY_AFTER_MAX_MS ? BUS_RETRY_AFTER_MAX_MS : ms;
}

/* Is the entry of a type of the contract this subscription does not take?
 * Then it is acked unread: no JSON parsed, no schema checked. An unknown
 * type or version is not skipped: it goes the decoder's way, to the DLQ. */
static int sub_skips(const bus_sub_t *s, const redisReply *fields)
{
    const char *type = NULL, *v = NULL;
    char tbuf[64];
    if (!s->types || fields->type != REDIS_REPLY_ARRAY) return 0;
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *k = fields->element[i], *val = fields->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING) return 0;
        if (k->len == 4 && memcmp(k->str, "type", 4) == 0) type = val->str;
        if (k->len == 1 && k->str[0] == 'v') v = val->str;
    }
    if (!type || !v || strlen(type) >= sizeof tbuf) return 0;
    for (const char *const *t = s->types; *t; t++)
        if (strcmp(*t, type) == 0) return 0;
    char *end;
    long ver = strtol(v, &end, 10);
    return *end == '\0' && ver > 0 && ver < 1000 && proto_known(type, (int)ver);
}

/* One entry: decode, check deliveries, run the handler, ack / retry / DLQ. */
static void handle_entry(bus_t *b, int si, const char *id, const redisReply *fields, long deliveries)
{
    bus_sub_t *s = &b->subs[si];
    event_field_t f[EVENT_FIELDS_MAX];
    size_t nf = 0;
    char err[512] = "";
    event_t ev;
    if (!fields || fields->type == REDIS_REPLY_NIL) { /* deleted (trimmed) while pending */
        metric_inc(s->m_deleted);
        log_warn("%s entry %s was deleted before it was processed", s->key, id);
        ack_push(b, si, id, 0);
        return;
    }
    metric_inc(s->m_in);
    if (sub_skips(s, fields)) {
        metric_inc(s->m_skipped);
        ack_push(b, si, id, 0);
        return;
    }
    if (entry_fields(fields, f, &nf, err, sizeof err) < 0 || event_decode(&ev, f, nf, err, sizeof err) < 0) {
        dead_letter(b, si, id, fields, deliveries, err, NULL);
        return;
    }
    if (deliveries > b->cfg.max_deliveries) {
        snprintf(err, sizeof err, "delivered %ld times, over QT_MAX_DELIVERIES=%ld (a handler crash loop?)",
                 deliveries, b->cfg.max_deliveries);
        dead_letter(b, si, id, fields, deliveries, err, ev.trace);
        event_clear(&ev);
        return;
    }
    bus_msg_t msg = {s->key, id, &ev, deliveries};
    int64_t t0 = clock_mono_us();
    bus_result_t r = s->fn(s->ud, &msg, err, sizeof err);
    metric_observe(s->m_latency, (double)(clock_mono_us() - t0) / 1e6);
    handle_result(b, si, id, fields, deliveries, r, err, ev.trace);
    event_clear(&ev);
}

/* Look up the delivery count XPENDING gave for id (before this delivery). */
static long scan_count(const bus_sub_t *s, const char *id)
{
    for (size_t i = 0; i < s->scan_n; i++)
        if (strcmp(s->scan_ids[i], id) == 0) return s->scan_counts[i];
    return 0;
}

/* Process one stream's entries from an XREADGROUP reply element [key, [[id, fields]...]]. */
static size_t handle_stream_reply(bus_t *b, const redisReply *sr, int history, char *last_id)
{
    if (sr->type != REDIS_REPLY_ARRAY || sr->elements != 2 || sr->element[0]->type != REDIS_REPLY_STRING)
        return 0;
    int si = sub_index(b, sr->element[0]->str, sr->element[0]->len);
    const redisReply *entries = sr->element[1];
    if (si < 0 || entries->type != REDIS_REPLY_ARRAY) return 0;
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING ||
            e->element[0]->len >= BUS_SID_MAX)
            continue;
        const char *id = e->element[0]->str;
        long d = history ? scan_count(&b->subs[si], id) + 1 : 1;
        handle_entry(b, si, id, e->element[1], d);
        if (last_id) snprintf(last_id, BUS_SID_MAX, "%s", id);
    }
    return entries->elements;
}

/* ---------- reading new entries (read link) ---------- */

static int can_consume(const bus_t *b)
{
    return b->groups_ready && !b->paused && !b->stopping && !b->freeing;
}

/* A read whose reply was lost (the link dropped: a watchdog close, Redis
 * closing it for its output buffer limit, the network) may have delivered
 * entries: Redis put them in our pending list, where only a claim after
 * QT_CLAIM_IDLE_MS would find them, after newer ones (which a consumer that
 * keeps the last bar per symbol takes as making them old). Re-read our
 * pending entries before anything new. */
static void read_lost(bus_t *b)
{
    for (int i = 0; i < b->nsubs; i++) scan_restart(&b->subs[i]);
    b->oldest_first = 1;
}

static void read_cb(redisAsyncContext *ac, void *r, void *pd)
{
    (void)pd;
    bus_t *b = link_of(ac)->bus;
    redisReply *reply = r;
    link_replied(link_of(ac));
    b->reading = 0;
    if (b->freeing) return;
    if (!reply) { /* the link went with this read in flight */
        read_lost(b);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(b->last_error, sizeof b->last_error, "XREADGROUP: %.200s", reply->str);
        log_warn("XREADGROUP failed: %s", reply->str);
        if (strncmp(reply->str, "NOGROUP", 7) == 0) b->groups_ready = 0, b->groups_waiting = 0;
        b->read_hold_ms = clock_mono_ms() + BUS_ERROR_HOLD_MS;
        return;
    }
    /* Ask for the next batch first, so Redis prepares it while this one is handled. */
    int paused = b->paused;
    read_next(b);
    for (size_t i = 0; reply->type == REDIS_REPLY_ARRAY && i < reply->elements; i++) {
        const redisReply *sr = reply->element[i];
        int si = sr->type == REDIS_REPLY_ARRAY && sr->elements == 2
                     ? sub_index(b, sr->element[0]->str, sr->element[0]->len) : -1;
        if (paused && si >= 0) scan_restart(&b->subs[si]); /* left pending; re-read on resume */
        else handle_stream_reply(b, sr, 0, NULL);
    }
    ack_flush(b);
}

/* After a (re)start the entries a dead predecessor on this host left pending,
 * and our own, are handled before new ones: a consumer that keeps state per
 * symbol (the last bar seen) would otherwise skip them as old. */
static int oldest_handled(bus_t *b)
{
    if (!b->oldest_first) return 1;
    if (b->reclaims > 0) return 0;
    for (int i = 0; i < b->nsubs; i++)
        if (b->subs[i].scan_needed) return 0;
    b->oldest_first = 0;
    return 1;
}

static void read_next(bus_t *b)
{
    if (b->reading || b->nsubs == 0 || b->rd.state != LINK_UP || !can_consume(b) || !oldest_handled(b)) return;
    if (clock_mono_ms() < b->read_hold_ms) return;
    if (b->out_pub_count * 2 >= (size_t)b->cfg.outbox_max) return; /* back-pressure */
    if (link_send(&b->rd, read_cb, NULL, b->read_argc, b->read_argv, NULL) == 0) b->reading = 1;
}

/* ---------- re-reading own pending entries (cmd link) ---------- */

static void scan_pending_cb(redisAsyncContext *ac, void *r, void *pd)
{
    bus_t *b = link_of(ac)->bus;
    bus_sub_t *s = &b->subs[(intptr_t)pd];
    redisReply *reply = r;
    link_replied(link_of(ac));
    s->scan_n = 0;
    if (!reply || reply->type != REDIS_REPLY_ARRAY) return;
    for (size_t i = 0; i < reply->elements && s->scan_n < (size_t)b->cfg.batch; i++) {
        const redisReply *e = reply->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 4 || e->element[0]->type != REDIS_REPLY_STRING)
            continue;
        snprintf(s->scan_ids[s->scan_n], BUS_SID_MAX, "%s", e->element[0]->str);
        s->scan_counts[s->scan_n++] = (long)e->element[3]->integer;
    }
}

static void scan_read_cb(redisAsyncContext *ac, void *r, void *pd)
{
    bus_t *b = link_of(ac)->bus;
    int si = (int)(intptr_t)pd;
    bus_sub_t *s = &b->subs[si];
    redisReply *reply = r;
    link_replied(link_of(ac));
    s->scanning = 0;
    if (!reply || b->freeing) return;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0) {
        if (reply->type == REDIS_REPLY_ERROR) log_warn("re-reading pending %s: %s", s->key, reply->str);
        if (reply->type != REDIS_REPLY_ERROR) s->scan_needed = 0;
        else if (strncmp(reply->str, "NOGROUP", 7) == 0) /* the stream went: make the groups again, as read_cb does */
            b->groups_ready = 0, b->groups_waiting = 0;
        read_next(b);
        return;
    }
    char last[BUS_SID_MAX] = "";
    size_t n = handle_stream_reply(b, reply->element[0], 1, last);
    if (n == 0) s->scan_needed = 0;
    else snprintf(s->scan_cursor, sizeof s->scan_cursor, "%s", last);
    ack_flush(b);
    scan_next(b, si);
    read_next(b);
}

/* Waits until no ack or DLQ copy is outstanding, so nothing handled is handled again. */
static void scan_next(bus_t *b, int si)
{
    bus_sub_t *s = &b->subs[si];
    char start[BUS_SID_MAX + 1];
    if (!s->scan_needed || s->scanning || b->cmd.state != LINK_UP || !can_consume(b)) return;
    if (b->ack_len > 0 || b->acks_inflight > 0 || b->dlq_outstanding > 0) return;
    if (strcmp(s->scan_cursor, "0") == 0) snprintf(start, sizeof start, "-");
    else snprintf(start, sizeof start, "(%s", s->scan_cursor);
    const char *pv[] = {"XPENDING", s->key, b->group, start, "+", b->count_s, b->consumer};
    const char *rv[] = {"XREADGROUP", "GROUP", b->group, b->consumer, "COUNT", b->count_s,
                        "STREAMS", s->key, s->scan_cursor};
    if (link_send(&b->cmd, scan_pending_cb, (void *)(intptr_t)si, 7, pv, NULL) < 0) return;
    if (link_send(&b->cmd, scan_read_cb, (void *)(intptr_t)si, 9, rv, NULL) < 0) return;
    s->scanning = 1;
}

static void scan_restart(bus_sub_t *s)
{
    s->scan_needed = 1;
    snprintf(s->scan_cursor, sizeof s->scan_cursor, "0");
}

/* ---------- claiming other consumers' stale entries ---------- */

static void claim_cb(redisAsyncContext *ac, void *r, void *pd)
{
    bus_t *b = link_of(ac)->bus;
    bus_sub_t *s = &b->subs[(intptr_t)pd];
    redisReply *reply = r;
    link_replied(link_of(ac));
    if (!reply || b->freeing) return;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2) {
        if (reply->type == REDIS_REPLY_ERROR) log_warn("XAUTOCLAIM %s: %s", s->key, reply->str);
        return;
    }
    const redisReply *cur = reply->element[0], *ids = reply->element[1];
    if (cur->type == REDIS_REPLY_STRING) snprintf(s->claim_cursor, sizeof s->claim_cursor, "%s", cur->str);
    if (strcmp(s->claim_cursor, "0-0") != 0) s->next_claim_ms = 0; /* more to look at */
    if (ids->type == REDIS_REPLY_ARRAY && ids->elements > 0) {
        metric_add(s->m_claimed, (double)ids->elements);
        log_info("claimed %zu stale entries of %s from other consumers", ids->elements, s->key);
        scan_restart(s);
    }
    if (reply->elements >= 3 && reply->element[2]->type == REDIS_REPLY_ARRAY && reply->element[2]->elements) {
        metric_add(s->m_deleted, (double)reply->element[2]->elements);
        log_warn("%zu pending entries of %s were deleted (trimmed) before processing",
                 reply->element[2]->elements, s->key);
    }
}

static void claim_next(bus_t *b, int si)
{
    bus_sub_t *s = &b->subs[si];
    char idle[24];
    snprintf(idle, sizeof idle, "%ld", b->cfg.claim_idle_ms);
    const char *argv[] = {"XAUTOCLAIM", s->key, b->group, b->consumer, idle, s->claim_cursor,
                          "COUNT", b->count_s, "JUSTID"};
    link_send(&b->cmd, claim_cb, (void *)(intptr_t)si, 9, argv, NULL);
}

/* ---------- dead consumers of this host: their entries come back at once ---------- */

typedef struct bus_reclaim {
    bus_t *bus;
    int sub;
    char consumer[128];
} bus_reclaim_t;

/* Is consumer "<our host>-<pid>" a process that no longer exists? */
static int bus_consumer_dead(const bus_t *b, const char *name)
{
    size_t hl = strlen(b->host);
    if (strncmp(name, b->host, hl) != 0 || name[hl] != '-' || strcmp(name, b->consumer) == 0) return 0;
    char *end;
    long pid = strtol(name + hl + 1, &end, 10);
    return *end == '\0' && pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

static void reclaim_claimed_cb(redisAsyncContext *ac, void *r, void *pd)
{
    bus_reclaim_t *rc = pd;
    redisReply *reply = r;
    link_replied(link_of(ac));
    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 && !rc->bus->freeing) {
        bus_sub_t *s = &rc->bus->subs[rc->sub];
        metric_add(s->m_claimed, (double)reply->elements);
        log_info("took over %zu pending entries of %s from %s, which is no longer running", reply->elements, s->key,
                 rc->consumer);
        scan_restart(s);
    }
    reclaim_done(rc->bus);
    free(rc);
}

/* XPENDING of the dead consumer → XCLAIM them (JUSTID, no delivery counted). */
static void reclaim_pending_cb(redisAsyncContext *ac, void *r, void *pd)
{
    bus_reclaim_t *rc = pd;
    bus_t *b = rc->bus;
    redisReply *reply = r;
    link_replied(link_of(ac));
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements == 0 || b->freeing) {
        reclaim_done(b);
        free(rc);
        return;
    }
    const char **argv = malloc((6 + reply->elements) * sizeof *argv);
    int argc = 0;
    if (!argv) {
        reclaim_done(b);
        free(rc);
        return;
    }
    argv[argc++] = "XCLAIM", argv[argc++] = b->subs[rc->sub].key, argv[argc++] = b->group;
    argv[argc++] = b->consumer, argv[argc++] = "0";
    for (size_t i = 0; i < reply->elements; i++)
        if (reply->element[i]->type == REDIS_REPLY_ARRAY && reply->element[i]->elements >= 1)
            argv[argc++] = reply->element[i]->element[0]->str;
    argv[argc++] = "JUSTID";
    if (link_send(&b->cmd, reclaim_claimed_cb, rc, argc, argv, NULL) < 0) reclaim_done(b), free(rc);
    free(argv);
}

static void reclaim_consumers_cb(redisAsyncContext *ac, void *r, void *pd)
{
    bus_t *b = link_of(ac)->bus;
    int si = (int)(intptr_t)pd;
    redisReply *reply = r;
    link_replied(link_of(ac));
    for (size_t i = 0; reply && reply->type == REDIS_REPLY_ARRAY && i < reply->elements && !b->freeing; i++) {
        const redisReply *c = reply->element[i];
        const char *name = NULL;
        int found;
        if (c->type != REDIS_REPLY_ARRAY) continue;
        for (size_t k = 0; k + 1 < c->elements; k += 2)
            if (c->element[k]->type == REDIS_REPLY_STRING && strcmp(c->element[k]->str, "name") == 0)
                name = c->element[k + 1]->str;
        long long pending = reply_map_int(c, "pending", &found);
        if (!name || !bus_consumer_dead(b, name)) continue;
        if (pending == 0) { /* gone and owing nothing: tidy the group */
            const char *argv[] = {"XGROUP", "DELCONSUMER", b->subs[si].key, b->group, name};
            link_send(&b->cmd, NULL, NULL, 5, argv, NULL);
            continue;
        }
        bus_reclaim_t *rc = calloc(1, sizeof *rc);
        if (!rc) continue;
        rc->bus = b, rc->sub = si;
        snprintf(rc->consumer, sizeof rc->consumer, "%s", name);
        const char *argv[] = {"XPENDING", b->subs[si].key, b->group, "-", "+", b->count_s, rc->consumer};
        if (link_send(&b->cmd, reclaim_pending_cb, rc, 7, argv, NULL) < 0) free(rc);
        else b->reclaims++;
    }
    reclaim_done(b);
}

static void reclaim_dead(bus_t *b, int si)
{
    const char *argv[] = {"XINFO", "CONSUMERS", b->subs[si].key, b->group};
    if (link_send(&b->cmd, reclaim_consumers_cb, (void *)(intptr_t)si, 4, argv, NULL) == 0) b->reclaims++;
}

/* One take-over step ended; new entries may be read once all have. */
static void reclaim_done(bus_t *b)
{
    if (b->reclaims > 0) b->reclaims--;
    if (!b->freeing) read_next(b);
}

/* ---------- group lag ---------- */

static long long reply_map_int(const redisReply *m, const char *key, int *found)
{
    *found = 0;
    for (size_t i = 0; i + 1 < m->elements; i += 2) {
        if (m->element[i]->type != REDIS_REPLY_STRING || strcmp(m->element[i]->str, key) != 0) continue;
        if (m->element[i + 1]->type != REDIS_REPLY_INTEGER) return 0;
        *found = 1;
        return m->element[i + 1]->integer;
    }
    return 0;
}

static void lag_cb(redisAsyncContext *ac, void *r, void *pd)
{
    bus_t *b = link_of(ac)->bus;
    bus_sub_t *s = &b->subs[(intptr_t)pd];
    redisReply *reply = r;
    link_replied(link_of(ac));
    for (size_t i = 0; reply && reply->type == REDIS_REPLY_ARRAY && i < reply->elements; i++) {
        const redisReply *g = reply->element[i];
        if (g->type != REDIS_REPLY_ARRAY || g->elements < 2 || g->element[1]->type != REDIS_REPLY_STRING ||
            strcmp(g->element[1]->str, b->group) != 0)
            continue;
        int f1, f2;
        long long pending = reply_map_int(g, "pending", &f1), lag = reply_map_int(g, "lag", &f2);
        if (f1) s->pending = pending, metric_set(s->m_pending, (double)pending);
        s->lag = f2 ? lag : -1; /* nil: Redis cannot tell after deletions */
        if (f2) metric_set(s->m_lag, (double)lag);
    }
}

/* ---------- groups and link life ---------- */

static void group_cb(redisAsyncContext *ac, void *r, void *pd)
{
    bus_t *b = link_of(ac)->bus;
    bus_sub_t *s = &b->subs[(intptr_t)pd];
    redisReply *reply = r;
    link_replied(link_of(ac));
    if (!reply || b->freeing) return;
    b->groups_waiting--; /* answered, well or badly */
    if (reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "BUSYGROUP", 9) != 0) {
        int loading = strncmp(reply->str, "LOADING", 7) == 0;
        snprintf(b->last_error, sizeof b->last_error, "XGROUP CREATE %s: %.180s", s->key, reply->str);
        if (loading) log_info("Redis is loading its data set; creating group %s on %s shortly", b->group, s->key);
        else log_error("cannot create group %s on %s: %s", b->group, s->key, reply->str);
        b->groups_retry_ms = clock_mono_ms() + (loading ? BUS_ERROR_HOLD_MS : 5000);
        return;
    }
    s->group_ok = 1;
    if (b->groups_waiting > 0) return;
    for (int i = 0; i < b->nsubs; i++)
        if (!b->subs[i].group_ok) return; /* the tick retries after groups_retry_ms */
    b->groups_ready = 1;
    b->oldest_first = 1;
    for (int i = 0; i < b->nsubs; i++) {
        scan_restart(&b->subs[i]);
        scan_next(b, i);
        reclaim_dead(b, i);
    }
    read_next(b);
}

static void groups_create(bus_t *b)
{
    b->groups_ready = b->nsubs == 0;
    b->groups_waiting = 0;
    for (int i = 0; i < b->nsubs; i++) {
        const char *argv[] = {"XGROUP", "CREATE", b->subs[i].key, b->group, "0", "MKSTREAM"};
        b->subs[i].group_ok = 0;
        if (link_send(&b->cmd, group_cb, (void *)(intptr_t)i, 6, argv, NULL) < 0) return;
        b->groups_waiting++;
    }
}

static void cmd_up(bus_t *b)
{
    b->pump_hold_ms = 0;
    groups_create(b);
    outbox_pump(b);
    ack_flush(b);
}

static void cmd_down(bus_t *b)
{
    b->groups_ready = 0;
    b->groups_waiting = 0;
    for (int i = 0; i < b->nsubs; i++) b->subs[i].scanning = 0;
    b->out_cursor = b->out_head; /* everything unconfirmed goes again */
    breaker_record(b->breaker, 0, 0, clock_mono_ms());
}

static void rd_up(bus_t *b) { read_next(b); }
static void rd_down(bus_t *b) { b->reading = 0; }

/* ---------- the tick: watchdog, retries, claims, lag, drain ---------- */

static int bus_drained(const bus_t *b)
{
    int scanning = 0;
    for (int i = 0; i < b->nsubs; i++) scanning |= b->subs[i].scanning;
    return !b->out_head && !b->ack_len && !b->acks_inflight && !b->reading && !scanning;
}

static void bus_tick_sub(bus_t *b, int si, int64_t now)
{
    bus_sub_t *s = &b->subs[si];
    if (s->retry_due_ms && now >= s->retry_due_ms) {
        s->retry_due_ms = 0;
        scan_restart(s);
    }
    scan_next(b, si);
    if (can_consume(b) && now >= s->next_claim_ms) {
        long every = b->cfg.claim_idle_ms / 2;
        s->next_claim_ms = now + (every < 100 ? 100 : every > 15000 ? 15000 : every);
        claim_next(b, si);
        reclaim_dead(b, si);
    }
    if (now >= s->next_lag_ms) {
        const char *argv[] = {"XINFO", "GROUPS", s->key};
        s->next_lag_ms = now + BUS_LAG_EVERY_MS;
        link_send(&b->cmd, lag_cb, (void *)(intptr_t)si, 3, argv, NULL);
    }
}

static void bus_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    bus_t *b = arg;
    int64_t now = clock_mono_ms(), held = now - b->last_tick_ms - BUS_TICK_MS;
    b->last_tick_ms = now;
    if (held > BUS_HELD_MS) link_credit(&b->cmd, held, now), link_credit(&b->rd, held, now);
    link_watchdog(&b->cmd, now);
    link_watchdog(&b->rd, now);
    metric_set(b->m_outbox, (double)b->out_count);
    metric_set(b->m_breaker, (double)breaker_state(b->breaker, now));
    if (b->cmd.state == LINK_UP) {
        if (!b->groups_ready && b->groups_waiting == 0 && now >= b->groups_retry_ms) groups_create(b);
        outbox_pump(b);
        ack_flush(b);
        for (int i = 0; i < b->nsubs; i++) bus_tick_sub(b, i, now);
    }
    read_next(b);
    if (b->stopping && !b->stopped && (bus_drained(b) || now >= b->stop_deadline_ms)) {
        if (!bus_drained(b))
            log_warn("drain limit reached with %zu publishes and %zu acks outstanding; "
                     "unacked entries will be delivered again", b->out_count, b->ack_len);
        b->stopped = 1;
        if (b->stop_done) b->stop_done(b->stop_ud);
    }
}

/* ---------- public API ---------- */

void bus_key(const bus_t *b, const char *name, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s:%s", b->cfg.ns, name);
}

static int bus_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= 64) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
              name[i] == '.' || name[i] == '_' || name[i] == '-'))
            return 0;
    return 1;
}

static int bus_init_metrics(bus_t *b)
{
    b->m_outbox = metrics_gauge(b->metrics, "qt_bus_outbox_size", "Publishes waiting for Redis", NULL);
    b->m_pub_errors = metrics_counter(b->metrics, "qt_bus_publish_errors_total",
                                      "Publishes Redis answered with an error", NULL);
    b->m_refused = metrics_counter(b->metrics, "qt_bus_publish_refused_total",
                                   "Publishes refused because the outbox was full", NULL);
    b->m_breaker = metrics_gauge(b->metrics, "qt_breaker_state",
                                 "Circuit breaker state: 0 closed, 1 open, 2 half-open",
                                 "breaker=\"redis-publish\"");
    return 0;
}

bus_t *bus_new(struct event_base *base, const qt_config_t *cfg, metrics_t *metrics, char *err, size_t errlen)
{
    breaker_config_t bc;
    bus_t *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    b->base = base;
    b->cfg = *cfg;
    b->metrics = metrics;
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    snprintf(b->group, sizeof b->group, "%s", cfg->service);
    snprintf(b->consumer, sizeof b->consumer, "%s-%ld", host, (long)getpid());
    snprintf(b->host, sizeof b->host, "%s", host);
    snprintf(b->count_s, sizeof b->count_s, "%ld", cfg->batch);
    snprintf(b->block_s, sizeof b->block_s, "%ld", cfg->block_ms);
    snprintf(b->maxlen_s, sizeof b->maxlen_s, "%ld", cfg->stream_maxlen);
    snprintf(b->dlq_maxlen_s, sizeof b->dlq_maxlen_s, "%ld", cfg->dlq_maxlen);
    breaker_config_default(&bc);
    bc.open_wait_ms = 2000; /* Redis comes back fast; do not sit out 30 s */
    if (breaker_config_env(&bc, "QT_REDIS_BREAKER", err, errlen) < 0) goto fail;
    b->breaker = breaker_new("redis-publish", &bc);
    b->tick_ev = event_new(base, -1, EV_PERSIST, bus_tick, b);
    if (!b->breaker || !b->tick_ev || bus_init_metrics(b) < 0 ||
        link_init(b, &b->cmd, "cmd", cmd_up, cmd_down) < 0 ||
        link_init(b, &b->rd, "read", rd_up, rd_down) < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    b->rd.allowance_ms = cfg->block_ms;
    return b;
fail:
    bus_free(b);
    return NULL;
}

static int sub_init_metrics(bus_t *b, bus_sub_t *s)
{
    char l[256];
    snprintf(l, sizeof l, "stream=\"%s\",group=\"%s\"", s->key, b->group);
    s->m_in = metrics_counter(b->metrics, "qt_bus_events_in_total", "Entries delivered to this service", l);
    s->m_acked = metrics_counter(b->metrics, "qt_bus_events_acked_total", "Entries acknowledged", l);
    s->m_dead = metrics_counter(b->metrics, "qt_bus_events_dead_total", "Entries moved to the DLQ", l);
    s->m_skipped = metrics_counter(b->metrics, "qt_bus_events_skipped_total",
                                   "Entries of types this service does not take, acked unread", l);
    s->m_retried = metrics_counter(b->metrics, "qt_bus_events_retried_total", "Handler retries", l);
    s->m_claimed = metrics_counter(b->metrics, "qt_bus_events_claimed_total", "Entries claimed from stale consumers", l);
    s->m_deleted = metrics_counter(b->metrics, "qt_bus_events_deleted_total", "Pending entries found deleted", l);
    s->m_lag = metrics_gauge(b->metrics, "qt_bus_group_lag", "Entries not yet delivered to the group", l);
    s->m_pending = metrics_gauge(b->metrics, "qt_bus_group_pending", "Entries delivered, not acked", l);
    s->m_latency = metrics_histogram(b->metrics, "qt_bus_handler_seconds", "Handler latency", l, NULL, 0);
    return 0;
}

int bus_subscribe_types(bus_t *b, const char *name, const char *const *types, bus_handler_fn fn, void *ud)
{
    if (bus_subscribe(b, name, fn, ud) < 0) return -1;
    b->subs[b->nsubs - 1].types = types;
    return 0;
}

int bus_subscribe(bus_t *b, const char *name, bus_handler_fn fn, void *ud)
{
    if (b->started || b->nsubs == BUS_MAX_SUBS || !bus_name_ok(name) || !fn) return -1;
    bus_sub_t *s = &b->subs[b->nsubs];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    bus_key(b, name, s->key, sizeof s->key);
    snprintf(s->dlq_key, sizeof s->dlq_key, "%s:%s:dlq", b->cfg.ns, name);
    snprintf(s->claim_cursor, sizeof s->claim_cursor, "0-0");
    s->fn = fn;
    s->ud = ud;
    s->lag = -1;
    s->scan_ids = calloc((size_t)b->cfg.batch, sizeof *s->scan_ids);
    s->scan_counts = calloc((size_t)b->cfg.batch, sizeof *s->scan_counts);
    if (!s->scan_ids || !s->scan_counts) {
        free(s->scan_ids);
        free(s->scan_counts);
        return -1;
    }
    scan_restart(s);
    sub_init_metrics(b, s);
    b->nsubs++;
    return 0;
}

/* XREADGROUP GROUP g c COUNT n BLOCK ms STREAMS k1..kn > .. > */
static int bus_build_read(bus_t *b)
{
    int n = 9 + 2 * b->nsubs;
    b->read_argv = calloc((size_t)n, sizeof *b->read_argv);
    if (!b->read_argv) return -1;
    const char *head[] = {"XREADGROUP", "GROUP", b->group, b->consumer, "COUNT", b->count_s,
                          "BLOCK", b->block_s, "STREAMS"};
    for (int i = 0; i < 9; i++) b->read_argv[i] = head[i];
    for (int i = 0; i < b->nsubs; i++) {
        b->read_argv[9 + i] = b->subs[i].key;
        b->read_argv[9 + b->nsubs + i] = ">";
    }
    b->read_argc = n;
    return 0;
}

int bus_start(bus_t *b)
{
    if (b->started) return 0;
    if (bus_build_read(b) < 0) return -1;
    b->started = 1;
    struct timeval tv = {0, BUS_TICK_MS * 1000};
    event_add(b->tick_ev, &tv);
    b->last_tick_ms = clock_mono_ms(); /* a hold before the first tick counts too */
    link_connect(&b->cmd);
    if (b->nsubs > 0) link_connect(&b->rd);
    return 0;
}

static bus_pub_t *bus_pub(bus_t *b, const char *name)
{
    for (int i = 0; i < b->npubs; i++)
        if (strcmp(b->pubs[i].name, name) == 0) return &b->pubs[i];
    if (b->npubs == BUS_MAX_PUBS || !bus_name_ok(name)) return NULL;
    bus_pub_t *p = &b->pubs[b->npubs++];
    char l[200];
    snprintf(p->name, sizeof p->name, "%s", name);
    bus_key(b, name, p->key, sizeof p->key);
    snprintf(l, sizeof l, "stream=\"%s\"", p->key);
    p->m_out = metrics_counter(b->metrics, "qt_bus_events_published_total", "Events confirmed by Redis", l);
    return p;
}

int bus_publish(bus_t *b, const char *name, const event_t *ev, char *err, size_t errlen)
{
    bus_pub_t *p = bus_pub(b, name);
    event_field_t f[EVENT_ENVELOPE_FIELDS];
    event_numbuf_t nb;
    const char *argv[6 + 2 * EVENT_ENVELOPE_FIELDS] = {"XADD", NULL, "MAXLEN", "~", b->maxlen_s, "*"};
    size_t lens[6 + 2 * EVENT_ENVELOPE_FIELDS];
    char *cmd = NULL;
    if (!p) {
        snprintf(err, errlen, "stream name '%.64s' is not valid", name);
        return -1;
    }
    if (b->out_pub_count >= (size_t)b->cfg.outbox_max) {
        metric_inc(b->m_refused);
        snprintf(err, errlen, "outbox full: %zu events wait for Redis (QT_OUTBOX_MAX)", b->out_pub_count);
        return -1;
    }
    char *data = event_data_json(ev);
    if (!data) {
        snprintf(err, errlen, "out of memory encoding %s", ev->type);
        return -1;
    }
    argv[1] = p->key;
    for (int i = 0; i < 6; i++) lens[i] = strlen(argv[i]);
    event_to_fields(ev, data, f, &nb);
    for (int i = 0; i < EVENT_ENVELOPE_FIELDS; i++) {
        argv[6 + 2 * i] = f[i].name, lens[6 + 2 * i] = f[i].name_len;
        argv[7 + 2 * i] = f[i].val, lens[7 + 2 * i] = f[i].val_len;
    }
    int len = redisFormatCommandArgv(&cmd, 6 + 2 * EVENT_ENVELOPE_FIELDS, argv, lens);
    free(data);
    if (len < 0 || outbox_append(b, cmd, (size_t)len, -1, NULL, p->m_out) < 0) {
        if (cmd) redisFreeCommand(cmd);
        snprintf(err, errlen, "out of memory queueing %s", ev->type);
        return -1;
    }
    outbox_pump(b);
    return 0;
}

typedef struct bus_call {
    bus_reply_fn fn;
    void *ud;
} bus_call_t;

static void bus_call_cb(redisAsyncContext *ac, void *r, void *pd)
{
    bus_call_t *c = pd;
    link_replied(link_of(ac));
    if (c->fn) c->fn(c->ud, link_of(ac)->bus->freeing ? NULL : r); /* always called: ud may own memory */
    free(c);
}

int bus_redis(bus_t *b, bus_reply_fn fn, void *ud, int argc, const char **argv, const size_t *lens)
{
    bus_call_t *c = malloc(sizeof *c);
    if (!c) return -1;
    c->fn = fn;
    c->ud = ud;
    if (link_send(&b->cmd, bus_call_cb, c, argc, argv, lens) < 0) {
        free(c);
        return -1;
    }
    return 0;
}

void bus_pause(bus_t *b, const char *reason)
{
    if (!b->paused) log_warn("consumption paused: %s", reason);
    b->paused = 1;
    snprintf(b->pause_reason, sizeof b->pause_reason, "%s", reason);
}

void bus_resume(bus_t *b)
{
    if (b->paused) log_info("consumption resumed");
    b->paused = 0;
    b->pause_reason[0] = '\0';
    read_next(b);
}

void bus_stop(bus_t *b, void (*done)(void *ud), void *ud)
{
    if (b->stopping) return;
    b->stopping = 1;
    b->stop_done = done;
    b->stop_ud = ud;
    b->stop_deadline_ms = clock_mono_ms() + b->cfg.drain_ms;
    log_info("draining: %zu publishes and %zu acks outstanding", b->out_count, b->ack_len);
    if (!b->started) {
        b->stopped = 1;
        if (done) done(ud);
    }
}

void bus_free(bus_t *b)
{
    if (!b) return;
    b->freeing = 1;
    if (b->cmd.ac) redisAsyncFree(b->cmd.ac);
    if (b->rd.ac) redisAsyncFree(b->rd.ac);
    while (b->out_head) outbox_unlink(b, b->out_head);
    for (int i = 0; i < b->nsubs; i++) {
        free(b->subs[i].scan_ids);
        free(b->subs[i].scan_counts);
    }
    if (b->cmd.reconnect_ev) event_free(b->cmd.reconnect_ev);
    if (b->rd.reconnect_ev) event_free(b->rd.reconnect_ev);
    if (b->tick_ev) event_free(b->tick_ev);
    breaker_free(b->breaker);
    free(b->acks);
    free(b->read_argv);
    free(b);
}

int bus_ready(const bus_t *b, char *why, size_t whylen)
{
    if (b->cmd.state != LINK_UP) snprintf(why, whylen, "redis command link is down: %s", b->last_error);
    else if (b->nsubs && b->rd.state != LINK_UP) snprintf(why, whylen, "redis read link is down: %s", b->last_error);
    else if (!b->groups_ready) snprintf(why, whylen, "consumer groups not ready: %s", b->last_error);
    else if (b->breaker && breaker_state(b->breaker, clock_mono_ms()) == BREAKER_OPEN)
        snprintf(why, whylen, "redis-publish breaker is open: %s", b->last_error);
    else if (b->out_pub_count >= (size_t)b->cfg.outbox_max) snprintf(why, whylen, "outbox is full");
    else return 1;
    return 0;
}

static const char *link_state_name(link_state_t s)
{
    return s == LINK_UP ? "up" : s == LINK_CONNECTING || s == LINK_HELLO ? "connecting" : "down";
}

json_t *bus_status(const bus_t *b)
{
    json_t *streams = json_array();
    for (int i = 0; i < b->nsubs; i++) {
        const bus_sub_t *s = &b->subs[i];
        json_array_append_new(streams, json_pack("{s:s, s:s, s:I, s:I, s:f, s:f, s:f, s:f}",
            "stream", s->key, "group", b->group, "lag", (json_int_t)s->lag, "pending", (json_int_t)s->pending,
            "in", metric_value(s->m_in), "acked", metric_value(s->m_acked), "dead", metric_value(s->m_dead),
            "retried", metric_value(s->m_retried)));
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:b, s:s?, s:s, s:o}",
        "group", b->group, "consumer", b->consumer,
        "cmd_link", link_state_name(b->cmd.state), "read_link", link_state_name(b->rd.state),
        "outbox", (json_int_t)b->out_count,
        "publish_breaker", breaker_state_name(breaker_state(b->breaker, clock_mono_ms())),
        "paused", b->paused, "pause_reason", b->paused ? b->pause_reason : NULL,
        "last_error", b->last_error, "streams", streams);
}

size_t bus_outbox_size(const bus_t *b) { return b->out_count; }
int bus_outbox_sent(const bus_t *b) { return b->out_cursor == NULL && b->cmd.state == LINK_UP; }
breaker_t *bus_breaker(const bus_t *b) { return b->breaker; }
