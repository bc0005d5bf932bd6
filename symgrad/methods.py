"""Variable's math methods and operators, all delegating to `symgrad.functional`."""
from __future__ import annotations

import inspect
from numbers import Number

import numpy as np

from symgrad import devices, dtypes
from symgrad import functional as F
from symgrad import indexing, selection, tensor_math
from symgrad.variable import Variable, _to_array


def _reflected(fn):
    return lambda self, other: fn(other, self)


def _commuted(fn):
    """`2 * x` as PyTorch records it: `x * 2`, the Variable first, the constant's slot second."""
    def reflected(self, other):
        return fn(self, other) if isinstance(other, Number) else fn(other, self)
    return reflected


def _rtruediv(self, other):
    """`2 / x` as PyTorch computes and records it: `x.reciprocal() * 2` (MulBackward0 of
    ReciprocalBackward0 and the constant)."""
    if not isinstance(other, Number):
        return F.div(other, self)
    return F.mul(tensor_math.reciprocal(self), other)


def _inplace(name, fn):
    """`x.<name>(...)` and `x += y`: `fn` in place (see Variable._inplace)."""
    def method(self, *args, **kwargs):
        return self._inplace(name, lambda x, *a: fn(x, *a, **kwargs), *args)
    method.__name__ = name
    method.__doc__ = f"In-place version of {name[:-1]}: the Variable itself takes the result."
    try:        # the out-of-place function's parameters, for PyTorch's keyword names (signatures.py)
        method.__signature__ = inspect.signature(fn)
    except (TypeError, ValueError):
        pass
    return method


_BINARY = {"add": F.add, "sub": F.sub, "mul": F.mul, "truediv": F.div, "pow": F.pow,
           "matmul": F.matmul}
for _name, _fn in _BINARY.items():
    setattr(Variable, f"__{_name}__", _fn)
    setattr(Variable, f"__r{_name}__", _commuted(_fn) if _name in ("add", "mul") else _reflected(_fn))
    setattr(Variable, f"__i{_name}__", _inplace(f"__i{_name}__", _fn))
Variable.__rtruediv__ = _rtruediv
for _name, _fn in {"lt": F.lt, "le": F.le, "gt": F.gt, "ge": F.ge, "eq": F.eq, "ne": F.ne}.items():
    setattr(Variable, f"__{_name}__", _fn)
    setattr(Variable, _name, _fn)
Variable.__rsub__ = lambda self, other: F._mark(F.sub(other, self), "Rsub1", [self])
Variable.__neg__ = F.neg
Variable.__pos__ = lambda self: self
Variable.__abs__ = F.abs
Variable.__getitem__ = indexing.getitem


Variable.__floordiv__ = F.floor_divide
Variable.__rfloordiv__ = _reflected(F.floor_divide)
Variable.__mod__ = F.remainder
Variable.__rmod__ = _reflected(F.remainder)
Variable.__imod__ = _inplace("__imod__", F.remainder)
Variable.__ifloordiv__ = _inplace("__ifloordiv__", F.floor_divide)

for _name in ["add", "sub", "mul", "div", "pow", "neg", "exp", "log", "sqrt", "abs", "sign", "sin",
              "cos", "tanh", "sigmoid", "relu", "maximum", "minimum", "clamp", "clip", "sum", "mean",
              "max", "min", "amax", "amin", "argmax", "argmin", "norm", "logsumexp", "softmax",
              "log_softmax", "matmul", "mm", "bmm", "dot", "mv", "permute", "transpose", "t", "remainder",
              "fmod", "floor_divide", "floor", "ceil", "softplus", "erf",
              "reshape", "view", "squeeze", "unsqueeze", "flatten", "expand", "broadcast_to"]:
    setattr(Variable, _name, getattr(F, _name))
Variable.subtract, Variable.multiply, Variable.divide = F.sub, F.mul, F.div
Variable.T = property(lambda self: F._mark(F.permute(self, tuple(reversed(range(self.ndim)))),
                                           "Permute", [self]),
                      doc="This Variable with its dimensions in reverse order (the transpose of a matrix). "
                          "PyTorch: `Tensor.T`.")
Variable.mT = property(F.swap_last)
Variable.view_as = lambda self, other: F.reshape(self, F.tensor_arg("view_as", "other", other).shape)
Variable.reshape_as = Variable.view_as
Variable.expand_as = lambda self, other: F.broadcast_to(self, F.tensor_arg("expand_as", "other", other).shape)
Variable.where = lambda self, condition, other: F.where(condition, self, other)
Variable.clamp_min = lambda self, m: F.clamp(self, min=m)
Variable.clamp_max = lambda self, m: F.clamp(self, max=m)
Variable.contiguous = lambda self: self
Variable.view_as.__doc__ = ("This Variable reshaped to the shape of `other` (view_as and reshape_as alike). "
                            "PyTorch: `Tensor.view_as`, `Tensor.reshape_as`.")
