"""Dtypes as PyTorch has them (`print(x.dtype)` prints `symgrad.float32` where PyTorch prints
`torch.float32`; `x.dtype is symgrad.float32`; `is_floating_point`, `itemsize`, pickling), which
numpy and JAX still take wherever they take a dtype; and `.numpy()` refused, as in PyTorch, on
a Variable that requires grad. Programs are written once against `T` and run with T = torch and
T = symgrad; what they print has the module's name replaced by "M"."""

from __future__ import annotations

import copy
import pickle
import warnings

import numpy as np
import pytest

import symgrad as sg

torch = pytest.importorskip("torch")

BOTH = pytest.mark.parametrize("T", [torch, sg], ids=["torch", "symgrad"])


def shown(T, value) -> str:
    """`str(value)` with the module's own name (torch. or symgrad.) written as M."""
    return str(value).replace(f"{T.__name__}.", "M.")


def dtype_facts(T) -> list:
    x = T.tensor([1.0, -2.0, 3.0])
    n = T.tensor([3, 1, 2])
    facts = [shown(T, x.dtype), shown(T, repr(x.dtype)), shown(T, f"Datatype of tensor: {x.dtype}"),
             shown(T, type(x.dtype)), isinstance(x.dtype, T.dtype),
             x.dtype == T.float32, x.dtype is T.float32, x.dtype != T.float64, T.float32 == T.float64,
             n.dtype is T.int64, (x > 0).dtype is T.bool]
    for d in (T.float32, T.float64, T.int32, T.int64, T.bool):
        facts += [shown(T, d), d.is_floating_point, d.is_complex, d.is_signed, d.itemsize,
                  d.to_real() is d]
    facts += [T.float is T.float32, T.double is T.float64, T.long is T.int64, T.int is T.int32,
              shown(T, T.get_default_dtype()), T.get_default_dtype() is T.float32]
    # made with a dtype, cast, or the result of an operation
    facts += [shown(T, d) for d in (
        T.zeros(2, dtype=T.float64).dtype, T.ones(2, dtype=T.int32).dtype, T.arange(3).dtype,
        x.to(T.float64).dtype, x.double().dtype, x.long().dtype, x.int().dtype, x.bool().dtype,
        n.float().dtype, x.sum().dtype, n.sum().dtype, x.mean().dtype, x.argmax().dtype,
        (x == 1).dtype, (n + 2.5).dtype, (n / 2).dtype, (n * 2).dtype, T.ones(2, dtype=T.float64).mean().dtype,
        T.zeros_like(x, dtype=T.int64).dtype, (x * T.ones(3, dtype=T.float64)).dtype)]
    facts += [x.double().dtype == T.float64, x.to(T.float64).dtype is T.float64]
    # dicts and sets keyed by dtypes, pickling and copies keep the one object
    facts += [{T.float32: 1, T.int64: 2}[x.dtype], {T.float32: 1}.get(n.dtype), len({x.dtype, T.float32, n.dtype}),
              hash(x.dtype) == hash(T.float32)]
    for d in (T.float32, T.float64, T.int32, T.int64, T.bool):
        facts += [pickle.loads(pickle.dumps(d)) is d, copy.copy(d) is d, copy.deepcopy([d])[0] is d]
    # a Variable of another dtype prints it
    facts += [shown(T, repr(t)) for t in (
        T.tensor([1.5, 2.0], dtype=T.float64), T.tensor([1, 2], dtype=T.int32), T.tensor([1, 2]),
        T.tensor([True]), T.zeros(0, dtype=T.float64), T.zeros(0, dtype=T.int64),
        T.tensor([1.0], dtype=T.float64, requires_grad=True))]
    return facts


def test_dtypes_behave_and_print_as_torchs():
    want, got = dtype_facts(torch), dtype_facts(sg)
    assert len(want) == len(got)
    for k, (w, g) in enumerate(zip(want, got)):
        assert g == w, (k, w, g)


