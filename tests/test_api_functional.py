"""`sg.autograd.functional` (jacobian, hessian, vjp, jvp, hvp, vhp) against PyTorch's: each
case is written once against a module `T` and run on both; the results must nest in the same
tuples, with the same shapes, dtypes, requires_grad and numbers. Then the same functions on
symbolic inputs inside `sg.compile` (C against the interpreter and against torch), and the
errors."""
from __future__ import annotations

import numpy as np
import pytest

import symgrad as sg
from conftest import value

R = np.random.default_rng(7)
A = R.uniform(-1.0, 1.0, 3)
B = R.uniform(-1.0, 1.0, (2, 3))
V3 = R.uniform(-1.0, 1.0, 3)
V2 = R.uniform(-1.0, 1.0, 2)
V23 = R.uniform(-1.0, 1.0, (2, 3))


def f_vec(x):                    # R^3 -> R^2
    return (x[:2] * x[1:]).sin() + x.sum()


def f_two_in(x, w):              # (3,), (2, 3) -> (2,)
    return (w * x).tanh().sum(dim=1) * x[0]


def f_two_out(x, w):             # (3,), (2, 3) -> (2, 3), ()
    return w * x.exp(), (w @ x).pow(2).sum()


def f_pair_scalar(x, w):         # (3,), (2, 3) -> ()
    return ((w @ x) ** 2).sum() + (x * x * x).sum() * w[0, 0]


def smooth(x):
    return (x ** 3).sum() + (x[0] * x[1]).exp()


CASES = {
    "jacobian vec": lambda T, F, x, w: F.jacobian(f_vec, x),
    "jacobian two inputs": lambda T, F, x, w: F.jacobian(f_two_in, (x, w)),
    "jacobian two outputs": lambda T, F, x, w: F.jacobian(lambda a: f_two_out(a, w), x),
    "jacobian tuple of one": lambda T, F, x, w: F.jacobian(lambda a: (a.exp(),), (x,)),
    "jacobian both tuples": lambda T, F, x, w: F.jacobian(f_two_out, (x, w), create_graph=True),
    "jacobian scalar out": lambda T, F, x, w: F.jacobian(smooth, x),
    "jacobian unused input": lambda T, F, x, w: F.jacobian(lambda a, b: a * 2, (x, w)),
    "jacobian vectorize": lambda T, F, x, w: F.jacobian(f_vec, x, vectorize=True),
    "hessian": lambda T, F, x, w: F.hessian(smooth, x),
    "hessian pair": lambda T, F, x, w: F.hessian(f_pair_scalar, (x, w)),
    "vjp": lambda T, F, x, w: F.vjp(f_vec, x, T.tensor(V2)),
    "vjp two": lambda T, F, x, w: F.vjp(f_two_in, (x, w), T.tensor(V2)),
    "vjp scalar no v": lambda T, F, x, w: F.vjp(smooth, x),
    "vjp tuple out": lambda T, F, x, w: F.vjp(f_two_out, (x, w),
                                              (T.tensor(V23), T.tensor(1.5, dtype=T.float64))),
    "jvp": lambda T, F, x, w: F.jvp(f_vec, x, T.tensor(V3)),
    "jvp two": lambda T, F, x, w: F.jvp(f_two_out, (x, w), (T.tensor(V3), T.tensor(V23))),
    "jvp create_graph": lambda T, F, x, w: F.jvp(f_vec, x, T.tensor(V3), create_graph=True),
    "hvp": lambda T, F, x, w: F.hvp(smooth, x, T.tensor(V3)),
    "vhp": lambda T, F, x, w: F.vhp(smooth, x, T.tensor(V3)),
    "hvp pair": lambda T, F, x, w: F.hvp(f_pair_scalar, (x, w), (T.tensor(V3), T.tensor(V23))),
    "vhp strict": lambda T, F, x, w: F.vhp(f_pair_scalar, (x, w), (T.tensor(V3), T.tensor(V23)), strict=True),
}


