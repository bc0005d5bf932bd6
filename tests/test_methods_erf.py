"""`Variable.erf()`, the method form of sg.erf, against torch.Tensor.erf: values and gradients
(float64 and float32), eager and compiled."""
from __future__ import annotations

import numpy as np
import pytest

import symgrad as sg

torch = pytest.importorskip("torch")


def program(T, dtype):
    x = T.tensor(np.linspace(-3, 3, 13).astype(dtype), requires_grad=True)
    y = x.erf()
    (y * T.tensor(np.linspace(1, 2, 13).astype(dtype))).sum().backward()
    return y.detach().numpy(), x.grad.numpy()


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)], ids=["float64", "float32"])
def test_erf_method_follows_torch(dtype, rtol, interp_backward):
    (ours, ours_grad), (theirs, theirs_grad) = program(sg, dtype), program(torch, dtype)
    assert ours.dtype == theirs.dtype == dtype
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * 1e-3)
    np.testing.assert_allclose(ours_grad, theirs_grad, rtol=rtol, atol=rtol * 1e-3)


def test_erf_method_compiles():
    x = sg.Variable(shape=(5,), dtype="float64", name="x")
    fn = sg.compile([x], (x.erf() * x).sum(), wrt=[x])
    xv = np.array([-2.0, -0.5, 0.0, 0.7, 1.9])
    value, (grad,) = fn.value_and_grad(xv)
    xt = torch.tensor(xv, requires_grad=True)
    theirs = (xt.erf() * xt).sum()
    theirs.backward()
    assert value == pytest.approx(theirs.item(), rel=1e-12)
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-12)
