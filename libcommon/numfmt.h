/* numfmt.h — numbers as text that reads back exactly and is no longer than
 * it needs to be ("0.7", "5e-05", not "0.69999999999999996" or
 * "5.0000000000000002e-05"): for /metrics, HTTP bodies and qtctl output. */
#ifndef QT_NUMFMT_H
#define QT_NUMFMT_H

#include <jansson.h>
#include <stddef.h>

/* The fewest significant digits (1..17) whose %.*g reads back as v (and
 * writes a number of up to 17 integer digits without an exponent). */
int numfmt_digits(double v);
/* v with those digits into buf (snprintf's return). Not for NaN or Inf. */
int numfmt_shortest(char *buf, size_t len, double v);
/* json_dumps flags plus the real precision that writes every real in j
 * back exactly: each one as short as it can be, unless one needs all 17
 * digits (jansson has one precision per dump). */
size_t numfmt_json_flags(const json_t *j, size_t flags);

/* For the event stream, where every number of every event goes through
 * them: v exactly, without searching for its shortest digits. A number of
 * few decimals (a price, 0.6) is written as numfmt_shortest writes it, any
 * other with 17 digits (at most two longer than the shortest; a computed
 * number mostly needs 16 or 17). Not for NaN or Inf. */
int numfmt_exact(char *buf, size_t len, double v);
/* The same for json_dumps: the shortest precision when every real of j
 * has few decimals, else 17. */
size_t numfmt_json_flags_exact(const json_t *j, size_t flags);

#endif
