/* Unit tests: environment getters, secrets, REDIS_URL and the common settings. */
#include "check.h"
#include "config.h"

#include <unistd.h>

TEST(redis_url_forms)
{
    redis_url_t u;
    char err[256];
    CHECK_EQ(config_parse_redis_url(NULL, &u, err, sizeof err), 0);
    CHECK_STR(u.host, "127.0.0.1");
    CHECK_EQ(u.port, 6379);
    CHECK_EQ(u.db, 0);
    CHECK_EQ(config_parse_redis_url("redis://:s3cret@cache.local:7000/3", &u, err, sizeof err), 0);
    CHECK_STR(u.host, "cache.local");
    CHECK_EQ(u.port, 7000);
    CHECK_STR(u.password, "s3cret");
    CHECK_EQ(u.db, 3);
    CHECK_EQ(config_parse_redis_url("redis://user:pw@h", &u, err, sizeof err), 0);
    CHECK_STR(u.password, "pw");
    CHECK_STR(u.user, "user"); /* an ACL user: AUTH user pw (it was dropped: AUTH pw logged in as default) */
    CHECK_EQ(config_parse_redis_url("redis://qt-engine:p%40ss%3Aw0rd@h:7000", &u, err, sizeof err), 0);
    CHECK_STR(u.user, "qt-engine");
    CHECK_STR(u.password, "p@ss:w0rd");
    CHECK_EQ(u.port, 7000);
    CHECK_EQ(config_parse_redis_url("redis://:s3cret@h", &u, err, sizeof err), 0);
    CHECK_STR(u.user, "");
    CHECK_EQ(config_parse_redis_url("redis://u:bad%4@h", &u, err, sizeof err), -1);
    CHECK_CONTAINS(err, "bad %-escape");
    CHECK(strstr(err, "bad%4") == NULL);
    CHECK_EQ(config_parse_redis_url("redis://u:nul%00x@h", &u, err, sizeof err), -1);
    CHECK_EQ(u.port, 6379);
    CHECK_EQ(config_parse_redis_url("unix:///run/redis.sock?db=2", &u, err, sizeof err), 0);
    CHECK_STR(u.unix_path, "/run/redis.sock");
    CHECK_EQ(u.db, 2);
}

TEST(redis_url_errors_hide_password)
{
    redis_url_t u;
    char err[256];
    CHECK_EQ(config_parse_redis_url("http://x", &u, err, sizeof err), -1);
    CHECK_CONTAINS(err, "must start with redis://");
    CHECK_EQ(config_parse_redis_url("redis://:hunter2@host:99999", &u, err, sizeof err), -1);
    CHECK_CONTAINS(err, "port must be 1..65535");
    CHECK(strstr(err, "hunter2") == NULL);
    CHECK_EQ(config_parse_redis_url("redis://host/x", &u, err, sizeof err), -1);
    CHECK_EQ(config_parse_redis_url("rediss://host", &u, err, sizeof err), -1);
    CHECK_CONTAINS(err, "TLS");
    CHECK_EQ(config_parse_redis_url("redis://", &u, err, sizeof err), -1);
}

TEST(typed_getters)
{
    long n;
    double d;
    int b;
    char err[256];
    unsetenv("T_N");
    CHECK_EQ(config_get_long("T_N", 5, 0, 10, &n, err, sizeof err), 0);
    CHECK_EQ(n, 5);
    setenv("T_N", "7", 1);
    CHECK_EQ(config_get_long("T_N", 5, 0, 10, &n, err, sizeof err), 0);
    CHECK_EQ(n, 7);
    setenv("T_N", "11", 1);
    CHECK_EQ(config_get_long("T_N", 5, 0, 10, &n, err, sizeof err), -1);
    CHECK_CONTAINS(err, "T_N: 11 is out of range [0, 10]");
    setenv("T_N", "7x", 1);
    CHECK_EQ(config_get_long("T_N", 5, 0, 10, &n, err, sizeof err), -1);
    CHECK_CONTAINS(err, "T_N: '7x' is not an integer");
    setenv("T_D", "0.25", 1);
    CHECK_EQ(config_get_double("T_D", 0, 0, 1, &d, err, sizeof err), 0);
    CHECK_NEAR(d, 0.25, 1e-12);
    setenv("T_D", "nan", 1);
    CHECK_EQ(config_get_double("T_D", 0, 0, 1, &d, err, sizeof err), -1);
    setenv("T_B", "Yes", 1);
    CHECK_EQ(config_get_bool("T_B", 0, &b, err, sizeof err), 0);
    CHECK_EQ(b, 1);
    setenv("T_B", "maybe", 1);
    CHECK_EQ(config_get_bool("T_B", 0, &b, err, sizeof err), -1);
    CHECK_CONTAINS(err, "T_B: 'maybe' is not a boolean");
}

