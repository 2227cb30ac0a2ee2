/* ensemble.c — bars and external votes → signal.generated (see ensemble.h). */
#include "ensemble.h"
#include "kline.h"
#include "timeguard.h"
#include "warmup.h"
#include "keys.h"
#include "symtab.h"
#include "ckpt.h"
#include "clock.h"
#include "digest.h"
#include "event.h"
#include "learner.h"
#include "lease.h"
#include "log.h"
#include "mlmodel.h"
#include "rsync.h"

#include <hiredis/hiredis.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENS_SYMS 64
#define ENS_FILES 8
#define ENS_PENDING 512
#define ENS_ORPHAN_US 60000000LL /* votes for a bar never seen are dropped after 60 s */

typedef struct ens_sym {
    char symbol[24];
    int part; /* its partition (keys.h) */
    obs_state_t st;
    int64_t last_open_time, published_open_time, leap_held; /* leap_held: see timeguard.h */
} ens_sym_t;

/* A bar waiting for external votes, or votes waiting for their bar. */
typedef struct ens_pending {
    int used, has_bar, syncing; /* syncing: its signal waits for the learner's state (ens_sync) */
    char symbol[24], interval[8], trace[72], regime[32];
    int64_t open_time, event_time, deadline_us, created_us;
    int action[RSM_MAX_MODELS]; /* -1: no vote */
    double conf[RSM_MAX_MODELS];
} ens_pending_t;

struct ensemble {
    svc_t *svc;
    learner_t *learner;
    int old_group_asked; /* ens_drop_old_vote_group sent */
    mlm_t files[ENS_FILES];
    int nfiles, nexternal, n;
    char names[RSM_MAX_MODELS][64];
    char paths[ENS_FILES][512];
    ens_sym_t syms[ENS_SYMS];
    int nsyms;
    ens_pending_t pending[ENS_PENDING];
    long window_ms, seed;
    int resync; /* a partition was taken or given up: the next signal syncs the learner's state first */
    int syncs;  /* signals waiting for the learner's state: the bars after them wait behind them, in order */
    struct event *tick;
    long signals, explored, votes_counted, votes_late, votes_unknown, votes_dropped, bars_skipped, synced;
    metric_t *m_predict, *m_signals, *m_counted, *m_late, *m_unknown;
    warmup_t warm; /* no signal before MLM_WARMUP bars of a symbol */
};

/* ---------- configuration and members ---------- */

/* A comma-separated list into out; count or -1 when an item is empty or too long. */
static int ens_list(const char *s, char out[][512], int max)
{
    int n = 0;
    while (s && *s) {
        size_t len = strcspn(s, ",");
        if (n == max || len == 0 || len > 511) return -1;
        snprintf(out[n++], 512, "%.*s", (int)len, s);
        s += len + (s[len] == ',');
    }
    return n;
}

/* Load every member file into files[]; -1 with err (files[] untouched then). */
static int ens_load_files(ensemble_t *e, mlm_t *files, char *err, size_t errlen)
{
    for (int i = 0; i < e->nfiles; i++) {
        if (mlm_load(&files[i], e->paths[i], err, errlen) == 0) continue;
        while (i-- > 0) mlm_free(&files[i]);
        return -1;
    }
    return 0;
}

static int ens_names(ensemble_t *e, const char *external, char *err, size_t errlen)
{
    char ext[RSM_MAX_MODELS][512];
    int n = ens_list(external, ext, RSM_MAX_MODELS - e->nfiles);
    if (n < 0) return snprintf(err, errlen, "QT_ML_EXTERNAL_MODELS: empty or too many names (at most %d)", RSM_MAX_MODELS - e->nfiles), -1;
    e->nexternal = n, e->n = e->nfiles + n;
    for (int i = 0; i < e->n; i++) {
        const char *name = i < e->nfiles ? e->files[i].name : ext[i - e->nfiles];
        if (strlen(name) > 63) return snprintf(err, errlen, "member name '%.70s...' is longer than 63 characters", name), -1;
        snprintf(e->names[i], sizeof e->names[i], "%s", name);
        for (int j = 0; j < i; j++)
            if (strcmp(e->names[j], name) == 0) return snprintf(err, errlen, "two members are named '%s'", name), -1;
    }
    return e->n ? 0 : (snprintf(err, errlen, "no members: set QT_ML_MODELS and/or QT_ML_EXTERNAL_MODELS"), -1);
}