def test_print_of_a_dtype_names_the_module(capsys):
    print(sg.ones(1).dtype, sg.float64, sg.int)
    assert capsys.readouterr().out == "symgrad.float32 symgrad.float64 symgrad.int32\n"


@BOTH
def test_default_dtype_is_a_dtype_of_the_module(T):
    try:
        T.set_default_dtype(T.float64)
        assert T.get_default_dtype() is T.float64 and str(T.get_default_dtype()) == f"{T.__name__}.float64"
        assert T.tensor([1.0]).dtype is T.float64 and T.zeros(2).dtype is T.float64
    finally:
        T.set_default_dtype(T.float32)
    assert T.get_default_dtype() is T.float32


def test_a_dtype_cannot_be_changed():
    with pytest.raises(AttributeError, match="immutable"):
        sg.float32.itemsize = 8
    with pytest.raises(AttributeError):
        torch.float32.itemsize = 8
    assert sg.float32.itemsize == 4
    with pytest.raises(TypeError, match="complex"):
        sg.float32.to_complex()


def test_numpy_takes_symgrad_dtypes_wherever_it_takes_a_dtype():
    x = sg.tensor([1.0, 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")           # and without a deprecation warning
        assert np.zeros(2, x.dtype).dtype == np.float32
        assert np.asarray([1, 2], dtype=x.dtype).dtype == np.float32
        assert np.arange(3).astype(sg.float64).dtype == np.float64
        assert np.dtype(sg.int32) is np.dtype(np.int32)
        assert np.promote_types(sg.float32, sg.int64) == np.float64
        assert np.result_type(sg.int32, np.int64) == np.int64
        assert np.issubdtype(sg.float32, np.floating) and not np.issubdtype(sg.int64, np.floating)
        assert np.empty((), sg.bool).dtype == np.bool_
        assert np.finfo(x.dtype).eps == np.finfo(np.float32).eps and np.iinfo(sg.int32).max == 2 ** 31 - 1
    # equal to numpy's dtype, type and name, with the same hash (dicts keyed by either find it)
    assert sg.float32 == np.dtype("float32") and np.dtype("float32") == sg.float32
    assert sg.float32 == np.float32 and sg.float32 == "float32" and sg.float32 != np.float64
    assert sg.float32 != "float64" and sg.float32 != None and sg.float32 != 3      # noqa: E711
    assert {np.dtype("float64"): "d"}[sg.float64] == "d" and {sg.int64: "l"}[np.dtype("int64")] == "l"
    # numpy's attributes
    assert (sg.float32.kind, sg.float32.name, sg.float32.char, sg.float32.type) == ("f", "float32", "f", np.float32)
    assert (sg.int64.kind, sg.bool.name, sg.bool.itemsize, sg.float64.str) == ("i", "bool", 1, "<f8")
    # torch and JAX take the arrays (and JAX the dtype)
    assert torch.from_numpy(np.zeros(2, sg.float64)).dtype is torch.float64
    jnp = pytest.importorskip("jax.numpy")
    assert jnp.zeros(3, x.dtype).dtype == jnp.float32
    assert jnp.asarray(np.ones(2), dtype=sg.float32).dtype == jnp.float32


def test_symbolic_variables_and_compiled_functions_keep_the_dtypes():
    for given in ("float64", np.float64, np.dtype("float64"), sg.float64, sg.double):
        v = sg.Variable(shape=(2,), dtype=given, name="v")
        assert v.dtype is sg.float64, given
    assert str(v) == "Variable(name=v, shape=(2,), dtype=symgrad.float64)"
    assert (v * 2).dtype is sg.float64 and (v > 0).dtype is sg.bool and v.sum().dtype is sg.float64
    fn = sg.compile([v], (v * 2).sum())
    out = fn(np.array([1.0, 2.0]))
    assert np.asarray(out).dtype == np.float64 and float(out) == 6.0
    # a compiled call checks its arguments' dtypes by identity with numpy's own dtypes
    assert all(d is np.dtype(d) for _, d in fn.forward_fn._specs)
    with pytest.raises(TypeError, match=r"expects dtype float64, got int64.*astype\('float64'\)"):
        fn(np.array([1, 2]))


def test_unsupported_dtypes_are_refused_with_the_supported_ones_named():
    with pytest.raises(TypeError, match=r"float16.*symgrad.bool, symgrad.int32, symgrad.int64, "
                                        r"symgrad.float32, symgrad.float64"):
        sg.zeros(2, dtype=np.float16)
    with pytest.raises(TypeError, match="unsupported dtype"):
        sg.tensor([1.0], dtype="complex64")
    with pytest.raises(TypeError, match="floating point"):
        sg.set_default_dtype(sg.int64)


# --- .numpy() of a Variable that requires grad ------------------------------------------------


@BOTH
def test_numpy_of_a_variable_that_requires_grad_raises_as_torch(T):
    w = T.tensor([1.0, 2.0], requires_grad=True)
    for v in (w, w * 2, (w * w).sum(), T.nn.Linear(2, 1).weight):
        with pytest.raises(RuntimeError, match=r"^Can't call numpy\(\) on Tensor that requires grad\. "
                                               r"Use tensor\.detach\(\)\.numpy\(\) instead\."):
            v.numpy()
    np.testing.assert_array_equal(w.detach().numpy(), [1.0, 2.0])
    np.testing.assert_array_equal(w.numpy(force=True), [1.0, 2.0])
    with T.no_grad():
        np.testing.assert_array_equal((w * 2).numpy(), [2.0, 4.0])
    x = T.tensor([1.0, 2.0])
    a = x.numpy()                     # the Variable's own values: changes in place show in it
    x[0] = 5.0
    assert a.tolist() == [5.0, 2.0] and a.dtype == np.float32


def test_numpy_error_names_the_variable():
    w = sg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"instead\. \(It was called on Variable \(input\) of shape \(2,\) and "
                                           r"dtype symgrad.float32\.\)"):
        w.numpy()
    w.name = "w"
    with pytest.raises(RuntimeError, match=r"on Variable 'w' of shape \(2,\)"):
        w.numpy()
    with pytest.raises(RuntimeError, match="requires grad"):
        np.asarray(w * 2)


def limits(T) -> list:
    out = []
    for d in (T.float32, T.float64, None):
        f = T.finfo(d) if d is not None else T.finfo()
        out += [repr(f), f.eps, f.max, f.min, f.tiny, f.smallest_normal, f.resolution, f.bits, f.dtype,
                type(f.eps).__name__]
    for d in (T.int32, T.int64):
        i = T.iinfo(d)
        out += [repr(i), i.min, i.max, i.bits, i.dtype, type(i.max).__name__]
    out.append(T.finfo(T.tensor([1.0], dtype=T.float64).dtype).eps)
    return out


def test_finfo_and_iinfo_as_torch():
    assert limits(sg) == limits(torch)


@BOTH
def test_finfo_and_iinfo_refuse_the_other_kind(T):
    with pytest.raises(TypeError, match="floating point"):
        T.finfo(T.int32)
    with pytest.raises(TypeError, match="integer"):
        T.iinfo(T.float32)
    with pytest.raises(TypeError):
        T.iinfo(T.bool)


@BOTH
def test_the_type_of_a_variable_prints_as_the_modules_tensor(T):
    x = T.ones(2)
    assert shown(T, type(x)) == "<class 'M.Tensor'>" and type(x).__name__ == "Tensor"
    assert isinstance(x, T.Tensor) and type(x) is T.Tensor
    assert type(T.nn.Parameter(T.ones(1))).__qualname__ == "Parameter"
    y = pickle.loads(pickle.dumps(T.tensor([1.5, 2.0], dtype=T.float64)))
    assert type(y) is T.Tensor and y.dtype is T.float64 and y.tolist() == [1.5, 2.0]
