"""SPEC §1 and §6, the core's share: every user mistake is a Python exception raised where
it is made (while building the graph), whose message names the operation, the shapes or
dtypes involved and what would be right. Never a silent wrong answer."""
from __future__ import annotations


import numpy as np
import pytest

import symgrad as sg

pytestmark = pytest.mark.usefixtures("interp_backward")


def shapes_in(message, *shapes):
    for s in shapes:
        assert str(tuple(s)) in message, f"{tuple(s)} not named in: {message}"


# --- mismatched shapes while building the graph ------------------------------------------------


@pytest.mark.parametrize("symbolic", [False, True], ids=["values", "symbolic"])
def test_add_of_unbroadcastable_shapes(symbolic):
    a, b = ((sg.Variable(shape=(3, 4), name="a"), sg.Variable(shape=(5, 4), name="b")) if symbolic
            else (sg.ones(3, 4), sg.ones(5, 4)))
    with pytest.raises((ValueError, RuntimeError)) as e:
        a + b
    shapes_in(str(e.value), (3, 4), (5, 4))
    assert "add" in str(e.value)


@pytest.mark.parametrize("symbolic", [False, True], ids=["values", "symbolic"])
def test_matmul_of_unaligned_shapes(symbolic):
    a, b = ((sg.Variable(shape=(3, 4), name="a"), sg.Variable(shape=(5, 4), name="b")) if symbolic
            else (sg.ones(3, 4), sg.ones(5, 4)))
    with pytest.raises((ValueError, RuntimeError)) as e:
        a @ b
    shapes_in(str(e.value), (3, 4), (5, 4))
    assert "matmul" in str(e.value)


@pytest.mark.parametrize("a, b", [((3,), (4,)), ((2, 3), (4,)), ((4,), (3, 2)), ((2, 2, 3), (3, 3, 2)),
                                  ((2, 3, 4), (2, 5, 6))])
def test_matmul_errors_name_both_shapes(a, b):
    with pytest.raises((ValueError, RuntimeError)) as e:
        sg.matmul(sg.ones(*a), sg.ones(*b))
    shapes_in(str(e.value), a, b)


@pytest.mark.parametrize("op", [lambda a, b: a - b, lambda a, b: a * b, lambda a, b: a / b,
                                lambda a, b: a ** b, sg.maximum, sg.minimum, lambda a, b: a < b,
                                lambda a, b: sg.where(a > 0, a, b)],
                         ids=["sub", "mul", "div", "pow", "maximum", "minimum", "lt", "where"])
def test_elementwise_shape_mismatch(op):
    with pytest.raises((ValueError, RuntimeError)) as e:
        op(sg.ones(2, 3), sg.ones(4, 3))
    shapes_in(str(e.value), (2, 3), (4, 3))


def test_shape_errors_are_raised_before_any_value_exists():
    x = sg.Variable(shape=(2, 3), name="x")
    with pytest.raises(ValueError):
        x.reshape(4, 2)
    with pytest.raises(ValueError):
        sg.cat([x, sg.Variable(shape=(2, 2, 1))], 0)
    with pytest.raises(IndexError):
        x.sum(dim=2)


@pytest.mark.parametrize("fn, shape", [
    (lambda x: x.sum(2), (3, 4)),
    (lambda x: x.sum(-3), (3, 4)),
    (lambda x: x.mean(dim=(0, 5)), (3, 4)),
    (lambda x: x.max(2), (3, 4)),
    (lambda x: x.min(dim=-3), (3, 4)),
    (lambda x: x.norm(dim=3), (3, 4)),
    (lambda x: x.logsumexp(2), (3, 4)),
    (lambda x: x.softmax(5), (3, 4)),
    (lambda x: sg.log_softmax(x, -3), (3, 4)),
    (lambda x: x.transpose(0, 2), (3, 4)),
    (lambda x: x.unsqueeze(3), (3, 4)),
    (lambda x: x.squeeze(4), (3, 4)),
    (lambda x: x[3], (3, 4)),
    (lambda x: x[0, -5], (3, 4)),
    (lambda x: x[0, 0, 0], (3, 4)),
    (lambda x: sg.cat([x, x], 2), (3, 4)),
    (lambda x: sg.stack([x, x], 3), (3, 4)),
], ids=["sum", "sum_neg", "mean_tuple", "max", "min_neg", "norm", "logsumexp", "softmax", "log_softmax",
        "transpose", "unsqueeze", "squeeze", "index", "index_neg", "too_many_indices", "cat", "stack"])
