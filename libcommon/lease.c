/* lease.c — partitions shared by lease among a service's replicas (see lease.h). */
#include "lease.h"
#include "clock.h"
#include "keys.h"
#include "log.h"
#include "restore.h"
#include "rsync.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEASE_KEYS_PER_PART 8 /* streams one partition of a service can have */

struct lease {
    bus_t *bus;
    const qt_config_t *cfg;
    int parts;
    long ms;
    char members[200], keys[QT_PARTITIONS_MAX][200], ms_s[24], p_s[8];
    int held[QT_PARTITIONS_MAX], releasing[QT_PARTITIONS_MAX];
    int share, replicas, inflight, stopping;
    int64_t sent_ms, valid_until_ms; /* the round in flight was sent; our leases stand until */
    int64_t next_ms;                 /* the next round is due (QT_LEASE_MS / 3 after the last) */
    int confirmed;                   /* a round has been answered */
    struct event *timer;
    ckpt_restore_t restore[QT_PARTITIONS_MAX]; /* how each partition's state came back (a bus that keeps it per partition) */
    int unrestored[QT_PARTITIONS_MAX];         /* ... or why it has not yet */
    int64_t restore_said_ms;
    metric_t *m_held[QT_PARTITIONS_MAX], *m_replicas, *m_taken, *m_released, *m_lost, *m_hist_lost;
};

/* KEYS: members, the P lease keys, then the stream keys of the partitions to
 * release. ARGV: me, ms, P, group, stopping, the number of partitions to
 * release, then for each: k, its number of stream keys. Returns {share,
 * members n, held_0..held_P-1 (1/0), holder_0..holder_P-1 ("" for none),
 * the number of released, released k..., the n members}. */
static const char lease_lua[] =
    "local me, ms, P, group = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "redis.call('ZADD', KEYS[1], now + ms, me)\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
    "redis.call('PEXPIRE', KEYS[1], ms * 10)\n"
    "local members = redis.call('ZRANGE', KEYS[1], 0, -1)\n"
    "table.sort(members)\n"
    "local n, rank = #members, 0\n"
    "for i, m in ipairs(members) do if m == me then rank = i - 1 end end\n"
    "local share = math.floor(P / n) + ((rank < P % n) and 1 or 0)\n"
    "if ARGV[5] == '1' then share = 0 end\n"
    "local released, at, ki = {}, 7, P + 2\n"
    "for c = 1, tonumber(ARGV[6]) do\n"
    "  local k, nk = tonumber(ARGV[at]), tonumber(ARGV[at + 1])\n"
    "  at = at + 2\n"
    "  local idle = true\n"
    "  for j = 0, nk - 1 do\n"
    "    local ok, p = pcall(redis.call, 'XPENDING', KEYS[ki + j], group, '-', '+', 1, me)\n"
    "    if ok and #p > 0 then idle = false end\n"
    "  end\n"
    "  ki = ki + nk\n"
    "  if idle and redis.call('GET', KEYS[k + 2]) == me then\n"
    "    redis.call('DEL', KEYS[k + 2])\n"
    "    released[#released + 1] = k\n"
    "  end\n"
    "end\n"
    "local held, count = {}, 0\n"
    "for k = 0, P - 1 do\n"
    "  if redis.call('GET', KEYS[k + 2]) == me then\n"
    "    redis.call('PEXPIRE', KEYS[k + 2], ms)\n"
    "    held[k + 1], count = 1, count + 1\n"
    "  else held[k + 1] = 0 end\n"
    "end\n"
    "for k = 0, P - 1 do\n"
    "  if count >= share then break end\n"
    "  if held[k + 1] == 0 and redis.call('SET', KEYS[k + 2], me, 'NX', 'PX', ms) then\n"
    "    held[k + 1], count = 1, count + 1\n"
    "  end\n"
    "end\n"
    "local out = {share, n}\n"
    "for k = 1, P do out[#out + 1] = held[k] end\n"
    "for k = 0, P - 1 do out[#out + 1] = redis.call('GET', KEYS[k + 2]) or '' end\n"
    "out[#out + 1] = #released\n"
    "for _, k in ipairs(released) do out[#out + 1] = k end\n"
    "for _, m in ipairs(members) do out[#out + 1] = m end\n"
    "return out\n";

