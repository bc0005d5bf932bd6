"""Devices and the default dtype, as PyTorch's front end shows them.

Eager Variables live in host memory: their only device is the CPU. A GPU is reached by
compiling (`sg.compile(..., backend="cuda")`), so asking for "cuda" here is an error that
says so, never a silent CPU run that pretends otherwise."""
from __future__ import annotations

import numpy as np

from symgrad import dtypes

_CUDA_HINT = ("symgrad's eager Variables live on the CPU; to run on a GPU, compile the graph "
              "with sg.compile(inputs, outputs, backend=\"cuda\") (or keep device=\"cpu\")")


class device:
    """`sg.device("cpu")`, `sg.device("cpu", 0)`, `sg.device("cpu:0")`: like torch.device.

    A "cuda" device can be named (so that `sg.device("cuda")` prints as PyTorch's does), but
    using it to make or move a Variable raises (see `check`)."""

    __slots__ = ("_type", "_index")

    def __init__(self, type, index=None):
        if isinstance(type, device):
            if index is not None:
                raise TypeError("device(device, index): give the index in a string or an int, not both")
            self._type, self._index = type._type, type._index
            return
        if isinstance(type, (int, np.integer)) and not isinstance(type, bool):
            # torch.device(0) is the first accelerator
            type, index = "cuda", int(type)
        if not isinstance(type, str):
            raise TypeError(f"device(): expected a string such as 'cpu', got {type.__class__.__name__}")
        kind, sep, number = type.partition(":")
        if sep:
            if index is not None:
                raise RuntimeError(f"device(): type {type!r} already names an index; "
                                   f"don't give index={index}")
            if not number.isdigit():
                raise RuntimeError(f"Invalid device string: {type!r}")
            index = int(number)
        if kind not in ("cpu", "cuda"):
            raise RuntimeError(f"Expected one of cpu, cuda device type at start of device string: {type}")
        if index is not None and (not isinstance(index, (int, np.integer)) or isinstance(index, bool)
                                  or index < 0):
            raise RuntimeError(f"Device index must not be negative, got {index!r}")
        self._type, self._index = kind, None if index is None else int(index)

    @property
    def type(self) -> str:
        return self._type

    @property
    def index(self):
        return self._index

    def __eq__(self, other):
        # As torch.device: equal to another device of the same type and index (not to a string).
        if not isinstance(other, device):
            return NotImplemented
        return (self._type, self._index) == (other._type, other._index)

    def __hash__(self):
        return hash((self._type, self._index))

    def __str__(self):
        return self._type if self._index is None else f"{self._type}:{self._index}"

    def __repr__(self):
        if self._index is None:
            return f"device(type='{self._type}')"
        return f"device(type='{self._type}', index={self._index})"

    def __reduce__(self):
        return (device, (self._type, self._index))


CPU = device("cpu")
_default_device = CPU


def check(where: str, dev) -> device:
    """The device a user named for `where` (a creation function, `.to()`, ...), or an error:
    a string, a `sg.device`, an int, or None (the default device)."""
    if dev is None:
        return _default_device
    try:
        d = dev if isinstance(dev, device) else device(dev)
    except TypeError:
        raise TypeError(f"{where}: device must be a string such as 'cpu' or an sg.device, "
                        f"got {type(dev).__name__}") from None
    if d.type != "cpu":
        raise RuntimeError(f"{where}: device {str(d)!r} is not available for eager Variables: {_CUDA_HINT}")
    return CPU


def is_device(obj) -> bool:
    """Whether `obj` names a device (for `.to(...)`, whose first argument may be either)."""
    if isinstance(obj, device):
        return True
    if isinstance(obj, str):
        return obj.partition(":")[0] in ("cpu", "cuda")
    return False


def set_default_device(dev: device | str | None) -> None:
    """Sets the device new Variables are made on: only "cpu" (or None) is possible for eager
    Variables. PyTorch: `torch.set_default_device`."""
    global _default_device
    _default_device = check("set_default_device", dev) if dev is not None else CPU


def get_default_device() -> device:
    """The device new Variables are made on: always the CPU for eager Variables. PyTorch:
    `torch.get_default_device`."""
    return _default_device


def set_default_dtype(d: np.dtype | str | type) -> None:
    """Sets the default floating point dtype, float32 or float64. PyTorch: `torch.set_default_dtype`.

    It becomes the dtype of Python floats, of `sg.tensor([1.0])`, of `zeros`, `randn`, ... and
    of integers promoted to floats."""
    d = dtypes.as_dtype(d)
    if not dtypes.is_float(d):
        raise TypeError(f"set_default_dtype: only floating point types are supported as the default "
                        f"type, got {d}")
    dtypes.DEFAULT_FLOAT = d


def get_default_dtype() -> np.dtype:
    """The default floating point dtype (float32 unless set_default_dtype changed it). PyTorch:
    `torch.get_default_dtype`."""
    return dtypes.DEFAULT_FLOAT
