"""Symbolic dimensions (issue 14): one library for every batch size against a static compile
of each size. A 784-256-10 MLP (relu), softmax cross-entropy, `value_and_grad`, float32, at
batch 1, 64 and 4096, on 1 and 2 threads (sg.set_num_threads), torch imported in the process
(as in a user's). Target: the dynamic function within 10% of the static one at every size.

    PYTHONPATH=. python3 benchmarks/dynamic_bench.py [sizes...]

Each line: the best per-call time (best of 9 rounds, the two functions measured in turn
within each round so that both see the same machine) and the ratio dynamic / static."""
from __future__ import annotations

import sys
import time

import numpy as np
import torch  # noqa: F401  (imported, as in a user's process: its OpenMP runtime is loaded)

import symgrad as sg

N_IN, N_HID, N_OUT = 784, 256, 10
ROUNDS = 9


def model(batch):
    """The loss graph with batch either an int (static) or a name (dynamic)."""
    x = sg.Variable(shape=(batch, N_IN), dtype="float32", name="x")
    y = sg.Variable(shape=(batch,), dtype="int64", name="y")
    w1 = sg.Variable(shape=(N_IN, N_HID), dtype="float32", name="w1", requires_grad=True)
    b1 = sg.Variable(shape=(N_HID,), dtype="float32", name="b1", requires_grad=True)
    w2 = sg.Variable(shape=(N_HID, N_OUT), dtype="float32", name="w2", requires_grad=True)
    b2 = sg.Variable(shape=(N_OUT,), dtype="float32", name="b2", requires_grad=True)
    logits = sg.relu(x @ w1 + b1) @ w2 + b2
    return sg.compile([x, y, w1, b1, w2, b2], sg.nn.functional.cross_entropy(logits, y))


def per_call(fn, args, calls) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn(*args)
    return (time.perf_counter() - t0) / calls


def main(sizes=(1, 64, 4096)):
    rng = np.random.default_rng(0)
    params = [(rng.normal(size=(N_IN, N_HID)) * 0.05).astype(np.float32), np.zeros(N_HID, np.float32),
              (rng.normal(size=(N_HID, N_OUT)) * 0.05).astype(np.float32), np.zeros(N_OUT, np.float32)]
    dynamic = model("batch")
    static = {b: model(b) for b in sizes}
    print(f"{'threads':>7} {'batch':>6} {'static us':>10} {'dynamic us':>11} {'ratio':>6}")
    rows = []
    for threads in (1, 2):
        sg.set_num_threads(threads)
        for b in sizes:
            x = rng.normal(size=(b, N_IN)).astype(np.float32)
            y = rng.integers(0, N_OUT, b)
            args = (x, y, *params)
            d, s = dynamic.value_and_grad(*args), static[b].value_and_grad(*args)
            assert abs(float(d[0]) - float(s[0])) <= 1e-5 * max(1.0, abs(float(s[0])))
            for gd, gs in zip(d[1], s[1]):
                np.testing.assert_allclose(gd, gs, rtol=1e-4, atol=1e-6)
            calls = max(3, int(2e5 // (b * 250 + 2000)))
            best_s = best_d = float("inf")
            for _ in range(ROUNDS):
                best_s = min(best_s, per_call(static[b].value_and_grad, args, calls))
                best_d = min(best_d, per_call(dynamic.value_and_grad, args, calls))
            rows.append((threads, b, best_s, best_d))
            print(f"{threads:>7} {b:>6} {best_s * 1e6:>10.1f} {best_d * 1e6:>11.1f} {best_d / best_s:>6.3f}",
                  flush=True)
    return rows


if __name__ == "__main__":
    main(tuple(int(a) for a in sys.argv[1:]) or (1, 64, 4096))
