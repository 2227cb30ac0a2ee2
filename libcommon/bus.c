/* bus.c — Redis Streams bus on hiredis async + libevent (see bus.h). */
#include "bus.h"
#include "ckpt.h"
#include "dlq.h"
#include "keys.h"
#include "outbox.h"
#include "proto.h"
#include "rsync.h"
#include "redislink.h"
#include "clock.h"
#include "log.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUS_MAX_SUBS 64  /* 4 streams × QT_PARTITIONS_MAX */
#define BUS_MAX_PUBS 128
#define BUS_TICK_MS 100
#define BUS_HELD_MS 200 /* a tick this much late: the loop (or the process) was held */
#define BUS_ACK_CHUNK 512
#define BUS_LAG_EVERY_MS 5000
#define BUS_ERROR_HOLD_MS 500
#define BUS_SID_MAX 48 /* "<ms>-<seq>" fits in 41 */

typedef struct bus_sub {
    char name[64], key[160], dlq_key[168];
    int part; /* the symbol partition this stream is (keys.h), -1 for an unpartitioned one */
    int off;  /* a partition whose new entries this replica does not read (bus_lease_parts) */
    int gone; /* ... nor its pending ones: not held at all (not re-read, retried or claimed) */
    int taking; /* its previous holder's pending entries are being claimed: read once done */
    /* an unpartitioned stream of a bus whose replicas share the partitions
     * (bus_lease_parts): every replica reads all of it, without a group
     * (XREAD from bc_last), for a view that must be whole in each (policy) */
    int bcast, bc_inflight;
    char bc_last[BUS_SID_MAX];
    unsigned off_gen; /* the read arguments' generation that left it out */
    bus_handler_fn fn;
    void *ud;
    const char *const *types; /* NULL: every type; else the types the handler takes (NULL-terminated) */
    int scan_needed, scanning, group_ok;
    int sweep; /* a reply was too large: dead-letter oversized pending entries, re-read the rest one by one */
    char scan_cursor[BUS_SID_MAX], claim_cursor[BUS_SID_MAX];
    char (*scan_ids)[BUS_SID_MAX]; /* from XPENDING, for delivery counts */
    long *scan_counts;
    size_t scan_n;
    int64_t retry_due_ms, next_claim_ms, next_lag_ms;
    long long lag, pending;
    char done_id[BUS_SID_MAX];  /* the newest entry handled (acked, dead-lettered or skipped): a checkpoint's tag */
    char covered[BUS_SID_MAX];  /* from the restored checkpoint: pending entries up to it are already applied */
    metric_t *m_in, *m_acked, *m_dead, *m_retried, *m_claimed, *m_deleted, *m_lag, *m_pending, *m_latency, *m_skipped;
} bus_sub_t;

typedef struct bus_pub {
    char name[64], key[160];
    int part;
    metric_t *m_out;
} bus_pub_t;

struct bus_pending {
    struct bus_pending *next;
    int si;
    char id[BUS_SID_MAX];
    long deliveries;
    char trace[EVENT_ID_MAX + 1];
    redisReply *fields; /* a copy, for a dead letter */
};

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
    rlink_t cmd, rd;
    bus_sub_t subs[BUS_MAX_SUBS];
    int nsubs;
    bus_pub_t pubs[BUS_MAX_PUBS];
    int npubs;
    event_enc_t enc; /* the text of the entry being queued, kept for the next */
    outbox_t ob; /* publishes and DLQ copies until confirmed, and the acks that wait for them */
    int reclaims;      /* take-overs of dead consumers' entries under way */
    int claims;        /* XAUTOCLAIMs in flight */
    int oldest_first;  /* (re)started: read new entries only once those and our own pending are handled */
    size_t acks_inflight;
    bus_pending_t *deferred; /* entries handlers finish later */
    size_t ndeferred;
    /* the entry whose handler runs now, for bus_defer() */
    int cur_si;
    const char *cur_id, *cur_trace;
    const redisReply *cur_fields;
    long cur_deliveries;
    bus_pending_t *cur_token;
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
    int read_argc, read_nsubs; /* streams in the read: those not off */
    unsigned read_gen, reading_gen; /* generation of read_argv, and of the read in flight */
    int leased; /* partitions are taken by lease (bus_lease_parts) */
    char count_s[24], block_s[24], maxlen_s[24], dlq_maxlen_s[24];
    void (*stop_done)(void *);
    void *stop_ud;
    int64_t stop_deadline_ms;
    /* state kept across restarts (ckpt.h) */
    const ckpt_ops_t *st_ops;
    void *st_ud;
    char st_key[200];
    int replaying, ckpt_inflight;
    long handled_since;
    int64_t next_ckpt_ms;
    metric_t *m_ckpt, *m_ckpt_bytes, *m_covered;
};

static void read_next(bus_t *b);
static bus_t *bus_of(const redisAsyncContext *ac) { return rlink_of(ac)->ud; }
static void scan_next(bus_t *b, int si);
static void ack_flush(bus_t *b);
static void outbox_pump(bus_t *b);
static void reclaim_done(bus_t *b);
static void groups_create(bus_t *b);
static void scan_restart(bus_sub_t *s);
static void bus_oversized(bus_t *b, rlink_t *l);
static void take_send(bus_t *b, int si);
static long long reply_map_int(const redisReply *m, const char *key, int *found);

/* ---------- outbox: publishes and DLQ copies, in order, confirmed ---------- */

/* Queue an ack of sub's entry id after wait_seq (see outbox.h). */
static void ack_push(bus_t *b, int sub, const char *id, uint64_t wait_seq)
{
    if (outbox_ack(&b->ob, sub, id, wait_seq) < 0) /* left pending in Redis: re-read and handled again later */
        log_error("out of memory queueing an ack for %s", id);
}

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
    outbox_item_t *o = pd;
    bus_t *b = o->owner;
    redisReply *reply = r;
    rlink_replied(rlink_of(ac));
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        outbox_failed(&b->ob, o);
        if (!reply) return; /* link lost: resent after reconnect */
        breaker_record(b->breaker, 0, 0, clock_mono_ms());
        metric_inc(b->m_pub_errors);
        snprintf(b->last_error, sizeof b->last_error, "XADD refused: %.200s", reply->str);
        bus_log_refusal(b, reply->str);
        b->pump_hold_ms = clock_mono_ms() + BUS_ERROR_HOLD_MS;
        return;
    }
    breaker_record(b->breaker, 1, 0, clock_mono_ms());
    metric_inc(o->tag);
    outbox_confirmed(&b->ob, o);
    if (!b->freeing) {
        ack_flush(b);
        read_next(b);
    }
}

static void outbox_pump(bus_t *b)
{
    int64_t now = clock_mono_ms();
    outbox_item_t *o;
    if (!rlink_up(&b->cmd) || now < b->pump_hold_ms) return;
    while ((o = outbox_cursor(&b->ob))) {
        if (!o->inflight) {
            if (!breaker_allow(b->breaker, now)) return;
            if (rlink_send_formatted(&b->cmd, outbox_cb, o, o->cmd, o->len) < 0) return;
            o->inflight = 1;
        }
        outbox_advance(&b->ob);
    }
}

/* ---------- acks: sent once everything published before them is confirmed ---------- */

static void ack_cb(redisAsyncContext *ac, void *r, void *pd)
{
    bus_ackcmd_t *c = pd;
    bus_t *b = c->bus;
    redisReply *reply = r;
    rlink_replied(rlink_of(ac));
    b->acks_inflight--;
    if (reply && reply->type != REDIS_REPLY_ERROR) {
        metric_add(b->subs[c->sub].m_acked, (double)c->n);
    } else if (!b->freeing) { /* try again; a lost ack would only mean a redelivery */
        for (size_t i = 0; i < c->n; i++) ack_push(b, c->sub, c->ids[i], 0);
    }
    free(c->ids);
    free(c);
}

/* Send one XACK for the ready acks at the head of the queue (up to
 * BUS_ACK_CHUNK, one stream): 0, or -1 when it cannot go now. */
