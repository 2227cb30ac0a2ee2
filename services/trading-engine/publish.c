/* publish.c — the trading-engine's events (see publish.h). */
#include "publish.h"
#include "actions.h"
#include "event.h"
#include "keys.h"
#include "live.h"
#include "log.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int pub_event(svc_t *svc, const char *stream, const char *type, json_t *data, const char *id_name, const char *trace)
{
    char err[256], id[37];
    event_t ev;
    event_derive_id(id_name, id);
    if (event_make(&ev, type, data, trace, id, err, sizeof err) < 0) {
        log_error("%s does not match its schema: %s", type, err);
        return -2;
    }
    int rc = bus_publish(svc->bus, stream, &ev, err, sizeof err);
    if (rc < 0) log_msg(LOG_ERROR, trace, "cannot publish %s: %s", type, err);
    event_clear(&ev);
    return rc;
}

static void pub_bar_name(const svc_t *svc, const feed_bar_t *b, char *name, size_t len)
{
    snprintf(name, len, "bar:%s:%s:%s:%lld", svc->cfg.ns, b->symbol, b->interval, (long long)b->open_time);
}

void pub_bar_id(const svc_t *svc, const feed_bar_t *b, char id[37])
{
    char name[160];
    pub_bar_name(svc, b, name, sizeof name);
    event_derive_id(name, id);
}

int pub_bar(svc_t *svc, const feed_bar_t *b)
{
    char name[160], id[37];
    pub_bar_name(svc, b, name, sizeof name);
    event_derive_id(name, id);
    json_t *d = json_pack("{s:s, s:s, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:f, s:b, s:I}", "symbol",
                          b->symbol, "interval", b->interval, "open_time", (json_int_t)b->open_time, "close_time",
                          (json_int_t)b->close_time, "open", b->open, "high", b->high, "low", b->low, "close", b->close,
                          "volume", b->volume, "quote_volume", b->quote_volume, "trades", (json_int_t)b->trades,
                          "taker_buy_volume", b->taker_buy_volume, "closed", 1, "event_time", (json_int_t)b->close_time);
    return pub_event(svc, QT_STREAM_MARKET, "market.data.update", d, name, id);
}

int pub_intent(svc_t *svc, const char *symbol, const intent_req_t *req, double leverage, int64_t event_time,
               int64_t open_time, const char *trace, const char *regime, const json_t *votes, char id[65],
               json_t **ctx)
{
    char name[200];
    int reduce = req->qty > 0;
    const char *side = req->side > 0 ? PROTO_SIDE_BUY : PROTO_SIDE_SELL;
    snprintf(name, sizeof name, "intent:%s:%s:%lld:%s:%s", svc->cfg.ns, symbol, (long long)open_time, side, req->tag);
    event_derive_id(name, id);
    json_t *d = json_pack("{s:s, s:s, s:s, s:f, s:f, s:f, s:s, s:s, s:f, s:b, s:I, s:I}", "symbol", symbol, "side",
                          side, "action", req->action, "size_pct", req->size_pct, "leverage", leverage, "confidence",
                          req->confidence, "mode", req->mode, "source_tag", req->tag, "ref_price", req->ref_price,
                          "reduce_only", reduce, "event_time", (json_int_t)event_time, "open_time", (json_int_t)open_time);
    if (reduce) json_object_set_new(d, "qty", json_real(req->qty));
    if (regime && *regime) json_object_set_new(d, "regime", json_string(regime));
    if (votes) json_object_set(d, "model_votes", (json_t *)votes);
    if (pub_event(svc, QT_STREAM_TRADE_INTENT, "trade.intent", d, name, trace) < 0) return -1;
    json_t *mv = votes ? json_incref((json_t *)votes) : json_object();
    *ctx = json_pack("{s:f, s:s, s:o, s:s, s:s, s:I}", "confidence", req->confidence, "regime", regime ? regime : "",
                     "model_votes", mv, "action", req->action, "source_tag", req->tag, "open_time", (json_int_t)open_time);
    return 0;
}

static json_t *ctx_votes(const json_t *ctx)
{
    json_t *v = json_object_get(ctx, "model_votes");
    return json_is_object(v) ? json_incref(v) : json_object();
}

static const char *ctx_str(const json_t *ctx, const char *k, const char *def)
{
    const char *s = json_string_value(json_object_get(ctx, k));
    return s && *s ? s : def;
}

