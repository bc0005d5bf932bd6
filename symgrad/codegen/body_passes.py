"""Kernel passes over loop bodies (see symgrad/passes for their order and names): a division
by a value the innermost loop does not change becomes a product with its reciprocal, which
the C compiler computes once before the loop; a rows kernel's parts that do not wait for each
other's row results run in one loop; short row sums and a few thousand rows' column sums add
up in float; large outputs written once, in order, are streamed past the cache; the next row
of a large input is fetched while a row computes. Each reads and rewrites the kernel IR; none
looks at C text."""
from __future__ import annotations

import math

from symgrad import dtypes
from symgrad.dims import Dim
from symgrad.codegen.kernel import Call, Idx, Kernel, Lit, Load, Ref, affine, loop_vars, substitute, walk
from symgrad.codegen.kernel_passes import NEST_MAX_LETS, iteration_cost, written_buffers

FLOAT_CTYPES = ("float", "double")


# --- reciprocals of loop-invariant divisors ------------------------------------------------------

def _var_sets(lets) -> dict:
    """{id(let): the loop variables its value depends on, through the locals it reads}."""
    out: dict = {}
    for let in lets:
        out[id(let)] = _vars(let.expr, out)
    return out


def _vars(e, known: dict):
    """The loop variables expression `e` depends on, looking through the locals in `known`;
    None when it reads a local not among them (then: assume every variable)."""
    found: set = set()
    for sub in walk(e):
        if isinstance(sub, Idx):
            found.add(sub.name)
        elif isinstance(sub, Ref):
            inner = known.get(id(sub.let))
            if inner is None:
                return None
            found |= inner
    return found


def hoist_reciprocals(k: Kernel) -> None:
    """`a / b`, in floating point, where `b` does not depend on the innermost loop and `a`
    does (a row's values over its norm, its sum): `a * (1 / b)`. The C compiler hoists the
    loop-invariant `1 / b` out of the loop and the loop multiplies: a vector division costs
    several times a product (layer norm divided three times per element: 5-9% of its time at
    one thread, softmax about 10%). Not exact:
    the result can differ from the quotient in its last bit (README, "Every rewrite is exact")."""
    if k.kind == "rows":
        for part in k.extra["parts"]:
            hoist_reciprocals(part)
        return
    if k.kind not in ("nest", "colpart", "colsum") or not k.loops:
        return
    inner = k.loops[-1][0]
    known = _var_sets(k.lets)

    def invariant(e) -> bool:
        deps = _vars(e, known)
        return deps is not None and inner not in deps

    def rewrite(e):
        if not (isinstance(e, Call) and e.op == "div" and e.ctype in FLOAT_CTYPES and e.in_ctype == e.ctype):
            return None
        a, b = e.args
        if not invariant(b) or invariant(a):
            return None
        recip = Call("div", (Lit(1.0, e.ctype), b), e.ctype, e.ctype)
        return Call("mul", (substitute(a, rewrite), recip), e.ctype, e.ctype)
    for let in k.lets:
        let.expr = substitute(let.expr, rewrite)
        known[id(let)] = _vars(let.expr, known)
    if k.kind in ("colpart", "colsum"):
        k.value = substitute(k.value, rewrite)
        return
    for entry in k.extra["stores"] + k.extra["accs"]:
        entry["value"] = substitute(entry["value"], rewrite)
    for c in k.extra.get("cols", ()):
        c.value = substitute(c.value, rewrite)


# --- streamed stores -------------------------------------------------------------------------------

# An output at least this large is not kept in cache by its stores: half the last-level cache
# (32 MB here, shared by the cores, the inputs and whatever runs next) or more, written once,
# it would mostly be evicted before anything reads it, and fetching each line it stores into
# (the read a store costs) is a quarter of a softmax's memory traffic (its 33 MB gradient:
# 5-15% faster streamed). Layer norm's and RMS norm's 8 MB gradients gained nothing (RMS 5%
# slower): beside their 8 MB input they stay in that cache.
STREAM_MIN_BYTES = 16 << 20
# ... and whose rows are at least this long: a short row streamed through a chunk buffer costs
# more than its stores save (logsumexp over 16 MB, rows fenced once a thread: rows of 64
# floats 3.4 ms streamed against 2.5 plain, of 256 2.4 against 2.1, of 1024 2.9 against 3.0,
# of 2048 softmax 5.0 against 5.9).
STREAM_MIN_ROW_BYTES = 4096
# A part that streams stores or prefetches runs its inner loop in chunks of this many elements:
# streamed stores go out a chunk at a time, each computed into a buffer first (a row computed
# whole and then streamed out stalled on the stores, slower than plain stores; chunks of 64
# floats were as fast as storing straight from the registers: 33 MB, 3.3 -> 2.5 ms).
CHUNK = 256


