/* feed.c — CSV replay and synthetic market feeds (see feed.h). */
#include "feed.h"
#include "binance.h"
#include "breaker.h"
#include "clock.h"
#include "config.h"
#include "kline.h"
#include "log.h"
#include "synth.h"
#include "timeguard.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FEED_MAX_FILES 64
#define FEED_MAX_SYMBOLS 64
#define FEED_BURST 256 /* bars per loop turn at full speed */

typedef enum { FEED_NONE, FEED_REPLAY, FEED_SYNTHETIC, FEED_BINANCE } feed_kind_t;

typedef struct replay_file {
    char path[512], symbol[24], interval[8];
    FILE *fp;
    long line;
    int has_next;
    feed_bar_t next;
    int64_t last_open, leap_held; /* leap_held: see timeguard.h */
} replay_file_t;

typedef struct resume_point {
    char symbol[24];
    int64_t open_time;
} resume_point_t;

struct feed {
    struct event_base *base;
    feed_kind_t kind;
    feed_emit_fn emit;
    void *ud;
    double speed;
    struct event *timer;
    int hold, done, started, blocked;
    long published, bad_rows, skipped;
    replay_file_t files[FEED_MAX_FILES];
    int nfiles;
    synth_sym_t syms[FEED_MAX_SYMBOLS];
    int nsyms;
    long synth_bars;
    int64_t synth_start, synth_t;
    int synth_turn;
    resume_point_t resume[FEED_MAX_SYMBOLS];
    int nresume;
    int64_t last_emitted_open, last_emit_wall;
    binance_t *bn;          /* FEED_BINANCE */
    breaker_t *bn_breaker;
    char bn_interval[8];
    int64_t bn_interval_ms;
    long poll_ms, polls, poll_errors;
    int polling; /* kline polls on their way */
    int closing; /* being freed: answers still coming change nothing */
    feed_bar_t queue[1600]; /* closed bars fetched, not yet emitted */
    int qn, qi;
    feed_bar_t pending;
    int has_pending;
    char spec[64];
};

/* ---------- CSV parsing: libcommon/kline.c ---------- */

/* SYMBOL-INTERVAL-... from the file name; interval "" when absent. */
static void feed_name_parts(const char *path, char *symbol, size_t slen, char *interval, size_t ilen)
{
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    const char *dash = strchr(base, '-'), *dot = strchr(base, '.');
    size_t n = dash ? (size_t)(dash - base) : dot ? (size_t)(dot - base) : strlen(base);
    snprintf(symbol, slen, "%.*s", (int)n, base);
    for (char *p = symbol; *p; p++) *p = (char)toupper((unsigned char)*p);
    interval[0] = '\0';
    if (dash) {
        const char *end = strchr(dash + 1, '-');
        if (!end) end = strchr(dash + 1, '.');
        snprintf(interval, ilen, "%.*s", (int)(end ? end - dash - 1 : (long)strlen(dash + 1)), dash + 1);
        if (!kline_interval_ms(interval)) interval[0] = '\0';
    }
}

