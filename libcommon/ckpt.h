/* ckpt.h — per-symbol state that survives a restart (DESIGN §2a): a
 * checkpoint in Redis tagged with the last entry of each subscribed stream it
 * covers, plus the entries after it read back from the streams.
 *
 * A service that keeps state built from its input says how to save and load
 * it (ckpt_ops_t) and hands that to bus_keep_state() before svc_run(). Then:
 *  - every QT_CHECKPOINT_MS (and once more when it stops) the bus writes
 *    "<ns>:state:<service>" at a moment when every entry it was given has
 *    been handled and everything those entries published has been sent ahead
 *    of the checkpoint on the same connection (so a checkpoint never covers
 *    an output that could still be lost);
 *  - at start, before anything is read through the group, ckpt_restore()
 *    loads the checkpoint and hands the handlers, in entry-id order across
 *    the streams, every entry after its tags up to what the group already
 *    delivered and acked — with publishing off (bus_replaying()) — so the
 *    state is the one of a process that never stopped. Entries still pending
 *    come through the group as before; those the checkpoint already covers
 *    are acked without a handler.
 * When the streams no longer hold the entries after the checkpoint (trimmed),
 * the restore says so (ckpt_restore_t.history_lost) and the service warms up.
 *
 * Handlers stay deterministic functions of their input for this to be
 * exact: no wall clock, no random numbers but a seeded generator kept in the
 * state. */
#ifndef QT_CKPT_H
#define QT_CKPT_H

#include <hiredis/hiredis.h>
#include <stddef.h>

typedef struct ckpt_ops {
    /* Names the layout ("rl-decision/1/<sizes>"): a checkpoint written with
     * another is not loaded (the state is rebuilt from the streams). */
    const char *format;
    /* The whole state as bytes, malloc'd into *out (the caller frees); -1
     * when out of memory. */
    int (*save)(void *ud, char **out, size_t *len);
    /* Replace the state with saved bytes; -1 with err for bytes it refuses
     * (the state must then be as at start). */
    int (*load)(void *ud, const char *in, size_t len, char *err, size_t errlen);
    /* May be NULL. Called after a restore that loaded no checkpoint (the
     * first start, or one refused), once the replay is done, with the
     * start-up connection: what the service kept elsewhere in Redis before
     * it had checkpoints can be taken up here. */
    void (*fresh)(void *ud, redisContext *c);
    /* (With the partition ops below, fresh is called at every start, before
     * any partition is taken, and save, load and gap may be NULL.) */
    /* May be NULL. Called after a checkpoint was loaded when entries after
     * it were trimmed from the streams (history_lost), before the replay:
     * drop what needs an unbroken sequence of bars (feature windows), which
     * the replay of what is left then refills from scratch (warmup.h). */
    void (*gap)(void *ud);
    /* Set all four for a service whose replicas share the symbol partitions
     * (bus_lease_parts): then each partition k it holds has a checkpoint of
     * its own ("<ns>:state:<service>" with partition k's suffix, keys.h),
     * written only while our lease on k stands, and restored when k is taken
     * (restore_part) — the whole-state ops above are then not used.
     * save_part: the state of partition k's symbols only. load_part: replace
     * partition k's symbols with saved bytes (-1 with err: k's symbols are
     * then as drop_part leaves them). drop_part: forget partition k's
     * symbols (it was given up, or is about to be loaded). gap_part: as gap,
     * for partition k's symbols. */
    int (*save_part)(void *ud, int part, char **out, size_t *len);
    int (*load_part)(void *ud, int part, const char *in, size_t len, char *err, size_t errlen);
    void (*drop_part)(void *ud, int part);
    void (*gap_part)(void *ud, int part);
} ckpt_ops_t;

/* What a restore did, for logs and status. */
typedef struct ckpt_restore {
    int found;           /* a checkpoint was loaded */
    long long saved_ms;  /* when it was written (epoch ms), 0 if none */
    long replayed;       /* entries handed to the handlers again */
    long pending;        /* pending entries after the checkpoint: they come through the group */
    int history_lost;    /* entries after the checkpoint were trimmed away */
    char note[256];      /* one line for the log and status */
} ckpt_restore_t;

/* Encode a checkpoint: the tags of n streams (keys[i] up to ids[i]) and the
 * state bytes. Returns the malloc'd text (the caller frees) and its length,
 * or NULL when out of memory. */
char *ckpt_encode(const char *format, long long now_ms, int n, const char *const *keys, const char *const *ids,
                  const char *state, size_t state_len, size_t *len);

/* Decode one: the tags of the streams named in keys (ids[i] gets the tag,
 * "0" for a stream it does not name; idlen bytes each) and a pointer into
 * buf at the state bytes. -1 with err for a checkpoint of another format or
 * one that is malformed. */
int ckpt_decode(const char *buf, size_t len, const char *format, int n, const char *const *keys, char (*ids)[48],
                long long *saved_ms, const char **state, size_t *state_len, char *err, size_t errlen);

/* -1, 0, 1 as stream entry id a is before, equal to or after b ("<ms>-<seq>",
 * or "<ms>", or "0"). */
int ckpt_id_cmp(const char *a, const char *b);

#endif
