/* config_store.h — policy-store as configuration authority: a registry of
 * typed keys with defaults, stored in Redis as "<ns>:policy:config" (key →
 * JSON value) and "<ns>:policy:versions" (key → version). A write bumps the
 * version, publishes policy.config.updated on "<ns>:policy" and appends to
 * the audit stream "<ns>:policy:audit" in one Lua script, so they never
 * disagree. Every read and write goes through the bus's command link: HTTP
 * requests are answered when Redis has (httpd_later), the loop never waits. */
#ifndef QT_CONFIG_STORE_H
#define QT_CONFIG_STORE_H

#include "bus.h"
#include "config.h"
#include "httpd.h"

#include <hiredis/hiredis.h>
#include <jansson.h>

typedef struct config_store config_store_t;

/* Defaults of the orch.* and risk.* keys come from ORCH_* (the seed's names)
 * when set; cfg and bus are borrowed for the process life. */
config_store_t *config_store_new(const qt_config_t *cfg, bus_t *bus, char *err, size_t errlen);
void config_store_free(config_store_t *cs);

/* Write the defaults of keys that do not exist yet (HSETNX), as one script;
 * done(ud, ok) once Redis answered. -1 when the link is down now (call again later). */
int config_store_seed(config_store_t *cs, int seeded_before, void (*done)(void *ud, int ok), void *ud);

/* Is value acceptable for key? -1 with a message naming the rule. */
int config_store_check(const char *key, const json_t *value, char *err, size_t errlen);

/* HTTP: GET /api/v1/policy/config, GET and PUT /api/v1/policy/config/{key}.
 * -1 when a route cannot be added. */
int config_store_routes(config_store_t *cs, httpd_t *h);

/* A non-secret label of the API token for the audit trail: "token:<8 hex>". */
void config_store_token_label(const char *token, char *out, size_t len);

#endif
