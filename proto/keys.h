/* keys.h — every Redis name of the contract, its owner and the format of its
 * value. A name is used as "<ns>:<name>" (QT_NAMESPACE, default "qt"); build
 * it with proto_key(). Streams carry events (proto/schemas); "<stream>:dlq"
 * is the stream's dead-letter stream (libcommon/dlq.h holds its layout).
 *
 * A key marked "private" is one service's own state: no other service reads
 * or writes it. The others are read by whoever needs them; only the owner
 * writes. */
#ifndef QT_PROTO_KEYS_H
#define QT_PROTO_KEYS_H

#include <stddef.h>
#include <stdint.h>

/* Streams */
#define QT_STREAM_MARKET "market"           /* trading-engine's feed: market.data.update */
#define QT_STREAM_SIGNAL "signal"           /* rl-decision, ml-threshold: signals and thresholds, read by trading-engine */
#define QT_STREAM_VOTE "vote"               /* external ensemble members: model.vote, read by ml-threshold */
#define QT_STREAM_TRADE_INTENT "trade.intent" /* trading-engine: trade.intent */
#define QT_STREAM_EXECUTION "execution"     /* trade-executor: trade.executed, trade.failed */
#define QT_STREAM_FEEDBACK "feedback"       /* trading-engine: positions, outcomes, performance */
#define QT_STREAM_POLICY "policy"           /* policy-store: policy.config.updated, policy.trading.updated */
#define QT_DLQ_SUFFIX ":dlq"

/* Symbol partitions (DESIGN §2a). With QT_PARTITIONS=P > 1 every event
 * caused by a bar goes to one of P streams "<stream>:p<k>" (k = 0..P-1),
 * chosen by proto_partition() of its symbol; an event without a symbol
 * (performance.update) goes to p0. The partitioned streams are market,
 * signal, vote, trade.intent, execution and feedback; policy is one stream. With
 * P = 1 every name is exactly as above. */
#define QT_PARTITIONS_MAX 16
#define QT_KEY_META "meta" /* hash: "partitions" → the P the namespace was created with */
/* "lease:<service>:p<k>": string, the replica ("<host>-<pid>") holding partition k, with expiry
 * (QT_LEASE_MS); "lease:<service>:members": sorted set of the live replicas scored by when they
 * expire (libcommon/lease.h). Written by the service's replicas only. */
#define QT_KEY_LEASE_PREFIX "lease:"
/* "<ns>:lease:<service>:p<k>", the lease of partition k (for every P, 1 included). */
void proto_lease_key(char *out, size_t len, const char *ns, const char *service, int k);
/* 1 when stream name is partitioned. */
int proto_partitioned(const char *name);
/* The partition of symbol: FNV-1a (32-bit) of its bytes, modulo p. Stable
 * across versions and hosts: producers in other languages compute the same. */
int proto_partition(const char *symbol, int p);
uint32_t proto_symbol_hash(const char *symbol); /* that FNV-1a 32 */
/* The key of partition k of stream name in a namespace of p partitions:
 * "<ns>:<name>" when p is 1 or name is not partitioned, else
 * "<ns>:<name>:p<k>". */
void proto_part_key(char *out, size_t len, const char *ns, const char *name, int p, int k);

/* policy-store */
#define QT_KEY_POLICY_CONFIG "policy:config"     /* hash: configuration key → JSON text of its value */
#define QT_KEY_POLICY_VERSIONS "policy:versions" /* hash: configuration key → version (integer) */
#define QT_KEY_POLICY_AUDIT "policy:audit"       /* stream: one entry per configuration change */
#define QT_KEY_POLICY_TRADING "policy:trading"   /* string: JSON of the current TradingPolicy */
#define QT_KEY_POLICY_HISTORY "policy:history"   /* list: JSON of the last 100 TradingPolicies, newest first */
#define QT_KEY_POLICY_CONFIG_RESET "policy:config:reset" /* string: JSON {at, reason} while the configuration
                                                          * is the defaults policy-store re-seeded after Redis
                                                          * lost it; removed by the next operator write */
#define QT_KEY_POLICY_STATE "policy:state"       /* private: the policy engine's checkpoint (JSON) */

/* trading-engine */
#define QT_KEY_STATE_PREFIX "state:"    /* private: "state:<service>", a service's checkpoint (libcommon/ckpt.h);
                                          * with P > 1, a service whose replicas share the partitions
                                          * has one per partition, "state:<service>:p<k>" */
#define QT_KEY_ENGINE_STATE "engine:state"       /* private: the engine's checkpoint (JSON) */
#define QT_KEY_ENGINE_EQUITY "engine:equity"     /* private: hash {peak, day, day_start} of the equity, written when they change */
#define QT_KEY_ENGINE_ENTRY_VOTES "engine:entry_votes" /* private: hash symbol -> {open_time, model_votes, regime} of votes
                                                        that came after the entry was decided (engine.c eng_late_votes) */
#define QT_KEY_ENGINE_POSITIONS "engine:positions" /* string: JSON {symbol: signed quantity} of the engine's
                                                     book, written with every checkpoint (10 s) */

/* ml-threshold */
#define QT_KEY_ML_STATE "ml:state"     /* private: hash {version, state}: the learner's state (JSON), compare-and-set */
#define QT_KEY_ML_SEEN "ml:seen"       /* private: the closed trades already learned from */

/* trade-executor */
#define QT_KEY_EXEC_PREFIX "exec:"             /* private: "exec:<intent id>", the idempotency record (string, with expiry) */
#define QT_KEY_PAPER_ORDERS "paper:orders"     /* private: hash client order id → the fill (JSON) */
#define QT_KEY_PAPER_BALANCE "paper:balance"   /* private: the paper account's balance (decimal text) */
#define QT_KEY_PAPER_POSITIONS "paper:positions" /* private: hash symbol → position {amt, entry, leverage} (JSON) */
#define QT_KEY_PAPER_SEQ "paper:order_seq"     /* private: the paper venue's order counter */

/* "<ns>:<name>" into out (truncated to len). */
void proto_key(char *out, size_t len, const char *ns, const char *name);

#endif
