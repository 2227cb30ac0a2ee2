/* rsync.h — a synchronous Redis connection for tools and tests (qtctl,
 * DLQ operations): connect with a timeout, AUTH and SELECT from a REDIS_URL.
 * Services use the async bus instead. */
#ifndef QT_RSYNC_H
#define QT_RSYNC_H

#include "config.h"

#include <hiredis/hiredis.h>

/* Returns a connected context (free with redisFree) or NULL with err. The
 * password never appears in err. */
redisContext *rsync_connect(const redis_url_t *u, int timeout_ms, char *err, size_t errlen);

#endif
