"""`a * b + c` rounded once, as a fused multiply-add gives it, in numpy: what PyTorch's kernels
compute where symgrad must give their numbers bit for bit (linspace, the random distributions)."""
from __future__ import annotations

import numpy as np


def fma(a, b, c) -> np.ndarray:
    """a * b + c rounded once, in the dtype of `a` (float32 or float64). float32: the product
    of two float32 is exact in float64, so one float64 sum rounded to float32. float64: the
    product's and the sum's rounding errors recovered exactly (Dekker's product, Knuth's sum)
    and added back."""
    if np.asarray(a).dtype == np.float32:
        wide = np.asarray(a, np.float64) * np.asarray(b, np.float64) + np.asarray(c, np.float64)
        return wide.astype(np.float32)
    a, b, c = (np.asarray(v, np.float64) for v in (a, b, c))
    p = a * b
    ah, al = _halves(a)
    bh, bl = _halves(b)
    p_err = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    s = p + c
    v = s - p
    s_err = (p - (s - v)) + (c - v)
    return s + (p_err + s_err)


def _halves(x):
    """x split into a high part of 26 bits and the rest (Dekker's split by 2**27 + 1)."""
    t = 134217729.0 * x
    high = t - (t - x)
    return high, x - high
