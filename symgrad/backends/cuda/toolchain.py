"""nvcc: finding it, its release, its flags; the cached nvcc build of a generated module
(`CudaBuild`) and the loaded module (`CudaLibrary`), whose status codes become exceptions.

Settings (read through symgrad.config): `SYMGRAD_NVCC`, `CUDA_HOME`, `CUDA_PATH`,
`SYMGRAD_CUDA_ARCH`, `SYMGRAD_CUDA_CCBIN`, `SYMGRAD_NVCC_FLAGS`."""
from __future__ import annotations

import functools
import itertools
import os
import shutil
import subprocess
import threading
from pathlib import Path

import cffi

from symgrad import config
from symgrad.backends.cuda.errors import (
    BAD_POINTER,
    ERROR_SIZE,
    NO_DEVICE,
    OK,
    OUT_OF_MEMORY,
    OUT_OF_RANGE,
    CudaError,
    CudaOutOfMemory,
    NoCudaDevice,
)
from symgrad.build import Build, CompileError

DEFAULT_ARCH = "sm_90"          # H100 / H200; nvcc also embeds compute_90 PTX for newer GPUs
DEFAULT_HOME = "/usr/local/cuda"


# --- nvcc ------------------------------------------------------------------------------------

def nvcc_path() -> str | None:
    """nvcc: `SYMGRAD_NVCC`, else on PATH, else under CUDA_HOME / CUDA_PATH / /usr/local/cuda."""
    given = config.nvcc()
    if given:
        return shutil.which(given) or (given if os.access(given, os.X_OK) else None)
    found = shutil.which("nvcc")
    if found:
        return found
    for home in config.cuda_homes() + [DEFAULT_HOME]:
        if os.access(Path(home) / "bin" / "nvcc", os.X_OK):
            return str(Path(home) / "bin" / "nvcc")
    return None


def have_nvcc() -> bool:
    """Whether nvcc is found and runs."""
    try:
        require_nvcc()
        return True
    except CompileError:
        return False


def require_nvcc() -> str:
    """nvcc's path, or a CompileError saying how to get one."""
    nvcc = nvcc_path()
    if nvcc is None:
        where = f" (SYMGRAD_NVCC={config.nvcc()!r} is not an executable)" if config.nvcc() else ""
        raise CompileError(f"backend='cuda' needs nvcc, the CUDA compiler, and it was not found{where}: "
                           f"install the CUDA toolkit and put its bin/ on PATH (or set SYMGRAD_NVCC to "
                           f"nvcc's path), or use backend='c'")
    nvcc_release(nvcc)
    return nvcc


def _leading_version(text: str, min_parts: int) -> str | None:
    """The dotted number `text` starts with ("13.0.88" of "13.0.88,"), if it has at least
    `min_parts` parts."""
    parts = []
    for piece in text.split("."):
        digits = piece[:len(piece) - len(piece.lstrip("0123456789"))]
        if not digits:
            break
        parts.append(digits)
        if digits != piece:
            break
    return ".".join(parts) if len(parts) >= min_parts else None


def parse_release(version_text: str) -> str | None:
    """The release in `nvcc --version`'s text: `V13.0.88` of "Cuda compilation tools, release
    13.0, V13.0.88", else the number after "release"."""
    words = version_text.replace(",", " ").split()
    for word in words:
        if word.startswith("V"):
            found = _leading_version(word[1:], 2)
            if found:
                return found
    for before, word in itertools.pairwise(words):
        if before == "release":
            found = _leading_version(word, 1)
            if found:
                return found
    return None


