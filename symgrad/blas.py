"""The OpenBLAS that numpy ships: found once, linked by the generated C (symgrad/build.py),
and told how many threads numpy's own products use where symgrad runs them (the eager
values and the interpreter): one threading policy for compiled and eager products alike."""
from __future__ import annotations

import ctypes
import functools
from pathlib import Path

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
# A product of at most this many terms (K) with B's rows plain runs as symgrad's own register
# tiles instead (templates/c/helpers.h.j2, sg_gemm_small_k), which read A and B in place and
# store C once: OpenBLAS's packing, its beta = 0 pass over C and its adding into C are what a
# product of few terms costs (a weight gradient, X.T @ G over a batch). One core, operands
# not in cache, ms: 2048x64 by 64x2048 6.5 against OpenBLAS's 7.6, 3.3 against 4.3 on two;
# 1024x64 by 64x1024 1.43 against 1.67; 784x256 by 256x512 2.05 against 2.16; 1024x256 by
# 256x1024 even (6.0); 64x2048 by 2048x2048 twice OpenBLAS's time (K too large to keep in place).
BLAS_SMALL_K = 256
# C of at least this many bytes is written by sg_gemm_small_k with non-temporal stores (its lines
# not read into the cache first): 1024x1024x64 1.43 against 1.61 ms, 2048x2048x64 6.5 against 8.4;
# 784x512 (1.6 MB) the same either way, 512x512 (1 MB) 5% slower.
BLAS_STREAM_BYTES = 2 << 20


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
