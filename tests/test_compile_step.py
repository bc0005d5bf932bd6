"""`sg.compile_step(model, loss_fn, optimizer)`: a whole training step in one compiled C call.
Its losses, parameters and optimizer state follow the eager loop (`zero_grad(); backward();
step()`) over 30 steps (float32 rtol 1e-5, float64 1e-10) and torch.optim's; the learning rate
a scheduler sets and Adam's step count reach the compiled step without recompiling; state
made by eager steps carries on into compiled ones and back."""
from __future__ import annotations

import copy

import numpy as np
import pytest

import symgrad as sg

torch = pytest.importorskip("torch")

TOL = {np.float32: 1e-5, np.float64: 1e-10}


class MLP:
    """A stand-in for an nn.Module: two layers held as leaves that require grad."""

    def __init__(self, T, dtype, seed=0, sizes=(6, 16, 3)):
        rng = np.random.default_rng(seed)
        n_in, n_hidden, n_out = sizes
        self.T = T
        self.weights = {
            "fc1.weight": rng.normal(size=(n_in, n_hidden)) * 0.4,
            "fc1.bias": rng.normal(size=n_hidden) * 0.1,
            "fc2.weight": rng.normal(size=(n_hidden, n_out)) * 0.4, "fc2.bias": np.zeros(n_out)}
        self.params = {k: T.tensor(v.astype(dtype), requires_grad=True) for k, v in self.weights.items()}

    def named_parameters(self):
        return list(self.params.items())

    def parameters(self):
        return list(self.params.values())

    def __call__(self, x):
        p = self.params
        return self.T.tanh(x @ p["fc1.weight"] + p["fc1.bias"]) @ p["fc2.weight"] + p["fc2.bias"]


def mse(out, target):
    return ((out - target) ** 2).mean()


def _batches(dtype, n=4, seed=1):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(32, 6)).astype(dtype), rng.normal(size=(32, 3)).astype(dtype))
            for _ in range(n)]


OPTIMIZERS = {
    "sgd-momentum": lambda T, ps: T.optim.SGD(ps, lr=0.1, momentum=0.9),
    "sgd-nesterov-decay": lambda T, ps: T.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True,
                                                  weight_decay=0.01),
    "adam": lambda T, ps: T.optim.Adam(ps, lr=0.01),
    "adamw-amsgrad": lambda T, ps: T.optim.AdamW(ps, lr=0.01, amsgrad=True),
    "rmsprop-centered-momentum": lambda T, ps: T.optim.RMSprop(ps, lr=0.005, momentum=0.5, centered=True),
    "adagrad-decay": lambda T, ps: T.optim.Adagrad(ps, lr=0.05, lr_decay=0.1),
}


def eager_losses(T, model, opt, batches, steps):
    out = []
    for k in range(steps):
        x, y = batches[k % len(batches)]
        opt.zero_grad()
        loss = mse(model(T.tensor(x)), T.tensor(y))
        loss.backward()
        opt.step()
        out.append(loss.item())
    return out


def _state(opt):
    return {i: {k: (v.detach().numpy() if hasattr(v, "detach") else v.numpy()).copy() for k, v in s.items()}
            for i, s in opt.state_dict()["state"].items()}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", ["sgd-momentum", "adam"])
def test_thirty_compiled_steps_equal_the_eager_loop_and_torch(name, dtype):
    batches = _batches(dtype)
    eager_model, model, torch_model = MLP(sg, dtype), MLP(sg, dtype), MLP(torch, dtype)
    eager_opt = OPTIMIZERS[name](sg, eager_model.parameters())
    opt = OPTIMIZERS[name](sg, model.parameters())
    step = sg.compile_step(model, mse, opt)
    compiled = [step(x, y) for x, y in (batches[k % len(batches)] for k in range(30))]
    assert all(isinstance(v, float) for v in compiled)
    eager = eager_losses(sg, eager_model, eager_opt, batches, 30)
    theirs = eager_losses(torch, torch_model, OPTIMIZERS[name](torch, torch_model.parameters()), batches, 30)
    np.testing.assert_allclose(compiled, eager, rtol=TOL[dtype])
    np.testing.assert_allclose(compiled, theirs, rtol=1e-4 if dtype == np.float32 else 1e-8)
    assert compiled[-1] < 0.8 * compiled[0]             # it trains
    for (key, p), q in zip(model.named_parameters(), eager_model.parameters()):
        assert p.dtype == dtype
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=TOL[dtype] * 10,
                                   atol=TOL[dtype], err_msg=key)
    ours, reference = _state(opt), _state(eager_opt)
    assert ours.keys() == reference.keys() == {0, 1, 2, 3}
    for i in reference:
        assert ours[i].keys() == reference[i].keys()
        for key in reference[i]:
            np.testing.assert_allclose(ours[i][key], reference[i][key], rtol=TOL[dtype] * 10,
                                       atol=TOL[dtype], err_msg=f"{i} {key}")
    assert opt.state_dict()["param_groups"] == eager_opt.state_dict()["param_groups"]


