"""Selecting and placing elements by index, with PyTorch's names and arguments:
`index_select`, `gather`, `take_along_dim`, `masked_fill`, `masked_select`, `nonzero`,
`where` (and its one-argument form), `index_add`, `scatter`, `scatter_add`, `index_put`.

Each reads or writes through one `take` or `scatter_add` node (symgrad/ops/gather.py) at
positions of the input flattened: index arithmetic that the code generators fuse into the
loads and stores. Indices known while the graph is built are checked then (an IndexError
naming the input, its shape and the bad index); the others by a `check_range` node, which the
compiled code reports as an IndexError."""
from __future__ import annotations

import numpy as np

import symgrad.ops.builders as G
from symgrad import advanced, dtypes
from symgrad import functional as F
from symgrad.functional import _mark, apply, tensor_arg
from symgrad.shapes import as_dim
from symgrad.hints import TensorLike
from symgrad.variable import Variable, no_grad

__all__ = ["gather", "index_add", "index_put", "index_select", "masked_fill", "masked_select", "nonzero",
           "scatter", "scatter_add", "take_along_dim", "where"]


def _index(fn: str, index) -> Variable:
    """An index argument as an integer Variable (lists and arrays convert)."""
    if not isinstance(index, Variable):
        a = np.asarray(index)
        index = Variable(a.astype(np.int64) if a.size == 0 else a)
    i = index
    if i.dtype.kind not in "iu":
        raise TypeError(f"{fn}(): expected dtype int32 or int64 for index, got {i.dtype}")
    return i


def _flat_positions(fn, x, dim, index):
    """For gather and scatter: the position in `x` flattened of each element of `index`, which
    names a place along `dim` (and is its own place along the other dims)."""
    if index.ndim != x.ndim:
        raise RuntimeError(f"{fn}(): Index tensor must have the same number of dimensions as input tensor "
                           f"(index {index.shape}, input {x.shape})")
    i = advanced.checked(x, index, x.shape[dim], dim, negative=False)
    if isinstance(i, np.ndarray):
        i = Variable(i)
    with no_grad():
        out = None
        for d, st in enumerate(dtypes.contiguous_strides(x.shape)):
            term = i if d == dim else apply("iota", shape=index.shape, axis=d, dtype="int64")
            term = G.mul(term, st) if st != 1 else term
            out = term if out is None else G.add(out, term)
    return out


def _check_sizes(fn, x, dim, index, what="self"):
    for d, (a, b) in enumerate(zip(index.shape, x.shape)):
        if d != dim and a > b:
            raise RuntimeError(f"{fn}(): Size does not match at dimension {d}: expected index {index.shape} "
                               f"to be no larger than {what} {x.shape} apart from dimension {dim}")


def _flat(x: Variable) -> Variable:
    return G.reshape(x, (x.numel(),))


def index_select(input: TensorLike, dim: int, index: TensorLike) -> Variable:
    """The slices of `input` along `dim` at the positions in `index` (1-D), in that order."""
    x = tensor_arg("index_select", "input", input)
    i = _index("index_select", index)
    if i.ndim > 1:
        raise IndexError(f"index_select(): Index is supposed to be a vector, got shape {i.shape}")
    if x.ndim == 0:
        return _mark(G.reshape(index_select(G.reshape(x, (1,)), 0, i), ()), "IndexSelect", [x])
    dim = as_dim("index_select", dim, x.ndim, x.shape)
    i = advanced.checked(x, G.reshape(i, (i.numel(),)), x.shape[dim], dim, negative=False)
    out = apply("take", x, Variable(i) if isinstance(i, np.ndarray) else i, axis=dim)
    return _mark(out, "IndexSelect", [x])


def gather(input: TensorLike, dim: int, index: TensorLike, *, sparse_grad: bool = False) -> Variable:
    """`out[i][j][k] = input[index[i][j][k]][j][k]` for dim 0 (and so on): values along `dim`
    read from where `index` says, of `index`'s shape."""
    x = tensor_arg("gather", "input", input)
    i = _index("gather", index)
    dim = as_dim("gather", dim, x.ndim, x.shape)
    if x.ndim == 0:
        return _mark(G.reshape(gather(G.reshape(x, (1,)), 0, G.reshape(i, (1,))), ()), "Gather", [x])
    _check_sizes("gather", x, dim, i)
    out = apply("take", _flat(x), _flat_positions("gather", x, dim, i), axis=0)
    return _mark(out, "Gather", [x])


