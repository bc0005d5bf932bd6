"""Advanced indexing, PyTorch's way: integer lists, numpy arrays and integer Variables as
indices (`x[idx]`, `x[:, idx]`, `x[i, j]`), and boolean masks on values (`x[x > 0]`).

`x[key]` is read in three steps: the basic part of the key (ints, slices, None) is applied
first, as a slice of the graph; the index arrays are checked against the sizes they index
(negative ones wrap), broadcast together, and combined into one position along the dims they
index; one `take` node reads those positions, so the gradient is one `scatter_add`, where
repeated indices add up. As in PyTorch (and numpy), the broadcast index dims stand where the
indexed dims were when those are adjacent, and first otherwise; ints select before that.

A mask stands for the integer arrays of its `nonzero()`, so it needs a value: the shape of
the result comes from it. On a symbolic mask, `x[mask]` is an error that points to
`sg.where` and `masked_fill` (and `x[mask] = number` is `where(mask, number, x)`)."""
from __future__ import annotations

import math

import numpy as np

import symgrad.ops.builders as G
from symgrad import dtypes, slicing
from symgrad.dims import Dim
from symgrad.functional import _mark, apply, as_variable, broadcast_to, cast, where
from symgrad.shapes import IndexTypeError
from symgrad.variable import Variable, no_grad


def _is_array(k) -> bool:
    """Whether one entry of a key is an index array (not an int, slice, None or `...`)."""
    if isinstance(k, Variable):
        return k.ndim > 0 or k.dtype == dtypes.bool_ or not k.is_concrete
    if isinstance(k, np.ndarray):
        return k.ndim > 0 or k.dtype == np.bool_
    return isinstance(k, (list, tuple))


def _as_tuple(key) -> tuple:
    if isinstance(key, tuple):
        return key
    # PyTorch reads a list holding sequences, slices, None or ... as a tuple of indices
    if isinstance(key, list) and any(isinstance(k, (list, tuple, slice, Variable, np.ndarray)) or
                                     k is None or k is Ellipsis for k in key):
        return tuple(key)
    return (key,)


def is_advanced(key) -> bool:
    """Whether `key` holds an index array or a mask."""
    return any(_is_array(k) for k in _as_tuple(key))


def _index_array(x, k, dim):
    """An entry of a key as an integer or bool numpy array, or a Variable."""
    if isinstance(k, Variable):
        if k.dtype.kind not in "iub":
            raise IndexTypeError(f"indexing {x._describe()}: tensors used as indices must be integer or "
                                 f"bool, got {k._describe()} for dim {dim}")
        if k.dtype == dtypes.bool_ and not k.is_concrete:
            raise IndexError(f"indexing {x._describe()} with the boolean mask {k._describe()}, which has "
                             f"no value: the result's shape would depend on it. Use "
                             f"sg.where(mask, x, other) or x.masked_fill(mask, value) instead")
        if k.dtype == dtypes.bool_:
            return np.asarray(k.value())
        return k
    a = np.asarray(k)
    if a.size == 0 and a.dtype.kind == "f":          # x[[]]: an empty list of indices
        a = a.astype(np.int64)
    if a.dtype.kind not in "iub":
        raise IndexTypeError(f"indexing {x._describe()}: indices must be integers or bools, got {k!r} "
                             f"({a.dtype}) for dim {dim}")
    return a


def _expand(x, key):
    """The key with masks and arrays read, and `...` expanded to full slices."""
    items = [_index_array(x, k, d) if _is_array(k) else k for d, k in enumerate(key)]
    real = sum(k.ndim if _is_mask(k) else 1 for k in items if k is not None and k is not Ellipsis)
    ellipses = [i for i, k in enumerate(items) if k is Ellipsis]
    if len(ellipses) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if real > x.ndim:
        raise IndexError(f"too many indices for {x._describe()}: {real} dims indexed")
    fill = [slice(None)] * (x.ndim - real)
    if ellipses:
        i = ellipses[0]
        return items[:i] + fill + items[i + 1:]
    return items + fill


def _is_mask(k) -> bool:
    return isinstance(k, np.ndarray) and k.dtype == np.bool_


