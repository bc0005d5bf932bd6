"""The PyTorch-style front end. A `Variable` is a graph node (symgrad.node.Node: `op`, `inputs`,
`attrs`, a static `shape` and `dtype`) with PyTorch's autograd API on top. Variables made from
data carry a value, and ops on them compute at once (so Python control flow on values works)
while recording the graph; symbolic Variables carry none and are given values when a compiled
graph is called."""
from __future__ import annotations

import math
import sys
import threading
import weakref

import numpy as np

from symgrad import dtypes
from symgrad.dims import Dim, has_dims, symbolic_shape
from symgrad.shapes import MAX_ELEMENTS, check_elements
from symgrad.node import Node, serial  # noqa: F401  (serial: re-exported for autodiff)
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


# --- hooks ---------------------------------------------------------------------------------
# This module is the graph node; the layers above it (the engine that runs backward(), the
# functional API that in-place operations are recorded with, the printer) import it, so it
# reaches them through slots they fill instead of importing back up the stack.
# symgrad/__init__ imports every layer, so the slots are filled before a Variable is used.

_hooks: dict = {}


def connect(**slots) -> None:
    """Fill hook slots: `run_backward` (symgrad.engine's, for Variable.backward()),
    `functional` (the symgrad.functional module, whose composites fill_ and copy_ record),
    `indexing` (symgrad.indexing, whose index_put x[k] = v records) and `variable_repr`
    (symgrad.display's, for printing)."""
    _hooks.update(slots)


def _hook(name: str):
    try:
        return _hooks[name]
    except KeyError:
        raise RuntimeError(f"symgrad.variable: nothing is connected to the {name!r} hook; import "
                           f"symgrad (its __init__ connects the layers)") from None


def is_grad_enabled() -> bool:
    """Whether results made now record the graph for gradients (False under no_grad). PyTorch:
    `torch.is_grad_enabled`."""
    return mode.grad_enabled


def _to_array(data, dtype=None, lists_are_float=False) -> np.ndarray:
    """Data as a numpy array with PyTorch's default dtypes: Python floats become float32,
    Python ints int64 (or float32 too with `lists_are_float`, as `torch.Tensor([1, 2])`)."""
    if isinstance(data, Variable):
        arr = data.value()
        return arr if dtype is None else arr.astype(dtypes.as_dtype(dtype))
    if isinstance(data, np.ndarray):
        arr = _native(data)
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


_PLAIN = frozenset(d.dtype for d in dtypes.SUPPORTED)     # native: __init__ keeps such an array as it is


def _native(arr: np.ndarray) -> np.ndarray:
    """`arr` in this machine's byte order, and float16 widened to float32 with a warning
    (symgrad computes in float32 and float64 only)."""
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if arr.dtype == np.float16:
        import warnings
        warnings.warn("symgrad has no float16: a float16 array becomes float32", stacklevel=4)
        arr = arr.astype(np.float32)
    return arr


def _positional_data(args):
    """`Variable(data)`, `Variable(data, requires_grad)`, or PyTorch's `Tensor(3, 4)` (a shape)."""
    if not args:
        return None
    if all(isinstance(a, (int, np.integer)) and not isinstance(a, (bool, np.bool_)) for a in args):
        from symgrad.shapes import as_shape
        return np.zeros(as_shape("Variable", args), dtypes.DEFAULT_FLOAT)
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


