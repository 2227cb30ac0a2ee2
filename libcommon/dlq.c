/* dlq.c — list, replay and purge dead-letter streams (see dlq.h). */
#include "dlq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const dlq_meta[DLQ_META_FIELDS] = {
    "origin_stream", "origin_id", "group", "consumer", "deliveries", "error", "failed_at"};

/* Is fields (a flat name/value array) a DLQ entry? Checks the trailing metadata. */
static int dlq_is_entry(const redisReply *f)
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
    for (int i = 0; i < DLQ_META_FIELDS; i++) json_object_set_new(o, dlq_meta[i], json_string(dlq_meta_value(f, i)));
    for (size_t i = 0; i + 1 < orig; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];
        json_t *val = json_stringn_nocheck(v->str, v->len);
        if (v->len > 4096) { /* keep listings readable; show the size instead */
            char note[64];
            snprintf(note, sizeof note, "<%zu bytes>", v->len);
            json_decref(val);
            val = json_string(note);
        }
        json_object_setn_new_nocheck(fields, k->str, k->len, val);
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
    const char *data = json_string_value(json_object_get(json_object_get(*out, "fields"), "data"));
    json_t *parsed = data ? json_loads(data, JSON_DECODE_ANY, NULL) : NULL;
    json_object_set_new(*out, "data_json", parsed ? parsed : json_null());
    freeReplyObject(r);
    return 0;
}

/* MULTI; XADD origin * <original fields>; XDEL dlq id; EXEC. */
static int dlq_replay_one(redisContext *c, const char *dlq_key, const redisReply *e, char *err, size_t errlen)
{
    const redisReply *f = e->element[1];
    const char *origin = dlq_meta_value(f, 0);
    size_t orig = f->elements - 2 * DLQ_META_FIELDS, klen = strlen(dlq_key);
    if (strlen(origin) + 4 != klen || strncmp(dlq_key, origin, klen - 4) != 0 || orig == 0) {
        snprintf(err, errlen, "entry %s: origin_stream '%.100s' does not belong to %s", e->element[0]->str, origin, dlq_key);
        return -1;
    }
    const char **argv = malloc((orig + 3) * sizeof *argv);
    size_t *lens = malloc((orig + 3) * sizeof *lens);
    if (!argv || !lens) {
        free(argv);
        free(lens);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    argv[0] = "XADD", lens[0] = 4;
    argv[1] = origin, lens[1] = strlen(origin);
    argv[2] = "*", lens[2] = 1;
    for (size_t i = 0; i < orig; i++) argv[3 + i] = f->element[i]->str, lens[3 + i] = f->element[i]->len;
    const char *del[] = {"XDEL", dlq_key, e->element[0]->str};
    redisAppendCommand(c, "MULTI");
    redisAppendCommandArgv(c, (int)orig + 3, argv, lens);
    redisAppendCommandArgv(c, 3, del, NULL);
    redisAppendCommand(c, "EXEC");
    free(argv);
    free(lens);
    int rc = 0;
    for (int i = 0; i < 4; i++) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK || !r || r->type == REDIS_REPLY_ERROR ||
            (i == 3 && r->type != REDIS_REPLY_ARRAY)) {
            if (!rc) snprintf(err, errlen, "replay of %s failed: %s", e->element[0]->str, r ? r->str : c->errstr);
            rc = -1;
        }
        if (r) freeReplyObject(r);
        if (!r) break;
    }
    return rc;
}

/* Walk the DLQ (or one entry) calling fn on each entry. */
static int dlq_walk(redisContext *c, const char *dlq_key, const char *entry_id, long *done,
                    int (*fn)(redisContext *, const char *, const redisReply *, char *, size_t), char *err, size_t errlen)
{
    *done = 0;
    for (;;) {
        redisReply *r;
        const char *from = entry_id ? entry_id : "-", *to = entry_id ? entry_id : "+";
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
                fn(c, dlq_key, e, err, errlen) < 0) {
                if (!err[0]) snprintf(err, errlen, "entry %s is not a DLQ entry", e->element[0]->str);
                freeReplyObject(r);
                return -1;
            }
            (*done)++;
        }
        freeReplyObject(r);
        if (entry_id || n == 0) return 0; /* each pass removes what it handled */
    }
}

int dlq_replay(redisContext *c, const char *dlq_key, const char *entry_id, long *done, char *err, size_t errlen)
{
    err[0] = '\0';
    return dlq_walk(c, dlq_key, entry_id, done, dlq_replay_one, err, errlen);
}

static int dlq_purge_one(redisContext *c, const char *dlq_key, const redisReply *e, char *err, size_t errlen)
{
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
    return dlq_walk(c, dlq_key, entry_id, done, dlq_purge_one, err, errlen);
}