static int ack_send_chunk(bus_t *b)
{
    const char *argv[3 + BUS_ACK_CHUNK];
    const outbox_ack_t *first;
    int sub;
    size_t n = outbox_acks_ready(&b->ob, BUS_ACK_CHUNK, &sub, &first);
    if (n == 0) return -1;
    bus_ackcmd_t *c = calloc(1, sizeof *c);
    if (!c || !(c->ids = malloc(n * sizeof *c->ids))) {
        free(c);
        return -1;
    }
    c->bus = b;
    c->sub = sub;
    argv[0] = "XACK";
    argv[1] = b->subs[sub].key;
    argv[2] = b->group;
    for (; c->n < n; c->n++) {
        memcpy(c->ids[c->n], first[c->n].id, BUS_SID_MAX);
        argv[3 + c->n] = c->ids[c->n];
    }
    if (rlink_send(&b->cmd, ack_cb, c, 3 + (int)c->n, argv, NULL) < 0) {
        free(c->ids);
        free(c);
        return -1;
    }
    b->acks_inflight++;
    outbox_acks_taken(&b->ob, n);
    return 0;
}

static void ack_flush(bus_t *b)
{
    while (ack_send_chunk(b) == 0) {
    }
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
    const char **argv = malloc((6 + nf + 2 * DLQ_META_FIELDS) * sizeof *argv);
    size_t *lens = malloc((6 + nf + 2 * DLQ_META_FIELDS) * sizeof *lens);
    char dl[24], at[24], *cmd = NULL;
    snprintf(dl, sizeof dl, "%ld", deliveries);
    snprintf(at, sizeof at, "%lld", (long long)clock_wall_ms());
    const char *head[] = {"XADD", s->dlq_key, "MAXLEN", "~", b->dlq_maxlen_s, "*"};
    const char *meta[2 * DLQ_META_FIELDS];
    dlq_meta_fields(&(dlq_meta_t){s->key, id, b->group, b->consumer, dl, why, at}, meta);
    if (!argv || !lens) goto oom;
    for (size_t i = 0; i < 6; i++) argv[argc] = head[i], lens[argc++] = strlen(head[i]);
    for (size_t i = 0; i < nf; i++) {
        const redisReply *e = fields->element[i];
        int str = e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS;
        argv[argc] = str ? e->str : "";
        lens[argc++] = str ? e->len : 0;
    }
    for (size_t i = 0; i < 2 * DLQ_META_FIELDS; i++) argv[argc] = meta[i], lens[argc++] = strlen(meta[i]);
    int len = redisFormatCommandArgv(&cmd, (int)argc, argv, lens);
    if (len < 0 || outbox_append(&b->ob, cmd, (size_t)len, si, id, s->m_dead) < 0) goto oom;
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

/* An entry larger than QT_MAX_ENTRY_BYTES that still fitted in a read. */
static int entry_size_ok(const bus_t *b, const event_field_t *f, size_t n, char *err, size_t errlen)
{
    size_t size = 0;
    for (size_t i = 0; i < n; i++) size += f[i].name_len + f[i].val_len;
    if (size <= (size_t)b->cfg.max_entry_bytes) return 0;
    snprintf(err, errlen, "entry of %zu bytes is larger than QT_MAX_ENTRY_BYTES=%ld", size, b->cfg.max_entry_bytes);
    return -1;
}

/* Entry id of sub si is done with (acked, dead-lettered, skipped): the
 * newest such is the stream's tag in the next checkpoint. */
static void sub_done(bus_t *b, int si, const char *id)
{
    if (!b->st_ops) return; /* nothing to checkpoint: off the hot path */
    bus_sub_t *s = &b->subs[si];
    if (!s->done_id[0] || ckpt_id_cmp(id, s->done_id) > 0) snprintf(s->done_id, sizeof s->done_id, "%s", id);
    b->handled_since++;
}

/* An entry's fields decoded and validated into ev (the caller clears it): 0,
 * or -1 with the reason a first delivery dead-letters it for. */
static int entry_decode(const bus_t *b, const redisReply *fields, event_t *ev, char *err, size_t errlen)
{
    event_field_t f[EVENT_FIELDS_MAX];
    size_t nf = 0;
    return entry_fields(fields, f, &nf, err, errlen) < 0 || entry_size_ok(b, f, nf, err, errlen) < 0 ||
                   event_decode(ev, f, nf, err, errlen) < 0
               ? -1
               : 0;
}

static void handle_result(bus_t *b, int si, const char *id, const redisReply *fields, long deliveries,
                          bus_result_t r, const char *err, const char *trace)
{
    bus_sub_t *s = &b->subs[si];
    char why[600];
    if (r != BUS_RETRY || deliveries >= b->cfg.max_deliveries) sub_done(b, si, id);
    if (r == BUS_OK) {
        ack_push(b, si, id, outbox_issued(&b->ob));
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
    return *end == '\0' && ver > 0 && ver < 1000 && proto_known(type, event_schema_version((int)ver));
}

/* One entry: decode, check deliveries, run the handler, ack / retry / DLQ. */
static int bus_is_deferred(const bus_t *b, int si, const char *id);

static void handle_entry(bus_t *b, int si, const char *id, const redisReply *fields, long deliveries)
{
    bus_sub_t *s = &b->subs[si];
    char err[512] = "";
    event_t ev;
    if (bus_is_deferred(b, si, id)) return; /* its handler is still at it */
    if (s->covered[0] && ckpt_id_cmp(id, s->covered) <= 0) { /* applied before the checkpoint we restored */
        metric_inc(b->m_covered);
        ack_push(b, si, id, 0);
        return;
    }
    if (!fields || fields->type == REDIS_REPLY_NIL) { /* deleted (trimmed) while pending */
        metric_inc(s->m_deleted);
        log_warn("%s entry %s was deleted before it was processed", s->key, id);
        ack_push(b, si, id, 0);
        sub_done(b, si, id);
        return;
    }
    metric_inc(s->m_in);
    if (sub_skips(s, fields)) {
        metric_inc(s->m_skipped);
        ack_push(b, si, id, 0);
        sub_done(b, si, id);
        return;
    }
    if (entry_decode(b, fields, &ev, err, sizeof err) < 0) {
        dead_letter(b, si, id, fields, deliveries, err, NULL);
        sub_done(b, si, id);
        return;
    }
    if (deliveries > b->cfg.max_deliveries) {
        snprintf(err, sizeof err, "delivered %ld times, over QT_MAX_DELIVERIES=%ld (a handler crash loop?)",
                 deliveries, b->cfg.max_deliveries);
        dead_letter(b, si, id, fields, deliveries, err, ev.trace);
        sub_done(b, si, id);
        event_clear(&ev);
        return;
    }
    bus_msg_t msg = {s->key, id, &ev, deliveries};
    int64_t t0 = clock_mono_us();
    b->cur_si = si, b->cur_id = id, b->cur_trace = ev.trace, b->cur_fields = fields, b->cur_deliveries = deliveries;
    b->cur_token = NULL;
    bus_result_t r = s->fn(s->ud, &msg, err, sizeof err);
    bus_pending_t *token = b->cur_token;
    b->cur_id = NULL, b->cur_token = NULL;
    metric_observe(s->m_latency, (double)(clock_mono_us() - t0) / 1e6);
    if (r == BUS_LATER && !token) {
        r = BUS_RETRY;
        snprintf(err, sizeof err, "the handler said later without bus_defer() (a bug)");
    } else if (r != BUS_LATER && token) {
        log_error("%s entry %s: the handler deferred it and returned at once (a bug)", s->key, id);
    }
    if (r != BUS_LATER) handle_result(b, si, id, fields, deliveries, r, err, ev.trace);
    event_clear(&ev);
}

static int bus_is_deferred(const bus_t *b, int si, const char *id)
{
    for (const bus_pending_t *p = b->deferred; p; p = p->next)
        if (p->si == si && strcmp(p->id, id) == 0) return 1;
    return 0;
}

/* A deep copy of a reply (freeReplyObject frees it); NULL when out of memory. */
static redisReply *reply_copy(const redisReply *r)
{
    redisReply *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->type = r->type, c->integer = r->integer;
    if (r->str && (c->str = malloc(r->len + 1))) memcpy(c->str, r->str, r->len), c->str[r->len] = '\0', c->len = r->len;
    if (r->str && !c->str) goto oom;
    if (r->elements && !(c->element = calloc(r->elements, sizeof *c->element))) goto oom;
    for (size_t i = 0; i < r->elements; i++, c->elements = i)
        if (!(c->element[i] = reply_copy(r->element[i]))) goto oom;
    return c;
oom:
    freeReplyObject(c);
    return NULL;
}

bus_pending_t *bus_defer(bus_t *b)
{
    if (b->replaying) return NULL;
    if (!b->cur_id || b->cur_token) return b->cur_token;
    bus_pending_t *p = calloc(1, sizeof *p);
    if (!p || !(p->fields = reply_copy(b->cur_fields))) {
        free(p);
        return NULL;
    }
    p->si = b->cur_si, p->deliveries = b->cur_deliveries;
    snprintf(p->id, sizeof p->id, "%s", b->cur_id);
    snprintf(p->trace, sizeof p->trace, "%s", b->cur_trace ? b->cur_trace : "");
    p->next = b->deferred;
    b->deferred = p;
    b->ndeferred++;
    b->cur_token = p;
    return p;
}

void bus_finish(bus_t *b, bus_pending_t *p, bus_result_t r, const char *err)
{
    bus_pending_t **pp = &b->deferred;
    while (*pp && *pp != p) pp = &(*pp)->next;
    if (*pp) *pp = p->next, b->ndeferred--;
    if (r == BUS_LATER) r = BUS_RETRY;
    handle_result(b, p->si, p->id, p->fields, p->deliveries, r, err ? err : "", p->trace[0] ? p->trace : NULL);
    freeReplyObject(p->fields);
    free(p);
    if (!b->freeing) {
        ack_flush(b);
        read_next(b);
    }
}

size_t bus_deferred(const bus_t *b) { return b->ndeferred; }

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
    bus_t *b = bus_of(ac);
    redisReply *reply = r;
    rlink_replied(rlink_of(ac));
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
        if (b->subs[i].scan_needed && !b->subs[i].gone) return 0;
    b->oldest_first = 0;
    return 1;
}

static void read_next(bus_t *b)
{
    if (b->reading || b->read_nsubs == 0 || b->rd.state != RLINK_UP || !can_consume(b) || !oldest_handled(b)) return;
    if (clock_mono_ms() < b->read_hold_ms) return;
    if (b->ob.pubs * 2 >= (size_t)b->cfg.outbox_max) return; /* back-pressure */
    if (rlink_send(&b->rd, read_cb, NULL, b->read_argc, b->read_argv, NULL) == 0) b->reading = 1, b->reading_gen = b->read_gen;
}

/* ---------- re-reading own pending entries (cmd link) ---------- */

static void scan_pending_cb(redisAsyncContext *ac, void *r, void *pd)
{
    bus_t *b = bus_of(ac);
    bus_sub_t *s = &b->subs[(intptr_t)pd];
    redisReply *reply = r;
    rlink_replied(rlink_of(ac));
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
    bus_t *b = bus_of(ac);
    int si = (int)(intptr_t)pd;
    bus_sub_t *s = &b->subs[si];
    redisReply *reply = r;
    rlink_replied(rlink_of(ac));
    s->scanning = 0;
    if (!reply || b->freeing) return;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0) {
        if (reply->type == REDIS_REPLY_ERROR) log_warn("re-reading pending %s: %s", s->key, reply->str);
        if (reply->type != REDIS_REPLY_ERROR) s->scan_needed = 0, s->sweep = 0;
        else if (strncmp(reply->str, "NOGROUP", 7) == 0) /* the stream went: make the groups again, as read_cb does */
            b->groups_ready = 0, b->groups_waiting = 0;
        read_next(b);
        return;
    }
    char last[BUS_SID_MAX] = "";
    size_t n = handle_stream_reply(b, reply->element[0], 1, last);
    if (n == 0) s->scan_needed = 0, s->sweep = 0;
    else snprintf(s->scan_cursor, sizeof s->scan_cursor, "%s", last);
    ack_flush(b);
    scan_next(b, si);
    read_next(b);
}

