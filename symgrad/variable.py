"""The PyTorch-style front end. A `Variable` is also a node of the graph: `op`, `inputs`,
`attrs`, a static `shape` and `dtype`. Variables made from data carry a value, and ops on
them compute at once (so Python control flow on values works) while recording the graph;
symbolic Variables carry none and are given values when a compiled graph is called."""
from __future__ import annotations

import itertools
import math
import threading

import numpy as np

from symgrad import dtypes
from symgrad.ops.registry import OPS


class _Mode(threading.local):
    def __init__(self):
        self.grad_enabled = True
        self.lazy = 0      # > 0 while building gradient graphs: record, do not compute


mode = _Mode()


class no_grad:
    """Context manager (and decorator): results made inside do not require grad."""

    _enabled = False

    def __enter__(self):
        self._prev = mode.grad_enabled
        mode.grad_enabled = self._enabled

    def __exit__(self, *exc):
        mode.grad_enabled = self._prev

    def __call__(self, fn):
        def wrapper(*args, **kwargs):
            with type(self)():
                return fn(*args, **kwargs)
        return wrapper


class enable_grad(no_grad):
    _enabled = True


class lazy:
    """Record ops without computing them, with grad tracking on (used to build gradients)."""

    def __enter__(self):
        self._prev = mode.grad_enabled
        mode.lazy += 1
        mode.grad_enabled = True

    def __exit__(self, *exc):
        mode.lazy -= 1
        mode.grad_enabled = self._prev


def is_grad_enabled() -> bool:
    return mode.grad_enabled


_names = itertools.count()


def _to_array(data, dtype=None, lists_are_float=False) -> np.ndarray:
    """Data as a numpy array with PyTorch's default dtypes: Python floats become float32,
    Python ints int64 (or float32 too with `lists_are_float`, as `torch.Tensor([1, 2])`)."""
    if isinstance(data, Variable):
        arr = data.value()
        return arr if dtype is None else arr.astype(dtypes.as_dtype(dtype))
    if isinstance(data, np.ndarray):
        arr = data
        if dtype is None and arr.dtype not in dtypes.SUPPORTED:
            if arr.dtype.kind not in "fiu":
                raise TypeError(f"cannot make a Variable from a numpy array of dtype {arr.dtype}; "
                                f"use one of {', '.join(str(s) for s in dtypes.SUPPORTED)}")
            arr = arr.astype(dtypes.DEFAULT_FLOAT if arr.dtype.kind == "f" else dtypes.DEFAULT_INT)
    else:
        if isinstance(data, (list, tuple)) and any(isinstance(d, Variable) for d in _flat(data)):
            data = _nested_values(data)
        arr = np.asarray(data)
        if dtype is None:
            if arr.dtype.kind == "f" and not isinstance(data, np.generic):
                arr = arr.astype(dtypes.DEFAULT_FLOAT)
            elif arr.dtype.kind in "iu" or (arr.dtype.kind == "b" and lists_are_float):
                arr = arr.astype(dtypes.DEFAULT_FLOAT if lists_are_float else dtypes.DEFAULT_INT)
            elif arr.dtype.kind == "b":
                pass
            elif arr.dtype not in dtypes.SUPPORTED:
                raise TypeError(f"cannot make a Variable from {type(data).__name__} "
                                f"(numpy dtype {arr.dtype})")
    if dtype is not None:
        arr = arr.astype(dtypes.as_dtype(dtype), copy=False)
    return arr


def _positional_data(args):
    """`Variable(data)`, `Variable(data, requires_grad)`, or PyTorch's `Tensor(3, 4)` (a shape)."""
    if not args:
        return None
    if all(isinstance(a, (int, np.integer)) and not isinstance(a, (bool, np.bool_)) for a in args):
        return np.zeros(tuple(int(a) for a in args), dtypes.DEFAULT_FLOAT)
    if len(args) == 1 or (len(args) == 2 and isinstance(args[1], (bool, np.bool_))):
        return args[0]
    raise TypeError("Variable(data, requires_grad=False), Variable(*shape) or "
                    "Variable(shape=..., dtype=..., name=...) for a symbolic input")


def _flat(data):
    for d in data:
        if isinstance(d, (list, tuple)):
            yield from _flat(d)
        else:
            yield d


def _nested_values(data):
    if isinstance(data, (list, tuple)):
        return [_nested_values(d) for d in data]
    return data.value() if isinstance(data, Variable) else data


