/* mlmodel.h — the ensemble's member models: what ml-train writes and
 * ml-threshold loads. Three learner kinds, each mapping one input vector to
 * probabilities of LONG / SHORT / HOLD:
 *   MLM_GBDT    gradient-boosted decision trees, softmax over 3 classes
 *               (one tree per class per round, complete trees of one depth)
 *   MLM_SOFTMAX multinomial logistic regression on standardised inputs
 *   MLM_MLP     one tanh hidden layer on standardised inputs
 * The input vector (mlm_inputs) is the 64-dim observation of libcommon/obs
 * with a flat position (the same features as rl-decision, so live and
 * training cannot drift); each model uses the subset its index list names
 * (the MLP, for instance, the window of lagged returns ret_lag_0..15).
 *
 * File format (little-endian), version 1:
 *   magic "QTENS\0\0\1" (8 bytes), u32 format version (1), u32 kind,
 *   char name[64], char version[64] (NUL-padded), u32 nfeat, u32 p1, u32 p2
 *   (MLP: hidden, 0; GBDT: rounds, depth; SOFTMAX: 0, 0), u32 nints,
 *   u32 ints[nints], u32 nfloats, f32 floats[nfloats], then 32 bytes:
 *   SHA-256 of everything before them.
 * ints and floats by kind (K = 3 classes, T = rounds·K trees, I = 2^depth−1
 * internal nodes and L = 2^depth leaves per tree, in breadth-first order):
 *   SOFTMAX ints idx[nfeat];            floats mean[nfeat] sd[nfeat] W[K][nfeat] b[K]
 *   MLP     ints idx[nfeat];            floats mean sd W1[H][nfeat] b1[H] W2[K][H] b2[K]
 *   GBDT    ints idx[nfeat] feat[T][I]; floats base[K] thr[T][I] leaf[T][L]
 *           (a sample goes left when x[idx[feat]] <= thr)
 * Loading checks the magic, version, kind, sizes against the shapes, index
 * ranges, a positive sd, the checksum and that every float is finite, and
 * names the file in each error. */
#ifndef QT_MLMODEL_H
#define QT_MLMODEL_H

#include "obs.h"

#include <stddef.h>
#include <stdint.h>

#define MLM_NX FEATURES_DIM
#define MLM_CLASSES 3 /* LONG, SHORT, HOLD */
#define MLM_WARMUP 60 /* bars before a member may vote */

enum { MLM_GBDT = 1, MLM_SOFTMAX = 2, MLM_MLP = 3 };
enum { MLM_LONG = 0, MLM_SHORT = 1, MLM_HOLD = 2 };

typedef struct mlm {
    int kind;
    char name[64], version[64];
    uint32_t nfeat, p1, p2;
    uint32_t nints, nfloats;
    uint32_t *ints; /* owned */
    float *floats;  /* owned */
} mlm_t;

extern const char *const mlm_class_names[MLM_CLASSES]; /* "LONG" "SHORT" "HOLD" */
const char *mlm_kind_name(int kind);                      /* "gbdt" "softmax" "mlp" */

/* The input vector for the latest bar of a symbol's feature state (fed with
 * obs_update); 0, or -1 while fewer than MLM_WARMUP bars were seen. */
int mlm_inputs(const obs_state_t *s, float x[MLM_NX]);

/* Class probabilities for x. */
void mlm_predict(const mlm_t *m, const float x[MLM_NX], double probs[MLM_CLASSES]);

/* Allocate the arrays for the given shapes (zeroed); kind, name, version
 * and shapes set. -1 on bad shapes or OOM. Free with mlm_free. */
int mlm_alloc(mlm_t *m, int kind, const char *name, const char *version, uint32_t nfeat, uint32_t p1, uint32_t p2);
void mlm_free(mlm_t *m);
/* Load path into m (m is overwritten; free with mlm_free). -1 with a reason
 * naming the file. */
int mlm_load(mlm_t *m, const char *path, char *err, size_t errlen);
/* Write m to path via a temporary file and rename. -1 with err. */
int mlm_save(const mlm_t *m, const char *path, char *err, size_t errlen);

#endif
