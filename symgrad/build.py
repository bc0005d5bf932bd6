"""Compiling generated C with the system compiler and loading it with cffi, through a
content-addressed cache: an entry's key hashes the source, the compiler, its flags and
symgrad's version. Entries are built in a private temporary directory and published by an
atomic rename, so processes compiling the same source at once need no lock; an entry whose
library is missing, truncated, altered or not the one built for its key is rebuilt. The graph
index leads from a graph straight to its entry; a record that is damaged or leads elsewhere
is ignored and rewritten. Forked children can call what their parent compiled (see fork)."""
from __future__ import annotations

import atexit
import functools
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import _cffi_backend

from symgrad import blas, config

log = logging.getLogger("symgrad")
if config.log():     # SYMGRAD_LOG: a handler of symgrad's own; the root logger is left alone
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(name)s %(levelname)s: %(message)s"))
    log.addHandler(_handler)
    log.setLevel(logging.INFO)


class CompileError(RuntimeError):
    """The C (or CUDA) compiler rejected generated code, or is missing."""

    def __init__(self, message, output="", source_path=None):
        super().__init__(message + (f"\nsource: {source_path}" if source_path else "") +
                         (f"\ncompiler output:\n{output}" if output else ""))
        self.output = output
        self.source_path = source_path


def templates_dir() -> Path:
    """The jinja2 templates: `templates/` in a source checkout, `symgrad/templates` in a wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "templates", here / "templates"):
        if (candidate / "c" / "module.c.j2").exists():
            return candidate
    raise FileNotFoundError("symgrad's templates are missing (looked beside the package)")


def build_dir() -> Path:
    env = config.build_dir()
    if env:
        return Path(env)
    top = Path(__file__).resolve().parent.parent
    if (top / "pyproject.toml").exists() and (top / "templates").is_dir():
        return top / "build" / "cache"      # (apart from setuptools' build/lib, build/bdist...)
    cache = config.xdg_cache_home() or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "symgrad"


def c_compiler() -> str:
    return config.c_compiler()


def c_flags(large: bool = False) -> list[str]:
    """Compiler flags. Shapes are static, so we know how much work a function does: large
    loops get -O3 (10-25% faster than -O2 here), small ones -O2 with the vectoriser on,
    which compiles about a third faster. No fast-math (-fno-trapping-math: floor vectorises)."""
    default = "-O3" if large else "-O2 -ftree-vectorize -fvect-cost-model=dynamic"
    flags = config.opt_flags()
    flags = default.split() if flags is None else flags
    flags += [*"-march=native -fno-math-errno -fno-trapping-math -fPIC -shared".split(), "-std=c11"]
    flags += linker_flags() + (("-fopenmp",) if config.openmp() else ())
    return flags


def wait_for(proc, timeout=120) -> str:
    """What a compiler started in the background printed, once it has finished (killed if it
    runs past `timeout` seconds)."""
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
    return output


@functools.lru_cache(maxsize=None)
def linker_flags() -> tuple[str, ...]:
    """gold where binutils has it: it links a module in half the time of the default linker
    (20 against 40 ms for a small MLP's, a tenth of its cold compile)."""
    return ("-fuse-ld=gold",) if shutil.which("ld.gold") else ()


@functools.lru_cache(maxsize=None)
def vector_math_flags() -> tuple[str, ...]:
    """glibc's vector math library (libmvec), when the platform has one: the templates then
    declare SIMD variants of exp, log, tanh... so loops calling them vectorise (up to 7x
    faster than scalar libm here). NaN and Inf keep their IEEE behaviour: no fast-math.
    SYMGRAD_VECTOR_MATH=0 turns it off. (The check is for tanhf's variant: tanh, erf and log1p
    came into libmvec together, in glibc 2.35; exp, log, sin, cos and pow before.)"""
    import platform
    if not config.vector_math() or platform.machine() != "x86_64":
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
    found = blas.numpy_blas() if config.blas() else None
    if found is None:
        return ()
    path, lib = found
    for prefix, suffix, int_type in (("scipy_cblas_", "64_", "int64_t"), ("cblas_", "64_", "int64_t"),
                                     ("scipy_cblas_", "", "int"), ("cblas_", "", "int")):
        if not hasattr(lib, f"{prefix}sgemm{suffix}"):
            continue
        folder, name = os.path.split(path)
        # One pool of threads: symgrad's OpenMP threads share out a large product and each
        # calls BLAS single-threaded, so BLAS's own pool never competes with OpenMP's (it
        # needs OpenBLAS's per-thread thread count; older ones keep their own pool).
        local = [f"-DSG_BLAS_THREADS_LOCAL={f}" for f in ("openblas_set_num_threads_local",)
                 if hasattr(lib, f)]
        return (f"-L{folder}", f"-l:{name}", f"-Wl,-rpath,{folder}", "-DSG_HAVE_BLAS",
                f"-DSG_SGEMM={prefix}sgemm{suffix}", f"-DSG_DGEMM={prefix}dgemm{suffix}",
                f"-DSG_BLASINT={int_type}", *local)
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


@functools.lru_cache(maxsize=None)
def native_cpu() -> str:
    """What -march=native means on this machine. A build directory shared between machines
    (a network home, a restored CI cache) must not hand a library built for one CPU to
    another, where it could die on an illegal instruction."""
    import platform
    parts = [platform.machine()]
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key = line.split(":", 1)[0].strip()
                if key in ("model name", "flags", "Features", "CPU part", "vendor_id"):
                    parts.append(line.strip())
                elif not line.strip() and len(parts) > 1:
                    break                       # the first processor is enough
    except OSError:           # what the platform says (on Linux, a `uname -p` run)
        parts.append(platform.processor())
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def cache_key(source: str, cc: str, flags: list[str], extra: str = "") -> str:
    from symgrad._version import __version__
    h = hashlib.sha256()
    cpu = native_cpu() if any(f.startswith(("-march=native", "-mcpu=native", "-mtune=native"))
                              for f in flags) else ""
    for part in (source, cc, compiler_version(cc), " ".join(flags), __version__, extra, cpu):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


def _symbols(symbol) -> list[str]:
    """A library's entry points: one name, or several."""
    return [symbol] if isinstance(symbol, str) else list(symbol)


# Loading: cffi's C-level FFI (the one cffi's compiled modules use) parses the few C types we
# name with its own C parser, and `load_library` finds symbols by name with no declarations, so
# the pure-Python C parser that `cffi.FFI().cdef` needs (pycparser: 30-50 ms to import in a new
# process, most of a load from the cache) is never imported. Every entry point has one of three
# fixed signatures (templates/c/module.c.j2).
FFI = _cffi_backend.FFI()
VIEW = _cffi_backend.from_buffer             # VIEW(CHARS, array, writable): the per-call hot path
CHARS = FFI.typeof("char[]")
ENTRY_TYPE = FFI.typeof("int(*)(void **)")
BYTES_TYPE = FFI.typeof("long long(*)(void)")
BYTES_AT_TYPE = FFI.typeof("long long(*)(const int64_t *)")
_INT = FFI.typeof("int")


class Library:
    """A loaded shared library and its entry points (`symbols`: one per function the library
    holds; `entry` and `workspace_bytes` are the first's, `entry_point(symbol)` any one's).
    `ffi` makes arguments for them (`ffi.new`, `ffi.from_buffer`, `ffi.NULL`)."""

    def __init__(self, path: Path, source_path: Path, symbols):
        symbols = _symbols(symbols)
        self.path, self.source_path, self.symbol, self.symbols = path, source_path, symbols[0], symbols
        self.ffi = FFI
        self.lib = _cffi_backend.load_library(str(path), 0)      # (OSError when it does not load)
        self._points = {}
        first = self.entry_point(self.symbol)
        self.entry, self.workspace_bytes = first.entry, first.workspace_bytes
        if _forked:
            self.run_serially()

    def function(self, kind, symbol: str):
        """The library's function `symbol` of type `kind`; AttributeError when it has none."""
        return self.lib.load_function(kind, symbol)

    def entry_point(self, symbol: str) -> "EntryPoint":
        """One function of the library (what a compiled Function calls)."""
        point = self._points.get(symbol)
        if point is None:
            point = self._points[symbol] = EntryPoint(self, symbol)
        return point

    def run_serially(self):
        """Make the module's OpenMP regions run on the calling thread alone (see `_forked`).
        Modules with no parallel loops (the CUDA ones) have no such switch and need none."""
        try:
            self.lib.write_variable(_INT, "sg_serial", 1)
        except (KeyError, AttributeError):     # cffi: no such variable in the library
            pass


def _base(symbol: str) -> str:
    return symbol[:-len("_packed")] if symbol.endswith("_packed") else symbol


class EntryPoint:
    """One entry point of a loaded Library: its function and the scratch it wants as its last
    pointer (the caller's, reused)."""

    def __init__(self, library: Library, symbol: str):
        self.library, self.symbol = library, symbol
        self.ffi, self.lib, self.path, self.source_path = library.ffi, library.lib, library.path, \
            library.source_path
        self.entry = library.function(ENTRY_TYPE, symbol)
        try:
            self.workspace_bytes = int(library.function(BYTES_TYPE, f"{_base(symbol)}_workspace_bytes")())
        except AttributeError:          # a module with no scratch of ours (CUDA's has its own)
            self.workspace_bytes = 0
        # -1: symbolic sizes (symgrad.dims); the bytes at given sizes come from workspace_at
        self.workspace_at = library.function(BYTES_AT_TYPE, f"{_base(symbol)}_workspace_bytes_at") \
            if self.workspace_bytes < 0 else None

    def run_serially(self):
        self.library.run_serially()


_loaded: dict[str, Library] = {}
_lock = threading.Lock()
# Builds whose compiler was started and whose library is not published yet. Held strongly:
# a compiled function that is dropped unused still gets its library published (when a later
# build starts and finds the compiler done, or at exit), and leaves no temporary directory.
_pending: "set[Build]" = set()


def _reap():
    """Publish the pending builds whose compiler has finished."""
    for b in list(_pending):
        if b.proc is not None and b.proc.poll() is not None:
            b._finish()


@atexit.register
def _finish_pending():
    """Publish builds that were started but never called, so no half-made entry is left."""
    for b in list(_pending):
        try:
            b._finish()
        except Exception:  # noqa: BLE001  (exiting: a failed build just leaves no entry)
            pass


# --- fork ---------------------------------------------------------------------------------------
# A forked child has only the thread that forked. libgomp's thread pool does not survive that:
# the child's first parallel region waits forever for workers that are not there. And a build
# in flight belongs to the parent: its compiler is the parent's child, its temporary directory
# the parent's to publish or remove.

_forked = False        # this process was forked: its OpenMP regions must run on one thread


def _finish_before_fork():
    """Publish the builds in flight, so that the child inherits libraries it can load (a
    parent blocked on its workers would otherwise never publish what they wait for)."""
    _finish_pending()


def _after_fork_in_child():
    """Serial OpenMP from now on, in the libraries loaded and in those loaded later, and no
    claim on the parent's builds: an inherited one is adopted when used (`Build._adopt`)."""
    global _forked, _lock
    _forked = True
    _lock = threading.Lock()              # another thread of the parent may have held it
    for lib in _loaded.values():
        lib.run_serially()
    for b in _pending:                    # one the parent started as it forked (a race)
        b._finish_lock = threading.Lock()
    _pending.clear()                      # the parent's to publish; see Build._finish


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_finish_before_fork, after_in_child=_after_fork_in_child)


