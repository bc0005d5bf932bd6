"""Symbolic dimensions (SPEC §9): a string in a shape names a dimension whose size is given at
each call; one compiled library serves every size.

Each op case is written once as a function of a module `T` and run with `T = torch` (the oracle,
in float64) and `T = symgrad`: compiled once with a named leading dimension `B`, then called at
sizes 1, 2, 7, 64, 300 and 20000 (none of them the trace-time hint; the last large enough that
the loops whose parallel `if` depends on the size run on the threads), forward and gradient."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import symgrad as sg

torch = pytest.importorskip("torch")

SIZES = (1, 2, 7, 64, 300, 20000)      # (20000: large enough for the loops the threads share)
ROOT = Path(__file__).resolve().parents[1]


def _F(T):
    return T.nn.functional


# (name, f(T, *inputs), input specs: (shape with "B" for the named dim, kind)). kind: "any",
# "pos", "labels<n>" (int64 in [0, n)), "index<n>" (int64 in [0, n)).
CASES = [
    ("add_broadcast", lambda T, x, b: x + b, [(("B", 5), "any"), ((5,), "any")]),
    ("mul_column", lambda T, x, c: x * c - c, [(("B", 5), "any"), (("B", 1), "any")]),
    ("unary_chain", lambda T, x: T.tanh(T.exp(x) * 0.5) + T.sigmoid(x) * T.relu(x), [(("B", 4), "any")]),
    ("div_pow", lambda T, x, p: x / p + p ** 1.5, [(("B", 3), "any"), (("B", 3), "pos")]),
    ("sum_dim1", lambda T, x: x.sum(dim=1), [(("B", 6), "any")]),
    ("sum_dim0_keep", lambda T, x: x.sum(dim=0, keepdim=True), [(("B", 6), "any")]),
    ("sum_all", lambda T, x: x.sum(), [(("B", 3, 2), "any")]),
    ("mean_all", lambda T, x: x.mean(), [(("B", 3), "any")]),
    ("mean_dim0", lambda T, x: x.mean(dim=0), [(("B", 4), "any")]),
    ("var_dim0", lambda T, x: x.var(dim=0), [(("B", 4), "any")]),
    ("amax_dim1", lambda T, x: x.amax(dim=1), [(("B", 5), "any")]),
    ("max_dim0", lambda T, x: x.max(dim=0).values, [(("B", 5), "any")]),
    ("matmul", lambda T, x, w: x @ w, [(("B", 6), "any"), ((6, 4), "any")]),
    ("matmul_t_k", lambda T, x: x.t() @ x, [(("B", 5), "any")]),
    ("linear", lambda T, x, w, b: _F(T).linear(x, w, b), [(("B", 6), "any"), ((3, 6), "any"), ((3,), "any")]),
    ("batched_matmul", lambda T, x, w: T.matmul(x, w), [(("B", 3, 4), "any"), ((4, 2), "any")]),
    ("reshape_infer", lambda T, x: x.reshape(-1, 3, 4) * 2.0, [(("B", 12), "any")]),
    ("reshape_flat", lambda T, x: T.tanh(x.reshape(-1)), [(("B", 3), "any")]),
    ("flatten", lambda T, x: T.exp(x).flatten(1), [(("B", 3, 4), "any")]),
    ("view_back", lambda T, x: x.reshape(-1, 4).view(x.shape[0], 12), [(("B", 12), "any")]),
    ("transpose", lambda T, x, w: T.tanh(x.t()) @ w, [(("B", 5), "any"), (("B", 2), "any")]),
    ("permute", lambda T, x: T.exp(x.permute(2, 0, 1)) * 1.5, [(("B", 3, 4), "any")]),
    ("slice_static", lambda T, x: x[:, 1:4] * x[:, ::2][:, :3], [(("B", 6), "any")]),
    ("index_static", lambda T, x: x[:, 2] * x[..., None][:, 0, 0], [(("B", 4), "any")]),
    ("cat_batch", lambda T, x, y: T.cat([x, T.tanh(y)], dim=0), [(("B", 3), "any"), (("B", 3), "any")]),
    ("cat_features", lambda T, x, y: T.cat([x, y * 2.0], dim=1), [(("B", 3), "any"), (("B", 2), "any")]),
    ("stack", lambda T, x, y: T.stack([x, y], dim=1), [(("B", 3), "any"), (("B", 3), "any")]),
    ("softmax", lambda T, x: T.softmax(x, dim=1), [(("B", 7), "any")]),
    ("log_softmax", lambda T, x: T.log_softmax(x, dim=1), [(("B", 7), "any")]),
    ("softmax_batch_dim", lambda T, x: T.softmax(x, dim=0), [(("B", 3), "any")]),
    ("logsumexp", lambda T, x: T.logsumexp(x, dim=1), [(("B", 5), "any")]),
    ("cross_entropy", lambda T, x, y: _F(T).cross_entropy(x, y), [(("B", 10), "any"), (("B",), "labels10")]),
    ("cross_entropy_sum", lambda T, x, y: _F(T).cross_entropy(x, y, reduction="sum"),
     [(("B", 4), "any"), (("B",), "labels4")]),
    ("mse", lambda T, x, y: _F(T).mse_loss(x, y), [(("B", 3), "any"), (("B", 3), "any")]),
    ("where", lambda T, x, y: T.where(x > 0, x, y * 3.0), [(("B", 4), "any"), (("B", 4), "any")]),
    ("gather", lambda T, x, i: T.gather(x, 1, i), [(("B", 5), "any"), (("B", 2), "index5")]),
    ("expand", lambda T, x, b: x * b.expand(x.shape[0], 4), [(("B", 4), "any"), ((1, 4), "any")]),
    ("divide_by_size", lambda T, x: x.sum(dim=0) / x.shape[0], [(("B", 3), "any")]),
    ("layer_norm", lambda T, x: _F(T).layer_norm(x, (5,)), [(("B", 5), "any")]),
    ("mlp", lambda T, x, w1, b1, w2: T.tanh(x @ w1 + b1) @ w2, [(("B", 8), "any"), ((8, 6), "any"),
                                                                ((6,), "any"), ((6, 3), "any")]),
]


def _data(spec, b, rng):
    shape, kind = spec
    shape = tuple(b if n == "B" else n for n in shape)
    if kind.startswith("labels") or kind.startswith("index"):
        n = int(kind.lstrip("labelsindex"))
        return rng.integers(0, n, shape).astype(np.int64)
    if kind == "pos":
        return rng.uniform(0.5, 2.0, shape)
    return rng.uniform(-2.0, 2.0, shape)


def _torch_result(f, arrays):
    ins = [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    out = f(torch, *ins)
    value = out.detach().numpy()
    floats = [t for t in ins if t.requires_grad]
    if not out.dtype.is_floating_point:
        return value, None
    loss = (out * torch.cos(out)).sum()
    grads = torch.autograd.grad(loss, floats, allow_unused=True)
    return value, [np.zeros(t.shape) if g is None else g.numpy() for t, g in zip(floats, grads)]


def _symbolic(f, specs):
    inputs = [sg.Variable(shape=tuple("B" if n == "B" else n for n in shape),
                          dtype="float64" if not kind.startswith(("labels", "index")) else "int64",
                          name=f"in{k}", requires_grad=not kind.startswith(("labels", "index")))
              for k, (shape, kind) in enumerate(specs)]
    out = f(sg, *inputs)
    loss = (out * sg.cos(out)).sum()
    return inputs, out, loss


@pytest.mark.parametrize("name,f,specs", CASES, ids=[c[0] for c in CASES])
def test_op_at_every_size(name, f, specs):
    """One library per case, called at every size, against torch (values and gradients)."""
    inputs, out, loss = _symbolic(f, specs)
    assert "B" in repr(out.shape) or out.ndim == 0 or name in ("sum_dim0_keep", "mean_dim0", "var_dim0",
                                                                "max_dim0", "matmul_t_k", "transpose",
                                                                "softmax_batch_dim", "divide_by_size")
    fn = sg.compile(inputs, [out.detach(), loss])
    rng = np.random.default_rng(len(name))
    # every size twice, the second time in the other order: the first call at a size binds and
    # checks it, later ones take the fast path (the sizes and the scratch switched over)
    for b in (0,) + SIZES + SIZES[::-1]:
        arrays = [_data(s, b, rng) for s in specs]
        try:
            want, want_grads = _torch_result(f, arrays)
        except (RuntimeError, IndexError) as e:        # (a max over nothing): symgrad raises too
            assert b == 0, e
            with pytest.raises(ValueError, match="which is 0 in this call"):
                fn.value_and_grad(*arrays)
            continue
        (value, _), grads = fn.value_and_grad(*arrays)
        _close(value, want, f"{name} at B={b}")
        assert value.shape == want.shape, (name, b)
        for k, (g, w) in enumerate(zip(grads, want_grads)):
            _close(g, w, f"{name}: gradient {k} at B={b}")


def _close(got, want, what):
    """float64 agreement up to rounding: relative, and absolute at the scale of the values (a
    product summed over 20000 rows, differentiated through cos, rounds at ~1e-9 of its scale)."""
    scale = max(1.0, float(np.max(np.abs(want)))) if np.size(want) else 1.0
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * scale, err_msg=what)


def _source(f, specs):
    """The C of a case's value and gradients, generated without compiling."""
    from symgrad.backends import backend
    from symgrad.codegen.render import render_module, schedule_function
    inputs, out, loss = _symbolic(f, specs)
    wrt = [v for v in inputs if v.requires_grad]
    grads = list(sg.grad(loss, wrt))
    c = backend("c")
    context, _, _ = schedule_function(inputs, [out.detach(), loss] + grads, "symgrad_case", "case", c)
    return render_module([context], "case", c)


