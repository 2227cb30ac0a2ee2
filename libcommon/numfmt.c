/* numfmt.c — the shortest text that reads back exactly (see numfmt.h). */
#include "numfmt.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A number of few decimals (a price, 0.6, 42005.75) without printf: the
 * fewest k with an integer m where m / 10^k, both exact doubles, divides
 * back to v (IEEE division rounds the quotient as strtod rounds the text,
 * so the text reads back as v). Below 2^52 no other m of k decimals does,
 * so it is the text %g writes with numfmt_digits: fixed notation, as %g
 * writes every number from 1e-4 to 1e15. The length, or 0 when there is no
 * such m (a computed number of 16 or 17 digits: printf's way then). */
static int numfmt_fast(char *buf, size_t len, double v)
{
    static const double p10[16] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
    double a = fabs(v);
    if (!(a >= 1e-4 && a < 1e15) || len < 40) return 0;
    for (int k = 0; k < 16; k++) {
        double m = nearbyint(a * p10[k]);
        if (m >= 4503599627370496.0) return 0; /* 2^52 */
        if (m / p10[k] != a && (m += 1) / p10[k] != a && (m -= 2) / p10[k] != a) continue;
        char d[24];
        int n = 0, o = 0;
        for (unsigned long long u = (unsigned long long)m; u || n == 0; u /= 10) d[n++] = (char)('0' + u % 10);
        while (n < k + 1) d[n++] = '0'; /* 0.000123: the leading zeros */
        if (v < 0) buf[o++] = '-';
        for (int i = n - 1; i >= k; i--) buf[o++] = d[i];
        if (k > 0) buf[o++] = '.';
        for (int i = k - 1; i >= 0; i--) buf[o++] = d[i];
        buf[o] = '\0';
        return o;
    }
    return 0;
}

/* The digits of a number of few decimals (numfmt_fast), 0 for another. */
static int numfmt_fast_digits(double v)
{
    char buf[40];
    int n = 0;
    if (!numfmt_fast(buf, sizeof buf, v)) return 0;
    for (const char *c = buf; *c; c++) n += *c >= '0' && *c <= '9' && (n > 0 || *c != '0');
    return n > 0 ? n : 1;
}

int numfmt_digits(double v)
{
    char buf[40];
    int p = 15;
    if (!isfinite(v)) return 17;
    int fast = numfmt_fast_digits(v); /* its significant digits, the leading zeros of 0.000123 not counted */
    if (fast) return fast;
    if (v != 0 && fabs(v) < DBL_MIN) p = 1; /* a subnormal holds fewer digits: search them all */
    /* Any decimal of up to 15 significant digits survives a trip through a
     * double (DBL_DIG), and %g drops trailing zeros: when the shortest text
     * has 15 digits or fewer, %.15g writes exactly it. Otherwise 16 or 17. */
    for (; p < 17; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, v);
        if (strtod(buf, NULL) == v) break;
    }
    if (p == 15 && !(v != 0 && fabs(v) < DBL_MIN)) { /* fewer digits may do; the notation is the same (below) */
        const char *c = buf, *e;
        int digits = 0, lead = 1;
        if (*c == '-') c++;
        for (e = c; *e && *e != 'e'; e++) {
            if (*e < '0' || *e > '9') continue;
            if (lead && *e == '0') continue; /* 0.000123: leading zeros are not significant */
            lead = 0;
            digits++;
        }
        if (!*e) { /* fixed notation: trailing zeros of an integer part are not significant either */
            const char *dot = strchr(c, '.');
            if (!dot)
                for (const char *z = e - 1; z > c && *z == '0' && digits > 1; z--) digits--;
        }
        p = digits > 0 ? digits : 1;
    }
    /* %g writes an exponent once the number has more integer digits than
     * the precision: 10 at one digit is "1e+01"; up to 17 digits, enough
     * precision to write them out */
    int ints = v != 0 ? (int)floor(log10(fabs(v))) + 1 : 1;
    return ints > p && ints <= 17 ? ints : p;
}

int numfmt_shortest(char *buf, size_t len, double v)
{
    int n = numfmt_fast(buf, len, v);
    return n ? n : snprintf(buf, len, "%.*g", numfmt_digits(v), v);
}

/* exact: 17 as soon as one real has more than a few decimals, rather than
 * searching its digits. */
static int numfmt_json_digits(const json_t *j, int depth, int exact)
{
    int p = 1;
    const char *k;
    json_t *v;
    size_t i;
    if (depth > 64) return 17; /* deeper than anything we write: no shortcut */
    if (json_is_real(j)) {
        int q = exact ? numfmt_fast_digits(json_real_value(j)) : numfmt_digits(json_real_value(j));
        return q ? q : 17;
    }
    if (json_is_object(j)) json_object_foreach((json_t *)j, k, v) {
            int q = numfmt_json_digits(v, depth + 1, exact);
            if (q > p) p = q;
            if (p == 17) return p;
        }
    if (json_is_array(j)) json_array_foreach(j, i, v) {
            int q = numfmt_json_digits(v, depth + 1, exact);
            if (q > p) p = q;
            if (p == 17) return p;
        }
    return p;
}

size_t numfmt_json_flags(const json_t *j, size_t flags)
{
    return (flags & ~(size_t)JSON_REAL_PRECISION(31)) | JSON_REAL_PRECISION(numfmt_json_digits(j, 0, 0));
}

size_t numfmt_json_flags_exact(const json_t *j, size_t flags)
{
    return (flags & ~(size_t)JSON_REAL_PRECISION(31)) | JSON_REAL_PRECISION(numfmt_json_digits(j, 0, 1));
}

int numfmt_exact(char *buf, size_t len, double v)
{
    int n = numfmt_fast(buf, len, v);
    return n ? n : snprintf(buf, len, "%.17g", v);
}
