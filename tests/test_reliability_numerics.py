"""Numerics at the edges (issue 9): kinks, singular points, NaN, signed zeros, infinities and
integer corner cases, each checked three ways where it applies:

- eager: values and `.backward()` gradients, with backward on the interpreter and on compiled C,
  against PyTorch running the same program (written once against a module `T`);
- `sg.compile(..., backend="c")` against `backend="interp"` on the special values, bit for bit
  where both sides are correctly rounded (signed zeros included) and special for special
  (NaN, +-inf, +-0) elsewhere;
- the fold and algebra passes on and off: they may only simplify, never change a bit.

Compiled checks batch many outputs into few graphs (a cold C compile costs ~0.3 s); what could
crash the process (integer division) runs in a child process."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import symgrad as sg
from conftest import value
from symgrad.variable import apply

NAN, INF = float("nan"), float("inf")
REPO = Path(__file__).resolve().parents[1]

# The interpreter (symgrad/interpret.py) lets numpy warn about inf and NaN, which eager mode does
# not; these tests feed them on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


# --- comparing -----------------------------------------------------------------------------------

def same_bits(actual, expected, what=""):
    """Equal values, NaN where NaN, and the same sign on every zero."""
    a, e = np.asarray(actual), np.asarray(expected)
    assert a.shape == e.shape and a.dtype == e.dtype, f"{what}: {a.shape} {a.dtype} vs {e.shape} {e.dtype}"
    if e.dtype.kind != "f":
        np.testing.assert_array_equal(a, e, err_msg=what)
        return
    np.testing.assert_array_equal(np.isnan(a), np.isnan(e), err_msg=f"{what}: NaN positions")
    ok = ~np.isnan(e)
    np.testing.assert_array_equal(a[ok], e[ok], err_msg=what)
    np.testing.assert_array_equal(np.signbit(a[ok]), np.signbit(e[ok]), err_msg=f"{what}: signs of zeros")


def same_specials(actual, expected, what="", rtol=None):
    """NaN, +-inf and +-0 exactly where expected; other values within rtol (libm and numpy may
    round transcendental functions differently in the last place)."""
    a, e = np.asarray(actual), np.asarray(expected)
    assert a.shape == e.shape and a.dtype == e.dtype, f"{what}: {a.shape} {a.dtype} vs {e.shape} {e.dtype}"
    if e.dtype.kind != "f":
        np.testing.assert_array_equal(a, e, err_msg=what)
        return
    special = ~np.isfinite(e) | (e == 0)
    same_bits(np.where(special, a, 0), np.where(special, e, 0), what)
    rtol = rtol or (1e-5 if e.dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(a[~special], e[~special], rtol=rtol, err_msg=what)


def like_torch(ours, theirs, what="", rtol=1e-6, atol=0.0):
    """A symgrad result against PyTorch's: same shape, NaN where NaN, infinities equal, the rest
    close (and, without an atol, exactly zero where PyTorch's is zero)."""
    a, e = np.asarray(value(ours)), np.asarray(value(theirs))
    assert a.shape == e.shape, f"{what}: shape {a.shape} != {e.shape}"
    a, e = a.astype(np.float64), e.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(e), err_msg=f"{what}: NaN positions {a} vs {e}")
    np.testing.assert_array_equal(np.isinf(a) & (a > 0), np.isinf(e) & (e > 0), err_msg=f"{what}: +inf")
    np.testing.assert_array_equal(np.isinf(a) & (a < 0), np.isinf(e) & (e < 0), err_msg=f"{what}: -inf")
    if not atol:
        np.testing.assert_array_equal(a == 0, e == 0, err_msg=f"{what}: zeros {a} vs {e}")
    fin = np.isfinite(e)
    np.testing.assert_allclose(a[fin], e[fin], rtol=rtol, atol=atol or 1e-300, err_msg=what)


# --- eager programs against PyTorch --------------------------------------------------------------

PROGRAMS = {}


def program(fn):
    PROGRAMS[fn.__name__] = fn
    return fn


