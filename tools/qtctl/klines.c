/* klines.c — qtctl klines: history to backtest on, in the Binance data-dump
 * CSV layout the replay reads (kline.h).
 *
 *  fetch SYMBOL INTERVAL FROM TO [--out FILE] [--base-url URL]
 *      the public USDⓈ-M futures klines endpoint (/fapi/v1/klines), paged
 *      by 1500 bars: bars with FROM <= open_time < TO. FILE (default
 *      SYMBOL-INTERVAL-FROM-TO.csv) that exists is resumed after its last
 *      bar. Rate-limit aware: past QT_KLINES_WEIGHT_LIMIT (2000 of Binance's
 *      2400 a minute) of X-MBX-USED-WEIGHT-1M it waits for the next minute;
 *      429/418 wait their Retry-After; 5xx and no answer are tried again
 *      with backoff. Every bar is checked as the replay checks it, and in
 *      order; a bad reply stops the fetch with the reason, keeping what came
 *      before. Progress on stderr. Base URL: --base-url, else
 *      QT_BINANCE_BASE_URL, else https://fapi.binance.com.
 *  synth --symbol S --interval I --bars N --out FILE [--seed N] [--start FROM]
 *      the synthetic market (synth.h) in the same layout: the same arguments
 *      always write the same file. */
#include "klines.h"
#include "httpc.h"
#include "kline.h"
#include "synth.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define KL_PAGE 1500
#define KL_TRIES 8

/* "2024-05-01", "2024-05-01T12:30[:00][Z]" (UTC) or epoch ms into *ms; -1 if none of these. */
static int kl_time(const char *s, int64_t *ms)
{
    struct tm tm = {0};
    char *end;
    int n = 0;
    if (!s || !*s) return -1;
    long long v = strtoll(s, &end, 10);
    if (!*end && v >= 0 && end - s >= 9) return *ms = v, 0; /* epoch ms */
    if (sscanf(s, "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &n) != 3) return -1;
    const char *rest = s + n;
    if (*rest == 'T' || *rest == ' ') {
        int k = 0;
        if (sscanf(rest + 1, "%2d:%2d%n", &tm.tm_hour, &tm.tm_min, &k) != 2) return -1;
        rest += 1 + k;
        if (*rest == ':' && sscanf(rest + 1, "%2d%n", &tm.tm_sec, &k) == 1) rest += 1 + k;
        if (*rest == 'Z') rest++;
    }
    if (*rest || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60)
        return -1;
    tm.tm_year -= 1900, tm.tm_mon -= 1;
    *ms = (int64_t)timegm(&tm) * 1000;
    return 0;
}

static int kl_symbol_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 2 || n > 20) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9'))) return 0;
    return 1;
}

/* ---------- the file: resume, append ---------- */

/* The last bar of an existing file into *last (0 when none or no file); a
 * torn last line (a fetch killed while writing) is cut off. -1 with err when
 * the file holds something that is not this layout. */
static int kl_resume(const char *path, int64_t *last, long *bars, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r+");
    char line[1024];
    long good_end = 0, lineno = 0;
    *last = 0, *bars = 0;
    if (!f) return errno == ENOENT ? 0 : (snprintf(err, errlen, "%s: %s", path, strerror(errno)), -1);
    while (fgets(line, sizeof line, f)) {
        kline_t k;
        char why[200];
        lineno++;
        int whole = strchr(line, '\n') != NULL;
        int rc = whole ? kline_parse_line(line, &k, why, sizeof why) : -1;
        if (rc == 1) {
            good_end = ftell(f);
            continue;
        }
        if (rc < 0 && !whole && feof(f)) break; /* torn: cut below */
        if (rc < 0) return fclose(f), snprintf(err, errlen, "%s:%ld: %s (not a file this command wrote)", path, lineno, why), -1;
        if (k.open_time <= *last)
            return fclose(f), snprintf(err, errlen, "%s:%ld: bars out of order", path, lineno), -1;
        *last = k.open_time, (*bars)++, good_end = ftell(f);
    }
    if (ftruncate(fileno(f), good_end) < 0) return fclose(f), snprintf(err, errlen, "%s: %s", path, strerror(errno)), -1;
    fclose(f);
    return 0;
}

/* ---------- the exchange ---------- */

typedef struct kl_http {
    httpc_body_t body; /* a page of 1500 bars is far under its 8 MB */
    long weight, retry_after;
} kl_http_t;

static size_t kl_header(char *p, size_t size, size_t n, void *ud)
{
    kl_http_t *h = ud;
    size_t len = size * n;
    if (len > 22 && strncasecmp(p, "X-MBX-USED-WEIGHT-1M:", 21) == 0) h->weight = atol(p + 21);
    if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0) h->retry_after = atol(p + 12);
    return len;
}

