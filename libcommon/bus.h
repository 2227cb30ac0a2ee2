/* bus.h — the Redis Streams event bus: publish, consume with consumer groups,
 * claims, dead-letter streams, reconnection and drain.
 *
 * One bus per process, on the caller's libevent base. It keeps two Redis
 * links: "cmd" (publishes, acks, claims, DLQ writes, group admin) and "read"
 * (blocking XREADGROUP). hiredis 0.14 has no async timeouts, so a watchdog
 * timer closes a link that is silent past QT_REDIS_TIMEOUT_MS (or a connect
 * that hangs) and reconnects with jittered exponential backoff.
 *
 * Delivery is at-least-once:
 *  - the group is named after the service; the consumer is host-pid;
 *  - on start, after each reconnect and after a read whose reply was lost, a
 *    consumer re-reads its own pending entries, then reads new ones;
 *  - entries idle over QT_CLAIM_IDLE_MS in another consumer's pending list
 *    are claimed (XAUTOCLAIM) and processed here;
 *  - an entry that fails decoding or validation goes to "<stream>:dlq" at
 *    once; one whose handler keeps asking for a retry goes there on its
 *    QT_MAX_DELIVERIES-th delivery; one delivered more often (a crash loop)
 *    goes there without reaching the handler;
 *  - an entry is acked only after every event its handler published has
 *    been confirmed by Redis (and a dead-lettered one after its DLQ copy),
 *    so a crash can duplicate work but never lose it.
 * Publishes are pipelined into a bounded outbox that survives Redis outages
 * and is guarded by a circuit breaker ("redis-publish").
 *
 * Handlers run on the loop thread and must not block for long; time they do
 * hold it is not counted against Redis by the watchdog. */
#ifndef QT_BUS_H
#define QT_BUS_H

#include "breaker.h"
#include "config.h"
#include "event.h"
#include "metrics.h"

#include <event2/event.h>
#include <jansson.h>

typedef struct bus bus_t;
struct redisReply;

typedef enum {
    BUS_OK = 0,    /* handled: ack */
    BUS_RETRY = 1, /* transient failure: deliver again later */
    BUS_DEAD = 2,  /* will never succeed: dead-letter now */
    BUS_LATER = 3  /* going on without blocking the loop: the handler called
                      bus_defer() and finishes the entry with bus_finish() */
} bus_result_t;

typedef struct bus_msg {
    const char *stream;   /* full key, e.g. "qt:market" */
    const char *entry_id; /* Redis stream entry id */
    const event_t *ev;    /* decoded and validated; borrowed for the call */
    long deliveries;      /* 1 on the first delivery */
} bus_msg_t;

/* On BUS_RETRY or BUS_DEAD, write the reason into err. */
typedef bus_result_t (*bus_handler_fn)(void *ud, const bus_msg_t *msg, char *err, size_t errlen);

/* Create a bus for cfg->service; cfg is copied. metrics may be NULL. Nothing
 * connects until bus_start(). Returns NULL with err on failure. */
bus_t *bus_new(struct event_base *base, const qt_config_t *cfg, metrics_t *metrics,
               char *err, size_t errlen);
/* Free everything; pending callbacks are cancelled. Unacked entries stay
 * pending in Redis and are re-read on the next start. */
void bus_free(bus_t *b);

/* Subscribe to stream `name` (without namespace, e.g. "market") before
 * bus_start(). With QT_PARTITIONS > 1 a partitioned stream (keys.h) is read
 * in every partition, each its own stream with its own group, DLQ and lag;
 * msg->stream names the partition. Returns -1 on too many subscriptions or
 * a bad name. */
int bus_subscribe(bus_t *b, const char *name, bus_handler_fn fn, void *ud);
/* The same, for a handler that takes only the event types listed (a
 * NULL-terminated list that must outlive the bus): entries of the
 * contract's other types are acked without being decoded (counted in
 * qt_bus_events_skipped_total); unknown types and versions are still
 * dead-lettered. */
int bus_subscribe_types(bus_t *b, const char *name, const char *const *types, bus_handler_fn fn, void *ud);
int bus_start(bus_t *b);

/* Queue ev for XADD to stream `name` (with QT_PARTITIONS > 1 and a
 * partitioned stream, to the partition of ev's data.symbol, keys.h); the bus
 * encodes it now, so ev may be cleared on return. Returns -1 with err when the outbox is full (the caller
 * should return BUS_RETRY so its input is delivered again later). */
