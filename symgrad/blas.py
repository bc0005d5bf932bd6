"""The OpenBLAS that numpy ships: found once, linked by the generated C (symgrad/build.py),
and told how many threads numpy's own products use where symgrad runs them (the eager
values and the interpreter): one threading policy for compiled and eager products alike."""
from __future__ import annotations

import ctypes
import functools
from pathlib import Path
from typing import NamedTuple

from symgrad import config
from symgrad.dtypes import ITEMSIZE

# A BLAS product is shared out in blocks, one single-threaded call each, from this many
# multiply-adds (~100 us on one core): waking the pool and waiting for the slowest block
# costs tens of microseconds, and each block packs the shared operand again. At 1M (a 128x64
# by 64x128 product, 25 us) two threads took longer than one.
BLAS_SHARE_MIN = 1 << 22
# OpenBLAS runs a product of up to a million multiply-adds with its small-matrix kernels, which
# read A and B in place (about 100 GFLOP/s on one core here, single precision); one just over
# that is packed first (80-88 GFLOP/s: 128x64 by 64x128 took 25 us, its two 64-row halves 20).
# A product of up to BLAS_SMALL_SPLIT times the limit, with B plain (the small kernels for a
# transposed B are slow), runs as that many blocks of rows (or columns) each under the limit.
BLAS_SMALL_MAX = 1000000
BLAS_SMALL_SPLIT = 4
# A product of at most BLAS_SMALL_K terms into a C of at least BLAS_SMALL_K_BYTES, B's rows plain,
# runs as symgrad's own register tiles (templates/c/paths.j2, sg_gemm_tiles): A and B read in
# place, C written once with non-temporal stores. OpenBLAS packs, zeroes C (beta = 0 is a pass
# of its own) and adds into it: three passes of C over the memory bus, which with few terms is
# what the product costs. One core, a compiled X.T @ G, inputs not in cache, ms (OpenBLAS's in
# brackets): K = 64: 2048x2048 5.6-6.0 (7.2-8.0), 1024x1024 1.45-1.7 (1.74-1.78), 512x512 (1 MB)
# 0.35 (0.35); K = 128: 2048x2048 11.6 (12.6), 1024x1024 2.9-3.3 (2.8-2.9); K = 256: 1024x1024
# 5.5 (5.5-6.0), 784x512 2.08 (2.02). Under 1 MB, in cache, the tiles lose (128x256 by 256x128:
# 0.105 against 0.086).
# In double precision (the same bytes a row of terms: K <= 32) 2048x32 by 32x2048 took 8.2 ms
# (9.0), and with 64 terms as long as OpenBLAS (2048x64x1024, 8.0 against 7.9).
BLAS_SMALL_K = 64               # (float; K * itemsize at most 4 * BLAS_SMALL_K)
BLAS_SMALL_K_BYTES = 2 << 20
TILE_MIN_ROWS, TILE_MIN_BYTES = 12, 128      # a tile's rows, and the bytes of its two vectors
# x @ W.T with at most BLAS_SWAP_ROWS rows, more columns than rows and at least BLAS_SWAP_MIN
# multiply-adds runs as (W @ x.T).T (templates/c/paths.j2, sg_matmul_swapped): OpenBLAS's
# product of few rows with B transposed is slower. x @ W.T, ms, 1 thread (2 threads), OpenBLAS's
# in brackets: 16x512x256 0.072 (0.128), 32x512x512 0.215 (0.284), 64x512x256 0.226 (0.257),
# 64x1024x1024 1.68 (2.23), 64x2048x2048 7.5 (8.7-9.3; 2 threads 4.1 (5.4)), 96x1024x768 2.08
# (2.44); with 128 rows 0.94-1.12 times as fast (128x256x256 0.207 against 0.195), so no. Under
# BLAS_SWAP_MIN the saving is under 20 us a call (64x256x256 0.100-0.117 against 0.110-0.127),
# less than what compiling the path's object adds to a graph's first compile in a new cache
# (0.05 s of a compiler, on cores the module's and the product object's compiles fill). In
# double precision it lost (64x2048x1024 8.85 against 7.9-8.1): float products alone.
BLAS_SWAP_ROWS = 96
BLAS_SWAP_MIN = 1 << 23


