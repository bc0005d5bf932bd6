"""symgrad's thread pool: the compiled loops run on it whatever else the process has loaded
(PyTorch's libgomp first included), on as many threads as asked, from several Python threads
at once and after a fork. Each case runs in a fresh process with a timeout (a pool that
deadlocks must fail the test, not hang the suite)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import symgrad as sg
from symgrad.backends import threads

pytestmark = pytest.mark.skipif(threads.runtime() is None, reason="symgrad's pool is not used here")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A GELU over 512 x 1024 (expensive enough per element to run on threads) and a product large
# enough to be shared out, checked against numpy in float64.
PROGRAM = textwrap.dedent("""
    import os, sys
    import numpy as np
    {before}
    import symgrad as sg

    def tasks():      # symgrad's workers (BLAS and others have threads of their own)
        return sum(open(f"/proc/self/task/{{t}}/comm").read().strip() == "symgrad-pool"
                   for t in os.listdir("/proc/self/task"))

    x = sg.Variable(shape=(512, 1024), name="x", requires_grad=True)
    w = sg.Variable(shape=(1024, 256), name="w", requires_grad=True)
    h = 0.5 * x * (1 + sg.tanh(0.79788456 * (x + 0.044715 * x ** 3)))
    fn = sg.compile([x, w], sg.sum(sg.tanh(h @ w)))
    r = np.random.default_rng(0)
    xv = r.normal(size=(512, 1024)).astype(np.float32)
    wv = (r.normal(size=(1024, 256)) / 32).astype(np.float32)

    x64, w64 = xv.astype(np.float64), wv.astype(np.float64)
    h64 = 0.5 * x64 * (1 + np.tanh(0.79788456 * (x64 + 0.044715 * x64 ** 3)))
    want = np.sum(np.tanh(h64 @ w64))     # (numpy's BLAS threads start here, before counting)

    def check():
        value, (gx, gw) = fn.value_and_grad(xv, wv)
        assert abs(value - want) <= 1e-3 * abs(want), (value, want)
        assert np.all(np.isfinite(gx)) and np.all(np.isfinite(gw))
        return float(value)

    before = tasks()
    check()
    {after}
    print("ok", before, tasks())
""")


def run(before="", after="", env=None, timeout=240):
    code = PROGRAM.format(before=before, after=textwrap.indent(after, "").strip())
    full_env = dict(os.environ, PYTHONPATH=ROOT)
    for k, v in (env or {}).items():
        if v is None:
            full_env.pop(k, None)
        else:
            full_env[k] = v
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          env=full_env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    last = proc.stdout.split()[-3:]
    assert last[0] == "ok", proc.stdout
    return int(last[1]), int(last[2])


def test_the_modules_link_symgrads_pool_and_no_libgomp():
    x = sg.Variable(shape=(512, 1024), name="x")
    fn = sg.compile([x], sg.tanh(x) * 2.0)
    assert "omp parallel for" in fn.forward.source
    lib = fn.forward_fn.library()
    maps = open("/proc/self/maps").read()
    assert "libsgrt-" in maps
    readelf = subprocess.run(["readelf", "-d", str(lib.path)], capture_output=True, text=True)
    if readelf.returncode != 0:
        pytest.skip("no readelf")
    needed = [ln for ln in readelf.stdout.splitlines() if "NEEDED" in ln]
    assert any("libsgrt-" in ln for ln in needed), needed
    assert not any("libgomp" in ln for ln in needed), needed


@pytest.mark.parametrize("count", [1, 2])
def test_loops_run_on_as_many_threads_as_asked(count):
    if len(os.sched_getaffinity(0)) < 2 and count == 2:
        pytest.skip("one CPU")
    before, after = run(env={"SYMGRAD_THREADS": str(count)})
    assert (before, after) == (0, count - 1)     # the caller is thread 0; the pool adds count - 1


def test_torch_loaded_first_does_not_take_the_loops():
    pytest.importorskip("torch")
    run(before="import torch\ntorch.set_num_threads(1)",
        after="assert 'libsgrt-' in open('/proc/self/maps').read()\n"
              "assert sg.get_num_threads() == len(os.sched_getaffinity(0))",
        env={"SYMGRAD_THREADS": None, "OMP_NUM_THREADS": None})


def test_set_num_threads_changes_the_pool_at_run_time():
    """Down and up again: the pool grows to the largest team asked for, and a team size gives
    the same sums every time (a worker that took one job's number with another job's team ran
    its chunk twice)."""
    run(after=textwrap.dedent("""
        sg.set_num_threads(1)
        assert sg.get_num_threads() == 1
        check()
        sg.set_num_threads(3)
        assert sg.get_num_threads() == 3
        check()
        assert tasks() == 2, tasks()
        sums = {}
        for n in (2, 4, 1, 4, 2, 3) * 3:
            sg.set_num_threads(n)
            sums.setdefault(n, set()).add(check())
        assert tasks() == 3, tasks()
        assert all(len(v) == 1 for v in sums.values()), sums
    """))
    with pytest.raises(ValueError, match="positive whole number"):
        sg.set_num_threads(0)


def test_python_threads_calling_at_once_get_right_answers_and_no_deadlock():
    run(after=textwrap.dedent("""
        import threading
        results, errors = [], []
        def work():
            try:
                for _ in range(5):
                    results.append(check())
            except Exception as e:
                errors.append(e)
        ts = [threading.Thread(target=work) for _ in range(4)]
        [t.start() for t in ts]
        [t.join(120) for t in ts]
        assert not errors and len(results) == 20 and len(set(results)) == 1, (errors, set(results))
    """))


def test_a_forked_child_runs_the_loops():
    run(after=textwrap.dedent("""
        import multiprocessing as mp
        ctx = mp.get_context("fork")
        with ctx.Pool(1) as pool:
            got = pool.apply_async(check).get(120)
        assert got == check()
    """))
