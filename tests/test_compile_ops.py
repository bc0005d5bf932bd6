"""Every op and every pullback through the C backend, against the numpy interpreter.

To keep gcc's time down, each test compiles one graph per (op family, dtype) whose outputs are
many ops at once; `backward` with one random weight array per output checks the pullbacks of
all of them in a single call (it is the gradient of sum_k sum(out_k * w_k)). Expected values come
from `backend="interp"` (and, for a few, from numpy and torch directly)."""
from __future__ import annotations

import re

import numpy as np
import pytest

import symgrad as sg
from compile_helpers import DTYPES, assert_close, check_compiled, compile_both, sample, var

# --- elementwise ------------------------------------------------------------------------------


def _unary_graph(dtype):
    x = var((3, 4), dtype, "x")
    p = var((3, 4), dtype, "p")
    other = "float64" if dtype == "float32" else "float32"
    outs = [
        -x, sg.exp(x), sg.log(p), sg.sqrt(p), sg.abs(x), sg.sign(x), sg.sin(x), sg.cos(x),
        sg.tanh(x), sg.sigmoid(x), sg.relu(x), x ** 2, x ** 3, p ** 0.5, p ** -1.5, x ** 1, x ** 0,
        2.0 ** x, sg.pow(p, x), sg.clamp(x, -0.5, 0.5), x.clamp(min=0.1), x.clamp(max=-0.2),
        sg.cast(sg.cast(x, other) * 3.0, dtype), x.exp().log(), sg.sigmoid(-3.0 * x),
        sg.tanh(sg.exp(x) * p), x.square(), abs(x),
    ]
    return [x, p], outs


@pytest.mark.parametrize("dtype", DTYPES)
def test_unary_elementwise(dtype):
    inputs, outs = _unary_graph(dtype)
    rng = np.random.default_rng(10)
    arrays = [sample((3, 4), dtype, "nz", rng), sample((3, 4), dtype, "pos", rng)]
    check_compiled(inputs, outs, arrays)


def _binary_graph(dtype):
    a = var((3, 4), dtype, "a")
    b = var((4,), dtype, "b")
    c = var((3, 1), dtype, "c")
    d = var((1, 4), dtype, "d")
    s = var((), dtype, "s")
    e = var((2, 3, 4), dtype, "e")
    ta = var((3, 4), dtype, "ta")
    tb = var((3, 4), dtype, "tb")
    outs = [
        a + b, a - c, c * d, a / b, b / c, c ** d, c ** s, sg.maximum(a, d), sg.minimum(c, b),
        sg.where(a > d, a, c), sg.where(a > 0, a, 0.0), s * a, e + a, e * b, e - c, e / s,
        a + 2.5, 3.0 - a, 2.0 / c, 1.5 * b, b - 0.25, sg.maximum(a, 0.3), sg.minimum(0.2, a),
        sg.add(a, b, alpha=2), sg.sub(e, d, alpha=0.5), sg.mul(s, s), sg.div(s, b),
        # ties: PyTorch splits the cotangent evenly between equal operands
        sg.maximum(ta, tb), sg.minimum(ta, tb),
        # comparisons give bool and no gradient; they are checked by forward only
        a < b, a <= d, a > 0, a >= c, ta == tb, ta != tb, sg.lt(c, 1.0), sg.ge(s, b),
        sg.where(ta == tb, e, a),
    ]
    return [a, b, c, d, s, e, ta, tb], outs


def _binary_arrays(dtype):
    rng = np.random.default_rng(11)
    return [sample((3, 4), dtype, "any", rng), sample((4,), dtype, "nz", rng),
            sample((3, 1), dtype, "pos", rng), sample((1, 4), dtype, "any", rng),
            sample((), dtype, "nz", rng), sample((2, 3, 4), dtype, "any", rng),
            sample((3, 4), dtype, "ties", rng), sample((3, 4), dtype, "ties", rng)]


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_elementwise_broadcasting(dtype):
    inputs, outs = _binary_graph(dtype)
    arrays = _binary_arrays(dtype)
    assert np.any(arrays[6] == arrays[7]), "the tie case needs ties"
    check_compiled(inputs, outs, arrays)


