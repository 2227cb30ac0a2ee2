/* live.c — RL v3 live orchestrator decisions (see live.h). */
#include "live.h"
#include "actions.h"

#include <math.h>
#include <string.h>

_Static_assert(ACT_HOLD + 1 == PROTO_RL_ACTIONS && ACT_FLAT == 0, "rl_action_t follows proto/actions.h");
static const char *const mode_names[] = {"OFF", "SHADOW", "PRIMARY", "HYBRID"};

int rl_action_dir(rl_action_t a)
{
    return (a == ACT_LONG_SMALL || a == ACT_LONG_LARGE) ? 1 : (a == ACT_SHORT_SMALL || a == ACT_SHORT_LARGE) ? -1 : 0;
}

const char *rl_action_name(rl_action_t a) { return proto_rl_action_name((int)a); }

int rl_action_parse(const char *s, rl_action_t *out)
{
    int i = proto_rl_action_index(s);
    if (i < 0) return -1;
    *out = (rl_action_t)i;
    return 0;
}

const char *live_mode_name(live_mode_t m) { return (unsigned)m < 4 ? mode_names[m] : "OFF"; }

int live_mode_parse(const char *s, live_mode_t *out)
{
    for (int i = 0; s && i < 4; i++)
        if (strcmp(s, mode_names[i]) == 0) return *out = (live_mode_t)i, 0;
    return -1;
}

static int is_large(rl_action_t a) { return a == ACT_LONG_LARGE || a == ACT_SHORT_LARGE; }

/* The ensemble's direction as an RL-style action (the ensemble has no size). */
static rl_action_t ens_action(int dir) { return dir > 0 ? ACT_LONG_SMALL : dir < 0 ? ACT_SHORT_SMALL : ACT_HOLD; }

/* Pick the acting source per mode; returns 0 when there is nothing to act
 * on. d->confidence is then the driving source's own (the one the threshold
 * applies to); *boost what a consensus adds to it. */
static int live_pick(const live_cfg_t *c, const live_rl_t *rl, const live_ens_t *ens, live_decision_t *d,
                     double *size_mult, double *boost)
{
    *size_mult = 1.0, *boost = 0;
    if (c->mode == MODE_PRIMARY || c->mode == MODE_SHADOW) {
        if (!rl->present) return 0;
        d->action = rl->action, d->confidence = rl->confidence, d->source_tag = "RL_V3_PRIMARY";
        return 1;
    }
    if (!rl->present && !ens->present) return 0;
    int rl_first = rl->present && (!ens->present || rl->confidence >= ens->confidence);
    if (rl_first) d->action = rl->action, d->confidence = rl->confidence, d->source_tag = "RL_V3_HYBRID_RL_PRIMARY";
    else d->action = ens_action(ens->dir), d->confidence = ens->confidence, d->source_tag = "RL_V3_HYBRID_SIGNAL_PRIMARY";
    if (rl->present && ens->present && ens->dir != 0 && rl_action_dir(rl->action) == ens->dir) {
        *boost = 0.1;
        *size_mult = 1.2;
        d->source_tag = "RL_V3_HYBRID_CONSENSUS";
    }
    return 1;
}

void live_decide(const live_cfg_t *c, const live_rl_t *rl, const live_ens_t *ens, int position_dir,
                 live_decision_t *d)
{
    double mult, boost;
    memset(d, 0, sizeof *d);
    if (!c->enabled || c->mode == MODE_OFF) return;
    d->kind = LIVE_RECORD;
    if (!live_pick(c, rl, ens, d, &mult, &boost)) {
        d->outcome = "NO_SIGNAL";
        return;
    }
    int below = d->confidence < c->threshold; /* the driving source's own confidence */
    d->confidence = fmin(1.0, d->confidence + boost);
    d->dir = rl_action_dir(d->action);
    d->size_pct = fmin(c->max_position_size, is_large(d->action) ? c->size_large : c->size_small) * mult;
    if (d->action == ACT_HOLD) d->outcome = "HOLD";
    else if (below) d->outcome = "BELOW_THRESHOLD";
    else if (c->mode == MODE_SHADOW) d->outcome = "SHADOW";
    else if (d->action == ACT_FLAT) {
        if (position_dir && c->flat_closes) d->kind = LIVE_EXIT, d->outcome = "EXIT";
        else d->outcome = position_dir ? "FLAT" : "FLAT_NO_POSITION";
    } else if (position_dir && d->dir == -position_dir) d->kind = LIVE_EXIT, d->outcome = "EXIT";
    else if (position_dir == d->dir) d->outcome = "ALREADY_IN_POSITION";
    else d->kind = LIVE_ENTRY, d->outcome = "INTENT";
}

/* Drop entries older than an hour before t. */
static void live_rate_expire(live_rate_t *r, long long t)
{
    while (r->n > 0 && r->t[r->head] <= t - 3600000LL) {
        r->head = (r->head + 1) % LIVE_RATE_MAX;
        r->n--;
    }
}

int live_rate_count(live_rate_t *r, long long t)
{
    live_rate_expire(r, t);
    return r->n;
}

int live_rate_allows(live_rate_t *r, long long t, int max_per_hour)
{
    return live_rate_count(r, t) < max_per_hour;
}

void live_rate_record(live_rate_t *r, long long t)
{
    if (r->n == LIVE_RATE_MAX) { /* full: forget the oldest */
        r->head = (r->head + 1) % LIVE_RATE_MAX;
        r->n--;
    }
    r->t[(r->head + r->n) % LIVE_RATE_MAX] = t;
    r->n++;
}
