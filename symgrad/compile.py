"""`sg.compile`: forward, backward and value_and_grad of a graph as compiled functions."""
from __future__ import annotations

import builtins
import sys
import threading
from pathlib import Path

import numpy as np

from symgrad import config, dtypes
from symgrad.autodiff import grad
from symgrad.variable import Variable

BACKENDS = ("c", "cuda", "interp")
LARGE_LOOP = 1 << 20      # a loop nest this long makes the function worth -O3


def _spec_name(v, k):
    return f"input {k} '{v.name}'" if v.name else f"input {k}"


def __getattr__(name):
    # FAST_CALL was a constant read at import; the setting is config.fast_call() (SYMGRAD_FAST_CALL),
    # read when a function first gets called. Kept for tests/test_compile_behaviour.py.
    if name == "FAST_CALL":
        return config.fast_call()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


SMALL_INPUT_BYTES = 1 << 20     # inputs up to this size have their pointer remembered
POOL_MIN_BYTES = 1 << 20        # outputs this large come from a per-thread pool
POOL_SIZE = 2                   # output arrays kept per output, per thread


def _references(pool, i):
    """How many references the array of pool entry i has. The pool tells free arrays from
    held ones by comparing this with the count of an array nobody else holds, measured once
    through this same function, so no interpreter's way of counting is assumed."""
    return sys.getrefcount(pool[i][0])


_FREE_REFERENCES = []


def _free_references(view, chars) -> int:
    if not _FREE_REFERENCES:
        arr = np.empty(1)
        probe = [(arr, view(chars, arr, True))]
        del arr
        _FREE_REFERENCES.append(_references(probe, 0))
    return _FREE_REFERENCES[0]


def _pooled(shape, dtype, slot, local, view, chars):
    """Large outputs without page faults: a fresh 40 MB array costs the OS 10 ms of zeroing on
    every call (half of W1's time at 1e7). Each thread keeps a couple of arrays per output, with
    their C pointers, and hands one out again only when nothing but the pool refers to it, so
    a caller never sees a result it holds change: PyTorch's caching allocator, in small."""
    free = _free_references(view, chars)

    def take():
        pool = local.__dict__.setdefault("pools", {}).setdefault(slot, [])
        for i in range(len(pool)):
            if _references(pool, i) == free:
                return pool[i]
        arr = np.empty(shape, dtype)
        entry = (arr, view(chars, arr, True))
        if len(pool) < POOL_SIZE:
            pool.append(entry)
        return entry
    return take


