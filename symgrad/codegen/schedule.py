"""Fusion and buffers: which nodes get memory, and the loop nests (kernels) that fill it.

A node is *materialized* (it gets a buffer) when it is an argument, a constant, an output,
a reduction, a matrix product, or a costly value used by more than one node. Every other
node is computed inline, inside the kernel of whoever reads it, at the index it is read at:
elementwise chains fuse into one loop, a reduction absorbs the elementwise ops that feed it,
and broadcasts, transposes, slices and reshapes become index arithmetic."""
from __future__ import annotations


from symgrad import config, dtypes
from symgrad.dims import Dim, provably_at_least, round_up_terms
from symgrad.codegen import gather
from symgrad.codegen.names import comment_name
from symgrad.codegen.ir import Graph, Node
from symgrad.codegen.kernel import (ZERO, Bin, Buffer, Call, Cast, Idx, Init, Kernel, Let, Lit, Load, Ref,
                                    Schedule, Select, affine)
from symgrad.codegen.body_passes import (float_column_sums, float_row_sums, hoist_reciprocals, merge_parts,
                                         prefetch_rows, stream_stores)
from symgrad.blas import BLAS_SMALL_MAX, BLAS_SMALL_SPLIT
from symgrad.codegen.kernel_passes import (PARALLEL_MIN, _as_nest,
                                           written_buffers, drop_copies, fuse_nests, localise_rows,
                                           merge_rows, parallelise, tile_transposes, vectorise)

__all__ = ["PARALLEL_MIN", "Scheduler", "describe"]
from symgrad.ops import OPS

LAYOUT = {"broadcast_to", "permute", "slice", "reshape"}
CHEAP = {"neg", "cast", "stop_gradient", "iota", "size_of"}
MAX_INLINE_DEPTH = 200      # a chain deeper than this is stored part-way (and C stays a sane size)
# A value used several times is worked out again by each user rather than stored (_recomputed)
# when it takes this many bytes or more (memory, not the cache), is at most this many arithmetic
# ops, and the walk over where it goes meets at most this many nodes. Batch norm over dim 0 of
# 4096x512, A/B in one process: its centred values (x - mean) worked out again 7.0 -> 6.5 ms at 2
# threads; its tanh, or logsumexp's exp, worked out again were slower or no faster (10.6 -> 13.0).
RECOMPUTE_MIN_BYTES = 1 << 20
RECOMPUTE_MAX_OPS = 4
RECOMPUTE_MAX_USERS = 64


def _offset(index, shape):
    """The element offset of `index` (expressions, one per dim) in a contiguous buffer."""
    out = ZERO
    for ix, st, n in zip(index, dtypes.contiguous_strides(shape), shape):
        if n != 1:
            out = out + affine(ix) * st
    return out


def _unit_reshape_map(src, dst):
    """If `dst` only adds or drops size-1 dims of `src`, the dst dim each src dim maps to."""
    a = [k for k, n in enumerate(src) if n != 1]
    b = [k for k, n in enumerate(dst) if n != 1]
    if [src[k] for k in a] != [dst[k] for k in b]:
        return None
    return dict(zip(a, b))


def describe(node: Node, depth=3, stop=None, limit=400) -> str:
    """A formula for a comment: tanh(add(mul(x, w), b)). `stop(n)` names the nodes to show
    by name rather than open (a kernel's input buffers); without it, `depth` levels are shown.
    At most `limit` characters."""
    parts: list = []
    size = [0]

    def out(text):
        if size[0] <= limit:
            parts.append(text)
            size[0] += len(text)

    def walk(n, d):
        name = stop(n) if stop is not None else None
        if name is not None:
            out(name)
        elif n.op == "arg" or n.op == "const":
            out(comment_name(n.name) if n.name else f"{n.op}{n.index if n.index >= 0 else ''}")
        elif n.op == "literal":
            out(repr(n.value))
        elif (stop is None and d == 0) or size[0] > limit:
            out("...")
        else:
            out(f"{n.op}(")
            for k, i in enumerate(n.inputs):
                if k:
                    out(", ")
                walk(i, d - 1)
            out(")")
    walk(node, depth)
    text = "".join(parts)
    return text if size[0] <= limit else text[:limit] + " ..."