/* One page: the HTTP status (0: no answer, err says why). */
static long kl_get(CURL *c, const char *url, kl_http_t *h, char *err, size_t errlen)
{
    long code = 0;
    h->body.len = 0, h->body.over = 0, h->body.max = 8 << 20, h->weight = -1, h->retry_after = 0;
    if (h->body.buf) h->body.buf[0] = 0;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, httpc_body_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &h->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, kl_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 15000L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "qtctl-klines");
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) return snprintf(err, errlen, "%s", curl_easy_strerror(rc)), 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    return code;
}

/* The exchange's error text of a refused page. */
static void kl_refusal(const kl_http_t *h, long code, char *err, size_t errlen)
{
    json_t *j = h->body.buf ? json_loads(h->body.buf, 0, NULL) : NULL;
    const char *msg = json_string_value(json_object_get(j, "msg"));
    if (msg) snprintf(err, errlen, "HTTP %ld, code %lld: %.200s", code, (long long)json_integer_value(json_object_get(j, "code")), msg);
    else snprintf(err, errlen, "HTTP %ld", code);
    json_decref(j);
}

/* A reply's bars as CSV lines, each checked as the replay checks it and
 * after *last, appended to f; how many, or -1 with err. */
static long kl_page(const char *text, FILE *f, int64_t iv, int64_t from, int64_t to, int64_t *last, char *err, size_t errlen)
{
    json_error_t je;
    json_t *a = json_loads(text, 0, &je), *k;
    size_t i;
    long n = 0;
    if (!json_is_array(a)) return json_decref(a), snprintf(err, errlen, "the reply is not a JSON array of klines"), -1;
    json_array_foreach(a, i, k) {
        char line[600], why[200];
        int ok = json_is_array(k) && json_array_size(k) >= 11 && json_is_integer(json_array_get(k, 0)) &&
                 json_is_integer(json_array_get(k, 6)) && json_is_integer(json_array_get(k, 8));
        for (int f2 = 1; ok && f2 <= 10; f2++)
            if (f2 != 6 && f2 != 8 && !json_is_string(json_array_get(k, (size_t)f2))) ok = 0;
        if (!ok) return json_decref(a), snprintf(err, errlen, "kline %zu is not [open_time, \"open\", ... 11 fields]", i), -1;
        int64_t ot = json_integer_value(json_array_get(k, 0)), ct = json_integer_value(json_array_get(k, 6));
        snprintf(line, sizeof line, "%lld,%s,%s,%s,%s,%s,%lld,%s,%lld,%s,%s,0\n", (long long)ot,
                 json_string_value(json_array_get(k, 1)), json_string_value(json_array_get(k, 2)),
                 json_string_value(json_array_get(k, 3)), json_string_value(json_array_get(k, 4)),
                 json_string_value(json_array_get(k, 5)), (long long)ct, json_string_value(json_array_get(k, 7)),
                 (long long)json_integer_value(json_array_get(k, 8)), json_string_value(json_array_get(k, 9)),
                 json_string_value(json_array_get(k, 10)));
        kline_t b;
        if (kline_parse_line(line, &b, why, sizeof why) != 0)
            return json_decref(a), snprintf(err, errlen, "kline %zu (open_time %lld): %s", i, (long long)ot, why), -1;
        if (ot < from || ot >= to || ot <= *last || (iv && (ot % iv != 0 || ct != ot + iv - 1)))
            return json_decref(a),
                   snprintf(err, errlen, "kline %zu: open_time %lld is out of order, outside the range asked or not on "
                            "the interval", i, (long long)ot), -1;
        if (fputs(line, f) < 0) return json_decref(a), snprintf(err, errlen, "write: %s", strerror(errno)), -1;
        *last = ot, n++;
    }
    json_decref(a);
    return n;
}

static void kl_progress(int64_t from, int64_t to, int64_t last, int64_t iv, long bars, int done)
{
    double f = last && to > from ? fmin(1, (double)(last + iv - from) / (double)(to - from)) : 0;
    if (!isatty(2) && !done) return;
    char bar[31];
    int w = (int)(f * 30);
    for (int i = 0; i < 30; i++) bar[i] = i < w ? '#' : '.';
    bar[30] = 0;
    fprintf(stderr, "\r[%s] %3d%% %ld bars%s", bar, (int)(f * 100), bars, done ? "\n" : "");
}

static void kl_sleep(long s)
{
    struct timespec ts = {s, 0};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) continue;
}

