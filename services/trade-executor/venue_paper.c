/* venue_paper.c — the paper venue: fills at the intent's reference price
 * with slippage (QT_PAPER_SLIPPAGE_BPS, 2) and a fee (QT_PAPER_FEE_BPS, 4),
 * keeping balance (QT_PAPER_BALANCE start, 10000 USDT), positions and orders
 * in Redis ("<ns>:paper:*"). One Lua script does a fill, so an order, its
 * fee, the balance and the position change together or not at all. */
#include "config.h"
#include "log.h"
#include "rsync.h"
#include "venue.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct paper {
    venue_t base;
    redis_url_t url;
    redisContext *rc;
    double fee_bps, slip_bps, balance0, step, min_notional;
    char k_orders[160], k_balance[160], k_positions[160], k_seq[160];
} paper_t;

/* KEYS: orders, balance, positions, seq. ARGV: cid, symbol, side, qty,
 * ref_price, fee_bps, slip_bps, reduce_only(0/1), start balance, leverage. */
static const char paper_lua[] =
    "local o = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if o then return o end\n"
    "local side, qty, ref = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])\n"
    "local price = ref * (side == 'BUY' and (1 + tonumber(ARGV[7]) / 10000) or (1 - tonumber(ARGV[7]) / 10000))\n"
    "local p = redis.call('HGET', KEYS[3], ARGV[2])\n"
    "local amt, entry = 0, 0\n"
    "if p then local d = cjson.decode(p); amt, entry = d.amt, d.entry end\n"
    "local dir = side == 'BUY' and 1 or -1\n"
    "if ARGV[8] == '1' then\n"
    "  if amt == 0 or (amt > 0) == (dir > 0) then return cjson.encode({error = 'reduce-only order has no position to reduce'}) end\n"
    "  if qty > math.abs(amt) then qty = math.abs(amt) end\n"
    "end\n"
    "local fee = qty * price * tonumber(ARGV[6]) / 10000\n"
    "local realized = 0\n"
    "if amt ~= 0 and (amt > 0) ~= (dir > 0) then\n"
    "  local closed = math.min(math.abs(amt), qty)\n"
    "  realized = (price - entry) * closed * (amt > 0 and 1 or -1)\n"
    "  if qty > closed then entry = price end\n"
    "else\n"
    "  entry = (entry * math.abs(amt) + price * qty) / (math.abs(amt) + qty)\n"
    "end\n"
    "amt = amt + dir * qty\n"
    "if math.abs(amt) < 1e-12 then amt, entry = 0, 0 end\n"
    "local bal = tonumber(redis.call('GET', KEYS[2]) or ARGV[9])\n"
    "if not bal then return redis.error_reply('paper balance key holds no number') end\n"
    "bal = bal + realized - fee\n"
    /* Redis keeps the writes a script made before it failed: the one write
     * that can fail (INCR on a key of the wrong type or text) goes first. */
    "local id = redis.call('INCR', KEYS[4])\n"
    "redis.call('SET', KEYS[2], string.format('%.10f', bal))\n"
    "redis.call('HSET', KEYS[3], ARGV[2], cjson.encode({amt = amt, entry = entry, leverage = tonumber(ARGV[10])}))\n"
    "local fill = cjson.encode({order_id = 'paper-' .. id, qty = string.format('%.10f', qty),\n"
    "  price = string.format('%.10f', price), fee = string.format('%.10f', fee)})\n"
    "redis.call('HSET', KEYS[1], ARGV[1], fill)\n"
    "return fill\n";

static redisContext *paper_conn(paper_t *p, char *err, size_t errlen)
{
    if (p->rc && !p->rc->err) return p->rc;
    if (p->rc) redisFree(p->rc);
    p->rc = rsync_connect(&p->url, 2000, err, errlen);
    return p->rc;
}

/* A number written by the script ("%.10f"): finite, >= 0 (> 0 if positive). */
static int paper_num(const json_t *j, const char *k, int positive, double *out)
{
    const char *s = json_string_value(json_object_get(j, k));
    char *end;
    if (!s) return -1;
    *out = strtod(s, &end);
    return end == s || *end || !isfinite(*out) || *out < 0 || (positive && *out <= 0) ? -1 : 0;
}