/* Read the next good row of a file into f->next; bad rows are reported and skipped. */
static void replay_advance(feed_t *feed, replay_file_t *f)
{
    char line[1100], err[200];
    f->has_next = 0;
    while (f->fp && fgets(line, sizeof line, f->fp)) {
        f->line++;
        if (line[0] == '\n' || line[0] == '\r' || line[0] == '\0') continue;
        feed_bar_t b = {0};
        int rc = kline_parse_line(line, &b, err, sizeof err);
        if (rc == 1 && f->line == 1) continue;
        if (rc == 0 && b.open_time <= f->last_open) rc = -1, snprintf(err, sizeof err, "open_time not after the previous row");
        if (rc == 0 && tguard_leap(f->last_open, &f->leap_held, b.open_time, b.close_time - b.open_time + 1, "open_time",
                                   err, sizeof err) < 0)
            rc = -1;
        if (rc != 0) {
            feed->bad_rows++;
            log_warn("%s:%ld: bad row skipped: %s", f->path, f->line, rc == 1 ? "header line not at the top" : err);
            continue;
        }
        snprintf(b.symbol, sizeof b.symbol, "%s", f->symbol);
        if (!f->interval[0] && b.close_time) /* infer from the first row */
            for (size_t i = 0; i < KLINE_INTERVALS; i++)
                if (kline_intervals[i].ms == b.close_time - b.open_time + 1) snprintf(f->interval, sizeof f->interval, "%s", kline_intervals[i].name);
        if (!f->interval[0]) snprintf(f->interval, sizeof f->interval, "1m");
        snprintf(b.interval, sizeof b.interval, "%s", f->interval);
        if (!b.close_time) b.close_time = b.open_time + kline_interval_ms(f->interval) - 1;
        f->last_open = b.open_time;
        f->next = b;
        f->has_next = 1;
        return;
    }
}

static int replay_open(feed_t *feed, const char *list, char *err, size_t errlen)
{
    char buf[4096], *save = NULL;
    const char *sym = getenv("QT_FEED_SYMBOL");
    snprintf(buf, sizeof buf, "%s", list);
    for (char *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        if (feed->nfiles == FEED_MAX_FILES) return snprintf(err, errlen, "QT_FEED: more than %d files", FEED_MAX_FILES), -1;
        replay_file_t *f = &feed->files[feed->nfiles++];
        snprintf(f->path, sizeof f->path, "%s", p);
        feed_name_parts(p, f->symbol, sizeof f->symbol, f->interval, sizeof f->interval);
        if (sym && *sym) snprintf(f->symbol, sizeof f->symbol, "%s", sym);
        f->fp = fopen(p, "r");
        if (!f->fp) return snprintf(err, errlen, "QT_FEED: cannot open %s: %s", p, strerror(errno)), -1;
        replay_advance(feed, f);
    }
    return feed->nfiles ? 0 : (snprintf(err, errlen, "QT_FEED: replay: needs at least one file"), -1);
}

/* The file whose next bar is earliest (ties: the order given). */
static replay_file_t *replay_pick(feed_t *feed)
{
    replay_file_t *best = NULL;
    for (int i = 0; i < feed->nfiles; i++)
        if (feed->files[i].has_next && (!best || feed->files[i].next.open_time < best->next.open_time))
            best = &feed->files[i];
    return best;
}

/* ---------- synthetic market: libcommon/synth.c ---------- */

static int synth_open(feed_t *feed, char *err, size_t errlen)
{
    const char *list;
    long seed, bars, start;
    char buf[1024], *save = NULL;
    config_get_str("QT_FEED_SYMBOLS", "BTCUSDT,ETHUSDT,SOLUSDT", &list);
    if (config_get_long("QT_FEED_SEED", 42, 0, 2147483647L, &seed, err, errlen) < 0 ||
        config_get_long("QT_FEED_BARS", 0, 0, 100000000L, &bars, err, errlen) < 0 ||
        config_get_long("QT_FEED_START_MS", 1704067200000L, 0, 4102444800000L, &start, err, errlen) < 0)
        return -1;
    feed->synth_bars = bars;
    feed->synth_start = feed->synth_t = start - start % 60000;
    snprintf(buf, sizeof buf, "%s", list);
    for (char *p = strtok_r(buf, ",", &save); p && feed->nsyms < FEED_MAX_SYMBOLS; p = strtok_r(NULL, ",", &save)) {
        synth_sym_init(&feed->syms[feed->nsyms], p, seed, feed->nsyms);
        feed->nsyms++;
    }
    return feed->nsyms ? 0 : (snprintf(err, errlen, "QT_FEED_SYMBOLS: no symbols"), -1);
}

