"""symgrad.optim against torch.optim: the same programs, written once against a module `T`,
run with `T = torch` and `T = symgrad` from the same initial weights and data; 20-step
trajectories (losses, parameters and every state entry) agree to rtol 1e-6 in float64 and
1e-4 in float32 (torch's CPU kernels fuse multiply-adds, symgrad's do not: a last-bit
difference per step). state_dicts have torch's layout and round-trip, both ways; the
schedulers give torch's learning rates."""
from __future__ import annotations

import numpy as np
import pytest

import symgrad as sg

torch = pytest.importorskip("torch")

RTOL = {np.float32: 1e-4, np.float64: 1e-6}

CASES = {
    "sgd": ("SGD", dict(lr=0.1)),
    "sgd-momentum": ("SGD", dict(lr=0.1, momentum=0.9)),
    "sgd-dampening": ("SGD", dict(lr=0.1, momentum=0.8, dampening=0.3)),
    "sgd-nesterov-decay": ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.05)),
    "sgd-decay": ("SGD", dict(lr=0.1, weight_decay=0.2)),
    "sgd-maximize": ("SGD", dict(lr=0.05, momentum=0.5, weight_decay=0.1, maximize=True)),
    "adam": ("Adam", dict(lr=0.05)),
    "adam-amsgrad-decay": ("Adam", dict(lr=0.05, amsgrad=True, weight_decay=0.1)),
    "adam-betas-maximize": ("Adam", dict(lr=0.02, betas=(0.3, 0.8), eps=1e-6, maximize=True)),
    "adamw": ("AdamW", dict(lr=0.05)),
    "adamw-amsgrad": ("AdamW", dict(lr=0.05, weight_decay=0.3, amsgrad=True)),
    "rmsprop": ("RMSprop", dict(lr=0.01)),
    "rmsprop-centered-momentum": ("RMSprop", dict(lr=0.005, alpha=0.9, momentum=0.8, centered=True,
                                                  weight_decay=0.1)),
    "rmsprop-small-alpha-centered": ("RMSprop", dict(lr=0.002, alpha=0.3, centered=True)),
    "rmsprop-maximize": ("RMSprop", dict(lr=0.002, maximize=True)),
    "adagrad": ("Adagrad", dict(lr=0.1)),
    "adagrad-decay": ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.2,
                                      eps=1e-6)),
}


# Cases whose float32 trajectories are ill-conditioned: centred RMSprop with a short average
# subtracts two nearly equal numbers (E[g^2] - E[g]^2), so torch's fused multiply-adds and our
# separate roundings part by more than rounding after a few steps. float64 checks the formula.
FLOAT64_ONLY = {"rmsprop-small-alpha-centered"}


