/* harness.c — see harness.h. */
#include "harness.h"
#include "event.h"
#include "proto.h"
#include "rsync.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TH_MAX 256

static pid_t th_children[TH_MAX];
static int th_nchildren;
static char th_dirs[32][256];
static int th_ndirs;
static pid_t th_owner;

long long th_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long th_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long th_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void th_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

static void th_cleanup(void)
{
    if (getpid() != th_owner) return;
    for (int i = 0; i < th_nchildren; i++)
        if (th_children[i] > 0) {
            kill(th_children[i], SIGCONT);
            kill(th_children[i], SIGKILL);
            waitpid(th_children[i], NULL, 0);
        }
    if (getenv("QT_TEST_KEEP")) { /* keep logs and data for a post-mortem */
        for (int i = 0; i < th_ndirs; i++) fprintf(stderr, "harness: kept %s\n", th_dirs[i]);
        return;
    }
    for (int i = 0; i < th_ndirs; i++) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%.256s'", th_dirs[i]);
        if (system(cmd) != 0) fprintf(stderr, "harness: could not remove %s\n", th_dirs[i]);
    }
}

static void th_register_cleanup(void)
{
    if (th_owner) return;
    th_owner = getpid();
    atexit(th_cleanup);
}

static void th_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "harness: watchdog expired, killing children\n";
    if (write(2, msg, sizeof msg - 1) < 0) {}
    for (int i = 0; i < th_nchildren; i++)
        if (th_children[i] > 0) kill(th_children[i], SIGKILL);
    _exit(2);
}

void th_watchdog(int seconds)
{
    th_register_cleanup();
    signal(SIGALRM, th_alarm);
    alarm((unsigned)seconds);
}

int th_port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1, ok;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0) return 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* A port below the kernel's ephemeral range (ip_local_port_range): one the
 * kernel hands to bind(0) can, before the service binds it, become the local
 * end of some process's outgoing connection (a Redis link, a health check),
 * and the service then fails to start with "address in use". */
int th_free_port(void)
{
    static unsigned seed;
    int low = 32768, high = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d %d", &low, &high) != 2) low = 32768;
        fclose(f);
    }
    if (!seed) seed = (unsigned)getpid() ^ (unsigned)time(NULL);
    for (int i = 0; low > 12000 && i < 200; i++) {
        int p = 10000 + (int)(rand_r(&seed) % (unsigned)(low - 10000 - 8)); /* room for a few ports after it */
        if (th_port_free(p)) return p;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0); /* no room below the range: let the kernel pick */
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0) return -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

