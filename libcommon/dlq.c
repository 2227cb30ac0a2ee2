/* dlq.c — list, replay and purge dead-letter streams (see dlq.h). */
#include "dlq.h"

#include "event.h"
#include "rsync.h"
#include "utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DLQ_MAX_FIELDS 64

static const char *const dlq_meta[DLQ_META_FIELDS] = {
    "origin_stream", "origin_id", "group", "consumer", "deliveries", "error", "failed_at"};

void dlq_meta_fields(const dlq_meta_t *m, const char *out[2 * DLQ_META_FIELDS])
{
    const char *v[DLQ_META_FIELDS] = {m->origin_stream, m->origin_id, m->group,    m->consumer,
                                      m->deliveries,    m->error,     m->failed_at};
    for (int i = 0; i < DLQ_META_FIELDS; i++) out[2 * i] = dlq_meta[i], out[2 * i + 1] = v[i];
}

int dlq_is_entry(const redisReply *f)
{
    if (f->type != REDIS_REPLY_ARRAY || f->elements < 2 * DLQ_META_FIELDS || f->elements % 2) return 0;
    size_t base = f->elements - 2 * DLQ_META_FIELDS;
    for (size_t i = 0; i < DLQ_META_FIELDS; i++) {
        const redisReply *k = f->element[base + 2 * i];
        if (k->type != REDIS_REPLY_STRING || strcmp(k->str, dlq_meta[i]) != 0) return 0;
    }
    return 1;
}

static const char *dlq_meta_value(const redisReply *f, int which)
{
    return f->element[f->elements - 2 * DLQ_META_FIELDS + 2 * (size_t)which + 1]->str;
}

/* XRANGE one id or a page; *r is freed by the caller. */
static int dlq_range(redisContext *c, const char *key, const char *from, const char *to, long count,
                     redisReply **r, char *err, size_t errlen)
{
    char n[24];
    snprintf(n, sizeof n, "%ld", count);
    const char *argv[] = {"XRANGE", key, from, to, "COUNT", n};
    *r = redisCommandArgv(c, 6, argv, NULL);
    if (!*r || (*r)->type != REDIS_REPLY_ARRAY) {
        snprintf(err, errlen, "XRANGE %s: %s", key, *r ? (*r)->str : c->errstr);
        if (*r) freeReplyObject(*r);
        *r = NULL;
        return -1;
    }
    return 0;
}

static json_t *dlq_entry_json(const redisReply *e)
{
    const redisReply *f = e->element[1];
    json_t *o = json_pack("{s:s}", "dlq_id", e->element[0]->str), *fields = json_object();
    size_t orig = f->elements - 2 * DLQ_META_FIELDS;
    for (int i = 0; i < DLQ_META_FIELDS; i++) {
        const redisReply *v = f->element[f->elements - 2 * DLQ_META_FIELDS + 2 * (size_t)i + 1];
        json_object_set_new(o, dlq_meta[i], utf8_json_string(v->str, v->len)); /* an error may quote bad bytes */
    }
    for (size_t i = 0; i + 1 < orig; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];
        json_t *val = utf8_json_string(v->str, v->len);
        if (v->len > 4096) { /* keep listings readable; show the size instead */
            char note[64];
            snprintf(note, sizeof note, "<%zu bytes>", v->len);
            json_decref(val);
            val = json_string(note);
        }
        char *name = utf8_escape(k->str, k->len, NULL);
        if (name) json_object_set_new_nocheck(fields, name, val);
        else json_decref(val);
        free(name);
    }
    json_object_set_new(o, "fields", fields);
    return o;
}

int dlq_list(redisContext *c, const char *dlq_key, long count, json_t **out, char *err, size_t errlen)
{
    redisReply *r;
    if (dlq_range(c, dlq_key, "-", "+", count, &r, err, errlen) < 0) return -1;
    *out = json_array();
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type == REDIS_REPLY_ARRAY && e->elements == 2 && dlq_is_entry(e->element[1]))
            json_array_append_new(*out, dlq_entry_json(e));
    }
    freeReplyObject(r);
    return 0;
}

int dlq_show(redisContext *c, const char *dlq_key, const char *entry_id, json_t **out, char *err, size_t errlen)
{
    redisReply *r;
    if (dlq_range(c, dlq_key, entry_id, entry_id, 1, &r, err, errlen) < 0) return -1;
    const redisReply *e = r->elements == 1 ? r->element[0] : NULL;
    if (!e || e->type != REDIS_REPLY_ARRAY || e->elements != 2 || !dlq_is_entry(e->element[1])) {
        freeReplyObject(r);
        return snprintf(err, errlen, "no dead letter %s in %s", entry_id, dlq_key), -1;
    }
    *out = dlq_entry_json(e);
    /* the payload as it reads: a v1 entry's data, a v2 entry's fields */
    json_t *parsed = rsync_entry_payload(e->element[1], DLQ_META_FIELDS);
    json_object_set_new(*out, "data_json", parsed ? parsed : json_null());
    freeReplyObject(r);
    return 0;
}

