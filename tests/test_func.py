"""sg.func: grad, value_and_grad, vjp, jvp, jacrev, jacfwd, hessian and vmap, against
torch.func and JAX (float64, equal to rounding), eagerly and compiled by sg.jit.

The cases of tests/func_cases.py run on all three; the batching rules of every op kind are
checked against torch.func.vmap, eagerly (the interpreter) and compiled together in one sg.jit."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import func_cases as C
import symgrad as sg
from symgrad.ops.batching import RULES, rule
from symgrad.ops.registry import OPS

torch = pytest.importorskip("torch")
tf = pytest.importorskip("torch.func")

TOL = dict(rtol=1e-12, atol=1e-14)     # float64 rounding, through a few dozen operations


def _sg_results():
    return C.results(sg, sg.func, lambda a: sg.Variable(np.asarray(a)), lambda v: v.detach().numpy())


def _torch_results():
    return C.results(torch, C.TorchFunc(), lambda a: torch.tensor(a), lambda v: v.detach().numpy())


def _compare(ours, theirs, who):
    assert set(ours) == set(theirs)
    bad = []
    for k in sorted(theirs):
        a, b = ours[k], theirs[k]
        if a.shape != b.shape or not np.allclose(a, b, **TOL):
            bad.append(f"{k}: {a.shape} vs {who} {b.shape}, largest difference "
                       f"{np.max(np.abs(a - b)) if a.shape == b.shape else '-'}")
    assert not bad, "\n".join(bad)


def test_parity_with_torch_func():
    theirs = _torch_results()
    assert len(theirs) >= 35
    _compare(_sg_results(), theirs, "torch.func")


def test_parity_with_jax(tmp_path):
    pytest.importorskip("jax")
    out = tmp_path / "jax.npz"
    script = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
              f"import func_cases; func_cases.run_jax({str(out)!r})")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    theirs = dict(np.load(out))
    _compare(_sg_results(), theirs, "JAX")


# --- batching rules, op by op, against torch.func.vmap ----------------------------------------

R = np.random.default_rng(5)
B = 4


def f_take(T, x, i):
    return x[i] * 2


def f_index_select(T, x, i):
    return T.index_select(x, 1, i)


def f_cat_slice(T, x, y):
    return T.cat([x[1:3], y, x[::2]], 0)


def f_permute(T, x, y):
    return x.permute(1, 0).reshape(-1) * y.sum()


def f_expand(T, x, y):
    return x.reshape(1, 3).expand(2, 3) + y


def f_reduce(T, x, y):
    return x.max(dim=0).values + x.min(dim=1, keepdim=True).values.sum() + x.amax() * y.sum()


def f_arg(T, x, y):
    return x.argmax(dim=1).double() + y.argmin()


def f_where(T, x, y):
    return T.where(x > 0, x, y) + (x > y).double() + x.float().double()


def f_matmul(T, x, y):
    return T.matmul(x, y) + (x @ y.sum(1)).reshape(-1, 1) + (x.sum(0) @ y.sum(1))


def f_softmax(T, x, y):
    return T.softmax(x, dim=-1) * T.log_softmax(y, dim=0)


def f_index_loss(T, x, i):          # its gradient scatters (scatter_add, pad_slice)
    return (x[i] ** 2).sum() + (x[1:] * x[:-1]).sum()


def _summed(f):
    def loss(T, x, y):
        return T.tanh(f(T, x, y)).sum()
    loss.__name__ = f"sum_{f.__name__}"
    return loss


X5, I3, I0 = R.normal(size=(B, 5)), R.integers(0, 5, (B, 3)), R.integers(0, 5, 3)
X25 = R.normal(size=(B, 2, 5))
# (function, arguments, in_dims, through grad)
BATCH_CASES = [
    (f_take, [X5, I3], (0, 0), False), (f_take, [X5, I0], (0, None), False),
    (f_take, [X5[0], I3], (None, 0), False),
    (f_index_select, [X25, I3], (0, 0), False), (f_index_select, [X25, I0], (0, None), False),
    (f_index_select, [X25[0], I3], (None, 0), False),
    (f_cat_slice, [R.normal(size=(B, 5)), R.normal(size=2)], (0, None), False),
    (f_cat_slice, [R.normal(size=5), R.normal(size=(B, 2))], (None, 0), False),
    (f_permute, [R.normal(size=(B, 2, 3)), R.normal(size=(B, 3))], (0, 0), False),
    (f_permute, [R.normal(size=(2, B, 3)), R.normal(size=3)], (1, None), False),
    (f_expand, [R.normal(size=(B, 3)), R.normal(size=3)], (0, None), False),
    (f_expand, [R.normal(size=3), R.normal(size=(B, 2, 3))], (None, 0), False),
    (f_reduce, [R.normal(size=(B, 3, 4)), R.normal(size=(B, 2))], (0, 0), False),
    (f_arg, [R.normal(size=(B, 3, 4)), R.normal(size=(B, 2))], (0, 0), False),
    (f_where, [R.normal(size=(B, 3)), R.normal(size=3)], (0, None), False),
    (f_where, [R.normal(size=3), R.normal(size=(B, 3))], (None, 0), False),
    (f_matmul, [R.normal(size=(B, 2, 3)), R.normal(size=(3, 4))], (0, None), False),
    (f_matmul, [R.normal(size=(2, 3)), R.normal(size=(B, 3, 4))], (None, 0), False),
    (f_matmul, [R.normal(size=(2, 3, B)), R.normal(size=(3, B, 4))], (2, 1), False),
    (f_softmax, [R.normal(size=(B, 3)), R.normal(size=(B, 3))], (0, 0), False),
    (f_index_loss, [X5, I3], (0, 0), True), (f_index_loss, [X5, I0], (0, None), True),
    (f_index_loss, [X5[0], I3], (None, 0), True),
    (_summed(f_reduce), [R.normal(size=(B, 3, 4)), R.normal(size=(B, 2))], (0, 0), True),
    (_summed(f_matmul), [R.normal(size=(B, 2, 3)), R.normal(size=(3, 4))], (0, None), True),
    (_summed(f_matmul), [R.normal(size=(2, 3, B)), R.normal(size=(3, B, 4))], (2, 1), True),
    (_summed(f_cat_slice), [R.normal(size=(B, 5)), R.normal(size=2)], (0, None), True),
    (_summed(f_permute), [R.normal(size=(B, 2, 3)), R.normal(size=(B, 3))], (0, 0), True),
    (_summed(f_expand), [R.normal(size=3), R.normal(size=(B, 2, 3))], (None, 0), True),
]
CASE_IDS = [f"{'grad_' if g else ''}{f.__name__}-{d}" for f, _, d, g in BATCH_CASES]


def _mapped(F, T, f, dims, through_grad):
    fn = lambda *a: f(T, *a)            # noqa: E731
    return F.vmap(F.grad(fn) if through_grad else fn, in_dims=dims)


def _torch_batched(f, args, dims, through_grad):
    return _mapped(tf, torch, f, dims, through_grad)(*map(torch.tensor, args)).numpy()


@pytest.mark.parametrize("f, args, dims, through_grad", BATCH_CASES, ids=CASE_IDS)
def test_vmap_batching_rules_against_torch_func(f, args, dims, through_grad):
    want = _torch_batched(f, args, dims, through_grad)
    got = _mapped(sg.func, sg, f, dims, through_grad)(*[sg.Variable(a) for a in args])
    assert isinstance(got, sg.Variable)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got.detach().numpy(), want, **TOL)


def test_vmap_batching_rules_compiled_together():
    """Every case above in one sg.jit: the batched graphs compile to C and give torch's numbers."""
    def everything(*flat):
        out, it = [], iter(flat)
        for f, args, dims, g in BATCH_CASES:
            out.append(_mapped(sg.func, sg, f, dims, g)(*[next(it) for _ in args]))
        return tuple(out)
    flat = [a for _, args, _, _ in BATCH_CASES for a in args]
    got = sg.jit(everything)(*flat)
    assert len(got) == len(BATCH_CASES)
    for k, ((f, args, dims, g), value) in enumerate(zip(BATCH_CASES, got)):
        np.testing.assert_allclose(value, _torch_batched(f, args, dims, g), **TOL, err_msg=CASE_IDS[k])


