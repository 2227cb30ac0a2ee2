/* Integration tests: the HTTP server of a real process (bus-worker) —
 * JSON errors, bearer auth, body limits, abuse, and pause/resume. */
#include "check.h"
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define TOKEN "s3cret-token-value-123"

static th_redis_t R;
static char worker_path[256], logdir[256];

static pid_t start(const char *ns, const char *token, int *port, const char *log)
{
    char t[200], tag[64];
    snprintf(t, sizeof t, "QT_API_TOKEN=%s", token ? token : "");
    snprintf(tag, sizeof tag, "%.*s", (int)(strlen(log) - 4), log); /* "h1.log" → "h1" */
    const char *env[] = {t, NULL};
    return th_service(worker_path, &R, ns, env, logdir, tag, port, 1);
}

/* SIGTERM and expect a clean exit (valgrind errors exit 99 under make valgrind). */
static void stop(pid_t w) { CHECK_EQ(th_stop(w, 30000), 0); }

static int req(int port, const char *m, const char *path, const char *hdr, const char *body, char *out)
{
    return th_http(port, m, path, hdr, body, out, 65536);
}

/* Send raw bytes and read whatever comes back; the server must survive. */
static void raw(int port, const char *bytes, size_t len)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {2, 0};
    char buf[4096];
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        if (write(fd, bytes, len) < 0) {}
        if (read(fd, buf, sizeof buf) < 0) {}
    }
    close(fd);
}

/* Open a connection that sends half a request and keeps it open. */
static int half_request(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd >= 0 && (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 || write(fd, "GET /health HTTP/1.1\r\n", 22) != 22)) {
        close(fd);
        return -1;
    }
    return fd;
}

static char out[65536];

/* Send a raw request; the whole reply (status line, headers, body) into buf. */
static void raw_reply(int port, const char *request, char *buf, size_t len)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {2, 0};
    size_t got = 0;
    ssize_t k;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 && write(fd, request, strlen(request)) > 0)
        while (got + 1 < len && (k = read(fd, buf + got, len - 1 - got)) > 0) got += (size_t)k;
    buf[got] = '\0';
    close(fd);
}

TEST(errors_are_json)
{
    int port;
    pid_t w = start("h1", TOKEN, &port, "h1.log");
    CHECK_EQ(req(port, "GET", "/nope", NULL, NULL, out), 404);
    CHECK_CONTAINS(out, "{\"error\":\"no such endpoint: /nope\"}");
    CHECK_EQ(req(port, "POST", "/health", NULL, NULL, out), 405);
    CHECK_CONTAINS(out, "\"error\":\"method POST not allowed on /health\"");
    CHECK_EQ(req(port, "GET", "/health", NULL, NULL, out), 200);
    CHECK_CONTAINS(out, "\"status\":\"ok\"");
    CHECK_EQ(req(port, "GET", "/api/v1/status", NULL, NULL, out), 200);
    CHECK_CONTAINS(out, "\"service\":\"worker\"");
    CHECK_EQ(req(port, "GET", "/metrics", NULL, NULL, out), 200);
    CHECK_CONTAINS(out, "# TYPE qt_http_requests_total counter");
    CHECK_CONTAINS(out, "qt_http_requests_total{code=\"404\"} 1");
    stop(w);
}

TEST(cors_only_for_the_listed_origins_and_only_on_get)
{
    int port;
    pid_t w = start("h6", TOKEN, &port, "h6.log"); /* QT_CORS_ORIGINS: the default, the dashboard on :8081 */
#define CORS_RQ "%s /health HTTP/1.1\r\nHost: x\r\nOrigin: %s\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    char rq[512];
    snprintf(rq, sizeof rq, CORS_RQ, "GET", "http://127.0.0.1:8081");
    raw_reply(port, rq, out, sizeof out);
    CHECK_CONTAINS(out, "HTTP/1.1 200");
    CHECK_CONTAINS(out, "Access-Control-Allow-Origin: http://127.0.0.1:8081\r\n");
    CHECK_CONTAINS(out, "Vary: Origin\r\n");
    const char *refused[][2] = {{"GET", "http://evil.example"},       /* not listed */
                                {"GET", "http://127.0.0.1:808"},      /* a prefix of a listed one */
                                {"GET", "http://127.0.0.1:8081.evil"}, /* a listed one as a prefix */
                                {"POST", "http://127.0.0.1:8081"}};   /* listed, but not a GET */
    for (int i = 0; i < 4; i++) {
        snprintf(rq, sizeof rq, CORS_RQ, refused[i][0], refused[i][1]);
        raw_reply(port, rq, out, sizeof out);
        CHECK(strncmp(out, "HTTP/1.1 ", 9) == 0); /* it answered */
        if (strstr(out, "Access-Control-Allow-Origin")) CHECK_FAIL_AT("%s from %s was allowed", refused[i][0], refused[i][1]);
    }
    stop(w);
}

