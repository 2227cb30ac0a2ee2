/* atomicfile.h — write a whole file so readers see the old content or the
 * new, never a part: a temporary file next to it, then rename(2). Used for
 * model files and checkpoints. */
#ifndef QT_ATOMICFILE_H
#define QT_ATOMICFILE_H

#include <stddef.h>

/* Write len bytes of buf to path via "<path>.tmp"; 0, or -1 with err naming
 * the file and the reason (the temporary file is removed). */
int atomicfile_write(const char *path, const void *buf, size_t len, char *err, size_t errlen);

#endif
