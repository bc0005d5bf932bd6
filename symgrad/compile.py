"""`sg.compile`: forward, backward and value_and_grad of a graph as compiled functions."""
from __future__ import annotations

import threading

import numpy as np

from symgrad import dtypes
from symgrad.autodiff import grad
from symgrad.variable import Variable

BACKENDS = ("c", "cuda", "interp")


def _spec_name(v, k):
    return f"input {k} '{v.name}'" if v.name else f"input {k}"


class Function:
    """One compiled graph: call it with arrays. `.source` is its C (or CUDA) text, `.path`
    the file in the build directory."""

    def __init__(self, args, outputs, name, title, backend, describe_args=None):
        self.args, self.graph_outputs = list(args), list(outputs)
        self.name, self.backend = name, backend
        self.describe_args = describe_args or [_spec_name(a, k) for k, a in enumerate(args)]
        self._lock = threading.Lock()
        self._lib = None
        if backend == "interp":
            self.source, self.path, self._build, self.consts = None, None, None, []
            return
        from symgrad.codegen.render import generate
        self.source, schedule, graph = generate(self.args, self.graph_outputs, f"symgrad_{name}", title,
                                                "c" if backend == "c" else backend)
        self.consts = [b.node.value for b in schedule.consts]
        self._out_specs = [(b.node.shape, b.node.dtype) for b in schedule.outs]
        self.n_kernels = len(schedule.kernels)
        if backend == "c":
            from symgrad.build import Build
            self._build = Build(self.source, f"symgrad_{name}_packed")
        else:
            from symgrad.cuda import CudaBuild
            self._build = CudaBuild(self.source, f"symgrad_{name}_packed")
        self.path = self._build.source_path

    def library(self):
        if self._lib is None:
            with self._lock:
                if self._lib is None:
                    self._lib = self._build.result()
        return self._lib

    def convert(self, values):
        """Arguments as contiguous arrays of the declared shapes and dtypes, or a clear error."""
        if len(values) != len(self.args):
            raise TypeError(f"{self.name}() takes {len(self.args)} inputs "
                            f"({', '.join(self.describe_args)}), got {len(values)}")
        out = []
        for value, spec, who in zip(values, self.args, self.describe_args):
            given_array = isinstance(value, (np.ndarray, Variable))
            arr = value.value() if isinstance(value, Variable) else np.asarray(value)
            if arr.dtype != spec.dtype:
                ok = (not given_array and np.can_cast(arr.dtype, spec.dtype, "same_kind")) or \
                    (arr.dtype.kind == spec.dtype.kind == "b")
                if not ok:
                    raise TypeError(f"{self.name}: {who} expects dtype {spec.dtype}, got {arr.dtype} "
                                    f"(shape {arr.shape}); convert it with .astype('{spec.dtype}')")
                arr = arr.astype(spec.dtype)
            if arr.shape != spec.shape:
                raise ValueError(f"{self.name}: {who} expects shape {spec.shape}, got {arr.shape} "
                                 f"(dtype {arr.dtype})")
            out.append(np.ascontiguousarray(arr))
        return out

    def run(self, arrays):
        """Call with arrays already converted; returns the list of outputs."""
        if self.backend == "interp":
            from symgrad.interpret import evaluate
            return [np.array(v) for v in evaluate(self.graph_outputs, dict(zip(self.args, arrays)),
                                                  recompute=True)]
        lib = self.library()
        outs = [np.empty(shape, dtype) for shape, dtype in self._out_specs]
        ffi = lib.ffi
        ptrs = ffi.new("void *[]", max(1, len(arrays) + len(self.consts) + len(outs)))
        for k, a in enumerate([*arrays, *self.consts, *outs]):
            ptrs[k] = ffi.from_buffer(a) if a.size else ffi.NULL
        status = lib.entry(ptrs)
        if status != 0:
            raise MemoryError(f"{self.name}: the compiled code could not allocate its scratch memory")
        return outs

    def __call__(self, *values):
        outs = self.run(self.convert(values))
        return outs

    def __repr__(self):
        return f"<symgrad compiled {self.name} ({self.backend}): {self.path or 'interpreted'}>"


