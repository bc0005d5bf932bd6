"""PyTorch's keyword names: one table (symgrad/signatures.py), checked three ways.

- the table against torch's own documented signatures (its docstrings, or inspect.signature
  where torch has a Python signature);
- every public function and method of symgrad against the table (inspect.signature), and every
  public function with a PyTorch name is in the table;
- programs that call with keywords, written once against `T`, run with T = torch and
  T = symgrad, give the same numbers and gradients; `out=` writes into the given Variable."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import symgrad as sg
from conftest import value
from symgrad import signatures as S
from torch_signatures import overloads

torch = pytest.importorskip("torch")

# Where torch's docstring names a parameter otherwise than torch itself accepts it (each one
# checked by a keyword call below, in test_doc_errata_are_what_torch_accepts).
DOC_ERRATA = {
    "broadcast_to": lambda: torch.broadcast_to(torch.ones(2), size=(3, 2)),  # doc: shape
    "true_divide": lambda: torch.true_divide(input=torch.ones(2), other=2),  # doc: dividend, divisor
    "bernoulli": lambda: torch.bernoulli(input=torch.ones(2), p=0.5),  # doc: no p (an overload)
}


def _names(params):
    return [p.name for p in params]


def _positional(params):
    return [p.name for p in params if p.kind is not inspect.Parameter.KEYWORD_ONLY]


def test_doc_errata_are_what_torch_accepts():
    for name, call in DOC_ERRATA.items():
        call()


def test_the_table_agrees_with_torchs_documented_signatures():
    checked = []
    for name, spec in S.FUNCTIONS.items():
        fn = getattr(torch, name, None)
        assert fn is not None, f"signatures.FUNCTIONS names {name!r}, which torch does not have"
        docs = overloads(fn, name)
        if not docs or name in DOC_ERRATA:
            continue  # undocumented in torch (relu, log_softmax, ...): the table is the truth
        ours = S.parse(spec)
        known = {p.name for overload in docs for p in overload}
        unknown = [n for n in _names(ours) if n not in known]
        assert not unknown, f"{name}: {unknown} are not among torch's parameters {sorted(known)}"
        # positional parameters in torch's order: ours extend one of torch's overloads, or it ours
        pos = _positional(ours)
        assert any(
            _positional(o)[: len(pos)] == pos or pos[: len(_positional(o))] == _positional(o) for o in docs
        ), f"{name}: positional order {pos} vs torch's {[_positional(o) for o in docs]}"
        checked.append(name)
    assert len(checked) >= 60, checked  # the docstrings were found and read


def _agrees(public, spec: str, method: bool) -> str | None:
    """Why `public`'s signature does not follow `spec`, or None."""
    params = list(inspect.signature(public).parameters.values())
    if method:
        params = params[1:]
    want = S.parse(spec)
    got = {p.name: p for p in params}
    for k, w in enumerate(want):
        if w.kind is inspect.Parameter.VAR_POSITIONAL:
            varargs = [p for p in params if p.kind is p.VAR_POSITIONAL]
            if not varargs:
                return f"no *{w.name}"
            if not method and k == 0 and w.name not in got and len(want) > 1:
                return f"*{w.name} is also a keyword in PyTorch (`size=`), missing here"
            continue
        p = got.get(w.name)
        if p is None:
            return f"no parameter {w.name!r} (has {list(got)})"
        if w.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and p.kind is not p.POSITIONAL_OR_KEYWORD:
            return f"{w.name!r} must be positional or keyword"
    pos_want = _positional([w for w in want if w.kind is not inspect.Parameter.VAR_POSITIONAL])
    pos_got = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD][: len(pos_want)]
    if pos_got != pos_want:
        return f"positional order {pos_got}, PyTorch's {pos_want}"
    return None


def test_every_public_function_follows_the_table():
    bad = {}
    for name, spec in S.FUNCTIONS.items():
        public = getattr(sg, name, None)
        if public is None:
            continue  # (indexing functions another part of symgrad adds)
        why = _agrees(public, spec, method=False)
        if why:
            bad[name] = why
    assert not bad, bad


