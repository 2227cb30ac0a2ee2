/* intents.h — the trade intents this engine published, and which of them
 * still hold a symbol. Pure bookkeeping, no I/O.
 *
 * Every published intent is remembered (the newest INTENTS_MAX) with its
 * entry context, until trade.executed or trade.failed settles it. While an
 * entry is unsettled it stands for the position to be: the symbol is held
 * (no second entry, the decision sees its direction). An exit the engine
 * sent is held the same way, so it is not sent twice. */
#ifndef QT_INTENTS_H
#define QT_INTENTS_H

#include <jansson.h>
#include <stdint.h>

#define INTENTS_MAX 4096
#define INTENTS_SYMS 64

typedef struct intent_rec {
    char id[65], symbol[24];
    int dir, reduce_only, executed, failed;
    int exit; /* an exit rule's (source_tag RISK_*), not the orchestrator's decision */
    double leverage;
    int64_t event_time;
    json_t *ctx; /* {confidence, regime, model_votes, action, source_tag}; owned */
} intent_rec_t;

typedef struct intent_hold {
    char symbol[24];
    char entry[65]; /* id of an entry not yet filled or failed, or "" */
    char exit[65];  /* id of an exit not yet filled, or "" */
    int entry_dir;
} intent_hold_t;

typedef struct intents {
    intent_rec_t rec[INTENTS_MAX];
    int n, head;
    intent_hold_t hold[INTENTS_SYMS];
    int nhold;
    long total, executed, failed;
    long decided, decided_executed, exits, exits_executed; /* the orchestrator's intents, the exit rules' */
    int64_t last_at, last_decided_at; /* event time of the newest intent, of the newest decided one */
} intents_t;

/* An intent to publish, as a decision or an exit rule asks for it. */
typedef struct intent_req {
    int side;                  /* +1 BUY, -1 SELL */
    const char *action;        /* static */
    double size_pct, confidence;
    const char *mode;          /* "PRIMARY", "HYBRID" or "RISK"; static */
    const char *tag;           /* source_tag, static */
    double qty;                /* reduce-only quantity; 0 for an entry */
    double ref_price;
} intent_req_t;

/* intents_t starts zeroed; intents_free releases the contexts. */
void intents_free(intents_t *r);

/* Remember intent id (ctx stolen, may be NULL) and count it. An entry holds
 * its symbol until settled. */
void intents_add(intents_t *r, const char *id, const char *symbol, int dir, int reduce_only, double leverage,
                 int64_t event_time, json_t *ctx);
/* The record of id (newest first), or NULL. */
intent_rec_t *intents_find(intents_t *r, const char *id);
/* The newest entry (not reduce-only) of symbol decided on the bar at
 * open_time (its context's open_time), or NULL. */
intent_rec_t *intents_entry_at(intents_t *r, const char *symbol, int64_t open_time);

typedef enum { INTENT_EXECUTED = 0, INTENT_FAILED = 1 } intent_outcome_t;
/* trade.executed / trade.failed for id: marks and counts the record the first
 * time (1 is returned then, 0 otherwise) and releases any symbol it held. */
int intents_settle(intents_t *r, const char *id, intent_outcome_t how);

/* The exit id now holds symbol ("" releases it). */
void intents_hold_exit(intents_t *r, const char *symbol, const char *id);
/* An exit sent for symbol is not yet filled. */
int intents_exit_held(const intents_t *r, const char *symbol);
/* The direction of symbol's unsettled entry, 0 when none. */
int intents_entry_dir(const intents_t *r, const char *symbol);
/* symbol waits for an entry or exit of its own. */
int intents_holds(const intents_t *r, const char *symbol);
/* Published intents with no execution or failure yet. */
long intents_unsettled(const intents_t *r);

#endif