/* The next synthetic bar (symbols in turn at each minute); 0 at the end. */
static int synth_next(feed_t *feed, feed_bar_t *b)
{
    if (feed->synth_turn == feed->nsyms) feed->synth_turn = 0, feed->synth_t += 60000;
    synth_sym_t *s = &feed->syms[feed->synth_turn];
    if (feed->synth_bars && s->made >= feed->synth_bars) return 0;
    synth_bar(s, feed->synth_t, b);
    feed->synth_turn++;
    return 1;
}

/* ---------- Binance REST klines ---------- */

static int binance_open_feed(feed_t *feed, char *err, size_t errlen)
{
    const char *list, *iv, *base;
    char buf[1024], *save = NULL;
    binance_config_t bc;
    breaker_config_t brc;
    config_get_str("QT_FEED_SYMBOLS", "BTCUSDT,ETHUSDT,SOLUSDT", &list);
    config_get_str("QT_FEED_INTERVAL", "1m", &iv);
    config_get_str("QT_FEED_BASE_URL", "https://fapi.binance.com", &base);
    if (!(feed->bn_interval_ms = kline_interval_ms(iv)))
        return snprintf(err, errlen, "QT_FEED_INTERVAL: '%.8s' is not a kline interval", iv), -1;
    snprintf(feed->bn_interval, sizeof feed->bn_interval, "%s", iv);
    if (config_get_long("QT_FEED_POLL_MS", 2000, 100, 600000, &feed->poll_ms, err, errlen) < 0 ||
        config_get_binance(&bc, base, err, errlen) < 0)
        return -1;
    if (getenv("QT_FEED_BASE_URL")) snprintf(bc.base_url, sizeof bc.base_url, "%s", base); /* the feed's own base */
    breaker_config_default(&brc);
    brc.window_size = 10, brc.min_calls = 3, brc.open_wait_ms = 10000;
    int ok = config_get_breaker("QT_FEED_BREAKER", &brc, err, errlen) == 0 && (feed->bn = binance_new(&bc, err, errlen)) &&
             binance_attach(feed->bn, feed->base) == 0 && (feed->bn_breaker = breaker_new("binance-feed", &brc));
    explicit_bzero(&bc, sizeof bc); /* any keys read live on only inside the client */
    if (!ok) return -1;
    snprintf(buf, sizeof buf, "%s", list);
    for (char *p = strtok_r(buf, ",", &save); p && feed->nsyms < FEED_MAX_SYMBOLS; p = strtok_r(NULL, ",", &save))
        snprintf(feed->syms[feed->nsyms++].symbol, sizeof feed->syms[0].symbol, "%s", p);
    return feed->nsyms ? 0 : (snprintf(err, errlen, "QT_FEED_SYMBOLS: no symbols"), -1);
}

static int64_t feed_resume_of(const feed_t *f, const char *symbol)
{
    for (int i = 0; i < f->nresume; i++)
        if (strcmp(f->resume[i].symbol, symbol) == 0) return f->resume[i].open_time;
    return 0;
}

/* A kline's string field, or def when it is not a string. */
static const char *kstr(const json_t *k, size_t i, const char *def)
{
    const char *v = json_string_value(json_array_get(k, i));
    return v ? v : def;
}

/* One kline array [open_time, "o", "h", "l", "c", "v", close_time, "qv", n, "tbv", ...]. */
static int binance_kline(const json_t *k, const char *symbol, const char *interval, feed_bar_t *b)
{
    char err[128], line[512];
    if (!json_is_array(k) || json_array_size(k) < 11) return -1;
    snprintf(line, sizeof line, "%lld,%s,%s,%s,%s,%s,%lld,%s,%lld,%s", (long long)json_integer_value(json_array_get(k, 0)),
             kstr(k, 1, "x"), kstr(k, 2, "x"),
             kstr(k, 3, "x"), kstr(k, 4, "x"),
             kstr(k, 5, "x"), (long long)json_integer_value(json_array_get(k, 6)),
             kstr(k, 7, "0"), (long long)json_integer_value(json_array_get(k, 8)),
             kstr(k, 9, "0"));
    memset(b, 0, sizeof *b);
    if (kline_parse_line(line, b, err, sizeof err) != 0) return -1;
    snprintf(b->symbol, sizeof b->symbol, "%s", symbol);
    snprintf(b->interval, sizeof b->interval, "%s", interval);
    return 0;
}