def leaf(T, values, dtype=np.float64):
    return T.tensor(np.array(values, dtype), requires_grad=True)


def grads_of(T, fn, *arrays, dtype=np.float64, seed=None):
    """fn on fresh leaves; the value and each leaf's gradient after backward of sum(value), or
    of sum(value * seed)."""
    leaves = [leaf(T, a, dtype) for a in arrays]
    y = fn(*leaves)
    if seed is None:
        y.sum().backward()
    else:
        y.backward(T.tensor(np.array(seed, dtype)))
    return [y] + [v.grad for v in leaves]


def remainder(T, a, b):
    return apply("remainder", a, b) if T is sg else T.remainder(a, b)


def softplus(T, x):
    return apply("softplus", x) if T is sg else T.nn.functional.softplus(x)


@program
def bce_with_logits_at_zero_and_far_out(T):
    # every logit of a zero-initialised output layer is 0: the gradient there is 1/2 - t
    x = [0.0, 0.0, 0.0, 0.0, 30.0, -30.0, 100.0, -100.0, 1e4, -1e4, 0.5, -2.0]
    t = [0.0, 1.0, 0.5, 0.3, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.25, 0.75]
    out = {}
    for dtype in (np.float64, np.float32):
        for reduction in ("none", "sum", "mean"):
            def loss(a, b, reduction=reduction):
                return T.nn.functional.binary_cross_entropy_with_logits(a, b, reduction=reduction)
            y, gx, gt = grads_of(T, loss, x, t, dtype=dtype)
            out.update({f"{reduction} {dtype.__name__}": y, f"d/dx {reduction} {dtype.__name__}": gx,
                        f"d/dt {reduction} {dtype.__name__}": gt})
    return out


@program
def bce_with_logits_at_zero_is_half_minus_target(T):
    y, gx = grads_of(T, lambda a: T.nn.functional.binary_cross_entropy_with_logits(
        a, T.tensor(np.array([0.0, 1.0, 0.25]))), [0.0, 0.0, 0.0])
    assert np.allclose(value(gx), (0.5 - np.array([0.0, 1.0, 0.25])) / 3)
    return {"loss": y, "grad": gx}


@program
def pow_singular_points(T):
    xs = [0.0, -0.0, 1.0, -1.0, 2.0, NAN, INF]
    out = {}
    for name, fn in {"x**0": lambda a: a ** 0, "x**0.0": lambda a: a ** 0.0, "x**1": lambda a: a ** 1,
                     "x**2": lambda a: a ** 2, "x**3": lambda a: a ** 3, "x**-1": lambda a: a ** -1,
                     "x**-2.0": lambda a: a ** -2.0}.items():
        y, g = grads_of(T, fn, xs)
        out[name], out["d " + name] = y, g
    # x**0.5 and x**-0.5: not at -0.0, where PyTorch takes sqrt (pow(-0, .5) = -0 there, +0 here)
    for name, fn in {"x**0.5": lambda a: a ** 0.5, "x**-0.5": lambda a: a ** -0.5}.items():
        y, g = grads_of(T, fn, [0.0, 1.0, 4.0, -1.0, NAN, INF])
        out[name], out["d " + name] = y, g
    base = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -0.0, 2.0, 2.0, -1.0, -1.0, 1.0, NAN, 0.0, INF]
    expo = [0.0, 1.0, 2.0, -1.0, 0.5, -0.5, 2.0, 0.0, -1.0, 0.5, 2.0, NAN, 0.0, NAN, -1.0]
    y, ga, gb = grads_of(T, lambda a, b: a ** b, base, expo)
    out.update({"x**y": y, "d/dx x**y": ga, "d/dy x**y": gb})
    ys = [0.0, 1.0, 2.0, -1.0, 0.5, -0.5, NAN, INF, -INF]
    for c in (0.0, 2.0, 1.0):
        y, g = grads_of(T, lambda b, c=c: c ** b, ys)
        out[f"{c}**y"], out[f"d {c}**y"] = y, g
    return out