@pytest.mark.parametrize("name", ["sgd-nesterov-decay", "adamw-amsgrad", "rmsprop-centered-momentum",
                                  "adagrad-decay"])
def test_other_options_follow_the_eager_loop_and_torch(name):
    batches = _batches(np.float64, seed=3)
    model, eager_model = MLP(sg, np.float64, seed=2), MLP(sg, np.float64, seed=2)
    torch_model = MLP(torch, np.float64, seed=2)
    opt, eager_opt = OPTIMIZERS[name](sg, model.parameters()), OPTIMIZERS[name](sg, eager_model.parameters())
    step = sg.compile_step(model, mse, opt)
    compiled = [step(*batches[k % 4]) for k in range(20)]
    np.testing.assert_allclose(compiled, eager_losses(sg, eager_model, eager_opt, batches, 20), rtol=1e-10)
    theirs = eager_losses(torch, torch_model, OPTIMIZERS[name](torch, torch_model.parameters()), batches, 20)
    np.testing.assert_allclose(compiled, theirs, rtol=1e-8)
    for p, q, t in zip(model.parameters(), eager_model.parameters(), torch_model.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(p.detach().numpy(), t.detach().numpy(), rtol=1e-8, atol=1e-10)


def test_parameters_and_state_are_updated_in_place_and_the_c_is_one_function():
    model = MLP(sg, np.float32)
    storage = [p.detach().numpy() for p in model.parameters()]
    before = [a.copy() for a in storage]
    opt = sg.optim.Adam(model.parameters(), lr=0.01)
    step = sg.compile_step(model, mse, opt)
    with pytest.raises(RuntimeError, match="first call"):
        step.source
    x, y = _batches(np.float32, 1)[0]
    step(x, y)
    for p, arr, old in zip(model.parameters(), storage, before):
        assert p.detach().numpy() is arr and not np.array_equal(arr, old)     # written over, same array
    exp_avg = opt.state[model.params["fc1.weight"]]["exp_avg"].numpy()
    step(x, y)
    assert opt.state[model.params["fc1.weight"]]["exp_avg"].numpy() is exp_avg
    assert float(opt.state[model.params["fc1.bias"]]["step"]) == 2.0
    src = step.source
    assert src.count("int symgrad_forward(") == 1 and "updated in place" in src
    assert "fc1_weight" in src and "fc1_weight_exp_avg_sq" in src
    assert "float *restrict fc1_weight," in src        # the parameter is written, not copied


def test_a_scheduler_changes_the_rate_without_recompiling():
    batches = _batches(np.float32)
    runs = []
    for compiled in (True, False):
        model = MLP(sg, np.float32, seed=4)
        opt = sg.optim.SGD(model.parameters(), lr=0.2, momentum=0.5)
        sched = sg.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.1)
        step = sg.compile_step(model, mse, opt) if compiled else None
        losses, fns = [], set()
        for k in range(12):
            if compiled:
                losses.append(step(*batches[k % 4]))
                fns.add(id(step.fn))
            else:
                losses += eager_losses(sg, model, opt, batches[k % 4:k % 4 + 1], 1)
            sched.step()
        runs.append((losses, fns, model.params["fc2.bias"].detach().numpy().copy()))
    (compiled, fns, bias), (eager, _, eager_bias) = runs
    np.testing.assert_allclose(compiled, eager, rtol=1e-5)
    np.testing.assert_allclose(bias, eager_bias, rtol=1e-5, atol=1e-7)
    assert len(fns) == 1
    # with the rate fixed at 0.2 the run differs: the scheduler's rate did reach the C
    model = MLP(sg, np.float32, seed=4)
    fixed = sg.compile_step(model, mse, sg.optim.SGD(model.parameters(), lr=0.2, momentum=0.5))
    assert not np.allclose([fixed(*batches[k % 4]) for k in range(12)], compiled, rtol=1e-3)


