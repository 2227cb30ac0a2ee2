/* svc.c — process wiring shared by every service (see svc.h). */
#include "svc.h"
#include "lease.h"
#include "parts.h"
#include "restore.h"
#include "rsync.h"
#include "timeguard.h"
#include "event.h"
#include "keys.h"
#include "log.h"

#include <hiredis/hiredis.h>

#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int svc_bus_ready(void *ud, char *why, size_t whylen) { return bus_ready(ud, why, whylen); }

json_t *svc_state_status(const svc_t *s)
{
    const ckpt_restore_t *r = &s->restored;
    ckpt_restore_t parts;
    if (!bus_state_ops(s->bus, NULL)) return NULL;
    if (bus_state_parted(s->bus)) { /* restored partition by partition, as they are taken */
        lease_restored(s->lease, &parts);
        r = &parts;
        if (!parts.note[0]) snprintf(parts.note, sizeof parts.note, "no partition held");
    }
    return json_pack("{s:s, s:b, s:I, s:I, s:I, s:b, s:s}", "key", bus_state_key(s->bus), "from_checkpoint", r->found,
                     "checkpoint_saved_ms", (json_int_t)r->saved_ms, "replayed", (json_int_t)r->replayed, "pending",
                     (json_int_t)r->pending, "history_lost", r->history_lost, "restored", r->note);
}

json_t *svc_partitions_status(const svc_t *s) { return s->lease ? lease_status(s->lease) : NULL; }

static json_t *svc_status(void *ud)
{
    svc_t *s = ud;
    return json_pack("{s:o, s:o?, s:o?}", "bus", bus_status(s->bus), "state", svc_state_status(s), "partitions",
                     svc_partitions_status(s));
}

/* Whether the configuration was reset (policy-store re-seeded its defaults
 * after Redis lost it): every service says so in /health and
 * /api/v1/status until an operator sets a key. */
static void svc_reset_cb(void *ud, const struct redisReply *r)
{
    svc_t *s = ud;
    if (!r || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL)) return;
    json_t *v = r->type == REDIS_REPLY_STRING ? json_loadb(r->str, r->len, 0, NULL) : NULL;
    int now = v != NULL;
    if (now && !s->config_reset)
        log_warn("the configuration was reset to the defaults: %s", json_string_value(json_object_get(v, "reason")));
    else if (!now && s->config_reset) log_info("the configuration was set again after its reset");
    s->config_reset = now;
    httpd_set_notice(s->http, "config_reset", v);
}

static void svc_notice_tick(evutil_socket_t fd, short what, void *arg)
{
    svc_t *s = arg;
    char key[160];
    (void)fd;
    (void)what;
    proto_key(key, sizeof key, s->cfg.ns, QT_KEY_POLICY_CONFIG_RESET);
    const char *argv[] = {"GET", key};
    bus_redis(s->bus, svc_reset_cb, s, 2, argv, NULL);
}

static void svc_drained(void *ud)
{
    svc_t *s = ud;
    log_info("drained; exiting");
    s->drained = 1; /* a break before the loop runs is lost: svc_run looks */
    event_base_loopbreak(s->base);
}

void svc_stop(svc_t *s)
{
    if (s->stopping) return;
    s->stopping = 1;
    log_info("stopping: draining in-flight work");
    if (s->on_stop) s->on_stop(s->hook_ud);
    lease_stopping(s->lease);
    bus_stop(s->bus, svc_drained, s);
}

static void svc_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    svc_t *s = arg;
    if (sig == SIGHUP) {
        log_info("SIGHUP: reloading");
        if (s->on_reload) s->on_reload(s->hook_ud);
        return;
    }
    if (s->stopping) { /* a second signal: stop now, unacked entries come back later */
        log_warn("second stop signal: exiting without waiting for the drain");
        event_base_loopbreak(s->base);
        return;
    }
    svc_stop(s);
}

/* Open files: the soft limit is often 1,024 while the hard one is far
 * higher; every HTTP connection and Redis link is a descriptor. Raise the
 * soft limit to the hard one (at most 65,536). */
static void svc_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max) return;
    rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
    if (want <= rl.rlim_cur) return;
    rlim_t was = rl.rlim_cur;
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
        log_info("open files limit raised from %llu to %llu", (unsigned long long)was, (unsigned long long)want);
}