@program
def relu_abs_sign_at_kinks_and_nan(T):
    xs = [NAN, 0.0, -0.0, 1.0, -1.0, INF, -INF, 1e-300]
    out = {}
    for name, fn in {"relu": T.relu, "abs": T.abs, "sign": T.sign, "|x| method": lambda a: a.abs(),
                     "relu method": lambda a: a.relu()}.items():
        for dtype in (np.float64, np.float32):
            y, g = grads_of(T, fn, xs, dtype=dtype)
            out[f"{name} {dtype.__name__}"], out[f"d {name} {dtype.__name__}"] = y, g
    return out


@program
def max_min_reductions_with_nan_and_ties(T):
    rows = [[NAN, 1.0, 2.0], [1.0, NAN, NAN], [2.0, 1.0, 2.0], [-INF, -INF, -INF], [INF, 1.0, INF]]
    out = {}
    for op in ("max", "min"):
        for k, row in enumerate(rows):
            y, g = grads_of(T, lambda a, op=op: getattr(a, op)(), row)         # no dim: one value
            out[f"{op}() row {k}"], out[f"d {op}() row {k}"] = y, g
        y, g = grads_of(T, lambda a, op=op: getattr(a, op)(), rows)           # over all of a matrix
        out[f"{op}() all"], out[f"d {op}() all"] = y, g
        for dim in (0, 1):                                            # with a dim: at the index
            leaves = leaf(T, rows)
            v, i = getattr(leaves, op)(dim)
            v.sum().backward()
            out[f"{op}({dim}) values"], out[f"{op}({dim}) indices"] = v, i
            out[f"d {op}({dim})"] = leaves.grad
        # amax/amin share among ties; (PyTorch gives NaN gradients to a row holding a NaN: only
        # rows without NaN are compared)
        y, g = grads_of(T, lambda a, op=op: getattr(T, "a" + op)(a, 1), rows[2:])
        out[f"a{op}"], out[f"d a{op}"] = y, g
    return out


@program
def maximum_minimum_with_nan_and_ties(T):
    a = [NAN, 1.0, NAN, 1.0, 2.0, INF, -INF, 0.0, -3.0]
    b = [1.0, NAN, NAN, 1.0, 1.0, INF, 0.0, 0.0, 3.0]
    out = {}
    for name in ("maximum", "minimum"):
        y, ga, gb = grads_of(T, getattr(T, name), a, b, seed=[1, 2, 3, 4, 5, 6, 7, 8, 9])
        out[name], out[f"d/da {name}"], out[f"d/db {name}"] = y, ga, gb
    y, ga = grads_of(T, lambda x: T.maximum(x, T.tensor(np.array(1.0))), a)   # against a 0-d bound
    out["maximum(x, 1)"], out["d maximum(x, 1)"] = y, ga
    return out


@program
def clamp_is_inclusive_at_its_bounds(T):
    xs = [-1.0, 0.0, 0.5, 1.0, 2.0, -0.0]
    out = {}
    for name, fn in {"clamp(0, 1)": lambda a: a.clamp(0.0, 1.0), "clamp(min=0)": lambda a: a.clamp(min=0.0),
                     "clamp(max=1)": lambda a: a.clamp(max=1.0),
                     "clamp(1, 1)": lambda a: a.clamp(1.0, 1.0)}.items():
        y, g = grads_of(T, fn, xs)
        out[name], out["d " + name] = y, g
    return out


@program
def remainder_values_and_gradients(T):
    a = [5.5, -5.5, 5.5, -5.5, 7.0, 2.0, -2.0, -0.0, 0.0, 1.0, -1.0, INF, 3.0, NAN, 6.0]
    b = [2.0, 2.0, -2.0, -2.0, -3.0, -1.0, 1.0, 1.0, -1.0, INF, INF, 2.0, 0.0, 1.0, 1.5]
    y, ga, gb = grads_of(T, lambda x, z: remainder(T, x, z), a, b)
    ints = remainder(T, T.tensor(np.array([7, -7, 7, -7, 0, 6], np.int64)),
                     T.tensor(np.array([3, 3, -3, -3, 5, -3], np.int64)))
    return {"a % b": y, "d/da": ga, "d/db": gb, "int %": ints}


