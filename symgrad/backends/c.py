"""The C backend: templates/c/, the compiler flags a module gets (BLAS, vector math, -O3 for
large loops), and calling a loaded module: the per-thread argument-pointer arrays, the output
pool and the straight-line caller written out for each function.

The generated module exports `int symgrad_<name>_packed(void **args)`: one pointer per
parameter (inputs, captured constants, outputs); it returns 0, 2 when a range check failed,
or another code when its scratch memory could not be allocated."""
from __future__ import annotations

import builtins
import functools
import math
import sys

import numpy as np

from symgrad import config
from symgrad.dtypes import contiguous_strides
from symgrad.backends import objects, threads
from symgrad.backends.base import Backend, overlapping
from symgrad.backends.staged import StagedBuild
from symgrad.build import CHARS, VIEW, Build, CompileError, blas_flags, have_c_compiler, vector_math_flags
from symgrad.dims import symbolic_shape

LARGE_LOOP = 1 << 20            # a loop nest this long makes the function worth -O3
SMALL_INPUT_BYTES = 1 << 20     # inputs up to this size have their pointer remembered
POOL_SIZE = 2                   # arrays kept per output, per thread (one a caller holds, one free)
OUT_OF_RANGE = 2                # the module's status when a range check failed


class CBackend(Backend):
    name = "c"
    uses_graph_index = True
    one_library = True
    shares_code = True
    outlines_nests = True
    module_template = "c/module.c.j2"
    row_fusion = True
    tiled_transposes = True

    def column_sums(self) -> bool:
        return config.column_sums()

    def require(self) -> None:
        if not have_c_compiler():
            raise CompileError("no working C compiler: install gcc or clang, set SYMGRAD_CC, or "
                               "use backend='interp'")

    def prepare(self, outputs=None):
        """The thread pool's library and (given the graph's outputs: when a module is about to
        be generated) its products' objects, in a new build cache: their compiles run while
        the module is generated."""
        threads.prepare()
        if outputs:
            objects.prepare(outputs)

    def linked_objects(self, kernels) -> dict:
        wanted = objects.wanted(kernels)
        objects.start(wanted)       # (the tiles: known once scheduled, compiled while rendered)
        found = {w: objects.expected(w) for w in wanted}       # (those compiling: see start_build)
        return {w: path for w, path in found.items() if path is not None}

    def start_build(self, source, symbol, schedule) -> Build:
        """The flags: numpy's OpenBLAS when a kernel is a matrix product, libmvec when the
        platform has it, -O3 when a loop nest is long enough to repay the compile time."""
        uses_matmul = any(k.kind == "matmul" for k in schedule.kernels)
        large = any(k.kind != "matmul" and k.work >= LARGE_LOOP for k in schedule.kernels)
        objects_linked = getattr(schedule, "linked_objects", {})
        linked = tuple(str(path) for path in objects_linked.values())
        pool, pool_pending = threads.expected_link_flags()
        link = linked + pool + (blas_flags() if uses_matmul else ()) + vector_math_flags()
        # What the module links and is still compiling: the module compiles meanwhile (staged)
        waits = [functools.partial(_object_built, t) for t in objects_linked if objects.in_flight(t)]
        waits += [_pool_built] if pool_pending else []
        if waits:
            return StagedBuild(source, symbol, waits, large=large, link=link)
        return Build(source, symbol, large=large, link=link)

    def run(self, fn, arrays):
        lib = fn._lib or fn.library()
        ptrs = pointers(fn)
        out_specs = fn._out_specs
        if fn.dims:
            out_specs = at_sizes(fn, fn.bind_sizes([a.shape for a in arrays])).out_specs
        outs = [np.empty(shape, dtype) for shape, dtype in out_specs]
        fn._local.last[:] = [None] * len(fn._local.last)   # the slots are overwritten below
        view, chars, null = VIEW, CHARS, lib.ffi.NULL      # (the per-call hot path)
        k = 0
        for a in arrays:
            ptrs[k] = view(chars, a, False) if a.size else null
            k += 1
        k += len(fn.consts)
        for a in outs:
            ptrs[k] = view(chars, a, True) if a.size else null
            k += 1
        status = lib.entry(ptrs)
        if status == OUT_OF_RANGE:
            raise IndexError(f"{fn.name}: a value is out of range: {'; '.join(fn.checks)}")
        if status != 0:
            raise MemoryError(f"{fn.name}: the compiled code could not allocate its scratch memory")
        return outs

    def caller(self, fn):
        return fast_caller(fn) if config.fast_call() else fn._general_call

    def direct_caller(self, fn, single):
        return fast_caller(fn, single=single) if config.fast_call() else None

    def value_and_grad_caller(self, fn, n_values, single, seeded=None):
        return fast_caller(fn, (n_values, single), seeded) if config.fast_call() else None