def _builder_pid(name: str) -> int | None:
    """The pid in a temporary build directory's name (`.<key>-<pid>-<random>`), or None."""
    parts = name[1:].split("-") if name.startswith(".") else []
    if len(parts) < 3 or not _is_cache_key(parts[0]) or not parts[1].isdigit():
        return None
    return int(parts[1])


def _is_cache_key(text: str) -> bool:
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)


def _is_symbol(text: str) -> bool:
    """A C identifier (what a compiled library's entry point may be called)."""
    return text.isascii() and text.isidentifier()


def _sweep_stale(folder: Path):
    """Remove temporary build directories left by processes that died mid-compile (killed, or
    ended with os._exit): their pid is in the name. Others' live builds are never touched."""
    try:
        names = [p for p in folder.iterdir() if p.name.startswith(".")]
    except OSError:
        return
    now = time.time()
    for p in names:
        pid = _builder_pid(p.name)
        if pid is None or pid == os.getpid():
            continue
        try:
            age = now - p.stat().st_mtime
        except OSError:
            continue
        if age > 3600 or (age > 60 and not _pid_alive(pid)):
            shutil.rmtree(p, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


LIBRARY, SEAL = "kernel.so", "kernel.key"       # (and the library's digest, LIBRARY.sha256)


def _seal_of(key: str, digest: str) -> str:
    return hashlib.sha256(f"{key}\0{digest}".encode()).hexdigest()


def _seal(folder: Path, key: str, library: str = LIBRARY):
    """Write the library's digest, and the seal that ties it to the cache key it was built
    for: a library (and its digest) moved or copied into another entry does not pass as that
    entry's, since the seal names the key and covers the digest. (`library`: the file sealed,
    the product object's too.)"""
    digest = hashlib.sha256((folder / library).read_bytes()).hexdigest()
    (folder / f"{library}.sha256").write_text(digest)
    (folder / SEAL).write_text(f"{key}\n{_seal_of(key, digest)}\n")


def _entry_ok(entry: Path, library: str = LIBRARY) -> bool:
    """The entry holds an intact library built for the key it is named by."""
    try:
        digest = hashlib.sha256((entry / library).read_bytes()).hexdigest()
        recorded = (entry / f"{library}.sha256").read_text().strip()
        key, seal = (entry / SEAL).read_text().split()
    except (OSError, ValueError):         # missing, unreadable, or not two words
        return False
    return recorded == digest and key == entry.name and seal == _seal_of(key, digest)


# Called with the key of each entry this process publishes (symgrad.cache adds its pruning).
after_publish: list = []


def touch(entry: Path):
    """Mark an entry used now (what the cache's least-recently-used pruning orders by)."""
    try:
        os.utime(entry)
    except OSError:
        pass


def remove_entry(entry: Path):
    """Take a cache entry away atomically (rename, then delete): a process reading it
    concurrently sees either the whole entry or none."""
    trash = entry.with_name(f"{entry.name}.broken-{os.getpid()}-{threading.get_ident()}")
    try:
        os.rename(entry, trash)
        shutil.rmtree(trash, ignore_errors=True)
    except OSError:
        pass


def _publish(tmp: Path, entry: Path):
    try:
        os.rename(tmp, entry)
    except OSError:              # another process published first: theirs is as good as ours
        shutil.rmtree(tmp, ignore_errors=True)


class Build:
    """A compile started in the background; `result()` waits for it and loads the library."""

    def __init__(self, source: str, symbol: str, suffix=".c", compiler=None, flags=None, link=(),
                 large=False):
        self.source = source
        self.symbols = _symbols(symbol)    # its entry points
        self.symbol = self.symbols[0]
        self.cc = compiler or c_compiler()
        self.flags = flags if flags is not None else c_flags(large)
        self.link = list(link)
        self.key = cache_key(source, self.cc, self.flags + self.link)
        self.retried = False
        self.root = build_dir()
        self.entry = self.root / self.key[:2] / self.key
        self.source_path = self.entry / f"kernel{suffix}"
        self.proc = None            # the compiler, while its library is not published
        self.owner = None           # the process that started it
        self.compiled = False       # (rather than found in the cache)
        self.error = None
        self._finish_lock = threading.Lock()
        self.started = time.perf_counter()
        _reap()
        if self.key in _loaded:
            return
        if self.entry.exists():
            if _entry_ok(self.entry):
                return
            self._discard_broken()
        self._start(suffix)

    def _discard_broken(self):
        log.info("symgrad: rebuilding the broken cache entry %s", self.entry)
        remove_entry(self.entry)

    def _start(self, suffix):
        self.entry.parent.mkdir(parents=True, exist_ok=True)
        _sweep_stale(self.entry.parent)
        self.error = None
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.key}-{os.getpid()}-", dir=self.entry.parent))
        (self.tmp / f"kernel{suffix}").write_text(self.source)
        cmd = self._command(suffix)
        try:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        except OSError as e:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise CompileError(f"could not run the compiler {self.cc!r}: {e}") from None
        self.owner = os.getpid()
        _pending.add(self)

    def _command(self, suffix) -> list:
        cmd = [self.cc, *self.flags, "-o", str(self.tmp / LIBRARY), str(self.tmp / f"kernel{suffix}")]
        return cmd + self.link + (["-lm"] if suffix == ".c" else [])

    def _finish(self):
        """Wait for the compiler, then publish the library, or keep the failure in `error`.
        The temporary directory is gone afterwards, whatever happened."""
        with self._finish_lock:
            if self.proc is not None and self.owner != os.getpid():
                self._adopt()
            if self.proc is None:
                return
            output, _ = self.proc.communicate()
            status, self.proc = self.proc.returncode, None
            _pending.discard(self)
            try:
                self.error = self._publish_or_fail(status, output)
            finally:
                shutil.rmtree(self.tmp, ignore_errors=True)      # already gone once published

    def _adopt(self):
        """In a forked child, a build the parent started: its compiler cannot be waited for
        here, and its temporary directory is the parent's. Take the parent's entry if it is
        published (before a fork the parent publishes what is in flight, so it normally is),
        or else compile again in a temporary directory of our own."""
        self.proc = None
        if not _entry_ok(self.entry):
            self._start(self.source_path.suffix)

    def _publish_or_fail(self, status: int, output: str):
        """Publish the library the compiler made; a CompileError when it made none."""
        library = self.tmp / LIBRARY
        if status == 0 and library.is_file():
            _seal(self.tmp, self.key)
            _publish(self.tmp, self.entry)
            self.compiled = True
            log.info("symgrad: compiled %s in %.0f ms (%s) -> %s", self.symbol,
                     1e3 * (time.perf_counter() - self.started), self.cc, self.source_path)
            touch(self.entry)
            for hook in after_publish:         # symgrad.cache's size limit
                hook(self.key)
            return None
        failed = self.root / "failed" / f"{self.key}{self.source_path.suffix}"
        failed.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.tmp / self.source_path.name, failed)
        if status != 0:
            return CompileError(f"{self.cc} failed on generated code (exit {status})", output, failed)
        return CompileError(f"the compiler {self.cc!r} exited with status 0 but produced no library "
                            f"(no {LIBRARY} written)", output, failed)

    def result(self) -> Library:
        with _lock:
            if self.key in _loaded:
                return _loaded[self.key]
        self._finish()
        if self.error is not None:
            raise self.error
        try:
            lib = Library(self.entry / LIBRARY, self.source_path, self.symbols)
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
        if not self.compiled:
            touch(self.entry)
            log.info("symgrad: loaded %s from the cache in %.1f ms", self.symbol,
                     1e3 * (time.perf_counter() - self.started))
        return _loaded[self.key]


