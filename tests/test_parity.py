"""Programs written once against a module `T`, run with `T = symgrad` and `T = torch` on the
same input numbers, giving the same outputs and leaf gradients.

From micrograd-style scalar expressions to a small MLP trained by gradient descent, through
broadcasting, reductions, softmax, accumulation over several backward calls, retain_grad,
detach, `.data` updates and Python control flow on values."""
from __future__ import annotations

import numpy as np
import pytest

import symgrad as sg
from conftest import value

# These programs run with backward() on compiled C, the default backend, as users run them.

PROGRAMS = {}


def program(fn):
    PROGRAMS[fn.__name__] = fn
    return fn


R = np.random.default_rng(2024)


def reseed(name: str):
    """Programs draw their inputs from R: each run of one program draws the same numbers."""
    global R
    R = np.random.default_rng(sum(map(ord, name)))


def arr(*shape, low=-1.0, high=1.0, dtype=np.float32):
    return R.uniform(low, high, shape).astype(dtype)


def leaf(T, a):
    return T.tensor(a, requires_grad=True)


# --- micrograd ---------------------------------------------------------------------------------


@program
def micrograd_readme(T):
    # micrograd's README example (with c += ... written as rebinding, as its tests do)
    a = leaf(T, np.array(-4.0))
    b = leaf(T, np.array(2.0))
    c = a + b
    d = a * b + b ** 3
    c = c + c + 1
    c = c + 1 + c + (-a)
    d = d + d * 2 + (b + a).relu()
    d = d + 3 * d + (b - a).relu()
    e = c - d
    f = e ** 2
    g = f / 2.0
    g = g + 10.0 / f
    g.backward()
    # the numbers micrograd's README prints
    assert f"{g.item():.4f}" == "24.7041"
    assert f"{a.grad.item():.4f}" == "138.8338"
    assert f"{b.grad.item():.4f}" == "645.5773"
    return {"g": g, "a.grad": a.grad, "b.grad": b.grad}


@program
def micrograd_sanity_check(T):
    x = leaf(T, np.array(-4.0))
    z = 2 * x + 2 + x
    q = z.relu() + z * x
    h = (z * z).relu()
    y = h + q + q * x
    y.backward()
    return {"y": y, "x.grad": x.grad}


@program
def micrograd_neuron(T):
    # one tanh neuron, the micrograd lecture's: o = tanh(x1 w1 + x2 w2 + b)
    x1, x2 = leaf(T, np.array(2.0)), leaf(T, np.array(0.0))
    w1, w2 = leaf(T, np.array(-3.0)), leaf(T, np.array(1.0))
    b = leaf(T, np.array(6.8813735870195432))
    n = x1 * w1 + x2 * w2 + b
    o = T.tanh(n)
    o.backward()
    assert abs(o.item() - 0.7071) < 1e-4
    assert abs(w1.grad.item() - 1.0) < 1e-4 and abs(x1.grad.item() + 1.5) < 1e-4
    return {"o": o, "x1": x1.grad, "x2": x2.grad, "w1": w1.grad, "w2": w2.grad, "b": b.grad}


@program
def scalar_transcendentals(T):
    x = leaf(T, np.array(0.7, np.float32))
    y = leaf(T, np.array(-1.3, np.float32))
    z = T.exp(x) * T.sin(y) + T.log(x * x + 1) / T.sigmoid(y) - T.sqrt(T.abs(y)) + x ** 0.5 * T.cos(x)
    z = z * T.tanh(x - y) + 1 / (x - y)
    z.backward()
    return {"z": z, "x.grad": x.grad, "y.grad": y.grad}


# --- arrays ------------------------------------------------------------------------------------

A34, B4, C31, D234 = arr(3, 4), arr(4), arr(3, 1), arr(2, 3, 4)


@program
def broadcasting(T):
    a, b, c, d = leaf(T, A34), leaf(T, B4), leaf(T, C31), leaf(T, D234)
    y = (a + b) * c - d / (1.5 + b * b)
    y = y * 2 + c.T.unsqueeze(-1).expand(2, 3, 4)   # (3,1) -> (1,3) -> (1,3,1) -> (2,3,4)
    loss = (y * y).sum()
    loss.backward()
    return {"y": y, "loss": loss, "a": a.grad, "b": b.grad, "c": c.grad, "d": d.grad}


