/* fuzz_event — libFuzzer target for the envelope and payload decoder.
 *
 * Input layout: fields separated by '\n', each "name=value" (a value may
 * hold anything but '\n'). The fields go through event_decode exactly as a
 * stream entry would (v1 or v2); a decoded event is written as v2, decoded
 * again, and must write the same text again. Build and run with `make fuzz`. */
#include "event.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    event_field_t f[EVENT_FIELDS_MAX + 8];
    size_t n = 0, start = 0;
    char err[512];
    const char *p = (const char *)data;
    for (size_t i = 0; i <= size && n < sizeof f / sizeof f[0]; i++) {
        if (i < size && p[i] != '\n') continue;
        const char *eq = memchr(p + start, '=', i - start);
        if (eq) f[n++] = (event_field_t){p + start, (size_t)(eq - (p + start)), eq + 1, (size_t)(p + i - eq - 1)};
        start = i + 1;
    }
    event_t ev;
    if (event_decode(&ev, f, n, err, sizeof err) != 0) return 0;
    /* round trip: what we accept we write as v2, it decodes the same, and
     * it writes the same text again (numbers are written exactly) */
    event_enc_t enc, again;
    memset(&enc, 0, sizeof enc), memset(&again, 0, sizeof again);
    if (event_encode(&ev, &enc, err, sizeof err) != 0) abort();
    event_t back;
    if (event_decode(&back, enc.f, enc.n, err, sizeof err) != 0) abort();
    if (event_encode(&back, &again, err, sizeof err) != 0 || again.n != enc.n) abort();
    for (size_t i = 0; i < enc.n; i++)
        if (again.f[i].val_len != enc.f[i].val_len || memcmp(again.f[i].val, enc.f[i].val, enc.f[i].val_len)) abort();
    event_enc_free(&again);
    event_enc_free(&enc);
    event_clear(&back);
    event_clear(&ev);
    return 0;
}