int th_tempdir(char *out, size_t len)
{
    th_register_cleanup();
    const char *base = getenv("TMPDIR");
    snprintf(out, len, "%s/qt-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(out)) return -1;
    if (th_ndirs < 32) snprintf(th_dirs[th_ndirs++], sizeof th_dirs[0], "%s", out);
    return 0;
}

static void th_track(pid_t pid)
{
    for (int i = 0; i < th_nchildren; i++)
        if (th_children[i] == 0) {
            th_children[i] = pid;
            return;
        }
    if (th_nchildren < TH_MAX) th_children[th_nchildren++] = pid;
}

static void th_untrack(pid_t pid)
{
    for (int i = 0; i < th_nchildren; i++)
        if (th_children[i] == pid) th_children[i] = 0;
}

/* exec path, prefixed by $QT_CHILD_WRAPPER (e.g. "valgrind -q ...") when set. */
static void th_exec_wrapped(const char *path, const char *const argv[])
{
    const char *w = getenv("QT_CHILD_WRAPPER");
    if (!w || !*w || strstr(path, "redis-server")) {
        execv(path, (char *const *)argv);
        return;
    }
    char *copy = strdup(w), *save = NULL;
    const char *args[64];
    int n = 0, i = 1;
    size_t pl = strlen(path);
    if (pl >= 7 && strcmp(path + pl - 7, "prlimit") == 0) { /* the wrapper goes inside: valgrind refuses setrlimit */
        args[n++] = path;
        for (; argv[i] && argv[i][0] == '-' && n < 8; i++) args[n++] = argv[i];
    }
    for (char *t = strtok_r(copy, " ", &save); t && n < 48; t = strtok_r(NULL, " ", &save)) args[n++] = t;
    if (n == 0 || args[0] != path) args[n++] = path;
    for (; argv[i] && n < 63; i++) args[n++] = argv[i];
    args[n] = NULL;
    execvp(args[0], (char *const *)args);
}

/* The log files of the processes started, latest use last: a failing test
 * prints the end of each it used (check.h's hooks), so a CI failure
 * explains itself. */
#define TH_LOGS 256
static char th_logs[TH_LOGS][300];
static int th_nlogs, th_logs_mark;

static void th_log_used(const char *logfile)
{
    int i = 0;
    while (i < th_nlogs && strcmp(th_logs[i], logfile) != 0) i++;
    if (i < th_nlogs) { /* used again: move it last */
        memmove(th_logs[i], th_logs[i + 1], (size_t)(th_nlogs - i - 1) * sizeof th_logs[0]);
        th_nlogs--;
        if (i < th_logs_mark) th_logs_mark--;
    }
    if (th_nlogs == TH_LOGS) return;
    snprintf(th_logs[th_nlogs++], sizeof th_logs[0], "%s", logfile);
}

void check_hook_begin(const char *name)
{
    (void)name;
    th_logs_mark = th_nlogs;
}

void check_hook_failed(const char *name)
{
    enum { LINES = 40 };
    for (int i = th_logs_mark; i < th_nlogs; i++) {
        FILE *f = fopen(th_logs[i], "r");
        if (!f) continue;
        static char buf[1 << 20];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        const char *p = buf + n;
        int lines = 0;
        while (p > buf && lines <= LINES) lines += *--p == '\n';
        if (lines > LINES) p++;
        printf("# ---- %s: the end of %s ----\n%s%s# ----\n", name, th_logs[i], p, n && buf[n - 1] != '\n' ? "\n" : "");
    }
}

pid_t th_spawn(const char *path, const char *const argv[], const char *const env[], const char *logfile)
{
    if (logfile) th_log_used(logfile);
    th_register_cleanup();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        for (int i = 0; env && env[i]; i++) putenv((char *)env[i]);
        if (logfile) {
            FILE *f = fopen(logfile, "a");
            if (f) {
                dup2(fileno(f), 1);
                dup2(fileno(f), 2);
            }
        }
        signal(SIGALRM, SIG_DFL);
        alarm(0);
        th_exec_wrapped(path, argv);
        fprintf(stderr, "harness: exec %s: %s\n", path, strerror(errno));
        _exit(127);
    }
    th_track(pid);
    return pid;
}

int th_wait(pid_t pid, int timeout_ms, int *status)
{
    long long end = th_now_ms() + timeout_ms;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            th_untrack(pid);
            if (status) *status = st;
            return 0;
        }
        if (r < 0 || th_now_ms() > end) return -1;
        th_sleep_ms(10);
    }
}

void th_kill(pid_t pid, int sig)
{
    if (pid > 0) kill(pid, sig);
}

redisContext *th_redis_connect(const th_redis_t *r)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
    if (!c || c->err) {
        if (c) redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    return c;
}

static int th_redis_spawn(th_redis_t *r)
{
    char port[16], log[300];
    snprintf(port, sizeof port, "%d", r->port);
    snprintf(log, sizeof log, "%s/redis.log", r->dir);
    const char *argv[] = {"redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", r->dir,
                    "--save", "", "--appendonly", r->aof ? "yes" : "no", "--appendfsync", "everysec",
                    "--daemonize", "no", "--protected-mode", "no", NULL};
    const char *path = getenv("REDIS_SERVER");
    char found[256] = "/usr/bin/redis-server";
    if (!path) {
        if (access(found, X_OK) != 0) snprintf(found, sizeof found, "/usr/local/bin/redis-server");
        path = found;
    }
    r->pid = th_spawn(path, argv, NULL, log);
    if (r->pid < 0) return -1;
    for (long long end = th_now_ms() + 10000; th_now_ms() < end; th_sleep_ms(20)) {
        redisContext *c = th_redis_connect(r);
        if (!c) continue;
        redisReply *rep = redisCommand(c, "PING");
        int ok = rep && rep->type == REDIS_REPLY_STATUS;
        if (rep) freeReplyObject(rep);
        redisFree(c);
        if (ok) return 0;
    }
    fprintf(stderr, "harness: redis-server on port %d did not answer (see %s)\n", r->port, log);
    return -1;
}

