"""How the C backend behaves around the numbers: fusion into few loop nests, readable and safe
generated source, argument checking, the build cache under concurrency and corruption,
threads, compiler failures, and eager `Variable.backward()` running compiled code.

Expected values come from the numpy interpreter (backend="interp"), numpy or torch."""
from __future__ import annotations

import gc
import hashlib
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import symgrad as sg
import symgrad.compile
import symgrad.build
import symgrad.engine
from compile_helpers import assert_close, check_compiled, compile_both, sample

ROOT = Path(__file__).resolve().parent.parent


def _kernel_comments(source):
    """The comment lines that head loop nests (`/* out0 = ... */`, `/* t_exp = ... */`) inside
    the generated function."""
    body = source[source.index("{", source.index("int symgrad_")):]
    return re.findall(r"^\s+/\* (\w+) = .*\*/\s*$", body, flags=re.M)


def _loop_headers(source):
    body = source[source.index("{", source.index("int symgrad_")):]
    # the matmul helper is not part of the function body, so only kernel loops are counted
    return re.findall(r"for \(int64_t \w+ = 0;", body)


def _params(source, fn="symgrad_forward"):
    head = source[source.index(f"int {fn}("):]
    head = head[:head.index(")\n{")]
    return re.findall(r"\*restrict (\w+)", head)


# --- fusion and readable source -----------------------------------------------------------------


def _fused_graph():
    x = sg.Variable(shape=(16, 8), name="x", requires_grad=True)
    w = sg.Variable(shape=(8,), name="w", requires_grad=True)
    b = sg.Variable(shape=(), name="b", requires_grad=True)
    loss = sg.sum(sg.tanh(x * w + b) ** 2 + sg.exp(-x) * 0.5)
    return [x, w, b], loss


def test_elementwise_chain_and_sum_fuse_into_one_loop_nest():
    inputs, loss = _fused_graph()
    fn = sg.compile(inputs, loss)
    src = fn.forward.source
    assert fn.forward.n_kernels == 1
    assert len(_kernel_comments(src)) == 1, src
    # one nest over the 2 dims of x: exactly two loop headers, no intermediate buffers
    assert len(_loop_headers(src)) == 2, src
    assert "malloc" not in src
    # the user's Variables are the C parameters, by name
    assert _params(src)[:3] == ["x", "w", "b"]
    # and the numbers are the interpreter's and numpy's
    rng = np.random.default_rng(0)
    xv, wv, bv = sample((16, 8), "float32", "any", rng), sample((8,), "float32", "any", rng), \
        np.float32(0.25)
    want = np.sum(np.tanh(xv.astype(np.float64) * wv + bv) ** 2 + np.exp(-xv.astype(np.float64)) * 0.5)
    np.testing.assert_allclose(fn.forward(xv, wv, bv), want, rtol=1e-5)
    check_compiled(inputs, loss, [xv, wv, bv], grad_outputs=None)


def test_user_names_never_reach_the_source_verbatim():
    """Names are the user's strings: they become sanitised identifiers, in code and comments,
    so no name can inject C (nor end a comment)."""
    evil = 'x; system("rm -rf /"); //'
    closer = "y */ int injected = 1; /*"
    x = sg.Variable(shape=(3,), name=evil, requires_grad=True)
    y = sg.Variable(shape=(3,), name=closer, requires_grad=True)
    z = sg.Variable(shape=(3,), name="int", requires_grad=True)        # a C keyword
    z2 = sg.Variable(shape=(3,), name="int", requires_grad=True)       # and the same name again
    out = sg.exp(x) * y + z * z2
    out.name = "out\n#include <evil.h>"
    fn = sg.compile([x, y, z, z2], out)
    for source in (fn.forward.source, fn.backward.source, fn.value_and_grad.source):
        assert evil not in source and "system(" not in source
        assert closer not in source and "injected = 1" not in source.replace("injected___1", "")
        assert "#include <evil.h>" not in source
        assert "int injected" not in source
    params = _params(fn.forward.source)
    assert len(set(params)) == len(params) and "int" not in params
    assert all(re.fullmatch(r"[A-Za-z_]\w*", p) for p in params)
    rng = np.random.default_rng(1)
    check_compiled([x, y, z, z2], out, [sample((3,), "float32", "any", rng) for _ in range(4)])


def _kernels_without_comment(body):
    """The function body's pieces of code (runs of lines between blank lines) whose first line
    is not a comment, leaving out the final `free`/`return`."""
    bad = []
    for chunk in re.split(r"\n\s*\n", body):
        lines = [line for line in chunk.splitlines() if line.strip()]
        if not lines or all(re.match(r"\s*(free\(|return )", line) for line in lines):
            continue
        if not lines[0].lstrip().startswith("/*"):
            bad.append(chunk)
    return bad


