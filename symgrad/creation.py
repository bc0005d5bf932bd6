"""Making Variables from data: PyTorch's creation functions, with its keyword names
(`size=`, `dtype=`, `device=`, `requires_grad=`, `out=`; layout and memory options are accepted
and have one meaning here). Floats take the default dtype (`sg.set_default_dtype`)."""
from __future__ import annotations

import math
from typing import Any, Sequence, Union

import numpy as np

from symgrad import devices, dtypes
from symgrad.dims import symbolic_shape
from symgrad.generator import generator_of
from symgrad.rounding import fma
from symgrad.hints import DTypeLike, TensorLike
from symgrad.shapes import as_shape
from symgrad.variable import Variable

# A shape: ints (`zeros(2, 3)`), one sequence of them (`zeros((2, 3))`), or one int.
ShapeLike = Union[int, Sequence[int]]
# A device: symgrad's `sg.device`, its name ("cpu", "cuda:0"), or None for the default.
DeviceLike = Union[devices.device, str, None]

def _shape(size, what, keyword=None):
    """`zeros(2, 3)`, `zeros((2, 3))`, `zeros([2, 3])` or `zeros(size=(2, 3))` (PyTorch's `*size`:
    a Python signature cannot name both `*size` and `size=`, so the positional ones are `*shape`)."""
    if keyword is not None:
        if size:
            raise TypeError(f"{what}(): give the size by position or as size=, not both")
        size = (keyword,)
    if len(size) == 1 and not isinstance(size[0], (int, np.integer)):
        size = size[0]
    shape = as_shape(what, size)
    if symbolic_shape(shape) and what not in _FILLED:
        raise ValueError(f"{what}(): the shape {shape} has named dimensions, whose sizes are given only "
                         f"when a compiled function is called; values cannot be drawn for it now")
    return shape


_FILLED = ("zeros", "ones", "empty", "full")


def _filled(name, shape, value, dtype, requires_grad, device, out) -> Variable:
    """`value` in every element of `shape`: an array now, or, where the shape has named
    dimensions (symgrad.dims), the value broadcast to it in the graph."""
    if not symbolic_shape(shape):
        return _finish(name, np.full(shape, value, dtype), None, requires_grad, device, out)
    devices.check(f"{name}()", device)
    if requires_grad or out is not None:
        raise ValueError(f"{name}(): the shape {shape} has named dimensions: such a value is computed in "
                         f"the graph, so it cannot be a leaf that requires grad or be written into out=")
    from symgrad.functional import broadcast_to
    return broadcast_to(Variable.literal(value, dtype), shape)


def _float(dtype) -> np.dtype:
    return dtypes.as_dtype(dtype) if dtype is not None else dtypes.DEFAULT_FLOAT


def _finish(name, arr, dtype, requires_grad, device, out=None) -> Variable:
    """The Variable of `arr` in `dtype`, after checking the device; written into `out` if given."""
    devices.check(f"{name}()", device)
    arr = np.asarray(arr).astype(dtypes.as_dtype(dtype) if dtype is not None else arr.dtype, copy=False)
    if out is not None:
        from symgrad.signatures import write_out
        return write_out(name, out, Variable(arr), requires_grad)
    return Variable(arr, requires_grad=requires_grad)


def tensor(data: Any, *, dtype: DTypeLike = None, device: DeviceLike = None, requires_grad: bool = False,
           pin_memory: bool = False) -> Variable:
    """A new Variable holding a copy of `data` (a number, nested lists, an array). PyTorch: `torch.tensor`.

    Ints stay int64, floats take the default dtype, numpy arrays keep theirs."""
    from symgrad.variable import _to_array
    devices.check("tensor()", device)
    arr = np.array(_to_array(data, dtype), copy=True)
    return Variable(arr, requires_grad=requires_grad)


def as_tensor(data: Any, dtype: DTypeLike = None, device: DeviceLike = None) -> Variable:
    """`data` as a Variable, without a copy where it already is one. PyTorch: `torch.as_tensor`.

    A Variable stays itself (cast if `dtype` says so)."""
    devices.check("as_tensor()", device)
    if isinstance(data, Variable):
        return data if dtype is None or data.dtype == dtypes.as_dtype(dtype) else data.to(dtype)
    from symgrad.variable import _to_array
    return Variable(_to_array(data, dtype))


