"""The kernel IR: loop bodies are data (no C text before rendering), the kernel passes are
named and switchable like the graph's, and the generated code reads well (gradients named
after their inputs, no copy-only locals, comments down to the buffers read)."""
from __future__ import annotations

import io
import re

import numpy as np
import pytest

import symgrad as sg
from symgrad.codegen import kernel as K
from symgrad.codegen.ir import lower
from symgrad.codegen.names import NameTable
from symgrad.codegen.render import c_text
from symgrad.codegen.schedule import Scheduler


def _graph():
    x = sg.Variable(shape=(6, 5), name="x", requires_grad=True)
    W = sg.Variable(shape=(5, 3), name="W1", requires_grad=True)
    y = sg.log_softmax(sg.tanh(x @ W), 1)[:, 1:3].sum() + sg.cat([x, x * 2], 0).max()
    return [x, W], y


def _schedule(args, outputs, kernel_passes=None):
    return Scheduler(lower(args, outputs), NameTable(), kernel_passes=kernel_passes).build()


def test_kernels_hold_expressions_not_text():
    args, y = _graph()
    grads = sg.grad(y, args)
    schedule = _schedule(args, [y, *grads])
    exprs = []
    for k in schedule.kernels:
        exprs += [let.expr for let in k.lets]
        for entry in list(k.extra.get("stores", ())) + list(k.extra.get("accs", ())):
            exprs += [entry["value"], entry["index"]]
    assert exprs

    def check(e):                      # K.walk skips what is not an Expr: look at the fields
        assert isinstance(e, K.Expr), f"not kernel IR: {e!r}"
        if isinstance(e, K.Ref):
            return check(e.let.expr)
        for child in K.children(e):
            check(child)
    for e in exprs:
        check(e)
    with pytest.raises(AssertionError, match="not kernel IR"):
        check(K.Call("exp", ("x[i0]",), "float", "float"))      # C text inside is caught


def test_affine_forms_normalise():
    i, j = K.Idx("i0"), K.Idx("i1")
    a = K.affine(i) * 8 + j + 3
    b = K.affine(j) + K.affine(i) * 8 + 1 + 2
    assert a == b and hash(a) == hash(b)
    assert (a - b) == K.ZERO and (a - b).is_const
    assert a.coefficient(i) == 8 and a.coefficient(j) == 1 and a.const == 3
    assert c_text(a) == "i0 * 8 + i1 + 3"
    assert c_text(K.affine(i) * -2 + 5) == "-i0 * 2 + 5"
    assert c_text(K.Bin("%", K.affine(i) - 1, K.affine(2))) == "((i0 - 1) % 2)"


def test_loads_and_substitution():
    args, y = _graph()
    schedule = _schedule(args, [y])
    loads = [ld for k in schedule.kernels for ld in K.loads(*(let.expr for let in k.lets))]
    assert {ld.buf.name for ld in loads} >= {"x"}
    ld = loads[0]
    replaced = K.substitute(ld, lambda e: K.Lit(0, "float") if isinstance(e, K.Load) else None)
    assert replaced == K.Lit(0, "float")


@pytest.mark.parametrize("after", ["schedule", "merge_nests", "merge_rows", "drop_copies"])
def test_debugprint_after_a_kernel_pass_prints_the_kernels(after):
    x = sg.Variable(shape=(4, 72), name="x", requires_grad=True)
    fn = sg.compile([x], sg.softmax(x * 2, 1).sum(), backend="interp")
    text = sg.debugprint(fn, after=after, file=io.StringIO())
    kernels = re.findall(r"^kernel \d+", text, re.M)
    # softmax's row max, exp and row sum: separate nests until merge_nests puts them together
    # (3), and merge_rows runs them in turn for each row, the loss's sum carried across the
    # rows (1); the row's exp then needs no memory beyond one row
    assert len(kernels) == {"schedule": 5, "merge_nests": 3}.get(after, 1), text
    if after not in ("schedule", "merge_nests"):
        assert "(over all the rows)" in text and "row buffer: t_exp[72]" in text
    assert "acc" in text and "expf(" in text
    assert ("(rows)" in text and "part 1 (nest)" in text) == (after not in ("schedule", "merge_nests"))


def test_kernel_passes_switch_off_by_name_and_keep_the_results(monkeypatch):
    args, y = _graph()
    grads = sg.grad(y, args)
    rng = np.random.default_rng(3)
    xv, wv = rng.normal(size=(6, 5)).astype(np.float32), rng.normal(size=(5, 3)).astype(np.float32)
    want = sg.compile(args, [y, *grads], backend="interp")(xv, wv)
    sources = {}
    for disabled in ("", "merge_nests", "drop_copies", "merge_nests,drop_copies"):
        monkeypatch.setenv("SYMGRAD_DISABLE_PASSES", disabled)
        fn = sg.compile(args, [y, *grads])
        for got, w in zip(fn(xv, wv), want):
            np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6, err_msg=disabled)
        fn.forward.source
        sources[disabled] = fn.forward.n_kernels
    assert sources[""] < sources["merge_nests"], sources
    monkeypatch.setenv("SYMGRAD_DISABLE_PASSES", "merge_nest")
    with pytest.raises(ValueError, match="merge_nests"):
        sg.compile(args, y)


