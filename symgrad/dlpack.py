"""DLPack and the array interface: `sg.from_dlpack(x)`, `Variable.__dlpack__` /
`__dlpack_device__`, and `to_array`, which compiled functions use to take any CPU array
object (torch tensors with or without requires_grad, JAX arrays, CuPy-free numpy-likes).
Duck-typed: symgrad imports neither torch nor JAX."""
from __future__ import annotations

from typing import Any

import numpy as np

from symgrad.variable import Variable

CPU = 1          # DLPack's kDLCPU


def is_array_like(obj) -> bool:
    """An object carrying an array by protocol (not a list or a number)."""
    return hasattr(obj, "__dlpack__") or hasattr(obj, "__array_interface__")


def to_array(obj, who: str = "argument") -> np.ndarray:
    """A numpy view (no copy where the protocol allows) of `obj`: an ndarray as it is, a
    Variable's value, else through `__dlpack__` (a tensor that requires grad is detached
    first: its values are what is read) or `__array_interface__` / `np.asarray`."""
    if isinstance(obj, np.ndarray):
        return obj
    if isinstance(obj, Variable):
        return obj.value()
    if getattr(obj, "requires_grad", False) and callable(getattr(obj, "detach", None)):
        obj = obj.detach()
    if hasattr(obj, "__dlpack__"):
        try:
            return np.from_dlpack(obj)
        except (BufferError, TypeError, RuntimeError, ValueError) as e:
            if not hasattr(obj, "__array_interface__"):
                shape = getattr(obj, "shape", None)
                shape = tuple(shape) if shape is not None else "?"
                raise TypeError(f"{who}: a {type(obj).__name__} of shape {shape} "
                                f"and dtype {getattr(obj, 'dtype', '?')} cannot be read as a CPU array "
                                f"through DLPack ({e}); move it to the CPU (e.g. .cpu()) or pass a numpy "
                                f"array") from None
    return np.asarray(obj)


def from_dlpack(ext_tensor: Any) -> Variable:
    """Like torch.from_dlpack: a Variable holding the values of any object with `__dlpack__`
    (a torch CPU tensor, a JAX array, a numpy array...) or `__array_interface__`; its data is
    a copy, so later writes to either side are not shared."""
    if isinstance(ext_tensor, Variable):
        return ext_tensor
    if not is_array_like(ext_tensor):
        raise TypeError(f"from_dlpack expects an object with __dlpack__ or __array_interface__, got "
                        f"{type(ext_tensor).__name__}")
    return Variable(np.array(to_array(ext_tensor, "from_dlpack"), copy=True))


def _dlpack(self, *, stream=None, max_version=None, dl_device=None, copy=None):
    """The DLPack capsule of the Variable's value (a CPU array; computed if it is an eager
    expression). Symbolic Variables have no value to share."""
    if stream is not None and stream != -1:
        raise BufferError("symgrad Variables live in CPU memory: __dlpack__ takes no stream")
    if dl_device is not None and tuple(dl_device)[0] != CPU:
        raise BufferError(f"symgrad Variables live in CPU memory; dl_device {tuple(dl_device)} was asked for")
    arr = self.value()
    kwargs = {}
    if max_version is not None:
        kwargs["max_version"] = max_version
    if copy is not None:
        kwargs["copy"] = copy
    try:
        return arr.__dlpack__(**kwargs)
    except BufferError:                  # read-only arrays, for older DLPack consumers
        return np.array(arr, copy=True).__dlpack__(**kwargs)


def _dlpack_device(self):
    return (CPU, 0)


def attach(variable_class) -> None:
    variable_class.__dlpack__ = _dlpack
    variable_class.__dlpack_device__ = _dlpack_device
