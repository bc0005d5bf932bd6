"""The code generator's IR: the graph between a compiled function's arguments and outputs,
copied out of the user's Variables (which passes must not touch), deduplicated, and
simplified by named passes that run in order and can be switched off one by one
(`SYMGRAD_DISABLE_PASSES=fold,algebra`)."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from symgrad.graph import toposort
from symgrad.ops import OPS


@dataclass(eq=False)
class Node:
    op: str                      # "arg", "const", "literal" or a primitive's name
    inputs: list
    attrs: dict
    shape: tuple
    dtype: np.dtype
    name: str | None = None
    value: object = None         # a literal's number, a constant's array
    index: int = -1              # an argument's position
    origin: str = ""             # what the user's graph called it, for comments

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def key(self):
        attrs = tuple(sorted((k, str(v)) for k, v in self.attrs.items()))
        return (self.op, attrs, tuple(id(i) for i in self.inputs), self.shape, str(self.dtype))


@dataclass
class Graph:
    args: list
    outputs: list
    consts: list = field(default_factory=list)

    def nodes(self):
        return toposort(self.outputs)


class _Builder:
    """Copies Variables into Nodes, sharing structurally equal ones (common subexpressions)."""

    def __init__(self):
        self.table = {}

    def make(self, op, inputs, attrs, shape, dtype, **kw):
        node = Node(op, list(inputs), dict(attrs), tuple(shape), np.dtype(dtype), **kw)
        if op in ("arg", "const"):
            return node
        key = ("lit", str(node.dtype), repr(node.value)) if op == "literal" else node.key()
        return self.table.setdefault(key, node)


def lower(args, outputs) -> Graph:
    """The graph from Variables `args` to `outputs` as Nodes. Leaves that are not
    arguments become constants (their values are captured now)."""
    b = _Builder()
    memo = {}
    graph = Graph([], [])
    for k, a in enumerate(args):
        memo[id(a)] = b.make("arg", [], {}, a.shape, a.dtype, name=a.name, index=k)
        graph.args.append(memo[id(a)])
    for v in toposort(outputs, lambda v: id(v) in memo):
        if id(v) in memo:
            continue
        if v.op is None:
            if v._value is None:
                raise ValueError(f"sg.compile: the graph needs {v._describe()}, which is not among "
                                 f"the inputs; add it to the inputs")
            if v._literal or v.numel() == 1 and v.ndim == 0:
                memo[id(v)] = b.make("literal", [], {}, (), v.dtype, value=v.value().item())
            else:
                node = b.make("const", [], {}, v.shape, v.dtype, name=v.name,
                              value=np.ascontiguousarray(v.value()))
                graph.consts.append(node)
                memo[id(v)] = node
        else:
            memo[id(v)] = b.make(v.op, [memo[id(i)] for i in v.inputs], v.attrs, v.shape, v.dtype,
                                 name=v.name, origin=v.op)
    graph.outputs = [memo[id(o)] for o in outputs]
    return optimize(graph, b)


# --- passes --------------------------------------------------------------------------------

def _literal(b, value, dtype):
    return b.make("literal", [], {}, (), dtype, value=np.asarray(value, dtype).item())


def _is_lit(n, value=None):
    return n.op == "literal" and (value is None or n.value == value)


def fold_constants(node, b):
    """Ops whose inputs are all literals become literals."""
    if node.inputs and OPS[node.op].kind == "elementwise" and node.op != "check_range":
        lits = [_scalar_source(i) for i in node.inputs]
        if all(lit is not None for lit in lits):
            with np.errstate(all="ignore"):
                value = OPS[node.op].impl(*(np.asarray(i.value, i.dtype) for i in lits), **node.attrs)
            lit = _literal(b, value, node.dtype)
            if node.shape == ():
                return lit
            return b.make("broadcast_to", [lit], {"shape": node.shape}, node.shape, node.dtype)
    return node


def _scalar_source(n):
    """The literal behind a broadcast or reshape of a literal, if `n` is one."""
    while n.op in ("broadcast_to", "reshape"):
        n = n.inputs[0]
    return n if n.op == "literal" else None


def _reduce_in_memory_order(node, b):
    """reduce(permute(x)) as permute(reduce(x)): the reduction then walks x in memory order
    (a sum over a transposed matrix's rows reads the matrix by rows, not by columns)."""
    x = node.inputs[0]
    if node.op not in ("sum", "max", "min") or x.op != "permute":
        return node
    perm, source = x.attrs["perm"], x.inputs[0]
    axes = tuple(sorted(perm[a] for a in node.attrs["axes"]))
    kept_shape = tuple(1 if k in axes else n for k, n in enumerate(source.shape))
    inner = b.make(node.op, [source], {"axes": axes, "keepdim": True}, kept_shape, node.dtype,
                   origin=node.origin)
    moved_shape = tuple(kept_shape[p] for p in perm)
    out = b.make("permute", [inner], {"perm": perm}, moved_shape, node.dtype, origin=node.origin)
    if moved_shape != node.shape:
        out = b.make("reshape", [out], {"shape": node.shape}, node.shape, node.dtype, origin=node.origin)
    return out


# The operand positions where a literal can be dropped: x + e, e + x, x - e, x * e, e * x, x / e.
_IDENTITY_OPERAND = {"add": (0, 1), "sub": (1,), "mul": (0, 1), "div": (1,)}


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


def _sqrt_as_pow(x, node, b):
    """pow(x, 0.5) as sqrt, exactly: they differ only at -0.0 (pow gives +0.0: adding +0.0
    makes it so) and at -inf (pow gives +inf, sqrt NaN)."""
    dt, shape = node.dtype, node.shape
    plus = b.make("add", [x, _literal(b, 0.0, dt)], {}, shape, dt, origin="pow")
    root = b.make("sqrt", [plus], {}, shape, dt, origin="pow")
    minus_inf = b.make("eq", [x, _literal(b, -np.inf, dt)], {}, shape, np.dtype(bool), origin="pow")
    return b.make("where", [minus_inf, _literal(b, np.inf, dt), root], {}, shape, dt, origin="pow")


def simplify_algebra(node, b):
    """Identities that keep the results bit for bit in IEEE arithmetic (signed zeros, inf and
    NaN included; no reassociation), so that turning the pass off changes no bit."""
    op, ins = node.op, node.inputs
    if ins and OPS.get(op) is not None and OPS[op].kind == "elementwise":
        lits = [_scalar_source(i) for i in ins]
        if any(lit is not None and lit is not i for lit, i in zip(lits, ins)):
            new = [lit or i for lit, i in zip(lits, ins)]
            shapes = [i.shape for i in new if i.op != "literal"]
            from symgrad.ops.elementwise import broadcast_shapes
            if shapes and broadcast_shapes(op, *shapes) == node.shape:
                return b.make(op, new, node.attrs, node.shape, node.dtype, name=node.name,
                              origin=node.origin)
    same = lambda x: x.shape == node.shape and x.dtype == node.dtype  # noqa: E731
    if op == "stop_gradient":
        return ins[0]
    for k in range(len(ins) if op in _IDENTITY_OPERAND else 0):
        if k in _IDENTITY_OPERAND[op] and _is_identity(ins[k], op) and same(ins[1 - k]):
            return ins[1 - k]
    if op == "where":
        lit = _scalar_source(ins[0])
        if lit is not None:              # a known condition picks its branch
            pick = ins[1] if lit.value else ins[2]
            if pick.dtype == node.dtype and pick.shape == node.shape:
                return pick
            return b.make("broadcast_to", [pick], {"shape": node.shape}, node.shape, node.dtype,
                          origin=node.origin)
    if op == "pow" and _is_lit(ins[1]) and same(ins[0]) and node.dtype.kind == "f":
        p, x = ins[1].value, ins[0]
        if p == 1:
            return x
        if p == 2:                       # both correctly rounded: the same bits
            return b.make("mul", [x, x], {}, node.shape, node.dtype, origin="pow")
        if p == 0.5:
            return _sqrt_as_pow(x, node, b)
    if op == "matmul":
        # c @ B with c a constant (the pullback of sum(A @ B) builds ones @ B) is a column sum of
        # c * B, broadcast: a pass over memory instead of a matrix product. The scale multiplies
        # each element before the sum, as the product does (c * sum(B) would round differently
        # and can overflow where the product does not).
        for side, other, axis in ((0, 1, -2), (1, 0, -1)):
            lit = _scalar_source(ins[side])
            if lit is not None:
                x = ins[other]
                nd = len(x.shape)
                summed_shape = tuple(1 if k == nd + axis else n for k, n in enumerate(x.shape))
                if lit.value != 1:
                    x = b.make("mul", [x, lit], {}, x.shape, node.dtype, origin="matmul")
                summed = b.make("sum", [x], {"axes": (nd + axis,), "keepdim": True}, summed_shape,
                                node.dtype, origin="matmul")
                summed = _reduce_in_memory_order(summed, b)
                return b.make("broadcast_to", [summed], {"shape": node.shape}, node.shape, node.dtype,
                              origin="matmul")
    if op in ("sum", "max", "min") and ins[0].op == "permute":
        moved = _reduce_in_memory_order(node, b)
        if moved is not node:
            return moved
    if op == "reshape":
        inner = ins[0]
        if inner.shape == node.shape:
            return inner
        if inner.op == "reshape":
            return b.make("reshape", [inner.inputs[0]], node.attrs, node.shape, node.dtype)
    if op == "broadcast_to" and ins[0].shape == node.shape:
        return ins[0]
    if op == "permute" and ins[0].op == "permute":
        inner = ins[0]
        perm = tuple(inner.attrs["perm"][p] for p in node.attrs["perm"])
        if perm == tuple(range(len(perm))):
            return inner.inputs[0]
        return b.make("permute", [inner.inputs[0]], {"perm": perm}, node.shape, node.dtype)
    return node


PASSES = [("fold", fold_constants), ("algebra", simplify_algebra)]


def optimize(graph: Graph, b: _Builder) -> Graph:
    disabled = set(filter(None, os.environ.get("SYMGRAD_DISABLE_PASSES", "").split(",")))
    passes = [fn for name, fn in PASSES if name not in disabled]
    if not passes:
        return graph
    new = {}
    for n in toposort(graph.outputs):
        if n.op in ("arg", "const", "literal"):
            new[id(n)] = n
            continue
        ins = [new[id(i)] for i in n.inputs]
        cur = n if all(a is c for a, c in zip(ins, n.inputs)) else \
            b.make(n.op, ins, n.attrs, n.shape, n.dtype, name=n.name, origin=n.origin)
        while True:
            nxt = cur
            for fn in passes:
                nxt = fn(nxt, b)
                if nxt.op in ("arg", "const", "literal"):
                    break
            if nxt is cur:
                break
            cur = nxt
        if cur.name is None and n.name:
            cur.name = n.name
        new[id(n)] = cur
    graph.outputs = [new[id(o)] for o in graph.outputs]
    return graph
