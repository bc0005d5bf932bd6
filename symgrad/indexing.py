"""Indexing Variables: `x[key]` and `x[key] = value`. Keys of ints, slices, None and `...`
are basic indexing (symgrad.slicing: a slice of the graph, read as index arithmetic); keys
with integer arrays, lists, integer Variables or boolean masks are advanced indexing
(symgrad.advanced: one `take` node, whose gradient is a `scatter_add`)."""
from __future__ import annotations

from symgrad import advanced, slicing
from symgrad.variable import Variable


def getitem(x: Variable, key) -> Variable:
    """`x[key]`, as PyTorch reads it."""
    if advanced.is_advanced(key):
        return advanced.getitem(x, key)
    return slicing.getitem(x, key)


def index_put(x: Variable, key, value) -> Variable:
    """`x` with `x[key]` replaced by `value` (broadcast to it): what `x[key] = value` makes.
    The gradient goes to `value` from the indexed part and to `x` from the rest."""
    if advanced.is_advanced(key):
        return advanced.index_put(x, key, value)
    return slicing.index_put(x, key, value)
