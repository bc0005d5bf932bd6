"""Compiling generated C with the system compiler and loading it with cffi, through a
content-addressed cache: an entry's key hashes the source, the compiler, its flags and
symgrad's version. Entries are built in a private temporary directory and published by an
atomic rename, so processes compiling the same source at once need no lock; an entry whose
library is missing, truncated or altered is rebuilt."""
from __future__ import annotations

import atexit
import ctypes
import functools
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
import weakref
from pathlib import Path

import cffi

log = logging.getLogger("symgrad")
if os.environ.get("SYMGRAD_LOG"):
    logging.basicConfig()
    log.setLevel(logging.INFO)


class CompileError(RuntimeError):
    """The C (or CUDA) compiler rejected generated code, or is missing."""

    def __init__(self, message, output="", source_path=None):
        super().__init__(message + (f"\nsource: {source_path}" if source_path else "") +
                         (f"\ncompiler output:\n{output}" if output else ""))
        self.output = output
        self.source_path = source_path


def build_dir() -> Path:
    env = os.environ.get("SYMGRAD_BUILD_DIR")
    if env:
        return Path(env)
    top = Path(__file__).resolve().parent.parent
    if (top / "pyproject.toml").exists() and (top / "templates").is_dir():
        return top / "build"
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "symgrad"


def c_compiler() -> str:
    return os.environ.get("SYMGRAD_CC") or os.environ.get("CC") or "cc"


def c_flags() -> list[str]:
    flags = ["-O3", "-march=native", "-fno-math-errno", "-fPIC", "-shared", "-std=c11"]
    if os.environ.get("SYMGRAD_OPENMP", "1") != "0":
        flags.append("-fopenmp")
    return flags


VECTOR_MATH = ("exp", "log", "sin", "cos", "tanh", "pow")


@functools.lru_cache(maxsize=None)
def vector_math_flags() -> tuple[str, ...]:
    """glibc's vector math library (libmvec), when the platform has one: the templates then
    declare SIMD variants of exp, log, tanh... so loops calling them vectorise (up to 7x
    faster than scalar libm here). NaN and Inf keep their IEEE behaviour: no fast-math.
    SYMGRAD_VECTOR_MATH=0 turns it off."""
    import platform
    if os.environ.get("SYMGRAD_VECTOR_MATH", "1") == "0" or platform.machine() != "x86_64":
        return ()
    import ctypes.util
    name = ctypes.util.find_library("mvec")
    if not name:
        return ()
    try:
        lib = ctypes.CDLL(name)
        getattr(lib, "_ZGVdN8v_tanhf")
    except (OSError, AttributeError):
        return ()
    return ("-DSG_VECTOR_MATH", "-lmvec")


@functools.lru_cache(maxsize=None)
def blas_flags() -> tuple[str, ...]:
    """Link flags for the OpenBLAS that numpy ships, if it can be found: symgrad adds no
    dependency of its own for matrix products. Empty (our own loops are used) otherwise."""
    if os.environ.get("SYMGRAD_BLAS", "1") == "0":
        return ()
    import glob

    import numpy as np
    root = Path(np.__file__).resolve().parent
    candidates = sorted(glob.glob(str(root.parent / "numpy.libs" / "*openblas*.so*")) +
                        glob.glob(str(root / ".dylibs" / "*openblas*.dylib")))
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix, int_type in (("scipy_cblas_", "64_", "int64_t"), ("cblas_", "64_", "int64_t"),
                                         ("scipy_cblas_", "", "int"), ("cblas_", "", "int")):
            try:
                getattr(lib, f"{prefix}sgemm{suffix}")
            except AttributeError:
                continue
            folder, name = os.path.split(path)
            return (f"-L{folder}", f"-l:{name}", f"-Wl,-rpath,{folder}", "-DSG_HAVE_BLAS",
                    f"-DSG_SGEMM={prefix}sgemm{suffix}", f"-DSG_DGEMM={prefix}dgemm{suffix}",
                    f"-DSG_BLASINT={int_type}")
    return ()


@functools.lru_cache(maxsize=None)
def compiler_version(cc: str) -> str:
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CompileError(f"no working C compiler: could not run {cc!r} ({e}). Install gcc or clang, "
                           f"or set SYMGRAD_CC to one") from None
    return out.stdout.splitlines()[0] if out.stdout else cc


def have_c_compiler() -> bool:
    try:
        compiler_version(c_compiler())
        return True
    except CompileError:
        return False


def cache_key(source: str, cc: str, flags: list[str], extra: str = "") -> str:
    from symgrad import __version__
    h = hashlib.sha256()
    for part in (source, cc, compiler_version(cc), " ".join(flags), __version__, extra):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


