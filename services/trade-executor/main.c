/* trade-executor — trade intents to orders on the paper venue or Binance
 * USDⓈ-M futures, exactly once. Port 8084 by default. */
#include "executor.h"
#include "svc.h"

#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    static svc_t svc;
    char err[512] = "";
    /* Venue outages must never push an intent into the DLQ: while the venue
     * breaker is open nothing is consumed, so deliveries stay few anyway. */
    setenv("QT_MAX_DELIVERIES", "1000", 0);
    if (svc_init(&svc, "trade-executor", 8084, err, sizeof err) < 0) {
        fprintf(stderr, "trade-executor: %s\n", err);
        return 2;
    }
    executor_t *x = executor_new(&svc, err, sizeof err);
    if (!x) {
        fprintf(stderr, "trade-executor: %s\n", err);
        return 2;
    }
    int rc = svc_run(&svc);
    executor_close(x);
    svc_free(&svc);
    executor_free(x);
    svc_free_base(&svc); /* last: the services above freed their events on it */
    return rc;
}
