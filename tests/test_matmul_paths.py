"""The matrix products that do not go to BLAS as one call (templates/c/helpers.h.j2): a product
of few terms into a large C runs as symgrad's own register tiles (sg_gemm_small_k, with
non-temporal stores and strips that start aligned), and x @ W.T with few rows runs as its
transpose (sg_gemm_swapped, into a scratch written into C transposed). Each is checked against
numpy in float64, in both element types, on one and on two threads, at shapes with rows and
columns left over after the tiles, and with its gradients."""
from __future__ import annotations

import numpy as np
import pytest

import symgrad as sg
from symgrad import blas


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    before = sg.get_num_threads()
    sg.set_num_threads(request.param)
    yield request.param
    sg.set_num_threads(before)


def _tol(dtype, k):
    return (2e-5 if dtype == "float32" else 1e-12) * max(1.0, np.sqrt(k))


def _small_k_shapes(dtype):
    """(M, K, N): C of at least BLAS_SMALL_K_BYTES, K at most BLAS_SMALL_K."""
    item = np.dtype(dtype).itemsize
    n_min = blas.BLAS_SMALL_K_BYTES // item
    return [(1024, blas.BLAS_SMALL_K, n_min // 1024),       # whole tiles
            (777, 33, n_min // 777 + 45),                   # rows and columns left over
            (13, 1, n_min // 13 + 7),                       # one term
            (100, 17, n_min // 100 + 3000)]                 # few rows: shared by columns


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("a_transposed", [False, True], ids=["A", "A.T"])
def test_a_product_of_few_terms_into_a_large_c(threads, dtype, a_transposed):
    rng = np.random.default_rng(0)
    for m, k, n in _small_k_shapes(dtype):
        a = rng.standard_normal((k, m) if a_transposed else (m, k)).astype(dtype)
        b = rng.standard_normal((k, n)).astype(dtype)
        A = sg.Variable(shape=a.shape, dtype=dtype, name="a")
        B = sg.Variable(shape=b.shape, dtype=dtype, name="b")
        f = sg.compile([A, B], (A.T if a_transposed else A) @ B)
        want = (a.T if a_transposed else a).astype(np.float64) @ b.astype(np.float64)
        got = f(a, b)
        assert got.shape == (m, n)
        np.testing.assert_allclose(got, want, rtol=0, atol=_tol(dtype, k))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_x_times_w_transposed_with_few_rows(threads, dtype):
    rng = np.random.default_rng(1)
    for m, k, n in [(2, 1000, 700), (33, 130, 1001), (blas.BLAS_SWAP_ROWS, 256, blas.BLAS_SWAP_ROWS + 1),
                    (64, 300, 2000), (5, 7, 30000)]:
        a = rng.standard_normal((m, k)).astype(dtype)
        w = rng.standard_normal((n, k)).astype(dtype)
        A = sg.Variable(shape=a.shape, dtype=dtype, name="a")
        W = sg.Variable(shape=w.shape, dtype=dtype, name="w")
        got = sg.compile([A, W], sg.tanh(A @ W.T))(a, w)
        want = np.tanh(a.astype(np.float64) @ w.astype(np.float64).T)
        np.testing.assert_allclose(got, want, rtol=0, atol=_tol(dtype, k))


def test_batched_x_times_w_transposed(threads):
    rng = np.random.default_rng(2)
    a = rng.standard_normal((4, 128, 128)).astype(np.float32)
    w = rng.standard_normal((4, 256, 128)).astype(np.float32)
    A, W = sg.Variable(shape=a.shape, name="a"), sg.Variable(shape=w.shape, name="w")
    got = sg.compile([A, W], A @ sg.transpose(W, 1, 2))(a, w)
    want = a.astype(np.float64) @ np.swapaxes(w.astype(np.float64), 1, 2)
    np.testing.assert_allclose(got, want, rtol=0, atol=_tol("float32", 128))


def test_a_linear_layers_gradients_over_a_small_batch(threads):
    """x @ W + b over a batch of 64, 1024 wide: the weight gradient (x.T @ g, 64 terms into a
    4 MB C) takes the tiles and the input gradient (g @ W.T, 64 rows) the swapped product."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 1024)).astype(np.float32)
    w = (rng.standard_normal((1024, 1024)) / 32).astype(np.float32)
    X = sg.Variable(shape=x.shape, name="x", requires_grad=True)
    W = sg.Variable(shape=w.shape, name="w", requires_grad=True)
    fn = sg.compile([X, W], sg.sum(sg.tanh(X @ W) ** 2))
    value, (gx, gw) = fn.value_and_grad(x, w)
    t = np.tanh(x.astype(np.float64) @ w)
    g = 2 * t * (1 - t ** 2)
    np.testing.assert_allclose(value, (t ** 2).sum(), rtol=1e-5)
    np.testing.assert_allclose(gw, x.T.astype(np.float64) @ g, rtol=0, atol=_tol("float32", 64))
    np.testing.assert_allclose(gx, g @ w.T.astype(np.float64), rtol=0, atol=_tol("float32", 1024))
