/* ppo.c — proximal policy optimisation for the MLP (see ppo.h). */
#include "ppo.h"
#include "prng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ppo_cfg_default(ppo_cfg_t *c)
{
    c->steps = 2048, c->epochs = 4, c->minibatch = 256, c->episode_len = 512, c->iters = 50;
    c->gamma = 0.99, c->lambda = 0.95, c->clip = 0.2, c->ent_coef = 0.01, c->vf_coef = 0.5, c->lr = 3e-4;
    c->max_grad_norm = 0.5, c->seed = 1;
}

static double urand(uint64_t *s) { return prng_uniform(s); }

typedef struct rollout {
    float (*obs)[MODEL_IN];
    int *act;
    float *logp, *val, *rew, *adv, *ret;
    unsigned char *done;
} rollout_t;

/* The loss of one sample (what ppo_backward differentiates). */
double ppo_loss(const model_t *m, const float *obs, int a, float logp_old, float adv, float ret, const ppo_cfg_t *c)
{
    model_out_t o;
    model_forward(m, obs, &o);
    double logp = log(fmax(o.probs[a], 1e-12)), ratio = exp(logp - logp_old), h = 0;
    for (int j = 0; j < MODEL_ACTIONS; j++) h -= o.probs[j] * log(fmax(o.probs[j], 1e-12));
    double pg = -fmin(ratio * adv, fmax(fmin(ratio, 1 + c->clip), 1 - c->clip) * adv);
    return pg - c->ent_coef * h + c->vf_coef * (o.value - ret) * (o.value - ret);
}

/* Gradient of the loss for one sample, accumulated into g (a model_t as floats). */
void ppo_backward(const model_t *m, model_t *g, const float *obs, int a, float logp_old, float adv, float ret,
                         const ppo_cfg_t *c, double *pg_loss, double *v_loss, double *entropy)
{
    model_out_t o;
    float gz[MODEL_ACTIONS], gh2[MODEL_H2] = {0}, ga2[MODEL_H2], gh1[MODEL_H1] = {0}, ga1[MODEL_H1];
    model_forward(m, obs, &o);
    double logp = log(fmax(o.probs[a], 1e-12)), ratio = exp(logp - logp_old), h = 0;
    for (int j = 0; j < MODEL_ACTIONS; j++) h -= o.probs[j] * log(fmax(o.probs[j], 1e-12));
    int clipped = (adv >= 0 && ratio > 1 + c->clip) || (adv < 0 && ratio < 1 - c->clip);
    double dl_dlogp = clipped ? 0 : -adv * ratio;
    *pg_loss += -fmin(ratio * adv, fmax(fmin(ratio, 1 + c->clip), 1 - c->clip) * adv);
    *entropy += h;
    double dv = c->vf_coef * 2 * (o.value - ret);
    *v_loss += (o.value - ret) * (o.value - ret);
    for (int j = 0; j < MODEL_ACTIONS; j++)
        gz[j] = (float)(dl_dlogp * ((j == a) - o.probs[j]) + c->ent_coef * o.probs[j] * (log(fmax(o.probs[j], 1e-12)) + h));
    for (int j = 0; j < MODEL_ACTIONS; j++) {
        g->bpi[j] += gz[j];
        for (int k = 0; k < MODEL_H2; k++) g->wpi[j][k] += gz[j] * o.h2[k], gh2[k] += m->wpi[j][k] * gz[j];
    }
    g->bv += (float)dv;
    for (int k = 0; k < MODEL_H2; k++) g->wv[k] += (float)dv * o.h2[k], gh2[k] += m->wv[k] * (float)dv;
    for (int i = 0; i < MODEL_H2; i++) ga2[i] = gh2[i] * (1 - o.h2[i] * o.h2[i]);
    for (int i = 0; i < MODEL_H2; i++) {
        g->b2[i] += ga2[i];
        for (int k = 0; k < MODEL_H1; k++) g->w2[i][k] += ga2[i] * o.h1[k], gh1[k] += m->w2[i][k] * ga2[i];
    }
    for (int i = 0; i < MODEL_H1; i++) ga1[i] = gh1[i] * (1 - o.h1[i] * o.h1[i]);
    for (int i = 0; i < MODEL_H1; i++) {
        g->b1[i] += ga1[i];
        for (int k = 0; k < MODEL_IN; k++) g->w1[i][k] += ga1[i] * obs[k];
    }
}

/* Adam over every parameter after scaling g to the mean and clipping its norm. */
static void ppo_adam(model_t *m, model_t *g, float *am, float *av, long t, int n, const ppo_cfg_t *c)
{
    float *p = model_params(m), *gp = model_params(g);
    double norm = 0;
    for (long i = 0; i < MODEL_NPARAMS; i++) gp[i] /= (float)n, norm += (double)gp[i] * gp[i];
    norm = sqrt(norm);
    double scale = norm > c->max_grad_norm ? c->max_grad_norm / norm : 1;
    double b1t = 1 - pow(0.9, (double)t), b2t = 1 - pow(0.999, (double)t);
    for (long i = 0; i < MODEL_NPARAMS; i++) {
        double gi = gp[i] * scale;
        am[i] = (float)(0.9 * am[i] + 0.1 * gi);
        av[i] = (float)(0.999 * av[i] + 0.001 * gi * gi);
        p[i] -= (float)(c->lr * (am[i] / b1t) / (sqrt(av[i] / b2t) + 1e-8));
    }
}

