"""The dtypes symgrad knows, and PyTorch's rules for promoting them."""
from __future__ import annotations

import numpy as np

float32 = np.dtype("float32")
float64 = np.dtype("float64")
int32 = np.dtype("int32")
int64 = np.dtype("int64")
bool_ = np.dtype("bool")

SUPPORTED = (bool_, int32, int64, float32, float64)
DEFAULT_FLOAT = float32     # the default dtype: sg.set_default_dtype (symgrad.devices) changes it
DEFAULT_INT = int64

_ALIASES = {
    "float": float32, "float32": float32, "float64": float64, "double": float64,
    "int": int64, "int64": int64, "long": int64, "int32": int32, "bool": bool_,
}


def as_dtype(dtype) -> np.dtype:
    """Normalise a user's dtype (a string, numpy dtype or numpy type) to one we support."""
    if isinstance(dtype, str) and dtype in _ALIASES:
        return _ALIASES[dtype]
    try:
        d = np.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"unsupported dtype {dtype!r}; use one of "
                        f"{', '.join(str(s) for s in SUPPORTED)}") from e
    if d not in SUPPORTED:
        raise TypeError(f"unsupported dtype {d}; use one of {', '.join(str(s) for s in SUPPORTED)}")
    return d


def category(d: np.dtype) -> int:
    """0 for bool, 1 for integers, 2 for floats: PyTorch promotes by category first."""
    if d == bool_:
        return 0
    return 2 if d.kind == "f" else 1


def is_float(d: np.dtype) -> bool:
    return d.kind == "f"


def result_dtype(tensor_dtypes, scalar_dtypes=()) -> np.dtype:
    """PyTorch's promotion: tensors decide within their category; a Python scalar only
    raises the category (an int tensor plus 2.5 is float32, a float32 tensor plus 2.5 stays float32)."""
    tensor_dtypes = list(tensor_dtypes)
    best = None
    for d in tensor_dtypes:
        best = d if best is None else np.promote_types(best, d)
    top_scalar = max((category(d) for d in scalar_dtypes), default=-1)
    if best is None or top_scalar > category(best):
        return {0: bool_, 1: DEFAULT_INT, 2: DEFAULT_FLOAT}[top_scalar]
    return best


def scalar_dtype(value) -> np.dtype:
    """The dtype a Python number stands for."""
    if isinstance(value, (bool, np.bool_)):
        return bool_
    if isinstance(value, (int, np.integer)):
        return int64
    return DEFAULT_FLOAT


ITEMSIZE = {"float": 4, "double": 8, "int32_t": 4, "int64_t": 8, "uint8_t": 1}   # by C type


def contiguous_strides(shape, itemsize: int = 1) -> tuple:
    """The strides of a C-contiguous array of `shape`, in elements (or bytes, given `itemsize`)."""
    strides, step = [], itemsize
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


_C_TYPES = {np.dtype(n): c for n, c in (("float32", "float"), ("float64", "double"), ("int32", "int32_t"),
                                         ("int64", "int64_t"), ("bool", "uint8_t"))}


def c_type(d: np.dtype) -> str:
    # (by dtype, not by its name: numpy builds dtype.name anew on every access)
    return _C_TYPES[np.dtype(d)]
