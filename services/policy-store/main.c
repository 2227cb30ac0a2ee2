/* policy-store — configuration authority and the Orchestrator Policy Engine.
 * Wires config_store (typed keys, HTTP, audit) and policy_engine (TradingPolicy)
 * onto the shared service runtime. Port 8085 by default. */
#include "config_store.h"
#include "policy_engine.h"
#include "log.h"
#include "svc.h"

#include <stdio.h>


int main(void)
{
    static svc_t svc;
    char err[512];
    if (svc_init(&svc, "policy-store", 8085, err, sizeof err) < 0) {
        fprintf(stderr, "policy-store: %s\n", err);
        return 2;
    }
    config_store_t *cs = config_store_new(&svc.cfg, svc.bus, err, sizeof err);
    policy_engine_t *engine = cs ? policy_engine_new(&svc, cs, err, sizeof err) : NULL;
    if (!engine || config_store_routes(cs, svc.http) < 0) {
        fprintf(stderr, "policy-store: %s\n", engine ? "cannot add the configuration routes" : err);
        return 2;
    }
    svc.hook_ud = engine;
    svc.one_active = 1; /* one TradingPolicy from every symbol: a second instance is the standby (lease.h) */
    int rc = svc_run(&svc);
    svc_free(&svc);
    policy_engine_free(engine);
    config_store_free(cs);
    svc_free_base(&svc); /* last: the services above freed their events on it */
    return rc;
}