class CompiledFunction:
    """What `sg.compile` returns: `forward`, `backward` and `value_and_grad` of one graph."""

    def __init__(self, inputs, outputs, wrt=None, backend="c"):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if backend == "c":
            from symgrad.build import CompileError, have_c_compiler
            if not have_c_compiler():
                raise CompileError("no working C compiler: install gcc or clang, set SYMGRAD_CC, or "
                                   "use backend='interp'")
        self.single = isinstance(outputs, Variable)
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
        self.wrt = [v for v in self.inputs if v.requires_grad] if wrt is None else \
            (list(wrt) if isinstance(wrt, (list, tuple)) else [wrt])
        for v in self.wrt:
            if not any(v is i for i in self.inputs):
                raise ValueError(f"sg.compile: wrt holds {v._describe()}, which is not among the inputs")
            if not dtypes.is_float(v.dtype):
                raise TypeError(f"sg.compile: cannot differentiate with respect to {v._describe()}: "
                                f"not a floating point input")
        self.backend = backend
        self.graph_outputs = self.outputs
        names = ", ".join(v.name or f"input{k}" for k, v in enumerate(self.inputs))
        outs = ", ".join(v.name or f"output{k}" for k, v in enumerate(self.outputs))
        wrt_names = ", ".join(v.name or f"input{self.inputs.index(v)}" for v in self.wrt)
        self.forward = Function(self.inputs, self.outputs, "forward",
                                f"forward: ({names}) -> ({outs})", backend)
        self._implicit = all(o.numel() == 1 for o in self.outputs)
        self._explicit = None
        self.backward_fn = self.value_and_grad_fn = None
        if self.wrt:
            if self._implicit:
                grads = self._grads(None)
                self.backward_fn = Function(self.inputs, grads, "backward",
                                            f"backward: d({outs})/d({wrt_names}), from ({names})", backend)
                self.value_and_grad_fn = Function(
                    self.inputs, self.outputs + grads, "value_and_grad",
                    f"value_and_grad: ({outs}) and d({outs})/d({wrt_names}), from ({names})", backend)
        self.backward = _Entry(self, "backward")
        self.value_and_grad = _Entry(self, "value_and_grad")

    def _grads(self, seeds):
        for o in self.outputs:
            if not o.requires_grad:
                raise RuntimeError(f"sg.compile: the output {o._describe()} does not depend on any "
                                   f"input that requires grad")
        return list(grad(self.outputs, self.wrt, seeds, allow_unused=False))

    def _explicit_fns(self):
        if self._explicit is None:
            seeds = [Variable(shape=o.shape, dtype=o.dtype, name=f"grad_{o.name or k}")
                     for k, o in enumerate(self.outputs)]
            grads = self._grads(seeds)
            args = self.inputs + seeds
            self._explicit = (Function(args, grads, "backward_seeded", "backward with grad_outputs",
                                       self.backend),
                              Function(args, self.outputs + grads, "value_and_grad_seeded",
                                       "value_and_grad with grad_outputs", self.backend))
        return self._explicit

    def __call__(self, *args):
        return self.call_forward(*args)

    def call_forward(self, *args):
        outs = self.forward(*args)
        return outs[0] if self.single else outs

    def _run(self, which, args, grad_outputs):
        if not self.wrt:
            raise RuntimeError("sg.compile: no input requires grad, so there is nothing to differentiate; "
                               "pass wrt= or make inputs with requires_grad=True")
        if grad_outputs is None:
            if not self._implicit:
                shapes = [o.shape for o in self.outputs]
                raise RuntimeError(f"grad can be implicitly created only for scalar outputs; the outputs "
                                   f"have shapes {shapes}: pass grad_outputs")
            fn = self.backward_fn if which == "backward" else self.value_and_grad_fn
            outs = fn(*args)
        else:
            seeds = [grad_outputs] if isinstance(grad_outputs, (np.ndarray, Variable)) or \
                np.isscalar(grad_outputs) else list(grad_outputs)
            if len(seeds) != len(self.outputs):
                raise ValueError(f"{which}: {len(self.outputs)} outputs but {len(seeds)} grad_outputs")
            for s, o in zip(seeds, self.outputs):
                shape = np.shape(s.value() if isinstance(s, Variable) else s)
                if shape != o.shape:
                    raise ValueError(f"{which}: grad_outputs of shape {shape} for an output of shape "
                                     f"{o.shape}")
            backward, vag = self._explicit_fns()
            outs = (backward if which == "backward" else vag)(*args, *seeds)
        if which == "backward":
            return tuple(outs)
        n = len(self.outputs)
        value = outs[0] if self.single else outs[:n]
        return value, tuple(outs[n:])

    @property
    def source(self):
        return self.forward.source


class _Entry:
    """`fn.backward` / `fn.value_and_grad`: callable, with `.source` and `.path`."""

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

    def __call__(self, *args, grad_outputs=None):
        return self.owner._run(self.which, args, grad_outputs)


def compile(inputs, outputs, wrt=None, backend="c") -> CompiledFunction:
    """Compile the graph from `inputs` to `outputs` (a Variable or a list). `wrt` (default: the
    inputs that require grad) are what `backward` differentiates with respect to."""
    return CompiledFunction(inputs, outputs, wrt, backend)
