"""Shared helpers for symgrad's tests.

Expected values never come from symgrad itself: they come from numpy, math, finite
differences computed here, the tutorials' printed outputs, or PyTorch."""
from __future__ import annotations

import re

import numpy as np
import pytest

import symgrad as sg


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def numeric_grad(f, arrays, index, eps=1e-6):
    """Central finite differences of the scalar function `f(*arrays)` (numpy in, float out)
    with respect to `arrays[index]`, in float64."""
    arrays = [np.array(a, dtype=np.float64) if np.asarray(a).dtype.kind == "f" else np.asarray(a)
              for a in arrays]
    base = arrays[index]
    out = np.zeros_like(base)
    flat = out.reshape(-1)
    for k in range(base.size):
        plus = [a.copy() for a in arrays]
        minus = [a.copy() for a in arrays]
        plus[index].reshape(-1)[k] += eps
        minus[index].reshape(-1)[k] -= eps
        flat[k] = (f(*plus) - f(*minus)) / (2 * eps)
    return out


def value(v) -> np.ndarray:
    """A symgrad or torch result as a numpy array."""
    if hasattr(v, "detach") and type(v).__module__.startswith("torch"):
        return v.detach().cpu().numpy()
    return np.asarray(v.detach().numpy() if hasattr(v, "detach") else v.numpy())


def normalize_output(text: str) -> str:
    """Printed output with object addresses masked and runs of whitespace collapsed, so the
    tutorials' texts (whose spacing was mangled on the web) can be compared."""
    text = re.sub(r"0x[0-9a-fA-F]+", "0x?", text)
    return re.sub(r"\s+", " ", text).strip()


def sg_to_torch_str(text: str) -> str:
    """symgrad's dtype suffixes name the module `symgrad.`, PyTorch's `torch.`."""
    return text.replace("symgrad.", "torch.")


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


@pytest.fixture
def interp_backward(monkeypatch):
    """Run eager backward() on the numpy interpreter: these tests check the core (graphs,
    derivative rules, the front end), not the C backend, and must not wait for a compiler."""
    monkeypatch.setenv("SYMGRAD_EAGER_BACKEND", "interp")


@pytest.fixture(autouse=True)
def _seeded():
    sg.manual_seed(0)
    yield
