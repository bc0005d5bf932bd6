"""Phase `fold`: values known when compiling are computed when compiling."""
from __future__ import annotations

import numpy as np

from symgrad.ops import OPS
from symgrad.passes.rewrite import rewrite, scalar_source


@rewrite()
def fold_constants(node, ctx):
    """An elementwise op whose inputs are all literals (or broadcasts of them) is a literal,
    computed by the op's numpy rule in the node's dtype, broadcast to the node's shape.

    check_range is kept: it is there to fail at run time."""
    if not node.inputs or node.op == "check_range" or OPS[node.op].kind != "elementwise":
        return None
    lits = [scalar_source(i) for i in node.inputs]
    if any(lit is None for lit in lits):
        return None
    with np.errstate(all="ignore"):
        value = OPS[node.op].impl(*(np.asarray(i.value, i.dtype) for i in lits), **node.attrs)
    lit = ctx.literal(value, node.dtype)
    if node.shape == ():
        return lit
    return ctx.make("broadcast_to", [lit], {"shape": node.shape}, node.shape, node.dtype)


REWRITES = (fold_constants,)
