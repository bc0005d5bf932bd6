"""No silent wrong answers in the front end: in-place operations, casts and leaves,
create_graph. Each case is written once against a module `T` and run on symgrad (eager backward
on the interpreter and on compiled C) and on PyTorch, the oracle: both must give the same
numbers, or both must raise."""
from __future__ import annotations

import numpy as np
import pytest

import symgrad as sg

torch = pytest.importorskip("torch")


def _outcome(T, case):
    """The values a case computes (as float64 arrays), or the error it raised."""
    try:
        result = case(T)
    except (RuntimeError, ValueError, TypeError, IndexError) as e:
        return ("raises", str(e))
    out = []
    for r in result:
        if r is None:
            out.append(None)
        elif hasattr(r, "detach") and type(r).__module__.startswith("torch"):
            out.append(r.detach().numpy().astype(np.float64))
        elif isinstance(r, sg.Variable):
            out.append(np.asarray(r.detach().numpy(), dtype=np.float64))
        else:
            out.append(np.asarray(r, dtype=np.float64))
    return ("values", out)


def check_against_torch(case):
    theirs = _outcome(torch, case)
    ours = _outcome(sg, case)
    assert ours[0] == theirs[0], f"symgrad: {ours}, PyTorch: {theirs}"
    if ours[0] == "raises":
        return ours[1]
    for a, b in zip(ours[1], theirs[1], strict=True):
        if a is None or b is None:
            assert a is None and b is None
        else:
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    return None


@pytest.fixture(params=["interp", "c"])
def eager(request, monkeypatch):
    monkeypatch.setenv("SYMGRAD_EAGER_BACKEND", request.param)
    return request.param


# --- in place ------------------------------------------------------------------------------


def inplace_after_pow(T):
    x = T.tensor([1.0, -2.0], requires_grad=True)
    y = x * 1
    y.pow_(2)
    (y * 3).sum().backward()
    return y, x.grad


def inplace_chain(T):
    x = T.tensor([0.5, 2.0, -1.0], requires_grad=True)
    y = x * 2
    y.add_(1).mul_(3)
    y.sub_(x)
    y.clamp_(-1.0, 7.0)
    y.sum().backward()
    return y, x.grad


def inplace_alias_sees_change(T):
    x = T.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    z = y                      # another name for the same Variable
    y += 1
    (z * x).sum().backward()
    return z, x.grad


def inplace_saved_output_modified(T):
    x = T.tensor([1.0], requires_grad=True)
    y = x.exp()
    y.mul_(2)
    y.sum().backward()
    return y, x.grad


def inplace_saved_input_modified(T):
    x = T.tensor([1.0, 3.0], requires_grad=True)
    y = x * 1
    z = y * y
    y.add_(1)
    z.sum().backward()
    return (x.grad,)


def inplace_input_not_saved(T):
    # add does not save its inputs: modifying one afterwards is fine
    x = T.tensor([1.0, 3.0], requires_grad=True)
    y = x * 2
    z = y + 1
    y.mul_(5)
    (z.sum() + y.sum()).backward()
    return z, y, x.grad


def inplace_plain_leaf_saved(T):
    x = T.tensor([1.0, 2.0], requires_grad=True)
    a = T.ones(2)
    y = x * a
    a.mul_(2)
    y.sum().backward()
    return (x.grad,)


def inplace_leaf_becomes_node(T):
    a = T.ones(2)
    x = T.tensor([1.0, 2.0], requires_grad=True)
    y = x + a
    a.add_(x)
    (a * y).sum().backward()
    return a, x.grad, [float(a.is_leaf), float(a.requires_grad)]


def inplace_leaf_requiring_grad(T):
    x = T.tensor([1.0], requires_grad=True)
    x.add_(1)
    return (x,)


def inplace_under_no_grad(T):
    w = T.tensor([1.0, 2.0], requires_grad=True)
    (w * w).sum().backward()
    with T.no_grad():
        w -= 0.1 * w.grad
        w.mul_(2)
    return w, w.grad, [float(w.is_leaf)]


def inplace_data_update(T):
    w = T.tensor([1.0, 2.0], requires_grad=True)
    (w * 3).sum().backward()
    w.data -= 0.5 * w.grad.data
    w.data.mul_(2)
    return (w,)


def inplace_self_operand(T):
    x = T.tensor([1.5, -2.0], requires_grad=True)
    y = x + 0
    y.mul_(y)
    y.sum().backward()
    return y, x.grad


def inplace_unary_methods(T):
    x = T.tensor([0.3, 0.7], requires_grad=True)
    y = x * 1
    y.exp_()
    y = y * 1
    y.tanh_()
    y = y * 1
    y.sigmoid_()
    y.sum().backward()
    return y, x.grad


