"""The build cache and the graph index when they are damaged, when the compiler misbehaves, and
across fork(): each test here stands for a defect that once gave a wrong answer, a crash, a hang
or an error on every later compile. Whatever could crash or hang runs in a child process with a
timeout; expected values come from numpy."""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import symgrad as sg
from symgrad import build

ROOT = Path(__file__).resolve().parent.parent
CHILD_TIMEOUT = 120          # a hang (the defect) fails the test instead of the run


def run_script(tmp_path, code, *args, build_dir=None, env=None, timeout=CHILD_TIMEOUT):
    """Run `code` as a script in a fresh interpreter; returns its stdout. Fails on a nonzero
    exit, a crash (negative status) or a timeout, showing what the child printed. The script
    runs in a session of its own, so that a hang kills every process it forked, not just it."""
    script = tmp_path / f"script{len(list(tmp_path.glob('script*.py')))}.py"
    script.write_text(textwrap.dedent(code))
    full = dict(os.environ, SYMGRAD_BUILD_DIR=str(build_dir or tmp_path / "cache"), **(env or {}))
    full["PYTHONPATH"] = os.pathsep.join([str(ROOT), full.get("PYTHONPATH", "")])
    proc = subprocess.Popen([sys.executable, str(script), *map(str, args)], env=full, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"the child hung (over {timeout} s):\n{out}\n{err}")
    assert proc.returncode == 0, f"child exit {proc.returncode}:\n{out}\n{err}"
    return out


def leftovers(build_dir):
    """Temporary build directories and half-written files under a build directory."""
    return sorted(str(p) for p in Path(build_dir).rglob(".*"))


def slow_compiler(tmp_path, seconds=1.0):
    """A compiler that takes its time: builds are still running when the test forks."""
    path = tmp_path / "slowcc"
    path.write_text(f'#!/bin/sh\n[ "$1" = "--version" ] || sleep {seconds}\nexec {build.c_compiler()} "$@"\n')
    path.chmod(0o755)
    return str(path)


# --- A. a damaged graph index or cache entry never leads to another graph's library ---------------

# Three graphs: `exp` and `sin` take and return the same arrays (a mix-up is a wrong answer),
# `mat` takes two arrays (a mix-up with it is a crash), so these run in a child process.
_GRAPHS = """
import sys
import numpy as np
import symgrad as sg

def make(which):
    x = sg.Variable(shape=(4,), name="x")
    if which == "mat":
        w = sg.Variable(shape=(4, 4), name="w")
        return sg.compile([x, w], sg.exp(x @ w) * 3.0), [x, w]
    return sg.compile([x], (sg.exp(x) if which == "exp" else sg.sin(x)) * 3.0), [x]

XV = np.linspace(-1, 1, 4).astype(np.float32)
WV = np.eye(4, dtype=np.float32) * 0.5
"""

_CALL = _GRAPHS + """
import json
fn, args = make(sys.argv[1])
got = fn(XV, WV) if sys.argv[1] == "mat" else fn(XV)
print(json.dumps({"values": np.asarray(got).tolist(), "key": fn.forward._build.key}))
"""


def _expected(which):
    xv = np.linspace(-1, 1, 4).astype(np.float32)
    if which == "mat":
        return np.exp(xv @ (np.eye(4, dtype=np.float32) * 0.5)) * 3
    return (np.exp(xv) if which == "exp" else np.sin(xv)) * 3


def _call(tmp_path, which):
    """Compile and call graph `which` in a fresh process, check its values, return its cache key."""
    result = json.loads(run_script(tmp_path, _CALL, which).strip().splitlines()[-1])
    np.testing.assert_allclose(result["values"], _expected(which), rtol=1e-6)
    return result["key"]


def _record_naming(tmp_path, key):
    """The index record that leads to the entry `key`."""
    (path,) = [p for p in (tmp_path / "cache" / "index").rglob("*.json") if key in p.read_text()]
    return path


