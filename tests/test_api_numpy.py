"""numpy interop and grad_fn order, against PyTorch.

- `ndarray (op) Variable` is the Variable `Variable (op) ndarray` would be on the other side:
  same numbers, dtype and gradients as torch's `from_numpy(arr) (op) t` (torch itself refuses
  an ndarray on the left of most operators);
- numpy ufuncs on a Variable run the symgrad op (gradients flow, symbolic graphs compile)
  or raise a TypeError naming the ufunc; `np.asarray` of a Variable that requires grad raises
  as PyTorch does;
- `grad_fn.next_functions` lists the constant's slot where PyTorch does, for reflected operators."""

from __future__ import annotations

import operator

import numpy as np
import pytest

import symgrad as sg
from conftest import value

torch = pytest.importorskip("torch")

X = np.array([0.5, -1.25, 2.0, 0.75], np.float32)
ARR64 = np.array([1.5, 2.0, -0.5, 3.0])
ARR32 = ARR64.astype(np.float32)
ARRI = np.array([2, -3, 1, 4])

OPS = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "truediv": operator.truediv,
    "pow": operator.pow,
    "lt": operator.lt,
    "ge": operator.ge,
    "eq": operator.eq,
    "floordiv": operator.floordiv,
    "mod": operator.mod,
}


@pytest.mark.parametrize("arr", [ARR64, ARR32, ARRI], ids=["float64", "float32", "int64"])
@pytest.mark.parametrize("name", sorted(OPS))
def test_ndarray_on_the_left_is_the_variable_on_the_right(name, arr):
    op = OPS[name]
    x = sg.tensor(X, requires_grad=True)
    got = op(arr, x)
    assert isinstance(got, sg.Variable), type(got)
    same = op(sg.tensor(arr), x)
    np.testing.assert_array_equal(
        got.numpy() if not got.requires_grad else got.detach().numpy(), same.detach().numpy()
    )
    t = torch.tensor(X, requires_grad=True)
    want = op(torch.from_numpy(arr), t)
    assert str(got.dtype) == str(want.dtype).replace("torch.", "symgrad."), (got.dtype, want.dtype)
    np.testing.assert_allclose(value(got), value(want), rtol=1e-6)
    if name != "floordiv":
        # (torch's floor_divide result requires grad with a grad_fn that raises, NotImplemented;
        # symgrad's requires none: backward() through either is an error)
        assert got.requires_grad == want.requires_grad
    if want.requires_grad and name != "floordiv":
        got.sum().backward()
        want.sum().backward()
        np.testing.assert_allclose(value(x.grad), value(t.grad), rtol=1e-5)


def test_ndarray_and_matmul():
    m = np.arange(8.0, dtype=np.float32).reshape(2, 4)
    x = sg.tensor(X, requires_grad=True)
    got = m @ x
    t = torch.tensor(X, requires_grad=True)
    want = torch.from_numpy(m) @ t
    np.testing.assert_allclose(value(got), value(want))
    got.sum().backward()
    want.sum().backward()
    np.testing.assert_allclose(value(x.grad), value(t.grad))


# numpy ufunc on symgrad: the torch function that computes the same
UFUNCS = {
    "sin": (lambda v: np.sin(v), lambda t: torch.sin(t)),
    "exp": (lambda v: np.exp(v), lambda t: torch.exp(t)),
    "log_abs": (lambda v: np.log(np.abs(v)), lambda t: torch.log(torch.abs(t))),
    "sqrt_square": (lambda v: np.sqrt(np.square(v) + 1), lambda t: torch.sqrt(t * t + 1)),
    "tanh_neg": (lambda v: np.tanh(np.negative(v)), lambda t: torch.tanh(-t)),
    "add_scalar": (lambda v: np.add(v, 1), lambda t: t + 1),
    "multiply_array": (lambda v: np.multiply(ARR32, v), lambda t: torch.from_numpy(ARR32) * t),
    "maximum": (lambda v: np.maximum(v, np.float32(0.6) * v), lambda t: torch.maximum(t, 0.6 * t)),
    "minimum_array": (lambda v: np.minimum(v, ARR32), lambda t: torch.minimum(t, torch.from_numpy(ARR32))),
    "power": (lambda v: np.power(v, 2), lambda t: t**2),
    "divide_reciprocal": (lambda v: np.divide(np.reciprocal(v), 3.0), lambda t: torch.reciprocal(t) / 3.0),
    "numpy_scalar_left": (lambda v: np.float64(2.0) * v - np.float32(1.0), lambda t: 2.0 * t - 1.0),
}


