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

/* Validate any instance against any schema document (for tests and tools). */
int proto_validate_schema(const json_t *schema, const json_t *data, char *err, size_t errlen);

/* The schema document of (type, version), borrowed; NULL if unknown. */
const json_t *proto_schema(const char *type, int version);
size_t proto_count(void);
const char *proto_type_at(size_t i, int *version);

#endif
