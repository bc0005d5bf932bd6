"""`sg.func`'s differentiation transforms, with JAX's and torch.func's semantics: `grad`,
`value_and_grad`, `vjp`, `jvp`, `jacrev`, `jacfwd`, `hessian`.

Each takes a function of Variables and returns one: called, it runs the function on stand-ins
of the arguments (new nodes equal to them that require grad, see common.stand_in) and builds
the derivative with `sg.grad`, the graph transform of symgrad/autodiff.py. The results are
graphs over the arguments, made of the same ops, so they compose: a transform of a transform
differentiates the gradient graph again, `sg.func.vmap` batches it, and `sg.jit` compiles it.
On arguments with values the results hold values (computed by the interpreter); on symbolic
ones (inside sg.jit) they are graphs to compile.

Forward mode is built by transposing reverse mode (the double-vjp trick): the vjp
`u -> J^T u` is a graph linear in the cotangent `u`, so its own vjp with respect to `u`,
seeded with a tangent `t`, is `J t`. Why this and not a jvp rule per op: every op already has a
pullback (its `vjp` facet, tested three ways), so forward mode needs no second rule per op to
write and keep in agreement; the graph passes then drop what the transposition leaves unused,
so the compiled jvp does the work of one forward-mode sweep. `jacrev` and `jacfwd` take a
whole basis of cotangents or tangents at once by batching that linear graph with
`sg.func.vmap`'s rewrite (as JAX does with vmap of vjp), not a Python loop over rows.

The transforms accept Variables, numpy arrays and Python numbers (made Variables as
`sg.tensor` makes them), nested in tuples, lists and dicts, and return Variables."""
from __future__ import annotations

import numpy as np

import symgrad.ops.builders as G
from symgrad import dtypes
from symgrad.dims import Dim, symbolic_shape
from symgrad.autodiff import grad as _sg_grad
from symgrad.func.batch import batch_graph, spread
from symgrad.func.common import as_variable, nested, release, stand_in
from symgrad.func.pytree import flatten, unflatten
from symgrad.variable import Variable, enable_grad, lazy


def _argnums(argnums, n_args, fn_name):
    single = isinstance(argnums, int)
    nums = (argnums,) if single else tuple(argnums)
    if not nums:
        raise ValueError(f"{fn_name}: argnums is empty")
    out = []
    for a in nums:
        if not isinstance(a, int) or not -n_args <= a < n_args:
            raise ValueError(f"{fn_name}: argnums {argnums!r} out of range for {n_args} positional "
                             f"arguments")
        out.append(a % n_args)
    return single, tuple(out)


def _leaves_of(args, nums, fn_name):
    """The arguments with those in `nums` replaced by stand-ins; and per argnum, (tree,
    stand-in leaves)."""
    args = list(args)
    wrt = []
    for a in nums:
        leaves, tree = flatten(args[a])
        stands = []
        for k, leaf in enumerate(leaves):
            who = f"argument {a}" + (f" (leaf {k})" if tree.kind != "leaf" else "")
            stands.append(stand_in(as_variable(leaf), fn_name, who))
        args[a] = unflatten(tree, stands)
        wrt.append((tree, stands))
    args = [as_variable(x) if isinstance(x, np.ndarray) else x for x in args]
    return args, wrt


def _call(func, args, has_aux, fn_name):
    with enable_grad():
        out = func(*args)
    if has_aux:
        if not (isinstance(out, tuple) and len(out) == 2):
            raise ValueError(f"{fn_name}(has_aux=True): the function must return a pair (output, aux), "
                             f"got {type(out).__name__}")
        return out
    return out, None


def _vjp_graph(outs, seeds, xs):
    """Gradients of `outs` (weighted by `seeds`) with respect to `xs`: zeros where one is not
    reached (outputs that carry no gradient are skipped)."""
    live = [(o, s) for o, s in zip(outs, seeds) if o.requires_grad and dtypes.is_float(o.dtype)]
    if live:
        grads = _sg_grad([o for o, _ in live], list(xs), [s for _, s in live], allow_unused=True)
    else:
        grads = (None,) * len(xs)
    with lazy():
        return [G.zeros(x) if g is None else g for x, g in zip(xs, grads)]


def _scalar_output(out, fn_name):
    if not isinstance(out, Variable):
        out = as_variable(out)
    if out.ndim != 0:
        raise RuntimeError(f"{fn_name}: the function must return a scalar (a 0-d Variable) to take its "
                           f"gradient; it returned shape {out.shape}")
    if not dtypes.is_float(out.dtype):
        raise RuntimeError(f"{fn_name}: the function returned dtype {out.dtype}; only a floating point "
                           f"output has a gradient")
    return out


