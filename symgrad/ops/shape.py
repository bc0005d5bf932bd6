"""Shape and layout primitives. The code generators turn these into index arithmetic
(a reshape of a contiguous buffer is free; the rest are strided reads)."""
from __future__ import annotations

import math

import numpy as np

import symgrad.ops.builders as G
from symgrad import dtypes
from symgrad.ops.registry import Op, register


def _reshape_infer(x, shape):
    if math.prod(shape) != math.prod(x.shape):
        raise ValueError(f"reshape: shape {x.shape} ({math.prod(x.shape)} elements) cannot become "
                         f"{shape} ({math.prod(shape)} elements)")
    return tuple(shape), x.dtype


register(Op("reshape", "reshape", _reshape_infer, lambda x, shape: np.reshape(x, shape),
            lambda g, node, needs: (G.reshape(g, node.inputs[0].shape),), "View", attrs=("shape",)))


def _permute_infer(x, perm):
    if sorted(perm) != list(range(x.ndim)):
        raise ValueError(f"permute: {perm} is not a permutation of the {x.ndim} dims of shape {x.shape}")
    return tuple(x.shape[p] for p in perm), x.dtype


def _permute_vjp(g, node, needs):
    perm = node.attrs["perm"]
    return (G.permute(g, np.argsort(perm)),)


register(Op("permute", "layout", _permute_infer, lambda x, perm: np.transpose(x, perm),
            _permute_vjp, "Permute", attrs=("perm",)))


def _broadcast_infer(x, shape):
    shape = tuple(shape)
    lead = len(shape) - x.ndim
    if lead < 0 or any(n not in (1, m) for n, m in zip(x.shape, shape[lead:])):
        raise ValueError(f"expand: shape {x.shape} cannot be broadcast to {shape}")
    return shape, x.dtype


register(Op("broadcast_to", "layout", _broadcast_infer,
            lambda x, shape: np.broadcast_to(x, shape),
            lambda g, node, needs: (G.sum_to(g, node.inputs[0].shape),), "Expand", attrs=("shape",)))


def slice_shape(shape, starts, stops, steps):
    return tuple(max(0, -(-(b - a) // c)) for a, b, c in zip(starts, stops, steps))


def _slices(starts, stops, steps):
    return tuple(slice(a, b, c) for a, b, c in zip(starts, stops, steps))


def _slice_infer(x, starts, stops, steps):
    if not (len(starts) == len(stops) == len(steps) == x.ndim):
        raise ValueError(f"slice: {len(starts)} ranges for shape {x.shape}")
    for n, a, b, c in zip(x.shape, starts, stops, steps):
        if c <= 0 or not 0 <= a <= n or not 0 <= b <= n:
            raise ValueError(f"slice: range {a}:{b}:{c} invalid for a dim of size {n} (shape {x.shape})")
    return slice_shape(x.shape, starts, stops, steps), x.dtype


def _slice_vjp(g, node, needs):
    return (G.node("pad_slice", g, shape=node.inputs[0].shape, **_spec(node)),)


def _spec(node):
    return {k: node.attrs[k] for k in ("starts", "stops", "steps")}


register(Op("slice", "layout", _slice_infer,
            lambda x, starts, stops, steps: x[_slices(starts, stops, steps)],
            _slice_vjp, "Slice", attrs=("starts", "stops", "steps")))


def _pad_infer(g, shape, starts, stops, steps):
    if slice_shape(shape, starts, stops, steps) != g.shape:
        raise ValueError(f"pad_slice: {g.shape} does not fit the slice of {shape}")
    return tuple(shape), g.dtype


def _pad_impl(g, shape, starts, stops, steps):
    out = np.zeros(shape, g.dtype)
    out[_slices(starts, stops, steps)] = g
    return out


register(Op("pad_slice", "layout", _pad_infer, _pad_impl,
            lambda g, node, needs: (G.node("slice", g, **_spec(node)),), "SliceBackward",
            attrs=("shape", "starts", "stops", "steps")))


def _concat_infer(*xs, axis):
    first = xs[0]
    for x in xs:
        if x.dtype != first.dtype:
            raise TypeError(f"cat: inputs must share a dtype, got {first.dtype} and {x.dtype}")
        if x.ndim != first.ndim or any(a != b for i, (a, b) in enumerate(zip(x.shape, first.shape))
                                       if i != axis):
            raise ValueError(f"cat: shapes {first.shape} and {x.shape} differ outside dim {axis}")
    shape = list(first.shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    return tuple(shape), first.dtype


def _concat_vjp(g, node, needs):
    axis, start, out = node.attrs["axis"], 0, []
    for x, need in zip(node.inputs, needs):
        stop = start + x.shape[axis]
        if need:
            starts = [0] * g.ndim
            stops = list(g.shape)
            starts[axis], stops[axis] = start, stop
            out.append(G.node("slice", g, starts=tuple(starts), stops=tuple(stops), steps=(1,) * g.ndim))
        else:
            out.append(None)
        start = stop
    return tuple(out)


register(Op("concat", "layout", _concat_infer, lambda *xs, axis: np.concatenate(xs, axis),
            _concat_vjp, "Cat", attrs=("axis",)))


def _iota_infer(shape, axis, dtype):
    return tuple(shape), dtypes.as_dtype(dtype)


def _iota_impl(shape, axis, dtype):
    idx = np.arange(shape[axis], dtype=dtype).reshape([-1 if i == axis else 1 for i in range(len(shape))])
    return np.ascontiguousarray(np.broadcast_to(idx, shape))


register(Op("iota", "source", _iota_infer, _iota_impl, None, attrs=("shape", "axis", "dtype")))


def _size_of_infer(size, dtype):
    return (), dtypes.as_dtype(dtype)


# The value of a size that may be symbolic (symgrad.dims): a mean's count over a batch whose
# size is given at each call. The interpreter sees the bound size; C reads the size argument.
register(Op("size_of", "source", _size_of_infer, lambda size, dtype: np.asarray(size, dtype), None,
            attrs=("size", "dtype")))