def _data(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return {"W": rng.normal(size=(5, 4)).astype(dtype) * 0.5, "b": rng.normal(size=4).astype(dtype) * 0.1,
            "V": rng.normal(size=(4, 2)).astype(dtype) * 0.5,
            "X": rng.normal(size=(16, 5)).astype(dtype), "Y": rng.normal(size=(16, 2)).astype(dtype)}


def _model(T, d):
    return [T.tensor(d["W"].copy(), requires_grad=True), T.tensor(d["b"].copy(), requires_grad=True),
            T.tensor(d["V"].copy(), requires_grad=True)]


def _loss(T, params, d):
    W, b, V = params
    return ((T.tanh(T.tensor(d["X"]) @ W + b) @ V - T.tensor(d["Y"])) ** 2).mean()


def _train(T, opt, params, d, steps):
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = _loss(T, params, d)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _np(v):
    return v.detach().numpy() if hasattr(v, "detach") else np.asarray(v)


def _state(opt):
    return {i: {k: _np(v) for k, v in s.items()} for i, s in opt.state_dict()["state"].items()}


def _groups(opt):
    return [dict(g) for g in opt.state_dict()["param_groups"]]


def trajectory(T, name, dtype, steps=20):
    cls, kw = CASES[name]
    d = _data(dtype)
    params = _model(T, d)
    # two groups: the bias learns at half the rate
    opt = getattr(T.optim, cls)([{"params": [params[0], params[2]]}, {"params": [params[1]],
                                                                      "lr": kw["lr"] / 2}], **kw)
    losses = _train(T, opt, params, d, steps)
    return losses, [_np(p).copy() for p in params], _state(opt), _groups(opt)


def _close(ours, theirs, rtol, what):
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * 1e-2, err_msg=what)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(CASES))
def test_twenty_steps_follow_torch(name, dtype):
    if name in FLOAT64_ONLY and dtype == np.float32:
        pytest.skip("ill-conditioned in float32 (see FLOAT64_ONLY)")
    ours, theirs = trajectory(sg, name, dtype), trajectory(torch, name, dtype)
    rtol = RTOL[dtype]
    _close(ours[0], theirs[0], rtol, "losses")
    for k, (a, b) in enumerate(zip(ours[1], theirs[1])):
        assert a.dtype == dtype
        _close(a, b, rtol, f"parameter {k}")
    assert ours[2].keys() == theirs[2].keys()
    for i in theirs[2]:
        assert ours[2][i].keys() == theirs[2][i].keys(), i
        for key in theirs[2][i]:
            _close(ours[2][i][key], theirs[2][i][key], rtol, f"state {i} {key}")
            if key == "step":
                assert ours[2][i][key].dtype == np.float32 and ours[2][i][key] == 20
    assert ours[3] == theirs[3]          # every group key and value, the params as indices


def test_the_update_itself_matches_torch_to_the_last_bits_with_given_gradients():
    """Same gradients fed to both: only the update's arithmetic differs. torch fuses a*b+c
    (one rounding) in its vector loops; ours rounds twice, so at most a few float32 ulps."""
    rng = np.random.default_rng(3)
    w0 = rng.normal(size=(257,)).astype(np.float32)
    grads = [rng.normal(size=(257,)).astype(np.float32) for _ in range(6)]
    for cls, kw in [("SGD", dict(lr=0.1, momentum=0.9, dampening=0.2, weight_decay=0.1)),
                    ("Adam", dict(lr=0.05, amsgrad=True, weight_decay=0.1)), ("AdamW", dict(lr=0.05)),
                    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True)), ("Adagrad", dict(lr=0.1))]:
        out = []
        for T in (sg, torch):
            w = T.tensor(w0.copy(), requires_grad=True)
            opt = getattr(T.optim, cls)([w], **kw)
            for g in grads:
                w.grad = T.tensor(g)
                opt.step()
            out.append(_np(w))
        assert np.abs(out[0] - out[1]).max() <= 4 * np.spacing(np.abs(out[1]).max()), cls
        # and not the same numbers as without the step's own formula (the check can fail)
        assert not np.allclose(out[0], w0, rtol=1e-3)


def test_parameters_are_updated_in_place_and_steps_skip_parameters_without_gradient():
    w = sg.tensor([1.0, 2.0], requires_grad=True)
    u = sg.tensor([5.0], requires_grad=True)
    storage = w.data.numpy()
    opt = sg.optim.SGD([w, u], lr=0.5)
    (w * w).sum().backward()
    opt.step()
    np.testing.assert_array_equal(storage, [0.0, 0.0])     # the same array, written over
    np.testing.assert_array_equal(u.detach().numpy(), [5.0])
    assert w.requires_grad and w.is_leaf and w.grad is not None
    opt.zero_grad()
    assert w.grad is None
    (w * 3).sum().backward()
    grad = w.grad
    opt.zero_grad(set_to_none=False)
    assert w.grad is grad
    np.testing.assert_array_equal(w.grad.numpy(), [0.0, 0.0])
    (w * 3).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [3.0, 3.0])


