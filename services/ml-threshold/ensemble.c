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
    obs_state_t st;
    int64_t last_open_time, published_open_time, leap_held; /* leap_held: see timeguard.h */
} ens_sym_t;

/* A bar waiting for external votes, or votes waiting for their bar. */
typedef struct ens_pending {
    int used, has_bar, persisted;
    char symbol[24], interval[8], trace[72], regime[32];
    int64_t open_time, event_time, deadline_us, created_us;
    int action[RSM_MAX_MODELS]; /* -1: no vote */
    double conf[RSM_MAX_MODELS];
} ens_pending_t;

struct ensemble {
    svc_t *svc;
    learner_t *learner;
    mlm_t files[ENS_FILES];
    int nfiles, nexternal, n;
    char names[RSM_MAX_MODELS][64];
    char paths[ENS_FILES][512];
    ens_sym_t syms[ENS_SYMS];
    int nsyms;
    ens_pending_t pending[ENS_PENDING];
    char (*to_delete)[64];
    int ndelete;
    long window_ms, seed;
    char k_pending[160];
    struct event *tick;
    long signals, explored, votes_counted, votes_late, votes_unknown, votes_dropped, bars_skipped;
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
    if (created) obs_init(&s->st);
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

static void ens_field(const ens_pending_t *p, char out[64])
{
    snprintf(out, 64, "%s|%lld", p->symbol, (long long)p->open_time);
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

static json_t *ens_pending_json(const ensemble_t *e, const ens_pending_t *p)
{
    json_t *votes = json_object();
    for (int i = 0; i < e->n; i++)
        if (p->action[i] >= 0)
            json_object_set_new(votes, e->names[i], json_pack("{s:s, s:f}", "action", mlm_class_names[p->action[i]], "confidence", p->conf[i]));
    return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:b, s:o}", "symbol", p->symbol, "interval", p->interval, "trace",
                     p->trace, "regime", p->regime, "open_time", (json_int_t)p->open_time, "event_time",
                     (json_int_t)p->event_time, "has_bar", p->has_bar, "votes", votes);
}

/* Write p to the pending hash before its input is acknowledged; -1 when the
 * Redis link is down (the input is delivered again). */
static int ens_persist(ensemble_t *e, ens_pending_t *p)
{
    char field[64];
    if (bus_replaying(e->svc->bus)) return p->persisted = 1, 0; /* written when it was first handled */
    json_t *j = ens_pending_json(e, p);
    char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
    ens_field(p, field);
    const char *argv[] = {"HSET", e->k_pending, field, txt ? txt : "{}"};
    int rc = txt ? bus_redis(e->svc->bus, NULL, NULL, 4, argv, NULL) : -1;
    if (rc == 0) p->persisted = 1;
    free(txt);
    json_decref(j);
    return rc;
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
    if (p->persisted && e->ndelete < ENS_PENDING) ens_field(p, e->to_delete[e->ndelete++]);
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
        if (p) { /* external votes came first: they go, as late votes after it would */
            if (p->persisted && e->ndelete < ENS_PENDING) ens_field(p, e->to_delete[e->ndelete++]);
            p->used = 0, e->votes_dropped++;
        }
        s->last_open_time = s->published_open_time = ot;
        return BUS_OK;
    }
    if (!p && !(p = ens_pending_new(e, symbol, ot))) goto retry;
    p->has_bar = 1, p->event_time = json_integer_value(json_object_get(b, "event_time"));
    snprintf(p->interval, sizeof p->interval, "%s", json_string_value(json_object_get(b, "interval")));
    snprintf(p->trace, sizeof p->trace, "%s", m->ev->trace);
    snprintf(p->regime, sizeof p->regime, "%s", regime_name(regime_trend(&s->st.ind.regime)));
    ens_member_votes(e, s, p);
    p->deadline_us = clock_mono_us() + e->window_ms * 1000;
    if (ens_all_voted(e, p) ? ens_publish(e, p) < 0 : ens_persist(e, p) < 0) goto retry;
    s->last_open_time = ot;
    return BUS_OK;
retry: /* the bar comes again: undo it */
    if (p) p->has_bar = 0;
    s->st = before;
    snprintf(err, errlen, "cannot publish or persist the bar's signal now");
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
    if (p->has_bar && ens_all_voted(e, p) ? ens_publish(e, p) < 0 : ens_persist(e, p) < 0)
        return snprintf(err, errlen, "cannot publish or persist the vote now"), BUS_RETRY;
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

static void ens_tick(evutil_socket_t fd, short what, void *arg)
{
    ensemble_t *e = arg;
    int64_t now = clock_mono_us();
    (void)fd, (void)what;
    for (int i = 0; i < ENS_PENDING; i++) {
        ens_pending_t *p = &e->pending[i];
        if (p->used && p->has_bar && now >= p->deadline_us) ens_publish(e, p);
        else if (p->used && !p->has_bar && now - p->created_us > ENS_ORPHAN_US) {
            if (p->persisted && e->ndelete < ENS_PENDING) ens_field(p, e->to_delete[e->ndelete++]);
            p->used = 0, e->votes_dropped++;
        }
    }
    if (e->ndelete && bus_outbox_size(e->svc->bus) == 0) { /* every signal confirmed: forget their pending copies */
        const char *argv[2 + ENS_PENDING];
        argv[0] = "HDEL", argv[1] = e->k_pending;
        for (int i = 0; i < e->ndelete; i++) argv[2 + i] = e->to_delete[i];
        if (bus_redis(e->svc->bus, NULL, NULL, 2 + e->ndelete, argv, NULL) == 0) e->ndelete = 0;
    }
}