def _split(x, key):
    """(the basic key, [(dim of the basic result, index array, dim of x)])."""
    basic, arrays, dim, pos = [], [], 0, 0
    for k in _expand(x, key):
        if k is None:
            basic.append(None)
            pos += 1
        elif _is_mask(k):
            if k.ndim == 0:
                raise IndexError(f"indexing {x._describe()} with a 0-d boolean mask is not supported")
            want = x.shape[dim:dim + k.ndim]
            if k.shape != want:
                bad = next(d for d in range(k.ndim) if d >= len(want) or k.shape[d] != want[d])
                raise IndexError(f"the shape of the mask {list(k.shape)} at index {bad} does not match the "
                                 f"shape of the indexed {x._describe()} at index {dim + bad}")
            for nz in np.nonzero(k):
                basic.append(slice(None))
                arrays.append((pos, nz.astype(np.int64), dim))
                pos, dim = pos + 1, dim + 1
        elif isinstance(k, (np.ndarray, Variable)):
            basic.append(slice(None))
            arrays.append((pos, k, dim))
            pos, dim = pos + 1, dim + 1
        else:
            basic.append(k)
            dim += 1
            pos += isinstance(k, slice)
    return tuple(basic), arrays


class IndexRangeError(IndexError, RuntimeError):
    """An index out of range (PyTorch raises IndexError or RuntimeError, by function)."""


def checked(x, index, n, dim, negative=True):
    """`index` checked against a dim of size `n` (in [-n, n), or [0, n) without `negative`)
    and wrapped into [0, n): a numpy array, or a Variable whose values the graph checks."""
    lo = -n if negative else 0
    if isinstance(n, Dim) and not isinstance(index, Variable):
        # a size given at each call (symgrad.dims): the graph checks even known indices then
        index = Variable(np.asarray(index, np.int64))
    value = np.asarray(index.value()) if isinstance(index, Variable) and index.is_concrete else \
        index if isinstance(index, np.ndarray) else None
    value = None if isinstance(n, Dim) else value
    if value is not None:
        bad = (value < lo) | (value >= n)
        if np.any(bad):
            raise IndexRangeError(f"index {value[bad].reshape(-1)[0]} is out of bounds for dimension {dim} "
                                  f"with size {n} (indexing {x._describe()})")
    if isinstance(index, np.ndarray):
        return np.where(index < 0, index + n, index).astype(np.int64)
    with no_grad():
        i = G.cast(index, dtypes.int64)
        i = apply("check_range", i, lo=lo, hi=n, what=f"index of dim {dim} of {x._describe()}")
        return G.where(G.lt(i, 0), G.add(i, n), i) if negative else i


def _broadcast(arrays):
    shapes = [tuple(a.shape) for a in arrays]
    try:
        shape = np.broadcast_shapes(*shapes)
    except ValueError:
        raise IndexError("shape mismatch: indexing tensors could not be broadcast together with shapes "
                         + ", ".join(str(list(s)) for s in shapes)) from None
    return [np.broadcast_to(a, shape) if isinstance(a, np.ndarray) else G.broadcast_to(a, shape)
            for a in arrays], shape


def _position(indices, sizes):
    """One position per element from indices into dims of `sizes` (row-major)."""
    if all(isinstance(i, np.ndarray) for i in indices):
        return np.ravel_multi_index(tuple(indices), sizes) if indices[0].size else \
            np.zeros(indices[0].shape, np.int64)
    out = None
    with no_grad():
        for k, i in enumerate(indices):
            i = Variable(np.ascontiguousarray(i)) if isinstance(i, np.ndarray) else i
            term = G.mul(i, math.prod(sizes[k + 1:])) if k + 1 < len(sizes) else i
            out = term if out is None else G.add(out, term)
    return out


def _take(x, key):
    """(the result of `x[key]`, the positions it reads in `x` flattened, or None)."""
    basic, arrays = _split(x, key)
    y = slicing.getitem(x, basic)
    places = [p for p, _, _ in arrays]
    sizes = [y.shape[p] for p in places]
    indices = [checked(x, a, n, d) for (_, a, d), n in zip(arrays, sizes)]
    indices, shape = _broadcast(indices)
    position = _position(indices, sizes)
    if isinstance(position, np.ndarray):
        position = Variable(np.ascontiguousarray(position, dtype=np.int64))
    if places == list(range(places[0], places[0] + len(places))):      # adjacent: stay in place
        at = places[0]
        y = G.reshape(y, y.shape[:at] + (math.prod(sizes),) + y.shape[places[-1] + 1:])
    else:
        at = 0
        rest = [d for d in range(y.ndim) if d not in places]
        y = G.permute(y, places + rest)
        y = G.reshape(y, (math.prod(sizes),) + y.shape[len(places):])
    return apply("take", y, position, axis=at), shape


