/* outbox.c — ordered publishes and gated acks (see outbox.h). */
#include "outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int outbox_append(outbox_t *o, char *cmd, size_t len, int sub, const char *entry_id, void *tag)
{
    outbox_item_t *it = calloc(1, sizeof *it);
    if (!it) return -1;
    it->cmd = cmd;
    it->len = len;
    it->seq = ++o->issued;
    it->sub = sub;
    it->tag = tag;
    it->owner = o->owner;
    if (entry_id) snprintf(it->entry_id, sizeof it->entry_id, "%s", entry_id);
    it->prev = o->tail;
    if (o->tail) o->tail->next = it;
    else o->head = it;
    o->tail = it;
    if (!o->cursor) o->cursor = it;
    o->count++;
    if (sub >= 0) o->dlqs++;
    else o->pubs++;
    return 0;
}

outbox_item_t *outbox_cursor(const outbox_t *o) { return o->cursor; }

void outbox_advance(outbox_t *o)
{
    if (o->cursor) o->cursor = o->cursor->next;
}

static void outbox_unlink(outbox_t *o, outbox_item_t *it)
{
    if (it->prev) it->prev->next = it->next;
    else o->head = it->next;
    if (it->next) it->next->prev = it->prev;
    else o->tail = it->prev;
    if (o->cursor == it) o->cursor = it->next;
    o->count--;
    if (it->sub >= 0) o->dlqs--;
    else o->pubs--;
    free(it->cmd);
    free(it);
}

void outbox_confirmed(outbox_t *o, outbox_item_t *it)
{
    it->inflight = 0;
    if (it->sub >= 0) outbox_ack(o, it->sub, it->entry_id, 0);
    outbox_unlink(o, it);
}

void outbox_failed(outbox_t *o, outbox_item_t *it)
{
    it->inflight = 0;
    if (!o->cursor || it->seq < o->cursor->seq) o->cursor = it;
}

void outbox_rewind(outbox_t *o) { o->cursor = o->head; }

uint64_t outbox_floor(const outbox_t *o) { return o->head ? o->head->seq - 1 : o->issued; }

uint64_t outbox_issued(const outbox_t *o) { return o->issued; }

int outbox_ack(outbox_t *o, int sub, const char *id, uint64_t wait_seq)
{
    if (o->ack_head + o->ack_len == o->ack_cap) {
        if (o->ack_head > 0) { /* compact */
            memmove(o->acks, o->acks + o->ack_head, o->ack_len * sizeof *o->acks);
            o->ack_head = 0;
        }
        if (o->ack_len == o->ack_cap) {
            size_t cap = o->ack_cap ? o->ack_cap * 2 : 1024;
            outbox_ack_t *a = realloc(o->acks, cap * sizeof *a);
            if (!a) return -1;
            o->acks = a;
            o->ack_cap = cap;
        }
    }
    outbox_ack_t *a = &o->acks[o->ack_head + o->ack_len++];
    a->sub = sub;
    a->wait_seq = wait_seq;
    snprintf(a->id, sizeof a->id, "%s", id);
    return 0;
}

size_t outbox_acks_ready(const outbox_t *o, size_t max, int *sub, const outbox_ack_t **first)
{
    uint64_t floor = outbox_floor(o);
    size_t n = 0;
    if (o->ack_len == 0 || o->acks[o->ack_head].wait_seq > floor) return 0;
    *first = &o->acks[o->ack_head];
    *sub = (*first)->sub;
    while (n < o->ack_len && n < max && (*first)[n].wait_seq <= floor && (*first)[n].sub == *sub) n++;
    return n;
}

void outbox_acks_taken(outbox_t *o, size_t n)
{
    if (n > o->ack_len) n = o->ack_len;
    o->ack_head += n;
    o->ack_len -= n;
    if (o->ack_len == 0) o->ack_head = 0;
}

void outbox_free(outbox_t *o)
{
    while (o->head) outbox_unlink(o, o->head);
    free(o->acks);
    memset(o, 0, sizeof *o);
}
