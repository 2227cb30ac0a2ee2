/* Unit tests: numbers as the shortest text that reads back exactly. */
#include "check.h"
#include "numfmt.h"

#include <float.h>
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
