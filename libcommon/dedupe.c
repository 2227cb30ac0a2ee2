/* dedupe.c — bounded set of recent ids (see dedupe.h).
 * The ids live in a FIFO ring; the hash slots hold ring index + 1 (0 =
 * empty), so evicting the oldest only re-places its probe run. */
#include "dedupe.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define DEDUPE_ID 65

struct dedupe {
    size_t cap, nslots, next, count;
    char (*ring)[DEDUPE_ID];
    uint32_t *slots;
};

static size_t dedupe_home(const dedupe_t *d, const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (size_t)h & (d->nslots - 1);
}

dedupe_t *dedupe_new(size_t capacity)
{
    dedupe_t *d = calloc(1, sizeof *d);
    if (!d || capacity == 0 || capacity > UINT32_MAX / 4) {
        free(d);
        return NULL;
    }
    d->cap = capacity;
    d->nslots = 1;
    while (d->nslots < capacity * 2) d->nslots <<= 1; /* load factor <= 0.5 */
    d->ring = calloc(capacity, sizeof *d->ring);
    d->slots = calloc(d->nslots, sizeof *d->slots);
    if (!d->ring || !d->slots) {
        dedupe_free(d);
        return NULL;
    }
    return d;
}

void dedupe_free(dedupe_t *d)
{
    if (!d) return;
    free(d->ring);
    free(d->slots);
    free(d);
}

/* Slot holding id, or the empty slot where it would go. */
static size_t dedupe_find(const dedupe_t *d, const char *id)
{
    size_t i = dedupe_home(d, id);
    while (d->slots[i] && strcmp(d->ring[d->slots[i] - 1], id) != 0) i = (i + 1) & (d->nslots - 1);
    return i;
}

/* Empty slot i and re-place the entries that follow it in its probe run. */
static void dedupe_remove_slot(dedupe_t *d, size_t i)
{
    d->slots[i] = 0;
    for (size_t j = (i + 1) & (d->nslots - 1); d->slots[j]; j = (j + 1) & (d->nslots - 1)) {
        uint32_t v = d->slots[j];
        d->slots[j] = 0;
        d->slots[dedupe_find(d, d->ring[v - 1])] = v;
    }
}

int dedupe_contains(const dedupe_t *d, const char *id)
{
    return strlen(id) < DEDUPE_ID && d->slots[dedupe_find(d, id)] != 0;
}

int dedupe_check(dedupe_t *d, const char *id)
{
    size_t len = strlen(id);
    if (len == 0 || len >= DEDUPE_ID) return 0; /* cannot remember it: treat as new */
    if (dedupe_contains(d, id)) return 1;
    if (d->count == d->cap) { /* evict the oldest, which sits where the next id goes */
        dedupe_remove_slot(d, dedupe_find(d, d->ring[d->next]));
        d->count--;
    }
    memcpy(d->ring[d->next], id, len + 1);
    d->slots[dedupe_find(d, id)] = (uint32_t)d->next + 1;
    d->next = (d->next + 1) % d->cap;
    d->count++;
    return 0;
}