int svc_init(svc_t *s, const char *service, long default_port, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    event_set_source(service);
    signal(SIGPIPE, SIG_IGN);
    if (config_common_load(&s->cfg, service, default_port, err, errlen) < 0) return -1;
    log_init(service, s->cfg.log_level);
    event_set_clock_skew_ms(s->cfg.clock_skew_ms);
    tguard_set_span_ms(s->cfg.max_time_jump_ms);
    svc_raise_nofile();
    if (httpd_threads_init() < 0) { /* before the loop exists: the HTTP server's thread hands requests to it */
        snprintf(err, errlen, "libevent has no thread support");
        return -1;
    }
    struct event_config *ec = event_config_new(); /* sub-millisecond timers are kept (timerfd), not rounded up */
    if (ec) event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
    s->base = ec ? event_base_new_with_config(ec) : NULL;
    if (ec) event_config_free(ec);
    if (!s->base) s->base = event_base_new();
    s->metrics = metrics_new();
    if (!s->base || !s->metrics) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->bus = bus_new(s->base, &s->cfg, s->metrics, err, errlen);
    if (!s->bus) return -1;
    httpd_config_t hc = {service,  s->cfg.http_bind,      (int)s->cfg.http_port,  s->cfg.api_token,
                         s->cfg.http_busy_ms, s->cfg.health_stall_ms, s->cfg.cors_origins,
                         s->cfg.http_max_conns, s->cfg.http_idle_ms};
    s->http = httpd_new(s->base, &hc, s->metrics, err, errlen);
    if (!s->http) return -1;
    httpd_add_ready(s->http, "redis", svc_bus_ready, s->bus);
    httpd_set_status(s->http, svc_status, s);
    httpd_set_notice(s->http, "config_reset", NULL);
    s->ev_notice = event_new(s->base, -1, EV_PERSIST, svc_notice_tick, s);
    struct timeval every = {2, 0};
    if (!s->ev_notice || event_add(s->ev_notice, &every) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->ev_term = evsignal_new(s->base, SIGTERM, svc_signal, s);
    s->ev_int = evsignal_new(s->base, SIGINT, svc_signal, s);
    s->ev_hup = evsignal_new(s->base, SIGHUP, svc_signal, s);
    if (!s->ev_term || !s->ev_int || !s->ev_hup || event_add(s->ev_term, NULL) < 0 ||
        event_add(s->ev_int, NULL) < 0 || event_add(s->ev_hup, NULL) < 0) {
        snprintf(err, errlen, "cannot install signal handlers");
        return -1;
    }
    return 0;
}

/* The namespace's partitions agree with ours (parts.h): 0, -1 refused, 1 try again. */
static int svc_parts(svc_t *s, char *err, size_t errlen)
{
    redisContext *c = rsync_connect(&s->cfg.redis, (int)s->cfg.redis_timeout_ms, err, errlen);
    if (!c) return 1;
    int rc = parts_check(c, &s->cfg, err, errlen);
    redisFree(c);
    if (rc == 0) s->parts_ok = 1;
    return rc;
}

/* One active instance per namespace (lease.h): 0 when this one is it, 2
 * while another is (the reason in err), 1 when Redis failed. Taken for the
 * start for longer than QT_LEASE_MS: the restore that follows is not
 * renewing it. */
static int svc_take_active(svc_t *s, char *err, size_t errlen)
{
    char who[128];
    redisContext *c = rsync_connect(&s->cfg.redis, (int)s->cfg.redis_timeout_ms, err, errlen);
    if (!c) return 1;
    int rc = active_try(c, s->bus, 10 * s->cfg.lease_ms, who, sizeof who, err, errlen);
    redisFree(c);
    if (rc < 0) return 1;
    if (rc == 0) return snprintf(err, errlen, "standby: %s is the active %s", who, s->cfg.service), 2;
    if (!s->active) log_info("the active %s of namespace %s: starting", s->cfg.service, s->cfg.ns);
    s->active = 1;
    return 0;
}

static void svc_lost_active(void *ud, const char *why)
{
    svc_t *s = ud;
    /* another instance may be deciding already: no drain, no checkpoint, no ack; it takes what is pending */
    log_error("no longer the active %s (%s): exiting at once so that one instance alone decides", s->cfg.service, why);
    _exit(1);
}

/* The state back (restore.h), then the bus; while Redis cannot be reached
 * the restore is tried again every second on the loop (a stop still works,
 * /ready says why). */
static void svc_begin(evutil_socket_t fd, short what, void *arg)
{
    svc_t *s = arg;
    char err[512];
    (void)fd, (void)what;
    if (s->stopping) return;
    int rc = s->parts_ok ? 0 : svc_parts(s, err, sizeof err);
    if (rc < 0) {
        log_error("%s", err);
        s->failed = 1;
        svc_stop(s);
        return;
    }
    if (rc == 0 && s->one_active) { /* taken, or kept while the restore waits for Redis */
        int was = s->active;
        rc = svc_take_active(s, err, sizeof err);
        if (rc == 2 && was) svc_lost_active(s, err);
        if (rc == 2) { /* the standby: asks again every third of the lease */
            if (!s->standby_said++) log_info("%s", err);
            snprintf(s->restore_wait, sizeof s->restore_wait, "%s", err);
            long ms = s->cfg.lease_ms / 3;
            struct timeval again = {ms / 1000, (ms % 1000) * 1000};
            event_add(s->ev_begin, &again);
            return;
        }
        if (rc == 0 && !was && s->on_active && s->on_active(s->hook_ud, err, sizeof err) < 0) {
            log_error("cannot start as the active %s: %s", s->cfg.service, err);
            s->failed = 1;
            svc_stop(s);
            return;
        }
    }
    if (rc == 0) rc = restore_run(s->bus, &s->cfg, &s->restored, err, sizeof err);
    if (rc < 0) {
        log_error("cannot restore the state: %s; exiting, a new start replays it again", err);
        s->failed = 1;
        svc_stop(s);
        return;
    }
    if (rc != 0) {
        if (s->restore_tries++ % 10 == 0)
            log_warn("%s, trying again every second: %s", s->parts_ok ? "state not restored yet" : "namespace not checked yet", err);
        snprintf(s->restore_wait, sizeof s->restore_wait, "%s", err);
        struct timeval again = {1, 0};
        event_add(s->ev_begin, &again);
        return;
    }
    s->restore_wait[0] = '\0';
    if (bus_state_ops(s->bus, NULL)) {
        log_msg(s->restored.history_lost ? LOG_WARN : LOG_INFO, NULL, "state restored: %s", s->restored.note);
        metric_t *lost = metrics_counter(s->metrics, "qt_state_history_lost_total",
                                         "Restores that found entries they needed trimmed from the streams", NULL);
        if (lost && s->restored.history_lost) metric_inc(lost);
    }
    if (bus_start(s->bus) < 0) {
        log_error("cannot start the bus");
        s->failed = 1;
        svc_stop(s);
        return;
    }
    if ((s->one_active && !(s->keeper = active_keep(s->bus, s->base, svc_lost_active, s))) ||
        (bus_leased(s->bus) && !(s->lease = lease_start(s->bus, s->base, s->metrics)))) {
        log_error("out of memory");
        s->failed = 1;
        svc_stop(s);
        return;
    }
    s->begun = 1;
    if (s->on_begin) s->on_begin(s->hook_ud);
    log_info("started: namespace=%s http=%s:%d redis=%s%s", s->cfg.ns, s->cfg.http_bind, httpd_port(s->http),
             s->cfg.redis.unix_path[0] ? s->cfg.redis.unix_path : s->cfg.redis.host,
             s->cfg.api_token[0] ? "" : " (mutating endpoints off: no QT_API_TOKEN)");
}

static int svc_state_ready(void *ud, char *why, size_t whylen)
{
    const svc_t *s = ud;
    if (s->begun && s->lease) {
        char wait[400];
        if (!lease_confirmed(s->lease)) /* not a standby yet: it may hold partitions once Redis answers */
            return snprintf(why, whylen, "taking partitions: the first lease round is not answered yet"), 0;
        if (lease_restoring(s->lease, wait, sizeof wait))
            return snprintf(why, whylen, "restoring state: %s", wait), 0;
        json_t *st = lease_status(s->lease);
        int none = json_array_size(json_object_get(st, "held")) == 0;
        json_decref(st);
        if (!none) return 1;
        snprintf(why, whylen, "standby: this replica holds no partition (the others hold all %ld)", s->cfg.partitions);
        return HTTPD_READY_NOTE;
    }
    if (s->begun) return 1;
    if (s->one_active && !s->active && s->restore_wait[0]) /* "standby: ... is the active ..." */
        snprintf(why, whylen, "%s", s->restore_wait);
    else
        snprintf(why, whylen, "%s: %s", s->parts_ok ? "restoring state" : "checking the namespace's partitions",
                 s->restore_wait[0] ? s->restore_wait : "under way");
    return 0;
}

int svc_run(svc_t *s)
{
    if (!(s->ev_begin = evtimer_new(s->base, svc_begin, s)) ||
        httpd_add_ready(s->http, "state", svc_state_ready, s) < 0) {
        log_error("out of memory");
        return 1;
    }
    svc_begin(-1, 0, s);
    if (!s->drained) event_base_dispatch(s->base);
    lease_release_sync(s->lease, &s->cfg); /* drained: the others may take them now */
    if (s->active) active_release_sync(&s->cfg, bus_consumer(s->bus)); /* the standby takes over now */
    return s->failed;
}

void svc_free(svc_t *s)
{
    if (s->ev_term) event_free(s->ev_term);
    if (s->ev_int) event_free(s->ev_int);
    if (s->ev_hup) event_free(s->ev_hup);
    if (s->ev_notice) event_free(s->ev_notice);
    if (s->ev_begin) event_free(s->ev_begin);
    lease_free(s->lease);
    active_free(s->keeper);
    s->lease = NULL, s->keeper = NULL;
    bus_free(s->bus);   /* first: what it answers on the way out may answer HTTP requests (httpd_answer) */
    httpd_free(s->http);
    metrics_free(s->metrics);
    s->ev_term = s->ev_int = s->ev_hup = s->ev_notice = s->ev_begin = NULL;
    s->http = NULL, s->bus = NULL, s->metrics = NULL;
}

void svc_free_base(svc_t *s)
{
    if (s->base) event_base_free(s->base);
    memset(s, 0, sizeof *s);
}
