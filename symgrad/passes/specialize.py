"""Phase `specialize`: a node rewritten as cheaper ops that give the same bits: a power as a
product or a square root, a product with a constant as a sum, a reduction moved to walk memory
in order, a transposed product computed in the layout it is read in, a batch of products with
one matrix as one product."""
from __future__ import annotations

import numpy as np

from symgrad.dims import Dim
from symgrad.passes.canonicalize import permute_of_permute
from symgrad.passes.rewrite import is_literal, rewrite, same_type, scalar_source


def _float_power(node, exponent) -> bool:
    x, p = node.inputs
    return is_literal(p, exponent) and same_type(x, node) and node.dtype.kind == "f"


@rewrite("pow")
def pow_two(node, ctx):
    """x ** 2 is x * x: both are correctly rounded, so they give the same bits."""
    if not _float_power(node, 2):
        return None
    x = node.inputs[0]
    return ctx.make("mul", [x, x], {}, node.shape, node.dtype, origin="pow")


@rewrite("pow")
def pow_half(node, ctx):
    """x ** 0.5 is sqrt(x + 0.0), with -inf mapped to +inf: pow and sqrt differ only at -0.0
    (pow gives +0.0, which adding +0.0 makes so) and at -inf (pow gives +inf, sqrt NaN)."""
    if not _float_power(node, 0.5):
        return None
    x, dt, shape = node.inputs[0], node.dtype, node.shape
    plus = ctx.make("add", [x, ctx.literal(0.0, dt)], {}, shape, dt, origin="pow")
    root = ctx.make("sqrt", [plus], {}, shape, dt, origin="pow")
    minus_inf = ctx.make("eq", [x, ctx.literal(-np.inf, dt)], {}, shape, np.dtype(bool), origin="pow")
    return ctx.make("where", [minus_inf, ctx.literal(np.inf, dt), root], {}, shape, dt, origin="pow")


@rewrite("matmul")
def matmul_literal_to_sum(node, ctx):
    """c @ B with c a literal broadcast to a matrix (the pullback of sum(A @ B) builds ones @ B)
    is the column sum of c * B, broadcast: a pass over memory instead of a matrix product.

    The scale multiplies each element before the sum, as the product does (c * sum(B) would
    round differently and can overflow where the product does not)."""
    for side, other, axis in ((0, 1, -2), (1, 0, -1)):
        lit = scalar_source(node.inputs[side])
        if lit is None:
            continue
        x = node.inputs[other]
        nd = len(x.shape)
        summed_shape = tuple(1 if k == nd + axis else n for k, n in enumerate(x.shape))
        if lit.value != 1:
            x = ctx.make("mul", [x, lit], {}, x.shape, node.dtype, origin="matmul")
        summed = ctx.make("sum", [x], {"axes": (nd + axis,), "keepdim": True}, summed_shape,
                          node.dtype, origin="matmul")
        if reduce_in_memory_order.name in ctx.enabled:
            summed = reduce_in_memory_order(summed, ctx) or summed
        return ctx.make("broadcast_to", [summed], {"shape": node.shape}, node.shape, node.dtype,
                        origin="matmul")
    return None


@rewrite("sum", "max", "min")
def reduce_in_memory_order(node, ctx):
    """reduce(permute(x)) is permute(reduce(x)): the reduction then walks x in memory order
    (a sum over a transposed matrix's rows reads the matrix by rows, not by columns)."""
    x = node.inputs[0]
    if x.op != "permute":
        return None
    perm, source = x.attrs["perm"], x.inputs[0]
    axes = tuple(sorted(perm[a] for a in node.attrs["axes"]))
    kept_shape = tuple(1 if k in axes else n for k, n in enumerate(source.shape))
    inner = ctx.make(node.op, [source], {"axes": axes, "keepdim": True}, kept_shape, node.dtype,
                     origin=node.origin)
    moved_shape = tuple(kept_shape[p] for p in perm)
    out = ctx.make("permute", [inner], {"perm": perm}, moved_shape, node.dtype, origin=node.origin)
    if moved_shape != node.shape:
        out = ctx.make("reshape", [out], {"shape": node.shape}, node.shape, node.dtype,
                       origin=node.origin)
    return out