int ensemble_reload(ensemble_t *e, char *err, size_t errlen)
{
    mlm_t files[ENS_FILES];
    if (ens_load_files(e, files, err, errlen) < 0) return log_error("members not reloaded: %s", err), -1;
    for (int i = 0; i < e->nfiles; i++)
        if (strcmp(files[i].name, e->names[i]) != 0) {
            snprintf(err, errlen, "%s now holds member '%s' instead of '%s'; restart to change members", e->paths[i],
                     files[i].name, e->names[i]);
            for (int k = 0; k < e->nfiles; k++) mlm_free(&files[k]);
            return log_error("members not reloaded: %s", err), -1;
        }
    for (int i = 0; i < e->nfiles; i++) mlm_free(&e->files[i]), e->files[i] = files[i];
    log_info("%d member files reloaded", e->nfiles);
    return 0;
}

/* ---------- symbols and pending bars ---------- */

_Static_assert(offsetof(ens_sym_t, symbol) == 0, "symtab: the symbol comes first");

static ens_sym_t *ens_sym(ensemble_t *e, const char *symbol)
{
    int created;
    ens_sym_t *s = SYMTAB_SLOT(e->syms, &e->nsyms, ENS_SYMS, symbol, &created);
    if (created) obs_init(&s->st), s->part = proto_partition(s->symbol, (int)e->svc->cfg.partitions);
    return s;
}

static int ens_member(const ensemble_t *e, const char *name, int from)
{
    for (int i = from; name && i < e->n; i++)
        if (strcmp(e->names[i], name) == 0) return i;
    return -1;
}

static ens_pending_t *ens_pending_find(ensemble_t *e, const char *symbol, int64_t open_time)
{
    for (int i = 0; i < ENS_PENDING; i++)
        if (e->pending[i].used && e->pending[i].open_time == open_time && strcmp(e->pending[i].symbol, symbol) == 0)
            return &e->pending[i];
    return NULL;
}

static int ens_publish(ensemble_t *e, ens_pending_t *p);

/* A free slot; when none, the oldest entry is finished (published, or its
 * orphan votes dropped). */
static ens_pending_t *ens_pending_new(ensemble_t *e, const char *symbol, int64_t open_time)
{
    ens_pending_t *old = &e->pending[0];
    for (int i = 0; i < ENS_PENDING; i++) {
        if (!e->pending[i].used) {
            old = &e->pending[i];
            break;
        }
        if (e->pending[i].created_us < old->created_us) old = &e->pending[i];
    }
    if (old->used && old->has_bar && ens_publish(e, old) < 0) return NULL;
    if (old->used) e->votes_dropped++, old->used = 0;
    memset(old, 0, sizeof *old);
    old->used = 1, old->created_us = clock_mono_us();
    snprintf(old->symbol, sizeof old->symbol, "%s", symbol);
    old->open_time = open_time;
    for (int i = 0; i < RSM_MAX_MODELS; i++) old->action[i] = -1;
    return old;
}

static int ens_class(const char *s)
{
    for (int k = 0; s && k < MLM_CLASSES; k++)
        if (strcmp(s, mlm_class_names[k]) == 0) return k;
    return -1;
}

/* ---------- the vote ---------- */

static int ens_exploring(const ensemble_t *e, const ens_pending_t *p, double eps)
{
    char name[128];
    unsigned char h[32];
    uint64_t x = 0;
    snprintf(name, sizeof name, "%ld:%s:%lld", e->seed, p->symbol, (long long)p->open_time);
    digest_sha256(name, strlen(name), h);
    for (int i = 0; i < 8; i++) x = x << 8 | h[i];
    return (double)(x >> 11) / 9007199254740992.0 < eps;
}