int th_redis_start(th_redis_t *r, int aof)
{
    memset(r, 0, sizeof *r);
    r->aof = aof;
    if (th_tempdir(r->dir, sizeof r->dir) < 0) return -1;
    for (int attempt = 0; attempt < 5; attempt++) {
        r->port = th_free_port();
        snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%d/0", r->port);
        if (th_redis_spawn(r) == 0) return 0;
        th_redis_stop(r);
    }
    return -1;
}

void th_redis_stop(th_redis_t *r)
{
    if (r->pid <= 0) return;
    kill(r->pid, SIGCONT);
    kill(r->pid, SIGTERM);
    if (th_wait(r->pid, 10000, NULL) < 0) {
        kill(r->pid, SIGKILL);
        th_wait(r->pid, 5000, NULL);
    }
    r->pid = 0;
}

int th_redis_restart(th_redis_t *r)
{
    th_redis_stop(r);
    return th_redis_spawn(r);
}

const char *th_bin(const char *rel, char *buf, size_t len)
{
    const char *b = getenv("QT_BUILD");
    snprintf(buf, len, "%s/%s", b && *b ? b : "build", rel);
    return buf;
}

int th_http(int port, const char *method, const char *path, const char *headers, const char *body,
            char *reply, size_t replylen)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char req[8192];
    if (fd < 0) return -1;
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    size_t blen = body ? strlen(body) : 0;
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s"
                     "Content-Length: %zu\r\n\r\n", method, path, headers ? headers : "", blen);
    if (write(fd, req, (size_t)n) != n || (blen && write(fd, body, blen) != (ssize_t)blen)) {
        close(fd);
        return -1;
    }
    size_t got = 0, cap = 65536;
    char *tmp = malloc(cap);
    ssize_t k;
    while (tmp && (k = read(fd, tmp + got, cap - 1 - got)) > 0) /* the whole reply, however long */
        if ((got += (size_t)k) == cap - 1) {
            char *more = realloc(tmp, cap *= 2);
            if (!more) free(tmp);
            tmp = more;
        }
    close(fd);
    if (!tmp) return -1;
    tmp[got] = '\0';
    int status = -1;
    if (sscanf(tmp, "HTTP/1.%*d %d", &status) == 1 && reply) {
        const char *b = strstr(tmp, "\r\n\r\n");
        snprintf(reply, replylen, "%s", b ? b + 4 : "");
    }
    free(tmp);
    return status;
}

int th_wait_http(int port, const char *path, int want, int timeout_ms)
{
    for (long long end = th_now_ms() + timeout_ms; th_now_ms() < end; th_sleep_ms(50))
        if (th_http(port, "GET", path, NULL, NULL, NULL, 0) == want) return 0;
    return -1;
}

int th_xadd_event(redisContext *c, const char *key, const char *type, const char *data, const char *id)
{
    static long seq;
    char gen[64], ts[32];
    if (!id) {
        snprintf(gen, sizeof gen, "test-%ld-%ld", (long)getpid(), ++seq);
        id = gen;
    }
    snprintf(ts, sizeof ts, "%lld", th_wall_ms()); /* the envelope's ts: epoch ms */
    redisReply *r = redisCommand(c, "XADD %s * id %s type %s v 1 ts %s source test/harness trace %s data %s", key, id,
                                 type, ts, id, data);
    int ok = r && r->type == REDIS_REPLY_STRING;
    if (r) freeReplyObject(r);
    return ok ? 0 : -1;
}

