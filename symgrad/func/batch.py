"""`sg.func.vmap`: a batching transform, graph to graph.

The function is traced once on per-example placeholders (symbolic Variables of one example's
shape); `batch_graph` then rebuilds the traced graph with the batch added: every node that
depends on a placeholder is made again from its op, applied to the batched inputs, through the
op's batching rule (symgrad/ops/batching.py: elementwise ops broadcast, reductions and shape
ops shift their axes, matmul becomes a batched matmul, ...); nodes that depend on no
placeholder (weights the function closes over, constants) are shared as they are. The result
is one graph over the whole batch: no loop over examples, in Python or in the generated C.
A gradient taken inside the function (`vmap(grad(f))`) is a graph of the same ops, so it is
batched like any other: per-example gradients."""
from __future__ import annotations

import numpy as np

import symgrad.ops.builders as G
from symgrad.func.common import as_variable, compute, is_array, traced
from symgrad.func.pytree import broadcast_prefix, flatten, unflatten
from symgrad.graph import toposort
from symgrad.ops.batching import rule, spread
from symgrad.variable import Variable


def batch_graph(outputs, subs: dict, size: int) -> list:
    """`outputs` rebuilt with each placeholder `p` replaced by `subs[id(p)]`, the same value for a
    batch of `size` examples (batch at dim 0). Returns, per output, (Variable, batched): an
    output that depends on no placeholder is returned unchanged, with batched False."""
    new: dict[int, Variable] = dict(subs)
    for v in toposort(outputs, lambda v: id(v) in subs):
        if id(v) in new or v.op is None or not any(id(i) in new for i in v.inputs):
            continue
        flags = [id(i) in new for i in v.inputs]
        ins = [new.get(id(i), i) for i in v.inputs]
        out = rule(v.op)(v, ins, flags, size)
        if not v._requires_grad and any(i._requires_grad for i in v.inputs):
            out._requires_grad = False          # made under no_grad inside the function
        new[id(v)] = out
    return [(new[id(o)], True) if id(o) in new else (o, False) for o in outputs]


def move_axis(x: Variable, source: int, dest: int) -> Variable:
    perm = [d for d in range(x.ndim) if d != source]
    perm.insert(dest, source)
    return G.permute(x, perm)


def _axis(d, ndim, what):
    if not isinstance(d, int) or isinstance(d, bool):
        raise TypeError(f"vmap: {what} must be an int or None, got {d!r}")
    if not -ndim <= d < ndim:
        raise ValueError(f"vmap: {what} is {d}, out of range for a value of {ndim} dims")
    return d % ndim


def vmap(func, in_dims=0, out_dims=0):
    """`func` mapped over a dim of its arguments, as torch.func.vmap and jax.vmap: `in_dims`
    (an int, None, or one per argument, nested like the argument) says which dim of each
    argument holds the batch (None: the argument is shared by every example); `out_dims` where
    the batch goes in each result. Returns Variables (over values where the arguments hold
    them, else graphs to compile)."""
    name = getattr(func, "__name__", "func")

    def batched(*args):
        if isinstance(in_dims, (tuple, list)) and len(in_dims) != len(args):
            raise ValueError(f"vmap({name}): in_dims {in_dims!r} has {len(in_dims)} entries for "
                             f"{len(args)} arguments")
        leaves, tree = flatten(list(args))
        dims = broadcast_prefix(list(in_dims) if isinstance(in_dims, (tuple, list))
                                else [in_dims] * len(args), tree, f"vmap({name}) in_dims")
        where = _leaf_names(tree)
        size, first, subs, names, call = None, None, {}, {}, []
        for leaf, d, who in zip(leaves, dims, where):
            if d is None:
                call.append(as_variable(leaf) if isinstance(leaf, np.ndarray) else leaf)
                continue
            if not is_array(leaf):
                raise TypeError(f"vmap({name}): {who} is a {type(leaf).__name__}, which has no dim to map "
                                f"over (in_dims {d}); give it in_dims None")
            x = as_variable(leaf)
            if x.ndim == 0:
                raise ValueError(f"vmap({name}): {who} is 0-d and cannot be mapped over (in_dims {d})")
            d = _axis(d, x.ndim, f"in_dims of {who}")
            if size is None:
                size, first = x.shape[d], who
            elif x.shape[d] != size:
                raise ValueError(f"vmap({name}): the mapped dims differ in size: {first} has {size} and "
                                 f"{who} has {x.shape[d]} (shape {x.shape}, in_dims {d})")
            moved = move_axis(x, d, 0)
            p = Variable(shape=moved.shape[1:], dtype=x.dtype, name=x.name)
            subs[id(p)] = moved
            names[id(p)] = f"{who} of vmap({name}) (one example of shape {p.shape}, {p.dtype})"
            call.append(p)
        if size is None:
            raise ValueError(f"vmap({name}): no argument is mapped over (in_dims {in_dims!r}); at least "
                             f"one needs a dim")
        with traced(f"vmap({name})", names):
            out = func(*unflatten(tree, call))
        out_leaves, out_tree = flatten(out)
        outs = [o if isinstance(o, Variable) else as_variable(o) for o in out_leaves]
        odims = broadcast_prefix(out_dims, out_tree, f"vmap({name}) out_dims")
        results = []
        for k, ((o, b), od) in enumerate(zip(batch_graph(outs, subs, size), odims)):
            if od is None:
                if b:
                    raise ValueError(f"vmap({name}): output {k} depends on a mapped argument but its "
                                     f"out_dims is None")
                results.append(o)
                continue
            o = spread(o, b, size)
            results.append(move_axis(o, 0, _axis(od, o.ndim, f"out_dims of output {k}")))
        compute(results)
        return unflatten(out_tree, results)

    batched.__name__ = f"vmap_{name}"
    batched.__doc__ = func.__doc__
    return batched


def _leaf_names(tree) -> list[str]:
    """How to name each leaf of the arguments: 'argument 0', 'argument 1[2]', ..."""
    out = []

    def walk(t, label):
        if t.kind == "leaf":
            out.append(label)
        elif t.kind == "dict":
            for k, c in zip(t.keys, t.children):
                walk(c, f"{label}[{k!r}]")
        else:
            for k, c in enumerate(t.children):
                walk(c, f"{label}[{k}]")
    for k, c in enumerate(tree.children):
        walk(c, f"argument {k}")
    return out
