/* dedupe.h — the last N event ids seen, for handlers that must be idempotent
 * on the event id (a redelivered event is recognised and skipped). Open
 * addressing over FNV-1a hashes with FIFO eviction; O(1) per id. In memory
 * only: durable idempotency (orders) keeps its record in Redis instead. */
#ifndef QT_DEDUPE_H
#define QT_DEDUPE_H

#include <stddef.h>

typedef struct dedupe dedupe_t;

/* Remembers up to capacity ids (each at most 64 bytes). NULL on OOM. */
dedupe_t *dedupe_new(size_t capacity);
void dedupe_free(dedupe_t *d);
/* 1 if id was seen before (nothing changes); 0 after remembering it. */
int dedupe_check(dedupe_t *d, const char *id);
/* 1 if id was seen, without remembering it. */
int dedupe_contains(const dedupe_t *d, const char *id);

#endif
