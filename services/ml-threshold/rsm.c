/* rsm.c — Reinforcement Signal Manager (see rsm.h). */
#include "rsm.h"
#include "actions.h"
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void rsm_config_default(rsm_config_t *c)
{
    c->lr = 0.05, c->discount = 0.95, c->eps_initial = 0.20, c->eps_min = 0.05, c->decay_trades = 100;
    c->alpha = 0.6, c->beta = 0.3, c->gamma = 0.1, c->kappa = 0.5, c->w_min = 0.05, c->w_max = 0.50;
}

int rsm_config_env(rsm_config_t *c, char *err, size_t errlen)
{
    return config_get_double("RL_LEARNING_RATE", c->lr, 0, 1, &c->lr, err, errlen) < 0 ||
                   config_get_double("RL_DISCOUNT_FACTOR", c->discount, 0, 1, &c->discount, err, errlen) < 0 ||
                   config_get_double("RL_INITIAL_EXPLORATION_RATE", c->eps_initial, 0, 1, &c->eps_initial, err, errlen) < 0 ||
                   config_get_double("RL_MIN_EXPLORATION_RATE", c->eps_min, 0, 1, &c->eps_min, err, errlen) < 0 ||
                   config_get_long("RL_EXPLORATION_DECAY_TRADES", c->decay_trades, 1, 1000000, &c->decay_trades, err, errlen) < 0 ||
                   config_get_double("RL_REWARD_ALPHA", c->alpha, 0, 10, &c->alpha, err, errlen) < 0 ||
                   config_get_double("RL_REWARD_BETA", c->beta, 0, 10, &c->beta, err, errlen) < 0 ||
                   config_get_double("RL_REWARD_GAMMA", c->gamma, 0, 10, &c->gamma, err, errlen) < 0 ||
                   config_get_double("RL_CALIBRATION_KAPPA", c->kappa, 0, 2, &c->kappa, err, errlen) < 0 ||
                   config_get_double("RL_MIN_MODEL_WEIGHT", c->w_min, 0, 1, &c->w_min, err, errlen) < 0 ||
                   config_get_double("RL_MAX_MODEL_WEIGHT", c->w_max, 0, 1, &c->w_max, err, errlen) < 0
               ? -1
           : c->w_min >= c->w_max
               ? (snprintf(err, errlen, "RL_MIN_MODEL_WEIGHT (%g) must be below RL_MAX_MODEL_WEIGHT (%g)", c->w_min, c->w_max), -1)
               : 0;
}

int rsm_init(rsm_t *r, const rsm_config_t *c, const char *const *names, const double *weights, int n)
{
    if (n < 1 || n > RSM_MAX_MODELS || c->w_min * n > 1 || c->w_max * n < 1) return -1;
    memset(r, 0, sizeof *r);
    r->cfg = *c;
    r->nmodels = n;
    for (int i = 0; i < n; i++) {
        snprintf(r->models[i].name, sizeof r->models[i].name, "%s", names[i]);
        r->models[i].weight = r->models[i].initial = weights ? weights[i] : 1.0 / n;
    }
    return 0;
}

double rsm_exploration(const rsm_t *r)
{
    const rsm_config_t *c = &r->cfg;
    double e = c->eps_initial - (c->eps_initial - c->eps_min) * (double)r->trades / (double)c->decay_trades;
    return e < c->eps_min ? c->eps_min : e;
}

double rsm_brier(const rsm_model_t *m)
{
    double s = 0;
    for (int i = 0; i < m->nbrier; i++) s += m->brier[i];
    return m->nbrier ? s / m->nbrier : 0.25;
}

double rsm_scaler(const rsm_t *r, const rsm_model_t *m)
{
    double s = 1 + r->cfg.kappa * (0.25 - rsm_brier(m)) / 0.25;
    return s < 0.5 ? 0.5 : s > 1.5 ? 1.5 : s;
}

