/* Integration test: `make run`'s script (deploy/run.sh) — a private
 * redis-server with AOF, the five real services ready and serving, then
 * SIGINT (what Ctrl-C sends) stops every process and the script exits 0;
 * and with a REDIS_URL that answers, that Redis is used instead. */
#include "check.h"
#include "harness.h"

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static th_redis_t R;
static char dir[256], out[8192];

/* A base port with the four after it free too. */
static int free_base(void)
{
    for (int tries = 0; tries < 50; tries++) {
        int b = th_free_port(), ok = b < 65000;
        for (int k = 1; ok && k < 5; k++) ok = th_port_free(b + k);
        if (ok) return b;
    }
    return -1;
}

static int log_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(out, 1, sizeof out - 1, f) : 0;
    if (f) fclose(f);
    out[n] = 0;
    return strstr(out, needle) != NULL;
}

/* Run the script until ready; its pids (services, and redis when private) into pids. */
static pid_t run(const char *sub, const char *redis_url, int *base, pid_t *pids, int *npids)
{
    static char e[6][400];
    char sh_log[400], run_dir[300], pidfile[400];
    snprintf(run_dir, sizeof run_dir, "%s/%s", dir, sub);
    *base = free_base();
    snprintf(e[0], sizeof e[0], "QT_RUN_DIR=%s", run_dir);
    snprintf(e[1], sizeof e[1], "QT_RUN_PORT_BASE=%d", *base);
    snprintf(e[2], sizeof e[2], "QT_RUN_REDIS_PORT=%d", th_free_port());
    snprintf(e[3], sizeof e[3], "QT_FEED_SPEED=600");
    snprintf(e[4], sizeof e[4], "REDIS_URL=%s", redis_url ? redis_url : "");
    const char *env[] = {e[0], e[1], e[2], e[3], e[4], NULL};
    const char *b = getenv("QT_BUILD");
    const char *argv[] = {"/bin/sh", "deploy/run.sh", b && *b ? b : "build", NULL};
    snprintf(sh_log, sizeof sh_log, "%s/%s.log", dir, sub);
    pid_t p = th_spawn("/bin/sh", argv, env, sh_log);
    for (long long end = th_now_ms() + 45000; th_now_ms() < end && !log_has(sh_log, "Ctrl-C stops every process."); th_sleep_ms(100))
        ;
    CHECK(log_has(sh_log, "Ctrl-C stops every process."));
    CHECK_CONTAINS(out, "dashboard        http://127.0.0.1:");
    CHECK_CONTAINS(out, "qtctl mode PRIMARY");
    CHECK_CONTAINS(out, "XREAD BLOCK 0 STREAMS qt:signal");
    snprintf(pidfile, sizeof pidfile, "%s/pids", run_dir);
    FILE *f = fopen(pidfile, "r");
    *npids = 0;
    while (f && *npids < 8 && fscanf(f, "%d", &pids[*npids]) == 1) (*npids)++;
    if (f) fclose(f);
    return p;
}

static void stop_and_check_nothing_left(pid_t p, const pid_t *pids, int npids)
{
    int st = -1;
    th_kill(p, SIGINT); /* Ctrl-C */
    CHECK_EQ(th_wait(p, 40000, &st), 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    for (int i = 0; i < npids; i++) CHECK(kill(pids[i], 0) == -1 && errno == ESRCH);
}

TEST(make_run_starts_the_stack_and_ctrl_c_stops_all_of_it)
{
    int base, n;
    pid_t pids[8];
    char aof[400];
    pid_t p = run("private", NULL, &base, pids, &n);
    CHECK_EQ(n, 6); /* redis-server and five services */
    for (int k = 0; k < 5; k++) {
        CHECK_EQ(th_http(base + k, "GET", "/health", NULL, NULL, out, sizeof out), 200);
        CHECK_EQ(th_http(base + k, "GET", "/ready", NULL, NULL, out, sizeof out), 200);
    }
    CHECK_EQ(th_http(base + 4, "GET", "/api/v1/policy/config/rl_v3.live.mode", NULL, NULL, out, sizeof out), 200);
    CHECK_CONTAINS(out, "SHADOW");
    snprintf(aof, sizeof aof, "%s/private/redis/appendonlydir", dir);
    struct stat sb;
    CHECK(stat(aof, &sb) == 0 && S_ISDIR(sb.st_mode)); /* AOF on, under the folder the README names */
    stop_and_check_nothing_left(p, pids, n);
    for (int k = 0; k < 5; k++) CHECK(th_port_free(base + k));
}

TEST(a_redis_url_that_answers_is_used)
{
    int base, n;
    pid_t pids[8];
    char log[300];
    pid_t p = run("shared", R.url, &base, pids, &n);
    CHECK_EQ(n, 5); /* no redis-server of its own */
    snprintf(log, sizeof log, "%s/shared.log", dir);
    CHECK(log_has(log, "using the Redis at REDIS_URL"));
    redisContext *c = th_redis_connect(&R);
    CHECK_EQ(th_wait_xlen(c, "qt:market", 3, 15000), 0); /* the synthetic feed writes to that Redis */
    redisFree(c);
    stop_and_check_nothing_left(p, pids, n);
}

int main(int argc, char **argv);

__attribute__((constructor)) static void setup(void)
{
    th_watchdog(200);
    th_tempdir(dir, sizeof dir);
    if (th_redis_start(&R, 0) < 0) exit(2);
}

CHECK_MAIN()