def test_generated_source_is_readable():
    x = sg.Variable(shape=(4, 5), name="x", requires_grad=True)
    W = sg.Variable(shape=(5, 3), name="W", requires_grad=True)
    logits = sg.tanh(x @ W)
    loss = sg.logsumexp(logits, 1).mean() + (W ** 2).sum() * 0.1
    fn = sg.compile([x, W], loss)
    for f, which in ((fn.forward, "forward"), (fn.backward._fn(), "backward"),
                     (fn.value_and_grad._fn(), "value_and_grad")):
        src = f.source
        # .path is the library's file in the build dir: every entry point of the compiled function;
        # .source is its shared part and this function's section
        assert Path(f.path).read_text() == f.module_source
        assert src.split("/* ==== ")[0] == f.module_source.split("/* ==== ")[0]
        assert src[src.index(f"/* ==== symgrad_{which} ==== */"):] in f.module_source
        # the file and each function are headed by a comment naming what they compute
        assert re.match(r"/\*\n \* forward, backward and value_and_grad of \(x, W\)", src), src[:300]
        head = re.search(rf"/\* ==== symgrad_{which} ==== \*/\n/\* (.*)\n", src)
        assert head and head.group(1).startswith(which), src[:300]
        assert "x" in head.group(1) and "W" in head.group(1)
        assert "Generated by symgrad" in src
        sig = src.index(f"int symgrad_{which}(")
        before = src[:sig].rstrip().splitlines()[-1]
        assert before.startswith("/*") and which in before, before
        # the parameters carry the user's names
        assert _params(src, f"symgrad_{which}")[:2] == ["x", "W"]
        body = src[src.index("{", sig) + 1:src.index("\n}\n", sig)]
        # every kernel is headed by a comment naming the node it computes
        comments = _kernel_comments(src)
        assert len(comments) >= f.n_kernels >= 1, src
        assert _kernels_without_comment(body) == [], src
        # indented: every line of the body starts with 4 spaces (or is empty, or a directive)
        for line in body.splitlines():
            assert line == "" or line.startswith("    ") or line.startswith("#"), repr(line)
    # the forward's comments name the graph's ops
    assert "matmul" in fn.forward.source and "tanh" in fn.forward.source


def test_several_scalar_kernels_in_one_function_compile():
    """Full reductions, argmax and scalar results side by side: each kernel's locals are its own."""
    x = sg.Variable(shape=(5, 3), dtype="float64", name="x", requires_grad=True)
    outs = [x.sum(), (x * x).sum(), x.max(), x.min(), sg.argmax(x), sg.argmin(x), x[0, 1] * 2,
            x[1, 2] * 3, x.mean(), sg.logsumexp(x)]
    rng = np.random.default_rng(2)
    arrays = [sample((5, 3), "float64", "distinct", rng)]
    # every output has one element, so backward needs no grad_outputs: the float ones are
    # seeded with 1 and the integer ones (argmax, argmin) carry no gradient
    check_compiled([x], outs, arrays, grad_outputs=None)
    check_compiled([x], outs, arrays)


def test_wrt_may_name_inputs_made_without_requires_grad():
    """Gradients with respect to an input listed in `wrt` are its true gradients, whether or
    not it was made with requires_grad=True (never silent zeros)."""
    x = sg.Variable(shape=(3,), dtype="float64", name="x")
    y = sg.Variable(shape=(3,), dtype="float64", name="y", requires_grad=True)
    out = (sg.exp(x) * y).sum() + (x * x).sum()
    xv, yv = np.array([0.1, -0.5, 1.2]), np.array([2.0, -1.0, 0.5])
    for backend in ("c", "interp"):
        fn = sg.compile([x, y], out, wrt=[x, y], backend=backend)
        gx, gy = fn.backward(xv, yv)
        np.testing.assert_allclose(gx, np.exp(xv) * yv + 2 * xv, rtol=1e-12)
        np.testing.assert_allclose(gy, np.exp(xv), rtol=1e-12)
        (gx2,) = sg.compile([x, y], out, wrt=x, backend=backend).backward(xv, yv)
        np.testing.assert_allclose(gx2, gx, rtol=1e-12)
    k = sg.Variable(shape=(3,), dtype="int64", name="k")
    with pytest.raises(TypeError, match="'k'"):
        sg.compile([x, y, k], out + k.sum(), wrt=[x, k])


# --- arguments ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def affine():
    x = sg.Variable(shape=(3, 4), name="x", requires_grad=True)
    w = sg.Variable(shape=(4,), name="w", requires_grad=True)
    s = sg.Variable(shape=(), name="s", requires_grad=True)
    out = sg.tanh(x * w) * s
    return [x, w, s], out, compile_both([x, w, s], out)


def test_wrong_argument_count(affine):
    _, _, (fn, _) = affine
    x, w = np.ones((3, 4), np.float32), np.ones(4, np.float32)
    for call in (fn.forward, lambda *a: fn.backward(*a, grad_outputs=np.ones((3, 4), np.float32)),
                 lambda *a: fn.value_and_grad(*a, grad_outputs=np.ones((3, 4), np.float32))):
        with pytest.raises(TypeError) as e:
            call(x, w)
        msg = str(e.value)
        assert "3" in msg and "2" in msg and "'x'" in msg and "'w'" in msg and "'s'" in msg, msg
        with pytest.raises(TypeError):
            call(x, w, np.float32(1), x)