def test_binary_elementwise_without_passes(monkeypatch):
    """The fold and algebra passes only simplify: with them off the results are the same."""
    monkeypatch.setenv("SYMGRAD_DISABLE_PASSES", "fold,algebra")
    inputs, outs = _binary_graph("float64")
    check_compiled(inputs, outs, _binary_arrays("float64"))


def test_mixed_dtypes_and_casts():
    """float32 op float64 promotes (a cast in the graph, whose pullback casts back); ints and
    bools cast to float join float graphs."""
    x = var((3, 4), "float32", "x32")
    y = var((4,), "float64", "y64")
    k = var((3, 4), "int64", "k", requires_grad=False)
    outs = [x + y, x * y, sg.exp(x).double() - y, (x.double() * y).float(), x * k, k + 0.5,
            sg.cast(x > 0, "float32") * x, sg.where(k > 0, x, -x), sg.cast(x, "int64"),
            (x * 10).long(), sg.cast(k, "float64") / y]
    rng = np.random.default_rng(12)
    arrays = [sample((3, 4), "float32", "any", rng), sample((4,), "float64", "nz", rng),
              sample((3, 4), "int64", "int", rng)]
    # float32 values feed float64 results here, so float32's tolerance applies
    cfn = check_compiled([x, y, k], outs, arrays, rtol=1e-5)
    assert [o.dtype for o in cfn.forward(*arrays)] == [np.float64, np.float64, np.float64, np.float32,
                                                       np.float32, np.float32, np.float32,
                                                       np.float32, np.int64, np.int64, np.float64]


