"""Quick measurements of symgrad alone on the kinds of graph issue 11 is about (row reductions,
normalisations, an expensive elementwise map, a long chain), for before/after comparisons of a
code-generation change. The peer comparison is benchmarks/run.py.

    PYTHONPATH=. OMP_NUM_THREADS=2 python3 benchmarks/micro.py [chain]

Each line: the best of 7 runs of 30 value_and_grad calls, and the page faults one call takes
(steady state: 0). `chain` adds the compile time of a 1,000-op chain."""
from __future__ import annotations

import os
import resource
import sys
import time

import numpy as np

import symgrad as sg

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402  (the workloads' definitions, shared with run.py)


def measure(name, inputs, out, arrays, n=30):
    fn = sg.compile(inputs, out)
    for _ in range(3):
        fn.value_and_grad(*arrays)
    best = float("inf")
    faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(n):
            fn.value_and_grad(*arrays)
        best = min(best, (time.perf_counter() - t0) / n)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0) / (7 * n)
    print(f"{name:28s} {best * 1e3:9.3f} ms/call  {faults:7.0f} page faults/call")


def main():
    rng = np.random.default_rng(0)
    x = sg.Variable(shape=(4096, 2048), name="x", requires_grad=True)
    big = rng.normal(size=(4096, 2048)).astype(np.float32)
    measure("logsumexp 4096x2048", [x], sg.logsumexp(x, 1).sum(), [big])
    measure("log_softmax 4096x2048", [x], sg.log_softmax(x, 1).sum(), [big])
    x = sg.Variable(shape=(2048, 1024), name="x", requires_grad=True)
    measure("layer norm + tanh 2048x1024", [x], sg.tanh(models.layer_norm(sg, x)).sum(),
            [rng.normal(size=(2048, 1024)).astype(np.float32)])
    x = sg.Variable(shape=(128, 1024), name="x", requires_grad=True)
    measure("GELU 128x1024", [x], models.gelu(sg, x).sum(), [rng.normal(size=(128, 1024)).astype(np.float32)])
    if "chain" in sys.argv[1:]:
        x = sg.Variable(shape=(64,), name="x", requires_grad=True)
        y = x
        for k in range(1000):
            y = sg.tanh(y) * 1.01 + 0.001 if k % 2 else sg.sin(y) + y * 0.5
        t0 = time.perf_counter()
        fn = sg.compile([x], y.sum())
        t1 = time.perf_counter()
        fn.value_and_grad(np.ones(64, np.float32))
        print(f"{'1000-op chain':28s} compile() {t1 - t0:.2f} s, then the C compiler "
              f"{time.perf_counter() - t1:.2f} s")


if __name__ == "__main__":
    main()
