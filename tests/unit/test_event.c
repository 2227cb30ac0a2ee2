/* Unit tests: envelope round trip, ids, and every event type of the contract
 * accepted when good and rejected with a reason when bad. */
#include "actions.h"
#include "check.h"
#include "clock.h"
#include "event.h"
#include "keys.h"
#include "proto.h"

typedef struct { const char *type; const char *good; } sample_t;

static const char votes[] = "{\"xgb\":{\"action\":\"LONG\",\"confidence\":0.7},\"lr\":{\"action\":\"HOLD\",\"confidence\":0.5}}";

/* One good payload per event type; kept in step with proto/schemas/. */
static const sample_t samples[] = {
    {"market.data.update", "{\"symbol\":\"BTCUSDT\",\"interval\":\"1m\",\"open_time\":1700000000000,"
        "\"open\":100.5,\"high\":101,\"low\":99.5,\"close\":100.7,\"volume\":12.5,\"closed\":true,\"event_time\":1700000059999}"},
    {"signal.generated", "{\"symbol\":\"ETHUSDT\",\"open_time\":1,\"action\":\"LONG\",\"confidence\":0.66,"
        "\"model_votes\":%VOTES%,\"weights\":{\"xgb\":0.5,\"lr\":0.5},\"exploring\":false,\"event_time\":2}"},
    {"rl.signal.generated", "{\"symbol\":\"BTCUSDT\",\"open_time\":1,\"action\":\"LONG_SMALL\",\"confidence\":0.5,"
        "\"value\":-0.2,\"probs\":[0.1,0.5,0.1,0.1,0.1,0.1],\"model_version\":\"ppo-1\",\"event_time\":2}"},
    {"model.vote", "{\"symbol\":\"BTCUSDT\",\"open_time\":1,\"model\":\"py-lstm\",\"action\":\"SHORT\",\"confidence\":0.9}"},
    {"ml.threshold.adjusted", "{\"min_confidence\":0.65,\"conservative\":true,\"reason\":\"win rate 35%\",\"event_time\":5}"},
    {"ml.risk.limit.update", "{\"max_position_size\":0.01,\"stop_loss_multiplier\":1.2,\"reason\":\"drawdown\",\"event_time\":5}"},
    {"trade.intent", "{\"symbol\":\"BTCUSDT\",\"side\":\"BUY\",\"action\":\"LONG_SMALL\",\"size_pct\":0.02,\"leverage\":3,"
        "\"confidence\":0.7,\"mode\":\"PRIMARY\",\"source_tag\":\"RL_V3_PRIMARY\",\"ref_price\":100.5,\"reduce_only\":false,\"event_time\":9}"},
    {"trade.executed", "{\"intent_id\":\"01HX\",\"client_order_id\":\"qt-abc\",\"order_id\":\"42\",\"symbol\":\"BTCUSDT\","
        "\"side\":\"BUY\",\"qty\":0.001,\"price\":100.6,\"fee\":0.04,\"venue\":\"paper\",\"event_time\":9}"},
    {"trade.failed", "{\"intent_id\":\"01HX\",\"symbol\":\"BTCUSDT\",\"reason\":\"below min notional\",\"retryable\":false,\"event_time\":9}"},
    {"position.opened", "{\"symbol\":\"BTCUSDT\",\"side\":\"LONG\",\"qty\":0.001,\"entry_price\":100.6,\"confidence\":0.7,"
        "\"regime\":\"TRENDING\",\"model_votes\":%VOTES%,\"event_time\":9}"},
    {"position.closed", "{\"symbol\":\"BTCUSDT\",\"side\":\"SHORT\",\"qty\":0.001,\"entry_price\":100.6,\"exit_price\":99,"
        "\"pnl\":0.0016,\"pnl_pct\":1.59,\"duration_s\":600,\"confidence\":0.7,\"regime\":\"RANGING\",\"model_votes\":%VOTES%,\"event_time\":10}"},
    {"feedback.prediction.outcome", "{\"symbol\":\"BTCUSDT\",\"action\":\"LONG\",\"confidence\":0.7,\"pnl\":-1.5,"
        "\"model_votes\":%VOTES%,\"regime\":\"TRENDING\",\"event_time\":10}"},
    {"performance.update", "{\"equity\":10012.5,\"daily_pnl_pct\":0.12,\"drawdown_pct\":0.5,\"open_positions\":1,"
        "\"exposure_pct\":20,\"losing_streak\":0,\"event_time\":10}"},
    {"policy.config.updated", "{\"key\":\"rl_v3.live.mode\",\"value\":\"PRIMARY\",\"version\":3}"},
    {"rl.experience", "{\"symbol\":\"BTCUSDT\",\"action\":\"LONG_SMALL\",\"reward\":1.5,\"obs\":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],\"model_version\":\"m1\",\"event_time\":5}"},
    {"policy.trading.updated", "{\"allow_new_trades\":true,\"risk_profile\":\"NORMAL\",\"max_risk_pct\":1.0,\"min_confidence\":0.6,"
        "\"entry_mode\":\"NORMAL\",\"exit_mode\":\"TREND_FOLLOW\",\"allowed_symbols\":[\"BTCUSDT\"],\"disallowed_symbols\":[],"
        "\"note\":\"TRENDING + NORMAL_VOL\",\"timestamp\":\"2025-01-22T12:00:00Z\"}"},
    {"position.external", "{\"symbol\":\"BTCUSDT\",\"engine_qty\":3,\"venue_qty\":0,\"reason\":\"liquidated\","
        "\"detected_by\":\"reconciliation\",\"event_time\":7}"},
    {"policy.daily.reset", "{\"requested_at\":1764547200000,\"reason\":\"POST /api/v1/policy/reset-daily\"}"},
};
#define NSAMPLES (sizeof samples / sizeof samples[0])

