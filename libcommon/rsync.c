/* rsync.c — synchronous Redis connection (see rsync.h). */
#include "rsync.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

/* Run a setup command; -1 with err naming the command (not its arguments). */
static int rsync_setup(redisContext *c, const char *what, int argc, const char **argv, char *err, size_t errlen)
{
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    int ok = r && r->type != REDIS_REPLY_ERROR;
    if (!ok) snprintf(err, errlen, "redis %s refused: %s (check REDIS_URL)", what, r ? r->str : c->errstr);
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
    const char *auth[] = {"AUTH", u->user[0] ? u->user : u->password, u->password};
    snprintf(db, sizeof db, "%d", u->db);
    const char *sel[] = {"SELECT", db};
    if ((u->password[0] && rsync_setup(c, "AUTH", u->user[0] ? 3 : 2, auth, err, errlen) < 0) ||
        (u->db && rsync_setup(c, "SELECT", 2, sel, err, errlen) < 0)) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* KEYS: the stream, the other key. ARGV: n, the XADD's n arguments after its
 * key, the second command's name, its arguments after its key. A failing
 * redis.call() ends the script there. */
static const char xadd_then_lua[] =
    "local n = tonumber(ARGV[1])\n"
    "local id = redis.call('XADD', KEYS[1], unpack(ARGV, 2, n + 1))\n"
    "redis.call(ARGV[n + 2], KEYS[2], unpack(ARGV, n + 3))\n"
    "return id\n";

int rsync_xadd_then_args(const char *stream, int xargc, const char *const *xargv, const size_t *xlens, const char *cmd,
                         const char *key, int cargc, const char *const *cargv, const char **argv, size_t *lens,
                         char n[16])
{
    int argc = 0;
    if (xargc < 1 || xargc > RSYNC_XADD_THEN_MAX || cargc < 0 || cargc > RSYNC_XADD_THEN_MAX) return -1;
    snprintf(n, 16, "%d", xargc);
    const char *head[] = {"EVAL", xadd_then_lua, "2", stream, key, n};
    for (int i = 0; i < 6; i++) argv[argc] = head[i], lens[argc++] = strlen(head[i]);
    for (int i = 0; i < xargc; i++) argv[argc] = xargv[i], lens[argc++] = xlens ? xlens[i] : strlen(xargv[i]);
    argv[argc] = cmd, lens[argc++] = strlen(cmd);
    for (int i = 0; i < cargc; i++) argv[argc] = cargv[i], lens[argc++] = strlen(cargv[i]);
    return argc;
}

int rsync_xadd_then(redisContext *c, const char *stream, int xargc, const char *const *xargv, const size_t *xlens,
                    const char *cmd, const char *key, int cargc, const char *const *cargv, char *err, size_t errlen)
{
    const char *argv[RSYNC_XADD_THEN_ARGV];
    size_t lens[RSYNC_XADD_THEN_ARGV];
    char n[16];
    int argc = rsync_xadd_then_args(stream, xargc, xargv, xlens, cmd, key, cargc, cargv, argv, lens, n);
    if (argc < 0) {
        snprintf(err, errlen, "rsync_xadd_then: %d + %d arguments (at most %d each)", xargc, cargc, RSYNC_XADD_THEN_MAX);
        return -1;
    }
    redisReply *r = redisCommandArgv(c, argc, argv, lens);
    int ok = r && r->type == REDIS_REPLY_STRING;
    if (!ok) snprintf(err, errlen, "XADD to %s then %s %s: %s", stream, cmd, key,
                      r ? (r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply") : c->errstr);
    if (r) freeReplyObject(r);
    return ok ? 0 : -1;
}

static const char rsync_range_lua[] =
    "local n, maxe, budget = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])\n"
    "local r\n"
    "if ARGV[6] == '1' then r = redis.call('XREVRANGE', KEYS[1], ARGV[1], ARGV[2], 'COUNT', n)\n"
    "else r = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[2], 'COUNT', n) end\n"
    "local out, skipped, total, last = {}, 0, 0, ''\n"
    "for _, e in ipairs(r) do\n"
    "  local size = 0\n"
    "  for _, v in ipairs(e[2]) do size = size + #v end\n"
    "  if size > maxe then skipped = skipped + 1\n"
    "  else\n"
    "    if total + size > budget and #out > 0 then return {last, skipped, 0, out} end\n"
    "    total = total + size\n"
    "    out[#out + 1] = e\n"
    "  end\n"
    "  last = e[1]\n"
    "end\n"
    "return {last, skipped, #r < n and 1 or 0, out}\n";

redisReply *rsync_range(redisContext *c, const char *key, const char *start, const char *end, int rev, long count,
                        long max_entry, long max_bytes)
{
    char n[24], me[24], mb[24];
    snprintf(n, sizeof n, "%ld", count);
    snprintf(me, sizeof me, "%ld", max_entry);
    snprintf(mb, sizeof mb, "%ld", max_bytes);
    const char *argv[] = {"EVAL", rsync_range_lua, "1", key, start, end, n, me, mb, rev ? "1" : "0"};
    redisReply *r = redisCommandArgv(c, 10, argv, NULL);
    if (r && (r->type != REDIS_REPLY_ARRAY || r->elements != 4 || r->element[0]->type != REDIS_REPLY_STRING ||
              r->element[3]->type != REDIS_REPLY_ARRAY)) {
        if (r->type == REDIS_REPLY_ERROR) log_warn("reading %s: %s", key, r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

json_t *rsync_entry_payload(const redisReply *f, size_t skip_tail)
{
    event_field_t fl[EVENT_FIELDS_MAX];
    size_t n = 0;
    if (!f || f->type != REDIS_REPLY_ARRAY || f->elements < 2 * skip_tail) return NULL;
    for (size_t k = 0; k + 1 < f->elements - 2 * skip_tail && n < EVENT_FIELDS_MAX; k += 2) {
        const redisReply *name = f->element[k], *v = f->element[k + 1];
        if (name->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) continue;
        fl[n++] = (event_field_t){name->str, name->len, v->str, v->len};
    }
    return event_payload_json(fl, n);
}