/* State of one replay call. Each replay is one rsync_xadd_then: XADD origin
 * * <original fields>, then XDEL dlq id only if the entry was added. */
typedef struct dlq_replay_ctx {
    const dlq_replay_opts_t *o;
    dlq_replay_result_t *res;
    char **seen; /* origin_stream + ' ' + origin_id of the events re-added so far */
    size_t nseen, capseen;
    int merge_only; /* only remove the other dead letters of the events re-added */
} dlq_replay_ctx_t;

static int dlq_seen(dlq_replay_ctx_t *x, const char *origin, const char *origin_id, int add)
{
    char key[300];
    snprintf(key, sizeof key, "%s %s", origin, origin_id);
    for (size_t i = 0; i < x->nseen; i++)
        if (strcmp(x->seen[i], key) == 0) return 1;
    if (!add) return 0;
    if (x->nseen == x->capseen) {
        size_t cap = x->capseen ? x->capseen * 2 : 64;
        char **n = realloc(x->seen, cap * sizeof *n);
        if (!n) return 0;
        x->seen = n, x->capseen = cap;
    }
    if ((x->seen[x->nseen] = strdup(key))) x->nseen++;
    return 0;
}

/* The replayed fields: the original ones with the --set overrides applied
 * (names[k] holds the name of override k when it adds a field). */
static size_t dlq_fields(const redisReply *f, const dlq_replay_opts_t *o, event_field_t *out, size_t max,
                         char names[DLQ_MAX_SET][64])
{
    size_t orig = f->elements - 2 * DLQ_META_FIELDS, n = 0;
    for (size_t i = 0; i + 1 < orig && n < max; i += 2, n++)
        out[n] = (event_field_t){f->element[i]->str, f->element[i]->len, f->element[i + 1]->str, f->element[i + 1]->len};
    for (int k = 0; o && k < o->nset; k++) {
        const char *eq = strchr(o->set[k], '=');
        size_t nl = (size_t)(eq - o->set[k]), j;
        for (j = 0; j < n; j++)
            if (out[j].name_len == nl && memcmp(out[j].name, o->set[k], nl) == 0) break;
        if (j == n) {
            if (n == max) continue;
            snprintf(names[k], 64, "%.*s", (int)(nl < 63 ? nl : 63), o->set[k]);
            out[n].name = names[k], out[n++].name_len = strlen(names[k]);
        }
        out[j].val = eq + 1, out[j].val_len = strlen(eq + 1);
    }
    return n;
}

static int dlq_replay_one(redisContext *c, const char *dlq_key, const redisReply *e, void *ud, char *err, size_t errlen)
{
    dlq_replay_ctx_t *x = ud;
    const redisReply *f = e->element[1];
    const char *origin = dlq_meta_value(f, 0), *origin_id = dlq_meta_value(f, 1), *id = e->element[0]->str;
    size_t orig = f->elements - 2 * DLQ_META_FIELDS, klen = strlen(dlq_key);
    if (strlen(origin) + 4 != klen || strncmp(dlq_key, origin, klen - 4) != 0 || orig == 0) {
        snprintf(err, errlen, "entry %s: origin_stream '%.100s' does not belong to %s", id, origin, dlq_key);
        return -1;
    }
    event_field_t fields[DLQ_MAX_FIELDS];
    char names[DLQ_MAX_SET][64];
    size_t n = dlq_fields(f, x->o, fields, DLQ_MAX_FIELDS, names);
    int again = dlq_seen(x, origin, origin_id, 0);
    if (x->merge_only && !again) return 0;
    if (!again && !(x->o && x->o->force)) { /* would it be dead-lettered again for breaking the contract? */
        event_t ev;
        char why[256];
        memset(&ev, 0, sizeof ev);
        int bad = event_decode(&ev, fields, n, why, sizeof why) < 0;
        event_clear(&ev);
        if (bad) {
            if (!x->res->refused++)
                snprintf(x->res->refusal, sizeof x->res->refusal, "entry %s (%s %s): %s", id, origin, origin_id, why);
            return 0; /* left in the DLQ */
        }
    }
    const char *argv[1 + 2 * DLQ_MAX_FIELDS];
    size_t lens[1 + 2 * DLQ_MAX_FIELDS];
    argv[0] = "*", lens[0] = 1;
    for (size_t i = 0; i < n; i++) {
        argv[1 + 2 * i] = fields[i].name, lens[1 + 2 * i] = fields[i].name_len;
        argv[2 + 2 * i] = fields[i].val, lens[2 + 2 * i] = fields[i].val_len;
    }
    const char *del_id[] = {id};
    char why[400];
    int rc = 0;
    if (again) { /* another group's copy is already back: only this copy goes */
        redisReply *r = redisCommand(c, "XDEL %s %s", dlq_key, id);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "replay of %s failed: %s", id, r ? r->str : c->errstr);
            rc = -1;
        }
        if (r) freeReplyObject(r);
    } else if (rsync_xadd_then(c, origin, (int)(1 + 2 * n), argv, lens, "XDEL", dlq_key, 1, del_id, why, sizeof why) < 0) {
        snprintf(err, errlen, "replay of %s failed (left in the DLQ): %s", id, why);
        rc = -1;
    }
    if (rc == 0) {
        if (again) x->res->merged++;
        else x->res->replayed++, dlq_seen(x, origin, origin_id, 1);
    }
    return rc;
}

