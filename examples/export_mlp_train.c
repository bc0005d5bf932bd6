/* Train the MLP exported by examples/export_mlp.py with plain SGD: two interleaved spirals
   of points, classified by a 2-16-2 tanh MLP. Only mlp.h/mlp.c (generated) and libm. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include "mlp.h"

#define BATCH 64
#define IN 2
#define HIDDEN 16
#define OUT 2

static float uniform(unsigned *state)     /* in [-1, 1) */
{
    *state = *state * 1664525u + 1013904223u;
    return (float)((*state >> 8) & 0xFFFFFF) / 8388608.0f - 1.0f;
}

int main(void)
{
    static float x[BATCH * IN], W1[IN * HIDDEN], b1[HIDDEN], W2[HIDDEN * OUT], b2[OUT];
    static float dW1[IN * HIDDEN], db1[HIDDEN], dW2[HIDDEN * OUT], db2[OUT];
    static int64_t labels[BATCH];
    unsigned seed = 12345;
    for (int i = 0; i < BATCH; i++) {           /* two spirals */
        int c = i % 2;
        float t = 0.25f + 3.0f * (float)(i / 2) / (BATCH / 2);
        x[i * IN] = t * cosf(t + 3.14159265f * c) / 3.0f + 0.02f * uniform(&seed);
        x[i * IN + 1] = t * sinf(t + 3.14159265f * c) / 3.0f + 0.02f * uniform(&seed);
        labels[i] = c;
    }
    for (int i = 0; i < IN * HIDDEN; i++) W1[i] = uniform(&seed);
    for (int i = 0; i < HIDDEN * OUT; i++) W2[i] = 0.5f * uniform(&seed);
    void *workspace = malloc((size_t)mlp_value_and_grad_workspace_bytes() + 1);  /* once, reused */
    float loss = 0.0f, first = 0.0f, lr = 0.5f;
    for (int step = 0; step <= 2000; step++) {
        if (mlp_value_and_grad(x, labels, W1, b1, W2, b2, &loss, dW1, db1, dW2, db2, workspace)) {
            fprintf(stderr, "mlp_value_and_grad failed\n");
            return 1;
        }
        if (step == 0) first = loss;
        if (step % 400 == 0) printf("step %4d  loss %.6f\n", step, loss);
        for (int i = 0; i < IN * HIDDEN; i++) W1[i] -= lr * dW1[i];
        for (int i = 0; i < HIDDEN; i++) b1[i] -= lr * db1[i];
        for (int i = 0; i < HIDDEN * OUT; i++) W2[i] -= lr * dW2[i];
        for (int i = 0; i < OUT; i++) b2[i] -= lr * db2[i];
    }
    free(workspace);
    printf("loss %.6f -> %.6f\n", first, loss);
    return loss < first ? 0 : 1;
}
