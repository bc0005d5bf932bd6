"""The matrix products that do not go to BLAS as one call, chosen at code generation from the
static shapes and layout (symgrad/blas.py, product_path): a product of few terms into a large C
runs as symgrad's own register tiles (templates/c/paths.j2, sg_gemm_tiles, with non-temporal
stores and strips that start aligned), compiled into an object of their own that only a module
taking them links; x @ W.T with few rows runs as its transpose (sg_matmul_swapped, into a
scratch written into C transposed). Each is checked against numpy in float64, in both element
types, on one and on two threads, at shapes with rows and columns left over after the tiles,
and with its gradients; and a module whose products do not qualify has none of that code."""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

import symgrad as sg
from symgrad import blas, build
from symgrad.blas import ProductPath, product_path
from symgrad.dims import Dim
from test_reliability_cache import run_script

pytestmark = pytest.mark.skipif(not build.have_c_compiler(), reason="no C compiler")

CT = {"float32": "float", "float64": "double"}


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    before = sg.get_num_threads()
    sg.set_num_threads(request.param)
    yield request.param
    sg.set_num_threads(before)


def _tol(dtype, k):
    return (2e-5 if dtype == "float32" else 1e-12) * max(1.0, np.sqrt(k))


def _calls(fn, name, dtype):
    """The calls of sg_<name>_<type> in fn's generated code (not its definition)."""
    head = f"{name}_{CT[dtype]}("
    return [line for line in fn.source.splitlines() if head in line and "void " not in line]


# --- the decision, from shapes and strides ---------------------------------------------------

def test_the_path_is_decided_from_the_shapes_and_the_layout():
    n2 = blas.BLAS_SMALL_K_BYTES // 4 // 2048          # C of exactly BLAS_SMALL_K_BYTES: 2048 x n2
    # A.T @ B (A stored k x m: a_rs 1, a_cs m), B plain: the tiles, B's rows n apart
    assert product_path(2048, 64, 2048, 1, 2048, 2048, 1, 4) == ProductPath("tiles", 0, 2048)
    assert product_path(2048, 64, n2, 64, 1, n2, 1, 4) == ProductPath("tiles", 0, n2)
    assert product_path(2048, 64, n2 - 1, 64, 1, n2 - 1, 1, 4) is None           # C under the size
    assert product_path(2048, blas.BLAS_SMALL_K + 1, 2048, 1, 2048, 2048, 1, 4) is None  # more terms
    assert product_path(2048, 64, 2048, 64, 1, 1, 64, 4) is None                  # B transposed
    assert product_path(2048, 64, 2048, 64, 1, 4096, 1, 4) == ProductPath("tiles", 0, 4096)  # B's rows apart
    assert product_path(11, 64, 1 << 20, 64, 1, 1 << 20, 1, 4) is None            # rows under a tile
    assert product_path(1 << 16, 32, 15, 32, 1, 15, 1, 8) is None                 # under two vectors' bytes
    assert product_path(1 << 16, 32, 16, 32, 1, 16, 1, 8) == ProductPath("tiles", 0, 16)
    assert product_path(1 << 16, 33, 16, 33, 1, 16, 1, 8) is None                 # doubles: at most 32 terms
    assert product_path(1 << 16, 64, 31, 64, 1, 31, 1, 4) is None
    # x @ W.T (W stored n x k: b_rs 1, b_cs k): swapped, with few rows and more columns than rows
    assert product_path(64, 2048, 2048, 2048, 1, 1, 2048, 4) == ProductPath("swapped", 2048, 2048)
    assert product_path(64, 512, 256, 600, 1, 1, 520, 4) == ProductPath("swapped", 600, 520)
    assert product_path(64, 512, 256, 600, 1, 1, 520, 8) is None                  # doubles: no
    assert product_path(32, 512, 512, 512, 1, 1, 512, 4) == ProductPath("swapped", 512, 512)   # BLAS_SWAP_MIN
    assert product_path(32, 512, 511, 512, 1, 1, 512, 4) is None                  # under it
    assert product_path(blas.BLAS_SWAP_ROWS + 1, 2048, 2048, 2048, 1, 1, 2048, 4) is None
    assert product_path(64, 2048, 64, 2048, 1, 1, 2048, 4) is None                # no more columns than rows
    assert product_path(64, 2048, 2048, 2048, 1, 2048, 1, 4) is None              # B plain: BLAS is fine
    assert product_path(64, 2048, 2048, 1, 64, 1, 2048, 4) is None                # A transposed
    assert product_path(8, 100, 1000, 100, 1, 1, 100, 4) is None                  # under OpenBLAS's small limit
    # a small MLP's products (batch 64, width 256): none (its first compile waits for no path's object)
    assert product_path(64, 256, 256, 256, 1, 1, 256, 4) is None                  # g @ W.T
    assert product_path(256, 64, 256, 1, 256, 256, 1, 4) is None                  # x.T @ g
    # symbolic sizes: sg_matmul decides when it runs
    assert product_path(Dim.named("n") * 2048, 64, 2048, 64, 1, 2048, 1, 4) is None