/* Where XPENDING starts for the pending entries after the scan cursor. */
static void scan_start(const bus_sub_t *s, char start[BUS_SID_MAX + 1])
{
    if (strcmp(s->scan_cursor, "0") == 0) snprintf(start, BUS_SID_MAX + 1, "-");
    else snprintf(start, BUS_SID_MAX + 1, "(%s", s->scan_cursor);
}

/* The next count of our pending entries after the scan cursor, with their
 * delivery counts. */
static void scan_send(bus_t *b, int si, const char *count)
{
    bus_sub_t *s = &b->subs[si];
    char start[BUS_SID_MAX + 1];
    scan_start(s, start);
    const char *pv[] = {"XPENDING", s->key, b->group, start, "+", count, b->consumer};
    const char *rv[] = {"XREADGROUP", "GROUP", b->group, b->consumer, "COUNT", count,
                        "STREAMS", s->key, s->scan_cursor};
    if (rlink_send(&b->cmd, scan_pending_cb, (void *)(intptr_t)si, 7, pv, NULL) < 0) return;
    if (rlink_send(&b->cmd, scan_read_cb, (void *)(intptr_t)si, 9, rv, NULL) < 0) return;
    s->scanning = 1;
}

/* After a reply too large to read (see redislink.c), our pending entries are
 * looked at in Redis before any is read again: from the scan cursor on, each
 * entry larger than QT_MAX_ENTRY_BYTES is dead-lettered there and acked —
 * its fields of more than SWEEP_KEEP bytes replaced by a note of their size,
 * so neither we nor a `qtctl dlq show` ever loads it whole — until the first
 * entry that is small enough, which the scan then reads alone. A bounded
 * number per call; "more" asks to call again. Returns {more, id, size, ...}. */
#define SWEEP_KEEP 256
#define SWEEP_CAP 64
static const char sweep_lua[] =
    "local key, dlq, group, consumer = KEYS[1], KEYS[2], ARGV[1], ARGV[2]\n"
    "local maxe, keep, cap, start = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]\n"
    "local out, dead = {0}, 0\n"
    "while true do\n"
    "  local pend = redis.call('XPENDING', key, group, start, '+', 16, consumer)\n"
    "  if #pend == 0 then return out end\n"
    "  for _, p in ipairs(pend) do\n"
    "    local r = redis.call('XRANGE', key, p[1], p[1])\n"
    "    if #r == 1 then\n"
    "      local f, size = r[1][2], 0\n"
    "      for i = 1, #f do size = size + #f[i] end\n"
    "      if size <= maxe then return out end\n"
    "      if dead >= cap then out[1] = 1 return out end\n"
    "      local a = {'XADD', dlq, 'MAXLEN', '~', ARGV[7], '*'}\n"
    "      for i = 1, math.min(#f, 64), 2 do\n"
    "        a[#a + 1] = string.sub(f[i], 1, keep)\n"
    "        local v = f[i + 1] or ''\n"
    "        if #v <= keep then a[#a + 1] = v else a[#a + 1] = '(not kept: ' .. #v .. ' bytes)' end\n"
    "      end\n"
    "      local why = 'entry of ' .. size .. ' bytes is larger than QT_MAX_ENTRY_BYTES=' .. maxe ..\n"
    "        ' (dead-lettered unread; fields over ' .. keep .. ' bytes not kept)'\n"
    "      local meta = {key, p[1], group, consumer, tostring(p[4]), why, ARGV[8]}\n"
    "      for i = 1, 7 do a[#a + 1] = ARGV[8 + i]; a[#a + 1] = meta[i] end\n"
    "      redis.call(unpack(a))\n"
    "      redis.call('XACK', key, group, p[1])\n"
    "      dead = dead + 1\n"
    "      out[#out + 1] = p[1]; out[#out + 1] = size\n"
    "    end\n"
    "    start = '(' .. p[1]\n"
    "  end\n"
    "end\n";

