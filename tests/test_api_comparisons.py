"""`allclose`, `isclose`, `equal`, and `%`, `//`, `fmod`, `remainder`, `floor_divide` and
`div(..., rounding_mode=)` against PyTorch: eager, compiled and interpreted, signed zeros,
infinities and NaN included."""

from __future__ import annotations

import numpy as np
import pytest

import symgrad as sg
from conftest import value

torch = pytest.importorskip("torch")

NAN, INF = float("nan"), float("inf")

CLOSE_CASES = {
    "nan_inf": ([1.0, NAN, INF, -INF, 1e-9, 0.0], [1.0 + 1e-6, NAN, INF, INF, 0.0, -0.0], {}),
    "equal_nan": ([1.0, NAN, INF, NAN], [1.0, NAN, INF, 2.0], {"equal_nan": True}),
    "rtol": ([100.0, 1.0, -5.0], [101.0, 1.05, -5.2], {"rtol": 0.02}),
    "atol": ([0.0, 1.0, -1.0], [0.3, 1.25, -0.5], {"atol": 0.3, "rtol": 0.0}),
    "exact": ([1.0, 2.0], [1.0, 2.0 + 1e-7], {"rtol": 0.0, "atol": 0.0}),
    "broadcast": ([[1.0, 2.0], [3.0, 4.0]], [1.0, 2.0000001], {}),
    "ints": ([100, 2, -7], [101, 3, -7], {"rtol": 0.01}),
    "ints_default": ([1, 2], [1, 3], {}),
}


@pytest.mark.parametrize("name", sorted(CLOSE_CASES))
def test_isclose_and_allclose_as_torch(name):
    a, b, kw = CLOSE_CASES[name]
    results = {}
    for T in (torch, sg):
        x, y = T.tensor(a), T.tensor(b)
        results[T.__name__] = (
            value(T.isclose(x, y, **kw)),
            T.allclose(x, y, **kw),
            value(x.isclose(y, **kw)),
            x.allclose(y, **kw),
            value(T.isclose(input=x, other=y, **kw)),
        )
    want, got = results["torch"], results["symgrad"]
    for w, g in zip(want, got):
        if isinstance(w, np.ndarray):
            assert g.dtype == np.bool_
            np.testing.assert_array_equal(g, w)
        else:
            assert type(g) is bool and g == w


@pytest.mark.parametrize(
    "a, b",
    [
        ([1.0, 2.0], [1.0, 2.0]),
        ([1.0, 2.0], [1.0, 2.5]),
        ([1.0, 2.0], [1.0]),
        ([[1.0, 2.0]], [1.0, 2.0]),
        ([NAN], [NAN]),
        ([0.0], [-0.0]),
        ([1, 2], [1, 2]),
        ([], []),
    ],
)
def test_equal_as_torch(a, b):
    want = torch.equal(torch.tensor(a), torch.tensor(b))
    got = sg.equal(sg.tensor(a), sg.tensor(b))
    assert type(got) is bool and got == want
    assert sg.tensor(a).equal(sg.tensor(b)) == want


def test_isclose_needs_no_values_but_allclose_does():
    x = sg.Variable(shape=(3,), name="x")
    fn = sg.compile([x], sg.isclose(x, sg.tensor([1.0, 2.0, NAN]), equal_nan=True))
    np.testing.assert_array_equal(fn(np.array([1.0, 2.1, NAN], np.float32)), [True, False, True])
    with pytest.raises(RuntimeError, match="symbolic"):
        sg.allclose(x, x)


def test_isclose_carries_no_gradient_and_refuses_bad_tolerances():
    x = sg.tensor([1.0, 2.0], requires_grad=True)
    assert not sg.isclose(x, x * 2).requires_grad
    with pytest.raises(RuntimeError, match="non-negative"):
        sg.isclose(x, x, rtol=-1)


# --- division and remainders ---------------------------------------------------------------------

FLOATS = np.array([-7.5, -7.0, -3.5, -2.0, -0.0, 0.0, 0.5, 2.0, 3.5, 7.0, 1e30, INF, -INF, NAN], np.float32)
INTS = np.array([-9, -7, -3, -2, -1, 0, 1, 2, 3, 7, 9], np.int64)


def _grid(values, nonzero_divisor=False):
    a, b = (m.ravel() for m in np.meshgrid(values, values))
    if nonzero_divisor:
        a, b = a[b != 0], b[b != 0]
    return a, b


DIVISIONS = {
    "floordiv": lambda T, p, q: p // q,
    "mod": lambda T, p, q: p % q,
    "fmod": lambda T, p, q: T.fmod(p, q),
    "remainder": lambda T, p, q: T.remainder(p, q),
    "floor_divide": lambda T, p, q: T.floor_divide(p, q),
    "div_trunc": lambda T, p, q: T.div(p, q, rounding_mode="trunc"),
    "div_floor": lambda T, p, q: T.div(p, q, rounding_mode="floor"),
    "div_none": lambda T, p, q: T.div(p, q, rounding_mode=None),
    "method_trunc": lambda T, p, q: p.div(q, rounding_mode="trunc"),
}