def value_and_grad(func, argnums=0, has_aux=False):
    """`func`'s value and its gradient with respect to the arguments `argnums` (an int, or a
    tuple: then a tuple of gradients), as jax.value_and_grad; with `has_aux`, `func` returns
    (output, aux) and the value is that pair."""
    name = getattr(func, "__name__", "func")

    def value_and_grad_f(*args):
        single, nums = _argnums(argnums, len(args), f"value_and_grad({name})")
        with nested():
            call, wrt = _leaves_of(args, nums, f"grad({name})")
            out, aux = _call(func, call, has_aux, f"grad({name})")
            out = _scalar_output(out, f"grad({name})")
            xs = [s for _, stands in wrt for s in stands]
            grads = _vjp_graph([out], [None], xs)
        out, *grads = release([out] + grads)
        if has_aux:
            aux_leaves, aux_tree = flatten(aux)
            aux = unflatten(aux_tree, release(aux_leaves))
        it = iter(grads)
        per = [unflatten(tree, [next(it) for _ in stands]) for tree, stands in wrt]
        g = per[0] if single else tuple(per)
        return ((out, aux) if has_aux else out), g

    value_and_grad_f.__name__ = f"value_and_grad_{name}"
    return value_and_grad_f


def grad(func, argnums=0, has_aux=False):
    """The gradient of the scalar function `func` with respect to its arguments `argnums`, as
    jax.grad and torch.func.grad; with `has_aux`, returns (gradient, aux)."""
    vg = value_and_grad(func, argnums, has_aux)
    name = getattr(func, "__name__", "func")

    def grad_f(*args):
        value, g = vg(*args)
        return (g, value[1]) if has_aux else g

    grad_f.__name__ = f"grad_{name}"
    return grad_f


def _seed_for(o, c, k, fn_name):
    c = as_variable(c)
    if c.shape != o.shape:
        raise ValueError(f"{fn_name}: cotangent {k} has shape {c.shape} for an output of shape {o.shape}")
    return G.cast(c, o.dtype) if dtypes.is_float(o.dtype) else c


def vjp(func, *primals, has_aux=False):
    """(func(*primals), vjp_fn), as jax.vjp and torch.func.vjp: `vjp_fn(cotangents)` (nested as
    the output) gives the tuple of the primals' cotangents (each nested as its primal)."""
    name = getattr(func, "__name__", "func")
    with nested():
        call, wrt = _leaves_of(primals, range(len(primals)), f"vjp({name})")
        out, aux = _call(func, call, has_aux, f"vjp({name})")
    out_leaves, out_tree = flatten(out)
    outs = [o if isinstance(o, Variable) else as_variable(o) for o in out_leaves]
    xs = [s for _, stands in wrt for s in stands]

    def vjp_fn(cotangents):
        cts, ct_tree = flatten(cotangents)
        if ct_tree != out_tree:
            raise ValueError(f"vjp({name}): the cotangents are nested as {ct_tree}, "
                             f"the outputs as {out_tree}")
        seeds = [_seed_for(o, c, k, f"vjp({name})") for k, (o, c) in enumerate(zip(outs, cts))]
        with nested():
            grads = _vjp_graph(outs, seeds, xs)
        it = iter(release(grads))
        return tuple(unflatten(tree, [next(it) for _ in stands]) for tree, stands in wrt)

    result = unflatten(out_tree, release(outs))
    return (result, vjp_fn, aux) if has_aux else (result, vjp_fn)


def _linear_tangents(outs, xs, tangents):
    """J t for each output, with the tangents `tangents` of `xs`, by the double-vjp trick: the
    gradient, with respect to the cotangents u, of <vjp(u), t>."""
    live = [k for k, o in enumerate(outs) if o.requires_grad and dtypes.is_float(o.dtype)]
    with lazy():
        result = [G.zeros(o) for o in outs]      # outputs J does not reach (integer ones too)
    if not live:
        return result
    # (placeholders: J t does not depend on them; of a symbolic shape (symgrad.dims) they hold
    # no value, which could only be of a trace-time hint's size)
    us = [Variable(np.zeros(outs[k].shape, outs[k].dtype), requires_grad=True)
          if not symbolic_shape(outs[k].shape) else
          Variable(shape=outs[k].shape, dtype=outs[k].dtype, name=f"cotangent{k}", requires_grad=True)
          for k in live]
    grads = _sg_grad([outs[k] for k in live], list(xs), us, allow_unused=True)
    pairs = [(g, t) for g, t in zip(grads, tangents) if g is not None and g.requires_grad]
    if not pairs:
        return result
    jt = _sg_grad([g for g, _ in pairs], us, [t for _, t in pairs], allow_unused=True)
    for k, j in zip(live, jt):
        if j is not None:
            result[k] = j
    return result


def jvp(func, primals, tangents, has_aux=False):
    """(func(*primals), J tangents), as jax.jvp and torch.func.jvp: `primals` and `tangents`
    tuples nested alike; the tangent output is nested as the output."""
    name = getattr(func, "__name__", "func")
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError(f"jvp({name}): primals and tangents must be tuples")
    with nested():
        outs, touts, out_tree, aux = _jvp(func, primals, tangents, has_aux, name)
    done = release(outs + touts)
    res = (unflatten(out_tree, done[:len(outs)]), unflatten(out_tree, done[len(outs):]))
    return res + (aux,) if has_aux else res


