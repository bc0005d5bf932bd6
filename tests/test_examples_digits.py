"""examples/train_digits.py, and what it relies on without scikit-learn: an nn.Sequential MLP
trained with nn.CrossEntropyLoss and Adam gives the same losses and weights step by step
eagerly, through sg.compile_step and in PyTorch (the oracle), from the same initial weights."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

import symgrad as sg

torch = pytest.importorskip("torch")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "train_digits.py")


def blobs(dtype, n=96, n_in=5, n_classes=4, seed=0):
    """Gaussian blobs: `n_classes` centres, unit-variance points around them, and their labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, n_in)) * 2.0
    y = rng.integers(0, n_classes, n)
    x = centres[y] + rng.normal(size=(n, n_in))
    return x.astype(dtype), y.astype(np.int64)


def make_model(T, dtype, activation):
    act = {"relu": T.nn.ReLU, "tanh": T.nn.Tanh}[activation]
    model = T.nn.Sequential(T.nn.Linear(5, 16), act(), T.nn.Linear(16, 4))
    return model.double() if dtype == np.float64 else model


def initial_state(dtype, seed=3):
    rng = np.random.default_rng(seed)
    shapes = {"0.weight": (16, 5), "0.bias": (16,), "2.weight": (4, 16), "2.bias": (4,)}
    return {k: (rng.normal(size=s) * 0.5).astype(dtype) for k, s in shapes.items()}


def train(T, dtype, activation, compiled=False, steps=30, batch=32):
    """Losses of `steps` Adam steps over batches cut from the blobs, and the final weights."""
    x, y = blobs(dtype)
    model = make_model(T, dtype, activation)
    state = initial_state(dtype)
    model.load_state_dict({k: T.tensor(v.copy()) for k, v in state.items()})
    opt = T.optim.Adam(model.parameters(), lr=0.02)
    loss_fn = T.nn.CrossEntropyLoss()
    step = sg.compile_step(model, loss_fn, opt) if compiled else None
    losses = []
    for k in range(steps):
        rows = slice((k * batch) % len(x), (k * batch) % len(x) + batch)
        if compiled:
            losses.append(step(x[rows], y[rows]))
            continue
        opt.zero_grad()
        loss = loss_fn(model(T.tensor(x[rows])), T.tensor(y[rows]))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    weights = {k: np.array(v.detach().numpy()) for k, v in model.state_dict().items()}
    return losses, weights


@pytest.mark.parametrize("dtype, activation", [(np.float32, "relu"), (np.float64, "tanh")],
                         ids=["float32-relu", "float64-tanh"])
def test_sequential_adam_compile_step_follows_the_eager_loop_and_torch(dtype, activation):
    rtol = 1e-5 if dtype == np.float32 else 1e-10
    compiled, compiled_w = train(sg, dtype, activation, compiled=True)
    eager, eager_w = train(sg, dtype, activation)
    theirs, torch_w = train(torch, dtype, activation)
    np.testing.assert_allclose(compiled, eager, rtol=rtol)
    np.testing.assert_allclose(eager, theirs, rtol=10 * rtol)
    assert compiled[-1] < 0.5 * compiled[0]            # it does learn the blobs
    assert compiled_w.keys() == torch_w.keys() == {"0.weight", "0.bias", "2.weight", "2.bias"}
    for key in torch_w:
        assert compiled_w[key].dtype == dtype
        np.testing.assert_allclose(compiled_w[key], eager_w[key], rtol=10 * rtol, atol=rtol, err_msg=key)
        np.testing.assert_allclose(compiled_w[key], torch_w[key], rtol=100 * rtol, atol=10 * rtol,
                                   err_msg=key)


RESULT = re.compile(r"^(symgrad eager|symgrad compile_step|PyTorch eager)\s+test accuracy ([0-9.]+)"
                    r"\s+final loss ([0-9.]+)\s+([0-9.]+) steps/s", re.M)


def test_the_digits_example_reaches_95_percent_in_200_steps(tmp_path):
    pytest.importorskip("sklearn")
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.setdefault("SYMGRAD_BUILD_DIR", str(tmp_path / "build"))
    done = subprocess.run([sys.executable, EXAMPLE], capture_output=True, text=True, timeout=300,
                          env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    results = {name: (float(acc), float(loss), float(rate)) for name, acc, loss, rate in
               RESULT.findall(done.stdout)}
    assert results.keys() == {"symgrad eager", "symgrad compile_step", "PyTorch eager"}, done.stdout
    assert "200 steps" in done.stdout and "359 test images" in done.stdout
    for name in ("symgrad eager", "symgrad compile_step"):
        accuracy, loss, rate = results[name]
        assert accuracy >= 0.95, done.stdout
        assert rate > 0
        # the same weights and batches as PyTorch's run: within two test images and its final loss
        assert abs(accuracy - results["PyTorch eager"][0]) <= 2 / 359 + 1e-9, done.stdout
        assert loss == pytest.approx(results["PyTorch eager"][1], abs=2e-3), done.stdout


def test_the_digits_example_names_scikit_learn_when_it_is_missing(tmp_path):
    """With sklearn hidden (a module path entry that makes `import sklearn` fail), the example
    exits non-zero with a message saying what to install."""
    blocker = tmp_path / "sklearn"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('hidden for the test')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), ROOT]))
    done = subprocess.run([sys.executable, EXAMPLE, "--steps", "2"], capture_output=True, text=True,
                          timeout=120, env=env, cwd=ROOT)
    assert done.returncode != 0
    assert "scikit-learn" in done.stderr and "pip install" in done.stderr
    assert "Traceback" not in done.stderr
