"""Every environment setting symgrad reads, in one table, and a typed accessor for each.

This is the only module that reads `SYMGRAD_*` variables (and the few others symgrad
consults: `CC`, `XDG_CACHE_HOME`, `CUDA_HOME`, `CUDA_PATH`). Settings are read when they are
used, not frozen at import: a program (or a test's `monkeypatch.setenv`) that changes one
sees the new value at its next compile. Reading one costs a dictionary lookup; parsing a
list is cached on the raw string.

Settings marked `keyed` change the generated code or how it is built, so they are part of
the graph index key (`index_key`): a graph compiled under other settings is compiled again,
not looked up. The table is `SETTINGS`; `describe()` prints it.
"""
from __future__ import annotations

import functools
import os
import shlex
from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    name: str               # the environment variable
    default: str            # what an unset variable means (as text; "" is "nothing")
    meaning: str
    keyed: bool = False     # part of the graph index key


SETTINGS = {s.name: s for s in (
    # the passes over the graph (symgrad/passes)
    Setting("SYMGRAD_DISABLE_PASSES", "", "comma-separated passes not to run: a rewrite's name, a "
            "phase (fold, canonicalize, specialize) or algebra (canonicalize and specialize)", True),
    Setting("SYMGRAD_PRINT_AFTER", "", "comma-separated passes after which the graph of each compiled "
            "function is printed to stderr, as sg.debugprint(fn, after=...) prints it (the graph index "
            "is not consulted meanwhile, so that every graph is lowered)"),
    # the schedule and the generated C
    Setting("SYMGRAD_FUSE_NESTS", "1", "0: loop nests over the same loops are not merged into one pass",
            True),
    Setting("SYMGRAD_COLUMN_SUMS", "1", "0: sums over leading dims are not done in memory order", True),
    Setting("SYMGRAD_OPENMP", "1", "0: no OpenMP (every loop runs on one thread)", True),
    Setting("SYMGRAD_THREADS", "", "how many threads a compiled loop runs on (else OMP_NUM_THREADS, else "
            "the CPUs this process may use); sg.set_num_threads changes it at run time"),
    Setting("OMP_NUM_THREADS", "", "the thread count, when SYMGRAD_THREADS is not set"),
    Setting("SYMGRAD_OWN_THREADS", "1", "0: the parallel loops run on the process's libgomp (whose "
            "policy is whoever loaded it first) instead of symgrad's own pool", True),
    Setting("SYMGRAD_VECTOR_MATH", "1", "0: no libmvec (exp, log, tanh, ... stay scalar libm calls)",
            True),
    Setting("SYMGRAD_BLAS", "1", "0: matrix products run our loop nests, not numpy's OpenBLAS", True),
    Setting("SYMGRAD_GEMM_PATHS", "1", "0: every matrix product calls the BLAS dispatch, none symgrad's own "
            "register tiles (few terms into a large C) or the swapped x @ W.T (few rows)", True),
    Setting("SYMGRAD_MATMUL_OBJECT", "1", "0: each module compiles the matrix-product helpers itself "
            "rather than linking the object compiled once per build cache", True),
    Setting("SYMGRAD_OPT", "", "the C optimisation flags, replacing -O3 (large loops) / -O2 (small)",
            True),
    Setting("SYMGRAD_CC", "", "the C compiler (else CC, else cc)", True),
    Setting("CC", "", "the C compiler, when SYMGRAD_CC is not set", True),
    # CUDA
    Setting("SYMGRAD_NVCC", "", "nvcc's path (else nvcc on PATH, CUDA_HOME, CUDA_PATH, /usr/local/cuda)",
            True),
    Setting("SYMGRAD_CUDA_ARCH", "", "nvcc's -arch: sm_80, 80, native, ... (empty: sm_90)", True),
    Setting("SYMGRAD_CUDA_CCBIN", "", "the host compiler nvcc uses (-ccbin)", True),
    Setting("SYMGRAD_NVCC_FLAGS", "", "more nvcc flags, split as a shell would", True),
    Setting("CUDA_HOME", "", "a CUDA toolkit to look for nvcc in"),
    Setting("CUDA_PATH", "", "a CUDA toolkit to look for nvcc in, after CUDA_HOME"),
    Setting("SYMGRAD_CUDA_SYNC", "", "set (not 0): wait after each kernel, to name the one that faulted; "
            "read by the generated CUDA when it runs"),
    # calling, the build cache, eager backward, logging
    Setting("SYMGRAD_FAST_CALL", "1", "0: every call takes the general path (no generated caller, no "
            "output pool, no remembered pointers)"),
    Setting("SYMGRAD_BUILD_DIR", "", "the build cache (else build/cache/ in a source checkout, apart from "
            "setuptools' build/lib, else "
            "$XDG_CACHE_HOME/symgrad or ~/.cache/symgrad)"),
    Setting("XDG_CACHE_HOME", "", "where the build cache goes outside a source checkout (else ~/.cache)"),
    Setting("SYMGRAD_CACHE_MAX_BYTES", "", "a limit on the build cache's size in bytes (suffixes k, M, G "
            "allowed): after each compile, the least recently used entries are pruned to stay under it"),
    Setting("SYMGRAD_EAGER_BACKEND", "c", "where Variable.backward() runs: c (compiled) or interp (numpy)"),
    Setting("SYMGRAD_LOG", "", "set (not 0): log compile and cache-load times (read at import)"),
)}