TEST(auth_guard)
{
    int port;
    char hdr[128];
    pid_t w = start("h2", TOKEN, &port, "h2.log");
    const char *body = "{\"reason\":\"maintenance\"}";
    CHECK_EQ(req(port, "POST", "/api/v1/worker/pause", NULL, body, out), 401);
    CHECK_CONTAINS(out, "missing Authorization: Bearer token");
    CHECK_EQ(req(port, "POST", "/api/v1/worker/pause", "Authorization: Bearer wrong\r\n", body, out), 401);
    CHECK_CONTAINS(out, "invalid bearer token");
    CHECK_EQ(req(port, "POST", "/api/v1/worker/pause", "Authorization: Basic abc\r\n", body, out), 401);
    CHECK_EQ(req(port, "POST", "/api/v1/worker/pause", "Authorization: Bearer " TOKEN "x\r\n", body, out), 401);
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", TOKEN);
    CHECK_EQ(req(port, "POST", "/api/v1/worker/pause", hdr, "{not json", out), 400);
    CHECK_CONTAINS(out, "body is not JSON");
    CHECK_EQ(req(port, "POST", "/api/v1/worker/pause", hdr, "{\"reason\":5}", out), 400);
    CHECK_CONTAINS(out, "body must be");
    char *big = malloc(100000);
    memset(big, ' ', 99999);
    big[0] = '"';
    big[99998] = '"';
    big[99999] = 0;
    CHECK_EQ(req(port, "POST", "/api/v1/worker/pause", hdr, big, out), 413);
    CHECK_CONTAINS(out, "over the limit of 65536");
    free(big);
    CHECK_EQ(req(port, "POST", "/api/v1/worker/pause", hdr, body, out), 200);
    CHECK_EQ(req(port, "GET", "/api/v1/status", NULL, NULL, out), 200);
    CHECK_CONTAINS(out, "\"paused\":true");
    CHECK_CONTAINS(out, "\"pause_reason\":\"maintenance\"");
    CHECK_EQ(req(port, "POST", "/api/v1/worker/resume", hdr, NULL, out), 200);
    stop(w);
    /* the token never reaches the logs */
    char path[300], line[4096];
    snprintf(path, sizeof path, "%s/h2.log", logdir);
    FILE *f = fopen(path, "r");
    int leaked = 0, lines = 0;
    while (f && fgets(line, sizeof line, f)) lines++, leaked |= strstr(line, TOKEN) != NULL;
    if (f) fclose(f);
    CHECK(lines > 0);
    CHECK(!leaked);
}

TEST(writes_off_without_token)
{
    int port;
    pid_t w = start("h3", NULL, &port, "h3.log");
    CHECK_EQ(req(port, "POST", "/api/v1/worker/pause", "Authorization: Bearer anything\r\n", "{\"reason\":\"x\"}", out), 403);
    CHECK_CONTAINS(out, "set QT_API_TOKEN to enable them");
    stop(w);
}

