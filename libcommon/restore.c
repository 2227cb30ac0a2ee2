/* restore.c — checkpoint + replay at start (see restore.h). */
#include "restore.h"
#include "log.h"
#include "rsync.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RESTORE_PAGE 512
#define RESTORE_PENDING_MAX 1000000 /* entries pending in one group that a restore will look at */

typedef char restore_id_t[48];

/* One stream's part of the replay. */
typedef struct restore_stream {
    const char *key;
    restore_id_t tag, last, from, done;
    restore_id_t *pending; /* ids pending in the group after the tag, ascending */
    size_t npending, ipending;
    redisReply *page;      /* the current page (rsync_range), or NULL */
    size_t at;             /* the next entry of the page */
    int finished;
    long skipped;
} restore_stream_t;

/* A map-like reply's (XINFO) string field key into out, if there. */
static void restore_field(const redisReply *m, const char *key, char *out, size_t len)
{
    for (size_t k = 0; m && m->type == REDIS_REPLY_ARRAY && k + 1 < m->elements; k += 2)
        if (m->element[k]->type == REDIS_REPLY_STRING && strcmp(m->element[k]->str, key) == 0 &&
            m->element[k + 1]->type == REDIS_REPLY_STRING)
            snprintf(out, len, "%s", m->element[k + 1]->str);
}

/* A map-like reply's integer field key, or -1. */
static long long restore_int(const redisReply *m, const char *key)
{
    for (size_t k = 0; m && m->type == REDIS_REPLY_ARRAY && k + 1 < m->elements; k += 2)
        if (m->element[k]->type == REDIS_REPLY_STRING && strcmp(m->element[k]->str, key) == 0 &&
            m->element[k + 1]->type == REDIS_REPLY_INTEGER)
            return m->element[k + 1]->integer;
    return -1;
}

/* Were entries after the tag removed from the stream (trimmed, deleted)? A
 * trim takes the oldest entries, so when the tag's own entry is gone (the
 * first entry is later) so are, as a rule, some after it; with no tag, any
 * entry removed at all. */
static int restore_trimmed(const redisReply *s, const char *tag)
{
    char deleted[48] = "0";
    restore_field(s, "max-deleted-entry-id", deleted, sizeof deleted);
    if (ckpt_id_cmp(deleted, tag) > 0) return 1;
    const redisReply *first = NULL;
    for (size_t k = 0; s && s->type == REDIS_REPLY_ARRAY && k + 1 < s->elements; k += 2)
        if (s->element[k]->type == REDIS_REPLY_STRING && strcmp(s->element[k]->str, "first-entry") == 0)
            first = s->element[k + 1];
    if (!first || first->type != REDIS_REPLY_ARRAY || first->elements < 1 || first->element[0]->type != REDIS_REPLY_STRING)
        return 0;
    if (strcmp(tag, "0") == 0) return restore_int(s, "entries-added") > restore_int(s, "length");
    return ckpt_id_cmp(first->element[0]->str, tag) > 0;
}

/* The group's last-delivered-id ("0" when nothing was delivered) and whether
 * entries it delivered after the tag are gone from the stream; -1 when the
 * connection failed. */
static int restore_bounds(redisContext *c, const char *group, restore_stream_t *st, int *lost)
{
    redisReply *g = redisCommand(c, "XINFO GROUPS %s", st->key), *s = g ? redisCommand(c, "XINFO STREAM %s", st->key) : NULL;
    /* the connection failed, or a refusal other than "no such key" (a stream not there yet) */
    int failed = !g || !s || (g->type == REDIS_REPLY_ERROR && !strstr(g->str, "no such key"));
    if (failed) {
        if (g && g->type == REDIS_REPLY_ERROR) log_warn("restoring state: XINFO GROUPS %s: %s", st->key, g->str);
        if (g) freeReplyObject(g);
        if (s) freeReplyObject(s);
        return -1;
    }
    snprintf(st->last, sizeof st->last, "0");
    for (size_t i = 0; g && g->type == REDIS_REPLY_ARRAY && i < g->elements; i++) {
        char name[128] = "";
        restore_field(g->element[i], "name", name, sizeof name);
        if (strcmp(name, group) == 0) restore_field(g->element[i], "last-delivered-id", st->last, sizeof st->last);
    }
    if (ckpt_id_cmp(st->last, st->tag) > 0 && s && s->type == REDIS_REPLY_ARRAY && restore_trimmed(s, st->tag)) {
        *lost = 1;
        log_warn("restoring state: entries of %s after %s were trimmed before they could be read back", st->key, st->tag);
    }
    freeReplyObject(g);
    freeReplyObject(s);
    return 0;
}

