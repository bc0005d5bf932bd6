"""Graph builders for pullbacks: one primitive node per call, over `symgrad.variable.apply`.

Unlike the public functions of `symgrad.functional`, these promote no dtypes and mark no
grad_fn names: a pullback states exactly the graph it means. Operands of an op must share a
dtype (the op's rule raises otherwise); a Python number takes the dtype of the Variable it
meets, as a constant written in a formula does. Shape builders return their input unchanged
when there is nothing to do, so gradients of simple graphs stay simple."""
from __future__ import annotations

from numbers import Number

from symgrad.ops.registry import OPS
from symgrad.variable import Variable, apply


def const(value, like: Variable) -> Variable:
    """The number `value` as a 0-d literal of `like`'s dtype."""
    return Variable.literal(value, like.dtype)


def zeros(like: Variable) -> Variable:
    """Zeros of `like`'s shape and dtype (a broadcast literal): zero even where `like` is
    inf or NaN, which `like * 0` would not be."""
    return broadcast_to(const(0, like), like.shape)


def _operands(xs):
    """The operands with numbers made literals of the dtype of the first Variable among them."""
    like = next((x for x in xs if isinstance(x, Variable)), None)
    if like is None:
        raise TypeError("a graph builder needs at least one Variable operand")
    return [const(x, like) if isinstance(x, (Number, bool)) else x for x in xs]


def node(op: str, *inputs, **attrs) -> Variable:
    """One node of `op` (numbers among the inputs become literals, see `_operands`)."""
    return apply(op, *_operands(inputs), **attrs)


def _elementwise(op: str):
    def build(*xs) -> Variable:
        return node(op, *xs)
    build.__name__ = build.__qualname__ = op
    build.__doc__ = f"One `{op}` node (no promotion)."
    return build


# The ones the pullbacks here use, by name; any other registered elementwise op is built by
# `__getattr__` below (G.softplus, ...), so a new op has a builder without an entry here.
(neg, exp, log, sqrt, sin, cos, sigmoid, floor, stop_gradient, abs,
 add, sub, mul, div, pow, fmod, eq, ne, lt, le, gt, ge) = map(_elementwise, [
    "neg", "exp", "log", "sqrt", "sin", "cos", "sigmoid", "floor", "stop_gradient", "abs",
    "add", "sub", "mul", "div", "pow", "fmod", "eq", "ne", "lt", "le", "gt", "ge"])


def __getattr__(name: str):
    op = OPS.get(name)
    if op is None or op.kind != "elementwise" or name in ("where", "cast"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return _elementwise(name)


def where(cond: Variable, a, b) -> Variable:
    """`a` where `cond` holds, else `b`; a number takes the other branch's dtype."""
    a, b = _operands([a, b])
    return apply("where", cond, a, b)


def cast(x: Variable, dtype) -> Variable:
    """`x` as `dtype`: a literal is re-typed, a matching dtype passes through."""
    if x.dtype == dtype:
        return x
    if x._literal:
        return Variable.literal(x.value(), dtype)
    return apply("cast", x, dtype=dtype)


# --- shapes ------------------------------------------------------------------------------------

def reshape(x: Variable, shape) -> Variable:
    shape = tuple(shape)
    return x if x.shape == shape else apply("reshape", x, shape=shape)


def broadcast_to(x: Variable, shape) -> Variable:
    shape = tuple(shape)
    return x if x.shape == shape else apply("broadcast_to", x, shape=shape)


def permute(x: Variable, perm) -> Variable:
    perm = tuple(int(p) for p in perm)
    return x if perm == tuple(range(x.ndim)) else apply("permute", x, perm=perm)


def swap_last(x: Variable) -> Variable:
    """`x` with its last two dims exchanged (a matrix transpose, batched)."""
    perm = list(range(x.ndim))
    perm[-1], perm[-2] = perm[-2], perm[-1]
    return permute(x, perm)


def reduce(op: str, x: Variable, axes, keepdim: bool) -> Variable:
    """A reduction over `axes` (sorted, non-negative); none at all is `x` itself."""
    axes = tuple(axes)
    return apply(op, x, axes=axes, keepdim=bool(keepdim)) if axes else x


def sum_to(g: Variable, shape) -> Variable:
    """A broadcast cotangent summed back down to `shape`, the shape of what was broadcast."""
    shape = tuple(shape)
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape)
                                      if n == 1 and g.shape[lead + i] != 1)
    return reshape(reduce("sum", g, axes, True), shape)


def matmul(a: Variable, b: Variable) -> Variable:
    """The batched matrix product of operands with at least 2 dims each."""
    return apply("matmul", a, b)
