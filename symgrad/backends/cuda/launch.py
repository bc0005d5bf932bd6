"""The launch plan of a CUDA module, computed from the schedule's kernel IR: for every kernel
its grid and block, its reduction strategy (thread, warp, block or split), how its loop
variables are recovered from a linear index, and its vectorised or tiled variant; and where
each buffer lives in a workspace. `template_context(schedule)` is what templates/cuda/ render."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from symgrad import dtypes
from symgrad.codegen import kernel as K
from symgrad.codegen.names import comment_safe
from symgrad.codegen.render import c_text, kernel_macros

THREADS = 256                   # threads per block of map and block-reduce kernels
MAX_GRID = 8192                 # grid-stride loops cover whatever a capped grid does not
MATMUL_TILE, MATMUL_BK = 64, 16  # output tile (64 x 64, 4 x 4 per thread) and depth step
MAX_BATCH_DIMS = 8              # batch dims a matmul launch describes (after merging)
VECTOR = 4                      # elements per thread and step of a vectorised kernel
TILE, TILE_ROWS = 32, 8         # transposes: 32 x 32 tiles, by blocks of 32 x 8 threads


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
    return comment_safe(text).replace('"', "'")


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
        accs = [_acc(j, a["op"], a["ctype"], c_text(a["init"]), c_text(a["value"]), a["out"],
                     c_text(a["index"])) for j, a in enumerate(e["accs"])]
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
            p = KernelPlan(f"sg_matmul<{e['ctype']}>", "matmul", [comment_safe(k.comment)],
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
        p = KernelPlan(f"sg_k{i}_{first}", "loops", [comment_safe(c) for c in comments],
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
            elif len(k.loops) >= 2 and not p.skip and \
                    _transpose(p, k.loops, buffers, ir_lets, ir_stores, used):
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

