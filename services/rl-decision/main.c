/* rl-decision — the PPO policy on every closed bar: rl.signal.generated.
 * Port 8083 by default. QT_RL_MODEL names the model file. */
#include "decider.h"
#include "svc.h"

#include <stdio.h>

int main(void)
{
    static svc_t svc;
    char err[512] = "";
    if (svc_init(&svc, "rl-decision", 8083, err, sizeof err) < 0) {
        fprintf(stderr, "rl-decision: %s\n", err);
        return 2;
    }
    decider_t *d = decider_new(&svc, err, sizeof err);
    if (!d) {
        fprintf(stderr, "rl-decision: %s\n", err);
        return 2;
    }
    int rc = svc_run(&svc);
    svc_free(&svc);
    decider_free(d);
    svc_free_base(&svc); /* last: the services above freed their events on it */
    return rc;
}
