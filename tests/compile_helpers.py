"""Helpers for the tests of the C backend: compile one graph with backend="c" and with the numpy
reference interpreter (backend="interp") and check that forward, backward and value_and_grad
agree. Expected values always come from the interpreter (or numpy / torch in the tests), never
from the compiled code under test."""
from __future__ import annotations

import numpy as np
import pytest

import symgrad as sg

DTYPES = ("float32", "float64")
RTOL = {"float32": 1e-5, "float64": 1e-10}


def rtol_for(dtype) -> float:
    return RTOL.get(np.dtype(dtype).name, 1e-10)


def var(shape, dtype="float32", name=None, requires_grad=True):
    return sg.Variable(shape=tuple(shape), dtype=dtype, name=name,
                       requires_grad=requires_grad and np.dtype(dtype).kind == "f")


def sample(shape, dtype, kind="any", rng=None):
    """Random test data. Kinds keep every op inside its domain: "any" in [-2, 2], "pos" in
    [0.5, 2], "nz" away from zero, "distinct" all different (no ties for max/min)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    shape = tuple(shape)
    n = int(np.prod(shape, dtype=np.int64))
    if kind == "any":
        a = rng.uniform(-2.0, 2.0, n)
    elif kind == "pos":
        a = rng.uniform(0.5, 2.0, n)
    elif kind == "nz":
        a = rng.uniform(0.5, 2.0, n) * rng.choice([-1.0, 1.0], n)
    elif kind == "distinct":
        a = (rng.permutation(n) - n / 2) * 0.25 + 0.1
    elif kind == "ties":
        a = rng.integers(-2, 3, n).astype(np.float64) * 0.5
    elif kind.startswith("labels"):
        return rng.integers(0, int(kind[6:]), shape).astype(dtype)
    elif kind == "int":
        return rng.integers(-5, 6, shape).astype(dtype)
    else:
        raise ValueError(kind)
    return a.reshape(shape).astype(dtype)


def assert_close(actual, expected, dtype=None, what="", rtol=None, atol_scale=4.0):
    """`actual` (compiled) against `expected` (interpreter): same shape and dtype, values within
    rtol; an absolute tolerance of rtol times the array's scale covers values near zero."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert isinstance(actual, np.ndarray), what
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    if expected.dtype.kind == "b":      # byte for byte: a bool array holds only 0 and 1
        np.testing.assert_array_equal(actual.view(np.uint8), expected.view(np.uint8), err_msg=what)
        return
    if expected.dtype.kind in "iu":
        np.testing.assert_array_equal(actual, expected, err_msg=what)
        return
    rtol = rtol if rtol is not None else rtol_for(dtype or expected.dtype)
    finite = expected[np.isfinite(expected)]
    scale = float(np.max(np.abs(finite))) if finite.size else 1.0
    atol = rtol * atol_scale * max(scale, 1.0)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what, equal_nan=True)


def compile_both(inputs, outputs, wrt=None):
    return (sg.compile(inputs, outputs, wrt=wrt, backend="c"),
            sg.compile(inputs, outputs, wrt=wrt, backend="interp"))


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def check_compiled(inputs, outputs, arrays, *, wrt=None, grad_outputs="random", seed=1, names=None,
                   rtol=None, fns=None):
    """Compile `outputs` with C and with the interpreter and compare forward, backward and
    value_and_grad on `arrays`.

    grad_outputs: "random" draws one weight array per output (so a single backward checks the
    pullback of every output at once: it is the gradient of sum_k sum(out_k * w_k)); None uses
    the implicit seed (every output must have one element). Returns the compiled function."""
    cfn, ifn = fns or compile_both(inputs, outputs, wrt)
    outs = _as_list(outputs)
    names = names or [o.name or f"output {k}" for k, o in enumerate(outs)]
    got, want = cfn.forward(*arrays), ifn.forward(*arrays)
    if isinstance(outputs, (list, tuple)):
        assert isinstance(got, list) and isinstance(want, list)
    else:     # a single output: forward gives the array itself, as fn(...) does
        assert isinstance(got, np.ndarray) and isinstance(want, np.ndarray)
        np.testing.assert_array_equal(cfn(*arrays), got)
        got, want = [got], [want]
    assert len(got) == len(want) == len(outs)
    for k, (g, w) in enumerate(zip(got, want)):
        assert_close(g, w, what=f"forward of {names[k]}", rtol=rtol)
    if not cfn.wrt:
        return cfn
    if not any(o.requires_grad and o.dtype.kind == "f" for o in outs):
        # nothing to differentiate (only integer or bool outputs): an error, not zeros
        for fn in (cfn, ifn):
            with pytest.raises(RuntimeError, match="nothing to differentiate"):
                fn.backward(*arrays, grad_outputs=[np.zeros(o.shape, o.dtype) for o in outs])
        return cfn
    rng = np.random.default_rng(seed)
    if grad_outputs == "random":
        seeds = [np.asarray(rng.uniform(0.5, 1.5, o.shape), dtype=o.dtype) for o in outs]
        kw = {"grad_outputs": seeds if isinstance(outputs, (list, tuple)) else seeds[0]}
    elif grad_outputs is None:
        kw = {}
    else:
        kw = {"grad_outputs": grad_outputs}
    wrt_names = [v.name or f"wrt {k}" for k, v in enumerate(cfn.wrt)]
    gc = cfn.backward(*arrays, **kw)
    gi = ifn.backward(*arrays, **kw)
    assert isinstance(gc, tuple) and len(gc) == len(gi) == len(cfn.wrt)
    for name, v, a, b in zip(wrt_names, cfn.wrt, gc, gi):
        assert a.shape == v.shape, f"gradient of {name}: shape {a.shape}, input has {v.shape}"
        assert_close(a, b, what=f"gradient wrt {name}", rtol=rtol)
    val_c, grads_c = cfn.value_and_grad(*arrays, **kw)
    val_i, grads_i = ifn.value_and_grad(*arrays, **kw)
    for k, (a, b) in enumerate(zip(_as_list(val_c), _as_list(val_i))):
        assert_close(a, b, what=f"value_and_grad value {names[k]}", rtol=rtol)
    for name, a, b, c in zip(wrt_names, grads_c, grads_i, gc):
        assert_close(a, b, what=f"value_and_grad gradient wrt {name}", rtol=rtol)
        # the fused value_and_grad must give what backward gave
        assert_close(a, c, what=f"value_and_grad vs backward wrt {name}", rtol=rtol)
    return cfn
