"""`Variable.backward()`: build the gradient graph, run it, accumulate into `.grad`.

The Variable reaches this module through its `run_backward` hook, which importing this
module fills (symgrad/__init__ imports it): the graph node does not import the compiler."""
from __future__ import annotations

import warnings

import numpy as np

from symgrad import config
from symgrad.autodiff import grad
from symgrad.graph import structure_key, toposort
from symgrad.interpret import evaluate
from symgrad.variable import Variable, connect


def _targets(output: Variable):
    """Leaves that require grad, and non-leaves that asked to retain theirs."""
    order = toposort([output], lambda v: not v.requires_grad)
    return [v for v in order if v.requires_grad and (v.op is None or v._retains_grad)]


def run_backward(output: Variable, gradient=None, inputs=None, create_graph=False):
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
    for v, node, g in zip(targets, grads, values):
        if g is None:
            continue
        if create_graph:
            node = _as_gradient(node, g, v.dtype, create_graph)
            v.grad = node if v.grad is None else v.grad + node
        elif v.grad is None:
            v.grad = _as_gradient(node, g, v.dtype, create_graph)
        elif v.grad.requires_grad:           # a graph from an earlier create_graph: no longer kept
            v.grad = Variable(np.asarray(v.grad.value() + g, dtype=v.dtype))
        else:
            v.grad._writable()[...] += g


def autograd_grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
                  only_inputs=True, allow_unused=None, is_grads_batched=False, materialize_grads=False):
    """`sg.autograd.grad`: PyTorch's function. The gradients of Variables with values come
    back as values: detached leaves, or with `create_graph=True` nodes of the gradient graph
    (differentiable again). For symbolic graphs they are graphs, detached unless `create_graph`."""
    if is_grads_batched:
        raise NotImplementedError("sg.autograd.grad: is_grads_batched is not supported; use sg.func.vmap")
    outs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    ins = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    if grad_outputs is not None and not isinstance(grad_outputs, (list, tuple)):
        grad_outputs = [grad_outputs]
    grads = grad(outs, ins, grad_outputs, allow_unused=True)
    for k, g in enumerate(grads):
        if g is None and not (allow_unused or materialize_grads):
            raise RuntimeError(f"The differentiated Variable at index {k} ({ins[k]._describe()}) appears "
                               f"to not have been used in the graph. Set allow_unused=True if this is "
                               f"the desired behavior.")
    live = [g for g in grads if g is not None]
    concrete = bool(live) and all(g.is_concrete for g in live)
    values = evaluate_gradients(list(grads)) if concrete else [None] * len(grads)
    result = []
    for x, g, value in zip(ins, grads, values):
        if g is None:
            result.append(Variable(np.zeros(x.shape, x.dtype)) if materialize_grads else None)
        elif concrete:
            result.append(_as_gradient(g, value, x.dtype, create_graph))
        else:                                   # symbolic: a graph, detached unless create_graph
            result.append(g if create_graph else g.detach())
    return tuple(result)


def _as_gradient(node, value, dtype, create_graph):
    """A gradient as the caller gets it: with `create_graph`, the node of the gradient graph,
    holding its value (differentiable in turn); else a new leaf with the value."""
    value = np.array(value, dtype=dtype)
    if create_graph:
        node._value = value
        return node
    return Variable(value)


_compiled: dict[str, object] = {}
MAX_CACHED = 256          # gradient graphs kept compiled in this process (the disk cache keeps all)


def _compile(args, outputs):
    """Compile a gradient graph for eager backward. The function keeps only placeholders of
    its arguments: the graph and the first call's values must not live as long as the cache."""
    from symgrad.compile import Function
    return Function(args, outputs, "eager_backward", "backward() of an eager graph", "c", keep_graph=False)
_warned = []


def backend() -> str:
    """Where eager backward runs: compiled C by default; `SYMGRAD_EAGER_BACKEND=interp` (or no
    C compiler, with one warning) runs it on the numpy interpreter."""
    choice = config.eager_backend()
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


connect(run_backward=run_backward)
