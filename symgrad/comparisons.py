"""Comparing whole Variables (`allclose`, `isclose`, `equal`) and division with PyTorch's
rounding modes (`div(..., rounding_mode=...)`), with PyTorch's signatures and semantics."""
from __future__ import annotations

import math

import numpy as np

from symgrad import dtypes
from symgrad import functional as F
from symgrad.hints import TensorLike
from symgrad.variable import Variable, no_grad


def _pair(name: str, input, other):
    a = F.tensor_arg(name, "input", input)
    b = F.tensor_arg(name, "other", other)
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise RuntimeError(f"{name}(): the shapes of input {a.shape} and other {b.shape} cannot be "
                           f"broadcast together") from None
    return a, b


def isclose(input: TensorLike, other: TensorLike, rtol: float = 1e-05, atol: float = 1e-08,
            equal_nan: bool = False) -> Variable:
    """Elementwise |input - other| <= atol + rtol * |other|, as torch.isclose: equal values
    (infinities of one sign included) are close, NaN is close to NaN only with `equal_nan`.
    A bool Variable, without gradient; works on symbolic Variables too (it is a graph)."""
    a, b = _pair("isclose", input, other)
    if rtol < 0 or atol < 0:
        raise RuntimeError(f"isclose(): rtol ({rtol}) and atol ({atol}) must be non-negative")
    with no_grad():
        a, b = F.stop_gradient(a), F.stop_gradient(b)
        close = F.eq(a, b)
        if dtypes.is_float(a.dtype) or dtypes.is_float(b.dtype) or rtol or atol:
            (fa, fb), dt = F._promote("isclose", [a, b])
            if not dtypes.is_float(dt):
                fa, fb = F.cast(fa, dtypes.float64), F.cast(fb, dtypes.float64)
            bound = F.add(F.mul(F.abs(fb), rtol), atol)
            error = F.abs(F.sub(fa, fb))
            # an infinite error is never within tolerance (-inf is not close to inf)
            close = F._or(close, F._and(F.lt(error, math.inf), F.le(error, bound)))
            if equal_nan:
                close = F._or(close, F._and(F.ne(fa, fa), F.ne(fb, fb)))
        return F.broadcast_to(close, np.broadcast_shapes(a.shape, b.shape))


def _value(name: str, v: Variable) -> np.ndarray:
    if not v.is_concrete:
        raise RuntimeError(f"{name}() gives a Python bool, which needs values, but {v._describe()} is "
                           f"symbolic; use sg.isclose / sg.eq in the graph instead")
    return v.value()


def allclose(input: TensorLike, other: TensorLike, rtol: float = 1e-05, atol: float = 1e-08,
             equal_nan: bool = False) -> bool:
    """Whether every element of `input` is close to `other`'s (see isclose): a Python bool."""
    close = isclose(input, other, rtol, atol, equal_nan)
    return bool(np.all(_value("allclose", close)))


def equal(input: TensorLike, other: TensorLike) -> bool:
    """True iff `input` and `other` have the same shape and the same elements (NaN equals nothing)."""
    a = F.tensor_arg("equal", "input", input)
    b = F.tensor_arg("equal", "other", other)
    if a.shape != b.shape:
        return False
    x, y = _value("equal", a), _value("equal", b)
    return bool(np.array_equal(x, y))


def div(input: TensorLike, other: TensorLike, *, rounding_mode: str | None = None) -> Variable:
    """input / other; with rounding_mode "trunc" rounded toward zero, "floor" toward minus
    infinity (as floor_divide). Integers divide exactly in those modes (x // 0 is 0, numpy's)."""
    if rounding_mode is None:
        return F.div(input, other)
    if rounding_mode == "floor":
        return F.floor_divide(input, other)
    if rounding_mode != "trunc":
        raise ValueError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found "
                         f"{rounding_mode!r}")
    (a, b), dt = F._promote("div", [input, other])
    if dtypes.is_float(dt):
        q = F.div(a, b)
        with no_grad():     # trunc(q): constant for gradients, -0.0 for -0.5 (PyTorch's trunc)
            return F.where(F.lt(q, 0), F.neg(F.floor(F.neg(q))), F.floor(q))
    with no_grad():
        q, r = F.floor_divide(a, b), F.remainder(a, b)
        # floor went one below toward minus infinity where the division was inexact and the
        # signs differ
        up = F._and(F.ne(r, 0), F.ne(F.lt(a, 0), F.lt(b, 0)))
        return F.add(q, F.cast(up, dt))


def true_divide(input: TensorLike, other: TensorLike) -> Variable:
    """Returns input / other, elementwise, broadcasting: true division (`torch.true_divide`)."""
    return F.div(input, other)


def attach(variable_class) -> None:
    """The methods `x.isclose`, `x.allclose`, `x.equal`, `x.div(..., rounding_mode=)`."""
    variable_class.isclose = isclose
    variable_class.allclose = allclose
    variable_class.equal = equal
    variable_class.div = variable_class.divide = div
    variable_class.true_divide = true_divide

    def div_(self, other, *, rounding_mode=None):
        return self._inplace("div_", lambda x, y: div(x, y, rounding_mode=rounding_mode), other)

    div_.__doc__ = "In-place version of div: the Variable itself takes the result."
    variable_class.div_ = variable_class.divide_ = div_
