/* parts.h — the symbol partitions of a namespace (DESIGN §2a, keys.h).
 *
 * A namespace is created with one QT_PARTITIONS: its streams' names say it
 * ("<ns>:market" for 1, "<ns>:market:p0".. for more), so a process started
 * with another P would read and write streams nobody else does. The first
 * process records P in "<ns>:meta"; every later one compares. */
#ifndef QT_PARTS_H
#define QT_PARTS_H

#include "config.h"

#include <hiredis/hiredis.h>

/* Record or compare cfg->partitions with the namespace's. 0 when they
 * agree; -1 with err (the namespace's P and the way out) when they differ;
 * 1 with err when Redis failed or refused (try again later). A namespace
 * with no record whose unpartitioned streams exist was written by a version
 * before partitions: it has P = 1. */
int parts_check(redisContext *c, const qt_config_t *cfg, char *err, size_t errlen);

/* The namespace's P into *p: its record, else 1 (nothing written with more).
 * -1 with err when Redis failed. */
int parts_of(redisContext *c, const char *ns, long *p, char *err, size_t errlen);

#endif