def test_eager_and_compiled_steps_share_the_optimizer_state():
    batches = _batches(np.float64)
    model, reference = MLP(sg, np.float64, seed=6), MLP(sg, np.float64, seed=6)
    opt = sg.optim.Adam(model.parameters(), lr=0.02)
    ref_opt = sg.optim.Adam(reference.parameters(), lr=0.02)
    expected = eager_losses(sg, reference, ref_opt, batches, 12)
    got = eager_losses(sg, model, opt, batches, 4)
    step = sg.compile_step(model, mse, opt)
    got += [step(*batches[k % 4]) for k in range(4, 8)]
    got += eager_losses(sg, model, opt, [batches[k % 4] for k in range(8, 12)], 4)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    assert float(opt.state[model.params["fc1.weight"]]["step"]) == 12.0
    # the state loads into torch and carries on as ours does
    tmodel = MLP(torch, np.float64, seed=6)
    for p, q in zip(tmodel.parameters(), model.parameters()):
        p.data.copy_(torch.from_numpy(q.detach().numpy().copy()))
    topt = torch.optim.Adam(tmodel.parameters(), lr=0.02)
    sd = opt.state_dict()
    topt.load_state_dict({"state": {i: {k: torch.tensor(v.numpy()) for k, v in s.items()}
                                    for i, s in sd["state"].items()}, "param_groups": sd["param_groups"]})
    np.testing.assert_allclose([step(*batches[k % 4]) for k in range(3)],
                               eager_losses(torch, tmodel, topt, batches, 3), rtol=1e-8)


def _between_steps(T, model, opt, k, saved):
    """What a training loop may do to the model and the optimizer between two steps, written
    once for symgrad and torch: rebind a parameter's data, replace a state buffer, change a
    step count in place, load a saved optimizer state (a snapshot, and the live state_dict,
    whose values are the optimizer's own and have moved on since)."""
    w, b = model.params["fc1.weight"], model.params["fc2.bias"]
    if k == 1:
        saved.append(copy.deepcopy(opt.state_dict()))
    elif k == 2:
        saved.append(opt.state_dict())
    elif k == 3:
        w.data = T.tensor(np.full(tuple(w.shape), 0.05))
    elif k == 5:
        opt.state[b]["exp_avg"] = T.zeros_like(b)
    elif k == 6:
        opt.state[w]["step"].fill_(1.0)
    elif k == 8:
        opt.load_state_dict(saved[1])
    elif k == 9:
        opt.load_state_dict(saved[0])


def test_what_the_loop_changes_between_compiled_steps_reaches_the_next_one():
    batches = _batches(np.float64)
    runs = {}
    for T in (sg, torch):
        model = MLP(T, np.float64, seed=8)
        opt = T.optim.Adam(model.parameters(), lr=0.02)
        step = sg.compile_step(model, mse, opt) if T is sg else None
        losses, saved = [], []
        for k in range(12):
            if T is sg:
                losses.append(step(*batches[k % 4]))
            else:
                losses += eager_losses(torch, model, opt, batches[k % 4:k % 4 + 1], 1)
            _between_steps(T, model, opt, k, saved)
        runs[T] = (losses, [p.detach().numpy().copy() for p in model.parameters()],
                   float(opt.state[model.params["fc1.weight"]]["step"]))
    (ours, our_params, our_step), (theirs, their_params, their_step) = runs[sg], runs[torch]
    np.testing.assert_allclose(ours, theirs, rtol=1e-8)
    for p, q in zip(our_params, their_params):
        np.testing.assert_allclose(p, q, rtol=1e-8, atol=1e-12)
    assert our_step == their_step


def test_a_change_of_structure_recompiles_and_still_follows_the_eager_loop():
    batches = _batches(np.float64)
    model, eager_model = MLP(sg, np.float64, seed=8), MLP(sg, np.float64, seed=8)
    opt, eager_opt = (sg.optim.SGD(m.parameters(), lr=0.1) for m in (model, eager_model))
    step = sg.compile_step(model, mse, opt)
    got = [step(*batches[0]), step(*batches[1])]
    first = step.fn
    opt.param_groups[0]["momentum"] = 0.9
    got += [step(*batches[2]), step(*batches[3])]
    assert step.fn is not first
    expected = eager_losses(sg, eager_model, eager_opt, batches[:2], 2)
    eager_opt.param_groups[0]["momentum"] = 0.9
    expected += eager_losses(sg, eager_model, eager_opt, batches[2:], 2)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    assert "momentum_buffer" in opt.state[model.params["fc1.bias"]]