@program
def reductions(T):
    x = leaf(T, D234)
    s = x.sum(dim=1, keepdim=True) * x.mean(dim=(0, 2), keepdim=True)
    m = x.max(dim=-1).values + x.min(dim=0)[0].sum(-1)
    n = x.norm(dim=2) + T.logsumexp(x, dim=2)
    loss = s.sum() + m.mean() + n.sum() + x.max() - x.min() + x.norm()
    loss.backward()
    return {"s": s, "m": m, "n": n, "loss": loss, "x.grad": x.grad,
            "argmax": x.max(dim=-1).indices, "argmin": x.min(dim=0).indices}


@program
def softmax_family(T):
    x = leaf(T, A34)
    w = T.tensor(arr(3, 4))
    p = T.softmax(x, dim=1)
    lp = T.log_softmax(x, dim=0)
    loss = (p * w).sum() + (lp * w).sum() + (p.log() - T.log_softmax(x, dim=1)).abs().sum()
    loss.backward()
    return {"p": p, "lp": lp, "loss": loss, "x.grad": x.grad}


@program
def mlp_cross_entropy(T):
    x = T.tensor(arr(6, 4))
    labels = T.tensor(np.array([0, 2, 1, 1, 0, 2]))
    W1, b1 = leaf(T, arr(4, 8) * 0.5), leaf(T, arr(8) * 0.1)
    W2, b2 = leaf(T, arr(8, 3) * 0.5), leaf(T, arr(3) * 0.1)
    h = T.relu(x @ W1 + b1)
    logits = h @ W2 + b2
    loss = T.nn.functional.cross_entropy(logits, labels)
    loss.backward()
    return {"logits": logits, "loss": loss, "W1": W1.grad, "b1": b1.grad, "W2": W2.grad, "b2": b2.grad}


@program
def gradient_descent_loop(T):
    x = T.tensor(arr(8, 3))
    y = T.tensor(np.array([0, 1, 1, 0, 1, 0, 0, 1]))
    w = leaf(T, arr(3, 2))
    b = leaf(T, np.zeros(2, np.float32))
    lr = 0.5
    losses = []
    for step in range(5):
        loss = T.nn.functional.cross_entropy(x @ w + b, y)
        loss.backward()
        losses.append(loss.item())
        with T.no_grad():
            w -= lr * w.grad
            b -= lr * b.grad
            w.grad.zero_()
            b.grad.zero_()
    assert losses[-1] < losses[0]
    return {"losses": np.array(losses, np.float32), "w": w, "b": b, "w.grad": w.grad}


@program
def mlp_training_tanh_mse(T):
    x = T.tensor(arr(5, 2))
    target = T.tensor(arr(5, 1))
    W1, W2 = leaf(T, arr(2, 4)), leaf(T, arr(4, 1))
    losses = []
    for _ in range(4):
        pred = T.tanh(x @ W1) @ W2
        loss = T.nn.functional.mse_loss(pred, target)
        losses.append(loss.item())
        loss.backward()
        with T.no_grad():
            for p in (W1, W2):
                p -= 0.1 * p.grad
                p.grad.zero_()
    return {"losses": np.array(losses, np.float32), "W1": W1, "W2": W2}


@program
def data_updates(T):
    # the pre-0.4 idiom: update .data, zero .grad.data
    w = leaf(T, arr(3))
    x = T.tensor(arr(3))
    for _ in range(3):
        loss = ((w * x).sum() - 1.0) ** 2
        loss.backward()
        w.data = w.data - 0.1 * w.grad.data
        w.grad.data.zero_()
    w.data.sub_(0.01 * x)          # .data shares w's storage
    return {"w": w, "loss": loss, "grad": w.grad, "w.requires_grad": w.requires_grad}


@program
def accumulation_over_two_backwards(T):
    x = leaf(T, A34)
    w = leaf(T, B4)
    (x * w).sum().backward()
    g1 = x.grad.clone()
    (x ** 2 * w).mean().backward()
    return {"g1": g1, "x.grad": x.grad, "w.grad": w.grad}


@program
def backward_twice_on_one_graph(T):
    x = leaf(T, B4)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    return {"x.grad": x.grad}


