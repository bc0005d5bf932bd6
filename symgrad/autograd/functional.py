"""`sg.autograd.functional`, as PyTorch's `torch.autograd.functional`: `vjp`, `jvp`,
`jacobian`, `hessian`, `hvp`, `vhp`, with its signatures and the tuples it returns.

Everything is built with `sg.grad`, the graph transform: each result is a graph over the
inputs. Where the inputs hold values, every result of one call is computed together (one
compiled function, cached by the graph's structure, as backward() is); on symbolic inputs the
results are graphs to compile (`sg.compile(inputs, jacobian(f, x))`). Without `create_graph`
the results are detached; with it they are differentiable nodes (holding their values).
Forward-mode products (`jvp`, `hvp`) use the double-vjp identity: the gradient of a vjp with
respect to its (linear) cotangent."""
from __future__ import annotations

from contextlib import nullcontext

import numpy as np

import symgrad.ops.builders as G
from symgrad.autodiff import grad as _grad
from symgrad.variable import Variable, lazy

__all__ = ["vjp", "jvp", "jacobian", "hessian", "hvp", "vhp"]


def _as_tuple(value, arg_name: str, fn_name: str):
    """(whether `value` was a tuple, it as a tuple of Variables), or PyTorch's TypeError."""
    is_tuple = isinstance(value, tuple)
    items = value if is_tuple else (value,)
    for k, item in enumerate(items):
        if not isinstance(item, Variable):
            if is_tuple:
                raise TypeError(f"The {arg_name} given to {fn_name} must be either a Tensor or a tuple of "
                                f"Tensors but the value at index {k} has type {type(item).__name__}.")
            raise TypeError(f"The {arg_name} given to {fn_name} must be either a Tensor or a tuple of "
                            f"Tensors but the given {arg_name} has type {type(item).__name__}.")
    return is_tuple, tuple(items)


def _tupled(is_tuple: bool, items):
    return tuple(items) if is_tuple else items[0]


def _prepare(inputs, create_graph: bool):
    """The inputs `func` is called on: with `create_graph`, those that require grad as they
    are (the result stays a function of them); otherwise detached copies that require grad."""
    out = []
    for x in inputs:
        if create_graph and x.requires_grad:
            out.append(x)
        else:
            d = x.detach()
            d.requires_grad_(True)
            out.append(d)
    return tuple(out)


def _check_v(v, like, fn_name: str, what: str):
    """`v` as a tuple matching the Variables `like` in count and shapes (PyTorch's errors)."""
    _, v = _as_tuple(v, "v", fn_name)
    if len(v) != len(like):
        raise RuntimeError(f"v is a tuple of invalid length: should be {len(like)} but got {len(v)}.")
    for k, (a, b) in enumerate(zip(v, like)):
        if a.shape != b.shape:
            raise RuntimeError(f"Entry {k} in v has invalid size: should be "
                               f"torch.Size({list(b.shape)}) but got torch.Size({list(a.shape)}) "
                               f"(the shape of the {what})")
    return v


def _differentiate(outputs, inputs, grad_outputs, strict: bool, what: str):
    """`sg.grad` of `outputs` (weighted by `grad_outputs`) for every input: zeros where an
    input is not reached, or PyTorch's error with `strict`."""
    live = [k for k, o in enumerate(outputs) if o.requires_grad]
    if strict and len(live) < len(outputs):
        k = next(k for k, o in enumerate(outputs) if not o.requires_grad)
        raise RuntimeError(f"Output {k} of the user-provided function does not require gradients. The "
                           f"outputs must be computed in a differentiable manner from the input when "
                           f"running in strict mode.")
    if live:
        grads = _grad([outputs[k] for k in live], list(inputs),
                      [grad_outputs[k] for k in live] if grad_outputs is not None else None,
                      allow_unused=True)
    else:
        grads = (None,) * len(inputs)
    result = []
    for k, (x, g) in enumerate(zip(inputs, grads)):
        if g is None:
            if strict:
                raise RuntimeError(f"The output of the user-provided function is independent of input {k}. "
                                   f"This is not allowed in strict mode{what}.")
            with lazy():
                g = G.zeros(x)
        result.append(g)
    return tuple(result)