def from_numpy(ndarray: np.ndarray) -> Variable:
    """A Variable of a numpy array, keeping its dtype. PyTorch: `torch.from_numpy`."""
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"from_numpy expects a numpy array, got {type(ndarray).__name__}")
    return Variable(ndarray)


def zeros(*shape: ShapeLike, size: ShapeLike | None = None, out: Variable | None = None,
          dtype: DTypeLike = None, layout: Any = None, device: DeviceLike = None,
          requires_grad: bool = False) -> Variable:
    """A Variable of zeros of shape `size` (ints, a sequence, or size=). PyTorch: `torch.zeros`."""
    shape = _shape(shape, "zeros", size)
    return _filled("zeros", shape, 0, _float(dtype), requires_grad, device, out)


def ones(*shape: ShapeLike, size: ShapeLike | None = None, out: Variable | None = None,
         dtype: DTypeLike = None, layout: Any = None, device: DeviceLike = None,
         requires_grad: bool = False) -> Variable:
    """A Variable of ones of shape `size` (ints, a sequence, or size=). PyTorch: `torch.ones`."""
    shape = _shape(shape, "ones", size)
    return _filled("ones", shape, 1, _float(dtype), requires_grad, device, out)


def empty(*shape: ShapeLike, size: ShapeLike | None = None, out: Variable | None = None,
          dtype: DTypeLike = None, layout: Any = None, device: DeviceLike = None, requires_grad: bool = False,
          pin_memory: bool = False, memory_format: Any = None) -> Variable:
    """A Variable of shape `size` whose values are not to be relied on. PyTorch: `torch.empty`.

    symgrad's memory is always initialised (to zeros)."""
    shape = _shape(shape, "empty", size)
    return _filled("empty", shape, 0, _float(dtype), requires_grad, device, out)


def full(size: ShapeLike, fill_value: Any, *, out: Variable | None = None, dtype: DTypeLike = None,
         layout: Any = None, device: DeviceLike = None, requires_grad: bool = False) -> Variable:
    """A Variable of shape `size` filled with `fill_value` (its dtype: a bool, int or float's).
    PyTorch: `torch.full`."""
    if dtype is not None:
        dt = dtypes.as_dtype(dtype)
    elif isinstance(fill_value, Variable):
        dt = fill_value.dtype
    else:
        dt = dtypes.scalar_dtype(fill_value)
    value = fill_value.item() if isinstance(fill_value, Variable) else fill_value
    return _filled("full", _shape((size,), "full"), value, dt, requires_grad, device, out)


def rand(*shape: ShapeLike, size: ShapeLike | None = None, generator: Any = None, out: Variable | None = None,
         dtype: DTypeLike = None, layout: Any = None, device: DeviceLike = None, requires_grad: bool = False,
         pin_memory: bool = False) -> Variable:
    """A Variable of shape `size` of samples drawn uniformly from [0, 1). PyTorch: `torch.rand`.

    They come from `generator` or the default generator (`manual_seed`): PyTorch's numbers."""
    shape, dt = _shape(shape, "rand", size), _float(dtype)
    values = generator_of(generator).uniform(math.prod(shape), dt).reshape(shape)
    return _finish("rand", values, dt, requires_grad, device, out)


def randn(*shape: ShapeLike, size: ShapeLike | None = None, generator: Any = None,
          out: Variable | None = None, dtype: DTypeLike = None, layout: Any = None, device: DeviceLike = None,
          requires_grad: bool = False, pin_memory: bool = False) -> Variable:
    """A Variable of shape `size` of standard normal samples (mean 0, variance 1). PyTorch: `torch.randn`.

    They come from `generator` or the default generator (`manual_seed`): PyTorch's numbers."""
    shape, dt = _shape(shape, "randn", size), _float(dtype)
    values = generator_of(generator).normal(math.prod(shape), dt).reshape(shape)
    return _finish("randn", values, dt, requires_grad, device, out)