def test_every_op_has_a_batching_rule():
    for name, op in OPS.items():
        assert rule(name) is not None
        assert op.kind == "elementwise" or name in RULES, name


def test_vmap_is_one_graph_over_the_batch_not_a_loop():
    from symgrad.graph import toposort
    calls = []

    def f(x, w):
        calls.append(1)
        return sg.tanh(x @ w).sum()
    w = sg.Variable(R.normal(size=(3, 2)))
    sizes = []
    for batch in (2, 64):
        g = sg.func.vmap(sg.func.grad(f, argnums=1), in_dims=(0, None))(R.normal(size=(batch, 3)), w)
        assert g.shape == (batch, 3, 2)
        sizes.append(len(toposort([g])))
    assert calls == [1, 1]                   # traced once per call, whatever the batch
    assert sizes[0] == sizes[1]              # the same graph, only the shapes grow


# --- transforms: semantics and errors ---------------------------------------------------------

def test_has_aux_and_nesting_of_arguments():
    x = np.array([1.0, 2.0, 3.0])

    def f(params, x):
        return (params["w"] * x).sum() + params["b"][0] ** 2, {"n": x.sum()}
    params = {"w": np.array([0.5, -1.0, 2.0]), "b": [np.array(3.0)]}
    g, aux = sg.func.grad(f, has_aux=True)(params, x)
    assert set(g) == {"w", "b"} and isinstance(g["b"], list)
    np.testing.assert_array_equal(g["w"].numpy(), x)
    np.testing.assert_array_equal(g["b"][0].numpy(), 6.0)
    np.testing.assert_array_equal(aux["n"].numpy(), 6.0)
    (value, aux2), g2 = sg.func.value_and_grad(f, argnums=1, has_aux=True)(params, x)
    np.testing.assert_array_equal(value.numpy(), 13.5)
    np.testing.assert_array_equal(g2.numpy(), params["w"])
    # the same through torch.func
    tp = {"w": torch.tensor(params["w"]), "b": [torch.tensor(params["b"][0])]}
    tg, _ = tf.grad(lambda p, x: (lambda o: (o[0], o[1]))(f(p, x)), has_aux=True)(tp, torch.tensor(x))
    np.testing.assert_array_equal(g["w"].numpy(), tg["w"].numpy())