def test_integer_and_bool_ops():
    """Integer arithmetic in C follows numpy: floor division, integer powers, int64 sums."""
    a = var((3, 4), "int64", "a", requires_grad=False)
    b = var((4,), "int64", "b", requires_grad=False)
    i = var((3, 4), "int32", "i", requires_grad=False)
    m = var((3, 4), "bool", "m", requires_grad=False)
    outs = [m + m, m * m, sg.maximum(m, m), m ** m, m == m,
            a + b, a - 3, a * b, a // b, a ** 2, i ** 3, -a, abs(a), sg.sign(a), sg.relu(a),
            sg.maximum(a, b), sg.minimum(i, 0), a.sum(), a.sum(1), i.sum(0), i + i, i * 2,
            a.max(1)[0], a.min(), i.max(), sg.argmax(a, 1), sg.argmin(i, 0), a > b, a == 0,
            sg.where(m, a, b), sg.where(m, i, i * 2), sg.cast(m, "float32"), sg.cast(a, "float64") / 2,
            a / b, sg.cast(i, "int64") * a, a.reshape(12)[::3], a.T, sg.cat([a, a * 2], 0)]
    rng = np.random.default_rng(13)
    av = sample((3, 4), "int64", "int", rng)
    bv = np.array([3, -2, 1, -4], dtype=np.int64)
    iv = sample((3, 4), "int32", "int", rng)
    mv = rng.random((3, 4)) > 0.5
    cfn, ifn = compile_both([a, b, i, m], outs)
    got, want = cfn.forward(av, bv, iv, mv), ifn.forward(av, bv, iv, mv)
    for k, (g, w) in enumerate(zip(got, want)):
        assert_close(g, w, what=f"output {k}")
    # and against numpy itself, for the ones where numpy and PyTorch agree
    got = got[5:]
    np.testing.assert_array_equal(got[3], av // bv)
    np.testing.assert_array_equal(got[4], av ** 2)
    np.testing.assert_array_equal(got[12], av.sum())
    assert got[12].dtype == np.int64 and got[14].dtype == np.int64
    np.testing.assert_array_equal(got[20], np.argmax(av, 1))


def test_bool_negation_and_subtraction_are_refused():
    m = var((3,), "bool", "m", requires_grad=False)
    for make in (lambda: -m, lambda: m - m, lambda: sg.sign(m)):
        with pytest.raises(TypeError):
            make()


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_finite_values(dtype):
    """NaN, infinities, signed zeros and huge values go through compiled code as through numpy
    (no fast-math: comparisons, max/min and argmax see NaN as numpy does)."""
    x = var((4, 16), dtype, "x", requires_grad=False)
    y = var((4, 16), dtype, "y", requires_grad=False)
    outs = [sg.exp(x), sg.log(x), sg.sqrt(x), sg.tanh(x), sg.sigmoid(x), sg.sin(x), abs(x), sg.sign(x),
            sg.relu(x), x.max(1)[0], x.min(0)[0], x.max(), x.argmax(1), x.argmin(0),
            sg.maximum(x, y), sg.minimum(x, y), sg.clamp(x, -1, 1), x ** 2.5, y ** x, x / y, x.sum(1),
            sg.logsumexp(x, 1), sg.softmax(x, 1), x < y, x == y, x != y, sg.where(x > y, x, y),
            x * float("inf"), x + float("nan"), x.norm(dim=1), x.mean(0)]
    vals = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, 1e30, -1e30, 3.0, -2.0, 1e-30,
                     100.0, -100.0, 2.0])
    rng = np.random.default_rng(21)
    xv = np.stack([rng.permutation(vals) for _ in range(4)]).astype(dtype)
    yv = np.stack([rng.permutation(vals) for _ in range(4)]).astype(dtype)
    with np.errstate(all="ignore"):
        check_compiled([x, y], outs, [xv, yv])


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_large_enough_for_blas(dtype):
    """Products big enough to go to BLAS, with plain, transposed, sliced, offset, broadcast and
    batched operands (the ones BLAS cannot take fall back to the loops)."""
    A = var((40, 50), dtype, "A")
    B = var((50, 60), dtype, "B")
    C = var((3, 40, 50), dtype, "C")
    D = var((2, 1, 50, 60), dtype, "D")
    v = var((50,), dtype, "v")
    u = var((40,), dtype, "u")
    E = var((1, 50), dtype, "E")
    F = var((50, 1), dtype, "F")
    outs = [A @ B, B.T @ A.T, A[:, ::2] @ B[::2], A[1:, :] @ B, A[:, 1:] @ B[1:, 2:], C @ B, C @ D,
            u @ A, A @ v, v @ B, C @ v, u @ C, E @ B, A @ F, F @ E, sg.broadcast_to(v, (40, 50)) @ B,
            A @ sg.broadcast_to(F, (50, 30)), (A * 2.0) @ B, A[::3] @ B[:, ::4], C[:, ::2] @ B, A.T @ A,
            C.permute(1, 0, 2).reshape(40, 150) @ sg.cat([B, B, B], 0)]
    inputs = [A, B, C, D, v, u, E, F]
    rng = np.random.default_rng(22)
    arrays = [sample(i.shape, dtype, "any", rng) for i in inputs]
    cfn = check_compiled(inputs, outs, arrays)
    got = cfn.forward(*arrays)
    Av, Bv, Cv, Dv = arrays[:4]
    rtol = 1e-5 if dtype == "float32" else 1e-10
    for k, want in enumerate([Av @ Bv, Bv.T @ Av.T, Av[:, ::2] @ Bv[::2], Av[1:] @ Bv,
                              Av[:, 1:] @ Bv[1:, 2:], Cv @ Bv, Cv @ Dv]):
        np.testing.assert_allclose(got[k], want, rtol=rtol, atol=rtol * 50, err_msg=f"output {k}")


@pytest.mark.parametrize("knobs", [{"SYMGRAD_FUSE_NESTS": "0", "SYMGRAD_OPENMP": "0"},
                                   {"SYMGRAD_VECTOR_MATH": "0", "SYMGRAD_BLAS": "0", "SYMGRAD_OPT": "-O0"}],
                         ids=["no-fusion-no-openmp", "no-vector-math-no-blas-O0"])
def test_results_do_not_depend_on_performance_knobs(knobs, monkeypatch):
    import symgrad.build
    for name, value in knobs.items():
        monkeypatch.setenv(name, value)
    for cached in (symgrad.build.blas_flags, symgrad.build.vector_math_flags):
        cached.cache_clear()
    try:
        x = var((30, 40), "float64", "x")
        W = var((40, 50), "float64", "W")
        b = var((50,), "float64", "b")
        h = sg.tanh(x @ W + b)
        outs = [sg.log_softmax(h, 1), h.sum(0), sg.exp(h).max(1)[0], (h * h).mean(), sg.sigmoid(h) @ W.T]
        rng = np.random.default_rng(23)
        check_compiled([x, W, b], outs, [sample(i.shape, "float64", "any", rng) for i in (x, W, b)])
    finally:
        for cached in (symgrad.build.blas_flags, symgrad.build.vector_math_flags):
            cached.cache_clear()


