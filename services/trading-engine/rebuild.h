/* rebuild.h — what a starting engine reads back from Redis, synchronously,
 * before its loop runs: its checkpoint, the configuration and TradingPolicy,
 * every trade intent, the executions its group has fully handled, the
 * newest bars and the newest performance.update. rebuild_run() only reads and decodes; the engine applies what
 * it is handed through the callbacks, in this order. */
#ifndef QT_REBUILD_H
#define QT_REBUILD_H

#include "config.h"
#include "event.h"

#include <jansson.h>

struct redisReply;

typedef struct rebuild_ops {
    void *ud;
    void (*checkpoint)(void *ud, const json_t *state);           /* the engine's own checkpoint, if any */
    void (*config)(void *ud, const struct redisReply *hash);     /* HGETALL of the policy hash */
    void (*trading)(void *ud, const char *txt, size_t len);      /* the TradingPolicy's text, if any */
    void (*intent)(void *ud, const event_t *ev);                 /* each decodable trade.intent, oldest first */
    void (*execution)(void *ud, const char *sid, const event_t *ev); /* each decodable execution up to what
                                                                        the group acked, oldest first */
    void (*bar)(void *ud, const json_t *data);                   /* closed bars that decode and validate, newest
                                                                    first (of the newest 5000 entries) */
    void (*perf)(void *ud, int64_t event_time);                  /* the event time of the newest performance.update
                                                                    (of the newest 5000 feedback entries), if any */
    void (*equity)(void *ud, const struct redisReply *hash);     /* HGETALL of the equity's record (keys.h) */
    void (*entry_votes)(void *ud, const struct redisReply *hash); /* HGETALL of the late votes of entries (keys.h),
                                                                     before the intents */
} rebuild_ops_t;

/* Connect (waiting up to wait_s for Redis) and read. -1 with err when Redis
 * cannot be reached. */
int rebuild_run(const qt_config_t *cfg, long wait_s, const rebuild_ops_t *ops, char *err, size_t errlen);

#endif
