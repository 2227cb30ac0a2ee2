/* outbox.h — the bus's ordered outbox and ack gate, without any I/O.
 *
 * Publishes (and DLQ copies) are queued as formatted commands, each with a
 * sequence number, and sent in order; one leaves the outbox only when Redis
 * confirmed it. An ack waits for a sequence number: an entry is acked only
 * once everything its handler published (everything issued before the ack
 * was queued) is confirmed, so a crash can duplicate work but never lose it.
 * A DLQ copy's own entry is acked once the copy is confirmed.
 *
 * The bus owns one outbox_t (zeroed to start); nothing here is thread-safe. */
#ifndef QT_OUTBOX_H
#define QT_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#define OUTBOX_ID_MAX 48 /* a stream entry id "<ms>-<seq>" fits in 41 */

typedef struct outbox_item {
    struct outbox_item *prev, *next;
    char *cmd; /* formatted command (malloc'd, owned: freed with the item) */
    size_t len;
    uint64_t seq;
    int inflight; /* sent, no reply yet */
    int sub;      /* >= 0: a DLQ copy of subscription sub's entry_id */
    char entry_id[OUTBOX_ID_MAX];
    void *tag;    /* the caller's, e.g. a metric to count when confirmed */
    void *owner;  /* the outbox's owner (outbox_t.owner), for reply callbacks */
} outbox_item_t;

typedef struct outbox_ack {
    int sub;
    uint64_t wait_seq; /* sent once every item up to it is confirmed */
    char id[OUTBOX_ID_MAX];
} outbox_ack_t;

typedef struct outbox {
    outbox_item_t *head, *tail, *cursor; /* cursor: the next item to send */
    size_t count, pubs, dlqs;            /* all items, publishes, DLQ copies */
    uint64_t issued;                     /* sequence number of the newest item */
    outbox_ack_t *acks;
    size_t ack_head, ack_len, ack_cap;
    void *owner; /* set by the owner; copied into every item */
} outbox_t;

/* Queue cmd (taken on success) as the newest item. sub < 0 for a publish;
 * for a DLQ copy, sub and the entry it copies. -1 when out of memory (cmd
 * is then still the caller's). */
int outbox_append(outbox_t *o, char *cmd, size_t len, int sub, const char *entry_id, void *tag);
/* The next item to send, or NULL when every item is sent. */
outbox_item_t *outbox_cursor(const outbox_t *o);
/* The cursor's item was sent (or is in flight): move on. */
void outbox_advance(outbox_t *o);
/* Redis confirmed it: a DLQ copy's entry gets its ack, the item is freed. */
void outbox_confirmed(outbox_t *o, outbox_item_t *it);
/* Its reply was an error or lost: it is sent again, before anything after it. */
void outbox_failed(outbox_t *o, outbox_item_t *it);
/* The connection was lost: everything unconfirmed is sent again. */
void outbox_rewind(outbox_t *o);
/* Every item up to this sequence number is confirmed. */
uint64_t outbox_floor(const outbox_t *o);

/* Queue an ack of (sub, id) that waits for wait_seq (outbox_issued() for
 * "after what was published so far", 0 for at once). -1 when out of memory:
 * the entry then stays pending in Redis and is handled again later. */
int outbox_ack(outbox_t *o, int sub, const char *id, uint64_t wait_seq);
uint64_t outbox_issued(const outbox_t *o);
/* The acks ready to send at the head of the queue, all of one subscription
 * (*sub), at most max: their count, and *first. 0 when none is ready. */
size_t outbox_acks_ready(const outbox_t *o, size_t max, int *sub, const outbox_ack_t **first);
/* The n acks outbox_acks_ready() returned were sent. */
void outbox_acks_taken(outbox_t *o, size_t n);

/* Free every item and ack. */
void outbox_free(outbox_t *o);

#endif