def test_the_interpreter_backend_runs_the_same_step():
    batches = _batches(np.float64)
    model, compiled_model = MLP(sg, np.float64, seed=9), MLP(sg, np.float64, seed=9)
    interp = sg.compile_step(model, mse, sg.optim.Adam(model.parameters(), lr=0.05), backend="interp")
    c = sg.compile_step(compiled_model, mse, sg.optim.Adam(compiled_model.parameters(), lr=0.05))
    np.testing.assert_allclose([interp(*batches[k]) for k in range(4)], [c(*batches[k]) for k in range(4)],
                               rtol=1e-10)


def test_bad_inputs_are_clear_errors_and_leave_the_step_count_alone():
    model = MLP(sg, np.float32)
    opt = sg.optim.Adam(model.parameters())
    step = sg.compile_step(model, mse, opt)
    x, y = _batches(np.float32, 1)[0]
    with pytest.raises(ValueError, match=r"\(32, 5\).*\(6, 16\)"):
        step(x[:, :5], y)                   # the model cannot take it: the trace fails
    assert len(opt.state) == 0              # and no step (no state) happened
    step(x, y)
    with pytest.raises(ValueError, match=r"input0.*expects shape \(32, 6\), got \(31, 6\)"):
        step(x[:31], y)
    with pytest.raises(TypeError, match=r"target.*expects dtype float32, got float64"):
        step(x, y.astype(np.float64))
    with pytest.raises(TypeError, match="takes"):
        step(x)
    assert float(opt.state[model.params["fc1.weight"]]["step"]) == 1.0
    step(x, y)
    assert float(opt.state[model.params["fc1.weight"]]["step"]) == 2.0
    with pytest.raises(TypeError, match="symgrad.optim optimizer"):
        sg.compile_step(model, mse, torch.optim.SGD([torch.ones(1, requires_grad=True)], lr=0.1))
    bad = sg.compile_step(model, lambda out, target: out - target, opt)
    with pytest.raises(ValueError, match="loss_fn must return one number"):
        bad(x, y)
    outsider = MLP(sg, np.float32, seed=1)
    with pytest.raises(ValueError, match="none of the model's parameters is in the optimizer"):
        sg.compile_step(outsider, mse, opt)(x, y)


class Scaled(MLP):
    """A model with a frozen parameter and a buffer, and a forward that depends on its mode."""

    def __init__(self, T, dtype):
        super().__init__(T, dtype, seed=10)
        self.scale = T.tensor(np.array(0.5, dtype))              # frozen: requires_grad=False
        self.shift = T.tensor(np.zeros(3, dtype))                # a buffer
        self.training = True

    def named_parameters(self):
        return super().named_parameters() + [("scale", self.scale)]

    def named_buffers(self):
        return [("shift", self.shift)]

    def __call__(self, x):
        out = super().__call__(x) * self.scale + self.shift
        return out if self.training else out * 2.0


def test_frozen_parameters_buffers_and_the_mode_are_read_at_every_call():
    batches = _batches(np.float64)
    runs = []
    for compiled in (True, False):
        model = Scaled(sg, np.float64)
        opt = sg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        step = sg.compile_step(model, mse, opt) if compiled else None
        losses = []
        for k in range(6):
            if k == 2:
                model.scale.data = np.array(1.5)                 # replaced between steps
                model.shift.numpy()[...] = 0.25                  # changed in place
            if k == 4:
                model.training = False
            batch = batches[k % 4]
            losses += [step(*batch)] if compiled else eager_losses(sg, model, opt, [batch], 1)
        runs.append(losses)
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-10)
    assert float(model.scale) == 1.5                             # not trained


class WithSpare(MLP):
    """A parameter the loss never reaches: the eager step skips it (its grad stays None)."""

    def __init__(self, T, dtype):
        super().__init__(T, dtype, seed=11)
        self.spare = T.tensor(np.ones(3, dtype), requires_grad=True)

    def named_parameters(self):
        return super().named_parameters() + [("spare", self.spare)]

    def parameters(self):
        return super().parameters() + [self.spare]


def test_a_parameter_without_gradient_is_left_alone_as_the_eager_step_leaves_it():
    batches = _batches(np.float64)
    runs = []
    for compiled in (True, False):
        model = WithSpare(sg, np.float64)
        opt = sg.optim.AdamW(model.parameters(), lr=0.05, weight_decay=0.5)
        if compiled:
            step = sg.compile_step(model, mse, opt)
            losses = [step(*batches[k]) for k in range(4)]
        else:
            losses = eager_losses(sg, model, opt, batches, 4)
        np.testing.assert_array_equal(model.spare.detach().numpy(), 1.0)        # decay would have moved it
        assert model.spare not in opt.state and sorted(opt.state_dict()["state"]) == [0, 1, 2, 3]
        runs.append(losses)
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-10)