/* A fill from the script's JSON (or an order record read back); -1 with err
 * if it carries an error or is not a fill we wrote (a record edited by hand). */
static int paper_parse(const char *txt, size_t len, venue_fill_t *f, char *err, size_t errlen)
{
    json_t *j = json_loadb(txt, len, 0, NULL);
    const char *e = json_string_value(json_object_get(j, "error"));
    const char *oid = json_string_value(json_object_get(j, "order_id"));
    const char *bad = !j ? "not JSON" : !oid || !*oid || strlen(oid) >= sizeof f->order_id ? "order_id"
                    : paper_num(j, "qty", 1, &f->qty) ? "qty" : paper_num(j, "price", 1, &f->price) ? "price"
                    : paper_num(j, "fee", 0, &f->fee) ? "fee" : NULL;
    if (e) snprintf(err, errlen, "%s", e);
    else if (bad) snprintf(err, errlen, "paper venue: the order record cannot be read (%s)", bad);
    else snprintf(f->order_id, sizeof f->order_id, "%s", oid);
    json_decref(j);
    return e || bad ? -1 : 0;
}

static venue_rc_t paper_place(venue_t *v, const venue_order_t *o, venue_fill_t *f, char *code, char *err, size_t errlen)
{
    paper_t *p = (paper_t *)v;
    char qty[32], ref[32], fee[32], slip[32], bal[32], lev[32];
    redisContext *c = paper_conn(p, err, errlen);
    code[0] = '\0';
    if (!c) return VENUE_UNAVAILABLE;
    snprintf(qty, sizeof qty, "%.10f", o->qty), snprintf(ref, sizeof ref, "%.10f", o->ref_price);
    snprintf(fee, sizeof fee, "%g", p->fee_bps), snprintf(slip, sizeof slip, "%g", p->slip_bps);
    snprintf(bal, sizeof bal, "%.10f", p->balance0), snprintf(lev, sizeof lev, "%g", o->leverage);
    const char *argv[] = {"EVAL", paper_lua, "4", p->k_orders, p->k_balance, p->k_positions, p->k_seq, o->cid,
                          o->symbol, o->side, qty, ref, fee, slip, o->reduce_only ? "1" : "0", bal, lev};
    redisReply *r = redisCommandArgv(c, 17, argv, NULL);
    if (!r || r->type != REDIS_REPLY_STRING) {
        snprintf(err, errlen, "paper venue: %s", r ? r->str : c->errstr);
        if (r) freeReplyObject(r);
        return VENUE_UNAVAILABLE;
    }
    int bad = paper_parse(r->str, r->len, f, err, errlen);
    freeReplyObject(r);
    if (bad) snprintf(code, 16, "PAPER_REJECT");
    return bad ? VENUE_REJECTED : VENUE_FILLED;
}

static venue_rc_t paper_query(venue_t *v, const char *symbol, const char *cid, venue_fill_t *f, char *err, size_t errlen)
{
    paper_t *p = (paper_t *)v;
    (void)symbol;
    redisContext *c = paper_conn(p, err, errlen);
    if (!c) return VENUE_UNAVAILABLE;
    redisReply *r = redisCommand(c, "HGET %s %s", p->k_orders, cid);
    venue_rc_t rc = !r || r->type == REDIS_REPLY_ERROR ? VENUE_UNAVAILABLE : r->type != REDIS_REPLY_STRING ? VENUE_NOT_FOUND
                   : paper_parse(r->str, r->len, f, err, errlen) == 0 ? VENUE_FILLED : VENUE_REJECTED;
    if (rc == VENUE_UNAVAILABLE) snprintf(err, errlen, "paper venue: %s", r ? r->str : c->errstr);
    if (r) freeReplyObject(r);
    return rc;
}

static venue_rc_t paper_balance(venue_t *v, double *usdt, char *err, size_t errlen)
{
    paper_t *p = (paper_t *)v;
    redisContext *c = paper_conn(p, err, errlen);
    if (!c) return VENUE_UNAVAILABLE;
    redisReply *r = redisCommand(c, "GET %s", p->k_balance);
    if (!r) return snprintf(err, errlen, "paper venue: %s", c->errstr), VENUE_UNAVAILABLE;
    char *end = NULL;
    *usdt = r->type == REDIS_REPLY_STRING ? strtod(r->str, &end) : p->balance0;
    int bad = r->type == REDIS_REPLY_ERROR || (end && (end == r->str || *end || !isfinite(*usdt)));
    if (bad) snprintf(err, errlen, "paper venue: the balance cannot be read (%s)", r->type == REDIS_REPLY_ERROR ? r->str : "not a number");
    freeReplyObject(r);
    return bad ? VENUE_UNAVAILABLE : VENUE_FILLED;
}

