/* restore.h — a stateful service's state back at start (DESIGN §2a): its
 * checkpoint (ckpt.h) loaded, then every entry after the checkpoint's tags
 * that the group already delivered and acked handed to the handlers again in
 * entry-id order across the streams, publishing off. Blocking reads before
 * the loop runs (svc_run() calls it before bus_start()).
 *
 * The group's pending entries (a dead predecessor's) are claimed for this
 * consumer: they come through the group as usual, oldest first, and those the
 * checkpoint already covers are acked without a handler. A stateful service
 * is one consumer per group: a second live replica would have its pending
 * entries taken. */
#ifndef QT_RESTORE_H
#define QT_RESTORE_H

#include "bus.h"
#include "ckpt.h"
#include "config.h"

/* 0 with what was done in out (nothing when the bus keeps no state); 1 with
 * the reason in err when Redis cannot be reached now or failed before the
 * replay began (call again later: nothing is half done); -1 with err when it
 * failed in the middle of the replay (the state is half replayed: only a new
 * process can start soundly). */
int restore_run(bus_t *b, const qt_config_t *cfg, ckpt_restore_t *out, char *err, size_t errlen);
/* For a bus whose state is kept per partition (bus_state_parted): partition
 * part's state back, as restore_run does for the whole — its checkpoint,
 * the replay of what its group acked after it, its pending entries claimed
 * for us — when lease.c has just taken it, before it is read. Blocks the
 * loop for the time it takes (one checkpoint interval of entries, as a
 * rule). The same returns; after a failure partition part's symbols are
 * dropped again and the take is tried again at the next lease round. With
 * a bus that keeps no such state: 0, nothing done. */
int restore_part(bus_t *b, const qt_config_t *cfg, int part, ckpt_restore_t *out, char *err, size_t errlen);

#endif
