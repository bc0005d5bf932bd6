"""The CUDA backend: the same schedules as the C backend, rendered from `templates/cuda/`,
compiled by nvcc into a shared library and loaded with cffi.

This module holds what is CUDA-specific on the Python side:

* finding nvcc and its flags (`SYMGRAD_NVCC`, `SYMGRAD_CUDA_ARCH`, `SYMGRAD_CUDA_CCBIN`,
  `SYMGRAD_NVCC_FLAGS`);
* `template_context(schedule)`: the launch plan of every kernel (grid, block, which
  reduction strategy, how loop variables are recovered from a linear index) and where each
  buffer lives in a workspace; `render.generate` hands it to the template;
* `CudaBuild`, the cached nvcc build (a `symgrad.build.Build`), whose `result()` is a
  `CudaLibrary`, and `Caller`, which calls it with host or device arrays and raises a Python
  exception naming the failing CUDA call or kernel when the generated code returns an error;
* `DeviceArray`, `to_device`, `is_available`, `empty_cache`: device memory for users, through
  the small runtime module of templates/cuda/runtime.cu.j2.

The generated module exports, for a function `symgrad_<name>`:

    int symgrad_<name>_run(void **args, const unsigned char *where, const uintptr_t *streams,
                           void **workspace, char *err, size_t err_size)
    int symgrad_<name>_release(void **workspace)        frees a workspace's device memory
    int symgrad_<name>_packed(void **args)              host pointers only, as the C backend's

where `args` holds one pointer per parameter (inputs, captured constants, outputs) and
`where[k]` says whether args[k] is device memory (used in place) or host memory (copied).
Status codes: see `NO_DEVICE`, `OUT_OF_MEMORY`, `CUDA_ERROR`, `OUT_OF_RANGE`, `BAD_POINTER`.
"""
from __future__ import annotations

import functools
import math
import os
import re
import shlex
import shutil
import subprocess
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import cffi
import numpy as np

from symgrad import dtypes
from symgrad.build import Build, CompileError
from symgrad.codegen import kernel as K
from symgrad.codegen.render import c_text, kernel_macros
from symgrad.ops.primitives import libm_calls

DEFAULT_ARCH = "sm_90"          # H100 / H200; nvcc also embeds compute_90 PTX for newer GPUs
THREADS = 256                   # threads per block of map and block-reduce kernels
MAX_GRID = 8192                 # grid-stride loops cover whatever a capped grid does not
MATMUL_TILE, MATMUL_BK = 64, 16  # output tile (64 x 64, 4 x 4 per thread) and depth step
MAX_BATCH_DIMS = 8              # batch dims a matmul launch describes (after merging)
VECTOR = 4                      # elements per thread and step of a vectorised kernel
TILE, TILE_ROWS = 32, 8         # transposes: 32 x 32 tiles, by blocks of 32 x 8 threads
ERROR_SIZE = 1024

# Status codes returned by the generated entry points.
OK, NO_DEVICE, OUT_OF_MEMORY, CUDA_ERROR, OUT_OF_RANGE, BAD_POINTER = 0, 1, 2, 3, 4, 5

# Names a user's Variable must not take in CUDA text (C++ keywords, CUDA's built-in
# variables and types, the macros the templates use, and the libm functions the op
# registry's C expressions call). The NameTable treats them as taken, so `new` becomes
# `new_2`; the C backend is unaffected.
RESERVED_WORDS = frozenset("""
alignas alignof and_eq asm bitand bitor catch char16_t char32_t char8_t class co_await co_return
co_yield compl concept const_cast consteval constexpr constinit decltype delete dynamic_cast
explicit export friend mutable namespace new noexcept not_eq nullptr operator private protected
public reinterpret_cast requires static_assert static_cast template this thread_local throw try
typeid typename using virtual wchar_t xor xor_eq
threadIdx blockIdx blockDim gridDim warpSize dim3 uint3 int3 float2 float4 double2 cudaError_t
cudaSuccess cudaStream_t cudaMemcpy cudaMalloc cudaFree std
int8_t int16_t int32_t int64_t uint8_t uint16_t uint32_t uint64_t size_t ptrdiff_t
min max fmin fmax
printf snprintf getenv memcpy malloc free
INT64_C INT32_C INT64_MIN INT64_MAX INT32_MIN INT32_MAX UINT8_MAX
""".split()) | frozenset(libm_calls())


class CudaError(RuntimeError):
    """A CUDA call or kernel of a compiled function failed; the message names it."""


class NoCudaDevice(CudaError):
    """The module compiled, but this machine has no usable CUDA device."""


class CudaOutOfMemory(CudaError, MemoryError):
    """cudaMalloc could not allocate the device memory a call needs."""


# --- nvcc ------------------------------------------------------------------------------------

def nvcc_path() -> str | None:
    """nvcc: `SYMGRAD_NVCC`, else on PATH, else under CUDA_HOME / CUDA_PATH / /usr/local/cuda."""
    env = os.environ.get("SYMGRAD_NVCC")
    if env:
        return shutil.which(env) or (env if os.access(env, os.X_OK) else None)
    found = shutil.which("nvcc")
    if found:
        return found
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home and os.access(Path(home) / "bin" / "nvcc", os.X_OK):
            return str(Path(home) / "bin" / "nvcc")
    return None


def have_nvcc() -> bool:
    try:
        require_nvcc()
        return True
    except CompileError:
        return False


