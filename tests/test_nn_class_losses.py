"""nll_loss and cross_entropy with per-class `weight`, `ignore_index` and `label_smoothing`
(functions and modules), against PyTorch: each case is written once as a function of the
module `T`, run with symgrad and with torch on the same numbers, and the losses under every
reduction and the input's gradient must agree (float64 rtol 1e-9, float32 1e-4). One compiled
graph with symbolic labels checks the generated code; bad weights and labels raise clearly."""
from __future__ import annotations

import numpy as np
import pytest

import symgrad as sg

torch = pytest.importorskip("torch")

RTOL = {"float64": 1e-9, "float32": 1e-4}
CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


def numbers(v):
    return v.detach().numpy() if isinstance(v, torch.Tensor) else np.asarray(v.detach().numpy())


def _inputs(T, dtype, shape, seed):
    rng = np.random.default_rng(seed)
    x = T.tensor(rng.uniform(-2, 2, shape).astype(dtype), requires_grad=True)
    weight = T.tensor(rng.uniform(0.2, 2.0, shape[1]).astype(dtype))
    mix = T.tensor(rng.uniform(-1, 1, (shape[0],) + shape[2:]).astype(dtype))
    return x, weight, mix


def _all_reductions(T, loss, x, mix):
    """{reduction: loss} and the input's gradient of mean + sum + a weighted sum of 'none'."""
    out, total = {}, 0
    for reduction in ("mean", "sum", "none"):
        value = loss(reduction)
        out[reduction] = numbers(value)
        total = total + ((value * mix).sum() if reduction == "none" else value)
    total.backward()
    out["grad"] = numbers(x.grad)
    return out


LABELS = np.array([2, -100, 0, 3, 3, 1, -100, 2], dtype=np.int64)      # 8 rows, 4 classes


@case
def ce_weight(T, dtype):
    x, w, mix = _inputs(T, dtype, (8, 4), 1)
    y = T.tensor(np.abs(LABELS) % 4)
    return _all_reductions(T, lambda red: T.nn.functional.cross_entropy(x, y, weight=w, reduction=red),
                           x, mix)


@case
def ce_ignore_index_default(T, dtype):
    x, _, mix = _inputs(T, dtype, (8, 4), 2)
    y = T.tensor(LABELS)
    return _all_reductions(T, lambda red: T.nn.CrossEntropyLoss(reduction=red)(x, y), x, mix)


@case
def ce_ignore_index_a_class(T, dtype):
    x, w, mix = _inputs(T, dtype, (8, 4), 3)
    y = T.tensor(np.abs(LABELS) % 4)
    loss = T.nn.CrossEntropyLoss
    return _all_reductions(T, lambda red: loss(weight=w, ignore_index=3, reduction=red)(x, y), x, mix)


@case
def ce_label_smoothing(T, dtype):
    x, _, mix = _inputs(T, dtype, (8, 4), 4)
    y = T.tensor(np.abs(LABELS) % 4)
    return _all_reductions(T, lambda red: T.nn.CrossEntropyLoss(label_smoothing=0.15, reduction=red)(x, y),
                           x, mix)


@case
def ce_everything(T, dtype):
    x, w, mix = _inputs(T, dtype, (8, 4), 5)
    y = T.tensor(LABELS)
    return _all_reductions(T, lambda red: T.nn.functional.cross_entropy(
        x, y, weight=w, ignore_index=-100, reduction=red, label_smoothing=0.3), x, mix)


@case
def ce_spatial_everything(T, dtype):
    x, w, mix = _inputs(T, dtype, (2, 4, 3), 6)                       # (N, C, d)
    y = T.tensor(np.array([[0, 3, 1], [2, 1, 3]], dtype=np.int64))
    return _all_reductions(T, lambda red: T.nn.functional.cross_entropy(
        x, y, weight=w, ignore_index=1, reduction=red, label_smoothing=0.2), x, mix)


@case
def ce_unbatched_ignored(T, dtype):
    x, w, _ = _inputs(T, dtype, (1, 4), 7)
    row = x[0]
    kept = T.nn.functional.cross_entropy(row, T.tensor(2), weight=w, label_smoothing=0.1)
    ignored = T.nn.functional.cross_entropy(row, T.tensor(2), ignore_index=2, reduction="sum")
    (kept + ignored).backward()
    return {"kept": numbers(kept), "ignored": numbers(ignored), "grad": numbers(x.grad)}


@case
def nll_weight_ignore(T, dtype):
    x, w, mix = _inputs(T, dtype, (8, 4), 8)
    y = T.tensor(LABELS)
    return _all_reductions(T, lambda red: T.nn.NLLLoss(weight=w, reduction=red)(
        T.nn.functional.log_softmax(x, dim=1), y), x, mix)


@case
def ce_probabilities_weight_smoothing(T, dtype):
    x, w, mix = _inputs(T, dtype, (3, 4, 2), 9)
    p = np.random.default_rng(10).uniform(0.1, 1, (3, 4, 2))
    t = T.tensor((p / p.sum(1, keepdims=True)).astype(dtype))
    return _all_reductions(T, lambda red: T.nn.functional.cross_entropy(
        x, t, weight=w, reduction=red, label_smoothing=0.25), x, mix)


@case
def ce_all_ignored_mean_is_nan(T, dtype):
    x, w, _ = _inputs(T, dtype, (3, 4), 11)
    y = T.tensor(np.array([-100, -100, -100]))
    return {"plain": numbers(T.nn.functional.cross_entropy(x, y)),
            "weighted": numbers(T.nn.functional.cross_entropy(x, y, weight=w, label_smoothing=0.1)),
            "sum": numbers(T.nn.functional.cross_entropy(x, y, reduction="sum"))}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_same_numbers_as_torch(name, dtype, interp_backward):
    ours, theirs = CASES[name](sg, dtype), CASES[name](torch, dtype)
    assert ours.keys() == theirs.keys()
    for key in theirs:
        assert ours[key].shape == theirs[key].shape, (name, key)
        np.testing.assert_allclose(ours[key], theirs[key], rtol=RTOL[dtype], atol=RTOL[dtype] * 1e-2,
                                   err_msg=f"{name}: {key}")


