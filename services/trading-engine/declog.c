/* declog.c — the last decisions (see declog.h). */
#include "declog.h"

#include <stddef.h>

void declog_add(declog_t *l, const declog_entry_t *d)
{
    l->e[l->head] = *d;
    l->head = (l->head + 1) % DECLOG_MAX;
    if (l->n < DECLOG_MAX) l->n++;
    l->total++;
    l->last_at = d->event_time;
    if (d->mode == MODE_SHADOW) l->shadow++;
}

const declog_entry_t *declog_newest(const declog_t *l, int k)
{
    return k >= 0 && k < l->n ? &l->e[(l->head - 1 - k + DECLOG_MAX) % DECLOG_MAX] : NULL;
}
