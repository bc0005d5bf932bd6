"""Code that every module calling it would otherwise compile again, compiled once per build
cache into an object file that such modules link in: the matrix-product helpers
(templates/c/helpers.h.j2's sg_matmul_float and sg_matmul_double, with their BLAS dispatch),
about half of the compiler's work on a small MLP's module.

An element type's object is compiled in the background when a graph with a product of that type
is first compiled in a cache (while its module is generated); a module links it when it is
there, and compiles the helper itself otherwise (the object did not compile). It is linked
statically into each module, so a module's library stands alone as before: the module's
`sg_serial` and OpenMP forwarders serve the object's code too."""
from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from symgrad import config
from symgrad.build import (_entry_ok, _publish, _seal, blas_flags, build_dir, c_compiler, c_flags, cache_key,
                           log, wait_for)

TYPES = ("double", "float")        # the helpers with a BLAS path: most of their compile time
_lock = threading.Lock()
_compiling: dict = {}       # {type: (process, temporary folder, pid)}: compiles `prepare` started
_failed: set = set()        # the compiler failed on these in this process: modules keep the helper


def _flags() -> list[str]:
    """A small module's flags (the object is built once, whatever module links it) and the
    BLAS definitions the helpers are compiled with; no linking."""
    return [f for f in c_flags(False) if f != "-shared"] + [f for f in blas_flags() if f.startswith("-D")]


def _location(ctype: str) -> tuple[str, list, Path]:
    """The object's compiler, flags and path in the build cache."""
    return _located(ctype, str(build_dir()), config.index_key())


@functools.lru_cache(maxsize=None)
def _located(ctype: str, root: str, knobs: str) -> tuple[str, list, Path]:
    """(See _location.) The key hashes what makes the object's source (the templates and
    symgrad's Python, as the graph index's key does) rather than the source, so that finding
    it renders nothing."""
    from symgrad.build import _templates_digest
    cc, flags = c_compiler(), _flags()
    key = cache_key(f"matmul {ctype} {_templates_digest()} {knobs}", cc, flags)
    return cc, flags, Path(root) / "objects" / key / f"matmul_{ctype}.o"


def _start_compile(ctype: str):
    from symgrad.codegen.render import render_matmul_object
    cc, flags, path = _location(ctype)
    folder = path.parent
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-{os.getpid()}-", dir=folder.parent))
    source = tmp / path.with_suffix(".c").name
    source.write_text(render_matmul_object([ctype]))
    proc = subprocess.Popen([cc, *flags, "-c", "-o", str(tmp / path.name), str(source)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, tmp


def product_types(outputs) -> set:
    """The element types (C) of the products in the graph of `outputs` that have an object."""
    from symgrad.dtypes import c_type
    from symgrad.graph import toposort
    from symgrad.ops import OPS
    found = {c_type(v.dtype) for v in toposort(outputs) if v.op is not None and OPS[v.op].kind == "matmul"}
    return found & set(TYPES)


def prepare(outputs) -> None:
    """Start compiling, in the background, the objects of the products in the graph of
    `outputs` that the cache lacks, so that in a new cache they compile while the module is
    generated."""
    if not config.matmul_object():
        return
    with _lock:
        missing = [t for t in TYPES
                   if t not in _compiling and t not in _failed and not _intact(_location(t)[2])]
    if not missing:
        return                          # (the graph is not even looked at)
    for ctype in product_types(outputs) & set(missing):
        with _lock:
            if ctype in _compiling:
                continue
            try:
                _compiling[ctype] = (*_start_compile(ctype), os.getpid())
            except OSError:
                pass                    # path() tries again, and says what failed


@atexit.register
def _finish_pending():
    """Publish the objects whose compile was started but never waited for (no half-made
    folder is left in the cache)."""
    for ctype, started in list(_compiling.items()):
        if started[2] == os.getpid():
            try:
                path(ctype)
            except Exception:  # noqa: BLE001  (exiting: a failed compile just leaves no object)
                pass


def expected(ctype: str) -> Path | None:
    """The object of `ctype`'s products as `path` will give it, without waiting for the
    compile in flight (a module then compiles while it does, and links it after: `path` says
    whether it is there), or None where the cache lacks it and no compile is under way."""
    if not config.matmul_object() or ctype not in TYPES or ctype in _failed:
        return None
    target = _location(ctype)[2]
    return target if in_flight(ctype) or _intact(target) else None


def in_flight(ctype: str) -> bool:
    """Whether this process is compiling `ctype`'s object (started by `prepare`)."""
    with _lock:
        started = _compiling.get(ctype)
    return started is not None and started[2] == os.getpid()


def path(ctype: str) -> Path | None:
    """The object of `ctype`'s products in the build cache (waiting for the compile in
    flight, or compiling it now), or None where it cannot be had: modules then compile the
    helper themselves."""
    if not config.matmul_object() or ctype not in TYPES or ctype in _failed:
        return None
    target = _location(ctype)[2]
    with _lock:
        started = _compiling.pop(ctype, None)
    if started is not None and started[2] != os.getpid():
        started = None          # a forked child: the compiler is its parent's to wait for
    if started is None and _intact(target):
        return target
    try:
        proc, tmp = started[:2] if started is not None else _start_compile(ctype)
    except OSError:
        _failed.add(ctype)
        return None
    try:
        output = wait_for(proc)
        if proc.returncode != 0 or not (tmp / target.name).is_file():
            log.warning("symgrad: the %s product object did not compile (%s); modules compile the "
                        "helper themselves", ctype, output)
            _failed.add(ctype)
            return None
        _seal(tmp, target.parent.name, target.name)
        if target.parent.exists() and not _intact(target):       # damaged: replaced
            shutil.rmtree(target.parent, ignore_errors=True)
        _publish(tmp, target.parent)            # published whole, or another process was first
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target if _intact(target) else None


def _intact(target: Path) -> bool:
    """The object is there and is the one compiled for its key, sealed as a cache entry's
    library is (a truncated or altered file in the cache would break the link of every module;
    it is compiled again instead)."""
    return _entry_ok(target.parent, target.name)
