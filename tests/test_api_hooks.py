"""Hooks and grad modes (SPEC §7), written once against a module `T` and run with `T = torch`
and `T = symgrad`: `register_hook` on leaves and intermediates (replacing the gradient or
only looking at it, several in order, removed by their handle, in backward() and in
autograd.grad, with retain_grad), and `set_grad_enabled`, `no_grad`, `enable_grad`,
`inference_mode` as functions, context managers and decorators with or without parentheses."""
from __future__ import annotations

import numpy as np
import pytest

import symgrad as sg
from conftest import value

R = np.random.default_rng(3)
X = R.uniform(-1.0, 1.0, 4).astype(np.float32)
W = R.uniform(0.5, 1.5, 4).astype(np.float32)

PROGRAMS = {}


def program(fn):
    PROGRAMS[fn.__name__] = fn
    return fn


@program
def leaf_hook_replaces_the_gradient(T):
    x = T.tensor(X, requires_grad=True)
    x.register_hook(lambda g: g * 2)
    (x * x * T.tensor(W)).sum().backward()
    return {"x.grad": x.grad}


@program
def intermediate_hook_changes_what_flows_on(T):
    x = T.tensor(X, requires_grad=True)
    y = x * 3
    y.register_hook(lambda g: g + 1)
    z = (y * y).sum()
    z.backward()
    return {"x.grad": x.grad, "z": z}


@program
def hooks_that_look_only(T):
    seen = []
    x = T.tensor(X, requires_grad=True)
    y = x.sin()
    y.register_hook(lambda g: seen.append(g.detach().clone()))
    x.register_hook(lambda g: seen.append(g.detach().clone()))
    (y * T.tensor(W)).sum().backward()
    return {"x.grad": x.grad, "seen0": seen[0], "seen1": seen[1], "count": len(seen)}


@program
def several_hooks_run_in_order(T):
    x = T.tensor(X, requires_grad=True)
    x.register_hook(lambda g: g * 2)
    x.register_hook(lambda g: g + 10)
    (x * T.tensor(W)).sum().backward()
    return {"x.grad": x.grad}


@program
def removed_hook_runs_no_more(T):
    x = T.tensor(X, requires_grad=True)
    handle = x.register_hook(lambda g: g * 100)
    (x * 2).sum().backward()
    first = x.grad.clone()
    handle.remove()
    x.grad = None
    (x * 2).sum().backward()
    return {"first": first, "second": x.grad}


@program
def hooks_in_autograd_grad(T):
    x = T.tensor(X, requires_grad=True)
    y = x.exp()
    y.register_hook(lambda g: g * T.tensor(W))
    (g,) = T.autograd.grad(y.sum(), x)
    return {"g": g, "x.grad": x.grad is None}


@program
def hook_and_retain_grad(T):
    x = T.tensor(X, requires_grad=True)
    y = x * 2
    y.retain_grad()
    y.register_hook(lambda g: g * 10)
    (y * y).sum().backward()
    return {"y.grad": y.grad, "x.grad": x.grad}


@program
def grad_modes_nest(T):
    x = T.tensor(X, requires_grad=True)
    out = {}
    with T.no_grad():
        out["no_grad"] = (x * 2).requires_grad
        with T.enable_grad():
            out["enable_inside"] = (x * 2).requires_grad
            with T.set_grad_enabled(mode=False):
                out["set_false_inside"] = (x * 2).requires_grad
            out["restored_enable"] = T.is_grad_enabled()
        with T.inference_mode():
            out["inference"] = (T.is_inference_mode_enabled(), (x * 2).requires_grad)
            with T.inference_mode(False):
                out["inference_off"] = T.is_inference_mode_enabled()
        out["after_inference"] = (T.is_inference_mode_enabled(), T.is_grad_enabled())
    out["after"] = T.is_grad_enabled()
    with T.no_grad():
        with T.inference_mode(False):
            out["inference_off_in_no_grad"] = (T.is_grad_enabled(), (x * 2).requires_grad)
        with T.inference_mode(mode=True):
            out["grad_in_inference"] = T.is_grad_enabled()
    T.set_grad_enabled(False)
    out["function_off"] = (T.is_grad_enabled(), (x * 2).requires_grad)
    T.set_grad_enabled(True)
    out["function_on"] = (T.is_grad_enabled(), (x * 2).requires_grad)
    return out