BACKEND = CBackend()


def _object_built(what) -> bool:
    return objects.path(what) is not None


def _pool_built() -> bool:
    return threads.runtime() is not None


def pointers(fn):
    """This thread's argument-pointer array of `fn`, with the constants already in place."""
    local = fn._local
    ptrs = getattr(local, "ptrs", None)
    if ptrs is None:
        threads.runtime()           # the pool's thread count is set before a module first runs
        lib = fn.library()
        ffi = lib.ffi
        n = len(fn.args)
        slots = n + len(fn.consts) + len(fn._out_specs)
        ptrs = ffi.new("void *[]", slots + 1 + bool(fn.dims))     # (then the sizes, if symbolic)
        local.keep = [ffi.from_buffer(c) if c.size else ffi.NULL for c in fn.consts]
        for k, c in enumerate(local.keep):
            ptrs[n + k] = c
        # The scratch: allocated once for this thread and reused by every call, so that a
        # call in steady state takes no page faults (a fresh malloc of it cost 8,000 a call).
        local.workspace = np.empty(max(1, lib.workspace_bytes), np.uint8)     # (-1: grown by at_sizes)
        local.slots = slots
        local.at = None              # the sizes the pointers hold (symbolic dims)
        local.workspace_ptr = ffi.from_buffer(local.workspace, require_writable=True)
        ptrs[slots] = local.workspace_ptr
        local.last = [None] * n      # inputs whose pointers are in place
        local.pools = _output_pools(fn)
        local.ptrs = ptrs
    return ptrs


# --- symbolic sizes (symgrad.dims) -------------------------------------------------------------

class AtSizes:
    """What a function of symbolic dimensions needs at one set of sizes: its inputs' and
    outputs' shapes, the size arguments (C int64_t) and the scratch it wants."""

    def __init__(self, fn, env):
        from symgrad.dims import specialise
        lib = fn.library()
        self.key = tuple(env[d] for d in fn.dims)
        self.in_shapes = [specialise(a.shape, env) for a in fn.args]
        self.out_specs = [(specialise(shape, env), dtype) for shape, dtype in fn._out_specs]
        self.sizes = lib.ffi.new("int64_t[]", list(self.key))
        self.workspace_bytes = int(lib.workspace_at(self.sizes))
        # for the fast caller: each input's shape and C-contiguous strides at these sizes, and
        # whether it may take them at all (an empty array has no pointer: the general path)
        self.check = tuple(x for shape, (_, dtype) in zip(self.in_shapes, fn._specs)
                           for x in (shape, contiguous_strides(shape, np.dtype(dtype).itemsize)))
        self.out_shapes = tuple(shape for shape, _ in self.out_specs)
        self.fast = not any(0 in shape for shape in self.in_shapes + list(self.out_shapes))


AT_SIZES_KEPT = 64          # sets of sizes remembered per function (a new one costs ~20 us)


