"""What a CUDA call can fail with: the generated entry points' status codes and the Python
exceptions they become."""
from __future__ import annotations

ERROR_SIZE = 1024               # bytes of the buffer a module writes its error message into

# Status codes returned by the generated entry points (and the runtime module's).
OK, NO_DEVICE, OUT_OF_MEMORY, CUDA_ERROR, OUT_OF_RANGE, BAD_POINTER = 0, 1, 2, 3, 4, 5


class CudaError(RuntimeError):
    """A CUDA call or kernel of a compiled function failed; the message names it."""


class NoCudaDevice(CudaError):
    """The module compiled, but this machine has no usable CUDA device."""


class CudaOutOfMemory(CudaError, MemoryError):
    """cudaMalloc could not allocate the device memory a call needs."""