class Function:
    """One compiled graph: call it with arrays. `.source` is its C (or CUDA) text, `.path`
    the file in the build directory."""

    def __init__(self, args, outputs, name, title, backend, describe_args=None, out_names=None):
        self.args, self.graph_outputs = list(args), list(outputs)
        self.out_names = out_names          # C names of the outputs (gradients: d<input>)
        self.name, self.backend = name, backend
        self.describe_args = describe_args or [_spec_name(a, k) for k, a in enumerate(args)]
        self._lock = threading.Lock()
        self._lib = None
        if backend == "interp":
            self._source, self.path, self._build, self.consts = None, None, None, []
            self._specs = [(a.shape, a.dtype) for a in self.args]
            return
        self._specs = [(a.shape, a.dtype) for a in self.args]
        self._local = threading.local()
        self._title = title
        if backend == "c" and self._from_index(name, title):
            return
        self._generate(name, title)

    def _generate(self, name, title):
        """Generate the source and start its build."""
        backend = self.backend
        from symgrad.codegen.render import generate
        self._source, schedule, graph = generate(self.args, self.graph_outputs, f"symgrad_{name}", title,
                                                 "c" if backend == "c" else backend, self.out_names)
        self.consts = [b.node.value for b in schedule.consts]
        self.checks = schedule.checks
        self._out_specs = [(b.node.shape, b.node.dtype) for b in schedule.outs]
        self.n_kernels = len(schedule.kernels)
        if backend == "c":
            from symgrad.build import Build, blas_flags, index_store, vector_math_flags
            uses_matmul = any(k.kind == "matmul" for k in schedule.kernels)
            large = any(k.kind != "matmul" and k.work >= LARGE_LOOP for k in schedule.kernels)
            self._build = Build(self._source, f"symgrad_{name}_packed",
                                link=(blas_flags() if uses_matmul else ()) + vector_math_flags(),
                                large=large)
            index_store(self._graph_key, {"key": self._build.key, "symbol": self._build.symbol,
                                          "checks": self.checks, "n_kernels": self.n_kernels})
        else:
            from symgrad.cuda import CudaBuild
            self._build = CudaBuild(self._source, f"symgrad_{name}_packed")
        self.path = self._build.source_path

    def _from_index(self, name, title) -> bool:
        """Use the library this graph compiled to before, if the cache still holds it."""
        from symgrad.build import CachedBuild, graph_key, index_lookup
        from symgrad.graph import captured_constants, structure_key
        self._graph_key = graph_key(structure_key(self.graph_outputs, self.args, names=True),
                                    self.backend, name, title)
        facts = index_lookup(self._graph_key)
        if facts is None:
            return False
        self._source = None
        self.consts = [np.ascontiguousarray(v.value()) for v in
                       captured_constants(self.graph_outputs, self.args)]
        self.checks = facts["checks"]
        self.n_kernels = facts["n_kernels"]
        self._out_specs = [(o.shape, o.dtype) for o in self.graph_outputs]
        self._build = CachedBuild(facts["entry_path"], facts["symbol"])
        self.path = self._build.source_path
        return True

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

    @property
    def source(self):
        if self._source is None and self.path is not None:
            self._source = self.path.read_text()
        return self._source

    def library(self):
        if self._lib is None:
            with self._lock:
                if self._lib is None:
                    from symgrad.build import CachedBuild
                    try:
                        self._lib = self._build.result()
                    except OSError:
                        if not isinstance(self._build, CachedBuild):
                            raise
                        # The graph index led to a library that does not load (damaged after its
                        # digest was written): drop that entry, generate and compile afresh.
                        self._build.discard()
                        self._generate(self.name, self._title)
                        self._lib = self._build.result()
        return self._lib

    def convert(self, values):
        """Arguments as contiguous arrays of the declared shapes and dtypes, or a clear error."""
        if len(values) != len(self.args):
            raise TypeError(f"{self.name}() takes {len(self.args)} inputs "
                            f"({', '.join(self.describe_args)}), got {len(values)}")
        return [self.convert_one(value, spec, who)
                for value, spec, who in zip(values, self.args, self.describe_args)]

    def convert_one(self, value, spec, who):
        given_array = isinstance(value, (np.ndarray, Variable))
        try:
            arr = value.value() if isinstance(value, Variable) else np.asarray(value)
        except ValueError as e:        # a ragged list
            raise ValueError(f"{self.name}: {who} expects an array of shape {spec.shape} and dtype "
                             f"{spec.dtype}, got a {type(value).__name__} that is not one ({e})") from None
        if arr.dtype != spec.dtype:
            ok = (not given_array and np.can_cast(arr.dtype, spec.dtype, "same_kind")) or \
                (arr.dtype.kind == spec.dtype.kind == "b") or \
                arr.dtype.newbyteorder("=") == spec.dtype      # the other byte order: same values
            if not ok:
                raise TypeError(f"{self.name}: {who} expects dtype {spec.dtype}, got {arr.dtype} "
                                f"(shape {arr.shape}); convert it with .astype('{spec.dtype}')")
            arr = arr.astype(spec.dtype)
        if arr.shape != spec.shape:
            raise ValueError(f"{self.name}: {who} expects shape {spec.shape}, got {arr.shape} "
                             f"(dtype {arr.dtype})")
        # (np.ascontiguousarray would turn a 0-d array into shape (1,))
        return arr if arr.flags.c_contiguous else np.ascontiguousarray(arr).reshape(arr.shape)

    def _pointers(self):
        """This thread's argument-pointer array, with the constants already in place."""
        ptrs = getattr(self._local, "ptrs", None)
        if ptrs is None:
            ffi = self.library().ffi
            n = len(self.args)
            ptrs = ffi.new("void *[]", max(1, n + len(self.consts) + len(self._out_specs)))
            self._local.keep = [ffi.from_buffer(c) if c.size else ffi.NULL for c in self.consts]
            for k, c in enumerate(self._local.keep):
                ptrs[n + k] = c
            self._local.last = [None] * n      # inputs whose pointers are in place
            self._local.ptrs = ptrs
        return ptrs

    def run(self, arrays):
        """Call with arrays already converted; returns the list of outputs."""
        if self.backend == "interp":
            from symgrad.interpret import evaluate
            return [np.array(v) for v in evaluate(self.graph_outputs, dict(zip(self.args, arrays)),
                                                  recompute=True)]
        if self.backend == "cuda":
            return self._cuda_caller()(arrays)
        lib = self._lib or self.library()
        outs = [np.empty(shape, dtype) for shape, dtype in self._out_specs]
        ptrs = self._pointers()
        self._local.last[:] = [None] * len(self._local.last)   # the slots are overwritten below
        # cffi's from_buffer without its Python-level wrapper: this is the per-call hot path.
        view, chars, null = lib.ffi._backend.from_buffer, lib.ffi.BCharA, lib.ffi.NULL
        k = 0
        for a in arrays:
            ptrs[k] = view(chars, a, False) if a.size else null
            k += 1
        k += len(self.consts)
        for a in outs:
            ptrs[k] = view(chars, a, True) if a.size else null
            k += 1
        status = lib.entry(ptrs)
        if status == 2:
            raise IndexError(f"{self.name}: a value is out of range: {'; '.join(self.checks)}")
        if status != 0:
            raise MemoryError(f"{self.name}: the compiled code could not allocate its scratch memory")
        return outs

    def __call__(self, *values):
        fast = self.__dict__.get("_fast")
        if fast is None:
            if self.backend == "cuda":
                fast = self._fast = lambda *values: self._cuda_caller()(values)
            else:
                fast = self._fast = self._make_fast_call() if self.backend == "c" and config.fast_call() \
                    else self._general_call
        return fast(*values)

    def _cuda_caller(self):
        """Host arrays in, host arrays out; device arrays in, device arrays out (symgrad.cuda)."""
        caller = self.__dict__.get("_caller")
        if caller is None:
            from symgrad.cuda import Caller
            caller = self._caller = Caller(self)
        return caller

    def _general_call(self, *values):
        return self.run(self.convert(values))

    def _make_fast_call(self, returns=None):
        """A straight-line caller for the common case (C-contiguous arrays of the declared
        shapes and dtypes), written out for this function: a call then costs a few
        microseconds. Anything else takes the general path, which converts or explains."""
        lib = self.library()
        n_in, n_const = len(self.args), len(self.consts)
        names = [f"a{k}" for k in range(n_in)]
        env = {"ndarray": np.ndarray, "empty": np.empty, "view": lib.ffi._backend.from_buffer,
               "chars": lib.ffi.BCharA, "entry": lib.entry, "local": self._local, "self": self,
               "pointers": self._pointers}
        lines = ["def call(*args):",
                 f"    if len(args) != {n_in}:",
                 "        return self._general_call(*args)",
                 f"    {', '.join(names) + ',' if names else '_'} = args" if names else "    pass"]
        checks = []
        for k, (shape, dtype) in enumerate(self._specs):
            env[f"s{k}"], env[f"d{k}"] = shape, dtype
            env[f"st{k}"] = np.empty(shape, dtype).strides if 0 not in shape else None
            checks.append(f"type(a{k}) is not ndarray or a{k}.dtype is not d{k} or a{k}.shape != s{k} "
                          f"or a{k}.strides != st{k}")
        if checks:
            lines.append(f"    if {' or '.join(f'({c})' for c in checks)}:")
            lines.append("        return self._general_call(*args)")
        outs = []
        for k, (shape, dtype) in enumerate(self._out_specs):
            env[f"os{k}"], env[f"od{k}"] = shape, dtype
            outs.append(f"o{k}")
        lines.append("    p = getattr(local, 'ptrs', None) or pointers()")
        lines.append("    last = local.last")
        for k, (shape, dtype) in enumerate(self._specs):
            if 0 in shape:
                continue
            if np.dtype(dtype).itemsize * int(np.prod(shape)) <= SMALL_INPUT_BYTES:
                # The same array as last time: its pointer is already in place (we hold it,
                # so numpy will not resize or free it meanwhile).
                lines.append(f"    if a{k} is not last[{k}]:")
                lines.append(f"        last[{k}] = a{k}")
                lines.append(f"        p[{k}] = view(chars, a{k}, False)")
            else:
                lines.append(f"    p[{k}] = view(chars, a{k}, False)")
        for k, (shape, dtype) in enumerate(self._out_specs):
            if 0 in shape:
                lines.append(f"    o{k} = empty(os{k}, od{k})")
                continue
            if np.dtype(dtype).itemsize * int(np.prod(shape)) >= POOL_MIN_BYTES:
                env[f"take{k}"] = _pooled(shape, dtype, k, self._local, env["view"], env["chars"])
                lines.append(f"    o{k}, p[{n_in + n_const + k}] = take{k}()")
            else:      # small: a pool's bookkeeping would cost more than it saves
                lines.append(f"    o{k} = empty(os{k}, od{k})")
                lines.append(f"    p[{n_in + n_const + k}] = view(chars, o{k}, True)")
        if returns is None:            # the list of outputs
            result, env["wrap"] = f"[{', '.join(outs)}]", lambda r: r
        else:                          # (value, gradients): `returns` = (number of values, single)
            n, single = returns
            values = outs[0] if single else f"[{', '.join(outs[:n])}]"
            grads = "".join(f"{o}, " for o in outs[n:])
            result = f"({values}, ({grads}))" if n else f"({grads})"
            env["wrap"] = (lambda r: ((r[0] if single else r[:n]), tuple(r[n:]))) if n else tuple
        lines = [line.replace("return self._general_call(*args)", "return wrap(self._general_call(*args))")
                 for line in lines]
        lines.append("    if entry(p):")
        lines.append("        return wrap(self._general_call(*args))")
        lines.append(f"    return {result}")
        exec(builtins.compile("\n".join(lines), f"<symgrad {self.name} caller>", "exec"), env)
        return env["call"]

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
        _check_inputs_given(self.inputs, self.outputs)
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
        from symgrad.codegen.schedule import comment_name    # titles land in C comments
        names = ", ".join(comment_name(v.name) if v.name else f"input{k}" for k, v in enumerate(self.inputs))
        outs = ", ".join(comment_name(v.name) if v.name else f"output{k}" for k, v in enumerate(self.outputs))
        position = {id(v): k for k, v in enumerate(self.inputs)}    # by identity: == builds a node
        wrt_names = ", ".join(comment_name(v.name) if v.name else f"input{position[id(v)]}"
                              for v in self.wrt)
        # In the generated code, outputs keep their names and a gradient is d<its input>.
        self._out_names = [v.name or f"out{k}" for k, v in enumerate(self.outputs)]
        self._grad_names = ["d" + (v.name or f"input{position[id(v)]}") for v in self.wrt]
        self.forward_fn = Function(self.inputs, self.outputs, "forward",
                                   f"forward: ({names}) -> ({outs})", backend, out_names=self._out_names)
        self.forward = _Forward(self)
        # Outputs that carry a gradient: float results that depend on an input requiring grad.
        # The others (argmax, comparisons, values computed from data alone) are returned by
        # forward and value_and_grad but contribute nothing to the gradients.
        self._grad_graph = _differentiable(self.outputs, self.wrt)
        self._diff = [k for k, o in enumerate(self._grad_graph)
                      if o.requires_grad and dtypes.is_float(o.dtype)]
        self._implicit = all(self.outputs[k].numel() == 1 for k in self._diff)
        self._explicit = None
        self.backward_fn = self.value_and_grad_fn = None
        if self.wrt and self._diff:
            if self._implicit:
                grads = self._grads(None)
                self.backward_fn = Function(self.inputs, grads, "backward",
                                            f"backward: d({outs})/d({wrt_names}), from ({names})", backend,
                                            out_names=self._grad_names)
                self.value_and_grad_fn = Function(
                    self.inputs, self.outputs + grads, "value_and_grad",
                    f"value_and_grad: ({outs}) and d({outs})/d({wrt_names}), from ({names})", backend,
                    out_names=self._out_names + self._grad_names)
        self.backward = _Entry(self, "backward")
        self.value_and_grad = _Entry(self, "value_and_grad")

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
            self._explicit = (Function(args, grads, "backward_seeded", "backward with grad_outputs",
                                       self.backend, out_names=self._grad_names),
                              Function(args, self.outputs + grads, "value_and_grad_seeded",
                                       "value_and_grad with grad_outputs", self.backend,
                                       out_names=self._out_names + self._grad_names))
        return self._explicit

    def __call__(self, *args):
        return self.call_forward(*args)

    def call_forward(self, *args):
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
                if self.backend == "cuda" and k in self._diff and _on_device(s):
                    fixed.append(s)          # checked (shape, dtype, layout) where it is passed
                    continue
                arr = s.value() if isinstance(s, Variable) else np.asarray(s)
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
    def source(self):
        return self.forward.source


