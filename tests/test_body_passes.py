"""The kernel passes over loop bodies (symgrad/codegen/body_passes.py): a rows kernel's parts
merged into fewer loops, reciprocals of loop-invariant divisors, row and column sums in float,
large outputs streamed past the cache and the next row prefetched. Each keeps the numbers
(against numpy in float64 and the interpreter) and can be switched off by name."""
from __future__ import annotations

import re

import numpy as np
import pytest

import symgrad as sg
from symgrad.codegen.ir import lower
from symgrad.codegen.names import NameTable
from symgrad.codegen.schedule import Scheduler

NEW_PASSES = ("merge_parts", "reciprocals", "float_row_sums", "float_column_sums", "stream_stores",
              "prefetch_rows")


def _layer_norm(N=256, D=512):
    x = sg.Variable(shape=(N, D), name="x", requires_grad=True)
    w = sg.Variable(shape=(D,), name="w", requires_grad=True)
    b = sg.Variable(shape=(D,), name="b", requires_grad=True)
    d = x - x.mean(-1, keepdim=True)
    y = d / sg.sqrt((d * d).mean(-1, keepdim=True) + 1e-5)
    return [x, w, b], sg.tanh(y * w + b).sum()


def _rows(args, loss, disabled=()):
    from symgrad import passes
    graph = lower(args, [loss, *sg.grad(loss, args)])
    enabled = [p for p in passes.KERNEL_PASSES if p not in disabled]
    kernels = Scheduler(graph, NameTable(), column_reductions=True, kernel_passes=enabled).build().kernels
    rows = [k for k in kernels if k.kind == "rows"]
    assert len(rows) == 1
    return rows[0]


def _layer_norm_reference(xv, wv, bv):
    x, w, b = (a.astype(np.float64) for a in (xv, wv, bv))
    d = x - x.mean(1, keepdims=True)
    s = np.sqrt((d * d).mean(1, keepdims=True) + 1e-5)
    y = d / s
    t = np.tanh(y * w + b)
    gy = (1 - t * t) * w
    gx = (gy - gy.mean(1, keepdims=True) - y * (gy * y).mean(1, keepdims=True)) / s
    return t.sum(), gx, ((1 - t * t) * y).sum(0), (1 - t * t).sum(0)


def test_layer_norm_parts_merge_into_fewer_loops_and_keep_the_numbers(monkeypatch):
    """Layer norm's backward: dx's first row sum, dw's and db's column sums and the loss run in
    the loop that computes tanh, the values they share staying in registers (one row buffer
    stored there instead of three); the second row sum, which needs the first, and dx's store
    stay loops of their own."""
    args, loss = _layer_norm()
    merged, plain = _rows(args, loss), _rows(args, loss, disabled=("merge_parts",))
    assert len(plain.extra["parts"]) == 9 and len(merged.extra["parts"]) == 6
    tanh_part = [p for p in merged.extra["parts"] if "tanh" in " ".join(p.extra.get("comments", ()))]
    assert len(tanh_part) == 1
    part = tanh_part[0].extra
    assert len(part["cols"]) == 2 and len(part["stores"]) == 1
    assert {a["out"].name for a in part["accs"]} >= {"out0"} and len(part["accs"]) == 2
    assert len(merged.extra["row_buffers"]) < len(plain.extra["row_buffers"])
    r = np.random.default_rng(0)
    xv = r.normal(size=(256, 512)).astype(np.float32)
    wv, bv = (0.5 * r.normal(size=512)).astype(np.float32), (0.1 * r.normal(size=512)).astype(np.float32)
    want = _layer_norm_reference(xv, wv, bv)
    for disabled in ("", ",".join(NEW_PASSES)):
        monkeypatch.setenv("SYMGRAD_DISABLE_PASSES", disabled)
        fn = sg.compile(args, loss)
        value, grads = fn.value_and_grad(xv, wv, bv)
        np.testing.assert_allclose(value, want[0], rtol=1e-5)
        for g, w in zip(grads, want[1:]):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5 * np.abs(w).max())
        src = fn.value_and_grad.source
        loops = src.count("for (int64_t i1 = 0;")     # (one of them the row's sqrt, of one iteration)
        if not disabled:
            # the row sums in float; only the loss, summed over every row, in double
            assert loops == 6 and "float sg_col_" in src
            assert src.split("row fusion")[1].count("double acc") == 1
        else:
            assert loops == 9 and "double sg_col_" in src