/* Parse a sample, expanding %VOTES%. */
static json_t *sample_json(const sample_t *s)
{
    char buf[4096];
    const char *p = strstr(s->good, "%VOTES%");
    if (p) snprintf(buf, sizeof buf, "%.*s%s%s", (int)(p - s->good), s->good, votes, p + 7);
    else snprintf(buf, sizeof buf, "%s", s->good);
    json_error_t je;
    json_t *j = json_loads(buf, 0, &je);
    if (!j) fprintf(stderr, "bad sample %s: %s\n", s->type, je.text);
    return j;
}

static int validate(const char *type, json_t *d, char *err, size_t n)
{
    int rc = proto_validate(type, 1, d, err, n);
    json_decref(d);
    return rc;
}

/* The partition of a symbol is FNV-1a (32-bit) modulo P: the published
 * vectors of the hash, so a producer in another language agrees. */
TEST(a_symbols_partition_is_fnv1a_modulo_the_count)
{
    CHECK_EQ(proto_partition("a", 1 << 30), (int)(0xe40c292cu % (1u << 30)));
    CHECK_EQ(proto_partition("foobar", 1 << 30), (int)(0xbf9cf968u % (1u << 30)));
    CHECK_EQ(proto_partition("BTCUSDT", 16), 12);
    CHECK_EQ(proto_partition("ETHUSDT", 16), 0);
    CHECK_EQ(proto_partition("BTCUSDT", 1), 0);
    char k[64];
    proto_part_key(k, sizeof k, "qt", "market", 1, 0);
    CHECK_STR(k, "qt:market");
    proto_part_key(k, sizeof k, "qt", "market", 4, 3);
    CHECK_STR(k, "qt:market:p3");
    proto_part_key(k, sizeof k, "qt", "policy", 4, 3); /* one stream for every partition */
    CHECK_STR(k, "qt:policy");
    CHECK(proto_partitioned("feedback") && proto_partitioned("trade.intent") && !proto_partitioned("rl.experience"));
}

TEST(schemas_load)
{
    char err[256];
    CHECK_EQ(proto_init(err, sizeof err), 0);
    CHECK_EQ(proto_count(), NSAMPLES);
}

/* proto/actions.h and the schemas' enums name the same actions and sides. */
TEST(action_names_agree_with_the_schemas)
{
    const json_t *rl = json_object_get(json_object_get(json_object_get(proto_schema("rl.signal.generated", 1), "properties"), "action"), "enum");
    CHECK_EQ(json_array_size(rl), PROTO_RL_ACTIONS);
    for (int i = 0; i < PROTO_RL_ACTIONS; i++) {
        CHECK_STR(json_string_value(json_array_get(rl, (size_t)i)), proto_rl_actions[i]);
        CHECK_EQ(proto_rl_action_index(proto_rl_actions[i]), i);
    }
    CHECK_EQ(proto_rl_action_index("LONG"), -1);
    CHECK_STR(proto_rl_action_name(99), "HOLD");
    const json_t *ens = json_object_get(json_object_get(json_object_get(proto_schema("signal.generated", 1), "properties"), "action"), "enum");
    CHECK_STR(json_string_value(json_array_get(ens, 0)), PROTO_ENS_LONG);
    CHECK_STR(json_string_value(json_array_get(ens, 1)), PROTO_ENS_SHORT);
    CHECK_STR(json_string_value(json_array_get(ens, 2)), PROTO_ENS_HOLD);
    const json_t *side = json_object_get(json_object_get(json_object_get(proto_schema("trade.intent", 1), "properties"), "side"), "enum");
    CHECK_STR(json_string_value(json_array_get(side, 0)), PROTO_SIDE_BUY);
    CHECK_STR(json_string_value(json_array_get(side, 1)), PROTO_SIDE_SELL);
}

