"""Pickling compiled functions by their graph and options: what is pickled is the graph
between the inputs and the outputs (ops, attributes, shapes, dtypes, names, captured values)
and the `sg.compile` options; unpickling compiles it again, which finds the library through
the graph index (or the build cache) or rebuilds it. No loaded library, lock or pointer is
pickled, so the result works in worker processes of any start method (fork, spawn,
forkserver), concurrent.futures, Dask or Ray."""
from __future__ import annotations

import numpy as np

FORMAT = 1


def graph_state(roots, inputs) -> tuple[list, dict]:
    """The nodes reachable from `roots` (stopping at `inputs`), as plain tuples, and the index
    of each node by id."""
    from symgrad.graph import toposort
    given = {id(v) for v in inputs}
    order = toposort(list(roots) + list(inputs), lambda v: id(v) in given)
    index, nodes = {}, []
    for v in order:
        refs = () if id(v) in given else tuple(index[id(i)] for i in v.inputs)
        op = None if id(v) in given else v.op
        value = None if id(v) in given else v._value
        nodes.append((op, refs, dict(v.attrs) if op is not None else {}, tuple(v.shape), v.dtype.name,
                      v.name, bool(v._requires_grad), value, bool(getattr(v, "_literal", False))))
        index[id(v)] = len(nodes) - 1
    return nodes, index


def rebuild_nodes(nodes) -> list:
    from symgrad.variable import Variable
    built = []
    for op, refs, attrs, shape, dtype, name, requires_grad, value, literal in nodes:
        if op is None:
            v = Variable.__new__(Variable)
            v._init_graph(None, (), {}, tuple(shape), np.dtype(dtype), value)
            v._init_fields(name)
            v._literal = literal
            if requires_grad:
                v.requires_grad_(True)
        else:
            v = Variable._node(op, tuple(built[r] for r in refs), attrs, tuple(shape), np.dtype(dtype))
            v.name = name
            v._requires_grad = requires_grad
            v._value = value
        built.append(v)
    return built


def compiled_state(fn) -> dict:
    """What pickling `fn` (an sg.compile result) keeps."""
    pairs = fn._update_pairs
    roots = list(fn.outputs) + [new for _, new in pairs if hasattr(new, "op")]
    nodes, index = graph_state(roots, fn.inputs)
    return {"format": FORMAT, "nodes": nodes, "inputs": [index[id(v)] for v in fn.inputs],
            "outputs": [index[id(v)] for v in fn.outputs], "single": fn.single,
            "wrt": [index[id(v)] for v in fn.wrt], "backend": fn.backend,
            "updates": [(index[id(var)], ("node", index[id(new)]) if id(new) in index else ("value", new))
                        for var, new in pairs]}


def compile_arguments(state) -> dict:
    """The inverse of `compiled_state`: sg.compile's arguments, over a rebuilt graph."""
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError("cannot unpickle this symgrad compiled function: it was pickled by another "
                         "version of symgrad; compile the graph again")
    built = rebuild_nodes(state["nodes"])
    outputs = [built[k] for k in state["outputs"]]
    updates = [(built[a], built[b[1]] if b[0] == "node" else b[1]) for a, b in state["updates"]] or None
    return {"inputs": [built[k] for k in state["inputs"]],
            "outputs": outputs[0] if state["single"] else outputs,
            "wrt": [built[k] for k in state["wrt"]], "backend": state["backend"], "updates": updates}