class Library:
    """A loaded shared library and the one entry point we call."""

    def __init__(self, path: Path, source_path: Path, symbol: str):
        self.path, self.source_path, self.symbol = path, source_path, symbol
        self.ffi = cffi.FFI()
        self.ffi.cdef(f"int {symbol}(void **args);")
        self.lib = self.ffi.dlopen(str(path))
        self.entry = getattr(self.lib, symbol)


_loaded: dict[str, Library] = {}
_lock = threading.Lock()
_pending: "weakref.WeakSet[Build]" = weakref.WeakSet()


@atexit.register
def _finish_pending():
    """Publish builds that were started but never called, so no half-made entry is left."""
    for b in list(_pending):
        try:
            b.result()
        except Exception:  # noqa: BLE001  (exiting: a failed build just leaves no entry)
            pass


def _entry_ok(entry: Path) -> bool:
    lib, digest = entry / "kernel.so", entry / "kernel.so.sha256"
    try:
        return hashlib.sha256(lib.read_bytes()).hexdigest() == digest.read_text().strip()
    except OSError:
        return False


def _publish(tmp: Path, entry: Path):
    try:
        os.rename(tmp, entry)
    except OSError:              # another process published first: theirs is as good as ours
        shutil.rmtree(tmp, ignore_errors=True)


class Build:
    """A compile started in the background; `result()` waits for it and loads the library."""

    def __init__(self, source: str, symbol: str, suffix=".c", compiler=None, flags=None, link=()):
        self.source, self.symbol = source, symbol
        self.cc = compiler or c_compiler()
        self.flags = flags if flags is not None else c_flags()
        self.link = list(link)
        self.key = cache_key(source, self.cc, self.flags + self.link)
        self.retried = False
        self.root = build_dir()
        self.entry = self.root / self.key[:2] / self.key
        self.source_path = self.entry / f"kernel{suffix}"
        self.proc = None
        self.started = time.perf_counter()
        if self.key in _loaded:
            return
        if self.entry.exists():
            if _entry_ok(self.entry):
                return
            self._discard_broken()
        self._start(suffix)

    def _discard_broken(self):
        log.info("symgrad: rebuilding the broken cache entry %s", self.entry)
        trash = self.entry.with_name(f"{self.key}.broken-{os.getpid()}-{threading.get_ident()}")
        try:
            os.rename(self.entry, trash)
            shutil.rmtree(trash, ignore_errors=True)
        except OSError:
            pass

    def _start(self, suffix):
        self.entry.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.key}-", dir=self.entry.parent))
        (self.tmp / f"kernel{suffix}").write_text(self.source)
        cmd = [self.cc, *self.flags, "-o", str(self.tmp / "kernel.so"), str(self.tmp / f"kernel{suffix}")]
        cmd += self.link
        if suffix == ".c":
            cmd.append("-lm")
        try:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            _pending.add(self)
        except OSError as e:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise CompileError(f"could not run the compiler {self.cc!r}: {e}") from None

    def result(self) -> Library:
        with _lock:
            if self.key in _loaded:
                return _loaded[self.key]
        if self.proc is not None and self.proc.returncode is None:
            output, _ = self.proc.communicate()
            _pending.discard(self)
            if self.proc.returncode != 0:
                failed = self.root / "failed" / f"{self.key}{self.source_path.suffix}"
                failed.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(self.tmp / self.source_path.name, failed)
                shutil.rmtree(self.tmp, ignore_errors=True)
                raise CompileError(f"{self.cc} failed on generated code (exit {self.proc.returncode})",
                                   output, failed)
            digest = hashlib.sha256((self.tmp / "kernel.so").read_bytes()).hexdigest()
            (self.tmp / "kernel.so.sha256").write_text(digest)
            _publish(self.tmp, self.entry)
            log.info("symgrad: compiled %s in %.0f ms -> %s", self.symbol,
                     1e3 * (time.perf_counter() - self.started), self.source_path)
        try:
            lib = Library(self.entry / "kernel.so", self.source_path, self.symbol)
        except OSError as e:
            # Unloadable although its digest matched: rebuild once, synchronously.
            if self.retried:
                raise CompileError(f"the compiled library cannot be loaded: {e}", "",
                                   self.source_path) from None
            self.retried = True
            self._discard_broken()
            self._start(self.source_path.suffix)
            return self.result()
        with _lock:
            _loaded.setdefault(self.key, lib)
        if self.proc is None:
            log.info("symgrad: loaded %s from the cache in %.1f ms", self.symbol,
                     1e3 * (time.perf_counter() - self.started))
        return _loaded[self.key]
