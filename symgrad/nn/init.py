"""`nn.init`: fill a Variable in place from a distribution (PyTorch's numbers, from the
generator seeded by sg.manual_seed), with PyTorch's formulas for the bounds and standard deviations."""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from symgrad.autograd.grad_mode import no_grad
from symgrad.generator import generator_of
from symgrad.variable import Variable


def _fill(tensor: Variable, values) -> Variable:
    """Write `values` (an array or a number) into `tensor` in place, outside the graph."""
    if not isinstance(tensor, Variable):
        raise TypeError(f"nn.init: expected a Variable, got {type(tensor).__name__}")
    with no_grad():
        tensor.copy_(Variable(np.asarray(values, dtype=tensor.dtype)))
    return tensor


def _draw(kind: str, tensor: Variable, generator, *params) -> np.ndarray:
    """PyTorch's `tensor.uniform_(a, b)` / `tensor.normal_(mean, std)` numbers for `tensor`."""
    if not isinstance(tensor, Variable):
        raise TypeError(f"nn.init: expected a Variable, got {type(tensor).__name__}")
    draw = getattr(generator_of(generator), kind)
    return draw(tensor.numel(), tensor.dtype, *params).reshape(tensor.shape)


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The recommended gain for a nonlinearity, as PyTorch's table has it."""
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d")
    if nonlinearity in linear or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _calculate_fan_in_and_fan_out(tensor: Variable) -> tuple[int, int]:
    if tensor.ndim < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _calculate_correct_fan(tensor: Variable, mode: str) -> int:
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor: Variable, a: float = 0.0, b: float = 1.0, generator: Any = None) -> Variable:
    """Fills `tensor` in place with numbers drawn uniformly from [a, b) and returns it.

    The numbers come from `generator` or the default one (sg.manual_seed), as PyTorch draws them.
    PyTorch: `torch.nn.init.uniform_`."""
    return _fill(tensor, _draw("uniform", tensor, generator, a, b))


def normal_(tensor: Variable, mean: float = 0.0, std: float = 1.0, generator: Any = None) -> Variable:
    """Fills `tensor` in place with numbers drawn from N(mean, std ** 2) and returns it.

    The numbers come from `generator` or the default one (sg.manual_seed), as PyTorch draws them.
    PyTorch: `torch.nn.init.normal_`."""
    return _fill(tensor, _draw("normal", tensor, generator, mean, std))


def constant_(tensor: Variable, val: float) -> Variable:
    """Fills `tensor` in place with the value `val` and returns it.

    PyTorch: `torch.nn.init.constant_`."""
    return _fill(tensor, np.full(tensor.shape, val))


def ones_(tensor: Variable) -> Variable:
    """Fills `tensor` in place with ones and returns it.

    PyTorch: `torch.nn.init.ones_`."""
    return constant_(tensor, 1.0)


def zeros_(tensor: Variable) -> Variable:
    """Fills `tensor` in place with zeros and returns it.

    PyTorch: `torch.nn.init.zeros_`."""
    return constant_(tensor, 0.0)


def xavier_uniform_(tensor: Variable, gain: float = 1.0, generator: Any = None) -> Variable:
    """Fills `tensor` in place from U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out)), and returns it.

    Glorot and Bengio's initialisation. The numbers come from `generator` or the
    default one (sg.manual_seed), as PyTorch draws them.
    PyTorch: `torch.nn.init.xavier_uniform_`."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = math.sqrt(3.0) * gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor: Variable, gain: float = 1.0, generator: Any = None) -> Variable:
    """Fills `tensor` in place from N(0, s ** 2), s = gain * sqrt(2 / (fan_in + fan_out)), and returns it.

    Glorot and Bengio's initialisation. The numbers come from `generator` or the
    default one (sg.manual_seed), as PyTorch draws them.
    PyTorch: `torch.nn.init.xavier_normal_`."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)), generator)


def _kaiming_std(tensor, a, mode, nonlinearity) -> float | None:
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
        return None
    return calculate_gain(nonlinearity, a) / math.sqrt(_calculate_correct_fan(tensor, mode))


def kaiming_uniform_(tensor: Variable, a: float = 0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu", generator: Any = None) -> Variable:
    """Fills `tensor` in place from U(-b, b), b = gain * sqrt(3 / fan), and returns it.

    He et al.'s initialisation: `fan` is the fan_in or fan_out by `mode`, the gain is
    calculate_gain(nonlinearity, a) (`a` the negative slope of leaky_relu).
    The numbers come from `generator` or the default one (sg.manual_seed), as PyTorch draws them.
    PyTorch: `torch.nn.init.kaiming_uniform_`."""
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor: Variable, a: float = 0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu", generator: Any = None) -> Variable:
    """Fills `tensor` in place from N(0, s ** 2), s = gain / sqrt(fan), and returns it.

    He et al.'s initialisation: `fan` is the fan_in or fan_out by `mode`, the gain is
    calculate_gain(nonlinearity, a) (`a` the negative slope of leaky_relu).
    The numbers come from `generator` or the default one (sg.manual_seed), as PyTorch draws them.
    PyTorch: `torch.nn.init.kaiming_normal_`."""
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    return tensor if std is None else normal_(tensor, 0.0, std, generator)


def eye_(tensor: Variable) -> Variable:
    """Fills the 2-d `tensor` in place with the identity matrix and returns it.

    PyTorch: `torch.nn.init.eye_`."""
    if tensor.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    return _fill(tensor, np.eye(*tensor.shape))


__all__ = ["calculate_gain", "constant_", "eye_", "kaiming_normal_", "kaiming_uniform_", "normal_", "ones_",
           "uniform_", "xavier_normal_", "xavier_uniform_", "zeros_"]
