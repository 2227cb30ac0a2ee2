/* event.h — the stream entry envelope of DESIGN §2.
 *
 * An entry is a flat field list: id, type, v, ts, source, trace, data. This
 * module makes events (fresh or name-derived ids, producer clock, source),
 * turns them into the data JSON text for XADD, and decodes entries read
 * from a stream, rejecting anything outside the contract with a reason. */
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

#define EVENT_ENVELOPE_FIELDS 7

/* Number text for v and ts; must outlive the fields that point into it. */
typedef struct event_numbuf {
    char v[16];
    char ts[24];
} event_numbuf_t;

/* The envelope of ev as stream fields, in order id, type, v, ts, source,
 * trace, data (= data_json, e.g. from event_data_json). Every pointer is
 * borrowed from ev, data_json or buf. */
void event_to_fields(const event_t *ev, const char *data_json, event_field_t f[EVENT_ENVELOPE_FIELDS],
                     event_numbuf_t *buf);

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
 * cleared). Unknown extra fields are ignored. Returns -1 with a reason in err
 * ("missing field 'type'", "data: not JSON: ...", "data.confidence: ..."). */
int event_decode(event_t *ev, const event_field_t *fields, size_t n, char *err, size_t errlen);

#endif
