"""Train a 64-128-10 MLP with Adam on scikit-learn's digits (8x8 images of handwritten digits,
1797 of them, loaded from the installed package: no download), three ways from the same
initial weights and the same batches:

  - symgrad eager         (optimizer.zero_grad(); loss.backward(); optimizer.step())
  - symgrad compile_step  (forward, backward and Adam's update in one compiled C call)
  - PyTorch eager         (the same loop with torch.nn and torch.optim.Adam; if torch is installed)

For each it prints the final test accuracy and the training steps per second (the first
step, which traces and compiles, is timed apart from the others).

    python examples/train_digits.py [--steps 200] [--lr 1e-2] [--seed 0] [--activation relu]

Needs scikit-learn (`pip install 'symgrad[examples]'`)."""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import symgrad as sg  # noqa: E402
from symgrad import nn  # noqa: E402

BATCH, N_HIDDEN = 128, 128


def load_data(test_fraction=0.2, seed=0):
    """(x_train, y_train, x_test, y_test): pixels scaled to [0, 1] (x / 16), float32; labels
    int64; a fixed shuffle, the last `test_fraction` of it held out as the test set."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit("examples/train_digits.py needs scikit-learn for its data set: "
                 "pip install scikit-learn (or pip install 'symgrad[examples]')")
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    n_test = int(round(len(x) * test_fraction))
    return x[:-n_test], y[:-n_test], x[-n_test:], y[-n_test:]


def batch_indices(n_train, steps, seed=0):
    """The rows of every step's batch: epochs of fixed random permutations, cut in BATCH rows."""
    rng = np.random.default_rng(seed + 1)
    rows = np.concatenate([rng.permutation(n_train) for _ in range(steps * BATCH // n_train + 2)])
    return [rows[k * BATCH:(k + 1) * BATCH] for k in range(steps)]


def make_model(T, activation):
    """nn.Sequential(Linear(64, 128), ReLU or Tanh, Linear(128, 10)) of module `T` (symgrad or torch)."""
    act = {"relu": T.nn.ReLU, "tanh": T.nn.Tanh}[activation]
    return T.nn.Sequential(T.nn.Linear(64, N_HIDDEN), act(), T.nn.Linear(N_HIDDEN, 10))


def initial_state(seed, activation):
    """symgrad's default initialisation (Kaiming-uniform, as PyTorch's) under sg.manual_seed,
    as numpy arrays: every run loads these."""
    sg.manual_seed(seed)
    model = make_model(sg, activation)
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def _timed_loop(step, batches):
    """Run `step(rows)` over the batches: (loss after the last step, first step's seconds,
    steps per second over the others)."""
    start = time.perf_counter()
    loss = step(batches[0])
    first = time.perf_counter() - start
    start = time.perf_counter()
    for rows in batches[1:]:
        loss = step(rows)
    rest = time.perf_counter() - start
    return float(loss), first, (len(batches) - 1) / rest if rest > 0 else float("inf")


def run_symgrad(data, state, batches, lr, activation, compiled):
    x_train, y_train, x_test, y_test = data
    model = make_model(sg, activation)
    model.load_state_dict(state)
    optimizer = sg.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    if compiled:
        train_step = sg.compile_step(model, loss_fn, optimizer)

        def step(rows):
            return train_step(x_train[rows], y_train[rows])
    else:
        def step(rows):
            optimizer.zero_grad()
            loss = loss_fn(model(sg.tensor(x_train[rows])), sg.tensor(y_train[rows]))
            loss.backward()
            optimizer.step()
            return loss.item()
    loss, first, rate = _timed_loop(step, batches)
    with sg.no_grad():
        predicted = model(sg.tensor(x_test)).numpy().argmax(1)
    return loss, float((predicted == y_test).mean()), first, rate


def run_torch(data, state, batches, lr, activation):
    import torch
    x_train, y_train, x_test, y_test = data
    model = make_model(torch, activation)
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()})
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)

    def step(rows):
        index = torch.from_numpy(rows)
        optimizer.zero_grad()
        loss = loss_fn(model(xt[index]), yt[index])
        loss.backward()
        optimizer.step()
        return loss.item()
    loss, first, rate = _timed_loop(step, batches)
    with torch.no_grad():
        predicted = model(torch.from_numpy(x_test)).numpy().argmax(1)
    return loss, float((predicted == y_test).mean()), first, rate


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--activation", choices=("relu", "tanh"), default="relu")
    parser.add_argument("--skip-torch", action="store_true", help="leave out the PyTorch run")
    args = parser.parse_args(argv)
    data = load_data(seed=args.seed)
    state = initial_state(args.seed, args.activation)
    batches = batch_indices(len(data[0]), args.steps, args.seed)
    print(f"digits: {len(data[0])} train, {len(data[2])} test images; MLP 64-{N_HIDDEN}-10 "
          f"({args.activation}), Adam lr={args.lr}, batch {BATCH}, {args.steps} steps")
    common = (data, state, batches, args.lr, args.activation)
    runs = [("symgrad eager", lambda: run_symgrad(*common, compiled=False)),
            ("symgrad compile_step", lambda: run_symgrad(*common, compiled=True))]
    if not args.skip_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("PyTorch eager: skipped (torch is not installed)")
        else:
            runs.append(("PyTorch eager", lambda: run_torch(*common)))
    for name, run in runs:
        loss, accuracy, first, rate = run()
        print(f"{name:21s} test accuracy {accuracy:.4f}   final loss {loss:.4f}   "
              f"{rate:8.1f} steps/s   (first step {first * 1e3:.0f} ms)")


if __name__ == "__main__":
    main()
