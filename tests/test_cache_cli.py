"""The build cache's commands (`python -m symgrad cache info|clear|prune --max-bytes N`,
sg.cache_info, sg.clear_cache), SYMGRAD_CACHE_MAX_BYTES, pruning while another process uses
the cache, and logging on the "symgrad" logger alone."""
from __future__ import annotations

import logging
import os
import subprocess
import sys

import numpy as np
import pytest

import symgrad as sg
from symgrad import build
from symgrad.build import have_c_compiler

pytestmark = pytest.mark.skipif(not have_c_compiler(), reason="no C compiler")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Graph k: exp(x * (k + 1)) summed, over 5 floats: the numbers are numpy's.
_GRAPH = """
import sys
import numpy as np
import symgrad as sg

def make(k):
    x = sg.Variable(shape=(5,), name="x")
    return sg.compile([x], (sg.exp(x * float(k + 1))).sum())

XV = np.linspace(-1, 1, 5).astype(np.float32)

def expected(k):
    return float(np.exp(XV.astype(np.float64) * (k + 1)).sum())
"""

_RUN = _GRAPH + """
for k in map(int, sys.argv[1].split(",")):
    fn = make(k)
    got = float(fn(XV))
    assert abs(got - expected(k)) <= 1e-5 * abs(expected(k)), (k, got, expected(k))
    print(k, fn.forward._build.key, flush=True)
"""


def _env(cache, **extra):
    return dict(os.environ, SYMGRAD_BUILD_DIR=str(cache), PYTHONPATH=ROOT, **extra)


def _run(cache, which, **extra):
    """Compile and check graphs `which` (a list of k) in a fresh process; {k: cache key}."""
    done = subprocess.run([sys.executable, "-c", _RUN, ",".join(map(str, which))], capture_output=True,
                          text=True, timeout=240, env=_env(cache, **extra))
    assert done.returncode == 0, done.stdout + done.stderr
    return {int(k): key for k, key in (line.split() for line in done.stdout.splitlines())}


def _cli(cache, *args):
    done = subprocess.run([sys.executable, "-m", "symgrad", "cache", *args], capture_output=True, text=True,
                          timeout=120, env=_env(cache), cwd=ROOT)
    return done


def _entry(cache, key):
    return cache / key[:2] / key


def _size(cache, key):
    return sum(f.stat().st_size for f in _entry(cache, key).iterdir())


