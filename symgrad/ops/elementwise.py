"""Elementwise primitives. Inputs of one op share a dtype (the front end casts) and
broadcast as numpy does; a pullback sums its cotangent back to each input's shape."""
from __future__ import annotations

import numpy as np

import symgrad.functional as F
from symgrad import dtypes
from symgrad.ops.registry import Op, register


def broadcast_shapes(name, *shapes):
    ndim = max(len(s) for s in shapes)
    out = []
    for axis in range(-ndim, 0):
        sizes = {s[axis] for s in shapes if len(s) >= -axis} - {1}
        if len(sizes) > 1:
            raise ValueError(f"{name}: shapes {' and '.join(str(tuple(s)) for s in shapes)} cannot be "
                             f"broadcast together (dimension {axis} has sizes {sorted(sizes)})")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def _infer_same(name, bool_out=False, no_bool=""):
    def infer(*xs):
        dts = {x.dtype for x in xs}
        if len(dts) > 1:
            raise TypeError(f"{name}: inputs must share a dtype, got {', '.join(map(str, dts))}")
        if no_bool and xs[0].dtype == dtypes.bool_:
            raise TypeError(f"{no_bool} of bool Variables is not supported (as in PyTorch and numpy); "
                            f"use logical operations (~, ^) or convert with .int() / .float() first")
        shape = broadcast_shapes(name, *(x.shape for x in xs))
        return shape, (dtypes.bool_ if bool_out else xs[0].dtype)
    return infer


def _elementwise(name, impl, vjp=None, grad_name="", bool_out=False, no_bool=""):
    register(Op(name, "elementwise", _infer_same(name, bool_out, no_bool), impl, vjp, grad_name))


# --- unary -----------------------------------------------------------------------------

def _unary(name, impl, vjp, grad_name="", no_bool=""):
    _elementwise(name, impl, (lambda g, node, needs: (vjp(g, node, node.inputs[0]),)) if vjp else None,
                 grad_name, no_bool=no_bool)


_unary("neg", np.negative, lambda g, y, x: F.neg(g), no_bool="negation")
_unary("exp", np.exp, lambda g, y, x: F.mul(g, y))
_unary("log", np.log, lambda g, y, x: F.div(g, x))
_unary("sqrt", np.sqrt, lambda g, y, x: F.div(F.mul(g, 0.5), y))
_unary("abs", np.abs, lambda g, y, x: F.mul(g, F.sign(x)))
_unary("sign", np.sign, lambda g, y, x: F.mul(g, 0.0), no_bool="sign")
_unary("sin", np.sin, lambda g, y, x: F.mul(g, F.cos(x)))
_unary("cos", np.cos, lambda g, y, x: F.neg(F.mul(g, F.sin(x))))
_unary("tanh", np.tanh, lambda g, y, x: F.mul(g, F.sub(1.0, F.mul(y, y))))


def _sigmoid(x):
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-x))).astype(x.dtype)


_unary("sigmoid", _sigmoid, lambda g, y, x: F.mul(g, F.mul(y, F.sub(1.0, y))))
_unary("relu", lambda x: np.maximum(x, np.zeros((), x.dtype)),
       lambda g, y, x: F.mul(g, F.cast(F.gt(x, 0), g.dtype)))

# Identity with no pullback: how `detach` and stop-gradient tricks appear in a graph.
register(Op("stop_gradient", "elementwise", lambda x: (x.shape, x.dtype), lambda x: x, None,
            "StopGradient"))


def _cast_vjp(g, node, needs):
    x = node.inputs[0]
    return (F.cast(g, x.dtype) if dtypes.is_float(x.dtype) else None,)


register(Op("cast", "elementwise", lambda x, dtype: (x.shape, dtypes.as_dtype(dtype)),
            lambda x, dtype: x.astype(dtype), _cast_vjp, "ToCopy", attrs=("dtype",)))


# --- binary ----------------------------------------------------------------------------

