"""Compiled functions pickle by graph and options, and compute in worker processes of every
start method (fork, spawn, forkserver) and on a Dask LocalCluster: data-parallel gradients
over shards add up to PyTorch's full-batch gradient."""
from __future__ import annotations

import multiprocessing
import os
import pickle
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
import torch

import symgrad as sg
from pickle_workers import shard_gradient
from symgrad.build import have_c_compiler

pytestmark = pytest.mark.skipif(not have_c_compiler(), reason="no C compiler")

RNG = np.random.default_rng(11)
N, D, H = 32, 5, 4
X = RNG.standard_normal((N, D)).astype(np.float32)
Y = RNG.standard_normal((N, 1)).astype(np.float32)
W = (RNG.standard_normal((D, H)) * 0.5).astype(np.float32)
V = (RNG.standard_normal((H, 1)) * 0.5).astype(np.float32)
OFFSET = np.linspace(-0.5, 0.5, H).astype(np.float32)     # captured in the graph
SHARDS = 4


def model(T, x, y, w, v):
    """Summed squared error of a tanh layer: shard gradients add up to the full one."""
    pred = T.tanh(x @ w + T.tensor(OFFSET)) @ v
    return ((pred - y) ** 2).sum()


def torch_grads(x=X, y=Y):
    w, v = torch.tensor(W, requires_grad=True), torch.tensor(V, requires_grad=True)
    loss = model(torch, torch.tensor(x), torch.tensor(y), w, v)
    loss.backward()
    return float(loss.detach()), [w.grad.numpy(), v.grad.numpy()]


def make(rows=N // SHARDS):
    x = sg.Variable(shape=(rows, D), name="x")
    y = sg.Variable(shape=(rows, 1), name="y")
    w = sg.Variable(shape=(D, H), name="w", requires_grad=True)
    v = sg.Variable(shape=(H, 1), name="v", requires_grad=True)
    return sg.compile([x, y, w, v], model(sg, x, y, w, v))


@pytest.fixture(scope="module")
def fn():
    return make()


def _shard(k):
    rows = slice(k * (N // SHARDS), (k + 1) * (N // SHARDS))
    return X[rows], Y[rows], W, V


def _check_sum(results):
    value, grads = torch_grads()
    assert os.getpid() not in {pid for *_, pid in results}     # computed in the workers
    np.testing.assert_allclose(sum(r[0] for r in results), value, rtol=1e-5)
    for j in range(2):
        np.testing.assert_allclose(sum(r[1][j] for r in results), grads[j], rtol=1e-4, atol=1e-5)


def test_a_pickled_function_round_trips_with_the_same_library(fn):
    again = pickle.loads(pickle.dumps(fn))
    assert again.forward._build.key == fn.forward._build.key        # found in the cache, not rebuilt
    rows = slice(0, N // SHARDS)
    value, grads = torch_grads(X[rows], Y[rows])
    got_value, got_grads = again.value_and_grad(X[rows], Y[rows], W, V)
    np.testing.assert_allclose(got_value, value, rtol=1e-5)
    np.testing.assert_allclose(again(X[rows], Y[rows], W, V), value, rtol=1e-5)
    for g, e in zip(got_grads, grads):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6)
    for g, e in zip(again.backward(X[rows], Y[rows], W, V), grads):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6)


def test_pickling_keeps_wrt_and_in_place_updates():
    x = sg.Variable(shape=(3,), name="x")
    w = sg.Variable(shape=(3,), name="w", requires_grad=True)
    loss = (x * w).sum()
    fn = sg.compile([x, w], loss, wrt=[w], updates={w: w * 0.5 + x})
    again = pickle.loads(pickle.dumps(fn))
    xv, wv = np.array([1.0, 2.0, 3.0], np.float32), np.array([4.0, 5.0, 6.0], np.float32)
    assert float(again(xv, wv)) == pytest.approx(32.0)
    np.testing.assert_allclose(wv, [3.0, 4.5, 6.0])               # updated in place
    (g,) = again.backward(xv, wv)
    np.testing.assert_allclose(g, xv)


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_process_pools_of_every_start_method_compute_shard_gradients(fn, method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"{method} is not available here")
    fn(X[:N // SHARDS], Y[:N // SHARDS], W, V)          # loaded in the parent before forking
    blob = pickle.dumps(fn)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context(method)) as pool:
        results = list(pool.map(shard_gradient, [(blob, _shard(k)) for k in range(SHARDS)], timeout=240))
    _check_sum(results)


_FRESH = """
import pickle, sys
import numpy as np
f = pickle.loads(open(sys.argv[1], "rb").read())
x = np.ones((8, 5), np.float32); y = np.zeros((8, 1), np.float32)
w = np.full((5, 4), 0.1, np.float32); v = np.full((4, 1), 0.2, np.float32)
value, grads = f.value_and_grad(x, y, w, v)
print(repr(float(value)), f.forward._build.compiled)
"""


def test_unpickling_where_the_cache_is_empty_rebuilds(fn, tmp_path):
    (tmp_path / "fn.pkl").write_bytes(pickle.dumps(fn))
    env = dict(os.environ, SYMGRAD_BUILD_DIR=str(tmp_path / "empty"),
               PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([sys.executable, "-c", _FRESH, str(tmp_path / "fn.pkl")], capture_output=True,
                          text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr
    value, compiled = done.stdout.split()
    w, v = torch.full((5, 4), 0.1), torch.full((4, 1), 0.2)
    expected = model(torch, torch.ones(8, 5), torch.zeros(8, 1), w, v)
    assert float(value) == pytest.approx(float(expected), rel=1e-5)
    assert compiled == "True"                           # built afresh in the empty cache


def test_a_pickle_of_another_format_is_refused():
    from symgrad.compile import rebuild_compiled
    with pytest.raises(ValueError, match="another version"):
        rebuild_compiled({"format": 99})


def test_dask_local_cluster_data_parallel_gradient_equals_the_full_gradient(fn):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        remote = client.scatter(fn, broadcast=True)
        futures = [client.submit(shard_gradient, (remote, _shard(k))) for k in range(SHARDS)]
        results = client.gather(futures)
    _check_sum(results)


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_jit_functions_pickle_and_run_in_worker_processes(method):
    """An sg.jit function (and one of a transform) pickles by its function and options; in a
    worker it traces again and gives the parent's numbers."""
    import concurrent.futures
    import multiprocessing
    import pickle

    import jit_pickle_workers as J
    r = np.random.default_rng(3)
    w, x = r.normal(size=(5, 3)), r.normal(size=(7, 5))
    tw = torch.tensor(w, requires_grad=True)                  # the oracle: torch in float64
    t_loss = torch.sum(torch.tanh(torch.tensor(x) @ tw) ** 2)
    t_loss.backward()
    want = [t_loss.detach().numpy(), tw.grad.numpy()]
    back = pickle.loads(pickle.dumps(J.jitted_grad))
    assert back.traces == 0 and np.allclose(back(w, x), want[1], rtol=1e-10)
    ctx = multiprocessing.get_context(method)
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
        got = [pool.submit(J.call, f, w, x).result(timeout=180) for f in (J.jitted_loss, J.jitted_grad)]
    for g, wv in zip(got, want):
        np.testing.assert_allclose(g, wv, rtol=1e-10)