def stream_stores(k: Kernel) -> None:
    """A rows kernel's part that stores a whole row of a large output (STREAM_MIN_BYTES or
    more, in rows of STREAM_MIN_ROW_BYTES or more), in order, along its one inner loop, runs
    that loop in chunks of CHUNK, each stored into a buffer on the stack and copied out with
    non-temporal stores (`st["stream"]`, `extra["chunk"]`; templates/c/kernels.j2 and
    helpers.h.j2, sg_stream_*): the output's lines are written without first being read into
    the cache. The rows kernel is marked `streams`: each thread fences once, after its rows."""
    if k.kind != "rows":
        return
    o, rows = k.outer, k.work
    for part in k.extra["parts"]:
        if part.kind != "nest" or len(part.loops) != o + 1:
            continue
        var, n = part.loops[-1]
        if isinstance(n, Dim) or isinstance(rows, Dim):     # (a streamed loop ends on a short chunk)
            continue
        for st in part.extra["stores"]:
            b = st["buf"]
            if b.kind != "out" or b.ctype not in FLOAT_CTYPES or isinstance(b.size, Dim) or \
                    b.size != rows * n or b.size * dtypes.ITEMSIZE[b.ctype] < STREAM_MIN_BYTES or \
                    n * dtypes.ITEMSIZE[b.ctype] < STREAM_MIN_ROW_BYTES:
                continue
            index = affine(st["index"])
            base = index - Idx(var)
            if index.coefficient(Idx(var)) != 1 or var in loop_vars(*(a for a, _ in base.terms)) or \
                    not _row_major(base, k.loops[:o], n):
                continue
            if sum(x["buf"] is b for p in k.extra["parts"] for x in p.extra.get("stores", ())) != 1:
                continue
            st["stream"] = {"chunk": f"sg_chunk_{b.name}", "base": base}
            part.extra["chunk"] = CHUNK
            k.extra["streams"] = True


# --- prefetching the next row ------------------------------------------------------------------------

PREFETCH_MIN_BYTES = 1 << 20     # a buffer this large is read from memory (or the shared cache)
# The next rows of the inputs go into the first-level cache (locality 3) when together they take
# this much or less (a quarter of a 32 KB L1, beside the row's own buffers), else into the second
# (2). Layer norm's rows of 4 KB, A/B interleaved in one process: 2.82 -> 2.57 ms at 1 thread,
# 1.71 -> 1.62 at 2 (measured again in three more runs, 5-10% each).
PREFETCH_L1_ROW_BYTES = 8192


def prefetch_rows(k: Kernel) -> None:
    """A rows kernel reads each row of its large inputs in a short burst (a first part adding
    the row up), which then waits on memory, and stores each row of its large outputs in another
    (the last part), which waits on the cache lines it stores into, while its costliest part
    (the one calling exp or tanh) computes from the cache. That part fetches the next row of
    those inputs, and of the outputs stored in full rows and not streamed (for writing), a
    chunk's worth per chunk of its loop (`extra["prefetch"]`: the buffers, where their next row
    starts, 1 for a write, and the cache level: PREFETCH_L1_ROW_BYTES), so that memory and
    compute overlap. Measured A/B at 1 and 2
    threads: layer norm, RMS norm, softmax, log_softmax and logsumexp 8-16% faster."""
    if k.kind == "colsum":
        _prefetch_columns(k)
        return
    if k.kind != "rows" or isinstance(k.work, Dim):
        return
    o, parts = k.outer, k.extra["parts"]
    row_loops = k.loops[:o]
    last, extent = row_loops[-1]
    rows = [p for p in parts if p.kind == "nest" and len(p.loops) == o + 1 and
            not isinstance(p.loops[-1][1], Dim)]
    hosts = [p for p in rows if p.loops[-1][1] % CHUNK == 0]
    if not hosts:
        return
    host = max(hosts, key=iteration_cost)
    n = host.loops[-1][1]
    fetched = {}
    for p in rows:
        var = p.loops[-1][0]
        if p.loops[-1][1] != n:
            continue
        loads = (e for e in walk(*(let.expr for let in p.lets)) if isinstance(e, Load))
        accesses = [(ld.buf, ld.index, 0) for ld in loads]
        accesses += [(st["buf"], st["index"], 1) for st in p.extra.get("stores", ())
                     if st["buf"].kind == "out" and not st.get("stream")]
        for b, index, write in accesses:
            following = _next_row(b, index, var, row_loops, n) if b.size == k.work * n else None
            if id(b) not in fetched and following is not None:
                fetched[id(b)] = (b, following, write)
    if fetched:
        read = sum(n * dtypes.ITEMSIZE[b.ctype] for b, _, write in fetched.values() if not write)
        level = 3 if read <= PREFETCH_L1_ROW_BYTES else 2
        host.extra["chunk"] = CHUNK
        host.extra["prefetch"] = _prefetch_plan([(b, following, write, 2 if write else level)
                                                 for b, following, write in fetched.values()], row_loops)


