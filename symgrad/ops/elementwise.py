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


def _elementwise(name, impl, vjp=None, grad_name="", bool_out=False, no_bool="", infer=None):
    register(Op(name, "elementwise", infer or _infer_same(name, bool_out, no_bool), impl, vjp, grad_name))


# --- unary -----------------------------------------------------------------------------

def _unary(name, impl, vjp, grad_name="", no_bool=""):
    _elementwise(name, impl, (lambda g, node, needs: (vjp(g, node, node.inputs[0]),)) if vjp else None,
                 grad_name, no_bool=no_bool)


_unary("neg", np.negative, lambda g, y, x: F.neg(g), no_bool="negation")
_unary("exp", np.exp, lambda g, y, x: F.mul(g, y))
_unary("log", np.log, lambda g, y, x: F.div(g, x))
_unary("sqrt", np.sqrt, lambda g, y, x: F.div(F.mul(g, 0.5), y))
# abs' is +1 above zero, -1 below and 0 at zero and at NaN (PyTorch's sgn(x), written without
# sign so that NaN gives 0 rather than NaN).
_unary("abs", np.abs, lambda g, y, x: F.mul(g, _step_sign(x)))


def _step_sign(x):
    """(x > 0) - (x < 0) in x's dtype: 0 at +-0 and at NaN, as PyTorch's sign."""
    return F.sub(F.cast(F.gt(x, 0), x.dtype), F.cast(F.lt(x, 0), x.dtype))


def _sign(x):
    return ((x > 0).astype(x.dtype) - (x < 0).astype(x.dtype)).astype(x.dtype)


def _zero_cotangent(g):
    """The zero gradient of a step function (floor, sign): zeros even where g is inf or NaN."""
    zero = F.zeros_like_scalar(g)
    return F.broadcast_to(zero, g.shape) if g.shape else zero


_unary("sign", _sign, lambda g, y, x: _zero_cotangent(g), no_bool="sign")
_unary("floor", lambda x: np.floor(x) if x.dtype.kind == "f" else x, lambda g, y, x: _zero_cotangent(g),
       no_bool="floor")
_unary("sin", np.sin, lambda g, y, x: F.mul(g, F.cos(x)))
_unary("cos", np.cos, lambda g, y, x: F.neg(F.mul(g, F.sin(x))))
_unary("tanh", np.tanh, lambda g, y, x: F.mul(g, F.sub(1.0, F.mul(y, y))))


def _sigmoid(x):
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-x))).astype(x.dtype)


_unary("sigmoid", _sigmoid, lambda g, y, x: F.mul(g, F.mul(y, F.sub(1.0, y))))


def _softplus(x):
    """log(1 + exp(x)) without overflow: max(x, 0) + log1p(exp(-|x|)); NaN stays NaN."""
    with np.errstate(over="ignore"):
        return (np.where(x > 0, x, np.zeros((), x.dtype)) + np.log1p(np.exp(-np.abs(x)))).astype(x.dtype)


# Its pullback is exactly sigmoid: the losses on logits get PyTorch's sigmoid(x) - t.
_unary("softplus", _softplus, lambda g, y, x: F.mul(g, F.sigmoid(x)))

# relu keeps -0.0 and NaN (as PyTorch and the C `a < 0 ? 0 : a`); its gradient is cut only where
# x <= 0, so it passes at NaN and is 0 at 0, as PyTorch's threshold_backward.
_unary("relu", lambda x: np.where(x < 0, np.zeros((), x.dtype), x),
       lambda g, y, x: F.where(F.le(x, 0), F.zeros_like_scalar(g), g))

# Identity with no pullback: how `detach` and stop-gradient tricks appear in a graph.
register(Op("stop_gradient", "elementwise", lambda x: (x.shape, x.dtype), lambda x: x, None,
            "StopGradient"))


def _cast_vjp(g, node, needs):
    x = node.inputs[0]
    return (F.cast(g, x.dtype) if dtypes.is_float(x.dtype) else None,)


register(Op("cast", "elementwise", lambda x, dtype: (x.shape, dtypes.as_dtype(dtype)),
            lambda x, dtype: x.astype(dtype), _cast_vjp, "ToCopy", attrs=("dtype",)))


# --- binary ----------------------------------------------------------------------------

def _binary(name, impl, vjp_a, vjp_b, grad_name="", no_bool="", infer=None):
    def vjp(g, node, needs):
        a, b = node.inputs
        return (F.sum_to(vjp_a(g, node, a, b), a.shape) if needs[0] else None,
                F.sum_to(vjp_b(g, node, a, b), b.shape) if needs[1] else None)
    _elementwise(name, impl, vjp, grad_name, no_bool=no_bool, infer=infer)


def _true_divide(a, b):
    # integers: x // 0 is 0 and INT_MIN // -1 wraps to INT_MIN (numpy's results, no warning)
    with np.errstate(all="ignore"):
        return np.true_divide(a, b) if a.dtype.kind == "f" else np.floor_divide(a, b)


def _remainder(a, b):
    """PyTorch's remainder: the result has the divisor's sign. Floats: fmod, then shifted by b
    where the signs differ (x % 0 is NaN); integers: numpy's (x % 0 == 0, INT_MIN % -1 == 0)."""
    with np.errstate(all="ignore"):
        if a.dtype.kind != "f":
            return np.remainder(a, b)
        m = np.fmod(a, b)
        return np.where((m != 0) & ((b < 0) != (m < 0)), m + b, m)


