/* config.c — typed environment getters and REDIS_URL parsing (see config.h). */
#include "config.h"
#include "event.h"
#include "binance.h"
#include "keys.h"

#include <errno.h>
#include <math.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Returns the variable's value, or NULL when unset or empty. */
static const char *config_env(const char *name)
{
    const char *v = getenv(name);
    return (v && *v) ? v : NULL;
}

int config_get_str(const char *name, const char *def, const char **out)
{
    const char *v = config_env(name);
    *out = v ? v : def;
    return 0;
}

int config_get_long(const char *name, long def, long min, long max, long *out,
                    char *err, size_t errlen)
{
    const char *v = config_env(name);
    if (!v) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end) {
        snprintf(err, errlen, "%s: '%s' is not an integer", name, v);
        return -1;
    }
    if (n < min || n > max) {
        snprintf(err, errlen, "%s: %ld is out of range [%ld, %ld]", name, n, min, max);
        return -1;
    }
    *out = n;
    return 0;
}

int config_get_double(const char *name, double def, double min, double max,
                      double *out, char *err, size_t errlen)
{
    const char *v = config_env(name);
    if (!v) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(d)) {
        snprintf(err, errlen, "%s: '%s' is not a number", name, v);
        return -1;
    }
    if (d < min || d > max) {
        snprintf(err, errlen, "%s: %g is out of range [%g, %g]", name, d, min, max);
        return -1;
    }
    *out = d;
    return 0;
}

int config_get_bool(const char *name, int def, int *out, char *err, size_t errlen)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    const char *v = config_env(name);
    if (!v) {
        *out = def;
        return 0;
    }
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) return *out = 1, 0;
        if (strcasecmp(v, no[i]) == 0) return *out = 0, 0;
    }
    snprintf(err, errlen, "%s: '%s' is not a boolean (true/false)", name, v);
    return -1;
}

/* Read the first line-ish content of path into out, stripping trailing
 * whitespace. The file's content is never echoed into err. */
static int config_read_secret_file(const char *var, const char *path, char *out,
                                   size_t outlen, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open %s: %s", var, path, strerror(errno));
        return -1;
    }
    size_t n = fread(out, 1, outlen - 1, f);
    int toolong = (n == outlen - 1) && fgetc(f) != EOF;
    fclose(f);
    if (toolong) {
        snprintf(err, errlen, "%s: %s is longer than %zu bytes", var, path, outlen - 1);
        return -1;
    }
    out[n] = '\0';
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
        out[--n] = '\0';
    return 0;
}

int config_get_secret(const char *name, char *out, size_t outlen, char *err, size_t errlen)
{
    char fvar[128];
    const char *v = config_env(name);
    snprintf(fvar, sizeof fvar, "%s_FILE", name);
    const char *path = config_env(fvar);
    out[0] = '\0';
    if (v && path) {
        snprintf(err, errlen, "%s and %s are both set; set only one", name, fvar);
        return -1;
    }
    if (path) return config_read_secret_file(fvar, path, out, outlen, err, errlen);
    if (!v) return 0;
    if (strlen(v) >= outlen) {
        snprintf(err, errlen, "%s is longer than %zu bytes", name, outlen - 1);
        return -1;
    }
    memcpy(out, v, strlen(v) + 1);
    return 0;
}

/* Parse "N" at s (digits only) within [min,max]. */
static int config_parse_int(const char *s, size_t len, int min, int max, int *out)
{
    if (len == 0 || len > 9) return -1;
    int n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        n = n * 10 + (s[i] - '0');
    }
    if (n < min || n > max) return -1;
    *out = n;
    return 0;
}