/* The seed's predict_with_rl over p's votes: the signal's payload. */
static json_t *ens_combine(ensemble_t *e, const ens_pending_t *p, int *exploring)
{
    const rsm_t *r = learner_rsm(e->learner);
    double score[MLM_CLASSES] = {0};
    json_t *votes = json_object(), *weights = json_object();
    *exploring = ens_exploring(e, p, rsm_exploration(r));
    for (int i = 0; i < e->n; i++) {
        double w = *exploring ? 1.0 / e->n : r->models[i].weight;
        json_object_set_new(weights, e->names[i], json_real(w));
        if (p->action[i] < 0) continue;
        double c = fmin(1, fmax(0, p->conf[i] * rsm_scaler(r, &r->models[i])));
        score[p->action[i]] += w * c;
        json_object_set_new(votes, e->names[i], json_pack("{s:s, s:f}", "action", mlm_class_names[p->action[i]], "confidence", p->conf[i]));
    }
    int a = score[MLM_LONG] > score[MLM_SHORT] && score[MLM_LONG] > score[MLM_HOLD]    ? MLM_LONG
            : score[MLM_SHORT] > score[MLM_LONG] && score[MLM_SHORT] > score[MLM_HOLD] ? MLM_SHORT
                                                                                         : MLM_HOLD;
    return json_pack("{s:s, s:I, s:s, s:f, s:o, s:o, s:b, s:{s:f, s:f, s:f}, s:s, s:I}", "symbol", p->symbol, "open_time",
                     (json_int_t)p->open_time, "action", mlm_class_names[a], "confidence", fmin(1, score[a]), "model_votes",
                     votes, "weights", weights, "exploring", *exploring, "scores", "long", score[MLM_LONG], "short",
                     score[MLM_SHORT], "hold", score[MLM_HOLD], "regime", p->regime, "event_time", (json_int_t)p->event_time);
}

/* Publish p's signal and release the slot; -1 when the outbox is full. */
static int ens_publish(ensemble_t *e, ens_pending_t *p)
{
    char name[160], id[37], err[256];
    int exploring;
    event_t ev;
    snprintf(name, sizeof name, "ens:%s:%s:%s:%lld", e->svc->cfg.ns, p->symbol, p->interval, (long long)p->open_time);
    event_derive_id(name, id);
    if (event_make(&ev, "signal.generated", ens_combine(e, p, &exploring), p->trace, id, err, sizeof err) < 0) {
        log_error("signal.generated breaks the contract (a bug): %s", err);
    } else {
        int rc = bus_publish(e->svc->bus, "signal", &ev, err, sizeof err);
        event_clear(&ev);
        if (rc < 0) return -1;
        e->signals++, e->explored += exploring;
        metric_inc(e->m_signals);
    }
    ens_sym_t *s = ens_sym(e, p->symbol);
    if (s && p->open_time > s->published_open_time) s->published_open_time = p->open_time;
    p->used = 0;
    return 0;
}

static int ens_all_voted(const ensemble_t *e, const ens_pending_t *p)
{
    for (int i = e->nfiles; i < e->n; i++)
        if (p->action[i] < 0) return 0;
    return 1;
}

/* ---------- inputs ---------- */

static void ens_member_votes(ensemble_t *e, ens_sym_t *s, ens_pending_t *p)
{
    float x[MLM_NX];
    double probs[MLM_CLASSES];
    if (mlm_inputs(&s->st, x) < 0) return; /* warming up: no member votes yet */
    int64_t t0 = clock_mono_us();
    for (int i = 0; i < e->nfiles; i++) {
        int best = 0;
        mlm_predict(&e->files[i], x, probs);
        for (int k = 1; k < MLM_CLASSES; k++)
            if (probs[k] > probs[best]) best = k;
        p->action[i] = best, p->conf[i] = probs[best];
    }
    metric_observe(e->m_predict, (double)(clock_mono_us() - t0) / 1e6);
}

/* ---------- the learner's state, event-ordered across replicas ----------
 * A closed trade moves the RSM weights where the replica holding its
 * partition handled it. A replica sharing the partitions with others asks
 * Redis for the learner's version before each signal it publishes from a
 * bar (learner_sync), so it decides on every trade learned from before the
 * bar came, as one replica would have; one that holds every partition does
 * so once after each take or release, as the previous holder may have
 * learned from trades since this one last read the state. While a read is
 * on its way, the bars after it wait for reads of their own, so the
 * signals go out in the order of their bars. */

typedef struct ens_sync {
    ensemble_t *e;
    bus_pending_t *token;
    char symbol[24];
    int64_t open_time;
} ens_sync_t;

static int ens_needs_sync(const ensemble_t *e)
{
    return !bus_replaying(e->svc->bus) && (e->resync || e->syncs || !lease_holds_all(e->svc->lease));
}

