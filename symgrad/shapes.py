"""Shapes and dims given by users, checked in one place: every function that takes a size or a
dim goes through here, so nonsense (a negative size, a float, a dim out of range, more elements
than int64 counts) is an error naming the function, the argument and the shape."""
from __future__ import annotations

import math

import numpy as np

from symgrad.dims import Dim

MAX_ELEMENTS = 2 ** 63 - 1


class ShapeError(ValueError, RuntimeError):
    """A shape that cannot be: a ValueError, and a RuntimeError as PyTorch raises."""


class DimError(IndexError):
    """A dim out of range (PyTorch's IndexError)."""


class IndexTypeError(IndexError, TypeError):
    """An index that is neither an int, a slice, None nor `...` (PyTorch's IndexError)."""


def _size(what, d, dims, names=False):
    if isinstance(d, Dim):
        return d
    if names and isinstance(d, str):
        try:
            return Dim.named(d)
        except ValueError as e:
            raise ValueError(f"{what}: {e}") from None
    if not isinstance(d, (int, np.integer)) or isinstance(d, (bool, np.bool_)):
        index = getattr(d, "__index__", None)
        if index is None or isinstance(d, (bool, np.bool_, float, np.floating)):
            raise TypeError(f"{what}: sizes must be integers, got {d!r} ({type(d).__name__}) "
                            f"in {tuple(dims)}")
        d = index()
    return int(d)


def as_shape(what: str, dims, infer: bool = False, keep: bool = False,
             names: bool = False) -> tuple[int, ...]:
    """`dims` as a tuple of sizes. With `infer`, one -1 may stand for a size to work out; with
    `keep`, any number of -1 stand for sizes that stay (expand's); with `names`, a string names
    a dimension whose size is given at each call (symgrad.dims)."""
    infer = infer or keep
    if isinstance(dims, (int, np.integer)) and not isinstance(dims, (bool, np.bool_)):
        dims = (dims,)
    try:
        dims = tuple(dims)
    except TypeError:
        raise TypeError(f"{what}: a shape is a sequence of ints, got {dims!r}") from None
    shape = tuple(_size(what, d, dims, names) for d in dims)
    for k, n in enumerate(shape):
        if n < 0 and not (infer and n == -1):
            allowed = " (or -1 for a size to keep)" if keep else \
                " (or -1, once, for a size to infer)" if infer else ""
            raise ShapeError(f"{what}: invalid size {n} at index {k} of shape {shape}: sizes must be "
                             f"non-negative{allowed}")
    if infer and not keep and shape.count(-1) > 1:
        raise ShapeError(f"{what}: only one size can be inferred (-1), got shape {shape}")
    check_elements(what, tuple(n for n in shape if n != -1))
    return shape


def check_elements(what: str, shape) -> None:
    if math.prod(shape) > MAX_ELEMENTS:
        raise ShapeError(f"{what}: shape {tuple(shape)} has {math.prod(shape)} elements, more than "
                         f"int64 can count")


def as_dim(what: str, dim, ndim: int, shape=None) -> int:
    """A dim in [-ndim, ndim), normalised to [0, ndim); a 0-d value takes dims 0 and -1."""
    if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{what}: a dim must be an int, got {dim!r} ({type(dim).__name__})")
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise DimError(f"{what}: dim {dim} out of range for shape {shape if shape is not None else ndim} "
                       f"(expected in [{-n}, {n - 1}])")
    return int(dim) % n