def test_a_division_by_a_row_value_multiplies_by_its_reciprocal(monkeypatch):
    x = sg.Variable(shape=(64, 256), name="x")
    y = x / (x * x).sum(1, keepdim=True)
    xv = np.random.default_rng(1).normal(size=(64, 256)).astype(np.float32)
    want = sg.compile([x], y, backend="interp")(xv)
    x64 = xv.astype(np.float64)
    for disabled, divides in (("", False), ("reciprocals", True)):
        monkeypatch.setenv("SYMGRAD_DISABLE_PASSES", disabled)
        fn = sg.compile([x], y)
        got = fn(xv)
        # a product with the reciprocal: within two roundings of the quotient
        np.testing.assert_allclose(got, x64 / (x64 * x64).sum(1, keepdims=True), rtol=3e-7)
        np.testing.assert_allclose(got, want, rtol=3e-7)
        body = fn.forward.source.split("row fusion")[1]
        assert ("(1.0f / " in body) != divides
        assert (" / v" in body.replace("(1.0f / ", "")) == divides


@pytest.mark.parametrize("n, in_float", [(512, True), (8192, False)])
def test_short_row_sums_add_up_in_float_long_ones_in_double(n, in_float):
    x = sg.Variable(shape=(64, n), name="x")
    y = sg.softmax(x, 1)
    fn = sg.compile([x], y)
    body = fn.forward.source.split("row fusion")[1]
    assert ("double acc" in body) != in_float        # (the row's max is a float either way)
    xv = np.random.default_rng(2).normal(size=(64, n)).astype(np.float32)
    e = np.exp(xv.astype(np.float64) - xv.max(1, keepdims=True))
    np.testing.assert_allclose(fn(xv), e / e.sum(1, keepdims=True), rtol=2e-6, atol=1e-9)


@pytest.mark.parametrize("case", ["softmax", "log_softmax", "logsumexp"])
@pytest.mark.parametrize("shape", [(2048, 2048), (560, 8000)])     # (8000: a short last chunk)
def test_large_row_outputs_are_streamed_and_keep_the_numbers(case, shape, monkeypatch):
    """A 16 MB gradient written a row at a time goes out through non-temporal stores, in
    chunks, the rows fenced; the inputs are fetched a row ahead (where the rows are whole
    chunks). The numbers, against numpy in float64, as
    without either."""
    N, D = shape
    x = sg.Variable(shape=(N, D), name="x", requires_grad=True)
    t = sg.Variable(shape=(N, D), name="t")
    loss = sg.logsumexp(x, -1).sum() if case == "logsumexp" else (getattr(sg, case)(x, -1) * t).sum()
    r = np.random.default_rng(3)
    xv, tv = r.normal(size=(N, D)).astype(np.float32), r.random((N, D)).astype(np.float32)
    x64, t64 = xv.astype(np.float64), tv.astype(np.float64)
    e = np.exp(x64 - x64.max(1, keepdims=True))
    p = e / e.sum(1, keepdims=True)
    if case == "softmax":
        want = (p * t64).sum(), p * (t64 - (p * t64).sum(1, keepdims=True))
    elif case == "log_softmax":
        want = (np.log(p) * t64).sum(), t64 - p * t64.sum(1, keepdims=True)
    else:
        want = (np.log(e.sum(1)) + x64.max(1)).sum(), p
    results = {}
    for disabled in ("", "stream_stores,prefetch_rows"):
        monkeypatch.setenv("SYMGRAD_DISABLE_PASSES", disabled)
        fn = sg.compile([x, t], loss)
        value, grad = fn.value_and_grad(xv, tv)
        grad = grad[0] if isinstance(grad, (list, tuple)) else grad
        np.testing.assert_allclose(value, want[0], rtol=1e-5)
        np.testing.assert_allclose(grad, want[1], rtol=1e-4, atol=1e-5 * np.abs(want[1]).max())
        results[disabled] = grad.copy()
        src = fn.value_and_grad.source
        assert ("sg_stream_float(dx + " in src) == (not disabled)
        assert ("sg_stream_fence();" in src) == (not disabled)
        whole_chunks = not disabled and D % 256 == 0
        assert ("__builtin_prefetch(&t[" in src) == (whole_chunks and case != "logsumexp")
        assert ("__builtin_prefetch(&x[" in src) == whole_chunks
        assert "__builtin_prefetch(&dx[" not in src          # (streamed: never read into the cache)
        if whole_chunks:        # the next rows read into L1 when they take 8 KB or less, else L2
            level = 3 if (1 if case == "logsumexp" else 2) * 4 * D <= 8192 else 2
            assert re.search(rf"__builtin_prefetch\(&x\[[^;]*\], 0, {level}\);", src), src
    # (a loop run in chunks adds its row sum's lanes up per chunk: the last bits may move)
    np.testing.assert_allclose(results[""], results["stream_stores,prefetch_rows"], rtol=1e-5,
                               atol=1e-6 * np.abs(results[""]).max())


