/* proto.h — the event contract: one JSON Schema per (event type, version),
 * embedded from proto/schemas/ at build time and compiled once (schema.h),
 * plus cross-field rules a schema cannot express (a bar's low <= high,
 * RL probabilities summing to 1). */
#ifndef QT_PROTO_H
#define QT_PROTO_H

#include <jansson.h>
#include <stddef.h>

typedef struct proto_source {
    const char *type;
    int version;
    const char *json;
} proto_source_t;

extern const proto_source_t proto_sources[]; /* generated; ends with {0} */

/* Parse and check every embedded schema. Idempotent; called lazily by the
 * functions below. Returns -1 with err if a schema is broken (a build bug). */
int proto_init(char *err, size_t errlen);
void proto_cleanup(void);

/* Is (type, version) part of the contract? Latest known version of a type, or 0. */
int proto_known(const char *type, int version);
int proto_latest_version(const char *type);

/* Validate a payload. Returns 0, or -1 with err like
 * "data.confidence: 1.5 is above the maximum 1". */
int proto_validate(const char *type, int version, const json_t *data, char *err, size_t errlen);

/* How a payload field is written as a stream field of its own (contract
 * v2, DESIGN §2), from the type its schema gives it: digits, a JSON number,
 * true/false, bare text, or compact JSON (objects, arrays, and a field that
 * may hold several types, like policy.config.updated's value). */
enum { PROTO_FIELD_STRING = 1, PROTO_FIELD_INTEGER, PROTO_FIELD_NUMBER, PROTO_FIELD_BOOLEAN, PROTO_FIELD_JSON };
/* The kind of payload field name (len bytes) of (type, version), 0 when its
 * schema has no such field. proto_type finds the type once (NULL when
 * unknown) for proto_type_field_kind on each of its fields. */
typedef struct proto_entry proto_type_t;
const proto_type_t *proto_type(const char *type, int version);
int proto_type_field_kind(const proto_type_t *t, const char *name, size_t len);
/* The same with the field's place in the type's table (0..47, for a set of
 * fields seen) and its name as the schema spells it (NUL-terminated). */
int proto_type_field(const proto_type_t *t, const char *name, size_t len, int *index, const char **schema_name);
/* proto_validate for a type already found. */
int proto_type_validate(const proto_type_t *t, const json_t *data, char *err, size_t errlen);
int proto_field_kind(const char *type, int version, const char *name, size_t len);

/* Validate any instance against any schema document (for tests and tools). */
int proto_validate_schema(const json_t *schema, const json_t *data, char *err, size_t errlen);

/* The schema document of (type, version), borrowed; NULL if unknown. */
const json_t *proto_schema(const char *type, int version);
size_t proto_count(void);
const char *proto_type_at(size_t i, int *version);

#endif