@program
def decorators_with_and_without_parentheses(T):
    x = T.tensor(X, requires_grad=True)

    @T.no_grad
    def bare(v):
        """doc"""
        return v * 2

    @T.no_grad()
    def called(v):
        return v * 2

    @T.enable_grad
    def enabled(v):
        return v * 2

    @T.inference_mode
    def infer(v):
        return (v * 2).requires_grad, T.is_inference_mode_enabled()

    @T.inference_mode()
    def infer_called(v):
        return (v * 2).requires_grad

    @T.set_grad_enabled(False)
    def off(v):
        return (v * 2).requires_grad

    @T.no_grad()
    def gen(v):
        yield (v * 2).requires_grad
        yield (v * 3).requires_grad

    with T.no_grad():
        inside = enabled(x).requires_grad
    return {"bare": bare(x).requires_grad, "bare_name": (bare.__name__, bare.__doc__),
            "called": called(x).requires_grad, "enabled": inside, "infer": infer(x),
            "infer_called": infer_called(x), "off": off(x), "after_decorating": T.is_grad_enabled(),
            "generator": tuple(gen(x)), "outside_generator": (x * 2).requires_grad}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_same_results_as_torch(name, torch):
    ours, theirs = PROGRAMS[name](sg), PROGRAMS[name](torch)
    assert sg.is_grad_enabled() and torch.is_grad_enabled()
    assert ours.keys() == theirs.keys()
    for key in ours:
        a, b = ours[key], theirs[key]
        if isinstance(a, (bool, int, str, tuple)):
            assert a == b, f"{name}: {key}"
        else:
            np.testing.assert_allclose(value(a), value(b), rtol=1e-6, err_msg=f"{name}: {key}")


def test_hook_errors_as_torch(torch):
    for T in (sg, torch):
        with pytest.raises(RuntimeError, match="doesn't require gradient"):
            T.tensor(X).register_hook(lambda g: g)
        x = T.tensor(X, requires_grad=True)
        x.register_hook(lambda g: g[:2])
        with pytest.raises(RuntimeError, match="has changed the size of value"):
            (x * 2).sum().backward()


def test_hooks_run_in_a_compiled_gradient_graph(torch):
    """A hook on a symbolic Variable is part of the gradient graph sg.grad builds."""
    x = sg.Variable(shape=(4,), name="x", requires_grad=True)
    y = x.sin()
    y.register_hook(lambda g: g * 3)
    (g,) = sg.grad((y * y).sum(), x)
    got = sg.compile([x], g)(X)
    xt = torch.tensor(X, requires_grad=True)
    yt = xt.sin()
    yt.register_hook(lambda g: g * 3)
    (yt * yt).sum().backward()
    np.testing.assert_allclose(got, xt.grad.numpy(), rtol=1e-6)


def test_set_grad_enabled_needs_a_bool():
    with pytest.raises(TypeError, match="bool"):
        sg.set_grad_enabled("yes")
    assert sg.is_grad_enabled()


def test_profiler_names_run(torch):
    """introyt's autograd tutorial profiles a loop; symgrad runs it and prints a table."""
    for T in (sg, torch):
        x = T.tensor(X, requires_grad=True)
        with T.autograd.profiler.profile(use_cuda=False) as prof:
            with T.autograd.profiler.record_function("loop"):
                z = x
                for _ in range(3):
                    z = (z / 2.0) * x
        assert z.requires_grad
        table = prof.key_averages().table(sort_by="self_cpu_time_total")
        assert isinstance(table, str) and "Self CPU time total" in table