TEST(every_type_accepts_good)
{
    char err[256];
    for (size_t i = 0; i < NSAMPLES; i++) {
        err[0] = 0;
        if (validate(samples[i].type, sample_json(&samples[i]), err, sizeof err) != 0)
            CHECK_FAIL_AT("%s rejected: %s", samples[i].type, err);
    }
}

TEST(every_type_rejects_missing_required)
{
    char err[256], want[128];
    for (size_t i = 0; i < NSAMPLES; i++) {
        const json_t *req = json_object_get(proto_schema(samples[i].type, 1), "required");
        size_t k;
        json_t *f;
        CHECK(json_array_size(req) > 0);
        json_array_foreach(req, k, f) {
            json_t *d = sample_json(&samples[i]);
            json_object_del(d, json_string_value(f));
            snprintf(want, sizeof want, "missing required field '%s'", json_string_value(f));
            if (validate(samples[i].type, d, err, sizeof err) == 0) CHECK_FAIL_AT("%s accepted without %s", samples[i].type, json_string_value(f));
            else CHECK_CONTAINS(err, want);
        }
    }
}

TEST(every_type_rejects_unknown_field)
{
    char err[256];
    for (size_t i = 0; i < NSAMPLES; i++) {
        json_t *d = sample_json(&samples[i]);
        json_object_set_new(d, "surprise", json_true());
        CHECK_EQ(validate(samples[i].type, d, err, sizeof err), -1);
        CHECK_CONTAINS(err, "unknown field 'surprise'");
    }
}

/* Mutate field `f` of type `t`'s good sample to the JSON `v`; expect `why`. */
static void expect_bad(const char *t, const char *f, const char *v, const char *why)
{
    char err[256] = "";
    json_t *d = NULL;
    for (size_t i = 0; i < NSAMPLES; i++)
        if (strcmp(samples[i].type, t) == 0) d = sample_json(&samples[i]);
    json_object_set_new(d, f, json_loads(v, JSON_DECODE_ANY, NULL));
    if (validate(t, d, err, sizeof err) == 0) CHECK_FAIL_AT("%s.%s=%s accepted", t, f, v);
    else if (!strstr(err, why)) CHECK_FAIL_AT("%s.%s=%s: '%s' lacks '%s'", t, f, v, err, why);
}

TEST(wrong_types_ranges_enums)
{
    expect_bad("signal.generated", "confidence", "1.5", "data.confidence: 1.5 is above the maximum 1");
    expect_bad("signal.generated", "confidence", "\"high\"", "expected number, got string");
    expect_bad("signal.generated", "action", "\"BUY\"", "'BUY' is not one of the allowed values");
    expect_bad("signal.generated", "model_votes", "{\"m\":{\"action\":\"LONG\",\"confidence\":2}}",
               "data.model_votes.m.confidence");
    expect_bad("rl.signal.generated", "probs", "[0.5,0.5]", "fewer than 6 items");
    expect_bad("rl.signal.generated", "probs", "[0.5,0.5,0.5,0.5,0.5,0.5]", "must sum to 1");
    expect_bad("market.data.update", "symbol", "\"btc/usdt\"", "is not a symbol");
    expect_bad("market.data.update", "open_time", "1.5", "expected integer, got number");
    expect_bad("market.data.update", "high", "99", "bar is inconsistent");
    expect_bad("market.data.update", "close", "0", "must be greater than 0");
    expect_bad("market.data.update", "interval", "\"7m\"", "not one of the allowed values");
    expect_bad("trade.intent", "leverage", "200", "above the maximum 125");
    expect_bad("trade.intent", "side", "\"LONG\"", "not one of the allowed values");
    expect_bad("trade.intent", "reduce_only", "\"no\"", "expected boolean");
    expect_bad("trade.executed", "client_order_id", "\"0123456789012345678901234567890123456789\"", "longer than 36");
    expect_bad("performance.update", "open_positions", "-1", "below the minimum 0");
    expect_bad("policy.trading.updated", "risk_profile", "\"YOLO\"", "not one of the allowed values");
    expect_bad("policy.trading.updated", "allowed_symbols", "[\"BTCUSDT\", 5]", "data.allowed_symbols[1]");
    expect_bad("policy.config.updated", "version", "0", "below the minimum 1");
}

