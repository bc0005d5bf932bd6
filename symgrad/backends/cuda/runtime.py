"""Device memory outside a compiled function: the small runtime module of
templates/cuda/runtime.cu.j2 (counting devices, allocating, freeing, copying), `DeviceArray`
and `to_device` for users, `device_count`, `is_available` and `empty_cache`."""
from __future__ import annotations

import functools
import math
import threading
import weakref
from pathlib import Path

import cffi
import numpy as np

from symgrad._version import __version__
from symgrad.backends.cuda.errors import ERROR_SIZE, CudaError, CudaOutOfMemory, NoCudaDevice
from symgrad.backends.cuda.toolchain import cuda_flags, have_nvcc, require_nvcc
from symgrad.build import Build, CompileError
from symgrad.codegen.render import environment


class Runtime:
    """The small module of templates/cuda/runtime.cu.j2: counting devices, allocating, freeing
    and copying device memory for `DeviceArray`. Freed blocks are kept by size and handed out
    again (a fresh cudaMalloc and cudaFree per result would cost more than a small call's
    kernels, and cudaFree waits for the whole device); when cudaMalloc fails the kept blocks
    are freed and it is tried once more. `empty_cache()` frees them at once."""

    def __init__(self, path: Path, source_path: Path):
        self.path, self.source_path = path, source_path
        self.ffi = cffi.FFI()
        self.ffi.cdef("""
            int sg_rt_device_count(void);
            int sg_rt_out_of_memory(int status);
            int sg_rt_alloc(void **ptr, size_t nbytes, char *err, size_t err_size);
            int sg_rt_free(void *ptr);
            int sg_rt_copy(void *dst, const void *src, size_t nbytes, int kind,
                           char *err, size_t err_size);""")
        self.lib = self.ffi.dlopen(str(path))
        self._kept: dict[int, list[int]] = {}
        self._lock = threading.Lock()

    def device_count(self) -> int:
        return max(0, self.lib.sg_rt_device_count())

    def _check(self, status, err, what):
        if status == 0:
            return
        message = f"{what}: {self.ffi.string(err).decode('utf-8', 'replace')}"
        if self.lib.sg_rt_out_of_memory(status):
            raise CudaOutOfMemory(message)
        if self.device_count() == 0:
            raise NoCudaDevice(f"{message}. No CUDA device is available: run on a machine with an NVIDIA "
                               f"GPU and driver")
        raise CudaError(message)

    def alloc(self, nbytes: int) -> int:
        if nbytes == 0:
            return 0
        with self._lock:
            kept = self._kept.get(nbytes)
            if kept:
                return kept.pop()
        ptr, err = self.ffi.new("void **"), self.ffi.new("char[]", ERROR_SIZE)
        status = self.lib.sg_rt_alloc(ptr, nbytes, err, ERROR_SIZE)
        if status != 0 and self.lib.sg_rt_out_of_memory(status):
            self.empty_cache()
            status = self.lib.sg_rt_alloc(ptr, nbytes, err, ERROR_SIZE)
        self._check(status, err, f"allocating {nbytes} bytes of CUDA device memory")
        return int(self.ffi.cast("uintptr_t", ptr[0]))

    def release(self, ptr: int, nbytes: int) -> None:
        """Keeps a block that nothing refers to any more for the next allocation of its size."""
        if ptr:
            with self._lock:
                self._kept.setdefault(nbytes, []).append(ptr)

    def empty_cache(self) -> None:
        with self._lock:
            blocks = [p for kept in self._kept.values() for p in kept]
            self._kept.clear()
        for p in blocks:
            self.lib.sg_rt_free(self.ffi.cast("void *", p))

    def copy(self, dst, src, nbytes: int, kind: int, what: str) -> None:
        err = self.ffi.new("char[]", ERROR_SIZE)
        self._check(self.lib.sg_rt_copy(dst, src, nbytes, kind, err, ERROR_SIZE), err, what)


