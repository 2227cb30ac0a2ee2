/* Unit tests: a checkpoint's text (ckpt.h) — round trip, and every way a
 * stored one can be wrong refused with its reason, never half-read. */
#include "check.h"
#include "ckpt.h"

#include <stdlib.h>
#include <string.h>

static const char *const keys[] = {"qt:market", "qt:feedback", "qt:policy"};

static char *sample(size_t *len)
{
    const char *ids[] = {"1704067200000-3", "0", "17-0"};
    static const char state[] = {'a', '\0', '\n', 'b', 'c'}; /* binary: a NUL and a newline inside */
    return ckpt_encode("svc/1/8", 1764547200000LL, 3, keys, ids, state, sizeof state, len);
}

TEST(a_checkpoint_reads_back_what_was_written)
{
    size_t len, slen;
    char *t = sample(&len), ids[3][48], err[256] = "";
    const char *state;
    long long saved;
    CHECK(t != NULL);
    CHECK_EQ(ckpt_decode(t, len, "svc/1/8", 3, keys, ids, &saved, &state, &slen, err, sizeof err), 0);
    CHECK_EQ(saved, 1764547200000LL);
    CHECK_STR(ids[0], "1704067200000-3");
    CHECK_STR(ids[1], "0");
    CHECK_STR(ids[2], "17-0");
    CHECK_EQ((long long)slen, 5);
    CHECK(memcmp(state, "a\0\nbc", 5) == 0);
    /* a stream the checkpoint does not name (subscribed since): from its start */
    const char *more[] = {"qt:market", "qt:new"};
    CHECK_EQ(ckpt_decode(t, len, "svc/1/8", 2, more, ids, &saved, &state, &slen, err, sizeof err), 0);
    CHECK_STR(ids[0], "1704067200000-3");
    CHECK_STR(ids[1], "0");
    free(t);
}

TEST(a_wrong_or_damaged_checkpoint_is_refused_with_its_reason)
{
    size_t len, slen;
    char *t = sample(&len), ids[3][48], err[256] = "";
    const char *state;
    long long saved;
    CHECK_EQ(ckpt_decode(t, len, "svc/2/8", 3, keys, ids, &saved, &state, &slen, err, sizeof err), -1);
    CHECK_CONTAINS(err, "format 'svc/1/8', this build keeps 'svc/2/8'");
    CHECK_EQ(ckpt_decode(t, len - 1, "svc/1/8", 3, keys, ids, &saved, &state, &slen, err, sizeof err), -1);
    CHECK_CONTAINS(err, "state is 4 bytes");
    for (size_t cut = 0; cut < len - 5; cut++) /* cut anywhere in the header */
        CHECK_EQ(ckpt_decode(t, cut, "svc/1/8", 3, keys, ids, &saved, &state, &slen, err, sizeof err), -1);
    CHECK_EQ(ckpt_decode("{\"x\":1}", 7, "svc/1/8", 3, keys, ids, &saved, &state, &slen, err, sizeof err), -1);
    CHECK_STR(err, "not a checkpoint");
    char bad[] = "qtckpt 1\nformat svc/1/8\nsaved 1\nstream qt:market\nstate 0\n";
    CHECK_EQ(ckpt_decode(bad, strlen(bad), "svc/1/8", 3, keys, ids, &saved, &state, &slen, err, sizeof err), -1);
    CHECK_CONTAINS(err, "is malformed");
    free(t);
}

TEST(entry_ids_compare_as_numbers)
{
    CHECK_EQ(ckpt_id_cmp("9-0", "10-0"), -1);
    CHECK_EQ(ckpt_id_cmp("10-2", "10-10"), -1);
    CHECK_EQ(ckpt_id_cmp("10-2", "10-2"), 0);
    CHECK_EQ(ckpt_id_cmp("1704067200001-0", "1704067200000-99"), 1);
    CHECK_EQ(ckpt_id_cmp("0", "1-0"), -1);
    CHECK_EQ(ckpt_id_cmp("5", "5-0"), 0);
}

CHECK_MAIN()