/* Sample an action from probs. */
static int ppo_sample(const float *probs, uint64_t *rng)
{
    double u = urand(rng), acc = 0;
    for (int j = 0; j < MODEL_ACTIONS; j++)
        if ((acc += probs[j]) >= u) return j;
    return MODEL_ACTIONS - 1;
}

/* Collect c->steps transitions; returns the mean return of finished episodes. */
static double ppo_collect(const model_t *m, env_t *e, rollout_t *r, const ppo_cfg_t *c, uint64_t *rng,
                          float *last_val, int *episodes)
{
    static double ep_ret;
    double sum = 0;
    int done = 0;
    *episodes = 0;
    for (int s = 0; s < c->steps; s++) {
        model_out_t o;
        env_observe(e, r->obs[s]);
        model_forward(m, r->obs[s], &o);
        int a = ppo_sample(o.probs, rng);
        r->act[s] = a, r->logp[s] = logf(fmaxf(o.probs[a], 1e-12f)), r->val[s] = o.value;
        r->rew[s] = (float)env_step(e, a, &done);
        r->done[s] = (unsigned char)done;
        ep_ret += r->rew[s];
        if (done) {
            sum += ep_ret, ep_ret = 0, (*episodes)++;
            long span = e->n - c->episode_len - ENV_WARMUP - 2;
            env_reset(e, ENV_WARMUP + (span > 0 ? (long)(urand(rng) * span) : 0), c->episode_len);
        }
    }
    model_out_t o;
    float obs[MODEL_IN];
    env_observe(e, obs);
    model_forward(m, obs, &o);
    *last_val = o.value;
    return *episodes ? sum / *episodes : NAN;
}

/* GAE(lambda) advantages and returns. */
static void ppo_gae(rollout_t *r, const ppo_cfg_t *c, float last_val)
{
    double g = 0;
    for (int s = c->steps - 1; s >= 0; s--) {
        double next = s == c->steps - 1 ? last_val : r->val[s + 1], nonterm = 1 - r->done[s];
        double delta = r->rew[s] + c->gamma * next * nonterm - r->val[s];
        g = delta + c->gamma * c->lambda * nonterm * g;
        r->adv[s] = (float)g, r->ret[s] = (float)(g + r->val[s]);
    }
}

int ppo_train(model_t *m, env_t *e, const ppo_cfg_t *c, void *out_file)
{
    FILE *out = out_file;
    rollout_t r;
    uint64_t rng = c->seed;
    int *idx = malloc(sizeof(int) * (size_t)c->steps);
    float *am = calloc(MODEL_NPARAMS, sizeof(float)), *av = calloc(MODEL_NPARAMS, sizeof(float));
    model_t *g = malloc(sizeof *g);
    r.obs = malloc(sizeof *r.obs * (size_t)c->steps);
    r.act = malloc(sizeof(int) * (size_t)c->steps);
    r.logp = malloc(sizeof(float) * (size_t)c->steps), r.val = malloc(sizeof(float) * (size_t)c->steps);
    r.rew = malloc(sizeof(float) * (size_t)c->steps), r.adv = malloc(sizeof(float) * (size_t)c->steps);
    r.ret = malloc(sizeof(float) * (size_t)c->steps), r.done = malloc((size_t)c->steps);
    long t = 0;
    env_reset(e, ENV_WARMUP, c->episode_len);
    for (int it = 1; it <= c->iters && idx && am && av && g && r.obs && r.done; it++) {
        float last_val;
        int episodes;
        double mean_ret = ppo_collect(m, e, &r, c, &rng, &last_val, &episodes), pg = 0, vl = 0, ent = 0;
        ppo_gae(&r, c, last_val);
        for (int ep = 0; ep < c->epochs; ep++) {
            for (int i = 0; i < c->steps; i++) idx[i] = i;
            for (int i = c->steps - 1; i > 0; i--) { /* seeded shuffle */
                int j = (int)(urand(&rng) * (i + 1)), tmp = idx[i];
                idx[i] = idx[j], idx[j] = tmp;
            }
            for (int b = 0; b + c->minibatch <= c->steps; b += c->minibatch) {
                double mean = 0, var = 0;
                for (int k = 0; k < c->minibatch; k++) mean += r.adv[idx[b + k]];
                mean /= c->minibatch;
                for (int k = 0; k < c->minibatch; k++) var += (r.adv[idx[b + k]] - mean) * (r.adv[idx[b + k]] - mean);
                double sd = sqrt(var / c->minibatch) + 1e-8;
                memset(g, 0, sizeof *g);
                for (int k = 0; k < c->minibatch; k++) {
                    int s = idx[b + k];
                    ppo_backward(m, g, r.obs[s], r.act[s], r.logp[s], (float)((r.adv[s] - mean) / sd), r.ret[s], c, &pg, &vl, &ent);
                }
                ppo_adam(m, g, am, av, ++t, c->minibatch, c);
            }
        }
        double n = (double)c->epochs * (c->steps / c->minibatch) * c->minibatch;
        fprintf(out, "iter %d/%d  steps %ld  episodes %d  mean_episode_return %+.4f%%  policy_loss %.4f  value_loss %.4f  entropy %.3f\n",
                it, c->iters, (long)it * c->steps, episodes, mean_ret, pg / n, vl / n, ent / n);
        fflush(out);
    }
    free(idx), free(am), free(av), free(g);
    free(r.obs), free(r.act), free(r.logp), free(r.val), free(r.rew), free(r.adv), free(r.ret), free(r.done);
    return 0;
}