static int config_parse_unix_url(const char *rest, redis_url_t *out, char *err, size_t errlen)
{
    const char *q = strchr(rest, '?');
    size_t plen = q ? (size_t)(q - rest) : strlen(rest);
    if (plen == 0 || plen >= sizeof out->unix_path || rest[0] != '/') {
        snprintf(err, errlen, "REDIS_URL: unix socket path must be absolute");
        return -1;
    }
    memcpy(out->unix_path, rest, plen);
    out->unix_path[plen] = '\0';
    if (q && (strncmp(q, "?db=", 4) != 0 ||
              config_parse_int(q + 4, strlen(q + 4), 0, 1000000, &out->db) < 0)) {
        snprintf(err, errlen, "REDIS_URL: expected ?db=N after the socket path");
        return -1;
    }
    return 0;
}

/* s[0..n) percent-decoded into out (size len); -1 when too long or a bad escape. */
static int config_unescape(const char *s, size_t n, char *out, size_t len)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            unsigned v;
            if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) || !isxdigit((unsigned char)s[i + 2]) ||
                sscanf(s + i + 1, "%2x", &v) != 1)
                return -1;
            c = (int)v, i += 2;
        }
        if (k + 1 >= len || c == 0) return -1;
        out[k++] = (char)c;
    }
    out[k] = '\0';
    return 0;
}

/* Split "[[user]:password@]host[:port][/db]" of a redis:// URL. */
static int config_parse_tcp_url(const char *rest, redis_url_t *out, char *err, size_t errlen)
{
    const char *at = strrchr(rest, '@');
    if (at) {
        const char *pw = rest;
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        if (colon) pw = colon + 1; /* "user:password@" or ":password@"; without a colon, the password alone */
        if (colon && config_unescape(rest, (size_t)(colon - rest), out->user, sizeof out->user) < 0)
            return snprintf(err, errlen, "REDIS_URL: the user name is too long or has a bad %%-escape"), -1;
        if (config_unescape(pw, (size_t)(at - pw), out->password, sizeof out->password) < 0)
            return snprintf(err, errlen, "REDIS_URL: the password is too long or has a bad %%-escape"), -1;
        rest = at + 1;
    }
    const char *slash = strchr(rest, '/');
    size_t hp = slash ? (size_t)(slash - rest) : strlen(rest);
    const char *colon = memchr(rest, ':', hp);
    size_t hlen = colon ? (size_t)(colon - rest) : hp;
    if (hlen == 0 || hlen >= sizeof out->host) {
        snprintf(err, errlen, "REDIS_URL: missing or too long host");
        return -1;
    }
    memcpy(out->host, rest, hlen);
    out->host[hlen] = '\0';
    if (colon && config_parse_int(colon + 1, hp - hlen - 1, 1, 65535, &out->port) < 0) {
        snprintf(err, errlen, "REDIS_URL: port must be 1..65535");
        return -1;
    }
    if (slash && slash[1] && config_parse_int(slash + 1, strlen(slash + 1), 0, 1000000, &out->db) < 0) {
        snprintf(err, errlen, "REDIS_URL: database must be a number after '/'");
        return -1;
    }
    return 0;
}

int config_parse_redis_url(const char *url, redis_url_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (!url || !*url) url = "redis://127.0.0.1:6379/0";
    if (strncmp(url, "unix://", 7) == 0) return config_parse_unix_url(url + 7, out, err, errlen);
    if (strncmp(url, "redis://", 8) == 0) return config_parse_tcp_url(url + 8, out, err, errlen);
    if (strncmp(url, "rediss://", 9) == 0)
        snprintf(err, errlen, "REDIS_URL: rediss:// (TLS) is not supported by this build's hiredis; "
                              "use a TLS proxy such as stunnel and a redis:// URL");
    else
        snprintf(err, errlen, "REDIS_URL: must start with redis:// or unix://");
    return -1;
}

typedef struct { const char *name; long def, min, max; size_t off; } config_long_spec_t;