# --- reductions -------------------------------------------------------------------------------


def _reduction_graph(dtype):
    x = var((3, 4, 5), dtype, "x")
    t = var((3, 4), dtype, "t")
    v = var((6,), dtype, "v")
    s = var((), dtype, "s")
    outs = [
        x.sum(), x.sum(1), x.sum(-1, keepdim=True), x.sum(dim=(0, -1), keepdim=True),
        x.mean(), x.mean(-2, keepdim=True), x.mean((1, 2)),
        x.max(), x.min(0)[0], x.max(dim=-1, keepdim=True).values, sg.amax(x, (0, 1)),
        x.max(1).indices, x.min(-1, keepdim=True).indices, sg.argmax(x), sg.argmin(x, 2), t.argmax(0),
        # ties: the cotangent of max/min is shared among the tied elements
        t.max(), t.max(1)[0], t.min(0, keepdim=True)[0],
        sg.norm(x), x.norm(p=1, dim=-1), x.norm(p=float("inf")), x.norm(p=3, dim=(0, 1)),
        x.norm(dim=2, keepdim=True),
        sg.logsumexp(x, 1), sg.logsumexp(x, dim=(0, 2), keepdim=True), sg.logsumexp(v, 0),
        sg.softmax(x, -1), sg.softmax(v, 0), sg.log_softmax(x, 0), sg.log_softmax(t, dim=1),
        # reductions of fused expressions, of views, of 1-D and 0-d values
        (sg.exp(x) * x).sum(1), x.permute(2, 0, 1).sum(0), x[:, 1:, ::2].max(-1)[0], v.mean(),
        s.sum(), s * v.sum(),
    ]
    return [x, t, v, s], outs


@pytest.mark.parametrize("dtype", DTYPES)
def test_reductions(dtype):
    inputs, outs = _reduction_graph(dtype)
    rng = np.random.default_rng(14)
    arrays = [sample((3, 4, 5), dtype, "distinct", rng), sample((3, 4), dtype, "ties", rng),
              sample((6,), dtype, "any", rng), sample((), dtype, "nz", rng)]
    check_compiled(inputs, outs, arrays)


# --- linear algebra ---------------------------------------------------------------------------


def _matmul_graph(dtype):
    v = var((4,), dtype, "v")
    w = var((4,), dtype, "w")
    A = var((3, 4), dtype, "A")
    B = var((4, 5), dtype, "B")
    C = var((2, 3, 4), dtype, "C")
    D = var((2, 4, 5), dtype, "D")
    P = var((2, 1, 3, 4), dtype, "P")
    Q = var((5, 4, 2), dtype, "Q")
    R = var((3, 2), dtype, "R")
    bias = var((5,), dtype, "bias")
    outs = [
        v @ w, A @ v, v @ B, A @ B, C @ D, P @ Q, C @ B, A @ D, v @ D, C @ v,
        A.T @ R, sg.transpose(C, 1, 2) @ C, A @ A.T, B.T @ A.T, sg.matmul(A, B.T.T),
        sg.mm(A, B), sg.bmm(C, D), sg.mv(A, v), sg.dot(v, w),
        sg.tanh(A @ B + bias), (A * 2.0 + 1.0) @ sg.exp(B), A[:, 1:] @ B[1:, ::2], A[1] @ B,
        sg.broadcast_to(v, (3, 4)) @ B, C.permute(2, 0, 1), sg.transpose(C, 0, -1), A.T, sg.t(A),
        C.mT, (A @ B).sum(0), P @ Q[0],
    ]
    return [v, w, A, B, C, D, P, Q, R, bias], outs


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_and_transposes(dtype):
    inputs, outs = _matmul_graph(dtype)
    rng = np.random.default_rng(15)
    arrays = [sample(i.shape, dtype, "any", rng) for i in inputs]
    cfn = check_compiled(inputs, outs, arrays)
    # the products themselves, against numpy
    got = cfn.forward(*arrays)
    v, w, A, B, C, D, P, Q = arrays[:8]
    rtol = 1e-5 if dtype == "float32" else 1e-10
    for k, want in [(0, v @ w), (4, C @ D), (5, P @ Q), (8, v @ D), (9, C @ v)]:
        np.testing.assert_allclose(got[k], want, rtol=rtol, atol=rtol * 10)


