"""Devices and the default dtype, as PyTorch's tutorials use them: programs written once
against `T`, run with T = torch and T = symgrad, print and compute the same; "cuda" for an
eager Variable is an error that points to sg.compile(..., backend="cuda")."""

from __future__ import annotations

import math

import numpy as np
import pytest

import symgrad as sg
from conftest import value

torch = pytest.importorskip("torch")

PROGRAMS = {}


def program(fn):
    PROGRAMS[fn.__name__] = fn
    return fn


def dtype_name(d) -> str:
    return str(d).replace("torch.", "").replace("symgrad.", "")


@program
def polynomial_by_hand(T):
    # the shape of PyTorch's examples_tensor: a cubic fitted to sin with gradients by hand
    dtype = T.float
    device = T.device("cpu")
    x = T.linspace(-math.pi, math.pi, 200, device=device, dtype=dtype)
    y = T.sin(x)
    a, b, c, d = (T.tensor(v, device=device, dtype=dtype) for v in (0.1, -0.2, 0.05, 0.01))
    lr = 1e-5
    for _ in range(20):
        y_pred = a + b * x + c * x**2 + d * x**3
        grad_y_pred = 2.0 * (y_pred - y)
        a = a - lr * grad_y_pred.sum()
        b = b - lr * (grad_y_pred * x).sum()
        c = c - lr * (grad_y_pred * x**2).sum()
        d = d - lr * (grad_y_pred * x**3).sum()
    return {"loss": (y_pred - y).pow(2).sum(), "coefficients": T.stack([a, b, c, d])}


@program
def polynomial_autograd(T):
    # the shape of PyTorch's examples_autograd: the same fit with requires_grad and backward()
    device = "cuda" if T.cuda.is_available() and T is torch else "cpu"
    x = T.linspace(-math.pi, math.pi, 200, dtype=T.float32, device=device)
    y = T.sin(x)
    weights = [T.tensor(v, device=device, requires_grad=True) for v in (0.1, -0.2, 0.05, 0.01)]
    a, b, c, d = weights
    for _ in range(20):
        y_pred = a + b * x + c * x**2 + d * x**3
        loss = (y_pred - y).pow(2).sum()
        loss.backward()
        with T.no_grad():
            for w in weights:
                w -= 1e-5 * w.grad
                w.grad = None
    return {"loss": loss, "a": a, "d": d, "device": np.array(str(a.device))}


@program
def devices_print_as_torch(T):
    x = T.ones(2, 3, device="cpu")
    cpu = T.device("cpu")
    shown = [
        str(cpu),
        repr(cpu),
        repr(T.device("cpu", 0)),
        repr(T.device("cpu:1")),
        str(T.device("cpu:0")),
        cpu.type,
        str(cpu.index),
        str(x.device),
        repr(x.device),
        str(x.device == cpu),
        str(cpu == "cpu"),
        str(x.device.type),
        str(x.is_cuda),
        str(T.device(cpu)),
        repr(T.device("cuda")),
        repr(T.device("cuda:1")),
        str(T.device("cuda", 1).index),
        str(T.zeros(1, device=cpu).device),
        str(T.get_default_device()),
    ]
    return {"shown": np.array(shown, dtype=object)}


@program
def to_and_cpu(T):
    x = T.tensor([[1.5, -2.0], [0.25, 3.0]], requires_grad=True)
    other = T.zeros(1, dtype=T.float64)
    outs = [
        x.to("cpu"),
        x.to(T.device("cpu")),
        x.to(T.float64),
        x.to("cpu", T.float64),
        x.to(other),
        x.to(device="cpu", dtype=T.float64),
        x.to(dtype=T.int64),
        x.cpu(),
        x.to(T.float64, copy=True),
        x.to(T.device("cpu"), dtype=T.float64),
    ]
    same = [o is x for o in outs] + [x.to(T.float32, copy=True) is x, x.cpu() is x]
    loss = sum((o.double() * (k + 1)).sum() for k, o in enumerate(outs) if o.requires_grad)
    loss.backward()
    return {
        "values": T.stack([o.double() for o in outs]),
        "dtypes": np.array([dtype_name(o.dtype) for o in outs]),
        "same": np.array(same),
        "grad": x.grad,
        "requires_grad": np.array([o.requires_grad for o in outs]),
    }


@program
def creation_with_device(T):
    dev = T.device("cpu")
    made = [
        T.zeros(2, device=dev),
        T.ones((2,), device="cpu"),
        T.full((2,), 2.5, device=dev),
        T.arange(2, device=dev),
        T.linspace(0, 1, 2, device=dev),
        T.eye(2, device=dev)[0],
        T.zeros_like(T.ones(2), device=dev),
        T.ones_like(T.ones(2), device="cpu"),
        T.full_like(T.ones(2), 3, device=dev),
        T.tensor([1.0, 2.0], device=dev),
        T.empty(2, device=dev).fill_(0),           # (empty memory may hold NaN: times 0 stays NaN)
        T.as_tensor([1, 2], device=dev),
    ]
    shapes = [
        tuple(T.randn(2, device=dev).shape),
        tuple(T.rand(3, device="cpu").shape),
        tuple(T.randint(0, 4, (2,), device=dev).shape),
        tuple(T.randn_like(made[0], device=dev).shape),
    ]
    return {
        "made": T.stack([m.double() for m in made]),
        "devices": np.array([str(m.device) for m in made]),
        "shapes": np.array(shapes),
        "dtypes": np.array([dtype_name(m.dtype) for m in made]),
    }


