/* event.c — envelope ids, encoding and validated decoding (see event.h). */
#include "event.h"
#include "clock.h"
#include "digest.h"
#include "proto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

static char event_src[EVENT_SOURCE_MAX + 1] = "unknown";
static int64_t event_skew_ms = EVENT_CLOCK_SKEW_MS;

void event_set_clock_skew_ms(int64_t ms) { event_skew_ms = ms > 0 ? ms : EVENT_CLOCK_SKEW_MS; }
int64_t event_clock_skew_ms(void) { return event_skew_ms; }

int event_check_times(const json_t *data, int64_t ts, int64_t now, char *err, size_t errlen)
{
    static const char *const fields[] = {"open_time", "event_time"};
    if (ts > now + event_skew_ms) {
        snprintf(err, errlen, "ts: %lld is %lld ms ahead of this process's clock (more than QT_MAX_CLOCK_SKEW_MS=%lld)",
                 (long long)ts, (long long)(ts - now), (long long)event_skew_ms);
        return -1;
    }
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const json_t *t = json_object_get(data, fields[i]);
        if (!json_is_integer(t) || json_integer_value(t) <= ts + event_skew_ms) continue;
        snprintf(err, errlen,
                 "data.%s: %lld is %lld ms after the entry was written (ts %lld; more than QT_MAX_CLOCK_SKEW_MS=%lld)",
                 fields[i], (long long)json_integer_value(t), (long long)(json_integer_value(t) - ts), (long long)ts,
                 (long long)event_skew_ms);
        return -1;
    }
    return 0;
}

void event_set_source(const char *service)
{
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    snprintf(event_src, sizeof event_src, "%s/%s-%ld", service, host, (long)getpid());
}

const char *event_source(void) { return event_src; }

/* Random bytes from a pool refilled by getrandom(); ids are not secrets. */
static void event_random(unsigned char *out, size_t n)
{
    static unsigned char pool[4096];
    static size_t left;
    static pid_t owner;
    if (owner != getpid()) { /* never share a pool with a forked child */
        left = 0;
        owner = getpid();
    }
    while (n > 0) {
        if (left == 0) {
            ssize_t r = getrandom(pool, sizeof pool, 0);
            if (r <= 0) { /* cannot happen on Linux >= 3.17; keep ids unique anyway */
                for (size_t i = 0; i < sizeof pool; i++) pool[i] = (unsigned char)rand();
                r = sizeof pool;
            }
            left = (size_t)r;
        }
        size_t take = n < left ? n : left;
        memcpy(out, pool + sizeof pool - left, take);
        left -= take;
        out += take;
        n -= take;
    }
}

void event_new_id(char out[27])
{
    static const char b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    unsigned char r[10];
    uint64_t ms = (uint64_t)clock_wall_ms();
    event_random(r, sizeof r);
    for (int i = 9; i >= 0; i--) { /* 48-bit time: 10 characters */
        out[i] = b32[ms & 31];
        ms >>= 5;
    }
    /* 80 random bits: 16 characters of 5 bits */
    for (int i = 0; i < 16; i++) {
        int bit = i * 5, byte = bit / 8, off = bit % 8;
        unsigned v = (unsigned)r[byte] << 8 | (byte + 1 < 10 ? r[byte + 1] : 0);
        out[10 + i] = b32[(v >> (11 - off)) & 31];
    }
    out[26] = '\0';
}

void event_derive_id(const char *name, char out[37])
{
    unsigned char h[32];
    digest_sha256(name, strlen(name), h);
    h[6] = (unsigned char)((h[6] & 0x0f) | 0x80); /* version 8: custom, name-based */
    h[8] = (unsigned char)((h[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    static const char hex[] = "0123456789abcdef";
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
        out[o++] = hex[h[i] >> 4];
        out[o++] = hex[h[i] & 15];
    }
    out[o] = '\0';
}

void event_clear(event_t *ev)
{
    json_decref(ev->data);
    memset(ev, 0, sizeof *ev);
}

/* Ids and traces: 1..64 of [A-Za-z0-9-_.:]. */
static int event_id_ok(const char *s, size_t n)
{
    if (n == 0 || n > EVENT_ID_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':'))
            return 0;
    }
    return 1;
}

