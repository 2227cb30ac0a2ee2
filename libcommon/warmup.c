/* warmup.c — signals withheld until a symbol's windows are full (see warmup.h). */
#include "warmup.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

static const char *wu_name(const warmup_t *w, int i) { return (const char *)w->slots + (size_t)i * w->size; }

static long wu_warming(const warmup_t *w)
{
    long k = 0;
    for (int i = 0; i < *w->n; i++) k += w->bars(wu_name(w, i)) < w->needed;
    return k;
}

static int wu_ready_check(void *ud, char *why, size_t whylen)
{
    const warmup_t *w = ud;
    size_t at = 0;
    long k = 0;
    for (int i = 0; i < *w->n; i++) {
        long b = w->bars(wu_name(w, i));
        if (b >= w->needed) continue;
        if (k++ < 8 && at < whylen)
            at += (size_t)snprintf(why + at, whylen - at, "%s%s %ld/%ld bars", at ? ", " : "warming up, no signal yet: ",
                                   wu_name(w, i), b, w->needed);
    }
    if (k == 0) return 1;
    if (k > 8 && at < whylen) snprintf(why + at, whylen - at, " and %ld more", k - 8);
    return HTTPD_READY_NOTE;
}

int warmup_init(warmup_t *w, svc_t *svc, long needed, const char *signal, const void *slots, size_t size,
                const int *n, long (*bars)(const void *slot))
{
    memset(w, 0, sizeof *w);
    w->needed = needed, w->signal = signal, w->slots = slots, w->size = size, w->n = n, w->bars = bars;
    w->m_withheld = metrics_counter(svc->metrics, "qt_signals_withheld_total",
                                    "Bars decided on by no signal: the symbol's windows were not yet full",
                                    "reason=\"warming\"");
    w->m_warming = metrics_gauge(svc->metrics, "qt_symbols_warming", "Symbols whose windows are not yet full", NULL);
    if (!w->m_withheld || !w->m_warming || httpd_add_ready(svc->http, "warmup", wu_ready_check, w) < 0) return -1;
    return 0;
}

int warmup_ready(warmup_t *w, const char *symbol, long bars)
{
    if (bars >= w->needed) {
        if (bars == w->needed) {
            metric_set(w->m_warming, (double)wu_warming(w));
            log_info("%s: windows full after %ld bars, %s from now on", symbol, bars, w->signal);
        }
        return 1;
    }
    if (bars <= 1)
        log_info("%s: warming up, no %s until %ld bars have been seen", symbol, w->signal, w->needed);
    w->withheld++;
    metric_inc(w->m_withheld);
    metric_set(w->m_warming, (double)wu_warming(w));
    return 0;
}

json_t *warmup_status(const warmup_t *w)
{
    json_t *warming = json_object();
    for (int i = 0; i < *w->n; i++) {
        long b = w->bars(wu_name(w, i));
        if (b < w->needed) json_object_set_new(warming, wu_name(w, i), json_integer(b));
    }
    return json_pack("{s:I, s:I, s:o}", "needed", (json_int_t)w->needed, "withheld", (json_int_t)w->withheld, "warming",
                     warming);
}