def _finish(results, create_graph: bool):
    """Results (nested lists of graph nodes) as the caller gets them. Those over values are
    computed together; detached unless `create_graph`."""
    from symgrad.engine import evaluate_gradients
    flat = []

    def walk(r):
        if isinstance(r, (list, tuple)):
            for item in r:
                walk(item)
        else:
            flat.append(r)
    walk(results)
    pending = [v for v in flat if v._value is None and v.is_concrete]
    if pending:
        for v, value in zip(pending, evaluate_gradients(pending)):
            v._value = np.asarray(value, dtype=v.dtype)

    def finish(r):
        if isinstance(r, list):
            return [finish(item) for item in r]
        if isinstance(r, tuple):
            return tuple(finish(item) for item in r)
        if create_graph:
            return r
        return r.detach()
    return finish(results)


def _vjp_graph(outputs, inputs, v, strict):
    return _differentiate(outputs, inputs, v, strict, "")


def _jvp_graph(outputs, inputs, v, strict):
    """J v by the double-vjp identity: u -> vjp(u) is linear, and its gradient with respect
    to `u`, weighted by `v`, is the Jacobian-vector product."""
    us = tuple(Variable(np.zeros(o.shape, o.dtype), requires_grad=True) for o in outputs)
    vjps = _differentiate(outputs, inputs, us, strict, "")
    live = [(g, w) for g, w in zip(vjps, v) if g.requires_grad]
    if not live:
        with lazy():
            return tuple(G.zeros(o) for o in outputs)
    grads = _grad([g for g, _ in live], list(us), [w for _, w in live], allow_unused=True)
    return tuple(_zeros_of(o) if g is None else g for g, o in zip(grads, outputs))


def _zeros_of(x):
    with lazy():
        return G.zeros(x)


def vjp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(*inputs), the vector-Jacobian product v^T J for each input). `v` may be left out
    only when func returns a single one-element Variable."""
    is_inputs_tuple, inputs = _as_tuple(inputs, "inputs", "vjp")
    inputs = _prepare(inputs, create_graph)
    is_outputs_tuple, outputs = _as_tuple(func(*inputs), "outputs of the user-provided function", "vjp")
    if v is not None:
        v = _check_v(v, outputs, "vjp", "output")
    elif len(outputs) != 1 or outputs[0].numel() != 1:
        raise RuntimeError("The vector v can only be None if the user-provided function returns a single "
                           "Tensor with a single element.")
    grads = _vjp_graph(outputs, inputs, v, strict)
    outs, grads = _finish((list(outputs), list(grads)), create_graph)
    return _tupled(is_outputs_tuple, outs), _tupled(is_inputs_tuple, grads)


def jvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(*inputs), the Jacobian-vector product J v for each output). `v` may be left out
    only when the input is a single one-element Variable."""
    is_inputs_tuple, inputs = _as_tuple(inputs, "inputs", "jvp")
    inputs = _prepare(inputs, create_graph)
    if v is not None:
        v = _check_v(v, inputs, "jvp", "input")
    elif len(inputs) != 1 or inputs[0].numel() != 1:
        raise RuntimeError("The vector v can only be None if the input to the user-provided function is "
                           "a single Tensor with a single element.")
    else:
        v = (Variable(np.ones(inputs[0].shape, inputs[0].dtype)),)
    is_outputs_tuple, outputs = _as_tuple(func(*inputs), "outputs of the user-provided function", "jvp")
    products = _jvp_graph(outputs, inputs, v, strict)
    outs, products = _finish((list(outputs), list(products)), create_graph)
    return _tupled(is_outputs_tuple, outs), _tupled(is_outputs_tuple, products)


def _jacobian_graph(outputs, inputs, strict):
    """[output][input] Jacobian graphs, each of shape output.shape + input.shape, one vjp per
    output element."""
    from symgrad import functional as F
    blocks = []
    for i, out in enumerate(outputs):
        rows = []
        for k in range(out.numel()):
            seed = np.zeros(out.shape, out.dtype)
            seed.reshape(-1)[k] = 1
            rows.append(_differentiate((out,), inputs, (Variable(seed),), strict,
                                       f" (output {i}, element {k})"))
        concrete = all(g.is_concrete for r in rows for g in r)
        if concrete:
            _evaluate_rows(rows)
        with nullcontext() if concrete else lazy():
            per = []
            for j, x in enumerate(inputs):
                col = [r[j] for r in rows]
                stacked = F.stack(col) if col else Variable(np.zeros((0,) + x.shape, x.dtype))
                per.append(G.reshape(stacked, out.shape + x.shape))
        blocks.append(per)
    return blocks