static void ens_synced(void *ud, int ok)
{
    ens_sync_t *c = ud;
    ensemble_t *e = c->e;
    ens_pending_t *p = ens_pending_find(e, c->symbol, c->open_time);
    e->syncs--;
    if (!c->token) { /* out of memory deferring the bar: it comes again */
        free(c);
        return;
    }
    if (!ok) e->resync = 1;
    if (p && p->syncing) {
        p->syncing = 0, e->synced++;
        if (!ok || ens_publish(e, p) < 0) p->deadline_us = clock_mono_us(); /* the tick publishes it */
    }
    bus_finish(e->svc->bus, c->token, BUS_OK, NULL); /* the bar is handled; its signal, if still waiting, is in the state */
    free(c);
}

/* p's signal once the learner's state is the shared one: BUS_LATER, or
 * BUS_RETRY (nothing sent). */
static bus_result_t ens_sync(ensemble_t *e, ens_pending_t *p)
{
    ens_sync_t *c = calloc(1, sizeof *c);
    if (!c) return BUS_RETRY;
    c->e = e, c->open_time = p->open_time;
    snprintf(c->symbol, sizeof c->symbol, "%s", p->symbol);
    if (learner_sync(e->learner, ens_synced, c) < 0) return free(c), BUS_RETRY; /* the link is down: the bar comes again */
    e->syncs++;
    if (!(c->token = bus_defer(e->svc->bus))) return BUS_RETRY; /* the answer then finds no token and frees c */
    p->syncing = 1, e->resync = 0;
    return BUS_LATER;
}

static bus_result_t ens_on_bar(ensemble_t *e, const bus_msg_t *m, char *err, size_t errlen)
{
    const json_t *b = m->ev->data;
    const char *symbol = json_string_value(json_object_get(b, "symbol"));
    int64_t ot = json_integer_value(json_object_get(b, "open_time"));
    ens_sym_t *s = json_is_true(json_object_get(b, "closed")) ? ens_sym(e, symbol) : NULL;
    if (!s || ot <= s->last_open_time) return e->bars_skipped += s != NULL, BUS_OK; /* open bar, too many symbols, old bar */
    if (tguard_leap(s->last_open_time, &s->leap_held, ot,
                    kline_interval_ms(json_string_value(json_object_get(b, "interval"))), "data.open_time", err,
                    errlen) < 0)
        return BUS_DEAD;
    obs_state_t before = s->st;
    if (obs_update(&s->st, json_number_value(json_object_get(b, "high")), json_number_value(json_object_get(b, "low")),
                   json_number_value(json_object_get(b, "close"))) < 0)
        return BUS_OK;
    ens_pending_t *p = ens_pending_find(e, symbol, ot);
    if (!warmup_ready(&e->warm, s->symbol, s->st.ind.bars)) { /* the members' windows are not yet full: no signal */
        if (p) p->used = 0, e->votes_dropped++; /* external votes came first: they go, as late votes after it would */
        s->last_open_time = s->published_open_time = ot;
        return BUS_OK;
    }
    if (!p && !(p = ens_pending_new(e, symbol, ot))) {
        s->st = before;
        return snprintf(err, errlen, "cannot publish the bar's signal now"), BUS_RETRY;
    }
    p->has_bar = 1, p->event_time = json_integer_value(json_object_get(b, "event_time"));
    snprintf(p->interval, sizeof p->interval, "%s", json_string_value(json_object_get(b, "interval")));
    snprintf(p->trace, sizeof p->trace, "%s", m->ev->trace);
    snprintf(p->regime, sizeof p->regime, "%s", regime_name(regime_trend(&s->st.ind.regime)));
    ens_member_votes(e, s, p);
    p->deadline_us = clock_mono_us() + e->window_ms * 1000;
    bus_result_t r = !ens_all_voted(e, p) ? BUS_OK : ens_needs_sync(e) ? ens_sync(e, p) : ens_publish(e, p) < 0 ? BUS_RETRY : BUS_OK;
    if (r == BUS_RETRY) goto retry;
    s->last_open_time = ot;
    return r;
retry: /* the bar comes again: undo it */
    p->has_bar = 0;
    s->st = before;
    snprintf(err, errlen, "cannot publish the bar's signal now");
    return BUS_RETRY;
}