def take_along_dim(input: TensorLike, indices: TensorLike, dim: int | None = None) -> Variable:
    """numpy's take_along_axis: `gather` with `input` and `indices` broadcast against each other
    along the other dims; with no `dim`, both are flattened first."""
    x = tensor_arg("take_along_dim", "input", input)
    i = _index("take_along_dim", indices)
    if dim is None:
        out = gather(_flat(x), 0, _flat(i))
        return _mark(out, "TakeAlongDim", [x])
    if i.ndim != x.ndim:
        raise RuntimeError(f"take_along_dim(): input and indices should have the same number of dimensions, "
                           f"got {x.shape} and {i.shape}")
    dim = as_dim("take_along_dim", dim, x.ndim, x.shape)
    xs, ix = list(x.shape), list(i.shape)
    xs[dim], ix[dim] = 1, 1
    try:
        common = list(np.broadcast_shapes(tuple(xs), tuple(ix)))
    except ValueError:
        raise RuntimeError(f"take_along_dim(): the shapes {x.shape} and {i.shape} cannot be broadcast "
                           f"together apart from dim {dim}") from None
    xs, ix = list(common), list(common)
    xs[dim], ix[dim] = x.shape[dim], i.shape[dim]
    out = gather(G.broadcast_to(x, tuple(xs)), dim, G.broadcast_to(i, tuple(ix)))
    return _mark(out, "TakeAlongDim", [x])


def _bool_mask(fn: str, mask) -> Variable:
    m = mask if isinstance(mask, Variable) else Variable(np.asarray(mask))
    if m.dtype != dtypes.bool_:
        raise RuntimeError(f"{fn}(): only boolean masks are supported, got a mask of dtype {m.dtype}")
    return m


def masked_fill(input: TensorLike, mask: TensorLike, value: TensorLike) -> Variable:
    """`input` with `value` (a number or a 0-d Variable, which then gets a gradient) where
    `mask` (bool, broadcast) holds."""
    x = tensor_arg("masked_fill", "input", input)
    m = _bool_mask("masked_fill", mask)
    v = value
    if isinstance(value, Variable):
        if value.ndim != 0:
            raise RuntimeError(f"masked_fill(): only supports a 0-dimensional value tensor, but got one of "
                               f"shape {value.shape}")
        v = F.cast(value, x.dtype)
    elif isinstance(value, np.ndarray) and value.ndim == 0:
        v = value.item()
    elif not isinstance(value, (int, float, bool, np.number, np.bool_)):
        raise TypeError(f"masked_fill(): value must be a number or a 0-d Variable, got "
                        f"{type(value).__name__}")
    if not isinstance(v, Variable):
        v = Variable.literal(v, x.dtype)
    out = F.where(m, v, x)
    return _mark(out, "MaskedFill", [x] + ([value] if isinstance(value, Variable) else []))


def nonzero(input: TensorLike, *, as_tuple: bool = False) -> Variable | tuple:
    """The indices of the non-zero elements of `input` (which needs a value: their number
    makes the shape): an int64 Variable of shape (n, ndim), or one per dim with `as_tuple`."""
    x = tensor_arg("nonzero", "input", input)
    if not x.is_concrete:
        raise RuntimeError(f"nonzero(): {x._describe()} has no value, and the result's shape depends on "
                           f"its values; use sg.where(condition, x, other) or masked_fill instead")
    found = np.nonzero(x.value() if x.ndim else x.value().reshape(1))
    if as_tuple:
        return tuple(Variable(np.ascontiguousarray(f, dtype=np.int64)) for f in found)
    return Variable(np.ascontiguousarray(np.stack(found, axis=1), dtype=np.int64))


def masked_select(input: TensorLike, mask: TensorLike) -> Variable:
    """The elements of `input` where `mask` holds (both broadcast), as a 1-D Variable; the mask
    needs a value (the result's size comes from it)."""
    x = tensor_arg("masked_select", "input", input)
    m = _bool_mask("masked_select", mask)
    shape = tuple(np.broadcast_shapes(x.shape, m.shape))
    out = advanced.getitem(G.broadcast_to(x, shape), G.broadcast_to(m, shape))
    return _mark(out, "MaskedSelect", [x])


