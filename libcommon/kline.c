/* kline.c — one line of a Binance kline CSV (see kline.h). */
#include "kline.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static int feed_num(const char *s, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    while (*end == ' ' || *end == '\r' || *end == '\n') end++;
    if (errno || end == s || *end || !isfinite(d)) return -1;
    *out = d;
    return 0;
}

/* Split line on commas into at most max fields (modifies line). */
static int feed_split(char *line, char **f, int max)
{
    int n = 0;
    for (char *p = line; n < max;) {
        f[n++] = p;
        p = strchr(p, ',');
        if (!p) break;
        *p++ = '\0';
    }
    return n;
}

/* ms from ms or µs (anything past year 5000 in ms is µs); -1 unless t is a
 * whole, positive time below 1e17 (µs of year 5138), which also keeps the
 * conversion inside int64_t. */
static int64_t feed_ms(double t)
{
    if (!(t >= 1 && t < 1e17) || floor(t) != t) return -1;
    return (int64_t)(t > 1e14 ? t / 1000.0 : t);
}

int kline_parse_line(const char *line, kline_t *b, char *err, size_t errlen)
{
    char buf[1024], *f[16];
    double v[12] = {0};
    static const char *const names[] = {"open_time", "open", "high", "low", "close", "volume", "close_time",
                                        "quote_volume", "count", "taker_buy_volume"};
    if (strlen(line) >= sizeof buf) return snprintf(err, errlen, "line longer than %zu bytes", sizeof buf - 1), -1;
    snprintf(buf, sizeof buf, "%s", line);
    int n = feed_split(buf, f, 16);
    if (n >= 1 && isalpha((unsigned char)f[0][0])) return 1; /* header */
    if (n < 6) return snprintf(err, errlen, "%d columns, need at least 6 (open_time..volume)", n), -1;
    for (int i = 0; i < n && i < 10; i++)
        if (feed_num(f[i], &v[i]) < 0) return snprintf(err, errlen, "%s '%.32s' is not a number", names[i], f[i]), -1;
    b->open_time = feed_ms(v[0]);
    b->open = v[1], b->high = v[2], b->low = v[3], b->close = v[4], b->volume = v[5];
    b->close_time = n > 6 && v[6] != 0 ? feed_ms(v[6]) : 0;
    b->quote_volume = v[7], b->taker_buy_volume = v[9];
    if (b->open_time <= 0) return snprintf(err, errlen, "open_time must be a whole positive time in ms or µs"), -1;
    if (b->close_time < 0) return snprintf(err, errlen, "close_time must be a whole positive time in ms or µs"), -1;
    if (!(b->open > 0 && b->high > 0 && b->low > 0 && b->close > 0) || b->volume < 0)
        return snprintf(err, errlen, "prices must be positive and volume not negative"), -1;
    if (b->quote_volume < 0 || b->taker_buy_volume < 0)
        return snprintf(err, errlen, "quote_volume and taker_buy_volume must not be negative"), -1;
    if (!(v[8] >= 0 && v[8] <= 1e15) || floor(v[8]) != v[8])
        return snprintf(err, errlen, "count must be a whole number of trades, 0 to 1e15"), -1;
    b->trades = (long)v[8];
    if (b->low > b->high || b->open < b->low || b->open > b->high || b->close < b->low || b->close > b->high)
        return snprintf(err, errlen, "bar is inconsistent (need low <= open, close <= high)"), -1;
    if (b->close_time && b->close_time < b->open_time)
        return snprintf(err, errlen, "close_time before open_time"), -1;
    return 0;
}

const kline_interval_t kline_intervals[KLINE_INTERVALS] = {
    {"1s", 1000}, {"1m", 60000}, {"3m", 180000}, {"5m", 300000}, {"15m", 900000}, {"30m", 1800000},
    {"1h", 3600000}, {"2h", 7200000}, {"4h", 14400000}, {"6h", 21600000}, {"8h", 28800000},
    {"12h", 43200000}, {"1d", 86400000}};

int64_t kline_interval_ms(const char *name)
{
    if (!name) return 0;
    for (size_t i = 0; i < KLINE_INTERVALS; i++)
        if (strcmp(kline_intervals[i].name, name) == 0) return kline_intervals[i].ms;
    return 0;
}


/* Append k to *bars (growing it); -1 on OOM. */
static int kline_push(kline_t **bars, long *n, long *cap, const kline_t *k)
{
    if (*n == *cap) {
        long c = *cap ? *cap * 2 : 4096;
        kline_t *b = realloc(*bars, sizeof *b * (size_t)c);
        if (!b) return -1;
        *bars = b, *cap = c;
    }
    (*bars)[(*n)++] = *k;
    return 0;
}

kline_t *kline_load_csv(const char *path, long *n, long *bad, char *first_bad, size_t fblen, char *err, size_t errlen)
{
    char line[1100], why[200];
    long cap = 0, ln = 0;
    kline_t *bars = NULL;
    FILE *f = fopen(path, "r");
    *n = 0, *bad = 0;
    if (fblen) first_bad[0] = 0;
    if (!f) return snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno)), NULL;
    while (fgets(line, sizeof line, f)) {
        kline_t k;
        memset(&k, 0, sizeof k);
        int rc = kline_parse_line(line, &k, why, sizeof why);
        ln++;
        if (rc == 1 && ln == 1) continue;
        if (rc != 0) {
            if ((*bad)++ == 0 && fblen) snprintf(first_bad, fblen, "%s:%ld: %s", path, ln, rc == 1 ? "header line not first" : why);
            continue;
        }
        if (kline_push(&bars, n, &cap, &k) < 0) {
            snprintf(err, errlen, "%s: out of memory at line %ld", path, ln);
            free(bars);
            fclose(f);
            return NULL;
        }
    }
    fclose(f);
    if (!*n) snprintf(err, errlen, "%s: no bars", path), free(bars), bars = NULL;
    return bars;
}