/* KEYS: members, the lease keys. ARGV: a member (a dead one, or we at a
 * stop): its leases and membership go. */
static const char lease_lift_lua[] =
    "for i = 2, #KEYS do if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end end\n"
    "redis.call('ZREM', KEYS[1], ARGV[1])\n"
    "return 0\n";

static void lease_round(lease_t *l);

/* Partition k's state back before it is read (restore_part): 1 when done
 * (or none is kept), 0 when it is to be tried again at the next round (its
 * lease stays ours meanwhile). */
static int lease_restore(lease_t *l, int k)
{
    ckpt_restore_t r;
    char err[512];
    if (!bus_state_parted(l->bus)) return 1;
    int64_t t0 = clock_mono_ms();
    int rc = restore_part(l->bus, l->cfg, k, &r, err, sizeof err);
    if (rc != 0) {
        if (t0 - l->restore_said_ms >= 1000) {
            log_warn("partition p%d: its state could not be restored yet, trying again: %s", k, err);
            l->restore_said_ms = t0;
        }
        memset(&l->restore[k], 0, sizeof l->restore[k]);
        snprintf(l->restore[k].note, sizeof l->restore[k].note, "not restored yet: %.200s", err);
        l->unrestored[k] = 1;
        return 0;
    }
    l->restore[k] = r, l->unrestored[k] = 0;
    if (r.history_lost) metric_inc(l->m_hist_lost);
    log_msg(r.history_lost ? LOG_WARN : LOG_INFO, NULL, "partition p%d: state restored in %lld ms: %s%s", k,
            (long long)(clock_mono_ms() - t0), r.note, r.pending ? " (its pending entries come next)" : "");
    return 1;
}

static void lease_drop(lease_t *l, int k, const char *why, metric_t *m)
{
    bus_part_drop(l->bus, k, 0);
    l->held[k] = l->releasing[k] = 0;
    metric_set(l->m_held[k], 0);
    if (m) metric_inc(m);
    log_msg(m == l->m_lost ? LOG_WARN : LOG_INFO, NULL, "partition p%d %s", k, why);
}

/* The round's answer: take what we now hold, drop what we lost, and start
 * releasing what is over our share. */
