/* api.c — the trading-engine's HTTP views (see api.h). */
#include "api.h"
#include "actions.h"
#include "decide.h"

#include <math.h>
#include <stdio.h>
#include <time.h>

static json_t *api_iso(int64_t ms)
{
    char buf[40];
    if (!ms) return json_null();
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof buf - n, ".%03dZ", (int)(ms % 1000));
    return json_string(buf);
}

static int api_live(void *ud, httpd_req_t *req, json_t **out)
{
    const eng_api_t *a = ud;
    (void)req;
    /* the seed's counts are the orchestrator's intents; the exit rules' (stop-loss, take-profit) apart */
    *out = json_pack("{s:b, s:s, s:f, s:I, s:I, s:I, s:I, s:I, s:o, s:o}", "enabled", decide_enabled(a->pv), "mode",
                     live_mode_name(decide_mode(a->pv)), "min_confidence",
                     policyview_num(a->pv, "rl_v3.live.min_confidence", 0.6), "trade_intents_total",
                     (json_int_t)a->intents->decided, "trade_intents_executed", (json_int_t)a->intents->decided_executed,
                     "exit_intents_total", (json_int_t)a->intents->exits, "exit_intents_executed",
                     (json_int_t)a->intents->exits_executed, "shadow_decisions", (json_int_t)a->decisions->shadow,
                     "last_decision_at", api_iso(a->decisions->last_at), "last_trade_intent_at",
                     api_iso(a->intents->last_decided_at));
    return 200;
}

#define API_RECENT_INTENTS 100 /* the seed's metrics store keeps the last 100 */

/* GET /api/v1/rl-v3/dashboard/intents?limit=N: the orchestrator's newest
 * intents (up to 100), newest first, each with its state. */
static int api_intents(void *ud, httpd_req_t *req, json_t **out)
{
    const eng_api_t *a = ud;
    const intents_t *r = a->intents;
    long limit;
    if (httpd_query_long(req, "limit", 20, 1, API_RECENT_INTENTS, &limit) < 0) {
        *out = httpd_error("limit must be an integer from 1 to %d", API_RECENT_INTENTS);
        return 400;
    }
    json_t *list = json_array();
    for (int k = 1; k <= r->n && (long)json_array_size(list) < limit; k++) {
        const intent_rec_t *rec = &r->rec[(r->head - k + INTENTS_MAX) % INTENTS_MAX];
        if (rec->exit) continue;
        const json_t *c = rec->ctx;
        json_array_append_new(
            list, json_pack("{s:s, s:s, s:s, s:O?, s:O?, s:O?, s:O?, s:b, s:I, s:o, s:s}", "intent_id", rec->id, "symbol",
                            rec->symbol, "side", rec->dir > 0 ? "BUY" : "SELL", "action", json_object_get(c, "action"),
                            "confidence", json_object_get(c, "confidence"), "source_tag", json_object_get(c, "source_tag"),
                            "regime", json_object_get(c, "regime"), "reduce_only", rec->reduce_only, "event_time",
                            (json_int_t)rec->event_time, "at", api_iso(rec->event_time), "state",
                            rec->executed ? "EXECUTED" : rec->failed ? "FAILED" : "PENDING"));
    }
    *out = json_pack("{s:o, s:I}", "intents", list, "total", (json_int_t)r->decided);
    return 200;
}

static json_t *api_sig_json(int present, const char *action, double conf)
{
    return present ? json_pack("{s:s, s:f}", "action", action, "confidence", conf) : json_null();
}

/* A recorded decision as the API shows it (a new reference). */
static json_t *api_decision_json(const declog_entry_t *r)
{
    const char *ens_action = r->ens.dir > 0 ? PROTO_ENS_LONG : r->ens.dir < 0 ? PROTO_ENS_SHORT : PROTO_ENS_HOLD;
    return json_pack("{s:s, s:I, s:I, s:s, s:o, s:o, s:s, s:f, s:s?, s:s, s:s?, s:s?, s:s?, s:s}", "symbol", r->symbol,
                     "open_time", (json_int_t)r->open_time, "event_time", (json_int_t)r->event_time, "mode",
                     live_mode_name(r->mode), "rl", api_sig_json(r->rl.present, rl_action_name(r->rl.action), r->rl.confidence),
                     "signal", api_sig_json(r->ens.present, ens_action, r->ens.confidence), "action",
                     rl_action_name(r->action), "confidence", r->confidence, "source_tag", r->source_tag, "outcome",
                     r->outcome, "denial_reason", r->reason, "detail", r->detail[0] ? r->detail : NULL, "intent_id",
                     r->intent_id[0] ? r->intent_id : NULL, "trace", r->trace);
}

