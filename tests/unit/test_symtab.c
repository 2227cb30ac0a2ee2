/* Unit tests: the per-symbol slot finder. */
#include "check.h"
#include "symtab.h"

typedef struct slot {
    char symbol[8];
    int value;
} slot_t;

TEST(finds_adds_and_refuses)
{
    slot_t s[2];
    int n = 0, created = -1;
    memset(s, 0x5a, sizeof s); /* a fresh slot must come back zeroed */
    slot_t *a = SYMTAB_SLOT(s, &n, 2, "BTCUSDT", &created);
    CHECK(a == &s[0]);
    CHECK_EQ(created, 1);
    CHECK_STR(a->symbol, "BTCUSDT");
    CHECK_EQ(a->value, 0);
    a->value = 7;
    CHECK(SYMTAB_SLOT(s, &n, 2, "BTCUSDT", &created) == a); /* found, kept */
    CHECK_EQ(created, 0);
    CHECK_EQ(a->value, 7);
    CHECK(SYMTAB_SLOT(s, &n, 2, "ETHUSDT", NULL) == &s[1]);
    CHECK_EQ(n, 2);
    CHECK(SYMTAB_SLOT(s, &n, 2, "SOLUSDT", &created) == NULL); /* full */
    CHECK_EQ(created, 0);
    CHECK_EQ(n, 2);
    n = 0;
    CHECK(SYMTAB_SLOT(s, &n, 2, "BTCUSDTX", NULL) == NULL); /* 8 bytes do not hold 8 characters and the end */
    CHECK(SYMTAB_SLOT(s, &n, 2, "", NULL) == NULL);
    CHECK(SYMTAB_SLOT(s, &n, 2, NULL, NULL) == NULL);
    CHECK_EQ(n, 0);
}

TEST(names_read_back_must_end_inside_their_field)
{
    slot_t s[2];
    memset(s, 0, sizeof s);
    memcpy(s[0].symbol, "BTCUSDT", 8);
    memcpy(s[1].symbol, "ETHUSDT", 8);
    CHECK_EQ(SYMTAB_NAMES_OK(s, s, 2), 1);
    CHECK_EQ(SYMTAB_NAMES_OK(s, s, 0), 1);
    memcpy(s[1].symbol, "ETHUSDTX", 8); /* no end: a damaged checkpoint */
    CHECK_EQ(SYMTAB_NAMES_OK(s, s, 2), 0);
    CHECK_EQ(SYMTAB_NAMES_OK(s, s, 1), 1);
}

CHECK_MAIN()