def test_generated_code_names_gradients_and_has_no_copy_only_locals():
    x = sg.Variable(shape=(16, 8), name="x")
    W1 = sg.Variable(shape=(8, 4), name="W1", requires_grad=True)
    b = sg.Variable(shape=(4,), name="b", requires_grad=True)
    loss = (sg.tanh(x @ W1 + b) ** 2).sum() + sg.softmax(x @ W1, 1).sum()
    fn = sg.compile([x, W1, b], loss)
    src = fn.value_and_grad.source
    params = re.findall(r"\*restrict (\w+),?\s+/\* (?:arg|out)", src)
    assert params[-2:] == ["dW1", "db"], params
    assert not re.search(r"const \w+ (v\d+_\d+) = (v\d+_\d+);", src), "a local that only copies another"
    # strides are numbers
    assert not re.search(r"\(\(1 \* ", src) and "- (0)" not in src
    # comments name the buffers a loop reads rather than cutting the formula short
    assert "..." not in "".join(re.findall(r"/\* (?:t_|out|d)\w* = .*\*/", src))


def test_scratch_is_a_workspace_allocated_once_so_calls_take_no_page_faults():
    """The generated function takes its scratch from the caller (one workspace per thread,
    reused): a steady-state call maps no new memory. Before, every call malloc'ed and freed
    the scratch: thousands of page faults a call for a few MB."""
    resource = pytest.importorskip("resource")
    x = sg.Variable(shape=(1024, 512), name="x", requires_grad=True)
    fn = sg.compile([x], sg.logsumexp(x, 1).sum())
    src = fn.value_and_grad.source
    assert "malloc(" not in src and "sg_workspace" in src
    xv = np.random.default_rng(0).normal(size=(1024, 512)).astype(np.float32)
    for _ in range(3):
        fn.value_and_grad(xv)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        fn.value_and_grad(xv)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10
    assert faults < 64, f"{faults} page faults per call (the scratch alone is {2 * 1024 * 512 * 4} bytes)"


def _gelu(shape):
    x = sg.Variable(shape=shape, name="x", requires_grad=True)
    return x, 0.5 * x * (1 + sg.tanh(0.7978845608 * (x + 0.044715 * x * x * x)))


def test_a_sum_over_two_loops_vectorises_its_inner_loop():
    """A simd pragma on the outer of two reduced loops leaves the inner one (and its tanhf)
    scalar: the inner loop gets it, the outer one the threads."""
    x, y = _gelu((128, 1024))
    src = sg.compile([x], y.sum()).value_and_grad.source
    body = src[src.index("double acc"):]
    assert re.search(r"#pragma omp parallel for reduction\(\+:acc\d+\) if\(!sg_serial\)\s+for \(int64_t i0",
                     body), body[:300]
    assert re.search(r"#pragma omp simd reduction\(\+:acc\d+_row\)\s+for \(int64_t i1", body), body[:300]


def test_threads_go_where_the_work_is_not_where_the_iterations_are():
    """The parallel cut-off is an estimated cost: a GELU over 256 x 1024 (a tanh an element)
    runs on threads, a copy of the same size does not."""
    x, y = _gelu((256, 1024))
    gelu = sg.compile([x], y, backend="c").forward.source
    z = sg.Variable(shape=(256, 1024), name="z")
    copy = sg.compile([z], z * 2.0).forward.source
    assert "omp parallel for" in gelu and "omp parallel for" not in copy


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_row_fusion_runs_a_rows_reductions_and_uses_together_and_keeps_the_numbers(dim):
    x = sg.Variable(shape=(6, 72), name="x", requires_grad=True)
    out = [sg.log_softmax(x, dim), sg.logsumexp(x * 3.0, dim), (x - x.mean(dim, keepdim=True)).abs().sum()]
    xv = np.random.default_rng(5).normal(size=(6, 72)).astype(np.float32)
    seed = [np.ones((6, 72), np.float32), np.ones(6 if dim == 1 or dim == -1 else 72, np.float32),
            np.ones((), np.float32)]
    want = sg.compile([x], out, backend="interp")
    fn = sg.compile([x], out)
    for got, w in zip(fn(xv), want(xv)):
        np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6)
    for got, w in zip(fn.backward(xv, grad_outputs=seed), want.backward(xv, grad_outputs=seed)):
        np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6)
    # rows are the outer loop only when the reduced dim is the inner one
    assert ("row fusion" in fn.forward.source) == (dim != 0)


def test_short_rows_are_not_fused():
    """Rows of ten (cross-entropy over ten classes) run as separate nests: fused, their
    per-row costs outweighed what staying in cache saves."""
    src = _cross_entropy_rows()
    assert "row fusion" not in src
    x = sg.Variable(shape=(128, 64), name="x")
    assert "row fusion" in sg.compile([x], sg.log_softmax(x, 1)).forward.source