def _swap_last(x, ctx):
    """x with its last two dims swapped (a permute of a permute folded into one)."""
    nd = len(x.shape)
    node = ctx.make("permute", [x], {"perm": tuple(range(nd - 2)) + (nd - 1, nd - 2)},
                    x.shape[:-2] + (x.shape[-1], x.shape[-2]), x.dtype, origin=x.origin)
    if x.op == "permute" and permute_of_permute.name in ctx.enabled:
        node = permute_of_permute(node, ctx) or node
    return node


@rewrite("permute")
def permute_of_matmul(node, ctx):
    """(a @ b) with its last two dims swapped is swap(b) @ swap(a): the product is computed in
    the layout its reader wants, instead of stored one way and read across (a gradient of
    x @ W.T is (g.T @ x).T: its reader, the optimizer's update, would stride through it).
    Every element is the same products added in the same order, so the bits are the same.

    Only where nothing else reads the product (else it would be computed twice)."""
    inner = node.inputs[0]
    if inner.op != "matmul" or ctx.users(inner) != 1:
        return None
    nd = len(node.shape)
    if nd < 2 or node.attrs["perm"] != tuple(range(nd - 2)) + (nd - 1, nd - 2):
        return None
    a, b = inner.inputs
    return ctx.make("matmul", [_swap_last(b, ctx), _swap_last(a, ctx)], inner.attrs, node.shape, node.dtype,
                    name=node.name, origin=inner.origin)


# Operands whose elements a merge of their leading dims would have to copy into memory order
# first (a stored value, or a reshape of one, is read in place: codegen/schedule.py).
_REORDERING = ("permute", "broadcast_to", "slice")


def _rows_in_order(x):
    """What x's rows, its leading dims merged, are a reshape of without moving an element: x,
    or what x reshapes; None where they are out of memory order (or x is a literal)."""
    if x.op in _REORDERING or scalar_source(x) is not None or any(isinstance(d, Dim) for d in x.shape):
        return None
    return x.inputs[0] if x.op == "reshape" else x


def _stacked(x, ctx):
    source = _rows_in_order(x)
    rows = int(np.prod(x.shape[:-1]))
    return ctx.make("reshape", [source], {"shape": (rows, x.shape[-1])}, (rows, x.shape[-1]), x.dtype,
                    origin=x.origin)


@rewrite("matmul")
def matmul_batch_as_rows(node, ctx):
    """a @ b with a batch of matrices a[..., m, k] and one matrix b[k, n] (a linear layer over a
    sequence) is one product of a's rows stacked, (batch * m) x k @ k x n, reshaped: one call
    that packs b once rather than once a matrix, its rows shared among threads. Each element
    is the same k products, but added in the order BLAS picks for the larger product (OpenBLAS
    has kernels for small products that add in another order): with sum_of_batch_products,
    the rewrites here that can change the last bits of a result, as a different BLAS would.

    Not where a's rows are not in memory order (they would be copied first), nor over named
    dims (symgrad.dims: the stacked rows would split one)."""
    a, b = node.inputs
    if len(b.shape) != 2 or len(a.shape) < 3 or _rows_in_order(a) is None:
        return None
    flat = ctx.make("matmul", [_stacked(a, ctx), b], node.attrs, (int(np.prod(a.shape[:-1])), b.shape[-1]),
                    node.dtype, origin=node.origin)
    return ctx.make("reshape", [flat], {"shape": node.shape}, node.shape, node.dtype, name=node.name,
                    origin=node.origin)