def test_the_next_rows_of_inputs_and_of_a_plainly_stored_output_are_fetched(monkeypatch):
    """Layer norm over 1024x1024: x is read a row ahead, and dx (4 MB, below the streaming
    size) is fetched for writing a row ahead, in the part that calls tanh. The numbers as with
    no prefetching, against float64."""
    args, loss = _layer_norm(1024, 1024)
    r = np.random.default_rng(5)
    xv = r.normal(size=(1024, 1024)).astype(np.float32)
    wv, bv = (0.5 * r.normal(size=1024)).astype(np.float32), (0.1 * r.normal(size=1024)).astype(np.float32)
    want = _layer_norm_reference(xv, wv, bv)
    grads = {}
    for disabled in ("", "prefetch_rows"):
        monkeypatch.setenv("SYMGRAD_DISABLE_PASSES", disabled)
        fn = sg.compile(args, loss)
        src = fn.value_and_grad.source
        assert ("__builtin_prefetch(&x[i0 * 1024 + 1024 + i1_c + p], 0, 3)" in src) == (not disabled)
        assert ("__builtin_prefetch(&dx[i0 * 1024 + 1024 + i1_c + p], 1, 2)" in src) == (not disabled)
        value, grads[disabled] = fn.value_and_grad(xv, wv, bv)
        np.testing.assert_allclose(value, want[0], rtol=1e-5)
        for g, w in zip(grads[disabled], want[1:]):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5 * np.abs(w).max())


def test_short_rows_are_stored_plainly_and_streamed_rows_fenced_once_a_thread():
    """A 16 MB gradient in rows of 64 is stored plainly (streaming each short row cost more
    than it saved); in rows of 2048 it is streamed, with one fence, after the rows (a fence a
    row waited on the stores). The numbers, against float64, with 2 threads."""
    r = np.random.default_rng(6)
    for shape, streamed in (((65536, 64), False), ((2048, 2048), True)):
        x = sg.Variable(shape=shape, name="x", requires_grad=True)
        fn = sg.compile([x], sg.logsumexp(x, -1).sum())
        src = fn.value_and_grad.source
        assert ("sg_stream_float(dx + " in src) == streamed
        assert src.count("sg_stream_fence();") == streamed
        if streamed:
            lines = src.splitlines()
            fence = next(line for line in lines if "sg_stream_fence();" in line)
            row_loop = next(line for line in lines if line.strip().startswith("for (int64_t i0 = 0;"))
            assert len(fence) - len(fence.lstrip()) == len(row_loop) - len(row_loop.lstrip())
        xv = r.normal(size=shape).astype(np.float32)
        x64 = xv.astype(np.float64)
        e = np.exp(x64 - x64.max(1, keepdims=True))
        value, (grad,) = fn.value_and_grad(xv)
        np.testing.assert_allclose(value, (np.log(e.sum(1)) + x64.max(1)).sum(), rtol=1e-5)
        np.testing.assert_allclose(grad, e / e.sum(1, keepdims=True), rtol=1e-4, atol=1e-7)


def test_a_small_output_is_stored_plainly():
    x = sg.Variable(shape=(256, 256), name="x", requires_grad=True)
    fn = sg.compile([x], sg.logsumexp(x, -1).sum())
    assert "sg_stream" not in fn.value_and_grad.source


@pytest.mark.parametrize("name", NEW_PASSES)
def test_each_body_pass_switches_off_by_name_and_keeps_the_numbers(name, monkeypatch):
    args, loss = _layer_norm(128, 256)
    r = np.random.default_rng(4)
    xv = r.normal(size=(128, 256)).astype(np.float32)
    wv, bv = (0.5 * r.normal(size=256)).astype(np.float32), (0.1 * r.normal(size=256)).astype(np.float32)
    want = _layer_norm_reference(xv, wv, bv)
    monkeypatch.setenv("SYMGRAD_DISABLE_PASSES", name)
    value, grads = sg.compile(args, loss).value_and_grad(xv, wv, bv)
    np.testing.assert_allclose(value, want[0], rtol=1e-5)
    for g, w in zip(grads, want[1:]):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5 * np.abs(w).max())
