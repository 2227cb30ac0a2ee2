/* symtab.h — per-symbol state kept in a fixed array of structs.
 *
 * Four services keep one struct per symbol (trading-engine, rl-decision,
 * ml-threshold, policy-store) in an array whose element starts with
 * `char symbol[N]`. symtab_slot finds a symbol's element or takes the next
 * free one. */
#ifndef QT_SYMTAB_H
#define QT_SYMTAB_H

#include <stddef.h>

/* The element of `slots` (n in use, each `size` bytes, starting with a
 * symbol name of name_len bytes) for symbol, or the next free one —
 * zeroed, the name set, *created = 1 (created may be NULL) — while
 * *n < max. NULL when symbol is NULL or empty, does not fit in name_len,
 * or the array is full. */
void *symtab_slot(void *slots, size_t size, size_t name_len, int *n, int max, const char *symbol, int *created);

/* Are the names of n elements at `slots` (as above) strings that end within
 * name_len? 1 or 0: for an array read back from a checkpoint (ckpt.h). */
int symtab_names_ok(const void *slots, size_t size, size_t name_len, int n);

/* For an array member `arr` of struct elements with a leading `symbol` field. */
#define SYMTAB_SLOT(arr, n, max, name, created)                                                                         \
    symtab_slot((arr), sizeof (arr)[0], sizeof (arr)[0].symbol, (n), (max), (name), (created))

#define SYMTAB_NAMES_OK(bytes, arr, n) symtab_names_ok((bytes), sizeof (arr)[0], sizeof (arr)[0].symbol, (n))

#endif