static void feed_schedule(feed_t *f, int64_t ms);

/* One symbol's kline poll on its way. */
typedef struct feed_poll {
    feed_t *f;
    char symbol[24];
    int64_t last, now, t0;
} feed_poll_t;

/* A symbol's closed bars after the last one published, oldest first, into the queue. */
static void binance_polled(void *ud, binance_rc_t rc, binance_reply_t *r, const char *err)
{
    feed_poll_t *p = ud;
    feed_t *f = p->f;
    int64_t last = p->last;
    f->polling--;
    if (f->closing || rc == BINANCE_BACKOFF) {
        free(p);
        return;
    }
    breaker_record(f->bn_breaker, rc == BINANCE_OK && json_is_array(r->body), clock_mono_ms() - p->t0, clock_mono_ms());
    if (rc != BINANCE_OK || !json_is_array(r->body)) {
        if (f->poll_errors++ % 10 == 0) log_warn("kline poll of %s failed: %s", p->symbol, err);
    } else {
        size_t i;
        json_t *k;
        json_array_foreach(r->body, i, k) {
            feed_bar_t b;
            if (binance_kline(k, p->symbol, f->bn_interval, &b) < 0) {
                f->bad_rows++;
                continue;
            }
            if (b.close_time >= p->now || b.open_time <= last || f->qn == (int)(sizeof f->queue / sizeof f->queue[0]))
                continue;
            f->queue[f->qn++] = b; /* closed and new */
            last = b.open_time;
        }
        feed_resume(f, p->symbol, last); /* what is queued counts as published: never twice */
    }
    if (f->polling == 0 && f->qi < f->qn) feed_schedule(f, 0); /* hand them out now */
    free(p);
}

/* Ask for every symbol's new closed bars, all at once, on the loop. */
static void binance_poll(feed_t *f)
{
    if (f->polling) return;
    if (f->qi == f->qn) f->qi = f->qn = 0;
    if (f->qn) return;
    for (int i = 0; i < f->nsyms; i++) {
        const char *symbol = f->syms[i].symbol;
        char query[128];
        feed_poll_t *p = calloc(1, sizeof *p);
        if (!p || !breaker_allow(f->bn_breaker, clock_mono_ms())) {
            free(p);
            continue;
        }
        p->f = f;
        snprintf(p->symbol, sizeof p->symbol, "%s", symbol);
        p->last = feed_resume_of(f, symbol), p->now = clock_wall_ms() + binance_clock_offset_ms(f->bn);
        p->t0 = clock_mono_ms();
        long limit = p->last ? (long)((p->now - p->last) / f->bn_interval_ms) + 2 : 3;
        if (limit > 1500) limit = 1500;
        snprintf(query, sizeof query, "symbol=%s&interval=%s&limit=%ld", symbol, f->bn_interval, limit);
        if (binance_call(f->bn, "GET", "/fapi/v1/klines", query, 0, binance_polled, p) < 0) {
            free(p);
            continue;
        }
        f->polls++, f->polling++;
    }
}

/* ---------- driving ---------- */

static int feed_skip(const feed_t *f, const feed_bar_t *b)
{
    for (int i = 0; i < f->nresume; i++)
        if (strcmp(f->resume[i].symbol, b->symbol) == 0) return b->open_time <= f->resume[i].open_time;
    return 0;
}

