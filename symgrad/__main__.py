"""`python -m symgrad demo`: the tutorials' examples, then a graph compiled to C.
`python -m symgrad cache info|clear|prune --max-bytes N`: the build cache."""
from __future__ import annotations

import argparse
import inspect
import sys


def _show(step) -> None:
    """Print a step's code (its body, as written below), then run it: its output follows."""
    lines = [line for line in inspect.getsource(step).splitlines()[1:] if "_STATE" not in line]
    print("\n".join(">>> " + line[4:] if line.strip() else ">>>" for line in lines))
    step()


def _tutorial():
    import symgrad as torch                      # the tutorial's program; only the import changed
    from symgrad.autograd import Variable
    x = Variable(torch.ones(2, 2), requires_grad=True)
    out = ((x + 2) * (x + 2) * 3).mean()
    out.backward()                               # runs compiled C, cached by the graph's structure
    print("out =", out)
    print("x.grad =", x.grad)
    print("out.grad_fn.next_functions =", out.grad_fn.next_functions)


def _control_flow():
    import symgrad as torch
    torch.manual_seed(0)
    x = torch.randn(3, requires_grad=True)
    y = x * 2
    while y.data.norm() < 1000:                  # Python control flow on the values
        y = y * 2
    y.backward(torch.tensor([0.1, 1.0, 0.0001]))
    print("x.grad =", x.grad)


_STATE = {}


def _graph():
    import symgrad as sg
    xs = sg.Variable(shape=(256, 784), name="x")
    labels = sg.Variable(shape=(256,), dtype="int64", name="labels")
    W1 = sg.Variable(shape=(784, 128), name="W1", requires_grad=True)
    b1 = sg.Variable(shape=(128,), name="b1", requires_grad=True)
    W2 = sg.Variable(shape=(128, 10), name="W2", requires_grad=True)
    b2 = sg.Variable(shape=(10,), name="b2", requires_grad=True)
    loss = sg.cross_entropy(sg.relu(xs @ W1 + b1) @ W2 + b2, labels)
    (db2,) = sg.grad(loss, [b2])                 # the gradient is a graph too: print it
    sg.debugprint(db2)
    _STATE.update(inputs=[xs, labels, W1, b1, W2, b2], loss=loss)      # (for the next steps)


def _compile_and_run():
    import numpy as np

    import symgrad as sg
    fn = sg.compile(_STATE["inputs"], _STATE["loss"])   # forward, backward, value_and_grad: one library
    rng = np.random.default_rng(0)
    args = [rng.standard_normal((256, 784), dtype=np.float32), rng.integers(0, 10, 256),
            (rng.standard_normal((784, 128)) * 0.05).astype(np.float32), np.zeros(128, np.float32),
            (rng.standard_normal((128, 10)) * 0.05).astype(np.float32), np.zeros(10, np.float32)]
    value, grads = fn.value_and_grad(*args)      # numpy arrays in, numpy arrays out
    interp = sg.compile(_STATE["inputs"], _STATE["loss"], backend="interp")
    ref_value, ref_grads = interp.value_and_grad(*args)
    worst = max(float(np.max(np.abs(a - b))) for a, b in zip(grads, ref_grads))
    print(f"loss {float(value):.6f}; the interpreter's {float(ref_value):.6f}; gradients within {worst:.1e}")
    _STATE["fn"] = fn


def _where_the_code_is():
    from symgrad import build
    fn = _STATE["fn"]
    print("the library's source:", fn.value_and_grad.path)
    print("compiled by:", build.c_compiler(), " ".join(build.c_flags()))
    print("the build cache:", build.build_dir(), "(python -m symgrad cache info)")


def _a_fused_loop():
    fn = _STATE["fn"]
    lines = fn.backward.source.splitlines()
    # a loop nest's comment is the formula it computes, down to the buffers it reads
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("/*") and " = " in line
              and any(ln.strip().startswith(("for (", "#pragma omp")) for ln in lines[i + 1:i + 3]))
    print("\n".join(lines[at:at + 18]))


def _second_derivative():
    import symgrad as sg
    t = sg.tensor([0.5, 1.0, 2.0], requires_grad=True)
    (g,) = sg.grad((sg.tanh(t) * t).sum(), t)
    (h,) = sg.grad(g.sum(), t)
    print("d/dt sum(t tanh t)   =", g)
    print("d2/dt2 sum(t tanh t) =", h)


def demo() -> None:
    """Each step prints its code, then its result."""
    steps = [("1. PyTorch's autograd tutorial, with `import symgrad as torch`", _tutorial),
             ("2. Python control flow on values", _control_flow),
             ("3. A symbolic graph: an MLP's loss, and the graph of one of its gradients", _graph),
             ("4. Compiled to C and run, checked against the numpy interpreter", _compile_and_run),
             ("5. Where the generated C is, and how it was compiled", _where_the_code_is),
             ("6. A fused loop of the backward pass, with its comment", _a_fused_loop),
             ("7. Second derivatives are graphs too", _second_derivative)]
    for title, step in steps:
        print(f"\n== {title} ==")
        _show(step)


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