_RUNTIME: list = []         # the loaded Runtime (tests may put an emulated one here)
_lock = threading.Lock()


def runtime_source() -> str:
    """The runtime module's CUDA text."""
    return environment().get_template("cuda/runtime.cu.j2").render(version=__version__)


def runtime() -> Runtime:
    """The runtime module, built by nvcc (and cached) on first use."""
    if not _RUNTIME:
        with _lock:
            if not _RUNTIME:
                nvcc = require_nvcc()
                lib = Build(runtime_source(), "sg_rt_device_count", suffix=".cu", compiler=nvcc,
                            flags=cuda_flags(nvcc)).result()
                _RUNTIME.append(Runtime(lib.path, lib.source_path))
    return _RUNTIME[0]


@functools.cache
def device_count() -> int:
    """CUDA devices usable from symgrad's modules: 0 without nvcc, a driver or a GPU."""
    if not have_nvcc():
        return 0
    try:
        return runtime().device_count()
    except (CompileError, OSError):
        return 0


def is_available() -> bool:
    """Whether `backend="cuda"` functions can run here (as torch.cuda.is_available)."""
    return device_count() > 0


def empty_cache() -> None:
    """Frees the device memory kept from DeviceArrays that are gone (as torch.cuda.empty_cache)."""
    if _RUNTIME:
        _RUNTIME[0].empty_cache()


# --- arrays in device memory -----------------------------------------------------------------

class DeviceArray:
    """A C-contiguous array in CUDA device memory: what a CUDA function returns when it was
    given device arrays. It exposes `__cuda_array_interface__` (version 3), so CuPy, PyTorch
    (`torch.as_tensor(a, device="cuda")`) and Numba use it without a copy, and can be passed
    back to any symgrad CUDA function. `.numpy()` (or `np.asarray`) copies it to the host.
    Its memory goes back to symgrad's cache when the last reference to it is dropped."""

    def __init__(self, shape, dtype, _runtime: Runtime | None = None):
        self._runtime = _runtime or runtime()
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        self.nbytes = self.dtype.itemsize * math.prod(self.shape)
        self.ptr = self._runtime.alloc(self.nbytes)
        weakref.finalize(self, self._runtime.release, self.ptr, self.nbytes)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    device = "cuda"

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    @property
    def __cuda_array_interface__(self) -> dict:
        # Every symgrad call waits for its kernels before returning, so no stream is pending.
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self.ptr, False),
                "version": 3, "strides": None, "stream": None}

    def numpy(self) -> np.ndarray:
        out = np.empty(self.shape, self.dtype)
        if self.nbytes:
            ffi = self._runtime.ffi
            self._runtime.copy(ffi.from_buffer(out, require_writable=True), ffi.cast("void *", self.ptr),
                               self.nbytes, 2, f"copying a {self.shape} {self.dtype} array to the host")
        return out

    def __array__(self, dtype=None, copy=None):
        out = self.numpy()
        return out if dtype is None else out.astype(dtype)

    def __repr__(self):
        if self.size <= 64:
            body = np.array2string(self.numpy(), separator=", ", prefix="DeviceArray(")
            return f"DeviceArray({body}, dtype={self.dtype}, device='cuda')"
        return f"DeviceArray(shape={self.shape}, dtype={self.dtype}, device='cuda')"


def to_device(array, dtype=None) -> DeviceArray:
    """A copy of `array` in device memory."""
    given = np.asarray(array, dtype)
    host = np.ascontiguousarray(given).reshape(given.shape)     # (it makes a 0-d array 1-d)
    out = DeviceArray(host.shape, host.dtype)
    if out.nbytes:
        rt = out._runtime
        rt.copy(rt.ffi.cast("void *", out.ptr), rt.ffi.from_buffer(host), out.nbytes, 1,
                f"copying a {host.shape} {host.dtype} array to the device")
    return out
