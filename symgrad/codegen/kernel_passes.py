"""The passes over the kernels (see symgrad/passes for their order and names): merging nests
over the same loops, dropping copy-only locals, and marking the loops to parallelise and
vectorise. Each reads and rewrites the kernel IR; none looks at C text."""
from __future__ import annotations

import math

from symgrad import dtypes
from symgrad.dims import Dim
from symgrad.codegen.kernel import (Call, Idx, Kernel, Let, Lit, Load, Ref, affine, loads, loop_vars,
                                    substitute, walk)
from symgrad.ops import OPS

def written_buffers(k: Kernel):
    """The buffers kernel `k` writes: what a nest stores or reduces into, a rows kernel's
    parts' writes, any other kernel's output."""
    if k.kind == "rows":
        return [b for part in k.extra["parts"] for b in written_buffers(part)]
    if k.kind == "nest":
        return [st["buf"] for st in k.extra["stores"]] + [a["out"] for a in k.extra["accs"]] + \
            [b for c in k.extra.get("cols", ()) for b in written_buffers(c)]
    return [k.out] + ([k.extra["acc"]] if "acc" in k.extra else [])


# --- merging loop nests ----------------------------------------------------------------------
# Kernels over the same loops become one loop nest: one pass over memory instead of several,
# and a value written by one and read by the next at the same index stays in a register
# (when nothing else reads it, it is never stored at all).

def _as_nest(k: Kernel, member: int = 0) -> Kernel:
    # The locals of nest member `member` are named v<member>_<k>: unique in the merged nest.
    for j, let in enumerate(k.lets):
        let.name = f"v{member}_{j}"
    lets = list(k.lets)
    stores, accs = [], []
    if k.kind == "map":
        stores.append({"buf": k.out, "index": k.out_index, "value": k.value})
        outer = len(k.loops)
    else:
        accs.append({"name": f"acc{member}", "ctype": k.acc_ctype, "init": k.init, "op": k.reduce_op,
                     "value": k.value, "out": k.out, "index": k.out_index})
        outer = k.outer
    return Kernel("nest", k.comment, k.out, list(k.loops), outer, lets,
                  extra={"reads": list(k.extra.get("reads", ())), "stores": stores, "accs": accs,
                         "comments": [k.comment], "has_reduce": k.kind == "reduce"})


NEST_MAX_LETS = 256     # a nest this long is not lengthened: its loop body is work enough per load


def _try_merge(group: Kernel, k: Kernel, member: int):
    if k.kind not in ("map", "reduce") or k.loops != group.loops or \
            len(group.lets) + len(k.lets) > NEST_MAX_LETS:
        return None
    if k.kind == "reduce" and group.extra["has_reduce"] and k.outer != group.outer:
        return None
    # (indexes of what the group stores and reduces, kept with it: rebuilding them at each
    # merge made merging a chain of n nests take n^2 steps)
    written = group.extra.get("stored")
    if written is None:
        written = group.extra["stored"] = {st["buf"].name: st for st in group.extra["stores"]}
        group.extra["reduced"] = {a["out"].name for a in group.extra["accs"]}
    reduced = group.extra["reduced"]
    # A buffer the group reads may be written by k (an input updated in place) only at the
    # index each iteration reads it, so that no iteration sees another's new value.
    if k.out.kind == "arg" and any(ld.buf is k.out and ld.index != k.out_index
                                   for ld in loads(*(let.expr for let in group.lets))):
        return None
    nest = _as_nest(k, member)
    lets, subst = [], {}            # id(let) -> what references to it become

    def resolve(e):
        return subst.get(id(e.let)) if isinstance(e, Ref) else None
    for let in nest.lets:
        read = let.expr if isinstance(let.expr, Load) else None
        if read is not None and read.buf.name in reduced:
            return None
        if read is not None and read.buf.name in written:
            st = written[read.buf.name]
            if st["index"] != read.index:
                return None
            subst[id(let)] = st["value"]    # the value the group stores there, still in a register
        elif subst:                         # (new lets: k's own stay as they were if this fails)
            new = Let(let.ctype, let.name, substitute(let.expr, resolve))
            subst[id(let)] = Ref(new)
            lets.append(new)
        else:
            lets.append(let)
    if subst:
        for entry in nest.extra["stores"] + nest.extra["accs"]:
            entry["value"] = substitute(entry["value"], resolve)
    if k.out.name in reduced or k.out.name in written:
        return None
    has_reduce = group.extra["has_reduce"] or nest.extra["has_reduce"]
    outer = (group.outer if group.extra["has_reduce"] else nest.outer) if has_reduce else len(group.loops)
    # The merged nest takes over the group's lists (the group itself is replaced by it).
    group.lets.extend(lets)
    for field_name in ("reads", "stores", "accs", "comments"):
        group.extra[field_name].extend(nest.extra[field_name])
    written.update((st["buf"].name, st) for st in nest.extra["stores"])
    reduced.update(a["out"].name for a in nest.extra["accs"])
    merged = Kernel("nest", group.comment, group.out, group.loops, outer, group.lets)
    merged.extra = dict(group.extra, has_reduce=has_reduce)
    return merged


