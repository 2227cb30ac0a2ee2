/* stack.h — the five real services on one real redis-server for the
 * whole-stack tests (test_e2e, test_faults): start them in the right order,
 * wait until a replay has gone through everything (counted from Redis, so
 * restarts do not matter), and read the streams back into an independent
 * ledger. Functions return 0 or -1 with the reason in why; the tests CHECK. */
#ifndef QT_TEST_STACK_H
#define QT_TEST_STACK_H

#include "harness.h"

#define STACK_NSVC 5
enum { ENGINE, ML, RL, EXEC, POLICY };
#define STACK_TOKEN "e2e-token"
#define STACK_AUTH "Authorization: Bearer " STACK_TOKEN "\r\n"

typedef struct qt_stack {
    const th_redis_t *redis;
    redisContext *rc;
    char ns[16], feed[16384], speed[40], dir[256];
    const char *extra[8]; /* more NAME=VALUE for every service */
    int port[STACK_NSVC];
    pid_t pid[STACK_NSVC];
    int rl_replicas;    /* set before stack_start: this many more rl-decision replicas, started after the first */
    pid_t rl_more[4];   /* their pids (stack_stop stops them) */
} qt_stack_t;

extern const char *const stack_bins[STACK_NSVC];

/* A CSV of n 1-minute bars: a sine wave with a drift, from 2024-05-01. */
void stack_write_csv(const char *path, int n, double drift, double phase);
/* Fill s (ns, feed, speed; redis, rc and dir borrowed) and start
 * policy-store, set the mode (and min_confidence when not NULL) through its
 * API, then ml-threshold, rl-decision (when with_rl), trade-executor and the
 * trading-engine; each ready before the next. Every service gets the
 * others' URLs (QT_<SERVICE>_URL) and QT_CORS_ORIGINS = the engine's, so
 * the dashboard works. */
int stack_start(qt_stack_t *s, const th_redis_t *r, redisContext *rc, const char *dir, const char *ns, const char *feed,
                const char *speed, const char *mode, const char *min_conf, int with_rl, char *why, size_t len);
/* (Re)start service i on its port and wait for /ready. */
int stack_svc_start(qt_stack_t *s, int i, char *why, size_t len);
/* One more replica (number n, for its log's name) of service i on a port
 * of its own, ready: its pid, or -1 with why. */
pid_t stack_replica(qt_stack_t *s, int i, int n, char *why, size_t len);
/* The same on a port of its own (into *port_out), once /ready answers
 * `ready` (503: a standby). */
pid_t stack_another(qt_stack_t *s, int i, int n, int *port_out, int ready, char *why, size_t len);
/* PUT a policy key (value as JSON text) through policy-store. */
int stack_put(qt_stack_t *s, const char *key, const char *json, char *why, size_t len);
/* SIGTERM every running service; the number that did not exit 0. */
int stack_stop(qt_stack_t *s);
/* o.a (b NULL) or o.a.b as an integer, 0 when absent. */
long long stack_jint(const json_t *o, const char *a, const char *b);
/* GET port/path as JSON (new reference) or NULL. */
json_t *stack_api(int port, const char *path);
/* Wait until all `bars` (distinct event ids) are on the market stream, every group of every
 * stream has no lag and nothing pending, and every intent has a result,
 * steadily for 1 s; -1 on timeout. */
int stack_settle(qt_stack_t *s, long long bars, int ms);
/* Symbol partitions: the namespace's count (its <ns>:meta record, 1 when
 * none), and the keys of a stream's partitions (STACK_MAXP at most). */
#define STACK_MAXP 16
int stack_parts(redisContext *rc, const char *ns);
int stack_keys(redisContext *rc, const char *ns, const char *stream, char keys[][64]);
/* Partition leases (libcommon/lease.h): the holder ("<host>-<pid>", "" for
 * none) of service's partition k; whether a holder is process pid; how many
 * distinct replicas hold the parts partitions, or -1 when one is free or
 * held by dead (0: none is). */
void stack_lease_holder(redisContext *rc, const char *ns, const char *service, int k, char out[64]);
int stack_held_by(const char *holder, pid_t pid);
int stack_lease_holders(redisContext *rc, const char *ns, const char *service, int parts, pid_t dead);
/* Entries of a type (NULL: all) over every partition of ns:stream; distinct: ids counted once. */
long stack_count(redisContext *rc, const char *ns, const char *stream, const char *type, int distinct);
/* lag + pending of every group of ns:stream, every partition (-1 when the lag is unknown). */
long long stack_backlog(redisContext *rc, const char *ns, const char *stream);
/* Distinct event ids on a stream, of one type or of all (NULL) (*entries: all entries; may be NULL). */
long stack_distinct_ids(redisContext *rc, const char *key, const char *type, long *entries);
/* DLQ entries over the seven streams. */
long stack_dead(redisContext *rc, const char *ns);

#define STACK_MAXI 4096
typedef struct stack_book {
    char intent[STACK_MAXI][40];
    int results[STACK_MAXI], nintent, dup_intents, orphan_results;
    int external; /* position.external entries (the reconciliation found a position gone) */
    char closed[STACK_MAXI][40]; /* position.closed ids seen */
    int nclosed;
    char sym[16][24];
    double qty[16], entry[16], fees_open[16], realized, fees, closed_pnl;
    int nsym, closes, closes_without_votes; /* position.closed, and those with empty model_votes */
} stack_book_t;

/* Intents, their results and the ledger recomputed from the fills. */
void stack_read_book(redisContext *rc, const char *ns, stack_book_t *b);
/* Every intent settled exactly once, no result without an intent, and the
 * engine's ledger equal to the recomputed one to the cent. */
int stack_check_book(const qt_stack_t *s, stack_book_t *b, char *why, size_t len);

#endif