int pub_position_opened(svc_t *svc, const position_t *p, double equity, const char *exec_id, const char *trace)
{
    char name[128];
    snprintf(name, sizeof name, "pos-open:%s", exec_id);
    json_t *d = json_pack("{s:s, s:s, s:f, s:f, s:f, s:f, s:s, s:o, s:s, s:s, s:I}", "symbol", p->symbol, "side",
                          p->qty > 0 ? "LONG" : "SHORT", "qty", fabs(p->qty), "entry_price", p->entry_price,
                          "leverage", p->leverage, "confidence", json_number_value(json_object_get(p->ctx, "confidence")),
                          "regime", ctx_str(p->ctx, "regime", "UNKNOWN"), "model_votes", ctx_votes(p->ctx),
                          "source_tag", ctx_str(p->ctx, "source_tag", "UNKNOWN"), "action",
                          ctx_str(p->ctx, "action", "UNKNOWN"), "event_time", (json_int_t)p->opened_at);
    if (d && equity > 0) json_object_set_new(d, "equity", json_real(equity)); /* sizes it for a reader of this partition alone */
    return pub_event(svc, QT_STREAM_FEEDBACK, "position.opened", d, name, trace);
}

int pub_position_closed(svc_t *svc, const char *symbol, const fill_result_t *r, const char *reason,
                        const char *exec_id, const char *trace, int64_t t)
{
    char name[128];
    const json_t *ctx = r->closed_ctx;
    double conf = json_number_value(json_object_get(ctx, "confidence"));
    const char *regime = ctx_str(ctx, "regime", "UNKNOWN"), *action = ctx_str(ctx, "action", "HOLD");
    snprintf(name, sizeof name, "pos-close:%s", exec_id);
    int rc = pub_event(svc, QT_STREAM_FEEDBACK, "position.closed",
                       json_pack("{s:s, s:s, s:f, s:f, s:f, s:f, s:f, s:f, s:s, s:f, s:s, s:o, s:s, s:s, s:I}",
                                 "symbol", symbol, "side", r->closed_dir > 0 ? "LONG" : "SHORT", "qty", r->closed_qty,
                                 "entry_price", r->entry_price, "exit_price", r->exit_price, "pnl", r->pnl,
                                 "pnl_pct", r->pnl_pct, "duration_s", r->duration_s, "reason", reason,
                                 "confidence", conf, "regime", regime, "model_votes", ctx_votes(ctx), "source_tag",
                                 ctx_str(ctx, "source_tag", "UNKNOWN"), "action", action, "event_time", (json_int_t)t),
                       name, trace);
    snprintf(name, sizeof name, "outcome:%s", exec_id);
    rl_action_t a;
    if (rl_action_parse(action, &a) < 0) action = "HOLD"; /* the schema's action set */
    int rc2 = pub_event(svc, QT_STREAM_FEEDBACK, "feedback.prediction.outcome",
                        json_pack("{s:s, s:s, s:f, s:f, s:f, s:f, s:o, s:s, s:s, s:I}", "symbol", symbol, "action",
                                  action, "confidence", conf, "pnl", r->pnl, "pnl_pct", r->pnl_pct, "duration_s",
                                  r->duration_s, "model_votes", ctx_votes(ctx), "regime", regime, "source_tag",
                                  ctx_str(ctx, "source_tag", "UNKNOWN"), "event_time", (json_int_t)t),
                        name, trace);
    return rc < 0 ? rc : rc2;
}

int pub_performance(svc_t *svc, const book_t *b, int64_t t, const char *id_name, const char *trace)
{
    const ledger_t *l = &b->ledger;
    json_t *d = json_pack("{s:f, s:f, s:f, s:i, s:f, s:i, s:f, s:f, s:I}", "equity", ledger_equity(l),
                          "daily_pnl_pct", book_daily_pnl_pct(b), "drawdown_pct", book_drawdown_pct(b),
                          "open_positions", l->n, "exposure_pct", ledger_exposure_pct(l), "losing_streak",
                          l->losing_streak, "realized_pnl", l->realized, "unrealized_pnl", ledger_unrealized(l),
                          "event_time", (json_int_t)t);
    return pub_event(svc, QT_STREAM_FEEDBACK, "performance.update", d, id_name, trace);
}