/* The id of the DLQ's newest entry into last ("" when it is empty). */
static int dlq_last_id(redisContext *c, const char *dlq_key, char *last, size_t lastlen, char *err, size_t errlen)
{
    const char *argv[] = {"XREVRANGE", dlq_key, "+", "-", "COUNT", "1"};
    redisReply *r = redisCommandArgv(c, 6, argv, NULL);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        snprintf(err, errlen, "XREVRANGE %s: %s", dlq_key, r ? r->str : c->errstr);
        if (r) freeReplyObject(r);
        return -1;
    }
    last[0] = '\0';
    if (r->elements == 1 && r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2 &&
        r->element[0]->element[0]->type == REDIS_REPLY_STRING)
        snprintf(last, lastlen, "%s", r->element[0]->element[0]->str);
    freeReplyObject(r);
    return 0;
}

/* Walk the DLQ (or one entry) calling fn on each entry, page by page. The
 * walk ends at the newest entry as of its start: a replay whose entries are
 * dead-lettered again, or a purge while consumers keep dead-lettering, never
 * chases or deletes what arrived after it began. */
static int dlq_walk(redisContext *c, const char *dlq_key, const char *entry_id, long *done,
                    int (*fn)(redisContext *, const char *, const redisReply *, void *, char *, size_t), void *ud,
                    char *err, size_t errlen)
{
    char from[64], to[64];
    *done = 0;
    snprintf(from, sizeof from, "%s", entry_id ? entry_id : "-");
    if (entry_id) snprintf(to, sizeof to, "%s", entry_id);
    else if (dlq_last_id(c, dlq_key, to, sizeof to, err, errlen) < 0) return -1;
    else if (!to[0]) return 0; /* nothing to walk */
    for (;;) {
        redisReply *r;
        if (dlq_range(c, dlq_key, from, to, 100, &r, err, errlen) < 0) return -1;
        size_t n = r->elements;
        if (entry_id && n == 0) {
            snprintf(err, errlen, "no entry %s in %s", entry_id, dlq_key);
            freeReplyObject(r);
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            const redisReply *e = r->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || !dlq_is_entry(e->element[1]) ||
                fn(c, dlq_key, e, ud, err, errlen) < 0) {
                if (!err[0]) snprintf(err, errlen, "entry %s is not a DLQ entry", e->element[0]->str);
                freeReplyObject(r);
                return -1;
            }
            (*done)++;
            snprintf(from, sizeof from, "(%s", e->element[0]->str);
        }
        freeReplyObject(r);
        if (entry_id || n < 100) return 0;
    }
}

int dlq_replay(redisContext *c, const char *dlq_key, const char *entry_id, const dlq_replay_opts_t *o,
               dlq_replay_result_t *res, char *err, size_t errlen)
{
    long seen;
    dlq_replay_ctx_t x = {o, res, NULL, 0, 0, 0};
    err[0] = '\0';
    memset(res, 0, sizeof *res);
    if (o && o->nset > DLQ_MAX_SET) return snprintf(err, errlen, "at most %d --set options", DLQ_MAX_SET), -1;
    for (int k = 0; o && k < o->nset; k++)
        if (!strchr(o->set[k], '=') || o->set[k][0] == '=')
            return snprintf(err, errlen, "--set wants FIELD=VALUE, not '%.60s'", o->set[k]), -1;
    int rc = dlq_walk(c, dlq_key, entry_id, &seen, dlq_replay_one, &x, err, errlen);
    if (rc == 0 && entry_id && res->replayed) /* the other groups' copies of that event */
        x.merge_only = 1, rc = dlq_walk(c, dlq_key, NULL, &seen, dlq_replay_one, &x, err, errlen);
    for (size_t i = 0; i < x.nseen; i++) free(x.seen[i]);
    free(x.seen);
    return rc;
}

static int dlq_purge_one(redisContext *c, const char *dlq_key, const redisReply *e, void *ud, char *err, size_t errlen)
{
    (void)ud;
    const char *argv[] = {"XDEL", dlq_key, e->element[0]->str};
    redisReply *r = redisCommandArgv(c, 3, argv, NULL);
    int ok = r && r->type == REDIS_REPLY_INTEGER;
    if (!ok) snprintf(err, errlen, "XDEL %s: %s", e->element[0]->str, r ? r->str : c->errstr);
    if (r) freeReplyObject(r);
    return ok ? 0 : -1;
}

int dlq_purge(redisContext *c, const char *dlq_key, const char *entry_id, long *done, char *err, size_t errlen)
{
    err[0] = '\0';
    return dlq_walk(c, dlq_key, entry_id, done, dlq_purge_one, NULL, err, errlen);
}