def test_grad_inside_no_grad_still_differentiates_and_closures_are_constants():
    w = sg.tensor(np.array([2.0, 3.0]))
    with sg.no_grad():
        g = sg.func.grad(lambda x: (x * w).sum())(np.array([1.0, 1.0]))
    np.testing.assert_array_equal(g.numpy(), [2.0, 3.0])
    # perturbation confusion: the inner derivative is with respect to y only
    # d/dx [x * d/dy (x * y)] = d/dx x**2 = 2x
    got = sg.func.grad(lambda x: x * sg.func.grad(lambda y: x * y)(x))(np.array(3.0))
    want = tf.grad(lambda x: x * tf.grad(lambda y: x * y)(x))(torch.tensor(3.0, dtype=torch.float64))
    assert float(got) == float(want) == 6.0


def test_errors_name_what_is_wrong():
    with pytest.raises(RuntimeError, match=r"must return a scalar.*shape \(3,\)"):
        sg.func.grad(lambda x: x * 2)(np.ones(3))
    with pytest.raises(TypeError, match="argument 0.*int64.*floating point"):
        sg.func.grad(lambda x: x.sum())(np.arange(3))
    with pytest.raises(ValueError, match="argnums"):
        sg.func.grad(lambda x: x.sum(), argnums=2)(np.ones(3))
    with pytest.raises(ValueError, match=r"argument 0 has 3 and argument 1 has 4"):
        sg.func.vmap(lambda a, b: a + b.sum())(np.ones(3), np.ones((4, 2)))
    with pytest.raises(ValueError, match="no argument is mapped"):
        sg.func.vmap(lambda a: a, in_dims=None)(np.ones(3))
    with pytest.raises(ValueError, match="out_dims is None"):
        sg.func.vmap(lambda a: a * 2, out_dims=None)(np.ones(3))
    with pytest.raises(ValueError, match="in_dims of argument 0 is 2, out of range"):
        sg.func.vmap(lambda a: a, in_dims=2)(np.ones((3, 2)))
    with pytest.raises(sg.func.TracedValueError, match=r"argument 0 of vmap\(branch\).*shape \(2,\)"):
        def branch(a):
            return a if a.sum() > 0 else -a
        sg.func.vmap(branch)(np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"cotangent 0 has shape \(2,\)"):
        sg.func.vjp(lambda x: x * 2, np.ones(3))[1](np.ones(2))
    with pytest.raises(ValueError, match=r"tangent 0 has shape \(2,\)"):
        sg.func.jvp(lambda x: x * 2, (np.ones(3),), (np.ones(2),))


def test_symbolic_arguments_give_graphs_to_compile():
    x = sg.Variable(shape=(3,), dtype="float64", name="x")
    h = sg.func.hessian(lambda x: (x ** 3).sum())(x)
    assert h.shape == (3, 3) and h._value is None
    fn = sg.compile([x], h)
    np.testing.assert_allclose(fn(np.array([1.0, 2.0, 3.0])), np.diag([6.0, 12.0, 18.0]), rtol=0, atol=0)


def test_results_require_grad_only_through_what_the_user_made_require_grad():
    x = np.array([1.0, 2.0, 3.0])
    g = sg.func.grad(lambda x: (x ** 3).sum())(x)
    assert not g.requires_grad and g.grad_fn is None           # as torch.func's
    assert "grad_fn" not in repr(g)
    # a closed-over weight that requires grad: the gradient is differentiable with respect to it
    w = sg.tensor(np.ones(3), requires_grad=True)
    tw = torch.ones(3, dtype=torch.float64, requires_grad=True)
    g = sg.func.grad(lambda x: (x * w).sum() ** 2)(x)
    tg = tf.grad(lambda x: (x * tw).sum() ** 2)(torch.tensor(x))
    assert g.requires_grad and tg.requires_grad
    g.sum().backward()
    tg.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), tw.grad.numpy())


def test_python_lists_take_the_default_float_dtype_as_torch_tensor_does():
    """A list given where a transform wants an array (a cotangent, a tangent) becomes a
    Variable as torch.tensor makes one: float32 for floats (it was float64)."""
    torch = pytest.importorskip("torch")
    from symgrad.func.common import as_variable
    for given in ([1.0, 2.0], [[1, 2]], 2.5):
        assert str(as_variable(given).dtype) == str(torch.tensor(given).dtype).replace("torch.", "symgrad.")
