"""Basic indexing of Variables: `x[key]` and `x[key] = value` for keys of ints, slices, None
and `...` (a slice of the graph, read as index arithmetic; `index_put`, the node an
assignment makes). symgrad.indexing sends other keys to symgrad.advanced."""
from __future__ import annotations

import builtins

import numpy as np

from symgrad import dtypes
from symgrad.dims import Dim
from symgrad.functional import _mark, apply, as_variable, broadcast_to, cast, reshape, where
from symgrad.shapes import IndexTypeError
from symgrad.variable import Variable, no_grad


def _slice_shape(shape, starts, stops, steps):
    from symgrad.ops.shape import slice_shape
    return slice_shape(shape, starts, stops, steps)


def _index_key(x, key):
    if not isinstance(key, tuple):
        key = (key,)
    n_real = builtins.sum(1 for k in key if k is not None and k is not Ellipsis)
    if n_real > x.ndim:
        raise IndexError(f"too many indices ({n_real}) for a Variable of shape {x.shape}")
    ellipses = [i for i, k in enumerate(key) if k is Ellipsis]
    if len(ellipses) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if ellipses:
        i = ellipses[0]
        return key[:i] + (slice(None),) * (x.ndim - n_real) + key[i + 1:]
    return key + (slice(None),) * (x.ndim - n_real)


def _basic_index(x, key):
    """A basic index (ints, slices, None, ...) as the slice it reads: (starts, stops, steps),
    the shape of `x[key]`, and whether an int selected a dim away."""
    key = _index_key(x, key)
    starts, stops, steps, shape = [], [], [], []
    dim, selects = 0, False
    for k in key:
        if k is None:
            shape.append(1)
            continue
        n = x.shape[dim]
        if isinstance(n, Dim):          # a size known at each call: only the whole of it
            _whole_named(x, dim, k)
            starts.append(0), stops.append(n), steps.append(1)
            shape.append(n)
            dim += 1
            continue
        if isinstance(k, slice):
            a, b, c = (_index_int(x, dim, part) for part in (k.start, k.stop, k.step))
            a, b, c = slice(a, b, c).indices(n)
            if c <= 0:
                raise ValueError(f"slicing with step {c} is not supported (dim {dim} of shape {x.shape})")
            b = builtins.max(a, b)
            starts.append(a), stops.append(b), steps.append(c)
            shape.append(len(range(a, b, c)))
        else:
            i = _index_int(x, dim, k)
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of bounds for dim {dim} with size {n} "
                                 f"(shape {x.shape})")
            i %= n
            starts.append(i), stops.append(i + 1), steps.append(1)
            selects = True
        dim += 1
    return (tuple(starts), tuple(stops), tuple(steps)), tuple(shape), selects


def _whole_named(x, dim, k):
    """`k` must take all of dim `dim`, whose size is a named dimension (symgrad.dims): a slice
    of part of it, or one index into it, has bounds that only a call knows to be in range."""
    n = x.shape[dim]
    whole = isinstance(k, slice) and k.start in (None, 0) and k.step in (None, 1) and \
        (k.stop is None or (isinstance(k.stop, Dim) and k.stop == n))
    if not whole:
        raise IndexError(f"indexing {x._describe()} of shape {x.shape}: dim {dim} is the named dimension "
                         f"{n}, whose size is given only at each call, so it can only be taken whole "
                         f"(`:`), not with {k!r}; slice a dim of fixed size, or index it with an integer "
                         f"Variable")


def _index_int(x, dim, k):
    """An int (or None) of an index; anything else is a TypeError naming what came."""
    if k is None:
        return None
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer, Variable)):
        raise IndexTypeError(f"indexing a Variable of shape {x.shape}: only integers, slices (:), None, "
                        f"... and integer Variables are valid indices; got {k!r} "
                        f"({type(k).__name__}) for dim {dim}")
    return int(k.__index__())


def getitem(x, key):
    spec, shape, selects = _basic_index(x, key)
    out = x
    if spec != ((0,) * x.ndim, x.shape, (1,) * x.ndim):
        starts, stops, steps = spec
        out = apply("slice", x, starts=starts, stops=stops, steps=steps)
    out = reshape(out, shape)
    return _mark(out, "Select" if selects else "Slice", [x])


def index_put(x, key, value):
    """`x` with `x[key]` replaced by `value` (broadcast to it): what `x[key] = value` makes.
    The gradient goes to `value` from the indexed part and to `x` from the rest."""
    spec, shape, _ = _basic_index(x, key)
    starts, stops, steps = spec
    sliced = _slice_shape(x.shape, starts, stops, steps)
    value = cast(as_variable(value), x.dtype)
    try:
        value = broadcast_to(value, shape)
    except ValueError:
        raise ValueError(f"x[...] = value: a value of shape {value.shape} cannot be broadcast to the "
                         f"indexed part of shape {shape} (of a Variable of shape {x.shape})") from None
    attrs = {"shape": x.shape, "starts": starts, "stops": stops, "steps": steps}
    with no_grad():
        mask = apply("pad_slice", broadcast_to(Variable.literal(True, dtypes.bool_), sliced), **attrs)
    out = where(mask, apply("pad_slice", reshape(value, sliced), **attrs), x)
    return _mark(out, "CopySlices", [x, value])