TEST(unknown_type_and_version)
{
    char err[256];
    json_t *d = json_object();
    CHECK_EQ(proto_validate("no.such.type", 1, d, err, sizeof err), -1);
    CHECK_CONTAINS(err, "unknown event type 'no.such.type'");
    CHECK_EQ(proto_validate("trade.intent", 9, d, err, sizeof err), -1);
    CHECK_CONTAINS(err, "version 9 is not supported");
    json_decref(d);
}

/* ev's envelope and data as a legacy v1 entry (7 fields into f). */
static char v1_ts[24];
static size_t fields_of(const event_t *ev, const char *data, event_field_t *f)
{
    snprintf(v1_ts, sizeof v1_ts, "%lld", (long long)ev->ts);
    const char *names[] = {"id", "type", "v", "ts", "source", "trace", "data"};
    const char *vals[] = {ev->id, ev->type, "1", v1_ts, ev->source, ev->trace, data};
    for (int i = 0; i < 7; i++) f[i] = (event_field_t){names[i], strlen(names[i]), vals[i], strlen(vals[i])};
    return 7;
}

/* The v2 entry of type t's good sample: its fields in enc (event_enc_free). */
static void v2_of(const char *t, event_enc_t *enc)
{
    char err[256];
    event_t ev;
    json_t *d = NULL;
    for (size_t i = 0; i < NSAMPLES; i++)
        if (strcmp(samples[i].type, t) == 0) d = sample_json(&samples[i]);
    memset(enc, 0, sizeof *enc);
    if (event_make(&ev, t, d, NULL, NULL, err, sizeof err) < 0 || event_encode(&ev, enc, err, sizeof err) < 0)
        CHECK_FAIL_AT("%s: %s", t, err);
    /* the fields point into ev's id and the like too: copy them into enc's text */
    event_enc_t own;
    memset(&own, 0, sizeof own);
    for (size_t i = 0; i < enc->n; i++) own.len += enc->f[i].name_len + enc->f[i].val_len + 2;
    own.text = malloc(own.len);
    char *p = own.text;
    for (size_t i = 0; i < enc->n; i++) {
        memcpy(p, enc->f[i].name, enc->f[i].name_len), p[enc->f[i].name_len] = 0;
        own.f[i].name = p, own.f[i].name_len = enc->f[i].name_len, p += enc->f[i].name_len + 1;
        memcpy(p, enc->f[i].val, enc->f[i].val_len), p[enc->f[i].val_len] = 0;
        own.f[i].val = p, own.f[i].val_len = enc->f[i].val_len, p += enc->f[i].val_len + 1;
    }
    own.n = enc->n;
    event_enc_free(enc);
    event_clear(&ev);
    *enc = own;
}

/* The value of field name of a v2 entry (for the checks below), or NULL. */
static const event_field_t *v2_field(event_enc_t *enc, const char *name)
{
    for (size_t i = 0; i < enc->n; i++)
        if (enc->f[i].name_len == strlen(name) && memcmp(enc->f[i].name, name, enc->f[i].name_len) == 0)
            return &enc->f[i];
    return NULL;
}

/* Decode type t's v2 sample with field name's value set to val (NULL: the
 * field left out; a name not in the entry is added); expect why. */
static void v2_bad(const char *t, const char *name, const char *val, const char *why)
{
    char err[300] = "";
    event_enc_t enc;
    event_t back;
    v2_of(t, &enc);
    event_field_t *f = (event_field_t *)v2_field(&enc, name);
    if (!f) f = &enc.f[enc.n++], f->name = name, f->name_len = strlen(name);
    if (val) f->val = val, f->val_len = strlen(val);
    else *f = enc.f[--enc.n];
    if (event_decode(&back, enc.f, enc.n, err, sizeof err) == 0) {
        CHECK_FAIL_AT("%s %s=%s accepted", t, name, val ? val : "(none)");
        event_clear(&back);
    } else if (!strstr(err, why)) CHECK_FAIL_AT("%s %s=%s: '%s' lacks '%s'", t, name, val ? val : "(none)", err, why);
    free(enc.text);
}

/* Contract v2: every payload field is a stream field; every type's good
 * sample goes through it and back exactly, and reads the same as its v1. */
