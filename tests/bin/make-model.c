/* make-model PATH SEED VERSION — write a PPO model file with seeded random
 * weights: a test fixture for the inference path, not a trained model. */
#include "model.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    static model_t m;
    char err[512];
    if (argc != 4) {
        fprintf(stderr, "usage: make-model PATH SEED VERSION\n");
        return 2;
    }
    model_init_random(&m, strtoull(argv[2], NULL, 10), argv[3]);
    if (model_save(&m, argv[1], err, sizeof err) < 0) {
        fprintf(stderr, "make-model: %s\n", err);
        return 1;
    }
    return 0;
}