def _fmod(a, b):
    """C's fmod: the result has the dividend's sign. Integers: x fmod 0 is 0 (numpy's), and
    INT_MIN fmod -1 is 0."""
    with np.errstate(all="ignore"):
        return np.fmod(a, b)


def floor_divide(a, b):
    """a // b for floats as PyTorch computes it (its div_floor, which the gradient of remainder
    uses): the quotient through fmod, so exact near integers; x // 0 is a / b, inf // x is NaN.
    A graph of primitives, constant for gradients; for integers the `div` op already floors."""
    dt = a.dtype
    m = F.apply("fmod", a, b)
    # fmod has the dividend's sign; where it differs from the divisor's, the quotient drops by 1
    shifted = F.where(F.ne(m, 0), F.ne(F.lt(b, 0), F.lt(m, 0)), F.as_variable(False))
    q = F.sub(F.div(F.sub(a, m), b), F.cast(shifted, dt))
    fl = F.apply("floor", q)
    rounded = F.add(fl, F.cast(F.gt(F.sub(q, fl), 0.5), dt))
    return F.stop_gradient(F.where(F.eq(b, 0), F.div(a, b), rounded))


def _trunc(x):
    """Rounding toward zero (-0.5 becomes -0.0), constant for gradients."""
    return F.stop_gradient(F.where(F.lt(x, 0), F.neg(F.apply("floor", F.neg(x))), F.apply("floor", x)))


def _power(a, b):
    with np.errstate(all="ignore"):
        if a.dtype.kind != "f":
            return _integer_power(a, b)
        out = np.power(a, b)
        # numpy takes sqrt for some exponents of 0.5 and not others (it depends on the layout):
        # always IEEE pow, as C's pow: pow(-0, 0.5) = +0 and pow(-inf, 0.5) = +inf.
        fix = (b == 0.5) & ((a == 0) | (a == -np.inf))
        return np.where(fix, np.abs(a), out) if np.any(fix) else out


def _integer_power(a, b):
    """Integer powers wrap on overflow. A negative exponent gives what PyTorch's gives: 1 for a
    base of 1, +-1 for -1, else 0 (a negative exponent written as a number is refused by the
    dtype rule, as PyTorch refuses it)."""
    neg = b < 0
    out = np.power(a, np.where(neg, np.zeros((), b.dtype), b))
    if not np.any(neg):
        return out
    odd = (b % 2) != 0
    small = np.where(a == 1, 1, np.where(a == -1, np.where(odd, -1, 1), 0)).astype(out.dtype)
    return np.where(neg, small, out)


def _pow_infer(a, b):
    shape, dtype = _infer_same("pow")(a, b)
    if dtype.kind in "iu" and getattr(b, "_literal", False) and b.value() < 0:
        raise RuntimeError(f"pow: Integers to negative integer powers are not allowed (a {dtype} "
                           f"base of shape {tuple(a.shape)} to the power {b.value()}); make the base "
                           f"a float first, e.g. x.float() ** {b.value()}")
    return shape, dtype


def _tie_mask(a, b, loses):
    """0 where `a` loses to `b`, 1/2 where they tie, else 1 (also where either is NaN, so that
    a NaN's cotangent passes to both operands): PyTorch's maximum and minimum backward."""
    dt = a.dtype
    return F.sub(F.sub(1.0, F.cast(loses(a, b), dt)), F.mul(F.cast(F.eq(a, b), dt), 0.5))


def _pow_base(g, y, a, b):
    """b * a**(b-1), but 0 where b == 0 (x**0 has gradient 0 even at x = 0, as PyTorch)."""
    d = F.mul(g, F.mul(b, F.pow(a, F.sub(b, 1.0))))
    return F.where(F.eq(b, 0), F.zeros_like_scalar(d), d)


def _pow_exponent(g, y, a, b):
    """a**b * log(a), but 0 where a == 0 and b >= 0 (PyTorch's mask: 0**b is flat there)."""
    d = F.mul(g, F.mul(y, F.log(a)))
    zero = F.zeros_like_scalar(d)
    return F.where(F.eq(a, 0), F.where(F.ge(b, 0), zero, d), d)


_binary("add", np.add, lambda g, y, a, b: g, lambda g, y, a, b: g)
_binary("sub", np.subtract, lambda g, y, a, b: g, lambda g, y, a, b: F.neg(g), no_bool="subtraction")
_binary("mul", np.multiply, lambda g, y, a, b: F.mul(g, b), lambda g, y, a, b: F.mul(g, a))
_binary("div", _true_divide, lambda g, y, a, b: F.div(g, b),
        lambda g, y, a, b: F.neg(F.div(F.mul(g, y), b)))
_binary("pow", _power, _pow_base, _pow_exponent, infer=_pow_infer)
# d/da = 1, d/db = -(a // b) and -trunc(a / b), as PyTorch's remainder and fmod
_binary("remainder", _remainder, lambda g, y, a, b: g,
        lambda g, y, a, b: F.neg(F.mul(g, floor_divide(a, b))), no_bool="remainder")
_binary("fmod", _fmod, lambda g, y, a, b: g,
        lambda g, y, a, b: F.neg(F.mul(g, _trunc(F.div(a, b)))), no_bool="fmod")
_binary("maximum", np.maximum, lambda g, y, a, b: F.mul(g, _tie_mask(a, b, F.lt)),
        lambda g, y, a, b: F.mul(g, _tie_mask(b, a, F.lt)))
_binary("minimum", np.minimum, lambda g, y, a, b: F.mul(g, _tie_mask(a, b, F.gt)),
        lambda g, y, a, b: F.mul(g, _tie_mask(b, a, F.gt)))

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