class ProductPath(NamedTuple):
    """How a product other than sg_matmul's is called: `kind` "tiles" (sg_gemm_tiles, B's rows
    `ldb` apart) or "swapped" (sg_matmul_swapped, A's rows `lda` apart and B = W.T's columns
    `ldb`)."""
    kind: str
    lda: int
    ldb: int


def matmul_path(e: dict) -> ProductPath | None:
    """The path of the matmul kernel whose extra is `e` (codegen.schedule: its shapes, strides
    and element type), or None (also with SYMGRAD_GEMM_PATHS=0)."""
    if e["ctype"] not in ("float", "double") or not config.gemm_paths():
        return None
    return product_path(e["M"], e["K"], e["N"], e["a_rs"], e["a_cs"], e["b_rs"], e["b_cs"],
                        ITEMSIZE[e["ctype"]])


def product_path(m, k, n, a_rs, a_cs, b_rs, b_cs, itemsize) -> ProductPath | None:
    """The path of C[m][n] = A[m][k] @ B[k][n], A and B read through the strides given (those
    sg_matmul takes), where one of symgrad's own beats sg_matmul's (its OpenBLAS call), else
    None: decided from the static shapes and layout at code generation, so that a module
    compiles and links the code of the paths it takes and no other. The layout tests are
    sg_matmul's (templates/c/helpers.h.j2): a size-1 dim's stride is the one BLAS expects."""
    if any(type(v) is not int for v in (m, k, n, a_rs, a_cs, b_rs, b_cs)) or min(m, k, n) < 1:
        return None                     # (symbolic sizes, symgrad.dims: sg_matmul decides when it runs)
    ldb_n = n if k == 1 else b_rs
    b_plain = (b_cs == 1 or n == 1) and ldb_n >= n
    if (b_plain and k * itemsize <= 4 * BLAS_SMALL_K and m * n * itemsize >= BLAS_SMALL_K_BYTES
            and m >= TILE_MIN_ROWS and n * itemsize >= TILE_MIN_BYTES):
        return ProductPath("tiles", 0, ldb_n)
    lda_n = k if m == 1 else a_rs
    ldb_t = k if n == 1 else b_cs
    a_plain = (a_cs == 1 or k == 1) and lda_n >= k
    b_trans = (b_rs == 1 or k == 1) and ldb_t >= k
    if (itemsize == 4 and a_plain and b_trans and not b_plain and 1 < m <= BLAS_SWAP_ROWS and n > m
            and m * n * k >= BLAS_SWAP_MIN):
        return ProductPath("swapped", lda_n, ldb_t)
    return None


@functools.lru_cache(maxsize=None)
def numpy_blas() -> tuple[str, ctypes.CDLL] | None:
    """The OpenBLAS that numpy ships (its path and the library, loaded), or None."""
    import glob

    import numpy as np
    root = Path(np.__file__).resolve().parent
    candidates = sorted(glob.glob(str(root.parent / "numpy.libs" / "*openblas*.so*")) +
                        glob.glob(str(root / ".dylibs" / "*openblas*.dylib")))
    for path in candidates:
        try:
            return path, ctypes.CDLL(path)
        except OSError:
            continue
    return None


@functools.lru_cache(maxsize=None)
def _threads_local():
    """numpy's OpenBLAS's per-thread thread count setter (returns the count before), or None."""
    found = numpy_blas()
    f = getattr(found[1], "openblas_set_num_threads_local", None) if found else None
    if f is not None:
        f.argtypes, f.restype = [ctypes.c_int], ctypes.c_int
    return f


def serial(fn, *args):
    """`fn(*args)`, a numpy matrix product, with numpy's OpenBLAS on the calling thread alone
    (its own setting put back after): a product too small for symgrad to share among threads
    (BLAS_SHARE_MIN) is not shared by OpenBLAS's pool either, whose threads would otherwise
    wake for it and spin against symgrad's (an eager training step on two busy cores took
    14-26 ms so, 3.9 ms on one thread)."""
    return with_threads(1, fn, *args)


def with_threads(n: int, fn, *args):
    """`fn(*args)` with numpy's OpenBLAS on at most `n` threads from the calling thread (its own
    setting put back after)."""
    local = _threads_local()
    if local is None:
        return fn(*args)
    before = local(n)
    try:
        return fn(*args)
    finally:
        local(before)