def test_wrong_argument_shape(affine):
    _, _, (fn, _) = affine
    with pytest.raises(ValueError) as e:
        fn.forward(np.ones((4, 3), np.float32), np.ones(4, np.float32), np.float32(1))
    msg = str(e.value)
    assert "'x'" in msg and "(3, 4)" in msg and "(4, 3)" in msg, msg
    with pytest.raises(ValueError) as e:
        fn.backward(np.ones((3, 4), np.float32), np.ones(5, np.float32), np.float32(1),
                    grad_outputs=np.ones((3, 4), np.float32))
    assert "'w'" in str(e.value) and "(4,)" in str(e.value) and "(5,)" in str(e.value)
    with pytest.raises(ValueError) as e:
        fn.forward(np.ones((3, 4), np.float32), np.ones(4, np.float32), np.ones(1, np.float32))
    assert "'s'" in str(e.value) and "()" in str(e.value) and "(1,)" in str(e.value)
    # a grad_outputs of the wrong shape names both shapes
    with pytest.raises((ValueError, RuntimeError)) as e:
        fn.backward(np.ones((3, 4), np.float32), np.ones(4, np.float32), np.float32(1),
                    grad_outputs=np.ones((4, 3), np.float32))
    assert "(4, 3)" in str(e.value) and "(3, 4)" in str(e.value)


def test_wrong_argument_dtype(affine):
    _, _, (fn, _) = affine
    for bad in (np.ones((3, 4), np.float64), np.ones((3, 4), np.int64), np.ones((3, 4), bool)):
        with pytest.raises(TypeError) as e:
            fn.forward(bad, np.ones(4, np.float32), np.float32(1))
        msg = str(e.value)
        assert "'x'" in msg and "float32" in msg and str(bad.dtype) in msg, msg


def test_arguments_that_are_not_plain_c_arrays(affine):
    """Views, Fortran order, 0-d values, Python numbers, lists and Variables all work, and
    give the interpreter's results."""
    _, out, (fn, ifn) = affine
    rng = np.random.default_rng(3)
    big = sample((6, 8), "float32", "any", rng)
    x_view = big[::2, 1::2]                                  # strided, not contiguous
    x_fortran = np.asfortranarray(sample((3, 4), "float32", "any", rng))
    w_rev = sample((8,), "float32", "any", rng)[::-2]           # negative stride
    g = np.asfortranarray(sample((3, 4), "float32", "any", rng))
    assert not x_view.flags.c_contiguous and not x_fortran.flags.c_contiguous
    read_only = sample((3, 4), "float32", "any", rng)
    read_only.setflags(write=False)
    broadcast = np.broadcast_to(sample((4,), "float32", "any", rng), (3, 4))     # stride 0, read-only
    cases = [(x_view, w_rev, np.float32(0.5)), (x_fortran, w_rev, np.array(2.0, np.float32)),
             (read_only, broadcast[1], 0.75), (broadcast, read_only[0], np.float32(-1)),
             (x_fortran.tolist(), [1.0, 2.0, 3.0, 4.0], 1.5),
             (sg.tensor(x_view.copy()), sg.tensor(np.ascontiguousarray(w_rev)), sg.tensor(np.float32(3)))]
    for args in cases:
        plain = [np.array(a.numpy() if isinstance(a, sg.Variable) else a, np.float32, order="C")
                 for a in args]
        assert_close(fn.forward(*args), ifn.forward(*plain))
        for a, b in zip(fn.backward(*args, grad_outputs=g), ifn.backward(*plain, grad_outputs=g)):
            assert_close(a, b)
        v, grads = fn.value_and_grad(*args, grad_outputs=g)
        assert_close(v, ifn.forward(*plain))
    # the caller's arrays are not written to
    before = x_fortran.copy()
    fn.forward(x_fortran, w_rev, 1.0)
    np.testing.assert_array_equal(x_fortran, before)
    # results are new arrays each call
    r1, r2 = fn.forward(*cases[0]), fn.forward(*cases[0])
    assert r1 is not r2 and not np.shares_memory(r1, r2)


def test_grad_outputs_are_taken_as_variable_backward_takes_them(affine):
    """grad_outputs of another float dtype, Python lists and Variables are cast to the output's
    dtype (as Variable.backward(gradient) does); outputs without gradient ignore theirs."""
    _, out, (fn, ifn) = affine
    rng = np.random.default_rng(8)
    args = [sample((3, 4), "float32", "any", rng), sample((4,), "float32", "any", rng), np.float32(1.5)]
    g = sample((3, 4), "float64", "any", rng)
    want = ifn.backward(*args, grad_outputs=g.astype(np.float32))
    for seed in (g, g.tolist(), sg.tensor(g)):
        for a, b in zip(fn.backward(*args, grad_outputs=seed), want):
            assert a.dtype == np.float32
            assert_close(a, b)
    x = sg.Variable(shape=(3, 4), name="x", requires_grad=True)
    two = sg.compile([x], [sg.tanh(x), sg.argmax(x, 1)])
    (gx,) = two.backward(args[0], grad_outputs=[g, np.array([7.0, 8.0, 9.0])])
    np.testing.assert_allclose(gx, g * (1 - np.tanh(args[0].astype(np.float64)) ** 2),
                               rtol=1e-5, atol=1e-6)