static int kl_fetch(int argc, char **argv)
{
    const char *pos[4] = {NULL, NULL, NULL, NULL}, *out = NULL, *base = getenv("QT_BINANCE_BASE_URL");
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--base-url") && i + 1 < argc) base = argv[++i];
        else if (argv[i][0] == '-' || n == 4) return fprintf(stderr, "qtctl klines fetch: unexpected '%s'\n", argv[i]), 2;
        else pos[n++] = argv[i];
    }
    int64_t from, to, iv = n == 4 ? kline_interval_ms(pos[1]) : 0;
    if (n != 4) return fputs("usage: qtctl klines fetch SYMBOL INTERVAL FROM TO [--out FILE] [--base-url URL]\n", stderr), 2;
    if (!kl_symbol_ok(pos[0])) return fprintf(stderr, "qtctl klines fetch: '%s' is not a symbol (BTCUSDT)\n", pos[0]), 2;
    if (!iv) return fprintf(stderr, "qtctl klines fetch: '%s' is not an interval (1m, 5m, 1h, 1d, ...)\n", pos[1]), 2;
    if (kl_time(pos[2], &from) < 0 || kl_time(pos[3], &to) < 0)
        return fprintf(stderr, "qtctl klines fetch: FROM and TO are dates (2024-05-01), UTC times (2024-05-01T12:00Z) "
                               "or epoch ms\n"), 2;
    if (to <= from) return fprintf(stderr, "qtctl klines fetch: TO must be after FROM\n"), 2;
    if (!base || !*base) base = "https://fapi.binance.com";
    if (strncmp(base, "https://", 8) && strncmp(base, "http://127.0.0.1", 16) && strncmp(base, "http://localhost", 16))
        return fprintf(stderr, "qtctl klines fetch: the base URL must be https:// (http:// only for a local test)\n"), 2;
    char name[160], err[600] = "", url[700];
    if (!out) snprintf(name, sizeof name, "%s-%s-%s-%s.csv", pos[0], pos[1], pos[2], pos[3]), out = name;
    int64_t last;
    long bars, limit = 2000;
    if (getenv("QT_KLINES_WEIGHT_LIMIT")) limit = atol(getenv("QT_KLINES_WEIGHT_LIMIT"));
    if (kl_resume(out, &last, &bars, err, sizeof err) < 0) return fprintf(stderr, "qtctl klines fetch: %s\n", err), 1;
    if (bars) fprintf(stderr, "qtctl klines fetch: %s holds %ld bars: resuming after %lld\n", out, bars, (long long)last);
    FILE *f = fopen(out, "a");
    if (!f) return fprintf(stderr, "qtctl klines fetch: %s: %s\n", out, strerror(errno)), 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *c = curl_easy_init();
    kl_http_t h = {0};
    int rc = 0, tries = 0;
    long before = bars;
    while (c) {
        int64_t start = last ? last + iv : (from + iv - 1) / iv * iv;
        if (start >= to) break;
        snprintf(url, sizeof url, "%s/fapi/v1/klines?symbol=%s&interval=%s&startTime=%lld&endTime=%lld&limit=%d", base,
                 pos[0], pos[1], (long long)start, (long long)(to - 1), KL_PAGE);
        long code = kl_get(c, url, &h, err, sizeof err);
        if (code == 429 || code == 418 || code == 0 || code >= 500) { /* wait and ask again */
            long wait = h.retry_after > 0 ? h.retry_after : code == 418 ? 60 : 1L << (tries < 5 ? tries : 5);
            if (code) kl_refusal(&h, code, err, sizeof err);
            if (++tries > KL_TRIES || wait > 600) {
                fprintf(stderr, "\nqtctl klines fetch: gave up at startTime=%lld after %d tries: %s (run it again to resume)\n",
                        (long long)start, tries, err);
                rc = 1;
                break;
            }
            fprintf(stderr, "\nqtctl klines fetch: %s; waiting %ld s\n", err, wait);
            kl_sleep(wait);
            continue;
        }
        if (code != 200) {
            kl_refusal(&h, code, err, sizeof err);
            fprintf(stderr, "\nqtctl klines fetch: the exchange refused startTime=%lld: %s\n", (long long)start, err);
            rc = 1;
            break;
        }
        tries = 0;
        long got = kl_page(h.body.buf ? h.body.buf : "", f, iv, from, to, &last, err, sizeof err);
        if (got < 0) {
            fprintf(stderr, "\nqtctl klines fetch: a bad reply for startTime=%lld: %s (the bars before it are kept)\n",
                    (long long)start, err);
            rc = 1;
            break;
        }
        if (fflush(f) != 0) {
            fprintf(stderr, "\nqtctl klines fetch: %s: %s\n", out, strerror(errno));
            rc = 1;
            break;
        }
        bars += got;
        kl_progress(from, to, last, iv, bars, 0);
        if (got == 0) break; /* nothing more (the range reaches past the newest bar) */
        if (h.weight >= limit) { /* the minute's budget is spent: wait for the next minute */
            long wait = 61 - (long)(time(NULL) % 60);
            fprintf(stderr, "\nqtctl klines fetch: used weight %ld of the minute's %ld: waiting %ld s\n", h.weight, limit, wait);
            kl_sleep(wait);
        }
    }
    kl_progress(from, to, last, iv, bars, 1);
    free(h.body.buf);
    if (c) curl_easy_cleanup(c);
    curl_global_cleanup();
    if (fclose(f) != 0 && !rc) rc = 1, fprintf(stderr, "qtctl klines fetch: %s: %s\n", out, strerror(errno));
    printf("klines: %s: %ld bars (%ld new)%s\n", out, bars, bars - before, rc ? ", incomplete" : "");
    return rc;
}