def _cross_entropy_rows():
    """Cross-entropy of 10 logits a row: its rows compare each column with the row's label."""
    logits = sg.Variable(shape=(128, 10), name="logits", requires_grad=True)
    labels = sg.Variable(shape=(128,), dtype=sg.int64, name="labels")
    return sg.compile([logits, labels], sg.nn.functional.cross_entropy(logits, labels)).value_and_grad.source


def _gelu_layers():
    """Two GELU layers' value_and_grad: the forward map stores five temporaries of each GELU
    for the backward (too many pairs of buffers for gcc to check for overlap at run time)."""
    x = sg.Variable(shape=(64, 256), name="x")
    w1 = sg.Variable(shape=(256, 256), name="w1", requires_grad=True)
    w2 = sg.Variable(shape=(256, 256), name="w2", requires_grad=True)
    h = _gelu_of(_gelu_of(x @ w1) @ w2)
    return sg.compile([x, w1, w2], (h * h).mean()).value_and_grad.source


def _layer_norm_relu():
    """Layer norm over the last dim of (4, 32, 256), relu, summed: the loss (a sum over all the
    rows) of a selected value, in the rows' vectorised loop."""
    x = sg.Variable(shape=(4, 32, 256), name="x", requires_grad=True)
    w = sg.Variable(shape=(256,), name="w", requires_grad=True)
    d = x - x.mean(-1, keepdim=True)
    y = d / sg.sqrt((d * d).mean(-1, keepdim=True) + 1e-5)
    return sg.compile([x, w], sg.relu(y * w).sum()).value_and_grad.source


def _gelu_of(x):
    return 0.5 * x * (1 + sg.tanh(0.7978845608 * (x + 0.044715 * x ** 3)))


@pytest.mark.parametrize("case", ["gelu_logsumexp", "cross_entropy", "gelu_layers", "layer_norm_relu",
                                  "exact_gelu_softplus", "relu_total", "elementwise_ops_0", "elementwise_ops_1"])
def test_the_compiler_vectorises_every_loop_marked_simd(tmp_path, case):
    """gcc's vectorisation report on generated code: every loop the vectorise pass marks (a
    row max with NaN flags, sums holding tanh and exp, a row of exp beside a comparison with
    the row's label, maps storing many temporaries, a loss summing a relu across rows) is
    vectorised."""
    import shutil
    import subprocess

    from symgrad import build
    cc = build.c_compiler()
    if "gcc" not in build.compiler_version(cc).lower() and not shutil.which("gcc"):
        pytest.skip("the vectorisation report is gcc's")
    if not build.vector_math_flags():
        pytest.skip("no libmvec here: tanhf and expf have no vector variants to call")
    if case == "cross_entropy":
        src = _cross_entropy_rows()
    elif case == "exact_gelu_softplus":         # erf and log1p: libmvec's too
        x = sg.Variable(shape=(256, 1024), name="x", requires_grad=True)
        loss = (sg.nn.functional.gelu(x) + sg.nn.functional.softplus(x)).sum()
        src = sg.compile([x], loss).value_and_grad.source
        assert "erff(" in src and "log1pf(" in src, src
    elif case.startswith("elementwise_ops"):    # every one of the registry's, in two maps storing
        from symgrad.ops import OPS             # each (gcc gives up on a loop storing 20 outputs)
        x = sg.Variable(shape=(64, 1024), name="x")
        y = sg.Variable(shape=(64, 1024), name="y")
        names = [name for name, op in sorted(OPS.items()) if op.kind == "elementwise" and op.public and
                 op.differentiable]
        assert len(names) >= 15 and "floor" in names
        half = names[int(case[-1])::2]
        src = sg.compile([x, y], [getattr(sg.functional, n)(x) if OPS[n].arity == 1 else
                                  getattr(sg.functional, n)(x, y) for n in half]).forward.source
    elif case == "relu_total":                  # a loss of a select, summed over two loops
        x = sg.Variable(shape=(64, 1024), name="x", requires_grad=True)
        src = sg.compile([x], (sg.relu(x) ** 2).sum()).value_and_grad.source
    elif case == "layer_norm_relu":
        src = _layer_norm_relu()
        assert "_row += " in src, src           # (the loss a row at a time, in float)
    elif case == "gelu_layers":
        src = _gelu_layers()
        assert re.search(r"#pragma omp simd\n[^}]*= tanhf\(", src), src     # the forward map
    else:
        x, y = _gelu((128, 1024))
        src = sg.compile([x], sg.logsumexp(y, 1).sum()).value_and_grad.source
    path = tmp_path / "kernel.c"
    path.write_text(src)
    # the flags such a module is built with: -O3 for long loops, -O2 for rows of ten
    flags = [f for f in build.c_flags(case != "cross_entropy") + list(build.vector_math_flags())
             if f != "-shared" and not f.startswith("-l")]
    report = subprocess.run([cc, *flags, "-fopt-info-vec-optimized", "-fopt-info-loop-optimized", "-c",
                             str(path), "-o", str(tmp_path / "kernel.o")],
                            capture_output=True, text=True, check=True).stderr
    # (a plain copy becomes a call of memcpy: as good as vectorised)
    vectorised = {int(m) for m in re.findall(
        r"kernel\.c:(\d+):\d+: optimized: (?:loop vectorized|Loop \d+ distributed: split to 0 loops)", report)}
    lines = src.splitlines()
    marked = [n for n, line in enumerate(lines, 1) if "#pragma omp simd" in line]
    # the row max and the row sum, and the maps walking rows in order (one map, for the GELU)
    assert len(marked) >= (1 if case in ("exact_gelu_softplus", "relu_total") or case.startswith("elementwise")
                           else 2), src

    def body(n):                # the lines of the loop under the pragma on line n (innermost:
        depth, end = 0, n       # no other loop inside it for gcc to report instead)
        for end in range(n + 1, len(lines) + 1):
            depth += lines[end - 1].count("{") - lines[end - 1].count("}")
            if depth <= 0 and end > n + 1:
                break
        return set(range(n + 1, end + 1))
    # gcc reports the loop on its `for` line or on a statement inside it (the first that is not
    # hoisted out); the pragma's own line it reports for the lanes' reduction, vectorised or not
    missing = [n for n in marked if not body(n) & vectorised]
    assert not missing, f"loops marked simd at lines {missing} were not vectorised:\n{report}"