class Variable(Node):
    """A value in a graph, with PyTorch's API: a graph Node (symgrad.node: op, inputs, shape,
    dtype, value) that also knows about gradients (requires_grad, grad, grad_fn, backward),
    in-place operations and printing. `Variable(data, requires_grad=False)` wraps data as
    PyTorch does; `Variable(shape=..., dtype="float32", name=...)` is a symbolic input."""

    __array_priority__ = 1000     # numpy scalars on the left defer to our reflected operators
    __hash__ = object.__hash__

    def __init__(self, *args, requires_grad=False, shape=None, dtype=None, name=None,
                 volatile=False):
        data = _positional_data(args)
        if len(args) == 2 and isinstance(args[1], (bool, np.bool_)):    # not Variable(3, 4), a shape
            requires_grad = args[1]
        self._init_graph(None, (), {}, None, None)
        self._init_fields(name)
        if data is None:
            if shape is None:
                raise TypeError("Variable needs data, or shape= (and dtype=) for a symbolic input")
            from symgrad.shapes import as_shape
            self.shape = as_shape(f"Variable '{name}'" if name else "Variable", shape, names=True)
            self.dtype = dtypes.as_dtype(dtype or "float32")
            self._value = None
        else:
            self._value = _to_array(data, dtype, lists_are_float=True)
            self.shape, self.dtype = self._value.shape, self._value.dtype
            if shape is not None and tuple(shape) != self.shape:
                raise ValueError(f"Variable: data of shape {self.shape} given with shape={tuple(shape)}")
        if requires_grad:
            self.requires_grad_(True)

    def _init_fields(self, name):
        """The front end's fields (the graph's are Node._init_graph's)."""
        self.name = name
        self.grad = None
        self._retains_grad = False
        self._fn = None            # (grad_name, inputs) when made by a composite function
        self._grad_fn = None
        self._accumulate = None
        self._requires_grad = False

    @classmethod
    def literal(cls, value, dtype) -> "Variable":
        """A constant Variable of `value` in `dtype` that graphs print as its number (a literal
        such as the 2 of `x * 2`), not as a named input. symgrad's own; PyTorch has none."""
        if isinstance(value, Dim):       # a symbolic size: its value is known at each call
            return apply("size_of", size=value, dtype=dtypes.as_dtype(dtype))
        arr = np.asarray(value, dtype=dtype)
        if cls is Variable and arr.dtype in _PLAIN:     # what __init__ would do with it, directly
            v = cls.__new__(cls)
            v._init_graph(None, (), {}, arr.shape, arr.dtype, arr)
            v._init_fields(None)
        else:
            v = cls(arr)
        v._literal = True
        return v

    @property
    def data(self) -> "Variable":
        """The value as a new leaf Variable outside the graph; assigning to it replaces a leaf's
        value. PyTorch: `Tensor.data`."""
        out = Variable(self.value())
        out.name = self.name
        return out

    @data.setter
    def data(self, new):
        arr = _to_array(new)
        if self.op is not None:
            raise RuntimeError("only leaf Variables can have their data replaced")
        self._value, self.shape, self.dtype = arr, arr.shape, arr.dtype

    def numpy(self, *, force: bool = False) -> np.ndarray:
        """The value as a numpy array (the Variable's own: in-place changes show in it). PyTorch:
        `Tensor.numpy`. As in PyTorch, a RuntimeError where the Variable requires grad (the array
        would not carry its gradient): `x.detach().numpy()` (or `force=True`) says it is meant."""
        if self.requires_grad and not force:
            raise RuntimeError(f"Can't call numpy() on Tensor that requires grad. Use "
                               f"tensor.detach().numpy() instead. (It was called on {self._describe()}.)")
        return self.value()

    def item(self):
        """The value of a one-element Variable as a Python number. PyTorch: `Tensor.item`."""
        if self.numel() != 1:
            raise ValueError(f"item(): only one-element Variables can become a Python number, "
                             f"this one has shape {self.shape}")
        return self.value().reshape(()).item()

    def tolist(self):
        """The value as (nested) Python lists of Python numbers. PyTorch: `Tensor.tolist`."""
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
        if isinstance(self.shape[0], Dim):   # Python's len() would make it the trace-time hint
            raise TypeError(f"len() of {self._describe()}: its first dim is the named dimension "
                            f"{self.shape[0]}, whose size is known only at each call; use x.shape[0]")
        return self.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    # --- shape facts -------------------------------------------------------------------

    @property
    def shape(self):
        """The static shape, a `Size` (a tuple that prints as torch.Size)."""
        return self._shape

    @shape.setter
    def shape(self, shape):
        self._shape = shape if shape is None or type(shape) is Size else Size(shape)

    def size(self, dim=None):
        """The shape as a `Size`, or with `dim` the length of that dimension. PyTorch: `Tensor.size`."""
        if dim is None:
            return Size(self.shape)
        return self.shape[dim]

    @property
    def volatile(self) -> bool:
        """Always False: PyTorch's old flag for graph-free Variables, now no_grad. PyTorch:
        `Tensor.volatile`."""
        return False

    @property
    def is_leaf(self) -> bool:
        """Whether this Variable is a leaf of the graph: made from data, or not requiring grad.
        PyTorch: `Tensor.is_leaf`."""
        return self.op is None or not self.requires_grad

    @property
    def device(self):
        """`sg.device('cpu')`: eager values live in host memory (a GPU runs compiled graphs)."""
        from symgrad.devices import CPU
        return CPU

    # --- autograd state ------------------------------------------------------------------

    @property
    def requires_grad(self) -> bool:
        """Whether gradients are computed for this Variable (settable on leaves). PyTorch:
        `Tensor.requires_grad`."""
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, requires_grad):
        self.requires_grad_(requires_grad)

    def requires_grad_(self, requires_grad: bool = True) -> "Variable":
        """Sets whether gradients are computed for this Variable, in place, and returns it.
        PyTorch: `Tensor.requires_grad_`."""
        requires_grad = bool(requires_grad)
        if self.op is not None and not requires_grad and self._requires_grad:
            raise RuntimeError(f"requires_grad can be changed only on leaf Variables, and "
                               f"{self._describe()} was computed from others; use detach()")
        if requires_grad and not dtypes.is_float(self.dtype):
            raise RuntimeError(f"only floating point Variables can require gradients, "
                               f"not {self._describe()}")
        if requires_grad and not self._requires_grad and self.op is not None and self.is_concrete:
            # A result that needs no gradient is a leaf in PyTorch (`x.double()`, `a * 2` of
            # plain data): asked to require grad, it becomes one, holding its value.
            self._value = self.value()
            self.op, self.inputs, self.attrs, self._fn = None, (), {}, None
            self._grad_fn = None
        self._requires_grad = requires_grad
        return self

    def retain_grad(self) -> None:
        """Keeps this non-leaf Variable's gradient in `.grad` after backward. PyTorch:
        `Tensor.retain_grad`."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad() on a Variable that does not require grad")
        self._retains_grad = True

    @property
    def retains_grad(self) -> bool:
        """Whether retain_grad() was called, so backward fills this non-leaf's `.grad`. PyTorch:
        `Tensor.retains_grad`."""
        return self._retains_grad

    def detach(self) -> "Variable":
        """A new Variable with the same value, cut off from the graph (it requires no grad).
        PyTorch: `Tensor.detach`."""
        if self._value is not None or self.is_concrete:
            out = Variable(self.value())
            out._vbox = self._vbox           # one storage: in place on either shows in both
        else:
            with no_grad():
                out = apply("stop_gradient", self)
        out.name = self.name
        return out

    def detach_(self) -> "Variable":
        """Cuts this Variable off from the graph in place, making it a leaf, and returns it.
        PyTorch: `Tensor.detach_`."""
        if self.is_concrete:
            self._value = self.value()
        self.op, self.inputs, self.attrs, self._fn = None, (), {}, None
        self._requires_grad, self._grad_fn = False, None
        return self

    @property
    def grad_fn(self):
        """The backward node that made this Variable (None for a leaf or without grad). PyTorch:
        `Tensor.grad_fn`."""
        if self.op is None or not self.requires_grad:
            return None
        if self._grad_fn is None:
            name = self._fn[0] if self._fn else OPS[self.op].grad_name
            self._grad_fn = backward_class(name)(self)
        return self._grad_fn

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Computes the gradients of this Variable with respect to the graph's leaves into their
        `.grad`. PyTorch: `Tensor.backward`.

        `gradient` is d(out)/d(self) for a non-scalar; `create_graph` records the backward pass
        for higher derivatives; `inputs` limits which leaves accumulate."""
        if self.requires_grad and not self.is_concrete:
            raise RuntimeError(
                f"backward() needs values, but {self._describe()} is symbolic{self._symbolic_inputs()}. "
                f"Compile the graph with sg.compile(inputs, outputs) and call fn.backward with values "
                f"(or build the gradient graph with sg.grad), or make the inputs from data.")
        _hook("run_backward")(self, gradient, inputs, create_graph=bool(create_graph))

    # --- in place ----------------------------------------------------------------------------

    def _writable(self) -> np.ndarray:
        arr = self.value()
        if not arr.flags.writeable:
            arr = self._value = arr.copy()
        return arr

    def _inplace(self, name: str, make, *args) -> "Variable":
        """`self.<name>(*args)` in place: `make(self, *args)` computes the new value with the
        functional API, then `self` stands for it, as in PyTorch.

        A leaf whose result needs no gradient (plain data, or under no_grad) is written in
        place, keeping its storage (so `w.data -= lr * w.grad` updates `w`). Anything else
        becomes the new node of the graph; the nodes that used the old value keep it
        (`_become`), and those that saved it for their gradient make backward() raise."""
        if self.op is None and self._requires_grad and mode.grad_enabled:
            raise RuntimeError(
                f"a leaf Variable that requires grad ({self._describe()}) is used in an in-place "
                f"operation ({name}); do it under `with sg.no_grad():` or on a copy (x.clone())")
        start = serial()
        new = make(self, *args)
        if not isinstance(new, Variable):
            new = Variable(new)
        if new.shape != self.shape:
            raise RuntimeError(f"{name}: the result of shape {new.shape} does not fit {self._describe()} "
                               f"(an in-place operation keeps the shape; output with shape {self.shape} "
                               f"doesn't match the broadcast shape {new.shape})")
        if new.dtype != self.dtype:
            if dtypes.category(new.dtype) > dtypes.category(self.dtype):
                raise RuntimeError(f"{name}: result type {new.dtype} can't be cast to the desired output "
                                   f"type {self.dtype} of {self._describe()}")
            new = apply("cast", new, dtype=self.dtype)
        if self.op is None and self._value is not None and not new._requires_grad:
            with np.errstate(all="ignore"):
                self._writable()[...] = new.value()
            self._vbox[0] += 1
            return self
        if self.op is not None and not self._requires_grad and not new._requires_grad and self.is_concrete:
            self._become_leaf(new)
            return self
        # An operand that is `self` itself (y.mul_(y)) was read at the old version, as PyTorch
        # saves it: its gradient then needs a value that is gone.
        aliased = any(a is self for a in args)
        self._become(new, start, new if aliased else None)
        return self

    def _become_leaf(self, new: "Variable") -> None:
        """An in-place result on a value without gradient history (`b = a.reshape(2, 3)`,
        `a[0]`): as in PyTorch, such a value is a leaf whose storage the operation writes, so
        views see the change (`a[0][1] = 5` changes `a`; `n = b.numpy()` sees `b[1, 1] = 7`).
        The nodes that used it keep the node it was."""
        storage = self._writable()
        old = self._split_off_old()
        old._value = None if self._value is storage else self._value     # recomputed if needed
        self._hand_users_to(old, self._vbox[0] + 1, serial())
        with np.errstate(all="ignore"):
            storage[...] = new.value()
        self.op, self.inputs, self.attrs, self._fn, self._seen = None, (), {}, None, ()
        self._users, self._prune_at, self._concrete = [], 8, None
        self._grad_fn = self._accumulate = None
        self._vbox = [self._vbox[0] + 1]

    def _split_off_old(self) -> "Variable":
        """A fresh object holding this one's node (with no gradient bookkeeping), listed by the
        node's inputs among their users in place of this object: so that a later in-place
        change of one of them hands it over too (else it would read the new value)."""
        old = Variable.__new__(Variable)
        old.__dict__.update(self.__dict__)
        old._grad_fn = old._accumulate = None
        old_ref = weakref.ref(old)
        for i in old.inputs:
            i._users = [old_ref if r() is self else r for r in i._users]
        return old

    def _become(self, new: "Variable", start: int, only=None) -> None:
        """Make this object stand for the node `new`. Its old node moves to a fresh object,
        and every node that used this one now uses that (Node._hand_users_to): they keep the
        value they saw."""
        old = self._split_off_old()
        version = self._vbox[0] + 1
        for user in self._hand_users_to(old, version, start, only):
            if user._fn:
                user._fn = (user._fn[0], tuple(old if i is self else i for i in user._fn[1]))
        if new is self:
            new = old
        name, box = self.name, self._vbox
        if new.op is None or new is old or new._users:    # not a fresh node: record one
            new = apply("reshape", new, shape=new.shape)
            new._seen = tuple(version if i is old else s for i, s in zip(new.inputs, new._seen))
        self.__dict__.update(new.__dict__)
        self._users, self._prune_at = [], 8
        self._grad_fn = self._accumulate = None
        self._retains_grad = False
        self.grad = None
        self.name = name
        box[0] += 1
        self._vbox, self._born = box, box[0]
        ref = weakref.ref(self)
        for i in self.inputs:
            i._add_user(ref)

    def zero_(self) -> "Variable":
        """Fills this Variable with zeros in place and returns it. PyTorch: `Tensor.zero_`."""
        return self.fill_(0)

    def fill_(self, value) -> "Variable":
        """Fills this Variable with `value` in place and returns it. PyTorch: `Tensor.fill_`."""
        return self._inplace("fill_", _filled, value)

    def copy_(self, src) -> "Variable":
        """Copies the values of `src` (broadcast, cast to this dtype) into this Variable in place.
        PyTorch: `Tensor.copy_`."""
        return self._inplace("copy_", _copied, src)

    def __setitem__(self, key, value):
        self._inplace("__setitem__", _hook("indexing").index_put, key, value)

    # --- printing --------------------------------------------------------------------------

    def __repr__(self):
        show = _hooks.get("variable_repr")        # symgrad.display's, which prints graphs too
        return show(self) if show else object.__repr__(self)

    __str__ = __repr__

    def __format__(self, spec):
        # As PyTorch: a 0-d Variable formats as its number (f"{x}" is "3.5"); others print
        if self.is_concrete and (self.ndim == 0 or (self.numel() == 1 and spec)):
            return format(self.item(), spec)
        return repr(self)