/* ---------- synth ---------- */

static int kl_synth(int argc, char **argv)
{
    const char *sym = NULL, *ivs = "1m", *out = NULL, *start_s = "2024-05-01";
    long nbars = 0, seed = 7;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!v) return fprintf(stderr, "qtctl klines synth: %s needs a value\n", argv[i]), 2;
        if (!strcmp(argv[i], "--symbol")) sym = v;
        else if (!strcmp(argv[i], "--interval")) ivs = v;
        else if (!strcmp(argv[i], "--out")) out = v;
        else if (!strcmp(argv[i], "--start")) start_s = v;
        else if (!strcmp(argv[i], "--bars") && ((nbars = strtol(v, &end, 10)), !*end)) {
        } else if (!strcmp(argv[i], "--seed") && ((seed = strtol(v, &end, 10)), !*end)) {
        } else return fprintf(stderr, "qtctl klines synth: unexpected '%s %s'\n", argv[i], v), 2;
        i++;
    }
    int64_t iv = kline_interval_ms(ivs), t;
    if (!sym || !out || nbars < 1)
        return fputs("usage: qtctl klines synth --symbol S --interval I --bars N --out FILE [--seed N] [--start FROM]\n", stderr), 2;
    if (!kl_symbol_ok(sym)) return fprintf(stderr, "qtctl klines synth: '%s' is not a symbol (BTCUSDT)\n", sym), 2;
    if (!iv || iv % 60000 || iv > 7 * 86400000LL)
        return fprintf(stderr, "qtctl klines synth: '%s' is not an interval of minutes to a week (1m .. 1w)\n", ivs), 2;
    if (nbars > 10000000) return fprintf(stderr, "qtctl klines synth: --bars at most 10000000\n"), 2;
    if (seed < 0) return fprintf(stderr, "qtctl klines synth: --seed must be 0 or more\n"), 2;
    if (kl_time(start_s, &t) < 0) return fprintf(stderr, "qtctl klines synth: --start is a date or UTC time\n"), 2;
    FILE *f = fopen(out, "w");
    if (!f) return fprintf(stderr, "qtctl klines synth: %s: %s\n", out, strerror(errno)), 1;
    synth_sym_t s;
    synth_sym_init(&s, sym, seed, 0);
    t = t / iv * iv;
    int per = (int)(iv / 60000);
    for (long i = 0; i < nbars; i++, t += iv) { /* one bar of the interval from its minutes */
        kline_t b = {0}, m;
        for (int k = 0; k < per; k++) {
            synth_bar(&s, t + k * 60000LL, &m);
            m.quote_volume = m.volume * m.close, m.taker_buy_volume = m.volume / 2;
            if (!k) b = m;
            else {
                b.high = fmax(b.high, m.high), b.low = fmin(b.low, m.low), b.close = m.close;
                b.volume += m.volume, b.quote_volume += m.quote_volume, b.taker_buy_volume += m.taker_buy_volume;
                b.trades += m.trades;
            }
        }
        fprintf(f, "%lld,%.8g,%.8g,%.8g,%.8g,%.8g,%lld,%.8g,%ld,%.8g,%.8g,0\n", (long long)t, b.open, b.high, b.low, b.close,
                b.volume, (long long)(t + iv - 1), b.quote_volume, b.trades, b.taker_buy_volume,
                b.quote_volume / 2);
    }
    if (fclose(f) != 0) return fprintf(stderr, "qtctl klines synth: %s: %s\n", out, strerror(errno)), 1;
    printf("klines: %s: %ld synthetic %s bars of %s (seed %ld)\n", out, nbars, ivs, sym, seed);
    return 0;
}

int klines_main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "fetch")) return kl_fetch(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "synth")) return kl_synth(argc - 1, argv + 1);
    fputs("usage: qtctl klines fetch SYMBOL INTERVAL FROM TO [--out FILE] [--base-url URL]\n"
          "       qtctl klines synth --symbol S --interval I --bars N --out FILE [--seed N] [--start FROM]\n",
          stderr);
    return 2;
}
