"""Batched matrix product: (..., m, k) @ (..., k, n), batch dimensions broadcast.
1-D operands are handled by the front end with reshapes."""
from __future__ import annotations

import numpy as np

import symgrad.ops.builders as G
from symgrad import blas
from symgrad.ops.elementwise import broadcast_shapes
from symgrad.ops.registry import Op, register


def _infer(a, b):
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError(f"matmul primitive needs 2-D or batched operands, got {a.shape} and {b.shape}")
    if a.dtype != b.dtype:
        raise TypeError(f"matmul: operands must share a dtype, got {a.dtype} and {b.dtype}")
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned: "
                         f"{a.shape[-1]} (last dim of the first) != {b.shape[-2]} "
                         f"(second-to-last dim of the second)")
    try:
        batch = broadcast_shapes("matmul", a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: the batch dims of shapes {a.shape} and {b.shape} cannot be broadcast "
                         f"together ({a.shape[:-2]} and {b.shape[:-2]})") from None
    return batch + (a.shape[-2], b.shape[-1]), a.dtype


def _vjp(g, node, needs):
    a, b = node.inputs
    return (G.sum_to(G.matmul(g, G.swap_last(b)), a.shape) if needs[0] else None,
            G.sum_to(G.matmul(G.swap_last(a), g), b.shape) if needs[1] else None)


def _matmul(a, b):
    """np.matmul; a product under BLAS_SHARE_MIN multiply-adds on the calling thread alone, as
    compiled code runs it (symgrad.blas.serial)."""
    a, b = np.asarray(a), np.asarray(b)
    work = a.shape[-2] * a.shape[-1] * b.shape[-1] * max(np.prod(a.shape[:-2], dtype=np.int64),
                                                          np.prod(b.shape[:-2], dtype=np.int64))
    return blas.serial(np.matmul, a, b) if work < blas.BLAS_SHARE_MIN else np.matmul(a, b)


register(Op("matmul", "matmul", _infer, _matmul, _vjp, "Mm"))
