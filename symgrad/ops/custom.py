"""The node of a custom `sg.autograd.Function`: one primitive whose value is its first input
(the graph that the user's `forward` traced, with gradients off) and whose pullback is the
graph that the user's `backward` traces on the cotangent.

Its other inputs are the Variables given to `apply`, so that the gradient reaches them; they
carry no value into the node. The attribute `fn` is the call's record (made by
symgrad.autograd.function), which builds the pullback: `fn.pullback(g, node, needs)` gives
one cotangent per input, the first (to the traced forward, which needs none in a real graph)
being `g` itself, as the value rule says. Lowering to kernels replaces the node by its first
input (codegen/ir.py), so a custom function compiles with the rest of its graph."""
from __future__ import annotations

from symgrad.ops.registry import Op, register


def _infer(value, *inputs, fn):
    return tuple(value.shape), value.dtype


def _impl(value, *inputs, fn):
    return value


def _vjp(g, node, needs):
    return tuple(node.attrs["fn"].pullback(g, node, needs))


CUSTOM = register(Op("custom_function", "reshape", _infer, _impl, _vjp, "Custom", attrs=("fn",),
                     user_vjp=True,
                     doc="A custom sg.autograd.Function's call: forward's value, backward's pullback."))