/* α·tanh(pnl) + β·tanh(Sharpe of recent pnl) + γ·tanh(pnl / their stdev). */
static double rsm_shape(rsm_t *r, double pnl)
{
    double mean = 0, var = 0;
    r->pnl[r->ipnl] = pnl;
    r->ipnl = (r->ipnl + 1) % RSM_WINDOW;
    if (r->npnl < RSM_WINDOW) r->npnl++;
    for (int i = 0; i < r->npnl; i++) mean += r->pnl[i];
    mean /= r->npnl;
    for (int i = 0; i < r->npnl; i++) var += (r->pnl[i] - mean) * (r->pnl[i] - mean);
    double sd = r->npnl > 1 ? sqrt(var / (r->npnl - 1)) : 0;
    double sharpe = sd > 0 ? mean / sd : 0, risk_adj = sd > 0 ? pnl / sd : 0;
    return r->cfg.alpha * tanh(pnl) + r->cfg.beta * tanh(sharpe) + r->cfg.gamma * tanh(risk_adj);
}

/* Clamp to [min, max] and renormalise until both hold (a few rounds suffice). */
static void rsm_normalise(rsm_t *r)
{
    for (int round = 0; round < 50; round++) {
        double sum = 0;
        int changed = 0;
        for (int i = 0; i < r->nmodels; i++) sum += r->models[i].weight;
        for (int i = 0; i < r->nmodels; i++) {
            double w = r->models[i].weight / sum;
            if (w < r->cfg.w_min) w = r->cfg.w_min, changed = 1;
            if (w > r->cfg.w_max) w = r->cfg.w_max, changed = 1;
            r->models[i].weight = w;
        }
        if (!changed) return;
    }
}

static rsm_model_t *rsm_find(rsm_t *r, const char *name, int *index)
{
    for (int i = 0; name && i < r->nmodels; i++)
        if (strcmp(r->models[i].name, name) == 0) return *index = i, &r->models[i];
    return NULL;
}

void rsm_update(rsm_t *r, int direction, double pnl_pct, const rsm_vote_t *votes, int nvotes, rsm_outcome_t *out)
{
    rsm_outcome_t o;
    memset(&o, 0, sizeof o);
    o.shaped = rsm_shape(r, pnl_pct);
    o.advantage = o.shaped - r->baseline;
    r->baseline = r->cfg.discount * r->baseline + (1 - r->cfg.discount) * o.shaped;
    r->shaped[(r->ipnl + RSM_WINDOW - 1) % RSM_WINDOW] = o.shaped;
    int won = pnl_pct > 0;
    for (int v = 0; v < nvotes; v++) {
        int i;
        rsm_model_t *m = rsm_find(r, votes[v].model, &i);
        if (!m || !votes[v].action || strcmp(votes[v].action, "HOLD") == 0) continue;
        int dir = strcmp(votes[v].action, PROTO_ENS_LONG) == 0 ? 1 : -1;
        int right = (dir == direction) == won;
        double conf = votes[v].confidence;
        o.contribution[i] = right ? conf : -conf;
        m->weight *= exp(r->cfg.lr * fabs(o.advantage) * o.contribution[i]);
        double err = conf - (right ? 1.0 : 0.0);
        m->brier[m->ibrier] = err * err;
        m->ibrier = (m->ibrier + 1) % RSM_CALIB;
        if (m->nbrier < RSM_CALIB) m->nbrier++;
    }
    rsm_normalise(r);
    r->trades++, r->updates++;
    if (out) *out = o;
}

int rsm_health(const rsm_t *r, json_t **issues)
{
    double mean = 0, var = 0, brier = 0, shaped = 0;
    int health = 100;
    char msg[128];
    *issues = json_array();
    for (int i = 0; i < r->nmodels; i++) mean += r->models[i].weight, brier += rsm_brier(&r->models[i]);
    mean /= r->nmodels, brier /= r->nmodels;
    for (int i = 0; i < r->nmodels; i++) var += (r->models[i].weight - mean) * (r->models[i].weight - mean);
    var /= r->nmodels;
    for (int i = 0; i < r->npnl; i++) shaped += r->shaped[i];
    shaped = r->npnl ? shaped / r->npnl : 0;
    if (var > 0.05) health = health < 60 ? health : 60, snprintf(msg, sizeof msg, "Weight instability (variance=%.4f)", var), json_array_append_new(*issues, json_string(msg));
    if (brier > 0.30) health = health < 70 ? health : 70, snprintf(msg, sizeof msg, "Poor calibration (avg Brier=%.3f)", brier), json_array_append_new(*issues, json_string(msg));
    if (shaped < -0.5) health = health < 50 ? health : 50, snprintf(msg, sizeof msg, "Poor recent performance (avg shaped reward=%.3f)", shaped), json_array_append_new(*issues, json_string(msg));
    if (rsm_exploration(r) > 0.15) snprintf(msg, sizeof msg, "High exploration rate (e=%.2f%%)", rsm_exploration(r) * 100), json_array_append_new(*issues, json_string(msg));
    return health;
}