/* Fill f->pending with the next bar not published before; 0 at the end. */
static int feed_fill(feed_t *f)
{
    while (!f->has_pending) {
        feed_bar_t b;
        if (f->kind == FEED_REPLAY) {
            replay_file_t *r = replay_pick(f);
            if (!r) return 0;
            b = r->next;
            replay_advance(f, r);
        } else if (f->kind == FEED_BINANCE) {
            if (f->qi == f->qn) return 0; /* nothing queued until the next poll */
            b = f->queue[f->qi++];
            f->pending = b;
            f->has_pending = 1;
            continue;
        } else if (f->kind != FEED_SYNTHETIC || !synth_next(f, &b)) {
            return 0;
        }
        if (feed_skip(f, &b)) {
            f->skipped++;
            continue;
        }
        f->pending = b;
        f->has_pending = 1;
    }
    return 1;
}

static void feed_schedule(feed_t *f, int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(f->timer, &tv);
}

static void feed_finish(feed_t *f)
{
    f->done = 1;
    log_info("feed %s done: %ld bars published, %ld bad rows, %ld skipped as already published", f->spec,
             f->published, f->bad_rows, f->skipped);
}

/* Hand out bars: a burst at full speed, or each at its time when paced. */
static void feed_tick(evutil_socket_t fd, short what, void *arg)
{
    feed_t *f = arg;
    (void)fd;
    (void)what;
    for (int i = 0; i < FEED_BURST; i++) {
        if (f->hold) {
            feed_schedule(f, 20);
            return;
        }
        if (f->kind == FEED_BINANCE && !f->has_pending && f->qi == f->qn) { /* poll, then wait for the answers */
            binance_poll(f);
            feed_schedule(f, f->poll_ms);
            return;
        }
        if (!feed_fill(f)) {
            feed_finish(f);
            return;
        }
        if (f->kind == FEED_SYNTHETIC && f->pending.close_time > clock_wall_ms()) {
            /* a synthetic market run faster than time meets the clock: from here it is live, a bar
             * published when it closes (an event time cannot lead the clock, event.h) */
            int64_t wait = f->pending.close_time - clock_wall_ms() + 1;
            feed_schedule(f, wait < 60000 ? wait : 60000);
            return;
        }
        if (f->speed > 0 && f->published && f->kind != FEED_BINANCE) {
            int64_t due = f->last_emit_wall + (int64_t)((double)(f->pending.open_time - f->last_emitted_open) / f->speed);
            int64_t now = clock_mono_ms();
            if (now < due) {
                feed_schedule(f, due - now);
                return;
            }
        }
        int rc = f->emit(f->ud, &f->pending);
        if (rc == -2) { /* never publishable: offering it again would stall the feed for good */
            f->bad_rows++, f->has_pending = 0;
            log_warn("feed %s: bar %s %lld skipped: it breaks the event contract", f->spec, f->pending.symbol,
                     (long long)f->pending.open_time);
            continue;
        }
        if (rc < 0) { /* back-pressure or lockstep: try again soon or when woken */
            f->blocked = 1;
            feed_schedule(f, 20);
            return;
        }
        f->has_pending = 0;
        f->published++;
        f->last_emitted_open = f->pending.open_time;
        f->last_emit_wall = clock_mono_ms();
    }
    feed_schedule(f, 0);
}