def test_bad_dims(fn, shape):
    with pytest.raises((IndexError, ValueError)) as e:
        fn(sg.ones(*shape))
    shapes_in(str(e.value), shape)


def test_bad_dims_match_torch_exception_types(torch):
    cases = [lambda M, x: x.sum(2), lambda M, x: x.softmax(5), lambda M, x: x.unsqueeze(3),
             lambda M, x: x[3], lambda M, x: x.transpose(0, 2), lambda M, x: x.max(2)]
    for fn in cases:
        with pytest.raises(IndexError):
            fn(sg, sg.ones(3, 4))
        with pytest.raises(IndexError):
            fn(torch, torch.ones(3, 4))


def test_repeated_dim_in_a_reduction():
    with pytest.raises(RuntimeError, match=r"more than once"):
        sg.ones(2, 3).sum(dim=(0, -2))


@pytest.mark.parametrize("fn, shapes", [
    (lambda x: x.reshape(5, 3), [(3, 4), (5, 3)]),
    (lambda x: x.view(-1, 5), [(3, 4)]),
    (lambda x: x.expand(3, 5), [(3, 4), (3, 5)]),
    (lambda x: x.permute(0, 0), [(3, 4)]),
    (lambda x: x.permute(0), [(3, 4)]),
    (lambda x: sg.cat([x, sg.ones(5, 3)], 1), [(3, 4), (5, 3)]),
    (lambda x: sg.stack([x, sg.ones(5, 4)]), [(3, 4), (5, 4)]),
    (lambda x: sg.mse_loss(x, sg.ones(5, 4)), [(3, 4), (5, 4)]),
    (lambda x: sg.binary_cross_entropy_with_logits(x, sg.ones(4, 3)), [(3, 4), (4, 3)]),
    (lambda x: sg.cross_entropy(x, sg.tensor([0, 1])), [(3, 4), (2,)]),
    (lambda x: x.t().reshape(2, 3, 2).t(), [(2, 3, 2)]),
], ids=["reshape", "view", "expand", "permute_repeat", "permute_count", "cat", "stack", "mse_loss",
        "bce", "cross_entropy", "t_3d"])
def test_shape_functions_name_the_shapes(fn, shapes):
    with pytest.raises((ValueError, RuntimeError)) as e:
        fn(sg.ones(3, 4))
    shapes_in(str(e.value), *shapes)


def test_reshape_with_two_unknown_dims():
    with pytest.raises(ValueError, match="-1"):
        sg.ones(3, 4).reshape(-1, -1)


# --- backward() ---------------------------------------------------------------------------------


def test_backward_without_gradient_on_non_scalar():
    x = sg.ones(3, requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar outputs"):
        y.backward()
    assert x.grad is None


def test_backward_without_gradient_on_one_element_output_is_fine():
    x = sg.ones(1, requires_grad=True)
    (x * 3).backward()
    assert x.grad.numpy().tolist() == [3.0]


@pytest.mark.parametrize("grad_shape", [(2,), (3, 1), (1, 3), (4,)])
def test_backward_with_gradient_of_wrong_shape(grad_shape):
    x = sg.ones(3, requires_grad=True)
    y = x * 2
    with pytest.raises((ValueError, RuntimeError)) as e:
        y.backward(sg.ones(*grad_shape))
    shapes_in(str(e.value), grad_shape, (3,))
    assert x.grad is None


def test_backward_with_gradient_of_wrong_shape_on_scalar_output():
    x = sg.ones(3, requires_grad=True)
    out = (x * 2).sum()
    with pytest.raises((ValueError, RuntimeError)) as e:
        out.backward(sg.ones(2))
    shapes_in(str(e.value), (2,), ())


def test_backward_with_tutorial_one_element_gradient_on_0d_output():
    # "out.backward() is equivalent to doing out.backward(torch.Tensor([1.0]))" (tutorial 002)
    x = sg.ones(2, 2, requires_grad=True)
    out = ((x + 2) * (x + 2) * 3).mean()
    out.backward(sg.Tensor([1.0]))
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 2), 4.5))


