/* venue_paper.c — the paper venue: fills at the intent's reference price
 * with slippage (QT_PAPER_SLIPPAGE_BPS, 2) and a fee (QT_PAPER_FEE_BPS, 4),
 * keeping balance (QT_PAPER_BALANCE start, 10000 USDT), positions and orders
 * in Redis ("<ns>:paper:*"). One Lua script does a fill, so an order, its
 * fee, the balance and the position change together or not at all. Every
 * call goes to Redis through the bus's command link: none blocks the loop. */
#include "config.h"
#include "keys.h"
#include "log.h"
#include "venue.h"

#include <hiredis/hiredis.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct paper {
    venue_t base;
    bus_t *bus;
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

/* One call in flight: its answer goes to done(ud). */
typedef struct paper_call {
    paper_t *p;
    venue_done_fn done;
    void *ud;
} paper_call_t;

typedef void (*paper_reply_fn)(paper_t *p, const redisReply *r, venue_answer_t *a);

/* Send argv on the bus; the reply (NULL: the link dropped) goes through fn
 * into the answer. */
static void paper_send(paper_t *p, int argc, const char **argv, bus_reply_fn cb, venue_done_fn done, void *ud)
{
    paper_call_t *k = malloc(sizeof *k);
    venue_answer_t a = {0};
    if (k) k->p = p, k->done = done, k->ud = ud;
    if (k && bus_redis(p->bus, cb, k, argc, argv, NULL) == 0) return;
    free(k);
    venue_answer_set(&a, VENUE_UNAVAILABLE, "paper venue: Redis is not reachable now");
    venue_answer_later(&p->base, &a, done, ud);
}

