/* utf8.c — valid UTF-8 for JSON (see utf8.h). */
#include "utf8.h"

#include <stdio.h>
#include <stdlib.h>

/* The length of the valid sequence at s (at most left bytes), 0 if none. */
static size_t utf8_seq(const unsigned char *s, size_t left)
{
    unsigned c = s[0];
    size_t n;
    unsigned cp;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) n = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) n = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) n = 4, cp = c & 0x07;
    else return 0;
    if (left < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

int utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq(p + i, len - i);
        if (!n) return 0;
        i += n;
    }
    return 1;
}

char *utf8_escape(const char *s, size_t len, size_t *outlen)
{
    const unsigned char *p = (const unsigned char *)s;
    char *out = malloc(len * 4 + 1);
    size_t o = 0;
    if (!out) return NULL;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq(p + i, len - i);
        if (n) {
            for (size_t k = 0; k < n; k++) out[o++] = (char)p[i + k];
            i += n;
        } else {
            o += (size_t)snprintf(out + o, 5, "\\x%02X", p[i]);
            i++;
        }
    }
    out[o] = '\0';
    if (outlen) *outlen = o;
    return out;
}

json_t *utf8_json_string(const char *s, size_t len)
{
    if (!s) return json_string("");
    if (utf8_valid(s, len)) return json_stringn_nocheck(s, len);
    size_t n;
    char *e = utf8_escape(s, len, &n);
    json_t *j = e ? json_stringn_nocheck(e, n) : NULL;
    free(e);
    return j;
}
