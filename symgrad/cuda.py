"""`sg.cuda`: the CUDA backend's public names (as `torch.cuda`'s): device arrays, copying to
the device, whether a device is there, freeing cached device memory, and the exceptions a
CUDA call raises. The backend itself is `symgrad.backends.cuda`."""
from symgrad.backends.cuda import RESERVED_WORDS
from symgrad.backends.cuda.errors import CudaError, CudaOutOfMemory, NoCudaDevice
from symgrad.backends.cuda.runtime import DeviceArray, device_count, empty_cache, is_available, to_device
from symgrad.backends.cuda.toolchain import have_nvcc

__all__ = ["RESERVED_WORDS", "CudaError", "CudaOutOfMemory", "DeviceArray", "NoCudaDevice", "device_count",
           "empty_cache", "have_nvcc", "is_available", "to_device"]