def _entry(tmp_path, key):
    return tmp_path / "cache" / key[:2] / key


@pytest.mark.parametrize("other", ["sin", "mat"])
@pytest.mark.parametrize("damage", ["key", "whole_record"])
def test_an_index_record_led_to_another_entry_is_not_followed(tmp_path, other, damage):
    """A record redirected to another graph's intact entry (its key changed, or the other
    graph's record copied over it) is ignored: the graph is generated again, gives its own
    values (not the other's, nor a crash on another signature), and its record is rewritten."""
    mine, theirs = _call(tmp_path, "exp"), _call(tmp_path, other)
    path = _record_naming(tmp_path, mine)
    if damage == "key":            # every mention of our entry, its folder's name included
        text = path.read_text().replace(f"{mine[:2]}/{mine}", f"{theirs[:2]}/{theirs}")
        path.write_text(text.replace(mine, theirs))
    else:
        shutil.copy(_record_naming(tmp_path, theirs), path)
    assert _call(tmp_path, "exp") == mine
    assert _record_naming(tmp_path, mine) == path               # the record is right again


@pytest.mark.parametrize("copied", [("kernel.so", "kernel.so.sha256"), "everything"])
def test_a_library_copied_from_another_entry_is_rebuilt(tmp_path, copied):
    """A library and its digest (or the whole entry) copied into another entry do not pass
    for that entry's: the seal ties a library to the key it was built for."""
    mine, theirs = _call(tmp_path, "exp"), _call(tmp_path, "sin")
    if copied == "everything":
        shutil.rmtree(_entry(tmp_path, mine))
        shutil.copytree(_entry(tmp_path, theirs), _entry(tmp_path, mine))
    else:
        for name in copied:
            shutil.copy(_entry(tmp_path, theirs) / name, _entry(tmp_path, mine) / name)
    assert _call(tmp_path, "exp") == mine
    assert build._entry_ok(_entry(tmp_path, mine)) and build._entry_ok(_entry(tmp_path, theirs))
    assert leftovers(tmp_path / "cache") == []


def test_the_entry_seal_names_the_key(tmp_path):
    key = _call(tmp_path, "exp")
    entry = _entry(tmp_path, key)
    assert build._entry_ok(entry)
    moved = entry.with_name("0" * 32)
    os.rename(entry, moved)
    assert not build._entry_ok(moved)              # intact, but not built for this key


_WRONG_FORMS = {
    "list": [], "null": None, "number": 3, "string": "entry", "empty": {},
    "no_symbol": "symbol", "no_key": "key", "no_checks": "checks", "no_n_kernels": "n_kernels",
    "n_kernels_text": ("n_kernels", "1"), "n_kernels_bool": ("n_kernels", True),
    "checks_not_strings": ("checks", [1, 2]), "checks_text": ("checks", "x in [0, 3)"),
    "symbol_number": ("symbol", 5), "symbol_not_c": ("symbol", "5; int x"),
    "key_not_hex": ("key", "../../etc"), "key_list": ("key", ["ab"]),
}


@pytest.mark.parametrize("form", sorted(_WRONG_FORMS))
def test_index_records_of_the_wrong_form_are_ignored_and_rewritten(tmp_path, monkeypatch, form):
    monkeypatch.setenv("SYMGRAD_BUILD_DIR", str(tmp_path))
    x = sg.Variable(shape=(3,), name="x_form")
    out = sg.cos(x) * 2.0
    xv = np.array([0.0, 1.0, 2.0], np.float32)
    np.testing.assert_allclose(sg.compile([x], out)(xv), np.cos(xv) * 2, rtol=1e-6)
    (path,) = (tmp_path / "index").rglob("*.json")
    good = json.loads(path.read_text())
    damage = _WRONG_FORMS[form]
    if isinstance(damage, str) and damage in good:
        broken = {k: v for k, v in good.items() if k != damage}
    elif isinstance(damage, tuple):
        broken = dict(good, **{damage[0]: damage[1]})
    else:
        broken = damage
    for _ in range(2):                       # not once: on every later compile
        path.write_text(json.dumps(broken))
        monkeypatch.setattr(build, "_loaded", {})
        np.testing.assert_allclose(sg.compile([x], out)(xv), np.cos(xv) * 2, rtol=1e-6)
        assert json.loads(path.read_text()) == good


