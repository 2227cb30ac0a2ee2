/* Unit tests: numbers as the shortest text that reads back exactly. */
#include "check.h"
#include "numfmt.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TEST(the_shortest_text_reads_back)
{
    char b[40];
    static const double v[] = {0.7, 5e-05, 0.1, 0.1 + 0.2, 1, 101.05, -2.5e-300, DBL_MAX, DBL_MIN, 1e22, 0, 10, 2500, 1e16, -300};
    static const char *const want[] = {"0.7", "5e-05", "0.1", "0.30000000000000004", "1", "101.05", "-2.5e-300",
                                       "1.7976931348623157e+308", "2.2250738585072014e-308", "1e+22", "0", "10", "2500",
                                       "10000000000000000", "-300"};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        numfmt_shortest(b, sizeof b, v[i]);
        CHECK_STR(b, want[i]);
        CHECK(strtod(b, NULL) == v[i]);
    }
    for (int k = 0; k < 100000; k++) { /* and any double */
        double x = (double)rand() / RAND_MAX * 1e6 - 5e5;
        numfmt_shortest(b, sizeof b, x);
        CHECK(strtod(b, NULL) == x);
    }
}

/* The digits as the first version found them: the fewest p of 1..17 whose
 * %.*g reads back, then enough for the integer digits. */
static int slow_digits(double v)
{
    char buf[40];
    int p = 1;
    for (; p < 17; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, v);
        if (strtod(buf, NULL) == v) break;
    }
    int ints = v != 0 ? (int)floor(log10(fabs(v))) + 1 : 1;
    return ints > p && ints <= 17 ? ints : p;
}

/* The fast ways (few decimals without printf; else 15, 16 or 17 digits,
 * then the digits %.15g kept) write the same text as trying every
 * precision from 1. */
TEST(the_fast_digits_equal_the_exhaustive_search)
{
    char a[40], b[40];
    static const double v[] = {0.7, 1e6, 1.5e-5, 123456, 1e20, 1.2345e16, 1e15, 999999999999999, 100.7, 42005.1,
                               0.000123, 1e-300, 5e-324, 120, 1200000, 0.30000000000000004, 64010.12, 1e16, 10, 0};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) { /* the same text (999999999999999: 15 digits or 16, one text) */
        snprintf(a, sizeof a, "%.*g", numfmt_digits(v[i]), v[i]);
        snprintf(b, sizeof b, "%.*g", slow_digits(v[i]), v[i]);
        CHECK_STR(a, b);
        numfmt_shortest(a, sizeof a, v[i]);
        CHECK_STR(a, b);
    }
    srand(7);
    for (int k = 0; k < 200000; k++) {
        double x;
        switch (k % 4) {
        case 0: x = (double)rand() / RAND_MAX * 1e6 - 5e5; break;               /* computed: 16-17 digits */
        case 1: x = (double)(rand() % 10000000) / 100.0; break;               /* a price of 2 decimals */
        case 2: x = ldexp((double)rand(), rand() % 200 - 100); break;          /* any scale */
        default: x = (double)(rand() % 1000) * pow(10, rand() % 40 - 20); break; /* few digits, any exponent */
        }
        numfmt_shortest(a, sizeof a, x);
        snprintf(b, sizeof b, "%.*g", slow_digits(x), x);
        if (strcmp(a, b) != 0) { /* the text, the fast path's included */
            CHECK_FAIL_AT("%.17g: written %s, %%g writes %s", x, a, b);
            break;
        }
        snprintf(a, sizeof a, "%.*g", numfmt_digits(x), x);
        if (strcmp(a, b) != 0) {
            CHECK_FAIL_AT("%.17g: fast digits write %s, exhaustive %s", x, a, b);
            break;
        }
    }
}

/* The event stream's formatter: always exact; a price as short as it can be. */
TEST(the_exact_writer_reads_back_and_keeps_prices_short)
{
    char a[40], b[40];
    srand(11);
    for (int k = 0; k < 100000; k++) {
        double x = k % 2 ? (double)rand() / RAND_MAX * 1e6 - 5e5 : (double)(rand() % 100000000) / 10000.0;
        numfmt_exact(a, sizeof a, x);
        if (strtod(a, NULL) != x) {
            CHECK_FAIL_AT("%.17g written %s", x, a);
            break;
        }
        if (k % 2 == 0) {
            numfmt_shortest(b, sizeof b, x);
            CHECK_STR(a, b);
        }
    }
    numfmt_exact(a, sizeof a, 42005.75);
    CHECK_STR(a, "42005.75");
    numfmt_exact(a, sizeof a, 0.1 + 0.2);
    CHECK_STR(a, "0.30000000000000004");
    json_t *j = json_pack("{s:[f,f],s:f}", "p", 0.25, 0.5, "c", 0.7);
    char *s = json_dumps(j, numfmt_json_flags_exact(j, JSON_COMPACT | JSON_SORT_KEYS));
    CHECK_STR(s, "{\"c\":0.7,\"p\":[0.25,0.5]}");
    free(s);
    json_object_set_new(j, "d", json_real(1.0 / 3));
    s = json_dumps(j, numfmt_json_flags_exact(j, JSON_COMPACT | JSON_SORT_KEYS));
    json_t *back = json_loads(s, 0, NULL);
    CHECK(json_real_value(json_object_get(back, "d")) == 1.0 / 3);
    CHECK(json_real_value(json_object_get(back, "c")) == 0.7);
    free(s), json_decref(back), json_decref(j);
}

TEST(json_is_written_exact_and_short)
{
    json_t *j = json_pack("{s:f, s:[f, f], s:i}", "a", 0.7, "b", 0.6, 2.5, "c", 3);
    char *s = json_dumps(j, numfmt_json_flags(j, JSON_COMPACT | JSON_SORT_KEYS));
    CHECK_STR(s, "{\"a\":0.7,\"b\":[0.6,2.5],\"c\":3}");
    free(s);
    json_object_set_new(j, "d", json_real(0.1 + 0.2)); /* needs 17 digits: all then get 17, still exact */
    s = json_dumps(j, numfmt_json_flags(j, JSON_COMPACT | JSON_SORT_KEYS));
    json_t *back = json_loads(s, 0, NULL);
    CHECK(json_real_value(json_object_get(back, "d")) == 0.1 + 0.2);
    CHECK(json_real_value(json_object_get(back, "a")) == 0.7);
    free(s);
    json_decref(back);
    json_decref(j);
}

CHECK_MAIN()