static bus_result_t ens_on_vote(ensemble_t *e, const bus_msg_t *m, char *err, size_t errlen)
{
    const json_t *v = m->ev->data;
    const char *symbol = json_string_value(json_object_get(v, "symbol"));
    int64_t ot = json_integer_value(json_object_get(v, "open_time"));
    int i = ens_member(e, json_string_value(json_object_get(v, "model")), e->nfiles);
    ens_sym_t *s = ens_sym(e, symbol);
    ens_pending_t *p = ens_pending_find(e, symbol, ot);
    if (i < 0) return e->votes_unknown++, metric_inc(e->m_unknown), BUS_OK;
    if (!p && s && ot <= s->published_open_time) return e->votes_late++, metric_inc(e->m_late), BUS_OK;
    if (!p && !(p = ens_pending_new(e, symbol, ot))) return snprintf(err, errlen, "outbox full"), BUS_RETRY;
    p->action[i] = ens_class(json_string_value(json_object_get(v, "action")));
    p->conf[i] = json_number_value(json_object_get(v, "confidence"));
    e->votes_counted++, metric_inc(e->m_counted);
    if (p->has_bar && !p->syncing && ens_all_voted(e, p) && ens_publish(e, p) < 0)
        return snprintf(err, errlen, "cannot publish the vote's signal now"), BUS_RETRY;
    return BUS_OK;
}

static bus_result_t ens_handle(void *ud, const bus_msg_t *m, char *err, size_t errlen)
{
    ensemble_t *e = ud;
    if (strcmp(m->ev->type, "market.data.update") == 0) return ens_on_bar(e, m, err, errlen);
    if (strcmp(m->ev->type, "model.vote") == 0) return ens_on_vote(e, m, err, errlen);
    return BUS_OK; /* anything else on market */
}

/* ---------- timer: deadlines, cleanup ---------- */

/* Votes came on the signal stream before contract v2; this group's old
 * reader of it would only grow a lag nobody reads (issue #21, item 1). */
static void ens_old_group_gone(void *ud, const redisReply *r)
{
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 1)
        log_info("%s: the group that read model.vote there before it moved to the vote stream is removed", (char *)ud);
    free(ud);
}

static void ens_drop_old_vote_group(bus_t *b)
{
    const qt_config_t *cfg = bus_cfg(b);
    for (int k = 0; k < (int)cfg->partitions || k == 0; k++) {
        char key[200];
        proto_part_key(key, sizeof key, cfg->ns, QT_STREAM_SIGNAL, (int)cfg->partitions, k);
        char *ud = strdup(key);
        const char *argv[] = {"XGROUP", "DESTROY", key, bus_group(b)};
        if (ud && bus_redis(b, ens_old_group_gone, ud, 4, argv, NULL) < 0) free(ud);
    }
}

static void ens_tick(evutil_socket_t fd, short what, void *arg)
{
    ensemble_t *e = arg;
    int64_t now = clock_mono_us();
    char why[200];
    (void)fd, (void)what;
    if (!e->old_group_asked && bus_ready(e->svc->bus, why, sizeof why)) {
        e->old_group_asked = 1;
        ens_drop_old_vote_group(e->svc->bus);
    }
    for (int i = 0; i < ENS_PENDING; i++) {
        ens_pending_t *p = &e->pending[i];
        if (p->used && p->has_bar && !p->syncing && now >= p->deadline_us) ens_publish(e, p);
        else if (p->used && !p->has_bar && now - p->created_us > ENS_ORPHAN_US) p->used = 0, e->votes_dropped++;
    }
}

/* ---------- state across restarts (ckpt.h) ---------- */

/* Partition k's own state (bus_lease_parts): its symbols, then the bars of
 * its symbols that wait for votes; the counters are this process's. */
typedef struct ens_saved {
    int nsyms, npending;
} ens_saved_t;

static char ens_format[64];

static int ens_pending_part(const ensemble_t *e, const ens_pending_t *p)
{
    return proto_partition(p->symbol, (int)e->svc->cfg.partitions);
}