def _binary(name, impl, vjp_a, vjp_b, grad_name="", no_bool=""):
    def vjp(g, node, needs):
        a, b = node.inputs
        return (F.sum_to(vjp_a(g, node, a, b), a.shape) if needs[0] else None,
                F.sum_to(vjp_b(g, node, a, b), b.shape) if needs[1] else None)
    _elementwise(name, impl, vjp, grad_name, no_bool=no_bool)


def _true_divide(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.true_divide(a, b) if a.dtype.kind == "f" else np.floor_divide(a, b)


def _power(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        if a.dtype.kind != "f":
            return np.power(a, np.abs(b)) * (b >= 0)   # numpy refuses negative integer powers
        return np.power(a, b)


def _tie_mask(a, b, winner):
    """1 where `a` wins, 1/2 where it ties with `b` (PyTorch splits ties evenly), else 0."""
    dt = a.dtype
    return F.add(F.cast(winner(a, b), dt), F.mul(F.cast(F.eq(a, b), dt), 0.5))


_binary("add", np.add, lambda g, y, a, b: g, lambda g, y, a, b: g)
_binary("sub", np.subtract, lambda g, y, a, b: g, lambda g, y, a, b: F.neg(g), no_bool="subtraction")
_binary("mul", np.multiply, lambda g, y, a, b: F.mul(g, b), lambda g, y, a, b: F.mul(g, a))
_binary("div", _true_divide, lambda g, y, a, b: F.div(g, b),
        lambda g, y, a, b: F.neg(F.div(F.mul(g, y), b)))
_binary("pow", _power,
        lambda g, y, a, b: F.mul(g, F.mul(b, F.pow(a, F.sub(b, 1.0)))),
        lambda g, y, a, b: F.mul(g, F.mul(y, F.log(a))))
_binary("maximum", np.maximum, lambda g, y, a, b: F.mul(g, _tie_mask(a, b, F.gt)),
        lambda g, y, a, b: F.mul(g, _tie_mask(b, a, F.gt)))
_binary("minimum", np.minimum, lambda g, y, a, b: F.mul(g, _tie_mask(a, b, F.lt)),
        lambda g, y, a, b: F.mul(g, _tie_mask(b, a, F.lt)))

for _name, _impl in [("lt", np.less), ("le", np.less_equal), ("gt", np.greater),
                     ("ge", np.greater_equal), ("eq", np.equal), ("ne", np.not_equal)]:
    _elementwise(_name, _impl, None, bool_out=True)


# --- where -----------------------------------------------------------------------------

def _where_infer(cond, a, b):
    if cond.dtype != dtypes.bool_:
        raise TypeError(f"where: condition must be bool, got {cond.dtype}")
    if a.dtype != b.dtype:
        raise TypeError(f"where: branches must share a dtype, got {a.dtype} and {b.dtype}")
    return broadcast_shapes("where", cond.shape, a.shape, b.shape), a.dtype


def _where_vjp(g, node, needs):
    cond, a, b = node.inputs
    zero = F.zeros_like_scalar(g)
    return (None,
            F.sum_to(F.where(cond, g, zero), a.shape) if needs[1] else None,
            F.sum_to(F.where(cond, zero, g), b.shape) if needs[2] else None)


register(Op("where", "elementwise", _where_infer, np.where, _where_vjp, "Where"))


# --- checks ------------------------------------------------------------------------------

def _check_range_infer(x, lo, hi, what):
    if x.dtype.kind not in "iu":
        raise TypeError(f"check_range: needs integers, got {x.dtype}")
    return x.shape, x.dtype


def _check_range_impl(x, lo, hi, what):
    bad = (x < lo) | (x >= hi)
    if np.any(bad):
        raise IndexError(f"{what} must lie in [{lo}, {hi}), got {x[bad].reshape(-1)[0]}")
    return x


# Identity on integers that lie in [lo, hi); anything else is an error, raised by the
# interpreter and reported by the generated code (which cannot prove its inputs in range).
register(Op("check_range", "elementwise", _check_range_infer, _check_range_impl, None, "CheckRange",
            attrs=("lo", "hi", "what")))
