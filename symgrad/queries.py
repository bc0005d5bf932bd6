"""Questions about a Variable asked of the `sg.` namespace, as PyTorch's `torch.is_tensor(x)`,
`torch.numel(x)` and `torch.is_floating_point(x)`."""
from __future__ import annotations

from typing import Any

from symgrad import dtypes
from symgrad.hints import TensorLike
from symgrad.variable import Variable


def is_tensor(obj: Any) -> bool:
    """Whether `obj` is a Variable (symgrad's Tensor). PyTorch: `torch.is_tensor`."""
    return isinstance(obj, Variable)


def _variable(name: str, input) -> Variable:
    if not isinstance(input, Variable):
        raise TypeError(f"{name}(): argument 'input' must be a Variable, not {type(input).__name__}")
    return input


def numel(input: TensorLike) -> int:
    """The number of elements of the Variable `input`. PyTorch: `torch.numel`."""
    return _variable("numel", input).numel()


def is_floating_point(input: TensorLike) -> bool:
    """Whether the dtype of the Variable `input` is a floating point one. PyTorch:
    `torch.is_floating_point`."""
    return dtypes.is_float(_variable("is_floating_point", input).dtype)