int bus_publish(bus_t *b, const char *name, const event_t *ev, char *err, size_t errlen);

/* The same, and once the entry is added, one more write `cmd key argv...`
 * in the same script (SET a record that says the event was published):
 * both happen or neither. Ordered and confirmed as every publish. */
int bus_publish_then(bus_t *b, const char *name, const event_t *ev, const char *cmd, const char *key, int argc,
                     const char *const *argv, char *err, size_t errlen);

/* Called exactly once: with the reply (borrowed: it dies when the callback
 * returns), or with NULL when the link dropped or the bus is being freed. */
typedef void (*bus_reply_fn)(void *ud, const struct redisReply *reply);

/* Send any command on the command link (service state: hashes, checkpoints,
 * scripts). Returns -1 when the link is down right now; the caller retries
 * later. lens may be NULL for NUL-terminated arguments. */
int bus_redis(bus_t *b, bus_reply_fn fn, void *ud, int argc, const char **argv, const size_t *lens);

/* Stop consuming new entries while paused (handlers of in-flight entries have
 * already run). reason is shown in status; resume restarts reading. */
void bus_pause(bus_t *b, const char *reason);
void bus_resume(bus_t *b);

/* Called by a handler about to return BUS_RETRY: deliver the entry again no
 * sooner than ms from now (instead of QT_RETRY_DELAY_MS, if longer; capped at
 * BUS_RETRY_AFTER_MAX_MS). Each delivery still counts towards
 * QT_MAX_DELIVERIES, so one long wait spends one delivery where polling at
 * the retry delay would spend many. Other entries of the same stream that
 * are waiting for a retry come back no sooner either. */
#define BUS_RETRY_AFTER_MAX_MS 60000
void bus_retry_after(bus_t *b, int64_t ms);

/* Entries a handler finishes later (an order waiting on the exchange, a
 * write waiting on Redis) while the loop goes on with other entries.
 *
 * A handler calls bus_defer() and returns BUS_LATER; it later calls
 * bus_finish() exactly once with what it would have returned. Until then
 * the entry is not acked (a crash delivers it again after a restart) and is
 * never handed to a handler of this bus again (a re-read of our pending
 * entries or a claim skips it). The drain waits for deferred entries. */
typedef struct bus_pending bus_pending_t;
/* Only inside a handler: a token for the entry being handled, or NULL when
 * out of memory (then return BUS_RETRY). Owned by the caller until bus_finish. */
bus_pending_t *bus_defer(bus_t *b);
/* (bus_free answers what is still on its way with NULL replies; bus_finish
 * and bus_redis are safe inside those callbacks; tokens not finished by then
 * are freed with the bus.) */
/* Finish a deferred entry as if its handler had returned r now (err: the
 * reason for BUS_RETRY or BUS_DEAD, may be NULL; call bus_retry_after()
 * first to set a retry's delay). Frees p. r must not be BUS_LATER. */
void bus_finish(bus_t *b, bus_pending_t *p, bus_result_t r, const char *err);
/* Entries deferred and not finished yet. */
size_t bus_deferred(const bus_t *b);

/* Drain: stop reading, wait for outstanding publishes, DLQ writes and acks,
 * then call done (at most QT_DRAIN_MS later). */
void bus_stop(bus_t *b, void (*done)(void *ud), void *ud);

/* "<ns>:<name>" into out. */
void bus_key(const bus_t *b, const char *name, char *out, size_t outlen);
/* The configuration the bus was made with (namespace, QT_PARTITIONS...). */
const qt_config_t *bus_cfg(const bus_t *b);

/* Readiness: 1 when both links are up, groups exist and publishing is not
 * blocked; otherwise 0 with the reason in why. */
int bus_ready(const bus_t *b, char *why, size_t whylen);
/* Status JSON (new reference): links, outbox, breaker, per-stream counters
 * and group lag/pending. */
json_t *bus_status(const bus_t *b);
/* Publishes queued or in flight, not yet confirmed. */
size_t bus_outbox_size(const bus_t *b);
/* 1 when every publish in the outbox is queued on the Redis connection
 * (replies may still be on their way): a bus_redis() command sent now runs
 * after them, on the same connection. */