# PyTorch's Variable is its Tensor class: `type(x)` prints <class 'symgrad.Tensor'> as PyTorch's
# prints <class 'torch.Tensor'> (symgrad.Tensor and symgrad.Variable are this class).
Variable.__module__, Variable.__name__, Variable.__qualname__ = "symgrad", "Tensor", "Tensor"


def _filled(x: Variable, value) -> Variable:
    """`x.fill_(value)` as a node: the value everywhere, no gradient to the old one."""
    F = _hook("functional")
    out = F.where(Variable.literal(True, dtypes.bool_), F.cast(F.as_variable(value), x.dtype), x)
    return F._mark(out, "Fill", [x])


def _copied(x: Variable, src) -> Variable:
    """`x.copy_(src)` as a node: `src` broadcast and cast to `x`'s shape and dtype."""
    F = _hook("functional")
    src = F.as_variable(src)
    try:
        src = F.broadcast_to(F.cast(src, x.dtype), x.shape)
    except ValueError:
        raise RuntimeError(f"copy_: the source of shape {src.shape} cannot be broadcast to "
                           f"{x._describe()}") from None
    return F._mark(F.where(Variable.literal(True, dtypes.bool_), src, x), "Copy", [x, src])


class Size(tuple):
    """`x.shape`, `x.size()`: a tuple that prints as PyTorch's torch.Size does.

    symgrad's own messages (f-strings in symgrad's modules) show it as the plain tuple
    `(3, 4)` that they have always named; a user's f-string shows `torch.Size([3, 4])`."""

    def __repr__(self):
        return f"torch.Size([{', '.join(map(str, self))}])"

    __str__ = __repr__

    def __format__(self, spec):
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if caller == "symgrad" or caller.startswith("symgrad."):
            return format(tuple(self), spec)
        return format(repr(self), spec)

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
_NOT_BACKWARD = {"CopySlices"}      # PyTorch's grad_fn names without "Backward"