/* Claim every entry pending in the group for us (a dead predecessor's: they
 * come through the group, oldest first) and keep those after the tag; -1
 * when the connection failed or memory ran out. */
static int restore_pending(redisContext *c, const char *group, const char *consumer, restore_stream_t *st)
{
    restore_id_t start = "-";
    size_t cap = 0;
    for (;;) {
        redisReply *p = redisCommand(c, "XPENDING %s %s %s + %d", st->key, group, start, RESTORE_PAGE);
        if (!p) return -1;
        if (p->type == REDIS_REPLY_ERROR && strncmp(p->str, "NOGROUP", 7) != 0) { /* refused (NOPERM, ...) */
            log_warn("restoring state: XPENDING %s: %s", st->key, p->str);
            return freeReplyObject(p), -1;
        }
        if (p->type != REDIS_REPLY_ARRAY || p->elements == 0) { /* none, or no group yet */
            freeReplyObject(p);
            return 0;
        }
        const char **argv = malloc((p->elements + 6) * sizeof *argv);
        int argc = 0;
        if (!argv) return freeReplyObject(p), -1;
        argv[argc++] = "XCLAIM", argv[argc++] = st->key, argv[argc++] = group, argv[argc++] = consumer, argv[argc++] = "0";
        for (size_t i = 0; i < p->elements; i++) {
            const char *id = p->element[i]->element[0]->str;
            argv[argc++] = id;
            if (ckpt_id_cmp(id, st->tag) <= 0 || st->npending >= RESTORE_PENDING_MAX) continue;
            if (st->npending == cap) {
                restore_id_t *n = realloc(st->pending, (cap = cap ? cap * 2 : 256) * sizeof *n);
                if (!n) return free(argv), freeReplyObject(p), -1;
                st->pending = n;
            }
            snprintf(st->pending[st->npending++], sizeof(restore_id_t), "%s", id);
        }
        argv[argc++] = "JUSTID";
        redisReply *cl = redisCommandArgv(c, argc, argv, NULL);
        int refused = !cl || cl->type == REDIS_REPLY_ERROR;
        if (cl) freeReplyObject(cl);
        if (refused) return free(argv), freeReplyObject(p), -1;
        snprintf(start, sizeof start, "(%s", p->element[p->elements - 1]->element[0]->str);
        size_t n = p->elements;
        free(argv);
        freeReplyObject(p);
        if (n < RESTORE_PAGE) return 0;
    }
}

/* The next entry of st to replay (reading a page when needed), or NULL when
 * the stream's part is over or Redis failed (*failed). */
static const redisReply *restore_head(redisContext *c, const qt_config_t *cfg, int nsubs, restore_stream_t *st,
                                      int *failed)
{
    while (!st->finished) {
        if (st->page && st->at < st->page->element[3]->elements) return st->page->element[3]->element[st->at];
        int done = 0;
        if (st->page) {
            done = st->page->element[2]->integer || !st->page->element[0]->str[0];
            st->skipped += (long)st->page->element[1]->integer;
            if (!done) snprintf(st->from, sizeof st->from, "(%s", st->page->element[0]->str);
            freeReplyObject(st->page);
            st->page = NULL;
        }
        if (done || ckpt_id_cmp(st->last, st->tag) <= 0) {
            st->finished = 1;
            break;
        }
        st->page = rsync_range(c, st->key, st->from, st->last, 0, RESTORE_PAGE, cfg->max_entry_bytes,
                               cfg->max_read_bytes / (2 * nsubs));
        st->at = 0;
        if (!st->page) *failed = 1, st->finished = 1;
    }
    return NULL;
}