def randint(low: int = 0, high: int | ShapeLike | None = None, size: ShapeLike | None = None, *,
            generator: Any = None, out: Variable | None = None, dtype: DTypeLike = None, layout: Any = None,
            device: DeviceLike = None, requires_grad: bool = False) -> Variable:
    """Integers drawn uniformly from [low, high): `randint(high, size)` or `randint(low, high, size)`.
    PyTorch: `torch.randint` (and its numbers, from `generator` or the default generator)."""
    if size is None and isinstance(high, (tuple, list)):      # randint(high, size)
        low, high, size = 0, low, high
    elif high is None:                                         # randint(high, size=...)
        low, high = 0, low
    if size is None or high is None:
        raise TypeError("randint(): give high and size: randint(high, size) or randint(low, high, size)")
    shape = _shape((size,), "randint")
    values = generator_of(generator).integers(low, high, math.prod(shape)).reshape(shape)
    return _finish("randint", values, dtype or "int64", requires_grad, device, out)


def randperm(n: int, *, generator: Any = None, out: Variable | None = None, dtype: DTypeLike = None,
             layout: Any = None, device: DeviceLike = None, requires_grad: bool = False,
             pin_memory: bool = False) -> Variable:
    """A random permutation of 0 .. n - 1 (int64). PyTorch: `torch.randperm`, and its numbers."""
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"randperm(): n must be a non-negative int, got {n!r}")
    return _finish("randperm", generator_of(generator).permutation(int(n)), dtype or "int64", requires_grad,
                   device, out)


def bernoulli(input: Any, p: float | None = None, *, generator: Any = None,
              out: Variable | None = None) -> Variable:
    """0 or 1 for each element, 1 with the probability `input` gives there (or `p` for every
    element, when given), in input's dtype. PyTorch: `torch.bernoulli`, and its numbers."""
    probs = np.asarray(input.value() if isinstance(input, Variable) else input)
    if probs.dtype.kind != "f":
        raise TypeError(f"bernoulli(): input must be floating point, got {probs.dtype}")
    gen = generator_of(generator)
    if p is None:
        if np.any((probs < 0) | (probs > 1)):
            raise RuntimeError("Expected p_in >= 0 && p_in <= 1 to be true, but got false.")
        u = gen.uniform(probs.size, probs.dtype).reshape(probs.shape)
        return _finish("bernoulli", (u < probs).astype(probs.dtype), None, False, None, out)
    if not 0 <= p <= 1:
        raise RuntimeError(f"bernoulli_ expects p to be in [0, 1], but got p={p}")
    u = gen.uniform(probs.size, np.float64).reshape(probs.shape)
    return _finish("bernoulli", (u < p).astype(probs.dtype), None, False, None, out)


def normal(mean: Any, std: Any, size: ShapeLike | None = None, *, generator: Any = None,
           out: Variable | None = None, dtype: DTypeLike = None, device: DeviceLike = None,
           requires_grad: bool = False) -> Variable:
    """Samples from N(mean, std ** 2) of shape `size` (numbers for mean and std), or of the
    broadcast shape of Variables `mean` and `std`. PyTorch: `torch.normal`, and its numbers."""
    gen = generator_of(generator)
    if isinstance(mean, Variable) or isinstance(std, Variable):
        m, s = (np.asarray(v.value() if isinstance(v, Variable) else v) for v in (mean, std))
        shape = np.broadcast_shapes(m.shape, s.shape)
        dt = dtypes.result_dtype([v.dtype for v in (mean, std) if isinstance(v, Variable)])
        if np.any(s < 0):
            raise RuntimeError("normal expects all elements of std >= 0.0")
        values = gen.normal(math.prod(shape), dt).reshape(shape) * s.astype(dt) + m.astype(dt)
        return _finish("normal", values, dt, requires_grad, device, out)
    if size is None:
        raise TypeError("normal(): with numbers for mean and std, give size=")
    if std < 0:
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
    shape, dt = _shape((size,), "normal"), _float(dtype)
    return _finish("normal", gen.normal(math.prod(shape), dt, mean, std).reshape(shape), dt, requires_grad,
                   device, out)


def arange(start: float = 0, end: float | None = None, step: float = 1, *, out: Variable | None = None,
           dtype: DTypeLike = None, layout: Any = None, device: DeviceLike = None,
           requires_grad: bool = False) -> Variable:
    """Values from start (0) up to end, step apart: int64 for ints, the default float dtype else.
    PyTorch: `torch.arange`."""
    if end is None:
        start, end = 0, start
    ints = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
    arr = np.arange(start, end, step)
    return _finish("arange", arr, dtype or ("int64" if ints else dtypes.DEFAULT_FLOAT), requires_grad,
                   device, out)