def _jvp(func, primals, tangents, has_aux, name):
    call, wrt = _leaves_of(primals, range(len(primals)), f"jvp({name})")
    t_leaves, t_tree = flatten(tuple(tangents))
    p_tree = flatten(tuple(primals))[1]
    if t_tree != p_tree:
        raise ValueError(f"jvp({name}): tangents nested as {t_tree}, primals as {p_tree}")
    xs = [s for _, stands in wrt for s in stands]
    ts = []
    for k, (x, t) in enumerate(zip(xs, t_leaves)):
        t = as_variable(t)
        if t.shape != x.shape:
            raise ValueError(f"jvp({name}): tangent {k} has shape {t.shape} for a primal of shape {x.shape}")
        ts.append(G.cast(t, x.dtype))
    out, aux = _call(func, call, has_aux, f"jvp({name})")
    out_leaves, out_tree = flatten(out)
    outs = [o if isinstance(o, Variable) else as_variable(o) for o in out_leaves]
    return outs, _linear_tangents(outs, xs, ts), out_tree, aux


def _basis(n, shape, dtype):
    if isinstance(n, Dim):
        raise NotImplementedError(f"a Jacobian with respect to (or of) a value of shape {shape} has one row "
                                  f"per element, {n} of them, a number known only at each call (a named "
                                  f"dimension); take the Jacobian per example with sg.func.vmap instead")
    return Variable(np.eye(n, dtype=dtype).reshape((n,) + tuple(shape)))


def _batched_linear(lin_outs, placeholder, n, shape, dtype):
    """The linear graphs `lin_outs` of `placeholder` evaluated at every unit vector of its
    `n` elements at once: each result has the basis as a leading dim of size n."""
    subs = {id(placeholder): _basis(n, shape, dtype)}
    return [spread(o, b, n) for o, b in batch_graph(lin_outs, subs, n)]


def _jacobian_graphs(func, args, nums, has_aux, fn_name, name, forward):
    """jac[i][j], the graph of d output i / d argument leaf j, for every pair."""
    call, wrt = _leaves_of(args, nums, f"{fn_name}({name})")
    out, aux = _call(func, call, has_aux, f"{fn_name}({name})")
    out_leaves, out_tree = flatten(out)
    outs = [o if isinstance(o, Variable) else as_variable(o) for o in out_leaves]
    xs = [s for _, stands in wrt for s in stands]
    jac = [[None] * len(xs) for _ in outs]
    if forward:
        for j, x in enumerate(xs):
            t = Variable(shape=x.shape, dtype=x.dtype, name=f"tangent{j}")
            lin = _linear_tangents(outs, [x], [t])
            for i, (o, col) in enumerate(zip(outs, _batched_linear(lin, t, x.numel(), x.shape, x.dtype))):
                col = G.reshape(col, (x.numel(), o.numel()))
                jac[i][j] = G.reshape(G.permute(col, (1, 0)), o.shape + x.shape)
    else:
        for i, o in enumerate(outs):
            if not dtypes.is_float(o.dtype):
                raise TypeError(f"{fn_name}({name}): output {i} has dtype {o.dtype}; only floating "
                                f"point outputs have a Jacobian")
            u = Variable(shape=o.shape, dtype=o.dtype, name=f"cotangent{i}")
            lin = _vjp_graph([o], [u], xs)
            for j, (x, row) in enumerate(zip(xs, _batched_linear(lin, u, o.numel(), o.shape, o.dtype))):
                jac[i][j] = G.reshape(row, o.shape + x.shape)
    return jac, wrt, out_tree, aux


def _jacobian(func, argnums, has_aux, fn_name, forward):
    name = getattr(func, "__name__", "func")

    def jac_f(*args):
        single, nums = _argnums(argnums, len(args), f"{fn_name}({name})")
        with nested():
            jac, wrt, out_tree, aux = _jacobian_graphs(func, args, nums, has_aux, fn_name, name, forward)
        flat = iter(release([v for row in jac for v in row]))
        per_out = []
        for row in jac:
            per = [unflatten(tree, [next(flat) for _ in stands]) for tree, stands in wrt]
            per_out.append(per[0] if single else tuple(per))
        result = unflatten(out_tree, per_out)
        return (result, aux) if has_aux else result

    jac_f.__name__ = f"{fn_name}_{name}"
    return jac_f


def jacrev(func, argnums=0, has_aux=False):
    """The Jacobian of `func` by reverse mode, as jax.jacrev and torch.func.jacrev: for an
    output of shape O and an argument of shape X, shape O + X (nested as the output, then as
    the arguments `argnums` when a tuple)."""
    return _jacobian(func, argnums, has_aux, "jacrev", forward=False)


def jacfwd(func, argnums=0, has_aux=False):
    """The Jacobian of `func` by forward mode (one tangent per element of the argument, all
    batched into one graph), as jax.jacfwd and torch.func.jacfwd."""
    return _jacobian(func, argnums, has_aux, "jacfwd", forward=True)


def hessian(func, argnums=0):
    """jacfwd(jacrev(func)), as jax.hessian and torch.func.hessian."""
    return jacfwd(jacrev(func, argnums), argnums)