class Variable:
    """A value in a graph. `Variable(data, requires_grad=False)` wraps data as PyTorch does;
    `Variable(shape=..., dtype="float32", name=...)` is a symbolic input with no value."""

    __array_priority__ = 1000     # numpy scalars on the left defer to our reflected operators
    __hash__ = object.__hash__

    def __init__(self, *args, requires_grad=False, shape=None, dtype=None, name=None,
                 volatile=False):
        data = _positional_data(args)
        if len(args) == 2 and isinstance(args[1], (bool, np.bool_)):    # not Variable(3, 4), a shape
            requires_grad = args[1]
        self.op = None
        self.inputs = ()
        self.attrs = {}
        self._init_fields(name)
        if data is None:
            if shape is None:
                raise TypeError("Variable needs data, or shape= (and dtype=) for a symbolic input")
            self.shape = tuple(int(n) for n in ((shape,) if isinstance(shape, int) else shape))
            self.dtype = dtypes.as_dtype(dtype or "float32")
            self._value = None
        else:
            self._value = _to_array(data, dtype, lists_are_float=True)
            self.shape, self.dtype = self._value.shape, self._value.dtype
            if shape is not None and tuple(shape) != self.shape:
                raise ValueError(f"Variable: data of shape {self.shape} given with shape={tuple(shape)}")
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    def _init_fields(self, name):
        self.name = name
        self.grad = None
        self._retains_grad = False
        self._fn = None            # (grad_name, inputs) when made by a composite function
        self._literal = False      # a Python number written into the graph
        self._grad_fn = None
        self._accumulate = None
        self._concrete = None

    @classmethod
    def _node(cls, op, inputs, attrs, shape, dtype):
        v = cls.__new__(cls)
        v.op, v.inputs, v.attrs = op, inputs, attrs
        v.shape, v.dtype = shape, dtype
        v._value = None
        v._init_fields(None)
        v.requires_grad = False
        return v

    @classmethod
    def literal(cls, value, dtype) -> "Variable":
        v = cls(np.asarray(value, dtype=dtype))
        v._literal = True
        return v

    # --- values ----------------------------------------------------------------------

    @property
    def is_concrete(self) -> bool:
        """True when the value can be computed: no symbolic input lies upstream."""
        if self._value is not None:
            return True
        if self._concrete is None:
            self._concrete = self.op is not None and all(i.is_concrete for i in self.inputs)
        return self._concrete

    def value(self) -> np.ndarray:
        if self._value is None:
            if not self.is_concrete:
                raise RuntimeError(
                    f"{self._describe()} is symbolic: it has no value{self._symbolic_inputs()}. Compile "
                    f"the graph with sg.compile(inputs, outputs) and call it with values, or make the "
                    f"inputs from data.")
            from symgrad.interpret import evaluate
            self._value = evaluate([self])[0]
        return self._value

    def _symbolic_inputs(self) -> str:
        """For a node, which symbolic inputs upstream lack values (the ones to give)."""
        if self.op is None:
            return ""
        from symgrad.graph import toposort
        missing = [v for v in toposort([self], lambda v: v.is_concrete)
                   if v.op is None and v._value is None]
        return " (it depends on " + ", ".join(v._describe() for v in missing) + ")"

    def _describe(self) -> str:
        who = f"Variable '{self.name}'" if self.name else f"Variable ({self.op or 'input'})"
        return f"{who} of shape {self.shape} and dtype {self.dtype}"

    @property
    def data(self) -> "Variable":
        out = Variable(self.value())
        out.name = self.name
        return out

    @data.setter
    def data(self, new):
        arr = _to_array(new)
        if self.op is not None:
            raise RuntimeError("only leaf Variables can have their data replaced")
        self._value, self.shape, self.dtype = arr, arr.shape, arr.dtype

    def numpy(self) -> np.ndarray:
        return self.value()

    def item(self):
        if self.numel() != 1:
            raise ValueError(f"item(): only one-element Variables can become a Python number, "
                             f"this one has shape {self.shape}")
        return self.value().reshape(()).item()

    def tolist(self):
        return self.value().tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self.numel() != 1:
            raise RuntimeError(f"the truth value of a Variable of shape {self.shape} is ambiguous")
        return bool(self.item())

    def __index__(self):
        if self.dtype.kind not in "iu":
            raise TypeError("only integer Variables can be used as an index")
        return int(self.item())

    def __array__(self, dtype=None, copy=None):
        arr = self.value()
        return arr if dtype is None else arr.astype(dtype)

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d Variable")
        return self.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    # --- shape facts -------------------------------------------------------------------

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def dim(self) -> int:
        return len(self.shape)

    def size(self, dim=None):
        if dim is None:
            return Size(self.shape)
        return self.shape[dim]

    def numel(self) -> int:
        return math.prod(self.shape)

    nelement = numel

    @property
    def volatile(self) -> bool:
        return False

    @property
    def is_leaf(self) -> bool:
        return self.op is None or not self.requires_grad

    @property
    def device(self) -> str:
        return "cpu"

    # --- autograd state ------------------------------------------------------------------

    def requires_grad_(self, requires_grad: bool = True) -> "Variable":
        if self.op is not None and not requires_grad and self.requires_grad:
            raise RuntimeError("requires_grad can be changed only on leaf Variables; use detach()")
        if requires_grad and not dtypes.is_float(self.dtype):
            raise RuntimeError(f"only floating point Variables can require gradients, "
                               f"not {self._describe()}")
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self) -> None:
        if not self.requires_grad:
            raise RuntimeError("retain_grad() on a Variable that does not require grad")
        self._retains_grad = True

    @property
    def retains_grad(self) -> bool:
        return self._retains_grad

    def detach(self) -> "Variable":
        if self._value is not None or self.is_concrete:
            out = Variable(self.value())
        else:
            from symgrad import functional as F
            with no_grad():
                out = F.apply("stop_gradient", self)
        out.name = self.name
        return out

    def detach_(self) -> "Variable":
        self.op, self.inputs, self.attrs = None, (), {}
        self.requires_grad, self._grad_fn = False, None
        return self

    @property
    def grad_fn(self):
        if self.op is None or not self.requires_grad:
            return None
        if self._grad_fn is None:
            name = self._fn[0] if self._fn else OPS[self.op].grad_name
            self._grad_fn = backward_class(name)(self)
        return self._grad_fn

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        from symgrad.engine import run_backward
        if self.requires_grad and not self.is_concrete:
            raise RuntimeError(
                f"backward() needs values, but {self._describe()} is symbolic{self._symbolic_inputs()}. "
                f"Compile the graph with sg.compile(inputs, outputs) and call fn.backward with values "
                f"(or build the gradient graph with sg.grad), or make the inputs from data.")
        run_backward(self, gradient, inputs)

    # --- in place ----------------------------------------------------------------------------

    def _writable(self) -> np.ndarray:
        arr = self.value()
        if not arr.flags.writeable:
            arr = self._value = arr.copy()
        return arr

    def zero_(self) -> "Variable":
        self._writable()[...] = 0
        return self

    def fill_(self, value) -> "Variable":
        self._writable()[...] = value
        return self

    def copy_(self, src) -> "Variable":
        self._writable()[...] = _to_array(src)
        return self

    def __setitem__(self, key, value):
        if self.requires_grad:
            raise RuntimeError("in-place assignment into a Variable that requires grad is not supported")
        self._writable()[key] = _to_array(value) if isinstance(value, Variable) else value

    # --- printing --------------------------------------------------------------------------

    def __repr__(self):
        from symgrad.display import variable_repr
        return variable_repr(self)

    __str__ = __repr__

    def __format__(self, spec):
        if self.numel() == 1 and spec:
            return format(self.item(), spec)
        return repr(self)


