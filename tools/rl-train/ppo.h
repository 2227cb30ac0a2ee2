/* ppo.h — PPO for the actor-critic MLP of libcommon/model: rollouts through
 * env, GAE advantages, the clipped surrogate objective with an entropy bonus
 * and a value loss, minibatch Adam with global gradient-norm clipping.
 * Seeded: the same data, seed and settings give the same model. */
#ifndef QT_PPO_H
#define QT_PPO_H

#include "env.h"
#include "model.h"

typedef struct ppo_cfg {
    int steps, epochs, minibatch, episode_len, iters;
    double gamma, lambda, clip, ent_coef, vf_coef, lr, max_grad_norm;
    unsigned long long seed;
} ppo_cfg_t;

void ppo_cfg_default(ppo_cfg_t *c);
/* One sample's loss, and its gradient added to g: exposed for the gradient check. */
double ppo_loss(const model_t *m, const float *obs, int a, float logp_old, float adv, float ret, const ppo_cfg_t *c);
void ppo_backward(const model_t *m, model_t *g, const float *obs, int a, float logp_old, float adv, float ret,
                  const ppo_cfg_t *c, double *pg_loss, double *v_loss, double *entropy);

/* Train m on the bars of env e; prints a progress line per iteration to out. */
int ppo_train(model_t *m, env_t *e, const ppo_cfg_t *c, void *out_file);

#endif
