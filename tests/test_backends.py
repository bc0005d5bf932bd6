"""The backend seams (symgrad/backends): what a backend adds to the shared pipeline, and the
compiled Function that calls through it. Needs a C compiler; nothing here needs nvcc."""
from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import symgrad as sg
from symgrad.backends import backend
from symgrad.backends.cuda.toolchain import parse_release
from symgrad.compile import Function


def test_each_backend_by_name():
    assert [backend(n).name for n in ("c", "cuda", "interp")] == ["c", "cuda", "interp"]
    assert backend("c").module_template == "c/module.c.j2"
    assert backend("cuda").module_template == "cuda/module.cu.j2"
    assert "threadIdx" in backend("cuda").reserved_words and not backend("c").reserved_words
    assert not backend("cuda").column_sums() and not backend("interp").compiles
    with pytest.raises(ValueError, match="backend must be one of c, cuda, interp"):
        backend("metal")


def test_column_sums_follow_the_setting_on_c_only(monkeypatch):
    monkeypatch.setenv("SYMGRAD_COLUMN_SUMS", "0")
    assert not backend("c").column_sums()
    monkeypatch.setenv("SYMGRAD_COLUMN_SUMS", "1")
    assert backend("c").column_sums() and not backend("cuda").column_sums()


@pytest.mark.parametrize("text, release", [
    ("nvcc: NVIDIA (R) Cuda compiler driver\nCopyright (c) 2005-2025 NVIDIA Corporation\n"
     "Cuda compilation tools, release 13.0, V13.0.88\nBuild cuda_13.0.r13.0/compiler.36424714_0\n", "13.0.88"),
    ("Cuda compilation tools, release 12.4, V12.4.131\n", "12.4.131"),
    ("Cuda compilation tools, release 11.8\n", "11.8"),         # no V number: the release
    ("V9.2.148.\n", "9.2.148"),
    ("Cuda compilation tools, V12\n", None),                    # a V number needs a dot
    ("no version here\n", None),
])
def test_nvcc_release_is_read_from_its_version_text(text, release):
    assert parse_release(text) == release


def test_sg_cuda_keeps_its_public_names():
    import symgrad.cuda as public
    for name in ("DeviceArray", "to_device", "is_available", "device_count", "empty_cache",
                 "NoCudaDevice", "CudaError", "CudaOutOfMemory", "have_nvcc"):
        assert hasattr(public, name), name
    assert issubclass(public.CudaOutOfMemory, MemoryError) and issubclass(public.NoCudaDevice, public.CudaError)


def test_a_function_without_its_graph_keeps_placeholders_and_runs():
    """`keep_graph=False` (eager backward's cache): neither the graph nor its values are held."""
    x = sg.Variable(np.arange(4.0, dtype=np.float32), name="x")
    y = sg.tanh(x) * 2
    fn = Function([x], [y], "no_graph", "a function that keeps no graph", "c", keep_graph=False)
    assert fn.graph_outputs == [] and fn.args[0] is not x and fn.args[0].shape == (4,)
    assert fn.args[0]._value is None
    refs = [weakref.ref(x), weakref.ref(y)]
    del x, y
    gc.collect()
    assert all(r() is None for r in refs)
    a = np.linspace(-1, 1, 4, dtype=np.float32)
    np.testing.assert_allclose(fn.run([a])[0], np.tanh(a) * 2, rtol=1e-6)
    np.testing.assert_allclose(fn(a)[0], np.tanh(a) * 2, rtol=1e-6)


def test_the_interpreter_backend_calls_through_the_same_function():
    x = sg.Variable(shape=(3,), name="x", requires_grad=True)
    f = sg.compile([x], sg.sum(x * x), backend="interp")
    value, (g,) = f.value_and_grad(np.array([1.0, 2.0, 3.0], np.float32))
    assert value == pytest.approx(14.0) and g.tolist() == [2.0, 4.0, 6.0]
    assert f.forward_fn.path is None and f.forward_fn._backend is backend("interp")