/* Bars and votes that were waiting when the last instance stopped. */
static void ens_restore(ensemble_t *e)
{
    char err[256];
    redisContext *c = rsync_connect(&e->svc->cfg.redis, 2000, err, sizeof err);
    redisReply *r = c ? redisCommand(c, "HGETALL %s", e->k_pending) : NULL;
    int restored = 0;
    for (size_t k = 0; r && r->type == REDIS_REPLY_ARRAY && k + 1 < r->elements; k += 2) {
        json_t *j = json_loadb(r->element[k + 1]->str, r->element[k + 1]->len, 0, NULL), *votes = json_object_get(j, "votes"), *v;
        const char *name, *symbol = json_string_value(json_object_get(j, "symbol"));
        ens_pending_t *p = symbol ? ens_pending_new(e, symbol, json_integer_value(json_object_get(j, "open_time"))) : NULL;
        if (p) {
            p->has_bar = json_is_true(json_object_get(j, "has_bar")), p->persisted = 1;
            p->event_time = json_integer_value(json_object_get(j, "event_time"));
            p->deadline_us = clock_mono_us() + e->window_ms * 1000;
            snprintf(p->interval, sizeof p->interval, "%s", json_string_value(json_object_get(j, "interval")));
            snprintf(p->trace, sizeof p->trace, "%s", json_string_value(json_object_get(j, "trace")));
            snprintf(p->regime, sizeof p->regime, "%s", json_string_value(json_object_get(j, "regime")));
            json_object_foreach(votes, name, v)
            {
                int i = ens_member(e, name, 0), a = ens_class(json_string_value(json_object_get(v, "action")));
                if (i >= 0 && a >= 0) p->action[i] = a, p->conf[i] = json_number_value(json_object_get(v, "confidence"));
            }
            restored++;
        }
        json_decref(j);
    }
    if (!c || !r) log_warn("pending bars not restored: %s", c ? c->errstr : err);
    else if (restored) log_info("%d pending bars and votes restored from %s", restored, e->k_pending);
    if (r) freeReplyObject(r);
    if (c) redisFree(c);
}

/* ---------- state across restarts (ckpt.h) ---------- */

/* The ensemble's own fields in a checkpoint; the symbols and the waiting bars follow. */
typedef struct ens_saved {
    long signals, explored, votes_counted, votes_late, votes_unknown, votes_dropped, bars_skipped;
    int nsyms, npending;
} ens_saved_t;

static char ens_format[64];