# --- shapes -----------------------------------------------------------------------------------


def _shape_graph(dtype):
    x = var((2, 3, 4), dtype, "x")
    y = var((3, 4), dtype, "y")
    u = var((3, 1, 4), dtype, "u")
    b = var((4,), dtype, "b")
    z = var((6,), dtype, "z")
    s = var((), dtype, "s")
    outs = [
        x.reshape(6, 4), x.reshape(4, -1), x.view(2, 12), y.reshape(12), sg.flatten(x), x.flatten(1),
        y.unsqueeze(0), y.unsqueeze(-1), u.squeeze(), u.squeeze(1), u.squeeze(0), y.expand(2, 3, 4),
        b.expand(3, 4), sg.broadcast_to(u, (2, 3, 5, 4)), s.expand(2, 2), u.expand(-1, 3, -1),
        y[1:, 0], y[::2], x[..., None], x[:, 1], x[0], x[1:, ::2, 1:3], x[:, :, -1], z[1:5:2],
        y[None, :, 2:], x[-1, ..., 1], y[:, None, :, None], z[3], s[None],
        sg.cat([y, y * 2], 0), sg.cat([y, x[0], x[1]], dim=1), sg.cat([y, b.unsqueeze(0)], -2),
        sg.cat([z, z[::2], b], 0), sg.stack([y, y + 1], 0), sg.stack([y, x[1], y * y], dim=-1),
        sg.stack([b, b * 2], 1), sg.stack([s, s * 3]),
        x.permute(2, 0, 1), x.transpose(0, 2), y.T, x.permute(2, 0, 1).reshape(4, 6),
        sg.exp(x).reshape(6, 4), (x * 2)[:, 1:], x[:, 1:].reshape(-1), x.reshape(6, 4)[2:, 1],
        sg.squeeze(y.unsqueeze(1).expand(3, 5, 4)[:, 2], 0) * y, x.flatten()[5:17:3],
        # an input as an output, and two structurally equal outputs (deduplicated by CSE)
        y, y.reshape(12) + 0.0, y.reshape(12), sg.tanh(z) * 1.0, sg.tanh(z),
    ]
    checked = {"y[1:, 0]": y[1:, 0], "x[1:, ::2, 1:3]": x[1:, ::2, 1:3],
               "x.permute(2, 0, 1).reshape(4, 6)": x.permute(2, 0, 1).reshape(4, 6),
               "x[:, 1:].reshape(-1)": x[:, 1:].reshape(-1), "y[None, :, 2:]": y[None, :, 2:]}
    outs += list(checked.values())
    return [x, y, u, b, z, s], outs, checked


def _shape_arrays(inputs, dtype):
    rng = np.random.default_rng(16)
    return [sample(i.shape, dtype, "any", rng) for i in inputs]


@pytest.mark.parametrize("dtype", DTYPES)
def test_shape_ops(dtype):
    inputs, outs, checked = _shape_graph(dtype)
    arrays = _shape_arrays(inputs, dtype)
    cfn = check_compiled(inputs, outs, arrays)
    got = cfn.forward(*arrays)
    torch = pytest.importorskip("torch")
    x, y = torch.from_numpy(arrays[0]), torch.from_numpy(arrays[1])
    at = {id(o): k for k, o in enumerate(outs)}
    # layout ops move values without arithmetic: exactly PyTorch's
    for text, out in checked.items():
        np.testing.assert_array_equal(got[at[id(out)]], eval(text, {}, {"x": x, "y": y}).numpy(),
                                      err_msg=text)


def test_shape_ops_without_passes(monkeypatch):
    monkeypatch.setenv("SYMGRAD_DISABLE_PASSES", "fold,algebra")
    inputs, outs, _ = _shape_graph("float32")
    check_compiled(inputs, outs, _shape_arrays(inputs, "float32"))