def _check_inputs_given(inputs, outputs):
    """Every symbolic leaf the outputs depend on must be an input: it has no value to capture."""
    from symgrad.graph import toposort
    given = {id(v) for v in inputs}
    missing = [v for v in toposort(outputs, lambda v: id(v) in given or v.is_concrete)
               if id(v) not in given and v.op is None and v._value is None]
    if missing:
        names = ", ".join(v._describe() for v in missing)
        raise ValueError(f"sg.compile: the outputs depend on {names}, which has no value and is not "
                         f"among the inputs; add it to sg.compile's inputs (or give it a value)")


def _on_device(value):
    from symgrad.cuda import device_interface
    return device_interface(value) is not None


def _shape_of(value):
    if _on_device(value):
        return tuple(value.__cuda_array_interface__["shape"])

    try:
        return np.shape(value.value() if isinstance(value, Variable) else value)
    except ValueError:          # ragged
        return None


def _differentiable(outputs, wrt):
    """`outputs`, rebuilt where needed so that every node depending on a `wrt` input requires
    grad: an input named in `wrt` need not have been made with requires_grad=True, but the
    gradient graph follows requires_grad flags, which were set when the graph was built."""
    wanted = {id(v) for v in wrt}
    if all(v.requires_grad for v in wrt):
        return list(outputs)
    from symgrad.graph import toposort
    from symgrad.ops import OPS
    memo, copied = {}, set()
    for v in toposort(outputs, lambda v: id(v) in wanted):
        ins = [memo.get(id(i), i) for i in v.inputs]
        if id(v) in wanted or v.op is None or not any(id(i) in wanted or id(i) in copied for i in v.inputs):
            memo[id(v)] = v
            continue
        new = Variable._node(v.op, tuple(ins), v.attrs, v.shape, v.dtype)
        new.name = v.name
        new._requires_grad = OPS[v.op].vjp is not None and \
            any(i.requires_grad or id(i) in wanted for i in ins)
        memo[id(v)] = new
        copied.add(id(v))
    return [memo[id(o)] for o in outputs]