TEST(v2_every_type_round_trips_flat_and_equals_its_v1)
{
    char err[256];
    for (size_t i = 0; i < NSAMPLES; i++) {
        event_enc_t enc, again;
        event_t back, old;
        event_field_t f[8];
        v2_of(samples[i].type, &enc);
        CHECK_STR(v2_field(&enc, "v")->val, "2");
        CHECK(v2_field(&enc, "data") == NULL);
        if (event_decode(&back, enc.f, enc.n, err, sizeof err) != 0) {
            CHECK_FAIL_AT("%s: %s", samples[i].type, err);
            free(enc.text);
            continue;
        }
        CHECK_EQ(back.v, EVENT_V_FLAT);
        memset(&again, 0, sizeof again);
        CHECK_EQ(event_encode(&back, &again, err, sizeof err), 0);
        CHECK_EQ(again.n, enc.n);
        for (size_t k = 0; k < enc.n && k < again.n; k++) { /* the same fields, in the same order, the same text */
            CHECK_EQ(again.f[k].name_len, enc.f[k].name_len);
            CHECK(memcmp(again.f[k].name, enc.f[k].name, enc.f[k].name_len) == 0);
            if (again.f[k].val_len != enc.f[k].val_len || memcmp(again.f[k].val, enc.f[k].val, enc.f[k].val_len))
                CHECK_FAIL_AT("%s.%.*s: '%.*s' became '%.*s'", samples[i].type, (int)enc.f[k].name_len, enc.f[k].name,
                              (int)enc.f[k].val_len, enc.f[k].val, (int)again.f[k].val_len, again.f[k].val);
        }
        char *want = event_data_json(&back);
        size_t n = fields_of(&back, want, f);
        CHECK_EQ(event_decode(&old, f, n, err, sizeof err), 0);
        char *got = event_data_json(&old);
        CHECK_STR(got, want);
        json_t *shown = event_payload_json(enc.f, enc.n);
        char *s = json_dumps(shown, JSON_COMPACT | JSON_REAL_PRECISION(15));
        CHECK_STR(s, want); /* what qtctl tail shows */
        free(s), json_decref(shown), free(got), free(want);
        event_clear(&old), event_clear(&back), event_enc_free(&again), free(enc.text);
    }
}

/* A v1 entry may hold an integer in a number field (JSON does not tell
 * 100 from 100.0); it is read as a double, so v2 writes it as that double
 * and the text stays the same however often it is read and written again
 * (make fuzz found it written as the integer 900719925474099300, then as
 * 9.0071992547409933e+17). */
TEST(v2_writes_an_integer_in_a_number_field_as_the_double_it_reads_back_as)
{
    char err[256];
    event_t ev, back, again;
    event_field_t f[8];
    event_enc_t e1, e2;
    memset(&e1, 0, sizeof e1), memset(&e2, 0, sizeof e2);
    CHECK_EQ(event_make(&ev, "trade.intent", sample_json(&samples[6]), NULL, NULL, err, sizeof err), 0);
    size_t n = fields_of(&ev, "{\"symbol\":\"BTCUSDT\",\"side\":\"BUY\",\"action\":\"LONG_SMALL\",\"size_pct\":0.02,"
                              "\"leverage\":3,\"confidence\":0.7,\"mode\":\"PRIMARY\",\"source_tag\":\"RL_V3_PRIMARY\","
                              "\"ref_price\":900719925474099300,\"reduce_only\":false,\"event_time\":9}", f);
    CHECK_EQ(event_decode(&back, f, n, err, sizeof err), 0);
    CHECK_EQ(event_encode(&back, &e1, err, sizeof err), 0);
    CHECK_EQ(event_decode(&again, e1.f, e1.n, err, sizeof err), 0);
    CHECK_EQ(event_encode(&again, &e2, err, sizeof err), 0);
    const event_field_t *a = NULL, *b = NULL;
    for (size_t i = 0; i < e1.n; i++)
        if (e1.f[i].name_len == 9 && !memcmp(e1.f[i].name, "ref_price", 9)) a = &e1.f[i];
    for (size_t i = 0; i < e2.n; i++)
        if (e2.f[i].name_len == 9 && !memcmp(e2.f[i].name, "ref_price", 9)) b = &e2.f[i];
    CHECK(a && b);
    if (a && b) {
        CHECK_EQ(a->val_len, b->val_len);
        CHECK(memcmp(a->val, b->val, a->val_len) == 0);
        CHECK(strtod(a->val, NULL) == 900719925474099300.0);
    }
    event_enc_free(&e1), event_enc_free(&e2);
    event_clear(&again), event_clear(&back), event_clear(&ev);
}

