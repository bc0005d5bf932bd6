"""Making Variables from data: PyTorch's creation functions."""
from __future__ import annotations

import numpy as np

from symgrad import dtypes
from symgrad.shapes import as_shape
from symgrad.variable import Variable

_rng = np.random.default_rng()


def manual_seed(seed: int):
    global _rng
    _rng = np.random.default_rng(seed)


def _shape(size, what):
    if len(size) == 1 and not isinstance(size[0], (int, np.integer)):
        size = size[0]
    return as_shape(what, size)


def _make(arr, dtype, requires_grad):
    arr = arr.astype(dtypes.as_dtype(dtype) if dtype is not None else arr.dtype, copy=False)
    return Variable(arr, requires_grad=requires_grad)


def tensor(data, dtype=None, requires_grad=False) -> Variable:
    """Like torch.tensor: ints stay int64, floats become float32, numpy arrays keep their dtype."""
    from symgrad.variable import _to_array
    arr = np.array(_to_array(data, dtype), copy=True)
    return Variable(arr, requires_grad=requires_grad)


def from_numpy(arr: np.ndarray) -> Variable:
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"from_numpy expects a numpy array, got {type(arr).__name__}")
    return Variable(arr)


def zeros(*size, dtype=None, requires_grad=False):
    return _make(np.zeros(_shape(size, "zeros"), dtypes.as_dtype(dtype or "float32")), None, requires_grad)


def ones(*size, dtype=None, requires_grad=False):
    return _make(np.ones(_shape(size, "ones"), dtypes.as_dtype(dtype or "float32")), None, requires_grad)


empty = zeros


def full(size, fill_value, dtype=None, requires_grad=False):
    dt = dtypes.as_dtype(dtype) if dtype else dtypes.scalar_dtype(fill_value)
    return _make(np.full(_shape((size,), "full"), fill_value, dt), None, requires_grad)


def rand(*size, dtype=None, requires_grad=False):
    return _make(_rng.random(_shape(size, "rand")), dtype or "float32", requires_grad)


def randn(*size, dtype=None, requires_grad=False):
    return _make(_rng.standard_normal(_shape(size, "randn")), dtype or "float32", requires_grad)


def randint(low, high=None, size=(), dtype=None):
    if high is None:
        low, high = 0, low
    return _make(_rng.integers(low, high, _shape((size,), "randint")), dtype or "int64", False)


def arange(start, end=None, step=1, dtype=None, requires_grad=False):
    if end is None:
        start, end = 0, start
    ints = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
    arr = np.arange(start, end, step)
    return _make(arr, dtype or ("int64" if ints else "float32"), requires_grad)


def linspace(start, end, steps, dtype=None, requires_grad=False):
    return _make(np.linspace(start, end, steps), dtype or "float32", requires_grad)


def eye(n, m=None, dtype=None, requires_grad=False):
    return _make(np.eye(n, m), dtype or "float32", requires_grad)


def _template(name, x) -> Variable:
    if not isinstance(x, Variable):
        raise TypeError(f"{name}(): argument 'input' must be a Variable, got {type(x).__name__}")
    return x


def _like(fn):
    def like(x, dtype=None, requires_grad=False):
        x = _template(fn.__name__ + "_like", x)
        return fn(*x.shape, dtype=dtype or x.dtype, requires_grad=requires_grad)
    like.__name__ = fn.__name__ + "_like"
    return like


zeros_like, ones_like, rand_like, randn_like, empty_like = map(_like, [zeros, ones, rand, randn, zeros])


def full_like(x, fill_value, dtype=None, requires_grad=False):
    x = _template("full_like", x)
    return full(x.shape, fill_value, dtype=dtype or x.dtype, requires_grad=requires_grad)


def _typed(name, dtype):
    def make(*args):
        if all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in args):
            return zeros(*args, dtype=dtype)
        if len(args) != 1:
            raise TypeError(f"{name}() takes a shape (ints) or one sequence of data")
        return Variable(args[0], dtype=dtype)
    make.__name__ = name
    return make


FloatTensor = _typed("FloatTensor", "float32")
DoubleTensor = _typed("DoubleTensor", "float64")
LongTensor = _typed("LongTensor", "int64")
IntTensor = _typed("IntTensor", "int32")
BoolTensor = _typed("BoolTensor", "bool")
