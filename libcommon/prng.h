/* prng.h — the one pseudo-random generator of the project: a 64-bit linear
 * congruential generator (Knuth's MMIX constants), seeded by the caller, so
 * model initialisation, exploration and trainers are reproducible. Not for
 * anything secret. The state is the caller's; nothing is global. */
#ifndef QT_PRNG_H
#define QT_PRNG_H

#include <stdint.h>

/* Advance *s and return the new state. */
static inline uint64_t prng_next(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s;
}

/* Uniform in (0, 1) from the top 53 bits of the next state. */
static inline double prng_uniform(uint64_t *s) { return ((prng_next(s) >> 11) + 0.5) / 9007199254740992.0; }

#endif