static int ens_save_part(void *ud, int part, char **out, size_t *len)
{
    ensemble_t *e = ud;
    ens_saved_t h = {0, 0};
    size_t at = sizeof h;
    *out = malloc(sizeof h + (size_t)e->nsyms * sizeof *e->syms + sizeof e->pending);
    if (!*out) return -1;
    for (int i = 0; i < e->nsyms; i++)
        if (e->syms[i].part == part) memcpy(*out + at, &e->syms[i], sizeof *e->syms), at += sizeof *e->syms, h.nsyms++;
    for (int i = 0; i < ENS_PENDING; i++)
        if (e->pending[i].used && ens_pending_part(e, &e->pending[i]) == part)
            memcpy(*out + at, &e->pending[i], sizeof *e->pending), at += sizeof *e->pending, h.npending++;
    memcpy(*out, &h, sizeof h);
    *len = at;
    return 0;
}

/* A saved waiting bar's strings are strings and its votes name members. */
static int ens_pending_ok(const ensemble_t *e, const ens_pending_t *p)
{
    if (!memchr(p->symbol, '\0', sizeof p->symbol) || !memchr(p->interval, '\0', sizeof p->interval) ||
        !memchr(p->trace, '\0', sizeof p->trace) || !memchr(p->regime, '\0', sizeof p->regime))
        return 0;
    for (int i = 0; i < RSM_MAX_MODELS; i++)
        if (p->action[i] < -1 || p->action[i] >= MLM_CLASSES || (i >= e->n && p->action[i] != -1)) return 0;
    return 1;
}

static void ens_drop_part(void *ud, int part)
{
    ensemble_t *e = ud;
    int n = 0;
    for (int i = 0; i < e->nsyms; i++)
        if (e->syms[i].part != part) e->syms[n++] = e->syms[i];
    e->nsyms = n;
    for (int i = 0; i < ENS_PENDING; i++)
        if (e->pending[i].used && ens_pending_part(e, &e->pending[i]) == part) e->pending[i].used = 0;
    e->resync = 1; /* the partitions held changed: the learner's state may have moved under another holder */
}

static int ens_load_part(void *ud, int part, const char *in, size_t len, char *err, size_t errlen)
{
    ensemble_t *e = ud;
    ens_saved_t h;
    ens_pending_t p;
    int free_slots = 0;
    for (int i = 0; i < ENS_PENDING; i++) free_slots += !e->pending[i].used;
    if (len < sizeof h) return snprintf(err, errlen, "state of %zu bytes is too short", len), -1;
    memcpy(&h, in, sizeof h);
    size_t syms = (size_t)h.nsyms * sizeof *e->syms;
    if (h.nsyms < 0 || h.nsyms > ENS_SYMS - e->nsyms || h.npending < 0 || h.npending > free_slots ||
        len != sizeof h + syms + (size_t)h.npending * sizeof p)
        return snprintf(err, errlen, "state says %d symbols and %d waiting bars in %zu bytes (%d symbol and %d bar slots free)",
                        h.nsyms, h.npending, len, ENS_SYMS - e->nsyms, free_slots), -1;
    if (!SYMTAB_NAMES_OK(in + sizeof h, e->syms, h.nsyms)) return snprintf(err, errlen, "a symbol of the state is not a string"), -1;
    for (int i = 0; i < h.nsyms; i++) {
        ens_sym_t s;
        memcpy(&s, in + sizeof h + (size_t)i * sizeof s, sizeof s);
        if (proto_partition(s.symbol, (int)e->svc->cfg.partitions) != part)
            return snprintf(err, errlen, "symbol %s of the state is not of partition p%d", s.symbol, part), -1;
    }
    for (int i = 0; i < h.npending; i++) {
        memcpy(&p, in + sizeof h + syms + (size_t)i * sizeof p, sizeof p);
        if (!p.used || !ens_pending_ok(e, &p) || ens_pending_part(e, &p) != part)
            return snprintf(err, errlen, "waiting bar %d of the state is malformed or not of partition p%d", i, part), -1;
    }
    memcpy(e->syms + e->nsyms, in + sizeof h, syms);
    for (int i = 0; i < h.nsyms; i++) e->syms[e->nsyms + i].part = part; /* the checked one, not the bytes' */
    e->nsyms += h.nsyms;
    int64_t now = clock_mono_us(); /* the clock of the process that saved them is not ours */
    for (int i = 0, k = 0; i < h.npending; i++) {
        while (e->pending[k].used) k++;
        memcpy(&e->pending[k], in + sizeof h + syms + (size_t)i * sizeof p, sizeof p);
        e->pending[k].created_us = now, e->pending[k].deadline_us = now + e->window_ms * 1000, e->pending[k].syncing = 0;
    }
    return 0;
}

