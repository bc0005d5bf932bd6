"""Data-parallel gradients over shards on a Dask cluster (`pip install symgrad[dask]`).

    python examples/dask_data_parallel.py

A compiled function pickles by its graph: each worker process unpickles it, finds the library
in the build cache (or builds it once), and computes its shard's loss and gradients; the
client adds them up and takes an SGD step. On one machine the cluster is a LocalCluster of
processes; point `Client` at a scheduler's address to use several machines."""
from __future__ import annotations

import numpy as np
from dask.distributed import Client, LocalCluster

import symgrad as sg

SHARDS, ROWS, D, H = 4, 256, 8, 32


def shard_value_and_grad(fn, x, y, params):
    value, grads = fn.value_and_grad(x, y, *params)
    return float(value), [np.asarray(g) for g in grads]


def main() -> None:
    x = sg.Variable(shape=(ROWS, D), name="x")
    y = sg.Variable(shape=(ROWS, 1), name="y")
    W = sg.Variable(shape=(D, H), name="W", requires_grad=True)
    v = sg.Variable(shape=(H, 1), name="v", requires_grad=True)
    loss = ((sg.tanh(x @ W) @ v - y) ** 2).sum()         # a sum: shard gradients add up
    fn = sg.compile([x, y, W, v], loss)

    rng = np.random.default_rng(0)
    xs = rng.standard_normal((SHARDS, ROWS, D)).astype(np.float32)
    ys = np.sin(xs.sum(axis=2, keepdims=True)).astype(np.float32)
    params = [(rng.standard_normal((D, H)) * 0.3).astype(np.float32),
              (rng.standard_normal((H, 1)) * 0.3).astype(np.float32)]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        remote_fn = client.scatter(fn, broadcast=True)
        shards = [client.scatter((xs[k], ys[k])) for k in range(SHARDS)]
        for step in range(20):
            futures = [client.submit(lambda f, s, p: shard_value_and_grad(f, *s, p), remote_fn, s, params)
                       for s in shards]
            results = client.gather(futures)
            total = sum(r[0] for r in results) / (SHARDS * ROWS)
            grads = [sum(r[1][j] for r in results) / (SHARDS * ROWS) for j in range(2)]
            params = [p - 0.1 * g for p, g in zip(params, grads)]
            if step % 5 == 0 or step == 19:
                print(f"step {step:2d}  mean loss {total:.5f}")


if __name__ == "__main__":
    main()
