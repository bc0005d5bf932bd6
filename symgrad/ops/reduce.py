"""Reductions over a set of axes (normalised, sorted, non-negative), with keepdim."""
from __future__ import annotations

import numpy as np

import symgrad.ops.builders as G
from symgrad import dtypes
from symgrad.ops.registry import Op, register


def reduced_shape(shape, axes, keepdim):
    if keepdim:
        return tuple(1 if i in axes else n for i, n in enumerate(shape))
    return tuple(n for i, n in enumerate(shape) if i not in axes)


def _infer(name):
    def infer(x, axes, keepdim):
        for a in axes:
            if not 0 <= a < len(x.shape):
                raise ValueError(f"{name}: dim {a} out of range for shape {x.shape}")
        if name in ("max", "min") and any(x.shape[a] == 0 for a in axes):
            raise ValueError(f"{name}: cannot reduce an empty dimension of shape {x.shape}")
        return reduced_shape(x.shape, axes, keepdim), x.dtype
    return infer


def _unreduce(g, x, axes, keepdim):
    """Broadcast a reduced cotangent back over the input's shape."""
    if not keepdim:
        g = G.reshape(g, reduced_shape(x.shape, axes, True))
    return G.broadcast_to(g, x.shape)


def _sum_vjp(g, node, needs):
    x = node.inputs[0]
    return (_unreduce(g, x, node.attrs["axes"], node.attrs["keepdim"]),)


def _extreme_vjp(g, node, needs):
    # The cotangent is shared evenly among the elements that reach the extreme; where the
    # extreme is NaN, among the NaNs (PyTorch's max() and min() without a dim).
    x = node.inputs[0]
    axes, keepdim = node.attrs["axes"], node.attrs["keepdim"]
    m = _unreduce(node, x, axes, keepdim)
    hit = G.eq(x, m)
    if dtypes.is_float(x.dtype):
        hit = G.where(G.ne(m, m), G.ne(x, x), hit)
    hit = G.cast(hit, x.dtype)
    count = G.reduce("sum", hit, axes, True)
    return (G.div(G.mul(_unreduce(g, x, axes, keepdim), hit), count),)


register(Op("sum", "reduce", _infer("sum"),
            lambda x, axes, keepdim: np.sum(x, axis=axes, keepdims=keepdim, dtype=x.dtype),
            _sum_vjp, "Sum", attrs=("axes", "keepdim")))
def _extreme_impl(name):
    """numpy's max/min, with a tie of +0 and -0 settled by sign rather than by order (max
    gives +0, min -0), so that the result does not depend on which zero is met first: the
    compiled loops and the CUDA tree reductions visit elements in other orders."""
    reduce, zero_sign_wins = (np.max, False) if name == "max" else (np.min, True)

    def impl(x, axes, keepdim):
        out = reduce(x, axis=axes, keepdims=keepdim)
        if not dtypes.is_float(x.dtype) or x.size == 0:
            return out
        wanted_zero = (x == 0) & (np.signbit(x) == zero_sign_wins)
        has_wanted = np.any(wanted_zero, axis=axes, keepdims=keepdim)
        settled = np.where((out == 0) & has_wanted, x.dtype.type(-0.0 if zero_sign_wins else 0.0), out)
        return settled.astype(x.dtype, copy=False).reshape(np.shape(out))
    return impl


register(Op("max", "reduce", _infer("max"), _extreme_impl("max"),
            _extreme_vjp, "Max", attrs=("axes", "keepdim")))
register(Op("min", "reduce", _infer("min"), _extreme_impl("min"),
            _extreme_vjp, "Min", attrs=("axes", "keepdim")))


def _arg_infer(name):
    def infer(x, axis, keepdim):
        if not 0 <= axis < len(x.shape) or x.shape[axis] == 0:
            raise ValueError(f"{name}: cannot reduce dim {axis} of shape {x.shape}")
        return reduced_shape(x.shape, (axis,), keepdim), dtypes.int64
    return infer


def _arg_impl(fn):
    def impl(x, axis, keepdim):
        out = fn(x, axis=axis)
        return np.expand_dims(out, axis) if keepdim else out
    return impl


register(Op("argmax", "argreduce", _arg_infer("argmax"), _arg_impl(np.argmax), None,
            attrs=("axis", "keepdim")))
register(Op("argmin", "argreduce", _arg_infer("argmin"), _arg_impl(np.argmin), None,
            attrs=("axis", "keepdim")))