/* The answer of a reply, for the callbacks below. */
static void paper_answer(void *ud, const redisReply *r, paper_reply_fn fn)
{
    paper_call_t *k = ud;
    venue_answer_t a = {0};
    if (!r) venue_answer_set(&a, VENUE_UNAVAILABLE, "paper venue: the Redis link dropped");
    else fn(k->p, r, &a);
    k->done(k->ud, &a);
    json_decref(a.positions);
    free(k);
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

static void paper_place_reply(paper_t *p, const redisReply *r, venue_answer_t *a)
{
    (void)p;
    if (r->type != REDIS_REPLY_STRING) {
        venue_answer_set(a, VENUE_UNAVAILABLE, "paper venue: %s", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        return;
    }
    a->rc = paper_parse(r->str, r->len, &a->fill, a->err, sizeof a->err) == 0 ? VENUE_FILLED : VENUE_REJECTED;
    if (a->rc == VENUE_REJECTED) snprintf(a->code, sizeof a->code, "PAPER_REJECT");
}

static void paper_place_cb(void *ud, const struct redisReply *r) { paper_answer(ud, r, paper_place_reply); }

static void paper_place(venue_t *v, const venue_order_t *o, venue_done_fn done, void *ud)
{
    paper_t *p = (paper_t *)v;
    char qty[32], ref[32], fee[32], slip[32], bal[32], lev[32];
    snprintf(qty, sizeof qty, "%.10f", o->qty), snprintf(ref, sizeof ref, "%.10f", o->ref_price);
    snprintf(fee, sizeof fee, "%g", p->fee_bps), snprintf(slip, sizeof slip, "%g", p->slip_bps);
    snprintf(bal, sizeof bal, "%.10f", p->balance0), snprintf(lev, sizeof lev, "%g", o->leverage);
    const char *argv[] = {"EVAL", paper_lua, "4", p->k_orders, p->k_balance, p->k_positions, p->k_seq, o->cid,
                          o->symbol, o->side, qty, ref, fee, slip, o->reduce_only ? "1" : "0", bal, lev};
    paper_send(p, 17, argv, paper_place_cb, done, ud);
}

static void paper_query_reply(paper_t *p, const redisReply *r, venue_answer_t *a)
{
    (void)p;
    if (r->type == REDIS_REPLY_ERROR) venue_answer_set(a, VENUE_UNAVAILABLE, "paper venue: %s", r->str);
    else if (r->type != REDIS_REPLY_STRING) venue_answer_set(a, VENUE_NOT_FOUND, "no such order");
    else a->rc = paper_parse(r->str, r->len, &a->fill, a->err, sizeof a->err) == 0 ? VENUE_FILLED : VENUE_REJECTED;
}

static void paper_query_cb(void *ud, const struct redisReply *r) { paper_answer(ud, r, paper_query_reply); }

static void paper_query(venue_t *v, const char *symbol, const char *cid, venue_done_fn done, void *ud)
{
    paper_t *p = (paper_t *)v;
    (void)symbol;
    const char *argv[] = {"HGET", p->k_orders, cid};
    paper_send(p, 3, argv, paper_query_cb, done, ud);
}

static void paper_balance_reply(paper_t *p, const redisReply *r, venue_answer_t *a)
{
    char *end = NULL;
    a->balance = r->type == REDIS_REPLY_STRING ? strtod(r->str, &end) : p->balance0;
    int bad = r->type == REDIS_REPLY_ERROR || (end && (end == r->str || *end || !isfinite(a->balance)));
    if (bad)
        venue_answer_set(a, VENUE_UNAVAILABLE, "paper venue: the balance cannot be read (%s)",
                         r->type == REDIS_REPLY_ERROR ? r->str : "not a number");
}

static void paper_balance_cb(void *ud, const struct redisReply *r) { paper_answer(ud, r, paper_balance_reply); }

static void paper_balance(venue_t *v, venue_done_fn done, void *ud)
{
    paper_t *p = (paper_t *)v;
    const char *argv[] = {"GET", p->k_balance};
    paper_send(p, 2, argv, paper_balance_cb, done, ud);
}

static void paper_filters(venue_t *v, const char *symbol, venue_done_fn done, void *ud)
{
    paper_t *p = (paper_t *)v;
    venue_answer_t a = {0};
    (void)symbol;
    a.filters = (venue_filters_t){p->step, p->step, p->min_notional};
    venue_answer_later(v, &a, done, ud);
}

static void paper_positions_reply(paper_t *p, const redisReply *r, venue_answer_t *a)
{
    (void)p;
    if (r->type == REDIS_REPLY_ERROR) {
        venue_answer_set(a, VENUE_UNAVAILABLE, "paper venue: %s", r->str);
        return;
    }
    json_t *out = json_object();
    for (size_t i = 0; out && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        json_t *d = json_loads(r->element[i + 1]->str, 0, NULL), *amt = json_object_get(d, "amt");
        if (!json_is_number(amt) || !isfinite(json_number_value(amt))) {
            venue_answer_set(a, VENUE_UNAVAILABLE, "paper venue: the position record of %.40s cannot be read",
                             r->element[i]->str);
            json_decref(out), out = NULL;
        } else if (json_number_value(amt) != 0) {
            json_object_set_new(out, r->element[i]->str, json_real(json_number_value(amt)));
        }
        json_decref(d);
    }
    a->positions = out;
}

static void paper_positions_cb(void *ud, const struct redisReply *r) { paper_answer(ud, r, paper_positions_reply); }

static void paper_positions(venue_t *v, venue_done_fn done, void *ud)
{
    paper_t *p = (paper_t *)v;
    const char *argv[] = {"HGETALL", p->k_positions};
    paper_send(p, 2, argv, paper_positions_cb, done, ud);
}

static void paper_free(venue_t *v) { free(v); }

static const venue_ops_t paper_ops = {"paper", paper_place, paper_query, paper_balance, paper_filters,
                                      paper_positions, NULL, paper_free};

venue_t *venue_paper_new(struct event_base *base, bus_t *bus, const char *ns, char *err, size_t errlen)
{
    paper_t *p = calloc(1, sizeof *p);
    if (!p) return snprintf(err, errlen, "out of memory"), NULL;
    p->base.ops = &paper_ops;
    p->base.base = base;
    p->bus = bus;
    if (config_get_double("QT_PAPER_FEE_BPS", 4, 0, 1000, &p->fee_bps, err, errlen) < 0 ||
        config_get_double("QT_PAPER_SLIPPAGE_BPS", 2, 0, 1000, &p->slip_bps, err, errlen) < 0 ||
        config_get_double("QT_PAPER_BALANCE", 10000, 1, 1e12, &p->balance0, err, errlen) < 0 ||
        config_get_double("QT_PAPER_STEP", 0.001, 1e-8, 1e6, &p->step, err, errlen) < 0 ||
        config_get_double("QT_PAPER_MIN_NOTIONAL", 5, 0, 1e9, &p->min_notional, err, errlen) < 0) {
        free(p);
        return NULL;
    }
    proto_key(p->k_orders, sizeof p->k_orders, ns, QT_KEY_PAPER_ORDERS);
    proto_key(p->k_balance, sizeof p->k_balance, ns, QT_KEY_PAPER_BALANCE);
    proto_key(p->k_positions, sizeof p->k_positions, ns, QT_KEY_PAPER_POSITIONS);
    proto_key(p->k_seq, sizeof p->k_seq, ns, QT_KEY_PAPER_SEQ);
    return &p->base;
}
