"""Phase `canonicalize`: identities that remove work or spell a node one way, each exact in
IEEE arithmetic (signed zeros, inf and NaN included; nothing is reassociated), so that
turning any of them off changes no bit of any result."""
from __future__ import annotations

import numpy as np

from symgrad.ops import OPS
from symgrad.ops.elementwise import broadcast_shapes
from symgrad.passes.rewrite import is_literal, rewrite, same_type, scalar_source


@rewrite()
def literal_operands(node, ctx):
    """A broadcast (or reshape) of a literal feeding an elementwise op is the literal itself:
    the op broadcasts scalars anyway, and the later rewrites look for literal operands.

    Kept where the other operands alone would not give the node its shape."""
    op, ins = node.op, node.inputs
    if not ins or OPS.get(op) is None or OPS[op].kind != "elementwise":
        return None
    lits = [scalar_source(i) for i in ins]
    if not any(lit is not None and lit is not i for lit, i in zip(lits, ins)):
        return None
    new = [lit or i for lit, i in zip(lits, ins)]
    shapes = [i.shape for i in new if i.op != "literal"]
    if not shapes or broadcast_shapes(op, *shapes) != node.shape:
        return None
    return ctx.make(op, new, node.attrs, node.shape, node.dtype, name=node.name, origin=node.origin)


@rewrite("stop_gradient")
def stop_gradient(node, ctx):
    """stop_gradient(x) is x: the graph is differentiated before it is lowered."""
    return node.inputs[0]


def _is_identity(n, op) -> bool:
    """Whether literal `n` is an exact identity element of `op` in IEEE arithmetic: x * 1 and
    x / 1 are x; x + (-0.0) is x but x + 0.0 is not (-0.0 + 0.0 is +0.0), and x - 0.0 is x
    but x - (-0.0) is not. Integers and bools have one zero."""
    if n.op != "literal":
        return False
    v = n.value
    if op in ("mul", "div"):
        return v == 1
    if v != 0:
        return False
    if n.dtype.kind != "f":
        return True
    return bool(np.signbit(v)) == (op == "add")


def _drop_identity(node, positions):
    """The other operand, where the literal at one of `positions` is `node.op`'s identity."""
    for k in positions:
        other = node.inputs[1 - k]
        if _is_identity(node.inputs[k], node.op) and same_type(other, node):
            return other
    return None


@rewrite("add")
def add_negative_zero(node, ctx):
    """x + (-0.0) and (-0.0) + x are x (and x + 0 for integers); x + 0.0 is not: at x = -0.0
    it is +0.0."""
    return _drop_identity(node, (0, 1))


@rewrite("sub")
def sub_zero(node, ctx):
    """x - 0.0 is x (x - (-0.0) is not: at x = -0.0 it is +0.0)."""
    return _drop_identity(node, (1,))


@rewrite("mul")
def mul_one(node, ctx):
    """x * 1 and 1 * x are x."""
    return _drop_identity(node, (0, 1))


@rewrite("div")
def div_one(node, ctx):
    """x / 1 is x."""
    return _drop_identity(node, (1,))


@rewrite("where")
def where_known_condition(node, ctx):
    """where(c, a, b) with c a literal is a (or b), broadcast to the node's shape."""
    lit = scalar_source(node.inputs[0])
    if lit is None:
        return None
    pick = node.inputs[1] if lit.value else node.inputs[2]
    if pick.dtype == node.dtype and pick.shape == node.shape:
        return pick
    return ctx.make("broadcast_to", [pick], {"shape": node.shape}, node.shape, node.dtype,
                    origin=node.origin)


@rewrite("pow")
def pow_one(node, ctx):
    """x ** 1 is x, for floating x."""
    x, p = node.inputs
    if is_literal(p, 1) and same_type(x, node) and node.dtype.kind == "f":
        return x
    return None


@rewrite("reshape")
def noop_reshape(node, ctx):
    """A reshape to the shape its input has is the input."""
    inner = node.inputs[0]
    return inner if inner.shape == node.shape else None


@rewrite("reshape")
def reshape_of_reshape(node, ctx):
    """reshape(reshape(x)) is one reshape of x."""
    inner = node.inputs[0]
    if inner.op != "reshape":
        return None
    return ctx.make("reshape", [inner.inputs[0]], node.attrs, node.shape, node.dtype)


@rewrite("broadcast_to")
def noop_broadcast(node, ctx):
    """A broadcast to the shape its input has is the input."""
    inner = node.inputs[0]
    return inner if inner.shape == node.shape else None


@rewrite("permute")
def permute_of_permute(node, ctx):
    """permute(permute(x)) is one permute of x, or x itself when the two undo each other."""
    inner = node.inputs[0]
    if inner.op != "permute":
        return None
    perm = tuple(inner.attrs["perm"][p] for p in node.attrs["perm"])
    if perm == tuple(range(len(perm))):
        return inner.inputs[0]
    return ctx.make("permute", [inner.inputs[0]], {"perm": perm}, node.shape, node.dtype)


REWRITES = (literal_operands, stop_gradient, add_negative_zero, sub_zero, mul_one, div_one,
            where_known_condition, pow_one, noop_reshape, reshape_of_reshape, noop_broadcast,
            permute_of_permute)
