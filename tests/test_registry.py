"""Every facet of every registered op (symgrad/ops), walked from the registry itself, so that a
missing or wrong facet fails here rather than in a user's compile:

- the entry is well formed (kind, C expression for elementwise ops, libm names, public function);
- `infer` runs on sample inputs and `impl` gives what it says (shape and dtype);
- the pullback gives cotangents of the inputs' shapes and dtypes, equal to float64 finite
  differences of `impl`;
- the C snippet renders for every C type and calls only the libm functions the entry lists;
- compiled C equals the interpreter, for every op and every dtype its rule accepts, forward
  and backward, in two compiled functions (one compile each).

Then the facts derived from the registry (reserved words, vector-math declarations, public
functions) and the ops added with this layout (softsign)."""
from __future__ import annotations

import re

import numpy as np
import pytest

import symgrad as sg
from conftest import numeric_grad
from symgrad.ops import KINDS, LIBM, OPS, Op, c_expression, libm_calls, register, vector_math
from symgrad.ops.c_code import CExpressionError, libm_spelling
from symgrad.variable import Variable, apply

DTYPES = [np.dtype(d) for d in ("float32", "float64", "int32", "int64", "bool")]
CTYPES = ["float", "double", "int32_t", "int64_t", "uint8_t"]
RTOL = {np.dtype("float32"): 2e-5, np.dtype("float64"): 1e-10}

# --- samples ------------------------------------------------------------------------------------
# An elementwise op gets operands of shapes (3, 4) and (4,) (broadcast, so that pullbacks sum
# back) by its arity. Others need their shapes and attributes here: an op missing from both
# fails test_every_op_has_a_sample. ("bool", shape) is a random condition, ("index", shape)
# integers in [0, 5).

ELEMENTWISE_SHAPES = {1: [(3, 4)], 2: [(3, 4), (4,)], 3: [(3, 4), (3, 4), (4,)]}
SPECIAL = {
    "where": ([("bool", (3, 4)), (3, 4), (4,)], {}),
    "check_range": ([("index", (3, 4))], {"lo": 0, "hi": 5, "what": "an index"}),
    "cast": ([(3, 4)], {"dtype": "float32"}),
    "sum": ([(3, 4)], {"axes": (1,), "keepdim": False}),
    "max": ([(2, 3, 4)], {"axes": (0, 2), "keepdim": True}),
    "min": ([(3, 4)], {"axes": (0,), "keepdim": False}),
    "argmax": ([(3, 4)], {"axis": 1, "keepdim": False}),
    "argmin": ([(3, 4)], {"axis": 0, "keepdim": True}),
    "matmul": ([(2, 3, 4), (4, 5)], {}),
    "reshape": ([(3, 4)], {"shape": (2, 6)}),
    "permute": ([(2, 3, 4)], {"perm": (2, 0, 1)}),
    "broadcast_to": ([(3, 1)], {"shape": (2, 3, 4)}),
    "slice": ([(5, 6)], {"starts": (1, 0), "stops": (4, 6), "steps": (2, 3)}),
    "pad_slice": ([(2, 2)], {"shape": (5, 6), "starts": (1, 0), "stops": (4, 6), "steps": (2, 3)}),
    "concat": ([(2, 3), (2, 2)], {"axis": 1}),
    "iota": ([], {"shape": (3, 4), "axis": 1, "dtype": "int64"}),
    "size_of": ([], {"size": 7, "dtype": "float32"}),
    "take": ([(3, 5, 2), ("index", (2, 4))], {"axis": 1}),
    "scatter_add": ([(3, 2, 4, 2), ("index", (2, 4))], {"axis": 1, "size": 5}),
}


class _PassThrough:
    """A custom function's call record for the `custom_function` sample: forward's value passed
    through, and a backward that gives its argument no gradient, which is what the op's value
    rule (its first input) says of the other inputs, so finite differences can check it."""

    def pullback(self, g, node, needs):
        import symgrad.ops.builders as G
        return [g if needs[0] else None] + [G.zeros(x) if need else None
                                            for x, need in zip(node.inputs[1:], needs[1:])]

    def __repr__(self):
        return "PassThrough"