def where(condition: TensorLike, input: TensorLike | None = None,
          other: TensorLike | None = None) -> Variable | tuple:
    """`input` where `condition` holds, else `other` (Variables or numbers, broadcast and
    promoted); `where(condition)` alone is `nonzero(condition, as_tuple=True)`."""
    if input is None and other is None:
        return nonzero(condition, as_tuple=True)
    if input is None or other is None:
        raise TypeError("where(): give both input and other, or neither")
    input, other = (Variable(v) if isinstance(v, (np.ndarray, list)) else v for v in (input, other))
    return F.where(condition, input, other)


def _source(fn, source, x) -> Variable:
    if isinstance(source, Variable):
        if source.dtype != x.dtype:
            raise RuntimeError(f"{fn}(): expected source and self to have the same dtype, got {source.dtype} "
                               f"and {x.dtype}")
        return source
    return Variable.literal(source, x.dtype) if np.ndim(source) == 0 else F.cast(Variable(np.asarray(source)),
                                                                                 x.dtype)


def _scatter(fn, input, dim, index, src, accumulate):
    x = tensor_arg(fn, "input", input)
    i = _index(fn, index)
    dim = as_dim(fn, dim, x.ndim, x.shape)
    s = _source(fn, src, x)
    if s.ndim:
        if s.ndim != i.ndim:
            raise RuntimeError(f"{fn}(): Index tensor must have the same number of dimensions as src tensor "
                               f"(index {i.shape}, src {s.shape})")
        _check_sizes(fn, s, -1, i, "src")
        if s.shape != i.shape:
            s = G.node("slice", s, starts=(0,) * s.ndim, stops=i.shape, steps=(1,) * s.ndim)
    _check_sizes(fn, x, dim, i)
    out = advanced.put(x, _flat_positions(fn, x, dim, i), s, accumulate)
    return _mark(out, "ScatterAdd" if accumulate else "Scatter", [x] + ([s] if s.ndim else []))


def scatter_add(input: TensorLike, dim: int, index: TensorLike, src: TensorLike) -> Variable:
    """`input` with each element of `src` added at the place `index` names along `dim` (and its
    own place along the other dims); repeated places add up."""
    return _scatter("scatter_add", input, dim, index, src, True)


def scatter(input: TensorLike, dim: int, index: TensorLike, src: TensorLike | None = None, *,
            value: TensorLike | None = None) -> Variable:
    """`input` with each element of `src` (or the number `value`) written at the place `index`
    names along `dim`; a place named twice keeps the last value given."""
    if (src is None) == (value is None):
        raise TypeError("scatter(): give src or value")
    return _scatter("scatter", input, dim, index, src if value is None else value, False)


def index_add(input: TensorLike, dim: int, index: TensorLike, source: TensorLike, *,
              alpha: float = 1) -> Variable:
    """`input` with the slices of `source` along `dim` added (times `alpha`) to the slices that
    `index` (1-D) names; repeated indices add up."""
    x = tensor_arg("index_add", "input", input)
    i = _index("index_add", index)
    dim = as_dim("index_add", dim, x.ndim, x.shape)
    s = _source("index_add", source, x)
    want = x.shape[:dim] + (i.numel(),) + x.shape[dim + 1:]
    if i.ndim > 1 or s.shape != want:
        raise RuntimeError(f"index_add(): source of shape {s.shape} does not fit input {x.shape} with "
                           f"{i.numel()} indices along dim {dim} (expected {want})")
    if alpha != 1:
        s = G.mul(s, alpha)
    i = advanced.checked(x, G.reshape(i, (i.numel(),)), x.shape[dim], dim, negative=False)
    i = Variable(i) if isinstance(i, np.ndarray) else i
    added = apply("scatter_add", s, i, axis=dim, size=x.shape[dim])
    return _mark(G.add(x, added), "IndexAdd", [x, s])


def index_put(input: TensorLike, indices: tuple, values: TensorLike, accumulate: bool = False) -> Variable:
    """`input` with `input[indices] = values` (or `+=` with `accumulate`, where repeated
    indices add up); `indices` is a tuple of index Variables."""
    x = tensor_arg("index_put", "input", input)
    v = _source("index_put", values, x)
    return advanced.index_put(x, tuple(indices), v, accumulate)