def getitem(x: Variable, key) -> Variable:
    """`x[key]` for a key with index arrays or masks (see the module's docstring)."""
    out, _ = _take(x, _as_tuple(key))
    return _mark(out, "Index", [x])


def _mask_fill_key(x, key):
    """The mask of `x[mask] = number` on a symbolic mask over x's leading dims, or None."""
    key = tuple(k for k in _as_tuple(key) if k is not Ellipsis)
    while key and isinstance(key[-1], slice) and key[-1] == slice(None):
        key = key[:-1]
    if len(key) == 1 and isinstance(key[0], Variable) and key[0].dtype == dtypes.bool_ and \
            not key[0].is_concrete and key[0].shape == x.shape[:key[0].ndim]:
        return key[0]
    return None


def index_put(x: Variable, key, value, accumulate: bool = False) -> Variable:
    """`x` with the elements `x[key]` names set to `value` (broadcast to them), or with it
    added there (`accumulate`: repeated positions add up). Where a position repeats without
    `accumulate`, the last value given for it is kept, as PyTorch does on the CPU."""
    value = cast(as_variable(value), x.dtype)
    mask = _mask_fill_key(x, key)
    if mask is not None and value.numel() == 1 and not accumulate:
        m = G.reshape(mask, mask.shape + (1,) * (x.ndim - mask.ndim))
        return _mark(where(m, G.reshape(value, ()), x), "IndexPut", [x, value])
    with no_grad():       # each element's flat position, a node (no array of x's size in the graph)
        flat_ids = G.reshape(apply("iota", shape=(x.numel(),), axis=0, dtype="int64"), x.shape)
        positions, _ = _take(flat_ids, _as_tuple(key))
    return _mark(put(x, positions, value, accumulate), "IndexPut", [x, value])


def put(x: Variable, positions: Variable, value: Variable, accumulate: bool = False) -> Variable:
    """`x` with `value` (broadcast to the shape of `positions`, and of x's dtype) written at
    the positions of `x` flattened that `positions` holds (in [0, x.numel())), or added there
    (`accumulate`). A position given more than once keeps the last value given for it."""
    try:
        value = broadcast_to(value, positions.shape)
    except ValueError:
        raise ValueError(f"x[...] = value: a value of shape {value.shape} cannot be broadcast to the "
                         f"indexed part of shape {positions.shape} (of {x._describe()})") from None
    k = positions.numel()
    positions = G.reshape(positions, (k,))
    work = dtypes.int32 if x.dtype == dtypes.bool_ else x.dtype      # booleans are not added up
    flat = G.cast(G.reshape(value, (k,)), work)
    if accumulate:
        added = G.reshape(apply("scatter_add", flat, positions, axis=0, size=x.numel()), x.shape)
        return G.cast(G.add(G.cast(x, work), added), x.dtype) if work != x.dtype else G.add(x, added)
    keep = _last_of_each(positions)
    with no_grad():
        hits = apply("scatter_add", G.cast(keep, dtypes.int32), positions, axis=0, size=x.numel())
        hit = G.reshape(G.gt(hits, 0), x.shape)
    kept = G.where(keep, flat, 0)
    new = G.cast(apply("scatter_add", kept, positions, axis=0, size=x.numel()), x.dtype)
    return G.where(hit, G.reshape(new, x.shape), x)


def _last_of_each(positions: Variable) -> Variable:
    """Whether each position is the last occurrence of its value (a bool Variable)."""
    k = positions.numel()
    if positions.is_concrete:
        p = positions.value()
        keep = np.zeros(k, np.bool_)
        if k:
            _, first = np.unique(p[::-1], return_index=True)
            keep[k - 1 - first] = True
        return Variable(keep)
    with no_grad():
        same = G.eq(G.reshape(positions, (k, 1)), G.reshape(positions, (1, k)))
        later = G.gt(apply("iota", shape=(k, k), axis=1, dtype="int64"),
                     apply("iota", shape=(k, k), axis=0, dtype="int64"))
        repeated = G.reduce("sum", G.cast(G.where(same, later, False), dtypes.int32), (1,), False)
        return G.eq(repeated, 0)
