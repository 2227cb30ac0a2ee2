/* synth.c — seeded regime-switching synthetic market (see synth.h). */
#include "synth.h"

#include <math.h>
#include <stdio.h>
#include <string.h>


static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double urand(uint64_t *s) { return ((double)(splitmix(s) >> 11) + 0.5) / 9007199254740992.0; }

static double nrand(uint64_t *s) { return sqrt(-2.0 * log(urand(s))) * cos(6.283185307179586 * urand(s)); }

/* One 1-minute bar of a symbol: 4 sub-steps under the current regime. */
void synth_bar(synth_sym_t *s, int64_t open_time, kline_t *b)
{
    static const double drift[] = {0.0004, -0.0004, 0.0, 0.0}, vol[] = {0.0010, 0.0010, 0.0008, 0.0040};
    if (urand(&s->rng) < 1.0 / 240) { /* regime switch, about every 4 hours */
        s->regime = (int)(urand(&s->rng) * 4) % 4;
        s->anchor = s->price;
    }
    double p = s->price, hi = p, lo = p;
    for (int k = 0; k < 4; k++) {
        double mr = s->regime == 2 ? 0.05 * log(s->anchor / p) / 4 : 0;
        p *= exp(drift[s->regime] / 4 + mr + vol[s->regime] / 2 * nrand(&s->rng));
        hi = fmax(hi, p), lo = fmin(lo, p);
    }
    memset(b, 0, sizeof *b);
    snprintf(b->symbol, sizeof b->symbol, "%s", s->symbol);
    snprintf(b->interval, sizeof b->interval, "1m");
    b->open_time = open_time;
    b->close_time = open_time + 59999;
    b->open = round(s->price * 1e4) / 1e4, b->close = round(p * 1e4) / 1e4;
    b->high = fmax(round(hi * 1e4) / 1e4, fmax(b->open, b->close));
    b->low = fmin(round(lo * 1e4) / 1e4, fmin(b->open, b->close));
    b->volume = round(exp(2.0 + 0.5 * nrand(&s->rng)) * 1000) / 1000;
    b->trades = (long)(b->volume * 10);
    s->price = p;
    s->made++;
}

void synth_sym_init(synth_sym_t *s, const char *symbol, long seed, int index)
{
    memset(s, 0, sizeof *s);
    snprintf(s->symbol, sizeof s->symbol, "%s", symbol);
    s->rng = (uint64_t)seed * 1000003ULL + (uint64_t)index;
    s->price = s->anchor = strncmp(symbol, "BTC", 3) == 0 ? 42000 : strncmp(symbol, "ETH", 3) == 0 ? 2500 : 100;
    s->regime = index % 3;
}