SPECIAL["custom_function"] = ([(3, 4), (2,)], {"fn": _PassThrough()})
# Ops whose float operands must be positive (logarithms and roots, and pow's base).
POSITIVE = {"log", "sqrt", "pow"}


def _array(spec, dtype, rng, positive):
    if isinstance(spec, tuple) and spec and isinstance(spec[0], str):
        kind, shape = spec
        return rng.random(shape) > 0.5 if kind == "bool" else rng.integers(0, 5, shape).astype(np.int64)
    if dtype.kind == "f":
        a = rng.uniform(0.5, 2.0, spec)
        a = a if positive else a * rng.choice([-1.0, 1.0], spec)
        return a.astype(dtype)
    if dtype.kind == "b":
        return rng.random(spec) > 0.5
    return rng.integers(-3, 4, spec).astype(dtype)


def sample(name: str, dtype=np.dtype("float64"), seed=0):
    """(arrays, attrs) for one application of op `name` with operands of `dtype`."""
    op = OPS[name]
    if name in SPECIAL:
        shapes, attrs = SPECIAL[name]
    elif op.kind == "elementwise":
        shapes, attrs = ELEMENTWISE_SHAPES[op.arity], {}
    else:
        raise LookupError(f"no sample for op {name!r}: add its shapes and attributes to SPECIAL in "
                          f"tests/test_registry.py")
    rng = np.random.default_rng(seed + sum(map(ord, name)))
    return [_array(s, np.dtype(dtype), rng, name in POSITIVE) for s in shapes], dict(attrs)


def accepts(name, arrays, attrs) -> bool:
    """Whether the op's dtype rule takes these operands (TypeError: not for this dtype)."""
    try:
        OPS[name].infer(*(Variable(a) for a in arrays), **attrs)
    except TypeError:
        return False
    return True


# --- the entries --------------------------------------------------------------------------------

def test_every_entry_is_well_formed():
    for name, op in OPS.items():
        assert op.name == name and op.kind in KINDS and op.grad_name, name
        assert set(op.libm) <= set(LIBM), name
        if op.kind == "elementwise":
            assert op.c and op.arity in (1, 2, 3), f"{name}: an elementwise op needs a C expression and arity"
        else:
            assert op.c is None and not op.libm, f"{name}: only elementwise ops have a C expression"
        if op.public:
            fn = getattr(sg.functional, name)
            assert fn.__name__ == name and fn.__doc__, name


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_has_a_sample(name):
    arrays, attrs = sample(name)
    assert set(attrs) == set(OPS[name].attrs), f"{name}: the sample's attributes are not the op's"


@pytest.mark.parametrize("name", sorted(OPS))
def test_infer_and_impl_agree(name):
    op = OPS[name]
    for dtype in DTYPES:
        arrays, attrs = sample(name, dtype)
        if not accepts(name, arrays, attrs):
            continue
        shape, out_dtype = op.infer(*(Variable(a) for a in arrays), **attrs)
        with np.errstate(all="ignore"):
            out = np.asarray(op.impl(*arrays, **attrs))
        assert out.shape == tuple(shape), f"{name} {dtype}: impl gives {out.shape}, infer {shape}"
        assert out.dtype == out_dtype, f"{name} {dtype}: impl gives {out.dtype}, infer {out_dtype}"