# --- the graph index ---------------------------------------------------------------------------
# From a graph's structure (ops, shapes, dtypes, names) straight to its cache entry, so a new
# process that compiles a graph it has compiled before skips code generation altogether.

def _knobs() -> str:
    """The settings that change generated code or its build (config.SETTINGS, `keyed`)."""
    return config.index_key()


@functools.lru_cache(maxsize=None)
def _templates_digest() -> str:
    """The templates and symgrad's own Python: what turns a graph into source. Editing the
    code generator (or installing another symgrad of the same version) must not lead the index
    to libraries that the old code made."""
    h = hashlib.sha256()
    for root, suffixes in ((templates_dir(), (".j2", ".c")), (Path(__file__).resolve().parent, (".py",))):
        for path in sorted(os.path.join(d, n) for d, _, names in os.walk(root) for n in names
                           if n.endswith(suffixes)):       # (os.walk: a third of rglob's time)
            h.update(os.path.basename(path).encode())
            with open(path, "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def graph_key(structure: str, backend: str, name: str, title: str) -> str:
    from symgrad._version import __version__
    parts = (structure, backend, name, title, __version__, _templates_digest(), _knobs(), native_cpu())
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


# A record, index/<graph[:2]>/<graph>.json: {"graph": the graph key, "key": the cache key of
# its library, "symbol", "checks", "n_kernels" (of its first entry point), "entries" (a list
# of {"symbol", "checks", "n_kernels"}, one per entry point of the library), "digest": a hash
# of all the others}. The digest
# and the graph key catch a record altered or put in another's place; the entry's seal (see
# `_seal`) catches a library put in another's place. Anything that fails is ignored and the
# graph generated again, which rewrites its record.
_RECORD = {"graph": str, "key": str, "symbol": str, "checks": list, "n_kernels": int, "entries": list}
_ENTRY = {"symbol": str, "checks": list, "n_kernels": int}


def _valid_facts(facts, form) -> bool:
    if not isinstance(facts, dict):
        return False
    for name, kind in form.items():
        if not isinstance(facts.get(name), kind) or isinstance(facts[name], bool):
            return False
    return _is_symbol(facts["symbol"]) and all(isinstance(c, str) for c in facts["checks"])


def _record_digest(record: dict) -> str:
    facts = {name: value for name, value in record.items() if name != "digest"}    # (extras too)
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def _valid_record(record, graph: str) -> bool:
    """A record of the right form, written for this graph, and unaltered since."""
    return (_valid_facts(record, _RECORD) and record["graph"] == graph and _is_cache_key(record["key"])
            and len(record["entries"]) > 0 and all(_valid_facts(e, _ENTRY) for e in record["entries"])
            and record.get("digest") == _record_digest(record))


def _index_path(graph: str) -> Path:
    return build_dir() / "index" / graph[:2] / f"{graph}.json"


def index_lookup(graph: str):
    """The recorded facts of a compiled graph whose library is in the cache, or None.
    None while SYMGRAD_PRINT_AFTER is set: it prints graphs as they are lowered, which an
    index hit would skip."""
    if config.print_after():
        return None
    try:
        record = json.loads(_index_path(graph).read_text())
    except (OSError, ValueError):
        return None
    if not _valid_record(record, graph):
        return None
    entry = build_dir() / record["key"][:2] / record["key"]
    if not _entry_ok(entry):
        return None
    return dict(record, entry_path=entry)


_index_warned = False


def index_store(graph: str, facts: dict):
    """Record the library `facts["key"]` and what calling it needs for this graph. The index
    only saves time, so where it cannot be written (a file where its folder should be, no
    permission) compiling goes on without it, after one warning."""
    global _index_warned
    record = dict(facts, graph=graph)
    record["digest"] = _record_digest(record)
    path = _index_path(graph)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{graph}-")
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        os.replace(tmp, path)              # readers see the old record or the new, never half
    except OSError as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if not _index_warned:
            _index_warned = True
            log.warning("symgrad: the graph index cannot be written (%s); compiling goes on without it", e)


class CachedBuild:
    """A library found through the graph index: nothing to generate or compile."""

    def discard(self):
        """Remove this entry (its library does not load), so no one is led to it again."""
        remove_entry(self.entry)

    def __init__(self, entry: Path, symbol: str, suffix=".c"):
        self.entry = entry
        self.symbols = _symbols(symbol)
        self.symbol = self.symbols[0]
        self.key = entry.name
        self.source_path = entry / f"kernel{suffix}"
        self.started = time.perf_counter()

    def result(self) -> "Library":
        with _lock:
            if self.key in _loaded:
                return _loaded[self.key]
        loading = time.perf_counter()
        lib = Library(self.entry / LIBRARY, self.source_path, self.symbols)
        with _lock:
            _loaded.setdefault(self.key, lib)
        touch(self.entry)
        log.info("symgrad: loaded %s through the graph index in %.1f ms (dlopen %.1f ms)", self.symbol,
                 1e3 * (time.perf_counter() - self.started), 1e3 * (time.perf_counter() - loading))
        return _loaded[self.key]
