"""Nonsense is refused with a clear error, as PyTorch refuses it; clear messages for the mistakes
users make with sg.compile; inputs of another byte order or float16."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import symgrad as sg

torch = pytest.importorskip("torch")

# Each case runs on a (3, 4) Variable `x` of module T; PyTorch raises on every one.
NONSENSE = {
    "expand_minus_one_new_dim": lambda T, x: x.expand(-1, 3, 4),
    "expand_fewer_dims": lambda T, x: x.expand(4),
    "permute_dim_out_of_range": lambda T, x: x.permute(0, 3),
    "permute_duplicate": lambda T, x: x.permute(1, 1),
    "permute_too_few": lambda T, x: x.permute(0),
    "flatten_reversed": lambda T, x: x.flatten(1, 0),
    "flatten_out_of_range": lambda T, x: x.flatten(5),
    "reshape_negative": lambda T, x: x.reshape(-2, -6),
    "reshape_float": lambda T, x: x.reshape(2, 6.5),
    "reshape_two_inferred": lambda T, x: x.reshape(-1, -1),
    "reshape_wrong_count": lambda T, x: x.view(5, -1),
    "zeros_negative": lambda T, x: T.zeros(-2, 3),
    "ones_negative_tuple": lambda T, x: T.ones((2, -1)),
    "index_float": lambda T, x: x[1.5],
    "index_str": lambda T, x: x["a"],
    "index_out_of_range": lambda T, x: x[3],
    "cat_zero_dim": lambda T, x: T.cat([T.tensor(1.0), T.tensor(2.0)]),
    "overflowing_shape": lambda T, x: T.zeros(2 ** 32, 2 ** 32),
    "unsqueeze_out_of_range": lambda T, x: x.unsqueeze(5),
    "transpose_out_of_range": lambda T, x: x.transpose(0, 2),
    "sum_dim_out_of_range": lambda T, x: x.sum(dim=2),
    "cat_dim_out_of_range": lambda T, x: T.cat([x, x], dim=2),
}


@pytest.mark.parametrize("name", sorted(NONSENSE))
def test_nonsense_raises_like_torch(name):
    case = NONSENSE[name]
    with pytest.raises(Exception) as theirs:
        case(torch, torch.ones(3, 4))
    with pytest.raises(Exception) as ours:
        case(sg, sg.ones(3, 4))
    # the same kind of error where PyTorch's is a standard one (RuntimeError, IndexError, TypeError)
    assert isinstance(ours.value, type(theirs.value)) or type(theirs.value).__name__ == "OutOfMemoryError" \
        or isinstance(ours.value, (ValueError, RuntimeError)) and isinstance(theirs.value, RuntimeError), \
        f"symgrad raised {type(ours.value).__name__}: {ours.value}; PyTorch {type(theirs.value).__name__}"
    assert not isinstance(ours.value, (AttributeError, KeyError, AssertionError))


def test_shape_errors_name_the_op_the_argument_and_the_shape():
    x = sg.ones(3, 4)
    with pytest.raises(ValueError, match=r"expand.*-1.*\(3, 4\)"):
        x.expand(-1, 3, 4)
    with pytest.raises(IndexError, match=r"permute: dim 3 out of range for shape \(3, 4\)"):
        x.permute(0, 3)
    with pytest.raises(RuntimeError, match=r"flatten: start_dim 1 comes after end_dim 0 \(shape \(3, 4\)\)"):
        x.flatten(1, 0)
    with pytest.raises(TypeError, match=r"reshape: sizes must be integers, got 6.5"):
        x.reshape(2, 6.5)
    with pytest.raises(ValueError, match=r"Variable 'v': invalid size -2 at index 0 of shape \(-2, 3\)"):
        sg.Variable(shape=(-2, 3), name="v")
    with pytest.raises(ValueError, match=r"more than int64 can count"):
        sg.Variable(shape=(2 ** 40, 2 ** 40))
    with pytest.raises(IndexError, match=r"got 1.5 \(float\) for dim 0"):
        x[1.5]


def test_symbolic_expand_of_minus_one_is_refused_not_zero():
    x = sg.Variable(shape=(3, 4), name="x")
    with pytest.raises(ValueError, match="expand"):
        sg.compile([x], x.expand(-1, 3, 4).sum())


def test_valid_shapes_still_work():
    x = sg.ones(3, 4)
    assert x.expand(2, -1, 4).shape == (2, 3, 4)
    assert x.reshape([2, -1]).shape == (2, 6)
    assert x.reshape(sg.Size([12])).shape == (12,)
    assert x.flatten().shape == (12,) and sg.tensor(3.0).flatten().shape == (1,)
    assert x.permute(-1, 0).shape == (4, 3)
    assert x.reshape(np.int64(12)).shape == (12,)


# --- sg.compile's mistakes ---------------------------------------------------------------


def test_unnamed_inputs_with_a_later_one_requiring_grad():
    x = sg.Variable(shape=(3,))
    w = sg.Variable(shape=(3,), requires_grad=True)
    fn = sg.compile([x, w], (x * w).sum())
    xv, wv = np.array([1, 2, 3], np.float32), np.array([4, 5, 6], np.float32)
    value, (gw,) = fn.value_and_grad(xv, wv)
    np.testing.assert_allclose(value, 32.0)
    np.testing.assert_allclose(gw, xv)


def test_compile_outputs_none_is_a_type_error():
    x = sg.Variable(shape=(3,), name="x")
    with pytest.raises(TypeError, match="outputs must be a Variable or a list"):
        sg.compile([x], None)


def test_compile_wrt_array_is_a_type_error():
    x = sg.Variable(shape=(3,), name="x", requires_grad=True)
    with pytest.raises(TypeError, match=r"wrt\[0\] is a ndarray"):
        sg.compile([x], x.sum(), wrt=[np.ones(3)])


def test_compile_missing_input_says_which_to_add():
    x = sg.Variable(shape=(3,), name="x")
    w = sg.Variable(shape=(3,), name="weights")
    with pytest.raises(ValueError, match=r"Variable 'weights' of shape \(3,\).*add it to sg.compile's inputs"):
        sg.compile([x], (x * w).sum())


def test_ragged_argument_names_the_input():
    x = sg.Variable(shape=(2, 2), name="x")
    fn = sg.compile([x], x.sum(), backend="interp")
    with pytest.raises(ValueError, match=r"input 0 'x' expects an array of shape \(2, 2\)"):
        fn([[1.0, 2.0], [3.0]])


def test_big_endian_arrays_are_accepted():
    x = sg.Variable(shape=(3,), name="x")
    fn = sg.compile([x], x * 2, backend="interp")
    big = np.array([1.0, 2.0, 3.0], dtype=">f4")
    np.testing.assert_array_equal(fn(big), [2.0, 4.0, 6.0])
    v = sg.tensor(np.array([1.5, 2.5], dtype=">f8"))
    assert v.dtype == np.float64 and v.dtype.isnative
    np.testing.assert_array_equal(v.numpy(), [1.5, 2.5])


def test_float16_warns_and_becomes_float32():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        v = sg.tensor(np.array([1.5, 2.5], dtype=np.float16))
    assert v.dtype == np.float32
    assert any("float16" in str(w.message) for w in caught)
    x = sg.Variable(shape=(2,), name="x")
    fn = sg.compile([x], x * 2, backend="interp")
    with pytest.raises(TypeError, match="expects dtype float32, got float16"):
        fn(np.array([1.0, 2.0], np.float16))
