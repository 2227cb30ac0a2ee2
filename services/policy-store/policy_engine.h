/* policy_engine.h — policy-store's Orchestrator Policy Engine at work: consumes
 * market, feedback and execution events into inputs, evaluates the policy on
 * event time, publishes policy.trading.updated on "<ns>:policy", keeps the
 * current policy ("<ns>:policy:trading") and the last 100 ("<ns>:policy:history",
 * newest first) in Redis, and checkpoints its inputs ("<ns>:policy:state"). */
#ifndef QT_POLICY_ENGINE_H
#define QT_POLICY_ENGINE_H

#include "config_store.h"
#include "svc.h"

typedef struct policy_engine policy_engine_t;

/* Restores the checkpoint (if Redis answers now), subscribes and adds routes. */
policy_engine_t *policy_engine_new(svc_t *svc, config_store_t *cs, char *err, size_t errlen);
/* Write the checkpoint now (before a graceful exit). */
void policy_engine_checkpoint(policy_engine_t *e);
void policy_engine_free(policy_engine_t *e);

#endif
