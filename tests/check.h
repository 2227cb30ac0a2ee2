/* check.h — a tiny test framework: TEST(name) functions run in file order,
 * CHECK* record failures with file:line, and CHECK_MAIN prints one line per
 * test and "<prog>: N passed, N failed" at the end. Exit 1 on any failure. */
#ifndef QT_CHECK_H
#define QT_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*check_fn)(void);
typedef struct { const char *name; check_fn fn; } check_case_t;

static check_case_t check_cases[256];
static int check_ncases, check_failed_now;

#define TEST(name)                                                                 \
    static void name(void);                                                        \
    __attribute__((constructor)) static void check_reg_##name(void)                \
    {                                                                              \
        if (check_ncases < 256) check_cases[check_ncases++] = (check_case_t){#name, name}; \
    }                                                                              \
    static void name(void)

#define CHECK_FAIL_AT(...)                                                         \
    do {                                                                           \
        fprintf(stderr, "  FAIL %s:%d: ", __FILE__, __LINE__);                     \
        fprintf(stderr, __VA_ARGS__);                                              \
        fprintf(stderr, "\n");                                                     \
        check_failed_now = 1;                                                      \
    } while (0)

#define CHECK(cond)                                                                \
    do { if (!(cond)) CHECK_FAIL_AT("%s", #cond); } while (0)
#define CHECK_EQ(a, b)                                                             \
    do { long long check_a_ = (long long)(a), check_b_ = (long long)(b);          \
         if (check_a_ != check_b_) CHECK_FAIL_AT("%s == %s (%lld != %lld)", #a, #b, check_a_, check_b_); } while (0)
#define CHECK_STR(a, b)                                                            \
    do { const char *check_a_ = (a), *check_b_ = (b);                              \
         if (!check_a_ || !check_b_ || strcmp(check_a_, check_b_) != 0)            \
             CHECK_FAIL_AT("%s == %s (\"%s\" != \"%s\")", #a, #b, check_a_ ? check_a_ : "(null)", \
                           check_b_ ? check_b_ : "(null)"); } while (0)
#define CHECK_NEAR(a, b, eps)                                                      \
    do { double check_a_ = (a), check_b_ = (b);                                    \
         if (!(fabs(check_a_ - check_b_) <= (eps)))                                \
             CHECK_FAIL_AT("%s ~= %s (%.10g vs %.10g)", #a, #b, check_a_, check_b_); } while (0)
#define CHECK_CONTAINS(hay, needle)                                                \
    do { const char *check_h_ = (hay);                                             \
         if (!check_h_ || !strstr(check_h_, (needle)))                             \
             CHECK_FAIL_AT("'%s' contains '%s'", check_h_ ? check_h_ : "(null)", (needle)); } while (0)

/* Defined by the harness (tests/harness.c) when it is linked: a failing
 * test prints the end of the logs of the processes it started. */
__attribute__((weak)) void check_hook_begin(const char *name);
__attribute__((weak)) void check_hook_failed(const char *name);

#define CHECK_MAIN()                                                               \
    int main(int argc, char **argv)                                                \
    {                                                                              \
        int passed = 0, failed = 0;                                                \
        const char *only = argc > 1 ? argv[1] : NULL;                              \
        const char *prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0]; \
        for (int i = 0; i < check_ncases; i++) {                                   \
            if (only && strcmp(only, check_cases[i].name) != 0) continue;          \
            check_failed_now = 0;                                                  \
            if (check_hook_begin) check_hook_begin(check_cases[i].name);           \
            check_cases[i].fn();                                                   \
            printf("%s %s: %s\n", check_failed_now ? "not ok" : "ok", prog, check_cases[i].name); \
            if (check_failed_now && check_hook_failed) check_hook_failed(check_cases[i].name); \
            fflush(stdout);                                                        \
            if (check_failed_now) failed++; else passed++;                         \
        }                                                                          \
        printf("%s: %d passed, %d failed\n", prog, passed, failed);                \
        return failed ? 1 : 0;                                                     \
    }

#endif
