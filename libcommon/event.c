/* event.c — envelope ids, encoding and validated decoding (see event.h). */
#include "event.h"
#include "clock.h"
#include "digest.h"
#include "numfmt.h"
#include "utf8.h"
#include "proto.h"

#include <errno.h>
#include <math.h>
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
    ev->v = EVENT_V_FLAT;
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

int event_schema_version(int v) { return v == EVENT_V_LEGACY || v == EVENT_V_FLAT ? 1 : 0; }

/* Append n bytes to enc's text; the offset they start at, or -1 on OOM. */
static long enc_put(event_enc_t *enc, const char *s, size_t n)
{
    if (enc->len + n + 1 > enc->cap) {
        size_t cap = enc->cap ? enc->cap : 512;
        while (cap < enc->len + n + 1) cap *= 2;
        char *t = realloc(enc->text, cap);
        if (!t) return -1;
        enc->text = t, enc->cap = cap;
    }
    long at = (long)enc->len;
    memcpy(enc->text + enc->len, s, n);
    enc->len += n;
    enc->text[enc->len++] = '\0';
    return at;
}

/* One payload value as v2 text, appended to enc: its offset, or -1. */
static long enc_value(event_enc_t *enc, const json_t *v, int kind)
{
    char num[40];
    int n;
    switch (kind == PROTO_FIELD_JSON ? JSON_OBJECT : json_typeof(v)) {
    case JSON_STRING: return enc_put(enc, json_string_value(v), json_string_length(v));
    case JSON_INTEGER: /* in a number field it is read back as a double: written as that double */
        n = kind == PROTO_FIELD_NUMBER ? numfmt_exact(num, sizeof num, (double)json_integer_value(v))
                                       : snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL: n = numfmt_exact(num, sizeof num, json_real_value(v)); break;
    case JSON_TRUE: return enc_put(enc, "true", 4);
    case JSON_FALSE: return enc_put(enc, "false", 5);
    default: {
        char *j = json_dumps(v, numfmt_json_flags_exact(v, JSON_COMPACT | JSON_ENCODE_ANY));
        long at = j ? enc_put(enc, j, strlen(j)) : -1;
        free(j);
        return at;
    }
    }
    return enc_put(enc, num, (size_t)n);
}

int event_encode(const event_t *ev, event_enc_t *enc, char *err, size_t errlen)
{
    static const char *const names[EVENT_ENVELOPE_FIELDS] = {"id", "type", "v", "ts", "source", "trace"};
    long off[EVENT_FIELDS_MAX];
    size_t vlen[EVENT_FIELDS_MAX];
    const char *key[EVENT_FIELDS_MAX];
    char vbuf[16], ts[24];
    const proto_type_t *pt = proto_type(ev->type, event_schema_version(ev->v));
    enc->n = 0, enc->len = 0;
    snprintf(vbuf, sizeof vbuf, "%d", EVENT_V_FLAT); /* a decoded v1 event is written as v2 too */
    snprintf(ts, sizeof ts, "%lld", (long long)ev->ts);
    const char *head[EVENT_ENVELOPE_FIELDS] = {ev->id, ev->type, vbuf, ts, ev->source, ev->trace};
    for (int i = 0; i < EVENT_ENVELOPE_FIELDS; i++) {
        key[enc->n] = names[i];
        vlen[enc->n] = strlen(head[i]);
        if ((off[enc->n++] = enc_put(enc, head[i], strlen(head[i]))) < 0) goto oom;
    }
    const char *k;
    json_t *v;
    json_object_foreach(ev->data, k, v) {
        if (enc->n == EVENT_FIELDS_MAX)
            return snprintf(err, errlen, "%s: more than %d fields", ev->type, EVENT_FIELDS_MAX), -1;
        key[enc->n] = k;
        size_t before = enc->len;
        if ((off[enc->n] = enc_value(enc, v, proto_type_field_kind(pt, k, strlen(k)))) < 0) goto oom;
        vlen[enc->n++] = enc->len - before - 1;
    }
    for (size_t i = 0; i < enc->n; i++) /* text is where it stays now */
        enc->f[i] = (event_field_t){key[i], strlen(key[i]), enc->text + off[i], vlen[i]};
    return 0;
oom:
    snprintf(err, errlen, "out of memory encoding %s", ev->type);
    return -1;
}