def require_nvcc() -> str:
    nvcc = nvcc_path()
    if nvcc is None:
        where = f" (SYMGRAD_NVCC={os.environ['SYMGRAD_NVCC']!r} is not an executable)" \
            if os.environ.get("SYMGRAD_NVCC") else ""
        raise CompileError(f"backend='cuda' needs nvcc, the CUDA compiler, and it was not found{where}: "
                           f"install the CUDA toolkit and put its bin/ on PATH (or set SYMGRAD_NVCC to "
                           f"nvcc's path), or use backend='c'")
    nvcc_release(nvcc)
    return nvcc


@functools.lru_cache(maxsize=None)
def nvcc_release(nvcc: str) -> str:
    """nvcc's release (e.g. 13.0.88): its first line of --version names no version, so the
    release goes into the flags (as a -D) and with them into the cache key."""
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CompileError(f"backend='cuda': could not run nvcc ({nvcc!r}): {e}") from None
    m = re.search(r"V(\d+(?:\.\d+)+)", out.stdout) or re.search(r"release (\d+(?:\.\d+)*)", out.stdout)
    if out.returncode != 0 or not m:
        raise CompileError(f"backend='cuda': {nvcc!r} --version failed (exit {out.returncode})",
                           out.stdout + out.stderr)
    return m.group(1)


def cuda_arch() -> str:
    """The -arch flag's value: SYMGRAD_CUDA_ARCH (sm_80, 90, native, ...) or sm_90. A named
    architecture needs no GPU at compile time; `native` does."""
    arch = os.environ.get("SYMGRAD_CUDA_ARCH", "").strip() or DEFAULT_ARCH
    return f"sm_{arch}" if arch.isdigit() else arch


def cuda_flags(nvcc: str) -> list[str]:
    # nvcc's -O is the HOST code's level only (device code is always optimised: cicc and
    # ptxas -O3). Our host code is launches and copies, and -O3 made gcc spend most of a
    # build on nvcc's generated stubs and the embedded fatbinary, so it gets -O1.
    flags = ["-O1", "-shared", "-Xcompiler", "-fPIC", f"-arch={cuda_arch()}",
             # each host thread gets its own stream: concurrent calls from several Python
             # threads (the GIL is released while a call runs) do not serialise on stream 0
             "--default-stream", "per-thread", "-std=c++17",
             f"-DSYMGRAD_NVCC_RELEASE={nvcc_release(nvcc)}"]
    ccbin = os.environ.get("SYMGRAD_CUDA_CCBIN")
    if ccbin:
        flags += ["-ccbin", ccbin]
    flags += shlex.split(os.environ.get("SYMGRAD_NVCC_FLAGS", ""))
    return flags


# --- launch plans ----------------------------------------------------------------------------

