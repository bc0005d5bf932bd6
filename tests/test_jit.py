"""sg.jit: trace once per signature, compile with sg.compile, run the C afterwards.

Numbers come from PyTorch (the same function written once against `T`); tracing is counted
by calls of the Python function; a retrace logs which argument changed."""
from __future__ import annotations

import functools
import logging

import numpy as np
import pytest

import symgrad as sg

torch = pytest.importorskip("torch")

R = np.random.default_rng(1414)


def model(T, x, w, b):
    return T.tanh(T.matmul(x, w) + b).sum(-1) * 2.0


def counted(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        wrapper.calls += 1
        return fn(*args, **kwargs)
    wrapper.calls = 0
    return wrapper


def torch_of(fn, *arrays):
    return fn(torch, *(torch.tensor(a) for a in arrays)).detach().numpy()


@counted
def mlp(x, w, b):
    return model(sg, x, w, b)


JMLP = sg.jit(mlp)


def test_a_second_call_with_the_same_signature_runs_the_compiled_code_only(caplog):
    x, w, b = R.normal(size=(4, 3)), R.normal(size=(3, 5)), R.normal(size=5)
    before = mlp.calls
    out = JMLP(x, w, b)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == (4,)
    np.testing.assert_allclose(out, torch_of(model, x, w, b), rtol=1e-12)
    x2 = R.normal(size=(4, 3))
    np.testing.assert_allclose(JMLP(x2, w, b), torch_of(model, x2, w, b), rtol=1e-12)
    assert mlp.calls == before + 1                      # traced once, then only the C
    with caplog.at_level(logging.INFO, logger="symgrad"):
        x3 = R.normal(size=(7, 3))
        np.testing.assert_allclose(JMLP(x3, w, b), torch_of(model, x3, w, b), rtol=1e-12)
        JMLP(R.normal(size=(7, 3)), w, b)
    assert mlp.calls == before + 2                      # a new shape retraces once
    text = caplog.text
    assert "argument 'x' changed shape from (4, 3) to (7, 3)" in text, text
    assert "'w'" not in text and "'b'" not in text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="symgrad"):
        f32 = [a.astype(np.float32) for a in (x3, w, b)]
        out32 = JMLP(*f32)
    assert mlp.calls == before + 3
    assert "argument 'x' changed dtype from float64 to float32" in caplog.text
    assert "argument 'w' changed dtype" in caplog.text
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, torch_of(model, *f32), rtol=1e-5)
    JMLP(x, w, b)                              # the first signature is still cached
    assert mlp.calls == before + 3


def test_lower_gives_the_compiled_object_without_tracing_again():
    x, w, b = R.normal(size=(4, 3)), R.normal(size=(3, 5)), R.normal(size=5)
    JMLP(x, w, b)
    calls = mlp.calls
    fn = JMLP.lower(x, w, b)
    assert mlp.calls == calls
    assert callable(fn.backward) and not fn.wrt       # sg.compile's object, nothing to differentiate
    src = fn.forward.source
    assert "tanh" in src and "for (" in src
    assert [a.shape for a in fn.inputs] == [(4, 3), (3, 5), (5,)]
    assert [a.name for a in fn.inputs] == ["x", "w", "b"]
    np.testing.assert_allclose(fn.forward(x, w, b), JMLP(x, w, b), rtol=0, atol=0)


@sg.jit
def several(x, y):
    return x * y, {"sum": (x + y).sum(), "pair": [x - y, 3.0]}


def test_results_are_numpy_arrays_nested_as_the_function_returns_them():
    x, y = np.array([1.0, 2.0]), np.array([3.0, 5.0])
    prod, rest = several(x, y)
    np.testing.assert_array_equal(prod, [3.0, 10.0])
    assert isinstance(rest, dict) and set(rest) == {"sum", "pair"}
    assert rest["sum"].shape == () and float(rest["sum"]) == 11.0
    np.testing.assert_array_equal(rest["pair"][0], [-2.0, -3.0])
    assert float(rest["pair"][1]) == 3.0
    # Variables with values and nested arguments are dynamic too
    prod2, _ = several(sg.tensor(x), y)
    np.testing.assert_array_equal(prod2, prod)


@counted
def scaled(x, n, mode):
    if mode == "square":              # static arguments are Python values while tracing
        return x * x * n
    return x * n


JSCALED = sg.jit(scaled, static_argnums=(2,))


def test_static_arguments_and_python_numbers_key_the_cache(caplog):
    x = np.array([1.0, -2.0, 3.0])
    np.testing.assert_array_equal(JSCALED(x, 2.0, "square"), x * x * 2)
    np.testing.assert_array_equal(JSCALED(x, 2.0, "square"), x * x * 2)
    assert scaled.calls == 1
    with caplog.at_level(logging.INFO, logger="symgrad"):
        np.testing.assert_array_equal(JSCALED(x, 3.0, "square"), x * x * 3)
    assert "'n'" in caplog.text and "2.0" in caplog.text and "3.0" in caplog.text
    np.testing.assert_array_equal(JSCALED(x, 3.0, mode="linear"), x * 3)     # keywords bind
    assert scaled.calls == 3
    with pytest.raises(TypeError, match="static argument 'mode'.*list.*not hashable"):
        JSCALED(x, 1.0, ["square"])