/* Bars after the checkpoint were trimmed away: the members' windows of the
 * partition's symbols start again from what the replay brings. */
static void ens_gap_part(void *ud, int part)
{
    ensemble_t *e = ud;
    for (int i = 0; i < e->nsyms; i++)
        if (e->syms[i].part == part) obs_init(&e->syms[i].st);
}

static long ens_bars(const void *slot) { return ((const ens_sym_t *)slot)->st.ind.bars; }

static const ckpt_ops_t ens_ckpt = {.format = ens_format,
                                    .save_part = ens_save_part,
                                    .load_part = ens_load_part,
                                    .drop_part = ens_drop_part,
                                    .gap_part = ens_gap_part};

/* ---------- HTTP and status ---------- */

static json_t *ens_status_json(const ensemble_t *e)
{
    json_t *members = json_array();
    for (int i = 0; i < e->n; i++)
        json_array_append_new(members, i < e->nfiles ? json_pack("{s:s, s:s, s:s, s:s}", "name", e->names[i], "kind",
                                                                 mlm_kind_name(e->files[i].kind), "version",
                                                                 e->files[i].version, "file", e->paths[i])
                                                     : json_pack("{s:s, s:s}", "name", e->names[i], "kind", "external"));
    int waiting = 0;
    for (int i = 0; i < ENS_PENDING; i++) waiting += e->pending[i].used;
    return json_pack("{s:o, s:I, s:I, s:I, s:{s:I, s:I, s:I, s:I}, s:i, s:I, s:i, s:I, s:{s:f, s:f}}", "members", members,
                     "signals", (json_int_t)e->signals, "explored", (json_int_t)e->explored, "vote_window_ms",
                     (json_int_t)e->window_ms, "external_votes", "counted", (json_int_t)e->votes_counted, "late",
                     (json_int_t)e->votes_late, "unknown_model", (json_int_t)e->votes_unknown, "dropped",
                     (json_int_t)e->votes_dropped, "pending", waiting, "bars_skipped", (json_int_t)e->bars_skipped,
                     "symbols", e->nsyms, "learner_synced", (json_int_t)e->synced, "predict_seconds", "p50", metric_quantile(e->m_predict, 0.5), "p99",
                     metric_quantile(e->m_predict, 0.99));
}

static int ens_http_ensemble(void *ud, httpd_req_t *req, json_t **out)
{
    (void)req;
    *out = ens_status_json(ud);
    json_object_set_new(*out, "warmup", warmup_status(&((ensemble_t *)ud)->warm));
    return 200;
}

static int ens_http_reload(void *ud, httpd_req_t *req, json_t **out)
{
    char err[512];
    (void)req;
    if (ensemble_reload(ud, err, sizeof err) < 0) {
        *out = httpd_error("members not reloaded, the old ones stay: %s", err);
        return 422;
    }
    *out = json_pack("{s:b, s:o}", "reloaded", 1, "ensemble", ens_status_json(ud));
    return 200;
}

static json_t *ens_status(void *ud)
{
    ensemble_t *e = ud;
    json_t *s = json_pack("{s:o, s:o}", "ensemble", ens_status_json(e), "warmup", warmup_status(&e->warm));
    learner_status(e->learner, s);
    json_object_set_new(s, "bus", bus_status(e->svc->bus));
    json_object_set_new(s, "state", svc_state_status(e->svc));
    json_t *parts = svc_partitions_status(e->svc);
    if (parts) json_object_set_new(s, "partitions", parts);
    return s;
}

static void ens_on_hup(void *ud)
{
    char err[512];
    ensemble_reload(ud, err, sizeof err);
}

static void ens_on_stop(void *ud)
{
    learner_checkpoint(((ensemble_t *)ud)->learner);
}

/* ---------- life ---------- */