/* Is id pending in the group (then it comes through the group)? */
static int restore_is_pending(restore_stream_t *st, const char *id)
{
    while (st->ipending < st->npending && ckpt_id_cmp(st->pending[st->ipending], id) < 0) st->ipending++;
    return st->ipending < st->npending && ckpt_id_cmp(st->pending[st->ipending], id) == 0;
}

/* Hand every stream's entries to the handlers, the oldest id first. */
static int restore_replay(bus_t *b, redisContext *c, const qt_config_t *cfg, const int *si, restore_stream_t *sts,
                          int n, ckpt_restore_t *out)
{
    int failed = 0;
    for (;;) {
        int best = -1;
        const redisReply *be = NULL;
        for (int i = 0; i < n; i++) {
            const redisReply *e = restore_head(c, cfg, n, &sts[i], &failed);
            if (e && (!be || ckpt_id_cmp(e->element[0]->str, be->element[0]->str) < 0)) best = i, be = e;
        }
        if (!be) return failed ? -1 : 0;
        restore_stream_t *st = &sts[best];
        const char *id = be->element[0]->str;
        if (!restore_is_pending(st, id) && bus_replay(b, si[best], id, be->element[1])) out->replayed++;
        snprintf(st->done, sizeof st->done, "%s", id);
        st->at++;
    }
}

/* The checkpoint key into the service (tags into sts), or nothing; -1 when
 * the connection failed (the service's state is then untouched). part -1:
 * the whole state; else partition part's (its symbols dropped first). */
static int restore_load(redisContext *c, bus_t *b, const char *key, int part, restore_stream_t *sts, int n,
                        ckpt_restore_t *out)
{
    void *ud;
    const ckpt_ops_t *ops = bus_state_ops(b, &ud);
    const char *keys[64], *state;
    restore_id_t ids[64];
    size_t slen;
    char err[256];
    redisReply *r = redisCommand(c, "GET %s", key);
    if (!r) return -1;
    for (int i = 0; i < n; i++) keys[i] = sts[i].key;
    if (part >= 0) ops->drop_part(ud, part);
    if (r && r->type == REDIS_REPLY_STRING) {
        if (ckpt_decode(r->str, r->len, ops->format, n, keys, ids, &out->saved_ms, &state, &slen, err, sizeof err) < 0 ||
            (part < 0 ? ops->load(ud, state, slen, err, sizeof err) : ops->load_part(ud, part, state, slen, err, sizeof err)) < 0) {
            log_warn("checkpoint %s not used: %s; the state is rebuilt from the streams", key, err);
            out->saved_ms = 0;
        } else {
            out->found = 1;
            for (int i = 0; i < n; i++) memcpy(sts[i].tag, ids[i], sizeof sts[i].tag);
        }
    }
    freeReplyObject(r);
    return 0;
}

/* The restore of every subscription (part -1, the whole state) or of
 * partition part's. */