def test_decorator_with_arguments_and_dynamic():
    @sg.jit(static_argnums=1)
    def power(x, k):
        return x ** k
    np.testing.assert_array_equal(power(np.array([2.0, 3.0]), 3), [8.0, 27.0])
    @sg.jit(static_argnames="k")
    def power2(x, k):
        return x ** k
    np.testing.assert_array_equal(power2(np.array([2.0, 3.0]), k=2), [4.0, 9.0])
    assert power2.static_argnums == (1,)
    with pytest.raises(ValueError, match=r"static_argnames \['q'\]"):
        sg.jit(lambda x: x, static_argnames="q")
    # dynamic=True (symbolic leading dims: tests/test_dims.py), also as a decorator's argument
    double = sg.jit(dynamic=True)(lambda x: x * 2.0)
    assert double.dynamic and sg.jit(lambda x: x, dynamic=True).dynamic
    np.testing.assert_array_equal(double(np.ones(3)), [2.0] * 3)
    np.testing.assert_array_equal(double(np.ones(5)), [2.0] * 5)
    assert double.traces == 1


def _branch(x):
    if x.sum() > 0:
        return x
    return -x


def _as_float(x, w):
    return x * float(w.sum())


def _loop(x):
    while x.max() < 10:
        x = x * 2
    return x


def _item(x):
    return x * x.item()


@pytest.mark.parametrize("fn, args, who", [
    (_branch, [np.ones(3)], "argument 'x' of _branch (shape (3,), float64)"),
    (_as_float, [np.ones(2), np.ones((2, 2), np.float32)],
     "argument 'w' of _as_float (shape (2, 2), float32)"),
    (_loop, [np.ones(2)], "argument 'x' of _loop"),
    (_item, [np.ones(1)], "argument 'x' of _item"),
])
def test_python_control_flow_on_a_traced_value_names_the_argument(fn, args, who):
    with pytest.raises(sg.func.TracedValueError, match="Python control flow") as e:
        sg.jit(fn)(*args)
    assert who in str(e.value)
    assert "static_argnums" in str(e.value)
    assert isinstance(e.value, RuntimeError)


def poly(T, x):
    return (x ** 3 - 2 * x ** 2 + T.sin(x)).sum()


def test_jit_of_second_derivatives_compiles_them():
    x = R.uniform(-1, 1, 4)
    gg = sg.jit(sg.func.grad(lambda x: sg.func.grad(lambda x: poly(sg, x))(x).sum()))
    import torch.func as tf
    want = tf.grad(lambda x: tf.grad(lambda x: poly(torch, x))(x).sum())(torch.tensor(x)).numpy()
    np.testing.assert_allclose(gg(x), want, rtol=1e-13, atol=1e-15)
    src = gg.lower(x).forward.source
    assert "sin" in src and "cos" in src                   # d2/dx2 sin x = -sin x, through cos
    # per-example gradients compiled: one graph over the batch
    w = R.normal(size=(3, 2))
    xs = R.normal(size=(5, 3))

    def loss(T, w, x):
        return T.tanh(T.matmul(x, w)).sum() ** 2
    pe = sg.jit(sg.func.vmap(sg.func.grad(lambda w, x: loss(sg, w, x)), in_dims=(None, 0)))
    want = tf.vmap(tf.grad(lambda w, x: loss(torch, w, x)), in_dims=(None, 0))(torch.tensor(w),
                                                                               torch.tensor(xs))
    got = pe(w, xs)
    assert got.shape == (5, 3, 2)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-12, atol=1e-15)


def test_jit_inside_a_transform_traces_through():
    jf = sg.jit(lambda x: (x ** 3).sum())
    x = np.array([1.0, 2.0])
    g = sg.func.grad(jf)(x)              # the stand-in requires grad: the function runs on it
    np.testing.assert_array_equal(g.numpy(), 3 * x ** 2)
    np.testing.assert_array_equal(jf(x), 9.0)
    xs = np.array([[1.0, 2.0], [3.0, -1.0]])
    per_row = sg.func.vmap(jf)(xs)                    # placeholders of one row: traced through too
    np.testing.assert_array_equal(per_row.numpy(), (xs ** 3).sum(1))
    np.testing.assert_array_equal(sg.jit(sg.func.vmap(jf))(xs), (xs ** 3).sum(1))


def test_closed_over_values_are_constants_of_the_trace():
    w = sg.tensor(np.array([1.0, 2.0]))
    jf = sg.jit(lambda x: x * w)
    np.testing.assert_array_equal(jf(np.array([3.0, 4.0])), [3.0, 8.0])
    with pytest.raises(TypeError, match="results must be Variables"):
        sg.jit(lambda x: "no")(np.ones(1))
    with pytest.raises(ValueError, match="input 0 'x'.*shape"):
        # a wrong shape never reaches the C: a new signature traces again, so call the lowered one
        JMLP.lower(np.ones((4, 3)), np.ones((3, 5)), np.ones(5)).forward(np.ones((2, 3)), np.ones((3, 5)),
                                                                          np.ones(5))
