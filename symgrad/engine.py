"""`Variable.backward()`: build the gradient graph, run it, accumulate into `.grad`."""
from __future__ import annotations

import numpy as np

from symgrad.autodiff import grad
from symgrad.graph import toposort
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


def evaluate_gradients(grads):
    """Values of gradient graphs whose upstream holds values (the forward pass ran eagerly)."""
    from symgrad.interpret import evaluate
    live = [g for g in grads if g is not None]
    values = iter(evaluate(live))
    return [None if g is None else next(values) for g in grads]
