/* joins.c — signals joined per (symbol, bar) (see joins.h). */
#include "joins.h"
#include "symtab.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

_Static_assert(offsetof(join_sym_t, symbol) == 0, "symtab: the symbol comes first");

void joins_free(joins_t *j)
{
    for (int i = 0; i < j->n; i++) json_decref(j->s[i].join.votes), j->s[i].join.votes = NULL;
}

join_sym_t *joins_sym(joins_t *j, const char *symbol) { return SYMTAB_SLOT(j->s, &j->n, JOINS_SYMS, symbol, NULL); }

join_verdict_t joins_check(joins_t *j, const join_sym_t *s, int64_t open_time)
{
    if (open_time <= s->decided_upto || (s->join.active && open_time < s->join.open_time)) {
        j->late++; /* that bar is decided, or a later one is being joined */
        return JOIN_LATE;
    }
    return s->join.active && s->join.open_time < open_time ? JOIN_OLDER_DUE : JOIN_OK;
}

void joins_take(join_sym_t *s, const join_signal_t *sig, int64_t now_mono)
{
    join_t *j = &s->join;
    if (!j->active) {
        j->active = 1;
        j->open_time = sig->open_time;
        j->first_mono = now_mono;
    }
    j->event_time = sig->event_time;
    if (sig->regime) snprintf(j->regime, sizeof j->regime, "%s", sig->regime);
    if (!j->trace[0]) snprintf(j->trace, sizeof j->trace, "%s", sig->trace);
    if (sig->rl) {
        j->rl.present = 1;
        j->rl.confidence = sig->confidence;
        j->rl.action = sig->action;
    } else {
        j->ens.present = 1;
        j->ens.confidence = sig->confidence;
        j->ens.dir = sig->dir;
        json_decref(j->votes);
        j->votes = sig->votes ? json_incref((json_t *)sig->votes) : NULL;
    }
}

void joins_done(join_sym_t *s)
{
    s->decided_upto = s->join.open_time;
    json_decref(s->join.votes);
    memset(&s->join, 0, sizeof s->join);
}

void joins_bar(join_sym_t *s, int64_t open_time)
{
    if (open_time > s->last_bar_open) s->last_bar_open = open_time;
}

int join_ready(const join_t *j, live_mode_t mode, int enabled, int rl_silent)
{
    if (mode == MODE_OFF || !enabled) return 1; /* nothing to wait for */
    if (mode != MODE_HYBRID) return j->rl.present;
    if (j->rl.present && j->ens.present) return 1;
    return j->ens.present && rl_silent; /* RL silent: fall back */
}
