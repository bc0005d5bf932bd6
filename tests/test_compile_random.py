"""Random graphs: hypothesis draws shapes (rank 0-3, broadcasting inputs), a chain of ops from
the registry's families (elementwise, reductions, layout round trips) and a few outputs, then
the C backend must agree with the numpy interpreter on forward values and on gradients.

Domains are kept safe by construction: log and sqrt only ever see x*x + c, exp sees tanh(x),
division is by x*x + 1, so every value and gradient is finite."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import symgrad as sg
from compile_helpers import check_compiled, sample

UNARY = {
    "neg": lambda a: -a,
    "exp": lambda a: sg.exp(sg.tanh(a)),
    "tanh": sg.tanh,
    "sigmoid": sg.sigmoid,
    "sin": sg.sin,
    "cos": sg.cos,
    "abs": sg.abs,
    "relu": sg.relu,
    "log": lambda a: sg.log(a * a + 1.0),
    "sqrt": lambda a: sg.sqrt(a * a + 0.5),
    "square": lambda a: a * a,
    "pow": lambda a: (a * a + 1.0) ** 1.5,
    "affine": lambda a: a * 0.5 + 1.0,
    "rsub": lambda a: 1.0 - a,
    "clamp": lambda a: sg.clamp(a, -0.5, 0.7),
    "sign": lambda a: sg.sign(a) * a,
}

BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (b * b + 1.0),
    "maximum": sg.maximum,
    "minimum": sg.minimum,
    "where": lambda a, b: sg.where(a > b, a, b * 2.0),
}

REDUCE = {       # keepdim=True, so the result still broadcasts against the others
    "sum": lambda a, d: a.sum(d, keepdim=True),
    "mean": lambda a, d: a.mean(d, keepdim=True),
    "max": lambda a, d: sg.amax(a, d, keepdim=True),
    "min": lambda a, d: sg.amin(a, d, keepdim=True),
    "logsumexp": lambda a, d: sg.logsumexp(a, d, keepdim=True),
    "norm": lambda a, d: sg.norm(sg.tanh(a) + 1.5, dim=d, keepdim=True),
}


def _shapes(draw):
    rank = draw(st.integers(0, 3))
    base = tuple(draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank)))
    n_inputs = draw(st.integers(1, 3))
    shapes = []
    for _ in range(n_inputs):
        drop = draw(st.integers(0, rank))            # leading dims left out
        dims = [1 if draw(st.booleans()) and draw(st.booleans()) else n for n in base[drop:]]
        shapes.append(tuple(dims))
    shapes[0] = base                                  # one input has the full shape
    return base, shapes


def _step(draw, pool, base, trace):
    kind = draw(st.sampled_from(["unary", "unary", "binary", "binary", "reduce", "softmax",
                                 "layout"]))
    k = draw(st.integers(0, len(pool) - 1))
    a = pool[k]
    if kind == "unary":
        name = draw(st.sampled_from(sorted(UNARY)))
        trace.append(f"{name}(n{k})")
        return UNARY[name](a)
    if kind == "binary":
        j = draw(st.integers(0, len(pool) - 1))
        name = draw(st.sampled_from(sorted(BINARY)))
        trace.append(f"{name}(n{k}, n{j})")
        return BINARY[name](a, pool[j])
    if kind in ("reduce", "softmax") and a.ndim == 0:
        trace.append(f"tanh(n{k})")
        return sg.tanh(a)
    if kind == "reduce":
        dims = draw(st.lists(st.integers(-a.ndim, a.ndim - 1), min_size=1, max_size=a.ndim,
                             unique_by=lambda d: d % a.ndim))
        name = draw(st.sampled_from(sorted(REDUCE)))
        dim = dims[0] if len(dims) == 1 else tuple(dims)
        trace.append(f"{name}(n{k}, dim={dim}, keepdim=True)")
        return REDUCE[name](a, dim)
    if kind == "softmax":
        d = draw(st.integers(-a.ndim, a.ndim - 1))
        log = draw(st.booleans())
        trace.append(f"{'log_' if log else ''}softmax(n{k}, {d})")
        return sg.log_softmax(a, d) if log else sg.softmax(a, d)
    # layout round trips: the value's shape is kept, the index arithmetic is not trivial
    how = draw(st.sampled_from(["permute", "reshape", "split_cat", "interleave", "stack", "expand",
                                "unsqueeze", "expand_sum", "matmul"]))
    trace.append(f"{how}(n{k})")
    if how == "permute" and a.ndim >= 2:
        perm = draw(st.permutations(range(a.ndim)))
        inv = tuple(int(i) for i in np.argsort(perm))
        return sg.tanh(a.permute(*perm)).permute(*inv)
    if how == "reshape":
        return sg.sin(a.reshape(-1)).reshape(a.shape)
    if how == "split_cat" and a.ndim >= 1 and a.shape[-1] >= 2:
        cut = draw(st.integers(1, a.shape[-1] - 1))
        return sg.cat([a[..., :cut] * 2.0, sg.exp(sg.tanh(a[..., cut:]))], -1)
    if how == "interleave" and a.ndim >= 1 and a.shape[-1] >= 2:
        return sg.cat([a[..., ::2], sg.cos(a[..., 1::2])], -1)     # same shape, values permuted
    if how == "matmul" and a.ndim >= 1:
        t = sg.tanh(a)
        return t * (t @ t) if a.ndim == 1 else (t @ t.mT) @ t * 0.5
    if how == "expand_sum":
        return a.unsqueeze(0).expand(3, *a.shape).sum(0) * sg.sigmoid(a)
    if how == "stack":
        return sg.stack([a, sg.cos(a)], 0).sum(0)
    if how == "expand":
        return sg.broadcast_to(a, base) * 1.5
    return sg.relu(a.unsqueeze(0)).squeeze(0)


def _terminal(draw, out, trace):
    """What an output does with a pooled value: often a shape-changing op."""
    how = draw(st.sampled_from(["id", "sum", "sum_dim", "max_dim", "flatten", "transpose", "slice",
                                "newaxis", "matmul", "argmax"]))
    trace.append(f"output {how}")
    if how == "sum":
        return out.sum()
    if how == "id" or out.ndim == 0:
        return out
    d = draw(st.integers(-out.ndim, out.ndim - 1))
    if how == "sum_dim":
        return out.mean(d) if draw(st.booleans()) else out.sum(d)
    if how == "max_dim":
        return out.max(d)[0]
    if how == "flatten":
        return out.flatten()
    if how == "transpose":
        return out.transpose(0, -1)
    if how == "slice":
        return out[::2] if out.ndim == 1 else out[1:, ..., ::2]
    if how == "newaxis":
        return out[..., None, :]
    if how == "matmul":
        return out @ out if out.ndim == 1 else out @ out.mT
    return sg.argmax(out, d)


@st.composite
def graphs(draw):
    dtype = draw(st.sampled_from(["float32", "float64"]))
    base, shapes = _shapes(draw)
    inputs = [sg.Variable(shape=s, dtype=dtype, name=f"x{k}", requires_grad=True)
              for k, s in enumerate(shapes)]
    pool = list(inputs)
    trace = [f"dtype {dtype}, input shapes {shapes}"]
    for _ in range(draw(st.integers(1, 10))):
        pool.append(_step(draw, pool, base, trace))
        trace[-1] = f"n{len(pool) - 1} = {trace[-1]}"
    chosen = draw(st.lists(st.integers(len(inputs), len(pool) - 1), min_size=1, max_size=3))
    outputs = [_terminal(draw, pool[k], trace) for k in chosen]
    seed = draw(st.integers(0, 2 ** 16))
    return dtype, inputs, outputs, seed, trace


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs())
def test_random_graphs_compiled_equals_interpreted(case):
    dtype, inputs, outputs, seed, trace = case
    note("\n".join(trace))
    rng = np.random.default_rng(seed)
    arrays = [sample(v.shape, dtype, "any", rng) for v in inputs]
    # an input that reaches no output gets a zero gradient; an output that depends on no
    # input requiring grad (argmax) is forward only
    check_compiled(inputs, outputs, arrays, seed=seed)