def at_sizes(fn, env) -> AtSizes:
    """`fn` at the sizes `env`, its size arguments and scratch put in this thread's pointer
    array: the workspace is reallocated only when these sizes need more than it has."""
    local = fn._local
    cache = local.__dict__.setdefault("at_sizes", {})
    key = tuple(env[d] for d in fn.dims)
    at = cache.get(key)
    if at is None:
        if len(cache) >= AT_SIZES_KEPT:
            cache.pop(next(iter(cache)))
        at = cache[key] = AtSizes(fn, env)
    _point_at(fn, at)
    return at


def _point_at(fn, at):
    ptrs = pointers(fn)
    local = fn._local
    local.at = at
    if at.workspace_bytes > local.workspace.size:
        local.workspace = np.empty(at.workspace_bytes, np.uint8)
        local.workspace_ptr = fn.library().ffi.from_buffer(local.workspace, require_writable=True)
        ptrs[local.slots] = local.workspace_ptr
    ptrs[local.slots + 1] = at.sizes


# --- the output pool ---------------------------------------------------------------------------

def _free_references() -> int:
    """How many references an array of a pool has when nothing but the pool refers to it:
    measured once through the same expression the callers use (`getrefcount(pool[0])` with
    the array's pointer beside it), so no interpreter's way of counting is assumed."""
    arr = np.empty(1)
    probe = [arr, VIEW(CHARS, arr, True)]
    del arr
    return sys.getrefcount(probe[0])


FREE_REFERENCES = _free_references()


def _output_pools(fn) -> list:
    """This thread's pool of each output of static shape, one array in it to start with: a list
    [array, its pointer, array, its pointer...] (None for an empty or symbolic output). A fresh
    40 MB array costs the OS 10 ms of zeroing on every call (half of W1's time at 1e7), and a
    small one with its pointer about 0.3 us, a tenth of a small function's call."""
    pools = []
    for shape, dtype in fn._out_specs:
        if symbolic_shape(shape) or 0 in shape:
            pools.append(None)
            continue
        arr = np.empty(shape, dtype)
        pools.append([arr, VIEW(CHARS, arr, True)])
    return pools


def _take(pool, shape, dtype):
    """The output pool's slow path, for when the first array of an output's pool is held: a
    later array of the pool nobody else holds, else a fresh one (kept if the pool has room).
    The pool hands an array out again only when nothing but the pool refers to it, so a
    caller never sees a result it holds change: PyTorch's caching allocator, in small."""
    for i in range(2, len(pool), 2):
        if sys.getrefcount(pool[i]) == FREE_REFERENCES:
            return pool[i], pool[i + 1]
    arr = np.empty(shape, dtype)
    ptr = VIEW(CHARS, arr, True)
    if len(pool) < 2 * POOL_SIZE:
        pool += [arr, ptr]
    return arr, ptr


# --- the straight-line caller ------------------------------------------------------------------

