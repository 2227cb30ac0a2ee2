/* dlq.h — operator functions on dead-letter streams "<stream>:dlq".
 *
 * A DLQ entry holds every field of the original entry followed by seven
 * metadata pairs, in this order: origin_stream, origin_id, group, consumer,
 * deliveries, error, failed_at (see bus.h). Replay re-adds the original
 * fields to the origin stream and deletes the DLQ entry, atomically
 * (MULTI/EXEC), so an entry is never both replayed and kept, or lost. */
#ifndef QT_DLQ_H
#define QT_DLQ_H

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stddef.h>

#define DLQ_META_FIELDS 7

/* Up to count entries, oldest first, as a JSON array of
 * {"dlq_id", "origin_stream", "origin_id", "group", "consumer",
 *  "deliveries", "error", "failed_at", "fields": {name: value}}.
 * *out is a new reference. */
int dlq_list(redisContext *c, const char *dlq_key, long count, json_t **out, char *err, size_t errlen);

/* One entry (entry_id) as dlq_list shows it, plus "data_json": the original
 * data field parsed (null when it is not JSON, which may be why it is here).
 * -1 with err when there is no such entry. */
int dlq_show(redisContext *c, const char *dlq_key, const char *entry_id, json_t **out, char *err, size_t errlen);

/* Replay one entry (entry_id) or all (NULL) to their origin stream.
 * *done counts the entries replayed. */
int dlq_replay(redisContext *c, const char *dlq_key, const char *entry_id, long *done, char *err, size_t errlen);

/* Delete one entry or all (NULL). *done counts the entries removed. */
int dlq_purge(redisContext *c, const char *dlq_key, const char *entry_id, long *done, char *err, size_t errlen);

#endif
