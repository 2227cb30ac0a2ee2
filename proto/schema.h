/* schema.h — a JSON Schema subset compiled into C structs, then used to
 * validate instances without re-reading the schema document.
 *
 * Supported: type (incl. "integer" and type lists), enum, required,
 * properties, additionalProperties (bool or schema), minimum/maximum,
 * exclusiveMinimum/exclusiveMaximum, minLength/maxLength (bytes),
 * minItems/maxItems, items, maxProperties, $ref to "#/$defs/NAME", format
 * "symbol" (2..20 of A-Z 0-9), and the annotations $id/title/description.
 * Any other keyword fails compilation, so a schema never means less than it
 * says. Errors name the place: "data.model_votes.m.confidence: 2 is above the
 * maximum 1". */
#ifndef QT_SCHEMA_H
#define QT_SCHEMA_H

#include <jansson.h>
#include <stddef.h>

typedef struct schema schema_t;

/* Compile doc (borrowed; not needed afterwards). NULL with err on an
 * unsupported or malformed schema. Free with schema_free. */
schema_t *schema_compile(const json_t *doc, char *err, size_t errlen);
void schema_free(schema_t *s);

/* 0 when x conforms; -1 with the first problem in err. */
int schema_validate(const schema_t *s, const json_t *x, char *err, size_t errlen);

/* Names of the required top-level properties (borrowed, n in *n). */
const char *const *schema_required(const schema_t *s, size_t *n);

#endif
