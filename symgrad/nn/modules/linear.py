"""`Identity`, `Linear` and `Flatten`."""
from __future__ import annotations

import math

import numpy as np

from symgrad import dtypes
from symgrad import functional as F
from symgrad.nn import functional as NF
from symgrad.nn import init
from symgrad.nn.modules.module import Module
from symgrad.nn.parameter import Parameter


def factory_dtype(dtype=None) -> np.dtype:
    """A new layer's dtype: the one asked for, else sg.get_default_dtype(); floats only."""
    from symgrad.devices import get_default_dtype
    dt = dtypes.as_dtype(dtype if dtype is not None else get_default_dtype())
    if not dtypes.is_float(dt):
        raise TypeError(f"a layer's parameters must be floating point, got dtype={dt}")
    return dt


def check_device(device) -> None:
    if device is not None:
        from symgrad.devices import device as as_device
        if as_device(device).type != "cpu":
            raise RuntimeError(f"device={device!r}: symgrad's layers hold their parameters on the CPU")


class Identity(Module):
    """Returns its input; any arguments are ignored."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Linear(Module):
    """y = x W^T + b, with W of shape (out_features, in_features). W is drawn from
    kaiming_uniform(a=sqrt(5)), that is U(-1/sqrt(in), 1/sqrt(in)), and b from the same
    range, as PyTorch's."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        check_device(device)
        dt = factory_dtype(dtype)
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(np.empty((out_features, in_features), dt))
        if bias:
            self.bias = Parameter(np.empty((out_features,), dt))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        if input.shape[-1:] != (self.in_features,):
            raise ValueError(f"Linear({self.extra_repr()}): the input of shape {tuple(input.shape)} "
                             f"and dtype {input.dtype} does not end in in_features={self.in_features} "
                             f"(mat1 and mat2 shapes cannot be multiplied)")
        return NF.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Flatten(Module):
    """Flattens the dimensions start_dim..end_dim into one."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input):
        return F.flatten(input, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