@program
def default_dtype_float64(T):
    previous = T.get_default_dtype()
    T.set_default_dtype(T.float64)
    try:
        made = [
            T.tensor([1.0, 2.0]),
            T.zeros(2),
            T.ones(2),
            T.full((2,), 1.5),
            T.arange(0.0, 2.0),
            T.linspace(0, 1, 2),
            T.tensor([1, 2]) * 0.5,
            T.sin(T.tensor([1, 2])),
            T.tensor([1, 2]),
            T.eye(2)[0],
            T.tensor(3.0) + 1,
            T.tensor([1.0], dtype=T.float32) * 2.5,
            T.Tensor([1, 2]),
        ]
        shown = [dtype_name(T.get_default_dtype())] + [dtype_name(m.dtype) for m in made]
        shown += [dtype_name(T.randn(2).dtype), dtype_name(T.rand(2).dtype)]
        x = T.tensor([0.1, 0.2], requires_grad=True)
        (x * x * 3.0).sum().backward()
    finally:
        T.set_default_dtype(previous)
    shown += [dtype_name(T.get_default_dtype()), dtype_name(T.tensor([1.0]).dtype)]
    return {"shown": np.array(shown), "grad": x.grad, "tenth": x * 1.0}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_device_programs_match_torch(name):
    want, got = PROGRAMS[name](torch), PROGRAMS[name](sg)
    assert want.keys() == got.keys()
    for k in want:
        w = want[k] if isinstance(want[k], np.ndarray) else value(want[k])
        g = got[k] if isinstance(got[k], np.ndarray) else value(got[k])
        if w.dtype.kind in "OUS":
            assert [str(v) for v in g.ravel()] == [str(v) for v in w.ravel()], (name, k)
        else:
            assert g.dtype == w.dtype, (name, k, g.dtype, w.dtype)
            np.testing.assert_allclose(g, w, rtol=2e-5, atol=1e-6, err_msg=f"{name}: {k}")


def test_set_default_device_cpu_as_torch():
    for T in (torch, sg):
        T.set_default_device("cpu")
        assert str(T.zeros(1).device) == "cpu"
        T.set_default_device(None)
        assert str(T.get_default_device()) == "cpu"


@pytest.mark.parametrize(
    "ask",
    [
        lambda: sg.zeros(2, device="cuda"),
        lambda: sg.randn(2, 3, device=sg.device("cuda")),
        lambda: sg.tensor([1.0], device="cuda:0"),
        lambda: sg.arange(3, device=0),
        lambda: sg.ones(2).to("cuda"),
        lambda: sg.ones(2).to(sg.device("cuda", 0), sg.float64),
        lambda: sg.ones(2).to(device="cuda"),
        lambda: sg.ones(2).cuda(),
        lambda: sg.zeros_like(sg.ones(2), device="cuda"),
        lambda: sg.set_default_device("cuda"),
    ],
    ids=[
        "zeros",
        "randn",
        "tensor",
        "arange-int",
        "to",
        "to-device-dtype",
        "to-keyword",
        "cuda()",
        "zeros_like",
        "default",
    ],
)
def test_cuda_for_eager_variables_points_to_compile(ask):
    with pytest.raises(RuntimeError, match=r'sg\.compile\(.*backend="cuda"\)') as info:
        ask()
    assert "cuda" in str(info.value)
    assert str(sg.get_default_device()) == "cpu"


@pytest.mark.parametrize("T", [torch, sg], ids=["torch", "symgrad"])
def test_cuda_of_a_cpu_device_raises_as_torch(T):
    with pytest.raises(RuntimeError, match="must be cuda device"):
        T.ones(2).cuda("cpu")


@pytest.mark.parametrize("T", [torch, sg], ids=["torch", "symgrad"])
def test_bad_device_names_raise_as_torch(T):
    with pytest.raises(RuntimeError):
        T.device("tpu")
    with pytest.raises(RuntimeError):
        T.device("cpu:x")
    with pytest.raises(TypeError):
        T.zeros(2, device=3.5)


@pytest.mark.parametrize("T", [torch, sg], ids=["torch", "symgrad"])
def test_default_dtype_must_be_floating(T):
    with pytest.raises(TypeError):
        T.set_default_dtype(T.int64)
    assert dtype_name(T.get_default_dtype()) == "float32"


def test_default_dtype_reaches_compiled_graphs():
    sg.set_default_dtype(sg.float64)
    try:
        x = sg.Variable(shape=(3,), dtype="float64", name="x")
        fn = sg.compile([x], (x * sg.tensor([0.1, 0.2, 0.3])).sum())
    finally:
        sg.set_default_dtype(sg.float32)
    got = fn(np.ones(3))
    assert np.asarray(got).dtype == np.float64
    assert float(got) == pytest.approx(0.6, rel=1e-15)  # the constants were float64, not float32


def test_devices_pickle_and_hash():
    import pickle

    d = sg.device("cpu", 0)
    assert pickle.loads(pickle.dumps(d)) == d and hash(d) == hash(sg.device("cpu:0"))
    assert {sg.device("cpu"): 1}[sg.ones(1).device] == 1
