/* test_fuzz_corpus — the libFuzzer target (tests/fuzz/fuzz_event.c) built
 * with the normal compiler and run over its seed corpus and over seeded
 * mutations of it. Every `make test`, and its sanitizer and valgrind
 * variants, so exercises the decoder's round-trip checks, and a target that
 * no longer builds fails here rather than in the next `make fuzz`. The
 * target aborts on a broken invariant: the test then ends without its
 * summary line, which tests/run.sh counts as a failure. */
#include "check.h"

#include <dirent.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CORPUS "tests/fuzz/corpus"
#define MAXIN 4096 /* make fuzz's -max_len */

static uint8_t seeds[16][MAXIN];
static size_t seed_len[16];
static int nseeds;

static void load_seeds(void)
{
    DIR *d = opendir(CORPUS);
    struct dirent *de;
    nseeds = 0;
    while (d && (de = readdir(d)) && nseeds < 16) {
        char path[512];
        if (de->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", CORPUS, de->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        seed_len[nseeds] = fread(seeds[nseeds], 1, MAXIN, f);
        fclose(f);
        nseeds++;
    }
    if (d) closedir(d);
}

static uint64_t rnd_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13, rnd_state ^= rnd_state >> 7, rnd_state ^= rnd_state << 17;
    return rnd_state;
}

/* One edit of buf (length *n, room MAXIN): the kinds of damage a stream
 * entry meets — a flipped bit, a byte that means something to the decoder,
 * a cut, a repeated stretch. */
static void mutate(uint8_t *buf, size_t *n)
{
    static const uint8_t special[] = {'"', '\\', '{', '}', '[', ']', ',', ':', '\n', '=', '-', '.', 'e', '0', '9', 0, 0x80, 0xff};
    size_t at = *n ? rnd() % *n : 0;
    switch (rnd() % 4) {
    case 0:
        if (*n) buf[at] ^= (uint8_t)(1u << rnd() % 8);
        break;
    case 1:
        if (*n) buf[at] = special[rnd() % sizeof special];
        break;
    case 2: { /* cut a stretch */
        size_t len = *n - at ? rnd() % (*n - at) % 16 + 1 : 0;
        memmove(buf + at, buf + at + len, *n - at - len);
        *n -= len;
        break;
    }
    default: { /* repeat a stretch */
        size_t len = *n - at ? rnd() % (*n - at) % 32 + 1 : 0;
        if (*n + len > MAXIN) break;
        memmove(buf + at + len, buf + at, *n - at);
        *n += len;
    }
    }
}

TEST(the_seed_corpus_runs_clean)
{
    load_seeds();
    CHECK(nseeds >= 6); /* the corpus is there: this test ran from the repository's root */
    for (int i = 0; i < nseeds; i++) CHECK_EQ(LLVMFuzzerTestOneInput(seeds[i], seed_len[i]), 0);
}

TEST(mutations_of_the_corpus_run_clean)
{
    static uint8_t buf[MAXIN];
    long runs = 0;
    for (int i = 0; i < nseeds; i++)
        for (int k = 0; k < 1500; k++) {
            size_t n = seed_len[i];
            memcpy(buf, seeds[i], n);
            for (int e = (int)(rnd() % 4); e >= 0; e--) mutate(buf, &n);
            LLVMFuzzerTestOneInput(buf, n);
            runs++;
        }
    CHECK(runs >= 6 * 1500);
}

CHECK_MAIN()