def fast_caller(fn, returns=None, seeded=None, single=False):
    """A straight-line caller of `fn` for the common case (C-contiguous arrays of the declared
    shapes and dtypes), written out for this function: a call then costs a few microseconds.
    Anything else takes the general path, which converts or explains. It returns the list of
    outputs, or with `returns` = (number of values, single output) `(value, gradients)`. With
    `seeded`, it takes `grad_outputs=` too, and a call that gives them goes to
    `seeded(args, grad_outputs)`. With `single` (and no `returns`), the one output itself."""
    lib = fn.library()
    n_in, n_const = len(fn.args), len(fn.consts)
    names = [f"a{k}" for k in range(n_in)]
    env = {"ndarray": np.ndarray, "empty": np.empty, "view": VIEW,
           "overlapping": overlapping, "updated": frozenset(fn.updates.values()),
           "chars": CHARS, "entry": lib.entry, "local": fn._local, "general": fn._general_call,
           "pointers": lambda: pointers(fn), "refs": sys.getrefcount,
           "free": FREE_REFERENCES, "take": _take}
    lines = ["def call(*args, grad_outputs=None):", "    if grad_outputs is not None:",
             "        return seeded(args, grad_outputs)"] if seeded else ["def call(*args):"]
    env["seeded"] = seeded
    lines += [f"    if len(args) != {n_in}:",
             "        return general(*args)",
             f"    {', '.join(names) + ',' if names else '_'} = args" if names else "    pass"]
    outs = []
    for k, (shape, dtype) in enumerate(fn._out_specs):
        env[f"os{k}"], env[f"od{k}"] = shape, dtype
        outs.append(f"o{k}")
    lines += (_sized_arguments if fn.dims else _static_arguments)(fn, env)
    lines.append("    pools = local.pools")
    for k, (shape, dtype) in enumerate(fn._out_specs):
        if symbolic_shape(shape):       # allocated at this call's sizes
            lines.append(f"    o{k} = empty(e.out_shapes[{k}], od{k})")
            lines.append(f"    p[{n_in + n_const + k}] = view(chars, o{k}, True)")
            continue
        if 0 in shape:
            lines.append(f"    o{k} = empty(os{k}, od{k})")
            continue
        # from this thread's pool: its first array when nothing else holds it (a result
        # dropped before the next call), else the pool's slow path
        lines += [f"    q = pools[{k}]",
                  "    if refs(q[0]) == free:",
                  f"        o{k} = q[0]",
                  f"        p[{n_in + n_const + k}] = q[1]",
                  "    else:",
                  f"        o{k}, p[{n_in + n_const + k}] = take(q, os{k}, od{k})"]
    if returns is None and single:     # the one output
        result, env["wrap"] = outs[0], lambda r: r[0]
    elif returns is None:              # the list of outputs
        result, env["wrap"] = f"[{', '.join(outs)}]", lambda r: r
    else:                          # (value, gradients)
        n, single = returns
        values = outs[0] if single else f"[{', '.join(outs[:n])}]"
        grads = "".join(f"{o}, " for o in outs[n:])
        result = f"({values}, ({grads}))" if n else f"({grads})"
        env["wrap"] = (lambda r: ((r[0] if single else r[:n]), tuple(r[n:]))) if n else tuple
    lines = [line.replace("return general(*args)", "return wrap(general(*args))") for line in lines]
    lines.append("    if entry(p):")
    lines.append("        return wrap(general(*args))")
    lines.append(f"    return {result}")
    exec(builtins.compile("\n".join(lines), f"<symgrad {fn.name} caller>", "exec"), env)
    return env["call"]


def _static_arguments(fn, env) -> list:
    """The caller's lines that check the arguments of a function of static shapes and put
    their pointers in place. The array of the call before is not checked again for what
    cannot change on it (its type and strides); updated arguments may share no memory with
    the others, checked when an argument is not the array of the call before."""
    lines = ["    p = getattr(local, 'ptrs', None) or pointers()", "    last = local.last"]
    large = [k for k, (shape, dtype) in enumerate(fn._specs)
             if 0 not in shape and np.dtype(dtype).itemsize * math.prod(shape) > SMALL_INPUT_BYTES]
    if fn.updates:
        lines.append(f"    fresh = {bool(large)}")
    for k, (shape, dtype) in enumerate(fn._specs):
        env[f"s{k}"], env[f"d{k}"] = shape, dtype
        env[f"st{k}"] = contiguous_strides(shape, np.dtype(dtype).itemsize) if 0 not in shape else None
        writable = f" or not a{k}.flags.writeable" if k in fn.updates.values() else ""
        full = f"type(a{k}) is not ndarray or a{k}.dtype is not d{k} or a{k}.shape != s{k} " \
               f"or a{k}.strides != st{k}{writable}"
        # (leaving for the general path, forget the arrays taken so far: they were never
        # checked for overlap together, and the general path may raise before resetting them)
        if 0 in shape or k in large:
            lines.append(f"    if {full}:")
            lines.append("        last[:] = [None] * len(last)")
            lines.append("        return general(*args)")
            if k in large:
                lines.append(f"    p[{k}] = view(chars, a{k}, False)")
            continue
        # The same array as last time: its pointer is already in place (we hold it, so
        # numpy will not resize or free it meanwhile).
        lines.append(f"    if a{k} is not last[{k}]:")
        lines.append(f"        if {full}:")
        lines.append("            last[:] = [None] * len(last)")
        lines.append("            return general(*args)")
        lines.append(f"        last[{k}] = a{k}")
        lines.append(f"        p[{k}] = view(chars, a{k}, False)")
        if fn.updates:
            lines.append("        fresh = True")
        lines.append(f"    elif a{k}.shape != s{k} or a{k}.dtype is not d{k}{writable}:")
        lines.append("        last[:] = [None] * len(last)")
        lines.append("        return general(*args)")
    if fn.updates:
        lines.append("    if fresh and overlapping(args, updated) is not None:")
        lines.append("        last[:] = [None] * len(last)")
        lines.append("        return general(*args)")
    return lines