int th_xadd_flat(redisContext *c, const char *key, const char *type, const char *data, const char *id)
{
    static long seq;
    char gen[64], ts[32];
    json_t *d = json_loads(data, 0, NULL);
    if (!json_is_object(d)) return json_decref(d), -1;
    if (!id) {
        snprintf(gen, sizeof gen, "test-flat-%ld-%ld", (long)getpid(), ++seq);
        id = gen;
    }
    snprintf(ts, sizeof ts, "%lld", th_wall_ms());
    size_t n = 0, cap = 16 + 2 * json_object_size(d);
    const char **argv = calloc(cap, sizeof *argv);
    char **own = calloc(cap, sizeof *own);
    const char *head[] = {"XADD", key, "*", "id", id, "type", type, "v", "2", "ts", ts, "source", "test/harness", "trace", id};
    for (size_t i = 0; i < sizeof head / sizeof head[0]; i++) argv[n++] = head[i];
    const char *k;
    json_t *v;
    size_t no = 0;
    json_object_foreach(d, k, v) {
        int kind = proto_field_kind(type, 1, k, strlen(k));
        char *t = json_is_string(v) && kind != PROTO_FIELD_JSON ? strdup(json_string_value(v))
                                                                : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        own[no++] = t;
        argv[n++] = k;
        argv[n++] = t;
    }
    redisReply *r = redisCommandArgv(c, (int)n, argv, NULL);
    int ok = r && r->type == REDIS_REPLY_STRING;
    if (r) freeReplyObject(r);
    for (size_t i = 0; i < no; i++) free(own[i]);
    free(own);
    free(argv);
    json_decref(d);
    return ok ? 0 : -1;
}

json_t *th_entry_payload(const redisReply *fields) { return rsync_entry_payload(fields, 0); }

long long th_xlen(redisContext *c, const char *key)
{
    redisReply *r = redisCommand(c, "XLEN %s", key);
    long long n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r) freeReplyObject(r);
    return n;
}

int th_wait_xlen(redisContext *c, const char *key, long long n, int timeout_ms)
{
    for (long long end = th_now_ms() + timeout_ms; th_now_ms() < end; th_sleep_ms(20))
        if (th_xlen(c, key) >= n) return 0;
    return -1;
}

/* Field value of a flat field array, or NULL. */
const char *th_entry_field(const redisReply *f, const char *name)
{
    for (size_t k = 0; k + 1 < f->elements; k += 2)
        if (strcmp(f->element[k]->str, name) == 0) return f->element[k + 1]->str;
    return NULL;
}

json_t *th_event_data(redisContext *c, const char *key, const char *type, int nth)
{
    redisReply *r = redisCommand(c, "XRANGE %s - +", key);
    json_t *found = NULL;
    int seen = 0;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *f = r->element[i]->element[1];
        const char *t = th_entry_field(f, "type");
        if (!t || strcmp(t, type) != 0) continue;
        if (nth < 0 || seen++ == nth) {
            json_decref(found);
            found = th_entry_payload(f);
            if (nth >= 0) break;
        }
    }
    if (r) freeReplyObject(r);
    return found;
}

long th_count_type(redisContext *c, const char *key, const char *type)
{
    redisReply *r = redisCommand(c, "XRANGE %s - +", key);
    long n = 0;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const char *t = th_entry_field(r->element[i]->element[1], "type");
        n += !type || (t && strcmp(t, type) == 0); /* NULL: every entry */
    }
    if (r) freeReplyObject(r);
    return n;
}

json_t *th_events_by_bar(redisContext *c, const char *key, const char *type, int *dups_differ)
{
    json_t *all = json_object();
    redisReply *r = redisCommand(c, "XRANGE %s - +", key);
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const char *t = th_entry_field(r->element[i]->element[1], "type");
        json_t *d = t && !strcmp(t, type) ? th_entry_payload(r->element[i]->element[1]) : NULL;
        if (!d) continue;
        char bar[96];
        snprintf(bar, sizeof bar, "%s %lld", json_string_value(json_object_get(d, "symbol")),
                 (long long)json_integer_value(json_object_get(d, "open_time")));
        json_object_del(d, "event_time");
        const json_t *had = json_object_get(all, bar);
        if (had && !json_equal(had, d)) *dups_differ = 1;
        json_object_set_new(all, bar, d);
    }
    if (r) freeReplyObject(r);
    return all;
}

int th_events_differ(const json_t *a, const json_t *b, char *first, size_t len)
{
    const char *bar;
    json_t *v;
    int n = 0;
    json_object_foreach((json_t *)a, bar, v) {
        if (json_equal(v, json_object_get(b, bar))) continue;
        if (n++ == 0) snprintf(first, len, "%s", bar);
    }
    return n + (int)(json_object_size(b) > json_object_size(a) ? json_object_size(b) - json_object_size(a) : 0);
}

