"""Training-step throughput: a 64-128-10 MLP (nn.Sequential of Linear, Tanh, Linear;
cross-entropy) trained with Adam at batch 128, in steps per second, at 1 and at 2 threads, for

  - symgrad compile_step   (forward, backward and Adam's update in one compiled C call)
  - symgrad eager          (loss.backward() then optimizer.step(), as a PyTorch loop reads)
  - PyTorch eager          (torch.nn.Sequential, torch.optim.Adam, single-tensor CPU path)
  - torch.compile          (the same step function, compiled once)
  - JAX jit                (value_and_grad of the same MLP plus an Adam update written by hand)

    PYTHONPATH=. python3 benchmarks/train_step.py [--seconds 2] [--threads 1,2] [--skip torch.compile,jax]

The implementations take turns in WINDOWS rounds of short windows (a change of the machine's
load falls on all alike); a rate is the median of an implementation's windows. Each thread
count runs in its own child process, started with its CPU affinity cut to that
many CPUs and OMP/OpenBLAS/MKL capped (and, at one thread, XLA's CPU thread pool off through
XLA_FLAGS); inside it `sg.set_num_threads` and `torch.set_num_threads` are set too. Every run
starts from the same weights and data; the losses after CHECK_STEPS steps are printed next to
the rates, so a fast wrong step shows. Ratios are compile_step's rate / the other's, at the
same thread count. Not a test: numbers depend on the machine (and on what else it runs)."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

N_IN, N_HIDDEN, N_OUT, BATCH, LR = 64, 128, 10, 128, 1e-3
KEYS = ("0.weight", "0.bias", "2.weight", "2.bias")       # nn.Sequential's state_dict names


def init(seed=0):
    """The initial state_dict (nn.Linear's layout: weight (out, in), PyTorch's uniform bounds),
    one batch of inputs and labels; float32 numpy arrays (int64 labels)."""
    rng = np.random.default_rng(seed)
    bound1, bound2 = 1 / np.sqrt(N_IN), 1 / np.sqrt(N_HIDDEN)
    weights = [rng.uniform(-bound1, bound1, (N_HIDDEN, N_IN)), rng.uniform(-bound1, bound1, N_HIDDEN),
               rng.uniform(-bound2, bound2, (N_OUT, N_HIDDEN)), rng.uniform(-bound2, bound2, N_OUT)]
    x = rng.normal(size=(BATCH, N_IN))
    y = rng.integers(0, N_OUT, BATCH)
    return dict(zip(KEYS, (w.astype(np.float32) for w in weights))), x.astype(np.float32), y.astype(np.int64)


CHECK_STEPS = 20
WINDOWS = 10


def prepare(step):
    """The loss after CHECK_STEPS steps from the shared initial weights (every implementation
    should agree on it), then a warm-up of at least a second (background compiles finish)."""
    for _ in range(CHECK_STEPS):
        check = float(step())
    start = time.perf_counter()
    while time.perf_counter() - start < 1.0:
        step()
    return check


def window(step, seconds):
    """Steps per second over about `seconds` of steps, in batches of 20."""
    n, start = 0, time.perf_counter()
    while True:
        for _ in range(20):
            step()
        n += 20
        elapsed = time.perf_counter() - start
        if elapsed > seconds:
            return n / elapsed


def model_of(T, state):
    """nn.Sequential(Linear(64, 128), Tanh(), Linear(128, 10)) of module `T` (symgrad or
    torch), loaded with the shared initial weights."""
    model = T.nn.Sequential(T.nn.Linear(N_IN, N_HIDDEN), T.nn.Tanh(), T.nn.Linear(N_HIDDEN, N_OUT))
    model.load_state_dict({k: T.tensor(v.copy()) for k, v in state.items()})
    return model


def symgrad_compiled(state, x, y):
    import symgrad as sg
    model = model_of(sg, state)
    step = sg.compile_step(model, sg.nn.CrossEntropyLoss(), sg.optim.Adam(model.parameters(), lr=LR))
    return lambda: step(x, y)


def eager_step(T, state, x, y):
    """The eager loop's step of module `T` (symgrad or torch), written once: zero_grad,
    forward, backward, Adam's step; it returns the loss detached (no sync of torch.compile's
    graph on .item())."""
    model = model_of(T, state)
    opt = T.optim.Adam(model.parameters(), lr=LR)
    loss_fn = T.nn.CrossEntropyLoss()
    xv, yv = T.from_numpy(x), T.from_numpy(y)

    def step():
        opt.zero_grad()
        loss = loss_fn(model(xv), yv)
        loss.backward()
        opt.step()
        return loss.detach()
    return step


def symgrad_eager(state, x, y):
    import symgrad as sg
    return eager_step(sg, state, x, y)


def torch_eager(state, x, y):
    import torch
    return eager_step(torch, state, x, y)


def torch_compiled(state, x, y):
    import torch
    return torch.compile(eager_step(torch, state, x, y))


def jax_jit(state, x, y):
    import jax
    import jax.numpy as jnp

    def loss_fn(params, x, y):
        w1, b1, w2, b2 = params
        logits = jnp.tanh(x @ w1.T + b1) @ w2.T + b2
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

    weights = [state[k] for k in KEYS]
    zeros = [jnp.zeros_like(jnp.asarray(w)) for w in weights]
    s = {"params": [jnp.asarray(w) for w in weights], "m": zeros, "v": list(zeros), "t": jnp.float32(0)}
    xj, yj = jnp.asarray(x), jnp.asarray(y.astype(np.int32))

    def run():
        s["params"], s["m"], s["v"], s["t"], loss = step(s["params"], s["m"], s["v"], s["t"], xj, yj)
        return loss.block_until_ready()
    return run


RUNS = {"symgrad compile_step": symgrad_compiled, "symgrad eager": symgrad_eager,
        "PyTorch eager": torch_eager, "torch.compile": torch_compiled, "JAX jit": jax_jit}


def thread_env(n):
    """The environment of a child that runs on n threads (read by the libraries at import)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(n), OPENBLAS_NUM_THREADS=str(n), MKL_NUM_THREADS=str(n))
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([ROOT] + paths)
    if n == 1:
        env["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                            " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()
    return env


def child(threads, seconds, skip):
    """Run every implementation on `threads` threads; one JSON line {name: [rate, loss] or error}.
    The implementations take turns: WINDOWS rounds, each giving every one a window of
    seconds / WINDOWS, so a change in the machine's load falls on all of them alike; an
    implementation's rate is the median of its windows."""
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, cpus[:threads])
    import symgrad as sg
    sg.set_num_threads(threads)
    try:
        import torch
        torch.set_num_threads(threads)
    except ImportError:
        pass
    state, x, y = init()
    results, steps = {}, {}
    for name, make in RUNS.items():
        if any(s in name.lower() for s in skip):
            continue
        try:
            steps[name] = make(state, x, y)
            results[name] = [None, prepare(steps[name]), []]
        except ImportError as e:
            results[name] = f"skipped ({e})"
            steps.pop(name, None)
        except Exception as e:  # noqa: BLE001 - one failing library must not hide the others
            results[name] = f"error: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
            steps.pop(name, None)
    for _ in range(WINDOWS):
        for name, step in steps.items():
            results[name][2].append(window(step, seconds / WINDOWS))
    for name in steps:
        rates = sorted(results[name][2])
        results[name][0] = median = rates[len(rates) // 2]
        print(f"  [{threads} thread{'s' * (threads > 1)}] {name}: {median:.1f} steps/s (windows "
              f"{rates[0]:.0f}-{rates[-1]:.0f}), loss {results[name][1]}", file=sys.stderr, flush=True)
    print(json.dumps(results))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per run")
    parser.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    parser.add_argument("--skip", default="", help="runs to leave out: torch.compile,jax,...")
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    skip = {s.strip().lower() for s in args.skip.split(",") if s.strip()}
    if args.child:
        return child(args.child, args.seconds, skip)
    counts = [int(t) for t in args.threads.split(",") if t.strip()]
    print(f"MLP {N_IN}-{N_HIDDEN}-{N_OUT} (nn.Sequential, tanh), cross-entropy, batch {BATCH}, "
          f"Adam lr={LR}, float32; {os.cpu_count()} CPUs")
    table = {}
    for n in counts:
        done = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", str(n),
                               "--seconds", str(args.seconds), "--skip", args.skip],
                              stdout=subprocess.PIPE, text=True, env=thread_env(n), timeout=1800)
        lines = done.stdout.strip().splitlines()
        if done.returncode or not lines:
            print(f"{n} threads: the child failed (exit {done.returncode})")
            continue
        table[n] = json.loads(lines[-1])
    names = [name for name in RUNS if any(name in r for r in table.values())]
    print(f"\n{'steps/s':22s}" + "".join(f"{f'{n} thread' + 's' * (n > 1):>24s}" for n in table))
    for name in names:
        cells = []
        for r in table.values():
            got = r.get(name)
            cells.append(f"{got[0]:9.1f} (loss {got[1]:.5f})" if isinstance(got, list) else str(got)[:22])
        print(f"{name:22s}" + "".join(f"{c:>24s}" for c in cells))
    print(f"\nratios: symgrad compile_step's rate / each other run's, at the same thread count\n"
          f"{'':22s}" + "".join(f"{f'{n} thread' + 's' * (n > 1):>24s}" for n in table))
    for name in names:
        if name == "symgrad compile_step":
            continue
        cells = []
        for r in table.values():
            mine, other = r.get("symgrad compile_step"), r.get(name)
            ok = isinstance(mine, list) and isinstance(other, list)
            cells.append(f"{mine[0] / other[0]:8.2f}x" if ok else "-")
        print(f"  / {name:18s}" + "".join(f"{c:>24s}" for c in cells))


if __name__ == "__main__":
    main()
