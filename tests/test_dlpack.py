"""DLPack and the array interface: sg.from_dlpack, Variable.__dlpack__, and compiled
functions taking torch CPU tensors (with or without requires_grad), JAX arrays and objects
with only __array_interface__; the numbers are PyTorch's."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import symgrad as sg
from symgrad.build import have_c_compiler

XV = np.array([[0.5, -1.0, 2.0], [0.25, 3.0, -0.75]], np.float32)
WV = np.array([[1.0, -2.0], [0.5, 0.25], [-1.5, 1.0]], np.float32)


def case(T, x, w):
    return (T.tanh(x @ w) * 2.0).sum()


def torch_result():
    x, w = torch.tensor(XV), torch.tensor(WV, requires_grad=True)
    loss = case(torch, x, w)
    loss.backward()
    return float(loss.detach()), w.grad.numpy()


@pytest.fixture(scope="module", params=["c", "interp"])
def fn(request):
    if request.param == "c" and not have_c_compiler():
        pytest.skip("no C compiler")
    x = sg.Variable(shape=XV.shape, name="x")
    w = sg.Variable(shape=WV.shape, name="w", requires_grad=True)
    return sg.compile([x, w], case(sg, x, w), backend=request.param)


class OnlyArrayInterface:
    """An object exposing its buffer through __array_interface__ alone."""

    def __init__(self, arr):
        self._arr = arr
        self.__array_interface__ = arr.__array_interface__


def _inputs(kind):
    if kind == "numpy":
        return XV, WV
    if kind == "torch":
        return torch.tensor(XV), torch.tensor(WV)
    if kind == "torch_requires_grad":
        return torch.tensor(XV, requires_grad=True), torch.tensor(WV, requires_grad=True)
    if kind == "torch_non_leaf":
        w = torch.tensor(WV, requires_grad=True) * 1.0
        return torch.tensor(XV), w
    if kind == "jax":
        jnp = pytest.importorskip("jax.numpy")
        return jnp.asarray(XV), jnp.asarray(WV)
    if kind == "array_interface":
        return OnlyArrayInterface(XV), OnlyArrayInterface(WV)
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["numpy", "torch", "torch_requires_grad", "torch_non_leaf", "jax",
                                  "array_interface"])
def test_compiled_functions_take_dlpack_and_array_interface_objects(fn, kind):
    value, grad = torch_result()
    x, w = _inputs(kind)
    np.testing.assert_allclose(fn(x, w), value, rtol=1e-5)
    got_value, (got_grad,) = fn.value_and_grad(x, w)
    np.testing.assert_allclose(got_value, value, rtol=1e-5)
    np.testing.assert_allclose(got_grad, grad, rtol=1e-5, atol=1e-6)
    (again,) = fn.backward(x, w)
    np.testing.assert_allclose(again, grad, rtol=1e-5, atol=1e-6)


def test_a_torch_tensor_of_the_wrong_dtype_is_refused_by_name(fn):
    with pytest.raises(TypeError, match=r"'x'.*float32.*float64"):
        fn(torch.tensor(XV, dtype=torch.float64), WV)
    with pytest.raises(ValueError, match=r"'w'.*shape \(3, 2\).*\(2, 3\)"):
        fn(XV, torch.tensor(WV.T.copy()))


def test_from_dlpack_takes_torch_and_jax_and_numpy():
    for make in (lambda a: torch.tensor(a), lambda a: torch.tensor(a, requires_grad=True), np.array):
        v = sg.from_dlpack(make(XV))
        assert isinstance(v, sg.Variable) and v.shape == XV.shape and v.dtype == np.float32
        np.testing.assert_array_equal(v.numpy(), XV)
    jnp = pytest.importorskip("jax.numpy")
    v = sg.from_dlpack(jnp.asarray(WV))
    np.testing.assert_array_equal(v.numpy(), WV)
    with pytest.raises(TypeError, match="__dlpack__"):
        sg.from_dlpack([1.0, 2.0])


def test_variables_export_dlpack_to_torch_numpy_and_jax():
    v = sg.tensor(XV) * 2.0
    assert v.__dlpack_device__() == (1, 0)
    t = torch.from_dlpack(v)
    np.testing.assert_array_equal(t.numpy(), XV * 2)
    np.testing.assert_array_equal(np.from_dlpack(v), XV * 2)
    jnp = pytest.importorskip("jax.numpy")
    np.testing.assert_array_equal(np.asarray(jnp.from_dlpack(v)), XV * 2)
    with pytest.raises(RuntimeError, match="symbolic"):
        sg.Variable(shape=(2,), name="s").__dlpack__()
