/* policyview.h — a service's read-only view of policy-store's configuration:
 * the hash "<ns>:policy:config" (key → JSON text of its value, read at start
 * and every few seconds) kept current by policy.config.updated events, and
 * the latest TradingPolicy ("<ns>:policy:trading", policy.trading.updated).
 * Pure: the caller does the reading and hands over the replies and events. */
#ifndef QT_POLICYVIEW_H
#define QT_POLICYVIEW_H

#include "event.h"

#include <jansson.h>

struct redisReply;

typedef struct policyview {
    json_t *config;  /* key → value; owned */
    json_t *trading; /* the latest TradingPolicy, or NULL; owned */
} policyview_t;

/* 0, or -1 when out of memory. */
int policyview_init(policyview_t *pv);
void policyview_free(policyview_t *pv);

/* Replace the configuration with an HGETALL reply of the hash (values that
 * are not JSON are left out). A reply that is not an array changes nothing:
 * -1 then. */
int policyview_load_hash(policyview_t *pv, const struct redisReply *r);
/* The TradingPolicy from its JSON text (GET of the key): -1 when not JSON. */
int policyview_load_trading(policyview_t *pv, const char *txt, size_t len);
/* Apply a policy.config.updated or policy.trading.updated event: 1 when it
 * changed the view, 0 for other types. */
int policyview_apply(policyview_t *pv, const event_t *ev);

/* Typed reads of a configuration key, def when absent or of another type. */
/* The view as JSON text (malloc'd: the caller frees), for a checkpoint;
 * NULL when out of memory. */
char *policyview_save(const policyview_t *pv);
/* Replace the view with what policyview_save() wrote; -1 (unchanged) for
 * text that is not that. */
int policyview_restore(policyview_t *pv, const char *txt, size_t len);
double policyview_num(const policyview_t *pv, const char *key, double def);
int policyview_bool(const policyview_t *pv, const char *key, int def);
const char *policyview_str(const policyview_t *pv, const char *key, const char *def);
/* A field of the TradingPolicy (borrowed), NULL when none. */
const json_t *policyview_trading(const policyview_t *pv, const char *field);

#endif