static void sweep_cb(redisAsyncContext *ac, void *r, void *pd)
{
    bus_t *b = bus_of(ac);
    int si = (int)(intptr_t)pd;
    bus_sub_t *s = &b->subs[si];
    redisReply *reply = r;
    rlink_replied(rlink_of(ac));
    s->scanning = 0;
    if (!reply || b->freeing) return;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1) {
        log_warn("looking for oversized pending entries of %s: %s", s->key,
                 reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
        b->read_hold_ms = clock_mono_ms() + BUS_ERROR_HOLD_MS;
        return; /* the tick tries again */
    }
    for (size_t i = 1; i + 1 < reply->elements; i += 2) {
        metric_inc(s->m_dead);
        log_warn("dead-lettered %s entry %s unread: %lld bytes, over QT_MAX_ENTRY_BYTES=%ld", s->key,
                 reply->element[i]->str ? reply->element[i]->str : "?", reply->element[i + 1]->integer,
                 b->cfg.max_entry_bytes);
    }
    if (reply->element[0]->integer) scan_next(b, si); /* more to look at */
    else scan_send(b, si, "1");
}

static void sweep_send(bus_t *b, int si)
{
    bus_sub_t *s = &b->subs[si];
    char start[BUS_SID_MAX + 1], maxe[24], keep[24], cap[24], at[24];
    const char *meta[2 * DLQ_META_FIELDS];
    scan_start(s, start);
    snprintf(maxe, sizeof maxe, "%ld", b->cfg.max_entry_bytes);
    snprintf(keep, sizeof keep, "%d", SWEEP_KEEP);
    snprintf(cap, sizeof cap, "%d", SWEEP_CAP);
    snprintf(at, sizeof at, "%lld", (long long)clock_wall_ms());
    dlq_meta_fields(&(dlq_meta_t){"", "", "", "", "", "", ""}, meta);
    const char *argv[] = {"EVAL", sweep_lua, "2", s->key, s->dlq_key, b->group, b->consumer, maxe, keep, cap, start,
                          b->dlq_maxlen_s, at, meta[0], meta[2], meta[4], meta[6], meta[8], meta[10], meta[12]};
    if (rlink_send(&b->cmd, sweep_cb, (void *)(intptr_t)si, (int)(sizeof argv / sizeof argv[0]), argv, NULL) == 0)
        s->scanning = 1;
}

/* Waits until no ack or DLQ copy is outstanding, so nothing handled is handled again. */
static void scan_next(bus_t *b, int si)
{
    bus_sub_t *s = &b->subs[si];
    if (!s->scan_needed || s->scanning || s->gone || b->cmd.state != RLINK_UP || !can_consume(b)) return;
    if (b->ob.ack_len > 0 || b->acks_inflight > 0 || b->ob.dlqs > 0) return;
    if (s->sweep) sweep_send(b, si);
    else scan_send(b, si, b->count_s);
}

static void scan_restart(bus_sub_t *s)
{
    s->scan_needed = 1;
    snprintf(s->scan_cursor, sizeof s->scan_cursor, "0");
}

/* ---------- claiming other consumers' stale entries ---------- */

static void claim_cb(redisAsyncContext *ac, void *r, void *pd)
{
    bus_t *b = bus_of(ac);
    bus_sub_t *s = &b->subs[(intptr_t)pd];
    redisReply *reply = r;
    rlink_replied(rlink_of(ac));
    if (b->claims > 0) b->claims--;
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
    if (s->gone) return;
    snprintf(idle, sizeof idle, "%ld", b->cfg.claim_idle_ms);
    const char *argv[] = {"XAUTOCLAIM", s->key, b->group, b->consumer, idle, s->claim_cursor,
                          "COUNT", b->count_s, "JUSTID"};
    if (rlink_send(&b->cmd, claim_cb, (void *)(intptr_t)si, 9, argv, NULL) == 0) b->claims++;
}

/* ---------- dead consumers of this host: their entries come back at once ---------- */

typedef struct bus_reclaim {
    bus_t *bus;
    int sub;
    char consumer[128];
} bus_reclaim_t;

/* Is consumer "<our host>-<pid>" a process that no longer exists? */
int bus_consumer_gone(const bus_t *b, const char *name)
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
    rlink_replied(rlink_of(ac));
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
    rlink_replied(rlink_of(ac));
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
    if (rlink_send(&b->cmd, reclaim_claimed_cb, rc, argc, argv, NULL) < 0) reclaim_done(b), free(rc);
    free(argv);
}

static void reclaim_consumers_cb(redisAsyncContext *ac, void *r, void *pd)
{
    bus_t *b = bus_of(ac);
    int si = (int)(intptr_t)pd;
    redisReply *reply = r;
    rlink_replied(rlink_of(ac));
    for (size_t i = 0; reply && reply->type == REDIS_REPLY_ARRAY && i < reply->elements && !b->freeing; i++) {
        const redisReply *c = reply->element[i];
        const char *name = NULL;
        int found;
        if (c->type != REDIS_REPLY_ARRAY) continue;
        for (size_t k = 0; k + 1 < c->elements; k += 2)
            if (c->element[k]->type == REDIS_REPLY_STRING && strcmp(c->element[k]->str, "name") == 0)
                name = c->element[k + 1]->str;
        long long pending = reply_map_int(c, "pending", &found);
        if (!name || !bus_consumer_gone(b, name)) continue;
        if (pending == 0) { /* gone and owing nothing: tidy the group */
            const char *argv[] = {"XGROUP", "DELCONSUMER", b->subs[si].key, b->group, name};
            rlink_send(&b->cmd, NULL, NULL, 5, argv, NULL);
            continue;
        }
        bus_reclaim_t *rc = calloc(1, sizeof *rc);
        if (!rc) continue;
        rc->bus = b, rc->sub = si;
        snprintf(rc->consumer, sizeof rc->consumer, "%s", name);
        const char *argv[] = {"XPENDING", b->subs[si].key, b->group, "-", "+", b->count_s, rc->consumer};
        if (rlink_send(&b->cmd, reclaim_pending_cb, rc, 7, argv, NULL) < 0) free(rc);
        else b->reclaims++;
    }
    reclaim_done(b);
}

static void reclaim_dead(bus_t *b, int si)
{
    if (b->subs[si].gone) return;
    const char *argv[] = {"XINFO", "CONSUMERS", b->subs[si].key, b->group};
    if (rlink_send(&b->cmd, reclaim_consumers_cb, (void *)(intptr_t)si, 4, argv, NULL) == 0) b->reclaims++;
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
    bus_t *b = bus_of(ac);
    bus_sub_t *s = &b->subs[(intptr_t)pd];
    redisReply *reply = r;
    rlink_replied(rlink_of(ac));
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
    bus_t *b = bus_of(ac);
    bus_sub_t *s = &b->subs[(intptr_t)pd];
    redisReply *reply = r;
    rlink_replied(rlink_of(ac));
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
        b->subs[i].group_ok = b->subs[i].bcast; /* read without a group */
        if (b->subs[i].bcast) continue;
        if (rlink_send(&b->cmd, group_cb, (void *)(intptr_t)i, 6, argv, NULL) < 0) return;
        b->groups_waiting++;
    }
    if (b->groups_waiting == 0) b->groups_ready = 1;
}

static void cmd_up(void *ud)
{
    bus_t *b = ud;
    b->pump_hold_ms = 0;
    groups_create(b);
    outbox_pump(b);
    ack_flush(b);
}

static void cmd_down(void *ud)
{
    bus_t *b = ud;
    b->groups_ready = 0;
    b->groups_waiting = 0;
    for (int i = 0; i < b->nsubs; i++) {
        b->subs[i].scanning = 0;
        if (b->subs[i].taking) b->subs[i].taking = 2; /* sent again once the link is back */
    }
    b->claims = 0, b->ckpt_inflight = 0; /* their callbacks came with NULL */
    bus_oversized(b, &b->cmd);
    outbox_rewind(&b->ob); /* everything unconfirmed goes again */
    breaker_record(b->breaker, 0, 0, clock_mono_ms());
}

/* A link closed on a reply over QT_MAX_READ_BYTES: the entries behind it are
 * in our pending lists (a read) or still there (a re-read); which stream held
 * them is not known, so every stream's pending entries are swept first. */
static void bus_oversized(bus_t *b, rlink_t *l)
{
    if (!l->oversized) return;
    l->oversized = 0;
    for (int i = 0; i < b->nsubs; i++) {
        b->subs[i].sweep = 1;
        scan_restart(&b->subs[i]);
    }
    b->oldest_first = 1;
}