static int ens_save(void *ud, char **out, size_t *len)
{
    ensemble_t *e = ud;
    ens_saved_t h = {e->signals, e->explored, e->votes_counted, e->votes_late, e->votes_unknown, e->votes_dropped,
                     e->bars_skipped, e->nsyms, 0};
    for (int i = 0; i < ENS_PENDING; i++) h.npending += e->pending[i].used;
    size_t syms = (size_t)e->nsyms * sizeof *e->syms, at = sizeof h + syms;
    if (!(*out = malloc(at + (size_t)h.npending * sizeof *e->pending))) return -1;
    memcpy(*out, &h, sizeof h);
    memcpy(*out + sizeof h, e->syms, syms);
    for (int i = 0; i < ENS_PENDING; i++)
        if (e->pending[i].used) memcpy(*out + at, &e->pending[i], sizeof *e->pending), at += sizeof *e->pending;
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

static int ens_load(void *ud, const char *in, size_t len, char *err, size_t errlen)
{
    ensemble_t *e = ud;
    ens_saved_t h;
    ens_pending_t p;
    if (len < sizeof h) return snprintf(err, errlen, "state of %zu bytes is too short", len), -1;
    memcpy(&h, in, sizeof h);
    size_t syms = (size_t)h.nsyms * sizeof *e->syms;
    if (h.nsyms < 0 || h.nsyms > ENS_SYMS || h.npending < 0 || h.npending > ENS_PENDING ||
        len != sizeof h + syms + (size_t)h.npending * sizeof p)
        return snprintf(err, errlen, "state says %d symbols and %d waiting bars in %zu bytes", h.nsyms, h.npending, len), -1;
    if (!SYMTAB_NAMES_OK(in + sizeof h, e->syms, h.nsyms))
        return snprintf(err, errlen, "a symbol of the state is not a string"), -1;
    for (int i = 0; i < h.npending; i++) {
        memcpy(&p, in + sizeof h + syms + (size_t)i * sizeof p, sizeof p);
        if (!p.used || !ens_pending_ok(e, &p)) return snprintf(err, errlen, "waiting bar %d of the state is malformed", i), -1;
    }
    memcpy(e->syms, in + sizeof h, syms);
    memset(e->pending, 0, sizeof e->pending);
    int64_t now = clock_mono_us(); /* the clock of the process that saved them is not ours */
    for (int i = 0; i < h.npending; i++) {
        memcpy(&e->pending[i], in + sizeof h + syms + (size_t)i * sizeof p, sizeof p);
        e->pending[i].created_us = now, e->pending[i].deadline_us = now + e->window_ms * 1000;
    }
    e->nsyms = h.nsyms, e->signals = h.signals, e->explored = h.explored, e->votes_counted = h.votes_counted;
    e->votes_late = h.votes_late, e->votes_unknown = h.votes_unknown, e->votes_dropped = h.votes_dropped;
    e->bars_skipped = h.bars_skipped;
    return 0;
}

/* Bars after the checkpoint were trimmed away: the members' windows start
 * again from what the replay brings. */
static void ens_gap(void *ud)
{
    ensemble_t *e = ud;
    for (int i = 0; i < e->nsyms; i++) obs_init(&e->syms[i].st);
}

static long ens_bars(const void *slot) { return ((const ens_sym_t *)slot)->st.ind.bars; }

static const ckpt_ops_t ens_ckpt = {.format = ens_format, .save = ens_save, .load = ens_load, .gap = ens_gap};

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
    return json_pack("{s:o, s:I, s:I, s:I, s:{s:I, s:I, s:I, s:I}, s:i, s:I, s:i, s:{s:f, s:f}}", "members", members,
                     "signals", (json_int_t)e->signals, "explored", (json_int_t)e->explored, "vote_window_ms",
                     (json_int_t)e->window_ms, "external_votes", "counted", (json_int_t)e->votes_counted, "late",
                     (json_int_t)e->votes_late, "unknown_model", (json_int_t)e->votes_unknown, "dropped",
                     (json_int_t)e->votes_dropped, "pending", waiting, "bars_skipped", (json_int_t)e->bars_skipped,
                     "symbols", e->nsyms, "predict_seconds", "p50", metric_quantile(e->m_predict, 0.5), "p99",
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
    proto_key(e->k_pending, sizeof e->k_pending, svc->cfg.ns, QT_KEY_ML_PENDING);
    e->m_predict = metrics_histogram(svc->metrics, "qt_ml_predict_seconds", "Member predictions for one bar", NULL, NULL, 0);
    e->m_signals = metrics_counter(svc->metrics, "qt_ml_signals_total", "signal.generated published", NULL);
    e->m_counted = metrics_counter(svc->metrics, "qt_ml_votes_total", "External votes", "result=\"counted\"");
    e->m_late = metrics_counter(svc->metrics, "qt_ml_votes_total", "External votes", "result=\"late\"");
    e->m_unknown = metrics_counter(svc->metrics, "qt_ml_votes_total", "External votes", "result=\"unknown_model\"");
    if (warmup_init(&e->warm, svc, MLM_WARMUP, "signal.generated", e->syms, sizeof e->syms[0], &e->nsyms, ens_bars) < 0)
        return snprintf(err, errlen, "out of memory"), -1;
    if (e->nexternal) ens_restore(e);
    e->tick = event_new(svc->base, -1, EV_PERSIST, ens_tick, e);
    static const char *const votes_only[] = {"model.vote", NULL}; /* the signals on that stream are not ours */
    if (!e->tick || event_add(e->tick, &tv) < 0 || bus_subscribe(svc->bus, "market", ens_handle, e) < 0 ||
        bus_subscribe_types(svc->bus, "signal", votes_only, ens_handle, e) < 0 ||
        httpd_route(svc->http, "GET", "/api/v1/ensemble", 0, ens_http_ensemble, e) < 0 ||
        httpd_route(svc->http, "POST", "/api/v1/ensemble/reload", HTTPD_AUTH, ens_http_reload, e) < 0)
        return snprintf(err, errlen, "cannot set up the ensemble"), -1;
    snprintf(ens_format, sizeof ens_format, "ml-threshold/1/%zu/%zu/%zu/%d", sizeof(ens_saved_t), sizeof(ens_sym_t),
             sizeof(ens_pending_t), e->n);
    if (bus_keep_state(svc->bus, &ens_ckpt, e) < 0) return snprintf(err, errlen, "cannot keep the ensemble's state"), -1;
    httpd_set_status(svc->http, ens_status, e);
    svc->on_reload = ens_on_hup, svc->on_stop = ens_on_stop, svc->hook_ud = e;
    return 0;
}

ensemble_t *ensemble_new(svc_t *svc, char *err, size_t errlen)
{
    ensemble_t *e = calloc(1, sizeof *e);
    if (!e || !(e->to_delete = calloc(ENS_PENDING, sizeof *e->to_delete))) {
        free(e);
        return snprintf(err, errlen, "out of memory"), NULL;
    }
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
    free(e->to_delete);
    free(e);
}