def _prefetch_columns(k: Kernel) -> None:
    """Column sums whose threads each take the same stretch of every row ("columns",
    kernel_passes._parallel_column_sums) read a few KB of a row and then jump to the next,
    often a page on: the hardware prefetcher, which stops at pages, left each stretch waiting
    on memory (the max over dim 0 of 2048x1024 floats ran at 7 GB/s). Each thread fetches its
    stretch of the next row of the large buffers it reads (`extra["prefetch"]`, split among the
    threads as the loop is) while it adds up this one."""
    if k.extra.get("parallel") != "columns" or isinstance(k.work, Dim) or len(k.loops) < 2:
        return
    var, n = k.loops[-1]
    fetched = {}
    for ld in walk(*(let.expr for let in k.lets), k.value):
        if isinstance(ld, Load) and id(ld.buf) not in fetched:
            following = _next_row(ld.buf, ld.index, var, k.loops[:-1], n)
            if following is not None:
                fetched[id(ld.buf)] = (ld.buf, following, 0, 2)
    if fetched:
        k.extra["prefetch"] = _prefetch_plan(list(fetched.values()), k.loops[:-1])


def _next_row(b, index, var, row_loops, n):
    """Where the next row of an access starts, for a large buffer `b` read or written at `index`
    along `var` through rows of `n` elements laid out row-major over `row_loops`; None for any
    other access (a row buffer, a small or symbolic buffer, another layout)."""
    if b.kind == "row" or isinstance(b.size, Dim) or b.size * dtypes.ITEMSIZE[b.ctype] < PREFETCH_MIN_BYTES:
        return None
    index = affine(index)
    base = index - Idx(var)
    if index.coefficient(Idx(var)) != 1 or not _row_major(base, row_loops, n):
        return None
    last = row_loops[-1][0]
    return substitute(base, lambda e: affine(e) + 1 if e == Idx(last) else None)


