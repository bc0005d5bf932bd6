"""Indexing with integer arrays and masks, and the functions that select and place by index
(SPEC §7, issue 12): `x[idx]`, `x[mask]`, `x[idx] = v`, index_select, gather, take_along_dim,
masked_fill, where, scatter, scatter_add, index_add, index_put.

Programs are written once against a module `T` and run with `T = torch` and `T = symgrad`
(eager, backward on compiled C); symbolic graphs are compiled to C and run on the interpreter,
whose gradients are checked against float64 finite differences, and both against torch.
Expected values come from torch or from finite differences, never from symgrad."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import symgrad as sg
from conftest import numeric_grad, value

PROGRAMS = {}


def program(fn):
    PROGRAMS[fn.__name__] = fn
    return fn


def arr(seed, *shape, dtype=np.float64):
    return np.random.default_rng(seed).uniform(-2, 2, shape).astype(dtype)


@program
def integer_indices_in_every_place(T):
    """Lists, numpy arrays and integer tensors, mixed with ints, slices, None and `...`: the
    advanced dims stand in place when adjacent, first when not (ints select before)."""
    x = T.tensor(arr(1, 2, 3, 4), requires_grad=True)
    keys = [([0, 1],), (slice(None), [0, 2, 2]), ([0, 1], slice(None), [1, 2]), ([[0], [1]], 0, [1, 2, 3]),
            (0, slice(None), [1, -1]), (None, [1, 0], Ellipsis, None), (Ellipsis, [3, 3]),
            (np.array([1, 0]),), (T.tensor([[1, 0], [0, 0]]), T.tensor([2, -3])), ([0, 1], None, [1, 2]),
            (slice(1, None), T.tensor(1)), (0, [0, 1], None, [1, 2]), ([],)]
    out = {}
    loss = 0
    for k, key in enumerate(keys):
        y = x[key]
        out[f"x[{key}]"] = y
        out[f"shape of x[{key}]"] = tuple(y.shape)
        loss = loss + (y * (k + 1)).sum()
    loss.backward()
    out["x.grad"] = x.grad
    return out


@program
def repeated_indices_add_up(T):
    """An embedding lookup: rows used several times get their gradients added."""
    W = T.tensor(arr(2, 5, 3), requires_grad=True)
    idx = T.tensor([[0, 2, 2], [4, 0, 2]])
    e = W[idx]
    loss = (e.tanh() * T.tensor(arr(3, 2, 3, 3))).sum()
    loss.backward()
    return {"e": e, "loss": loss, "W.grad": W.grad}


@program
def boolean_masks(T):
    x = T.tensor(arr(4, 3, 4), requires_grad=True)
    y = x * 2
    pos = y[y > 0]
    rows = x[np.array([True, False, True])]
    cols = x[:, T.tensor([True, False, True, True])]
    sel = T.masked_select(x, x < -0.5)
    (pos.sum() + (rows ** 2).sum() + cols.exp().sum() + sel.sum()).backward()
    z = x.detach().clone()
    z[z > 1] = 0
    z[T.tensor([False, True, False])] = -1.0
    return {"pos": pos, "rows": rows, "cols": cols, "sel": sel, "x.grad": x.grad, "z": z,
            "nonzero": T.nonzero(z == 0), "where1": T.where(z == 0)[1]}


@program
def select_gather_take_along(T):
    x = T.tensor(arr(5, 3, 4), requires_grad=True)
    i = T.tensor([2, 0, 2])
    ys = {"index_select0": x.index_select(0, i), "index_select1": T.index_select(x, 1, i),
          "gather1": x.gather(1, T.tensor([[0, 0], [3, 1], [2, 2]])),
          "gather0": T.gather(x, 0, T.tensor([[2, 1, 0, 0]])),
          "gather_kw": T.gather(input=x, dim=-1, index=T.tensor([[3], [3], [0]])),
          "take_along1": T.take_along_dim(x, T.tensor([[0], [3], [1]]), dim=1),
          "take_along_flat": T.take_along_dim(x, T.tensor([5, 0, 11])),
          "take_along_bcast": T.take_along_dim(x, T.tensor([[1], [2]]), dim=0),
          "argmax_pick": x.gather(1, x.argmax(1, keepdim=True))}
    loss = sum(((y - 0.5) ** 2).sum() for y in ys.values())
    loss.backward()
    return {**ys, "x.grad": x.grad}


@program
def masked_fill_and_where(T):
    x = T.tensor(arr(6, 3, 4), requires_grad=True)
    v = T.tensor(0.75, requires_grad=True)
    m = x > 0.5
    ys = {"fill_number": x.masked_fill(m, -1.0), "fill_int": T.masked_fill(x, m, 2),
          "fill_bcast": x.masked_fill(T.tensor([True, False, True, False]), 2.5),
          "fill_value_tensor": x.masked_fill(m, v), "fill_kw": T.masked_fill(input=x, mask=m, value=3.0),
          "where_scalar_other": T.where(m, x, 0.0), "where_scalar_input": T.where(m, 1.0, x),
          "where_both": T.where(x > 0, x, x * x)}
    sum((y * y).sum() for y in ys.values()).backward()
    z = T.zeros(2, 3)
    z.masked_fill_(T.tensor([[True, False, True], [False, False, True]]), 4.0)
    return {**ys, "x.grad": x.grad, "v.grad": v.grad, "z": z,
            "where_ints": T.where(T.tensor([True, False]), 1, 0),
            "where_floats": T.where(T.tensor([True, False]), 1.0, 0)}


@program
def assignment_and_scatter(T):
    w = T.tensor(arr(7, 4, 3), requires_grad=True)
    y = w * 1
    y[[0, 0, 2]] = T.tensor(arr(8, 3, 3), requires_grad=False)        # repeated row: the last wins
    y[T.tensor([1, -1]), T.tensor([0, 2])] += 5
    y[:, [2]] *= 3
    a = T.scatter_add(w, 0, T.tensor([[0, 1, 2], [0, 0, 0]]), w[:2] * 2)
    b = w.scatter(1, T.tensor([[1], [2], [0], [1]]), w[:, :1] * 3)
    c = w.index_add(0, T.tensor([3, 3]), w[1:3] ** 2)
    d = T.index_put(w, (T.tensor([0, 2, 0]), T.tensor([1, 1, 1])), T.tensor(7.0, dtype=T.float64),
                    accumulate=True)
    e = w.scatter(0, T.tensor([[3, 3, 3]]), value=-2.0)
    ((y ** 2).sum() + (a * a).sum() + b.sum() + (c * w).sum() + (d ** 3).sum() + e.sum()).backward()
    z = T.zeros(3, 4)
    z.index_add_(1, T.tensor([1, 1]), T.ones(3, 2))
    z.scatter_add_(0, T.tensor([[2, 2, 2, 2]]), T.ones(1, 4))
    z.index_put_((T.tensor([0, 0]),), T.tensor([1., 2, 3, 4]), accumulate=True)
    z.scatter_(1, T.tensor([[0], [0], [3]]), T.full((3, 1), 9.0))
    return {"y": y, "a": a, "b": b, "c": c, "d": d, "e": e, "w.grad": w.grad, "z": z}


@program
def embedding_bag_training(T):
    """A few steps of gradient descent on an embedding table indexed by integer tensors."""
    E = T.tensor(arr(9, 6, 4), requires_grad=True)
    W = T.tensor(arr(10, 4, 2), requires_grad=True)
    tokens = T.tensor([[0, 3, 3], [5, 1, 0], [2, 2, 2]])
    target = T.tensor(arr(11, 3, 2))
    losses = []
    for _ in range(3):
        h = E[tokens].mean(1)
        loss = ((h @ W - target) ** 2).mean()
        loss.backward()
        with T.no_grad():
            E -= 0.5 * E.grad
            W -= 0.5 * W.grad
        E.grad.zero_()
        W.grad.zero_()
        losses.append(loss.item())
    return {"losses": T.tensor(losses), "E": E, "W": W}


@pytest.mark.parametrize("backend", ["c", "interp"])
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_same_results_as_torch(name, backend, torch, monkeypatch):
    """backward() runs on compiled C (the default) and on the interpreter."""
    monkeypatch.setenv("SYMGRAD_EAGER_BACKEND", backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # torch's notes on list keys
        theirs = PROGRAMS[name](torch)
    ours = PROGRAMS[name](sg)
    assert ours.keys() == theirs.keys()
    for key in ours:
        a, b = ours[key], theirs[key]
        if isinstance(b, tuple):
            assert tuple(a) == b, f"{name}: {key}"
            continue
        got, want = value(a), value(b)
        assert got.shape == want.shape, f"{name}: {key}: shape {got.shape}, torch {want.shape}"
        assert got.dtype == want.dtype, f"{name}: {key}: dtype {got.dtype}, torch {want.dtype}"
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=f"{name}: {key}")


def test_grad_fn_names():
    x = sg.tensor(arr(12, 3, 4), requires_grad=True)
    i = sg.tensor([0, 2])
    assert type(x[i].grad_fn).__name__ == "IndexBackward0"
    assert type(x.index_select(0, i).grad_fn).__name__ == "IndexSelectBackward0"
    assert type(x.gather(0, i[None, :].expand(2, 2)).grad_fn).__name__ == "GatherBackward0"
    assert type(x.masked_fill(x > 0, 0).grad_fn).__name__ == "MaskedFillBackward0"
    assert x[i].grad_fn.next_functions[0][0].variable is x


# --- symbolic graphs: compiled C, the interpreter, finite differences and torch ------------------

def _graph(dtype):
    x = sg.Variable(shape=(5, 4), dtype=dtype, name="x", requires_grad=True)
    i = sg.Variable(shape=(3,), dtype="int64", name="i")
    j = sg.Variable(shape=(2, 3), dtype="int32", name="j")
    m = sg.Variable(shape=(5, 4), dtype="bool", name="m")
    y = x * 1
    y[i[:2]] = x[:2] * 0.5 + 1.0                  # an assignment at integer Variables
    y[m] = 0.5                                    # a symbolic mask, filled with a number
    outs = [x[i], x[:, i], x[j, i], x[i, 1:3], sg.index_select(x, 1, i % 4), sg.gather(x, 0, j % 5),
            sg.take_along_dim(x[:, :3], (i % 5)[None, :], dim=0), x.masked_fill(m, -3.0), sg.where(m, x, 1.0),
            x[[0, 4, 0]] * 2.0, y]
    return [x, i, j, m], outs


def _arrays(dtype):
    rng = np.random.default_rng(13)
    return [rng.uniform(-1, 1, (5, 4)).astype(dtype), np.array([3, -1, 0]),
            np.array([[0, 1, 1], [-5, 3, 0]], np.int32), rng.random((5, 4)) > 0.6]


def _torch_outputs(torch, a):
    x = torch.tensor(a[0], requires_grad=True)
    i, j, m = torch.tensor(a[1]), torch.tensor(a[2]).long(), torch.tensor(a[3])
    y = x * 1
    y[i[:2]] = x[:2] * 0.5 + 1.0
    y[m] = 0.5
    outs = [x[i], x[:, i], x[j, i], x[i, 1:3], torch.index_select(x, 1, i % 4), torch.gather(x, 0, j % 5),
            torch.take_along_dim(x[:, :3], (i % 5)[None, :], dim=0), x.masked_fill(m, -3.0),
            torch.where(m, x, 1.0), x[[0, 4, 0]] * 2.0, y]
    return x, outs


@pytest.fixture(scope="module", params=["float32", "float64"])
def compiled(request):
    dtype = request.param
    inputs, outs = _graph(dtype)
    fns = {be: sg.compile(inputs, outs, backend=be) for be in ("c", "interp")}
    return dtype, fns, outs


def _seeds(outs, dtype):
    rng = np.random.default_rng(14)
    return [rng.uniform(0.5, 1.5, o.shape).astype(dtype) for o in outs]


def test_compiled_equals_the_interpreter(compiled):
    dtype, fns, outs = compiled
    a = _arrays(dtype)
    seeds = _seeds(outs, dtype)
    for got, want in zip(fns["c"].forward(*a), fns["interp"].forward(*a)):
        np.testing.assert_array_equal(got, want)
    grads = fns["c"].backward(*a, grad_outputs=seeds), fns["interp"].backward(*a, grad_outputs=seeds)
    for got, want in zip(*grads):
        np.testing.assert_array_equal(got, want)


def test_against_torch_and_finite_differences(compiled, torch):
    dtype, fns, outs = compiled
    a = _arrays(dtype)
    x, touts = _torch_outputs(torch, a)
    got = fns["c"].forward(*a)
    rtol = 1e-5 if dtype == "float32" else 1e-12
    for k, (g, t) in enumerate(zip(got, touts)):
        np.testing.assert_allclose(g, value(t), rtol=rtol, atol=rtol, err_msg=f"output {k}")
    seeds = _seeds(outs, dtype)
    sum((o * torch.tensor(s)).sum() for o, s in zip(touts, seeds)).backward()
    (gx,) = fns["c"].backward(*a, grad_outputs=seeds)
    np.testing.assert_allclose(gx, value(x.grad), rtol=rtol, atol=rtol)
    if dtype == "float64":                          # the interpreter against float64 differences
        (gi,) = fns["interp"].backward(*a, grad_outputs=seeds)

        def f(xv, *rest):
            return float(sum(np.sum(o * s) for o, s in zip(fns["interp"].forward(xv, *rest), seeds)))
        np.testing.assert_allclose(gi, numeric_grad(f, a, 0), rtol=1e-6, atol=1e-6)


def test_scatter_as_a_reduction_where_no_column_sums(monkeypatch, torch):
    """Backends without column sums (CUDA; C with SYMGRAD_COLUMN_SUMS=0) add up per output
    element instead: the gradient is torch's."""
    monkeypatch.setenv("SYMGRAD_COLUMN_SUMS", "0")
    inputs, outs = _graph("float64")
    loss = sum((o * (k + 1.0)).sum() for k, o in enumerate(outs))
    fn = sg.compile(inputs, loss)
    assert "added up at the positions" in fn.backward.source
    a = _arrays("float64")
    x, touts = _torch_outputs(torch, a)
    sum((o * (k + 1.0)).sum() for k, o in enumerate(touts)).backward()
    np.testing.assert_allclose(fn.backward(*a)[0], x.grad.numpy(), rtol=1e-12)


