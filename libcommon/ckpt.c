/* ckpt.c — the checkpoint's text: tags per stream and the state bytes (see ckpt.h). */
#include "ckpt.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Layout: "qtckpt 1\nformat <f>\nsaved <ms>\nstream <key> <id>\n...state <len>\n<bytes>" */
#define CKPT_MAGIC "qtckpt 1\n"

char *ckpt_encode(const char *format, long long now_ms, int n, const char *const *keys, const char *const *ids,
                  const char *state, size_t state_len, size_t *len)
{
    size_t cap = 128 + strlen(format) + state_len;
    for (int i = 0; i < n; i++) cap += strlen(keys[i]) + strlen(ids[i]) + 16;
    char *out = malloc(cap);
    if (!out) return NULL;
    size_t at = (size_t)snprintf(out, cap, CKPT_MAGIC "format %s\nsaved %lld\n", format, now_ms);
    for (int i = 0; i < n; i++) at += (size_t)snprintf(out + at, cap - at, "stream %s %s\n", keys[i], ids[i]);
    at += (size_t)snprintf(out + at, cap - at, "state %zu\n", state_len);
    memcpy(out + at, state, state_len);
    *len = at + state_len;
    return out;
}

/* The next line of buf from *at (without its newline) into line; -1 when none. */
static int ckpt_line(const char *buf, size_t len, size_t *at, char *line, size_t linelen)
{
    const char *nl = memchr(buf + *at, '\n', len - *at);
    if (!nl || (size_t)(nl - (buf + *at)) >= linelen) return -1;
    size_t n = (size_t)(nl - (buf + *at));
    memcpy(line, buf + *at, n);
    line[n] = '\0';
    *at += n + 1;
    return 0;
}

static int ckpt_tag(const char *line, int n, const char *const *keys, char (*ids)[48])
{
    char key[256], id[64];
    if (sscanf(line, "stream %255s %63s", key, id) != 2 || strlen(id) >= 48) return -1;
    for (int i = 0; i < n; i++)
        if (strcmp(keys[i], key) == 0) snprintf(ids[i], 48, "%s", id);
    return 0;
}

int ckpt_decode(const char *buf, size_t len, const char *format, int n, const char *const *keys, char (*ids)[48],
                long long *saved_ms, const char **state, size_t *state_len, char *err, size_t errlen)
{
    char line[512];
    size_t at = strlen(CKPT_MAGIC), slen;
    for (int i = 0; i < n; i++) snprintf(ids[i], 48, "0");
    if (len < at || memcmp(buf, CKPT_MAGIC, at) != 0) return snprintf(err, errlen, "not a checkpoint"), -1;
    if (ckpt_line(buf, len, &at, line, sizeof line) < 0 || strncmp(line, "format ", 7) != 0)
        return snprintf(err, errlen, "checkpoint without a format line"), -1;
    if (strcmp(line + 7, format) != 0)
        return snprintf(err, errlen, "checkpoint of format '%.100s', this build keeps '%.100s'", line + 7, format), -1;
    if (ckpt_line(buf, len, &at, line, sizeof line) < 0 || sscanf(line, "saved %lld", saved_ms) != 1)
        return snprintf(err, errlen, "checkpoint without its time"), -1;
    for (;;) {
        if (ckpt_line(buf, len, &at, line, sizeof line) < 0) return snprintf(err, errlen, "checkpoint cut short"), -1;
        if (strncmp(line, "state ", 6) == 0) break;
        if (ckpt_tag(line, n, keys, ids) < 0) return snprintf(err, errlen, "checkpoint line '%.60s' is malformed", line), -1;
    }
    if (sscanf(line, "state %zu", &slen) != 1 || slen != len - at)
        return snprintf(err, errlen, "checkpoint state is %zu bytes, not the %s it says", len - at, line + 6), -1;
    *state = buf + at;
    *state_len = slen;
    return 0;
}

static void ckpt_id_parse(const char *s, uint64_t *ms, uint64_t *seq)
{
    char *end;
    *ms = strtoull(s, &end, 10);
    *seq = *end == '-' ? strtoull(end + 1, NULL, 10) : 0;
}

int ckpt_id_cmp(const char *a, const char *b)
{
    uint64_t am, as, bm, bs;
    ckpt_id_parse(a, &am, &as);
    ckpt_id_parse(b, &bm, &bs);
    if (am != bm) return am < bm ? -1 : 1;
    return as < bs ? -1 : as > bs ? 1 : 0;
}
