/* rsync.c — synchronous Redis connection (see rsync.h). */
#include "rsync.h"

#include <stdio.h>

/* Run a setup command; -1 with err naming the command (not its arguments). */
static int rsync_setup(redisContext *c, const char *what, int argc, const char **argv, char *err, size_t errlen)
{
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    int ok = r && r->type != REDIS_REPLY_ERROR;
    if (!ok) snprintf(err, errlen, "redis %s failed: %s", what, r ? r->str : c->errstr);
    if (r) freeReplyObject(r);
    return ok ? 0 : -1;
}

redisContext *rsync_connect(const redis_url_t *u, int timeout_ms, char *err, size_t errlen)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c = u->unix_path[0] ? redisConnectUnixWithTimeout(u->unix_path, tv)
                                      : redisConnectWithTimeout(u->host, u->port, tv);
    char db[16];
    if (!c || c->err) {
        snprintf(err, errlen, "cannot connect to redis at %s:%d: %s", u->unix_path[0] ? u->unix_path : u->host,
                 u->unix_path[0] ? 0 : u->port, c ? c->errstr : "out of memory");
        if (c) redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    const char *auth[] = {"AUTH", u->password};
    snprintf(db, sizeof db, "%d", u->db);
    const char *sel[] = {"SELECT", db};
    if ((u->password[0] && rsync_setup(c, "AUTH", 2, auth, err, errlen) < 0) ||
        (u->db && rsync_setup(c, "SELECT", 2, sel, err, errlen) < 0)) {
        redisFree(c);
        return NULL;
    }
    return c;
}
