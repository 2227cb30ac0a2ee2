/* lockstep.c — the replay's sequencer (see lockstep.h). */
#include "lockstep.h"
#include "keys.h"
#include "log.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOCKSTEP_POLL_US 300 /* how often to ask whether every consumer has caught up */

struct lockstep {
    bus_t *bus;
    char group[64];
    const char *ns;
    int parts;
    int enabled;
    long wait_ms;
    void (*settled)(void *ud);
    void *ud;
    int64_t since;  /* waiting since (monotonic ms), 0 when not */
    int unsettled;  /* something published may not be handled by every consumer yet */
    int query;      /* the question whether it is, in flight */
    int step;       /* the step of the bar below that went out */
    int64_t open;
    char symbol[24];
    struct event *timer;
    long timeouts, timeouts_total;
};

/* The sum of lag + pending of the groups that must have caught up (a lag
 * Redis cannot tell counts as 1). */
static const char lockstep_lua[] =
    "local function backlog(key, group) "
    "  local ok, gs = pcall(redis.call, 'XINFO', 'GROUPS', key) "
    "  if not ok then return 0 end "
    "  local sum = 0 "
    "  for _, g in ipairs(gs) do "
    "    local f = {} "
    "    for i = 1, #g, 2 do f[g[i]] = g[i + 1] end "
    "    if group == nil or f['name'] == group then "
    "      sum = sum + f['pending'] + (type(f['lag']) == 'number' and f['lag'] or 1) "
    "    end "
    "  end "
    "  return sum "
    "end "
    "local sum, every = 0, tonumber(ARGV[2]) "
    "for i = 1, #KEYS do sum = sum + backlog(KEYS[i], i > every and ARGV[1] or nil) end "
    "return sum";

static void lockstep_arm(lockstep_t *l)
{
    struct timeval tv = {0, LOCKSTEP_POLL_US};
    if (!evtimer_pending(l->timer, NULL)) evtimer_add(l->timer, &tv);
}

static void lockstep_cb(void *ud, const struct redisReply *r)
{
    lockstep_t *l = ud;
    l->query = 0;
    if (!l->unsettled) return; /* a timeout let the replay go on meanwhile */
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
        l->unsettled = 0;
        l->settled(l->ud);
        return;
    }
    lockstep_arm(l); /* ask again shortly */
}

static void lockstep_poll(lockstep_t *l)
{
    if (!l->unsettled || l->query) return;
    /* ask only once our own events are queued on the connection ahead of the
     * question, or the answer may predate them */
    if (!bus_outbox_sent(l->bus)) {
        lockstep_arm(l);
        return;
    }
    /* every group of market, feedback and execution; ours of signal and
     * policy; each partition of each (keys.h) */
    enum { MAXK = 4 * QT_PARTITIONS_MAX + 1 };
    char k[MAXK][160], nk[16], ev[16];
    const char *names[5] = {QT_STREAM_MARKET, QT_STREAM_FEEDBACK, QT_STREAM_EXECUTION, QT_STREAM_SIGNAL, QT_STREAM_POLICY};
    const char *argv[3 + MAXK + 2] = {"EVAL", lockstep_lua, nk};
    int n = 0, every = 0;
    for (int i = 0; i < 5; i++) {
        int parts = proto_partitioned(names[i]) ? l->parts : 1;
        for (int p = 0; p < parts; p++, n++) {
            proto_part_key(k[n], sizeof k[n], l->ns, names[i], l->parts, p);
            argv[3 + n] = k[n];
        }
        if (i == 2) every = n;
    }
    snprintf(nk, sizeof nk, "%d", n);
    snprintf(ev, sizeof ev, "%d", every);
    argv[3 + n] = l->group, argv[4 + n] = ev;
    if (bus_redis(l->bus, lockstep_cb, l, 5 + n, argv, NULL) == 0) l->query = 1;
    else lockstep_arm(l);
}

static void lockstep_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lockstep_poll(arg);
}

lockstep_t *lockstep_new(struct event_base *base, bus_t *bus, const char *group, int enabled, long wait_ms,
                         void (*settled)(void *ud), void *ud)
{
    lockstep_t *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->ns = bus_cfg(bus)->ns, l->parts = (int)bus_cfg(bus)->partitions;
    l->bus = bus, l->enabled = enabled, l->wait_ms = wait_ms, l->settled = settled, l->ud = ud;
    snprintf(l->group, sizeof l->group, "%s", group);
    if (!(l->timer = evtimer_new(base, lockstep_timer, l))) {
        free(l);
        return NULL;
    }
    return l;
}

void lockstep_free(lockstep_t *l)
{
    if (!l) return;
    event_free(l->timer);
    free(l);
}

int lockstep_enabled(const lockstep_t *l) { return l->enabled; }

void lockstep_unsettled(lockstep_t *l)
{
    l->unsettled = 1;
    lockstep_poll(l);
}

int lockstep_is_unsettled(const lockstep_t *l) { return l->unsettled; }

lockstep_verdict_t lockstep_wait(lockstep_t *l, int busy, int64_t now)
{
    if (!busy && !l->unsettled) {
        l->since = 0, l->timeouts = 0;
        return LOCKSTEP_GO;
    }
    if (!l->since) l->since = now;
    if (now - l->since < l->wait_ms) return LOCKSTEP_WAIT;
    l->since = 0, l->unsettled = 0, l->timeouts_total++;
    log_info("lockstep: waited %ld ms for decisions, executions or consumers; the replay goes on", l->wait_ms);
    if (++l->timeouts >= 3) {
        l->enabled = 0;
        log_warn("lockstep off: decisions or executions did not follow the replay within %ld ms three times", l->wait_ms);
    }
    return LOCKSTEP_GAVE_UP;
}

int lockstep_step(lockstep_t *l, const char *symbol, int64_t open_time)
{
    if (l->open != open_time || strcmp(l->symbol, symbol) != 0) {
        l->open = open_time, l->step = 0;
        snprintf(l->symbol, sizeof l->symbol, "%s", symbol);
    }
    return l->step;
}

void lockstep_step_set(lockstep_t *l, int step) { l->step = step; }

void lockstep_bar_done(lockstep_t *l) { l->step = 0, l->symbol[0] = '\0'; }

long lockstep_timeouts(const lockstep_t *l) { return l->timeouts_total; }