@pytest.mark.parametrize("name,f,specs", CASES, ids=[c[0] for c in CASES])
def test_no_hint_reaches_the_code(name, f, specs):
    """The generated text is the same whatever the trace-time hints of the named sizes: no hint
    is baked into a loop bound, an offset, a constant (a mean's 1/count) or a decision."""
    from symgrad.dims import hints_from
    with hints_from(10007):
        first = _source(f, specs)
    with hints_from(50021):
        second = _source(f, specs)
    assert first == second


def test_interpreter_binds_the_sizes():
    """backend="interp" runs the same graphs with each call's sizes (reshape targets, counts)."""
    for name in ("reshape_infer", "mean_dim0", "cross_entropy", "expand", "divide_by_size", "cat_batch"):
        _, f, specs = next(c for c in CASES if c[0] == name)
        inputs, out, loss = _symbolic(f, specs)
        fn = sg.compile(inputs, [out.detach(), loss], backend="interp")
        rng = np.random.default_rng(3)
        for b in (1, 5):
            arrays = [_data(s, b, rng) for s in specs]
            want, want_grads = _torch_result(f, arrays)
            (value, _), grads = fn.value_and_grad(*arrays)
            np.testing.assert_allclose(value, want, rtol=1e-9, atol=1e-9, err_msg=f"{name} at B={b}")
            for g, w in zip(grads, want_grads):
                np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-9, err_msg=f"{name} at B={b}")