@pytest.mark.parametrize("make", [lambda: sg.ones(3), lambda: sg.ones(3).sum(), lambda: (sg.ones(3) * 2).sum(),
                                  lambda: sg.ones(3, requires_grad=True).detach().sum()],
                         ids=["leaf", "sum", "expr", "detached"])
def test_backward_on_a_variable_that_does_not_require_grad(make):
    with pytest.raises(RuntimeError, match="does not require grad"):
        make().backward()


def test_backward_under_no_grad_result_does_not_require_grad():
    x = sg.ones(3, requires_grad=True)
    with sg.no_grad():
        y = (x * 2).sum()
    assert not y.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_backward_through_symbolic_input_says_to_compile():
    s = sg.Variable(shape=(3,), name="s", requires_grad=True)
    with pytest.raises(RuntimeError, match="compile") as e:
        (s * s).sum().backward()
    assert "'s'" in str(e.value) and "(3,)" in str(e.value)


def test_sg_grad_errors():
    x = sg.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="does not require grad"):
        sg.grad(sg.ones(3).sum(), sg.ones(3))
    with pytest.raises(ValueError, match="grad_outputs"):
        sg.grad([x.sum()], [x], grad_outputs=[None, None])
    with pytest.raises(TypeError, match="ndarray"):
        sg.grad(x.sum(), [np.ones(2)])
    with pytest.raises(RuntimeError, match="scalar outputs"):
        sg.grad(x * 2, x)


def test_sg_grad_unused_input():
    x, y = sg.ones(2, requires_grad=True), sg.ones(3, requires_grad=True)
    gx, gy = sg.grad((x * 2).sum(), [x, y])
    np.testing.assert_array_equal(gy.numpy(), np.zeros(3))
    gx, gy = sg.grad((x * 2).sum(), [x, y], allow_unused=True)
    assert gy is None


# --- symbolic Variables have no values ---------------------------------------------------------


@pytest.mark.parametrize("read", [lambda v: v.data, lambda v: v.numpy(), lambda v: v.tolist(),
                                  lambda v: (v * 2).numpy(), lambda v: float(v.sum()),
                                  lambda v: np.asarray(v)],
                         ids=["data", "numpy", "tolist", "derived", "float", "asarray"])
def test_reading_values_of_a_symbolic_variable(read):
    v = sg.Variable(shape=(2, 3), name="x")
    with pytest.raises(RuntimeError) as e:
        read(v)
    msg = str(e.value)
    assert "compile" in msg and "values" in msg
    assert "'x'" in msg or "x" in msg


def test_symbolic_variable_prints_name_shape_dtype():
    v = sg.Variable(shape=(2, 3), name="x")
    text = str(v)
    assert "x" in text and "(2, 3)" in text and "float32" in text


# --- dtypes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda: sg.tensor([1, 2], requires_grad=True),
    lambda: sg.Variable(np.arange(3), requires_grad=True),
    lambda: sg.Variable(sg.arange(3), requires_grad=True),
    lambda: sg.arange(3).requires_grad_(),
    lambda: sg.ones(3, dtype="int64", requires_grad=True),
    lambda: sg.tensor([True, False], requires_grad=True),
    lambda: sg.Variable(shape=(3,), dtype="int64", requires_grad=True),
], ids=["tensor_list", "numpy_ints", "variable_ints", "requires_grad_", "ones_int", "bool", "symbolic"])
def test_requires_grad_on_integer_data(make):
    with pytest.raises(RuntimeError, match="floating point") as e:
        make()
    assert "int" in str(e.value) or "bool" in str(e.value)


def test_integer_data_never_requires_grad():
    x = sg.tensor([1, 2, 3])
    assert x.dtype == np.int64 and not x.requires_grad
    w = sg.ones(3, requires_grad=True)
    y = (w * x).sum()
    y.backward()
    assert x.grad is None
    np.testing.assert_array_equal(w.grad.numpy(), [1, 2, 3])