def test_every_variable_method_follows_the_table():
    bad, checked = {}, 0
    for name in dir(sg.Variable):
        spec = S.method_spec(name)
        attr = inspect.getattr_static(sg.Variable, name, None)
        if spec is None or name.startswith("_") or not callable(attr) or isinstance(attr, property):
            continue
        checked += 1
        why = _agrees(attr, spec, method=True)
        if why:
            bad[name] = why
    assert not bad, bad
    assert checked >= 50


def test_every_public_function_with_a_torch_name_is_in_the_table():
    missing = []
    for name in sg.__all__:
        obj = getattr(sg, name)
        if isinstance(obj, type) or inspect.ismodule(obj) or not callable(obj) or not hasattr(torch, name):
            continue
        if name not in S.FUNCTIONS and name not in S.NOT_IN_TABLE:
            missing.append(name)
    assert not missing, f"add PyTorch's signatures of {missing} to symgrad/signatures.py"


def test_unknown_keywords_name_the_function_and_torchs_signature():
    x = sg.ones(2)
    with pytest.raises(TypeError, match=r"add\(\) got an unexpected keyword argument 'b'.*input, other"):
        sg.add(x, b=x)
    with pytest.raises(TypeError, match="multiple values for argument 'input'"):
        sg.sum(x, input=x)


# --- keyword calls: the same program under torch and symgrad -----------------------------------

A = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], np.float32)
B = np.array([[1.0, 2.0], [-0.5, 0.5], [0.25, -1.0]], np.float32)

PROGRAMS = {}


def program(fn):
    PROGRAMS[fn.__name__] = fn
    return fn


@program
def elementwise_keywords(T):
    a = T.tensor(A, requires_grad=True)
    y = T.add(input=a, other=T.mul(input=a, other=a), alpha=0.5)
    y = T.sub(y, other=1.0, alpha=2) + T.pow(input=a, exponent=2) + T.clamp(input=a, min=-0.5, max=1.0)
    y = T.where(condition=a > 0, input=y, other=T.exp(input=a)) + T.div(input=a, other=3.0)
    y = y + T.maximum(input=a, other=T.zeros_like(input=a)) + T.sqrt(input=T.abs(input=a))
    y.sum().backward()
    return {"y": y, "grad": a.grad}


@program
def reduction_keywords(T):
    a = T.tensor(A, requires_grad=True)
    s = T.sum(input=a, dim=1, keepdim=True) * a.sum(dim=0) + T.mean(input=a, dim=(0, 1), keepdim=True)
    s = (
        s
        + a.mean(dim=0, keepdim=True)
        + T.amax(input=a, dim=1, keepdim=True)
        + a.sum(dim=None, keepdim=False)
    )
    v, i = T.max(input=a, dim=1)
    s = s.sum() + v.sum() + T.logsumexp(input=a, dim=1).sum() + T.softmax(input=a, dim=0).pow(2).sum()
    s = s + T.log_softmax(a, dim=1).sum() + a.norm(p=2, dim=1).sum() + a.sum(dim=1, dtype=T.float64).sum()
    s.backward()
    return {"s": s, "i": i, "argmax": T.argmax(input=a, dim=1, keepdim=True), "grad": a.grad}


@program
def matrix_and_shape_keywords(T):
    a, b = T.tensor(A, requires_grad=True), T.tensor(B, requires_grad=True)
    m = T.matmul(input=a, other=b) + T.mm(input=a, mat2=b)
    m = T.transpose(input=m, dim0=0, dim1=1) + T.reshape(input=T.permute(input=m, dims=(1, 0)), shape=(2, 2))
    c = T.cat(tensors=[m, m * 2], dim=1) + T.stack(tensors=[m, m], dim=1).reshape(2, 4)
    f = T.flatten(input=T.unsqueeze(input=c, dim=0), start_dim=1) + T.squeeze(
        input=c.unsqueeze(0), dim=0
    ).reshape(-1)
    g = T.broadcast_to(T.mv(input=a, vec=b[:, 0]), size=(3, 2)) + a.t().matmul(other=a[:, :2])
    loss = f.sum() + g.sum() + T.dot(input=a[0], tensor=a[1])
    loss.backward()
    return {"loss": loss, "a": a.grad, "b": b.grad}


