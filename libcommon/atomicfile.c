/* atomicfile.c — temporary file + rename (see atomicfile.h). */
#include "atomicfile.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int atomicfile_write(const char *path, const void *buf, size_t len, char *err, size_t errlen)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return snprintf(err, errlen, "path too long: %.200s", path), -1;
    FILE *f = fopen(tmp, "wb");
    int ok = f && fwrite(buf, 1, len, f) == len;
    if (f && fclose(f) != 0) ok = 0;
    if (ok && rename(tmp, path) == 0) return 0;
    snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    remove(tmp);
    return -1;
}
