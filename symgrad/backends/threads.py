"""symgrad's thread pool (templates/c/runtime.c): one small library, compiled once into the
build cache, that every compiled C module links against for its parallel loops, so that how
many threads run and how they wait is symgrad's to say, whatever else the process has loaded.

    sg.set_num_threads(n), sg.get_num_threads()

SYMGRAD_THREADS (else OMP_NUM_THREADS) sets the count at start; SYMGRAD_OWN_THREADS=0 leaves
the loops to the process's libgomp instead."""
from __future__ import annotations

import ctypes
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from symgrad import config
from symgrad.build import _publish, build_dir, c_compiler, cache_key, templates_dir

MAX_THREADS = 256                # runtime.c's SG_RT_MAX_THREADS
_requested: list[int] = []       # set_num_threads before the pool was loaded


def _source() -> str:
    return (templates_dir() / "c" / "runtime.c").read_text()


def _wanted() -> bool:
    return config.openmp() and config.own_threads() and sys.platform.startswith("linux")


@functools.lru_cache(maxsize=None)
def _location() -> tuple[str, str, list, Path]:
    """The pool's source, compiler, flags and library path in the build cache."""
    source, cc = _source(), c_compiler()
    flags = ["-O2", "-fPIC", "-shared", "-pthread", "-std=gnu11", "-Wl,-z,defs"]
    key = cache_key(source, cc, flags)
    return source, cc, flags, build_dir() / "runtime" / key / f"libsgrt-{key[:16]}.so"


_lock = threading.Lock()
_compiling: list = []       # the pool's compile started by `prepare`: [(process, temporary folder, pid)]


def _start_compile():
    source, cc, flags, path = _location()
    folder = path.parent
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    (tmp / "runtime.c").write_text(source)
    try:
        proc = subprocess.Popen([cc, *flags, f"-Wl,-soname,{path.name}", "-o", str(tmp / path.name),
                                 str(tmp / "runtime.c")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return proc, tmp


def prepare() -> None:
    """Start compiling the pool in the background when the cache lacks it, so that in a new
    cache its compile overlaps the generation of the first module (which links against it)."""
    if not _wanted() or runtime.cache_info().currsize:
        return
    with _lock:
        if not _compiling and not _location()[3].is_file():
            try:
                _compiling.append((*_start_compile(), os.getpid()))
            except OSError:
                pass                    # runtime() tries again, and says what failed


@functools.lru_cache(maxsize=None)
def runtime() -> tuple[Path, ctypes.CDLL] | None:
    """The pool's library (compiled on first use, then found in the cache), loaded; None where
    the loops use libgomp (no OpenMP, SYMGRAD_OWN_THREADS=0, or not Linux: the modules rely on
    GNU ld's --as-needed to leave libgomp out)."""
    if not _wanted():
        return None
    path = _location()[3]
    with _lock:
        started = _compiling.pop() if _compiling else None
    if started is not None and started[2] != os.getpid():
        started = None          # a forked child: the compiler is its parent's to wait for
    if started is not None or not path.is_file():
        proc, tmp = started[:2] if started is not None else _start_compile()
        try:
            from symgrad.build import wait_for
            output = wait_for(proc)
            if proc.returncode != 0:
                from symgrad.build import log
                log.warning("symgrad: the thread pool did not compile (%s); loops use libgomp", output)
                return None
            _publish(tmp, path.parent)          # published whole, or another process was first
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    lib = ctypes.CDLL(str(path))
    n = _requested[-1] if _requested else config.threads()
    if n is not None:
        lib.sg_rt_set_threads(min(int(n), MAX_THREADS))
    return path, lib


def expected_link_flags() -> tuple[tuple[str, ...], bool]:
    """(flags, pending): `link_flags()` without waiting for the pool's compile in flight, and
    whether it is in flight (a module then compiles while it does and links after: `runtime()`
    says whether the pool is there)."""
    if runtime.cache_info().currsize or not _wanted():
        return link_flags(), False
    with _lock:
        pending = bool(_compiling) and _compiling[-1][2] == os.getpid()
    if not pending:
        return link_flags(), False
    return _flags(_location()[3]), True


def _flags(path: Path) -> tuple[str, ...]:
    return ("-Wl,--as-needed", "-DSG_OWN_THREADS", f"-L{path.parent}", f"-l:{path.name}",
            f"-Wl,-rpath,{path.parent}")


def link_flags() -> tuple[str, ...]:
    """What a module that has parallel loops links with: the pool, and --as-needed so that
    -fopenmp's libgomp, from which it then takes nothing, is not loaded with it."""
    rt = runtime()
    if rt is None:
        return ()
    return _flags(rt[0])


def set_num_threads(n: int) -> None:
    """How many threads a compiled loop (and a large matrix product) runs on, from now on."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: expected a positive whole number of threads, got {n!r}")
    n = min(n, MAX_THREADS)
    _requested.append(n)
    del _requested[:-1]
    rt = runtime()
    if rt is not None:
        rt[1].sg_rt_set_threads(n)


def get_num_threads() -> int:
    """Returns the number of threads a compiled loop runs on (`sg.set_num_threads` sets it).

    PyTorch: `torch.get_num_threads`."""
    rt = runtime()
    if rt is not None:
        return int(rt[1].sg_rt_get_threads())
    if _requested:
        return _requested[-1]
    if config.threads():
        return config.threads()
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