def setitem_on_node(T):
    x = T.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    v = T.tensor([10.0], requires_grad=True)
    y = x * 2
    y[1:3] = v * 3
    y[0] = 7.0
    (y * T.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    return y, x.grad, v.grad


def setitem_2d(T):
    x = T.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
    y = x.exp()
    z = y * 1
    z[:, 1] = x[0] .sum()
    z[1, ::2] = T.tensor([-1.0, -2.0])
    z.sum().backward()
    return z, x.grad


def setitem_plain(T):
    a = T.zeros(2, 3)
    a[0] = T.tensor([1.0, 2.0, 3.0])
    a[1, 1:] = 5.0
    a[:, 0] += 1
    return (a,)


def fill_and_zero_on_node(T):
    x = T.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    z = y * x
    y.zero_()
    w = x * 2
    w.fill_(4.0)
    (z.sum() + (w * x).sum() + y.sum()).backward()
    return y, w, x.grad


def copy_into_node(T):
    x = T.tensor([1.0, 2.0], requires_grad=True)
    s = T.tensor([5.0, 6.0], requires_grad=True)
    y = x * 1
    y.copy_(s * 2)
    (y * y).sum().backward()
    return y, x.grad, s.grad


def inplace_version_counter(T):
    x = T.tensor([1.0])
    v0 = x._version
    x.add_(1)
    x.mul_(2)
    d = x.detach()
    d.add_(1)
    return x, [v0, x._version]


def inplace_shape_mismatch(T):
    x = T.ones(3)
    x.add_(T.ones(2, 3))
    return (x,)


def inplace_int_gets_float(T):
    x = T.tensor([1, 2])
    x.mul_(1.5)
    return (x,)


def inplace_keeps_dtype(T):
    x = T.tensor([1.0, 2.0], dtype=T.float32)
    x.add_(T.tensor([0.5, 0.25], dtype=T.float64))
    return x, [float(x.dtype == T.float32)]


INPLACE = [inplace_after_pow, inplace_chain, inplace_alias_sees_change, inplace_saved_output_modified,
           inplace_saved_input_modified, inplace_input_not_saved, inplace_plain_leaf_saved,
           inplace_leaf_becomes_node, inplace_leaf_requiring_grad, inplace_under_no_grad,
           inplace_data_update, inplace_self_operand, inplace_unary_methods, setitem_on_node, setitem_2d,
           setitem_plain, fill_and_zero_on_node, copy_into_node, inplace_version_counter,
           inplace_shape_mismatch, inplace_int_gets_float, inplace_keeps_dtype]


@pytest.mark.parametrize("case", INPLACE, ids=lambda c: c.__name__)
def test_inplace_like_torch(case, eager):
    check_against_torch(case)


def test_modified_saved_value_error_names_the_variable(eager):
    message = check_against_torch(inplace_saved_output_modified)
    assert "modified by an inplace operation" in message
    assert "version 1; expected version 0" in message
    assert "shape (1,)" in message


# --- casts and leaves -------------------------------------------------------------------


def cast_then_requires_grad(T):
    x = T.Tensor([-4.0]).double()
    x.requires_grad = True
    (x * 3).sum().backward()
    return x.grad, [float(x.is_leaf)]


def ones_double_requires_grad_(T):
    x = T.ones(3).double().requires_grad_()
    (x * x * 2).sum().backward()
    return (x.grad,)


def to_and_clone_leaves(T):
    a = T.tensor([1.0, 2.0]).to(T.float64)
    a.requires_grad_()
    b = T.tensor([3.0]).clone()
    b.requires_grad = True
    c = (T.tensor([2.0]) * 5).float()
    c.requires_grad_(True)
    (a.sum() * b * c).sum().backward()
    return a.grad, b.grad, c.grad, [float(a.is_leaf), float(b.is_leaf), float(c.is_leaf)]


def cast_of_grad_requiring_is_not_leaf(T):
    x = T.tensor([1.0, 2.0], requires_grad=True)
    y = x.double()
    y.retain_grad()
    (y * y).sum().backward()
    return x.grad, y.grad, [float(y.is_leaf)]


def requires_grad_false_on_node(T):
    x = T.tensor([1.0], requires_grad=True)
    y = x * 2
    y.requires_grad = False
    return (y,)


@pytest.mark.parametrize("case", [cast_then_requires_grad, ones_double_requires_grad_, to_and_clone_leaves,
                                  cast_of_grad_requiring_is_not_leaf, requires_grad_false_on_node],
                         ids=lambda c: c.__name__)
def test_casts_and_leaves_like_torch(case, eager):
    check_against_torch(case)


# --- create_graph -----------------------------------------------------------------------


def backward_create_graph(T):
    x = T.tensor([2.0, -1.0], requires_grad=True)
    (x ** 3).sum().backward(create_graph=True)
    g = x.grad
    x.grad = None
    (g * g).sum().backward()
    return g, x.grad, [float(g.requires_grad)]


def backward_create_graph_accumulates(T):
    x = T.tensor([2.0], requires_grad=True)
    (x ** 3).sum().backward(create_graph=True)
    (x ** 2).sum().backward(create_graph=True)
    g = x.grad
    return g, [float(g.requires_grad), float(g.grad_fn is not None)]


def backward_create_graph_constant_gradient(T):
    x = T.tensor([2.0], requires_grad=True)
    (x * 3).sum().backward(create_graph=True)
    return x.grad, [float(x.grad.requires_grad)]


def grad_without_create_graph(T):
    x = T.tensor([2.0, 3.0], requires_grad=True)
    (g,) = T.autograd.grad((x ** 3).sum(), x)
    return g, [float(g.requires_grad), float(g.grad_fn is None)]


def grad_create_graph_second_order(T):
    x = T.tensor([2.0, 3.0], requires_grad=True)
    (g,) = T.autograd.grad((x ** 3).sum(), x, create_graph=True)
    (h,) = T.autograd.grad(g.sum(), x)
    return g, h, [float(g.requires_grad), float(h.requires_grad)]


def grad_unused_input(T):
    x = T.tensor([2.0], requires_grad=True)
    y = T.tensor([1.0], requires_grad=True)
    return T.autograd.grad((x * 2).sum(), [x, y])


def grad_allow_unused(T):
    x = T.tensor([2.0], requires_grad=True)
    y = T.tensor([1.0], requires_grad=True)
    gx, gy = T.autograd.grad((x * 2).sum(), [x, y], allow_unused=True)
    (mx, my) = T.autograd.grad((x * 2).sum(), [x, y], allow_unused=True, materialize_grads=True)
    return gx, gy, mx, my


def grad_with_grad_outputs(T):
    x = T.tensor([2.0, 3.0], requires_grad=True)
    return T.autograd.grad(x * x, x, grad_outputs=T.tensor([1.0, -2.0]))


def backward_after_create_graph_plain(T):
    x = T.tensor([2.0], requires_grad=True)
    (x ** 3).sum().backward(create_graph=True)
    (x ** 2).sum().backward()
    return (x.grad,)


@pytest.mark.parametrize("case", [backward_create_graph, backward_create_graph_accumulates,
                                  backward_create_graph_constant_gradient, grad_without_create_graph,
                                  grad_create_graph_second_order, grad_unused_input, grad_allow_unused,
                                  grad_with_grad_outputs, backward_after_create_graph_plain],
                         ids=lambda c: c.__name__)
def test_create_graph_like_torch(case, eager):
    check_against_torch(case)


def test_symbolic_autograd_grad_is_detached_unless_create_graph():
    x = sg.Variable(shape=(3,), name="x", requires_grad=True)
    (g,) = sg.autograd.grad((x * x).sum(), x)
    assert not g.requires_grad and g.grad_fn is None
    (g2,) = sg.autograd.grad((x * x).sum(), x, create_graph=True)
    assert g2.requires_grad
    fn = sg.compile([x], g2.sum())
    xv = np.array([1.0, 2.0, 3.0], np.float32)
    np.testing.assert_allclose(fn(xv), 2 * xv.sum())
    np.testing.assert_allclose(fn.backward(xv)[0], [2.0, 2.0, 2.0])


def test_inplace_on_symbolic_graph_compiles():
    """In place on a symbolic node: the compiled function computes the new value, and its
    gradient is the one PyTorch would give for the same program on values."""
    x = sg.Variable(shape=(3,), name="x", requires_grad=True)
    y = x * 2
    y.add_(1)
    y.mul_(x)
    fn = sg.compile([x], y.sum())
    xv = np.array([1.0, -2.0, 0.5], np.float32)
    xt = torch.tensor(xv, requires_grad=True)
    yt = xt * 2
    yt.add_(1)
    yt.mul_(xt)
    yt.sum().backward()
    value, (gx,) = fn.value_and_grad(xv)
    np.testing.assert_allclose(value, yt.sum().item(), rtol=1e-6)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-6)


def test_inplace_keeps_long_lived_leaf_memory_bounded():
    """A weight used in many steps keeps only a bounded list of its users."""
    w = sg.tensor([1.0, 2.0], requires_grad=True)
    for _ in range(2000):
        (w * 2).sum()
    assert len(w._users) < 64


def clone_keeps_values_and_the_graph(T):
    x = T.tensor([-0.0, 1.5], requires_grad=True)
    y = x.clone()
    z = T.tensor([-0.0, 2.0]).clone()
    (y * 3).sum().backward()
    signs = [float(np.signbit(y.detach().numpy()[0])), float(np.signbit(z.numpy()[0]))]
    return y, z, x.grad, signs


def test_clone_like_torch(eager):
    check_against_torch(clone_keeps_values_and_the_graph)


def test_clone_of_a_symbolic_variable_is_a_node():
    x = sg.Variable(shape=(2,), name="x")
    fn = sg.compile([x], x.clone() * 2, backend="interp")
    np.testing.assert_array_equal(fn(np.array([-0.0, 1.0], np.float32)), [-0.0, 2.0])
    assert np.signbit(fn(np.array([-0.0, 1.0], np.float32))[0])