@pytest.mark.parametrize("where", ["index", "shard"])
def test_a_file_where_the_index_folder_should_be(tmp_path, monkeypatch, caplog, where):
    """Compiling goes on without the index, with one warning, not an error per compile."""
    monkeypatch.setenv("SYMGRAD_BUILD_DIR", str(tmp_path))
    monkeypatch.setattr(build, "_index_warned", False, raising=False)
    index = tmp_path / "index"
    if where == "index":
        index.write_text("not a folder")
    else:
        index.mkdir()
        for k in range(256):           # every shard, whichever the graphs below land in
            (index / f"{k:02x}").write_text("not a folder")
    x = sg.Variable(shape=(3,), name="x_nofolder")
    xv = np.array([0.5, 1.0, 2.0], np.float32)
    with caplog.at_level(logging.WARNING, logger="symgrad"):
        for k in range(3):
            monkeypatch.setattr(build, "_loaded", {})
            fn = sg.compile([x], sg.exp(x) * float(k + 1))
            np.testing.assert_allclose(fn(xv), np.exp(xv) * (k + 1), rtol=1e-6)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "index" in warnings[0].getMessage()
    assert leftovers(tmp_path) == []


# --- B. a forked child calls parallel compiled functions --------------------------------------------

def test_libgomp_with_a_serial_team_does_not_hang_after_fork(tmp_path):
    """What the fix rests on: after fork, libgomp's parallel regions hang in the child, unless
    their if() clause is false, when they run on the calling thread without the pool."""
    source = tmp_path / "gomp.c"
    source.write_text(textwrap.dedent("""\
        #include <stdio.h>
        #include <stdlib.h>
        #include <unistd.h>
        #include <sys/wait.h>
        int serial = 0;
        static double work(void) {
            double s = 0;
            #pragma omp parallel for reduction(+:s) if(!serial)
            for (int i = 0; i < 4000000; ++i) s += i % 7;
            return s;
        }
        int main(int argc, char **argv) {
            double want = work();                       /* the pool's threads now exist */
            pid_t pid = fork();
            if (pid == 0) {
                alarm(5);                               /* a hang ends here, as SIGALRM */
                serial = atoi(argv[1]);
                _exit(work() == want && work() == want ? 0 : 1);
            }
            int status = 0;
            waitpid(pid, &status, 0);
            return WIFEXITED(status) ? WEXITSTATUS(status) : 2;
        }
        """))
    exe = tmp_path / "gomp"
    subprocess.run([build.c_compiler(), "-O1", "-fopenmp", "-o", str(exe), str(source)], check=True,
                   capture_output=True)
    env = dict(os.environ, OMP_NUM_THREADS="2", OMP_WAIT_POLICY="PASSIVE")
    assert subprocess.run([str(exe), "1"], check=False, env=env, timeout=30).returncode == 0
    # the defect itself: with the pool, the child hangs (and its alarm ends it)
    if subprocess.run([str(exe), "0"], check=False, env=env, timeout=30).returncode == 0:
        pytest.skip("this OpenMP runtime survives fork (not libgomp?)")


