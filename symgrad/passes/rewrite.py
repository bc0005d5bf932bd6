"""What a rewrite is: a small function from one node to an equal node (or None where it does
not apply), named after the identity it applies, and what it gets to build nodes with."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

LEAVES = ("arg", "const", "literal")     # nodes no rewrite applies to


@dataclass(frozen=True)
class Rewriting:
    """What a rewrite is given beside the node: `make` builds a node (sharing one already
    made if equal: common subexpressions stay shared), `enabled` names the rewrites that
    run, for a rewrite that applies another one itself, and `users` how many nodes of the
    graph read a node (None when not known: a node a rewrite has just built), for a rewrite
    that pays only where its operand has no other reader."""
    make: Callable
    enabled: frozenset
    users: Callable = lambda node: None

    def literal(self, value, dtype):
        """A literal of `dtype` holding `value`, rounded to that dtype as C would hold it."""
        return self.make("literal", [], {}, (), dtype, value=np.asarray(value, dtype).item())


@dataclass(frozen=True)
class Rewrite:
    name: str
    fn: Callable          # (node, Rewriting) -> an equal node, or None where it does not apply
    ops: frozenset | None  # the ops it can apply to; None: it checks for itself
    doc: str

    def __call__(self, node, ctx: Rewriting):
        return self.fn(node, ctx)


def rewrite(*ops: str):
    """Makes a function a Rewrite named after it, tried only on nodes of `ops` (any, if none)."""
    def make(fn) -> Rewrite:
        doc = (fn.__doc__ or "").strip().split("\n\n")[0]
        return Rewrite(fn.__name__, fn, frozenset(ops) or None, " ".join(doc.split()))
    return make


# --- what rewrites look for -------------------------------------------------------------------

def scalar_source(n):
    """The literal behind a broadcast or reshape of a literal, if `n` is one (else None)."""
    while n.op in ("broadcast_to", "reshape"):
        n = n.inputs[0]
    return n if n.op == "literal" else None


def is_literal(n, value=None) -> bool:
    return n.op == "literal" and (value is None or n.value == value)


def same_type(x, node) -> bool:
    """Whether `x` can stand for `node`: the same shape and dtype."""
    return x.shape == node.shape and x.dtype == node.dtype
