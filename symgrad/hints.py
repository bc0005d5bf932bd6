"""The types the public functions' hints name: what a tensor argument may be, dimensions and dtypes."""
from __future__ import annotations

from numbers import Number
from typing import Any, Union

import numpy as np

from symgrad.variable import Variable

# A tensor argument: a Variable, or what converts to one (a number, an array, nested lists).
TensorLike = Union[Variable, Number, np.ndarray, list]
# A dimension or several (a reduction's `dim`), or None for all of them.
Dims = Union[int, tuple, list, None]
# A dtype: symgrad's (sg.float32), numpy's, its name ("float32"), or None for the default.
DTypeLike = Any