def _prefetch_plan(bufs, row_loops) -> dict:
    """`extra["prefetch"]` for (buffer, where its next row starts, 1 for a write, cache level)
    tuples: fetched while not on the last of `row_loops`, a cache line apart."""
    last, extent = row_loops[-1]
    return {"rows": f"{last} + 1 < {extent}", "bufs": bufs,
            "step": 64 // max(dtypes.ITEMSIZE[b.ctype] for b, _, _, _ in bufs)}


def _row_major(base, row_loops, n) -> bool:
    """Whether offset `base` is where row (i0, i1, ...) of `row_loops` starts in a row-major
    buffer of rows of `n` elements."""
    want = dict(zip((v for v, _ in row_loops), dtypes.contiguous_strides([e for _, e in row_loops], n)))
    got = {a.name: c for a, c in base.terms if isinstance(a, Idx)}
    return base.const == 0 and len(got) == len(base.terms) and \
        {v: c for v, c in want.items() if c} == got


def streamed_types(kernels) -> set:
    """The element types of the rows streamed out (the helpers the module needs)."""
    return {st["buf"].ctype for k in kernels if k.kind == "rows" for p in k.extra["parts"]
            for st in p.extra.get("stores", ()) if st.get("stream")}


__all__ = ["float_column_sums", "float_row_sums", "hoist_reciprocals", "merge_parts", "prefetch_rows",
           "stream_stores", "streamed_types", "STREAM_MIN_BYTES"]


# --- merging a rows kernel's parts -------------------------------------------------------------------

def merge_parts(kernels: list) -> list:
    """Within each rows kernel, a part over the same loops as an earlier one joins it, its body
    after the earlier one's in one loop, when it reads none of that part's row results (a row
    sum is complete only after the loop) and what it reads of that part's stores it reads where
    they were stored (the value then stays in a register); it may move back past the parts in
    between when it reads nothing they write and writes nothing they touch. A row's sums that
    do not depend on each other (softmax's, layer norm's dx and dw sums) then take one pass,
    and a row buffer nothing reads any longer is not stored at all."""
    for k in kernels:
        if k.kind != "rows":
            continue
        out: list = []
        for p in k.extra["parts"]:
            reads, writes = _read_ids(p), _write_ids(p)
            hosts = []                  # the parts p can join, latest first
            for q in reversed(out):
                if q.kind == "nest" and _can_merge(q, p):
                    hosts.append(q)
                q_writes = _write_ids(q)
                if reads & q_writes or writes & (_read_ids(q) | q_writes):
                    break
            if not hosts:
                out.append(p)
                continue
            # the one storing most of what p reads (those values stay in registers), else the latest
            best = max(hosts, key=lambda q: len(reads & {id(st["buf"]) for st in q.extra["stores"]}))
            _merge(best, p)
        k.extra["parts"] = out
        _drop_unread_row_stores(k)
    return kernels


def _part_exprs(p: Kernel) -> list:
    if p.kind == "colpart":
        return [let.expr for let in p.lets] + [p.value]
    return [let.expr for let in p.lets] + [x["value"] for x in p.extra["stores"] + p.extra["accs"]] + \
        [c.value for c in p.extra.get("cols", ())]


def _write_ids(p: Kernel) -> set:
    return {id(b) for b in written_buffers(p)}


def _read_ids(p: Kernel) -> set:
    return {id(e.buf) for e in walk(*_part_exprs(p)) if isinstance(e, Load)}


def _direct_reads(q: Kernel, p: Kernel) -> dict:
    """{id(let): load} for p's locals that read what q stores."""
    stored = {id(st["buf"]) for st in q.extra["stores"]}
    return {id(let): let.expr for let in p.lets if isinstance(let.expr, Load) and id(let.expr.buf) in stored}


def _can_merge(q: Kernel, p: Kernel) -> bool:
    """Whether part `p` can run in the loop of part `q` (before it in the same rows kernel)."""
    if p.kind not in ("nest", "colpart") or p.loops != q.loops or len(q.lets) + len(p.lets) > NEST_MAX_LETS:
        return False
    stored = {id(st["buf"]): st for st in q.extra["stores"]}
    sums = {id(a["out"]) for a in q.extra["accs"]}
    if _read_ids(p) & sums or _write_ids(p) & (_write_ids(q) | _read_ids(q)):
        return False
    direct = _direct_reads(q, p)
    if any(stored[id(e.buf)]["index"] != e.index for e in direct.values()):
        return False
    direct_loads = {id(e) for e in direct.values()}
    # (not a stored value read inside another expression)
    return not any(isinstance(e, Load) and id(e.buf) in stored and id(e) not in direct_loads
                   for e in walk(*_part_exprs(p)))


def _merge(q: Kernel, p: Kernel) -> None:
    """Part `p`'s body appended to part `q`'s loop (_can_merge said it may)."""
    stored = {id(st["buf"]): st for st in q.extra["stores"]}
    values = {key: stored[id(e.buf)]["value"] for key, e in _direct_reads(q, p).items()}

    def resolve(e):
        return values.get(id(e.let)) if isinstance(e, Ref) else None
    kept = []
    for let in p.lets:
        if id(let) in values:
            continue
        let.expr = substitute(let.expr, resolve)
        if p.kind == "colpart":         # (a column part's locals are v0, v1...: unique no more)
            let.name = f"vm{len(q.lets) + len(kept)}"
        kept.append(let)
    q.lets.extend(kept)
    if p.kind == "colpart":
        p.value = substitute(p.value, resolve)
        p.lets = []
        q.extra.setdefault("cols", []).append(p)
    else:
        for x in p.extra["stores"] + p.extra["accs"]:
            x["value"] = substitute(x["value"], resolve)
        q.extra["stores"].extend(p.extra["stores"])
        q.extra["accs"].extend(p.extra["accs"])
        if p.extra["accs"]:
            q.outer = min(q.outer, p.outer)       # (a map part's outer loops are all its loops)
        q.extra["has_reduce"] = q.extra.get("has_reduce") or p.extra.get("has_reduce")
        q.extra.setdefault("comments", []).extend(p.extra.get("comments", [p.comment]))
        for c in p.extra.get("cols", ()):
            q.extra.setdefault("cols", []).append(c)
    if p.kind == "colpart":
        q.extra.setdefault("comments", []).append(p.comment)
    q.extra["reads"] = list(q.extra.get("reads", ())) + list(p.extra.get("reads", ()))


def _drop_unread_row_stores(k: Kernel) -> None:
    """Stores into row buffers that no part reads any more (merging kept their values in
    registers) go, and so do the row buffers nothing uses."""
    parts = k.extra["parts"]
    read = set().union(*(_read_ids(p) for p in parts)) if parts else set()
    for p in parts:
        if p.kind == "nest":
            p.extra["stores"] = [st for st in p.extra["stores"]
                                 if st["buf"].kind != "row" or id(st["buf"]) in read]
    used = read | {id(b) for p in parts for b in written_buffers(p)}
    if "row_buffers" in k.extra:
        k.extra["row_buffers"] = [(b, n) for b, n in k.extra["row_buffers"] if id(b) in used]


# --- row sums in the element type ---------------------------------------------------------------------

# A row's float sum of at most this many elements adds up in float, in vector lanes (each lane
# a partial sum of n/16 elements, the lanes then added in a tree): its rounding error stays
# within about n/16 units of the last place (4096 elements: 3e-6 relative, at worst), against
# a double accumulator's conversions of every element (two conversions and two double adds per
# sixteen floats, for each sum: layer norm's five sums were a quarter of its loop bodies).
FLOAT_ROW_SUM_MAX = 4096


def float_row_sums(k: Kernel) -> None:
    """A rows kernel's parts' row sums of float values over at most FLOAT_ROW_SUM_MAX elements
    (vectorised: `simd` marked) accumulate in float, not double. A sum across the rows too (a
    loss), and a nest's sum over several dims, keeps its double accumulator but adds each run
    of the vectorised loop (a row) up in float first (`row_float`: a float partial a row,
    added to the double once a row), so that the vectorised loop has one element width (gcc
    leaves a loop scalar whose double sum adds a selected float: a relu's, a floor's).
    Column sums keep theirs (float_column_sums). Not exact: the last bits of such a sum can
    differ (README, "Every rewrite is exact")."""
    if k.kind == "nest":
        # a nest's sum over several dims: each run of its vectorised innermost loop in float
        inner = len(k.loops) - k.outer
        n = k.loops[-1][1] if k.loops else 0
        if k.extra.get("simd") == "innermost" and inner > 1 and not isinstance(n, Dim) and \
                n <= FLOAT_ROW_SUM_MAX:
            for a in _float_sums(k):
                a["row_float"] = True
        return
    if k.kind != "rows":
        return
    o = k.outer
    for p in k.extra["parts"]:
        if p.kind != "nest" or not p.extra.get("simd") or len(p.loops) <= o:
            continue
        n = math.prod(e for _, e in p.loops[o:])
        if isinstance(n, Dim) or n > FLOAT_ROW_SUM_MAX:
            continue
        for a in _float_sums(p):
            if not a.get("global"):
                a["ctype"] = "float"
            elif len(p.loops) == o + 1:
                a["row_float"] = True


def _float_sums(k: Kernel) -> list:
    """The accumulators of nest `k` that add float values up in double."""
    return [a for a in k.extra.get("accs", ()) if a["op"] == "sum" and a["ctype"] == "double" and
            a["out"].ctype == "float"]


def float_column_sums(k: Kernel) -> None:
    """Column sums of float values that a rows kernel of at most FLOAT_ROW_SUM_MAX rows adds up
    as it goes (each thread its own row of sums, `sg_col_*`) accumulate in float, not double
    (`extra["col_ctype"]`): a column's sum then has the rounding of a row sum of that length
    done one element at a time (at worst n units of the last place, typically sqrt(n)); each
    element costs one add, not two conversions and a double add. Not exact, as float_row_sums."""
    if k.kind != "rows" or isinstance(k.work, Dim) or k.work > FLOAT_ROW_SUM_MAX:
        return
    for p in k.extra["parts"]:
        for c in [p] if p.kind == "colpart" else p.extra.get("cols", ()):
            if c.out.ctype == "float":
                c.extra["col_ctype"] = "float"