def _sized_arguments(fn, env) -> list:
    """The caller's lines for a function with named dimensions (symgrad.dims): every argument
    checked, then the sizes read off the first input that has each dimension whole find what
    the function needs at them (AtSizes, made by a first call at those sizes, which takes the
    general path: it binds and checks every size and reports any disagreement)."""
    checks = []
    for k, (shape, dtype) in enumerate(fn._specs):
        env[f"d{k}"] = dtype
        if symbolic_shape(shape):      # shape and strides: those at this call's sizes
            checks.append(f"type(a{k}) is not ndarray or a{k}.dtype is not d{k} or a{k}.ndim != {len(shape)}")
            continue
        env[f"s{k}"] = shape
        env[f"st{k}"] = contiguous_strides(shape, np.dtype(dtype).itemsize) if 0 not in shape else None
        checks.append(f"type(a{k}) is not ndarray or a{k}.dtype is not d{k} or a{k}.shape != s{k} "
                      f"or a{k}.strides != st{k}" +
                      (f" or not a{k}.flags.writeable" if k in fn.updates.values() else ""))
    if fn.updates:                                  # written while the others are read: no overlap
        checks.append("overlapping(args, updated) is not None")
    lines = [f"    if {' or '.join(f'({c})' for c in checks)}:", "        return general(*args)"]
    where = [next(((k, axis) for k, a in enumerate(fn.args) for axis, n in enumerate(a.shape)
                   if getattr(n, "name", None) == d), None) for d in fn.dims]
    if None in where:               # a size no input gives whole: the general path says so
        return ["    return general(*args)"]
    env["point"] = lambda at: _point_at(fn, at)
    lines.append("    known = local.__dict__.get('at_sizes')")
    lines.append(f"    e = known.get(({''.join(f'a{k}.shape[{axis}], ' for k, axis in where)})) "
                 f"if known else None")
    lines.append("    if e is None or not e.fast:")
    lines.append("        return general(*args)")
    lines.append("    c = e.check")
    sized = [k for k, (shape, _) in enumerate(fn._specs) if symbolic_shape(shape)]
    same = [f"a{k}.shape != c[{2 * k}] or a{k}.strides != c[{2 * k + 1}]" for k in sized]
    lines.append(f"    if {' or '.join(same)}:")
    lines.append("        return general(*args)")
    lines.append("    p = getattr(local, 'ptrs', None) or pointers()")
    lines.append("    last = local.last")
    lines.append("    if e is not local.at:")       # the size arguments and the scratch they need
    lines.append("        point(e)")
    for k, (shape, dtype) in enumerate(fn._specs):
        if 0 in shape:
            continue
        if symbolic_shape(shape) or np.dtype(dtype).itemsize * math.prod(shape) <= SMALL_INPUT_BYTES:
            # The same array as last time: its pointer is already in place.
            lines.append(f"    if a{k} is not last[{k}]:")
            lines.append(f"        last[{k}] = a{k}")
            lines.append(f"        p[{k}] = view(chars, a{k}, False)")
        else:
            lines.append(f"    p[{k}] = view(chars, a{k}, False)")
    return lines