@program
def softplus_is_stable(T):
    y, g = grads_of(T, lambda x: softplus(T, x), [0.0, -0.0, 1.0, -1.0, 15.0, -15.0, -100.0, -800.0, NAN])
    return {"softplus": y, "d softplus": g}


@program
def integer_powers_with_negative_exponent_tensors(T):
    base = T.tensor(np.array([2, 3, 1, -1, -1, 0, 3, -2], np.int64))
    expo = T.tensor(np.array([-1, -1, -5, -1, -2, -1, 41, 63], np.int64))
    small = T.tensor(np.array([3, 3], np.int32)) ** T.tensor(np.array([40, 21], np.int32))  # wraps
    return {"pow": base ** expo, "int32 wraps": small, "2 ** t": 2 ** expo}


# Values (not gradients) whose rounding differs from PyTorch's by less than this: the loss at
# x = 100, t = 1 is log1p(exp(-100)) = 3.7e-44 in PyTorch's form and 0 in ours, and the other
# way round at x = -100, t = 0.
VALUE_ATOL = {"bce_with_logits_at_zero_and_far_out": 1e-40}


@pytest.mark.parametrize("backend", ["interp", "c"])
@pytest.mark.parametrize("name", list(PROGRAMS))
def test_eager_matches_torch(name, backend, torch, monkeypatch):
    monkeypatch.setenv("SYMGRAD_EAGER_BACKEND", backend)
    ours, theirs = PROGRAMS[name](sg), PROGRAMS[name](torch)
    assert ours.keys() == theirs.keys()
    for key in ours:
        rtol = 1e-5 if value(theirs[key]).dtype == np.float32 else 1e-9
        atol = 0.0 if key.startswith("d") else VALUE_ATOL.get(name, 0.0)
        like_torch(ours[key], theirs[key], f"{name}: {key}", rtol=rtol, atol=atol)


def test_integer_base_to_a_negative_number_is_refused_as_in_torch(torch):
    for T in (sg, torch):
        with pytest.raises(RuntimeError, match="Integers to negative integer powers are not allowed"):
            T.tensor([2, 3]) ** -1
        with pytest.raises(RuntimeError, match="Integers to negative integer powers are not allowed"):
            T.tensor(0) ** -2
    with pytest.raises(RuntimeError, match=r"int64 base of shape \(2,\).*x.float\(\) \*\* -1"):
        sg.Variable(shape=(2,), dtype="int64") ** -1
    # what PyTorch allows: a float exponent, zero, a positive one
    assert (sg.tensor([2, 4]) ** -1.0).tolist() == [0.5, 0.25]
    assert (sg.tensor([2, 4]) ** 0).tolist() == [1, 1]


# --- norm and clamp: composites in symgrad/functional.py ------------------------------------------

def test_norm_at_a_zero_vector_has_zero_gradient(torch):
    a = np.array([[0.0, 0.0], [3.0, 4.0]])
    for kw in ({}, {"dim": 1}, {"p": 3}, {"p": 3, "dim": 1}):
        res = []
        for T in (sg, torch):
            x = T.tensor(a, requires_grad=True)
            x.norm(**kw).sum().backward()
            res.append(x.grad)
        like_torch(res[0], res[1], f"norm {kw}")


def test_clamp_at_nan_follows_torch(torch):
    xs = np.array([NAN, 0.0, 1.0, 0.5, 2.0, -1.0])
    lo, hi = np.array([0.0, 0.0, 0.0, NAN, 0.0, 1.0]), np.array([1.0, 1.0, 1.0, 1.0, NAN, 0.0])
    res = {}
    for T in (sg, torch):
        x = T.tensor(xs, requires_grad=True)
        y = x.clamp(0.0, 1.0)
        y.sum().backward()
        x2, lo_, hi_ = (T.tensor(v, requires_grad=True) for v in (xs, lo, hi))
        y2 = T.clamp(x2, lo_, hi_)
        y2.sum().backward()
        res[T] = [y, x.grad, y2, x2.grad, lo_.grad, hi_.grad]
    for k, (a, b) in enumerate(zip(res[sg], res[torch])):
        like_torch(a, b, f"clamp output {k}")