def _adam_pair(T, dtype):
    d = _data(dtype, seed=5)
    params = _model(T, d)
    return params, T.optim.Adam(params, lr=0.03, amsgrad=True), d


def test_state_dict_round_trips_and_resumes_the_same_trajectory():
    params, opt, d = _adam_pair(sg, np.float64)
    _train(sg, opt, params, d, 5)
    sd = opt.state_dict()
    assert sorted(sd) == ["param_groups", "state"] and sorted(sd["state"]) == [0, 1, 2]
    assert sorted(sd["state"][0]) == ["exp_avg", "exp_avg_sq", "max_exp_avg_sq", "step"]
    copies = [sg.tensor(p.detach().numpy().copy(), requires_grad=True) for p in params]
    other = sg.optim.Adam(copies, lr=0.5)
    other.load_state_dict(sd)
    assert other.param_groups[0]["lr"] == 0.03 and other.param_groups[0]["params"][0] is copies[0]
    # loaded values are copies: training one does not move the other's state
    assert other.state[copies[0]]["exp_avg"].numpy() is not opt.state[params[0]]["exp_avg"].numpy()
    a = _train(sg, opt, params, d, 5)
    b = _train(sg, other, copies, d, 5)
    assert a == b
    for p, q in zip(params, copies):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())


def test_a_torch_state_dict_loads_into_ours_and_continues_as_torch_does():
    tparams, topt, d = _adam_pair(torch, np.float64)
    _train(torch, topt, tparams, d, 4)
    params = [sg.tensor(p.detach().numpy().copy(), requires_grad=True) for p in tparams]
    opt = sg.optim.Adam(params)
    opt.load_state_dict(topt.state_dict())
    ours = _train(sg, opt, params, d, 6)
    theirs = _train(torch, topt, tparams, d, 6)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10)
    # and ours loads into torch
    fresh = [torch.tensor(p.detach().numpy().copy(), requires_grad=True) for p in params]
    topt2 = torch.optim.Adam(fresh)
    sd = opt.state_dict()
    topt2.load_state_dict({"state": {i: {k: torch.tensor(v.numpy()) for k, v in s.items()}
                                     for i, s in sd["state"].items()}, "param_groups": sd["param_groups"]})
    np.testing.assert_allclose(_train(torch, topt2, fresh, d, 3), _train(sg, opt, params, d, 3), rtol=1e-10)


def test_sgd_state_has_torchs_keys():
    for T in (sg, torch):
        w = T.tensor([1.0, -1.0], requires_grad=True)
        plain, heavy = T.optim.SGD([w], lr=0.1), T.optim.SGD([w], lr=0.1, momentum=0.9)
        (w * w).sum().backward()
        plain.step()
        heavy.step()
        assert plain.state_dict()["state"] == {} and len(plain.state) == 0
        assert list(heavy.state_dict()["state"][0]) == ["momentum_buffer"]
        np.testing.assert_allclose(_np(heavy.state[w]["momentum_buffer"]), [2.0, -2.0])


def test_closure_and_add_param_group():
    for T in (sg, torch):
        w = T.tensor([3.0], requires_grad=True)
        v = T.tensor([1.0], requires_grad=True)
        opt = T.optim.SGD([w], lr=0.25, momentum=0.5)
        opt.add_param_group({"params": v, "lr": 1.0})
        assert opt.param_groups[1]["momentum"] == 0.5 and opt.param_groups[1]["lr"] == 1.0

        def closure():
            opt.zero_grad()
            loss = (w * w + v * v).sum()
            loss.backward()
            return loss
        assert float(_np(opt.step(closure))) == 10.0
        np.testing.assert_allclose(_np(w), [1.5])
        np.testing.assert_allclose(_np(v), [-1.0])


