/* httpc.h — the small HTTP client pieces shared by the exchange client and
 * qtctl: a bounded, growing reply buffer for libcurl, and one JSON call. */
#ifndef QT_HTTPC_H
#define QT_HTTPC_H

#include <jansson.h>
#include <stddef.h>

/* A reply body: NUL-terminated, grows up to max bytes; over is set (and the
 * transfer aborted) when the reply is larger. Zero it and set max first. */
typedef struct httpc_body { char *buf; size_t len, cap, max; int over; } httpc_body_t;

/* CURLOPT_WRITEFUNCTION for an httpc_body_t. */
size_t httpc_body_write(char *p, size_t size, size_t n, void *ud);

/* METHOD url with an optional JSON body and bearer token, timeout_ms at most.
 * Returns the HTTP status (0 when there was no answer: err says why, never
 * with the token) and the reply parsed into *reply (NULL when not JSON). */
long httpc_json(const char *method, const char *url, const char *bearer, const char *body, long timeout_ms,
                json_t **reply, char *err, size_t errlen);

#endif