@program
def creation_keywords(T):
    z = T.zeros(size=(2, 3)) + T.ones(size=[2, 3], dtype=T.float32) + T.full(size=(2, 3), fill_value=1.5)
    r = T.arange(start=1, end=7, step=2) + T.linspace(start=0, end=1, steps=3)
    e = T.eye(n=2, m=3) + T.full_like(input=z, fill_value=2) + T.ones_like(input=z, dtype=T.float64)
    shapes = [
        tuple(T.randn(size=(2, 3)).shape),
        tuple(T.rand(size=[4]).shape),
        tuple(T.empty(size=(1, 2)).shape),
        tuple(T.randint(low=0, high=5, size=(3,)).shape),
        tuple(T.randint(5, (2, 2)).shape),
        str(T.randint(high=3, size=(2,)).dtype).replace(f"{T.__name__}.", ""),
    ]
    return {
        "z": z,
        "r": r,
        "e": e,
        "t": T.tensor(data=[1.5, 2.5]),
        "a": T.as_tensor(data=[1, 2], dtype=T.float64),
        "shapes": np.array(shapes, dtype=object),
    }


@program
def method_keywords(T):
    a = T.tensor(A, requires_grad=True)
    y = a.add(other=a, alpha=2).mul(other=0.5).sub(other=1).clamp(min=-1) + a.pow(exponent=2).clamp_min(
        min=0.5
    )
    y = (
        y.view_as(other=a)
        + a.where(a > 0, other=a * 3)
        + a.matmul(other=T.tensor(B)).sum(dim=1, keepdim=True)
    )
    y = (
        y
        + a.div(other=4, rounding_mode=None)
        + a.softmax(dim=1)
        + a.expand_as(other=a)
        + a.to(dtype=T.float64).float()
    )
    y.sum().backward()
    return {"y": y, "grad": a.grad, "size": np.array(a.size(dim=1))}


@program
def out_keyword(T):
    a, b = T.tensor(A), T.tensor(B)
    o = T.zeros(2, 3)
    r1 = T.add(a, a, out=o)
    same = r1 is o
    p = T.zeros(2, 2)
    T.matmul(a, b, out=p)
    e = T.empty(0)
    T.exp(a, out=e)  # out of another shape: resized, as in PyTorch
    k = T.zeros(3, dtype=T.float64)
    T.arange(3, out=k)  # keeps its dtype
    m = T.zeros(2, 3)
    T.mul(a, 2, out=m)
    return {
        "o": o,
        "same": np.array(same),
        "p": p,
        "e": e,
        "k": k,
        "m": m,
        "k_dtype": np.array(str(k.dtype)[-7:]),
    }


def _numbers(result):
    out = {}
    for k, v in result.items():
        out[k] = v if isinstance(v, np.ndarray) else value(v)
    return out


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_keyword_programs_match_torch(name):
    want, got = _numbers(PROGRAMS[name](torch)), _numbers(PROGRAMS[name](sg))
    assert want.keys() == got.keys()
    for k in want:
        if want[k].dtype.kind in "OUS":
            assert [str(v) for v in got[k].ravel()] == [str(v) for v in want[k].ravel()], k
            continue
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6, err_msg=f"{name}: {k}")
        assert got[k].dtype == want[k].dtype, (name, k, got[k].dtype, want[k].dtype)


@pytest.mark.parametrize("T", [torch, sg], ids=["torch", "symgrad"])
def test_out_refuses_results_that_need_gradients_as_torch(T):
    a = T.tensor(A, requires_grad=True)
    with pytest.raises(RuntimeError, match="don't support automatic differentiation"):
        T.add(a, 1, out=T.zeros(2, 3))
    with pytest.raises(TypeError):
        T.add(a, 1, out=np.zeros((2, 3)))
