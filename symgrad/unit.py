"""A compilation unit: the entry points of one compiled function (forward, backward,
value_and_grad, or the seeded pair), generated together into one module and built by one
compiler run, or found through the graph index (a new process then generates nothing).

Each entry point is a `compile.Function`; the unit owns the source, the build and the loaded
library, and hands each Function its entry point (`symgrad_<name>_packed`)."""
from __future__ import annotations

import logging
import threading
import time
import types

import numpy as np

from symgrad import collector

log = logging.getLogger("symgrad")


class Unit:
    """`key`: the graph index key to use instead of one hashed from the functions' graphs
    (sg.compile's, from the user's graph: symgrad.compile_record); `record`: a function giving
    more facts for the index record, once the module is generated (None: none)."""

    def __init__(self, functions, backend, title=None, key=None, record=None):
        self.functions, self.backend = list(functions), backend
        self.title = title or functions[0]._title
        self._lock = threading.Lock()
        self._lib = None
        self.build = None
        self._key, self._record = key, record
        for f in self.functions:
            f._unit = self

    @property
    def symbols(self):
        return [f"symgrad_{f.name}_packed" for f in self.functions]

    def start(self):
        """Find the library through the graph index, or generate the source and start its build."""
        with collector.paused():
            if not (self.backend.uses_graph_index and self._from_index()):
                self._generate()
        self._order = None          # (the unit holds no node of the graph)

    def _shared_args(self) -> bool:
        """Whether the functions take the same arguments (sg.compile's forward, backward and
        value_and_grad do): their graphs are then walked once, together."""
        first = self.functions[0].args
        return all(len(f.args) == len(first) and all(a is b for a, b in zip(f.args, first))
                   for f in self.functions[1:])

    def _union_order(self):
        """The walk of the graph all the functions are part of (when they share arguments)."""
        if getattr(self, "_order", None) is None:
            from symgrad.graph import graph_order
            self._order = graph_order([o for f in self.functions for o in f.graph_outputs],
                                      self.functions[0].args)
        return self._order

    def _graph_key(self):
        from symgrad.build import graph_key
        from symgrad.graph import structure_key
        fns = self.functions
        if self._shared_args():     # one walk of the graph all the functions are part of
            structure = structure_key([o for f in fns for o in f.graph_outputs], fns[0].args, names=True,
                                      order=self._union_order()) + \
                " outputs " + " ".join(str(len(f.graph_outputs)) for f in fns)
        else:
            structure = "\0".join(structure_key(f.graph_outputs, f.args, names=True) for f in fns)
        return graph_key(structure, self.backend.name, "+".join(f.name for f in fns),
                         "\0".join(f._title for f in fns))

    def _generate(self):
        from symgrad.codegen.render import render_module, schedule_function, shared_context
        started = time.perf_counter()
        self.backend.prepare([o for f in self.functions for o in f.graph_outputs])
        contexts, kernels, schedules = {}, [], {}
        for f in self.functions:
            if f._shares is not None:
                continue
            context, schedule, _ = schedule_function(f.args, f.graph_outputs, f"symgrad_{f.name}", f._title,
                                                     self.backend, f.out_names, f.updates)
            f.consts = [b.node.value for b in schedule.consts]
            f.checks = schedule.checks
            f._out_specs = [(b.node.shape, b.node.dtype) for b in schedule.outs]
            f.n_kernels = len(schedule.kernels)
            contexts[id(f)] = context
            kernels += schedule.kernels
            schedules[id(f)] = schedule
        for f in self.functions:        # computed by another's code (compile.Function.share)
            if f._shares is not None:
                other, n = f._shares
                contexts[id(f)] = shared_context(f"symgrad_{f.name}", f._title, f"symgrad_{other.name}",
                                                 schedules[id(other)], n)
                f.consts, f.checks, f.n_kernels = other.consts, other.checks, other.n_kernels
                f._out_specs = other._out_specs[n:]
        # (a function that shares another's code comes just before it: its .source is both)
        order = []
        for f in self.functions:
            if f._shares is None:
                order += [g for g in self.functions if g._shares is not None and g._shares[0] is f] + [f]
        linked = self.backend.linked_objects(kernels)     # (product helpers compiled once, linked in)
        source = render_module([contexts[id(f)] for f in order], self.title, self.backend,
                               linked=linked)
        generated = time.perf_counter()
        symbols = self.symbols if len(self.symbols) > 1 else self.symbols[0]
        self.build = self.backend.start_build(source, symbols, types.SimpleNamespace(kernels=kernels,
                                                                                     linked_objects=linked))
        log.info("symgrad: generated %s (%s) in %.1f ms", self.title, ", ".join(self.symbols),
                 1e3 * (generated - started))
        _note_compile(self)
        for f in self.functions:
            f._source, f._build = source, self.build
            f.path = self.build.source_path
        if self.backend.uses_graph_index:
            from symgrad.build import index_store
            entries = [{"symbol": s, "checks": f.checks, "n_kernels": f.n_kernels}
                       for s, f in zip(self.symbols, self.functions)]
            more = self._record() if self._record is not None else None
            index_store(self._key, dict(entries[0], key=self.build.key, entries=entries, **(more or {})))

    def _from_index(self) -> bool:
        """Use the library these entry points compiled to before, if the cache still holds it."""
        from symgrad.build import index_lookup
        from symgrad.graph import captured_constants
        self._key = self._key or self._graph_key()
        facts = index_lookup(self._key)
        if facts is None or [e["symbol"] for e in facts["entries"]] != self.symbols:
            return False
        # (none of the functions captures a constant when their graph together does not)
        captures = not self._shared_args() or captured_constants(
            [o for f in self.functions for o in f.graph_outputs], self.functions[0].args,
            order=self._union_order())
        consts, specs = [], []
        for f in self.functions:
            code = f._shares[0] if f._shares is not None else f     # (whose constants it takes)
            consts.append(captured_constants(code.graph_outputs, code.args) if captures else [])
            specs.append([(o.shape, np.dtype(o.dtype)) for k, o in enumerate(f.graph_outputs)
                          if k not in f.updates])
        self.adopt(facts, consts, specs)
        return True

    def adopt(self, facts, consts, out_specs):
        """Take the library of an index record (`facts`, index_lookup's): each function's
        captured constants (the Variables) and its outputs' (shape, numpy dtype) are given."""
        from symgrad.build import CachedBuild
        self.build = CachedBuild(facts["entry_path"], self.symbols)
        for f, e, cs, specs in zip(self.functions, facts["entries"], consts, out_specs):
            f._source = None
            f.consts = [np.ascontiguousarray(v.value()) for v in cs]
            f.checks, f.n_kernels = e["checks"], e["n_kernels"]
            f._out_specs = specs
            f._build = self.build
            f.path = self.build.source_path

    def library(self):
        """The loaded library (waits for its build)."""
        if self._lib is None:
            with self._lock:
                if self._lib is None:
                    from symgrad.backends.staged import Unmet
                    from symgrad.build import CachedBuild
                    try:
                        self._lib = self.build.result()
                    except Unmet:       # what it was to link did not build: generated without
                        self._generate()
                        self._lib = self.build.result()
                    except OSError:
                        if not isinstance(self.build, CachedBuild):
                            raise
                        # The graph index led to a library that does not load (damaged after its
                        # digest was written): drop that entry, generate and compile afresh.
                        self.build.discard()
                        self._generate()
                        self._lib = self.build.result()
        return self._lib

    def entry_point(self, function):
        lib = self.library()
        symbol = f"symgrad_{function.name}_packed"
        return lib.entry_point(symbol) if hasattr(lib, "entry_point") else lib


# --- why a graph compiled again ---------------------------------------------------------------
# {(backend, title, entry points, input names): the inputs' (shapes, dtypes) last generated for.
# The title names the inputs and outputs, so a graph of other names is not taken for this one.

_seen: dict = {}


def _note_compile(unit):
    """Log, when a unit is generated for a graph whose inputs were seen with other shapes or
    dtypes in this process, what changed."""
    f = unit.functions[0]
    names = tuple(a.name or f"input{k}" for k, a in enumerate(f.args))
    specs = tuple((tuple(a.shape), a.dtype.name) for a in f.args)
    key = (unit.backend.name, unit.title, tuple(g.name for g in unit.functions), names)
    before = _seen.get(key)
    _seen[key] = specs
    if before is None or before == specs or len(before) != len(specs):
        return
    changes = [f"{n}: {'x'.join(map(str, old[0])) or 'scalar'} {old[1]} -> "
               f"{'x'.join(map(str, new[0])) or 'scalar'} {new[1]}"
               for n, old, new in zip(names, before, specs) if old != new]
    log.info("symgrad: recompiling %s for new input shapes/dtypes (%s)", unit.title, "; ".join(changes))