static venue_rc_t paper_filters(venue_t *v, const char *symbol, venue_filters_t *out, char *err, size_t errlen)
{
    paper_t *p = (paper_t *)v;
    (void)symbol, (void)err, (void)errlen;
    out->step = p->step, out->min_qty = p->step, out->min_notional = p->min_notional;
    return VENUE_FILLED;
}

static json_t *paper_positions(venue_t *v, char *err, size_t errlen)
{
    paper_t *p = (paper_t *)v;
    redisContext *c = paper_conn(p, err, errlen);
    if (!c) return NULL;
    redisReply *r = redisCommand(c, "HGETALL %s", p->k_positions);
    if (!r) return snprintf(err, errlen, "paper venue: %s", c->errstr), NULL;
    if (r->type == REDIS_REPLY_ERROR) return snprintf(err, errlen, "paper venue: %s", r->str), freeReplyObject(r), NULL;
    json_t *out = json_object();
    for (size_t i = 0; out && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        json_t *d = json_loads(r->element[i + 1]->str, 0, NULL), *amt = json_object_get(d, "amt");
        if (!json_is_number(amt) || !isfinite(json_number_value(amt))) {
            snprintf(err, errlen, "paper venue: the position record of %.40s cannot be read", r->element[i]->str);
            json_decref(out), out = NULL;
        } else if (json_number_value(amt) != 0) {
            json_object_set_new(out, r->element[i]->str, json_real(json_number_value(amt)));
        }
        json_decref(d);
    }
    freeReplyObject(r);
    return out;
}

static void paper_free(venue_t *v)
{
    paper_t *p = (paper_t *)v;
    if (p->rc) redisFree(p->rc);
    free(p);
}

static const venue_ops_t paper_ops = {"paper", paper_place, paper_query, paper_balance, paper_filters,
                                      paper_positions, NULL, paper_free};

venue_t *venue_paper_new(const char *ns, const void *redis_url, char *err, size_t errlen)
{
    paper_t *p = calloc(1, sizeof *p);
    if (!p) return snprintf(err, errlen, "out of memory"), NULL;
    p->base.ops = &paper_ops;
    p->url = *(const redis_url_t *)redis_url;
    if (config_get_double("QT_PAPER_FEE_BPS", 4, 0, 1000, &p->fee_bps, err, errlen) < 0 ||
        config_get_double("QT_PAPER_SLIPPAGE_BPS", 2, 0, 1000, &p->slip_bps, err, errlen) < 0 ||
        config_get_double("QT_PAPER_BALANCE", 10000, 1, 1e12, &p->balance0, err, errlen) < 0 ||
        config_get_double("QT_PAPER_STEP", 0.001, 1e-8, 1e6, &p->step, err, errlen) < 0 ||
        config_get_double("QT_PAPER_MIN_NOTIONAL", 5, 0, 1e9, &p->min_notional, err, errlen) < 0) {
        free(p);
        return NULL;
    }
    snprintf(p->k_orders, sizeof p->k_orders, "%s:paper:orders", ns);
    snprintf(p->k_balance, sizeof p->k_balance, "%s:paper:balance", ns);
    snprintf(p->k_positions, sizeof p->k_positions, "%s:paper:positions", ns);
    snprintf(p->k_seq, sizeof p->k_seq, "%s:paper:order_seq", ns);
    return &p->base;
}

venue_t *venue_new(const char *kind, const char *ns, const void *redis_url, char *err, size_t errlen)
{
    if (strcmp(kind, "paper") == 0) return venue_paper_new(ns, redis_url, err, errlen);
    if (strcmp(kind, "binance-futures") == 0) return venue_binance_new(err, errlen);
    snprintf(err, errlen, "QT_VENUE: '%.40s' is not paper or binance-futures", kind);
    return NULL;
}