def _flatten(r, path="r"):
    """(path, leaf) pairs of nested tuples; the structure is part of the path."""
    if isinstance(r, tuple):
        out = [(f"{path}:tuple{len(r)}", None)]
        for k, item in enumerate(r):
            out += _flatten(item, f"{path}[{k}]")
        return out
    return [(path, r)]


def _run(T, name):
    x = T.tensor(A, requires_grad=True)
    w = T.tensor(B, requires_grad=True)
    return _flatten(CASES[name](T, T.autograd.functional, x, w))


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_results_as_torch(name, torch):
    ours, theirs = _run(sg, name), _run(torch, name)
    assert [p for p, _ in ours] == [p for p, _ in theirs]
    for (path, a), (_, b) in zip(ours, theirs):
        if b is None:
            continue
        assert a.requires_grad == b.requires_grad, f"{name} {path}: requires_grad"
        va, vb = value(a), value(b)
        assert va.shape == vb.shape and va.dtype == vb.dtype, f"{name} {path}: {va.shape} vs {vb.shape}"
        np.testing.assert_allclose(va, vb, rtol=1e-10, atol=1e-12, err_msg=f"{name} {path}")


def test_create_graph_results_are_differentiable(torch):
    for T in (sg, torch):
        x = T.tensor(A, requires_grad=True)
        J = T.autograd.functional.jacobian(lambda a: a.sin() * a, x, create_graph=True)
        assert J.requires_grad and J.grad_fn is not None
        (g,) = T.autograd.grad(J.sum(), x)
        if T is sg:
            ours = value(g)
        else:
            np.testing.assert_allclose(ours, value(g), rtol=1e-12)


# --- inside compiled graphs ----------------------------------------------------------------------

def test_functional_results_compile(torch):
    x = sg.Variable(shape=(3,), dtype="float64", name="x", requires_grad=True)
    F = sg.autograd.functional
    J = F.jacobian(f_vec, x)
    H = F.hessian(smooth, x)
    _, hv = F.hvp(smooth, x, sg.tensor(V3))
    _, jv = F.jvp(f_vec, x, sg.tensor(V3))
    outs = [J, H, hv, jv]
    compiled = sg.compile([x], outs)(A)
    interp = sg.compile([x], outs, backend="interp")(A)
    Ft = torch.autograd.functional
    xt = torch.tensor(A)
    expected = [Ft.jacobian(f_vec, xt), Ft.hessian(smooth, xt), Ft.hvp(smooth, xt, torch.tensor(V3))[1],
                Ft.jvp(f_vec, xt, torch.tensor(V3))[1]]
    for got, ref, want in zip(compiled, interp, expected):
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-10, atol=1e-12)


# --- errors, as PyTorch's ---------------------------------------------------------------------

ERRORS = [
    (lambda T, F, x: F.vjp(f_vec, x), RuntimeError, "v can only be None"),
    (lambda T, F, x: F.jvp(f_vec, x), RuntimeError, "v can only be None"),
    (lambda T, F, x: F.vjp(f_vec, x, T.tensor(V3)), RuntimeError, "invalid size"),
    (lambda T, F, x: F.hessian(f_vec, x), RuntimeError, "should contain a single element"),
    (lambda T, F, x: F.jacobian(f_vec, [x]), TypeError, "must be either a Tensor or a tuple of Tensors"),
    (lambda T, F, x: F.jacobian(lambda a: a.detach() * 2, x, strict=True), RuntimeError,
     "does not require grad"),
    (lambda T, F, x: F.vjp(lambda a, b: a * 2, (x, x * 1), T.tensor(V3), strict=True), RuntimeError,
     "independent of input 1"),
    (lambda T, F, x: F.jacobian(f_vec, x, strategy="sideways"), (ValueError, AssertionError), "forward-mode"),
]


@pytest.mark.parametrize("k", range(len(ERRORS)))
def test_errors_as_torch(k, torch):
    make, kind, match = ERRORS[k]
    for T in (sg, torch):
        with pytest.raises(kind, match=match):
            make(T, T.autograd.functional, T.tensor(A, requires_grad=True))