static int restore_streams(bus_t *b, const qt_config_t *cfg, int part, ckpt_restore_t *out, char *err, size_t errlen)
{
    int n = 0, si[64], rc = 0;
    char key[220];
    memset(out, 0, sizeof *out);
    for (int i = 0; i < bus_sub_count(b) && n < 64; i++)
        if (part < 0 || bus_sub_part(b, i) == part) si[n++] = i;
    if (!bus_state_ops(b, NULL) || n == 0) return 0;
    if (part < 0) snprintf(key, sizeof key, "%s", bus_state_key(b));
    else bus_state_part_key(b, part, key, sizeof key);
    redisContext *c = rsync_connect(&cfg->redis, (int)cfg->redis_timeout_ms, err, errlen);
    if (!c) return 1;
    restore_stream_t *sts = calloc((size_t)n, sizeof *sts);
    if (!sts) return redisFree(c), snprintf(err, errlen, "out of memory restoring state"), -1;
    for (int i = 0; i < n; i++) {
        sts[i].key = bus_sub_key(b, si[i]);
        snprintf(sts[i].tag, sizeof sts[i].tag, "0");
    }
    /* until the replay starts a failure leaves nothing half done: a checkpoint
     * loaded is loaded again by the next try, so it is tried again (1) */
    if (restore_load(c, b, key, part, sts, n, out) < 0) rc = 1;
    for (int i = 0; i < n && rc == 0; i++) {
        snprintf(sts[i].from, sizeof sts[i].from, strcmp(sts[i].tag, "0") ? "(%s" : "-", sts[i].tag);
        if (restore_bounds(c, bus_group(b), &sts[i], &out->history_lost) < 0 ||
            restore_pending(c, bus_group(b), bus_consumer(b), &sts[i]) < 0)
            rc = 1;
    }
    void *ud;
    const ckpt_ops_t *ops = bus_state_ops(b, &ud);
    if (rc == 0 && out->found && out->history_lost && part < 0 && ops->gap) ops->gap(ud);
    if (rc == 0 && out->found && out->history_lost && part >= 0) ops->gap_part(ud, part);
    if (rc == 0 && restore_replay(b, c, cfg, si, sts, n, out) < 0) rc = -1; /* half replayed */
    if (rc == 0 && !out->found && part < 0 && ops->fresh) ops->fresh(ud, c);
    for (int i = 0; i < n; i++) {
        out->pending += (long)sts[i].npending;
        bus_sub_restored(b, si[i], sts[i].tag, sts[i].done[0] ? sts[i].done : NULL);
        if (sts[i].skipped) log_warn("restoring state: %ld entries of %s over QT_MAX_ENTRY_BYTES left out", sts[i].skipped, sts[i].key);
        if (sts[i].page) freeReplyObject(sts[i].page);
        free(sts[i].pending);
    }
    if (rc != 0)
        snprintf(err, errlen, "Redis failed or refused a read of the state: %s",
                 c->err ? c->errstr : "a command was refused or memory ran out (see the warning before)");
    snprintf(out->note, sizeof out->note, "%s + %ld entries replayed%s", out->found ? "checkpoint" : "no checkpoint",
             out->replayed, out->history_lost ? "; entries after it were trimmed from the streams: warming up" : "");
    redisFree(c);
    free(sts);
    return rc;
}

int restore_run(bus_t *b, const qt_config_t *cfg, ckpt_restore_t *out, char *err, size_t errlen)
{
    void *ud;
    const ckpt_ops_t *ops = bus_state_ops(b, &ud);
    if (bus_state_parted(b)) { /* each partition's state comes back when it is taken (restore_part) */
        memset(out, 0, sizeof *out);
        snprintf(out->note, sizeof out->note, "each partition's state is restored when it is taken");
        if (!ops->fresh) return 0;
        redisContext *c = rsync_connect(&cfg->redis, (int)cfg->redis_timeout_ms, err, errlen);
        if (!c) return 1;
        ops->fresh(ud, c);
        int failed = c->err != 0;
        if (failed) snprintf(err, errlen, "Redis failed reading what the service keeps: %s", c->errstr);
        redisFree(c);
        return failed;
    }
    return restore_streams(b, cfg, -1, out, err, errlen);
}

int restore_part(bus_t *b, const qt_config_t *cfg, int part, ckpt_restore_t *out, char *err, size_t errlen)
{
    void *ud;
    if (!bus_state_parted(b)) return memset(out, 0, sizeof *out), 0;
    int rc = restore_streams(b, cfg, part, out, err, errlen);
    if (rc != 0) bus_state_ops(b, &ud)->drop_part(ud, part); /* as before the take: the next try starts clean */
    return rc;
}
