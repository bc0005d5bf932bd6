"""Per-example gradients of a small MLP's softmax cross-entropy loss (issue 14):
`sg.jit(sg.func.vmap(sg.func.grad(loss)))` against `jax.jit(jax.vmap(jax.grad(loss)))` (and
torch.func's vmap(grad), eager, for reference), batch 256, float32. Not a timed test.

    PYTHONPATH=. OMP_NUM_THREADS=2 python3 benchmarks/func_bench.py [batch]

Each line: the compile (first call) time, then the best of 7 runs of 50 calls, per call; and
the largest difference from JAX's gradients."""
from __future__ import annotations

import sys
import time

import numpy as np

N_IN, N_HID, N_OUT = 64, 128, 10


def example_loss(N, params, x, y):
    W1, b1, W2, b2 = params
    h = N.tanh(N.matmul(x, W1) + b1)
    z = N.matmul(h, W2) + b2
    return -N.sum(y * N.log_softmax(z, -1))


def timed(fn, args, n=50):
    t0 = time.perf_counter()
    first = fn(*args)
    compile_s = time.perf_counter() - t0
    for _ in range(3):
        fn(*args)
    best = float("inf")
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(n):
            out = fn(*args)
        best = min(best, (time.perf_counter() - t0) / n)
    return first, out, compile_s, best


def main(batch=256):
    rng = np.random.default_rng(0)
    params = tuple(a.astype(np.float32) for a in (
        rng.normal(0, 0.1, (N_IN, N_HID)), np.zeros(N_HID),
        rng.normal(0, 0.1, (N_HID, N_OUT)), np.zeros(N_OUT)))
    x = rng.normal(size=(batch, N_IN)).astype(np.float32)
    y = np.eye(N_OUT, dtype=np.float32)[rng.integers(0, N_OUT, batch)]
    rows = []

    import symgrad as sg
    pe = sg.jit(sg.func.vmap(sg.func.grad(lambda p, x, y: example_loss(sg, p, x, y)), in_dims=(None, 0, 0)))
    _, ours, c, t = timed(pe, (params, x, y))
    rows.append(("symgrad jit(vmap(grad))", c, t))

    import jax
    import jax.numpy as jnp

    class J:
        tanh, matmul, sum = jnp.tanh, jnp.matmul, jnp.sum

        @staticmethod
        def log_softmax(z, dim):
            return jax.nn.log_softmax(z, axis=dim)
    jf = jax.jit(jax.vmap(jax.grad(lambda p, x, y: example_loss(J, p, x, y)), in_axes=(None, 0, 0)))
    jparams = tuple(jnp.asarray(a) for a in params)
    jx, jy = jnp.asarray(x), jnp.asarray(y)
    run_jax = lambda *a: jax.block_until_ready(jf(*a))            # noqa: E731
    _, theirs, c, t = timed(run_jax, (jparams, jx, jy))
    rows.append(("jax jit(vmap(grad))", c, t))
    diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(ours, theirs))

    import torch
    import torch.func as tf
    tfn = tf.vmap(tf.grad(lambda p, x, y: example_loss(torch, p, x, y)), in_dims=(None, 0, 0))
    tparams = tuple(torch.from_numpy(a) for a in params)
    with torch.no_grad():
        _, _, c, t = timed(tfn, (tparams, torch.from_numpy(x), torch.from_numpy(y)))
    rows.append(("torch.func vmap(grad) (eager)", c, t))

    print(f"per-example gradients, MLP {N_IN}-{N_HID}-{N_OUT}, batch {batch}, float32")
    for name, c, t in rows:
        print(f"  {name:32s} first call {c * 1e3:8.1f} ms   per call {t * 1e6:9.1f} us")
    print(f"  symgrad / jax per call: {rows[0][2] / rows[1][2]:.2f}x   "
          f"largest |difference| from jax: {diff:.2e}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 256)