@rewrite("sum")
def sum_of_batch_products(node, ctx):
    """The sum over a batch of a[i].T @ g[i] (the gradient of a matrix applied to a batch: a
    linear layer's weight over a sequence) is one product with the batch stacked along k,
    a.T @ g with a and g's rows stacked: one BLAS call adding all batch * m terms, instead of
    a product per matrix, each stored, and a pass adding them up. The terms are added in
    BLAS's order in float rather than product by product, then in double: within the
    rounding of either, not the same bits.

    Only where nothing else reads the products, and a's and g's rows are in memory order."""
    x = node.inputs[0]
    if x.op != "matmul" or ctx.users(x) != 1 or len(x.shape) < 3:
        return None
    nb = len(x.shape) - 2
    at, g = x.inputs
    swap = tuple(range(nb)) + (nb + 1, nb)
    if tuple(node.attrs["axes"]) != tuple(range(nb)) or at.op != "permute" or at.attrs["perm"] != swap:
        return None
    a = at.inputs[0]
    if a.shape[:-2] != x.shape[:-2] or g.shape[:-2] != x.shape[:-2]:
        return None             # a batch dim broadcast: not a stack of the same rows
    if _rows_in_order(a) is None or _rows_in_order(g) is None:
        return None
    sa = _stacked(a, ctx)
    left = ctx.make("permute", [sa], {"perm": (1, 0)}, sa.shape[::-1], sa.dtype, origin=at.origin)
    prod = ctx.make("matmul", [left, _stacked(g, ctx)], x.attrs, x.shape[-2:], node.dtype, origin=x.origin)
    if prod.shape == node.shape:
        return prod
    return ctx.make("reshape", [prod], {"shape": node.shape}, node.shape, node.dtype, name=node.name,
                    origin=node.origin)


def _rows_pieces(x):
    """The pieces of x's rows: what x concatenates along its first dim, or x itself."""
    return list(x.inputs) if x.op == "concat" and x.attrs["axis"] == 0 else [x]


def _transposed_product(x, ctx):
    """(a, g) where x is a.T @ g of matrices read by nothing else (a weight's gradient from
    one batch), else None."""
    if x.op != "matmul" or len(x.shape) != 2 or ctx.users(x) not in (None, 1):
        return None
    at, g = x.inputs
    if at.op != "permute" or at.attrs["perm"] != (1, 0) or len(g.shape) != 2:
        return None
    a = at.inputs[0]
    if any(isinstance(d, Dim) for d in a.shape + g.shape) or a.dtype != g.dtype or a.dtype != x.dtype:
        return None
    return a, g


@rewrite("add")
def sum_of_products(node, ctx):
    """a1.T @ g1 + a2.T @ g2 is one product, [a1; a2].T @ [g1; g2], the batches' rows stacked
    along k: a weight's gradient summed over the steps of a sequence (an RNN's, once a step)
    becomes one BLAS call over all of them, instead of a product a step, each stored and
    added. Where it pays: stacking copies k * (m + n) elements of each batch of k rows, a
    product of its own stores and adds m * n, and BLAS runs a product of few rows (k) well
    under its speed (512x32 by 32x512: 59 GFLOP/s a step, 92 stacked over 63 steps). Like
    sum_of_batch_products, the terms are added in BLAS's order in one call: within the
    rounding of the sum, not the same bits.

    Only where nothing else reads the products, every batch has fewer rows than
    m * n / (m + n), and over static shapes."""
    if len(node.inputs) != 2 or len(node.shape) != 2:
        return None
    terms = [_transposed_product(x, ctx) for x in node.inputs]
    if None in terms or any(x.shape != node.shape for x in node.inputs):
        return None
    m, n = node.shape
    a_parts = [p for a, _ in terms for p in _rows_pieces(a)]
    g_parts = [p for _, g in terms for p in _rows_pieces(g)]
    if any(p.shape[0] * (m + n) >= m * n for p in a_parts):
        return None
    rows = sum(p.shape[0] for p in a_parts)
    a = ctx.make("concat", a_parts, {"axis": 0}, (rows, m), node.dtype, origin=node.origin)
    g = ctx.make("concat", g_parts, {"axis": 0}, (rows, n), node.dtype, origin=node.origin)
    at = ctx.make("permute", [a], {"perm": (1, 0)}, (m, rows), node.dtype, origin=node.origin)
    return ctx.make("matmul", [at, g], {}, node.shape, node.dtype, name=node.name, origin=node.origin)


REWRITES = (pow_two, pow_half, matmul_literal_to_sum, reduce_in_memory_order, permute_of_matmul,
            matmul_batch_as_rows, sum_of_batch_products, sum_of_products)
