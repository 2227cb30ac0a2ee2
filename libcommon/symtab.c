/* symtab.c — find or add a symbol's element (see symtab.h). */
#include "symtab.h"

#include <string.h>

void *symtab_slot(void *slots, size_t size, size_t name_len, int *n, int max, const char *symbol, int *created)
{
    char *base = slots;
    size_t len = symbol ? strlen(symbol) : 0;
    if (created) *created = 0;
    if (len == 0 || len >= name_len) return NULL;
    for (int i = 0; i < *n; i++)
        if (strcmp(base + (size_t)i * size, symbol) == 0) return base + (size_t)i * size;
    if (*n >= max) return NULL;
    char *s = base + (size_t)(*n)++ * size;
    memset(s, 0, size);
    memcpy(s, symbol, len + 1);
    if (created) *created = 1;
    return s;
}

int symtab_names_ok(const void *slots, size_t size, size_t name_len, int n)
{
    for (int i = 0; i < n; i++)
        if (!memchr((const char *)slots + (size_t)i * size, '\0', name_len)) return 0;
    return 1;
}