@program
def retain_grad_on_intermediates(T):
    x = leaf(T, A34)
    h = x * 2 + 1
    h.retain_grad()
    z = T.tanh(h)
    z.retain_grad()
    loss = (z ** 2).sum()
    loss.backward()
    other = x * 3
    assert other.grad is None and h.retains_grad and not other.retains_grad
    return {"h.grad": h.grad, "z.grad": z.grad, "x.grad": x.grad,
            "is_leaf": np.array([x.is_leaf, h.is_leaf, z.is_leaf])}


@program
def detach_stops_gradients(T):
    x = leaf(T, B4)
    y = x * 2
    z = y.detach() * x + y
    zd = z.detach()
    assert not zd.requires_grad and zd.grad_fn is None and zd.is_leaf
    z.sum().backward()
    return {"z": z, "x.grad": x.grad, "zd": zd}


@program
def while_loop_on_values(T):
    x = leaf(T, np.array([0.3, -0.2, 0.5], np.float32))
    y = x * 2
    steps = 0
    while y.data.norm() < 1000:
        y = y * 2
        steps += 1
    y.backward(T.tensor(np.array([0.1, 1.0, 0.0001], np.float32)))
    return {"y": y, "x.grad": x.grad, "steps": steps}


@program
def control_flow_on_values(T):
    x = leaf(T, arr(5))
    y = x
    for i in range(5):
        if y.sum() > 0:
            y = y * 0.5 - 0.3
        else:
            y = y * y + 0.2
        if y[i].item() > 0:
            y = y + y[i]
    y.sum().backward()
    return {"y": y, "x.grad": x.grad}


@program
def batched_matmul_and_layout(T):
    a, b = leaf(T, arr(2, 3, 4)), leaf(T, arr(4, 5))
    v = leaf(T, arr(5))
    y = (a @ b).permute(2, 0, 1)          # (5, 2, 3)
    y = y.transpose(1, 2) @ T.ones(2, 1)   # (5, 3, 1)
    z = (y.squeeze(-1).T @ v).sum() + (a.sum(0) @ b @ v).sum()
    z.backward()
    return {"y": y, "z": z, "a": a.grad, "b": b.grad, "v": v.grad}


@program
def indexing_cat_stack(T):
    x = leaf(T, arr(4, 5))
    parts = [x[1:, 0], x[0, 1:], x[::2, -1], x[2, 1:4:2]]
    c = T.cat([parts[0], parts[1], parts[2] * 2], dim=0)
    s = T.stack([x[0], x[-1], x[1] * x[2]], dim=1)
    e = x[..., None] * x[None, :, 1:2, None].squeeze(0)
    loss = c.sum() + (s ** 2).sum() + e.mean() + (parts[3] * parts[3]).sum()
    loss.backward()
    return {"c": c, "s": s, "e": e, "x.grad": x.grad}


@program
def piecewise_ops(T):
    x = leaf(T, np.array([-1.25, -0.4, 0.15, 0.55, 1.35, 2.05], np.float32))
    y = leaf(T, np.array([0.3, -0.9, 0.45, 0.2, 1.8, -0.1], np.float32))
    z = T.where(x > 0, x * y, -y) + T.clamp(x, min=-0.5, max=1.0) + T.maximum(x, y) * T.minimum(x, y)
    z = z + T.relu(x - 0.1) + x.clamp(min=0.0) * 3
    z.sum().backward()
    return {"z": z, "x.grad": x.grad, "y.grad": y.grad, "mask": x > y}


@program
def linear_regression_mse(T):
    X = T.tensor(arr(10, 3))
    true_w = T.tensor(np.array([[1.5], [-2.0], [0.5]], np.float32))
    y = X @ true_w + 0.3
    w = leaf(T, np.zeros((3, 1), np.float32))
    b = leaf(T, np.zeros(1, np.float32))
    for _ in range(10):
        loss = T.nn.functional.mse_loss(X @ w + b, y)
        loss.backward()
        with T.no_grad():
            w -= 0.3 * w.grad
            b -= 0.3 * b.grad
        w.grad.zero_()
        b.grad.zero_()
    return {"w": w, "b": b, "loss": loss}


@program
def logistic_regression_bce(T):
    X = T.tensor(arr(8, 2))
    t = T.tensor(np.array([1, 0, 1, 1, 0, 0, 1, 0], np.float32))
    w = leaf(T, arr(2))
    b = leaf(T, np.array(0.1, np.float32))
    loss = T.nn.functional.binary_cross_entropy_with_logits(X @ w + b, t)
    loss.backward()
    p = T.sigmoid(X @ w + b)
    return {"loss": loss, "w": w.grad, "b": b.grad, "p": p}