int event_make(event_t *ev, const char *type, json_t *data, const char *trace_opt,
               const char *id_opt, char *err, size_t errlen)
{
    memset(ev, 0, sizeof *ev);
    int v = proto_latest_version(type);
    if (!v) {
        snprintf(err, errlen, "type: unknown event type '%.64s'", type);
        json_decref(data);
        return -1;
    }
    if (proto_validate(type, v, data, err, errlen) < 0 ||
        (id_opt && !event_id_ok(id_opt, strlen(id_opt))) ||
        (trace_opt && *trace_opt && !event_id_ok(trace_opt, strlen(trace_opt)))) {
        if (id_opt && !event_id_ok(id_opt, strlen(id_opt))) snprintf(err, errlen, "id: not a valid event id");
        else if (trace_opt && *trace_opt && !event_id_ok(trace_opt, strlen(trace_opt)))
            snprintf(err, errlen, "trace: not a valid event id");
        json_decref(data);
        return -1;
    }
    int64_t now = clock_wall_ms();
    if (event_check_times(data, now, now, err, errlen) < 0) {
        json_decref(data);
        return -1;
    }
    if (id_opt) snprintf(ev->id, sizeof ev->id, "%s", id_opt);
    else event_new_id(ev->id);
    snprintf(ev->type, sizeof ev->type, "%s", type);
    ev->v = v;
    ev->ts = now;
    snprintf(ev->source, sizeof ev->source, "%s", event_src);
    snprintf(ev->trace, sizeof ev->trace, "%s", (trace_opt && *trace_opt) ? trace_opt : ev->id);
    ev->data = data;
    return 0;
}

char *event_data_json(const event_t *ev)
{
    return json_dumps(ev->data, JSON_COMPACT | JSON_REAL_PRECISION(15));
}

void event_to_fields(const event_t *ev, const char *data_json, event_field_t f[EVENT_ENVELOPE_FIELDS],
                     event_numbuf_t *buf)
{
    static const char *const names[EVENT_ENVELOPE_FIELDS] = {"id", "type", "v", "ts", "source", "trace", "data"};
    snprintf(buf->v, sizeof buf->v, "%d", ev->v);
    snprintf(buf->ts, sizeof buf->ts, "%lld", (long long)ev->ts);
    const char *vals[EVENT_ENVELOPE_FIELDS] = {ev->id, ev->type, buf->v, buf->ts, ev->source, ev->trace, data_json};
    for (int i = 0; i < EVENT_ENVELOPE_FIELDS; i++)
        f[i] = (event_field_t){names[i], strlen(names[i]), vals[i], strlen(vals[i])};
}