def _evaluate_rows(rows):
    """Values of the rows of a Jacobian over values, one compiled call per row: the rows
    differ only in their seed (an argument), so they share one compiled function."""
    from symgrad.engine import evaluate_gradients
    for row in rows:
        pending = [g for g in row if g._value is None]
        for g, value in zip(pending, evaluate_gradients(pending)):
            g._value = np.asarray(value, dtype=g.dtype)


def _strategy(strategy, vectorize, who):
    if strategy not in ("forward-mode", "reverse-mode"):
        raise ValueError(f'Expected strategy to be either "forward-mode" or "reverse-mode". Hint: '
                         f'{who} got {strategy!r}')
    if strategy == "forward-mode" and not vectorize:
        raise NotImplementedError('torch.autograd.functional.jacobian: `strategy="forward-mode"` only '
                                  'works with `vectorize=True`')


def _nest(blocks, is_outputs_tuple, is_inputs_tuple):
    """Blocks [output][input] nested as PyTorch returns them."""
    if is_outputs_tuple:
        return tuple(_tupled(is_inputs_tuple, row) for row in blocks)
    return _tupled(is_inputs_tuple, blocks[0])


def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False, strategy="reverse-mode"):
    """The Jacobian of `func` at `inputs`: one Variable of shape output.shape + input.shape,
    or tuples of them as PyTorch nests them (by output, then by input, for whichever of the
    two is a tuple). `vectorize` is accepted; every row is one vjp."""
    _strategy(strategy, vectorize, "jacobian")
    is_inputs_tuple, inputs = _as_tuple(inputs, "inputs", "jacobian")
    inputs = _prepare(inputs, create_graph)
    is_outputs_tuple, outputs = _as_tuple(func(*inputs), "outputs of the user-provided function", "jacobian")
    blocks = _finish(_jacobian_graph(outputs, inputs, strict), create_graph)
    return _nest(blocks, is_outputs_tuple, is_inputs_tuple)


def _scalar_output(func, inputs, who):
    out = func(*inputs)
    is_tuple, outs = _as_tuple(out, "outputs of the user-provided function", who)
    if is_tuple and len(outs) != 1:
        raise RuntimeError(f"The function given to {who} should return a single Tensor")
    if outs[0].numel() != 1:
        raise RuntimeError(f"The Tensor returned by the function given to {who} should contain a single "
                           f"element")
    return outs[0]


def hessian(func, inputs, create_graph=False, strict=False, vectorize=False,
            outer_jacobian_strategy="reverse-mode"):
    """The Hessian of the scalar function `func` at `inputs`: shape input.shape * 2, or for a
    tuple of inputs a tuple of tuples (block [i][j] is d2 f / d input_i d input_j)."""
    _strategy(outer_jacobian_strategy, vectorize, "hessian")
    is_inputs_tuple, inputs = _as_tuple(inputs, "inputs", "hessian")
    inputs = _prepare(inputs, create_graph)
    out = _scalar_output(func, inputs, "hessian")
    first = _differentiate((out,), inputs, None, strict, "")
    first = tuple(G.reshape(g, x.shape) for g, x in zip(first, inputs))
    blocks = _finish(_jacobian_graph(first, inputs, strict), create_graph)
    return _nest(blocks, is_inputs_tuple, is_inputs_tuple)


def _second_order(func, inputs, v, create_graph, strict, who, forward):
    is_inputs_tuple, inputs = _as_tuple(inputs, "inputs", who)
    inputs = _prepare(inputs, create_graph)
    if v is not None:
        v = _check_v(v, inputs, who, "input")
    elif len(inputs) != 1 or inputs[0].numel() != 1:
        raise RuntimeError("The vector v can only be None if the input to the user-provided function is "
                           "a single Tensor with a single element.")
    else:
        v = (Variable(np.ones(inputs[0].shape, inputs[0].dtype)),)
    out = _scalar_output(func, inputs, who)
    first = _differentiate((out,), inputs, None, strict, "")
    if forward:
        products = _jvp_graph(first, inputs, v, strict)
    else:
        products = _differentiate(first, inputs, v, strict, "")
    out, products = _finish((out, list(products)), create_graph)
    return out, _tupled(is_inputs_tuple, products)


def vhp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(*inputs), v^T H): the vector-Hessian product of the scalar function `func`."""
    return _second_order(func, inputs, v, create_graph, strict, "vhp", forward=False)


def hvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(*inputs), H v): the Hessian-vector product of the scalar function `func`."""
    return _second_order(func, inputs, v, create_graph, strict, "hvp", forward=True)