static void rd_up(void *ud) { read_next(ud); }
static void rd_down(void *ud)
{
    bus_t *b = ud;
    b->reading = 0;
    bus_oversized(b, &b->rd);
}

/* ---------- checkpoints of a service's state (ckpt.h) ---------- */

/* Is every entry given to a handler done with, none waiting to be re-read
 * or claimed, and everything published sent ahead of what is sent now? Then
 * a checkpoint sent now covers exactly the entries up to each done_id. */
static int bus_settled(const bus_t *b)
{
    if (b->cmd.state != RLINK_UP || !b->groups_ready || outbox_cursor(&b->ob) || b->deferred || b->reclaims > 0 ||
        b->claims > 0 || b->replaying)
        return 0;
    for (int i = 0; i < b->nsubs; i++)
        if (b->subs[i].taking || b->subs[i].scanning || ((b->subs[i].scan_needed || b->subs[i].retry_due_ms) && !b->subs[i].gone))
            return 0;
    return 1;
}

static void ckpt_cb(redisAsyncContext *ac, void *r, void *pd)
{
    bus_t *b = bus_of(ac);
    redisReply *reply = r;
    (void)pd;
    rlink_replied(rlink_of(ac));
    if (b->ckpt_inflight > 0) b->ckpt_inflight--;
    if (reply && reply->type == REDIS_REPLY_ERROR) log_warn("checkpoint not written: %s", reply->str);
    else if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 0)
        log_info("checkpoint of partition p%d not written: its lease is no longer ours", (int)(intptr_t)pd);
    else if (reply) metric_inc(b->m_ckpt);
}

/* A partition's checkpoint is written only while our lease on it stands: a
 * replica that just lost it never overwrites its new holder's. KEYS: the
 * checkpoint, the lease. ARGV: the checkpoint, us. */
static const char ckpt_part_lua[] =
    "if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end\n"
    "redis.call('SET', KEYS[1], ARGV[1])\n"
    "return 1\n";

void bus_state_part_key(const bus_t *b, int part, char *out, size_t len)
{
    if (b->cfg.partitions <= 1) snprintf(out, len, "%s", b->st_key);
    else snprintf(out, len, "%s:p%d", b->st_key, part);
}

/* Partition part's checkpoint (the state of its symbols, the tags of its
 * streams) sent: 1, or 0 when it could not be. */
static int ckpt_part_send(bus_t *b, int part)
{
    const char *keys[BUS_MAX_SUBS], *ids[BUS_MAX_SUBS];
    char *state = NULL, *text, skey[220], lkey[220];
    size_t slen = 0, len;
    int n = 0;
    for (int i = 0; i < b->nsubs; i++)
        if (b->subs[i].part == part) keys[n] = b->subs[i].key, ids[n++] = b->subs[i].done_id[0] ? b->subs[i].done_id : "0";
    if (b->st_ops->save_part(b->st_ud, part, &state, &slen) < 0 ||
        !(text = ckpt_encode(b->st_ops->format, clock_wall_ms(), n, keys, ids, state, slen, &len))) {
        free(state);
        log_error("out of memory writing the checkpoint of partition p%d; trying again in %ld ms", part, b->cfg.checkpoint_ms);
        return 0;
    }
    free(state);
    bus_state_part_key(b, part, skey, sizeof skey);
    proto_lease_key(lkey, sizeof lkey, b->cfg.ns, b->cfg.service, part);
    const char *argv[] = {"EVAL", ckpt_part_lua, "2", skey, lkey, text, b->consumer};
    size_t lens[] = {4, strlen(ckpt_part_lua), 1, strlen(skey), strlen(lkey), len, strlen(b->consumer)};
    int ok = rlink_send(&b->cmd, ckpt_cb, (void *)(intptr_t)part, 7, argv, lens) == 0;
    if (ok) b->ckpt_inflight++, metric_set(b->m_ckpt_bytes, (double)len);
    free(text);
    return ok;
}

/* Write the state and each stream's tag when settled and something changed. */
static void bus_checkpoint(bus_t *b, int64_t now, int force)
{
    if (!b->st_ops || b->handled_since == 0 || b->ckpt_inflight || !bus_settled(b)) return;
    if (!force && now < b->next_ckpt_ms) return;
    if (bus_state_parted(b)) { /* one per partition held (none released or lost) */
        int held[QT_PARTITIONS_MAX] = {0}, nheld = 0, sent = 0;
        for (int i = 0; i < b->nsubs; i++)
            if (b->subs[i].part >= 0 && b->subs[i].part < QT_PARTITIONS_MAX && !b->subs[i].gone) held[b->subs[i].part] = 1;
        for (int k = 0; k < QT_PARTITIONS_MAX; k++) nheld += held[k], sent += held[k] && ckpt_part_send(b, k);
        if (sent == nheld) b->handled_since = 0; /* none held: nothing is owed (the holders write theirs) */
        b->next_ckpt_ms = now + b->cfg.checkpoint_ms;
        return;
    }
    const char *keys[BUS_MAX_SUBS], *ids[BUS_MAX_SUBS];
    char *state = NULL, *text;
    size_t slen = 0, len;
    for (int i = 0; i < b->nsubs; i++) keys[i] = b->subs[i].key, ids[i] = b->subs[i].done_id[0] ? b->subs[i].done_id : "0";
    if (b->st_ops->save(b->st_ud, &state, &slen) < 0 ||
        !(text = ckpt_encode(b->st_ops->format, clock_wall_ms(), b->nsubs, keys, ids, state, slen, &len))) {
        free(state);
        log_error("out of memory writing the checkpoint; trying again in %ld ms", b->cfg.checkpoint_ms);
        b->next_ckpt_ms = now + b->cfg.checkpoint_ms;
        return;
    }
    free(state);
    const char *argv[] = {"SET", b->st_key, text};
    size_t lens[] = {3, strlen(b->st_key), len};
    if (rlink_send(&b->cmd, ckpt_cb, NULL, 3, argv, lens) == 0) {
        b->ckpt_inflight = 1, b->handled_since = 0;
        metric_set(b->m_ckpt_bytes, (double)len);
    }
    b->next_ckpt_ms = now + b->cfg.checkpoint_ms;
    free(text);
}

void bus_part_checkpoint(bus_t *b, int part)
{
    if (bus_state_parted(b) && b->handled_since && bus_settled(b)) ckpt_part_send(b, part);
}

int bus_keep_state(bus_t *b, const ckpt_ops_t *ops, void *ud)
{
    if (b->started || !ops || !ops->format) return -1;
    int parted = ops->save_part && ops->load_part && ops->drop_part && ops->gap_part;
    if ((ops->save_part || ops->load_part || ops->drop_part || ops->gap_part) && !parted) return -1; /* all four or none */
    if (parted ? !b->leased : (!ops->save || !ops->load)) return -1; /* parted: after bus_lease_parts() */
    b->st_ops = ops, b->st_ud = ud;
    proto_key(b->st_key, sizeof b->st_key, b->cfg.ns, QT_KEY_STATE_PREFIX);
    size_t n = strlen(b->st_key);
    snprintf(b->st_key + n, sizeof b->st_key - n, "%s", b->group);
    b->m_ckpt = metrics_counter(b->metrics, "qt_state_checkpoints_total", "State checkpoints written", NULL);
    b->m_ckpt_bytes = metrics_gauge(b->metrics, "qt_state_checkpoint_bytes", "Size of the last checkpoint", NULL);
    b->m_covered = metrics_counter(b->metrics, "qt_state_covered_total",
                                   "Pending entries acked unhandled: the restored checkpoint had applied them", NULL);
    return 0;
}

const ckpt_ops_t *bus_state_ops(const bus_t *b, void **ud)
{
    if (ud) *ud = b->st_ud;
    return b->st_ops;
}

const char *bus_state_key(const bus_t *b) { return b->st_key; }
int bus_replaying(const bus_t *b) { return b->replaying; }
int bus_sub_count(const bus_t *b) { return b->nsubs; }
const char *bus_sub_key(const bus_t *b, int si) { return si >= 0 && si < b->nsubs ? b->subs[si].key : NULL; }
int bus_sub_part(const bus_t *b, int si) { return si >= 0 && si < b->nsubs ? b->subs[si].part : -1; }
int bus_state_parted(const bus_t *b) { return b->leased && b->st_ops && b->st_ops->save_part; }
const char *bus_group(const bus_t *b) { return b->group; }
const char *bus_consumer(const bus_t *b) { return b->consumer; }