def _pullback(name, arrays, attrs, seed=1):
    """The op applied to Variables of `arrays`, a random cotangent, and its pullback."""
    xs = [Variable(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    node = apply(name, *xs, **attrs)
    g = Variable(np.random.default_rng(seed).uniform(-1, 1, node.shape).astype(node.dtype))
    needs = tuple(x.dtype.kind == "f" for x in xs)
    return xs, node, g, OPS[name].vjp(g, node, needs)


@pytest.mark.parametrize("name", sorted(n for n, op in OPS.items() if op.vjp is not None))
def test_pullback_matches_finite_differences(name):
    arrays, attrs = sample(name, np.float64)
    xs, node, g, pulled = _pullback(name, arrays, attrs)
    assert len(pulled) == len(xs), f"{name}: {len(pulled)} cotangents for {len(xs)} inputs"
    impl = OPS[name].impl
    # A float32 result is rounded: differences over a wider step stay clear of its rounding.
    eps, tol = (1e-6, 1e-6) if node.dtype == np.float64 else (1e-3, 1e-3)
    for k, (x, ct) in enumerate(zip(xs, pulled)):
        if x.dtype.kind != "f":
            assert ct is None, f"{name}: a cotangent for the non-float input {k}"
            continue
        assert ct is not None, f"{name}: no cotangent for float input {k}"
        assert ct.shape == x.shape and ct.dtype == x.dtype, \
            f"{name}: cotangent {k} is {ct.shape} {ct.dtype}, the input {x.shape} {x.dtype}"
        weights = g.value().astype(np.float64)
        numeric = numeric_grad(lambda *a: float(np.sum(np.asarray(impl(*a, **attrs), np.float64) * weights)),
                               arrays, k, eps)
        np.testing.assert_allclose(ct.value(), numeric, rtol=tol, atol=tol,
                                   err_msg=f"{name}: cotangent of input {k} against finite differences")


# --- the C facet --------------------------------------------------------------------------------

_CALL = re.compile(r"\b([A-Za-z_]\w*)\s*\(")


def _renderings(name):
    op = OPS[name]
    _, attrs = sample(name)
    for ct in CTYPES:
        for args in (["x0", "x1", "x2"], ["x0", "0.5", "x2"]):
            yield ct, c_expression(name, args[:op.arity], ct, ct, attrs)


@pytest.mark.parametrize("name", sorted(n for n, op in OPS.items() if op.c))
def test_c_expression_calls_only_the_libm_it_lists(name):
    op = OPS[name]
    helpers = {"SG_CHECK_FAILED", "sg_ipow"} | {f"sg_floordiv_{ct}" for ct in CTYPES}
    called = set()
    for ct, text in _renderings(name):
        names = set(_CALL.findall(text)) - helpers
        spelt = libm_spelling(op.libm, ct)            # (expf, or symgrad's own: sg_expf)
        listed = set(spelt.values())
        assert names <= listed, f"{name} ({ct}): {text} calls {sorted(names - listed)}, not in libm={op.libm}"
        called |= {n for n, c in spelt.items() if c in names}
    unused = sorted(set(op.libm) - called)
    assert not unused, f"{name}: lists libm functions {unused} it never calls"


def test_a_snippet_that_calls_an_unlisted_libm_function_fails_to_render(monkeypatch):
    monkeypatch.setitem(OPS, "sneaky", Op("sneaky", "elementwise", None, None, c="{{ libm.exp }}({{ a }})",
                                          arity=1))
    with pytest.raises(CExpressionError, match="libm"):
        c_expression("sneaky", ["x"], "float", "float")


def test_registering_an_incomplete_entry_fails_at_once():
    with pytest.raises(ValueError, match="C expression"):
        register(Op("no_c", "elementwise", lambda x: (x.shape, x.dtype), lambda x: x, arity=1))
    with pytest.raises(ValueError, match="LIBM"):
        register(Op("no_libm", "elementwise", lambda x: (x.shape, x.dtype), lambda x: x, arity=1,
                    c="{{ libm.lgamma }}({{ a }})", libm=("lgamma",)))
    assert "no_c" not in OPS and "no_libm" not in OPS


# --- compiled C against the interpreter, every op at once ----------------------------------------

def _every_op_graph(requires_grad=False):
    """Symbolic inputs with their arrays, and one output per op and accepted dtype."""
    inputs, arrays, outputs = [], [], []
    for name in sorted(OPS):
        for dtype in DTYPES if OPS[name].kind != "source" else DTYPES[:1]:
            values, attrs = sample(name, dtype)
            if not accepts(name, values, attrs):
                continue
            xs = [Variable(shape=a.shape, dtype=a.dtype, name=f"{name}_{dtype}_{k}",
                           requires_grad=requires_grad and a.dtype.kind == "f")
                  for k, a in enumerate(values)]
            inputs += xs
            arrays += values
            outputs.append((f"{name} {dtype}", apply(name, *xs, **attrs)))
    return inputs, arrays, outputs


def _same(got, want, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype, f"{what}: {got.shape} {got.dtype}"
    if want.dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=RTOL[want.dtype], atol=RTOL[want.dtype] * 1e-3,
                                   equal_nan=True, err_msg=what)
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)


def test_compiled_c_equals_the_interpreter_for_every_op():
    inputs, arrays, outputs = _every_op_graph()
    values = [v for _, v in outputs]
    compiled = sg.compile(inputs, values, backend="c")(*arrays)
    expected = sg.compile(inputs, values, backend="interp")(*arrays)
    for (what, _), got, want in zip(outputs, compiled, expected):
        _same(got, want, what)


def test_compiled_pullbacks_equal_the_interpreter_for_every_op():
    inputs, arrays, outputs = _every_op_graph(requires_grad=True)
    rng = np.random.default_rng(3)
    terms = [(out * sg.tensor(rng.uniform(0.5, 1.5, out.shape).astype(out.dtype))).sum().double()
             for _, out in outputs if out.requires_grad]
    loss = sg.stack(terms).sum()
    compiled = sg.compile(inputs, loss, backend="c").backward(*arrays)
    expected = sg.compile(inputs, loss, backend="interp").backward(*arrays)
    wrt = [x for x in inputs if x.requires_grad]
    assert len(compiled) == len(expected) == len(wrt)
    for x, got, want in zip(wrt, compiled, expected):
        _same(got, want, f"d{x.name}")


# --- what is derived from the registry ------------------------------------------------------------

def test_reserved_words_take_the_libm_names_from_the_registry():
    from symgrad.codegen import names
    assert set(libm_calls()) <= names._C_WORDS
    assert {"exp", "expf", "log1p", "log1pf", "fmodf"} <= set(libm_calls())
    try:
        from symgrad import cuda
    except ImportError:
        return
    assert set(libm_calls()) <= cuda.RESERVED_WORDS


def test_a_variable_named_after_a_libm_function_is_renamed_in_c():
    x = sg.Variable(shape=(3,), name="expf")
    fn = sg.compile([x], sg.exp(x) + 1.0)
    assert "const float *restrict v_expf" in fn.forward.source
    np.testing.assert_allclose(fn(np.arange(3, dtype=np.float32)), np.exp(np.arange(3)) + 1, rtol=1e-6)


def test_vector_math_declarations_come_from_the_registry():
    import symgrad.build as build
    assert not hasattr(build, "VECTOR_MATH")
    declared = dict(vector_math())
    assert declared == {"exp": 1, "log": 1, "sin": 1, "cos": 1, "tanh": 1, "pow": 2, "erf": 1, "log1p": 1}
    x = sg.Variable(shape=(3,), name="x")
    source = sg.compile([x], sg.exp(x)).forward.source
    for fn, arity in declared.items():
        assert f"double {fn}({', '.join(['double'] * arity)}) SG_SIMD;" in source
        assert f"float {fn}f({', '.join(['float'] * arity)}) SG_SIMD;" in source
    assert "sqrt(double) SG_SIMD" not in source


def test_public_elementwise_functions_are_made_from_the_registry():
    for name, op in OPS.items():
        if op.public:
            assert getattr(sg.functional, name) is sg.functional.ELEMENTWISE[name]
            # (behind symgrad/signatures.py's adapter for PyTorch's keyword names, if any)
            public = getattr(sg, name, None)
            if name == "div" and getattr(public, "__wrapped__", None) is sg.comparisons.div:
                continue    # sg.div is comparisons.div (rounding_mode=), which calls this one
            assert getattr(public, "__wrapped__", public) is sg.functional.ELEMENTWISE[name], \
                f"sg.{name}: export it in symgrad/__init__.py"
    assert sg.exp(sg.tensor([1, 2])).dtype == np.float32            # public="float"
    assert sg.maximum(sg.tensor([1, 2]), 1.5).dtype == np.float32   # promotion


def test_every_elementwise_op_has_a_promotion_free_builder():
    import symgrad.ops.builders as G
    for name, op in OPS.items():
        if op.kind == "elementwise":
            assert callable(getattr(G, name)), name
    x32, x64 = Variable(np.ones(3, np.float32)), Variable(np.ones(3))
    with pytest.raises(TypeError, match="share a dtype"):
        G.mul(x32, x64)                          # no promotion
    half = G.mul(x32, 0.5)                       # a number takes the Variable's dtype
    assert half.dtype == np.float32 and half.grad_fn is None and half._fn is None
    picked = G.where(Variable(np.array([True, False, True])), x32, 0)    # 0 takes the branch's dtype
    assert picked.dtype == np.float32 and picked.value().tolist() == [1, 0, 1]


# --- max/min of tied zeros (issue 9) ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_max_and_min_of_tied_zeros_do_not_depend_on_order(dtype):
    x = sg.Variable(shape=(2, 4), dtype=dtype, name="x")
    outs = [sg.amax(x), sg.amin(x), sg.amax(x, dim=1), sg.amin(x, dim=0, keepdim=True)]
    compiled, interp = sg.compile([x], outs, backend="c"), sg.compile([x], outs, backend="interp")
    for row in ([-0.0, 0.0, -0.0, 0.0], [0.0, -0.0, 0.0, -0.0]):
        a = np.array([row, row[::-1]], dtype)
        for fn in (compiled, interp):
            mx, mn, mx1, mn0 = fn(a)
            assert not np.signbit(mx) and np.all(~np.signbit(mx1)), f"max of {a} is +0"
            assert np.signbit(mn) and np.all(np.signbit(mn0)), f"min of {a} is -0"


# --- softsign: an op added with nothing but its registry entry and a line of export ---------------

SOFTSIGN_VALUES = np.array([-1e30, -3.0, -1.0, -0.25, -0.0, 0.0, 0.5, 2.0, 7.0, 1e30, np.inf, -np.inf,
                            np.nan])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softsign_matches_numpy(dtype):
    a = SOFTSIGN_VALUES.astype(dtype)
    with np.errstate(invalid="ignore"):
        want = a / (1 + np.abs(a))
    got = sg.softsign(sg.tensor(a)).numpy()
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True)
    assert np.signbit(got[4]) and not np.signbit(got[5])          # -0.0 stays -0.0
    assert sg.softsign(sg.tensor([1, -3])).dtype == np.float32    # integers become floats