def fuse_nests(kernels: list) -> list:
    """Merge each map or reduce kernel into the latest earlier nest over the same loops,
    provided nothing between them writes what it reads."""
    out, member = [], 0
    for k in kernels:
        member += 1
        placed = False
        if k.kind in ("map", "reduce"):
            reads = set(k.extra.get("reads", ()))
            writes = {k.out.name}
            read_later = set()          # what the nests after out[j] read
            for j in range(len(out) - 1, -1, -1):
                if writes & read_later:  # k writes memory they read (an input updated in place)
                    break
                if out[j].kind == "nest":
                    merged = _try_merge(out[j], k, member)
                    if merged is not None:
                        out[j] = merged
                        placed = True
                        break
                if reads & {b.name for b in written_buffers(out[j])}:
                    break
                read_later |= set(out[j].extra.get("reads", ()))
        if not placed:
            out.append(_as_nest(k, member) if k.kind in ("map", "reduce") else k)
    # Values read only inside the nest that wrote them need no store.
    reads = {}
    for n, k in enumerate(out):
        for name in k.extra.get("reads", ()):
            reads.setdefault(name, set()).add(n)
    for n, k in enumerate(out):
        if k.kind != "nest":
            continue
        read_here = {id(ld.buf) for ld in loads(*(let.expr for let in k.lets))}
        kept = []
        for st in k.extra["stores"]:
            outside = reads.get(st["buf"].name, set()) - {n}
            if st["buf"].kind == "tmp" and not outside and id(st["buf"]) not in read_here:
                continue
            kept.append(st)
        k.extra["stores"] = kept
    return out


PARALLEL_MIN = 1 << 18          # matrix products under 4x this many multiply-adds run on one thread
PARALLEL_MIN_COST = 3 << 20     # a nest estimated to cost less runs on one thread (~50 us of work)


def _sums_only(k: Kernel) -> bool:
    accs = k.extra.get("accs", ())
    return bool(accs) and all(a["op"] == "sum" for a in accs)


# What one iteration of a loop body costs, roughly, in simple operations: a libm call (exp,
# tanh, pow, ...) is worth about ten adds or loads, vectorised or not.
LIBM_CALL_COST = 10


def iteration_cost(k: Kernel) -> int:
    """The estimated cost of one iteration of nest `k`: its loads, operations and stores."""
    exprs = [let.expr for let in k.lets] + [e["value"] for e in k.extra.get("stores", ())] + \
        [e["value"] for e in k.extra.get("accs", ())] + [c.value for c in k.extra.get("cols", ())]
    cost = len(k.extra.get("stores", ())) + len(k.extra.get("accs", ())) + 2 * len(k.extra.get("cols", ()))
    for e in walk(*exprs):
        if isinstance(e, Call):
            cost += LIBM_CALL_COST if OPS[e.op].libm else 1
        elif isinstance(e, Load):
            cost += 1
    return max(cost, 1)