def test_a_narrow_product_of_a_transposed_matrix_copies_it_plain_and_keeps_the_numbers():
    """x @ W.T with few columns (N under 16) and many rows stores W.T plain first (BLAS runs
    it twice as fast so); at odd sizes, with B transposed and plain, the numbers are numpy's
    (float64), and only the narrow transposed products big enough for BLAS get the copy."""
    shapes = [(129, 129, 3), (65, 129, 10), (129, 17, 15), (65, 17, 1), (129, 3, 17)]
    rng = np.random.default_rng(8)
    inputs, outputs, values, want = [], [], [], []
    for k, (m, kk, n) in enumerate(shapes):
        x = sg.Variable(shape=(m, kk), name=f"x{k}")
        w = sg.Variable(shape=(n, kk), name=f"w{k}")     # used transposed
        v = sg.Variable(shape=(kk, n), name=f"v{k}")     # used as it is
        inputs += [x, w, v]
        outputs += [x @ w.T, x @ v]
        xv, wv, vv = (rng.normal(size=s).astype(np.float32) for s in ((m, kk), (n, kk), (kk, n)))
        values += [xv, wv, vv]
        want += [xv.astype(np.float64) @ wv.T.astype(np.float64), xv.astype(np.float64) @ vv]
    fn = sg.compile(inputs, outputs)
    for got, w in zip(fn(*values), want):
        np.testing.assert_allclose(got, w, rtol=1e-4, atol=1e-4)
    src = fn.forward.source
    copies = re.findall(r"/\* t_permute\w* = permute\((w\d)\) \*/", src)
    assert sorted(copies) == ["w0", "w1", "w2"], copies    # not N=1 (too small) nor N=17


def test_a_transposed_matrix_several_products_read_is_stored_plain_once():
    """W.T read by several products (an RNN's recurrent weight, in each step's input
    gradient) is stored plain once for all of them, where one such product alone (too large
    for BLAS's small kernels) reads it in place; the numbers are numpy's."""
    rng = np.random.default_rng(4)
    hs = [sg.Variable(shape=(32, 256), name=f"h{k}") for k in range(3)]
    w = sg.Variable(shape=(256, 256), name="w")
    shared = sg.compile(hs + [w], [h @ w.T for h in hs])
    alone = sg.compile(hs[:1] + [w], hs[0] @ w.T)
    hv = [rng.normal(size=(32, 256)).astype(np.float32) for _ in hs]
    wv = rng.normal(size=(256, 256)).astype(np.float32)
    for got, h in zip(shared(*hv, wv), hv):
        np.testing.assert_allclose(got, h.astype(np.float64) @ wv.T.astype(np.float64), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(alone(hv[0], wv), hv[0].astype(np.float64) @ wv.T, rtol=1e-4, atol=1e-4)
    assert len(re.findall(r"/\* t_permute\w* = permute\(w\) \*/", shared.forward.source)) == 1
    assert "= permute(w)" not in alone.forward.source


def test_a_weight_gradient_over_a_sequence_is_one_product_of_the_steps_rows(monkeypatch):
    """An RNN's weight gradients (a product a step, added up) become one product of the steps'
    rows stacked (sum_of_products), the stacking one nest a step; value and gradients are
    torch's in float64, and the same with the rewrite switched off."""
    import torch
    steps, batch, width = 6, 4, 48
    rng = np.random.default_rng(5)
    values = [rng.normal(size=s).astype(np.float32) * 0.4
              for s in ((steps, batch, width), (width, width), (width, width))]

    def rnn(T, xs, wx, wh):
        h = T.tanh(T.matmul(xs[0], wx))
        for t in range(1, steps):
            h = T.tanh(T.matmul(xs[t], wx) + T.matmul(h, wh))
        return T.sum(h * h)
    ts = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]
    rnn(torch, *ts).backward()
    names = ("xs", "wx", "wh")
    for disabled in ("", "sum_of_products"):
        monkeypatch.setenv("SYMGRAD_DISABLE_PASSES", disabled)
        vs = [sg.Variable(shape=v.shape, name=n, requires_grad=n != "xs") for n, v in zip(names, values)]
        fn = sg.compile(vs, rnn(sg, *vs))
        _, grads = fn.value_and_grad(*values)
        for g, t in zip(grads, ts[1:]):
            np.testing.assert_allclose(g, t.grad.numpy(), rtol=2e-4, atol=1e-5)
        pieces = len(re.findall(r"= concat piece \[\d+:\d+\] along dim 0:", fn.value_and_grad.source))
        # stacked: for wx, xs[t] and the pre-activation gradient of each step; for wh, those of steps 1...
        assert pieces == (0 if disabled else 2 * steps + 2 * (steps - 1)), pieces