class Scheduler:
    def __init__(self, graph: Graph, names, column_reductions=False, out_names=None, kernel_passes=None,
                 aliases=None, row_fusion=True, tiled_transposes=True):
        self.row_fusion = row_fusion     # the backend renders `rows` kernels (C does; CUDA not yet)
        self.tiled_transposes = tiled_transposes     # and transposing copies in blocks (C)
        self.column_reductions = column_reductions
        # {output position: argument position}: outputs written into their argument's memory
        # (an input updated in place), not into buffers of their own
        self.aliases = dict(aliases or {})
        # the kernel passes to run (symgrad.passes: merge_nests, drop_copies); default: as configured
        self.kernel_passes = kernel_passes
        self.out_names = out_names
        self.g = graph
        self.names = names             # a NameTable: C identifiers from the user's names
        self.order = graph.nodes()
        self.users = {}
        for n in self.order:
            for i in set(map(id, n.inputs)):
                self.users[i] = self.users.get(i, 0) + 1
        self.buffers: dict[int, Buffer] = {}
        self.kernels: list[Kernel] = []

    # --- which nodes get memory --------------------------------------------------------

    def _cheap(self, n: Node) -> bool:
        """Only literals, buffers and layout or cast-like ops down to them (a loop, not
        recursion: chains can be thousands of ops long)."""
        stack, seen = [n], set()
        while stack:
            v = stack.pop()
            if v.op == "literal" or id(v) in self.materialized or id(v) in seen:
                continue
            if v.op not in LAYOUT and v.op not in CHEAP:
                return False
            seen.add(id(v))
            stack.extend(v.inputs)
        return True

    def plan(self):
        m = self.materialized = set()
        for n in self.order:
            if n.op in ("arg", "const") or n.op in ("matmul",) or \
                    OPS.get(n.op) is not None and OPS[n.op].kind in ("reduce", "argreduce", "scatter"):
                m.add(id(n))
        for n in self.g.outputs:
            if n.op not in ("literal",):
                m.add(id(n))
        for n in self.order:
            if n.op == "reshape" and _unit_reshape_map(n.inputs[0].shape, n.shape) is None:
                m.add(id(n.inputs[0]))          # a general reshape reads its input linearly
            if n.op == "matmul":
                for i in n.inputs:
                    if not self._strided_view(i):
                        m.add(id(_below_relabelling(i)))
                if _transposed_b_stored_plain(n, self.users.get(id(n.inputs[1]), 1)):
                    m.add(id(n.inputs[1]))
        consumers = {}
        for n in self.order:
            for i in n.inputs:
                consumers.setdefault(id(i), []).append(n)
        for n in reversed(self.order):        # costly values with several users: compute once
            if id(n) not in m and self.users.get(id(n), 0) > 1 and not self._cheap(n) and \
                    not self._recomputed(n, consumers):
                m.add(id(n))
        depth = {}                            # bound how deep one inlined expression goes
        for n in self.order:
            d = 0 if id(n) in m else 1 + max((depth[id(i)] for i in n.inputs), default=0)
            if d > MAX_INLINE_DEPTH:
                m.add(id(n))
                d = 0
            depth[id(n)] = d

    def _recomputed(self, n: Node, consumers) -> bool:
        """Whether the users of `n`, a large value of a few arithmetic ops (no libm call: an
        exp or a tanh more an element cost more than the cache saved), each work it out again
        rather than one storing it for the others, where a sum over leading dims (a column sum)
        takes it in, directly or through elementwise ops: its other users, after the sum,
        cannot share the producer's loop, so it would be a full temporary, written once and
        read by each (batch norm's x - mean), against a subtraction more an element. Not where
        a reduction over the innermost dim takes it in (row fusion keeps it in a row buffer, in
        the cache), nor a matrix product; a map's users in one loop share it in a register."""
        if not self.row_fusion or OPS.get(n.op) is None or OPS[n.op].kind != "elementwise" or \
                isinstance(n.size, Dim) or \
                n.size * dtypes.ITEMSIZE[dtypes.c_type(n.dtype)] < RECOMPUTE_MIN_BYTES:
            return False
        calls = ops = 0
        stack, seen = [n], set()
        while stack:                          # its expression, down to what is stored
            v = stack.pop()
            if id(v) in seen or v.op in ("arg", "const", "literal") or \
                    (v is not n and (id(v) in self.materialized or self.users.get(id(v), 0) > 1)):
                continue
            seen.add(id(v))
            if v.op not in LAYOUT and v.op not in CHEAP:
                op = OPS.get(v.op)
                if op is None or op.kind != "elementwise":
                    return False
                calls, ops = calls + bool(op.libm), ops + 1
            stack.extend(v.inputs)
        if calls or ops > RECOMPUTE_MAX_OPS:
            return False
        stack, seen, column = [n], set(), False
        while stack:                          # where it goes
            v = stack.pop()
            for u in consumers.get(id(v), ()):
                if id(u) in seen:
                    continue
                seen.add(id(u))
                kind = OPS[u.op].kind if u.op in OPS else ""
                axes = u.attrs.get("axes", ()) if kind == "reduce" else ()
                # (a total, over every dim, any loop can add up)
                if len(seen) > RECOMPUTE_MAX_USERS or u.op == "matmul" or kind == "argreduce" or \
                        len(v.shape) - 1 in axes and len(axes) < len(v.shape):
                    return False
                if kind == "reduce":
                    column = column or len(axes) < len(v.shape)
                elif kind != "elementwise" and u.op not in LAYOUT and u.op not in CHEAP:
                    return False
                else:
                    stack.append(u)
        return column

    def _strided_view(self, n: Node) -> bool:
        while id(n) not in self.materialized:
            if n.op == "reshape" and _unit_reshape_map(n.inputs[0].shape, n.shape) is None:
                return id(n.inputs[0]) in self.materialized     # read in memory order
            if n.op not in ("permute", "broadcast_to", "slice", "reshape"):
                return False
            n = n.inputs[0]
        return True

    # --- buffers ------------------------------------------------------------------------------

    def _buffer(self, n: Node) -> Buffer:
        return self.buffers[id(n)]

    def assign_buffers(self):
        ct = dtypes.c_type
        args = []
        for a in self.g.args:
            b = Buffer(self.names.get(a.name or f"arg{a.index}"), a, "arg", ct(a.dtype), a.size,
                       a.index, const=True)
            self.buffers[id(a)] = b
            args.append(b)
        consts = []
        for k, c in enumerate(self.g.consts):
            b = Buffer(self.names.get(c.name or f"const{k}"), c, "const", ct(c.dtype), c.size,
                       len(args) + k, const=True)
            self.buffers[id(c)] = b
            consts.append(b)
        outs, self.updates = [], []
        for k, o in enumerate(self.g.outputs):
            if k in self.aliases:        # computed as a temporary, then copied over the argument
                target = args[self.aliases[k]]
                target.const = False
                self.updates.append((o, target))
                continue
            given = self.out_names[k] if self.out_names else None
            b = Buffer(self.names.get(given or f"out{k}" + (f"_{o.name}" if o.name else "")), o, "out",
                       ct(o.dtype), o.size, len(outs))
            outs.append(b)
            if id(o) not in self.buffers or self.buffers[id(o)].kind == "tmp":
                if o.op not in ("arg", "const", "literal") and id(o) not in self.buffers:
                    self.buffers[id(o)] = b
        self.args, self.consts, self.outs = args, consts, outs
        tmps = []
        for n in self.order:
            if id(n) in self.materialized and id(n) not in self.buffers:
                b = Buffer(self.names.get(n.name or f"t_{n.op}"), n, "tmp", ct(n.dtype), n.size)
                self.buffers[id(n)] = b
                tmps.append(b)
        self.tmps = tmps

    # --- kernels --------------------------------------------------------------------------------

    def build(self) -> Schedule:
        self.plan()
        self.assign_buffers()
        done = set()
        for n in self.order:
            if id(n) in self.materialized and n.op not in ("arg", "const"):
                if n.op == "concat":
                    self.kernels += self._concat_kernels(n, self._buffer(n))
                else:
                    self.kernels.append(self._kernel_for(n, self._buffer(n)))
                done.add(id(n))
        for o, b in zip([o for k, o in enumerate(self.g.outputs) if k not in self.aliases], self.outs):
            if self.buffers.get(id(o)) is not b:      # an input, literal or repeated output: copy
                self.kernels.append(self._map_kernel(o, b, read_root=True))
        # Updates last, after everything that reads the old values; merge_nests moves one
        # earlier only where nothing after it reads the argument. A new value that is another
        # updated argument (a swap) is read from a snapshot taken before any is written.
        updated = {id(t) for _, t in self.updates}
        snapshots = {}
        for o, target in self.updates:
            b = self.buffers.get(id(o))
            if b is not None and id(b) in updated and b is not target and id(o) not in snapshots:
                snap = Buffer(self.names.get(f"old_{b.name}"), o, "tmp", b.ctype, b.size)
                self.tmps.append(snap)
                self.kernels.append(self._map_kernel(o, snap, read_root=True))
                snapshots[id(o)] = snap
        for key, snap in snapshots.items():
            self.buffers[key] = snap
        for o, target in self.updates:
            if o.op == "arg" and o.index == target.node.index:
                continue                                      # updated to itself
            k = self._map_kernel(o, target, read_root=True)
            k.comment = f"{target.name} = {self._describe(o, o)}, updated in place"
            self.kernels.append(k)
        from symgrad import passes
        enabled = passes.kernel_passes() if self.kernel_passes is None else self.kernel_passes
        if "merge_nests" in enabled and config.fuse_nests():
            self.kernels = fuse_nests(self.kernels)
        else:
            self.kernels = [_as_nest(k, m) if k.kind in ("map", "reduce") else k
                            for m, k in enumerate(self.kernels, 1)]       # (unique local names)
        if "merge_rows" in enabled and self.row_fusion:
            self.kernels = localise_rows(merge_rows(self.kernels))
            if "merge_parts" in enabled:
                self.kernels = merge_parts(self.kernels)
        for name, kernel_pass in (("drop_copies", drop_copies), ("reciprocals", hoist_reciprocals),
                                  ("tile_transposes", tile_transposes),
                                  ("parallelise", parallelise), ("vectorise", vectorise),
                                  ("float_row_sums", float_row_sums),
                                  ("float_column_sums", float_column_sums),
                                  ("stream_stores", stream_stores), ("prefetch_rows", prefetch_rows)):
            if name in enabled and (name != "tile_transposes" or self.tiled_transposes):
                for k in self.kernels:
                    kernel_pass(k)
        written = {id(b) for k in self.kernels for b in written_buffers(k)}
        self.tmps = [b for b in self.tmps if id(b) in written and b.kind == "tmp"]   # (not row buffers)
        scratch = self._plan_scratch()
        return Schedule(self.args, self.consts, self.outs, self.tmps, self.kernels, scratch, self.updates)

    def _plan_scratch(self) -> int:
        """Offsets for temporaries, reusing the memory of those no longer needed."""
        last_use = {}
        for k, kern in enumerate(self.kernels):
            for name in kern.extra.get("reads", ()):
                last_use[name] = k
        free, top = [], 0
        live = []
        tmps = {id(b) for b in self.tmps}
        for k, kern in enumerate(self.kernels):
            written = [w for w in written_buffers(kern) if id(w) in tmps]
            for b in written:
                if b.position >= 0:
                    continue
                nbytes = padded_bytes(b.size * dtypes.ITEMSIZE[b.ctype])
                for j, (off, size) in enumerate(free):
                    # (at every size, where sizes are symbolic: never by the hints)
                    if provably_at_least(size, nbytes):
                        b.position = off
                        if isinstance(size, int) and not isinstance(size, Dim) and size == nbytes:
                            del free[j]         # used up: no request fits it (the list stays short)
                        else:
                            free[j] = (off + nbytes, size - nbytes)
                        break
                else:
                    b.position, top = top, top + nbytes
                live.append((b, nbytes))
            still = []
            for tb, nbytes in live:
                if last_use.get(tb.name, -1) <= k and all(tb is not w for w in written):
                    free.append((tb.position, nbytes))
                else:
                    still.append((tb, nbytes))
            live = still
        return top

    def _describe(self, node: Node, root: Node | None = None) -> str:
        """`node`'s formula down to the buffers the kernel computing `root` (default: `node`)
        reads, named as in the code."""
        root = node if root is None else root

        def stop(n):
            if n is not root and id(n) in self.materialized and id(n) in self.buffers:
                return self.buffers[id(n)].name
            return None
        return describe(node, stop=stop)

    def _loops(self, shape, prefix="i"):
        return [(f"{prefix}{k}", n) for k, n in enumerate(shape)]

    def _map_kernel(self, node, out, read_root=False):
        loops = self._loops(node.shape)
        em = Emitter(self, root=None if read_root else node)
        value = em.emit(node, [Idx(v) for v, _ in loops])
        return Kernel("map", f"{out.name} = {self._describe(node)}", out, loops, len(loops), em.lets, value,
                      _offset([Idx(v) for v, _ in loops], node.shape), extra={"reads": em.reads})

    def _concat_kernels(self, n: Node, out: Buffer) -> list:
        """A stored concatenation: one nest a piece, each over the piece's own loops and storing
        into its stretch of the buffer (a nest over the whole would test which piece every
        element is in, and read every piece to choose)."""
        axis, start, kernels = n.attrs["axis"], 0, []
        for x in n.inputs:
            if 0 in x.shape:
                continue
            loops = self._loops(x.shape)
            index = [Idx(v) for v, _ in loops]
            em = Emitter(self, root=n)
            value = em.emit(x, index)
            at = list(index)
            at[axis] = affine(at[axis]) + start
            stretch = f"[{start}:{start + x.shape[axis]}] along dim {axis}"
            kernels.append(Kernel("map", f"{out.name} = concat piece {stretch}: {self._describe(x, n)}", out,
                                  loops, len(loops), em.lets, value, _offset(at, n.shape),
                                  extra={"reads": em.reads}))
            start += x.shape[axis]
        return kernels

    def _kernel_for(self, n: Node, out: Buffer) -> Kernel:
        kind = OPS[n.op].kind
        if kind == "reduce":
            return self._reduce_kernel(n, out)
        if kind == "argreduce":
            return self._argreduce_kernel(n, out)
        if kind == "matmul":
            return self._matmul_kernel(n, out)
        if kind == "scatter":
            return gather.scatter_kernel(self, n, out, Emitter(self, root=n), _offset)
        return self._map_kernel(n, out)

    def _reduce_loops(self, n, axes):
        x = n.inputs[0]
        kept = [k for k in range(len(x.shape)) if k not in axes]
        loops = [(f"i{k}", x.shape[k]) for k in kept] + [(f"i{k}", x.shape[k]) for k in axes]
        if n.attrs.get("keepdim"):
            out_index = [Idx(f"i{k}") if k not in axes else ZERO for k in range(len(x.shape))]
        else:
            out_index = [Idx(f"i{k}") for k in kept]
        return loops, len(kept), _offset(out_index, n.shape)

    def _reduce_kernel(self, n, out):
        x, axes, op = n.inputs[0], n.attrs["axes"], n.op
        if self.column_reductions and op in ("sum", "max", "min") and len(x.shape) - 1 not in axes and \
                x.size >= 4096:
            return self._column_sum_kernel(n, out)
        loops, outer, out_index = self._reduce_loops(n, axes)
        em = Emitter(self, root=n)
        value = em.emit(x, [Idx(f"i{k}") for k in range(len(x.shape))])
        acc = "double" if n.dtype == dtypes.float32 and op == "sum" else out.ctype
        init = Init(op, out.ctype)
        return Kernel("reduce", f"{out.name} = {op}({self._describe(x, n)}) over dims {list(axes)}", out,
                      loops, outer, em.lets, value, out_index, op, acc, init, extra={"reads": em.reads})

    def _column_sum_kernel(self, n, out):
        """A sum (or max, min) over dims that are not the innermost (column sums): walk the
        input in memory order and fold into the output, instead of striding through memory per
        output."""
        x, axes, op = n.inputs[0], n.attrs["axes"], n.op
        loops = self._loops(x.shape)
        index = [Idx(v) for v, _ in loops]
        if n.attrs.get("keepdim"):
            out_index = [ix if k not in axes else ZERO for k, ix in enumerate(index)]
        else:
            out_index = [ix for k, ix in enumerate(index) if k not in axes]
        em = Emitter(self, root=n)
        value = em.emit(x, index)
        extra = {"reads": em.reads, "size": n.size}
        if out.ctype == "float" and op == "sum":   # float sums add up in double: a row of them in the scratch
            extra["acc"] = Buffer(self.names.get(f"{out.name}_acc"), n, "tmp", "double", n.size)
            self.tmps.append(extra["acc"])
        how = "added up" if op == "sum" else "folded"
        return Kernel("colsum", f"{out.name} = {op}({self._describe(x, n)}) over dims {list(axes)}, "
                      f"{how} in memory order", out, loops, 0, em.lets, value, _offset(out_index, n.shape),
                      op, out.ctype, Init(op, out.ctype), extra=extra)

    def _argreduce_kernel(self, n, out):
        x, axis = n.inputs[0], n.attrs["axis"]
        loops, outer, out_index = self._reduce_loops(n, (axis,))
        em = Emitter(self, root=n)
        value = em.emit(x, [Idx(f"i{k}") for k in range(len(x.shape))])
        xt = dtypes.c_type(x.dtype)
        return Kernel("argreduce", f"{out.name} = {n.op}({self._describe(x, n)}) along dim {axis}", out,
                      loops, outer, em.lets, value, out_index, n.op, xt, Init(n.op[3:], xt),
                      extra={"reads": em.reads, "axis_var": f"i{axis}"})

    def _matmul_kernel(self, n, out):
        a, b = n.inputs
        batch = n.shape[:-2]
        m, k, nn = a.shape[-2], a.shape[-1], b.shape[-1]
        bvars = [Idx(f"ib{d}") for d in range(len(batch))]

        def view(x):
            # Offsets of x[batch..., r, c] as (base, stride of r, stride of c) over a buffer.
            lead = len(batch) - (len(x.shape) - 2)
            idx = [v if x.shape[d - lead] != 1 else ZERO for d, v in enumerate(bvars) if d >= lead]
            base = StridedView.of(self, x, idx + [ZERO, ZERO])
            row = StridedView.of(self, x, idx + [affine(1), ZERO])
            col = StridedView.of(self, x, idx + [ZERO, affine(1)])
            return base, row, col

        (abuf, abase), (_, arow), (_, acol) = view(a)
        (bbuf, bbase), (_, brow), (_, bcol) = view(b)

        def stride(off, base):
            step = affine(off) - affine(base)
            assert step.is_const, f"matmul: a stride that depends on the batch index: {step}"
            return step.const
        return Kernel("matmul", f"{out.name} = matmul({self._describe(a, n)}, {self._describe(b, n)})  "
                      f"[{'x'.join(map(str, batch)) + ' x ' if batch else ''}{m}x{k} @ {k}x{nn}]",
                      out, [(v.name, s) for v, s in zip(bvars, batch)], len(batch),
                      extra={"reads": [abuf.name, bbuf.name], "a": abuf.name, "b": bbuf.name,
                             "a_base": abase, "b_base": bbase,
                             "a_rs": stride(arow, abase), "a_cs": stride(acol, abase),
                             "b_rs": stride(brow, bbase), "b_cs": stride(bcol, bbase),
                             "c_base": _offset(bvars + [ZERO, ZERO], n.shape) if batch else ZERO,
                             "M": m, "K": k, "N": nn, "ctype": out.ctype})