@pytest.mark.parametrize("name", sorted(UFUNCS))
def test_ufuncs_keep_the_graph(name):
    ours, theirs = UFUNCS[name]
    x = sg.tensor(X, requires_grad=True)
    got = ours(x)
    assert isinstance(got, sg.Variable) and got.requires_grad and got.grad_fn is not None
    t = torch.tensor(X, requires_grad=True)
    want = theirs(t)
    np.testing.assert_allclose(value(got), value(want), rtol=1e-6)
    (got * got).sum().backward()
    (want * want).sum().backward()
    np.testing.assert_allclose(value(x.grad), value(t.grad), rtol=1e-5)


def test_ufuncs_on_symbolic_variables_compile():
    x = sg.Variable(shape=(4,), name="x", requires_grad=True)
    fn = sg.compile([x], np.exp(np.sin(x)).sum() + np.maximum(x, 0).sum())
    expect = np.exp(np.sin(X)).sum() + np.maximum(X, 0).sum()
    np.testing.assert_allclose(fn(X), expect, rtol=1e-6)
    (grad,) = fn.backward(X)
    np.testing.assert_allclose(grad, np.cos(X) * np.exp(np.sin(X)) + (X > 0), rtol=1e-5)


@pytest.mark.parametrize(
    "call, ufunc",
    [
        (lambda v: np.tan(v), "tan"),
        (lambda v: np.arctan2(v, v), "arctan2"),
        (lambda v: np.add.reduce(v), "add.reduce"),
        (lambda v: np.multiply.outer(v, v), "multiply.outer"),
        (lambda v: np.add(v, 1, out=np.zeros(4, np.float32)), "add"),
        (lambda v: np.exp(v, where=np.array([True, False, True, True])), "exp"),
    ],
    ids=["tan", "arctan2", "reduce", "outer", "out", "where"],
)
@pytest.mark.parametrize("requires_grad", [False, True])
def test_ufuncs_that_would_drop_the_graph_raise(call, ufunc, requires_grad):
    v = sg.tensor(X, requires_grad=requires_grad)
    with pytest.raises(TypeError, match=ufunc.replace(".", r"\.")):
        call(v)


@pytest.mark.parametrize("T", [torch, sg], ids=["torch", "symgrad"])
def test_asarray_of_a_variable_that_requires_grad_raises_as_torch(T):
    x = T.tensor(X, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"Can't call numpy\(\) on Tensor that requires grad"):
        np.asarray(x)
    np.testing.assert_array_equal(np.asarray(x.detach()), X)
    np.testing.assert_array_equal(np.asarray(T.tensor(X)), X)
    np.testing.assert_array_equal(np.asarray(T.tensor(X), dtype=np.float64), X.astype(np.float64))


# --- grad_fn.next_functions of reflected operators ---------------------------------------------

EXPRESSIONS = {
    "2*b": lambda T, b, c: 2 * b,
    "b*2": lambda T, b, c: b * 2,
    "2+b": lambda T, b, c: 2 + b,
    "b+2": lambda T, b, c: b + 2,
    "2-b": lambda T, b, c: 2 - b,
    "b-2": lambda T, b, c: b - 2,
    "2/b": lambda T, b, c: 2 / b,
    "b/2": lambda T, b, c: b / 2,
    "2**b": lambda T, b, c: 2**b,
    "b**2": lambda T, b, c: b**2,
    "b%2": lambda T, b, c: b % 2,
    "c*b": lambda T, b, c: c * b,
    "b*c": lambda T, b, c: b * c,
    "c-b": lambda T, b, c: c - b,
    "c/b": lambda T, b, c: c / b,
    "c**b": lambda T, b, c: c**b,
    "2.5*a": lambda T, b, c: 2.5 * b.sin(),
    "1/b*3": lambda T, b, c: 1 / b * 3,
    "add(b,2)": lambda T, b, c: T.add(b, 2),
    "maximum(b,c)": lambda T, b, c: T.maximum(b, c),
    "where": lambda T, b, c: T.where(b > 0, 2.0 * b, c),
}


def _structure(fn, depth=2):
    if fn is None:
        return None
    if depth == 0:
        return type(fn).__name__
    return (type(fn).__name__, tuple((_structure(f, depth - 1), k) for f, k in fn.next_functions))


@pytest.mark.parametrize("name", sorted(EXPRESSIONS))
def test_next_functions_of_reflected_operators_as_torch(name):
    shapes = {}
    for T in (torch, sg):
        a = T.tensor([0.5, 1.5], requires_grad=True)
        out = EXPRESSIONS[name](T, a.sin(), T.tensor([2.0, 3.0]))
        shapes[T.__name__] = (_structure(out.grad_fn), value(out.detach()))
    (want, want_value), (got, got_value) = shapes["torch"], shapes["symgrad"]
    assert got == want
    np.testing.assert_array_equal(got_value, want_value)  # 2 / b is 2 * (1 / b) in both