@program
def shared_subexpressions(T):
    x, y = leaf(T, A34), leaf(T, A34[::-1].copy())
    z = x * y
    a = z.exp()
    loss = z.sum() + (z ** 2).mean() + (a / (1 + a)).sum() - (z * a).sum() * 0.01
    loss.backward()
    return {"loss": loss, "x": x.grad, "y": y.grad}


@program
def shape_chain(T):
    x = leaf(T, arr(2, 6))
    y = x.view(3, 4).reshape(4, 3).unsqueeze(0).expand(2, 4, 3).flatten(1)
    y = y.reshape(2, 2, 6).squeeze().sum(0) * T.arange(6).float()
    y.backward(T.tensor(arr(2, 6)))
    return {"y": y, "x.grad": x.grad}


@program
def non_scalar_backward_with_weights(T):
    x = leaf(T, arr(2, 3))
    y = (x ** 3).sum(dim=1)
    y.backward(T.tensor(np.array([1.0, 0.1], np.float32)))
    return {"y": y, "x.grad": x.grad}


@program
def no_grad_and_requires_grad_toggle(T):
    a = T.tensor(np.array([1.0, 2.0, 3.0, 4.0], np.float32), requires_grad=True)
    b = T.tensor(np.array([1.0, 2.0, 3.0, 4.0], np.float32), requires_grad=False)
    with T.no_grad():
        c = a * 2
    d = T.sum(b + a)
    d.backward()
    b_grad_before = b.grad
    b.requires_grad_(True)
    d = T.sum(b * a)
    d.backward()
    return {"c.requires_grad": c.requires_grad, "b_grad_before": b_grad_before is None,
            "a.grad": a.grad, "b.grad": b.grad, "d": d, "is_grad_enabled": T.is_grad_enabled()}


@program
def autograd_variable_api(T):
    Variable = T.autograd.Variable
    x = Variable(T.ones(2, 2), requires_grad=True)
    y = x + 2
    z = y * y * 3
    out = z.mean()
    out.backward()
    return {"x.grad": x.grad, "out": out, "y.is_leaf": y.is_leaf, "x.is_leaf": x.is_leaf,
            "names": (type(y.grad_fn).__name__, type(out.grad_fn).__name__),
            "shape": tuple(x.size()), "numel": x.numel(), "dim": x.dim()}


@program
def integer_tensors(T):
    idx = T.arange(6)
    labels = T.tensor(np.array([2, 0, 1]))
    x = leaf(T, arr(3, 3))
    onehot = (labels.unsqueeze(1) == T.arange(3).unsqueeze(0)).float()
    loss = -(T.log_softmax(x, dim=1) * onehot).sum() / 3
    ref = T.nn.functional.cross_entropy(x, labels)
    loss.backward()
    return {"idx_sum": idx.sum(), "idx*2": idx * 2, "idx/2": idx / 2, "loss": loss, "ref": ref,
            "x.grad": x.grad, "onehot": onehot}


@program
def second_order_via_grad(T):
    x = leaf(T, np.array([0.5, -1.0, 2.0]))
    y = (x ** 3 * T.sin(x)).sum()
    grad = sg.grad if T is sg else (lambda o, i: T.autograd.grad(o, i, create_graph=True))
    (g,) = grad(y, x)
    (h,) = grad(g.sum(), x)
    return {"g": g, "h": h}


@program
def float64_precision(T):
    x = leaf(T, np.array([1e-3, 0.5, 3.0, 10.0]))
    y = T.log(x) * x ** 2.5 + T.exp(-x) / (x + 1e-6)
    y.sum().backward()
    return {"y": y, "x.grad": x.grad}


# --- the test -------------------------------------------------------------------------------------


