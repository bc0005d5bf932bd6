"""Batching rules: how each registered op runs on inputs that carry one more, leading, dim.

`sg.func.vmap` traces a function on per-example placeholders and then rebuilds the traced
graph node by node with the batch added (symgrad/func/batch.py walks the graph; the rules are
here, next to the ops they describe). A rule `rule(node, ins, batched, size)` gets the traced
per-example `node`, its new inputs `ins` (each either the per-example input unchanged, or,
where `batched` says so, that input with the batch of `size` as its dim 0) and returns the node
for the whole batch, batch at dim 0. No rule loops over the batch: elementwise ops broadcast,
reductions and shape ops shift their axes, matmul becomes a batched matmul, a gather or
scatter with batched indices reads through one flattened (batch, dim) axis.

`RULES` has one entry per op name; tests/test_func.py checks that every op in the registry
has one, so that a new op without a rule fails there rather than in a user's vmap."""
from __future__ import annotations

import symgrad.ops.builders as G
from symgrad.ops.registry import OPS
from symgrad.variable import apply


def lift(x, rank: int):
    """A batched `x` ((B,) + s) with ones inserted after the batch so that its per-example part
    has `rank` dims: it then broadcasts against per-example operands of that rank."""
    extra = rank - (x.ndim - 1)
    return x if extra <= 0 else G.reshape(x, x.shape[:1] + (1,) * extra + x.shape[1:])


def spread(x, is_batched: bool, size: int):
    """`x` batched: as it is when it already is, else broadcast over a new leading dim."""
    return x if is_batched else G.broadcast_to(x, (size,) + x.shape)


def _elementwise(node, ins, batched, size):
    rank = node.ndim
    ins = [lift(x, rank) if b else x for x, b in zip(ins, batched)]
    return apply(node.op, *ins, **node.attrs)


def _reduce(node, ins, batched, size):
    a = node.attrs
    return apply(node.op, ins[0], axes=tuple(ax + 1 for ax in a["axes"]), keepdim=a["keepdim"])


def _argreduce(node, ins, batched, size):
    return apply(node.op, ins[0], axis=node.attrs["axis"] + 1, keepdim=node.attrs["keepdim"])


def _reshape(node, ins, batched, size):
    return apply("reshape", ins[0], shape=(size,) + tuple(node.attrs["shape"]))


def _permute(node, ins, batched, size):
    return apply("permute", ins[0], perm=(0,) + tuple(p + 1 for p in node.attrs["perm"]))


def _broadcast_to(node, ins, batched, size):
    shape = tuple(node.attrs["shape"])
    return apply("broadcast_to", lift(ins[0], len(shape)), shape=(size,) + shape)


def _slice(node, ins, batched, size):
    a = node.attrs
    return apply("slice", ins[0], starts=(0,) + tuple(a["starts"]), stops=(size,) + tuple(a["stops"]),
                 steps=(1,) + tuple(a["steps"]))


def _pad_slice(node, ins, batched, size):
    a = node.attrs
    return apply("pad_slice", ins[0], shape=(size,) + tuple(a["shape"]), starts=(0,) + tuple(a["starts"]),
                 stops=(size,) + tuple(a["stops"]), steps=(1,) + tuple(a["steps"]))


def _concat(node, ins, batched, size):
    ins = [spread(x, b, size) for x, b in zip(ins, batched)]
    return apply("concat", *ins, axis=node.attrs["axis"] + 1)


def _offsets(index, size: int, stride: int):
    """`index` (batched, (B,) + I) plus b * stride for the example b: positions in a dim that
    holds the batch's `size` dims of length `stride` one after another."""
    iota = apply("iota", shape=(size,) + (1,) * (index.ndim - 1), axis=0, dtype=index.dtype)
    return G.add(index, G.mul(iota, stride))


def _take(node, ins, batched, size):
    x, index = ins
    axis = node.attrs["axis"]
    if not batched[1]:
        return apply("take", x, index, axis=axis + 1)
    x = spread(x, batched[0], size)
    n, nd, k = x.shape[axis + 1], x.ndim, index.ndim - 1
    rest = [d for d in range(1, nd) if d != axis + 1]
    flat = G.permute(x, [0, axis + 1] + rest)
    flat = G.reshape(flat, (size * n,) + flat.shape[2:])
    out = apply("take", flat, _offsets(index, size, n), axis=0)    # (B,) + I + pre + post
    pre = list(range(1 + k, 1 + k + axis))
    post = list(range(1 + k + axis, out.ndim))
    return G.permute(out, [0] + pre + list(range(1, 1 + k)) + post)


def _scatter_add(node, ins, batched, size):
    g, index = ins
    axis, n = node.attrs["axis"], node.attrs["size"]
    if not batched[1]:
        return apply("scatter_add", g, index, axis=axis + 1, size=n)
    g = spread(g, batched[0], size)
    k = index.ndim - 1
    idx_dims = list(range(1 + axis, 1 + axis + k))
    perm = [0] + idx_dims + list(range(1, 1 + axis)) + list(range(1 + axis + k, g.ndim))
    moved = G.permute(g, perm)                                        # (B,) + I + pre + post
    out = apply("scatter_add", moved, _offsets(index, size, n), axis=0, size=size * n)
    out = G.reshape(out, (size, n) + out.shape[1:])                   # (B, n) + pre + post
    return G.permute(out, [0] + list(range(2, 2 + axis)) + [1] + list(range(2 + axis, out.ndim)))


def _custom(node, ins, batched, size):
    # The first input is the traced forward's value (a graph, batched like any other); the
    # user's backward was written for one example and cannot be batched, so the batched node
    # carries the value only, and may not be differentiated again.
    if any(x.requires_grad for x in ins[1:]):
        raise NotImplementedError(
            "vmap of a custom sg.autograd.Function whose result is differentiated outside the vmap: "
            "its backward cannot be batched; differentiate inside the vmapped function instead")
    return spread(ins[0], batched[0], size)


def _never(node, ins, batched, size):
    raise AssertionError(f"{node.op} has no inputs: it is never batched")


RULES = {
    "matmul": _elementwise, "sum": _reduce, "max": _reduce, "min": _reduce, "argmax": _argreduce,
    "argmin": _argreduce, "reshape": _reshape, "permute": _permute, "broadcast_to": _broadcast_to,
    "slice": _slice, "pad_slice": _pad_slice, "concat": _concat, "iota": _never, "size_of": _never,
    "take": _take, "scatter_add": _scatter_add, "custom_function": _custom,
}


def rule(op_name: str):
    """The batching rule of the op `op_name`: its own, or the elementwise one."""
    found = RULES.get(op_name)
    if found is not None:
        return found
    if OPS[op_name].kind == "elementwise":
        return _elementwise
    raise NotImplementedError(f"vmap: the op {op_name!r} has no batching rule (symgrad/ops/batching.py)")