# --- losses -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_losses(dtype):
    logits = var((4, 5), dtype, "logits")
    labels = var((4,), "int64", "labels", requires_grad=False)
    pred = var((4, 3), dtype, "pred")
    target = var((4, 3), dtype, "target")
    prob = var((4, 3), dtype, "prob")
    nnf = sg.nn.functional
    outs = [sg.mse_loss(pred, target), sg.mse_loss(pred, target, reduction="sum"),
            nnf.mse_loss(pred, target, reduction="none"), sg.cross_entropy(logits, labels),
            sg.cross_entropy(logits, labels, reduction="sum"),
            nnf.cross_entropy(logits, labels, reduction="none"),
            sg.binary_cross_entropy_with_logits(pred, prob),
            sg.binary_cross_entropy_with_logits(pred * 4, prob, reduction="sum"),
            nnf.binary_cross_entropy_with_logits(pred, prob, reduction="none"),
            nnf.softmax(logits, 1), nnf.log_softmax(logits, dim=0), nnf.leaky_relu(pred, 0.1)]
    rng = np.random.default_rng(17)
    arrays = [sample((4, 5), dtype, "any", rng) * 3, np.array([0, 4, 2, 4], dtype=np.int64),
              sample((4, 3), dtype, "any", rng), sample((4, 3), dtype, "any", rng),
              rng.uniform(0, 1, (4, 3)).astype(dtype)]
    check_compiled([logits, labels, pred, target, prob], outs, arrays)


@pytest.mark.parametrize("dtype", DTYPES)
def test_losses_against_torch(dtype):
    """The compiled losses and their gradients are PyTorch's."""
    torch = pytest.importorskip("torch")
    logits = var((6, 4), dtype, "logits")
    labels = var((6,), "int64", "labels", requires_grad=False)
    prob = var((6, 4), dtype, "prob", requires_grad=False)
    loss = sg.cross_entropy(logits, labels) + sg.binary_cross_entropy_with_logits(logits, prob) + \
        sg.mse_loss(sg.softmax(logits, 1), prob)
    fn = sg.compile([logits, labels, prob], loss)
    rng = np.random.default_rng(18)
    lv = sample((6, 4), dtype, "any", rng) * 2
    yv = rng.integers(0, 4, 6).astype(np.int64)
    pv = rng.uniform(0, 1, (6, 4)).astype(dtype)
    value, (g,) = fn.value_and_grad(lv, yv, pv)
    tl = torch.tensor(lv, requires_grad=True)
    tp = torch.tensor(pv)
    F = torch.nn.functional
    tloss = F.cross_entropy(tl, torch.tensor(yv)) + F.binary_cross_entropy_with_logits(tl, tp) + \
        F.mse_loss(F.softmax(tl, 1), tp)
    tloss.backward()
    rtol = 1e-5 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(value, tloss.item(), rtol=rtol)
    np.testing.assert_allclose(g, tl.grad.numpy(), rtol=rtol * 10, atol=rtol)


# --- whole models through the implicit (scalar) seed --------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_mlp_scalar_loss_implicit_seed(dtype):
    """backward and value_and_grad with no grad_outputs, captured constants, and `wrt` in a
    chosen order."""
    rng = np.random.default_rng(19)
    x = var((8, 5), dtype, "x", requires_grad=False)
    labels = var((8,), "int64", "labels", requires_grad=False)
    W1 = var((5, 6), dtype, "W1")
    b1 = var((6,), dtype, "b1")
    W2 = var((6, 3), dtype, "W2")
    b2 = var((3,), dtype, "b2")
    scale = sg.tensor(rng.uniform(0.5, 1.5, (6,)).astype(dtype))     # captured as a constant
    h = sg.relu(x @ W1 + b1) * scale
    loss = sg.cross_entropy(h @ W2 + b2, labels) + 0.01 * (W1 ** 2).sum() + sg.mean(sg.tanh(h)) * 0.1
    arrays = [sample((8, 5), dtype, "any", rng), rng.integers(0, 3, 8).astype(np.int64),
              sample((5, 6), dtype, "any", rng), sample((6,), dtype, "any", rng),
              sample((6, 3), dtype, "any", rng), sample((3,), dtype, "any", rng)]
    inputs = [x, labels, W1, b1, W2, b2]
    cfn = check_compiled(inputs, loss, arrays, grad_outputs=None)
    assert len(cfn.forward.consts) == 1
    # wrt chosen explicitly, in another order
    cfn, ifn = compile_both(inputs, loss, wrt=[b2, W1])
    gc, gi = cfn.backward(*arrays), ifn.backward(*arrays)
    assert [g.shape for g in gc] == [(3,), (5, 6)]
    for a, b in zip(gc, gi):
        assert_close(a, b)
    # a scalar output also takes an explicit grad_outputs (scaling the gradient)
    g2 = cfn.backward(*arrays, grad_outputs=np.asarray(2.0, dtype))
    for a, b in zip(g2, gi):
        assert_close(a, 2 * b)