/* Scalars are bare text: a bar reads in redis-cli as `close 100.7`. */
TEST(v2_writes_scalars_bare_and_nested_as_compact_json)
{
    event_enc_t enc;
    v2_of("market.data.update", &enc);
    CHECK_STR(v2_field(&enc, "symbol")->val, "BTCUSDT");
    CHECK_STR(v2_field(&enc, "close")->val, "100.7");
    CHECK_STR(v2_field(&enc, "high")->val, "101");
    CHECK_STR(v2_field(&enc, "open_time")->val, "1700000000000");
    CHECK_STR(v2_field(&enc, "closed")->val, "true");
    free(enc.text);
    v2_of("rl.signal.generated", &enc);
    CHECK_STR(v2_field(&enc, "probs")->val, "[0.1,0.5,0.1,0.1,0.1,0.1]");
    CHECK_STR(v2_field(&enc, "value")->val, "-0.2");
    free(enc.text);
    v2_of("policy.config.updated", &enc);
    CHECK_STR(v2_field(&enc, "value")->val, "\"PRIMARY\""); /* a field of several types is JSON */
    free(enc.text);
    /* a computed number is written exactly */
    char err[256];
    event_t ev, back;
    CHECK_EQ(event_make(&ev, "ml.threshold.adjusted",
                        json_pack("{s:f,s:b,s:s,s:i}", "min_confidence", 0.1 + 0.2, "conservative", 0, "reason", "x",
                                  "event_time", 5),
                        NULL, NULL, err, sizeof err), 0);
    memset(&enc, 0, sizeof enc);
    CHECK_EQ(event_encode(&ev, &enc, err, sizeof err), 0);
    CHECK_STR(v2_field(&enc, "min_confidence")->val, "0.30000000000000004");
    CHECK_EQ(event_decode(&back, enc.f, enc.n, err, sizeof err), 0);
    CHECK(json_real_value(json_object_get(back.data, "min_confidence")) == 0.1 + 0.2);
    event_clear(&back), event_clear(&ev), event_enc_free(&enc);
}

/* Every rule of the schemas holds on flat entries, each refusal naming the field. */
TEST(v2_refusals_name_the_field)
{
    v2_bad("market.data.update", "close", "1e", "data.close: '1e' is not a number");
    v2_bad("market.data.update", "close", "NaN", "data.close: 'NaN' is not a number");
    v2_bad("market.data.update", "close", "Infinity", "is not a number");
    v2_bad("market.data.update", "close", "1e999", "is not a number");
    v2_bad("market.data.update", "close", "0x10", "is not a number");
    v2_bad("market.data.update", "close", " 100", "is not a number");
    v2_bad("market.data.update", "close", "", "is not a number");
    v2_bad("market.data.update", "close", "0", "must be greater than 0");
    v2_bad("market.data.update", "high", "99", "bar is inconsistent");
    v2_bad("market.data.update", "open_time", "1.5", "data.open_time: '1.5' is not an integer");
    v2_bad("market.data.update", "open_time", "01", "is not an integer");
    v2_bad("market.data.update", "open_time", "99999999999999999999", "is not an integer");
    v2_bad("market.data.update", "closed", "yes", "data.closed: 'yes' is not true or false");
    v2_bad("market.data.update", "symbol", "btc/usdt", "is not a symbol");
    v2_bad("market.data.update", "symbol", "BTC\xff", "data.symbol: 'BTC\xff' is not UTF-8 text");
    v2_bad("market.data.update", "interval", "7m", "not one of the allowed values");
    v2_bad("market.data.update", "surprise", "1", "data.surprise: not a field of market.data.update");
    v2_bad("market.data.update", "data", "{}", "data.data: not a field of market.data.update");
    v2_bad("market.data.update", "close", NULL, "missing required field 'close'");
    v2_bad("rl.signal.generated", "probs", "[0.5,0.5,0.5,0.5,0.5,0.5]", "must sum to 1");
    v2_bad("rl.signal.generated", "probs", "[0.5,", "data.probs: not JSON");
    v2_bad("rl.signal.generated", "probs", "{\"a\":1}", "data.probs");
    v2_bad("signal.generated", "model_votes", "{\"m\":{\"action\":\"LONG\",\"confidence\":2}}",
           "data.model_votes.m.confidence");
    v2_bad("signal.generated", "weights", "{\"a\":1,\"a\":2}", "duplicate");
    v2_bad("signal.generated", "confidence", "1.5", "data.confidence: 1.5 is above the maximum 1");
    v2_bad("trade.intent", "leverage", "200", "above the maximum 125");
    v2_bad("trade.intent", "reduce_only", "\"false\"", "is not true or false");
    v2_bad("policy.config.updated", "value", "PRIMARY", "data.value: not JSON");
    /* a payload field twice, and a version nobody wrote */
    char err[256];
    event_enc_t enc;
    event_t back;
    v2_of("model.vote", &enc);
    enc.f[enc.n] = *v2_field(&enc, "model"), enc.n++;
    CHECK_EQ(event_decode(&back, enc.f, enc.n, err, sizeof err), -1);
    CHECK_CONTAINS(err, "field 'model' appears twice");
    enc.n--;
    ((event_field_t *)v2_field(&enc, "v"))->val = "3";
    CHECK_EQ(event_decode(&back, enc.f, enc.n, err, sizeof err), -1);
    CHECK_CONTAINS(err, "version 3 is not supported");
    free(enc.text);
}

