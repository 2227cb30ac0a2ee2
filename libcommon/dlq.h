/* dlq.h — operator functions on dead-letter streams "<stream>:dlq".
 *
 * A DLQ entry holds every field of the original entry followed by seven
 * metadata pairs, in this order: origin_stream, origin_id, group, consumer,
 * deliveries, error, failed_at (see bus.h). Replay re-adds the original
 * fields (with the operator's fixes) to the origin stream and deletes the
 * DLQ entry, atomically (one script, rsync_xadd_then in rsync.h), so an
 * entry is never both replayed and kept, or lost. */
#ifndef QT_DLQ_H
#define QT_DLQ_H

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stddef.h>

#define DLQ_META_FIELDS 7

/* Is f (an entry's flat name/value array) a dead letter? Checks the trailing metadata. */
int dlq_is_entry(const redisReply *f);

/* The metadata of a dead letter, in the order of the layout above. */
typedef struct dlq_meta {
    const char *origin_stream, *origin_id, *group, *consumer;
    const char *deliveries; /* decimal */
    const char *error;
    const char *failed_at;  /* epoch ms, decimal */
} dlq_meta_t;

/* The metadata as the 2 * DLQ_META_FIELDS name/value strings that close a
 * DLQ entry (borrowed from m and static names). The bus writes dead letters
 * with it; this file reads them. */
void dlq_meta_fields(const dlq_meta_t *m, const char *out[2 * DLQ_META_FIELDS]);

/* Up to count entries, oldest first, as a JSON array of
 * {"dlq_id", "origin_stream", "origin_id", "group", "consumer",
 *  "deliveries", "error", "failed_at", "fields": {name: value}}.
 * *out is a new reference. */
int dlq_list(redisContext *c, const char *dlq_key, long count, json_t **out, char *err, size_t errlen);

/* One entry (entry_id) as dlq_list shows it, plus "data_json": the original
 * data field parsed (null when it is not JSON, which may be why it is here).
 * -1 with err when there is no such entry. */
int dlq_show(redisContext *c, const char *dlq_key, const char *entry_id, json_t **out, char *err, size_t errlen);

#define DLQ_MAX_SET 8

typedef struct dlq_replay_opts {
    const char *const *set; /* "FIELD=VALUE": the replayed entry's field replaced (or added) — the fix */
    int nset;               /* at most DLQ_MAX_SET */
    int force;              /* replay even an entry that still breaks the event contract */
} dlq_replay_opts_t;

typedef struct dlq_replay_result {
    long replayed;     /* entries put back on their origin stream */
    long merged;       /* dead letters of an event another group's copy already put back: deleted */
    long refused;      /* entries that still break the contract: left in the DLQ */
    char refusal[512]; /* why the first one was refused */
} dlq_replay_result_t;

/* Replay one entry (entry_id) or all (NULL) to their origin stream, with
 * the fields in o->set replaced (o may be NULL). Each entry is first decoded
 * as the services will decode it; one that still breaks the event contract
 * is left in the DLQ and counted in res->refused (unless o->force). An
 * event that several consumer groups dead-lettered is put back once, and its
 * other dead letters are removed (also when only entry_id was asked for):
 * every group reads it again from the stream. -1 only when Redis fails, the entry does
 * not exist or an option is malformed. */
int dlq_replay(redisContext *c, const char *dlq_key, const char *entry_id, const dlq_replay_opts_t *o,
               dlq_replay_result_t *res, char *err, size_t errlen);

/* Delete one entry or all (NULL). *done counts the entries removed. */
int dlq_purge(redisContext *c, const char *dlq_key, const char *entry_id, long *done, char *err, size_t errlen);

#endif
