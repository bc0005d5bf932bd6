"""Walking graphs of nodes (symgrad.node): topological order, and the structural key that
compiled code is cached by."""
from __future__ import annotations

import hashlib

import numpy as np


def toposort(outputs, is_boundary=None):
    """Nodes reachable from `outputs`, inputs before users (depth first, each node's inputs in
    order). Nodes where `is_boundary` holds are listed but not looked through."""
    order, seen = [], set()
    add, append = seen.add, order.append
    for root in outputs:
        if id(root) in seen:
            continue
        add(id(root))
        # (node, iterator over the inputs not yet looked at): a node is listed once they all are
        stack = [(root, iter(() if is_boundary is not None and is_boundary(root) else root.inputs))]
        while stack:
            for i in stack[-1][1]:
                if id(i) not in seen:
                    add(id(i))
                    stack.append((i, iter(() if is_boundary is not None and is_boundary(i) else i.inputs)))
                    break
            else:
                append(stack.pop()[0])
    return order


def graph_order(outputs, args) -> list:
    """The nodes between `args` and `outputs` (toposort stopping at the arguments): what
    structure_key and captured_constants walk, which one walk can serve both."""
    given = {id(a) for a in args}
    return toposort(outputs, lambda v: id(v) in given)


def structure_key(outputs, args, names=False, order=None, grads=False) -> str:
    """A hash of the graph between `args` and `outputs`: ops, attributes, shapes, dtypes and
    literal values, never the values of arguments. Equal keys compute the same function.
    `order`: graph_order(outputs, args), when the caller has it. With `grads`, which nodes
    require grad too (the arguments' flags included): what the gradient graph follows."""
    index = {id(a): n for n, a in enumerate(args)}
    shape_text = tuple.__repr__          # (a Size formats as its tuple; this skips its __format__)
    text = [f"arg {shape_text(a.shape)} {a.dtype} {a.name if names else ''};" for a in args]
    order = graph_order(outputs, args) if order is None else order
    append, base, lookup = text.append, len(args), index.get
    dtype_texts: dict = {}              # {id(dtype): its text}: few dtypes, many nodes

    def dtype_text(d):
        t = dtype_texts.get(id(d))
        if t is None:
            t = dtype_texts[id(d)] = str(d)
        return t
    for n, v in enumerate(order):
        k = lookup(id(v))
        if k is not None and k < base:
            line = f"a{k}"
        elif v.op is None:
            if v._literal:
                line = f"lit {dtype_text(v._dtype)} {v.value().item()!r}"
            else:     # a captured constant: its value is part of the function
                digest = hashlib.sha256(np.ascontiguousarray(v.value()).tobytes()).hexdigest()
                line = f"const {shape_text(v.shape)} {dtype_text(v._dtype)} {digest}"
        else:
            attrs = v.attrs
            line = (f"{v.op} {sorted(attrs.items()) if attrs else '[]'} {shape_text(v.shape)} "
                    f"{dtype_text(v._dtype)}")
        if names and v.name:
            line += f" named {v.name!r}"
        if grads and v.requires_grad:
            line += " g"
        if k is not None and k < base:       # an argument: no inputs of its own
            append(f"{n}:{line}<;")
            continue
        if k is None:
            index[id(v)] = n + base
        append(f"{n}:{line}<{' '.join([str(index[id(i)]) for i in v.inputs])};")
    text.append(" ".join(str(index[id(o)]) for o in outputs))
    # (hashed at once: the same digest as a update per line, at a fraction of the calls)
    return hashlib.sha256("".join(text).encode()).hexdigest()


def captured_constants(outputs, args, order=None):
    """The values the graph captures (leaves that are not arguments nor plain numbers), in
    the order the code generator passes them. `order`: graph_order(outputs, args), if known."""
    index = {id(a) for a in args}
    return [v for v in (graph_order(outputs, args) if order is None else order)
            if id(v) not in index and v.op is None and v._value is not None
            and not (v._literal or (v.ndim == 0 and v.numel() == 1))]
