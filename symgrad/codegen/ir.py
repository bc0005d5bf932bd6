"""The code generator's IR: the graph between a compiled function's arguments and outputs,
copied out of the user's Variables (which passes must not touch) and deduplicated: the
pipeline's first phase, `lower`. The passes that follow (symgrad/passes) rewrite it; they
can be switched off by name (`SYMGRAD_DISABLE_PASSES=fold,algebra`) and the graph printed
after any of them (`format_graph`, `SYMGRAD_PRINT_AFTER`)."""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

import numpy as np

from symgrad import passes
from symgrad.graph import toposort


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
        # (the dtype itself, not its name: numpy's str() of a dtype costs microseconds)
        return (self.op, attrs, tuple(id(i) for i in self.inputs), self.shape, self.dtype)


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
        key = ("lit", node.dtype, repr(node.value)) if op == "literal" else node.key()
        return self.table.setdefault(key, node)


def lower(args, outputs, after: str | None = None) -> Graph:
    """The graph from Variables `args` to `outputs` as Nodes, put through the passes.
    With `after`, only the passes up to and including that one run (for printing);
    without it, the graphs SYMGRAD_PRINT_AFTER asks for are printed to stderr first."""
    if after is None:
        for name in passes.printed_after():
            text = format_graph(lower(args, outputs, after=name).outputs)
            print(f"symgrad: the graph after {name}:\n{text}", file=sys.stderr)
    graph, b = _copy(args, outputs)
    return passes.run(graph, b.make, passes.configured(upto=after))


def _copy(args, outputs) -> tuple[Graph, _Builder]:
    """Leaves that are not arguments become constants (their values are captured now)."""
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
        elif v.op == "custom_function":     # a custom autograd.Function: its forward's value
            memo[id(v)] = memo[id(v.inputs[0])]
        else:
            memo[id(v)] = b.make(v.op, [memo[id(i)] for i in v.inputs], v.attrs, v.shape, v.dtype,
                                 name=v.name, origin=v.op)
    graph.outputs = [memo[id(o)] for o in outputs]
    return graph, b


# --- printing ----------------------------------------------------------------------------------

def node_label(n: Node) -> str:
    """What a node is, for a line of format_graph: an argument's position, a literal's value,
    an op and its attributes, and the op a rewrite built it for (`from pow`)."""
    if n.op == "arg":
        return f"input {n.index}"
    if n.op == "const":
        return "constant"
    if n.op == "literal":
        return repr(n.value)
    attrs = ", ".join(f"{k}={v}" for k, v in n.attrs.items())
    text = f"{n.op}({attrs})" if attrs else n.op
    return text + (f" (from {n.origin})" if n.origin and n.origin != n.op else "")


def format_graph(outputs, label=node_label) -> str:
    """A graph as indented text, one node a line, outputs first, with shapes and dtypes; a
    node already printed is referred to by its number. Works for Nodes and, with another
    `label`, for Variables (sg.debugprint)."""
    lines, numbers = [], {}
    stack = [(out, 0) for out in reversed(list(outputs))]   # depth first, as written out
    while stack:
        v, depth = stack.pop()
        pad = "  " * depth
        desc = f"{label(v)}  {v.shape} {v.dtype.name}"     # numpy's or symgrad's dtype: "float32"
        if id(v) in numbers:
            lines.append(f"{pad}#{numbers[id(v)]} {desc} (see above)")
            continue
        numbers[id(v)] = len(numbers)
        name = f" '{v.name}'" if v.name else ""
        lines.append(f"{pad}#{numbers[id(v)]}{name} {desc}")
        stack.extend((i, depth + 1) for i in reversed(v.inputs))
    return "\n".join(lines)
