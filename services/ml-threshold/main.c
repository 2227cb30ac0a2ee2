/* ml-threshold — the model ensemble (signal.generated), the Reinforcement
 * Signal Manager and adaptive thresholds. Port 8082 by default.
 * QT_ML_MODELS names the member files, QT_ML_EXTERNAL_MODELS the external
 * members; RL_* and ML_* configure learning (docs/ml-threshold.md). */
#include "ensemble.h"
#include "svc.h"

#include <stdio.h>

int main(void)
{
    static svc_t svc;
    char err[512] = "";
    if (svc_init(&svc, "ml-threshold", 8082, err, sizeof err) < 0) {
        fprintf(stderr, "ml-threshold: %s\n", err);
        return 2;
    }
    ensemble_t *e = ensemble_new(&svc, err, sizeof err);
    if (!e) {
        fprintf(stderr, "ml-threshold: %s\n", err);
        return 2;
    }
    int rc = svc_run(&svc);
    svc_free(&svc);
    ensemble_free(e);
    svc_free_base(&svc); /* last: the services above freed their events on it */
    return rc;
}