/* Parse a decimal integer field of at most 19 digits (optional leading '-'). */
static int event_parse_i64(const char *s, size_t n, int64_t *out)
{
    char buf[24];
    if (n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

enum { F_ID, F_TYPE, F_V, F_TS, F_SOURCE, F_TRACE, F_DATA, F_COUNT };
static const char *const event_names[F_COUNT] = {"id", "type", "v", "ts", "source", "trace", "data"};

/* Pick the envelope fields out of the list; duplicates are an error. */
static int event_collect(const event_field_t *f, size_t n, const event_field_t *got[F_COUNT],
                         char *err, size_t errlen)
{
    memset(got, 0, sizeof(got[0]) * F_COUNT);
    if (n > EVENT_FIELDS_MAX) {
        snprintf(err, errlen, "entry has %zu fields (max %d)", n, EVENT_FIELDS_MAX);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < F_COUNT; k++) {
            if (f[i].name_len != strlen(event_names[k]) ||
                memcmp(f[i].name, event_names[k], f[i].name_len) != 0)
                continue;
            if (got[k]) {
                snprintf(err, errlen, "field '%s' appears twice", event_names[k]);
                return -1;
            }
            got[k] = &f[i];
        }
    for (int k = 0; k < F_COUNT; k++)
        if (!got[k]) {
            snprintf(err, errlen, "missing field '%s'", event_names[k]);
            return -1;
        }
    return 0;
}

/* Copy a bounded text field, refusing embedded NULs and over-long values. */
static int event_copy_text(char *dst, size_t cap, const event_field_t *f, const char *what,
                           char *err, size_t errlen)
{
    if (f->val_len == 0 || f->val_len >= cap || memchr(f->val, '\0', f->val_len)) {
        snprintf(err, errlen, "%s: must be 1..%zu bytes of text", what, cap - 1);
        return -1;
    }
    memcpy(dst, f->val, f->val_len);
    dst[f->val_len] = '\0';
    return 0;
}

/* The scalar envelope fields: id, type, v, ts, source, trace. */
static int event_decode_head(event_t *ev, const event_field_t *g[F_COUNT], char *err, size_t errlen)
{
    int64_t v;
    if (!event_id_ok(g[F_ID]->val, g[F_ID]->val_len)) {
        snprintf(err, errlen, "id: must be 1..%d of A-Z a-z 0-9 - _ . :", EVENT_ID_MAX);
        return -1;
    }
    if (!event_id_ok(g[F_TRACE]->val, g[F_TRACE]->val_len)) {
        snprintf(err, errlen, "trace: must be 1..%d of A-Z a-z 0-9 - _ . :", EVENT_ID_MAX);
        return -1;
    }
    if (event_copy_text(ev->id, sizeof ev->id, g[F_ID], "id", err, errlen) < 0 ||
        event_copy_text(ev->trace, sizeof ev->trace, g[F_TRACE], "trace", err, errlen) < 0 ||
        event_copy_text(ev->type, sizeof ev->type, g[F_TYPE], "type", err, errlen) < 0 ||
        event_copy_text(ev->source, sizeof ev->source, g[F_SOURCE], "source", err, errlen) < 0)
        return -1;
    if (event_parse_i64(g[F_V]->val, g[F_V]->val_len, &v) < 0 || v < 1 || v > 1000) {
        snprintf(err, errlen, "v: must be an integer 1..1000");
        return -1;
    }
    ev->v = (int)v;
    if (event_parse_i64(g[F_TS]->val, g[F_TS]->val_len, &ev->ts) < 0 || ev->ts < 0) {
        snprintf(err, errlen, "ts: must be epoch milliseconds");
        return -1;
    }
    return 0;
}

int event_decode(event_t *ev, const event_field_t *fields, size_t n, char *err, size_t errlen)
{
    const event_field_t *g[F_COUNT];
    json_error_t je;
    memset(ev, 0, sizeof *ev);
    if (event_collect(fields, n, g, err, errlen) < 0 || event_decode_head(ev, g, err, errlen) < 0)
        goto fail;
    if (!proto_known(ev->type, ev->v)) {
        proto_validate(ev->type, ev->v, NULL, err, errlen); /* words the reason */
        goto fail;
    }
    if (g[F_DATA]->val_len > EVENT_DATA_MAX) {
        snprintf(err, errlen, "data: %zu bytes is over the limit of %d", g[F_DATA]->val_len, EVENT_DATA_MAX);
        goto fail;
    }
    ev->data = json_loadb(g[F_DATA]->val, g[F_DATA]->val_len, JSON_REJECT_DUPLICATES, &je);
    if (!ev->data) {
        snprintf(err, errlen, "data: not JSON: %s at byte %d", je.text, je.position);
        goto fail;
    }
    if (!json_is_object(ev->data)) {
        snprintf(err, errlen, "data: must be a JSON object");
        goto fail;
    }
    if (proto_validate(ev->type, ev->v, ev->data, err, errlen) < 0 ||
        event_check_times(ev->data, ev->ts, clock_wall_ms(), err, errlen) < 0)
        goto fail;
    return 0;
fail:
    event_clear(ev);
    return -1;
}