def test_the_ignored_rows_count_for_nothing(interp_backward):
    """Not only the same numbers as torch: an ignored row's gradient is zero, and the mean is
    that of the rows kept."""
    x = sg.tensor(np.random.default_rng(0).normal(size=(4, 3)), requires_grad=True)
    loss = sg.nn.CrossEntropyLoss(ignore_index=1)(x, sg.tensor([0, 1, 2, 1]))
    loss.backward()
    assert np.all(x.grad.numpy()[[1, 3]] == 0) and np.all(x.grad.numpy()[[0, 2]] != 0)
    kept = sg.nn.functional.cross_entropy(x[[0, 2]], sg.tensor([0, 2]))
    assert loss.item() == pytest.approx(kept.item(), rel=1e-12)


def test_weight_is_a_buffer_as_in_torch():
    w = np.array([1.0, 2.0, 0.5], dtype=np.float32)
    for name in ("CrossEntropyLoss", "NLLLoss"):
        ours = getattr(sg.nn, name)(weight=sg.tensor(w))
        theirs = getattr(torch.nn, name)(weight=torch.tensor(w))
        assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight"]
        assert [n for n, _ in ours.named_buffers()] == ["weight"]
        assert list(ours.parameters()) == []
        assert ours.double().weight.dtype == sg.float64


def test_compiled_graph_with_symbolic_labels_follows_torch():
    """Weight, smoothing and a non-default ignore_index in generated C: labels chosen at call time."""
    x = sg.Variable(shape=(6, 4), dtype="float64", name="x")
    y = sg.Variable(shape=(6,), dtype="int64", name="y")
    w = np.array([0.5, 1.0, 2.0, 1.5])
    loss_fn = sg.nn.CrossEntropyLoss(weight=sg.tensor(w), ignore_index=0, label_smoothing=0.1)
    fn = sg.compile([x, y], loss_fn(x, y), wrt=[x])
    xv = np.random.default_rng(1).normal(size=(6, 4))
    reference = torch.nn.CrossEntropyLoss(weight=torch.tensor(w), ignore_index=0, label_smoothing=0.1)
    for labels in ([1, 0, 3, 2, 0, 1], [3, 3, 2, 1, 2, 0]):
        yv = np.array(labels, dtype=np.int64)
        loss, (gx,) = fn.value_and_grad(xv, yv)
        xt = torch.tensor(xv, requires_grad=True)
        theirs = reference(xt, torch.tensor(yv))
        theirs.backward()
        assert loss == pytest.approx(theirs.item(), rel=1e-10)
        np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    with pytest.raises((IndexError, ValueError, RuntimeError), match="labels"):
        fn.forward(xv, np.array([1, 0, 4, 2, 0, 1]))          # 4 is neither a class nor ignored


def test_bad_weights_smoothing_and_labels_raise_clearly():
    F = sg.nn.functional
    x = sg.ones(2, 3)
    with pytest.raises(ValueError, match=r"weight.*\(3,\).*\(2,\)"):
        F.cross_entropy(x, sg.tensor([0, 1]), weight=sg.ones(2))
    with pytest.raises(TypeError, match="float32.*float64"):
        F.cross_entropy(x, sg.tensor([0, 1]), weight=sg.ones(3, dtype=sg.float64))
    with pytest.raises(TypeError, match="weight.*list"):
        F.nll_loss(x, sg.tensor([0, 1]), weight=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="label_smoothing.*1.5"):
        F.cross_entropy(x, sg.tensor([0, 1]), label_smoothing=1.5)
    with pytest.raises(IndexError, match=r"\[0, 3\).*ignore_index \(-1\).*5"):
        F.cross_entropy(x, sg.tensor([-1, 5]), ignore_index=-1)
    with pytest.raises(IndexError, match=r"\[0, 3\)"):
        F.cross_entropy(x, sg.tensor([-100, -7]))          # -7 is not the ignore_index


def test_compile_step_with_a_weighted_smoothed_loss_follows_torch():
    """The loss module's weight buffer reaches the compiled training step (captured from the
    loss function, which is not the model); ten Adam steps give torch's losses."""
    rng = np.random.default_rng(12)
    x, y = rng.normal(size=(16, 5)), rng.integers(0, 3, 16)
    state = {"weight": rng.normal(size=(3, 5)) * 0.5, "bias": np.zeros(3)}
    w = np.array([0.5, 2.0, 1.0])
    losses = {}
    for T in (sg, torch):
        model = T.nn.Linear(5, 3).double()
        model.load_state_dict({k: T.tensor(v.copy()) for k, v in state.items()})
        opt = T.optim.Adam(model.parameters(), lr=0.05)
        loss_fn = T.nn.CrossEntropyLoss(weight=T.tensor(w), label_smoothing=0.1)
        if T is sg:
            step = sg.compile_step(model, loss_fn, opt)
            losses["sg"] = [step(x, y) for _ in range(10)]
            continue
        losses["torch"] = []
        for _ in range(10):
            opt.zero_grad()
            loss = loss_fn(model(torch.tensor(x)), torch.tensor(y))
            loss.backward()
            opt.step()
            losses["torch"].append(loss.item())
    np.testing.assert_allclose(losses["sg"], losses["torch"], rtol=1e-9)
    assert losses["sg"][-1] < losses["sg"][0]
