"""`Variable.backward()`: build the gradient graph, run it, accumulate into `.grad`."""
from __future__ import annotations

import os
import warnings

import numpy as np

from symgrad.autodiff import grad
from symgrad.graph import structure_key, toposort
from symgrad.interpret import evaluate
from symgrad.variable import Variable


def _targets(output: Variable):
    """Leaves that require grad, and non-leaves that asked to retain theirs."""
    order = toposort([output], lambda v: not v.requires_grad)
    return [v for v in order if v.requires_grad and (v.op is None or v._retains_grad)]


def run_backward(output: Variable, gradient=None, inputs=None):
    if not output.requires_grad:
        raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn: "
                           f"backward() was called on {output._describe()}, which does not require grad")
    if gradient is None and output.numel() != 1:
        raise RuntimeError(f"grad can be implicitly created only for scalar outputs "
                           f"(this output has shape {output.shape}); pass a gradient of that shape")
    if gradient is not None and not isinstance(gradient, Variable):
        gradient = Variable(np.asarray(gradient))
    targets = list(inputs) if inputs is not None else _targets(output)
    if not targets:
        return
    grads = grad([output], targets, None if gradient is None else [gradient], allow_unused=True)
    values = evaluate_gradients(list(grads))
    for v, g in zip(targets, values):
        if g is None:
            continue
        if v.grad is None:
            v.grad = Variable(np.array(g, dtype=v.dtype))
        else:
            v.grad._writable()[...] += g


_compiled: dict[str, object] = {}
MAX_CACHED = 256          # gradient graphs kept compiled in this process (the disk cache keeps all)


def _compile(args, outputs):
    """Compile a gradient graph for eager backward. The function keeps only placeholders of
    its arguments: the graph and the first call's values must not live as long as the cache."""
    from symgrad.compile import Function
    fn = Function(args, outputs, "eager_backward", "backward() of an eager graph", "c")
    fn.args = [Variable(shape=a.shape, dtype=a.dtype) for a in args]
    fn.graph_outputs = []
    return fn
_warned = []


def backend() -> str:
    """Where eager backward runs: compiled C by default; `SYMGRAD_EAGER_BACKEND=interp` (or no
    C compiler, with one warning) runs it on the numpy interpreter."""
    choice = os.environ.get("SYMGRAD_EAGER_BACKEND", "c")
    if choice == "c":
        from symgrad.build import have_c_compiler
        if not have_c_compiler():
            if not _warned:
                _warned.append(True)
                warnings.warn("symgrad: no working C compiler, so backward() runs on the numpy "
                              "interpreter (slower). Install gcc or clang, or set SYMGRAD_CC.")
            return "interp"
    return choice


def evaluate_gradients(grads):
    """Values of gradient graphs whose upstream holds values (the forward pass ran eagerly).

    The values already computed are the compiled function's arguments, so its cache key is
    the graph's structure: a training loop that rebuilds the same graph compiles once."""
    live = [g for g in grads if g is not None]
    if backend() == "interp":
        values = iter(evaluate(live))
    else:
        args = [v for v in toposort(live, lambda v: v._value is not None)
                if v._value is not None and not v._literal]
        key = structure_key(live, args)
        fn = _compiled.get(key)
        if fn is None:
            fn = _compiled[key] = _compile(args, live)
            while len(_compiled) > MAX_CACHED:          # oldest first
                _compiled.pop(next(iter(_compiled)))
        values = iter(fn.run([np.ascontiguousarray(a._value) for a in args]))
    return [None if g is None else next(values) for g in grads]
