/* Unit tests: the recent-id set. */
#include "check.h"
#include "dedupe.h"

TEST(remembers_and_evicts_oldest)
{
    dedupe_t *d = dedupe_new(3);
    CHECK_EQ(dedupe_check(d, "a"), 0);
    CHECK_EQ(dedupe_check(d, "a"), 1);
    CHECK_EQ(dedupe_check(d, "b"), 0);
    CHECK_EQ(dedupe_check(d, "c"), 0);
    CHECK_EQ(dedupe_check(d, "d"), 0); /* evicts a */
    CHECK_EQ(dedupe_contains(d, "a"), 0);
    CHECK_EQ(dedupe_contains(d, "b"), 1);
    CHECK_EQ(dedupe_contains(d, "d"), 1);
    CHECK_EQ(dedupe_check(d, ""), 0); /* empty ids are never remembered */
    CHECK_EQ(dedupe_check(d, ""), 0);
    dedupe_free(d);
}

TEST(many_ids_exact_window)
{
    enum { CAP = 1000, N = 20000 };
    dedupe_t *d = dedupe_new(CAP);
    char id[32];
    int wrong = 0;
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "evt-%d", i);
        wrong += dedupe_check(d, id) != 0;
        if (i >= CAP) { /* exactly the last CAP ids are remembered */
            snprintf(id, sizeof id, "evt-%d", i - CAP);
            wrong += dedupe_contains(d, id) != 0;
            snprintf(id, sizeof id, "evt-%d", i - CAP + 1);
            wrong += dedupe_contains(d, id) != 1;
        }
    }
    CHECK_EQ(wrong, 0);
    dedupe_free(d);
}

CHECK_MAIN()