def _same(got, want, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype, (what, got.dtype, want.dtype)
    if got.dtype.kind == "f":
        same = (got == want) & (np.signbit(got) == np.signbit(want)) | (np.isnan(got) & np.isnan(want))
    else:
        same = got == want
    assert same.all(), (
        f"{what}: {np.argwhere(~same).ravel()[:8]} got {got[~same][:8]}, torch {want[~same][:8]}"
    )


@pytest.mark.parametrize("kind", ["float32", "int64"])
def test_division_as_torch_eager_compiled_interpreted(kind):
    # (integers divided by zero: PyTorch raises ZeroDivisionError; symgrad gives numpy's 0, below)
    a, b = _grid(FLOATS) if kind == "float32" else _grid(INTS, nonzero_divisor=True)
    x = sg.Variable(shape=a.shape, dtype=kind, name="x")
    y = sg.Variable(shape=a.shape, dtype=kind, name="y")
    names = sorted(DIVISIONS)
    graph = [DIVISIONS[n](sg, x, y) for n in names]
    compiled = {backend: sg.compile([x, y], graph, backend=backend) for backend in ("c", "interp")}
    runs = {backend: fn(a, b) for backend, fn in compiled.items()}
    for k, n in enumerate(names):
        want = DIVISIONS[n](torch, torch.tensor(a), torch.tensor(b)).numpy()
        _same(value(DIVISIONS[n](sg, sg.tensor(a), sg.tensor(b))), want, f"{n} eager")
        for backend, out in runs.items():
            _same(out[k], want, f"{n} {backend}")


@pytest.mark.parametrize(
    "expr",
    [
        lambda T: 7 // T.tensor([2.0, -2.0, 0.5]),
        lambda T: -7 % T.tensor([2, -3, 4]),
        lambda T: T.tensor([-7.5, 7.5, -0.0]) % 2.5,
        lambda T: T.tensor([-7, 7, -1]) // 2,
        lambda T: 7.5 % T.tensor([2, -2]),
        lambda T: T.tensor([-7, 7]) % -3.5,
        lambda T: T.remainder(-7, T.tensor([2, -3])),
        lambda T: T.fmod(T.tensor([-7, 7]), 3),
        lambda T: T.div(T.tensor([-7, 7]), 2, rounding_mode="trunc"),
        lambda T: T.tensor([-7, 7]) / 2,
        lambda T: T.div(-7.0, T.tensor([2.0, -2.0]), rounding_mode="floor"),
    ],
    ids=[
        "int//float",
        "int%tensor",
        "float%scalar",
        "ints//int",
        "float%ints",
        "ints%-3.5",
        "remainder(-7)",
        "fmod(ints)",
        "trunc(ints)",
        "ints/2",
        "floor(scalar)",
    ],
)
def test_python_numbers_in_division_as_torch(expr):
    _same(value(expr(sg)), expr(torch).numpy(), "eager")


def test_integer_division_by_zero_gives_numpys_result():
    a, b = np.array([-7, 7, 0]), np.array([0, 0, 0])
    with np.errstate(all="ignore"):
        want = [np.floor_divide(a, b), np.remainder(a, b), np.fmod(a, b)]
    x = sg.Variable(shape=(3,), dtype="int64", name="x")
    y = sg.Variable(shape=(3,), dtype="int64", name="y")
    fn = sg.compile([x, y], [x // y, x % y, sg.fmod(x, y)])
    eager = [sg.tensor(a) // sg.tensor(b), sg.tensor(a) % sg.tensor(b), sg.fmod(sg.tensor(a), sg.tensor(b))]
    for got, w in zip(fn(a, b), want):
        np.testing.assert_array_equal(got, w)
    for got, w in zip(eager, want):
        np.testing.assert_array_equal(value(got), w)


def test_rounding_modes_have_zero_gradient_and_bad_modes_raise():
    for mode in ("trunc", "floor"):
        x = torch.tensor([2.5, -3.5], requires_grad=True)
        ours = sg.tensor([2.5, -3.5], requires_grad=True)
        y = torch.div(x, 2, rounding_mode=mode) + x
        z = sg.div(ours, 2, rounding_mode=mode) + ours
        y.sum().backward()
        z.sum().backward()
        np.testing.assert_array_equal(value(ours.grad), value(x.grad))
    with pytest.raises(ValueError, match="rounding_mode"):
        sg.div(sg.ones(2), 2, rounding_mode="round")
    v = sg.tensor([-7.0, 7.0])
    v.div_(2, rounding_mode="trunc")
    np.testing.assert_array_equal(value(v), [-3.0, 3.0])