def _compare(name, ours, theirs, rtol):
    if isinstance(ours, (bool, int, float, tuple, str)) and not hasattr(ours, "shape"):
        if isinstance(ours, float):
            assert ours == pytest.approx(theirs, rel=rtol), name
        else:
            assert ours == theirs, name
        return
    if ours is None or theirs is None:
        assert ours is None and theirs is None, name
        return
    a = ours if isinstance(ours, np.ndarray) else value(ours)
    b = theirs if isinstance(theirs, np.ndarray) else value(theirs)
    assert a.shape == b.shape, name
    assert str(a.dtype) == str(b.dtype), name
    if a.dtype.kind in "biu":
        np.testing.assert_array_equal(a, b, err_msg=name)
    else:
        tol = rtol if a.dtype == np.float32 else 1e-10
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * 0.1, err_msg=name)


@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf")
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_same_results_as_torch(name, torch):
    reseed(name)
    ours = PROGRAMS[name](sg)
    reseed(name)
    theirs = PROGRAMS[name](torch)
    assert ours.keys() == theirs.keys()
    for key in ours:
        _compare(f"{name}: {key}", ours[key], theirs[key], rtol=1e-4)


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_runs_without_torch(name):
    """Every program also runs (and its own asserts hold) on symgrad alone."""
    reseed(name)
    results = PROGRAMS[name](sg)
    assert results
    for key, v in results.items():
        if isinstance(v, sg.Variable):
            assert np.all(np.isfinite(v.detach().numpy().astype(np.float64))), key


def test_enough_programs():
    assert len(PROGRAMS) >= 24


# --- the API surface of SPEC §1, side by side ---------------------------------------------------

CREATION = [
    "M.Tensor([1, 2])", "M.Tensor(3, 4).shape", "M.Tensor(3, 4).requires_grad", "M.Tensor(2, 3).zero_()",
    "M.FloatTensor([1, 2])",
    "M.FloatTensor(2, 3).shape", "M.DoubleTensor([1, 2])", "M.LongTensor([1, 2])", "M.tensor([1, 2])",
    "M.tensor([1., 2])", "M.tensor(3.5)", "M.tensor(7)", "M.tensor(True)", "M.tensor([[1, 2], [3, 4]])",
    "M.tensor(np.ones(2))", "M.tensor(np.ones(2, np.float32))", "M.tensor(np.arange(3))",
    "M.tensor(np.arange(3, dtype=np.int32))", "M.tensor([1, 2], dtype=M.float32)",
    "M.tensor([1, 2], dtype=M.float64, requires_grad=True)", "M.from_numpy(np.ones(2))",
    "M.from_numpy(np.arange(4).reshape(2, 2))", "M.ones(2, 3, requires_grad=True)", "M.ones((2, 3))",
    "M.zeros((2, 3))", "M.zeros(4, dtype=M.int64)", "M.full((2, 3), 1.5)", "M.full((2, 3), 2)",
    "M.full((2,), 1.5, requires_grad=True)", "M.rand(2, 3).shape", "M.randn(2, requires_grad=True).shape",
    "M.arange(5)", "M.arange(0, 1, 0.25)", "M.arange(5.)", "M.arange(2, 8, 2)",
    "M.ones_like(M.ones(2, dtype=M.float64))", "M.zeros_like(M.arange(3))", "M.full_like(M.ones(2), 7)",
    "M.randn_like(M.ones(2)).shape", "M.rand_like(M.ones(2, 2), requires_grad=True).requires_grad",
    "M.tensor([True, False])", "M.eye(3)", "M.linspace(0, 1, 5)", "M.empty(2, 3).shape",
    "M.autograd.Variable(M.ones(2))", "M.autograd.Variable(M.ones(2), requires_grad=True)",
    "M.tensor([[1, 2], [3, 4]]).float()", "M.ones(2).double()", "M.ones(2).long()", "M.ones(2).int()",
    "M.ones(2).bool()", "M.ones(2).to(M.float64)", "M.ones(2).type()",
    "M.tensor(2) + M.tensor(2.5)", "M.ones(2, dtype=M.int32) / M.ones(2, dtype=M.int32)",
    "M.tensor([5., -3., 7.5, -0.5]) // 2", "M.tensor([5, -3]) // 2", "M.tensor([5, -3]) // 2.5",
    "7 // M.tensor([2., -2.])", "M.tensor([5., -3.]) // M.tensor([-2., 2.])", "M.tensor([[1., 2.]]).size()",
    "M.tensor([[1., 2.]]).size(1)",
    "M.tensor([[1., 2.]]).size(-1)", "M.tensor([[1., 2.]]).numel()", "M.tensor([[1., 2.]]).dim()",
    "M.tensor([[1., 2.]]).ndim", "M.tensor([[1., 2.]]).shape", "M.tensor([1.5]).item()",
    "M.tensor(2).item()", "M.tensor([[1., 2.]]).tolist()", "float(M.tensor([2.5]))", "int(M.tensor(3))",
    "bool(M.tensor([0.]))", "bool(M.tensor(1.))", "M.ones(2).is_floating_point()",
    "M.arange(2).is_floating_point()", "len(M.ones(4, 2))", "[v.item() for v in M.tensor([1., 2.])]",
    "M.ones(2, requires_grad=True).is_leaf", "(M.ones(2, requires_grad=True) * 2).is_leaf",
    "(M.ones(2) * 2).is_leaf", "M.ones(2, requires_grad=True).grad_fn",
    "M.ones(3, requires_grad=True).requires_grad_(False).requires_grad",
    "M.ones(3).requires_grad_().requires_grad", "M.ones(3).fill_(2.5)", "M.ones(3).zero_()",
    "M.arange(6).view(2, 3).T", "M.arange(6).reshape(3, 2).mT", "M.ones(2, 3).new_tensor([1, 2])",
    "M.ones(2, 3).expand_as(M.ones(4, 2, 3)).shape", "M.ones(6).view_as(M.ones(2, 3)).shape",
    "M.ones(2, requires_grad=True).clone().tolist()", "M.ones(2, requires_grad=True).detach()",
    "M.ones(2, requires_grad=True).data", "M.is_grad_enabled()",
]