feed_t *feed_new(struct event_base *base, feed_emit_fn emit, void *ud, char *err, size_t errlen)
{
    const char *spec;
    feed_t *f = calloc(1, sizeof *f);
    if (!f) return snprintf(err, errlen, "out of memory"), NULL;
    f->base = base, f->emit = emit, f->ud = ud;
    config_get_str("QT_FEED", "synthetic", &spec);
    snprintf(f->spec, sizeof f->spec, "%.60s", spec);
    int rc;
    if (strncmp(spec, "replay:", 7) == 0) f->kind = FEED_REPLAY, rc = replay_open(f, spec + 7, err, errlen);
    else if (strcmp(spec, "synthetic") == 0) f->kind = FEED_SYNTHETIC, rc = synth_open(f, err, errlen);
    else if (strcmp(spec, "binance") == 0) f->kind = FEED_BINANCE, rc = binance_open_feed(f, err, errlen);
    else if (strcmp(spec, "none") == 0) f->kind = FEED_NONE, rc = 0;
    else rc = -1, snprintf(err, errlen, "QT_FEED: '%.60s' is not replay:PATH[,PATH...], synthetic, binance or none", spec);
    double dflt = f->kind == FEED_REPLAY ? 0 : 1;
    if (rc == 0) rc = config_get_double("QT_FEED_SPEED", dflt, 0, 1e9, &f->speed, err, errlen);
    f->timer = evtimer_new(base, feed_tick, f);
    if (rc < 0 || !f->timer) {
        feed_free(f);
        return NULL;
    }
    return f;
}

void feed_free(feed_t *f)
{
    if (!f) return;
    for (int i = 0; i < f->nfiles; i++)
        if (f->files[i].fp) fclose(f->files[i].fp);
    f->closing = 1;
    binance_free(f->bn); /* polls still on their way end here */
    if (f->timer) event_free(f->timer);
    breaker_free(f->bn_breaker);
    free(f);
}

void feed_resume(feed_t *f, const char *symbol, int64_t open_time)
{
    for (int i = 0; i < f->nresume; i++)
        if (strcmp(f->resume[i].symbol, symbol) == 0) {
            if (open_time > f->resume[i].open_time) f->resume[i].open_time = open_time;
            return;
        }
    if (f->nresume == FEED_MAX_SYMBOLS) return;
    snprintf(f->resume[f->nresume].symbol, sizeof f->resume[0].symbol, "%s", symbol);
    f->resume[f->nresume++].open_time = open_time;
}

void feed_start(feed_t *f)
{
    if (f->started) return;
    f->started = 1;
    if (f->kind == FEED_NONE) {
        f->done = 1;
        return;
    }
    log_info("feed %s starting at speed %g", f->spec, f->speed);
    feed_schedule(f, 0);
}

void feed_hold(feed_t *f, int hold) { f->hold = hold; }

void feed_wake(feed_t *f)
{
    if (f && f->blocked && !f->done) f->blocked = 0, feed_schedule(f, 0);
}

int feed_full_speed_replay(const feed_t *f) { return f && f->kind == FEED_REPLAY && f->speed == 0; }
int feed_paced(const feed_t *f) { return (f->speed > 0 && f->kind != FEED_NONE) || f->kind == FEED_BINANCE; }

json_t *feed_status(const feed_t *f)
{
    static const char *const kinds[] = {"none", "replay", "synthetic", "binance"};
    json_t *syms = json_array();
    for (int i = 0; i < f->nfiles; i++) json_array_append_new(syms, json_string(f->files[i].symbol));
    for (int i = 0; i < f->nsyms; i++) json_array_append_new(syms, json_string(f->syms[i].symbol));
    json_t *st = json_pack("{s:s, s:o, s:f, s:I, s:I, s:I, s:b, s:b}", "kind", kinds[f->kind], "symbols", syms, "speed",
                           f->speed, "bars_published", (json_int_t)f->published, "bad_rows", (json_int_t)f->bad_rows,
                           "skipped", (json_int_t)f->skipped, "held", f->hold, "done", f->done);
    if (f->kind == FEED_BINANCE)
        json_object_set_new(st, "binance", json_pack("{s:I, s:I, s:s, s:I, s:I}", "polls", (json_int_t)f->polls, "errors",
                                                     (json_int_t)f->poll_errors, "breaker",
                                                     breaker_state_name(breaker_state(f->bn_breaker, clock_mono_ms())),
                                                     "used_weight", (json_int_t)binance_used_weight(f->bn), "backoff_ms",
                                                     (json_int_t)binance_backoff_ms(f->bn)));
    return st;
}
