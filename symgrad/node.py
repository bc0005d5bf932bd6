"""The graph node beneath the front end: an op, its inputs, its attributes, a static shape
and dtype, and (when no symbolic input lies upstream) a value computed by the interpreter.
`symgrad.variable.Variable` is a Node with PyTorch's API on top; the graph layers (graph.py,
interpret.py, autodiff, codegen) read only what is defined here.

Each node also records what in-place operations need: the nodes that use it (weakly, so that
they can be pointed elsewhere when this one's object takes a new value), a version counter
shared by the nodes that stand for one storage, and the versions its inputs had when it was
made."""
from __future__ import annotations

import itertools
import math

import numpy as np

from symgrad import dtypes

_serials = itertools.count()


def serial() -> int:
    """A number larger than that of every node made so far (and smaller than the next's)."""
    return next(_serials)


class SymbolicValueError(RuntimeError):
    """The value of a symbolic node was asked for (`bool()`, `float()`, `.item()`, `.numpy()`
    ...). `node` is that node; sg.jit and sg.func catch it to name the traced argument."""

    def __init__(self, message, node):
        super().__init__(message)
        self.node = node


class Node:
    __hash__ = object.__hash__

    @property
    def dtype(self):
        """The dtype of the node's values: a symgrad dtype (`symgrad.float32`), which numpy
        takes wherever it takes a dtype; whatever is assigned (a numpy dtype, a name) becomes one."""
        return self._dtype

    @dtype.setter
    def dtype(self, d):
        self._dtype = dtypes.of(d)

    def _init_graph(self, op, inputs, attrs, shape, dtype, value=None):
        self.op, self.inputs, self.attrs = op, inputs, attrs
        self.shape, self.dtype = shape, dtype
        self._value = value
        self._literal = False      # a Python number written into the graph
        self._concrete = None
        self._users = []
        self._prune_at = 8
        self._vbox = [0]
        self._born = 0
        self._seen = ()
        self._serial = next(_serials)     # order of creation

    @classmethod
    def _node(cls, op, inputs, attrs, shape, dtype):
        """A new node of `op` (of this class, with its own fields initialised too)."""
        v = cls.__new__(cls)
        v._init_graph(op, inputs, attrs, shape, dtype)
        v._init_fields(None)
        return v

    def _init_fields(self, name):
        """Fields of the classes above (the front end's Variable); a plain node has a name."""
        self.name = name

    @property
    def is_concrete(self) -> bool:
        """True when the value can be computed: no symbolic input lies upstream."""
        if self._value is not None:
            return True
        if self._concrete is None:
            self._concrete = self.op is not None and all(i.is_concrete for i in self.inputs)
        return self._concrete

    def value(self) -> np.ndarray:
        """This Variable's value as a numpy array, computed by the interpreter when first read.

        A SymbolicValueError when an input upstream has no value (compile the graph instead)."""
        if self._value is None:
            if not self.is_concrete:
                raise SymbolicValueError(
                    f"{self._describe()} is symbolic: it has no value{self._symbolic_inputs()}. Compile "
                    f"the graph with sg.compile(inputs, outputs) and call it with values, or make the "
                    f"inputs from data.", self)
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
    def ndim(self) -> int:
        """The number of dimensions, as PyTorch's `Tensor.ndim` (0 for a scalar)."""
        return len(self.shape)

    def dim(self) -> int:
        """Returns the number of dimensions (0 for a scalar), as PyTorch's `Tensor.dim()`."""
        return len(self.shape)

    def numel(self) -> int:
        """Returns the number of elements (the product of the shape), as PyTorch's `Tensor.numel()`."""
        return math.prod(self.shape)

    nelement = numel

    @property
    def _version(self) -> int:
        """How many in-place operations changed this Variable's storage (PyTorch's counter)."""
        return self._vbox[0]

    def _add_user(self, ref) -> None:
        users = self._users
        users.append(ref)
        if len(users) >= self._prune_at:            # keeps the list within twice the live users
            users[:] = [r for r in users if r() is not None]
            self._prune_at = 2 * len(users) + 8

    def _hand_users_to(self, old: "Node", version: int, start: int, only=None) -> list:
        """Point every node that uses this one at `old` instead (this object is about to stand
        for a new value; they keep the one they saw), and hand it this node's users. The
        nodes made since `start` compute the new value from the old one, so they read it at
        the version they were made for (only `only`'s first operand, when given). Returns the
        users."""
        users = []
        for ref in self._users:
            user = ref()
            if user is None:
                continue
            if only is not None and user is only:
                user._seen = (version,) + user._seen[1:] if user.inputs[0] is self else user._seen
            elif only is None and user._serial > start:
                user._seen = tuple(version if i is self else s for i, s in zip(user.inputs, user._seen))
            user.inputs = tuple(old if i is self else i for i in user.inputs)
            users.append(user)
        return users