def _mlp_graph():
    x = sg.Variable(shape=("batch", 6), dtype="float64", name="x")
    labels = sg.Variable(shape=("batch",), dtype="int64", name="labels")
    w = sg.Variable(shape=(6, 3), dtype="float64", name="w", requires_grad=True)
    loss = sg.nn.functional.cross_entropy(sg.tanh(x @ w), labels)
    return [x, labels, w], loss


@pytest.fixture(scope="module")
def mlp_fn():
    inputs, loss = _mlp_graph()
    return sg.compile(inputs, loss)


@pytest.mark.parametrize("backend", ["c", "interp"])
def test_sizes_must_agree_across_inputs(backend, mlp_fn):
    fn = mlp_fn if backend == "c" else sg.compile(*_mlp_graph(), backend="interp")
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(32, 6)), rng.normal(size=(6, 3))
    labels = rng.integers(0, 3, 16)
    for call in (fn, fn.forward, fn.backward, fn.value_and_grad):
        with pytest.raises(ValueError) as e:
            call(x, labels, w)
        assert "'x' has batch=32 but input 1 'labels' has batch=16" in str(e.value)
    with pytest.raises(ValueError, match=r"expects shape \(32, 6\), got \(32, 7\)"):
        fn(rng.normal(size=(32, 7)), rng.integers(0, 3, 32), w)
    with pytest.raises(ValueError, match="2 dims, not 1"):
        fn(x, rng.integers(0, 3, (32, 1)), w)
    with pytest.raises(TypeError, match="dtype"):
        fn(x.astype(np.float32), rng.integers(0, 3, 32), w)
    with pytest.raises(IndexError, match=r"out of range|must lie in \[0, 3\)"):   # checked at run time
        fn(x, np.full(32, 3), w)