TEST(secret_from_file_never_echoed)
{
    char out[64], err[256], path[] = "/tmp/qt-secret-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK_EQ(write(fd, "tok-123\n", 8), 8);
    close(fd);
    unsetenv("T_SECRET");
    setenv("T_SECRET_FILE", path, 1);
    CHECK_EQ(config_get_secret("T_SECRET", out, sizeof out, err, sizeof err), 0);
    CHECK_STR(out, "tok-123");
    setenv("T_SECRET", "inline", 1);
    CHECK_EQ(config_get_secret("T_SECRET", out, sizeof out, err, sizeof err), -1);
    CHECK_CONTAINS(err, "both set");
    unsetenv("T_SECRET");
    setenv("T_SECRET_FILE", "/nonexistent/qt", 1);
    CHECK_EQ(config_get_secret("T_SECRET", out, sizeof out, err, sizeof err), -1);
    CHECK_CONTAINS(err, "T_SECRET_FILE: cannot open /nonexistent/qt");
    unsetenv("T_SECRET_FILE");
    unlink(path);
}

TEST(common_settings)
{
    qt_config_t c;
    char err[256];
    unsetenv("QT_NAMESPACE");
    unsetenv("REDIS_URL");
    unsetenv("QT_HTTP_PORT");
    unsetenv("QT_API_TOKEN");
    unsetenv("QT_API_TOKEN_FILE");
    CHECK_EQ(config_common_load(&c, "trading-engine", 8081, err, sizeof err), 0);
    CHECK_STR(c.ns, "qt");
    CHECK_EQ(c.http_port, 8081);
    CHECK_STR(c.http_bind, "127.0.0.1");
    CHECK_EQ(c.claim_idle_ms, 30000);
    CHECK_EQ(c.max_deliveries, 5);
    CHECK_STR(c.api_token, "");
    setenv("QT_NAMESPACE", "acct 1", 1);
    CHECK_EQ(config_common_load(&c, "x", 1, err, sizeof err), -1);
    CHECK_CONTAINS(err, "QT_NAMESPACE");
    setenv("QT_NAMESPACE", "acct1", 1);
    setenv("QT_MAX_DELIVERIES", "0", 1);
    CHECK_EQ(config_common_load(&c, "x", 1, err, sizeof err), -1);
    CHECK_CONTAINS(err, "QT_MAX_DELIVERIES: 0 is out of range");
    unsetenv("QT_MAX_DELIVERIES");
    unsetenv("QT_NAMESPACE");
    CHECK_EQ(config_common_load(&c, "x", 1, err, sizeof err), 0);
    CHECK_EQ(c.partitions, 1); /* every stream name as before partitions */
    CHECK_EQ(c.lease_ms, 5000);
    setenv("QT_PARTITIONS", "17", 1);
    CHECK_EQ(config_common_load(&c, "x", 1, err, sizeof err), -1);
    CHECK_CONTAINS(err, "QT_PARTITIONS: 17 is out of range");
    setenv("QT_PARTITIONS", "4", 1);
    setenv("QT_LEASE_MS", "100", 1); /* renewed every 33 ms: too tight for a watchdog of seconds */
    CHECK_EQ(config_common_load(&c, "x", 1, err, sizeof err), -1);
    CHECK_CONTAINS(err, "QT_LEASE_MS");
    unsetenv("QT_LEASE_MS");
    CHECK_EQ(config_common_load(&c, "x", 1, err, sizeof err), 0);
    CHECK_EQ(c.partitions, 4);
    unsetenv("QT_PARTITIONS");
}

CHECK_MAIN()