def parallelise(k: Kernel) -> None:
    """Mark which loops of a nest its threads share (`extra["parallel"]`): the loops over the
    outputs, when the nest's estimated cost (iterations times the cost of one) pays for the
    threads, so an expensive body shares fewer iterations than a copy; for a nest that sums
    everything into a few accumulators, the reduced loop itself (each thread a partial sum)."""
    if k.kind == "rows":        # the rows are shared out; each part runs whole inside one
        cost = sum(p.work // max(k.work, 1) * iteration_cost(p) for p in k.extra["parts"])
        if _worth_threads(k, k.work * cost, PARALLEL_MIN_COST, k.loops[0][1]):
            k.extra["parallel"] = "outer"
        return
    if k.kind == "matmul":      # a batch of products: each thread takes whole products
        e = k.extra
        if k.outer and _worth_threads(k, k.work * e["M"] * e["K"] * e["N"], PARALLEL_MIN_COST // 8, k.work):
            e["parallel"] = "batch"
        return
    if k.kind == "colsum":
        _parallel_column_sums(k)
        return
    if k.kind != "nest":
        return
    big = bool(k.loops) and _worth_threads(k, k.work * iteration_cost(k), PARALLEL_MIN_COST, k.loops[0][1])
    inner = len(k.loops) - k.outer
    if big and k.outer:
        k.extra["parallel"] = "outer"
    elif big and inner and _sums_only(k):
        k.extra["parallel"] = "reduction"


# Threads adding column sums each into a private row of them keep it on their stack: up to this
# many bytes of it (a double a column).
PRIVATE_SUMS_MAX_BYTES = 256 << 10
COLUMNS_SHARED_MIN = 512        # columns enough for threads to take a stretch of each row


def _parallel_column_sums(k: Kernel) -> None:
    """Column sums (a colsum kernel, walking its input in memory order) share their loops among
    threads: where the first loop is one of the output's (a sum over a later dim), each thread
    folds into its own outputs ("outer"); else, over rows of COLUMNS_SHARED_MIN columns or
    more, each thread takes the same stretch of every row (a static schedule: "columns");
    else a sum's threads each add a block of rows into a private row of sums that OpenMP adds
    up ("reduction"; at most PRIVATE_SUMS_MAX_BYTES of them, of static size)."""
    cost = k.work * (iteration_cost(k) + 2)        # (+ the sum's load and store)
    mode = None
    if k.loops and _worth_threads(k, cost, PARALLEL_MIN_COST, k.loops[0][1]):
        first, columns, size = Idx(k.loops[0][0]), k.loops[-1][1], k.extra["size"]
        if any(a == first for a, _ in affine(k.out_index).terms):
            mode = "outer"
        elif len(k.loops) > 1 and not isinstance(columns, Dim) and columns >= COLUMNS_SHARED_MIN:
            mode = "columns"
        elif k.reduce_op == "sum" and not isinstance(size, Dim) and size * 8 <= PRIVATE_SUMS_MAX_BYTES:
            mode = "reduction"
    if mode:
        k.extra["parallel"] = mode
    else:
        k.extra.pop("parallel_if", None)        # (what _worth_threads left for a symbolic size)


def _worth_threads(k: Kernel, cost, threshold: int, extent) -> bool:
    """Whether a loop of `extent` iterations costing `cost` is worth sharing among threads. With
    symbolic sizes (symgrad.dims) that is decided at each call: the loop is marked parallel and
    `extra["parallel_if"]` holds (cost, threshold, extent) for the pragma's `if` clause, so that
    a small size runs on the calling thread as a static compile of that size would."""
    if isinstance(cost, Dim) or isinstance(extent, Dim):
        k.extra["parallel_if"] = (cost, threshold, extent)
        return True
    return cost >= threshold and extent > 1


def vectorise(k: Kernel) -> None:
    """Mark the reduced loop of a nest of sums, maxima and minima (`extra["simd"]`) whose folds
    may be reordered into vector lanes (max/min keep NaN and signed zeros right through flags
    settled after the loop: templates/c/kernels.j2): the one reduced loop ("reduction"; when threads share it,
    the parallel pragma says simd itself), or the innermost of several ("innermost": a simd
    pragma on an outer loop would leave the inner one, and its libm calls, scalar). A map whose
    innermost loop walks every buffer it touches in order, or not at all, is marked too ("map"):
    its iterations are independent and its buffers restrict, but inside the function OpenMP
    outlines a parallel loop into, the compiler no longer knows that, and past ten pairs of
    buffers to check for overlap at run time (a GELU storing five temporaries) it left the
    loop, and its tanhf, scalar."""
    if k.kind == "rows":
        for part in k.extra["parts"]:
            vectorise(part)
        return
    inner = len(k.loops) - k.outer
    if k.kind == "nest" and k.loops and not inner and not k.extra["accs"] and _walks_in_order(k):
        k.extra["simd"] = "map"
        return
    if k.kind != "nest" or not inner or not k.extra["accs"]:
        return
    if inner > 1:
        k.extra["simd"] = "innermost"
    elif k.extra.get("parallel") != "reduction":
        k.extra["simd"] = "reduction"


def _walks_in_order(k: Kernel) -> bool:
    """Whether every store of nest `k` moves by one element from one iteration of its innermost
    loop to the next, and every load by one or none (no gathers, no strides for a forced
    vectorisation to pay for, no two iterations writing one element)."""
    var = Idx(k.loops[-1][0])

    def step(index):            # how far `index` moves per iteration; None: not affinely
        index = affine(index)
        if any(atom != var and var.name in loop_vars(atom) for atom, _ in index.terms):
            return None
        return index.coefficient(var)
    exprs = [let.expr for let in k.lets] + [st["value"] for st in k.extra["stores"]]
    return all(step(st["index"]) == 1 for st in k.extra["stores"]) and \
        all(step(ld.index) in (0, 1) for ld in loads(*exprs))


def drop_copies(k: Kernel) -> None:
    """Locals that only copy another local or a literal (what merging leaves where a value
    stayed in a register) are replaced by what they copy."""
    if k.kind == "rows":
        for part in k.extra["parts"]:
            drop_copies(part)
        return
    copies = {}

    def resolve(e):
        if isinstance(e, Ref) and id(e.let) in copies:
            return copies[id(e.let)]
        return None
    kept = []
    for let in k.lets:
        expr = substitute(let.expr, resolve)
        if isinstance(expr, (Ref, Lit)):
            copies[id(let)] = expr
            continue
        let.expr = expr
        kept.append(let)
    if not copies:
        return
    k.lets = kept
    k.value = substitute(k.value, resolve) if k.value is not None else None
    for st in k.extra.get("stores", ()):
        st["value"] = substitute(st["value"], resolve)
    for a in k.extra.get("accs", ()):
        a["value"] = substitute(a["value"], resolve)
    for c in k.extra.get("cols", ()):       # column sums merged into the nest (merge_parts)
        c.value = substitute(c.value, resolve)


TILE = 16           # a transposing nest runs in TILE x TILE blocks (a block of float32: 1 KB each way)


def tile_transposes(k: Kernel) -> None:
    """A map nest that stores along its innermost loop and reads some buffer across it (a
    transpose: that buffer's index steps TILE or more elements per iteration, and 1 along the
    next loop out) runs its two innermost loops in TILE x TILE blocks, so that the lines of a
    block, read and written, stay in L1 while it is done: a 128x64 float32 transpose read 8 KB
    of lines 16 times over (7-10 us), in blocks once (2.6 us). The loop variables of a block
    are the old names, each old index becoming TILE * <name>_t + <name>; extents that TILE
    does not divide, and symbolic ones, are left alone."""
    if k.kind != "nest" or k.extra["accs"] or len(k.loops) < 2 or k.outer != len(k.loops):
        return
    (a, na), (b, nb) = k.loops[-2], k.loops[-1]
    if isinstance(na, Dim) or isinstance(nb, Dim) or na % TILE or nb % TILE or na == TILE and nb == TILE:
        return
    inner, outer = Idx(b), Idx(a)
    stores = k.extra["stores"]
    if not stores or any(affine(st["index"]).coefficient(inner) != 1 for st in stores):
        return
    exprs = [let.expr for let in k.lets] + [st["value"] for st in stores]
    if not any(abs(affine(ld.index).coefficient(inner)) >= TILE and affine(ld.index).coefficient(outer) == 1
               for ld in loads(*exprs)):
        return
    at, bt = Idx(f"{a}_t"), Idx(f"{b}_t")
    moved = {outer: affine(at) * TILE + outer, inner: affine(bt) * TILE + inner}

    def place(e):
        return moved.get(e) if isinstance(e, Idx) else None
    for let in k.lets:
        let.expr = substitute(let.expr, place)
    for st in stores:
        st["index"], st["value"] = substitute(st["index"], place), substitute(st["value"], place)
    k.loops[-2:] = [(at.name, na // TILE), (bt.name, nb // TILE), (a, TILE), (b, TILE)]
    k.outer = len(k.loops)


# --- row fusion ------------------------------------------------------------------------------------

def merge_rows(kernels: list) -> list:
    """Row fusion: consecutive nests over the same outer loops, at least one of them reducing
    over the inner ones (a row's max, its sum), become the parts of one `rows` kernel that runs
    them in turn for each row. What a part reads of a row another just wrote is then in cache,
    not one more pass over memory: softmax, logsumexp and the norms read their input once."""
    out = []
    for k in kernels:
        prev = out[-1] if out else None
        host = _column_host(out, k)
        if host is not None:
            k.kind = "colpart"                  # summed over the rows as they go by
            host.extra["parts"].append(k)
            host.extra["reads"] += list(k.extra.get("reads", ()))
            continue
        o = _rows_prefix(prev, k) if prev is not None else None
        if o is None:
            out.append(k)
            continue
        if k.extra["accs"] and k.outer != o:     # a loss: its sums run on across the rows,
            for a in k.extra["accs"]:               # per row it is a part like any other
                a["global"] = True
            k.outer = o
        if prev.kind != "rows":
            prev = out[-1] = Kernel("rows", prev.comment, prev.out, list(prev.loops[:o]), o,
                                    extra={"parts": [prev], "reads": list(prev.extra.get("reads", ()))})
        prev.extra["parts"].append(k)
        prev.extra["reads"] += list(k.extra.get("reads", ()))
    return out


# Rows shorter than this are not fused: per row and part, a vector loop's tail, a reduction's
# horizontal finish and a vector libm call for a row's one log cost more than staying in cache
# saves (cross-entropy over 10 classes ran 1.4x slower fused; from 128 classes, the same).
ROW_FUSION_MIN = 64
COLUMN_PART_MAX = 4096          # columns summed inside the rows (each thread a private row of sums)
COLUMN_HOST_LOOKBACK = 8        # kernels looked back over for the rows a column sum joins


def _written_at(parts) -> dict:
    """{id(buffer): [indexes]}: where the parts of a rows kernel write each buffer (a column
    sum's: anywhere, None)."""
    written = {}
    for p in parts:
        for entry in p.extra.get("stores", ()):
            written.setdefault(id(entry["buf"]), []).append(entry["index"])
        for entry in p.extra.get("accs", ()):
            written.setdefault(id(entry["out"]), []).append(entry["index"])
        if p.kind == "colpart":
            written.setdefault(id(p.out), []).append(None)
    return written


def _reads_a_cross_row_sum(parts, k: Kernel) -> bool:
    """Whether `k` reads what a part's cross-row accumulator (a loss summed over every row,
    `global`) writes: that value is complete only after the last row, so no part of the same
    rows kernel may read it."""
    finals = {id(a["out"]) for p in parts for a in p.extra.get("accs", ()) if a.get("global")}
    written = k.extra.get("stores", []) + k.extra.get("accs", [])
    exprs = [let.expr for let in k.lets] + [x["value"] for x in written]
    if k.value is not None:
        exprs.append(k.value)
    return bool(finals) and any(id(ld.buf) in finals for ld in loads(*exprs))


def _column_host(out: list, k: Kernel):
    """The latest rows kernel in `out` that column sums `k` can join as a part, looking back
    over kernels that neither write what k reads nor read what it writes (k moves before them)."""
    if k.kind != "colsum":
        return None
    reads = set(k.extra.get("reads", ()))
    for j in range(len(out) - 1, max(-1, len(out) - 1 - COLUMN_HOST_LOOKBACK), -1):
        if out[j].kind == "rows" and _column_part(out[j], k):
            return out[j]
        if reads & {b.name for b in written_buffers(out[j])} or k.out.name in out[j].extra.get("reads", ()):
            return None
    return None


def _column_part(rows: Kernel, k: Kernel) -> bool:
    """Whether column sums `k` (over the rows, into one value a column: dw and db of a norm)
    can run inside `rows` as its last part: same row loops, a row of sums small enough for
    each thread to hold its own, and every buffer a part writes read where it was written."""
    o = rows.outer
    if k.kind != "colsum" or k.reduce_op != "sum" or k.loops[:o] != rows.loops[:o] or \
            len(k.loops) <= o or isinstance(k.extra["size"], Dim) or k.extra["size"] > COLUMN_PART_MAX:
        return False
    row_vars = {v for v, _ in rows.loops[:o]}
    if any(isinstance(atom, Idx) and atom.name in row_vars for atom, _ in affine(k.out_index).terms):
        return False
    if _reads_a_cross_row_sum(rows.extra["parts"], k):
        return False
    written = _written_at(rows.extra["parts"])
    for ld in loads(k.value, *(let.expr for let in k.lets)):
        if id(ld.buf) in written and ld.index not in written[id(ld.buf)]:
            return False
    read_before = {id(ld.buf) for p in rows.extra["parts"] for ld in loads(*(let.expr for let in p.lets))}
    return id(k.out) not in read_before and id(k.out) not in written


def _sums_over_everything(k: Kernel) -> bool:
    """A nest whose accumulators are all sums over every loop (a loss): it can run as a part
    of rows whose sums it carries across them (its accumulators then `global`)."""
    return k.kind == "nest" and k.outer == 0 and _sums_only(k)


def _rows_prefix(prev: Kernel, k: Kernel):
    """How many outer loops `k` can share with `prev` (a nest or a rows kernel) as a part run
    after it for each row, or None. A part with accumulators keeps exactly its own outer
    loops outside them; every buffer k reads that the earlier parts write, it reads where they
    wrote it (the same row); and k writes nothing they read."""
    if k.kind != "nest" or prev.kind not in ("nest", "rows"):
        return None
    parts = prev.extra["parts"] if prev.kind == "rows" else [prev]
    if prev.kind == "rows":
        o = prev.outer
    elif prev.extra["accs"]:
        o = prev.outer
    elif k.extra["accs"]:
        o = k.outer
    else:
        return None                        # two maps: merge_nests' business
    whole = o >= 1 and _sums_over_everything(k) and len(k.loops) >= o
    if o < 1 or (k.extra["accs"] and k.outer != o and not whole) or \
            (not k.extra["accs"] and len(k.loops) < o):
        return None
    if any(p.extra.get("accs") and p.outer != o for p in parts) or k.loops[:o] != parts[0].loops[:o]:
        return None
    if not any(len(p.loops) > o for p in parts + [k]) or _reads_a_cross_row_sum(parts, k):
        return None
    if max(math.prod(n for _, n in p.loops[o:]) for p in parts + [k]) < ROW_FUSION_MIN:
        return None
    written = _written_at(parts)
    exprs = [let.expr for let in k.lets]
    for ld in loads(*exprs):
        if id(ld.buf) in written and ld.index not in written[id(ld.buf)]:
            return None
    read_before = {id(ld.buf) for p in parts for ld in loads(*(let.expr for let in p.lets))}
    if any(id(b) in read_before for b in written_buffers(k)):
        return None
    return o


# --- row buffers -----------------------------------------------------------------------------------

ROW_BUFFER_BYTES = 64 << 10     # a row of a temporary this small lives on the stack, per row
ROW_BUFFERS_BYTES = 256 << 10   # and all of a rows kernel's together (L2 holds them: 1 MB a core here)


def localise_rows(kernels: list) -> list:
    """A temporary that a rows kernel writes and reads a row at a time, and nothing else reads,
    needs no memory beyond one row: it becomes a row buffer declared inside the row loop
    (`extra["row_buffers"]`), still in cache when the next part reads it, never written back
    to memory. Layer norm's forward and backward then read x once and write dx once."""
    read_by = [set(k.extra.get("reads", ())) for k in kernels]
    for n, k in enumerate(kernels):
        if k.kind != "rows":
            continue
        o, extents = k.outer, [e for _, e in k.loops[:k.outer]]
        rows = math.prod(extents)
        outside = set().union(*(r for m, r in enumerate(read_by) if m != n))
        parts = k.extra["parts"]
        accesses = {}               # id(buf) -> (buf, [indexes])
        for p in parts:
            for st in p.extra.get("stores", ()):
                accesses.setdefault(id(st["buf"]), (st["buf"], []))[1].append(st["index"])
            for a in p.extra.get("accs", ()):
                if not a.get("global"):
                    accesses.setdefault(id(a["out"]), (a["out"], []))[1].append(a["index"])
        exprs = [let.expr for p in parts for let in p.lets] + \
            [x["value"] for p in parts for x in p.extra.get("stores", []) + p.extra.get("accs", [])] + \
            [p.value for p in parts if p.kind == "colpart"]
        for ld in loads(*exprs):
            if id(ld.buf) in accesses:
                accesses[id(ld.buf)][1].append(ld.index)
        chosen, total = {}, 0
        for buf, indexes in accesses.values():
            per_row = buf.size // rows if buf.size % rows == 0 else 0
            if isinstance(per_row, Dim):     # a row of a size given at each call: memory, not the stack
                continue
            nbytes = per_row * dtypes.ITEMSIZE[buf.ctype]
            if buf.kind != "tmp" or buf.name in outside or not per_row or nbytes > ROW_BUFFER_BYTES \
                    or total + nbytes > ROW_BUFFERS_BYTES:
                continue
            row_terms = _row_terms(k.loops[:o], per_row)
            if all(_has_row_terms(ix, row_terms) for ix in indexes):
                chosen[id(buf)] = (buf, per_row, row_terms)
                total += nbytes
        if not chosen:
            continue

        def fix(e):
            if isinstance(e, Load) and id(e.buf) in chosen:
                return Load(e.buf, _drop(affine(e.index), chosen[id(e.buf)][2]))
            return None
        for p in parts:
            for let in p.lets:
                let.expr = substitute(let.expr, fix)
            if p.kind == "colpart":
                p.value = substitute(p.value, fix)
                continue
            for st in p.extra["stores"]:
                st["value"] = substitute(st["value"], fix)
                if id(st["buf"]) in chosen:
                    st["index"] = _drop(affine(st["index"]), chosen[id(st["buf"])][2])
            for a in p.extra["accs"]:
                a["value"] = substitute(a["value"], fix)
                if id(a["out"]) in chosen:
                    a["index"] = _drop(affine(a["index"]), chosen[id(a["out"])][2])
        for buf, per_row, _ in chosen.values():
            buf.kind = "row"
        k.extra["row_buffers"] = [(buf, per_row) for buf, per_row, _ in chosen.values()]
    return kernels


def _row_terms(outer_loops, per_row) -> dict:
    """The coefficients of the row loops in a row-major index of a buffer with per_row
    elements a row."""
    return dict(zip((v for v, _ in outer_loops),
                    dtypes.contiguous_strides([e for _, e in outer_loops], per_row)))


def _has_row_terms(index, row_terms) -> bool:
    coeffs = {atom.name: c for atom, c in affine(index).terms if isinstance(atom, Idx)}
    atoms = [atom for atom, _ in affine(index).terms]
    if any(not isinstance(atom, Idx) for atom in atoms):
        return False
    return all(coeffs.get(v) == c for v, c in row_terms.items())


def _drop(index, row_terms):
    out = affine(index.const)
    for atom, c in index.terms:
        if not (isinstance(atom, Idx) and atom.name in row_terms):
            out = out + affine(atom) * c
    return out
