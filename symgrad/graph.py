"""Walking graphs of nodes (symgrad.node): topological order, and the structural key that
compiled code is cached by."""
from __future__ import annotations

import hashlib

import numpy as np


def toposort(outputs, is_boundary=lambda v: False):
    """Nodes reachable from `outputs`, inputs before users. Nodes where `is_boundary` holds
    are listed but not looked through."""
    order, seen = [], set()
    stack = [(v, False) for v in reversed(list(outputs))]
    while stack:
        v, expanded = stack.pop()
        if expanded:
            order.append(v)
            continue
        if id(v) in seen:
            continue
        seen.add(id(v))
        stack.append((v, True))
        if not is_boundary(v):
            for i in reversed(v.inputs):
                if id(i) not in seen:
                    stack.append((i, False))
    return order


def structure_key(outputs, args, names=False) -> str:
    """A hash of the graph between `args` and `outputs`: ops, attributes, shapes, dtypes and
    literal values, never the values of arguments. Equal keys compute the same function."""
    index = {id(a): n for n, a in enumerate(args)}
    text = [f"arg {a.shape} {a.dtype} {a.name if names else ''};" for a in args]
    order = toposort(outputs, lambda v: id(v) in index)
    for n, v in enumerate(order):
        if id(v) in index:
            line = f"a{index[id(v)]}"
        elif v.op is None:
            if v._literal:
                line = f"lit {v.dtype} {v.value().item()!r}"
            else:     # a captured constant: its value is part of the function
                digest = hashlib.sha256(np.ascontiguousarray(v.value()).tobytes()).hexdigest()
                line = f"const {v.shape} {v.dtype} {digest}"
        else:
            line = f"{v.op} {sorted(v.attrs.items()) if v.attrs else '[]'} {v.shape} {v.dtype}"
        if names and v.name:
            line += f" named {v.name!r}"
        is_arg = id(v) in index and line.startswith("a")
        index.setdefault(id(v), n + len(args))
        refs = "" if is_arg else " ".join(str(index[id(i)]) for i in v.inputs)
        text.append(f"{n}:{line}<{refs};")
    text.append(" ".join(str(index[id(o)]) for o in outputs))
    # (hashed at once: the same digest as a update per line, at a fraction of the calls)
    return hashlib.sha256("".join(text).encode()).hexdigest()


def captured_constants(outputs, args):
    """The values the graph captures (leaves that are not arguments nor plain numbers), in
    the order the code generator passes them."""
    index = {id(a) for a in args}
    return [v for v in toposort(outputs, lambda v: id(v) in index)
            if id(v) not in index and v.op is None and v._value is not None
            and not (v._literal or (v.ndim == 0 and v.numel() == 1))]
