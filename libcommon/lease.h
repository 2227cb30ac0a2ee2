/* lease.h — replicas of a service share its symbol partitions by lease in
 * Redis (DESIGN §2a).
 *
 * Each replica is a member of "<ns>:lease:<service>:members" (a sorted set
 * scored by when it expires) and holds partition k while
 * "<ns>:lease:<service>:p<k>" names it (SET NX PX QT_LEASE_MS). A round,
 * every QT_LEASE_MS / 3, does in one script: renew the membership, drop
 * members that expired, renew our leases, give up the ones we were
 * releasing once none of their entries is pending with us, and take free
 * partitions up to our share. The shares are balanced: the live members
 * sorted by name, member i of n gets P / n, plus one when i < P mod n.
 *
 * A partition taken is first cleared of its previous holder's pending
 * entries (bus_part_take claims them for us), then read. One held over our
 * share is released gracefully: reading stops, what was read is handled and
 * acked, then its lease is deleted. When Redis has not confirmed our leases
 * for most of QT_LEASE_MS (a stall, a lost link), every partition is dropped
 * at once, before the leases can expire in Redis and another replica take
 * them: one partition is never read by two replicas on purpose. A stop
 * renews the leases while the bus drains and deletes them at the end
 * (lease_release_sync), so the others take them at their next round. */
#ifndef QT_LEASE_H
#define QT_LEASE_H

#include "bus.h"
#include "ckpt.h"
#include "config.h"
#include "metrics.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

typedef struct lease lease_t;

/* Start sharing the partitions of a bus made with bus_lease_parts() (after
 * bus_start()). NULL when out of memory. */
lease_t *lease_start(bus_t *b, struct event_base *base, metrics_t *m);
/* Take no more partitions (a stop has begun); the held ones stay renewed. */
void lease_stopping(lease_t *l);
/* After the loop ended: delete our leases and membership on a connection of
 * our own (the others take the partitions at their next round). */
void lease_release_sync(lease_t *l, const qt_config_t *cfg);
/* {count, replicas, share, held: [k...], reading: [k...], releasing: [k...],
 * key}: a new reference. */
json_t *lease_status(const lease_t *l);
/* For a bus that keeps its state per partition: what the restores of the
 * partitions held did, summed into sum (found: every one from a
 * checkpoint; note: one "p<k>: ..." each); how many are held. */
int lease_restored(const lease_t *l, ckpt_restore_t *sum);
/* 1 with why when a partition we hold waits for its state (Redis failed
 * or refused a read of it): it is not read until then. */
int lease_restoring(const lease_t *l, char *why, size_t len);
/* 1 once a round has been answered: the partitions it gave are taken (and,
 * for a bus that keeps state per partition, restored). */
int lease_confirmed(const lease_t *l);
/* 1 when this replica holds every partition (or l is NULL): nobody else
 * handles the service's events, so what replicas share in Redis changes
 * only through this process. */
int lease_holds_all(const lease_t *l);
void lease_free(lease_t *l);

/* ---------- one active instance per namespace ----------
 * trading-engine and policy-store keep state of the whole account: one
 * instance works, a second one waits as the standby. The active one holds
 * "<ns>:lease:<service>:active"; the standby tries to take it every
 * QT_LEASE_MS / 3 (at once when the holder was a process of its own host
 * that no longer runs) and, once it has it, restores the state (restore.h)
 * and starts. An active instance whose lease Redis has not renewed for
 * most of QT_LEASE_MS stops consuming until a renewal confirms it (Redis
 * away: nobody can take it; only this one cut off: the standby may); one
 * that finds its lease taken exits at once without draining: the other one
 * alone decides, and takes over what was pending. */
typedef struct active active_t;
/* Take the lease on c if it is free (or ours, or a dead process's of this
 * host), for ttl_ms: 1 when we hold it, 0 with the holder in who (the
 * standby waits), -1 with err when Redis failed. */
int active_try(redisContext *c, const bus_t *b, long ttl_ms, char *who, size_t wholen, char *err, size_t errlen);
/* After bus_start: renew it every QT_LEASE_MS / 3; lost(ud) when it is no
 * longer ours. */
active_t *active_keep(bus_t *b, struct event_base *base, void (*lost)(void *ud, const char *why), void *ud);
/* After the loop: delete it if ours, for the standby to take at once. */
void active_release_sync(const qt_config_t *cfg, const char *consumer);
void active_free(active_t *a);

#endif