class Size(tuple):
    """`x.size()`: a tuple that prints as PyTorch's torch.Size does."""

    def __repr__(self):
        return f"torch.Size([{', '.join(map(str, self))}])"

    __str__ = __repr__

    def numel(self) -> int:
        return math.prod(self)


# --- grad_fn objects ------------------------------------------------------------------------

class Function:
    """A node of the backward graph as PyTorch shows it: `next_functions` names where the
    gradient flows on to."""

    def __init__(self, variable):
        self._variable = variable

    @property
    def next_functions(self):
        v = self._variable
        inputs = v._fn[1] if v._fn else v.inputs
        return tuple((function_of(i) if isinstance(i, Variable) else None, 0) for i in inputs)

    def name(self) -> str:
        return type(self).__name__

    def __repr__(self):
        return f"<{type(self).__name__} object at {hex(id(self))}>"

    def __call__(self, *grads):
        raise RuntimeError("grad_fn objects describe the graph; call backward() or sg.grad instead")


class AccumulateGrad(Function):
    """Where gradients end: a leaf that requires grad."""

    @property
    def variable(self):
        return self._variable

    @property
    def next_functions(self):
        return ()


_backward_classes: dict[str, type] = {}


def backward_class(name: str) -> type:
    """`name` is PyTorch's op name; a trailing digit picks its overload, as PyTorch numbers
    them (`Sum` is `SumBackward0`, the full sum; `Sum1` is `SumBackward1`, a sum over dims)."""
    cls = _backward_classes.get(name)
    if cls is None:
        base, overload = (name[:-1], name[-1]) if name[-1:].isdigit() else (name, "0")
        cls = _backward_classes[name] = type(f"{base}Backward{overload}", (Function,), {})
    return cls


def function_of(v: Variable):
    if not v.requires_grad:
        return None
    if v.op is None:
        if v._accumulate is None:
            v._accumulate = AccumulateGrad(v)
        return v._accumulate
    return v.grad_fn


# --- building nodes -----------------------------------------------------------------------

def apply(op_name: str, *inputs: Variable, **attrs) -> Variable:
    """Record one primitive; compute it now when its inputs have values."""
    op = OPS[op_name]
    shape, dtype = op.infer(*inputs, **attrs)
    out = Variable._node(op_name, inputs, attrs, tuple(shape), dtype)
    out.requires_grad = (mode.grad_enabled and op.vjp is not None
                         and any(i.requires_grad for i in inputs))
    # Known now, from the inputs' own flags: asking later would recurse through the graph.
    out._concrete = all(i.is_concrete for i in inputs)
    if out._concrete and not mode.lazy:
        with np.errstate(all="ignore"):     # inf and nan are values, as in PyTorch: no warnings
            value = op.impl(*(i.value() for i in inputs), **attrs)
        out._value = np.asarray(value, dtype=dtype)
    return out
