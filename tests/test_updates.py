"""Buffers that alias: `sg.compile(..., updates={input: new value})` writes new values over the
caller's arrays in place, after the outputs are computed from the old values (PyTensor's
`updates`). Compiled C, the interpreter and numpy/PyTorch agree, swaps and transposes included."""
from __future__ import annotations

import numpy as np
import pytest

import symgrad as sg

BACKENDS = ["c", "interp"]


def _regression():
    x = sg.Variable(shape=(64, 8), name="x")
    y = sg.Variable(shape=(64,), name="y")
    w = sg.Variable(shape=(8,), name="w", requires_grad=True)
    b = sg.Variable(shape=(), name="b", requires_grad=True)
    loss = sg.mse_loss(sg.tanh(x @ w + b), y)
    gw, gb = sg.grad(loss, [w, b])
    return [x, y, w, b], loss, {w: w - 0.5 * gw, b: b - 0.5 * gb}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_training_loop_updates_parameters_in_place_as_torch_does(backend):
    torch = pytest.importorskip("torch")
    inputs, loss, updates = _regression()
    fn = sg.compile(inputs, loss, updates=updates, backend=backend)
    rng = np.random.default_rng(1)
    xv, yv = rng.normal(size=(64, 8)).astype(np.float32), rng.uniform(-0.5, 0.5, 64).astype(np.float32)
    wv, bv = np.zeros(8, np.float32), np.zeros((), np.float32)
    wt = torch.zeros(8, requires_grad=True)
    bt = torch.zeros((), requires_grad=True)
    opt = torch.optim.SGD([wt, bt], lr=0.5)
    for step in range(30):
        ours = fn(xv, yv, wv, bv)
        opt.zero_grad()
        theirs = torch.nn.functional.mse_loss(torch.tanh(torch.from_numpy(xv) @ wt + bt), torch.from_numpy(yv))
        theirs.backward()
        opt.step()
        np.testing.assert_allclose(ours, theirs.item(), rtol=2e-5, err_msg=f"loss at step {step}")
    np.testing.assert_allclose(wv, wt.detach().numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(bv, bt.item(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_outputs_see_the_old_values_and_reads_after_the_update_are_kept_apart(backend):
    a = sg.Variable(shape=(5, 5), name="a")
    c = sg.Variable(shape=(5, 5), name="c")
    outs = [a * 1.0 + 0.0, (a.T * c).sum(dim=0), a.sum()]
    # a := a.T + 1 reads a across the diagonal: it cannot be written element by element in place
    fn = sg.compile([a, c], outs, updates={a: a.T + 1.0, c: c * 2.0}, backend=backend)
    rng = np.random.default_rng(2)
    av, cv = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    av, cv = av.astype(np.float32), cv.astype(np.float32)
    old_a, old_c = av.copy(), cv.copy()
    got = fn(av, cv)
    np.testing.assert_array_equal(got[0], old_a)
    np.testing.assert_allclose(got[1], (old_a.T * old_c).sum(axis=0), rtol=1e-6)
    np.testing.assert_allclose(got[2], old_a.sum(), rtol=1e-5)
    np.testing.assert_array_equal(av, old_a.T + 1.0)
    np.testing.assert_array_equal(cv, old_c * 2.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_swap_reads_the_old_values(backend):
    p = sg.Variable(shape=(3, 4), name="p")
    q = sg.Variable(shape=(3, 4), name="q")
    n = sg.Variable(shape=(), dtype="int64", name="n")
    fn = sg.compile([p, q, n], (p - q).sum(), updates=[(p, q), (q, p), (n, n + 1)], backend=backend)
    pv, qv = np.arange(12, dtype=np.float32).reshape(3, 4), -np.ones((3, 4), np.float32)
    nv = np.zeros((), np.int64)
    for _ in range(3):
        old_p, old_q = pv.copy(), qv.copy()
        np.testing.assert_allclose(fn(pv, qv, nv), (old_p - old_q).sum())
        np.testing.assert_array_equal(pv, old_q)
        np.testing.assert_array_equal(qv, old_p)
    assert nv == 3


def test_the_update_is_one_pass_in_the_generated_code():
    inputs, loss, updates = _regression()
    src = sg.compile(inputs, loss, updates=updates).forward.source
    body = src[src.index("int symgrad_forward("):]
    assert "float *restrict w," in body and "const float *restrict w" not in body
    assert "updated in place" in body
    assert "new_" not in body          # the new value is written straight over w, no buffer of its own


def test_bad_updates_and_arguments_are_clear_errors():
    inputs, loss, updates = _regression()
    x, y, w, b = inputs
    other = sg.Variable(shape=(8,), name="other")
    with pytest.raises(ValueError, match="not among the inputs"):
        sg.compile(inputs, loss, updates={other: w})
    with pytest.raises(ValueError, match="keeps its shape"):
        sg.compile(inputs, loss, updates={w: x.sum(dim=0).sum()})
    with pytest.raises(TypeError, match=r"\(input, new value\) pair"):
        sg.compile(inputs, loss, updates=[w])
    fn = sg.compile(inputs, loss, updates=updates)
    xv, yv = np.ones((64, 8), np.float32), np.ones(64, np.float32)
    wv, bv = np.zeros(8, np.float32), np.zeros((), np.float32)
    with pytest.raises(TypeError, match=r"input 2 'w' is updated in place.*got an array of shape \(8,\) and "
                                        r"dtype float64"):
        fn(xv, yv, wv.astype(np.float64), bv)
    frozen = wv.copy()
    frozen.flags.writeable = False
    with pytest.raises(TypeError, match="got a read-only array"):
        fn(xv, yv, frozen, bv)
    with pytest.raises(TypeError, match="non-contiguous"):
        fn(xv, yv, np.zeros(16, np.float32)[::2], bv)
    with pytest.raises(TypeError, match="got a list"):
        fn(xv, yv, [0.0] * 8, bv)
    shared = np.zeros((64, 8), np.float32)
    fn2 = sg.compile([x, w], (x.sum(dim=0) * w).sum(), updates={x: x * 2.0})
    with pytest.raises(ValueError, match="shares memory"):
        fn2(shared, shared[0])
    # the check is skipped only for the very arrays of a call that passed it
    alone, row = np.ones((64, 8), np.float32), np.ones(8, np.float32)
    for _ in range(2):
        fn2(alone, row)
        with pytest.raises(ValueError, match="shares memory"):
            fn2(alone, alone[3])                 # one argument new: checked again
        first = shared[0]
        for _ in range(2):                       # the same overlapping pair, twice
            with pytest.raises(ValueError, match="shares memory"):
                fn2(shared, first)
    # the very array of the call before, changed in place since: checked again
    fn2(alone, row)
    alone.shape = (8, 64)
    with pytest.raises(TypeError, match=r"shape \(64, 8\).*got an array of shape \(8, 64\)"):
        fn2(alone, row)
    alone.shape = (64, 8)
    alone.flags.writeable = False
    with pytest.raises(TypeError, match="got a read-only array"):
        fn2(alone, row)
    alone.flags.writeable = True
    fn2(alone, row)
    # value_and_grad and backward do not update
    fn.value_and_grad(xv, yv, wv, bv)
    np.testing.assert_array_equal(wv, 0.0)