def backward_class(name: str) -> type:
    """`name` is PyTorch's op name; a trailing digit picks its overload, as PyTorch numbers
    them (`Sum` is `SumBackward0`, the full sum; `Sum1` is `SumBackward1`, a sum over dims)."""
    cls = _backward_classes.get(name)
    if cls is None:
        base, overload = (name[:-1], name[-1]) if name[-1:].isdigit() else (name, "0")
        full = name if name in _NOT_BACKWARD else f"{base}Backward{overload}"
        cls = _backward_classes[name] = type(full, (Function,), {})
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
    if math.prod(shape) > MAX_ELEMENTS:
        check_elements(op_name, shape)
    out = Variable._node(op_name, inputs, attrs, tuple(shape), dtype)
    ref = weakref.ref(out)
    grads, concrete, seen = False, True, []
    for i in inputs:            # (one pass over the inputs: most graphs are built node by node)
        grads = grads or i._requires_grad
        seen.append(i._vbox[0])
        i._add_user(ref)
        # Known now, from the inputs' own flags: asking later would recurse through the graph.
        concrete = concrete and i.is_concrete
    out._requires_grad = mode.grad_enabled and op.vjp is not None and grads
    out._seen = tuple(seen)
    # A size given only at each call (symgrad.dims) makes a value that is not known now.
    out._concrete = concrete and not (symbolic_shape(shape) or (attrs and has_dims(attrs)))
    if out._concrete and not mode.lazy:
        with np.errstate(all="ignore"):     # inf and nan are values, as in PyTorch: no warnings
            value = op.impl(*(i.value() for i in inputs), **attrs)
        out._value = np.asarray(value, dtype=dtype)
    return out
