"""Code that every module calling it would otherwise compile again, compiled once per build
cache into an object file that such modules link in. An object is named (kind, element type):

  ("matmul", t)  the matrix-product helpers (templates/c/helpers.h.j2's sg_matmul_float and
                 sg_matmul_double, with their BLAS dispatch), about half of the compiler's work
                 on a small MLP's module;
  ("tiles", t), ("swapped", t)
                 the product paths of templates/c/paths.j2 (register tiles for few terms into a
                 large C, x @ W.T with few rows run swapped), which only a module with a product
                 taking one (symgrad/blas.py, product_path) links, so that no other waits for
                 their compile.

A product object is compiled in the background when a graph with a product of that type is
first compiled in a cache (while its module is generated), a path's once a module that takes
it is scheduled (while it is rendered and compiled); a module links an object when it is
there, and compiles what it holds itself otherwise (the object did not compile). It is linked
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
KINDS = ("matmul", "swapped", "tiles")
_lock = threading.Lock()
_compiling: dict = {}       # {(kind, type): (process, temporary folder, pid)}: compiles started
_failed: set = set()        # the compiler failed on these in this process: modules keep the code


def _flags(kind: str) -> list[str]:
    """A small module's flags (the object is built once, whatever module links it) and the
    BLAS definitions the helpers are compiled with; no linking. A path's code is vectors
    written out (templates/c/paths.j2): GCC's vectoriser, a sixth of the compile, is off."""
    flags = [f for f in c_flags(False) if f != "-shared"] + [f for f in blas_flags() if f.startswith("-D")]
    if kind != "matmul":
        flags = [f for f in flags if f != "-ftree-vectorize"] + ["-fno-tree-vectorize"]
    return flags


def _location(what) -> tuple[str, list, Path]:
    """The object's compiler, flags and path in the build cache."""
    return _located(what, str(build_dir()), config.index_key())


@functools.lru_cache(maxsize=None)
def _located(what, root: str, knobs: str) -> tuple[str, list, Path]:
    """(See _location.) The key hashes what makes the object's source (the templates and
    symgrad's Python, as the graph index's key does) rather than the source, so that finding
    it renders nothing."""
    from symgrad.build import _templates_digest
    kind, ctype = what
    cc, flags = c_compiler(), _flags(kind)
    key = cache_key(f"{kind} {ctype} {_templates_digest()} {knobs}", cc, flags)
    return cc, flags, Path(root) / "objects" / key / f"{kind}_{ctype}.o"


def _start_compile(what):
    from symgrad.codegen.render import render_matmul_object, render_path_object
    cc, flags, path = _location(what)
    folder = path.parent
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-{os.getpid()}-", dir=folder.parent))
    source = tmp / path.with_suffix(".c").name
    kind, ctype = what
    source.write_text(render_matmul_object([ctype]) if kind == "matmul" else render_path_object(kind, ctype))
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


def wanted(kernels) -> list:
    """The objects that a module of `kernels` (scheduled) links: its products' helpers, and
    the paths its products take."""
    from symgrad.codegen.render import path_code
    types = {k.extra["ctype"] for k in kernels if k.kind == "matmul"}
    return sorted(({("matmul", t) for t in types} | set(path_code(kernels)))
                  & {(kind, t) for kind in KINDS for t in TYPES})


def prepare(outputs) -> None:
    """Start compiling, in the background, the product objects of the graph of `outputs` that
    the cache lacks, so that in a new cache they compile while the module is generated."""
    if not config.matmul_object():
        return
    with _lock:
        missing = [t for t in TYPES if not _started(("matmul", t))]
    if missing:                         # (else the graph is not even looked at)
        start([("matmul", t) for t in product_types(outputs) & set(missing)])


def _started(what) -> bool:
    """Compiling, failed or there (under _lock)."""
    return what in _compiling or what in _failed or _intact(_location(what)[2])


def start(whats) -> None:
    """Start compiling, in the background, those of the objects `whats` that the cache lacks."""
    if not config.matmul_object():
        return
    for what in whats:
        with _lock:
            if _started(what):
                continue
            try:
                _compiling[what] = (*_start_compile(what), os.getpid())
            except OSError:
                pass                    # path() tries again, and says what failed


@atexit.register
def _finish_pending():
    """Publish the objects whose compile was started but never waited for (no half-made
    folder is left in the cache)."""
    for what, started in list(_compiling.items()):
        if started[2] == os.getpid():
            try:
                path(what)
            except Exception:  # noqa: BLE001  (exiting: a failed compile just leaves no object)
                pass


def _known(what) -> bool:
    return config.matmul_object() and what[0] in KINDS and what[1] in TYPES and what not in _failed


def expected(what) -> Path | None:
    """The object `what` as `path` will give it, without waiting for the compile in flight (a
    module then compiles while it does, and links it after: `path` says whether it is there),
    or None where the cache lacks it and no compile is under way."""
    if not _known(what):
        return None
    target = _location(what)[2]
    return target if in_flight(what) or _intact(target) else None


def in_flight(what) -> bool:
    """Whether this process is compiling the object `what` (started by `start`)."""
    with _lock:
        started = _compiling.get(what)
    return started is not None and started[2] == os.getpid()


def path(what) -> Path | None:
    """The object `what` in the build cache (waiting for the compile in flight, or compiling
    it now), or None where it cannot be had: modules then compile what it holds themselves."""
    if not _known(what):
        return None
    target = _location(what)[2]
    with _lock:
        started = _compiling.pop(what, None)
    if started is not None and started[2] != os.getpid():
        started = None          # a forked child: the compiler is its parent's to wait for
    if started is None and _intact(target):
        return target
    try:
        proc, tmp = started[:2] if started is not None else _start_compile(what)
    except OSError:
        _failed.add(what)
        return None
    try:
        output = wait_for(proc)
        if proc.returncode != 0 or not (tmp / target.name).is_file():
            log.warning("symgrad: the %s %s object did not compile (%s); modules compile its code "
                        "themselves", *what, output)
            _failed.add(what)
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
