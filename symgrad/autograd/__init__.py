"""`symgrad.autograd`, laid out as PyTorch's `torch.autograd`: `Variable`, `grad`, custom
`Function`s (autograd.function), the backward graph's classes (autograd.graph), the grad
modes (autograd.grad_mode), `functional` (jacobian, hessian, vjp, jvp, hvp, vhp), and
`gradcheck` / `gradgradcheck`."""
from symgrad.autodiff import GradcheckError, gradcheck, gradgradcheck
from symgrad.autograd import functional, graph, grad_mode, hooks, profiler  # noqa: F401  (hooks: register_hook)
from symgrad.autograd.function import Function, FunctionCtx, once_differentiable
from symgrad.autograd.grad_mode import (enable_grad, inference_mode, is_grad_enabled,
                                        is_inference_mode_enabled, no_grad, set_grad_enabled)
from symgrad.engine import autograd_grad as grad
from symgrad.variable import AccumulateGrad, Variable


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, grad_variables=None,
             inputs=None):
    """`sg.autograd.backward(tensors, grad_tensors)`: `t.backward(g)` for each pair."""
    tensors = list(tensors) if isinstance(tensors, (list, tuple)) else [tensors]
    grads = grad_tensors if grad_tensors is not None else grad_variables
    if grads is None:
        grads = [None] * len(tensors)
    elif not isinstance(grads, (list, tuple)):
        grads = [grads]
    if len(grads) != len(tensors):
        raise RuntimeError(f"backward: {len(tensors)} tensors but {len(grads)} gradients")
    for t, g in zip(tensors, grads):
        t.backward(g, create_graph=create_graph, inputs=inputs)


__all__ = ["Variable", "Function", "FunctionCtx", "AccumulateGrad", "grad", "backward", "gradcheck",
           "gradgradcheck", "GradcheckError", "functional", "graph", "grad_mode", "profiler",
           "once_differentiable",
           "no_grad", "enable_grad", "set_grad_enabled", "inference_mode", "is_grad_enabled",
           "is_inference_mode_enabled"]