# --- the numbers ----------------------------------------------------------------------------

def _small_k_shapes(dtype):
    """(M, K, N): C of at least BLAS_SMALL_K_BYTES, K at most BLAS_SMALL_K (floats)."""
    item = np.dtype(dtype).itemsize
    n_min = blas.BLAS_SMALL_K_BYTES // item
    return [(1024, blas.BLAS_SMALL_K * 4 // item, n_min // 1024),       # whole tiles
            (777, 31, n_min // 777 + 45),                   # rows and columns left over
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
        assert len(_calls(f, "sg_gemm_tiles", dtype)) == 1
        want = (a.T if a_transposed else a).astype(np.float64) @ b.astype(np.float64)
        got = f(a, b)
        assert got.shape == (m, n)
        np.testing.assert_allclose(got, want, rtol=0, atol=_tol(dtype, k))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_tiles_into_an_intermediate_and_a_batch(threads, dtype):
    """C a scratch buffer read by the next loop (tanh), and a batch of such products (C at an
    offset per product) whose rows are odd (C's rows unaligned to the vector: plain stores)."""
    rng = np.random.default_rng(4)
    item = np.dtype(dtype).itemsize
    n = blas.BLAS_SMALL_K_BYTES // item // 256 + 3
    a = rng.standard_normal((3, 30, 256)).astype(dtype)
    b = rng.standard_normal((3, 30, n)).astype(dtype)
    A = sg.Variable(shape=a.shape, dtype=dtype, name="a")
    B = sg.Variable(shape=b.shape, dtype=dtype, name="b")
    f = sg.compile([A, B], sg.tanh(sg.transpose(A, 1, 2) @ B) * 2)
    assert len(_calls(f, "sg_gemm_tiles", dtype)) == 1
    want = np.tanh(np.swapaxes(a.astype(np.float64), 1, 2) @ b.astype(np.float64)) * 2
    np.testing.assert_allclose(f(a, b), want, rtol=0, atol=_tol(dtype, 30))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_x_times_w_transposed_with_few_rows(threads, dtype):
    rng = np.random.default_rng(1)
    for m, k, n in [(2, 4096, 1100), (33, 300, 1001), (blas.BLAS_SWAP_ROWS, 1024, blas.BLAS_SWAP_ROWS + 1),
                    (64, 300, 2000), (5, 60, 30000)]:
        a = rng.standard_normal((m, k)).astype(dtype)
        w = rng.standard_normal((n, k)).astype(dtype)
        A = sg.Variable(shape=a.shape, dtype=dtype, name="a")
        W = sg.Variable(shape=w.shape, dtype=dtype, name="w")
        got = sg.compile([A, W], sg.tanh(A @ W.T))
        assert len(_calls(got, "sg_matmul_swapped", dtype)) == (dtype == "float32")      # (floats alone)
        want = np.tanh(a.astype(np.float64) @ w.astype(np.float64).T)
        np.testing.assert_allclose(got(a, w), want, rtol=0, atol=_tol(dtype, k))


def test_batched_x_times_w_transposed(threads):
    rng = np.random.default_rng(2)
    a = rng.standard_normal((4, 64, 512)).astype(np.float32)
    w = rng.standard_normal((4, 384, 512)).astype(np.float32)
    A, W = sg.Variable(shape=a.shape, name="a"), sg.Variable(shape=w.shape, name="w")
    f = sg.compile([A, W], A @ sg.transpose(W, 1, 2))
    assert len(_calls(f, "sg_matmul_swapped", "float32")) == 1
    want = a.astype(np.float64) @ np.swapaxes(w.astype(np.float64), 1, 2)
    np.testing.assert_allclose(f(a, w), want, rtol=0, atol=_tol("float32", 512))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_linear_layers_gradients_over_a_small_batch(threads, dtype):
    """x @ W over a batch of 64, 1024 wide: the weight gradient (x.T @ g, 64 terms into a 4 MB
    C) takes the tiles and the input gradient (g @ W.T, 64 rows) the swapped product (in float;
    in double, with 64 terms, neither)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 1024)).astype(dtype)
    w = (rng.standard_normal((1024, 1024)) / 32).astype(dtype)
    X = sg.Variable(shape=x.shape, dtype=dtype, name="x", requires_grad=True)
    W = sg.Variable(shape=w.shape, dtype=dtype, name="w", requires_grad=True)
    fn = sg.compile([X, W], sg.sum(sg.tanh(X @ W) ** 2))
    value, (gx, gw) = fn.value_and_grad(x, w)
    grad_source = fn.value_and_grad
    assert len(_calls(grad_source, "sg_gemm_tiles", dtype)) == (dtype == "float32")
    assert len(_calls(grad_source, "sg_matmul_swapped", dtype)) == (dtype == "float32")
    t = np.tanh(x.astype(np.float64) @ w)
    g = 2 * t * (1 - t ** 2)
    np.testing.assert_allclose(value, (t ** 2).sum(), rtol=1e-5)
    np.testing.assert_allclose(gw, x.T.astype(np.float64) @ g, rtol=0, atol=_tol(dtype, 64))
    np.testing.assert_allclose(gx, g @ w.T.astype(np.float64), rtol=0, atol=_tol(dtype, 1024))


def test_without_the_paths_the_products_call_sg_matmul_with_the_same_numbers(monkeypatch):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((64, 1024)).astype(np.float32)
    w = (rng.standard_normal((1024, 1024)) / 32).astype(np.float32)
    X = sg.Variable(shape=x.shape, name="x", requires_grad=True)
    W = sg.Variable(shape=w.shape, name="w", requires_grad=True)
    loss = sg.sum(sg.tanh(X @ W) ** 2)
    on = sg.compile([X, W], loss).value_and_grad
    monkeypatch.setenv("SYMGRAD_GEMM_PATHS", "0")
    off = sg.compile([X, W], loss).value_and_grad
    assert not _calls(off, "sg_gemm_tiles", "float32") and not _calls(off, "sg_matmul_swapped", "float32")
    assert "sg_gemm_tiles" not in off.source
    (v1, g1), (v0, g0) = on(x, w), off(x, w)
    np.testing.assert_allclose(v1, v0, rtol=1e-5)
    for a, b, k in zip(g1, g0, (1024, 64)):
        np.testing.assert_allclose(a, b, rtol=0, atol=2 * _tol("float32", k))


# --- what a module compiles and links --------------------------------------------------------

PROGRAM = """
import json, sys
import numpy as np
import symgrad as sg
batch, width, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(0)
x = sg.Variable(shape=(batch, width), name="x", requires_grad=path == "swapped")
w = sg.Variable(shape=(width, width), name="w", requires_grad=True)
fn = sg.compile([x, w], sg.sum(sg.tanh(x @ w) ** 2))
xv = rng.standard_normal((batch, width)).astype(np.float32)
wv = (rng.standard_normal((width, width)) / width ** 0.5).astype(np.float32)
value, grads = fn.value_and_grad(xv, wv)
t = np.tanh(xv.astype(np.float64) @ wv)
g = 2 * t * (1 - t ** 2)
want = [g @ wv.T.astype(np.float64), xv.T.astype(np.float64) @ g] if path == "swapped" else [xv.T @ g]
got = grads if path == "swapped" else [grads]
ok = all(np.allclose(a, b, rtol=0, atol=1e-3) for a, b in zip(got, want))
name = "sg_gemm_tiles_float(" if path == "tiles" else "sg_matmul_swapped_float("
source = fn.value_and_grad.source
print(json.dumps({"ok": ok, "linked": 'visibility("hidden"))) void ' + name in source,
                  "compiled": "static void " + name in source}))
"""


def _objects(cache):
    return sorted(p.name for p in (cache / "objects").rglob("*.o")) if (cache / "objects").exists() else []


def test_only_a_module_that_takes_a_path_links_its_object(tmp_path):
    cache = tmp_path / "cache"

    def run(*args, **kw):
        return json.loads(run_script(tmp_path, PROGRAM, *args, **kw).splitlines()[-1])
    # batch 256, width 256: no product takes a path: none of their code, in the module or the cache
    assert run(256, 256, "tiles", build_dir=cache) == {"ok": True, "linked": False, "compiled": False}
    assert run(256, 256, "swapped", build_dir=cache) == {"ok": True, "linked": False, "compiled": False}
    assert _objects(cache) == ["matmul_float.o"]
    # batch 64, width 1024: the weight gradient takes the tiles, compiled once, linked (x takes
    # no gradient: no product runs swapped)
    assert run(64, 1024, "tiles", build_dir=cache) == {"ok": True, "linked": True, "compiled": False}
    assert _objects(cache) == ["matmul_float.o", "tiles_float.o"]
    # batch 32, width 512: the input gradient runs swapped (and the weight gradient's C is small)
    assert run(32, 512, "swapped", build_dir=cache) == {"ok": True, "linked": True, "compiled": False}
    assert _objects(cache) == ["matmul_float.o", "swapped_float.o", "tiles_float.o"]
    # no objects: the module compiles the paths itself
    other = tmp_path / "other"
    for args in ((64, 1024, "tiles"), (32, 512, "swapped")):
        assert run(*args, build_dir=other, env={"SYMGRAD_MATMUL_OBJECT": "0"}) == \
            {"ok": True, "linked": False, "compiled": True}
    assert _objects(other) == []


_FAILING_TILES = """
import subprocess, tempfile
from pathlib import Path
from symgrad.backends import objects
real = objects._start_compile

def failing(what):             # the tiles' compiler fails, a while after the module's starts
    if what[0] != "tiles":
        return real(what)
    proc = subprocess.Popen(["sh", "-c", "sleep 0.3; echo no; exit 1"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    return proc, Path(tempfile.mkdtemp())
objects._start_compile = failing
"""


def test_a_module_whose_tiles_object_fails_compiles_the_tiles_itself(tmp_path):
    out = run_script(tmp_path, _FAILING_TILES + PROGRAM, 64, 1024, "tiles", build_dir=tmp_path / "cache")
    assert json.loads(out.splitlines()[-1]) == {"ok": True, "linked": False, "compiled": True}
    assert _objects(tmp_path / "cache") == ["matmul_float.o"]


_EXPORT_MAIN = """
#include <stdio.h>
#include <stdlib.h>
#include "paths.h"
int main(void) {
    enum { B = 64, D = 1024 };
    float *x = malloc(sizeof(float) * B * D), *w = malloc(sizeof(float) * D * D);
    float *gx = malloc(sizeof(float) * B * D), *gw = malloc(sizeof(float) * D * D), value;
    for (int i = 0; i < B * D; i++) x[i] = (float)((i * 7919) % 101) / 101.0f - 0.5f;
    for (long long i = 0; i < D * D; i++) w[i] = ((float)((i * 104729) % 211) / 211.0f - 0.5f) / 16.0f;
    if (paths_value_and_grad(x, w, &value, gx, gw, NULL)) return 1;
    double sx = 0, sw = 0;
    for (int i = 0; i < B * D; i++) sx += gx[i] * (double)(i % 13);
    for (int i = 0; i < D * D; i++) sw += gw[i] * (double)(i % 17);
    printf("%.9g %.9g %.9g\\n", value, sx, sw);
    return 0;
}
"""


def test_an_export_with_both_paths_builds_alone_and_computes_the_same(tmp_path):
    B, D = 64, 1024
    idx = np.arange(B * D)
    x = (((idx * 7919) % 101) / 101.0 - 0.5).astype(np.float32).reshape(B, D)
    jdx = np.arange(D * D)
    w = ((((jdx * 104729) % 211) / 211.0 - 0.5) / 16.0).astype(np.float32).reshape(D, D)
    X = sg.Variable(shape=(B, D), name="x", requires_grad=True)
    W = sg.Variable(shape=(D, D), name="w", requires_grad=True)
    fn = sg.compile([X, W], sg.sum(sg.tanh(X @ W) ** 2))
    fn.export(tmp_path, prefix="paths", blas=False)
    source = (tmp_path / "paths.c").read_text()
    assert "static void sg_gemm_tiles_float(" in source and "sg_matmul_swapped_float(64" in source
    (tmp_path / "main.c").write_text(_EXPORT_MAIN)
    subprocess.run([build.c_compiler(), "-std=c99", "-O2", "-o", "main", "main.c", "paths.c", "-lm"],
                   cwd=tmp_path, check=True, capture_output=True, timeout=120)
    done = subprocess.run(["./main"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    value, sx, sw = (float(v) for v in done.stdout.split())
    want_value, (gx, gw) = fn.value_and_grad(x, w)
    np.testing.assert_allclose(value, want_value, rtol=1e-4)
    np.testing.assert_allclose(sx, (gx.astype(np.float64) * (idx.reshape(B, D) % 13)).sum(), rtol=1e-4)
    np.testing.assert_allclose(sw, (gw.astype(np.float64) * (jdx.reshape(D, D) % 17)).sum(), rtol=1e-4)
    # with BLAS: the swapped product calls cblas_sgemm (compiled, not linked: no BLAS here)
    fn.export(tmp_path, prefix="withblas", blas=True)
    subprocess.run([build.c_compiler(), "-std=c99", "-O2", "-march=native", "-c", "withblas.c"], cwd=tmp_path,
                   check=True, capture_output=True, timeout=120)
    nm = subprocess.run(["nm", "withblas.o"], cwd=tmp_path, capture_output=True, text=True).stdout
    assert "cblas_sgemm" in nm, nm