def test_shapes_print_their_names():
    x = sg.Variable(shape=("batch", 784), name="x")
    assert str(x.shape[0]) == "batch" and repr(x.shape[0]) == "batch"
    assert f"{x.shape}" == "torch.Size([batch, 784])" and x.shape[1] == 784
    assert x.shape == (x.shape[0], 784) and x.shape[0] != 10007 and x.shape[0] != sg.Variable(
        shape=("other",)).shape[0]
    y = x.reshape(-1, 28, 28)
    assert repr(y.shape) == "torch.Size([batch, 28, 28])"
    assert repr(x.flatten().shape) == "torch.Size([batch*784])"
    assert repr(sg.cat([x, x]).shape) == "torch.Size([batch*2, 784])"
    assert "batch" in repr(x) and "(batch, 784)" in repr(x)
    with pytest.raises(ValueError, match="identifier"):
        sg.Variable(shape=("two words", 3))


def test_what_cannot_be_expressed_is_an_error():
    x = sg.Variable(shape=("batch", 6), name="x")
    with pytest.raises(IndexError, match=r"dim 0 is the named dimension batch"):
        x[:3]
    with pytest.raises(IndexError, match="named dimension batch"):
        x[0]
    with pytest.raises(ValueError, match="batch"):
        x.reshape(2, -1, 6)                 # splitting batch in two: no way to say it
    with pytest.raises(ValueError, match="batch"):
        x + sg.Variable(shape=("other", 6))
    with pytest.raises(Exception, match="batch"):
        x[x > 0]                            # a boolean mask's count is known only from the values
    with pytest.raises(TypeError, match="symbolic dimension"):
        float(x.shape[0])
    with pytest.raises(TypeError, match="named dimension batch"):
        len(x)


ONE_LIBRARY = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    import numpy as np
    import symgrad as sg

    def files():
        return sorted(str(p) for p in Path(os.environ["SYMGRAD_BUILD_DIR"]).rglob("*") if p.is_file())

    x = sg.Variable(shape=("batch", 6), dtype="float64", name="x")
    labels = sg.Variable(shape=("batch",), dtype="int64", name="labels")
    w = sg.Variable(shape=(6, 3), dtype="float64", name="w", requires_grad=True)
    fn = sg.compile([x, labels, w], sg.nn.functional.cross_entropy(sg.tanh(x @ w), labels))
    rng = np.random.default_rng(0)
    wv = rng.normal(size=(6, 3))
    fn.value_and_grad(rng.normal(size=(3, 6)), rng.integers(0, 3, 3), wv)
    before = files()
    for b in (1, 2, 7, 64, 300):
        fn.value_and_grad(rng.normal(size=(b, 6)), rng.integers(0, 3, b), wv)
        fn(rng.normal(size=(b, 6)), rng.integers(0, 3, b), wv)
    assert files() == before, sorted(set(files()) - set(before))

    step = sg.jit(sg.func.value_and_grad(lambda w, x, y: sg.nn.functional.cross_entropy(x @ w, y)),
                  dynamic=True)
    step(wv, rng.normal(size=(5, 6)), rng.integers(0, 3, 5))
    before = files()
    for b in (1, 2, 7, 64, 300):
        step(wv, rng.normal(size=(b, 6)), rng.integers(0, 3, b))
    assert step.traces == 1, step.traces
    assert files() == before, sorted(set(files()) - set(before))
    print("ok", len(before))
