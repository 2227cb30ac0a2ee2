/* utf8.h — text from outside (stream fields, error reasons, log arguments)
 * made into valid UTF-8 for JSON: each byte that is not part of a valid
 * UTF-8 sequence becomes the four characters "\xNN", so nothing is dropped
 * and what was there stays visible. */
#ifndef QT_UTF8_H
#define QT_UTF8_H

#include <jansson.h>
#include <stddef.h>

/* 1 when s[0..len) is valid UTF-8 (no overlong forms, no surrogates, at most U+10FFFF). */
int utf8_valid(const char *s, size_t len);
/* s with every invalid byte escaped as "\xNN" (malloc'd, NUL-terminated, its
 * length in *outlen when outlen is not NULL); NULL when out of memory. */
char *utf8_escape(const char *s, size_t len, size_t *outlen);
/* A JSON string of s (new reference), escaped as above when needed; NULL
 * only when out of memory. NUL bytes are kept (jansson takes them). */
json_t *utf8_json_string(const char *s, size_t len);

#endif