@functools.cache
def nvcc_release(nvcc: str) -> str:
    """nvcc's release (e.g. 13.0.88): its first line of --version names no version, so the
    release goes into the flags (as a -D) and with them into the cache key."""
    try:
        out = subprocess.run([nvcc, "--version"], check=False, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CompileError(f"backend='cuda': could not run nvcc ({nvcc!r}): {e}") from None
    release = parse_release(out.stdout)
    if out.returncode != 0 or release is None:
        raise CompileError(f"backend='cuda': {nvcc!r} --version failed (exit {out.returncode})",
                           out.stdout + out.stderr)
    return release


def cuda_arch() -> str:
    """The -arch flag's value: SYMGRAD_CUDA_ARCH (sm_80, 90, native, ...) or sm_90. A named
    architecture needs no GPU at compile time; `native` does."""
    arch = config.cuda_arch() or DEFAULT_ARCH
    return f"sm_{arch}" if arch.isdigit() else arch


def cuda_flags(nvcc: str) -> list[str]:
    """nvcc's flags for a generated module (and the runtime module)."""
    # nvcc's -O is the HOST code's level only (device code is always optimised: cicc and
    # ptxas -O3). Our host code is launches and copies, and -O3 made gcc spend most of a
    # build on nvcc's generated stubs and the embedded fatbinary, so it gets -O1.
    flags = ["-O1", "-shared", "-Xcompiler", "-fPIC", f"-arch={cuda_arch()}",
             # each host thread gets its own stream: concurrent calls from several Python
             # threads (the GIL is released while a call runs) do not serialise on stream 0
             "--default-stream", "per-thread", "-std=c++17",
             f"-DSYMGRAD_NVCC_RELEASE={nvcc_release(nvcc)}"]
    ccbin = config.cuda_ccbin()
    if ccbin:
        flags += ["-ccbin", ccbin]
    flags += config.nvcc_flags()
    return flags


# --- building and loading --------------------------------------------------------------------

class CudaLibrary:
    """A loaded CUDA module. `run(args, where, streams, workspace)` runs it (the GIL is released
    meanwhile) and raises `NoCudaDevice`, `CudaOutOfMemory`, `CudaError`, `IndexError` (a range
    check) or `ValueError` (a device pointer that is not this device's memory) with the
    module's message on failure."""

    def __init__(self, path: Path, source_path: Path, symbol: str):
        self.path, self.source_path, self.symbol = path, source_path, symbol
        self.base = symbol.removesuffix("_packed")
        self.ffi = cffi.FFI()
        self.ffi.cdef(f"int {symbol}(void **args);\n"
                      f"int {self.base}_run(void **args, const unsigned char *where,\n"
                      f"                    const uintptr_t *streams,\n"
                      f"                    void **workspace, char *err, size_t err_size);\n"
                      f"int {self.base}_release(void **workspace);")
        self.lib = self.ffi.dlopen(str(path))
        self._run = getattr(self.lib, f"{self.base}_run")
        self.release = getattr(self.lib, f"{self.base}_release")

    def run(self, args, where, streams, workspace) -> None:
        err = self.ffi.new("char[]", ERROR_SIZE)
        status = self._run(args, where, streams, workspace, err, ERROR_SIZE)
        if status != OK:
            self._raise(status, self.ffi.string(err).decode("utf-8", "replace"))

    def _raise(self, status, message):
        message = message or f"{self.base}: error {status}"
        if status == NO_DEVICE:
            raise NoCudaDevice(f"{self.base}: no CUDA device is available, so the CUDA backend cannot run "
                               f"(the module compiled fine: {self.source_path}). {message}. Run on a "
                               f"machine with an NVIDIA GPU and driver, or use backend='c'")
        if status == OUT_OF_MEMORY:
            raise CudaOutOfMemory(message)
        if status == OUT_OF_RANGE:
            raise IndexError(message)
        if status == BAD_POINTER:
            raise ValueError(message)
        raise CudaError(message)


_libraries: dict[str, CudaLibrary] = {}
_lock = threading.Lock()


class CudaBuild(Build):
    """A background nvcc build of one generated module, cached like the C backend's (the key
    hashes the source, nvcc, its release and the flags, the arch included)."""

    def __init__(self, source: str, symbol: str):
        nvcc = require_nvcc()
        super().__init__(source, symbol, suffix=".cu", compiler=nvcc, flags=cuda_flags(nvcc))

    def result(self) -> CudaLibrary:
        with _lock:
            if self.key in _libraries:
                return _libraries[self.key]
        base = super().result()          # compiles (or finds) and publishes the entry
        lib = CudaLibrary(base.path, base.source_path, self.symbol)
        with _lock:
            return _libraries.setdefault(self.key, lib)
