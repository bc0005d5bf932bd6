"""`nn.Parameter`: a leaf Variable that requires grad and that a Module registers when it is
assigned as an attribute."""
from __future__ import annotations

import numpy as np

from symgrad import dtypes
from symgrad.variable import Variable


class Parameter(Variable):
    """A Variable that is a model's parameter: a leaf, `requires_grad=True` by default.
    `Parameter(t)` shares `t`'s storage, as PyTorch's does."""

    def __init__(self, data=None, requires_grad: bool = True):
        if data is None:
            data = np.zeros((0,), dtypes.as_dtype("float32"))
        if isinstance(data, Variable):
            if not data.is_concrete:
                raise TypeError(f"Parameter needs data, but {data._describe()} is symbolic")
            Variable.__init__(self, data.value())
            self._vbox = data._vbox            # one storage, one version counter
        else:
            Variable.__init__(self, data)
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self):
        return "Parameter containing:\n" + Variable.__repr__(self)

    __str__ = __repr__

    def __reduce_ex__(self, protocol):
        # A graph node holds weak references to its users; a Parameter is a leaf, so its
        # value and flag are all there is to save (PyTorch's pickles leave .grad out too).
        return _rebuild_parameter, (self.value(), self.requires_grad)

    def __deepcopy__(self, memo):
        out = Parameter(self.value().copy(), self.requires_grad)
        if self.grad is not None:
            out.grad = Variable(self.grad.value().copy())
        memo[id(self)] = out
        return out


def _rebuild_parameter(value, requires_grad) -> Parameter:
    return Parameter(value, requires_grad)


class StoredVariable:
    """A Variable as a pickled Module keeps it (a buffer): its value, and whether it
    required grad."""

    def __init__(self, v: Variable):
        self.value, self.requires_grad = v.value(), v.requires_grad

    def restore(self) -> Variable:
        return Variable(self.value, requires_grad=self.requires_grad)


def typename(obj) -> str:
    """What PyTorch's messages call an object: `torch.FloatTensor` for a Variable of float32."""
    if isinstance(obj, Variable):
        names = {"float32": "Float", "float64": "Double", "int64": "Long", "int32": "Int", "bool": "Bool"}
        return f"symgrad.{names.get(obj.dtype.name, obj.dtype.name)}Tensor"
    module = getattr(obj, "__module__", "") or ""
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return name if module in ("", "builtins") else f"{module}.{name}"
