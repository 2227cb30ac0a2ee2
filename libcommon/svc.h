/* svc.h — what every service process shares: configuration, logs, the event
 * loop, metrics, the bus, the HTTP server and signal handling.
 *
 * main() calls svc_init(), subscribes and adds routes, then svc_run(), which
 * returns after SIGTERM/SIGINT once the bus has drained (in-flight handlers
 * done, publishes confirmed, entries acked) or QT_DRAIN_MS passed. SIGHUP
 * calls the reload hook (models, configuration). */
#ifndef QT_SVC_H
#define QT_SVC_H

#include "bus.h"
#include "ckpt.h"
#include "config.h"
#include "httpd.h"
#include "metrics.h"

#include <event2/event.h>

typedef struct svc {
    qt_config_t cfg;
    struct event_base *base;
    metrics_t *metrics;
    bus_t *bus;
    httpd_t *http;
    struct event *ev_term, *ev_int, *ev_hup, *ev_notice, *ev_begin;
    int config_reset; /* the configuration is policy-store's re-seeded defaults (QT_KEY_POLICY_CONFIG_RESET) */
    void (*on_reload)(void *ud);
    void (*on_stop)(void *ud); /* before draining: stop producing */
    void (*on_begin)(void *ud); /* the state is restored and the bus started: start producing */
    void *hook_ud;
    int stopping;
    ckpt_restore_t restored; /* what svc_run() restored (a service that keeps state: bus_keep_state) */
    int begun, restore_tries; /* the bus started; restores tried while Redis was away */
    int parts_ok;             /* the namespace has our QT_PARTITIONS (parts.h) */
    int drained;              /* the stop is done: the loop ends (or does not start) */
    int failed;               /* could not start: svc_run() returns 1 */
    struct lease *lease;      /* the partitions this replica holds (a bus with bus_lease_parts) */
    int one_active;           /* set before svc_run: one active instance per namespace, others stand by (lease.h) */
    int active;               /* ... and this one is it */
    int standby_said;         /* standby logged once */
    struct active *keeper;    /* its lease, renewed */
    int (*on_active)(void *ud, char *err, size_t errlen); /* once active, before the restore: -1 to fail */
    char restore_wait[512];   /* why the restore waits, "" once done */
} svc_t;

/* Everything set up but nothing connected yet. Returns -1 with err
 * (a configuration error names the variable). */
int svc_init(svc_t *s, const char *service, long default_port, char *err, size_t errlen);
/* Restore the state the service keeps (restore.h; retried every second on
 * the loop while Redis cannot be reached, /ready saying so), start the bus
 * and run the loop until stopped and drained. Returns 0, or 1 when it could
 * not start. */
int svc_run(svc_t *s);
/* Begin a graceful stop, as SIGTERM does. */
void svc_stop(svc_t *s);
/* Free the bus, HTTP server, metrics and signal events; the event base stays
 * so the service can free its own events next. Then svc_free_base(). */
/* What the restore at start did, for /api/v1/status (new reference), or
 * NULL when the service keeps no state. */
json_t *svc_state_status(const svc_t *s);
/* The partitions this replica holds (lease.h) for /api/v1/status (new
 * reference), or NULL when the service does not share partitions. */
json_t *svc_partitions_status(const svc_t *s);
void svc_free(svc_t *s);
void svc_free_base(svc_t *s);

#endif
