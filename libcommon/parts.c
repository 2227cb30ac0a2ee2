/* parts.c — a namespace's partition count, recorded once (see parts.h). */
#include "parts.h"
#include "keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* KEYS: meta, then the unpartitioned names of the partitioned streams.
 * ARGV: P. Returns the namespace's P (as text) after recording it if new. */
static const char parts_lua[] =
    "local cur = redis.call('HGET', KEYS[1], 'partitions')\n"
    "if cur then return cur end\n"
    "if tonumber(ARGV[1]) > 1 then\n"
    "  for i = 2, #KEYS do if redis.call('EXISTS', KEYS[i]) == 1 then return '1' end end\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'partitions', ARGV[1])\n"
    "return ARGV[1]\n";

int parts_check(redisContext *c, const qt_config_t *cfg, char *err, size_t errlen)
{
    static const char *const streams[] = {QT_STREAM_MARKET, QT_STREAM_SIGNAL, QT_STREAM_VOTE, QT_STREAM_TRADE_INTENT,
                                          QT_STREAM_EXECUTION, QT_STREAM_FEEDBACK};
    enum { NS = sizeof streams / sizeof streams[0] };
    char keys[NS + 1][160], p[24], nk[8];
    const char *argv[NS + 5] = {"EVAL", parts_lua, nk, keys[0]};
    snprintf(nk, sizeof nk, "%d", NS + 1);
    proto_key(keys[0], sizeof keys[0], cfg->ns, QT_KEY_META);
    for (int i = 0; i < NS; i++) {
        proto_key(keys[i + 1], sizeof keys[i + 1], cfg->ns, streams[i]);
        argv[4 + i] = keys[i + 1];
    }
    snprintf(p, sizeof p, "%ld", cfg->partitions);
    argv[NS + 4] = p;
    redisReply *r = redisCommandArgv(c, NS + 5, argv, NULL);
    if (!r || r->type != REDIS_REPLY_STRING) {
        snprintf(err, errlen, "checking the namespace's partitions (%s): %s", keys[0],
                 r && r->type == REDIS_REPLY_ERROR ? r->str : c->err ? c->errstr : "unexpected reply");
        if (r) freeReplyObject(r);
        return 1;
    }
    char *end;
    long have = strtol(r->str, &end, 10);
    if (*end || have < 1 || have > QT_PARTITIONS_MAX) {
        snprintf(err, errlen, "%s holds partitions='%.32s', not a count from 1 to %d: repair it (docs/operations.md#symbol-partitions)",
                 keys[0], r->str, QT_PARTITIONS_MAX);
        freeReplyObject(r);
        return -1;
    }
    freeReplyObject(r);
    if (have == cfg->partitions) return 0;
    snprintf(err, errlen,
             "namespace '%s' was created with QT_PARTITIONS=%ld (%s) and this process has QT_PARTITIONS=%ld: "
             "start every service of the namespace with QT_PARTITIONS=%ld, or use a new QT_NAMESPACE for %ld "
             "partitions (docs/operations.md#symbol-partitions)",
             cfg->ns, have, keys[0], cfg->partitions, have, cfg->partitions);
    return -1;
}

int parts_of(redisContext *c, const char *ns, long *p, char *err, size_t errlen)
{
    char key[160];
    proto_key(key, sizeof key, ns, QT_KEY_META);
    redisReply *r = redisCommand(c, "HGET %s partitions", key);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "HGET %s partitions: %s", key, r ? r->str : c->errstr);
        if (r) freeReplyObject(r);
        return -1;
    }
    *p = r->type == REDIS_REPLY_STRING ? strtol(r->str, NULL, 10) : 1;
    if (*p < 1 || *p > QT_PARTITIONS_MAX) *p = 1;
    freeReplyObject(r);
    return 0;
}