static void lease_cb(void *ud, const struct redisReply *r)
{
    lease_t *l = ud;
    l->inflight = 0;
    /* where the holders, the released and the members start */
    size_t hp = 2 + (size_t)l->parts, rp = hp + (size_t)l->parts + 1, mp = rp;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < rp || r->element[rp - 1]->type != REDIS_REPLY_INTEGER ||
        (mp = rp + (size_t)r->element[rp - 1]->integer) > r->elements) {
        if (r && r->type == REDIS_REPLY_ERROR) log_warn("lease round refused: %s", r->str);
        return;
    }
    for (size_t i = 0; i < r->elements; i++)
        if ((r->element[i]->type != REDIS_REPLY_INTEGER) != ((i >= hp && i < rp - 1) || i >= mp)) return;
    l->valid_until_ms = l->sent_ms + l->ms;
    l->confirmed = 1;
    l->share = (int)r->element[0]->integer, l->replicas = (int)r->element[1]->integer;
    metric_set(l->m_replicas, l->replicas);
    int released[QT_PARTITIONS_MAX] = {0};
    for (size_t i = rp; i < mp; i++)
        if (r->element[i]->integer >= 0 && r->element[i]->integer < l->parts) released[r->element[i]->integer] = 1;
    int count = 0, rel = 0;
    for (int k = 0; k < l->parts; k++) {
        int now = r->element[2 + k]->integer == 1;
        if (!now) l->unrestored[k] = 0; /* not ours to restore */
        if (now && !l->held[k] && lease_restore(l, k)) {
            l->held[k] = 1;
            metric_set(l->m_held[k], 1);
            metric_inc(l->m_taken);
            log_info("partition p%d taken (%d replicas, a share of %d)", k, l->replicas, l->share);
            bus_part_take(l->bus, k);
        } else if (!now && l->held[k]) {
            lease_drop(l, k, released[k] ? "released to another replica" : "lost: its lease expired or another replica holds it",
                       released[k] ? l->m_released : l->m_lost);
        }
        count += l->held[k], rel += l->releasing[k];
    }
    for (int k = 0; k < l->parts && count - rel < l->share; k++) /* a share grown back (a replica left): keep it */
        if (l->releasing[k]) {
            l->releasing[k] = 0, rel--;
            bus_part_take(l->bus, k);
        }
    /* a predecessor on this host that died (a restart after a SIGKILL) holds
     * nothing any more and is no member: its leases go now, not when they
     * expire, and it takes no share */
    int freed = 0;
    for (size_t i = mp; i < r->elements; i++) {
        const char *m = r->element[i]->str;
        if (!bus_consumer_gone(l->bus, m)) continue;
        const char *argv[4 + QT_PARTITIONS_MAX + 1] = {"EVAL", lease_lift_lua};
        char nk[16];
        int argc = 2;
        snprintf(nk, sizeof nk, "%d", 1 + l->parts);
        argv[argc++] = nk, argv[argc++] = l->members;
        for (int k = 0; k < l->parts; k++) argv[argc++] = l->keys[k];
        argv[argc++] = m;
        if (bus_redis(l->bus, NULL, NULL, argc, argv, NULL) == 0) freed++;
        for (int k = 0; k < l->parts; k++)
            if (strcmp(r->element[hp + (size_t)k]->str, m) == 0)
                log_info("partition p%d: its holder %s is no longer running: its lease is lifted", k, m);
    }
    int again = freed > 0;
    for (int k = l->parts - 1; k >= 0 && count - rel > l->share; k--) /* over our share: the highest go */
        if (l->held[k] && !l->releasing[k]) {
            l->releasing[k] = 1, rel++;
            bus_part_drop(l->bus, k, 1);
            log_info("partition p%d: releasing it to balance %d replicas (a share of %d)", k, l->replicas, l->share);
        }
    if (again) lease_round(l); /* after the lifts, on the same connection */
}

static void lease_round(lease_t *l)
{
    if (l->inflight) return;
    enum { MAXK = 1 + QT_PARTITIONS_MAX * (1 + LEASE_KEYS_PER_PART) };
    const char *argv[3 + MAXK + 6 + 2 * QT_PARTITIONS_MAX];
    char nk[16], nrel[16], kk[QT_PARTITIONS_MAX][16], kn[QT_PARTITIONS_MAX][16];
    int argc = 0, nkeys = 1 + l->parts, rel = 0;
    const char *streams[QT_PARTITIONS_MAX * LEASE_KEYS_PER_PART];
    int nstreams = 0, per[QT_PARTITIONS_MAX], which[QT_PARTITIONS_MAX];
    for (int k = 0; k < l->parts; k++)
        if (l->releasing[k] && bus_part_quiet(l->bus, k)) {
            bus_part_checkpoint(l->bus, k); /* ahead of the round on the same link: written before the lease goes */
            per[rel] = bus_part_keys(l->bus, k, streams + nstreams, LEASE_KEYS_PER_PART);
            nstreams += per[rel];
            which[rel++] = k;
        }
    nkeys += nstreams;
    snprintf(nk, sizeof nk, "%d", nkeys);
    snprintf(nrel, sizeof nrel, "%d", rel);
    argv[argc++] = "EVAL", argv[argc++] = lease_lua, argv[argc++] = nk, argv[argc++] = l->members;
    for (int k = 0; k < l->parts; k++) argv[argc++] = l->keys[k];
    for (int i = 0; i < nstreams; i++) argv[argc++] = streams[i];
    argv[argc++] = bus_consumer(l->bus), argv[argc++] = l->ms_s, argv[argc++] = l->p_s, argv[argc++] = bus_group(l->bus);
    argv[argc++] = l->stopping ? "1" : "0", argv[argc++] = nrel;
    for (int i = 0; i < rel; i++) {
        snprintf(kk[i], sizeof kk[i], "%d", which[i]);
        snprintf(kn[i], sizeof kn[i], "%d", per[i]);
        argv[argc++] = kk[i], argv[argc++] = kn[i];
    }
    int64_t now = clock_mono_ms();
    if (bus_redis(l->bus, lease_cb, l, argc, argv, NULL) == 0)
        l->inflight = 1, l->sent_ms = now, l->next_ms = now + (l->ms / 3 < 50 ? 50 : l->ms / 3);
}