""")


def test_one_library_serves_every_size(tmp_path):
    """No file is added to a fresh build directory by calls at new sizes (sg.compile of named
    dims, and sg.jit(dynamic=True))."""
    env = dict(os.environ, SYMGRAD_BUILD_DIR=str(tmp_path / "build"), PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", ONE_LIBRARY], env=env, capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok ") and int(done.stdout.split()[1]) > 0


def _mlp_loss(T, F, params, x, y):
    w1, b1, w2, b2 = params
    h = T.tanh(x @ w1 + b1)
    return F.cross_entropy(T.relu(h) @ w2 + b2, y)


def test_jit_dynamic_traces_once_and_matches_torch(caplog):
    calls = []

    def loss(params, x, y):
        calls.append(1)
        return _mlp_loss(sg, sg.nn.functional, params, x, y)
    step = sg.jit(sg.func.value_and_grad(loss), dynamic=True)
    rng = np.random.default_rng(1)
    params = [rng.normal(size=(12, 8)) * 0.4, rng.normal(size=8) * 0.1, rng.normal(size=(8, 4)) * 0.4,
              rng.normal(size=4) * 0.1]
    for b in (5, 1, 2, 7, 64, 300):
        x, y = rng.normal(size=(b, 12)), rng.integers(0, 4, b)
        value, grads = step(params, x, y)
        tp = [torch.tensor(p, requires_grad=True) for p in params]
        want = _mlp_loss(torch, torch.nn.functional, tp, torch.tensor(x), torch.tensor(y))
        want_grads = torch.autograd.grad(want, tp)
        np.testing.assert_allclose(value, want.item(), rtol=1e-12, atol=1e-14)
        for g, w in zip(grads, want_grads):
            np.testing.assert_allclose(g, w.numpy(), rtol=1e-10, atol=1e-13)
    assert step.traces == 1 and len(calls) == 1
    assert "b0" in step.lower(params, x, y).forward.source      # the batch is a size argument
    # a non-leading dimension or a dtype that changes traces again, once, and says why
    with caplog.at_level("INFO", logger="symgrad"):
        step([p[:, :7] if p.ndim == 2 and p.shape[1] == 8 else p[:7] if p.shape == (8,) else p[:7]
              for p in params], rng.normal(size=(3, 12)), rng.integers(0, 4, 3))
        step([p[:, :7] if p.ndim == 2 and p.shape[1] == 8 else p[:7] if p.shape == (8,) else p[:7]
              for p in params], rng.normal(size=(9, 12)), rng.integers(0, 4, 9))
    assert step.traces == 2
    assert "changed shape from (12, 8) to (12, 7)" in caplog.text
    step(params, x.astype(np.float32), y)
    assert step.traces == 3


def test_jit_dynamic_shares_equal_leading_sizes():
    f = sg.jit(lambda x, y: (x * y[:, None]).sum(), dynamic=True)
    f(np.ones((4, 3)), np.ones(4))
    assert f(np.ones((6, 3)), np.arange(6.0)) == 45.0 and f.traces == 1
    with pytest.raises(ValueError, match="has b0=6 but"):       # sizes that shared a name must agree
        f.lower(np.ones((4, 3)), np.ones(4))(np.ones((6, 3)), np.ones(5))
    # a call whose sizes no longer agree is another pattern: traced again (and then broadcasting fails)
    with pytest.raises(ValueError, match="broadcast"):
        f(np.ones((6, 3)), np.ones(5))


EXPORT_MAIN = r"""
#include <stdio.h>
#include <stdint.h>
#include "mlp.h"
int main(void) {
    float x[7 * 6], w[6 * 3], loss, dw[6 * 3];
    int64_t labels[7];
    for (int i = 0; i < 7 * 6; i++) x[i] = (float)((i * 37 % 11) - 5) / 4.0f;
    for (int i = 0; i < 6 * 3; i++) w[i] = (float)((i * 13 % 7) - 3) / 5.0f;
    for (int i = 0; i < 7; i++) labels[i] = i % 3;
    for (int64_t b = 1; b <= 7; b += 3) {
        if (mlp_value_and_grad(x, labels, w, &loss, dw, NULL, b)) return 1;
        printf("%lld %.9g", (long long)b, loss);
        for (int i = 0; i < 6 * 3; i++) printf(" %.9g", dw[i]);
        printf("\n");
    }
    return mlp_value_and_grad_workspace_bytes(7) < 0;
}
"""


def test_export_takes_the_sizes_as_arguments(tmp_path):
    from symgrad.build import c_compiler, have_c_compiler
    if not have_c_compiler():
        pytest.skip("no C compiler")
    x = sg.Variable(shape=("batch", 6), name="x")
    labels = sg.Variable(shape=("batch",), dtype="int64", name="labels")
    w = sg.Variable(shape=(6, 3), name="w", requires_grad=True)
    fn = sg.compile([x, labels, w], sg.nn.functional.cross_entropy(sg.tanh(x @ w), labels))
    fn.export(tmp_path, prefix="mlp")
    header = (tmp_path / "mlp.h").read_text()
    assert "float *dw, void *workspace, int64_t n_batch);" in header
    assert "mlp_value_and_grad_workspace_bytes(int64_t n_batch);" in header and "[batch][6]" in header
    (tmp_path / "main.c").write_text(EXPORT_MAIN)
    cc = c_compiler()
    subprocess.run([cc, "-std=c99", "-O2", "main.c", "mlp.c", "-o", "main", "-lm"], cwd=tmp_path, check=True,
                   capture_output=True, timeout=120)
    done = subprocess.run(["./main"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    xs = np.array([((i * 37 % 11) - 5) / 4.0 for i in range(42)], np.float32).reshape(7, 6)
    ws = np.array([((i * 13 % 7) - 3) / 5.0 for i in range(18)], np.float32).reshape(6, 3)
    for line in done.stdout.splitlines():
        b, loss, *grad = line.split()
        b = int(b)
        tw = torch.tensor(ws, requires_grad=True)
        want = torch.nn.functional.cross_entropy(torch.tanh(torch.tensor(xs[:b]) @ tw),
                                                 torch.arange(b) % 3)
        np.testing.assert_allclose(float(loss), want.item(), rtol=2e-5)
        want_grad = torch.autograd.grad(want, tw)[0].numpy().reshape(-1)
        np.testing.assert_allclose(np.array(grad, float), want_grad, rtol=2e-4, atol=1e-6)
    assert len(done.stdout.splitlines()) == 3


def test_cuda_says_it_takes_no_named_dims():
    x = sg.Variable(shape=("batch", 3), name="x")
    with pytest.raises(NotImplementedError, match="named dimensions batch"):
        sg.compile([x], x * 2.0, backend="cuda")


def test_transforms_over_named_dims():
    """sg.func: vmap(grad) per-example gradients under jit(dynamic=True), jvp of a function of
    a named-dim input, each against torch.func; a Jacobian with a row per batch element raises."""
    def loss(w, x, y):
        return sg.nn.functional.cross_entropy((x @ w)[None], y[None])

    def tloss(w, x, y):
        return torch.nn.functional.cross_entropy((x @ w)[None], y[None])
    per_example = sg.jit(sg.func.vmap(sg.func.grad(loss), in_dims=(None, 0, 0)), dynamic=True)
    rng = np.random.default_rng(2)
    w = rng.normal(size=(5, 3))
    for b in (2, 1, 9):
        x, y = rng.normal(size=(b, 5)), rng.integers(0, 3, b)
        want = torch.func.vmap(torch.func.grad(tloss), in_dims=(None, 0, 0))(
            torch.tensor(w), torch.tensor(x), torch.tensor(y))
        np.testing.assert_allclose(per_example(w, x, y), want.numpy(), rtol=1e-10, atol=1e-14)
    assert per_example.traces == 1

    x = sg.Variable(shape=("n", 5), dtype="float64", name="x")
    wv = sg.Variable(shape=(5,), dtype="float64", name="w")
    v = sg.Variable(shape=(5,), dtype="float64", name="v")
    out, tangent = sg.func.jvp(lambda w: sg.tanh(x @ w), (wv,), (v,))
    fn = sg.compile([x, wv, v], [out, tangent])
    for b in (1, 6):
        xs, ws, vs = rng.normal(size=(b, 5)), rng.normal(size=5), rng.normal(size=5)
        want = torch.func.jvp(lambda w: torch.tanh(torch.tensor(xs) @ w), (torch.tensor(ws),),
                              (torch.tensor(vs),))
        for got, w_ in zip(fn(xs, ws, vs), want):
            np.testing.assert_allclose(got, w_.numpy(), rtol=1e-10, atol=1e-14)
    with pytest.raises(NotImplementedError, match="n of them"):
        sg.func.jacrev(lambda w: sg.tanh(x @ w))(wv)


def test_creation_with_named_shapes():
    """zeros/ones/full of a named shape are values of the graph, never arrays of a hint's size."""
    x = sg.Variable(shape=("batch", 3), dtype="float64", name="x")
    y = x + sg.ones(x.shape, dtype="float64") * 2.0 + sg.full(x.shape, 0.5, dtype="float64") + \
        sg.zeros_like(x)
    fn = sg.compile([x], y)
    for b in (1, 4):
        np.testing.assert_array_equal(fn(np.ones((b, 3))), np.full((b, 3), 3.5))
    with pytest.raises(ValueError, match="named dimensions"):
        sg.randn(x.shape)
    with pytest.raises(ValueError, match="requires grad"):
        sg.zeros(x.shape, requires_grad=True)


