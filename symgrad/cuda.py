"""`sg.cuda`: the CUDA backend's public names (as `torch.cuda`'s): device arrays, copying to
the device, whether a device is there, freeing cached device memory, and the exceptions a
CUDA call raises. The backend itself is `symgrad.backends.cuda`.

`is_available()` answers what programs written for PyTorch ask of it, in
`device = "cuda" if torch.cuda.is_available() else "cpu"`: whether Variables can be made on a
CUDA device. They can't (eager Variables live in host memory), so it is False and such a
program runs on the CPU. Whether compiled functions (`sg.compile(..., backend="cuda")`) can run
here is `device_available()`; `device_count()` counts the devices they can use."""
from symgrad.backends.cuda import RESERVED_WORDS
from symgrad.backends.cuda.errors import CudaError, CudaOutOfMemory, NoCudaDevice
from symgrad.backends.cuda.runtime import DeviceArray, device_count, empty_cache, to_device
from symgrad.backends.cuda.runtime import is_available as device_available
from symgrad.backends.cuda.toolchain import have_nvcc

__all__ = ["RESERVED_WORDS", "CudaError", "CudaOutOfMemory", "DeviceArray", "NoCudaDevice",
           "device_available", "device_count", "empty_cache", "have_nvcc", "is_available", "to_device"]


def is_available() -> bool:
    """Whether Variables can be made on a CUDA device: never (see the module's docstring; a GPU
    runs compiled functions, `device_available()`)."""
    return False
