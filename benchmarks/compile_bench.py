"""Compile time, symgrad against JAX, each measured in fresh child processes.

    flock /tmp/bench.lock python benchmarks/compile_bench.py [--only mlp2,rnn128,...] [--repeat N]
                                                             [--no-jax] [--json FILE]

For each workload:
  symgrad cold  a new process with an empty SYMGRAD_BUILD_DIR: build the graph, sg.compile(inputs,
                loss), the first value_and_grad call (torch imported first, as users run);
  symgrad warm  a second new process on the same build directory (the graph index leads to the
                library compiled cold: nothing is generated or compiled);
  symgrad new   a new process on a build directory that holds another graph's build (mlp1's: the
                thread pool and the product helpers' object are there), as a user's cache holds
                them after its first compile: the graph itself is generated and compiled;
  jax           a new process: jax.jit(jax.value_and_grad(f)) and its first call (trace, XLA
                compile, run), through jit's AOT stages so each phase is timed.
Each figure is the best of --repeat runs. symgrad's phases come from its "symgrad" logger:
gen = Python code generation (passes, kernels, render; in a new cache also the wait for the
product helpers' object, symgrad/backends/objects.py), gcc = the compiler run, and the rest
of compile + first call is graph building, the argument checks, loading and the run itself.

Workloads: tanh MLPs (width 256, batch 64, float32, loss mean(h*h)) of 2-32 layers, tanh RNNs
(as models.rnn: batch 64, input 128, hidden 128) unrolled 8-128 steps, and an elementwise chain
x = sin(x) * 1.0001 + 0.5 (three ops a step) of 1000 and 5000 ops on 1024 floats.
This is a benchmark, not a test: nothing here asserts a time."""
from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from models import rnn  # noqa: E402  (the RNN of benchmarks/run.py's workloads)
ROOT = os.path.dirname(HERE)
WIDTH, BATCH, HIDDEN, RNN_IN, CHAIN_SIZE = 256, 64, 128, 128, 1024


# --- the workloads, written once against a module with PyTorch's / numpy's names -----------

def mlp(T, x, *params):
    h = x
    for k in range(0, len(params), 2):
        h = T.tanh(T.matmul(h, params[k]) + params[k + 1])
    return T.mean(h * h)