_FORK_CALLS = """
import os, sys
import numpy as np
import symgrad as sg
from symgrad.codegen.render import PARALLEL_MIN

x = sg.Variable(shape=(600, 600), name="x")
w = sg.Variable(shape=(600, 64), name="w")
f = sg.compile([x, w], [sg.tanh(x).sum(dim=1), sg.tanh(x @ w).sum()])
XV = np.linspace(-2, 2, 600 * 600, dtype=np.float32).reshape(600, 600)
WV = np.linspace(-0.05, 0.05, 600 * 64, dtype=np.float32).reshape(600, 64)
assert 600 * 600 >= PARALLEL_MIN and "#pragma omp parallel" in f.forward.source

def work(k):
    a, b = f(XV * (k + 1), WV)
    return float(a.sum()), float(b)

def eager(k):
    t = sg.tensor(XV * (k + 1), requires_grad=True)
    (sg.tanh(t) * t).sum().backward()
    return float(t.grad.numpy().astype(np.float64).sum())
"""


def test_a_forked_child_calls_a_parallel_function_and_eager_backward(tmp_path):
    code = _FORK_CALLS + """
def both():
    return np.array([[*work(k), eager(k)] for k in range(2)])

want = both()                          # the parent's OpenMP threads now exist
pid = os.fork()
if pid == 0:
    os._exit(0 if np.allclose(both(), want, rtol=1e-6) else 3)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
np.testing.assert_allclose(both(), want, rtol=1e-6)        # and the parent's still work
ref = np.tanh(XV.astype(np.float64)).sum(1)
np.testing.assert_allclose(f(XV, WV)[0], ref, rtol=1e-5)
print("ok")
"""
    assert run_script(tmp_path, code, timeout=90).strip().endswith("ok")


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_multiprocessing_pools_call_compiled_functions(tmp_path, method):
    code = _FORK_CALLS + """
import multiprocessing
if __name__ == "__main__":
    want = [work(k) for k in range(4)]
    with multiprocessing.get_context(sys.argv[1]).Pool(2) as pool:
        got = pool.map(work, range(4))
        grads = pool.map(eager, range(2))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    np.testing.assert_allclose(grads, [eager(k) for k in range(2)], rtol=1e-5)
    print("ok")
"""
    assert run_script(tmp_path, code, method, timeout=120).strip().endswith("ok")


# --- C. compiled before a fork, called after --------------------------------------------------------

_COLD = """
import os, sys, multiprocessing, concurrent.futures
import numpy as np
import symgrad as sg
x = sg.Variable(shape=(5,), name="x")
f = sg.compile([x], sg.exp(x) * 3.0)          # the compiler is still running

def call(k):
    return f(np.full(5, k / 8, np.float32)).tolist()
"""


def test_workers_forked_while_the_compile_runs_call_the_function(tmp_path):
    code = _COLD + """
if __name__ == "__main__":
    assert f.forward._build.proc is not None          # really forking before the compile ended
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(4, mp_context=context) as pool:
        got = list(pool.map(call, range(16)))
    want = [(np.exp(np.full(5, k / 8, np.float32)) * 3).tolist() for k in range(16)]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    print("ok")
"""
    cache = tmp_path / "cache"
    assert run_script(tmp_path, code, env={"SYMGRAD_CC": slow_compiler(tmp_path)}).strip() == "ok"
    assert leftovers(cache) == []


def test_a_child_exiting_normally_leaves_the_parents_build_alone(tmp_path):
    """The child's exit handlers must not publish (or remove) the parent's build."""
    code = _COLD + """
if __name__ == "__main__":
    pid = os.fork()
    if pid == 0:
        sys.exit(0)                                   # runs the child's atexit handlers
    os.waitpid(pid, 0)
    np.testing.assert_allclose(call(4), np.exp(np.full(5, 0.5, np.float32)) * 3, rtol=1e-6)
    print("ok")
"""
    assert run_script(tmp_path, code, env={"SYMGRAD_CC": slow_compiler(tmp_path)}).strip() == "ok"
    assert leftovers(tmp_path / "cache") == []