#define QT_LONG(n, d, lo, hi, field) {n, d, lo, hi, offsetof(qt_config_t, field)}
int config_get_breaker(const char *prefix, breaker_config_t *cfg, char *err, size_t errlen)
{
    char n[7][96];
    static const char *const suffix[] = {"WINDOW", "MIN_CALLS", "FAILURE_RATE", "SLOW_CALL_MS",
                                         "SLOW_RATE", "OPEN_WAIT_MS", "HALF_OPEN_CALLS"};
    for (int i = 0; i < 7; i++) snprintf(n[i], sizeof n[i], "%s_%s", prefix, suffix[i]);
    long w, mc, sc, ow, hc;
    if (config_get_long(n[0], cfg->window_size, 1, 1000, &w, err, errlen) < 0 ||
        config_get_long(n[1], cfg->min_calls, 1, 1000, &mc, err, errlen) < 0 ||
        config_get_double(n[2], cfg->failure_rate, 0.01, 1.0, &cfg->failure_rate, err, errlen) < 0 ||
        config_get_long(n[3], (long)cfg->slow_call_ms, 0, 3600000, &sc, err, errlen) < 0 ||
        config_get_double(n[4], cfg->slow_rate, 0.01, 1.0, &cfg->slow_rate, err, errlen) < 0 ||
        config_get_long(n[5], (long)cfg->open_wait_ms, 1, 86400000, &ow, err, errlen) < 0 ||
        config_get_long(n[6], cfg->half_open_calls, 1, 1000, &hc, err, errlen) < 0)
        return -1;
    cfg->window_size = (int)w;
    cfg->min_calls = (int)mc;
    cfg->slow_call_ms = sc;
    cfg->open_wait_ms = ow;
    cfg->half_open_calls = (int)hc;
    return 0;
}

int config_get_binance(binance_config_t *c, const char *base_default, char *err, size_t errlen)
{
    const char *base;
    memset(c, 0, sizeof *c);
    config_get_str("QT_BINANCE_BASE_URL", base_default ? base_default : BINANCE_TESTNET, &base);
    if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0)
        return snprintf(err, errlen, "QT_BINANCE_BASE_URL: must start with https:// (or http:// for a local test)"), -1;
    snprintf(c->base_url, sizeof c->base_url, "%s", base);
    size_t n = strlen(c->base_url);
    if (n && c->base_url[n - 1] == '/') c->base_url[n - 1] = '\0';
    if (config_get_secret("QT_BINANCE_API_KEY", c->api_key, sizeof c->api_key, err, errlen) < 0 ||
        config_get_secret("QT_BINANCE_API_SECRET", c->api_secret, sizeof c->api_secret, err, errlen) < 0 ||
        config_get_long("QT_BINANCE_RECV_WINDOW_MS", 5000, 1, 60000, &c->recv_window_ms, err, errlen) < 0 ||
        config_get_long("QT_BINANCE_TIMEOUT_MS", 3000, 100, 60000, &c->timeout_ms, err, errlen) < 0 ||
        config_get_long("QT_BINANCE_WEIGHT_LIMIT", 2000, 0, 100000, &c->weight_limit, err, errlen) < 0)
        return -1;
    return 0;
}

