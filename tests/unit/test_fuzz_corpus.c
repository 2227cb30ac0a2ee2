/* test_fuzz_corpus — the libFuzzer target of the event decoder
 * (tests/fuzz/fuzz_event.c) built with the normal compiler and run over its
 * seed corpus and 1,500 seeded mutations of each seed, in every `make test`
 * and its sanitizer and valgrind variants: the decoder's round-trip checks
 * run each time, and a target that no longer builds fails here rather than
 * in the next `make fuzz`. The target aborts on a broken invariant; the test
 * then ends without its summary line, which tests/run.sh counts as failed. */
#include "check.h"
#include "fuzz/replay.h"

TEST(the_event_corpus_and_its_mutations_run_clean)
{
    CHECK(fuzz_replay("tests/fuzz/corpus", 1500) >= 6); /* run from the repository's root */
}

CHECK_MAIN()
