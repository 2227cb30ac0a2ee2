/* log.c — one JSON object per line on stderr (see log.h). */
#include "log.h"
#include "clock.h"
#include "utf8.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static char log_service[64] = "qt";
static log_level_t log_level = LOG_INFO;
static const char *const log_names[] = {"debug", "info", "warn", "error"};

void log_init(const char *service, const char *lvl)
{
    snprintf(log_service, sizeof log_service, "%s", service ? service : "qt");
    for (int i = 0; lvl && i < 4; i++)
        if (strcasecmp(lvl, log_names[i]) == 0) log_level = (log_level_t)i;
}

void log_set_level(log_level_t level) { log_level = level; }
log_level_t log_get_level(void) { return log_level; }

/* Format epoch ms as 2026-11-22T01:02:03.456Z into out. */
static void log_format_ts(char *out, size_t len)
{
    int64_t ms = clock_wall_ms();
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, len - n, ".%03dZ", (int)(ms % 1000));
}

void log_msg(log_level_t level, const char *trace, const char *fmt, ...)
{
    if (level < log_level) return;
    char msg[2048], ts[40];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_format_ts(ts, sizeof ts);
    /* the message may carry bytes from outside (a field's value): escape what is not UTF-8, never drop the line */
    json_t *o = json_pack("{s:s, s:s, s:s, s:o}", "ts", ts, "level", log_names[level], "service", log_service, "msg",
                          utf8_json_string(msg, strlen(msg)));
    if (!o) return;
    if (trace && *trace) json_object_set_new(o, "trace", utf8_json_string(trace, strlen(trace)));
    char *line = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (line) {
        fprintf(stderr, "%s\n", line);
        free(line);
    }
    json_decref(o);
}
