"""Custom `autograd.Function`s (SPEC §7), written once against a module `T` as PyTorch's
tutorials write them, run with `T = torch` and `T = symgrad`: outputs, gradients, double
backward, grad_fn names, several outputs, non-differentiable outputs, non-Variable arguments
and ctx attributes. Then the same functions inside `sg.compile` (C against the interpreter),
`gradcheck`/`gradgradcheck` on right and wrong backwards, and the errors."""
from __future__ import annotations

import re

import numpy as np
import pytest

import symgrad as sg
from conftest import value

R = np.random.default_rng(12)
X3 = R.uniform(-1.0, 1.0, 3)
X23 = R.uniform(-1.0, 1.0, (2, 3))
W3 = R.uniform(0.5, 1.5, 3)
SEEN = []      # what a backward was given, recorded for the comparison


def functions(T):
    """The custom Functions of these tests, defined against module `T` (a class per module)."""

    class MyExp(T.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            y = x.exp()
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, grad):
            (y,) = ctx.saved_tensors
            return grad * y

    class MyReLU(T.autograd.Function):          # PyTorch's examples_autograd tutorial's
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.clamp(min=0)

        @staticmethod
        def backward(ctx, grad_output):
            (x,) = ctx.saved_tensors
            grad_input = grad_output.clone()
            grad_input = grad_input * (x > 0).to(grad_input.dtype)
            return grad_input

    class LegendrePolynomial3(T.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return 0.5 * (5 * x ** 3 - 3 * x)

        @staticmethod
        def backward(ctx, grad_output):
            (x,) = ctx.saved_tensors
            return grad_output * 1.5 * (5 * x ** 2 - 1)

    class ScaledMul(T.autograd.Function):       # a number argument, and an attribute of ctx
        @staticmethod
        def forward(ctx, a, b, scale):
            ctx.scale = scale
            ctx.save_for_backward(a, b)
            return a * b * scale

        @staticmethod
        def backward(ctx, grad):
            a, b = ctx.saved_tensors
            ga = grad * b * ctx.scale if ctx.needs_input_grad[0] else None
            gb = grad * a * ctx.scale if ctx.needs_input_grad[1] else None
            return ga, gb, None

    class SinCos(T.autograd.Function):          # two outputs
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.sin(), x.cos()

        @staticmethod
        def backward(ctx, gs, gc):
            (x,) = ctx.saved_tensors
            return gs * x.cos() - gc * x.sin()

    class MaxWithIndex(T.autograd.Function):    # an integer output, marked non-differentiable
        @staticmethod
        def forward(ctx, x):
            values, idx = x.max(dim=1)
            ctx.mark_non_differentiable(idx)
            ctx.save_for_backward(x, idx)
            return values, idx

        @staticmethod
        def backward(ctx, g, g_idx):
            x, idx = ctx.saved_tensors
            SEEN.append((str(g_idx.dtype).split(".")[-1], tuple(g_idx.shape), g_idx.sum().item()))
            hot = (T.arange(x.shape[1]).unsqueeze(0) == idx.unsqueeze(1)).to(x.dtype)
            return g.unsqueeze(1) * hot

    class Broadcasting(T.autograd.Function):    # backward returns a broadcast gradient: summed
        @staticmethod
        def forward(ctx, x, bias):
            return x + bias

        @staticmethod
        def backward(ctx, grad):
            return grad, grad

    return {"MyExp": MyExp, "MyReLU": MyReLU, "Legendre": LegendrePolynomial3, "ScaledMul": ScaledMul,
            "SinCos": SinCos, "MaxWithIndex": MaxWithIndex, "Broadcasting": Broadcasting}


PROGRAMS = {}


def program(fn):
    PROGRAMS[fn.__name__] = fn
    return fn


def leaf(T, a):
    return T.tensor(np.array(a), requires_grad=True)


@program
def exp_backward_and_double_backward(T):
    F = functions(T)["MyExp"]
    x = leaf(T, X3)
    y = F.apply(x)
    (y * T.tensor(W3)).sum().backward()
    (g,) = T.autograd.grad(F.apply(x).sum(), x, create_graph=True)
    (h,) = T.autograd.grad((g * g).sum(), x)
    return {"y": y, "x.grad": x.grad, "g": g, "h": h, "name": type(y.grad_fn).__name__,
            "requires_grad": y.requires_grad, "is_leaf": y.is_leaf}


@program
def relu_tutorial_chain(T):
    relu = functions(T)["MyReLU"].apply
    x = leaf(T, X23)
    w = leaf(T, W3)
    y = relu(x * w - 0.1).sum() + relu(x).pow(2).mean()
    y.backward()
    return {"y": y, "x.grad": x.grad, "w.grad": w.grad}


@program
def legendre_training_steps(T):
    # the examples_autograd tutorial's loop, shortened: fit a P3 polynomial by gradient descent
    P3 = functions(T)["Legendre"].apply
    xs = T.tensor(np.linspace(-1, 1, 20))
    ys = T.tensor(np.sin(np.linspace(-1, 1, 20)))
    a, b, c, d = (T.tensor(np.array(v), requires_grad=True) for v in (0.0, -1.0, 0.0, 0.3))
    for _ in range(5):
        pred = a + b * P3(c + d * xs)
        loss = (pred - ys).pow(2).sum()
        loss.backward()
        with T.no_grad():
            for p in (a, b, c, d):
                p -= 1e-3 * p.grad
                p.grad = None
    return {"loss": loss, "a": a, "b": b, "c": c, "d": d}


@program
def number_argument_and_ctx_attribute(T):
    F = functions(T)["ScaledMul"]
    a, b = leaf(T, X3), T.tensor(W3)              # b does not require grad
    y = F.apply(a, b, 2.5)
    seen = (y.grad_fn.scale, y.grad_fn.needs_input_grad, len(y.grad_fn.saved_tensors))   # grad_fn is ctx
    y.sum().backward()
    z = F.apply(T.tensor(X3), T.tensor(W3), 3.0)   # nothing requires grad: a plain result
    return {"y": y, "a.grad": a.grad, "b.grad": b.grad, "z": z, "z.requires_grad": z.requires_grad,
            "ctx": seen, "z.grad_fn": z.grad_fn is None}


@program
def two_outputs(T):
    F = functions(T)["SinCos"]
    x = leaf(T, X3)
    s, c = F.apply(x)
    (s * 2 + c * c).sum().backward()
    x2 = leaf(T, X3)
    s2, _ = F.apply(x2)                           # one output unused: its gradient is zeros
    s2.sum().backward()
    return {"s": s, "c": c, "x.grad": x.grad, "x2.grad": x2.grad,
            "names": (type(s.grad_fn).__name__, type(c.grad_fn).__name__),
            "one grad_fn": s.grad_fn is c.grad_fn}


@program
def non_differentiable_output(T):
    F = functions(T)["MaxWithIndex"]
    x = leaf(T, X23)
    values, idx = F.apply(x)
    SEEN.clear()
    (values * values).sum().backward()
    return {"values": values, "idx": idx, "idx.requires_grad": idx.requires_grad, "x.grad": x.grad,
            "idx's gradient (dtype, shape, sum)": SEEN[0]}


@program
def broadcast_gradient_summed(T):
    F = functions(T)["Broadcasting"]
    x, bias = leaf(T, X23), leaf(T, W3)
    (F.apply(x, bias) ** 2).sum().backward()
    return {"x.grad": x.grad, "bias.grad": bias.grad}


@program
def custom_inside_ordinary_graph_second_order(T):
    F = functions(T)["Legendre"]
    x = leaf(T, X3)
    y = (T.sin(F.apply(x * 1.5)) * x).sum()
    (g,) = T.autograd.grad(y, x, create_graph=True)
    (h,) = T.autograd.grad(g.sum(), x)
    return {"y": y, "g": g, "h": h}


@program
def numpy_inside_forward_and_backward(T):
    # the shape of PyTorch's "extension with numpy" tutorial: values leave the graph and come back
    class NumpyFFT(T.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return T.tensor(np.abs(np.fft.rfft2(x.detach().numpy())), dtype=x.dtype)

        @staticmethod
        @T.autograd.function.once_differentiable
        def backward(ctx, grad_output):
            return T.tensor(np.fft.irfft2(grad_output.numpy()), dtype=grad_output.dtype)

    x = leaf(T, np.random.default_rng(0).standard_normal((4, 4)))
    y = NumpyFFT.apply(x * 2)
    y.backward(T.tensor(np.random.default_rng(1).standard_normal((4, 3))))
    return {"y": y, "x.grad": x.grad}


def _compare(name, ours, theirs):
    if isinstance(ours, (bool, int, str, tuple)) or ours is None:
        assert ours == theirs, name
        return
    a, b = value(ours), value(theirs)
    assert a.shape == b.shape and str(a.dtype) == str(b.dtype), name
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_same_results_as_torch(name, torch):
    ours, theirs = PROGRAMS[name](sg), PROGRAMS[name](torch)
    assert ours.keys() == theirs.keys()
    for key in ours:
        _compare(f"{name}: {key}", ours[key], theirs[key])


def test_grad_fn_prints_as_torch(torch):
    for T in (sg, torch):
        F = functions(T)["MyExp"]
        y = F.apply(T.tensor(np.array(X3), requires_grad=True))
        text = repr(y.grad_fn).replace("symgrad.", "torch.")
        assert re.fullmatch(r"<torch\.autograd\.function\.MyExpBackward object at 0x[0-9a-f]+>", text), text
        assert str(y).endswith("grad_fn=<MyExpBackward>)")
        assert y.grad_fn.name() == "MyExpBackward"
        (nxt, k), = y.grad_fn.next_functions
        assert type(nxt).__name__ == "AccumulateGrad" and k == 0
    assert isinstance(y.grad_fn, sg.autograd.graph.Node) if T is sg else True


def test_grad_fn_classes_keep_their_names():
    """sg.autograd.Function is the custom-function base now; grad_fn objects are graph.Nodes."""
    x = sg.ones(2, requires_grad=True)
    assert isinstance((x * 2).grad_fn, sg.autograd.graph.Node)
    assert not isinstance((x * 2).grad_fn, sg.autograd.Function)
    assert isinstance(sg.autograd.graph.AccumulateGrad(x), sg.autograd.graph.Node)


# --- compiled: the custom node becomes C with the rest of the graph -------------------------------

def test_compiled_custom_functions_match_the_interpreter_and_torch(torch):
    F = functions(sg)
    x = sg.Variable(shape=(2, 3), dtype="float64", name="x", requires_grad=True)
    w = sg.Variable(shape=(3,), dtype="float64", name="w", requires_grad=True)
    s, c = F["SinCos"].apply(x * w)
    loss = (F["MyReLU"].apply(s - 0.2) * F["Legendre"].apply(c) + F["ScaledMul"].apply(x, w, 0.5)).sum()
    compiled = sg.compile([x, w], loss)
    interp = sg.compile([x, w], loss, backend="interp")
    assert "custom_function" not in compiled.forward.source
    lc, gc = compiled.value_and_grad(X23, W3)
    li, gi = interp.value_and_grad(X23, W3)
    np.testing.assert_allclose(lc, li, rtol=1e-12)
    for a, b in zip(gc, gi):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    Ft = functions(torch)
    xt = torch.tensor(X23, requires_grad=True)
    wt = torch.tensor(W3, requires_grad=True)
    st, ct = Ft["SinCos"].apply(xt * wt)
    lt = (Ft["MyReLU"].apply(st - 0.2) * Ft["Legendre"].apply(ct) + Ft["ScaledMul"].apply(xt, wt, 0.5)).sum()
    lt.backward()
    np.testing.assert_allclose(lc, lt.item(), rtol=1e-12)
    np.testing.assert_allclose(gc[0], xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gc[1], wt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_compiled_double_backward_through_a_custom_function(torch):
    F = functions(sg)["MyExp"]
    x = sg.Variable(shape=(3,), dtype="float64", name="x", requires_grad=True)
    (g,) = sg.grad((F.apply(x) * x).sum(), x)
    (h,) = sg.grad(g.sum(), x)
    fn = sg.compile([x], [g, h])
    got_g, got_h = fn.forward(X3)
    xt = torch.tensor(X3, requires_grad=True)
    Ft = functions(torch)["MyExp"]
    (gt,) = torch.autograd.grad((Ft.apply(xt) * xt).sum(), xt, create_graph=True)
    (ht,) = torch.autograd.grad(gt.sum(), xt)
    np.testing.assert_allclose(got_g, gt.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(got_h, ht.numpy(), rtol=1e-12)


# --- gradcheck ------------------------------------------------------------------------------------

def _wrong_functions(T):
    class WrongExp(T.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.exp()

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * x.exp() * 1.01           # off by 1%

    class WrongSecond(T.autograd.Function):      # first derivative right, its derivative wrong
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * 3 * x.detach() ** 2       # detached: no second derivative through x

    return WrongExp, WrongSecond


@pytest.mark.parametrize("T_name", ["symgrad", "torch"])
def test_gradcheck_passes_right_and_fails_wrong_backwards(T_name, request):
    T = sg if T_name == "symgrad" else request.getfixturevalue("torch")
    F = functions(T)
    x = T.tensor(np.array(X3), requires_grad=True)
    x23 = T.tensor(np.array(X23), requires_grad=True)
    w = T.tensor(np.array(W3), requires_grad=True)
    assert T.autograd.gradcheck(F["MyExp"].apply, (x,))
    assert T.autograd.gradcheck(F["ScaledMul"].apply, (x, w, 1.5), eps=1e-6, atol=1e-5)
    assert T.autograd.gradcheck(F["SinCos"].apply, (x,))
    assert T.autograd.gradgradcheck(F["Legendre"].apply, (x,))
    assert T.autograd.gradgradcheck(F["SinCos"].apply, (x,))
    assert T.autograd.gradcheck(lambda a, b: F["Broadcasting"].apply(a, b), (x23, w))
    wrong, wrong_second = _wrong_functions(T)
    with pytest.raises(RuntimeError, match="Jacobian mismatch for output 0 with respect to input 0"):
        T.autograd.gradcheck(wrong.apply, (x,))
    assert T.autograd.gradcheck(wrong.apply, (x,), raise_exception=False) is False
    assert T.autograd.gradcheck(wrong_second.apply, (x,))
    with pytest.raises(RuntimeError, match="Jacobian mismatch"):
        T.autograd.gradgradcheck(wrong_second.apply, (x,))
    assert T.autograd.gradgradcheck(wrong_second.apply, (x,), raise_exception=False) is False


def test_gradcheck_keeps_the_old_calling_convention():
    assert sg.gradcheck(lambda a, b: (a * b).sum(), [X3, W3])
    assert sg.gradcheck(lambda a, b: (a * b).sin(), [[0.5, 1.0], 2.0])         # lists and numbers are data
    # nothing requires grad: every float input is checked
    assert sg.autograd.gradcheck(lambda a: a.sin(), sg.tensor(X3)) is True
    with pytest.raises(ValueError, match="at least one input"):
        sg.autograd.gradcheck(lambda a: a * 2, (sg.arange(3),))


# --- once_differentiable and errors -----------------------------------------------------------------

def test_once_differentiable(torch):
    for T in (sg, torch):
        from_fn = T.autograd.function.once_differentiable

        class Square(T.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(x)
                return x * x

            @staticmethod
            @from_fn
            def backward(ctx, grad):
                (x,) = ctx.saved_tensors
                return 2 * x * grad

        x = T.tensor(np.array(X3), requires_grad=True)
        Square.apply(x).sum().backward()
        np.testing.assert_allclose(value(x.grad), 2 * X3)
        (g,) = T.autograd.grad(Square.apply(x).sum(), x, create_graph=True)
        assert not g.requires_grad                 # backward ran as under no_grad
        with pytest.raises(RuntimeError, match="does not require grad"):
            T.autograd.grad(g.sum(), x)
        # through a gradient that requires grad, a second derivative is an error, not a number
        v = T.tensor(np.array(W3), requires_grad=True)
        (g,) = T.autograd.grad(Square.apply(x), x, grad_outputs=v * 1.0, create_graph=True)
        assert g.requires_grad
        with pytest.raises(RuntimeError, match="once_differentiable"):
            g.sum().backward()


def test_wrong_number_of_gradients_is_an_error(torch):
    for T in (sg, torch):
        class Two(T.autograd.Function):
            @staticmethod
            def forward(ctx, a, b):
                return a * b

            @staticmethod
            def backward(ctx, grad):
                return grad

        x = T.tensor(np.array(X3), requires_grad=True)
        with pytest.raises(RuntimeError, match="returned an incorrect number of gradients"):
            Two.apply(x, x).sum().backward()


def test_gradient_of_the_wrong_shape_is_an_error(torch):
    for T in (sg, torch):
        class Bad(T.autograd.Function):
            @staticmethod
            def forward(ctx, a):
                return a * 2

            @staticmethod
            def backward(ctx, grad):
                return grad[:2]

        x = T.tensor(np.array(X3), requires_grad=True)
        with pytest.raises(RuntimeError, match="invalid gradient at index 0"):
            Bad.apply(x).sum().backward()


def test_setup_context_style_and_no_instances(torch):
    class Cube(sg.autograd.Function):
        @staticmethod
        def forward(x):
            return x ** 3

        @staticmethod
        def setup_context(ctx, inputs, output):
            (ctx.x,) = inputs

        @staticmethod
        def backward(ctx, grad):
            return grad * 3 * ctx.x ** 2

    x = sg.tensor(np.array(X3), requires_grad=True)
    Cube.apply(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 * X3 ** 2)
    with pytest.raises(RuntimeError, match="apply"):
        Cube()

    class Triple(sg.autograd.Function):          # backward under its other name, vjp
        @staticmethod
        def forward(ctx, x):
            return x * 3

        @staticmethod
        def vjp(ctx, grad):
            return grad * 3

    x.grad = None
    Triple.apply(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full(3, 3.0))
    with pytest.raises(TypeError, match="save_for_backward"):
        class Saves(sg.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(3.0)
                return x
        Saves.apply(x)


def test_saved_variable_changed_in_place_is_an_error(torch):
    for T in (sg, torch):
        F = functions(T)["Legendre"]
        x = T.tensor(np.array(X3), requires_grad=True)
        h = x * 1
        y = F.apply(h)
        h.mul_(2)                                   # the value backward needs is gone
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.sum().backward()
        y = functions(T)["MyExp"].apply(x * 1)      # an output saved for backward, changed later
        z = y.sum()
        y.add_(1)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            z.backward()


# --- whole programs, as users write them for PyTorch, with only the import changed ---------------

TUTORIAL_PROGRAMS = {
    # the shape of PyTorch's examples_autograd/polynomial_custom_function.py, in float64 and shorter
    "legendre_custom_function": '''
import math
import torch

class LegendrePolynomial3(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input):
        ctx.save_for_backward(input)
        return 0.5 * (5 * input ** 3 - 3 * input)

    @staticmethod
    def backward(ctx, grad_output):
        input, = ctx.saved_tensors
        return grad_output * 1.5 * (5 * input ** 2 - 1)

dtype = torch.double
x = torch.linspace(-math.pi, math.pi, 200, dtype=dtype)
y = torch.sin(x)
a = torch.full((), 0.0, dtype=dtype, requires_grad=True)
b = torch.full((), -1.0, dtype=dtype, requires_grad=True)
c = torch.full((), 0.0, dtype=dtype, requires_grad=True)
d = torch.full((), 0.3, dtype=dtype, requires_grad=True)
for t in range(300):
    P3 = LegendrePolynomial3.apply
    y_pred = a + b * P3(c + d * x)
    loss = (y_pred - y).pow(2).sum()
    if t % 100 == 99:
        print(t, loss.item())
    loss.backward()
    with torch.no_grad():
        for p in (a, b, c, d):
            p -= 5e-5 * p.grad
            p.grad = None
print(f"Result: y = {a.item()} + {b.item()} * P3({c.item()} + {d.item()} x)")
print(torch.autograd.gradcheck(LegendrePolynomial3.apply, (x[:5].clone().requires_grad_(),)))
print(torch.autograd.gradgradcheck(LegendrePolynomial3.apply, (x[:5].clone().requires_grad_(),)))
''',
    # the shape of introyt's autograd tutorial: functional API, hooks and modes
    "functional_hooks_modes": '''
import torch

def exp_adder(x, y):
    return 2 * x.exp() + 3 * y

inputs = (torch.tensor([0.25], dtype=torch.float64), torch.tensor([0.75], dtype=torch.float64))
print(torch.autograd.functional.jacobian(exp_adder, inputs))
inputs = (torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64),
          torch.tensor([0.4, 0.5, 0.6], dtype=torch.float64))
print(torch.autograd.functional.jacobian(exp_adder, inputs))
print(torch.autograd.functional.hessian(lambda v: (v ** 3).sum(), inputs[0]))

def do_some_doubling(x):
    y = x * 2
    while y.data.norm() < 1000:
        y = y * 2
    return y

x = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
v = torch.tensor([0.1, 1.0, 0.0001], dtype=torch.float64)
print(torch.autograd.functional.vjp(do_some_doubling, x, v))

w = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
h = w.register_hook(lambda g: g * 2)
(w * w).sum().backward()
print(w.grad)
h.remove()
w.grad.zero_()
(w * w).sum().backward()
print(w.grad)

@torch.no_grad
def predict(t):
    return t * 2

print(predict(w).requires_grad)
with torch.set_grad_enabled(False):
    print((w * 2).requires_grad)
print(torch.is_grad_enabled())
''',
}


def _numbers(text):
    return [float(t) for t in re.findall(r"-?\d+\.\d*(?:e[-+]?\d+)?|-?\d+(?:e[-+]?\d+)?", text)]


@pytest.mark.parametrize("name", sorted(TUTORIAL_PROGRAMS))
def test_programs_with_the_import_swapped_print_torchs_numbers(name, torch, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path
    source = TUTORIAL_PROGRAMS[name]
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    outputs = {}
    swapped = source.replace("import torch", "import symgrad as torch")
    for label, text in (("torch", source), ("symgrad", swapped)):
        script = tmp_path / f"program_{label}.py"
        script.write_text(text)
        run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240,
                             env=env)
        assert run.returncode == 0, f"{label}:\n{run.stderr[-3000:]}"
        outputs[label] = run.stdout
    ours, theirs = outputs["symgrad"], outputs["torch"]
    words = [re.sub(r"[-\d.e+]+", "#", line).replace("symgrad", "torch") for line in ours.splitlines()]
    assert words == [re.sub(r"[-\d.e+]+", "#", line) for line in theirs.splitlines()], ours
    np.testing.assert_allclose(_numbers(ours), _numbers(theirs), rtol=1e-6, atol=1e-9, err_msg=ours)