def _elementwise_graph(batch):
    """Every elementwise op of the registry (float64 operands its rule accepts), on operands of
    (batch, 4) and (4,), as one graph; the scalar adds up every float result (for gradients)."""
    from symgrad.ops import OPS
    from symgrad.variable import apply
    ops = sorted(n for n, op in OPS.items() if op.kind == "elementwise" and n not in ("check_range", "cast"))
    x = sg.Variable(shape=(batch, 4), dtype="float64", name="x", requires_grad=True)
    y = sg.Variable(shape=(4,), dtype="float64", name="y", requires_grad=True)
    c = sg.Variable(shape=(batch, 4), dtype="bool", name="c")
    outs = []
    for name in ops:
        args = {1: [x], 2: [x, y], 3: [c, x, y] if name == "where" else [x, x, y]}[OPS[name].arity]
        try:
            outs.append(apply(name, *args))
        except TypeError:                  # not for float64 (bitwise ops)
            continue
    floats = [o for o in outs if o.dtype.kind == "f" and o.requires_grad]
    total = sum((o * sg.cos(o)).sum() for o in floats)
    return [x, y, c], [o.detach() for o in outs] + [total]


def test_every_elementwise_op_of_the_registry_runs_at_every_size():
    """A walk over the registry: a named batch gives the numbers the numpy interpreter (the
    reference, itself checked against torch op by op in test_ops and test_registry) gives at
    that size, forward and gradients, for every elementwise op at once."""
    named = sg.compile(*_elementwise_graph("B"))
    rng = np.random.default_rng(5)
    for b in (1, 7):
        static = sg.compile(*_elementwise_graph(b), backend="interp")
        arrays = [rng.uniform(0.5, 2.0, (b, 4)) * rng.choice([-1.0, 1.0], (b, 4)), rng.uniform(0.5, 2.0, 4),
                  rng.random((b, 4)) > 0.5]
        with np.errstate(all="ignore"):
            got, want = named.value_and_grad(*arrays), static.value_and_grad(*arrays)
        for k, (g, w) in enumerate(zip(got[0] + list(got[1]), want[0] + list(want[1]))):
            np.testing.assert_allclose(g, w, rtol=1e-13, atol=0, equal_nan=True, err_msg=f"output {k}, B={b}")


def test_arithmetic_that_would_see_the_placeholder_raises():
    """A size's int value is a placeholder: a float, a true quotient or a power computed on it
    would be a wrong number, so they raise; integer size arithmetic stays symbolic, and a size
    times a Variable is the Variable's multiplication by the size given at the call."""
    import torch
    x = sg.Variable(shape=("batch", 3), name="x")
    n = x.shape[0]
    for bad in (lambda: n * 0.5, lambda: n + 1.5, lambda: n / 2, lambda: 3 / n, lambda: n ** 0.5,
                lambda: n - np.float64(1.0)):
        with pytest.raises(TypeError, match="symbolic dimension"):
            bad()
    assert str(n ** 2) == "batch*batch" and str(2 * n + 1) == "batch*2 + 1"
    f = sg.compile([x], [n * x, x / n])
    a = np.arange(12.0).reshape(4, 3)
    got = f(a.astype(np.float32))
    t = torch.tensor(a)
    np.testing.assert_allclose(got[0], (4 * t).numpy(), rtol=1e-6)
    np.testing.assert_allclose(got[1], (t / 4).numpy(), rtol=1e-6)