void rsm_reset_weights(rsm_t *r)
{
    for (int i = 0; i < r->nmodels; i++) r->models[i].weight = r->models[i].initial;
}

void rsm_reset_calibration(rsm_t *r)
{
    for (int i = 0; i < r->nmodels; i++) r->models[i].nbrier = r->models[i].ibrier = 0;
}

/* The last n of a ring whose next write goes to head, oldest first. */
static json_t *rsm_ring_json(const double *ring, int n, int head, int size)
{
    json_t *a = json_array();
    for (int k = 0; k < n; k++) json_array_append_new(a, json_real(ring[(head - n + k + size) % size]));
    return a;
}

/* A JSON array of at most size numbers into ring; *n and *head set. */
static int rsm_ring_load(const json_t *a, double *ring, int size, int *n, int *head)
{
    size_t k;
    json_t *v;
    if (!json_is_array(a) || json_array_size(a) > (size_t)size) return -1;
    json_array_foreach(a, k, v)
    {
        if (!json_is_number(v) || !isfinite(json_number_value(v))) return -1;
        ring[k] = json_number_value(v);
    }
    *n = (int)json_array_size(a), *head = *n % size;
    return 0;
}

json_t *rsm_to_json(const rsm_t *r)
{
    json_t *models = json_array();
    for (int i = 0; i < r->nmodels; i++) {
        const rsm_model_t *m = &r->models[i];
        json_array_append_new(models, json_pack("{s:s, s:f, s:o}", "name", m->name, "weight", m->weight, "brier",
                                                rsm_ring_json(m->brier, m->nbrier, m->ibrier, RSM_CALIB)));
    }
    return json_pack("{s:o, s:f, s:o, s:o, s:I, s:I}", "models", models, "baseline", r->baseline, "pnl",
                     rsm_ring_json(r->pnl, r->npnl, r->ipnl, RSM_WINDOW), "shaped",
                     rsm_ring_json(r->shaped, r->npnl, r->ipnl, RSM_WINDOW), "trades", (json_int_t)r->trades, "updates",
                     (json_int_t)r->updates);
}

int rsm_from_json(rsm_t *r, const json_t *j)
{
    rsm_t n = *r;
    json_t *models = json_object_get(j, "models"), *m;
    size_t k;
    int ns, hs;
    if (!json_is_array(models) || !json_is_number(json_object_get(j, "baseline")) ||
        rsm_ring_load(json_object_get(j, "pnl"), n.pnl, RSM_WINDOW, &n.npnl, &n.ipnl) < 0 ||
        rsm_ring_load(json_object_get(j, "shaped"), n.shaped, RSM_WINDOW, &ns, &hs) < 0 || ns != n.npnl)
        return -1;
    json_array_foreach(models, k, m)
    {
        int i;
        rsm_model_t *mm = rsm_find(&n, json_string_value(json_object_get(m, "name")), &i);
        double w = json_number_value(json_object_get(m, "weight"));
        if (!mm) continue;
        if (!(w > 0) || w > 1 || rsm_ring_load(json_object_get(m, "brier"), mm->brier, RSM_CALIB, &mm->nbrier, &mm->ibrier) < 0)
            return -1;
        mm->weight = w;
    }
    n.baseline = json_number_value(json_object_get(j, "baseline"));
    n.trades = (long)json_integer_value(json_object_get(j, "trades"));
    n.updates = (long)json_integer_value(json_object_get(j, "updates"));
    rsm_normalise(&n);
    *r = n;
    return 0;
}