static int ens_config(ensemble_t *e, char *err, size_t errlen)
{
    const char *models, *external;
    config_get_str("QT_ML_MODELS", "models/ml/gbdt-deep.bin,models/ml/gbdt-shallow.bin,models/ml/softmax.bin,models/ml/mlp-returns.bin", &models);
    config_get_str("QT_ML_EXTERNAL_MODELS", "", &external);
    if ((e->nfiles = ens_list(models, e->paths, ENS_FILES)) < 0)
        return snprintf(err, errlen, "QT_ML_MODELS: empty item or more than %d files", ENS_FILES), -1;
    if (config_get_long("QT_VOTE_WINDOW_MS", 500, 1, 600000, &e->window_ms, err, errlen) < 0 ||
        config_get_long("QT_ML_SEED", 7, 0, 2147483647L, &e->seed, err, errlen) < 0 || ens_load_files(e, e->files, err, errlen) < 0)
        return e->nfiles = 0, -1;
    return ens_names(e, external, err, errlen);
}

static int ens_setup(ensemble_t *e, svc_t *svc, char *err, size_t errlen)
{
    const char *names[RSM_MAX_MODELS];
    struct timeval tv = {0, 50000};
    for (int i = 0; i < e->n; i++) names[i] = e->names[i];
    if (!(e->learner = learner_new(svc, names, e->n, err, errlen))) return -1;
    e->m_predict = metrics_histogram(svc->metrics, "qt_ml_predict_seconds", "Member predictions for one bar", NULL, NULL, 0);
    e->m_signals = metrics_counter(svc->metrics, "qt_ml_signals_total", "signal.generated published", NULL);
    e->m_counted = metrics_counter(svc->metrics, "qt_ml_votes_total", "External votes", "result=\"counted\"");
    e->m_late = metrics_counter(svc->metrics, "qt_ml_votes_total", "External votes", "result=\"late\"");
    e->m_unknown = metrics_counter(svc->metrics, "qt_ml_votes_total", "External votes", "result=\"unknown_model\"");
    if (warmup_init(&e->warm, svc, MLM_WARMUP, "signal.generated", e->syms, sizeof e->syms[0], &e->nsyms, ens_bars) < 0)
        return snprintf(err, errlen, "out of memory"), -1;
    e->tick = event_new(svc->base, -1, EV_PERSIST, ens_tick, e);
    if (!e->tick || event_add(e->tick, &tv) < 0 || bus_subscribe(svc->bus, QT_STREAM_MARKET, ens_handle, e) < 0 ||
        bus_subscribe(svc->bus, QT_STREAM_VOTE, ens_handle, e) < 0 ||
        bus_lease_parts(svc->bus) < 0 || /* replicas share the partitions, each symbol's state with it (lease.h) */
        httpd_route(svc->http, "GET", "/api/v1/ensemble", 0, ens_http_ensemble, e) < 0 ||
        httpd_route(svc->http, "POST", "/api/v1/ensemble/reload", HTTPD_AUTH, ens_http_reload, e) < 0)
        return snprintf(err, errlen, "cannot set up the ensemble"), -1;
    snprintf(ens_format, sizeof ens_format, "ml-threshold/p1/%zu/%zu/%zu/%d", sizeof(ens_saved_t), sizeof(ens_sym_t),
             sizeof(ens_pending_t), e->n);
    if (bus_keep_state(svc->bus, &ens_ckpt, e) < 0) return snprintf(err, errlen, "cannot keep the ensemble's state"), -1;
    httpd_set_status(svc->http, ens_status, e);
    svc->on_reload = ens_on_hup, svc->on_stop = ens_on_stop, svc->hook_ud = e;
    return 0;
}

ensemble_t *ensemble_new(svc_t *svc, char *err, size_t errlen)
{
    ensemble_t *e = calloc(1, sizeof *e);
    if (!e) return snprintf(err, errlen, "out of memory"), NULL;
    e->svc = svc;
    if (ens_config(e, err, errlen) < 0 || ens_setup(e, svc, err, errlen) < 0) {
        ensemble_free(e);
        return NULL;
    }
    log_info("ensemble of %d members (%d from files, %d external), vote window %ld ms", e->n, e->nfiles, e->nexternal,
             e->window_ms);
    return e;
}

void ensemble_free(ensemble_t *e)
{
    if (!e) return;
    if (e->tick) event_free(e->tick);
    learner_free(e->learner);
    for (int i = 0; i < e->nfiles; i++) mlm_free(&e->files[i]);
    free(e);
}