def chain(T, x):
    for _ in range(CHAIN_OPS[0] // 3):
        x = T.sin(x) * 1.0001 + 0.5
    return T.sum(x)


CHAIN_OPS = [0]      # set per workload (the chain's length)


def workload(name):
    """(model, [(name, shape, requires_grad)]) for a workload name: mlp<L>, rnn<T>, chain<N>."""
    if name.startswith("mlp"):
        layers = int(name[3:])
        args = [("x", (BATCH, WIDTH), False)]
        for k in range(layers):
            args += [(f"w{k}", (WIDTH, WIDTH), True), (f"b{k}", (WIDTH,), True)]
        return mlp, args
    if name.startswith("rnn"):
        steps = int(name[3:])
        return rnn, [("xs", (steps, BATCH, RNN_IN), False), ("wx", (RNN_IN, HIDDEN), True),
                     ("wh", (HIDDEN, HIDDEN), True), ("b", (HIDDEN,), True)]
    if name.startswith("chain"):
        CHAIN_OPS[0] = int(name[5:])
        return chain, [("x", (CHAIN_SIZE,), True)]
    raise ValueError(f"unknown workload {name!r}")


def arrays_for(args):
    rng = np.random.default_rng(0)
    return [(rng.standard_normal(shape) * (0.5 / np.sqrt(shape[0]) if grad and len(shape) == 2 else 0.5))
            .astype(np.float32) for _, shape, grad in args]


# --- the children ------------------------------------------------------------------------------

class _Phases(logging.Handler):
    """Collects the times symgrad logs: code generation, the compiler run, a load from the index."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.seen = {}

    def emit(self, record):
        message = str(record.msg)
        for word in ("generated", "compiled", "through the graph index"):
            if word in message:
                ms = next(a for a in reversed(record.args) if isinstance(a, float))
                self.seen[word.split()[-1]] = self.seen.get(word.split()[-1], 0.0) + ms / 1e3


def child_symgrad(name):
    t0 = time.perf_counter()
    import torch  # noqa: F401  (users run symgrad beside torch: its import is part of their process)
    import symgrad as sg
    phases = _Phases()
    log = logging.getLogger("symgrad")
    log.addHandler(phases)
    log.setLevel(logging.INFO)
    t1 = time.perf_counter()
    model, args = workload(name)
    values = arrays_for(args)
    inputs = [sg.Variable(shape=shape, name=n, requires_grad=grad) for n, shape, grad in args]
    loss = model(sg, *inputs)
    t2 = time.perf_counter()
    fn = sg.compile(inputs, loss)
    t3 = time.perf_counter()
    value, grads = fn.value_and_grad(*values)
    t4 = time.perf_counter()
    return {"import": t1 - t0, "graph": t2 - t1, "compile": t3 - t2, "first_call": t4 - t3,
            "total": t4 - t1, "gen": phases.seen.get("generated", 0.0),
            "gcc": phases.seen.get("compiled", 0.0), "index_load": phases.seen.get("index", 0.0),
            "value": float(value), "source_bytes": len(fn.forward_fn.module_source or "")}


def child_jax(name):
    t0 = time.perf_counter()
    import jax
    import jax.numpy as jnp
    t1 = time.perf_counter()
    model, args = workload(name)
    values = [jax.device_put(v) for v in arrays_for(args)]
    wrt = tuple(k for k, (_, _, grad) in enumerate(args) if grad)
    jitted = jax.jit(jax.value_and_grad(lambda *xs: model(jnp, *xs), argnums=wrt))
    t2 = time.perf_counter()
    lowered = jitted.lower(*values)
    t3 = time.perf_counter()
    compiled = lowered.compile()
    t4 = time.perf_counter()
    value, grads = jax.block_until_ready(compiled(*values))
    t5 = time.perf_counter()
    return {"import": t1 - t0, "trace": t3 - t2, "xla": t4 - t3, "first_call": t5 - t4,
            "total": t5 - t1, "value": float(value)}


def child_main(which, name):
    result = (child_symgrad if which == "symgrad" else child_jax)(name)
    print("RESULT " + json.dumps(result))


# --- the parent --------------------------------------------------------------------------------

SYMGRAD_ROOT = [ROOT]        # the checkout whose symgrad the children import (--root)


def run_child(which, name, build_dir):
    env = dict(os.environ, SYMGRAD_BUILD_DIR=build_dir, JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join(p for p in (SYMGRAD_ROOT[0], os.environ.get("PYTHONPATH")) if p))
    env.pop("SYMGRAD_LOG", None)
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", which, name],
                         env=env, capture_output=True, text=True)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{which} {name} failed (exit {out.returncode}):\n{out.stdout}\n{out.stderr}")
    return json.loads(lines[-1][len("RESULT "):])


def best(results):
    return min(results, key=lambda r: r["total"])


def measure(name, repeat, with_jax):
    cold, warm, new, jax_runs = [], [], [], []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="sg-compile-bench-") as d:
            cold.append(run_child("symgrad", name, d))
            warm.append(run_child("symgrad", name, d))
        with tempfile.TemporaryDirectory(prefix="sg-compile-bench-") as d:
            run_child("symgrad", "mlp1", d)
            new.append(run_child("symgrad", name, d))
        if with_jax:
            with tempfile.TemporaryDirectory(prefix="sg-compile-bench-") as d:
                jax_runs.append(run_child("jax", name, d))
    return {"workload": name, "cold": best(cold), "warm": best(warm), "new": best(new),
            "jax": best(jax_runs) if jax_runs else None}


DEFAULT = ["mlp2", "mlp4", "mlp8", "mlp16", "mlp32", "rnn8", "rnn32", "rnn128", "chain1000", "chain5000"]


def print_table(rows):
    head = (f"{'workload':<10} {'sg cold':>8} {'graph':>6} {'gen':>6} {'gcc':>6} {'rest':>6} {'sg warm':>8} "
            f"{'sg new':>7} {'jax':>7} {'trace':>6} {'xla':>6} {'cold/jax':>8}")
    print(head)
    print("-" * len(head))
    for r in rows:
        c, w, j = r["cold"], r["warm"], r["jax"]
        rest = c["total"] - c["graph"] - c["gen"] - c["gcc"]
        jtxt = (f"{j['total']:>7.2f} {j['trace']:>6.2f} {j['xla']:>6.2f} {c['total'] / j['total']:>8.2f}"
                if j else f"{'-':>7} {'-':>6} {'-':>6} {'-':>8}")
        print(f"{r['workload']:<10} {c['total']:>8.2f} {c['graph']:>6.2f} {c['gen']:>6.2f} {c['gcc']:>6.2f} "
              f"{rest:>6.2f} {w['total']:>8.3f} {r['new']['total']:>7.2f} {jtxt}")
    print("seconds; sg cold = graph + compile() + first call in a new process with an empty cache "
          "(gen: code generation, gcc: the compiler, rest: graph-independent work, load, run); "
          "sg warm = the same in a second process; sg new = cold in a cache holding another graph's build; "
          "jax = jit(value_and_grad) first call (trace + XLA + run)")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return child_main(sys.argv[2], sys.argv[3])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=",".join(DEFAULT),
                   help="comma-separated workloads (mlp<L>, rnn<T>, chain<N>)")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--no-jax", action="store_true")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--root", help="the checkout whose symgrad to measure (default: this one's)")
    a = p.parse_args()
    if a.root:
        SYMGRAD_ROOT[0] = os.path.abspath(a.root)
    rows = []
    for name in a.only.split(","):
        rows.append(measure(name, a.repeat, not a.no_jax))
        print(f"  {name}: cold {rows[-1]['cold']['total']:.2f} s", file=sys.stderr, flush=True)
    print_table(rows)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
