/* log.h — structured one-line JSON logs on stderr.
 *
 * Every line is one JSON object: ts (UTC ISO-8601 with ms), level, service, msg,
 * and trace when the caller knows it. Never pass secrets to these functions. */
#ifndef QT_LOG_H
#define QT_LOG_H

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level_t;

/* Set the service name shown on every line (copied) and the level from
 * QT_LOG_LEVEL (debug|info|warn|error, default info). */
/* level: "debug", "info", "warn" or "error" (any case); NULL or another word keeps info. */
void log_init(const char *service, const char *level);
void log_set_level(log_level_t level);
log_level_t log_get_level(void);

/* Write one line when level >= the configured level. trace may be NULL. */
void log_msg(log_level_t level, const char *trace, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(...) log_msg(LOG_DEBUG, NULL, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, NULL, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, NULL, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, NULL, __VA_ARGS__)

#endif