static void lease_tick(evutil_socket_t fd, short what, void *arg)
{
    lease_t *l = arg;
    (void)fd, (void)what;
    int64_t now = clock_mono_ms();
    /* unconfirmed for most of the lease: the others may take them soon */
    if (now >= l->valid_until_ms - l->ms / 4)
        for (int k = 0; k < l->parts; k++)
            if (l->held[k]) lease_drop(l, k, "dropped: Redis has not renewed its lease in time", l->m_lost);
    if (l->inflight && now - l->sent_ms > l->ms) l->inflight = 0; /* its answer is lost with the link */
    if (!l->confirmed || now >= l->next_ms) lease_round(l); /* until the first answer, as soon as the link is up */
}

lease_t *lease_start(bus_t *b, struct event_base *base, metrics_t *m)
{
    lease_t *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    const qt_config_t *cfg = bus_cfg(b);
    l->bus = b, l->cfg = cfg, l->parts = (int)cfg->partitions, l->ms = cfg->lease_ms;
    char base_key[160];
    snprintf(base_key, sizeof base_key, "%s:lease:%s", cfg->ns, cfg->service);
    snprintf(l->members, sizeof l->members, "%s:members", base_key);
    for (int k = 0; k < l->parts; k++) {
        char lb[32];
        proto_lease_key(l->keys[k], sizeof l->keys[k], cfg->ns, cfg->service, k);
        snprintf(lb, sizeof lb, "partition=\"%d\"", k);
        l->m_held[k] = metrics_gauge(m, "qt_partition_held", "1 while this replica holds the partition's lease", lb);
    }
    snprintf(l->ms_s, sizeof l->ms_s, "%ld", l->ms);
    snprintf(l->p_s, sizeof l->p_s, "%d", l->parts);
    l->m_replicas = metrics_gauge(m, "qt_partition_replicas", "Live replicas sharing the partitions", NULL);
    l->m_taken = metrics_counter(m, "qt_partition_moves_total", "Partitions taken, released or lost", "kind=\"taken\"");
    l->m_released = metrics_counter(m, "qt_partition_moves_total", "Partitions taken, released or lost", "kind=\"released\"");
    l->m_lost = metrics_counter(m, "qt_partition_moves_total", "Partitions taken, released or lost", "kind=\"lost\"");
    l->m_hist_lost = metrics_counter(m, "qt_state_history_lost_total",
                                     "Restores that found entries they needed trimmed from the streams", NULL);
    struct timeval tv = {0, 20000}; /* rounds are due every QT_LEASE_MS / 3; the first as soon as it can go */
    if (!(l->timer = event_new(base, -1, EV_PERSIST, lease_tick, l)) || event_add(l->timer, &tv) < 0) {
        lease_free(l);
        return NULL;
    }
    lease_round(l); /* at once, if the link is up already */
    return l;
}

void lease_stopping(lease_t *l)
{
    if (l) l->stopping = 1;
}

void lease_release_sync(lease_t *l, const qt_config_t *cfg)
{
    if (!l) return;
    char err[256], nk[16];
    redisContext *c = rsync_connect(&cfg->redis, 2000, err, sizeof err);
    if (!c) {
        log_warn("could not release the partitions' leases (%s): they expire in %ld ms", err, l->ms);
        return;
    }
    const char *argv[4 + QT_PARTITIONS_MAX + 1];
    int argc = 0;
    snprintf(nk, sizeof nk, "%d", 1 + l->parts);
    argv[argc++] = "EVAL", argv[argc++] = lease_lift_lua, argv[argc++] = nk, argv[argc++] = l->members;
    for (int k = 0; k < l->parts; k++) argv[argc++] = l->keys[k];
    argv[argc++] = bus_consumer(l->bus);
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    if (!r || r->type == REDIS_REPLY_ERROR)
        log_warn("could not release the partitions' leases (%s): they expire in %ld ms", r ? r->str : c->errstr, l->ms);
    else log_info("partitions' leases released");
    if (r) freeReplyObject(r);
    redisFree(c);
}

