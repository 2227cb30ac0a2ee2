/* rebuild.c — the engine's state read back from Redis at start (see rebuild.h). */
#include "rebuild.h"
#include "keys.h"
#include "log.h"
#include "rsync.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef void (*rebuild_entry_fn)(const rebuild_ops_t *ops, const char *sid, const event_t *ev);

/* An XRANGE entry decoded and validated as every consumer does (envelope,
 * schema): 0, or -1 for one a consumer would dead-letter. */
static int rebuild_decode(const redisReply *en, event_t *ev)
{
    const redisReply *f = en->element[1];
    event_field_t fields[EVENT_FIELDS_MAX];
    char err[256];
    size_t n = 0;
    for (size_t k = 0; f->type == REDIS_REPLY_ARRAY && k + 1 < f->elements && n < EVENT_FIELDS_MAX; k += 2)
        fields[n++] = (event_field_t){f->element[k]->str, f->element[k]->len, f->element[k + 1]->str, f->element[k + 1]->len};
    return event_decode(ev, fields, n, err, sizeof err);
}

/* Walk key oldest → newest (from "-" up to max, inclusive), decoding
 * entries, in pages bounded in bytes (an entry over QT_MAX_ENTRY_BYTES is
 * left unread: the consumers dead-letter it). */
static int rebuild_walk(redisContext *c, const qt_config_t *cfg, const char *key, const char *max,
                        const rebuild_ops_t *ops, rebuild_entry_fn fn)
{
    char from[64] = "-";
    long skipped = 0;
    for (;;) {
        redisReply *r = rsync_range(c, key, from, max, 0, 1000, cfg->max_entry_bytes, cfg->max_read_bytes / 2);
        if (!r) return -1;
        const redisReply *en = r->element[3];
        for (size_t i = 0; i < en->elements; i++) {
            event_t ev;
            if (rebuild_decode(en->element[i], &ev) == 0) {
                fn(ops, en->element[i]->element[0]->str, &ev);
                event_clear(&ev);
            }
        }
        skipped += (long)r->element[1]->integer;
        int done = r->element[2]->integer || !r->element[0]->str[0];
        snprintf(from, sizeof from, "(%s", r->element[0]->str);
        freeReplyObject(r);
        if (done) break;
    }
    if (skipped) log_warn("rebuild: %ld entries of %s over QT_MAX_ENTRY_BYTES were left out", skipped, key);
    return 0;
}

static void rebuild_intent(const rebuild_ops_t *ops, const char *sid, const event_t *ev)
{
    (void)sid;
    if (strcmp(ev->type, "trade.intent") == 0) ops->intent(ops->ud, ev);
}

static void rebuild_execution(const rebuild_ops_t *ops, const char *sid, const event_t *ev)
{
    ops->execution(ops->ud, sid, ev);
}

/* The last execution entry group has fully handled (acked): the smaller of
 * last-delivered-id and the oldest pending id minus one. "0" when the group
 * does not exist. Later entries arrive through the group. */
static void rebuild_exec_limit(redisContext *c, const char *key, const char *group, char *out, size_t len)
{
    redisReply *g = redisCommand(c, "XINFO GROUPS %s", key), *p = redisCommand(c, "XPENDING %s %s", key, group);
    snprintf(out, len, "0");
    for (size_t i = 0; g && g->type == REDIS_REPLY_ARRAY && i < g->elements; i++) {
        const redisReply *m = g->element[i];
        if (m->elements < 8 || strcmp(m->element[1]->str, group) != 0) continue;
        for (size_t k = 0; k + 1 < m->elements; k += 2)
            if (strcmp(m->element[k]->str, "last-delivered-id") == 0) snprintf(out, len, "%s", m->element[k + 1]->str);
    }
    if (p && p->type == REDIS_REPLY_ARRAY && p->elements >= 2 && p->element[0]->integer > 0 &&
        p->element[1]->type == REDIS_REPLY_STRING) {
        unsigned long long ms, seq; /* oldest pending id minus one */
        if (sscanf(p->element[1]->str, "%llu-%llu", &ms, &seq) == 2) {
            if (seq > 0) snprintf(out, len, "%llu-%llu", ms, seq - 1);
            else snprintf(out, len, "%llu-18446744073709551615", ms - 1);
        }
    }
    if (g) freeReplyObject(g);
    if (p) freeReplyObject(p);
}

/* A closed bar to the engine; 0: go on. */
static int rebuild_bar(const rebuild_ops_t *ops, const event_t *ev)
{
    if (strcmp(ev->type, "market.data.update") == 0 && json_is_true(json_object_get(ev->data, "closed")))
        ops->bar(ops->ud, ev->data);
    return 0;
}

/* The newest performance.update to the engine; 1 once found. */
static int rebuild_perf(const rebuild_ops_t *ops, const event_t *ev)
{
    if (strcmp(ev->type, "performance.update") != 0) return 0;
    ops->perf(ops->ud, json_integer_value(json_object_get(ev->data, "event_time")));
    return 1;
}