def test_second_derivative_through_a_gather(torch):
    a = arr(15, 4, 3)
    idx = np.array([[0, 3], [3, 3]])
    x = sg.tensor(a, requires_grad=True)
    (g,) = sg.grad((x[idx] ** 3).sum(), [x])
    (h,) = sg.grad((g * g).sum(), [x])
    t = torch.tensor(a, requires_grad=True)
    (tg,) = torch.autograd.grad((t[idx] ** 3).sum(), [t], create_graph=True)
    (th,) = torch.autograd.grad((tg * tg).sum(), [t])
    np.testing.assert_allclose(value(h), value(th), rtol=1e-10)


# --- errors -------------------------------------------------------------------------------------

def test_out_of_range_indices_are_clear_errors():
    x = sg.tensor(arr(16, 3, 4), requires_grad=True)
    with pytest.raises(IndexError, match=r"index 5 is out of bounds for dimension 0 with size 3.*\(3, 4\)"):
        x[[0, 5]]
    with pytest.raises(IndexError, match="index -5 is out of bounds for dimension 1 with size 4"):
        x[:, sg.tensor([-5])]
    with pytest.raises(IndexError, match="index -1 is out of bounds"):
        x.index_select(0, sg.tensor([-1]))           # as torch: no negative indices here
    with pytest.raises(RuntimeError, match="index 4 is out of bounds"):
        x.gather(1, sg.tensor([[4]]))
    with pytest.raises(IndexError, match="shape mismatch"):
        x[[0, 1], [0, 1, 2]]
    with pytest.raises(IndexError, match="integer or bool"):
        x[sg.tensor([0.5])]
    with pytest.raises(IndexError, match="mask"):
        x[np.array([True, False])]
    with pytest.raises(IndexError, match="vector"):
        x.index_select(0, [[0]])
    with pytest.raises(RuntimeError, match="same number of dimensions"):
        x.gather(0, [0])
    with pytest.raises(RuntimeError, match="boolean masks"):
        x.masked_fill(sg.tensor([1, 0, 1, 0]), 1.0)


