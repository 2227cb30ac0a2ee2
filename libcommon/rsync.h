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

/* XADD to stream (xargv: what follows the key: MAXLEN …, the id, the field
 * pairs) and then, only if that entry was added, one more write `cmd key
 * cargv…` (SET a record, XDEL a DLQ copy), as one script. MULTI … EXEC will
 * not do: Redis runs a transaction's remaining commands after one fails at
 * run time (a key of the wrong type), which would leave a record saying done
 * or a DLQ copy deleted with no entry added. 0, or -1 with err (nothing was
 * written when the XADD failed). lens may be NULL for NUL-terminated args. */
#define RSYNC_XADD_THEN_MAX 160
int rsync_xadd_then(redisContext *c, const char *stream, int xargc, const char *const *xargv, const size_t *xlens,
                    const char *cmd, const char *key, int cargc, const char *const *cargv, char *err, size_t errlen);

#endif
