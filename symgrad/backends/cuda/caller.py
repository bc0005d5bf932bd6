"""Calling a compiled CUDA function: host arrays are staged through a workspace and come back
as numpy arrays; device arrays (anything with `__cuda_array_interface__`) are used in place
and the results stay on the device."""
from __future__ import annotations

import math
import weakref

import numpy as np

from symgrad import dtypes
from symgrad.backends.cuda.runtime import DeviceArray


def device_interface(value):
    """`value.__cuda_array_interface__`, or None for anything that is not a device array (a
    PyTorch CPU tensor's class has the attribute, but reading it raises AttributeError)."""
    if isinstance(value, np.ndarray):
        return None
    return getattr(value, "__cuda_array_interface__", None)


def device_pointer(cai, spec, who: str, fname: str) -> tuple[int, int]:
    """(pointer, stream) of a device array (its `__cuda_array_interface__`) given for the
    Variable `spec`, or an exception naming the input, its expected and actual shape and dtype."""
    shape = tuple(int(n) for n in cai["shape"])
    try:
        dtype = np.dtype(cai["typestr"])
    except TypeError:
        raise TypeError(f"{fname}: {who} expects dtype {spec.dtype.name}, got a device array of typestr "
                        f"{cai['typestr']!r} (shape {shape})") from None
    where = f"a CUDA device array of shape {shape} and dtype {dtype}"
    if dtype != spec.dtype:
        raise TypeError(f"{fname}: {who} expects dtype {spec.dtype.name}, got {where}; convert it on the "
                        f"device (x.to(torch.{spec.dtype.name}), x.astype('{spec.dtype.name}') in CuPy)")
    if shape != tuple(spec.shape):
        raise ValueError(f"{fname}: {who} expects shape {tuple(spec.shape)}, got {where}")
    strides = cai.get("strides")
    if strides is not None and math.prod(shape) > 1:
        want = dtypes.contiguous_strides(shape, dtype.itemsize)
        if any(n > 1 and s != w for n, s, w in zip(shape, strides, want)):
            raise ValueError(f"{fname}: {who} is {where} with strides {tuple(strides)}, not C-contiguous "
                             f"({want}): make it contiguous on the device first (.contiguous() in "
                             f"PyTorch, cupy.ascontiguousarray)")
    if cai.get("mask") is not None:
        raise ValueError(f"{fname}: {who} is a masked device array; symgrad takes unmasked arrays only")
    ptr = int(cai["data"][0] or 0)
    if ptr == 0 and math.prod(shape):
        raise ValueError(f"{fname}: {who} is {where} whose data pointer is null")
    stream = cai.get("stream") if cai.get("version", 0) >= 3 else None
    return ptr, int(stream or 0)


class Caller:
    """Calls one compiled CUDA Function. Host arrays are staged through the workspace and the
    results come back as numpy arrays; when any input is a device array, results stay on the
    device (DeviceArray). Idle workspaces are kept in a list, so concurrent callers each get
    one and a workspace is allocated only when every kept one is in use; they are freed when
    the Function is."""

    def __init__(self, fn):
        self.fn = fn
        self.lib = lib = fn.library()
        self.n_in, self.n_params = len(fn.args), len(fn.args) + len(fn.consts) + len(fn._out_specs)
        self.idle: list = []
        self.everyone: list = []
        weakref.finalize(self, _release_all, lib, self.everyone)

    def _workspace(self):
        try:
            return self.idle.pop()
        except IndexError:
            ws = self.lib.ffi.new("void *[2]")
            self.everyone.append(ws)
            return ws

    def __call__(self, values) -> list:
        fn, ffi = self.fn, self.lib.ffi
        if len(values) != self.n_in:
            fn.convert(values)              # raises: the inputs it takes
        n = max(1, self.n_params)
        args, where = ffi.new("void *[]", n), ffi.new("unsigned char[]", n)
        streams = ffi.new("uintptr_t[]", n)
        keep, device = [], False
        for k, (value, spec, who) in enumerate(zip(values, fn.args, fn.describe_args)):
            cai = device_interface(value)
            if cai is not None:
                ptr, stream = device_pointer(cai, spec, who, fn.name)
                args[k], where[k], streams[k] = ffi.cast("void *", ptr), 1, stream
                device = True
            else:
                arr = fn.convert_one(value, spec, who)
                keep.append(arr)
                args[k] = ffi.from_buffer(arr) if arr.size else ffi.NULL
        k = self.n_in
        for c in fn.consts:
            args[k] = ffi.from_buffer(c) if c.size else ffi.NULL
            k += 1
        outs = []
        for shape, dtype in fn._out_specs:
            if device:
                out = DeviceArray(shape, dtype)
                args[k], where[k] = ffi.cast("void *", out.ptr), 1
            else:
                out = np.empty(shape, dtype)
                args[k] = ffi.from_buffer(out, require_writable=True) if out.size else ffi.NULL
            outs.append(out)
            k += 1
        ws = self._workspace()
        try:
            self.lib.run(args, where, streams, ws)
        finally:
            self.idle.append(ws)
        return outs


def _release_all(lib, workspaces):
    for ws in workspaces:
        lib.release(ws)
