"""The CUDA backend: the same schedules as the C backend, rendered from `templates/cuda/` with
a launch plan, compiled by nvcc into a shared library and loaded with cffi.

    errors.py     the status codes of the generated entry points and the exceptions they become
    toolchain.py  nvcc (its path, release and flags); the cached build and the loaded module
    launch.py     the launch plan of every kernel and the workspace layout, for the templates
    runtime.py    device memory for users: the runtime module, DeviceArray, to_device
    caller.py     calling a compiled function with host or device arrays

The generated module exports, for a function `symgrad_<name>`:

    int symgrad_<name>_run(void **args, const unsigned char *where, const uintptr_t *streams,
                           void **workspace, char *err, size_t err_size)
    int symgrad_<name>_release(void **workspace)        frees a workspace's device memory
    int symgrad_<name>_packed(void **args)              host pointers only, as the C backend's

where `args` holds one pointer per parameter (inputs, captured constants, outputs) and
`where[k]` says whether args[k] is device memory (used in place) or host memory (copied).
Status codes: see `errors`. The public names are re-exported by `symgrad.cuda` (`sg.cuda`).
"""
from __future__ import annotations

from symgrad.backends.base import Backend
from symgrad.backends.cuda.caller import Caller
from symgrad.backends.cuda.launch import template_context
from symgrad.backends.cuda.toolchain import CudaBuild
from symgrad.ops.primitives import libm_calls

# Names a user's Variable must not take in CUDA text (C++ keywords, CUDA's built-in
# variables and types, the macros the templates use, and the libm functions the op
# registry's C expressions call). The NameTable treats them as taken, so `new` becomes
# `new_2`; the C backend is unaffected.
RESERVED_WORDS = frozenset("""
alignas alignof and_eq asm bitand bitor catch char16_t char32_t char8_t class co_await co_return
co_yield compl concept const_cast consteval constexpr constinit decltype delete dynamic_cast
explicit export friend mutable namespace new noexcept not_eq nullptr operator private protected
public reinterpret_cast requires static_assert static_cast template this thread_local throw try
typeid typename using virtual wchar_t xor xor_eq
threadIdx blockIdx blockDim gridDim warpSize dim3 uint3 int3 float2 float4 double2 cudaError_t
cudaSuccess cudaStream_t cudaMemcpy cudaMalloc cudaFree std
int8_t int16_t int32_t int64_t uint8_t uint16_t uint32_t uint64_t size_t ptrdiff_t
min max fmin fmax
printf snprintf getenv memcpy malloc free
INT64_C INT32_C INT64_MIN INT64_MAX INT32_MIN INT32_MAX UINT8_MAX
""".split()) | frozenset(libm_calls())


class CudaBackend(Backend):
    name = "cuda"
    takes_device_arrays = True
    module_template = "cuda/module.cu.j2"
    reserved_words = RESERVED_WORDS

    def template_context(self, schedule) -> dict:
        return {"cuda": template_context(schedule)}      # launch plans, device memory layout

    def start_build(self, source, symbol, schedule) -> CudaBuild:
        return CudaBuild(source, symbol)

    def run(self, fn, arrays):
        return caller_of(fn)(arrays)

    def caller(self, fn):
        return lambda *values: caller_of(fn)(values)


BACKEND = CudaBackend()


def caller_of(fn) -> Caller:
    """`fn`'s Caller (it holds the library and its workspaces), made on first use: host arrays
    in, host arrays out; device arrays in, device arrays out."""
    caller = fn.__dict__.get("_caller")
    if caller is None:
        caller = fn._caller = Caller(fn)
    return caller