def test_cache_info_counts_entries_and_bytes(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    keys = _run(cache, [0, 1])
    done = _cli(cache, "info")
    assert done.returncode == 0, done.stderr
    assert str(cache) in done.stdout and "entries:       2" in done.stdout
    monkeypatch.setenv("SYMGRAD_BUILD_DIR", str(cache))
    info = sg.cache_info()
    assert info["location"] == str(cache) and info["entries"] == 2
    assert info["entry_bytes"] == sum(_size(cache, k) for k in keys.values())
    assert info["bytes"] >= info["entry_bytes"] and info["index_records"] == 2


def test_prune_removes_the_least_recently_used_and_keeps_the_rest(tmp_path):
    cache = tmp_path / "cache"
    keys = _run(cache, [0, 1, 2])
    for age, k in enumerate([0, 1, 2]):             # used long ago, in this order
        os.utime(_entry(cache, keys[k]), (1000 + age, 1000 + age))
    assert _run(cache, [0]) == {0: keys[0]}         # graph 0 used again: loading marks it
    limit = _size(cache, keys[0]) + _size(cache, keys[2])
    done = _cli(cache, "prune", "--max-bytes", str(limit))
    assert done.returncode == 0, done.stderr
    assert not _entry(cache, keys[1]).exists()      # the least recently used went
    assert _entry(cache, keys[0]).exists() and _entry(cache, keys[2]).exists()
    assert build._entry_ok(_entry(cache, keys[0])) and build._entry_ok(_entry(cache, keys[2]))
    assert [p.name for p in _entry(cache, keys[1]).parent.iterdir() if p.name.startswith(".")] == []
    assert _run(cache, [1, 0]) == {1: keys[1], 0: keys[0]}  # graph 1 rebuilt, right; graph 0 as it was


def test_prune_needs_a_size(tmp_path):
    assert _cli(tmp_path, "prune").returncode != 0
    done = _cli(tmp_path, "prune", "--max-bytes", "lots")
    assert done.returncode != 0 and "--max-bytes" in done.stderr


def test_the_size_limit_setting_keeps_the_cache_under_it(tmp_path):
    cache = tmp_path / "cache"
    first = _run(tmp_path / "probe", [0])
    one = _size(tmp_path / "probe", first[0])
    limit = int(one * 2.5)
    keys = _run(cache, [0, 1, 2, 3, 4], SYMGRAD_CACHE_MAX_BYTES=str(limit))
    left = [k for k, key in keys.items() if _entry(cache, key).exists()]
    assert 4 in left and len(left) <= 2                    # the newest stays; the rest fits the limit
    assert sum(_size(cache, keys[k]) for k in left) <= limit
    bad = subprocess.run([sys.executable, "-c", _RUN, "5"], capture_output=True, text=True, timeout=120,
                         env=_env(cache, SYMGRAD_CACHE_MAX_BYTES="many"))
    assert bad.returncode != 0 and "SYMGRAD_CACHE_MAX_BYTES" in bad.stderr


_HOLD = _GRAPH + """
fn = make(7)
print(float(fn(XV)), flush=True)
sys.stdin.readline()                     # the parent clears the cache meanwhile
print(float(fn(XV)), flush=True)
fn2 = make(7)                            # compiled again: the library this process loaded serves
print(float(fn2(XV)), flush=True)
"""


def test_clearing_the_cache_under_a_running_process_breaks_nothing(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    child = subprocess.Popen([sys.executable, "-c", _HOLD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=_env(cache))
    try:
        first = float(child.stdout.readline())
        monkeypatch.setenv("SYMGRAD_BUILD_DIR", str(cache))
        assert sg.cache_info()["entries"] == 1
        done = sg.clear_cache()
        assert done["removed"] == 1 and sg.cache_info()["entries"] == 0
        out, err = child.communicate("go\n", timeout=120)
    finally:
        child.kill()
    assert child.returncode == 0, err
    expected = float(np.exp(np.linspace(-1, 1, 5) * 8).sum())
    assert first == pytest.approx(expected, rel=1e-5)
    assert [float(v) for v in out.split()] == pytest.approx([expected, expected], rel=1e-5)
    assert sg.cache_info()["entries"] == 0
    assert list(_run(cache, [7])) == [7] and sg.cache_info()["entries"] == 1     # a new process rebuilds


def test_a_function_whose_entry_was_pruned_keeps_working(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMGRAD_BUILD_DIR", str(tmp_path))
    x = sg.Variable(shape=(3,), name="x_pruned")
    fn = sg.compile([x], sg.cos(x) * 3.0)
    xv = np.array([0.0, 1.0, 2.0], np.float32)
    np.testing.assert_allclose(fn(xv), np.cos(xv) * 3, rtol=1e-6)
    assert sg.cache_info()["entries"] == 1
    from symgrad.cache import prune
    assert prune(0)["removed"] == 1 and sg.cache_info()["entries"] == 0
    np.testing.assert_allclose(fn(xv + 1), np.cos(xv + 1) * 3, rtol=1e-6)      # still mapped
    np.testing.assert_allclose(sg.compile([x], sg.cos(x) * 3.0)(xv), np.cos(xv) * 3, rtol=1e-6)
    with pytest.raises(ValueError, match="max_bytes"):
        prune(-1)


_LOGS = """
import logging, sys
import numpy as np
import symgrad as sg
for n in (3, 4):
    x = sg.Variable(shape=(n,), name="x")
    sg.compile([x], sg.sin(x) * 2.0)(np.ones(n, np.float32))
print("root handlers", len(logging.getLogger().handlers), file=sys.stderr)
"""


def test_logging_uses_the_symgrad_logger_and_says_why_it_recompiled(tmp_path):
    done = subprocess.run([sys.executable, "-c", _LOGS], capture_output=True, text=True, timeout=120,
                          env=_env(tmp_path, SYMGRAD_LOG="1"))
    assert done.returncode == 0, done.stderr
    err = done.stderr
    assert "root handlers 0" in err                        # the root logger is left alone
    assert "symgrad INFO: symgrad: generated" in err and "symgrad INFO: symgrad: compiled" in err
    assert "recompiling" in err and "x: 3 float32 -> 4 float32" in err


def test_symgrad_never_configures_the_root_logger(tmp_path):
    done = subprocess.run([sys.executable, "-c", _LOGS], capture_output=True, text=True, timeout=120,
                          env=_env(tmp_path))
    assert done.returncode == 0 and "root handlers 0" in done.stderr
    assert "symgrad:" not in done.stderr.replace("root handlers", "")
    assert logging.getLogger().handlers == [] or all(
        type(h).__module__.startswith("_pytest") for h in logging.getLogger().handlers)