def test_softsign_gradient_matches_finite_differences():
    x = np.random.default_rng(5).uniform(-3, 3, (4, 5))
    assert sg.gradcheck(sg.softsign, [x])
    assert sg.gradcheck(lambda v: sg.softsign(sg.softsign(v) * 3.0), [x])      # and through itself


def test_softsign_matches_torch(torch):
    a = np.random.default_rng(6).uniform(-4, 4, (3, 7))
    x, t = sg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    y, u = sg.softsign(x), torch.nn.functional.softsign(t)
    np.testing.assert_allclose(y.detach().numpy(), u.detach().numpy(), rtol=1e-12)
    (y * y).sum().backward()
    (u * u).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-12)
    assert type(y.grad_fn).__name__ == "SoftsignBackward0"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softsign_compiled_c_equals_the_interpreter(dtype):
    x = sg.Variable(shape=SOFTSIGN_VALUES.shape, dtype=dtype, name="x", requires_grad=True)
    y = sg.softsign(x)
    loss = (y * sg.softsign(x * 2.0)).sum()
    a = SOFTSIGN_VALUES.astype(dtype)
    c, interp = sg.compile([x], [y, loss], backend="c"), sg.compile([x], [y, loss], backend="interp")
    for got, want in zip(c(a), interp(a)):
        _same(got, want, "softsign forward")
    assert "fabs" in c.forward.source
    c, interp = sg.compile([x], loss, backend="c"), sg.compile([x], loss, backend="interp")
    _same(c.backward(a)[0], interp.backward(a)[0], "softsign backward")