def _env(name: str) -> str | None:
    """The one place os.environ is read: only for names in the table."""
    if name not in SETTINGS:
        raise KeyError(f"{name} is not in symgrad.config.SETTINGS")
    return os.environ.get(name)


def raw(name: str) -> str:
    """The setting's text: the environment's value, else its default."""
    value = _env(name)
    return SETTINGS[name].default if value is None else value


def _on(name: str) -> bool:
    """Switches that are on unless set to 0 (an empty value counts as not 0, as it always has)."""
    return raw(name) != "0"


def _set(name: str) -> bool:
    """Switches that are off unless set to something other than 0."""
    value = raw(name)
    return bool(value) and not value.startswith("0")


@functools.lru_cache(maxsize=64)
def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


# --- the accessors --------------------------------------------------------------------------

def disabled_passes() -> tuple[str, ...]:
    """SYMGRAD_DISABLE_PASSES as names (symgrad.passes checks them)."""
    return _names(raw("SYMGRAD_DISABLE_PASSES"))


def print_after() -> tuple[str, ...]:
    """SYMGRAD_PRINT_AFTER as names (symgrad.passes checks them)."""
    return _names(raw("SYMGRAD_PRINT_AFTER"))


def fuse_nests() -> bool:
    """SYMGRAD_FUSE_NESTS: merge loop nests over the same loops (on unless 0)."""
    return _on("SYMGRAD_FUSE_NESTS")


def column_sums() -> bool:
    """SYMGRAD_COLUMN_SUMS: sums over leading dims in memory order (on unless 0)."""
    return _on("SYMGRAD_COLUMN_SUMS")


def threads() -> int | None:
    """SYMGRAD_THREADS, else OMP_NUM_THREADS (its first number): the threads a loop runs on;
    None: as many as the CPUs the process may use."""
    for name in ("SYMGRAD_THREADS", "OMP_NUM_THREADS"):
        text = raw(name).split(",")[0].strip()
        if text:
            try:
                n = int(text)
            except ValueError:
                raise ValueError(f"{name}={raw(name)!r}: expected a whole number of threads") from None
            if n < 1:
                raise ValueError(f"{name}={raw(name)!r}: expected at least 1 thread")
            return n
    return None


def gemm_paths() -> bool:
    """SYMGRAD_GEMM_PATHS: products that qualify take symgrad's own paths (on unless 0)."""
    return _on("SYMGRAD_GEMM_PATHS")


def matmul_object() -> bool:
    """SYMGRAD_MATMUL_OBJECT: modules link the product helpers compiled once (on unless 0)."""
    return _on("SYMGRAD_MATMUL_OBJECT")


def own_threads() -> bool:
    """SYMGRAD_OWN_THREADS: parallel loops run on symgrad's pool (on unless 0)."""
    return _on("SYMGRAD_OWN_THREADS")


def openmp() -> bool:
    """SYMGRAD_OPENMP: compile with -fopenmp (on unless 0)."""
    return _on("SYMGRAD_OPENMP")


