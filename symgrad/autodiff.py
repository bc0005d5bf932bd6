"""Reverse-mode AD by source transformation: a graph in, the graph of its gradients out.
The gradient graph is built from the same ops, so it can be differentiated again."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from symgrad import collector, dtypes
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


def grad(outputs: Variable | Sequence[Variable], inputs: Variable | Sequence[Variable],
         grad_outputs: Variable | Sequence[Variable | None] | None = None, allow_unused: bool = False,
         retain_graph: bool | None = None, create_graph: bool = True) -> tuple[Variable | None, ...]:
    """Returns the gradients of `outputs` (weighted by `grad_outputs`) with respect to `inputs`, as Variables.

    The result is a graph over the same nodes (graph-to-graph differentiation, so it can be
    differentiated again or compiled); where the inputs hold values, the gradients' values
    are computed when read. `grad_outputs` defaults to ones for scalar outputs; with
    `allow_unused` an input the outputs don't depend on gets None instead of an error.
    `retain_graph` and `create_graph` are accepted for PyTorch's signature (the graph is
    always kept). PyTorch: `torch.autograd.grad`; JAX: `jax.vjp`."""
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
    with lazy(), collector.paused():
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
        if g is None:
            continue
        hooks = v.__dict__.get("_grad_hooks")
        if hooks:                     # register_hook: the gradient is complete here
            g = cot[id(v)] = _run_hooks(v, g, hooks)
        if v.op is None:
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


def _run_hooks(v, g, hooks):
    """The gradient `g` of `v` put through `v`'s hooks, in the order they were registered;
    a hook that returns something replaces the gradient."""
    for hook in list(hooks.values()):
        out = hook(g)
        if out is None:
            continue
        if not isinstance(out, Variable):
            out = Variable(np.asarray(out, dtype=v.dtype))
        if out.shape != g.shape:
            raise RuntimeError(f"hook {getattr(hook, '__name__', hook)!r} has changed the size of value: "
                               f"it returned shape {out.shape} for the gradient of {v._describe()}")
        g = G.cast(out, v.dtype)
    return g


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


class GradcheckError(RuntimeError, AssertionError):
    """What gradcheck raises (PyTorch's `torch.autograd.gradcheck.GradcheckError`, a
    RuntimeError; also an AssertionError, as symgrad's gradcheck raised before)."""


def _float64(x):
    arr = np.asarray(x.value() if isinstance(x, Variable) else x)
    return arr.astype(np.float64) if arr.dtype.kind == "f" else arr


def _numeric(x) -> bool:
    try:
        return np.asarray(x).dtype.kind in "biuf"
    except (TypeError, ValueError):
        return False


def gradcheck(func: Callable, inputs: Any, *, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_exception: bool = True, nondet_tol: float = 0.0, check_undefined_grad: bool = True,
              check_grad_dtypes: bool = False, check_batched_grad: bool = False,
              check_batched_forward_grad: bool = False, check_forward_ad: bool = False,
              check_backward_ad: bool = True, fast_mode: bool = False, masked: bool | None = None) -> bool:
    """PyTorch's `gradcheck`: the Jacobians of `func(*inputs)` from `sg.grad` (every output
    element's gradient, through every pullback, custom functions' included) against central
    finite differences, in float64: |analytical - numerical| <= atol + rtol * |numerical|.

    `inputs` is a Variable or a tuple of them (or of arrays and other arguments, passed as they
    are); the Variables that require grad are checked, or every floating one when none does.
    `func` returns a Variable or a tuple of them. Returns True, or raises GradcheckError
    (False with `raise_exception=False`). The other keywords are PyTorch's, accepted."""
    given = _as_list(inputs)
    wrt = [n for n, x in enumerate(given) if isinstance(x, Variable) and x.requires_grad]
    # With no Variable that requires grad, every input that numpy makes numbers of is data
    # (symgrad's older convention: gradcheck(fn, [array, [1.0, 2.0]])).
    is_array = [isinstance(x, (Variable, np.ndarray)) or (not wrt and _numeric(x)) for x in given]
    arrays = [_float64(x) if a else x for x, a in zip(given, is_array)]
    if not wrt:
        wrt = [n for n, a in enumerate(arrays) if is_array[n] and a.dtype.kind == "f"]
    if not wrt:
        raise ValueError("gradcheck expects at least one input tensor to require gradient, but none "
                         "of the inputs is a floating point Variable")

    def variables(vals):
        return [Variable(a, requires_grad=n in wrt) if is_array[n] else a for n, a in enumerate(vals)]

    def outputs(vals):
        return _as_list(func(*variables(vals)))

    xs = variables(arrays)
    outs = _as_list(func(*xs))
    analytic = _analytic_jacobians(outs, [xs[n] for n in wrt])
    numeric = _numeric_jacobians(outputs, arrays, wrt, eps)
    for j, out in enumerate(outs):
        for col, n in enumerate(wrt):
            a, num = analytic[j][col], numeric[j][col]
            if not np.allclose(a, num, atol=atol, rtol=rtol, equal_nan=True):
                if raise_exception:
                    raise GradcheckError(
                        f"Jacobian mismatch for output {j} with respect to input {n} (analytical "
                        f"gradients against finite differences, shapes {a.shape}),\n"
                        f"numerical:{num!r}\nanalytical:{a!r}\n")
                return False
    return True


def _analytic_jacobians(outs, xs):
    """[output][input] Jacobians (output elements by input elements) from `grad`."""
    from symgrad.interpret import evaluate
    rows, jac = [], []
    for out in outs:
        per = []
        if isinstance(out, Variable) and dtypes.is_float(out.dtype) and out.requires_grad:
            for k in range(out.numel()):
                seed = np.zeros(out.shape, out.dtype)
                seed.reshape(-1)[k] = 1
                gs = grad([out], xs, [Variable(seed)], allow_unused=True)
                per.append(gs)
                rows.extend(g for g in gs if g is not None)
        jac.append(per)
    values = iter(evaluate(rows)) if rows else iter(())
    result = []
    for out, per in zip(outs, jac):
        m = out.numel() if isinstance(out, Variable) else 1
        mats = [np.zeros((m, x.numel())) for x in xs]
        for k, gs in enumerate(per):
            for col, g in enumerate(gs):
                if g is not None:
                    mats[col][k] = np.asarray(next(values), dtype=np.float64).reshape(-1)
        result.append(mats)
    return result


def _numeric_jacobians(outputs, arrays, wrt, eps):
    """[output][input] Jacobians by central differences of `outputs(arrays)`."""
    def values(vals):
        return [np.asarray(o.value() if isinstance(o, Variable) else o, dtype=np.float64).reshape(-1)
                for o in outputs(vals)]
    sizes = [v.size for v in values(arrays)]
    result = [[np.zeros((m, arrays[n].size)) for n in wrt] for m in sizes]
    for col, n in enumerate(wrt):
        for k in range(arrays[n].size):
            plus = [a.copy() if isinstance(a, np.ndarray) else a for a in arrays]
            minus = [a.copy() if isinstance(a, np.ndarray) else a for a in arrays]
            plus[n].reshape(-1)[k] += eps
            minus[n].reshape(-1)[k] -= eps
            for j, (p, q) in enumerate(zip(values(plus), values(minus))):
                result[j][col][:, k] = (p - q) / (2 * eps)
    return result


def gradgradcheck(func: Callable, inputs: Any, grad_outputs: Any = None, *, eps: float = 1e-6,
                  atol: float = 1e-5, rtol: float = 1e-3, gen_non_contig_grad_outputs: bool = False,
                  raise_exception: bool = True, nondet_tol: float = 0.0, check_undefined_grad: bool = True,
                  check_grad_dtypes: bool = False, check_batched_grad: bool = False,
                  check_fwd_over_rev: bool = False, check_rev_over_rev: bool = True, fast_mode: bool = False,
                  masked: bool = False) -> bool:
    """PyTorch's `gradgradcheck`: second derivatives of `func(*inputs)`, by `gradcheck` of
    the function (inputs, grad_outputs) -> sg.grad(func(*inputs), inputs, grad_outputs). The
    grad_outputs default to random float64 values (which are checked too)."""
    given = _as_list(inputs)
    is_array = [isinstance(x, (Variable, np.ndarray)) for x in given]
    wrt = [n for n, x in enumerate(given) if isinstance(x, Variable) and x.requires_grad]
    if not wrt:
        wrt = [n for n, x in enumerate(given) if is_array[n] and _float64(x).dtype.kind == "f"]
    probe = [Variable(_float64(x), requires_grad=n in wrt) if is_array[n] else x for n, x in enumerate(given)]
    outs = _as_list(func(*probe))
    diff = [j for j, o in enumerate(outs) if isinstance(o, Variable) and o.requires_grad]
    if grad_outputs is None:
        rng = np.random.default_rng(0)
        grad_outputs = [rng.uniform(-1, 1, outs[j].shape) for j in diff]
    else:
        grad_outputs = [_float64(g) for g in _as_list(grad_outputs)]
    n_in = len(given)

    def first_derivatives(*args):
        ins, gos = args[:n_in], args[n_in:]
        outs = _as_list(func(*ins))
        targets = [ins[n] for n in wrt]
        gs = grad([outs[j] for j in diff], targets, list(gos), allow_unused=True)
        return tuple(g for g in gs if g is not None)

    checked = [Variable(_float64(x), requires_grad=True) if n in wrt else x for n, x in enumerate(given)]
    seeds = [Variable(np.array(g, dtype=np.float64), requires_grad=True) for g in grad_outputs]
    return gradcheck(first_derivatives, tuple(checked) + tuple(seeds), eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception)


def differentiable(outputs, wrt):
    """`outputs`, rebuilt where needed so that every node depending on a `wrt` input requires
    grad: an input named in `wrt` need not have been made with requires_grad=True, but the
    gradient graph follows requires_grad flags, which were set when the graph was built."""
    wanted = {id(v) for v in wrt}
    if all(v.requires_grad for v in wrt):
        return list(outputs)
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
