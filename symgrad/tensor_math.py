"""Functions tutorials use in passing, made of other symgrad operations (so their gradients
come from those): `var`, `std`, `reciprocal`, `rsqrt`, `square`, and `unique` (values only,
no gradient, as in PyTorch)."""
from __future__ import annotations

import builtins
import math

from typing import Any, Callable, Union

import numpy as np

from symgrad.dims import Dim
from symgrad import dtypes
from symgrad import functional as F
from symgrad.hints import Dims, TensorLike
from symgrad.variable import Variable


def _correction(name: str, unbiased, correction) -> float:
    if unbiased is not None and correction is not None:
        raise TypeError(f"{name}(): give unbiased= or correction=, not both")
    if unbiased is not None:
        return 1.0 if unbiased else 0.0
    return 1.0 if correction is None else float(correction)


def _var(name: str, input, dim, unbiased, keepdim, correction):
    x = F.tensor_arg(name, "input", input)
    if isinstance(dim, bool):            # var(input, unbiased): PyTorch's older form
        dim, unbiased = None, dim
    if not dtypes.is_float(x.dtype):
        raise RuntimeError(f"{name}(): needs a floating point input, got {x.dtype}")
    axes = F._axes(x, dim, name)
    count = math.prod(x.shape[a] for a in axes)
    centred = F.sub(x, F.mean(x, dim=axes, keepdim=True))
    total = F.sum(F.mul(centred, centred), dim=axes, keepdim=keepdim)
    if isinstance(count, Dim):          # a count given at each call (symgrad.dims)
        dof = F.sub(Variable.literal(count, total.dtype), _correction(name, unbiased, correction))
        return x, F.div(total, F.maximum(dof, 0.0))      # (no degrees of freedom: total * inf, as below)
    dof = count - _correction(name, unbiased, correction)
    return x, F.mul(total, 1.0 / dof if dof > 0 else math.inf)


def var(input: TensorLike, dim: Dims = None, unbiased: bool | None = None, keepdim: bool = False, *,
        correction: float | None = None) -> Variable:
    """The variance of `input` over `dim` (all elements by default). PyTorch: `torch.var`.

    It divides by N - correction: N - 1 unless correction= or unbiased=False says otherwise."""
    x, out = _var("var", input, dim, unbiased, keepdim, correction)
    return F._mark(out, "Var", [x])


def std(input: TensorLike, dim: Dims = None, unbiased: bool | None = None, keepdim: bool = False, *,
        correction: float | None = None) -> Variable:
    """The standard deviation of `input` over `dim`: the square root of `var` with the same
    arguments. PyTorch: `torch.std`."""
    x, out = _var("std", input, dim, unbiased, keepdim, correction)
    return F._mark(F.sqrt(out), "Std", [x])


def reciprocal(input: TensorLike) -> Variable:
    """The reciprocal 1 / x of each element (integers become floats). PyTorch: `torch.reciprocal`."""
    x = F.tensor_arg("reciprocal", "input", input)
    return F._mark(F.div(1, x), "Reciprocal", [x])


def rsqrt(input: TensorLike) -> Variable:
    """The reciprocal of the square root, 1 / sqrt(x), of each element. PyTorch: `torch.rsqrt`."""
    x = F.tensor_arg("rsqrt", "input", input)
    return F._mark(F.div(1, F.sqrt(x)), "Rsqrt", [x])


def square(input: TensorLike) -> Variable:
    """The square x * x of each element (recorded as x ** 2, as PyTorch does). PyTorch: `torch.square`."""
    x = F.tensor_arg("square", "input", input)
    return F._mark(F.pow(x, 2), "Pow", [x])


def unique(input: TensorLike, sorted: bool = True, return_inverse: bool = False, return_counts: bool = False,
           dim: int | None = None) -> Union[Variable, tuple[Variable, ...]]:
    """The distinct values of a Variable with values, in increasing order. PyTorch: `torch.unique`.

    When asked, also the index of each element's value among them (return_inverse=) and how
    often each occurs (return_counts=), as a tuple. Not differentiable."""
    x = F.tensor_arg("unique", "input", input)
    if not x.is_concrete:
        raise RuntimeError(f"unique(): the result's size depends on the values, and {x._describe()} "
                           f"has none; compute it on values")
    if dim is not None:
        raise NotImplementedError("unique(): dim= is not supported; flatten first")
    values, inverse, counts = np.unique(x.value(), return_inverse=True, return_counts=True)
    out = [Variable(values)]
    if return_inverse:
        out.append(Variable(inverse.reshape(x.shape).astype(np.int64)))
    if return_counts:
        out.append(Variable(counts.astype(np.int64)))
    return out[0] if len(out) == 1 else tuple(out)


def var_mean(input: TensorLike, dim: Dims = None, unbiased: bool | None = None, keepdim: bool = False, *,
             correction: float | None = None) -> tuple[Variable, Variable]:
    """The variance and the mean of `input` over `dim`, as a pair, with var's arguments.
    PyTorch: `torch.var_mean`."""
    return _with_mean("var_mean", var, "VarMean", input, dim, unbiased, keepdim, correction)


def std_mean(input: TensorLike, dim: Dims = None, unbiased: bool | None = None, keepdim: bool = False, *,
             correction: float | None = None) -> tuple[Variable, Variable]:
    """The standard deviation and the mean of `input` over `dim`, as a pair, with std's arguments.
    PyTorch: `torch.std_mean`."""
    return _with_mean("std_mean", std, "StdMean", input, dim, unbiased, keepdim, correction)