# --- compiled C against the interpreter at the special values -------------------------------------

SPECIALS = np.array([NAN, INF, -INF, 0.0, -0.0, 1.0, -1.0, 0.5, 2.0, -2.0, 4.0, 0.25, 3.0, -0.5, 100.0,
                     -100.0])


def _special_graph(dtype):
    n = SPECIALS.size
    x = sg.Variable(shape=(n,), dtype=dtype, name="x", requires_grad=True)
    y = sg.Variable(shape=(n,), dtype=dtype, name="y", requires_grad=True)
    t = sg.Variable(shape=(n,), dtype=dtype, name="t")
    m = x.reshape(4, 4)
    outs = [x ** 0, x ** 0.0, x ** 2, x ** 0.5, x ** -1, x ** y, 0.0 ** y, 2.0 ** y, sg.relu(x), abs(x),
            sg.sign(x), sg.maximum(x, y), sg.minimum(x, y), sg.maximum(x, 0.5), apply("remainder", x, y),
            apply("softplus", x), sg.sigmoid(x), sg.clamp(x, -1.0, 1.0),
            sg.binary_cross_entropy_with_logits(x, t, reduction="none"),
            sg.binary_cross_entropy_with_logits(x, t), m.max(), m.min(), sg.amax(m, 1), sg.amin(m, 0),
            m.max(1).values, m.min(0).values, 1 / (x + 0.0)]
    return [x, y, t], outs


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_compiled_matches_interpreter_at_special_values(dtype):
    """Forward values and every pullback at NaN, +-inf, +-0 and friends: C as the interpreter."""
    inputs, outs = _special_graph(dtype)
    rng = np.random.default_rng(9)
    xv = SPECIALS.astype(dtype)
    yv = rng.permutation(SPECIALS).astype(dtype)
    tv = rng.uniform(0, 1, SPECIALS.size).astype(dtype)
    arrays = [xv, yv, tv]
    c = sg.compile(inputs, outs, backend="c")
    i = sg.compile(inputs, outs, backend="interp")
    for k, (a, b) in enumerate(zip(c.forward(*arrays), i.forward(*arrays))):
        same_specials(a, b, f"forward output {k}")
    seeds = [rng.uniform(0.5, 1.5, o.shape).astype(dtype) for o in outs]
    got, want = c.backward(*arrays, grad_outputs=seeds), i.backward(*arrays, grad_outputs=seeds)
    for name, a, b in zip("xy", got, want):
        same_specials(a, b, f"gradient wrt {name}")


def test_integer_ops_compiled_match_numpy_and_torch(torch):
    """Integer powers (negative exponents, wrapping) and remainders, compiled as interpreted and
    as PyTorch computes them."""
    a = np.array([2, 3, 1, -1, -1, 0, 3, -2, 7, -7, 7, -7], np.int64)
    b = np.array([-1, -1, -5, -1, -2, -1, 41, 63, 3, 3, -3, -3], np.int64)
    x = sg.Variable(shape=a.shape, dtype="int64", name="a")
    y = sg.Variable(shape=b.shape, dtype="int64", name="b")
    xs = sg.Variable(shape=(2,), dtype="int32", name="s")
    outs = [x ** y, apply("remainder", x, y), xs ** 40, 2 ** y.clamp(min=0)]
    args = [a, b, np.array([3, -3], np.int32)]
    c, i = sg.compile([x, y, xs], outs, backend="c"), sg.compile([x, y, xs], outs, backend="interp")
    got, want = c(*args), i(*args)
    ta, tb = torch.tensor(a), torch.tensor(b)
    theirs = [ta ** tb, torch.remainder(ta, tb), torch.tensor(args[2]) ** 40, 2 ** tb.clamp(min=0)]
    for k, (g, w, t) in enumerate(zip(got, want, theirs)):
        same_bits(g, w, f"output {k}")
        np.testing.assert_array_equal(g, t.numpy(), err_msg=f"output {k} against torch")