def vector_math() -> bool:
    """SYMGRAD_VECTOR_MATH: use libmvec where the platform has it (on unless 0)."""
    return _on("SYMGRAD_VECTOR_MATH")


def blas() -> bool:
    """SYMGRAD_BLAS: large matrix products call numpy's OpenBLAS (on unless 0)."""
    return _on("SYMGRAD_BLAS")


def opt_flags() -> list[str] | None:
    """SYMGRAD_OPT split into flags, or None when unset (the size of the loops decides)."""
    value = _env("SYMGRAD_OPT")
    return None if value is None else value.split()


def c_compiler() -> str:
    """SYMGRAD_CC, else CC, else cc."""
    return raw("SYMGRAD_CC") or raw("CC") or "cc"


def nvcc() -> str:
    """SYMGRAD_NVCC, or "" when nvcc is to be searched for."""
    return raw("SYMGRAD_NVCC")


def cuda_homes() -> list[str]:
    """The toolkits named by CUDA_HOME and CUDA_PATH, in that order."""
    return [h for h in (raw("CUDA_HOME"), raw("CUDA_PATH")) if h]


def cuda_arch() -> str:
    """SYMGRAD_CUDA_ARCH, stripped; "" means the default architecture."""
    return raw("SYMGRAD_CUDA_ARCH").strip()


def cuda_ccbin() -> str:
    """SYMGRAD_CUDA_CCBIN, or "" for nvcc's own choice."""
    return raw("SYMGRAD_CUDA_CCBIN")


def nvcc_flags() -> list[str]:
    """SYMGRAD_NVCC_FLAGS, split as a shell would."""
    return shlex.split(raw("SYMGRAD_NVCC_FLAGS"))


def cuda_sync() -> bool:
    """As the generated CUDA reads it: set, and not starting with 0."""
    return _set("SYMGRAD_CUDA_SYNC")


def fast_call() -> bool:
    """SYMGRAD_FAST_CALL: a generated caller, output pool, remembered pointers (on unless 0)."""
    return _on("SYMGRAD_FAST_CALL")


def build_dir() -> str:
    """SYMGRAD_BUILD_DIR, or "" for the default place."""
    return raw("SYMGRAD_BUILD_DIR")


def xdg_cache_home() -> str:
    """XDG_CACHE_HOME, or ""."""
    return raw("XDG_CACHE_HOME")


def cache_max_bytes() -> int | None:
    """SYMGRAD_CACHE_MAX_BYTES as a number of bytes, or None (no limit). A value that is not a
    size raises, naming the variable."""
    return parse_bytes(raw("SYMGRAD_CACHE_MAX_BYTES"), "SYMGRAD_CACHE_MAX_BYTES") if \
        raw("SYMGRAD_CACHE_MAX_BYTES") else None


def parse_bytes(text: str, what: str) -> int:
    """'1000', '64k', '200M', '2G' (powers of 1024) as a number of bytes."""
    text = str(text).strip()
    scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(text[-1:].lower(), 1)
    digits = text[:-1] if scale != 1 else text
    try:
        value = int(float(digits) * scale)
    except ValueError:
        raise ValueError(f"{what} must be a size in bytes (like 500000000, 200M or 2G), "
                         f"got {text!r}") from None
    if value < 0:
        raise ValueError(f"{what} must not be negative, got {text!r}")
    return value


def eager_backend() -> str:
    """SYMGRAD_EAGER_BACKEND: "c" (the default) or "interp"."""
    return raw("SYMGRAD_EAGER_BACKEND") or "c"


def log() -> bool:
    """SYMGRAD_LOG: log compile and cache-load times (set, and not 0)."""
    return _set("SYMGRAD_LOG")


# --- what the table is used for ----------------------------------------------------------------

def index_key() -> str:
    """The keyed settings as they are now, for the graph index key. The raw text, unset and
    empty alike: equal settings spelled differently only cost a compile."""
    return ";".join(f"{s.name}={_env(s.name) or ''}" for s in SETTINGS.values() if s.keyed)


def describe() -> str:
    """The table as text: name, default, whether keyed, meaning."""
    width = max(len(n) for n in SETTINGS)
    rows = [f"{s.name:<{width}}  {s.default or '-':<3} {'keyed' if s.keyed else '     '}  {s.meaning}"
            for s in SETTINGS.values()]
    return "\n".join(rows)
