/* test_kline — the kline CSV line parser: what it takes, what it refuses and
 * why, and (through the fuzz target tests/fuzz/fuzz_kline.c) that whatever
 * it takes is a bar the market.data.update schema takes too. */
#include "check.h"
#include "fuzz/replay.h"
#include "kline.h"

static kline_t k;
static char err[256];

static int parse(const char *line)
{
    memset(&k, 0, sizeof k);
    err[0] = '\0';
    return kline_parse_line(line, &k, err, sizeof err);
}

TEST(a_dump_row_in_ms_or_us_is_read)
{
    CHECK_EQ(parse("1704067200000,42283.58,42554.57,42261.02,42475.23,1271.68108,1704070799999,53957248.97,47134,"
                   "682.57408,28957416.82,0\n"), 0);
    CHECK_EQ(k.open_time, 1704067200000LL);
    CHECK_EQ(k.close_time, 1704070799999LL);
    CHECK_EQ(k.trades, 47134);
    CHECK_NEAR(k.taker_buy_volume, 682.57408, 1e-9);
    CHECK_EQ(parse("1735689600000000,93576,93610.93,93537.5,93610.93,8.2,1735689659999999,768978.07,1277,4.9,1,0\r\n"), 0);
    CHECK_EQ(k.open_time, 1735689600000LL); /* µs, as newer dumps have them */
    CHECK_EQ(k.close_time, 1735689659999LL);
    CHECK_EQ(parse("1704067200000,100,101,99,100.5,3"), 0); /* six columns: the rest is optional */
    CHECK_EQ(k.close_time, 0);
    CHECK_EQ(parse("open_time,open,high,low,close,volume"), 1);
}

TEST(bad_rows_are_refused_with_the_reason)
{
    static const struct { const char *line, *why; } bad[] = {
        {"1704067200000,abc,101,99,100,1", "open 'abc' is not a number"},
        {"1704067200000,100,99,101,100,1", "bar is inconsistent"},
        {"1704067200000,100,101", "3 columns"},
        {"0,100,101,99,100,1", "open_time must be"},
        {"1e300,100,101,99,100,1", "open_time must be"},  /* was a cast out of int64_t's range */
        {"1704067200000.5,100,101,99,100,1", "open_time must be"},
        {"1704067200000,100,101,99,100,1,1e300", "close_time must be"},
        {"1704067200000,100,101,99,100,1,-5", "close_time must be"},
        {"1704067200000,100,101,99,100,1,1704067199999", "close_time before open_time"},
        {"1704067200000,100,101,99,100,-1", "volume not negative"},
        {"1704067200000,100,101,99,100,1,1704067259999,-300", "quote_volume"},
        {"1704067200000,100,101,99,100,1,1704067259999,300,-10", "count must be"}, /* the schema refuses it: it stalled the feed */
        {"1704067200000,100,101,99,100,1,1704067259999,300,1e300", "count must be"}, /* was a cast out of long's range */
        {"1704067200000,100,101,99,100,1,1704067259999,300,2.5", "count must be"},
        {"1704067200000,100,101,99,100,1,1704067259999,300,10,-1", "taker_buy_volume"},
        {"1704067200000,nan,101,99,100,1", "is not a number"},
        {"1704067200000,100,inf,99,100,1", "is not a number"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ(parse(bad[i].line), -1);
        CHECK_CONTAINS(err, bad[i].why);
    }
    char longline[1100];
    memset(longline, '1', sizeof longline - 1);
    longline[sizeof longline - 1] = '\0';
    CHECK_EQ(parse(longline), -1);
    CHECK_CONTAINS(err, "line longer than");
}

TEST(what_the_parser_takes_the_schema_takes)
{
    CHECK(fuzz_replay("tests/fuzz/corpus-kline", 5000) >= 4); /* run from the repository's root */
}

CHECK_MAIN()