def test_bad_arguments_are_torchs_errors():
    w = sg.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        sg.optim.SGD([w], lr=-1)
    with pytest.raises(ValueError, match="Nesterov momentum requires a momentum and zero dampening"):
        sg.optim.SGD([w], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1"):
        sg.optim.Adam([w], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="empty parameter list"):
        sg.optim.Adam([])
    with pytest.raises(TypeError, match="iterable of Variables"):
        sg.optim.Adam(w)
    with pytest.raises(ValueError, match="non-leaf"):
        sg.optim.SGD([w * 2], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        sg.optim.SGD([{"params": [w]}, {"params": [w]}], lr=0.1)
    with pytest.raises(TypeError, match=r"params\[1\] is a ndarray"):
        sg.optim.SGD([w, np.ones(2)], lr=0.1)
    opt = sg.optim.SGD([w], lr=0.1)
    with pytest.raises(ValueError, match="parameter groups"):
        opt.load_state_dict({"state": {}, "param_groups": []})


SCHEDULERS = {
    "step": lambda T, opt: T.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5),
    "exponential": lambda T, opt: T.optim.lr_scheduler.ExponentialLR(opt, gamma=0.9),
    "lambda": lambda T, opt: T.optim.lr_scheduler.LambdaLR(opt, lambda epoch: 1.0 / (1 + epoch)),
}


@pytest.mark.parametrize("kind", list(SCHEDULERS))
def test_schedulers_give_torchs_learning_rates_and_training(kind):
    d = _data(np.float64, seed=7)
    runs = []
    for T in (sg, torch):
        params = _model(T, d)
        opt = T.optim.SGD([{"params": params[:2]}, {"params": params[2:], "lr": 0.2}], lr=0.1, momentum=0.9)
        sched = SCHEDULERS[kind](T, opt)
        lrs, losses = [sched.get_last_lr()], []
        for _ in range(10):
            losses += _train(T, opt, params, d, 1)
            sched.step()
            lrs.append(sched.get_last_lr())
        state = {k: v for k, v in sched.state_dict().items() if k != "lr_lambdas"}
        runs.append((lrs, losses, state, opt.param_groups[0]["initial_lr"]))
    (lrs, losses, state, initial), (tlrs, tlosses, tstate, tinitial) = runs
    np.testing.assert_allclose(lrs, tlrs, rtol=1e-15)
    np.testing.assert_allclose(losses, tlosses, rtol=1e-6)
    assert initial == tinitial == 0.1
    assert state.keys() <= tstate.keys() and state["last_epoch"] == tstate["last_epoch"] == 10
    assert state["base_lrs"] == tstate["base_lrs"] and state["_last_lr"] == tstate["_last_lr"]


def test_a_scheduler_state_dict_restores_its_place():
    w = sg.tensor([1.0], requires_grad=True)
    opt = sg.optim.SGD([w], lr=1.0)
    sched = sg.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.1)
    for _ in range(5):
        sched.step()
    saved = sched.state_dict()
    opt2 = sg.optim.SGD([w], lr=1.0)
    sched2 = sg.optim.lr_scheduler.StepLR(opt2, step_size=2, gamma=0.1)
    sched2.load_state_dict(saved)
    assert sched2.last_epoch == 5 and sched2.get_last_lr() == sched.get_last_lr()
    with pytest.raises(TypeError, match="is not an Optimizer"):
        sg.optim.lr_scheduler.StepLR(object(), 2)


def test_a_momentum_buffer_saved_as_none_starts_from_the_gradient():
    w = sg.tensor([1.0, 2.0], requires_grad=True)
    opt = sg.optim.SGD([w], lr=0.1, momentum=0.9)
    groups = opt.state_dict()["param_groups"]
    opt.load_state_dict({"state": {0: {"momentum_buffer": None}}, "param_groups": groups})
    (w * w).sum().backward()
    opt.step()
    np.testing.assert_allclose(w.detach().numpy(), [0.8, 1.6], rtol=1e-6)
    np.testing.assert_allclose(opt.state[w]["momentum_buffer"].numpy(), [2.0, 4.0])
