"""sg.compile's record in the graph index (symgrad.compile_record): keyed by the user's graph,
so a graph compiled before loads with no autodiff and no code generation, and never leads to a
library whose gradients are another graph's. Each "second process" here is simulated by
forgetting the loaded libraries (build._loaded) and building the graph again; expected values
come from numpy."""
from __future__ import annotations

import json

import numpy as np
import pytest

import symgrad as sg
from symgrad import autodiff, build

XV = np.array([0.5, -1.0, 2.0], np.float32)
WV = np.array([1.5, 0.25, -0.5], np.float32)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMGRAD_BUILD_DIR", str(tmp_path))
    monkeypatch.setattr(build, "_loaded", {})
    return tmp_path


def _new_process(monkeypatch):
    monkeypatch.setattr(build, "_loaded", {})


def _graph(x_grad=True, w_grad=True, name="x_rec"):
    x = sg.Variable(shape=(3,), name=name, requires_grad=x_grad)
    w = sg.Variable(shape=(3,), name="w_rec", requires_grad=w_grad)
    return [x, w], sg.sum(sg.sin(x) * w * 3.0)


def _expected_grads():
    return np.cos(XV) * WV * 3, np.sin(XV) * 3


def test_a_graph_compiled_before_loads_without_autodiff(cache, monkeypatch, caplog):
    inputs, loss = _graph()
    value, grads = sg.compile(inputs, loss).value_and_grad(XV, WV)
    _new_process(monkeypatch)

    def no_autodiff(*args):
        raise AssertionError("autodiff ran on a warm load")
    monkeypatch.setattr(autodiff, "_backward_pass", no_autodiff)
    inputs, loss = _graph()
    with caplog.at_level("INFO", logger="symgrad"):
        fn = sg.compile(inputs, loss)
        value2, grads2 = fn.value_and_grad(XV, WV)
    assert not [r for r in caplog.records if "generated" in r.getMessage()]
    np.testing.assert_allclose(value2, np.sum(np.sin(XV) * WV * 3), rtol=1e-6)
    for got, want in zip(grads2, _expected_grads()):
        np.testing.assert_allclose(got, want, rtol=1e-5)
    np.testing.assert_allclose(fn.backward(XV, WV)[0], _expected_grads()[0], rtol=1e-5)
    np.testing.assert_allclose(fn(XV, WV), value, rtol=1e-6)
    monkeypatch.undo()


@pytest.mark.parametrize("change", ["requires_grad", "wrt"])
def test_which_inputs_have_gradients_is_part_of_the_key(cache, monkeypatch, change):
    """The same forward graph differentiated with respect to other inputs gets its own
    library: the gradients are right, not those of the graph compiled before."""
    inputs, loss = _graph()
    fn = sg.compile(inputs, loss)
    assert len(fn.value_and_grad(XV, WV)[1]) == 2
    _new_process(monkeypatch)
    if change == "requires_grad":
        inputs, loss = _graph(w_grad=False)
        fn = sg.compile(inputs, loss)
    else:
        inputs, loss = _graph()
        fn = sg.compile(inputs, loss, wrt=[inputs[1]])
    (g,) = fn.value_and_grad(XV, WV)[1]
    np.testing.assert_allclose(g, _expected_grads()[0 if change == "requires_grad" else 1], rtol=1e-5)


@pytest.mark.parametrize("factor", [2.0, 5.0])
def test_a_graph_with_a_hook_is_not_taken_for_another(cache, monkeypatch, factor):
    """A hook changes a gradient where the graph does not show it: such a graph is keyed after
    autodiff, so a hook of another factor gets its own library."""
    for k in (1.0, factor):
        _new_process(monkeypatch)
        inputs, loss = _graph()
        inputs[0].register_hook(lambda g, k=k: g * k)
        (gx, gw) = sg.compile(inputs, loss).value_and_grad(XV, WV)[1]
        np.testing.assert_allclose(gx, _expected_grads()[0] * k, rtol=1e-5)
        np.testing.assert_allclose(gw, _expected_grads()[1], rtol=1e-5)


def test_a_custom_function_whose_backward_changed_gets_its_own_library(cache, monkeypatch):
    """Two custom Functions of one name, whose backwards differ (a user's edit between runs)."""
    for k in (1.0, 3.0):
        _new_process(monkeypatch)

        class Square(sg.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(x)
                return x * x

            @staticmethod
            def backward(ctx, g, k=k):
                (x,) = ctx.saved_tensors
                return g * x * (2.0 * k)
        x = sg.Variable(shape=(3,), name="x_sq", requires_grad=True)
        (gx,) = sg.compile([x], sg.sum(Square.apply(x))).value_and_grad(XV)[1]
        np.testing.assert_allclose(gx, 2 * k * XV, rtol=1e-6)


@pytest.mark.parametrize("damage", ["diff", "consts", "out_specs", "digest_kept"])
def test_a_damaged_compile_part_is_ignored(cache, monkeypatch, damage):
    """A record whose "compile" part is altered (the digest then fails), or is of the wrong
    form with its digest made to match, is not followed blindly: the values are right."""
    c = np.array([1.0, 2.0, 4.0], np.float32)

    def make():
        x = sg.Variable(shape=(3,), name="x_dmg", requires_grad=True)
        return x, sg.sum(sg.exp(x) * sg.Variable(c))
    x, loss = make()
    sg.compile([x], loss).value_and_grad(XV)
    (path,) = (cache / "index").rglob("*.json")
    record = json.loads(path.read_text())
    part = record["compile"]
    if damage == "diff":
        part["diff"] = [5]
    elif damage == "consts":
        part["consts"] = [[0, 0], [0], [0]]
    elif damage == "out_specs":
        part["out_specs"][1] = [[[4], "float32"]]
    else:
        part["consts"] = [[7], [7], [7]]
        record["digest"] = build._record_digest(record)
    path.write_text(json.dumps(record))
    _new_process(monkeypatch)
    x, loss = make()
    value, (g,) = sg.compile([x], loss).value_and_grad(XV)
    np.testing.assert_allclose(value, np.sum(np.exp(XV) * c), rtol=1e-6)
    np.testing.assert_allclose(g, np.exp(XV) * c, rtol=1e-6)


def test_a_part_built_without_grad_is_part_of_the_key(cache, monkeypatch):
    """The same ops, once built under no_grad: the gradient graph differs, and so do the keys."""
    for detached in (False, True):
        _new_process(monkeypatch)
        x = sg.Variable(shape=(3,), name="x_ng", requires_grad=True)
        if detached:
            with sg.no_grad():
                sq = x * x
        else:
            sq = x * x
        (gx,) = sg.compile([x], sg.sum(sg.sin(x) + sq)).value_and_grad(XV)[1]
        np.testing.assert_allclose(gx, np.cos(XV) + (0 if detached else 2 * XV), rtol=1e-5)
