/* numfmt.c — the shortest text that reads back exactly (see numfmt.h). */
#include "numfmt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int numfmt_digits(double v)
{
    char buf[40];
    int p = 1;
    if (!isfinite(v)) return 17;
    for (; p < 17; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, v);
        if (strtod(buf, NULL) == v) break;
    }
    /* %g writes an exponent once the number has more integer digits than
     * the precision: 10 at one digit is "1e+01"; up to 17 digits, enough
     * precision to write them out */
    int ints = v != 0 ? (int)floor(log10(fabs(v))) + 1 : 1;
    return ints > p && ints <= 17 ? ints : p;
}

int numfmt_shortest(char *buf, size_t len, double v) { return snprintf(buf, len, "%.*g", numfmt_digits(v), v); }

static int numfmt_json_digits(const json_t *j, int depth)
{
    int p = 1;
    const char *k;
    json_t *v;
    size_t i;
    if (depth > 64) return 17; /* deeper than anything we write: no shortcut */
    if (json_is_real(j)) return numfmt_digits(json_real_value(j));
    if (json_is_object(j)) json_object_foreach((json_t *)j, k, v) {
            int q = numfmt_json_digits(v, depth + 1);
            if (q > p) p = q;
        }
    if (json_is_array(j)) json_array_foreach(j, i, v) {
            int q = numfmt_json_digits(v, depth + 1);
            if (q > p) p = q;
        }
    return p;
}

size_t numfmt_json_flags(const json_t *j, size_t flags)
{
    return (flags & ~(size_t)JSON_REAL_PRECISION(31)) | JSON_REAL_PRECISION(numfmt_json_digits(j, 0));
}
