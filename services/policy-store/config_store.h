/* config_store.h — policy-store as configuration authority: a registry of
 * typed keys with defaults, stored in Redis as "<ns>:policy:config" (key →
 * JSON value) and "<ns>:policy:versions" (key → version). A write bumps the
 * version, publishes policy.config.updated on "<ns>:policy" and appends to
 * the audit stream "<ns>:policy:audit" in one Lua script, so they never
 * disagree. Reads and writes use a synchronous connection with a short
 * timeout (config changes are rare operator actions). */
#ifndef QT_CONFIG_STORE_H
#define QT_CONFIG_STORE_H

#include "config.h"
#include "httpd.h"

#include <hiredis/hiredis.h>
#include <jansson.h>

typedef struct config_store config_store_t;

/* Defaults of the orch.* and risk.* keys come from ORCH_* (the seed's names)
 * when set; cfg is borrowed for the process life. */
config_store_t *config_store_new(const qt_config_t *cfg, char *err, size_t errlen);
void config_store_free(config_store_t *cs);

/* Write the defaults of keys that do not exist yet (HSETNX). -1 if Redis is
 * unreachable; call again later. */
int config_store_seed(config_store_t *cs, char *err, size_t errlen);

/* All keys as {key: {value, version, type, default}} (new reference), or NULL with err. */
json_t *config_store_all(config_store_t *cs, char *err, size_t errlen);
/* One value (new reference) or NULL; *version set. */
json_t *config_store_get(config_store_t *cs, const char *key, long *version, char *err, size_t errlen);

/* Is value acceptable for key? -1 with a message naming the rule. */
int config_store_check(const char *key, const json_t *value, char *err, size_t errlen);

/* Validate and store; returns the new version, or -1 with err (*status 400
 * for a bad key/value, 503 when Redis is unreachable). who is an audit label. */
long config_store_set(config_store_t *cs, const char *key, const json_t *value, const char *who,
                      int *status, char *err, size_t errlen);

/* HTTP: GET /api/v1/policy/config, GET and PUT /api/v1/policy/config/{key}.
 * -1 when a route cannot be added. */
int config_store_routes(config_store_t *cs, httpd_t *h);

/* A non-secret label of the API token for the audit trail: "token:<8 hex>". */
void config_store_token_label(const char *token, char *out, size_t len);

#endif
