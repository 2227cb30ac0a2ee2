/* replay.h — run a libFuzzer target (LLVMFuzzerTestOneInput, linked in)
 * without libFuzzer: over the files of a seed corpus and seeded mutations of
 * them, so `make test` exercises every fuzz target with the normal compiler
 * and its sanitizer and valgrind builds. A target reports a broken
 * invariant by aborting. */
#ifndef QT_FUZZ_REPLAY_H
#define QT_FUZZ_REPLAY_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Runs the target on each file of dir (at most 64, each up to 4096 bytes),
 * then on per_seed mutations of each (1 to 4 edits: a flipped bit, a byte
 * that means something to a parser, a cut, a repeated stretch), the same
 * ones in every run. Returns how many files it ran, -1 if dir cannot be read. */
int fuzz_replay(const char *dir, int per_seed);

#endif