def test_zero_dim_and_empty_arrays():
    """0-d inputs and outputs, and dims of size 0 (empty loops, empty products) never crash."""
    s = sg.Variable(shape=(), dtype="float64", name="s", requires_grad=True)
    e = sg.Variable(shape=(0, 3), dtype="float64", name="e", requires_grad=True)
    W = sg.Variable(shape=(3, 2), dtype="float64", name="W", requires_grad=True)
    A = sg.Variable(shape=(2, 0), dtype="float64", name="A", requires_grad=True)
    B = sg.Variable(shape=(0, 4), dtype="float64", name="B", requires_grad=True)
    outs = [s * s, sg.exp(s), e.sum(0), sg.exp(e) * s, e @ W, A @ B, e.sum() + s, e.reshape(3, 0),
            e.T, sg.cat([e, e * 2], 0), e.max(1)[0], (A @ B).sum(1), s.reshape(1, 1), e.mean(0)]
    rng = np.random.default_rng(4)
    arrays = [np.asarray(1.5, np.float64), np.zeros((0, 3)), sample((3, 2), "float64", "any", rng),
              np.zeros((2, 0)), np.zeros((0, 4))]
    cfn = check_compiled([s, e, W, A, B], outs, arrays)
    got = cfn.forward(*arrays)
    np.testing.assert_array_equal(got[2], np.zeros(3))
    np.testing.assert_array_equal(got[5], np.zeros((2, 4)))
    assert got[4].shape == (0, 2) and got[0].shape == ()
    # a 0-d function with the implicit seed, given a Python float
    fn = sg.compile([s], sg.sin(s) * s)
    assert fn.forward(0.5).shape == ()
    (g,) = fn.backward(0.5)
    np.testing.assert_allclose(g, np.cos(0.5) * 0.5 + np.sin(0.5), rtol=1e-6)


# --- the build cache -----------------------------------------------------------------------------

_CHILD = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    import symgrad as sg
    ready, go = sys.argv[1], sys.argv[2]
    open(ready, "w").close()
    deadline = time.time() + 60
    while not os.path.exists(go) and time.time() < deadline:
        time.sleep(0.005)
    x = sg.Variable(shape=(4, 5), name="x")
    y = sg.Variable(shape=(5,), name="y")
    fn = sg.compile([x, y], [sg.tanh(x * y).sum(1) + 0.125, sg.softmax(x, 1)])
    xv = np.arange(20, dtype=np.float32).reshape(4, 5) / 10
    yv = np.linspace(-1, 1, 5).astype(np.float32)
    a, b = fn.forward(xv, yv)
    np.save(sys.argv[3], np.concatenate([a, b.ravel()]))
    print(fn.forward.path)
""")


def _child_env(build_dir):
    env = dict(os.environ, SYMGRAD_BUILD_DIR=str(build_dir))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def _run_children(tmp_path, build_dir, n):
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    go = tmp_path / "go"
    if go.exists():
        go.unlink()
    procs = []
    for k in range(n):
        procs.append(subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / f"ready{k}"), str(go),
             str(tmp_path / f"out{k}.npy")],
            env=_child_env(build_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    deadline = time.time() + 120
    while not all((tmp_path / f"ready{k}").exists() for k in range(n)) and time.time() < deadline:
        time.sleep(0.01)
    go.touch()                                   # all start compiling at once
    results = []
    for k, p in enumerate(procs):
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, f"child {k} failed:\n{err}"
        results.append((out.strip(), np.load(tmp_path / f"out{k}.npy")))
        (tmp_path / f"ready{k}").unlink()
    return results


def _expected_child_values():
    xv = np.arange(20, dtype=np.float32).reshape(4, 5) / 10
    yv = np.linspace(-1, 1, 5).astype(np.float32)
    a = np.tanh(xv.astype(np.float64) * yv).sum(1) + 0.125
    e = np.exp(xv - xv.max(1, keepdims=True))
    return np.concatenate([a, (e / e.sum(1, keepdims=True)).ravel()])


def _entries(build_dir):
    """(good entries, everything else) under a build directory."""
    good, other = [], []
    for shard in Path(build_dir).iterdir():
        if not re.fullmatch(r"[0-9a-f]{2}", shard.name):
            continue      # the graph index, the template cache, failed/
        for p in shard.iterdir():
            ok = p.is_dir() and {"kernel.so", "kernel.so.sha256"} <= {q.name for q in p.iterdir()}
            (good if ok and not p.name.startswith(".") else other).append(p)
    return good, other


def test_four_processes_compiling_one_graph_share_one_entry(tmp_path):
    build_dir = tmp_path / "cache"
    results = _run_children(tmp_path, build_dir, 4)
    want = _expected_child_values()
    for path, values in results:
        np.testing.assert_allclose(values, want, rtol=1e-5)
        assert Path(path).parent.parent.parent == build_dir
    assert len({path for path, _ in results}) == 1
    good, other = _entries(build_dir)
    assert len(good) == 1 and other == [], (good, other)
    files = {p.name for p in good[0].iterdir()}
    assert {"kernel.so", "kernel.so.sha256", "kernel.c"} <= files
    digest = hashlib.sha256((good[0] / "kernel.so").read_bytes()).hexdigest()
    assert (good[0] / "kernel.so.sha256").read_text().strip() == digest


@pytest.mark.parametrize("damage", ["truncate", "garbage_with_matching_digest", "missing_digest"])
def test_a_broken_cache_entry_is_rebuilt(tmp_path, damage):
    build_dir = tmp_path / "cache"
    _run_children(tmp_path, build_dir, 1)
    (entry,), _ = _entries(build_dir)
    lib = entry / "kernel.so"
    data = lib.read_bytes()
    if damage == "truncate":
        lib.write_bytes(data[:len(data) // 3])
    elif damage == "garbage_with_matching_digest":
        junk = b"\x7fELF not really a library" * 100
        lib.write_bytes(junk)
        (entry / "kernel.so.sha256").write_text(hashlib.sha256(junk).hexdigest())
    else:
        (entry / "kernel.so.sha256").unlink()
    # a new process finds the broken entry, rebuilds it, and computes the right values
    (path, values), = _run_children(tmp_path, build_dir, 1)
    np.testing.assert_allclose(values, _expected_child_values(), rtol=1e-5)
    good, other = _entries(build_dir)
    assert len(good) == 1 and other == []
    assert good[0] / "kernel.c" == Path(path)
    assert hashlib.sha256((good[0] / "kernel.so").read_bytes()).hexdigest() == \
        (good[0] / "kernel.so.sha256").read_text().strip()


def test_a_truncated_entry_is_rebuilt_in_process(tmp_path, monkeypatch):
    """The same in this process, after forgetting what it loaded (a library is never loaded
    before the damage, so nothing mapped is truncated under us)."""
    monkeypatch.setenv("SYMGRAD_BUILD_DIR", str(tmp_path))
    x = sg.Variable(shape=(7,), name="x_trunc")
    out = sg.cos(x) * 3.0 + 0.0625
    fn = sg.compile([x], out)
    fn.forward._build._finish()              # compiled and published, never loaded
    lib = Path(fn.forward.path).parent / "kernel.so"
    assert lib.exists()
    lib.write_bytes(lib.read_bytes()[:100])
    monkeypatch.setattr(symgrad.build, "_loaded", {})
    fn2 = sg.compile([x], out)
    xv = np.linspace(-3, 3, 7).astype(np.float32)
    np.testing.assert_allclose(fn2.forward(xv), np.cos(xv) * 3 + 0.0625, rtol=1e-6)
    assert len(lib.read_bytes()) > 100


def test_unused_compiled_functions_leave_no_temporary_directories(tmp_path, monkeypatch):
    """A compiled function that is dropped without being called still publishes its library."""
    monkeypatch.setenv("SYMGRAD_BUILD_DIR", str(tmp_path))
    x = sg.Variable(shape=(5,), name="x_unused", requires_grad=True)
    fn = sg.compile([x], (sg.sin(x) * 1.75).sum())
    del fn
    gc.collect()
    y = sg.Variable(shape=(6,), name="y_unused")
    fn2 = sg.compile([y], sg.exp(y) * 2.5)
    fn2.forward(np.ones(6, np.float32))
    symgrad.build._finish_pending()
    good, other = _entries(tmp_path)
    assert other == [] and len(good) == 2      # fn's one library (forward, backward, value_and_grad), fn2's


def test_cache_keys_name_the_cpu_that_native_code_is_built_for(monkeypatch):
    """-march=native means another instruction set on another machine: a build directory shared
    between machines must not serve one machine's library to the other."""
    src, cc = "int f(void) { return 0; }", symgrad.build.c_compiler()
    native = ["-O2", "-march=native"]
    here = symgrad.build.cache_key(src, cc, native)
    portable = symgrad.build.cache_key(src, cc, ["-O2"])
    monkeypatch.setattr(symgrad.build, "native_cpu", lambda: "some-other-cpu")
    assert symgrad.build.cache_key(src, cc, native) != here
    assert symgrad.build.cache_key(src, cc, ["-O2"]) == portable


