"""Training-step throughput: a 64-128-10 MLP (tanh hidden layer, cross-entropy) trained with
Adam at batch 128, in steps per second, for

  - symgrad compile_step   (forward, backward and Adam's update in one compiled C call)
  - symgrad eager          (loss.backward() then optimizer.step(), as a PyTorch loop reads)
  - PyTorch eager          (torch.optim.Adam, single-tensor CPU path)
  - torch.compile          (the same step function, fullgraph, compiled once)
  - JAX                    (jit of value_and_grad plus an Adam update written by hand)

    PYTHONPATH=. python3 benchmarks/train_step.py [--seconds 2] [--skip torch.compile,jax]

Every run starts from the same weights and data; the losses after the timed steps are printed
next to the rates, so a fast wrong step shows. Ratios are compile_step's rate / the other's.
Not a test: numbers depend on the machine."""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

N_IN, N_HIDDEN, N_OUT, BATCH, LR = 64, 128, 10, 128, 1e-3


def init(seed=0):
    rng = np.random.default_rng(seed)
    bound1, bound2 = 1 / np.sqrt(N_IN), 1 / np.sqrt(N_HIDDEN)
    weights = [rng.uniform(-bound1, bound1, (N_IN, N_HIDDEN)), rng.uniform(-bound1, bound1, N_HIDDEN),
               rng.uniform(-bound2, bound2, (N_HIDDEN, N_OUT)), rng.uniform(-bound2, bound2, N_OUT)]
    x = rng.normal(size=(BATCH, N_IN))
    y = rng.integers(0, N_OUT, BATCH)
    return [w.astype(np.float32) for w in weights], x.astype(np.float32), y.astype(np.int64)


CHECK_STEPS = 20


def timed(step, seconds):
    """(steps per second, loss at step CHECK_STEPS): the first steps from the shared initial
    weights give the loss every implementation should agree on; then a warm-up of at least a
    second (background compiles finish), then about `seconds` of timed steps."""
    for _ in range(CHECK_STEPS):
        check = float(step())
    start = time.perf_counter()
    while time.perf_counter() - start < 1.0:
        step()
    n, start = 0, time.perf_counter()
    while True:
        for _ in range(20):
            step()
        n += 20
        elapsed = time.perf_counter() - start
        if elapsed > seconds:
            return n / elapsed, check


class MLP:
    def __init__(self, T, weights):
        self.T = T
        self.params = [T.tensor(w.copy(), requires_grad=True) for w in weights]

    def parameters(self):
        return self.params

    def named_parameters(self):
        return list(zip(["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"], self.params))

    def __call__(self, x):
        w1, b1, w2, b2 = self.params
        return self.T.tanh(x @ w1 + b1) @ w2 + b2


def symgrad_compiled(weights, x, y, seconds, threads=None):
    import symgrad as sg
    model = MLP(sg, weights)
    step = sg.compile_step(model, sg.cross_entropy, sg.optim.Adam(model.parameters(), lr=LR))
    before = sg.get_num_threads()
    if threads:
        sg.set_num_threads(threads)
    try:
        return timed(lambda: step(x, y), seconds)
    finally:
        sg.set_num_threads(before)


def symgrad_compiled_one_thread(weights, x, y, seconds):
    return symgrad_compiled(weights, x, y, seconds, threads=1)


def symgrad_eager(weights, x, y, seconds):
    import symgrad as sg
    model = MLP(sg, weights)
    opt = sg.optim.Adam(model.parameters(), lr=LR)
    xv, yv = sg.tensor(x), sg.tensor(y)

    def step():
        opt.zero_grad()
        loss = sg.cross_entropy(model(xv), yv)
        loss.backward()
        opt.step()
        return loss.item()
    return timed(step, seconds)


def _torch_step(weights, x, y):
    import torch
    model = MLP(torch, weights)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    xv, yv = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xv), yv)
        loss.backward()
        opt.step()
        return loss.detach()
    return step


def torch_eager(weights, x, y, seconds):
    return timed(_torch_step(weights, x, y), seconds)


def torch_compiled(weights, x, y, seconds):
    import torch
    compiled = torch.compile(_torch_step(weights, x, y))
    return timed(compiled, seconds)


def jax_jit(weights, x, y, seconds):
    import jax
    import jax.numpy as jnp

    def loss_fn(params, x, y):
        w1, b1, w2, b2 = params
        logits = jnp.tanh(x @ w1 + b1) @ w2 + b2
        logp = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    @jax.jit
    def step(params, m, v, t, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        t = t + 1
        b1, b2, eps = 0.9, 0.999, 1e-8
        m = [b1 * mi + (1 - b1) * g for mi, g in zip(m, grads)]
        v = [b2 * vi + (1 - b2) * g * g for vi, g in zip(v, grads)]
        step_size = LR / (1 - b1 ** t)
        root = jnp.sqrt(1 - b2 ** t)
        params = [p - step_size * mi / (jnp.sqrt(vi) / root + eps) for p, mi, vi in zip(params, m, v)]
        return params, m, v, t, loss

    zeros = [jnp.zeros_like(jnp.asarray(w)) for w in weights]
    state = {"params": [jnp.asarray(w) for w in weights], "m": zeros, "v": list(zeros), "t": jnp.float32(0)}
    xj, yj = jnp.asarray(x), jnp.asarray(y.astype(np.int32))

    def run():
        s = state
        s["params"], s["m"], s["v"], s["t"], loss = step(s["params"], s["m"], s["v"], s["t"], xj, yj)
        return loss.block_until_ready()
    return timed(run, seconds)


RUNS = {"symgrad compile_step": symgrad_compiled, "compile_step, 1 thread": symgrad_compiled_one_thread,
        "symgrad eager": symgrad_eager,
        "PyTorch eager": torch_eager, "torch.compile": torch_compiled, "JAX jit": jax_jit}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per run")
    parser.add_argument("--skip", default="", help="runs to leave out: torch.compile,jax,...")
    args = parser.parse_args()
    skip = {s.strip().lower() for s in args.skip.split(",") if s.strip()}
    weights, x, y = init()
    print(f"MLP {N_IN}-{N_HIDDEN}-{N_OUT}, batch {BATCH}, Adam lr={LR}, float32; "
          f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    results = {}
    for name, run in RUNS.items():
        if any(s in name.lower() for s in skip):
            continue
        try:
            results[name] = run(weights, x, y, args.seconds)
        except ImportError as e:
            print(f"{name:22s} skipped ({e})")
            continue
        rate, loss = results[name]
        print(f"{name:22s} {rate:10.1f} steps/s   loss at step {CHECK_STEPS}: {loss:.6f}")
    mine = [results[k][0] for k in ("symgrad compile_step", "compile_step, 1 thread") if k in results]
    if mine:
        best = max(mine)
        print(f"\nratios: symgrad compile_step's best rate ({best:.1f} steps/s) / each other run's")
        for name, (rate, _) in results.items():
            if "compile_step" not in name:
                print(f"  / {name:20s} {best / rate:6.2f}x")


if __name__ == "__main__":
    main()