Variable.expand_as.__doc__ = "This Variable broadcast to the shape of `other`. PyTorch: `Tensor.expand_as`."
Variable.where.__doc__ = ("This Variable's elements where `condition` holds, `other`'s elsewhere. "
                          "PyTorch: `Tensor.where`.")
Variable.clamp_min.__doc__ = ("Each element clamped from below at `min`: max(x, min). "
                              "PyTorch: `Tensor.clamp_min`.")
Variable.clamp_max.__doc__ = ("Each element clamped from above at `max`: min(x, max). "
                              "PyTorch: `Tensor.clamp_max`.")
Variable.contiguous.__doc__ = ("This Variable itself: its values are always laid out densely. "
                               "PyTorch: `Tensor.contiguous`.")
def _clone(self):
    """A copy: a new leaf holding the value, or, where the graph must go on through it (it
    requires grad, or it is symbolic), an identity node. Not `self + 0`, which turns -0.0 into +0.0."""
    if self.is_concrete and not self.requires_grad:
        return Variable(self.value().copy())
    return F._mark(F.apply("reshape", self, shape=self.shape), "Clone", [self])


Variable.clone = _clone
for _name in ["var", "std", "reciprocal", "rsqrt", "square", "unique", "all", "any", "outer", "repeat"]:
    setattr(Variable, _name, getattr(tensor_math, _name))
def _is_contiguous(self, memory_format=None) -> bool:
    """Whether the values are laid out contiguously in memory: always True, since symgrad keeps
    every value dense. PyTorch: `Tensor.is_contiguous`."""
    return True


Variable.is_contiguous = _is_contiguous


def _to(self, *args, **kwargs):
    """`x.to(dtype)`, `x.to(device)`, `x.to(device, dtype)`, `x.to(other)` (its dtype and device),
    `x.to(device=..., dtype=..., copy=False)`, as in PyTorch: `x` itself when nothing changes."""
    device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
    copy = bool(kwargs.pop("copy", False))
    kwargs.pop("non_blocking", None)
    kwargs.pop("memory_format", None)
    if kwargs:
        raise TypeError(f"to() got an unexpected keyword argument {sorted(kwargs)[0]!r}")
    flags = [a for a in args if isinstance(a, bool)]       # to(dtype, non_blocking, copy)
    if len(flags) > 1:
        copy = copy or flags[1]
    for a in (a for a in args if not isinstance(a, bool)):
        if isinstance(a, Variable):
            device, dtype = device or a.device, dtype or a.dtype
        elif devices.is_device(a):
            device = a
        elif dtype is None:
            dtype = a
        else:
            raise TypeError(f"to() received an invalid combination of arguments: {args!r}")
    devices.check("to()", device)
    if dtype is None or dtypes.as_dtype(dtype) == self.dtype:
        return self.clone() if copy else self
    return F.cast(self, dtype)


def _cuda(self, device=None, non_blocking=False, memory_format=None):
    target = "cuda" if device is None else device if isinstance(device, (str, devices.device)) \
        else devices.device("cuda", device)
    if devices.check("cuda()", target).type == "cpu":         # (a CUDA device raises in check)
        raise RuntimeError("Invalid device, must be cuda device")


Variable.to = _to
Variable.cpu = lambda self, memory_format=None: self
Variable.cpu.__doc__ = "This Variable itself: eager values always live on the CPU. PyTorch: `Tensor.cpu`."
_cuda.__doc__ = ("Raises an error that says how to reach a GPU: eager Variables live on the CPU, and "
                 "compiled functions run on CUDA (backend=\"cuda\"). PyTorch: `Tensor.cuda`.")
Variable.cuda = _cuda
Variable.is_cuda = property(lambda self: False, doc="Always False: eager values live in host memory. "
                                                    "PyTorch: `Tensor.is_cuda`.")
Variable.is_cpu = property(lambda self: True, doc="Always True: eager values live in host memory. "
                                                  "PyTorch: `Tensor.is_cpu`.")
Variable.get_device = lambda self: -1
Variable.get_device.__doc__ = ("The CUDA device index, or -1 on the CPU: always -1. "
                               "PyTorch: `Tensor.get_device`.")


def _new(fill):
    def new(self, *size, dtype=None, device=None, requires_grad=False):
        from symgrad.creation import full
        return full(size[0] if len(size) == 1 and not isinstance(size[0], int) else size, fill,
                    dtype=dtype or self.dtype, device=device, requires_grad=requires_grad)
    return new


Variable.new_zeros, Variable.new_ones, Variable.new_empty = _new(0), _new(1), _new(0)
Variable.new_full = lambda self, size, fill_value, dtype=None, device=None, requires_grad=False: \
    _new(fill_value)(self, size, dtype=dtype, device=device, requires_grad=requires_grad)
for _name, _what in [("new_zeros", "zeros"), ("new_ones", "ones"),
                     ("new_empty", "uninitialised values (zeros here)"), ("new_full", "`fill_value`")]:
    getattr(Variable, _name).__doc__ = (f"A new Variable of shape `size` filled with {_what}, of this one's "
                                        f"dtype unless dtype= says otherwise. PyTorch: `Tensor.{_name}`.")