void event_enc_free(event_enc_t *enc)
{
    free(enc->text);
    memset(enc, 0, sizeof *enc);
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

/* Which envelope field (F_*) a field name is, F_COUNT for a payload field. */
static int event_envelope_index(const event_field_t *f)
{
    static const unsigned char lens[F_COUNT] = {2, 4, 1, 2, 6, 5, 4};
    if (f->name_len > 6) return F_COUNT;
    for (int k = 0; k < F_COUNT; k++)
        if (f->name_len == lens[k] && f->name[0] == event_names[k][0] && memcmp(f->name, event_names[k], f->name_len) == 0)
            return k;
    return F_COUNT;
}

/* Pick the envelope fields out of the list; duplicates are an error. data
 * is left NULL when absent (a v2 entry has none). */
static int event_collect(const event_field_t *f, size_t n, const event_field_t *got[F_COUNT],
                         char *err, size_t errlen)
{
    memset(got, 0, sizeof(got[0]) * F_COUNT);
    if (n > EVENT_FIELDS_MAX) {
        snprintf(err, errlen, "entry has %zu fields (max %d)", n, EVENT_FIELDS_MAX);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        int k = event_envelope_index(&f[i]);
        if (k == F_COUNT) continue;
        if (got[k]) {
            snprintf(err, errlen, "field '%s' appears twice", event_names[k]);
            return -1;
        }
        got[k] = &f[i];
    }
    for (int k = 0; k < F_DATA; k++)
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

/* JSON number syntax: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int event_json_number(const char *s, size_t n, int integer)
{
    size_t i = 0;
#define DIGITS()                                                                                                  \
    do {                                                                                                          \
        size_t d0 = i;                                                                                            \
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;                                                          \
        if (i == d0) return 0;                                                                                    \
    } while (0)
    if (i < n && s[i] == '-') i++;
    if (i < n && s[i] == '0') i++;
    else DIGITS();
    if (integer) return i == n;
    if (i < n && s[i] == '.') {
        i++;
        DIGITS();
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        DIGITS();
    }
#undef DIGITS
    return i == n;
}

/* One v2 field's text read as its kind into a new JSON value; NULL with
 * the reason in err when the text is not of that kind. */
static json_t *event_flat_value(int kind, const event_field_t *f, char *err, size_t errlen)
{
    char buf[64];
    const char *what = "text";
    json_t *j = NULL;
    json_error_t je;
    switch (kind) {
    case PROTO_FIELD_STRING:
        if (memchr(f->val, '\0', f->val_len) || !(j = json_stringn(f->val, f->val_len))) what = "UTF-8 text";
        break;
    case PROTO_FIELD_BOOLEAN:
        what = "true or false";
        if (f->val_len == 4 && !memcmp(f->val, "true", 4)) j = json_true();
        else if (f->val_len == 5 && !memcmp(f->val, "false", 5)) j = json_false();
        break;
    case PROTO_FIELD_INTEGER:
    case PROTO_FIELD_NUMBER:
        what = kind == PROTO_FIELD_INTEGER ? "an integer" : "a number";
        if (f->val_len < sizeof buf && event_json_number(f->val, f->val_len, kind == PROTO_FIELD_INTEGER)) {
            char *end;
            memcpy(buf, f->val, f->val_len);
            buf[f->val_len] = '\0';
            errno = 0;
            if (kind == PROTO_FIELD_INTEGER) {
                long long v = strtoll(buf, &end, 10);
                if (!errno) j = json_integer(v);
            } else {
                double v = strtod(buf, &end);
                if (!errno || v != 0) j = isfinite(v) ? json_real(v) : NULL; /* underflow reads as 0 or tiny */
            }
        }
        break;
    default:
        what = "JSON";
        j = json_loadb(f->val, f->val_len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
        if (!j) {
            snprintf(err, errlen, "data.%.*s: not JSON: %s at byte %d", (int)(f->name_len > 64 ? 64 : f->name_len),
                     f->name, je.text, je.position);
            return NULL;
        }
    }
    if (!j)
        snprintf(err, errlen, "data.%.*s: '%.*s' is not %s", (int)(f->name_len > 64 ? 64 : f->name_len), f->name,
                 (int)(f->val_len > 40 ? 40 : f->val_len), f->val, what);
    return j;
}

/* Can a field name be a JSON key: 1..127 bytes of UTF-8 without NUL. */
static int event_name_ok(const event_field_t *f)
{
    return f->name_len > 0 && f->name_len < 128 && !memchr(f->name, '\0', f->name_len) && utf8_valid(f->name, f->name_len);
}

/* A v2 entry's payload fields as a JSON object. strict: every field must be
 * one of the schema's and read as its kind (else NULL with err); not
 * strict: anything that does not is kept as text. */
static json_t *event_flat_payload(const proto_type_t *pt, const char *type, const event_field_t *f, size_t n,
                                  int strict, char *err, size_t errlen)
{
    json_t *o = json_object();
    char name[128];
    size_t bytes = 0;
    uint64_t seen = 0; /* the schema's fields had so far, by their place in its table */
    for (size_t i = 0; o && i < n; i++) {
        if (event_envelope_index(&f[i]) < F_DATA) continue;
        bytes += f[i].name_len + f[i].val_len;
        if (strict && bytes > EVENT_DATA_MAX) {
            snprintf(err, errlen, "data: %zu bytes of payload fields is over the limit of %d", bytes, EVENT_DATA_MAX);
            goto bad;
        }
        int at = 0;
        const char *known = NULL;
        int kind = f[i].name_len ? proto_type_field(pt, f[i].name, f[i].name_len, &at, &known) : 0;
        if (!kind) { /* not the schema's: refused, or shown under its own name */
            if (!event_name_ok(&f[i])) {
                if (!strict) continue;
                snprintf(err, errlen, "a field name must be 1..127 bytes of UTF-8 text");
                goto bad;
            }
            memcpy(name, f[i].name, f[i].name_len);
            name[f[i].name_len] = '\0';
            if (strict) {
                snprintf(err, errlen, "data.%s: not a field of %s (unknown fields are refused)", name, type);
                goto bad;
            }
            if (!json_object_get(o, name)) json_object_set_new_nocheck(o, name, utf8_json_string(f[i].val, f[i].val_len));
            continue;
        }
        if (seen >> at & 1) {
            if (!strict) continue;
            snprintf(err, errlen, "field '%s' appears twice", known);
            goto bad;
        }
        seen |= (uint64_t)1 << at;
        json_t *v = event_flat_value(kind, &f[i], err, errlen);
        if (!v && strict) goto bad;
        if (!v) v = utf8_json_string(f[i].val, f[i].val_len);
        json_object_set_new_nocheck(o, known, v);
    }
    if (!o) snprintf(err, errlen, "out of memory");
    return o;
bad:
    json_decref(o);
    return NULL;
}

json_t *event_payload_json(const event_field_t *fields, size_t n)
{
    const event_field_t *g[F_COUNT];
    char err[256], type[EVENT_TYPE_MAX + 1] = "";
    int64_t v = 0;
    memset(g, 0, sizeof g);
    for (size_t i = 0; i < n; i++) {
        int k = event_envelope_index(&fields[i]);
        if (k < F_COUNT && !g[k]) g[k] = &fields[i];
    }
    if (g[F_V]) event_parse_i64(g[F_V]->val, g[F_V]->val_len, &v);
    if (v != EVENT_V_FLAT) { /* v1, or no v at all: the data field as it reads, or as its text */
        if (!g[F_DATA]) return NULL;
        json_t *j = json_loadb(g[F_DATA]->val, g[F_DATA]->val_len, JSON_DECODE_ANY, NULL);
        return j ? j : utf8_json_string(g[F_DATA]->val, g[F_DATA]->val_len);
    }
    if (g[F_TYPE] && g[F_TYPE]->val_len < sizeof type) {
        memcpy(type, g[F_TYPE]->val, g[F_TYPE]->val_len);
        type[g[F_TYPE]->val_len] = '\0';
    }
    return event_flat_payload(proto_type(type, event_schema_version((int)v)), type, fields, n, 0, err, sizeof err);
}

int event_decode(event_t *ev, const event_field_t *fields, size_t n, char *err, size_t errlen)
{
    const event_field_t *g[F_COUNT];
    json_error_t je;
    memset(ev, 0, sizeof *ev);
    if (event_collect(fields, n, g, err, errlen) < 0 || event_decode_head(ev, g, err, errlen) < 0)
        goto fail;
    int sv = event_schema_version(ev->v);
    const proto_type_t *pt = proto_type(ev->type, sv);
    if (!pt) {
        if (sv || !proto_latest_version(ev->type)) proto_validate(ev->type, sv, NULL, err, errlen); /* words the reason */
        else snprintf(err, errlen, "type %.64s: version %d is not supported", ev->type, ev->v);
        goto fail;
    }
    if (ev->v == EVENT_V_FLAT) {
        if (!(ev->data = event_flat_payload(pt, ev->type, fields, n, 1, err, errlen))) goto fail;
    } else {
        if (!g[F_DATA]) {
            snprintf(err, errlen, "missing field 'data' (a v1 entry holds its payload there)");
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
    }
    if (proto_type_validate(pt, ev->data, err, errlen) < 0 ||
        event_check_times(ev->data, ev->ts, clock_wall_ms(), err, errlen) < 0)
        goto fail;
    return 0;
fail:
    event_clear(ev);
    return -1;
}