def _describe(v):
    if isinstance(v, (bool, int, float, str, list, type(None))):
        return v
    if isinstance(v, tuple):
        return tuple(v)
    return (str(v.dtype).partition(".")[2], tuple(v.shape), v.requires_grad, v.is_leaf,
            None if v.grad_fn is None else type(v.grad_fn).__name__, value(v).tolist())


@pytest.mark.parametrize("expr", CREATION)
def test_api_surface_matches_torch(expr, torch):
    ours = _describe(eval(expr, {"M": sg, "np": np}))
    theirs = _describe(eval(expr, {"M": torch, "np": np}))
    assert ours == theirs


@pytest.mark.parametrize("T", ["symgrad", "torch"])
def test_storage_sharing(T, request):
    M = sg if T == "symgrad" else request.getfixturevalue("torch")
    x = M.tensor(np.array([1.0, 2.0, 3.0], np.float32), requires_grad=True)
    x.data.zero_()                     # .data shares x's storage
    assert x.tolist() == [0.0, 0.0, 0.0]
    d = x.detach()
    d.fill_(4.0)                       # so does detach()
    assert x.tolist() == [4.0, 4.0, 4.0] and x.requires_grad and not d.requires_grad
    a = np.ones(2, np.float32)
    f = M.from_numpy(a)
    a[0] = 5.0                         # from_numpy shares the array
    assert f.tolist() == [5.0, 1.0]
    t = M.tensor(a)
    a[1] = 7.0                         # tensor() copies it
    assert t.tolist() == [5.0, 1.0]
    (x * x).sum().backward()
    g = x.grad
    assert not g.requires_grad and g.grad_fn is None and g.shape == x.shape and g.dtype == x.dtype
    x.grad.data.zero_()                # the tutorial's way of emptying the gradient
    assert x.grad.tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("T", ["symgrad", "torch"])
def test_grad_mode(T, request):
    M = sg if T == "symgrad" else request.getfixturevalue("torch")
    x = M.ones(2, requires_grad=True)
    with M.no_grad():
        assert not M.is_grad_enabled()
        y = x * 2
        with M.enable_grad():
            z = x * 2
    assert M.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None and y.is_leaf
    assert z.requires_grad

    @M.no_grad()
    def f(v):
        return v * 3

    assert not f(x).requires_grad
    assert (x * 2).requires_grad and (M.ones(2) * x).requires_grad
    assert not (M.ones(2) * 2).requires_grad
    assert not (x > 0).requires_grad
    assert x.volatile is False if T == "symgrad" else True


def test_name_attribute():
    x = sg.Variable(shape=(2,), name="x")
    assert x.name == "x"
    v = sg.tensor([1.0, 2.0])
    v.name = "v"
    assert v.data.name == "v" and v.detach().name == "v"