def _with_mean(name, spread, mark, input, dim, unbiased, keepdim, correction):
    """(spread(input), mean(input)) over `dim`, both recorded as PyTorch's one `mark` node."""
    x = F.tensor_arg(name, "input", input)
    out = (spread(x, dim, unbiased, keepdim, correction=correction),
           F.mean(x, dim=dim if not isinstance(dim, bool) else None, keepdim=keepdim))
    return tuple(F._mark(o, mark, [x]) for o in out)


def _truth_count(name, input, dim, keepdim):
    x = F.tensor_arg(name, "input", input)
    truth = x if x.dtype == dtypes.bool_ else F.ne(x, 0)
    axes = F._axes(truth, dim, name)
    count = math.prod(x.shape[a] for a in axes)
    return F.sum(F.cast(truth, dtypes.int64), dim=axes, keepdim=keepdim), count


def all(input: TensorLike, dim: Dims = None, keepdim: bool = False) -> Variable:
    """Whether every element (along `dim`) is true (non-zero), as a bool Variable. PyTorch: `torch.all`."""
    trues, count = _truth_count("all", input, dim, keepdim)
    return F.eq(trues, count)


def any(input: TensorLike, dim: Dims = None, keepdim: bool = False) -> Variable:
    """Whether some element (along `dim`) is true (non-zero), as a bool Variable. PyTorch: `torch.any`."""
    trues, _ = _truth_count("any", input, dim, keepdim)
    return F.gt(trues, 0)


# `torch.sin_(x)`: the in-place methods as functions of the namespace, as PyTorch has them.
# What each one computes into x, for its docstring.
IN_PLACE_DOCS = {
    "abs_": "the absolute value of each element",
    "ceil_": "each element rounded up to an integer",
    "clamp_": "each element clamped into [min, max]",
    "cos_": "the cosine of each element",
    "exp_": "e ** x of each element",
    "fill_": "the given value in every element",
    "floor_": "each element rounded down to an integer",
    "log_": "the natural logarithm of each element",
    "neg_": "the negation -x of each element",
    "relu_": "max(x, 0) of each element",
    "sigmoid_": "the logistic sigmoid of each element",
    "sin_": "the sine of each element",
    "sqrt_": "the square root of each element",
    "tanh_": "the hyperbolic tangent of each element",
    "zero_": "zero in every element",
}
IN_PLACE = tuple(IN_PLACE_DOCS)     # torch's in-place functions symgrad has


def _in_place_function(name: str, doc: str | None = None,
                       annotations: dict[str, Any] | None = None) -> Callable[..., Variable]:
    """The namespace function `name(x, ...)`, which is `x.name(...)`; `doc` and `annotations`
    become its `__doc__` and `__annotations__` (as functools.wraps would set them)."""
    def fn(input: TensorLike, *args: Any, **kwargs: Any) -> Variable:
        x = F.tensor_arg(name, "input", input)
        return getattr(x, name)(*args, **kwargs)
    fn.__name__ = fn.__qualname__ = name
    what = IN_PLACE_DOCS.get(name, f"the result of `x.{name[:-1]}(...)`")
    fn.__doc__ = doc if doc is not None else (
        f"Writes into `input` itself {what}, and returns it. PyTorch: `torch.{name}`.\n\n"
        f"`{name}(x, ...)` is `x.{name}(...)`: the arguments after x are the method's.")
    if annotations is not None:
        fn.__annotations__ = dict(annotations)
    return fn


IN_PLACE_FUNCTIONS = {name: _in_place_function(name) for name in IN_PLACE}


def outer(input: TensorLike, vec2: TensorLike) -> Variable:
    """The outer product of two vectors, out[i, j] = input[i] * vec2[j]. PyTorch: `torch.outer`."""
    a = F.tensor_arg("outer", "input", input)
    b = F.tensor_arg("outer", "vec2", vec2)
    if a.ndim != 1 or b.ndim != 1:
        raise RuntimeError(f"outer: both arguments must be vectors, got input of shape {a.shape} and vec2 "
                           f"of shape {b.shape}")
    return F._mark(F.mul(F.reshape(a, (a.shape[0], 1)), F.reshape(b, (1, b.shape[0]))), "Mul", [a, b])


def repeat(self: Variable, *repeats: int | tuple | list) -> Variable:
    """`x.repeat(2, 3)`: the Variable tiled that many times along each dimension (leading
    counts beyond its dimensions add new ones), as Tensor.repeat."""
    if len(repeats) == 1 and isinstance(repeats[0], (tuple, list)):
        repeats = tuple(repeats[0])
    repeats = tuple(int(r) for r in repeats)
    if len(repeats) < self.ndim:
        raise RuntimeError(f"repeat: the number of repeats ({len(repeats)}) can't be smaller than the "
                           f"number of dimensions of {self._describe()}")
    shape = (1,) * (len(repeats) - self.ndim) + tuple(self.shape)
    if builtins.any(r < 0 for r in repeats):
        raise RuntimeError(f"repeat: repeats must be non-negative, got {repeats}")
    # each dimension d of size n becomes (r, n) broadcast, then merged into r * n
    x = F.reshape(self, tuple(v for n in shape for v in (1, n)))
    x = F.broadcast_to(x, tuple(v for r, n in zip(repeats, shape) for v in (r, n)))
    out = F.reshape(x, tuple(r * n for r, n in zip(repeats, shape)))
    return F._mark(out, "Repeat", [self])