# --- the passes change no bit ---------------------------------------------------------------------

def _rewrite_graph(dtype):
    n = SPECIALS.size
    x = sg.Variable(shape=(n,), dtype=dtype, name="x", requires_grad=True)
    y = sg.Variable(shape=(n,), dtype=dtype, name="y", requires_grad=True)
    yes = sg.tensor(True)
    outs = [x + 0.0, 0.0 + x, x + (-0.0), (-0.0) + x, x - 0.0, x - (-0.0), 0.0 - x, x * 1.0, 1.0 * x, x / 1.0,
            1 / (x + 0.0), 1 / (0.0 + x), 1 / (x - 0.0), x ** 1, x ** 2, x ** 0.5, x ** 1.0, x * 0.0,
            sg.where(yes, x, y), sg.where(sg.tensor(False), x, y), sg.where(yes, x, 0.0),
            sg.where(x > 0, x, 0.0) + 0.0,
            (x + 0.0) * 1.0 - 0.0, sg.sqrt(x + 0.0)]
    return [x, y], outs


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_passes_are_exact_in_ieee_arithmetic(dtype, monkeypatch):
    """`x + 0.0` is not `x` (at -0.0), `pow(x, 0.5)` is not `sqrt(x)` (at -0.0 and -inf): every
    rewrite of the fold and algebra passes keeps every bit, as turning them off shows."""
    inputs, outs = _rewrite_graph(dtype)
    arrays = [SPECIALS.astype(dtype), np.random.default_rng(3).permutation(SPECIALS).astype(dtype)]
    with_passes = sg.compile(inputs, outs, backend="c")
    monkeypatch.setenv("SYMGRAD_DISABLE_PASSES", "fold,algebra")
    without = sg.compile(inputs, outs, backend="c")
    interp = sg.compile(inputs, outs, backend="interp")
    for k, (a, b, c) in enumerate(zip(with_passes(*arrays), without(*arrays), interp(*arrays))):
        same_bits(a, b, f"output {k}: passes on and off")
        same_bits(a, c, f"output {k}: C and interpreter")
    # the example, with the numbers written out: 1 / (-0.0 + 0.0) is +inf
    assert with_passes(*arrays)[10][4] == INF
    seeds = [np.full(o.shape, 1.5, dtype) for o in outs]
    g_on = with_passes.backward(*arrays, grad_outputs=seeds)
    g_off = without.backward(*arrays, grad_outputs=seeds)
    g_interp = interp.backward(*arrays, grad_outputs=seeds)
    for name, a, b, c in zip("xy", g_on, g_off, g_interp):
        same_specials(a, b, f"gradient wrt {name}: passes on and off")
        same_specials(a, c, f"gradient wrt {name}: C and interpreter")


def test_matmul_with_a_constant_operand_scales_before_summing(monkeypatch):
    """The pullbacks of mean(A @ B) and sum(C @ D) multiply by a constant matrix, which the
    algebra pass turns into a column sum: c * B is summed (as the product does), not c * sum(B),
    which overflows where the product does not."""
    big = 1.5e308
    A = np.array([[1.0, -0.0, 2.0], [0.0, 3.0, -1.0]])
    B = np.array([[big, big], [INF, -INF], [1.0, NAN]])
    C = np.array([[big, big, 1.0], [-0.0, -0.0, 2.0]])
    D = np.array([[1.0, 2.0], [-1.0, 0.5], [INF, 0.0]])
    vs = [sg.Variable(shape=v.shape, dtype="float64", name=n, requires_grad=True)
          for n, v in zip("ABCD", (A, B, C, D))]
    loss = (vs[0] @ vs[1]).mean() + (vs[2] @ vs[3]).sum() * 0.5
    arrays = [A, B, C, D]
    results = []
    for disabled in ("", "fold,algebra"):
        monkeypatch.setenv("SYMGRAD_DISABLE_PASSES", disabled)
        results.append(sg.compile(vs, loss, backend="c").backward(*arrays))
    expected = sg.compile(vs, loss, backend="interp").backward(*arrays)
    for name, on, off, want in zip("ABCD", *results, expected):
        same_specials(on, want, f"d{name}: C with passes and interpreter")
        same_specials(off, want, f"d{name}: C without passes and interpreter")
    assert np.isfinite(expected[0][0, 0]) and np.isfinite(expected[2][0, 0])


