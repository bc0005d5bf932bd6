"""This machine's limits, measured in the same run: memory bandwidth (a STREAM-like triad in C
with OpenMP) and the float32 GEMM rate (numpy matmul), plus the thread settings each library
runs with (none are overridden)."""
from __future__ import annotations

import ctypes
import os
import platform
import subprocess
import tempfile
import time

import numpy as np

TRIAD_C = r"""
#include <stdlib.h>
#include <omp.h>

/* a[i] = b[i] + s*c[i] over three arrays of n doubles; the best time of `reps` sweeps.
   Arrays are first touched in parallel, with the same static schedule as the sweeps. */
double triad_best(long n, int reps, int *threads)
{
    double *a = aligned_alloc(64, n * sizeof(double));
    double *b = aligned_alloc(64, n * sizeof(double));
    double *c = aligned_alloc(64, n * sizeof(double));
    if (!a || !b || !c) return -1.0;
    #pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++) { a[i] = 0.0; b[i] = 1.0; c[i] = 2.0; }
    const double s = 3.0;
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t = omp_get_wtime();
        #pragma omp parallel for schedule(static)
        for (long i = 0; i < n; i++) a[i] = b[i] + s * c[i];
        t = omp_get_wtime() - t;
        if (t < best) best = t;
    }
    double check = a[n / 2] + a[n - 1];
    *threads = omp_get_max_threads();
    free(a); free(b); free(c);
    return check == 14.0 ? best : -2.0;
}
"""


def stream_triad(mb_per_array=64, reps=10):
    """Best-of-`reps` triad bandwidth in GB/s (STREAM's counting: 3 arrays moved per sweep,
    no write-allocate traffic). Returns a dict."""
    cc = os.environ.get("CC", "cc")
    with tempfile.TemporaryDirectory(prefix="bench-triad-") as d:
        src, lib = os.path.join(d, "triad.c"), os.path.join(d, "triad.so")
        with open(src, "w") as f:
            f.write(TRIAD_C)
        cmd = [cc, "-O3", "-march=native", "-fopenmp", "-fPIC", "-shared", "-o", lib, src]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        so = ctypes.CDLL(lib)
        so.triad_best.restype = ctypes.c_double
        so.triad_best.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
        n = mb_per_array * 2 ** 20 // 8
        threads = ctypes.c_int(0)
        best = so.triad_best(n, reps, ctypes.byref(threads))
    if best <= 0:
        raise RuntimeError(f"triad failed ({best})")
    moved = 3 * 8 * n
    return {"GB_per_s": moved / best / 1e9, "best_s": best, "bytes_per_sweep": moved,
            "arrays_MB": mb_per_array, "reps": reps, "omp_threads": threads.value,
            "compile": " ".join(cmd[:5])}


def _product_rate(product, n, reps):
    """GFLOP/s of `product()` (an n x n x n float32 matrix product), best of `reps` after one
    warm-up."""
    product()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        product()
        best = min(best, time.perf_counter() - t)
    return {"GFLOP_per_s": 2.0 * n ** 3 / best / 1e9, "best_s": best, "n": n, "reps": reps}


def gemm_rate(n=2048, reps=5, threads=None):
    """float32 numpy matmul n x n (on at most `threads` threads, where given: numpy's OpenBLAS
    started before the run's thread settings, so only its per-thread count caps it)."""
    from symgrad.blas import with_threads
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), np.float32)
    if threads:
        return with_threads(threads, _product_rate, lambda: np.matmul(a, b, out=out), n, reps)
    return _product_rate(lambda: np.matmul(a, b, out=out), n, reps)


def gemm_rate_torch(n=2048, reps=5, threads=None):
    """The same product with torch.mm (MKL / oneDNN): the floor takes the better of the two, since
    a floor that one library beats is no floor."""
    import torch
    if threads:
        torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g)
    b = torch.randn(n, n, generator=g)
    out = torch.empty(n, n)
    return _product_rate(lambda: torch.mm(a, b, out=out), n, reps)


def _openblas_threads():
    """numpy's OpenBLAS thread count, asked of the loaded library itself."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line}
    except OSError:
        return None
    for p in paths:
        try:
            lib = ctypes.CDLL(p)
        except OSError:
            continue
        for sym in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
                    "openblas_get_num_threads", "scipy_openblas_get_num_threads"):
            fn = getattr(lib, sym, None)
            if fn is not None:
                fn.restype = ctypes.c_int
                return fn()
    return None


def thread_settings(available):
    """What each library will use (defaults, not overridden)."""
    info = {"cpu_count": os.cpu_count(),
            "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "cpu": platform.processor() or platform.machine()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                      "XLA_FLAGS", "SYMGRAD_OPENMP", "PYTENSOR_FLAGS")
           if k in os.environ}
    info["env"] = env
    np.dot(np.ones((64, 64)), np.ones((64, 64)))        # make sure OpenBLAS is loaded
    info["numpy"] = f"OpenBLAS threads {_openblas_threads()}"
    omp = env.get("OMP_NUM_THREADS", f"OpenMP default ({os.cpu_count()})")
    info["symgrad"] = ("OpenMP off (SYMGRAD_OPENMP=0)" if env.get("SYMGRAD_OPENMP") == "0"
                       else f"OpenMP on, threads {omp}")
    names = {n for n, cls, _ in available if cls is not None}
    if "torch" in names:
        import torch
        info["torch"] = f"intra-op {torch.get_num_threads()}, inter-op {torch.get_num_interop_threads()}"
    if "jax" in names:
        import jax
        info["jax"] = f"devices {jax.devices()}, XLA CPU thread pool default (all cores)"
    if "pytensor" in names:
        import warnings

        import pytensor
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")     # "could not link to a BLAS": becomes a note
            info["pytensor"] = (f"openmp={pytensor.config.openmp}, blas__ldflags="
                                f"{pytensor.config.blas__ldflags!r}")
        info["notes"] = [f"pytensor: {str(w.message).splitlines()[0]}" for w in caught
                         if "BLAS" in str(w.message)]
    return info
