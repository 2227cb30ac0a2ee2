/* config.h — configuration from environment variables.
 *
 * Typed getters return 0 and store the value (or the default when the variable
 * is unset or empty), or -1 with a message naming the variable in err.
 * config_common_load() reads the settings every service shares; the full list
 * with defaults is in docs/operations.md. */
#ifndef QT_CONFIG_H
#define QT_CONFIG_H

#include "breaker.h"

#include <stddef.h>

int config_get_str(const char *name, const char *def, const char **out);
int config_get_long(const char *name, long def, long min, long max, long *out,
                    char *err, size_t errlen);
int config_get_double(const char *name, double def, double min, double max,
                      double *out, char *err, size_t errlen);
int config_get_bool(const char *name, int def, int *out, char *err, size_t errlen);

/* Reads NAME, or the file named by NAME_FILE (trailing newline stripped) into
 * out (size outlen). Unset both: out is "" and 0 is returned. For secrets. */
int config_get_secret(const char *name, char *out, size_t outlen, char *err, size_t errlen);

/* redis://[[user]:password@]host[:port][/db] or unix:///path/to.sock[?db=N];
 * user and password percent-decoded (%40 for '@'). With a user, AUTH sends
 * both (a Redis 6+ ACL user); without, the password alone (the default user). */
typedef struct redis_url {
    char host[256];
    int port;
    char unix_path[256]; /* non-empty for a unix socket */
    char user[128];
    char password[256];
    int db;
} redis_url_t;

int config_parse_redis_url(const char *url, redis_url_t *out, char *err, size_t errlen);

/* Settings every service shares. Strings point into the environment or
 * static defaults, or into the struct itself; valid for the process life. */
typedef struct qt_config {
    char service[64];        /* e.g. "trading-engine" */
    const char *ns;          /* QT_NAMESPACE, default "qt" */
    const char *redis_url_str; /* REDIS_URL */
    redis_url_t redis;
    const char *http_bind;   /* QT_HTTP_BIND, default 127.0.0.1 */
    long http_port;          /* QT_HTTP_PORT, default per service */
    char api_token[256];     /* QT_API_TOKEN or QT_API_TOKEN_FILE; "" = writes off */
    long claim_idle_ms;      /* QT_CLAIM_IDLE_MS, 30000 */
    long max_deliveries;     /* QT_MAX_DELIVERIES, 5 */
    long stream_maxlen;      /* QT_STREAM_MAXLEN, 1000000 (approximate trim) */
    long dlq_maxlen;         /* QT_DLQ_MAXLEN, 100000 */
    long batch;              /* QT_BATCH, 256 entries per read */
    long block_ms;           /* QT_BLOCK_MS, 1000 */
    long outbox_max;         /* QT_OUTBOX_MAX, 10000 publishes held while Redis is away */
    long redis_timeout_ms;   /* QT_REDIS_TIMEOUT_MS, 5000: watchdog for a silent link */
    long retry_delay_ms;     /* QT_RETRY_DELAY_MS, 1000: before a RETRY entry is re-read */
    long drain_ms;           /* QT_DRAIN_MS, 10000: SIGTERM drain limit */
    long http_max_conns;     /* QT_HTTP_MAX_CONNECTIONS, 1024 (within the open-files limit less a reserve) */
    long http_idle_ms;       /* QT_HTTP_IDLE_MS, 10000: a silent HTTP connection is closed */
    long http_busy_ms;       /* QT_HTTP_BUSY_MS, 500: the HTTP thread answers alone past it */
    long health_stall_ms;    /* QT_HEALTH_STALL_MS, 300000: /health says stalled past it */
    long clock_skew_ms;      /* QT_MAX_CLOCK_SKEW_MS, 60000: how far an event time may lead its clocks */
    long max_time_jump_ms;   /* QT_MAX_TIME_JUMP_MS, 7 days: how far one entry may move an event-time clock */
    long max_entry_bytes;    /* QT_MAX_ENTRY_BYTES, 1 MiB: a larger stream entry is dead-lettered */
    long max_read_bytes;     /* QT_MAX_READ_BYTES, 16 MiB: what one Redis reply may bring in */
    long checkpoint_ms;      /* QT_CHECKPOINT_MS, 1000: how often a stateful service checkpoints (ckpt.h) */
    long partitions;         /* QT_PARTITIONS, 1: symbol partitions of the namespace (DESIGN §2a) */
    long lease_ms;           /* QT_LEASE_MS, 5000: a replica's hold on its partitions without renewal (lease.h) */
    const char *cors_origins; /* QT_CORS_ORIGINS: origins whose browsers may read GETs */
    const char *log_level;   /* QT_LOG_LEVEL: debug, info, warn or error */
    breaker_config_t redis_breaker; /* QT_REDIS_BREAKER_*: the bus's publish breaker */
} qt_config_t;

/* A breaker's settings from <prefix>_WINDOW, _MIN_CALLS, _FAILURE_RATE,
 * _SLOW_CALL_MS, _SLOW_RATE, _OPEN_WAIT_MS and _HALF_OPEN_CALLS over the
 * defaults already in cfg. -1 with err naming a bad variable. */
int config_get_breaker(const char *prefix, breaker_config_t *cfg, char *err, size_t errlen);

/* A Binance client's settings from QT_BINANCE_BASE_URL (default testnet;
 * base_default overrides that default), QT_BINANCE_API_KEY / _SECRET (or
 * their _FILE variants), QT_BINANCE_RECV_WINDOW_MS, QT_BINANCE_TIMEOUT_MS,
 * QT_BINANCE_WEIGHT_LIMIT. -1 with err naming a bad variable. */
struct binance_config;
int config_get_binance(struct binance_config *cfg, const char *base_default, char *err, size_t errlen);

int config_common_load(qt_config_t *cfg, const char *service, long default_port,
                       char *err, size_t errlen);

#endif