# --- threads ------------------------------------------------------------------------------------


def run_in_threads(worker, n):
    """Run worker(0) .. worker(n-1) in n threads at once; re-raise the first failure here."""
    errors = []

    def guarded(k):
        try:
            worker(k)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def test_threads_calling_one_function_get_the_single_threaded_result():
    x = sg.Variable(shape=(64, 48), dtype="float64", name="x", requires_grad=True)
    W = sg.Variable(shape=(48, 32), dtype="float64", name="W", requires_grad=True)
    loss = (sg.log_softmax(sg.tanh(x @ W), 1) ** 2).mean()
    fn = sg.compile([x, W], loss)
    rng = np.random.default_rng(5)
    inputs = [[sample((64, 48), "float64", "any", rng), sample((48, 32), "float64", "any", rng)]
              for _ in range(4)]
    want = [fn.value_and_grad(*args) for args in inputs]
    want_fwd = [fn.forward(*args) for args in inputs]

    def worker(k):
        for _ in range(25):
            v, (gx, gW) = fn.value_and_grad(*inputs[k])
            np.testing.assert_array_equal(v, want[k][0])
            np.testing.assert_array_equal(gx, want[k][1][0])
            np.testing.assert_array_equal(gW, want[k][1][1])
            np.testing.assert_array_equal(fn.forward(*inputs[k]), want_fwd[k])

    run_in_threads(worker, 4)
    _, ifn = compile_both([x, W], loss)
    for args, (v, grads) in zip(inputs, want):
        assert_close(v, ifn.forward(*args))


