/* harness.h — real processes for tests and benchmarks: a private
 * redis-server on a free port in a temp dir, child processes with extra
 * environment, a watchdog, and cleanup of everything at exit. */
#ifndef QT_HARNESS_H
#define QT_HARNESS_H

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <sys/types.h>

typedef struct th_redis {
    pid_t pid;
    int port;
    int aof;
    char dir[256];
    char url[128];
} th_redis_t;

/* Kill every child and exit(2) if the process is still running after
 * `seconds` (a hung test never hangs CI). */
void th_watchdog(int seconds);

/* A free TCP port on 127.0.0.1, below the kernel's ephemeral range (so no
 * outgoing connection takes it before the service binds it), with a few
 * ports after it to spare. */
int th_free_port(void);
/* 1 when port can be bound on 127.0.0.1 now (SO_REUSEADDR, as servers do). */
int th_port_free(int port);
/* A fresh temp dir (removed at exit) into out. */
int th_tempdir(char *out, size_t len);

int th_redis_start(th_redis_t *r, int aof);
/* SIGTERM (Redis saves and fsyncs), then start again on the same port/dir. */
int th_redis_restart(th_redis_t *r);
void th_redis_stop(th_redis_t *r);
redisContext *th_redis_connect(const th_redis_t *r);

/* Path of a built binary: $QT_BUILD/<rel> (e.g. "tests/bin/bus-worker"). */
const char *th_bin(const char *rel, char *buf, size_t len);

/* Start path with argv; env is a NULL-terminated list of NAME=VALUE added to
 * this process's environment; stdout+stderr go to logfile when given. */
pid_t th_spawn(const char *path, const char *const argv[], const char *const env[], const char *logfile);
/* Wait up to timeout_ms for pid; returns 0 with *status, or -1 on timeout. */
int th_wait(pid_t pid, int timeout_ms, int *status);
void th_kill(pid_t pid, int sig);

/* Start a service binary on redis r in namespace ns with a free HTTP port
 * (*port), extra NAME=VALUE settings (NULL-terminated, may be NULL), its
 * output in logdir/<tag>.log; waits up to 15 s for /ready when wait_ready. */
pid_t th_service(const char *bin, const th_redis_t *r, const char *ns, const char *const extra[],
                 const char *logdir, const char *tag, int *port, int wait_ready);
/* SIGTERM and wait; returns the exit status (128+signal), or -1 on timeout. */
int th_stop(pid_t pid, int timeout_ms);

/* Poll until an HTTP GET on 127.0.0.1:port/path answers with status `want`
 * (or timeout). Returns the body's first bytes in body when given. */
int th_http(int port, const char *method, const char *path, const char *headers, const char *body,
            char *reply, size_t replylen);
int th_wait_http(int port, const char *path, int want, int timeout_ms);
/* 1 when the file (its first MiB) holds needle. */
int th_file_has(const char *path, const char *needle);
/* The whole file, malloc'd and NUL-terminated (the caller frees), its size
 * in *len when len is given; NULL when it cannot be read. */
char *th_slurp(const char *path, size_t *len);

/* Add an event with a fresh id (or id when given) to stream key as a
 * legacy v1 entry (the payload in one data field; readers accept both
 * layouts), data as given, valid or not. Returns 0 or -1. */
int th_xadd_event(redisContext *c, const char *key, const char *type, const char *data, const char *id);
/* The same as a v2 entry: each member of the data object a field of its
 * own, as another language's producer would write it (strings bare,
 * numbers and booleans as their JSON text, objects and arrays as compact
 * JSON; a string in a field of several types is written as JSON). */
int th_xadd_flat(redisContext *c, const char *key, const char *type, const char *data, const char *id);
/* The payload of an entry (an XRANGE element's field list), v1 or v2, as
 * JSON (event_payload_json), or NULL; and one field's value, or NULL. */
json_t *th_entry_payload(const redisReply *fields);
const char *th_entry_field(const redisReply *fields, const char *name);
/* Wait until XLEN key >= n. 0 or -1 on timeout. */
int th_wait_xlen(redisContext *c, const char *key, long long n, int timeout_ms);
long long th_xlen(redisContext *c, const char *key);
/* The data of the newest (or, with nth >= 0, the nth oldest) entry of type
 * in key (new reference), or NULL. */
json_t *th_event_data(redisContext *c, const char *key, const char *type, int nth);
/* How many entries of type (NULL: of any) key holds. */
long th_count_type(redisContext *c, const char *key, const char *type);
/* Every event of type on key as {"<symbol> <open_time>": data without its
 * event_time} (new reference); a second event for the same bar that says
 * something else sets *dups_differ. */
json_t *th_events_by_bar(redisContext *c, const char *key, const char *type, int *dups_differ);
/* How many bars of a b decided otherwise (or not at all), plus those only
 * in b; the first such bar into first. */
int th_events_differ(const json_t *a, const json_t *b, char *first, size_t len);
/* 1 once group has read every entry of key and acked them all, within ms. */
int th_group_done(redisContext *c, const char *key, const char *group, int ms);

/* redis-benchmark's pipelined XADD (-P 32, one client) of ev's fields, n
 * times, against r: entries per second, or 0 when it could not be read. The
 * yardstick every throughput benchmark prints next to its own figure. */
struct event;
double th_redis_xadd_rate(const th_redis_t *r, long n, const struct event *ev);

/* The p-quantile (0..1) of v[0..n) by sorting v in place; -1 when n is 0. */
long long th_percentile(long long *v, long n, double p);

/* check.h's hooks: remember where a test begins; when it failed, print the
 * last 40 lines of every log file of the processes it started. */
void check_hook_begin(const char *name);
void check_hook_failed(const char *name);

/* A process's peak resident memory (VmHWM) in KiB; -1 if unknown. */
long th_peak_rss_kb(pid_t pid);

long long th_now_ms(void);  /* monotonic: for timeouts and durations */
long long th_wall_ms(void); /* epoch ms: for event timestamps */
long long th_now_ns(void);
void th_sleep_ms(int ms);

#endif