class _Forward:
    """`fn.forward`: called, it is `fn(...)` (one array for a single output, a list for a list);
    otherwise it is the compiled Function (`.source`, `.path`, ...)."""

    def __init__(self, owner):
        self._owner = owner

    def __call__(self, *args):
        return self._owner.call_forward(*args)

    def __getattr__(self, name):
        return getattr(self._owner.forward_fn, name)

    def __repr__(self):
        return repr(self._owner.forward_fn)


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
        if grad_outputs is None:
            fast = self.__dict__.get("_fast")
            if fast is not None:
                return fast(*args)
            owner = self.owner
            fn = owner.backward_fn if self.which == "backward" else owner.value_and_grad_fn
            if config.fast_call() and owner._implicit and owner._diff and fn is not None and \
                    fn.backend == "c":
                # One generated caller from the arrays to (value, gradients); everything else
                # (seeds given, the interpreter, errors) goes through _run.
                n = 0 if self.which == "backward" else len(owner.outputs)
                self._fast = fn._make_fast_call((n, owner.single))
                return self._fast(*args)
        return self.owner._run(self.which, args, grad_outputs)


def compile(inputs, outputs, wrt=None, backend="c") -> CompiledFunction:
    """Compile the graph from `inputs` to `outputs` (a Variable or a list). `wrt` (default: the
    inputs that require grad) are what `backward` differentiates with respect to."""
    return CompiledFunction(inputs, outputs, wrt, backend)
