"""The README's main job, `python -m symgrad demo`, as a first-time user runs it: each step
shows its code and then its result, the gradient graph, where the C is and how it was
compiled, a loop with its comment. Run in a fresh process with an empty build cache."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_demo_teaches_each_step_code_then_result(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), SYMGRAD_BUILD_DIR=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-m", "symgrad", "demo"], capture_output=True, text=True,
                          timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    steps = re.split(r"^== \d+\. .* ==$", out, flags=re.M)[1:]
    assert len(steps) == 7, out
    for step in steps:                   # the code first, then what it printed
        lines = [ln for ln in step.strip().splitlines()]
        assert lines[0].startswith(">>> ") and not lines[-1].startswith(">>>"), step
    assert "x.grad = tensor([[4.5000, 4.5000]," in out                       # the tutorial's numbers
    assert re.search(r"#\d+ 'b2' input b2", out)                           # the gradient graph
    loss, interp = re.search(r"^loss ([\d.]+); the interpreter's ([\d.]+);", out, re.M).groups()
    assert loss == interp
    source = Path(re.search(r"the library's source: (\S+)", out).group(1))
    assert source.is_file() and str(source).startswith(str(tmp_path / "cache"))
    assert re.search(r"compiled by: \S+ .*-O\d", out)
    assert re.search(r"^\s+/\* .* = .* \*/\n(\s+(for \(|#pragma omp).*\n)", out, re.M)  # a loop's comment


def test_the_cache_in_a_checkout_is_apart_from_setuptools_build_folder(monkeypatch):
    from symgrad import build
    monkeypatch.delenv("SYMGRAD_BUILD_DIR", raising=False)
    assert build.build_dir() == ROOT / "build" / "cache"