json_t *lease_status(const lease_t *l)
{
    json_t *held = json_array(), *reading = json_array(), *rel = json_array(), *restored = json_object();
    for (int k = 0; k < l->parts; k++) {
        char pk[16];
        snprintf(pk, sizeof pk, "p%d", k);
        if (l->held[k] || l->unrestored[k]) json_object_set_new(restored, pk, json_string(l->restore[k].note));
        if (l->held[k]) json_array_append_new(held, json_integer(k));
        if (bus_part_reading(l->bus, k)) json_array_append_new(reading, json_integer(k));
        if (l->releasing[k]) json_array_append_new(rel, json_integer(k));
    }
    json_t *st = json_pack("{s:i, s:i, s:i, s:o, s:o, s:o, s:s, s:I}", "count", l->parts, "replicas", l->replicas,
                           "share", l->share, "held", held, "reading", reading, "releasing", rel, "members", l->members,
                           "lease_ms", (json_int_t)l->ms);
    if (bus_state_parted(l->bus)) json_object_set_new(st, "restored", restored);
    else json_decref(restored);
    return st;
}

int lease_restored(const lease_t *l, ckpt_restore_t *sum)
{
    int n = 0, found = 0;
    memset(sum, 0, sizeof *sum);
    for (int k = 0; l && k < l->parts; k++) {
        if (!l->held[k]) continue;
        const ckpt_restore_t *r = &l->restore[k];
        n++, found += r->found;
        sum->replayed += r->replayed, sum->pending += r->pending, sum->history_lost |= r->history_lost;
        if (r->saved_ms > sum->saved_ms) sum->saved_ms = r->saved_ms;
        size_t len = strlen(sum->note);
        snprintf(sum->note + len, sizeof sum->note - len, "%sp%d: %s", len ? "; " : "", k, r->note);
    }
    sum->found = n > 0 && found == n;
    return n;
}

int lease_confirmed(const lease_t *l) { return l && l->confirmed; }

int lease_holds_all(const lease_t *l)
{
    for (int k = 0; l && k < l->parts; k++)
        if (!l->held[k]) return 0;
    return 1;
}

int lease_restoring(const lease_t *l, char *why, size_t len)
{
    for (int k = 0; l && k < l->parts; k++)
        if (l->unrestored[k]) return snprintf(why, len, "partition p%d %s", k, l->restore[k].note), 1;
    return 0;
}

void lease_free(lease_t *l)
{
    if (!l) return;
    if (l->timer) event_free(l->timer);
    free(l);
}

/* ---------- one active instance per namespace ---------- */

struct active {
    bus_t *bus;
    long ms;
    char key[200], ms_s[24];
    int inflight, paused;
    int64_t sent_ms, next_ms, confirmed_ms;
    struct event *timer;
    void (*lost)(void *ud, const char *why);
    void *ud;
};

/* KEYS: a lease. ARGV: its holder: deleted if it still names it. */
static const char active_cad_lua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/* KEYS: the lease. ARGV: me, ttl ms. 1 when ours now (taken, renewed or
 * taken again after it expired), else the holder. */
static const char active_lua[] =
    "local h = redis.call('GET', KEYS[1])\n"
    "if h and h ~= ARGV[1] then return h end\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
    "return 1\n";

static void active_key(const qt_config_t *cfg, char *out, size_t len)
{
    snprintf(out, len, "%s:" QT_KEY_LEASE_PREFIX "%s:active", cfg->ns, cfg->service);
}

