/* Unit tests: the trainer's gradient against finite differences of its loss,
 * the environment's costs, and that training is reproducible for a seed. */
#include "check.h"
#include "env.h"
#include "ppo.h"
#include "synth.h"

static model_t m, g;

TEST(gradient_matches_finite_differences)
{
    ppo_cfg_t c;
    float obs[MODEL_IN];
    double pg = 0, vl = 0, ent = 0;
    ppo_cfg_default(&c);
    model_init_random(&m, 3, "grad");
    for (int i = 0; i < 12; i++) m.wpi[i % 6][i] *= 40; /* a sharper policy: larger gradients */
    for (int k = 0; k < MODEL_IN; k++) obs[k] = (float)sin(k * 1.3);
    /* old log-prob near the current one so the ratio is unclipped, and a clipped case */
    for (int clipped = 0; clipped < 2; clipped++) {
        model_out_t o;
        model_forward(&m, obs, &o);
        int a = 2;
        float logp_old = logf(o.probs[a]) + (clipped ? -1.0f : 0.05f), adv = 0.8f, ret = 0.3f;
        memset(&g, 0, sizeof g);
        ppo_backward(&m, &g, obs, a, logp_old, adv, ret, &c, &pg, &vl, &ent);
        float *p = model_params(&m), *gp = model_params(&g);
        int checked = 0, bad = 0;
        for (long i = 0; i < MODEL_NPARAMS; i += 97) { /* a spread of weights of every layer */
            float keep = p[i];
            double h = 1e-2;
            p[i] = keep + (float)h;
            double up = ppo_loss(&m, obs, a, logp_old, adv, ret, &c);
            p[i] = keep - (float)h;
            double down = ppo_loss(&m, obs, a, logp_old, adv, ret, &c);
            p[i] = keep;
            double num = (up - down) / (2 * h);
            if (fabs(num) < 1e-4 && fabs(gp[i]) < 1e-4) continue;
            checked++;
            if (fabs(num - gp[i]) > 0.05 * fmax(fabs(num), fabs(gp[i])) + 1e-4) {
                bad++;
                fprintf(stderr, "  param %ld: analytic %g numeric %g\n", i, gp[i], num);
            }
        }
        CHECK(checked > 20);
        CHECK_EQ(bad, 0);
    }
}

TEST(environment_costs_match_the_paper_venue)
{
    static kline_t bars[200];
    for (int i = 0; i < 200; i++)
        bars[i] = (kline_t){"BTCUSDT", "1m", i * 60000LL, i * 60000LL + 59999, 100, 100, 100, 100, 1, 0, 0, 0};
    env_t e;
    int done;
    env_init(&e, bars, 200);
    env_reset(&e, ENV_WARMUP, 100);
    double r = env_step(&e, 2, &done); /* LONG_LARGE: 2% of 10000 as margin x3 = 600 notional at 100.02 */
    double qty = 10000 * 0.02 * 3 / 100, fee = qty * 100.02 * 4e-4;
    CHECK_NEAR(e.qty, qty, 1e-9);
    CHECK_NEAR(e.entry, 100.02, 1e-9);
    CHECK_NEAR(env_equity(&e), 10000 - fee + (100 - 100.02) * qty, 1e-9);
    CHECK_NEAR(r, (env_equity(&e) - 10000) / 10000 * 100, 1e-9);
    env_step(&e, 1, &done); /* LONG_SMALL while long: kept */
    CHECK_NEAR(e.qty, qty, 1e-12);
    env_step(&e, 0, &done); /* FLAT: closed at 99.98 */
    CHECK_NEAR(e.qty, 0, 0);
    CHECK_EQ(e.trades, 2);
}

TEST(training_is_reproducible)
{
    static model_t a, b;
    ppo_cfg_t c;
    synth_sym_t s;
    static kline_t bars[4000];
    synth_sym_init(&s, "BTCUSDT", 5, 0);
    for (int i = 0; i < 4000; i++) synth_bar(&s, i * 60000LL, &bars[i]);
    ppo_cfg_default(&c);
    c.iters = 2, c.steps = 512, c.minibatch = 128, c.episode_len = 256;
    FILE *null = fopen("/dev/null", "w");
    env_t e;
    model_init_random(&a, 9, "r"), env_init(&e, bars, 4000), ppo_train(&a, &e, &c, null);
    model_init_random(&b, 9, "r"), env_init(&e, bars, 4000), ppo_train(&b, &e, &c, null);
    fclose(null);
    CHECK(memcmp(&a, &b, sizeof a) == 0);
    model_init_random(&b, 9, "r");
    CHECK(memcmp(&a, &b, sizeof a) != 0); /* and it did learn something */
}

CHECK_MAIN()