def test_a_child_holding_a_build_its_parent_has_not_published_compiles_its_own(tmp_path):
    """A build that another thread started as the process forked is not finished before the
    fork (it was not registered yet): the child compiles it again in its own temporary
    directory, and the parent's still publishes."""
    code = _COLD + """
from symgrad import build
if __name__ == "__main__":
    b = f.forward._build
    build._pending.discard(b)                         # not registered yet, as in that race
    pid = os.fork()
    if pid == 0:
        ok = np.allclose(call(4), np.exp(np.full(5, 0.5, np.float32)) * 3, rtol=1e-6)
        os._exit(0 if ok and b.tmp.name.split("-")[1] == str(os.getpid()) else 3)
    build._pending.add(b)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, status
    np.testing.assert_allclose(call(4), np.exp(np.full(5, 0.5, np.float32)) * 3, rtol=1e-6)
    print("ok")
"""
    assert run_script(tmp_path, code, env={"SYMGRAD_CC": slow_compiler(tmp_path)}).strip() == "ok"
    assert leftovers(tmp_path / "cache") == []


# --- D. a compiler that exits 0 and writes nothing ------------------------------------------------

def test_a_compiler_that_writes_no_library_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMGRAD_CC", "true")
    monkeypatch.setenv("SYMGRAD_BUILD_DIR", str(tmp_path))
    x = sg.Variable(shape=(3,), name="x_true")
    fn = sg.compile([x], sg.exp(x) + 1.0)
    for _ in range(2):
        with pytest.raises(sg.CompileError) as e:
            fn(np.ones(3, np.float32))
        message = str(e.value)
        assert "'true'" in message and "no library" in message
        assert e.value.source_path is not None and str(e.value.source_path) in message
        assert "expf(" in Path(e.value.source_path).read_text()
    assert leftovers(tmp_path) == []


# --- E. processes compiling different graphs into one cache at once -------------------------------

def test_processes_compiling_different_graphs_at_once_get_their_own(tmp_path):
    code = _GRAPHS + """
import json
for _ in range(3):
    for which in (sys.argv[1], "mat"):
        fn, args = make(which)
        got = fn(XV, WV) if which == "mat" else fn(XV)
        print(json.dumps([which, np.asarray(got).tolist()]))
"""
    script = tmp_path / "many.py"
    script.write_text(textwrap.dedent(code))
    env = dict(os.environ, SYMGRAD_BUILD_DIR=str(tmp_path / "cache"))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    procs = [subprocess.Popen([sys.executable, str(script), which], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for which in ("exp", "sin", "exp", "sin")]
    for p in procs:
        out, err = p.communicate(timeout=CHILD_TIMEOUT)
        assert p.returncode == 0, err
        for line in out.splitlines():
            which, values = json.loads(line)
            np.testing.assert_allclose(values, _expected(which), rtol=1e-6)
    assert leftovers(tmp_path / "cache") == []


# --- F. a column sum's accumulator: in the workspace, not allocated per call ----------------------

def test_a_column_sum_adds_up_in_the_workspace_and_the_module_allocates_nothing(tmp_path, monkeypatch):
    """A column sum of floats adds up in a row of doubles that is part of the caller's
    workspace (allocated once), so the module calls no allocator at all: a steady-state call
    neither takes page faults nor can fail for memory."""
    monkeypatch.setenv("SYMGRAD_BUILD_DIR", str(tmp_path / "cache"))
    x = sg.Variable(shape=(512, 16), name="x_colsum")
    h = sg.tanh(x)
    fn = sg.compile([x], [h.sum(0), (h * h).sum(1)])
    source = fn.forward.source
    assert "x_colsum" in source and "sg_workspace" in source and "added up in memory order" in source
    assert not re.search(r"\b(malloc|calloc|realloc|free)\(", source)
    xv = np.random.default_rng(3).standard_normal((512, 16)).astype(np.float32)
    cols, rows = fn(xv)
    t = np.tanh(xv.astype(np.float64))
    np.testing.assert_allclose(cols, t.sum(0), rtol=1e-5)
    np.testing.assert_allclose(rows, (t * t).sum(1), rtol=1e-5)
