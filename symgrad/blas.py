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