TEST(envelope_round_trip)
{
    char err[256];
    event_t ev, back;
    event_field_t f[8];
    event_set_source("unit-test");
    CHECK_EQ(event_make(&ev, "model.vote", sample_json(&samples[3]), NULL, NULL, err, sizeof err), 0);
    CHECK_EQ(strlen(ev.id), 26);
    CHECK_STR(ev.trace, ev.id);
    CHECK_EQ(ev.v, EVENT_V_FLAT);
    CHECK(strncmp(ev.source, "unit-test/", 10) == 0);
    char *data = event_data_json(&ev);
    size_t n = fields_of(&ev, data, f);
    CHECK_EQ(event_decode(&back, f, n, err, sizeof err), 0);
    CHECK_STR(back.id, ev.id);
    CHECK_STR(back.type, "model.vote");
    CHECK_EQ(back.ts, ev.ts);
    CHECK_STR(back.trace, ev.trace);
    CHECK(json_equal(back.data, ev.data));
    free(data);
    event_clear(&back);
    event_clear(&ev);
}

TEST(envelope_rejections)
{
    char err[256];
    event_t ev, back;
    event_field_t f[8];
    CHECK_EQ(event_make(&ev, "model.vote", sample_json(&samples[3]), "trace-1", NULL, err, sizeof err), 0);
    size_t n = fields_of(&ev, "{\"symbol\":", f);
    CHECK_EQ(event_decode(&back, f, n, err, sizeof err), -1);
    CHECK_CONTAINS(err, "data: not JSON");
    fields_of(&ev, "[1,2]", f);
    CHECK_EQ(event_decode(&back, f, n, err, sizeof err), -1);
    CHECK_CONTAINS(err, "data: must be a JSON object");
    fields_of(&ev, "{}", f);
    CHECK_EQ(event_decode(&back, f, n - 1, err, sizeof err), -1); /* no data field */
    CHECK_CONTAINS(err, "missing field 'data'");
    f[2].val = "x"; f[2].val_len = 1;
    CHECK_EQ(event_decode(&back, f, n, err, sizeof err), -1);
    CHECK_CONTAINS(err, "v: must be an integer");
    fields_of(&ev, "{}", f);
    f[0].val = "bad id!"; f[0].val_len = 7;
    CHECK_EQ(event_decode(&back, f, n, err, sizeof err), -1);
    CHECK_CONTAINS(err, "id: must be");
    fields_of(&ev, "{}", f);
    f[1].val = "x.unknown"; f[1].val_len = 9;
    CHECK_EQ(event_decode(&back, f, n, err, sizeof err), -1);
    CHECK_CONTAINS(err, "unknown event type 'x.unknown'");
    fields_of(&ev, "{}", f);
    f[7] = f[0]; /* id twice */
    CHECK_EQ(event_decode(&back, f, 8, err, sizeof err), -1);
    CHECK_CONTAINS(err, "appears twice");
    char *big = malloc(EVENT_DATA_MAX + 100);
    memset(big, ' ', EVENT_DATA_MAX + 99);
    big[0] = '{'; big[EVENT_DATA_MAX + 98] = '}'; big[EVENT_DATA_MAX + 99] = '\0';
    fields_of(&ev, big, f);
    CHECK_EQ(event_decode(&back, f, n, err, sizeof err), -1);
    CHECK_CONTAINS(err, "over the limit");
    free(big);
    fields_of(&ev, "{\"symbol\":\"BTCUSDT\",\"symbol\":\"X\"}", f);
    CHECK_EQ(event_decode(&back, f, n, err, sizeof err), -1);
    CHECK_CONTAINS(err, "duplicate");
    event_clear(&ev);
}

TEST(make_refuses_invalid_data)
{
    char err[256];
    event_t ev;
    CHECK_EQ(event_make(&ev, "model.vote", json_pack("{s:s}", "symbol", "BTCUSDT"), NULL, NULL, err, sizeof err), -1);
    CHECK_CONTAINS(err, "missing required field");
    CHECK(ev.data == NULL);
    CHECK_EQ(event_make(&ev, "nope", json_object(), NULL, NULL, err, sizeof err), -1);
    CHECK_EQ(event_make(&ev, "model.vote", sample_json(&samples[3]), NULL, "has space", err, sizeof err), -1);
    CHECK_CONTAINS(err, "id: not a valid event id");
}

