/* event.h — the stream entry envelope of DESIGN §2.
 *
 * An entry is a flat field list: id, type, v, ts, source, trace, then the
 * payload. Contract v2 (v = 2) writes each payload field as a stream field
 * of its own; a legacy v1 entry (v = 1) holds the payload as one `data`
 * JSON object. This module makes events (fresh or name-derived ids,
 * producer clock, source), writes them as v2 fields, and decodes entries of
 * either layout, rejecting anything outside the contract with a reason. */
#ifndef QT_EVENT_H
#define QT_EVENT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define EVENT_ID_MAX 64
#define EVENT_TYPE_MAX 64
#define EVENT_SOURCE_MAX 128
#define EVENT_DATA_MAX 65536 /* bytes of the data field */
#define EVENT_FIELDS_MAX 64  /* fields in one entry, metadata included */

typedef struct event {
    char id[EVENT_ID_MAX + 1];
    char type[EVENT_TYPE_MAX + 1];
    int v;
    int64_t ts; /* producer clock, epoch ms */
    char source[EVENT_SOURCE_MAX + 1];
    char trace[EVENT_ID_MAX + 1];
    json_t *data; /* owned reference; event_clear() drops it */
} event_t;

/* One field of a raw entry; pointers are borrowed (e.g. from a hiredis reply). */
typedef struct event_field {
    const char *name;
    size_t name_len;
    const char *val;
    size_t val_len;
} event_field_t;

/* Set this process's source: "<service>/<hostname>-<pid>". */
void event_set_source(const char *service);
const char *event_source(void);

/* A new ULID (26 characters of Crockford base32) into out[27]. */
void event_new_id(char out[27]);
/* A stable id derived from a name (SHA-256, UUID layout, 36 chars) into out[37].
 * The same name always gives the same id: use it for events that a retried
 * handler may publish again, so consumers can drop the duplicate. */
void event_derive_id(const char *name, char out[37]);

/* Fill ev for publishing: validates data against the contract, then sets a
 * new id (or id_opt when given), ts now, source, trace (trace_opt or the new
 * id). data is stolen in every case. Returns -1 with err on invalid data. */
int event_make(event_t *ev, const char *type, json_t *data, const char *trace_opt,
               const char *id_opt, char *err, size_t errlen);

/* Release ev->data and zero the struct. Safe on a zeroed event. */
void event_clear(event_t *ev);

/* Compact JSON text of ev->data, malloc'd; the caller frees. NULL on OOM. */
char *event_data_json(const event_t *ev);

#define EVENT_V_LEGACY 1 /* the payload as one `data` field of JSON (contract v1) */
#define EVENT_V_FLAT 2   /* each payload field a stream field (contract v2) */
#define EVENT_ENVELOPE_FIELDS 6 /* id, type, v, ts, source, trace */

/* The payload schema version (proto/schemas/<type>.v<N>.json) an entry of
 * version v carries: both layouts carry schema 1. 0 for an unknown v. */
int event_schema_version(int v);

/* An event as the fields of a v2 entry: the envelope, then each payload
 * field in ev->data's order. Numbers are written exactly and as short as
 * they can be (0.7, not 0.69999999999999996), integers as digits, booleans
 * true/false, strings bare, objects and arrays as compact JSON. Every
 * pointer of f points into text (or ev); free with event_enc_free. */
typedef struct event_enc {
    event_field_t f[EVENT_FIELDS_MAX];
    size_t n;
    char *text;
    size_t len, cap;
} event_enc_t;
/* 0, or -1 with err (out of memory, a payload of more than EVENT_FIELDS_MAX fields). */
int event_encode(const event_t *ev, event_enc_t *enc, char *err, size_t errlen);
void event_enc_free(event_enc_t *enc);

/* The payload of an entry's fields as JSON, for showing it: v1's data
 * parsed (or as its text when it is not JSON), v2's fields as an object,
 * read as their schema says (a field the schema lacks, or one that does not
 * read as its kind, shown as its text). No validation. NULL when the entry
 * has no payload. */
json_t *event_payload_json(const event_field_t *fields, size_t n);

/* Times in the future. A bar cannot open, and an event cannot happen, after
 * the entry was written: a data.open_time or data.event_time later than the
 * entry's ts, or a ts later than this process's clock, by more than the
 * skew (QT_MAX_CLOCK_SKEW_MS, default EVENT_CLOCK_SKEW_MS) breaks the
 * contract. event_make refuses such data and event_decode such an entry;
 * history replayed years later stays valid (its times are behind ts). */
#define EVENT_CLOCK_SKEW_MS 60000
void event_set_clock_skew_ms(int64_t ms);
int64_t event_clock_skew_ms(void);
/* -1 with a reason when data's times or ts lead as above; now is epoch ms. */
int event_check_times(const json_t *data, int64_t ts, int64_t now, char *err, size_t errlen);

/* Decode and validate an entry's fields into ev (which must be zeroed or
 * cleared), v1 or v2. A v2 entry's every other field is a payload field, so
 * one its schema lacks is refused; a v1 entry's fields besides the envelope
 * and data are ignored. Returns -1 with a reason in err naming the field
 * ("missing field 'type'", "data: not JSON: ...", "data.confidence: ...",
 * "data.close: 'x' is not a number"). ev->v is the entry's v. */
int event_decode(event_t *ev, const event_field_t *fields, size_t n, char *err, size_t errlen);

#endif