def test_masks_on_symbolic_variables_suggest_where():
    x = sg.Variable(shape=(3, 4), name="x")
    with pytest.raises(IndexError, match=r"where.*masked_fill"):
        x[x > 0]
    with pytest.raises(RuntimeError, match="where"):
        sg.nonzero(x)
    y = sg.where(x > 0, x, 0.0) + x.masked_fill(x < 0, 1.0)       # what to use instead
    xv = arr(17, 3, 4, dtype=np.float32)
    np.testing.assert_array_equal(sg.compile([x], y)(xv), np.where(xv > 0, xv, 0) + np.where(xv < 0, 1, xv))


def test_compiled_code_reports_bad_indices_and_never_reads_outside(tmp_path):
    """Indices the graph could not check while it was built are checked by the compiled code:
    an IndexError naming the indexed Variable, never a read outside the buffer. Run in a
    subprocess: a wild read would crash the interpreter."""
    script = textwrap.dedent("""
        import numpy as np, symgrad as sg
        x = sg.Variable(shape=(4, 3), name="table", requires_grad=True)
        i = sg.Variable(shape=(2,), dtype="int64", name="i")
        for backend in ("c", "interp"):
            fn = sg.compile([x, i], (x[i] ** 2).sum(), backend=backend)
            xv = np.ones((4, 3), np.float32)
            assert fn(xv, np.array([3, -4])) == 6.0
            for bad in ([4, 0], [0, -5], [2 ** 40, 0], [-2 ** 62, 1]):
                for call in (fn.forward, fn.backward):
                    try:
                        call(xv, np.array(bad))
                    except IndexError as e:
                        assert "table" in str(e) and "(4, 3)" in str(e), str(e)
                    else:
                        raise SystemExit(f"{backend}: no error for {bad}")
        print("ok")
    """)
    import os
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(sg.__file__)))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env=env)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_assignment_at_repeated_symbolic_indices_keeps_the_last(torch):
    """x[idx] = v where idx repeats a position: PyTorch (on the CPU) keeps the last value, and
    so does the graph, whose indices are only known when it runs. The value written over gets
    no gradient (finite differences agree); PyTorch gives it the position's gradient too."""
    x = sg.Variable(shape=(4, 2), dtype="float64", name="x", requires_grad=True)
    v = sg.Variable(shape=(3, 2), dtype="float64", name="v", requires_grad=True)
    i = sg.Variable(shape=(3,), dtype="int64", name="i")
    y = x * 1
    y[i] = v
    out = (y * y * sg.tensor(arr(18, 4, 2))).sum()
    a = [arr(19, 4, 2), arr(20, 3, 2), np.array([2, -2, 0])]
    tx, tv = (torch.tensor(b, requires_grad=True) for b in a[:2])
    ty = tx * 1
    ty[torch.tensor(a[2])] = tv
    tout = (ty * ty * torch.tensor(arr(18, 4, 2))).sum()
    tout.backward()
    for backend in ("c", "interp"):
        fn = sg.compile([x, v, i], out, backend=backend)
        np.testing.assert_allclose(fn(*a), value(tout), rtol=1e-12)
        gx, gv = fn.backward(*a)
        np.testing.assert_allclose(gx, value(tx.grad), rtol=1e-12)
        np.testing.assert_allclose(gv[1:], value(tv.grad)[1:], rtol=1e-12)
        np.testing.assert_allclose(gv, numeric_grad(lambda *b: float(fn(*b)), a, 1), atol=1e-7)
        assert not gv[0].any()