int bus_outbox_sent(const bus_t *b);
breaker_t *bus_breaker(const bus_t *b);

/* ---------- partitions taken by lease (lease.h, DESIGN §2a) ---------- */
/* Before bus_start(): read the partitioned streams (keys.h; with
 * QT_PARTITIONS=1 the one of today's name is partition 0) only for the
 * partitions bus_part_take() gave, so replicas of a service share them out;
 * an unpartitioned stream (policy) is read whole by every replica, without
 * a group (XREAD every tick from 5 s before the start; nothing acked, an
 * entry that does not decode logged and passed over, the handler's result
 * not used: its handler must take every entry at once). -1 once started. */
int bus_lease_parts(bus_t *b);
int bus_leased(const bus_t *b);
/* Start reading partition part: first every entry pending in its groups
 * (a previous holder's) is claimed for this consumer and re-read, then new
 * ones come. */
void bus_part_take(bus_t *b, int part);
/* Stop reading partition part's new entries now (entries already read are
 * still handled). keep_pending: its entries pending with us are still
 * re-read and retried until done (a release); else they are left to the
 * next holder (a lease lost). */
void bus_part_drop(bus_t *b, int part, int keep_pending);
/* 1 when partition part is read (taken and its claims done). */
int bus_part_reading(const bus_t *b, int part);
/* 1 when a dropped partition has nothing of ours in flight here: no read
 * that could still bring its entries, no claim, re-read or deferred entry.
 * (What was handled may still wait for its ack: lease.c asks Redis.) */
int bus_part_quiet(const bus_t *b, int part);
/* 1 when consumer name ("<host>-<pid>") was a process of this host that no
 * longer runs (never for ourselves or another host's). */
int bus_consumer_gone(const bus_t *b, const char *name);
/* The keys of partition part's streams into keys (at most max); how many. */
int bus_part_keys(const bus_t *b, int part, const char **keys, int max);

/* ---------- state that survives restarts (ckpt.h, DESIGN §2a) ---------- */
struct ckpt_ops;
/* Before bus_start(): keep the state ops describe (ops and ud outlive the
 * bus) in "<ns>:state:<service>", written every QT_CHECKPOINT_MS and at
 * stop (see ckpt.h). svc_run() restores it (restore.h) before the bus
 * starts. With the partition ops (ckpt.h; call bus_lease_parts() first)
 * each partition held is checkpointed on its own and restored when taken.
 * -1 when started already or ops are incomplete. */
int bus_keep_state(bus_t *b, const struct ckpt_ops *ops, void *ud);
const struct ckpt_ops *bus_state_ops(const bus_t *b, void **ud);
const char *bus_state_key(const bus_t *b);
/* A leased bus whose ops have the partition ops (ckpt.h): each partition's
 * state is checkpointed on its own, under bus_state_part_key(), and
 * restored when the partition is taken (restore_part), not at start. */
int bus_state_parted(const bus_t *b);
void bus_state_part_key(const bus_t *b, int part, char *out, size_t len);
/* Partition part's checkpoint now, when the bus is settled (lease.c, before
 * giving the partition up: its next holder then replays nothing). */
void bus_part_checkpoint(bus_t *b, int part);
/* 1 while a handler runs on a replayed entry: publishes are dropped (they
 * went out the first time), bus_redis() and bus_defer() refuse. A handler
 * that writes shared state elsewhere checks this. */
int bus_replaying(const bus_t *b);
/* For the restore (restore.c): the subscriptions, the group, and one entry
 * handed to its subscription's handler with publishing off (1 if it reached
 * the handler, 0 for one a first delivery would have skipped or
 * dead-lettered). bus_sub_restored() records what the checkpoint covered
 * (pending entries up to it are acked without a handler) and what the
 * replay handled (the next checkpoint's tag starts there). */
int bus_sub_count(const bus_t *b);
const char *bus_sub_key(const bus_t *b, int si);
int bus_sub_part(const bus_t *b, int si); /* its partition, -1 for an unpartitioned stream */
const char *bus_group(const bus_t *b);
const char *bus_consumer(const bus_t *b);
int bus_replay(bus_t *b, int si, const char *id, const struct redisReply *fields);
void bus_sub_restored(bus_t *b, int si, const char *covered, const char *done);

#endif
