"""Variables among numpy arrays: `ndarray (op) Variable` and numpy ufuncs on Variables run the
symgrad operation (the graph goes on, gradients flow), or raise a TypeError naming the ufunc;
never a plain array that silently lost the graph. `np.asarray(v)` of a Variable that requires
grad raises as PyTorch does (its value is there through `v.detach().numpy()`)."""
from __future__ import annotations

from numbers import Number

import numpy as np

from symgrad import functional as F
from symgrad import tensor_math
from symgrad.variable import Variable


def _positive(x):
    return x


# numpy's ufunc names (ufunc.__name__: np.abs is "absolute", np.mod "remainder", np.pow
# "power", np.true_divide "divide") and the symgrad functions that compute them.
UFUNCS = {
    "add": F.add, "subtract": F.sub, "multiply": F.mul, "divide": F.div, "power": F.pow,
    "floor_divide": F.floor_divide, "remainder": F.remainder, "fmod": F.fmod,
    "maximum": F.maximum, "minimum": F.minimum, "matmul": F.matmul,
    "less": F.lt, "less_equal": F.le, "greater": F.gt, "greater_equal": F.ge, "equal": F.eq,
    "not_equal": F.ne,
    "negative": F.neg, "positive": _positive, "absolute": F.abs, "fabs": F.abs, "exp": F.exp,
    "log": F.log, "sqrt": F.sqrt, "sin": F.sin, "cos": F.cos, "tanh": F.tanh, "floor": F.floor,
    "sign": F.sign, "square": tensor_math.square, "reciprocal": tensor_math.reciprocal,
}

_OPERANDS = (Variable, np.ndarray, np.generic, Number, list, tuple)


def array_ufunc(self, ufunc, method, *inputs, **kwargs):
    """numpy's protocol: `np.sin(v)`, `np.add(arr, v)` and `arr + v` come here."""
    if not all(isinstance(x, _OPERANDS) for x in inputs):
        return NotImplemented
    where = f"numpy's {ufunc.__name__}" + ("" if method == "__call__" else f".{method}")
    fn = UFUNCS.get(ufunc.__name__)
    if method != "__call__" or fn is None:
        raise TypeError(f"{where} is not supported on symgrad Variables (it would drop the graph); use "
                        f"symgrad's operations (sg.sin(x), x.sum(), ...), or "
                        f"x.detach().numpy() for plain numbers")
    extra = {k: v for k, v in kwargs.items() if not (k in ("out", "dtype", "where") and v is None)}
    if extra.get("where") is True:
        extra.pop("where")
    if extra:
        raise TypeError(f"{where}: the keyword arguments {sorted(extra)} are not supported on symgrad "
                        f"Variables; call the symgrad operation instead")
    args = [x if isinstance(x, (Variable, Number)) or (isinstance(x, np.generic) and x.ndim == 0)
            else np.asarray(x) for x in inputs]
    args = [x.item() if isinstance(x, np.generic) else x for x in args]
    return fn(*args)


def array(self, dtype=None, copy=None):
    """`np.asarray(v)`: the value, as `v.numpy()`; refused, as in PyTorch, where `v` requires
    grad (an array would not carry its gradient)."""
    arr = self.numpy()
    if dtype is not None and arr.dtype != dtype:
        return arr.astype(dtype)
    return arr.copy() if copy else arr


def attach(variable_class) -> None:
    variable_class.__array_ufunc__ = array_ufunc
    variable_class.__array__ = array