def test_threads_calling_a_parallel_kernel():
    """Kernels big enough for OpenMP, entered from several Python threads at once."""
    from symgrad.codegen.render import PARALLEL_MIN
    shape = (PARALLEL_MIN // 300 + 20, 300)
    x = sg.Variable(shape=shape, dtype="float64", name="x")
    fn = sg.compile([x], [x.sum(), sg.exp(x * 0.01).sum(1), sg.tanh(x) * 2.0])
    rng = np.random.default_rng(9)
    data = [sample(shape, "float64", "any", rng) for _ in range(4)]
    assert "#pragma omp parallel" in fn.forward.source
    want = [fn.forward(d) for d in data]

    def worker(k):
        for _ in range(10):
            for a, b in zip(fn.forward(data[k]), want[k]):
                np.testing.assert_allclose(a, b, rtol=1e-13)

    run_in_threads(worker, 4)
    np.testing.assert_allclose(want[0][0], data[0].sum(), rtol=1e-12)


def test_compiled_code_releases_the_gil(monkeypatch):
    """While one thread is inside a long kernel, Python code in another keeps running: the
    longest pause the other thread sees is a small part of the kernel's time, not all of it."""
    monkeypatch.setenv("SYMGRAD_OPENMP", "0")          # one core for the kernel, one for us
    n = 6000
    a = sg.Variable(shape=(n, 1), dtype="float64", name="a")
    b = sg.Variable(shape=(1, n), dtype="float64", name="b")
    fn = sg.compile([a, b], sg.sin(sg.cos(a * b) * 1.5).sum())
    av = np.linspace(0, 1, n).reshape(n, 1)
    bv = np.linspace(0, 2, n).reshape(1, n)
    fn(av, bv)                                          # compiled and loaded
    t0 = time.perf_counter()
    fn(av, bv)
    once = time.perf_counter() - t0
    pauses = []
    for _ in range(3):          # the best of three, so one hiccup of the scheduler cannot fail it
        done = threading.Event()
        t = threading.Thread(target=lambda: (fn(av, bv), done.set()))
        stamps = [time.perf_counter()]
        t.start()
        while not done.is_set():
            stamps.append(time.perf_counter())
        t.join()
        pauses.append(float(np.max(np.diff(stamps))) if len(stamps) > 1 else once)
    # holding the GIL would stop this thread for the whole call (`once`)
    assert min(pauses) < once / 3, (pauses, once)


# --- compiler failures ---------------------------------------------------------------------------


def test_compile_error_carries_compiler_output_and_source_path(tmp_path, monkeypatch):
    fake = tmp_path / "fakecc"
    fake.write_text('#!/bin/sh\nif [ "$1" = "--version" ]; then echo "fakecc 1.0"; exit 0; fi\n'
                    'echo "fakecc: error: refusing to compile kernel.c" >&2\nexit 3\n')
    fake.chmod(0o755)
    monkeypatch.setenv("SYMGRAD_CC", str(fake))
    monkeypatch.setenv("SYMGRAD_BUILD_DIR", str(tmp_path / "cache"))
    x = sg.Variable(shape=(3,), name="x")
    fn = sg.compile([x], sg.exp(x) + 1.0)
    with pytest.raises(sg.CompileError) as e:
        fn.forward(np.ones(3, np.float32))
    err = e.value
    assert "refusing to compile" in err.output
    assert "refusing to compile" in str(err) and str(err.source_path) in str(err)
    assert Path(err.source_path).exists() and "expf(" in Path(err.source_path).read_text()
    # calling again gives the error again (no crash, no half-made entry)
    with pytest.raises(sg.CompileError):
        fn.forward(np.ones(3, np.float32))
    good, other = _entries(tmp_path / "cache")
    assert good == [] and all(p.parent.name == "failed" for p in other)


def test_compile_error_from_a_bad_flag(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMGRAD_BUILD_DIR", str(tmp_path))
    real = symgrad.build.c_flags
    monkeypatch.setattr(symgrad.build, "c_flags",
                        lambda *a, **k: real(*a, **k) + ["-fno-such-flag-for-symgrad"])
    x = sg.Variable(shape=(3,), name="x")
    fn = sg.compile([x], sg.sqrt(x * x + 1.0))
    with pytest.raises(sg.CompileError) as e:
        fn(np.ones(3, np.float32))
    assert "-fno-such-flag-for-symgrad" in e.value.output
    assert e.value.source_path is not None and Path(e.value.source_path).exists()


def test_missing_compiler_is_a_compile_error(monkeypatch, tmp_path):
    monkeypatch.setenv("SYMGRAD_CC", str(tmp_path / "no-such-cc"))
    x = sg.Variable(shape=(3,), name="x")
    with pytest.raises(sg.CompileError) as e:
        sg.compile([x], x * 2.0)
    assert "compiler" in str(e.value)
    # the interpreter still works
    fn = sg.compile([x], x * 2.0, backend="interp")
    np.testing.assert_array_equal(fn(np.ones(3, np.float32)), 2 * np.ones(3, np.float32))


# --- eager backward ------------------------------------------------------------------------------


def _training_loop(steps=5, hidden=6):
    rng = np.random.default_rng(6)
    W = sg.Variable(rng.normal(size=(4, hidden)), requires_grad=True)
    b = sg.Variable(np.zeros(hidden), requires_grad=True)
    history = []
    for step in range(steps):
        x = sg.Variable(rng.normal(size=(8, 4)))
        y = sg.Variable(rng.integers(0, hidden, 8))
        loss = sg.cross_entropy(sg.tanh(x @ W + b) * 2.0, y) + (W ** 2).sum() * 0.01
        loss.backward()
        history.append((loss.item(), W.grad.numpy().copy(), b.grad.numpy().copy()))
        with sg.no_grad():
            W -= W.grad * 0.1
            b -= b.grad * 0.1
        W.grad.data.zero_()
        b.grad.data.zero_()
    return history


def test_eager_backward_compiles_once_per_graph_structure(monkeypatch):
    monkeypatch.delenv("SYMGRAD_EAGER_BACKEND", raising=False)
    before = len(symgrad.engine._compiled)
    compiled = _training_loop(steps=5)
    assert len(symgrad.engine._compiled) == before + 1
    # the same loop again: nothing new to compile
    _training_loop(steps=2)
    assert len(symgrad.engine._compiled) == before + 1
    # another structure (another hidden size) is another function
    _training_loop(steps=2, hidden=7)
    assert len(symgrad.engine._compiled) == before + 2
    monkeypatch.setenv("SYMGRAD_EAGER_BACKEND", "interp")
    n = len(symgrad.engine._compiled)
    interpreted = _training_loop(steps=5)
    assert len(symgrad.engine._compiled) == n
    for (lc, Wc, bc), (li, Wi, bi) in zip(compiled, interpreted):
        np.testing.assert_allclose(lc, li, rtol=1e-10)
        np.testing.assert_allclose(Wc, Wi, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(bc, bi, rtol=1e-10, atol=1e-12)


def test_eager_backward_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    xv, wv = rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=(3,)).astype(np.float32)
    x = sg.Variable(xv, requires_grad=True)
    w = sg.Variable(wv, requires_grad=True)
    out = (sg.sigmoid(x @ w) * x.sum(1)).mean() + x.max() * w.norm()
    out.backward()
    tx = torch.tensor(xv, requires_grad=True)
    tw = torch.tensor(wv, requires_grad=True)
    tout = (torch.sigmoid(tx @ tw) * tx.sum(1)).mean() + tx.max() * tw.norm()
    tout.backward()
    np.testing.assert_allclose(out.item(), tout.item(), rtol=1e-5)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_eager_backward_without_a_compiler_warns_once_and_uses_the_interpreter(monkeypatch, tmp_path):
    import warnings

    import symgrad.engine as engine
    monkeypatch.setenv("SYMGRAD_CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setattr(engine, "_warned", [])
    x = sg.Variable(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            (sg.tanh(x) * x).sum().backward()
    messages = [str(w.message) for w in caught if "C compiler" in str(w.message)]
    assert len(messages) == 1, messages
    xv = np.array([0.5, -1.0, 2.0])
    expected = 3 * (np.tanh(xv) + xv * (1 - np.tanh(xv) ** 2))
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("n", [7, 300_000])       # a small output and a 1.2 MB one
def test_pooled_outputs_never_change_results_the_caller_still_holds(n):
    """Outputs are reused from a per-thread pool only when nothing else refers to them."""
    x = sg.Variable(shape=(n,), name="x", requires_grad=True)
    fn = sg.compile([x], sg.sum(sg.tanh(x) * x))
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    _, (ga,) = fn.value_and_grad(a)
    kept = ga.copy()
    view = fn.value_and_grad(b)[1][0][::3]        # only a view of b's gradient survives
    expected_b = (np.tanh(b) + b * (1 - np.tanh(b) ** 2))[::3]
    for _ in range(6):                            # more calls than the pool holds
        _, (gc,) = fn.value_and_grad(a)
        assert gc is not ga and gc.base is not view.base and gc is not view.base
    np.testing.assert_array_equal(ga, kept)
    np.testing.assert_allclose(view, expected_b, rtol=1e-5, atol=1e-6)
    del ga, view
    first = fn.value_and_grad(a)[1][0]
    ident = id(first)
    del first
    if sg.config.fast_call():                           # SYMGRAD_FAST_CALL=0 switches the pool off
        assert id(fn.value_and_grad(a)[1][0]) == ident   # a dropped result's memory is reused


def test_value_and_grad_takes_grad_outputs_after_its_fast_calls():
    """After the first call, value_and_grad's calls go straight to the generated caller; seeds
    given then still weigh the outputs (and the object keeps its attributes)."""
    x = sg.Variable(shape=(3,), name="x", requires_grad=True)
    fn = sg.compile([x], sg.tanh(x) * 2)
    a = np.array([0.1, -0.4, 0.9], np.float32)
    value, (g,) = fn.value_and_grad(a, grad_outputs=[np.ones(3, np.float32)])
    value2, (g2,) = fn.value_and_grad(a, grad_outputs=[np.ones(3, np.float32)])
    w = np.array([1.0, -2.0, 0.5], np.float32)
    value3, (g3,) = fn.value_and_grad(a, grad_outputs=[w])
    np.testing.assert_allclose(g3, w * 2 * (1 - np.tanh(a) ** 2), rtol=1e-5)
    np.testing.assert_array_equal(g, g2)
    np.testing.assert_allclose(value3, 2 * np.tanh(a), rtol=1e-6)
    assert "symgrad_" in fn.value_and_grad.source and fn.value_and_grad.path
    y = sg.Variable(shape=(3,), name="y", requires_grad=True)
    scalar = sg.compile([y], sg.sum(y * y))
    for _ in range(3):
        v, (gy,) = scalar.value_and_grad(a)
    np.testing.assert_allclose(gy, 2 * a, rtol=1e-6)
    np.testing.assert_allclose(scalar.value_and_grad(a, grad_outputs=np.float32(3.0))[1][0], 6 * a, rtol=1e-6)


def test_a_compiled_function_called_often_still_checks_pickles_and_says_what_it_is():
    """After its first call `fn(...)` goes straight to the generated caller; the function must
    still refuse a wrong shape with the usual error, pickle, and be a CompiledFunction."""
    import pickle
    x = sg.Variable(shape=(4,), name="x")
    fn = sg.compile([x], sg.exp(x) + 1)
    a = np.linspace(-1, 1, 4).astype(np.float32)
    for _ in range(3):
        np.testing.assert_allclose(fn(a), np.exp(a) + 1, rtol=1e-6)
    with pytest.raises(ValueError, match="x"):
        fn(np.ones(5, np.float32))
    from symgrad.compile import CompiledFunction
    assert isinstance(fn, CompiledFunction) and "compiled" in repr(fn).lower()
    again = pickle.loads(pickle.dumps(fn))
    np.testing.assert_allclose(again(a), np.exp(a) + 1, rtol=1e-6)
    two = sg.compile([x], [sg.exp(x), x * 2])
    for _ in range(2):
        got = two(a)
        assert isinstance(got, list) and len(got) == 2
    np.testing.assert_allclose(got[1], a * 2)


def test_remembered_input_pointers_follow_the_arrays_passed():
    """The caller remembers the pointer of a small input passed again; in-place changes, other
    arrays, views and the general path in between must all still give the right answer."""
    x = sg.Variable(shape=(8,), name="x", requires_grad=True)
    y = sg.Variable(shape=(8,), name="y", requires_grad=True)
    fn = sg.compile([x, y], sg.sum(x * y + x))
    a, b = np.arange(8, dtype=np.float32), np.ones(8, np.float32)

    def expect(u, v):
        return float(np.sum(u * v + u))

    assert fn.value_and_grad(a, b)[0] == expect(a, b)
    a *= 3                                                   # same object, new values
    assert fn.value_and_grad(a, b)[0] == expect(a, b)
    c = a.copy() + 1                                          # another array in the same slot
    assert fn.value_and_grad(c, b)[0] == expect(c, b)
    assert fn.value_and_grad(a, b)[0] == expect(a, b)
    wide = np.arange(16, dtype=np.float32)
    assert fn.value_and_grad(wide[::2], b)[0] == expect(wide[::2], b)   # general path
    assert fn.value_and_grad(a, b)[0] == expect(a, b)
    assert fn.value_and_grad([1.0] * 8, b)[0] == expect(np.ones(8), b)  # converted input
    np.testing.assert_array_equal(fn.backward(a, c)[1], a)


def test_eager_backward_cache_does_not_keep_graphs_alive():
    import gc
    import weakref
    w = sg.Variable(np.ones(50, np.float32), requires_grad=True)
    x = sg.Variable(np.full(50, 2.0, np.float32))
    loss = (sg.tanh(w * x) + w).sum()
    loss.backward()
    refs = [weakref.ref(x), weakref.ref(loss)]
    del x, loss
    gc.collect()
    assert all(r() is None for r in refs), "the compiled-gradient cache holds the graph"
    np.testing.assert_allclose(w.grad.numpy(), 2 * (1 - np.tanh(2.0) ** 2) + 1, rtol=1e-6)


def test_deep_graphs_do_not_hit_the_recursion_limit():
    """3000 ops in a chain: sg.grad, eager backward and sg.compile must not recurse per node."""
    steps, c = 3000, 0.9995
    x = sg.Variable(np.array([1.5]), requires_grad=True)
    y = x
    for _ in range(steps):
        y = y * c
    (g,) = sg.grad(y.sum(), x)
    np.testing.assert_allclose(g.numpy(), [c ** steps], rtol=1e-9)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [c ** steps], rtol=1e-9)
    xs = sg.Variable(shape=(4,), dtype="float64", name="x", requires_grad=True)
    ys = xs
    for _ in range(steps):
        ys = ys * c
    value, (gx,) = sg.compile([xs], ys.sum()).value_and_grad(np.ones(4))
    np.testing.assert_allclose(value, 4 * c ** steps, rtol=1e-9)
    np.testing.assert_allclose(gx, np.full(4, c ** steps), rtol=1e-9)


def test_deep_chains_of_cheap_ops_compile_and_print():
    import io
    x = sg.Variable(shape=(3,), dtype="float64", name="x", requires_grad=True)
    y = x
    for _ in range(3000):
        y = -y
    value, (gx,) = sg.compile([x], (y * y).sum()).value_and_grad(np.arange(3.0))
    assert value == 5.0
    np.testing.assert_array_equal(gx, [0.0, 2.0, 4.0])
    assert len(sg.debugprint(y, file=io.StringIO()).splitlines()) == 3001


def test_empty_arrays_are_never_read():
    """An empty array's pointer may be NULL (numpy's, or a device array's): the code for the
    gradient of an empty slice, or of a concatenation with an empty piece, must not read it
    (a clamped read at index 0 would be out of bounds)."""
    x = sg.Variable(shape=(3, 4), dtype="float32", name="x", requires_grad=True)
    e = sg.Variable(shape=(0, 4), dtype="float32", name="e", requires_grad=True)
    fn = sg.compile([x, e], [x[:0], sg.cat([e, x], 0) * 2])
    seeds = [np.ones((0, 4), np.float32), np.full((3, 4), 3, np.float32)]
    gx, ge = fn.backward(np.ones((3, 4), np.float32), np.ones((0, 4), np.float32), grad_outputs=seeds)
    np.testing.assert_array_equal(gx, np.full((3, 4), 6, np.float32))
    assert ge.shape == (0, 4)
    src = fn.backward.source
    body = src[src.index("int symgrad_backward_seeded("):]
    assert not re.search(r"\b(grad_0|e)\[", body)      # neither empty array is read