TEST(pause_stops_consumption)
{
    int port;
    char hdr[128];
    redisContext *c = th_redis_connect(&R);
    pid_t w = start("h4", TOKEN, &port, "h4.log");
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", TOKEN);
    CHECK_EQ(req(port, "POST", "/api/v1/worker/pause", hdr, "{\"reason\":\"test\"}", out), 200);
    const char *good = "{\"symbol\":\"BTCUSDT\",\"interval\":\"1m\",\"open_time\":1,\"open\":1,\"high\":1,\"low\":1,"
                       "\"close\":1,\"volume\":0,\"closed\":true,\"event_time\":1}";
    freeReplyObject(redisCommand(c, "XADD h4:market * id e1 type market.data.update v 1 ts 1764547200000 source t trace t data %s", good));
    th_sleep_ms(1500);
    redisReply *r = redisCommand(c, "XLEN h4:echo");
    CHECK_EQ(r->integer, 0);
    freeReplyObject(r);
    CHECK_EQ(req(port, "POST", "/api/v1/worker/resume", hdr, NULL, out), 200);
    long long n = 0;
    for (long long end = th_now_ms() + 10000; th_now_ms() < end && n == 0; th_sleep_ms(50)) {
        r = redisCommand(c, "XLEN h4:echo");
        n = r->integer;
        freeReplyObject(r);
    }
    CHECK_EQ(n, 1);
    redisFree(c);
    stop(w);
}

static long long echo_len(redisContext *c, const char *key)
{
    redisReply *r = redisCommand(c, "XLEN %s", key);
    long long n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r) freeReplyObject(r);
    return n;
}

/* A handler that blocks (here: sleeps 4 s, as an exchange call may) holds the
 * service's loop; the server thread still answers, truthfully: /health busy
 * (then stalled), /ready 503, a GET from its last reply, a write refused
 * with nothing done. */
TEST(a_held_loop_still_gets_answers)
{
    int port;
    char t[200], hdr[128], reply[4096];
    redisContext *c = th_redis_connect(&R);
    snprintf(t, sizeof t, "QT_API_TOKEN=%s", TOKEN);
    const char *env[] = {t, "WORKER_SLOW_US=4000000", "QT_HTTP_BUSY_MS=200", "QT_HEALTH_STALL_MS=2000", NULL};
    pid_t w = th_service(worker_path, &R, "h7", env, logdir, "h7", &port, 1);
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", TOKEN);
    CHECK_EQ(req(port, "GET", "/api/v1/status", NULL, NULL, out), 200); /* kept for later */
    CHECK_EQ(req(port, "GET", "/api/v1/worker/state", hdr, NULL, out), 200); /* guarded: never kept */
    const char *bar = "{\"symbol\":\"BTCUSDT\",\"interval\":\"1m\",\"open_time\":1,\"open\":1,\"high\":1,\"low\":1,"
                      "\"close\":1,\"volume\":0,\"closed\":true,\"event_time\":1}";
    freeReplyObject(redisCommand(c, "XADD h7:market * id e1 type market.data.update v 1 ts 1764547200000 source t trace t data %s", bar));
    int st = 0;
    out[0] = '\0';
    for (long long end = th_now_ms() + 3000; th_now_ms() < end && !strstr(out, "\"busy\""); th_sleep_ms(20))
        st = req(port, "GET", "/health", NULL, NULL, out);
    CHECK_EQ(st, 200); /* alive, and says the loop is held */
    CHECK_CONTAINS(out, "\"status\":\"busy\"");
    CHECK_CONTAINS(out, "\"loop_busy_ms\":");
    CHECK_EQ(req(port, "GET", "/ready", NULL, NULL, out), 503);
    CHECK_CONTAINS(out, "\"checks\":{\"loop\":{\"ok\":false,\"reason\":\"busy: the service loop is held by a blocking call (");
    raw_reply(port, "GET /api/v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", reply, sizeof reply);
    CHECK_CONTAINS(reply, "HTTP/1.1 200");
    CHECK_CONTAINS(reply, "X-QT-Stale-Ms: "); /* the last answer, marked as such */
    CHECK_CONTAINS(reply, "\"service\":\"worker\"");
    CHECK_EQ(req(port, "GET", "/api/v1/worker/state", NULL, NULL, out), 503); /* not the token holder's reply */
    CHECK(strstr(out, "slow_us") == NULL);
    CHECK_EQ(req(port, "GET", "/api/v1/never-asked", NULL, NULL, out), 503);
    CHECK_CONTAINS(out, "try again");
    CHECK_EQ(req(port, "POST", "/api/v1/worker/pause", hdr, "{\"reason\":\"test\"}", out), 503);
    CHECK_CONTAINS(out, "nothing was done");
    th_sleep_ms(2000);
    CHECK_EQ(req(port, "GET", "/health", NULL, NULL, out), 503); /* held past QT_HEALTH_STALL_MS */
    CHECK_CONTAINS(out, "\"status\":\"stalled\"");
    for (long long end = th_now_ms() + 10000; th_now_ms() < end && echo_len(c, "h7:echo") < 1;) th_sleep_ms(50);
    CHECK_EQ(req(port, "GET", "/health", NULL, NULL, out), 200);
    CHECK_CONTAINS(out, "\"status\":\"ok\"");
    /* the refused pause was not done: the next event is handled */
    freeReplyObject(redisCommand(c, "XADD h7:market * id e2 type market.data.update v 1 ts 1764547200000 source t trace t data %s", bar));
    for (long long end = th_now_ms() + 15000; th_now_ms() < end && echo_len(c, "h7:echo") < 2;) th_sleep_ms(50);
    CHECK_EQ(echo_len(c, "h7:echo"), 2);
    th_sleep_ms(300); /* the loop counts the server thread's answers on its next beat */
    CHECK_EQ(req(port, "GET", "/metrics", NULL, NULL, out), 200);
    const char *busy = strstr(out, "\nqt_http_busy_answers_total ");
    CHECK(busy && atol(busy + 28) >= 6);
    redisFree(c);
    stop(w);
}

