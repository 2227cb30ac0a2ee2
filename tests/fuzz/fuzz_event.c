/* fuzz_event — libFuzzer target for the envelope and payload decoder.
 *
 * Input layout: fields separated by '\n', each "name=value" (a value may
 * hold anything but '\n'). The fields go through event_decode exactly as a
 * stream entry would; a decoded event is re-encoded and decoded again and
 * must encode to the same text again. Build and run with `make fuzz`. */
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
    /* round trip: what we accept we can encode, and it decodes the same */
    char *json = event_data_json(&ev);
    if (!json) abort();
    event_field_t g[EVENT_ENVELOPE_FIELDS];
    event_numbuf_t nb;
    event_to_fields(&ev, json, g, &nb);
    event_t back;
    if (event_decode(&back, g, EVENT_ENVELOPE_FIELDS, err, sizeof err) != 0) abort();
    /* reals are written with 15 significant digits, so encoding is idempotent */
    char *again = event_data_json(&back);
    if (!again || strcmp(again, json) != 0) abort();
    free(again);
    event_clear(&back);
    free(json);
    event_clear(&ev);
    return 0;
}
