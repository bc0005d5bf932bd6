"""Loads and sums at positions read from an index buffer: the lowering of `take` and
`scatter_add` (symgrad/ops/gather.py) into the kernel IR.

An index read from memory is one more integer expression, and kernel IR offsets (`Affine`)
take any integer expression as an atom, so a gather is an ordinary `Load` whose offset holds
the loaded index: `take` is inlined where it is read, like a layout op. Every such index is
clamped into [0, n) first, so that no value can read or write outside its buffer whatever
reaches it (the graph checks its indices with `check_range`, which reports the bad ones).

`scatter_add` is a loop over the added values that adds each into the output at its index:
the `colsum` kernel (which zeroes its output, walks its loops in order, and adds up float32
in float64), when the backend runs those; otherwise, a reduction per output element over
the indices that name it (any backend that runs reductions runs it)."""
from __future__ import annotations

from symgrad import dtypes
from symgrad.codegen.kernel import ZERO, Bin, Idx, Init, Kernel, Lit, Select, affine


def clamped(index, n: int):
    """`index` (an integer expression) if it lies in [0, n), else 0: always a valid position."""
    inside = Bin("&&", Bin(">=", index, ZERO), Bin("<", index, affine(n)))
    return Select(inside, index, ZERO)


def emit_take(em, n, index):
    """The value of `take(x, ix, axis)` at `index` (one expression per dim of the result)."""
    x, ix = n.inputs
    axis, m = n.attrs["axis"], len(ix.shape)
    position = clamped(em.emit(ix, index[axis:axis + m]), x.shape[axis])
    return em.emit(x, list(index[:axis]) + [position] + list(index[axis + m:]))


def scatter_kernel(s, n, out, em, offset) -> Kernel:
    """The kernel of `scatter_add(g, ix, axis, size)` into `out`, for scheduler `s`, its body
    built by the Emitter `em`; `offset(index, shape)` is an element's offset in a buffer."""
    g, ix = n.inputs
    axis, size, m = n.attrs["axis"], n.attrs["size"], len(ix.shape)
    comment = (f"{out.name} = {s._describe(g, n)} added up at the positions {s._describe(ix, n)} "
               f"along dim {axis}")
    if s.column_reductions:
        loops = s._loops(g.shape)
        index = [Idx(v) for v, _ in loops]
        value = em.emit(g, index)
        position = clamped(em.emit(ix, index[axis:axis + m]), size)
        out_index = offset(index[:axis] + [position] + index[axis + m:], n.shape)
        return Kernel("colsum", comment, out, loops, 0, em.lets, value, out_index, "sum", out.ctype,
                      Init("sum", out.ctype), extra={"reads": em.reads, "size": n.size})
    # out[pre, j, post] = sum over k of (ix[k] == j ? g[pre, k, post] : 0)
    kept = s._loops(n.shape)
    summed = [(f"k{d}", e) for d, e in enumerate(ix.shape)]
    pre, j, post = kept[:axis], kept[axis], kept[axis + 1:]
    ks = [Idx(v) for v, _ in summed]
    value = em.emit(g, [Idx(v) for v, _ in pre] + ks + [Idx(v) for v, _ in post])
    hit = Bin("==", em.emit(ix, ks), Idx(j[0]))
    ct = dtypes.c_type(n.dtype)
    acc = "double" if n.dtype == dtypes.float32 else ct
    return Kernel("reduce", comment, out, kept + summed, len(kept), em.lets, Select(hit, value, Lit(0, ct)),
                  offset([Idx(v) for v, _ in kept], n.shape), "sum", acc, Init("sum", ct),
                  extra={"reads": em.reads})
