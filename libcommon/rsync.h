/* rsync.h — a synchronous Redis connection: connect with a timeout, AUTH
 * and SELECT from a REDIS_URL. For tools and tests (qtctl, DLQ operations)
 * and for a service's start-up reads before its loop runs (the engine's
 * rebuild, restoring checkpoints); on a running loop services use the bus. */
#ifndef QT_RSYNC_H
#define QT_RSYNC_H

#include "config.h"
#include "event.h"

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
#define RSYNC_XADD_THEN_ARGV (7 + 2 * RSYNC_XADD_THEN_MAX)
int rsync_xadd_then(redisContext *c, const char *stream, int xargc, const char *const *xargv, const size_t *xlens,
                    const char *cmd, const char *key, int cargc, const char *const *cargv, char *err, size_t errlen);

/* The same script's arguments into argv/lens (RSYNC_XADD_THEN_ARGV places;
 * n holds a number they point to): their count, or -1 when there are too
 * many. For sending it another way (the bus sends it asynchronously). */
int rsync_xadd_then_args(const char *stream, int xargc, const char *const *xargv, const size_t *xlens, const char *cmd,
                         const char *key, int cargc, const char *const *cargv, const char **argv, size_t *lens,
                         char n[16]);

/* A page of XRANGE (or, rev, XREVRANGE) from start to end, bounded: at most
 * count entries and, in all, about max_bytes of them (at least one), with
 * every entry larger than max_entry left out in Redis, unread (counted in
 * skipped). The reply holds {last id looked at, skipped, done (1: the range
 * ended), [entries as XRANGE gives them]}; the next page starts after "last".
 * NULL on a connection error. For a start-up read that a hostile entry must
 * not blow up (QT_MAX_ENTRY_BYTES, QT_MAX_READ_BYTES). */
redisReply *rsync_range(redisContext *c, const char *key, const char *start, const char *end, int rev, long count,
                        long max_entry, long max_bytes);

/* The payload of one entry (an XRANGE element's field list, v1 or v2) as
 * JSON, read as event_payload_json does (for showing it: no validation);
 * NULL when it has none. The first `skip_tail` fields from the end are
 * left out (a dead letter's metadata). */
json_t *rsync_entry_payload(const redisReply *fields, size_t skip_tail);

#endif