def test_max_min_reductions_keep_the_sign_of_zero_as_the_interpreter():
    x = sg.Variable(shape=(2,), dtype="float64", name="x")
    outs = [sg.amax(x), sg.amin(x)]
    c, i = sg.compile([x], outs, backend="c"), sg.compile([x], outs, backend="interp")
    for v in ([-0.0, 0.0], [0.0, -0.0]):
        for a, b in zip(c(np.array(v)), i(np.array(v))):
            same_bits(a, b, f"{v}")


# --- integer division never kills the process ------------------------------------------------------

_CHILD = textwrap.dedent("""
    import json, warnings
    import numpy as np
    warnings.simplefilter("error")          # the interpreter's numpy path warns of nothing
    import symgrad as sg
    from symgrad.variable import apply
    out = {}
    for dt in ("int32", "int64"):
        lo = int(np.iinfo(dt).min)
        a = np.array([lo, lo, 7, -7, 0, 5, lo, -1, lo, 9], dt)
        b = np.array([-1, 0, 0, 0, 0, -1, 1, -1, 2, -4], dt)
        x = sg.Variable(shape=a.shape, dtype=dt, name="a")
        y = sg.Variable(shape=b.shape, dtype=dt, name="b")
        def lit(v):
            return sg.tensor(np.array(v, dt))                # 0-d: a literal in the graph
        outs = [x // y, apply("remainder", x, y), x // -1, x // 0, apply("remainder", x, lit(-1)),
                apply("remainder", x, lit(0))]
        for backend in ("c", "interp"):
            fn = sg.compile([x, y], outs, backend=backend)
            out[dt + " " + backend] = [o.tolist() for o in fn(a, b)]
        ta, tb = sg.tensor(a), sg.tensor(b)                  # eager: computed at once
        out[dt + " eager"] = [(ta // tb).tolist(), apply("remainder", ta, tb).tolist(), (ta // -1).tolist(),
                              (ta // 0).tolist(), apply("remainder", ta, lit(-1)).tolist(),
                              apply("remainder", ta, lit(0)).tolist()]
        lit = sg.tensor(lo, dtype=dt)
        out[dt + " scalars"] = [(lit // -1).item(), (lit // 0).item()]
    print(json.dumps(out))
""")


def test_integer_division_gives_numpy_results_and_never_a_signal():
    proc = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=120,
                          cwd=REPO, check=False)
    assert proc.returncode == 0, f"child died (status {proc.returncode}): {proc.stderr[-3000:]}"
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    for dt in ("int32", "int64"):
        lo = int(np.iinfo(dt).min)
        a = np.array([lo, lo, 7, -7, 0, 5, lo, -1, lo, 9], dt)
        b = np.array([-1, 0, 0, 0, 0, -1, 1, -1, 2, -4], dt)
        with np.errstate(all="ignore"):
            want = [np.floor_divide(a, b), np.remainder(a, b), np.floor_divide(a, dt_(dt, -1)),
                    np.floor_divide(a, dt_(dt, 0)), np.remainder(a, dt_(dt, -1)), np.remainder(a, dt_(dt, 0))]
        want = [w.tolist() for w in want]
        assert want[0][0] == lo and want[0][1] == 0 and want[1][0] == 0
        for where in ("c", "interp", "eager"):
            assert got[f"{dt} {where}"] == want, f"{dt} {where}"
        assert got[f"{dt} scalars"] == [lo, 0]


def dt_(dtype, v):
    return np.array(v, dtype)