int th_group_done(redisContext *c, const char *key, const char *group, int ms)
{
    for (long long end = th_now_ms() + ms; th_now_ms() < end; th_sleep_ms(50)) {
        redisReply *r = redisCommand(c, "XINFO GROUPS %s", key);
        int done = 0;
        for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
            const redisReply *g = r->element[i];
            const char *name = th_entry_field(g, "name");
            long long lag = -1, pending = -1;
            for (size_t k = 0; k + 1 < g->elements; k += 2) {
                if (strcmp(g->element[k]->str, "lag") == 0 && g->element[k + 1]->type == REDIS_REPLY_INTEGER)
                    lag = g->element[k + 1]->integer;
                if (strcmp(g->element[k]->str, "pending") == 0) pending = g->element[k + 1]->integer;
            }
            if (name && strcmp(name, group) == 0) done = lag == 0 && pending == 0;
        }
        if (r) freeReplyObject(r);
        if (done) return 1;
    }
    return 0;
}

pid_t th_service(const char *bin, const th_redis_t *r, const char *ns, const char *const extra[],
                 const char *logdir, const char *tag, int *port, int wait_ready)
{
    char e[3][200], log[400];
    const char *env[40];
    int n = 0;
    *port = th_free_port();
    snprintf(e[0], sizeof e[0], "REDIS_URL=%s", r->url);
    snprintf(e[1], sizeof e[1], "QT_NAMESPACE=%s", ns);
    snprintf(e[2], sizeof e[2], "QT_HTTP_PORT=%d", *port);
    for (int i = 0; i < 3; i++) env[n++] = e[i];
    for (int i = 0; extra && extra[i] && n < 39; i++) env[n++] = extra[i];
    env[n] = NULL;
    snprintf(log, sizeof log, "%s/%s.log", logdir, tag);
    const char *argv[] = {bin, NULL};
    pid_t pid = th_spawn(bin, argv, env, log); /* the child copies env before this frame ends */
    if (pid > 0 && wait_ready) th_wait_http(*port, "/ready", 200, 15000);
    return pid;
}

int th_stop(pid_t pid, int timeout_ms)
{
    int st = -1;
    th_kill(pid, SIGTERM);
    if (th_wait(pid, timeout_ms, &st) < 0) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

double th_redis_xadd_rate(const th_redis_t *r, long n, const struct event *ev)
{
    char cmdline[8192], line[8192], err[256];
    event_enc_t enc;
    memset(&enc, 0, sizeof enc);
    if (event_encode(ev, &enc, err, sizeof err) < 0) return 0;
    /* the same v2 entry the bus writes, each field quoted for the shell */
    int used = snprintf(cmdline, sizeof cmdline, "redis-benchmark -p %d -n %ld -P 32 -c 1 --csv XADD qt:rbench MAXLEN '~' 1000000 '*'",
                        r->port, n);
    for (size_t i = 0; i < enc.n && used > 0 && (size_t)used < sizeof cmdline; i++)
        used += snprintf(cmdline + used, sizeof cmdline - (size_t)used, " '%.*s' '%.*s'", (int)enc.f[i].name_len,
                         enc.f[i].name, (int)enc.f[i].val_len, enc.f[i].val);
    event_enc_free(&enc);
    FILE *f = popen(cmdline, "r");
    double rps = 0;
    while (f && fgets(line, sizeof line, f)) {
        /* "<command>","rps","avg",...: 7 numeric columns follow the command,
         * which itself may contain "," (the JSON payload), so count from the end */
        if (strncmp(line, "\"XADD", 5) != 0) continue;
        char *p = line + strlen(line);
        for (int cols = 0; cols < 7 && p > line; cols++)
            while (--p > line && strncmp(p, "\",\"", 3) != 0) {}
        if (p > line) rps = atof(p + 3);
    }
    if (f) pclose(f);
    return rps;
}

static int th_cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

long long th_percentile(long long *v, long n, double p)
{
    if (n <= 0) return -1;
    qsort(v, (size_t)n, sizeof *v, th_cmp_ll);
    return v[(long)(p * (double)(n - 1))];
}

long th_peak_rss_kb(pid_t pid)
{
    char path[64], line[256];
    long kb = -1;
    snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1) break;
    fclose(f);
    return kb;
}

char *th_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    size_t got = s ? fread(s, 1, (size_t)n, f) : 0;
    if (s) s[got] = '\0';
    if (len) *len = got;
    fclose(f);
    return s;
}

int th_file_has(const char *path, const char *needle)
{
    static char buf[1 << 20];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}