static int api_decisions(void *ud, httpd_req_t *req, json_t **out)
{
    const eng_api_t *a = ud;
    long limit;
    if (httpd_query_long(req, "limit", 50, 1, DECLOG_MAX, &limit) < 0) {
        *out = httpd_error("limit must be an integer from 1 to %d", DECLOG_MAX);
        return 400;
    }
    json_t *d = json_array();
    const declog_entry_t *r;
    for (int k = 0; k < limit && (r = declog_newest(a->decisions, k)); k++) json_array_append_new(d, api_decision_json(r));
    *out = json_pack("{s:o, s:I, s:I}", "decisions", d, "count", (json_int_t)json_array_size(d), "total",
                     (json_int_t)a->decisions->total);
    return 200;
}

json_t *api_positions_json(const book_t *b)
{
    const ledger_t *l = &b->ledger;
    json_t *a = json_array();
    for (int i = 0; i < l->n; i++) {
        const position_t *p = &l->pos[i];
        json_array_append_new(a, json_pack("{s:s, s:s, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:I}", "symbol", p->symbol,
                                           "side", p->qty > 0 ? "LONG" : "SHORT", "qty", fabs(p->qty), "entry_price",
                                           p->entry_price, "last_price", p->last_price, "unrealized_pnl",
                                           (p->last_price - p->entry_price) * p->qty, "leverage", p->leverage,
                                           "fees", p->fees, "realized_pnl", p->realized, "opened_at",
                                           (json_int_t)p->opened_at));
    }
    return json_pack("{s:o, s:f, s:f, s:f, s:f, s:i, s:f, s:f, s:f, s:i, s:I, s:I}", "positions", a, "equity",
                     ledger_equity(l), "realized_pnl", l->realized, "unrealized_pnl", ledger_unrealized(l), "fees",
                     l->fees, "open_positions", l->n, "exposure_pct", ledger_exposure_pct(l), "daily_pnl_pct",
                     book_daily_pnl_pct(b), "drawdown_pct", book_drawdown_pct(b), "losing_streak", l->losing_streak,
                     "closed_trades", (json_int_t)l->closes, "wins", (json_int_t)l->wins);
}

static int api_positions(void *ud, httpd_req_t *req, json_t **out)
{
    const eng_api_t *a = ud;
    (void)req;
    *out = api_positions_json(a->book);
    return 200;
}

/* The equity curve: [[event_time, equity], ...], oldest first. */
static int api_equity(void *ud, httpd_req_t *req, json_t **out)
{
    const eng_api_t *a = ud;
    json_t *pts = json_array();
    (void)req;
    for (int k = 0; k < a->book->eq.n; k++) {
        int64_t t;
        double v;
        equity_point(&a->book->eq, k, &t, &v);
        json_array_append_new(pts, json_pack("[I, f]", (json_int_t)t, v));
    }
    *out = json_pack("{s:o, s:f}", "points", pts, "equity", book_equity(a->book));
    return 200;
}

int api_routes(httpd_t *h, const eng_api_t *a)
{
    void *ud = (void *)a; /* the handlers only read */
    return httpd_route(h, "GET", "/api/v1/rl-v3/dashboard/live-status", 0, api_live, ud) < 0 ||
                   httpd_route(h, "GET", "/api/v1/rl-v3/dashboard/intents", 0, api_intents, ud) < 0 ||
                   httpd_route(h, "GET", "/api/v1/decisions", 0, api_decisions, ud) < 0 ||
                   httpd_route(h, "GET", "/api/v1/positions", 0, api_positions, ud) < 0 ||
                   httpd_route(h, "GET", "/api/v1/equity", 0, api_equity, ud) < 0
               ? -1
               : 0;
}