@pytest.mark.parametrize("make", [lambda: sg.Variable(np.ones(3, complex)),
                                  lambda: sg.tensor(np.ones(2, complex)),
                                  lambda: sg.ones(3, dtype="float16"),
                                  lambda: sg.tensor(["a", "b"]),
                                  lambda: sg.ones(2).to(dtype="complex64")],
                         ids=["complex_array", "complex_tensor", "float16", "strings", "to_complex"])
def test_unsupported_dtypes(make):
    with pytest.raises(TypeError):
        make()


def test_non_numeric_operand():
    with pytest.raises(TypeError, match="str"):
        sg.ones(3) + "a"


def test_mean_of_integers():
    with pytest.raises(RuntimeError, match="floating point"):
        sg.arange(3).mean()


def test_cross_entropy_label_errors():
    with pytest.raises(TypeError, match="integers"):
        sg.cross_entropy(sg.ones(3, 4), sg.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(IndexError, match=r"\[0, 4\)"):
        sg.cross_entropy(sg.ones(3, 4), sg.tensor([0, 1, 5]))


def test_where_needs_bool_condition():
    with pytest.raises(TypeError, match="bool"):
        sg.where(sg.ones(2), sg.ones(2), sg.ones(2))


# --- Variable construction and state --------------------------------------------------------------


def test_construction_errors():
    with pytest.raises(TypeError):
        sg.Variable()
    with pytest.raises(ValueError) as e:
        sg.Variable(np.ones(3), shape=(4,))
    shapes_in(str(e.value), (3,), (4,))


def test_one_element_conversions():
    with pytest.raises((ValueError, RuntimeError)) as e:
        sg.ones(3).item()
    assert "(3,)" in str(e.value)
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(sg.ones(3))
    with pytest.raises((TypeError, ValueError, RuntimeError)):
        float(sg.ones(2, 2))
    with pytest.raises(TypeError):
        len(sg.tensor(1.0))


def test_requires_grad_false_on_non_leaf():
    y = sg.ones(2, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="leaf"):
        y.requires_grad_(False)


def test_retain_grad_without_requires_grad():
    with pytest.raises(RuntimeError):
        sg.ones(2).retain_grad()


def test_replacing_data_of_non_leaf():
    y = sg.ones(2, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="leaf"):
        y.data = sg.ones(2)


def test_in_place_on_leaf_that_requires_grad():
    w = sg.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="no_grad"):
        w -= 1
    with pytest.raises(RuntimeError, match="in-place"):
        w.add_(1)
    with pytest.raises(RuntimeError):
        w[0] = 3.0
    np.testing.assert_array_equal(w.detach().numpy(), [1, 1])
    with sg.no_grad():
        w -= 1
    np.testing.assert_array_equal(w.detach().numpy(), [0, 0])


def test_unsupported_indexing():
    x = sg.ones(3, 4)
    with pytest.raises(TypeError, match="integer or bool"):        # advanced indexing: ints or masks
        x[sg.tensor([0.0, 1.0])]
    with pytest.raises(TypeError):
        x[[0.5, 1]]
    with pytest.raises(ValueError, match="step"):
        x[::-1]
    with pytest.raises(IndexError, match="ellipsis"):
        x[..., 0, ...]


def test_argument_errors():
    with pytest.raises(ValueError, match="min, max"):
        sg.clamp(sg.ones(2))
    with pytest.raises(ValueError, match="reduction"):
        sg.mse_loss(sg.ones(2), sg.ones(2), reduction="avg")
    with pytest.raises(ValueError):
        sg.cat([])
    with pytest.raises((ValueError, RuntimeError)) as e:
        sg.mm(sg.ones(3), sg.ones(3))
    assert "(3,)" in str(e.value)
    with pytest.raises((ValueError, RuntimeError)):
        sg.matmul(sg.tensor(2.0), sg.ones(3))
    with pytest.raises(TypeError, match="int"):
        sg.ones(2, 3).max(dim=(0, 1))
    with pytest.raises(RuntimeError, match="empty"):
        sg.ones(0).max()


def test_errors_do_not_leave_state_behind():
    """A failed op changes nothing: the inputs stay usable and gradients stay right."""
    x = sg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with pytest.raises(ValueError):
        x + sg.ones(2)
    with pytest.raises(RuntimeError):
        (x * 2).backward()
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2, 4, 6])
