"""Questions about a Variable asked of the `sg.` namespace, as PyTorch's `torch.is_tensor(x)`,
`torch.numel(x)` and `torch.is_floating_point(x)`."""
from __future__ import annotations

from symgrad import dtypes
from symgrad.variable import Variable


def is_tensor(obj) -> bool:
    """Whether `obj` is a Variable (symgrad's Tensor)."""
    return isinstance(obj, Variable)


def _variable(name: str, input) -> Variable:
    if not isinstance(input, Variable):
        raise TypeError(f"{name}(): argument 'input' must be a Variable, not {type(input).__name__}")
    return input


def numel(input) -> int:
    """The number of elements of `input`."""
    return _variable("numel", input).numel()


def is_floating_point(input) -> bool:
    """Whether `input`'s dtype is a floating point one."""
    return dtypes.is_float(_variable("is_floating_point", input).dtype)
