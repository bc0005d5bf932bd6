"""The matrix-product helpers compiled once per build cache (symgrad/backends/objects.py): a
module with products links their object instead of compiling them, computes what a module
that compiles them computes, and a damaged object is compiled again rather than linked.
Each case runs in a fresh interpreter on a build directory of its own; expected values come
from numpy."""
from __future__ import annotations

import json

import pytest

from symgrad import build
from test_reliability_cache import run_script

PROGRAM = """
import json, sys
import numpy as np
import symgrad as sg
dtype, rows = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
x = sg.Variable(shape=(rows, 70), dtype=dtype, name="x")
w = sg.Variable(shape=(70, 50), dtype=dtype, name="w", requires_grad=True)
small = sg.Variable(shape=(5, 3), dtype=dtype, name="small", requires_grad=True)
loss = sg.sum(sg.tanh(x @ w)) + sg.sum((small @ small.T) ** 2)
fn = sg.compile([x, w, small], loss)
xv, wv, sv = (rng.standard_normal(s).astype(dtype) * 0.3 for s in ((rows, 70), (70, 50), (5, 3)))
value, (gw, gs) = fn.value_and_grad(xv, wv, sv)
t = np.tanh(xv.astype(np.float64) @ wv)
p = sv.astype(np.float64) @ sv.T
want = t.sum() + (p ** 2).sum()
want_gw = xv.T.astype(np.float64) @ (1 - t ** 2)
want_gs = 2 * (2 * p) @ sv
tol = 1e-4 if dtype == "float32" else 1e-10
ok = bool(np.allclose(value, want, rtol=tol) and np.allclose(gw, want_gw, rtol=tol, atol=tol)
          and np.allclose(gs, want_gs, rtol=tol, atol=tol))
source = fn.value_and_grad.source
print(json.dumps({"ok": ok, "linked": 'visibility("hidden"))) void sg_matmul_' in source,
                  "compiled": "One BLAS call for rows" in source or "streams rows of B" in source}))
"""


def _run(tmp_path, dtype, build_dir, env=None, rows=33):
    out = run_script(tmp_path, PROGRAM, dtype, rows, build_dir=build_dir, env=env)
    return json.loads(out.splitlines()[-1])


def _objects(build_dir):
    return sorted(p for p in (build_dir / "objects").rglob("matmul_*.o"))


@pytest.mark.skipif(not build.have_c_compiler(), reason="no C compiler")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_module_links_the_product_object_and_computes_the_same(tmp_path, dtype):
    cache = tmp_path / "cache"
    linked = _run(tmp_path, dtype, cache)
    assert linked == {"ok": True, "linked": True, "compiled": False}
    assert len(_objects(cache)) == 1
    alone = _run(tmp_path, dtype, tmp_path / "other", env={"SYMGRAD_MATMUL_OBJECT": "0"})
    assert alone == {"ok": True, "linked": False, "compiled": True}
    assert not (tmp_path / "other" / "objects").exists()


@pytest.mark.skipif(not build.have_c_compiler(), reason="no C compiler")
@pytest.mark.parametrize("damage", ["truncated", "removed digest"])
def test_a_damaged_product_object_is_compiled_again(tmp_path, damage):
    cache = tmp_path / "cache"
    assert _run(tmp_path, "float32", cache)["ok"]
    obj, = _objects(cache)
    intact = obj.read_bytes()
    if damage == "truncated":
        obj.write_bytes(intact[: len(intact) // 3])
    else:
        obj.with_name(obj.name + ".sha256").unlink()
    # another graph (other sizes): generated and compiled, linking the object compiled again
    assert _run(tmp_path, "float32", cache, rows=34) == {"ok": True, "linked": True, "compiled": False}
    assert _objects(cache) == [obj] and obj.read_bytes() == intact


_FAILING_OBJECT = """
import subprocess, tempfile
from pathlib import Path
from symgrad.backends import objects

def failing(ctype):             # the object's compiler fails, a while after the module's starts
    proc = subprocess.Popen(["sh", "-c", "sleep 0.3; echo no; exit 1"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    return proc, Path(tempfile.mkdtemp())
objects._start_compile = failing
"""


@pytest.mark.skipif(not build.have_c_compiler(), reason="no C compiler")
def test_a_module_compiled_while_its_object_fails_is_generated_again_with_the_helpers(tmp_path):
    """In a new cache the module compiles while the object does (backends/staged.py); when the
    object then fails, the module is generated again with the helpers compiled in."""
    out = run_script(tmp_path, _FAILING_OBJECT + PROGRAM, "float32", 33, build_dir=tmp_path / "cache")
    assert json.loads(out.splitlines()[-1]) == {"ok": True, "linked": False, "compiled": True}
    assert _objects(tmp_path / "cache") == []