/* The newest 5000 entries of key, newest first, to fn until it says 1: only
 * entries the consumers take (an entry they dead-letter must not say where
 * the feed resumes or what the price is; it is counted and logged). */
static void rebuild_newest(redisContext *c, const qt_config_t *cfg, const char *key, const rebuild_ops_t *ops,
                           int (*fn)(const rebuild_ops_t *ops, const event_t *ev))
{
    long refused = 0, skipped = 0, seen = 0;
    char end[64] = "+";
    int found = 0;
    while (seen < 5000 && !found) {
        redisReply *r = rsync_range(c, key, end, "-", 1, 5000 - seen, cfg->max_entry_bytes, cfg->max_read_bytes / 2);
        if (!r) break;
        const redisReply *en = r->element[3];
        for (size_t i = 0; i < en->elements && !found; i++) {
            event_t ev;
            if (rebuild_decode(en->element[i], &ev) < 0) {
                refused++;
                continue;
            }
            found = fn(ops, &ev);
            event_clear(&ev);
        }
        seen += (long)en->elements + (long)r->element[1]->integer;
        skipped += (long)r->element[1]->integer;
        int done = r->element[2]->integer || !r->element[0]->str[0];
        snprintf(end, sizeof end, "(%s", r->element[0]->str);
        freeReplyObject(r);
        if (done) break;
    }
    if (refused) log_warn("rebuild: %ld entries of %s the consumers refuse were left out", refused, key);
    if (skipped) log_warn("rebuild: %ld entries of %s over QT_MAX_ENTRY_BYTES were left out", skipped, key);
}

static void rebuild_keys(redisContext *c, const qt_config_t *cfg, const rebuild_ops_t *ops)
{
    char key[160];
    proto_key(key, sizeof key, cfg->ns, QT_KEY_ENGINE_STATE);
    redisReply *r = redisCommand(c, "GET %s", key);
    json_t *j = r && r->type == REDIS_REPLY_STRING ? json_loadb(r->str, r->len, 0, NULL) : NULL;
    if (j) ops->checkpoint(ops->ud, j);
    json_decref(j);
    if (r) freeReplyObject(r);
    proto_key(key, sizeof key, cfg->ns, QT_KEY_POLICY_CONFIG);
    r = redisCommand(c, "HGETALL %s", key);
    ops->config(ops->ud, r);
    if (r) freeReplyObject(r);
    proto_key(key, sizeof key, cfg->ns, QT_KEY_POLICY_TRADING);
    r = redisCommand(c, "GET %s", key);
    if (r && r->type == REDIS_REPLY_STRING) ops->trading(ops->ud, r->str, r->len);
    if (r) freeReplyObject(r);
    proto_key(key, sizeof key, cfg->ns, QT_KEY_ENGINE_EQUITY);
    r = redisCommand(c, "HGETALL %s", key);
    if (r && r->type == REDIS_REPLY_ARRAY) ops->equity(ops->ud, r);
    if (r) freeReplyObject(r);
    proto_key(key, sizeof key, cfg->ns, QT_KEY_ENGINE_ENTRY_VOTES);
    r = redisCommand(c, "HGETALL %s", key);
    if (r && r->type == REDIS_REPLY_ARRAY) ops->entry_votes(ops->ud, r);
    if (r) freeReplyObject(r);
}

int rebuild_run(const qt_config_t *cfg, long wait_s, const rebuild_ops_t *ops, char *err, size_t errlen)
{
    char key[160], limit[64];
    redisContext *c = NULL;
    for (long i = 0; !(c = rsync_connect(&cfg->redis, 2000, err, errlen)) && i < wait_s; i++) {
        if (i % 10 == 0) log_warn("waiting for Redis to rebuild the engine's state: %s", err);
        sleep(1);
    }
    if (!c) return -1;
    rebuild_keys(c, cfg, ops);
    /* partition by partition (keys.h): one symbol's entries are all in one */
    int parts = (int)cfg->partitions;
    for (int p = 0; p < parts; p++) {
        proto_part_key(key, sizeof key, cfg->ns, QT_STREAM_TRADE_INTENT, parts, p);
        rebuild_walk(c, cfg, key, "+", ops, rebuild_intent);
    }
    for (int p = 0; p < parts; p++) {
        proto_part_key(key, sizeof key, cfg->ns, QT_STREAM_EXECUTION, parts, p);
        rebuild_exec_limit(c, key, cfg->service, limit, sizeof limit);
        if (strcmp(limit, "0") != 0) rebuild_walk(c, cfg, key, limit, ops, rebuild_execution);
    }
    for (int p = 0; p < parts; p++) {
        proto_part_key(key, sizeof key, cfg->ns, QT_STREAM_MARKET, parts, p);
        rebuild_newest(c, cfg, key, ops, rebuild_bar);
    }
    proto_part_key(key, sizeof key, cfg->ns, QT_STREAM_FEEDBACK, parts, 0); /* performance.update has no symbol: p0 */
    rebuild_newest(c, cfg, key, ops, rebuild_perf);
    redisFree(c);
    return 0;
}
