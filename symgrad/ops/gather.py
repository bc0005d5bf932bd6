"""Reading and adding at positions held in an integer array: `take` (a gather) and its
pullback `scatter_add`, each the other's pullback, so gradients of indexing are graphs that
can be differentiated again.

`take(x, index, axis)` is numpy's take: the dim `axis` of `x` replaced by the dims of
`index`, each element read from where its index says. `scatter_add(g, index, axis, size)`
undoes the shape change and adds every element of `g` into the position its index names
(repeated indices accumulate). Indices must lie in [0, n): the front end wraps negative ones
and puts a `check_range` in front of any it cannot check while building the graph; the code
generators still clamp every read and write into the buffer (symgrad.codegen.gather).

Sums of float32 add up in float64 and round once, in the order of `g`'s elements, as the
generated code does, so that compiled and interpreted results are equal."""
from __future__ import annotations

import numpy as np

from symgrad.dims import Dim

import symgrad.ops.builders as G
from symgrad.ops.registry import Op, register


def _check_index(name, index):
    if index.dtype.kind not in "iu":
        raise TypeError(f"{name}: indices must be integers, got {index.dtype}")


def _check_axis(name, x, axis):
    if not 0 <= axis < x.ndim:
        raise ValueError(f"{name}: axis {axis} out of range for shape {x.shape}")


def _in_range(name, index, n):
    index = np.asarray(index)
    bad = (index < 0) | (index >= n)
    if np.any(bad):
        raise IndexError(f"{name}: index {index[bad].reshape(-1)[0]} is out of range for a dim of size {n}")


def _take_infer(x, index, axis):
    _check_index("take", index)
    _check_axis("take", x, axis)
    if x.shape[axis] == 0 and 0 not in index.shape:
        raise IndexError(f"take: cannot read from dim {axis} of shape {x.shape}, which is empty")
    return x.shape[:axis] + tuple(index.shape) + x.shape[axis + 1:], x.dtype


def _take_impl(x, index, axis):
    _in_range("take", index, x.shape[axis])
    return np.take(x, index, axis=axis)


def _take_vjp(g, node, needs):
    x, index = node.inputs
    axis = node.attrs["axis"]
    return (G.node("scatter_add", g, index, axis=axis, size=x.shape[axis]) if needs[0] else None, None)


register(Op("take", "gather", _take_infer, _take_impl, _take_vjp, "Index", attrs=("axis",), arity=2))


def _scatter_infer(g, index, axis, size):
    _check_index("scatter_add", index)
    if g.dtype.kind == "b":
        raise TypeError("scatter_add: cannot add booleans")
    m = index.ndim
    if not 0 <= axis <= g.ndim - m or g.shape[axis:axis + m] != tuple(index.shape):
        raise ValueError(f"scatter_add: values of shape {g.shape} do not hold indices of shape "
                         f"{index.shape} from dim {axis}")
    if size < 0 or size == 0 and 0 not in index.shape:
        raise IndexError(f"scatter_add: cannot add into an empty dim (size {size})")
    return g.shape[:axis] + (size if isinstance(size, Dim) else int(size),) + g.shape[axis + m:], g.dtype


def _scatter_impl(g, index, axis, size):
    _in_range("scatter_add", index, size)
    m = index.ndim
    wide = np.float64 if g.dtype == np.float32 else g.dtype
    out = np.zeros(g.shape[:axis] + (size,) + g.shape[axis + m:], wide)
    # The indexed dims of g flattened into one; np.add.at adds the values for one position
    # one after another, in the order of the indices: the generated loops' order.
    pre, post = g.shape[:axis], g.shape[axis + m:]
    gv = np.asarray(g).reshape(pre + (-1,) + post).astype(wide)
    np.add.at(out, (slice(None),) * len(pre) + (np.asarray(index).reshape(-1),), gv)
    return out.astype(g.dtype)


def _scatter_vjp(g, node, needs):
    _, index = node.inputs
    return (G.node("take", g, index, axis=node.attrs["axis"]) if needs[0] else None, None)


register(Op("scatter_add", "scatter", _scatter_infer, _scatter_impl, _scatter_vjp, "ScatterAdd",
            attrs=("axis", "size"), arity=2))