def test_large_arrays_take_the_parallel_paths():
    """Loops over more elements than the parallel threshold carry OpenMP pragmas; results are
    unchanged. (Sized from the threshold, so the test keeps its point if that moves.)"""
    from symgrad.codegen.render import PARALLEL_MIN
    rows = PARALLEL_MIN // 260 + 40
    x = var((rows, 260), "float64", "x")
    W = var((260, 30), "float64", "W")
    out = [x.sum(), x.sum(1), sg.exp(x * 0.5), sg.softmax(x, 1), x @ W, (x * x).max(0)[0],
           # sums over leading dims (added up in memory order), and a mean
           x.sum(0), (x * 2.0).sum(0, keepdim=True), x.reshape(rows // 2, 2, 260).sum((0, 1)), x.mean(0)]
    rng = np.random.default_rng(20)
    arrays = [sample((rows, 260), "float64", "pos", rng), sample((260, 30), "float64", "any", rng)]
    cfn = check_compiled([x, W], out, arrays, rtol=1e-9)
    src = cfn.forward.source
    body = src[src.index("int symgrad_forward("):]
    assert "#pragma omp parallel for" in body, body


def test_float_exp_is_within_an_ulp_and_a_masked_softmax_stays_in_the_vector_path():
    """float32 exp is symgrad's own (templates/c/helpers.h.j2 sg_expf: no libm call, so no lane
    of a vector is sent to scalar libm when it underflows, as softmax over masked scores does):
    against exp in float64, within 1.5 units in the last place over [-110, 90] (denormal
    results within one unit of the smallest denormal), NaN, infinities and zeros as numpy's.
    A softmax over scores masked to -1e9 calls it, and gives numpy's numbers."""
    x = sg.Variable(shape=(200003,), name="x")
    fn = sg.compile([x], sg.exp(x))
    assert re.search(r"= sg_expf\(v", fn.forward.source) and not re.search(r"= expf\(", fn.forward.source)
    xv = np.linspace(-110, 90, 200003).astype(np.float32)
    xv[:8] = [np.nan, np.inf, -np.inf, 0.0, -0.0, 88.72283, 88.7229, -103.97]
    got = fn(xv)
    want = np.exp(xv.astype(np.float64))
    with np.errstate(over="ignore"):
        want32 = want.astype(np.float32)
    finite = np.isfinite(want32) & (want32 != 0)
    ulp = np.spacing(np.abs(want32[finite])).astype(np.float64)
    assert np.max(np.abs(got[finite] - want[finite]) / ulp) <= 1.5
    np.testing.assert_array_equal(got[~finite], want32[~finite])       # NaN, inf, 0 alike
    s = sg.Variable(shape=(64, 256), name="s")
    keep = np.tril(np.ones((64, 256), bool))
    sm = sg.compile([s], sg.softmax(sg.where(sg.tensor(keep), s, -1e9), -1))
    sv = np.random.default_rng(4).normal(size=(64, 256)).astype(np.float32)
    masked = np.where(keep, sv.astype(np.float64), -1e9)
    e = np.exp(masked - masked.max(1, keepdims=True))
    np.testing.assert_allclose(sm(sv), e / e.sum(1, keepdims=True), rtol=2e-6, atol=1e-12)
