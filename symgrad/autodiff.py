"""Reverse-mode AD by source transformation: a graph in, the graph of its gradients out.
The gradient graph is built from the same ops, so it can be differentiated again."""
from __future__ import annotations

import numpy as np

from symgrad import dtypes
import symgrad.ops.builders as G
from symgrad.graph import toposort
from symgrad.ops.primitives import OPS
from symgrad.variable import Variable, lazy, serial


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _seed(output: Variable, given) -> Variable:
    if given is None:
        if output.numel() != 1:
            raise RuntimeError(f"grad can be implicitly created only for scalar outputs; "
                               f"the output has shape {output.shape}: pass grad_outputs")
        return G.broadcast_to(Variable.literal(1, output.dtype), output.shape)
    g = given if isinstance(given, Variable) else Variable(np.asarray(given, dtype=output.dtype))
    if g.shape != output.shape:
        if g.numel() == output.numel() == 1:
            return G.reshape(g, output.shape)
        raise RuntimeError(f"Mismatch in shape: grad_output has a shape of {g.shape} and "
                           f"output has a shape of {output.shape}")
    return G.cast(g, output.dtype)


def grad(outputs, inputs, grad_outputs=None, allow_unused=False, retain_graph=None,
         create_graph=True):
    """Gradients of `outputs` (weighted by `grad_outputs`) with respect to `inputs`, as Variables.

    The result is a graph over the same nodes; where the inputs hold values, the gradients'
    values are computed when read."""
    outputs, inputs = _as_list(outputs), _as_list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    grad_outputs = _as_list(grad_outputs)
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad: {len(outputs)} outputs but {len(grad_outputs)} grad_outputs")
    for v in outputs + inputs:
        if not isinstance(v, Variable):
            raise TypeError(f"grad: expected Variables, got {type(v).__name__}")
    for o in outputs:
        if not o.requires_grad:
            raise RuntimeError(f"grad: the output {o._describe()} does not require grad; "
                               f"make an input with requires_grad=True")
    with lazy():
        grads = _backward_pass(outputs, grad_outputs, inputs)
    result = []
    for x, g in zip(inputs, grads):
        if g is None:
            if allow_unused:
                result.append(None)
                continue
            with lazy():
                g = G.zeros(x)
        result.append(g)
    return tuple(result)


def _backward_pass(outputs, grad_outputs, inputs):
    wanted = {id(x) for x in inputs}
    # Walk through wanted nodes too: an input may lie upstream of another (a leaf and an
    # intermediate that retains its grad). Nothing upstream of a node without grad matters.
    order = toposort(outputs, lambda v: not v.requires_grad)
    # Only nodes that lie on a path from an input need a cotangent.
    reaches = set(wanted)
    for v in order:
        if id(v) not in wanted and v.op and v.requires_grad and \
                any(id(i) in reaches for i in v.inputs):
            reaches.add(id(v))
    cot: dict[int, Variable] = {}
    for o, g in zip(outputs, grad_outputs):
        if id(o) in reaches:
            _accumulate(cot, o, _seed(o, g))
    for v in reversed(order):
        g = cot.get(id(v))
        if g is None or v.op is None:
            continue
        op = OPS[v.op]
        needs = tuple(id(i) in reaches and dtypes.is_float(i.dtype) for i in v.inputs)
        if op.vjp is None or not any(needs):
            continue
        start = serial()
        pulled = op.vjp(g, v, needs)
        _check_versions(v, pulled, start)
        for i, gi in zip(v.inputs, pulled):
            if gi is not None and id(i) in reaches:
                _accumulate(cot, i, gi)
    return [cot.get(id(x)) for x in inputs]


def _check_versions(node, pulled, start):
    """PyTorch's error for a value that `node`'s pullback reads but that was changed in place
    after `node` was made: the gradient would be computed from the wrong value."""
    stale = {id(i): (i, seen) for i, seen in zip(node.inputs, node._seen) if i._vbox[0] != seen}
    if node._vbox[0] != node._born:
        stale[id(node)] = (node, node._born)
    if not stale:
        return
    # Which of them does the pullback read? Walk the nodes it built (made after `start`) down
    # to the older ones they refer to.
    stack, seen_ids = [p for p in pulled if p is not None], set()
    while stack:
        n = stack.pop()
        if id(n) in seen_ids:
            continue
        seen_ids.add(id(n))
        if id(n) in stale:
            v, expected = stale[id(n)]
            role = "output 0 of" if v is node else "an input of"
            raise RuntimeError(
                f"one of the variables needed for gradient computation has been modified by an "
                f"inplace operation: {v._describe()}, which is {role} {OPS[node.op].grad_name}Backward0, "
                f"is at version {v._vbox[0]}; expected version {expected} instead. Compute it "
                f"out of place (y = y * 2 instead of y.mul_(2)) or on a copy (x.clone())")
        if n._serial > start:
            stack.extend(n.inputs)


def _accumulate(cot, v, g):
    if g.shape != v.shape:
        raise AssertionError(f"pullback of {v.op} gave shape {g.shape} for {v.shape}")
    g = G.cast(g, v.dtype)
    prev = cot.get(id(v))
    cot[id(v)] = g if prev is None else G.add(prev, g)


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True):
    """Compare `sg.grad` of `fn(*inputs)` with central finite differences, in float64.

    `fn` takes Variables and returns one Variable; `inputs` are arrays or Variables. The
    gradient of `sum(fn(*inputs) * w)` for a fixed random `w` is checked for every float input."""
    arrays = [np.array(x.value() if isinstance(x, Variable) else x, dtype=np.float64)
              if dtypes.is_float(np.asarray(x.value() if isinstance(x, Variable) else x).dtype)
              else np.asarray(x.value() if isinstance(x, Variable) else x) for x in inputs]
    float_idx = [n for n, a in enumerate(arrays) if a.dtype.kind == "f"]
    variables = [Variable(a, requires_grad=(n in float_idx)) for n, a in enumerate(arrays)]
    out = fn(*variables)
    weights = np.random.default_rng(0).uniform(0.5, 1.5, out.shape)

    def scalar(vals):
        vs = [Variable(a) for a in vals]
        return float(np.sum(fn(*vs).value() * weights))

    weighted = G.mul(G.cast(out, dtypes.float64), Variable(weights))
    analytic = grad(G.reduce("sum", weighted, range(weighted.ndim), False), [variables[n] for n in float_idx],
                    allow_unused=True)
    for n, g in zip(float_idx, analytic):
        g = np.zeros_like(arrays[n]) if g is None else g.value()
        numeric = np.zeros_like(arrays[n])
        flat = numeric.reshape(-1)
        for k in range(arrays[n].size):
            plus = [a.copy() for a in arrays]
            minus = [a.copy() for a in arrays]
            plus[n].reshape(-1)[k] += eps
            minus[n].reshape(-1)[k] -= eps
            flat[k] = (scalar(plus) - scalar(minus)) / (2 * eps)
        if not np.allclose(g, numeric, atol=atol, rtol=rtol):
            if raise_exception:
                worst = np.unravel_index(np.argmax(np.abs(g - numeric)), g.shape) if g.shape else ()
                raise AssertionError(
                    f"gradcheck: gradient of input {n} (shape {arrays[n].shape}) differs from finite "
                    f"differences; worst at {worst}: analytic {g[worst]!r}, numeric {numeric[worst]!r}")
            return False
    return True