/* A bar dated after it was written, or written after now, breaks the
 * contract (by more than the skew); history replayed years later does not. */
TEST(event_times_may_not_lead_their_clocks)
{
    char err[300], data[512];
    event_t ev, back;
    event_field_t f[8];
    int64_t now = clock_wall_ms(), day = 86400000;
    json_t *d = json_pack("{s:I}", "open_time", (json_int_t)(now - 3 * 365 * day));
    CHECK_EQ(event_check_times(d, now, now, err, sizeof err), 0);
    json_decref(d);
    d = json_pack("{s:I,s:I}", "open_time", (json_int_t)(now + EVENT_CLOCK_SKEW_MS + 1), "event_time",
                          (json_int_t)now);
    CHECK_EQ(event_check_times(d, now, now, err, sizeof err), -1);
    CHECK_CONTAINS(err, "data.open_time: ");
    CHECK_CONTAINS(err, "ms after the entry was written");
    CHECK_CONTAINS(err, "QT_MAX_CLOCK_SKEW_MS=60000");
    json_decref(d);
    d = json_pack("{s:I}", "event_time", (json_int_t)now);
    CHECK_EQ(event_check_times(d, now + EVENT_CLOCK_SKEW_MS + 1, now, err, sizeof err), -1);
    CHECK_CONTAINS(err, "ts: ");
    CHECK_CONTAINS(err, "ahead of this process's clock");
    CHECK_EQ(event_check_times(d, now + EVENT_CLOCK_SKEW_MS, now, err, sizeof err), 0); /* the bound itself is in */
    json_decref(d);
    /* event_make refuses a future bar (the feed skips it as a bad row) */
    snprintf(data, sizeof data,
             "{\"symbol\":\"BTCUSDT\",\"interval\":\"1m\",\"open_time\":%lld,\"open\":1,\"high\":1,\"low\":1,"
             "\"close\":1,\"volume\":1,\"closed\":true,\"event_time\":%lld}",
             (long long)(now + 365 * day), (long long)(now + 365 * day + 59999));
    CHECK_EQ(event_make(&ev, "market.data.update", json_loads(data, 0, NULL), NULL, NULL, err, sizeof err), -1);
    CHECK_CONTAINS(err, "data.open_time");
    /* event_decode refuses the same bar written now, and accepts 2023's bar */
    CHECK_EQ(event_make(&ev, "market.data.update", sample_json(&samples[0]), NULL, NULL, err, sizeof err), 0);
    size_t n = fields_of(&ev, data, f);
    CHECK_EQ(event_decode(&back, f, n, err, sizeof err), -1);
    CHECK_CONTAINS(err, "data.open_time");
    char *old = event_data_json(&ev);
    fields_of(&ev, old, f);
    CHECK_EQ(event_decode(&back, f, n, err, sizeof err), 0);
    event_clear(&back);
    ev.ts = now + 3600000; /* a writer's clock an hour ahead */
    fields_of(&ev, old, f);
    CHECK_EQ(event_decode(&back, f, n, err, sizeof err), -1);
    CHECK_CONTAINS(err, "ts: ");
    event_set_clock_skew_ms(2 * 3600000); /* QT_MAX_CLOCK_SKEW_MS allows it */
    CHECK_EQ(event_decode(&back, f, n, err, sizeof err), 0);
    event_clear(&back);
    event_set_clock_skew_ms(EVENT_CLOCK_SKEW_MS);
    free(old);
    event_clear(&ev);
}

TEST(ids_unique_and_derived_stable)
{
    char a[27], b[27], x[37], y[37], z[37];
    event_new_id(a);
    event_new_id(b);
    CHECK(strcmp(a, b) != 0);
    event_derive_id("echo:1", x);
    event_derive_id("echo:1", y);
    event_derive_id("echo:2", z);
    CHECK_STR(x, y);
    CHECK(strcmp(x, z) != 0);
    CHECK_EQ(strlen(x), 36);
    CHECK_EQ(x[14], '8'); /* version nibble */
    /* 10000 ids, no duplicates */
    static char ids[10000][27];
    int dup = 0;
    for (int i = 0; i < 10000; i++) event_new_id(ids[i]);
    for (int i = 1; i < 10000 && !dup; i++)
        for (int j = 0; j < i && !dup; j++) dup = strcmp(ids[i], ids[j]) == 0;
    CHECK(!dup);
}

CHECK_MAIN()
