"""`sg.compile`: forward, backward and value_and_grad of a graph as compiled functions.

A `Function` is one graph compiled for one backend (symgrad.backends): it generates the
module (codegen.render.schedule_function, render_module), starts its build or finds it
through the graph index, and calls it through the backend, whose caller it keeps once looked up."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np

from symgrad import collector, compile_record, dtypes
from symgrad.autodiff import differentiable, grad
from symgrad.dims import bind, empty_reductions, names_in, specialise
from symgrad.backends import NAMES as BACKENDS
from symgrad.backends import backend as backend_named
from symgrad.backends.base import overlapping
from symgrad.dlpack import is_array_like, to_array
from symgrad.unit import Unit
from symgrad.variable import Variable


SMALL_VALUES = 1 << 12      # values computing this few elements more are always worth sharing


class _Spec(NamedTuple):
    """An input's shape and dtype at one call's sizes."""
    shape: tuple
    dtype: np.dtype


def _spec_name(v, k):
    return f"input {k} '{v.name}'" if v.name else f"input {k}"


def _section(text, marker, functions=1):
    """A function's part of a module's text, from its marker on, and the parts of the next
    `functions` - 1 functions (that of the one whose code it shares comes right after it)."""
    start = end = text.index(marker)
    for _ in range(functions):
        end = text.find("/* ==== symgrad_", end + 1)
        if end < 0:
            return text[start:]
    return text[start:end]


class Function:
    """One compiled graph: call it with arrays. `.source` is its C (or CUDA) text, `.path`
    the file in the build directory.

    `keep_graph=False` (eager backward's cache) loads the library at once and then keeps only
    placeholders of the arguments and no outputs, so that neither the graph nor the values it
    holds live as long as the function (the interpreter, which runs the graph, keeps it)."""

    def __init__(self, args, outputs, name, title, backend, describe_args=None, out_names=None,
                 keep_graph=True, updates=None, start=True):
        # (`outputs` may be a function giving them: made when first asked for, see compile_record)
        self.args, self._outputs = list(args), outputs if callable(outputs) else list(outputs)
        self.out_names = out_names          # C names of the outputs (gradients: d<input>)
        # {output position: argument position}: outputs written over their argument (updated in
        # place); a call returns the other outputs
        self.updates = dict(updates or {})
        if self.updates:
            title += " updating " + ", ".join(f"{a}:={o}" for o, a in sorted(self.updates.items()))
        self.name, self.backend = name, backend
        self._backend = backend_named(backend)
        self.describe_args = describe_args or [_spec_name(a, k) for k, a in enumerate(args)]
        self._lock = threading.Lock()
        self._lib = None
        self._unit = None
        self._shares = None         # (function, n values): its code computes ours (see `share`)
        self._specs = [(a.shape, np.dtype(a.dtype)) for a in self.args]     # numpy's own: `is` checks them
        # the symbolic dimensions of the inputs' shapes (symgrad.dims), sorted: the order of the
        # size arguments the generated code takes
        self.dims = names_in(*(a.shape for a in self.args))
        self._nonempty = empty_reductions(self.graph_outputs, self.args) if self.dims else []
        self._title = title
        if not self._backend.compiles:
            self._source, self.path, self._build, self.consts = None, None, None, []
            return
        self._local = threading.local()     # per-thread call state, the backend's
        if start:               # alone in its library (else a Unit of several starts it)
            Unit([self], self._backend).start()
        if not keep_graph:
            self.library()                  # (a damaged cache entry is regenerated from the graph)
            self.args = [Variable(shape=a.shape, dtype=a.dtype) for a in self.args]
            self.graph_outputs = []

    @property
    def graph_outputs(self) -> list:
        if callable(self._outputs):
            self._outputs = list(self._outputs())
        return self._outputs

    @graph_outputs.setter
    def graph_outputs(self, outputs):
        self._outputs = list(outputs)

    @property
    def path(self):
        """The source file in the build directory. Compiles run in the background and publish
        their directory when done, so reading this waits for that: the file is then there."""
        finish = getattr(getattr(self, "_build", None), "_finish", None)
        if finish is not None:
            finish()
            error = getattr(self._build, "error", None)
            if error is not None and error.source_path is not None:
                return Path(error.source_path)      # the compiler failed: its copy in failed/
        return self._path

    @path.setter
    def path(self, value):
        self._path = value

    def share(self, other: Function, n_values: int) -> None:
        """Compute this function with `other`'s code, whose outputs are `n_values` values and
        then this function's outputs: the entry point calls it with the values going to the
        scratch (backward as value_and_grad, dropping the loss), so the library holds that code
        once and the compiler compiles it once. Both must be built in one Unit."""
        self._shares = (other, n_values)

    @property
    def source(self):
        """The generated text of this function: the module's shared part (includes, helpers)
        and this function's entry points, without the other functions of its library (but with
        the one whose code computes it, when it shares another's: see `share`)."""
        text = self.module_source
        marker = f"/* ==== symgrad_{self.name} ==== */"
        if text is None or marker not in text:
            return text
        first = text.index("/* ==== symgrad_")
        return text[:first] + _section(text, marker, 2 if self._shares else 1)

    @property
    def module_source(self):
        """The whole generated module (every entry point of the library)."""
        if self._source is None and self.path is not None:
            self._source = self.path.read_text()
        return self._source

    def library(self):
        """This function's entry point in its loaded library (waits for the build)."""
        if self._lib is None:
            with self._lock:
                if self._lib is None:
                    self._lib = self._unit.entry_point(self)
        return self._lib

    def convert(self, values):
        """Arguments as contiguous arrays of the declared shapes and dtypes, or a clear error."""
        if len(values) != len(self.args):
            raise TypeError(f"{self.name}() takes {len(self.args)} inputs "
                            f"({', '.join(self.describe_args)}), got {len(values)}")
        updated = set(self.updates.values())
        specs = self.args
        if self.dims:                   # the declared shapes at this call's sizes
            env = self.bind_sizes([_shape_of(v) for v in values])
            specs = [_Spec(specialise(a.shape, env), a.dtype) for a in self.args]
        arrays = [self.convert_one(value, spec, who, k in updated)
                  for k, (value, spec, who) in enumerate(zip(values, specs, self.describe_args))]
        if updated:
            self._check_no_overlap(arrays, updated)
        return arrays

    def bind_sizes(self, shapes) -> dict:
        """The sizes of this function's symbolic dimensions, {name: size}, from the shapes of
        the arguments of a call; a ValueError names the inputs that disagree on one."""
        for shape, a, who in zip(shapes, self.args, self.describe_args):
            if shape is not None and len(shape) != len(a.shape):
                raise ValueError(f"{self.name}: {who} expects shape {a.shape}, got {tuple(shape)} "
                                 f"({len(shape)} dims, not {len(a.shape)})")
        try:
            env = bind([a.shape for a in self.args], [s if s is not None else () for s in shapes],
                       self.describe_args)
        except ValueError as e:
            raise ValueError(f"{self.name}: {e}") from None
        missing = [d for d in self.dims if d not in env]
        if missing:
            raise ValueError(f"{self.name}: no input gives the size of {', '.join(missing)} by itself "
                             f"(a dimension must be a whole dim of some input's shape)")
        for size, what in self._nonempty:
            if size.evaluate(env) == 0:
                raise ValueError(f"{self.name}: {what} over the dimension {size}, which is 0 in this call "
                                 f"({', '.join(f'{k}={v}' for k, v in env.items())}): it has no value")
        return env

    def _check_no_overlap(self, arrays, updated):
        """An argument updated in place shares no memory with another (backends.base.overlapping)."""
        pair = overlapping(arrays, updated)
        if pair is not None:
            j, other = pair
            raise ValueError(f"{self.name}: {self.describe_args[j]} is updated in place and "
                             f"shares memory with {self.describe_args[other]}; pass a copy")

    def convert_one(self, value, spec, who, updated=False):
        if updated:
            return self._updated_argument(value, spec, who)
        given_array = isinstance(value, (np.ndarray, Variable)) or is_array_like(value)
        try:
            arr = to_array(value, f"{self.name}: {who}") if given_array else np.asarray(value)
        except ValueError as e:        # a ragged list
            raise ValueError(f"{self.name}: {who} expects an array of shape {spec.shape} and dtype "
                             f"{spec.dtype.name}, got a {type(value).__name__} that is not one ({e})"
                             ) from None
        if arr.dtype != spec.dtype:
            ok = (not given_array and np.can_cast(arr.dtype, spec.dtype, "same_kind")) or \
                (arr.dtype.kind == spec.dtype.kind == "b") or \
                arr.dtype.newbyteorder("=") == spec.dtype      # the other byte order: same values
            if not ok:
                raise TypeError(f"{self.name}: {who} expects dtype {spec.dtype.name}, got {arr.dtype} "
                                f"(shape {arr.shape}); convert it with .astype('{spec.dtype.name}')")
            arr = arr.astype(spec.dtype)
        if arr.shape != spec.shape:
            raise ValueError(f"{self.name}: {who} expects shape {spec.shape}, got {arr.shape} "
                             f"(dtype {arr.dtype})")
        # (np.ascontiguousarray would turn a 0-d array into shape (1,))
        return arr if arr.flags.c_contiguous else np.ascontiguousarray(arr).reshape(arr.shape)

    def _updated_argument(self, value, spec, who):
        """An argument the call writes over must be the caller's own array, as it is: a
        converted copy would be updated instead, and the caller would never see it."""
        arr = value.value() if isinstance(value, Variable) else value
        if not (isinstance(arr, np.ndarray) and arr.dtype == spec.dtype and arr.shape == spec.shape
                and arr.flags.c_contiguous and arr.flags.writeable):
            got = (f"{'a read-only' if not arr.flags.writeable else 'an'}"
                   f"{'' if arr.flags.c_contiguous else ' non-contiguous'} array of shape {arr.shape} and "
                   f"dtype {arr.dtype}") if isinstance(arr, np.ndarray) else f"a {type(value).__name__}"
            raise TypeError(f"{self.name}: {who} is updated in place (sg.compile(..., updates=...)), so it "
                            f"must be a writable C-contiguous numpy array of shape {spec.shape} and dtype "
                            f"{spec.dtype.name}; got {got}")
        return arr

    def run(self, arrays):
        """Call with arrays already converted; returns the list of outputs."""
        return self._backend.run(self, arrays)

    def __call__(self, *values):
        fast = self.__dict__.get("_fast")
        if fast is None:
            fast = self._fast = self._backend.caller(self)
        return fast(*values)

    def _general_call(self, *values):
        return self.run(self.convert(values))

    def value_and_grad_caller(self, n_values, single, seeded=None):
        """The backend's caller returning (value, gradients) straight from the arrays, or None.
        With `seeded`, the caller also takes `grad_outputs=` and passes a call that has them
        on as `seeded(args, grad_outputs)`."""
        return self._backend.value_and_grad_caller(self, n_values, single, seeded)

    def __repr__(self):
        return f"<symgrad compiled {self.name} ({self.backend}): {self.path or 'interpreted'}>"


class CompiledFunction:
    """What `sg.compile` returns: `forward`, `backward` and `value_and_grad` of one graph."""

    @collector.paused()         # (the graph walks below allocate as code generation does)
    def __init__(self, inputs, outputs, wrt=None, backend="c", updates=None):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        self._backend = backend_named(backend)
        named = names_in(*(v.shape for v in (inputs if isinstance(inputs, (list, tuple)) else [inputs])
                           if isinstance(v, Variable)))
        if named and backend == "cuda":
            raise NotImplementedError(f"sg.compile: the CUDA backend does not take sizes at run time yet, "
                                      f"and the inputs have the named dimensions {', '.join(named)}; use "
                                      f"backend='c' or 'interp', or compile for fixed sizes")
        self._backend.require()
        self._backend.prepare()       # (what the build will need starts now, in the background)
        self.single = isinstance(outputs, Variable)
        if not self.single and not isinstance(outputs, (list, tuple)):
            raise TypeError(f"sg.compile: outputs must be a Variable or a list of Variables, got "
                            f"{type(outputs).__name__}")
        if not isinstance(inputs, (list, tuple, Variable)):
            raise TypeError(f"sg.compile: inputs must be a Variable or a list of Variables, got "
                            f"{type(inputs).__name__}")
        self.inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        self.outputs = [outputs] if self.single else list(outputs)
        for k, v in enumerate(self.inputs):
            if not isinstance(v, Variable):
                raise TypeError(f"sg.compile: input {k} is a {type(v).__name__}, not a Variable")
        for k, v in enumerate(self.outputs):
            if not isinstance(v, Variable):
                raise TypeError(f"sg.compile: output {k} is a {type(v).__name__}, not a Variable")
        if len({id(v) for v in self.inputs}) != len(self.inputs):
            raise ValueError("sg.compile: an input is listed twice")
        from symgrad.graph import graph_order
        order = graph_order(self.outputs, self.inputs)      # (the graph index's key walks it too)
        _check_inputs_given(self.inputs, self.outputs, order)
        self.wrt = [v for v in self.inputs if v.requires_grad] if wrt is None else \
            (list(wrt) if isinstance(wrt, (list, tuple)) else [wrt])
        for k, v in enumerate(self.wrt):
            if not isinstance(v, Variable):
                raise TypeError(f"sg.compile: wrt[{k}] is a {type(v).__name__}; wrt lists input "
                                f"Variables (the ones to differentiate with respect to)")
            if not any(v is i for i in self.inputs):
                raise ValueError(f"sg.compile: wrt holds {v._describe()}, which is not among the inputs")
            if not dtypes.is_float(v.dtype):
                raise TypeError(f"sg.compile: cannot differentiate with respect to {v._describe()}: "
                                f"not a floating point input")
        self.backend = backend
        self.graph_outputs = self.outputs
        from symgrad.codegen.names import comment_name    # titles land in C comments
        names = ", ".join(comment_name(v.name) if v.name else f"input{k}" for k, v in enumerate(self.inputs))
        outs = ", ".join(comment_name(v.name) if v.name else f"output{k}" for k, v in enumerate(self.outputs))
        position = {id(v): k for k, v in enumerate(self.inputs)}    # by identity: == builds a node
        wrt_names = ", ".join(comment_name(v.name) if v.name else f"input{position[id(v)]}"
                              for v in self.wrt)
        # In the generated code, outputs keep their names and a gradient is d<its input>.
        self._out_names = [v.name or f"out{k}" for k, v in enumerate(self.outputs)]
        self._grad_names = ["d" + (v.name or f"input{position[id(v)]}") for v in self.wrt]
        self._update_pairs = [] if not updates else \
            (list(updates.items()) if isinstance(updates, dict) else list(updates))
        new_values, aliases = _updates(self._update_pairs, self.inputs, position, backend)
        _check_inputs_given(self.inputs, new_values)
        titles = (f"forward: ({names}) -> ({outs})", f"backward: d({outs})/d({wrt_names}), from ({names})",
                  f"value_and_grad: ({outs}) and d({outs})/d({wrt_names}), from ({names})",
                  f"forward, backward and value_and_grad of ({names}) -> ({outs})")
        self.forward_fn = Function(self.inputs, self.outputs + new_values, "forward", titles[0], backend,
                                   out_names=self._out_names + [f"new_{k}" for k in range(len(new_values))],
                                   updates={len(self.outputs) + j: a for j, a in enumerate(aliases)},
                                   start=False)
        self.forward = _Forward(self)
        self._grad_graph_made = self._implicit_grads_made = None
        self._explicit = None
        self.backward_fn = self.value_and_grad_fn = None
        # sg.compile's record in the graph index, keyed by this graph and these options: where
        # it is found, nothing below (autodiff, code generation) runs (symgrad.compile_record)
        record = compile_record.Record(self, new_values, aliases, titles, order)
        if not record.start():
            self._diff = [k for k, o in enumerate(self._grad_graph)
                          if o.requires_grad and dtypes.is_float(o.dtype)]
            self._implicit = all(self.outputs[k].numel() == 1 for k in self._diff)
            if self.wrt and self._diff and self._implicit:
                self._make_grad_fns(titles, self._implicit_grads())
                if self._backend.shares_code and not self.value_and_grad_fn.dims and \
                        _values_come_cheap(self.outputs, self._implicit_grads()):
                    self.backward_fn.share(self.value_and_grad_fn, len(self.outputs))
            _start([f for f in (self.forward_fn, self.backward_fn, self.value_and_grad_fn) if f is not None],
                   self._backend, titles[3], record.key, record.facts)
        self.backward = _Entry(self, "backward")
        self.value_and_grad = _Entry(self, "value_and_grad")

    @property
    def _grad_graph(self) -> list:
        """The outputs as autodiff takes them (see autodiff.differentiable), made when first needed."""
        if self._grad_graph_made is None:
            self._grad_graph_made = differentiable(self.outputs, self.wrt)
        return self._grad_graph_made

    def _implicit_grads(self) -> list:
        """The gradients of the scalar outputs (no grad_outputs), made when first needed."""
        if self._implicit_grads_made is None:
            self._implicit_grads_made = self._grads(None)
        return self._implicit_grads_made

    def _make_grad_fns(self, titles, grads):
        """backward and value_and_grad without grad_outputs (`grads`: their gradients, or a
        function giving them when first needed)."""
        values = (lambda: self.outputs + grads()) if callable(grads) else self.outputs + grads
        self.backward_fn = Function(self.inputs, grads, "backward", titles[1], self.backend,
                                    out_names=self._grad_names, start=False)
        self.value_and_grad_fn = Function(self.inputs, values, "value_and_grad", titles[2], self.backend,
                                          out_names=self._out_names + self._grad_names, start=False)

    def _grads(self, seeds):
        if not self._diff:
            names = ", ".join(o._describe() for o in self.outputs)
            raise RuntimeError(f"sg.compile: no output ({names}) is a floating point value that depends "
                               f"on an input requiring grad, so there is nothing to differentiate")
        outs = [self._grad_graph[k] for k in self._diff]
        seeds = None if seeds is None else [seeds[k] for k in self._diff]
        return list(grad(outs, self.wrt, seeds, allow_unused=False))

    def _explicit_fns(self):
        if self._explicit is None:
            seeds = [Variable(shape=o.shape, dtype=o.dtype, name=f"grad_{o.name or k}")
                     for k, o in enumerate(self.outputs)]
            grads = self._grads(seeds)
            args = self.inputs + seeds
            explicit = (Function(args, grads, "backward_seeded", "backward with grad_outputs",
                                 self.backend, out_names=self._grad_names, start=False),
                        Function(args, self.outputs + grads, "value_and_grad_seeded",
                                 "value_and_grad with grad_outputs", self.backend,
                                 out_names=self._out_names + self._grad_names, start=False))
            _start(explicit, self._backend, "backward and value_and_grad with grad_outputs")
            self._explicit = explicit
        return self._explicit

    def __call__(self, *args):
        # from now on `fn(...)` is the generated caller's alone (or call_forward's, where the
        # backend has none: the question is not asked again)
        fast = self.forward_fn._backend.direct_caller(self.forward_fn, self.single) or self.call_forward
        self.__class__ = _direct(type(self), fast)
        return fast(*args)

    def call_forward(self, *args: Any) -> np.ndarray | list:
        """Returns the outputs for the input values `args` (arrays or numbers, in the order of
        `inputs`): one array for a single output, a list for a list. Also `fn(*args)`."""
        outs = self.forward_fn(*args)
        return outs[0] if self.single else outs

    def _run(self, which, args, grad_outputs):
        if not self.wrt:
            raise RuntimeError("sg.compile: no input requires grad, so there is nothing to differentiate; "
                               "pass wrt= or make inputs with requires_grad=True")
        if not self._diff:
            self._grads(None)       # raises: says why there is nothing to differentiate
        if grad_outputs is None:
            if not self._implicit:
                shapes = [o.shape for o in self.outputs]
                raise RuntimeError(f"grad can be implicitly created only for scalar outputs; the outputs "
                                   f"have shapes {shapes}: pass grad_outputs")
            outs = (self.backward_fn if which == "backward" else self.value_and_grad_fn)(*args)
        else:
            seeds = [grad_outputs] if isinstance(grad_outputs, (np.ndarray, Variable)) or \
                np.isscalar(grad_outputs) else list(grad_outputs)
            if self.single and not (len(seeds) == 1 and _shape_of(seeds[0]) == self.outputs[0].shape):
                seeds = [grad_outputs]      # one output: a nested list is its gradient, not a list of them
            if len(seeds) != len(self.outputs):
                raise ValueError(f"{which}: {len(self.outputs)} outputs but {len(seeds)} grad_outputs")
            fixed = []
            for k, (s, o) in enumerate(zip(seeds, self.outputs)):
                if self._backend.takes_device_arrays and k in self._diff and _on_device(s):
                    fixed.append(s)          # checked (shape, dtype, layout) where it is passed
                    continue
                by_protocol = isinstance(s, Variable) or is_array_like(s)
                arr = to_array(s, f"{which}: grad_outputs[{k}]") if by_protocol else np.asarray(s)
                if arr.shape != o.shape:
                    raise ValueError(f"{which}: grad_outputs of shape {arr.shape} for an output of shape "
                                     f"{o.shape}")
                if k not in self._diff:          # carries no gradient: its seed is not read
                    arr = np.zeros(o.shape, o.dtype)
                elif arr.dtype != o.dtype and arr.dtype.kind in "biuf":
                    arr = arr.astype(o.dtype)    # as Variable.backward(gradient) does
                fixed.append(arr)
            seeds = fixed
            backward, vag = self._explicit_fns()
            outs = (backward if which == "backward" else vag)(*args, *seeds)
        if which == "backward":
            return tuple(outs)
        n = len(self.outputs)
        value = outs[0] if self.single else outs[:n]
        return value, tuple(outs[n:])

    @property
    def source(self) -> str:
        """The generated C (or CUDA) of `forward`; `fn.backward.source` and
        `fn.value_and_grad.source` are theirs."""
        return self.forward.source

    def __reduce__(self):
        """Pickled by graph and options (symgrad.pickling): unpickling compiles again, which
        finds the library in the cache (or rebuilds it), in this process or another."""
        from symgrad.pickling import compiled_state
        return rebuild_compiled, (compiled_state(self),)

    def export(self, directory: str | Path, prefix: str = "name", blas: bool = False) -> dict:
        """Write this function as plain C99 for programs without Python: `<prefix>.c`,
        `<prefix>.h` (each entry point `<prefix>_forward`, `<prefix>_backward`,
        `<prefix>_value_and_grad` with its arguments' order, names, shapes and dtypes, and which
        are outputs) and a `README` with the build command (`cc -O2 -c <prefix>.c`, link with
        `-lm`; `-fopenmp` optional). No BLAS unless `blas=True`. Returns the paths written."""
        from symgrad.export import export
        return export(self, directory, prefix, blas)


def _values_come_cheap(outputs, grads) -> bool:
    """Whether backward may run value_and_grad's code and drop the values (Function.share):
    when what only the values need (nodes the gradients do not reach) holds few elements
    beside what the gradients compute. The library then holds that code once, not twice, and
    the compiler, whose run is most of a cold compile, has about a third less to compile."""
    from symgrad.graph import toposort
    order = toposort(list(grads) + list(outputs))      # (one walk; users before inputs, reversed)
    seen = {id(g) for g in grads}                      # what the gradients reach
    for v in reversed(order):
        if id(v) in seen:
            seen.update(id(i) for i in v.inputs)
    only = {id(o) for o in outputs if id(o) not in seen}   # reached from the values alone
    for v in reversed(order):
        if id(v) in only:
            only.update(id(i) for i in v.inputs if id(i) not in seen)
    extra = sum(v.numel() for v in order if id(v) in only and v.op is not None)
    return extra <= SMALL_VALUES or extra <= sum(v.numel() for v in order
                                                 if id(v) in seen and v.op is not None) // 4


def _start(functions, backend, title, key=None, record=None):
    """Start the builds of `functions`: one library holding them all where the backend builds
    modules of several functions (one compiler run), else one each. (`key` and `record`: the
    graph index's, for the one library: see Unit.)"""
    if not backend.compiles:
        return
    if backend.one_library and (len(functions) > 1 or key is not None):
        Unit(functions, backend, title if len(functions) > 1 else None, key, record).start()
    else:
        for f in functions:
            Unit([f], backend).start()


def _updates(pairs, inputs, position, backend):
    """`pairs` (sg.compile's `updates` as (input, new value) pairs, PyTensor's) as the new
    values (cast to their inputs' dtypes) and the positions of the inputs they overwrite."""
    if not pairs:
        return [], []
    if backend == "cuda":
        raise NotImplementedError("sg.compile(..., updates=...): in-place updates are not supported by "
                                  "the CUDA backend yet; use backend='c' or 'interp'")
    values, aliases = [], []
    for k, pair in enumerate(pairs):
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise TypeError(f"sg.compile: updates[{k}] must be an (input, new value) pair, got {pair!r}")
        var, new = pair
        if not isinstance(var, Variable) or id(var) not in position:
            raise ValueError(f"sg.compile: updates[{k}] updates "
                             f"{var._describe() if isinstance(var, Variable) else repr(var)}, which is not "
                             f"among the inputs; only inputs can be updated in place")
        if id(var) in {id(inputs[a]) for a in aliases}:
            raise ValueError(f"sg.compile: {var._describe()} is updated twice")
        if not isinstance(new, Variable):
            from symgrad.functional import as_variable
            new = as_variable(new, var.dtype)
        if new.shape != var.shape:
            raise ValueError(f"sg.compile: the update of {var._describe()} has shape {new.shape}; an "
                             f"input updated in place keeps its shape")
        if new.dtype != var.dtype:
            if dtypes.category(new.dtype) > dtypes.category(var.dtype):
                raise TypeError(f"sg.compile: the update of {var._describe()} is {new.dtype}, which it "
                                f"cannot hold")
            from symgrad.functional import cast
            new = cast(new, var.dtype)
        values.append(new)
        aliases.append(position[id(var)])
    return values, aliases


def _check_inputs_given(inputs, outputs, order=None):
    """Every symbolic leaf the outputs depend on must be an input: it has no value to capture.
    (`order`: graph.graph_order(outputs, inputs), when the caller has it.)"""
    from symgrad.graph import graph_order
    given = {id(v) for v in inputs}
    missing = [v for v in (graph_order(outputs, inputs) if order is None else order)
               if id(v) not in given and v.op is None and v._value is None]
    if missing:
        names = ", ".join(v._describe() for v in missing)
        raise ValueError(f"sg.compile: the outputs depend on {names}, which has no value and is not "
                         f"among the inputs; add it to sg.compile's inputs (or give it a value)")


def _on_device(value):
    from symgrad.backends.cuda.caller import device_interface
    return device_interface(value) is not None


def _shape_of(value):
    if _on_device(value):
        return tuple(value.__cuda_array_interface__["shape"])

    try:
        return np.shape(value.value() if isinstance(value, Variable) else value)
    except ValueError:          # ragged
        return None


class _Forward:
    """`fn.forward(*inputs)`: the outputs for the given input values, as `fn(*inputs)`.

    The arguments are arrays (or numbers, or objects with `__dlpack__` or
    `__array_interface__`) in the order of sg.compile's `inputs`; the result is one array for a
    single output, a list for a list. `.source` is the generated code and `.path` the library.
    PyTorch/JAX: calling the function itself (`jax.jit(f)(*args)`)."""

    def __init__(self, owner):
        self._owner = owner

    def __call__(self, *args):
        return self._owner.call_forward(*args)

    def __getattr__(self, name):
        return getattr(self._owner.forward_fn, name)

    def __repr__(self):
        return repr(self._owner.forward_fn)


def _direct(cls, call):
    """A subclass of `cls` for one object whose calls are `call`'s (a generated caller): a
    call then costs no Python frame of ours before the caller's."""
    return type(cls.__name__, (cls,), {"__call__": staticmethod(call), "__slots__": (),
                                       "__doc__": cls.__doc__, "__module__": cls.__module__,
                                       "__qualname__": cls.__qualname__})


class _Entry:
    """`fn.backward(*inputs, grad_outputs=None)` and `fn.value_and_grad(*inputs, grad_outputs=None)`.

    `backward` returns the gradients of the outputs with respect to `wrt` (an array for a
    single `wrt` Variable, else a tuple); `value_and_grad` returns (outputs, gradients) from
    one call. The inputs are as `fn.forward` takes them. A scalar output is differentiated
    as is; otherwise `grad_outputs` (arrays of the outputs' shapes) weighs each output, as
    PyTorch's `torch.autograd.grad(outputs, inputs, grad_outputs)`. JAX: `jax.value_and_grad`
    and `jax.grad`. `.source` is the generated code and `.path` the library."""

    def __init__(self, owner, which):
        self.owner, self.which = owner, which

    def _fn(self):
        fn = self.owner.backward_fn if self.which == "backward" else self.owner.value_and_grad_fn
        if fn is None:
            fn = self.owner._explicit_fns()[0 if self.which == "backward" else 1]
        return fn

    @property
    def source(self):
        return self._fn().source

    @property
    def path(self):
        return self._fn().path

    @property
    def graph_outputs(self):
        return self._fn().graph_outputs

    def __call__(self, *args: Any, grad_outputs: Any = None) -> Any:
        """The gradients (or values and gradients) for the input values `args`; see the class."""
        if grad_outputs is None:
            fast = self.__dict__.get("_fast")
            if fast is not None:
                return fast(*args)
            owner = self.owner
            fn = owner.backward_fn if self.which == "backward" else owner.value_and_grad_fn
            if owner._implicit and owner._diff and fn is not None:
                # One generated caller from the arrays to (value, gradients), where the backend
                # has one; everything else (seeds given, the interpreter, errors) goes through _run.
                n = 0 if self.which == "backward" else len(owner.outputs)
                which = self.which
                fast = fn.value_and_grad_caller(n, owner.single,
                                                lambda args, seeds: owner._run(which, args, seeds))
                if fast is not None:
                    self._fast = fast
                    # From now on a call is the generated caller's alone (it takes
                    # grad_outputs= too): a class of this entry's own whose __call__ it is.
                    self.__class__ = _direct(_Entry, fast)
                    return fast(*args)
        return self.owner._run(self.which, args, grad_outputs)


def rebuild_compiled(state) -> CompiledFunction:
    """Unpickling a compiled function: compile its graph again (found in the cache if built)."""
    from symgrad.pickling import compile_arguments
    return CompiledFunction(**compile_arguments(state))


def compile(inputs: Variable | Sequence[Variable], outputs: Variable | Sequence[Variable],
            wrt: Variable | Sequence[Variable] | None = None, backend: str = "c",
            updates: dict | Sequence | None = None) -> CompiledFunction:
    """Compile the graph from `inputs` to `outputs` (a Variable or a list) to C (or CUDA).

    Returns a function object: `fn(*values)` / `fn.forward(*values)` computes the outputs,
    `fn.backward(*values)` the gradients with respect to `wrt` (default: the inputs that
    require grad), `fn.value_and_grad(*values)` both, `fn.source` shows the generated code
    and `fn.export(directory)` writes it as plain C. `backend` is "c", "interp" (the numpy
    reference interpreter) or "cuda". JAX: `jax.jit` of a function and its `jax.value_and_grad`;
    PyTensor: `pytensor.function(inputs, outputs, updates=...)`.

    `updates` ({input: new value}, as PyTensor's function takes them) makes every call of
    `fn(...)` / `fn.forward(...)` write each new value over the array given for its input, in
    place, after the outputs are computed from the old values (a training step's parameter
    update). Such an input must be passed as a writable C-contiguous array of its dtype."""
    return CompiledFunction(inputs, outputs, wrt, backend, updates)