_TYPE_NAMES = {"float32": "Float", "float64": "Double", "int64": "Long", "int32": "Int", "bool": "Bool"}
Variable.type = lambda self, dtype=None: (f"torch.{_TYPE_NAMES[self.dtype.name]}Tensor"
                                         if dtype is None else F.cast(self, dtype))
Variable.type.__doc__ = ("The type's name (\"torch.FloatTensor\") without `dtype`, else this Variable cast "
                         "to `dtype`. PyTorch: `Tensor.type`.")
for _name, _dt in [("float", "float32"), ("double", "float64"), ("long", "int64"), ("int", "int32"),
                   ("bool", "bool")]:
    setattr(Variable, _name, (lambda dt: lambda self: F.cast(self, dt))(_dt))
    getattr(Variable, _name).__doc__ = (f"This Variable cast to {_dt} (`x.to({_dt})`). "
                                        f"PyTorch: `Tensor.{_name}`.")

for _name in ["add", "sub", "mul", "div", "pow", "neg", "exp", "log", "sqrt", "abs", "sign", "sin",
              "cos", "tanh", "sigmoid", "relu", "maximum", "minimum", "clamp", "clip", "square",
              "clamp_min", "clamp_max", "remainder", "fmod", "floor_divide", "floor", "ceil"]:
    setattr(Variable, f"{_name}_", _inplace(f"{_name}_", getattr(Variable, _name)))
Variable.subtract_, Variable.multiply_, Variable.divide_ = Variable.sub_, Variable.mul_, Variable.div_
Variable.is_floating_point = lambda self: dtypes.is_float(self.dtype)
Variable.is_floating_point.__doc__ = ("Whether this Variable's dtype is a floating point one. "
                                      "PyTorch: `Tensor.is_floating_point`.")
Variable.new_tensor = lambda self, data: Variable(_to_array(data, self.dtype))
Variable.new_tensor.__doc__ = ("A new Variable of `data`, in this Variable's dtype. "
                               "PyTorch: `Tensor.new_tensor`.")

# Selection by index (symgrad.selection), and the in-place forms.
for _name in ["index_select", "gather", "take_along_dim", "masked_fill", "masked_select", "nonzero",
              "index_add", "scatter", "scatter_add", "index_put"]:
    setattr(Variable, _name, getattr(selection, _name))
for _name in ["masked_fill", "index_add", "scatter", "scatter_add", "index_put"]:
    setattr(Variable, f"{_name}_", _inplace(f"{_name}_", getattr(selection, _name)))


# --- filling in place from PyTorch's random distributions (symgrad/generator.py) ---------------

def _random_fill(name, draw, doc):
    def method(self, *args, generator=None, **kwargs):
        from symgrad.generator import generator_of
        values = draw(generator_of(generator), self, *args, **kwargs)
        self.copy_(Variable(np.asarray(values).reshape(self.shape).astype(self.dtype)))
        return self
    method.__name__, method.__doc__ = name, doc + f" PyTorch: `Tensor.{name}`."
    return method


def _uniform(gen, x, from_=0.0, to=1.0, **kw):
    low, high = kw.pop("from", from_), to
    if not dtypes.is_float(x.dtype):
        raise TypeError(f"uniform_ fills a floating point Variable; {x._describe()} is {x.dtype}")
    return gen.uniform(x.numel(), x.dtype, low, high)


def _normal(gen, x, mean=0.0, std=1.0):
    if not dtypes.is_float(x.dtype):
        raise TypeError(f"normal_ fills a floating point Variable; {x._describe()} is {x.dtype}")
    if std < 0:
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
    return gen.normal(x.numel(), x.dtype, mean, std)


def _random(gen, x, from_=0, to=None, **kw):
    low = kw.pop("from", from_)
    if to is None:                 # random_(to) or random_(): [0, to) or [0, 2**mantissa]
        full = {"f": 2 ** np.finfo(x.dtype).nmant + 2}.get(x.dtype.kind, None)
        low, to = (0, low) if low else (0, full or int(np.iinfo(x.dtype).max) + 1)
    return gen.integers(low, to, x.numel())


def _bernoulli(gen, x, p=0.5):
    if not 0 <= p <= 1:
        raise RuntimeError(f"bernoulli_ expects p to be in [0, 1], but got p={p}")
    return gen.uniform(x.numel(), "float64") < p


Variable.bernoulli_ = _random_fill("bernoulli_", _bernoulli,
                                   "Fills the Variable in place with 1 (with probability p) or 0.")
Variable.uniform_ = _random_fill("uniform_", _uniform,
                                 "Fills the Variable in place from U(from, to), as PyTorch draws it.")
Variable.normal_ = _random_fill("normal_", _normal,
                                "Fills the Variable in place from N(mean, std ** 2), as PyTorch draws it.")
Variable.random_ = _random_fill("random_", _random,
                                "Fills it in place with integers in [from, to), as PyTorch draws them.")
