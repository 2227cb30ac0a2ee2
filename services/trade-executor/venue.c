/* venue.c — answers that need no I/O, for both venues (see venue.h). */
#include "venue.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void venue_answer_set(venue_answer_t *a, venue_rc_t rc, const char *fmt, ...)
{
    va_list ap;
    a->rc = rc;
    va_start(ap, fmt);
    vsnprintf(a->err, sizeof a->err, fmt, ap);
    va_end(ap);
}

typedef struct venue_later {
    venue_answer_t a;
    venue_done_fn done;
    void *ud;
} venue_later_t;

static void venue_later_cb(evutil_socket_t fd, short what, void *arg)
{
    venue_later_t *l = arg;
    (void)fd, (void)what;
    l->done(l->ud, &l->a);
    free(l);
}

void venue_answer_later(venue_t *v, const venue_answer_t *a, venue_done_fn done, void *ud)
{
    venue_later_t *l = malloc(sizeof *l);
    struct timeval now = {0, 0};
    if (l) l->a = *a, l->done = done, l->ud = ud;
    if (!l || event_base_once(v->base, -1, EV_TIMEOUT, venue_later_cb, l, &now) < 0) {
        /* out of memory: answer now rather than never */
        free(l);
        done(ud, a);
    }
}
