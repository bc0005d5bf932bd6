"""The dtypes symgrad knows, and PyTorch's rules for promoting them."""
from __future__ import annotations

import numpy as np

class dtype:
    """A dtype as PyTorch has them: `symgrad.float32` prints as `symgrad.float32` (PyTorch's
    `torch.float32`), has PyTorch's attributes (`is_floating_point`, `is_signed`, `itemsize`)
    and one instance per dtype (`x.dtype is symgrad.float32`).

    It stands for the numpy dtype in its `dtype` attribute (and `__numpy_dtype__`, which numpy
    2.4 reads first), which numpy (and JAX) read wherever they take a dtype (`np.zeros(2,
    sg.float32)`, `a.astype(x.dtype)`, `np.dtype(x.dtype)`). It equals that numpy dtype, and
    what that equals (numpy types, names such as "float32"), with the same hash, so code
    written for numpy dtypes (and dicts keyed by them) keeps working; numpy attributes it has
    not copied (`str`, `byteorder`, `newbyteorder` ...) are the numpy dtype's."""

    __slots__ = ("dtype", "__numpy_dtype__", "name", "kind", "char", "type", "itemsize",
                 "is_floating_point", "is_complex", "is_signed", "abbr", "_hash")

    def __init__(self, name: str, abbr: str):
        d = np.dtype(name)
        fields = {"dtype": d, "__numpy_dtype__": d, "name": d.name, "kind": d.kind, "char": d.char,
                  "type": d.type, "itemsize": d.itemsize, "is_floating_point": d.kind == "f",
                  "is_complex": False, "is_signed": d.kind in "fi", "abbr": abbr, "_hash": hash(d)}
        for k, v in fields.items():
            object.__setattr__(self, k, v)

    def __setattr__(self, name, value):
        raise AttributeError(f"symgrad.{self.name} is immutable (cannot set {name!r})")

    def __delattr__(self, name):
        raise AttributeError(f"symgrad.{self.name} is immutable (cannot delete {name!r})")

    def __getattr__(self, name):
        # only for what __slots__ lacks: numpy's other dtype attributes
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(object.__getattribute__(self, "dtype"), name)

    def __eq__(self, other):
        if type(other) is dtype:        # one instance per dtype
            return other is self
        return self.dtype == other

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return self._hash

    def __repr__(self):
        return f"symgrad.{self.name}"

    __str__ = __repr__

    def __reduce__(self):
        return (named, (self.name,))

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def to_real(self) -> "dtype":
        """This dtype: symgrad's dtypes are real. PyTorch: `torch.dtype.to_real`."""
        return self

    def to_complex(self):
        raise TypeError(f"symgrad has no complex dtypes (to_complex() of {self})")


dtype.__module__ = "symgrad"        # the class prints as symgrad.dtype, as torch.dtype does

float32 = dtype("float32", "f32")
float64 = dtype("float64", "f64")
int32 = dtype("int32", "i32")
int64 = dtype("int64", "i64")
bool_ = dtype("bool", "b8")

SUPPORTED = (bool_, int32, int64, float32, float64)
DEFAULT_FLOAT = float32     # the default dtype: sg.set_default_dtype (symgrad.devices) changes it
DEFAULT_INT = int64

_BY_NUMPY = {d.dtype: d for d in SUPPORTED}
_ALIASES = {
    "float": float32, "float32": float32, "float64": float64, "double": float64,
    "int": int64, "int64": int64, "long": int64, "int32": int32, "bool": bool_,
}


def named(name: str) -> dtype:
    """The dtype of a name ("float32"): how pickle brings a dtype back as the same object."""
    return _ALIASES[name]


def of(d):
    """The symgrad dtype standing for numpy's `d` (graph nodes keep these): None stays None, and
    a dtype symgrad does not support stays a numpy dtype."""
    if d is None or type(d) is dtype:
        return d
    d = np.dtype(d)
    return _BY_NUMPY.get(d, d)


def as_dtype(dtype_) -> dtype:
    """Normalise a user's dtype (symgrad's, a string, numpy dtype or numpy type) to one we support."""
    if type(dtype_) is dtype:
        return dtype_
    if isinstance(dtype_, str) and dtype_ in _ALIASES:
        return _ALIASES[dtype_]
    try:
        d = np.dtype(dtype_)
    except TypeError as e:
        raise TypeError(f"unsupported dtype {dtype_!r}; use one of "
                        f"{', '.join(str(s) for s in SUPPORTED)}") from e
    if d not in _BY_NUMPY:
        raise TypeError(f"unsupported dtype {d}; use one of {', '.join(str(s) for s in SUPPORTED)}")
    return _BY_NUMPY[d]


class finfo:
    """The limits of a floating point dtype (the default dtype without one), as Python floats.
    PyTorch: `torch.finfo`."""

    def __init__(self, type=None):
        d = DEFAULT_FLOAT if type is None else as_dtype(type)
        if not d.is_floating_point:
            raise TypeError(f"symgrad.finfo() requires a floating point dtype, got {d}; symgrad.iinfo "
                            f"gives the limits of integer dtypes")
        info = np.finfo(d.dtype)
        self.bits, self.dtype = info.bits, d.name
        self.eps, self.max, self.min = float(info.eps), float(info.max), float(info.min)
        self.tiny = self.smallest_normal = float(info.smallest_normal)
        self.resolution = 10.0 ** -info.precision

    def __repr__(self):
        return (f"finfo(resolution={self.resolution:g}, min={self.min:g}, max={self.max:g}, "
                f"eps={self.eps:g}, smallest_normal={self.smallest_normal:g}, tiny={self.tiny:g}, "
                f"dtype={self.dtype})")


class iinfo:
    """The limits of an integer dtype, as Python ints. PyTorch: `torch.iinfo`."""

    def __init__(self, type):
        d = as_dtype(type)
        if d.kind != "i":
            other = "" if d.kind == "b" else "; symgrad.finfo gives the limits of floating point dtypes"
            raise TypeError(f"symgrad.iinfo() requires an integer dtype, got {d}{other}")
        info = np.iinfo(d.dtype)
        self.bits, self.min, self.max, self.dtype = info.bits, int(info.min), int(info.max), d.name

    def __repr__(self):
        return f"iinfo(min={self.min:g}, max={self.max:g}, dtype={self.dtype})"


def category(d: dtype) -> int:
    """0 for bool, 1 for integers, 2 for floats: PyTorch promotes by category first."""
    if d.kind == "b":
        return 0
    return 2 if d.kind == "f" else 1


def is_float(d: dtype) -> bool:
    return d.kind == "f"


def result_dtype(tensor_dtypes, scalar_dtypes=()) -> dtype:
    """PyTorch's promotion: tensors decide within their category; a Python scalar only
    raises the category (an int tensor plus 2.5 is float32, a float32 tensor plus 2.5 stays float32)."""
    tensor_dtypes = list(tensor_dtypes)
    best = None
    for d in tensor_dtypes:
        best = d if best is None else np.promote_types(best, d)
    top_scalar = max((category(d) for d in scalar_dtypes), default=-1)
    if best is None or top_scalar > category(best):
        return {0: bool_, 1: DEFAULT_INT, 2: DEFAULT_FLOAT}[top_scalar]
    return of(best)


def scalar_dtype(value) -> dtype:
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


def c_type(d: dtype) -> str:
    # (by dtype, not by its name: numpy builds dtype.name anew on every access)
    return _C_TYPES[np.dtype(d)]
