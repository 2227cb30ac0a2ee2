/* model.h — the PPO actor-critic MLP: 64 → 128 → 128 (tanh) with a 6-way
 * policy head (softmax) and a value head. Forward pass in plain C; shared by
 * rl-decision and the trainer.
 *
 * File format (little-endian), version 1:
 *   magic "QTPPO\0\0\1" (8 bytes), u32 format version (1), u32 in, h1, h2,
 *   actions, char model_version[64] (NUL-padded), then float32 arrays
 *   W1[h1][in], b1[h1], W2[h2][h1], b2[h2], Wpi[actions][h2], bpi[actions],
 *   Wv[h2], bv[1], then 32 bytes: SHA-256 of everything before them.
 * Loading checks the magic, version, shapes (must be 64/128/128/6), the exact
 * size, the checksum, and that no weight is NaN or infinite. */
#ifndef QT_MODEL_H
#define QT_MODEL_H

#include <stddef.h>

#define MODEL_IN 64
#define MODEL_H1 128
#define MODEL_H2 128
#define MODEL_ACTIONS 6

typedef struct model {
    char version[64];
    float w1[MODEL_H1][MODEL_IN], b1[MODEL_H1];
    float w2[MODEL_H2][MODEL_H1], b2[MODEL_H2];
    float wpi[MODEL_ACTIONS][MODEL_H2], bpi[MODEL_ACTIONS];
    float wv[MODEL_H2], bv;
} model_t;

/* Outputs of one forward pass; h1/h2 kept for training. */
typedef struct model_out {
    float h1[MODEL_H1], h2[MODEL_H2];
    float logits[MODEL_ACTIONS], probs[MODEL_ACTIONS];
    float value;
} model_out_t;

/* Load path into m. -1 with a reason naming the file and the problem. */
int model_load(model_t *m, const char *path, char *err, size_t errlen);
/* Write m to path (via a temporary file and rename). -1 with err. */
int model_save(const model_t *m, const char *path, char *err, size_t errlen);
/* Orthogonal-ish seeded initialisation (scaled uniform), version string copied. */
void model_init_random(model_t *m, unsigned long long seed, const char *version);
void model_forward(const model_t *m, const float obs[MODEL_IN], model_out_t *out);
/* tanh of the hidden layers, computed in double and rounded once to the
 * nearest float (glibc's tanhf is up to two last places off), and faster:
 * the tanh took most of a forward pass. */
float model_tanh(float x);

/* Every weight as one contiguous array (file order), for optimisers. */
#define MODEL_NPARAMS (MODEL_H1 * MODEL_IN + MODEL_H1 + MODEL_H2 * MODEL_H1 + MODEL_H2 + \
                       MODEL_ACTIONS * MODEL_H2 + MODEL_ACTIONS + MODEL_H2 + 1)
float *model_params(model_t *m);

#endif
