"""`python -m symgrad demo`: the tutorials' examples, then a graph compiled to C.
`python -m symgrad cache info|clear|prune --max-bytes N`: the build cache."""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def demo() -> None:
    import symgrad as torch                      # the tutorials' programs, imports changed
    from symgrad.autograd import Variable
    import symgrad as sg

    print("== 1. The PyTorch autograd tutorial, on symgrad ==")
    x = Variable(torch.ones(2, 2), requires_grad=True)
    y = x + 2
    z = y * y * 3
    out = z.mean()
    print("y =", y)
    print("out =", out)
    out.backward()
    print("d(out)/dx =", x.grad)
    print("out.grad_fn.next_functions =", out.grad_fn.next_functions)

    torch.manual_seed(0)
    x = Variable(torch.randn(3), requires_grad=True)
    y = x * 2
    while y.data.norm() < 1000:                  # Python control flow on values
        y = y * 2
    y.backward(torch.FloatTensor([0.1, 1.0, 0.0001]))
    print("x.grad after the while loop =", x.grad)

    print("\n== 2. A graph, its gradient graph, and the C generated for both ==")
    xs = sg.Variable(shape=(256, 784), name="x")
    labels = sg.Variable(shape=(256,), dtype="int64", name="labels")
    W1 = sg.Variable(shape=(784, 128), name="W1", requires_grad=True)
    b1 = sg.Variable(shape=(128,), name="b1", requires_grad=True)
    W2 = sg.Variable(shape=(128, 10), name="W2", requires_grad=True)
    b2 = sg.Variable(shape=(10,), name="b2", requires_grad=True)
    h = sg.relu(xs @ W1 + b1)
    loss = sg.cross_entropy(h @ W2 + b2, labels)
    loss.name = "loss"
    start = time.perf_counter()
    fn = sg.compile([xs, labels, W1, b1, W2, b2], loss)
    fn.value_and_grad.path                      # noqa: B018  (waits for nothing; shows it exists)
    rng = np.random.default_rng(0)
    args = [rng.standard_normal((256, 784), dtype=np.float32), rng.integers(0, 10, 256),
            (rng.standard_normal((784, 128)) * 0.05).astype(np.float32), np.zeros(128, np.float32),
            (rng.standard_normal((128, 10)) * 0.05).astype(np.float32), np.zeros(10, np.float32)]
    value, grads = fn.value_and_grad(*args)
    print(f"compiled and ran forward+backward of a 784-128-10 MLP in "
          f"{1e3 * (time.perf_counter() - start):.0f} ms (cached after the first run)")
    print(f"loss = {float(value):.6f}")
    for name, g in zip(["W1", "b1", "W2", "b2"], grads):
        print(f"  d loss/d {name}: shape {g.shape}, norm {np.linalg.norm(g):.6f}")
    interp = sg.compile([xs, labels, W1, b1, W2, b2], loss, backend="interp")
    ref_value, ref_grads = interp.value_and_grad(*args)
    worst = max(float(np.max(np.abs(a - b))) for a, b in zip(grads, ref_grads))
    print(f"numpy reference interpreter agrees: loss {float(ref_value):.6f}, largest gradient "
          f"difference {worst:.2e}")
    print("\nthe generated C (forward, backward and value_and_grad: one library, one compiler run) is here:")
    print("  ", fn.forward.path)
    lines = fn.backward.source.splitlines()
    start_at = next(i for i, line in enumerate(lines) if line.startswith("int symgrad_backward("))
    print("\nthe first lines of the backward function:\n")
    print("\n".join("    " + line for line in lines[start_at:start_at + 24]))
    print("    ...")

    print("\n== 3. Second derivatives are graphs too ==")
    t = Variable(torch.tensor([0.5, 1.0, 2.0]), requires_grad=True)
    f = (torch.tanh(t) * t).sum()
    (g,) = sg.grad(f, t)
    (h2,) = sg.grad(g.sum(), t)
    print("d/dt sum(t tanh t)     =", g)
    print("d2/dt2 sum(t tanh t)   =", h2)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["cache"]:                  # symgrad cache info|clear|prune --max-bytes N
        from symgrad.cache import main as cache_main
        return cache_main(argv[1:])
    parser = argparse.ArgumentParser(prog="symgrad", description=__doc__ + "\n`python -m symgrad cache "
                                     "info|clear|prune --max-bytes N`: the build cache.")
    parser.add_argument("command", nargs="?", default="demo", choices=["demo", "cache"])
    parser.parse_args(argv)
    demo()
    return 0


if __name__ == "__main__":
    sys.exit(main())