def test_a_transposed_operand_is_read_in_place_not_copied_transposed():
    """A product of a computed value's transpose stores the value and reads it transposed
    (no buffer holding the transposed copy); the numbers are numpy's."""
    a = sg.Variable(shape=(64, 32), name="a")
    b = sg.Variable(shape=(64, 48), name="b")
    fn = sg.compile([a, b], sg.tanh(a).T @ b)
    av, bv = (np.random.default_rng(k).normal(size=s).astype(np.float32) for k, s in ((1, (64, 32)), (2, (64, 48))))
    np.testing.assert_allclose(fn(av, bv), np.tanh(av.astype(np.float64)).T @ bv, rtol=1e-4, atol=1e-5)
    src = fn.forward.source
    assert "t_tanh" in src and "t_permute" not in src, src


@pytest.mark.parametrize("shapes", [((160, 200), (200, 160)),      # split by rows
                                    ((3, 256), (256, 5600)),         # fewer rows than threads: by columns
                                    ((8, 40, 64), (64, 72)),         # a batch against one matrix: rows stacked
                                    ((2, 3, 48, 64), (3, 64, 56))])  # batches that broadcast
def test_large_and_batched_products_shared_among_threads_keep_the_numbers(shapes):
    """A product large enough is shared out in blocks (each one BLAS call on one thread), and
    a batch of products shares out whole products; the gradients go through the same
    products transposed. Both against numpy in float64."""
    r = np.random.default_rng(7)
    a = sg.Variable(shape=shapes[0], name="a", requires_grad=True)
    b = sg.Variable(shape=shapes[1], name="b", requires_grad=True)
    out = sg.tanh(a @ b)
    av, bv = (r.normal(size=s).astype(np.float32) for s in shapes)
    fn = sg.compile([a, b], out)
    seed = r.normal(size=out.shape).astype(np.float32)
    a64, b64 = av.astype(np.float64), bv.astype(np.float64)
    y = np.tanh(a64 @ b64)
    np.testing.assert_allclose(fn(av, bv), y, rtol=1e-4, atol=1e-5)
    dz = seed * (1 - y * y)
    ga, gb = dz @ np.swapaxes(b64, -1, -2), np.swapaxes(a64, -1, -2) @ dz
    ga = ga.sum(axis=tuple(range(ga.ndim - a64.ndim))).reshape(a64.shape) if ga.ndim > a64.ndim else ga
    while gb.ndim > b64.ndim:
        gb = gb.sum(axis=0)
    gb = gb.sum(axis=tuple(k for k in range(gb.ndim - 2) if b64.shape[k] == 1 and gb.shape[k] != 1),
                keepdims=True) if gb.ndim > 2 else gb
    got_a, got_b = fn.backward(av, bv, grad_outputs=seed)
    np.testing.assert_allclose(got_a, ga, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(got_b, gb, rtol=1e-3, atol=1e-4)
    calls = [ln.strip() for ln in fn.forward.source.splitlines() if ln.strip().startswith("sg_matmul_float(")]
    # a batch runs one product a thread (not shared further); a single product may be shared,
    # and so may a batch against one matrix, one product of its rows stacked
    batch = len(shapes[0]) > 2 and len(shapes[1]) > 2
    assert calls and all(c.endswith(", 0);" if batch else ", 1);") for c in calls)


def test_small_integer_powers_are_products_equal_to_the_interpreter_and_to_torch():
    """x**2, x**3, x**-1, x**-2 are multiplies and a division (no libm call), as PyTorch
    computes them, so the three agree to the bit, signed zeros, infinities and NaN included."""
    torch = pytest.importorskip("torch")
    x = sg.Variable(shape=(64,), name="x", requires_grad=True)
    outs = [x ** 3, x ** -2, x ** 2, x ** -1]
    fn = sg.compile([x], outs)
    assert not [ln for ln in fn.forward.source.splitlines() if "powf(" in ln and "SG_SIMD" not in ln]
    xv = np.random.default_rng(3).uniform(-3, 3, 64).astype(np.float32)
    xv[:5] = [0.0, -0.0, np.inf, -np.inf, np.nan]
    t = torch.tensor(xv)
    for got, interp, want in zip(fn(xv), sg.compile([x], outs, backend="interp")(xv),
                                 [t ** 3, t ** -2, t ** 2, t ** -1]):
        for other in (interp, want.numpy()):
            assert np.array_equal(got, other, equal_nan=True)
            assert np.array_equal(np.signbit(got), np.signbit(other))


def test_layer_norm_forward_and_backward_run_row_by_row_in_one_pass():
    """Layer norm with a loss: the row statistics, the normalised values, the loss (carried
    across the rows), dx's row sums and dw's column sums (each thread its own row of them)
    all run in one rows kernel, row by row; what only one row needs lives in row buffers, so
    no full-size temporary is left. The numbers against numpy in float64, rows on threads."""
    N, D = 1024, 512
    x = sg.Variable(shape=(N, D), name="x", requires_grad=True)
    w = sg.Variable(shape=(D,), name="w", requires_grad=True)
    m = x.mean(1, keepdim=True)
    d = x - m
    y = d / sg.sqrt((d * d).mean(1, keepdim=True) + 1e-5)
    loss = sg.tanh(y * w).sum()
    fn = sg.compile([x, w], loss)
    src = fn.value_and_grad.source
    assert src.count("row fusion") == 1 and "reduction(+:" in src and "one row of" in src
    assert "colsum" not in src and "private row of them a thread" in src
    scratch = int(re.search(r"(\d+) bytes of scratch", src).group(1))
    assert scratch <= 64 * 1024, scratch
    r = np.random.default_rng(11)
    xv, wv = r.normal(size=(N, D)).astype(np.float32), r.normal(size=D).astype(np.float32)
    x64, w64 = xv.astype(np.float64), wv.astype(np.float64)
    d64 = x64 - x64.mean(1, keepdims=True)
    s64 = np.sqrt((d64 * d64).mean(1, keepdims=True) + 1e-5)
    y64 = d64 / s64
    t64 = np.tanh(y64 * w64)
    value, (gx, gw) = fn.value_and_grad(xv, wv)
    np.testing.assert_allclose(value, t64.sum(), rtol=1e-4)
    gy = (1 - t64 * t64) * w64
    gx64 = (gy - gy.mean(1, keepdims=True) - y64 * (gy * y64).mean(1, keepdims=True)) / s64
    np.testing.assert_allclose(gx, gx64, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(gw, ((1 - t64 * t64) * y64).sum(0), rtol=1e-3, atol=1e-3)


def test_a_wide_rows_temporaries_are_row_buffers_too():
    """logsumexp over rows of 8000 (32 KB a row): exp's row lives in a row buffer (in L2), not
    in a full-size temporary written to memory and read back; the numbers are numpy's."""
    x = sg.Variable(shape=(16, 8000), name="x", requires_grad=True)
    fn = sg.compile([x], sg.logsumexp(x, -1).sum())
    src = fn.value_and_grad.source
    assert "float t_exp[8000]" in src and re.search(r"\b0 bytes of scratch", src), src
    xv = np.random.default_rng(2).normal(size=(16, 8000)).astype(np.float32) * 3
    x64 = xv.astype(np.float64)
    lse = np.log(np.exp(x64 - x64.max(1, keepdims=True)).sum(1)) + x64.max(1)
    value, (g,) = fn.value_and_grad(xv)
    np.testing.assert_allclose(value, lse.sum(), rtol=1e-5)
    np.testing.assert_allclose(g, np.exp(x64 - lse[:, None]), rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("shape", [(1, 1), (4, 8), (3, 5)])
def test_a_sum_over_every_row_is_read_only_after_the_last_row(shape):
    """A reduction over all rows rides along a rows kernel as a cross-row accumulator; what
    reads its result (a norm's sqrt, a loss's use) must wait for the last row, not read the
    partial sum inside the row loop (found by tests/test_compile_random.py: NaN and wrong norms)."""
    import torch
    rng = np.random.default_rng(0)
    a = rng.standard_normal(shape).astype(np.float32)

    def case(T, x):
        s = T.softmax(x, 1)
        whole = T.norm(T.tanh(s) + 1.5, dim=(0, 1), keepdim=True)
        return whole, s * whole + T.sum(s * x, dim=(0, 1), keepdim=True) * x
    x = sg.Variable(shape=shape, dtype="float32", name="x")
    f = sg.compile([x], list(case(sg, x)))
    expected = [t.numpy() for t in case(torch, torch.tensor(a))]
    for got, want in zip(f(a), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_a_long_function_is_cut_into_parts_that_keep_the_numbers_and_the_checks(monkeypatch, tmp_path):
    """Past PART_STATEMENTS generated statements a function becomes several C functions (gcc's
    register allocation grows faster than linearly in a function's size); the parts see every
    parameter, the scratch and the sizes of named dimensions, and a failed check in one still
    reaches Python."""
    import torch
    from symgrad.codegen import render
    monkeypatch.setattr(render, "PART_STATEMENTS", 3)
    monkeypatch.setenv("SYMGRAD_BUILD_DIR", str(tmp_path))
    rng = np.random.default_rng(1)
    a, w = rng.standard_normal((6, 5)).astype(np.float32), rng.standard_normal((5, 4)).astype(np.float32)
    labels = np.array([0, 3, 1, 2, 2, 1])

    def case(T, x, W, y):
        h = T.tanh(x @ W) * 2.0 + T.sigmoid(x.sum(1, keepdim=True))
        return T.nn.functional.cross_entropy(h, y) + (T.softmax(h, 1) ** 2).mean()
    x = sg.Variable(shape=("batch", 5), name="x")
    W = sg.Variable(shape=(5, 4), name="W", requires_grad=True)
    y = sg.Variable(shape=("batch",), dtype="int64", name="y")
    f = sg.compile([x, W, y], case(sg, x, W, y))
    value, (gW,) = f.value_and_grad(a, w, labels)
    assert f.value_and_grad.source.count("_part") >= 4
    tW = torch.tensor(w, requires_grad=True)
    expected = case(torch, torch.tensor(a), tW, torch.tensor(labels))
    expected.backward()
    np.testing.assert_allclose(value, expected.item(), rtol=1e-5)
    np.testing.assert_allclose(gW, tW.grad.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(f(a[:3], w, labels[:3]), case(torch, torch.tensor(a[:3]), torch.tensor(w),
                                                             torch.tensor(labels[:3])).item(), rtol=1e-5)
    with pytest.raises(Exception, match="labels"):
        f(a, w, np.array([0, 4, 1, 2, 2, 1]))


@pytest.mark.parametrize("shape, tiled", [((64, 48), True), ((3, 32, 80), True), ((20, 30), False),
                                          ((16, 16), False)])
def test_a_transposing_copy_runs_in_blocks_and_stays_exact(shape, tiled):
    # x.T read across its rows: the nest is tiled when 16 divides both inner extents (a single
    # 16x16 block is left as it is); values are those of numpy's transpose, bit for bit
    x = sg.Variable(shape=shape, name="x")
    y = sg.transpose(x, -1, -2) * 3.0 + 1.0
    schedule = _schedule([x], [y])
    (nest,) = [k for k in schedule.kernels if k.kind == "nest"]
    names = [v for v, _ in nest.loops]
    assert any(v.endswith("_t") for v in names) == tiled
    if tiled:
        assert [n for _, n in nest.loops][-2:] == [16, 16] and nest.outer == len(nest.loops)
    a = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    fn = sg.compile([x], y)
    expected = np.swapaxes(a, -1, -2) * np.float32(3.0) + np.float32(1.0)
    assert np.array_equal(fn(a), expected)
    assert ("i0_t" in fn.forward.source or "i1_t" in fn.forward.source) == tiled
    off = _schedule([x], [y], kernel_passes=("merge_nests", "drop_copies", "parallelise", "vectorise"))
    assert not any(v.endswith("_t") for k in off.kernels for v, _ in k.loops)


def test_products_read_split_and_merged_heads_in_place_and_keep_the_numbers():
    """Attention heads: a product's operand that splits the model dim into heads
    (reshape, permute) or merges them back reads the stored value in place; only the permute
    that really moves elements is copied, and no reshape is."""
    B, S, D, H = 2, 16, 32, 4
    x = sg.Variable(shape=(B, S, D), name="x", requires_grad=True)
    w = sg.Variable(shape=(D, D), name="w", requires_grad=True)

    def heads(y):
        return sg.permute(sg.reshape(y, (B, S, H, D // H)), (0, 2, 1, 3))
    q = heads(x @ w)
    o = sg.reshape(sg.permute(sg.softmax(q @ sg.transpose(q, -2, -1), -1) @ q, (0, 2, 1, 3)), (B, S, D))
    loss = sg.tanh(o @ w).sum()
    fn = sg.compile([x, w], loss)
    src = fn.value_and_grad.source
    assert not re.search(r"/\* t_reshape\w* = reshape\(", src), src
    rng = np.random.default_rng(3)
    xv, wv = (rng.normal(size=s).astype(np.float32) * 0.3 for s in ((B, S, D), (D, D)))
    want = sg.compile([x, w], loss, backend="interp").value_and_grad(xv, wv)
    got = fn.value_and_grad(xv, wv)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    for g, wg in zip(got[1], want[1]):
        np.testing.assert_allclose(g, wg, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("op", ["amax", "amin"])
@pytest.mark.parametrize("shape, dims, sharing", [
    ((1024, 1024), (0,), "columns"),            # a softmax over dim 0's max: threads share the columns
    ((8, 64, 256), (0, 1), "serial"),           # too few columns to share, a max has no private rows
    ((16, 128, 512), (1,), "outer"),            # the first loop is the output's: threads share it
])
def test_column_extremes_fold_in_memory_order_with_nan_and_signed_zeros(op, shape, dims, sharing, monkeypatch):
    """A max or min over leading dims walks its input in memory order (as column sums do),
    threads sharing what they can, and gives what the strided reduction gives, bit for bit:
    NaN wins, +0 beats -0 for max (-0 for min) in either order, infinities; and numpy's values
    elsewhere."""
    r = np.random.default_rng(9)
    xv = r.normal(size=shape).astype(np.float32)
    flat = xv.reshape(-1, shape[-1])
    flat[3, 5] = np.nan
    flat[:, 7] = 0.0
    flat[::2, 7] = -0.0                         # a column of zeros of both signs
    flat[:, 9] = -0.0
    flat[:, 11] = np.inf if op == "amin" else -np.inf
    flat[1, 11] = -np.inf if op == "amin" else np.inf
    x = sg.Variable(shape=shape, name="x")
    results = {}
    for on in ("1", "0"):
        monkeypatch.setenv("SYMGRAD_COLUMN_SUMS", on)
        fn = sg.compile([x], getattr(sg, op)(x, dims))
        src = fn.forward.source
        assert ("folded in memory order" in src) == (on == "1")
        if on == "1":
            assert ("each thread the same stretch" in src) == (sharing == "columns")
            body = src.split("folded in memory order")[1].split("\n\n")[0]      # (the kernel alone)
            assert ("#pragma omp parallel for" in body) == (sharing == "outer")
            # threads sharing the columns fetch their stretch of the next row (pages stop the
            # hardware prefetcher): x is 4 MB
            assert ("__builtin_prefetch(&x[i0 * 1024 + 1024 + p], 0, 2);" in body) == (sharing == "columns")
        results[on] = np.asarray(fn(xv))
    np.testing.assert_array_equal(results["1"], results["0"])
    assert (np.signbit(results["1"]) == np.signbit(results["0"])).all()
    want = getattr(np, op)(xv.astype(np.float64), axis=dims)
    np.testing.assert_array_equal(results["1"], want.astype(np.float32))


@pytest.mark.parametrize("shape, sharing", [((4096, 256), "a private row of sums a thread"),
                                            ((1024, 1024), "each thread the same stretch of every row"),
                                            ((16, 128, 512), "outer")])
def test_column_sums_are_shared_among_threads_and_keep_the_numbers(shape, sharing):
    """A sum over the first dim: threads add blocks of rows into private rows of sums (few
    columns) or take a stretch of every row (many); over a later dim, they share the first
    loop. Against numpy in float64."""
    dims = (1,) if len(shape) == 3 else (0,)
    x = sg.Variable(shape=shape, name="x")
    fn = sg.compile([x], sg.sum(x * 1.5, dims))
    body = fn.forward.source.split("added up in memory order")[1].split("\n\n")[0]     # (the kernel alone)
    assert (sharing in body) if sharing != "outer" else ("#pragma omp parallel for if" in body)
    assert ("__builtin_prefetch(&x[" in body) == (sharing == "each thread the same stretch of every row")
    xv = np.random.default_rng(10).normal(size=shape).astype(np.float32)
    np.testing.assert_allclose(fn(xv), (1.5 * xv.astype(np.float64)).sum(dims), rtol=1e-5, atol=1e-5)


def test_a_large_cheap_value_of_a_column_normalisation_is_worked_out_again_not_stored(monkeypatch, tmp_path):
    """A batch norm over dim 0: the centred values x - mean feed a sum over dim 0 (the
    variance) and maps after it, which cannot share the loop that makes them; each works them
    out again (schedule._recomputed) rather than one storing 8 MB for the others. Its tanh,
    costlier, stays stored. The numbers, bit for bit, as when stored; against numpy in
    float64."""
    N, D = 2048, 1024
    x = sg.Variable(shape=(N, D), name="x", requires_grad=True)
    d = x - x.mean(0, keepdim=True)
    loss = sg.tanh(d / sg.sqrt((d * d).mean(0, keepdim=True) + 1e-5)).sum()
    xv = np.random.default_rng(12).normal(size=(N, D)).astype(np.float32)
    results = {}
    for limit in (1 << 20, 1 << 60):
        monkeypatch.setattr("symgrad.codegen.schedule.RECOMPUTE_MIN_BYTES", limit)
        monkeypatch.setenv("SYMGRAD_BUILD_DIR", str(tmp_path / str(limit)))    # (not the other's library)
        fn = sg.compile([x], loss)
        full = re.findall(r"float \*restrict (t_\w+) = .*/\* \(2048, 1024\) \*/", fn.value_and_grad.source)
        assert ("t_sub" in full) == (limit != 1 << 20), full
        assert limit != 1 << 20 or full == ["t_tanh"], full
        results[limit] = fn.value_and_grad(xv)
    (v1, g1), (v2, g2) = results.values()
    np.testing.assert_array_equal(g1, g2)
    assert v1 == v2
    x64 = xv.astype(np.float64)
    c = x64 - x64.mean(0)
    y = np.tanh(c / np.sqrt((c * c).mean(0) + 1e-5))
    np.testing.assert_allclose(v1, y.sum(), rtol=1e-5)