int active_try(redisContext *c, const bus_t *b, long ttl_ms, char *who, size_t wholen, char *err, size_t errlen)
{
    char key[200], ttl[24];
    active_key(bus_cfg(b), key, sizeof key);
    snprintf(ttl, sizeof ttl, "%ld", ttl_ms);
    for (int tries = 0; tries < 2; tries++) {
        const char *argv[] = {"EVAL", active_lua, "1", key, bus_consumer(b), ttl};
        redisReply *r = redisCommandArgv(c, 6, argv, NULL);
        if (!r || (r->type != REDIS_REPLY_INTEGER && r->type != REDIS_REPLY_STRING)) {
            snprintf(err, errlen, "taking %s: %s", key, r && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
            if (r) freeReplyObject(r);
            return -1;
        }
        if (r->type == REDIS_REPLY_INTEGER) return freeReplyObject(r), 1;
        snprintf(who, wholen, "%s", r->str);
        freeReplyObject(r);
        if (!bus_consumer_gone(b, who)) return 0;
        const char *lift[] = {"EVAL", active_cad_lua, "1", key, who}; /* a dead process of this host: not active */
        redisReply *l = redisCommandArgv(c, 5, lift, NULL);
        if (l) freeReplyObject(l);
        log_info("%s: its holder %s is no longer running: its lease is lifted", key, who);
    }
    return 0;
}

static void active_cb(void *ud, const struct redisReply *r)
{
    active_t *a = ud;
    a->inflight = 0;
    if (r && r->type == REDIS_REPLY_INTEGER) {
        a->confirmed_ms = a->sent_ms;
        if (a->paused) { /* still (or again) ours: nobody else decided meanwhile */
            a->paused = 0;
            log_info("%s confirmed again: consuming again", a->key);
            bus_resume(a->bus);
        }
    } else if (r && r->type == REDIS_REPLY_STRING) {
        char why[300];
        snprintf(why, sizeof why, "%s is held by %s", a->key, r->str);
        a->lost(a->ud, why);
    } else if (r && r->type == REDIS_REPLY_ERROR) {
        log_warn("renewing %s refused: %s", a->key, r->str);
    }
}

static void active_tick(evutil_socket_t fd, short what, void *arg)
{
    active_t *a = arg;
    (void)fd, (void)what;
    int64_t now = clock_mono_ms();
    if (now - a->confirmed_ms > a->ms * 3 / 4 && !a->paused) {
        /* it may expire before Redis answers again (Redis away, or only we are cut off from it): decide
         * nothing until a renewal says it is still ours; one that says another holds it ends this process */
        char why[300];
        snprintf(why, sizeof why, "%s not renewed for %lld ms (QT_LEASE_MS=%ld): waiting for Redis to confirm it", a->key,
                 (long long)(now - a->confirmed_ms), a->ms);
        a->paused = 1;
        bus_pause(a->bus, why);
    }
    if (a->inflight && now - a->sent_ms > a->ms) a->inflight = 0;
    if (a->inflight || now < a->next_ms) return;
    const char *argv[] = {"EVAL", active_lua, "1", a->key, bus_consumer(a->bus), a->ms_s};
    if (bus_redis(a->bus, active_cb, a, 6, argv, NULL) == 0)
        a->inflight = 1, a->sent_ms = now, a->next_ms = now + (a->ms / 3 < 50 ? 50 : a->ms / 3);
}

active_t *active_keep(bus_t *b, struct event_base *base, void (*lost)(void *ud, const char *why), void *ud)
{
    active_t *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->bus = b, a->ms = bus_cfg(b)->lease_ms, a->lost = lost, a->ud = ud;
    active_key(bus_cfg(b), a->key, sizeof a->key);
    snprintf(a->ms_s, sizeof a->ms_s, "%ld", a->ms);
    a->confirmed_ms = clock_mono_ms(); /* taken on the start-up connection just before, for longer */
    struct timeval tv = {0, 20000};
    if (!(a->timer = event_new(base, -1, EV_PERSIST, active_tick, a)) || event_add(a->timer, &tv) < 0) {
        active_free(a);
        return NULL;
    }
    return a;
}

void active_release_sync(const qt_config_t *cfg, const char *consumer)
{
    char err[256], key[200];
    active_key(cfg, key, sizeof key);
    redisContext *c = rsync_connect(&cfg->redis, 2000, err, sizeof err);
    if (!c) {
        log_warn("could not give up %s (%s): the standby takes it when it expires", key, err);
        return;
    }
    const char *argv[] = {"EVAL", active_cad_lua, "1", key, consumer};
    redisReply *r = redisCommandArgv(c, 5, argv, NULL);
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 1) log_info("%s given up: the standby takes over", key);
    if (r) freeReplyObject(r);
    redisFree(c);
}

void active_free(active_t *a)
{
    if (!a) return;
    if (a->timer) event_free(a->timer);
    free(a);
}