void bus_sub_restored(bus_t *b, int si, const char *covered, const char *done)
{
    if (si < 0 || si >= b->nsubs) return;
    snprintf(b->subs[si].covered, BUS_SID_MAX, "%s", strcmp(covered, "0") ? covered : "");
    if (done && (!b->subs[si].done_id[0] || ckpt_id_cmp(done, b->subs[si].done_id) > 0))
        snprintf(b->subs[si].done_id, BUS_SID_MAX, "%s", done);
}

int bus_replay(bus_t *b, int si, const char *id, const struct redisReply *fields)
{
    char err[512] = "";
    event_t ev;
    if (si < 0 || si >= b->nsubs || !fields) return 0;
    bus_sub_t *s = &b->subs[si];
    if (sub_skips(s, fields) || entry_decode(b, fields, &ev, err, sizeof err) < 0)
        return 0; /* skipped, or dead-lettered, the first time */
    bus_msg_t msg = {s->key, id, &ev, 1};
    b->replaying = 1;
    s->fn(s->ud, &msg, err, sizeof err);
    b->replaying = 0;
    event_clear(&ev);
    return 1;
}

/* ---------- the tick: watchdog, retries, claims, lag, drain ---------- */

static int bus_drained(const bus_t *b)
{
    int scanning = 0;
    for (int i = 0; i < b->nsubs; i++) scanning |= b->subs[i].scanning;
    return !b->ob.head && !b->ob.ack_len && !b->acks_inflight && !b->reading && !scanning && !b->deferred &&
           !b->ckpt_inflight;
}

/* XREAD of a broadcast stream (bcast) after bc_last: every entry to the
 * handler, in order; nothing is acked (no group) and an entry that does not
 * decode is logged and passed over (its writer's other readers dead-letter
 * it). */
static void bcast_next(bus_t *b, int si);

static void bcast_cb(redisAsyncContext *ac, void *r, void *pd)
{
    bus_t *b = bus_of(ac);
    int si = (int)(intptr_t)pd;
    bus_sub_t *s = &b->subs[si];
    redisReply *reply = r;
    rlink_replied(rlink_of(ac));
    s->bc_inflight = 0;
    if (!reply || b->freeing) return;
    if (reply->type == REDIS_REPLY_ERROR) {
        int64_t now = clock_mono_ms();
        if (now - b->refusal_log_ms >= 1000) log_warn("reading %s: XREAD: %s", s->key, reply->str), b->refusal_log_ms = now;
        return;
    }
    size_t n = 0;
    const redisReply *en = reply->type == REDIS_REPLY_ARRAY && reply->elements == 1 &&
                                   reply->element[0]->type == REDIS_REPLY_ARRAY && reply->element[0]->elements == 2
                               ? reply->element[0]->element[1]
                               : NULL;
    for (size_t i = 0; en && en->type == REDIS_REPLY_ARRAY && i < en->elements; i++, n++) {
        const redisReply *e = en->element[i];
        char err[512] = "";
        event_t ev;
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING) break;
        const char *id = e->element[0]->str;
        snprintf(s->bc_last, sizeof s->bc_last, "%s", id);
        if (sub_skips(s, e->element[1])) continue;
        if (entry_decode(b, e->element[1], &ev, err, sizeof err) < 0) {
            log_warn("%s entry %s passed over: %s", s->key, id, err);
            continue;
        }
        bus_msg_t msg = {s->key, id, &ev, 1};
        metric_inc(s->m_in);
        s->fn(s->ud, &msg, err, sizeof err);
        event_clear(&ev);
    }
    if (n > 0 && n >= (size_t)b->cfg.batch) bcast_next(b, si); /* more behind */
}

static void bcast_next(bus_t *b, int si)
{
    bus_sub_t *s = &b->subs[si];
    if (s->bc_inflight || b->cmd.state != RLINK_UP || b->paused || b->stopping || b->freeing) return;
    const char *argv[] = {"XREAD", "COUNT", b->count_s, "STREAMS", s->key, s->bc_last};
    if (rlink_send(&b->cmd, bcast_cb, (void *)(intptr_t)si, 6, argv, NULL) == 0) s->bc_inflight = 1;
}

static void bus_tick_sub(bus_t *b, int si, int64_t now)
{
    bus_sub_t *s = &b->subs[si];
    if (s->bcast) {
        bcast_next(b, si);
        return;
    }
    if (s->taking == 2 && b->groups_ready) take_send(b, si);
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
        rlink_send(&b->cmd, lag_cb, (void *)(intptr_t)si, 3, argv, NULL);
    }
}

static void bus_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    bus_t *b = arg;
    int64_t now = clock_mono_ms(), held = now - b->last_tick_ms - BUS_TICK_MS;
    b->last_tick_ms = now;
    if (held > BUS_HELD_MS) rlink_credit(&b->cmd, held, now), rlink_credit(&b->rd, held, now);
    rlink_watchdog(&b->cmd, now);
    rlink_watchdog(&b->rd, now);
    metric_set(b->m_outbox, (double)b->ob.count);
    metric_set(b->m_breaker, (double)breaker_state(b->breaker, now));
    if (b->cmd.state == RLINK_UP) {
        if (!b->groups_ready && b->groups_waiting == 0 && now >= b->groups_retry_ms) groups_create(b);
        outbox_pump(b);
        ack_flush(b);
        for (int i = 0; i < b->nsubs; i++) bus_tick_sub(b, i, now);
        bus_checkpoint(b, now, b->stopping && bus_drained(b));
    }
    read_next(b);
    int ckpt_owed = b->stopping && b->st_ops && b->handled_since && bus_settled(b); /* the last one, before we go */
    if (b->stopping && !b->stopped && ((bus_drained(b) && !ckpt_owed) || now >= b->stop_deadline_ms)) {
        if (!bus_drained(b))
            log_warn("drain limit reached with %zu publishes and %zu acks outstanding; "
                     "unacked entries will be delivered again", b->ob.count, b->ob.ack_len);
        b->stopped = 1, b->cmd.no_reconnect = 1;
        if (b->stop_done) b->stop_done(b->stop_ud);
    }
}

/* ---------- public API ---------- */

void bus_key(const bus_t *b, const char *name, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s:%s", b->cfg.ns, name);
}