def padded_bytes(nbytes):
    """A temporary's bytes rounded up to 64 (at least 64). A symbolic size (symgrad.dims) gets
    each coefficient of its polynomial rounded up instead: a multiple of 64 at every size, at
    least the bytes, and still a polynomial, so that planning can prove one block big enough
    for another (dims.provably_at_least) and reuse it."""
    if isinstance(nbytes, Dim):
        return round_up_terms(nbytes, 64)
    return -(-nbytes // 64) * 64 or 64


NARROW_N = 16               # a product with fewer columns than this is "narrow"


def _transposed_b_stored_plain(n: Node, readers: int = 1) -> bool:
    """Whether matrix product `n` reads a B that is a transposed matrix (x @ W.T, a linear
    layer's forward, or its input gradient), and B is better stored plain first: K * N
    elements copied against M * K * N multiply-adds. OpenBLAS runs a transposed B at 0.5-0.9
    times the speed of a plain one (128x128 by 128x10: 8.5 against 4.9 us; 64x64 by 64x128:
    15.7 against 10.2), and its small-matrix kernels, which a product of up to
    BLAS_SMALL_SPLIT million multiply-adds is split for, are fast only for a plain B; our own
    loop reads a transposed B across its rows. Packed, a transposed B costs about what a
    transposing copy of it costs, on every product up to some 256 rows (K = N = 256: 131
    against 96 us at 64 rows, 379 against 347 at 256; the same at 512): so a B that
    `readers` products read (an RNN's W.T, once a step) is stored plain once for all of
    them. One product far larger than the small kernels' keeps its B in place (the copy of a
    large W costs about what the slower reading does)."""
    a, b = n.inputs
    if len(n.shape) != 2 or b.op != "permute" or b.attrs["perm"] != (1, 0):
        return False
    m, k, cols = a.shape[0], a.shape[1], b.shape[1]
    mnk = m * k * cols
    if mnk < 32768:
        return False
    if readers > 1 and m < 512:
        return True
    return m >= 64 and (cols < NARROW_N or mnk <= BLAS_SMALL_MAX * BLAS_SMALL_SPLIT)


def _below_relabelling(n: Node) -> Node:
    """What to store for a matrix product's operand `n` that is not a strided view of a
    buffer: the value under its transposes, unit reshapes and broadcasts, which hold no more
    elements than `n` (a transposed operand is then read transposed, in place, not copied
    into a transposed buffer). Not under a slice: that would compute what is never read.
    Not down to a literal, which has no buffer."""
    below = n
    while below.op in ("permute", "broadcast_to") or \
            below.op == "reshape" and _unit_reshape_map(below.inputs[0].shape, below.shape) is not None:
        below = below.inputs[0]
    return n if below.op == "literal" else below


class StridedView:
    """Follows layout ops down to a buffer; returns (buffer, offset expression)."""

    @staticmethod
    def of(s: Scheduler, n: Node, index):
        while id(n) not in s.materialized:
            if n.op == "reshape" and _unit_reshape_map(n.inputs[0].shape, n.shape) is None:
                # a general reshape of a stored value (plan stores its input) holds that
                # buffer's elements in the same order: its offsets, affine in the index
                return s._buffer(n.inputs[0]), _offset(index, n.shape)
            index, n = _index_through(n, index)
        return s._buffer(n), _offset(index, n.shape)


def _index_through(n: Node, index):
    """The index into `n`'s input that `n[index]` reads, for a layout op."""
    x = n.inputs[0]
    if n.op == "broadcast_to":
        lead = len(n.shape) - len(x.shape)
        return [index[lead + k] if x.shape[k] != 1 else ZERO for k in range(len(x.shape))], x
    if n.op == "permute":
        out = [None] * len(x.shape)
        for j, p in enumerate(n.attrs["perm"]):
            out[p] = index[j]
        return out, x
    if n.op == "slice":
        return [_strided(st, sp, ix) for st, sp, ix in zip(n.attrs["starts"], n.attrs["steps"], index)], x
    if n.op == "reshape":
        mapping = _unit_reshape_map(x.shape, n.shape)
        return [index[mapping[k]] if k in mapping else ZERO for k in range(len(x.shape))], x
    raise AssertionError(f"not a layout op: {n.op}")


def _strided(start, step, ix):
    """Where a slice `start::step` reads its element `ix`."""
    return affine(ix) * step + start


class Emitter:
    """Builds one kernel's body: each (node, index) it needs becomes one named local."""

    def __init__(self, s: Scheduler, root):
        self.s, self.root = s, root
        self.lets: list[Let] = []
        self.memo = {}
        self.reads = []

    def _let(self, node, expr):
        let = Let(dtypes.c_type(node.dtype), f"v{len(self.lets)}", expr)
        self.lets.append(let)
        return Ref(let)

    def emit(self, n: Node, index):
        """The expression of `n` at `index` (one expression per dim of n)."""
        key = (id(n), tuple(index))
        if key in self.memo:
            return self.memo[key]
        out = self._emit(n, index)
        self.memo[key] = out
        return out

    def _emit(self, n: Node, index):
        s = self.s
        if n.op == "literal":
            return Lit(n.value, dtypes.c_type(n.dtype))
        if id(n) in s.materialized and n is not self.root:
            b = s._buffer(n)
            self.reads.append(b.name)
            return self._let(n, Load(b, _offset(index, n.shape)))
        if n.op in LAYOUT:
            if n.op == "reshape" and _unit_reshape_map(n.inputs[0].shape, n.shape) is None:
                x = n.inputs[0]
                b = s._buffer(x)
                self.reads.append(b.name)
                return self._let(n, Load(b, _offset(index, n.shape)))
            inner, x = _index_through(n, index)
            return self.emit(x, inner)
        ct = dtypes.c_type(n.dtype)
        if n.op == "iota":
            return Cast(ct, index[n.attrs["axis"]])
        if n.op == "size_of":           # a size, symbolic or not, as a value (a mean's count)
            return Cast(ct, Lit(n.attrs["size"], "int64_t"))
        if n.op == "pad_slice":
            return self._pad_slice(n, index, ct)
        if n.op == "concat":
            return self._concat(n, index, ct)
        if n.op == "take":
            return gather.emit_take(self, n, index)
        args = []
        for x in n.inputs:
            lead = len(n.shape) - len(x.shape)
            args.append(self.emit(x, [index[lead + k] if x.shape[k] != 1 else ZERO
                                      for k in range(len(x.shape))]))
        in_ct = dtypes.c_type(n.inputs[0].dtype) if n.inputs else ct
        return self._let(n, Call(n.op, tuple(args), ct, in_ct, tuple(n.attrs.items())))

    def _pad_slice(self, n, index, ct):
        if 0 in n.inputs[0].shape:        # padding nothing: no element to read (the clamped
            return Lit(0, ct)             # read below would be out of bounds)
        conds, inner = [], []
        for ix, st, sp, stop, size in zip(index, n.attrs["starts"], n.attrs["steps"], n.attrs["stops"],
                                          n.inputs[0].shape):
            if st == 0 and sp == 1 and stop == n.shape[len(inner)]:
                inner.append(ix)
                continue
            rel = affine(ix) - st
            c = _all([Bin(">=", ix, affine(st)), Bin("<", ix, affine(stop))] +
                     ([Bin("==", Bin("%", rel, affine(sp)), ZERO)] if sp != 1 else []))
            conds.append(c)
            step = rel if sp == 1 else Bin("/", rel, affine(sp))
            inner.append(Select(c, step, ZERO))       # clamped: always a valid read
        value = self.emit(n.inputs[0], inner)
        if not conds:
            return value
        return self._let(n, Select(_all(conds), value, Lit(0, ct)))

    def _concat(self, n, index, ct):
        axis = n.attrs["axis"]
        ix = index[axis]
        pieces, start = [], 0
        for x in n.inputs:
            size = x.shape[axis]
            if 0 in x.shape:              # an empty piece: nothing to read (index -1 below)
                continue
            sub = list(index)
            # clamped into the piece: always a valid read
            sub[axis] = Select(Bin("<", ix, affine(start)), ZERO,
                               Select(Bin(">=", ix, affine(start + size)), affine(size - 1),
                                      affine(ix) - start))
            pieces.append((start + size, self.emit(x, sub)))
            start += size
        if not pieces:                    # all empty: so is the result, never read
            return Lit(0, ct)
        expr = pieces[-1][1]
        for stop, val in reversed(pieces[:-1]):
            expr = Select(Bin("<", ix, affine(stop)), val, expr)
        return self._let(n, expr)


def _all(conds):
    """The conjunction of boolean index expressions."""
    out = conds[0]
    for c in conds[1:]:
        out = Bin("&&", out, c)
    return out