def _ceil(a, b):
    return -(-a // b)


def _round32(n):
    return max(32, min(THREADS, _ceil(n, 32) * 32))


def _decompose(loops, lin, used):
    """`(var, expr)` recovering each loop variable in `used` (names) from the row-major
    linear index `lin` over `loops`."""
    extents = [n for _, n in loops]
    first = next((j for j, n in enumerate(extents) if n != 1), None)
    out = []
    for j, (v, n) in enumerate(loops):
        if v not in used:
            continue
        stride = math.prod(extents[j + 1:])
        if n == 1:
            expr = "0"
        else:
            expr = lin if stride == 1 else f"{lin} / {stride}"
            if j != first:
                expr = f"{expr} % {n}"
        out.append((v, expr))
    return out


def _c_string(text: str) -> str:
    """Text safe inside a C string literal (user names reach kernel comments)."""
    return _comment(text).replace('"', "'")


def _comment(text: str) -> str:
    """Text safe inside a /* */ comment (one line; nothing that ends or opens a comment)."""
    from symgrad.codegen.render import comment_safe
    return comment_safe(text)


def _align(n, a=256):
    return _ceil(n, a) * a


@dataclass
class Acc:
    """One reduction of a kernel: its accumulator and the code that folds into it."""
    name: str                       # sg_acc<j>
    op: str                         # sum | max | min | argmax | argmin
    ctype: str                      # the accumulator's type (sg_pair<T> for arg reductions)
    identity: str                   # its initial value, also the combining identity
    fold: str                       # one value into it (the C loops' rule)
    combine: str                    # the functor combining two accumulators
    store: str                      # writing the result
    out: str                        # the output buffer
    out_ctype: str
    index: str
    partial: str = ""               # split strategy: per-(output, block) results
    partial_offset: int = 0


@dataclass
class KernelPlan:
    """How one schedule kernel runs on the GPU. Map, reduce, argreduce and fused loop nests
    all become `stores` (elementwise results, written in the innermost loop) and `accs`
    (reductions over the loops after the first `outer`), as in the C backend's nests."""
    name: str                       # the __global__ function: sg_k<i>_<first output>
    kind: str                       # loops | matmul
    comments: list                  # for /* */ comments
    what: str                       # for the error message (a C string's contents)
    params: list                    # [(ctype, name, is_output)]
    skip: bool = False              # nothing to compute (no output elements)
    checked: bool = False           # its lets check values' ranges (int *sg_check is passed)
    grid: tuple = (1, 1, 1)
    block: tuple = (THREADS, 1, 1)
    lin_ctype: str = "unsigned int"  # linear indices: 32-bit when they fit
    lin_suffix: str = "u"
    lets: list = field(default_factory=list)
    stores: list = field(default_factory=list)        # [(buffer, index, value)]
    accs: list = field(default_factory=list)          # [Acc]
    work: int = 0
    decomp: list = field(default_factory=list)        # no accs: loop variables from sg_lin
    strategy: str = ""              # with accs: thread | warp | block | split
    outputs: int = 0                # O: outputs of each reduction
    extent: int = 0                 # R: values reduced into each
    outer_decomp: list = field(default_factory=list)  # outer variables from sg_o
    inner_decomp: list = field(default_factory=list)  # reduced variables from sg_r
    inner_loops: list = field(default_factory=list)   # (var, extent), thread strategy
    finish_decomp: list = field(default_factory=list)  # outer variables the stores of results need
    split: int = 1                  # G: blocks sharing one output (split strategy)
    finish_block: tuple = (32, 1, 1)
    finish_grid: tuple = (1, 1, 1)
    # matmul: one of the generic sg_matmul<T> kernels, given its shape and strides
    mm: dict = field(default_factory=dict)
    # a second kernel, <name>_v4, that moves VECTOR consecutive elements per thread with vector
    # loads and stores; launched when every pointer it loads or stores is aligned for them
    vec_reads: list = field(default_factory=list)     # [(ctype, buffer)]
    vec_writes: list = field(default_factory=list)    # [(ctype, buffer)]
    vec_lanes: list = field(default_factory=list)     # the body's lines for lane sg_c
    vec_grid: tuple = (1, 1, 1)
    # a transposing map: tiles of `src` staged through shared memory (see _transpose)
    tile: dict = field(default_factory=dict)


@dataclass
class DeviceBuffer:
    """Where a buffer lives on the device. Inputs and outputs (`arg`, `out`) given as host arrays
    go through the *staging* block; given as device arrays, they are used where they are.
    Captured constants (copied in every call, so that changes to them are seen, as in the C
    backend), temporaries, the split reductions' partial results and the range checks' flag
    are in the *scratch* block. Both blocks belong to a workspace, allocated on a function's
    first call and reused by the next."""
    name: str
    ctype: str
    offset: int                     # in its block
    nbytes: int
    kind: str                       # arg | const | out | tmp | partial | check
    shape: tuple = ()
    dtype: str = ""
    position: int = -1              # index into args for arg/const/out

    @property
    def block(self):
        return "sg_staging" if self.kind in ("arg", "out") else "sg_scratch"


@dataclass
class CudaContext:
    plans: list
    layout: list                    # DeviceBuffer for every parameter, temporary and partial
    staging_bytes: int              # the host inputs' and outputs' device copies
    scratch_bytes: int              # constants, temporaries, partial results, the check flag
    index_ctype: str                # sg_index: int when every offset fits, else int64_t
    uses_reduce: bool
    matmul_types: list = field(default_factory=list)
    checked: bool = False           # some kernel checks ranges: a flag in device memory
    max_batch_dims: int = MAX_BATCH_DIMS
    matmul_tile: int = MATMUL_TILE
    matmul_bk: int = MATMUL_BK


_ITEMSIZE = dtypes.ITEMSIZE
_COMBINE = {"sum": "sg_sum()", "max": "sg_max()", "min": "sg_min()", "argmax": "sg_argmax()",
            "argmin": "sg_argmin()"}


def _acc(j, op, ctype, init, value, out, index, axis_var=None) -> Acc:
    name = f"sg_acc{j}"
    if op in ("argmax", "argmin"):
        pair = f"sg_pair<{ctype}>"
        return Acc(name, op, pair, f"sg_at<{ctype}>({init}, -1)",
                   f"{name} = {_COMBINE[op]}({name}, sg_at<{ctype}>({value}, {axis_var}));", _COMBINE[op],
                   f"{out.name}[{index}] = {name}.i < 0 ? 0 : {name}.i;", out.name, out.ctype, index)
    if op == "sum":
        fold = f"{name} += {value};"
    else:
        fold = str(kernel_macros().fold_extreme(op, ctype, name, value))      # the C loops' rule
    return Acc(name, op, ctype, f"({ctype})({init})", fold, _COMBINE[op],
               f"{out.name}[{index}] = ({out.ctype}){name};", out.name, out.ctype, index)


def _loop_view(k):
    """(stores, accs, comments, outer) of an argreduce or nest kernel (the scheduler turns every
    map and reduce kernel into a nest). Stores are (buffer, index, value) in the kernel IR;
    accumulators are rendered."""
    if k.kind == "argreduce":
        acc = _acc(0, k.reduce_op, k.acc_ctype, c_text(k.init), c_text(k.value), k.out, c_text(k.out_index),
                   k.extra["axis_var"])
        return [], [acc], [k.comment + " (the first index of the extreme, as numpy)"], k.outer, [k.value]
    if k.kind == "nest":
        e = k.extra
        stores = [(st["buf"], st["index"], st["value"]) for st in e["stores"]]
        accs = [_acc(j, a["op"], a["ctype"], c_text(a["init"]), c_text(a["value"]), a["out"], c_text(a["index"]))
                for j, a in enumerate(e["accs"])]
        folded = [a["value"] for a in e["accs"]]
        return stores, accs, list(e.get("comments") or [k.comment]), k.outer if accs else len(k.loops), folded
    raise AssertionError(f"the CUDA backend does not know kernels of kind {k.kind!r}")


def _reads(lets, buffers) -> dict:
    """{buffer name: the set of indices (kernel IR) it is read at} for the buffers the lets
    read, in the order of their first reads."""
    out = {}
    for let in lets:
        for load in K.loads(let.expr):
            if load.buf.name in buffers:
                out.setdefault(load.buf.name, set()).add(load.index)
    return out


def _params(k, buffers, written):
    """[(ctype, name, is_output)]: the buffers the kernel reads, then those it writes."""
    names = list(k.extra.get("reads", ())) + ([k.extra["a"], k.extra["b"]] if k.kind == "matmul" else [])
    names += list(_reads(k.lets, buffers))        # what the body reads, in order
    names = [n for n in dict.fromkeys(names) if n in buffers and n not in written]
    return [(buffers[n].ctype, n, False) for n in names] + [(buffers[n].ctype, n, True) for n in written]


def _reduce_strategy(outputs, extent):
    if extent <= 16:
        return "thread", 1
    if extent <= 2048:
        return "warp", 1
    if outputs < 256 and extent >= 32768:
        # about 1024 blocks in all: enough resident threads to keep an H100's memory busy
        split = min(max(2, _ceil(1024, outputs)), _ceil(extent, THREADS * 8), 1024)
        if split >= 2:
            return "split", split
    return "block", 1


def template_context(schedule) -> CudaContext:
    """The launch plan of every kernel and the device memory layout, for templates/cuda/."""
    params = schedule.args + schedule.consts + schedule.outs
    buffers = {b.name: b for b in params + schedule.tmps}
    layout, staging, top = [], 0, 0
    for pos, b in enumerate(params):
        nbytes = b.size * _ITEMSIZE[b.ctype]
        d = DeviceBuffer(b.name, b.ctype, 0, nbytes, b.kind, b.node.shape, str(b.node.dtype), pos)
        if d.block == "sg_staging":
            d.offset, staging = staging, staging + _align(nbytes)
        else:
            d.offset, top = top, top + _align(nbytes)
        layout.append(d)
    for t in schedule.tmps:
        layout.append(DeviceBuffer(t.name, t.ctype, top + t.position, t.size * _ITEMSIZE[t.ctype], "tmp",
                                   t.node.shape, str(t.node.dtype)))
    top += _align(schedule.scratch_bytes)
    biggest = max([b.size for b in buffers.values()] + [k.work for k in schedule.kernels] + [1])
    index_ctype = "int" if biggest < 2 ** 31 - THREADS * MAX_GRID else "int64_t"
    plans = []
    for i, k in enumerate(schedule.kernels):
        if k.kind == "matmul":
            e = k.extra
            p = KernelPlan(f"sg_matmul<{e['ctype']}>", "matmul", [_comment(k.comment)],
                           _c_string(k.comment),
                           _params(k, buffers, [k.out.name]))
            p.mm = _matmul_shape(k)
            p.work = k.work
            p.skip = k.work * e["M"] * e["N"] == 0
            p.block = (16, 16, 1)
            p.grid = (max(1, _ceil(e["N"], MATMUL_TILE)), max(1, min(_ceil(e["M"], MATMUL_TILE), 65535)),
                      max(1, min(k.work, 65535)))
            plans.append(p)
            continue
        stores, accs, comments, outer_n, folded = _loop_view(k)
        written = list(dict.fromkeys([b.name for b, _, _ in stores] + [a.out for a in accs]))
        first = written[0] if written else k.out.name
        p = KernelPlan(f"sg_k{i}_{first}", "loops", [_comment(c) for c in comments],
                       _c_string("; ".join(comments)), _params(k, buffers, written))
        ir_lets, ir_stores = list(k.lets), [(b.name, index, value) for b, index, value in stores]
        _render_body(p, ir_lets, ir_stores)
        p.checked = any(isinstance(e, K.Call) and e.op == "check_range"
                        for e in K.walk(*(let.expr for let in ir_lets)))
        p.accs = accs
        p.work = k.work
        used = K.loop_vars(*(let.expr for let in ir_lets), *(x for _, i_, v in ir_stores for x in (i_, v)),
                           *folded)
        if k.kind == "argreduce":
            used.add(k.extra["axis_var"])
        out_vars = K.loop_vars(*(a["index"] for a in k.extra.get("accs", ())),
                               *([k.out_index] if k.kind == "argreduce" else []))
        if not accs:
            p.skip = k.work == 0 or not written
            p.block = (_round32(k.work), 1, 1)
            p.grid = (max(1, min(_ceil(k.work, p.block[0]), MAX_GRID)), 1, 1)
            p.decomp = _decompose(k.loops, "sg_lin", used)
            if k.work >= 2 ** 31:
                p.lin_ctype, p.lin_suffix = "unsigned long long", "ull"
            if len(k.loops) == 1 and not p.skip and _vectorize(p, buffers, k.loops[0][0], ir_lets, ir_stores):
                p.vec_grid = (max(1, min(_ceil(k.work // VECTOR, p.block[0]), MAX_GRID)), 1, 1)
            elif len(k.loops) >= 2 and not p.skip and _transpose(p, k.loops, buffers, ir_lets, ir_stores, used):
                t = p.tile
                p.block = (TILE, TILE_ROWS, 1)
                p.grid = (_ceil(t["nL"], TILE), _ceil(t["nJ"], TILE), max(1, min(t["others"], 65535)))
            plans.append(p)
            continue
        outer, inner = k.loops[:outer_n], k.loops[outer_n:]
        O, R = math.prod(n for _, n in outer), math.prod(n for _, n in inner)  # noqa: E741  (O outputs, R reduced: the notation of the comment above)
        p.outputs, p.extent, p.skip = O, R, O == 0
        p.strategy, p.split = _reduce_strategy(O, R)
        # (the loop variables stay below the extent plus one grid's stride)
        if max(O, R) + max(p.split, MAX_GRID) * THREADS >= 2 ** 31:
            p.lin_ctype, p.lin_suffix = "unsigned long long", "ull"
        p.outer_decomp = _decompose(outer, "sg_o", used | out_vars)
        p.inner_decomp = _decompose(inner, "sg_r", used)
        p.inner_loops = list(inner)
        p.finish_decomp = _decompose(outer, "sg_o", out_vars)
        if not outer and len(inner) == 1 and p.strategy in ("block", "split"):
            _vectorize(p, buffers, inner[0][0], ir_lets, ir_stores)
        if p.strategy == "thread":
            p.block = (_round32(O), 1, 1)
            p.grid = (max(1, min(_ceil(O, p.block[0]), MAX_GRID)), 1, 1)
        elif p.strategy == "warp":
            p.block = (_round32(32 * O), 1, 1)
            p.grid = (max(1, min(_ceil(32 * O, p.block[0]), MAX_GRID)), 1, 1)
        elif p.strategy == "block":
            p.block = (_round32(R), 1, 1)
            p.grid = (max(1, min(O, 1 << 20)), 1, 1)
        else:
            p.block = (THREADS, 1, 1)
            p.grid = (O, p.split, 1)
            p.finish_block = (_round32(p.split), 1, 1)
            p.finish_grid = (O, 1, 1)
            for j, a in enumerate(accs):
                a.partial, a.partial_offset = f"sg_partial{i}_{j}", top
                nbytes = O * p.split * (16 if a.op.startswith("arg") else _ITEMSIZE[a.ctype])
                layout.append(DeviceBuffer(a.partial, a.ctype, top, nbytes, "partial"))
                top += _align(nbytes)
        plans.append(p)
    uses_reduce = any(p.accs for p in plans)
    matmul_types = sorted({k.extra["ctype"] for k in schedule.kernels if k.kind == "matmul"})
    checked = any(p.checked for p in plans)
    if checked:
        layout.append(DeviceBuffer("sg_check", "int", top, 4, "check"))
        top += _align(4)
    return CudaContext(plans, layout, staging, top, index_ctype, uses_reduce, matmul_types, checked)


def _render_body(p, lets, stores):
    """The plan's body as text: its locals and stores, rendered from the kernel IR."""
    p.lets = [K.Let(let.ctype, let.name, c_text(let.expr)) for let in lets]   # rendered
    p.stores = [(b, c_text(index), c_text(value)) for b, index, value in stores]


@dataclass
class _Named:
    """A name that a rewritten kernel reads in place of a buffer (a vector lane, a tile)."""
    name: str


def _replace_loads(lets, stores, replace):
    """Lets and stores with every Load for which `replace(load)` gives an expression replaced."""
    def sub(e):
        return K.substitute(e, lambda x: replace(x) if isinstance(x, K.Load) else None)
    return ([K.Let(let.ctype, let.name, sub(let.expr)) for let in lets],
            [(b, index, sub(value)) for b, index, value in stores])


def _vectorize(p, buffers, var, lets, stores) -> bool:
    """Makes `p` a vectorised kernel too, when its one loop variable `var` indexes every
    buffer it reads or writes exactly (`x[i0]`): each lane of a VECTOR-wide step then runs the
    body with its own `var`, reading and writing the step's vectors instead of the buffers."""
    at = K.affine(K.Idx(var))
    indices = _reads(lets, buffers)
    reads = list(indices)
    writes = list(dict.fromkeys(b for b, _, _ in stores))
    if any(index != at for _, index, _ in stores) or set(reads) & set(writes) or not reads + writes or \
            any(where != {at} for where in indices.values()):
        return False
    lane_lets, lane_stores = _replace_loads(
        lets, stores, lambda ld: K.Load(_Named(f"sg_vin_{ld.buf.name}.v"), K.Idx("sg_c")))
    lines = [f"const sg_index {var} = sg_base + sg_c;"]
    lines += [f"const {let.ctype} {let.name} = {c_text(let.expr)};" for let in lane_lets]
    lines += [f"sg_vout_{b}.v[sg_c] = {c_text(v)};" for b, _, v in lane_stores]
    lines += [a.fold for a in p.accs]       # the folded values are locals: nothing to replace
    p.vec_reads = [(buffers[n].ctype, n) for n in reads]
    p.vec_writes = [(buffers[n].ctype, n) for n in writes]
    p.vec_lanes = lines
    return True


def _coefficients(index, names):
    """{loop variable: coefficient} of an affine index, or None if it is not affine in them."""
    index = K.affine(index)
    if any(not isinstance(atom, K.Idx) or atom.name not in names for atom, _ in index.terms):
        return None
    return {v: index.coefficient(K.Idx(v)) for v in names}


def _transpose(p, loops, buffers, lets, stores, used) -> bool:
    """Makes the map `p` a tiled transpose when it writes along its last loop variable L but
    reads a buffer `src` along another, J (x.T, permutes): each block then stages a 32 x 32
    tile of src through shared memory, reading it along J and writing along L, so that both
    the reads and the writes are coalesced."""
    names = [v for v, _ in loops]
    extent = dict(loops)
    L = names[-1]
    if extent[L] < 16 or not stores:
        return False
    for _, index, _ in stores:
        c = _coefficients(index, names)
        if c is None or c[L] != 1:
            return False
    for src, indices in _reads(lets, buffers).items():
        if len(indices) != 1 or any(src == b for b, _, _ in stores):
            continue
        (index,) = indices
        c = _coefficients(index, names)
        if c is None or c[L] == 1:
            continue
        J = next((v for v in names[:-1] if c[v] == 1 and extent[v] >= 16), None)
        if J is None:
            continue
        others = [(v, n) for v, n in loops if v not in (J, L)]
        p.tile = {"src": src, "ctype": buffers[src].ctype, "index": c_text(index), "J": J, "L": L,
                  "nJ": extent[J], "nL": extent[L], "others": math.prod(n for _, n in others),
                  "other_decomp": _decompose(others, "sg_z", used | K.loop_vars(index)) if others else [],
                  "read": f"{src}[{c_text(index)}]"}
        tile_lets, tile_stores = _replace_loads(
            lets, stores, lambda ld: K.Load(_Named("sg_tile[threadIdx.x]"), K.Idx("sg_j"))
            if ld.buf.name == src and ld.index == index else None)
        _render_body(p, tile_lets, tile_stores)
        return True
    return False


def _matmul_shape(k) -> dict:
    """A matmul kernel as the generic kernel's arguments: sizes, the operands' row and column
    strides, their offsets, and each batch dim's extent and strides (adjacent dims that step
    through all three buffers alike are merged)."""
    e = k.extra
    names = [v for v, _ in k.loops]

    def split(offset):      # (constant, [coefficient of each batch variable])
        c = _coefficients(offset, names)
        assert c is not None, f"matmul: an offset that is not affine in the batch index: {offset}"
        return K.affine(offset).const, [c[v] for v in names]
    a0, a_b = split(e["a_base"])
    b0, b_b = split(e["b_base"])
    c0, c_b = split(e["c_base"])
    dims = [[n, a, b, c] for (_, n), a, b, c in zip(k.loops, a_b, b_b, c_b) if n != 1]
    merged = []
    for d in dims:
        if merged and all(merged[-1][j] == d[j] * d[0] for j in (1, 2, 3)):
            merged[-1] = [merged[-1][0] * d[0], d[1], d[2], d[3]]
        else:
            merged.append(d)
    if len(merged) > MAX_BATCH_DIMS:
        raise NotImplementedError(f"matmul with {len(merged)} batch dimensions: the CUDA backend handles "
                                  f"at most {MAX_BATCH_DIMS}; reshape the operands to fewer")
    return {"M": e["M"], "K": e["K"], "N": e["N"], "a": e["a"], "b": e["b"], "c": k.out.name,
            "a0": a0, "b0": b0, "c0": c0, "ctype": e["ctype"], "batch": k.work,
            "a_rs": e["a_rs"], "a_cs": e["a_cs"], "b_rs": e["b_rs"], "b_cs": e["b_cs"],
            "dims": merged}


# --- building and loading --------------------------------------------------------------------

class CudaLibrary:
    """A loaded CUDA module. `run(args, where, streams, workspace)` runs it (the GIL is released
    meanwhile) and raises `NoCudaDevice`, `CudaOutOfMemory`, `CudaError`, `IndexError` (a range
    check) or `ValueError` (a device pointer that is not this device's memory) with the
    module's message on failure."""

    def __init__(self, path: Path, source_path: Path, symbol: str):
        self.path, self.source_path, self.symbol = path, source_path, symbol
        self.base = symbol[:-len("_packed")] if symbol.endswith("_packed") else symbol
        self.ffi = cffi.FFI()
        self.ffi.cdef(f"int {symbol}(void **args);\n"
                      f"int {self.base}_run(void **args, const unsigned char *where, const uintptr_t *streams,\n"
                      f"                    void **workspace, char *err, size_t err_size);\n"
                      f"int {self.base}_release(void **workspace);")
        self.lib = self.ffi.dlopen(str(path))
        self._run = getattr(self.lib, f"{self.base}_run")
        self.release = getattr(self.lib, f"{self.base}_release")

    def run(self, args, where, streams, workspace) -> None:
        err = self.ffi.new("char[]", ERROR_SIZE)
        status = self._run(args, where, streams, workspace, err, ERROR_SIZE)
        if status != OK:
            self._raise(status, self.ffi.string(err).decode("utf-8", "replace"))

    def _raise(self, status, message):
        message = message or f"{self.base}: error {status}"
        if status == NO_DEVICE:
            raise NoCudaDevice(f"{self.base}: no CUDA device is available, so the CUDA backend cannot run "
                               f"(the module compiled fine: {self.source_path}). {message}. Run on a "
                               f"machine with an NVIDIA GPU and driver, or use backend='c'")
        if status == OUT_OF_MEMORY:
            raise CudaOutOfMemory(message)
        if status == OUT_OF_RANGE:
            raise IndexError(message)
        if status == BAD_POINTER:
            raise ValueError(message)
        raise CudaError(message)

_libraries: dict[str, CudaLibrary] = {}
_lock = threading.Lock()


class CudaBuild(Build):
    """A background nvcc build of one generated module, cached like the C backend's (the key
    hashes the source, nvcc, its release and the flags, the arch included)."""

    def __init__(self, source: str, symbol: str):
        nvcc = require_nvcc()
        super().__init__(source, symbol, suffix=".cu", compiler=nvcc, flags=cuda_flags(nvcc))

    def result(self) -> CudaLibrary:
        with _lock:
            if self.key in _libraries:
                return _libraries[self.key]
        base = super().result()          # compiles (or finds) and publishes the entry
        lib = CudaLibrary(base.path, base.source_path, self.symbol)
        with _lock:
            return _libraries.setdefault(self.key, lib)


# --- the runtime: device memory outside a compiled function ----------------------------------

class Runtime:
    """The small module of templates/cuda/runtime.cu.j2: counting devices, allocating, freeing
    and copying device memory for `DeviceArray`. Freed blocks are kept by size and handed out
    again (a fresh cudaMalloc and cudaFree per result would cost more than a small call's
    kernels, and cudaFree waits for the whole device); when cudaMalloc fails the kept blocks
    are freed and it is tried once more. `empty_cache()` frees them at once."""

    def __init__(self, path: Path, source_path: Path):
        self.path, self.source_path = path, source_path
        self.ffi = cffi.FFI()
        self.ffi.cdef("""
            int sg_rt_device_count(void);
            int sg_rt_out_of_memory(int status);
            int sg_rt_alloc(void **ptr, size_t nbytes, char *err, size_t err_size);
            int sg_rt_free(void *ptr);
            int sg_rt_copy(void *dst, const void *src, size_t nbytes, int kind, char *err, size_t err_size);""")
        self.lib = self.ffi.dlopen(str(path))
        self._kept: dict[int, list[int]] = {}
        self._lock = threading.Lock()

    def device_count(self) -> int:
        return max(0, self.lib.sg_rt_device_count())

    def _check(self, status, err, what):
        if status == 0:
            return
        message = f"{what}: {self.ffi.string(err).decode('utf-8', 'replace')}"
        if self.lib.sg_rt_out_of_memory(status):
            raise CudaOutOfMemory(message)
        if self.device_count() == 0:
            raise NoCudaDevice(f"{message}. No CUDA device is available: run on a machine with an NVIDIA "
                               f"GPU and driver")
        raise CudaError(message)

    def alloc(self, nbytes: int) -> int:
        if nbytes == 0:
            return 0
        with self._lock:
            kept = self._kept.get(nbytes)
            if kept:
                return kept.pop()
        ptr, err = self.ffi.new("void **"), self.ffi.new("char[]", ERROR_SIZE)
        status = self.lib.sg_rt_alloc(ptr, nbytes, err, ERROR_SIZE)
        if status != 0 and self.lib.sg_rt_out_of_memory(status):
            self.empty_cache()
            status = self.lib.sg_rt_alloc(ptr, nbytes, err, ERROR_SIZE)
        self._check(status, err, f"allocating {nbytes} bytes of CUDA device memory")
        return int(self.ffi.cast("uintptr_t", ptr[0]))

    def release(self, ptr: int, nbytes: int) -> None:
        """Keeps a block that nothing refers to any more for the next allocation of its size."""
        if ptr:
            with self._lock:
                self._kept.setdefault(nbytes, []).append(ptr)

    def empty_cache(self) -> None:
        with self._lock:
            blocks = [p for kept in self._kept.values() for p in kept]
            self._kept.clear()
        for p in blocks:
            self.lib.sg_rt_free(self.ffi.cast("void *", p))

    def copy(self, dst, src, nbytes: int, kind: int, what: str) -> None:
        err = self.ffi.new("char[]", ERROR_SIZE)
        self._check(self.lib.sg_rt_copy(dst, src, nbytes, kind, err, ERROR_SIZE), err, what)


_RUNTIME: list = []         # the loaded Runtime (tests may put an emulated one here)


def runtime_source() -> str:
    from symgrad.codegen.render import environment
    from symgrad._version import __version__
    return environment().get_template("cuda/runtime.cu.j2").render(version=__version__)


def runtime() -> Runtime:
    """The runtime module, built by nvcc (and cached) on first use."""
    if not _RUNTIME:
        with _lock:
            if not _RUNTIME:
                nvcc = require_nvcc()
                lib = Build(runtime_source(), "sg_rt_device_count", suffix=".cu", compiler=nvcc,
                            flags=cuda_flags(nvcc)).result()
                _RUNTIME.append(Runtime(lib.path, lib.source_path))
    return _RUNTIME[0]


@functools.lru_cache(maxsize=None)
def device_count() -> int:
    """CUDA devices usable from symgrad's modules: 0 without nvcc, a driver or a GPU."""
    if not have_nvcc():
        return 0
    try:
        return runtime().device_count()
    except (CompileError, OSError):
        return 0


def is_available() -> bool:
    """Whether `backend="cuda"` functions can run here (as torch.cuda.is_available)."""
    return device_count() > 0


def empty_cache() -> None:
    """Frees the device memory kept from DeviceArrays that are gone (as torch.cuda.empty_cache)."""
    if _RUNTIME:
        _RUNTIME[0].empty_cache()


# --- arrays in device memory -----------------------------------------------------------------

class DeviceArray:
    """A C-contiguous array in CUDA device memory: what a CUDA function returns when it was
    given device arrays. It exposes `__cuda_array_interface__` (version 3), so CuPy, PyTorch
    (`torch.as_tensor(a, device="cuda")`) and Numba use it without a copy, and can be passed
    back to any symgrad CUDA function. `.numpy()` (or `np.asarray`) copies it to the host.
    Its memory goes back to symgrad's cache when the last reference to it is dropped."""

    def __init__(self, shape, dtype, _runtime: Runtime | None = None):
        self._runtime = _runtime or runtime()
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        self.nbytes = self.dtype.itemsize * math.prod(self.shape)
        self.ptr = self._runtime.alloc(self.nbytes)
        weakref.finalize(self, self._runtime.release, self.ptr, self.nbytes)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    device = "cuda"

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    @property
    def __cuda_array_interface__(self) -> dict:
        # Every symgrad call waits for its kernels before returning, so no stream is pending.
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self.ptr, False),
                "version": 3, "strides": None, "stream": None}

    def numpy(self) -> np.ndarray:
        out = np.empty(self.shape, self.dtype)
        if self.nbytes:
            ffi = self._runtime.ffi
            self._runtime.copy(ffi.from_buffer(out, require_writable=True), ffi.cast("void *", self.ptr),
                               self.nbytes, 2, f"copying a {self.shape} {self.dtype} array to the host")
        return out

    def __array__(self, dtype=None, copy=None):
        out = self.numpy()
        return out if dtype is None else out.astype(dtype)

    def __repr__(self):
        if self.size <= 64:
            body = np.array2string(self.numpy(), separator=", ", prefix="DeviceArray(")
            return f"DeviceArray({body}, dtype={self.dtype}, device='cuda')"
        return f"DeviceArray(shape={self.shape}, dtype={self.dtype}, device='cuda')"


def to_device(array, dtype=None) -> DeviceArray:
    """A copy of `array` in device memory."""
    given = np.asarray(array, dtype)
    host = np.ascontiguousarray(given).reshape(given.shape)     # (it makes a 0-d array 1-d)
    out = DeviceArray(host.shape, host.dtype)
    if out.nbytes:
        rt = out._runtime
        rt.copy(rt.ffi.cast("void *", out.ptr), rt.ffi.from_buffer(host), out.nbytes, 1,
                f"copying a {host.shape} {host.dtype} array to the device")
    return out


def device_interface(value):
    """`value.__cuda_array_interface__`, or None for anything that is not a device array (a
    PyTorch CPU tensor's class has the attribute, but reading it raises AttributeError)."""
    if isinstance(value, np.ndarray):
        return None
    return getattr(value, "__cuda_array_interface__", None)


def device_pointer(cai, spec, who: str, fname: str) -> tuple[int, int]:
    """(pointer, stream) of a device array (its `__cuda_array_interface__`) given for the
    Variable `spec`, or an exception naming the input, its expected and actual shape and dtype."""
    shape = tuple(int(n) for n in cai["shape"])
    try:
        dtype = np.dtype(cai["typestr"])
    except TypeError:
        raise TypeError(f"{fname}: {who} expects dtype {spec.dtype}, got a device array of typestr "
                        f"{cai['typestr']!r} (shape {shape})") from None
    where = f"a CUDA device array of shape {shape} and dtype {dtype}"
    if dtype != spec.dtype:
        raise TypeError(f"{fname}: {who} expects dtype {spec.dtype}, got {where}; convert it on the device "
                        f"(x.to(torch.{spec.dtype}), x.astype('{spec.dtype}') in CuPy)")
    if shape != tuple(spec.shape):
        raise ValueError(f"{fname}: {who} expects shape {tuple(spec.shape)}, got {where}")
    strides = cai.get("strides")
    if strides is not None and math.prod(shape) > 1:
        want = dtypes.contiguous_strides(shape, dtype.itemsize)
        if any(n > 1 and s != w for n, s, w in zip(shape, strides, want)):
            raise ValueError(f"{fname}: {who} is {where} with strides {tuple(strides)}, not C-contiguous "
                             f"({want}): make it contiguous on the device first (.contiguous() in "
                             f"PyTorch, cupy.ascontiguousarray)")
    if cai.get("mask") is not None:
        raise ValueError(f"{fname}: {who} is a masked device array; symgrad takes unmasked arrays only")
    ptr = int(cai["data"][0] or 0)
    if ptr == 0 and math.prod(shape):
        raise ValueError(f"{fname}: {who} is {where} whose data pointer is null")
    stream = cai.get("stream") if cai.get("version", 0) >= 3 else None
    return ptr, int(stream or 0)


class Caller:
    """Calls one compiled CUDA Function. Host arrays are staged through the workspace and the
    results come back as numpy arrays; when any input is a device array, results stay on the
    device (DeviceArray). Idle workspaces are kept in a list, so concurrent callers each get
    one and a workspace is allocated only when every kept one is in use; they are freed when
    the Function is."""

    def __init__(self, fn):
        self.fn = fn
        self.lib = lib = fn.library()
        self.n_in, self.n_params = len(fn.args), len(fn.args) + len(fn.consts) + len(fn._out_specs)
        self.idle: list = []
        self.everyone: list = []
        weakref.finalize(self, _release_all, lib, self.everyone)

    def _workspace(self):
        try:
            return self.idle.pop()
        except IndexError:
            ws = self.lib.ffi.new("void *[2]")
            self.everyone.append(ws)
            return ws

    def __call__(self, values) -> list:
        fn, ffi = self.fn, self.lib.ffi
        if len(values) != self.n_in:
            fn.convert(values)              # raises: the inputs it takes
        n = max(1, self.n_params)
        args, where, streams = ffi.new("void *[]", n), ffi.new("unsigned char[]", n), ffi.new("uintptr_t[]", n)
        keep, device = [], False
        for k, (value, spec, who) in enumerate(zip(values, fn.args, fn.describe_args)):
            cai = device_interface(value)
            if cai is not None:
                ptr, stream = device_pointer(cai, spec, who, fn.name)
                args[k], where[k], streams[k] = ffi.cast("void *", ptr), 1, stream
                device = True
            else:
                arr = fn.convert_one(value, spec, who)
                keep.append(arr)
                args[k] = ffi.from_buffer(arr) if arr.size else ffi.NULL
        k = self.n_in
        for c in fn.consts:
            args[k] = ffi.from_buffer(c) if c.size else ffi.NULL
            k += 1
        outs = []
        for shape, dtype in fn._out_specs:
            if device:
                out = DeviceArray(shape, dtype)
                args[k], where[k] = ffi.cast("void *", out.ptr), 1
            else:
                out = np.empty(shape, dtype)
                args[k] = ffi.from_buffer(out, require_writable=True) if out.size else ffi.NULL
            outs.append(out)
            k += 1
        ws = self._workspace()
        try:
            self.lib.run(args, where, streams, ws)
        finally:
            self.idle.append(ws)
        return outs


def _release_all(lib, workspaces):
    for ws in workspaces:
        lib.release(ws)