def _linspace_values(start, end, steps: int, dtype: np.dtype) -> np.ndarray:
    """PyTorch's values, bit for bit: in `dtype`, step = (end - start) / (steps - 1); the first
    half counts up from start (start + step * i), the second down from end
    (end - step * (steps - 1 - i)), each one fused multiply-add."""
    if steps < 0:
        raise RuntimeError(f"linspace(): number of steps must be non-negative, got {steps}")
    if not dtypes.is_float(dtype):
        return np.linspace(start, end, steps)
    s, e = dtype.type(start), dtype.type(end)
    if steps == 1:
        return np.array([s], dtype)
    step = np.float64((e - s) / dtype.type(steps - 1))
    i = np.arange(steps, dtype=np.float64)
    half = steps // 2
    up = fma(np.full(half, step), i[:half], np.full(half, np.float64(s)))
    down = fma(np.full(steps - half, -step), (steps - 1) - i[half:], np.full(steps - half, np.float64(e)))
    return np.concatenate([up, down]).astype(dtype)


def linspace(start: float, end: float, steps: int, *, out: Variable | None = None, dtype: DTypeLike = None,
             layout: Any = None, device: DeviceLike = None, requires_grad: bool = False) -> Variable:
    """`steps` values evenly spaced from start to end inclusive (PyTorch's values exactly).
    PyTorch: `torch.linspace`."""
    dtype = _float(dtype)
    return _finish("linspace", _linspace_values(float(start), float(end), int(steps), dtype), dtype,
                   requires_grad, device, out)


def eye(n: int, m: int | None = None, *, out: Variable | None = None, dtype: DTypeLike = None,
        layout: Any = None, device: DeviceLike = None, requires_grad: bool = False) -> Variable:
    """The n x m identity matrix (n x n without `m`): ones on the diagonal, zeros elsewhere.
    PyTorch: `torch.eye`."""
    return _finish("eye", np.eye(n, m), _float(dtype), requires_grad, device, out)


def _template(name, x) -> Variable:
    if not isinstance(x, Variable):
        raise TypeError(f"{name}(): argument 'input' must be a Variable, got {type(x).__name__}")
    return x


def _like(fn):
    def like(input: TensorLike, *, dtype: DTypeLike = None, layout: Any = None, device: DeviceLike = None,
             requires_grad: bool = False, memory_format: Any = None) -> Variable:
        x = _template(fn.__name__ + "_like", input)
        return fn(*x.shape, dtype=dtype or x.dtype, device=device, requires_grad=requires_grad)
    like.__name__ = like.__qualname__ = fn.__name__ + "_like"
    like.__doc__ = (f"As {fn.__name__}, with the shape and dtype of `input` (dtype= may say otherwise). "
                    f"PyTorch: `torch.{fn.__name__}_like`.")
    return like


zeros_like, ones_like, rand_like, randn_like, empty_like = map(_like, [zeros, ones, rand, randn, empty])


def full_like(input: TensorLike, fill_value: Any, *, dtype: DTypeLike = None, layout: Any = None,
              device: DeviceLike = None, requires_grad: bool = False, memory_format: Any = None) -> Variable:
    """As full, with the shape and dtype of `input` (dtype= may say otherwise). PyTorch: `torch.full_like`."""
    x = _template("full_like", input)
    return full(x.shape, fill_value, dtype=dtype or x.dtype, device=device, requires_grad=requires_grad)


def _typed(name, dtype):
    def make(*args: Any, device: DeviceLike = None) -> Variable:
        devices.check(f"{name}()", device)
        if all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in args):
            return zeros(*args, dtype=dtype)
        if len(args) != 1:
            raise TypeError(f"{name}() takes a shape (ints) or one sequence of data")
        return Variable(args[0], dtype=dtype)
    make.__name__ = name
    make.__doc__ = f"A Variable of {dtype}: of a shape (zeros) or of data. PyTorch: `torch.{name}`."
    return make


FloatTensor = _typed("FloatTensor", "float32")
DoubleTensor = _typed("DoubleTensor", "float64")
LongTensor = _typed("LongTensor", "int64")
IntTensor = _typed("IntTensor", "int32")
BoolTensor = _typed("BoolTensor", "bool")
