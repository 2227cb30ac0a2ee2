/* policy_engine.h — policy-store's Orchestrator Policy Engine at work: consumes
 * market, feedback and execution events into inputs, evaluates the policy on
 * event time, publishes policy.trading.updated on "<ns>:policy", keeps the
 * current policy ("<ns>:policy:trading") and the last 100 ("<ns>:policy:history",
 * newest first) in Redis. Its inputs, policy and view of the configuration
 * survive restarts as a checkpoint plus replay ("<ns>:state:policy-store",
 * ckpt.h); "<ns>:policy:state", the checkpoint of earlier versions, is no
 * longer read. */
#ifndef QT_POLICY_ENGINE_H
#define QT_POLICY_ENGINE_H

#include "config_store.h"
#include "svc.h"

typedef struct policy_engine policy_engine_t;

/* Reads the current policy (if Redis answers now), keeps its state with the
 * bus (restored by svc_run), subscribes and adds routes. */
policy_engine_t *policy_engine_new(svc_t *svc, config_store_t *cs, char *err, size_t errlen);
void policy_engine_free(policy_engine_t *e);

#endif