TEST(abuse_does_not_hurt)
{
    int port;
    pid_t w = start("h5", TOKEN, &port, "h5.log");
    raw(port, "GARBAGE\r\n\r\n", 11);
    raw(port, "GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 52);
    raw(port, "GET /%00%ff HTTP/1.1\r\nHost: x\r\n\r\n", 34);
    char hdrs[40000];
    memset(hdrs, 'a', sizeof hdrs);
    memcpy(hdrs, "GET /health HTTP/1.1\r\nX: ", 25);
    raw(port, hdrs, sizeof hdrs); /* oversized headers */
    raw(port, "POST /api/v1/worker/pause HTTP/1.1\r\nContent-Length: 100000000\r\n\r\nxx", 67);
    int half[50]; /* slowloris: 50 connections holding half a request open at once */
    for (int i = 0; i < 50; i++) half[i] = half_request(port);
    CHECK_EQ(req(port, "GET", "/health", NULL, NULL, out), 200);
    for (int i = 0; i < 50; i++)
        if (half[i] >= 0) close(half[i]);
    CHECK_EQ(req(port, "GET", "/a/%2e%2e/%00", NULL, NULL, out), 400);
    CHECK_EQ(req(port, "GET", "/health?x=%zz", NULL, NULL, out), 200);
    CHECK_EQ(kill(w, 0), 0);
    CHECK_EQ(req(port, "GET", "/health", NULL, NULL, out), 200);
    stop(w);
}

/* Out of file descriptors (more clients than the open-files limit): before,
 * libevent called accept() again at once for ever, a log line each time
 * (6.5 M lines in 19 s). Now a refused connection is taken with the spare
 * descriptor and closed, accepting pauses 100 ms, one line per 10 s says how
 * many; when the clients go, the service answers again and stays ready. */
TEST(out_of_descriptors_the_service_pauses_accepting_and_recovers)
{
    char e[3][200], log[400], prl[] = "/usr/bin/prlimit";
    int port = th_free_port(), fds[200], n = 0;
    snprintf(e[0], sizeof e[0], "REDIS_URL=%s", R.url);
    snprintf(e[1], sizeof e[1], "QT_NAMESPACE=h9");
    snprintf(e[2], sizeof e[2], "QT_HTTP_PORT=%d", port);
    const char *env[] = {e[0], e[1], e[2], NULL};
    snprintf(log, sizeof log, "%s/h9.log", logdir);
    const char *argv[] = {prl, "--nofile=64:64", worker_path, NULL};
    pid_t w = th_spawn(prl, argv, env, log);
    CHECK_EQ(th_wait_http(port, "/ready", 200, 15000), 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < 200; i++) { /* idle clients, three times what the service may hold */
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) break;
        if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
            close(fd);
            continue;
        }
        fds[n++] = fd;
    }
    th_sleep_ms(2000); /* long enough for a spinning accept() to write a million lines */
    for (int i = 0; i < n; i++) close(fds[i]);
    CHECK_EQ(th_wait_http(port, "/health", 200, 10000), 0);
    CHECK_EQ(th_wait_http(port, "/ready", 200, 10000), 0);
    CHECK_EQ(kill(w, 0), 0);
    FILE *f = fopen(log, "r");
    long lines = 0, accepts = 0;
    char line[4096];
    while (f && fgets(line, sizeof line, f)) /* out of descriptors, or (now) at the cap below the limit */
        lines++, accepts += strstr(line, "ccept") != NULL || strstr(line, "the most this service holds") != NULL;
    if (f) fclose(f);
    CHECK(accepts >= 1);  /* it said so */
    CHECK(lines < 100);   /* and did not flood the log */
    CHECK_EQ(req(port, "GET", "/metrics", NULL, NULL, out), 200);
    CHECK_CONTAINS(out, "qt_http_accept_errors_total ");
    stop(w);
}