const qt_config_t *bus_cfg(const bus_t *b) { return &b->cfg; }

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
    bus_t *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    b->base = base;
    b->cfg = *cfg;
    b->metrics = metrics;
    b->ob.owner = b;
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
    b->breaker = breaker_new("redis-publish", &cfg->redis_breaker);
    b->tick_ev = event_new(base, -1, EV_PERSIST, bus_tick, b);
    if (!b->breaker || !b->tick_ev || bus_init_metrics(b) < 0 ||
        rlink_init(&b->cmd, base, "cmd", &b->cfg.redis, b->cfg.redis_timeout_ms, metrics, b->last_error,
                   sizeof b->last_error, cmd_up, cmd_down, b) < 0 ||
        rlink_init(&b->rd, base, "read", &b->cfg.redis, b->cfg.redis_timeout_ms, metrics, b->last_error,
                   sizeof b->last_error, rd_up, rd_down, b) < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    b->rd.allowance_ms = cfg->block_ms;
    b->rd.max_reply_bytes = b->cmd.max_reply_bytes = (size_t)cfg->max_read_bytes;
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

/* How many streams subscribing to name reads: one per partition (with one
 * partition, the stream of today's name is partition 0). */
static int bus_parts(const bus_t *b, const char *name)
{
    return proto_partitioned(name) ? (int)b->cfg.partitions : 1;
}

int bus_subscribe_types(bus_t *b, const char *name, const char *const *types, bus_handler_fn fn, void *ud)
{
    if (bus_subscribe(b, name, fn, ud) < 0) return -1;
    for (int k = 1; k <= bus_parts(b, name); k++) b->subs[b->nsubs - k].types = types;
    return 0;
}

static int bus_sub_add(bus_t *b, const char *name, int part, bus_handler_fn fn, void *ud);

int bus_subscribe(bus_t *b, const char *name, bus_handler_fn fn, void *ud)
{
    int parts = bus_parts(b, name);
    if (b->started || b->nsubs + parts > BUS_MAX_SUBS || !bus_name_ok(name) || !fn) return -1;
    for (int k = 0; k < parts; k++)
        if (bus_sub_add(b, name, proto_partitioned(name) ? k : -1, fn, ud) < 0) return -1;
    return 0;
}

static int bus_sub_add(bus_t *b, const char *name, int part, bus_handler_fn fn, void *ud)
{
    bus_sub_t *s = &b->subs[b->nsubs];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->part = part;
    char key[sizeof s->key];
    proto_part_key(key, sizeof key, b->cfg.ns, name, (int)b->cfg.partitions, part);
    snprintf(s->key, sizeof s->key, "%s", key);
    snprintf(s->dlq_key, sizeof s->dlq_key, "%s%s", key, QT_DLQ_SUFFIX);
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

/* XREADGROUP GROUP g c COUNT n BLOCK ms STREAMS k1..kn > .. > over the
 * streams not off; built at start and whenever a partition comes or goes. */
static int bus_build_read(bus_t *b)
{
    int m = 0;
    for (int i = 0; i < b->nsubs; i++) m += !b->subs[i].off;
    if (!b->read_argv && !(b->read_argv = calloc((size_t)(9 + 2 * b->nsubs), sizeof *b->read_argv))) return -1;
    const char *head[] = {"XREADGROUP", "GROUP", b->group, b->consumer, "COUNT", b->count_s,
                          "BLOCK", b->block_s, "STREAMS"};
    for (int i = 0; i < 9; i++) b->read_argv[i] = head[i];
    for (int i = 0, j = 0; i < b->nsubs; i++) {
        if (b->subs[i].off) continue;
        b->read_argv[9 + j] = b->subs[i].key;
        b->read_argv[9 + m + j++] = ">";
    }
    b->read_argc = 9 + 2 * m, b->read_nsubs = m;
    b->read_gen++;
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
    rlink_connect(&b->cmd);
    if (b->nsubs > 0) rlink_connect(&b->rd);
    return 0;
}

/* ---------- partitions taken by lease (lease.h) ---------- */

int bus_lease_parts(bus_t *b)
{
    if (b->started) return -1;
    b->leased = 1;
    /* entries added from 5 s before this start on, by our clock (entry ids
     * are Redis's): an event between the service's first read of the state
     * it keeps (the policy hash) and now is not missed, and the older ones
     * read again come in order, so the view ends at the newest */
    long long from = clock_wall_ms() - 5000;
    for (int i = 0; i < b->nsubs; i++) {
        bus_sub_t *s = &b->subs[i];
        s->bcast = s->part < 0;
        s->off = s->gone = 1;
        if (s->bcast) snprintf(s->bc_last, sizeof s->bc_last, "%lld-0", from > 0 ? from : 0);
    }
    return 0;
}

int bus_leased(const bus_t *b) { return b->leased; }

/* The read's streams changed: a blocking read in flight waits on the old
 * ones for up to QT_BLOCK_MS; end it now so the next one reads the new set. */
static void bus_parts_changed(bus_t *b)
{
    if (b->started && bus_build_read(b) < 0) log_error("out of memory rebuilding the read of the partitions");
    if (b->reading && b->rd.client_id > 0 && b->cmd.state == RLINK_UP) {
        char id[24];
        snprintf(id, sizeof id, "%lld", b->rd.client_id);
        const char *argv[] = {"CLIENT", "UNBLOCK", id};
        rlink_send(&b->cmd, NULL, NULL, 3, argv, NULL);
    }
}

/* XAUTOCLAIM ... 0 cursor: every entry pending in the group, whoever holds it. */
static void take_cb(redisAsyncContext *ac, void *r, void *pd)
{
    bus_t *b = bus_of(ac);
    int si = (int)(intptr_t)pd;
    bus_sub_t *s = &b->subs[si];
    redisReply *reply = r;
    rlink_replied(rlink_of(ac));
    if (b->claims > 0) b->claims--;
    if (!reply || b->freeing || !s->taking) return; /* link down: bus_part_take again after cmd_up; or dropped */
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 || reply->element[0]->type != REDIS_REPLY_STRING) {
        int64_t now = clock_mono_ms();
        if (reply->type == REDIS_REPLY_ERROR && now - b->refusal_log_ms >= 1000) { /* asked every tick: said once a second */
            log_warn("taking over %s: XAUTOCLAIM: %s", s->key, reply->str);
            b->refusal_log_ms = now;
        }
        if (reply->type == REDIS_REPLY_ERROR) snprintf(b->last_error, sizeof b->last_error, "XAUTOCLAIM %s: %.180s", s->key, reply->str);
        s->taking = 2; /* asked again on the next tick */
        return;
    }
    const redisReply *ids = reply->element[1];
    if (ids->type == REDIS_REPLY_ARRAY && ids->elements > 0) {
        metric_add(s->m_claimed, (double)ids->elements);
        log_info("took over %zu pending entries of %s from its previous holder", ids->elements, s->key);
    }
    snprintf(s->claim_cursor, sizeof s->claim_cursor, "%s", reply->element[0]->str);
    if (strcmp(s->claim_cursor, "0-0") != 0) {
        take_send(b, si);
        return;
    }
    s->taking = 0, s->off = s->gone = 0; /* its entries are ours: re-read them first, then new ones */
    scan_restart(s);
    b->oldest_first = 1;
    bus_parts_changed(b);
    scan_next(b, si);
    read_next(b);
}

static void take_send(bus_t *b, int si)
{
    bus_sub_t *s = &b->subs[si];
    const char *argv[] = {"XAUTOCLAIM", s->key, b->group, b->consumer, "0", s->claim_cursor, "COUNT", b->count_s, "JUSTID"};
    if (b->cmd.state == RLINK_UP && b->groups_ready && rlink_send(&b->cmd, take_cb, (void *)(intptr_t)si, 9, argv, NULL) == 0) {
        s->taking = 1;
        b->claims++;
    } else {
        s->taking = 2; /* the tick sends it once the link and the groups are up */
    }
}

void bus_part_take(bus_t *b, int part)
{
    for (int i = 0; i < b->nsubs; i++) {
        bus_sub_t *s = &b->subs[i];
        if (s->part != part || !s->off || s->taking) continue;
        if (!s->gone) { /* a release called off: read it again */
            s->off = 0;
            bus_parts_changed(b);
            continue;
        }
        snprintf(s->claim_cursor, sizeof s->claim_cursor, "0-0");
        take_send(b, i);
    }
}

void bus_part_drop(bus_t *b, int part, int keep_pending)
{
    int changed = 0;
    for (int i = 0; i < b->nsubs; i++) {
        bus_sub_t *s = &b->subs[i];
        if (s->part != part) continue;
        changed |= !s->off;
        s->off = 1, s->taking = 0;
        if (!keep_pending) s->gone = 1;
    }
    if (!keep_pending && bus_state_parted(b)) b->st_ops->drop_part(b->st_ud, part); /* its next holder has it */
    if (!changed) return;
    bus_parts_changed(b);
    for (int i = 0; i < b->nsubs; i++)
        if (b->subs[i].part == part) b->subs[i].off_gen = b->read_gen;
}

int bus_part_reading(const bus_t *b, int part)
{
    int n = 0, on = 0;
    for (int i = 0; i < b->nsubs; i++)
        if (b->subs[i].part == part) n++, on += !b->subs[i].off;
    return n > 0 && on == n;
}

int bus_part_quiet(const bus_t *b, int part)
{
    if (b->claims > 0) return 0;
    for (int i = 0; i < b->nsubs; i++) {
        const bus_sub_t *s = &b->subs[i];
        if (s->part != part) continue;
        if (!s->off || s->taking || s->scanning || s->scan_needed || s->retry_due_ms ||
            (b->reading && b->reading_gen < s->off_gen))
            return 0;
    }
    for (const bus_pending_t *p = b->deferred; p; p = p->next)
        if (b->subs[p->si].part == part) return 0;
    return 1;
}

int bus_part_keys(const bus_t *b, int part, const char **keys, int max)
{
    int n = 0;
    for (int i = 0; i < b->nsubs && n < max; i++)
        if (b->subs[i].part == part) keys[n++] = b->subs[i].key;
    return n;
}

/* The stream an event for name goes to: with partitions, the one of its
 * symbol (keys.h; none: p0). */
static bus_pub_t *bus_pub(bus_t *b, const char *name, const event_t *ev)
{
    int part = -1;
    if (proto_partitioned(name) && b->cfg.partitions > 1) {
        const char *sym = json_string_value(json_object_get(ev->data, "symbol"));
        part = sym ? proto_partition(sym, (int)b->cfg.partitions) : 0;
    } else if (proto_partitioned(name)) {
        part = 0; /* one partition: today's stream */
    }
    for (int i = 0; i < b->npubs; i++)
        if (b->pubs[i].part == part && strcmp(b->pubs[i].name, name) == 0) return &b->pubs[i];
    if (b->npubs == BUS_MAX_PUBS || !bus_name_ok(name)) return NULL;
    bus_pub_t *p = &b->pubs[b->npubs++];
    char l[200];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->part = part;
    proto_part_key(p->key, sizeof p->key, b->cfg.ns, name, (int)b->cfg.partitions, part);
    snprintf(l, sizeof l, "stream=\"%s\"", p->key);
    p->m_out = metrics_counter(b->metrics, "qt_bus_events_published_total", "Events confirmed by Redis", l);
    return p;
}

/* Queue ev's XADD to stream p — or, with then, the script that adds it and
 * then runs then->cmd on then->key (rsync_xadd_then). */
typedef struct bus_then {
    const char *cmd, *key;
    int argc;
    const char *const *argv;
} bus_then_t;

static int bus_queue(bus_t *b, const char *name, const event_t *ev, const bus_then_t *then, char *err, size_t errlen)
{
    if (b->replaying) return 0; /* its first handling published it */
    if (!b->started) { /* the state is not restored yet (svc.h) */
        snprintf(err, errlen, "the bus has not started yet");
        return -1;
    }
    bus_pub_t *p = bus_pub(b, name, ev);
    event_enc_t *enc = &b->enc;
    const char *x[6 + 2 * EVENT_FIELDS_MAX] = {"XADD", NULL, "MAXLEN", "~", b->maxlen_s, "*"};
    const char *argv[RSYNC_XADD_THEN_ARGV];
    size_t xl[6 + 2 * EVENT_FIELDS_MAX], lens[RSYNC_XADD_THEN_ARGV];
    char *cmd = NULL, n[16];
    if (!p) {
        snprintf(err, errlen, "stream name '%.64s' is not valid", name);
        return -1;
    }
    if (b->ob.pubs >= (size_t)b->cfg.outbox_max) {
        metric_inc(b->m_refused);
        snprintf(err, errlen, "outbox full: %zu events wait for Redis (QT_OUTBOX_MAX)", b->ob.pubs);
        return -1;
    }
    if (event_encode(ev, enc, err, errlen) < 0) return -1;
    x[1] = p->key;
    for (int i = 0; i < 6; i++) xl[i] = strlen(x[i]);
    for (size_t i = 0; i < enc->n; i++) {
        x[6 + 2 * i] = enc->f[i].name, xl[6 + 2 * i] = enc->f[i].name_len;
        x[7 + 2 * i] = enc->f[i].val, xl[7 + 2 * i] = enc->f[i].val_len;
    }
    int argc = 6 + 2 * (int)enc->n, len = -1;
    if (!then) len = redisFormatCommandArgv(&cmd, argc, x, xl);
    else if ((argc = rsync_xadd_then_args(p->key, argc - 2, x + 2, xl + 2, then->cmd, then->key, then->argc, then->argv,
                                          argv, lens, n)) >= 0)
        len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (len < 0 || outbox_append(&b->ob, cmd, (size_t)len, -1, NULL, p->m_out) < 0) {
        if (cmd) redisFreeCommand(cmd);
        snprintf(err, errlen, "out of memory queueing %s", ev->type);
        return -1;
    }
    outbox_pump(b);
    return 0;
}

int bus_publish(bus_t *b, const char *name, const event_t *ev, char *err, size_t errlen)
{
    return bus_queue(b, name, ev, NULL, err, errlen);
}

int bus_publish_then(bus_t *b, const char *name, const event_t *ev, const char *cmd, const char *key, int argc,
                     const char *const *argv, char *err, size_t errlen)
{
    bus_then_t then = {cmd, key, argc, argv};
    return bus_queue(b, name, ev, &then, err, errlen);
}

typedef struct bus_call {
    bus_reply_fn fn;
    void *ud;
} bus_call_t;

static void bus_call_cb(redisAsyncContext *ac, void *r, void *pd)
{
    bus_call_t *c = pd;
    rlink_replied(rlink_of(ac));
    if (c->fn) c->fn(c->ud, bus_of(ac)->freeing ? NULL : r); /* always called: ud may own memory */
    free(c);
}

int bus_redis(bus_t *b, bus_reply_fn fn, void *ud, int argc, const char **argv, const size_t *lens)
{
    if (b->freeing || b->replaying) return -1; /* a callback of the free itself asking for more; a replay writes nothing */
    bus_call_t *c = malloc(sizeof *c);
    if (!c) return -1;
    c->fn = fn;
    c->ud = ud;
    if (rlink_send(&b->cmd, bus_call_cb, c, argc, argv, lens) < 0) {
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
    b->rd.no_reconnect = 1; /* nothing more is read */
    b->stop_done = done;
    b->stop_ud = ud;
    b->stop_deadline_ms = clock_mono_ms() + b->cfg.drain_ms;
    log_info("draining: %zu publishes and %zu acks outstanding", b->ob.count, b->ob.ack_len);
    if (!b->started) {
        b->stopped = 1, b->cmd.no_reconnect = 1;
        if (done) done(ud);
    }
}

void bus_free(bus_t *b)
{
    if (!b) return;
    b->freeing = 1;
    rlink_free(&b->cmd);
    rlink_free(&b->rd);
    outbox_free(&b->ob);
    event_enc_free(&b->enc);
    while (b->deferred) { /* their entries stay pending in Redis */
        bus_pending_t *p = b->deferred;
        b->deferred = p->next;
        freeReplyObject(p->fields);
        free(p);
    }
    for (int i = 0; i < b->nsubs; i++) {
        free(b->subs[i].scan_ids);
        free(b->subs[i].scan_counts);
    }
    if (b->tick_ev) event_free(b->tick_ev);
    breaker_free(b->breaker);
    free(b->read_argv);
    free(b);
}

int bus_ready(const bus_t *b, char *why, size_t whylen)
{
    if (b->cmd.state != RLINK_UP) snprintf(why, whylen, "redis command link is down: %s", b->last_error);
    else if (b->nsubs && b->rd.state != RLINK_UP) snprintf(why, whylen, "redis read link is down: %s", b->last_error);
    else if (!b->groups_ready) snprintf(why, whylen, "consumer groups not ready: %s", b->last_error);
    else if (b->breaker && breaker_state(b->breaker, clock_mono_ms()) == BREAKER_OPEN)
        snprintf(why, whylen, "redis-publish breaker is open: %s", b->last_error);
    else if (b->ob.pubs >= (size_t)b->cfg.outbox_max) snprintf(why, whylen, "outbox is full");
    else return 1;
    return 0;
}

static const char *link_state_name(rlink_state_t s)
{
    return s == RLINK_UP ? "up" : s == RLINK_CONNECTING || s == RLINK_HELLO ? "connecting" : "down";
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
        "outbox", (json_int_t)b->ob.count,
        "publish_breaker", breaker_state_name(breaker_state(b->breaker, clock_mono_ms())),
        "paused", b->paused, "pause_reason", b->paused ? b->pause_reason : NULL,
        "last_error", b->last_error, "streams", streams);
}

size_t bus_outbox_size(const bus_t *b) { return b->ob.count; }
int bus_outbox_sent(const bus_t *b) { return outbox_cursor(&b->ob) == NULL && b->cmd.state == RLINK_UP; }
breaker_t *bus_breaker(const bus_t *b) { return b->breaker; }