static const config_long_spec_t config_common_longs[] = {
    QT_LONG("QT_CLAIM_IDLE_MS", 30000, 10, 86400000L, claim_idle_ms),
    QT_LONG("QT_MAX_DELIVERIES", 5, 1, 1000, max_deliveries),
    QT_LONG("QT_STREAM_MAXLEN", 1000000, 1000, 1000000000L, stream_maxlen),
    QT_LONG("QT_DLQ_MAXLEN", 100000, 100, 1000000000L, dlq_maxlen),
    QT_LONG("QT_BATCH", 256, 1, 10000, batch),
    QT_LONG("QT_BLOCK_MS", 1000, 10, 60000, block_ms),
    QT_LONG("QT_OUTBOX_MAX", 10000, 10, 10000000L, outbox_max),
    QT_LONG("QT_REDIS_TIMEOUT_MS", 5000, 100, 600000, redis_timeout_ms),
    QT_LONG("QT_RETRY_DELAY_MS", 1000, 1, 600000, retry_delay_ms),
    QT_LONG("QT_DRAIN_MS", 10000, 0, 600000, drain_ms),
    QT_LONG("QT_HTTP_MAX_CONNECTIONS", 1024, 1, 1000000, http_max_conns),
    QT_LONG("QT_HTTP_IDLE_MS", 10000, 100, 3600000, http_idle_ms),
    QT_LONG("QT_HTTP_BUSY_MS", 500, 10, 60000, http_busy_ms),
    QT_LONG("QT_HEALTH_STALL_MS", 300000, 1000, 86400000, health_stall_ms),
    QT_LONG("QT_MAX_CLOCK_SKEW_MS", EVENT_CLOCK_SKEW_MS, 1000, 86400000, clock_skew_ms),
    QT_LONG("QT_MAX_TIME_JUMP_MS", 7L * 86400000L, 60000, 3650L * 86400000L, max_time_jump_ms),
    QT_LONG("QT_MAX_ENTRY_BYTES", 1L << 20, 4096, 256L << 20, max_entry_bytes),
    QT_LONG("QT_MAX_READ_BYTES", 16L << 20, 65536, 1L << 30, max_read_bytes),
    QT_LONG("QT_CHECKPOINT_MS", 1000, 10, 3600000, checkpoint_ms),
    QT_LONG("QT_PARTITIONS", 1, 1, QT_PARTITIONS_MAX, partitions),
    QT_LONG("QT_LEASE_MS", 5000, 300, 600000, lease_ms),
};

/* The namespace becomes part of every key; keep it to a safe alphabet. */
static int config_check_ns(const char *ns, char *err, size_t errlen)
{
    size_t n = strlen(ns);
    for (size_t i = 0; i < n; i++) {
        char c = ns[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.')) {
            snprintf(err, errlen, "QT_NAMESPACE: '%s' may use only letters, digits, '_', '-', '.'", ns);
            return -1;
        }
    }
    if (n == 0 || n > 64) {
        snprintf(err, errlen, "QT_NAMESPACE: must be 1..64 characters");
        return -1;
    }
    return 0;
}

int config_common_load(qt_config_t *cfg, const char *service, long default_port,
                       char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->service, sizeof cfg->service, "%s", service);
    config_get_str("QT_NAMESPACE", "qt", &cfg->ns);
    config_get_str("REDIS_URL", "redis://127.0.0.1:6379/0", &cfg->redis_url_str);
    config_get_str("QT_HTTP_BIND", "127.0.0.1", &cfg->http_bind);
    config_get_str("QT_CORS_ORIGINS", "http://127.0.0.1:8081,http://localhost:8081", &cfg->cors_origins);
    config_get_str("QT_LOG_LEVEL", "info", &cfg->log_level);
    if (config_check_ns(cfg->ns, err, errlen) < 0 ||
        config_parse_redis_url(cfg->redis_url_str, &cfg->redis, err, errlen) < 0 ||
        config_get_long("QT_HTTP_PORT", default_port, 0, 65535, &cfg->http_port, err, errlen) < 0 ||
        config_get_secret("QT_API_TOKEN", cfg->api_token, sizeof cfg->api_token, err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < sizeof config_common_longs / sizeof config_common_longs[0]; i++) {
        const config_long_spec_t *s = &config_common_longs[i];
        long *dst = (long *)(void *)((char *)cfg + s->off);
        if (config_get_long(s->name, s->def, s->min, s->max, dst, err, errlen) < 0) return -1;
    }
    if (cfg->max_read_bytes < 2 * cfg->max_entry_bytes) {
        snprintf(err, errlen, "QT_MAX_READ_BYTES=%ld must be at least twice QT_MAX_ENTRY_BYTES=%ld (a read holds "
                 "one entry of the largest size allowed and the reply around it)", cfg->max_read_bytes,
                 cfg->max_entry_bytes);
        return -1;
    }
    breaker_config_default(&cfg->redis_breaker);
    cfg->redis_breaker.open_wait_ms = 2000; /* Redis comes back fast; do not sit out 30 s */
    return config_get_breaker("QT_REDIS_BREAKER", &cfg->redis_breaker, err, errlen);
}
