"""sg.compile's record in the graph index, keyed by the graph the user gave and sg.compile's
options rather than by the graphs of its entry points, so that a new process compiling a graph
it compiled before finds the library before autodiff: no gradient graph, no passes, no code
generation (they are made later only if something asks for them: a damaged library, `.source`
of a graph, grad_outputs).

The key (build.graph_key, which adds symgrad's version and code, the keyed settings and the
CPU) hashes the graph from the inputs to the outputs and the updates' new values, with the
nodes that require grad (what the gradient graph follows), the positions of `wrt` and of the
updated inputs, and the entry points' titles. That settles the gradient graph, except where
a pullback runs code the graph does not hold (an op with `user_vjp`: a custom Function's
backward), a hook (register_hook) changes a gradient, or a value read by a pullback was
changed in place (autodiff's error); those graphs, and those with symbolic sizes, keep the
unit's own key (Unit._graph_key, after autodiff).

The record is the library's one index record (build.index_store), with a "compile" part: what
sg.compile otherwise learns from the gradient graph. "diff": the outputs that carry a
gradient; "implicit": whether they are all scalars; "shares": the number of values backward
drops when it runs value_and_grad's code (Function.share), or -1; "consts": each entry
point's captured constants, as positions among those of the user's graph; "out_specs": each
entry point's outputs' [shape, dtype]. A record without a valid part is used as any index
record is (autodiff runs, code generation does not)."""
from __future__ import annotations

import numpy as np

from symgrad import collector, config, dtypes
from symgrad.build import graph_key, index_lookup
from symgrad.graph import captured_constants, graph_order, structure_key
from symgrad.ops.registry import OPS

_DTYPES = frozenset(d.dtype.name for d in dtypes.SUPPORTED)     # as records spell them


def _keyable(order) -> bool:
    """Whether the graph settles its gradient graph (see the module's docstring)."""
    for v in order:
        if v.__dict__.get("_grad_hooks"):
            return False
        if v.op is not None:
            if OPS[v.op].user_vjp or v._vbox[0] != v._born:
                return False
            for i, seen in zip(v.inputs, v._seen):
                if i._vbox[0] != seen:
                    return False
    return True


class Record:
    """sg.compile's record for one CompiledFunction (`compiled`, its functions not made yet
    but forward): `key` is None where the graph or the backend takes none."""

    def __init__(self, compiled, new_values, aliases, titles, order):
        self.compiled, self.titles = compiled, titles
        self.key = self.consts = None
        backend = compiled._backend
        if not (backend.uses_graph_index and backend.one_library) or compiled.forward_fn.dims or \
                config.print_after():
            return
        roots, inputs = compiled.outputs + list(new_values), compiled.inputs
        if new_values:
            order = graph_order(roots, inputs)
        if not _keyable(order):
            return
        position = {id(v): k for k, v in enumerate(inputs)}
        options = (f" outputs {len(compiled.outputs)} updates {list(aliases)} "
                   f"wrt {[position[id(v)] for v in compiled.wrt]}")
        structure = structure_key(roots, inputs, names=True, order=order, grads=True) + options
        self.key = graph_key(structure, backend.name, "compile", "\0".join(titles))
        self.consts = captured_constants(roots, inputs, order=order)

    def start(self) -> bool:
        """Take the recorded library, if the index leads to one: the entry points are made
        (their gradients left to be made when asked for) and given it. False otherwise."""
        if self.key is None:
            return False
        facts = index_lookup(self.key)
        part = self._valid(facts)
        if part is None:
            return False
        from symgrad.unit import Unit
        cf = self.compiled
        cf._diff, cf._implicit = part["diff"], part["implicit"]
        functions = [cf.forward_fn]
        if len(facts["entries"]) == 3:
            cf._make_grad_fns(self.titles, cf._implicit_grads)
            functions += [cf.backward_fn, cf.value_and_grad_fn]
            if part["shares"] >= 0:
                cf.backward_fn.share(cf.value_and_grad_fn, part["shares"])
        unit = Unit(functions, cf._backend, self.titles[3] if len(functions) > 1 else None, self.key,
                    self.facts)
        with collector.paused():
            unit.adopt(facts, [[self.consts[k] for k in ks] for ks in part["consts"]],
                       [[(tuple(shape), np.dtype(d)) for shape, d in specs] for specs in part["out_specs"]])
        return True

    def _valid(self, facts):
        """The record's "compile" part, if it is of the right form for this graph, else None."""
        part = facts.get("compile") if facts is not None else None
        if not isinstance(part, dict):
            return None
        cf = self.compiled
        diff, implicit, shares = part.get("diff"), part.get("implicit"), part.get("shares")
        consts, specs = part.get("consts"), part.get("out_specs")
        if not (isinstance(diff, list) and all(_index(k, len(cf.outputs)) for k in diff)
                and isinstance(implicit, bool) and _int(shares)):
            return None
        grads = bool(cf.wrt and diff and implicit)
        symbols = ["symgrad_forward_packed"] + \
            (["symgrad_backward_packed", "symgrad_value_and_grad_packed"] if grads else [])
        if [e["symbol"] for e in facts["entries"]] != symbols or not -1 <= shares <= len(cf.outputs):
            return None
        n = len(symbols)
        if not (isinstance(consts, list) and len(consts) == n and isinstance(specs, list)
                and len(specs) == n):
            return None
        if not all(isinstance(ks, list) and all(_index(k, len(self.consts)) for k in ks) for ks in consts):
            return None
        if not all(isinstance(s, list) and all(_spec(x) for x in s) for s in specs):
            return None
        return part

    def facts(self) -> dict:
        """The "compile" part of the record, once the module is generated (Unit._generate),
        or nothing where a constant the entry points take is not one of the user's graph
        (made by a pullback) or not the one the module takes."""
        cf = self.compiled
        if self.key is None:
            return {}
        functions = [f for f in (cf.forward_fn, cf.backward_fn, cf.value_and_grad_fn) if f is not None]
        position = {id(v): k for k, v in enumerate(self.consts)}
        consts = []
        for f in functions:
            code = f._shares[0] if f._shares is not None else f
            taken = captured_constants(code.graph_outputs, code.args)
            if len(taken) != len(f.consts) or any(id(v) not in position for v in taken) or \
                    not all(np.array_equal(v.value(), a) for v, a in zip(taken, f.consts)):
                return {}
            consts.append([position[id(v)] for v in taken])
        specs = [[[[int(s) for s in shape], np.dtype(d).name] for shape, d in f._out_specs]
                 for f in functions]
        shares = cf.backward_fn._shares[1] if cf.backward_fn is not None and cf.backward_fn._shares else -1
        return {"compile": {"diff": list(cf._diff), "implicit": cf._implicit, "shares": shares,
                            "consts": consts, "out_specs": specs}}


def _int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _index(x, n) -> bool:
    return _int(x) and 0 <= x < n


def _spec(x) -> bool:
    return (isinstance(x, list) and len(x) == 2 and isinstance(x[0], list)
            and all(_int(s) and s >= 0 for s in x[0]) and x[1] in _DTYPES)