def test_in_place_change_of_an_input_after_an_in_place_change_of_its_user(torch):
    """`t = y * 2; t += 1; y *= 5`: t's old node still reads the y it saw (found with
    `y[idx] *= 3`, whose gather reads y directly)."""
    def run(T):
        w = T.tensor([0.5, 1.0], requires_grad=True)
        y = w * 1
        t = y * 2
        t += 1
        y *= 5
        (t.sum() + y.sum()).backward()
        return w.grad
    np.testing.assert_array_equal(value(run(sg)), value(run(torch)))


def test_an_assignment_through_a_symbolic_index_captures_no_array_of_the_tensors_size():
    """x[i] = v builds each element's flat position as a graph node (iota), not a constant
    array of x's size that every compile would carry."""
    import torch
    from symgrad.codegen.ir import lower
    x = sg.Variable(shape=(300, 40), name="x")
    i = sg.Variable(shape=(3,), dtype="int64", name="i")
    y = x * 1
    y[i] = 0.5
    assert lower([x, i], [y]).consts == []
    a = np.random.default_rng(0).normal(size=(300, 40)).astype(np.float32)
    idx = np.array([4, 299, 0])
    t = torch.tensor(a)
    t[torch.tensor(idx)] = 0.5
    np.testing.assert_array_equal(sg.compile([x, i], y)(a, idx), t.numpy())