static long redis_clients(void)
{
    redisContext *c = th_redis_connect(&R);
    redisReply *r = c ? redisCommand(c, "INFO clients") : NULL;
    const char *p = r && r->type == REDIS_REPLY_STRING ? strstr(r->str, "connected_clients:") : NULL;
    long n = p ? atol(p + 18) : -1;
    if (r) freeReplyObject(r);
    if (c) redisFree(c);
    return n - 1; /* not this one */
}

/* Idle clients beyond the open-files limit held every descriptor: /health
 * went down and the Redis links could not reconnect until the clients left.
 * Now the service holds at most the open-files limit less a reserve, closes
 * silent connections after QT_HTTP_IDLE_MS, and its Redis links come back
 * while the crowd is still there. */
TEST(a_crowd_of_idle_clients_cannot_hold_the_service_or_its_redis_links)
{
    char e[4][200], log[400], prl[] = "/usr/bin/prlimit";
    int port = th_free_port(), fds[200], n = 0;
    snprintf(e[0], sizeof e[0], "REDIS_URL=%s", R.url);
    snprintf(e[1], sizeof e[1], "QT_NAMESPACE=h10");
    snprintf(e[2], sizeof e[2], "QT_HTTP_PORT=%d", port);
    snprintf(e[3], sizeof e[3], "QT_HTTP_IDLE_MS=1000");
    const char *env[] = {e[0], e[1], e[2], e[3], NULL};
    snprintf(log, sizeof log, "%s/h10.log", logdir);
    const char *argv[] = {prl, "--nofile=96:96", worker_path, NULL};
    pid_t w = th_spawn(prl, argv, env, log);
    CHECK_EQ(th_wait_http(port, "/ready", 200, 15000), 0);
    long links = redis_clients();
    CHECK(links >= 2);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < 120; i++) { /* more than the open-files limit, held open until the end */
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (fd < 0) break;
        connect(fd, (struct sockaddr *)&a, sizeof a);
        fds[n++] = fd;
    }
    th_sleep_ms(300);
    redisContext *c = th_redis_connect(&R);
    redisReply *r = redisCommand(c, "CLIENT KILL TYPE normal SKIPME yes");
    if (r) freeReplyObject(r);
    redisFree(c);
    int back = 0;
    for (long long end = th_now_ms() + 10000; th_now_ms() < end && !back; th_sleep_ms(50))
        back = redis_clients() >= links;
    CHECK(back); /* both links again, the crowd still connected */
    CHECK_EQ(th_wait_http(port, "/ready", 200, 15000), 0);
    CHECK_EQ(req(port, "GET", "/metrics", NULL, NULL, out), 200);
    CHECK_CONTAINS(out, "qt_http_connections_max ");
    CHECK_CONTAINS(out, "qt_http_connection_cap_reached_total ");
    for (int i = 0; i < n; i++) close(fds[i]);
    CHECK_EQ(kill(w, 0), 0);
    stop(w);
}

int main(int argc, char **argv);

__attribute__((constructor)) static void setup(void)
{
    th_watchdog(300);
    th_bin("tests/bin/bus-worker", worker_path, sizeof worker_path);
    th_tempdir(logdir, sizeof logdir);
    if (th_redis_start(&R, 0) < 0) exit(2);
}

CHECK_MAIN()
