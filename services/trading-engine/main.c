/* trading-engine — market feed, RL v3 live orchestrator, RiskGuard,
 * positions and feedback. Port 8081 by default. */
#include "engine.h"
#include "svc.h"

#include <stdio.h>

static void trading_engine_stop(void *ud) { engine_stop(ud); }
static void trading_engine_begin(void *ud) { engine_start(ud); }
static int trading_engine_active(void *ud, char *err, size_t errlen) { return engine_rebuild(ud, err, errlen); }

int main(void)
{
    static svc_t svc;
    char err[512] = "";
    if (svc_init(&svc, "trading-engine", 8081, err, sizeof err) < 0) {
        fprintf(stderr, "trading-engine: %s\n", err);
        return 2;
    }
    engine_t *e = engine_new(&svc, err, sizeof err);
    if (!e) {
        fprintf(stderr, "trading-engine: %s\n", err);
        return 2;
    }
    svc.on_stop = trading_engine_stop;
    svc.on_begin = trading_engine_begin; /* the feed starts once the state is back */
    svc.one_active = 1;                  /* a second engine of the namespace is the standby (lease.h) */
    svc.on_active = trading_engine_active; /* the book read back when this one becomes the active one */
    svc.hook_ud = e;
    int rc = svc_run(&svc);
    svc_free(&svc);
    engine_free(e);
    svc_free_base(&svc); /* last: the services above freed their events on it */
    return rc;
}
